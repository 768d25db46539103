//! The Telemetry API (2022-07-01) and the older Logs API (2020-08-15) of one environment:
//! extensions subscribe (`PUT`) with the `types` they want (platform, function, extension), a
//! buffering (`maxItems`, `maxBytes`, `timeoutMs`) and an HTTP destination under
//! `sandbox.localdomain`; Flint buffers each subscriber's events and POSTs them as a JSON array,
//! one batch at a time. A subscriber that does not keep up loses events, and its next batch
//! starts with `platform.logsDropped`. With no subscriber, emitting costs one atomic load.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::Notify;

/// What an event is, as `types` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Platform = 1,
    Function = 2,
    Extension = 4,
}

/// Which API a subscription came through. The Logs API's subscribers get its own, older schema
/// (see [`logs_api_form`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    Telemetry,
    Logs,
}

/// AWS's buffering limits and defaults (Telemetry API reference).
const MAX_ITEMS: (u64, u64, u64) = (1_000, 10_000, 10_000);
const MAX_BYTES: (u64, u64, u64) = (262_144, 1_048_576, 262_144);
const TIMEOUT_MS: (u64, u64, u64) = (25, 30_000, 1_000);
/// Telemetry API schema versions AWS accepts.
const SCHEMA_VERSIONS: [&str; 3] = ["2022-07-01", "2022-12-13", "2025-01-29"];
/// How long one delivery may take before it counts as failed.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscribeRequest {
    schema_version: Option<String>,
    types: Vec<String>,
    #[serde(default)]
    buffering: Buffering,
    destination: Destination,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Buffering {
    max_items: Option<u64>,
    max_bytes: Option<u64>,
    timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Destination {
    protocol: String,
    #[serde(rename = "URI")]
    uri: Option<String>,
    /// The Logs API's TCP destinations name only a port.
    port: Option<u16>,
}

/// How batches reach the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// POSTed as a JSON array.
    Http,
    /// Written to a kept TCP connection as newline-delimited JSON.
    Tcp,
}

/// A refused subscription (`400 ValidationError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct SubscribeError(pub String);

/// The limits of one subscriber's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    max_items: usize,
    max_bytes: usize,
    timeout: Duration,
}

fn within(
    name: &str,
    v: Option<u64>,
    (min, max, default): (u64, u64, u64),
) -> Result<u64, SubscribeError> {
    match v {
        None => Ok(default),
        Some(v) if (min..=max).contains(&v) => Ok(v),
        Some(v) => Err(SubscribeError(format!(
            "buffering.{name} must be between {min} and {max}, got {v}"
        ))),
    }
}

/// A parsed, valid subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Subscription {
    types: u8,
    type_names: Vec<String>,
    limits: Limits,
    protocol: Protocol,
    port: u16,
    path: String,
}

fn parse(body: &[u8], api: Api) -> Result<Subscription, SubscribeError> {
    let req: SubscribeRequest = serde_json::from_slice(body)
        .map_err(|e| SubscribeError(format!("Invalid request body: {e}")))?;
    if api == Api::Telemetry {
        match req.schema_version.as_deref() {
            Some(v) if SCHEMA_VERSIONS.contains(&v) => {}
            other => {
                return Err(SubscribeError(format!(
                    "schemaVersion must be one of {SCHEMA_VERSIONS:?}, got {other:?}"
                )))
            }
        }
    }
    if req.types.is_empty() {
        return Err(SubscribeError("types must not be empty".into()));
    }
    let mut types = 0u8;
    for t in &req.types {
        types |= match t.as_str() {
            "platform" => Category::Platform as u8,
            "function" => Category::Function as u8,
            "extension" => Category::Extension as u8,
            other => return Err(SubscribeError(format!("Unknown type {other}"))),
        };
    }
    let limits = Limits {
        max_items: within("maxItems", req.buffering.max_items, MAX_ITEMS)? as usize,
        max_bytes: within("maxBytes", req.buffering.max_bytes, MAX_BYTES)? as usize,
        timeout: Duration::from_millis(within("timeoutMs", req.buffering.timeout_ms, TIMEOUT_MS)?),
    };
    let protocol = match req.destination.protocol.to_ascii_uppercase().as_str() {
        "HTTP" => Protocol::Http,
        "TCP" => Protocol::Tcp,
        other => {
            return Err(SubscribeError(format!(
                "Unsupported destination protocol {other}: HTTP or TCP"
            )))
        }
    };
    let uri: Option<http::Uri> = match req.destination.uri.as_deref() {
        Some(u) => Some(
            u.parse()
                .map_err(|e| SubscribeError(format!("Invalid destination URI: {e}")))?,
        ),
        None if protocol == Protocol::Tcp && req.destination.port.is_some() => None,
        None => return Err(SubscribeError("destination.URI is required".into())),
    };
    let host = uri
        .as_ref()
        .and_then(|u| u.host())
        .unwrap_or("sandbox.localdomain");
    if host != "sandbox.localdomain" && host != "sandbox" {
        return Err(SubscribeError(
            "destination.URI host must be sandbox.localdomain".into(),
        ));
    }
    let port = req
        .destination
        .port
        .or_else(|| uri.as_ref().and_then(|u| u.port_u16()))
        .unwrap_or(80);
    let path = uri
        .as_ref()
        .and_then(|u| u.path_and_query())
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    Ok(Subscription {
        types,
        type_names: req.types,
        limits,
        protocol,
        port,
        path,
    })
}

/// Events waiting for one subscriber.
#[derive(Default)]
struct Buffer {
    events: VecDeque<Bytes>,
    bytes: usize,
    dropped_records: u64,
    dropped_bytes: u64,
    closed: bool,
}

struct Subscriber {
    name: String,
    api: Api,
    reach: Reach,
    types: u8,
    limits: Limits,
    protocol: Protocol,
    port: u16,
    path: String,
    buffer: Mutex<Buffer>,
    wake: Notify,
}

/// Opens a TCP connection to a port on the environment's own loopback, from Flint (blocking).
pub type ConnectInside = Arc<dyn Fn(u16) -> std::io::Result<std::net::TcpStream> + Send + Sync>;

/// Where Flint reaches an extension's listener (`sandbox.localdomain` in the environment).
#[derive(Clone)]
pub(crate) enum Reach {
    /// The environment shares the host's network: its loopback.
    Loopback,
    /// The environment has a network namespace of its own: connections are made inside it.
    Namespace(ConnectInside),
    /// Not reachable from Flint (an isolated namespace Flint may not enter): subscriptions are
    /// refused.
    Unreachable,
}

pub(crate) struct Telemetry {
    /// Union of every subscriber's types: the check that makes emitting free without any.
    wanted: AtomicU8,
    subscribers: Mutex<Vec<Arc<Subscriber>>>,
    reach: Mutex<Reach>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

fn now_rfc3339() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// One event as both APIs deliver it: `{"time", "type", "record"}`.
pub fn event(kind: &str, record: serde_json::Value) -> Bytes {
    Bytes::from(
        serde_json::json!({ "time": now_rfc3339(), "type": kind, "record": record }).to_string(),
    )
}

impl Telemetry {
    pub(crate) fn new() -> Self {
        Self {
            wanted: AtomicU8::new(0),
            subscribers: Mutex::new(Vec::new()),
            reach: Mutex::new(Reach::Loopback),
            tasks: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn set_reach(&self, reach: Reach) {
        *self.reach.lock() = reach;
    }

    /// Whether anyone wants events of `category`.
    pub(crate) fn wants(&self, category: Category) -> bool {
        self.wanted.load(Ordering::Relaxed) & category as u8 != 0
    }

    /// `PUT /telemetry` or `PUT /logs` by the extension `name`.
    pub(crate) fn subscribe(
        &self,
        name: &str,
        body: &[u8],
        api: Api,
    ) -> Result<(), SubscribeError> {
        let sub = parse(body, api)?;
        let reach = self.reach.lock().clone();
        if matches!(reach, Reach::Unreachable) {
            return Err(SubscribeError(
                "Flint cannot deliver telemetry into this environment's network namespace (it may not enter it; run Flint as root or with --function-network host)".into(),
            ));
        }
        let subscriber = Arc::new(Subscriber {
            name: name.to_string(),
            api,
            reach,
            types: sub.types,
            limits: sub.limits,
            protocol: sub.protocol,
            port: sub.port,
            path: sub.path,
            buffer: Mutex::new(Buffer::default()),
            wake: Notify::new(),
        });
        {
            let mut subs = self.subscribers.lock();
            // An extension subscribes through one of the two APIs, as on AWS.
            if let Some(other) = subs.iter().find(|s| s.name == name && s.api != api) {
                return Err(SubscribeError(format!(
                    "Extension {name} is already subscribed through the {} API; an extension may use the Telemetry API or the Logs API, not both",
                    other.api.name()
                )));
            }
            // A second subscription of the same extension replaces its first.
            subs.retain(|s| {
                if s.name == name {
                    s.buffer.lock().closed = true;
                    s.wake.notify_one();
                    false
                } else {
                    true
                }
            });
            subs.push(subscriber.clone());
            let union = subs.iter().fold(0u8, |acc, s| acc | s.types);
            self.wanted.store(union, Ordering::Relaxed);
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let task = handle.spawn(deliver(subscriber));
            self.tasks.lock().push(task.abort_handle());
        }
        // One notice for both APIs: the Logs API's subscribers see it as
        // `platform.logsSubscription` (`logs_api_form`).
        let record =
            serde_json::json!({ "name": name, "state": "Subscribed", "types": sub.type_names });
        self.emit(
            Category::Platform,
            event("platform.telemetrySubscription", record),
        );
        Ok(())
    }

    /// Queues `event` for every subscriber of `category` (in the Logs API's schema for that
    /// API's subscribers).
    pub(crate) fn emit(&self, category: Category, event: Bytes) {
        if !self.wants(category) {
            return;
        }
        let subs = self.subscribers.lock().clone();
        let mut logs_form: Option<Vec<Bytes>> = None;
        for s in subs.iter().filter(|s| s.types & category as u8 != 0) {
            match s.api {
                Api::Telemetry => s.queue(std::slice::from_ref(&event)),
                Api::Logs => s.queue(logs_form.get_or_insert_with(|| logs_api_form(&event))),
            }
        }
    }

    /// Delivers what is buffered now (before a `SHUTDOWN`, so that the last invoke's events
    /// arrive while the extension still listens), waiting at most `within`.
    pub(crate) async fn flush(&self, within: Duration) {
        let subs = self.subscribers.lock().clone();
        let deadline = tokio::time::Instant::now() + within;
        for s in subs {
            let _ = tokio::time::timeout_at(deadline, send_batch(&s, &mut None)).await;
        }
    }

    pub(crate) fn close(&self) {
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
        self.wanted.store(0, Ordering::Relaxed);
    }
}

impl Api {
    fn name(self) -> &'static str {
        match self {
            Api::Telemetry => "Telemetry",
            Api::Logs => "Logs",
        }
    }
}

impl Subscriber {
    /// Buffers `events`, dropping what does not fit (past twice its batch limits the
    /// subscriber has fallen behind).
    fn queue(&self, events: &[Bytes]) {
        let mut b = self.buffer.lock();
        for event in events {
            if b.events.len() >= 2 * self.limits.max_items
                || b.bytes + event.len() > 2 * self.limits.max_bytes
            {
                b.dropped_records += 1;
                b.dropped_bytes += event.len() as u64;
                continue;
            }
            b.bytes += event.len();
            b.events.push_back(event.clone());
        }
        let full = b.events.len() >= self.limits.max_items || b.bytes >= self.limits.max_bytes;
        drop(b);
        if full {
            self.wake.notify_one();
        }
    }
}

/// A Telemetry API event as the Logs API (2020-08-15) delivers it, which knows fewer types and
/// fields: `platform.start` {requestId, version}, `platform.runtimeDone` {requestId, status},
/// `platform.end` {requestId} then `platform.report` {requestId, metrics}, `platform.extension`,
/// `platform.logsSubscription` (for `platform.telemetrySubscription`), `platform.logsDropped`,
/// and `function`/`extension` records as strings. The Init records have no Logs API form
/// (AWS's own client, the `lambda-extension` crate, rejects a batch holding one).
fn logs_api_form(event: &Bytes) -> Vec<Bytes> {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(event) else {
        return Vec::new();
    };
    let kind = v["type"].as_str().unwrap_or_default().to_string();
    let record = v["record"].take();
    let keep = |fields: &[&str]| {
        let mut out = serde_json::Map::new();
        for f in fields {
            if let Some(x) = record.get(*f) {
                out.insert((*f).to_string(), x.clone());
            }
        }
        serde_json::Value::Object(out)
    };
    let with_record = |kind: &str, record: serde_json::Value| {
        let mut e = v.clone();
        e["type"] = serde_json::Value::from(kind);
        e["record"] = record;
        Bytes::from(e.to_string())
    };
    match kind.as_str() {
        "function" | "extension" => {
            let line = match record {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            vec![with_record(&kind, serde_json::Value::from(line))]
        }
        "platform.start" => vec![with_record(&kind, keep(&["requestId", "version"]))],
        "platform.runtimeDone" => {
            let mut out = Vec::new();
            // The runtime's process died during the invocation: the Logs API's fault record.
            if record["errorType"] == "Runtime.ExitError" {
                let text = format!(
                    "RequestId: {} Process exited before completing request",
                    record["requestId"].as_str().unwrap_or_default()
                );
                out.push(with_record("platform.fault", serde_json::Value::from(text)));
            }
            out.push(with_record(&kind, keep(&["requestId", "status"])));
            out
        }
        "platform.report" => vec![
            with_record("platform.end", keep(&["requestId"])),
            with_record(&kind, keep(&["requestId", "metrics"])),
        ],
        "platform.telemetrySubscription" => {
            vec![with_record("platform.logsSubscription", record)]
        }
        "platform.extension" | "platform.logsDropped" => vec![with_record(&kind, record)],
        _ => Vec::new(),
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A kept connection to one subscriber.
enum Conn {
    Http(Sender),
    Tcp(tokio::net::TcpStream),
}

/// One subscriber's delivery loop: a batch when the buffer is full or its timeout passes.
async fn deliver(s: Arc<Subscriber>) {
    let mut conn: Option<Conn> = None;
    loop {
        let _ = tokio::time::timeout(s.limits.timeout, s.wake.notified()).await;
        if s.buffer.lock().closed {
            return;
        }
        send_batch(&s, &mut conn).await;
    }
}

/// Takes up to one batch from the buffer and POSTs it; a failed delivery is dropped (and counted).
async fn send_batch(s: &Subscriber, conn: &mut Option<Conn>) {
    let batch = {
        let mut b = s.buffer.lock();
        if b.events.is_empty() && b.dropped_records == 0 {
            return;
        }
        let mut out: Vec<Bytes> = Vec::new();
        if b.dropped_records > 0 {
            out.push(event(
                "platform.logsDropped",
                serde_json::json!({
                    "reason": "Consumer seems to have fallen behind as it has not acknowledged receipt of logs.",
                    "droppedRecords": b.dropped_records,
                    "droppedBytes": b.dropped_bytes,
                }),
            ));
            b.dropped_records = 0;
            b.dropped_bytes = 0;
        }
        let mut bytes = 0;
        while let Some(e) = b.events.front() {
            if out.len() >= s.limits.max_items
                || (bytes + e.len() > s.limits.max_bytes && !out.is_empty())
            {
                break;
            }
            bytes += e.len();
            if let Some(e) = b.events.pop_front() {
                out.push(e);
            }
        }
        b.bytes = b.bytes.saturating_sub(bytes);
        out
    };
    let mut body = Vec::with_capacity(batch.iter().map(|e| e.len() + 1).sum::<usize>() + 2);
    match s.protocol {
        Protocol::Http => {
            body.push(b'[');
            for (i, e) in batch.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(e);
            }
            body.push(b']');
        }
        Protocol::Tcp => {
            for e in &batch {
                body.extend_from_slice(e);
                body.push(b'\n');
            }
        }
    }
    let len = body.len() as u64;
    let count = batch.len() as u64;
    let sent = tokio::time::timeout(DELIVERY_TIMEOUT, post(s, conn, Bytes::from(body))).await;
    if !matches!(sent, Ok(Ok(()))) {
        *conn = None;
        let mut b = s.buffer.lock();
        b.dropped_records += count;
        b.dropped_bytes += len;
        tracing::debug!("telemetry: delivery to extension {} failed", s.name);
    }
}

/// A connection to the subscriber's port in the environment.
async fn connect(s: &Subscriber) -> Result<tokio::net::TcpStream, String> {
    let stream = match &s.reach {
        Reach::Namespace(connect) => {
            let (connect, port) = (connect.clone(), s.port);
            let std_stream = tokio::task::spawn_blocking(move || connect(port))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            std_stream
                .set_nonblocking(true)
                .map_err(|e| e.to_string())?;
            tokio::net::TcpStream::from_std(std_stream).map_err(|e| e.to_string())?
        }
        Reach::Loopback | Reach::Unreachable => {
            tokio::net::TcpStream::connect(("127.0.0.1", s.port))
                .await
                .map_err(|e| e.to_string())?
        }
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

async fn post(s: &Subscriber, conn: &mut Option<Conn>, body: Bytes) -> Result<(), String> {
    let usable = match conn {
        Some(Conn::Http(c)) => c.is_ready(),
        Some(Conn::Tcp(_)) => true,
        None => false,
    };
    if !usable {
        let stream = connect(s).await?;
        *conn = Some(match s.protocol {
            Protocol::Tcp => Conn::Tcp(stream),
            Protocol::Http => {
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                        .await
                        .map_err(|e| e.to_string())?;
                tokio::spawn(connection);
                Conn::Http(sender)
            }
        });
    }
    let sender = match conn.as_mut() {
        Some(Conn::Http(sender)) => sender,
        Some(Conn::Tcp(stream)) => {
            use tokio::io::AsyncWriteExt;
            return stream.write_all(&body).await.map_err(|e| e.to_string());
        }
        None => return Err("no connection".into()),
    };
    let req = http::Request::post(s.path.as_str())
        .header(
            http::header::HOST,
            format!("sandbox.localdomain:{}", s.port),
        )
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    if status.is_client_error() || status.is_server_error() {
        return Err(format!("status {status}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_take_awss_defaults_and_limits() -> Result<(), SubscribeError> {
        let s = parse(
            br#"{"schemaVersion":"2022-12-13","types":["platform","function"],
                 "destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:8080/t"}}"#,
            Api::Telemetry,
        )?;
        assert_eq!(s.port, 8080);
        assert_eq!(s.path, "/t");
        assert_eq!(s.types, Category::Platform as u8 | Category::Function as u8);
        assert_eq!(s.limits.max_items, 10_000);
        assert_eq!(s.limits.max_bytes, 262_144);
        assert_eq!(s.limits.timeout, Duration::from_millis(1000));
        let low = parse(
            br#"{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"timeoutMs":10},
                 "destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:8080/"}}"#,
            Api::Telemetry,
        );
        assert!(low.is_err(), "timeoutMs below 25 is refused");
        let elsewhere = parse(
            br#"{"schemaVersion":"2022-12-13","types":["platform"],
                 "destination":{"protocol":"HTTP","URI":"http://example.com:8080/"}}"#,
            Api::Telemetry,
        );
        assert!(elsewhere.is_err());
        // The Logs API has no schemaVersion.
        assert!(parse(
            br#"{"types":["function"],"destination":{"protocol":"HTTP","URI":"http://sandbox:1234"}}"#,
            Api::Logs,
        )
        .is_ok());
        Ok(())
    }

    #[test]
    fn nothing_is_buffered_without_a_subscriber() {
        let t = Telemetry::new();
        assert!(!t.wants(Category::Function));
        t.emit(Category::Function, event("function", "x".into()));
        assert!(t.subscribers.lock().is_empty());
    }

    // No runtime: no delivery task, the buffer only fills.
    #[test]
    fn a_subscriber_that_falls_behind_gets_logs_dropped_first() -> Result<(), SubscribeError> {
        let t = Telemetry::new();
        t.subscribe(
            "ext",
            br#"{"schemaVersion":"2022-12-13","types":["function"],"buffering":{"maxItems":1000,"timeoutMs":30000},
                 "destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:1/"}}"#,
            Api::Telemetry,
        )?;
        for i in 0..2500 {
            t.emit(
                Category::Function,
                event("function", format!("line {i}").into()),
            );
        }
        let subs = t.subscribers.lock().clone();
        let b = subs[0].buffer.lock();
        assert_eq!(b.events.len(), 2000);
        assert_eq!(b.dropped_records, 500);
        Ok(())
    }

    fn record_types(events: &[Bytes]) -> Vec<(String, serde_json::Value)> {
        events
            .iter()
            .filter_map(|e| serde_json::from_slice::<serde_json::Value>(e).ok())
            .map(|v| {
                (
                    v["type"].as_str().unwrap_or_default().to_string(),
                    v["record"].clone(),
                )
            })
            .collect()
    }

    #[test]
    fn logs_api_subscribers_get_the_logs_apis_schema() {
        let start = event(
            "platform.start",
            serde_json::json!({"requestId": "r1", "version": "$LATEST",
                "tracing": {"type": "X-Amzn-Trace-Id", "value": "Root=1-2-3"}}),
        );
        assert_eq!(
            record_types(&logs_api_form(&start)),
            [(
                "platform.start".to_string(),
                serde_json::json!({"requestId": "r1", "version": "$LATEST"})
            )]
        );
        let report = event(
            "platform.report",
            serde_json::json!({"requestId": "r1", "status": "success",
                "metrics": {"durationMs": 1.5, "billedDurationMs": 2}}),
        );
        let got = record_types(&logs_api_form(&report));
        assert_eq!(got[0].0, "platform.end");
        assert_eq!(got[0].1, serde_json::json!({"requestId": "r1"}));
        assert_eq!(got[1].0, "platform.report");
        assert!(got[1].1.get("status").is_none());
        let json_line = event(
            "function",
            serde_json::json!({"level": "INFO", "message": "m"}),
        );
        let got = record_types(&logs_api_form(&json_line));
        assert!(got[0].1.as_str().is_some_and(|s| s.contains("\"message\"")));
        for init in [
            "platform.initStart",
            "platform.initRuntimeDone",
            "platform.initReport",
        ] {
            assert!(logs_api_form(&event(init, serde_json::json!({}))).is_empty());
        }
        let notice = event(
            "platform.telemetrySubscription",
            serde_json::json!({"name": "e", "state": "Subscribed", "types": ["platform"]}),
        );
        assert_eq!(
            record_types(&logs_api_form(&notice))[0].0,
            "platform.logsSubscription"
        );
    }

    #[test]
    fn an_extension_uses_one_of_the_two_apis() -> Result<(), SubscribeError> {
        let t = Telemetry::new();
        let body = br#"{"schemaVersion":"2022-12-13","types":["platform"],
            "destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:1/"}}"#;
        t.subscribe("ext", body, Api::Logs)?;
        assert!(t.subscribe("ext", body, Api::Telemetry).is_err());
        t.subscribe("ext", body, Api::Logs)?;
        t.subscribe("other", body, Api::Telemetry)?;
        Ok(())
    }

    #[test]
    fn tcp_destinations_take_a_port_or_a_uri() -> Result<(), SubscribeError> {
        let logs = parse(
            br#"{"types":["platform"],"destination":{"protocol":"TCP","port":4243}}"#,
            Api::Logs,
        )?;
        assert_eq!((logs.protocol, logs.port), (Protocol::Tcp, 4243));
        let telemetry = parse(
            br#"{"schemaVersion":"2022-12-13","types":["platform"],
                 "destination":{"protocol":"TCP","URI":"tcp://sandbox.localdomain:4244"}}"#,
            Api::Telemetry,
        )?;
        assert_eq!((telemetry.protocol, telemetry.port), (Protocol::Tcp, 4244));
        assert!(parse(
            br#"{"types":["platform"],"destination":{"protocol":"UDP","port":1}}"#,
            Api::Logs
        )
        .is_err());
        assert!(parse(
            br#"{"types":["platform"],"destination":{"protocol":"HTTP"}}"#,
            Api::Logs
        )
        .is_err());
        Ok(())
    }

    #[test]
    fn a_runtime_exit_is_a_fault_for_the_logs_api() {
        let done = event(
            "platform.runtimeDone",
            serde_json::json!({"requestId": "r9", "status": "failure", "errorType": "Runtime.ExitError"}),
        );
        let got = record_types(&logs_api_form(&done));
        assert_eq!(got[0].0, "platform.fault");
        assert_eq!(
            got[0].1,
            serde_json::json!("RequestId: r9 Process exited before completing request")
        );
        assert_eq!(got[1].0, "platform.runtimeDone");
    }
}
