//! `tollgate metrics`: the database's figures in Prometheus' text
//! exposition format (version 0.0.4), for node_exporter's textfile
//! collector or any scraper that runs a command.
//!
//! Everything is a gauge: the figures are read from the database as it is
//! now (events inside the retention window, usage of today's users), so
//! they may go down as well as up.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use tollgate_core::db::Db;
use tollgate_core::units::now;
use tollgate_core::{Config, Store};

/// One metric family: its samples as (labels, value).
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    fn new(name: &'static str, help: &'static str) -> Family {
        Family { name, help, samples: Vec::new() }
    }
    fn add(&mut self, labels: Vec<(&'static str, String)>, v: f64) {
        self.samples.push((labels, v));
    }
}

/// A label value as the text format wants it: backslash, quote and newline
/// escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn render(families: &[Family]) -> String {
    let mut s = String::new();
    for f in families {
        let _ = writeln!(s, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(s, "# TYPE {} gauge", f.name);
        for (labels, v) in &f.samples {
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            let l = if l.is_empty() { String::new() } else { format!("{{{}}}", l.join(",")) };
            let _ = writeln!(s, "{}{l} {v}", f.name);
        }
    }
    s
}

fn collect(c: &Db, cfg: &Config, t: i64) -> Result<Vec<Family>> {
    let mut out = Vec::new();

    let mut open = Family::new("tollgate_sessions_open", "Open sessions (tunnels) per server.");
    for (server, n) in tollgate_core::accounting::open_per_server(c)? {
        open.add(vec![("server", server)], n as f64);
    }
    out.push(open);

    let mut ev = Family::new(
        "tollgate_auth_events",
        "Auth decisions recorded in the events window (tollgate_auth_events_window_seconds), by result and reason.",
    );
    for (result, kind, n) in tollgate_core::events::counts_since(c, t - cfg.retention_secs)? {
        ev.add(vec![("result", result), ("reason", kind)], n as f64);
    }
    out.push(ev);
    let mut win = Family::new("tollgate_auth_events_window_seconds", "How long auth events are kept ([retention]).");
    win.add(vec![], cfg.retention_secs as f64);
    out.push(win);

    // Usage per plan and quota standing, from the rows `tollgate usage` prints.
    let rows = crate::accounting::usage_rows(c, None, t)?;
    // Every plan, with or without users; plan "" only when some user has none.
    let mut per_plan: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for p in tollgate_core::plans::list(c, None)? {
        per_plan.insert(p.name, (0, 0));
    }
    let (mut over80, mut over100) = (0, 0);
    for r in &rows {
        let plan = r["plan"].as_str().unwrap_or("").to_string();
        let e = per_plan.entry(plan).or_default();
        e.0 += r["total_bytes_in"].as_i64().unwrap_or(0);
        e.1 += r["total_bytes_out"].as_i64().unwrap_or(0);
        if let Some(q) = r["quota_bytes"].as_i64().filter(|q| *q > 0) {
            let used = r["period_bytes"].as_i64().unwrap_or(0);
            // used / q >= 0.8, in integers.
            if used * 5 >= q * 4 {
                over80 += 1;
            }
            if used >= q {
                over100 += 1;
            }
        }
    }
    let mut bytes = Family::new(
        "tollgate_usage_bytes",
        "Bytes charged to the users of each plan, all time (tollgate usage, TOTAL); direction in is from the clients. plan=\"\": users without a plan.",
    );
    for (plan, (i, o)) in &per_plan {
        bytes.add(vec![("plan", plan.clone()), ("direction", "in".into())], *i as f64);
        bytes.add(vec![("plan", plan.clone()), ("direction", "out".into())], *o as f64);
    }
    out.push(bytes);
    let mut quota = Family::new(
        "tollgate_users_quota_used",
        "Users who have used at least this fraction of their plan's quota in the current period.",
    );
    quota.add(vec![("at_least", "0.8".into())], over80 as f64);
    quota.add(vec![("at_least", "1".into())], over100 as f64);
    out.push(quota);

    let mut users = Family::new("tollgate_users", "User accounts, by whether they may log in (enabled) or not.");
    let (on, off) = tollgate_core::users::count_by_enabled(c)?;
    users.add(vec![("state", "enabled".into())], on as f64);
    users.add(vec![("state", "disabled".into())], off as f64);
    out.push(users);

    let mut last =
        Family::new("tollgate_sweep_last_run_timestamp_seconds", "When each server's last sweep started (Unix time).");
    let mut dur = Family::new("tollgate_sweep_last_duration_seconds", "How long each server's last sweep took.");
    let mut okf =
        Family::new("tollgate_sweep_last_success", "1 when each server's last sweep succeeded, 0 when it failed.");
    for r in tollgate_core::accounting::last_sweeps(c)? {
        let (server, at, ms, ok) = (r.server, r.at, r.duration_ms, r.ok);
        last.add(vec![("server", server.clone())], at as f64);
        dur.add(vec![("server", server.clone())], ms as f64 / 1000.0);
        okf.add(vec![("server", server)], if ok { 1.0 } else { 0.0 });
    }
    out.extend([last, dur, okf]);
    Ok(out)
}

pub fn run(store: &Store, cfg: &Config, write: Option<&Path>) -> Result<()> {
    let text = render(&collect(&store.conn, cfg, now())?);
    match write {
        None => print!("{text}"),
        Some(path) => write_atomic(path, &text)?,
    }
    Ok(())
}

/// Replace `path` with `text` so that a reader sees the old or the new
/// file, never half of one: a temporary file beside it, renamed over it.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().context("--write needs a file name")?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    let done = f
        .write_all(text.as_bytes())
        .and_then(|_| f.set_permissions(std::fs::Permissions::from_mode(0o644)))
        .and_then(|_| f.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = done {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let mut f = Family::new("tollgate_x", "An example.");
        f.add(vec![("plan", "a\"b\\c\nd".into())], 3.0);
        f.add(vec![], 0.5);
        assert_eq!(
            render(&[f]),
            "# HELP tollgate_x An example.\n# TYPE tollgate_x gauge\ntollgate_x{plan=\"a\\\"b\\\\c\\nd\"} 3\ntollgate_x 0.5\n"
        );
    }
}
