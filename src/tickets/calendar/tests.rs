use super::*;
use jiff::civil::{date, Date};
use proptest::prelude::*;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn shanghai() -> TimeZone {
    TimeZone::get("Asia/Shanghai").unwrap()
}

/// Unix ms of a local wall-clock time in `tz`.
fn at(tz: &TimeZone, d: Date, h: i8, m: i8) -> i64 {
    tz.to_ambiguous_timestamp(d.at(h, m, 0, 0))
        .compatible()
        .unwrap()
        .as_millisecond()
}

fn windows(list: &[&str]) -> Vec<Window> {
    list.iter().map(|w| Window::parse(w).unwrap()).collect()
}

/// Weekdays 09:00-12:00 and 13:30-21:00, weekends closed, the 2026 National Day week off
/// and Saturday 2026-10-10 worked.
fn national_day() -> BusinessCalendar {
    let mut spec = CalendarSpec {
        days: [None, None, None, None, None, Some(vec![]), Some(vec![])],
        ..CalendarSpec::default()
    };
    spec.holidays = (1..=7).map(|d| date(2026, 10, d)).collect();
    spec.workdays = vec![date(2026, 10, 10)];
    BusinessCalendar::new(spec).unwrap()
}

#[test]
fn default_calendar_is_shanghai_with_a_lunch_break_and_short_weekends() {
    let c = BusinessCalendar::default();
    assert_eq!(c.time_zone().iana_name(), Some("Asia/Shanghai"));
    let mon = date(2026, 3, 2);
    assert_eq!(mon.weekday(), jiff::civil::Weekday::Monday);
    assert_eq!(
        c.windows_on(mon)
            .iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>(),
        ["09:00-12:00", "13:30-21:00"]
    );
    assert_eq!(c.windows_on(date(2026, 3, 7)), windows(&["10:00-18:00"]));
}

#[test]
fn the_clock_stops_over_the_lunch_break() {
    let c = BusinessCalendar::default();
    let tz = shanghai();
    let mon = date(2026, 3, 2);
    let start = at(&tz, mon, 11, 50);
    let due = c.add_business_ms(start, 20 * MIN);
    assert_eq!(due, at(&tz, mon, 13, 40));
    assert_eq!(c.business_ms_between(start, due), 20 * MIN);
    assert!(c.is_open(start));
    assert!(!c.is_open(at(&tz, mon, 12, 30)));
    assert!(c.is_open(at(&tz, mon, 13, 30)));
    assert!(!c.is_open(at(&tz, mon, 12, 0)), "windows are half-open");
    // Exactly used up at a window's end: the end, not the next opening.
    assert_eq!(
        c.add_business_ms(at(&tz, mon, 11, 0), HOUR),
        at(&tz, mon, 12, 0)
    );
}

#[test]
fn the_clock_stops_overnight_and_at_the_weekend() {
    let c = BusinessCalendar::default();
    let tz = shanghai();
    let start = at(&tz, date(2026, 3, 2), 20, 55);
    assert_eq!(
        c.add_business_ms(start, 10 * MIN),
        at(&tz, date(2026, 3, 3), 9, 5)
    );
    // Opened at night: the clock starts at the next opening.
    let night = at(&tz, date(2026, 3, 3), 2, 0);
    assert_eq!(
        c.add_business_ms(night, 5 * MIN),
        at(&tz, date(2026, 3, 3), 9, 5)
    );
    assert_eq!(
        c.business_ms_between(night, at(&tz, date(2026, 3, 3), 9, 5)),
        5 * MIN
    );
    // Friday evening to the default Saturday hours (10:00-18:00).
    let fri = at(&tz, date(2026, 3, 6), 20, 50);
    assert_eq!(
        c.add_business_ms(fri, 30 * MIN),
        at(&tz, date(2026, 3, 7), 10, 20)
    );
    // With the weekend closed: Monday morning.
    let closed = national_day();
    assert_eq!(
        closed.add_business_ms(fri, 30 * MIN),
        at(&tz, date(2026, 3, 9), 9, 20)
    );
    assert_eq!(
        closed.business_ms_between(fri, at(&tz, date(2026, 3, 9), 9, 20)),
        30 * MIN
    );
}

#[test]
fn holidays_are_closed_and_make_up_workdays_use_weekday_hours() {
    let c = national_day();
    let tz = shanghai();
    let before = at(&tz, date(2026, 9, 30), 20, 55);
    assert_eq!(
        c.add_business_ms(before, 10 * MIN),
        at(&tz, date(2026, 10, 8), 9, 5)
    );
    assert!(!c.is_open(at(&tz, date(2026, 10, 5), 10, 0)));
    // Thursday 8th and Friday 9th, then Saturday 10th is worked from 09:00 (weekday hours).
    let fri = at(&tz, date(2026, 10, 9), 20, 55);
    assert_eq!(
        c.add_business_ms(fri, 10 * MIN),
        at(&tz, date(2026, 10, 10), 9, 5)
    );
    assert!(c.is_open(at(&tz, date(2026, 10, 10), 9, 30)));
    assert!(!c.is_open(at(&tz, date(2026, 10, 11), 9, 30)));
    // The whole holiday week holds no business time.
    assert_eq!(
        c.business_ms_between(
            at(&tz, date(2026, 10, 1), 0, 0),
            at(&tz, date(2026, 10, 8), 0, 0)
        ),
        0
    );
    // A full weekday is 3 h + 7.5 h.
    assert_eq!(
        c.business_ms_between(
            at(&tz, date(2026, 10, 8), 0, 0),
            at(&tz, date(2026, 10, 9), 0, 0)
        ),
        10 * HOUR + 30 * MIN
    );
}

fn new_york(hours: &[&str]) -> BusinessCalendar {
    BusinessCalendar::new(CalendarSpec {
        time_zone: TimeZone::get("America/New_York").unwrap(),
        hours: windows(hours),
        days: Default::default(),
        holidays: vec![],
        workdays: vec![],
    })
    .unwrap()
}

#[test]
fn daylight_saving_changes_the_length_of_a_window() {
    let c = new_york(&["01:00-04:00"]);
    let tz = TimeZone::get("America/New_York").unwrap();
    let day =
        |d: Date| c.business_ms_between(at(&tz, d, 0, 0), at(&tz, d.tomorrow().unwrap(), 0, 0));
    assert_eq!(day(date(2026, 3, 7)), 3 * HOUR);
    // Spring forward at 02:00: 01:00 EST to 04:00 EDT is two hours.
    assert_eq!(day(date(2026, 3, 8)), 2 * HOUR);
    // Fall back at 02:00: 01:00 EDT to 04:00 EST is four hours.
    assert_eq!(day(date(2026, 11, 1)), 4 * HOUR);
    let start = at(&tz, date(2026, 3, 8), 1, 30);
    assert_eq!(
        c.add_business_ms(start, HOUR),
        at(&tz, date(2026, 3, 8), 3, 30)
    );
    // A window starting inside the gap starts when the gap ends.
    let gap = new_york(&["02:30-05:00"]);
    assert_eq!(
        gap.add_business_ms(at(&tz, date(2026, 3, 8), 0, 0), 1),
        at(&tz, date(2026, 3, 8), 3, 30) + 1
    );
}

#[test]
fn a_window_to_midnight_joins_the_next_day() {
    let c = BusinessCalendar::new(CalendarSpec {
        time_zone: TimeZone::UTC,
        hours: windows(&["00:00-24:00"]),
        ..CalendarSpec::default()
    })
    .unwrap();
    let tz = TimeZone::UTC;
    let start = at(&tz, date(2026, 3, 2), 23, 0);
    assert_eq!(c.add_business_ms(start, 2 * HOUR), start + 2 * HOUR);
    assert_eq!(c.business_ms_between(start, start + 49 * HOUR), 49 * HOUR);
}

#[test]
fn bad_calendars_are_refused() {
    assert!(matches!(
        Window::parse("12:00-09:00"),
        Err(CalendarError::ReversedWindow(_))
    ));
    for bad in [
        "9:00-12:00",
        "09:00",
        "09:60-10:00",
        "25:00-26:00",
        "24:00-24:00",
    ] {
        assert!(Window::parse(bad).is_err(), "{bad}");
    }
    assert!(matches!(
        sorted_windows(windows(&["13:00-18:00", "09:00-13:30"])),
        Err(CalendarError::Overlap(..))
    ));
    assert!(sorted_windows(windows(&["13:00-18:00", "09:00-13:00"])).is_ok());
    let closed = CalendarSpec {
        hours: vec![],
        days: [None, None, None, None, None, Some(vec![]), Some(vec![])],
        workdays: vec![date(2026, 10, 10)],
        ..CalendarSpec::default()
    };
    assert_eq!(
        BusinessCalendar::new(closed).unwrap_err(),
        CalendarError::NoOpenTime
    );
    let both = CalendarSpec {
        holidays: vec![date(2026, 10, 1)],
        workdays: vec![date(2026, 10, 1)],
        ..CalendarSpec::default()
    };
    assert!(matches!(
        BusinessCalendar::new(both),
        Err(CalendarError::HolidayAndWorkday(_))
    ));
}

#[test]
fn always_open_counts_every_millisecond() {
    let c = BusinessCalendar::always_open();
    assert_eq!(c.add_business_ms(1_000, 5_000), 6_000);
    assert_eq!(c.business_ms_between(1_000, 6_000), 5_000);
    assert_eq!(c.business_ms_between(6_000, 1_000), 0);
    assert!(c.is_open(0));
}

#[test]
fn extreme_instants_do_not_panic() {
    let c = national_day();
    assert!(c.add_business_ms(i64::MAX - 10, HOUR) >= 0);
    assert_eq!(c.business_ms_between(i64::MIN, i64::MIN + 10), 0);
    let _ = c.is_open(i64::MIN);
    let _ = c.is_open(i64::MAX);
}

// 2025-06-01 to 2027-06-01 (UTC), around the holidays of the test calendars.
const FROM: i64 = 1_748_736_000_000;
const TO: i64 = 1_811_808_000_000;
const THIRTY_DAYS: i64 = 30 * 24 * HOUR;

fn calendars() -> Vec<BusinessCalendar> {
    vec![
        BusinessCalendar::default(),
        national_day(),
        new_york(&["01:00-04:00", "09:00-17:00"]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn business_time_added_is_business_time_between(
        s in FROM..TO, d in 0..THIRTY_DAYS, which in 0usize..3,
    ) {
        let c = &calendars()[which];
        let end = c.add_business_ms(s, d);
        prop_assert!(end >= s);
        prop_assert_eq!(c.business_ms_between(s, end), d);
        if d > 0 {
            prop_assert!(c.is_open(end - 1), "the clock runs out inside a window");
        }
    }

    #[test]
    fn adding_more_business_time_never_ends_earlier(
        s in FROM..TO, d1 in 0..THIRTY_DAYS, d2 in 0..THIRTY_DAYS, which in 0usize..3,
    ) {
        let c = &calendars()[which];
        let (lo, hi) = (d1.min(d2), d1.max(d2));
        prop_assert!(c.add_business_ms(s, lo) <= c.add_business_ms(s, hi));
    }

    #[test]
    fn business_time_is_additive(
        a in FROM..TO, b in FROM..TO, x in FROM..TO, which in 0usize..3,
    ) {
        let c = &calendars()[which];
        let mut v = [a, b, x];
        v.sort();
        let [a, b, x] = v;
        prop_assert_eq!(
            c.business_ms_between(a, x),
            c.business_ms_between(a, b) + c.business_ms_between(b, x)
        );
        prop_assert!(c.business_ms_between(a, x) <= x - a);
    }
}
