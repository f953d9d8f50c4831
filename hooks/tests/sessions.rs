//! client-connect and client-disconnect as OpenVPN runs them, many at once.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::Env;

fn setup(name: &str, extra_toml: &str, sql: &str) -> Env {
    let plan_user = "INSERT INTO plans (name, period, created_at) VALUES ('unl', 'month', 0);
        INSERT INTO users (name, password_hash, all_servers, plan_id, created_at, updated_at) VALUES ('alice', 'x', 1, 1, 0, 0);";
    common::env("sesstest", name, extra_toml, &format!("{plan_user}\n{sql}"))
}

impl Env {
    fn conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.join("t.db")).unwrap()
    }

    /// `bin` as OpenVPN runs it for `user`'s tunnel from `port`, under
    /// `config`, with OpenVPN's usual environment plus `extra`.
    fn command(&self, bin: &str, config: &Path, user: &str, port: u32, extra: &[(&str, String)]) -> Command {
        let mut c = Command::new(bin);
        c.env_clear()
            .arg("--config")
            .arg(config)
            .env("username", user)
            .env("common_name", user)
            .env("trusted_ip", "192.0.2.2")
            .env("trusted_port", port.to_string())
            .env("time_unix", "1800000000")
            .env("ifconfig_pool_remote_ip", "10.99.0.2")
            .env("ifconfig_netmask", "255.255.255.0")
            .env("IV_PLAT", "linux")
            .env("IV_VER", "2.6.14");
        for (k, v) in extra {
            c.env(k, v);
        }
        c
    }

    fn hook(&self, bin: &str, user: &str, port: u32, extra: &[(&str, String)]) -> Output {
        let mut c = self.command(bin, &self.config, user, port, extra);
        if bin.ends_with("client-connect") {
            c.arg(self.dir.join(format!("cc-{user}-{port}")));
        }
        c.output().unwrap()
    }

    fn connect(&self, user: &str, port: u32) -> Output {
        self.hook(env!("CARGO_BIN_EXE_client-connect"), user, port, &[])
    }

    fn disconnect(&self, user: &str, port: u32, bytes_in: i64, bytes_out: i64) -> Output {
        self.hook(
            env!("CARGO_BIN_EXE_client-disconnect"),
            user,
            port,
            &[
                ("bytes_received", bytes_in.to_string()),
                ("bytes_sent", bytes_out.to_string()),
                ("time_duration", "60".into()),
            ],
        )
    }

    fn usage_total(&self) -> (i64, i64) {
        self.conn()
            .query_row("SELECT bytes_in, bytes_out FROM usage WHERE user_id = 1 AND period_start = 0", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap_or((0, 0))
    }
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn two_hundred_parallel_connects_and_disconnects_keep_exact_sums() {
    let e = std::sync::Arc::new(setup("storm", "", ""));
    let n = 200u32;
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let e = e.clone();
            std::thread::spawn(move || {
                let c = e.connect("alice", 10000 + i);
                let d = e.disconnect("alice", 10000 + i, 1000 + i as i64, 3 * i as i64 + 7);
                (c, d)
            })
        })
        .collect();
    for h in handles {
        let (c, d) = h.join().unwrap();
        assert_eq!(c.status.code(), Some(0), "client-connect: {}", err(&c));
        assert_eq!(d.status.code(), Some(0), "client-disconnect: {}", err(&d));
        assert!(err(&d).contains("CLOSE user=alice"), "{}", err(&d));
    }
    let want_in: i64 = (0..n as i64).map(|i| 1000 + i).sum();
    let want_out: i64 = (0..n as i64).map(|i| 3 * i + 7).sum();
    assert_eq!(e.usage_total(), (want_in, want_out));
    let month: (i64, i64) = e
        .conn()
        .query_row("SELECT bytes_in, bytes_out FROM usage WHERE user_id = 1 AND period_start > 0", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(month, (want_in, want_out), "the plan's period counter gets the same bytes");
    let (closed, open): (i64, i64) = e
        .conn()
        .query_row(
            "SELECT count(*) FILTER (WHERE closed_at IS NOT NULL), count(*) FILTER (WHERE closed_at IS NULL) FROM sessions",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((closed, open), (n as i64, 0));
    assert_eq!(spooled(&e), 0, "every record written and removed from the spool");
}

#[test]
fn connection_limit_holds_under_a_race() {
    let e = std::sync::Arc::new(setup("race", "", "UPDATE plans SET max_connections = 1;"));
    let handles: Vec<_> = (0..20u32)
        .map(|i| {
            let e = e.clone();
            std::thread::spawn(move || e.connect("alice", 20000 + i))
        })
        .collect();
    let outs: Vec<Output> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(ok, 1, "exactly one of 20 simultaneous logins may open a session");
    for o in outs.iter().filter(|o| !o.status.success()) {
        assert_eq!(o.status.code(), Some(1));
        assert!(err(o).contains("REFUSE user=alice: 1 open sessions, plan allows 1"), "{}", err(o));
    }
}

#[test]
fn directives_for_openvpn() {
    let e = setup(
        "directives",
        "",
        "UPDATE plans SET max_session_secs = 12;
         INSERT INTO groups (name, push, redirect_gateway, created_at) VALUES ('staff', 'route 10.1.0.0 255.255.0.0', 1, 0);
         UPDATE users SET static_ip = '10.99.0.50', group_id = 1;",
    );
    let o = e.connect("alice", 1);
    assert!(o.status.success(), "{}", err(&o));
    let body = std::fs::read_to_string(e.dir.join("cc-alice-1")).unwrap();
    assert_eq!(
        body,
        "session-timeout 12\nifconfig-push 10.99.0.50 255.255.255.0\npush \"redirect-gateway def1\"\npush \"route 10.1.0.0 255.255.0.0\"\n"
    );
    // The session records the address the client was given, not the pool's.
    let vpn_ip: String = e.conn().query_row("SELECT vpn_ip FROM sessions", [], |r| r.get(0)).unwrap();
    assert_eq!(vpn_ip, "10.99.0.50");
}

#[test]
fn refusals_and_bad_input() {
    let e = setup(
        "refuse",
        "",
        "INSERT INTO users (name, password_hash, enabled, created_at, updated_at) VALUES ('dave', 'x', 0, 0, 0);",
    );
    let o = e.connect("dave", 1);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("account disabled"), "{}", err(&o));
    let o = e.connect("nobody-here", 1);
    assert_eq!(o.status.code(), Some(1));
    // Missing environment: a refusal with one line, never a panic.
    let o =
        Command::new(env!("CARGO_BIN_EXE_client-connect")).env_clear().arg("--config").arg(&e.config).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(err(&o).lines().count(), 1, "{}", err(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_client-disconnect"))
        .env_clear()
        .arg("--config")
        .arg(&e.config)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(err(&o).lines().count(), 1, "{}", err(&o));
}

#[test]
fn disconnect_is_idempotent() {
    let e = setup("idem", "", "");
    // After a refused client-connect OpenVPN still runs client-disconnect.
    let o = e.disconnect("alice", 7, 500, 500);
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("NO-SESSION"), "{}", err(&o));
    assert_eq!(e.usage_total(), (0, 0));
    assert!(e.connect("alice", 7).status.success());
    assert!(e.disconnect("alice", 7, 100, 200).status.success());
    assert!(e.disconnect("alice", 7, 100, 200).status.success());
    assert_eq!(e.usage_total(), (100, 200), "a repeated disconnect must not count twice");
}

/// Inline (defer = "never"): the hook itself waits once for a busy
/// database, then spools.
#[test]
fn unwritable_database_spools_and_loses_nothing() {
    let e = setup("spool", "busy_timeout = \"1s\"\ndefer = \"never\"", "");
    assert!(e.connect("alice", 9).status.success());
    let holder = e.conn();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = std::time::Instant::now();
    let o = e.disconnect("alice", 9, 1234, 5678);
    // One wait of busy_timeout (1 s), then the spool: OpenVPN stalls while
    // this hook runs. (Retrying took at least 3.6 s here.)
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "waited {:?}", started.elapsed());
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(err(&o).contains("SPOOLED"), "{}", err(&o));
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(e.usage_total(), (0, 0));
    // The next disconnect of anyone applies the spool.
    assert!(e.connect("alice", 10).status.success());
    let o = e.disconnect("alice", 10, 1, 1);
    assert!(err(&o).contains("+1 spooled"), "{}", err(&o));
    assert_eq!(e.usage_total(), (1235, 5679));
    let left = std::fs::read_dir(e.dir.join("t.db.spool")).unwrap().count();
    assert_eq!(left, 0, "applied records are removed");
}

/// client-disconnect with stderr to `log` (its detached worker writes there
/// after the hook exits, as to OpenVPN's log), under `config`.
fn disconnect_logged(e: &Env, config: &Path, port: u32, bytes: (i64, i64), log: &Path) -> bool {
    let extra =
        [("bytes_received", bytes.0.to_string()), ("bytes_sent", bytes.1.to_string()), ("time_duration", "60".into())];
    e.command(env!("CARGO_BIN_EXE_client-disconnect"), config, "alice", port, &extra)
        .stderr(std::process::Stdio::from(std::fs::File::create(log).unwrap()))
        .status()
        .unwrap()
        .success()
}

fn spooled(e: &Env) -> usize {
    std::fs::read_dir(e.dir.join("t.db.spool"))
        .map(|d| d.flatten().filter(|f| f.file_name().to_string_lossy().ends_with(".json")).count())
        .unwrap_or(0)
}

/// Deferred (the default): the hook only spools the record and exits, so
/// OpenVPN does not wait for the database; the worker writes it there.
#[test]
fn a_deferred_disconnect_leaves_the_database_to_its_worker() {
    let e = setup("cddefer", "busy_timeout = \"30s\"", "");
    assert!(e.connect("alice", 11).status.success());
    let lock = e.conn();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let log = e.dir.join("log-cd");
    // It exits while this test still holds the write lock.
    assert!(disconnect_logged(&e, &e.config, 11, (1234, 5678), &log));
    assert_eq!(spooled(&e), 1, "the record is on disk before the hook exits");
    assert_eq!(e.usage_total(), (0, 0));
    lock.execute_batch("ROLLBACK").unwrap();
    let t = std::time::Instant::now();
    while spooled(&e) > 0 || e.usage_total() != (1234, 5678) {
        assert!(t.elapsed() < std::time::Duration::from_secs(10), "the worker did not write the record");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(open_sessions(&e), 0);
    let t = std::time::Instant::now();
    while !std::fs::read_to_string(&log).unwrap().contains("CLOSE user=alice in=1234 out=5678 (deferred)") {
        assert!(t.elapsed() < std::time::Duration::from_secs(5), "{}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A worker killed before it wrote the database loses nothing: the record
/// stays in the spool, and the next disconnect that replays it (or the
/// sweep) charges it.
#[test]
fn a_killed_disconnect_worker_loses_nothing() {
    let e = setup("cdkill", "busy_timeout = \"30s\"", "");
    assert!(e.connect("alice", 12).status.success());
    assert!(e.connect("alice", 13).status.success());
    let lock = e.conn();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let log = e.dir.join("log-kill");
    assert!(disconnect_logged(&e, &e.config, 12, (100, 200), &log));
    let worker = find_process("tg-disc-work", b"trusted_port=12\0");
    // SAFETY: killing a process this test started.
    unsafe { libc_kill(worker, 9) };
    lock.execute_batch("ROLLBACK").unwrap();
    assert_eq!(spooled(&e), 1, "the killed worker's record is kept");
    assert_eq!(e.usage_total(), (0, 0));
    // An inline disconnect replays every record, however young.
    let inline = e.dir.join("inline.toml");
    std::fs::write(&inline, "database = \"t.db\"\nserver = \"nl-1\"\ndefer = \"never\"\n").unwrap();
    let log = e.dir.join("log-inline");
    assert!(disconnect_logged(&e, &inline, 13, (1, 2), &log));
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("CLOSE user=alice in=1 out=2 (+1 spooled)"), "{log}");
    assert_eq!(e.usage_total(), (101, 202));
    assert_eq!((spooled(&e), open_sessions(&e)), (0, 0));
}

/// The process named `comm` whose environment holds `env` (a test's own
/// worker, among those of tests running in parallel).
fn find_process(comm: &str, env: &[u8]) -> i32 {
    let t = std::time::Instant::now();
    loop {
        let found = std::fs::read_dir("/proc").unwrap().flatten().find_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<i32>().ok()?;
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            (name.trim() == comm && environ.windows(env.len()).any(|w| w == env)).then_some(pid)
        });
        match found {
            Some(pid) => return pid,
            None if t.elapsed() > std::time::Duration::from_secs(5) => panic!("no process {comm}"),
            None => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
}

/// Sessions left open by an OpenVPN that died without running
/// client-disconnect are closed by the first client-connect of its
/// successor (`daemon_start_time` is later than they are), so they stop
/// counting against connection limits.
#[test]
fn a_restarted_servers_old_sessions_are_closed() {
    let e = setup("restart", "", "UPDATE plans SET max_connections = 1;");
    assert_eq!(e.connect("alice", 1000).status.code(), Some(0));
    // Same OpenVPN process: the open tunnel counts, a second one is refused.
    let same = [("daemon_start_time", "1799999000".to_string())];
    let o = e.hook(env!("CARGO_BIN_EXE_client-connect"), "alice", 1001, &same);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    // A new OpenVPN process (started after the first tunnel connected).
    let later = [("daemon_start_time", "1800000100".to_string()), ("time_unix", "1800000200".to_string())];
    let o = e.hook(env!("CARGO_BIN_EXE_client-connect"), "alice", 1002, &later);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<(i64, Option<String>)> = e
        .conn()
        .prepare("SELECT real_port, close_reason FROM sessions ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, vec![(1000, Some("server restarted".into())), (1002, None)]);
}

/// client-connect asks the same standing question as auth-verify: a plan
/// that ran out, a revoked grant or an unknown server refuses the tunnel
/// (before, a user on an expired plan got in with `session-timeout 1`, and
/// an unknown `--server` opened a session with no server).
#[test]
fn client_connect_checks_the_whole_standing() {
    let e = setup("standing", "", "");
    let c = e.conn();
    c.execute_batch("UPDATE plans SET expires_after_secs = 60; UPDATE users SET plan_since = 1000;").unwrap();
    let o = e.connect("alice", 1000);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("plan unl expired"), "{}", String::from_utf8_lossy(&o.stderr));
    c.execute_batch("UPDATE plans SET expires_after_secs = NULL; UPDATE users SET all_servers = 0;").unwrap();
    let o = e.connect("alice", 1001);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no grant for server nl-1"));
    c.execute_batch("UPDATE users SET all_servers = 1;").unwrap();
    let o = e.hook(env!("CARGO_BIN_EXE_client-connect"), "alice", 1002, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_client-connect"));
    let o = cmd
        .env_clear()
        .args([
            "--config".as_ref(),
            e.config.as_os_str(),
            "--server".as_ref(),
            "xx-9".as_ref(),
            e.dir.join("cc").as_os_str(),
        ])
        .env("username", "alice")
        .env("trusted_ip", "192.0.2.2")
        .env("trusted_port", "1003")
        .env("time_unix", "1800000000")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("server xx-9 is not in the database"));
    let open: i64 = c.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0)).unwrap();
    assert_eq!(open, 1, "only the allowed tunnel has a session");
}

/// client-connect as OpenVPN 2.5+ runs it with client_connect_deferred_file:
/// stderr to `log` (the detached worker writes there after the hook
/// exits, as to OpenVPN's log). Returns the hook's exit status and the
/// answer file.
fn connect_deferred(e: &Env, tag: &str, log: &Path) -> (std::process::ExitStatus, std::path::PathBuf) {
    use std::os::unix::fs::OpenOptionsExt;
    let answer = e.dir.join(format!("ccr-{tag}"));
    let _ = std::fs::remove_file(&answer);
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&answer).unwrap();
    let extra = [("client_connect_deferred_file", answer.display().to_string())];
    let status = e
        .command(env!("CARGO_BIN_EXE_client-connect"), &e.config, "alice", 5000, &extra)
        .arg(e.dir.join(format!("cc-{tag}")))
        .stderr(std::process::Stdio::from(std::fs::File::create(log).unwrap()))
        .status()
        .unwrap();
    (status, answer)
}

/// The first byte of `p` once it is a final answer ('0' or '1').
fn final_answer(p: &std::path::Path, within: std::time::Duration) -> Option<u8> {
    let t = std::time::Instant::now();
    while t.elapsed() < within {
        match std::fs::read(p).ok().and_then(|v| v.first().copied()) {
            Some(b @ (b'0' | b'1')) => return Some(b),
            _ => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    }
    None
}

fn open_sessions(e: &Env) -> i64 {
    e.conn().query_row("SELECT count(*) FROM sessions WHERE closed_at IS NULL", [], |r| r.get(0)).unwrap()
}

/// Deferred: the hook says "2" and exits; the worker opens the session,
/// writes the directives, then "1".
#[test]
fn deferred_connect_answers_through_the_file() {
    let e = setup("ccdefer", "", "UPDATE plans SET max_session_secs = 3600;");
    let log = e.dir.join("log-ok");
    let (status, answer) = connect_deferred(&e, "ok", &log);
    assert!(status.success());
    assert_eq!(final_answer(&answer, std::time::Duration::from_secs(5)), Some(b'1'));
    assert_eq!(open_sessions(&e), 1);
    let directives = std::fs::read_to_string(e.dir.join("cc-ok")).unwrap();
    assert!(directives.contains("session-timeout 3600"), "{directives}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("OPEN user=alice") && log.contains("(deferred)"), "{log}");
}

/// A worker killed mid-way (here: waiting for the database's write lock)
/// leaves a prompt refusal ("0") and no open session.
#[test]
fn a_killed_connect_worker_refuses_promptly_and_leaves_no_session() {
    let e = setup("cckill", "busy_timeout = \"30s\"\n", "");
    let lock = e.conn();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let log = e.dir.join("log-kill");
    let (status, answer) = connect_deferred(&e, "kill", &log);
    assert!(status.success());
    assert_eq!(std::fs::read(&answer).unwrap(), b"2", "deferred, while the worker waits");
    let mut needle = answer.as_os_str().as_encoded_bytes().to_vec();
    needle.push(0);
    let worker = find_process("tg-conn-work", &needle);
    let killed_at = std::time::Instant::now();
    // SAFETY: killing a process this test started.
    unsafe { libc_kill(worker, 9) };
    assert_eq!(final_answer(&answer, std::time::Duration::from_secs(5)), Some(b'0'));
    assert!(killed_at.elapsed() < std::time::Duration::from_secs(2), "promptly");
    lock.execute_batch("ROLLBACK").unwrap();
    assert_eq!(open_sessions(&e), 0);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("REFUSE user=alice: internal error: worker killed by signal 9"), "{log}");
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// OpenVPN deletes the answer file once it has read it: the supervisor must
/// not take the missing file for a worker that never answered (and close
/// the live session it opened).
#[test]
fn an_answer_openvpn_has_read_is_not_second_guessed() {
    let e = setup("ccread", "", "");
    let log = e.dir.join("log-read");
    let (status, answer) = connect_deferred(&e, "read", &log);
    assert!(status.success());
    let t = std::time::Instant::now();
    while std::fs::read(&answer).map(|b| b != b"1").unwrap_or(true) {
        assert!(t.elapsed() < std::time::Duration::from_secs(5), "no answer");
    }
    std::fs::remove_file(&answer).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(open_sessions(&e), 1, "the session stays open");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(!log.contains("REFUSE"), "{log}");
    assert!(!answer.exists(), "no answer written after OpenVPN read one");
}
