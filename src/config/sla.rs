//! `[sla]`: the shop's business calendar and the SLA minutes per priority.
//!
//! ```toml
//! [sla]
//! time_zone = "Asia/Shanghai"
//! hours = ["09:00-12:00", "13:30-21:00"]   # every weekday without its own entry below
//! holidays = ["2026-10-01", "2026-10-02"]  # closed all day
//! workdays = ["2026-10-10"]                # make-up workdays (调休), worked with `hours`
//!
//! [sla.days]                               # per-weekday windows; [] closes the day
//! sat = ["10:00-18:00"]
//! sun = ["10:00-18:00"]
//!
//! [sla.urgent]                             # business minutes
//! first_response = 5
//! next_response = 5
//! resolution = 240
//! ```

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Deserialize;

use super::{invalid, ConfigError, Env};
use crate::tickets::calendar::{sorted_windows, CalendarError, CalendarSpec, Window};
use crate::tickets::{BusinessCalendar, Priority, SlaPolicy, SlaSettings};

/// At most 30 days of business minutes for any target.
const MAX_MINUTES: i64 = 30 * 24 * 60;

const DAY_KEYS: [&str; 7] = [
    "sla.days.mon",
    "sla.days.tue",
    "sla.days.wed",
    "sla.days.thu",
    "sla.days.fri",
    "sla.days.sat",
    "sla.days.sun",
];

/// (priority, [first_response, next_response, resolution] keys).
const POLICY_KEYS: [(Priority, [&str; 3]); 4] = [
    (
        Priority::Urgent,
        [
            "sla.urgent.first_response",
            "sla.urgent.next_response",
            "sla.urgent.resolution",
        ],
    ),
    (
        Priority::High,
        [
            "sla.high.first_response",
            "sla.high.next_response",
            "sla.high.resolution",
        ],
    ),
    (
        Priority::Normal,
        [
            "sla.normal.first_response",
            "sla.normal.next_response",
            "sla.normal.resolution",
        ],
    ),
    (
        Priority::Low,
        [
            "sla.low.first_response",
            "sla.low.next_response",
            "sla.low.resolution",
        ],
    ),
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSla {
    time_zone: Option<String>,
    hours: Option<Vec<String>>,
    days: Option<RawDays>,
    holidays: Option<Vec<String>>,
    workdays: Option<Vec<String>>,
    urgent: Option<RawPolicy>,
    high: Option<RawPolicy>,
    normal: Option<RawPolicy>,
    low: Option<RawPolicy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDays {
    mon: Option<Vec<String>>,
    tue: Option<Vec<String>>,
    wed: Option<Vec<String>>,
    thu: Option<Vec<String>>,
    fri: Option<Vec<String>>,
    sat: Option<Vec<String>>,
    sun: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    first_response: Option<i64>,
    next_response: Option<i64>,
    resolution: Option<i64>,
}

impl RawPolicy {
    fn slots(&mut self) -> [&mut Option<i64>; 3] {
        [
            &mut self.first_response,
            &mut self.next_response,
            &mut self.resolution,
        ]
    }
}

impl RawSla {
    fn policy_mut(&mut self, priority: Priority) -> &mut Option<RawPolicy> {
        match priority {
            Priority::Urgent => &mut self.urgent,
            Priority::High => &mut self.high,
            Priority::Normal => &mut self.normal,
            Priority::Low => &mut self.low,
        }
    }

    /// Overlay `KEFU_SLA_TIME_ZONE`, `KEFU_SLA_HOURS` (comma-separated windows) and
    /// `KEFU_SLA_<PRIORITY>_<TARGET>` (minutes).
    pub(super) fn apply_env(&mut self, env: &Env) -> Result<(), ConfigError> {
        env.set(&mut self.time_zone, "sla.time_zone");
        if let Some(v) = env.get("sla.hours") {
            self.hours = Some(
                v.split(',')
                    .map(|w| w.trim().to_string())
                    .filter(|w| !w.is_empty())
                    .collect(),
            );
        }
        for (priority, keys) in POLICY_KEYS {
            for (i, key) in keys.into_iter().enumerate() {
                let Some(v) = env.get(key) else { continue };
                let minutes = v.trim().parse::<i64>().map_err(|_| {
                    invalid(
                        key,
                        format!("expected a whole number of minutes, got {v:?}"),
                    )
                })?;
                let policy = self
                    .policy_mut(priority)
                    .get_or_insert_with(Default::default);
                if let Some(slot) = policy.slots().into_iter().nth(i) {
                    *slot = Some(minutes);
                }
            }
        }
        Ok(())
    }

    pub(super) fn validate(mut self) -> Result<SlaSettings, ConfigError> {
        let defaults = SlaSettings::always_open();
        let calendar = self.calendar()?;
        let mut settings = SlaSettings {
            calendar,
            ..defaults.clone()
        };
        for (priority, keys) in POLICY_KEYS {
            let default = *defaults.policy(priority);
            let mut raw = self.policy_mut(priority).take().unwrap_or_default();
            let [f, n, r] = raw.slots().map(|s| s.take());
            let policy = SlaPolicy {
                first_response_min: f.unwrap_or(default.first_response_min),
                next_response_min: n.unwrap_or(default.next_response_min),
                resolution_min: r.unwrap_or(default.resolution_min),
            };
            let values = [
                policy.first_response_min,
                policy.next_response_min,
                policy.resolution_min,
            ];
            for (key, v) in keys.into_iter().zip(values) {
                if !(1..=MAX_MINUTES).contains(&v) {
                    return Err(invalid(
                        key,
                        format!("must be between 1 and {MAX_MINUTES} business minutes, got {v}"),
                    ));
                }
            }
            if policy.first_response_min > policy.resolution_min {
                return Err(invalid(
                    keys[0],
                    "must not be longer than the resolution time of the same priority",
                ));
            }
            *match priority {
                Priority::Urgent => &mut settings.urgent,
                Priority::High => &mut settings.high,
                Priority::Normal => &mut settings.normal,
                Priority::Low => &mut settings.low,
            } = policy;
        }
        Ok(settings)
    }

    fn calendar(&mut self) -> Result<BusinessCalendar, ConfigError> {
        let mut spec = CalendarSpec::default();
        if let Some(name) = self.time_zone.take() {
            let name = name.trim().to_string();
            spec.time_zone = TimeZone::get(&name).map_err(|_| {
                invalid(
                    "sla.time_zone",
                    format!(
                        "unknown time zone {name:?}: expected an IANA name such as Asia/Shanghai"
                    ),
                )
            })?;
        }
        // `hours` covers every weekday without an entry in [sla.days]; the default short
        // weekend applies only when neither is set.
        if self.hours.is_some() || self.days.is_some() {
            spec.days = Default::default();
        }
        if let Some(hours) = self.hours.take() {
            spec.hours = windows(&hours, "sla.hours")?;
        }
        if let Some(days) = self.days.take() {
            let lists = [
                days.mon, days.tue, days.wed, days.thu, days.fri, days.sat, days.sun,
            ];
            for ((slot, list), key) in spec.days.iter_mut().zip(lists).zip(DAY_KEYS) {
                if let Some(list) = list {
                    *slot = Some(windows(&list, key)?);
                }
            }
        }
        spec.holidays = dates(self.holidays.take(), "sla.holidays")?;
        spec.workdays = dates(self.workdays.take(), "sla.workdays")?;
        BusinessCalendar::new(spec).map_err(|e| match e {
            CalendarError::HolidayAndWorkday(_) => invalid("sla.workdays", e.to_string()),
            CalendarError::NoOpenTime => invalid(
                "sla.hours",
                "the calendar has no open time: sla.hours and sla.days close every weekday",
            ),
            other => invalid("sla.hours", other.to_string()),
        })
    }
}

fn windows(list: &[String], key: &'static str) -> Result<Vec<Window>, ConfigError> {
    let parsed = list
        .iter()
        .map(|w| Window::parse(w.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(key, e.to_string()))?;
    sorted_windows(parsed).map_err(|e| invalid(key, e.to_string()))
}

fn dates(list: Option<Vec<String>>, key: &'static str) -> Result<Vec<Date>, ConfigError> {
    list.unwrap_or_default()
        .iter()
        .map(|d| {
            let d = d.trim();
            if d.len() != 10 {
                return Err(invalid(
                    key,
                    format!("expected a date YYYY-MM-DD, got {d:?}"),
                ));
            }
            d.parse::<Date>()
                .map_err(|_| invalid(key, format!("expected a date YYYY-MM-DD, got {d:?}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use jiff::civil::date;

    use crate::config::{Config, ConfigError};
    use crate::tickets::{Priority, Target};

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_sources(toml, Path::new("kefu.toml"), |k| env.get(k).cloned())
    }

    fn err(toml: &str) -> String {
        load(toml, &[]).unwrap_err().to_string()
    }

    fn ms(tz: &str, d: jiff::civil::Date, h: i8, m: i8) -> i64 {
        jiff::tz::TimeZone::get(tz)
            .unwrap()
            .to_ambiguous_timestamp(d.at(h, m, 0, 0))
            .compatible()
            .unwrap()
            .as_millisecond()
    }

    #[test]
    fn no_section_gives_the_default_calendar_and_policies() {
        let c = load("", &[]).unwrap();
        assert_eq!(
            c.sla.calendar.time_zone().iana_name(),
            Some("Asia/Shanghai")
        );
        assert_eq!(c.sla.urgent.first_response_min, 5);
        assert_eq!(c.sla.low.resolution_min, 3 * 24 * 60);
        let mon = date(2026, 3, 2);
        assert_eq!(c.sla.calendar.windows_on(mon).len(), 2);
        // Monday 11:58 + 5 business minutes: 13:33 after lunch.
        let start = ms("Asia/Shanghai", mon, 11, 58);
        assert_eq!(
            c.sla.due(Priority::Urgent, Target::FirstResponse, start),
            ms("Asia/Shanghai", mon, 13, 33)
        );
    }

    #[test]
    fn a_full_section_is_read() {
        let text = r#"
[sla]
time_zone = "Europe/Berlin"
hours = ["13:30-21:00", "09:00-12:00"]
holidays = ["2026-10-01"]
workdays = ["2026-10-10"]
[sla.days]
sat = ["10:00-18:00"]
sun = []
[sla.urgent]
first_response = 3
[sla.low]
resolution = 10000
"#;
        let c = load(text, &[]).unwrap();
        let cal = &c.sla.calendar;
        assert_eq!(cal.time_zone().iana_name(), Some("Europe/Berlin"));
        assert_eq!(cal.windows_on(date(2026, 3, 2)).len(), 2);
        assert!(cal.windows_on(date(2026, 3, 8)).is_empty());
        assert!(cal.windows_on(date(2026, 10, 1)).is_empty());
        assert_eq!(cal.windows_on(date(2026, 10, 10)).len(), 2);
        assert_eq!(c.sla.urgent.first_response_min, 3);
        assert_eq!(c.sla.urgent.next_response_min, 5);
        assert_eq!(c.sla.low.resolution_min, 10000);
    }

    #[test]
    fn hours_alone_apply_to_every_day() {
        let c = load("[sla]\nhours = [\"08:00-20:00\"]\n", &[]).unwrap();
        assert_eq!(c.sla.calendar.windows_on(date(2026, 3, 8)).len(), 1);
        assert_eq!(
            c.sla.calendar.windows_on(date(2026, 3, 8))[0].to_string(),
            "08:00-20:00"
        );
    }

    #[test]
    fn the_environment_sets_the_zone_hours_and_minutes() {
        let c = load(
            "[sla]\ntime_zone = \"Asia/Tokyo\"\n",
            &[
                ("KEFU_SLA_TIME_ZONE", "America/New_York"),
                ("KEFU_SLA_HOURS", "08:00-12:00, 13:00-17:00"),
                ("KEFU_SLA_HIGH_FIRST_RESPONSE", "10"),
            ],
        )
        .unwrap();
        assert_eq!(
            c.sla.calendar.time_zone().iana_name(),
            Some("America/New_York")
        );
        assert_eq!(
            c.sla.calendar.windows_on(date(2026, 3, 7))[1].to_string(),
            "13:00-17:00"
        );
        assert_eq!(c.sla.high.first_response_min, 10);
        let e = load("", &[("KEFU_SLA_NORMAL_RESOLUTION", "a day")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("sla.normal.resolution"), "{e}");
        let e = load("", &[("KEFU_SLA_TIME_ZONE", "Mars/Olympus")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sla.time_zone") && e.contains("KEFU_SLA_TIME_ZONE"),
            "{e}"
        );
    }

    #[test]
    fn mistakes_name_the_key() {
        let cases = [
            ("[sla]\ntime_zone = \"Asia/Shangai\"\n", "sla.time_zone"),
            ("[sla]\nhours = [\"9-12\"]\n", "sla.hours"),
            ("[sla]\nhours = [\"12:00-09:00\"]\n", "sla.hours"),
            (
                "[sla]\nhours = [\"09:00-13:00\", \"12:00-18:00\"]\n",
                "sla.hours",
            ),
            ("[sla.days]\nsat = [\"25:00-26:00\"]\n", "sla.days.sat"),
            ("[sla]\nhours = []\n", "sla.hours"),
            (
                "[sla]\nhours = []\nworkdays = [\"2026-10-10\"]\n",
                "no open time",
            ),
            ("[sla]\nholidays = [\"2026-13-01\"]\n", "sla.holidays"),
            ("[sla]\nholidays = [\"2026-10-01T00:00\"]\n", "sla.holidays"),
            (
                "[sla]\nholidays = [\"2026-10-01\"]\nworkdays = [\"2026-10-01\"]\n",
                "sla.workdays",
            ),
            (
                "[sla.urgent]\nfirst_response = 0\n",
                "sla.urgent.first_response",
            ),
            ("[sla.high]\nresolution = 99999999\n", "sla.high.resolution"),
            (
                "[sla.normal]\nfirst_response = 600\nresolution = 60\n",
                "sla.normal.first_response",
            ),
            ("[sla.days]\nsaturday = []\n", "saturday"),
        ];
        for (text, needle) in cases {
            let e = err(text);
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
