//! `--create-other-resources`: the few resources of other services an application's functions
//! commonly need (SQS queues, SNS topics, S3 buckets, Kinesis streams) created at the AWS
//! endpoint configured as every AWS tool configures it (`AWS_ENDPOINT_URL[_SERVICE]`, profiles,
//! or `--aws-endpoint-url`): moto, LocalStack or real AWS. Creating is idempotent (an existing
//! queue, topic, bucket or stream of that name is used as it is); nothing is ever deleted.

use aws_config::SdkConfig;
use serde_json::Value;

use crate::error::{DeployError, Result};
use crate::intrinsics::Outputs;

pub struct OtherServices {
    config: SdkConfig,
    custom_endpoint: bool,
}

/// The resource types this creates.
pub const CREATABLE: &[&str] = &[
    "AWS::SQS::Queue",
    "AWS::SNS::Topic",
    "AWS::S3::Bucket",
    "AWS::Kinesis::Stream",
];

fn failed(kind: &str, e: impl std::fmt::Display) -> DeployError {
    // The SDK's Display of a service error is terse; its Debug names the code and message.
    DeployError::Template(format!("creating {kind}: {e}"))
}

impl OtherServices {
    pub fn new(config: SdkConfig, custom_endpoint: bool) -> OtherServices {
        OtherServices {
            config,
            custom_endpoint,
        }
    }

    /// Creates the resource `placeholder` names (its name, as a skipped one would have) and
    /// returns what references to it resolve to.
    pub async fn create(&self, kind: &str, props: &Value, mut out: Outputs) -> Result<Outputs> {
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match kind {
            "AWS::SQS::Queue" => {
                let name = text(&out.attributes["QueueName"]);
                let client = aws_sdk_sqs::Client::new(&self.config);
                let mut req = client.create_queue().queue_name(&name);
                for (k, v) in props.as_object().into_iter().flatten() {
                    if k != "QueueName" && k != "Tags" {
                        req = req.attributes(
                            aws_sdk_sqs::types::QueueAttributeName::from(k.as_str()),
                            text(v),
                        );
                    }
                }
                let created = req
                    .send()
                    .await
                    .map_err(|e| failed(kind, aws_sdk_sqs::error::DisplayErrorContext(e)))?;
                if let Some(url) = created.queue_url() {
                    out.attributes.insert("QueueUrl".into(), url.into());
                    out.reference = url.into();
                }
            }
            "AWS::SNS::Topic" => {
                let name = text(&out.attributes["TopicName"]);
                let client = aws_sdk_sns::Client::new(&self.config);
                let mut req = client.create_topic().name(&name);
                for key in ["FifoTopic", "ContentBasedDeduplication", "DisplayName"] {
                    if let Some(v) = props.get(key) {
                        req = req.attributes(key, text(v));
                    }
                }
                let created = req
                    .send()
                    .await
                    .map_err(|e| failed(kind, aws_sdk_sns::error::DisplayErrorContext(e)))?;
                if let Some(arn) = created.topic_arn() {
                    out.attributes.insert("TopicArn".into(), arn.into());
                    out.reference = arn.into();
                }
            }
            "AWS::S3::Bucket" => {
                let name = text(&out.reference);
                let conf = aws_sdk_s3::config::Builder::from(&self.config)
                    .force_path_style(self.custom_endpoint)
                    .build();
                let client = aws_sdk_s3::Client::from_conf(conf);
                let mut req = client.create_bucket().bucket(&name);
                let region = self.config.region().map(|r| r.to_string());
                if let Some(r) = region.filter(|r| r != "us-east-1") {
                    req = req.create_bucket_configuration(
                        aws_sdk_s3::types::CreateBucketConfiguration::builder()
                            .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                                r.as_str(),
                            ))
                            .build(),
                    );
                }
                if let Err(e) = req.send().await {
                    let owned = e
                        .as_service_error()
                        .is_some_and(|s| s.is_bucket_already_owned_by_you());
                    if !owned {
                        return Err(failed(kind, aws_sdk_s3::error::DisplayErrorContext(e)));
                    }
                }
            }
            "AWS::Kinesis::Stream" => {
                let name = text(&out.reference);
                let client = aws_sdk_kinesis::Client::new(&self.config);
                let shards = props
                    .get("ShardCount")
                    .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
                    .unwrap_or(1);
                let shards = i32::try_from(shards).unwrap_or(1);
                if let Err(e) = client
                    .create_stream()
                    .stream_name(&name)
                    .shard_count(shards)
                    .send()
                    .await
                {
                    let exists = e
                        .as_service_error()
                        .is_some_and(|s| s.is_resource_in_use_exception());
                    if !exists {
                        return Err(failed(kind, aws_sdk_kinesis::error::DisplayErrorContext(e)));
                    }
                }
            }
            _ => {}
        }
        Ok(out)
    }
}
