//! Auth methods: how a user's password is proven. Each user has one, from
//! their own account, else their group, else the config's `[auth] method`.
//!
//! - `local`: the argon2id hash in tollgate's database (the default).
//! - `program`: the post-auth program authenticates (Access Server's
//!   "PAS-only"); tollgate keeps no password for such users.
//! - `ldap`: a bind to the company's directory proves the password (see
//!   `directory`); users may be provisioned on their first login.
//! - `radius`: a RADIUS server's Access-Accept proves it (PAP), after an
//!   Access-Challenge round if the server asks one; provisioning as LDAP.
//! - `oidc`: single sign-on: the client is sent a login link, the user
//!   signs in at the OpenID provider in a browser and `tollgate web` hands
//!   the verified identity to the waiting login (see `oidc`); provisioning
//!   as LDAP.
//!
//! Whatever the method, the rest of the flow is the same (see `auth`):
//! account standing, then the method's proof, then the second factor, then
//! the post-auth program, then the decision.

use anyhow::bail;
use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    Local,
    Program,
    Ldap,
    Radius,
    Oidc,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 5] =
        [AuthMethod::Local, AuthMethod::Program, AuthMethod::Ldap, AuthMethod::Radius, AuthMethod::Oidc];

    /// Methods whose proof comes from a directory (tollgate-directory).
    pub fn is_directory(self) -> bool {
        matches!(self, AuthMethod::Ldap | AuthMethod::Radius)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Local => "local",
            AuthMethod::Program => "program",
            AuthMethod::Ldap => "ldap",
            AuthMethod::Radius => "radius",
            AuthMethod::Oidc => "oidc",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AuthMethod {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<AuthMethod> {
        match AuthMethod::ALL.into_iter().find(|m| m.as_str() == s) {
            Some(m) => Ok(m),
            None => bail!("auth method must be local, program, ldap, radius or oidc, not {s:?}"),
        }
    }
}

/// Where a user's method comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", content = "name", rename_all = "snake_case")]
pub enum MethodSource {
    User,
    Group(String),
    Config,
}

impl fmt::Display for MethodSource {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            MethodSource::User => f.write_str("set on the user"),
            MethodSource::Group(g) => write!(f, "from group {g}"),
            MethodSource::Config => f.write_str("the config's [auth] method"),
        }
    }
}

/// Pure: the user's own method, else the group's, else the config's. A
/// stored value this build does not know is an error, never a fallback to
/// another method.
pub fn resolve(
    user: Option<&str>,
    group: Option<(&str, Option<&str>)>,
    default: AuthMethod,
) -> anyhow::Result<(AuthMethod, MethodSource)> {
    if let Some(m) = user {
        return Ok((m.parse()?, MethodSource::User));
    }
    if let Some((name, Some(m))) = group {
        return Ok((m.parse()?, MethodSource::Group(name.to_string())));
    }
    Ok((default, MethodSource::Config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_then_group_then_config() {
        use AuthMethod::*;
        assert_eq!(resolve(None, None, Local).unwrap(), (Local, MethodSource::Config));
        assert_eq!(resolve(None, Some(("staff", None)), Program).unwrap(), (Program, MethodSource::Config));
        assert_eq!(
            resolve(None, Some(("staff", Some("program"))), Local).unwrap(),
            (Program, MethodSource::Group("staff".into()))
        );
        assert_eq!(
            resolve(Some("local"), Some(("staff", Some("program"))), Program).unwrap(),
            (Local, MethodSource::User)
        );
        assert!(resolve(Some("kerberos"), None, Local).is_err(), "an unknown stored method is an error");
        assert_eq!("program".parse::<AuthMethod>().unwrap(), Program);
    }
}
