//! `tollgate migrate-store` against a real PostgreSQL server (Debian's,
//! started by tests/pg-server.sh for this test and removed after it): the
//! copy, its report, the config line it prints, and the CLI working on
//! the copy once the config points at it.
mod common;
use common::{env, err};
use std::process::Command;

#[test]
fn an_sqlite_database_moves_to_postgresql_and_the_cli_uses_it() {
    let e = env(
        "migrate",
        "INSERT INTO plans (name, quota_bytes, created_at) VALUES ('std', 1000000000, 0);
         UPDATE users SET plan_id = 1;
         INSERT INTO usage VALUES (1, 0, 1234, 5678);",
    );
    // Outside the test's directory: the watchdog removes it once this
    // test process is gone (a server whose data directory vanished first
    // would linger).
    let pg = std::env::temp_dir().join(format!("tg-pgtest-cli-{}", std::process::id()));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/pg-server.sh");
    let started =
        Command::new("bash").args([script, "start"]).arg(&pg).arg(std::process::id().to_string()).status().unwrap();
    assert!(started.success(), "PostgreSQL did not start");
    let psql = |db: &str, sql: &str| {
        let o = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-At"])
            .arg(format!("postgresql://postgres@/{db}?host={}", pg.display()))
            .args(["-c", sql])
            .output()
            .unwrap();
        assert!(o.status.success(), "psql: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    psql("postgres", "CREATE DATABASE fleet");
    let url = format!("postgresql://postgres@/fleet?host={}", pg.display());

    let o = e.tollgate(&["migrate-store", "--to", &url], "");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(out.contains("verified: every table's row count and the usage totals match"), "{out}");
    assert!(out.contains(&format!("set database = \"{url}\"")), "{out}");
    assert!(out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["users", "1", "rows"]), "{out}");
    assert_eq!(psql("fleet", "SELECT name FROM users"), "alice");

    // A password in the URL is refused before anything is done.
    let o = e.tollgate(&["migrate-store", "--to", "postgresql://u:secret@/fleet"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("no password in the URL") && !err(&o).contains("secret"), "{}", err(&o));

    // Again: the target holds tollgate data now, and is left as it is.
    let o = e.tollgate(&["migrate-store", "--to", &url], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("already holds tollgate data"), "{}", err(&o));

    // The config pointed at the copy: the CLI reads and writes it there.
    std::fs::write(&e.config, format!("database = \"{url}\"\nserver = \"nl-1\"\n")).unwrap();
    let o = e.tollgate(&["migrate-store", "--to", &url], "");
    assert!(err(&o).contains("already PostgreSQL"), "{}", err(&o));
    let o = e.tollgate(&["usage", "--user", "alice", "--json"], "");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let usage = String::from_utf8_lossy(&o.stdout);
    assert!(usage.contains("\"total_bytes_in\": 1234") && usage.contains("\"total_bytes_out\": 5678"), "{usage}");
    let o = e.tollgate(&["user", "add", "bob", "--password-stdin", "--server", "nl-1"], "bob's password\n");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(psql("fleet", "SELECT id FROM users WHERE name = 'bob'"), "2", "ids go on after the copied ones");

    // A role with a password: the URL names no pgpass file, PGPASSFILE does.
    psql("fleet", "CREATE ROLE clerk LOGIN PASSWORD 'clerk pw'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO clerk");
    let pass = e.dir.join("pgpass");
    std::fs::write(&pass, "*:*:fleet:clerk:clerk pw\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let clerk = e.dir.join("clerk.toml");
    std::fs::write(&clerk, format!("database = \"postgresql://clerk@/fleet?host={}\"\n", pg.display())).unwrap();
    let usage = |pgpassfile: Option<&std::path::Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        c.env_remove("PGPASSFILE").arg("--config").arg(&clerk).args(["usage", "--json"]);
        if let Some(p) = pgpassfile {
            c.env("PGPASSFILE", p);
        }
        c.output().unwrap()
    };
    let o = usage(None);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("name a pgpass file"), "{}", err(&o));
    let o = usage(Some(&pass));
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"alice\""));
}
