//! The asynchronous data plane, kept apart from the synchronous path as AWS keeps it: the durable
//! queue of `Event` invokes ([`async_queue`]), and the home of the event-source pollers. It invokes
//! through the engine like any client, and learns what functions exist and how their
//! asynchronous invocation is configured only from the control plane's change feed
//! ([`functions::Functions`]).

pub mod async_queue;
mod destination;
pub mod functions;
pub mod metrics;
mod pollers;
mod visibility;

use std::sync::Arc;
use std::time::Duration;

use flint_engine::{Engine, InvokeError, InvokeRequest};
use flint_spec::feed::Subscription;
use parking_lot::Mutex;
use tokio::task::JoinHandle;

pub use async_queue::{EventRecord, KIND as ASYNC_EVENT_KIND};
pub use flint_spec::Scope;
pub use visibility::QueueDepth;

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("store: {0}")]
    Store(#[from] flint_store::StoreError),
    #[error("{0}")]
    Runtime(String),
}

/// Settings of the asynchronous data plane.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// Events run at once at most (each is one invoke at a time).
    pub workers: usize,
    /// The delay before the first retry after a function error (the second waits twice as
    /// long); AWS waits about a minute.
    pub retry_base_delay: Duration,
}

impl EventsConfig {
    /// As many workers as a quarter of the account's concurrency, between 1 and 16, and AWS's
    /// retry delays.
    pub fn for_account_concurrency(account_concurrency: u32) -> Self {
        Self {
            workers: (account_concurrency as usize / 4).clamp(1, 16),
            retry_base_delay: async_queue::DEFAULT_RETRY_BASE_DELAY,
        }
    }
}

/// The asynchronous data plane. Cheap to share.
pub struct Events {
    queue: Arc<async_queue::Queue>,
    pollers: Arc<pollers::Context>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Events {
    /// Starts the queue's workers and resumes the events a previous run left pending (after
    /// upgrading their stored format if they are older), and a poller for every enabled event
    /// source mapping. `changes` and `mapping_changes` are two fresh subscriptions to the change
    /// feed; `connectors` reach the destinations, dead-letter queues and event sources. Must
    /// be called inside a Tokio runtime.
    pub fn start(
        engine: Arc<Engine>,
        store: Arc<flint_store::Store>,
        changes: Subscription,
        mapping_changes: Subscription,
        connectors: Arc<flint_connectors::Connectors>,
        config: EventsConfig,
    ) -> Result<Arc<Self>, EventsError> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| EventsError::Runtime("Events::start needs a Tokio runtime".into()))?;
        let functions = Arc::new(functions::Functions::new(changes));
        let pending = async_queue::pending(&store)?;
        let pollers = pollers::Context::new(
            engine.clone(),
            store.clone(),
            connectors.clone(),
            functions.clone(),
        );
        let (queue, rx) = async_queue::Queue::open(
            engine,
            functions.clone(),
            connectors,
            config.retry_base_delay,
        );
        if !pending.is_empty() {
            tracing::info!("resuming {} pending async invocation(s)", pending.len());
        }
        for event in pending {
            queue.requeue(event);
        }
        let committer = handle.spawn(async_queue::commit(
            store,
            rx.writes,
            Arc::downgrade(&queue),
        ));
        let dispatcher = handle.spawn(async_queue::dispatch(
            Arc::downgrade(&queue),
            rx.schedule,
            config.workers,
        ));
        let follower = handle.spawn(functions::keep_up(Arc::downgrade(&functions)));
        let supervisor = handle.spawn(pollers::supervise(pollers.clone(), mapping_changes));
        Ok(Arc::new(Self {
            queue,
            pollers,
            tasks: Mutex::new(vec![committer, dispatcher, follower, supervisor]),
        }))
    }

    /// Durably queues an async (Event) invoke; returns once it is safe on disk.
    pub async fn enqueue(&self, req: InvokeRequest) -> Result<(), InvokeError> {
        self.queue.enqueue(req).await
    }

    /// A function's asynchronous queue: events waiting, attempts running, events failed.
    pub fn queue_depth(&self, scope: &Scope, function: &str) -> QueueDepth {
        self.queue.counts.get(scope, function)
    }

    /// What the async queue's group commit has done since start-up: (transactions, writes in
    /// them); their ratio is the average batch.
    pub fn commit_stats(&self) -> (u64, u64) {
        let s = &self.queue.commit_stats;
        (
            s.commits.load(std::sync::atomic::Ordering::Relaxed),
            s.writes.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Every function that had asynchronous events since start-up, with its numbers.
    pub fn queue_depths(&self) -> Vec<(Scope, String, QueueDepth)> {
        self.queue.counts.all()
    }

    /// What the event source pollers say of each mapping, whenever it changes.
    pub fn mapping_report(&self) -> tokio::sync::watch::Receiver<flint_spec::MappingReport> {
        self.pollers.report()
    }

    /// Stops the workers; events not finished stay stored and resume at the next start.
    pub fn shutdown(&self) {
        self.queue.stop();
        self.pollers.shutdown();
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.shutdown();
    }
}
