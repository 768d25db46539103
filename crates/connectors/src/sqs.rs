//! An SQS queue as Lambda's SQS poller reads it: ReceiveMessage (long polling, every system and
//! message attribute), DeleteMessageBatch, ChangeMessageVisibilityBatch, and the queue's
//! attributes the poller needs. The messages come back as plain data ([`SqsMessage`]) so that
//! the events crate builds Lambda's event without depending on the SDK.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName, QueueAttributeName,
};

use crate::{Connectors, TargetArn};

/// ReceiveMessage returns at most this many messages per call.
pub const MAX_RECEIVE: usize = 10;
/// DeleteMessageBatch and ChangeMessageVisibilityBatch take at most this many entries.
const MAX_BATCH_ENTRIES: usize = 10;
/// SQS's longest long poll.
pub const MAX_WAIT_SECONDS: u32 = 20;

/// Why a call to SQS failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SqsError {
    /// SQS answered with an error (`code` as SQS names it, e.g.
    /// `AWS.SimpleQueueService.NonExistentQueue`).
    #[error("{operation}: SQS Error Code: {code}. SQS Error Message: {message}")]
    Service {
        operation: &'static str,
        code: String,
        message: String,
    },
    /// SQS could not be reached, or its answer could not be read.
    #[error("{operation}: {message}")]
    Unreachable {
        operation: &'static str,
        message: String,
    },
}

impl SqsError {
    fn of<E, R>(operation: &'static str, e: aws_sdk_sqs::error::SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        use aws_sdk_sqs::error::SdkError;
        match &e {
            SdkError::ServiceError(service) => {
                let err = service.err();
                Self::Service {
                    operation,
                    code: err.code().unwrap_or("InternalError").to_string(),
                    message: err.message().unwrap_or_default().to_string(),
                }
            }
            _ => Self::Unreachable {
                operation,
                message: crate::error_chain(&e),
            },
        }
    }

    /// The queue does not exist (any more): its URL must be asked for again.
    pub fn is_missing_queue(&self) -> bool {
        matches!(self, Self::Service { code, .. }
            if code == "AWS.SimpleQueueService.NonExistentQueue" || code == "QueueDoesNotExist")
    }
}

/// One message attribute as SQS returns it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SqsMessageAttribute {
    /// `String`, `Number`, `Binary`, or one of those with a custom suffix (`Number.float`).
    pub data_type: String,
    pub string_value: Option<String>,
    pub binary_value: Option<Vec<u8>>,
    pub string_list_values: Vec<String>,
    pub binary_list_values: Vec<Vec<u8>>,
}

/// One received message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SqsMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub md5_of_body: String,
    pub md5_of_message_attributes: Option<String>,
    /// System attributes by SQS's names (`ApproximateReceiveCount`, `SentTimestamp`,
    /// `MessageGroupId`, …).
    pub attributes: BTreeMap<String, String>,
    /// Message attributes by name (sorted by name).
    pub message_attributes: BTreeMap<String, SqsMessageAttribute>,
}

/// One entry of a batch call: the message's id (to match failures) and its receipt handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub message_id: String,
    pub receipt_handle: String,
}

/// A queue, resolved once: its URL and the attributes the poller needs.
#[derive(Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    pub url: String,
    pub arn: String,
    /// `FifoQueue`: receive order matters per message group.
    pub fifo: bool,
    /// The queue's `VisibilityTimeout`: how long a received message stays hidden.
    pub visibility_timeout: Duration,
}

impl Connectors {
    /// Resolves the queue `queue` names (an ARN): GetQueueUrl, then GetQueueAttributes.
    pub async fn sqs_queue(&self, queue: &TargetArn) -> Result<SqsQueue, SqsError> {
        let client = self.sqs(&queue.region);
        let url = client
            .get_queue_url()
            .queue_name(&queue.resource)
            .queue_owner_aws_account_id(&queue.account)
            .send()
            .await
            .map_err(|e| SqsError::of("GetQueueUrl", e))?
            .queue_url
            .ok_or_else(|| SqsError::Unreachable {
                operation: "GetQueueUrl",
                message: "no QueueUrl in the answer".into(),
            })?;
        let attributes = client
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::VisibilityTimeout)
            .attribute_names(QueueAttributeName::FifoQueue)
            .send()
            .await
            .map_err(|e| SqsError::of("GetQueueAttributes", e))?
            .attributes
            .unwrap_or_default();
        let fifo = attributes
            .get(&QueueAttributeName::FifoQueue)
            .is_some_and(|v| v == "true")
            || queue.resource.ends_with(".fifo");
        // SQS's default when the attribute is missing.
        let visibility_timeout = attributes
            .get(&QueueAttributeName::VisibilityTimeout)
            .and_then(|v| v.parse().ok())
            .unwrap_or(30);
        Ok(SqsQueue {
            client,
            url,
            arn: queue.arn.clone(),
            fifo,
            visibility_timeout: Duration::from_secs(visibility_timeout),
        })
    }
}

impl SqsQueue {
    /// ReceiveMessage: up to `max` (≤ 10) messages, waiting up to `wait_seconds` (≤ 20) for the
    /// first, with every system attribute and message attribute.
    pub async fn receive(
        &self,
        max: usize,
        wait_seconds: u32,
    ) -> Result<Vec<SqsMessage>, SqsError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, MAX_RECEIVE) as i32)
            .wait_time_seconds(wait_seconds.min(MAX_WAIT_SECONDS) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| SqsError::of("ReceiveMessage", e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(message)
            .collect())
    }

    /// DeleteMessageBatch of every message in `done` (in calls of 10). Returns the ids SQS did
    /// not delete; an error means a call failed as a whole (its messages come back later).
    pub async fn delete(&self, done: &[Receipt]) -> Result<Vec<String>, SqsError> {
        let mut failed = Vec::new();
        for chunk in done.chunks(MAX_BATCH_ENTRIES) {
            let entries = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&r.receipt_handle)
                        .build()
                        .ok()
                })
                .collect();
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| SqsError::of("DeleteMessageBatch", e))?;
            failed.extend(
                out.failed
                    .iter()
                    .filter_map(|f| chunk.get(f.id.parse::<usize>().ok()?))
                    .map(|r| r.message_id.clone()),
            );
        }
        Ok(failed)
    }

    /// ChangeMessageVisibilityBatch of every message in `messages` to `seconds` (0: visible
    /// again now).
    pub async fn change_visibility(
        &self,
        messages: &[Receipt],
        seconds: u32,
    ) -> Result<(), SqsError> {
        for chunk in messages.chunks(MAX_BATCH_ENTRIES) {
            let entries = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&r.receipt_handle)
                        .visibility_timeout(seconds as i32)
                        .build()
                        .ok()
                })
                .collect();
            self.client
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| SqsError::of("ChangeMessageVisibilityBatch", e))?;
        }
        Ok(())
    }
}

/// The SDK's message as plain data; one without an id or receipt handle cannot be processed
/// (nor deleted) and is skipped.
fn message(m: aws_sdk_sqs::types::Message) -> Option<SqsMessage> {
    let attributes = m
        .attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.as_str().to_string(), v))
        .collect();
    let message_attributes = m
        .message_attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(name, v)| {
            let attribute = SqsMessageAttribute {
                data_type: v.data_type,
                string_value: v.string_value,
                binary_value: v.binary_value.map(|b| b.into_inner()),
                string_list_values: v.string_list_values.unwrap_or_default(),
                binary_list_values: v
                    .binary_list_values
                    .unwrap_or_default()
                    .into_iter()
                    .map(|b| b.into_inner())
                    .collect(),
            };
            (name, attribute)
        })
        .collect();
    Some(SqsMessage {
        message_id: m.message_id?,
        receipt_handle: m.receipt_handle?,
        body: m.body.unwrap_or_default(),
        md5_of_body: m.md5_of_body.unwrap_or_default(),
        md5_of_message_attributes: m.md5_of_message_attributes,
        attributes,
        message_attributes,
    })
}
