//! The dashboard's period: whole days in the shop's time zone, both ends included, and the
//! instants they span. Days are written `YYYY-MM-DD` and nothing else.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// Days shown when the period is not given: the last week, today included.
pub const DEFAULT_DAYS: i64 = 7;
/// The longest period one request may ask for.
pub const MAX_DAYS: i64 = 366;

/// Whole days `from..=to` in the shop's time zone, and the instants they span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: Date,
    pub to: Date,
    /// Local midnight starting `from`, unix milliseconds.
    pub start_ms: i64,
    /// Local midnight ending `to` (excluded).
    pub end_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("`{field}` must be a date written YYYY-MM-DD, got {value:?}")]
    BadDate { field: &'static str, value: String },
    #[error("`from` ({from}) is after `to` ({to})")]
    Reversed { from: Date, to: Date },
    #[error("the period is {days} days long; at most {MAX_DAYS} days at a time")]
    TooLong { days: i64 },
    #[error("the period is outside the supported dates")]
    OutOfRange,
}

/// A calendar day written `YYYY-MM-DD`, and nothing else (no time, no offset).
pub fn parse_day(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    if !(digits(0..4) && digits(5..7) && digits(8..10)) {
        return None;
    }
    let year = s[0..4].parse().ok()?;
    let month = s[5..7].parse().ok()?;
    let day = s[8..10].parse().ok()?;
    Date::new(year, month, day).ok()
}

/// Local midnight starting `day` in `tz` (the first instant of the day where midnight is
/// skipped by a clock change).
pub fn local_midnight(day: Date, tz: &TimeZone) -> Option<i64> {
    tz.to_ambiguous_timestamp(day.to_datetime(Time::midnight()))
        .compatible()
        .ok()
        .map(|t| t.as_millisecond())
}

/// How the page names `tz`: its IANA name, else its offset (a fixed-offset zone).
pub fn zone_name(tz: &TimeZone) -> String {
    match tz.iana_name() {
        Some(name) => name.to_string(),
        None => format!("UTC{}", tz.to_offset(Timestamp::UNIX_EPOCH)),
    }
}

/// The day `now_ms` falls on in `tz`.
pub fn today(tz: &TimeZone, now_ms: i64) -> Option<Date> {
    Timestamp::from_millisecond(now_ms)
        .ok()
        .map(|t| tz.to_datetime(t).date())
}

impl Period {
    /// The days `from..=to`, checked: in order, at most [`MAX_DAYS`].
    pub fn new(from: Date, to: Date, tz: &TimeZone) -> Result<Period, PeriodError> {
        if from > to {
            return Err(PeriodError::Reversed { from, to });
        }
        let days = from.duration_until(to).as_hours() / 24 + 1;
        if days > MAX_DAYS {
            return Err(PeriodError::TooLong { days });
        }
        let after = to.tomorrow().map_err(|_| PeriodError::OutOfRange)?;
        Ok(Period {
            from,
            to,
            start_ms: local_midnight(from, tz).ok_or(PeriodError::OutOfRange)?,
            end_ms: local_midnight(after, tz).ok_or(PeriodError::OutOfRange)?,
        })
    }

    /// The period a request names: `to` defaults to today, `from` to [`DEFAULT_DAYS`] days
    /// ending at `to`. Empty values count as absent (an empty form field).
    pub fn from_query(
        from: Option<&str>,
        to: Option<&str>,
        tz: &TimeZone,
        now_ms: i64,
    ) -> Result<Period, PeriodError> {
        let given = |field: &'static str, v: Option<&str>| -> Result<Option<Date>, PeriodError> {
            match v.map(str::trim).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => parse_day(v).map(Some).ok_or_else(|| PeriodError::BadDate {
                    field,
                    value: v.chars().take(40).collect(),
                }),
            }
        };
        let from = given("from", from)?;
        let to = match given("to", to)? {
            Some(d) => d,
            None => today(tz, now_ms).ok_or(PeriodError::OutOfRange)?,
        };
        let from = match from {
            Some(d) => d,
            None => to
                .checked_sub(SignedDuration::from_hours(24 * (DEFAULT_DAYS - 1)))
                .map_err(|_| PeriodError::OutOfRange)?,
        };
        Period::new(from, to, tz)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanghai() -> TimeZone {
        TimeZone::get("Asia/Shanghai").unwrap()
    }

    #[test]
    fn zones_are_named() {
        assert_eq!(zone_name(&shanghai()), "Asia/Shanghai");
        let fixed = TimeZone::fixed(jiff::tz::Offset::constant(8));
        assert_eq!(zone_name(&fixed), "UTC+08");
    }

    #[test]
    fn days_are_written_one_way_only() {
        assert_eq!(parse_day("2026-03-02"), Some(Date::constant(2026, 3, 2)));
        for bad in [
            "",
            "2026-3-2",
            "2026-02-30",
            "2026-03-02T00:00",
            "20260302",
            "２０２６-03-02",
            "2026/03/02",
            "+2026-03-0",
        ] {
            assert_eq!(parse_day(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_period_is_whole_local_days_checked() {
        let tz = shanghai();
        let p = Period::new(Date::constant(2026, 3, 2), Date::constant(2026, 3, 8), &tz).unwrap();
        let ms = |s: &str| s.parse::<Timestamp>().unwrap().as_millisecond();
        assert_eq!(p.start_ms, ms("2026-03-01T16:00:00Z"));
        assert_eq!(p.end_ms, ms("2026-03-08T16:00:00Z"));

        // Defaults: the last seven days, today included.
        let now = ms("2026-03-08T20:00:00Z"); // already the 9th in Shanghai
        let p = Period::from_query(None, Some(""), &tz, now).unwrap();
        assert_eq!(
            (p.from, p.to),
            (Date::constant(2026, 3, 3), Date::constant(2026, 3, 9))
        );
        let p = Period::from_query(None, Some("2026-01-01"), &tz, now).unwrap();
        assert_eq!(p.from, Date::constant(2025, 12, 26));

        assert!(matches!(
            Period::from_query(Some("yesterday"), None, &tz, now),
            Err(PeriodError::BadDate { field: "from", .. })
        ));
        assert!(matches!(
            Period::from_query(Some("2026-03-09"), Some("2026-03-08"), &tz, now),
            Err(PeriodError::Reversed { .. })
        ));
        assert!(Period::from_query(Some("2025-03-09"), Some("2026-03-09"), &tz, now).is_ok());
        assert_eq!(
            Period::from_query(Some("2025-03-08"), Some("2026-03-09"), &tz, now),
            Err(PeriodError::TooLong { days: 367 })
        );
        assert!(Period::from_query(None, Some("9999-12-31"), &tz, now).is_err());
    }
}
