//! Groups: users that share grants, pushed options and an auth method.
//! The store's side of `tollgate group`.

use crate::db::{params, Db, Optional};
use crate::names::{id_of, Kind};
use crate::servers::{self, Grantee};
use anyhow::{bail, Result};

/// A new group with nothing set; "already exists" when the name is taken.
pub fn add(db: &Db, name: &str, now: i64) -> Result<i64> {
    if db.query_row("SELECT 1 FROM groups WHERE name = ?1", [name], |_| Ok(())).optional()?.is_some() {
        bail!("group {name} already exists");
    }
    Ok(db.query_row("INSERT INTO groups (name, created_at) VALUES (?1, ?2) RETURNING id", params![name, now], |r| {
        r.get(0)
    })?)
}

/// The options pushed to members, one per line of `push`.
pub fn set_push(db: &Db, id: i64, push: &[String]) -> Result<()> {
    for p in push {
        if p.trim().is_empty() || p.contains(['\n', '\r', '"']) {
            bail!("--push takes one option without quotes or line breaks, e.g. 'route 10.1.0.0 255.255.0.0'");
        }
    }
    db.execute("UPDATE groups SET push = ?2 WHERE id = ?1", params![id, push.join("\n")])?;
    Ok(())
}

pub fn set_redirect_gateway(db: &Db, id: i64, on: bool) -> Result<()> {
    db.execute("UPDATE groups SET redirect_gateway = ?2 WHERE id = ?1", params![id, on])?;
    Ok(())
}

pub fn set_all_servers(db: &Db, id: i64, on: bool) -> Result<()> {
    db.execute("UPDATE groups SET all_servers = ?2 WHERE id = ?1", params![id, on])?;
    Ok(())
}

/// The members' auth method, or `None` for the config's.
pub fn set_auth_method(db: &Db, id: i64, method: Option<&str>) -> Result<()> {
    db.execute("UPDATE groups SET auth_method = ?2 WHERE id = ?1", params![id, method])?;
    Ok(())
}

/// The group's own auth method, if it has one.
pub fn auth_method(db: &Db, id: i64) -> Result<Option<String>> {
    Ok(db.query_row("SELECT auth_method FROM groups WHERE id = ?1", [id], |r| r.get(0))?)
}

/// A group as `group list` and `group show` report it.
#[derive(Clone, Debug)]
pub struct GroupRow {
    pub name: String,
    pub auth_method: Option<String>,
    pub all_servers: bool,
    pub servers: Vec<String>,
    pub redirect_gateway: bool,
    pub push: Vec<String>,
    /// How many members it has.
    pub users: i64,
}

/// Every group by name, or only `only`.
pub fn list(db: &Db, only: Option<&str>) -> Result<Vec<GroupRow>> {
    let mut st = db.prepare(
        "SELECT g.id, g.name, g.all_servers, g.redirect_gateway, g.push,
                (SELECT count(*) FROM users u WHERE u.group_id = g.id), g.auth_method
           FROM groups g WHERE ?1 IS NULL OR g.name = ?1 ORDER BY g.name",
    )?;
    let base = st
        .query_map([only], |r| {
            let push: String = r.get(4)?;
            Ok((
                r.get::<_, i64>(0)?,
                GroupRow {
                    name: r.get(1)?,
                    all_servers: r.get(2)?,
                    redirect_gateway: r.get(3)?,
                    push: push.lines().map(str::to_string).collect(),
                    users: r.get(5)?,
                    auth_method: r.get(6)?,
                    servers: Vec::new(),
                },
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    base.into_iter()
        .map(|(id, mut g)| {
            g.servers = servers::granted(db, Grantee::Group(id))?;
            Ok(g)
        })
        .collect()
}

/// Delete group `name`; refused while it has members unless `force`
/// (they then belong to no group).
pub fn delete(db: &Db, name: &str, force: bool) -> Result<()> {
    let id = id_of(db, Kind::Group, name)?;
    let n: i64 = db.query_row("SELECT count(*) FROM users WHERE group_id = ?1", [id], |r| r.get(0))?;
    if n > 0 && !force {
        bail!("group {name} has {n} member(s): move them first (tollgate user set NAME --group OTHER), or --force");
    }
    db.execute("DELETE FROM groups WHERE id = ?1", [id])?;
    Ok(())
}
