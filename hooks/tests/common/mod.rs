//! What the hook integration tests share: a directory of their own with a
//! config and an initialised database, removed when the test ends.
#![allow(dead_code)] // each test file uses its own part of this

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tollgate_core::config::Argon2Params;
use tollgate_core::{password, Config, Store};

/// Cheap argon2 for tests: the hook verifies with the cost in the hash.
pub const FAST: Argon2Params = Argon2Params { m_cost_kib: 256, t_cost: 1, p_cost: 1 };

pub struct Env {
    pub dir: PathBuf,
    pub config: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh directory `tg-PREFIX-NAME-PID` with `tollgate.toml` (database
/// `t.db`, server `nl-1`, then `toml`) and a database holding server nl-1
/// and whatever `sql` inserts.
pub fn env(prefix: &str, name: &str, toml: &str, sql: &str) -> Env {
    let dir = std::env::temp_dir().join(format!("tg-{prefix}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("tollgate.toml");
    std::fs::write(&config, format!("database = \"t.db\"\nserver = \"nl-1\"\n{toml}\n")).unwrap();
    let (store, _) = Store::init(&Config::from_file(&config).unwrap()).unwrap();
    store
        .conn
        .execute_batch(&format!(
            "INSERT INTO servers (name, host, ca_pem, tls_mode, tls_key, created_at) VALUES ('nl-1', 'h', 'x', 'tls-crypt', 'k', 0);
             {sql}"
        ))
        .unwrap();
    Env { dir, config }
}

/// SQL for user alice, password "correct horse", granted every server.
pub fn alice() -> String {
    let h = password::hash("correct horse", FAST).unwrap();
    format!("INSERT INTO users (name, password_hash, all_servers, created_at, updated_at) VALUES ('alice', '{h}', 1, 0, 0);")
}

impl Env {
    /// A credentials file (via-file) with `content`.
    pub fn creds(&self, content: &[u8]) -> PathBuf {
        let p = self.dir.join("creds");
        std::fs::write(&p, content).unwrap();
        p
    }

    /// Run the hook with OpenVPN's usual environment plus `extra`, minus `drop`.
    pub fn run(&self, file: Option<&Path>, extra: &[(&str, &[u8])], drop: &[&str]) -> (Output, String) {
        use std::os::unix::ffi::OsStrExt;
        let reason = self.dir.join("reason");
        std::fs::write(&reason, b"").unwrap();
        let mut c = Command::new(env!("CARGO_BIN_EXE_auth-verify"));
        c.env_clear().arg("--config").arg(&self.config);
        let base: [(&str, &[u8]); 4] = [
            ("script_type", b"user-pass-verify"),
            ("untrusted_ip", b"192.0.2.2"),
            ("untrusted_port", b"40000"),
            ("auth_failed_reason_file", reason.as_os_str().as_bytes()),
        ];
        for (k, v) in base.iter().chain(extra) {
            if !drop.contains(k) {
                c.env(k, std::ffi::OsStr::from_bytes(v));
            }
        }
        if let Some(f) = file {
            c.arg(f);
        }
        let out = c.output().unwrap();
        let reason = String::from_utf8_lossy(&std::fs::read(&reason).unwrap()).into_owned();
        (out, reason)
    }
}
