//! The CloudWatch Logs operations Flint answers, over JSON in and out as the awsJson1_1 protocol
//! carries them (`X-Amz-Target: Logs_20140328.<Op>`): DescribeLogGroups, DescribeLogStreams,
//! GetLogEvents and FilterLogEvents, with CloudWatch's paging tokens, limits and errors.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::pattern::FilterPattern;
use crate::store::{Event, LogStore, Stream};

/// CloudWatch Logs' error codes Flint answers with (`__type` in the body, HTTP 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidParameterException,
    ResourceNotFoundException,
    ServiceUnavailableException,
    /// An operation of the CloudWatch Logs API that Flint does not implement.
    InvalidOperationException,
    /// A target that is no CloudWatch Logs operation.
    UnknownOperationException,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidParameterException => "InvalidParameterException",
            Self::ResourceNotFoundException => "ResourceNotFoundException",
            Self::ServiceUnavailableException => "ServiceUnavailableException",
            Self::InvalidOperationException => "InvalidOperationException",
            Self::UnknownOperationException => "UnknownOperationException",
        }
    }

    /// HTTP status: CloudWatch Logs answers client errors with 400, its outages with 500.
    pub fn status(self) -> u16 {
        match self {
            Self::ServiceUnavailableException => 500,
            _ => 400,
        }
    }
}

/// An error as CloudWatch Logs renders it: `{"__type": code, "message": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct LogsError {
    pub code: ErrorCode,
    pub message: String,
}

impl LogsError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameterException, message)
    }

    pub(crate) fn no_group() -> Self {
        Self::new(
            ErrorCode::ResourceNotFoundException,
            "The specified log group does not exist.",
        )
    }

    /// The body CloudWatch Logs sends with the error.
    pub fn body(&self) -> Value {
        json!({ "__type": self.code.as_str(), "message": self.message })
    }
}

impl From<std::io::Error> for LogsError {
    fn from(e: std::io::Error) -> Self {
        Self::new(
            ErrorCode::ServiceUnavailableException,
            format!("reading logs: {e}"),
        )
    }
}

/// Operations of the CloudWatch Logs API that Flint answers.
pub const SUPPORTED: [&str; 4] = [
    "DescribeLogGroups",
    "DescribeLogStreams",
    "GetLogEvents",
    "FilterLogEvents",
];

/// The CloudWatch Logs API's other operations: answered with `InvalidOperationException`.
const KNOWN: &[&str] = &[
    "AssociateKmsKey",
    "CancelExportTask",
    "CreateDelivery",
    "CreateExportTask",
    "CreateLogAnomalyDetector",
    "CreateLogGroup",
    "CreateLogStream",
    "DeleteAccountPolicy",
    "DeleteDataProtectionPolicy",
    "DeleteDelivery",
    "DeleteDestination",
    "DeleteLogGroup",
    "DeleteLogStream",
    "DeleteMetricFilter",
    "DeleteQueryDefinition",
    "DeleteResourcePolicy",
    "DeleteRetentionPolicy",
    "DeleteSubscriptionFilter",
    "DescribeAccountPolicies",
    "DescribeDeliveries",
    "DescribeDestinations",
    "DescribeExportTasks",
    "DescribeMetricFilters",
    "DescribeQueries",
    "DescribeQueryDefinitions",
    "DescribeResourcePolicies",
    "DescribeSubscriptionFilters",
    "DisassociateKmsKey",
    "GetDataProtectionPolicy",
    "GetLogGroupFields",
    "GetLogRecord",
    "GetQueryResults",
    "ListTagsForResource",
    "ListTagsLogGroup",
    "PutAccountPolicy",
    "PutDataProtectionPolicy",
    "PutDestination",
    "PutLogEvents",
    "PutMetricFilter",
    "PutQueryDefinition",
    "PutResourcePolicy",
    "PutRetentionPolicy",
    "PutSubscriptionFilter",
    "StartQuery",
    "StopQuery",
    "TagLogGroup",
    "TagResource",
    "TestMetricFilter",
    "UntagLogGroup",
    "UntagResource",
];

/// Runs one operation for an account's logs in a region.
pub fn execute(
    store: &LogStore,
    account: &str,
    region: &str,
    operation: &str,
    input: &Value,
) -> Result<Value, LogsError> {
    let input = input
        .as_object()
        .ok_or_else(|| LogsError::invalid("The request body is not a JSON object."))?;
    let ctx = Ctx {
        store,
        account,
        region,
        input,
    };
    match operation {
        "DescribeLogGroups" => ctx.describe_log_groups(),
        "DescribeLogStreams" => ctx.describe_log_streams(),
        "GetLogEvents" => ctx.get_log_events(),
        "FilterLogEvents" => ctx.filter_log_events(),
        // An event stream, not one JSON answer: `LiveTail`, driven by crates/api.
        "StartLiveTail" => Err(LogsError::new(
            ErrorCode::InvalidOperationException,
            "StartLiveTail answers with an event stream (flint_logs::LiveTail).",
        )),
        // Retention is the server's, for every function: a per-group policy would not be kept.
        "PutRetentionPolicy" | "DeleteRetentionPolicy" => Err(LogsError::new(
            ErrorCode::InvalidOperationException,
            format!(
                "Flint does not implement the CloudWatch Logs operation {operation}: log \
                 retention applies to every function, set with `flint serve \
                 --log-retention-days` (default 7) and `--log-retention-mb` (default 1024 per \
                 function)."
            ),
        )),
        op if KNOWN.contains(&op) => Err(LogsError::new(
            ErrorCode::InvalidOperationException,
            format!("Flint does not implement the CloudWatch Logs operation {op}."),
        )),
        _ => Err(LogsError::new(
            ErrorCode::UnknownOperationException,
            "Unknown operation",
        )),
    }
}

struct Ctx<'a> {
    store: &'a LogStore,
    account: &'a str,
    region: &'a str,
    input: &'a Map<String, Value>,
}

/// Largest response of the event operations (AWS: 1 MB).
const MAX_RESPONSE_BYTES: usize = 1_048_576;

fn encode_token(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn decode_token(t: &str) -> Result<String, LogsError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| LogsError::invalid("The specified nextToken is invalid."))
}

impl Ctx<'_> {
    fn str(&self, key: &str) -> Result<Option<&str>, LogsError> {
        match self.input.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(LogsError::invalid(format!("{key} must be a string."))),
        }
    }

    fn int(&self, key: &str) -> Result<Option<i64>, LogsError> {
        match self.input.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| LogsError::invalid(format!("{key} must be a number."))),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, LogsError> {
        match self.input.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| LogsError::invalid(format!("{key} must be a boolean."))),
        }
    }

    /// `limit`, checked against the model's range, or the default.
    fn limit(&self, max: i64, default: i64) -> Result<usize, LogsError> {
        let n = self.int("limit")?.unwrap_or(default);
        if !(1..=max).contains(&n) {
            return Err(LogsError::invalid(format!(
                "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value {}",
                if n < 1 { "greater than or equal to 1".to_string() } else { format!("less than or equal to {max}") }
            )));
        }
        Ok(n as usize)
    }

    fn group_arn(&self, group: &str) -> String {
        format!(
            "arn:aws:logs:{}:{}:log-group:{group}",
            self.region, self.account
        )
    }

    /// The group named by `logGroupName` or `logGroupIdentifier` (a name or an ARN, of this
    /// account only), and its streams.
    fn group(&self) -> Result<(String, Vec<Stream>), LogsError> {
        let name = match (self.str("logGroupName")?, self.str("logGroupIdentifier")?) {
            (Some(_), Some(_)) => {
                return Err(LogsError::invalid(
                    "LogGroup name and LogGroup ARN are mutually exclusive parameters.",
                ))
            }
            (None, None) => {
                return Err(LogsError::invalid(
                    "Should provide either name or identifier.",
                ))
            }
            (Some(n), None) => n.to_string(),
            (None, Some(id)) => match id.strip_prefix("arn:") {
                Some(_) => {
                    let prefix =
                        format!("arn:aws:logs:{}:{}:log-group:", self.region, self.account);
                    let rest = id.strip_prefix(&prefix).ok_or_else(LogsError::no_group)?;
                    rest.strip_suffix(":*").unwrap_or(rest).to_string()
                }
                None => id.to_string(),
            },
        };
        let streams: Vec<Stream> = self
            .store
            .streams()?
            .into_iter()
            .filter(|s| s.group == name)
            .collect();
        if streams.is_empty() {
            return Err(LogsError::no_group());
        }
        Ok((name, streams))
    }

    fn describe_log_groups(&self) -> Result<Value, LogsError> {
        let prefix = self.str("logGroupNamePrefix")?;
        let pattern = self.str("logGroupNamePattern")?;
        if prefix.is_some() && pattern.is_some() {
            return Err(LogsError::invalid(
                "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.",
            ));
        }
        let limit = self.limit(50, 50)?;
        let after = self.str("nextToken")?.map(decode_token).transpose()?;
        let mut groups: std::collections::BTreeMap<String, (i64, u64)> = Default::default();
        for s in self.store.streams()? {
            let g = groups.entry(s.group.clone()).or_insert((i64::MAX, 0));
            g.0 = g.0.min(s.first_ms);
            g.1 += s.bytes;
        }
        let pattern = pattern.map(str::to_lowercase);
        let matching: Vec<_> = groups
            .into_iter()
            .filter(|(name, _)| prefix.is_none_or(|p| name.starts_with(p)))
            .filter(|(name, _)| {
                pattern
                    .as_deref()
                    .is_none_or(|p| name.to_lowercase().contains(p))
            })
            .filter(|(name, _)| after.as_deref().is_none_or(|a| name.as_str() > a))
            .collect();
        let more = matching.len() > limit;
        let page: Vec<Value> = matching
            .iter()
            .take(limit)
            .map(|(name, (created, bytes))| {
                let arn = self.group_arn(name);
                json!({
                    "logGroupName": name,
                    "creationTime": created,
                    "metricFilterCount": 0,
                    "arn": format!("{arn}:*"),
                    "storedBytes": bytes,
                    "logGroupClass": "STANDARD",
                    "logGroupArn": arn,
                })
            })
            .collect();
        let mut out = json!({ "logGroups": page });
        if more {
            if let Some((last, _)) = matching.get(limit - 1) {
                out["nextToken"] = json!(encode_token(last));
            }
        }
        Ok(out)
    }

    fn describe_log_streams(&self) -> Result<Value, LogsError> {
        let prefix = self.str("logStreamNamePrefix")?;
        let order = self.str("orderBy")?.unwrap_or("LogStreamName");
        let by_time = match order {
            "LogStreamName" => false,
            "LastEventTime" => true,
            other => {
                return Err(LogsError::invalid(format!(
                    "1 validation error detected: Value '{other}' at 'orderBy' failed to satisfy constraint: Member must satisfy enum value set: [LogStreamName, LastEventTime]"
                )))
            }
        };
        if by_time && prefix.is_some() {
            return Err(LogsError::invalid(
                "Cannot order by LastEventTime with a logStreamNamePrefix.",
            ));
        }
        let descending = self.bool("descending")?.unwrap_or(false);
        let limit = self.limit(50, 50)?;
        let (_, mut streams) = self.group()?;
        streams.retain(|s| prefix.is_none_or(|p| s.name.starts_with(p)));
        if by_time {
            streams.sort_by(|a, b| a.last_ms.cmp(&b.last_ms).then_with(|| a.name.cmp(&b.name)));
        } else {
            streams.sort_by(|a, b| a.name.cmp(&b.name));
        }
        if descending {
            streams.reverse();
        }
        let start = match self.str("nextToken")? {
            Some(t) => decode_token(t)?
                .strip_prefix("s/")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| LogsError::invalid("The specified nextToken is invalid."))?,
            None => 0,
        };
        let page: Vec<Value> = streams
            .iter()
            .skip(start)
            .take(limit)
            .map(|s| {
                json!({
                    "logStreamName": s.name,
                    "creationTime": s.first_ms,
                    "firstEventTimestamp": s.first_ms,
                    "lastEventTimestamp": s.last_ms,
                    "lastIngestionTime": s.last_ms,
                    "arn": format!("{}:log-stream:{}", self.group_arn(&s.group), s.name),
                    "storedBytes": 0,
                })
            })
            .collect();
        let mut out = json!({ "logStreams": page });
        if start + limit < streams.len() {
            out["nextToken"] = json!(encode_token(&format!("s/{}", start + limit)));
        }
        Ok(out)
    }

    /// Events within `startTime` (inclusive) and `endTime` (exclusive), as AWS reads them.
    fn in_range(&self) -> Result<impl Fn(&Event) -> bool, LogsError> {
        let start = self.int("startTime")?;
        let end = self.int("endTime")?;
        Ok(move |e: &Event| {
            start.is_none_or(|s| e.timestamp >= s) && end.is_none_or(|t| e.timestamp < t)
        })
    }

    fn get_log_events(&self) -> Result<Value, LogsError> {
        let stream_name = self
            .str("logStreamName")?
            .ok_or_else(|| LogsError::invalid("logStreamName is required."))?;
        let limit = self.limit(10_000, 10_000)?;
        let from_head = self.bool("startFromHead")?.unwrap_or(false);
        let token = self.str("nextToken")?;
        let in_range = self.in_range()?;
        let (_, streams) = self.group()?;
        let stream = streams
            .iter()
            .find(|s| s.name == stream_name)
            .ok_or_else(|| {
                LogsError::new(
                    ErrorCode::ResourceNotFoundException,
                    "The specified log stream does not exist.",
                )
            })?;
        let events: Vec<Event> = self
            .store
            .events(stream)?
            .into_iter()
            .filter(|e| in_range(e))
            .collect();
        // Tokens are positions in the stream: `f/<n>` reads on from n, `b/<n>` back from n.
        let (start, end) = match token {
            None if from_head => (0, limit.min(events.len())),
            None => (events.len().saturating_sub(limit), events.len()),
            Some(t) => {
                let pos = |digits: &str| -> Result<usize, LogsError> {
                    digits
                        .split('/')
                        .next()
                        .and_then(|d| d.parse::<u64>().ok())
                        .map(|n| (n as usize).min(events.len()))
                        .ok_or_else(|| LogsError::invalid("The specified nextToken is invalid."))
                };
                if let Some(d) = t.strip_prefix("f/") {
                    let n = pos(d)?;
                    (n, (n + limit).min(events.len()))
                } else if let Some(d) = t.strip_prefix("b/") {
                    let n = pos(d)?;
                    (n.saturating_sub(limit), n)
                } else {
                    return Err(LogsError::invalid("The specified nextToken is invalid."));
                }
            }
        };
        let mut bytes = 0;
        let mut page = Vec::new();
        let mut stop = start;
        for e in &events[start..end] {
            bytes += e.message.len() + 26;
            if bytes > MAX_RESPONSE_BYTES && !page.is_empty() {
                break;
            }
            page.push(json!({
                "timestamp": e.timestamp,
                "message": e.message,
                "ingestionTime": e.timestamp,
            }));
            stop += 1;
        }
        // With nothing new, the forward token is the one given (how clients know to stop).
        let forward = match token {
            Some(t) if t.starts_with("f/") && page.is_empty() => t.to_string(),
            _ => format!("f/{stop:056}/s"),
        };
        Ok(json!({
            "events": page,
            "nextForwardToken": forward,
            "nextBackwardToken": format!("b/{start:056}/s"),
        }))
    }

    fn filter_log_events(&self) -> Result<Value, LogsError> {
        let names: Option<Vec<String>> = match self.input.get("logStreamNames") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| LogsError::invalid("logStreamNames must be strings."))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(_) => return Err(LogsError::invalid("logStreamNames must be a list.")),
        };
        let prefix = self.str("logStreamNamePrefix")?;
        if names.is_some() && prefix.is_some() {
            return Err(LogsError::invalid(
                "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.",
            ));
        }
        let pattern = FilterPattern::parse(self.str("filterPattern")?.unwrap_or(""))
            .map_err(|e| LogsError::invalid(format!("Invalid filter pattern: {e}")))?;
        let limit = self.limit(10_000, 10_000)?;
        let in_range = self.in_range()?;
        // The token names the last event returned: (timestamp, stream, line).
        let after: Option<(i64, String, usize)> = match self.str("nextToken")? {
            None => None,
            Some(t) => {
                let s = decode_token(t)?;
                let mut parts = s.splitn(3, '\t');
                let parsed = (|| {
                    let ts = parts.next()?.parse().ok()?;
                    let line = parts.next()?.parse().ok()?;
                    let stream = parts.next()?.to_string();
                    Some((ts, stream, line))
                })();
                Some(
                    parsed
                        .ok_or_else(|| LogsError::invalid("The specified nextToken is invalid."))?,
                )
            }
        };
        let (_, streams) = self.group()?;
        let mut found: Vec<(i64, &str, usize, String)> = Vec::new();
        for s in &streams {
            if names.as_ref().is_some_and(|n| !n.contains(&s.name))
                || prefix.is_some_and(|p| !s.name.starts_with(p))
            {
                continue;
            }
            for e in self.store.events(s)? {
                if !in_range(&e) || !pattern.matches(&e.message) {
                    continue;
                }
                let key = (e.timestamp, s.name.as_str(), e.line);
                if let Some((ts, stream, line)) = &after {
                    if key <= (*ts, stream.as_str(), *line) {
                        continue;
                    }
                }
                found.push((e.timestamp, s.name.as_str(), e.line, e.message));
            }
        }
        found.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
        let mut bytes = 0;
        let mut page = Vec::new();
        let mut last = None;
        for (ts, stream, line, message) in found.iter().take(limit) {
            bytes += message.len() + 26;
            if bytes > MAX_RESPONSE_BYTES && !page.is_empty() {
                break;
            }
            page.push(json!({
                "logStreamName": stream,
                "timestamp": ts,
                "message": message,
                "ingestionTime": ts,
                "eventId": event_id(*ts, stream, *line),
            }));
            last = Some((ts, stream, line));
        }
        let mut out = json!({ "events": page, "searchedLogStreams": [] });
        if page.len() < found.len() {
            if let Some((ts, stream, line)) = last {
                out["nextToken"] = json!(encode_token(&format!("{ts}\t{line}\t{stream}")));
            }
        }
        Ok(out)
    }
}

/// A 56-digit event id, stable for an event (as AWS's are).
fn event_id(ts: i64, stream: &str, line: usize) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    stream.hash(&mut h);
    format!("{ts:020}{:020}{line:016}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, LogStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("fn/2026/01/02");
        std::fs::create_dir_all(&f).expect("mkdir");
        let mut log = String::new();
        let mut idx = String::from("/aws/lambda/fn\n");
        for i in 0..25 {
            idx.push_str(&format!("{} {}\n", log.len(), 1000 + i));
            log.push_str(&format!(
                "line {i} {}\n",
                if i % 5 == 0 { "ERROR" } else { "ok" }
            ));
        }
        std::fs::write(f.join("[$LATEST]aa.log"), &log).expect("write");
        std::fs::write(f.join("[$LATEST]aa.idx"), &idx).expect("write");
        let g = dir.path().join("other/2026/01/02");
        std::fs::create_dir_all(&g).expect("mkdir");
        std::fs::write(
            g.join("[1]bb.log"),
            "{\"level\":\"ERROR\",\"n\":7}\n{\"level\":\"INFO\",\"n\":1}\n",
        )
        .expect("write");
        std::fs::write(g.join("[1]bb.idx"), "/custom/shared\n0 5000\n").expect("write");
        let root = dir.path().to_path_buf();
        (dir, LogStore::new(root))
    }

    fn run(store: &LogStore, op: &str, input: Value) -> Result<Value, LogsError> {
        execute(store, "123456789012", "us-east-1", op, &input)
    }

    #[test]
    fn groups_are_the_streams_groups_and_page() -> Result<(), LogsError> {
        let (_d, s) = store();
        let all = run(&s, "DescribeLogGroups", json!({}))?;
        let names: Vec<&str> = all["logGroups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g["logGroupName"].as_str())
            .collect();
        assert_eq!(names, ["/aws/lambda/fn", "/custom/shared"]);
        assert_eq!(
            all["logGroups"][0]["arn"],
            "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/fn:*"
        );
        let first = run(&s, "DescribeLogGroups", json!({"limit": 1}))?;
        assert_eq!(first["logGroups"].as_array().map(Vec::len), Some(1));
        let token = first["nextToken"].clone();
        let second = run(
            &s,
            "DescribeLogGroups",
            json!({"limit": 1, "nextToken": token}),
        )?;
        assert_eq!(second["logGroups"][0]["logGroupName"], "/custom/shared");
        assert!(second.get("nextToken").is_none());
        Ok(())
    }

    #[test]
    fn an_unknown_group_is_resource_not_found() {
        let (_d, s) = store();
        let e = run(
            &s,
            "DescribeLogStreams",
            json!({"logGroupName": "/aws/lambda/nope"}),
        );
        assert_eq!(e, Err(LogsError::no_group()));
    }

    #[test]
    fn get_log_events_pages_forward_until_the_token_repeats() -> Result<(), LogsError> {
        let (_d, s) = store();
        let base = json!({"logGroupName": "/aws/lambda/fn", "logStreamName": "2026/01/02/[$LATEST]aa", "startFromHead": true, "limit": 10});
        let mut token: Option<Value> = None;
        let mut seen = Vec::new();
        loop {
            let mut input = base.clone();
            if let Some(t) = &token {
                input["nextToken"] = t.clone();
            }
            let out = run(&s, "GetLogEvents", input)?;
            for e in out["events"].as_array().into_iter().flatten() {
                seen.push(e["message"].as_str().unwrap_or_default().to_string());
            }
            if token.as_ref() == Some(&out["nextForwardToken"]) {
                break;
            }
            token = Some(out["nextForwardToken"].clone());
        }
        assert_eq!(seen.len(), 25);
        assert_eq!(seen[24], "line 24 ok");
        // Without startFromHead, the newest events.
        let tail = run(
            &s,
            "GetLogEvents",
            json!({"logGroupName": "/aws/lambda/fn", "logStreamName": "2026/01/02/[$LATEST]aa", "limit": 2}),
        )?;
        assert_eq!(tail["events"][1]["message"], "line 24 ok");
        assert_eq!(tail["events"][0]["timestamp"], 1023);
        Ok(())
    }

    #[test]
    fn filter_log_events_matches_the_pattern_and_pages() -> Result<(), LogsError> {
        let (_d, s) = store();
        let out = run(
            &s,
            "FilterLogEvents",
            json!({"logGroupName": "/aws/lambda/fn", "filterPattern": "ERROR", "limit": 3}),
        )?;
        let msgs: Vec<&str> = out["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["message"].as_str())
            .collect();
        assert_eq!(msgs, ["line 0 ERROR", "line 5 ERROR", "line 10 ERROR"]);
        let next = run(
            &s,
            "FilterLogEvents",
            json!({"logGroupName": "/aws/lambda/fn", "filterPattern": "ERROR", "limit": 3, "nextToken": out["nextToken"]}),
        )?;
        let msgs: Vec<&str> = next["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["message"].as_str())
            .collect();
        assert_eq!(msgs, ["line 15 ERROR", "line 20 ERROR"]);
        assert!(next.get("nextToken").is_none());
        let timed = run(
            &s,
            "FilterLogEvents",
            json!({"logGroupName": "/aws/lambda/fn", "startTime": 1010, "endTime": 1012}),
        )?;
        assert_eq!(timed["events"].as_array().map(Vec::len), Some(2));
        let json_logs = run(
            &s,
            "FilterLogEvents",
            json!({"logGroupIdentifier": "arn:aws:logs:us-east-1:123456789012:log-group:/custom/shared", "filterPattern": "{ $.level = \"ERROR\" && $.n > 5 }"}),
        )?;
        assert_eq!(json_logs["events"].as_array().map(Vec::len), Some(1));
        Ok(())
    }

    #[test]
    fn other_accounts_arns_are_not_found() {
        let (_d, s) = store();
        let e = run(
            &s,
            "FilterLogEvents",
            json!({"logGroupIdentifier": "arn:aws:logs:us-east-1:999999999999:log-group:/custom/shared"}),
        );
        assert_eq!(
            e.map_err(|e| e.code),
            Err(ErrorCode::ResourceNotFoundException)
        );
    }

    #[test]
    fn other_operations_get_cloudwatch_errors() {
        let (_d, s) = store();
        let e = run(&s, "PutLogEvents", json!({}));
        assert_eq!(
            e.map_err(|e| e.code),
            Err(ErrorCode::InvalidOperationException)
        );
        let e = run(&s, "Frobnicate", json!({}));
        assert_eq!(
            e.map_err(|e| e.code),
            Err(ErrorCode::UnknownOperationException)
        );
    }

    #[test]
    fn a_retention_policy_is_refused_naming_the_servers_setting() {
        let (_d, s) = store();
        for op in ["PutRetentionPolicy", "DeleteRetentionPolicy"] {
            let e = run(
                &s,
                op,
                json!({"logGroupName": "/aws/lambda/f", "retentionInDays": 1}),
            )
            .unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidOperationException);
            assert!(e.message.contains("--log-retention-days"), "{}", e.message);
        }
    }
}
