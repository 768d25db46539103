//! Export of the kept X-Ray segments to an OpenTelemetry collector as OTLP/HTTP JSON spans
//! (`POST <endpoint>/v1/traces`, `application/json`), mapped as AWS maps X-Ray to OpenTelemetry:
//! the trace id `1-5759e988-bd862e3f…` is `5759e988bd862e3f…`, a segment or subsegment id is its
//! span id, `parent_id` its parent span, times in Unix nanoseconds, `error`/`fault` an error
//! status, and the function as the resource (`service.name`, `faas.name`, `cloud.*`) with `aws.*`
//! and `faas.invocation_id` attributes on the spans. Documents are queued without blocking
//! (a full queue drops them, counted), sent in batches (up to 512, or what one second gathered)
//! by one task; failures are logged at most once a minute and never reach an invoke.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Documents waiting to be sent; past this, new ones are dropped (and counted).
const QUEUE: usize = 4096;
/// Most documents in one request.
const MAX_BATCH: usize = 512;
/// How long a batch gathers after its first document.
const GATHER: Duration = Duration::from_secs(1);
/// Failures and drops are logged at most this often.
const REPORT_EVERY: Duration = Duration::from_secs(60);
/// One request's limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The function a document belongs to: the span's resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Origin {
    pub account: String,
    pub region: String,
    pub function: String,
}

struct Queued {
    origin: Arc<Origin>,
    document: Vec<u8>,
}

/// The queue to the exporting task.
#[derive(Debug)]
pub struct OtlpExporter {
    tx: mpsc::Sender<Queued>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queued")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl OtlpExporter {
    /// Starts the task that sends to `url` (the full traces URL, `…/v1/traces`).
    pub(crate) fn start(url: String, runtime: &tokio::runtime::Handle) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        runtime.spawn(run(url, rx, dropped.clone()));
        Arc::new(Self { tx, dropped })
    }

    /// Queues one segment document; never waits.
    pub(crate) fn offer(&self, origin: &Arc<Origin>, document: &[u8]) {
        let queued = Queued {
            origin: origin.clone(),
            document: document.to_vec(),
        };
        if self.tx.try_send(queued).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn run(url: String, mut rx: mpsc::Receiver<Queued>, dropped: Arc<AtomicU64>) {
    let client = match reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("no OTLP export of traces: {e}");
            return;
        }
    };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut failures = 0u64;
    let mut last_failure = String::new();
    let mut reported = Instant::now() - REPORT_EVERY;
    while let Some(first) = rx.recv().await {
        batch.push(first);
        let until = Instant::now() + GATHER;
        while batch.len() < MAX_BATCH {
            tokio::select! {
                next = rx.recv() => match next {
                    Some(q) => batch.push(q),
                    None => break,
                },
                _ = tokio::time::sleep_until(until) => break,
            }
        }
        let body = request(&batch);
        batch.clear();
        let sent = client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                failures += 1;
                last_failure = format!("HTTP {}", r.status());
            }
            Err(e) => {
                failures += 1;
                last_failure = e.to_string();
            }
        }
        let lost = dropped.load(Ordering::Relaxed);
        if (failures > 0 || lost > 0) && reported.elapsed() >= REPORT_EVERY {
            tracing::warn!(
                url = %url,
                "OTLP trace export: {failures} batch(es) failed (last: {last_failure}), \
                 {lost} segment(s) dropped on a full queue, since the last report"
            );
            failures = 0;
            dropped.fetch_sub(lost, Ordering::Relaxed);
            reported = Instant::now();
        }
    }
}

fn attr(key: &str, value: &Value) -> Option<Value> {
    let v = match value {
        Value::String(s) => json!({"stringValue": s}),
        Value::Bool(b) => json!({"boolValue": b}),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({"intValue": n.to_string()}),
        Value::Number(n) => json!({"doubleValue": n.as_f64()}),
        Value::Array(a) => json!({"arrayValue": {
            "values": a.iter().filter_map(|v| attr("", v).map(|a| a["value"].clone())).collect::<Vec<_>>()
        }}),
        _ => return None,
    };
    Some(json!({"key": key, "value": v}))
}

/// X-Ray's trace id as OpenTelemetry's: `1-5759e988-bd862e3fe1be46a994272793` →
/// `5759e988bd862e3fe1be46a994272793`.
pub(crate) fn otel_trace_id(xray: &str) -> Option<String> {
    let mut parts = xray.split('-');
    let (Some("1"), Some(time), Some(rest), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let id = format!("{time}{rest}").to_ascii_lowercase();
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

fn nanos(seconds: f64) -> String {
    format!("{}", (seconds * 1e9).round() as u64)
}

/// The spans of one document: the segment (or independent subsegment) and every subsegment
/// inside it.
fn spans(doc: &Value, trace_id: Option<&str>, parent: Option<&str>, out: &mut Vec<Value>) {
    let Some(trace_id) = doc
        .get("trace_id")
        .and_then(Value::as_str)
        .and_then(otel_trace_id)
        .or_else(|| trace_id.map(str::to_string))
    else {
        return;
    };
    let Some(id) = doc.get("id").and_then(Value::as_str) else {
        return;
    };
    // An in-progress document is sent again when it completes.
    if doc.get("in_progress").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let Some(start) = doc.get("start_time").and_then(Value::as_f64) else {
        return;
    };
    let end = doc.get("end_time").and_then(Value::as_f64).unwrap_or(start);
    let parent = doc.get("parent_id").and_then(Value::as_str).or(parent);
    let subsegment = doc.get("type").and_then(Value::as_str) == Some("subsegment")
        || (parent.is_some() && doc.get("origin").is_none());
    let namespace = doc.get("namespace").and_then(Value::as_str);
    let kind = match (subsegment, namespace) {
        (false, _) => 2,                     // SPAN_KIND_SERVER
        (true, Some("aws" | "remote")) => 3, // SPAN_KIND_CLIENT
        (true, _) => 1,                      // SPAN_KIND_INTERNAL
    };
    let mut attributes = Vec::new();
    let mut push = |k: &str, v: Option<&Value>| {
        if let Some(a) = v.and_then(|v| attr(k, v)) {
            attributes.push(a);
        }
    };
    let aws = doc.get("aws");
    push("aws.xray.origin", doc.get("origin"));
    push("aws.xray.namespace", doc.get("namespace"));
    push("aws.request_id", aws.and_then(|a| a.get("request_id")));
    push("aws.operation", aws.and_then(|a| a.get("operation")));
    push("aws.region", aws.and_then(|a| a.get("region")));
    push("aws.account_id", aws.and_then(|a| a.get("account_id")));
    push("aws.table_name", aws.and_then(|a| a.get("table_name")));
    push("aws.queue_url", aws.and_then(|a| a.get("queue_url")));
    push("cloud.resource_id", doc.get("resource_arn"));
    if doc.get("origin").and_then(Value::as_str) == Some("AWS::Lambda::Function") {
        push("faas.invocation_id", aws.and_then(|a| a.get("request_id")));
    }
    let http = doc.get("http");
    push(
        "http.request.method",
        http.and_then(|h| h.pointer("/request/method")),
    );
    push("url.full", http.and_then(|h| h.pointer("/request/url")));
    push(
        "http.response.status_code",
        http.and_then(|h| h.pointer("/response/status")),
    );
    if let Some(a) = doc.get("annotations").and_then(Value::as_object) {
        for (k, v) in a {
            push(k, Some(v));
        }
        let keys: Vec<Value> = a.keys().map(|k| json!(k)).collect();
        push("aws.xray.annotations", Some(&Value::Array(keys)));
    }
    let failed = ["error", "fault", "throttle"]
        .iter()
        .any(|k| doc.get(*k).and_then(Value::as_bool) == Some(true));
    let mut span = json!({
        "traceId": trace_id,
        "spanId": id,
        "name": doc.get("name").and_then(Value::as_str).unwrap_or(""),
        "kind": kind,
        "startTimeUnixNano": nanos(start),
        "endTimeUnixNano": nanos(end),
        "attributes": attributes,
        "status": if failed { json!({"code": 2}) } else { json!({}) },
    });
    if let Some(p) = parent {
        span["parentSpanId"] = json!(p);
    }
    out.push(span);
    for sub in doc
        .get("subsegments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        spans(sub, Some(&trace_id), Some(id), out);
    }
}

/// One OTLP/HTTP JSON `ExportTraceServiceRequest` for a batch: a resource per function.
fn request(batch: &[Queued]) -> Value {
    let mut by_origin: BTreeMap<&Origin, Vec<Value>> = BTreeMap::new();
    for q in batch {
        // A document that is no JSON was not a segment: nothing to send.
        let Ok(doc) = serde_json::from_slice::<Value>(&q.document) else {
            continue;
        };
        spans(&doc, None, None, by_origin.entry(&q.origin).or_default());
    }
    let resource_spans: Vec<Value> = by_origin
        .into_iter()
        .filter(|(_, s)| !s.is_empty())
        .map(|(o, s)| {
            let resource: Vec<Value> = [
                ("service.name", &o.function),
                ("faas.name", &o.function),
                ("cloud.provider", &"aws".to_string()),
                ("cloud.platform", &"aws_lambda".to_string()),
                ("cloud.region", &o.region),
                ("cloud.account.id", &o.account),
            ]
            .into_iter()
            .filter_map(|(k, v)| attr(k, &json!(v)))
            .collect();
            json!({
                "resource": {"attributes": resource},
                "scopeSpans": [{"scope": {"name": "flint.xray"}, "spans": s}],
            })
        })
        .collect();
    json!({ "resourceSpans": resource_spans })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_are_xrays_without_version_and_dashes() {
        assert_eq!(
            otel_trace_id("1-5759e988-bd862e3fe1be46a994272793").as_deref(),
            Some("5759e988bd862e3fe1be46a994272793")
        );
        assert_eq!(otel_trace_id("2-5759e988-bd862e3fe1be46a994272793"), None);
        assert_eq!(otel_trace_id("1-5759e988-short"), None);
    }

    #[test]
    fn a_segment_and_its_subsegments_become_spans_of_the_functions_resource() {
        let origin = Arc::new(Origin {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            function: "fn".into(),
        });
        let segment = json!({
            "name": "fn", "id": "aaaaaaaaaaaaaaaa", "trace_id": "1-5759e988-bd862e3fe1be46a994272793",
            "start_time": 1.5, "end_time": 2.0, "origin": "AWS::Lambda::Function",
            "resource_arn": "arn:aws:lambda:us-east-1:123456789012:function:fn",
            "aws": {"request_id": "req"}, "error": true,
            "subsegments": [{"name": "S3", "id": "bbbbbbbbbbbbbbbb", "start_time": 1.6,
                             "end_time": 1.7, "namespace": "aws", "aws": {"operation": "GetObject"}}],
        });
        let independent = json!({
            "name": "work", "id": "cccccccccccccccc", "type": "subsegment",
            "trace_id": "1-5759e988-bd862e3fe1be46a994272793", "parent_id": "aaaaaaaaaaaaaaaa",
            "start_time": 1.55, "end_time": 1.65, "annotations": {"kind": "test", "n": 3},
        });
        let batch: Vec<Queued> = [segment, independent, json!({"in_progress": true})]
            .iter()
            .map(|d| Queued {
                origin: origin.clone(),
                document: d.to_string().into_bytes(),
            })
            .collect();
        let out = request(&batch);
        let rs = &out["resourceSpans"][0];
        assert!(rs["resource"]["attributes"].as_array().is_some_and(
            |a| a.contains(&json!({"key": "service.name", "value": {"stringValue": "fn"}}))
        ));
        let spans = rs["scopeSpans"][0]["spans"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(spans.len(), 3);
        let by_id = |id: &str| {
            spans
                .iter()
                .find(|s| s["spanId"] == id)
                .cloned()
                .unwrap_or_default()
        };
        let function = by_id("aaaaaaaaaaaaaaaa");
        assert_eq!(function["traceId"], "5759e988bd862e3fe1be46a994272793");
        assert_eq!(function["kind"], 2);
        assert_eq!(function["startTimeUnixNano"], "1500000000");
        assert_eq!(function["endTimeUnixNano"], "2000000000");
        assert_eq!(function["status"], json!({"code": 2}));
        assert!(function.get("parentSpanId").is_none());
        assert!(function["attributes"]
            .as_array()
            .is_some_and(|a| a
                .contains(&json!({"key": "faas.invocation_id", "value": {"stringValue": "req"}}))));
        let s3 = by_id("bbbbbbbbbbbbbbbb");
        assert_eq!(
            (s3["parentSpanId"].clone(), s3["kind"].clone()),
            (json!("aaaaaaaaaaaaaaaa"), json!(3))
        );
        let work = by_id("cccccccccccccccc");
        assert_eq!(
            (work["parentSpanId"].clone(), work["kind"].clone()),
            (json!("aaaaaaaaaaaaaaaa"), json!(1))
        );
        assert!(work["attributes"]
            .as_array()
            .is_some_and(|a| a.contains(&json!({"key": "n", "value": {"intValue": "3"}}))));
    }
}
