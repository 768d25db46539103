//! `StartLiveTail`: a session over one or more log groups that reports, every second, the events
//! their streams gained since the last report (`sessionUpdate`, at most 500, `sampled` when more
//! matched), after one `sessionStart`. The HTTP side (the event stream, the one-second tick, the
//! three-hour limit) is crates/api's; this is the request's validation and the reading.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::{json, Map, Value};

use crate::operations::{ErrorCode, LogsError};
use crate::pattern::FilterPattern;
use crate::store::LogStore;

/// Most events in one `sessionUpdate` (CloudWatch's).
pub const MAX_EVENTS_PER_UPDATE: usize = 500;
/// Most log groups in one session (the model's).
const MAX_GROUPS: usize = 10;
/// Most stream names or prefixes (the model's).
const MAX_STREAMS: usize = 100;

/// One session: what it follows and how far it has read each stream.
#[derive(Debug)]
pub struct LiveTail {
    store: LogStore,
    /// (the identifier as the request gave it, the group's name).
    groups: Vec<(String, String)>,
    stream_names: Option<Vec<String>>,
    stream_prefixes: Option<Vec<String>>,
    pattern_text: Option<String>,
    pattern: FilterPattern,
    /// Byte offset read so far, per stream file.
    offsets: HashMap<PathBuf, u64>,
}

fn strings(input: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, LogsError> {
    let Some(v) = input.get(key).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let list = v
        .as_array()
        .ok_or_else(|| LogsError::invalid(format!("{key} must be a list.")))?;
    list.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| LogsError::invalid(format!("{key} must be a list of strings.")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn size_error(key: &str, n: usize, max: usize) -> LogsError {
    LogsError::invalid(format!(
        "1 validation error detected: Value at '{key}' failed to satisfy constraint: Member must \
         have length {} (it has {n})",
        if n == 0 {
            "greater than or equal to 1".to_string()
        } else {
            format!("less than or equal to {max}")
        }
    ))
}

impl LiveTail {
    /// Validates a `StartLiveTail` request as CloudWatch does and starts reading from the end
    /// of every stream the groups have now.
    pub fn start(
        store: LogStore,
        account: &str,
        region: &str,
        input: &Value,
    ) -> Result<Self, LogsError> {
        let input = input
            .as_object()
            .ok_or_else(|| LogsError::invalid("The request body is not a JSON object."))?;
        let identifiers = strings(input, "logGroupIdentifiers")?.ok_or_else(|| {
            LogsError::invalid(
                "1 validation error detected: Value null at 'logGroupIdentifiers' failed to \
                 satisfy constraint: Member must not be null",
            )
        })?;
        if identifiers.is_empty() || identifiers.len() > MAX_GROUPS {
            return Err(size_error(
                "logGroupIdentifiers",
                identifiers.len(),
                MAX_GROUPS,
            ));
        }
        let stream_names = strings(input, "logStreamNames")?;
        let stream_prefixes = strings(input, "logStreamNamePrefixes")?;
        for (key, list) in [
            ("logStreamNames", &stream_names),
            ("logStreamNamePrefixes", &stream_prefixes),
        ] {
            if let Some(l) = list {
                if l.is_empty() || l.len() > MAX_STREAMS {
                    return Err(size_error(key, l.len(), MAX_STREAMS));
                }
                if identifiers.len() > 1 {
                    return Err(LogsError::invalid(format!(
                        "{key} can only be specified when a single log group is specified in \
                         logGroupIdentifiers."
                    )));
                }
            }
        }
        if stream_names.is_some() && stream_prefixes.is_some() {
            return Err(LogsError::invalid(
                "logStreamNames and logStreamNamePrefixes are mutually exclusive parameters.",
            ));
        }
        let pattern_text = match input.get("logEventFilterPattern") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(LogsError::invalid(
                    "logEventFilterPattern must be a string.",
                ))
            }
        };
        let pattern = FilterPattern::parse(pattern_text.as_deref().unwrap_or(""))
            .map_err(|e| LogsError::invalid(format!("Invalid filter pattern: {e}")))?;
        let arn_prefix = format!("arn:aws:logs:{region}:{account}:log-group:");
        let mut groups = Vec::with_capacity(identifiers.len());
        for id in identifiers {
            let name = if id.starts_with("arn:") {
                if id.ends_with('*') {
                    return Err(LogsError::invalid(format!(
                        "The log group ARN {id} must not end with an asterisk (*)."
                    )));
                }
                id.strip_prefix(&arn_prefix)
                    .ok_or_else(LogsError::no_group)?
                    .to_string()
            } else {
                id.clone()
            };
            groups.push((id, name));
        }
        let streams = store.streams()?;
        if let Some((id, _)) = groups
            .iter()
            .find(|(_, name)| !streams.iter().any(|s| &s.group == name))
        {
            return Err(LogsError::new(
                ErrorCode::ResourceNotFoundException,
                format!("The specified log group does not exist: {id}"),
            ));
        }
        let offsets = streams
            .into_iter()
            .map(|s| (s.path, s.bytes))
            .collect::<HashMap<_, _>>();
        Ok(Self {
            store,
            groups,
            stream_names,
            stream_prefixes,
            pattern_text,
            pattern,
            offsets,
        })
    }

    /// The `sessionStart` event's payload.
    pub fn session_start(&self, request_id: &str, session_id: &str) -> Value {
        let mut out = json!({
            "requestId": request_id,
            "sessionId": session_id,
            "logGroupIdentifiers": self.groups.iter().map(|(id, _)| id).collect::<Vec<_>>(),
        });
        if let Some(n) = &self.stream_names {
            out["logStreamNames"] = json!(n);
        }
        if let Some(p) = &self.stream_prefixes {
            out["logStreamNamePrefixes"] = json!(p);
        }
        if let Some(p) = &self.pattern_text {
            out["logEventFilterPattern"] = json!(p);
        }
        out
    }

    /// The next `sessionUpdate` event's payload: what matched since the last one, oldest
    /// first, at most [`MAX_EVENTS_PER_UPDATE`].
    pub fn update(&mut self) -> Result<Value, LogsError> {
        let mut found: Vec<(i64, String, usize, Value)> = Vec::new();
        for stream in self.store.streams()? {
            let Some((id, _)) = self.groups.iter().find(|(_, name)| *name == stream.group) else {
                continue;
            };
            if self
                .stream_names
                .as_ref()
                .is_some_and(|n| !n.contains(&stream.name))
                || self
                    .stream_prefixes
                    .as_ref()
                    .is_some_and(|p| !p.iter().any(|p| stream.name.starts_with(p.as_str())))
            {
                continue;
            }
            let from = self.offsets.get(&stream.path).copied().unwrap_or(0);
            if from == stream.bytes {
                continue;
            }
            let (events, next) = self.store.events_after(&stream, from)?;
            self.offsets.insert(stream.path.clone(), next);
            for e in events {
                if !self.pattern.matches(&e.message) {
                    continue;
                }
                found.push((
                    e.timestamp,
                    stream.name.clone(),
                    e.line,
                    json!({
                        "logStreamName": stream.name,
                        "logGroupIdentifier": id,
                        "message": e.message,
                        "timestamp": e.timestamp,
                        "ingestionTime": e.timestamp,
                    }),
                ));
            }
        }
        found.sort_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
        let sampled = found.len() > MAX_EVENTS_PER_UPDATE;
        if sampled {
            // Evenly spread over what matched, as a sample of it.
            let step = found.len() as f64 / MAX_EVENTS_PER_UPDATE as f64;
            let picked: Vec<_> = (0..MAX_EVENTS_PER_UPDATE)
                .map(|i| (i as f64 * step) as usize)
                .collect();
            let mut i = 0;
            found.retain(|_| {
                let keep = picked.binary_search(&i).is_ok();
                i += 1;
                keep
            });
        }
        Ok(json!({
            "sessionMetadata": { "sampled": sampled },
            "sessionResults": found.into_iter().map(|f| f.3).collect::<Vec<_>>(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const GROUP: &str = "/aws/lambda/fn";

    fn store() -> (tempfile::TempDir, LogStore, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("fn/2026/01/02");
        std::fs::create_dir_all(&f).expect("mkdir");
        let log = f.join("[$LATEST]ab.log");
        std::fs::write(&log, "before\n").expect("write");
        std::fs::write(f.join("[$LATEST]ab.idx"), format!("{GROUP}\n0 1000\n")).expect("idx");
        let store = LogStore::new(dir.path());
        (dir, store, log)
    }

    fn append(path: &PathBuf, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .expect("open");
        f.write_all(text.as_bytes()).expect("append");
    }

    fn messages(update: &Value) -> Vec<String> {
        update["sessionResults"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["message"].as_str().map(str::to_string))
            .collect()
    }

    #[test]
    fn a_session_reports_only_what_was_written_after_it_started() -> Result<(), LogsError> {
        let (_d, store, log) = store();
        let arn = format!("arn:aws:logs:us-east-1:123456789012:log-group:{GROUP}");
        let mut tail = LiveTail::start(
            store,
            "123456789012",
            "us-east-1",
            &json!({"logGroupIdentifiers": [arn], "logEventFilterPattern": "ERROR"}),
        )?;
        let start = tail.session_start("r", "s");
        assert_eq!(start["logGroupIdentifiers"], json!([arn]));
        assert_eq!(start["logEventFilterPattern"], "ERROR");
        assert!(messages(&tail.update()?).is_empty());
        append(&log, "ERROR one\nfine\nERROR two\nERROR partial");
        let update = tail.update()?;
        assert_eq!(messages(&update), vec!["ERROR one", "ERROR two"]);
        assert_eq!(update["sessionMetadata"]["sampled"], false);
        let first = &update["sessionResults"][0];
        assert_eq!(first["logStreamName"], "2026/01/02/[$LATEST]ab");
        assert_eq!(first["logGroupIdentifier"], json!(arn));
        append(&log, "\n");
        assert_eq!(messages(&tail.update()?), vec!["ERROR partial"]);
        Ok(())
    }

    #[test]
    fn more_than_500_events_are_sampled_down() -> Result<(), LogsError> {
        let (_d, store, log) = store();
        let mut tail = LiveTail::start(store, "a", "r", &json!({"logGroupIdentifiers": [GROUP]}))?;
        append(&log, &"x\n".repeat(1200));
        let update = tail.update()?;
        assert_eq!(update["sessionMetadata"]["sampled"], true);
        assert_eq!(messages(&update).len(), MAX_EVENTS_PER_UPDATE);
        Ok(())
    }

    #[test]
    fn stream_filters_apply() -> Result<(), LogsError> {
        let (_d, store, log) = store();
        let mut tail = LiveTail::start(
            store.clone(),
            "a",
            "r",
            &json!({"logGroupIdentifiers": [GROUP], "logStreamNamePrefixes": ["2027/"]}),
        )?;
        append(&log, "hello\n");
        assert!(messages(&tail.update()?).is_empty());
        let mut tail = LiveTail::start(
            store,
            "a",
            "r",
            &json!({"logGroupIdentifiers": [GROUP], "logStreamNames": ["2026/01/02/[$LATEST]ab"]}),
        )?;
        append(&log, "again\n");
        assert_eq!(messages(&tail.update()?), vec!["again"]);
        Ok(())
    }

    #[test]
    fn bad_requests_get_cloudwatchs_errors() {
        let (_d, store, _) = store();
        let start = |input: Value| LiveTail::start(store.clone(), "a", "r", &input).map(|_| ());
        let code = |r: Result<(), LogsError>| r.err().map(|e| e.code);
        assert_eq!(
            code(start(json!({"logGroupIdentifiers": ["/aws/lambda/nope"]}))),
            Some(ErrorCode::ResourceNotFoundException)
        );
        assert_eq!(
            code(start(json!({}))),
            Some(ErrorCode::InvalidParameterException)
        );
        assert_eq!(
            code(start(json!({"logGroupIdentifiers": []}))),
            Some(ErrorCode::InvalidParameterException)
        );
        assert_eq!(
            code(start(
                json!({"logGroupIdentifiers": ["arn:aws:logs:r:a:log-group:/aws/lambda/fn:*"]})
            )),
            Some(ErrorCode::InvalidParameterException)
        );
        assert_eq!(
            code(start(json!({"logGroupIdentifiers": [GROUP, GROUP],
                              "logStreamNames": ["x"]}))),
            Some(ErrorCode::InvalidParameterException)
        );
        assert_eq!(
            code(start(
                json!({"logGroupIdentifiers": [GROUP], "logStreamNames": ["x"],
                              "logStreamNamePrefixes": ["y"]})
            )),
            Some(ErrorCode::InvalidParameterException)
        );
        assert_eq!(
            code(start(json!({"logGroupIdentifiers": [GROUP],
                              "logEventFilterPattern": "{ $.x = "}))),
            Some(ErrorCode::InvalidParameterException)
        );
        assert_eq!(code(start(json!({"logGroupIdentifiers": [GROUP]}))), None);
    }
}
