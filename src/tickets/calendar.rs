//! Business time: when the shop's agents work, so SLA clocks count only working minutes.
//!
//! A calendar is a time zone, working windows per weekday (local wall-clock times, several
//! per day, e.g. 09:00–12:00 and 13:30–21:00), a list of holidays (closed all day) and a list
//! of make-up workdays (调休: a date worked although it is normally closed, with the normal
//! weekday hours). Windows are turned into instants day by day through the time zone, so a
//! daylight-saving change inside a window lengthens or shortens it by the real amount.
//!
//! The clocks walk the calendar one local day at a time, skipping closed days at once: the
//! cost is proportional to the days spanned, never to the minutes. [`BusinessCalendar::new`]
//! refuses a calendar in which no weekday has open time, so the walk always ends (holidays
//! and make-up days are finite lists).

use std::collections::BTreeSet;

use jiff::civil::Date;
use jiff::tz::{Offset, TimeZone};
use jiff::Timestamp;

/// Minutes in a (civil) day; a window may end at `24:00`.
pub const MINUTES_PER_DAY: u16 = 24 * 60;

/// The default time zone of a shop.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";
/// Default hours Monday to Friday (and on make-up workdays): 09:00–12:00 and 13:30–21:00,
/// a lunch break and the evening that WeChat shoppers write in.
pub const DEFAULT_HOURS: [Window; 2] = [
    Window::constant(9 * 60, 12 * 60),
    Window::constant(13 * 60 + 30, 21 * 60),
];
/// Default hours on Saturday and Sunday: 10:00–18:00.
pub const DEFAULT_WEEKEND_HOURS: [Window; 1] = [Window::constant(10 * 60, 18 * 60)];

/// One working window of a day, in local minutes after midnight: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    start_min: u16,
    end_min: u16,
}

impl Window {
    const fn constant(start_min: u16, end_min: u16) -> Window {
        Window { start_min, end_min }
    }

    /// A window from `start_min` to `end_min` (minutes after local midnight, end at most
    /// 1440); it must not be empty or reversed.
    pub fn new(start_min: u16, end_min: u16) -> Result<Window, CalendarError> {
        if end_min > MINUTES_PER_DAY || start_min >= end_min {
            return Err(CalendarError::BadWindow(format!(
                "{}-{}",
                hhmm(start_min),
                hhmm(end_min)
            )));
        }
        Ok(Window { start_min, end_min })
    }

    /// Parse `HH:MM-HH:MM` (end may be `24:00`).
    pub fn parse(text: &str) -> Result<Window, CalendarError> {
        let bad = || CalendarError::BadWindow(text.to_string());
        let (a, b) = text.split_once('-').ok_or_else(bad)?;
        let start = parse_hhmm(a.trim()).ok_or_else(bad)?;
        let end = parse_hhmm(b.trim()).ok_or_else(bad)?;
        if start >= end {
            return Err(CalendarError::ReversedWindow(text.to_string()));
        }
        Window::new(start, end)
    }

    pub fn start_min(self) -> u16 {
        self.start_min
    }

    pub fn end_min(self) -> u16 {
        self.end_min
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", hhmm(self.start_min), hhmm(self.end_min))
    }
}

fn hhmm(min: u16) -> String {
    format!("{:02}:{:02}", min / 60, min % 60)
}

fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    match (h, m) {
        (24, 0) => Some(MINUTES_PER_DAY),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// Sort a day's windows and check that none overlap (touching is fine).
pub fn sorted_windows(mut windows: Vec<Window>) -> Result<Vec<Window>, CalendarError> {
    windows.sort();
    for pair in windows.windows(2) {
        if pair[1].start_min < pair[0].end_min {
            return Err(CalendarError::Overlap(pair[0], pair[1]));
        }
    }
    Ok(windows)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("expected a window HH:MM-HH:MM such as 09:00-12:00, got {0:?}")]
    BadWindow(String),
    #[error("window {0:?} ends before it starts")]
    ReversedWindow(String),
    #[error("windows {0} and {1} overlap")]
    Overlap(Window, Window),
    #[error("the calendar has no open time: every weekday is closed")]
    NoOpenTime,
    #[error("{0} is listed both as a holiday and as a make-up workday")]
    HolidayAndWorkday(Date),
}

/// What a calendar is made of; [`BusinessCalendar::new`] checks it.
#[derive(Debug, Clone)]
pub struct CalendarSpec {
    pub time_zone: TimeZone,
    /// Windows of every weekday without an entry in `days`, and of make-up workdays.
    pub hours: Vec<Window>,
    /// Per-weekday windows, Monday first; `Some(vec![])` closes that weekday.
    pub days: [Option<Vec<Window>>; 7],
    /// Closed all day.
    pub holidays: Vec<Date>,
    /// Worked with `hours` although the weekday is normally closed or short (调休).
    pub workdays: Vec<Date>,
}

impl Default for CalendarSpec {
    /// Asia/Shanghai; Monday–Friday 09:00–12:00 and 13:30–21:00; Saturday and Sunday
    /// 10:00–18:00; no holidays or make-up workdays (they change every year: list them).
    fn default() -> Self {
        let weekend = Some(DEFAULT_WEEKEND_HOURS.to_vec());
        CalendarSpec {
            time_zone: default_time_zone(),
            hours: DEFAULT_HOURS.to_vec(),
            days: [None, None, None, None, None, weekend.clone(), weekend],
            holidays: Vec::new(),
            workdays: Vec::new(),
        }
    }
}

fn default_time_zone() -> TimeZone {
    // The zone database is bundled, so this lookup does not fail in practice; China has
    // had no daylight-saving time since 1991, so +08:00 is the same calendar.
    TimeZone::get(DEFAULT_TIME_ZONE).unwrap_or_else(|_| TimeZone::fixed(Offset::constant(8)))
}

#[derive(Debug, Clone)]
struct Schedule {
    tz: TimeZone,
    week: [Vec<Window>; 7],
    workday_windows: Vec<Window>,
    holidays: BTreeSet<Date>,
    workdays: BTreeSet<Date>,
}

/// When the shop works. All instants are Unix milliseconds (UTC).
#[derive(Debug, Clone)]
pub struct BusinessCalendar {
    /// `None`: open every minute of every day.
    schedule: Option<Box<Schedule>>,
}

impl Default for BusinessCalendar {
    /// The shop defaults of [`CalendarSpec::default`].
    fn default() -> Self {
        let spec = CalendarSpec::default();
        let week = spec.days.map(|d| d.unwrap_or_else(|| spec.hours.clone()));
        BusinessCalendar {
            schedule: Some(Box::new(Schedule {
                tz: spec.time_zone,
                week,
                workday_windows: spec.hours,
                holidays: BTreeSet::new(),
                workdays: BTreeSet::new(),
            })),
        }
    }
}

/// Instants outside jiff's range (years -9999..=9999) are clamped to it.
fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

impl BusinessCalendar {
    /// Open every minute of every day.
    pub fn always_open() -> BusinessCalendar {
        BusinessCalendar { schedule: None }
    }

    /// A checked calendar: windows of a day must not overlap, some weekday must have open
    /// time, and no date may be both a holiday and a make-up workday.
    pub fn new(spec: CalendarSpec) -> Result<BusinessCalendar, CalendarError> {
        let hours = sorted_windows(spec.hours)?;
        let mut week: [Vec<Window>; 7] = Default::default();
        for (slot, day) in week.iter_mut().zip(spec.days) {
            *slot = match day {
                Some(windows) => sorted_windows(windows)?,
                None => hours.clone(),
            };
        }
        if week.iter().all(Vec::is_empty) {
            return Err(CalendarError::NoOpenTime);
        }
        let holidays: BTreeSet<Date> = spec.holidays.into_iter().collect();
        let workdays: BTreeSet<Date> = spec.workdays.into_iter().collect();
        if let Some(d) = holidays.intersection(&workdays).next() {
            return Err(CalendarError::HolidayAndWorkday(*d));
        }
        Ok(BusinessCalendar {
            schedule: Some(Box::new(Schedule {
                tz: spec.time_zone,
                week,
                workday_windows: hours,
                holidays,
                workdays,
            })),
        })
    }

    /// The calendar's time zone (UTC for [`BusinessCalendar::always_open`]).
    pub fn time_zone(&self) -> TimeZone {
        self.schedule
            .as_ref()
            .map_or(TimeZone::UTC, |s| s.tz.clone())
    }

    /// The windows worked on a local date (all day when always open).
    pub fn windows_on(&self, date: Date) -> Vec<Window> {
        match &self.schedule {
            None => vec![Window::constant(0, MINUTES_PER_DAY)],
            Some(s) => s.windows_on(date).to_vec(),
        }
    }

    /// The instant `business_ms` of business time after `start_ms`. When the time runs out
    /// exactly at the end of a window, that end is the answer (not the next opening).
    pub fn add_business_ms(&self, start_ms: i64, business_ms: i64) -> i64 {
        let Some(s) = &self.schedule else {
            return start_ms.saturating_add(business_ms.max(0));
        };
        if business_ms <= 0 {
            return start_ms;
        }
        let mut remaining = business_ms;
        let mut date = s.local_date(start_ms);
        date = date.yesterday().unwrap_or(date);
        loop {
            for (a, b) in s.intervals_on(date) {
                if b <= start_ms {
                    continue;
                }
                let from = a.max(start_ms);
                let len = b - from;
                if remaining <= len {
                    return from + remaining;
                }
                remaining -= len;
            }
            date = match date.tomorrow() {
                Ok(d) => d,
                Err(_) => return Timestamp::MAX.as_millisecond(),
            };
        }
    }

    /// Business time from `from_ms` to `to_ms` (0 if `to_ms` is not later).
    pub fn business_ms_between(&self, from_ms: i64, to_ms: i64) -> i64 {
        if to_ms <= from_ms {
            return 0;
        }
        let Some(s) = &self.schedule else {
            return to_ms.saturating_sub(from_ms);
        };
        let first = s.local_date(from_ms);
        let mut date = first.yesterday().unwrap_or(first);
        let last = s.local_date(to_ms);
        let last = last.tomorrow().unwrap_or(last);
        let mut total = 0i64;
        loop {
            for (a, b) in s.intervals_on(date) {
                let (a, b) = (a.max(from_ms), b.min(to_ms));
                if b > a {
                    total += b - a;
                }
            }
            if date >= last {
                return total;
            }
            date = match date.tomorrow() {
                Ok(d) => d,
                Err(_) => return total,
            };
        }
    }

    /// Is the shop working at `at_ms`?
    pub fn is_open(&self, at_ms: i64) -> bool {
        let Some(s) = &self.schedule else {
            return true;
        };
        let date = s.local_date(at_ms);
        // A window belongs to the local date it starts on; look at the neighbours too for
        // the odd zone whose transition moves midnight.
        [date.yesterday().ok(), Some(date), date.tomorrow().ok()]
            .into_iter()
            .flatten()
            .any(|d| s.intervals_on(d).any(|(a, b)| a <= at_ms && at_ms < b))
    }
}

impl Schedule {
    fn local_date(&self, ms: i64) -> Date {
        self.tz.to_datetime(timestamp(ms)).date()
    }

    fn windows_on(&self, date: Date) -> &[Window] {
        if self.holidays.contains(&date) {
            &[]
        } else if self.workdays.contains(&date) {
            &self.workday_windows
        } else {
            let i = date.weekday().to_monday_zero_offset();
            self.week.get(i as usize).map_or(&[], Vec::as_slice)
        }
    }

    /// The instant of a local wall-clock time; a time in a DST gap moves forward by the
    /// gap, a repeated time takes its first occurrence.
    fn instant(&self, date: Date, min: u16) -> Option<i64> {
        let dt = if min >= MINUTES_PER_DAY {
            date.tomorrow().ok()?.at(0, 0, 0, 0)
        } else {
            date.at((min / 60) as i8, (min % 60) as i8, 0, 0)
        };
        let ts = self.tz.to_ambiguous_timestamp(dt).compatible().ok()?;
        Some(ts.as_millisecond())
    }

    /// The open intervals of a local date as `[start, end)` instants, in order.
    fn intervals_on(&self, date: Date) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.windows_on(date).iter().filter_map(move |w| {
            let a = self.instant(date, w.start_min)?;
            let b = self.instant(date, w.end_min)?;
            (b > a).then_some((a, b))
        })
    }
}

#[cfg(test)]
mod tests;
