//! The post-auth program as auth-verify runs it: a real program (shell or
//! Python), the hook in a fresh process with OpenVPN's environment.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};
use tollgate_core::{Config, Store};

mod common;
use common::Env;

/// An environment whose [post_auth] command is `script` (written to the
/// test's directory), with `extra` config.
fn setup(name: &str, script: &str, extra: &str) -> (Env, PathBuf) {
    // Inside the test's own directory (common::env names it so), which
    // goes with the Env.
    let dir = std::env::temp_dir().join(format!("tg-postauth-{name}-{}", std::process::id()));
    let prog = dir.join("prog");
    let toml = format!(
        "busy_timeout = \"1s\"\ndefer = \"never\"\n[argon2]\nmemory_kib = 256\niterations = 1\n[post_auth]\ncommand = [{:?}]\ntimeout = \"2s\"\n{extra}",
        prog.display().to_string()
    );
    let program_user = "INSERT INTO users (name, password_hash, all_servers, auth_method, created_at, updated_at)
                        VALUES ('pat', '!', 1, 'program', 0, 0);
                        INSERT INTO groups (name, push, created_at) VALUES ('staff', 'route 10.7.0.0 255.255.0.0', 0);";
    let e = common::env("postauth", name, &toml, &format!("{}{program_user}", common::alice()));
    assert_eq!(e.dir, dir);
    std::fs::write(&prog, script).unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    (e, prog)
}

fn store(e: &Env) -> Store {
    Store::open_hook(&Config::from_file(&e.config).unwrap()).unwrap()
}

fn log(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_denied(out: &Output, reason: &str, log_has: &str, client: &str) {
    let err = log(out);
    assert_eq!(out.status.code(), Some(1), "exit status; stderr: {err}");
    assert_eq!(err.lines().count(), 1, "exactly one log line, got: {err:?}");
    assert!(err.contains("DENY") && err.contains(log_has), "log {err:?} should mention {log_has:?}");
    assert!(!err.contains("correct horse") && !err.contains("pat-pw"), "a password in the log: {err}");
    assert_eq!(reason, client);
}

#[test]
fn failures_deny_promptly_with_the_cause() {
    let cases = [
        ("sleep 30", "timed out after 2s"),
        ("kill -SEGV $$", "killed by signal 11"),
        ("echo 'nothing to see' >&2; exit 3", "exited with status 3 (stderr: nothing to see)"),
        ("echo hello", "not the expected JSON"),
        (
            "echo '{\"status\":\"SUCCEED\",\"group\":\"nosuch\",\"save\":{\"x\":1}}'",
            "group nosuch, which does not exist",
        ),
        ("head -c 70000 /dev/zero | tr '\\0' x", "over 64 KiB"),
    ];
    for (i, (body, cause)) in cases.iter().enumerate() {
        let (e, _) = setup(&format!("fail{i}"), &format!("#!/bin/sh\ncat >/dev/null\n{body}\n"), "");
        for creds in [&b"alice\ncorrect horse\n"[..], b"pat\npat-pw\n"] {
            let start = Instant::now();
            let (out, reason) = e.run(Some(&e.creds(creds)), &[], &[]);
            assert_denied(&out, &reason, cause, "login could not be completed, try again later");
            assert!(log(&out).contains("post-auth program failed"), "{}", log(&out));
            assert!(start.elapsed() < Duration::from_secs(6), "{body}: took {:?}", start.elapsed());
        }
        // Nothing was applied: no saved data, no assignment, no lockout.
        let s = store(&e);
        let (saved, failed): (i64, i64) = s
            .conn
            .query_row("SELECT count(saved), sum(failed_count) FROM users", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((saved, failed), (0, 0), "{body}");
        let n: i64 = s.conn.query_row("SELECT count(*) FROM assignments", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0);
    }
}

#[test]
fn program_users_are_checked_by_the_program_local_users_never_show_it_a_password() {
    let script = r#"#!/usr/bin/env python3
import json, sys
i = json.load(sys.stdin)
open(sys.argv[0] + ".in", "a").write(json.dumps(i) + "\n")
c = i["authcred"]
if i["info"]["auth_method"] == "program":
    ok = c.get("password") == "pat-pw"
    print(json.dumps({"status": "SUCCEED" if ok else "FAIL", "reason": "checked by test program",
                      "client_reason": None if ok else "wrong PIN or password"}))
else:
    print(json.dumps({"status": i["authret"]["status"]}))
"#;
    let (e, prog) = setup("method", script, "");
    let (out, _) = e.run(Some(&e.creds(b"pat\npat-pw\n")), &[("IV_PLAT", b"linux"), ("UV_X", b"1")], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", log(&out));
    let (out, reason) = e.run(Some(&e.creds(b"pat\nnot-it\n")), &[], &[]);
    assert_denied(
        &out,
        &reason,
        "post-auth program refused the login: checked by test program",
        "wrong PIN or password",
    );
    // A refusal counts toward the lockout, like a wrong password.
    let failed: i64 =
        store(&e).conn.query_row("SELECT failed_count FROM users WHERE name = 'pat'", [], |r| r.get(0)).unwrap();
    assert_eq!(failed, 1);
    let (out, _) = e.run(Some(&e.creds(b"alice\ncorrect horse\n")), &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", log(&out));
    // A wrong local password never reaches the program.
    let (out, reason) = e.run(Some(&e.creds(b"alice\nwrong\n")), &[], &[]);
    assert_denied(&out, &reason, "wrong password", "invalid username or password");

    let inputs: Vec<serde_json::Value> = std::fs::read_to_string(prog.with_extension("in"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(inputs.len(), 3, "two program logins and one local one");
    let first = &inputs[0];
    assert_eq!(first["authcred"]["password"], "pat-pw");
    assert_eq!(first["authcred"]["client_ip_addr"], "192.0.2.2");
    assert_eq!(first["authret"]["status"], "FAIL", "nothing proven yet for a program user");
    assert_eq!(first["attributes"]["client_info"]["IV_PLAT"], "linux");
    assert_eq!(first["attributes"]["client_info"]["UV_X"], "1");
    assert_eq!(first["attributes"]["reauth"], false);
    let local = &inputs[2];
    assert_eq!(local["info"]["auth_method"], "local");
    assert_eq!(local["authret"]["status"], "SUCCEED");
    assert!(local["authcred"].get("password").is_none(), "a local user's password went to the program: {local}");
}

#[test]
fn save_round_trip_and_veto() {
    let script = r#"#!/usr/bin/env python3
import json, sys
i = json.load(sys.stdin)
n = i["info"]["saved"].get("logins", 0) + 1
if n >= 3:
    print(json.dumps({"status": "FAIL", "reason": "third login", "client_reason": "only two logins allowed", "save": {"logins": n}}))
else:
    print(json.dumps({"status": "SUCCEED", "save": {"logins": n, "last_ip": i["authcred"]["client_ip_addr"]}}))
"#;
    let (e, _) = setup("save", script, "");
    for _ in 0..2 {
        let (out, _) = e.run(Some(&e.creds(b"alice\ncorrect horse\n")), &[], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", log(&out));
    }
    let saved: String =
        store(&e).conn.query_row("SELECT saved FROM users WHERE name = 'alice'", [], |r| r.get(0)).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&saved).unwrap(),
        serde_json::json!({"logins": 2, "last_ip": "192.0.2.2"})
    );
    // The third login sees what the first two saved, and vetoes.
    let (out, reason) = e.run(Some(&e.creds(b"alice\ncorrect horse\n")), &[], &[]);
    assert_denied(&out, &reason, "vetoed the login: third login", "only two logins allowed");
    // A veto after a right password is not a password failure.
    let failed: i64 =
        store(&e).conn.query_row("SELECT failed_count FROM users WHERE name = 'alice'", [], |r| r.get(0)).unwrap();
    assert_eq!(failed, 0);
}

#[test]
fn challenge_then_answer() {
    let script = r#"#!/usr/bin/env python3
import json, sys
i = json.load(sys.stdin)
r = i["authcred"].get("static_response")
if r is None:
    print(json.dumps({"status": "SUCCEED", "challenge": {"text": "Favourite colour?", "echo": True}}))
elif r == "blue":
    print(json.dumps({"status": "SUCCEED", "group": "staff", "static_ip": "10.8.0.77"}))
else:
    print(json.dumps({"status": "FAIL", "client_reason": "wrong colour"}))
"#;
    let (e, _) = setup("challenge", script, "");
    let (out, prompt) = e.run(Some(&e.creds(b"alice\ncorrect horse\n")), &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", log(&out));
    assert!(log(&out).contains("CHALLENGE"), "{}", log(&out));
    // CRV1:R,E:<state>:<base64 user>:<text>
    let parts: Vec<&str> = prompt.splitn(5, ':').collect();
    assert_eq!((parts[0], parts[1], parts[3], parts[4]), ("CRV1", "R,E", "YWxpY2U=", "Favourite colour?"), "{prompt}");
    let state = parts[2];
    let (out, reason) = e.run(Some(&e.creds(format!("alice\nCRV1::{state}::red\n").as_bytes())), &[], &[]);
    assert_denied(&out, &reason, "vetoed", "wrong colour");
    // A state is single use: ask again, answer right.
    let (_, prompt) = e.run(Some(&e.creds(b"alice\ncorrect horse\n")), &[], &[]);
    let state = prompt.split(':').nth(2).unwrap().to_string();
    let (out, _) = e.run(Some(&e.creds(format!("alice\nCRV1::{state}::blue\n").as_bytes())), &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", log(&out));
    // The program's group and address wait for this tunnel's client-connect.
    let (group, ip, port): (String, String, i64) = store(&e)
        .conn
        .query_row(
            "SELECT g.name, a.static_ip, a.real_port FROM assignments a JOIN groups g ON g.id = a.group_id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((group.as_str(), ip.as_str(), port), ("staff", "10.8.0.77", 40000));
}

#[test]
fn program_user_with_second_factor_and_standing() {
    let script = "#!/bin/sh\ncat > \"$0.in\"\necho '{\"status\":\"SUCCEED\",\"static_ip\":\"10.8.0.9\"}'\n";
    let (e, prog) = setup("standing", script, "");
    let s = store(&e);
    // A disabled program user: the program (a push, maybe) is not run.
    s.conn.execute_batch("UPDATE users SET enabled = 0 WHERE name = 'pat'").unwrap();
    let (out, reason) = e.run(Some(&e.creds(b"pat\npat-pw\n")), &[], &[]);
    assert_denied(&out, &reason, "account disabled (the password was not checked)", "invalid username or password");
    assert!(!prog.with_extension("in").exists(), "the program ran for a disabled user");
    // With TOTP, the code is asked after the program, and the program's
    // address survives the challenge.
    s.conn
        .execute_batch("UPDATE users SET enabled = 1, totp_secret = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', totp_confirmed = 1 WHERE name = 'pat'")
        .unwrap();
    let (out, prompt) = e.run(Some(&e.creds(b"pat\npat-pw\n")), &[], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(prompt.starts_with("CRV1:R,E:") && prompt.ends_with("Enter your authenticator code"), "{prompt}");
    let state = prompt.split(':').nth(2).unwrap().to_string();
    let key = tollgate_core::totp::decode_secret("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
    let code = tollgate_core::totp::code_at(&key, tollgate_core::totp::step_of(tollgate_core::units::now()));
    let (out, _) = e.run(Some(&e.creds(format!("pat\nCRV1::{state}::{code}\n").as_bytes())), &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", log(&out));
    let ip: String = s.conn.query_row("SELECT static_ip FROM assignments", [], |r| r.get(0)).unwrap();
    assert_eq!(ip, "10.8.0.9");
}
