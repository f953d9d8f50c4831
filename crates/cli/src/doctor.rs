//! `tollgate doctor`: reads the config, the database and OpenVPN's
//! server.conf, and names what would break logins, each with its fix.
//!
//! Permissions are judged as OpenVPN's `user`/`group` would have them after
//! the server drops privileges (OpenVPN keeps only that one group), from
//! the mode bits along the path; ACLs are not read.

use crate::out;
use anyhow::Result;
use serde::Serialize;
use serde_json::json;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use tollgate_core::config::{Config, Database, Defer};
use tollgate_core::db::Db;
use tollgate_core::method::AuthMethod;
use tollgate_core::names::{id_of, Kind};
use tollgate_core::ovpn_conf::{self, Directive};
use tollgate_core::pg;
use tollgate_core::store::{Store, SCHEMA_VERSION};

/// Where install.sh --setup-server writes a server's config.
const OPENVPN_SERVER_DIR: &str = "/etc/openvpn/server";
/// The shortest `reneg-sec` at which session tokens keep up (admin guide,
/// "Not asking for the code at every renegotiation").
const MIN_RENEG_WITH_TOKEN: u64 = 60;

#[derive(Serialize, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Error,
}

#[derive(Serialize, Debug)]
pub struct Finding {
    pub check: &'static str,
    pub status: Status,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn ok(check: &'static str, message: impl Into<String>) -> Finding {
    Finding { check, status: Status::Ok, message: message.into(), fix: None }
}
fn bad(check: &'static str, status: Status, message: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding { check, status, message: message.into(), fix: Some(fix.into()) }
}
fn error(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Finding {
    bad(check, Status::Error, message, fix)
}
fn warning(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Finding {
    bad(check, Status::Warning, message, fix)
}

/// The identity the hooks run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub name: String,
    pub uid: u32,
    pub gids: Vec<u32>,
}

const R: u32 = 4;
const W: u32 = 2;
const X: u32 = 1;

impl Who {
    /// May this identity do `want` (R, W, X bits) to `path`, searching every
    /// directory above it? Root may read and write anything and execute
    /// what has any execute bit.
    fn can(&self, path: &Path, want: u32) -> std::io::Result<bool> {
        let mut dirs: Vec<&Path> = path.ancestors().skip(1).filter(|p| !p.as_os_str().is_empty()).collect();
        dirs.reverse();
        for d in dirs {
            if !self.allows(&std::fs::metadata(d)?, X) {
                return Ok(false);
            }
        }
        Ok(self.allows(&std::fs::metadata(path)?, want))
    }

    fn allows(&self, m: &std::fs::Metadata, want: u32) -> bool {
        let mode = m.mode();
        if self.uid == 0 {
            return want & X == 0 || m.is_dir() || mode & 0o111 != 0;
        }
        let bits = if m.uid() == self.uid {
            mode >> 6
        } else if self.gids.contains(&m.gid()) {
            mode >> 3
        } else {
            mode
        } & 7;
        bits & want == want
    }
}

/// A line of /etc/passwd or /etc/group: its name and numeric id (3rd field).
fn numeric_id(file: &str, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() > 2 && f[0] == name {
            f[2].parse().ok()
        } else {
            None
        }
    })
}

/// OpenVPN's `user` and `group`: setuid to the user, and setgid plus
/// setgroups to just that group (root's group 0 when none is named).
fn who(conf: &[Directive]) -> Result<Who, Finding> {
    let arg = |n| ovpn_conf::last(conf, n).and_then(|d| d.args.first().cloned());
    let (user, group) = (arg("user"), arg("group"));
    let uid = match &user {
        None => 0,
        Some(u) => match numeric_id("/etc/passwd", u) {
            Some(uid) => uid,
            None => {
                return Err(error(
                    "openvpn-user",
                    format!("user {u} of server.conf is not in /etc/passwd"),
                    "create it or name an existing user",
                ))
            }
        },
    };
    let gid = match &group {
        None => 0,
        Some(g) => match numeric_id("/etc/group", g) {
            Some(gid) => gid,
            None => {
                return Err(error(
                    "openvpn-user",
                    format!("group {g} of server.conf is not in /etc/group"),
                    "create it or name an existing group",
                ))
            }
        },
    };
    Ok(Who {
        name: format!("{}:{}", user.as_deref().unwrap_or("root"), group.as_deref().unwrap_or("root")),
        uid,
        gids: vec![gid],
    })
}

pub struct DoctorArgs {
    pub config: Option<PathBuf>,
    pub openvpn_config: Option<PathBuf>,
    pub json: bool,
}

pub fn run(a: DoctorArgs) -> Result<i32> {
    let found = examine(&a);
    let worst = found.iter().map(|f| f.status).max().unwrap_or(Status::Ok);
    if a.json {
        out::json(&json!({ "ok": worst != Status::Error, "checks": found }));
    } else {
        for f in &found {
            let tag = match f.status {
                Status::Ok => "ok     ",
                Status::Warning => "WARN   ",
                Status::Error => "ERROR  ",
            };
            match &f.fix {
                Some(fix) => println!("{tag}{}: {}; fix: {fix}", f.check, f.message),
                None => println!("{tag}{}: {}", f.check, f.message),
            }
        }
        let n = |s| found.iter().filter(|f| f.status == s).count();
        let plural = |k: usize, one: &str| if k == 1 { format!("1 {one}") } else { format!("{k} {one}s") };
        println!("{}, {}", plural(n(Status::Error), "problem"), plural(n(Status::Warning), "warning"));
    }
    Ok(if worst == Status::Error { 1 } else { 0 })
}

fn examine(a: &DoctorArgs) -> Vec<Finding> {
    let mut found = Vec::new();
    let cfg = match Config::load(a.config.as_deref()) {
        Ok(c) => {
            let p = c.path.as_ref().map_or("none (built-in defaults)".into(), |p| p.display().to_string());
            found.push(ok("config", format!("{p} reads")));
            c
        }
        Err(e) => {
            found.push(error("config", format!("{e:#}"), "correct the config file (see the admin guide)"));
            return found;
        }
    };

    // The OpenVPN configs: the one named, else every server config in
    // /etc/openvpn whose auth-verify reads this config.
    let paths = match &a.openvpn_config {
        Some(p) => vec![p.clone()],
        None => discover(&cfg),
    };
    if paths.is_empty() {
        found.push(warning(
            "openvpn-config",
            format!(
                "no server config in {OPENVPN_SERVER_DIR} or /etc/openvpn runs tollgate's auth-verify with this config"
            ),
            "name it with --openvpn-config FILE to check it",
        ));
    }
    let mut confs = Vec::new();
    for p in paths {
        match std::fs::read_to_string(&p) {
            Ok(t) => {
                found.push(ok("openvpn-config", format!("{} reads", p.display())));
                confs.push((p, ovpn_conf::parse(&t)));
            }
            Err(e) => found.push(error(
                "openvpn-config",
                format!("cannot read {}: {e}", p.display()),
                "name the right file with --openvpn-config",
            )),
        }
    }
    // Each config's hook identity, resolved once.
    let mut checked = Vec::new();
    for (path, conf) in confs {
        let w = match who(&conf) {
            Ok(w) => w,
            Err(f) => {
                found.push(f);
                checked.push((path, conf, None));
                continue;
            }
        };
        if w.uid == 0 {
            found.push(warning(
                "openvpn-user",
                format!("{} has no `user`: the hooks run as root", path.display()),
                "add `user nobody` and `group nogroup` (and make the database theirs)",
            ));
        } else {
            found.push(ok("openvpn-user", format!("the hooks run as {}", w.name)));
        }
        if let Some(p) = &cfg.path {
            found.push(match w.can(p, R) {
                Ok(true) => ok("config-access", format!("{} can read {}", w.name, p.display())),
                _ => error(
                    "config-access",
                    format!("{} cannot read {}", w.name, p.display()),
                    format!(
                        "chown root:{g} {p} && chmod 640 {p}",
                        p = p.display(),
                        g = w.name.split(':').nth(1).unwrap_or("nogroup")
                    ),
                ),
            });
        }
        checked.push((path, conf, Some(w)));
    }
    let mut whos: Vec<Who> = checked.iter().filter_map(|(_, _, w)| w.clone()).collect();
    whos.dedup();
    let store = database(&cfg, &whos, &mut found);
    for (path, conf, w) in &checked {
        openvpn(&cfg, store.as_ref(), conf, w.as_ref(), path, &mut found);
    }
    found
}

/// The database: there, current, writable by the hooks, this server on
/// record, and the clock not behind what it has recorded.
fn database(cfg: &Config, whos: &[Who], found: &mut Vec<Finding>) -> Option<Store> {
    let sqlite = cfg.database.sqlite_path();
    if let Some(db) = sqlite.filter(|db| !db.exists()) {
        found.push(error("database", format!("{} does not exist", db.display()), "run `tollgate init`"));
        return None;
    }
    let db = &cfg.database;
    let store = match Store::open_read(cfg) {
        Ok(s) => s,
        Err(e) => {
            let fix = match sqlite {
                Some(_) => "check the path and permissions, then `tollgate init`",
                None => "check that PostgreSQL runs and the URL, role and pgpass file are right, then `tollgate init`",
            };
            found.push(error("database", format!("{e:#}"), fix));
            return None;
        }
    };
    match store.version() {
        Ok(v) if v == SCHEMA_VERSION => found.push(ok("database", format!("{db} at schema version {v}"))),
        Ok(v) if v < SCHEMA_VERSION => found.push(error(
            "database",
            format!("{db} is at schema version {v}, the hooks need {SCHEMA_VERSION}"),
            "run `tollgate init`",
        )),
        Ok(v) => found.push(error(
            "database",
            format!("{db} is at schema version {v}, newer than this build"),
            "upgrade tollgate",
        )),
        Err(e) => {
            found.push(error("database", format!("{e:#}"), "restore it from a backup or `tollgate init` a new one"))
        }
    }
    // The hooks' access to a PostgreSQL store is the role's, checked above
    // by connecting; to an SQLite file, the file's and its directory's.
    for w in whos.iter().filter(|_| sqlite.is_some()) {
        let db = sqlite.unwrap_or(Path::new("."));
        let dir = db.parent().unwrap_or(Path::new("."));
        let mut cannot = Vec::new();
        if !w.can(dir, W | X).unwrap_or(false) {
            cannot.push(dir.display().to_string());
        }
        for suffix in ["", "-wal", "-shm"] {
            let f = PathBuf::from(format!("{}{suffix}", db.display()));
            if f.exists() && !w.can(&f, R | W).unwrap_or(false) {
                cannot.push(f.display().to_string());
            }
        }
        found.push(if cannot.is_empty() {
            ok("database-access", format!("{} can write {} and its directory", w.name, db.display()))
        } else {
            let (u, g) = w.name.split_once(':').unwrap_or((&w.name, &w.name));
            error(
                "database-access",
                format!("{} cannot write {}", w.name, cannot.join(", ")),
                format!("chown -R {u}:{g} {} && chmod 770 {0}", dir.display()),
            )
        });
    }
    if let Database::Postgres(target) = &cfg.database {
        found.extend(pg_files(target, whos));
    }
    match &cfg.server {
        None => {
            found.push(error("server-record", "the config names no `server`", "set server = \"NAME\" in the config"))
        }
        Some(s) => {
            found.push(match id_of(&store.conn, Kind::Server, s) {
                Ok(_) => ok("server-record", format!("server {s} is on record")),
                _ => error(
                    "server-record",
                    format!("server {s} is not in the database: every login is refused (unknown server)"),
                    format!("tollgate server add {s} --host HOST --ca CA --tls-crypt KEY"),
                ),
            });
        }
    }
    // A clock behind the newest recorded time: TOTP codes are refused
    // (their step is not after the last one used) and sessions go wrong.
    let newest = tollgate_core::store::newest_record_time(&store.conn).unwrap_or(0);
    let now = tollgate_core::units::now();
    found.push(if newest > now + 30 {
        error(
            "clock",
            format!(
                "the clock is {} s behind the newest time in the database: TOTP codes are refused until it catches up",
                newest - now
            ),
            "set the clock right and keep it synchronised (systemd-timesyncd or chrony)",
        )
    } else {
        ok("clock", "not behind the database's newest record")
    });
    if let Ok(o) =
        std::process::Command::new("/usr/bin/timedatectl").args(["show", "-p", "NTPSynchronized", "--value"]).output()
    {
        if o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "no" {
            found.push(warning(
                "clock-sync",
                "the system clock is not synchronised: TOTP codes fail once it drifts past 30 s",
                "timedatectl set-ntp true (or install chrony)",
            ));
        }
    }
    Some(store)
}

/// The server configs under /etc/openvpn whose auth-user-pass-verify runs
/// a tollgate auth-verify reading this config (`--config`, or none when
/// this is the default config).
fn discover(cfg: &Config) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in [OPENVPN_SERVER_DIR, "/etc/openvpn"] {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut files: Vec<PathBuf> =
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "conf")).collect();
        files.sort();
        for f in files {
            let Ok(text) = std::fs::read_to_string(&f) else { continue };
            let conf = ovpn_conf::parse(&text);
            let Some(d) = ovpn_conf::last(&conf, "auth-user-pass-verify") else { continue };
            let argv = d.args.first().map(|c| ovpn_conf::split(c)).unwrap_or_default();
            if !argv.first().is_some_and(|p| p.ends_with("/auth-verify")) {
                continue;
            }
            let given = argv.iter().position(|a| a == "--config").and_then(|i| argv.get(i + 1)).map(PathBuf::from);
            let reads = given.unwrap_or_else(|| PathBuf::from(tollgate_core::config::DEFAULT_CONFIG));
            if cfg.path.as_ref() == Some(&reads) {
                out.push(f);
            }
        }
    }
    out
}

/// How long OpenVPN waits for a deferred answer, and for a pending
/// (web auth, crtext) one, given hand-window and reneg-sec (OpenVPN 2.6:
/// min(hand-window, reneg-sec/2) and max(reneg-sec/2, hand-window)).
pub fn windows(hand_window: u64, reneg_sec: u64) -> (u64, u64) {
    let half = reneg_sec / 2;
    let deferred = if reneg_sec > 0 { hand_window.min(half) } else { hand_window };
    (deferred, hand_window.max(half))
}

/// The longest a deferred login may take before tollgate answers, and what
/// sets it.
fn slowest_login(cfg: &Config) -> Option<(u64, String)> {
    let mut c: Vec<(u64, String)> = Vec::new();
    if let Some(p) = &cfg.post_auth {
        c.push((p.timeout_secs, "[post_auth] timeout".into()));
    }
    if let Some(l) = &cfg.ldap {
        c.push((l.timeout_secs, "[ldap] timeout".into()));
    }
    if let Some(r) = &cfg.radius {
        let n = r.servers.len() as u64 * (1 + r.retries);
        c.push((r.timeout_secs * n, format!("[radius] timeout × {n} attempts")));
    }
    c.into_iter().max_by_key(|(t, _)| *t)
}

/// The files the hooks read to reach PostgreSQL, as the OpenVPN user: the
/// password file (a root-only one is the usual slip: the CLI works, every
/// login fails) and the CA certificate.
fn pg_files(target: &pg::Target, whos: &[Who]) -> Vec<Finding> {
    let ca = match &target.tls {
        pg::Tls::VerifyFull(ca) => Some(ca),
        pg::Tls::Disable => None,
    };
    let mut found = Vec::new();
    for w in whos {
        let cannot: Vec<String> = (target.passfile.iter().chain(ca))
            .filter(|f| !w.can(f, R).unwrap_or(false))
            .map(|f| f.display().to_string())
            .collect();
        found.push(if cannot.is_empty() {
            ok("database-access", format!("{} can read the files the PostgreSQL URL names", w.name))
        } else {
            let g = w.name.split_once(':').map_or(w.name.as_str(), |(_, g)| g);
            error(
                "database-access",
                format!("{} cannot read {}", w.name, cannot.join(", ")),
                format!("chown root:{g} FILE && chmod 640 FILE (and let {g} search its directory)"),
            )
        });
    }
    found
}

/// A count from the database, 0 when there is none to ask.
fn count(store: Option<&Store>, f: fn(&Db) -> Result<i64>) -> i64 {
    store.and_then(|s| f(&s.conn).ok()).unwrap_or(0)
}

fn openvpn(
    cfg: &Config,
    store: Option<&Store>,
    conf: &[Directive],
    who: Option<&Who>,
    path: &Path,
    found: &mut Vec<Finding>,
) {
    let at = |d: &Directive| format!("{}:{}", path.display(), d.line);
    let num = |name: &str, default: u64| {
        ovpn_conf::last(conf, name).and_then(|d| d.args.first()).and_then(|v| v.parse::<u64>().ok()).unwrap_or(default)
    };
    let file = path.display();

    // script-security: 2 runs scripts, 3 also puts the password in the env.
    let level = num("script-security", 1);
    let via_env =
        ovpn_conf::last(conf, "auth-user-pass-verify").is_some_and(|d| d.args.get(1).is_some_and(|m| m == "via-env"));
    let need = if via_env { 3 } else { 2 };
    found.push(if level >= need {
        ok("script-security", format!("script-security {level}"))
    } else {
        error(
            "script-security",
            format!(
                "script-security {level}{}: OpenVPN will not run the hooks",
                if via_env { " with via-env" } else { "" }
            ),
            format!("set `script-security {need}` in {file}"),
        )
    });

    // The three hooks: there, and executable by OpenVPN's user.
    for (name, hook) in [
        ("auth-user-pass-verify", "auth-verify"),
        ("client-connect", "client-connect"),
        ("client-disconnect", "client-disconnect"),
    ] {
        let Some(d) = ovpn_conf::last(conf, name) else {
            let what = match hook {
                "auth-verify" => "tollgate does not check logins",
                "client-connect" => "no sessions are recorded and limits are not applied",
                _ => "sessions are never closed and usage is not charged",
            };
            found.push(error(
                "hooks",
                format!("{file} has no {name}: {what}"),
                format!("add the {name} line of the server.conf snippet"),
            ));
            continue;
        };
        let argv = d.args.first().map(|c| ovpn_conf::split(c)).unwrap_or_default();
        let Some(prog) = argv.first().map(PathBuf::from) else {
            found.push(error("hooks", format!("{}: {name} names no program", at(d)), "give it the hook's path"));
            continue;
        };
        let runs = who.is_none_or(|w| w.can(&prog, X).unwrap_or(false));
        found.push(if !prog.is_absolute() {
            error(
                "hooks",
                format!("{}: {name} runs {}, a relative path", at(d), prog.display()),
                "give the hook's absolute path",
            )
        } else if !prog.exists() {
            error(
                "hooks",
                format!("{}: {name} runs {}, which does not exist", at(d), prog.display()),
                "install tollgate (install.sh) or correct the path",
            )
        } else if !runs {
            let u = who.map_or("OpenVPN's user", |w| w.name.as_str());
            error(
                "hooks",
                format!("{}: {u} cannot execute {}", at(d), prog.display()),
                format!("chmod 755 {} (and every directory above it)", prog.display()),
            )
        } else {
            ok("hooks", format!("{name} runs {}", prog.display()))
        });
        // A hook that reads another config than this one.
        let hook_cfg = argv.iter().position(|a| a == "--config").and_then(|i| argv.get(i + 1));
        if let (Some(hc), Some(mine)) = (hook_cfg, &cfg.path) {
            if Path::new(hc) != mine {
                found.push(warning(
                    "hooks",
                    format!("{}: {name} reads {hc}, not {}", at(d), mine.display()),
                    "check the same config the hooks use: tollgate --config FILE doctor",
                ));
            }
        }
    }

    // tmp-dir: OpenVPN, as its user, creates the via-file and control
    // files there; a world-writable one without the sticky bit lets any
    // local user replace them.
    let tmp = ovpn_conf::last(conf, "tmp-dir").and_then(|d| d.args.first().cloned()).unwrap_or_else(|| "/tmp".into());
    let tmp = PathBuf::from(tmp);
    found.push(match std::fs::metadata(&tmp) {
        Err(e) => error("tmp-dir", format!("tmp-dir {}: {e}", tmp.display()), "create it, writable by OpenVPN's user"),
        Ok(m) if m.mode() & 0o002 != 0 && m.mode() & 0o1000 == 0 => error(
            "tmp-dir",
            format!(
                "tmp-dir {} is writable by every local user and not sticky: anyone can replace OpenVPN's auth files",
                tmp.display()
            ),
            format!("chmod 1777 {} (or a directory of OpenVPN's own, mode 0700)", tmp.display()),
        ),
        Ok(_) if who.is_some_and(|w| !w.can(&tmp, W | X).unwrap_or(false)) => error(
            "tmp-dir",
            format!("{} cannot write tmp-dir {}: every login fails", who.map_or("", |w| &w.name), tmp.display()),
            format!("make {} writable by OpenVPN's user", tmp.display()),
        ),
        Ok(_) => ok("tmp-dir", format!("{} is usable", tmp.display())),
    });

    // Session tokens: without external-auth, renegotiations never reach
    // tollgate, so a disabled, expired or over-quota user keeps the tunnel.
    let token = ovpn_conf::last(conf, "auth-gen-token");
    let external = token.is_some_and(|d| d.args.iter().any(|a| a == "external-auth"));
    match token {
        Some(d) if !external => found.push(error(
            "auth-gen-token",
            format!("{}: auth-gen-token without external-auth: renegotiations skip tollgate's checks", at(d)),
            "use `auth-gen-token 0 external-auth`",
        )),
        Some(_) => found.push(ok("auth-gen-token", "auth-gen-token with external-auth")),
        None if cfg.auth_method == AuthMethod::Oidc || count(store, tollgate_core::users::count_interactive) > 0 => {
            found.push(warning(
                "auth-gen-token",
                "no auth-gen-token: every renegotiation (hourly) asks for the code or a browser login again",
                "add `auth-gen-token 0 external-auth`",
            ))
        }
        None => {}
    }

    // Renegotiation and the handshake window.
    let reneg = num("reneg-sec", 3600);
    let hand = num("hand-window", 60);
    if external && reneg > 0 && reneg < MIN_RENEG_WITH_TOKEN {
        found.push(error(
            "reneg-sec",
            format!("reneg-sec {reneg} with session tokens: the new token can arrive after the next renegotiation, which then fails as Expired"),
            format!("set reneg-sec to {MIN_RENEG_WITH_TOKEN} or more (the default 3600 is right)"),
        ));
    } else if reneg == 0 {
        found.push(warning(
            "reneg-sec",
            "reneg-sec 0: accounts are never re-checked on renegotiation",
            "remove it (the default 3600 keeps the checkpoint)",
        ));
    } else {
        found.push(ok("reneg-sec", format!("reneg-sec {reneg}")));
    }
    let (deferred, pending) = windows(hand, reneg);
    match slowest_login(cfg) {
        Some((t, what)) if cfg.defer == Defer::Auto && t >= deferred => found.push(error(
            "hand-window",
            format!("OpenVPN waits {deferred} s for a deferred login (min of hand-window {hand}, reneg-sec/2), {what} allows {t} s: slow logins fail"),
            format!("raise hand-window above {t} (e.g. hand-window {}), or lower {what}", t + 10),
        )),
        _ => found.push(ok("hand-window", format!("OpenVPN waits {deferred} s for a deferred login"))),
    }
    if let Some(o) = &cfg.oidc {
        if o.login_timeout_secs > pending {
            found.push(error(
                "hand-window",
                format!("[oidc] login_timeout is {} s but OpenVPN holds a pending login at most {pending} s (max of hand-window, reneg-sec/2)", o.login_timeout_secs),
                format!("lower login_timeout to {pending}s or raise hand-window"),
            ));
        }
    }

    // The sweep's way to OpenVPN.
    let mgmt = ovpn_conf::last(conf, "management");
    let conf_mgmt = mgmt.map(|d| match d.args.as_slice() {
        [p, u, ..] if u == "unix" => format!("unix:{p}"),
        [h, p, ..] => format!("{h}:{p}"),
        _ => String::new(),
    });
    match (&cfg.management, &conf_mgmt, &cfg.status_file) {
        (None, None, None) => found.push(error(
            "management",
            format!("{file} has no management interface and the config no status_file: the sweep cannot see or cut clients"),
            "add `management /run/openvpn/tollgate.sock unix` to server.conf and management = \"unix:/run/openvpn/tollgate.sock\" to the config",
        )),
        (Some(m), Some(c), _) if m != c => found.push(error(
            "management",
            format!("the config's management = \"{m}\" is not what {file} opens ({c})"),
            format!("set management = \"{c}\" in the config"),
        )),
        (None, Some(c), None) => found.push(error(
            "management",
            format!("{file} opens {c} but the config has no management: the sweep cannot reach it"),
            format!("set management = \"{c}\" in the config"),
        )),
        (Some(m), None, _) => found.push(error(
            "management",
            format!("the config's management = \"{m}\" but {file} has no management line"),
            format!("add the matching management line to {file}"),
        )),
        _ => found.push(ok("management", "the sweep can reach OpenVPN")),
    }

    // More than one connection per user needs duplicate-cn with
    // username-as-common-name (or certificate-less logins).
    let dup = ovpn_conf::last(conf, "duplicate-cn").is_some();
    let multi = count(store, tollgate_core::plans::count_multi_connection);
    if !dup && multi > 0 {
        found.push(warning(
            "duplicate-cn",
            format!("{multi} plan(s) allow more than one connection, but without duplicate-cn OpenVPN drops a user's first tunnel when the second connects"),
            "add `duplicate-cn` (tollgate's limits decide how many connections a user may have)",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openvpn_wait_windows() {
        // Defaults: hand-window 60, reneg-sec 3600.
        assert_eq!(windows(60, 3600), (60, 1800));
        // A short reneg-sec caps the deferred wait; reneg-sec 0 leaves hand-window.
        assert_eq!(windows(60, 100), (50, 60));
        assert_eq!(windows(90, 0), (90, 90));
    }

    #[test]
    fn modes_decide_for_the_hook_user() {
        let dir = std::env::temp_dir().join(format!("tg-doctor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("f");
        std::fs::write(&f, "x").unwrap();
        use std::os::unix::fs::PermissionsExt;
        let me = std::fs::metadata(&f).unwrap();
        let stranger = Who { name: "s".into(), uid: me.uid() + 4242, gids: vec![me.gid() + 4242] };
        let member = Who { name: "m".into(), uid: me.uid() + 4242, gids: vec![me.gid()] };
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(!stranger.can(&f, R).unwrap());
        assert!(member.can(&f, R).unwrap() && !member.can(&f, W).unwrap());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(!member.can(&f, R).unwrap(), "a directory above that it cannot search");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_hooks_must_read_the_pgpass_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("tg-doctor-pg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let pass = dir.join("pgpass");
        std::fs::write(&pass, "*:*:tg:tg:secret\n").unwrap();
        let me = std::fs::metadata(&pass).unwrap();
        let hooks = Who { name: "nobody:nogroup".into(), uid: me.uid() + 4242, gids: vec![me.gid()] };
        let target = pg::Target::parse(&format!("postgresql://tg@127.0.0.1/tg?passfile={}", pass.display())).unwrap();
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
        let f = pg_files(&target, std::slice::from_ref(&hooks));
        assert!(matches!(f[0].status, Status::Error) && f[0].message.contains("cannot read"), "{:?}", f[0].message);
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o640)).unwrap();
        let f = pg_files(&target, std::slice::from_ref(&hooks));
        assert!(matches!(f[0].status, Status::Ok), "{:?}", f[0].message);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
