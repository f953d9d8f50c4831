//! client-disconnect hook: charges the tunnel's bytes to the user's usage
//! counters and closes the session, in one transaction. Idempotent (OpenVPN
//! also runs it after a failed client-connect). A busy database is waited
//! for once, up to `busy_timeout`; if it cannot be written then, the record
//! goes to the spool and is applied by the next disconnect or `tollgate
//! sweep`. OpenVPN waits for this hook with every tunnel stalled, and a
//! spooled record is as safe as a written one, so it never waits longer.
//!
//!   client-disconnect "/usr/local/libexec/tollgate/client-disconnect [--config F] [--server S]"

use tollgate_core::openvpn::{self, env_i64};
use tollgate_core::sessions::{self, CloseRecord};
use tollgate_core::{units, Store};
use tollgate_hooks::{log_line, Hook};

const HOOK: &str = "client-disconnect";

/// What `client-disconnect --help` prints.
const USAGE: &str = "\
usage (in server.conf, run by OpenVPN as its user):
  client-disconnect \"/usr/local/libexec/tollgate/client-disconnect [--config FILE] [--server NAME]\"

Charges the tunnel's bytes to the user's usage and closes the session.
Reads: common_name or username, trusted_ip (or trusted_ip6), trusted_port, time_unix,
  time_duration, bytes_received, bytes_sent.
Writes: the database, or a spool record beside it when the database stays busy
  (applied by the next disconnect or tollgate sweep); one log line on stderr.
Exit: 0 done (or spooled), 1 error.
";

fn main() {
    tollgate_hooks::answer_help(USAGE);
    std::process::exit(run());
}

fn run() -> i32 {
    let hook = match Hook::load() {
        Ok(h) => h,
        Err(e) => {
            log_line(HOOK, &format!("ERROR: {e}"));
            return 1;
        }
    };
    let key = match openvpn::session_key(&hook.server) {
        Ok(k) => k,
        Err(e) => {
            log_line(HOOK, &format!("ERROR: {e}"));
            return 1;
        }
    };
    let closed_at = env_i64("time_duration").map(|d| key.connected_at + d).unwrap_or_else(|_| units::now());
    let mut rec = CloseRecord {
        bytes_in: env_i64("bytes_received").unwrap_or(0),
        bytes_out: env_i64("bytes_sent").unwrap_or(0),
        closed_at,
        reason: "disconnect".into(),
        key,
    };
    let written = Store::open_hook(&hook.cfg).and_then(|mut s| {
        // A client that sent no username: who it signed in as, for the log
        // line (close finds it too, also when replaying a spooled record).
        sessions::resolve_key(&s.conn, &mut rec.key)?;
        let closed = sessions::close(&mut s, &rec)?;
        // Records an earlier run could not write go in now.
        let replayed = sessions::replay_spool(&mut s, &hook.cfg.database).unwrap_or(0);
        Ok((closed, replayed))
    });
    let err = match written {
        Ok((closed, replayed)) => {
            let what = if closed { "CLOSE" } else { "NO-SESSION" };
            let extra = if replayed > 0 { format!(" (+{replayed} spooled)") } else { String::new() };
            log_line(
                HOOK,
                &format!("{what} user={} in={} out={}{extra}", rec.key.username, rec.bytes_in, rec.bytes_out),
            );
            return 0;
        }
        Err(e) => format!("{e:#}"),
    };
    match sessions::spool(&hook.cfg.database, &rec) {
        Ok(p) => {
            log_line(HOOK, &format!("SPOOLED user={} to {}: {err}", rec.key.username, p.display()));
            0
        }
        Err(e) => {
            log_line(
                HOOK,
                &format!("LOST user={} in={} out={}: {err}; {e:#}", rec.key.username, rec.bytes_in, rec.bytes_out),
            );
            1
        }
    }
}
