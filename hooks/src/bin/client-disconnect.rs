//! client-disconnect hook: charges the tunnel's bytes to the user's usage
//! counters and closes the session, in one transaction. Idempotent (OpenVPN
//! also runs it after a failed client-connect). OpenVPN waits for this hook
//! with every tunnel stalled, so by default (defer = "auto") it only writes
//! the record to the spool beside the database and leaves the database to
//! a detached worker (`tg-disc-work`). With defer = "never" it
//! writes the database itself. Either way a busy database is waited for
//! once, up to `busy_timeout`; a record that cannot be written then stays in
//! the spool and is applied by the next disconnect or `tollgate sweep`.
//!
//!   client-disconnect "/usr/local/libexec/tollgate/client-disconnect [--config F] [--server S]"

use std::path::Path;
use tollgate_core::config::Defer;
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
Writes: a spool record beside the database, then exits; a detached
  worker (tg-disc-work) writes the database and removes the record. With
  defer = \"never\" the hook writes the database itself. A record the database
  cannot take (busy past busy_timeout) stays in the spool for the next
  disconnect or tollgate sweep. One log line on stderr.
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
    let rec = CloseRecord {
        bytes_in: env_i64("bytes_received").unwrap_or(0),
        bytes_out: env_i64("bytes_sent").unwrap_or(0),
        closed_at,
        reason: "disconnect".into(),
        key,
    };
    // OpenVPN waits for this hook with every tunnel stalled. With defer =
    // "auto" the record goes to the spool first, and a detached worker
    // writes it to the database while OpenVPN moves on. Not synced: from
    // here on it outlives the crash of any process; a power loss in the
    // milliseconds until the worker's commit is synced would lose it, as
    // it loses every live tunnel's bytes since the last sweep (a sync here
    // would double what OpenVPN waits for; docs/benchmarks.md).
    if hook.cfg.defer == Defer::Auto {
        match sessions::spool(&hook.cfg.spool_dir(), &rec, false) {
            Ok(spooled) => {
                match tollgate_hooks::detach(b"tg-disc-work\0", || apply(&hook, &rec, Some(&spooled), " (deferred)")) {
                    Ok(()) => return 0,
                    Err(e) => log_line(HOOK, &format!("cannot defer ({e}), writing inline")),
                }
                return apply(&hook, &rec, Some(&spooled), "");
            }
            Err(e) => log_line(HOOK, &format!("cannot spool ({e:#}), writing inline")),
        }
    }
    apply(&hook, &rec, None, "")
}

/// Close the session and charge its bytes; then apply what earlier runs
/// left in the spool. `spooled`: this record's own spool file, removed
/// once it is written (a record that cannot be written stays there, or
/// goes there now). `how` marks the log line of deferred work.
fn apply(hook: &Hook, rec: &CloseRecord, spooled: Option<&Path>, how: &str) -> i32 {
    let mut rec = rec.clone();
    let written = Store::open_hook(&hook.cfg).and_then(|mut s| {
        // A client that sent no username: who it signed in as, for the log
        // line (close finds it too, also when replaying a spooled record).
        sessions::resolve_key(&s.conn, &mut rec.key)?;
        let closed = sessions::close(&mut s, &rec)?;
        if let Some(p) = spooled {
            // Gone already: a concurrent replay applied it (close is idempotent).
            let _ = std::fs::remove_file(p);
        }
        // Records an earlier run could not write go in now; the records of
        // deferred runs still at work (within their busy wait, and more)
        // are theirs.
        let min_age = if spooled.is_some() { (hook.cfg.busy_timeout_ms / 1000) as i64 + 30 } else { 0 };
        let replayed = sessions::replay_spool(&mut s, &hook.cfg.spool_dir(), min_age).unwrap_or(0);
        Ok((closed, replayed))
    });
    let err = match written {
        Ok((closed, replayed)) => {
            let what = if closed { "CLOSE" } else { "NO-SESSION" };
            let extra = if replayed > 0 { format!(" (+{replayed} spooled)") } else { String::new() };
            log_line(
                HOOK,
                &format!("{what} user={} in={} out={}{how}{extra}", rec.key.username, rec.bytes_in, rec.bytes_out),
            );
            return 0;
        }
        Err(e) => format!("{e:#}"),
    };
    // It waits in the spool now, for the next disconnect or the sweep.
    let spooled = match spooled {
        Some(p) => {
            // (Gone: a replay has applied it meanwhile.)
            if let Err(e) = sessions::sync_spooled(p) {
                log_line(HOOK, &format!("{e:#}"));
            }
            Ok(p.to_path_buf())
        }
        None => sessions::spool(&hook.cfg.spool_dir(), &rec, true),
    };
    match spooled {
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
