//! The contract between the control plane and the data planes (the engine, the asynchronous
//! queue and event-source pollers, the function-URL router): what a function version runs, what
//! is configured around it, and the change events that carry both. Types only: the control plane
//! builds and publishes them ([`feed`]), the data planes read them. Nothing here knows how a
//! function is stored or run.

pub mod feed;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// An (account, region): every resource lives in one and is invisible to the others.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Scope {
    pub account: String,
    pub region: String,
}

/// `$LATEST`, the version every function has.
pub const LATEST: &str = "$LATEST";

/// Everything needed to run one function version. Immutable: an update to `$LATEST` produces a
/// new snapshot with a new `snapshot_id`, and environments of the old one are retired. An
/// in-memory value: stored records name a snapshot by id, never embed this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionSpec {
    /// Unique per (function, version, configuration revision): environments are keyed by it.
    pub snapshot_id: String,
    pub account: String,
    pub region: String,
    pub function_name: String,
    /// `$LATEST` or a published version number.
    pub version: String,
    /// Unqualified function ARN.
    pub function_arn: String,
    /// `python3.12`, `nodejs20.x`, `provided.al2023`, ...
    pub runtime: String,
    pub handler: String,
    /// The execution role's ARN: with `flint serve --function-credentials assume-role` each
    /// environment runs with an STS session of it, as on AWS.
    #[serde(default)]
    pub role: String,
    /// Host directory with the unpacked code (mounted at /var/task).
    pub code_dir: PathBuf,
    /// Host directories of the layers' unpacked contents, in order (later wins at /opt).
    pub layer_dirs: Vec<PathBuf>,
    /// Hot reload: those of `code_dir` and `layer_dirs` that are host directories mounted as
    /// they are; a change under one retires the snapshot's environments.
    #[serde(default)]
    pub hot_reload_dirs: Vec<PathBuf>,
    pub memory_mb: u32,
    pub timeout_secs: u32,
    pub ephemeral_storage_mb: u32,
    /// The function's own environment variables.
    pub environment: BTreeMap<String, String>,
    /// `/aws/lambda/NAME` unless configured otherwise.
    pub log_group: String,
    /// `Text` or `JSON`.
    pub log_format: String,
    /// Reserved concurrency (None = shares the account's unreserved pool).
    pub reserved_concurrency: Option<u32>,
    /// `TracingConfig.Mode` is `Active`: invocations without an upstream sampling decision are
    /// sampled (`Sampled=1`), and Flint records the function's segment.
    #[serde(default)]
    pub tracing_active: bool,
    /// `PackageType: Image`: what runs instead of a runtime and a handler (None for zips).
    #[serde(default)]
    pub image: Option<ImageSpec>,
}

/// Temporary credentials of a function's execution role, as STS `AssumeRole` gives them: what an
/// environment runs with under `flint serve --function-credentials assume-role`.
#[derive(Clone)]
pub struct RoleSession {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// When STS says they expire.
    pub expiration: Option<std::time::SystemTime>,
}

impl std::fmt::Debug for RoleSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleSession")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// A container image function: its root filesystem and the process to start, with the image
/// config's values already overridden by the function's `ImageConfig`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageSpec {
    /// The unpacked image, mounted read-only as the sandbox's root.
    pub rootfs: PathBuf,
    pub entrypoint: Vec<String>,
    pub command: Vec<String>,
    /// Empty: `/`.
    pub working_dir: String,
    /// The image's `Env` (`KEY=value`); the function's variables and Lambda's win over them.
    pub env: Vec<(String, String)>,
}

/// Where an alias sends invokes: its version, and optionally a share of them to another one.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasRoute {
    pub version: String,
    /// `RoutingConfig.AdditionalVersionWeights`' single entry: (version, weight 0.0–1.0).
    pub additional: Option<(String, f64)>,
}

/// One provisioned concurrency config, resolved to the version it runs now.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisionedTarget {
    /// The published version number or alias the config was put on.
    pub qualifier: String,
    /// What it runs now (for an alias: its primary version).
    pub spec: Arc<FunctionSpec>,
    pub requested: u32,
}

/// `PutFunctionEventInvokeConfig`: how asynchronous invokes of a version or alias are retried
/// and where their outcome goes. `None` fields mean AWS's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventInvokeConfig {
    pub maximum_retry_attempts: Option<u32>,
    pub maximum_event_age_in_seconds: Option<u32>,
    /// Destination ARN for successful invocations.
    pub on_success: Option<String>,
    /// Destination ARN for failed (or expired) invocations.
    pub on_failure: Option<String>,
}

/// A function URL (`CreateFunctionUrlConfig`) of the unqualified function or an alias.
#[derive(Debug, Clone, PartialEq)]
pub struct UrlConfig {
    /// The URL's id (its host's first label).
    pub url_id: String,
    /// `NONE` or `AWS_IAM`.
    pub auth_type: String,
    /// `BUFFERED` or `RESPONSE_STREAM`.
    pub invoke_mode: String,
    /// The `Cors` shape as configured, if any (JSON with AWS's member names).
    pub cors: Option<serde_json::Value>,
}

/// A function as the data planes see it: what each version runs and every setting that changes
/// how it is invoked. Replaced as a whole on every change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FunctionState {
    pub scope: Scope,
    pub name: String,
    /// Unqualified ARN.
    pub arn: String,
    /// By version key (`$LATEST`, `1`, ...).
    pub versions: BTreeMap<String, Arc<FunctionSpec>>,
    /// By alias name.
    pub aliases: BTreeMap<String, AliasRoute>,
    pub reserved_concurrency: Option<u32>,
    pub provisioned: Vec<ProvisionedTarget>,
    /// By qualifier: `$LATEST` (also the unqualified function), a version number or an alias.
    pub event_invoke_configs: BTreeMap<String, EventInvokeConfig>,
    /// By qualifier: `""` for the unqualified function, else an alias.
    pub url_configs: BTreeMap<String, UrlConfig>,
    /// `Allow` or `Terminate` (`PutFunctionRecursionConfig`).
    pub recursive_loop: String,
    /// By version key: `DeadLetterConfig.TargetArn` (an SQS queue or SNS topic), where that
    /// version's asynchronous events go when their retries run out and no OnFailure
    /// destination takes them.
    pub dead_letter_targets: BTreeMap<String, String>,
}

impl FunctionState {
    /// The version a qualifier designates now (an alias: its primary version).
    pub fn version_of(&self, qualifier: &str) -> Option<&Arc<FunctionSpec>> {
        match self.aliases.get(qualifier) {
            Some(route) => self.versions.get(&route.version),
            None => self.versions.get(qualifier),
        }
    }

    /// The event invoke config that applies to invokes through `qualifier` (None: the
    /// unqualified function, which uses `$LATEST`'s).
    pub fn event_invoke_config(&self, qualifier: Option<&str>) -> Option<&EventInvokeConfig> {
        self.event_invoke_configs.get(qualifier.unwrap_or(LATEST))
    }
}

/// An event source mapping as its poller needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSourceMappingSpec {
    pub uuid: String,
    pub scope: Scope,
    /// The function (qualified when the mapping names a version or alias).
    pub function_arn: String,
    pub event_source_arn: Option<String>,
    /// `Enabled` as asked by the user (`State` follows from it).
    pub enabled: bool,
    /// The whole stored configuration, with AWS's member names (source-specific settings).
    pub config: serde_json::Value,
}

/// Something a data plane must act on. Published by the control plane after the change is
/// durable, in the order the changes were made.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A function was created or changed (`state`), or deleted (`None`); `retired` names the
    /// snapshots that no longer exist (their environments must stop).
    Function {
        scope: Scope,
        name: String,
        state: Option<Arc<FunctionState>>,
        retired: Vec<String>,
    },
    /// The account's `UnreservedConcurrentExecutions` in a scope.
    Unreserved { scope: Scope, unreserved: u32 },
    /// An event source mapping was created or changed, or deleted (`None`).
    EventSourceMapping {
        scope: Scope,
        uuid: String,
        spec: Option<Arc<EventSourceMappingSpec>>,
    },
}

/// Where a snapshot's provisioned concurrency stands, as GetProvisionedConcurrencyConfig and
/// ListProvisionedConcurrencyConfigs report it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProvisionedAllocation {
    /// Environments asked for (the sum over the configs that run this snapshot).
    pub requested: u32,
    /// Environments whose init finished and that are alive (idle or busy).
    pub ready: u32,
    /// All `requested` were up at once since the count was last set.
    pub allocated: bool,
    /// The function's init keeps failing (two starts in a row, or more): the last reason.
    /// Failures of Flint's own (a sandbox that could not start) are retried, not reported here.
    pub init_failure: Option<String>,
}

/// What the engine reports back: every snapshot's provisioned allocation (published on a
/// `tokio::sync::watch` channel whenever one changes).
pub type ProvisionedReport = HashMap<String, ProvisionedAllocation>;

/// How an event source mapping's poller is doing, as GetEventSourceMapping reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappingStatus {
    /// `LastProcessingResult` ("OK", "PROBLEM: Function call failed", …), for the sources that
    /// report one.
    pub last_processing_result: Option<String>,
    /// Why the poller cannot read its source (e.g. "PROBLEM: Connection error. …"); None while it
    /// can. Reported as `StateTransitionReason`.
    pub problem: Option<String>,
}

/// What the pollers report back: every running mapping's status by UUID (published on a
/// `tokio::sync::watch` channel whenever one changes).
pub type MappingReport = HashMap<String, MappingStatus>;

/// What the control plane's code garbage collector asks a data plane that runs code from host
/// directories (the engine): a directory a live or starting environment runs on is never
/// removed, and copies made from a removed one (merged layer trees) go with it.
pub trait CodeUsers: Send + Sync {
    /// Host directories (unpacked code, layer contents) that live or starting environments
    /// run on now.
    fn dirs_in_use(&self) -> std::collections::HashSet<PathBuf>;
    /// `dirs` were removed from disk: drop what was derived from them.
    fn dirs_removed(&self, dirs: &[PathBuf]);
}
