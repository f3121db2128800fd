//! RFM: recency, frequency and monetary value, each scored 1–5 against the shop's own
//! customers with orders.
//!
//! The rule: a value's score is `1 + floor(5 × p)` (at most 5), where `p` is its mid-rank
//! percentile among the customers with orders, `p = (below + equal / 2) / n` (`below`: how
//! many have a smaller value, `equal`: how many have the same). So:
//!
//! - with many customers the scores are quintiles: the lowest fifth scores 1, the top fifth 5;
//! - ties score the same, whatever order the rows came in;
//! - a shop with one customer, or where everyone has the same value, scores 3 (the middle);
//!   two customers score 2 and 4; five distinct values score 1 to 5.
//!
//! Recency ranks customers by the day of their last order (China time): for a given "now",
//! the same order as fewer days since the last order, with orders on the same day tied. A
//! customer with orders but no known last-order date scores recency 1.
//!
//! Scoring one customer uses [`Bounds`]: per dimension the smallest value reaching scores
//! 2, 3, 4 and 5. Bounds are computed once per import (O(n log n)) and stored; a lookup
//! compares against four numbers.

use serde::Serialize;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;
/// China Standard Time, the shops' clock (no daylight saving).
pub const CHINA_OFFSET_MS: i64 = 8 * 3_600_000;

/// The day (days since 1970-01-01, China time) of an instant in unix ms.
pub fn china_day(ms: i64) -> i64 {
    (ms + CHINA_OFFSET_MS).div_euclid(DAY_MS)
}

/// One dimension's boundaries: `min_for[k]` is the smallest value scoring `k + 2`
/// (`None`: no customer's value scores that much).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DimensionBounds {
    pub min_for: [Option<i64>; 4],
    /// How many customers the boundaries were computed over.
    pub population: i64,
}

impl DimensionBounds {
    /// Boundaries over `values` (any order).
    pub fn compute(mut values: Vec<i64>) -> DimensionBounds {
        values.sort_unstable();
        let n = values.len();
        let mut min_for = [None; 4];
        let mut i = 0;
        while i < n {
            let v = values[i];
            let mut j = i;
            while j < n && values[j] == v {
                j += 1;
            }
            let score = score_of(i, j - i, n);
            for (k, slot) in min_for.iter_mut().enumerate() {
                if slot.is_none() && score >= k as u8 + 2 {
                    *slot = Some(v);
                }
            }
            i = j;
        }
        DimensionBounds {
            min_for,
            population: n as i64,
        }
    }

    /// The score of `value`: 1 plus the number of boundaries it reaches.
    pub fn score(&self, value: i64) -> u8 {
        1 + self
            .min_for
            .iter()
            .filter(|b| b.is_some_and(|b| value >= b))
            .count() as u8
    }
}

/// `1 + floor(5 × (below + equal/2) / n)`, capped at 5, in integers.
fn score_of(below: usize, equal: usize, n: usize) -> u8 {
    if n == 0 {
        return 1;
    }
    // 5 × (2·below + equal) / (2n)
    let s = 1 + (5 * (2 * below + equal)) / (2 * n);
    s.min(5) as u8
}

/// The boundaries of all three dimensions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bounds {
    /// Over the day of the last order (a later day scores higher).
    pub recency: DimensionBounds,
    /// Over lifetime orders.
    pub frequency: DimensionBounds,
    /// Over lifetime spend in fen.
    pub monetary: DimensionBounds,
}

/// What the bounds are computed from: one customer with at least one order.
#[derive(Debug, Clone, Copy)]
pub struct Purchases {
    pub orders: i64,
    pub spent_fen: i64,
    pub last_order_at: Option<i64>,
}

impl Bounds {
    /// Boundaries over the customers with orders among `customers`.
    pub fn compute(customers: impl IntoIterator<Item = Purchases>) -> Bounds {
        let (mut days, mut orders, mut spent) = (Vec::new(), Vec::new(), Vec::new());
        for c in customers.into_iter().filter(|c| c.orders > 0) {
            if let Some(at) = c.last_order_at {
                days.push(china_day(at));
            }
            orders.push(c.orders);
            spent.push(c.spent_fen);
        }
        Bounds {
            recency: DimensionBounds::compute(days),
            frequency: DimensionBounds::compute(orders),
            monetary: DimensionBounds::compute(spent),
        }
    }

    /// The scores of a customer; `None` without orders.
    pub fn score(&self, p: &Purchases) -> Option<RfmScores> {
        if p.orders <= 0 {
            return None;
        }
        Some(RfmScores {
            recency: p
                .last_order_at
                .map_or(1, |at| self.recency.score(china_day(at))),
            frequency: self.frequency.score(p.orders),
            monetary: self.monetary.score(p.spent_fen),
        })
    }
}

/// A customer's RFM scores, each 1–5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RfmScores {
    pub recency: u8,
    pub frequency: u8,
    pub monetary: u8,
}

impl RfmScores {
    pub fn total(&self) -> u32 {
        u32::from(self.recency) + u32::from(self.frequency) + u32::from(self.monetary)
    }
}

impl std::fmt::Display for RfmScores {
    /// `RFM 5+5+4 = 14`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RFM {}+{}+{} = {}",
            self.recency,
            self.frequency,
            self.monetary,
            self.total()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(values: &[i64]) -> Vec<u8> {
        let b = DimensionBounds::compute(values.to_vec());
        values.iter().map(|v| b.score(*v)).collect()
    }

    #[test]
    fn many_distinct_values_are_quintiles() {
        let values: Vec<i64> = (1..=10).collect();
        assert_eq!(scores(&values), [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        let values: Vec<i64> = (1..=100).collect();
        let s = scores(&values);
        for k in 1..=5u8 {
            assert_eq!(s.iter().filter(|x| **x == k).count(), 20, "score {k}");
        }
    }

    #[test]
    fn ties_score_alike_whatever_the_order() {
        let a = scores(&[1, 1, 1, 1, 1, 1, 9, 20, 30, 40]);
        // Six tied at the bottom: mid-rank 3/10 -> 2; the four above take 4, 4, 5, 5.
        assert_eq!(a, [2, 2, 2, 2, 2, 2, 4, 4, 5, 5]);
        let b = scores(&[40, 1, 30, 1, 20, 1, 9, 1, 1, 1]);
        assert_eq!(b, [5, 2, 5, 2, 4, 2, 4, 2, 2, 2]);
    }

    #[test]
    fn tiny_shops_get_sensible_scores() {
        assert_eq!(scores(&[]), Vec::<u8>::new());
        assert_eq!(scores(&[7]), [3], "a lone customer is in the middle");
        assert_eq!(scores(&[5, 5, 5]), [3, 3, 3], "all alike: the middle");
        assert_eq!(scores(&[1, 2]), [2, 4]);
        assert_eq!(scores(&[1, 2, 3]), [1, 3, 5]);
        assert_eq!(scores(&[1, 2, 3, 4, 5]), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn values_outside_the_population_fall_between_boundaries() {
        let b = DimensionBounds::compute((1..=10).collect());
        assert_eq!(b.min_for, [Some(3), Some(5), Some(7), Some(9)]);
        assert_eq!(b.score(0), 1);
        assert_eq!(b.score(1000), 5);
        let empty = DimensionBounds::compute(Vec::new());
        assert_eq!(empty.score(42), 1);
    }

    #[test]
    fn recency_ranks_by_day_and_customers_without_orders_have_no_scores() {
        let day = |d: i64| Some(d * DAY_MS);
        let people = [
            Purchases {
                orders: 14,
                spent_fen: 860_000,
                last_order_at: day(20_000),
            },
            Purchases {
                orders: 1,
                spent_fen: 9_900,
                last_order_at: day(19_000),
            },
            Purchases {
                orders: 0,
                spent_fen: 0,
                last_order_at: None,
            },
            Purchases {
                orders: 3,
                spent_fen: 30_000,
                last_order_at: None,
            },
        ];
        let b = Bounds::compute(people);
        assert_eq!(b.frequency.population, 3, "only customers with orders");
        assert_eq!(b.recency.population, 2, "only known dates");
        let best = b.score(&people[0]).unwrap();
        assert_eq!((best.recency, best.frequency, best.monetary), (4, 5, 5));
        assert_eq!(best.to_string(), "RFM 4+5+5 = 14");
        assert_eq!(b.score(&people[1]).unwrap().recency, 2);
        assert_eq!(b.score(&people[2]), None);
        assert_eq!(b.score(&people[3]).unwrap().recency, 1, "date unknown");
        // Two orders on the same China day, hours apart, tie.
        assert_eq!(
            china_day(20_000 * DAY_MS + 3_600_000),
            china_day(20_000 * DAY_MS + 10 * 3_600_000)
        );
    }
}
