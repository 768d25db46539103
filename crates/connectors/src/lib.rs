//! Flint's outbound connection to the rest of AWS: SQS, SNS, EventBridge and S3 through the AWS
//! SDK for Rust, configured the way every AWS tool is — `AWS_ENDPOINT_URL` and the per-service
//! `AWS_ENDPOINT_URL_<SERVICE>` variables, `AWS_PROFILE` and the shared config files, the
//! credential chain — plus one explicit override (`flint serve --aws-endpoint-url`). Unset, the
//! calls go to real AWS. Flint never emulates these services; it only talks to them.
//!
//! And STS, for the execution role's session each environment runs with (`sts`).
//!
//! Also the brokers event source mappings read from: Kafka (`kafka`, librdkafka) and RabbitMQ
//! (`amqp`, lapin), with their credentials from Secrets Manager (`secret_string`).
//!
//! Kept in its own crate: the SDK crates are slow to compile.

#![forbid(unsafe_code)]

pub mod amqp;
mod arn;
pub mod batch;
mod dynamodb_streams;
pub mod kafka;
mod kinesis;
mod probe;
pub mod s3;
pub mod sqs;
mod streams;
mod sts;
mod vpc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use parking_lot::Mutex;
use std::collections::HashMap;

pub use arn::{Target, TargetArn};
pub use dynamodb_streams::DynamoDbStreamRecord;
pub use kinesis::KinesisRecord;
pub use probe::{SourceProblem, SourceService};
pub use s3::GetObjectError;
pub use streams::{IteratorStart, Page, Shard, StreamError};
pub use sts::RoleSession;
pub use vpc::VpcProblem;

/// Why a message could not be delivered. The caller logs it and keeps the event for retry.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// `{0}` is not an ARN Flint can deliver to.
    #[error("{0} is not an ARN of an SQS queue, SNS topic, EventBridge event bus or S3 bucket")]
    UnsupportedTarget(String),
    /// A call to the service failed (unreachable, missing resource, refused).
    #[error("{service} {operation} for {target} failed: {message}")]
    Call {
        service: &'static str,
        operation: &'static str,
        target: String,
        message: String,
    },
}

/// Where the SDK clients find their services and credentials.
#[derive(Debug, Clone, Default)]
pub struct ConnectorOptions {
    /// `--aws-endpoint-url`: every service at this URL (over the environment's endpoints).
    pub endpoint_url: Option<String>,
}

/// One message attribute (SQS `MessageAttributes`, SNS `MessageAttributes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    /// `String` or `Number`.
    pub data_type: &'static str,
    pub value: String,
}

impl Attribute {
    pub fn string(name: &str, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            data_type: "String",
            value: value.into(),
        }
    }
    pub fn number(name: &str, value: impl ToString) -> Self {
        Self {
            name: name.into(),
            data_type: "Number",
            value: value.to_string(),
        }
    }
}

/// The outbound clients. Cheap to share behind an `Arc`; one HTTP connection pool for all.
pub struct Connectors {
    config: SdkConfig,
    /// An endpoint was configured (not real AWS): S3 is then addressed path-style, as
    /// emulators on an IP address need.
    custom_endpoint: bool,
    /// `--aws-endpoint-url`, to name where a service did not answer.
    endpoint_url: Option<String>,
    queue_urls: Mutex<HashMap<String, String>>,
}

/// The region when neither the ARN nor the configuration names one (S3 bucket ARNs).
const FALLBACK_REGION: &str = "us-east-1";

impl Connectors {
    /// Loads the SDK configuration from the environment and the shared files, with `options`
    /// over it.
    pub async fn load(options: ConnectorOptions) -> Self {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
        if let Some(url) = &options.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let config = loader.load().await;
        let custom_endpoint = options.endpoint_url.is_some()
            || std::env::vars().any(|(k, _)| k.starts_with("AWS_ENDPOINT_URL"));
        Self {
            config,
            custom_endpoint,
            endpoint_url: options.endpoint_url,
            queue_urls: Mutex::new(HashMap::new()),
        }
    }

    fn region(&self, arn_region: &str) -> Region {
        if !arn_region.is_empty() {
            return Region::new(arn_region.to_string());
        }
        self.config
            .region()
            .cloned()
            .unwrap_or_else(|| Region::new(FALLBACK_REGION))
    }

    fn sqs(&self, region: &str) -> aws_sdk_sqs::Client {
        let conf = aws_sdk_sqs::config::Builder::from(&self.config)
            .region(self.region(region))
            .build();
        aws_sdk_sqs::Client::from_conf(conf)
    }

    /// The URL of the queue an ARN names (asked once, then remembered).
    async fn queue_url(&self, queue: &TargetArn) -> Result<String, ConnectorError> {
        if let Some(url) = self.queue_urls.lock().get(&queue.arn) {
            return Ok(url.clone());
        }
        let out = self
            .sqs(&queue.region)
            .get_queue_url()
            .queue_name(&queue.resource)
            .queue_owner_aws_account_id(&queue.account)
            .send()
            .await
            .map_err(|e| call_error("SQS", "GetQueueUrl", &queue.arn, e))?;
        let url = out.queue_url.ok_or_else(|| ConnectorError::Call {
            service: "SQS",
            operation: "GetQueueUrl",
            target: queue.arn.clone(),
            message: "no QueueUrl in the answer".into(),
        })?;
        self.queue_urls
            .lock()
            .insert(queue.arn.clone(), url.clone());
        Ok(url)
    }

    /// SendMessage to the queue `queue` (an ARN).
    pub async fn sqs_send(
        &self,
        queue: &TargetArn,
        body: &str,
        attributes: &[Attribute],
        trace_header: Option<&str>,
    ) -> Result<(), ConnectorError> {
        use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeNameForSends};
        let url = self.queue_url(queue).await?;
        let mut send = self
            .sqs(&queue.region)
            .send_message()
            .queue_url(url)
            .message_body(body);
        for a in attributes {
            let value = MessageAttributeValue::builder()
                .data_type(a.data_type)
                .string_value(&a.value)
                .build()
                .map_err(|e| call_error("SQS", "SendMessage", &queue.arn, e))?;
            send = send.message_attributes(&a.name, value);
        }
        if let Some(trace) = trace_header {
            let value = aws_sdk_sqs::types::MessageSystemAttributeValue::builder()
                .data_type("String")
                .string_value(trace)
                .build()
                .map_err(|e| call_error("SQS", "SendMessage", &queue.arn, e))?;
            send = send.message_system_attributes(
                MessageSystemAttributeNameForSends::AwsTraceHeader,
                value,
            );
        }
        send.send().await.map_err(|e| {
            // A queue deleted and re-created gets a new URL: ask again next time.
            self.queue_urls.lock().remove(&queue.arn);
            call_error("SQS", "SendMessage", &queue.arn, e)
        })?;
        Ok(())
    }

    /// Publish to the topic `topic` (an ARN).
    pub async fn sns_publish(
        &self,
        topic: &TargetArn,
        message: &str,
        attributes: &[Attribute],
    ) -> Result<(), ConnectorError> {
        use aws_sdk_sns::types::MessageAttributeValue;
        let conf = aws_sdk_sns::config::Builder::from(&self.config)
            .region(self.region(&topic.region))
            .build();
        let mut publish = aws_sdk_sns::Client::from_conf(conf)
            .publish()
            .topic_arn(&topic.arn)
            .message(message);
        for a in attributes {
            let value = MessageAttributeValue::builder()
                .data_type(a.data_type)
                .string_value(&a.value)
                .build()
                .map_err(|e| call_error("SNS", "Publish", &topic.arn, e))?;
            publish = publish.message_attributes(&a.name, value);
        }
        publish
            .send()
            .await
            .map_err(|e| call_error("SNS", "Publish", &topic.arn, e))?;
        Ok(())
    }

    /// PutEvents of one event onto the bus `bus` (an ARN).
    pub async fn put_event(
        &self,
        bus: &TargetArn,
        source: &str,
        detail_type: &str,
        detail: &str,
        resources: &[String],
    ) -> Result<(), ConnectorError> {
        use aws_sdk_eventbridge::types::PutEventsRequestEntry;
        let conf = aws_sdk_eventbridge::config::Builder::from(&self.config)
            .region(self.region(&bus.region))
            .build();
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&bus.arn)
            .source(source)
            .detail_type(detail_type)
            .detail(detail)
            .set_resources(Some(resources.to_vec()))
            .build();
        let out = aws_sdk_eventbridge::Client::from_conf(conf)
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| call_error("EventBridge", "PutEvents", &bus.arn, e))?;
        if out.failed_entry_count > 0 {
            let why = out
                .entries
                .unwrap_or_default()
                .into_iter()
                .find_map(|e| e.error_message.or(e.error_code))
                .unwrap_or_else(|| "the entry was refused".into());
            return Err(ConnectorError::Call {
                service: "EventBridge",
                operation: "PutEvents",
                target: bus.arn.clone(),
                message: why,
            });
        }
        Ok(())
    }

    /// PutObject `key` into the bucket `bucket` (an ARN).
    pub async fn s3_put(
        &self,
        bucket: &TargetArn,
        key: &str,
        body: Vec<u8>,
    ) -> Result<(), ConnectorError> {
        let conf = aws_sdk_s3::config::Builder::from(&self.config)
            .region(self.region(&bucket.region))
            .force_path_style(self.custom_endpoint)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
            .put_object()
            .bucket(&bucket.resource)
            .key(key)
            .content_type("application/json")
            .body(body.into())
            .send()
            .await
            .map_err(|e| call_error("S3", "PutObject", &bucket.arn, e))?;
        Ok(())
    }

    /// The `SecretString` of a Secrets Manager secret (`arn`): how event source mappings get
    /// broker credentials (`SourceAccessConfigurations` name secrets, as on AWS).
    pub async fn secret_string(&self, arn: &str) -> Result<String, ConnectorError> {
        // arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME
        let region = arn.split(':').nth(3).unwrap_or_default();
        let conf = aws_sdk_secretsmanager::config::Builder::from(&self.config)
            .region(self.region(region))
            .build();
        let out = aws_sdk_secretsmanager::Client::from_conf(conf)
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| call_error("Secrets Manager", "GetSecretValue", arn, e))?;
        out.secret_string.ok_or_else(|| ConnectorError::Call {
            service: "Secrets Manager",
            operation: "GetSecretValue",
            target: arn.to_string(),
            message: "the secret has no SecretString".into(),
        })
    }
}

/// An error and its sources, joined by ": ".
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// The whole error chain, which for SDK errors holds the service's own message.
fn call_error(
    service: &'static str,
    operation: &'static str,
    target: &str,
    e: impl std::error::Error,
) -> ConnectorError {
    let message = error_chain(&e);
    ConnectorError::Call {
        service,
        operation,
        target: target.to_string(),
        message,
    }
}
