//! `tollgate sweep`, run by cron or a timer: charge live byte counts to open
//! sessions, cut clients that must go, close sessions OpenVPN lost, replay
//! the disconnect spool, prune old events.

use crate::config::Config;
use crate::mgmt::LiveClient;
use crate::policy::Deny;
use crate::quota::Period;
use crate::sessions;
use crate::store::Store;
use anyhow::Result;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use std::collections::HashMap;

/// A session younger than this may not be in the live list yet (its
/// client-connect just ran); it is never taken for lost.
pub const LOST_GRACE_SECS: i64 = 5;

/// What the sweep knows about a live client's user.
#[derive(Debug, Clone, Default)]
pub struct LiveUserFacts {
    pub enabled: bool,
    pub expires_at: Option<i64>,
    pub plan_name: Option<String>,
    pub plan_expires_at: Option<i64>,
    pub quota_bytes: Option<i64>,
    pub period: Option<Period>,
    pub used_bytes: i64,
    pub max_session_secs: Option<i64>,
}

/// Pure: must this live client be cut, and why?
pub fn verdict(user: Option<&LiveUserFacts>, connected_at: i64, now: i64) -> Option<Deny> {
    let Some(u) = user else { return Some(Deny::UnknownUser) };
    if !u.enabled {
        return Some(Deny::Disabled);
    }
    if let Some(at) = u.expires_at.filter(|t| *t <= now) {
        return Some(Deny::AccountExpired { at });
    }
    if let Some(at) = u.plan_expires_at.filter(|t| *t <= now) {
        return Some(Deny::PlanExpired { plan: u.plan_name.clone().unwrap_or_default(), at });
    }
    if let (Some(quota), Some(period)) = (u.quota_bytes, u.period) {
        if u.used_bytes >= quota {
            return Some(Deny::QuotaExhausted { used: u.used_bytes, quota, period, resets: period.next_start(now) });
        }
    }
    if let Some(max) = u.max_session_secs.filter(|m| now - connected_at >= *m) {
        return Some(Deny::SessionTimeLimit { max });
    }
    None
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub live_clients: usize,
    pub charged_sessions: usize,
    pub charged_bytes: i64,
    pub killed: Vec<Killed>,
    pub lost_closed: usize,
    pub spool_replayed: usize,
    pub events_pruned: usize,
}

#[derive(Debug, Serialize)]
pub struct Killed {
    pub user: String,
    pub reason: String,
    /// False when there was no management interface to kill through, or the kill failed.
    pub done: bool,
}

fn load_user(store: &Store, name: &str, now: i64) -> Result<Option<LiveUserFacts>> {
    let row = store
        .conn
        .prepare_cached(
            "SELECT u.id, u.enabled, u.expires_at, p.name,
                    CASE WHEN p.expires_after_secs IS NULL THEN NULL
                         ELSE coalesce(u.plan_since, 0) + p.expires_after_secs END,
                    p.quota_bytes, p.period, p.max_session_secs
               FROM users u LEFT JOIN plans p ON p.id = u.plan_id WHERE u.name = ?1",
        )?
        .query_row([name], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                LiveUserFacts {
                    enabled: r.get(1)?,
                    expires_at: r.get(2)?,
                    plan_name: r.get(3)?,
                    plan_expires_at: r.get(4)?,
                    quota_bytes: r.get(5)?,
                    period: r.get::<_, Option<String>>(6)?.as_deref().and_then(Period::parse),
                    max_session_secs: r.get(7)?,
                    used_bytes: 0,
                },
            ))
        })
        .optional()?;
    let Some((id, mut f)) = row else { return Ok(None) };
    if let Some(p) = f.period {
        f.used_bytes = store
            .conn
            .prepare_cached("SELECT bytes_in + bytes_out FROM usage WHERE user_id = ?1 AND period_start = ?2")?
            .query_row(params![id, p.start(now)], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
    }
    Ok(Some(f))
}

/// One sweep for `server`. `live` is None when neither a management
/// interface nor a status file was given: then only the spool and the
/// pruning run. `kill` is None with a status file (nothing to kill through).
pub fn run(
    store: &mut Store,
    cfg: &Config,
    server: &str,
    live: Option<&[LiveClient]>,
    mut kill: Option<&mut dyn FnMut(&LiveClient) -> Result<()>>,
    now: i64,
) -> Result<Report> {
    let mut rep = Report { spool_replayed: sessions::replay_spool(store, &cfg.database)?, ..Default::default() };
    if let Some(live) = live {
        rep.live_clients = live.len();
        let by_key: HashMap<(&str, i64, &str, i64), &LiveClient> =
            live.iter().map(|c| ((c.username.as_str(), c.connected_at, c.real_ip.as_str(), c.real_port), c)).collect();
        let tx = store.write_tx()?;
        let open: Vec<(i64, i64, String, i64, String, i64, i64, i64)> = tx
            .prepare(
                "SELECT s.id, s.user_id, u.name, s.connected_at, coalesce(s.real_ip, ''), coalesce(s.real_port, 0),
                        s.charged_in, s.charged_out
                   FROM sessions s JOIN users u ON u.id = s.user_id JOIN servers v ON v.id = s.server_id
                  WHERE s.closed_at IS NULL AND v.name = ?1",
            )?
            .query_map([server], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
            })?
            .collect::<Result<_, _>>()?;
        for (id, user_id, name, at, ip, port, cin, cout) in open {
            match by_key.get(&(name.as_str(), at, ip.as_str(), port)) {
                Some(c) => {
                    let (a, b) = sessions::charge(&tx, id, user_id, (cin, cout), (c.bytes_in, c.bytes_out), now)?;
                    if a + b > 0 {
                        rep.charged_sessions += 1;
                        rep.charged_bytes += a + b;
                    }
                }
                None if at < now - LOST_GRACE_SECS => {
                    tx.execute(
                        "UPDATE sessions SET closed_at = ?2, close_reason = 'lost' WHERE id = ?1",
                        params![id, now],
                    )?;
                    rep.lost_closed += 1;
                }
                None => {}
            }
        }
        tx.commit()?;
        for c in live {
            let facts = load_user(store, &c.username, now)?;
            if let Some(d) = verdict(facts.as_ref(), c.connected_at, now) {
                let done = match kill.as_mut() {
                    Some(k) => k(c).is_ok(),
                    None => false,
                };
                rep.killed.push(Killed { user: c.username.clone(), reason: d.log_reason(), done });
            }
        }
    }
    rep.events_pruned = store.conn.execute("DELETE FROM auth_events WHERE at < ?1", [now - cfg.retention_secs])?;
    store.conn.execute("DELETE FROM challenges WHERE expires_at < ?1", [now])?;
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn ok() -> LiveUserFacts {
        LiveUserFacts { enabled: true, ..Default::default() }
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict(Some(&ok()), NOW - 10, NOW), None);
        assert_eq!(verdict(None, NOW, NOW), Some(Deny::UnknownUser));
        assert_eq!(verdict(Some(&LiveUserFacts { enabled: false, ..ok() }), NOW, NOW), Some(Deny::Disabled));
        let f = LiveUserFacts { expires_at: Some(NOW - 1), ..ok() };
        assert_eq!(verdict(Some(&f), NOW, NOW), Some(Deny::AccountExpired { at: NOW - 1 }));
        let f = LiveUserFacts { quota_bytes: Some(100), used_bytes: 100, period: Some(Period::Day), ..ok() };
        assert!(matches!(verdict(Some(&f), NOW, NOW), Some(Deny::QuotaExhausted { .. })));
        let f = LiveUserFacts { quota_bytes: Some(100), used_bytes: 99, period: Some(Period::Day), ..ok() };
        assert_eq!(verdict(Some(&f), NOW, NOW), None);
        let f = LiveUserFacts { max_session_secs: Some(60), ..ok() };
        assert_eq!(verdict(Some(&f), NOW - 60, NOW), Some(Deny::SessionTimeLimit { max: 60 }));
        assert_eq!(verdict(Some(&f), NOW - 59, NOW), None);
    }
}
