//! One connection to the store, SQLite or PostgreSQL, with one way to run
//! a statement on either.
//!
//! Statements are written once, in the SQL both engines speak: `?N`
//! placeholders (rewritten to `$N` for PostgreSQL), integers for flags
//! and times, `ON CONFLICT` upserts, `RETURNING`, `string_agg`. The API
//! follows rusqlite's (`execute`, `query_row`, `optional`, `params!`) so
//! the code reads the same on both engines; a write transaction takes
//! SQLite's write lock up front, or PostgreSQL's store-wide advisory lock,
//! so that every decision made inside one sees the same store on both.

use crate::pg;
use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

pub struct Db {
    inner: Inner,
}

enum Inner {
    Sqlite(rusqlite::Connection),
    Pg(RefCell<pg::Client>),
}

#[derive(Debug)]
pub enum Error {
    /// `query_row` found nothing (see `Optional`).
    NoRows,
    Sqlite(rusqlite::Error),
    Pg(pg::Error),
    /// A column's value does not fit the Rust type asked for.
    Type {
        column: usize,
        why: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoRows => write!(f, "no such row"),
            Error::Sqlite(e) => write!(f, "{e}"),
            Error::Pg(e) => write!(f, "{e}"),
            Error::Type { column, why } => write!(f, "column {column}: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        match e {
            rusqlite::Error::QueryReturnedNoRows => Error::NoRows,
            e => Error::Sqlite(e),
        }
    }
}

impl From<pg::Error> for Error {
    fn from(e: pg::Error) -> Error {
        Error::Pg(e)
    }
}

impl Error {
    /// A UNIQUE or PRIMARY KEY constraint refused the row.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Error::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            Error::Pg(e) => e.code() == Some("23505"),
            _ => false,
        }
    }

    /// The store could not be used in time: locked past the busy timeout,
    /// or (PostgreSQL) unreachable. The caller refuses and says to retry.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            }
            // lock_not_available, query_canceled (statement_timeout),
            // admin_shutdown, crash_shutdown, cannot_connect_now
            Error::Pg(pg::Error::Server { code, .. }) => {
                matches!(code.as_str(), "55P03" | "57014" | "57P01" | "57P02" | "57P03")
            }
            Error::Pg(pg::Error::Unreachable(_)) => true,
            _ => false,
        }
    }
}

/// Whether an error (anywhere in an anyhow chain) means the store is
/// unavailable rather than the request wrong.
pub fn unavailable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<Error>().is_some_and(Error::is_unavailable))
}

/// A value to bind, on either engine.
pub trait ToSql: rusqlite::ToSql {
    fn pg(&self) -> pg::Param<'_>;
}

/// The PostgreSQL type a Rust type binds as, also when it is NULL (a
/// parameter only tested with IS NULL has nothing else to type it by).
pub trait PgType {
    const OID: u32;
}

fn int(v: i64) -> pg::Param<'static> {
    pg::Param { text: Some(Cow::Owned(v.to_string())), oid: pg::INT8 }
}

macro_rules! int_to_sql {
    ($($t:ty),*) => {$(
        impl ToSql for $t {
            fn pg(&self) -> pg::Param<'_> {
                int(*self as i64)
            }
        }
    )*};
}
int_to_sql!(i64, i32, u32, u16, u8);

impl ToSql for bool {
    fn pg(&self) -> pg::Param<'_> {
        int(*self as i64)
    }
}

impl ToSql for f64 {
    fn pg(&self) -> pg::Param<'_> {
        pg::Param { text: Some(Cow::Owned(self.to_string())), oid: pg::FLOAT8 }
    }
}

impl ToSql for str {
    fn pg(&self) -> pg::Param<'_> {
        pg::Param { text: Some(Cow::Borrowed(self)), oid: pg::TEXT }
    }
}

impl ToSql for String {
    fn pg(&self) -> pg::Param<'_> {
        self.as_str().pg()
    }
}

impl ToSql for Vec<u8> {
    fn pg(&self) -> pg::Param<'_> {
        pg::Param { text: Some(Cow::Owned(format!("\\x{}", data_encoding::HEXLOWER.encode(self)))), oid: pg::BYTEA }
    }
}

impl<T: ToSql + PgType> ToSql for Option<T> {
    fn pg(&self) -> pg::Param<'_> {
        match self {
            Some(v) => v.pg(),
            None => pg::Param { text: None, oid: T::OID },
        }
    }
}

macro_rules! pg_type {
    ($oid:expr => $($t:ty),*) => {$(
        impl PgType for $t {
            const OID: u32 = $oid;
        }
    )*};
}
pg_type!(pg::INT8 => i64, i32, u32, u16, u8, bool);
pg_type!(pg::FLOAT8 => f64);
pg_type!(pg::TEXT => str, String);
pg_type!(pg::BYTEA => Vec<u8>);

impl<T: PgType + ?Sized> PgType for &T {
    const OID: u32 = T::OID;
}

impl<T: ToSql + ?Sized> ToSql for &T {
    fn pg(&self) -> pg::Param<'_> {
        (**self).pg()
    }
}

/// A value of any type, as SQLite stores it (for copying rows between
/// stores).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<rusqlite::types::Value> for Value {
    fn from(v: rusqlite::types::Value) -> Value {
        use rusqlite::types::Value as V;
        match v {
            V::Null => Value::Null,
            V::Integer(i) => Value::Int(i),
            V::Real(f) => Value::Real(f),
            V::Text(t) => Value::Text(t),
            V::Blob(b) => Value::Blob(b),
        }
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl ToSql for Value {
    fn pg(&self) -> pg::Param<'_> {
        match self {
            // Typed by the column it goes into.
            Value::Null => pg::Param { text: None, oid: 0 },
            Value::Int(i) => i.pg(),
            Value::Real(f) => f.pg(),
            Value::Text(t) => t.pg(),
            Value::Blob(b) => b.pg(),
        }
    }
}

/// A value read from a column, on either engine.
pub trait FromSql: rusqlite::types::FromSql + Sized {
    fn from_pg(text: Option<&str>) -> Result<Self, String>;
}

fn not_null(text: Option<&str>) -> Result<&str, String> {
    text.ok_or_else(|| "unexpected NULL".to_string())
}

/// PostgreSQL spells the result of a comparison t or f; SQLite 1 or 0.
fn pg_int(text: Option<&str>) -> Result<i64, String> {
    match not_null(text)? {
        "t" => Ok(1),
        "f" => Ok(0),
        s => s.parse().map_err(|_| format!("{s:?} is not an integer")),
    }
}

macro_rules! int_from_sql {
    ($($t:ty),*) => {$(
        impl FromSql for $t {
            fn from_pg(text: Option<&str>) -> Result<Self, String> {
                let v = pg_int(text)?;
                <$t>::try_from(v).map_err(|_| format!("{v} is out of range"))
            }
        }
    )*};
}
int_from_sql!(i64, i32, u32, u16, u8);

impl FromSql for bool {
    fn from_pg(text: Option<&str>) -> Result<Self, String> {
        Ok(pg_int(text)? != 0)
    }
}

impl FromSql for f64 {
    fn from_pg(text: Option<&str>) -> Result<Self, String> {
        let s = not_null(text)?;
        s.parse().map_err(|_| format!("{s:?} is not a number"))
    }
}

impl FromSql for String {
    fn from_pg(text: Option<&str>) -> Result<Self, String> {
        not_null(text).map(str::to_string)
    }
}

impl<T: FromSql> FromSql for Option<T> {
    fn from_pg(text: Option<&str>) -> Result<Self, String> {
        text.map(|t| T::from_pg(Some(t))).transpose()
    }
}

/// Parameters: `params![a, b]`, an array of one type, or `()` for none.
pub trait Params {
    fn list(&self) -> Vec<&dyn ToSql>;
}

impl Params for () {
    fn list(&self) -> Vec<&dyn ToSql> {
        Vec::new()
    }
}

/// `[]`: no parameters (arrays of one type have a length from 1 up, so
/// that the empty one has a type).
impl Params for [&dyn ToSql; 0] {
    fn list(&self) -> Vec<&dyn ToSql> {
        Vec::new()
    }
}

macro_rules! array_params {
    ($($n:literal)*) => {$(
        impl<T: ToSql> Params for [T; $n] {
            fn list(&self) -> Vec<&dyn ToSql> {
                self.iter().map(|v| v as &dyn ToSql).collect()
            }
        }
        impl<T: ToSql> Params for &[T; $n] {
            fn list(&self) -> Vec<&dyn ToSql> {
                self.iter().map(|v| v as &dyn ToSql).collect()
            }
        }
    )*};
}
array_params!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);

impl<T: ToSql> Params for &[T] {
    fn list(&self) -> Vec<&dyn ToSql> {
        self.iter().map(|v| v as &dyn ToSql).collect()
    }
}

impl Params for Vec<&dyn ToSql> {
    fn list(&self) -> Vec<&dyn ToSql> {
        self.clone()
    }
}

#[macro_export]
macro_rules! params {
    () => { () };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::db::ToSql),+] as &[&dyn $crate::db::ToSql] };
}
pub use crate::params;

/// One row of a result.
pub struct Row<'a> {
    inner: RowInner<'a>,
}

enum RowInner<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Pg(&'a [Option<String>]),
}

/// A column's position (a trait, so that `get(0)` needs no suffix).
pub trait RowIndex {
    fn index(self) -> usize;
}

impl RowIndex for usize {
    fn index(self) -> usize {
        self
    }
}

impl Row<'_> {
    pub fn get<I: RowIndex, T: FromSql>(&self, idx: I) -> Result<T> {
        let idx = idx.index();
        match &self.inner {
            RowInner::Sqlite(r) => Ok(r.get(idx)?),
            RowInner::Pg(r) => {
                let text = r.get(idx).ok_or(Error::Type { column: idx, why: "no such column".into() })?;
                T::from_pg(text.as_deref()).map_err(|why| Error::Type { column: idx, why })
            }
        }
    }
}

/// `query_row(...).optional()`: no row is `None`, not an error.
pub trait Optional<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> Optional<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A key for PostgreSQL's advisory lock that serialises tollgate's write
/// transactions, as SQLite's single writer does ("tollgate" in ASCII).
const WRITE_LOCK: i64 = 0x746f_6c6c_6761_7465;

impl Db {
    pub fn sqlite(conn: rusqlite::Connection) -> Db {
        conn.set_prepared_statement_cache_capacity(64);
        Db { inner: Inner::Sqlite(conn) }
    }

    pub fn postgres(client: pg::Client) -> Db {
        Db { inner: Inner::Pg(RefCell::new(client)) }
    }

    pub fn engine(&self) -> Engine {
        match self.inner {
            Inner::Sqlite(_) => Engine::Sqlite,
            Inner::Pg(_) => Engine::Postgres,
        }
    }

    /// The SQLite connection, for what only SQLite has (pragmas, backup).
    pub fn sqlite_conn(&self) -> Option<&rusqlite::Connection> {
        match &self.inner {
            Inner::Sqlite(c) => Some(c),
            Inner::Pg(_) => None,
        }
    }

    /// Runs one statement; returns the rows it changed.
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize> {
        let list = params.list();
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                Ok(st.execute(&*sqlite_params(&list))?)
            }
            Inner::Pg(c) => Ok(c.borrow_mut().query(&pg_sql(sql), &pg_params(&list))?.affected as usize),
        }
    }

    /// Runs statements separated by semicolons, without parameters.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Inner::Pg(c) => Ok(c.borrow_mut().batch(sql)?),
        }
    }

    /// The first row, mapped; `Error::NoRows` if there is none.
    pub fn query_row<P: Params, T>(&self, sql: &str, params: P, f: impl FnOnce(&Row<'_>) -> Result<T>) -> Result<T> {
        let list = params.list();
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let mut rows = st.query(&*sqlite_params(&list))?;
                match rows.next()? {
                    Some(r) => f(&Row { inner: RowInner::Sqlite(r) }),
                    None => Err(Error::NoRows),
                }
            }
            Inner::Pg(c) => {
                let out = c.borrow_mut().query(&pg_sql(sql), &pg_params(&list))?;
                match out.rows.first() {
                    Some(r) => f(&Row { inner: RowInner::Pg(r) }),
                    None => Err(Error::NoRows),
                }
            }
        }
    }

    /// Every row, mapped.
    pub fn query_map<P: Params, T>(
        &self,
        sql: &str,
        params: P,
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let list = params.list();
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let mut rows = st.query(&*sqlite_params(&list))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    out.push(f(&Row { inner: RowInner::Sqlite(r) })?);
                }
                Ok(out)
            }
            Inner::Pg(c) => {
                let res = c.borrow_mut().query(&pg_sql(sql), &pg_params(&list))?;
                res.rows.iter().map(|r| f(&Row { inner: RowInner::Pg(r) })).collect()
            }
        }
    }

    pub fn prepare<'a>(&'a self, sql: &'a str) -> Result<Stmt<'a>> {
        Ok(Stmt { db: self, sql })
    }

    pub fn prepare_cached<'a>(&'a self, sql: &'a str) -> Result<Stmt<'a>> {
        self.prepare(sql)
    }

    /// Whether the query returns a row.
    pub fn exists<P: Params>(&self, sql: &str, params: P) -> Result<bool> {
        self.query_row(sql, params, |_| Ok(())).optional().map(|r| r.is_some())
    }

    /// A transaction for reading a consistent view (and writes that need
    /// no lock taken up front).
    pub fn transaction(&self) -> Result<Tx<'_>> {
        self.execute_batch("BEGIN")?;
        Ok(Tx { db: self, done: false })
    }

    /// A write transaction that takes the write lock up front, so that
    /// concurrent writers wait their turn (within the busy timeout or
    /// PostgreSQL's lock_timeout) instead of failing on an upgrade, and
    /// every check made inside it holds until commit.
    pub fn write_tx(&self) -> Result<Tx<'_>> {
        match &self.inner {
            Inner::Sqlite(_) => self.execute_batch("BEGIN IMMEDIATE")?,
            Inner::Pg(_) => {
                self.execute_batch("BEGIN")?;
                let tx = Tx { db: self, done: false };
                tx.query_row("SELECT pg_advisory_xact_lock(?1)", [WRITE_LOCK], |_| Ok(()))?;
                return Ok(tx);
            }
        }
        Ok(Tx { db: self, done: false })
    }
}

/// Mapped rows, as rusqlite's `query_map` yields them.
pub type Rows<T> = std::iter::Map<std::vec::IntoIter<T>, fn(T) -> Result<T>>;

/// A statement to run, possibly many times (SQLite keeps the prepared
/// statement in its cache; PostgreSQL parses it each time, in the same
/// round trip).
pub struct Stmt<'a> {
    db: &'a Db,
    sql: &'a str,
}

impl Stmt<'_> {
    pub fn execute<P: Params>(&mut self, params: P) -> Result<usize> {
        self.db.execute(self.sql, params)
    }

    pub fn query_row<P: Params, T>(&mut self, params: P, f: impl FnOnce(&Row<'_>) -> Result<T>) -> Result<T> {
        self.db.query_row(self.sql, params, f)
    }

    /// Every row, mapped, as an iterator of results (as rusqlite's).
    pub fn query_map<P: Params, T>(&mut self, params: P, f: impl FnMut(&Row<'_>) -> Result<T>) -> Result<Rows<T>> {
        Ok(self.db.query_map(self.sql, params, f)?.into_iter().map(Ok as fn(T) -> Result<T>))
    }

    pub fn exists<P: Params>(&mut self, params: P) -> Result<bool> {
        self.db.exists(self.sql, params)
    }
}

/// An open transaction: rolled back when dropped without `commit`.
pub struct Tx<'a> {
    db: &'a Db,
    done: bool,
}

impl<'a> Tx<'a> {
    /// A transaction the caller began itself (e.g. SQLite's EXCLUSIVE).
    pub(crate) fn adopt(db: &'a Db) -> Tx<'a> {
        Tx { db, done: false }
    }

    pub fn commit(mut self) -> Result<()> {
        self.done = true;
        self.db.execute_batch("COMMIT")
    }

    pub fn rollback(mut self) -> Result<()> {
        self.done = true;
        self.db.execute_batch("ROLLBACK")
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.db.execute_batch("ROLLBACK");
        }
    }
}

fn sqlite_params<'a>(list: &'a [&'a dyn ToSql]) -> Vec<&'a dyn rusqlite::ToSql> {
    list.iter().map(|p| *p as &dyn rusqlite::ToSql).collect()
}

fn pg_params<'a>(list: &'a [&'a dyn ToSql]) -> Vec<pg::Param<'a>> {
    list.iter().map(|p| p.pg()).collect()
}

/// `?N` and `?` placeholders as PostgreSQL's `$N`, outside quotes.
pub fn pg_sql(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quote: Option<char> = None;
    let mut next = 1u32;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => {
                let mut n = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    n.push(*d);
                    chars.next();
                }
                let k = if n.is_empty() { next } else { n.parse().unwrap_or(next) };
                next = k + 1;
                out.push('$');
                out.push_str(&k.to_string());
            }
            (None, c) => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_numbered_outside_quotes() {
        assert_eq!(pg_sql("SELECT 1"), "SELECT 1");
        assert_eq!(
            pg_sql("UPDATE t SET a = ?2 WHERE id = ?1 AND b = ?10"),
            "UPDATE t SET a = $2 WHERE id = $1 AND b = $10"
        );
        assert_eq!(pg_sql("SELECT ? , ?, '?' || \"a?\""), "SELECT $1 , $2, '?' || \"a?\"");
        assert_eq!(pg_sql("SELECT 'it''s ?', ?"), "SELECT 'it''s ?', $1");
    }

    #[test]
    fn both_engines_read_the_same_values() {
        let db = Db::sqlite(rusqlite::Connection::open_in_memory().unwrap());
        db.execute_batch("CREATE TABLE t (a INTEGER, b TEXT, c INTEGER)").unwrap();
        db.execute("INSERT INTO t VALUES (?1, ?2, ?3)", params![5i64, "x", None::<i64>]).unwrap();
        let (a, b, c): (i64, String, Option<i64>) =
            db.query_row("SELECT a, b, c FROM t", (), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
        assert_eq!((a, b.as_str(), c), (5, "x", None));
        assert!(db.query_row("SELECT a FROM t WHERE a = 6", (), |r| r.get::<_, i64>(0)).optional().unwrap().is_none());
        assert_eq!(i64::from_pg(Some("t")).unwrap(), 1);
        assert!(!bool::from_pg(Some("0")).unwrap());
        assert_eq!(Option::<String>::from_pg(None).unwrap(), None);
        assert!(u32::from_pg(Some("-1")).is_err());
    }
}
