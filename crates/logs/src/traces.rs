//! The X-Ray API over the segments Flint keeps per function (`segments.jsonl`, Flint's own
//! `AWS::Lambda::Function` segment of each sampled invocation and what the SDKs sent to the daemon
//! address): `GetTraceSummaries` (time range, a `FilterExpression` subset, paging) and
//! `BatchGetTraces` (segments as X-Ray returns them, independent subsegments placed under their
//! parents). No HTTP here: crates/api routes requests signed for `xray` and renders
//! [`XrayError`] as X-Ray does.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use base64::Engine as _;
use serde_json::{json, Map, Value};

/// X-Ray's error codes Flint answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XrayErrorCode {
    InvalidRequestException,
    /// Reading the segments failed.
    ServiceUnavailableException,
}

impl XrayErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequestException => "InvalidRequestException",
            Self::ServiceUnavailableException => "ServiceUnavailableException",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Self::InvalidRequestException => 400,
            Self::ServiceUnavailableException => 500,
        }
    }
}

/// An error as X-Ray renders it (restJson1: `x-amzn-ErrorType` and `{"Message": ...}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct XrayError {
    pub code: XrayErrorCode,
    pub message: String,
}

impl XrayError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: XrayErrorCode::InvalidRequestException,
            message: message.into(),
        }
    }
}

impl From<std::io::Error> for XrayError {
    fn from(e: std::io::Error) -> Self {
        Self {
            code: XrayErrorCode::ServiceUnavailableException,
            message: format!("reading segments: {e}"),
        }
    }
}

/// Trace summaries per `GetTraceSummaries` page.
const PAGE: usize = 100;

/// An account's segments in one region: `<root>/<function>/segments.jsonl` (and `.1`).
#[derive(Debug, Clone)]
pub struct TraceStore {
    root: PathBuf,
}

/// One trace: its documents as stored, in file order.
#[derive(Debug, Default)]
struct Trace {
    documents: Vec<Value>,
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Finds the document (a segment or, within it, a subsegment) with id `id`.
fn find_mut<'a>(doc: &'a mut Value, id: &str) -> Option<&'a mut Value> {
    if doc.get("id").and_then(Value::as_str) == Some(id) {
        return Some(doc);
    }
    doc.get_mut("subsegments")?
        .as_array_mut()?
        .iter_mut()
        .find_map(|s| find_mut(s, id))
}

fn is_subsegment(doc: &Value) -> bool {
    doc.get("type").and_then(Value::as_str) == Some("subsegment")
}

impl Trace {
    /// Segments as X-Ray returns them: each independent subsegment inside its parent (found in
    /// this trace), those whose parent never arrived on their own.
    fn segments(&self) -> Vec<Value> {
        let (mut top, mut pending): (Vec<Value>, Vec<Value>) = self
            .documents
            .iter()
            .cloned()
            .partition(|d| !is_subsegment(d));
        // A later document with the same id replaces an earlier one (in-progress, then done).
        let mut seen = HashMap::new();
        let mut unique = Vec::new();
        for d in top.drain(..) {
            let id = d
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            match seen.get(&id) {
                Some(&i) if !id.is_empty() => unique[i] = d,
                _ => {
                    seen.insert(id, unique.len());
                    unique.push(d);
                }
            }
        }
        let mut top = unique;
        // Place subsegments until no more find their parent (a parent may itself be pending).
        loop {
            let before = pending.len();
            pending.retain(|sub| {
                let Some(parent) = sub.get("parent_id").and_then(Value::as_str) else {
                    return true;
                };
                let Some(p) = top.iter_mut().find_map(|d| find_mut(d, parent)) else {
                    return true;
                };
                let mut sub = sub.clone();
                if let Some(o) = sub.as_object_mut() {
                    for k in ["type", "parent_id", "trace_id"] {
                        o.remove(k);
                    }
                }
                if let Some(o) = p.as_object_mut() {
                    let list = o.entry("subsegments").or_insert_with(|| json!([]));
                    if let Some(l) = list.as_array_mut() {
                        l.push(sub);
                    }
                }
                false
            });
            if pending.is_empty() || pending.len() == before {
                break;
            }
        }
        top.extend(pending);
        top
    }

    fn start(&self) -> f64 {
        self.documents
            .iter()
            .filter_map(|d| num(d, "start_time"))
            .fold(f64::INFINITY, f64::min)
    }

    fn end(&self) -> f64 {
        self.documents
            .iter()
            .filter_map(|d| num(d, "end_time"))
            .fold(f64::NEG_INFINITY, f64::max)
    }

    fn duration(&self) -> f64 {
        let d = self.end() - self.start();
        if d.is_finite() {
            (d * 1000.0).round() / 1000.0
        } else {
            0.0
        }
    }

    fn any(&self, key: &str) -> bool {
        fn walk(d: &Value, key: &str) -> bool {
            flag(d, key)
                || d.get("subsegments")
                    .and_then(Value::as_array)
                    .is_some_and(|s| s.iter().any(|s| walk(s, key)))
        }
        self.documents.iter().any(|d| walk(d, key))
    }

    /// The services of its segments: (name, origin type), in order of start.
    fn services(&self) -> Vec<(String, String)> {
        let mut segs: Vec<&Value> = self
            .documents
            .iter()
            .filter(|d| !is_subsegment(d))
            .collect();
        segs.sort_by(|a, b| {
            num(a, "start_time")
                .unwrap_or(0.0)
                .total_cmp(&num(b, "start_time").unwrap_or(0.0))
        });
        let mut out: Vec<(String, String)> = Vec::new();
        for s in segs {
            let name = s.get("name").and_then(Value::as_str).unwrap_or("");
            let origin = s.get("origin").and_then(Value::as_str).unwrap_or("");
            let id = (name.to_string(), origin.to_string());
            if !out.contains(&id) {
                out.push(id);
            }
        }
        out
    }

    /// The annotations of every document and subsegment.
    fn annotations(&self) -> Vec<(String, Value)> {
        fn walk(d: &Value, out: &mut Vec<(String, Value)>) {
            if let Some(a) = d.get("annotations").and_then(Value::as_object) {
                out.extend(a.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            for s in d
                .get("subsegments")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                walk(s, out);
            }
        }
        let mut out = Vec::new();
        for d in &self.documents {
            walk(d, &mut out);
        }
        out
    }
}

/// The Unix time in a trace id (`1-5759e988-…`).
fn trace_id_time(id: &str) -> Option<f64> {
    let hex = id.strip_prefix("1-")?.get(..8)?;
    u32::from_str_radix(hex, 16).ok().map(f64::from)
}

fn timestamp(input: &Map<String, Value>, key: &str) -> Result<Option<f64>, XrayError> {
    match input.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) => s
            .parse::<f64>()
            .ok()
            .or_else(|| {
                chrono::DateTime::parse_from_rfc3339(s)
                    .ok()
                    .map(|t| t.timestamp_millis() as f64 / 1000.0)
            })
            .map(Some)
            .ok_or_else(|| XrayError::invalid(format!("{key} is not a timestamp."))),
        Some(_) => Err(XrayError::invalid(format!("{key} is not a timestamp."))),
    }
}

impl TraceStore {
    /// `root` is `traces/<account>/<region>` of the data dir.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn traces(&self) -> std::io::Result<BTreeMap<String, Trace>> {
        let mut out: BTreeMap<String, Trace> = BTreeMap::new();
        let functions = match std::fs::read_dir(&self.root) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for f in functions {
            let dir = f?.path();
            // The rotated file first: its segments are the older ones.
            for file in ["segments.jsonl.1", "segments.jsonl"] {
                let text = match std::fs::read_to_string(dir.join(file)) {
                    Ok(t) => t,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => continue,
                    Err(e) => return Err(e),
                };
                for line in text.lines() {
                    // A line a function sent that is not JSON is not a segment: skipped.
                    let Ok(doc) = serde_json::from_str::<Value>(line) else {
                        continue;
                    };
                    let Some(trace) = doc.get("trace_id").and_then(Value::as_str) else {
                        continue;
                    };
                    out.entry(trace.to_string())
                        .or_default()
                        .documents
                        .push(doc);
                }
            }
        }
        Ok(out)
    }
}

/// Operations of the X-Ray API that Flint answers.
pub const XRAY_SUPPORTED: [&str; 2] = ["GetTraceSummaries", "BatchGetTraces"];

/// Runs one X-Ray operation for an account's segments in a region.
pub fn xray_execute(
    store: &TraceStore,
    account: &str,
    operation: &str,
    input: &Value,
) -> Result<Value, XrayError> {
    let input = input
        .as_object()
        .ok_or_else(|| XrayError::invalid("The request body is not a JSON object."))?;
    match operation {
        "GetTraceSummaries" => get_trace_summaries(store, account, input, PAGE),
        "BatchGetTraces" => batch_get_traces(store, input),
        op => Err(XrayError::invalid(format!(
            "Flint does not implement the X-Ray operation {op}."
        ))),
    }
}

fn get_trace_summaries(
    store: &TraceStore,
    account: &str,
    input: &Map<String, Value>,
    page: usize,
) -> Result<Value, XrayError> {
    let (Some(start), Some(end)) = (timestamp(input, "StartTime")?, timestamp(input, "EndTime")?)
    else {
        return Err(XrayError::invalid("StartTime and EndTime are required."));
    };
    if end < start {
        return Err(XrayError::invalid("EndTime must be after StartTime."));
    }
    let by_event = match input.get("TimeRangeType").and_then(Value::as_str) {
        None | Some("TraceId") => false,
        Some("Event" | "Service") => true,
        Some(other) => {
            return Err(XrayError::invalid(format!(
                "TimeRangeType must be one of TraceId, Event, Service, not {other}."
            )))
        }
    };
    let filter = match input.get("FilterExpression").and_then(Value::as_str) {
        None => None,
        Some(f) if f.trim().is_empty() => None,
        Some(f) => Some(Filter::parse(f)?),
    };
    let after = match input.get("NextToken").and_then(Value::as_str) {
        None => None,
        Some(t) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| XrayError::invalid("The NextToken is invalid."))?,
        ),
    };
    let traces = store.traces()?;
    let mut matching: Vec<(&String, &Trace)> = traces
        .iter()
        .filter(|(id, t)| {
            let at = if by_event {
                t.start()
            } else {
                trace_id_time(id).unwrap_or_else(|| t.start())
            };
            at >= start && at <= end
        })
        .filter(|(_, t)| filter.as_ref().is_none_or(|f| f.matches(t)))
        .collect();
    let processed = matching.len();
    matching.retain(|(id, _)| after.as_deref().is_none_or(|a| id.as_str() > a));
    let more = matching.len() > page;
    matching.truncate(page);
    let summaries: Vec<Value> = matching
        .iter()
        .map(|(id, t)| {
            let service = |(name, kind): &(String, String)| {
                json!({"Name": name, "Names": [name], "AccountId": account, "Type": kind})
            };
            let services = t.services();
            let mut arns: Vec<String> = t
                .documents
                .iter()
                .filter_map(|d| d.get("resource_arn").and_then(Value::as_str))
                .map(str::to_string)
                .collect();
            arns.dedup();
            let annotations: BTreeMap<String, Vec<Value>> =
                t.annotations()
                    .into_iter()
                    .fold(BTreeMap::new(), |mut m, (k, v)| {
                        m.entry(k)
                            .or_default()
                            .push(json!({"AnnotationValue": annotation_value(&v)}));
                        m
                    });
            let mut s = json!({
                "Id": id,
                "StartTime": t.start(),
                "Duration": t.duration(),
                "ResponseTime": t.duration(),
                "HasFault": t.any("fault"),
                "HasError": t.any("error"),
                "HasThrottle": t.any("throttle"),
                "IsPartial": false,
                "Http": {},
                "Annotations": annotations,
                "Users": [],
                "ServiceIds": services.iter().map(service).collect::<Vec<_>>(),
                "ResourceARNs": arns.iter().map(|a| json!({"ARN": a})).collect::<Vec<_>>(),
                "Revision": 1,
            });
            if let Some(first) = services.first() {
                s["EntryPoint"] = service(first);
            }
            s
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64().floor());
    let mut out = json!({
        "TraceSummaries": summaries,
        "ApproximateTime": now,
        "TracesProcessedCount": processed,
    });
    if more {
        if let Some((last, _)) = matching.last() {
            out["NextToken"] =
                json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last.as_bytes()));
        }
    }
    Ok(out)
}

fn annotation_value(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!({"NumberValue": n}),
        Value::Bool(b) => json!({"BooleanValue": b}),
        Value::String(s) => json!({"StringValue": s}),
        other => json!({"StringValue": other.to_string()}),
    }
}

fn batch_get_traces(store: &TraceStore, input: &Map<String, Value>) -> Result<Value, XrayError> {
    let ids: Vec<&str> = input
        .get("TraceIds")
        .and_then(Value::as_array)
        .ok_or_else(|| XrayError::invalid("TraceIds is required."))?
        .iter()
        .map(|v| {
            v.as_str()
                .ok_or_else(|| XrayError::invalid("TraceIds must be strings."))
        })
        .collect::<Result<_, _>>()?;
    let traces = store.traces()?;
    let mut found = Vec::new();
    let mut unprocessed = Vec::new();
    for id in ids {
        let Some(t) = traces.get(id) else {
            unprocessed.push(id);
            continue;
        };
        let segments: Vec<Value> = t
            .segments()
            .into_iter()
            .map(|d| {
                json!({
                    "Id": d.get("id").and_then(Value::as_str).unwrap_or(""),
                    "Document": d.to_string(),
                })
            })
            .collect();
        found.push(json!({
            "Id": id,
            "Duration": t.duration(),
            "LimitExceeded": false,
            "Segments": segments,
        }));
    }
    Ok(json!({"Traces": found, "UnprocessedTraceIds": unprocessed}))
}

/// The `FilterExpression` subset Flint evaluates: `service("name")`, `id(name: "n", type: "t")`,
/// `ok`, `error`, `fault`, `throttle`, `duration`/`responsetime` compared with a number,
/// `annotation.KEY = value`, combined with `AND`, `OR`, `!` and parentheses.
#[derive(Debug, Clone, PartialEq)]
enum Filter {
    Service(String),
    Id { name: String, kind: Option<String> },
    Ok,
    Flag(&'static str),
    Duration(&'static str, f64),
    Annotation(String, Value),
    Not(Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

struct Parser<'a> {
    s: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.s[self.at..]
    }

    fn skip_ws(&mut self) {
        let r = self.rest();
        self.at += r.len() - r.trim_start().len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        let r = self.rest();
        if r.len() >= token.len() && r[..token.len()].eq_ignore_ascii_case(token) {
            let next = r[token.len()..].chars().next();
            let word = token.chars().all(|c| c.is_ascii_alphabetic());
            if word && next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                return false;
            }
            self.at += token.len();
            return true;
        }
        false
    }

    fn error(&self) -> XrayError {
        XrayError::invalid(format!(
            "Invalid filter expression at position {}: Flint evaluates service(\"name\"), \
             id(name: \"name\", type: \"type\"), ok, error, fault, throttle, duration and \
             responsetime comparisons and annotation.KEY = value, joined by AND, OR, ! and \
             parentheses.",
            self.at
        ))
    }

    fn string(&mut self) -> Result<String, XrayError> {
        self.skip_ws();
        let r = self.rest();
        let body = r.strip_prefix('"').ok_or_else(|| self.error())?;
        let end = body.find('"').ok_or_else(|| self.error())?;
        let out = body[..end].to_string();
        self.at += end + 2;
        Ok(out)
    }

    fn number(&mut self) -> Result<f64, XrayError> {
        self.skip_ws();
        let r = self.rest();
        let len = r
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .unwrap_or(r.len());
        let n = r[..len].parse().map_err(|_| self.error())?;
        self.at += len;
        Ok(n)
    }

    fn or(&mut self) -> Result<Filter, XrayError> {
        let mut left = self.and()?;
        while self.eat("OR") || self.eat("||") {
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, XrayError> {
        let mut left = self.unary()?;
        while self.eat("AND") || self.eat("&&") {
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, XrayError> {
        if self.eat("!") {
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        if self.eat("(") {
            let inner = self.or()?;
            if !self.eat(")") {
                return Err(self.error());
            }
            return Ok(inner);
        }
        self.atom()
    }

    fn id_args(&mut self) -> Result<Filter, XrayError> {
        // id("name") or id(name: "n", type: "t") in either order.
        self.skip_ws();
        if self.rest().starts_with('"') {
            let name = self.string()?;
            return Ok(Filter::Id { name, kind: None });
        }
        let (mut name, mut kind) = (None, None);
        loop {
            if self.eat("name") {
                if !self.eat(":") {
                    return Err(self.error());
                }
                name = Some(self.string()?);
            } else if self.eat("type") {
                if !self.eat(":") {
                    return Err(self.error());
                }
                kind = Some(self.string()?);
            } else {
                return Err(self.error());
            }
            if !self.eat(",") {
                break;
            }
        }
        Ok(Filter::Id {
            name: name.ok_or_else(|| self.error())?,
            kind,
        })
    }

    fn atom(&mut self) -> Result<Filter, XrayError> {
        if self.eat("service") {
            if !self.eat("(") {
                return Err(self.error());
            }
            let f = if self.eat("id") {
                if !self.eat("(") {
                    return Err(self.error());
                }
                let f = self.id_args()?;
                if !self.eat(")") {
                    return Err(self.error());
                }
                f
            } else {
                Filter::Service(self.string()?)
            };
            if !self.eat(")") {
                return Err(self.error());
            }
            return Ok(f);
        }
        if self.eat("id") {
            if !self.eat("(") {
                return Err(self.error());
            }
            let f = self.id_args()?;
            if !self.eat(")") {
                return Err(self.error());
            }
            return Ok(f);
        }
        for flag in ["error", "fault", "throttle"] {
            if self.eat(flag) {
                return Ok(Filter::Flag(flag));
            }
        }
        if self.eat("ok") {
            return Ok(Filter::Ok);
        }
        for key in ["duration", "responsetime"] {
            if self.eat(key) {
                let op = [">=", "<=", ">", "<", "="]
                    .into_iter()
                    .find(|op| self.eat(op))
                    .ok_or_else(|| self.error())?;
                return Ok(Filter::Duration(op, self.number()?));
            }
        }
        if self.eat("annotation.") {
            let r = self.rest();
            let len = r
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(r.len());
            if len == 0 {
                return Err(self.error());
            }
            let key = r[..len].to_string();
            self.at += len;
            if !self.eat("=") {
                return Err(self.error());
            }
            self.skip_ws();
            let value = if self.rest().starts_with('"') {
                Value::String(self.string()?)
            } else if self.eat("true") {
                Value::Bool(true)
            } else if self.eat("false") {
                Value::Bool(false)
            } else {
                json!(self.number()?)
            };
            return Ok(Filter::Annotation(key, value));
        }
        Err(self.error())
    }
}

impl Filter {
    fn parse(s: &str) -> Result<Self, XrayError> {
        let mut p = Parser { s, at: 0 };
        let f = p.or()?;
        p.skip_ws();
        if p.at != s.len() {
            return Err(p.error());
        }
        Ok(f)
    }

    fn matches(&self, t: &Trace) -> bool {
        match self {
            Self::Service(name) => t.services().iter().any(|(n, _)| n == name),
            Self::Id { name, kind } => t
                .services()
                .iter()
                .any(|(n, k)| n == name && kind.as_ref().is_none_or(|kind| kind == k)),
            Self::Ok => !(t.any("error") || t.any("fault") || t.any("throttle")),
            Self::Flag(f) => t.any(f),
            Self::Duration(op, n) => {
                let d = t.duration();
                match *op {
                    ">" => d > *n,
                    "<" => d < *n,
                    ">=" => d >= *n,
                    "<=" => d <= *n,
                    _ => (d - n).abs() < 1e-9,
                }
            }
            Self::Annotation(k, v) => t.annotations().iter().any(|(key, val)| {
                key == k
                    && match (val, v) {
                        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
                        (a, b) => a == b,
                    }
            }),
            Self::Not(f) => !f.matches(t),
            Self::And(a, b) => a.matches(t) && b.matches(t),
            Self::Or(a, b) => a.matches(t) || b.matches(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "1-5759e988-bd862e3fe1be46a994272793";
    const T2: &str = "1-5759e990-00000000000000000000aaaa";

    fn store() -> (tempfile::TempDir, TraceStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("fn");
        std::fs::create_dir_all(&f).expect("mkdir");
        let lines = [
            json!({"name": "fn", "id": "aaaaaaaaaaaaaaaa", "trace_id": T1, "start_time": 1465510280.0,
                   "end_time": 1465510280.5, "origin": "AWS::Lambda::Function",
                   "resource_arn": "arn:aws:lambda:r:a:function:fn"}),
            json!({"name": "work", "id": "bbbbbbbbbbbbbbbb", "trace_id": T1, "type": "subsegment",
                   "parent_id": "aaaaaaaaaaaaaaaa", "start_time": 1465510280.1,
                   "end_time": 1465510280.2, "annotations": {"k": "v"}}),
            json!({"name": "inner", "id": "cccccccccccccccc", "trace_id": T1, "type": "subsegment",
                   "parent_id": "bbbbbbbbbbbbbbbb", "start_time": 1465510280.1,
                   "end_time": 1465510280.15, "error": true}),
            json!({"name": "other", "id": "dddddddddddddddd", "trace_id": T2, "start_time": 1465510288.0,
                   "end_time": 1465510289.0, "origin": "AWS::Lambda::Function"}),
        ];
        let text: String = lines.iter().map(|l| format!("{l}\nnot json\n")).collect();
        std::fs::write(f.join("segments.jsonl"), text).expect("write");
        let store = TraceStore::new(dir.path());
        (dir, store)
    }

    fn ids(out: &Value) -> Vec<&str> {
        out["TraceSummaries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["Id"].as_str())
            .collect()
    }

    fn summaries(s: &TraceStore, filter: &str) -> Result<Value, XrayError> {
        xray_execute(
            s,
            "123",
            "GetTraceSummaries",
            &json!({"StartTime": 1465510000, "EndTime": 1465520000.5, "FilterExpression": filter}),
        )
    }

    #[test]
    fn summaries_cover_the_time_range_and_filter() -> Result<(), XrayError> {
        let (_d, s) = store();
        let all = summaries(&s, "")?;
        assert_eq!(ids(&all), vec![T1, T2]);
        let first = &all["TraceSummaries"][0];
        assert_eq!(first["Duration"], 0.5);
        assert_eq!(first["HasError"], true);
        assert_eq!(first["EntryPoint"]["Name"], "fn");
        assert_eq!(first["EntryPoint"]["Type"], "AWS::Lambda::Function");
        assert_eq!(
            first["ResourceARNs"],
            json!([{"ARN": "arn:aws:lambda:r:a:function:fn"}])
        );
        assert_eq!(
            first["Annotations"]["k"],
            json!([{"AnnotationValue": {"StringValue": "v"}}])
        );
        assert_eq!(ids(&summaries(&s, "service(\"fn\")")?), vec![T1]);
        assert_eq!(
            ids(&summaries(&s, "service(\"nope\")")?),
            Vec::<&str>::new()
        );
        assert_eq!(ids(&summaries(&s, "ok")?), vec![T2]);
        assert_eq!(ids(&summaries(&s, "!error AND duration >= 1")?), vec![T2]);
        assert_eq!(
            ids(&summaries(
                &s,
                "id(name: \"other\", type: \"AWS::Lambda::Function\") OR annotation.k = \"v\""
            )?),
            vec![T1, T2]
        );
        let later = xray_execute(
            &s,
            "123",
            "GetTraceSummaries",
            &json!({"StartTime": 1465510285, "EndTime": 1465510300}),
        )?;
        assert_eq!(ids(&later), vec![T2], "by the time in the trace id");
        Ok(())
    }

    #[test]
    fn summaries_page() -> Result<(), XrayError> {
        let (_d, s) = store();
        let input = json!({"StartTime": 0, "EndTime": 2e9});
        let input = input.as_object().cloned().unwrap_or_default();
        let first = get_trace_summaries(&s, "a", &input, 1)?;
        assert_eq!(ids(&first), vec![T1]);
        let mut next = input.clone();
        next.insert("NextToken".into(), first["NextToken"].clone());
        let second = get_trace_summaries(&s, "a", &next, 1)?;
        assert_eq!(ids(&second), vec![T2]);
        assert!(second.get("NextToken").is_none());
        Ok(())
    }

    #[test]
    fn batch_get_traces_nests_subsegments_under_their_parents() -> Result<(), XrayError> {
        let (_d, s) = store();
        let out = xray_execute(
            &s,
            "a",
            "BatchGetTraces",
            &json!({"TraceIds": [T1, "1-00000000-000000000000000000000000"]}),
        )?;
        assert_eq!(
            out["UnprocessedTraceIds"],
            json!(["1-00000000-000000000000000000000000"])
        );
        let segments = out["Traces"][0]["Segments"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(segments.len(), 1);
        assert_eq!(segments[0]["Id"], "aaaaaaaaaaaaaaaa");
        let doc: Value = serde_json::from_str(segments[0]["Document"].as_str().unwrap_or(""))
            .unwrap_or_default();
        let work = &doc["subsegments"][0];
        assert_eq!(work["name"], "work");
        assert!(work.get("parent_id").is_none() && work.get("type").is_none());
        assert_eq!(work["subsegments"][0]["name"], "inner");
        Ok(())
    }

    #[test]
    fn bad_requests_are_invalid() {
        let (_d, s) = store();
        for f in ["service(", "bogus", "duration >", "service(\"a\") AND"] {
            assert_eq!(
                summaries(&s, f).err().map(|e| e.code),
                Some(XrayErrorCode::InvalidRequestException),
                "{f}"
            );
        }
        let run = |op: &str, input: Value| xray_execute(&s, "a", op, &input).err().map(|e| e.code);
        assert_eq!(
            run("GetTraceSummaries", json!({"StartTime": 5})),
            Some(XrayErrorCode::InvalidRequestException)
        );
        assert_eq!(
            run("GetTraceSummaries", json!({"StartTime": 5, "EndTime": 1})),
            Some(XrayErrorCode::InvalidRequestException)
        );
        assert_eq!(
            run("BatchGetTraces", json!({})),
            Some(XrayErrorCode::InvalidRequestException)
        );
        assert_eq!(
            run("GetServiceGraph", json!({})),
            Some(XrayErrorCode::InvalidRequestException)
        );
    }
}
