//! The auth flow shared by the auth-verify hook and `tollgate test-auth`:
//! parse the secret, load the facts, verify password and second factor, let
//! `policy::decide` rule, record.

use crate::config::{Config, MfaMode};
use crate::db::{params, Optional};
use crate::devices::{self, Binding, DeviceVerdict};
use crate::method::{AuthMethod, MethodSource};
use crate::policy::{self, AuthFacts, Decision, Deny, FailState, PlanFacts, Proof, UserFacts};
use crate::post_auth::{self, Question, Status};
use crate::quota::Period;
use crate::store::Store;
use crate::{directory, oidc, password, totp};
use anyhow::Result;
use data_encoding::BASE64;

#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// Empty for a client that sent none (auth-user-pass-optional): only a
    /// single sign-on can name it (`token_session` and `web_link` set).
    pub username: &'a str,
    /// What OpenVPN passed as the password: a password, `SCRV1:…` or `CRV1::…`.
    pub password: &'a str,
    pub server: &'a str,
    pub ip: &'a str,
    /// The client's source port (`untrusted_port`), if known.
    pub port: Option<i64>,
    pub now: i64,
    /// OpenVPN's `session_state` (auth-gen-token … external-auth), if any.
    pub session_state: Option<&'a str>,
    /// The client's peer info: every IV_* and UV_* variable it sent.
    pub peer: &'a std::collections::BTreeMap<String, String>,
    /// Single sign-on: the secret of the login link the hook gave the
    /// client (`oidc` users, deferred auth only).
    pub web_link: Option<&'a str>,
    /// OpenVPN's `session_id` (auth-gen-token): a client that sent no
    /// username and signs in is known by it from then on.
    pub token_session: Option<&'a str>,
    /// The sign-in a client that sent no username already made, whose
    /// username claim is `username`.
    pub signed_in: Option<&'a oidc::Answered>,
    /// When this OpenVPN process started (`daemon_start_time`): open
    /// sessions of this server from before then belong to a process that
    /// is gone and do not count against the connection limit.
    pub server_started: Option<i64>,
}

/// Which open sessions must not count against the user's connection limit
/// for this attempt.
#[derive(Debug, Default, Clone, Copy)]
pub struct NotCounted<'a> {
    /// The tunnel this attempt comes from (`untrusted_ip`, `untrusted_port`):
    /// a renegotiation re-authenticates an open tunnel, which must not count
    /// against itself.
    pub ip: Option<&'a str>,
    pub port: Option<i64>,
    /// Sessions of this server opened before its OpenVPN started.
    pub server_started: Option<i64>,
}

/// The secret a client sent, by form.
#[derive(Debug, PartialEq, Eq)]
pub enum Secret {
    Plain(String),
    /// Static challenge: `SCRV1:<base64 password>:<base64 response>`.
    Static {
        password: String,
        code: String,
    },
    /// Answer to a dynamic challenge: `CRV1::<state>::<response>`.
    Crv1 {
        state: String,
        code: String,
    },
}

/// Pure: split the password field into its form. Malformed SCRV1/CRV1 is a
/// deny with a reason, never a panic.
pub fn parse_secret(s: &str) -> Result<Secret, Deny> {
    let bad = |d: &str| Deny::Malformed { detail: d.to_string() };
    if let Some(rest) = s.strip_prefix("SCRV1:") {
        let mut parts = rest.split(':');
        let (Some(p), Some(r), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("SCRV1 needs exactly two base64 parts"));
        };
        let dec = |x: &str, what: &str| -> Result<String, Deny> {
            let bytes = BASE64.decode(x.as_bytes()).map_err(|_| bad(&format!("SCRV1 {what} is not base64")))?;
            let t = String::from_utf8(bytes).map_err(|_| bad(&format!("SCRV1 {what} is not UTF-8")))?;
            if t.chars().any(char::is_control) {
                return Err(bad(&format!("control character in SCRV1 {what}")));
            }
            Ok(t)
        };
        return Ok(Secret::Static { password: dec(p, "password")?, code: dec(r, "response")? });
    }
    if let Some(rest) = s.strip_prefix("CRV1::") {
        let Some((state, code)) = rest.split_once("::") else {
            return Err(bad("CRV1 response needs CRV1::<state>::<response>"));
        };
        if state.len() != 32 || !state.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("CRV1 state is not one of ours"));
        }
        return Ok(Secret::Crv1 { state: state.to_ascii_lowercase(), code: code.to_string() });
    }
    Ok(Secret::Plain(s.to_string()))
}

/// The user's second factor as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Totp {
    Off,
    /// Active (confirmed) secret and the last step used.
    On {
        key: Vec<u8>,
        last_step: Option<i64>,
    },
    /// Confirmed, but the stored secret does not decode: no login passes
    /// until it is enrolled again (never the password alone).
    Unusable,
}

/// What the database holds for one login attempt.
pub struct Loaded {
    pub facts: AuthFacts,
    pub password_hash: Option<String>,
    pub fail: FailState,
    pub totp: Totp,
    /// The user's own device binding mode and limit (None: config default).
    pub device_binding: Option<String>,
    pub max_devices: Option<i64>,
    /// The auth method as stored on the user and on their group.
    pub user_method: Option<String>,
    pub group_method: Option<String>,
    pub group: Option<String>,
    /// What the post-auth program saved for this user.
    pub saved: serde_json::Map<String, serde_json::Value>,
    /// For `ldap` users, once the directory accepted: DN and groups.
    pub directory: Option<serde_json::Value>,
}

impl Loaded {
    /// The user's auth method and where it comes from (unknown users: the
    /// config's).
    pub fn method(&self, cfg: &Config) -> Result<(AuthMethod, MethodSource)> {
        let group = self.group.as_deref().map(|g| (g, self.group_method.as_deref()));
        crate::method::resolve(self.user_method.as_deref(), group, cfg.auth_method)
    }
}

/// The auth method of `username` alone (unknown users: the config's), for
/// the hook to tell a single sign-on login while OpenVPN waits.
pub fn method_of(store: &Store, cfg: &Config, username: &str) -> Result<AuthMethod> {
    let row: Option<(Option<String>, Option<String>, Option<String>)> = store
        .conn
        .query_row(
            "SELECT u.auth_method, g.name, g.auth_method FROM users u
               LEFT JOIN groups g ON g.id = u.group_id WHERE u.name = ?1",
            [username],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let (user, group, group_method) = row.unwrap_or_default();
    let group = group.as_deref().map(|g| (g, group_method.as_deref()));
    Ok(crate::method::resolve(user.as_deref(), group, cfg.auth_method)?.0)
}

pub fn load(store: &Store, username: &str, server: &str, now: i64) -> Result<Loaded> {
    load_with(&store.conn, username, server, now, NotCounted::default())
}

/// `load`, with the sessions that do not count against the connection limit.
pub fn load_with(c: &crate::db::Db, username: &str, server: &str, now: i64, skip: NotCounted) -> Result<Loaded> {
    let server_id: Option<i64> =
        c.prepare_cached("SELECT id FROM servers WHERE name = ?1")?.query_row([server], |r| r.get(0)).optional()?;
    let row = c
        .prepare_cached(
            "SELECT u.id, u.name, u.enabled, u.expires_at, u.locked_until, u.failed_count,
                    u.failed_since, u.password_hash, u.plan_since,
                    p.name, p.expires_after_secs, p.quota_bytes, p.period, p.max_connections,
                    (u.all_servers <> 0 OR coalesce(g.all_servers, 0) <> 0)
                      OR EXISTS(SELECT 1 FROM grants WHERE server_id = ?2 AND user_id = u.id)
                      OR EXISTS(SELECT 1 FROM grants WHERE server_id = ?2 AND group_id = u.group_id),
                    CASE WHEN u.totp_confirmed <> 0 THEN u.totp_secret END, u.totp_last_step,
                    u.device_binding, u.max_devices, p.max_session_secs,
                    u.auth_method, g.name, g.auth_method, u.saved
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
                        max_session_secs: r.get(19)?,
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
                client_deny: None,
                device_deny: None,
            };
            let fail = FailState { count: r.get(5)?, since: r.get(6)?, locked_until: user.locked_until };
            let totp = match r.get::<_, Option<String>>(15)? {
                None => Totp::Off,
                Some(s) => match totp::decode_secret(&s) {
                    Some(key) => Totp::On { key, last_step: r.get(16)? },
                    None => Totp::Unusable,
                },
            };
            let dev: (Option<String>, Option<i64>) = (r.get(17)?, r.get(18)?);
            let method: (Option<String>, Option<String>, Option<String>) = (r.get(20)?, r.get(21)?, r.get(22)?);
            // Saved data that does not parse is dropped rather than fatal:
            // the program saves it again.
            let saved = r.get::<_, Option<String>>(23)?.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
            Ok((user, fail, r.get::<_, String>(7)?, totp, dev, method, saved))
        })
        .optional()?;
    let Some((mut user, fail, hash, totp, (device_binding, max_devices), (user_method, group, group_method), saved)) =
        row
    else {
        return Ok(Loaded {
            facts: AuthFacts { server: server.into(), server_known: server_id.is_some(), user: None },
            password_hash: None,
            fail: FailState::default(),
            totp: Totp::Off,
            device_binding: None,
            max_devices: None,
            user_method: None,
            group_method: None,
            group: None,
            saved: Default::default(),
            directory: None,
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
                .prepare_cached(
                    "SELECT count(*) FROM sessions
                      WHERE user_id = ?1 AND closed_at IS NULL
                        AND NOT (server_id IS NOT DISTINCT FROM ?2 AND real_ip IS NOT DISTINCT FROM ?3
                                 AND real_port IS NOT DISTINCT FROM ?4)
                        AND NOT (server_id IS NOT DISTINCT FROM ?2 AND ?5 IS NOT NULL AND connected_at < ?5)",
                )?
                .query_row(params![user.id, server_id, skip.ip, skip.port, skip.server_started], |r| r.get(0))?;
        }
    }
    Ok(Loaded {
        facts: AuthFacts { server: server.into(), server_known: server_id.is_some(), user: Some(user) },
        password_hash: Some(hash),
        fail,
        totp,
        device_binding,
        max_devices,
        user_method,
        group_method,
        group,
        saved,
        directory: None,
    })
}

/// The device check for this attempt: the user's own mode and limit, else
/// the config's defaults.
fn device_verdict(store: &Store, cfg: &Config, req: &Request, loaded: &Loaded) -> Result<DeviceVerdict> {
    let Some(u) = &loaded.facts.user else { return Ok(DeviceVerdict::Allowed) };
    let mode = loaded.device_binding.as_deref().and_then(Binding::parse).unwrap_or(cfg.devices.binding);
    if mode == Binding::Off {
        return Ok(DeviceVerdict::Allowed);
    }
    let max = loaded.max_devices.unwrap_or(cfg.devices.max_devices);
    let registered: Vec<(String, bool)> = store
        .conn
        .prepare_cached("SELECT hwaddr, approved FROM devices WHERE user_id = ?1")?
        .query_map([u.id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let presented = req.peer.get(&cfg.devices.source).cloned();
    Ok(devices::check(mode, max, &registered, presented.as_deref(), &cfg.devices.source))
}

/// The decision and, for a challenge, what to send the client.
pub struct Outcome {
    pub decision: Decision,
    /// For a challenge: the reason-file text that asks the client (CRV1).
    pub prompt: Option<String>,
    /// Every run of the post-auth program, for `tollgate test-auth`.
    pub program: Vec<ProgramTrace>,
    /// A directory user's account was created (or, in test-auth, would be)
    /// on this plan.
    pub provisioned: Option<String>,
    /// A single sign-on login: the user signs in in a browser (test-auth:
    /// the decision shown is what follows a sign-in that succeeds).
    pub sso: bool,
    /// For a client that sent no username: who signed in (the username
    /// claim), once the provider said.
    pub signed_in_as: Option<String>,
}

impl Default for Outcome {
    fn default() -> Self {
        Outcome {
            decision: Decision::Deny(Deny::Internal { detail: "no decision".into() }),
            prompt: None,
            program: vec![],
            provisioned: None,
            sso: false,
            signed_in_as: None,
        }
    }
}

/// One run of the post-auth program: what it was given (password masked),
/// what it printed and what tollgate made of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProgramTrace {
    pub input: serde_json::Value,
    pub stdout: String,
    pub result: String,
    pub elapsed_ms: u128,
}

/// What a dynamic challenge waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asks {
    /// The second factor (TOTP code).
    Code,
    /// The post-auth program's question.
    Program,
    /// A RADIUS server's Access-Challenge: the answer goes back to it.
    Radius,
}

impl Asks {
    fn as_str(self) -> &'static str {
        match self {
            Asks::Code => "totp",
            Asks::Program => "program",
            Asks::Radius => "radius",
        }
    }
}

/// What the post-auth program chose for the session, carried from the
/// login to client-connect (and across a challenge).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Carry {
    pub group_id: Option<i64>,
    pub group: Option<String>,
    pub static_ip: Option<String>,
    /// The program asked its question with status FAIL: whatever the
    /// answer, the login fails (a program may ask to hide its verdict).
    #[serde(default)]
    pub asked_fail: bool,
    /// The user's auth method when the challenge was issued: an answer
    /// after the method changed is refused.
    #[serde(default)]
    pub method: Option<String>,
    /// What the directory said of the user (DN, groups), for the post-auth
    /// program in the answer's round.
    #[serde(default)]
    pub directory: Option<serde_json::Value>,
    /// The State of a RADIUS Access-Challenge (hex), sent back with the
    /// answer.
    #[serde(default)]
    pub radius_state: Option<String>,
}

impl Carry {
    fn is_empty(&self) -> bool {
        self.group_id.is_none() && self.static_ip.is_none()
    }

    /// The program's choices over what came before (a RADIUS address):
    /// what it names wins, what it leaves out stays.
    fn overlay(self, program: Carry) -> Carry {
        let (group_id, group) =
            if program.group_id.is_some() { (program.group_id, program.group) } else { (self.group_id, self.group) };
        Carry { group_id, group, static_ip: program.static_ip.or(self.static_ip), ..self }
    }
}

/// What the post-auth program said, as far as the flow is concerned.
enum Said {
    Pass(Carry),
    Refuse(Deny),
    /// A question, and the status the program gave with it.
    Ask(Question, Status),
}

/// Everything one attempt needs besides the store.
struct Attempt<'a> {
    cfg: &'a Config,
    req: &'a Request<'a>,
    record: bool,
    method: AuthMethod,
}

/// Run the whole decision, in this order for every method: input checks,
/// account standing, the method's proof, the second factor, the post-auth
/// program. Local passwords are always verified (against a dummy hash for
/// unknown users) so that every attempt costs the same. With `record`, the
/// outcome updates lockout counters, TOTP replay state, challenges, saved
/// data and the event log; `tollgate test-auth` passes false and changes
/// nothing (but does run the program).
pub fn authenticate(store: &mut Store, cfg: &Config, req: &Request, record: bool) -> Result<Outcome> {
    if req.username.is_empty() && req.signed_in.is_none() {
        return unnamed(store, cfg, req, record);
    }
    let mut out = Outcome::default();
    let skip = NotCounted { ip: Some(req.ip), port: req.port, server_started: req.server_started };
    // A reauth on renegotiation: OpenVPN has checked the session token's
    // HMAC and age. Only a token OpenVPN calls valid is accepted; an expired
    // or invalid one means a full login (OpenVPN's manual recommends failing
    // them with external-auth): an address and port prove nothing.
    let token = match req.session_state {
        None | Some("Initial") => false,
        Some("Authenticated" | "AuthenticatedEmptyUser") => true,
        Some(other) => {
            let d = Decision::Deny(Deny::TokenRejected { state: crate::names::for_log(other) });
            if record {
                let loaded = load_with(&store.conn, req.username, req.server, req.now, skip)?;
                record_outcome(store, cfg, req, &loaded, &d, None, false)?;
            }
            out.decision = d;
            return Ok(out);
        }
    };
    let secret = if token {
        None
    } else {
        match parse_secret(req.password) {
            Ok(s) => Some(s),
            Err(d) => {
                out.decision = Decision::Deny(d);
                return Ok(out);
            }
        }
    };
    // An address that failed too often is refused before any work, and
    // what it sends no longer counts against accounts (it keeps counting
    // against the address). Token reauths of live tunnels are exempt.
    if !token && cfg.lockout.per_source > 0 {
        if let Some(until) = source_state(&store.conn, req.ip)?.locked_until.filter(|t| *t > req.now) {
            let d = Decision::Deny(Deny::SourceBlocked { ip: req.ip.to_string(), until });
            if record {
                let loaded = load_with(&store.conn, req.username, req.server, req.now, skip)?;
                record_outcome(store, cfg, req, &loaded, &d, secret.as_ref(), false)?;
            }
            out.decision = d;
            return Ok(out);
        }
    }
    let mut loaded = load_with(&store.conn, req.username, req.server, req.now, skip)?;
    let method = match loaded.method(cfg) {
        Ok((m, _)) => m,
        Err(e) => {
            out.decision = Decision::Deny(Deny::from_error(&e));
            return Ok(out);
        }
    };
    // Who signed in for a client that sent no username logs in only where
    // single sign-on is the account's way in; an account it will create
    // is a single sign-on user's.
    let method = match req.signed_in {
        Some(_) if loaded.facts.user.is_none() => AuthMethod::Oidc,
        _ => method,
    };
    if req.signed_in.is_some() && method != AuthMethod::Oidc {
        let d = Decision::Deny(Deny::SignedInNotSso { method: method.as_str().into() });
        if record {
            record_outcome(store, cfg, req, &loaded, &d, None, false)?;
        }
        out.decision = d;
        return Ok(out);
    }
    let at = Attempt { cfg, req, record, method };
    // Device binding and client checks hold for every way in, a token
    // reauth included (it may be a new connection resuming a session).
    let mut verdict = client_and_device_checks(store, cfg, req, &mut loaded)?;
    let mut uid = loaded.facts.user.as_ref().map(|u| u.id);
    let mut accepted_step = None;
    let mut carry = Carry::default();
    // The post-auth program runs last for local users (a token reauth of a
    // live tunnel excepted: it must not wait for a program); for `program`
    // users it is the proof, in the password round.
    let post_auth_due = cfg.post_auth.is_some() && method != AuthMethod::Program && !token;
    let mut ran_program = false;
    // The provider's refresh token, from a single sign-on login.
    let mut sso_refresh: Option<String> = None;
    let mut decision = match &secret {
        // A single sign-on user the provider, asked again by the sweep, no
        // longer admits: every renegotiation (or resumption) by session
        // token is refused until they sign in again.
        None => match cfg.oidc.as_ref().map(|_| oidc::refused(&store.conn, req.server, req.username)).transpose()? {
            Some(Some(detail)) => Decision::Deny(Deny::ProviderRefused { detail }),
            _ => policy::decide(&loaded.facts, Proof::Token, req.now),
        },
        Some(Secret::Crv1 { state, code }) => {
            // Single use: the state goes whatever the answer, and of two
            // answers racing only the one that deleted it goes on.
            let sql = if record {
                "DELETE FROM challenges WHERE state_id = ?1 RETURNING user_id, username, ip, expires_at, kind, carry"
            } else {
                "SELECT user_id, username, ip, expires_at, kind, carry FROM challenges WHERE state_id = ?1"
            };
            type Row = (Option<i64>, String, String, i64, String, Option<String>);
            let row: Option<Row> = store
                .conn
                .query_row(sql, [state], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
                .optional()?;
            // A challenge of a user not provisioned yet names no account:
            // the name must match, and no account may have appeared since
            // under another id.
            let problem = match &row {
                None => Some("unknown or already used state"),
                Some((u, name, ..)) if name != req.username || (u.is_some() && *u != uid) => {
                    Some("state belongs to another user")
                }
                Some((_, _, ip, ..)) if ip != req.ip => Some("state was issued to another address"),
                Some((_, _, _, exp, ..)) if *exp <= req.now => Some("state expired"),
                _ => None,
            };
            match (problem, row) {
                (p @ Some(_), _) | (p @ None, None) => {
                    let p = p.unwrap_or("unknown or already used state");
                    Decision::Deny(Deny::BadChallenge { detail: p.into() })
                }
                (None, Some((.., kind, carried))) => {
                    carry = carried.and_then(|c| serde_json::from_str(&c).ok()).unwrap_or_default();
                    loaded.directory = carry.directory.clone();
                    if carry.method.as_deref().is_some_and(|m| m != method.as_str()) {
                        Decision::Deny(Deny::BadChallenge { detail: "the user's auth method changed since".into() })
                    } else if kind == Asks::Radius.as_str() {
                        // The answer goes to the RADIUS server with its State;
                        // the account's standing is checked again first.
                        let known = loaded.facts.user.is_some();
                        match policy::gate(&loaded.facts, req.now) {
                            Some(d @ Deny::Locked { .. }) if known => Decision::Deny(d),
                            Some(d) if known => Decision::Deny(Deny::NotChecked { standing: d.log_reason() }),
                            _ if !known && cfg.provision_plan.is_none() => Decision::Deny(Deny::UnknownUser),
                            _ if method != AuthMethod::Radius => Decision::Deny(Deny::BadChallenge {
                                detail: "the user's auth method changed since".into(),
                            }),
                            _ => {
                                let state = carry.radius_state.clone();
                                let a =
                                    directory::check(cfg, method, req.username, code, state.as_deref(), Some(req.ip));
                                let d =
                                    directory_answer(store, &at, a, &mut loaded, &mut verdict, &mut carry, &mut out)?;
                                uid = loaded.facts.user.as_ref().map(|u| u.id);
                                d.unwrap_or_else(|| {
                                    let proof =
                                        second_factor(cfg, &loaded.totp, secret.as_ref(), req.now, &mut accepted_step);
                                    policy::decide(&loaded.facts, proof, req.now)
                                })
                            }
                        }
                    } else if kind == Asks::Program.as_str() {
                        // Everything before the program was proven when it
                        // asked; its answer goes back to it.
                        let d = policy::decide(&loaded.facts, Proof::Valid, req.now);
                        if d == Decision::Accept && cfg.post_auth.is_some() {
                            let asked_fail = carry.asked_fail;
                            match call_program(store, &at, &loaded, Some(code), None, asked_fail, &mut out.program)? {
                                Said::Pass(c) if method == AuthMethod::Program => {
                                    ran_program = true;
                                    carry = carry.overlay(c);
                                    // The program proved the user: the
                                    // second factor (asked for now) follows.
                                    let proof = match &loaded.totp {
                                        Totp::Off => Proof::Valid,
                                        Totp::Unusable => Proof::FactorUnusable,
                                        Totp::On { .. } => Proof::NeedsCode,
                                    };
                                    policy::decide(&loaded.facts, proof, req.now)
                                }
                                Said::Pass(c) => {
                                    ran_program = true;
                                    carry = carry.overlay(c);
                                    Decision::Accept
                                }
                                Said::Refuse(d) => Decision::Deny(d),
                                Said::Ask(q, st) => {
                                    let c = Carry { asked_fail: st == Status::Fail, ..carry.clone() };
                                    ask(&mut out, store, &at, &loaded, Asks::Program, &q, &c)?
                                }
                            }
                        } else if d == Decision::Accept {
                            Decision::Deny(Deny::BadChallenge { detail: "no post-auth program is configured".into() })
                        } else {
                            d
                        }
                    } else {
                        let proof = match &loaded.totp {
                            Totp::On { key, last_step } => match totp::verify(key, code, req.now, *last_step) {
                                Some(step) => {
                                    accepted_step = Some(step);
                                    Proof::Valid
                                }
                                None => Proof::BadCode { challenged: true },
                            },
                            Totp::Off | Totp::Unusable => Proof::BadCode { challenged: true },
                        };
                        policy::decide(&loaded.facts, proof, req.now)
                    }
                }
            }
        }
        Some(Secret::Plain(pw) | Secret::Static { password: pw, .. }) => match method {
            AuthMethod::Local => {
                let pw_ok = password::verify(loaded.password_hash.as_deref(), pw, cfg.argon2);
                let proof = if pw_ok {
                    second_factor(cfg, &loaded.totp, secret.as_ref(), req.now, &mut accepted_step)
                } else {
                    Proof::Invalid
                };
                policy::decide(&loaded.facts, proof, req.now)
            }
            AuthMethod::Program => {
                // The program may reach out (a push to a phone): not for
                // an unknown, locked or barred account.
                match (&loaded.facts.user, policy::gate(&loaded.facts, req.now)) {
                    (None, _) => {
                        // Unknown users cost what a local login costs.
                        password::verify(None, pw, cfg.argon2);
                        Decision::Deny(Deny::UnknownUser)
                    }
                    (_, Some(d @ Deny::Locked { .. })) => Decision::Deny(d),
                    (_, Some(d)) => Decision::Deny(Deny::NotChecked { standing: d.log_reason() }),
                    (Some(_), None) => {
                        match call_program(store, &at, &loaded, None, Some(pw), false, &mut out.program)? {
                            Said::Pass(c) => {
                                ran_program = true;
                                carry = carry.overlay(c);
                                let proof =
                                    second_factor(cfg, &loaded.totp, secret.as_ref(), req.now, &mut accepted_step);
                                policy::decide(&loaded.facts, proof, req.now)
                            }
                            Said::Refuse(d) => Decision::Deny(d),
                            Said::Ask(q, st) => {
                                let c = Carry { asked_fail: st == Status::Fail, ..carry.clone() };
                                ask(&mut out, store, &at, &loaded, Asks::Program, &q, &c)?
                            }
                        }
                    }
                }
            }
            AuthMethod::Oidc => {
                let known = loaded.facts.user.is_some();
                let webauth = oidc::announces_webauth(req.peer.get("IV_SSO").map(String::as_str));
                let fallback = cfg.oidc.as_ref().is_some_and(|o| o.password_fallback)
                    && loaded.password_hash.as_deref().is_some_and(|h| h != password::NO_PASSWORD);
                // An account that may not log in still gets its link and
                // waits for the sign-in like any other: an early refusal
                // would tell whoever connects which names exist.
                let barred = match policy::gate(&loaded.facts, req.now) {
                    _ if !known
                        && (cfg.provision_plan.is_none()
                            || crate::names::check_name("user", req.username).is_err()) =>
                    {
                        Some(Deny::UnknownUser)
                    }
                    Some(d @ Deny::Locked { .. }) if known => Some(d),
                    Some(d) if known => Some(Deny::NotChecked { standing: d.log_reason() }),
                    _ => None,
                };
                match (&cfg.oidc, req.web_link) {
                    // A client that cannot open the login link: the local
                    // password, where the admin allows it and there is one.
                    _ if !webauth && fallback => {
                        let proof = if password::verify(loaded.password_hash.as_deref(), pw, cfg.argon2) {
                            second_factor(cfg, &loaded.totp, secret.as_ref(), req.now, &mut accepted_step)
                        } else {
                            Proof::Invalid
                        };
                        policy::decide(&loaded.facts, proof, req.now)
                    }
                    _ if !webauth => Decision::Deny(Deny::SsoUnsupported),
                    (None, _) => Decision::Deny(Deny::DirectoryUnavailable {
                        server: "oidc".into(),
                        detail: "no [oidc] section in the config".into(),
                    }),
                    // test-auth: what follows a sign-in that succeeds.
                    (Some(_), _) if !record => {
                        out.sso = true;
                        match barred {
                            Some(d) => Decision::Deny(d),
                            None if known => policy::decide(&loaded.facts, Proof::Valid, req.now),
                            None => {
                                out.provisioned = cfg.provision_plan.clone();
                                Decision::Accept
                            }
                        }
                    }
                    (Some(_), None) => Decision::Deny(Deny::Internal {
                        detail: "single sign-on needs deferred auth (OpenVPN 2.6, defer = \"auto\")".into(),
                    }),
                    (Some(o), Some(link)) => {
                        out.sso = true;
                        let answered = match req.signed_in {
                            Some(a) => Some(a.clone()),
                            None => sign_in(store, o, req, link)?,
                        };
                        match (answered, barred) {
                            (None, _) => Decision::Deny(Deny::SsoTimedOut { secs: o.login_timeout_secs }),
                            (Some(_), Some(d)) => Decision::Deny(d),
                            (Some(a), None) => {
                                sso_refresh = a.refresh_token;
                                let d = directory_answer(
                                    store,
                                    &at,
                                    a.answer,
                                    &mut loaded,
                                    &mut verdict,
                                    &mut carry,
                                    &mut out,
                                )?;
                                uid = loaded.facts.user.as_ref().map(|u| u.id);
                                d.unwrap_or_else(|| policy::decide(&loaded.facts, Proof::Valid, req.now))
                            }
                        }
                    }
                }
            }
            AuthMethod::Ldap | AuthMethod::Radius => {
                let known = loaded.facts.user.is_some();
                match policy::gate(&loaded.facts, req.now) {
                    // Nobody to ask about: unknown users cost what a local
                    // login costs, unless they may be provisioned.
                    _ if !known
                        && (cfg.provision_plan.is_none()
                            || crate::names::check_name("user", req.username).is_err()) =>
                    {
                        password::verify(None, pw, cfg.argon2);
                        Decision::Deny(Deny::UnknownUser)
                    }
                    Some(d @ Deny::Locked { .. }) if known => Decision::Deny(d),
                    Some(d) if known => Decision::Deny(Deny::NotChecked { standing: d.log_reason() }),
                    _ => {
                        let a = directory::check(cfg, method, req.username, pw, None, Some(req.ip));
                        let d = directory_answer(store, &at, a, &mut loaded, &mut verdict, &mut carry, &mut out)?;
                        uid = loaded.facts.user.as_ref().map(|u| u.id);
                        d.unwrap_or_else(|| {
                            let proof = second_factor(cfg, &loaded.totp, secret.as_ref(), req.now, &mut accepted_step);
                            policy::decide(&loaded.facts, proof, req.now)
                        })
                    }
                }
            }
        },
    };
    // A second factor the password round could not check: ask for it.
    if decision == Decision::Challenge && out.prompt.is_none() {
        let q = Question { text: "Enter your authenticator code".into(), echo: true };
        decision = ask(&mut out, store, &at, &loaded, Asks::Code, &q, &carry)?;
    }
    // The post-auth program, last, for logins tollgate has accepted.
    if decision == Decision::Accept && post_auth_due && !ran_program {
        decision = match call_program(store, &at, &loaded, None, None, false, &mut out.program)? {
            Said::Pass(c) => {
                ran_program = true;
                carry = carry.overlay(c);
                Decision::Accept
            }
            Said::Refuse(d) => Decision::Deny(d),
            Said::Ask(q, st) => {
                let c = Carry { asked_fail: st == Status::Fail, ..carry.clone() };
                ask(&mut out, store, &at, &loaded, Asks::Program, &q, &c)?
            }
        };
    }
    if record {
        // Claim the code's step atomically: two logins racing with the same
        // code cannot both pass.
        // (Also when the program then asks its question: the code was used.)
        if let (Decision::Accept | Decision::Challenge, Some(step), Some(id)) = (&decision, accepted_step, uid) {
            let n = store.conn.execute(
                "UPDATE users SET totp_last_step = ?2 WHERE id = ?1 AND (totp_last_step IS NULL OR totp_last_step < ?2)",
                params![id, step],
            )?;
            if n == 0 {
                let challenged = matches!(secret, Some(Secret::Crv1 { .. }));
                decision = Decision::Deny(Deny::BadCode { challenged });
            }
        }
        record_outcome(store, cfg, req, &loaded, &decision, secret.as_ref(), ran_program)?;
        if let Some(id) = uid {
            record_device(store, id, &verdict, &decision, req.now)?;
            if decision == Decision::Accept {
                assign(store, req, id, &carry)?;
                if req.web_link.is_some() && method == AuthMethod::Oidc {
                    oidc::keep_grant(store, req.server, id, sso_refresh.as_deref(), req.now)?;
                }
                if let (Some(_), Some(sid)) = (req.signed_in, req.token_session) {
                    oidc::name_tunnel(store, req.server, sid, id, req.now)?;
                }
            }
        }
        if decision == Decision::Accept && method == AuthMethod::Local {
            if let Some(Secret::Plain(pw) | Secret::Static { password: pw, .. }) = &secret {
                maybe_rehash(store, cfg, pw, &loaded)?;
            }
        }
    }
    out.decision = decision;
    Ok(out)
}

/// Record a login waiting for the browser and wait for its answer, until
/// the login times out (`None`).
fn sign_in(store: &Store, o: &crate::config::Oidc, req: &Request, link: &str) -> Result<Option<oidc::Answered>> {
    let platform = [req.peer.get("IV_PLAT"), req.peer.get("IV_GUI_VER")]
        .into_iter()
        .flatten()
        .map(|v| crate::names::for_log(v))
        .collect::<Vec<_>>()
        .join(", ");
    let platform = (!platform.is_empty()).then_some(platform);
    oidc::open(store, link, req.username, req.server, req.ip, platform.as_deref(), req.now, o.login_timeout_secs)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(o.login_timeout_secs);
    oidc::wait(store, link, deadline)
}

/// A client that sent no username (the server has auth-user-pass-optional)
/// signs in at the provider first: the username claim of whoever signed in
/// names the account, and the login goes on as theirs with the sign-in as
/// its proof. The tunnel (OpenVPN's session id) is theirs from then on.
/// Nothing else can name such a client: without single sign-on, a login
/// link and a session id it is refused.
fn unnamed(store: &mut Store, cfg: &Config, req: &Request, record: bool) -> Result<Outcome> {
    let mut out = Outcome::default();
    let webauth = oidc::announces_webauth(req.peer.get("IV_SSO").map(String::as_str));
    let missing = match (&cfg.oidc, req.web_link, req.token_session) {
        (None, ..) => Some("single sign-on ([oidc]) is not configured"),
        _ if !matches!(req.session_state, None | Some("Initial")) => Some("no sign-in names this session"),
        _ if !webauth => Some("the client did not announce web auth (IV_SSO webauth) to sign in with"),
        (_, _, None) => Some("sign-in without a username needs auth-gen-token … external-auth on the server"),
        (_, None, _) if record => Some("sign-in without a username needs deferred auth (defer = \"auto\")"),
        _ => None,
    };
    let deny = match (missing, &cfg.oidc, req.web_link) {
        (Some(m), ..) => Deny::NoUsername { detail: m.into() },
        (None, Some(o), Some(link)) => {
            out.sso = true;
            match sign_in(store, o, req, link)? {
                None => Deny::SsoTimedOut { secs: o.login_timeout_secs },
                Some(a) if matches!(a.answer, directory::Answer::Accept { .. }) && !a.username.is_empty() => {
                    if let Err(e) = crate::names::check_name("user", &a.username) {
                        Deny::DirectoryRefused { detail: format!("the username claim is no tollgate user name: {e}") }
                    } else {
                        let named = Request { username: &a.username, signed_in: Some(&a), ..*req };
                        let mut out = authenticate(store, cfg, &named, record)?;
                        out.signed_in_as = Some(a.username.clone());
                        return Ok(out);
                    }
                }
                Some(a) => match a.answer {
                    directory::Answer::Reject { reason } => Deny::DirectoryRefused { detail: reason },
                    directory::Answer::NotInGroup { group } => Deny::NotInRequiredGroup { group },
                    directory::Answer::Unavailable { server, reason } => {
                        Deny::DirectoryUnavailable { server, detail: reason }
                    }
                    _ => Deny::DirectoryRefused { detail: "the sign-in named nobody".into() },
                },
            }
        }
        // test-auth: a sign-in would come first.
        (None, ..) => {
            out.sso = true;
            Deny::NoUsername { detail: "who signs in at the provider names the account".into() }
        }
    };
    let d = Decision::Deny(deny);
    if record {
        let skip = NotCounted { ip: Some(req.ip), port: req.port, server_started: req.server_started };
        let loaded = load_with(&store.conn, req.username, req.server, req.now, skip)?;
        record_outcome(store, cfg, req, &loaded, &d, None, false)?;
    }
    out.decision = d;
    Ok(out)
}

/// Device binding and the client checks, into the account's facts; the
/// device verdict, to record after the decision.
fn client_and_device_checks(store: &Store, cfg: &Config, req: &Request, loaded: &mut Loaded) -> Result<DeviceVerdict> {
    let verdict = device_verdict(store, cfg, req, loaded)?;
    if let Some(u) = loaded.facts.user.as_mut() {
        u.client_deny = devices::client_check(&cfg.client_checks, &|k: &str| req.peer.get(k).cloned());
        if let DeviceVerdict::Refused { deny, .. } = &verdict {
            u.device_deny = Some(deny.clone());
        }
    }
    Ok(verdict)
}

/// What a directory's answer makes of the attempt, in the password round
/// or a RADIUS challenge's answer round: a deny or a new challenge, or
/// `None` when the directory accepted (the account then provisioned and
/// reloaded, the directory's facts and address kept for what follows).
fn directory_answer(
    store: &mut Store,
    at: &Attempt,
    answer: directory::Answer,
    loaded: &mut Loaded,
    verdict: &mut DeviceVerdict,
    carry: &mut Carry,
    out: &mut Outcome,
) -> Result<Option<Decision>> {
    let (cfg, req) = (at.cfg, at.req);
    let known = loaded.facts.user.is_some();
    Ok(Some(match answer {
        directory::Answer::Reject { reason } => Decision::Deny(Deny::DirectoryRefused { detail: reason }),
        directory::Answer::Unavailable { server, reason } => {
            Decision::Deny(Deny::DirectoryUnavailable { server, detail: reason })
        }
        directory::Answer::NotInGroup { group } => Decision::Deny(Deny::NotInRequiredGroup { group }),
        directory::Answer::Challenge { state, message } => {
            let q = Question { text: message, echo: false };
            let c = Carry { radius_state: Some(state), ..carry.clone() };
            ask(out, store, at, loaded, Asks::Radius, &q, &c)?
        }
        directory::Answer::Accept { dn, groups, static_ip, reply } => {
            if let Some(d) = directory_user(store, at, loaded, &groups)? {
                return Ok(Some(Decision::Deny(d)));
            }
            if !at.record && !known {
                out.provisioned = cfg.provision_plan.clone();
                return Ok(Some(Decision::Accept));
            }
            // The account as it is now (provisioned, its group from the
            // directory).
            let skip = NotCounted { ip: Some(req.ip), port: req.port, server_started: req.server_started };
            *loaded = load_with(&store.conn, req.username, req.server, req.now, skip)?;
            *verdict = client_and_device_checks(store, cfg, req, loaded)?;
            out.provisioned = (!known).then(|| cfg.provision_plan.clone()).flatten();
            loaded.directory = Some(match at.method {
                AuthMethod::Radius => serde_json::to_value(&reply)?,
                AuthMethod::Oidc => serde_json::json!({ "sub": dn, "groups": groups }),
                _ => serde_json::json!({ "dn": dn, "groups": groups }),
            });
            carry.static_ip = static_ip.map(|ip| ip.to_string()).or(carry.static_ip.take());
            return Ok(None);
        }
    }))
}

/// After the directory accepted: create the account of an unknown user
/// (provisioning) and set the user's group from the directory's groups.
/// test-auth changes nothing. Returns a deny when the config names a plan
/// or group that does not exist.
fn directory_user(store: &mut Store, at: &Attempt, loaded: &Loaded, groups: &[String]) -> Result<Option<Deny>> {
    let cfg = at.cfg;
    let (mapping, group) = directory::group_for(cfg, at.method, groups);
    let group_id: Option<i64> = match group {
        Some(g) => match store.conn.query_row("SELECT id FROM groups WHERE name = ?1", [g], |r| r.get(0)).optional()? {
            Some(id) => Some(id),
            None => {
                let m = at.method;
                return Ok(Some(Deny::Internal {
                    detail: format!("[{m}.groups] maps to group {g}, which does not exist (tollgate group add {g})"),
                }));
            }
        },
        None => None,
    };
    let plan = cfg.provision_plan.as_deref().unwrap_or_default();
    let plan_id: Option<i64> =
        store.conn.query_row("SELECT id FROM plans WHERE name = ?1", [plan], |r| r.get(0)).optional()?;
    if loaded.facts.user.is_none() && plan_id.is_none() {
        return Ok(Some(Deny::Internal {
            detail: format!("auth.provision_plan names plan {plan}, which does not exist"),
        }));
    }
    if !at.record {
        return Ok(None);
    }
    let tx = store.write_tx()?;
    let user_id = match &loaded.facts.user {
        Some(u) => u.id,
        None => {
            // The account may use the server it logged in to; the plan and
            // the group bring the rest. Two first logins at once: one
            // creates it, the other finds it.
            let created = tx.execute(
                "INSERT INTO users (name, password_hash, plan_id, plan_since, auth_method, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?4, ?4) ON CONFLICT (name) DO NOTHING",
                params![at.req.username, password::NO_PASSWORD, plan_id, at.req.now, at.method.as_str()],
            )?;
            let id: i64 = tx.query_row("SELECT id FROM users WHERE name = ?1", [at.req.username], |r| r.get(0))?;
            if created == 1 {
                tx.execute(
                    "INSERT INTO grants (server_id, user_id) SELECT id, ?2 FROM servers WHERE name = ?1",
                    params![at.req.server, id],
                )?;
            }
            id
        }
    };
    // With a mapping, the directory decides the group at every login.
    if !mapping.is_empty() {
        tx.execute("UPDATE users SET group_id = ?2 WHERE id = ?1", params![user_id, group_id])?;
    }
    tx.commit()?;
    Ok(None)
}

/// The second factor, once the password (or the program) proved the user.
fn second_factor(cfg: &Config, t: &Totp, secret: Option<&Secret>, now: i64, accepted_step: &mut Option<i64>) -> Proof {
    match (t, secret) {
        (Totp::Off, _) => Proof::Valid,
        (Totp::Unusable, _) => Proof::FactorUnusable,
        (Totp::On { key, last_step }, Some(Secret::Static { code, .. })) => {
            match totp::verify(key, code, now, *last_step) {
                Some(step) => {
                    *accepted_step = Some(step);
                    Proof::Valid
                }
                None => Proof::BadCode { challenged: false },
            }
        }
        (Totp::On { .. }, _) if cfg.mfa.mode == MfaMode::Static => Proof::CodeRequired,
        (Totp::On { .. }, _) => Proof::NeedsCode,
    }
}

/// Issue a dynamic challenge (CRV1): the state, what answers it and what
/// the session carries so far. test-auth issues none.
fn ask(
    out: &mut Outcome,
    store: &Store,
    at: &Attempt,
    loaded: &Loaded,
    asks: Asks,
    q: &Question,
    carry: &Carry,
) -> Result<Decision> {
    // Only a RADIUS server asks about a user not provisioned yet.
    let uid = loaded.facts.user.as_ref().map(|u| u.id);
    if uid.is_none() && asks != Asks::Radius {
        return Ok(Decision::Deny(Deny::UnknownUser));
    }
    let state = if at.record {
        let state = crate::openvpn::random_hex(16);
        let carried = serde_json::to_string(&Carry {
            method: Some(at.method.as_str().into()),
            directory: loaded.directory.clone().or_else(|| carry.directory.clone()),
            ..carry.clone()
        })?;
        store.conn.execute(
            "INSERT INTO challenges (state_id, user_id, username, ip, expires_at, kind, carry)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                state,
                uid,
                at.req.username,
                at.req.ip,
                at.req.now + at.cfg.mfa.challenge_ttl_secs,
                asks.as_str(),
                carried
            ],
        )?;
        state
    } else {
        "(test-auth: no state issued)".to_string()
    };
    out.prompt = Some(crv1_question(&state, at.req.username, q));
    Ok(Decision::Challenge)
}

/// Run the post-auth program for this attempt and apply what it saved.
fn call_program(
    store: &mut Store,
    at: &Attempt,
    loaded: &Loaded,
    answer: Option<&str>,
    password: Option<&str>,
    asked_fail: bool,
    trace: &mut Vec<ProgramTrace>,
) -> Result<Said> {
    let Some(pa) = &at.cfg.post_auth else {
        return Ok(Said::Refuse(Deny::ProgramFailed { detail: "no [post_auth] command configured".into() }));
    };
    let Some(u) = &loaded.facts.user else { return Ok(Said::Refuse(Deny::UnknownUser)) };
    let req = at.req;
    // A password renegotiation of an open tunnel (no auth-gen-token).
    let reauth = match req.port {
        Some(port) => crate::sessions::tunnel_is_open(store, req.server, req.ip, port).unwrap_or(false),
        None => false,
    };
    // As decided so far. The answer to the program's own question carries
    // the status the program gave when it asked.
    let (status, reason) = match (at.method, answer, asked_fail) {
        (_, Some(_), true) => (Status::Fail, "the program said FAIL when it asked its question"),
        (AuthMethod::Program, Some(_), false) => {
            (Status::Succeed, "the program said SUCCEED when it asked its question")
        }
        (AuthMethod::Program, None, _) => {
            (Status::Fail, "not authenticated yet: the program decides (auth method program)")
        }
        (AuthMethod::Local, ..) => (Status::Succeed, "password ok"),
        (AuthMethod::Ldap | AuthMethod::Radius, ..) => (Status::Succeed, "password ok (directory)"),
        (AuthMethod::Oidc, ..) => (Status::Succeed, "signed in at the OpenID provider"),
    };
    let input = post_auth::Input {
        authcred: post_auth::AuthCred {
            username: req.username.to_string(),
            client_ip_addr: req.ip.to_string(),
            client_hw_addr: req.peer.get("IV_HWADDR").cloned(),
            static_response: answer.map(str::to_string),
            password: password.filter(|_| at.method == AuthMethod::Program).map(str::to_string),
        },
        attributes: post_auth::Attributes { client_info: req.peer.clone(), vpn_auth: true, reauth },
        authret: post_auth::AuthRet {
            status,
            user: u.name.clone(),
            reason: reason.to_string(),
            group: loaded.group.clone(),
        },
        info: post_auth::Info {
            auth_method: at.method,
            server: req.server.to_string(),
            plan: u.plan.as_ref().map(|p| p.name.clone()),
            groups: loaded.group.iter().cloned().collect(),
            saved: loaded.saved.clone(),
            ldap: loaded.directory.clone().filter(|_| at.method == AuthMethod::Ldap),
            radius_reply: loaded.directory.clone().filter(|_| at.method == AuthMethod::Radius),
            oidc: loaded.directory.clone().filter(|_| at.method == AuthMethod::Oidc),
        },
    };
    let run = post_auth::run(pa, &input);
    let said = match &run.result {
        Err(e) => Said::Refuse(Deny::ProgramFailed { detail: e.clone() }),
        Ok(reply) => {
            // Checked before anything is applied: a reply at fault changes nothing.
            let group_id: Option<Option<i64>> = match &reply.group {
                None => Some(None),
                Some(g) => store
                    .conn
                    .query_row("SELECT id FROM groups WHERE name = ?1", [g], |r| r.get(0))
                    .optional()?
                    .map(Some),
            };
            let merged = post_auth::merge_saved(&loaded.saved, &reply.save);
            match (&group_id, &merged) {
                (None, _) => {}
                (_, None) => {}
                (Some(_), Some(m)) if at.record && !reply.save.is_empty() => {
                    store.conn.execute(
                        "UPDATE users SET saved = ?2 WHERE id = ?1",
                        params![u.id, serde_json::to_string(m)?],
                    )?;
                }
                _ => {}
            }
            let refused_before = || {
                let log = Some("it said FAIL when it asked its question".to_string());
                match at.method {
                    AuthMethod::Program => Deny::ProgramRefused { log, client: reply.client_reason.clone() },
                    _ => Deny::ProgramVeto { log, client: reply.client_reason.clone() },
                }
            };
            match (group_id, &reply.challenge, reply.status) {
                (None, _, _) => Said::Refuse(Deny::ProgramFailed {
                    detail: format!("it named group {}, which does not exist", reply.group.as_deref().unwrap_or("")),
                }),
                _ if merged.is_none() => {
                    Said::Refuse(Deny::ProgramFailed { detail: "saved data would exceed 64 KiB".into() })
                }
                (_, Some(q), st) => Said::Ask(q.clone(), if asked_fail { Status::Fail } else { st }),
                (Some(_), None, Status::Succeed) if asked_fail => Said::Refuse(refused_before()),
                (Some(group_id), None, Status::Succeed) => Said::Pass(Carry {
                    group_id,
                    group: reply.group.clone(),
                    static_ip: reply.static_ip.map(|ip| ip.to_string()),
                    ..Carry::default()
                }),
                (Some(_), None, Status::Fail) => {
                    let (log, client) = (reply.reason.clone(), reply.client_reason.clone());
                    Said::Refuse(match at.method {
                        AuthMethod::Program => Deny::ProgramRefused { log, client },
                        _ => Deny::ProgramVeto { log, client },
                    })
                }
            }
        }
    };
    trace.push(ProgramTrace {
        input: post_auth::masked(&input),
        stdout: run.stdout,
        result: match &said {
            Said::Pass(_) => "SUCCEED".into(),
            Said::Refuse(d) => format!("deny: {}", d.log_reason()),
            Said::Ask(q, _) => format!("challenge: {}", q.text),
        },
        elapsed_ms: run.elapsed.as_millis(),
    });
    Ok(said)
}

/// What the program chose, kept for client-connect of this tunnel; a
/// login without a choice clears an older one for the same tunnel.
fn assign(store: &Store, req: &Request, user_id: i64, c: &Carry) -> Result<()> {
    let Some(port) = req.port else { return Ok(()) };
    if c.is_empty() {
        store.conn.execute(
            "DELETE FROM assignments WHERE real_ip = ?2 AND real_port = ?3
                AND server_id = (SELECT id FROM servers WHERE name = ?1)",
            params![req.server, req.ip, port],
        )?;
        return Ok(());
    }
    store.conn.execute(
        "INSERT INTO assignments (server_id, real_ip, real_port, user_id, group_id, static_ip, expires_at)
         SELECT id, ?2, ?3, ?4, ?5, ?6, ?7 FROM servers WHERE name = ?1
         ON CONFLICT (server_id, real_ip, real_port) DO UPDATE SET user_id = excluded.user_id,
           group_id = excluded.group_id, static_ip = excluded.static_ip, expires_at = excluded.expires_at",
        params![req.server, req.ip, port, user_id, c.group_id, c.static_ip, req.now + ASSIGNMENT_TTL],
    )?;
    Ok(())
}

/// How long the program's choices wait for client-connect.
pub const ASSIGNMENT_TTL: i64 = 600;

/// Devices change only after a fully successful login (password and second
/// factor): a guesser never claims a slot. A manual-mode device the right
/// password came from is recorded as pending for the admin to approve.
fn record_device(store: &Store, user_id: i64, v: &DeviceVerdict, d: &Decision, now: i64) -> Result<()> {
    match (v, d) {
        (DeviceVerdict::Register(id), Decision::Accept) => {
            store.conn.execute(
                "INSERT INTO devices (user_id, hwaddr, approved, first_seen, last_seen, created_at)
                 VALUES (?1, ?2, 1, ?3, ?3, ?3) ON CONFLICT DO NOTHING",
                params![user_id, id, now],
            )?;
        }
        (DeviceVerdict::Known(id), Decision::Accept) => {
            store.conn.execute(
                "UPDATE devices SET last_seen = ?3, first_seen = coalesce(first_seen, ?3) WHERE user_id = ?1 AND hwaddr = ?2",
                params![user_id, id, now],
            )?;
        }
        (DeviceVerdict::Refused { pending: Some(id), .. }, Decision::Deny(Deny::DeviceNotApproved { .. })) => {
            store.conn.execute(
                "INSERT INTO devices (user_id, hwaddr, approved, first_seen, last_seen, created_at)
                 VALUES (?1, ?2, 0, ?3, ?3, ?3) ON CONFLICT DO NOTHING",
                params![user_id, id, now],
            )?;
        }
        _ => {}
    }
    Ok(())
}

/// The reason-file text that asks the client a question (CRV1).
pub fn crv1_question(state: &str, username: &str, q: &Question) -> String {
    let flags = if q.echo { "R,E" } else { "R" };
    format!("CRV1:{flags}:{state}:{}:{}", BASE64.encode(username.as_bytes()), q.text)
}

/// The failure counters of one client address.
pub(crate) fn source_state(c: &crate::db::Db, ip: &str) -> Result<FailState> {
    Ok(c.prepare_cached("SELECT failed_count, failed_since, locked_until FROM source_failures WHERE ip = ?1")?
        .query_row([ip], |r| Ok(FailState { count: r.get(0)?, since: r.get(1)?, locked_until: r.get(2)? }))
        .optional()?
        .unwrap_or_default())
}

pub(crate) fn record_outcome(
    store: &mut Store,
    cfg: &Config,
    req: &Request,
    loaded: &Loaded,
    d: &Decision,
    secret: Option<&Secret>,
    ran_program: bool,
) -> Result<()> {
    let tx = store.write_tx()?;
    if let Some(u) = &loaded.facts.user {
        match d {
            // A blocked address's guesses do not touch the account.
            Decision::Deny(Deny::SourceBlocked { .. }) => {}
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
            // A password (and code) proven clears the user's counters (never
            // the address's: one valid account must not reset it); a token
            // reauth does not (it proves nothing about the password, and
            // must not lift a lock that guessing caused).
            Decision::Accept if secret.is_some() && loaded.fail != FailState::default() => {
                tx.execute(
                    "UPDATE users SET failed_count = 0, failed_since = NULL, locked_until = NULL WHERE id = ?1",
                    [u.id],
                )?;
            }
            _ => {}
        }
    }
    if let Decision::Deny(deny) = d {
        if deny.counts_for_source() && cfg.lockout.per_source > 0 {
            let next = policy::after_failure(source_state(&tx, req.ip)?, req.now, &cfg.lockout.for_source());
            tx.prepare_cached(
                "INSERT INTO source_failures (ip, failed_count, failed_since, locked_until) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (ip) DO UPDATE SET failed_count = excluded.failed_count,
                    failed_since = excluded.failed_since, locked_until = excluded.locked_until",
            )?
            .execute(params![req.ip, next.count, next.since, next.locked_until])?;
        }
    }
    let how = match (secret, req.session_state) {
        (_, Some("Authenticated" | "AuthenticatedEmptyUser")) => "session token",
        (Some(Secret::Static { .. }), _) => "password + code",
        (Some(Secret::Crv1 { .. }), _) => "challenge response",
        _ => "password",
    };
    let plus = if ran_program { " + post-auth program" } else { "" };
    let (result, reason, kind) = match d {
        Decision::Accept => ("accept", format!("ok ({how}{plus})"), "ok"),
        Decision::Deny(deny) => ("deny", deny.log_reason(), deny.kind()),
        Decision::Challenge => {
            ("challenge", "challenge sent (second factor or post-auth program)".to_string(), "challenge")
        }
    };
    tx.prepare_cached(
        "INSERT INTO auth_events (at, username, server, ip, result, reason, kind) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![req.now, crate::names::for_log(req.username), req.server, req.ip, result, reason, kind])?;
    tx.execute("DELETE FROM auth_events WHERE at < ?1", [req.now - cfg.retention_secs])?;
    tx.commit()?;
    Ok(())
}

/// After a good login, bring an old hash up to the configured parameters.
pub(crate) fn maybe_rehash(store: &mut Store, cfg: &Config, pw: &str, loaded: &Loaded) -> Result<()> {
    let (Some(u), Some(h)) = (&loaded.facts.user, &loaded.password_hash) else { return Ok(()) };
    if password::needs_rehash(h, cfg.argon2) {
        let new = password::hash(pw, cfg.argon2)?;
        store.conn.execute(
            "UPDATE users SET password_hash = ?2 WHERE id = ?1 AND password_hash = ?3",
            params![u.id, new, h],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_forms() {
        assert_eq!(parse_secret("hunter22"), Ok(Secret::Plain("hunter22".into())));
        // "pw" / "123456"
        assert_eq!(
            parse_secret("SCRV1:cHc=:MTIzNDU2"),
            Ok(Secret::Static { password: "pw".into(), code: "123456".into() })
        );
        assert_eq!(parse_secret("SCRV1::"), Ok(Secret::Static { password: "".into(), code: "".into() }));
        let st = "0123456789abcdef0123456789ABCDEF";
        assert_eq!(
            parse_secret(&format!("CRV1::{st}::654321")),
            Ok(Secret::Crv1 { state: st.to_ascii_lowercase(), code: "654321".into() })
        );
        for bad in [
            "SCRV1:cHc=",
            "SCRV1:cHc=:MTIz:extra",
            "SCRV1:!!!:MTIz",
            "SCRV1:cHc=:%%%",
            "SCRV1:/w==:MTIz",
            "SCRV1:AQ==:MTIz",
            "CRV1::abc::123456",
            "CRV1::0123456789abcdef0123456789abcdef",
            "CRV1::0123456789abcdef0123456789abcdeg::1",
        ] {
            assert!(matches!(parse_secret(bad), Err(Deny::Malformed { .. })), "{bad}");
        }
    }

    #[test]
    fn crv1_prompt_format() {
        let q = Question { text: "Enter your authenticator code".into(), echo: true };
        assert_eq!(crv1_question("ab", "alice", &q), "CRV1:R,E:ab:YWxpY2U=:Enter your authenticator code");
        let q = Question { text: "PIN?".into(), echo: false };
        assert_eq!(crv1_question("ab", "alice", &q), "CRV1:R:ab:YWxpY2U=:PIN?");
    }

    /// One recorded login from 192.0.2.9:5000 to server "s" at a fixed time.
    fn login(store: &mut Store, cfg: &Config, user: &str, pw: &str) -> Outcome {
        let peer = Default::default();
        let req = Request {
            username: user,
            password: pw,
            server: "s",
            ip: "192.0.2.9",
            port: Some(5000),
            now: 1_800_000_000,
            session_state: None,
            peer: &peer,
            server_started: None,
            web_link: None,
            token_session: None,
            signed_in: None,
        };
        authenticate(store, cfg, &req, true).unwrap()
    }

    /// A single sign-on attempt (no password) from 192.0.2.9:`port` to
    /// server "s", now.
    fn sso_request<'a>(
        user: &'a str,
        port: i64,
        state: Option<&'a str>,
        link: Option<&'a str>,
        peer: &'a std::collections::BTreeMap<String, String>,
    ) -> Request<'a> {
        Request {
            username: user,
            password: "",
            server: "s",
            ip: "192.0.2.9",
            port: Some(port),
            now: crate::units::now(),
            session_state: state,
            peer,
            server_started: None,
            web_link: link,
            token_session: None,
            signed_in: None,
        }
    }

    /// Single sign-on in the worker: the login waits for the answer that
    /// tollgate web stores, then decides as for a directory user; a barred
    /// account waits all the same; a client without web auth is refused.
    #[test]
    fn sso_login_waits_for_the_sign_in() {
        let (_dir, mut cfg) = crate::store::tests::temp_config();
        cfg.oidc = Config::parse(
            "[oidc]\nissuer = \"https://idp\"\nclient_id = \"c\"\nclient_secret_file = \"/s\"\n\
             redirect_url = \"https://vpn/oidc/callback\"\nlogin_timeout = \"10s\"\n[oidc.groups]\n\"eng\" = \"eng\"\n",
        )
        .unwrap()
        .oidc;
        cfg.auth_method = AuthMethod::Oidc;
        cfg.provision_plan = Some("basic".into());
        let mut store = directory_store(
            &cfg,
            "INSERT INTO users (name, password_hash, all_servers, enabled, created_at, updated_at) VALUES ('off', '!', 1, 0, 0, 0);",
        );
        let sso: std::collections::BTreeMap<String, String> = [("IV_SSO".to_string(), "webauth".to_string())].into();
        // The browser's side: answer the login of `link` once it is recorded.
        let answer_later = |link: String, a: directory::Answer| {
            let cfg = cfg.clone();
            std::thread::spawn(move || {
                let s = Store::open_hook(&cfg).unwrap();
                for _ in 0..200 {
                    if oidc::finish_link(&s, &link, &a).unwrap() {
                        return true;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                false
            })
        };
        let attempt = |store: &mut Store,
                       user: &str,
                       peer: &std::collections::BTreeMap<String, String>,
                       link: Option<&str>,
                       record| {
            authenticate(store, &cfg, &sso_request(user, 5000, None, link, peer), record).unwrap()
        };
        let accept = directory::Answer::Accept {
            dn: "sub-1".into(),
            groups: vec!["eng".into()],
            static_ip: None,
            reply: Default::default(),
        };
        let link = oidc::new_secret();
        let browser = answer_later(link.clone(), accept.clone());
        let o = attempt(&mut store, "newbie", &sso, Some(&link), true);
        assert!(browser.join().unwrap(), "the login was recorded for the browser");
        assert_eq!((o.decision, o.sso, o.provisioned.as_deref()), (Decision::Accept, true, Some("basic")));
        let (method, group): (String, String) = store
            .conn
            .query_row(
                "SELECT u.auth_method, g.name FROM users u JOIN groups g ON g.id = u.group_id WHERE u.name = 'newbie'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((method.as_str(), group.as_str()), ("oidc", "eng"));
        // A disabled account gets its link and waits like any other.
        let link = oidc::new_secret();
        let browser = answer_later(link.clone(), accept.clone());
        let o = attempt(&mut store, "off", &sso, Some(&link), true);
        assert!(browser.join().unwrap(), "a barred account waits for the sign-in too");
        assert!(matches!(o.decision, Decision::Deny(Deny::NotChecked { .. })), "{:?}", o.decision);
        // The provider's refusal, and a client without web auth.
        let link = oidc::new_secret();
        let browser = answer_later(link.clone(), directory::Answer::NotInGroup { group: "vpn".into() });
        let o = attempt(&mut store, "newbie", &sso, Some(&link), true);
        assert!(browser.join().unwrap());
        assert_eq!(o.decision, Decision::Deny(Deny::NotInRequiredGroup { group: "vpn".into() }));
        let none = Default::default();
        assert_eq!(attempt(&mut store, "newbie", &none, None, true).decision, Decision::Deny(Deny::SsoUnsupported));
        // Inline (no link): refused with the reason; test-auth: the path.
        assert!(matches!(
            attempt(&mut store, "newbie", &sso, None, true).decision,
            Decision::Deny(Deny::Internal { .. })
        ));
        let o = attempt(&mut store, "newbie", &sso, None, false);
        assert_eq!((o.decision, o.sso), (Decision::Accept, true));
        let rows: i64 = store.conn.query_row("SELECT count(*) FROM web_logins", (), |r| r.get(0)).unwrap();
        assert_eq!(rows, 0, "every login's row is gone once read");
    }

    /// The provider's refresh token goes from the sign-in to the user's
    /// grant; once the sweep's recheck records the provider's "no", every
    /// renegotiation or resumption by session token is refused (from any
    /// address and port), until the user signs in again.
    #[test]
    fn a_refused_grant_fails_the_token_renegotiation() {
        let (_dir, mut cfg) = crate::store::tests::temp_config();
        cfg.oidc = Config::parse(
            "[oidc]\nissuer = \"https://idp\"\nclient_id = \"c\"\nclient_secret_file = \"/s\"\n\
             redirect_url = \"https://vpn/oidc/callback\"\nlogin_timeout = \"10s\"\n",
        )
        .unwrap()
        .oidc;
        cfg.auth_method = AuthMethod::Oidc;
        cfg.provision_plan = Some("basic".into());
        let mut store = directory_store(&cfg, "");
        let sso: std::collections::BTreeMap<String, String> = [("IV_SSO".to_string(), "webauth".to_string())].into();
        // The browser's side, with the refresh token tollgate web stores.
        let link = oidc::new_secret();
        let browser = {
            let (cfg, link) = (cfg.clone(), link.clone());
            std::thread::spawn(move || {
                let s = Store::open_hook(&cfg).unwrap();
                let a = directory::Answer::Accept {
                    dn: "sub-1".into(),
                    groups: vec![],
                    static_ip: None,
                    reply: Default::default(),
                };
                for _ in 0..200 {
                    let n = s
                        .conn
                        .execute(
                            "UPDATE web_logins SET answer = ?2, refresh_token = 'rt-1' WHERE link_hash = ?1",
                            params![oidc::hash(&link), serde_json::to_string(&a).unwrap()],
                        )
                        .unwrap();
                    if n == 1 {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            })
        };
        let o = authenticate(&mut store, &cfg, &sso_request("sam", 5000, None, Some(&link), &sso), true).unwrap();
        browser.join().unwrap();
        assert_eq!(o.decision, Decision::Accept);
        let due = oidc::grants_due(&store, "s", i64::MAX).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].username.as_str(), due[0].refresh_token.as_str()), ("sam", "rt-1"));
        let token = |store: &mut Store, port| {
            authenticate(store, &cfg, &sso_request("sam", port, Some("Authenticated"), None, &sso), true)
                .unwrap()
                .decision
        };
        assert_eq!(token(&mut store, 5000), Decision::Accept, "the provider has not said no");
        oidc::grant_checked(&store, "s", &due[0], Err("not a member of the required group vpn"), 1).unwrap();
        let denied = Deny::ProviderRefused { detail: "not a member of the required group vpn".into() };
        assert_eq!(token(&mut store, 5000), Decision::Deny(denied.clone()));
        assert_eq!(token(&mut store, 5001), Decision::Deny(denied), "a resumption from another port");
    }

    /// A client that sent no username: whoever signs in (the username
    /// claim tollgate web records with the answer) is the account, and the
    /// tunnel (OpenVPN's session id) is theirs until the record is pruned,
    /// a day after no open session carries it. Without a session id or web
    /// auth, or for an account with a password method, it is refused.
    #[test]
    fn a_client_without_a_username_is_who_signs_in() {
        let (_dir, mut cfg) = crate::store::tests::temp_config();
        cfg.oidc = Config::parse(
            "[oidc]\nissuer = \"https://idp\"\nclient_id = \"c\"\nclient_secret_file = \"/s\"\n\
             redirect_url = \"https://vpn/oidc/callback\"\nlogin_timeout = \"10s\"\n",
        )
        .unwrap()
        .oidc;
        cfg.provision_plan = Some("basic".into());
        let mut store = directory_store(
            &cfg,
            "INSERT INTO users (name, password_hash, all_servers, enabled, created_at, updated_at) VALUES ('pat', '!', 1, 1, 0, 0);",
        );
        let sso: std::collections::BTreeMap<String, String> = [("IV_SSO".to_string(), "webauth".to_string())].into();
        // The browser's side, as tollgate web answers: signed in as `who`.
        let signs_in = |link: String, who: &'static str| {
            let cfg = cfg.clone();
            std::thread::spawn(move || {
                let s = Store::open_hook(&cfg).unwrap();
                let accept = directory::Answer::Accept {
                    dn: "sub-1".into(),
                    groups: vec![],
                    static_ip: None,
                    reply: Default::default(),
                };
                for _ in 0..200 {
                    if oidc::begin(&s, &link, "state-1", "browser-1", "n", "v", crate::units::now()).unwrap() {
                        return oidc::finish(&s, "state-1", &accept, None, Some(who)).unwrap();
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                false
            })
        };
        let attempt = |store: &mut Store, peer, sid: Option<&str>, link: &str| {
            let req = Request { token_session: sid, ..sso_request("", 5000, Some("Initial"), Some(link), peer) };
            authenticate(store, &cfg, &req, true).unwrap()
        };
        // The default method is local: a sign-in still names the account,
        // which is provisioned as a single sign-on user.
        let link = oidc::new_secret();
        let browser = signs_in(link.clone(), "newbie");
        let o = attempt(&mut store, &sso, Some("sid-1"), &link);
        assert!(browser.join().unwrap());
        assert_eq!((o.decision, o.signed_in_as.as_deref()), (Decision::Accept, Some("newbie")));
        assert_eq!(oidc::tunnel_user(&store.conn, "s", "sid-1").unwrap().as_deref(), Some("newbie"));
        assert_eq!(oidc::tunnel_user(&store.conn, "s", "sid-2").unwrap(), None);
        let method: String =
            store.conn.query_row("SELECT auth_method FROM users WHERE name = 'newbie'", (), |r| r.get(0)).unwrap();
        assert_eq!(method, "oidc");
        // The tunnel's hooks find its user by the session id, also after it
        // closed (a reconnection by its session token), until the prune.
        let mut key = crate::sessions::SessionKey {
            username: String::new(),
            server: "s".into(),
            connected_at: 1,
            real_ip: "192.0.2.9".into(),
            real_port: 5000,
            token_session: Some("sid-1".into()),
        };
        assert!(crate::sessions::resolve_key(&store.conn, &mut key).unwrap());
        assert_eq!(key.username, "newbie");
        key.username.clear();
        let rec =
            crate::sessions::CloseRecord { key, bytes_in: 0, bytes_out: 0, closed_at: 2, reason: "disconnect".into() };
        crate::sessions::close(&mut store, &rec).unwrap();
        assert_eq!(oidc::tunnel_user(&store.conn, "s", "sid-1").unwrap().as_deref(), Some("newbie"));
        let now = crate::units::now();
        assert_eq!(oidc::prune_tunnels(&store.conn, now, 60).unwrap(), 0, "signed in just now");
        store
            .conn
            .execute_batch(
                "INSERT INTO sessions (user_id, server_id, connected_at, token_session)
                 SELECT u.id, v.id, 1, 'sid-5' FROM users u, servers v WHERE u.name = 'newbie' AND v.name = 's';",
            )
            .unwrap();
        let id: i64 = store.conn.query_row("SELECT id FROM users WHERE name = 'newbie'", (), |r| r.get(0)).unwrap();
        oidc::name_tunnel(&store, "s", "sid-5", id, now).unwrap();
        assert_eq!(oidc::prune_tunnels(&store.conn, now + 61, 60).unwrap(), 1, "only the tunnel with no open session");
        assert_eq!(oidc::tunnel_user(&store.conn, "s", "sid-1").unwrap(), None);
        assert_eq!(oidc::tunnel_user(&store.conn, "s", "sid-5").unwrap().as_deref(), Some("newbie"));
        // An account whose method is a password's is not signed into this way.
        let link = oidc::new_secret();
        let browser = signs_in(link.clone(), "pat");
        let o = attempt(&mut store, &sso, Some("sid-3"), &link);
        assert!(browser.join().unwrap());
        assert_eq!(o.decision, Decision::Deny(Deny::SignedInNotSso { method: "local".into() }));
        assert_eq!(oidc::tunnel_user(&store.conn, "s", "sid-3").unwrap(), None);
        // No session id (no auth-gen-token), no web auth: nothing can name it.
        let none = Default::default();
        for (peer, sid) in [(&sso, None), (&none, Some("sid-4"))] {
            let o = attempt(&mut store, peer, sid, &oidc::new_secret());
            assert!(matches!(o.decision, Decision::Deny(Deny::NoUsername { .. })), "{:?}", o.decision);
        }
    }

    /// An executable script: a stand-in program or directory helper.
    fn script(p: &std::path::Path, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(p, body).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// The directory tests' database: server s, plan basic, group eng, and `sql`.
    fn directory_store(cfg: &Config, sql: &str) -> Store {
        let (store, _) = crate::store::Store::init(cfg).unwrap();
        store
            .conn
            .execute_batch(&format!(
                "INSERT INTO servers (name, host, ca_pem, tls_mode, tls_key, created_at) VALUES ('s', 'h', 'x', 'tls-crypt', 'k', 0);
                 INSERT INTO plans (name, created_at) VALUES ('basic', 0);
                 INSERT INTO groups (name, created_at) VALUES ('eng', 0);
                 {sql}"
            ))
            .unwrap();
        store
    }

    /// The flow for every method and outcome, against a real database and
    /// a real program (a shell script that answers per user).
    #[test]
    fn flow_for_every_method_and_outcome() {
        use crate::config::{Argon2Params, PostAuth};
        let (dir, mut cfg) = crate::store::tests::temp_config();
        let prog = dir.path.join("prog");
        script(
            &prog,
            r#"#!/bin/sh
in=$(cat)
case "$in" in
  *'"static_response":"42"'*) echo '{"status":"SUCCEED","group":"lab"}' ;;
  *'"password":"good"'*'"user":"p-hide"'*) echo '{"status":"SUCCEED","challenge":{"text":"PIN?"}}' ;;
  *'"user":"p-hide"'*) echo '{"status":"FAIL","challenge":{"text":"PIN?"}}' ;;
  *'"static_response"'*) echo '{"status":"FAIL","client_reason":"wrong answer"}' ;;
  *'"user":"l-veto"'*) echo '{"status":"FAIL","reason":"policy","client_reason":"not today"}' ;;
  *'"user":"l-ask"'*|*'"user":"l-ask2"'*|*'"user":"p-ask"'*) echo '{"status":"SUCCEED","challenge":{"text":"Answer?"}}' ;;
  *'"user":"l-crash"'*|*'"user":"p-crash"'*) exit 7 ;;
  *'"password":"good"'*) echo '{"status":"SUCCEED","static_ip":"10.8.0.5"}' ;;
  *'"password"'*) echo '{"status":"FAIL","reason":"bad"}' ;;
  *) echo '{"status":"SUCCEED"}' ;;
esac
"#,
        );
        cfg.argon2 = Argon2Params { m_cost_kib: 64, t_cost: 1, p_cost: 1 };
        cfg.post_auth =
            Some(PostAuth { command: vec![prog.display().to_string()], timeout_secs: 5, pending_text: "x".into() });
        let (mut store, _) = crate::store::Store::init(&cfg).unwrap();
        let hash = password::hash("good", cfg.argon2).unwrap();
        store
            .conn
            .execute_batch(&format!(
                "INSERT INTO servers (name, host, ca_pem, tls_mode, tls_key, created_at) VALUES ('s', 'h', 'x', 'tls-crypt', 'k', 0);
                 INSERT INTO groups (name, created_at) VALUES ('lab', 0);
                 INSERT INTO users (name, password_hash, all_servers, auth_method, enabled, created_at, updated_at) VALUES
                   ('l-ok', '{hash}', 1, 'local', 1, 0, 0), ('l-veto', '{hash}', 1, 'local', 1, 0, 0),
                   ('l-ask', '{hash}', 1, 'local', 1, 0, 0), ('l-crash', '{hash}', 1, 'local', 1, 0, 0),
                   ('l-off', '{hash}', 1, 'local', 0, 0, 0),
                   ('p-ok', '!', 1, 'program', 1, 0, 0), ('p-ask', '!', 1, 'program', 1, 0, 0),
                   ('p-crash', '!', 1, 'program', 1, 0, 0), ('p-off', '!', 1, 'program', 0, 0, 0),
                   ('p-hide', '!', 1, 'program', 1, 0, 0);
                 INSERT INTO users (name, password_hash, all_servers, auth_method, totp_secret, totp_confirmed, created_at, updated_at)
                   VALUES ('l-ask2', '{hash}', 1, 'local', 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', 1, 0, 0);"
            ))
            .unwrap();
        let attempt = |store: &mut Store, user: &str, pw: &str| login(store, &cfg, user, pw);
        let deny = |o: &Outcome| match &o.decision {
            Decision::Deny(d) => d.log_reason(),
            other => format!("{other:?}"),
        };
        // (user, password, what the log reason must say; "" = accept)
        let cases = [
            ("l-ok", "good", ""),
            ("l-ok", "bad", "wrong password"),
            ("l-veto", "good", "vetoed the login: policy"),
            ("l-crash", "good", "post-auth program failed: exited with status 7"),
            ("l-off", "good", "account disabled"),
            ("p-ok", "good", ""),
            ("p-ok", "bad", "refused the login: bad"),
            ("p-crash", "good", "post-auth program failed: exited with status 7"),
            ("p-off", "good", "account disabled (the password was not checked)"),
            ("nobody", "good", "unknown user"),
        ];
        for (user, pw, want) in cases {
            let o = attempt(&mut store, user, pw);
            if want.is_empty() {
                assert_eq!(o.decision, Decision::Accept, "{user}/{pw}: {}", deny(&o));
            } else {
                assert!(deny(&o).contains(want), "{user}/{pw}: {}", deny(&o));
            }
        }
        // The program's address for p-ok waits for client-connect.
        let ip: String = store.conn.query_row("SELECT static_ip FROM assignments", (), |r| r.get(0)).unwrap();
        assert_eq!(ip, "10.8.0.5");
        // A question, for either method: asked, then answered wrong, then right.
        for user in ["l-ask", "p-ask"] {
            for (answer, want) in [("7", "wrong answer"), ("42", "")] {
                let o = attempt(&mut store, user, "good");
                assert_eq!(o.decision, Decision::Challenge, "{user}: {}", deny(&o));
                let prompt = o.prompt.unwrap();
                assert!(prompt.starts_with("CRV1:R:") && prompt.ends_with(":Answer?"), "{prompt}");
                let state = prompt.split(':').nth(2).unwrap();
                let o = attempt(&mut store, user, &format!("CRV1::{state}::{answer}"));
                match want {
                    "" => assert_eq!(o.decision, Decision::Accept, "{user}: {}", deny(&o)),
                    w => assert_eq!(
                        o.decision.clone(),
                        Decision::Deny(match user {
                            "l-ask" => Deny::ProgramVeto { log: None, client: Some(w.into()) },
                            _ => Deny::ProgramRefused { log: None, client: Some(w.into()) },
                        })
                    ),
                }
            }
        }
        // A program that asks with FAIL (hiding its verdict on the
        // password) fails the login whatever the answer; with SUCCEED the
        // right answer passes.
        let ask_then = |store: &mut Store, user: &str, pw: &str, answer: &str| {
            let o = attempt(store, user, pw);
            assert_eq!(o.decision, Decision::Challenge, "{user}: {}", deny(&o));
            let state = o.prompt.unwrap().split(':').nth(2).unwrap().to_string();
            attempt(store, user, &format!("CRV1::{state}::{answer}"))
        };
        let o = ask_then(&mut store, "p-hide", "bad", "42");
        assert!(deny(&o).contains("it said FAIL when it asked its question"), "{}", deny(&o));
        assert_eq!(ask_then(&mut store, "p-hide", "good", "42").decision, Decision::Accept);
        // An answer after the user's method changed is refused.
        let o = attempt(&mut store, "l-ask", "good");
        let state = o.prompt.unwrap().split(':').nth(2).unwrap().to_string();
        store.conn.execute("UPDATE users SET auth_method = 'program' WHERE name = 'l-ask'", ()).unwrap();
        let o = attempt(&mut store, "l-ask", &format!("CRV1::{state}::42"));
        assert!(deny(&o).contains("auth method changed"), "{}", deny(&o));
        // A TOTP code accepted before the program asked is spent.
        let key = totp::decode_secret("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        let code = totp::code_at(&key, totp::step_of(1_800_000_000));
        let scrv1 = format!("SCRV1:{}:{}", BASE64.encode(b"good"), BASE64.encode(code.as_bytes()));
        assert_eq!(attempt(&mut store, "l-ask2", &scrv1).decision, Decision::Challenge);
        let o = attempt(&mut store, "l-ask2", &scrv1);
        assert!(deny(&o).contains("wrong or reused authenticator code"), "{}", deny(&o));

        // Each run is traced for test-auth, the password masked.
        let o = attempt(&mut store, "p-ok", "good");
        assert_eq!(o.program.len(), 1);
        assert_eq!(o.program[0].input["authcred"]["password"], "********");
    }

    /// The ldap arm with a stand-in for tollgate-directory (the real one,
    /// against a real slapd, is tests/e2e/test_ldap.sh): who is asked,
    /// what each answer becomes, provisioning, and a helper at fault.
    #[test]
    fn ldap_flow_with_a_stand_in_helper() {
        use crate::config::{Argon2Params, Ldap};
        let (dir, mut cfg) = crate::store::tests::temp_config();
        let asked = dir.path.join("asked");
        let helper = dir.path.join("helper");
        script(
            &helper,
            &format!(
                r#"#!/bin/sh
in=$(cat); echo "$in" >> {asked}
case "$in" in
  *'"username":"hang"'*) sleep 30 ;;
  *'"username":"junk"'*) echo nonsense ;;
  *'"password":"down"'*) echo '{{"result":"unavailable","server":"ldap://d","reason":"connection refused"}}' ;;
  *'"password":"good"'*) echo '{{"result":"accept","dn":"uid=x","groups":["cn=eng,dc=x"]}}' ;;
  *) echo '{{"result":"reject","reason":"invalid credentials"}}' ;;
esac
"#,
                asked = asked.display()
            ),
        );
        cfg.argon2 = Argon2Params { m_cost_kib: 64, t_cost: 1, p_cost: 1 };
        cfg.auth_method = AuthMethod::Ldap;
        cfg.provision_plan = Some("basic".into());
        cfg.directory_helper = Some(helper);
        cfg.ldap = Some(Ldap {
            url: "ldap://d".into(),
            bind_dn: None,
            bind_password_file: None,
            base_dn: None,
            user_filter: String::new(),
            user_dn: Some("uid={username}".into()),
            starttls: false,
            ca_file: None,
            required_group: None,
            group_attribute: "memberOf".into(),
            name_attribute: "uid".into(),
            group_search_base: None,
            group_filter: String::new(),
            timeout_secs: 1,
            groups: vec![("CN=Eng, DC=x".into(), "eng".into())],
        });
        let mut store = directory_store(
            &cfg,
            "INSERT INTO users (name, password_hash, all_servers, enabled, locked_until, created_at, updated_at) VALUES
               ('known', '!', 1, 1, NULL, 0, 0), ('locked', '!', 1, 1, 4000000000, 0, 0), ('off', '!', 1, 0, NULL, 0, 0);",
        );
        let attempt = |store: &mut Store, user: &str, pw: &str| {
            let o = login(store, &cfg, user, pw);
            match o.decision {
                Decision::Deny(d) => d.log_reason(),
                d => format!("{d:?}"),
            }
        };
        let times_asked = || std::fs::read_to_string(&asked).unwrap_or_default().lines().count();
        assert_eq!(attempt(&mut store, "known", "good"), "Accept");
        let group: Option<String> = store
            .conn
            .query_row(
                "SELECT g.name FROM users u LEFT JOIN groups g ON g.id = u.group_id WHERE u.name = 'known'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(group.as_deref(), Some("eng"), "[ldap.groups] sets the group (DN spelling aside)");
        assert!(attempt(&mut store, "known", "bad").contains("directory refused the login: invalid credentials"));
        let failed: i64 =
            store.conn.query_row("SELECT failed_count FROM users WHERE name = 'known'", (), |r| r.get(0)).unwrap();
        assert_eq!(failed, 1, "a refusal counts");
        assert!(attempt(&mut store, "known", "down").contains("directory ldap://d unavailable: connection refused"));
        let failed: i64 =
            store.conn.query_row("SELECT failed_count FROM users WHERE name = 'known'", (), |r| r.get(0)).unwrap();
        assert_eq!(failed, 1, "an outage does not count");
        // Locked and disabled accounts: the directory is not asked.
        let before = times_asked();
        assert!(attempt(&mut store, "locked", "good").contains("locked out"));
        assert!(attempt(&mut store, "off", "good").contains("account disabled (the password was not checked)"));
        // Unknown names tollgate could not create are not asked either.
        assert!(attempt(&mut store, "bad name", "good").contains("unknown user"));
        assert_eq!(times_asked(), before);
        // Provisioning: the method, the plan and a grant for this server.
        assert_eq!(attempt(&mut store, "newbie", "good"), "Accept");
        let (method, plan, grants): (String, String, i64) = store
            .conn
            .query_row(
                "SELECT u.auth_method, p.name, (SELECT count(*) FROM grants WHERE user_id = u.id)
                   FROM users u JOIN plans p ON p.id = u.plan_id WHERE u.name = 'newbie'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((method.as_str(), plan.as_str(), grants), ("ldap", "basic", 1));
        // A helper at fault is "unavailable", within its deadline.
        assert!(attempt(&mut store, "junk", "good").contains("tollgate-directory answered nonsense"));
        let t = std::time::Instant::now();
        assert!(attempt(&mut store, "hang", "good").contains("timed out after 5s"));
        assert!(t.elapsed() < std::time::Duration::from_secs(8));
        let n: i64 = store
            .conn
            .query_row("SELECT count(*) FROM users WHERE name IN ('junk', 'hang')", (), |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "nothing provisioned without an accept");
        // The password reached the helper on stdin only, never a log.
        let ev: String =
            store.conn.query_row("SELECT string_agg(reason, ' | ') FROM auth_events", (), |r| r.get(0)).unwrap();
        assert!(!ev.contains("good") && !ev.contains("\"password\""), "{ev}");
    }

    /// The radius arm with a stand-in for tollgate-directory (the real one,
    /// against a real FreeRADIUS, is tests/e2e/test_radius.sh): an
    /// Access-Challenge for a user not provisioned yet, its answer with the
    /// State, the group and address from the reply, the program's view.
    #[test]
    fn radius_challenge_provisions_on_the_answer() {
        use crate::config::{Argon2Params, PostAuth, Radius};
        let (dir, mut cfg) = crate::store::tests::temp_config();
        let helper = dir.path.join("helper");
        let seen = dir.path.join("program-input");
        let program = dir.path.join("program");
        script(
            &helper,
            r#"#!/bin/sh
in=$(cat)
case "$in" in
  *'"password":"chal"'*) echo '{"result":"challenge","state":"ab01","message":"Code?"}' ;;
  *'"password":"123"'*'"state":"ab01"'*) echo '{"result":"accept","groups":["eng"],"static_ip":"10.8.0.50","reply":{"Class":["eng"],"Framed-IP-Address":["10.8.0.50"]}}' ;;
  *) echo '{"result":"reject","reason":"access rejected"}' ;;
esac
"#,
        );
        script(&program, &format!("#!/bin/sh\ncat > {}\necho '{{\"status\":\"SUCCEED\"}}'\n", seen.display()));
        cfg.argon2 = Argon2Params { m_cost_kib: 64, t_cost: 1, p_cost: 1 };
        cfg.auth_method = AuthMethod::Radius;
        cfg.provision_plan = Some("basic".into());
        cfg.directory_helper = Some(helper);
        cfg.post_auth = Some(PostAuth {
            command: vec![program.display().to_string()],
            timeout_secs: 5,
            pending_text: String::new(),
        });
        cfg.radius = Some(Radius {
            servers: vec!["127.0.0.1:1812".into()],
            secret_file: "/nonexistent".into(),
            timeout_secs: 1,
            retries: 0,
            nas_identifier: "tollgate".into(),
            require_message_authenticator: true,
            groups: vec![("eng".into(), "eng".into())],
        });
        let mut store = directory_store(&cfg, "");
        let users =
            |store: &Store| -> i64 { store.conn.query_row("SELECT count(*) FROM users", (), |r| r.get(0)).unwrap() };
        let ask = |store: &mut Store, user: &str| {
            let o = login(store, &cfg, user, "chal");
            assert_eq!(o.decision, Decision::Challenge, "{user}");
            let prompt = o.prompt.unwrap();
            assert!(prompt.starts_with("CRV1:R:") && prompt.ends_with(":Code?"), "{prompt}");
            prompt.split(':').nth(2).unwrap().to_string()
        };
        let answer = |store: &mut Store, user: &str, state: &str, code: &str| match login(
            store,
            &cfg,
            user,
            &format!("CRV1::{state}::{code}"),
        )
        .decision
        {
            Decision::Deny(d) => d.log_reason(),
            d => format!("{d:?}"),
        };

        // Challenged before tollgate knows the user: nothing created yet.
        let state = ask(&mut store, "newbie");
        assert_eq!(users(&store), 0, "no account for a login still in its challenge");
        // The state is bound to the name it was issued to.
        assert!(answer(&mut store, "intruder", &state, "123").contains("state belongs to another user"));
        let state = ask(&mut store, "newbie");
        assert!(answer(&mut store, "newbie", &state, "999").contains("directory refused the login: access rejected"));
        assert_eq!(users(&store), 0);
        // The right answer, with the State: provisioned, grouped, addressed.
        let state = ask(&mut store, "newbie");
        assert_eq!(answer(&mut store, "newbie", &state, "123"), "Accept");
        let (method, group, ip): (String, String, String) = store
            .conn
            .query_row(
                "SELECT u.auth_method, g.name, a.static_ip FROM users u JOIN groups g ON g.id = u.group_id
                   JOIN assignments a ON a.user_id = u.id WHERE u.name = 'newbie' AND a.real_port = 5000",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((method.as_str(), group.as_str(), ip.as_str()), ("radius", "eng", "10.8.0.50"));
        // Single use.
        assert!(answer(&mut store, "newbie", &state, "123").contains("unknown or already used state"));
        // The program saw the reply attributes, and its silence on the
        // address left RADIUS's in place (checked above).
        let input: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&seen).unwrap()).unwrap();
        assert_eq!(input["info"]["radius_reply"]["Class"][0], "eng");
        assert_eq!(input["info"]["auth_method"], "radius");
        assert!(input["info"].get("ldap").is_none());
        // Without provisioning, an unknown user is not even asked.
        let mut cfg2 = cfg.clone();
        cfg2.provision_plan = None;
        let o = login(&mut store, &cfg2, "stranger", "chal");
        assert!(matches!(o.decision, Decision::Deny(Deny::UnknownUser)));
    }
}
