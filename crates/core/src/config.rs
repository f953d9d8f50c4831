//! `/etc/tollgate/tollgate.toml`: where the database is, which server this
//! host is, and the tunables. Every key has a sane default; unknown keys are
//! an error so that a typo never silently weakens policy.

use crate::units::parse_duration;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG: &str = "/etc/tollgate/tollgate.toml";
pub const DEFAULT_DATABASE: &str = "/var/lib/tollgate/tollgate.db";

/// The store: an SQLite file on this machine, or a PostgreSQL database
/// shared by a fleet of servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(crate::pg::Target),
}

impl Database {
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Database::Sqlite(p) => Some(p),
            Database::Postgres(_) => None,
        }
    }
}

/// The path, or the URL (which holds no secret).
impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(p) => write!(f, "{}", p.display()),
            Database::Postgres(t) => write!(f, "{t}"),
        }
    }
}

/// Where client-disconnect keeps records while the database cannot take
/// them, when the store is PostgreSQL (beside the file for SQLite).
pub const DEFAULT_PG_SPOOL: &str = "/var/lib/tollgate/spool";

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the configuration was read from (None: built-in defaults).
    pub path: Option<PathBuf>,
    pub database: Database,
    /// `spool`: where disconnect records wait (None: the default for the store).
    pub spool: Option<PathBuf>,
    /// This host's server name; `--server` on a hook overrides it.
    pub server: Option<String>,
    pub log_level: LogLevel,
    pub argon2: Argon2Params,
    pub lockout: Lockout,
    /// How long a hook waits for a busy database before giving up.
    pub busy_timeout_ms: u64,
    /// How long auth events are kept.
    pub retention_secs: i64,
    /// sweep's management interface: `unix:/path` or `HOST:PORT`.
    pub management: Option<String>,
    /// sweep's status file, when there is no management interface.
    pub status_file: Option<PathBuf>,
    pub mfa: Mfa,
    /// Deferred auth: `auto` when OpenVPN offers auth_control_file, or `never`.
    pub defer: Defer,
    pub devices: Devices,
    pub client_checks: crate::devices::ClientRules,
    /// The auth method of users and groups that name none (`[auth] method`).
    pub auth_method: crate::method::AuthMethod,
    /// The post-auth program, if one is configured.
    pub post_auth: Option<PostAuth>,
    /// `[auth] provision_plan`: unknown users who pass a directory method
    /// get an account on this plan.
    pub provision_plan: Option<String>,
    pub ldap: Option<Ldap>,
    pub radius: Option<Radius>,
    pub oidc: Option<Oidc>,
    /// `[self_service]`: the users' own site in `tollgate web` (None: off).
    pub self_service: Option<SelfService>,
    /// The executable that talks to directories (`tollgate-directory`).
    pub directory_helper: Option<PathBuf>,
}

/// `[ldap]`: where and how to check a password against a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ldap {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// The service account for search-then-bind (with its password file).
    pub bind_dn: Option<String>,
    pub bind_password_file: Option<PathBuf>,
    pub base_dn: Option<String>,
    /// `{username}` is replaced by the escaped (RFC 4515) username.
    pub user_filter: String,
    /// Direct bind instead of a search: a DN template with `{username}`.
    pub user_dn: Option<String>,
    pub starttls: bool,
    /// CA certificates (PEM) for ldaps:// and StartTLS; default: the system's.
    pub ca_file: Option<PathBuf>,
    /// A group DN the user must be in.
    pub required_group: Option<String>,
    /// The user attribute that lists groups (directories with memberOf).
    pub group_attribute: String,
    /// The attribute that must hold exactly the name the client sent
    /// (`uid`; `sAMAccountName` on Active Directory).
    pub name_attribute: String,
    /// Group search instead: under this base, with `group_filter` (`{dn}`).
    pub group_search_base: Option<String>,
    pub group_filter: String,
    pub timeout_secs: u64,
    /// Directory group DN → tollgate group, first match wins.
    pub groups: Vec<(String, String)>,
}

/// `[radius]`: the RADIUS servers that check passwords (PAP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Radius {
    /// `host:port` (port 1812 when left out), asked in this order.
    pub servers: Vec<String>,
    /// The shared secret, read by the directory helper at each login.
    pub secret_file: PathBuf,
    /// How long one attempt waits for an answer.
    pub timeout_secs: u64,
    /// Attempts per server after the first (the same packet again).
    pub retries: u64,
    /// Sent as NAS-Identifier, for the server's logs and policies.
    pub nas_identifier: String,
    /// Refuse answers without a valid Message-Authenticator (BlastRADIUS,
    /// CVE-2024-3596); off only for servers too old to send one.
    pub require_message_authenticator: bool,
    /// Class or Filter-Id value → tollgate group, first match wins.
    pub groups: Vec<(String, String)>,
}

/// `[oidc]`: single sign-on through an OpenID provider (web auth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oidc {
    /// The provider's issuer URL; its discovery document is
    /// `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// The client secret, read by `tollgate web` when it needs it.
    pub client_secret_file: PathBuf,
    /// Where the provider sends the browser back (`tollgate web`'s
    /// `/oidc/callback`, as the browser reaches it).
    pub redirect_url: String,
    /// The page the client's WEB_AUTH link opens: `redirect_url` with its
    /// last path segment replaced by `login`, unless set.
    pub login_url: String,
    /// The ID token claim that must equal the VPN username.
    pub username_claim: String,
    /// The ID token claim that lists the user's groups.
    pub groups_claim: String,
    /// The user must be in at least one of these (none: anyone).
    pub required_groups: Vec<String>,
    /// Scopes asked for, `openid` first.
    pub scopes: String,
    /// How long a login link waits for the browser (OpenVPN's pending
    /// window).
    pub login_timeout_secs: u64,
    /// How often `tollgate sweep` asks the provider again about each open
    /// single sign-on tunnel (a refresh); `None`: never ("off").
    pub recheck_every_secs: Option<u64>,
    /// Each request to the provider (discovery, keys, token).
    pub timeout_secs: u64,
    /// CA certificates (PEM) for the provider's TLS; default: the system's.
    pub ca_file: Option<PathBuf>,
    /// Clients that cannot do web auth may log in with the user's local
    /// password instead (users who have one).
    pub password_fallback: bool,
    /// Provider group → tollgate group, first match wins.
    pub groups: Vec<(String, String)>,
}

/// `[self_service]`: what users may do on their own site (`tollgate web`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfService {
    /// The site is served (`enabled = false` turns it off, section kept).
    pub enabled: bool,
    /// Users download their profiles.
    pub download: bool,
    /// Users enrol (or replace) their own second factor.
    pub enrol: bool,
    /// Local users change their own password.
    pub password_change: bool,
    /// Users remove their own registered devices.
    pub remove_devices: bool,
    /// How long a sign-in lasts.
    pub session_secs: i64,
    /// The site's address as browsers reach it (`https://…` makes cookies
    /// Secure even behind a proxy that speaks plain HTTP to tollgate web).
    pub public_url: Option<String>,
    /// Proxies whose X-Forwarded-For names the client (the address rate
    /// limits and the login record use).
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for SelfService {
    fn default() -> Self {
        SelfService {
            enabled: true,
            download: true,
            enrol: true,
            password_change: true,
            remove_devices: true,
            session_secs: 8 * 3600,
            public_url: None,
            trusted_proxies: vec![],
        }
    }
}

impl SelfService {
    fn from_raw(r: RawSelfService) -> Result<SelfService> {
        let d = SelfService::default();
        let session_secs = match r.session_lifetime {
            None => d.session_secs,
            Some(t) => parse_duration(&t).context("session_lifetime")?,
        };
        if !(60..=30 * 86400).contains(&session_secs) {
            bail!("session_lifetime must be between 1m and 30d");
        }
        if let Some(u) = &r.public_url {
            if !(u.starts_with("https://") || u.starts_with("http://")) || u.chars().any(|c| c.is_control() || c == ' ')
            {
                bail!("public_url must be an http:// or https:// URL");
            }
        }
        let trusted_proxies = r
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .map(|a| a.parse().map_err(|_| anyhow::anyhow!("trusted_proxies: {a:?} is not an IP address")))
            .collect::<Result<_>>()?;
        Ok(SelfService {
            enabled: r.enabled.unwrap_or(d.enabled),
            download: r.download.unwrap_or(d.download),
            enrol: r.enrol.unwrap_or(d.enrol),
            password_change: r.password_change.unwrap_or(d.password_change),
            remove_devices: r.remove_devices.unwrap_or(d.remove_devices),
            session_secs,
            public_url: r.public_url.map(|u| u.trim_end_matches('/').to_string()),
            trusted_proxies,
        })
    }
}

/// `[post_auth]`: the program run after tollgate's own checks (or instead
/// of the password check, for users whose method is `program`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostAuth {
    /// argv, run without a shell; the first element is an absolute path.
    pub command: Vec<String>,
    pub timeout_secs: u64,
    /// Shown to clients that announce `crtext` while the program runs.
    pub pending_text: String,
}

pub const DEFAULT_PENDING_TEXT: &str = "Waiting for your login to be approved";
/// The longest `[post_auth] timeout` allowed: OpenVPN's pending window is
/// capped by hand-window and reneg-sec/2 anyway.
pub const MAX_POST_AUTH_TIMEOUT: u64 = 300;

/// Device binding defaults (a user's own setting wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Devices {
    pub binding: crate::devices::Binding,
    pub max_devices: i64,
    /// The variable that carries the hardware id: IV_HWADDR or a UV_ name.
    pub source: String,
}

impl Default for Devices {
    fn default() -> Self {
        Devices { binding: crate::devices::Binding::Off, max_devices: 1, source: "IV_HWADDR".into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defer {
    Auto,
    Never,
}

/// How the second factor is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaMode {
    /// The code comes with the password (`static-challenge` in the profile).
    Static,
    /// After a right password the server asks for the code (CRV1).
    Dynamic,
    /// Static when the client sends SCRV1, otherwise dynamic.
    Auto,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mfa {
    pub mode: MfaMode,
    /// Shown in authenticator apps.
    pub issuer: String,
    /// How long a dynamic challenge may be answered.
    pub challenge_ttl_secs: i64,
}

impl Default for Mfa {
    fn default() -> Self {
        Mfa { mode: MfaMode::Auto, issuer: "tollgate".into(), challenge_ttl_secs: 180 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

/// OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane): about 35 ms here.
impl Default for Argon2Params {
    fn default() -> Self {
        Argon2Params { m_cost_kib: 19456, t_cost: 2, p_cost: 1 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    /// Failures within `window_secs` that lock the account (0 = never lock).
    pub max_failures: u32,
    pub window_secs: i64,
    pub duration_secs: i64,
    /// Failures from one client address within `window_secs` (any user,
    /// unknown names included) that block the address for `duration_secs`
    /// (0 = never). While blocked, its attempts no longer count against
    /// accounts, so one address cannot lock out every account it can name.
    pub per_source: u32,
}

impl Default for Lockout {
    fn default() -> Self {
        Lockout { max_failures: 10, window_secs: 15 * 60, duration_secs: 15 * 60, per_source: 30 }
    }
}

impl Lockout {
    /// The same arithmetic, with the per-address threshold.
    pub fn for_source(&self) -> Lockout {
        Lockout { max_failures: self.per_source, ..*self }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            path: None,
            database: Database::Sqlite(PathBuf::from(DEFAULT_DATABASE)),
            spool: None,
            server: None,
            log_level: LogLevel::Info,
            argon2: Argon2Params::default(),
            lockout: Lockout::default(),
            busy_timeout_ms: 5000,
            retention_secs: 90 * 86400,
            management: None,
            status_file: None,
            mfa: Mfa::default(),
            defer: Defer::Auto,
            devices: Devices::default(),
            client_checks: Default::default(),
            auth_method: crate::method::AuthMethod::Local,
            post_auth: None,
            provision_plan: None,
            ldap: None,
            radius: None,
            oidc: None,
            self_service: None,
            directory_helper: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    database: Option<String>,
    spool: Option<PathBuf>,
    server: Option<String>,
    log_level: Option<String>,
    busy_timeout: Option<String>,
    retention: Option<String>,
    management: Option<String>,
    status_file: Option<PathBuf>,
    argon2: Option<RawArgon2>,
    lockout: Option<RawLockout>,
    mfa: Option<RawMfa>,
    defer: Option<String>,
    devices: Option<RawDevices>,
    client_checks: Option<RawClientChecks>,
    auth: Option<RawAuth>,
    post_auth: Option<RawPostAuth>,
    ldap: Option<RawLdap>,
    radius: Option<RawRadius>,
    oidc: Option<RawOidc>,
    self_service: Option<RawSelfService>,
    directory_helper: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSelfService {
    enabled: Option<bool>,
    download: Option<bool>,
    enrol: Option<bool>,
    password_change: Option<bool>,
    remove_devices: Option<bool>,
    session_lifetime: Option<String>,
    public_url: Option<String>,
    trusted_proxies: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    method: Option<String>,
    provision_plan: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLdap {
    url: String,
    bind_dn: Option<String>,
    bind_password_file: Option<PathBuf>,
    base_dn: Option<String>,
    user_filter: Option<String>,
    user_dn: Option<String>,
    starttls: Option<bool>,
    ca_file: Option<PathBuf>,
    required_group: Option<String>,
    group_attribute: Option<String>,
    name_attribute: Option<String>,
    allow_plaintext: Option<bool>,
    group_search_base: Option<String>,
    group_filter: Option<String>,
    timeout: Option<String>,
    groups: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRadius {
    servers: Vec<String>,
    secret_file: PathBuf,
    timeout: Option<String>,
    retries: Option<u64>,
    nas_identifier: Option<String>,
    require_message_authenticator: Option<bool>,
    groups: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOidc {
    issuer: String,
    client_id: String,
    client_secret_file: PathBuf,
    redirect_url: String,
    login_url: Option<String>,
    username_claim: Option<String>,
    groups_claim: Option<String>,
    required_groups: Option<Vec<String>>,
    scopes: Option<String>,
    login_timeout: Option<String>,
    recheck_every: Option<String>,
    timeout: Option<String>,
    ca_file: Option<PathBuf>,
    password_fallback: Option<bool>,
    groups: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPostAuth {
    command: Vec<String>,
    timeout: Option<String>,
    pending_text: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevices {
    binding: Option<String>,
    max_devices: Option<i64>,
    source: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClientChecks {
    platforms: Option<Vec<String>>,
    min_version: Option<String>,
    require: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMfa {
    mode: Option<String>,
    issuer: Option<String>,
    challenge_ttl: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArgon2 {
    memory_kib: Option<u32>,
    iterations: Option<u32>,
    parallelism: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLockout {
    max_failures: Option<u32>,
    per_source: Option<u32>,
    window: Option<String>,
    duration: Option<String>,
}

impl Config {
    /// Where client-disconnect's records wait while the database cannot
    /// take them (`spool`, or beside the SQLite file).
    pub fn spool_dir(&self) -> PathBuf {
        if let Some(s) = &self.spool {
            return s.clone();
        }
        match &self.database {
            Database::Sqlite(db) => {
                let mut p = db.as_os_str().to_owned();
                p.push(".spool");
                PathBuf::from(p)
            }
            Database::Postgres(_) => PathBuf::from(DEFAULT_PG_SPOOL),
        }
    }

    /// Find the config: an explicit path, else `TOLLGATE_CONFIG`, else the
    /// default path. An explicitly named file must exist; the default path
    /// may be absent (built-in defaults apply).
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        if let Some(p) = explicit {
            return Config::from_file(p);
        }
        if let Some(p) = std::env::var_os("TOLLGATE_CONFIG").filter(|p| !p.is_empty()) {
            return Config::from_file(Path::new(&p));
        }
        let p = Path::new(DEFAULT_CONFIG);
        if p.exists() {
            Config::from_file(p)
        } else {
            Ok(Config::default())
        }
    }

    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
        let mut cfg = Config::parse(&text).with_context(|| format!("bad config {}", path.display()))?;
        cfg.path = Some(path.to_path_buf());
        // A relative database path is relative to the config file.
        if let (Database::Sqlite(db), Some(dir)) = (&mut cfg.database, path.parent()) {
            if db.is_relative() {
                *db = dir.join(&*db);
            }
        }
        Ok(cfg)
    }

    pub fn parse(text: &str) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            // toml's messages span several lines; keep the one that matters.
            let msg = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
            match e.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    anyhow::anyhow!("line {line}: {msg}")
                }
                None => anyhow::anyhow!("{msg}"),
            }
        })?;
        let mut cfg = Config::default();
        if let Some(db) = raw.database {
            if db.is_empty() {
                bail!("database must not be empty");
            }
            cfg.database = if db.starts_with("postgresql:") || db.starts_with("postgres:") {
                Database::Postgres(crate::pg::Target::parse(&db).map_err(|e| anyhow::anyhow!("database: {e}"))?)
            } else {
                Database::Sqlite(PathBuf::from(db))
            };
        }
        if let Some(s) = raw.spool {
            if !s.is_absolute() {
                bail!("spool must be an absolute path");
            }
            cfg.spool = Some(s);
        }
        if let Some(s) = raw.server {
            crate::names::check_name("server", &s)?;
            cfg.server = Some(s);
        }
        if let Some(l) = raw.log_level {
            cfg.log_level = match l.as_str() {
                "error" => LogLevel::Error,
                "warn" => LogLevel::Warn,
                "info" => LogLevel::Info,
                "debug" => LogLevel::Debug,
                other => bail!("log_level must be error, warn, info or debug, not {other:?}"),
            };
        }
        if let Some(t) = raw.busy_timeout {
            let secs = parse_duration(&t).context("busy_timeout")?;
            cfg.busy_timeout_ms = (secs as u64) * 1000;
        }
        if let Some(r) = raw.retention {
            cfg.retention_secs = parse_duration(&r).context("retention")?;
        }
        cfg.management = raw.management.filter(|m| !m.is_empty());
        cfg.status_file = raw.status_file;
        if let Some(a) = raw.argon2 {
            let p = &mut cfg.argon2;
            p.m_cost_kib = a.memory_kib.unwrap_or(p.m_cost_kib);
            p.t_cost = a.iterations.unwrap_or(p.t_cost);
            p.p_cost = a.parallelism.unwrap_or(p.p_cost);
            if p.m_cost_kib < 8 * p.p_cost || p.t_cost < 1 || p.p_cost < 1 {
                bail!("argon2: memory_kib >= 8*parallelism, iterations >= 1, parallelism >= 1");
            }
        }
        if let Some(l) = raw.lockout {
            let o = &mut cfg.lockout;
            o.max_failures = l.max_failures.unwrap_or(o.max_failures);
            o.per_source = l.per_source.unwrap_or(o.per_source);
            if let Some(w) = l.window {
                o.window_secs = parse_duration(&w).context("lockout.window")?;
            }
            if let Some(d) = l.duration {
                o.duration_secs = parse_duration(&d).context("lockout.duration")?;
            }
        }
        if let Some(d) = raw.defer {
            cfg.defer = match d.as_str() {
                "auto" => Defer::Auto,
                "never" => Defer::Never,
                other => bail!("defer must be auto or never, not {other:?}"),
            };
        }
        if let Some(d) = raw.devices {
            if let Some(b) = d.binding {
                cfg.devices.binding = crate::devices::Binding::parse(&b)
                    .ok_or_else(|| anyhow::anyhow!("devices.binding must be off, auto or manual, not {b:?}"))?;
            }
            if let Some(n) = d.max_devices {
                if n < 1 {
                    bail!("devices.max_devices must be at least 1");
                }
                cfg.devices.max_devices = n;
            }
            if let Some(src) = d.source {
                let ok = (src.starts_with("IV_") || src.starts_with("UV_"))
                    && src.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !ok {
                    bail!("devices.source must be IV_HWADDR or a UV_ variable name, not {src:?}");
                }
                cfg.devices.source = src;
            }
        }
        if let Some(c) = raw.client_checks {
            cfg.client_checks.platforms = c.platforms.unwrap_or_default();
            cfg.client_checks.min_version = c.min_version;
            let req = c.require.unwrap_or_default();
            if let Some(bad) = req.keys().find(|k| !k.starts_with("UV_")) {
                bail!("client_checks.require takes UV_ variables, not {bad:?}");
            }
            cfg.client_checks.require = req;
        }
        if let Some(a) = raw.auth {
            if let Some(m) = a.method {
                cfg.auth_method = m.parse().context("auth.method")?;
            }
            if let Some(p) = a.provision_plan {
                crate::names::check_name("plan", &p).context("auth.provision_plan")?;
                cfg.provision_plan = Some(p);
            }
        }
        if let Some(l) = raw.ldap {
            cfg.ldap = Some(Ldap::from_raw(l).context("ldap")?);
        }
        if let Some(r) = raw.radius {
            cfg.radius = Some(Radius::from_raw(r).context("radius")?);
        }
        if let Some(o) = raw.oidc {
            cfg.oidc = Some(Oidc::from_raw(o).context("oidc")?);
        }
        if let Some(w) = raw.self_service {
            cfg.self_service = Some(SelfService::from_raw(w).context("self_service")?);
        }
        cfg.directory_helper = raw.directory_helper;
        if cfg.auth_method == crate::method::AuthMethod::Ldap && cfg.ldap.is_none() {
            bail!("auth.method is \"ldap\" but there is no [ldap] section");
        }
        if cfg.auth_method == crate::method::AuthMethod::Radius && cfg.radius.is_none() {
            bail!("auth.method is \"radius\" but there is no [radius] section");
        }
        if cfg.auth_method == crate::method::AuthMethod::Oidc && cfg.oidc.is_none() {
            bail!("auth.method is \"oidc\" but there is no [oidc] section");
        }
        if let Some(p) = raw.post_auth {
            cfg.post_auth = Some(PostAuth::from_raw(p)?);
        }
        if cfg.auth_method == crate::method::AuthMethod::Program && cfg.post_auth.is_none() {
            bail!("auth.method is \"program\" but there is no [post_auth] command");
        }
        if let Some(m) = raw.mfa {
            if let Some(mode) = m.mode {
                cfg.mfa.mode = match mode.as_str() {
                    "static" => MfaMode::Static,
                    "dynamic" => MfaMode::Dynamic,
                    "auto" => MfaMode::Auto,
                    other => bail!("mfa.mode must be static, dynamic or auto, not {other:?}"),
                };
            }
            if let Some(i) = m.issuer {
                if i.is_empty() || i.contains(':') {
                    bail!("mfa.issuer must be non-empty and without ':'");
                }
                cfg.mfa.issuer = i;
            }
            if let Some(t) = m.challenge_ttl {
                cfg.mfa.challenge_ttl_secs = parse_duration(&t).context("mfa.challenge_ttl")?.max(1);
            }
        }
        Ok(cfg)
    }
}

impl Ldap {
    fn from_raw(l: RawLdap) -> Result<Ldap> {
        if !(l.url.starts_with("ldap://") || l.url.starts_with("ldaps://")) {
            bail!("url must start with ldap:// or ldaps://, not {:?}", l.url);
        }
        // Passwords in clear only to this host, or when the admin says so.
        let tls = l.url.starts_with("ldaps://") || l.starttls == Some(true);
        let host = l.url.split("://").nth(1).unwrap_or("").split(['/', '?']).next().unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h).trim_matches(['[', ']']);
        let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !tls && !loopback && l.allow_plaintext != Some(true) {
            bail!("{} sends passwords in clear: use ldaps://, starttls = true, or allow_plaintext = true", l.url);
        }
        let user_filter = l.user_filter.unwrap_or_else(|| "(uid={username})".into());
        match (&l.user_dn, &l.bind_dn, &l.bind_password_file, &l.base_dn) {
            (Some(t), ..) if !t.contains("{username}") => bail!("user_dn must contain {{username}}"),
            (Some(_), ..) => {}
            (None, Some(_), Some(_), Some(_)) if user_filter.contains("{username}") => {}
            (None, Some(_), Some(_), Some(_)) => bail!("user_filter must contain {{username}}"),
            (None, ..) => {
                bail!("set user_dn (direct bind) or bind_dn, bind_password_file and base_dn (search, then bind)")
            }
        }
        let group_filter = l.group_filter.unwrap_or_else(|| "(member={dn})".into());
        if l.group_search_base.is_some() && !group_filter.contains("{dn}") {
            bail!("group_filter must contain {{dn}}");
        }
        let timeout_secs = directory_timeout(l.timeout)?;
        let groups = group_mapping(l.groups)?;
        Ok(Ldap {
            url: l.url,
            bind_dn: l.bind_dn,
            bind_password_file: l.bind_password_file,
            base_dn: l.base_dn,
            user_filter,
            user_dn: l.user_dn,
            starttls: l.starttls.unwrap_or(false),
            ca_file: l.ca_file,
            required_group: l.required_group,
            group_attribute: l.group_attribute.unwrap_or_else(|| "memberOf".into()),
            name_attribute: l.name_attribute.unwrap_or_else(|| "uid".into()),
            group_search_base: l.group_search_base,
            group_filter,
            timeout_secs,
            groups,
        })
    }
}

/// A directory's `timeout`: 5 s unless set, between 1 s and 60 s.
fn directory_timeout(t: Option<String>) -> Result<u64> {
    let secs = match t {
        None => 5,
        Some(t) => parse_duration(&t).context("timeout")?.max(0) as u64,
    };
    if !(1..=60).contains(&secs) {
        bail!("timeout must be between 1s and 60s");
    }
    Ok(secs)
}

/// A directory's `[….groups]` table, in the file's order.
fn group_mapping(t: Option<toml::Table>) -> Result<Vec<(String, String)>> {
    let mut groups = Vec::new();
    for (from, g) in t.unwrap_or_default() {
        let Some(g) = g.as_str() else { bail!("groups: {from:?} must map to a group name") };
        crate::names::check_name("group", g).context("groups")?;
        groups.push((from, g.to_string()));
    }
    Ok(groups)
}

impl Radius {
    fn from_raw(r: RawRadius) -> Result<Radius> {
        if r.servers.is_empty() {
            bail!("servers must name at least one server: [\"127.0.0.1:1812\"]");
        }
        let mut servers = Vec::new();
        for s in r.servers {
            servers.push(radius_server(&s).with_context(|| format!("servers: {s:?}"))?);
        }
        let retries = r.retries.unwrap_or(1);
        if retries > 5 {
            bail!("retries must be between 0 and 5");
        }
        let nas_identifier = r.nas_identifier.unwrap_or_else(|| "tollgate".into());
        if nas_identifier.is_empty() || nas_identifier.len() > 253 || nas_identifier.chars().any(char::is_control) {
            bail!("nas_identifier must be 1 to 253 bytes without control characters");
        }
        Ok(Radius {
            servers,
            secret_file: r.secret_file,
            timeout_secs: directory_timeout(r.timeout)?,
            retries,
            nas_identifier,
            require_message_authenticator: r.require_message_authenticator.unwrap_or(true),
            groups: group_mapping(r.groups)?,
        })
    }
}

/// The longest login link (WEB_AUTH URL) we hand out: OpenVPN 2.6's
/// client drops longer ones.
pub const MAX_LOGIN_LINK: usize = 240;

impl Oidc {
    fn from_raw(o: RawOidc) -> Result<Oidc> {
        let url = |what: &str, u: &str| -> Result<()> {
            let rest = u.strip_prefix("https://").or_else(|| u.strip_prefix("http://"));
            match rest {
                Some(r) if !r.is_empty() && !r.starts_with('/') && !u.chars().any(|c| c.is_control() || c == ' ') => {
                    Ok(())
                }
                _ => bail!("{what} must be an http:// or https:// URL, not {u:?}"),
            }
        };
        url("issuer", &o.issuer)?;
        url("redirect_url", &o.redirect_url)?;
        if o.redirect_url.contains(['?', '#']) {
            bail!("redirect_url must have no query or fragment");
        }
        let login_url = match o.login_url {
            Some(l) => l,
            None => match o.redirect_url.rsplit_once('/') {
                Some((base, last)) if !last.is_empty() && base.contains("//") && base.len() > 8 => {
                    format!("{base}/login")
                }
                _ => bail!("redirect_url needs a path (https://vpn.example.org/oidc/callback), or set login_url"),
            },
        };
        url("login_url", &login_url)?;
        if login_url.contains(['?', '#']) {
            bail!("login_url must have no query or fragment");
        }
        // The link is login_url?l=<26 characters>.
        if login_url.len() + 29 > MAX_LOGIN_LINK {
            bail!("login_url is too long: OpenVPN clients drop links over {MAX_LOGIN_LINK} characters");
        }
        if o.client_id.is_empty() || o.client_id.chars().any(char::is_control) {
            bail!("client_id must be non-empty");
        }
        let claim = |what: &str, c: Option<String>, default: &str| -> Result<String> {
            let c = c.unwrap_or_else(|| default.into());
            if c.is_empty() || c.chars().any(|ch| ch.is_control() || ch == ' ') {
                bail!("{what} must be a claim name");
            }
            Ok(c)
        };
        let scopes = o.scopes.unwrap_or_else(|| "openid profile".into());
        if scopes.split(' ').next() != Some("openid") || scopes.chars().any(char::is_control) {
            bail!("scopes must start with openid (space-separated)");
        }
        let login_timeout_secs = match o.login_timeout {
            None => 120,
            Some(t) => parse_duration(&t).context("login_timeout")?.max(0) as u64,
        };
        if !(10..=MAX_POST_AUTH_TIMEOUT).contains(&login_timeout_secs) {
            bail!("login_timeout must be between 10s and {MAX_POST_AUTH_TIMEOUT}s");
        }
        let recheck_every_secs = match o.recheck_every.as_deref().map(str::trim) {
            None => Some(300),
            Some(off) if off.eq_ignore_ascii_case("off") => None,
            Some(t) => match parse_duration(t).context("recheck_every")? {
                n if n >= 1 => Some(n as u64),
                _ => bail!("recheck_every must be at least 1s, or \"off\""),
            },
        };
        Ok(Oidc {
            issuer: o.issuer.trim_end_matches('/').to_string(),
            client_id: o.client_id,
            client_secret_file: o.client_secret_file,
            redirect_url: o.redirect_url,
            login_url,
            username_claim: claim("username_claim", o.username_claim, "preferred_username")?,
            groups_claim: claim("groups_claim", o.groups_claim, "groups")?,
            required_groups: o.required_groups.unwrap_or_default(),
            scopes,
            login_timeout_secs,
            recheck_every_secs,
            timeout_secs: directory_timeout(o.timeout)?,
            ca_file: o.ca_file,
            password_fallback: o.password_fallback.unwrap_or(false),
            groups: group_mapping(o.groups)?,
        })
    }
}

/// `host:port`, `host`, `[v6]:port` or `v6`: with the port, 1812 by default.
fn radius_server(s: &str) -> Result<String> {
    if s.is_empty() || s.contains(['/', ' ']) || s.chars().any(char::is_control) {
        bail!("not a host or host:port");
    }
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(std::net::SocketAddr::new(ip, 1812).to_string());
    }
    if s.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(s.to_string());
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.contains([':', '[', ']']) => {
            port.parse::<u16>().ok().filter(|p| *p > 0).context("bad port")?;
            Ok(s.to_string())
        }
        None if !s.contains(['[', ']']) => Ok(format!("{s}:1812")),
        _ => bail!("not a host or host:port"),
    }
}

impl PostAuth {
    fn from_raw(p: RawPostAuth) -> Result<PostAuth> {
        match p.command.first() {
            None => bail!("post_auth.command must name a program: [\"/etc/tollgate/post-auth\", ...]"),
            Some(prog) if !prog.starts_with('/') => {
                bail!("post_auth.command must start with an absolute path (it runs without a shell or PATH), not {prog:?}")
            }
            Some(_) => {}
        }
        if p.command.iter().any(|a| a.contains('\0')) {
            bail!("post_auth.command must not contain NUL characters");
        }
        let timeout_secs = match p.timeout {
            None => 10,
            Some(t) => parse_duration(&t).context("post_auth.timeout")? as u64,
        };
        if !(1..=MAX_POST_AUTH_TIMEOUT).contains(&timeout_secs) {
            bail!("post_auth.timeout must be between 1s and {MAX_POST_AUTH_TIMEOUT}s");
        }
        let pending_text = p.pending_text.unwrap_or_else(|| DEFAULT_PENDING_TEXT.to_string());
        if pending_text.is_empty() || pending_text.len() > 200 || pending_text.chars().any(char::is_control) {
            bail!("post_auth.pending_text must be 1 to 200 characters on one line");
        }
        Ok(PostAuth { command: p.command, timeout_secs, pending_text })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.database, Database::Sqlite(PathBuf::from(DEFAULT_DATABASE)));
        assert_eq!(c.spool_dir(), PathBuf::from("/var/lib/tollgate/tollgate.db.spool"));
        let c = Config::parse("database = \"postgresql://tollgate@/tollgate\"").unwrap();
        assert!(matches!(c.database, Database::Postgres(_)));
        assert_eq!(c.spool_dir(), PathBuf::from(DEFAULT_PG_SPOOL));
        let e = Config::parse("database = \"postgresql://tollgate:pw@db/tollgate\"").unwrap_err();
        assert!(format!("{e:#}").contains("no password in the URL"), "{e:#}");
        assert_eq!(c.lockout, Lockout::default());
        let c = Config::parse(
            "database = \"/tmp/x.db\"\nserver = \"nl-1\"\n[lockout]\nmax_failures = 3\nwindow = \"1m\"\n[argon2]\nmemory_kib = 8192\n",
        )
        .unwrap();
        assert_eq!(c.server.as_deref(), Some("nl-1"));
        assert_eq!(c.lockout.max_failures, 3);
        assert_eq!(c.lockout.window_secs, 60);
        assert_eq!(c.argon2.m_cost_kib, 8192);
    }

    #[test]
    fn auth_method_and_post_auth() {
        use crate::method::AuthMethod;
        let c = Config::parse("").unwrap();
        assert_eq!((c.auth_method, c.post_auth), (AuthMethod::Local, None));
        let c = Config::parse(
            "[auth]\nmethod = \"program\"\n[post_auth]\ncommand = [\"/usr/bin/x\", \"-v\"]\ntimeout = \"20s\"\n",
        )
        .unwrap();
        assert_eq!(c.auth_method, AuthMethod::Program);
        let p = c.post_auth.unwrap();
        assert_eq!((p.command.len(), p.timeout_secs, p.pending_text.as_str()), (2, 20, DEFAULT_PENDING_TEXT));
        for (bad, why) in [
            ("[auth]\nmethod = \"program\"\n", "no [post_auth]"),
            ("[auth]\nmethod = \"kerberos\"\n", "kerberos"),
            ("[post_auth]\ncommand = []\n", "must name a program"),
            ("[post_auth]\ncommand = [\"post-auth\"]\n", "absolute path"),
            ("[post_auth]\ncommand = [\"/x\"]\ntimeout = \"1h\"\n", "between 1s"),
            ("[post_auth]\ncommand = [\"/x\"]\npending_text = \"a\\nb\"\n", "one line"),
        ] {
            let e = format!("{:#}", Config::parse(bad).unwrap_err());
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn ldap_section() {
        let c = Config::parse(
            "[auth]\nmethod = \"ldap\"\nprovision_plan = \"basic\"\n[ldap]\nurl = \"ldap://127.0.0.1:389\"\nbind_dn = \"cn=r\"\nbind_password_file = \"/x\"\nbase_dn = \"dc=e\"\n[ldap.groups]\n\"cn=z\" = \"zeta\"\n\"cn=a\" = \"alpha\"\n",
        )
        .unwrap();
        let l = c.ldap.unwrap();
        assert_eq!(l.user_filter, "(uid={username})");
        assert_eq!(l.name_attribute, "uid");
        for ok in ["ldaps://ldap.example.org", "ldap://[::1]:389", "ldap://localhost"] {
            Config::parse(&format!("[ldap]\nurl = \"{ok}\"\nuser_dn = \"uid={{username}}\"\n")).unwrap();
        }
        Config::parse("[ldap]\nurl = \"ldap://h\"\nstarttls = true\nuser_dn = \"uid={username}\"\n").unwrap();
        Config::parse("[ldap]\nurl = \"ldap://h\"\nallow_plaintext = true\nuser_dn = \"uid={username}\"\n").unwrap();
        assert_eq!(l.timeout_secs, 5);
        let order: Vec<&str> = l.groups.iter().map(|(_, g)| g.as_str()).collect();
        assert_eq!(order, ["zeta", "alpha"], "first match wins: the file's order is kept");
        assert_eq!(c.provision_plan.as_deref(), Some("basic"));
        for (bad, why) in [
            ("[auth]\nmethod = \"ldap\"\n", "no [ldap] section"),
            ("[ldap]\nurl = \"http://x\"\nuser_dn = \"uid={username}\"\n", "ldap:// or ldaps://"),
            ("[ldap]\nurl = \"ldap://ldap.example.org\"\nuser_dn = \"uid={username}\"\n", "in clear"),
            ("[ldap]\nurl = \"ldaps://x\"\n", "set user_dn"),
            ("[ldap]\nurl = \"ldaps://x\"\nuser_dn = \"uid=alice\"\n", "must contain {username}"),
            (
                "[ldap]\nurl = \"ldaps://x\"\nuser_dn = \"uid={username}\"\n[ldap.groups]\n\"cn=a\" = 1\n",
                "must map to a group",
            ),
        ] {
            let e = format!("{:#}", Config::parse(bad).unwrap_err());
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn radius_section() {
        let c = Config::parse(
            "[auth]\nmethod = \"radius\"\n[radius]\nservers = [\"127.0.0.1:1812\", \"10.0.0.2\", \"radius.example.org\", \"::1\", \"[::1]:1645\", \"r2:18120\"]\nsecret_file = \"/s\"\n[radius.groups]\n\"eng\" = \"eng\"\n\"ops\" = \"staff\"\n",
        )
        .unwrap();
        let r = c.radius.unwrap();
        assert_eq!(
            r.servers,
            ["127.0.0.1:1812", "10.0.0.2:1812", "radius.example.org:1812", "[::1]:1812", "[::1]:1645", "r2:18120"]
        );
        assert_eq!((r.timeout_secs, r.retries, r.nas_identifier.as_str()), (5, 1, "tollgate"));
        assert!(r.require_message_authenticator, "on unless the admin turns it off");
        assert_eq!(r.groups, [("eng".to_string(), "eng".to_string()), ("ops".into(), "staff".into())]);
        for (bad, why) in [
            ("[auth]\nmethod = \"radius\"\n", "no [radius] section"),
            ("[radius]\nservers = []\nsecret_file = \"/s\"\n", "at least one server"),
            ("[radius]\nservers = [\"h:0\"]\nsecret_file = \"/s\"\n", "bad port"),
            ("[radius]\nservers = [\"h:x\"]\nsecret_file = \"/s\"\n", "bad port"),
            ("[radius]\nservers = [\"a b\"]\nsecret_file = \"/s\"\n", "not a host"),
            ("[radius]\nservers = [\"h\"]\n", "secret_file"),
            ("[radius]\nservers = [\"h\"]\nsecret_file = \"/s\"\nretries = 9\n", "retries"),
            ("[radius]\nservers = [\"h\"]\nsecret_file = \"/s\"\ntimeout = \"0s\"\n", "between 1s and 60s"),
            ("[radius]\nservers = [\"h\"]\nsecret_file = \"/s\"\nsecret = \"x\"\n", "unknown field"),
        ] {
            let e = format!("{:#}", Config::parse(bad).unwrap_err());
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn oidc_section() {
        let base = "[oidc]\nissuer = \"https://idp.example.org/realms/corp/\"\nclient_id = \"openvpn\"\nclient_secret_file = \"/s\"\nredirect_url = \"https://vpn.example.org/sso/oidc/callback\"\n";
        let c = Config::parse(&format!("[auth]\nmethod = \"oidc\"\n{base}[oidc.groups]\n\"eng\" = \"eng\"\n")).unwrap();
        let o = c.oidc.unwrap();
        assert_eq!(o.issuer, "https://idp.example.org/realms/corp", "trailing slash dropped");
        assert_eq!(o.login_url, "https://vpn.example.org/sso/oidc/login", "beside the callback");
        assert_eq!((o.username_claim.as_str(), o.groups_claim.as_str()), ("preferred_username", "groups"));
        assert_eq!((o.scopes.as_str(), o.login_timeout_secs, o.password_fallback), ("openid profile", 120, false));
        assert_eq!(o.recheck_every_secs, Some(300));
        assert_eq!(o.groups, [("eng".to_string(), "eng".to_string())]);
        let long = format!("login_url = \"https://vpn.example.org/{}\"\n", "x".repeat(200));
        for (extra, why) in [
            ("login_timeout = \"5s\"\n", "between 10s"),
            ("recheck_every = \"0s\"\n", "at least 1s"),
            ("scopes = \"profile\"\n", "start with openid"),
            ("login_url = \"ftp://x/y\"\n", "http:// or https://"),
            ("login_url = \"https://x/y?a=b\"\n", "no query"),
            (long.as_str(), "too long"),
            ("username_claim = \"a b\"\n", "claim name"),
            ("client_secret = \"x\"\n", "unknown field"),
        ] {
            let e = format!("{:#}", Config::parse(&format!("{base}{extra}")).unwrap_err());
            assert!(e.contains(why), "{extra:?}: {e}");
        }
        for (every, secs) in [("off", None), ("90s", Some(90)), ("2m", Some(120))] {
            let o = Config::parse(&format!("{base}recheck_every = \"{every}\"\n")).unwrap().oidc.unwrap();
            assert_eq!(o.recheck_every_secs, secs, "{every}");
        }
        let e = format!("{:#}", Config::parse("[auth]\nmethod = \"oidc\"\n").unwrap_err());
        assert!(e.contains("no [oidc] section"), "{e}");
        let e = format!("{:#}", Config::parse(&base.replace("/sso/oidc/callback", "")).unwrap_err());
        assert!(e.contains("needs a path"), "{e}");
    }

    #[test]
    fn self_service_section() {
        assert_eq!(Config::parse("").unwrap().self_service, None, "off unless configured");
        let w = Config::parse("[self_service]\n").unwrap().self_service.unwrap();
        assert_eq!(w, SelfService::default());
        let w = Config::parse(
            "[self_service]\nenrol = false\nsession_lifetime = \"2h\"\npublic_url = \"https://vpn.example.org/\"\n\
             trusted_proxies = [\"127.0.0.1\", \"::1\"]\n",
        )
        .unwrap()
        .self_service
        .unwrap();
        assert!(w.enabled && w.download && !w.enrol && w.password_change);
        assert_eq!((w.session_secs, w.public_url.as_deref()), (7200, Some("https://vpn.example.org")));
        assert_eq!(w.trusted_proxies.len(), 2);
        for (bad, why) in [
            ("session_lifetime = \"10s\"", "between 1m and 30d"),
            ("public_url = \"vpn.example.org\"", "http:// or https://"),
            ("trusted_proxies = [\"proxy\"]", "not an IP address"),
            ("downlaod = true", "unknown field"),
        ] {
            let e = format!("{:#}", Config::parse(&format!("[self_service]\n{bad}\n")).unwrap_err());
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn errors_are_one_line() {
        for bad in
            ["databse = 1", "server = ", "database = [\n", "log_level = \"loud\"", "[lockout]\nwindow = \"soon\""]
        {
            let e = format!("{:#}", Config::parse(bad).unwrap_err());
            assert!(!e.contains('\n'), "multi-line error for {bad:?}: {e}");
        }
    }
}
