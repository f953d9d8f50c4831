//! Sessions and accounting: opening a session at client-connect (with the
//! connection limit re-checked under the write lock), charging bytes to the
//! per-period usage counters, closing sessions idempotently, and the spool
//! that keeps a disconnect record when the database cannot be written.

use crate::db::{params, Optional, Tx};
use crate::policy::{AuthFacts, Deny, UserFacts};
use crate::quota::Period;
use crate::standing::{self, Checkpoint};
use crate::store::Store;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What client-connect alone needs about the user, read inside its
/// transaction; the rest (may the user connect, expiries, the plan's
/// limits) is the account loaded for `standing::check`.
#[derive(Debug, Clone, Default)]
pub struct ConnectFacts {
    pub static_ip: Option<String>,
    pub push: Vec<String>,
    pub redirect_gateway: bool,
}

/// Pure: may this connection open (the account's standing at connect), and
/// with which directives for OpenVPN? `netmask` is the tunnel's netmask
/// (OpenVPN's `ifconfig_netmask`).
pub fn decide_connect(account: &AuthFacts, f: &ConnectFacts, now: i64, netmask: &str) -> Result<Vec<String>, Deny> {
    if let Some(d) = standing::check(account, Checkpoint::Connect, now) {
        return Err(d);
    }
    let mut out = Vec::new();
    if let Some(t) = account.user.as_ref().and_then(|u| session_timeout(u, now)) {
        out.push(format!("session-timeout {t}"));
    }
    if let Some(ip) = &f.static_ip {
        out.push(format!("ifconfig-push {ip} {netmask}"));
    }
    if f.redirect_gateway {
        out.push("push \"redirect-gateway def1\"".to_string());
    }
    for p in &f.push {
        out.push(format!("push \"{p}\""));
    }
    Ok(out)
}

/// The plan's session limit or the time left until the account or plan
/// expires, whichever is shorter (at least 1 second).
pub fn session_timeout(u: &UserFacts, now: i64) -> Option<i64> {
    let plan = u.plan.as_ref();
    [
        plan.and_then(|p| p.max_session_secs),
        u.expires_at.map(|t| t - now),
        plan.and_then(|p| p.expires_at).map(|t| t - now),
    ]
    .into_iter()
    .flatten()
    .min()
    .map(|t| t.max(1))
}

/// Identifies one tunnel across client-connect, client-disconnect and the
/// management interface: OpenVPN's `time_unix` is the status's
/// "Connected Since (time_t)".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionKey {
    pub username: String,
    pub server: String,
    pub connected_at: i64,
    pub real_ip: String,
    pub real_port: i64,
    /// OpenVPN's `session_id` (auth-gen-token), kept only for a client
    /// that sent no username: the sign-in it made names the tunnel's user
    /// (`resolve_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_session: Option<String>,
}

/// A tunnel whose client sent no username is the user it signed in as
/// (true); any other key stays as OpenVPN named it.
pub fn resolve_key(conn: &crate::db::Db, key: &mut SessionKey) -> Result<bool> {
    if let Some(sid) = &key.token_session {
        if let Some(name) = crate::oidc::tunnel_user(conn, &key.server, sid)? {
            key.username = name;
            return Ok(true);
        }
    }
    Ok(false)
}

/// For a tunnel whose client sent no username: the name its client sends
/// with the session token at renegotiation. OpenVPN's client keeps a
/// token only with a username to send it with; OpenVPN's server then
/// checks the token as one issued to no username (session_state
/// `AuthenticatedEmptyUser`), and the sign-in names the user again.
pub fn token_user_directive(username: &str) -> String {
    format!("push \"auth-token-user {}\"", data_encoding::BASE64.encode(username.as_bytes()))
}

#[derive(Clone)]
pub struct OpenRequest {
    pub key: SessionKey,
    pub vpn_ip: Option<String>,
    pub platform: Option<String>,
    pub client_version: Option<String>,
    pub netmask: String,
    pub now: i64,
    /// When this OpenVPN process started (`daemon_start_time`).
    pub server_started: Option<i64>,
}

/// client-connect: re-check and open the session in one write transaction,
/// so two simultaneous logins cannot both pass a limit of one. The key is
/// taken as resolved (`resolve_key`).
pub fn open(store: &mut Store, r: &OpenRequest) -> Result<Result<Vec<String>, Deny>> {
    let tx = store.write_tx()?;
    let server_id: Option<i64> =
        tx.query_row("SELECT id FROM servers WHERE name = ?1", [&r.key.server], |x| x.get(0)).optional()?;
    let row = tx
        .query_row(
            "SELECT u.static_ip, g.push, coalesce(g.redirect_gateway, 0)
               FROM users u LEFT JOIN groups g ON g.id = u.group_id WHERE u.name = ?1",
            [&r.key.username],
            |x| {
                Ok(ConnectFacts {
                    static_ip: x.get(0)?,
                    push: x
                        .get::<_, Option<String>>(1)?
                        .map(|p| p.lines().map(str::to_string).collect())
                        .unwrap_or_default(),
                    redirect_gateway: x.get(2)?,
                })
            },
        )
        .optional()?;
    // Open sessions of this server from before its OpenVPN started belong
    // to a process that is gone (crash, kill -9, reboot without a sweep):
    // nothing else would close them, and they would count against limits.
    if let (Some(id), Some(started)) = (server_id, r.server_started) {
        close_stale(&tx, id, started, r.now)?;
    }
    // Counted under the write lock: two logins racing cannot both pass.
    let account = crate::auth::load_with(&tx, &r.key.username, &r.key.server, r.now, Default::default())?.facts;
    let (Some(facts), Some(user_id)) = (row, account.user.as_ref().map(|u| u.id)) else {
        tx.commit()?;
        return Ok(Err(Deny::UnknownUser));
    };
    // What the post-auth program chose for this tunnel at login wins over
    // the account's own group and address; it is used once.
    let mut facts = facts;
    if let Some(id) = server_id {
        let chosen = tx
            .query_row(
                "SELECT a.group_id, a.static_ip, g.push, coalesce(g.redirect_gateway, 0)
                   FROM assignments a LEFT JOIN groups g ON g.id = a.group_id
                  WHERE a.server_id = ?1 AND a.real_ip = ?2 AND a.real_port = ?3 AND a.user_id = ?4
                    AND a.expires_at > ?5",
                params![id, r.key.real_ip, r.key.real_port, user_id, r.now],
                |x| {
                    Ok((
                        x.get::<_, Option<i64>>(0)?,
                        x.get::<_, Option<String>>(1)?,
                        x.get::<_, Option<String>>(2)?,
                        x.get::<_, bool>(3)?,
                    ))
                },
            )
            .optional()?;
        if let Some((group, ip, push, redirect)) = chosen {
            if group.is_some() {
                facts.push = push.map(|p| p.lines().map(str::to_string).collect()).unwrap_or_default();
                facts.redirect_gateway = redirect;
            }
            if ip.is_some() {
                facts.static_ip = ip;
            }
        }
        tx.execute(
            "DELETE FROM assignments WHERE server_id = ?1 AND real_ip = ?2 AND real_port = ?3",
            params![id, r.key.real_ip, r.key.real_port],
        )?;
    }
    let decision = decide_connect(&account, &facts, r.now, &r.netmask);
    if decision.is_ok() {
        tx.execute(
            "INSERT INTO sessions (user_id, server_id, connected_at, real_ip, real_port, vpn_ip, platform, client_version,
                                   token_session)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                user_id,
                server_id,
                r.key.connected_at,
                r.key.real_ip,
                r.key.real_port,
                // The address pushed, else the one OpenVPN's pool gave.
                facts.static_ip.as_ref().or(r.vpn_ip.as_ref()),
                r.platform,
                r.client_version,
                r.key.token_session
            ],
        )?;
    }
    tx.commit()?;
    Ok(decision)
}

/// Close the open sessions of a server that started at `started` and
/// opened before then. Their last bytes are unknown: what the sweep charged
/// stays charged. Returns how many were closed.
pub fn close_stale(tx: &Tx, server_id: i64, started: i64, now: i64) -> Result<usize> {
    Ok(tx
        .prepare_cached(
            "UPDATE sessions SET closed_at = CASE WHEN ?3 > connected_at THEN ?3 ELSE connected_at END, close_reason = 'server restarted'
              WHERE server_id = ?1 AND closed_at IS NULL AND connected_at < ?2",
        )?
        .execute(params![server_id, started, now])?)
}

/// Close open sessions by hand (`tollgate sessions close`), or every open
/// session of a server that is being deleted. Returns the ids closed.
pub fn close_by_admin(tx: &Tx, ids: &[i64], reason: &str, now: i64) -> Result<Vec<i64>> {
    let mut closed = Vec::new();
    for id in ids {
        let n = tx
            .prepare_cached(
                "UPDATE sessions SET closed_at = CASE WHEN ?2 > connected_at THEN ?2 ELSE connected_at END, close_reason = ?3
                  WHERE id = ?1 AND closed_at IS NULL",
            )?
            .execute(params![id, now, reason])?;
        if n == 1 {
            closed.push(*id);
        }
    }
    Ok(closed)
}

/// Whether `server` has an open session from this address and port: an
/// auth from there is the renegotiation of a live tunnel.
pub fn tunnel_is_open(store: &Store, server: &str, ip: &str, port: i64) -> Result<bool> {
    Ok(store
        .conn
        .prepare_cached(
            "SELECT 1 FROM sessions s JOIN servers v ON v.id = s.server_id
              WHERE s.closed_at IS NULL AND s.real_ip = ?2 AND s.real_port = ?3 AND v.name = ?1 LIMIT 1",
        )?
        .query_row(params![server, ip, port], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Find the open session for a key. Several rows could match only for two
/// tunnels from the same address and port in the same second; the oldest
/// is taken.
fn find_open(tx: &Tx, k: &SessionKey) -> Result<Option<(i64, i64, i64, i64)>> {
    Ok(tx
        .prepare_cached(
            "SELECT s.id, s.user_id, s.charged_in, s.charged_out FROM sessions s JOIN users u ON u.id = s.user_id
               LEFT JOIN servers v ON v.id = s.server_id
              WHERE u.name = ?1 AND s.closed_at IS NULL AND s.connected_at = ?2
                AND s.real_ip IS NOT DISTINCT FROM ?3 AND s.real_port IS NOT DISTINCT FROM ?4
                AND v.name IS NOT DISTINCT FROM ?5
              ORDER BY s.id LIMIT 1",
        )?
        .query_row(params![k.username, k.connected_at, k.real_ip, k.real_port, k.server], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?)
}

/// Add the bytes a session moved since it was last charged to the user's
/// usage row for the current period of every quota period in use (the
/// user's plan period, and 'total' always). Counters only ever grow.
pub fn charge(
    tx: &Tx,
    session_id: i64,
    user_id: i64,
    charged: (i64, i64),
    live: (i64, i64),
    now: i64,
) -> Result<(i64, i64)> {
    let d_in = (live.0 - charged.0).max(0);
    let d_out = (live.1 - charged.1).max(0);
    if d_in == 0 && d_out == 0 {
        return Ok((0, 0));
    }
    let period: Option<String> = tx
        .prepare_cached("SELECT p.period FROM users u JOIN plans p ON p.id = u.plan_id WHERE u.id = ?1")?
        .query_row([user_id], |r| r.get(0))
        .optional()?;
    let mut starts = vec![0];
    if let Some(p) = period.as_deref().and_then(Period::parse) {
        starts.push(p.start(now));
    }
    starts.dedup();
    for start in starts {
        tx.prepare_cached(
            "INSERT INTO usage (user_id, period_start, bytes_in, bytes_out) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (user_id, period_start) DO UPDATE
               SET bytes_in = usage.bytes_in + excluded.bytes_in, bytes_out = usage.bytes_out + excluded.bytes_out",
        )?
        .execute(params![user_id, start, d_in, d_out])?;
    }
    tx.prepare_cached(
        "UPDATE sessions SET charged_in = charged_in + ?2, charged_out = charged_out + ?3,
                bytes_in = CASE WHEN ?4 > bytes_in THEN ?4 ELSE bytes_in END,
                bytes_out = CASE WHEN ?5 > bytes_out THEN ?5 ELSE bytes_out END WHERE id = ?1",
    )?
    .execute(params![session_id, d_in, d_out, live.0, live.1])?;
    Ok((d_in, d_out))
}

/// A client-disconnect record: also the spool's file format.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CloseRecord {
    pub key: SessionKey,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub closed_at: i64,
    pub reason: String,
}

/// client-disconnect: charge the final bytes and close. Idempotent: a
/// session already closed, or never opened (client-connect refused it),
/// is not an error. Returns whether a session was closed.
pub fn close(store: &mut Store, rec: &CloseRecord) -> Result<bool> {
    let tx = store.write_tx()?;
    let mut key = rec.key.clone();
    resolve_key(&tx, &mut key)?;
    let Some((id, user_id, cin, cout)) = find_open(&tx, &key)? else {
        tx.commit()?;
        return Ok(false);
    };
    charge(&tx, id, user_id, (cin, cout), (rec.bytes_in, rec.bytes_out), rec.closed_at)?;
    tx.execute(
        "UPDATE sessions SET closed_at = ?2, close_reason = ?3 WHERE id = ?1",
        params![id, rec.closed_at, rec.reason],
    )?;
    tx.commit()?;
    Ok(true)
}

/// Keep a record for later (one file per record, written atomically).
/// `durable`: synced to disk before the rename, so that it outlives a
/// power loss; without, it outlives the crash of any process.
/// `dir` is `Config::spool_dir`.
pub fn spool(dir: &Path, rec: &CloseRecord, durable: bool) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = format!(
        "{}-{}-{}.json",
        rec.closed_at,
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
    );
    let path = dir.join(name);
    let body = serde_json::to_vec(rec)?;
    let written =
        if durable { crate::openvpn::write_durable(&path, &body) } else { crate::openvpn::write_atomic(&path, &body) };
    written.with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Sync a record spooled without `durable` (and its directory entry) to
/// disk, for one that will wait there a while.
pub fn sync_spooled(path: &Path) -> Result<()> {
    let sync = |p: &Path| std::fs::File::open(p).and_then(|f| f.sync_all());
    sync(path).with_context(|| format!("cannot sync {}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    sync(dir).with_context(|| format!("cannot sync {}", dir.display()))
}

/// A spooled record is a few hundred bytes; anything much larger is not one.
const MAX_SPOOL_RECORD: u64 = 64 * 1024;
/// A temporary file older than this was left by a writer that died.
const STALE_TMP_SECS: i64 = 3600;

/// Apply spooled records (oldest first) and remove each once applied.
/// Records younger than `min_age_secs` are left to the deferred
/// client-disconnect that wrote them and is still at work (applying one
/// twice is harmless, since `close` is idempotent, but wasted).
/// Returns how many were applied. A record that no longer parses is moved
/// aside (`.bad`), never deleted; temporary files of writers that died are
/// removed. The sweep runs this as root in a directory the OpenVPN user
/// owns: the directory is opened without following a link and every entry
/// is reached through it (`safefs::Dir`). A record that disappears meanwhile
/// was applied by a concurrent client-disconnect (`close` is idempotent).
pub fn replay_spool(store: &mut Store, path: &Path, min_age_secs: i64) -> Result<usize> {
    let Some(dir) = crate::safefs::Dir::open(path).with_context(|| format!("spool {}", path.display()))? else {
        return Ok(0);
    };
    let now = crate::units::now();
    let mut names = dir.names().with_context(|| format!("cannot list {}", path.display()))?;
    names.sort();
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let mut n = 0;
    for name in names {
        if name.starts_with(b".") && name.ends_with(b".tmp") {
            if dir.age_secs(&name, now).is_ok_and(|age| age > STALE_TMP_SECS) {
                let _ = dir.remove(&name);
            }
            continue;
        }
        if !name.ends_with(b".json") {
            continue;
        }
        if min_age_secs > 0 && dir.age_secs(&name, now).map_or(true, |age| age < min_age_secs) {
            continue;
        }
        let body = match dir.read(&name, MAX_SPOOL_RECORD) {
            Ok(b) => b,
            Err(e) if gone(&e) => continue,
            Err(_) => {
                set_aside(&dir, &name);
                continue;
            }
        };
        match serde_json::from_slice::<CloseRecord>(&body) {
            Ok(rec) => {
                close(store, &rec)?;
                match dir.remove(&name) {
                    Ok(()) => n += 1,
                    Err(e) if gone(&e) => {}
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("cannot remove {}/{}", path.display(), String::from_utf8_lossy(&name))
                        })
                    }
                }
            }
            Err(_) => set_aside(&dir, &name),
        }
    }
    Ok(n)
}

/// `NAME.json` → `NAME.bad`, kept for the admin.
fn set_aside(dir: &crate::safefs::Dir, name: &[u8]) {
    let mut bad = name[..name.len() - ".json".len()].to_vec();
    bad.extend_from_slice(b".bad");
    let _ = dir.rename(name, &bad);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PlanFacts;

    const NOW: i64 = 1_800_000_000;

    fn facts() -> ConnectFacts {
        ConnectFacts::default()
    }

    /// Plan p: expiring at `expires_at`, with these limits.
    fn plan(expires_at: Option<i64>, max_connections: Option<i64>, max_session_secs: Option<i64>) -> PlanFacts {
        PlanFacts {
            name: "p".into(),
            expires_at,
            quota_bytes: None,
            period: Period::Month,
            max_connections,
            max_session_secs,
        }
    }

    fn account(f: impl FnOnce(&mut UserFacts)) -> AuthFacts {
        let mut u = crate::policy::UserFacts {
            id: 1,
            name: "alice".into(),
            enabled: true,
            granted: true,
            ..Default::default()
        };
        f(&mut u);
        AuthFacts { server: "nl-1".into(), server_known: true, user: Some(u) }
    }

    #[test]
    fn plain_connect_has_no_directives() {
        assert_eq!(decide_connect(&account(|_| {}), &facts(), NOW, "255.255.255.0"), Ok(vec![]));
    }

    #[test]
    fn directives() {
        let f = ConnectFacts {
            static_ip: Some("10.99.0.50".into()),
            push: vec!["route 10.1.0.0 255.255.0.0".into()],
            redirect_gateway: true,
        };
        let eight_hours = account(|u| u.plan = Some(plan(None, None, Some(8 * 3600))));
        assert_eq!(
            decide_connect(&eight_hours, &f, NOW, "255.255.255.0").unwrap(),
            vec![
                "session-timeout 28800",
                "ifconfig-push 10.99.0.50 255.255.255.0",
                "push \"redirect-gateway def1\"",
                "push \"route 10.1.0.0 255.255.0.0\"",
            ]
        );
    }

    #[test]
    fn session_timeout_is_the_shortest_limit() {
        let user = |a: AuthFacts| a.user.unwrap();
        let u = user(account(|u| {
            u.plan = Some(plan(None, None, Some(3600)));
            u.expires_at = Some(NOW + 600)
        }));
        assert_eq!(session_timeout(&u, NOW), Some(600));
        let u = user(account(|u| u.plan = Some(plan(Some(NOW + 600), None, Some(60)))));
        assert_eq!(session_timeout(&u, NOW), Some(60));
        assert_eq!(session_timeout(&user(account(|_| {})), NOW), None);
    }

    /// client-connect asks the same standing question as auth-verify: a
    /// plan that expired between login and connect refuses, as does a full
    /// connection count.
    #[test]
    fn refusals() {
        let plan = |f: &mut UserFacts, exp: Option<i64>, max: Option<i64>| f.plan = Some(plan(exp, max, None));
        let d = |a: AuthFacts| decide_connect(&a, &facts(), NOW, "m");
        assert_eq!(d(account(|u| u.enabled = false)), Err(Deny::Disabled));
        assert_eq!(d(account(|u| u.expires_at = Some(NOW))), Err(Deny::AccountExpired { at: NOW }));
        assert_eq!(
            d(account(|u| plan(u, Some(NOW - 1), None))),
            Err(Deny::PlanExpired { plan: "p".into(), at: NOW - 1 })
        );
        assert_eq!(
            d(account(|u| {
                plan(u, None, Some(1));
                u.open_sessions = 1
            })),
            Err(Deny::TooManySessions { open: 1, max: 1 })
        );
        assert!(d(account(|u| {
            plan(u, None, Some(2));
            u.open_sessions = 1
        }))
        .is_ok());
    }
}
