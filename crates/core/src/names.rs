//! Names of users, servers, plans and groups: short, printable, and safe to
//! put in a log line, a file name or an OpenVPN directive.

use crate::db::{Db, Optional};
use anyhow::{anyhow, bail, Result};

pub const MAX_NAME: usize = 64;

pub fn check_name(kind: &str, name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "._@+-".contains(c);
    if name.is_empty() || name.len() > MAX_NAME {
        bail!("{kind} name must be 1 to {MAX_NAME} characters");
    }
    if !name.chars().all(ok_char) || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        bail!("{kind} name {name:?} may use only letters, digits and . _ @ + - (starting with a letter or digit)");
    }
    Ok(())
}

/// The four kinds of named record, for [`id_of`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    User,
    Plan,
    Group,
    Server,
}

impl Kind {
    fn table(self) -> &'static str {
        match self {
            Kind::User => "users",
            Kind::Plan => "plans",
            Kind::Group => "groups",
            Kind::Server => "servers",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Plan => "plan",
            Kind::Group => "group",
            Kind::Server => "server",
        }
    }
}

/// The id of a named record, or "no such KIND: NAME".
pub fn id_of(db: &Db, kind: Kind, name: &str) -> Result<i64> {
    db.query_row(&format!("SELECT id FROM {} WHERE name = ?1", kind.table()), [name], |r| r.get(0))
        .optional()?
        .ok_or_else(|| anyhow!("no such {}: {name}", kind.noun()))
}

/// Render untrusted text for one log line: no control characters, bounded.
pub fn for_log(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i >= MAX_NAME {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// Untrusted text (a program's reason, say) as one bounded line: control
/// characters and line breaks become spaces, runs of space collapse.
pub fn one_line(s: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for word in s.split(|c: char| c.is_whitespace() || c.is_control()).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.chars().count() > max_chars {
        out = out.chars().take(max_chars).collect();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["alice", "bob.smith@example.com", "nl-1", "A_1+x"] {
            check_name("user", ok).unwrap();
        }
        for bad in ["", "-x", "a b", "a\nb", "ü", &"x".repeat(65)] {
            assert!(check_name("user", bad).is_err(), "{bad:?}");
        }
        assert_eq!(for_log("a\u{1b}[31mb"), "a?[31mb");
        assert_eq!(for_log(&"x".repeat(100)).chars().count(), 65);
    }
}

/// One spelling for a client address, whichever hook or report it came
/// from: IPv6 in its compressed form, IPv4-mapped IPv6 (a dual-stack
/// socket's view of an IPv4 client) as plain IPv4. Not an address: as given.
pub fn canonical_ip(s: &str) -> String {
    // No trimming: what does not parse as it is stays as it is, so that the
    // spelling is idempotent (found by fuzzing the status parser).
    match s.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        Ok(ip) => ip.to_string(),
        Err(_) => s.to_string(),
    }
}

#[cfg(test)]
mod ip_tests {
    use super::{canonical_ip, one_line};

    #[test]
    fn addresses_have_one_spelling() {
        assert_eq!(canonical_ip("192.0.2.2"), "192.0.2.2");
        assert_eq!(canonical_ip("::ffff:192.0.2.2"), "192.0.2.2");
        assert_eq!(canonical_ip("2001:DB8:0:0::2"), "2001:db8::2");
        assert_eq!(canonical_ip("not-an-ip"), "not-an-ip");
        for junk in ["\u{c}001:db8::2", " 192.0.2.2", "2001:db8::2\t"] {
            assert_eq!(canonical_ip(junk), junk);
            assert_eq!(canonical_ip(&canonical_ip(junk)), canonical_ip(junk));
        }
    }

    #[test]
    fn one_line_collapses_and_bounds() {
        assert_eq!(one_line("  a\nb\t\x07c  ", 10), "a b c");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }
}
