//! The record of login attempts: auth events (every decision, with its
//! reason) and the failures counted per source address. Hooks write them
//! (auth.rs); these are the reads `tollgate events`, `tollgate blocked`
//! and `tollgate metrics` make.

use crate::db::{params, Db};
use anyhow::Result;

/// One login attempt as recorded.
#[derive(Clone, Debug)]
pub struct EventRow {
    pub at: i64,
    pub username: String,
    pub server: Option<String>,
    pub ip: Option<String>,
    pub result: String,
    pub reason: String,
}

/// Is `name` a user, or a name someone tried to log in with? (A name that
/// is neither is a typo worth reporting; one that was only tried, someone
/// guessing "admin", is worth finding.)
pub fn known_name(db: &Db, name: &str) -> Result<bool> {
    Ok(db.query_row(
        "SELECT EXISTS (SELECT 1 FROM users WHERE name = ?1) OR EXISTS (SELECT 1 FROM auth_events WHERE username = ?1)",
        [name],
        |r| r.get::<_, bool>(0),
    )?)
}

/// The newest `limit` attempts, of `user` only if given, newest first.
pub fn recent(db: &Db, user: Option<&str>, limit: u32) -> Result<Vec<EventRow>> {
    let mut st = db.prepare(
        "SELECT at, username, server, ip, result, reason FROM auth_events
          WHERE ?1 IS NULL OR username = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = st
        .query_map(params![user, limit], |r| {
            Ok(EventRow {
                at: r.get(0)?,
                username: r.get(1)?,
                server: r.get(2)?,
                ip: r.get(3)?,
                result: r.get(4)?,
                reason: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Failures counted for one source address.
#[derive(Clone, Debug)]
pub struct SourceRow {
    pub address: String,
    pub failed_count: i64,
    pub failed_since: Option<i64>,
    pub locked_until: Option<i64>,
}

/// Every source address with failures, the longest blocked first.
pub fn sources(db: &Db) -> Result<Vec<SourceRow>> {
    let mut st = db.prepare(
        "SELECT ip, failed_count, failed_since, locked_until FROM source_failures ORDER BY locked_until DESC, ip",
    )?;
    let rows = st
        .query_map([], |r| {
            Ok(SourceRow {
                address: r.get(0)?,
                failed_count: r.get(1)?,
                failed_since: r.get(2)?,
                locked_until: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Attempts since `since` counted by result and kind, for metrics.
pub fn counts_since(db: &Db, since: i64) -> Result<Vec<(String, String, i64)>> {
    let mut st = db.prepare(
        "SELECT result, kind, count(*) FROM auth_events WHERE at >= ?1 GROUP BY result, kind ORDER BY result, kind",
    )?;
    let rows = st.query_map([since], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Forget the failures of one source address (lifting its block); false
/// when it had none on record.
pub fn unblock(db: &Db, address: &str) -> Result<bool> {
    Ok(db.execute("DELETE FROM source_failures WHERE ip = ?1", [address])? > 0)
}
