//! Business time: when the shop's agents work, so SLA clocks count only working minutes.
//!
//! Placeholder shape: every minute is a business minute. The real calendar (windows per day,
//! holidays, make-up workdays, a time zone) replaces the body behind the same methods.

/// When the shop works. All instants are Unix milliseconds (UTC).
#[derive(Debug, Clone, Default)]
pub struct BusinessCalendar {
    _private: (),
}

impl BusinessCalendar {
    /// Open every minute of every day.
    pub fn always_open() -> BusinessCalendar {
        BusinessCalendar { _private: () }
    }

    /// The instant `business_ms` of business time after `start_ms`.
    pub fn add_business_ms(&self, start_ms: i64, business_ms: i64) -> i64 {
        start_ms.saturating_add(business_ms.max(0))
    }

    /// Business time from `from_ms` to `to_ms` (0 if `to_ms` is not later).
    pub fn business_ms_between(&self, from_ms: i64, to_ms: i64) -> i64 {
        (to_ms - from_ms).max(0)
    }

    /// Is the shop working at `at_ms`?
    pub fn is_open(&self, _at_ms: i64) -> bool {
        true
    }
}
