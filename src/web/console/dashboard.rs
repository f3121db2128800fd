//! `GET /console/dashboard?from=YYYY-MM-DD&to=YYYY-MM-DD` and `GET /console/dashboard.csv`
//! (supervisors only): the figures of [`crate::console::dashboard`] for whole days in the
//! shop's time zone, as a page (tables, with server-drawn SVG bars beside them: no script)
//! or as CSV. A period that is not a pair of dates in order, or longer than
//! [`dashboard::MAX_DAYS`], is refused with 400 and the reason in plain text.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::auth::{Session, Supervisor};
use super::{render, ser};
use crate::console::dashboard::{self, csv, Breakdown, Dimension, Figures, Period, Spread};
use crate::web::{AppState, WebError};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/dashboard", get(page))
        .route("/console/dashboard.csv", get(download))
}

#[derive(Debug, Default, Deserialize)]
struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
}

type RangeParams = Result<Query<RangeQuery>, QueryRejection>;

/// The period asked for, or what is wrong with it.
fn period(state: &AppState, query: RangeParams) -> Result<Period, String> {
    let Query(q) = query.map_err(|_| "the query string does not parse".to_string())?;
    Period::from_query(
        q.from.as_deref(),
        q.to.as_deref(),
        &state.config.sla.calendar.time_zone(),
        state.clock.now_ms(),
    )
    .map_err(|e| e.to_string())
}

fn bad_period(reason: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("bad period: {reason}\n"),
    )
        .into_response()
}

/// `GET /console/dashboard.csv`: the same figures, one row per dimension value.
async fn download(
    State(state): State<AppState>,
    Supervisor(_): Supervisor,
    query: RangeParams,
) -> Result<Response, WebError> {
    let period = match period(&state, query) {
        Ok(p) => p,
        Err(reason) => return Ok(bad_period(&reason)),
    };
    let d = dashboard::compute(state.store.pool(), period)
        .await
        .map_err(WebError::store)?;
    let body = csv::to_csv(&d).map_err(|e| {
        tracing::error!(error = %e, "dashboard CSV failed");
        WebError::Internal("the CSV could not be written")
    })?;
    let disposition = format!(
        "attachment; filename=\"kefu-dashboard-{}-{}.csv\"",
        period.from, period.to
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// `GET /console/dashboard`: the page.
async fn page(
    State(state): State<AppState>,
    Supervisor(user): Supervisor,
    session: Session,
    query: RangeParams,
) -> Result<Response, WebError> {
    let period = match period(&state, query) {
        Ok(p) => p,
        Err(reason) => return Ok(bad_period(&reason)),
    };
    let d = dashboard::compute(state.store.pool(), period)
        .await
        .map_err(WebError::store)?;
    let tz = state.config.sla.calendar.time_zone();
    let breakdowns: Vec<BreakdownView> = d.breakdowns.iter().map(BreakdownView::of).collect();
    Ok(render(
        "dashboard.html",
        context! {
            user => ser(&user),
            csrf => session.csrf,
            from => period.from.to_string(),
            to => period.to.to_string(),
            time_zone => dashboard::zone_name(&tz),
            no_tickets => d.overall.tickets == 0,
            overall => ser(&FiguresView::of(&d.overall, true)),
            breakdowns => ser(&breakdowns),
        },
    )?
    .into_response())
}

// ---- what the template shows ----

/// A figure as the page writes it: a number, or why there is none.
#[derive(Serialize)]
struct FiguresView {
    tickets: u64,
    first_response_p50: String,
    first_response_p90: String,
    first_responded: u64,
    resolution_p50: String,
    resolution_p90: String,
    resolved: u64,
    sla_attained: String,
    sla_breached: u64,
    auto_answered: String,
    shopper_messages: u64,
    answered: u64,
    acceptance: String,
    accepted_as_is: String,
    suggestions_decided: u64,
    csat_good: String,
    csat_ratings: u64,
}

fn percent(share: Option<f64>, none: &str) -> String {
    share.map_or_else(|| none.to_string(), |s| format!("{:.1}%", s * 100.0))
}

impl FiguresView {
    fn of(f: &Figures, has_messages: bool) -> FiguresView {
        let minutes = |s: &Spread, p: Option<i64>| match (f.tickets, s.n) {
            (0, _) => "no tickets".to_string(),
            (_, 0) => "none yet".to_string(),
            _ => csv::minutes(p),
        };
        FiguresView {
            tickets: f.tickets,
            first_response_p50: minutes(&f.first_response, f.first_response.p50_ms),
            first_response_p90: minutes(&f.first_response, f.first_response.p90_ms),
            first_responded: f.first_response.n,
            resolution_p50: minutes(&f.resolution, f.resolution.p50_ms),
            resolution_p90: minutes(&f.resolution, f.resolution.p90_ms),
            resolved: f.resolution.n,
            sla_attained: percent(f.sla_attained_share(), "no tickets"),
            sla_breached: f.sla_breached,
            auto_answered: if has_messages {
                percent(f.auto_answer_share(), "no messages")
            } else {
                "not applicable".to_string()
            },
            shopper_messages: f.shopper_messages,
            answered: f.auto_answered,
            acceptance: percent(f.suggestion_acceptance_share(), "none decided"),
            accepted_as_is: percent(f.suggestion_as_is_share(), "none decided"),
            suggestions_decided: f.suggestions_decided(),
            csat_good: percent(f.csat_good_share(), "no ratings"),
            csat_ratings: f.csat_ratings(),
        }
    }
}

#[derive(Serialize)]
struct RowView {
    value: String,
    label: Option<String>,
    figures: FiguresView,
}

#[derive(Serialize)]
struct BreakdownView {
    dimension: &'static str,
    has_messages: bool,
    rows: Vec<RowView>,
    chart: Option<Chart>,
}

impl BreakdownView {
    fn of(b: &Breakdown) -> BreakdownView {
        let has_messages = b.dimension.has_messages();
        BreakdownView {
            dimension: b.dimension.as_str(),
            has_messages,
            rows: b
                .rows
                .iter()
                .map(|r| RowView {
                    value: r.value.clone(),
                    label: r.label.clone(),
                    figures: FiguresView::of(&r.figures, has_messages),
                })
                .collect(),
            // Intents are many: their table says it all.
            chart: (b.dimension != Dimension::Intent && !b.rows.is_empty()).then(|| Chart::of(b)),
        }
    }
}

// ---- charts: horizontal bars, drawn on the server ----

const LABEL_WIDTH: u32 = 160;
/// A panel holds its longest bar and the text after it ("100.0 min").
const PANEL_WIDTH: u32 = 190;
const BAR_MAX: u32 = 110;
const HEAD_HEIGHT: u32 = 24;
const ROW_HEIGHT: u32 = 22;
/// Rows drawn at most; the table below lists them all.
const CHART_ROWS: usize = 15;

/// An SVG bar chart: one row per value, one panel per figure.
#[derive(Serialize)]
struct Chart {
    title: String,
    width: u32,
    height: u32,
    panels: Vec<PanelHead>,
    rows: Vec<ChartRow>,
}

#[derive(Serialize)]
struct PanelHead {
    x: u32,
    title: &'static str,
}

#[derive(Serialize)]
struct ChartRow {
    label: String,
    /// Top of the bar and baseline of the text.
    bar_y: u32,
    text_y: u32,
    bars: Vec<Bar>,
}

#[derive(Serialize)]
struct Bar {
    x: u32,
    width: u32,
    text_x: u32,
    text: String,
    fill: &'static str,
}

/// One panel: its title, colour, and each row's value and how it is written.
struct Panel {
    title: &'static str,
    fill: &'static str,
    /// The value a full bar stands for; `None`: the largest value drawn.
    full: Option<f64>,
    value: fn(&Figures) -> Option<f64>,
    text: fn(f64) -> String,
}

const PANELS: [Panel; 4] = [
    Panel {
        title: "Tickets",
        fill: "#4a79b8",
        full: None,
        value: |f| Some(f.tickets as f64).filter(|n| *n > 0.0),
        text: |v| format!("{v:.0}"),
    },
    Panel {
        title: "First response p50",
        fill: "#8a6bbd",
        full: None,
        value: |f| f.first_response.p50_ms.map(|ms| ms as f64 / 60_000.0),
        text: |v| format!("{v:.1} min"),
    },
    Panel {
        title: "SLA attained",
        fill: "#3f9a5b",
        full: Some(1.0),
        value: |f| f.sla_attained_share(),
        text: |v| format!("{:.0}%", v * 100.0),
    },
    Panel {
        title: "CSAT good",
        fill: "#d08a2c",
        full: Some(1.0),
        value: |f| f.csat_good_share(),
        text: |v| format!("{:.0}%", v * 100.0),
    },
];

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max - 1).collect();
    s.push('…');
    s
}

impl Chart {
    fn of(b: &Breakdown) -> Chart {
        let shown = &b.rows[..b.rows.len().min(CHART_ROWS)];
        let dimension = b.dimension.as_str();
        let title = if shown.len() < b.rows.len() {
            format!(
                "By {dimension}, the {} with the most tickets (figures in the table below)",
                shown.len()
            )
        } else {
            format!("By {dimension} (figures in the table below)")
        };
        let panel_x = |i: usize| LABEL_WIDTH + i as u32 * PANEL_WIDTH;
        let fulls: Vec<f64> = PANELS
            .iter()
            .map(|p| {
                p.full.unwrap_or_else(|| {
                    shown
                        .iter()
                        .filter_map(|r| (p.value)(&r.figures))
                        .fold(0.0, f64::max)
                })
            })
            .collect();
        let rows = shown
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let top = HEAD_HEIGHT + i as u32 * ROW_HEIGHT;
                let label = match &r.label {
                    Some(l) => format!("{l} ({})", r.value),
                    None => r.value.clone(),
                };
                let bars = PANELS
                    .iter()
                    .zip(&fulls)
                    .enumerate()
                    .map(|(j, (p, full))| {
                        let value = (p.value)(&r.figures);
                        let width = match value {
                            Some(v) if *full > 0.0 => {
                                // At least a sliver for any value above zero.
                                let w = (v / full * BAR_MAX as f64).round() as u32;
                                w.clamp(u32::from(v > 0.0), BAR_MAX)
                            }
                            _ => 0,
                        };
                        Bar {
                            x: panel_x(j),
                            width,
                            text_x: panel_x(j) + width + 4,
                            text: value.map_or_else(|| "–".to_string(), p.text),
                            fill: p.fill,
                        }
                    })
                    .collect();
                ChartRow {
                    label: clip(&label, 22),
                    bar_y: top + 4,
                    text_y: top + 16,
                    bars,
                }
            })
            .collect::<Vec<_>>();
        Chart {
            title,
            width: LABEL_WIDTH + PANELS.len() as u32 * PANEL_WIDTH,
            height: HEAD_HEIGHT + rows.len() as u32 * ROW_HEIGHT + 6,
            panels: PANELS
                .iter()
                .enumerate()
                .map(|(i, p)| PanelHead {
                    x: panel_x(i),
                    title: p.title,
                })
                .collect(),
            rows,
        }
    }
}
