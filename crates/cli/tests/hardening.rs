//! The admin CLI against a temporary database, as an admin runs it: sessions
//! that nothing else would close, a server deleted under open sessions, a
//! second factor replaced, and a database directory with planted links.

mod common;
use common::{env, err};

const OPEN2: &str = "INSERT INTO sessions (user_id, server_id, connected_at, real_ip, real_port) VALUES (1, 1, 1000, '192.0.2.2', 1), (1, 1, 1001, '192.0.2.2', 2);";

#[test]
fn server_del_refuses_open_sessions_unless_forced() {
    let e = env("serverdel", OPEN2);
    let o = e.tollgate(&["server", "del", "nl-1"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("2 open session(s)"), "{}", err(&o));
    assert_eq!(e.query("SELECT count(*) FROM servers"), "Integer(1)", "nothing deleted");
    let o = e.tollgate(&["server", "del", "nl-1", "--force"], "");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(e.query("SELECT count(*) FROM sessions WHERE closed_at IS NULL"), "Integer(0)");
    assert_eq!(e.query("SELECT group_concat(DISTINCT close_reason) FROM sessions"), "Text(\"server deleted\")");
}

#[test]
fn sessions_close_by_hand_is_all_or_nothing() {
    let e = env("sessclose", OPEN2);
    let o = e.tollgate(&["sessions", "close", "1", "99"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("no session 99"), "{}", err(&o));
    assert_eq!(e.query("SELECT count(*) FROM sessions WHERE closed_at IS NULL"), "Integer(2)");
    let o = e.tollgate(&["sessions", "close", "1", "--reason", "server box died"], "");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(e.query("SELECT close_reason FROM sessions WHERE id = 1"), "Text(\"server box died\")");
    let o = e.tollgate(&["sessions", "close", "1"], "");
    assert!(err(&o).contains("already closed"), "{}", err(&o));
    // The listing still works beside the subcommand.
    let o = e.tollgate(&["sessions", "--open", "--json"], "");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"id\": 2"));
}

#[test]
fn replacing_a_second_factor_keeps_the_old_one_until_confirmed() {
    let e = env("mfaforce", "UPDATE users SET totp_secret = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', totp_confirmed = 1;");
    let o = e.tollgate(&["mfa", "enroll", "alice", "--force"], "000000\n");
    assert_eq!(o.status.code(), Some(1), "a wrong first code fails");
    assert!(err(&o).contains("keeps the old second factor"), "{}", err(&o));
    assert_eq!(e.query("SELECT totp_secret FROM users"), "Text(\"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\")");
    assert_eq!(e.query("SELECT totp_confirmed FROM users"), "Integer(1)");
}

/// The OpenVPN user owns the database directory. Whatever it plants there,
/// a root `tollgate` command must not write into, or chown, another file.
#[test]
fn planted_links_in_the_database_directory_are_refused() {
    use std::os::unix::fs::MetadataExt;
    let e = env("links", "");
    let victim = e.dir.join("victim.db");
    std::fs::write(&victim, b"not tollgate's").unwrap();
    let before = std::fs::metadata(&victim).unwrap();
    std::fs::rename(e.dir.join("t.db"), e.dir.join("aside.db")).unwrap();
    std::os::unix::fs::symlink(&victim, e.dir.join("t.db")).unwrap();
    // Give the directory another owner, as install does (nobody), when root.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        std::os::unix::fs::chown(&e.dir, Some(65534), Some(65534)).unwrap();
    }
    for args in [&["user", "list"][..], &["init"]] {
        let o = e.tollgate(args, "");
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(err(&o).contains("symbolic link"), "{}", err(&o));
    }
    let after = std::fs::metadata(&victim).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"not tollgate's");
    assert_eq!((after.uid(), after.gid(), after.mode()), (before.uid(), before.gid(), before.mode()));
    // A hard link to a file that is not the database's is refused too.
    std::fs::remove_file(e.dir.join("t.db")).unwrap();
    std::fs::rename(e.dir.join("aside.db"), e.dir.join("t.db")).unwrap();
    std::fs::hard_link(&victim, e.dir.join("t.db-shm")).unwrap();
    let o = e.tollgate(&["user", "list"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("t.db-shm") && err(&o).contains("hard link"), "{}", err(&o));
    assert_eq!(std::fs::metadata(&victim).unwrap().uid(), before.uid());
}

/// A sweep for a server the database does not know must say so, not
/// succeed having done nothing (or cut every client as "not granted").
#[test]
fn sweep_refuses_an_unknown_server() {
    let e = env("sweepserver", "");
    let status = e.dir.join("status.log");
    std::fs::write(&status, "HEADER,CLIENT_LIST,Common Name,Real Address\nEND\n").unwrap();
    let o = e.tollgate(&["sweep", "--server", "xx-9", "--status", status.to_str().unwrap()], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("no such server: xx-9"), "{}", err(&o));
    let o = e.tollgate(&["sweep", "--server", "nl-1", "--status", status.to_str().unwrap()], "");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
}

/// Auth methods on users and groups, and what `user show` says of them.
#[test]
fn auth_methods_and_where_they_come_from() {
    let e = env("methods", "INSERT INTO groups (name, auth_method, created_at) VALUES ('contractors', 'program', 0);");
    let out = e.tollgate(&["user", "add", "bob", "--group", "contractors"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(e.query("SELECT password_hash FROM users WHERE name = 'bob'"), "Text(\"!\")", "no password asked");
    let show = |u: &str| String::from_utf8_lossy(&e.tollgate(&["user", "show", u], "").stdout).into_owned();
    assert!(show("bob").contains("program (from group contractors)"), "{}", show("bob"));
    assert!(show("alice").contains("local (the config's [auth] method)"), "{}", show("alice"));
    assert!(e.tollgate(&["user", "set", "bob", "--auth", "local"], "").status.success());
    assert!(show("bob").contains("local (set on the user)"), "{}", show("bob"));
    let out = e.tollgate(&["user", "set", "bob", "--auth", "kerberos"], "");
    assert!(!out.status.success(), "an unknown method is refused");
    assert!(e.tollgate(&["user", "set", "bob", "--auth", "default"], "").status.success());
    assert!(show("bob").contains("program (from group contractors)"));
}

/// As root, test-auth never runs a post-auth program that someone else
/// could have changed.
#[test]
fn test_auth_as_root_refuses_a_program_others_can_change() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (the suite runs as root)");
        return;
    }
    let e = env("trusted", "UPDATE users SET all_servers = 1;");
    let bin = e.dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let prog = bin.join("prog");
    std::fs::write(&prog, "#!/bin/sh\necho '{\"status\":\"SUCCEED\"}'\n").unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&e.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        &e.config,
        format!("database = \"t.db\"\nserver = \"nl-1\"\n[post_auth]\ncommand = [{:?}]\n", prog.display().to_string()),
    )
    .unwrap();
    for (mode, ok) in [(0o755, true), (0o775, false)] {
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = e.tollgate(&["test-auth", "alice", "--password-stdin"], "whatever-pw\n");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.contains("refusing to run post-auth program"), !ok, "mode {mode:o}: {err}");
    }
}
