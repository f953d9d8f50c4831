//! The admin CLI as a new admin meets it: a command that fails changes
//! nothing, values are checked before they are stored, errors name their
//! real cause.

mod common;
use common::{env, err};

#[test]
fn a_failing_plan_command_changes_nothing() {
    let e = env("planatomic", "");
    let o = e.tollgate(&["plan", "add", "w11", "--quota", "5GiB", "--max-session", "1y"], "");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(e.query("SELECT count(*) FROM plans WHERE name = 'w11'"), "Integer(0)", "no half-made plan");
    let o = e.tollgate(&["plan", "add", "w11", "--quota", "5GiB"], "");
    assert_eq!(o.status.code(), Some(0), "the name is still free: {}", err(&o));
    let o = e.tollgate(&["plan", "set", "w11", "--quota", "7GiB", "--max-session", "1y"], "");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(e.query("SELECT quota_bytes FROM plans WHERE name = 'w11'"), format!("Integer({})", 5i64 << 30));
}

#[test]
fn static_addresses_are_usable_and_not_shared() {
    let e =
        env("staticip", "INSERT INTO users (name, password_hash, created_at, updated_at) VALUES ('bob', 'x', 0, 0);");
    for bad in ["0.0.0.0", "255.255.255.255", "224.0.0.1", "127.0.0.1"] {
        let o = e.tollgate(&["user", "set", "alice", "--static-ip", bad], "");
        assert_eq!(o.status.code(), Some(1), "{bad}");
        assert!(err(&o).contains("cannot be a client's address"), "{bad}: {}", err(&o));
    }
    let o = e.tollgate(&["user", "set", "alice", "--static-ip", "10.8.0.50"], "");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    // Setting it again on its owner is fine; on another user it is not.
    assert_eq!(e.tollgate(&["user", "set", "alice", "--static-ip", "10.8.0.50"], "").status.code(), Some(0));
    let o = e.tollgate(&["user", "set", "bob", "--static-ip", "10.8.0.50"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("static IP 10.8.0.50 is already user alice's"), "{}", err(&o));
    let o = e.tollgate(&["user", "add", "carol", "--static-ip", "10.8.0.50", "--auth", "program"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("already user alice's"), "{}", err(&o));
    assert_eq!(e.query("SELECT count(*) FROM users WHERE static_ip = '10.8.0.50'"), "Integer(1)");
}

/// Files for `server add` in the test's directory, and its arguments.
fn server_files(e: &common::Env) -> Vec<String> {
    let (ca, key) = (e.dir.join("ca.crt"), e.dir.join("tc.key"));
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
    std::fs::write(&key, "-----BEGIN OpenVPN Static key V1-----\n00\n-----END OpenVPN Static key V1-----\n").unwrap();
    let mut a: Vec<String> = ["server", "add", "zz", "--host", "vpn.example.org", "--ca"].map(String::from).into();
    a.extend([ca.display().to_string(), "--tls-crypt".into(), key.display().to_string()]);
    a
}

#[test]
fn server_add_says_what_is_wrong() {
    let e = env("serveradd", "");
    let base = server_files(&e);
    let args =
        |extra: &[&str]| -> Vec<String> { base.iter().cloned().chain(extra.iter().map(|s| s.to_string())).collect() };
    let run = |a: Vec<String>| e.tollgate(&a.iter().map(String::as_str).collect::<Vec<_>>(), "");
    let o = run(args(&["--port", "0"]));
    assert_ne!(o.status.code(), Some(0));
    assert!(!err(&o).contains("already exists") && err(&o).contains("--port"), "{}", err(&o));
    assert_eq!(run(args(&[])).status.code(), Some(0));
    let o = run(args(&["--port", "1195"]));
    assert!(err(&o).contains("server zz already exists"), "{}", err(&o));
}

#[test]
fn a_relative_pki_dir_is_stored_absolute() {
    let e = env("pkidir", "");
    let base = server_files(&e);
    std::fs::create_dir_all(e.dir.join("pki/issued")).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .current_dir(&e.dir)
        .args(["--config", e.config.to_str().unwrap()])
        .args(&base)
        .args(["--client-cert", "--pki-dir", "pki"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let want = std::fs::canonicalize(e.dir.join("pki")).unwrap().display().to_string();
    assert_eq!(e.query("SELECT pki_dir FROM servers WHERE name = 'zz'"), format!("Text({want:?})"));
}

#[test]
fn test_auth_has_an_exit_status_per_outcome_and_takes_a_code() {
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    let e =
        env("testauth", &format!("UPDATE users SET all_servers = 1, totp_secret = '{secret}', totp_confirmed = 1;"));
    let o = e.tollgate(&["user", "passwd", "alice", "--password-stdin"], "correct horse battery\n");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let run = |args: &[&str]| {
        e.tollgate(&[&["test-auth", "alice", "--password-stdin"], args].concat(), "correct horse battery\n")
    };
    // The password alone: the second factor is asked for (mode auto).
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(3), "challenge: {}", String::from_utf8_lossy(&o.stdout));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let key = tollgate_core::totp::decode_secret(secret).unwrap();
    let code = tollgate_core::totp::code_at(&key, tollgate_core::totp::step_of(now));
    let o = run(&["--code", &code]);
    assert_eq!(o.status.code(), Some(0), "accept with the code: {}", String::from_utf8_lossy(&o.stdout));
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let o = run(&["--code", wrong]);
    assert_eq!(o.status.code(), Some(4), "deny: {}", String::from_utf8_lossy(&o.stdout));
    // test-auth itself failing is not a deny.
    let o = e.tollgate(&["test-auth", "alice", "--password-stdin", "--server", "nowhere"], "x\n");
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
}

#[test]
fn filters_on_unknown_names_are_errors() {
    let e = env(
        "filters",
        "INSERT INTO auth_events (at, username, server, ip, result, reason) VALUES (1, 'admin', 'nl-1', '192.0.2.9', 'deny', 'unknown user');",
    );
    for args in [
        &["sessions", "--user", "zzz"][..],
        &["sessions", "--server", "zzz"],
        &["usage", "--user", "zzz"],
        &["events", "--user", "zzz"],
    ] {
        let o = e.tollgate(args, "");
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(err(&o).contains("zzz") && err(&o).lines().count() == 1, "{args:?}: {}", err(&o));
    }
    // Known names, and a name only the log knows (someone guessing), list.
    for args in
        [&["sessions", "--user", "alice"][..], &["sessions", "--server", "nl-1"], &["events", "--user", "admin"]]
    {
        let o = e.tollgate(args, "");
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", err(&o));
    }
    let o = e.tollgate(&["events", "--user", "admin", "--json"], "");
    assert!(String::from_utf8_lossy(&o.stdout).contains("unknown user"));
}

#[test]
fn a_group_in_use_is_kept_unless_forced() {
    let e = env(
        "groupdel",
        "INSERT INTO groups (name, created_at) VALUES ('eng', 0), ('empty', 0); UPDATE users SET group_id = 1;",
    );
    let o = e.tollgate(&["group", "del", "eng"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("group eng has 1 member(s)"), "{}", err(&o));
    assert_eq!(e.query("SELECT group_id FROM users WHERE name = 'alice'"), "Integer(1)");
    assert_eq!(e.tollgate(&["group", "del", "empty"], "").status.code(), Some(0));
    assert_eq!(e.tollgate(&["group", "del", "eng", "--force"], "").status.code(), Some(0));
    assert_eq!(e.query("SELECT group_id FROM users WHERE name = 'alice'"), "Null");
}

#[test]
fn command_line_mistakes_are_one_line_and_exit_2() {
    let e = env("usage", "");
    for args in [
        &["plan", "add", "x", "--quot", "5"][..],
        &["user", "add"],
        &["frob"],
        &["plan", "add", "x", "--period", "year"],
    ] {
        let o = e.tollgate(args, "");
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let msg = err(&o);
        assert_eq!(msg.lines().count(), 1, "{args:?}: {msg}");
        assert!(msg.starts_with("tollgate: ") && !msg.contains("error:"), "{msg}");
    }
    let o = e.tollgate(&["plan", "add", "x", "--quot", "5"], "");
    assert!(err(&o).contains("'--quota'"), "the tip is kept: {}", err(&o));
    let o = e.tollgate(&["plan", "add", "x", "--period", "year"], "");
    assert!(err(&o).contains("month, week, day, total"), "the choices are kept: {}", err(&o));
    // A command that fails is exit 1, also one line.
    let o = e.tollgate(&["plan", "show", "nope"], "");
    assert_eq!((o.status.code(), err(&o).lines().count()), (Some(1), 1));
}
