//! auth-verify as OpenVPN runs it: a fresh process, an environment with
//! only OpenVPN's variables, a credentials file. Every bad input must end in
//! exit 1 with exactly one log line, never a panic and never exit 0.

use std::os::unix::process::CommandExt;
use std::process::{Command, Output};
use tollgate_core::{password, Config};

mod common;
use common::{Env, FAST};

fn setup(name: &str) -> Env {
    setup_with(name, "")
}

/// `setup`, with more config tables after `[argon2]`.
fn setup_with(name: &str, toml: &str) -> Env {
    let base = "busy_timeout = \"1s\"\n[argon2]\nmemory_kib = 256\niterations = 1";
    common::env("hooktest", name, &format!("{base}\n{toml}"), &common::alice())
}

fn assert_denied(out: &Output, reason: &str, log_has: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit status; stderr: {err}");
    assert_eq!(err.lines().count(), 1, "exactly one log line, got: {err:?}");
    assert!(err.contains("DENY"), "{err}");
    assert!(err.contains(log_has), "log {err:?} should mention {log_has:?}");
    assert!(!err.contains("correct horse"), "the password must never be logged: {err}");
    assert!(!reason.is_empty() && !reason.contains('\n'), "client reason {reason:?}");
}

#[test]
fn right_password_accepts_wrong_denies() {
    let e = setup("basic");
    let (out, _) = e.run(Some(&e.creds(b"alice\ncorrect horse\n")), &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let (out, reason) = e.run(Some(&e.creds(b"alice\nwrong horse\n")), &[], &[]);
    assert_denied(&out, &reason, "wrong password");
    assert_eq!(reason, "invalid username or password");
    let (out, reason) = e.run(Some(&e.creds(b"mallory\ncorrect horse\n")), &[], &[]);
    assert_denied(&out, &reason, "unknown user");
    assert_eq!(reason, "invalid username or password");
}

#[test]
fn via_env() {
    let e = setup("env");
    let ok: [(&str, &[u8]); 2] = [("username", b"alice"), ("password", b"correct horse")];
    let (out, _) = e.run(None, &ok, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let (out, reason) = e.run(None, &[("username", b"alice")], &[]);
    assert_denied(&out, &reason, "no password in the environment");
    let (out, reason) = e.run(None, &[], &[]);
    assert_denied(&out, &reason, "no username");
}

#[test]
fn malformed_credentials_files() {
    let e = setup("files");
    let mut long = vec![b'a'; 10 * 1024];
    long.extend_from_slice(b"\ncorrect horse\n");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "empty credentials file"),
        (b"alice".to_vec(), "no password line"),
        (b"alice\n".to_vec(), "no password line"),
        (long, "larger than 4 KiB"),
        ([b'a'; 1000].iter().copied().chain(*b"\nx\n").collect(), "too long"),
        (b"al\x07ice\ncorrect horse\n".to_vec(), "control character in username"),
        (b"alice\ncorrect\x1bhorse\n".to_vec(), "control character in password"),
        (b"\xff\xfeice\ncorrect horse\n".to_vec(), "not UTF-8"),
        (b"alice\n\xc3\x28\n".to_vec(), "not UTF-8"),
    ];
    for (content, why) in cases {
        let (out, reason) = e.run(Some(&e.creds(&content)), &[], &[]);
        assert_denied(&out, &reason, why);
    }
    let (out, reason) = e.run(Some(&e.dir.join("no-such-file")), &[], &[]);
    assert_denied(&out, &reason, "cannot read credentials file");
}

#[test]
fn missing_environment() {
    let e = setup("noenv");
    let f = e.creds(b"alice\ncorrect horse\n");
    let (out, reason) = e.run(Some(&f), &[], &["untrusted_ip"]);
    assert_denied(&out, &reason, "no untrusted_ip");
    // Without auth_failed_reason_file there is nowhere to write a reason:
    // still a clean deny.
    let (out, _) = e.run(Some(&e.creds(b"alice\nwrong\n")), &[], &["auth_failed_reason_file"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn broken_configuration_and_database() {
    let e = setup("db");
    let f = e.creds(b"alice\ncorrect horse\n");
    // A config that does not parse.
    std::fs::write(&e.config, "database = [\n").unwrap();
    let (out, reason) = e.run(Some(&f), &[], &[]);
    assert_denied(&out, &reason, "bad config");
    // A database path that is not a database.
    std::fs::write(&e.config, "database = \"junk.db\"\nserver = \"nl-1\"\n").unwrap();
    std::fs::write(e.dir.join("junk.db"), vec![0x42u8; 8192]).unwrap();
    let (out, reason) = e.run(Some(&f), &[], &[]);
    assert_denied(&out, &reason, "internal error");
    // No database at all.
    std::fs::write(&e.config, "database = \"missing.db\"\nserver = \"nl-1\"\n").unwrap();
    let (out, reason) = e.run(Some(&f), &[], &[]);
    assert_denied(&out, &reason, "run `tollgate init`");
}

#[test]
fn unreadable_database() {
    // Root reads everything: run the hook as nobody, as OpenVPN does.
    if unsafe { libc_geteuid() } != 0 {
        eprintln!("skipped: needs root to switch to nobody");
        return;
    }
    let e = setup("perm");
    let f = e.creds(b"alice\ncorrect horse\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&e.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&e.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(e.dir.join("t.db"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_auth-verify"))
        .env_clear()
        .env("untrusted_ip", "192.0.2.2")
        .arg("--config")
        .arg(&e.config)
        .arg(&f)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("DENY") && err.contains("internal error"), "{err}");
}

#[test]
fn locked_database_is_waited_for_then_denied() {
    let e = setup("lock");
    let f = e.creds(b"alice\ncorrect horse\n");
    let cfg = Config::from_file(&e.config).unwrap();
    let holder = rusqlite_conn(&cfg);
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let t = std::time::Instant::now();
    let (out, reason) = e.run(Some(&f), &[], &[]);
    assert_denied(&out, &reason, "database unavailable: database is locked");
    assert_eq!(reason, "service unavailable, try again later");
    assert!(t.elapsed() >= std::time::Duration::from_millis(900), "the hook must wait on the busy timeout");
    holder.execute_batch("ROLLBACK").unwrap();
    // Once the lock is gone the same login goes through.
    let (out, _) = e.run(Some(&f), &[], &[]);
    assert_eq!(out.status.code(), Some(0));
}

/// A PostgreSQL store that does not answer: the login is refused at once
/// with a reason to try again, never accepted, and the log says why.
#[test]
fn unreachable_postgresql_is_a_refusal_to_retry() {
    let e = setup("pgdown");
    let empty = e.dir.join("no-server-here");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(
        &e.config,
        format!("database = \"postgresql://tollgate@/tollgate?host={}\"\nserver = \"nl-1\"\n", empty.display()),
    )
    .unwrap();
    let (out, reason) = e.run(Some(&e.creds(b"alice\ncorrect horse\n")), &[], &[]);
    assert_denied(&out, &reason, "database unavailable: PostgreSQL unreachable");
    assert_eq!(reason, "service unavailable, try again later");
}

fn rusqlite_conn(cfg: &Config) -> rusqlite::Connection {
    rusqlite::Connection::open(cfg.database.sqlite_path().unwrap()).unwrap()
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

#[test]
fn lockout_then_unlock() {
    let e = setup_with("lockout", "[lockout]\nmax_failures = 3\n");
    for _ in 0..3 {
        let (out, _) = e.run(Some(&e.creds(b"alice\nwrong\n")), &[], &[]);
        assert_eq!(out.status.code(), Some(1));
    }
    let (out, reason) = e.run(Some(&e.creds(b"alice\ncorrect horse\n")), &[], &[]);
    assert_denied(&out, &reason, "locked out until");
    let cfg = Config::from_file(&e.config).unwrap();
    rusqlite_conn(&cfg).execute("UPDATE users SET locked_until = NULL", []).unwrap();
    let (out, _) = e.run(Some(&e.creds(b"alice\ncorrect horse\n")), &[], &[]);
    assert_eq!(out.status.code(), Some(0));
}

/// While an account is locked, the right password and a wrong one get the
/// same exit and client reason (the lock is no password oracle), the reason
/// is the one unknown users get, and the wrong ones keep counting.
#[test]
fn a_locked_account_answers_every_password_alike() {
    let e = setup_with("lockoracle", "[lockout]\nmax_failures = 3\n");
    for _ in 0..3 {
        e.run(Some(&e.creds(b"alice\nwrong\n")), &[], &[]);
    }
    let cfg = Config::from_file(&e.config).unwrap();
    let c = rusqlite_conn(&cfg);
    let until: i64 = c.query_row("SELECT locked_until FROM users", [], |r| r.get(0)).unwrap();
    let (right, right_reason) = e.run(Some(&e.creds(b"alice\ncorrect horse\n")), &[], &[]);
    let (wrong, wrong_reason) = e.run(Some(&e.creds(b"alice\nwrong\n")), &[], &[]);
    let (unknown, unknown_reason) = e.run(Some(&e.creds(b"mallory\nwrong\n")), &[], &[]);
    assert_eq!(right.status.code(), wrong.status.code());
    assert_eq!(right_reason, wrong_reason);
    assert_eq!(right_reason, unknown_reason, "a lock does not tell that the account exists");
    assert_eq!(unknown.status.code(), Some(1));
    // Two more wrong passwords reach the threshold again: the lock is
    // re-armed from now, so guessing on during a lock gains nothing.
    let failed: i64 = c.query_row("SELECT failed_count FROM users", [], |r| r.get(0)).unwrap();
    assert_eq!(failed, 1, "a failure during the lock counts");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    e.run(Some(&e.creds(b"alice\nwrong\n")), &[], &[]);
    e.run(Some(&e.creds(b"alice\nwrong\n")), &[], &[]);
    let later: i64 = c.query_row("SELECT locked_until FROM users", [], |r| r.get(0)).unwrap();
    assert!(later > until, "the lock is re-armed: {later} vs {until}");
}

/// After the admin raises the argon2 cost, a user whose hash has the old,
/// cheaper cost must answer in about the time an unknown name does.
#[test]
fn old_hashes_cost_what_unknown_users_cost() {
    // alice's hash is FAST (256 KiB, one pass); the configured cost is 256 times that.
    let e = common::env(
        "hooktest",
        "cost",
        "[argon2]\nmemory_kib = 32768\niterations = 2\n[lockout]\nmax_failures = 0",
        &common::alice(),
    );
    let time = |creds: &[u8]| {
        let f = e.creds(creds);
        let t = std::time::Instant::now();
        let (out, _) = e.run(Some(&f), &[], &[]);
        assert_eq!(out.status.code(), Some(1));
        t.elapsed().as_secs_f64()
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        known.push(time(b"alice\nwrong horse\n"));
        unknown.push(time(b"mallory\nwrong horse\n"));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratio = median(&mut known) / median(&mut unknown);
    // Before padding this was about 0.05 (a 256 KiB hash against 64 MiB of work).
    assert!((0.6..1.6).contains(&ratio), "known/unknown time ratio {ratio:.2} (known {known:?}, unknown {unknown:?})");
}

/// A second factor whose stored secret cannot be decoded must not turn
/// into a password-only login.
#[test]
fn an_undecodable_totp_secret_fails_closed() {
    let e = setup("badtotp");
    let cfg = Config::from_file(&e.config).unwrap();
    rusqlite_conn(&cfg)
        .execute("UPDATE users SET totp_secret = '!!not base32!!', totp_confirmed = 1 WHERE name = 'alice'", [])
        .unwrap();
    let (out, reason) = e.run(Some(&e.creds(b"alice\ncorrect horse\n")), &[], &[]);
    assert_denied(&out, &reason, "second-factor secret cannot be decoded");
    // A wrong password still reads as one.
    let (out, reason) = e.run(Some(&e.creds(b"alice\nwrong\n")), &[], &[]);
    assert_denied(&out, &reason, "wrong password");
}

/// Token reauths (auth-gen-token … external-auth): only a token OpenVPN
/// calls Authenticated passes; the user's own open tunnel does not count
/// against a connection limit of one; device binding still applies.
#[test]
fn token_reauths_and_the_connection_limit() {
    let e = setup("token");
    let cfg = Config::from_file(&e.config).unwrap();
    let c = rusqlite_conn(&cfg);
    c.execute_batch(
        "INSERT INTO plans (name, max_connections, created_at) VALUES ('one', 1, 0);
         UPDATE users SET plan_id = 1;
         INSERT INTO sessions (user_id, server_id, connected_at, real_ip, real_port) VALUES (1, 1, 1000, '192.0.2.2', 40000);",
    )
    .unwrap();
    let token = |state: &[u8], port: &[u8]| {
        e.run(Some(&e.creds(b"alice\nSESS_ID_AT_opaque\n")), &[("session_state", state), ("untrusted_port", port)], &[])
    };
    // The renegotiation of the open tunnel (same address and port).
    let (out, _) = token(b"Authenticated", b"40000");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // A password renegotiation of the same tunnel (no auth-gen-token).
    let (out, _) = e.run(Some(&e.creds(b"alice\ncorrect horse\n")), &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // Another tunnel of the same user is over the limit.
    let (out, reason) = e.run(Some(&e.creds(b"alice\ncorrect horse\n")), &[("untrusted_port", b"40001")], &[]);
    assert_denied(&out, &reason, "1 open sessions, plan allows 1");
    // Expired, Invalid or anything else: a full login, even from the tunnel's own address.
    for st in [&b"Expired"[..], b"Invalid", b"ExpiredEmptyUser", b"Bogus"] {
        let (out, reason) = token(st, b"40000");
        assert_denied(&out, &reason, "session token not accepted");
    }
    // Sessions of a previous OpenVPN process do not count.
    let (out, _) = e.run(
        Some(&e.creds(b"alice\ncorrect horse\n")),
        &[("untrusted_port", b"40001"), ("daemon_start_time", b"2000")],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // Device binding holds for token reauths too.
    c.execute_batch("UPDATE users SET device_binding = 'manual'").unwrap();
    let (out, reason) = e.run(
        Some(&e.creds(b"alice\nSESS_ID_AT_opaque\n")),
        &[("session_state", b"Authenticated"), ("untrusted_port", b"40000"), ("IV_HWADDR", b"02:00:00:00:00:09")],
        &[],
    );
    assert_denied(&out, &reason, "device 02:00:00:00:00:09 not approved");
}

#[test]
fn malformed_and_foreign_challenge_responses() {
    let e = setup("crv1");
    let cfg = Config::from_file(&e.config).unwrap();
    let c = rusqlite_conn(&cfg);
    let h = password::hash("correct horse", FAST).unwrap();
    c.execute_batch(&format!(
        "UPDATE users SET totp_secret = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', totp_confirmed = 1 WHERE name = 'alice';
         INSERT INTO users (name, password_hash, all_servers, created_at, updated_at) VALUES ('bob', '{h}', 1, 0, 0);
         INSERT INTO challenges (state_id, user_id, username, ip, expires_at) VALUES
           ('00000000000000000000000000000001', 1, 'alice', '192.0.2.2', 4000000000),
           ('00000000000000000000000000000002', 2, 'bob', '192.0.2.2', 4000000000),
           ('00000000000000000000000000000003', 1, 'alice', '192.0.2.2', 1000),
           ('00000000000000000000000000000004', 1, 'alice', '198.51.100.7', 4000000000);"
    ))
    .unwrap();
    let cases: [(&[u8], &str); 9] = [
        (b"alice\nSCRV1:!!notbase64:MTIzNDU2\n", "SCRV1 password is not base64"),
        (b"alice\nSCRV1:Y29ycmVjdCBob3JzZQ==\n", "exactly two base64 parts"),
        (b"alice\nSCRV1:Y29ycmVjdCBob3JzZQ==:MTIz:x\n", "exactly two base64 parts"),
        (b"alice\nCRV1::nothex::123456\n", "CRV1 state is not one of ours"),
        (b"alice\nCRV1::00000000000000000000000000000001\n", "CRV1::<state>::<response>"),
        (b"alice\nCRV1::0000000000000000000000000000abcd::123456\n", "unknown or already used state"),
        (b"alice\nCRV1::00000000000000000000000000000002::123456\n", "state belongs to another user"),
        (b"alice\nCRV1::00000000000000000000000000000003::123456\n", "state expired"),
        (b"alice\nCRV1::00000000000000000000000000000004::123456\n", "issued to another address"),
    ];
    for (content, why) in cases {
        let (out, reason) = e.run(Some(&e.creds(content)), &[], &[]);
        assert_denied(&out, &reason, why);
    }
    // States are single use: state 1 was consumed by nobody yet; a wrong
    // code uses it up, and the right one afterwards finds it gone.
    let (out, reason) = e.run(Some(&e.creds(b"alice\nCRV1::00000000000000000000000000000001::000000\n")), &[], &[]);
    assert_denied(&out, &reason, "wrong or reused authenticator code");
    assert_eq!(reason, "wrong authenticator code");
    let (out, reason) = e.run(Some(&e.creds(b"alice\nCRV1::00000000000000000000000000000001::000000\n")), &[], &[]);
    assert_denied(&out, &reason, "unknown or already used state");
    // A right password without a code gets a CRV1 challenge (auto mode).
    let (out, reason) = e.run(Some(&e.creds(b"alice\ncorrect horse\n")), &[], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(reason.starts_with("CRV1:R,E:") && reason.ends_with(":YWxpY2U=:Enter your authenticator code"), "{reason}");
    // ... but a wrong one gets nothing that tells it the account has a second factor.
    let (out, reason) = e.run(Some(&e.creds(b"alice\nwrong horse\n")), &[], &[]);
    assert_denied(&out, &reason, "wrong password");
    assert_eq!(reason, "invalid username or password");
}

#[test]
fn device_binding_auto_and_manual() {
    let e = setup("devices");
    let cfg = Config::from_file(&e.config).unwrap();
    let c = rusqlite_conn(&cfg);
    c.execute_batch("UPDATE users SET device_binding = 'auto', max_devices = 1 WHERE name = 'alice'").unwrap();
    let devices = |c: &rusqlite::Connection| -> Vec<(String, bool)> {
        let mut st = c.prepare("SELECT hwaddr, approved FROM devices ORDER BY id").unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(|x| x.unwrap()).collect()
    };
    let ok = b"alice\ncorrect horse\n";
    // A wrong password with a new id registers nothing.
    let (out, _) = e.run(Some(&e.creds(b"alice\nwrong\n")), &[("IV_HWADDR", b"aa:bb:cc:dd:ee:01")], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(devices(&c).is_empty(), "a wrong password must not claim a slot");
    // No hardware id: refused, and the log says what the profile needs.
    let (out, reason) = e.run(Some(&e.creds(ok)), &[], &[]);
    assert_denied(&out, &reason, "push-peer-info");
    // The first id registers.
    let (out, _) = e.run(Some(&e.creds(ok)), &[("IV_HWADDR", b"AA-BB-CC-DD-EE-FF")], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(devices(&c), vec![("aa:bb:cc:dd:ee:ff".to_string(), true)]);
    // The same id in another notation is accepted.
    let (out, _) = e.run(Some(&e.creds(ok)), &[("IV_HWADDR", b"aabbccddeeff")], &[]);
    assert_eq!(out.status.code(), Some(0));
    // A second id is refused.
    let (out, reason) = e.run(Some(&e.creds(ok)), &[("IV_HWADDR", b"11:22:33:44:55:66")], &[]);
    assert_denied(&out, &reason, "already registered");
    assert!(reason.contains("device limit"), "{reason}");
    // Freeing the slot (what `tollgate device reset` does) lets it in.
    c.execute("DELETE FROM devices", []).unwrap();
    let (out, _) = e.run(Some(&e.creds(ok)), &[("IV_HWADDR", b"11:22:33:44:55:66")], &[]);
    assert_eq!(out.status.code(), Some(0));

    // Manual mode: refused until approved; the attempt is recorded as pending.
    c.execute_batch("UPDATE users SET device_binding = 'manual'; DELETE FROM devices;").unwrap();
    let (out, reason) = e.run(Some(&e.creds(ok)), &[("IV_HWADDR", b"aa:bb:cc:dd:ee:ff")], &[]);
    assert_denied(&out, &reason, "not approved");
    assert_eq!(devices(&c), vec![("aa:bb:cc:dd:ee:ff".to_string(), false)]);
    c.execute("UPDATE devices SET approved = 1", []).unwrap();
    let (out, _) = e.run(Some(&e.creds(ok)), &[("IV_HWADDR", b"aa:bb:cc:dd:ee:ff")], &[]);
    assert_eq!(out.status.code(), Some(0));
    // A configured UV_ variable instead of IV_HWADDR (seed 001's setenv UV_CLIENT_MAC).
    std::fs::write(
        &e.config,
        "database = \"t.db\"\nserver = \"nl-1\"\n[argon2]\nmemory_kib = 256\niterations = 1\n[devices]\nsource = \"UV_CLIENT_MAC\"\n",
    )
    .unwrap();
    let (out, _) =
        e.run(Some(&e.creds(ok)), &[("UV_CLIENT_MAC", b"AA:BB:CC:DD:EE:FF"), ("IV_HWADDR", b"00:00:00:00:00:01")], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn static_challenge_code_is_single_use() {
    use tollgate_core::totp;
    let e = setup("replay");
    let cfg = Config::from_file(&e.config).unwrap();
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    rusqlite_conn(&cfg)
        .execute("UPDATE users SET totp_secret = ?1, totp_confirmed = 1 WHERE name = 'alice'", [secret])
        .unwrap();
    let key = totp::decode_secret(secret).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    // The code of the current step; accepted even if a step boundary passes
    // before the hook runs (one step of skew).
    let code = totp::code_at(&key, totp::step_of(now));
    let b64 = |s: &str| data_encoding::BASE64.encode(s.as_bytes());
    let line = format!("alice\nSCRV1:{}:{}\n", b64("correct horse"), b64(&code));
    let (out, _) = e.run(Some(&e.creds(line.as_bytes())), &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let (out, reason) = e.run(Some(&e.creds(line.as_bytes())), &[], &[]);
    assert_denied(&out, &reason, "wrong or reused authenticator code");
    assert_eq!(reason, "invalid username or password", "a replay reads like a wrong password");
}

/// One address guessing across names is blocked ([lockout] per_source)
/// before it can lock out every account it names; other addresses, and the
/// accounts themselves, are unaffected.
#[test]
fn one_address_cannot_lock_out_every_account() {
    let e = setup_with("persource", "[lockout]\nmax_failures = 3\nper_source = 4\n");
    let cfg = Config::from_file(&e.config).unwrap();
    let c = rusqlite_conn(&cfg);
    let h = password::hash("correct horse", FAST).unwrap();
    c.execute(
        "INSERT INTO users (name, password_hash, all_servers, created_at, updated_at) VALUES ('bob', ?1, 1, 0, 0)",
        [&h],
    )
    .unwrap();
    let from = |ip: &'static [u8], creds: &[u8]| e.run(Some(&e.creds(creds)), &[("untrusted_ip", ip)], &[]);
    for creds in [&b"alice\nwrong\n"[..], b"bob\nwrong\n", b"nobody\nwrong\n", b"alice\nwrong\n"] {
        assert_eq!(from(b"192.0.2.9", creds).0.status.code(), Some(1));
    }
    // The address is blocked now: even the right password is refused, with
    // the same answer a wrong one gets, and its guesses spare the accounts.
    let (out, reason) = from(b"192.0.2.9", b"bob\ncorrect horse\n");
    assert_denied(&out, &reason, "address 192.0.2.9 blocked until");
    assert_eq!(reason, "invalid username or password");
    for _ in 0..5 {
        from(b"192.0.2.9", b"alice\nwrong\n");
    }
    let failed: i64 = c.query_row("SELECT failed_count FROM users WHERE name = 'alice'", [], |r| r.get(0)).unwrap();
    let locked: Option<i64> =
        c.query_row("SELECT locked_until FROM users WHERE name = 'alice'", [], |r| r.get(0)).unwrap();
    assert_eq!((failed, locked), (2, None), "alice was not locked out by the blocked address");
    // Alice from her own address gets in.
    let (out, _) = from(b"192.0.2.2", b"alice\ncorrect horse\n");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}
