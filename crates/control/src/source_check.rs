//! Whether the queue or stream an event source mapping names exists. Lambda asks the source
//! before it accepts a mapping (recorded: "Stream not found: <arn>", SQS's NonExistentQueue);
//! Flint asks through its outbound connection to the other services (the connectors crate), a
//! [`SourceCheck`] the server plugs in. Without one (the control plane on its own, as in unit
//! tests) sources are not checked. Kafka, MQ and DocumentDB sources are not checked.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{ControlPlane, LambdaError};

/// The services a checked source belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceService {
    Sqs,
    Kinesis,
    DynamoDbStreams,
}

/// Why a source cannot be mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceCheckError {
    /// The service answered that the queue or stream does not exist.
    Missing,
    /// The service refused the call with its own error code and message.
    Refused { code: String, message: String },
    /// The service did not answer; the text says which endpoint and why.
    Unreachable(String),
}

/// A boxed future of [`SourceCheck`].
pub type SourceFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SourceCheckError>> + Send + 'a>>;

/// Asks a service whether a source exists.
pub trait SourceCheck: Send + Sync {
    fn check<'a>(&'a self, service: SourceService, arn: &'a str) -> SourceFuture<'a>;
}

impl ControlPlane {
    /// Plugs in Flint's connection to SQS, Kinesis and DynamoDB Streams.
    pub fn set_source_check(&self, check: Arc<dyn SourceCheck>) {
        *self.source_check.write() = Some(check);
    }

    /// Refuses a mapping whose source does not exist (or cannot be asked), as AWS words it.
    pub(crate) async fn check_source(
        &self,
        service: SourceService,
        arn: &str,
    ) -> Result<(), LambdaError> {
        let Some(check) = self.source_check.read().clone() else {
            return Ok(());
        };
        match check.check(service, arn).await {
            Ok(()) => Ok(()),
            Err(e) => Err(refusal(service, arn, e)),
        }
    }
}

/// AWS's `InvalidParameterValueException` for a source that cannot be mapped.
fn refusal(service: SourceService, arn: &str, e: SourceCheckError) -> LambdaError {
    let message = match (service, e) {
        (SourceService::Sqs, SourceCheckError::Missing) => sqs_error(
            "AWS.SimpleQueueService.NonExistentQueue",
            "The specified queue does not exist.",
        ),
        (SourceService::Sqs, SourceCheckError::Refused { code, message }) => {
            sqs_error(&code, &message)
        }
        (_, SourceCheckError::Missing) => format!("Stream not found: {arn}"),
        (_, SourceCheckError::Refused { code, message }) => {
            format!("Cannot access stream {arn}: {code}: {message}")
        }
        // Not AWS's (AWS can always reach its services): the mapping could never be polled,
        // so it is refused, saying where Flint looked.
        (_, SourceCheckError::Unreachable(why)) => format!(
            "Flint could not check that the event source {arn} exists: {why}. Start the service \
             there, or give Flint its endpoint (--aws-endpoint-url, AWS_ENDPOINT_URL_<SERVICE>)."
        ),
    };
    LambdaError::invalid(message)
}

fn sqs_error(code: &str, message: &str) -> String {
    format!(
        "Error occurred while ReceiveMessage. SQS Error Code: {code}. SQS Error Message: {message}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn refusals_are_worded_as_aws_words_them() {
        let sqs = refusal(
            SourceService::Sqs,
            "arn:aws:sqs:us-east-1:000000000000:q",
            SourceCheckError::Missing,
        );
        assert_eq!(sqs.code, ErrorCode::InvalidParameterValueException);
        assert!(sqs.typed);
        assert_eq!(
            sqs.message,
            "Error occurred while ReceiveMessage. SQS Error Code: \
             AWS.SimpleQueueService.NonExistentQueue. SQS Error Message: The specified queue \
             does not exist."
        );
        let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/s";
        let kinesis = refusal(SourceService::Kinesis, arn, SourceCheckError::Missing);
        assert_eq!(kinesis.message, format!("Stream not found: {arn}"));
        let arn = "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2025-02-22T03:03:25.490";
        let ddb = refusal(
            SourceService::DynamoDbStreams,
            arn,
            SourceCheckError::Missing,
        );
        assert_eq!(ddb.message, format!("Stream not found: {arn}"));
        let down = refusal(
            SourceService::Sqs,
            "arn:aws:sqs:us-east-1:000000000000:q",
            SourceCheckError::Unreachable("SQS at http://127.0.0.1:9 did not answer".into()),
        );
        assert_eq!(down.code, ErrorCode::InvalidParameterValueException);
        assert!(
            down.message.contains("http://127.0.0.1:9"),
            "{}",
            down.message
        );
    }
}
