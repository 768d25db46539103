//! Amazon MQ event sources (`arn:aws:mq:…`) on RabbitMQ brokers: a consumer on the mapping's
//! queue (`Queues`) in its virtual host (`VIRTUAL_HOST`, else `/`), logged in with the
//! `BASIC_AUTH` secret. A batch is acknowledged once the function returned; when it failed the
//! messages go back on the queue (nack with requeue) and come again flagged `redelivered`.
//! ActiveMQ brokers are not polled yet.

use flint_connectors::amqp::{AmqpConsumer, AmqpMessage, AmqpSettings};
use serde_json::{json, Value};

use super::brokers::{
    access, backoff, batch_limits, credentials, deliver, endpoints_for, pause, secret_json,
    Filters, Outcome, Source, CONNECTION_PROBLEM, ENDPOINTS_VAR,
};
use super::Mapping;
use base64::Engine as _;

/// Polls until the mapping stops; reconnects (with back-off) whenever the broker goes away.
pub(crate) async fn run(mapping: Mapping) {
    let mut failures = 0;
    loop {
        let problem = match settings(&mapping).await {
            Ok(settings) => match consume(&mapping, &settings, &mut failures).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(mapping = %mapping.uuid(), "RabbitMQ: {e}");
                    CONNECTION_PROBLEM.to_string()
                }
            },
            Err(e) => {
                tracing::warn!(mapping = %mapping.uuid(), "RabbitMQ: {e}");
                format!("PROBLEM: {e}")
            }
        };
        mapping.report_problem(&problem);
        if !pause(&mapping, backoff(failures)).await {
            return;
        }
        failures += 1;
    }
}

/// Reads batches until the mapping stops (`Ok`) or the connection fails.
async fn consume(
    mapping: &Mapping,
    settings: &AmqpSettings,
    failures: &mut u32,
) -> Result<(), flint_connectors::amqp::AmqpError> {
    let limits = batch_limits(mapping);
    let filters = Filters::of(mapping);
    let arn = mapping.spec.event_source_arn.clone().unwrap_or_default();
    let consumer = AmqpConsumer::connect(settings, &format!("flint-{}", mapping.uuid())).await?;
    let mut pending = None;
    loop {
        let batch = tokio::select! {
            _ = mapping.stopped() => return Ok(()),
            r = consumer.next_batch(&mut pending, limits) => r?,
        };
        *failures = 0;
        let kept: Vec<&AmqpMessage> = batch
            .iter()
            .filter(|m| filters.keep(Source::RabbitMq, &message(m)))
            .collect();
        if kept.is_empty() {
            consumer.ack(&batch).await?;
            continue;
        }
        let event = event(&arn, &settings.queue, &settings.virtual_host, &kept);
        match deliver(mapping, &event).await {
            Outcome::Done => consumer.ack(&batch).await?,
            Outcome::Retry => {
                consumer.requeue(&batch).await?;
                if !pause(mapping, backoff(0)).await {
                    return Ok(());
                }
            }
        }
    }
}

/// The broker's endpoint, the queue, the virtual host and the credentials of the mapping.
async fn settings(mapping: &Mapping) -> Result<AmqpSettings, String> {
    let config = mapping.config();
    let arn = mapping
        .spec
        .event_source_arn
        .as_deref()
        .ok_or("the mapping names no broker")?;
    let endpoint = endpoints_for(arn)
        .and_then(|e| e.into_iter().next())
        .ok_or_else(|| {
            format!(
                "Flint does not look up the endpoints of Amazon MQ broker {arn}: name its AMQP \
                 endpoint in {ENDPOINTS_VAR} ({arn}=amqp://host:5672)"
            )
        })?;
    if !(endpoint.starts_with("amqp://") || endpoint.starts_with("amqps://")) {
        return Err(format!(
            "Flint polls RabbitMQ brokers only (amqp:// or amqps:// endpoints), not {endpoint}"
        ));
    }
    let queue = config
        .get("Queues")
        .and_then(Value::as_array)
        .and_then(|q| q.first())
        .and_then(Value::as_str)
        .ok_or("the mapping names no queue")?
        .to_string();
    let secret_arn = access(config, "BASIC_AUTH").ok_or("the mapping has no BASIC_AUTH secret")?;
    let (username, password) = credentials(&secret_json(mapping, &secret_arn).await?, &secret_arn)?;
    let limits = batch_limits(mapping);
    Ok(AmqpSettings {
        endpoint,
        virtual_host: access(config, "VIRTUAL_HOST").unwrap_or_else(|| "/".into()),
        username,
        password,
        queue,
        prefetch: u16::try_from(limits.items).unwrap_or(u16::MAX),
    })
}

/// One message as Lambda's RabbitMQ event shows it (the shape filters match too).
pub(crate) fn message(m: &AmqpMessage) -> Value {
    json!({
        "basicProperties": m.basic_properties,
        "redelivered": m.redelivered,
        "data": base64::engine::general_purpose::STANDARD.encode(&m.data),
    })
}

/// The event of one batch: `rmqMessagesByQueue` under `queue::virtual-host`.
pub(crate) fn event(
    arn: &str,
    queue: &str,
    virtual_host: &str,
    messages: &[&AmqpMessage],
) -> Value {
    let list: Vec<Value> = messages.iter().map(|m| message(m)).collect();
    json!({
        "eventSource": "aws:rmq",
        "eventSourceArn": arn,
        "rmqMessagesByQueue": { format!("{queue}::{virtual_host}"): list },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_key_messages_by_queue_and_virtual_host() {
        let m = AmqpMessage {
            delivery_tag: 1,
            redelivered: false,
            basic_properties: json!({"contentType": "text/plain", "bodySize": 5}),
            data: b"hello".to_vec(),
        };
        let arn =
            "arn:aws:mq:us-west-2:111122223333:broker:test:b-9bcfa592-423a-4942-879d-eb284b418fc8";
        assert_eq!(
            event(arn, "test", "/", &[&m]),
            json!({
                "eventSource": "aws:rmq",
                "eventSourceArn": arn,
                "rmqMessagesByQueue": {
                    "test::/": [{
                        "basicProperties": {"contentType": "text/plain", "bodySize": 5},
                        "redelivered": false,
                        "data": "aGVsbG8="
                    }]
                }
            })
        );
    }
}
