//! Whether the queue or stream an event source mapping names exists, asked of the service when
//! the mapping is created, as Lambda asks before it accepts one: SQS GetQueueUrl, Kinesis
//! DescribeStreamSummary, DynamoDB Streams DescribeStream.

use std::time::Duration;

use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};

use crate::streams::region_of;
use crate::{Connectors, TargetArn};

/// How long a check may take before the service counts as unreachable (the credential chain's
/// IMDS look-ups alone can take seconds where no credentials are configured).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The kinds of source a mapping's ARN can name that Flint can ask about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceService {
    Sqs,
    Kinesis,
    DynamoDbStreams,
}

impl SourceService {
    /// The service's name, and the suffix of its `AWS_ENDPOINT_URL_*` variable.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Self::Sqs => ("SQS", "SQS"),
            Self::Kinesis => ("Kinesis", "KINESIS"),
            Self::DynamoDbStreams => ("DynamoDB Streams", "DYNAMODB_STREAMS"),
        }
    }
}

/// Why a source cannot be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceProblem {
    /// The service answered that the queue or stream does not exist.
    #[error("{service} has no {arn}")]
    Missing { service: &'static str, arn: String },
    /// The service refused the call with an error of its own.
    #[error("{service} {operation}: {code}: {message}")]
    Refused {
        service: &'static str,
        operation: &'static str,
        code: String,
        message: String,
    },
    /// No answer: nothing listens at the endpoint, no credentials, a timeout.
    #[error("{service} at {endpoint} did not answer: {why}")]
    Unreachable {
        service: &'static str,
        endpoint: String,
        why: String,
    },
}

impl Connectors {
    /// Asks `service` whether the source `arn` names exists.
    pub async fn check_source(
        &self,
        service: SourceService,
        arn: &str,
    ) -> Result<(), SourceProblem> {
        let (name, _) = service.names();
        let call = async {
            match service {
                SourceService::Sqs => self.check_queue(arn).await,
                SourceService::Kinesis => {
                    let conf = aws_sdk_kinesis::config::Builder::from(&self.config)
                        .region(self.region(region_of(arn)))
                        .build();
                    let out = aws_sdk_kinesis::Client::from_conf(conf)
                        .describe_stream_summary()
                        .stream_arn(arn)
                        .send()
                        .await;
                    out.map(|_| ())
                        .map_err(|e| classify(e, "DescribeStreamSummary"))
                }
                SourceService::DynamoDbStreams => {
                    let conf = aws_sdk_dynamodbstreams::config::Builder::from(&self.config)
                        .region(self.region(region_of(arn)))
                        .build();
                    let out = aws_sdk_dynamodbstreams::Client::from_conf(conf)
                        .describe_stream()
                        .stream_arn(arn)
                        .limit(1)
                        .send()
                        .await;
                    out.map(|_| ()).map_err(|e| classify(e, "DescribeStream"))
                }
            }
        };
        within_probe_timeout(call).await.map_err(|a| match a {
            Answer::Service { code, .. } if is_missing(service, &code) => SourceProblem::Missing {
                service: name,
                arn: arn.to_string(),
            },
            Answer::Service {
                operation,
                code,
                message,
            } => SourceProblem::Refused {
                service: name,
                operation,
                code,
                message,
            },
            Answer::Silent(why) => SourceProblem::Unreachable {
                service: name,
                endpoint: self.endpoint_of(service),
                why,
            },
        })
    }

    async fn check_queue(&self, arn: &str) -> Result<(), Answer> {
        let queue = TargetArn::parse(arn).map_err(|e| Answer::Service {
            operation: "GetQueueUrl",
            code: "InvalidAddress".into(),
            message: e.to_string(),
        })?;
        self.sqs(&queue.region)
            .get_queue_url()
            .queue_name(&queue.resource)
            .queue_owner_aws_account_id(&queue.account)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e, "GetQueueUrl"))
    }

    /// Where the SDK sends `service`'s calls, as far as the configuration says it.
    fn endpoint_of(&self, service: SourceService) -> String {
        self.endpoint_named(service.names().1)
    }

    /// Where the SDK sends the calls of the service whose `AWS_ENDPOINT_URL_*` suffix is
    /// `suffix`, as far as the configuration says it.
    pub(crate) fn endpoint_named(&self, suffix: &str) -> String {
        self.endpoint_url
            .clone()
            .or_else(|| std::env::var(format!("AWS_ENDPOINT_URL_{suffix}")).ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .unwrap_or_else(|| "its AWS endpoint".to_string())
    }
}

/// A service's answer other than success.
pub(crate) enum Answer {
    Service {
        operation: &'static str,
        code: String,
        message: String,
    },
    /// No service answer at all (connection, credentials, timeout, unreadable response).
    Silent(String),
}

/// `call`'s answer, or silence after [`PROBE_TIMEOUT`].
pub(crate) async fn within_probe_timeout<T>(
    call: impl std::future::Future<Output = Result<T, Answer>>,
) -> Result<T, Answer> {
    match tokio::time::timeout(PROBE_TIMEOUT, call).await {
        Ok(answer) => answer,
        Err(_) => Err(Answer::Silent(format!(
            "no answer within {} s",
            PROBE_TIMEOUT.as_secs()
        ))),
    }
}

pub(crate) fn classify<E, R>(e: SdkError<E, R>, operation: &'static str) -> Answer
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &e {
        SdkError::ServiceError(service) => Answer::Service {
            operation,
            code: service.err().code().unwrap_or("InternalError").to_string(),
            message: service.err().message().unwrap_or_default().to_string(),
        },
        _ => Answer::Silent(crate::error_chain(&e)),
    }
}

fn is_missing(service: SourceService, code: &str) -> bool {
    match service {
        SourceService::Sqs => {
            code == "AWS.SimpleQueueService.NonExistentQueue" || code == "QueueDoesNotExist"
        }
        SourceService::Kinesis | SourceService::DynamoDbStreams => {
            code == "ResourceNotFoundException"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_is_told_by_each_services_code() {
        assert!(is_missing(
            SourceService::Sqs,
            "AWS.SimpleQueueService.NonExistentQueue"
        ));
        assert!(is_missing(SourceService::Sqs, "QueueDoesNotExist"));
        assert!(!is_missing(SourceService::Sqs, "AccessDenied"));
        assert!(is_missing(
            SourceService::Kinesis,
            "ResourceNotFoundException"
        ));
        assert!(is_missing(
            SourceService::DynamoDbStreams,
            "ResourceNotFoundException"
        ));
        assert!(!is_missing(
            SourceService::Kinesis,
            "LimitExceededException"
        ));
    }

    #[tokio::test]
    async fn a_service_nobody_answers_for_is_unreachable_and_named_by_its_endpoint() {
        // A port nothing listens on: connection refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(9);
        let endpoint = format!("http://127.0.0.1:{port}");
        let connectors = Connectors::load(crate::ConnectorOptions {
            endpoint_url: Some(endpoint.clone()),
        })
        .await;
        let got = connectors
            .check_source(
                SourceService::Kinesis,
                "arn:aws:kinesis:us-east-1:000000000000:stream/s",
            )
            .await;
        match got {
            Err(SourceProblem::Unreachable {
                service,
                endpoint: e,
                ..
            }) => {
                assert_eq!(service, "Kinesis");
                assert_eq!(e, endpoint);
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
    }
}
