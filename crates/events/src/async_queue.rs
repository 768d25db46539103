//! Asynchronous (`Event`) invokes: each event is written to the store before the caller gets its
//! 202 (several accepts share one transaction: group commit), then run by a bounded set of
//! background workers with Lambda's retry policy — by default 2 retries after a function error,
//! about 1 then 2 minutes apart, and throttles retried with back-off up to the 6-hour maximum
//! event age; the event invoke config of the qualifier invoked (`MaximumRetryAttempts`,
//! `MaximumEventAgeInSeconds`, destinations) replaces the defaults. An event's next due time is
//! stored, so a restart keeps the schedule. When an event is done its outcome goes to the
//! configured destination or dead-letter queue ([`crate::destination`]).
//!
//! A stored event ([`EventRecord`], format [`FORMAT`]) names the function version it was accepted
//! for; it never embeds the engine's in-memory spec. Each attempt runs what that version is now.
//!
//! Three tasks, so that neither side starves the other: the committer (all writes, batched), the
//! scheduler (due times, worker slots) and the attempts themselves.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use base64::Engine as _;
use flint_engine::{Engine, InvokeError, InvokeRequest, InvokeResponse};
use flint_spec::{EventInvokeConfig, Scope};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;

use crate::destination::{self, Condition};
use crate::functions::Functions;
use crate::visibility::Counts;

/// Store document kind of a pending async event.
pub const KIND: &str = "async-event";

/// The current record format. Format 0 (before formats existed) embedded the whole function
/// spec under `function`; format 1 had no due time (an event was due at start-up) and kept no
/// trace of its last failed attempt. [`upgrade`] brings either to this one.
pub const FORMAT: u32 = 2;

/// Lambda's defaults (MaximumRetryAttempts, MaximumEventAgeInSeconds, the delay before the
/// first retry: about a minute, then twice that).
const DEFAULT_MAX_RETRIES: u32 = 2;
const DEFAULT_MAX_EVENT_AGE: Duration = Duration::from_secs(6 * 3600);
pub const DEFAULT_RETRY_BASE_DELAY: Duration = Duration::from_secs(60);
const THROTTLE_BACKOFF_START: Duration = Duration::from_secs(1);
const THROTTLE_BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Accepts written in one transaction at most.
const COMMIT_BATCH: usize = 512;
/// Synchronous invokes count as flowing for this long after one started (longer than a warm
/// invoke takes, even on a loaded machine): meanwhile the queue yields to them (see [`dispatch`]).
const SYNC_QUIET: Duration = Duration::from_millis(10);
/// While synchronous invokes flow, an attempt starts only if none is running and the last one
/// started at least this long ago: a backlog still moves (up to 200 events/s) without taking the
/// CPU synchronous callers wait for.
const YIELD_TRICKLE: Duration = Duration::from_millis(5);

/// A queued event as stored (one document per event, keyed by request id, in the function's
/// account and region).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub function_name: String,
    /// The version it was accepted for (`$LATEST` or a number; an alias resolved).
    pub version: String,
    /// The snapshot that version was then (for the record; each attempt runs the version's
    /// current snapshot).
    pub snapshot_id: String,
    /// The qualifier the caller invoked (a version or alias), if any: its event invoke config
    /// applies.
    #[serde(default)]
    pub qualifier: Option<String>,
    pub invoked_arn: String,
    /// The event payload, base64.
    pub payload: String,
    pub request_id: String,
    #[serde(default)]
    pub client_context: Option<String>,
    pub enqueued_at_ms: u64,
    /// Attempts already made that ended in a function or system error (survives a restart).
    #[serde(default)]
    pub attempts: u32,
    /// When the next attempt is due (ms since the epoch; 0: at once).
    #[serde(default)]
    pub due_at_ms: u64,
    /// The last failed attempt, for the record an `EventAgeExceeded` destination gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<AttemptRecord>,
    /// The X-Ray trace header the event came with (its recursion lineage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_header: Option<String>,
}

/// What an attempt answered, as an invocation record reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub status_code: u16,
    pub executed_version: String,
    #[serde(default)]
    pub function_error: Option<String>,
    /// The response payload, base64.
    pub payload: String,
}

impl AttemptRecord {
    /// What an event stopped for being in a recursive loop reports (AWS's 400 and error).
    pub(crate) fn recursive_loop(version: &str) -> Self {
        let error = serde_json::json!({
            "errorType": "RecursiveInvocationException",
            "errorMessage": "Lambda has detected your function being invoked in a recursive loop with other AWS resources and stopped your function's invocation.",
        });
        Self {
            status_code: 400,
            executed_version: version.to_string(),
            function_error: None,
            payload: base64::engine::general_purpose::STANDARD.encode(error.to_string()),
        }
    }

    fn of(result: &Result<InvokeResponse, InvokeError>, version: &str) -> Self {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        match result {
            Ok(r) => Self {
                status_code: 200,
                executed_version: r.executed_version.clone(),
                function_error: r.function_error.clone(),
                payload: b64(&r.payload.contiguous()),
            },
            Err(e) => {
                let (status, kind) = match e {
                    InvokeError::Throttled { .. } => (429, "TooManyRequestsException"),
                    InvokeError::InvalidRuntime(_) => (502, "InvalidRuntimeException"),
                    InvokeError::Service(_) => (500, "ServiceException"),
                };
                let body = serde_json::json!({"errorMessage": e.to_string(), "errorType": kind});
                Self {
                    status_code: status,
                    executed_version: version.to_string(),
                    function_error: None,
                    payload: b64(body.to_string().as_bytes()),
                }
            }
        }
    }

    pub fn payload_bytes(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.payload)
            .unwrap_or_default()
    }
}

/// Format 0 or 1 → [`FORMAT`].
pub fn upgrade(from: u32, v: serde_json::Value) -> Result<serde_json::Value, String> {
    match from {
        0 => upgrade_1_to_2(upgrade_0_to_1(v)?),
        1 => upgrade_1_to_2(v),
        _ => Err(format!("no upgrade from async-event format {from}")),
    }
}

/// Format 0 → 1: the embedded spec becomes a reference to the function version.
fn upgrade_0_to_1(mut v: serde_json::Value) -> Result<serde_json::Value, String> {
    let function = v
        .get_mut("function")
        .map(serde_json::Value::take)
        .ok_or("format 0 event without `function`")?;
    let field = |name: &str| {
        function
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("format 0 event's function has no `{name}`"))
    };
    let obj = v.as_object_mut().ok_or("an event is not a JSON object")?;
    obj.remove("function");
    obj.insert("function_name".into(), field("function_name")?.into());
    obj.insert("version".into(), field("version")?.into());
    obj.insert("snapshot_id".into(), field("snapshot_id")?.into());
    let qualifier = obj
        .get("invoked_arn")
        .and_then(serde_json::Value::as_str)
        .and_then(qualifier_of);
    obj.insert("qualifier".into(), qualifier.into());
    Ok(v)
}

/// Format 1 → 2: a format 1 event was due at start-up, which `due_at_ms: 0` says.
fn upgrade_1_to_2(mut v: serde_json::Value) -> Result<serde_json::Value, String> {
    let obj = v.as_object_mut().ok_or("an event is not a JSON object")?;
    obj.entry("due_at_ms").or_insert(0.into());
    Ok(v)
}

/// The qualifier of a function ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME:QUALIFIER`).
pub(crate) fn qualifier_of(arn: &str) -> Option<String> {
    arn.split(':').nth(7).map(str::to_string)
}

/// An event on its way to a worker.
#[derive(Debug, Clone)]
pub struct Pending {
    pub scope: Scope,
    pub record: EventRecord,
    /// Its key in the store ([`store_key`]).
    key: String,
    /// The next throttle back-off (in memory: a restart starts over).
    throttle_backoff: Duration,
    /// Its last attempt was throttled: it waits for its function to have room (see [`Parked`]).
    throttled: bool,
}

/// An event's key in the store: its enqueue time (zero-padded milliseconds), then its request
/// id. Keys in enqueue order put a group commit's new events side by side on the B-tree's last
/// page, and a draining queue's deletes on its first ones: a commit writes a page or two, not one
/// page per event (request ids alone are random). Releases before this keyed events by request
/// id alone; [`pending`] re-keys them.
pub fn store_key(record: &EventRecord) -> String {
    format!("{:015}.{}", record.enqueued_at_ms, record.request_id)
}

impl Pending {
    pub fn new(scope: Scope, record: EventRecord) -> Self {
        Self {
            key: store_key(&record),
            scope,
            record,
            throttle_backoff: THROTTLE_BACKOFF_START,
            throttled: false,
        }
    }

    /// The function whose concurrency its attempts use.
    fn function_key(&self) -> FunctionKey {
        (
            self.scope.account.clone(),
            self.scope.region.clone(),
            self.record.function_name.clone(),
        )
    }

    fn key(&self) -> flint_store::DocKey<'_> {
        flint_store::DocKey {
            account: &self.scope.account,
            region: &self.scope.region,
            kind: KIND,
            key: &self.key,
        }
    }
}

/// Milliseconds since the epoch (the clock due times are stored in).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A write for the committer.
enum Write {
    Put { event: Pending, then: Then },
    Delete(Pending),
}

/// What the committer does once a stored event is durable (or could not be stored).
enum Then {
    /// A new event: counted as queued and scheduled, then its caller (waiting for its 202) told.
    Accept(oneshot::Sender<Result<(), String>>),
    /// A retry with its due time: scheduled (even if it could not be stored: it still runs),
    /// then its attempt told.
    Retry(oneshot::Sender<Result<(), String>>),
}

pub(crate) struct Queue {
    engine: Arc<Engine>,
    pub(crate) functions: Arc<Functions>,
    pub(crate) connectors: Arc<flint_connectors::Connectors>,
    pub(crate) counts: Counts,
    writes: mpsc::UnboundedSender<Write>,
    schedule: mpsc::UnboundedSender<Pending>,
    retry_base_delay: Duration,
    stopped: AtomicBool,
    /// Attempts handed to the engine so far (the engine counts sync and async together; the
    /// difference is the synchronous invokes the dispatcher yields to).
    attempts_invoked: AtomicU64,
    pub(crate) commit_stats: Arc<CommitStats>,
}

/// The receiving ends of the queue's channels, for [`commit`] and [`dispatch`].
pub(crate) struct Receivers {
    pub(crate) writes: Writes,
    pub(crate) schedule: mpsc::UnboundedReceiver<Pending>,
}

/// The committer's end.
pub(crate) struct Writes {
    rx: mpsc::UnboundedReceiver<Write>,
    stats: Arc<CommitStats>,
}

/// What the committer has done since start-up: transactions, and writes in them (their ratio is
/// the group commit's batch size).
#[derive(Debug, Default)]
pub struct CommitStats {
    pub commits: AtomicU64,
    pub writes: AtomicU64,
}

impl Queue {
    /// The queue and its receiving ends.
    pub(crate) fn open(
        engine: Arc<Engine>,
        functions: Arc<Functions>,
        connectors: Arc<flint_connectors::Connectors>,
        retry_base_delay: Duration,
    ) -> (Arc<Self>, Receivers) {
        let (writes_tx, writes) = mpsc::unbounded_channel();
        let (schedule_tx, schedule) = mpsc::unbounded_channel();
        let stats = Arc::new(CommitStats::default());
        let queue = Arc::new(Self {
            engine,
            functions,
            connectors,
            counts: Counts::default(),
            writes: writes_tx,
            schedule: schedule_tx,
            retry_base_delay,
            stopped: AtomicBool::new(false),
            attempts_invoked: AtomicU64::new(0),
            commit_stats: stats.clone(),
        });
        (
            queue,
            Receivers {
                writes: Writes { rx: writes, stats },
                schedule,
            },
        )
    }

    /// Hands an event that is already stored to the scheduler.
    pub(crate) fn requeue(&self, event: Pending) {
        self.counts
            .queued(&event.scope, &event.record.function_name);
        let _ = self.schedule.send(event);
    }

    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    /// Durably stores the event (in the next group commit), then queues it for a worker.
    pub(crate) async fn enqueue(&self, req: InvokeRequest) -> Result<(), InvokeError> {
        let f = &req.function;
        let event = Pending::new(
            Scope {
                account: f.account.clone(),
                region: f.region.clone(),
            },
            EventRecord {
                function_name: f.function_name.clone(),
                version: f.version.clone(),
                snapshot_id: f.snapshot_id.clone(),
                qualifier: qualifier_of(&req.invoked_arn),
                invoked_arn: req.invoked_arn.clone(),
                payload: base64::engine::general_purpose::STANDARD.encode(req.payload.contiguous()),
                request_id: req.request_id.clone(),
                client_context: req.client_context.clone(),
                enqueued_at_ms: now_ms(),
                attempts: 0,
                due_at_ms: 0,
                last_attempt: None,
                trace_header: req.trace_header.clone(),
            },
        );
        self.accept(event).await.map_err(InvokeError::Service)
    }

    /// Stores a new event; once it is durable the committer schedules it, then this returns.
    pub(crate) async fn accept(&self, event: Pending) -> Result<(), String> {
        if self.stopped.load(Ordering::Acquire) {
            return Err("Flint is shutting down".into());
        }
        let (done, stored) = oneshot::channel();
        self.writes
            .send(Write::Put {
                event,
                then: Then::Accept(done),
            })
            .map_err(|_| "the async queue is stopped".to_string())?;
        stored
            .await
            .map_err(|_| "the async queue is stopped".to_string())?
    }

    /// The function version an event runs now, the request for its next attempt and the event
    /// invoke config that applies; Err: the event cannot run any more.
    fn request(&self, event: &Pending) -> Result<NextAttempt, String> {
        let r = &event.record;
        let state = self
            .functions
            .get(&event.scope, &r.function_name)
            .ok_or_else(|| format!("function {} no longer exists", r.function_name))?;
        let spec = state.versions.get(&r.version).cloned().ok_or_else(|| {
            format!(
                "version {} of function {} no longer exists",
                r.version, r.function_name
            )
        })?;
        let payload = base64::engine::general_purpose::STANDARD
            .decode(&r.payload)
            .map_err(|e| format!("stored payload is not base64: {e}"))?;
        let config = state.event_invoke_config(r.qualifier.as_deref()).cloned();
        let dead_letter = state.dead_letter_targets.get(&r.version).cloned();
        let recursive_loop = state.recursive_loop != "Allow"
            && flint_engine::lineage::count(r.trace_header.as_deref(), &state.arn)
                > flint_engine::lineage::MAX_INVOCATIONS;
        Ok(NextAttempt {
            req: InvokeRequest {
                function: spec,
                invoked_arn: r.invoked_arn.clone(),
                payload: payload.into(),
                client_context: r.client_context.clone(),
                tail_log: false,
                request_id: r.request_id.clone(),
                trace_header: r.trace_header.clone(),
                async_attempt: Some(r.attempts + 1),
            },
            dead_letter,
            config,
            recursive_loop,
        })
    }

    /// Schedules a retry; with `persist`, once its attempt count and due time are durable (in
    /// the next group commit, waited for: a crash after an attempt is done cannot run its retry
    /// early or count the attempt again). A throttled retry is not stored (a restart runs it at
    /// once, as the throttle may have passed).
    async fn retry_at(&self, event: Pending, persist: bool) {
        if !persist {
            let _ = self.schedule.send(event);
            return;
        }
        let (done, stored) = oneshot::channel();
        let rid = event.record.request_id.clone();
        match self.writes.send(Write::Put {
            event,
            then: Then::Retry(done),
        }) {
            Ok(()) => {
                if let Ok(Err(e)) = stored.await {
                    tracing::warn!(request_id = %rid, "a retry's due time was not stored: {e}");
                }
            }
            Err(_) => tracing::warn!(request_id = %rid, "the async queue is stopped"),
        }
    }

    pub(crate) fn forget(&self, event: Pending) {
        self.counts.done(&event.scope, &event.record.function_name);
        let _ = self.writes.send(Write::Delete(event));
    }
}

/// Writes what the queue sends, as many writes per transaction as have arrived meanwhile
/// (group commit): durability costs one fsync per batch, not one per request, and the next
/// batch forms while this one's fsync runs. A new event is scheduled once it is durable, before
/// its caller is answered.
pub(crate) async fn commit(
    store: Arc<flint_store::Store>,
    mut writes_in: Writes,
    queue: Weak<Queue>,
) {
    let mut batch = Vec::with_capacity(COMMIT_BATCH);
    while writes_in.rx.recv_many(&mut batch, COMMIT_BATCH).await > 0 {
        // The first accept of a round wakes this task, and Tokio runs a task woken that way
        // next: without a yield it would commit alone while the requests read in the same
        // round queue behind it for the next fsync. Yielding lets the tasks already runnable
        // (and the sockets already readable) hand theirs in first; it adds no wait when none are.
        tokio::task::yield_now().await;
        while batch.len() < COMMIT_BATCH {
            match writes_in.rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        writes_in.stats.commits.fetch_add(1, Ordering::Relaxed);
        writes_in
            .stats
            .writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let writes = std::mem::take(&mut batch);
        let store = store.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut values = Vec::with_capacity(writes.len());
            for w in &writes {
                if let Write::Put { event, .. } = w {
                    values.push(serde_json::to_string(&event.record).map_err(|e| e.to_string()));
                }
            }
            let result = (|| {
                let values = values.into_iter().collect::<Result<Vec<_>, _>>()?;
                let mut puts = Vec::with_capacity(values.len());
                let mut deletes = Vec::new();
                let mut value = values.iter();
                for w in &writes {
                    match w {
                        Write::Put { event, .. } => {
                            if let Some(v) = value.next() {
                                puts.push((event.key(), FORMAT, v.as_str()));
                            }
                        }
                        Write::Delete(event) => deletes.push(event.key()),
                    }
                }
                store
                    .write_records(&puts, &deletes)
                    .map_err(|e| format!("storing async events: {e}"))
            })();
            (writes, result)
        })
        .await;
        let Ok((writes, result)) = written else {
            tracing::error!("the async queue's writer panicked");
            continue;
        };
        if let Err(e) = &result {
            tracing::warn!("{e}");
        }
        let queue = queue.upgrade();
        for w in writes {
            let Write::Put { event, then } = w else {
                continue;
            };
            match then {
                Then::Accept(done) => {
                    if let (Ok(()), Some(q)) = (&result, &queue) {
                        q.requeue(event);
                    }
                    let _ = done.send(result.clone());
                }
                Then::Retry(done) => {
                    if let Some(q) = &queue {
                        let _ = q.schedule.send(event);
                    }
                    let _ = done.send(result.clone());
                }
            }
        }
    }
}

/// (account, region, function name): whose concurrency an event's attempts use.
type FunctionKey = (String, String, String);

/// Events whose last attempt was throttled, per function, oldest first. Each waits for its
/// back-off or for an attempt of its function to end (the concurrency it held is free again),
/// whichever comes first: as on AWS, a backlog behind a busy function flows as soon as the
/// function has room, instead of each event backing off on its own for up to 5 minutes
/// (LocalStack's test_async_invoke_queue_upon_function_update: 15 events behind a reserved
/// concurrency of 1 and a 22 s invoke all ran within the next two minutes).
#[derive(Default)]
struct Parked {
    by_function: HashMap<FunctionKey, ParkedFunction>,
    /// (back-off due, seq, function); an entry whose event was woken first is skipped.
    timers: BinaryHeap<Reverse<(u64, u64, FunctionKey)>>,
}

#[derive(Default)]
struct ParkedFunction {
    /// Parking order (seqs of events woken by their timer are skipped when met).
    order: VecDeque<u64>,
    events: HashMap<u64, Pending>,
}

impl Parked {
    fn park(&mut self, seq: u64, event: Pending) {
        let key = event.function_key();
        self.timers
            .push(Reverse((event.record.due_at_ms, seq, key.clone())));
        let f = self.by_function.entry(key).or_default();
        f.order.push_back(seq);
        f.events.insert(seq, event);
    }

    /// The oldest event waiting for room in `key`'s function.
    fn wake_one(&mut self, key: &FunctionKey) -> Option<Pending> {
        let f = self.by_function.get_mut(key)?;
        let mut woken = None;
        while let Some(seq) = f.order.pop_front() {
            if let Some(event) = f.events.remove(&seq) {
                woken = Some(event);
                break;
            }
        }
        if f.events.is_empty() {
            self.by_function.remove(key);
        }
        woken.map(unparked)
    }

    /// Moves the events whose back-off has passed to `ready`.
    fn due(&mut self, now: u64, ready: &mut VecDeque<Pending>) {
        while self.timers.peek().is_some_and(|t| t.0 .0 <= now) {
            let Some(Reverse((_, seq, key))) = self.timers.pop() else {
                break;
            };
            let Some(f) = self.by_function.get_mut(&key) else {
                continue;
            };
            if let Some(event) = f.events.remove(&seq) {
                ready.push_back(unparked(event));
            }
            if f.events.is_empty() {
                self.by_function.remove(&key);
            }
        }
    }

    fn next_due(&self) -> Option<u64> {
        self.timers.peek().map(|t| t.0 .0)
    }
}

fn unparked(mut event: Pending) -> Pending {
    event.throttled = false;
    event
}

/// An event waiting for its due time, earliest first.
struct Later {
    due: u64,
    seq: u64,
    event: Pending,
}

impl PartialEq for Later {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Later {}
impl PartialOrd for Later {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Later {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// Whether synchronous invokes are flowing: the engine's count of invokes started, less the
/// attempts this queue started, changed within [`SYNC_QUIET`].
struct SyncActivity {
    seen: u64,
    at: Instant,
}

impl SyncActivity {
    fn busy(&mut self, queue: &Weak<Queue>, now: Instant) -> bool {
        if let Some(q) = queue.upgrade() {
            let sync = q
                .engine
                .invocations_started()
                .saturating_sub(q.attempts_invoked.load(Ordering::Acquire));
            if sync > self.seen {
                self.seen = sync;
                self.at = now;
            }
        }
        now.duration_since(self.at) < SYNC_QUIET
    }
}

/// Whether an attempt may start now (Ok), or when to look again (Err): at once when
/// synchronous invokes are not flowing; while they are, only when no attempt runs and the last
/// one started [`YIELD_TRICKLE`] ago.
fn may_start(
    sync_busy: bool,
    none_running: bool,
    now: Instant,
    last_start: Instant,
) -> Result<(), Instant> {
    let next = last_start + YIELD_TRICKLE;
    if !sync_busy || (none_running && now >= next) {
        return Ok(());
    }
    // Look again when the synchronous invokes may have stopped, or the trickle allows one.
    Err(next.max(now + SYNC_QUIET / 2))
}

/// Runs due events with at most `workers` attempts at a time; events not yet due wait in a
/// timer heap (no worker is held while an event waits). Attempts live in this task's
/// `JoinSet`, so aborting the dispatcher stops them (their events stay stored).
///
/// The queue is the lower priority: while synchronous invokes flow (one started within
/// [`SYNC_QUIET`]) an attempt starts only when none is running and the last one started
/// [`YIELD_TRICKLE`] ago, so a backlog neither delays synchronous callers nor stops.
pub(crate) async fn dispatch(
    queue: Weak<Queue>,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    workers: usize,
) {
    let workers = workers.max(1);
    let slots = Arc::new(Semaphore::new(workers));
    let mut later: BinaryHeap<Reverse<Later>> = BinaryHeap::new();
    let mut parked = Parked::default();
    let mut ready: VecDeque<Pending> = VecDeque::new();
    let mut running = JoinSet::new();
    let mut seq = 0u64;
    let mut arrived = Vec::with_capacity(256);
    let mut sync = SyncActivity {
        seen: 0,
        at: Instant::now(),
    };
    let mut last_start = Instant::now();
    loop {
        let now = now_ms();
        while later.peek().is_some_and(|l| l.0.due <= now) {
            if let Some(Reverse(l)) = later.pop() {
                ready.push_back(l.event);
            }
        }
        parked.due(now, &mut ready);
        let mut resume_at = None;
        while !ready.is_empty() {
            let instant = Instant::now();
            let none_running = slots.available_permits() == workers;
            if let Err(again) = may_start(
                sync.busy(&queue, instant),
                none_running,
                instant,
                last_start,
            ) {
                resume_at = Some(again);
                break;
            }
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                break;
            };
            let Some(event) = ready.pop_front() else {
                break;
            };
            last_start = instant;
            let queue = queue.clone();
            running.spawn(attempt(queue, event, permit));
        }
        let next_due = match (later.peek().map(|l| l.0.due), parked.next_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sleep = async {
            let due = next_due
                .map(|due| Instant::now() + Duration::from_millis(due.saturating_sub(now_ms())));
            match (due, resume_at) {
                (Some(a), Some(b)) => tokio::time::sleep_until(a.min(b).into()).await,
                (Some(t), None) | (None, Some(t)) => tokio::time::sleep_until(t.into()).await,
                (None, None) => std::future::pending().await,
            }
        };
        tokio::select! {
            n = rx.recv_many(&mut arrived, 256) => {
                if n == 0 {
                    break;
                }
                let now = now_ms();
                for event in arrived.drain(..) {
                    if event.throttled {
                        seq += 1;
                        parked.park(seq, event);
                    } else if event.record.due_at_ms <= now {
                        ready.push_back(event);
                    } else {
                        seq += 1;
                        later.push(Reverse(Later { due: event.record.due_at_ms, seq, event }));
                    }
                }
            }
            _ = sleep => {}
            Some(ended) = running.join_next(), if !running.is_empty() => {
                // An attempt that ran its function freed the concurrency it held.
                if let Some(event) = ended.ok().flatten().and_then(|key| parked.wake_one(&key)) {
                    ready.push_back(event);
                }
            }
        }
    }
    while running.join_next().await.is_some() {}
}

/// The retry policy of one event: AWS's defaults unless its event invoke config says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    max_retries: u32,
    max_age: Duration,
    retry_base_delay: Duration,
}

impl Policy {
    fn of(config: Option<&EventInvokeConfig>, retry_base_delay: Duration) -> Self {
        Self {
            max_retries: config
                .and_then(|c| c.maximum_retry_attempts)
                .unwrap_or(DEFAULT_MAX_RETRIES),
            max_age: config
                .and_then(|c| c.maximum_event_age_in_seconds)
                .map_or(DEFAULT_MAX_EVENT_AGE, |s| Duration::from_secs(s.into())),
            retry_base_delay,
        }
    }
}

/// What an event's next attempt runs, and what is configured around it.
struct NextAttempt {
    req: InvokeRequest,
    /// The version's dead-letter target.
    dead_letter: Option<String>,
    config: Option<EventInvokeConfig>,
    /// The event's chain has invoked the function too often, and it does not allow loops.
    recursive_loop: bool,
}

/// What to do after an attempt.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Done,
    GiveUp,
    /// Retry after this delay, counting an attempt (function or system error).
    Retry(Duration),
    /// Retry after this delay without counting an attempt (throttled).
    RetryThrottled(Duration),
}

fn next_step(
    result: &Result<InvokeResponse, InvokeError>,
    attempts: u32,
    policy: Policy,
    throttle_backoff: &mut Duration,
) -> Step {
    match result {
        Ok(resp) if resp.function_error.is_none() => Step::Done,
        Err(InvokeError::Throttled { .. }) => {
            // Throttles do not use up retry attempts; back off exponentially.
            let d = *throttle_backoff;
            *throttle_backoff = (*throttle_backoff * 2).min(THROTTLE_BACKOFF_MAX);
            Step::RetryThrottled(d)
        }
        Ok(_) | Err(_) if attempts >= policy.max_retries => Step::GiveUp,
        // About a minute, then two (the base delay, then twice it).
        Ok(_) | Err(_) => Step::Retry(policy.retry_base_delay * (attempts + 1).min(2)),
    }
}

/// One attempt of an event, and what follows from it: done (its destination told), or back to
/// the scheduler with its next due time.
///
/// Returns the function when the attempt ran it (not throttled): the concurrency it held is free
/// again for an event of that function waiting for room.
async fn attempt(
    queue: Weak<Queue>,
    mut event: Pending,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Option<FunctionKey> {
    let q = queue.upgrade()?;
    let NextAttempt {
        req,
        dead_letter,
        config,
        recursive_loop,
    } = match q.request(&event) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(request_id = %event.record.request_id, "async event dropped: {e}");
            q.forget(event);
            return None;
        }
    };
    if req.function.reserved_concurrency == Some(0) {
        // AWS does not keep retrying a throttled function whose concurrency is 0: the event
        // goes to its on-failure destination (or DLQ) at once, never attempted.
        drop(permit);
        tracing::info!(request_id = %event.record.request_id, function = %event.record.function_name,
            "async event not run: the function's reserved concurrency is 0");
        destination::finish(
            &q,
            &event,
            dead_letter.as_deref(),
            config.as_ref(),
            Condition::ZeroReservedConcurrency,
            0,
            None,
        )
        .await;
        q.forget(event);
        return None;
    }
    if recursive_loop {
        drop(permit);
        tracing::warn!(request_id = %event.record.request_id, function = %event.record.function_name,
            "async invocation stopped: the function is in a recursive loop (invoked more than {} times by one chain of events)",
            flint_engine::lineage::MAX_INVOCATIONS);
        let stopped = AttemptRecord::recursive_loop(&event.record.version);
        destination::finish(
            &q,
            &event,
            dead_letter.as_deref(),
            config.as_ref(),
            Condition::RetriesExhausted,
            event.record.attempts,
            Some(&stopped),
        )
        .await;
        q.forget(event);
        return None;
    }
    let policy = Policy::of(config.as_ref(), q.retry_base_delay);
    let expires_at = event
        .record
        .enqueued_at_ms
        .saturating_add(ms(policy.max_age));
    let rid = event.record.request_id.clone();
    let function = event.record.function_name.clone();
    if now_ms() >= expires_at {
        drop(permit);
        tracing::info!(request_id = %rid, function = %function, attempts = event.record.attempts,
            "async event expired: older than its maximum event age ({}s)", policy.max_age.as_secs());
        let last = event.record.last_attempt.clone();
        let count = event.record.attempts;
        destination::finish(
            &q,
            &event,
            dead_letter.as_deref(),
            config.as_ref(),
            Condition::EventAgeExceeded,
            count,
            last.as_ref(),
        )
        .await;
        q.forget(event);
        return None;
    }
    let attempt_no = event.record.attempts + 1;
    q.counts.started(&event.scope, &function);
    q.attempts_invoked.fetch_add(1, Ordering::AcqRel);
    let engine = q.engine.clone();
    drop(q);
    let result = engine.invoke_event(req).await;
    drop(engine);
    drop(permit);
    let q = queue.upgrade()?;
    q.counts.ended(&event.scope, &function);
    let outcome = AttemptRecord::of(&result, &event.record.version);
    let key = event.function_key();
    let mut backoff = event.throttle_backoff;
    let step = next_step(&result, event.record.attempts, policy, &mut backoff);
    event.throttle_backoff = backoff;
    match step {
        Step::Done => {
            tracing::info!(request_id = %rid, function = %function, attempt = attempt_no, "async invocation succeeded");
            destination::finish(
                &q,
                &event,
                dead_letter.as_deref(),
                config.as_ref(),
                Condition::Success,
                attempt_no,
                Some(&outcome),
            )
            .await;
            q.forget(event);
        }
        Step::GiveUp => {
            tracing::info!(request_id = %rid, function = %function, attempt = attempt_no,
                error = outcome.function_error.as_deref().unwrap_or("system"),
                "async invocation failed; retries exhausted ({} allowed)", policy.max_retries);
            q.counts.failed(&event.scope, &function);
            destination::finish(
                &q,
                &event,
                dead_letter.as_deref(),
                config.as_ref(),
                Condition::RetriesExhausted,
                attempt_no,
                Some(&outcome),
            )
            .await;
            q.forget(event);
        }
        Step::Retry(delay) => {
            let due = now_ms().saturating_add(ms(delay)).min(expires_at);
            tracing::info!(request_id = %rid, function = %function, attempt = attempt_no,
                error = outcome.function_error.as_deref().unwrap_or("system"),
                "async invocation failed; retrying in {:.1}s", Duration::from_millis(due.saturating_sub(now_ms())).as_secs_f64());
            event.record.attempts = attempt_no;
            event.record.due_at_ms = due;
            event.record.last_attempt = Some(outcome);
            q.retry_at(event, true).await;
        }
        Step::RetryThrottled(delay) => {
            tracing::debug!(request_id = %rid, function = %function, "async invocation throttled; retrying in {delay:?}");
            event.record.due_at_ms = now_ms().saturating_add(ms(delay)).min(expires_at);
            event.throttled = true;
            q.retry_at(event, false).await;
            return None;
        }
    }
    Some(key)
}

/// Events a previous run left in the store, oldest first (older formats upgraded; unreadable
/// ones moved aside by the store, never skipped).
///
/// Events stored under their request id alone (before keys began with the enqueue time, see
/// [`store_key`]) are moved to their new key, all in one transaction.
pub fn pending(store: &flint_store::Store) -> Result<Vec<Pending>, flint_store::StoreError> {
    let mut events = Vec::new();
    let mut old_keys = Vec::new();
    for l in store.load::<EventRecord>(KIND, FORMAT, upgrade)? {
        let event = Pending::new(
            Scope {
                account: l.account,
                region: l.region,
            },
            l.value,
        );
        if event.key != l.key {
            old_keys.push((events.len(), l.key));
        }
        events.push(event);
    }
    if !old_keys.is_empty() {
        let values = old_keys
            .iter()
            .map(|(i, _)| serde_json::to_string(&events[*i].record))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| flint_store::StoreError::Io(e.into()))?;
        let puts: Vec<_> = old_keys
            .iter()
            .zip(&values)
            .map(|((i, _), v)| (events[*i].key(), FORMAT, v.as_str()))
            .collect();
        let deletes: Vec<_> = old_keys
            .iter()
            .map(|(i, old)| flint_store::DocKey {
                key: old,
                ..events[*i].key()
            })
            .collect();
        store.write_records(&puts, &deletes)?;
        tracing::info!(
            "store: {} async event(s) re-keyed by enqueue time",
            old_keys.len()
        );
    }
    events.sort_by_key(|e| e.record.enqueued_at_ms);
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(function_error: Option<&str>) -> Result<InvokeResponse, InvokeError> {
        Ok(InvokeResponse {
            payload: Default::default(),
            function_error: function_error.map(str::to_string),
            log_result: None,
            executed_version: "$LATEST".into(),
        })
    }

    const DEFAULTS: Policy = Policy {
        max_retries: DEFAULT_MAX_RETRIES,
        max_age: DEFAULT_MAX_EVENT_AGE,
        retry_base_delay: DEFAULT_RETRY_BASE_DELAY,
    };

    #[test]
    fn the_queue_yields_to_synchronous_invokes_but_trickles_on() {
        let t0 = Instant::now();
        // No synchronous invokes: always.
        assert_eq!(may_start(false, false, t0, t0), Ok(()));
        // Synchronous invokes flowing: not while an attempt runs, nor sooner than the trickle.
        assert!(may_start(true, false, t0 + YIELD_TRICKLE, t0).is_err());
        let again = may_start(true, true, t0 + Duration::from_millis(1), t0);
        assert_eq!(
            again,
            Err((t0 + YIELD_TRICKLE).max(t0 + Duration::from_millis(1) + SYNC_QUIET / 2))
        );
        assert_eq!(may_start(true, true, t0 + YIELD_TRICKLE, t0), Ok(()));
    }

    #[test]
    fn function_errors_are_retried_twice_one_then_two_minutes_apart() {
        let mut backoff = Duration::from_secs(1);
        let failed = response(Some("Unhandled"));
        assert_eq!(Policy::of(None, DEFAULT_RETRY_BASE_DELAY), DEFAULTS);
        assert_eq!(
            next_step(&failed, 0, DEFAULTS, &mut backoff),
            Step::Retry(Duration::from_secs(60))
        );
        assert_eq!(
            next_step(&failed, 1, DEFAULTS, &mut backoff),
            Step::Retry(Duration::from_secs(120))
        );
        assert_eq!(next_step(&failed, 2, DEFAULTS, &mut backoff), Step::GiveUp);
        assert_eq!(
            next_step(&response(None), 0, DEFAULTS, &mut backoff),
            Step::Done
        );
    }

    #[test]
    fn the_base_delay_scales_both_retries() {
        let policy = Policy::of(None, Duration::from_secs(2));
        let mut backoff = Duration::from_secs(1);
        let failed = response(Some("Unhandled"));
        assert_eq!(
            next_step(&failed, 0, policy, &mut backoff),
            Step::Retry(Duration::from_secs(2))
        );
        assert_eq!(
            next_step(&failed, 1, policy, &mut backoff),
            Step::Retry(Duration::from_secs(4))
        );
    }

    #[test]
    fn the_event_invoke_config_replaces_the_defaults() {
        let config = EventInvokeConfig {
            maximum_retry_attempts: Some(0),
            maximum_event_age_in_seconds: Some(60),
            ..Default::default()
        };
        let policy = Policy::of(Some(&config), DEFAULT_RETRY_BASE_DELAY);
        assert_eq!(policy.max_age, Duration::from_secs(60));
        let mut backoff = Duration::from_secs(1);
        assert_eq!(
            next_step(&response(Some("Unhandled")), 0, policy, &mut backoff),
            Step::GiveUp
        );
    }

    #[test]
    fn throttles_back_off_exponentially_without_using_attempts() {
        let mut backoff = Duration::from_secs(1);
        let throttled = Err(InvokeError::Throttled {
            reason: flint_engine::ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded,
        });
        assert_eq!(
            next_step(&throttled, 2, DEFAULTS, &mut backoff),
            Step::RetryThrottled(Duration::from_secs(1))
        );
        assert_eq!(
            next_step(&throttled, 2, DEFAULTS, &mut backoff),
            Step::RetryThrottled(Duration::from_secs(2))
        );
        for _ in 0..20 {
            next_step(&throttled, 2, DEFAULTS, &mut backoff);
        }
        assert_eq!(backoff, THROTTLE_BACKOFF_MAX);
    }

    fn record(key: &str, at: u64) -> EventRecord {
        EventRecord {
            function_name: "fn".into(),
            version: "$LATEST".into(),
            snapshot_id: "s1".into(),
            qualifier: None,
            invoked_arn: "arn:aws:lambda:us-east-1:000000000000:function:fn".into(),
            payload: "e30=".into(),
            request_id: key.into(),
            client_context: None,
            enqueued_at_ms: at,
            attempts: 0,
            due_at_ms: 0,
            last_attempt: None,
            trace_header: None,
        }
    }

    #[test]
    fn throttled_events_wait_for_room_in_their_function_or_their_back_off() {
        let scope = Scope {
            account: "000000000000".into(),
            region: "us-east-1".into(),
        };
        let throttled = |id: &str, function: &str, due: u64| {
            let mut r = record(id, 1);
            r.function_name = function.into();
            r.due_at_ms = due;
            let mut p = Pending::new(scope.clone(), r);
            p.throttled = true;
            p
        };
        let mut parked = Parked::default();
        parked.park(1, throttled("a1", "a", 5_000));
        parked.park(2, throttled("b1", "b", 1_000));
        parked.park(3, throttled("a2", "a", 2_000));
        parked.park(4, throttled("a3", "a", 9_000));
        let ids = |q: &VecDeque<Pending>| {
            q.iter()
                .map(|p| p.record.request_id.clone())
                .collect::<Vec<_>>()
        };
        let a = (
            "000000000000".to_string(),
            "us-east-1".to_string(),
            "a".to_string(),
        );
        // An attempt of `a` ended: its oldest waiting event goes, whatever its back-off.
        let woken = parked.wake_one(&a).expect("a waits");
        assert_eq!(woken.record.request_id, "a1");
        assert!(!woken.throttled);
        // Back-offs that passed: b1 (1 s) and a2 (2 s), not a1 again (woken) nor a3.
        let mut ready = VecDeque::new();
        assert_eq!(parked.next_due(), Some(1_000));
        parked.due(5_500, &mut ready);
        assert_eq!(ids(&ready), ["b1", "a2"]);
        assert!(ready.iter().all(|p| !p.throttled));
        // Only a3 is left; nothing of `b`.
        let b = (
            "000000000000".to_string(),
            "us-east-1".to_string(),
            "b".to_string(),
        );
        assert!(parked.wake_one(&b).is_none());
        assert_eq!(
            parked.wake_one(&a).map(|p| p.record.request_id),
            Some("a3".into())
        );
        assert!(parked.wake_one(&a).is_none());
        let mut later = VecDeque::new();
        parked.due(10_000, &mut later);
        assert!(
            later.is_empty(),
            "a woken event does not run again at its back-off"
        );
    }

    #[test]
    fn pending_events_come_back_oldest_first_with_their_due_times(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = flint_store::Store::open(dir.path())?;
        for (key, at) in [("b", 20u64), ("a", 30), ("c", 10)] {
            let doc = flint_store::DocKey {
                account: "000000000000",
                region: "us-east-1",
                kind: KIND,
                key,
            };
            let r = EventRecord {
                due_at_ms: at + 60_000,
                ..record(key, at)
            };
            store.put_record(&doc, FORMAT, &serde_json::to_string(&r)?)?;
        }
        let events = pending(&store)?;
        let ids: Vec<&str> = events
            .iter()
            .map(|e| e.record.request_id.as_str())
            .collect();
        assert_eq!(ids, ["c", "b", "a"]);
        assert_eq!(events[0].record.due_at_ms, 60_010);
        Ok(())
    }

    #[test]
    fn events_keyed_by_request_id_are_re_keyed_by_enqueue_time(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = flint_store::Store::open(dir.path())?;
        // As the release before wrote them: keyed by request id alone.
        for (key, at) in [("old-b", 20u64), ("old-a", 30)] {
            let doc = flint_store::DocKey {
                account: "000000000000",
                region: "us-east-1",
                kind: KIND,
                key,
            };
            store.put_record(&doc, FORMAT, &serde_json::to_string(&record(key, at))?)?;
        }
        let events = pending(&store)?;
        let ids: Vec<&str> = events
            .iter()
            .map(|e| e.record.request_id.as_str())
            .collect();
        assert_eq!(ids, ["old-b", "old-a"]);
        let keys: Vec<String> = store.list_all(KIND)?.into_iter().map(|d| d.key).collect();
        assert_eq!(keys, ["000000000000020.old-b", "000000000000030.old-a"]);
        // Deleting a re-keyed event (as the committer does once it is done) removes it.
        store.write_records(&[], &[events[0].key()])?;
        assert_eq!(pending(&store)?.len(), 1);
        Ok(())
    }

    /// Accepts read in the same round of the runtime share one transaction: the committer,
    /// woken by the first, lets the others hand theirs in before it commits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn accepts_of_one_round_share_a_commit() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = Arc::new(flint_store::Store::open(dir.path())?);
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(CommitStats::default());
        let committer = tokio::spawn(commit(
            store.clone(),
            Writes {
                rx,
                stats: stats.clone(),
            },
            Weak::new(),
        ));
        let go = Arc::new(tokio::sync::Barrier::new(8));
        let mut callers = JoinSet::new();
        for i in 0..8u64 {
            let (tx, go) = (tx.clone(), go.clone());
            callers.spawn(async move {
                go.wait().await;
                let (done, stored) = oneshot::channel();
                let event = Pending::new(
                    Scope {
                        account: "000000000000".into(),
                        region: "us-east-1".into(),
                    },
                    record(&format!("r{i}"), i),
                );
                let _ = tx.send(Write::Put {
                    event,
                    then: Then::Accept(done),
                });
                stored.await
            });
        }
        while let Some(r) = callers.join_next().await {
            assert_eq!(r?, Ok(Ok(())));
        }
        assert_eq!(store.list_all(KIND)?.len(), 8);
        assert_eq!(stats.writes.load(Ordering::Relaxed), 8);
        assert_eq!(stats.commits.load(Ordering::Relaxed), 1);
        committer.abort();
        Ok(())
    }

    #[test]
    fn a_format_1_event_is_due_at_once() -> Result<(), Box<dyn std::error::Error>> {
        let mut v = serde_json::to_value(record("r1", 5))?;
        if let Some(o) = v.as_object_mut() {
            o.remove("due_at_ms");
            o.remove("last_attempt");
        }
        let new: EventRecord = serde_json::from_value(upgrade(1, v)?)?;
        assert_eq!(new, record("r1", 5));
        Ok(())
    }

    #[test]
    fn a_format_0_event_becomes_a_reference_to_its_version(
    ) -> Result<(), Box<dyn std::error::Error>> {
        // As the release before formats wrote it: the engine's whole spec embedded.
        let old = serde_json::json!({
            "function": {
                "snapshot_id": "snap", "account": "000000000000", "region": "us-east-1",
                "function_name": "fn", "version": "3",
                "function_arn": "arn:aws:lambda:us-east-1:000000000000:function:fn",
                "runtime": "python3.11", "handler": "index.handler", "code_dir": "/x",
                "layer_dirs": [], "memory_mb": 128, "timeout_secs": 3,
                "ephemeral_storage_mb": 512, "environment": {}, "log_group": "/aws/lambda/fn",
                "log_format": "Text", "reserved_concurrency": null
            },
            "payload": "e30=", "request_id": "r1",
            "invoked_arn": "arn:aws:lambda:us-east-1:000000000000:function:fn:live",
            "client_context": null, "enqueued_at_ms": 5, "attempts": 1
        });
        let new: EventRecord = serde_json::from_value(upgrade(0, old)?)?;
        assert_eq!(
            new,
            EventRecord {
                version: "3".into(),
                snapshot_id: "snap".into(),
                qualifier: Some("live".into()),
                invoked_arn: "arn:aws:lambda:us-east-1:000000000000:function:fn:live".into(),
                request_id: "r1".into(),
                enqueued_at_ms: 5,
                attempts: 1,
                ..record("r1", 5)
            }
        );
        assert!(upgrade(0, serde_json::json!({"payload": "e30="})).is_err());
        assert!(upgrade(3, serde_json::json!({})).is_err());
        Ok(())
    }
}
