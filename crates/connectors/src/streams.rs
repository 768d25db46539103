//! What the stream readers (Kinesis, DynamoDB Streams) share: shards, where to start reading one,
//! a page of records, and the errors a poller must tell apart (a stream that is gone, an iterator
//! that expired, a throttle) from the ones it only retries.

use crate::ConnectorError;

/// One shard of a stream, as ListShards / DescribeStream lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub id: String,
    /// The shard this one was split from or merged from (read first).
    pub parent: Option<String>,
    /// The other parent of a merge.
    pub adjacent_parent: Option<String>,
    /// The shard takes no more records (split, merged, or a DynamoDB shard rolled over); once
    /// read to its end its children may be read.
    pub closed: bool,
}

/// Where a shard iterator starts.
#[derive(Debug, Clone, PartialEq)]
pub enum IteratorStart {
    TrimHorizon,
    Latest,
    /// Epoch seconds (Kinesis only).
    AtTimestamp(f64),
    AfterSequence(String),
}

/// One GetRecords answer.
#[derive(Debug, Clone)]
pub struct Page<R> {
    pub records: Vec<R>,
    /// None: the shard is closed and read to its end.
    pub next_iterator: Option<String>,
}

/// Why a stream call failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The stream (or shard) does not exist.
    #[error("{0}")]
    NotFound(ConnectorError),
    /// The iterator is too old, or points at trimmed data: get a new one.
    #[error("{0}")]
    ExpiredIterator(ConnectorError),
    /// The stream's read limits were hit: wait and try again.
    #[error("{0}")]
    Throttled(ConnectorError),
    /// Anything else (unreachable, refused): retried with back-off.
    #[error("{0}")]
    Other(ConnectorError),
}

impl StreamError {
    /// Sorts an SDK error by the service's error code.
    pub(crate) fn classify(code: Option<&str>, error: ConnectorError) -> Self {
        match code {
            Some("ResourceNotFoundException") => Self::NotFound(error),
            Some("ExpiredIteratorException" | "TrimmedDataAccessException") => {
                Self::ExpiredIterator(error)
            }
            Some(
                "ProvisionedThroughputExceededException"
                | "LimitExceededException"
                | "ThrottlingException",
            ) => Self::Throttled(error),
            _ => Self::Other(error),
        }
    }
}

/// The parts of a stream ARN the SDK needs: `arn:aws:kinesis:REGION:ACCOUNT:stream/NAME` or
/// `arn:aws:dynamodb:REGION:ACCOUNT:table/T/stream/LABEL`.
pub(crate) fn region_of(arn: &str) -> &str {
    arn.split(':').nth(3).unwrap_or_default()
}

/// A failed SDK call of a stream service, classified (the Kinesis and DynamoDB Streams SDKs share
/// smithy's `SdkError`, re-exported by each).
pub(crate) fn sdk_error<E, R>(
    service: &'static str,
    operation: &'static str,
    arn: &str,
    e: aws_sdk_kinesis::error::SdkError<E, R>,
) -> StreamError
where
    E: aws_sdk_kinesis::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_kinesis::error::ProvideErrorMetadata as _;
    let code = e.code().map(str::to_string);
    StreamError::classify(
        code.as_deref(),
        crate::call_error(service, operation, arn, e),
    )
}
