//! The CLI test kit: a temporary directory with a config and a database,
//! the `tollgate` binary run against it, and queries of what it wrote.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use tollgate_core::{Config, Store};

pub struct Env {
    pub dir: PathBuf,
    pub config: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A directory with a config (server nl-1) and an empty database.
pub fn blank(name: &str) -> Env {
    let dir = std::env::temp_dir().join(format!("tg-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("tollgate.toml");
    std::fs::write(&config, "database = \"t.db\"\nserver = \"nl-1\"\n").unwrap();
    Store::init(&Config::from_file(&config).unwrap()).unwrap();
    Env { dir, config }
}

/// A directory with a config, a database with server nl-1, user alice, and `sql`.
pub fn env(name: &str, sql: &str) -> Env {
    let e = blank(name);
    e.query_exec(&format!(
            "INSERT INTO servers (name, host, ca_pem, tls_mode, tls_key, created_at) VALUES ('nl-1', 'h', 'x', 'tls-crypt', 'k', 0);
             INSERT INTO users (name, password_hash, created_at, updated_at) VALUES ('alice', 'x', 0, 0);
             {sql}"
    ));
    e
}

impl Env {
    pub fn tollgate(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut c = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A command that fails before reading its input closes the pipe
        // first: that is its answer, not the kit's failure.
        let _ = c.stdin.take().unwrap().write_all(stdin.as_bytes());
        c.wait_with_output().unwrap()
    }

    pub fn query_exec(&self, sql: &str) {
        let s = Store::open_hook(&Config::from_file(&self.config).unwrap()).unwrap();
        s.conn.execute_batch(sql).unwrap();
    }

    pub fn query(&self, sql: &str) -> String {
        let s = Store::open_hook(&Config::from_file(&self.config).unwrap()).unwrap();
        let c = s.conn.sqlite_conn().expect("these tests read SQLite");
        c.query_row(sql, [], |r| r.get::<_, rusqlite::types::Value>(0)).map(|v| format!("{v:?}")).unwrap()
    }
}

pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
