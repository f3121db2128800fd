//! Prometheus metrics, served as text on `/metrics`.

use std::borrow::Cow;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOutcome {
    pub route: Cow<'static, str>,
    pub outcome: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabel {
    pub route: Cow<'static, str>,
    pub reason: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabel {
    pub channel: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabel {
    pub channel: Cow<'static, str>,
    pub msg_type: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabel {
    pub api: Cow<'static, str>,
    pub outcome: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SlaLabel {
    /// first_response | next_response | resolution
    pub target: Cow<'static, str>,
    /// warning | breach
    pub kind: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: Cow<'static, str>,
}

type HistogramFamily = Family<RouteLabel, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RouteOutcome, Counter>,
    pub latency: HistogramFamily,
    pub rejects: Family<RejectLabel, Counter>,
    pub duplicates: Family<ChannelLabel, Counter>,
    pub recorded: Family<MessageLabel, Counter>,
    pub wecom_calls: Family<ApiLabel, Counter>,
    pub sla: Family<SlaLabel, Counter>,
    /// Failed console logins by reason: unknown_user, bad_password, disabled, rate_limited,
    /// bad_csrf, cross_site.
    pub console_login_failures: Family<ReasonLabel, Counter>,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~0.8 s
    Histogram::new(exponential_buckets(0.00005, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kefu");
        let requests = Family::<RouteOutcome, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let rejects = Family::<RejectLabel, Counter>::default();
        let duplicates = Family::<ChannelLabel, Counter>::default();
        let recorded = Family::<MessageLabel, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and outcome",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "callback_rejects",
            "Callbacks refused, by reason",
            rejects.clone(),
        );
        registry.register(
            "callback_duplicates_dropped",
            "Callback retries and replays recognised as already recorded",
            duplicates.clone(),
        );
        registry.register(
            "messages_recorded",
            "Inbound messages stored",
            recorded.clone(),
        );
        let wecom_calls = Family::<ApiLabel, Counter>::default();
        registry.register(
            "wecom_calls",
            "WeCom API calls by API and outcome (ok or errcode_N, network, decode)",
            wecom_calls.clone(),
        );
        let sla = Family::<SlaLabel, Counter>::default();
        registry.register(
            "ticket_sla_marks",
            "Ticket SLA warnings (80% of a target's business time) and breaches, by target",
            sla.clone(),
        );
        let console_login_failures = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "console_login_failures",
            "Failed console logins, by reason",
            console_login_failures.clone(),
        );
        Metrics {
            console_login_failures,
            sla,
            registry,
            requests,
            latency,
            rejects,
            duplicates,
            recorded,
            wecom_calls,
        }
    }

    pub fn reject(&self, route: &'static str, reason: &'static str) {
        self.rejects
            .get_or_create(&RejectLabel {
                route: route.into(),
                reason: reason.into(),
            })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
