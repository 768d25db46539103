//! A Kafka consumer for event source mappings: one consumer-group member (librdkafka through
//! `rdkafka`) that reads batches from its topics and commits offsets only when told to, after
//! the function succeeded. librdkafka does the group protocol (join, rebalance, committed
//! offsets), SASL (PLAIN, SCRAM) and TLS, which no pure-Rust client does in full.

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, Timestamp, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::batch::{gather, Limits};

/// Why the consumer could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// librdkafka refused the configuration or the broker answered with an error.
    #[error("Kafka: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    /// The blocking commit task could not finish (the runtime is shutting down).
    #[error("Kafka commit task failed: {0}")]
    Join(String),
    #[error("Kafka consumer closed")]
    Closed,
}

/// Where a group without committed offsets starts (`StartingPosition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// `TRIM_HORIZON`: the oldest record kept.
    Earliest,
    /// `LATEST`: only records produced from now on.
    Latest,
}

/// How the consumer authenticates (`SourceAccessConfigurations`, secrets already read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaAuth {
    None,
    /// `BASIC_AUTH`: SASL/PLAIN.
    Plain {
        username: String,
        password: String,
    },
    /// `SASL_SCRAM_256_AUTH` / `SASL_SCRAM_512_AUTH` (`mechanism` is librdkafka's name).
    Scram {
        mechanism: &'static str,
        username: String,
        password: String,
    },
}

/// TLS settings; `None` in [`KafkaSettings::tls`] means plaintext.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaTls {
    /// `SERVER_ROOT_CA_CERTIFICATE`: PEM of the CA that signed the brokers' certificates.
    pub ca_pem: Option<String>,
    /// `CLIENT_CERTIFICATE_TLS_AUTH`: the client's certificate chain and key (PEM).
    pub client_cert_pem: Option<String>,
    pub client_key_pem: Option<String>,
    pub client_key_password: Option<String>,
}

/// Everything a mapping's consumer needs.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub bootstrap_servers: Vec<String>,
    pub group_id: String,
    pub topics: Vec<String>,
    pub start_at: StartAt,
    pub auth: KafkaAuth,
    pub tls: Option<KafkaTls>,
}

impl KafkaSettings {
    /// The librdkafka properties these settings stand for.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap_servers.join(","))
            .set("group.id", &self.group_id)
            .set("client.id", format!("flint-{}", self.group_id))
            // Offsets are committed by hand, after the function succeeded.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.offset.reset",
                match self.start_at {
                    StartAt::Earliest => "earliest",
                    StartAt::Latest => "latest",
                },
            )
            .set("enable.partition.eof", "false")
            // A member that vanished (Flint killed) leaves the group within 10 s, not librdkafka's
            // 45 s; heartbeats come from librdkafka's own thread, so a long invoke is no risk.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("log_level", "4");
        let sasl = !matches!(self.auth, KafkaAuth::None);
        let protocol = match (sasl, self.tls.is_some()) {
            (false, false) => "plaintext",
            (false, true) => "ssl",
            (true, false) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        };
        c.set("security.protocol", protocol);
        match &self.auth {
            KafkaAuth::None => {}
            KafkaAuth::Plain { username, password } => {
                c.set("sasl.mechanisms", "PLAIN")
                    .set("sasl.username", username)
                    .set("sasl.password", password);
            }
            KafkaAuth::Scram {
                mechanism,
                username,
                password,
            } => {
                c.set("sasl.mechanisms", *mechanism)
                    .set("sasl.username", username)
                    .set("sasl.password", password);
            }
        }
        if let Some(tls) = &self.tls {
            if let Some(ca) = &tls.ca_pem {
                c.set("ssl.ca.pem", ca);
            }
            if let Some(cert) = &tls.client_cert_pem {
                c.set("ssl.certificate.pem", cert);
            }
            if let Some(key) = &tls.client_key_pem {
                c.set("ssl.key.pem", key);
            }
            if let Some(pw) = &tls.client_key_password {
                c.set("ssl.key.password", pw);
            }
        }
        c
    }
}

/// How the broker stamped a record's time (Kafka's names, as Lambda reports them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
    NoTimestampType,
}

impl TimestampType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateTime => "CREATE_TIME",
            Self::LogAppendTime => "LOG_APPEND_TIME",
            Self::NoTimestampType => "NO_TIMESTAMP_TYPE",
        }
    }
}

/// One record as read, owned (the consumer's buffer is released at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch (-1 when the broker gave none).
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// In the order the producer wrote them; a header may repeat.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl KafkaRecord {
    /// Bytes this record adds to an invoke payload, roughly (base64 grows data by 4/3).
    pub fn payload_size(&self) -> usize {
        let data = self.key.as_ref().map_or(0, Vec::len) + self.value.as_ref().map_or(0, Vec::len);
        let headers: usize = self
            .headers
            .iter()
            // A header's value is rendered as an array of decimal bytes: up to 4 chars each.
            .map(|(k, v)| k.len() + 8 + v.len() * 4)
            .sum();
        data.div_ceil(3) * 4 + headers + self.topic.len() + 160
    }
}

/// One member of the mapping's consumer group.
pub struct KafkaConsumer {
    /// Always `Some` until dropped (taken by `Drop`, which closes it off the async workers).
    inner: Option<Arc<StreamConsumer>>,
}

impl KafkaConsumer {
    /// Creates the consumer and subscribes it to the topics; the group join happens on the
    /// first read.
    pub fn connect(settings: &KafkaSettings) -> Result<Self, KafkaError> {
        let consumer: StreamConsumer = settings.client_config().create()?;
        let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        Ok(Self {
            inner: Some(Arc::new(consumer)),
        })
    }

    /// One batch (see [`crate::batch::gather`]); a record that would overflow `limits.bytes`
    /// is kept in `pending` for the next batch.
    pub async fn next_batch(
        &self,
        pending: &mut Option<KafkaRecord>,
        limits: Limits,
    ) -> Result<Vec<KafkaRecord>, KafkaError> {
        gather(pending, limits, KafkaRecord::payload_size, || self.recv()).await
    }

    async fn recv(&self) -> Result<KafkaRecord, KafkaError> {
        let Some(inner) = &self.inner else {
            return Err(KafkaError::Closed);
        };
        let m = inner.recv().await?;
        let (timestamp, timestamp_type) = match m.timestamp() {
            Timestamp::NotAvailable => (-1, TimestampType::NoTimestampType),
            Timestamp::CreateTime(t) => (t, TimestampType::CreateTime),
            Timestamp::LogAppendTime(t) => (t, TimestampType::LogAppendTime),
        };
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(KafkaRecord {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            timestamp,
            timestamp_type,
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers,
        })
    }

    /// Commits, for every partition in `records`, the offset after its last record.
    pub async fn commit(&self, records: &[KafkaRecord]) -> Result<(), KafkaError> {
        let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for r in records {
            let e = next.entry((r.topic.as_str(), r.partition)).or_default();
            *e = (*e).max(r.offset + 1);
        }
        if next.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
        }
        let Some(inner) = self.inner.clone() else {
            return Err(KafkaError::Closed);
        };
        // A synchronous commit blocks in librdkafka: keep it off the async workers.
        tokio::task::spawn_blocking(move || inner.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| KafkaError::Join(e.to_string()))??;
        Ok(())
    }
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        // librdkafka's close leaves the group and waits for the broker: keep that wait off the
        // async workers when there is a runtime to hand it to.
        if let (Some(inner), Ok(rt)) = (self.inner.take(), tokio::runtime::Handle::try_current()) {
            rt.spawn_blocking(move || drop(inner));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(auth: KafkaAuth, tls: Option<KafkaTls>) -> KafkaSettings {
        KafkaSettings {
            bootstrap_servers: vec!["a:9092".into(), "b:9092".into()],
            group_id: "g".into(),
            topics: vec!["t".into()],
            start_at: StartAt::Latest,
            auth,
            tls,
        }
    }

    #[test]
    fn plaintext_without_auth_commits_by_hand() {
        let c = settings(KafkaAuth::None, None).client_config();
        assert_eq!(c.get("bootstrap.servers"), Some("a:9092,b:9092"));
        assert_eq!(c.get("security.protocol"), Some("plaintext"));
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("auto.offset.reset"), Some("latest"));
    }

    #[test]
    fn scram_over_tls_is_sasl_ssl() {
        let auth = KafkaAuth::Scram {
            mechanism: "SCRAM-SHA-512",
            username: "u".into(),
            password: "p".into(),
        };
        let tls = KafkaTls {
            ca_pem: Some("PEM".into()),
            ..Default::default()
        };
        let c = settings(auth, Some(tls)).client_config();
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("ssl.ca.pem"), Some("PEM"));
    }

    #[test]
    fn basic_auth_is_sasl_plain() {
        let auth = KafkaAuth::Plain {
            username: "u".into(),
            password: "p".into(),
        };
        let c = settings(auth, None).client_config();
        assert_eq!(c.get("security.protocol"), Some("sasl_plaintext"));
        assert_eq!(c.get("sasl.mechanisms"), Some("PLAIN"));
        assert_eq!(c.get("sasl.username"), Some("u"));
    }
}
