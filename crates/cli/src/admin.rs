//! The admin commands: arguments checked, the store's domain functions
//! called, the result printed; one clear error line each.

use crate::out;
use crate::{
    Cli, Cmd, DeviceCmd, GroupArgs, GroupCmd, GroupSet, MfaCmd, PlanArgs, PlanCmd, ServerAdd, ServerCmd, ServerSet,
    SessionsCmd, TokenCmd, UserAdd, UserCmd, UserSet,
};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use tollgate_core::auth::{self, Request};
use tollgate_core::db::Db;
use tollgate_core::events;
use tollgate_core::groups;
use tollgate_core::method::AuthMethod;
use tollgate_core::names::{check_name, id_of, Kind};
use tollgate_core::plans::{self, Limit};
use tollgate_core::policy::{check_credentials, Decision};
use tollgate_core::servers::{self, Grantee, ServerSpec};
use tollgate_core::units::{self, format_duration, format_size, format_time, now};
use tollgate_core::users::{self, Change, NewUser};
use tollgate_core::{password, store::SCHEMA_VERSION, Config, Store};

/// `tollgate migrate-store --to URL`: the copy, its proof, the next step.
fn migrate_store(cfg: &Config, from: &Store, to: &str) -> Result<()> {
    use tollgate_core::config::Database;
    if !matches!(cfg.database, Database::Sqlite(_)) {
        bail!("the configured database is already PostgreSQL: migrate-store copies an SQLite one");
    }
    let target = tollgate_core::pg::Target::parse(to).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    let to_cfg = Config { database: Database::Postgres(target), ..cfg.clone() };
    let (dest, _) = Store::init(&to_cfg)?;
    let copied = tollgate_core::store_copy::copy(from, &dest)?;
    println!("copied {} into {}:", cfg.database, to_cfg.database);
    for c in &copied {
        println!("  {:<16} {:>10} rows", c.table, c.rows);
    }
    println!("verified: every table's row count and the usage totals match");
    let file = cfg.path.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "the config".into());
    println!(
        "next: set database = \"{to}\" in {file} on this server and each server of the fleet, then run `tollgate doctor`"
    );
    Ok(())
}

/// Runs one command; returns the exit code.
pub fn run(cli: Cli) -> Result<i32> {
    // The doctor reports a config that does not load as a finding.
    if let Cmd::Doctor { openvpn_config, json } = cli.cmd {
        return crate::doctor::run(crate::doctor::DoctorArgs { config: cli.config, openvpn_config, json });
    }
    let cfg = Config::load(cli.config.as_deref())?;
    if let Cmd::Init = cli.cmd {
        let (_, before) = Store::init(&cfg)?;
        let db = &cfg.database;
        match before {
            0 => println!("created {db} (schema version {SCHEMA_VERSION})"),
            v if v == SCHEMA_VERSION => println!("{db} is up to date (schema version {v})"),
            v => println!("migrated {db} from schema version {v} to {SCHEMA_VERSION}"),
        }
        return Ok(0);
    }
    if let Cmd::Web { listen, tls_cert, tls_key, idle_exit } = cli.cmd {
        return crate::web::run(cfg, crate::web::WebArgs { listen, tls_cert, tls_key, idle_exit });
    }
    let mut store = Store::open_admin(&cfg)?;
    match cli.cmd {
        Cmd::MigrateStore { to } => migrate_store(&cfg, &store, &to)?,
        Cmd::Init | Cmd::Web { .. } | Cmd::Doctor { .. } | Cmd::Completions { .. } | Cmd::Man { .. } => unreachable!(),
        Cmd::Metrics { write } => crate::metrics::run(&store, &cfg, write.as_deref())?,
        Cmd::Server(c) => server(&mut store.conn, c)?,
        Cmd::Plan(c) => plan(&store.conn, c)?,
        Cmd::Group(c) => group(&mut store.conn, c)?,
        Cmd::User(c) => user(&mut store.conn, &cfg, c)?,
        Cmd::Mfa(c) => mfa(&store.conn, &cfg, c)?,
        Cmd::Device(c) => device(&store.conn, &cfg, c)?,
        Cmd::Token(c) => token(&store.conn, c)?,
        Cmd::Events { user, limit, json } => events(&store.conn, user, limit, json)?,
        Cmd::Blocked { json } => blocked(&store.conn, json)?,
        Cmd::Unblock { address } => {
            let ip = tollgate_core::names::canonical_ip(&address);
            if !events::unblock(&store.conn, &ip)? {
                bail!("{ip} has no failed logins on record");
            }
            println!("unblocked {ip}");
        }
        Cmd::Sessions { action: Some(SessionsCmd::Close { ids, reason }), .. } => {
            return crate::accounting::close_sessions(&mut store.conn, &ids, &reason);
        }
        Cmd::Sessions { action: None, open, user, server, limit, json } => {
            crate::accounting::sessions(&store.conn, open, user, server, limit, json)?
        }
        Cmd::Usage { user, json } => crate::accounting::usage(&store.conn, user, json)?,
        Cmd::Sweep { management, status, server, json } => {
            crate::accounting::sweep(&mut store, &cfg, management, status, server, json)?
        }
        Cmd::TestAuth { user, server, password_stdin, code, ip, hwaddr, peer, json } => {
            let mut vars = std::collections::HashMap::new();
            for p in peer {
                let (k, v) = p.split_once('=').ok_or_else(|| anyhow!("--peer takes NAME=VALUE, not {p:?}"))?;
                vars.insert(k.to_string(), v.to_string());
            }
            if let Some(h) = hwaddr {
                vars.insert(cfg.devices.source.clone(), h);
            }
            let how = TestAuthInput { password_stdin, code, ip, vars, json };
            return test_auth(&mut store, &cfg, &user, server, how);
        }
    }
    Ok(0)
}

// ---------- helpers ----------

/// `none`, `never`, `unlimited` or empty clear an optional setting.
fn cleared(v: &str) -> bool {
    matches!(v.trim(), "" | "none" | "never" | "unlimited")
}

fn opt_parse<T>(v: &Option<String>, f: impl Fn(&str) -> Result<T>) -> Result<Option<Option<T>>> {
    match v {
        None => Ok(None),
        Some(s) if cleared(s) => Ok(Some(None)),
        Some(s) => Ok(Some(Some(f(s)?))),
    }
}

/// The zero rule, the same for every limit (quota, session time,
/// connections, plan lifetime, devices): 0 is refused, since it would
/// refuse every login without saying why. `none` lifts a limit; `tollgate
/// user disable` stops a user.
const ZERO_LIMIT: &str = "a limit of 0 would refuse every login: use `none` for no limit, or `tollgate user disable`";

fn positive(s: &str) -> Result<i64> {
    match s.trim().parse::<i64>() {
        Ok(0) => bail!("{ZERO_LIMIT}"),
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("{s:?} is not a whole number"),
    }
}

fn positive_size(s: &str) -> Result<i64> {
    match units::parse_size(s)? {
        0 => bail!("{ZERO_LIMIT}"),
        n => Ok(n),
    }
}

fn positive_secs(s: &str) -> Result<i64> {
    match units::parse_duration(s)? {
        0 => bail!("{ZERO_LIMIT}"),
        n => Ok(n),
    }
}

fn read_password(from_stdin: bool, confirm: bool) -> Result<String> {
    let pw = if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("cannot read the password from stdin")?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        let ask = |p: &str| {
            rpassword::prompt_password(p)
                .map_err(|e| anyhow!("cannot prompt for a password ({e}): use --password-stdin"))
        };
        let pw = ask("Password: ")?;
        if confirm && ask("Again: ")? != pw {
            bail!("the passwords differ");
        }
        pw
    };
    password::check_new(&pw)?;
    Ok(pw)
}

fn read_pem(path: &std::path::Path, what: &str, must_contain: &str) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    if !text.contains(must_contain) {
        bail!("{} does not look like a {what} (no {must_contain:?})", path.display());
    }
    if text.contains("PRIVATE KEY") {
        bail!("{} holds a private key: give the {what} alone, it is copied into client profiles", path.display());
    }
    Ok(text)
}

// ---------- servers ----------

fn server(c: &mut Db, cmd: ServerCmd) -> Result<()> {
    match cmd {
        ServerCmd::Add(a) => server_add(c, a),
        ServerCmd::Set(a) => server_set(c, a),
        ServerCmd::List { json } => {
            out::listing(json, server_rows(c, None)?, &["NAME", "REMOTE", "TLS", "CLIENT-CERT"], |r| {
                vec![
                    out::text(r, "name"),
                    format!("{}:{}/{}", out::text(r, "host"), r["port"], out::text(r, "proto")),
                    out::text(r, "tls_mode"),
                    out::cell(&r["client_cert"]),
                ]
            });
            Ok(())
        }
        ServerCmd::Show { name, json } => {
            id_of(c, Kind::Server, &name)?;
            let r = server_rows(c, Some(&name))?.remove(0);
            if json {
                out::json(&r);
            } else {
                let s = |k: &str| out::cell(&r[k]);
                out::fields(&[
                    ("name", s("name")),
                    ("host", s("host")),
                    ("port", s("port")),
                    ("proto", s("proto")),
                    ("tls", s("tls_mode")),
                    ("key direction", s("key_direction")),
                    ("data ciphers", s("data_ciphers")),
                    ("client cert", s("client_cert")),
                    ("pki dir", s("pki_dir")),
                    ("extra", s("extra")),
                    ("created", s("created_at")),
                ]);
            }
            Ok(())
        }
        ServerCmd::Del { name, force } => {
            let tx = c.transaction()?;
            let closed = servers::delete(&tx, &name, force, now())?;
            tx.commit()?;
            match closed {
                0 => println!("deleted server {name}"),
                n => println!("deleted server {name} (closed {n} open session(s))"),
            }
            Ok(())
        }
    }
}

/// A static key file's text, or why it is not one.
fn tls_key(mode: &'static str, path: &Path) -> Result<(&'static str, String)> {
    let key = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !key.contains("BEGIN OpenVPN Static key V1") {
        bail!("{} is not an OpenVPN static key (openvpn --genkey {mode} FILE)", path.display());
    }
    Ok((mode, key))
}

/// Stored absolute: gen-ovpn may run from anywhere.
fn pki_dir(d: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(d).with_context(|| format!("--pki-dir {}", d.display()))
}

fn server_add(c: &Db, a: ServerAdd) -> Result<()> {
    check_name("server", &a.name)?;
    let (tls_mode, tls_key) = match (&a.tls_crypt, &a.tls_auth) {
        (Some(p), None) => tls_key("tls-crypt", p)?,
        (None, Some(p)) => tls_key("tls-auth", p)?,
        _ => bail!("give exactly one of --tls-crypt and --tls-auth"),
    };
    let spec = ServerSpec {
        host: a.host,
        port: a.port,
        proto: a.proto,
        ca_pem: read_pem(&a.ca, "CA certificate", "BEGIN CERTIFICATE")?,
        tls_mode,
        tls_key,
        key_direction: (tls_mode == "tls-auth").then(|| a.key_direction.unwrap_or(1)),
        data_ciphers: a.data_ciphers,
        extra: a.extra,
        client_cert: a.client_cert,
        pki_dir: a.pki_dir.as_deref().map(pki_dir).transpose()?,
    };
    spec.check()?;
    servers::add(c, &a.name, &spec, now())?;
    println!("added server {}", a.name);
    Ok(())
}

fn server_set(c: &Db, a: ServerSet) -> Result<()> {
    let id = id_of(c, Kind::Server, &a.name)?;
    let mut spec = servers::spec(c, id)?;
    if let Some(h) = a.host {
        spec.host = h;
    }
    if let Some(p) = a.port {
        spec.port = p;
    }
    if let Some(p) = a.proto {
        spec.proto = p;
    }
    if let Some(ca) = &a.ca {
        spec.ca_pem = read_pem(ca, "CA certificate", "BEGIN CERTIFICATE")?;
    }
    if let Some(p) = &a.tls_crypt {
        (spec.tls_mode, spec.tls_key) = tls_key("tls-crypt", p)?;
        spec.key_direction = None;
    }
    if let Some(p) = &a.tls_auth {
        let was_auth = spec.tls_mode == "tls-auth";
        (spec.tls_mode, spec.tls_key) = tls_key("tls-auth", p)?;
        spec.key_direction = spec.key_direction.filter(|_| was_auth).or(Some(1));
    }
    if let Some(d) = a.key_direction {
        spec.key_direction = Some(d);
    }
    if let Some(d) = opt_parse(&a.data_ciphers, |s| Ok(s.to_string()))? {
        spec.data_ciphers = d;
    }
    if !a.extra.is_empty() || a.clear_extra {
        spec.extra = a.extra;
    }
    if let Some(cc) = a.client_cert {
        spec.client_cert = cc;
    }
    if let Some(d) = opt_parse(&a.pki_dir, |d| pki_dir(Path::new(d)))? {
        spec.pki_dir = d;
    }
    spec.check()?;
    servers::update(c, id, &spec)?;
    println!("updated server {}", a.name);
    Ok(())
}

fn server_rows(c: &Db, only: Option<&str>) -> Result<Vec<Value>> {
    let rows = servers::list(c, only)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            json!({
                "name": r.name,
                "host": r.host,
                "port": r.port,
                "proto": r.proto,
                "tls_mode": r.tls_mode,
                "key_direction": r.key_direction,
                "data_ciphers": r.data_ciphers,
                "extra": r.extra,
                "client_cert": r.client_cert,
                "pki_dir": r.pki_dir,
                "created_at": format_time(r.created_at),
            })
        })
        .collect())
}

// ---------- plans ----------

fn plan(c: &Db, cmd: PlanCmd) -> Result<()> {
    match cmd {
        PlanCmd::Add(a) => {
            check_name("plan", &a.name)?;
            // One transaction: a bad value leaves no plan behind.
            let tx = c.transaction()?;
            plans::add(&tx, &a.name, now())?;
            plan_update(&tx, &a)?;
            tx.commit()?;
            println!("added plan {}", a.name);
            Ok(())
        }
        PlanCmd::Set(a) => {
            id_of(c, Kind::Plan, &a.name)?;
            let tx = c.transaction()?;
            plan_update(&tx, &a)?;
            tx.commit()?;
            println!("updated plan {}", a.name);
            Ok(())
        }
        PlanCmd::List { json } => {
            let headers = ["NAME", "QUOTA", "PERIOD", "MAX-SESSION", "MAX-CONN", "EXPIRES-AFTER", "USERS"];
            out::listing(json, plan_rows(c, None)?, &headers, plan_cells);
            Ok(())
        }
        PlanCmd::Show { name, json } => {
            id_of(c, Kind::Plan, &name)?;
            let r = plan_rows(c, Some(&name))?.remove(0);
            if json {
                out::json(&r);
            } else {
                let cells = plan_cells(&r);
                let keys = ["name", "quota", "period", "max session", "max connections", "expires after", "users"];
                let pairs: Vec<(&str, String)> = keys.iter().copied().zip(cells).collect();
                out::fields(&pairs);
            }
            Ok(())
        }
        PlanCmd::Del { name } => {
            plans::delete(c, &name)?;
            println!("deleted plan {name}");
            Ok(())
        }
    }
}

fn plan_update(c: &Db, a: &PlanArgs) -> Result<()> {
    let set = |limit: Limit, v: Option<Option<i64>>| -> Result<()> {
        match v {
            Some(v) => plans::set_limit(c, &a.name, limit, v),
            None => Ok(()),
        }
    };
    set(Limit::QuotaBytes, opt_parse(&a.quota, positive_size)?)?;
    set(Limit::MaxSessionSecs, opt_parse(&a.max_session, positive_secs)?)?;
    set(Limit::MaxConnections, opt_parse(&a.max_connections, positive)?)?;
    set(Limit::ExpiresAfterSecs, opt_parse(&a.expires_after, positive_secs)?)?;
    if let Some(p) = &a.period {
        plans::set_period(c, &a.name, p)?;
    }
    Ok(())
}

fn plan_rows(c: &Db, only: Option<&str>) -> Result<Vec<Value>> {
    Ok(plans::list(c, only)?
        .into_iter()
        .map(|p| {
            json!({
                "name": p.name,
                "quota_bytes": p.quota_bytes,
                "period": p.period,
                "max_session_secs": p.max_session_secs,
                "max_connections": p.max_connections,
                "expires_after_secs": p.expires_after_secs,
                "users": p.users,
            })
        })
        .collect())
}

fn plan_cells(r: &Value) -> Vec<String> {
    let dur = |k: &str| r[k].as_i64().map(format_duration).unwrap_or_else(|| "-".into());
    vec![
        r["name"].as_str().unwrap_or("").into(),
        r["quota_bytes"].as_i64().map(format_size).unwrap_or_else(|| "unlimited".into()),
        r["period"].as_str().unwrap_or("").into(),
        dur("max_session_secs"),
        r["max_connections"].as_i64().map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
        dur("expires_after_secs"),
        r["users"].to_string(),
    ]
}

// ---------- groups ----------

fn group(c: &mut Db, cmd: GroupCmd) -> Result<()> {
    match cmd {
        GroupCmd::Add(a) => {
            check_name("group", &a.name)?;
            let tx = c.transaction()?;
            groups::add(&tx, &a.name, now())?;
            group_update(&tx, &a, false, &[])?;
            tx.commit()?;
            println!("added group {}", a.name);
            Ok(())
        }
        GroupCmd::Set(GroupSet { group: a, clear_push, revoke }) => {
            let tx = c.transaction()?;
            id_of(&tx, Kind::Group, &a.name)?;
            group_update(&tx, &a, clear_push, &revoke)?;
            tx.commit()?;
            println!("updated group {}", a.name);
            Ok(())
        }
        GroupCmd::List { json } => {
            out::listing(json, group_rows(c, None)?, &["NAME", "SERVERS", "REDIRECT-GW", "PUSH", "USERS"], group_cells);
            Ok(())
        }
        GroupCmd::Show { name, json } => {
            id_of(c, Kind::Group, &name)?;
            let r = group_rows(c, Some(&name))?.remove(0);
            if json {
                out::json(&r);
            } else {
                let keys = ["name", "servers", "redirect gateway", "push", "users"];
                let mut pairs: Vec<(&str, String)> = keys.iter().copied().zip(group_cells(&r)).collect();
                let auth = r["auth_method"].as_str().map_or("- (the config's [auth] method)".into(), str::to_string);
                pairs.push(("auth method", auth));
                out::fields(&pairs);
            }
            Ok(())
        }
        GroupCmd::Del { name, force } => {
            groups::delete(c, &name, force)?;
            println!("deleted group {name}");
            Ok(())
        }
    }
}

fn group_update(c: &Db, a: &GroupArgs, clear_push: bool, revoked: &[String]) -> Result<()> {
    let id = id_of(c, Kind::Group, &a.name)?;
    if !a.push.is_empty() || clear_push {
        groups::set_push(c, id, &a.push)?;
    }
    if let Some(r) = a.redirect_gateway {
        groups::set_redirect_gateway(c, id, r)?;
    }
    if let Some(all) = a.all_servers {
        groups::set_all_servers(c, id, all)?;
    }
    if let Some(m) = &a.auth {
        groups::set_auth_method(c, id, (m != "default").then_some(m.as_str()))?;
    }
    servers::grant(c, Grantee::Group(id), &a.server)?;
    servers::revoke(c, Grantee::Group(id), revoked)?;
    Ok(())
}

fn group_rows(c: &Db, only: Option<&str>) -> Result<Vec<Value>> {
    Ok(groups::list(c, only)?
        .into_iter()
        .map(|g| {
            json!({
                "name": g.name,
                "auth_method": g.auth_method,
                "all_servers": g.all_servers,
                "servers": g.servers,
                "redirect_gateway": g.redirect_gateway,
                "push": g.push,
                "users": g.users,
            })
        })
        .collect())
}

fn servers_cell(r: &Value) -> String {
    if r["all_servers"].as_bool() == Some(true) {
        return "all".into();
    }
    let v: Vec<&str> =
        r["servers"].as_array().map(|a| a.iter().filter_map(|s| s.as_str()).collect()).unwrap_or_default();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

fn group_cells(r: &Value) -> Vec<String> {
    let push: Vec<&str> =
        r["push"].as_array().map(|a| a.iter().filter_map(|s| s.as_str()).collect()).unwrap_or_default();
    vec![
        r["name"].as_str().unwrap_or("").into(),
        servers_cell(r),
        out::cell(&r["redirect_gateway"]),
        if push.is_empty() { "-".into() } else { push.join("; ") },
        r["users"].to_string(),
    ]
}

// ---------- users ----------

fn user(c: &mut Db, cfg: &Config, cmd: UserCmd) -> Result<()> {
    match cmd {
        UserCmd::Add(a) => user_add(c, cfg, a),
        UserCmd::Passwd { name, password_stdin } => {
            let id = id_of(c, Kind::User, &name)?;
            let h = password::hash(&read_password(password_stdin, true)?, cfg.argon2)?;
            users::change(c, id, Change::PasswordHash(&h), now())?;
            println!("password of {name} changed");
            Ok(())
        }
        UserCmd::Set(a) => user_set(c, a),
        UserCmd::Enable { name } => simple_update(c, &name, Change::Enabled(true), "enabled"),
        UserCmd::Disable { name } => simple_update(c, &name, Change::Enabled(false), "disabled"),
        UserCmd::Unlock { name } => simple_update(c, &name, Change::Unlock, "unlocked"),
        UserCmd::Del { name } => {
            let id = id_of(c, Kind::User, &name)?;
            users::delete(c, id)?;
            println!("deleted user {name}");
            Ok(())
        }
        UserCmd::List { json } => {
            out::listing(
                json,
                user_rows(c, cfg, None)?,
                &["NAME", "STATE", "PLAN", "GROUP", "SERVERS", "EXPIRES", "PLAN-EXPIRES", "FAILED"],
                |r| {
                    let s = |k: &str| out::cell(&r[k]);
                    vec![
                        s("name"),
                        s("state"),
                        s("plan"),
                        s("group"),
                        servers_cell(r),
                        out::expiry(r, "expires_at"),
                        out::expiry(r, "plan_expires_at"),
                        s("failed_count"),
                    ]
                },
            );
            Ok(())
        }
        UserCmd::Show { name, json } => {
            id_of(c, Kind::User, &name)?;
            let r = user_rows(c, cfg, Some(&name))?.remove(0);
            if json {
                out::json(&r);
            } else {
                let s = |k: &str| out::cell(&r[k]);
                out::fields(&[
                    ("name", s("name")),
                    ("state", s("state")),
                    ("auth method", format!("{} ({})", s("auth_method"), s("auth_method_from"))),
                    ("plan", s("plan")),
                    ("plan expires", out::expiry(&r, "plan_expires_at")),
                    ("group", s("group")),
                    ("servers", servers_cell(&r)),
                    ("expires", out::expiry(&r, "expires_at")),
                    ("static ip", s("static_ip")),
                    ("device binding", s("device_binding")),
                    ("max devices", s("max_devices")),
                    ("second factor", s("mfa_state")),
                    ("failed logins", s("failed_count")),
                    ("locked until", s("locked_until")),
                    ("saved by program", s("saved")),
                    ("created", s("created_at")),
                ]);
            }
            Ok(())
        }
    }
}

/// Accepted, but the account will not log in: say so.
fn warn_if_past(name: &str, expires: Option<i64>) {
    if let Some(e) = expires.filter(|e| *e <= now()) {
        eprintln!(
            "tollgate: warning: {name}'s expiry {} is in the past: the account is expired",
            units::format_expiry(e)
        );
    }
}

/// What a login of the account would meet first, as auth-verify sees it:
/// disabled, expired (the account), plan expired, locked, or enabled.
fn user_state(enabled: bool, expires: Option<i64>, plan_expires: Option<i64>, locked: bool, t: i64) -> &'static str {
    if !enabled {
        "disabled"
    } else if expires.is_some_and(|e| e <= t) {
        "expired"
    } else if plan_expires.is_some_and(|e| e <= t) {
        "plan expired"
    } else if locked {
        "locked"
    } else {
        "enabled"
    }
}

fn simple_update(c: &Db, name: &str, change: Change, done: &str) -> Result<()> {
    let id = id_of(c, Kind::User, name)?;
    users::change(c, id, change, now())?;
    println!("{done} {name}");
    Ok(())
}

/// A static VPN address: an IPv4 address a client can be given.
fn check_ip(s: &str) -> Result<String> {
    let ip: std::net::Ipv4Addr = s.trim().parse().map_err(|_| anyhow!("{s:?} is not an IPv4 address"))?;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
        bail!("{ip} cannot be a client's address");
    }
    Ok(ip.to_string())
}

fn user_add(c: &mut Db, cfg: &Config, a: UserAdd) -> Result<()> {
    check_name("user", &a.name)?;
    if users::exists(c, &a.name)? {
        bail!("user {} already exists", a.name);
    }
    // Resolve every name before asking for a password.
    let plan = a.plan.as_deref().map(|p| id_of(c, Kind::Plan, p)).transpose()?;
    let group = a.group.as_deref().map(|g| id_of(c, Kind::Group, g)).transpose()?;
    for s in &a.server {
        id_of(c, Kind::Server, s)?;
    }
    let expires = a.expires.as_deref().map(|e| units::parse_expiry(e, now())).transpose()?;
    warn_if_past(&a.name, expires);
    let static_ip = a.static_ip.as_deref().map(check_ip).transpose()?;
    if let Some(ip) = &static_ip {
        users::static_ip_free(c, ip, None)?;
    }
    let group_method: Option<String> = match group {
        Some(g) => groups::auth_method(c, g)?,
        None => None,
    };
    let (method, _) = tollgate_core::method::resolve(
        a.auth.as_deref(),
        a.group.as_deref().map(|g| (g, group_method.as_deref())),
        cfg.auth_method,
    )?;
    if method == AuthMethod::Program && cfg.post_auth.is_none() {
        eprintln!("tollgate: note: {} uses the program method, but no [post_auth] command is configured: logins fail until one is", a.name);
    }
    // A program or directory user's password is checked elsewhere: none is
    // asked (unless given on stdin, kept for a later switch to local).
    let hash = if method != AuthMethod::Local && !a.password_stdin {
        password::NO_PASSWORD.to_string()
    } else {
        password::hash(&read_password(a.password_stdin, true)?, cfg.argon2)?
    };
    let tx = c.transaction()?;
    let new = NewUser {
        name: &a.name,
        password_hash: &hash,
        enabled: !a.disabled,
        plan_id: plan,
        group_id: group,
        expires_at: expires,
        all_servers: a.all_servers,
        static_ip: static_ip.as_deref(),
        auth_method: a.auth.as_deref(),
    };
    users::add(&tx, &new, &a.server, now())?;
    tx.commit()?;
    println!("added user {}", a.name);
    Ok(())
}

fn user_set(c: &mut Db, a: UserSet) -> Result<()> {
    let tx = c.transaction()?;
    let id = id_of(&tx, Kind::User, &a.name)?;
    let t = now();
    let set = |change: Change| users::change(&tx, id, change, t);
    if let Some(p) = opt_parse(&a.plan, |p| id_of(&tx, Kind::Plan, p))? {
        set(Change::Plan(p))?;
    }
    if let Some(g) = opt_parse(&a.group, |g| id_of(&tx, Kind::Group, g))? {
        set(Change::Group(g))?;
    }
    if let Some(e) = opt_parse(&a.expires, |e| units::parse_expiry(e, t))? {
        warn_if_past(&a.name, e);
        set(Change::Expires(e))?;
    }
    if let Some(ip) = opt_parse(&a.static_ip, check_ip)? {
        if let Some(ip) = &ip {
            users::static_ip_free(&tx, ip, Some(id))?;
        }
        set(Change::StaticIp(ip.as_deref()))?;
    }
    if let Some(n) = opt_parse(&a.max_devices, positive)? {
        set(Change::MaxDevices(n))?;
    }
    if let Some(m) = &a.device_binding {
        set(Change::DeviceBinding((m != "default").then_some(m.as_str())))?;
    }
    if let Some(all) = a.all_servers {
        set(Change::AllServers(all))?;
    }
    if let Some(m) = &a.auth {
        set(Change::AuthMethod((m != "default").then_some(m.as_str())))?;
        if m == "local" && users::has_no_password(&tx, id)? {
            eprintln!("tollgate: note: {} has no password yet: set one with `tollgate user passwd {}`", a.name, a.name);
        }
    }
    if a.clear_saved {
        set(Change::ClearSaved)?;
    }
    servers::grant(&tx, Grantee::User(id), &a.server)?;
    servers::revoke(&tx, Grantee::User(id), &a.revoke)?;
    tx.commit()?;
    println!("updated user {}", a.name);
    Ok(())
}

fn user_rows(c: &Db, cfg: &Config, only: Option<&str>) -> Result<Vec<Value>> {
    let t = now();
    let rows = users::list(c, only)?;
    Ok(rows
        .into_iter()
        .map(|u| {
            let locked = u.locked_until.is_some_and(|l| l > t);
            // The count the next failure adds to: none once the window passed.
            let failed =
                if u.failed_since.is_some_and(|f| t - f < cfg.lockout.window_secs) { u.failed_count } else { 0 };
            let (method, from) = match tollgate_core::method::resolve(
                u.auth_method.as_deref(),
                u.group.as_deref().map(|g| (g, u.group_auth_method.as_deref())),
                cfg.auth_method,
            ) {
                Ok((m, f)) => (m.to_string(), f.to_string()),
                Err(e) => ("invalid".to_string(), format!("{e:#}")),
            };
            json!({
                "name": u.name,
                "state": user_state(u.enabled, u.expires_at, u.plan_expires_at, locked, t),
                "enabled": u.enabled,
                "plan": u.plan,
                "plan_expires_at": u.plan_expires_at.map(format_time),
                "group": u.group,
                "expires_at": u.expires_at.map(format_time),
                "all_servers": u.all_servers,
                "static_ip": u.static_ip,
                "device_binding": u.device_binding,
                "max_devices": u.max_devices,
                "mfa": u.mfa_state == "totp",
                "mfa_state": u.mfa_state,
                "failed_count": failed,
                "locked": locked,
                "locked_until": u.locked_until.filter(|l| *l > t).map(format_time),
                "created_at": format_time(u.created_at),
                "auth_method": method,
                "auth_method_from": from,
                "saved": u.saved.and_then(|t| serde_json::from_str::<Value>(&t).ok()),
                "servers": u.servers,
            })
        })
        .collect())
}

// ---------- devices ----------

fn device(c: &Db, cfg: &Config, cmd: DeviceCmd) -> Result<()> {
    use tollgate_core::devices::{self, normalize, Binding};
    let norm = |h: &str| {
        // Hex pairs and separators are a MAC address, which has six octets;
        // anything else is an id the client sends (UV_ device ids).
        let octets: Vec<&str> = h.trim().split([':', '-']).collect();
        if octets.len() > 1
            && octets.len() != 6
            && octets.iter().all(|o| o.len() == 2 && o.chars().all(|c| c.is_ascii_hexdigit()))
        {
            bail!("{h:?} looks like a MAC address but has {} octets, not 6", octets.len());
        }
        normalize(h).ok_or_else(|| anyhow!("{h:?} is not a usable hardware id"))
    };
    match cmd {
        DeviceCmd::List { name, json } => {
            let id = id_of(c, Kind::User, &name)?;
            let rows = devices::list(c, id)?
                .into_iter()
                .map(|d| {
                    json!({
                        "hwaddr": d.hwaddr,
                        "approved": d.approved,
                        "first_seen": d.first_seen.map(format_time),
                        "last_seen": d.last_seen.map(format_time),
                        "added": format_time(d.created_at),
                    })
                })
                .collect();
            out::listing(json, rows, &["DEVICE", "STATE", "FIRST-SEEN", "LAST-SEEN"], |r| {
                vec![
                    out::text(r, "hwaddr"),
                    if r["approved"].as_bool() == Some(true) { "approved" } else { "pending" }.into(),
                    out::text(r, "first_seen"),
                    out::text(r, "last_seen"),
                ]
            });
            Ok(())
        }
        DeviceCmd::Add { name, hwaddr } => {
            let id = id_of(c, Kind::User, &name)?;
            let h = norm(&hwaddr)?;
            if devices::user_binding(c, id)?.unwrap_or(cfg.devices.binding) == Binding::Off {
                eprintln!(
                    "tollgate: warning: device binding is off for {name}, so this device is not checked \
                     (tollgate user set {name} --device-binding manual, or [devices] binding in the config)"
                );
            }
            devices::approve(c, id, &h, now())?;
            println!("approved device {h} for {name}");
            Ok(())
        }
        DeviceCmd::Del { name, hwaddr } => {
            let id = id_of(c, Kind::User, &name)?;
            let h = norm(&hwaddr)?;
            if !devices::remove(c, id, &h)? {
                bail!("{name} has no device {h}");
            }
            println!("removed device {h} from {name}");
            Ok(())
        }
        DeviceCmd::Reset { name } => {
            let id = id_of(c, Kind::User, &name)?;
            let n = devices::remove_all(c, id)?;
            println!("removed {n} device(s) from {name}");
            Ok(())
        }
    }
}

// ---------- second factor ----------

fn mfa(c: &Db, cfg: &Config, cmd: MfaCmd) -> Result<()> {
    use tollgate_core::totp;
    match cmd {
        MfaCmd::Enroll { name, no_confirm, force } => {
            let id = id_of(c, Kind::User, &name)?;
            let active = users::totp_active(c, id)?;
            if active && !force {
                bail!("{name} already has a second factor: --force replaces it");
            }
            let secret = totp::new_secret();
            let uri = totp::uri(&cfg.mfa.issuer, &name, &secret);
            // Replacing an active factor: the old one stays until the new
            // one is confirmed, so the account is never password-only.
            if !active || no_confirm {
                users::totp_set(c, id, &secret, no_confirm, now())?;
            }
            println!("{uri}");
            if let Ok(qr) = qrcode::QrCode::new(uri.as_bytes()) {
                let img = qr
                    .render::<qrcode::render::unicode::Dense1x2>()
                    .dark_color(qrcode::render::unicode::Dense1x2::Light)
                    .light_color(qrcode::render::unicode::Dense1x2::Dark)
                    .quiet_zone(true)
                    .build();
                println!("{img}");
            }
            if no_confirm {
                println!("second factor on for {name}");
                return Ok(());
            }
            eprint!("Code shown by the app: ");
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let key = totp::decode_secret(&secret).ok_or_else(|| anyhow!("bad secret"))?;
            match totp::verify(&key, line.trim(), now(), None) {
                Some(step) => {
                    users::totp_confirm(c, id, &secret, step, now())?;
                    println!("second factor on for {name}");
                    Ok(())
                }
                None if active => bail!(
                    "that code does not match: {name} keeps the old second factor (run `tollgate mfa enroll {name} --force` again)"
                ),
                None => bail!(
                    "that code does not match: the second factor is not on (run `tollgate mfa enroll {name}` again)"
                ),
            }
        }
        MfaCmd::Disable { name } => {
            let id = id_of(c, Kind::User, &name)?;
            users::totp_remove(c, id, now())?;
            println!("second factor off for {name}");
            Ok(())
        }
    }
}

// ---------- events, test-auth ----------

fn token(c: &Db, cmd: TokenCmd) -> Result<()> {
    use tollgate_core::selfservice::{self as ss, Scope};
    let t = now();
    match cmd {
        TokenCmd::Add { name, scope, expires } => {
            let scopes = Scope::parse_list(&scope)?;
            let expires_at = expires.as_deref().map(|e| tollgate_core::units::parse_expiry(e, t)).transpose()?;
            let token = ss::token_add(c, &name, &scopes, expires_at, t)?;
            // The secret on stdout alone (for `$(tollgate token add …)`),
            // what it is on stderr.
            eprintln!(
                "token {name} created ({}); it is shown this once, store it now:",
                scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            );
            println!("{token}");
        }
        TokenCmd::List { json } => {
            let rows = ss::token_list(c)?
                .into_iter()
                .map(|r| {
                    let state = match (r.revoked_at, r.expires_at) {
                        (Some(_), _) => "revoked",
                        (None, Some(e)) if e <= t => "expired",
                        _ => "active",
                    };
                    json!({
                        "name": r.name,
                        "scopes": r.scopes,
                        "state": state,
                        "created_at": format_time(r.created_at),
                        "expires_at": r.expires_at.map(format_time),
                        "revoked_at": r.revoked_at.map(format_time),
                        "last_used_at": r.last_used_at.map(format_time),
                    })
                })
                .collect();
            out::listing(json, rows, &["NAME", "SCOPES", "STATE", "EXPIRES", "LAST USED"], |r| {
                let scopes: Vec<&str> =
                    r["scopes"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
                vec![
                    out::text(r, "name"),
                    scopes.join(","),
                    out::text(r, "state"),
                    out::expiry(r, "expires_at"),
                    out::text(r, "last_used_at"),
                ]
            });
        }
        TokenCmd::Revoke { name } => {
            if !ss::token_revoke(c, &name, t)? {
                bail!("no token named {name} (tollgate token list)");
            }
            println!("revoked token {name}");
        }
    }
    Ok(())
}

fn blocked(c: &Db, json: bool) -> Result<()> {
    let t = now();
    let rows = events::sources(c)?
        .into_iter()
        .map(|r| {
            json!({
                "address": r.address,
                "failed_count": r.failed_count,
                "failed_since": r.failed_since.map(format_time),
                "blocked": r.locked_until.is_some_and(|u| u > t),
                "blocked_until": r.locked_until.filter(|u| *u > t).map(format_time),
            })
        })
        .collect();
    out::listing(json, rows, &["ADDRESS", "FAILURES", "SINCE", "BLOCKED UNTIL"], |r| {
        vec![
            out::text(r, "address"),
            r["failed_count"].to_string(),
            out::text(r, "failed_since"),
            out::text(r, "blocked_until"),
        ]
    });
    Ok(())
}

fn events(c: &Db, user: Option<String>, limit: u32, json: bool) -> Result<()> {
    if let Some(u) = &user {
        if !events::known_name(c, u)? {
            bail!("no user and no recorded attempt named {u}");
        }
    }
    let rows = events::recent(c, user.as_deref(), limit)?
        .into_iter()
        .map(|e| {
            json!({
                "at": format_time(e.at),
                "user": e.username,
                "server": e.server,
                "ip": e.ip,
                "result": e.result,
                "reason": e.reason,
            })
        })
        .collect();
    out::listing(json, rows, &["TIME", "USER", "SERVER", "IP", "RESULT", "REASON"], |r| {
        ["at", "user", "server", "ip", "result", "reason"].iter().map(|k| out::text(r, k)).collect()
    });
    Ok(())
}

/// How test-auth presents the login: what the client would send.
struct TestAuthInput {
    password_stdin: bool,
    /// The second factor, sent the static-challenge way (SCRV1).
    code: Option<String>,
    ip: String,
    vars: std::collections::HashMap<String, String>,
    json: bool,
}

/// test-auth's exit status per outcome (1 and 2 are errors).
const EXIT_ACCEPT: i32 = 0;
const EXIT_CHALLENGE: i32 = 3;
const EXIT_DENY: i32 = 4;

fn test_auth(store: &mut Store, cfg: &Config, user: &str, server: Option<String>, how: TestAuthInput) -> Result<i32> {
    let (ip, vars, json) = (how.ip.as_str(), &how.vars, how.json);
    let server = server
        .or_else(|| cfg.server.clone())
        .ok_or_else(|| anyhow!("no server: pass --server or set `server` in the config"))?;
    // A misspelt server is a mistake to report, not a login to deny.
    id_of(&store.conn, Kind::Server, &server)?;
    // Single sign-on users have no password to ask for: the browser
    // signs in. Their client is taken to announce web auth unless --var
    // IV_SSO says otherwise.
    let sso = auth::method_of(store, cfg, user)? == tollgate_core::method::AuthMethod::Oidc;
    let pw = if sso {
        String::new()
    } else if how.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        rpassword::prompt_password("Password: ").map_err(|e| anyhow!("cannot prompt ({e}): use --password-stdin"))?
    };
    // With --code, what a client answering the static challenge sends.
    let pw = match &how.code {
        None => pw,
        Some(code) => {
            use data_encoding::BASE64;
            format!("SCRV1:{}:{}", BASE64.encode(pw.as_bytes()), BASE64.encode(code.trim().as_bytes()))
        }
    };
    // As root, never run a program that someone else could have changed.
    // The directory helper, the program, and any file named in the
    // program's argv (a script handed to an interpreter, a rule file).
    if cfg.ldap.is_some() || cfg.radius.is_some() {
        tollgate_core::post_auth::check_trusted(&tollgate_core::directory::helper_path(cfg))?;
    }
    if let Some(pa) = &cfg.post_auth {
        for (i, arg) in pa.command.iter().enumerate() {
            let p = std::path::Path::new(arg);
            if i == 0 || (p.is_absolute() && p.is_file()) {
                tollgate_core::post_auth::check_trusted(p)?;
            }
        }
    }
    let mut peer: std::collections::BTreeMap<String, String> =
        vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if sso {
        peer.entry("IV_SSO".into()).or_insert_with(|| "webauth".into());
    }
    let outcome = match check_credentials(user.as_bytes(), pw.as_bytes()) {
        Err(d) => auth::Outcome { decision: Decision::Deny(d), ..Default::default() },
        Ok(()) => {
            let req = Request {
                username: user,
                password: &pw,
                server: &server,
                ip,
                port: None,
                now: now(),
                session_state: None,
                peer: &peer,
                server_started: None,
                web_link: None,
                token_session: None,
                signed_in: None,
            };
            auth::authenticate(store, cfg, &req, false)?
        }
    };
    let decision = &outcome.decision;
    let (code, mut v) = match decision {
        Decision::Accept => (EXIT_ACCEPT, json!({"result": "accept", "user": user, "server": server})),
        Decision::Challenge => {
            (EXIT_CHALLENGE, json!({"result": "challenge", "user": user, "server": server, "prompt": outcome.prompt}))
        }
        Decision::Deny(d) => (
            EXIT_DENY,
            json!({"result": "deny", "user": user, "server": server, "log_reason": d.log_reason(), "client_reason": d.client_reason()}),
        ),
    };
    v["post_auth"] = json!(outcome.program);
    v["provisioned_on_plan"] = json!(outcome.provisioned);
    v["single_sign_on"] = json!(outcome.sso);
    if json {
        out::json(&v);
        return Ok(code);
    }
    // Like Access Server's authcli: what the program was given and said.
    for run in &outcome.program {
        println!("post-auth program input:");
        println!("{}", serde_json::to_string_pretty(&run.input)?);
        println!("post-auth program output ({} ms):", run.elapsed_ms);
        println!("{}", if run.stdout.trim().is_empty() { "(nothing)" } else { run.stdout.trim_end() });
        println!("post-auth program result: {}", run.result);
        println!();
    }
    if let (true, Some(o)) = (outcome.sso, &cfg.oidc) {
        println!(
            "single sign-on: the client is sent a login link ({}?l=…) for {}s;",
            o.login_url, o.login_timeout_secs
        );
        let groups = match o.required_groups.as_slice() {
            [] => String::new(),
            g => format!(", in group {}", g.join(" or ")),
        };
        println!(
            "the user signs in at {} as {}{groups}; then:",
            o.issuer,
            if user.is_empty() { "anyone" } else { user }
        );
    }
    if let Some(plan) = &outcome.provisioned {
        println!("the directory accepted {user}: a login would create the account on plan {plan}");
    }
    if let Decision::Deny(d) = decision {
        println!("DENY {user} on {server}: {}", d.log_reason());
        println!("client sees: {}", d.client_reason());
    } else if *decision == Decision::Challenge {
        println!(
            "CHALLENGE {user} on {server}: the client would be asked: {}",
            outcome.prompt.as_deref().unwrap_or("-")
        );
    } else {
        println!("ACCEPT {user} on {server}");
    }
    Ok(code)
}
