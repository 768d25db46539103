//! Event source pollers: for every enabled event source mapping, a task that reads its queue,
//! stream or broker and invokes the mapping's function with batches, as Lambda's pollers do.
//!
//! [`supervise`] follows the control plane's change feed: a mapping created or enabled gets a
//! poller, one changed gets a new poller (the old one stopped first), one disabled or deleted
//! loses its poller (and, deleted, its checkpoints). Each source has its own module exporting
//! `run(mapping: Mapping)`, which polls until [`Mapping::stopped`] resolves. A poller invokes
//! through the engine like any client ([`Mapping::invoke`]: counted, throttled and logged as any
//! invoke of the function), keeps its positions with [`Mapping::checkpoint`] /
//! [`Mapping::save_checkpoint`], and says how it is doing with [`Mapping::report_result`] /
//! [`Mapping::report_problem`], which the control plane shows in GetEventSourceMapping.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use flint_connectors::Connectors;
use flint_engine::{Engine, InvokeError, InvokeRequest, InvokeResponse};
use flint_spec::feed::Subscription;
use flint_spec::{Change, EventSourceMappingSpec, MappingReport, MappingStatus, Scope, LATEST};
use flint_store::{DocKey, Store};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::functions::Functions;
use crate::EventsError;

mod brokers;
mod dynamodb_streams;
mod kafka;
mod kinesis;
mod mq;
mod sqs;
mod stream;

/// The store kind of pollers' checkpoints; keys are `<uuid>/<name>`.
const CHECKPOINT_KIND: &str = "event-source-checkpoint";

/// What every poller shares.
pub(crate) struct Context {
    pub engine: Arc<Engine>,
    pub store: Arc<Store>,
    pub connectors: Arc<Connectors>,
    pub functions: Arc<Functions>,
    report: watch::Sender<MappingReport>,
    /// Flint is stopping: every poller stops.
    shutdown: watch::Sender<bool>,
}

impl Context {
    pub(crate) fn new(
        engine: Arc<Engine>,
        store: Arc<Store>,
        connectors: Arc<Connectors>,
        functions: Arc<Functions>,
    ) -> Arc<Self> {
        Arc::new(Self {
            engine,
            store,
            connectors,
            functions,
            report: watch::Sender::new(MappingReport::new()),
            shutdown: watch::Sender::new(false),
        })
    }

    /// Stops every poller (at its next wait): Flint is shutting down.
    pub(crate) fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub(crate) fn report(&self) -> watch::Receiver<MappingReport> {
        self.report.subscribe()
    }

    fn update_status(&self, uuid: &str, update: impl FnOnce(&mut MappingStatus)) {
        self.report.send_if_modified(|report| {
            let status = report.entry(uuid.to_string()).or_default();
            let before = status.clone();
            update(status);
            *status != before
        });
    }

    fn forget_status(&self, uuid: &str) {
        self.report
            .send_if_modified(|report| report.remove(uuid).is_some());
    }
}

/// The kinds of event source, by the mapping's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceKind {
    Sqs,
    Kinesis,
    DynamoDbStreams,
    /// Amazon MSK (`arn:aws:kafka:…`) or a self-managed cluster (`SelfManagedEventSource`).
    Kafka,
    /// Amazon MQ (`arn:aws:mq:…`): RabbitMQ or ActiveMQ.
    Mq,
    DocumentDb,
}

impl SourceKind {
    pub(crate) fn of(spec: &EventSourceMappingSpec) -> Option<Self> {
        let Some(arn) = spec.event_source_arn.as_deref() else {
            return spec
                .config
                .get("SelfManagedEventSource")
                .is_some_and(|s| !s.is_null())
                .then_some(Self::Kafka);
        };
        match arn.split(':').nth(2)? {
            "sqs" => Some(Self::Sqs),
            "kinesis" => Some(Self::Kinesis),
            "dynamodb" if arn.contains("/stream/") => Some(Self::DynamoDbStreams),
            "kafka" => Some(Self::Kafka),
            "mq" => Some(Self::Mq),
            "rds" | "docdb" => Some(Self::DocumentDb),
            _ => None,
        }
    }
}

/// Why a poller's invoke did not run the function's code.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum InvokeFailure {
    /// The mapping's function (or its version or alias) does not exist (any more).
    #[error("{0}")]
    FunctionMissing(String),
    /// The batch's chain of events has invoked the function more than AWS allows, and the
    /// function does not allow recursive loops: the records are handled as failed ones.
    #[error("Lambda has detected your function being invoked in a recursive loop with other AWS resources and stopped your function's invocation.")]
    RecursiveLoop,
    /// The engine refused or failed the invoke (throttled, a runtime that cannot run, Flint's
    /// own fault); the batch should be retried later.
    #[error(transparent)]
    Invoke(#[from] InvokeError),
}

/// One mapping, as its source's poller sees it.
#[derive(Clone)]
pub(crate) struct Mapping {
    pub spec: Arc<EventSourceMappingSpec>,
    pub ctx: Arc<Context>,
    /// Its `PolledEventCount`, `InvokedEventCount`, … (`GET /metrics`).
    pub counters: Arc<crate::metrics::MappingMetrics>,
    stop: watch::Receiver<bool>,
}

impl Mapping {
    pub(crate) fn uuid(&self) -> &str {
        &self.spec.uuid
    }

    /// The stored configuration, with AWS's member names (`BatchSize`, `FilterCriteria`, …).
    pub(crate) fn config(&self) -> &Value {
        &self.spec.config
    }

    /// An integer setting (`BatchSize`, `MaximumBatchingWindowInSeconds`, …) if set.
    pub(crate) fn config_i64(&self, name: &str) -> Option<i64> {
        self.spec.config.get(name).and_then(Value::as_i64)
    }

    /// Resolves once the mapping is disabled, changed or deleted, or Flint stops: every wait
    /// of a poller selects on it.
    pub(crate) async fn stopped(&self) {
        let mut stop = self.stop.clone();
        let mut shutdown = self.ctx.shutdown.subscribe();
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => {}
            _ = shutdown.wait_for(|stopping| *stopping) => {}
        }
    }

    pub(crate) fn is_stopped(&self) -> bool {
        *self.stop.borrow() || *self.ctx.shutdown.borrow()
    }

    /// Whether the mapping's function (and the version or alias it names) exists now.
    pub(crate) fn function_exists(&self) -> bool {
        let (name, qualifier) = function_of(&self.spec.function_arn);
        self.ctx
            .functions
            .get(&self.spec.scope, name)
            .is_some_and(|state| state.version_of(qualifier.unwrap_or(LATEST)).is_some())
    }

    /// Invokes the mapping's function synchronously with one batch, as any client would: it
    /// counts against the function's concurrency (a throttle comes back as an error), runs the
    /// version or alias the mapping names, and is logged as an invoke of the function.
    pub(crate) async fn invoke(&self, payload: Bytes) -> Result<InvokeResponse, InvokeFailure> {
        self.invoke_traced(payload, None).await
    }

    /// [`Mapping::invoke`] for a batch that carries a trace header (an SQS message's
    /// `AWSTraceHeader`): the invocation continues its trace, and a chain of events that keeps
    /// invoking the function is stopped as a recursive loop (see `flint_engine::lineage`).
    pub(crate) async fn invoke_traced(
        &self,
        payload: Bytes,
        trace_header: Option<&str>,
    ) -> Result<InvokeResponse, InvokeFailure> {
        let (name, qualifier) = function_of(&self.spec.function_arn);
        let state = self
            .ctx
            .functions
            .get(&self.spec.scope, name)
            .ok_or_else(|| {
                InvokeFailure::FunctionMissing(format!(
                    "Function not found: {}",
                    self.spec.function_arn
                ))
            })?;
        let function = state
            .version_of(qualifier.unwrap_or(LATEST))
            .cloned()
            .ok_or_else(|| {
                InvokeFailure::FunctionMissing(format!(
                    "Function not found: {}",
                    self.spec.function_arn
                ))
            })?;
        let hop = flint_engine::lineage::next_hop(trace_header, &state.arn);
        if hop.is_loop() && state.recursive_loop != "Allow" {
            tracing::warn!(mapping = %self.uuid(), function = %state.name,
                "batch not delivered: the function is in a recursive loop (invoked more than {} times by one chain of events)",
                flint_engine::lineage::MAX_INVOCATIONS);
            return Err(InvokeFailure::RecursiveLoop);
        }
        let req = InvokeRequest {
            function,
            invoked_arn: self.spec.function_arn.clone(),
            payload: payload.into(),
            client_context: None,
            tail_log: false,
            request_id: uuid::Uuid::new_v4().to_string(),
            trace_header: Some(hop.trace_header),
            async_attempt: None,
        };
        Ok(self.ctx.engine.invoke(req).await?)
    }

    /// Reports how the last batch went (`LastProcessingResult`: "OK", "PROBLEM: Function call
    /// failed", …; only the sources AWS reports it for show it), and that the source is
    /// reachable again.
    pub(crate) fn report_result(&self, result: &str) {
        self.ctx.update_status(self.uuid(), |s| {
            s.last_processing_result = Some(result.to_string());
            s.problem = None;
        });
    }

    /// Reports that the source cannot be read (the poller keeps retrying): `reason` is what
    /// AWS would say, e.g. "PROBLEM: Connection error. Please check your event source
    /// connection configuration."
    pub(crate) fn report_problem(&self, reason: &str) {
        self.ctx
            .update_status(self.uuid(), |s| s.problem = Some(reason.to_string()));
    }

    /// The checkpoint `name` of this mapping (a shard's sequence number, …), if one was saved.
    pub(crate) fn checkpoint(&self, name: &str) -> Option<Value> {
        let key = checkpoint_key(self.uuid(), name);
        let doc = self.ctx.store.get(&self.checkpoint_doc(&key)).ok()??;
        serde_json::from_str(&doc).ok()
    }

    /// Saves the checkpoint `name` durably (it survives a restart of Flint; it is deleted with
    /// the mapping).
    pub(crate) async fn save_checkpoint(
        &self,
        name: &str,
        value: &Value,
    ) -> Result<(), EventsError> {
        let store = self.ctx.store.clone();
        let scope = self.spec.scope.clone();
        let key = checkpoint_key(self.uuid(), name);
        let value = value.to_string();
        tokio::task::spawn_blocking(move || {
            store.put(
                &DocKey {
                    account: &scope.account,
                    region: &scope.region,
                    kind: CHECKPOINT_KIND,
                    key: &key,
                },
                &value,
            )
        })
        .await
        .map_err(|e| EventsError::Runtime(format!("saving a checkpoint: {e}")))??;
        Ok(())
    }

    fn checkpoint_doc<'a>(&'a self, key: &'a str) -> DocKey<'a> {
        DocKey {
            account: &self.spec.scope.account,
            region: &self.spec.scope.region,
            kind: CHECKPOINT_KIND,
            key,
        }
    }
}

fn checkpoint_key(uuid: &str, name: &str) -> String {
    format!("{uuid}/{name}")
}

/// The function name and qualifier of a (possibly qualified) function ARN, or of a bare name.
fn function_of(arn: &str) -> (&str, Option<&str>) {
    let rest = match arn.split_once(":function:") {
        Some((_, rest)) => rest,
        None => arn,
    };
    match rest.split_once(':') {
        Some((name, qualifier)) => (name, Some(qualifier)),
        None => (rest, None),
    }
}

/// A mapping's running poller.
struct Running {
    spec: Arc<EventSourceMappingSpec>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(true);
        // A poller stops at its next wait; one stuck in a long call is cut off.
        let abort = self.task.abort_handle();
        if tokio::time::timeout(STOP_GRACE, self.task).await.is_err() {
            abort.abort();
        }
    }
}

/// How long a poller may take to finish its batch when its mapping changes.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Follows the change feed and keeps one poller running per enabled mapping. Returns when the
/// feed ends; the pollers are stopped then.
pub(crate) async fn supervise(ctx: Arc<Context>, mut changes: Subscription) {
    let mut running: HashMap<String, Running> = HashMap::new();
    while let Some(change) = changes.next().await {
        let Change::EventSourceMapping { scope, uuid, spec } = &*change else {
            continue;
        };
        if let (Some(spec), Some(r)) = (spec, running.get(uuid)) {
            if r.spec == *spec {
                continue;
            }
        }
        if let Some(r) = running.remove(uuid) {
            r.stop().await;
        }
        match spec {
            Some(spec) if spec.enabled => {
                running.insert(uuid.clone(), start(&ctx, spec.clone()));
            }
            Some(_) => ctx.forget_status(uuid),
            None => {
                ctx.forget_status(uuid);
                crate::metrics::registry().forget_mapping(uuid);
                delete_checkpoints(&ctx.store, scope, uuid);
            }
        }
    }
    for (_, r) in running.drain() {
        r.stop().await;
    }
}

fn start(ctx: &Arc<Context>, spec: Arc<EventSourceMappingSpec>) -> Running {
    let (stop, stop_rx) = watch::channel(false);
    let (function, _) = function_of(&spec.function_arn);
    let counters = crate::metrics::registry().mapping(
        &spec.uuid,
        (
            spec.scope.account.clone(),
            spec.scope.region.clone(),
            function.to_string(),
        ),
    );
    let mapping = Mapping {
        spec: spec.clone(),
        ctx: ctx.clone(),
        counters,
        stop: stop_rx,
    };
    let task = tokio::spawn(run(mapping));
    Running { spec, stop, task }
}

/// Runs the source's poller until the mapping stops.
async fn run(mapping: Mapping) {
    let uuid = mapping.uuid().to_string();
    tracing::info!(mapping = %uuid, source = ?mapping.spec.event_source_arn, function = %mapping.spec.function_arn,
        "event source poller starting");
    if let Some(kind) = SourceKind::of(&mapping.spec) {
        warn_unhonoured(&mapping, kind);
    }
    match SourceKind::of(&mapping.spec) {
        Some(SourceKind::Sqs) => sqs::run(mapping.clone()).await,
        Some(SourceKind::Kafka) => kafka::run(mapping.clone()).await,
        Some(SourceKind::Mq) => mq::run(mapping.clone()).await,
        Some(SourceKind::Kinesis) => kinesis::run(mapping.clone()).await,
        Some(SourceKind::DynamoDbStreams) => dynamodb_streams::run(mapping.clone()).await,
        Some(kind) => {
            let what = format!("{kind:?}");
            mapping.report_problem(&format!(
                "PROBLEM: Flint does not poll {what} event sources yet."
            ));
            tracing::warn!(mapping = %uuid, "Flint does not poll {what} event sources yet");
        }
        None => mapping.report_problem("PROBLEM: Unknown event source."),
    }
    mapping.stopped().await;
    tracing::info!(mapping = %uuid, "event source poller stopped");
}

/// Settings a mapping may carry that this source's poller does not act on: said once at start
/// (in Flint's log), never ignored silently.
fn warn_unhonoured(mapping: &Mapping, kind: SourceKind) {
    let source_specific: &[&str] = match kind {
        SourceKind::Kafka | SourceKind::Mq => &[
            "DestinationConfig",
            "MaximumRetryAttempts",
            "MaximumRecordAgeInSeconds",
            "BisectBatchOnFunctionError",
        ],
        _ => &[],
    };
    let everywhere = ["MetricsConfig", "ProvisionedPollerConfig"];
    for name in source_specific.iter().chain(everywhere.iter()) {
        let set = mapping
            .config()
            .get(*name)
            .is_some_and(|v| !v.is_null() && *v != Value::Object(Default::default()));
        if set {
            tracing::warn!(mapping = %mapping.uuid(),
                "{name} is stored but Flint's {kind:?} poller does not act on it yet");
        }
    }
}

fn delete_checkpoints(store: &Store, scope: &Scope, uuid: &str) {
    let prefix = format!("{uuid}/");
    let docs = match store.list(&scope.account, &scope.region, CHECKPOINT_KIND) {
        Ok(docs) => docs,
        Err(e) => {
            tracing::warn!(mapping = %uuid, "cannot list the deleted mapping's checkpoints: {e}");
            return;
        }
    };
    for doc in docs.iter().filter(|d| d.key.starts_with(&prefix)) {
        let k = DocKey {
            account: &scope.account,
            region: &scope.region,
            kind: CHECKPOINT_KIND,
            key: &doc.key,
        };
        if let Err(e) = store.delete(&k) {
            tracing::warn!(mapping = %uuid, "cannot delete checkpoint {}: {e}", doc.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_and_qualifiers_come_from_arns() {
        assert_eq!(
            function_of("arn:aws:lambda:us-east-1:000000000000:function:f"),
            ("f", None)
        );
        assert_eq!(
            function_of("arn:aws:lambda:us-east-1:000000000000:function:f:live"),
            ("f", Some("live"))
        );
        assert_eq!(function_of("f"), ("f", None));
    }

    #[test]
    fn source_kinds_come_from_the_source() {
        let spec = |arn: Option<&str>, config: Value| EventSourceMappingSpec {
            uuid: "u".into(),
            scope: Scope::default(),
            function_arn: "f".into(),
            event_source_arn: arn.map(str::to_string),
            enabled: true,
            config,
        };
        let of = |arn| SourceKind::of(&spec(Some(arn), Value::Null));
        assert_eq!(of("arn:aws:sqs:us-east-1:1:q"), Some(SourceKind::Sqs));
        assert_eq!(
            of("arn:aws:kinesis:us-east-1:1:stream/s"),
            Some(SourceKind::Kinesis)
        );
        assert_eq!(
            of("arn:aws:dynamodb:us-east-1:1:table/t/stream/2024"),
            Some(SourceKind::DynamoDbStreams)
        );
        assert_eq!(of("arn:aws:dynamodb:us-east-1:1:table/t"), None);
        assert_eq!(
            of("arn:aws:kafka:us-east-1:1:cluster/c/x"),
            Some(SourceKind::Kafka)
        );
        assert_eq!(
            of("arn:aws:mq:us-east-1:1:broker:b:id"),
            Some(SourceKind::Mq)
        );
        let kafka = spec(
            None,
            serde_json::json!({"SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["h:9092"]}}}),
        );
        assert_eq!(SourceKind::of(&kafka), Some(SourceKind::Kafka));
    }
}
