//! `kefu crm import FILE.csv`: the shop's customers and purchase history.
//!
//! The file is UTF-8 (with or without a BOM) or GBK/GB18030, as Chinese Excel saves it; the
//! encoding is detected and the bytes decoded explicitly. The first line names the columns:
//!
//! | column | |
//! |---|---|
//! | `external_userid`, `unionid` | who; a row needs at least one |
//! | `name` | optional |
//! | `tags` | separated by `;` `；` `,` `，` `|` or `、` inside the cell |
//! | `orders` | lifetime orders, a whole number ≥ 0 (empty: 0) |
//! | `total_spent` | lifetime spend in yuan: `8600`, `8600.50`, `¥8,600.50` (at most 2 decimals) |
//! | `last_order_at` | `2026-11-26` or `2026/11/26` (optionally with a time, China time), or RFC 3339 (`2026-11-26T10:30:00+08:00`); empty without orders |
//!
//! Other columns are ignored (and named in the summary). A row that fails a check is
//! reported with its line number and skipped; the others are imported in one transaction.
//! A row replaces the history stored under the same key; rows whose contents are the same
//! are left untouched, so importing a file twice changes nothing the second time.

use std::collections::HashMap;
use std::path::Path;

use super::rfm::Bounds;
use super::store::{self as crm_store, CustomerColumn, IdKind, PurchaseRow};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the file is neither UTF-8 nor GBK/GB18030 text")]
    Encoding,
    #[error("the first line must name the columns: {0}")]
    Header(String),
    #[error("store: {0}")]
    Db(#[from] sqlx::Error),
}

/// A row left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub line: u64,
    pub problem: String,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// `UTF-8` or `GB18030`.
    pub encoding: &'static str,
    /// Rows new to the store.
    pub new: usize,
    /// Rows that changed a stored history.
    pub updated: usize,
    /// Rows identical to what was stored.
    pub unchanged: usize,
    pub rejected: Vec<Rejected>,
    /// Columns kefu does not know, left out.
    pub ignored_columns: Vec<String>,
}

impl std::fmt::Display for ImportReport {
    /// `imported 3 (2 new, 1 updated), unchanged 5, rejected 1`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "imported {} ({} new, {} updated), unchanged {}, rejected {}",
            self.new + self.updated,
            self.new,
            self.updated,
            self.unchanged,
            self.rejected.len()
        )
    }
}

/// One valid row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    pub line: u64,
    pub external_userid: Option<String>,
    pub unionid: Option<String>,
    pub name: Option<String>,
    pub tags: Vec<String>,
    pub orders: i64,
    pub spent_fen: i64,
    pub last_order_at: Option<i64>,
}

/// A file's rows, checked.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub rows: Vec<ImportRow>,
    pub rejected: Vec<Rejected>,
    /// Columns kefu does not know.
    pub ignored_columns: Vec<String>,
}

/// The text of the file and the encoding it was in.
pub fn decode(bytes: &[u8]) -> Result<(String, &'static str), ImportError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok((text.to_string(), "UTF-8"));
    }
    let (text, had_errors) = encoding_rs::GB18030.decode_without_bom_handling(bytes);
    if had_errors {
        return Err(ImportError::Encoding);
    }
    Ok((text.into_owned(), "GB18030"))
}

const KNOWN: [&str; 7] = [
    "external_userid",
    "unionid",
    "name",
    "tags",
    "orders",
    "total_spent",
    "last_order_at",
];

/// The valid rows, the rejected ones and the ignored columns. `now_ms` bounds
/// `last_order_at` (a day ahead at most, for clocks and time zones).
pub fn parse(text: &str, now_ms: i64) -> Result<Parsed, ImportError> {
    // Windows line ends become plain ones: the reader counts lines after a CRLF one short.
    let text = text.replace("\r\n", "\n");
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| ImportError::Header(e.to_string()))?
        .clone();
    let names: Vec<String> = headers.iter().map(|h| h.to_lowercase()).collect();
    let column = |name: &str| names.iter().position(|n| n == name);
    if column("external_userid").is_none() && column("unionid").is_none() {
        return Err(ImportError::Header(format!(
            "no external_userid or unionid column (found: {})",
            headers.iter().collect::<Vec<_>>().join(", ")
        )));
    }
    let ignored: Vec<String> = headers
        .iter()
        .filter(|h| !h.is_empty() && !KNOWN.contains(&h.to_lowercase().as_str()))
        .map(str::to_owned)
        .collect();
    let cols: Vec<Option<usize>> = KNOWN.iter().map(|k| column(k)).collect();

    let (mut rows, mut rejected) = (Vec::new(), Vec::new());
    let mut seen: HashMap<(IdKind, String), u64> = HashMap::new();
    for result in reader.records() {
        let record = match result {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                rejected.push(Rejected {
                    line,
                    problem: format!("not readable as CSV: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        let cell = |i: usize| cols[i].and_then(|c| record.get(c)).unwrap_or("");
        match check_row(line, [0, 1, 2, 3, 4, 5, 6].map(cell), now_ms) {
            Ok(row) => {
                let key = key_of(&row);
                if let Some(first) = seen.get(&key) {
                    rejected.push(Rejected {
                        line,
                        problem: format!("{} {} is already on line {first}", key.0.as_str(), key.1),
                    });
                } else {
                    seen.insert(key, line);
                    rows.push(row);
                }
            }
            Err(problems) => rejected.push(Rejected {
                line,
                problem: problems.join("; "),
            }),
        }
    }
    Ok(Parsed {
        rows,
        rejected,
        ignored_columns: ignored,
    })
}

/// The key a row is stored under: its external_userid, else its unionid.
fn key_of(row: &ImportRow) -> (IdKind, String) {
    match (&row.external_userid, &row.unionid) {
        (Some(e), _) => (IdKind::ExternalUserId, e.clone()),
        (None, Some(u)) => (IdKind::UnionId, u.clone()),
        // check_row refuses rows without either.
        (None, None) => (IdKind::UnionId, String::new()),
    }
}

/// Cells in the order of [`KNOWN`].
fn check_row(line: u64, cells: [&str; 7], now_ms: i64) -> Result<ImportRow, Vec<String>> {
    let [external_userid, unionid, name, tags, orders, spent, last] = cells;
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let mut problems = Vec::new();
    if external_userid.is_empty() && unionid.is_empty() {
        problems.push("needs an external_userid or a unionid".to_string());
    }
    let orders = match orders {
        "" => 0,
        s => match s.parse::<i64>() {
            Ok(n) if n >= 0 => n,
            _ => {
                problems.push(format!("orders {s:?} is not a whole number of 0 or more"));
                0
            }
        },
    };
    let spent_fen = match spent {
        "" => 0,
        s => parse_yuan(s).unwrap_or_else(|why| {
            problems.push(format!("total_spent {s:?} {why}"));
            0
        }),
    };
    let last_order_at = match last {
        "" => None,
        s => match parse_when(s) {
            Some(ms) if ms > now_ms + super::rfm::DAY_MS => {
                problems.push(format!("last_order_at {s:?} is in the future"));
                None
            }
            Some(ms) => Some(ms),
            None => {
                problems.push(format!(
                    "last_order_at {s:?} is not a date like 2026-11-26 or an RFC 3339 time"
                ));
                None
            }
        },
    };
    if orders == 0 && !last.is_empty() && problems.is_empty() {
        problems.push("last_order_at is given but orders is 0".into());
    }
    if orders == 0 && spent_fen > 0 && problems.is_empty() {
        problems.push("total_spent is given but orders is 0".into());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(ImportRow {
        line,
        external_userid: some(external_userid),
        unionid: some(unionid),
        name: some(name),
        tags: split_tags(tags),
        orders,
        spent_fen,
        last_order_at,
    })
}

/// Tags in a cell, in order, each once.
pub fn split_tags(cell: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in cell.split([';', '；', ',', '，', '|', '、']) {
        let t = t.trim();
        if !t.is_empty() && !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    out
}

/// Yuan to fen: `8600`, `8600.5`, `8600.50`, `¥8,600.50`.
pub fn parse_yuan(s: &str) -> Result<i64, &'static str> {
    let s = s.trim_start_matches(['¥', '￥']).trim().replace(',', "");
    let (whole, frac) = s.split_once('.').unwrap_or((&s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) {
        return Err("is not an amount in yuan such as 8600 or 8600.50");
    }
    if frac.len() > 2 {
        return Err("has more than 2 decimals");
    }
    let cents = format!("{frac:0<2}");
    whole
        .parse::<i64>()
        .ok()
        .and_then(|y| y.checked_mul(100))
        .and_then(|f| f.checked_add(cents.parse::<i64>().unwrap_or(0)))
        .ok_or("is too large")
}

/// Unix ms of `2026-11-26`, `2026/11/26`, either with ` 10:30` or ` 10:30:00` (China time),
/// or an RFC 3339 time with its offset.
pub fn parse_when(s: &str) -> Option<i64> {
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Some(ts.as_millisecond());
    }
    let (date, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t.trim())),
        None => (s, None),
    };
    let mut ymd = date.split(['-', '/']);
    let mut part = || ymd.next().and_then(|p| p.parse::<i16>().ok());
    let (y, m, d) = (part()?, part()?, part()?);
    if ymd.next().is_some() {
        return None;
    }
    let date = jiff::civil::Date::new(y, i8::try_from(m).ok()?, i8::try_from(d).ok()?).ok()?;
    let time = match time {
        None => jiff::civil::Time::midnight(),
        Some(t) => {
            let mut hms = t.split(':').map(|p| p.parse::<i8>().ok());
            let h = hms.next()??;
            let min = hms.next()??;
            let sec = hms.next().unwrap_or(Some(0))?;
            if hms.next().is_some() {
                return None;
            }
            jiff::civil::Time::new(h, min, sec, 0).ok()?
        }
    };
    let dt = jiff::civil::DateTime::from_parts(date, time);
    let ts = jiff::tz::Offset::constant(8).to_timestamp(dt).ok()?;
    Some(ts.as_millisecond())
}

/// Read, check and store `path`.
pub async fn import_file(
    store: &Store,
    path: &Path,
    now_ms: i64,
) -> Result<ImportReport, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
        path: path.display().to_string(),
        source,
    })?;
    import_bytes(store, &bytes, now_ms).await
}

/// Check and store a file's contents, then recompute the RFM boundaries.
pub async fn import_bytes(
    store: &Store,
    bytes: &[u8],
    now_ms: i64,
) -> Result<ImportReport, ImportError> {
    let (text, encoding) = decode(bytes)?;
    let Parsed {
        rows,
        rejected,
        ignored_columns,
    } = parse(&text, now_ms)?;
    let mut report = ImportReport {
        encoding,
        rejected,
        ignored_columns,
        ..ImportReport::default()
    };
    let mut tx = store.pool().begin().await?;
    crm_store::take_write_lock(&mut tx).await?;
    let mut stored: HashMap<(IdKind, String), PurchaseRow> = crm_store::all_purchases(&mut tx)
        .await?
        .into_iter()
        .map(|r| ((r.id_kind, r.id_value.clone()), r))
        .collect();
    for row in rows {
        let (id_kind, id_value) = key_of(&row);
        let mut new = PurchaseRow {
            id_kind,
            id_value: id_value.clone(),
            unionid: row.unionid.clone(),
            name: row.name.clone(),
            tags: serde_json::to_string(&row.tags).unwrap_or_else(|_| "[]".into()),
            orders: row.orders,
            spent_fen: row.spent_fen,
            last_order_at: row.last_order_at,
            created_at: now_ms,
            updated_at: now_ms,
        };
        match stored.get(&(id_kind, id_value.clone())) {
            Some(old) if old.same_contents(&new) => report.unchanged += 1,
            Some(old) => {
                new.created_at = old.created_at;
                crm_store::update_purchase(&mut tx, &new).await?;
                report.updated += 1;
            }
            None => {
                crm_store::insert_purchase(&mut tx, &new).await?;
                report.new += 1;
            }
        }
        if let Some(e) = &row.external_userid {
            crm_store::link_customer(
                &mut *tx,
                CustomerColumn::ExternalUserId,
                e,
                row.unionid.as_deref(),
                false,
                now_ms,
            )
            .await?;
        }
        stored.insert((id_kind, id_value), new);
    }
    let bounds = Bounds::compute(stored.values().map(|r| super::rfm::Purchases {
        orders: r.orders,
        spent_fen: r.spent_fen,
        last_order_at: r.last_order_at,
    }));
    if crm_store::load_bounds(&mut *tx).await? != Some(bounds) {
        crm_store::save_bounds(&mut tx, &bounds, now_ms).await?;
    }
    tx.commit().await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-30, China time.
    const NOW: i64 = 1_796_000_000_000;

    #[test]
    fn amounts_become_fen() {
        assert_eq!(parse_yuan("8600"), Ok(860_000));
        assert_eq!(parse_yuan("8600.5"), Ok(860_050));
        assert_eq!(parse_yuan("8600.50"), Ok(860_050));
        assert_eq!(parse_yuan("¥8,600.05"), Ok(860_005));
        assert!(parse_yuan("8600.505").is_err());
        assert!(parse_yuan("-5").is_err());
        assert!(parse_yuan("abc").is_err());
        assert!(parse_yuan(".5").is_err());
        assert!(parse_yuan("99999999999999999999").is_err());
    }

    #[test]
    fn dates_are_china_time_unless_they_say_otherwise() {
        // 2026-11-26 00:00 +08:00 = 2026-11-25 16:00 UTC.
        let midnight = parse_when("2026-11-26").unwrap();
        assert_eq!(midnight, 1_795_622_400_000);
        assert_eq!(parse_when("2026/11/26"), Some(midnight));
        assert_eq!(parse_when("2026/11/26 10:30"), Some(midnight + 37_800_000));
        assert_eq!(
            parse_when("2026-11-26T02:30:00Z"),
            Some(midnight + 37_800_000)
        );
        assert_eq!(
            parse_when("2026-11-26T10:30:00+08:00"),
            Some(midnight + 37_800_000)
        );
        for bad in [
            "26/11/2026",
            "2026-13-01",
            "2026-02-30",
            "yesterday",
            "2026-11",
        ] {
            assert_eq!(parse_when(bad), None, "{bad}");
        }
    }

    #[test]
    fn tags_split_on_any_listed_separator() {
        assert_eq!(
            split_tags("VIP;老客户、投诉风险|复购，VIP"),
            ["VIP", "老客户", "投诉风险", "复购"]
        );
        assert!(split_tags(" ; ").is_empty());
    }

    #[test]
    fn gbk_and_utf8_with_bom_decode_to_the_same_text() {
        let text = "external_userid,name\nwm1,王女士\n";
        let (gbk, _, _) = encoding_rs::GBK.encode(text);
        assert_eq!(decode(&gbk).unwrap(), (text.to_string(), "GB18030"));
        let bom = [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat();
        assert_eq!(decode(&bom).unwrap(), (text.to_string(), "UTF-8"));
        assert!(matches!(
            decode(&[0xff, 0xff, 0xff]),
            Err(ImportError::Encoding)
        ));
    }

    #[test]
    fn bad_rows_are_reported_by_line_and_the_rest_kept() {
        let text = "External_UserID,unionid,name,tags,orders,total_spent,last_order_at,备注\n\
                    wm1,,王女士,VIP,14,8600,2026-11-20,\n\
                    ,,nobody,,1,10,2026-11-20,\n\
                    wm2,,,,many,8600.123,2026-02-30,\n\
                    \"wm3\",ou3,\"多行\n名字\",,0,,2026-01-01,\n\
                    ,,,,,,,\r\n\
                    wm1,,again,,1,1,2026-11-20,\r\n\
                    ,ou4,,,2,100,,\n";
        let Parsed {
            rows,
            rejected,
            ignored_columns: ignored,
        } = parse(text, NOW).unwrap();
        assert_eq!(ignored, ["备注"]);
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 9]);
        assert_eq!(rows[0].spent_fen, 860_000);
        assert_eq!(rows[1].last_order_at, None);
        let shown: Vec<String> = rejected.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "line 3: needs an external_userid or a unionid",
                "line 4: orders \"many\" is not a whole number of 0 or more; total_spent \"8600.123\" has more than 2 decimals; last_order_at \"2026-02-30\" is not a date like 2026-11-26 or an RFC 3339 time",
                "line 5: last_order_at is given but orders is 0",
                "line 8: external_userid wm1 is already on line 2",
            ]
        );
    }

    #[test]
    fn a_file_without_a_key_column_is_refused() {
        let e = parse("name,orders\nx,1\n", NOW).unwrap_err();
        assert!(e.to_string().contains("external_userid"), "{e}");
    }
}
