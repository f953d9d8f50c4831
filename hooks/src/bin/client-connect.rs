//! client-connect hook: opens the session row (re-checking the plan's
//! connection limit under the database's write lock) and writes the
//! directives for this client: session-timeout, ifconfig-push for a static
//! IP, the group's pushes. Non-zero exit makes OpenVPN refuse the client.
//!
//!   client-connect "/usr/local/libexec/tollgate/client-connect [--config F] [--server S]"

use std::path::{Path, PathBuf};
use std::time::Duration;
use tollgate_core::config::Defer;
use tollgate_core::openvpn::{self, env_str};
use tollgate_core::policy::Deny;
use tollgate_core::sessions::{self, CloseRecord, OpenRequest};
use tollgate_core::{units, Store};
use tollgate_hooks::{log_line, Hook, Names};

const HOOK: &str = "client-connect";

/// What `client-connect --help` prints.
const USAGE: &str = "\
usage (in server.conf, run by OpenVPN as its user):
  client-connect \"/usr/local/libexec/tollgate/client-connect [--config FILE] [--server NAME]\"

Opens the session in tollgate's database, re-checking the connection limit.
Reads: common_name or username, trusted_ip (or trusted_ip6), trusted_port, time_unix,
  ifconfig_pool_remote_ip, ifconfig_netmask, daemon_start_time, IV_PLAT, IV_VER;
  the directives file is the last argument OpenVPN adds.
Writes: that file (session-timeout, ifconfig-push, the group's pushes), one log
  line on stderr.
Deferred (OpenVPN 2.5+ sets client_connect_deferred_file; defer = \"auto\", the
  default): writes 2 there and exits at once; a watched worker writes the
  directives, then 1 (admit) or 0 (refuse); a worker that dies writes 0.
Exit: 0 admit (or deferred), 1 refuse.
";

fn main() {
    tollgate_hooks::answer_help(USAGE);
    std::process::exit(run());
}

/// How long the deferred worker may take: the database's busy wait and
/// more; past it the client is refused.
const WORKER_DEADLINE: Duration = Duration::from_secs(20);

fn refuse(user: &str, why: &str) -> bool {
    log_line(HOOK, &format!("REFUSE user={user}: {why}"));
    false
}

fn run() -> i32 {
    let hook = match Hook::load() {
        Ok(h) => h,
        Err(e) => return code(refuse("-", &e)),
    };
    let key = match openvpn::session_key(&hook.server) {
        Ok(k) => k,
        Err(e) => return code(refuse("-", &e)),
    };
    let Some(file) = hook.args.file.clone().or_else(|| std::env::var_os("client_connect_config_file").map(Into::into))
    else {
        return code(refuse(&key.username, "no client-connect config file argument"));
    };
    let req = OpenRequest {
        vpn_ip: env_str("ifconfig_pool_remote_ip"),
        platform: env_str("IV_PLAT"),
        client_version: env_str("IV_VER"),
        netmask: env_str("ifconfig_netmask").unwrap_or_else(|| "255.255.255.0".into()),
        now: units::now(),
        server_started: openvpn::env_i64("daemon_start_time").ok(),
        key,
    };
    // Deferred where OpenVPN offers it (2.5+): OpenVPN's event loop, which
    // forwards every client's packets, waits only for this process to say
    // "2" and fork; the database work runs in a watched worker, which
    // writes the directives, then "1" or "0". OpenVPN reads the answer
    // when it next looks at this client.
    if let (Defer::Auto, Some(answer)) = (hook.cfg.defer, std::env::var_os("client_connect_deferred_file")) {
        let answer = PathBuf::from(answer);
        // "2" before the worker exists: its answer must never be
        // overwritten by ours.
        if openvpn::write_atomic(&answer, b"2").is_ok() {
            let names = Names { watch: b"tg-conn-watch\0", work: b"tg-conn-work\0" };
            let write = |ok: bool| match openvpn::write_atomic(&answer, if ok { b"1" } else { b"0" }) {
                Ok(()) => true,
                Err(e) => {
                    log_line(HOOK, &format!("cannot write client_connect_deferred_file: {e}"));
                    false
                }
            };
            let started = tollgate_hooks::defer(
                names,
                WORKER_DEADLINE,
                || write(connect(&hook, &req, &file, " (deferred)")),
                || tollgate_hooks::answer_pending(&answer),
                |died| {
                    refuse(&req.key.username, &format!("internal error: {died}"));
                    write(false);
                    // Then a session the worker may have opened before it
                    // died closes (client-disconnect would close it too);
                    // this may wait for the database, OpenVPN need not.
                    if let Err(e) = undo(&hook, &req) {
                        log_line(HOOK, &format!("cannot close the session of a failed connect: {e}"));
                    }
                },
            );
            match started {
                Ok(()) => return 0,
                Err(e) => {
                    log_line(HOOK, &format!("cannot defer ({e}), deciding inline"));
                    // An empty answer file: OpenVPN takes the exit code.
                    if openvpn::write_atomic(&answer, b"").is_err() {
                        return code(refuse(&req.key.username, "cannot clear client_connect_deferred_file"));
                    }
                }
            }
        }
    }
    code(connect(&hook, &req, &file, ""))
}

/// Open the session and write the client's directives into `file`: true
/// to admit the client. `how` marks the log line of a deferred decision.
fn connect(hook: &Hook, req: &OpenRequest, file: &Path, how: &str) -> bool {
    let mut store = match Store::open_hook(&hook.cfg) {
        Ok(s) => s,
        Err(e) => return refuse(&req.key.username, &Deny::from_error(&e).log_reason()),
    };
    // A client that sent no username is the user it signed in as.
    let mut key = req.key.clone();
    let signed_in = match sessions::resolve_key(&store.conn, &mut key) {
        Ok(s) => s,
        Err(e) => return refuse(&key.username, &Deny::from_error(&e).log_reason()),
    };
    let user = key.username.clone();
    let req = OpenRequest { key, ..req.clone() };
    match sessions::open(&mut store, &req) {
        Ok(Ok(mut directives)) => {
            if signed_in {
                directives.push(sessions::token_user_directive(&user));
            }
            let mut body = directives.join("\n");
            if !body.is_empty() {
                body.push('\n');
            }
            if let Err(e) = openvpn::write_atomic(file, body.as_bytes()) {
                // The session row exists; client-disconnect will close it.
                return refuse(&user, &format!("cannot write {}: {e}", file.display()));
            }
            log_line(HOOK, &format!("OPEN user={user} ip={}{how} {}", req.key.real_ip, directives.join("; ")));
            true
        }
        Ok(Err(deny)) => refuse(&user, &deny.log_reason()),
        Err(e) => refuse(&user, &Deny::from_error(&e).log_reason()),
    }
}

/// Close the session a worker that died may have opened.
fn undo(hook: &Hook, req: &OpenRequest) -> Result<bool, String> {
    let mut store = Store::open_hook(&hook.cfg).map_err(|e| format!("{e:#}"))?;
    let rec = CloseRecord {
        key: req.key.clone(),
        bytes_in: 0,
        bytes_out: 0,
        closed_at: units::now(),
        reason: "connect failed".into(),
    };
    sessions::close(&mut store, &rec).map_err(|e| format!("{e:#}"))
}

/// Admit (0) or refuse (1), as OpenVPN reads client-connect's exit.
fn code(admit: bool) -> i32 {
    if admit {
        0
    } else {
        1
    }
}
