//! Event source mappings: which queue, stream or broker feeds which function, validated per source
//! type as Lambda does (defaults, allowed parameters, duplicates), with their state machine
//! (`Creating` → `Enabled`, `Updating`, `Disabling` → `Disabled`, …). The pollers that read the
//! sources belong to the asynchronous data plane (`flint-events`); they learn of mappings from the
//! change feed (`Change::EventSourceMapping`, published after every durable change). The
//! operations are the handlers at the end of the file; [`EventSourceMappings`] holds their state.
//!
//! At create, an SQS, Kinesis or DynamoDB Streams source is asked whether it exists
//! (`source_check`), as AWS does ("Stream not found: ..."); Kafka, MQ and DocumentDB sources are
//! accepted as well-formed ARNs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use flint_spec::feed::ChangeFeed;
use flint_spec::{Change, EventSourceMappingSpec, MappingReport};
use flint_store::{DocKey, Store, StoreError};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ErrorCode;
use crate::resource_util::{epoch_seconds, list_page, store_error};
use crate::source_check::SourceService;
use crate::{arn, function_name, ControlPlane, LambdaError, Scope};

/// The record format of stored mappings (format 0, before formats existed, has the same shape).
const FORMAT: u32 = flint_store::FORMAT_1;

const KIND: &str = "event-source-mapping";
const DEFAULT_LIST_ITEMS: usize = 100;
const MAX_LIST_ITEMS: usize = 10_000;
/// How long a mapping stays in a transitional state (`Creating`, `Updating`, …) before it
/// reports the settled one, as AWS's take a moment to apply.
pub const SETTLE_MILLIS: i64 = 500;

const NO_RECORDS_PROCESSED: &str = "No records processed";

/// The kinds of event source Lambda polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceKind {
    Sqs,
    Kinesis,
    DynamoDbStreams,
    /// Amazon MSK (`arn:aws:kafka:...`).
    Msk,
    SelfManagedKafka,
    /// Amazon MQ (ActiveMQ or RabbitMQ brokers).
    Mq,
    DocumentDb,
}

impl SourceKind {
    fn of_arn(arn: &str) -> Option<Self> {
        let service = arn.split(':').nth(2)?;
        match service {
            "sqs" => Some(Self::Sqs),
            "kinesis" => Some(Self::Kinesis),
            "dynamodb" if arn.contains("/stream/") => Some(Self::DynamoDbStreams),
            "kafka" => Some(Self::Msk),
            "mq" => Some(Self::Mq),
            "rds" | "docdb" => Some(Self::DocumentDb),
            _ => None,
        }
    }

    fn is_stream(self) -> bool {
        matches!(self, Self::Kinesis | Self::DynamoDbStreams)
    }

    fn is_kafka(self) -> bool {
        matches!(self, Self::Msk | Self::SelfManagedKafka)
    }

    fn default_batch_size(self) -> i64 {
        match self {
            Self::Sqs => 10,
            _ => 100,
        }
    }

    /// AWS words the reason of user-made state changes differently per family.
    fn state_transition_reason(self) -> &'static str {
        if self.is_stream() {
            "User action"
        } else {
            "USER_INITIATED"
        }
    }

    /// Whether the mapping reports `LastProcessingResult` (stream and Kafka pollers do).
    fn reports_processing_result(self) -> bool {
        self.is_stream() || self.is_kafka()
    }
}

/// A mapping's state as `State` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MappingState {
    Creating,
    Enabling,
    Enabled,
    Disabling,
    Disabled,
    Updating,
    Deleting,
}

impl MappingState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "Creating",
            Self::Enabling => "Enabling",
            Self::Enabled => "Enabled",
            Self::Disabling => "Disabling",
            Self::Disabled => "Disabled",
            Self::Updating => "Updating",
            Self::Deleting => "Deleting",
        }
    }
}

/// One event source mapping. Members named as the API names them; structured members the
/// pollers rarely need (filters, destinations, Kafka and DocumentDB settings) stay JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventSourceMapping {
    pub uuid: String,
    pub kind: SourceKind,
    pub event_source_arn: Option<String>,
    /// The function as the caller designated it, qualified if they qualified it.
    pub function_arn: String,
    /// What the user asked for; `state` says how far the mapping got.
    pub enabled: bool,
    pub state: MappingState,
    /// When `state` was entered (epoch milliseconds).
    pub state_since_ms: i64,
    /// When the mapping was created (epoch milliseconds): the order listings page in.
    #[serde(default)]
    pub created_ms: i64,
    pub last_modified_ms: i64,
    pub last_processing_result: Option<String>,
    pub batch_size: i64,
    pub maximum_batching_window_in_seconds: Option<i64>,
    pub parallelization_factor: Option<i64>,
    pub starting_position: Option<String>,
    /// Epoch seconds.
    pub starting_position_timestamp: Option<f64>,
    /// `{"Filters": [{"Pattern": "<json>"}]}`; absent when there are no filters.
    pub filter_criteria: Option<Value>,
    pub destination_config: Option<Value>,
    pub maximum_record_age_in_seconds: Option<i64>,
    pub bisect_batch_on_function_error: Option<bool>,
    pub maximum_retry_attempts: Option<i64>,
    pub tumbling_window_in_seconds: Option<i64>,
    pub function_response_types: Option<Vec<String>>,
    pub topics: Option<Vec<String>>,
    pub queues: Option<Vec<String>>,
    pub source_access_configurations: Option<Value>,
    pub self_managed_event_source: Option<Value>,
    pub amazon_managed_kafka_event_source_config: Option<Value>,
    pub self_managed_kafka_event_source_config: Option<Value>,
    pub scaling_config: Option<Value>,
    #[serde(rename = "DocumentDBEventSourceConfig")]
    pub document_db_event_source_config: Option<Value>,
    #[serde(rename = "KMSKeyArn")]
    pub kms_key_arn: Option<String>,
    pub metrics_config: Option<Value>,
    pub logging_config: Option<Value>,
    pub provisioned_poller_config: Option<Value>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl EventSourceMapping {
    /// The state as of `now_ms`: transitional states settle after [`SETTLE_MILLIS`].
    pub fn state_at(&self, now_ms: i64) -> MappingState {
        let settled = if self.enabled {
            MappingState::Enabled
        } else {
            MappingState::Disabled
        };
        match self.state {
            MappingState::Creating
            | MappingState::Enabling
            | MappingState::Disabling
            | MappingState::Updating
                if now_ms - self.state_since_ms >= SETTLE_MILLIS =>
            {
                settled
            }
            s => s,
        }
    }

    /// Whether pollers should read the source now.
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.enabled && self.state_at(now_ms) == MappingState::Enabled
    }

    pub fn arn(&self, scope: &Scope) -> String {
        arn::event_source_mapping_arn(scope, &self.uuid)
    }

    /// The mapping as its poller sees it.
    pub fn spec(&self, scope: &Scope) -> EventSourceMappingSpec {
        EventSourceMappingSpec {
            uuid: self.uuid.clone(),
            scope: scope.clone(),
            function_arn: self.function_arn.clone(),
            event_source_arn: self.event_source_arn.clone(),
            enabled: self.enabled,
            config: serde_json::to_value(self).unwrap_or(Value::Null),
        }
    }

    /// The model's `EventSourceMappingConfiguration`, in state `state`.
    fn output(&self, scope: &Scope, state: MappingState) -> MappingConfiguration {
        MappingConfiguration {
            uuid: self.uuid.clone(),
            starting_position: self.starting_position.clone(),
            starting_position_timestamp: self.starting_position_timestamp,
            batch_size: self.batch_size,
            maximum_batching_window_in_seconds: self.maximum_batching_window_in_seconds,
            parallelization_factor: self.parallelization_factor,
            event_source_arn: self.event_source_arn.clone(),
            filter_criteria: self.filter_criteria.clone(),
            function_arn: self.function_arn.clone(),
            last_modified: self.last_modified_ms as f64 / 1000.0,
            last_processing_result: self.last_processing_result.clone(),
            state: state.as_str(),
            state_transition_reason: self.kind.state_transition_reason().to_string(),
            destination_config: self.destination_config.clone(),
            topics: self.topics.clone(),
            queues: self.queues.clone(),
            source_access_configurations: self.source_access_configurations.clone(),
            self_managed_event_source: self.self_managed_event_source.clone(),
            maximum_record_age_in_seconds: self.maximum_record_age_in_seconds,
            bisect_batch_on_function_error: self.bisect_batch_on_function_error,
            maximum_retry_attempts: self.maximum_retry_attempts,
            tumbling_window_in_seconds: self.tumbling_window_in_seconds,
            function_response_types: self.function_response_types.clone(),
            amazon_managed_kafka_event_source_config: self
                .amazon_managed_kafka_event_source_config
                .clone(),
            self_managed_kafka_event_source_config: self
                .self_managed_kafka_event_source_config
                .clone(),
            scaling_config: self.scaling_config.clone(),
            document_db_event_source_config: self.document_db_event_source_config.clone(),
            kms_key_arn: self.kms_key_arn.clone(),
            event_source_mapping_arn: self.arn(scope),
            metrics_config: self.metrics_config.clone(),
            logging_config: self.logging_config.clone(),
            provisioned_poller_config: self.provisioned_poller_config.clone(),
        }
    }

    /// Kafka sources are identified by their bootstrap servers, the others by their ARN.
    fn sources(&self) -> Vec<String> {
        match &self.event_source_arn {
            Some(arn) => vec![arn.clone()],
            None => bootstrap_servers(self.self_managed_event_source.as_ref()),
        }
    }
}

/// Every mapping of every scope, in memory and durable in the store.
pub struct EventSourceMappings {
    store: Arc<Store>,
    mappings: RwLock<HashMap<String, (Scope, EventSourceMapping)>>,
    /// Where every change is published for the pollers (the control plane's change feed).
    feed: Arc<ChangeFeed>,
    /// What the pollers say of each mapping (None: no pollers run).
    report: RwLock<Option<tokio::sync::watch::Receiver<MappingReport>>>,
}

impl EventSourceMappings {
    pub fn open(store: Arc<Store>, feed: Arc<ChangeFeed>) -> Result<Self, StoreError> {
        let mut mappings = HashMap::new();
        for doc in
            store.load::<EventSourceMapping>(KIND, FORMAT, crate::state::upgrade_unchanged)?
        {
            let scope = Scope {
                account: doc.account,
                region: doc.region,
            };
            mappings.insert(doc.value.uuid.clone(), (scope, doc.value));
        }
        Ok(Self {
            store,
            mappings: RwLock::new(mappings),
            feed,
            report: RwLock::new(None),
        })
    }

    /// Every mapping as a change, for a new subscriber of the feed (called under its lock).
    pub(crate) fn current(&self) -> Vec<Change> {
        self.mappings
            .read()
            .iter()
            .map(|(uuid, (scope, m))| Change::EventSourceMapping {
                scope: scope.clone(),
                uuid: uuid.clone(),
                spec: Some(Arc::new(m.spec(scope))),
            })
            .collect()
    }

    /// A snapshot of every mapping (for the pollers); see [`EventSourceMapping::is_active`].
    pub fn mappings(&self) -> Vec<(Scope, EventSourceMapping)> {
        self.mappings.read().values().cloned().collect()
    }

    pub(crate) fn follow_report(&self, report: tokio::sync::watch::Receiver<MappingReport>) {
        *self.report.write() = Some(report);
    }

    /// The mapping as the API shows it: its configuration, in `state`, with what its poller
    /// last reported.
    fn output(
        &self,
        scope: &Scope,
        m: &EventSourceMapping,
        state: MappingState,
    ) -> MappingConfiguration {
        let mut out = m.output(scope, state);
        let report = self.report.read();
        let Some(status) = report
            .as_ref()
            .and_then(|r| r.borrow().get(&m.uuid).cloned())
        else {
            return out;
        };
        if m.kind.reports_processing_result() {
            if let Some(result) = status.last_processing_result {
                out.last_processing_result = Some(result);
            }
        }
        if let Some(problem) = status.problem {
            if m.kind.reports_processing_result() {
                out.last_processing_result = Some(problem.clone());
            }
            out.state_transition_reason = problem;
        }
        out
    }

    /// What a poller reports after a batch (`LastProcessingResult`, e.g. "OK",
    /// "PROBLEM: Function call failed").
    pub fn record_processing_result(&self, uuid: &str, result: &str) -> Result<(), LambdaError> {
        let mut mappings = self.mappings.write();
        if let Some((scope, m)) = mappings.get_mut(uuid) {
            if m.last_processing_result.as_deref() != Some(result) {
                m.last_processing_result = Some(result.to_string());
                persist(&self.store, scope, m)?;
            }
        }
        Ok(())
    }

    /// The caller's mapping `uuid`, or AWS's 404.
    fn get(&self, scope: &Scope, uuid: &str) -> Result<EventSourceMapping, LambdaError> {
        match self.mappings.read().get(uuid) {
            Some((s, m)) if s == scope => Ok(m.clone()),
            _ => Err(LambdaError::resource_not_found()),
        }
    }

    /// Publishes mapping `uuid` as it is now (or its deletion). Reading the current state under
    /// the feed's lock makes the last publication the latest state, however writers interleave.
    fn changed(&self, scope: &Scope, uuid: &str) {
        self.feed.publish_with(|| {
            let spec = self
                .mappings
                .read()
                .get(uuid)
                .map(|(s, m)| Arc::new(m.spec(s)));
            let change = Change::EventSourceMapping {
                scope: scope.clone(),
                uuid: uuid.to_string(),
                spec,
            };
            ((), vec![change])
        });
    }
}

fn by_arn<'a>(
    mappings: &'a HashMap<String, (Scope, EventSourceMapping)>,
    scope: &Scope,
    arn: &str,
) -> Result<&'a EventSourceMapping, LambdaError> {
    let not_found = || LambdaError::event_source_mapping_not_found(arn);
    let uuid = arn
        .strip_prefix(&arn::event_source_mapping_prefix(scope))
        .ok_or_else(not_found)?;
    match mappings.get(uuid) {
        Some((s, m)) if s == scope => Ok(m),
        _ => Err(not_found()),
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn persist(store: &Store, scope: &Scope, m: &EventSourceMapping) -> Result<(), LambdaError> {
    let value = serde_json::to_string(m).map_err(store_error)?;
    let k = DocKey {
        account: &scope.account,
        region: &scope.region,
        kind: KIND,
        key: &m.uuid,
    };
    store.put(&k, &value).map_err(store_error)
}

fn function_does_not_exist() -> LambdaError {
    LambdaError::invalid("Function does not exist")
}

/// The servers a self-managed Kafka source lists (`Endpoints.KAFKA_BOOTSTRAP_SERVERS`).
fn bootstrap_servers(source: Option<&Value>) -> Vec<String> {
    source
        .and_then(|s| s.get("Endpoints"))
        .and_then(|e| e.get("KAFKA_BOOTSTRAP_SERVERS"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The kind of source a create request names, checked in the order AWS checks.
fn source_kind(input: &MappingInput) -> Result<SourceKind, LambdaError> {
    if let Some(dc) = &input.destination_config {
        if dc.get("OnSuccess").is_some() {
            return Err(unsupported("DestinationConfig"));
        }
    }
    if input.self_managed_event_source.is_some() {
        if input.source_access_configurations.is_none() {
            return Err(LambdaError::invalid(
                "Required 'sourceAccessConfigurations' parameter is missing.",
            ));
        }
        return Ok(SourceKind::SelfManagedKafka);
    }
    input
        .event_source_arn
        .as_deref()
        .and_then(SourceKind::of_arn)
        .ok_or_else(|| LambdaError::invalid("Unrecognized event source."))
}

fn unsupported(parameter: &str) -> LambdaError {
    LambdaError::invalid(format!(
        "Unsupported {parameter} parameter for given event source mapping type."
    ))
}

/// Defaults AWS fills in per source type (what Get shows for members the caller left out).
fn apply_defaults(m: &mut EventSourceMapping) {
    let k = m.kind;
    m.function_response_types = (k == SourceKind::Sqs || k.is_stream()).then(Vec::new);
    if matches!(k, SourceKind::Sqs | SourceKind::Mq | SourceKind::DocumentDb) || k.is_stream() {
        m.maximum_batching_window_in_seconds = Some(0);
    }
    if k.is_stream() {
        m.parallelization_factor = Some(1);
        m.maximum_record_age_in_seconds = Some(-1);
        m.bisect_batch_on_function_error = Some(false);
        m.maximum_retry_attempts = Some(-1);
        m.tumbling_window_in_seconds = Some(0);
        m.destination_config = Some(json!({ "OnFailure": {} }));
    }
}

/// Members only `CreateEventSourceMapping` takes.
fn apply_create_only(m: &mut EventSourceMapping, input: &MappingInput) -> Result<(), LambdaError> {
    let k = m.kind;
    if let Some(p) = &input.starting_position {
        if !(k.is_stream() || k.is_kafka() || k == SourceKind::DocumentDb) {
            return Err(unsupported("StartingPosition"));
        }
        m.starting_position = Some(p.clone());
    }
    if k.is_stream() && m.starting_position.is_none() {
        return Err(LambdaError::invalid(
            "1 validation error detected: Value null at 'startingPosition' failed to satisfy \
             constraint: Member must not be null.",
        ));
    }
    if k.is_kafka() || k == SourceKind::DocumentDb {
        m.starting_position
            .get_or_insert_with(|| "TRIM_HORIZON".to_string());
    }
    if k == SourceKind::DynamoDbStreams && m.starting_position.as_deref() == Some("AT_TIMESTAMP") {
        return Err(LambdaError::invalid(format!(
            "Unsupported starting position for arn type: {}",
            m.event_source_arn.as_deref().unwrap_or_default()
        )));
    }
    if let Some(ts) = &input.starting_position_timestamp {
        if m.starting_position.as_deref() != Some("AT_TIMESTAMP") {
            return Err(unsupported("StartingPositionTimestamp"));
        }
        m.starting_position_timestamp = timestamp_seconds(ts);
    } else if m.starting_position.as_deref() == Some("AT_TIMESTAMP") {
        return Err(LambdaError::invalid(
            "StartingPositionTimestamp must be provided when StartingPosition is AT_TIMESTAMP.",
        ));
    }
    if input.topics.is_some() {
        if !k.is_kafka() {
            return Err(unsupported("Topics"));
        }
        m.topics = input.topics.clone();
    } else if k.is_kafka() {
        return Err(LambdaError::invalid(
            "Required 'topics' parameter is missing.",
        ));
    }
    if input.queues.is_some() {
        if k != SourceKind::Mq {
            return Err(unsupported("Queues"));
        }
        m.queues = input.queues.clone();
    } else if k == SourceKind::Mq {
        return Err(LambdaError::invalid(
            "Required 'queues' parameter is missing.",
        ));
    }
    if k == SourceKind::Mq && input.source_access_configurations.is_none() {
        return Err(LambdaError::invalid(
            "Required 'sourceAccessConfigurations' parameter is missing.",
        ));
    }
    if let Some(source) = &input.self_managed_event_source {
        if bootstrap_servers(Some(source)).is_empty() {
            return Err(LambdaError::invalid(
                "Required 'KAFKA_BOOTSTRAP_SERVERS' endpoints are missing.",
            ));
        }
        m.self_managed_event_source = Some(source.clone());
    }
    // Kafka consumers join a group; AWS names it after the mapping unless told otherwise.
    let consumer_group = |given: &Option<Value>| {
        let mut cfg = given.clone().unwrap_or_else(|| json!({}));
        if let Value::Object(o) = &mut cfg {
            o.entry("ConsumerGroupId")
                .or_insert_with(|| m.uuid.clone().into());
        }
        cfg
    };
    let amazon = input.amazon_managed_kafka_event_source_config.is_some();
    let self_managed = input.self_managed_kafka_event_source_config.is_some();
    match k {
        SourceKind::Msk => {
            if self_managed {
                return Err(unsupported("SelfManagedKafkaEventSourceConfig"));
            }
            m.amazon_managed_kafka_event_source_config = Some(consumer_group(
                &input.amazon_managed_kafka_event_source_config,
            ));
        }
        SourceKind::SelfManagedKafka => {
            if amazon {
                return Err(unsupported("AmazonManagedKafkaEventSourceConfig"));
            }
            m.self_managed_kafka_event_source_config = Some(consumer_group(
                &input.self_managed_kafka_event_source_config,
            ));
        }
        _ if amazon => return Err(unsupported("AmazonManagedKafkaEventSourceConfig")),
        _ if self_managed => return Err(unsupported("SelfManagedKafkaEventSourceConfig")),
        _ => {}
    }
    if k == SourceKind::DocumentDb && input.document_db_event_source_config.is_none() {
        return Err(LambdaError::invalid(
            "Required 'documentDBEventSourceConfig' parameter is missing.",
        ));
    }
    Ok(())
}

/// `Some(value)` of a member a source type accepts; AWS's 400 for one it does not.
fn only_for<T: Clone>(
    name: &str,
    given: &Option<T>,
    allowed: bool,
) -> Result<Option<T>, LambdaError> {
    match (given, allowed) {
        (Some(_), false) => Err(unsupported(name)),
        (g, _) => Ok(g.clone()),
    }
}

/// Members both Create and Update take, checked against the source type.
fn apply_settings(m: &mut EventSourceMapping, input: &MappingInput) -> Result<(), LambdaError> {
    let k = m.kind;
    let stream_or_kafka = k.is_stream() || k.is_kafka();
    if let Some(b) = input.batch_size {
        m.batch_size = b;
    }
    if let Some(w) = input.maximum_batching_window_in_seconds {
        m.maximum_batching_window_in_seconds = Some(w);
    }
    if let Some(v) = only_for(
        "ParallelizationFactor",
        &input.parallelization_factor,
        k.is_stream(),
    )? {
        m.parallelization_factor = Some(v);
    }
    if let Some(v) = only_for(
        "MaximumRecordAgeInSeconds",
        &input.maximum_record_age_in_seconds,
        stream_or_kafka,
    )? {
        m.maximum_record_age_in_seconds = Some(v);
    }
    if let Some(v) = only_for(
        "BisectBatchOnFunctionError",
        &input.bisect_batch_on_function_error,
        stream_or_kafka,
    )? {
        m.bisect_batch_on_function_error = Some(v);
    }
    if let Some(v) = only_for(
        "MaximumRetryAttempts",
        &input.maximum_retry_attempts,
        stream_or_kafka,
    )? {
        m.maximum_retry_attempts = Some(v);
    }
    if let Some(v) = only_for(
        "TumblingWindowInSeconds",
        &input.tumbling_window_in_seconds,
        k.is_stream(),
    )? {
        m.tumbling_window_in_seconds = Some(v);
    }
    if let Some(v) = only_for(
        "FunctionResponseTypes",
        &input.function_response_types,
        k == SourceKind::Sqs || k.is_stream(),
    )? {
        m.function_response_types = Some(v);
    }
    if let Some(v) = only_for("ScalingConfig", &input.scaling_config, k == SourceKind::Sqs)? {
        m.scaling_config = Some(v);
    }
    if let Some(v) = only_for(
        "DocumentDBEventSourceConfig",
        &input.document_db_event_source_config,
        k == SourceKind::DocumentDb,
    )? {
        m.document_db_event_source_config = Some(v);
    }
    if let Some(v) = only_for(
        "SourceAccessConfigurations",
        &input.source_access_configurations,
        k.is_kafka() || matches!(k, SourceKind::Mq | SourceKind::DocumentDb),
    )? {
        m.source_access_configurations = Some(v);
    }
    if let Some(v) = only_for(
        "ProvisionedPollerConfig",
        &input.provisioned_poller_config,
        k.is_kafka() || k == SourceKind::Sqs,
    )? {
        m.provisioned_poller_config = Some(v);
    }
    if let Some(dc) = &input.destination_config {
        if dc.get("OnSuccess").is_some() {
            return Err(unsupported("DestinationConfig"));
        }
        let on_failure = dc.get("OnFailure").cloned().unwrap_or_else(|| json!({}));
        let destination = on_failure
            .get("Destination")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !destination.is_empty() && !stream_or_kafka {
            return Err(unsupported("DestinationConfig"));
        }
        if !destination.is_empty() && !valid_failure_destination(k, destination) {
            return Err(LambdaError::invalid(format!(
                "The provided destination config DestinationConfig(onSuccess=null, \
                 onFailure=OnFailure(destination={destination})) is invalid."
            )));
        }
        if stream_or_kafka {
            m.destination_config = Some(json!({ "OnFailure": on_failure }));
        }
    }
    if let Some(fc) = &input.filter_criteria {
        let filters = fc
            .get("Filters")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        // Validated as AWS validates patterns; the pollers parse the stored criteria again.
        flint_filter::FilterSet::parse(&json!({ "Filters": filters }))
            .map_err(|e| LambdaError::invalid(e.to_string()))?;
        // An empty filter list clears the criteria: AWS then omits the member.
        m.filter_criteria = (!filters.is_empty()).then(|| json!({ "Filters": filters }));
    }
    if let Some(key) = &input.kms_key_arn {
        m.kms_key_arn = (!key.is_empty()).then(|| key.clone());
    }
    if input.metrics_config.is_some() {
        m.metrics_config = input.metrics_config.clone();
    }
    if input.logging_config.is_some() {
        m.logging_config = input.logging_config.clone();
    }
    Ok(())
}

/// Rules that involve several members, checked on the result of a create or an update.
fn validate(m: &EventSourceMapping) -> Result<(), LambdaError> {
    let fifo = m.kind == SourceKind::Sqs
        && m.event_source_arn
            .as_deref()
            .is_some_and(|a| a.ends_with(".fifo"));
    if fifo && m.batch_size > 10 {
        return Err(LambdaError::invalid(
            "Batch size for FIFO queues must be less than or equal to 10.",
        ));
    }
    if m.kind == SourceKind::Sqs
        && m.batch_size > 10
        && m.maximum_batching_window_in_seconds.unwrap_or(0) == 0
    {
        return Err(LambdaError::invalid(
            "Maximum batch window in seconds must be greater than 0 if maximum batch size is \
             greater than 10",
        ));
    }
    if let Some(age) = m.maximum_record_age_in_seconds {
        if (0..60).contains(&age) {
            return Err(LambdaError::invalid(
                "MaximumRecordAgeInSeconds must be -1 or between 60 and 604800.",
            ));
        }
    }
    Ok(())
}

fn valid_failure_destination(kind: SourceKind, destination: &str) -> bool {
    if kind.is_kafka() && destination.starts_with("kafka://") {
        return true;
    }
    matches!(destination.split(':').nth(2), Some("sqs" | "sns" | "s3"))
}

/// `StartingPositionTimestamp` as epoch seconds (SDKs send a number; tolerate ISO strings).
fn timestamp_seconds(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok().or_else(|| {
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| epoch_seconds(t.to_utc()))
        }),
        _ => None,
    }
}

/// AWS's 409 for a second mapping of the same source and function, worded per source type.
fn check_duplicate(
    mappings: &HashMap<String, (Scope, EventSourceMapping)>,
    scope: &Scope,
    new: &EventSourceMapping,
    function_name: &str,
) -> Result<(), LambdaError> {
    let new_sources = new.sources();
    for (s, old) in mappings.values() {
        if s != scope || old.function_arn != new.function_arn {
            continue;
        }
        if !old.sources().iter().any(|x| new_sources.contains(x)) {
            continue;
        }
        let message = match new.kind {
            SourceKind::Sqs => format!(
                "An event source mapping with SQS arn (\" {} \") and function (\" {function_name} \
                 \") already exists. Please update or delete the existing mapping with UUID {}",
                old.event_source_arn.as_deref().unwrap_or_default(),
                old.uuid
            ),
            SourceKind::Msk | SourceKind::SelfManagedKafka => {
                let old_topics = old.topics.clone().unwrap_or_default();
                let new_topics = new.topics.clone().unwrap_or_default();
                if !old_topics.iter().any(|t| new_topics.contains(t)) {
                    continue;
                }
                format!(
                    "An event source mapping with event source (\"{}\"), function (\"{}\"), \
                     topics (\"{}\") already exists. Please update or delete the existing \
                     mapping with UUID {}",
                    new_sources.join(","),
                    new.function_arn,
                    new_topics.join(","),
                    old.uuid
                )
            }
            _ => format!(
                "The event source arn (\" {} \") and function (\" {function_name} \") provided \
                 mapping already exists. Please update or delete the existing mapping with UUID {}",
                old.event_source_arn.as_deref().unwrap_or_default(),
                old.uuid
            ),
        };
        return Err(LambdaError::new(
            ErrorCode::ResourceConflictException,
            message,
        ));
    }
    Ok(())
}

/// TagResource/UntagResource/ListTags reach these through the tags module.
impl crate::tags::ResourceTags for EventSourceMappings {
    /// The tags of a mapping (for ListTags), or AWS's 404.
    fn tags(&self, scope: &Scope, arn: &str) -> Result<BTreeMap<String, String>, LambdaError> {
        let mappings = self.mappings.read();
        by_arn(&mappings, scope, arn).map(|m| m.tags.clone())
    }

    /// Replaces a mapping's tags (TagResource/UntagResource compute the new set).
    fn set_tags(
        &self,
        scope: &Scope,
        arn: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<(), LambdaError> {
        let mut mappings = self.mappings.write();
        let mut m = by_arn(&mappings, scope, arn)?.clone();
        m.tags = tags;
        persist(&self.store, scope, &m)?;
        mappings.insert(m.uuid.clone(), (scope.clone(), m));
        Ok(())
    }
}

// ---- Inputs and outputs, as the model names their members ----

/// The members Create and Update take (Update also takes `UUID`); structured members the pollers
/// rarely need stay JSON, as they are stored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MappingInput {
    pub event_source_arn: Option<String>,
    pub function_name: Option<String>,
    pub enabled: Option<bool>,
    pub batch_size: Option<i64>,
    pub filter_criteria: Option<Value>,
    pub maximum_batching_window_in_seconds: Option<i64>,
    pub parallelization_factor: Option<i64>,
    pub starting_position: Option<String>,
    /// Epoch seconds (SDKs send a number; ISO strings are tolerated).
    pub starting_position_timestamp: Option<Value>,
    pub destination_config: Option<Value>,
    pub maximum_record_age_in_seconds: Option<i64>,
    pub bisect_batch_on_function_error: Option<bool>,
    pub maximum_retry_attempts: Option<i64>,
    pub tags: Option<BTreeMap<String, String>>,
    pub tumbling_window_in_seconds: Option<i64>,
    pub topics: Option<Vec<String>>,
    pub queues: Option<Vec<String>>,
    pub source_access_configurations: Option<Value>,
    pub self_managed_event_source: Option<Value>,
    pub function_response_types: Option<Vec<String>>,
    pub amazon_managed_kafka_event_source_config: Option<Value>,
    pub self_managed_kafka_event_source_config: Option<Value>,
    pub scaling_config: Option<Value>,
    #[serde(rename = "DocumentDBEventSourceConfig")]
    pub document_db_event_source_config: Option<Value>,
    #[serde(rename = "KMSKeyArn")]
    pub kms_key_arn: Option<String>,
    pub metrics_config: Option<Value>,
    pub logging_config: Option<Value>,
    pub provisioned_poller_config: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct UpdateEventSourceMappingInput {
    #[serde(rename = "UUID", default)]
    pub uuid: String,
    #[serde(flatten)]
    pub mapping: MappingInput,
}

/// Get/DeleteEventSourceMapping.
#[derive(Debug, Deserialize)]
pub struct UuidInput {
    #[serde(rename = "UUID", default)]
    pub uuid: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListEventSourceMappingsInput {
    pub event_source_arn: Option<String>,
    pub function_name: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

/// The model's `EventSourceMappingConfiguration`: what every mapping operation answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MappingConfiguration {
    #[serde(rename = "UUID")]
    pub uuid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_position: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_position_timestamp: Option<f64>,
    pub batch_size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_batching_window_in_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelization_factor: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_source_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_criteria: Option<Value>,
    pub function_arn: String,
    /// Epoch seconds.
    pub last_modified: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_processing_result: Option<String>,
    pub state: &'static str,
    pub state_transition_reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_config: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queues: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_access_configurations: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_managed_event_source: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_record_age_in_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bisect_batch_on_function_error: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_retry_attempts: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tumbling_window_in_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_response_types: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amazon_managed_kafka_event_source_config: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_managed_kafka_event_source_config: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling_config: Option<Value>,
    #[serde(
        rename = "DocumentDBEventSourceConfig",
        skip_serializing_if = "Option::is_none"
    )]
    pub document_db_event_source_config: Option<Value>,
    #[serde(rename = "KMSKeyArn", skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
    pub event_source_mapping_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_config: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging_config: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisioned_poller_config: Option<Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListEventSourceMappingsOutput {
    pub event_source_mappings: Vec<MappingConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

// ---- The operations ----

/// The function a mapping names, as its ARN (qualified as the caller qualified it), if it
/// exists: a mapping may name a function of the scope its ARN names.
fn mapped_function(
    cp: &ControlPlane,
    scope: &Scope,
    name: &str,
) -> Result<(String, String), LambdaError> {
    let (owner, f) = function_name::locate(scope, name)?;
    if !cp.function_exists(&owner, &f.name, f.qualifier.as_deref()) {
        return Err(function_does_not_exist());
    }
    Ok((f.arn(&owner), f.name))
}

pub async fn create(
    cp: &ControlPlane,
    scope: &Scope,
    input: MappingInput,
) -> Result<MappingConfiguration, LambdaError> {
    let now = now_ms();
    let kind = source_kind(&input)?;
    let uuid = uuid::Uuid::new_v4().to_string();
    let mut m = EventSourceMapping {
        uuid: uuid.clone(),
        kind,
        event_source_arn: input.event_source_arn.clone(),
        function_arn: String::new(),
        enabled: input.enabled.unwrap_or(true),
        state: MappingState::Creating,
        state_since_ms: now,
        created_ms: now,
        last_modified_ms: now,
        last_processing_result: kind
            .reports_processing_result()
            .then(|| NO_RECORDS_PROCESSED.to_string()),
        batch_size: kind.default_batch_size(),
        maximum_batching_window_in_seconds: None,
        parallelization_factor: None,
        starting_position: None,
        starting_position_timestamp: None,
        filter_criteria: None,
        destination_config: None,
        maximum_record_age_in_seconds: None,
        bisect_batch_on_function_error: None,
        maximum_retry_attempts: None,
        tumbling_window_in_seconds: None,
        function_response_types: None,
        topics: None,
        queues: None,
        source_access_configurations: None,
        self_managed_event_source: None,
        amazon_managed_kafka_event_source_config: None,
        self_managed_kafka_event_source_config: None,
        scaling_config: None,
        document_db_event_source_config: None,
        kms_key_arn: None,
        metrics_config: None,
        logging_config: None,
        provisioned_poller_config: None,
        tags: input.tags.clone().unwrap_or_default(),
    };
    apply_defaults(&mut m);
    apply_create_only(&mut m, &input)?;
    apply_settings(&mut m, &input)?;
    validate(&m)?;
    let (function_arn, function_name) = mapped_function(
        cp,
        scope,
        input.function_name.as_deref().unwrap_or_default(),
    )?;
    m.function_arn = function_arn;
    let checked = match kind {
        SourceKind::Sqs => Some(SourceService::Sqs),
        SourceKind::Kinesis => Some(SourceService::Kinesis),
        SourceKind::DynamoDbStreams => Some(SourceService::DynamoDbStreams),
        _ => None,
    };
    if let (Some(service), Some(source)) = (checked, &m.event_source_arn) {
        cp.check_source(service, source).await?;
    }
    if !m.enabled {
        // AWS reports a mapping created disabled as Disabled at once.
        m.state = MappingState::Disabled;
    }
    let mappings = &cp.mappings;
    let mut all = mappings.mappings.write();
    check_duplicate(&all, scope, &m, &function_name)?;
    persist(&mappings.store, scope, &m)?;
    let out = m.output(scope, m.state);
    all.insert(uuid.clone(), (scope.clone(), m));
    drop(all);
    mappings.changed(scope, &uuid);
    Ok(out)
}

pub async fn get(
    cp: &ControlPlane,
    scope: &Scope,
    input: UuidInput,
) -> Result<MappingConfiguration, LambdaError> {
    let m = cp.mappings.get(scope, &input.uuid)?;
    Ok(cp.mappings.output(scope, &m, m.state_at(now_ms())))
}

pub async fn update(
    cp: &ControlPlane,
    scope: &Scope,
    input: UpdateEventSourceMappingInput,
) -> Result<MappingConfiguration, LambdaError> {
    let now = now_ms();
    let uuid = input.uuid;
    let input = input.mapping;
    let mut m = cp.mappings.get(scope, &uuid)?;
    let was_enabled = m.enabled;
    apply_settings(&mut m, &input)?;
    if let Some(e) = input.enabled {
        m.enabled = e;
    }
    validate(&m)?;
    if let Some(name) = &input.function_name {
        m.function_arn = mapped_function(cp, scope, name)?.0;
    }
    m.state = match (was_enabled, m.enabled) {
        (false, true) => MappingState::Enabling,
        (true, false) => MappingState::Disabling,
        _ => MappingState::Updating,
    };
    m.state_since_ms = now;
    m.last_modified_ms = now;
    let mappings = &cp.mappings;
    let mut all = mappings.mappings.write();
    // Deleted meanwhile: the update loses.
    if !all.contains_key(&uuid) {
        return Err(LambdaError::resource_not_found());
    }
    persist(&mappings.store, scope, &m)?;
    let out = m.output(scope, m.state);
    all.insert(uuid.clone(), (scope.clone(), m));
    drop(all);
    mappings.changed(scope, &uuid);
    Ok(out)
}

pub async fn delete(
    cp: &ControlPlane,
    scope: &Scope,
    input: UuidInput,
) -> Result<MappingConfiguration, LambdaError> {
    let uuid = input.uuid.as_str();
    let mappings = &cp.mappings;
    let mut all = mappings.mappings.write();
    let m = match all.get(uuid) {
        Some((s, m)) if s == scope => m.clone(),
        _ => return Err(LambdaError::resource_not_found()),
    };
    let k = DocKey {
        account: &scope.account,
        region: &scope.region,
        kind: KIND,
        key: uuid,
    };
    mappings.store.delete(&k).map_err(store_error)?;
    all.remove(uuid);
    drop(all);
    mappings.changed(scope, uuid);
    Ok(m.output(scope, MappingState::Deleting))
}

pub async fn list(
    cp: &ControlPlane,
    scope: &Scope,
    input: ListEventSourceMappingsInput,
) -> Result<ListEventSourceMappingsOutput, LambdaError> {
    let source = input.event_source_arn.as_deref();
    let function = input
        .function_name
        .as_deref()
        .map(|f| function_name::locate(scope, f).map(|(owner, f)| f.arn(&owner)))
        .transpose()?;
    let now = now_ms();
    let found: Vec<(String, MappingConfiguration)> = cp
        .mappings
        .mappings
        .read()
        .values()
        .filter(|(s, _)| s == scope)
        .filter(|(_, m)| source.is_none_or(|a| m.event_source_arn.as_deref() == Some(a)))
        .filter(|(_, m)| function.as_ref().is_none_or(|f| *f == m.function_arn))
        // Oldest first; a marker is the sort key of the first item of its page.
        .map(|(_, m)| {
            let key = format!("{:015}-{}", m.created_ms, m.uuid);
            (key, cp.mappings.output(scope, m, m.state_at(now)))
        })
        .collect();
    let (event_source_mappings, next_marker) = list_page(
        found,
        input.marker.as_deref(),
        input.max_items,
        (DEFAULT_LIST_ITEMS, MAX_LIST_ITEMS),
    );
    Ok(ListEventSourceMappingsOutput {
        event_source_mappings,
        next_marker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sub_resource::test_support::{
        create_alias, create_function, exec, fixture, publish, reopen, scope, Fixture,
    };
    use crate::tags::ResourceTags as _;
    use std::collections::HashSet;

    const FN_ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:fn1";
    const QUEUE: &str = "arn:aws:sqs:us-east-1:000000000000:q1";
    const KINESIS: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/s1";
    const DDB: &str =
        "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2024-01-01T00:00:00.000";

    /// A control plane with functions `fn1` (with version 1 and alias `myalias`) and `fn2`.
    async fn open() -> Fixture {
        let fx = fixture();
        create_function(&fx.cp, "fn1").await;
        create_function(&fx.cp, "fn2").await;
        let v = publish(&fx.cp, "fn1").await;
        create_alias(&fx.cp, "fn1", "myalias", &v).await;
        fx
    }

    async fn run(e: &ControlPlane, op: &str, input: Value) -> Result<Value, LambdaError> {
        exec(e, op, input).await
    }

    fn err(r: Result<Value, LambdaError>) -> (ErrorCode, String) {
        let e = r.unwrap_err();
        (e.code, e.message)
    }

    fn keys(v: &Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    }

    /// Waits until the mapping has left its transitional state (what a client polling
    /// GetEventSourceMapping sees), within a deadline.
    async fn settle(e: &ControlPlane, uuid: &str) {
        let deadline =
            std::time::Instant::now() + std::time::Duration::from_millis(SETTLE_MILLIS as u64 * 20);
        loop {
            let got = run(e, "GetEventSourceMapping", json!({"UUID": uuid}))
                .await
                .unwrap();
            let transitional = ["Creating", "Updating", "Enabling", "Disabling"];
            if !transitional.contains(&got["State"].as_str().unwrap_or_default()) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{uuid} never settled: {got}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn sqs_mapping_has_aws_defaults_and_shape() {
        let fx = open().await;
        let e = &*fx.cp;
        let out = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": QUEUE}),
        )
        .await
        .unwrap();
        assert_eq!(
            keys(&out),
            [
                "BatchSize",
                "EventSourceArn",
                "EventSourceMappingArn",
                "FunctionArn",
                "FunctionResponseTypes",
                "LastModified",
                "MaximumBatchingWindowInSeconds",
                "State",
                "StateTransitionReason",
                "UUID"
            ]
        );
        let uuid = out["UUID"].as_str().unwrap();
        assert_eq!(out["BatchSize"], 10);
        assert_eq!(out["MaximumBatchingWindowInSeconds"], 0);
        assert_eq!(out["FunctionResponseTypes"], json!([]));
        assert_eq!(out["FunctionArn"], FN_ARN);
        assert_eq!(out["State"], "Creating");
        assert_eq!(out["StateTransitionReason"], "USER_INITIATED");
        assert_eq!(
            out["EventSourceMappingArn"],
            format!("arn:aws:lambda:us-east-1:000000000000:event-source-mapping:{uuid}")
        );
        assert!(out["LastModified"].as_f64().unwrap() > 1.7e9);
        settle(e, uuid).await;
        let got = run(e, "GetEventSourceMapping", json!({"UUID": uuid}))
            .await
            .unwrap();
        assert_eq!(got["State"], "Enabled");
        assert_eq!(got["LastModified"], out["LastModified"]);
        assert!(e.mappings.mappings()[0].1.is_active(now_ms()));
    }

    #[tokio::test]
    async fn stream_mappings_have_stream_defaults() {
        let fx = open().await;
        let e = &*fx.cp;
        let out = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": DDB, "StartingPosition": "TRIM_HORIZON",
                   "BatchSize": 1, "MaximumBatchingWindowInSeconds": 1, "MaximumRetryAttempts": 1,
                   "DestinationConfig": {"OnFailure": {"Destination": QUEUE}}}),
        )
        .await
        .unwrap();
        let mut expected = out.clone();
        for k in ["UUID", "EventSourceMappingArn", "LastModified"] {
            expected.as_object_mut().unwrap().remove(k);
        }
        assert_eq!(
            expected,
            json!({
                "BatchSize": 1, "BisectBatchOnFunctionError": false,
                "DestinationConfig": {"OnFailure": {"Destination": QUEUE}},
                "EventSourceArn": DDB, "FunctionArn": FN_ARN, "FunctionResponseTypes": [],
                "LastProcessingResult": "No records processed",
                "MaximumBatchingWindowInSeconds": 1, "MaximumRecordAgeInSeconds": -1,
                "MaximumRetryAttempts": 1, "ParallelizationFactor": 1,
                "StartingPosition": "TRIM_HORIZON", "State": "Creating",
                "StateTransitionReason": "User action", "TumblingWindowInSeconds": 0,
            })
        );
        let k = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": KINESIS, "StartingPosition": "LATEST",
                   "FilterCriteria": {"Filters": []}}),
        )
        .await
        .unwrap();
        assert_eq!(k["BatchSize"], 100);
        assert_eq!(k["MaximumRetryAttempts"], -1);
        assert_eq!(k["DestinationConfig"], json!({"OnFailure": {}}));
        assert!(k.get("FilterCriteria").is_none());
    }

    #[tokio::test]
    async fn stream_starting_position_rules_match_aws() {
        let fx = open().await;
        let e = &*fx.cp;
        for arn in [DDB, KINESIS] {
            let r = run(
                e,
                "CreateEventSourceMapping",
                json!({"FunctionName": "fn1", "EventSourceArn": arn}),
            )
            .await;
            assert_eq!(
                err(r),
                (
                    ErrorCode::InvalidParameterValueException,
                    "1 validation error detected: Value null at 'startingPosition' failed to \
                     satisfy constraint: Member must not be null."
                        .into()
                )
            );
        }
        let r = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": DDB, "StartingPosition": "AT_TIMESTAMP",
                   "StartingPositionTimestamp": 1700000000}),
        )
        .await;
        assert_eq!(
            err(r).1,
            format!("Unsupported starting position for arn type: {DDB}")
        );
        let ok = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": KINESIS, "StartingPosition": "AT_TIMESTAMP",
                   "StartingPositionTimestamp": 1700000000.5}),
        ).await
        .unwrap();
        assert_eq!(ok["StartingPositionTimestamp"], 1700000000.5);
        let r = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": QUEUE, "StartingPosition": "LATEST"}),
        )
        .await;
        assert_eq!(err(r).0, ErrorCode::InvalidParameterValueException);
    }

    #[tokio::test]
    async fn create_errors_match_aws() {
        let fx = open().await;
        let e = &*fx.cp;
        let r = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "doesnotexist"}),
        )
        .await;
        assert_eq!(
            err(r),
            (
                ErrorCode::InvalidParameterValueException,
                "Unrecognized event source.".into()
            )
        );
        let r = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "doesnotexist", "EventSourceArn": QUEUE}),
        )
        .await;
        assert_eq!(
            err(r),
            (
                ErrorCode::InvalidParameterValueException,
                "Function does not exist".into()
            )
        );
        let r = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": QUEUE,
                   "DestinationConfig": {"OnSuccess": {"Destination": QUEUE}}}),
        )
        .await;
        assert_eq!(
            err(r).1,
            "Unsupported DestinationConfig parameter for given event source mapping type."
        );
        let r = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": QUEUE,
                   "DestinationConfig": {"OnFailure": {"Destination": QUEUE}}}),
        )
        .await;
        assert_eq!(
            err(r).1,
            "Unsupported DestinationConfig parameter for given event source mapping type."
        );
        let r = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": QUEUE, "BatchSize": 11}),
        )
        .await;
        assert_eq!(
            err(r).1,
            "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"
        );
        let r = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": QUEUE, "ParallelizationFactor": 2}),
        )
        .await;
        assert_eq!(
            err(r).1,
            "Unsupported ParallelizationFactor parameter for given event source mapping type."
        );
        let r = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": "arn:aws:s3:::bucket"}),
        )
        .await;
        assert_eq!(err(r).1, "Unrecognized event source.");
        // Nothing was created.
        assert_eq!(
            run(e, "ListEventSourceMappings", json!({})).await.unwrap(),
            json!({"EventSourceMappings": []})
        );
    }

    #[tokio::test]
    async fn filter_patterns_must_be_json_patterns() {
        let fx = open().await;
        let e = &*fx.cp;
        for pattern in [
            json!("simple string"),
            json!(r#"[{"eventName": ["INSERT"=123}]"#),
            json!(r#"{"body": "not-a-list"}"#),
            json!(null),
            json!(""),
        ] {
            let mut filter = json!({});
            if !pattern.is_null() {
                filter["Pattern"] = pattern;
            }
            let r = run(
                e,
                "CreateEventSourceMapping",
                json!({"FunctionName": "fn1", "EventSourceArn": QUEUE, "FilterCriteria": {"Filters": [filter]}}),
            ).await;
            assert_eq!(
                err(r),
                (
                    ErrorCode::InvalidParameterValueException,
                    "Invalid filter pattern definition.".into()
                )
            );
        }
        let pattern = r#"{"body": {"my-number": [{"numeric": [">", 100]}], "k": ["v"]}}"#;
        let out = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": QUEUE,
                   "FilterCriteria": {"Filters": [{"Pattern": pattern}]}}),
        )
        .await
        .unwrap();
        assert_eq!(
            out["FilterCriteria"],
            json!({"Filters": [{"Pattern": pattern}]})
        );
    }

    #[tokio::test]
    async fn filter_patterns_are_validated_as_aws_validates_them() {
        let fx = open().await;
        let e = &*fx.cp;
        for pattern in [
            r#"{"body": {"n": [{"numeric": [">", 0, ">", 5]}]}}"#,
            r#"{"body": {"n": [{"NUMERIC": ["=", 5]}]}}"#,
            r#"{"body": {"ip": [{"cidr": "10.0.0.0"}]}}"#,
            r#"{"body": {"s": [{"anything-but": null}]}}"#,
            r#"{"$or": [{"body": {"a": ["x"]}}]}"#,
        ] {
            let r = run(
                e,
                "CreateEventSourceMapping",
                json!({"FunctionName": "fn1", "EventSourceArn": QUEUE,
                       "FilterCriteria": {"Filters": [{"Pattern": pattern}]}}),
            )
            .await;
            assert_eq!(
                err(r),
                (
                    ErrorCode::InvalidParameterValueException,
                    "Invalid filter pattern definition.".into()
                ),
                "{pattern}"
            );
        }
        let filter = json!({"Pattern": r#"{"body": {"a": [{"prefix": "x"}]}}"#});
        let r = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": QUEUE,
                   "FilterCriteria": {"Filters": vec![filter.clone(); 6]}}),
        )
        .await;
        assert_eq!(err(r).0, ErrorCode::InvalidParameterValueException);
        let uuid = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": QUEUE,
                   "FilterCriteria": {"Filters": vec![filter; 5]}}),
        )
        .await
        .unwrap()["UUID"]
            .clone();
        let r = run(
            e,
            "UpdateEventSourceMapping",
            json!({"UUID": uuid, "FilterCriteria": {"Filters": [{"Pattern": "{\"body\": []}"}]}}),
        )
        .await;
        assert_eq!(
            err(r),
            (
                ErrorCode::InvalidParameterValueException,
                "Invalid filter pattern definition.".into()
            )
        );
    }

    #[tokio::test]
    async fn duplicates_are_refused_with_per_type_messages() {
        let fx = open().await;
        let e = &*fx.cp;
        let first = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": QUEUE}),
        )
        .await
        .unwrap();
        let r = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": QUEUE}),
        )
        .await;
        assert_eq!(
            err(r),
            (
                ErrorCode::ResourceConflictException,
                format!(
                    "An event source mapping with SQS arn (\" {QUEUE} \") and function (\" fn1 \") \
                     already exists. Please update or delete the existing mapping with UUID {}",
                    first["UUID"].as_str().unwrap()
                )
            )
        );
        // Another qualifier is another function ARN, and another function is fine.
        run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1:1", "EventSourceArn": QUEUE}),
        )
        .await
        .unwrap();
        run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn2", "EventSourceArn": QUEUE}),
        )
        .await
        .unwrap();
        let k1 = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": KINESIS, "StartingPosition": "LATEST"}),
        )
        .await
        .unwrap();
        let r = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": KINESIS, "StartingPosition": "LATEST"}),
        )
        .await;
        assert_eq!(
            err(r).1,
            format!(
                "The event source arn (\" {KINESIS} \") and function (\" fn1 \") provided mapping \
                 already exists. Please update or delete the existing mapping with UUID {}",
                k1["UUID"].as_str().unwrap()
            )
        );
    }

    #[tokio::test]
    async fn self_managed_kafka_mappings_match_aws() {
        let fx = open().await;
        let e = &*fx.cp;
        let source = json!({"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["kafka:1000"]}});
        let sac = json!([{"Type": "BASIC_AUTH", "URI": "arn:aws:secretsmanager:us-east-1:000000000000:secret:s"}]);
        let r = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "Topics": ["topic"], "SelfManagedEventSource": source}),
        )
        .await;
        assert_eq!(
            err(r).1,
            "Required 'sourceAccessConfigurations' parameter is missing."
        );
        let out = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "Topics": ["topic"], "SelfManagedEventSource": source,
                   "SourceAccessConfigurations": sac}),
        )
        .await
        .unwrap();
        let uuid = out["UUID"].as_str().unwrap();
        assert_eq!(
            keys(&out),
            [
                "BatchSize",
                "EventSourceMappingArn",
                "FunctionArn",
                "LastModified",
                "LastProcessingResult",
                "SelfManagedEventSource",
                "SelfManagedKafkaEventSourceConfig",
                "SourceAccessConfigurations",
                "StartingPosition",
                "State",
                "StateTransitionReason",
                "Topics",
                "UUID"
            ]
        );
        assert_eq!(out["BatchSize"], 100);
        assert_eq!(
            out["SelfManagedKafkaEventSourceConfig"],
            json!({"ConsumerGroupId": uuid})
        );
        assert_eq!(out["StartingPosition"], "TRIM_HORIZON");
        assert_eq!(out["StateTransitionReason"], "USER_INITIATED");
        let two = json!({"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["kafka:1000", "kafka:2000"]}});
        let r = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "Topics": ["topic"], "SelfManagedEventSource": two,
                   "SourceAccessConfigurations": sac}),
        )
        .await;
        assert_eq!(
            err(r),
            (
                ErrorCode::ResourceConflictException,
                format!(
                    "An event source mapping with event source (\"kafka:1000,kafka:2000\"), function \
                     (\"{FN_ARN}\"), topics (\"topic\") already exists. Please update or delete the \
                     existing mapping with UUID {uuid}"
                )
            )
        );
        let other = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "Topics": ["topic_2"], "SelfManagedEventSource": source,
                   "SourceAccessConfigurations": sac, "BatchSize": 1, "StartingPosition": "LATEST",
                   "SelfManagedKafkaEventSourceConfig": {"ConsumerGroupId": "random_id"}}),
        )
        .await
        .unwrap();
        assert_eq!(
            other["SelfManagedKafkaEventSourceConfig"],
            json!({"ConsumerGroupId": "random_id"})
        );
        assert_eq!(other["StartingPosition"], "LATEST");
    }

    #[tokio::test]
    async fn function_name_variations_keep_the_qualifier() {
        let fx = open().await;
        let e = &*fx.cp;
        for (given, arn) in [
            ("fn1", FN_ARN.to_string()),
            ("fn1:$LATEST", format!("{FN_ARN}:$LATEST")),
            ("fn1:1", format!("{FN_ARN}:1")),
            ("fn1:myalias", format!("{FN_ARN}:myalias")),
            (FN_ARN, FN_ARN.to_string()),
            (
                "arn:aws:lambda:us-east-1:000000000000:function:fn1:myalias",
                format!("{FN_ARN}:myalias"),
            ),
        ] {
            let out = run(
                e,
                "CreateEventSourceMapping",
                json!({"FunctionName": given, "EventSourceArn": QUEUE}),
            )
            .await
            .unwrap();
            assert_eq!(out["FunctionArn"], arn);
            run(e, "DeleteEventSourceMapping", json!({"UUID": out["UUID"]}))
                .await
                .unwrap();
        }
        let r = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1:nope", "EventSourceArn": QUEUE}),
        )
        .await;
        assert_eq!(err(r).1, "Function does not exist");
    }

    #[tokio::test]
    async fn update_get_delete_lifecycle() {
        let fx = open().await;
        let e = &*fx.cp;
        let out = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": QUEUE}),
        )
        .await
        .unwrap();
        let uuid = out["UUID"].as_str().unwrap().to_string();
        let r = run(
            e,
            "UpdateEventSourceMapping",
            json!({"UUID": uuid, "BatchSize": 11}),
        )
        .await;
        assert_eq!(
            err(r).1,
            "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"
        );
        let upd = run(
            e,
            "UpdateEventSourceMapping",
            json!({"UUID": uuid, "FunctionName": "fn2", "MaximumBatchingWindowInSeconds": 1, "BatchSize": 20}),
        ).await
        .unwrap();
        assert_eq!(upd["State"], "Updating");
        assert_eq!(
            upd["FunctionArn"],
            "arn:aws:lambda:us-east-1:000000000000:function:fn2"
        );
        assert_eq!(upd["BatchSize"], 20);
        settle(e, &uuid).await;
        assert_eq!(
            run(e, "GetEventSourceMapping", json!({"UUID": uuid}))
                .await
                .unwrap()["State"],
            "Enabled"
        );
        let dis = run(
            e,
            "UpdateEventSourceMapping",
            json!({"UUID": uuid, "Enabled": false}),
        )
        .await
        .unwrap();
        assert_eq!(dis["State"], "Disabling");
        settle(e, &uuid).await;
        let got = run(e, "GetEventSourceMapping", json!({"UUID": uuid}))
            .await
            .unwrap();
        assert_eq!(got["State"], "Disabled");
        assert!(!e.mappings.mappings()[0].1.is_active(now_ms()));
        let en = run(
            e,
            "UpdateEventSourceMapping",
            json!({"UUID": uuid, "Enabled": true}),
        )
        .await
        .unwrap();
        assert_eq!(en["State"], "Enabling");
        let del = run(e, "DeleteEventSourceMapping", json!({"UUID": uuid}))
            .await
            .unwrap();
        assert_eq!(del["State"], "Deleting");
        assert_eq!(del["BatchSize"], 20);
        let missing = (
            ErrorCode::ResourceNotFoundException,
            "The resource you requested does not exist.".to_string(),
        );
        assert_eq!(
            err(run(e, "GetEventSourceMapping", json!({"UUID": uuid})).await),
            missing
        );
        assert_eq!(
            err(run(e, "DeleteEventSourceMapping", json!({"UUID": uuid})).await),
            missing
        );
        assert_eq!(
            err(run(
                e,
                "UpdateEventSourceMapping",
                json!({"UUID": uuid, "Enabled": false})
            )
            .await),
            missing
        );
    }

    #[tokio::test]
    async fn created_disabled_is_disabled_at_once() {
        let fx = open().await;
        let e = &*fx.cp;
        let out = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": QUEUE, "Enabled": false, "BatchSize": 1}),
        ).await
        .unwrap();
        assert_eq!(out["State"], "Disabled");
    }

    #[tokio::test]
    async fn list_filters_and_pages() {
        let fx = open().await;
        let e = &*fx.cp;
        run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": QUEUE}),
        )
        .await
        .unwrap();
        run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn2", "EventSourceArn": QUEUE}),
        )
        .await
        .unwrap();
        run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": KINESIS, "StartingPosition": "LATEST"}),
        )
        .await
        .unwrap();
        let count = async |input: Value| {
            run(e, "ListEventSourceMappings", input).await.unwrap()["EventSourceMappings"]
                .as_array()
                .unwrap()
                .len()
        };
        assert_eq!(count(json!({})).await, 3);
        assert_eq!(count(json!({"EventSourceArn": QUEUE})).await, 2);
        assert_eq!(count(json!({"FunctionName": "fn1"})).await, 2);
        assert_eq!(
            count(json!({"FunctionName": FN_ARN, "EventSourceArn": KINESIS})).await,
            1
        );
        assert_eq!(count(json!({"FunctionName": "doesnotexist"})).await, 0);
        let p1 = run(e, "ListEventSourceMappings", json!({"MaxItems": 2}))
            .await
            .unwrap();
        assert_eq!(p1["EventSourceMappings"].as_array().unwrap().len(), 2);
        let p2 = run(
            e,
            "ListEventSourceMappings",
            json!({"MaxItems": 2, "Marker": p1["NextMarker"]}),
        )
        .await
        .unwrap();
        assert_eq!(p2["EventSourceMappings"].as_array().unwrap().len(), 1);
        assert!(p2.get("NextMarker").is_none());
        let mut all: Vec<Value> = p1["EventSourceMappings"].as_array().unwrap().clone();
        all.extend(
            p2["EventSourceMappings"]
                .as_array()
                .unwrap()
                .iter()
                .cloned(),
        );
        let uuids: HashSet<_> = all
            .iter()
            .map(|m| m["UUID"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(uuids.len(), 3);
    }

    #[tokio::test]
    async fn mappings_and_tags_survive_reopening_and_notify_pollers() {
        let fx = open().await;
        let (uuid, arn) = {
            let e = &*fx.cp;
            let mut feed = e.subscribe();
            while feed.try_next().is_some() {} // what stood before
            let out = run(
                e,
                "CreateEventSourceMapping",
                json!({"FunctionName": "fn1", "EventSourceArn": QUEUE, "Tags": {"team": "a"}}),
            )
            .await
            .unwrap();
            let uuid = out["UUID"].as_str().unwrap().to_string();
            let published = feed.try_next().expect("the new mapping is published");
            match &*published {
                Change::EventSourceMapping {
                    uuid: u,
                    spec: Some(spec),
                    ..
                } => {
                    assert_eq!(u, &uuid);
                    assert_eq!(spec.event_source_arn.as_deref(), Some(QUEUE));
                    assert!(spec.enabled);
                }
                other => panic!("expected the mapping, got {other:?}"),
            }
            e.mappings.record_processing_result(&uuid, "OK").unwrap();
            (
                uuid,
                out["EventSourceMappingArn"].as_str().unwrap().to_string(),
            )
        };
        let reopened = reopen(&fx);
        let e = &*reopened;
        let got = run(e, "GetEventSourceMapping", json!({"UUID": uuid}))
            .await
            .unwrap();
        assert_eq!(got["EventSourceArn"], QUEUE);
        assert_eq!(
            e.mappings.mappings()[0].1.last_processing_result.as_deref(),
            Some("OK")
        );
        assert_eq!(
            e.mappings
                .tags(&scope(), &arn)
                .unwrap()
                .get("team")
                .map(String::as_str),
            Some("a")
        );
        e.mappings
            .set_tags(&scope(), &arn, BTreeMap::new())
            .unwrap();
        assert!(e.mappings.tags(&scope(), &arn).unwrap().is_empty());
        let missing = "arn:aws:lambda:us-east-1:000000000000:event-source-mapping:\
                       00000000-0000-0000-0000-000000000000";
        assert_eq!(
            e.mappings.tags(&scope(), missing).unwrap_err().message,
            format!("Event source mapping not found: {missing}")
        );
        let other = Scope {
            account: "222222222222".into(),
            region: "us-east-1".into(),
        };
        let r = e
            .execute(&other, "GetEventSourceMapping", json!({"UUID": uuid}))
            .await;
        assert_eq!(r.unwrap_err().code, ErrorCode::ResourceNotFoundException);
    }

    #[tokio::test]
    async fn other_source_types_need_their_members() {
        let fx = open().await;
        let e = &*fx.cp;
        let msk = "arn:aws:kafka:us-east-1:000000000000:cluster/c/abc";
        let r = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": msk}),
        )
        .await;
        assert_eq!(err(r).1, "Required 'topics' parameter is missing.");
        let out = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": msk, "Topics": ["t"]}),
        )
        .await
        .unwrap();
        assert_eq!(
            out["AmazonManagedKafkaEventSourceConfig"]["ConsumerGroupId"],
            out["UUID"]
        );
        let mq = "arn:aws:mq:us-east-1:000000000000:broker:b:b-1234";
        let r = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": mq, "Queues": ["q"]}),
        )
        .await;
        assert_eq!(
            err(r).1,
            "Required 'sourceAccessConfigurations' parameter is missing."
        );
        let out = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": mq, "Queues": ["q"],
                   "SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": "arn:aws:secretsmanager:us-east-1:000000000000:secret:s"}]}),
        ).await
        .unwrap();
        assert_eq!(out["Queues"], json!(["q"]));
        let docdb = "arn:aws:rds:us-east-1:000000000000:cluster:docdb-1";
        let r = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": docdb}),
        )
        .await;
        assert_eq!(err(r).0, ErrorCode::InvalidParameterValueException);
        let out = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn1", "EventSourceArn": docdb,
                   "DocumentDBEventSourceConfig": {"DatabaseName": "db"}}),
        )
        .await
        .unwrap();
        assert_eq!(
            out["DocumentDBEventSourceConfig"],
            json!({"DatabaseName": "db"})
        );
        let r = run(
            e,
            "CreateEventSourceMapping",
            json!({"FunctionName": "fn2", "EventSourceArn": QUEUE, "Topics": ["t"]}),
        )
        .await;
        assert_eq!(
            err(r).1,
            "Unsupported Topics parameter for given event source mapping type."
        );
    }
}
