//! User accounts as the admin manages them: the store's side of `tollgate
//! user` and `tollgate mfa`. (A login's view of the account is
//! standing.rs; its password and second factor checks are auth.rs.)

use crate::db::{params, Db, Optional, ToSql};
use crate::servers::{self, Grantee};
use anyhow::{bail, Result};

/// A user as `user add` creates it.
#[derive(Clone)]
pub struct NewUser<'a> {
    pub name: &'a str,
    pub password_hash: &'a str,
    pub enabled: bool,
    pub plan_id: Option<i64>,
    pub group_id: Option<i64>,
    pub expires_at: Option<i64>,
    pub all_servers: bool,
    pub static_ip: Option<&'a str>,
    /// `None`: the group's or the config's.
    pub auth_method: Option<&'a str>,
}

pub fn exists(db: &Db, name: &str) -> Result<bool> {
    Ok(db.query_row("SELECT 1 FROM users WHERE name = ?1", [name], |_| Ok(())).optional()?.is_some())
}

/// Insert the user (the plan starts now) and grant `servers`; returns its id.
pub fn add(db: &Db, u: &NewUser, servers: &[String], now: i64) -> Result<i64> {
    let id: i64 = db.query_row(
        "INSERT INTO users (name, password_hash, enabled, plan_id, plan_since, group_id, expires_at,
                            all_servers, static_ip, created_at, updated_at, auth_method)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11) RETURNING id",
        params![
            u.name,
            u.password_hash,
            u.enabled,
            u.plan_id,
            u.plan_id.map(|_| now),
            u.group_id,
            u.expires_at,
            u.all_servers,
            u.static_ip,
            now,
            u.auth_method
        ],
        |r| r.get(0),
    )?;
    servers::grant(db, Grantee::User(id), servers)?;
    Ok(id)
}

/// One change `user set` (and enable, disable, unlock, passwd) makes.
pub enum Change<'a> {
    /// A new plan (its period and lifetime start now), or none.
    Plan(Option<i64>),
    Group(Option<i64>),
    Expires(Option<i64>),
    StaticIp(Option<&'a str>),
    MaxDevices(Option<i64>),
    DeviceBinding(Option<&'a str>),
    AllServers(bool),
    AuthMethod(Option<&'a str>),
    Enabled(bool),
    PasswordHash(&'a str),
    /// Failures forgotten, lock lifted.
    Unlock,
    /// What the post-auth program saved, forgotten.
    ClearSaved,
}

pub fn change(db: &Db, id: i64, c: Change, now: i64) -> Result<()> {
    let set = |col: &str, v: &dyn ToSql| -> Result<()> {
        db.execute(&format!("UPDATE users SET {col} = ?2, updated_at = ?3 WHERE id = ?1"), params![id, v, now])?;
        Ok(())
    };
    match c {
        Change::Plan(p) => {
            set("plan_id", &p)?;
            set("plan_since", &p.map(|_| now))
        }
        Change::Group(g) => set("group_id", &g),
        Change::Expires(e) => set("expires_at", &e),
        Change::StaticIp(ip) => set("static_ip", &ip),
        Change::MaxDevices(n) => set("max_devices", &n),
        Change::DeviceBinding(m) => set("device_binding", &m),
        Change::AllServers(all) => set("all_servers", &all),
        Change::AuthMethod(m) => set("auth_method", &m),
        // Disabling an account, or giving it a new password, signs it out
        // of the self-service site everywhere.
        Change::Enabled(on) => {
            if !on {
                crate::selfservice::end_sessions(db, id)?;
            }
            set("enabled", &on)
        }
        Change::PasswordHash(h) => {
            crate::selfservice::end_sessions(db, id)?;
            set("password_hash", &h)
        }
        Change::ClearSaved => set("saved", &None::<String>),
        Change::Unlock => {
            db.execute(
                "UPDATE users SET failed_count = 0, failed_since = NULL, locked_until = NULL, updated_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            Ok(())
        }
    }
}

/// Is the stored hash the "no password" marker (a directory, program or
/// single sign-on user)?
pub fn has_no_password(db: &Db, id: i64) -> Result<bool> {
    Ok(db.query_row(
        "SELECT password_hash = ?2 FROM users WHERE id = ?1",
        params![id, crate::password::NO_PASSWORD],
        |r| r.get(0),
    )?)
}

/// Refuse a static address another user already has: OpenVPN would give
/// both the same address and route to one of them.
pub fn static_ip_free(db: &Db, ip: &str, user_id: Option<i64>) -> Result<()> {
    let other: Option<String> = db
        .query_row(
            "SELECT name FROM users WHERE static_ip = ?1 AND id IS DISTINCT FROM ?2",
            params![ip, user_id],
            |r| r.get(0),
        )
        .optional()?;
    match other {
        Some(name) => bail!("static IP {ip} is already user {name}'s"),
        None => Ok(()),
    }
}

pub fn delete(db: &Db, id: i64) -> Result<()> {
    db.execute("DELETE FROM users WHERE id = ?1", [id])?;
    Ok(())
}

/// A user as stored, for `user list` and `user show` (which work out its
/// state and auth method from it).
#[derive(Clone, Debug)]
pub struct UserRow {
    pub name: String,
    pub enabled: bool,
    pub plan: Option<String>,
    pub group: Option<String>,
    pub expires_at: Option<i64>,
    /// The user's or its group's.
    pub all_servers: bool,
    pub static_ip: Option<String>,
    pub device_binding: Option<String>,
    pub max_devices: Option<i64>,
    /// `off`, `pending` (enrolled, not confirmed) or `totp`.
    pub mfa_state: String,
    pub failed_count: i64,
    pub failed_since: Option<i64>,
    pub locked_until: Option<i64>,
    pub created_at: i64,
    pub auth_method: Option<String>,
    pub group_auth_method: Option<String>,
    /// What the post-auth program saved (JSON text).
    pub saved: Option<String>,
    pub plan_expires_at: Option<i64>,
    /// Granted to the user or its group, sorted.
    pub servers: Vec<String>,
}

/// Every user by name, or only `only`.
pub fn list(db: &Db, only: Option<&str>) -> Result<Vec<UserRow>> {
    let mut st = db.prepare(
        "SELECT u.id, u.name, u.enabled, p.name, g.name, u.expires_at, (u.all_servers <> 0 OR coalesce(g.all_servers, 0) <> 0),
                u.static_ip, u.device_binding, u.max_devices,
                CASE WHEN u.totp_secret IS NULL THEN 'off' WHEN u.totp_confirmed <> 0 THEN 'totp' ELSE 'pending' END,
                u.failed_count, u.locked_until, u.created_at, u.group_id, u.auth_method, g.auth_method, u.saved,
                u.plan_since + p.expires_after_secs, u.failed_since
           FROM users u LEFT JOIN plans p ON p.id = u.plan_id LEFT JOIN groups g ON g.id = u.group_id
          WHERE ?1 IS NULL OR u.name = ?1 ORDER BY u.name",
    )?;
    let base = st
        .query_map([only], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<i64>>(14)?,
                UserRow {
                    name: r.get(1)?,
                    enabled: r.get(2)?,
                    plan: r.get(3)?,
                    group: r.get(4)?,
                    expires_at: r.get(5)?,
                    all_servers: r.get(6)?,
                    static_ip: r.get(7)?,
                    device_binding: r.get(8)?,
                    max_devices: r.get(9)?,
                    mfa_state: r.get(10)?,
                    failed_count: r.get(11)?,
                    locked_until: r.get(12)?,
                    created_at: r.get(13)?,
                    auth_method: r.get(15)?,
                    group_auth_method: r.get(16)?,
                    saved: r.get(17)?,
                    plan_expires_at: r.get(18)?,
                    failed_since: r.get(19)?,
                    servers: Vec::new(),
                },
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    base.into_iter()
        .map(|(id, gid, mut u)| {
            u.servers = servers::granted(db, Grantee::User(id))?;
            if let Some(g) = gid {
                u.servers.extend(servers::granted(db, Grantee::Group(g))?);
            }
            u.servers.sort();
            u.servers.dedup();
            Ok(u)
        })
        .collect()
}

/// The second factor: is one on (enrolled and confirmed)?
pub fn totp_active(db: &Db, id: i64) -> Result<bool> {
    Ok(db.query_row("SELECT totp_secret IS NOT NULL AND totp_confirmed <> 0 FROM users WHERE id = ?1", [id], |r| {
        r.get(0)
    })?)
}

/// A new TOTP secret; `confirmed` turns it on at once, else it waits for
/// [`totp_confirm`].
pub fn totp_set(db: &Db, id: i64, secret: &str, confirmed: bool, now: i64) -> Result<()> {
    db.execute(
        "UPDATE users SET totp_secret = ?2, totp_confirmed = ?3, totp_last_step = NULL, updated_at = ?4 WHERE id = ?1",
        params![id, secret, confirmed, now],
    )?;
    Ok(())
}

/// Turn `secret` on, confirmed by the code of time step `step` (which
/// cannot be used again).
pub fn totp_confirm(db: &Db, id: i64, secret: &str, step: i64, now: i64) -> Result<()> {
    db.execute(
        "UPDATE users SET totp_secret = ?3, totp_confirmed = 1, totp_last_step = ?2, updated_at = ?4 WHERE id = ?1",
        params![id, step, secret, now],
    )?;
    Ok(())
}

pub fn totp_remove(db: &Db, id: i64, now: i64) -> Result<()> {
    db.execute(
        "UPDATE users SET totp_secret = NULL, totp_confirmed = 0, totp_last_step = NULL, updated_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

/// How many accounts are enabled and how many disabled.
pub fn count_by_enabled(db: &Db) -> Result<(i64, i64)> {
    Ok(db.query_row(
        "SELECT count(*) FILTER (WHERE enabled <> 0), count(*) FILTER (WHERE enabled = 0) FROM users",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// How many users a renegotiation without a session token would ask again
/// for something only a person can give: a TOTP code, a browser login.
pub fn count_interactive(db: &Db) -> Result<i64> {
    Ok(db.query_row("SELECT count(*) FROM users WHERE totp_confirmed = 1 OR auth_method = 'oidc'", [], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{id_of, Kind};
    use crate::store::{tests::temp_config, Store};
    use crate::{accounting, devices, events, groups, plans};

    /// The admin's domain functions, end to end on one store (run on
    /// SQLite and, in tests/run.sh, on PostgreSQL): what the CLI writes
    /// reads back the same.
    #[test]
    fn admin_records_round_trip() {
        let (_d, cfg) = temp_config();
        let (store, _) = Store::init(&cfg).unwrap();
        let db = &store.conn;
        let spec = servers::ServerSpec {
            host: "vpn.example.org".into(),
            port: 1194,
            proto: "udp".into(),
            ca_pem: "CA".into(),
            tls_mode: "tls-auth",
            tls_key: "KEY".into(),
            key_direction: Some(1),
            data_ciphers: None,
            extra: vec!["a 1".into(), "b 2".into()],
            client_cert: false,
            pki_dir: None,
        };
        servers::add(db, "nl-1", &spec, 100).unwrap();
        servers::add(db, "nl-2", &spec, 100).unwrap();
        let e = servers::add(db, "nl-1", &spec, 100).unwrap_err();
        assert_eq!(e.to_string(), "server nl-1 already exists");
        let nl1 = id_of(db, Kind::Server, "nl-1").unwrap();
        let mut s = servers::spec(db, nl1).unwrap();
        assert_eq!((s.tls_mode, s.key_direction, s.extra.len()), ("tls-auth", Some(1), 2));
        s.port = 443;
        servers::update(db, nl1, &s).unwrap();
        let rows = servers::list(db, Some("nl-1")).unwrap();
        assert_eq!((rows.len(), rows[0].port, rows[0].extra.as_str()), (1, 443, "a 1\nb 2"));
        assert_eq!(id_of(db, Kind::Plan, "gold").unwrap_err().to_string(), "no such plan: gold");

        plans::add(db, "gold", 100).unwrap();
        plans::set_limit(db, "gold", plans::Limit::QuotaBytes, Some(1000)).unwrap();
        plans::set_limit(db, "gold", plans::Limit::MaxConnections, Some(1)).unwrap();
        plans::set_period(db, "gold", "day").unwrap();
        let gold = id_of(db, Kind::Plan, "gold").unwrap();
        let g = groups::add(db, "staff", 100).unwrap();
        groups::set_push(db, g, &["route 10.1.0.0 255.255.0.0".into()]).unwrap();
        assert!(groups::set_push(db, g, &["bad \"quote\"".into()]).is_err());
        groups::set_auth_method(db, g, Some("local")).unwrap();
        servers::grant(db, Grantee::Group(g), &["nl-2".into()]).unwrap();

        let new = NewUser {
            name: "alice",
            password_hash: "h",
            enabled: true,
            plan_id: Some(gold),
            group_id: Some(g),
            expires_at: None,
            all_servers: false,
            static_ip: Some("10.8.0.9"),
            auth_method: None,
        };
        let alice = add(db, &new, &["nl-1".into()], 200).unwrap();
        assert!(exists(db, "alice").unwrap() && !exists(db, "bob").unwrap());
        assert!(static_ip_free(db, "10.8.0.9", None).is_err());
        static_ip_free(db, "10.8.0.9", Some(alice)).unwrap();
        change(db, alice, Change::Enabled(false), 300).unwrap();
        change(db, alice, Change::MaxDevices(Some(2)), 300).unwrap();
        change(db, alice, Change::Plan(None), 300).unwrap();
        change(db, alice, Change::Plan(Some(gold)), 300).unwrap();
        totp_set(db, alice, "SECRET", false, 300).unwrap();
        assert!(!totp_active(db, alice).unwrap());
        totp_confirm(db, alice, "SECRET", 7, 300).unwrap();
        assert!(totp_active(db, alice).unwrap());
        let u = &list(db, Some("alice")).unwrap()[0];
        assert_eq!((u.enabled, u.max_devices, u.mfa_state.as_str()), (false, Some(2), "totp"));
        assert_eq!(u.servers, ["nl-1", "nl-2"], "its own grant and its group's");
        assert_eq!(u.group_auth_method.as_deref(), Some("local"));
        servers::revoke(db, Grantee::User(alice), &["nl-1".into()]).unwrap();
        assert!(servers::revoke(db, Grantee::User(alice), &["nl-1".into()]).is_err());
        assert_eq!(count_by_enabled(db).unwrap(), (0, 1));
        assert_eq!(count_interactive(db).unwrap(), 1);
        assert_eq!(plans::count_multi_connection(db).unwrap(), 0);
        assert!(plans::delete(db, "gold").unwrap_err().to_string().contains("used by 1 user"));
        assert!(groups::delete(db, "staff", false).is_err());
        let gl = &groups::list(db, None).unwrap()[0];
        assert_eq!((gl.users, gl.servers.clone(), gl.push.len()), (1, vec!["nl-2".to_string()], 1));

        devices::approve(db, alice, "aa:bb:cc:dd:ee:ff", 400).unwrap();
        devices::approve(db, alice, "aa:bb:cc:dd:ee:ff", 400).unwrap();
        assert_eq!(devices::list(db, alice).unwrap().len(), 1);
        assert!(devices::remove(db, alice, "aa:bb:cc:dd:ee:ff").unwrap());
        assert!(!devices::remove(db, alice, "aa:bb:cc:dd:ee:ff").unwrap());

        db.execute_batch(
            "INSERT INTO auth_events (at, username, server, ip, result, kind, reason) VALUES (500, 'admin', 'nl-1', '192.0.2.7', 'deny', 'unknown_user', 'x');
             INSERT INTO source_failures (ip, failed_count, failed_since, locked_until) VALUES ('192.0.2.7', 3, 500, 900);
             INSERT INTO sessions (user_id, server_id, connected_at, bytes_in, bytes_out) VALUES (1, 1, 600, 10, 20);
             INSERT INTO usage (user_id, period_start, bytes_in, bytes_out) VALUES (1, 0, 10, 20);",
        )
        .unwrap();
        assert!(events::known_name(db, "admin").unwrap() && !events::known_name(db, "nobody").unwrap());
        assert_eq!(events::recent(db, Some("admin"), 5).unwrap()[0].ip.as_deref(), Some("192.0.2.7"));
        assert_eq!(events::counts_since(db, 0).unwrap(), [("deny".into(), "unknown_user".into(), 1)]);
        assert_eq!(events::sources(db).unwrap()[0].failed_count, 3);
        assert!(events::unblock(db, "192.0.2.7").unwrap() && !events::unblock(db, "192.0.2.7").unwrap());
        let open = accounting::SessionFilter { open_only: true, limit: 10, ..Default::default() };
        assert_eq!(accounting::sessions(db, &open).unwrap()[0].bytes_out, 20);
        assert!(accounting::session_exists(db, 1).unwrap() && !accounting::session_exists(db, 2).unwrap());
        assert_eq!(accounting::open_per_server(db).unwrap(), [("nl-1".into(), 1), ("nl-2".into(), 0)]);
        let usage = &accounting::usage(db, Some("alice"), 700).unwrap()[0];
        assert_eq!((usage.total_bytes_in, usage.total_bytes_out, usage.quota_bytes), (10, 20, Some(1000)));
        accounting::record_sweep(db, "nl-1", 800, 12, true).unwrap();
        accounting::record_sweep(db, "nl-1", 900, 7, false).unwrap();
        let sw = &accounting::last_sweeps(db).unwrap()[0];
        assert_eq!((sw.at, sw.duration_ms, sw.ok), (900, 7, false));
        assert_eq!(crate::store::newest_record_time(db).unwrap(), 600);

        let tx = store.conn.transaction().unwrap();
        assert!(servers::delete(&tx, "nl-1", false, 1000).is_err(), "an open session refuses it");
        assert_eq!(servers::delete(&tx, "nl-1", true, 1000).unwrap(), 1);
        tx.commit().unwrap();
        delete(db, alice).unwrap();
        plans::delete(db, "gold").unwrap();
        groups::delete(db, "staff", false).unwrap();
    }
}
