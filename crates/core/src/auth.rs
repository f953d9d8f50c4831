//! The auth flow shared by the auth-verify hook and `tollgate test-auth`:
//! load the facts, verify the password, let `policy::decide` rule, record.

use crate::config::Config;
use crate::password;
use crate::policy::{self, AuthFacts, Decision, FailState, PlanFacts, Proof, UserFacts};
use crate::quota::Period;
use crate::store::Store;
use anyhow::Result;
use rusqlite::{params, OptionalExtension};

pub struct Request<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub server: &'a str,
    pub ip: &'a str,
    pub now: i64,
}

/// What the database holds for one login attempt.
pub struct Loaded {
    pub facts: AuthFacts,
    pub password_hash: Option<String>,
    pub fail: FailState,
}

pub fn load(store: &Store, username: &str, server: &str, now: i64) -> Result<Loaded> {
    let c = &store.conn;
    let server_id: Option<i64> =
        c.prepare_cached("SELECT id FROM servers WHERE name = ?1")?.query_row([server], |r| r.get(0)).optional()?;
    let row = c
        .prepare_cached(
            "SELECT u.id, u.name, u.enabled, u.expires_at, u.locked_until, u.failed_count,
                    u.failed_since, u.password_hash, u.plan_since,
                    p.name, p.expires_after_secs, p.quota_bytes, p.period, p.max_connections,
                    u.all_servers OR coalesce(g.all_servers, 0)
                      OR EXISTS(SELECT 1 FROM grants WHERE server_id = ?2 AND user_id = u.id)
                      OR EXISTS(SELECT 1 FROM grants WHERE server_id = ?2 AND group_id = u.group_id)
               FROM users u
               LEFT JOIN plans p ON p.id = u.plan_id
               LEFT JOIN groups g ON g.id = u.group_id
              WHERE u.name = ?1",
        )?
        .query_row(params![username, server_id], |r| {
            let plan = match r.get::<_, Option<String>>(9)? {
                None => None,
                Some(name) => {
                    let since: Option<i64> = r.get(8)?;
                    let after: Option<i64> = r.get(10)?;
                    Some(PlanFacts {
                        name,
                        expires_at: after.map(|a| since.unwrap_or(0).saturating_add(a)),
                        quota_bytes: r.get(11)?,
                        period: Period::parse(&r.get::<_, String>(12)?).unwrap_or(Period::Month),
                        max_connections: r.get(13)?,
                    })
                }
            };
            let user = UserFacts {
                id: r.get(0)?,
                name: r.get(1)?,
                enabled: r.get(2)?,
                expires_at: r.get(3)?,
                locked_until: r.get(4)?,
                plan,
                granted: server_id.is_some() && r.get::<_, bool>(14)?,
                used_bytes: 0,
                open_sessions: 0,
            };
            let fail = FailState { count: r.get(5)?, since: r.get(6)?, locked_until: user.locked_until };
            Ok((user, fail, r.get::<_, String>(7)?))
        })
        .optional()?;
    let Some((mut user, fail, hash)) = row else {
        return Ok(Loaded {
            facts: AuthFacts { server: server.into(), server_known: server_id.is_some(), user: None },
            password_hash: None,
            fail: FailState::default(),
        });
    };
    if let Some(p) = &user.plan {
        user.used_bytes = c
            .prepare_cached("SELECT bytes_in + bytes_out FROM usage WHERE user_id = ?1 AND period_start = ?2")?
            .query_row(params![user.id, p.period.start(now)], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        if p.max_connections.is_some() {
            user.open_sessions = c
                .prepare_cached("SELECT count(*) FROM sessions WHERE user_id = ?1 AND closed_at IS NULL")?
                .query_row([user.id], |r| r.get(0))?;
        }
    }
    Ok(Loaded {
        facts: AuthFacts { server: server.into(), server_known: server_id.is_some(), user: Some(user) },
        password_hash: Some(hash),
        fail,
    })
}

/// Run the whole decision. The password is always verified (against a dummy
/// hash for unknown users) so that every attempt costs the same. With
/// `record`, the outcome updates the lockout counters and the event log;
/// `tollgate test-auth` passes false and changes nothing.
pub fn authenticate(store: &mut Store, cfg: &Config, req: &Request, record: bool) -> Result<Decision> {
    let loaded = load(store, req.username, req.server, req.now)?;
    let ok = password::verify(loaded.password_hash.as_deref(), req.password, cfg.argon2);
    let proof = if ok { Proof::Valid } else { Proof::Invalid };
    let decision = policy::decide(&loaded.facts, proof, req.now);
    if record {
        record_outcome(store, cfg, req, &loaded, &decision)?;
        if ok && decision == Decision::Accept {
            maybe_rehash(store, cfg, req, &loaded)?;
        }
    }
    Ok(decision)
}

fn record_outcome(store: &mut Store, cfg: &Config, req: &Request, loaded: &Loaded, d: &Decision) -> Result<()> {
    let tx = store.write_tx()?;
    if let Some(u) = &loaded.facts.user {
        match d {
            Decision::Deny(deny) if deny.is_credential_failure() => {
                // Re-read inside the write lock: concurrent failures must all count.
                let current: FailState = tx.query_row(
                    "SELECT failed_count, failed_since, locked_until FROM users WHERE id = ?1",
                    [u.id],
                    |r| Ok(FailState { count: r.get(0)?, since: r.get(1)?, locked_until: r.get(2)? }),
                )?;
                let next = policy::after_failure(current, req.now, &cfg.lockout);
                tx.execute(
                    "UPDATE users SET failed_count = ?2, failed_since = ?3, locked_until = ?4 WHERE id = ?1",
                    params![u.id, next.count, next.since, next.locked_until],
                )?;
            }
            Decision::Accept if loaded.fail != FailState::default() => {
                tx.execute(
                    "UPDATE users SET failed_count = 0, failed_since = NULL, locked_until = NULL WHERE id = ?1",
                    [u.id],
                )?;
            }
            _ => {}
        }
    }
    let (result, reason) = match d {
        Decision::Accept => ("accept", "ok".to_string()),
        Decision::Deny(deny) => ("deny", deny.log_reason()),
    };
    log_event(&tx, req, result, &reason)?;
    tx.execute("DELETE FROM auth_events WHERE at < ?1", [req.now - cfg.retention_secs])?;
    tx.commit()?;
    Ok(())
}

fn log_event(tx: &rusqlite::Transaction, req: &Request, result: &str, reason: &str) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO auth_events (at, username, server, ip, result, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![req.now, crate::names::for_log(req.username), req.server, req.ip, result, reason])?;
    Ok(())
}

/// After a good login, bring an old hash up to the configured parameters.
fn maybe_rehash(store: &mut Store, cfg: &Config, req: &Request, loaded: &Loaded) -> Result<()> {
    let (Some(u), Some(h)) = (&loaded.facts.user, &loaded.password_hash) else {
        return Ok(());
    };
    if password::needs_rehash(h, cfg.argon2) {
        let new = password::hash(req.password, cfg.argon2)?;
        store.conn.execute(
            "UPDATE users SET password_hash = ?2 WHERE id = ?1 AND password_hash = ?3",
            params![u.id, new, h],
        )?;
    }
    Ok(())
}
