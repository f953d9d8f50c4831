//! The auth decision, pure: facts in, a decision with reasons out. No I/O,
//! no clock, no database; the hooks and `tollgate test-auth` are shells
//! around it.
//!
//! Disclosure rule: whoever does not prove the password learns nothing.
//! An unknown user, a wrong password or malformed input all get the same
//! client text ("invalid username or password"); the specific reason
//! (disabled, expired, no access, quota, …) is shown to the client only
//! after the password was right. The admin's log always gets the real
//! reason.

use crate::quota::Period;
use crate::units::{format_expiry, format_size, format_size_of, format_time};
use serde::Serialize;

/// What the database says about the user, for this server, at this time.
#[derive(Debug, Clone, Default)]
pub struct UserFacts {
    pub id: i64,
    pub name: String,
    pub enabled: bool,
    pub expires_at: Option<i64>,
    pub locked_until: Option<i64>,
    pub plan: Option<PlanFacts>,
    /// The server is granted to the user, to the user's group, or to all.
    pub granted: bool,
    /// Bytes used (in + out) in the plan's current quota period.
    pub used_bytes: i64,
    pub open_sessions: i64,
    /// A failed client check (platform, version, required UV_ variable).
    pub client_deny: Option<Deny>,
    /// A failed device check (device binding).
    pub device_deny: Option<Deny>,
}

#[derive(Debug, Clone)]
pub struct PlanFacts {
    pub name: String,
    /// When the plan runs out (plan_since + expires_after), if it does.
    pub expires_at: Option<i64>,
    pub quota_bytes: Option<i64>,
    pub period: Period,
    pub max_connections: Option<i64>,
    pub max_session_secs: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct AuthFacts {
    pub server: String,
    pub server_known: bool,
    pub user: Option<UserFacts>,
}

/// How the client proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// The password (and second factor where present) was right.
    Valid,
    /// Wrong password.
    Invalid,
    /// Wrong, replayed or missing second-factor code; `challenged`: it
    /// answered a dynamic challenge (the password was proven before).
    BadCode { challenged: bool },
    /// Password right, the second factor is still to come: challenge (CRV1).
    NeedsCode,
    /// Password right, but a code was required with it (static mode).
    CodeRequired,
    /// OpenVPN vouched for a session token (reauth, `session_state=Authenticated`).
    Token,
    /// Password right, but the user's stored second-factor secret is
    /// unusable: fail closed, never let the password alone in.
    FactorUnusable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Deny {
    Malformed {
        detail: String,
    },
    UnknownUser,
    BadPassword,
    /// `bad_proof`: the password or code was wrong as well (it counts).
    Locked {
        until: i64,
        bad_proof: bool,
    },
    /// The client's address failed too often ([lockout] per_source).
    SourceBlocked {
        ip: String,
        until: i64,
    },
    Disabled,
    AccountExpired {
        at: i64,
    },
    PlanExpired {
        plan: String,
        at: i64,
    },
    UnknownServer {
        server: String,
    },
    NoGrant {
        server: String,
    },
    QuotaExhausted {
        used: i64,
        quota: i64,
        period: Period,
        resets: Option<i64>,
    },
    TooManySessions {
        open: i64,
        max: i64,
    },
    SessionTimeLimit {
        max: i64,
    },
    BadCode {
        challenged: bool,
    },
    CodeRequired,
    BadChallenge {
        detail: String,
    },
    TokenRejected {
        state: String,
    },
    DeviceUnknown {
        detail: String,
    },
    DeviceNotApproved {
        id: String,
    },
    DeviceLimit {
        id: String,
        max: i64,
    },
    ClientRejected {
        log: String,
        client: String,
    },
    Internal {
        detail: String,
    },
    /// The store could not be used in time (PostgreSQL unreachable, a lock
    /// held past the busy timeout): refused, to be tried again.
    StoreUnavailable {
        detail: String,
    },
    /// A `program` user's program said FAIL: a wrong password, as far as
    /// tollgate can tell (it counts toward the lockout).
    ProgramRefused {
        log: Option<String>,
        client: Option<String>,
    },
    /// The post-auth program vetoed a login tollgate had accepted.
    ProgramVeto {
        log: Option<String>,
        client: Option<String>,
    },
    /// The post-auth program could not give an answer (it failed to start,
    /// exited non-zero, died, timed out, or printed no valid reply).
    ProgramFailed {
        detail: String,
    },
    /// A `program` or directory user whose account may not log in: the
    /// password was not checked (nothing was asked of the program or the
    /// directory).
    NotChecked {
        standing: String,
    },
    /// The directory refused the password (or does not know the user).
    DirectoryRefused {
        detail: String,
    },
    /// The password is right but the user is not in `required_group`.
    NotInRequiredGroup {
        group: String,
    },
    /// The directory could not answer: never a reason to let anyone in.
    DirectoryUnavailable {
        server: String,
        detail: String,
    },
    /// A single sign-on user whose client did not announce web auth.
    SsoUnsupported,
    /// Nobody finished signing in at the provider in time.
    SsoTimedOut {
        secs: u64,
    },
    /// The identity provider, asked again by the sweep, no longer admits
    /// this single sign-on tunnel's user (out of the required group, the
    /// account or its session gone at the provider).
    ProviderRefused {
        detail: String,
    },
    /// The client sent no username, and this login cannot take one from a
    /// sign-in: `detail` says what is missing.
    NoUsername {
        detail: String,
    },
    /// A client that sent no username signed in at the provider as an
    /// account that does not use single sign-on (`method`).
    SignedInNotSso {
        method: String,
    },
}

pub const GENERIC_CLIENT_REASON: &str = "invalid username or password";

impl Deny {
    /// The refusal for an error on the way to a decision: the store being
    /// unavailable is said as such (try again later); anything else is an
    /// internal error.
    pub fn from_error(e: &anyhow::Error) -> Deny {
        let detail = format!("{e:#}");
        match crate::db::unavailable(e) {
            true => Deny::StoreUnavailable { detail },
            false => Deny::Internal { detail },
        }
    }

    /// The reason as one stable word, for counting (`tollgate metrics`);
    /// never carries a name, address or number.
    pub fn kind(&self) -> &'static str {
        match self {
            Deny::Malformed { .. } => "malformed",
            Deny::UnknownUser => "unknown_user",
            Deny::BadPassword => "bad_password",
            Deny::Locked { .. } => "locked",
            Deny::SourceBlocked { .. } => "source_blocked",
            Deny::Disabled => "disabled",
            Deny::AccountExpired { .. } => "account_expired",
            Deny::PlanExpired { .. } => "plan_expired",
            Deny::UnknownServer { .. } => "unknown_server",
            Deny::NoGrant { .. } => "no_grant",
            Deny::QuotaExhausted { .. } => "quota",
            Deny::TooManySessions { .. } => "connection_limit",
            Deny::SessionTimeLimit { .. } => "session_time",
            Deny::BadCode { .. } => "bad_code",
            Deny::CodeRequired => "code_required",
            Deny::BadChallenge { .. } => "bad_challenge",
            Deny::TokenRejected { .. } => "token_rejected",
            Deny::DeviceUnknown { .. } | Deny::DeviceNotApproved { .. } | Deny::DeviceLimit { .. } => "device",
            Deny::ClientRejected { .. } => "client_check",
            Deny::Internal { .. } => "internal",
            Deny::StoreUnavailable { .. } => "store_unavailable",
            Deny::ProgramRefused { .. } => "program_refused",
            Deny::ProgramVeto { .. } => "program_veto",
            Deny::ProgramFailed { .. } => "program_failed",
            Deny::NotChecked { .. } => "not_checked",
            Deny::DirectoryRefused { .. } => "directory_refused",
            Deny::NotInRequiredGroup { .. } => "not_in_group",
            Deny::DirectoryUnavailable { .. } => "directory_unavailable",
            Deny::SsoUnsupported => "sso_unsupported",
            Deny::SsoTimedOut { .. } => "sso_timeout",
            Deny::ProviderRefused { .. } => "provider_refused",
            Deny::NoUsername { .. } => "no_username",
            Deny::SignedInNotSso { .. } => "not_sso_account",
        }
    }

    /// For the admin: stderr, which lands in OpenVPN's log.
    pub fn log_reason(&self) -> String {
        match self {
            Deny::Malformed { detail } => format!("malformed input: {detail}"),
            Deny::UnknownUser => "unknown user".into(),
            Deny::BadPassword => "wrong password".into(),
            Deny::Locked { until, bad_proof } => format!(
                "locked out until {}{}",
                format_time(*until),
                if *bad_proof { ", and the password or code was wrong" } else { "" }
            ),
            Deny::SourceBlocked { ip, until } => {
                format!("address {ip} blocked until {} after too many failed logins", format_time(*until))
            }
            Deny::Disabled => "account disabled".into(),
            Deny::AccountExpired { at } => format!("account expired at {}", format_time(*at)),
            Deny::PlanExpired { plan, at } => {
                format!("plan {plan} expired at {}", format_time(*at))
            }
            Deny::UnknownServer { server } => {
                format!("server {server} is not in the database (tollgate server add {server} …)")
            }
            Deny::NoGrant { server } => format!("no grant for server {server}"),
            Deny::QuotaExhausted { used, quota, period, .. } => {
                format!(
                    "quota used up: {} of {} ({})",
                    format_size_of(*used, *quota),
                    format_size(*quota),
                    period.as_str()
                )
            }
            Deny::TooManySessions { open, max } => {
                format!("{open} open sessions, plan allows {max}")
            }
            Deny::SessionTimeLimit { max } => {
                format!("session longer than the plan's {}", crate::units::format_duration(*max))
            }
            Deny::BadCode { challenged: true } => "wrong or reused authenticator code (dynamic challenge)".into(),
            Deny::BadCode { challenged: false } => "wrong or reused authenticator code".into(),
            Deny::CodeRequired => "second factor required but no code sent (profile lacks static-challenge)".into(),
            Deny::BadChallenge { detail } => format!("challenge response refused: {detail}"),
            Deny::TokenRejected { state } => format!("session token not accepted (session_state={state})"),
            Deny::DeviceUnknown { detail } => format!("device binding: {detail}"),
            Deny::DeviceNotApproved { id } => {
                format!("device {id} not approved (tollgate device add USER {id})")
            }
            Deny::DeviceLimit { id, max } => format!("device {id} refused: {max} device(s) already registered"),
            Deny::ClientRejected { log, .. } => format!("client check: {log}"),
            Deny::Internal { detail } => format!("internal error: {detail}"),
            Deny::StoreUnavailable { detail } => format!("database unavailable: {detail}"),
            Deny::ProgramRefused { log, .. } => {
                format!("post-auth program refused the login: {}", log.as_deref().unwrap_or("no reason given"))
            }
            Deny::ProgramVeto { log, .. } => {
                format!("post-auth program vetoed the login: {}", log.as_deref().unwrap_or("no reason given"))
            }
            Deny::ProgramFailed { detail } => format!("post-auth program failed: {detail}"),
            Deny::NotChecked { standing } => format!("{standing} (the password was not checked)"),
            Deny::DirectoryRefused { detail } => format!("directory refused the login: {detail}"),
            Deny::NotInRequiredGroup { group } => format!("not a member of the required group {group}"),
            Deny::DirectoryUnavailable { server, detail } => format!("directory {server} unavailable: {detail}"),
            Deny::SsoUnsupported => {
                "single sign-on user, but the client did not announce web auth (IV_SSO webauth)".into()
            }
            Deny::SsoTimedOut { secs } => format!("single sign-on not completed within {secs}s"),
            Deny::ProviderRefused { detail } => format!("the identity provider no longer admits the user: {detail}"),
            Deny::NoUsername { detail } => format!("no username sent: {detail}"),
            Deny::SignedInNotSso { method } => {
                format!("signed in at the identity provider, but the account's auth method is {method}, not oidc")
            }
        }
    }

    /// For the user: short, safe, actionable. Written to auth_failed_reason_file.
    pub fn client_reason(&self) -> String {
        match self {
            // A wrong code sent with the password (static challenge) must
            // not tell a guesser that the password was right.
            // A locked account answers every attempt alike, right password
            // or not: otherwise the lock is an oracle for the password.
            Deny::Malformed { .. }
            | Deny::NotChecked { .. }
            | Deny::ProgramRefused { client: None, .. }
            | Deny::DirectoryRefused { .. }
            | Deny::UnknownUser
            | Deny::BadPassword
            | Deny::BadCode { challenged: false }
            | Deny::Locked { .. }
            | Deny::SourceBlocked { .. } => GENERIC_CLIENT_REASON.into(),
            Deny::BadCode { challenged: true } => "wrong authenticator code".into(),
            Deny::CodeRequired => "this account needs an authenticator code: get a new profile from your admin".into(),
            Deny::BadChallenge { .. } => "login expired, please connect again".into(),
            Deny::TokenRejected { .. } => "session expired, please connect again".into(),
            Deny::Disabled => "account disabled".into(),
            Deny::AccountExpired { at } => {
                format!("account expired (valid through {})", format_expiry(*at))
            }
            Deny::PlanExpired { plan, at } => {
                format!("plan {plan} expired (valid through {})", format_expiry(*at))
            }
            Deny::UnknownServer { .. } | Deny::NoGrant { .. } => "no access to this server".into(),
            Deny::QuotaExhausted { quota, period, resets, .. } => {
                let mut s = format!("data quota of {} {} used up", format_size(*quota), period.phrase());
                if let Some(r) = resets {
                    s.push_str(&format!(", resets {}", &format_time(*r)[..10]));
                }
                s
            }
            Deny::TooManySessions { max, .. } => {
                format!("too many connections: your plan allows {max} at a time")
            }
            Deny::SessionTimeLimit { .. } => "session time limit reached".into(),
            Deny::DeviceUnknown { .. } => {
                "this account is bound to devices: your profile must send its hardware address (push-peer-info)".into()
            }
            Deny::DeviceNotApproved { .. } => "this device is not approved for your account: ask your admin".into(),
            Deny::DeviceLimit { max, .. } => {
                format!("device limit reached ({max}): ask your admin to reset your devices")
            }
            Deny::ClientRejected { client, .. } => client.clone(),
            Deny::Internal { .. } => "server error, try again later".into(),
            Deny::StoreUnavailable { .. } => "service unavailable, try again later".into(),
            Deny::ProgramRefused { client: Some(c), .. } => c.clone(),
            Deny::ProgramVeto { client, .. } => {
                client.clone().unwrap_or_else(|| "access denied by the server's login policy".into())
            }
            Deny::ProgramFailed { .. } => "login could not be completed, try again later".into(),
            Deny::NotInRequiredGroup { .. } => "your account is not in the group allowed to use this VPN".into(),
            Deny::DirectoryUnavailable { .. } => "authentication service unavailable, try again later".into(),
            Deny::SsoUnsupported => {
                "this account signs in with a web browser: use OpenVPN Connect 3, or OpenVPN 2.6 with a client that opens WEB_AUTH links".into()
            }
            Deny::SsoTimedOut { .. } => "web sign-in not completed in time, connect again".into(),
            Deny::ProviderRefused { .. } => "your sign-in is no longer valid, connect again to sign in".into(),
            Deny::NoUsername { .. } => {
                "no username sent: enter your username, or sign in with a web browser (a client that opens WEB_AUTH links)".into()
            }
            Deny::SignedInNotSso { .. } => "your account does not use web sign-in: connect with your username".into(),
        }
    }

    /// Whether this deny counts toward the client address's failures:
    /// every guess, of a password, a code or a name.
    pub fn counts_for_source(&self) -> bool {
        self.is_credential_failure() || matches!(self, Deny::UnknownUser | Deny::SourceBlocked { .. })
    }

    /// Whether this deny counts toward the lockout.
    pub fn is_credential_failure(&self) -> bool {
        matches!(
            self,
            Deny::BadPassword
                | Deny::BadCode { .. }
                | Deny::Locked { bad_proof: true, .. }
                | Deny::ProgramRefused { .. }
                | Deny::DirectoryRefused { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accept,
    Deny(Deny),
    /// Password right and account fine: ask for the second factor (CRV1).
    Challenge,
}

/// Steps 2–6 of the spec plus the password verdict. Credential failures come
/// first so that nothing about the account leaks to a guesser.
pub fn decide(facts: &AuthFacts, proof: Proof, now: i64) -> Decision {
    let Some(u) = &facts.user else {
        return Decision::Deny(Deny::UnknownUser);
    };
    // A locked account gets one answer whatever was proven, so that guessing
    // on during a lock learns nothing. A token reauth of a live tunnel is
    // exempt: a lock that guessing caused must not cut the owner's tunnels.
    if proof != Proof::Token {
        if let Some(until) = u.locked_until.filter(|t| *t > now) {
            let bad_proof = matches!(proof, Proof::Invalid | Proof::BadCode { .. });
            return Decision::Deny(Deny::Locked { until, bad_proof });
        }
    }
    match proof {
        Proof::Invalid => return Decision::Deny(Deny::BadPassword),
        Proof::BadCode { challenged } => return Decision::Deny(Deny::BadCode { challenged }),
        _ => {}
    }
    if let Some(d) = account_check(facts, u, now) {
        return Decision::Deny(d);
    }
    match proof {
        Proof::NeedsCode => Decision::Challenge,
        Proof::CodeRequired => Decision::Deny(Deny::CodeRequired),
        Proof::FactorUnusable => Decision::Deny(Deny::Internal {
            detail: "the stored second-factor secret cannot be decoded: enroll again (tollgate mfa enroll --force)"
                .into(),
        }),
        _ => Decision::Accept,
    }
}

/// What must hold before a method with side effects runs (the program may
/// send a push to a phone): no lock, and an account in good standing that
/// passes the client and device checks. None: go ahead.
pub fn gate(facts: &AuthFacts, now: i64) -> Option<Deny> {
    match decide(facts, Proof::Valid, now) {
        Decision::Deny(d) => Some(d),
        Decision::Accept | Decision::Challenge => None,
    }
}

/// The account's standing at login, then the client's own checks.
fn account_check(facts: &AuthFacts, u: &UserFacts, now: i64) -> Option<Deny> {
    crate::standing::check(facts, crate::standing::Checkpoint::Login, now)
        .or_else(|| u.client_deny.clone())
        .or_else(|| u.device_deny.clone())
}

/// The lockout counters of one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailState {
    pub count: u32,
    pub since: Option<i64>,
    pub locked_until: Option<i64>,
}

/// The counters after one more credential failure: a failure outside the
/// window starts a new one; reaching the threshold locks the account and
/// resets the count. Failures during a lock count the same way: a guesser
/// who keeps going re-arms the lock from the latest threshold, so guessing
/// during a lock gains nothing; one who stops lets it run out on time.
pub fn after_failure(s: FailState, now: i64, lock: &crate::config::Lockout) -> FailState {
    if lock.max_failures == 0 {
        return s;
    }
    let in_window = s.since.is_some_and(|t| now - t < lock.window_secs);
    let (count, since) = if in_window { (s.count + 1, s.since) } else { (1, Some(now)) };
    if count >= lock.max_failures {
        FailState { count: 0, since: None, locked_until: Some(now + lock.duration_secs) }
    } else {
        FailState { count, since, locked_until: s.locked_until }
    }
}

/// Input checks before anything touches the database (spec step 1).
pub fn check_credentials(username: &[u8], password: &[u8]) -> Result<(), Deny> {
    let bad = |d: &str| Err(Deny::Malformed { detail: d.to_string() });
    if username.is_empty() {
        return bad("empty username");
    }
    if username.len() > crate::names::MAX_NAME * 4 {
        return bad(&format!("username of {} bytes is too long", username.len()));
    }
    let Ok(user) = std::str::from_utf8(username) else {
        return bad("username is not UTF-8");
    };
    if user.chars().any(char::is_control) {
        return bad("control character in username");
    }
    check_password(password)
}

/// The password's share of `check_credentials`, alone for a client that
/// sent no username (it may still be named by a sign-in).
pub fn check_password(password: &[u8]) -> Result<(), Deny> {
    let bad = |d: &str| Err(Deny::Malformed { detail: d.to_string() });
    // Room for SCRV1:<b64 password>:<b64 response> around a 128-byte password.
    if password.len() > 1024 {
        return bad(&format!("password of {} bytes is too long", password.len()));
    }
    let Ok(pass) = std::str::from_utf8(password) else {
        return bad("password is not UTF-8");
    };
    if pass.chars().any(char::is_control) {
        return bad("control character in password");
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Lockout;

    const NOW: i64 = 1_800_000_000;

    fn facts() -> AuthFacts {
        AuthFacts {
            server: "nl-1".into(),
            server_known: true,
            user: Some(UserFacts {
                id: 1,
                name: "alice".into(),
                enabled: true,
                granted: true,
                plan: Some(PlanFacts {
                    name: "basic".into(),
                    expires_at: None,
                    quota_bytes: Some(1000),
                    period: Period::Month,
                    max_connections: Some(2),
                    max_session_secs: None,
                }),
                ..Default::default()
            }),
        }
    }

    /// A good account (alice on plan basic, server nl-1), changed by `f`.
    pub(crate) fn with(f: impl FnOnce(&mut UserFacts)) -> AuthFacts {
        let mut a = facts();
        f(a.user.as_mut().unwrap());
        a
    }

    fn deny(a: &AuthFacts, p: Proof) -> Deny {
        match decide(a, p, NOW) {
            Decision::Deny(d) => d,
            other => panic!("expected a deny, got {other:?}"),
        }
    }

    #[test]
    fn accepts_a_good_user() {
        assert_eq!(decide(&facts(), Proof::Valid, NOW), Decision::Accept);
        assert_eq!(decide(&facts(), Proof::Token, NOW), Decision::Accept);
        let mut no_plan = facts();
        no_plan.user.as_mut().unwrap().plan = None;
        assert_eq!(decide(&no_plan, Proof::Valid, NOW), Decision::Accept);
    }

    #[test]
    fn unknown_user_and_bad_password_look_the_same_to_the_client() {
        let mut a = facts();
        a.user = None;
        let d1 = deny(&a, Proof::Valid);
        assert_eq!(d1, Deny::UnknownUser);
        let d2 = deny(&facts(), Proof::Invalid);
        assert_eq!(d2, Deny::BadPassword);
        assert_eq!(d1.client_reason(), d2.client_reason());
        assert!(d2.is_credential_failure());
        assert!(!d1.is_credential_failure());
    }

    #[test]
    fn account_state_is_hidden_from_guessers() {
        let a = with(|u| u.enabled = false);
        assert_eq!(deny(&a, Proof::Invalid), Deny::BadPassword);
        assert_eq!(deny(&a, Proof::Valid), Deny::Disabled);
    }

    #[test]
    fn unusable_second_factor_fails_closed() {
        assert!(matches!(deny(&facts(), Proof::FactorUnusable), Deny::Internal { .. }));
        assert_eq!(deny(&facts(), Proof::Invalid), Deny::BadPassword);
    }

    #[test]
    fn second_factor() {
        // The challenge comes only when everything else is fine.
        assert_eq!(decide(&facts(), Proof::NeedsCode, NOW), Decision::Challenge);
        let a = with(|u| u.enabled = false);
        assert_eq!(deny(&a, Proof::NeedsCode), Deny::Disabled);
        assert_eq!(deny(&facts(), Proof::CodeRequired), Deny::CodeRequired);
        // A wrong code with the password looks like a wrong password.
        let d = deny(&facts(), Proof::BadCode { challenged: false });
        assert_eq!(d.client_reason(), GENERIC_CLIENT_REASON);
        assert!(d.is_credential_failure());
        let d = deny(&facts(), Proof::BadCode { challenged: true });
        assert_eq!(d.client_reason(), "wrong authenticator code");
        // Unknown users never get a challenge.
        let mut a = facts();
        a.user = None;
        assert_eq!(deny(&a, Proof::NeedsCode), Deny::UnknownUser);
    }

    #[test]
    fn devices_and_client_checks_come_last() {
        let dev = Deny::DeviceLimit { id: "aa".into(), max: 1 };
        let a = with(|u| u.device_deny = Some(dev.clone()));
        assert_eq!(deny(&a, Proof::Valid), dev);
        // ... but never before the password.
        assert_eq!(deny(&a, Proof::Invalid), Deny::BadPassword);
        let cli = Deny::ClientRejected { log: "l".into(), client: "c".into() };
        let a = with(|u| {
            u.device_deny = Some(dev.clone());
            u.client_deny = Some(cli.clone())
        });
        assert_eq!(deny(&a, Proof::Valid), cli);
        let a = with(|u| {
            u.device_deny = Some(dev.clone());
            u.enabled = false
        });
        assert_eq!(deny(&a, Proof::Valid), Deny::Disabled);
    }

    #[test]
    fn locked_account() {
        let a = with(|u| u.locked_until = Some(NOW + 60));
        assert_eq!(deny(&a, Proof::Valid), Deny::Locked { until: NOW + 60, bad_proof: false });
        // Right or wrong password, right or wrong code: the same client
        // answer, and only the wrong ones count.
        let answers: Vec<Deny> = [
            Proof::Valid,
            Proof::Invalid,
            Proof::NeedsCode,
            Proof::CodeRequired,
            Proof::BadCode { challenged: false },
            Proof::BadCode { challenged: true },
        ]
        .into_iter()
        .map(|p| deny(&a, p))
        .collect();
        for d in &answers {
            assert!(matches!(d, Deny::Locked { .. }), "{d:?}");
            assert_eq!(d.client_reason(), GENERIC_CLIENT_REASON);
        }
        let counted: Vec<bool> = answers.iter().map(Deny::is_credential_failure).collect();
        assert_eq!(counted, [false, true, false, false, true, true]);
        // The lock is also what a disabled account shows while locked.
        let a2 = with(|u| {
            u.locked_until = Some(NOW + 60);
            u.enabled = false
        });
        assert_eq!(deny(&a2, Proof::Valid).client_reason(), GENERIC_CLIENT_REASON);
        // A live tunnel's token reauth is not cut by a lock.
        assert_eq!(decide(&a, Proof::Token, NOW), Decision::Accept);
        // An expired lock is no lock.
        let a = with(|u| u.locked_until = Some(NOW));
        assert_eq!(decide(&a, Proof::Valid, NOW), Decision::Accept);
    }

    #[test]
    fn expiry() {
        let a = with(|u| u.expires_at = Some(NOW));
        assert_eq!(deny(&a, Proof::Valid), Deny::AccountExpired { at: NOW });
        assert!(deny(&a, Proof::Valid).client_reason().starts_with("account expired (valid through 20"));
        let a = with(|u| u.expires_at = Some(NOW + 1));
        assert_eq!(decide(&a, Proof::Valid, NOW), Decision::Accept);
        let a = with(|u| u.plan.as_mut().unwrap().expires_at = Some(NOW - 5));
        assert_eq!(deny(&a, Proof::Token), Deny::PlanExpired { plan: "basic".into(), at: NOW - 5 });
    }

    #[test]
    fn grants() {
        let a = with(|u| u.granted = false);
        assert_eq!(deny(&a, Proof::Valid), Deny::NoGrant { server: "nl-1".into() });
        let mut a = facts();
        a.server_known = false;
        assert_eq!(deny(&a, Proof::Valid), Deny::UnknownServer { server: "nl-1".into() });
        assert_eq!(deny(&a, Proof::Valid).client_reason(), "no access to this server");
    }

    #[test]
    fn quota_and_sessions() {
        let a = with(|u| u.used_bytes = 1000);
        let d = deny(&a, Proof::Valid);
        assert!(matches!(d, Deny::QuotaExhausted { used: 1000, quota: 1000, .. }));
        assert!(d.client_reason().contains("data quota"), "{}", d.client_reason());
        let a = with(|u| u.used_bytes = 999);
        assert_eq!(decide(&a, Proof::Valid, NOW), Decision::Accept);
        let a = with(|u| u.open_sessions = 2);
        assert_eq!(deny(&a, Proof::Token), Deny::TooManySessions { open: 2, max: 2 });
    }

    #[test]
    fn every_deny_has_one_line_reasons() {
        let all = [
            Deny::Malformed { detail: "x".into() },
            Deny::UnknownUser,
            Deny::BadPassword,
            Deny::Locked { until: NOW, bad_proof: true },
            Deny::SourceBlocked { ip: "192.0.2.9".into(), until: NOW },
            Deny::Disabled,
            Deny::AccountExpired { at: NOW },
            Deny::PlanExpired { plan: "p".into(), at: NOW },
            Deny::UnknownServer { server: "s".into() },
            Deny::NoGrant { server: "s".into() },
            Deny::QuotaExhausted { used: 1, quota: 1, period: Period::Total, resets: None },
            Deny::TooManySessions { open: 1, max: 1 },
            Deny::SessionTimeLimit { max: 60 },
            Deny::BadCode { challenged: true },
            Deny::BadCode { challenged: false },
            Deny::CodeRequired,
            Deny::BadChallenge { detail: "expired".into() },
            Deny::TokenRejected { state: "Expired".into() },
            Deny::DeviceUnknown { detail: "x".into() },
            Deny::DeviceNotApproved { id: "x".into() },
            Deny::DeviceLimit { id: "x".into(), max: 1 },
            Deny::ClientRejected { log: "x".into(), client: "y".into() },
            Deny::ProviderRefused { detail: "not a member of the required group vpn".into() },
            Deny::NoUsername { detail: "no session id".into() },
            Deny::SignedInNotSso { method: "local".into() },
            Deny::Internal { detail: "db".into() },
            Deny::StoreUnavailable { detail: "PostgreSQL unreachable".into() },
        ];
        for d in all {
            for s in [d.log_reason(), d.client_reason()] {
                assert!(!s.is_empty() && !s.contains('\n'), "{d:?}: {s:?}");
            }
        }
    }

    #[test]
    fn lockout_counts_within_the_window() {
        let lock = Lockout { max_failures: 3, window_secs: 60, duration_secs: 900, per_source: 0 };
        let mut s = FailState::default();
        s = after_failure(s, NOW, &lock);
        s = after_failure(s, NOW + 10, &lock);
        assert_eq!(s, FailState { count: 2, since: Some(NOW), locked_until: None });
        s = after_failure(s, NOW + 20, &lock);
        assert_eq!(s.locked_until, Some(NOW + 920));
        assert_eq!(s.count, 0);
        // Failures while locked count: reaching the threshold again re-arms
        // the lock from then; fewer leave it as it was.
        let mut l = after_failure(s, NOW + 30, &lock);
        assert_eq!(l, FailState { count: 1, since: Some(NOW + 30), locked_until: Some(NOW + 920) });
        l = after_failure(l, NOW + 31, &lock);
        l = after_failure(l, NOW + 32, &lock);
        assert_eq!(l, FailState { count: 0, since: None, locked_until: Some(NOW + 932) });
        // A failure after the window starts a new count.
        let s = after_failure(FailState { count: 2, since: Some(NOW), locked_until: None }, NOW + 61, &lock);
        assert_eq!(s, FailState { count: 1, since: Some(NOW + 61), locked_until: None });
        // max_failures = 0 disables lockout.
        let off = Lockout { max_failures: 0, ..lock };
        assert_eq!(after_failure(FailState::default(), NOW, &off), FailState::default());
    }

    #[test]
    fn input_checks() {
        assert!(check_credentials(b"alice", b"secret").is_ok());
        for (u, p) in [
            (&b""[..], &b"x"[..]),
            (&[b'a'; 10240][..], &b"x"[..]),
            (&b"al\x01ice"[..], &b"x"[..]),
            (&b"\xff\xfe"[..], &b"x"[..]),
            (&b"alice"[..], &b"pa\x00ss"[..]),
            (&b"alice"[..], &[b'p'; 2000][..]),
        ] {
            let d = check_credentials(u, p).unwrap_err();
            assert!(matches!(d, Deny::Malformed { .. }));
        }
    }
}
