//! Account standing, pure: may this account use this server now? One
//! function answers for every caller, each at its own checkpoint:
//! auth-verify (a login or renegotiation), client-connect (the tunnel
//! opens), the sweep (a live tunnel) and gen-ovpn (handing out a profile).
//! The caller loads the facts (`auth::load_with`); nothing here does I/O or
//! reads the clock.
//!
//! | check                      | Login | Connect | Live | Profile |
//! |----------------------------|-------|---------|------|---------|
//! | user exists                |   ✓   |    ✓    |  ✓   |    ✓    |
//! | enabled                    |   ✓   |    ✓    |  ✓   |    ✓    |
//! | account, plan not expired  |   ✓   |    ✓    |  ✓   |    ✓    |
//! | server known and granted   |   ✓   |    ✓    |  ✓   |    ✓    |
//! | quota not used up          |   ✓   |    ✓    |  ✓   |         |
//! | under the connection limit |   ✓   |    ✓    |      |         |
//! | within the session time    |       |         |  ✓   |         |
//!
//! A live tunnel is one of the open sessions, so the sweep does not count
//! them; a profile outlives today's quota and connections, so gen-ovpn does
//! not look at them. Credentials (password, lock, second factor) and the
//! client's own checks (devices, platform) are the auth flow's, not here.

use crate::policy::{AuthFacts, Deny};

/// Where the question is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoint {
    /// auth-verify: a login or a renegotiation.
    Login,
    /// client-connect: the tunnel opens (the count re-read under the write lock).
    Connect,
    /// The sweep: a tunnel that has been up since `connected_at`.
    Live { connected_at: i64 },
    /// gen-ovpn: may the user be handed a profile for this server?
    Profile,
}

/// Why the account may not, or None when it may.
pub fn check(facts: &AuthFacts, at: Checkpoint, now: i64) -> Option<Deny> {
    let Some(u) = &facts.user else { return Some(Deny::UnknownUser) };
    if !u.enabled {
        return Some(Deny::Disabled);
    }
    if let Some(at) = u.expires_at.filter(|t| *t <= now) {
        return Some(Deny::AccountExpired { at });
    }
    if let Some(p) = &u.plan {
        if let Some(at) = p.expires_at.filter(|t| *t <= now) {
            return Some(Deny::PlanExpired { plan: p.name.clone(), at });
        }
    }
    if !facts.server_known {
        return Some(Deny::UnknownServer { server: facts.server.clone() });
    }
    if !u.granted {
        return Some(Deny::NoGrant { server: facts.server.clone() });
    }
    let Some(p) = &u.plan else { return None };
    if at != Checkpoint::Profile {
        if let Some(quota) = p.quota_bytes.filter(|q| u.used_bytes >= *q) {
            return Some(Deny::QuotaExhausted {
                used: u.used_bytes,
                quota,
                period: p.period,
                resets: p.period.next_start(now),
            });
        }
    }
    match at {
        Checkpoint::Login | Checkpoint::Connect => {
            if let Some(max) = p.max_connections.filter(|m| u.open_sessions >= *m) {
                return Some(Deny::TooManySessions { open: u.open_sessions, max });
            }
        }
        Checkpoint::Live { connected_at } => {
            if let Some(max) = p.max_session_secs.filter(|m| now - connected_at >= *m) {
                return Some(Deny::SessionTimeLimit { max });
            }
        }
        Checkpoint::Profile => {}
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::UserFacts;

    const NOW: i64 = 1_800_000_000;
    const ALL: [Checkpoint; 4] =
        [Checkpoint::Login, Checkpoint::Connect, Checkpoint::Live { connected_at: NOW - 10 }, Checkpoint::Profile];

    /// policy's sample account, with a connection limit of 1 and a
    /// session limit of 60 s, changed by `f`.
    fn facts(f: impl FnOnce(&mut UserFacts)) -> AuthFacts {
        crate::policy::tests::with(|u| {
            let p = u.plan.as_mut().unwrap();
            p.max_connections = Some(1);
            p.max_session_secs = Some(60);
            f(u)
        })
    }

    /// Which checkpoints refuse these facts.
    fn refused_at(a: &AuthFacts) -> Vec<bool> {
        ALL.iter().map(|at| check(a, *at, NOW).is_some()).collect()
    }

    #[test]
    fn a_good_account_passes_everywhere() {
        assert_eq!(refused_at(&facts(|_| {})), [false; 4]);
        assert_eq!(refused_at(&facts(|u| u.plan = None)), [false; 4]);
    }

    #[test]
    fn the_table() {
        let always = [true; 4];
        assert_eq!(refused_at(&AuthFacts { user: None, ..facts(|_| {}) }), always);
        assert_eq!(refused_at(&facts(|u| u.enabled = false)), always);
        assert_eq!(refused_at(&facts(|u| u.expires_at = Some(NOW))), always);
        assert_eq!(refused_at(&facts(|u| u.plan.as_mut().unwrap().expires_at = Some(NOW - 1))), always);
        assert_eq!(refused_at(&AuthFacts { server_known: false, ..facts(|_| {}) }), always);
        assert_eq!(refused_at(&facts(|u| u.granted = false)), always);
        assert_eq!(refused_at(&facts(|u| u.used_bytes = 1000)), [true, true, true, false]);
        assert_eq!(refused_at(&facts(|u| u.open_sessions = 1)), [true, true, false, false]);
        let long = facts(|_| {});
        let at = |c| check(&long, Checkpoint::Live { connected_at: c }, NOW);
        assert_eq!(at(NOW - 60), Some(Deny::SessionTimeLimit { max: 60 }));
        assert_eq!(at(NOW - 59), None);
    }

    #[test]
    fn the_first_reason_wins() {
        let a = facts(|u| {
            u.enabled = false;
            u.used_bytes = 5000;
            u.granted = false
        });
        assert_eq!(check(&a, Checkpoint::Login, NOW), Some(Deny::Disabled));
        let a = facts(|u| {
            u.used_bytes = 5000;
            u.open_sessions = 3
        });
        assert!(matches!(check(&a, Checkpoint::Connect, NOW), Some(Deny::QuotaExhausted { .. })));
    }
}
