//! What the Kafka and RabbitMQ pollers share: where a managed broker (an MSK cluster, an Amazon
//! MQ broker) is reached, the credentials `SourceAccessConfigurations` name (Secrets Manager
//! secrets, read through the connectors), batching limits, filtering, and how one batch is
//! handed to the function and judged.

use std::time::Duration;

use bytes::Bytes;
use flint_connectors::batch::Limits;
use flint_filter::FilterSet;
pub(crate) use flint_filter::Source;
use serde_json::Value;

use super::{InvokeFailure, Mapping};

/// The invoke payload limit of a synchronous invoke: a batch never grows past it.
pub(crate) const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// Room left in [`MAX_PAYLOAD_BYTES`] for the event's envelope.
const ENVELOPE_BYTES: usize = 16 * 1024;
/// AWS's batching window for Kafka and Amazon MQ when none is configured.
const DEFAULT_WINDOW: Duration = Duration::from_millis(500);

/// `FLINT_BROKER_ENDPOINTS`: where Flint reaches the brokers an ARN names, since it does not
/// ask Amazon MSK or Amazon MQ (and emulators give no reachable endpoints).
/// `ARN=ENDPOINT[,ENDPOINT…]`, several separated by `;` or whitespace.
pub(crate) const ENDPOINTS_VAR: &str = "FLINT_BROKER_ENDPOINTS";

/// The endpoints `FLINT_BROKER_ENDPOINTS` gives for `arn`.
pub(crate) fn endpoints_for(arn: &str) -> Option<Vec<String>> {
    let var = std::env::var(ENDPOINTS_VAR).ok()?;
    parse_endpoints(&var, arn)
}

fn parse_endpoints(var: &str, arn: &str) -> Option<Vec<String>> {
    var.split(|c: char| c == ';' || c.is_whitespace())
        .filter_map(|entry| entry.split_once('='))
        .find(|(a, _)| *a == arn)
        .map(|(_, e)| {
            e.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
}

/// The `URI` of the first `SourceAccessConfigurations` entry of type `kind`.
pub(crate) fn access(config: &Value, kind: &str) -> Option<String> {
    config
        .get("SourceAccessConfigurations")?
        .as_array()?
        .iter()
        .find(|c| c.get("Type").and_then(Value::as_str) == Some(kind))?
        .get("URI")?
        .as_str()
        .map(str::to_string)
}

/// A secret's JSON document, read through Secrets Manager.
pub(crate) async fn secret_json(mapping: &Mapping, arn: &str) -> Result<Value, String> {
    let text = mapping
        .ctx
        .connectors
        .secret_string(arn)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|_| format!("the secret {arn} is not a JSON document"))
}

/// `username` and `password` of a BASIC_AUTH / SASL_SCRAM secret.
pub(crate) fn credentials(secret: &Value, arn: &str) -> Result<(String, String), String> {
    let field = |name: &str| {
        secret
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("the secret {arn} has no {name}"))
    };
    Ok((field("username")?, field("password")?))
}

/// A batch's limits from the mapping's configuration: `BatchSize` (100 by default),
/// `MaximumBatchingWindowInSeconds` (500 ms when 0 or unset) and the payload limit.
pub(crate) fn batch_limits(mapping: &Mapping) -> Limits {
    limits_of(
        mapping.config_i64("BatchSize"),
        mapping.config_i64("MaximumBatchingWindowInSeconds"),
    )
}

fn limits_of(batch_size: Option<i64>, window: Option<i64>) -> Limits {
    let window = match window {
        Some(s) if s > 0 => Duration::from_secs(s as u64),
        _ => DEFAULT_WINDOW,
    };
    Limits {
        items: batch_size.unwrap_or(100).clamp(1, 10_000) as usize,
        bytes: MAX_PAYLOAD_BYTES - ENVELOPE_BYTES,
        window,
    }
}

/// The mapping's `FilterCriteria` (validated by the control plane when it was set).
pub(crate) struct Filters(FilterSet);

impl Filters {
    pub(crate) fn of(mapping: &Mapping) -> Self {
        let criteria = mapping
            .config()
            .get("FilterCriteria")
            .unwrap_or(&Value::Null);
        Self(FilterSet::parse(criteria).unwrap_or_else(|e| {
            // Stored criteria were checked when they were set; never drop records over them.
            tracing::warn!(mapping = %mapping.uuid(), "FilterCriteria ignored: {e}");
            FilterSet::default()
        }))
    }

    /// Whether `record` (as the event carries it) goes to the function; records that do not
    /// are dropped (acknowledged / committed) as AWS drops them.
    pub(crate) fn keep(&self, source: Source, record: &Value) -> bool {
        self.0.matches(source, record)
    }
}

/// How handing one batch to the function went.
pub(crate) enum Outcome {
    /// The function returned: the batch is done (commit / acknowledge).
    Done,
    /// The function failed or could not run: the batch must come again.
    Retry,
}

/// Invokes the function with `event` and reports the result as AWS's pollers do.
pub(crate) async fn deliver(mapping: &Mapping, event: &Value) -> Outcome {
    use std::sync::atomic::Ordering::Relaxed;
    let payload = Bytes::from(event.to_string());
    let result = mapping.invoke(payload).await;
    if let Ok(r) = &result {
        let records = record_count(event);
        mapping.counters.invoked.fetch_add(records, Relaxed);
        if r.function_error.is_some() {
            mapping.counters.failed_invoke.fetch_add(records, Relaxed);
        }
    }
    match result {
        Ok(r) if r.function_error.is_none() => {
            mapping.report_result("OK");
            Outcome::Done
        }
        Ok(r) => {
            tracing::info!(mapping = %mapping.uuid(), "function error: {}",
                String::from_utf8_lossy(&r.payload.contiguous()));
            mapping.report_result("PROBLEM: Function call failed");
            Outcome::Retry
        }
        Err(InvokeFailure::FunctionMissing(m)) => {
            mapping.report_problem(&format!("PROBLEM: {m}"));
            Outcome::Retry
        }
        Err(e @ InvokeFailure::RecursiveLoop) => {
            // Only batches carrying a trace header can be stopped so; AWS drops them.
            mapping.report_result(&format!("PROBLEM: {e}"));
            Outcome::Done
        }
        Err(InvokeFailure::Invoke(e)) => {
            tracing::info!(mapping = %mapping.uuid(), "invoke failed: {e}");
            mapping.report_result("PROBLEM: Function call failed");
            Outcome::Retry
        }
    }
}

/// The records of a Kafka (`records`) or RabbitMQ (`rmqMessagesByQueue`) event: lists keyed by
/// partition or queue.
fn record_count(event: &Value) -> u64 {
    ["records", "rmqMessagesByQueue"]
        .iter()
        .filter_map(|k| event.get(*k).and_then(Value::as_object))
        .flat_map(|groups| groups.values())
        .filter_map(Value::as_array)
        .map(|records| records.len() as u64)
        .sum()
}

/// Waits `delay` unless the mapping stops first (then `false`).
pub(crate) async fn pause(mapping: &Mapping, delay: Duration) -> bool {
    tokio::select! {
        _ = mapping.stopped() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}

/// The delay before the `attempt`th retry (1 s, doubling, at most 30 s).
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.min(5)).min(Duration::from_secs(30))
}

/// What AWS reports while a broker cannot be reached.
pub(crate) const CONNECTION_PROBLEM: &str =
    "PROBLEM: Connection error. Please check your event source connection configuration.";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_are_found_by_arn() {
        let var = "arn:aws:mq:us-east-1:1:broker:a:b-1=amqp://127.0.0.1:5672;\
                   arn:aws:kafka:us-east-1:1:cluster/c/x=h1:9092,h2:9092";
        assert_eq!(
            parse_endpoints(var, "arn:aws:kafka:us-east-1:1:cluster/c/x"),
            Some(vec!["h1:9092".to_string(), "h2:9092".to_string()])
        );
        assert_eq!(
            parse_endpoints(var, "arn:aws:mq:us-east-1:1:broker:a:b-1"),
            Some(vec!["amqp://127.0.0.1:5672".to_string()])
        );
        assert_eq!(
            parse_endpoints(var, "arn:aws:mq:us-east-1:1:broker:z:b-9"),
            None
        );
    }

    #[test]
    fn access_configurations_are_found_by_type() {
        let config = json!({"SourceAccessConfigurations": [
            {"Type": "VIRTUAL_HOST", "URI": "/v"},
            {"Type": "BASIC_AUTH", "URI": "arn:aws:secretsmanager:us-east-1:1:secret:s"}
        ]});
        assert_eq!(access(&config, "VIRTUAL_HOST").as_deref(), Some("/v"));
        assert_eq!(access(&config, "SASL_SCRAM_512_AUTH"), None);
    }

    #[test]
    fn batching_defaults_to_a_500_ms_window_under_the_6_mb_payload_limit() {
        let l = limits_of(None, Some(0));
        assert_eq!(l.items, 100);
        assert_eq!(l.window, Duration::from_millis(500));
        assert!(l.bytes < MAX_PAYLOAD_BYTES);
        let l = limits_of(Some(5), Some(2));
        assert_eq!((l.items, l.window), (5, Duration::from_secs(2)));
    }

    #[test]
    fn records_are_counted_across_partitions_and_queues() {
        let kafka = serde_json::json!({"eventSource": "aws:kafka",
            "records": {"t-0": [{}, {}], "t-1": [{}]}});
        let rabbit = serde_json::json!({"rmqMessagesByQueue": {"q::/": [{}, {}]}});
        assert_eq!(record_count(&kafka), 3);
        assert_eq!(record_count(&rabbit), 2);
        assert_eq!(record_count(&serde_json::json!({})), 0);
    }

    #[test]
    fn backoff_doubles_up_to_30_seconds() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(9), Duration::from_secs(30));
    }

    #[test]
    fn credentials_come_from_the_secret() {
        let s = json!({"username": "u", "password": "p"});
        assert_eq!(
            credentials(&s, "arn"),
            Ok(("u".to_string(), "p".to_string()))
        );
        assert!(credentials(&json!({"username": "u"}), "arn").is_err());
    }
}
