//! The SQS event source, as Lambda's SQS poller runs it: long polls the queue, gathers batches
//! (`BatchSize`, `MaximumBatchingWindowInSeconds`, the 6 MB payload limit), invokes the function
//! with AWS's `Records` event, deletes what succeeded and leaves failures to the queue's
//! visibility timeout and redrive policy. Several pollers run per mapping, more while batches
//! come full, up to `ScalingConfig.MaximumConcurrency`.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use flint_connectors::sqs::{
    Receipt, SqsError, SqsMessage, SqsQueue, MAX_RECEIVE, MAX_WAIT_SECONDS,
};
use flint_connectors::TargetArn;
use flint_engine::InvokeError;
use flint_filter::{FilterSet, Source};
use serde_json::{Map, Value};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::{InvokeFailure, Mapping};

/// Lambda's limit on a synchronous invoke's request payload: a batch is cut before it.
const MAX_PAYLOAD: usize = 6 * 1024 * 1024;
/// `BatchSize` when the mapping has none (AWS's default for SQS).
const DEFAULT_BATCH_SIZE: usize = 10;
/// Pollers a mapping starts with and keeps while idle (AWS starts with five).
const MIN_POLLERS: usize = 5;
/// Pollers at most without `ScalingConfig.MaximumConcurrency`: each is one invoke at a time,
/// and beyond a few dozen a single machine only queues them up.
const DEFAULT_MAX_POLLERS: usize = 32;
/// The wait after a failure to reach the queue, doubled each time up to the maximum.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// The wait after a throttled invoke, doubled each time up to the maximum.
const THROTTLE_FIRST: Duration = Duration::from_millis(20);
const THROTTLE_MAX: Duration = Duration::from_secs(1);
/// `{"Records":[` and `]}`.
const ENVELOPE: usize = 14;

/// The mapping's settings, with AWS's defaults.
#[derive(Debug, Clone)]
struct Settings {
    batch_size: usize,
    window: Duration,
    report_item_failures: bool,
    max_pollers: usize,
    filters: Filters,
}

impl Settings {
    fn of(mapping: &Mapping) -> Self {
        let config = mapping.config();
        let batch_size = mapping
            .config_i64("BatchSize")
            .map_or(DEFAULT_BATCH_SIZE, |n| n.max(1) as usize);
        let window = Duration::from_secs(
            mapping
                .config_i64("MaximumBatchingWindowInSeconds")
                .unwrap_or(0)
                .max(0) as u64,
        );
        let report_item_failures = config
            .get("FunctionResponseTypes")
            .and_then(Value::as_array)
            .is_some_and(|types| types.iter().any(|t| t == "ReportBatchItemFailures"));
        let max_pollers = config
            .pointer("/ScalingConfig/MaximumConcurrency")
            .and_then(Value::as_u64)
            .map_or(DEFAULT_MAX_POLLERS, |n| n.max(1) as usize);
        Self {
            batch_size,
            window,
            report_item_failures,
            max_pollers,
            filters: Filters::of(config.get("FilterCriteria")),
        }
    }

    fn min_pollers(&self) -> usize {
        MIN_POLLERS.min(self.max_pollers)
    }
}

/// The mapping's `FilterCriteria`.
#[derive(Debug, Clone)]
struct Filters(FilterSet);

impl Filters {
    fn of(criteria: Option<&Value>) -> Self {
        let criteria = criteria.unwrap_or(&Value::Null);
        // The control plane validated the criteria; one it stored that does not parse now lets
        // every message through rather than delete messages nobody asked to drop.
        Self(FilterSet::parse(criteria).unwrap_or_else(|e| {
            tracing::warn!("ignoring FilterCriteria that do not parse: {e}");
            FilterSet::default()
        }))
    }

    /// Whether the record goes to the function (a record filtered out is deleted, as AWS does).
    fn passes_filters(&self, record: &Value) -> bool {
        self.0.matches(Source::Sqs, record)
    }
}

/// Runs the mapping's pollers until it stops.
pub(crate) async fn run(mapping: Mapping) {
    let settings = Settings::of(&mapping);
    let Some(source) = mapping.spec.event_source_arn.clone() else {
        mapping.report_problem("PROBLEM: Unknown event source.");
        return mapping.stopped().await;
    };
    let arn = match TargetArn::parse(&source) {
        Ok(arn) => arn,
        Err(_) => {
            mapping.report_problem("PROBLEM: Unknown event source.");
            return mapping.stopped().await;
        }
    };
    let Some(queue) = resolve(&mapping, &arn).await else {
        return;
    };
    let poller = Arc::new(Poller {
        region: arn.region.clone(),
        queue,
        settings,
        workers: AtomicUsize::new(0),
        grow: Notify::new(),
        function_missing: AtomicBool::new(false),
        mapping,
    });
    let mut workers = JoinSet::new();
    for _ in 0..poller.settings.min_pollers() {
        poller.spawn(&mut workers);
    }
    loop {
        tokio::select! {
            _ = poller.mapping.stopped() => break,
            _ = poller.grow.notified() => {
                if workers.len() < poller.settings.max_pollers {
                    poller.spawn(&mut workers);
                }
            }
            Some(_) = workers.join_next() => {
                // A worker that leaves when idle never takes the count below the minimum; this
                // only restarts one that ended otherwise (a panic).
                while workers.len() < poller.settings.min_pollers() && !poller.mapping.is_stopped() {
                    poller.spawn(&mut workers);
                }
            }
        }
    }
    // Every worker finishes (or releases) the batch it holds.
    while workers.join_next().await.is_some() {}
}

/// GetQueueUrl and GetQueueAttributes until they answer (None: the mapping stopped first).
async fn resolve(mapping: &Mapping, arn: &TargetArn) -> Option<SqsQueue> {
    let mut delay = RETRY_FIRST;
    loop {
        let attempt = tokio::select! {
            _ = mapping.stopped() => return None,
            r = mapping.ctx.connectors.sqs_queue(arn) => r,
        };
        match attempt {
            Ok(queue) => return Some(queue),
            Err(e) => {
                tracing::warn!(mapping = %mapping.uuid(), "cannot reach queue {}: {e}", arn.arn);
                mapping.report_problem(&problem(&e));
            }
        }
        tokio::select! {
            _ = mapping.stopped() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(RETRY_MAX);
    }
}

/// What the mapping shows (`StateTransitionReason`) while the queue cannot be read, in AWS's
/// words.
fn problem(e: &SqsError) -> String {
    match e {
        SqsError::Service { code, message, .. } => format!(
            "PROBLEM: Error occurred while ReceiveMessage. SQS Error Code: {code}. SQS Error Message: {message}"
        ),
        SqsError::Unreachable { .. } => {
            "PROBLEM: Connection error. Please check your event source connection configuration."
                .into()
        }
    }
}

const FUNCTION_MISSING: &str = "PROBLEM: Function not found.";

/// What a mapping's workers share.
struct Poller {
    mapping: Mapping,
    queue: SqsQueue,
    region: String,
    settings: Settings,
    /// Workers running.
    workers: AtomicUsize,
    /// A worker got a full batch: one more may help.
    grow: Notify,
    /// The function does not exist: idle polls must not clear the problem reported.
    function_missing: AtomicBool,
}

/// A received message, ready for the event.
#[derive(Debug)]
struct Held {
    receipt: Receipt,
    /// `MessageGroupId` (FIFO queues).
    group: Option<String>,
    /// `AWSTraceHeader`: the chain of events the message belongs to (loop detection).
    trace: Option<String>,
    /// The message's record of the event, serialized.
    record: Vec<u8>,
    received: Instant,
}

/// One batch for one invoke.
#[derive(Debug, Default)]
struct Batch {
    held: Vec<Held>,
    /// The payload's size so far.
    bytes: usize,
    /// Messages the filters dropped: deleted whatever the invoke does.
    dropped: Vec<Receipt>,
}

impl Batch {
    /// Adds `held` unless the payload would pass 6 MB (then it is given back).
    fn push(&mut self, held: Held) -> Option<Held> {
        let added = held.record.len() + usize::from(!self.held.is_empty());
        if !self.held.is_empty() && ENVELOPE + self.bytes + added > MAX_PAYLOAD {
            return Some(held);
        }
        self.bytes += added;
        self.held.push(held);
        None
    }

    fn payload(&self) -> Bytes {
        let mut out = Vec::with_capacity(ENVELOPE + self.bytes);
        out.extend_from_slice(b"{\"Records\":[");
        for (i, h) in self.held.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&h.record);
        }
        out.extend_from_slice(b"]}");
        Bytes::from(out)
    }

    fn receipts(&self) -> Vec<Receipt> {
        self.held.iter().map(|h| h.receipt.clone()).collect()
    }
}

/// How gathering a batch ended.
enum Gathered {
    Batch {
        batch: Batch,
        full: bool,
    },
    /// A whole long poll brought nothing (filtered-out messages aside).
    Idle,
    Stopped,
}

impl Poller {
    fn spawn(self: &Arc<Self>, workers: &mut JoinSet<()>) {
        self.workers.fetch_add(1, Ordering::SeqCst);
        workers.spawn(self.clone().work());
    }

    /// One poller: receive → invoke → delete, until the mapping stops or this worker is not
    /// needed any more.
    async fn work(self: Arc<Self>) {
        let mut carry = VecDeque::new();
        let mut retry = RETRY_FIRST;
        loop {
            if self.mapping.is_stopped() {
                self.release(carry.drain(..).map(|h: Held| h.receipt).collect())
                    .await;
                break;
            }
            match self.gather(&mut carry).await {
                Ok(Gathered::Stopped) => break,
                Ok(Gathered::Idle) => {
                    retry = RETRY_FIRST;
                    if !self.function_missing.load(Ordering::SeqCst) {
                        self.mapping.report_result("OK");
                    }
                    if self.retire() {
                        return;
                    }
                }
                Ok(Gathered::Batch { batch, full }) => {
                    retry = RETRY_FIRST;
                    if full {
                        self.grow.notify_one();
                    }
                    match self.process(batch).await {
                        Processed::Done => {}
                        Processed::Throttled => {
                            // Fewer pollers while the function is throttled, as Lambda does.
                            if self.retire() {
                                return;
                            }
                        }
                        Processed::FunctionMissing => self.wait_for_function().await,
                    }
                }
                Err(e) => {
                    tracing::warn!(mapping = %self.mapping.uuid(), "polling {}: {e}", self.queue.arn);
                    self.mapping.report_problem(&problem(&e));
                    tokio::select! {
                        _ = self.mapping.stopped() => {}
                        _ = tokio::time::sleep(retry) => {}
                    }
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
        self.workers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Leaves if more than the minimum of workers run (and counts itself out).
    fn retire(&self) -> bool {
        let min = self.settings.min_pollers();
        self.workers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n > min).then(|| n - 1)
            })
            .is_ok()
    }

    /// Receives until the batch is full, the batching window has passed or the payload would
    /// pass 6 MB. Messages that do not fit wait in `carry` for the next batch.
    async fn gather(&self, carry: &mut VecDeque<Held>) -> Result<Gathered, SqsError> {
        let settings = &self.settings;
        let mut batch = Batch::default();
        let mut full = false;
        while let Some(h) = carry.pop_front() {
            if batch.held.len() >= settings.batch_size {
                carry.push_front(h);
                full = true;
                break;
            }
            if let Some(h) = batch.push(h) {
                carry.push_front(h);
                full = true;
                break;
            }
        }
        // The window starts with the batch's first message.
        let mut first = batch.held.first().map(|h| h.received);
        while !full && batch.held.len() < settings.batch_size {
            let wait = match first {
                None => MAX_WAIT_SECONDS,
                Some(_) if settings.window.is_zero() => break,
                Some(first) => {
                    let left = settings.window.saturating_sub(first.elapsed());
                    if left.is_zero() {
                        break;
                    }
                    // Whole seconds only: a message arriving ends the wait anyway.
                    (left.as_secs_f64().ceil() as u32).min(MAX_WAIT_SECONDS)
                }
            };
            let room = (settings.batch_size - batch.held.len()).min(MAX_RECEIVE);
            let queue = self.queue.clone();
            let mut receive = Box::pin(async move { queue.receive(room, wait).await });
            let received = tokio::select! {
                _ = self.mapping.stopped() => {
                    // SQS goes on with a long poll whose caller went away, and would hide what
                    // it finds: the poll is left to finish, and gives back what it got.
                    let queue = self.queue.clone();
                    tokio::spawn(async move {
                        if let Ok(messages) = receive.await {
                            let receipts: Vec<Receipt> = messages.into_iter().map(|m| Receipt {
                                message_id: m.message_id,
                                receipt_handle: m.receipt_handle,
                            }).collect();
                            if !receipts.is_empty() {
                                let _ = queue.change_visibility(&receipts, 0).await;
                            }
                        }
                    });
                    let mut receipts = batch.receipts();
                    receipts.extend(carry.drain(..).map(|h| h.receipt));
                    self.release(receipts).await;
                    self.delete_dropped(&batch.dropped).await;
                    return Ok(Gathered::Stopped);
                }
                r = &mut receive => r,
            };
            let messages = match received {
                Ok(messages) => messages,
                // What was gathered goes to the function; the error shows on the next round.
                Err(e) if !batch.held.is_empty() => {
                    tracing::debug!(mapping = %self.mapping.uuid(), "receive: {e}");
                    break;
                }
                Err(e) => {
                    self.delete_dropped(&batch.dropped).await;
                    return Err(e);
                }
            };
            if messages.is_empty() && first.is_none() {
                self.delete_dropped(&batch.dropped).await;
                return Ok(Gathered::Idle);
            }
            let now = Instant::now();
            self.mapping
                .counters
                .polled
                .fetch_add(messages.len() as u64, Ordering::Relaxed);
            for m in messages {
                let record = record(&m, &self.queue.arn, &self.region);
                let receipt = Receipt {
                    message_id: m.message_id.clone(),
                    receipt_handle: m.receipt_handle.clone(),
                };
                // The one place filtering decides.
                if !settings.filters.passes_filters(&record) {
                    self.mapping
                        .counters
                        .filtered_out
                        .fetch_add(1, Ordering::Relaxed);
                    batch.dropped.push(receipt);
                    continue;
                }
                let held = Held {
                    receipt,
                    group: m.attributes.get("MessageGroupId").cloned(),
                    trace: m.attributes.get("AWSTraceHeader").cloned(),
                    record: record.to_string().into_bytes(),
                    received: now,
                };
                if full {
                    carry.push_back(held);
                } else if let Some(held) = batch.push(held) {
                    carry.push_back(held);
                    full = true;
                }
            }
            first = first.or_else(|| batch.held.first().map(|h| h.received));
            if first.is_none() && !batch.dropped.is_empty() {
                // Only filtered-out messages so far: delete them now, not after a long poll
                // that could outlast their visibility timeout.
                self.delete_dropped(&batch.dropped).await;
                batch.dropped.clear();
            }
        }
        if batch.held.is_empty() {
            self.delete_dropped(&batch.dropped).await;
            return Ok(Gathered::Idle);
        }
        let full = full || batch.held.len() >= settings.batch_size;
        Ok(Gathered::Batch { batch, full })
    }

    /// Invokes the function with the batch and deletes what succeeded.
    async fn process(&self, batch: Batch) -> Processed {
        self.delete_dropped(&batch.dropped).await;
        let payload = batch.payload();
        // The batch continues the longest chain of events among its messages, so a message
        // going round in a loop is caught whatever its companions.
        let function = &self.mapping.spec.function_arn;
        let trace = batch
            .held
            .iter()
            .filter_map(|h| h.trace.as_deref())
            .max_by_key(|t| flint_engine::lineage::count(Some(t), function));
        let mut backoff = THROTTLE_FIRST;
        let mut ran;
        let outcome = loop {
            let result = self.mapping.invoke_traced(payload.clone(), trace).await;
            ran = result.is_ok();
            match result {
                Ok(response) if response.function_error.is_some() => break Outcome::AllFailed,
                Ok(response) if self.settings.report_item_failures => {
                    let ids: HashSet<&str> = batch
                        .held
                        .iter()
                        .map(|h| h.receipt.message_id.as_str())
                        .collect();
                    break batch_item_failures(&response.payload.contiguous(), &ids);
                }
                Ok(_) => break Outcome::AllSucceeded,
                // Handled as a failed batch: the queue's redrive policy ends the loop.
                Err(InvokeFailure::RecursiveLoop) => break Outcome::AllFailed,
                Err(InvokeFailure::FunctionMissing(why)) => {
                    tracing::warn!(mapping = %self.mapping.uuid(), "{why}");
                    self.function_missing.store(true, Ordering::SeqCst);
                    self.mapping.report_problem(FUNCTION_MISSING);
                    // Back to the queue now: they run once the function is back.
                    self.release(batch.receipts()).await;
                    return Processed::FunctionMissing;
                }
                Err(InvokeFailure::Invoke(InvokeError::Throttled { .. })) => {
                    // Lambda retries a throttled batch until the messages' visibility timeout
                    // runs out; then they are the queue's again.
                    let oldest = batch.held.first().map_or_else(Instant::now, |h| h.received);
                    if oldest.elapsed() + backoff >= self.queue.visibility_timeout {
                        return Processed::Throttled;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(THROTTLE_MAX);
                }
                Err(InvokeFailure::Invoke(e)) => {
                    tracing::warn!(mapping = %self.mapping.uuid(), "invoking {}: {e}", self.mapping.spec.function_arn);
                    break Outcome::AllFailed;
                }
            }
        };
        if self.function_missing.swap(false, Ordering::SeqCst)
            || !matches!(outcome, Outcome::AllFailed)
        {
            self.mapping.report_result("OK");
        }
        let Settled { delete, release } = settle(&batch.held, &outcome, self.queue.fifo);
        if ran {
            let c = &self.mapping.counters;
            c.invoked
                .fetch_add(batch.held.len() as u64, Ordering::Relaxed);
            c.failed_invoke
                .fetch_add(release.len() as u64, Ordering::Relaxed);
        }
        self.release(release).await;
        if !delete.is_empty() {
            match self.queue.delete(&delete).await {
                Ok(failed) if !failed.is_empty() => {
                    tracing::warn!(mapping = %self.mapping.uuid(), "SQS did not delete {} message(s) of {}", failed.len(), self.queue.arn);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(mapping = %self.mapping.uuid(), "deleting from {}: {e}", self.queue.arn);
                }
            }
        }
        Processed::Done
    }

    /// Waits (slowly) until the mapping's function exists again.
    async fn wait_for_function(&self) {
        let mut delay = RETRY_FIRST;
        while !self.mapping.function_exists() {
            tokio::select! {
                _ = self.mapping.stopped() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(RETRY_MAX);
        }
    }

    /// Makes messages visible again now (a batch not run: on stop, or without a function).
    async fn release(&self, receipts: Vec<Receipt>) {
        if receipts.is_empty() {
            return;
        }
        if let Err(e) = self.queue.change_visibility(&receipts, 0).await {
            tracing::debug!(mapping = %self.mapping.uuid(), "releasing messages: {e}");
        }
    }

    async fn delete_dropped(&self, dropped: &[Receipt]) {
        if dropped.is_empty() {
            return;
        }
        if let Err(e) = self.queue.delete(dropped).await {
            tracing::warn!(mapping = %self.mapping.uuid(), "deleting filtered-out messages: {e}");
        }
    }
}

/// What became of a batch.
enum Processed {
    Done,
    Throttled,
    FunctionMissing,
}

/// What the function made of a batch.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    AllSucceeded,
    AllFailed,
    /// `ReportBatchItemFailures`: these message ids failed.
    Failed(HashSet<String>),
}

/// AWS's reading of a partial batch response (`{"batchItemFailures":[{"itemIdentifier":…}]}`):
/// a null or empty response, or a null or empty list, is a success; a response that is not
/// JSON, or an item whose identifier is missing, empty, not a string or not a message of the
/// batch fails the whole batch.
fn batch_item_failures(payload: &[u8], ids: &HashSet<&str>) -> Outcome {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Outcome::AllSucceeded;
    }
    let Ok(response) = serde_json::from_slice::<Value>(payload) else {
        return Outcome::AllFailed;
    };
    // A response of another shape says nothing of failures.
    let Some(items) = response.get("batchItemFailures") else {
        return Outcome::AllSucceeded;
    };
    let items = match items {
        Value::Null => return Outcome::AllSucceeded,
        Value::Array(items) => items,
        _ => return Outcome::AllFailed,
    };
    let mut failed = HashSet::new();
    for item in items {
        match item.get("itemIdentifier").and_then(Value::as_str) {
            Some(id) if ids.contains(id) => {
                failed.insert(id.to_string());
            }
            _ => return Outcome::AllFailed,
        }
    }
    if failed.is_empty() {
        Outcome::AllSucceeded
    } else {
        Outcome::Failed(failed)
    }
}

/// What to do with a batch's messages after the function ran.
#[derive(Debug, Default)]
struct Settled {
    /// Done with: deleted.
    delete: Vec<Receipt>,
    /// Not run because an earlier message of their FIFO group failed: visible again now, behind
    /// the failed one (which SQS keeps in flight until its visibility timeout), so the group's
    /// order holds.
    release: Vec<Receipt>,
}

/// The messages to delete after `outcome`. In a FIFO queue a failed message holds back the rest
/// of its message group in the batch (they go back to the queue with it, keeping the order).
fn settle(held: &[Held], outcome: &Outcome, fifo: bool) -> Settled {
    let failed = match outcome {
        Outcome::AllSucceeded => {
            return Settled {
                delete: held.iter().map(|h| h.receipt.clone()).collect(),
                release: Vec::new(),
            }
        }
        Outcome::AllFailed => return Settled::default(),
        Outcome::Failed(failed) => failed,
    };
    let mut blocked: HashSet<&str> = HashSet::new();
    let mut settled = Settled::default();
    for h in held {
        let group = h.group.as_deref().filter(|_| fifo);
        if failed.contains(&h.receipt.message_id) {
            if let Some(g) = group {
                blocked.insert(g);
            }
            continue;
        }
        if group.is_some_and(|g| blocked.contains(g)) {
            settled.release.push(h.receipt.clone());
            continue;
        }
        settled.delete.push(h.receipt.clone());
    }
    settled
}

/// The order of the system attributes in Lambda's event.
const SYSTEM_ATTRIBUTES: [&str; 8] = [
    "ApproximateReceiveCount",
    "AWSTraceHeader",
    "SentTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "SenderId",
    "MessageDeduplicationId",
    "ApproximateFirstReceiveTimestamp",
];

/// One message as a record of Lambda's SQS event.
fn record(m: &SqsMessage, queue_arn: &str, region: &str) -> Value {
    let b64 = |b: &[u8]| Value::String(base64::engine::general_purpose::STANDARD.encode(b));
    let mut attributes = Map::new();
    for name in SYSTEM_ATTRIBUTES {
        if let Some(v) = m.attributes.get(name) {
            attributes.insert(name.into(), Value::String(v.clone()));
        }
    }
    let mut message_attributes = Map::new();
    for (name, a) in &m.message_attributes {
        let mut v = Map::new();
        if let Some(s) = &a.string_value {
            v.insert("stringValue".into(), Value::String(s.clone()));
        }
        if let Some(b) = &a.binary_value {
            v.insert("binaryValue".into(), b64(b));
        }
        v.insert(
            "stringListValues".into(),
            a.string_list_values
                .iter()
                .cloned()
                .map(Value::String)
                .collect(),
        );
        v.insert(
            "binaryListValues".into(),
            a.binary_list_values.iter().map(|b| b64(b)).collect(),
        );
        v.insert("dataType".into(), Value::String(a.data_type.clone()));
        message_attributes.insert(name.clone(), Value::Object(v));
    }
    let mut r = Map::new();
    r.insert("messageId".into(), m.message_id.clone().into());
    r.insert("receiptHandle".into(), m.receipt_handle.clone().into());
    r.insert("body".into(), m.body.clone().into());
    r.insert("attributes".into(), Value::Object(attributes));
    r.insert(
        "messageAttributes".into(),
        Value::Object(message_attributes),
    );
    r.insert(
        "md5OfMessageAttributes".into(),
        m.md5_of_message_attributes
            .clone()
            .map_or(Value::Null, Value::String),
    );
    r.insert("md5OfBody".into(), m.md5_of_body.clone().into());
    r.insert("eventSource".into(), "aws:sqs".into());
    r.insert("eventSourceARN".into(), queue_arn.into());
    r.insert("awsRegion".into(), region.into());
    Value::Object(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flint_connectors::sqs::SqsMessageAttribute;
    use serde_json::json;

    const QUEUE: &str = "arn:aws:sqs:us-east-1:111111111111:q";

    fn message(id: &str, attributes: &[(&str, &str)]) -> SqsMessage {
        SqsMessage {
            message_id: id.into(),
            receipt_handle: format!("rh-{id}"),
            body: "{\"a\": 1}".into(),
            md5_of_body: "md5".into(),
            md5_of_message_attributes: None,
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            message_attributes: Default::default(),
        }
    }

    fn held(id: &str, group: Option<&str>) -> Held {
        Held {
            receipt: Receipt {
                message_id: id.into(),
                receipt_handle: format!("rh-{id}"),
            },
            group: group.map(str::to_string),
            trace: None,
            record: b"{}".to_vec(),
            received: Instant::now(),
        }
    }

    fn ids(receipts: &[Receipt]) -> Vec<&str> {
        receipts.iter().map(|r| r.message_id.as_str()).collect()
    }

    #[test]
    fn a_standard_message_becomes_the_record_aws_sends() {
        let mut m = message(
            "m1",
            &[
                ("SenderId", "AIDA"),
                ("ApproximateFirstReceiveTimestamp", "1700000000001"),
                ("SentTimestamp", "1700000000000"),
                ("ApproximateReceiveCount", "1"),
            ],
        );
        m.md5_of_message_attributes = Some("d25a".into());
        m.message_attributes.insert(
            "Author".into(),
            SqsMessageAttribute {
                data_type: "String".into(),
                string_value: Some("John Grisham".into()),
                ..Default::default()
            },
        );
        m.message_attributes.insert(
            "Blob".into(),
            SqsMessageAttribute {
                data_type: "Binary".into(),
                binary_value: Some(b"hi".to_vec()),
                ..Default::default()
            },
        );
        let r = record(&m, QUEUE, "us-east-1");
        assert_eq!(
            r.to_string(),
            json!({
                "messageId": "m1",
                "receiptHandle": "rh-m1",
                "body": "{\"a\": 1}",
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1700000000000",
                    "SenderId": "AIDA",
                    "ApproximateFirstReceiveTimestamp": "1700000000001"
                },
                "messageAttributes": {
                    "Author": {"stringValue": "John Grisham", "stringListValues": [],
                               "binaryListValues": [], "dataType": "String"},
                    "Blob": {"binaryValue": "aGk=", "stringListValues": [],
                             "binaryListValues": [], "dataType": "Binary"}
                },
                "md5OfMessageAttributes": "d25a",
                "md5OfBody": "md5",
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE,
                "awsRegion": "us-east-1"
            })
            .to_string(),
            "field order and values as AWS's event"
        );
    }

    #[test]
    fn a_fifo_message_carries_its_group_sequence_and_deduplication_id() {
        let m = message(
            "m1",
            &[
                ("MessageGroupId", "g"),
                ("SequenceNumber", "18849496460467696128"),
                ("MessageDeduplicationId", "d"),
                ("SentTimestamp", "1"),
                ("SenderId", "s"),
                ("ApproximateReceiveCount", "1"),
                ("ApproximateFirstReceiveTimestamp", "2"),
                ("AWSTraceHeader", "Root=1-abc"),
            ],
        );
        let r = record(&m, QUEUE, "us-east-1");
        let keys: Vec<&String> = r["attributes"]
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            [
                "ApproximateReceiveCount",
                "AWSTraceHeader",
                "SentTimestamp",
                "SequenceNumber",
                "MessageGroupId",
                "SenderId",
                "MessageDeduplicationId",
                "ApproximateFirstReceiveTimestamp"
            ]
        );
        assert_eq!(r["md5OfMessageAttributes"], Value::Null);
        assert_eq!(r["messageAttributes"], json!({}));
    }

    #[test]
    fn partial_batch_responses_are_read_as_aws_reads_them() {
        let ids: HashSet<&str> = ["a", "b", "c"].into_iter().collect();
        let read = |s: &str| batch_item_failures(s.as_bytes(), &ids);
        let failed = |list: &[&str]| Outcome::Failed(list.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            read(r#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#),
            failed(&["b"])
        );
        assert_eq!(
            read(r#"{"batchItemFailures":[{"itemIdentifier":"a"},{"itemIdentifier":"c"}]}"#),
            failed(&["a", "c"])
        );
        // Success: empty or null list, empty or null response.
        for ok in [
            r#"{"batchItemFailures":[]}"#,
            r#"{"batchItemFailures":null}"#,
            "{}",
            "null",
            "",
        ] {
            assert_eq!(read(ok), Outcome::AllSucceeded, "{ok}");
        }
        // Failure: not JSON, an empty, null or unknown identifier, a wrong key name.
        for bad in [
            "{not json",
            r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":"zzz"}]}"#,
            r#"{"batchItemFailures":[{"foo":"notvalid"}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":"a"},{"itemIdentifier":"nope"}]}"#,
            r#"{"batchItemFailures":"a"}"#,
        ] {
            assert_eq!(read(bad), Outcome::AllFailed, "{bad}");
        }
    }

    #[test]
    fn a_failed_fifo_message_holds_back_the_rest_of_its_group_only() {
        let batch = [
            held("g1-1", Some("g1")),
            held("g2-1", Some("g2")),
            held("g1-2", Some("g1")),
            held("g2-2", Some("g2")),
            held("g1-3", Some("g1")),
        ];
        let outcome = Outcome::Failed(["g1-2".to_string()].into_iter().collect());
        let fifo = settle(&batch, &outcome, true);
        assert_eq!(ids(&fifo.delete), ["g1-1", "g2-1", "g2-2"]);
        assert_eq!(ids(&fifo.release), ["g1-3"]);
        // A standard queue keeps no order: only the failed message stays.
        let standard = settle(&batch, &outcome, false);
        assert_eq!(ids(&standard.delete), ["g1-1", "g2-1", "g2-2", "g1-3"]);
        assert!(standard.release.is_empty());
    }

    #[test]
    fn a_whole_batch_is_deleted_on_success_and_kept_on_failure() {
        let batch = [held("a", None), held("b", None)];
        let ok = settle(&batch, &Outcome::AllSucceeded, false);
        assert_eq!(ids(&ok.delete), ["a", "b"]);
        let failed = settle(&batch, &Outcome::AllFailed, true);
        assert!(failed.delete.is_empty() && failed.release.is_empty());
    }

    #[test]
    fn a_batch_is_cut_before_the_payload_passes_6_mb() {
        let big = |id: &str| Held {
            record: vec![b'x'; 1024 * 1024],
            ..held(id, None)
        };
        let mut batch = Batch::default();
        let mut refused = None;
        for i in 0..7 {
            if let Some(h) = batch.push(big(&i.to_string())) {
                refused = Some(h);
                break;
            }
        }
        assert_eq!(
            batch.held.len(),
            5,
            "6 records of 1 MiB and the envelope pass 6 MiB"
        );
        assert_eq!(refused.map(|h| h.receipt.message_id), Some("5".to_string()));
        assert!(batch.payload().len() <= MAX_PAYLOAD);
        assert_eq!(batch.payload().len(), ENVELOPE + batch.bytes);
    }

    #[test]
    fn the_payload_is_a_records_list() {
        let mut batch = Batch::default();
        for id in ["a", "b"] {
            let record = record(&message(id, &[]), QUEUE, "us-east-1");
            let h = Held {
                record: record.to_string().into_bytes(),
                ..held(id, None)
            };
            assert!(batch.push(h).is_none());
        }
        let payload: Value = serde_json::from_slice(&batch.payload()).unwrap_or_default();
        let records = payload["Records"].as_array().cloned().unwrap_or_default();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1]["messageId"], "b");
        assert_eq!(records[0]["eventSource"], "aws:sqs");
    }
}
