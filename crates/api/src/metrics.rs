//! `GET /metrics`: Lambda's per-function metrics, Flint's own and the functions' embedded-metric-
//! format (EMF) metrics in Prometheus' text exposition format (0.0.4). No signature needed, as
//! scrapers expect; `flint serve --metrics off` removes the route. The invoke path only bumps
//! relaxed atomics (engine `metrics.rs`); everything here runs at scrape time.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use flint_engine::metrics::{Histogram, DURATION_BUCKETS_MS};
use flint_engine::EngineMetrics;
use flint_events::QueueDepth;
use flint_logs::emf::Collector;
use http::{HeaderValue, StatusCode};

use crate::{AppState, Backend};

/// What a scrape reads from the backend.
pub struct MetricsSnapshot {
    pub engine: EngineMetrics,
    /// ((account, region), function, its asynchronous queue).
    pub async_queues: Vec<((String, String), String, QueueDepth)>,
    /// Every running event source mapping's counters.
    pub event_sources: Vec<flint_events::metrics::MappingSnapshot>,
    /// ((account, region, function), destination delivery failures, dead-letter errors).
    pub destinations: Vec<((String, String, String), u64, u64)>,
}

/// A destination family: name, help, which of (delivery failures, dead-letter errors).
type DestinationFamily = (&'static str, &'static str, fn(u64, u64) -> u64);

/// An event-source-mapping family: name, type, help, how to read it.
type MappingFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&flint_events::metrics::MappingSnapshot) -> Option<u64>,
);

/// A per-function counter family: name, help, how to read it.
type Counter = (
    &'static str,
    &'static str,
    fn(&flint_engine::metrics::FunctionMetrics) -> u64,
);
/// An async-queue family: name, type, help, how to read it.
type QueueFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&QueueDepth) -> u64,
);

/// The EMF collectors, one per account-region directory of the logs, kept between scrapes.
pub(crate) type EmfState = parking_lot::Mutex<HashMap<(String, String), Collector>>;

pub(crate) async fn scrape<B: Backend>(State(st): State<Arc<AppState<B>>>) -> Response {
    let snapshot = st.backend.metrics();
    let root = st.backend.logs_root();
    let st2 = st.clone();
    let text = tokio::task::spawn_blocking(move || {
        let mut out = String::with_capacity(8192);
        if let Some(s) = &snapshot {
            render_engine(&mut out, s);
        }
        if let Some(root) = root {
            render_emf(&mut out, &root, &st2.emf);
        }
        out
    })
    .await
    .unwrap_or_default();
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// A label value as the text format escapes it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A metric or label name from free text: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.chars().next().is_none_or(|c| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, base: &[(&str, &str)], h: &Histogram) {
    let (buckets, sum) = h.read();
    let mut cumulative = 0;
    let label_prefix: Vec<String> = base
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\",", escape(v)))
        .collect();
    let label_prefix = label_prefix.concat();
    for (i, count) in buckets.iter().enumerate() {
        cumulative += count;
        let le = DURATION_BUCKETS_MS
            .get(i)
            .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
        let _ = writeln!(
            out,
            "{name}_bucket{{{label_prefix}le=\"{le}\"}} {cumulative}"
        );
    }
    let _ = writeln!(out, "{name}_sum{} {sum}", labels(base));
    let _ = writeln!(out, "{name}_count{} {cumulative}", labels(base));
}

fn render_engine(out: &mut String, s: &MetricsSnapshot) {
    use std::sync::atomic::Ordering::Relaxed;
    let functions = &s.engine.functions;
    let counters: [Counter; 6] = [
        (
            "lambda_invocations_total",
            "Invocations (Lambda's Invocations: throttled requests excluded).",
            |m| m.invocations.load(Relaxed),
        ),
        (
            "lambda_errors_total",
            "Invocations that ended in a function error, a timeout or a crash (Lambda's Errors).",
            |m| m.errors.load(Relaxed),
        ),
        (
            "lambda_throttles_total",
            "Invoke requests refused for concurrency (Lambda's Throttles).",
            |m| m.throttles.load(Relaxed),
        ),
        (
            "flint_cold_starts_total",
            "Invocations that started an execution environment.",
            |m| m.cold_starts.load(Relaxed),
        ),
        (
            "lambda_provisioned_concurrency_invocations_total",
            "Invocations run by provisioned environments (Lambda's ProvisionedConcurrencyInvocations).",
            |m| m.provisioned_invocations.load(Relaxed),
        ),
        (
            "lambda_provisioned_concurrency_spillover_invocations_total",
            "Invocations of a version or alias with provisioned concurrency that found no provisioned \
             environment idle (Lambda's ProvisionedConcurrencySpilloverInvocations).",
            |m| m.spillover_invocations.load(Relaxed),
        ),
    ];
    for (name, help, read) in counters {
        header(out, name, "counter", help);
        for ((account, region, function), m) in functions {
            let l = labels(&[
                ("account", account),
                ("region", region),
                ("function_name", function),
            ]);
            let _ = writeln!(out, "{name}{l} {}", read(m));
        }
    }
    header(
        out,
        "lambda_concurrent_executions",
        "gauge",
        "Invocations running now (Lambda's ConcurrentExecutions).",
    );
    for ((account, region, function), m) in functions {
        let l = labels(&[
            ("account", account),
            ("region", region),
            ("function_name", function),
        ]);
        let _ = writeln!(
            out,
            "lambda_concurrent_executions{l} {}",
            m.concurrent.load(Relaxed).max(0)
        );
    }
    header(
        out,
        "lambda_provisioned_concurrent_executions",
        "gauge",
        "Invocations running on provisioned environments now (Lambda's \
         ProvisionedConcurrentExecutions).",
    );
    for ((account, region, function), _, busy) in &s.engine.provisioned {
        let l = labels(&[
            ("account", account),
            ("region", region),
            ("function_name", function),
        ]);
        let _ = writeln!(out, "lambda_provisioned_concurrent_executions{l} {busy}");
    }
    header(
        out,
        "lambda_provisioned_concurrency_utilization",
        "gauge",
        "Busy provisioned environments over those allocated, 0 to 1 (Lambda's \
         ProvisionedConcurrencyUtilization).",
    );
    for ((account, region, function), all, busy) in &s.engine.provisioned {
        let l = labels(&[
            ("account", account),
            ("region", region),
            ("function_name", function),
        ]);
        let ratio = f64::from(*busy) / f64::from((*all).max(1));
        let _ = writeln!(out, "lambda_provisioned_concurrency_utilization{l} {ratio}");
    }
    header(
        out,
        "lambda_duration_milliseconds",
        "histogram",
        "Invocation duration (Lambda's Duration).",
    );
    for ((account, region, function), m) in functions {
        let base = [
            ("account", account.as_str()),
            ("region", region.as_str()),
            ("function_name", function.as_str()),
        ];
        histogram(out, "lambda_duration_milliseconds", &base, &m.duration);
    }
    header(
        out,
        "flint_init_duration_milliseconds",
        "histogram",
        "Init duration of cold starts (the REPORT line's Init Duration).",
    );
    for ((account, region, function), m) in functions {
        let base = [
            ("account", account.as_str()),
            ("region", region.as_str()),
            ("function_name", function.as_str()),
        ];
        histogram(
            out,
            "flint_init_duration_milliseconds",
            &base,
            &m.init_duration,
        );
    }
    let e = &s.engine;
    let busy = e.environments.saturating_sub(e.idle + e.provisioned_idle);
    header(
        out,
        "flint_environments",
        "gauge",
        "Live execution environments by state (busy includes starting).",
    );
    for (state, n) in [
        ("idle", e.idle),
        ("provisioned_idle", e.provisioned_idle),
        ("busy", busy),
    ] {
        let _ = writeln!(out, "flint_environments{} {n}", labels(&[("state", state)]));
    }
    let queues: [QueueFamily; 3] = [
        ("flint_async_events_queued", "gauge", "Asynchronous events accepted and not finished.", |q| q.queued),
        ("flint_async_events_in_flight", "gauge", "Asynchronous invoke attempts running.", |q| q.in_flight),
        ("lambda_async_events_dropped_total", "counter", "Asynchronous events whose retries ran out, since start-up (Lambda's AsyncEventsDropped).", |q| q.failed),
    ];
    for (name, kind, help, read) in queues {
        header(out, name, kind, help);
        for ((account, region), function, q) in &s.async_queues {
            let l = labels(&[
                ("account", account),
                ("region", region),
                ("function_name", function),
            ]);
            let _ = writeln!(out, "{name}{l} {}", read(q));
        }
    }
    render_event_sources(out, s);
}

/// Lambda's event source mapping metrics (per mapping) and destination metrics (per function).
fn render_event_sources(out: &mut String, s: &MetricsSnapshot) {
    let families: [MappingFamily; 6] = [
        ("lambda_event_source_polled_events_total", "counter", "Records read from the source (Lambda's PolledEventCount).", |m| Some(m.polled)),
        ("lambda_event_source_filtered_out_events_total", "counter", "Records the mapping's FilterCriteria dropped (Lambda's FilteredOutEventCount).", |m| Some(m.filtered_out)),
        ("lambda_event_source_invoked_events_total", "counter", "Records sent to the function, each attempt counted (Lambda's InvokedEventCount).", |m| Some(m.invoked)),
        ("lambda_event_source_failed_invoke_events_total", "counter", "Records of invocations that failed (Lambda's FailedInvokeEventCount).", |m| Some(m.failed_invoke)),
        ("lambda_event_source_dropped_events_total", "counter", "Stream records given up on: too old or out of retries (Lambda's DroppedEventCount).", |m| Some(m.dropped)),
        ("lambda_iterator_age_milliseconds", "gauge", "Age of the last record of the last batch a stream mapping sent (Lambda's IteratorAge).", |m| m.iterator_age_ms),
    ];
    for (name, kind, help, read) in families {
        header(out, name, kind, help);
        for m in &s.event_sources {
            let Some(v) = read(m) else { continue };
            let l = labels(&[
                ("account", &m.account),
                ("region", &m.region),
                ("function_name", &m.function),
                ("event_source_mapping_uuid", &m.uuid),
            ]);
            let _ = writeln!(out, "{name}{l} {v}");
        }
    }
    let destinations: [DestinationFamily; 2] = [
        ("lambda_destination_delivery_failures_total", "Async outcomes an on-success or on-failure destination did not accept (Lambda's DestinationDeliveryFailures).", |d, _| d),
        ("lambda_dead_letter_errors_total", "Failed async events the dead-letter queue did not accept (Lambda's DeadLetterErrors).", |_, e| e),
    ];
    for (name, help, read) in destinations {
        header(out, name, "counter", help);
        for ((account, region, function), d, e) in &s.destinations {
            let l = labels(&[
                ("account", account),
                ("region", region),
                ("function_name", function),
            ]);
            let _ = writeln!(out, "{name}{l} {}", read(*d, *e));
        }
    }
}

/// EMF series: `<namespace>_<metric>` as a summary (count and sum) and `_last` as a gauge,
/// labelled with the account, region and the declared dimensions.
fn render_emf(out: &mut String, root: &Path, state: &EmfState) {
    let mut collectors = state.lock();
    let accounts = std::fs::read_dir(root).into_iter().flatten().flatten();
    for a in accounts {
        let account = a.file_name().to_string_lossy().into_owned();
        for r in std::fs::read_dir(a.path()).into_iter().flatten().flatten() {
            let region = r.file_name().to_string_lossy().into_owned();
            let c = collectors.entry((account.clone(), region)).or_default();
            if let Err(e) = c.update(&flint_logs::LogStore::new(r.path())) {
                tracing::debug!("EMF metrics from {}: {e}", r.path().display());
            }
        }
    }
    // One family per name, whichever account it came from.
    let mut families: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for ((account, region), c) in collectors.iter() {
        for (series, agg) in c.series() {
            let name = sanitize(&format!("{}_{}", series.namespace, series.name));
            let mut pairs: Vec<(String, String)> = vec![
                ("account".into(), account.clone()),
                ("region".into(), region.clone()),
                ("unit".into(), series.unit.clone()),
            ];
            for (k, v) in &series.dimensions {
                pairs.push((sanitize(k), v.clone()));
            }
            let borrowed: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let l = labels(&borrowed);
            let lines = families.entry(name.clone()).or_default();
            lines.push(format!("{name}_sum{l} {}", agg.sum));
            lines.push(format!("{name}_count{l} {}", agg.count));
            lines.push(format!("{name}_last{l} {}", agg.last));
        }
    }
    for (name, lines) in families {
        let _ = writeln!(
            out,
            "# HELP {name} Embedded metric format metric {name} (count, sum, last value)."
        );
        let _ = writeln!(out, "# TYPE {name} untyped");
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_made_valid() {
        assert_eq!(sanitize("my-app.Latency"), "my_app_Latency");
        assert_eq!(sanitize("1x"), "_1x");
        assert_eq!(escape("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }

    #[test]
    fn a_histogram_is_cumulative_and_ends_at_inf() {
        let h = Histogram::default();
        let mut out = String::new();
        histogram(&mut out, "d", &[("f", "x")], &h);
        assert!(out.contains("d_bucket{f=\"x\",le=\"+Inf\"} 0"), "{out}");
        assert!(out.contains("d_count{f=\"x\"} 0"), "{out}");
    }
}
