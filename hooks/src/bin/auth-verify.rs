//! auth-user-pass-verify hook.
//!
//!   auth-user-pass-verify "/usr/local/libexec/tollgate/auth-verify [--config F] [--server S]" via-file
//!
//! Exit 0 accepts, 1 denies. Every deny logs one line on stderr (OpenVPN's
//! log) and writes a short client reason to `auth_failed_reason_file`.
//! Any error denies: this hook fails closed.

use std::path::Path;
use tollgate_core::auth::{self, Request};
use tollgate_core::config::LogLevel;
use tollgate_core::names::for_log;
use tollgate_core::openvpn::{self, Credentials};
use tollgate_core::policy::{check_credentials, Decision, Deny};
use tollgate_core::{units, Config, Store};

const HOOK: &str = "tollgate auth-verify";

fn main() {
    std::process::exit(run());
}

struct Ctx {
    user: String,
    ip: String,
    server: String,
}

fn run() -> i32 {
    let mut ctx = Ctx { user: "-".into(), ip: openvpn::client_ip().unwrap_or_else(|| "-".into()), server: "-".into() };
    // Read OpenVPN's credentials first, whatever else is wrong: the file
    // is gone once we exit, and the username makes the log line useful.
    let args = match openvpn::parse_hook_args(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => return deny(&ctx, &Deny::Internal { detail: format!("bad hook arguments: {e}") }),
    };
    let creds = match &args.file {
        Some(f) => openvpn::read_via_file(f),
        None => openvpn::read_via_env(),
    };
    let creds: Credentials = match creds {
        Ok(c) => c,
        Err(d) => return deny(&ctx, &d),
    };
    let session_state = openvpn::env_str("session_state");
    // auth-gen-token: a reauth may come with an empty username; the
    // certificate's common name (the username, with username-as-common-name)
    // stands in.
    let mut creds = creds;
    if creds.username.is_empty() && session_state.as_deref().is_some_and(|s| s.ends_with("EmptyUser")) {
        creds.username = openvpn::env("common_name").unwrap_or_default();
    }
    ctx.user = for_log(&String::from_utf8_lossy(&creds.username));
    if let Err(d) = check_credentials(&creds.username, &creds.password) {
        return deny(&ctx, &d);
    }
    // check_credentials proved both are UTF-8.
    let username = String::from_utf8_lossy(&creds.username).into_owned();
    let password = String::from_utf8_lossy(&creds.password).into_owned();
    if ctx.ip == "-" {
        return deny(
            &ctx,
            &Deny::Malformed { detail: "no untrusted_ip in the environment (not run by OpenVPN?)".into() },
        );
    }
    let cfg = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return deny(&ctx, &Deny::Internal { detail: format!("{e:#}") }),
    };
    let Some(server) = args.server.clone().or_else(|| cfg.server.clone()) else {
        return deny(
            &ctx,
            &Deny::Internal { detail: "no server name: set `server` in the config or pass --server".into() },
        );
    };
    ctx.server = server.clone();
    let mut store = match Store::open_hook(&cfg) {
        Ok(s) => s,
        Err(e) => return deny(&ctx, &Deny::Internal { detail: format!("{e:#}") }),
    };
    let req = Request {
        username: &username,
        password: &password,
        server: &server,
        ip: &ctx.ip,
        port: openvpn::env_i64("untrusted_port").ok(),
        now: units::now(),
        session_state: session_state.as_deref(),
        peer: &openvpn::env_str,
    };
    match auth::authenticate(&mut store, &cfg, &req, true).map(|o| (o.decision, o.challenge_state)) {
        Ok((Decision::Challenge, Some(state))) => {
            // Dynamic challenge: the client asks for the code and reconnects
            // with CRV1::<state>::<code>.
            eprintln!("{HOOK}: CHALLENGE user={} ip={} server={}", ctx.user, ctx.ip, ctx.server);
            if let Some(path) = std::env::var_os("auth_failed_reason_file") {
                let text = auth::crv1_prompt(&state, &username);
                if let Err(e) = openvpn::write_atomic(Path::new(&path), text.as_bytes()) {
                    eprintln!("{HOOK}: cannot write auth_failed_reason_file: {e}");
                }
            }
            1
        }
        Ok((Decision::Challenge, None)) => deny(&ctx, &Deny::Internal { detail: "challenge without state".into() }),
        Ok((Decision::Accept, _)) => {
            if cfg.log_level >= LogLevel::Info {
                eprintln!("{HOOK}: ACCEPT user={} ip={} server={}", ctx.user, ctx.ip, ctx.server);
            }
            0
        }
        Ok((Decision::Deny(d), _)) => deny(&ctx, &d),
        Err(e) => deny(&ctx, &Deny::Internal { detail: format!("{e:#}") }),
    }
}

fn deny(ctx: &Ctx, d: &Deny) -> i32 {
    // One line per event, whatever a lower layer's message looked like.
    let why = d.log_reason().split_whitespace().collect::<Vec<_>>().join(" ");
    eprintln!("{HOOK}: DENY user={} ip={} server={}: {why}", ctx.user, ctx.ip, ctx.server);
    if let Some(path) = std::env::var_os("auth_failed_reason_file") {
        if let Err(e) = openvpn::write_atomic(Path::new(&path), d.client_reason().as_bytes()) {
            eprintln!("{HOOK}: cannot write auth_failed_reason_file: {e}");
        }
    }
    1
}
