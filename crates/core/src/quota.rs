//! Quota periods: calendar month, ISO week (Monday) or day in UTC, or the
//! whole life of the account. Usage is stored per (user, period start), so a
//! quota check reads one row.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Month,
    Week,
    Day,
    Total,
}

impl Period {
    pub fn parse(s: &str) -> Option<Period> {
        match s {
            "month" => Some(Period::Month),
            "week" => Some(Period::Week),
            "day" => Some(Period::Day),
            "total" => Some(Period::Total),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Month => "month",
            Period::Week => "week",
            Period::Day => "day",
            Period::Total => "total",
        }
    }

    /// Start of the period holding `now` (0 for Total).
    pub fn start(self, now: i64) -> i64 {
        let d = date(now);
        let first = match self {
            Period::Total => return 0,
            Period::Day => d,
            Period::Week => d - Duration::days(d.weekday().num_days_from_monday() as i64),
            Period::Month => d.with_day(1).unwrap_or(d),
        };
        midnight(first)
    }

    /// Start of the next period (None for Total: it never resets).
    pub fn next_start(self, now: i64) -> Option<i64> {
        let start = date(self.start(now));
        let next = match self {
            Period::Total => return None,
            Period::Day => start + Duration::days(1),
            Period::Week => start + Duration::days(7),
            Period::Month => {
                let (y, m) =
                    if start.month() == 12 { (start.year() + 1, 1) } else { (start.year(), start.month() + 1) };
                NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(start)
            }
        };
        Some(midnight(next))
    }

    /// "this month", "this week", "today", "in total" for client messages.
    pub fn phrase(self) -> &'static str {
        match self {
            Period::Month => "this month",
            Period::Week => "this week",
            Period::Day => "today",
            Period::Total => "in total",
        }
    }
}

fn date(ts: i64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp(ts, 0).unwrap_or_default().date_naive()
}

fn midnight(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{format_time, parse_expiry};

    #[test]
    fn calendar_periods() {
        // Wednesday 2026-12-16 10:00Z
        let now = parse_expiry("2026-12-16T10:00:00Z", 0).unwrap();
        assert_eq!(format_time(Period::Day.start(now)), "2026-12-16T00:00:00Z");
        assert_eq!(format_time(Period::Week.start(now)), "2026-12-14T00:00:00Z");
        assert_eq!(format_time(Period::Month.start(now)), "2026-12-01T00:00:00Z");
        assert_eq!(format_time(Period::Month.next_start(now).unwrap()), "2027-01-01T00:00:00Z");
        assert_eq!(format_time(Period::Week.next_start(now).unwrap()), "2026-12-21T00:00:00Z");
        assert_eq!(Period::Total.start(now), 0);
        assert_eq!(Period::Total.next_start(now), None);
    }
}
