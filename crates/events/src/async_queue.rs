//! Asynchronous (`Event`) invokes: each event is written to the store before the caller gets its
//! 202, then run by a bounded set of background workers with Lambda's retry policy — by default 2
//! retries after a function error, 1 then 2 minutes apart, and throttles retried with back-off up
//! to the 6-hour maximum event age; the function's event invoke config
//! (`MaximumRetryAttempts`, `MaximumEventAgeInSeconds`) replaces the defaults. Events still
//! pending when Flint stopped are resumed at start-up.
//!
//! A stored event ([`EventRecord`], format [`FORMAT`]) names the function version it was accepted
//! for; it never embeds the engine's in-memory spec. Each attempt runs what that version is now.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use base64::Engine as _;
use flint_engine::{Engine, InvokeError, InvokeRequest, InvokeResponse};
use flint_spec::{EventInvokeConfig, Scope};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::functions::Functions;

/// Store document kind of a pending async event.
pub const KIND: &str = "async-event";

/// The current record format. Format 0 (before formats existed) embedded the whole function
/// spec under `function`; [`upgrade`] turns it into a reference.
pub const FORMAT: u32 = 1;

/// Lambda's defaults (MaximumRetryAttempts, MaximumEventAgeInSeconds).
const DEFAULT_MAX_RETRIES: u32 = 2;
const DEFAULT_MAX_EVENT_AGE: Duration = Duration::from_secs(6 * 3600);
const RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(60), Duration::from_secs(120)];
const THROTTLE_BACKOFF_MAX: Duration = Duration::from_secs(300);

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
    /// Attempts already made (survives a restart).
    #[serde(default)]
    pub attempts: u32,
}

/// Format 0 → 1: the embedded spec becomes a reference to the function version.
pub fn upgrade(from: u32, mut v: serde_json::Value) -> Result<serde_json::Value, String> {
    if from != 0 {
        return Err(format!("no upgrade from async-event format {from}"));
    }
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

/// The qualifier of a function ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME:QUALIFIER`).
fn qualifier_of(arn: &str) -> Option<String> {
    arn.split(':').nth(7).map(str::to_string)
}

/// An event on its way to a worker.
#[derive(Debug, Clone)]
pub struct Pending {
    pub scope: Scope,
    pub record: EventRecord,
}

impl Pending {
    fn age(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.record.enqueued_at_ms))
    }

    fn key(&self) -> flint_store::DocKey<'_> {
        flint_store::DocKey {
            account: &self.scope.account,
            region: &self.scope.region,
            kind: KIND,
            key: &self.record.request_id,
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) struct Queue {
    engine: Arc<Engine>,
    store: Arc<flint_store::Store>,
    functions: Arc<Functions>,
    tx: mpsc::UnboundedSender<Pending>,
    stopped: AtomicBool,
}

impl Queue {
    /// The queue and its receiving end.
    pub(crate) fn open(
        engine: Arc<Engine>,
        store: Arc<flint_store::Store>,
        functions: Arc<Functions>,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Pending>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = Arc::new(Self {
            engine,
            store,
            functions,
            tx,
            stopped: AtomicBool::new(false),
        });
        (queue, rx)
    }

    pub(crate) fn requeue(&self, event: Pending) {
        let _ = self.tx.send(event);
    }

    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    /// Durably stores the event, then queues it for a worker.
    pub(crate) async fn enqueue(&self, req: InvokeRequest) -> Result<(), InvokeError> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(InvokeError::Service("Flint is shutting down".into()));
        }
        let f = &req.function;
        let event = Pending {
            scope: Scope {
                account: f.account.clone(),
                region: f.region.clone(),
            },
            record: EventRecord {
                function_name: f.function_name.clone(),
                version: f.version.clone(),
                snapshot_id: f.snapshot_id.clone(),
                qualifier: qualifier_of(&req.invoked_arn),
                invoked_arn: req.invoked_arn.clone(),
                payload: base64::engine::general_purpose::STANDARD.encode(&req.payload),
                request_id: req.request_id.clone(),
                client_context: req.client_context.clone(),
                enqueued_at_ms: now_ms(),
                attempts: 0,
            },
        };
        persist(&self.store, &event)
            .await
            .map_err(InvokeError::Service)?;
        self.tx
            .send(event)
            .map_err(|_| InvokeError::Service("the async queue is stopped".into()))
    }

    /// The request for the next attempt, from what the event's function version is now, and
    /// the event invoke config that applies; Err: the event cannot run any more.
    fn request(
        &self,
        event: &Pending,
    ) -> Result<(InvokeRequest, Option<EventInvokeConfig>), String> {
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
        Ok((
            InvokeRequest {
                function: spec,
                invoked_arn: r.invoked_arn.clone(),
                payload: payload.into(),
                client_context: r.client_context.clone(),
                tail_log: false,
                request_id: r.request_id.clone(),
            },
            config,
        ))
    }
}

async fn persist(store: &Arc<flint_store::Store>, event: &Pending) -> Result<(), String> {
    let value = serde_json::to_string(&event.record).map_err(|e| e.to_string())?;
    let (store, event) = (store.clone(), event.clone());
    tokio::task::spawn_blocking(move || store.put_record(&event.key(), FORMAT, &value))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("storing the event: {e}"))
}

async fn forget(store: &Arc<flint_store::Store>, event: &Pending) {
    let (store, event) = (store.clone(), event.clone());
    let deleted = tokio::task::spawn_blocking(move || store.delete(&event.key())).await;
    if let Ok(Err(e)) = deleted {
        tracing::warn!("cannot remove finished async event: {e}");
    }
}

/// Events a previous run left in the store, oldest first (older formats upgraded; unreadable
/// ones moved aside by the store, never skipped).
pub fn pending(store: &flint_store::Store) -> Result<Vec<Pending>, flint_store::StoreError> {
    let mut events: Vec<Pending> = store
        .load::<EventRecord>(KIND, FORMAT, upgrade)?
        .into_iter()
        .map(|l| Pending {
            scope: Scope {
                account: l.account,
                region: l.region,
            },
            record: l.value,
        })
        .collect();
    events.sort_by_key(|e| e.record.enqueued_at_ms);
    Ok(events)
}

/// Runs queued events with at most `workers` at a time. Workers live in this task's `JoinSet`,
/// so aborting the dispatcher stops them (their events stay stored and resume next start).
pub(crate) async fn dispatch(
    queue: Weak<Queue>,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    workers: usize,
) {
    let slots = Arc::new(Semaphore::new(workers.max(1)));
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            event = rx.recv() => {
                let Some(event) = event else { break };
                let Ok(permit) = slots.clone().acquire_owned().await else { break };
                let queue = queue.clone();
                running.spawn(async move {
                    run(queue, event).await;
                    drop(permit);
                });
            }
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
    while running.join_next().await.is_some() {}
}

/// The retry policy of one event: AWS's defaults unless its event invoke config says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Policy {
    max_retries: u32,
    max_age: Duration,
}

impl Policy {
    fn of(config: Option<&EventInvokeConfig>) -> Self {
        Self {
            max_retries: config
                .and_then(|c| c.maximum_retry_attempts)
                .unwrap_or(DEFAULT_MAX_RETRIES),
            max_age: config
                .and_then(|c| c.maximum_event_age_in_seconds)
                .map_or(DEFAULT_MAX_EVENT_AGE, |s| Duration::from_secs(s.into())),
        }
    }
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
        Ok(_) | Err(_) => {
            Step::Retry(RETRY_DELAYS[(attempts as usize).min(RETRY_DELAYS.len() - 1)])
        }
    }
}

/// Runs one event to completion (success, retries exhausted, too old, or its function gone).
async fn run(queue: Weak<Queue>, mut event: Pending) {
    let mut throttle_backoff = Duration::from_secs(1);
    loop {
        let Some(q) = queue.upgrade() else {
            return;
        };
        let (req, config) = match q.request(&event) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(request_id = %event.record.request_id, "async event dropped: {e}");
                break;
            }
        };
        let policy = Policy::of(config.as_ref());
        if event.age() > policy.max_age {
            tracing::warn!(request_id = %event.record.request_id, "async event dropped: older than the maximum event age");
            break;
        }
        let engine = q.engine.clone();
        drop(q);
        let result = engine.invoke_event(req).await;
        drop(engine);
        let delay = match next_step(
            &result,
            event.record.attempts,
            policy,
            &mut throttle_backoff,
        ) {
            Step::Done => break,
            Step::GiveUp => {
                tracing::info!(
                    request_id = %event.record.request_id,
                    function = %event.record.function_name,
                    "async event failed after {} retries",
                    policy.max_retries
                );
                break;
            }
            Step::RetryThrottled(d) => d,
            Step::Retry(d) => {
                event.record.attempts += 1;
                if let Some(q) = queue.upgrade() {
                    if let Err(e) = persist(&q.store, &event).await {
                        tracing::warn!("cannot record an async retry: {e}");
                    }
                }
                d
            }
        };
        tokio::time::sleep(delay).await;
    }
    if let Some(q) = queue.upgrade() {
        forget(&q.store, &event).await;
    }
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
    };

    #[test]
    fn function_errors_are_retried_twice_one_then_two_minutes_apart() {
        let mut backoff = Duration::from_secs(1);
        let failed = response(Some("Unhandled"));
        assert_eq!(Policy::of(None), DEFAULTS);
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
    fn the_event_invoke_config_replaces_the_defaults() {
        let config = EventInvokeConfig {
            maximum_retry_attempts: Some(0),
            maximum_event_age_in_seconds: Some(60),
            ..Default::default()
        };
        let policy = Policy::of(Some(&config));
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
        }
    }

    #[test]
    fn pending_events_come_back_oldest_first() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = flint_store::Store::open(dir.path())?;
        for (key, at) in [("b", 20u64), ("a", 30), ("c", 10)] {
            let doc = flint_store::DocKey {
                account: "000000000000",
                region: "us-east-1",
                kind: KIND,
                key,
            };
            store.put_record(&doc, FORMAT, &serde_json::to_string(&record(key, at))?)?;
        }
        let ids: Vec<String> = pending(&store)?
            .into_iter()
            .map(|e| e.record.request_id)
            .collect();
        assert_eq!(ids, ["c", "b", "a"]);
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
        Ok(())
    }
}
