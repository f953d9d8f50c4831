//! The SQLite database: opening it the same way everywhere (WAL, busy
//! timeout, foreign keys), creating and migrating it from the embedded
//! schema.sql, and keeping it usable by the unprivileged OpenVPN user.
//!
//! The database directory belongs to the OpenVPN user, and the admin CLI
//! usually runs as root: nothing here follows a symbolic link in that
//! directory, and owners and modes change only through checked descriptors
//! (see `safefs`), so a compromised hook cannot make root write or hand
//! over a file that is not tollgate's.

use crate::config::Config;
use crate::config::Database;
use crate::db::{self, Db, Engine, Tx};
use crate::pg;
use crate::safefs;
use anyhow::{bail, Context, Result};
use rusqlite::{Connection, OpenFlags};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

pub const SCHEMA: &str = include_str!("../../../schema.sql");
/// The version schema.sql describes; PRAGMA user_version holds the database's.
pub const SCHEMA_VERSION: i64 = 9;

/// Version 1 → 2: per-address failure counters.
const MIGRATE_2: &str = "CREATE TABLE source_failures (
    ip           TEXT    PRIMARY KEY,
    failed_count INTEGER NOT NULL DEFAULT 0,
    failed_since INTEGER,
    locked_until INTEGER
) WITHOUT ROWID;";

/// Version 2 → 3: auth methods, the post-auth program's saved data, its
/// challenges and its per-tunnel choices.
const MIGRATE_3: &str = "ALTER TABLE groups ADD COLUMN auth_method TEXT;
ALTER TABLE users ADD COLUMN auth_method TEXT;
ALTER TABLE users ADD COLUMN saved TEXT;
ALTER TABLE challenges ADD COLUMN kind TEXT NOT NULL DEFAULT 'totp';
ALTER TABLE challenges ADD COLUMN carry TEXT;
CREATE TABLE assignments (
    server_id  INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    real_ip    TEXT    NOT NULL,
    real_port  INTEGER NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    group_id   INTEGER REFERENCES groups(id) ON DELETE CASCADE,
    static_ip  TEXT,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (server_id, real_ip, real_port)
) WITHOUT ROWID;";

/// Version 3 → 4: challenges of users not provisioned yet (RADIUS). Open
/// challenges live for minutes: they are dropped, not converted.
const MIGRATE_4: &str = "DROP TABLE challenges;
CREATE TABLE challenges (
    state_id   TEXT    PRIMARY KEY,
    user_id    INTEGER REFERENCES users(id) ON DELETE CASCADE,
    username   TEXT    NOT NULL,
    ip         TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    kind       TEXT    NOT NULL DEFAULT 'totp',
    carry      TEXT
);";

/// Version 5 → 6: a stable word for each auth decision's reason, and each
/// server's last sweep (both for `tollgate metrics`).
const MIGRATE_6: &str = "ALTER TABLE auth_events ADD COLUMN kind TEXT NOT NULL DEFAULT 'other';
CREATE TABLE sweeps (
    server      TEXT    PRIMARY KEY,
    at          INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    ok          INTEGER NOT NULL
) WITHOUT ROWID;";

/// Version 6 → 7: single sign-on users the sweep asks the provider about
/// again (refresh tokens).
const MIGRATE_7: &str = "ALTER TABLE web_logins ADD COLUMN refresh_token TEXT;
CREATE TABLE sso_grants (
    server_id     INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    refresh_token TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    checked_at    INTEGER NOT NULL,
    refused       TEXT,
    PRIMARY KEY (server_id, user_id)
) WITHOUT ROWID;";

/// Version 7 → 8: tunnels of clients that sent no username, named by
/// their sign-in.
const MIGRATE_8: &str = "ALTER TABLE sessions ADD COLUMN token_session TEXT;
CREATE INDEX sessions_token ON sessions(token_session) WHERE token_session IS NOT NULL;
CREATE TABLE unnamed_tunnels (
    server_id    INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    session_id   TEXT    NOT NULL,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    signed_in_at INTEGER NOT NULL,
    PRIMARY KEY (server_id, session_id)
) WITHOUT ROWID;";

/// Version 8 → 9: the self-service site's sessions and the API's tokens.
const MIGRATE_9: &str = "CREATE TABLE web_sessions (
    id_hash    TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf       TEXT    NOT NULL,
    totp_pending TEXT,
    ip         TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX web_sessions_user ON web_sessions(user_id);
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL UNIQUE,
    hash         TEXT    NOT NULL UNIQUE,
    scopes       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
);";

/// Version 4 → 5: single sign-on logins waiting for the browser.
const MIGRATE_5: &str = "CREATE TABLE web_logins (
    link_hash    TEXT    PRIMARY KEY,
    username     TEXT    NOT NULL,
    server       TEXT    NOT NULL,
    ip           TEXT    NOT NULL,
    platform     TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    state_hash   TEXT    UNIQUE,
    browser_hash TEXT,
    nonce        TEXT,
    verifier     TEXT,
    answer       TEXT
);";

pub struct Store {
    pub conn: Db,
}

/// schema.sql as PostgreSQL's dialect: 64-bit integers throughout, ids
/// from identity columns, no SQLite table options. One definition, two
/// engines.
pub fn pg_schema() -> String {
    let mut out = pg_dialect(SCHEMA);
    out.push_str(PG_META);
    out
}

/// SQLite table definitions in PostgreSQL's dialect (schema.sql and the
/// migration steps alike).
fn pg_dialect(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 1024);
    for line in sql.lines() {
        let line = line
            .replace("INTEGER PRIMARY KEY", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
            .replace(") WITHOUT ROWID;", ");")
            .replace("INTEGER", "BIGINT");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Where a PostgreSQL store keeps its schema version (SQLite: user_version).
const PG_META: &str =
    "CREATE TABLE tollgate_schema (version BIGINT NOT NULL);\nINSERT INTO tollgate_schema VALUES (0);\n";

impl Store {
    /// Open for a hook: the database must exist and be at the current
    /// version; nothing is created or migrated behind the admin's back.
    pub fn open_hook(cfg: &Config) -> Result<Store> {
        let store = Store::open_existing(cfg)?;
        let v = store.version()?;
        if v != SCHEMA_VERSION {
            bail!(
                "database {} is at schema version {v}, this build needs {SCHEMA_VERSION}: run `tollgate init`",
                cfg.database
            );
        }
        Ok(store)
    }

    /// Open for an admin command: the database must exist; an older schema
    /// is migrated forward, a newer one refused.
    pub fn open_admin(cfg: &Config) -> Result<Store> {
        let mut store = Store::open_existing(cfg)?;
        store.migrate()?;
        if let Database::Sqlite(path) = &cfg.database {
            fix_ownership(path)?;
        }
        Ok(store)
    }

    /// `tollgate init`: create the database (and its directory) or migrate it.
    /// Returns the version it was at before (0 for a new database). A
    /// PostgreSQL database must exist (`createdb`); its tables are made here.
    pub fn init(cfg: &Config) -> Result<(Store, i64)> {
        let path = match &cfg.database {
            Database::Sqlite(p) => p,
            Database::Postgres(t) => {
                let mut store = Store { conn: pg_connect(t, cfg, false)? };
                let before = store.version()?;
                store.migrate()?;
                return Ok((store, before));
            }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o770))?;
            }
        }
        refuse_links(path)?;
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_CREATE | open_flags())
            .with_context(|| format!("cannot create database {}", path.display()))?;
        let mut store = Store::setup(conn, cfg)?;
        let before = store.version()?;
        store.sqlite()?.pragma_update(None, "journal_mode", "WAL")?;
        store.migrate()?;
        fix_ownership(path)?;
        Ok((store, before))
    }

    /// Open read-only, for a hook's quick look while OpenVPN waits: no
    /// schema check, no write can happen, and closing it never checkpoints
    /// the WAL (a read-write connection that closes last does, with fsyncs).
    pub fn open_read(cfg: &Config) -> Result<Store> {
        let path = match &cfg.database {
            Database::Sqlite(p) => p,
            Database::Postgres(t) => return Ok(Store { conn: pg_connect(t, cfg, true)? }),
        };
        refuse_links(path)?;
        let flags =
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let conn = Connection::open_with_flags(path, flags)
            .with_context(|| format!("cannot open database {}", path.display()))?;
        conn.busy_timeout(Duration::from_millis(cfg.busy_timeout_ms))?;
        Ok(Store { conn: Db::sqlite(conn) })
    }

    fn open_existing(cfg: &Config) -> Result<Store> {
        let path = match &cfg.database {
            Database::Sqlite(p) => p,
            Database::Postgres(t) => return Ok(Store { conn: pg_connect(t, cfg, false)? }),
        };
        if safefs::lstat(path)?.is_none() {
            bail!("database {} does not exist: run `tollgate init`", path.display());
        }
        refuse_links(path)?;
        let conn = Connection::open_with_flags(path, open_flags())
            .with_context(|| format!("cannot open database {}", path.display()))?;
        Store::setup(conn, cfg)
    }

    fn setup(conn: Connection, cfg: &Config) -> Result<Store> {
        conn.busy_timeout(Duration::from_millis(cfg.busy_timeout_ms))?;
        // foreign_keys and synchronous are per connection. NORMAL is durable
        // across application crashes in WAL mode and much faster than FULL.
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
            .context("cannot configure database")?;
        Ok(Store { conn: Db::sqlite(conn) })
    }

    /// The SQLite connection, for what only SQLite has.
    fn sqlite(&self) -> Result<&Connection> {
        self.conn.sqlite_conn().context("this needs the SQLite store")
    }

    pub fn version(&self) -> Result<i64> {
        match self.conn.engine() {
            Engine::Sqlite => Ok(self.sqlite()?.pragma_query_value(None, "user_version", |r| r.get(0))?),
            // One round trip on every hook's open: a database without
            // tollgate's tables answers "undefined table" (42P01), version 0.
            Engine::Postgres => match self.conn.query_row("SELECT version FROM tollgate_schema", (), |r| r.get(0)) {
                Err(db::Error::Pg(pg::Error::Server { code, .. })) if code == "42P01" => Ok(0),
                r => Ok(r?),
            },
        }
    }

    fn migrate(&mut self) -> Result<()> {
        let v = self.version()?;
        if v > SCHEMA_VERSION {
            bail!("database is at schema version {v}, newer than this build ({SCHEMA_VERSION}): upgrade tollgate");
        }
        if v == SCHEMA_VERSION {
            return Ok(());
        }
        if self.conn.engine() == Engine::Postgres {
            return self.migrate_pg();
        }
        let conn = self.sqlite()?;
        conn.execute_batch("BEGIN EXCLUSIVE")?;
        let tx = Tx::adopt(&self.conn);
        if v == 0 {
            tx.execute_batch(SCHEMA).context("cannot create schema")?;
        } else {
            // Each step moves one version forward, in order.
            let steps = [MIGRATE_2, MIGRATE_3, MIGRATE_4, MIGRATE_5, MIGRATE_6, MIGRATE_7, MIGRATE_8, MIGRATE_9];
            for (to, sql) in (2..).zip(steps) {
                if v < to {
                    tx.execute_batch(sql).with_context(|| format!("cannot migrate to schema version {to}"))?;
                }
            }
        }
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
        tx.commit()?;
        Ok(())
    }

    /// PostgreSQL stores start at version 8: later versions add their
    /// steps here, as for SQLite. Two servers running `tollgate init` at
    /// once take turns on the write lock; the second finds the work done.
    fn migrate_pg(&mut self) -> Result<()> {
        let tx = self.conn.write_tx()?;
        let made: bool = tx.query_row("SELECT to_regclass('tollgate_schema') IS NOT NULL", (), |r| r.get(0))?;
        if !made {
            tx.execute_batch(&pg_schema()).context("cannot create schema")?;
        }
        let v: i64 = tx.query_row("SELECT version FROM tollgate_schema", (), |r| r.get(0))?;
        if v == SCHEMA_VERSION {
            return Ok(tx.commit()?);
        }
        // Version 8 is where PostgreSQL stores began; each later step is
        // SQLite's, in PostgreSQL's dialect.
        match v {
            0 => {}
            8 => tx.execute_batch(&pg_dialect(MIGRATE_9)).context("cannot migrate to schema version 9")?,
            _ => bail!("PostgreSQL store at schema version {v}: this build knows no migration from it"),
        }
        tx.execute("UPDATE tollgate_schema SET version = ?1", [SCHEMA_VERSION])?;
        tx.commit()?;
        Ok(())
    }

    /// A write transaction that takes the lock up front, so that concurrent
    /// hooks wait on the busy timeout instead of failing on a lock upgrade.
    pub fn write_tx(&mut self) -> Result<Tx<'_>> {
        Ok(self.conn.write_tx()?)
    }
}

/// A connection to the PostgreSQL store. Waits are bounded as SQLite's
/// busy timeout bounds them: a lock (the write lock above all) for
/// `busy_timeout`, a statement for twice that, the socket a little more;
/// then the caller refuses (fail closed). `read_only` makes the server
/// refuse any write on the connection.
fn pg_connect(t: &pg::Target, cfg: &Config, read_only: bool) -> Result<Db> {
    let busy = cfg.busy_timeout_ms.max(1);
    let (lock, statement) = (busy.to_string(), (busy * 2).to_string());
    let mut settings = vec![
        ("lock_timeout", lock.as_str()),
        ("statement_timeout", statement.as_str()),
        ("idle_in_transaction_session_timeout", "60000"),
        // A hook killed mid-statement: its server process notices within a
        // second and lets go of the write lock, instead of finishing first.
        ("client_connection_check_interval", "1000"),
    ];
    if read_only {
        settings.push(("default_transaction_read_only", "on"));
    }
    let io = Duration::from_millis(busy * 2 + 5000);
    let client = pg::Client::connect(t, io, &settings).map_err(db::Error::from)?;
    Ok(Db::postgres(client))
}

/// SQLite itself opens -wal, -shm and journals with O_NOFOLLOW; NOFOLLOW
/// makes it refuse a linked database file too (it would otherwise resolve
/// the link and work on the target).
fn open_flags() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW
}

/// A clear refusal for a database (or -wal, -shm) that is a link, or not
/// a plain file with one name: someone who can write the directory may
/// have put it there.
fn refuse_links(db: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    for p in db_files(db) {
        let Some(m) = safefs::lstat(&p)? else { continue };
        let why = if m.file_type().is_symlink() {
            "is a symbolic link"
        } else if !m.file_type().is_file() {
            "is not a regular file"
        } else if m.nlink() > 1 {
            // (0: the last connection of another process is removing its
            // -wal or -shm right now; SQLite makes a new one.)
            "has more than one hard link"
        } else {
            continue;
        };
        bail!("refusing {}: it {why} (tollgate never follows links in its data directory)", p.display());
    }
    Ok(())
}

/// The database file and the two SQLite keeps beside it.
fn db_files(db: &Path) -> Vec<std::path::PathBuf> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let mut p = db.as_os_str().to_owned();
            p.push(suffix);
            std::path::PathBuf::from(p)
        })
        .collect()
}

/// The admin CLI usually runs as root, the hooks as nobody. Files the CLI
/// creates take the owner of the database's directory (which install makes
/// the OpenVPN user's), so the hooks can keep writing. SQLite itself gives
/// -wal and -shm files the owner of the database file when run as root.
fn fix_ownership(db: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let owner = std::fs::metadata(dir).with_context(|| format!("cannot stat {}", dir.display()))?;
    for (i, p) in db_files(db).iter().enumerate() {
        // Opened without following links, checked, then changed through
        // the descriptor: the file changed is the file checked.
        let Some(f) = safefs::checked_regular(p).with_context(|| format!("refusing {}", p.display()))? else {
            continue;
        };
        let m = f.metadata()?;
        // SQLite creates files 0644 (less the umask): the OpenVPN group
        // needs write access too. -wal and -shm copy the database's mode.
        if i == 0 && m.permissions().mode() & 0o777 != 0o660 && m.uid() == euid {
            safefs::fchmod(&f, 0o660).with_context(|| format!("cannot chmod {}", p.display()))?;
        }
        if euid == 0 && (m.uid() != owner.uid() || m.gid() != owner.gid()) {
            safefs::fchown(&f, owner.uid(), owner.gid()).with_context(|| format!("cannot chown {}", p.display()))?;
        }
    }
    Ok(())
}

/// The newest time any record holds (an auth event, a session, a used TOTP
/// step): a clock behind it refuses TOTP codes and confuses sessions.
pub fn newest_record_time(db: &Db) -> Result<i64> {
    let mut newest = 0;
    for sql in [
        "SELECT coalesce(max(at), 0) FROM auth_events",
        "SELECT coalesce(max(connected_at), 0) FROM sessions",
        "SELECT coalesce(max(totp_last_step) * 30, 0) FROM users",
    ] {
        newest = newest.max(db.query_row(sql, [], |r| r.get::<_, i64>(0))?);
    }
    Ok(newest)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A config with a store of its own: an SQLite file in a temporary
    /// directory, or with TOLLGATE_TEST_STORE=postgres a new database on a
    /// throwaway PostgreSQL server (see `pg_test_database`).
    pub fn temp_config() -> (tempdir::Dir, Config) {
        let dir = tempdir::Dir::new();
        let database = match std::env::var("TOLLGATE_TEST_STORE").as_deref() {
            Ok("postgres") => Database::Postgres(pg_test_database()),
            _ => Database::Sqlite(dir.path.join("t.db")),
        };
        let cfg = Config { database, spool: Some(dir.path.join("spool")), ..Config::default() };
        (dir, cfg)
    }

    /// An SQLite config, for what only concerns the SQLite file.
    pub fn temp_sqlite_config() -> (tempdir::Dir, Config) {
        let dir = tempdir::Dir::new();
        let cfg = Config { database: Database::Sqlite(dir.path.join("t.db")), ..Config::default() };
        (dir, cfg)
    }

    /// Starts a PostgreSQL server in the temporary directory NAME-PID
    /// (tests/pg-server.sh, with `env` such as PG_TLS), watched by a
    /// watchdog that stops it and removes the directory once this test
    /// process ends; returns the directory (its socket's).
    pub fn start_pg_server(name: &str, env: &[(&str, &std::ffi::OsStr)]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/pg-server.sh");
        let ok = std::process::Command::new("bash")
            .arg(script)
            .arg("start")
            .arg(&dir)
            .arg(std::process::id().to_string())
            .envs(env.iter().copied())
            .status()
            .expect("bash");
        assert!(ok.success(), "cannot start PostgreSQL for the tests");
        dir
    }

    /// A new, empty database on a PostgreSQL server started once for this
    /// test process (tests/pg-server.sh: a Unix socket in a temporary
    /// directory, stopped and removed by a watchdog once the process ends).
    pub fn pg_test_database() -> pg::Target {
        use std::sync::atomic::{AtomicU32, Ordering};
        static SERVER: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = SERVER.get_or_init(|| start_pg_server("tg-pgtest", &[]));
        let url = |db: &str| format!("postgresql://postgres@/{db}?host={}", dir.display());
        let name = format!("t{}", N.fetch_add(1, Ordering::SeqCst));
        let admin = pg::Target::parse(&url("postgres")).unwrap();
        let mut c = pg::Client::connect(&admin, Duration::from_secs(30), &[]).unwrap();
        c.batch(&format!("CREATE DATABASE {name}")).unwrap();
        pg::Target::parse(&url(&name)).unwrap()
    }

    pub fn db_path(cfg: &Config) -> &Path {
        cfg.database.sqlite_path().expect("an SQLite config")
    }

    /// A tiny self-cleaning temp dir, to avoid a dependency for tests.
    pub mod tempdir {
        pub struct Dir {
            pub path: std::path::PathBuf,
        }
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let path = std::env::temp_dir().join(format!(
                    "tollgate-test-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::SeqCst)
                ));
                std::fs::create_dir_all(&path).unwrap();
                Dir { path }
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.path);
            }
        }
    }

    #[test]
    fn init_creates_then_is_idempotent() {
        let (_d, cfg) = temp_sqlite_config();
        assert!(Store::open_hook(&cfg).is_err());
        let (s, before) = Store::init(&cfg).unwrap();
        assert_eq!(before, 0);
        assert_eq!(s.version().unwrap(), SCHEMA_VERSION);
        let mode: String =
            s.conn.sqlite_conn().unwrap().pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        drop(s);
        let (_, before) = Store::init(&cfg).unwrap();
        assert_eq!(before, SCHEMA_VERSION);
        Store::open_hook(&cfg).unwrap();
    }

    /// Every table's columns (name, type, not null, default, key) and
    /// every index: what a migrated database must share with a new one.
    fn shape(c: &Connection) -> Vec<String> {
        let mut out = Vec::new();
        let objects: Vec<(String, String)> = c
            .prepare("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for (kind, name) in objects {
            out.push(format!("{kind} {name}"));
            if kind == "table" {
                let mut st = c.prepare(&format!("PRAGMA table_info({name})")).unwrap();
                let cols = st
                    .query_map([], |r| {
                        Ok(format!(
                            "  {} {} notnull={} default={:?} pk={}",
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, Option<String>>(4)?,
                            r.get::<_, i64>(5)?
                        ))
                    })
                    .unwrap()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                out.extend(cols);
            }
        }
        out
    }

    #[test]
    fn migrates_older_versions_to_the_current_schema() {
        let (_d2, cfg2) = temp_sqlite_config();
        let (fresh, _) = Store::init(&cfg2).unwrap();
        let want = shape(fresh.conn.sqlite_conn().unwrap());
        // Version 2 as released, version 1 (version 2 less its table),
        // version 3 (version 2 and its migration, with a challenge open) and
        // version 4.
        let v2 = include_str!("../testdata/schema-v2.sql");
        let v3 = format!(
            "{MIGRATE_3} INSERT INTO users (name, password_hash, created_at, updated_at) VALUES ('u', 'x', 0, 0);
             INSERT INTO challenges (state_id, user_id, ip, expires_at) VALUES ('s', 1, '10.0.0.1', 9);"
        );
        let v4 = format!("{MIGRATE_3} {MIGRATE_4}");
        let v5 = format!("{MIGRATE_3} {MIGRATE_4} {MIGRATE_5}");
        let v8 = format!("{v5} {MIGRATE_6} {MIGRATE_7} {MIGRATE_8}");
        for (version, extra) in [
            (8, v8.as_str()),
            (5, v5.as_str()),
            (4, v4.as_str()),
            (3, v3.as_str()),
            (2, ""),
            (1, "DROP TABLE source_failures;"),
        ] {
            let (_d, cfg) = temp_sqlite_config();
            let c = Connection::open(db_path(&cfg)).unwrap();
            c.execute_batch(v2).unwrap();
            c.execute_batch(&format!("{extra} PRAGMA user_version = {version};")).unwrap();
            drop(c);
            assert!(Store::open_hook(&cfg).is_err(), "hooks refuse an old schema");
            let (s, before) = Store::init(&cfg).unwrap();
            assert_eq!((before, s.version().unwrap()), (version, SCHEMA_VERSION));
            assert_eq!(shape(s.conn.sqlite_conn().unwrap()), want, "migrated from version {version}");
        }
    }

    /// A PostgreSQL store made at version 8 (the first release on it) is
    /// brought to the current schema by `init`, its data kept.
    #[test]
    fn migrates_a_version_8_postgresql_store() {
        let (_d, cfg) = temp_config();
        if cfg.database.sqlite_path().is_some() {
            return; // SQLite's steps: migrates_older_versions_to_the_current_schema
        }
        let (s, _) = Store::init(&cfg).unwrap();
        s.conn
            .execute_batch(
                "DROP TABLE web_sessions; DROP TABLE api_tokens; UPDATE tollgate_schema SET version = 8;
                 INSERT INTO plans (name, period, created_at) VALUES ('kept', 'month', 0);",
            )
            .unwrap();
        drop(s);
        assert!(Store::open_hook(&cfg).is_err(), "hooks refuse an old schema");
        let (s, before) = Store::init(&cfg).unwrap();
        assert_eq!((before, s.version().unwrap()), (8, SCHEMA_VERSION));
        let n: i64 = s.conn.query_row("SELECT count(*) FROM api_tokens", [], |r| r.get(0)).unwrap();
        let kept: i64 = s.conn.query_row("SELECT count(*) FROM plans WHERE name = 'kept'", [], |r| r.get(0)).unwrap();
        assert_eq!((n, kept), (0, 1));
    }

    /// Hooks open and close the database at once: the last to close removes
    /// -wal and -shm, and one that looks at them meanwhile may find a file
    /// with no name left. That is no link to refuse.
    #[test]
    fn files_removed_by_a_closing_connection_are_not_refused() {
        let (_d, cfg) = temp_sqlite_config();
        drop(Store::init(&cfg).unwrap());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (cfg, stop) = (cfg.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let s = Store::open_hook(&cfg).unwrap();
                    s.conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}")).unwrap();
                }
            })
        };
        let mut refused = None;
        for _ in 0..3000 {
            if let Err(e) = refuse_links(db_path(&cfg)) {
                refused = Some(format!("{e:#}"));
                break;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap();
        assert_eq!(refused, None);
    }

    #[test]
    fn refuses_linked_database_files() {
        let (d, cfg) = temp_sqlite_config();
        let (s, _) = Store::init(&cfg).unwrap();
        drop(s);
        // Another SQLite database the attacker wants tollgate to write into.
        let victim = d.path.join("victim.db");
        Connection::open(&victim).unwrap().execute_batch("CREATE TABLE precious (x)").unwrap();
        std::fs::rename(db_path(&cfg), d.path.join("aside.db")).unwrap();
        std::os::unix::fs::symlink(&victim, db_path(&cfg)).unwrap();
        for e in [Store::open_admin(&cfg).err(), Store::open_hook(&cfg).err(), Store::init(&cfg).err()] {
            let e = format!("{:#}", e.expect("a linked database must be refused"));
            assert!(e.contains("symbolic link"), "{e}");
        }
        let tables: i64 = Connection::open(&victim)
            .unwrap()
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 1, "nothing was written into the link's target");

        // A linked -wal is refused as well.
        std::fs::remove_file(db_path(&cfg)).unwrap();
        std::fs::rename(d.path.join("aside.db"), db_path(&cfg)).unwrap();
        let wal = d.path.join("t.db-wal");
        let _ = std::fs::remove_file(&wal);
        std::os::unix::fs::symlink(&victim, &wal).unwrap();
        let e = format!("{:#}", Store::open_admin(&cfg).err().expect("a linked -wal must be refused"));
        assert!(e.contains("t.db-wal") && e.contains("symbolic link"), "{e}");
        std::fs::remove_file(&wal).unwrap();
        Store::open_admin(&cfg).unwrap();
    }

    #[test]
    fn refuses_a_newer_schema() {
        let (_d, cfg) = temp_sqlite_config();
        let (s, _) = Store::init(&cfg).unwrap();
        s.conn.sqlite_conn().unwrap().pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        drop(s);
        let e = Store::open_admin(&cfg).err().unwrap().to_string();
        assert!(e.contains("newer"), "{e}");
        assert!(Store::open_hook(&cfg).is_err());
    }
}
