//! Where an asynchronous invocation's outcome goes once it is done: the OnSuccess / OnFailure
//! destination of its event invoke config (another function, invoked asynchronously; an SQS
//! queue; an SNS topic; an EventBridge bus; an S3 bucket for failures) with AWS's invocation
//! record, or — for a failure with no OnFailure destination — the version's dead-letter queue
//! (SQS or SNS) with the event itself and AWS's `RequestID` / `ErrorCode` / `ErrorMessage`
//! attributes. A target that cannot be reached is logged on every failure and tried again a few
//! times; the event stays stored meanwhile.

use std::time::Duration;

use base64::Engine as _;
use flint_connectors::{Attribute, ConnectorError, Target, TargetArn};
use flint_spec::{EventInvokeConfig, Scope, LATEST};
use serde_json::{json, Value};

use crate::async_queue::{now_ms, qualifier_of, AttemptRecord, EventRecord, Pending, Queue};

/// Why the record is sent (`requestContext.condition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Condition {
    Success,
    RetriesExhausted,
    EventAgeExceeded,
    /// The function's reserved concurrency is 0: the event is never attempted.
    ZeroReservedConcurrency,
}

impl Condition {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "Success",
            Self::RetriesExhausted => "RetriesExhausted",
            Self::EventAgeExceeded => "EventAgeExceeded",
            Self::ZeroReservedConcurrency => "ZeroReservedConcurrency",
        }
    }
}

/// Delivery attempts of one record, with the waits between them (then it is dropped, logged).
const DELIVERY_BACKOFF: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];

/// Why a record could not be delivered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeliveryError {
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// The destination function (or its version) does not exist.
    #[error("destination function {0} does not exist")]
    NoFunction(String),
    /// An S3 bucket takes only failure records.
    #[error("an S3 bucket ({0}) can only be an OnFailure destination")]
    S3OnSuccess(String),
    #[error("{0}")]
    Queue(String),
}

/// The qualified ARN the record names: the qualifier invoked, `$LATEST` for the unqualified
/// function (as AWS writes it).
fn record_function_arn(r: &EventRecord) -> String {
    match qualifier_of(&r.invoked_arn) {
        Some(_) => r.invoked_arn.clone(),
        None => format!("{}:{LATEST}", r.invoked_arn),
    }
}

/// A payload as JSON when it is JSON, else as a string.
fn json_or_string(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn request_payload(r: &EventRecord) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(&r.payload)
        .unwrap_or_default()
}

/// AWS's invocation record (`version` 1.0), members in AWS's order.
pub(crate) fn invocation_record(
    r: &EventRecord,
    condition: Condition,
    invoke_count: u32,
    response: Option<&AttemptRecord>,
    timestamp: &str,
) -> Value {
    let mut record = json!({
        "version": "1.0",
        "timestamp": timestamp,
        "requestContext": {
            "requestId": r.request_id,
            "functionArn": record_function_arn(r),
            "condition": condition.as_str(),
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": json_or_string(&request_payload(r)),
    });
    if let (Some(resp), Some(obj)) = (response, record.as_object_mut()) {
        let mut ctx = json!({
            "statusCode": resp.status_code,
            "executedVersion": resp.executed_version,
        });
        if let (Some(fe), Some(c)) = (&resp.function_error, ctx.as_object_mut()) {
            c.insert("functionError".into(), fe.clone().into());
        }
        obj.insert("responseContext".into(), ctx);
        let payload = resp.payload_bytes();
        if !payload.is_empty() {
            obj.insert("responsePayload".into(), json_or_string(&payload));
        }
    }
    record
}

fn timestamp_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Sends the outcome where the configuration says (nothing configured: nothing sent).
pub(crate) async fn finish(
    q: &Queue,
    event: &Pending,
    dead_letter: Option<&str>,
    config: Option<&EventInvokeConfig>,
    condition: Condition,
    invoke_count: u32,
    response: Option<&AttemptRecord>,
) {
    let r = &event.record;
    let destination = match condition {
        Condition::Success => config.and_then(|c| c.on_success.as_deref()),
        _ => config.and_then(|c| c.on_failure.as_deref()),
    };
    if let Some(arn) = destination {
        let record = invocation_record(r, condition, invoke_count, response, &timestamp_now());
        if !deliver_with_retries(r, arn, || send_record(q, event, arn, condition, &record)).await {
            count_failure(r, |m| &m.delivery_failures);
        }
        return;
    }
    if condition == Condition::Success {
        return;
    }
    if let Some(dlq) = dead_letter {
        if !deliver_with_retries(r, dlq, || send_to_dlq(q, r, dlq, response)).await {
            count_failure(r, |m| &m.dead_letter_errors);
        }
    }
}

/// Counts an outcome no target accepted (`DestinationDeliveryFailures`, `DeadLetterErrors`)
/// for the function of `r`'s ARN.
fn count_failure(
    r: &EventRecord,
    counter: impl Fn(&crate::metrics::DestinationMetrics) -> &std::sync::atomic::AtomicU64,
) {
    // arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
    let parts: Vec<&str> = r.invoked_arn.split(':').collect();
    let (Some(region), Some(account)) = (parts.get(3), parts.get(4)) else {
        return;
    };
    let m = crate::metrics::registry().destination((
        (*account).to_string(),
        (*region).to_string(),
        r.function_name.clone(),
    ));
    counter(&m).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Sends with AWS's retries; false when every attempt failed.
async fn deliver_with_retries<F, Fut>(r: &EventRecord, target: &str, mut send: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), DeliveryError>>,
{
    for (i, wait) in std::iter::once(None)
        .chain(DELIVERY_BACKOFF.iter().map(Some))
        .enumerate()
    {
        if let Some(wait) = wait {
            tokio::time::sleep(*wait).await;
        }
        match send().await {
            Ok(()) => {
                tracing::info!(request_id = %r.request_id, function = %r.function_name, "async outcome sent to {target}");
                return true;
            }
            Err(e) => tracing::warn!(request_id = %r.request_id, function = %r.function_name,
                attempt = i + 1, "cannot send the async outcome to {target}: {e}"),
        }
    }
    tracing::error!(request_id = %r.request_id, function = %r.function_name,
        "async outcome dropped: {target} refused it {} times", DELIVERY_BACKOFF.len() + 1);
    false
}

async fn send_record(
    q: &Queue,
    event: &Pending,
    arn: &str,
    condition: Condition,
    record: &Value,
) -> Result<(), DeliveryError> {
    let target = TargetArn::parse(arn)?;
    let body = record.to_string();
    let trace = event.record.trace_header.as_deref();
    let c = &q.connectors;
    match target.target {
        Target::Lambda => invoke_function(q, &target, body, trace).await,
        Target::Sqs => Ok(c.sqs_send(&target, &body, &[], trace).await?),
        Target::Sns => Ok(c.sns_publish(&target, &body, &[]).await?),
        Target::EventBus => {
            let detail_type = match condition {
                Condition::Success => "Lambda Function Invocation Result - Success",
                _ => "Lambda Function Invocation Result - Failure",
            };
            let resources = [target.arn.clone(), record_function_arn(&event.record)];
            Ok(
                c.put_event(&target, "lambda", detail_type, &body, &resources)
                    .await?,
            )
        }
        Target::S3 if condition == Condition::Success => {
            Err(DeliveryError::S3OnSuccess(target.arn))
        }
        Target::S3 => {
            let key = s3_key(
                &event.record.function_name,
                &uuid::Uuid::new_v4().to_string(),
            );
            Ok(c.s3_put(&target, &key, body.into_bytes()).await?)
        }
    }
}

/// AWS's object key for an asynchronous invocation record:
/// `aws/lambda/async/FUNCTION/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-UUID`.
fn s3_key(function: &str, id: &str) -> String {
    let now = chrono::Utc::now();
    format!(
        "aws/lambda/async/{function}/{}/{}-{id}",
        now.format("%Y/%m/%d"),
        now.format("%Y-%m-%dT%H.%M.%S")
    )
}

/// A function destination: the record becomes a new asynchronous invoke of it.
async fn invoke_function(
    q: &Queue,
    target: &TargetArn,
    body: String,
    trace_header: Option<&str>,
) -> Result<(), DeliveryError> {
    let no_function = || DeliveryError::NoFunction(target.arn.clone());
    let mut name_and_qualifier = target
        .resource
        .trim_start_matches("function:")
        .splitn(2, ':');
    let name = name_and_qualifier.next().unwrap_or_default();
    let qualifier = name_and_qualifier.next();
    let scope = Scope {
        account: target.account.clone(),
        region: target.region.clone(),
    };
    let state = q.functions.get(&scope, name).ok_or_else(no_function)?;
    let spec = state
        .version_of(qualifier.unwrap_or(LATEST))
        .ok_or_else(no_function)?;
    let event = Pending::new(
        scope,
        EventRecord {
            function_name: spec.function_name.clone(),
            version: spec.version.clone(),
            snapshot_id: spec.snapshot_id.clone(),
            qualifier: qualifier.map(str::to_string),
            invoked_arn: target.arn.clone(),
            payload: base64::engine::general_purpose::STANDARD.encode(body.as_bytes()),
            request_id: uuid::Uuid::new_v4().to_string(),
            client_context: None,
            enqueued_at_ms: now_ms(),
            attempts: 0,
            due_at_ms: 0,
            last_attempt: None,
            // The destination's invocation continues the event's chain (and its lineage).
            trace_header: Some(
                flint_engine::lineage::next_hop(trace_header, &spec.function_arn).trace_header,
            ),
        },
    );
    q.accept(event).await.map_err(DeliveryError::Queue)
}

/// The dead-letter message: the event as sent, with why it failed.
async fn send_to_dlq(
    q: &Queue,
    r: &EventRecord,
    arn: &str,
    response: Option<&AttemptRecord>,
) -> Result<(), DeliveryError> {
    let target = TargetArn::parse(arn)?;
    let body = String::from_utf8_lossy(&request_payload(r)).into_owned();
    let attributes = dlq_attributes(r, response);
    match target.target {
        Target::Sqs => Ok(q
            .connectors
            .sqs_send(&target, &body, &attributes, r.trace_header.as_deref())
            .await?),
        Target::Sns => Ok(q
            .connectors
            .sns_publish(&target, &body, &attributes)
            .await?),
        _ => Err(ConnectorError::UnsupportedTarget(arn.to_string()).into()),
    }
}

/// `RequestID`, `ErrorCode` (the invoke's status code) and `ErrorMessage` (the function's
/// `errorMessage`), as AWS sets them on a dead-letter message.
fn dlq_attributes(r: &EventRecord, response: Option<&AttemptRecord>) -> Vec<Attribute> {
    let mut attributes = vec![Attribute::string("RequestID", r.request_id.clone())];
    if let Some(resp) = response {
        attributes.push(Attribute::number("ErrorCode", resp.status_code));
        let payload = json_or_string(&resp.payload_bytes());
        let message = payload
            .get("errorMessage")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| resp.function_error.clone());
        if let Some(m) = message.filter(|m| !m.is_empty()) {
            attributes.push(Attribute::string("ErrorMessage", m));
        }
    }
    attributes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(invoked_arn: &str, payload: &str) -> EventRecord {
        EventRecord {
            function_name: "fn".into(),
            version: "$LATEST".into(),
            snapshot_id: "s".into(),
            qualifier: qualifier_of(invoked_arn),
            invoked_arn: invoked_arn.into(),
            payload: base64::engine::general_purpose::STANDARD.encode(payload),
            request_id: "rid".into(),
            client_context: None,
            enqueued_at_ms: 0,
            attempts: 0,
            due_at_ms: 0,
            last_attempt: None,
            trace_header: None,
        }
    }

    fn failed() -> AttemptRecord {
        AttemptRecord {
            status_code: 200,
            executed_version: "$LATEST".into(),
            function_error: Some("Unhandled".into()),
            payload: base64::engine::general_purpose::STANDARD
                .encode(r#"{"errorMessage":"boom","errorType":"Exception"}"#),
        }
    }

    #[test]
    fn the_record_is_shaped_as_aws_sends_it() {
        let r = event(
            "arn:aws:lambda:us-east-1:111111111111:function:fn",
            r#"{"raise_error":1}"#,
        );
        let record = invocation_record(&r, Condition::RetriesExhausted, 3, Some(&failed()), "T");
        assert_eq!(
            record.to_string(),
            json!({
                "version": "1.0",
                "timestamp": "T",
                "requestContext": {
                    "requestId": "rid",
                    "functionArn": "arn:aws:lambda:us-east-1:111111111111:function:fn:$LATEST",
                    "condition": "RetriesExhausted",
                    "approximateInvokeCount": 3
                },
                "requestPayload": {"raise_error": 1},
                "responseContext": {
                    "statusCode": 200,
                    "executedVersion": "$LATEST",
                    "functionError": "Unhandled"
                },
                "responsePayload": {"errorMessage": "boom", "errorType": "Exception"}
            })
            .to_string()
        );
    }

    #[test]
    fn an_alias_invoke_is_recorded_with_its_alias() {
        let r = event(
            "arn:aws:lambda:us-east-1:111111111111:function:fn:live",
            "{}",
        );
        let record = invocation_record(&r, Condition::Success, 1, None, "T");
        assert_eq!(
            record["requestContext"]["functionArn"],
            "arn:aws:lambda:us-east-1:111111111111:function:fn:live"
        );
        assert!(record.get("responseContext").is_none());
    }

    #[test]
    fn dead_letters_carry_request_id_status_and_error_message() {
        let r = event("arn:aws:lambda:us-east-1:111111111111:function:fn", "{}");
        assert_eq!(
            dlq_attributes(&r, Some(&failed())),
            vec![
                Attribute::string("RequestID", "rid"),
                Attribute::number("ErrorCode", 200),
                Attribute::string("ErrorMessage", "boom"),
            ]
        );
    }

    #[test]
    fn s3_records_use_the_async_key_layout() {
        let key = s3_key("fn", "u-u-i-d");
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(&parts[..4], ["aws", "lambda", "async", "fn"]);
        assert_eq!(parts.len(), 8);
        assert!(
            parts[7].ends_with("-u-u-i-d") && parts[7].contains('T'),
            "{key}"
        );
    }
}
