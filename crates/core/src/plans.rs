//! Plans: the limits users on them share (quota per period, session time,
//! connections, lifetime). The store's side of `tollgate plan`.

use crate::db::{params, Db, Optional};
use crate::names::{id_of, Kind};
use anyhow::{bail, Result};

/// A plan's optional limits, each `None` for no limit.
#[derive(Clone, Copy, Debug)]
pub enum Limit {
    QuotaBytes,
    MaxSessionSecs,
    MaxConnections,
    ExpiresAfterSecs,
}

impl Limit {
    fn column(self) -> &'static str {
        match self {
            Limit::QuotaBytes => "quota_bytes",
            Limit::MaxSessionSecs => "max_session_secs",
            Limit::MaxConnections => "max_connections",
            Limit::ExpiresAfterSecs => "expires_after_secs",
        }
    }
}

/// A new plan with no limits; "already exists" when the name is taken.
pub fn add(db: &Db, name: &str, now: i64) -> Result<()> {
    if db.query_row("SELECT 1 FROM plans WHERE name = ?1", [name], |_| Ok(())).optional()?.is_some() {
        bail!("plan {name} already exists");
    }
    db.execute("INSERT INTO plans (name, created_at) VALUES (?1, ?2)", params![name, now])?;
    Ok(())
}

pub fn set_limit(db: &Db, name: &str, limit: Limit, value: Option<i64>) -> Result<()> {
    db.execute(&format!("UPDATE plans SET {} = ?2 WHERE name = ?1", limit.column()), params![name, value])?;
    Ok(())
}

pub fn set_period(db: &Db, name: &str, period: &str) -> Result<()> {
    db.execute("UPDATE plans SET period = ?2 WHERE name = ?1", params![name, period])?;
    Ok(())
}

/// A plan as `plan list` and `plan show` report it.
#[derive(Clone, Debug)]
pub struct PlanRow {
    pub name: String,
    pub quota_bytes: Option<i64>,
    pub period: String,
    pub max_session_secs: Option<i64>,
    pub max_connections: Option<i64>,
    pub expires_after_secs: Option<i64>,
    /// How many users are on it.
    pub users: i64,
}

/// Every plan by name, or only `only`.
pub fn list(db: &Db, only: Option<&str>) -> Result<Vec<PlanRow>> {
    let mut st = db.prepare(
        "SELECT p.name, p.quota_bytes, p.period, p.max_session_secs, p.max_connections, p.expires_after_secs,
                (SELECT count(*) FROM users u WHERE u.plan_id = p.id)
           FROM plans p WHERE ?1 IS NULL OR p.name = ?1 ORDER BY p.name",
    )?;
    let rows = st
        .query_map([only], |r| {
            Ok(PlanRow {
                name: r.get(0)?,
                quota_bytes: r.get(1)?,
                period: r.get(2)?,
                max_session_secs: r.get(3)?,
                max_connections: r.get(4)?,
                expires_after_secs: r.get(5)?,
                users: r.get(6)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Delete plan `name`; refused while users are on it.
pub fn delete(db: &Db, name: &str) -> Result<()> {
    let id = id_of(db, Kind::Plan, name)?;
    let n: i64 = db.query_row("SELECT count(*) FROM users WHERE plan_id = ?1", [id], |r| r.get(0))?;
    if n > 0 {
        bail!("plan {name} is used by {n} user(s): move them first (tollgate user set NAME --plan OTHER)");
    }
    db.execute("DELETE FROM plans WHERE id = ?1", [id])?;
    Ok(())
}

/// How many plans let a user have more than one connection.
pub fn count_multi_connection(db: &Db) -> Result<i64> {
    Ok(db.query_row("SELECT count(*) FROM plans WHERE max_connections IS NULL OR max_connections > 1", [], |r| {
        r.get(0)
    })?)
}
