//! Directory methods (LDAP): the password is proven by the company's
//! directory. The network client lives in its own executable,
//! `tollgate-directory`, which the deferred worker runs like the post-auth
//! program (JSON on stdin and stdout, a timeout, fail closed): its TLS and
//! LDAP libraries stay out of the hooks OpenVPN runs for every login.
//!
//! Three answers, never a fallback to a weaker check: accepted (with the
//! user's DN and groups), refused (a wrong password: it counts toward the
//! lockout), or unavailable (down, slow, misconfigured: it does not).

use crate::config::Config;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What the helper is asked. Not `Debug`: it carries the password.
#[derive(Serialize, Deserialize)]
pub struct Request {
    pub backend: String,
    pub username: String,
    pub password: String,
}

/// What the helper answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Answer {
    Accept {
        dn: String,
        /// Directory group DNs the user is in.
        groups: Vec<String>,
    },
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

/// The longest the helper may take: each directory step is bounded by
/// `[ldap] timeout` (connect, service bind, search, user bind, groups);
/// the whole, by three of them and two seconds more.
pub fn deadline_secs(cfg: &Config) -> u64 {
    cfg.ldap.as_ref().map_or(0, |l| l.timeout_secs * 3 + 2)
}

/// Ask the directory. Any fault of the helper itself is `Unavailable`.
pub fn check(cfg: &Config, backend: &str, username: &str, password: &str) -> Answer {
    let server = cfg.ldap.as_ref().map_or_else(|| backend.to_string(), |l| l.url.clone());
    if cfg.ldap.is_none() {
        return Answer::Unavailable { server, reason: "no [ldap] section in the config".into() };
    }
    let mut argv = vec![helper_path(cfg).display().to_string()];
    if let Some(p) = &cfg.path {
        argv.push("--config".into());
        argv.push(p.display().to_string());
    }
    let req = Request { backend: backend.into(), username: username.into(), password: password.into() };
    let body = match serde_json::to_vec(&req) {
        Ok(b) => b,
        Err(e) => return Answer::Unavailable { server, reason: format!("cannot encode the request: {e}") },
    };
    let (r, out) = crate::post_auth::run_command(&argv, deadline_secs(cfg), &body);
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
