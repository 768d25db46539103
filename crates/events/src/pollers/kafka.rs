//! Kafka event sources: Amazon MSK clusters (`arn:aws:kafka:…`) and self-managed clusters
//! (`SelfManagedEventSource`). One consumer-group member per mapping (the group is
//! `ConsumerGroupId`, the mapping's UUID unless set) reads `Topics` from `StartingPosition`
//! when the group has no committed offsets, hands batches to the function, and commits a
//! batch's offsets only once the function returned; a failed batch is retried, with back-off,
//! until it succeeds, so a partition never skips a record (AWS's default for Kafka).

use flint_connectors::kafka::{
    KafkaAuth, KafkaConsumer, KafkaRecord, KafkaSettings, KafkaTls, StartAt,
};
use serde_json::{json, Map, Value};

use super::brokers::{
    access, backoff, batch_limits, credentials, deliver, endpoints_for, pause, secret_json,
    Filters, Outcome, Source, CONNECTION_PROBLEM, ENDPOINTS_VAR,
};
use super::Mapping;
use base64::Engine as _;

/// What the event says about its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventSource {
    /// `aws:kafka` (MSK) or `SelfManagedKafka`.
    pub event_source: &'static str,
    /// The MSK cluster's ARN; self-managed events carry none.
    pub arn: Option<String>,
    pub bootstrap_servers: Vec<String>,
}

/// Polls until the mapping stops.
pub(crate) async fn run(mapping: Mapping) {
    let mut attempt = 0;
    let (source, consumer) = loop {
        match connect(&mapping).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(mapping = %mapping.uuid(), "Kafka consumer: {e}");
                mapping.report_problem(&format!("PROBLEM: {e}"));
                if !pause(&mapping, backoff(attempt)).await {
                    return;
                }
                attempt += 1;
            }
        }
    };
    let limits = batch_limits(&mapping);
    let filters = Filters::of(&mapping);
    let mut pending = None;
    let mut failures = 0;
    loop {
        let read = tokio::select! {
            _ = mapping.stopped() => return,
            r = consumer.next_batch(&mut pending, limits) => r,
        };
        let batch = match read {
            Ok(b) => {
                failures = 0;
                b
            }
            Err(e) => {
                tracing::warn!(mapping = %mapping.uuid(), "Kafka: {e}");
                mapping.report_problem(CONNECTION_PROBLEM);
                if !pause(&mapping, backoff(failures)).await {
                    return;
                }
                failures += 1;
                continue;
            }
        };
        let kept: Vec<&KafkaRecord> = batch
            .iter()
            .filter(|r| filters.keep(Source::Kafka, &record(r)))
            .collect();
        if !kept.is_empty() {
            let event = event(&source, &kept);
            let mut attempt = 0;
            while let Outcome::Retry = deliver(&mapping, &event).await {
                if !pause(&mapping, backoff(attempt)).await {
                    return; // not committed: the next consumer of the group reads it again
                }
                attempt += 1;
            }
        }
        if let Err(e) = consumer.commit(&batch).await {
            // The records run again after a rebalance or restart: at least once, as on AWS.
            tracing::warn!(mapping = %mapping.uuid(), "Kafka offset commit failed: {e}");
        }
    }
}

/// Reads the mapping's settings (and secrets) and subscribes a consumer.
async fn connect(mapping: &Mapping) -> Result<(EventSource, KafkaConsumer), String> {
    let config = mapping.config();
    let source = event_source(mapping.spec.event_source_arn.as_deref(), config)?;
    let msk = source.arn.is_some();
    let mut auth = KafkaAuth::None;
    for (kind, mechanism) in [
        ("BASIC_AUTH", None),
        ("SASL_SCRAM_256_AUTH", Some("SCRAM-SHA-256")),
        ("SASL_SCRAM_512_AUTH", Some("SCRAM-SHA-512")),
    ] {
        if let Some(arn) = access(config, kind) {
            let (username, password) = credentials(&secret_json(mapping, &arn).await?, &arn)?;
            auth = match mechanism {
                None => KafkaAuth::Plain { username, password },
                Some(mechanism) => KafkaAuth::Scram {
                    mechanism,
                    username,
                    password,
                },
            };
        }
    }
    let mut tls = None;
    if let Some(arn) = access(config, "SERVER_ROOT_CA_CERTIFICATE") {
        let secret = secret_json(mapping, &arn).await?;
        tls.get_or_insert_with(KafkaTls::default).ca_pem = pem(&secret, "certificate");
    }
    if let Some(arn) = access(config, "CLIENT_CERTIFICATE_TLS_AUTH") {
        let secret = secret_json(mapping, &arn).await?;
        let t = tls.get_or_insert_with(KafkaTls::default);
        t.client_cert_pem = pem(&secret, "certificate");
        t.client_key_pem = pem(&secret, "privateKey");
        t.client_key_password = pem(&secret, "privateKeyPassword");
    }
    // MSK serves SASL/SCRAM only over TLS.
    if msk && auth != KafkaAuth::None {
        tls.get_or_insert_with(KafkaTls::default);
    }
    let settings = KafkaSettings {
        bootstrap_servers: source.bootstrap_servers.clone(),
        group_id: group_id(config, mapping.uuid()),
        topics: strings(config.get("Topics")),
        start_at: start_at(config),
        auth,
        tls,
    };
    let consumer = KafkaConsumer::connect(&settings).map_err(|e| e.to_string())?;
    Ok((source, consumer))
}

fn pem(secret: &Value, name: &str) -> Option<String> {
    secret.get(name).and_then(Value::as_str).map(str::to_string)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Where the mapping's events say they come from, and the brokers to bootstrap from.
fn event_source(arn: Option<&str>, config: &Value) -> Result<EventSource, String> {
    match arn {
        Some(arn) => {
            let servers = endpoints_for(arn).ok_or_else(|| {
                format!(
                    "Flint does not look up the brokers of Amazon MSK cluster {arn}: \
                     name them in {ENDPOINTS_VAR} ({arn}=host:port,…)"
                )
            })?;
            Ok(EventSource {
                event_source: "aws:kafka",
                arn: Some(arn.to_string()),
                bootstrap_servers: servers,
            })
        }
        None => {
            let servers = strings(
                config
                    .get("SelfManagedEventSource")
                    .and_then(|s| s.get("Endpoints"))
                    .and_then(|e| e.get("KAFKA_BOOTSTRAP_SERVERS")),
            );
            if servers.is_empty() {
                return Err("the mapping names no KAFKA_BOOTSTRAP_SERVERS".into());
            }
            Ok(EventSource {
                event_source: "SelfManagedKafka",
                arn: None,
                bootstrap_servers: servers,
            })
        }
    }
}

/// `ConsumerGroupId` of the source's Kafka config, else the mapping's UUID.
fn group_id(config: &Value, uuid: &str) -> String {
    [
        "AmazonManagedKafkaEventSourceConfig",
        "SelfManagedKafkaEventSourceConfig",
    ]
    .iter()
    .find_map(|k| config.get(*k)?.get("ConsumerGroupId")?.as_str())
    .filter(|g| !g.is_empty())
    .unwrap_or(uuid)
    .to_string()
}

/// `StartingPosition`: `LATEST`, else the oldest record (`TRIM_HORIZON`; `AT_TIMESTAMP` is
/// not honoured yet and starts there too).
fn start_at(config: &Value) -> StartAt {
    match config.get("StartingPosition").and_then(Value::as_str) {
        Some("LATEST") => StartAt::Latest,
        _ => StartAt::Earliest,
    }
}

/// One record as Lambda's Kafka event shows it (the shape filters match too).
pub(crate) fn record(r: &KafkaRecord) -> Value {
    let b64 = |b: &[u8]| Value::String(base64::engine::general_purpose::STANDARD.encode(b));
    let mut m = Map::new();
    m.insert("topic".into(), r.topic.clone().into());
    m.insert("partition".into(), r.partition.into());
    m.insert("offset".into(), r.offset.into());
    m.insert("timestamp".into(), r.timestamp.into());
    m.insert("timestampType".into(), r.timestamp_type.as_str().into());
    if let Some(k) = &r.key {
        m.insert("key".into(), b64(k));
    }
    if let Some(v) = &r.value {
        m.insert("value".into(), b64(v));
    }
    let headers: Vec<Value> = r
        .headers
        .iter()
        .map(|(k, v)| json!({ k.as_str(): v }))
        .collect();
    m.insert("headers".into(), headers.into());
    Value::Object(m)
}

/// The event of one batch: records grouped under `topic-partition`, in the order read.
pub(crate) fn event(source: &EventSource, records: &[&KafkaRecord]) -> Value {
    let mut by_partition = Map::new();
    for r in records {
        let key = format!("{}-{}", r.topic, r.partition);
        let list = by_partition
            .entry(key)
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = list {
            list.push(record(r));
        }
    }
    let mut event = Map::new();
    event.insert("eventSource".into(), source.event_source.into());
    if let Some(arn) = &source.arn {
        event.insert("eventSourceArn".into(), arn.clone().into());
    }
    event.insert(
        "bootstrapServers".into(),
        source.bootstrap_servers.join(",").into(),
    );
    event.insert("records".into(), Value::Object(by_partition));
    Value::Object(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flint_connectors::kafka::TimestampType;

    fn rec(partition: i32, offset: i64, key: Option<&[u8]>) -> KafkaRecord {
        KafkaRecord {
            topic: "mytopic".into(),
            partition,
            offset,
            timestamp: 1545084650987,
            timestamp_type: TimestampType::CreateTime,
            key: key.map(<[u8]>::to_vec),
            value: Some(br#"{"key":"value"}"#.to_vec()),
            headers: vec![("headerKey".into(), b"headerValue".to_vec())],
        }
    }

    #[test]
    fn self_managed_events_have_no_arn_and_group_records_by_topic_partition() {
        let source = event_source(
            None,
            &json!({"SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["b-1:9092", "b-2:9092"]}}}),
        )
        .unwrap();
        let (a, b, c) = (
            rec(0, 15, Some(b"recordKey")),
            rec(1, 3, None),
            rec(0, 16, None),
        );
        let e = event(&source, &[&a, &b, &c]);
        assert_eq!(
            e,
            json!({
                "eventSource": "SelfManagedKafka",
                "bootstrapServers": "b-1:9092,b-2:9092",
                "records": {
                    "mytopic-0": [
                        {"topic": "mytopic", "partition": 0, "offset": 15,
                         "timestamp": 1545084650987_i64, "timestampType": "CREATE_TIME",
                         "key": "cmVjb3JkS2V5", "value": "eyJrZXkiOiJ2YWx1ZSJ9",
                         "headers": [{"headerKey": [104, 101, 97, 100, 101, 114, 86, 97, 108, 117, 101]}]},
                        {"topic": "mytopic", "partition": 0, "offset": 16,
                         "timestamp": 1545084650987_i64, "timestampType": "CREATE_TIME",
                         "value": "eyJrZXkiOiJ2YWx1ZSJ9",
                         "headers": [{"headerKey": [104, 101, 97, 100, 101, 114, 86, 97, 108, 117, 101]}]}
                    ],
                    "mytopic-1": [
                        {"topic": "mytopic", "partition": 1, "offset": 3,
                         "timestamp": 1545084650987_i64, "timestampType": "CREATE_TIME",
                         "value": "eyJrZXkiOiJ2YWx1ZSJ9",
                         "headers": [{"headerKey": [104, 101, 97, 100, 101, 114, 86, 97, 108, 117, 101]}]}
                    ]
                }
            })
        );
        let order: Vec<&String> = e["records"].as_object().unwrap().keys().collect();
        assert_eq!(order, ["mytopic-0", "mytopic-1"]);
    }

    #[test]
    fn msk_events_name_the_cluster() {
        let arn = "arn:aws:kafka:us-east-1:123456789012:cluster/c/abc";
        let source = EventSource {
            event_source: "aws:kafka",
            arn: Some(arn.into()),
            bootstrap_servers: vec!["h:9092".into()],
        };
        let r = rec(0, 0, None);
        let e = event(&source, &[&r]);
        assert_eq!(e["eventSource"], "aws:kafka");
        assert_eq!(e["eventSourceArn"], arn);
        assert_eq!(e["bootstrapServers"], "h:9092");
    }

    #[test]
    fn msk_clusters_without_configured_endpoints_say_how_to_name_them() {
        let err =
            event_source(Some("arn:aws:kafka:us-east-1:1:cluster/none/x"), &json!({})).unwrap_err();
        assert!(err.contains(ENDPOINTS_VAR), "{err}");
    }

    #[test]
    fn the_consumer_group_is_the_configured_one_or_the_mapping_uuid() {
        let c = json!({"SelfManagedKafkaEventSourceConfig": {"ConsumerGroupId": "grp"}});
        assert_eq!(group_id(&c, "uuid"), "grp");
        let c = json!({"AmazonManagedKafkaEventSourceConfig": {"ConsumerGroupId": "m"}});
        assert_eq!(group_id(&c, "uuid"), "m");
        assert_eq!(group_id(&json!({}), "uuid"), "uuid");
    }

    #[test]
    fn starting_position_latest_or_else_the_oldest_record() {
        assert_eq!(
            start_at(&json!({"StartingPosition": "LATEST"})),
            StartAt::Latest
        );
        assert_eq!(
            start_at(&json!({"StartingPosition": "TRIM_HORIZON"})),
            StartAt::Earliest
        );
    }
}
