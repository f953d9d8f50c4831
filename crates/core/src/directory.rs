//! Directory methods (LDAP, RADIUS): the password is proven by the
//! company's directory. The network client lives in its own executable,
//! `tollgate-directory`, which the deferred worker runs like the post-auth
//! program (JSON on stdin and stdout, a timeout, fail closed): its TLS and
//! LDAP libraries stay out of the hooks OpenVPN runs for every login.
//!
//! Its answers, never a fallback to a weaker check: accepted (with the
//! user's DN and groups, or RADIUS's reply attributes), refused (a wrong
//! password: it counts toward the lockout), a question (RADIUS
//! Access-Challenge), or unavailable (down, slow, misconfigured: it does
//! not count).

use crate::config::Config;
use crate::method::AuthMethod;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the helper is asked. Not `Debug`: it carries the password.
#[derive(Serialize, Deserialize)]
pub struct Request {
    pub backend: String,
    pub username: String,
    /// The password, or the answer to a RADIUS Access-Challenge.
    pub password: String,
    /// RADIUS: the State of the Access-Challenge being answered (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The client's real address (RADIUS Calling-Station-Id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
}

/// What the helper answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Answer {
    Accept {
        /// LDAP: the user's entry.
        #[serde(default)]
        dn: String,
        /// LDAP: group DNs the user is in; RADIUS: Class and Filter-Id values.
        groups: Vec<String>,
        /// RADIUS: Framed-IP-Address, when the server chose one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        static_ip: Option<std::net::Ipv4Addr>,
        /// RADIUS: every reply attribute by name (for the post-auth program).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        reply: BTreeMap<String, Vec<String>>,
    },
    /// RADIUS Access-Challenge: ask the user `message`; the answer goes
    /// back with `state` (hex).
    Challenge { state: String, message: String },
    /// The directory said no: unknown user, wrong password.
    Reject { reason: String },
    /// Password right, but not in `required_group`.
    NotInGroup { group: String },
    /// The directory could not answer: `server` and the cause.
    Unavailable { server: String, reason: String },
}

/// The helper: `directory_helper` from the config, else `tollgate-directory`
/// beside this executable, else in /usr/local/libexec/tollgate.
pub fn helper_path(cfg: &Config) -> PathBuf {
    if let Some(p) = &cfg.directory_helper {
        return p.clone();
    }
    let beside = std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join("tollgate-directory")));
    match beside {
        Some(p) if p.is_file() => p,
        _ => PathBuf::from("/usr/local/libexec/tollgate/tollgate-directory"),
    }
}

/// The longest the helper may take for `method`. LDAP: each step is
/// bounded by `[ldap] timeout` (connect, service bind, search, user bind,
/// groups), the whole by three of them. RADIUS: every attempt at every
/// server. Two seconds more for the helper itself.
pub fn deadline_secs(cfg: &Config, method: AuthMethod) -> u64 {
    match method {
        AuthMethod::Ldap => cfg.ldap.as_ref().map_or(0, |l| l.timeout_secs * 3 + 2),
        AuthMethod::Radius => {
            cfg.radius.as_ref().map_or(0, |r| r.servers.len() as u64 * (r.retries + 1) * r.timeout_secs + 2)
        }
        AuthMethod::Local | AuthMethod::Program | AuthMethod::Oidc => 0,
    }
}

/// The longest any configured directory may take (for the worker's deadline).
pub fn longest_deadline_secs(cfg: &Config) -> u64 {
    AuthMethod::ALL.into_iter().map(|m| deadline_secs(cfg, m)).max().unwrap_or(0)
}

/// Ask the directory of `method` about a password, or (with `state`) the
/// answer to its challenge. Any fault of the helper itself is `Unavailable`.
pub fn check(
    cfg: &Config,
    method: AuthMethod,
    username: &str,
    password: &str,
    state: Option<&str>,
    client_ip: Option<&str>,
) -> Answer {
    let server = match method {
        AuthMethod::Ldap => cfg.ldap.as_ref().map(|l| l.url.clone()),
        AuthMethod::Radius => cfg.radius.as_ref().map(|r| r.servers.join(", ")),
        AuthMethod::Local | AuthMethod::Program | AuthMethod::Oidc => None,
    };
    let Some(server) = server else {
        return Answer::Unavailable {
            server: method.to_string(),
            reason: format!("no [{method}] section in the config"),
        };
    };
    let mut argv = vec![helper_path(cfg).display().to_string()];
    if let Some(p) = &cfg.path {
        argv.push("--config".into());
        argv.push(p.display().to_string());
    }
    let req = Request {
        backend: method.to_string(),
        username: username.into(),
        password: password.into(),
        state: state.map(str::to_string),
        client_ip: client_ip.map(str::to_string),
    };
    let body = match serde_json::to_vec(&req) {
        Ok(b) => b,
        Err(e) => return Answer::Unavailable { server, reason: format!("cannot encode the request: {e}") },
    };
    let (r, out) = crate::post_auth::run_command(&argv, deadline_secs(cfg, method), &body);
    if let Err(e) = r {
        return Answer::Unavailable { server, reason: format!("tollgate-directory failed: {e}") };
    }
    serde_json::from_slice(&out).unwrap_or_else(|e| Answer::Unavailable {
        server,
        reason: format!("tollgate-directory answered nonsense: {}", crate::names::one_line(&e.to_string(), 120)),
    })
}

/// Pure: normalise a DN for comparison (case, spaces around separators).
pub fn norm_dn(dn: &str) -> String {
    dn.split(',').map(|rdn| rdn.trim().to_ascii_lowercase().replace(" = ", "=")).collect::<Vec<_>>().join(",")
}

/// Pure: the tollgate group for a user in `groups`: the first mapping
/// (in the config's order) whose DN the user is in.
pub fn map_group<'a>(mapping: &'a [(String, String)], groups: &[String]) -> Option<&'a str> {
    let have: Vec<String> = groups.iter().map(|g| norm_dn(g)).collect();
    mapping.iter().find(|(dn, _)| have.contains(&norm_dn(dn))).map(|(_, g)| g.as_str())
}

/// The `[ldap.groups]`, `[radius.groups]` or `[oidc.groups]` mapping, and
/// the tollgate group it gives a user the directory put in `groups`
/// (RADIUS values and provider groups match exactly; DNs, whatever their
/// spelling).
pub fn group_for<'a>(
    cfg: &'a Config,
    method: AuthMethod,
    groups: &[String],
) -> (&'a [(String, String)], Option<&'a str>) {
    match method {
        AuthMethod::Ldap => {
            let m = cfg.ldap.as_ref().map(|l| l.groups.as_slice()).unwrap_or_default();
            (m, map_group(m, groups))
        }
        AuthMethod::Radius | AuthMethod::Oidc => {
            let m = match method {
                AuthMethod::Radius => cfg.radius.as_ref().map(|r| r.groups.as_slice()),
                _ => cfg.oidc.as_ref().map(|o| o.groups.as_slice()),
            };
            let m = m.unwrap_or_default();
            (m, m.iter().find(|(v, _)| groups.contains(v)).map(|(_, g)| g.as_str()))
        }
        AuthMethod::Local | AuthMethod::Program => (&[], None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_mapping_is_ordered_and_ignores_dn_spelling() {
        let m = vec![("cn=eng,ou=groups,dc=x".to_string(), "eng".to_string()), ("cn=all,dc=x".into(), "staff".into())];
        assert_eq!(map_group(&m, &["CN=Eng, OU=Groups, DC=x".into(), "cn=all,dc=x".into()]), Some("eng"));
        assert_eq!(map_group(&m, &["cn=all,dc=x".into()]), Some("staff"));
        assert_eq!(map_group(&m, &["cn=other,dc=x".into()]), None);
    }

    #[test]
    fn answers_round_trip() {
        let a: Answer =
            serde_json::from_str(r#"{"result":"unavailable","server":"ldap://x","reason":"down"}"#).unwrap();
        assert_eq!(a, Answer::Unavailable { server: "ldap://x".into(), reason: "down".into() });
        assert!(serde_json::from_str::<Answer>(r#"{"result":"maybe"}"#).is_err());
    }
}
