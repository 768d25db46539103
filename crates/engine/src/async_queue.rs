//! Asynchronous (`Event`) invokes: each event is written to the store before the caller gets its
//! 202, then run by a bounded set of background workers with Lambda's retry policy (2 retries
//! after a function error, 1 then 2 minutes apart; throttles retried with back-off for up to the
//! 6-hour maximum event age). Events still pending when Flint stopped are resumed at start-up.

use std::sync::{Arc, Weak};
use std::time::Duration;

use base64::Engine as _;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::throttle::Class;
use crate::{invoke, FunctionSpec, Inner, InvokeError, InvokeRequest};

/// Store document kind of a pending async event.
pub(crate) const KIND: &str = "async-event";

/// Lambda's defaults (MaximumRetryAttempts, MaximumEventAgeInSeconds).
const MAX_RETRIES: u32 = 2;
const MAX_EVENT_AGE: Duration = Duration::from_secs(6 * 3600);
const RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(60), Duration::from_secs(120)];
const THROTTLE_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// A queued event as stored (one document per event, keyed by request id).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredEvent {
    pub(crate) function: FunctionSpec,
    /// The event payload, base64.
    pub(crate) payload: String,
    pub(crate) request_id: String,
    pub(crate) invoked_arn: String,
    #[serde(default)]
    pub(crate) client_context: Option<String>,
    pub(crate) enqueued_at_ms: u64,
    /// Attempts already made (survives a restart).
    #[serde(default)]
    pub(crate) attempts: u32,
}

impl StoredEvent {
    fn request(&self) -> Result<InvokeRequest, String> {
        let payload = base64::engine::general_purpose::STANDARD
            .decode(&self.payload)
            .map_err(|e| format!("stored payload is not base64: {e}"))?;
        Ok(InvokeRequest {
            function: Arc::new(self.function.clone()),
            invoked_arn: self.invoked_arn.clone(),
            payload: payload.into(),
            client_context: self.client_context.clone(),
            tail_log: false,
            request_id: self.request_id.clone(),
        })
    }

    fn age(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.enqueued_at_ms))
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Durably stores the event, then queues it for a worker.
pub(crate) async fn enqueue(inner: &Arc<Inner>, req: InvokeRequest) -> Result<(), InvokeError> {
    if inner.is_shutting_down() {
        return Err(InvokeError::Service("Flint is shutting down".into()));
    }
    let event = StoredEvent {
        function: (*req.function).clone(),
        payload: base64::engine::general_purpose::STANDARD.encode(&req.payload),
        request_id: req.request_id,
        invoked_arn: req.invoked_arn,
        client_context: req.client_context,
        enqueued_at_ms: now_ms(),
        attempts: 0,
    };
    persist(inner, &event).await.map_err(InvokeError::Service)?;
    inner
        .async_tx
        .send(event)
        .map_err(|_| InvokeError::Service("the async queue is stopped".into()))
}

async fn persist(inner: &Arc<Inner>, event: &StoredEvent) -> Result<(), String> {
    let value = serde_json::to_string(event).map_err(|e| e.to_string())?;
    let store = inner.store.clone();
    let (account, region, key) = (
        event.function.account.clone(),
        event.function.region.clone(),
        event.request_id.clone(),
    );
    tokio::task::spawn_blocking(move || {
        store.put(
            &flint_store::DocKey {
                account: &account,
                region: &region,
                kind: KIND,
                key: &key,
            },
            &value,
        )
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("storing the event: {e}"))
}

async fn forget(store: Arc<flint_store::Store>, event: &StoredEvent) {
    let (account, region, key) = (
        event.function.account.clone(),
        event.function.region.clone(),
        event.request_id.clone(),
    );
    let deleted = tokio::task::spawn_blocking(move || {
        store.delete(&flint_store::DocKey {
            account: &account,
            region: &region,
            kind: KIND,
            key: &key,
        })
    })
    .await;
    if let Ok(Err(e)) = deleted {
        tracing::warn!("cannot remove finished async event: {e}");
    }
}

/// Events a previous run left in the store, oldest first.
pub(crate) fn pending(
    store: &flint_store::Store,
) -> Result<Vec<StoredEvent>, flint_store::StoreError> {
    let mut events: Vec<StoredEvent> = store
        .list_all(KIND)?
        .into_iter()
        .filter_map(|d| match serde_json::from_str(&d.value) {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::warn!("skipping unreadable async event {}: {e}", d.key);
                None
            }
        })
        .collect();
    events.sort_by_key(|e| e.enqueued_at_ms);
    Ok(events)
}

/// Runs queued events with at most `workers` at a time. Workers live in this task's `JoinSet`,
/// so aborting the dispatcher stops them (their events stay stored and resume next start).
pub(crate) async fn dispatch(
    inner: Weak<Inner>,
    mut rx: mpsc::UnboundedReceiver<StoredEvent>,
    workers: usize,
) {
    let slots = Arc::new(Semaphore::new(workers.max(1)));
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            event = rx.recv() => {
                let Some(event) = event else { break };
                let Ok(permit) = slots.clone().acquire_owned().await else { break };
                let inner = inner.clone();
                running.spawn(async move {
                    run(inner, event).await;
                    drop(permit);
                });
            }
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
    while running.join_next().await.is_some() {}
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
    result: &Result<crate::InvokeResponse, InvokeError>,
    attempts: u32,
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
        Ok(_) | Err(_) if attempts >= MAX_RETRIES => Step::GiveUp,
        Ok(_) | Err(_) => {
            Step::Retry(RETRY_DELAYS[(attempts as usize).min(RETRY_DELAYS.len() - 1)])
        }
    }
}

/// Runs one event to completion (success, retries exhausted, or too old).
async fn run(inner: Weak<Inner>, mut event: StoredEvent) {
    let mut throttle_backoff = Duration::from_secs(1);
    loop {
        if event.age() > MAX_EVENT_AGE {
            tracing::warn!(request_id = %event.request_id, "async event dropped: older than the maximum event age");
            break;
        }
        let Some(engine) = inner.upgrade() else {
            return;
        };
        let req = match event.request() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(request_id = %event.request_id, "async event dropped: {e}");
                break;
            }
        };
        let result = invoke::invoke(&engine, req, Class::Async).await;
        drop(engine);
        let delay = match next_step(&result, event.attempts, &mut throttle_backoff) {
            Step::Done => break,
            Step::GiveUp => {
                tracing::info!(request_id = %event.request_id, function = %event.function.function_name, "async event failed after {MAX_RETRIES} retries");
                break;
            }
            Step::RetryThrottled(d) => d,
            Step::Retry(d) => {
                event.attempts += 1;
                if let Some(engine) = inner.upgrade() {
                    if let Err(e) = persist(&engine, &event).await {
                        tracing::warn!("cannot record an async retry: {e}");
                    }
                }
                d
            }
        };
        tokio::time::sleep(delay).await;
    }
    if let Some(engine) = inner.upgrade() {
        forget(engine.store.clone(), &event).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(function_error: Option<&str>) -> Result<crate::InvokeResponse, InvokeError> {
        Ok(crate::InvokeResponse {
            payload: Default::default(),
            function_error: function_error.map(str::to_string),
            log_result: None,
            executed_version: "$LATEST".into(),
        })
    }

    #[test]
    fn function_errors_are_retried_twice_one_then_two_minutes_apart() {
        let mut backoff = Duration::from_secs(1);
        let failed = response(Some("Unhandled"));
        assert_eq!(
            next_step(&failed, 0, &mut backoff),
            Step::Retry(Duration::from_secs(60))
        );
        assert_eq!(
            next_step(&failed, 1, &mut backoff),
            Step::Retry(Duration::from_secs(120))
        );
        assert_eq!(next_step(&failed, 2, &mut backoff), Step::GiveUp);
        assert_eq!(next_step(&response(None), 0, &mut backoff), Step::Done);
    }

    #[test]
    fn throttles_back_off_exponentially_without_using_attempts() {
        let mut backoff = Duration::from_secs(1);
        let throttled = Err(InvokeError::Throttled {
            reason: crate::ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded,
        });
        assert_eq!(
            next_step(&throttled, 2, &mut backoff),
            Step::RetryThrottled(Duration::from_secs(1))
        );
        assert_eq!(
            next_step(&throttled, 2, &mut backoff),
            Step::RetryThrottled(Duration::from_secs(2))
        );
        for _ in 0..20 {
            next_step(&throttled, 2, &mut backoff);
        }
        assert_eq!(backoff, THROTTLE_BACKOFF_MAX);
    }

    #[test]
    fn pending_events_come_back_oldest_first() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = flint_store::Store::open(dir.path())?;
        let spec = crate::tests::spec("s1");
        for (key, at) in [("b", 20u64), ("a", 30), ("c", 10)] {
            let e = StoredEvent {
                function: spec.clone(),
                payload: "e30=".into(),
                request_id: key.into(),
                invoked_arn: "arn".into(),
                client_context: None,
                enqueued_at_ms: at,
                attempts: 0,
            };
            let doc = flint_store::DocKey {
                account: &spec.account,
                region: &spec.region,
                kind: KIND,
                key,
            };
            store.put(&doc, &serde_json::to_string(&e)?)?;
        }
        let ids: Vec<String> = pending(&store)?.into_iter().map(|e| e.request_id).collect();
        assert_eq!(ids, ["c", "b", "a"]);
        let req = pending(&store)?[0].request().map_err(|e| e.to_string())?;
        assert_eq!(&req.payload[..], b"{}");
        Ok(())
    }
}
