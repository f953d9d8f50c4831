//! auth-user-pass-verify hook.
//!
//!   auth-user-pass-verify "/usr/local/libexec/tollgate/auth-verify [--config F] [--server S]" via-file
//!
//! Exit 0 accepts, 1 denies, 2 defers. Every deny logs one line on stderr
//! (OpenVPN's log) and writes a short client reason to
//! `auth_failed_reason_file`. Any error denies: this hook fails closed.
//!
//! Deferred auth: when OpenVPN offers `auth_control_file` (2.6+) and the
//! config allows it (`defer = "auto"`, the default), only the input checks
//! run while OpenVPN waits. The rest (database, argon2, second factor) runs
//! in a detached worker, watched by a supervisor that writes a `0` if the
//! worker dies or overruns, so OpenVPN never waits for hand-window. Nothing
//! account-related is decided synchronously: a fast deny for an unknown or
//! disabled user would tell a guesser what a slow deny hides.
//!
//! Renegotiations of a live tunnel are decided inline: a token reauth needs
//! no argon2, and a password renegotiation (no auth-gen-token) deferred
//! would leave the tunnel's new key unused for seconds.

use std::path::{Path, PathBuf};
use std::time::Duration;
use tollgate_core::auth::{self, Request};
use tollgate_core::config::{Defer, LogLevel};
use tollgate_core::method::AuthMethod;
use tollgate_core::names::for_log;
use tollgate_core::openvpn::{self, Credentials};
use tollgate_core::policy::{self, check_credentials, Decision, Deny};
use tollgate_core::{oidc, units, Config, Store};
use tollgate_hooks::Names;

const HOOK: &str = "tollgate auth-verify";
/// The longest a deferred worker may take before the supervisor denies
/// (longer with a post-auth program: its timeout, plus room).
const WORKER_DEADLINE: Duration = Duration::from_secs(30);

/// What `auth-verify --help` prints.
const USAGE: &str = "\
usage (in server.conf, run by OpenVPN as its user):
  auth-user-pass-verify \"/usr/local/libexec/tollgate/auth-verify [--config FILE] [--server NAME]\" via-file

Decides a login with tollgate's database (see the admin guide).
Reads: the via-file (username, password), untrusted_ip, untrusted_port,
  session_state, auth_control_file, auth_pending_file, auth_failed_reason_file,
  daemon_start_time, IV_*/UV_* peer info.
Writes: auth_failed_reason_file (the client's reason), auth_control_file and
  auth_pending_file (deferred auth), one log line on stderr per decision.
Exit: 0 accept, 1 deny, 2 deferred (the answer follows in auth_control_file).
To try a login without a client: tollgate test-auth NAME (the same decision,
nothing recorded).
";

fn main() {
    tollgate_hooks::answer_help(USAGE);
    std::process::exit(run());
}

#[derive(Clone)]
struct Ctx {
    user: String,
    ip: String,
    server: String,
    /// " (deferred)" on log lines of decisions made in the worker,
    /// " (deferred, sign-in link)" when the client was sent an SSO link.
    how: &'static str,
}

/// What to tell OpenVPN.
enum Verdict {
    Accept,
    /// Reject, with the text for auth_failed_reason_file.
    Reject(String),
}

fn run() -> i32 {
    let mut ctx =
        Ctx { user: "-".into(), ip: openvpn::client_ip().unwrap_or_else(|| "-".into()), server: "-".into(), how: "" };
    // Read OpenVPN's credentials first, whatever else is wrong: the file
    // is gone once we exit, and the username makes the log line useful.
    let args = match openvpn::parse_hook_args(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => return inline(deny(&ctx, &Deny::Internal { detail: format!("bad hook arguments: {e}") })),
    };
    let creds = match &args.file {
        Some(f) => openvpn::read_via_file(f),
        None => openvpn::read_via_env(),
    };
    let mut creds: Credentials = match creds {
        Ok(c) => c,
        Err(d) => return inline(deny(&ctx, &d)),
    };
    let session_state = openvpn::env_str("session_state");
    let token_reauth = session_state.as_deref().is_some_and(|s| s != "Initial");
    // An empty username: a client that sent none (auth-user-pass-optional),
    // which only a sign-in can name, and on renegotiation the user it signed
    // in as (below).
    ctx.user = for_log(&String::from_utf8_lossy(&creds.username));
    let checked = match creds.username.is_empty() {
        true => policy::check_password(&creds.password),
        false => check_credentials(&creds.username, &creds.password),
    };
    if let Err(d) = checked {
        return inline(deny(&ctx, &d));
    }
    if ctx.ip == "-" {
        let d = Deny::Malformed { detail: "no untrusted_ip in the environment (not run by OpenVPN?)".into() };
        return inline(deny(&ctx, &d));
    }
    let cfg = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return inline(deny(&ctx, &Deny::from_error(&e))),
    };
    let Some(server) = args.server.clone().or_else(|| cfg.server.clone()) else {
        let d = Deny::Internal { detail: "no server name: set `server` in the config or pass --server".into() };
        return inline(deny(&ctx, &d));
    };
    ctx.server = server;
    if creds.username.is_empty() && token_reauth {
        // The renegotiation (or reconnection) by session token of a tunnel
        // whose client sent no username: the user it signed in as. A token
        // issued to no username comes only from such a sign-in, and nothing
        // else names it (never the certificate's common name).
        let sid = openvpn::env_str("session_id");
        let signed_in = sid.as_deref().map(|sid| {
            Store::open_read(&cfg).and_then(|s| tollgate_core::oidc::tunnel_user(&s.conn, &ctx.server, sid))
        });
        match signed_in {
            Some(Ok(Some(name))) => creds.username = name.into_bytes(),
            Some(Err(e)) => return inline(deny(&ctx, &Deny::from_error(&e))),
            _ => {}
        }
        ctx.user = for_log(&String::from_utf8_lossy(&creds.username));
        if let Err(d) = check_credentials(&creds.username, &creds.password) {
            let d = match creds.username.is_empty() {
                true => Deny::NoUsername { detail: "no sign-in names this session".into() },
                false => d,
            };
            return inline(deny(&ctx, &d));
        }
    }
    // check_password or check_credentials proved both are UTF-8.
    let username = String::from_utf8_lossy(&creds.username).into_owned();
    let password = String::from_utf8_lossy(&creds.password).into_owned();
    let control = std::env::var_os("auth_control_file").map(PathBuf::from);
    // A reauth by session token (renegotiation) has no slow step: no argon2,
    // no code. Deferring it would only let the client's packets on the new
    // key be dropped until OpenVPN next polls the control file.
    // Without auth-gen-token (no session_state at all) a renegotiation sends
    // the password again. Deferred, it would leave the tunnel's new key
    // unused until OpenVPN next polls the control file, which on a
    // long-lived tunnel is every 8 s: decide it inline. Only such setups pay
    // for this look-up; with auth-gen-token it never runs.
    // With a post-auth program configured, a renegotiation runs it too
    // (reauth = true), and with a directory it may ask the directory: both
    // are deferred like a login.
    let renegotiation = || {
        cfg.post_auth.is_none()
            && cfg.ldap.is_none()
            && cfg.radius.is_none()
            && cfg.oidc.is_none()
            && session_state.is_none()
            && openvpn::env_i64("untrusted_port").ok().is_some_and(|port| {
                // Read-only: no -wal/-shm made, no checkpoint when it closes.
                Store::open_read(&cfg)
                    .and_then(|s| tollgate_core::sessions::tunnel_is_open(&s, &ctx.server, &ctx.ip, port))
                    .unwrap_or(false)
            })
    };
    match (cfg.defer, control) {
        (Defer::Auto, Some(control)) if !token_reauth && !renegotiation() => {
            // Single sign-on: the login link goes to the client now, with
            // the answer deferred until the browser signed in.
            let link = match web_login(&cfg, &username) {
                Ok(l) => l,
                Err(e) => return inline(deny(&ctx, &Deny::Internal { detail: e })),
            };
            match deferred(&control, &ctx, &cfg, || {
                let how = if link.is_some() { " (deferred, sign-in link)" } else { " (deferred)" };
                let dctx = Ctx { how, ..ctx.clone() };
                decide(&dctx, &cfg, &username, &password, session_state.as_deref(), link.as_deref())
            }) {
                Ok(()) => {
                    if link.is_none() {
                        announce_pending(&cfg);
                    }
                    2
                }
                Err(e) if link.is_some() => {
                    inline(deny(&ctx, &Deny::Internal { detail: format!("cannot defer: {e}") }))
                }
                Err(e) => {
                    eprintln!("{HOOK}: cannot defer ({e}), deciding inline");
                    inline(decide(&ctx, &cfg, &username, &password, session_state.as_deref(), None))
                }
            }
        }
        _ => inline(decide(&ctx, &cfg, &username, &password, session_state.as_deref(), None)),
    }
}

/// For a single sign-on user whose client can open a link: a new login
/// link's secret, the link already in auth_pending_file. `None` for every
/// other login (nothing is read unless `[oidc]` is configured and the client
/// announced web auth).
fn web_login(cfg: &Config, username: &str) -> Result<Option<String>, String> {
    let Some(o) = &cfg.oidc else { return Ok(None) };
    if !oidc::announces_webauth(openvpn::env_str("IV_SSO").as_deref()) {
        return Ok(None);
    }
    // Where SSO is the default method, or the profile says it is an SSO
    // user's (gen-ovpn's hint), every client that can open a link gets one
    // with no look-up at all (OpenVPN waits no longer than for a deferred
    // local login); the worker then goes by the account's own method, and
    // an account set to a password method is answered on the password it
    // sent, the link unused. Elsewhere the account says, read only: the
    // worker opens the database properly (and reports an old schema); a
    // look that fails here just means no link.
    // A client that sent no username can only be named by a sign-in.
    let is_sso = username.is_empty()
        || cfg.auth_method == AuthMethod::Oidc
        || openvpn::env_str(oidc::PROFILE_HINT).as_deref() == Some("1")
        || matches!(Store::open_read(cfg).and_then(|s| auth::method_of(&s, cfg, username)), Ok(AuthMethod::Oidc));
    if !is_sso {
        return Ok(None);
    }
    let Some(path) = std::env::var_os("auth_pending_file") else {
        return Err("single sign-on needs OpenVPN 2.6 (no auth_pending_file)".into());
    };
    let secret = oidc::new_secret();
    // OpenVPN waits a little longer than the login does, so that the
    // worker's answer (and its reason) arrives before OpenVPN gives up.
    let body = oidc::pending_file(o.login_timeout_secs + 5, &oidc::link(o, &secret));
    openvpn::write_atomic(Path::new(&path), body.as_bytes())
        .map_err(|e| format!("cannot write auth_pending_file: {e}"))?;
    Ok(Some(secret))
}

/// The whole decision after the input checks.
fn decide(
    ctx: &Ctx,
    cfg: &Config,
    username: &str,
    password: &str,
    session_state: Option<&str>,
    web_link: Option<&str>,
) -> Verdict {
    let mut store = match Store::open_hook(cfg) {
        Ok(s) => s,
        Err(e) => return deny(ctx, &Deny::from_error(&e)),
    };
    let session_id = openvpn::env_str("session_id");
    let req = Request {
        username,
        password,
        server: &ctx.server,
        ip: &ctx.ip,
        port: openvpn::env_i64("untrusted_port").ok(),
        now: units::now(),
        session_state,
        peer: &openvpn::peer_info(),
        server_started: openvpn::env_i64("daemon_start_time").ok(),
        web_link,
        token_session: session_id.as_deref(),
        signed_in: None,
    };
    let outcome = auth::authenticate(&mut store, cfg, &req, true);
    // A client that sent no username is, from its sign-in on, who signed in.
    let named;
    let ctx = match outcome.as_ref().ok().and_then(|o| o.signed_in_as.as_deref()) {
        Some(name) => {
            named = Ctx { user: for_log(name), ..ctx.clone() };
            &named
        }
        None => ctx,
    };
    match outcome.map(|o| (o.decision, o.prompt)) {
        Ok((Decision::Challenge, Some(prompt))) => {
            // Dynamic challenge: the client asks the question and
            // reconnects with CRV1::<state>::<answer>.
            eprintln!("{HOOK}: CHALLENGE user={} ip={} server={}{}", ctx.user, ctx.ip, ctx.server, ctx.how);
            Verdict::Reject(prompt)
        }
        Ok((Decision::Challenge, None)) => deny(ctx, &Deny::Internal { detail: "challenge without state".into() }),
        Ok((Decision::Accept, _)) => {
            if cfg.log_level >= LogLevel::Info {
                eprintln!("{HOOK}: ACCEPT user={} ip={} server={}{}", ctx.user, ctx.ip, ctx.server, ctx.how);
            }
            Verdict::Accept
        }
        Ok((Decision::Deny(d), _)) => deny(ctx, &d),
        Err(e) => deny(ctx, &Deny::from_error(&e)),
    }
}

fn deny(ctx: &Ctx, d: &Deny) -> Verdict {
    // One line per event, whatever a lower layer's message looked like.
    let why = d.log_reason().split_whitespace().collect::<Vec<_>>().join(" ");
    eprintln!("{HOOK}: DENY user={} ip={} server={}{}: {why}", ctx.user, ctx.ip, ctx.server, ctx.how);
    Verdict::Reject(d.client_reason())
}

fn write_reason(text: &str) {
    if let Some(path) = std::env::var_os("auth_failed_reason_file") {
        if let Err(e) = openvpn::write_atomic(Path::new(&path), text.as_bytes()) {
            eprintln!("{HOOK}: cannot write auth_failed_reason_file: {e}");
        }
    }
}

/// Answer while OpenVPN waits: the reason file, then the exit code.
fn inline(v: Verdict) -> i32 {
    match v {
        Verdict::Accept => 0,
        Verdict::Reject(text) => {
            write_reason(&text);
            1
        }
    }
}

/// Answer through the control file: reason first, then `1` or `0`; false
/// if it could not be written.
fn answer(control: &Path, v: Verdict) -> bool {
    let byte: &[u8] = match v {
        Verdict::Accept => b"1",
        Verdict::Reject(text) => {
            write_reason(&text);
            b"0"
        }
    };
    match openvpn::write_atomic(control, byte) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("{HOOK}: cannot write auth_control_file: {e}");
            false
        }
    }
}

/// While a post-auth program runs (a push approval may take a while), tell
/// a client that announced `crtext` (IV_SSO) what is going on. OpenVPN
/// reads auth_pending_file right after the hook exits 2, then sends
/// AUTH_PENDING and extends the login's deadline to the timeout given here.
fn announce_pending(cfg: &Config) {
    let Some(pa) = &cfg.post_auth else { return };
    let Some(path) = std::env::var_os("auth_pending_file") else { return };
    let sso = openvpn::env_str("IV_SSO").unwrap_or_default();
    if !sso.split(',').any(|m| m.trim() == "crtext") {
        return;
    }
    let body = format!("{}\ncrtext\nCR_TEXT::{}\n", worker_deadline(cfg).as_secs(), pa.pending_text);
    if let Err(e) = openvpn::write_atomic(Path::new(&path), body.as_bytes()) {
        eprintln!("{HOOK}: cannot write auth_pending_file: {e}");
    }
}

/// How long the deferred worker may take: the post-auth program's and the
/// directory's (or the single sign-on login's) limits and some room for the
/// rest, at least WORKER_DEADLINE.
fn worker_deadline(cfg: &Config) -> Duration {
    let program = cfg.post_auth.as_ref().map_or(0, |p| p.timeout_secs);
    let directory = tollgate_core::directory::longest_deadline_secs(cfg);
    let sso = cfg.oidc.as_ref().map_or(0, |o| o.login_timeout_secs);
    WORKER_DEADLINE.max(Duration::from_secs(program + directory.max(sso) + 10))
}

/// Answer through auth_control_file from a watched worker (`defer`); a
/// worker that dies or overruns leaves a refusal. Returns in the hook
/// process, which then exits 2 at once.
fn deferred(control: &Path, ctx: &Ctx, cfg: &Config, work: impl FnOnce() -> Verdict) -> Result<(), String> {
    let names = Names { watch: b"tg-auth-watch\0", work: b"tg-auth-work\0" };
    tollgate_hooks::defer(
        names,
        worker_deadline(cfg),
        || answer(control, work()),
        || tollgate_hooks::answer_pending(control),
        |died| {
            eprintln!("{HOOK}: DENY user={} ip={} server={}: internal error: {died}", ctx.user, ctx.ip, ctx.server);
            answer(control, Verdict::Reject(Deny::Internal { detail: died }.client_reason()));
        },
    )
}
