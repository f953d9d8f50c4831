//! Sizes, durations and dates as admins type them and read them.

use anyhow::{bail, Result};
use chrono::{DateTime, NaiveDate, Utc};

/// The one grammar of sizes and durations: numbers each followed by a unit,
/// case-insensitive, spaces allowed between them ("1h30m", "1h 30m",
/// "1.5 GiB"), each unit at most once and the larger first. A bare number
/// is refused: the reader could not tell what it means.
fn parse_amount(s: &str, what: &str, units: &[(&str, f64)], hint: &str) -> Result<f64> {
    let t = s.trim().to_ascii_lowercase();
    if t.is_empty() {
        bail!("empty {what}: {hint}");
    }
    let mut rest = t.as_str();
    let mut total = 0.0;
    let mut last: Option<f64> = None;
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (num, tail) = rest.split_at(n_end);
        let tail = tail.trim_start();
        let u_end = tail.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(u_end);
        let n: f64 = match num.parse() {
            Ok(n) if num.chars().next().is_some_and(|c| c.is_ascii_digit()) => n,
            _ => bail!("bad {what} {s:?}: {hint}"),
        };
        if unit.is_empty() {
            bail!("{what} {s:?} has no unit: {hint}");
        }
        let Some(&(_, mult)) = units.iter().find(|(name, _)| *name == unit) else {
            bail!("bad {what} {s:?}: unknown unit {unit:?}; {hint}");
        };
        if last.is_some_and(|l| mult >= l) {
            bail!("bad {what} {s:?}: each unit once, the larger first (e.g. 1h30m)");
        }
        last = Some(mult);
        total += n * mult;
        rest = tail.trim_start();
    }
    if !(0.0..9.0e18).contains(&total) {
        bail!("{what} {s:?} out of range");
    }
    Ok(total.round())
}

const SIZE_UNITS: [(&str, f64); 9] = [
    ("b", 1.0),
    ("kb", 1e3),
    ("mb", 1e6),
    ("gb", 1e9),
    ("tb", 1e12),
    ("kib", 1024.0),
    ("mib", 1048576.0),
    ("gib", 1073741824.0),
    ("tib", 1099511627776.0),
];

/// "50GiB", "500MB", "1.5 GiB", "1024B". Decimal units are powers of 1000,
/// binary ones powers of 1024, as everywhere else.
pub fn parse_size(s: &str) -> Result<i64> {
    let hint = "a number and a unit: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)";
    Ok(parse_amount(s, "size", &SIZE_UNITS, hint)? as i64)
}

/// "8h", "30d", "90m", "45s", "1h30m", "1h 30m", "2w".
pub fn parse_duration(s: &str) -> Result<i64> {
    const UNITS: [(&str, f64); 5] = [("w", 604800.0), ("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)];
    let hint = "a number and a unit: s, m, h, d or w (e.g. 45s, 8h, 30d, 1h30m)";
    Ok(parse_amount(s, "duration", &UNITS, hint)? as i64)
}

/// An account expiry: "2027-01-31" means usable through that whole UTC day,
/// so it expires at the next midnight; a full RFC 3339 time is taken as is;
/// a duration ("30d") counts from `now`.
pub fn parse_expiry(s: &str, now: i64) -> Result<i64> {
    let t = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        let next = d.succ_opt().ok_or_else(|| anyhow::anyhow!("date {s:?} out of range"))?;
        return Ok(next.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp());
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.timestamp());
    }
    if t.starts_with(|c: char| c.is_ascii_digit()) && t.ends_with(|c: char| c.is_ascii_alphabetic()) {
        if let Ok(secs) = parse_duration(t) {
            return now.checked_add(secs).ok_or_else(|| anyhow::anyhow!("date {s:?} out of range"));
        }
    }
    bail!("bad date {s:?}: use YYYY-MM-DD (valid through that UTC day), an RFC 3339 time, or a duration from now such as 30d")
}

/// An RFC 3339 time as `format_time` writes it, back to a timestamp.
pub fn parse_time(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp())
}

/// A size as an admin would have typed it: exactly, in the largest unit
/// that gives at most two decimals, decimal or binary, whichever reads
/// shorter ("5 MB", "5 GiB", "1.5 KiB"); a measured count that neither
/// system says exactly reads in binary units with one decimal ("3.1 MiB").
pub fn format_size(bytes: i64) -> String {
    format_size_like(bytes, None)
}

/// A measured size beside a limit: in the limit's unit system (decimal
/// for a quota of `5MB`: "3.1 MB of 5 MB", not "3.0 MiB of 5 MB").
pub fn format_size_of(bytes: i64, limit: i64) -> String {
    let decimal = !format_size(limit).contains("iB") && limit >= 1000;
    format_size_like(bytes, Some(decimal))
}

fn format_size_like(bytes: i64, decimal: Option<bool>) -> String {
    fn exact(bytes: i64, base: i64, units: [&str; 5]) -> (Option<String>, f64, &str) {
        let (mut div, mut unit) = (1i64, "B");
        for u in units {
            match div.checked_mul(base) {
                Some(d) if bytes >= d => {
                    div = d;
                    unit = u;
                }
                _ => break,
            }
        }
        let hundredths = bytes as i128 * 100;
        let text = (hundredths % div as i128 == 0).then(|| {
            let v = (hundredths / div as i128) as f64 / 100.0;
            format!("{v} {unit}")
        });
        (text, bytes as f64 / div as f64, unit)
    }
    if bytes < 0 {
        return format!("-{}", format_size_like(bytes.saturating_neg(), decimal));
    }
    let (bin, bv, bunit) = exact(bytes, 1024, ["KiB", "MiB", "GiB", "TiB", "PiB"]);
    let (dec, dv, dunit) = exact(bytes, 1000, ["KB", "MB", "GB", "TB", "PB"]);
    match (bin, dec, decimal) {
        (_, Some(d), Some(true)) => d,
        (_, None, Some(true)) => format!("{dv:.1} {dunit}"),
        (Some(b), _, Some(false)) => b,
        (Some(b), Some(d), None) if d.len() < b.len() => d,
        (Some(b), _, None) => b,
        (None, Some(d), None) => d,
        (None, _, _) => format!("{bv:.1} {bunit}"),
    }
}

/// "3h12m5s", "2d4h", "45s", "30d", "8h": every part but the zeros, so a
/// limit reads as it was typed and parses back.
pub fn format_duration(secs: i64) -> String {
    if secs < 0 {
        return format!("-{}", format_duration(-secs));
    }
    let parts = [(secs / 86400, "d"), (secs % 86400 / 3600, "h"), (secs % 3600 / 60, "m"), (secs % 60, "s")];
    let Some(first) = parts.iter().position(|(n, _)| *n > 0) else {
        return "0s".into();
    };
    parts[first..].iter().filter(|(n, _)| *n > 0).map(|(n, u)| format!("{n}{u}")).collect()
}

/// "2026-11-22T13:54:10Z": RFC 3339 in UTC, in tables, messages and JSON alike.
pub fn format_time(ts: i64) -> String {
    DateTime::<Utc>::from_timestamp(ts, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
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
        assert_eq!(parse_size("500 mb").unwrap(), 500_000_000);
        assert_eq!(parse_size("1.5 KiB").unwrap(), 1536);
        assert_eq!(parse_size("42b").unwrap(), 42);
        for bad in ["42", "12 parsecs", "-1GB", "", "GB", "1GB 1GB", "1MB 1GB", ".5GB", "1..5GB", "1e3GB"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        assert!(parse_size("42").unwrap_err().to_string().contains("has no unit"));
    }

    #[test]
    fn sizes_read_as_typed() {
        assert_eq!(format_size(5_000_000), "5 MB");
        assert_eq!(format_size(5 * 1024 * 1024 * 1024), "5 GiB");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(1000), "1 KB");
        assert_eq!(format_size(1024), "1 KiB");
        assert_eq!(format_size(150_000), "150 KB");
        assert_eq!(format_size(1_250_000), "1.25 MB");
        assert_eq!(format_size(1288490189), "1.2 GiB");
        assert_eq!(format_size(10), "10 B");
        assert_eq!(format_size(0), "0 B");
        // Beside a limit, in the limit's system.
        assert_eq!(format_size_of(9000, 2000), "9 KB");
        assert_eq!(format_size_of(9050, 2000), "9.05 KB");
        assert_eq!(format_size_of(9111, 2000), "9.1 KB");
        assert_eq!(format_size_of(9111, 2048), "8.9 KiB");
        assert_eq!(format_size_of(500, 2000), "500 B");
        // Every size typed reads back as the same size.
        for typed in ["5MB", "5GiB", "1.5KiB", "100GB", "750MiB", "1TB", "2.25GB"] {
            let n = parse_size(typed).unwrap();
            assert_eq!(parse_size(&format_size(n)).unwrap(), n, "{typed}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("8h").unwrap(), 28800);
        assert_eq!(parse_duration("1h30m").unwrap(), 5400);
        assert_eq!(parse_duration("1h 30m").unwrap(), 5400);
        assert_eq!(parse_duration("1H30M").unwrap(), 5400);
        assert_eq!(parse_duration("1.5h").unwrap(), 5400);
        assert_eq!(parse_duration("30d").unwrap(), 30 * 86400);
        assert_eq!(parse_duration("2w 1d").unwrap(), 15 * 86400);
        for bad in ["12", "5x", "5h3", "", "1h1h", "30m1h", "h", "99999999999999999999d", "-1h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration("12").unwrap_err().to_string().contains("has no unit"));
        assert!(parse_duration("1h1h").unwrap_err().to_string().contains("each unit once"));
        assert_eq!(format_duration(3 * 3600 + 12 * 60 + 5), "3h12m5s");
        assert_eq!(format_duration(45), "45s");
        assert_eq!(format_duration(2 * 86400 + 4 * 3600), "2d4h");
        assert_eq!(format_duration(30 * 86400), "30d");
        assert_eq!(format_duration(8 * 3600), "8h");
        assert_eq!(format_duration(90 * 60), "1h30m");
        assert_eq!(format_duration(5 * 60), "5m");
        for secs in [45, 300, 93_784, 5400, 28800, 30 * 86400, 2 * 86400 + 4 * 3600] {
            assert_eq!(parse_duration(&format_duration(secs)).unwrap(), secs);
        }
    }

    #[test]
    fn expiry_covers_the_whole_day() {
        let t = parse_expiry("2027-01-31", 0).unwrap();
        assert_eq!(format_time(t), "2027-02-01T00:00:00Z");
        assert_eq!(parse_time("2027-02-01T00:00:00Z"), Some(t));
        assert_eq!(parse_expiry("2027-01-31T12:00:00Z", 0).unwrap(), t - 12 * 3600);
        assert_eq!(parse_expiry("30d", 1000).unwrap(), 1000 + 30 * 86400);
        assert_eq!(parse_expiry("1d 12h", 0).unwrap(), 36 * 3600);
        for bad in ["31/01/2027", "30", "d", "2027-02-30"] {
            assert!(parse_expiry(bad, 0).is_err(), "{bad:?}");
        }
        assert_eq!(format_expiry(t), "2027-01-31");
        assert_eq!(format_expiry(t + 60), "2027-02-01T00:01:00Z");
    }
}
