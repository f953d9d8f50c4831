//! One language across the admin CLI: sizes read as typed, one grammar for
//! sizes and durations, one zero rule, RFC 3339 in JSON, listings that show
//! what the hooks will decide, warnings on input that is accepted but odd.
mod common;
use common::{env, err};
use serde_json::Value;

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", out(o)))
}

#[test]
fn sizes_and_durations_read_as_typed() {
    let e = env("astyped", "");
    let o = e.tollgate(&["plan", "add", "m", "--quota", "5MB", "--max-session", "8h", "--expires-after", "30d"], "");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let o = e.tollgate(&["plan", "add", "g", "--quota", "5 gib", "--max-session", "1h 30m"], "");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let list = out(&e.tollgate(&["plan", "list"], ""));
    let row = |name: &str| list.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap().to_string();
    let m = row("m");
    assert!(m.contains("5 MB") && m.contains("8h") && m.contains("30d"), "{list}");
    assert!(row("g").contains("5 GiB") && row("g").contains("1h30m"), "{list}");
    let show = out(&e.tollgate(&["plan", "show", "m"], ""));
    assert!(show.contains("5 MB"), "{show}");
    // Usage beside a decimal quota reads in decimal units.
    e.tollgate(&["plan", "add", "t", "--quota", "5MB", "--period", "total"], "");
    e.tollgate(&["user", "set", "alice", "--plan", "t"], "");
    e.query_exec("INSERT INTO usage (user_id, period_start, bytes_in, bytes_out) VALUES (1, 0, 3000000, 100000)");
    let usage = out(&e.tollgate(&["usage"], ""));
    assert!(usage.contains("3.1 MB") && usage.contains("5 MB (62%)"), "{usage}");
}

#[test]
fn one_grammar_for_sizes_and_durations() {
    let e = env("grammar", "");
    for (flag, bad, why) in [
        ("--quota", "5", "has no unit"),
        ("--max-session", "3600", "has no unit"),
        ("--max-session", "1h1h", "each unit once"),
        ("--max-session", "30m1h", "each unit once"),
        ("--quota", "5 parsecs", "unknown unit"),
    ] {
        let o = e.tollgate(&["plan", "add", "x", flag, bad], "");
        assert_eq!(o.status.code(), Some(1), "{flag} {bad}");
        assert!(err(&o).contains(why), "{flag} {bad}: {}", err(&o));
    }
    assert_eq!(e.query("SELECT count(*) FROM plans"), "Integer(0)");
    let o = e.tollgate(&["plan", "add", "x", "--quota", "1.5GB", "--max-session", "1H30M"], "");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(e.query("SELECT quota_bytes FROM plans"), "Integer(1500000000)");
    assert_eq!(e.query("SELECT max_session_secs FROM plans"), "Integer(5400)");
}

#[test]
fn zero_is_never_a_limit() {
    let e = env("zero", "");
    for args in [
        &["plan", "add", "x", "--quota", "0GB"][..],
        &["plan", "add", "x", "--max-connections", "0"],
        &["plan", "add", "x", "--max-session", "0s"],
        &["plan", "add", "x", "--expires-after", "0d"],
        &["user", "set", "alice", "--max-devices", "0"],
    ] {
        let o = e.tollgate(args, "");
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(err(&o).contains("a limit of 0 would refuse every login: use `none`"), "{args:?}: {}", err(&o));
    }
    assert_eq!(e.query("SELECT count(*) FROM plans"), "Integer(0)");
    assert_eq!(e.query("SELECT max_devices FROM users"), "Null");
}

#[test]
fn json_times_are_rfc3339_and_expiry_takes_a_duration() {
    let e = env("rfc3339", "");
    let o = e.tollgate(&["user", "set", "alice", "--expires", "30d"], "");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let at: i64 =
        e.query("SELECT expires_at FROM users").trim_start_matches("Integer(").trim_end_matches(')').parse().unwrap();
    assert!((at - now - 30 * 86400).abs() < 60, "{at} vs {now}");
    e.tollgate(&["user", "set", "alice", "--expires", "2027-01-31"], "");
    let u = json(&e.tollgate(&["user", "show", "alice", "--json"], ""));
    // The instant it expires, in JSON; the last valid day, in the table.
    assert_eq!(u["expires_at"], "2027-02-01T00:00:00Z");
    assert_eq!(u["created_at"], "1970-01-01T00:00:00Z");
    assert!(out(&e.tollgate(&["user", "show", "alice"], "")).contains("2027-01-31"));
    let s = json(&e.tollgate(&["server", "show", "nl-1", "--json"], ""));
    assert_eq!(s["created_at"], "1970-01-01T00:00:00Z");
}

#[test]
fn listings_show_what_the_hooks_will_decide() {
    let e = env(
        "states",
        "INSERT INTO plans (name, expires_after_secs, created_at) VALUES ('trial', 86400, 0);
         INSERT INTO users (name, password_hash, created_at, updated_at, expires_at) VALUES ('old', 'x', 0, 0, 1000);
         INSERT INTO users (name, password_hash, created_at, updated_at, plan_id, plan_since) VALUES ('triallist', 'x', 0, 0, 1, 0);
         INSERT INTO users (name, password_hash, created_at, updated_at, locked_until) VALUES ('locked', 'x', 0, 0, 99999999999);
         INSERT INTO users (name, password_hash, created_at, updated_at, enabled) VALUES ('off', 'x', 0, 0, 0);
         -- Three failures long ago: outside the window the next one starts again at 1.
         INSERT INTO users (name, password_hash, created_at, updated_at, failed_count, failed_since) VALUES ('stale', 'x', 0, 0, 3, 1000);",
    );
    let v = json(&e.tollgate(&["user", "list", "--json"], ""));
    let state = |n: &str| v.as_array().unwrap().iter().find(|u| u["name"] == n).unwrap().clone();
    assert_eq!(state("alice")["state"], "enabled");
    assert_eq!(state("old")["state"], "expired");
    assert_eq!(state("triallist")["state"], "plan expired");
    assert_eq!(state("triallist")["plan_expires_at"], "1970-01-02T00:00:00Z");
    assert_eq!(state("locked")["state"], "locked");
    assert_eq!(state("off")["state"], "disabled");
    assert_eq!(state("stale")["failed_count"], 0);
    let table = out(&e.tollgate(&["user", "list"], ""));
    let head = table.lines().next().unwrap();
    assert!(head.contains("EXPIRES") && head.contains("PLAN-EXPIRES") && head.contains("FAILED"), "{table}");
    assert!(table
        .lines()
        .any(|l| l.starts_with("triallist") && l.contains("plan expired") && l.contains("1970-01-01")));
    // Booleans read alike in lists and in show.
    let show = out(&e.tollgate(&["server", "show", "nl-1"], ""));
    assert!(show.lines().any(|l| l.starts_with("client cert:") && l.ends_with(" no")), "{show}");
    let list = out(&e.tollgate(&["server", "list"], ""));
    assert!(list.lines().nth(1).unwrap().trim_end().ends_with("no"), "{list}");
}

#[test]
fn odd_input_warns_and_malformed_input_is_refused() {
    let e = env("warnings", "");
    let o = e.tollgate(&["user", "set", "alice", "--expires", "2020-01-01"], "");
    assert_eq!(o.status.code(), Some(0));
    assert!(err(&o).contains("warning: alice's expiry 2020-01-01 is in the past"), "{}", err(&o));
    let o = e.tollgate(&["device", "add", "alice", "aa:bb:cc:dd:ee:ff"], "");
    assert_eq!(o.status.code(), Some(0));
    assert!(err(&o).contains("warning: device binding is off for alice"), "{}", err(&o));
    let o = e.tollgate(&["device", "add", "alice", "aa:bb:cc:dd:ee"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("has 5 octets"), "{}", err(&o));
    let o = e.tollgate(&["user", "set", "alice", "--device-binding", "manual"], "");
    assert_eq!(o.status.code(), Some(0));
    let o = e.tollgate(&["device", "add", "alice", "AA-BB-CC-DD-EE-01"], "");
    assert_eq!((o.status.code(), err(&o)), (Some(0), String::new()));
    // group add has nothing to take away.
    for flag in ["--revoke", "--clear-push"] {
        let o = e.tollgate(&["group", "add", "g", flag, "nl-1"], "");
        assert_eq!(o.status.code(), Some(2), "{flag}: {}", err(&o));
    }
}

#[test]
fn server_set_changes_a_server_and_keeps_its_grants() {
    let e = env("serverset", "INSERT INTO grants (server_id, user_id) VALUES (1, 1);");
    let o = e.tollgate(&["server", "set", "nl-1", "--host", "vpn2.example.org", "--port", "443", "--proto", "tcp"], "");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let s = json(&e.tollgate(&["server", "show", "nl-1", "--json"], ""));
    assert_eq!(
        (s["host"].as_str(), s["port"].as_i64(), s["proto"].as_str()),
        (Some("vpn2.example.org"), Some(443), Some("tcp"))
    );
    assert_eq!(e.query("SELECT count(*) FROM grants"), "Integer(1)");
    // All or nothing: a bad value changes nothing.
    let o = e.tollgate(&["server", "set", "nl-1", "--host", "vpn3.example.org", "--key-direction", "1"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("tls-auth only"), "{}", err(&o));
    assert_eq!(e.query("SELECT host FROM servers"), "Text(\"vpn2.example.org\")");
    let o = e.tollgate(&["server", "set", "nl-1", "--client-cert"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("--client-cert needs --pki-dir"), "{}", err(&o));
    let o = e.tollgate(&["server", "set", "nope", "--port", "1"], "");
    assert!(err(&o).contains("no such server: nope"), "{}", err(&o));
}
