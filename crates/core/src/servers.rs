//! Server records (what gen-ovpn writes into profiles) and grants (which
//! users and groups may use which server): the store's side of `tollgate
//! server` and of `--server`/`--revoke` on users and groups.

use crate::db::{params, Db, ToSql, Tx};
use crate::names::{id_of, Kind};
use anyhow::{bail, Result};
use std::path::PathBuf;

/// Who a grant is for.
#[derive(Clone, Copy, Debug)]
pub enum Grantee {
    User(i64),
    Group(i64),
}

impl Grantee {
    fn parts(self) -> (&'static str, i64) {
        match self {
            Grantee::User(id) => ("user", id),
            Grantee::Group(id) => ("group", id),
        }
    }
}

/// Grant each named server; one already granted stays as it is.
pub fn grant(db: &Db, who: Grantee, servers: &[String]) -> Result<()> {
    let (col, id) = who.parts();
    for s in servers {
        let sid = id_of(db, Kind::Server, s)?;
        db.execute(
            &format!("INSERT INTO grants (server_id, {col}_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING"),
            params![sid, id],
        )?;
    }
    Ok(())
}

/// Take each named server's grant away; one that was never granted is an error.
pub fn revoke(db: &Db, who: Grantee, servers: &[String]) -> Result<()> {
    let (col, id) = who.parts();
    for s in servers {
        let sid = id_of(db, Kind::Server, s)?;
        let n = db.execute(&format!("DELETE FROM grants WHERE server_id = ?1 AND {col}_id = ?2"), params![sid, id])?;
        if n == 0 {
            bail!("{col} has no grant for server {s}");
        }
    }
    Ok(())
}

/// The names of the servers granted, sorted.
pub fn granted(db: &Db, who: Grantee) -> Result<Vec<String>> {
    let (col, id) = who.parts();
    let sql = format!(
        "SELECT s.name FROM grants g JOIN servers s ON s.id = g.server_id WHERE g.{col}_id = ?1 ORDER BY s.name"
    );
    let mut st = db.prepare(&sql)?;
    let v = st.query_map([id], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
    Ok(v)
}

/// The servers a user may connect to, sorted: every one for an account
/// (or group) with all servers, else those granted to it or its group.
pub fn usable_by(db: &Db, user_id: i64) -> Result<Vec<String>> {
    let mut st = db.prepare(
        "SELECT s.name FROM servers s, users u LEFT JOIN groups g ON g.id = u.group_id
          WHERE u.id = ?1
            AND (u.all_servers <> 0 OR coalesce(g.all_servers, 0) <> 0
                 OR EXISTS (SELECT 1 FROM grants WHERE server_id = s.id AND user_id = u.id)
                 OR EXISTS (SELECT 1 FROM grants WHERE server_id = s.id AND group_id = u.group_id))
          ORDER BY s.name",
    )?;
    let v = st.query_map([user_id], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
    Ok(v)
}

/// A server as stored: what `server add` builds and `server set` changes.
/// Checking it is the caller's (the CLI reads the files it names).
#[derive(Clone, Debug)]
pub struct ServerSpec {
    pub host: String,
    pub port: u16,
    pub proto: String,
    pub ca_pem: String,
    pub tls_mode: &'static str,
    pub tls_key: String,
    pub key_direction: Option<u8>,
    pub data_ciphers: Option<String>,
    pub extra: Vec<String>,
    pub client_cert: bool,
    pub pki_dir: Option<PathBuf>,
}

impl ServerSpec {
    /// A spec is stored only whole and consistent.
    pub fn check(&self) -> Result<()> {
        if self.host.trim().is_empty() || self.host.contains(char::is_whitespace) {
            bail!("--host must be a host name or address without spaces");
        }
        if self.tls_mode == "tls-crypt" && self.key_direction.is_some() {
            bail!("--key-direction is for tls-auth only (tls-crypt has no direction)");
        }
        for line in &self.extra {
            if line.contains(['\n', '\r']) || line.trim().is_empty() {
                bail!("--extra takes one non-empty directive per flag");
            }
        }
        if self.client_cert {
            let Some(dir) = &self.pki_dir else { bail!("--client-cert needs --pki-dir") };
            if !dir.join("issued").is_dir() {
                bail!("{} has no issued/ directory (easy-rsa layout expected)", dir.display());
            }
        }
        Ok(())
    }

    /// Run `sql` (add's INSERT, update's UPDATE) with `key` as ?1, the
    /// spec's columns as ?2 to ?12 (host, port, proto, ca_pem, tls_mode,
    /// tls_key, key_direction, data_ciphers, extra, client_cert, pki_dir)
    /// and `tail`, if any, as ?13: one binding, so the two cannot drift apart.
    fn bind(&self, db: &Db, sql: &str, key: &dyn ToSql, tail: Option<&dyn ToSql>) -> crate::db::Result<usize> {
        let extra = self.extra.join("\n");
        let pki_dir = self.pki_dir.as_ref().map(|p| p.display().to_string());
        let mut values: Vec<&dyn ToSql> = vec![
            key,
            &self.host,
            &self.port,
            &self.proto,
            &self.ca_pem,
            &self.tls_mode,
            &self.tls_key,
            &self.key_direction,
            &self.data_ciphers,
            &extra,
            &self.client_cert,
            &pki_dir,
        ];
        values.extend(tail);
        db.execute(sql, values.as_slice())
    }
}

/// A new server record; "already exists" when the name is taken.
pub fn add(db: &Db, name: &str, spec: &ServerSpec, now: i64) -> Result<()> {
    let r = spec.bind(
        db,
        "INSERT INTO servers (name, host, port, proto, ca_pem, tls_mode, tls_key, key_direction,
                              data_ciphers, extra, client_cert, pki_dir, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        &name,
        Some(&now),
    );
    match r {
        Err(e) if e.is_unique_violation() => bail!("server {name} already exists"),
        r => r?,
    };
    Ok(())
}

/// The stored spec of server `id`.
pub fn spec(db: &Db, id: i64) -> Result<ServerSpec> {
    Ok(db.query_row(
        "SELECT host, port, proto, ca_pem, tls_mode, tls_key, key_direction, data_ciphers, extra, client_cert, pki_dir
           FROM servers WHERE id = ?1",
        [id],
        |r| {
            Ok(ServerSpec {
                host: r.get(0)?,
                port: r.get(1)?,
                proto: r.get(2)?,
                ca_pem: r.get(3)?,
                tls_mode: if r.get::<_, String>(4)? == "tls-auth" { "tls-auth" } else { "tls-crypt" },
                tls_key: r.get(5)?,
                key_direction: r.get(6)?,
                data_ciphers: r.get(7)?,
                extra: r.get::<_, String>(8)?.lines().map(str::to_string).collect(),
                client_cert: r.get(9)?,
                pki_dir: r.get::<_, Option<String>>(10)?.map(PathBuf::from),
            })
        },
    )?)
}

/// Replace server `id`'s spec.
pub fn update(db: &Db, id: i64, spec: &ServerSpec) -> Result<()> {
    spec.bind(
        db,
        "UPDATE servers SET host = ?2, port = ?3, proto = ?4, ca_pem = ?5, tls_mode = ?6, tls_key = ?7,
                key_direction = ?8, data_ciphers = ?9, extra = ?10, client_cert = ?11, pki_dir = ?12
          WHERE id = ?1",
        &id,
        None,
    )?;
    Ok(())
}

/// A server as `server list` and `server show` report it (no keys).
#[derive(Clone, Debug)]
pub struct ServerRow {
    pub name: String,
    pub host: String,
    pub port: i64,
    pub proto: String,
    pub tls_mode: String,
    pub key_direction: Option<i64>,
    pub data_ciphers: Option<String>,
    pub extra: String,
    pub client_cert: bool,
    pub pki_dir: Option<String>,
    pub created_at: i64,
}

/// Every server by name, or only `only`.
pub fn list(db: &Db, only: Option<&str>) -> Result<Vec<ServerRow>> {
    let mut st = db.prepare(
        "SELECT name, host, port, proto, tls_mode, key_direction, data_ciphers, extra, client_cert, pki_dir, created_at
           FROM servers WHERE ?1 IS NULL OR name = ?1 ORDER BY name",
    )?;
    let rows = st
        .query_map([only], |r| {
            Ok(ServerRow {
                name: r.get(0)?,
                host: r.get(1)?,
                port: r.get(2)?,
                proto: r.get(3)?,
                tls_mode: r.get(4)?,
                key_direction: r.get(5)?,
                data_ciphers: r.get(6)?,
                extra: r.get(7)?,
                client_cert: r.get(8)?,
                pki_dir: r.get(9)?,
                created_at: r.get(10)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Delete server `name`. Its open sessions refuse it unless `force`,
/// which closes them first. Returns how many were closed.
pub fn delete(tx: &Tx, name: &str, force: bool, now: i64) -> Result<usize> {
    let id = id_of(tx, Kind::Server, name)?;
    let open: Vec<i64> = tx
        .prepare("SELECT id FROM sessions WHERE server_id = ?1 AND closed_at IS NULL ORDER BY id")?
        .query_map([id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if !open.is_empty() && !force {
        bail!(
            "server {name} has {} open session(s): stop its OpenVPN (or cut the clients) first, or --force to close them",
            open.len()
        );
    }
    let closed = crate::sessions::close_by_admin(tx, &open, "server deleted", now)?;
    tx.execute("DELETE FROM servers WHERE id = ?1", [id])?;
    Ok(closed.len())
}
