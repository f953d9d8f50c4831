//! Single sign-on (`oidc` users): what the hook, the waiting login and
//! `tollgate web` share. Nothing here talks to the network.
//!
//! The flow, with no resident process:
//! 1. auth-verify sees an `oidc` user whose client announced `webauth`
//!    (IV_SSO). It makes a link secret, writes OpenVPN's auth_pending_file
//!    (`WEB_AUTH::<login_url>?l=<secret>`) and exits 2; its deferred worker
//!    records the pending login ([`open`]) and waits for its answer
//!    ([`wait`]), then decides the login as for a directory user.
//! 2. The user's browser opens the link: `tollgate web` shows which server,
//!    address and platform the login is for, and on "continue" binds the
//!    login to that browser (a cookie) and to a fresh OpenID state, nonce
//!    and PKCE verifier ([`begin`]), then sends the browser to the provider.
//! 3. The provider sends the browser back with a code; `tollgate web`
//!    checks the browser and the state ([`by_state`]), redeems the code,
//!    verifies the ID token, and stores what it proves ([`identity`],
//!    [`finish`]). The waiting login reads it, and OpenVPN gets its answer
//!    through auth_control_file.
//!
//! Every secret (link, state, cookie) is stored hashed, used once and
//! dies with the login's timeout.

use crate::config::Oidc;
use crate::db::{params, Optional};
use crate::directory::Answer;
use crate::store::Store;
use anyhow::Result;
use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD, HEXLOWER};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// What gen-ovpn writes (`setenv UV_TOLLGATE_SSO 1`, with push-peer-info)
/// into the profile of an `oidc` user where SSO is not the default method:
/// auth-verify then sends the link without looking the account up. A hint,
/// never a proof: the worker goes by the account's own method, and answers
/// a password account on its password (the link unused).
pub const PROFILE_HINT: &str = "UV_TOLLGATE_SSO";

/// A fresh secret: 128 random bits, 26 lowercase base32 characters (short
/// enough for the link, and safe in a URL and a cookie).
pub fn new_secret() -> String {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    BASE32_NOPAD.encode(&b).to_ascii_lowercase()
}

/// Whether `s` looks like one of [`new_secret`]'s (checked before any
/// look-up, so that nothing else reaches the database).
pub fn is_secret(s: &str) -> bool {
    s.len() == 26 && s.bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

/// How a secret is stored: SHA-256, hex.
pub fn hash(secret: &str) -> String {
    HEXLOWER.encode(&Sha256::digest(secret.as_bytes()))
}

/// PKCE (RFC 7636) S256 challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    BASE64URL_NOPAD.encode(&Sha256::digest(verifier.as_bytes()))
}

/// The link the client opens.
pub fn link(cfg: &Oidc, secret: &str) -> String {
    format!("{}?l={secret}", cfg.login_url)
}

/// Whether the client announced web auth (`IV_SSO=openurl,webauth,crtext`).
pub fn announces_webauth(iv_sso: Option<&str>) -> bool {
    iv_sso.unwrap_or_default().split(',').any(|m| m.trim() == "webauth")
}

/// OpenVPN's auth_pending_file: the timeout, the method, the URL.
pub fn pending_file(timeout_secs: u64, link: &str) -> String {
    format!("{timeout_secs}\nwebauth\nWEB_AUTH::{link}\n")
}

/// `application/x-www-form-urlencoded` value encoding.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `k=v&k=v` of the given pairs, encoded.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

/// Pure: the pairs of a query string or form body. Malformed escapes are
/// an error, not guessed at; `+` is a space.
pub fn parse_form(q: &str) -> Result<Vec<(String, String)>, String> {
    fn decode(s: &str) -> Result<String, String> {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = b.get(i + 1..i + 3).ok_or("truncated %-escape")?;
                    let hex = std::str::from_utf8(hex).map_err(|_| "bad %-escape")?;
                    out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad %-escape")?);
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).map_err(|_| "not UTF-8".to_string())
    }
    let mut pairs = Vec::new();
    for part in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((decode(k)?, decode(v)?));
    }
    Ok(pairs)
}

/// The first value of `key` in parsed pairs.
pub fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The provider's authorization URL for one login.
pub fn authorize_url(endpoint: &str, cfg: &Oidc, state: &str, nonce: &str, verifier: &str) -> String {
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    let challenge = pkce_challenge(verifier);
    let q = form(&[
        ("response_type", "code"),
        ("client_id", &cfg.client_id),
        ("redirect_uri", &cfg.redirect_url),
        ("scope", &cfg.scopes),
        ("state", state),
        ("nonce", nonce),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    format!("{endpoint}{sep}{q}")
}

/// Pure: check the ID token's claims (its signature is checked by the
/// caller): issuer, audience (and azp when there are several), expiry,
/// issue time, and the nonce of the login (`None` for a token from a
/// refresh, which need not carry one). `now` in Unix seconds; 60 s of clock
/// skew allowed.
pub fn check_claims(
    claims: &serde_json::Value,
    cfg: &Oidc,
    issuer: &str,
    nonce: Option<&str>,
    now: i64,
) -> Result<(), String> {
    const SKEW: i64 = 60;
    let s = |k: &str| claims.get(k).and_then(|v| v.as_str());
    let n = |k: &str| claims.get(k).and_then(|v| v.as_i64());
    if s("iss") != Some(issuer) {
        return Err(format!("ID token issuer {:?} is not {issuer:?}", s("iss").unwrap_or("(none)")));
    }
    let aud: Vec<&str> = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => vec![a.as_str()],
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
        _ => vec![],
    };
    if !aud.contains(&cfg.client_id.as_str()) {
        return Err(format!("ID token is not for client {:?}", cfg.client_id));
    }
    // Several audiences: the token must say it was issued to us (azp).
    if aud.len() > 1 && s("azp") != Some(cfg.client_id.as_str()) {
        return Err("ID token has several audiences and was not issued to this client (azp)".into());
    }
    match n("exp") {
        Some(exp) if exp + SKEW > now => {}
        Some(_) => return Err("ID token expired".into()),
        None => return Err("ID token has no expiry".into()),
    }
    if n("iat").is_some_and(|iat| iat > now + SKEW) {
        return Err("ID token issued in the future (check the clocks)".into());
    }
    if let Some(nonce) = nonce {
        let got = s("nonce").unwrap_or_default();
        if !bool::from(got.as_bytes().ct_eq(nonce.as_bytes())) {
            return Err("ID token nonce does not match this login".into());
        }
    }
    Ok(())
}

/// Pure: what a verified ID token proves about the user who logged in as
/// `username` (empty: the client sent none): the username claim must name
/// them, and they must be in a required group (when any are set).
pub fn identity(claims: &serde_json::Value, cfg: &Oidc, username: &str) -> Answer {
    let Some(name) = claimed_name(claims, cfg) else {
        return Answer::Reject { reason: format!("the ID token has no {} claim", cfg.username_claim) };
    };
    if !username.is_empty() && name != username {
        return Answer::Reject { reason: format!("signed in as {}, not as {}", crate::names::for_log(name), username) };
    }
    let groups: Vec<String> = match claims.get(&cfg.groups_claim) {
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Some(serde_json::Value::String(g)) => vec![g.clone()],
        _ => vec![],
    };
    if !cfg.required_groups.is_empty() && !cfg.required_groups.iter().any(|g| groups.contains(g)) {
        return Answer::NotInGroup { group: cfg.required_groups.join(" or ") };
    }
    let sub = claims.get("sub").and_then(|v| v.as_str()).unwrap_or(name);
    Answer::Accept { dn: sub.to_string(), groups, static_ip: None, reply: Default::default() }
}

/// The username claim of a verified ID token, if it has one.
pub fn claimed_name<'a>(claims: &'a serde_json::Value, cfg: &Oidc) -> Option<&'a str> {
    claims.get(&cfg.username_claim).and_then(|v| v.as_str())
}

/// A pending login, as the login page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub username: String,
    pub server: String,
    pub ip: String,
    pub platform: Option<String>,
    pub expires_at: i64,
    /// The browser already went on to the provider.
    pub started: bool,
}

/// Record a login waiting for the browser (the worker, before it waits).
#[allow(clippy::too_many_arguments)]
pub fn open(
    store: &Store,
    secret: &str,
    username: &str,
    server: &str,
    ip: &str,
    platform: Option<&str>,
    now: i64,
    timeout_secs: u64,
) -> Result<()> {
    // Logins nobody finished are cleared here, by the next one.
    store.conn.execute("DELETE FROM web_logins WHERE expires_at <= ?1", [now])?;
    store.conn.execute(
        "INSERT INTO web_logins (link_hash, username, server, ip, platform, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![hash(secret), username, server, ip, platform, now, now + timeout_secs as i64],
    )?;
    Ok(())
}

/// The pending login of a link secret, if it exists and has not expired.
pub fn pending(store: &Store, secret: &str, now: i64) -> Result<Option<Pending>> {
    Ok(store
        .conn
        .query_row(
            "SELECT username, server, ip, platform, expires_at, state_hash IS NOT NULL
             FROM web_logins WHERE link_hash = ?1 AND expires_at > ?2 AND answer IS NULL",
            params![hash(secret), now],
            |r| {
                Ok(Pending {
                    username: r.get(0)?,
                    server: r.get(1)?,
                    ip: r.get(2)?,
                    platform: r.get(3)?,
                    expires_at: r.get(4)?,
                    started: r.get(5)?,
                })
            },
        )
        .optional()?)
}

/// What the callback needs of a login, found by its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub username: String,
    pub browser_hash: String,
    pub nonce: String,
    pub verifier: String,
    pub expires_at: i64,
}

/// Bind a pending login to a browser and an OpenID state, once: false if
/// the link is unknown, expired, answered or already went on.
pub fn begin(
    store: &Store,
    secret: &str,
    state: &str,
    browser: &str,
    nonce: &str,
    verifier: &str,
    now: i64,
) -> Result<bool> {
    let n = store.conn.execute(
        "UPDATE web_logins SET state_hash = ?2, browser_hash = ?3, nonce = ?4, verifier = ?5
         WHERE link_hash = ?1 AND expires_at > ?6 AND state_hash IS NULL AND answer IS NULL",
        params![hash(secret), hash(state), hash(browser), nonce, verifier, now],
    )?;
    Ok(n == 1)
}

/// The started, unanswered, unexpired login of an OpenID state.
pub fn by_state(store: &Store, state: &str, now: i64) -> Result<Option<Started>> {
    Ok(store
        .conn
        .query_row(
            "SELECT username, browser_hash, nonce, verifier, expires_at FROM web_logins
             WHERE state_hash = ?1 AND expires_at > ?2 AND answer IS NULL",
            params![hash(state), now],
            |r| {
                Ok(Started {
                    username: r.get(0)?,
                    browser_hash: r.get(1)?,
                    nonce: r.get(2)?,
                    verifier: r.get(3)?,
                    expires_at: r.get(4)?,
                })
            },
        )
        .optional()?)
}

/// Store the provider's answer for the login of `state` (with the refresh
/// token it gave, for the sweep to ask again), once: false if it was
/// answered already or is gone.
/// For a login whose client sent no username, `claimed` (the username
/// claim) becomes the login's username.
pub fn finish(
    store: &Store,
    state: &str,
    answer: &Answer,
    refresh_token: Option<&str>,
    claimed: Option<&str>,
) -> Result<bool> {
    store_answer(store, "state_hash", state, answer, refresh_token, claimed)
}

/// Store an answer for a login by its link (the login page could not reach
/// the provider): the waiting login ends at once instead of timing out.
pub fn finish_link(store: &Store, secret: &str, answer: &Answer) -> Result<bool> {
    store_answer(store, "link_hash", secret, answer, None, None)
}

/// Answer the unanswered login whose `key` column holds the hash of
/// `secret`: true if it answered it, false if it was answered already or
/// is gone.
fn store_answer(
    store: &Store,
    key: &str,
    secret: &str,
    answer: &Answer,
    refresh_token: Option<&str>,
    claimed: Option<&str>,
) -> Result<bool> {
    let sql = format!(
        "UPDATE web_logins SET answer = ?2, refresh_token = ?3, verifier = NULL,
                username = CASE WHEN username = '' THEN coalesce(?4, '') ELSE username END
          WHERE {key} = ?1 AND answer IS NULL"
    );
    Ok(store.conn.execute(&sql, params![hash(secret), serde_json::to_string(answer)?, refresh_token, claimed])? == 1)
}

/// How often the waiting login looks for its answer.
const POLL: Duration = Duration::from_millis(200);

/// The answer to a login, as the waiting worker gets it.
#[derive(Clone, PartialEq, Eq)]
pub struct Answered {
    pub answer: Answer,
    /// The provider's refresh token, if it gave one.
    pub refresh_token: Option<String>,
    /// The login's username: for a client that sent none, the username
    /// claim of whoever signed in (empty if the sign-in failed).
    pub username: String,
}

impl std::fmt::Debug for Answered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Answered({:?} for {:?}, refresh token hidden)", self.answer, self.username)
    }
}

/// Wait (the deferred worker) for the answer to the login of `secret`,
/// until `deadline`; the row is deleted either way. `None`: no answer in
/// time.
pub fn wait(store: &Store, secret: &str, deadline: Instant) -> Result<Option<Answered>> {
    let h = hash(secret);
    let answer = loop {
        let got: Option<(Option<String>, Option<String>, String)> = store
            .conn
            .query_row("SELECT answer, refresh_token, username FROM web_logins WHERE link_hash = ?1", [&h], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        match got {
            Some((Some(a), refresh_token, username)) => {
                let answer = serde_json::from_str(&a).unwrap_or_else(|e| Answer::Unavailable {
                    server: "tollgate web".into(),
                    reason: format!("unreadable answer: {e}"),
                });
                break Some(Answered { answer, refresh_token, username });
            }
            None => break None,
            Some((None, ..)) if Instant::now() >= deadline => break None,
            Some((None, ..)) => std::thread::sleep(POLL),
        }
    };
    store.conn.execute("DELETE FROM web_logins WHERE link_hash = ?1", [&h])?;
    Ok(answer)
}

/// A single sign-on user the sweep asks the provider about again, with the
/// refresh token of their latest sign-in on this server.
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    pub username: String,
    pub refresh_token: String,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Grant({}, refresh token hidden)", self.username)
    }
}

/// After an accepted sign-in through the provider: its refresh token
/// replaces the user's grant on `server` (and any refusal, since the
/// provider just admitted them); a sign-in that brought none leaves
/// nothing to ask again with, so the grant goes.
pub fn keep_grant(store: &Store, server: &str, user_id: i64, refresh_token: Option<&str>, now: i64) -> Result<()> {
    let Some(token) = refresh_token else {
        store.conn.execute(
            "DELETE FROM sso_grants WHERE user_id = ?2 AND server_id = (SELECT id FROM servers WHERE name = ?1)",
            params![server, user_id],
        )?;
        return Ok(());
    };
    store.conn.execute(
        "INSERT INTO sso_grants (server_id, user_id, refresh_token, created_at, checked_at, refused)
         SELECT id, ?2, ?3, ?4, ?4, NULL FROM servers WHERE name = ?1
         ON CONFLICT (server_id, user_id) DO UPDATE SET refresh_token = excluded.refresh_token,
           created_at = excluded.created_at, checked_at = excluded.checked_at, refused = NULL",
        params![server, user_id, token, now],
    )?;
    Ok(())
}

/// The grants of `server` not refused and last checked at or before
/// `before`.
pub fn grants_due(store: &Store, server: &str, before: i64) -> Result<Vec<Grant>> {
    let mut st = store.conn.prepare(
        "SELECT u.name, g.refresh_token
           FROM sso_grants g JOIN users u ON u.id = g.user_id JOIN servers v ON v.id = g.server_id
          WHERE v.name = ?1 AND g.refused IS NULL AND g.checked_at <= ?2 ORDER BY u.name",
    )?;
    let rows =
        st.query_map(params![server, before], |r| Ok(Grant { username: r.get(0)?, refresh_token: r.get(1)? }))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The one grant row `g` still is: same server, user and token (a sign-in
/// since has replaced the token, and its answer is not this one's).
const THIS_GRANT: &str = "server_id = (SELECT id FROM servers WHERE name = ?1)
    AND user_id = (SELECT id FROM users WHERE name = ?2) AND refresh_token = ?3";

/// Take a due grant for one recheck (its check time set to `now`): false
/// if it is no longer due or no longer the same (a sweep running at the
/// same time took it first, or the user signed in again). Two sweeps never
/// present the same refresh token, which a provider that rotates them
/// would take for a replay.
pub fn claim_grant(store: &Store, server: &str, g: &Grant, before: i64, now: i64) -> Result<bool> {
    let sql =
        format!("UPDATE sso_grants SET checked_at = ?5 WHERE {THIS_GRANT} AND checked_at <= ?4 AND refused IS NULL");
    Ok(store.conn.execute(&sql, params![server, g.username, g.refresh_token, before, now])? == 1)
}

/// What the provider said when asked again about a grant: it still admits
/// the user (with the refresh token to use next, rotated or not), or why
/// it does not. Recorded only if the grant is still the one asked about.
pub fn grant_checked(store: &Store, server: &str, g: &Grant, verdict: Result<&str, &str>, now: i64) -> Result<()> {
    let (token, refused) = match verdict {
        Ok(token) => (token, None),
        Err(why) => (g.refresh_token.as_str(), Some(why)),
    };
    let sql = format!("UPDATE sso_grants SET refresh_token = ?4, checked_at = ?5, refused = ?6 WHERE {THIS_GRANT}");
    store.conn.execute(&sql, params![server, g.username, g.refresh_token, token, now, refused])?;
    Ok(())
}

/// Why the provider no longer admits `username` on `server`, if it said
/// so since their latest sign-in.
pub fn refused(conn: &crate::db::Db, server: &str, username: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT g.refused FROM sso_grants g JOIN servers v ON v.id = g.server_id JOIN users u ON u.id = g.user_id
              WHERE v.name = ?1 AND u.name = ?2",
        )?
        .query_row(params![server, username], |r| r.get::<_, Option<String>>(0))
        .optional()?
        .flatten())
}

/// How long a grant outlives its user's last open session on the server:
/// longer than a session token stays good for a reconnection (OpenVPN
/// takes it for two `reneg-sec`), so a refusal still holds for a client
/// that resumes late, and long enough for client-connect after sign-in.
pub const GRANT_GRACE_SECS: i64 = 86_400;

/// Drop the grants of users with no open session on their server any more,
/// last checked (at sign-in, by a recheck, or refused) over `grace`
/// seconds ago.
pub fn prune_grants(conn: &crate::db::Db, now: i64, grace: i64) -> Result<usize> {
    Ok(conn.execute(
        "DELETE FROM sso_grants WHERE checked_at < ?1 AND NOT EXISTS (
            SELECT 1 FROM sessions s WHERE s.closed_at IS NULL
               AND s.server_id = sso_grants.server_id AND s.user_id = sso_grants.user_id)",
        [now - grace],
    )?)
}

/// A client that sent no username signed in as `user_id`: its tunnel
/// (OpenVPN's `session_id` on `server`) is theirs from now on.
pub fn name_tunnel(store: &Store, server: &str, session_id: &str, user_id: i64, now: i64) -> Result<()> {
    store.conn.execute(
        "INSERT INTO unnamed_tunnels (server_id, session_id, user_id, signed_in_at)
         SELECT id, ?2, ?3, ?4 FROM servers WHERE name = ?1
         ON CONFLICT (server_id, session_id) DO UPDATE SET user_id = excluded.user_id,
           signed_in_at = excluded.signed_in_at",
        params![server, session_id, user_id, now],
    )?;
    Ok(())
}

/// Who the tunnel of `session_id` on `server` signed in as, if its client
/// sent no username and signed in.
pub fn tunnel_user(conn: &crate::db::Db, server: &str, session_id: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT u.name FROM unnamed_tunnels t JOIN servers v ON v.id = t.server_id JOIN users u ON u.id = t.user_id
              WHERE v.name = ?1 AND t.session_id = ?2",
        )?
        .query_row(params![server, session_id], |r| r.get(0))
        .optional()?)
}

/// Drop what names tunnels whose sign-in is over `grace` seconds old and
/// that no open session carries any more: the tunnel ended, and a
/// reconnection by its session token (which keeps the session id) had its
/// chance. Until then such a reconnection resumes as the signed-in user.
pub fn prune_tunnels(conn: &crate::db::Db, now: i64, grace: i64) -> Result<usize> {
    Ok(conn.execute(
        "DELETE FROM unnamed_tunnels WHERE signed_in_at < ?1 AND NOT EXISTS (
            SELECT 1 FROM sessions s WHERE s.closed_at IS NULL
               AND s.server_id = unnamed_tunnels.server_id AND s.token_session = unnamed_tunnels.session_id)",
        [now - grace],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> Oidc {
        Oidc {
            issuer: "https://idp.example.org/realms/corp".into(),
            client_id: "openvpn".into(),
            client_secret_file: "/s".into(),
            redirect_url: "https://vpn.example.org/oidc/callback".into(),
            login_url: "https://vpn.example.org/oidc/login".into(),
            username_claim: "preferred_username".into(),
            groups_claim: "groups".into(),
            required_groups: vec!["vpn".into()],
            scopes: "openid profile".into(),
            login_timeout_secs: 120,
            recheck_every_secs: Some(300),
            timeout_secs: 5,
            ca_file: None,
            password_fallback: false,
            groups: vec![("eng".into(), "eng".into())],
        }
    }

    fn claims() -> serde_json::Value {
        json!({"iss": "https://idp.example.org/realms/corp", "aud": "openvpn", "exp": 1000, "iat": 900,
               "nonce": "n1", "sub": "u-1", "preferred_username": "alice", "groups": ["vpn", "eng"]})
    }

    #[test]
    fn secrets_links_and_the_pending_file() {
        let s = new_secret();
        assert!(is_secret(&s), "{s}");
        assert_ne!(s, new_secret());
        assert!(
            !is_secret("ABCDEFGHIJKLMNOPQRSTUVWXYZ") && !is_secret("a") && !is_secret("aaaaaaaaaaaaaaaaaaaaaaaaa1")
        );
        let l = link(&cfg(), &s);
        assert_eq!(l, format!("https://vpn.example.org/oidc/login?l={s}"));
        assert!(l.len() < crate::config::MAX_LOGIN_LINK);
        assert_eq!(pending_file(120, &l), format!("120\nwebauth\nWEB_AUTH::{l}\n"));
        assert!(announces_webauth(Some("openurl,webauth,crtext")));
        assert!(announces_webauth(Some("webauth")));
        assert!(!announces_webauth(Some("openurl,crtext")) && !announces_webauth(None));
        assert_eq!(hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn pkce_and_the_authorize_url() {
        // RFC 7636 appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let u = authorize_url("https://idp.example.org/auth", &cfg(), "st", "no", "ver");
        let (base, q) = u.split_once('?').unwrap();
        assert_eq!(base, "https://idp.example.org/auth");
        let p = parse_form(q).unwrap();
        assert_eq!(get(&p, "redirect_uri"), Some("https://vpn.example.org/oidc/callback"));
        assert_eq!(get(&p, "scope"), Some("openid profile"));
        assert_eq!(get(&p, "code_challenge"), Some(pkce_challenge("ver").as_str()));
        assert_eq!(
            (get(&p, "state"), get(&p, "nonce"), get(&p, "response_type")),
            (Some("st"), Some("no"), Some("code"))
        );
        assert!(authorize_url("https://x/auth?tenant=a", &cfg(), "s", "n", "v").starts_with("https://x/auth?tenant=a&"));
    }

    #[test]
    fn forms_parse_strictly() {
        assert_eq!(
            parse_form("a=1&b=x+y%2Fz&c").unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "x y/z".into()), ("c".into(), "".into())]
        );
        assert!(parse_form("a=%2").is_err() && parse_form("a=%zz").is_err() && parse_form("a=%ff").is_err());
        assert_eq!(parse_form(&form(&[("k", "a b&c=d/é")])).unwrap()[0].1, "a b&c=d/é");
    }

    #[test]
    fn id_token_claims() {
        let (c, iss) = (cfg(), "https://idp.example.org/realms/corp");
        assert_eq!(check_claims(&claims(), &c, iss, Some("n1"), 950), Ok(()));
        let bad = |f: &dyn Fn(&mut serde_json::Value), now: i64, want: &str| {
            let mut v = claims();
            f(&mut v);
            let e = check_claims(&v, &c, iss, Some("n1"), now).unwrap_err();
            assert!(e.contains(want), "{e}");
        };
        bad(&|v| v["iss"] = json!("https://evil"), 950, "issuer");
        bad(&|v| v["aud"] = json!("other"), 950, "not for client");
        bad(&|v| v["aud"] = json!(["other", "openvpn"]), 950, "azp");
        bad(&|v| v["nonce"] = json!("n2"), 950, "nonce");
        bad(&|v| drop(v.as_object_mut().unwrap().remove("nonce")), 950, "nonce");
        bad(&|v| drop(v.as_object_mut().unwrap().remove("exp")), 950, "no expiry");
        bad(&|_| {}, 1061, "expired");
        bad(&|v| v["iat"] = json!(2000), 950, "future");
        let mut v = claims();
        v["aud"] = json!(["other", "openvpn"]);
        v["azp"] = json!("openvpn");
        assert_eq!(check_claims(&v, &c, iss, Some("n1"), 950), Ok(()));
    }

    #[test]
    fn identity_from_claims() {
        let c = cfg();
        let accept = Answer::Accept {
            dn: "u-1".into(),
            groups: vec!["vpn".into(), "eng".into()],
            static_ip: None,
            reply: Default::default(),
        };
        assert_eq!(identity(&claims(), &c, "alice"), accept);
        assert_eq!(identity(&claims(), &c, ""), accept, "no username sent: the claim's");
        assert!(
            matches!(identity(&claims(), &c, "bob"), Answer::Reject { reason } if reason.contains("signed in as alice"))
        );
        let mut v = claims();
        v["groups"] = json!(["eng"]);
        assert_eq!(identity(&v, &c, "alice"), Answer::NotInGroup { group: "vpn".into() });
        v["groups"] = json!("vpn");
        assert!(matches!(identity(&v, &c, "alice"), Answer::Accept { .. }), "one group as a string");
        v.as_object_mut().unwrap().remove("preferred_username");
        assert!(
            matches!(identity(&v, &c, "alice"), Answer::Reject { reason } if reason.contains("no preferred_username"))
        );
        let open = Oidc { required_groups: vec![], ..cfg() };
        let mut v = claims();
        v.as_object_mut().unwrap().remove("groups");
        assert!(matches!(identity(&v, &open, "alice"), Answer::Accept { groups, .. } if groups.is_empty()));
    }

    #[test]
    fn a_login_is_bound_once_and_answered_once() {
        let (_d, cfg) = crate::store::tests::temp_config();
        let (store, _) = Store::init(&cfg).unwrap();
        let link = new_secret();
        open(&store, &link, "alice", "vpn1", "192.0.2.7", Some("linux"), 100, 120).unwrap();
        let p = pending(&store, &link, 101).unwrap().unwrap();
        assert_eq!((p.username.as_str(), p.ip.as_str(), p.started), ("alice", "192.0.2.7", false));
        assert_eq!(pending(&store, &link, 220).unwrap(), None, "expired");
        assert_eq!(pending(&store, &new_secret(), 101).unwrap(), None, "unknown");
        assert!(!begin(&store, &link, "st", "br", "no", "ve", 220).unwrap(), "expired link");
        assert!(begin(&store, &link, "st", "br", "no", "ve", 101).unwrap());
        assert!(!begin(&store, &link, "st2", "br2", "no", "ve", 102).unwrap(), "second continue");
        assert!(pending(&store, &link, 102).unwrap().unwrap().started);
        let s = by_state(&store, "st", 102).unwrap().unwrap();
        assert_eq!((s.browser_hash, s.nonce.as_str(), s.verifier.as_str()), (hash("br"), "no", "ve"));
        assert_eq!(by_state(&store, "st2", 102).unwrap(), None);
        assert_eq!(by_state(&store, "st", 221).unwrap(), None, "expired state");
        let a = Answer::NotInGroup { group: "vpn".into() };
        // A claimed name renames only a login whose client sent no username.
        assert!(finish(&store, "st", &a, Some("rt-1"), Some("mallory")).unwrap());
        assert!(!finish(&store, "st", &Answer::Reject { reason: "x".into() }, None, None).unwrap(), "answered once");
        assert_eq!(by_state(&store, "st", 102).unwrap(), None, "a used state is gone");
        let deadline = Instant::now() + Duration::from_secs(5);
        let answered = Answered { answer: a, refresh_token: Some("rt-1".into()), username: "alice".into() };
        assert_eq!(wait(&store, &link, deadline).unwrap(), Some(answered));
        assert_eq!(wait(&store, &link, deadline).unwrap(), None, "read once");
        // Nobody answers: the wait ends at the deadline.
        let other = new_secret();
        open(&store, &other, "bob", "vpn1", "192.0.2.8", None, 100, 120).unwrap();
        let t = Instant::now();
        assert_eq!(wait(&store, &other, t + Duration::from_millis(300)).unwrap(), None);
        assert!(t.elapsed() < Duration::from_secs(2));
        // The link's own refusal (provider down at the login page).
        let third = new_secret();
        open(&store, &third, "carol", "vpn1", "192.0.2.9", None, 100, 120).unwrap();
        let down = Answer::Unavailable { server: "https://idp".into(), reason: "refused".into() };
        assert!(finish_link(&store, &third, &down).unwrap());
        assert_eq!(pending(&store, &third, 101).unwrap(), None, "answered links are not shown");
        let answered = Answered { answer: down, refresh_token: None, username: "carol".into() };
        assert_eq!(wait(&store, &third, Instant::now()).unwrap(), Some(answered));
    }

    #[test]
    fn grants_are_kept_rechecked_refused_and_pruned() {
        let (_d, cfg) = crate::store::tests::temp_config();
        let (store, _) = Store::init(&cfg).unwrap();
        store
            .conn
            .execute_batch(
                "INSERT INTO servers (name, host, ca_pem, tls_mode, tls_key, created_at) VALUES ('vpn1', 'h', 'x', 'tls-crypt', 'k', 0);
                 INSERT INTO users (name, password_hash, created_at, updated_at) VALUES ('alice', '!', 0, 0), ('bob', '!', 0, 0);",
            )
            .unwrap();
        keep_grant(&store, "vpn1", 1, Some("rt-a"), 100).unwrap();
        keep_grant(&store, "vpn1", 2, Some("rt-b"), 100).unwrap();
        assert_eq!(grants_due(&store, "vpn1", 99).unwrap(), vec![], "checked at sign-in");
        assert_eq!(grants_due(&store, "other", 100).unwrap(), vec![], "another server's");
        let due = grants_due(&store, "vpn1", 100).unwrap();
        assert_eq!(due.iter().map(|g| g.username.as_str()).collect::<Vec<_>>(), ["alice", "bob"]);
        assert!(!format!("{:?}", due[0]).contains("rt-a"), "no token in Debug");
        // Taken once; then still admitted, with a rotated token; refused.
        assert!(claim_grant(&store, "vpn1", &due[0], 100, 150).unwrap());
        assert!(!claim_grant(&store, "vpn1", &due[0], 100, 150).unwrap(), "a second sweep finds it taken");
        assert_eq!(grants_due(&store, "vpn1", 100).unwrap().len(), 1);
        grant_checked(&store, "vpn1", &due[0], Ok("rt-a2"), 200).unwrap();
        grant_checked(&store, "vpn1", &due[1], Err("gone"), 200).unwrap();
        let due2 = grants_due(&store, "vpn1", 200).unwrap();
        assert_eq!((due2.len(), due2[0].refresh_token.as_str()), (1, "rt-a2"), "a refused grant is not asked again");
        let c = &store.conn;
        assert_eq!(refused(c, "vpn1", "alice").unwrap(), None);
        assert_eq!(refused(c, "vpn1", "bob").unwrap().as_deref(), Some("gone"));
        assert_eq!(refused(c, "other", "bob").unwrap(), None, "another server");
        // An answer about a token that a sign-in has replaced since is not
        // recorded: the new sign-in stands.
        keep_grant(&store, "vpn1", 1, Some("rt-a3"), 300).unwrap();
        grant_checked(&store, "vpn1", &due2[0], Err("late"), 300).unwrap();
        assert_eq!(refused(c, "vpn1", "alice").unwrap(), None, "the stale answer was dropped");
        // A sign-in clears a refusal; one without a token drops the grant.
        keep_grant(&store, "vpn1", 2, Some("rt-b2"), 300).unwrap();
        assert_eq!(refused(c, "vpn1", "bob").unwrap(), None);
        keep_grant(&store, "vpn1", 2, None, 300).unwrap();
        assert_eq!(grants_due(&store, "vpn1", 300).unwrap().len(), 1);
        // Pruned once old and without an open session of the user there.
        c.execute("INSERT INTO sessions (user_id, server_id, connected_at) VALUES (1, 1, 100)", ()).unwrap();
        keep_grant(&store, "vpn1", 2, Some("rt-c"), 300).unwrap();
        assert_eq!(prune_grants(c, 300 + GRANT_GRACE_SECS, GRANT_GRACE_SECS).unwrap(), 0, "young, or in use");
        assert_eq!(prune_grants(c, 301 + GRANT_GRACE_SECS, GRANT_GRACE_SECS).unwrap(), 1);
        assert_eq!(grants_due(&store, "vpn1", i64::MAX).unwrap().len(), 1, "the open session's grant stays");
    }
}
