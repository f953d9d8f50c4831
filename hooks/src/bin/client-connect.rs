//! client-connect hook: opens the session row (re-checking the plan's
//! connection limit under the database's write lock) and writes the
//! directives for this client: session-timeout, ifconfig-push for a static
//! IP, the group's pushes. Non-zero exit makes OpenVPN refuse the client.
//!
//!   client-connect "/usr/local/libexec/tollgate/client-connect [--config F] [--server S]"

use std::path::Path;
use tollgate_core::openvpn::{self, env_str};
use tollgate_core::sessions::{self, OpenRequest};
use tollgate_core::{units, Store};
use tollgate_hooks::{log_line, Hook};

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
Exit: 0 admit, 1 refuse.
";

fn main() {
    tollgate_hooks::answer_help(USAGE);
    std::process::exit(run());
}

fn run() -> i32 {
    let refuse = |user: &str, why: &str| {
        log_line(HOOK, &format!("REFUSE user={user}: {why}"));
        1
    };
    let hook = match Hook::load() {
        Ok(h) => h,
        Err(e) => return refuse("-", &e),
    };
    let mut key = match openvpn::session_key(&hook.server) {
        Ok(k) => k,
        Err(e) => return refuse("-", &e),
    };
    let mut store = match Store::open_hook(&hook.cfg) {
        Ok(s) => s,
        Err(e) => return refuse(&key.username, &format!("{e:#}")),
    };
    // A client that sent no username is the user it signed in as.
    let signed_in = match sessions::resolve_key(&store.conn, &mut key) {
        Ok(s) => s,
        Err(e) => return refuse(&key.username, &format!("{e:#}")),
    };
    let user = key.username.clone();
    let Some(file) = hook.args.file.clone().or_else(|| std::env::var_os("client_connect_config_file").map(Into::into))
    else {
        return refuse(&user, "no client-connect config file argument");
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
    match sessions::open(&mut store, &req) {
        Ok(Ok(mut directives)) => {
            if signed_in {
                directives.push(sessions::token_user_directive(&user));
            }
            let mut body = directives.join("\n");
            if !body.is_empty() {
                body.push('\n');
            }
            if let Err(e) = openvpn::write_atomic(Path::new(&file), body.as_bytes()) {
                // The session row exists; client-disconnect will close it.
                return refuse(&user, &format!("cannot write {}: {e}", Path::new(&file).display()));
            }
            log_line(HOOK, &format!("OPEN user={user} ip={} {}", req.key.real_ip, directives.join("; ")));
            0
        }
        Ok(Err(deny)) => refuse(&user, &deny.log_reason()),
        Err(e) => refuse(&user, &format!("{e:#}")),
    }
}
