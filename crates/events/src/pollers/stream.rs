//! What the Kinesis and DynamoDB Streams pollers share, as Lambda's stream pollers behave: one
//! reader per shard (parents read to their end before their children), batches gathered by
//! `BatchSize`, `MaximumBatchingWindowInSeconds` and the 6 MB payload limit, the last processed
//! sequence number of every shard checkpointed durably, and failures handled as AWS does —
//! the shard is blocked while a batch is retried (`MaximumRetryAttempts`,
//! `MaximumRecordAgeInSeconds`, `BisectBatchOnFunctionError`, `ReportBatchItemFailures`), then
//! the batch is described to the `DestinationConfig.OnFailure` target and skipped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use flint_connectors::{IteratorStart, Shard, StreamError, Target, TargetArn};
use flint_engine::InvokeResponse;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{InvokeFailure, Mapping};

/// The largest invoke payload (synchronous invocation): a batch stops growing before it.
pub(crate) const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// AWS's default `BatchSize` for streams.
const DEFAULT_BATCH_SIZE: usize = 100;
/// How often an idle shard is polled (AWS polls each shard about once a second).
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often the shard list is read again (for splits, merges, and DynamoDB's shard roll-over).
const SHARD_LISTING_INTERVAL: Duration = Duration::from_secs(10);
/// Back-off between failed calls to the stream, and between retries of a batch.
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Kinesis GetRecords returns at most 10,000 records.
const MAX_RECORDS_PER_READ: usize = 10_000;

/// `LastProcessingResult` values, as AWS words them.
pub(crate) const RESULT_OK: &str = "OK";
pub(crate) const RESULT_FUNCTION_FAILED: &str = "PROBLEM: Function call failed";
const RESULT_NONE: &str = "No records processed";

/// Which stream service a mapping reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamKind {
    Kinesis,
    DynamoDb,
}

impl StreamKind {
    /// The member of the on-failure record that describes the batch.
    fn batch_info_member(self) -> &'static str {
        match self {
            Self::Kinesis => "KinesisBatchInfo",
            Self::DynamoDb => "DDBStreamBatchInfo",
        }
    }

    /// AWS writes Kinesis arrival times with milliseconds and DynamoDB's without.
    fn batch_info_time(self, secs: f64) -> String {
        let format = match self {
            Self::Kinesis => "%Y-%m-%dT%H:%M:%S%.3fZ",
            Self::DynamoDb => "%Y-%m-%dT%H:%M:%SZ",
        };
        timestamp(secs, format)
    }

    /// What AWS reports when the stream cannot be found.
    fn not_found_problem(self) -> &'static str {
        match self {
            Self::Kinesis => "PROBLEM: Stream not found. Please check your event source.",
            Self::DynamoDb => "PROBLEM: Stream not found. Please check your event source.",
        }
    }
}

fn timestamp(secs: f64, format: &str) -> String {
    let millis = (secs * 1000.0).round() as i64;
    chrono::DateTime::from_timestamp_millis(millis)
        .unwrap_or_default()
        .format(format)
        .to_string()
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// One record read from a shard, ready to go into an event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StreamRecord {
    pub sequence: String,
    /// When the record reached the stream (epoch seconds): its age, and the batch info.
    pub arrival: f64,
    /// The member of the event's `Records`.
    pub event: Value,
    /// The length of `event` as JSON.
    pub size: usize,
    /// It passes the mapping's `FilterCriteria` (one that does not is skipped, not sent).
    pub matched: bool,
}

impl StreamRecord {
    pub(crate) fn new(sequence: String, arrival: f64, event: Value, filters: &Filters) -> Self {
        let size = event.to_string().len();
        let matched = filters.set.matches(filters.source, &event);
        Self {
            sequence,
            arrival,
            event,
            size,
            matched,
        }
    }
}

/// The mapping's `FilterCriteria`, and how its records are read for matching.
#[derive(Debug, Clone)]
pub(crate) struct Filters {
    pub set: flint_filter::FilterSet,
    pub source: flint_filter::Source,
}

impl Filters {
    fn of(config: &Value, kind: StreamKind) -> Result<Self, flint_filter::FilterError> {
        let criteria = config.get("FilterCriteria").unwrap_or(&Value::Null);
        Ok(Self {
            set: flint_filter::FilterSet::parse(criteria)?,
            source: match kind {
                StreamKind::Kinesis => flint_filter::Source::Kinesis,
                StreamKind::DynamoDb => flint_filter::Source::DynamoDbStreams,
            },
        })
    }
}

/// The mapping's settings a stream poller honours, with AWS's defaults.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub batch_size: usize,
    pub batching_window: Duration,
    /// -1: until the record expires.
    pub max_retry_attempts: i64,
    /// -1: no limit.
    pub max_record_age_secs: i64,
    pub bisect: bool,
    pub report_batch_item_failures: bool,
    pub starting_position: IteratorStart,
    pub on_failure: Option<String>,
    pub tumbling_window_secs: i64,
    pub parallelization_factor: i64,
    pub filters: Filters,
}

impl Settings {
    pub(crate) fn of(config: &Value) -> Self {
        let int = |name: &str| config.get(name).and_then(Value::as_i64);
        let starting_position = match config.get("StartingPosition").and_then(Value::as_str) {
            Some("TRIM_HORIZON") => IteratorStart::TrimHorizon,
            Some("AT_TIMESTAMP") => IteratorStart::AtTimestamp(
                config
                    .get("StartingPositionTimestamp")
                    .and_then(Value::as_f64)
                    .unwrap_or_default(),
            ),
            _ => IteratorStart::Latest,
        };
        Self {
            batch_size: int("BatchSize")
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .unwrap_or(DEFAULT_BATCH_SIZE),
            batching_window: Duration::from_secs(
                int("MaximumBatchingWindowInSeconds")
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
            ),
            max_retry_attempts: int("MaximumRetryAttempts").unwrap_or(-1),
            max_record_age_secs: int("MaximumRecordAgeInSeconds").unwrap_or(-1),
            bisect: config
                .get("BisectBatchOnFunctionError")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            report_batch_item_failures: config
                .get("FunctionResponseTypes")
                .and_then(Value::as_array)
                .is_some_and(|types| types.iter().any(|t| t == "ReportBatchItemFailures")),
            starting_position,
            on_failure: config
                .pointer("/DestinationConfig/OnFailure/Destination")
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
                .map(str::to_string),
            tumbling_window_secs: int("TumblingWindowInSeconds").unwrap_or(0),
            parallelization_factor: int("ParallelizationFactor").unwrap_or(1),
            // Parsed by `run` (it can fail); none until then.
            filters: Filters {
                set: flint_filter::FilterSet::default(),
                source: flint_filter::Source::Kinesis,
            },
        }
    }

    /// Retries used up: `invokes` attempts were made, the first one not being a retry.
    fn retries_exhausted(&self, retries: u32) -> bool {
        self.max_retry_attempts >= 0 && i64::from(retries) >= self.max_retry_attempts
    }
}

/// A stream's reads, by service.
pub(crate) struct Source {
    pub kind: StreamKind,
    pub arn: String,
    pub mapping: Mapping,
    pub settings: Settings,
    /// What `LastProcessingResult` last said, restored once a problem is over.
    last_result: Mutex<&'static str>,
}

impl Source {
    async fn shards(&self) -> Result<Vec<Shard>, StreamError> {
        let c = &self.mapping.ctx.connectors;
        match self.kind {
            StreamKind::Kinesis => c.kinesis_shards(&self.arn).await,
            StreamKind::DynamoDb => c.dynamodb_stream_shards(&self.arn).await,
        }
    }

    async fn iterator(&self, shard: &str, start: &IteratorStart) -> Result<String, StreamError> {
        let c = &self.mapping.ctx.connectors;
        match self.kind {
            StreamKind::Kinesis => c.kinesis_iterator(&self.arn, shard, start).await,
            StreamKind::DynamoDb => c.dynamodb_stream_iterator(&self.arn, shard, start).await,
        }
    }

    /// Up to `limit` records, shaped as the event carries them.
    async fn read(
        &self,
        shard: &str,
        iterator: &str,
        limit: usize,
    ) -> Result<(Vec<StreamRecord>, Option<String>), StreamError> {
        let c = &self.mapping.ctx.connectors;
        let limit = i32::try_from(limit.clamp(1, MAX_RECORDS_PER_READ)).unwrap_or(1);
        let filters = &self.settings.filters;
        let read: (Vec<StreamRecord>, Option<String>) = match self.kind {
            StreamKind::Kinesis => {
                let page = c.kinesis_records(&self.arn, iterator, limit).await?;
                let identity = super::kinesis::invoke_identity_arn(&self.mapping);
                let region = self.mapping.spec.scope.region.clone();
                let records = page
                    .records
                    .into_iter()
                    .map(|r| {
                        let event =
                            super::kinesis::event_record(&r, shard, &self.arn, &region, &identity);
                        StreamRecord::new(r.sequence_number, r.arrival, event, filters)
                    })
                    .collect();
                (records, page.next_iterator)
            }
            StreamKind::DynamoDb => {
                let page = c
                    .dynamodb_stream_records(&self.arn, iterator, limit)
                    .await?;
                let records = page
                    .records
                    .into_iter()
                    .map(|r| {
                        let event = super::dynamodb_streams::event_record(&r, &self.arn);
                        StreamRecord::new(r.sequence_number, r.created, event, filters)
                    })
                    .collect();
                (records, page.next_iterator)
            }
        };
        self.mapping
            .counters
            .polled
            .fetch_add(read.0.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(read)
    }

    fn set_result(&self, result: &'static str) {
        *self.last_result.lock() = result;
        self.mapping.report_result(result);
    }

    /// The source can be read again: drop the problem, keep the last processing result.
    fn clear_problem(&self) {
        let last = *self.last_result.lock();
        self.mapping.report_result(last);
    }

    fn report_stream_error(&self, what: &str, e: &StreamError) {
        tracing::warn!(mapping = %self.mapping.uuid(), stream = %self.arn, "{what}: {e}");
        match e {
            StreamError::NotFound(_) => self.mapping.report_problem(self.kind.not_found_problem()),
            StreamError::Throttled(_) | StreamError::ExpiredIterator(_) => {}
            StreamError::Other(_) => self.mapping.report_problem(
                "PROBLEM: Connection error. Please check your event source connection configuration.",
            ),
        }
    }

    /// Sleeps for `d`, or returns false at once if the mapping stops meanwhile.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.mapping.stopped() => false,
            _ = tokio::time::sleep(d) => !self.mapping.is_stopped(),
        }
    }
}

fn next_backoff(current: Duration) -> Duration {
    (current * 2).min(BACKOFF_MAX)
}

/// The stored position of one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Checkpoint {
    /// The last sequence number processed (sent and succeeded, skipped, or discarded).
    sequence: Option<String>,
    /// The shard is closed and every record of it was processed.
    finished: bool,
}

fn checkpoint_name(shard: &str) -> String {
    format!("shard/{shard}")
}

fn load_checkpoint(mapping: &Mapping, shard: &str) -> Option<Checkpoint> {
    let v = mapping.checkpoint(&checkpoint_name(shard))?;
    Some(Checkpoint {
        sequence: v
            .get("sequenceNumber")
            .and_then(Value::as_str)
            .map(str::to_string),
        finished: v.get("finished").and_then(Value::as_bool).unwrap_or(false),
    })
}

async fn save_checkpoint(mapping: &Mapping, shard: &str, checkpoint: &Checkpoint) {
    let value = json!({"sequenceNumber": checkpoint.sequence, "finished": checkpoint.finished});
    if let Err(e) = mapping
        .save_checkpoint(&checkpoint_name(shard), &value)
        .await
    {
        // The records will be delivered again after a restart: at least once, as on AWS.
        tracing::error!(mapping = %mapping.uuid(), shard, "cannot save the shard's checkpoint: {e}");
    }
}

/// Polls the stream until the mapping stops.
pub(crate) async fn run(mapping: Mapping, kind: StreamKind) {
    let Some(arn) = mapping.spec.event_source_arn.clone() else {
        mapping.report_problem("PROBLEM: The event source mapping has no EventSourceArn.");
        mapping.stopped().await;
        return;
    };
    let mut settings = Settings::of(mapping.config());
    match Filters::of(mapping.config(), kind) {
        Ok(filters) => settings.filters = filters,
        Err(e) => {
            // The control plane validates FilterCriteria; a stored one that no longer parses
            // must not let every record through.
            tracing::error!(mapping = %mapping.uuid(), "FilterCriteria cannot be used: {e}");
            mapping.report_problem(&format!("PROBLEM: Invalid FilterCriteria: {e}"));
            mapping.stopped().await;
            return;
        }
    }
    if settings.tumbling_window_secs > 0 {
        // A function written for tumbling windows depends on `state` and the final invoke of
        // each window; running it without them would be silently wrong.
        tracing::error!(mapping = %mapping.uuid(),
            "TumblingWindowInSeconds is not supported by Flint yet: the mapping does not poll");
        mapping.report_problem(
            "PROBLEM: Flint does not support TumblingWindowInSeconds yet; the mapping does not poll.",
        );
        mapping.stopped().await;
        return;
    }
    if settings.parallelization_factor > 1 {
        tracing::info!(mapping = %mapping.uuid(),
            "ParallelizationFactor {} is processed one batch at a time per shard (order kept)",
            settings.parallelization_factor);
    }
    let source = Arc::new(Source {
        kind,
        arn,
        mapping,
        settings,
        last_result: Mutex::new(RESULT_NONE),
    });
    supervise_shards(source).await;
}

/// Keeps one reader per readable shard: lists the shards now and then, and starts a child's
/// reader only once its parents are read to their end.
async fn supervise_shards(source: Arc<Source>) {
    let mapping = &source.mapping;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut readers: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut first_listing = true;
    let mut backoff = BACKOFF_FIRST;
    loop {
        let wait = match source.shards().await {
            Ok(shards) => {
                source.clear_problem();
                backoff = BACKOFF_FIRST;
                let listed: HashSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
                for shard in &shards {
                    if readers.contains_key(&shard.id) || finished.contains(&shard.id) {
                        continue;
                    }
                    let checkpoint = load_checkpoint(mapping, &shard.id);
                    if checkpoint.as_ref().is_some_and(|c| c.finished) {
                        finished.insert(shard.id.clone());
                        continue;
                    }
                    // A parent no longer listed has expired from the stream: nothing to wait for.
                    let parent_done = |p: &Option<String>| {
                        p.as_ref()
                            .is_none_or(|p| finished.contains(p) || !listed.contains(p.as_str()))
                    };
                    if !parent_done(&shard.parent) || !parent_done(&shard.adjacent_parent) {
                        continue;
                    }
                    let start = match checkpoint.and_then(|c| c.sequence) {
                        Some(seq) => IteratorStart::AfterSequence(seq),
                        None => match start_without_checkpoint(
                            &source.settings.starting_position,
                            shard,
                            &listed,
                            first_listing,
                        ) {
                            Some(start) => start,
                            None => {
                                // A closed shard and LATEST: nothing will ever be read from it.
                                finished.insert(shard.id.clone());
                                continue;
                            }
                        },
                    };
                    let reader = tokio::spawn(read_shard(
                        source.clone(),
                        shard.id.clone(),
                        start,
                        done_tx.clone(),
                    ));
                    readers.insert(shard.id.clone(), reader);
                }
                first_listing = false;
                SHARD_LISTING_INTERVAL
            }
            Err(e) => {
                source.report_stream_error("cannot list the stream's shards", &e);
                let wait = backoff;
                backoff = next_backoff(backoff);
                wait
            }
        };
        tokio::select! {
            _ = mapping.stopped() => break,
            _ = tokio::time::sleep(wait) => {}
            Some(shard) = done_rx.recv() => {
                // A shard read to its end: its children can start now.
                readers.remove(&shard);
                finished.insert(shard);
            }
        }
        readers.retain(|_, r| !r.is_finished());
    }
    for (_, reader) in readers {
        let _ = reader.await;
    }
}

/// Where a shard with no checkpoint starts: the mapping's `StartingPosition` for the shards the
/// stream had when the poller started, the beginning for those that appeared since (children
/// of a split or merge, whose records follow their parents'). None: nothing to read.
fn start_without_checkpoint(
    configured: &IteratorStart,
    shard: &Shard,
    listed: &HashSet<&str>,
    first_listing: bool,
) -> Option<IteratorStart> {
    let has_listed_parent = [&shard.parent, &shard.adjacent_parent]
        .into_iter()
        .flatten()
        .any(|p| listed.contains(p.as_str()));
    if !first_listing || has_listed_parent && *configured == IteratorStart::TrimHorizon {
        return Some(IteratorStart::TrimHorizon);
    }
    if shard.closed && *configured == IteratorStart::Latest {
        return None;
    }
    Some(configured.clone())
}

/// Reads one shard until it ends (then reports it on `done`) or the mapping stops.
async fn read_shard(
    source: Arc<Source>,
    shard: String,
    start: IteratorStart,
    done: mpsc::UnboundedSender<String>,
) {
    let mapping = &source.mapping;
    let settings = &source.settings;
    tracing::info!(mapping = %mapping.uuid(), shard, "reading shard from {start:?}");
    let mut position = start;
    let mut iterator: Option<String> = None;
    let mut pending: VecDeque<StreamRecord> = VecDeque::new();
    let mut ended = false;
    let mut backoff = BACKOFF_FIRST;
    loop {
        // Gather a batch: full, the batching window over, the payload limit, or the shard's end.
        let mut window_ends: Option<Instant> =
            (!pending.is_empty()).then(|| Instant::now() + settings.batching_window);
        while !ended && !batch_ready(&pending, settings, window_ends) {
            let it = match &iterator {
                Some(it) => it.clone(),
                None => match source.iterator(&shard, &position).await {
                    Ok(it) => it,
                    Err(e) => {
                        source.report_stream_error("cannot get a shard iterator", &e);
                        if !source.pause(backoff).await {
                            return;
                        }
                        backoff = next_backoff(backoff);
                        continue;
                    }
                },
            };
            let room = settings.batch_size.saturating_sub(matched_count(&pending));
            match source.read(&shard, &it, room.max(1)).await {
                Ok((records, next)) => {
                    backoff = BACKOFF_FIRST;
                    if next.is_none() {
                        ended = true;
                    }
                    iterator = next;
                    let got = !records.is_empty();
                    if let Some(last) = records.last() {
                        position = IteratorStart::AfterSequence(last.sequence.clone());
                    }
                    pending.extend(records);
                    if got && window_ends.is_none() {
                        window_ends = Some(Instant::now() + settings.batching_window);
                    }
                    if got || ended {
                        continue;
                    }
                    // Nothing new: poll again in a second, or when the window closes.
                    let wait = match window_ends {
                        Some(end) => end
                            .saturating_duration_since(Instant::now())
                            .min(POLL_INTERVAL),
                        None => POLL_INTERVAL,
                    };
                    if !source.pause(wait).await {
                        return;
                    }
                }
                Err(StreamError::ExpiredIterator(e)) => {
                    tracing::info!(mapping = %mapping.uuid(), shard, "iterator expired, getting a new one: {e}");
                    iterator = None;
                }
                Err(e) => {
                    source.report_stream_error("cannot read the shard", &e);
                    iterator = None;
                    if !source.pause(backoff).await {
                        return;
                    }
                    backoff = next_backoff(backoff);
                }
            }
        }
        if pending.is_empty() {
            if ended {
                let last = load_checkpoint(mapping, &shard).and_then(|c| c.sequence);
                save_checkpoint(
                    mapping,
                    &shard,
                    &Checkpoint {
                        sequence: last,
                        finished: true,
                    },
                )
                .await;
                tracing::info!(mapping = %mapping.uuid(), shard, "shard read to its end");
                let _ = done.send(shard);
                return;
            }
            continue;
        }
        let batch = take_batch(&mut pending, settings.batch_size);
        if !process(source.as_ref(), settings, &shard, batch).await {
            return;
        }
    }
}

fn matched_count(pending: &VecDeque<StreamRecord>) -> usize {
    pending.iter().filter(|r| r.matched).count()
}

/// The payload size of an event holding `records` (`{"Records":[…]}`).
fn payload_size<'a>(records: impl Iterator<Item = &'a StreamRecord>) -> usize {
    records
        .filter(|r| r.matched)
        .map(|r| r.size + 1)
        .sum::<usize>()
        + 13
}

fn batch_ready(
    pending: &VecDeque<StreamRecord>,
    settings: &Settings,
    window_ends: Option<Instant>,
) -> bool {
    if pending.is_empty() {
        return false;
    }
    matched_count(pending) >= settings.batch_size
        || payload_size(pending.iter()) >= MAX_PAYLOAD_BYTES
        || window_ends.is_some_and(|end| Instant::now() >= end)
}

/// The next batch: records from the front, up to `batch_size` that pass the filters and within
/// the payload limit (always at least one). Records filtered out ride along to be checkpointed
/// past.
pub(crate) fn take_batch(
    pending: &mut VecDeque<StreamRecord>,
    batch_size: usize,
) -> Vec<StreamRecord> {
    let mut batch = Vec::new();
    let mut matched = 0;
    let mut size = 13;
    while let Some(next) = pending.front() {
        if next.matched {
            if matched == batch_size || (matched > 0 && size + next.size + 1 > MAX_PAYLOAD_BYTES) {
                break;
            }
            matched += 1;
            size += next.size + 1;
        }
        if let Some(r) = pending.pop_front() {
            batch.push(r);
        }
    }
    batch
}

/// The event for the records that pass the filters.
fn event_payload(records: &[StreamRecord]) -> Bytes {
    let members: Vec<&Value> = records
        .iter()
        .filter(|r| r.matched)
        .map(|r| &r.event)
        .collect();
    Bytes::from(json!({ "Records": members }).to_string())
}

/// What a function's answer says about its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BatchOutcome {
    Success,
    /// `ReportBatchItemFailures`: the batch failed from this record (index into the records
    /// sent) on.
    FailedFrom(usize),
    /// The whole batch failed (a function error, or a partial response that is not valid).
    Failed,
}

/// Reads a `ReportBatchItemFailures` answer as AWS does: no failures listed (an empty or null
/// list, an empty object, any non-object) is success; an identifier that is empty, missing or
/// not in the batch fails the whole batch; otherwise the batch is retried from the lowest
/// failed record.
pub(crate) fn batch_item_failures(payload: &[u8], sequences: &[&str]) -> BatchOutcome {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return BatchOutcome::Success;
    }
    let Ok(v) = serde_json::from_slice::<Value>(payload) else {
        return BatchOutcome::Failed;
    };
    let Some(object) = v.as_object() else {
        return BatchOutcome::Success;
    };
    let failures = match object.get("batchItemFailures") {
        None | Some(Value::Null) => return BatchOutcome::Success,
        Some(Value::Array(failures)) => failures,
        Some(_) => return BatchOutcome::Failed,
    };
    let mut lowest: Option<usize> = None;
    for failure in failures {
        let id = failure
            .get("itemIdentifier")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty());
        let Some(index) = id.and_then(|id| sequences.iter().position(|s| *s == id)) else {
            return BatchOutcome::Failed;
        };
        lowest = Some(lowest.map_or(index, |l| l.min(index)));
    }
    match lowest {
        None => BatchOutcome::Success,
        Some(i) => BatchOutcome::FailedFrom(i),
    }
}

/// Why a batch is discarded (`requestContext.condition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Discard {
    RetryAttemptsExhausted,
    RecordAgeExceeded,
}

impl Discard {
    fn as_str(self) -> &'static str {
        match self {
            Self::RetryAttemptsExhausted => "RetryAttemptsExhausted",
            Self::RecordAgeExceeded => "RecordAgeExceeded",
        }
    }
}

/// One (sub-)batch and its attempts so far.
struct Work {
    records: Vec<StreamRecord>,
    /// Invokes made with these records (`approximateInvokeCount`).
    invokes: u32,
    /// Retries counted against `MaximumRetryAttempts` (a bisection is not one).
    retries: u32,
}

/// Processes one batch until it succeeds or is discarded, checkpointing as it goes. False when
/// the mapping stopped first (the unprocessed records will be read again).
async fn process<S: ShardIo>(
    source: &S,
    settings: &Settings,
    shard: &str,
    batch: Vec<StreamRecord>,
) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    if let Some(c) = source.counters() {
        let skipped = batch.iter().filter(|r| !r.matched).count();
        c.filtered_out.fetch_add(skipped as u64, Relaxed);
    }
    let mut stack = vec![Work {
        records: batch,
        invokes: 0,
        retries: 0,
    }];
    let mut backoff = BACKOFF_FIRST;
    while let Some(mut work) = stack.pop() {
        loop {
            if !work.records.iter().any(|r| r.matched) {
                // Everything left was filtered out: skipped, as AWS does.
                if let Some(last) = work.records.last() {
                    source.checkpoint(shard, &last.sequence).await;
                }
                break;
            }
            if settings.max_record_age_secs >= 0 {
                let oldest_allowed = now_secs() - settings.max_record_age_secs as f64;
                let expired = work
                    .records
                    .iter()
                    .take_while(|r| r.arrival < oldest_allowed)
                    .count();
                if expired > 0 {
                    let rest = work.records.split_off(expired);
                    let old = std::mem::replace(&mut work.records, rest);
                    source
                        .discard(
                            shard,
                            &old,
                            Discard::RecordAgeExceeded,
                            work.invokes.max(1),
                            None,
                        )
                        .await;
                    continue;
                }
            }
            let payload = event_payload(&work.records);
            work.invokes += 1;
            let outcome = match source.invoke(payload).await {
                Err(e) => {
                    // Not an invoke of the function's code (throttled, missing, Flint's own
                    // fault): retried until the records expire, not counted as a retry.
                    work.invokes -= 1;
                    tracing::warn!(shard, "cannot invoke the function: {e}");
                    if let InvokeFailure::FunctionMissing(_) = e {
                        source.set_result(RESULT_FUNCTION_FAILED);
                    }
                    if !source.pause(backoff).await {
                        return false;
                    }
                    backoff = next_backoff(backoff);
                    continue;
                }
                Ok(response) => (classify(&response, &work.records, settings), response),
            };
            if let Some(c) = source.counters() {
                let sent = work.records.iter().filter(|r| r.matched).count();
                let failed = match outcome.0 {
                    BatchOutcome::Success => 0,
                    BatchOutcome::Failed => sent,
                    BatchOutcome::FailedFrom(index) => sent.saturating_sub(index),
                };
                c.invoked.fetch_add(sent as u64, Relaxed);
                c.failed_invoke.fetch_add(failed as u64, Relaxed);
                if let Some(last) = work.records.last() {
                    let age_ms = ((now_secs() - last.arrival) * 1000.0).max(0.0) as u64;
                    c.iterator_age_ms.store(age_ms, Relaxed);
                }
            }
            match outcome {
                (BatchOutcome::Success, _) => {
                    if let Some(last) = work.records.last() {
                        source.checkpoint(shard, &last.sequence).await;
                    }
                    source.set_result(RESULT_OK);
                    backoff = BACKOFF_FIRST;
                    break;
                }
                (BatchOutcome::FailedFrom(index), response) => {
                    // The records before the lowest failure succeeded: checkpoint them, retry
                    // from the failure.
                    source.set_result(RESULT_FUNCTION_FAILED);
                    let sent: Vec<usize> = (0..work.records.len())
                        .filter(|i| work.records[*i].matched)
                        .collect();
                    let from = sent.get(index).copied().unwrap_or(0);
                    if from > 0 {
                        source
                            .checkpoint(shard, &work.records[from - 1].sequence)
                            .await;
                        work.records.drain(..from);
                    }
                    if settings.retries_exhausted(work.retries) {
                        source
                            .discard(
                                shard,
                                &work.records,
                                Discard::RetryAttemptsExhausted,
                                work.invokes,
                                Some(&response),
                            )
                            .await;
                        break;
                    }
                    work.retries += 1;
                }
                (BatchOutcome::Failed, response) => {
                    source.set_result(RESULT_FUNCTION_FAILED);
                    let sent = work.records.iter().filter(|r| r.matched).count();
                    if settings.bisect && sent > 1 {
                        // Split by the records sent; the halves keep the retries counted so far.
                        let half = work
                            .records
                            .iter()
                            .enumerate()
                            .filter(|(_, r)| r.matched)
                            .nth(sent / 2)
                            .map(|(i, _)| i)
                            .unwrap_or(work.records.len() / 2);
                        let second = work.records.split_off(half);
                        stack.push(Work {
                            records: second,
                            invokes: work.invokes,
                            retries: work.retries,
                        });
                        stack.push(Work {
                            records: std::mem::take(&mut work.records),
                            invokes: work.invokes,
                            retries: work.retries,
                        });
                        break;
                    }
                    if settings.retries_exhausted(work.retries) {
                        source
                            .discard(
                                shard,
                                &work.records,
                                Discard::RetryAttemptsExhausted,
                                work.invokes,
                                Some(&response),
                            )
                            .await;
                        break;
                    }
                    work.retries += 1;
                }
            }
            if !source.pause(backoff).await {
                return false;
            }
            backoff = next_backoff(backoff);
        }
    }
    true
}

fn classify(
    response: &InvokeResponse,
    records: &[StreamRecord],
    settings: &Settings,
) -> BatchOutcome {
    if response.function_error.is_some() {
        return BatchOutcome::Failed;
    }
    if !settings.report_batch_item_failures {
        return BatchOutcome::Success;
    }
    let sequences: Vec<&str> = records
        .iter()
        .filter(|r| r.matched)
        .map(|r| r.sequence.as_str())
        .collect();
    batch_item_failures(&response.payload.contiguous(), &sequences)
}

/// What processing a batch needs from the world: the function, the checkpoint store, the
/// on-failure destination, the mapping's status and the clock (a fake in the tests).
pub(crate) trait ShardIo: Sync {
    fn invoke(
        &self,
        payload: Bytes,
    ) -> impl std::future::Future<Output = Result<InvokeResponse, InvokeFailure>> + Send;
    /// Saves `sequence` as the shard's last processed record.
    fn checkpoint(
        &self,
        shard: &str,
        sequence: &str,
    ) -> impl std::future::Future<Output = ()> + Send;
    /// Gives up on `records`: describes them to the on-failure destination (if any) and
    /// checkpoints past them.
    fn discard(
        &self,
        shard: &str,
        records: &[StreamRecord],
        why: Discard,
        invokes: u32,
        response: Option<&InvokeResponse>,
    ) -> impl std::future::Future<Output = ()> + Send;
    fn set_result(&self, result: &'static str);
    /// The mapping's counters (`GET /metrics`), if it keeps any.
    fn counters(&self) -> Option<&crate::metrics::MappingMetrics> {
        None
    }
    /// Sleeps for `d`; false if the mapping stopped meanwhile.
    fn pause(&self, d: Duration) -> impl std::future::Future<Output = bool> + Send;
}

impl ShardIo for Source {
    fn counters(&self) -> Option<&crate::metrics::MappingMetrics> {
        Some(&self.mapping.counters)
    }

    async fn invoke(&self, payload: Bytes) -> Result<InvokeResponse, InvokeFailure> {
        self.mapping.invoke(payload).await
    }

    async fn checkpoint(&self, shard: &str, sequence: &str) {
        let checkpoint = Checkpoint {
            sequence: Some(sequence.to_string()),
            finished: false,
        };
        save_checkpoint(&self.mapping, shard, &checkpoint).await;
    }

    async fn discard(
        &self,
        shard: &str,
        records: &[StreamRecord],
        why: Discard,
        invokes: u32,
        response: Option<&InvokeResponse>,
    ) {
        let Some(last) = records.last() else { return };
        let matched = records.iter().filter(|r| r.matched).count() as u64;
        self.mapping
            .counters
            .dropped
            .fetch_add(matched, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(mapping = %self.mapping.uuid(), shard, first = %records[0].sequence,
            last = %last.sequence, "discarding {} record(s): {}", records.len(), why.as_str());
        if let Some(destination) = &self.settings.on_failure {
            if records.iter().any(|r| r.matched) {
                let record = failure_record(
                    self.kind,
                    &self.arn,
                    &self.mapping.spec.function_arn,
                    shard,
                    records,
                    why,
                    invokes,
                    response,
                    &now_timestamp(),
                );
                send_failure_record(self, destination, shard, record, records).await;
            }
        }
        self.checkpoint(shard, &last.sequence).await;
    }

    fn set_result(&self, result: &'static str) {
        Source::set_result(self, result)
    }

    async fn pause(&self, d: Duration) -> bool {
        Source::pause(self, d).await
    }
}

fn now_timestamp() -> String {
    timestamp(now_secs(), "%Y-%m-%dT%H:%M:%S%.3fZ")
}

/// AWS's record of a discarded stream batch (version 1.0), members in AWS's order.
#[allow(clippy::too_many_arguments)]
pub(crate) fn failure_record(
    kind: StreamKind,
    stream_arn: &str,
    function_arn: &str,
    shard: &str,
    records: &[StreamRecord],
    why: Discard,
    invokes: u32,
    response: Option<&InvokeResponse>,
    timestamp: &str,
) -> Value {
    let sent: Vec<&StreamRecord> = records.iter().filter(|r| r.matched).collect();
    let (first, last) = match (sent.first(), sent.last()) {
        (Some(f), Some(l)) => (*f, *l),
        _ => return Value::Null,
    };
    let mut record = serde_json::Map::new();
    record.insert(
        "requestContext".into(),
        json!({
            "requestId": uuid::Uuid::new_v4().to_string(),
            "functionArn": function_arn,
            "condition": why.as_str(),
            "approximateInvokeCount": invokes,
        }),
    );
    if let Some(r) = response {
        record.insert(
            "responseContext".into(),
            json!({
                "statusCode": 200,
                "executedVersion": r.executed_version,
                "functionError": r.function_error,
            }),
        );
    }
    record.insert("version".into(), json!("1.0"));
    record.insert("timestamp".into(), json!(timestamp));
    record.insert(
        kind.batch_info_member().into(),
        json!({
            "shardId": shard,
            "startSequenceNumber": first.sequence,
            "endSequenceNumber": last.sequence,
            "approximateArrivalOfFirstRecord": kind.batch_info_time(first.arrival),
            "approximateArrivalOfLastRecord": kind.batch_info_time(last.arrival),
            "batchSize": sent.len(),
            "streamArn": stream_arn,
        }),
    );
    Value::Object(record)
}

/// Delivery attempts of a failure record, with the waits between them (then it is dropped,
/// logged, and the shard moves on).
const DELIVERY_BACKOFF: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

async fn send_failure_record(
    source: &Source,
    destination: &str,
    shard: &str,
    mut record: Value,
    records: &[StreamRecord],
) {
    let mapping = &source.mapping;
    let target = match TargetArn::parse(destination) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(mapping = %mapping.uuid(), "on-failure destination: {e}");
            return;
        }
    };
    if target.target == Target::S3 {
        // An S3 destination also gets the batch itself.
        if let Some(obj) = record.as_object_mut() {
            let payload: Value =
                serde_json::from_slice(&event_payload(records)).unwrap_or(Value::Null);
            obj.insert("payload".into(), payload);
        }
    }
    let body = record.to_string();
    let c = &mapping.ctx.connectors;
    for (attempt, wait) in std::iter::once(None)
        .chain(DELIVERY_BACKOFF.iter().map(Some))
        .enumerate()
    {
        if let Some(wait) = wait {
            if !source.pause(*wait).await {
                return;
            }
        }
        let sent = match target.target {
            Target::Sqs => c.sqs_send(&target, &body, &[], None).await,
            Target::Sns => c.sns_publish(&target, &body, &[]).await,
            Target::S3 => {
                let key = s3_key(mapping.uuid(), shard, chrono::Utc::now());
                c.s3_put(&target, &key, body.clone().into_bytes()).await
            }
            Target::Lambda | Target::EventBus => {
                tracing::error!(mapping = %mapping.uuid(),
                    "{destination}: a stream's on-failure destination must be an SQS queue, SNS topic or S3 bucket");
                return;
            }
        };
        match sent {
            Ok(()) => {
                tracing::info!(mapping = %mapping.uuid(), shard, "failure record sent to {destination}");
                return;
            }
            Err(e) => tracing::warn!(mapping = %mapping.uuid(), attempt = attempt + 1,
                "cannot send the failure record to {destination}: {e}"),
        }
    }
    tracing::error!(mapping = %mapping.uuid(), shard, "failure record dropped: {destination} refused it");
}

/// `aws/lambda/<mapping UUID>/<shard>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<random UUID>`, as AWS
/// names the objects of an S3 on-failure destination.
pub(crate) fn s3_key(uuid: &str, shard: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "aws/lambda/{uuid}/{shard}/{}/{}-{}",
        now.format("%Y/%m/%d"),
        now.format("%Y-%m-%dT%H.%M.%S"),
        uuid::Uuid::new_v4()
    )
}

/// Base64 as the events carry binary data.
pub(crate) fn base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flint_engine::{InvokeError, ThrottleReason};

    fn record(seq: u32) -> StreamRecord {
        StreamRecord::new(
            seq.to_string(),
            now_secs(),
            json!({"kinesis": {"sequenceNumber": seq.to_string(), "data": "e30="}}),
            &Filters::of(&Value::Null, StreamKind::Kinesis).unwrap_or_else(|e| panic!("{e}")),
        )
    }

    fn records(seqs: std::ops::RangeInclusive<u32>) -> Vec<StreamRecord> {
        seqs.map(record).collect()
    }

    /// What the function answers, invoke after invoke (the last one repeats).
    #[derive(Clone)]
    enum Answer {
        Ok(&'static str),
        Error,
        /// Fails when the batch holds the record with this sequence number.
        ErrorWith(&'static str),
        Throttled,
    }

    #[derive(Default)]
    struct Fake {
        answers: Mutex<VecDeque<Answer>>,
        /// Sequence numbers of every batch sent.
        invokes: Mutex<Vec<Vec<String>>>,
        checkpoints: Mutex<Vec<String>>,
        /// (first, last, why, invoke count) of every discarded batch.
        discarded: Mutex<Vec<(String, String, Discard, u32)>>,
        results: Mutex<Vec<&'static str>>,
    }

    impl Fake {
        fn answering(answers: &[Answer]) -> Self {
            let f = Self::default();
            f.answers.lock().extend(answers.iter().cloned());
            f
        }
    }

    fn response(payload: &str, error: bool) -> InvokeResponse {
        InvokeResponse {
            payload: Bytes::from(payload.to_string()).into(),
            function_error: error.then(|| "Unhandled".to_string()),
            log_result: None,
            executed_version: "$LATEST".into(),
        }
    }

    impl ShardIo for Fake {
        async fn invoke(&self, payload: Bytes) -> Result<InvokeResponse, InvokeFailure> {
            let event: Value = serde_json::from_slice(&payload).unwrap_or_default();
            let seqs: Vec<String> = event["Records"]
                .as_array()
                .map(|rs| {
                    rs.iter()
                        .map(|r| {
                            r["kinesis"]["sequenceNumber"]
                                .as_str()
                                .unwrap_or("")
                                .to_string()
                        })
                        .collect()
                })
                .unwrap_or_default();
            self.invokes.lock().push(seqs.clone());
            let answer = {
                let mut answers = self.answers.lock();
                if answers.len() > 1 {
                    answers.pop_front()
                } else {
                    answers.front().cloned()
                }
            };
            match answer.unwrap_or(Answer::Ok("null")) {
                Answer::Ok(payload) => Ok(response(payload, false)),
                Answer::Error => Ok(response("{}", true)),
                Answer::ErrorWith(bad) => Ok(response("{}", seqs.iter().any(|s| s == bad))),
                Answer::Throttled => Err(InvokeFailure::Invoke(InvokeError::Throttled {
                    reason: ThrottleReason::ConcurrentInvocationLimitExceeded,
                })),
            }
        }

        async fn checkpoint(&self, _shard: &str, sequence: &str) {
            self.checkpoints.lock().push(sequence.to_string());
        }

        async fn discard(
            &self,
            shard: &str,
            records: &[StreamRecord],
            why: Discard,
            invokes: u32,
            _response: Option<&InvokeResponse>,
        ) {
            if let (Some(first), Some(last)) = (records.first(), records.last()) {
                self.discarded.lock().push((
                    first.sequence.clone(),
                    last.sequence.clone(),
                    why,
                    invokes,
                ));
                self.checkpoint(shard, &last.sequence).await;
            }
        }

        fn set_result(&self, result: &'static str) {
            self.results.lock().push(result);
        }

        async fn pause(&self, _d: Duration) -> bool {
            true
        }
    }

    fn settings(config: Value) -> Settings {
        Settings::of(&config)
    }

    #[tokio::test]
    async fn a_successful_batch_is_checkpointed_at_its_last_record() {
        let fake = Fake::answering(&[Answer::Ok("null")]);
        assert!(process(&fake, &settings(json!({})), "s", records(1..=3)).await);
        assert_eq!(*fake.invokes.lock(), [vec!["1", "2", "3"]]);
        assert_eq!(*fake.checkpoints.lock(), ["3"]);
        assert_eq!(*fake.results.lock(), [RESULT_OK]);
    }

    #[tokio::test]
    async fn a_failing_batch_is_retried_then_discarded_after_maximum_retry_attempts() {
        let fake = Fake::answering(&[Answer::Error]);
        let s = settings(json!({"MaximumRetryAttempts": 2}));
        assert!(process(&fake, &s, "s", records(1..=2)).await);
        assert_eq!(fake.invokes.lock().len(), 3);
        assert_eq!(
            *fake.discarded.lock(),
            [(
                "1".to_string(),
                "2".to_string(),
                Discard::RetryAttemptsExhausted,
                3
            )]
        );
        assert_eq!(*fake.checkpoints.lock(), ["2"]);
        assert_eq!(fake.results.lock().last(), Some(&RESULT_FUNCTION_FAILED));
    }

    #[tokio::test]
    async fn a_batch_that_succeeds_on_retry_is_not_discarded() {
        let fake = Fake::answering(&[Answer::Error, Answer::Ok("")]);
        assert!(process(&fake, &settings(json!({})), "s", records(1..=2)).await);
        assert_eq!(fake.invokes.lock().len(), 2);
        assert!(fake.discarded.lock().is_empty());
        assert_eq!(*fake.checkpoints.lock(), ["2"]);
    }

    #[tokio::test]
    async fn throttles_are_retried_without_using_the_retry_quota() {
        let fake = Fake::answering(&[Answer::Throttled, Answer::Throttled, Answer::Ok("{}")]);
        let s = settings(json!({"MaximumRetryAttempts": 0}));
        assert!(process(&fake, &s, "s", records(1..=1)).await);
        assert!(fake.discarded.lock().is_empty());
        assert_eq!(*fake.checkpoints.lock(), ["1"]);
    }

    #[tokio::test]
    async fn bisection_isolates_the_bad_record_without_using_the_retry_quota() {
        let fake = Fake::answering(&[Answer::ErrorWith("3")]);
        let s = settings(json!({"BisectBatchOnFunctionError": true, "MaximumRetryAttempts": 0}));
        assert!(process(&fake, &s, "s", records(1..=4)).await);
        assert_eq!(
            *fake.invokes.lock(),
            [
                vec!["1", "2", "3", "4"],
                vec!["1", "2"],
                vec!["3", "4"],
                vec!["3"],
                vec!["4"]
            ]
        );
        assert_eq!(
            *fake.discarded.lock(),
            [(
                "3".to_string(),
                "3".to_string(),
                Discard::RetryAttemptsExhausted,
                3
            )]
        );
        assert_eq!(*fake.checkpoints.lock(), ["2", "3", "4"]);
    }

    #[tokio::test]
    async fn a_partial_batch_failure_checkpoints_before_the_lowest_failed_record() {
        let fake = Fake::answering(&[
            Answer::Ok(
                r#"{"batchItemFailures": [{"itemIdentifier": "4"}, {"itemIdentifier": "3"}]}"#,
            ),
            Answer::Ok(r#"{"batchItemFailures": []}"#),
        ]);
        let s = settings(json!({"FunctionResponseTypes": ["ReportBatchItemFailures"]}));
        assert!(process(&fake, &s, "s", records(1..=5)).await);
        assert_eq!(
            *fake.invokes.lock(),
            [vec!["1", "2", "3", "4", "5"], vec!["3", "4", "5"]]
        );
        assert_eq!(*fake.checkpoints.lock(), ["2", "5"]);
    }

    #[tokio::test]
    async fn a_partial_batch_failure_that_persists_is_discarded_from_the_failed_record() {
        let fake = Fake::answering(&[Answer::Ok(
            r#"{"batchItemFailures": [{"itemIdentifier": "3"}]}"#,
        )]);
        let s = settings(json!({"FunctionResponseTypes": ["ReportBatchItemFailures"],
            "MaximumRetryAttempts": 1}));
        assert!(process(&fake, &s, "s", records(1..=3)).await);
        assert_eq!(*fake.invokes.lock(), [vec!["1", "2", "3"], vec!["3"]]);
        assert_eq!(
            *fake.discarded.lock(),
            [(
                "3".to_string(),
                "3".to_string(),
                Discard::RetryAttemptsExhausted,
                2
            )]
        );
    }

    #[tokio::test]
    async fn records_older_than_the_maximum_age_are_discarded_unsent() {
        let fake = Fake::answering(&[Answer::Ok("null")]);
        let mut batch = records(1..=3);
        batch[0].arrival -= 120.0;
        batch[1].arrival -= 120.0;
        let s = settings(json!({"MaximumRecordAgeInSeconds": 60}));
        assert!(process(&fake, &s, "s", batch).await);
        assert_eq!(
            *fake.discarded.lock(),
            [(
                "1".to_string(),
                "2".to_string(),
                Discard::RecordAgeExceeded,
                1
            )]
        );
        assert_eq!(*fake.invokes.lock(), [vec!["3"]]);
        assert_eq!(*fake.checkpoints.lock(), ["2", "3"]);
    }

    #[tokio::test]
    async fn records_filtered_out_are_skipped_and_checkpointed_past() {
        let fake = Fake::answering(&[Answer::Ok("null")]);
        let mut batch = records(1..=3);
        batch[2].matched = false;
        assert!(process(&fake, &settings(json!({})), "s", batch).await);
        assert_eq!(*fake.invokes.lock(), [vec!["1", "2"]]);
        assert_eq!(*fake.checkpoints.lock(), ["3"]);

        let fake = Fake::default();
        let mut batch = records(1..=2);
        batch.iter_mut().for_each(|r| r.matched = false);
        assert!(process(&fake, &settings(json!({})), "s", batch).await);
        assert!(fake.invokes.lock().is_empty());
        assert_eq!(*fake.checkpoints.lock(), ["2"]);
    }

    #[test]
    fn partial_batch_responses_are_read_as_aws_reads_them() {
        let seqs = ["1", "2", "3"];
        for ok in [
            "",
            "null",
            "{}",
            "\"\"",
            r#"{"batchItemFailures": []}"#,
            r#"{"batchItemFailures": null}"#,
            "[]",
        ] {
            assert_eq!(
                batch_item_failures(ok.as_bytes(), &seqs),
                BatchOutcome::Success,
                "{ok}"
            );
        }
        for failed in [
            r#"{"batchItemFailures": [{"itemIdentifier": ""}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": null}]}"#,
            r#"{"batchItemFailures": [{"foo": "2"}]}"#,
            r#"{"batchItemFailures": [{"foo": null}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": "9"}]}"#,
            r#"{"batchItemFailures": "2"}"#,
            "not json",
        ] {
            assert_eq!(
                batch_item_failures(failed.as_bytes(), &seqs),
                BatchOutcome::Failed,
                "{failed}"
            );
        }
        let partial =
            r#"{"batchItemFailures": [{"itemIdentifier": "3"}, {"itemIdentifier": "2"}]}"#;
        assert_eq!(
            batch_item_failures(partial.as_bytes(), &seqs),
            BatchOutcome::FailedFrom(1)
        );
    }

    #[test]
    fn a_batch_stops_at_the_batch_size_and_the_payload_limit() {
        let mut pending: VecDeque<StreamRecord> = records(1..=5).into();
        pending[1].matched = false;
        let batch = take_batch(&mut pending, 2);
        let seqs: Vec<&str> = batch.iter().map(|r| r.sequence.as_str()).collect();
        assert_eq!(seqs, ["1", "2", "3"]);
        assert_eq!(pending.len(), 2);

        let mut big: VecDeque<StreamRecord> = records(1..=3).into();
        big.iter_mut().for_each(|r| r.size = 4 * 1024 * 1024);
        assert_eq!(take_batch(&mut big, 100).len(), 1);
        assert_eq!(big.len(), 2);
    }

    #[test]
    fn the_failure_record_has_awss_shape() {
        let mut batch = records(7..=8);
        batch[0].arrival = 1_657_720_081.0;
        batch[1].arrival = 1_657_720_082.5;
        let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/s";
        let r = failure_record(
            StreamKind::Kinesis,
            arn,
            "arn:aws:lambda:us-east-1:000000000000:function:f",
            "shardId-000000000000",
            &batch,
            Discard::RetryAttemptsExhausted,
            2,
            Some(&response("{}", true)),
            "2022-07-13T13:48:01.000Z",
        );
        let members: Vec<&String> = r
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert_eq!(
            members,
            [
                "requestContext",
                "responseContext",
                "version",
                "timestamp",
                "KinesisBatchInfo"
            ]
        );
        assert_eq!(r["requestContext"]["condition"], "RetryAttemptsExhausted");
        assert_eq!(r["requestContext"]["approximateInvokeCount"], 2);
        assert_eq!(
            r["responseContext"],
            json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"})
        );
        assert_eq!(
            r["KinesisBatchInfo"],
            json!({"shardId": "shardId-000000000000", "startSequenceNumber": "7",
                "endSequenceNumber": "8",
                "approximateArrivalOfFirstRecord": "2022-07-13T13:48:01.000Z",
                "approximateArrivalOfLastRecord": "2022-07-13T13:48:02.500Z",
                "batchSize": 2, "streamArn": arn})
        );
        let ddb = failure_record(
            StreamKind::DynamoDb,
            arn,
            "f",
            "s",
            &batch,
            Discard::RecordAgeExceeded,
            1,
            None,
            "t",
        );
        assert!(ddb.get("responseContext").is_none());
        assert_eq!(
            ddb["DDBStreamBatchInfo"]["approximateArrivalOfFirstRecord"],
            "2022-07-13T13:48:01Z"
        );
    }

    #[test]
    fn settings_default_as_aws_does() {
        let s = settings(json!({}));
        assert_eq!(s.batch_size, 100);
        assert_eq!((s.max_retry_attempts, s.max_record_age_secs), (-1, -1));
        assert_eq!(s.starting_position, IteratorStart::Latest);
        let s = settings(
            json!({"StartingPosition": "AT_TIMESTAMP", "StartingPositionTimestamp": 1.5e9,
            "DestinationConfig": {"OnFailure": {}}}),
        );
        assert_eq!(s.starting_position, IteratorStart::AtTimestamp(1.5e9));
        assert_eq!(s.on_failure, None);
    }

    #[test]
    fn children_of_a_split_are_read_from_their_start() {
        let shard = |id: &str, parent: Option<&str>, closed| Shard {
            id: id.into(),
            parent: parent.map(str::to_string),
            adjacent_parent: None,
            closed,
        };
        let listed: HashSet<&str> = ["p", "c"].into_iter().collect();
        let latest = IteratorStart::Latest;
        assert_eq!(
            start_without_checkpoint(&latest, &shard("p", None, true), &listed, true),
            None
        );
        assert_eq!(
            start_without_checkpoint(&latest, &shard("c", Some("p"), false), &listed, true),
            Some(IteratorStart::Latest)
        );
        assert_eq!(
            start_without_checkpoint(&latest, &shard("c", Some("p"), false), &listed, false),
            Some(IteratorStart::TrimHorizon)
        );
    }

    #[test]
    fn records_are_matched_against_the_filter_criteria_by_source() {
        let config = |pattern: &str| json!({"FilterCriteria": {"Filters": [{"Pattern": pattern}]}});
        let kinesis = Filters::of(&config(r#"{"data": {"kind": ["a"]}}"#), StreamKind::Kinesis)
            .unwrap_or_else(|e| panic!("{e}"));
        let with = |data: &str| json!({"kinesis": {"data": base64(data.as_bytes())}});
        let record = |event: Value, filters: &Filters| {
            StreamRecord::new("1".into(), 0.0, event, filters).matched
        };
        assert!(record(with(r#"{"kind": "a"}"#), &kinesis));
        assert!(!record(with(r#"{"kind": "b"}"#), &kinesis));
        let ddb = Filters::of(
            &config(r#"{"eventName": ["INSERT"]}"#),
            StreamKind::DynamoDb,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(record(json!({"eventName": "INSERT"}), &ddb));
        assert!(!record(json!({"eventName": "REMOVE"}), &ddb));
        assert!(Filters::of(&config("not json"), StreamKind::DynamoDb).is_err());
    }

    #[test]
    fn s3_objects_are_named_as_aws_names_them() {
        let at = chrono::DateTime::from_timestamp(1_657_720_081, 0).unwrap_or_default();
        let key = s3_key("u", "shardId-1", at);
        assert!(
            key.starts_with("aws/lambda/u/shardId-1/2022/07/13/2022-07-13T13.48.01-"),
            "{key}"
        );
    }
}
