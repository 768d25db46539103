//! An AMQP 0-9-1 consumer for RabbitMQ event source mappings (`lapin`): one channel with a
//! prefetch of one batch, messages acknowledged after the function succeeded and rejected
//! back onto the queue when it failed. Messages come out with their properties already in the
//! JSON shape Lambda's RabbitMQ events use (`basicProperties`), which is how AWS's Java AMQP
//! client renders them: long strings as `{"bytes": [...]}`, timestamps as Java's medium date.

use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use serde_json::{json, Map, Value};

use crate::batch::{gather, Limits};

/// Why the consumer could not connect or went away.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("AMQP: {0}")]
    Client(#[from] lapin::Error),
    /// The broker cancelled the consumer (queue deleted) or the connection closed.
    #[error("AMQP: the consumer of queue {0} was cancelled")]
    Cancelled(String),
}

/// Where to consume from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpSettings {
    /// `amqp[s]://host:port` of the broker (no credentials, no vhost).
    pub endpoint: String,
    pub virtual_host: String,
    pub username: String,
    pub password: String,
    pub queue: String,
    /// Unacknowledged messages the broker may push at once (one batch).
    pub prefetch: u16,
}

impl AmqpSettings {
    /// The AMQP URI lapin connects with (user, password and vhost percent-encoded).
    pub fn uri(&self) -> String {
        let (scheme, rest) = match self.endpoint.split_once("://") {
            Some((s, r)) => (s, r),
            None => ("amqp", self.endpoint.as_str()),
        };
        let host = rest.trim_end_matches('/');
        format!(
            "{scheme}://{}:{}@{host}/{}",
            encode(&self.username),
            encode(&self.password),
            encode(&self.virtual_host)
        )
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One delivered message.
#[derive(Debug, Clone, PartialEq)]
pub struct AmqpMessage {
    pub delivery_tag: u64,
    pub redelivered: bool,
    /// `basicProperties` as Lambda's event carries them.
    pub basic_properties: Value,
    pub data: Vec<u8>,
}

impl AmqpMessage {
    /// Bytes this message adds to an invoke payload, roughly (base64 grows data by 4/3).
    pub fn payload_size(&self) -> usize {
        self.data.len().div_ceil(3) * 4 + self.basic_properties.to_string().len() + 64
    }
}

/// A consumer on one queue of one virtual host.
pub struct AmqpConsumer {
    _connection: Connection,
    channel: Channel,
    consumer: tokio::sync::Mutex<Consumer>,
    queue: String,
}

impl AmqpConsumer {
    pub async fn connect(settings: &AmqpSettings, tag: &str) -> Result<Self, AmqpError> {
        let connection =
            Connection::connect(&settings.uri(), ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(settings.prefetch.max(1), BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                settings.queue.as_str().into(),
                tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(Self {
            _connection: connection,
            channel,
            consumer: tokio::sync::Mutex::new(consumer),
            queue: settings.queue.clone(),
        })
    }

    /// One batch (see [`crate::batch::gather`]); a message that would overflow
    /// `limits.bytes` is kept in `pending` for the next batch.
    pub async fn next_batch(
        &self,
        pending: &mut Option<AmqpMessage>,
        limits: Limits,
    ) -> Result<Vec<AmqpMessage>, AmqpError> {
        gather(pending, limits, AmqpMessage::payload_size, || self.recv()).await
    }

    async fn recv(&self) -> Result<AmqpMessage, AmqpError> {
        // Cancel-safe: a delivery is taken from the stream only when it is returned.
        match self.consumer.lock().await.next().await {
            Some(Ok(d)) => Ok(AmqpMessage {
                delivery_tag: d.delivery_tag,
                redelivered: d.redelivered,
                basic_properties: basic_properties(&d.properties, d.data.len()),
                data: d.data,
            }),
            Some(Err(e)) => Err(e.into()),
            None => Err(AmqpError::Cancelled(self.queue.clone())),
        }
    }

    /// Acknowledges every message of a batch (they were delivered in order on this channel).
    pub async fn ack(&self, batch: &[AmqpMessage]) -> Result<(), AmqpError> {
        for m in batch {
            self.channel
                .basic_ack(m.delivery_tag, BasicAckOptions::default())
                .await?;
        }
        Ok(())
    }

    /// Puts every message of a batch back on the queue (redelivered, flagged `redelivered`).
    pub async fn requeue(&self, batch: &[AmqpMessage]) -> Result<(), AmqpError> {
        for m in batch {
            self.channel
                .basic_nack(
                    m.delivery_tag,
                    BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    },
                )
                .await?;
        }
        Ok(())
    }
}

/// `basicProperties` of Lambda's RabbitMQ event: every member present, `null` when unset.
pub fn basic_properties(p: &BasicProperties, body_size: usize) -> Value {
    let s = |v: &Option<lapin::types::ShortString>| match v {
        Some(s) => Value::String(s.as_str().to_string()),
        None => Value::Null,
    };
    json!({
        "contentType": s(p.content_type()),
        "contentEncoding": s(p.content_encoding()),
        "headers": p.headers().as_ref().map_or(Value::Null, table),
        "deliveryMode": p.delivery_mode().map_or(Value::Null, Value::from),
        "priority": p.priority().map_or(Value::Null, Value::from),
        "correlationId": s(p.correlation_id()),
        "replyTo": s(p.reply_to()),
        "expiration": s(p.expiration()),
        "messageId": s(p.message_id()),
        "timestamp": p.timestamp().map_or(Value::Null, |t| Value::String(java_medium_date(t))),
        "type": s(p.kind()),
        "userId": s(p.user_id()),
        "appId": s(p.app_id()),
        "clusterId": s(p.cluster_id()),
        "bodySize": body_size,
    })
}

fn table(t: &FieldTable) -> Value {
    let mut m = Map::new();
    for (k, v) in t {
        m.insert(k.as_str().to_string(), value(v));
    }
    Value::Object(m)
}

fn bytes(b: &[u8]) -> Value {
    json!({ "bytes": b })
}

fn value(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => Value::from(*b),
        AMQPValue::ShortShortInt(n) => Value::from(*n),
        AMQPValue::ShortShortUInt(n) => Value::from(*n),
        AMQPValue::ShortInt(n) => Value::from(*n),
        AMQPValue::ShortUInt(n) => Value::from(*n),
        AMQPValue::LongInt(n) => Value::from(*n),
        AMQPValue::LongUInt(n) => Value::from(*n),
        AMQPValue::LongLongInt(n) => Value::from(*n),
        AMQPValue::Float(f) => Value::from(*f),
        AMQPValue::Double(f) => Value::from(*f),
        AMQPValue::DecimalValue(d) => {
            Value::from(f64::from(d.value) / 10f64.powi(i32::from(d.scale)))
        }
        AMQPValue::ShortString(s) => Value::String(s.as_str().to_string()),
        AMQPValue::LongString(s) => bytes(s.as_bytes()),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(value).collect()),
        AMQPValue::Timestamp(t) => Value::String(java_medium_date(*t)),
        AMQPValue::FieldTable(t) => table(t),
        AMQPValue::ByteArray(b) => bytes(b.as_slice()),
        AMQPValue::Void => Value::Null,
    }
}

/// An AMQP timestamp (seconds) as Java's default medium date-time in UTC, which is how the
/// events Lambda sends render it: `Jan 1, 1970, 12:33:41 AM`.
pub fn java_medium_date(seconds: u64) -> String {
    let secs = i64::try_from(seconds).unwrap_or(i64::MAX);
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(t) => t.format("%b %-d, %Y, %-I:%M:%S %p").to_string(),
        None => seconds.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_encodes_the_credentials_and_the_virtual_host() {
        let s = AmqpSettings {
            endpoint: "amqps://b-1.mq.us-east-1.amazonaws.com:5671".into(),
            virtual_host: "/".into(),
            username: "us er".into(),
            password: "p@ss:w/rd".into(),
            queue: "q".into(),
            prefetch: 10,
        };
        assert_eq!(
            s.uri(),
            "amqps://us%20er:p%40ss%3Aw%2Frd@b-1.mq.us-east-1.amazonaws.com:5671/%2F"
        );
    }

    #[test]
    fn timestamps_read_like_java_medium_dates() {
        assert_eq!(java_medium_date(2021), "Jan 1, 1970, 12:33:41 AM");
        assert_eq!(java_medium_date(1_700_000_000), "Nov 14, 2023, 10:13:20 PM");
    }

    #[test]
    fn properties_render_long_strings_as_bytes_and_absent_ones_as_null() {
        let mut headers = FieldTable::default();
        headers.insert("header1".into(), AMQPValue::LongString("value1".into()));
        headers.insert("numberInHeader".into(), AMQPValue::LongInt(10));
        let p = BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_delivery_mode(1)
            .with_priority(34)
            .with_expiration("60000".into())
            .with_timestamp(2021)
            .with_headers(headers);
        let v = basic_properties(&p, 80);
        assert_eq!(
            v,
            json!({
                "contentType": "text/plain",
                "contentEncoding": null,
                "headers": {
                    "header1": {"bytes": [118, 97, 108, 117, 101, 49]},
                    "numberInHeader": 10
                },
                "deliveryMode": 1,
                "priority": 34,
                "correlationId": null,
                "replyTo": null,
                "expiration": "60000",
                "messageId": null,
                "timestamp": "Jan 1, 1970, 12:33:41 AM",
                "type": null,
                "userId": null,
                "appId": null,
                "clusterId": null,
                "bodySize": 80
            })
        );
    }
}
