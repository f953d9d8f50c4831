//! sessions, usage and sweep.

use crate::out;
use anyhow::{anyhow, Result};
use serde_json::{json, Value};
use std::path::PathBuf;
use tollgate_core::accounting::{self, SessionFilter};
use tollgate_core::db::Db;
use tollgate_core::mgmt::{self, LiveClient, Management};
use tollgate_core::names::{id_of, Kind};
use tollgate_core::units::{format_duration, format_size, format_size_of, format_time, now};
use tollgate_core::{sweep as core_sweep, Config, Store};

pub fn sessions(
    c: &Db,
    open: bool,
    user: Option<String>,
    server: Option<String>,
    limit: u32,
    json: bool,
) -> Result<()> {
    let t = now();
    // A filter on a name that does not exist is a mistake, not "no sessions".
    if let Some(u) = &user {
        id_of(c, Kind::User, u)?;
    }
    if let Some(s) = &server {
        id_of(c, Kind::Server, s)?;
    }
    let filter = SessionFilter { open_only: open, user: user.as_deref(), server: server.as_deref(), limit };
    let rows = accounting::sessions(c, &filter)?
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "user": r.user,
                "server": r.server,
                "connected_at": format_time(r.connected_at),
                "closed_at": r.closed_at.map(format_time),
                "open": r.closed_at.is_none(),
                "duration_secs": r.closed_at.unwrap_or(t) - r.connected_at,
                "real_ip": r.real_ip,
                "real_port": r.real_port,
                "vpn_ip": r.vpn_ip,
                "platform": r.platform,
                "client_version": r.client_version,
                "bytes_in": r.bytes_in,
                "bytes_out": r.bytes_out,
                "close_reason": r.close_reason,
            })
        })
        .collect();
    let headers = ["ID", "USER", "SERVER", "CONNECTED", "DURATION", "REAL-IP", "VPN-IP", "IN", "OUT", "STATE"];
    out::listing(json, rows, &headers, |r| {
        let s = |k: &str| out::text(r, k);
        vec![
            r["id"].to_string(),
            s("user"),
            s("server"),
            s("connected_at"),
            format_duration(r["duration_secs"].as_i64().unwrap_or(0)),
            s("real_ip"),
            s("vpn_ip"),
            format_size(r["bytes_in"].as_i64().unwrap_or(0)),
            format_size(r["bytes_out"].as_i64().unwrap_or(0)),
            if r["open"].as_bool() == Some(true) { "open".into() } else { s("close_reason") },
        ]
    });
    Ok(())
}

/// `tollgate sessions close ID…`: all or nothing; an id that is not an open
/// session is an error and closes nothing.
pub fn close_sessions(c: &mut Db, ids: &[i64], reason: &str) -> Result<i32> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().any(char::is_control) || reason.len() > 200 {
        return Err(anyhow!("--reason must be one line of at most 200 bytes"));
    }
    let tx = c.transaction()?;
    let closed = tollgate_core::sessions::close_by_admin(&tx, ids, reason, now())?;
    if let Some(id) = ids.iter().find(|id| !closed.contains(id)) {
        return Err(if accounting::session_exists(&tx, *id)? {
            anyhow!("session {id} is already closed: nothing changed")
        } else {
            anyhow!("no session {id}: nothing changed")
        });
    }
    tx.commit()?;
    for id in closed {
        println!("closed session {id}");
    }
    Ok(0)
}

pub fn usage(c: &Db, user: Option<String>, json: bool) -> Result<()> {
    if let Some(u) = &user {
        id_of(c, Kind::User, u)?;
    }
    let rows = usage_rows(c, user.as_deref(), now())?;
    out::listing(json, rows, &["USER", "PLAN", "PERIOD", "USED", "QUOTA", "TOTAL"], |r| {
        let used = r["period_bytes"].as_i64().unwrap_or(0);
        vec![
            out::text(r, "user"),
            out::text(r, "plan"),
            out::text(r, "period"),
            match r["quota_bytes"].as_i64() {
                Some(q) => format_size_of(used, q),
                None => format_size(used),
            },
            match r["quota_bytes"].as_i64() {
                Some(q) if q > 0 => format!("{} ({:.0}%)", format_size(q), used as f64 * 100.0 / q as f64),
                Some(q) => format_size(q),
                None => "unlimited".into(),
            },
            format_size(r["total_bytes"].as_i64().unwrap_or(0)),
        ]
    });
    Ok(())
}

/// `tollgate usage`'s rows (one user, or all), as at time `t`; metrics
/// counts from the same rows.
pub fn usage_rows(c: &Db, user: Option<&str>, t: i64) -> Result<Vec<Value>> {
    Ok(accounting::usage(c, user, t)?
        .into_iter()
        .map(|u| {
            let (pin, pout) = (u.period_bytes_in, u.period_bytes_out);
            json!({
                "user": u.user,
                "plan": u.plan,
                "period": u.period.as_str(),
                "period_start": if u.period_start == 0 { Value::Null } else { json!(format_time(u.period_start)) },
                "period_bytes_in": pin,
                "period_bytes_out": pout,
                "period_bytes": pin + pout,
                "quota_bytes": u.quota_bytes,
                "quota_left_bytes": u.quota_bytes.map(|q| (q - pin - pout).max(0)),
                "total_bytes_in": u.total_bytes_in,
                "total_bytes_out": u.total_bytes_out,
                "total_bytes": u.total_bytes_in + u.total_bytes_out,
            })
        })
        .collect())
}

pub fn sweep(
    store: &mut Store,
    cfg: &Config,
    management: Option<String>,
    status: Option<PathBuf>,
    server: Option<String>,
    json: bool,
) -> Result<()> {
    let server = server
        .or_else(|| cfg.server.clone())
        .ok_or_else(|| anyhow!("no server: pass --server or set `server` in the config"))?;
    // The command line overrides the config; a --management given alone
    // still falls back on the config's status file.
    let (management, status) = match (management, status) {
        (None, None) => (cfg.management.clone(), cfg.status_file.clone()),
        (Some(m), None) => (Some(m), cfg.status_file.clone()),
        given => given,
    };
    let t = now();
    let started = std::time::Instant::now();
    let result = sweep_once(store, cfg, &server, management, status, json, t);
    // What metrics reports as this server's last sweep; a sweep that
    // failed is recorded too (ok = 0), and failing to record it is not a
    // reason to hide the sweep's own outcome.
    let _ = accounting::record_sweep(&store.conn, &server, t, started.elapsed().as_millis() as i64, result.is_ok());
    result
}

fn sweep_once(
    store: &mut Store,
    cfg: &Config,
    server: &str,
    management: Option<String>,
    status: Option<PathBuf>,
    json: bool,
    t: i64,
) -> Result<()> {
    // What the sweep could not do. The spool is replayed and events pruned
    // whatever happens; then this is the sweep's error (exit 1, and
    // metrics' tollgate_sweep_last_success 0).
    let mut problem = None;
    let mut conn = None;
    let mut live: Option<mgmt::Status> = None;
    if let Some(addr) = &management {
        match Management::connect(addr).and_then(|mut m| Ok((m.status()?, m))) {
            Ok((s, m)) => {
                live = Some(s);
                conn = Some(m);
            }
            Err(e) => {
                problem = Some(format!("management interface unreachable ({e:#}): nobody could be cut"));
            }
        }
    }
    if live.is_none() {
        if let Some(path) = &status {
            match std::fs::read_to_string(path)
                .map_err(|e| anyhow!("cannot read status file {}: {e}", path.display()))
                .and_then(|text| mgmt::parse_status(&text))
            {
                Ok(s) => {
                    if problem.is_some() {
                        eprintln!("tollgate: read the status file {} instead", path.display());
                    }
                    live = Some(s);
                }
                Err(e) => {
                    let e = format!("{e:#}: no session charged");
                    problem = Some(match problem {
                        Some(p) => format!("{p}; {e}"),
                        None => e,
                    });
                }
            }
        }
    }
    if management.is_none() && status.is_none() {
        problem = Some(
            "neither a management interface nor a status file (set `management` or `status_file` in the config, \
             or pass --management or --status): no session charged, nobody cut"
                .into(),
        );
    }
    let can_kill = conn.is_some();
    let mut killer = |c: &LiveClient| -> Result<()> {
        let m = conn.as_mut().ok_or_else(|| anyhow!("no management interface"))?;
        m.kill(c.client_id.ok_or_else(|| anyhow!("no client id for {}", c.username))?)
    };
    let kill: Option<tollgate_core::sweep::Kill> = if can_kill { Some(&mut killer) } else { None };
    // Before the cuts: a tunnel the provider no longer admits is cut below.
    let (rechecked, sso_problem) = recheck_sso(store, cfg, server, live.as_ref(), t);
    if let Some(p) = sso_problem {
        problem = Some(match problem {
            Some(q) => format!("{q}; {p}"),
            None => p,
        });
    }
    let mut rep = core_sweep::run(store, cfg, server, live.as_ref(), kill, t)?;
    rep.sso_rechecked = rechecked;
    if json {
        out::json(&serde_json::to_value(&rep)?);
    } else {
        print_report(&rep, live.is_some(), can_kill);
    }
    match problem {
        Some(p) => Err(anyhow!("sweep incomplete: {p}")),
        None => Ok(()),
    }
}

/// Ask the provider again, with the refresh token of each user's latest
/// sign-in, about the single sign-on users with a live tunnel on `server`
/// last checked `recheck_every` ago. A "no" (out of the required group,
/// signed in as someone else, the token refused with invalid_grant: the
/// account or its session gone) is recorded on the user's grant, so that
/// the sweep cuts their tunnels and a renegotiation is refused until they
/// sign in again. A provider that cannot answer changes
/// nothing: the tunnels stay as they are, the sweep reports the problem
/// (exit 1) and stops asking (one timeout per sweep, not one per tunnel);
/// the user it failed on is asked about again `recheck_every` later, the
/// others at the next sweep. Returns the users checked.
fn recheck_sso(
    store: &Store,
    cfg: &Config,
    server: &str,
    live: Option<&mgmt::Status>,
    now: i64,
) -> (usize, Option<String>) {
    use crate::oidc_client::{Provider, Refused};
    use tollgate_core::directory::Answer;
    use tollgate_core::oidc;
    let (Some(o), Some(live)) = (&cfg.oidc, live) else { return (0, None) };
    let Some(every) = o.recheck_every_secs else { return (0, None) };
    let before = now - every as i64;
    let due = match oidc::grants_due(store, server, before) {
        Ok(due) => due,
        Err(e) => return (0, Some(format!("single sign-on recheck: {e:#}"))),
    };
    let is_live = |g: &oidc::Grant| live.clients.iter().any(|c| c.username == g.username);
    let due: Vec<_> = due.into_iter().filter(is_live).collect();
    if due.is_empty() {
        return (0, None);
    }
    let unanswered = |n: usize, e: &anyhow::Error| {
        format!("identity provider {} ({e:#}): {n} single sign-on user(s) not rechecked", o.issuer)
    };
    let provider = match Provider::discover(o) {
        Ok(p) => p,
        Err(e) => return (0, Some(unanswered(due.len(), &e))),
    };
    let mut checked = 0;
    for (i, g) in due.iter().enumerate() {
        match oidc::claim_grant(store, server, g, before, now) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => return (checked, Some(format!("single sign-on recheck: {e:#}"))),
        }
        let verdict = match provider.refresh(o, &g.refresh_token) {
            Ok(t) => match oidc::identity(&t.claims, o, &g.username) {
                Answer::Accept { .. } => Ok(t.refresh_token.unwrap_or_default()),
                Answer::NotInGroup { group } => Err(format!("not a member of the required group {group}")),
                Answer::Reject { reason } => Err(reason),
                other => Err(format!("unexpected answer {other:?}")),
            },
            Err(e) if e.downcast_ref::<Refused>().is_some() => Err(format!("{e:#}")),
            Err(e) => return (checked, Some(unanswered(due.len() - i, &e))),
        };
        let verdict = verdict.as_deref().map_err(String::as_str);
        if let Err(e) = oidc::grant_checked(store, server, g, verdict, now) {
            return (checked, Some(format!("single sign-on recheck: {e:#}")));
        }
        checked += 1;
    }
    (checked, None)
}

fn print_report(rep: &core_sweep::Report, live: bool, can_kill: bool) {
    if live {
        println!(
            "{} live client(s); charged {} to {} session(s); closed {} lost session(s)",
            rep.live_clients,
            format_size(rep.charged_bytes),
            rep.charged_sessions,
            rep.lost_closed
        );
        if rep.unreadable_rows > 0 {
            println!(
                "warning: {} status row(s) could not be read, so no session was closed as lost this time",
                rep.unreadable_rows
            );
        }
    }
    for k in &rep.killed {
        let what = if k.done {
            "killed"
        } else if can_kill {
            "FAILED to kill"
        } else {
            "would kill"
        };
        println!("{what} {}: {}", k.user, k.reason);
    }
    if rep.sso_rechecked > 0 {
        println!("asked the identity provider again about {} single sign-on user(s)", rep.sso_rechecked);
    }
    if rep.spool_replayed > 0 {
        println!("applied {} spooled disconnect record(s)", rep.spool_replayed);
    }
    if rep.events_pruned > 0 {
        println!("pruned {} old auth event(s)", rep.events_pruned);
    }
}
