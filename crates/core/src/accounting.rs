//! The accounting record as the admin reads it: sessions, usage per quota
//! period, and each server's last sweep (`tollgate sessions`, `tollgate
//! usage`, `tollgate metrics`). Hooks and the sweep write it (sessions.rs,
//! sweep.rs).

use crate::db::{params, Db, Optional};
use crate::quota::Period;
use anyhow::Result;

/// One session as recorded.
#[derive(Clone, Debug)]
pub struct SessionRow {
    pub id: i64,
    pub user: String,
    /// None once the server record was deleted.
    pub server: Option<String>,
    pub connected_at: i64,
    pub closed_at: Option<i64>,
    pub real_ip: Option<String>,
    pub real_port: Option<i64>,
    pub vpn_ip: Option<String>,
    pub platform: Option<String>,
    pub client_version: Option<String>,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub close_reason: Option<String>,
}

/// Which sessions to list, newest first.
#[derive(Clone, Debug, Default)]
pub struct SessionFilter<'a> {
    pub open_only: bool,
    pub user: Option<&'a str>,
    pub server: Option<&'a str>,
    pub limit: u32,
}

pub fn sessions(db: &Db, f: &SessionFilter) -> Result<Vec<SessionRow>> {
    let mut st = db.prepare(
        "SELECT s.id, u.name, v.name, s.connected_at, s.closed_at, s.real_ip, s.real_port, s.vpn_ip,
                s.platform, s.client_version, s.bytes_in, s.bytes_out, s.close_reason
           FROM sessions s JOIN users u ON u.id = s.user_id LEFT JOIN servers v ON v.id = s.server_id
          WHERE (?1 = 0 OR s.closed_at IS NULL) AND (?2 IS NULL OR u.name = ?2) AND (?3 IS NULL OR v.name = ?3)
          ORDER BY s.connected_at DESC, s.id DESC LIMIT ?4",
    )?;
    let rows = st
        .query_map(params![f.open_only, f.user, f.server, f.limit], |r| {
            Ok(SessionRow {
                id: r.get(0)?,
                user: r.get(1)?,
                server: r.get(2)?,
                connected_at: r.get(3)?,
                closed_at: r.get(4)?,
                real_ip: r.get(5)?,
                real_port: r.get(6)?,
                vpn_ip: r.get(7)?,
                platform: r.get(8)?,
                client_version: r.get(9)?,
                bytes_in: r.get(10)?,
                bytes_out: r.get(11)?,
                close_reason: r.get(12)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Is there a session (open or closed) with this id?
pub fn session_exists(db: &Db, id: i64) -> Result<bool> {
    Ok(db.query_row("SELECT count(*) FROM sessions WHERE id = ?1", [id], |r| r.get(0))?)
}

/// Open sessions per server, every server by name (0 when none).
pub fn open_per_server(db: &Db) -> Result<Vec<(String, i64)>> {
    let mut st = db.prepare(
        "SELECT v.name, (SELECT count(*) FROM sessions s WHERE s.server_id = v.id AND s.closed_at IS NULL)
           FROM servers v ORDER BY v.name",
    )?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// A user's traffic: in the current period of the plan, and in total.
#[derive(Clone, Debug)]
pub struct UsageRow {
    pub user: String,
    pub plan: Option<String>,
    pub period: Period,
    /// 0 for the whole life of the account.
    pub period_start: i64,
    pub period_bytes_in: i64,
    pub period_bytes_out: i64,
    pub quota_bytes: Option<i64>,
    pub total_bytes_in: i64,
    pub total_bytes_out: i64,
}

/// Every user's usage by name (or `user`'s only), as at time `now`.
pub fn usage(db: &Db, user: Option<&str>, now: i64) -> Result<Vec<UsageRow>> {
    let mut st = db.prepare(
        "SELECT u.id, u.name, p.name, p.period, p.quota_bytes,
                coalesce((SELECT bytes_in FROM usage WHERE user_id = u.id AND period_start = 0), 0),
                coalesce((SELECT bytes_out FROM usage WHERE user_id = u.id AND period_start = 0), 0)
           FROM users u LEFT JOIN plans p ON p.id = u.plan_id
          WHERE ?1 IS NULL OR u.name = ?1 ORDER BY u.name",
    )?;
    let base = st
        .query_map([&user], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut period_usage =
        db.prepare("SELECT bytes_in, bytes_out FROM usage WHERE user_id = ?1 AND period_start = ?2")?;
    let mut rows = Vec::with_capacity(base.len());
    for (id, name, plan, period, quota, total_in, total_out) in base {
        let period = period.as_deref().and_then(Period::parse).unwrap_or(Period::Total);
        let start = period.start(now);
        let (pin, pout) =
            period_usage.query_row(params![id, start], |r| Ok((r.get(0)?, r.get(1)?))).optional()?.unwrap_or((0, 0));
        rows.push(UsageRow {
            user: name,
            plan,
            period,
            period_start: start,
            period_bytes_in: pin,
            period_bytes_out: pout,
            quota_bytes: quota,
            total_bytes_in: total_in,
            total_bytes_out: total_out,
        });
    }
    Ok(rows)
}

/// Record a server's sweep (replacing its previous one), failed or not.
pub fn record_sweep(db: &Db, server: &str, at: i64, duration_ms: i64, ok: bool) -> Result<()> {
    db.execute(
        "INSERT INTO sweeps (server, at, duration_ms, ok) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (server) DO UPDATE SET at = excluded.at, duration_ms = excluded.duration_ms, ok = excluded.ok",
        params![server, at, duration_ms, ok],
    )?;
    Ok(())
}

/// A server's last sweep.
#[derive(Clone, Debug)]
pub struct SweepRow {
    pub server: String,
    pub at: i64,
    pub duration_ms: i64,
    pub ok: bool,
}

/// Each server's last sweep, by server name.
pub fn last_sweeps(db: &Db) -> Result<Vec<SweepRow>> {
    let mut st = db.prepare("SELECT server, at, duration_ms, ok FROM sweeps ORDER BY server")?;
    let rows = st
        .query_map([], |r| Ok(SweepRow { server: r.get(0)?, at: r.get(1)?, duration_ms: r.get(2)?, ok: r.get(3)? }))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
