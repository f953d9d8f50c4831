//! `tollgate migrate-store`: copy an SQLite store, with all its history,
//! into a new PostgreSQL one, and prove the copy whole.
//!
//! The tables and their order come from schema.sql (each table after the
//! ones it refers to), their columns from the SQLite file itself. Every
//! row keeps its id; the identity sequences then start after the largest.
//! The whole copy is one PostgreSQL transaction: a copy that fails leaves
//! the target as empty as it was.

use crate::db::{Db, Engine, Value};
use crate::store::{Store, SCHEMA};
use anyhow::{bail, Context, Result};

/// Rows per INSERT statement (and per read of a large table).
const BATCH: usize = 500;

/// What one table held, and what the copy holds.
#[derive(Debug, PartialEq, Eq)]
pub struct Copied {
    pub table: String,
    pub rows: i64,
}

/// The tables of schema.sql, in the order they are created.
pub fn tables() -> Vec<&'static str> {
    SCHEMA
        .lines()
        .filter_map(|l| l.strip_prefix("CREATE TABLE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect()
}

/// Copies every table of `from` (SQLite) into `to` (a PostgreSQL store at
/// the current schema version, holding no tollgate data yet), then checks
/// row counts and byte totals on both sides.
pub fn copy(from: &Store, to: &Store) -> Result<Vec<Copied>> {
    let src = from.conn.sqlite_conn().context("the store to copy from must be SQLite")?;
    if to.conn.engine() != Engine::Postgres {
        bail!("the store to copy to must be PostgreSQL");
    }
    let tx = to.conn.write_tx()?;
    for t in ["servers", "users", "sessions", "auth_events"] {
        let n: i64 = tx.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))?;
        if n > 0 {
            bail!("the PostgreSQL database already holds tollgate data ({n} rows in {t}): copy into an empty one");
        }
    }
    // One read transaction: the copy is of one moment of the SQLite store.
    src.execute_batch("BEGIN")?;
    let result = copy_tables(src, &tx);
    src.execute_batch("ROLLBACK")?;
    let copied = result?;
    for c in &copied {
        let n: i64 = tx.query_row(&format!("SELECT count(*) FROM {}", c.table), [], |r| r.get(0))?;
        if n != c.rows {
            bail!("{}: {} rows in SQLite, {n} copied", c.table, c.rows);
        }
    }
    let totals = "SELECT coalesce(sum(bytes_in), 0), coalesce(sum(bytes_out), 0) FROM usage";
    let want: (i64, i64) = src.query_row(totals, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let got: (i64, i64) = tx.query_row(totals, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if want != got {
        bail!("usage totals differ after the copy: {want:?} in SQLite, {got:?} copied");
    }
    tx.commit()?;
    Ok(copied)
}

fn copy_tables(src: &rusqlite::Connection, dst: &Db) -> Result<Vec<Copied>> {
    let mut out = Vec::new();
    for table in tables() {
        let mut cols = Vec::new();
        let mut st = src.prepare("SELECT name, pk FROM pragma_table_info(?1) ORDER BY cid")?;
        let mut rows = st.query([table])?;
        let mut keyed = false;
        while let Some(r) = rows.next()? {
            let name: String = r.get(0)?;
            keyed |= name == "id" && r.get::<_, i64>(1)? == 1;
            cols.push(name);
        }
        let list = cols.join(", ");
        let mut n = 0i64;
        let mut last = i64::MIN;
        loop {
            // Tables with an id are read in id order, a batch at a time;
            // the others (keyed by what they describe) are small.
            let (sql, params): (String, Vec<i64>) = match keyed {
                true => (format!("SELECT {list} FROM {table} WHERE id > ?1 ORDER BY id LIMIT {BATCH}"), vec![last]),
                false => (format!("SELECT {list} FROM {table}"), vec![]),
            };
            let mut st = src.prepare(&sql)?;
            let batch: Vec<Vec<Value>> = st
                .query_map(rusqlite::params_from_iter(params), |r| {
                    (0..cols.len()).map(|i| r.get::<_, rusqlite::types::Value>(i).map(Value::from)).collect()
                })?
                .collect::<Result<_, _>>()?;
            if batch.is_empty() {
                break;
            }
            if keyed {
                if let Some(Value::Int(id)) = batch.last().and_then(|r| r.first()) {
                    last = *id;
                }
            }
            for chunk in batch.chunks(BATCH) {
                insert(dst, table, &cols, chunk).with_context(|| format!("copying {table}"))?;
            }
            n += batch.len() as i64;
            if !keyed {
                break;
            }
        }
        if keyed {
            // The next id PostgreSQL hands out comes after the copied ones.
            dst.execute_batch(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
            ))?;
        }
        out.push(Copied { table: table.to_string(), rows: n });
    }
    Ok(out)
}

fn insert(dst: &Db, table: &str, cols: &[String], rows: &[Vec<Value>]) -> Result<()> {
    let width = cols.len();
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", cols.join(", "));
    for (i, _) in rows.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        let marks: Vec<String> = (1..=width).map(|c| format!("?{}", i * width + c)).collect();
        sql.push('(');
        sql.push_str(&marks.join(", "));
        sql.push(')');
    }
    let params: Vec<&dyn crate::db::ToSql> = rows.iter().flatten().map(|v| v as &dyn crate::db::ToSql).collect();
    dst.execute(&sql, params)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Database};
    use crate::store::tests::{pg_test_database, temp_sqlite_config};

    #[test]
    fn the_tables_come_from_the_schema_in_dependency_order() {
        let t = tables();
        assert_eq!(t.len(), 18);
        let at = |n: &str| t.iter().position(|x| *x == n).unwrap();
        assert!(at("servers") < at("users") && at("users") < at("sessions") && at("sessions") < at("usage"));
    }

    /// Every row and every byte arrives, ids included, and PostgreSQL's
    /// next id follows the copied ones; a second copy into the same
    /// database is refused and changes nothing.
    #[test]
    fn an_sqlite_store_is_copied_whole_into_postgresql() {
        let (_d, cfg) = temp_sqlite_config();
        let (from, _) = Store::init(&cfg).unwrap();
        from.conn
            .execute_batch(
                "INSERT INTO servers (id, name, host, ca_pem, tls_mode, tls_key, created_at) VALUES (7, 'nl-1', 'h', 'x', 'tls-crypt', 'k', 1);
                 INSERT INTO plans (name, quota_bytes, created_at) VALUES ('std', 5000000000, 1);
                 INSERT INTO users (id, name, password_hash, plan_id, created_at, updated_at, saved) VALUES (40, 'ann', 'h', 1, 1, 1, '{\"a\":1}');
                 INSERT INTO users (name, password_hash, created_at, updated_at, enabled) VALUES ('bob''s', 'h', 1, 1, 0);
                 INSERT INTO grants (server_id, user_id) VALUES (7, 40);
                 INSERT INTO sessions (user_id, server_id, connected_at, closed_at, bytes_in, bytes_out, charged_in, charged_out)
                   VALUES (40, 7, 100, 200, 3000000000, 9000000000, 3000000000, 9000000000);
                 INSERT INTO usage VALUES (40, 0, 3000000000, 9000000000);
                 INSERT INTO auth_events (at, username, result, reason) VALUES (5, 'ann', 'accept', 'ok');",
            )
            .unwrap();
        // More sessions than one batch.
        for i in 0..(BATCH as i64 + 7) {
            from.conn
                .execute("INSERT INTO sessions (user_id, connected_at, closed_at) VALUES (40, ?1, ?1)", [1000 + i])
                .unwrap();
        }
        let to_cfg = Config { database: Database::Postgres(pg_test_database()), ..Config::default() };
        let (to, _) = Store::init(&to_cfg).unwrap();
        let copied = copy(&from, &to).unwrap();
        let rows = |t: &str| copied.iter().find(|c| c.table == t).unwrap().rows;
        assert_eq!((rows("users"), rows("sessions"), rows("usage")), (2, BATCH as i64 + 8, 1));
        let (name, saved): (String, String) = to
            .conn
            .query_row("SELECT name, saved FROM users WHERE id = 40", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((name.as_str(), saved.as_str()), ("ann", "{\"a\":1}"));
        let total: i64 = to.conn.query_row("SELECT bytes_in + bytes_out FROM usage", [], |r| r.get(0)).unwrap();
        assert_eq!(total, 12_000_000_000);
        let id: i64 = to
            .conn
            .query_row("INSERT INTO users (name, password_hash, created_at, updated_at) VALUES ('new', 'h', 2, 2) RETURNING id", [], |r| r.get(0))
            .unwrap();
        assert_eq!(id, 42, "the next id follows the copied ones");
        let e = copy(&from, &to).unwrap_err().to_string();
        assert!(e.contains("already holds tollgate data"), "{e}");
    }
}
