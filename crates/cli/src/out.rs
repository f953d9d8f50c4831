//! Output: aligned tables for people, JSON for scripts.

use serde_json::Value;

/// Print rows under headers, columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut width: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(headers.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// Print `key: value` pairs, keys aligned.
pub fn fields(pairs: &[(&str, String)]) {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in pairs {
        println!("{:<w$}  {v}", format!("{k}:"), w = w + 1);
    }
}

pub fn json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// A listing: the rows as JSON for scripts, or a table for people, each
/// row's cells made by `cells`.
pub fn listing(as_json: bool, rows: Vec<Value>, headers: &[&str], cells: impl Fn(&Value) -> Vec<String>) {
    if as_json {
        json(&Value::Array(rows));
    } else {
        let t: Vec<Vec<String>> = rows.iter().map(cells).collect();
        table(headers, &t);
    }
}

/// A row's text field for a table cell: "-" when absent.
pub fn text(r: &Value, k: &str) -> String {
    r[k].as_str().unwrap_or("-").to_string()
}

/// Any JSON value as a cell, one way everywhere: yes/no for booleans, "-"
/// for nothing, text as it is.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// An expiry the JSON gives as the instant it takes effect, shown as the
/// last day it is still valid ("2027-01-31") when it falls at midnight.
pub fn expiry(r: &Value, k: &str) -> String {
    match r[k].as_str().and_then(tollgate_core::units::parse_time) {
        Some(t) => tollgate_core::units::format_expiry(t),
        None => "-".into(),
    }
}
