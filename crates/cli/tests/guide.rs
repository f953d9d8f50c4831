//! The guide is tested: every `tollgate` and `gen-ovpn` line in README.md
//! and docs/admin-guide.md either runs as printed, or (a synopsis, with
//! placeholders such as NAME or [--flag]) names commands and flags that
//! exist. Docs and behaviour cannot drift apart unnoticed.
//!
//! Examples run through `sh -c` in a fresh directory per code block, as
//! install.sh leaves a host: a database and the server SERVER (`vpn1`),
//! with tollgate and gen-ovpn on PATH and TOLLGATE_CONFIG set. A command
//! that would prompt for a password gets `--password-stdin` and the
//! password of the examples on stdin. Each must exit 0, except test-auth
//! for a user the block did not create: no directory or provider runs
//! here, so that login is denied (exit 4).
mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const PASSWORD: &str = "correct horse battery";
const SERVER: &str = "vpn1";

struct Line {
    doc: &'static str,
    /// The line it starts on, and the last line of its continuation.
    no: usize,
    last: usize,
    text: String,
}

/// Code lines (indented or fenced) that run tollgate or gen-ovpn, grouped
/// by code block; log lines ("tollgate auth-verify: DENY …") are not commands.
fn blocks(doc: &'static str) -> Vec<Vec<Line>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(doc);
    let text = std::fs::read_to_string(&path).unwrap();
    let (mut out, mut cur, mut fenced) = (Vec::new(), Vec::new(), false);
    for (i, l) in text.lines().enumerate() {
        if l.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let code = fenced || l.starts_with("    ");
        if !code {
            if !cur.is_empty() && !l.trim().is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let t = l.trim();
        // A synopsis continues on lines that open with [ or (.
        if let Some(prev) = cur.last_mut().filter(|p: &&mut Line| p.last == i && t.starts_with(['[', '('])) {
            prev.text.push(' ');
            prev.text.push_str(t);
            prev.last = i + 1;
            continue;
        }
        let cmd = if t.starts_with("tollgate ") || t.starts_with("gen-ovpn ") {
            Some(t)
        } else {
            t.find("| tollgate ").or_else(|| t.find("| gen-ovpn ")).map(|at| &t[at + 2..])
        };
        let log_line = |c: &str| c.split_whitespace().nth(1).is_some_and(|w| w.ends_with(':'));
        if cmd.is_some_and(|c| !log_line(c)) {
            cur.push(Line { doc, no: i + 1, last: i + 1, text: t.replace("SERVER", SERVER) });
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Without its trailing comment ("   # prompts for the password").
fn command(l: &str) -> &str {
    l.find("  #").map_or(l, |i| &l[..i]).trim()
}

/// A synopsis has placeholders: [optional], a|b, …, NAME.
fn is_synopsis(l: &str) -> bool {
    let c = command(l);
    c.contains(['[', '|', '…']) && !c.contains("| tollgate")
        || c.contains("...")
        || c.split_whitespace().any(|w| !w.is_empty() && w.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_'))
}

fn bin_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_tollgate")).parent().unwrap().to_path_buf();
    assert!(dir.join("gen-ovpn").exists(), "build gen-ovpn first (cargo build): the guide runs it");
    dir
}

#[test]
fn every_synopsis_names_real_commands_and_flags() {
    let bins = bin_dir();
    let mut checked = 0;
    for doc in ["README.md", "docs/admin-guide.md"] {
        for l in blocks(doc).into_iter().flatten().filter(|l| is_synopsis(&l.text)) {
            let c = command(&l.text);
            let mut words = c.split_whitespace();
            let exe = words.next().unwrap();
            // The command and its subcommands: lowercase words before the
            // first flag or placeholder, `list|show NAME|del` naming
            // alternatives.
            let mut names: Vec<&str> = Vec::new();
            for w in words {
                if w.starts_with(['-', '[']) || (!w.contains('|') && !w.starts_with(|ch: char| ch.is_ascii_lowercase()))
                {
                    break;
                }
                names.extend(w.split('|').filter(|a| a.chars().all(|ch| ch.is_ascii_lowercase() || ch == '-')));
            }
            let (group, subs) = names.split_first().map_or((None, &[][..]), |(g, s)| (Some(*g), s));
            let mut paths: Vec<Vec<&str>> = subs.iter().map(|s| vec![group.unwrap(), *s]).collect();
            paths.push(group.into_iter().collect());
            let mut text = String::new();
            for p in &paths {
                let o = Command::new(bins.join(exe)).args(p).arg("--help").output().unwrap();
                assert_eq!(o.status.code(), Some(0), "{}:{}: `{exe} {}` is no command", l.doc, l.no, p.join(" "));
                text.push_str(&String::from_utf8_lossy(&o.stdout));
            }
            for flag in c.split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '-')).filter(|w| w.starts_with("--")) {
                assert!(
                    text.contains(flag),
                    "{}:{}: {flag} is not an option of `{exe} {}`",
                    l.doc,
                    l.no,
                    names.join(" ")
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} synopses found: is the extraction broken?");
}

#[test]
fn every_example_runs_as_printed() {
    let bins = bin_dir();
    let path = format!("{}:{}", bins.display(), std::env::var("PATH").unwrap_or_default());
    let mut ran = 0;
    for doc in ["README.md", "docs/admin-guide.md"] {
        for (n, block) in blocks(doc).into_iter().enumerate() {
            let examples: Vec<Line> = block.into_iter().filter(|l| !is_synopsis(&l.text)).collect();
            if examples.is_empty() {
                continue;
            }
            let e = host(&format!("guide{}{n}", doc.len()));
            let mut created: Vec<String> = Vec::new();
            for l in examples {
                let mut c = command(&l.text).to_string();
                let printed = c.clone();
                let words: Vec<&str> = printed.split_whitespace().collect();
                let prompts = !c.contains("--password-stdin")
                    && (c.starts_with("tollgate user add")
                        || c.starts_with("tollgate user passwd")
                        || c.starts_with("tollgate test-auth"));
                if prompts {
                    c.push_str(" --password-stdin");
                }
                let tested_user = words.iter().position(|w| *w == "test-auth").map(|i| words[i + 1].to_string());
                let o = {
                    use std::io::Write;
                    let mut child = Command::new("sh")
                        .arg("-c")
                        .arg(&c)
                        .current_dir(&e.dir)
                        .env("PATH", &path)
                        .env("TOLLGATE_CONFIG", &e.config)
                        .stdin(Stdio::piped())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap();
                    let _ = child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes());
                    child.wait_with_output().unwrap()
                };
                let want = match tested_user {
                    Some(u) if !created.contains(&u) => 4,
                    _ => 0,
                };
                assert_eq!(
                    o.status.code(),
                    Some(want),
                    "{}:{}: `{c}`: {}{}",
                    l.doc,
                    l.no,
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                if let ["tollgate", "user", "add", name, ..] = words[..] {
                    created.push(name.to_string());
                }
                ran += 1;
            }
        }
    }
    eprintln!("{ran} examples ran");
    assert!(ran >= 14, "only {ran} examples ran: is the extraction broken?");
}

/// A directory as install.sh leaves a host: config, database, the server
/// SERVER, and the files `server add` examples name.
fn host(name: &str) -> common::Env {
    let e = common::blank(name);
    std::fs::write(&e.config, format!("database = \"t.db\"\nserver = \"{SERVER}\"\n")).unwrap();
    e.query_exec(&format!(
        "INSERT INTO servers (name, host, ca_pem, tls_mode, tls_key, created_at) VALUES ('{SERVER}', 'h', 'x', 'tls-crypt', 'k', 0)"
    ));
    std::fs::write(e.dir.join("ca.crt"), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
    std::fs::write(
        e.dir.join("tc.key"),
        "-----BEGIN OpenVPN Static key V1-----\n00\n-----END OpenVPN Static key V1-----\n",
    )
    .unwrap();
    e
}
