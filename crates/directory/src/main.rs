//! tollgate-directory: checks one password against the directory (LDAP or
//! RADIUS) named in tollgate's config, for the deferred auth worker (never
//! while OpenVPN waits). One JSON request on stdin (`directory::Request`), one JSON
//! answer on stdout (`directory::Answer`), exit 0; anything else is taken
//! as "unavailable" by the caller. Kept apart from the hooks so that their
//! TLS, LDAP and RADIUS code does not weigh on every login.
//!
//!   tollgate-directory [--config /etc/tollgate/tollgate.toml] < request.json

use std::io::Read;
use tollgate_core::directory::{Answer, Request};
use tollgate_core::Config;

mod ldap;
mod radius;

/// Why a check stopped: the directory said no, or could not answer.
enum Stop {
    Reject(String),
    Unavailable(String),
}

impl From<String> for Stop {
    fn from(reason: String) -> Stop {
        Stop::Unavailable(reason)
    }
}

impl From<&str> for Stop {
    fn from(reason: &str) -> Stop {
        Stop::Unavailable(reason.into())
    }
}

fn main() {
    let answer = run().unwrap_or_else(|reason| Answer::Unavailable { server: "tollgate-directory".into(), reason });
    println!("{}", serde_json::to_string(&answer).unwrap_or_default());
}

fn run() -> Result<Answer, String> {
    let mut args = std::env::args_os().skip(1);
    let config = match (args.next(), args.next()) {
        (Some(flag), Some(path)) if flag == "--config" => Some(std::path::PathBuf::from(path)),
        (None, None) => None,
        _ => return Err("usage: tollgate-directory [--config FILE] < request.json".into()),
    };
    let cfg = Config::load(config.as_deref()).map_err(|e| format!("{e:#}"))?;
    let mut body = Vec::new();
    std::io::stdin().take(64 * 1024).read_to_end(&mut body).map_err(|e| format!("cannot read the request: {e}"))?;
    let req: Request = serde_json::from_slice(&body).map_err(|e| format!("bad request: {e}"))?;
    match req.backend.as_str() {
        "ldap" => {
            let l = cfg.ldap.as_ref().ok_or("no [ldap] section in the config")?;
            Ok(ldap::check(l, &req.username, &req.password))
        }
        "radius" => {
            let r = cfg.radius.as_ref().ok_or("no [radius] section in the config")?;
            Ok(radius::check(r, &req.username, &req.password, req.state.as_deref(), req.client_ip.as_deref()))
        }
        other => Err(format!("unknown backend {other:?}")),
    }
}
