//! The dashboard as CSV: one row per dimension value, for a spreadsheet.
//!
//! Values come from data (agent ids, tiers), so besides CSV quoting every text cell is kept
//! from becoming a formula: a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage
//! return (or the full-width `＝＋－＠`, which some spreadsheets read alike) gets a leading
//! `'`, as OWASP recommends. Numbers are written by kefu and left as they are. Minutes have
//! one decimal, shares four (0.6667); a share with nothing to divide is an empty cell, and so
//! are the auto-answer columns of the tier and agent rows, which have none.

use std::borrow::Cow;

use super::{Dashboard, Dimension, Figures, Spread};

pub const HEADER: [&str; 22] = [
    "dimension",
    "value",
    "tickets",
    "first_response_p50_min",
    "first_response_p90_min",
    "first_responded",
    "resolution_p50_min",
    "resolution_p90_min",
    "resolved",
    "sla_breached",
    "sla_attained_share",
    "shopper_messages",
    "auto_answered",
    "auto_answer_share",
    "suggestions_decided",
    "suggestions_accepted",
    "suggestions_edited",
    "suggestions_dismissed",
    "suggestion_acceptance_share",
    "suggestion_accepted_as_is_share",
    "csat_good_share",
    "csat_ratings",
];

/// A text cell a spreadsheet will not run.
pub fn inert(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠']) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

pub fn minutes(ms: Option<i64>) -> String {
    ms.map(|ms| format!("{:.1}", ms as f64 / 60_000.0))
        .unwrap_or_default()
}

fn share(s: Option<f64>) -> String {
    s.map(|s| format!("{s:.4}")).unwrap_or_default()
}

fn record(dimension: Dimension, value: &str, f: &Figures) -> Vec<String> {
    let spread = |s: &Spread| [minutes(s.p50_ms), minutes(s.p90_ms), s.n.to_string()];
    let [fr50, fr90, frn] = spread(&f.first_response);
    let [re50, re90, ren] = spread(&f.resolution);
    let messages = if dimension.has_messages() {
        [
            f.shopper_messages.to_string(),
            f.auto_answered.to_string(),
            share(f.auto_answer_share()),
        ]
    } else {
        Default::default()
    };
    let [msgs, answered, auto] = messages;
    vec![
        dimension.as_str().to_string(),
        inert(value).into_owned(),
        f.tickets.to_string(),
        fr50,
        fr90,
        frn,
        re50,
        re90,
        ren,
        f.sla_breached.to_string(),
        share(f.sla_attained_share()),
        msgs,
        answered,
        auto,
        f.suggestions_decided().to_string(),
        f.suggestions_accepted.to_string(),
        f.suggestions_edited.to_string(),
        f.suggestions_dismissed.to_string(),
        share(f.suggestion_acceptance_share()),
        share(f.suggestion_as_is_share()),
        share(f.csat_good_share()),
        f.csat_ratings().to_string(),
    ]
}

/// The whole dashboard: the header, the overall row (value `all`), then each breakdown.
pub fn to_csv(d: &Dashboard) -> Result<String, ::csv::Error> {
    // CRLF between records, as RFC 4180 has it.
    let mut w = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(HEADER)?;
    w.write_record(record(Dimension::Overall, "all", &d.overall))?;
    for b in &d.breakdowns {
        for r in &b.rows {
            w.write_record(record(b.dimension, &r.value, &r.figures))?;
        }
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    // Every cell was a `String`: the bytes are UTF-8.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_would_be_formulas_get_a_quote_first() {
        for (cell, out) in [
            ("=1+1", "'=1+1"),
            ("+86 138", "'+86 138"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("＝1+1", "'＝1+1"),
            ("li", "li"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(inert(cell), out, "{cell:?}");
        }
    }

    #[test]
    fn the_header_and_a_row_have_the_same_width() {
        let row = record(Dimension::Tier, "vip", &Figures::default());
        assert_eq!(row.len(), HEADER.len());
        assert_eq!(row[11..14], ["", "", ""], "no auto-answer figures by tier");
        let row = record(Dimension::Overall, "all", &Figures::default());
        assert_eq!(row[11..14], ["0", "0", ""]);
    }
}
