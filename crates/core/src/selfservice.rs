//! The self-service site's decisions and records (`tollgate web`): signing
//! in with the VPN login's rules, the browser sessions that follow, and the
//! admin's tokens for the JSON API. Pages and HTTP are the CLI's
//! (crates/cli/src/site.rs); nothing here knows of them.

use crate::auth::{self, Secret, Totp};
use crate::config::Config;
use crate::db::{params, Db, Optional};
use crate::method::AuthMethod;
use crate::oidc::{hash, is_secret, new_secret};
use crate::policy::{Decision, Deny, Proof, UserFacts};
use crate::store::Store;
use crate::{directory, password, totp};
use anyhow::{bail, Result};

/// What the login record shows as the server of a sign-in to the site.
pub const SITE: &str = "(self-service)";

/// One sign-in attempt: the form's fields and where it came from.
pub struct SignIn<'a> {
    pub username: &'a str,
    pub password: &'a str,
    /// The authenticator code; empty when the form left it out.
    pub code: &'a str,
    pub ip: &'a str,
    pub now: i64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SignedIn {
    User {
        id: i64,
        name: String,
    },
    /// Refused. The reason is for the log: the page says the same for
    /// every refusal, so that it tells nobody which names exist.
    Refused(Deny),
    /// The user's directory did not answer: nothing was decided.
    Unavailable(String),
}

/// Pure: the site's verdict on what was proven. The VPN's own rules for
/// the credentials (failures before anything about the account, one
/// answer while locked); of the account's standing only what bars any
/// sign-in (disabled). An expired plan or a used-up quota still lets the
/// user see why.
pub fn decide(user: Option<&UserFacts>, proof: Proof, now: i64) -> Result<(), Deny> {
    let Some(u) = user else { return Err(Deny::UnknownUser) };
    if let Some(until) = u.locked_until.filter(|t| *t > now) {
        return Err(Deny::Locked { until, bad_proof: matches!(proof, Proof::Invalid | Proof::BadCode { .. }) });
    }
    match proof {
        Proof::Invalid => Err(Deny::BadPassword),
        Proof::BadCode { .. } => Err(Deny::BadCode { challenged: false }),
        _ if !u.enabled => Err(Deny::Disabled),
        Proof::CodeRequired | Proof::NeedsCode => Err(Deny::CodeRequired),
        Proof::FactorUnusable => Err(Deny::Internal {
            detail: "the stored second-factor secret cannot be decoded: enroll again (tollgate mfa enroll --force)"
                .into(),
        }),
        Proof::Valid | Proof::Token => Ok(()),
    }
}

/// The second factor on the site: always asked with the password.
fn second_factor(t: &Totp, code: &str, now: i64, step: &mut Option<i64>) -> Proof {
    match t {
        Totp::Off => Proof::Valid,
        Totp::Unusable => Proof::FactorUnusable,
        Totp::On { .. } if code.is_empty() => Proof::CodeRequired,
        Totp::On { key, last_step } => match totp::verify(key, code, now, *last_step) {
            Some(s) => {
                *step = Some(s);
                Proof::Valid
            }
            None => Proof::BadCode { challenged: false },
        },
    }
}

/// Sign in to the site: the same input checks, per-address block, account
/// lockout, constant cost for unknown names, second factor and login record
/// as a VPN login. Local, LDAP and RADIUS users sign in here; others (and
/// a RADIUS server that asks a question) are refused with a reason.
pub fn sign_in(store: &mut Store, cfg: &Config, r: &SignIn) -> Result<SignedIn> {
    if let Err(d) = crate::policy::check_credentials(r.username.as_bytes(), r.password.as_bytes()) {
        return Ok(SignedIn::Refused(d));
    }
    if r.code.len() > 16 || r.code.chars().any(char::is_control) {
        return Ok(SignedIn::Refused(Deny::Malformed { detail: "code is not a code".into() }));
    }
    let secret = match r.code {
        "" => Secret::Plain(r.password.to_string()),
        code => Secret::Static { password: r.password.to_string(), code: code.to_string() },
    };
    let peer = Default::default();
    let req = auth::Request {
        username: r.username,
        password: "",
        server: SITE,
        ip: r.ip,
        port: None,
        now: r.now,
        session_state: None,
        peer: &peer,
        web_link: None,
        token_session: None,
        signed_in: None,
        server_started: None,
    };
    let loaded = auth::load(store, r.username, SITE, r.now)?;
    if cfg.lockout.per_source > 0 {
        if let Some(until) = auth::source_state(&store.conn, r.ip)?.locked_until.filter(|t| *t > r.now) {
            let d = Deny::SourceBlocked { ip: r.ip.to_string(), until };
            auth::record_outcome(store, cfg, &req, &loaded, &Decision::Deny(d.clone()), Some(&secret), false)?;
            return Ok(SignedIn::Refused(d));
        }
    }
    let method = match loaded.method(cfg) {
        Ok((m, _)) => m,
        Err(e) => return Ok(SignedIn::Refused(Deny::from_error(&e))),
    };
    let user = loaded.facts.user.as_ref();
    let locked = user.is_some_and(|u| u.locked_until.is_some_and(|t| t > r.now));
    let mut step = None;
    let proof = match method {
        AuthMethod::Local => match password::verify(loaded.password_hash.as_deref(), r.password, cfg.argon2) {
            true => second_factor(&loaded.totp, r.code, r.now, &mut step),
            false => Proof::Invalid,
        },
        // A directory is asked only about an account it may let in.
        AuthMethod::Ldap | AuthMethod::Radius if user.is_some() && !locked => {
            match directory::check(cfg, method, r.username, r.password, None, Some(r.ip)) {
                directory::Answer::Accept { .. } => second_factor(&loaded.totp, r.code, r.now, &mut step),
                directory::Answer::Reject { .. } | directory::Answer::NotInGroup { .. } => Proof::Invalid,
                directory::Answer::Unavailable { server, reason } => {
                    return Ok(SignedIn::Unavailable(format!("{server}: {reason}")))
                }
                directory::Answer::Challenge { .. } => {
                    return Ok(SignedIn::Refused(Deny::Internal {
                        detail: "the RADIUS server asked a question: the self-service site cannot answer it".into(),
                    }))
                }
            }
        }
        AuthMethod::Ldap | AuthMethod::Radius if locked => Proof::Valid,
        // Unknown names, and accounts with no password to check here, cost
        // what a local login costs.
        _ => {
            password::verify(None, r.password, cfg.argon2);
            match user {
                Some(_) if !matches!(method, AuthMethod::Ldap | AuthMethod::Radius) => {
                    return Ok(SignedIn::Refused(Deny::Internal {
                        detail: format!(
                            "auth method {}: the self-service site signs in local, LDAP and RADIUS users",
                            method.as_str()
                        ),
                    }))
                }
                _ => Proof::Invalid,
            }
        }
    };
    let mut verdict = decide(user, proof, r.now);
    // The code's time step is claimed atomically: two sign-ins (or a
    // sign-in and a VPN login) with the same code cannot both pass.
    if let (Ok(()), Some(step), Some(u)) = (&verdict, step, user) {
        let n = store.conn.execute(
            "UPDATE users SET totp_last_step = ?2 WHERE id = ?1 AND (totp_last_step IS NULL OR totp_last_step < ?2)",
            params![u.id, step],
        )?;
        if n == 0 {
            verdict = Err(Deny::BadCode { challenged: false });
        }
    }
    let decision = match &verdict {
        Ok(()) => Decision::Accept,
        Err(d) => Decision::Deny(d.clone()),
    };
    auth::record_outcome(store, cfg, &req, &loaded, &decision, Some(&secret), false)?;
    match (verdict, user) {
        (Ok(()), Some(u)) => {
            if method == AuthMethod::Local {
                auth::maybe_rehash(store, cfg, r.password, &loaded)?;
            }
            Ok(SignedIn::User { id: u.id, name: u.name.clone() })
        }
        (Ok(()), None) => Ok(SignedIn::Refused(Deny::UnknownUser)),
        (Err(d), _) => Ok(SignedIn::Refused(d)),
    }
}

/// A signed-in browser.
#[derive(Clone, PartialEq, Eq)]
pub struct WebSession {
    pub user_id: i64,
    pub user: String,
    /// The anti-forgery token every form of this session carries.
    pub csrf: String,
    /// A second-factor secret shown for enrolment, not confirmed yet.
    pub totp_pending: Option<String>,
    pub expires_at: i64,
}

/// No secret in logs: the anti-forgery token and a pending second factor
/// are left out.
impl std::fmt::Debug for WebSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSession")
            .field("user_id", &self.user_id)
            .field("user", &self.user)
            .field("enrolling", &self.totp_pending.is_some())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Start a session for a user who signed in: the cookie's secret (only its
/// hash is stored). Expired sessions of everyone are dropped on the way.
pub fn open_session(db: &Db, user_id: i64, ip: &str, now: i64, lifetime_secs: i64) -> Result<String> {
    let secret = new_secret();
    db.execute("DELETE FROM web_sessions WHERE expires_at <= ?1", [now])?;
    db.execute(
        "INSERT INTO web_sessions (id_hash, user_id, csrf, ip, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![hash(&secret), user_id, new_secret(), ip, now, now + lifetime_secs],
    )?;
    Ok(secret)
}

/// The live session a cookie's secret names: not expired, and its user
/// still enabled.
pub fn session(db: &Db, secret: &str, now: i64) -> Result<Option<WebSession>> {
    if !is_secret(secret) {
        return Ok(None);
    }
    Ok(db
        .query_row(
            "SELECT s.user_id, u.name, s.csrf, s.totp_pending, s.expires_at
               FROM web_sessions s JOIN users u ON u.id = s.user_id
              WHERE s.id_hash = ?1 AND s.expires_at > ?2 AND u.enabled <> 0",
            params![hash(secret), now],
            |r| {
                Ok(WebSession {
                    user_id: r.get(0)?,
                    user: r.get(1)?,
                    csrf: r.get(2)?,
                    totp_pending: r.get(3)?,
                    expires_at: r.get(4)?,
                })
            },
        )
        .optional()?)
}

/// Sign out.
pub fn end_session(db: &Db, secret: &str) -> Result<()> {
    if is_secret(secret) {
        db.execute("DELETE FROM web_sessions WHERE id_hash = ?1", [hash(secret)])?;
    }
    Ok(())
}

/// End every session of a user (disabled, or a new password): how many.
pub fn end_sessions(db: &Db, user_id: i64) -> Result<usize> {
    Ok(db.execute("DELETE FROM web_sessions WHERE user_id = ?1", [user_id])?)
}

/// Keep (or forget) the second-factor secret a session is enrolling.
pub fn set_pending_totp(db: &Db, secret: &str, pending: Option<&str>) -> Result<()> {
    db.execute("UPDATE web_sessions SET totp_pending = ?2 WHERE id_hash = ?1", params![hash(secret), pending])?;
    Ok(())
}

/// What an admin token may read through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Any user's profile (`GET /api/v1/users/NAME/servers/SERVER/openvpn`).
    Profile,
    /// Any user's usage.
    Usage,
    /// Any user's sessions and recent logins.
    Sessions,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Profile, Scope::Usage, Scope::Sessions];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Profile => "profile",
            Scope::Usage => "usage",
            Scope::Sessions => "sessions",
        }
    }

    /// `profile,usage`: sorted, without repeats; `all` is every scope.
    pub fn parse_list(s: &str) -> Result<Vec<Scope>> {
        let mut out = vec![];
        for part in s.split(',').map(str::trim) {
            match part {
                "all" => out.extend(Scope::ALL),
                p => match Scope::ALL.iter().find(|x| x.as_str() == p) {
                    Some(x) => out.push(*x),
                    None => bail!("unknown scope {p:?} (profile, usage, sessions or all)"),
                },
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn join(scopes: &[Scope]) -> String {
        scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
    }
}

/// The prefix of every API token (it tells a leaked one for what it is).
pub const TOKEN_PREFIX: &str = "tgapi_";

/// Whether `s` has the form of a token (checked before any look-up).
pub fn is_token(s: &str) -> bool {
    s.strip_prefix(TOKEN_PREFIX).is_some_and(|t| t.len() == 52 && is_secret(&t[..26]) && is_secret(&t[26..]))
}

/// A new token for the API, shown once: 256 random bits. Only its SHA-256
/// is stored (a hash this fast is enough for a secret this long: nothing
/// to guess).
pub fn token_add(db: &Db, name: &str, scopes: &[Scope], expires_at: Option<i64>, now: i64) -> Result<String> {
    crate::names::check_name("token", name)?;
    if scopes.is_empty() {
        bail!("a token needs at least one scope");
    }
    let token = format!("{TOKEN_PREFIX}{}{}", new_secret(), new_secret());
    let n = db.execute(
        "INSERT INTO api_tokens (name, hash, scopes, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (name) DO NOTHING",
        params![name, hash(&token), Scope::join(scopes), now, expires_at],
    )?;
    if n == 0 {
        bail!("token {name} already exists (revoke it, or choose another name)");
    }
    Ok(token)
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenRow {
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

pub fn token_list(db: &Db) -> Result<Vec<TokenRow>> {
    let mut st = db.prepare(
        "SELECT name, scopes, created_at, expires_at, revoked_at, last_used_at FROM api_tokens ORDER BY name",
    )?;
    let rows = st
        .query_map([], |r| {
            Ok(TokenRow {
                name: r.get(0)?,
                scopes: r.get::<_, String>(1)?.split(',').map(str::to_string).collect(),
                created_at: r.get(2)?,
                expires_at: r.get(3)?,
                revoked_at: r.get(4)?,
                last_used_at: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Revoke a token (it stays listed): false if there is none of that name.
pub fn token_revoke(db: &Db, name: &str, now: i64) -> Result<bool> {
    let n =
        db.execute("UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?2) WHERE name = ?1", params![name, now])?;
    Ok(n == 1)
}

/// The token's name and scopes, if it is live (not revoked, not expired);
/// its last use is noted.
pub fn token_check(db: &Db, token: &str, now: i64) -> Result<Option<(String, Vec<Scope>)>> {
    if !is_token(token) {
        return Ok(None);
    }
    let row: Option<(i64, String, String)> = db
        .query_row(
            "SELECT id, name, scopes FROM api_tokens
              WHERE hash = ?1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)",
            params![hash(token), now],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((id, name, scopes)) = row else { return Ok(None) };
    db.execute("UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1", params![id, now])?;
    // A scope this build does not know gives nothing.
    let scopes = scopes.split(',').filter_map(|s| Scope::parse_list(s).ok()).flatten().collect();
    Ok(Some((name, scopes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::temp_config;

    fn facts(enabled: bool, locked_until: Option<i64>) -> UserFacts {
        UserFacts {
            id: 1,
            name: "alice".into(),
            enabled,
            expires_at: None,
            locked_until,
            plan: None,
            granted: false,
            used_bytes: 0,
            open_sessions: 0,
            client_deny: None,
            device_deny: None,
        }
    }

    #[test]
    fn decisions() {
        let ok = facts(true, None);
        assert_eq!(decide(Some(&ok), Proof::Valid, 100), Ok(()));
        assert_eq!(decide(None, Proof::Valid, 100), Err(Deny::UnknownUser));
        assert_eq!(decide(Some(&ok), Proof::Invalid, 100), Err(Deny::BadPassword));
        assert_eq!(decide(Some(&ok), Proof::CodeRequired, 100), Err(Deny::CodeRequired));
        assert_eq!(
            decide(Some(&ok), Proof::BadCode { challenged: true }, 100),
            Err(Deny::BadCode { challenged: false })
        );
        // Credentials first: a disabled account with a wrong password is
        // a wrong password (nothing about the account leaks).
        let off = facts(false, None);
        assert_eq!(decide(Some(&off), Proof::Invalid, 100), Err(Deny::BadPassword));
        assert_eq!(decide(Some(&off), Proof::Valid, 100), Err(Deny::Disabled));
        // One answer while locked, counted when the proof was wrong.
        let locked = facts(true, Some(200));
        assert_eq!(decide(Some(&locked), Proof::Valid, 100), Err(Deny::Locked { until: 200, bad_proof: false }));
        assert_eq!(decide(Some(&locked), Proof::Invalid, 100), Err(Deny::Locked { until: 200, bad_proof: true }));
        assert_eq!(decide(Some(&locked), Proof::Valid, 200), Ok(()), "the lock ran out");
    }

    #[test]
    fn scopes_and_token_forms() {
        assert_eq!(Scope::parse_list("usage,profile,usage").unwrap(), [Scope::Profile, Scope::Usage]);
        assert_eq!(Scope::parse_list("all").unwrap(), Scope::ALL);
        assert!(format!("{:#}", Scope::parse_list("admin").unwrap_err()).contains("unknown scope"));
        let t = format!("{TOKEN_PREFIX}{}{}", new_secret(), new_secret());
        assert!(is_token(&t));
        for bad in ["", TOKEN_PREFIX, &t[1..], &format!("{t}a"), &t.to_uppercase()] {
            assert!(!is_token(bad), "{bad}");
        }
    }

    fn user(store: &Store, name: &str, pw: &str, cfg: &Config) -> i64 {
        let hash = password::hash(pw, cfg.argon2).unwrap();
        let u = crate::users::NewUser {
            name,
            password_hash: &hash,
            enabled: true,
            plan_id: None,
            group_id: None,
            expires_at: None,
            all_servers: false,
            static_ip: None,
            auth_method: None,
        };
        crate::users::add(&store.conn, &u, &[], 0).unwrap()
    }

    #[test]
    fn sign_in_counts_like_a_vpn_login() {
        let (_d, mut cfg) = temp_config();
        cfg.argon2 = crate::config::Argon2Params { m_cost_kib: 64, t_cost: 1, p_cost: 1 };
        cfg.lockout.max_failures = 2;
        let (mut store, _) = Store::init(&cfg).unwrap();
        let id = user(&store, "alice", "right-password", &cfg);
        let at = |u, p, c, now| SignIn { username: u, password: p, code: c, ip: "192.0.2.9", now };
        let ok = sign_in(&mut store, &cfg, &at("alice", "right-password", "", 1000)).unwrap();
        assert_eq!(ok, SignedIn::User { id, name: "alice".into() });
        assert_eq!(sign_in(&mut store, &cfg, &at("bob", "x", "", 1001)).unwrap(), SignedIn::Refused(Deny::UnknownUser));
        // Two wrong passwords lock the account for the VPN too.
        for now in [1002, 1003] {
            let r = sign_in(&mut store, &cfg, &at("alice", "wrong", "", now)).unwrap();
            assert_eq!(r, SignedIn::Refused(Deny::BadPassword));
        }
        let r = sign_in(&mut store, &cfg, &at("alice", "right-password", "", 1004)).unwrap();
        assert!(matches!(r, SignedIn::Refused(Deny::Locked { .. })), "{r:?}");
        let vpn = auth::load(&store, "alice", "nl-1", 1004).unwrap();
        assert!(vpn.facts.user.unwrap().locked_until.is_some_and(|t| t > 1004));
        let events = crate::events::recent(&store.conn, Some("alice"), 10).unwrap();
        assert_eq!(events.len(), 4);
        assert!(events.iter().all(|e| e.server.as_deref() == Some(SITE)));
    }

    #[test]
    fn second_factor_is_asked_and_not_replayed() {
        let (_d, mut cfg) = temp_config();
        cfg.argon2 = crate::config::Argon2Params { m_cost_kib: 64, t_cost: 1, p_cost: 1 };
        let (mut store, _) = Store::init(&cfg).unwrap();
        let id = user(&store, "alice", "right-password", &cfg);
        let secret = totp::new_secret();
        crate::users::totp_set(&store.conn, id, &secret, true, 0).unwrap();
        let now = 1_700_000_000;
        let code = totp::code_at(&totp::decode_secret(&secret).unwrap(), totp::step_of(now));
        let at = |c| SignIn { username: "alice", password: "right-password", code: c, ip: "192.0.2.9", now };
        assert_eq!(sign_in(&mut store, &cfg, &at("")).unwrap(), SignedIn::Refused(Deny::CodeRequired));
        assert_eq!(
            sign_in(&mut store, &cfg, &at("000000x")).unwrap(),
            SignedIn::Refused(Deny::BadCode { challenged: false })
        );
        assert!(matches!(sign_in(&mut store, &cfg, &at(&code)).unwrap(), SignedIn::User { .. }));
        assert_eq!(
            sign_in(&mut store, &cfg, &at(&code)).unwrap(),
            SignedIn::Refused(Deny::BadCode { challenged: false }),
            "a code is good once"
        );
    }

    #[test]
    fn sessions_end_with_the_account() {
        let (_d, cfg) = temp_config();
        let (store, _) = Store::init(&cfg).unwrap();
        let id = user(&store, "alice", "right-password", &cfg);
        let other = user(&store, "bob", "right-password", &cfg);
        let db = &store.conn;
        let s = open_session(db, id, "192.0.2.9", 100, 60).unwrap();
        let b = open_session(db, other, "192.0.2.9", 100, 60).unwrap();
        let got = session(db, &s, 120).unwrap().unwrap();
        assert_eq!((got.user.as_str(), got.expires_at, got.totp_pending), ("alice", 160, None));
        assert_eq!(session(db, &s, 160).unwrap(), None, "expired");
        assert_eq!(session(db, "not-a-secret", 120).unwrap(), None);
        set_pending_totp(db, &s, Some("ABCSECRET")).unwrap();
        let got = session(db, &s, 120).unwrap().unwrap();
        assert_eq!(got.totp_pending.as_deref(), Some("ABCSECRET"));
        let shown = format!("{got:?}");
        assert!(!shown.contains("ABCSECRET") && !shown.contains(&got.csrf), "{shown}");
        crate::users::change(db, id, crate::users::Change::Enabled(false), 130).unwrap();
        assert_eq!(session(db, &s, 130).unwrap(), None, "disabling ends it");
        crate::users::change(db, id, crate::users::Change::Enabled(true), 131).unwrap();
        assert_eq!(session(db, &s, 131).unwrap(), None, "and enabling does not bring it back");
        assert!(session(db, &b, 131).unwrap().is_some(), "others' sessions stay");
        end_session(db, &b).unwrap();
        assert_eq!(session(db, &b, 131).unwrap(), None);
    }

    #[test]
    fn tokens() {
        let (_d, cfg) = temp_config();
        let (store, _) = Store::init(&cfg).unwrap();
        let db = &store.conn;
        let t = token_add(db, "shop", &[Scope::Profile, Scope::Usage], None, 10).unwrap();
        assert!(is_token(&t));
        assert!(token_add(db, "shop", &[Scope::Usage], None, 10).is_err(), "names are unique");
        let old = token_add(db, "old", &[Scope::Usage], Some(50), 10).unwrap();
        assert_eq!(token_check(db, &t, 20).unwrap(), Some(("shop".into(), vec![Scope::Profile, Scope::Usage])));
        assert!(token_check(db, &old, 49).unwrap().is_some());
        assert_eq!(token_check(db, &old, 50).unwrap(), None, "expired");
        assert!(token_revoke(db, "shop", 30).unwrap());
        assert!(!token_revoke(db, "nope", 30).unwrap());
        assert_eq!(token_check(db, &t, 31).unwrap(), None, "revoked");
        let listed = token_list(db).unwrap();
        let shop = listed.iter().find(|r| r.name == "shop").unwrap();
        assert_eq!(
            (shop.revoked_at, shop.last_used_at, shop.scopes.join(",")),
            (Some(30), Some(20), "profile,usage".into())
        );
        assert!(!format!("{listed:?}").contains(&t[TOKEN_PREFIX.len()..]), "no secret listed");
    }
}
