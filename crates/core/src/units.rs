//! Sizes, durations and dates as admins type them and read them.

use anyhow::{bail, Result};
use chrono::{DateTime, NaiveDate, Utc};

/// "50GiB", "500MB", "1.5 GiB", "1024" (bytes). Decimal units are powers of
/// 1000, binary ones powers of 1024, as everywhere else.
pub fn parse_size(s: &str) -> Result<i64> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => bail!("bad size {s:?}: use a number with B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"),
    };
    let n: f64 = num.parse().map_err(|_| anyhow::anyhow!("bad size {s:?}"))?;
    let bytes = (n * mult).round();
    if !(0.0..9.0e18).contains(&bytes) {
        bail!("size {s:?} out of range");
    }
    Ok(bytes as i64)
}

/// "8h", "30d", "90m", "45s", "1h30m", "3600" (seconds).
pub fn parse_duration(s: &str) -> Result<i64> {
    let t = s.trim();
    if t.is_empty() {
        bail!("empty duration");
    }
    if let Ok(n) = t.parse::<i64>() {
        if n < 0 {
            bail!("negative duration {s:?}");
        }
        return Ok(n);
    }
    let mut total: i64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let mult = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 7 * 86400,
            _ => {
                bail!("bad duration {s:?}: use a number with s, m, h, d or w (e.g. 8h, 30d, 1h30m)")
            }
        };
        let n: i64 = num.parse().map_err(|_| anyhow::anyhow!("bad duration {s:?}"))?;
        total = n
            .checked_mul(mult)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| anyhow::anyhow!("duration {s:?} out of range"))?;
        num.clear();
    }
    if !num.is_empty() {
        bail!("bad duration {s:?}: number without a unit at the end");
    }
    Ok(total)
}

/// An account expiry: "2027-01-31" means usable through that whole UTC day,
/// so it expires at the next midnight; a full RFC 3339 time is taken as is.
pub fn parse_expiry(s: &str) -> Result<i64> {
    let t = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        let next = d.succ_opt().ok_or_else(|| anyhow::anyhow!("date {s:?} out of range"))?;
        return Ok(next.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp());
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.timestamp());
    }
    bail!("bad date {s:?}: use YYYY-MM-DD or an RFC 3339 time")
}

pub fn format_size(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// "3h12m", "2d4h", "45s".
pub fn format_duration(secs: i64) -> String {
    if secs < 0 {
        return format!("-{}", format_duration(-secs));
    }
    let (d, h, m, s) = (secs / 86400, secs % 86400 / 3600, secs % 3600 / 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h}h"),
    }
}

/// "2026-11-22 13:54:10Z"
pub fn format_time(ts: i64) -> String {
    DateTime::<Utc>::from_timestamp(ts, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| ts.to_string())
}

/// An expiry as the last day it is valid: "2027-01-31" for an account that
/// expires at 2027-02-01 00:00Z, the full time otherwise.
pub fn format_expiry(ts: i64) -> String {
    if ts.rem_euclid(86400) == 0 {
        format_time(ts - 86400)[..10].to_string()
    } else {
        format_time(ts)
    }
}

pub fn now() -> i64 {
    Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("50GiB").unwrap(), 50 * 1024 * 1024 * 1024);
        assert_eq!(parse_size("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("1.5 KiB").unwrap(), 1536);
        assert_eq!(parse_size("42").unwrap(), 42);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("-1GB").is_err());
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(1288490189), "1.2 GiB");
        assert_eq!(format_size(10), "10 B");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("8h").unwrap(), 28800);
        assert_eq!(parse_duration("1h30m").unwrap(), 5400);
        assert_eq!(parse_duration("30d").unwrap(), 30 * 86400);
        assert_eq!(parse_duration("12").unwrap(), 12);
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("5h3").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
        assert_eq!(format_duration(3 * 3600 + 12 * 60 + 5), "3h12m");
        assert_eq!(format_duration(45), "45s");
        assert_eq!(format_duration(2 * 86400 + 4 * 3600), "2d4h");
    }

    #[test]
    fn expiry_covers_the_whole_day() {
        let t = parse_expiry("2027-01-31").unwrap();
        assert_eq!(format_time(t), "2027-02-01 00:00:00Z");
        assert_eq!(parse_expiry("2027-01-31T12:00:00Z").unwrap(), t - 12 * 3600);
        assert!(parse_expiry("31/01/2027").is_err());
        assert_eq!(format_expiry(t), "2027-01-31");
        assert_eq!(format_expiry(t + 60), "2027-02-01 00:01:00Z");
    }
}
