//! A function version's configuration: the record Flint persists for `$LATEST` and for each
//! published version, the configuration members of CreateFunction / UpdateFunctionConfiguration
//! and their validation, and the `FunctionConfiguration` shape AWS returns.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::code::StoredCode;
use crate::lifecycle::Status;
use crate::runtime::RuntimeCatalog;
use crate::{arn, LambdaError, Scope};

/// Lambda's defaults and limits for a version's configuration.
pub const DEFAULT_TIMEOUT: u32 = 3;
pub const MAX_TIMEOUT: u32 = 900;
pub const DEFAULT_MEMORY: u32 = 128;
pub const MAX_MEMORY: u32 = 10_240;
pub const DEFAULT_EPHEMERAL_STORAGE: u32 = 512;
/// Environment variables, measured as compact JSON, may not exceed 4 KB.
pub const MAX_ENVIRONMENT_BYTES: usize = 4096;
pub const LATEST: &str = "$LATEST";

/// Variables Lambda sets itself and refuses to let a function override.
const RESERVED_ENV_KEYS: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// Logging settings as stored (and returned as `LoggingConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LoggingConfig {
    pub log_format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_log_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_log_level: Option<String>,
    pub log_group: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VpcConfig {
    #[serde(default)]
    pub subnet_ids: Vec<String>,
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_allowed_for_dual_stack: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FileSystemConfig {
    pub arn: String,
    pub local_mount_path: String,
}

/// Everything that defines what runs for one version (code included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VersionConfig {
    pub package_type: String,
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub role: String,
    pub description: String,
    pub timeout: u32,
    pub memory_size: u32,
    /// None = never configured (AWS then omits `Environment`); order kept as given.
    pub environment: Option<IndexMap<String, String>>,
    pub tracing_mode: String,
    pub architectures: Vec<String>,
    pub ephemeral_storage: u32,
    pub logging: LoggingConfig,
    pub snap_start_apply_on: String,
    pub dead_letter_target: Option<String>,
    pub kms_key_arn: Option<String>,
    pub vpc: Option<VpcConfig>,
    /// The VPC of `vpc`'s subnets, as EC2 answered when the configuration was set ("" when
    /// EC2 was not asked or did not answer).
    #[serde(default)]
    pub vpc_id: String,
    /// Layer version ARNs, in order.
    #[serde(default)]
    pub layers: Vec<String>,
    /// What those ARNs resolved to when they were set (size and content digest, in order).
    #[serde(default)]
    pub layer_details: Vec<LayerDetail>,
    #[serde(default)]
    pub file_system_configs: Vec<FileSystemConfig>,
    pub code: StoredCode,
    /// `ImageConfig` of an Image function (overrides of the image's own config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_config: Option<ImageConfig>,
    /// Members Flint stores and returns but does not act on yet ([`UNHONOURED_MEMBERS`]), as
    /// the caller gave them, by member name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unhonoured: BTreeMap<String, serde_json::Value>,
}

/// Configuration members of today's API that Flint accepts, stores with the version and returns
/// in `FunctionConfiguration` as given, without acting on them: tenant isolation, Lambda Managed
/// Instances, durable functions, customer-managed runtimes and accelerators.
pub const UNHONOURED_MEMBERS: &[&str] = &[
    "TenancyConfig",
    "CapacityProviderConfig",
    "DurableConfig",
    "RuntimeConfig",
    "AcceleratorConfig",
];

/// One version of a function: `$LATEST` (mutable) or a published number (immutable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VersionRecord {
    pub version: String,
    /// Changes whenever code or configuration change; environments are keyed by it.
    pub snapshot_id: String,
    /// Changes on every change, including state transitions (as on AWS).
    pub revision_id: String,
    pub last_modified: String,
    pub config: VersionConfig,
    pub status: Status,
    /// `$LATEST`'s description when this version was published from it, kept only when
    /// PublishVersion's Description replaced it: "is `$LATEST` unchanged since?" needs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_description: Option<String>,
}

/// The configuration members shared by CreateFunction and UpdateFunctionConfiguration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigInput {
    pub runtime: Option<String>,
    pub role: Option<String>,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<u32>,
    pub memory_size: Option<u32>,
    pub vpc_config: Option<VpcConfig>,
    pub environment: Option<EnvironmentInput>,
    pub dead_letter_config: Option<DeadLetterConfig>,
    #[serde(rename = "KMSKeyArn")]
    pub kms_key_arn: Option<String>,
    pub tracing_config: Option<TracingConfig>,
    pub layers: Option<Vec<String>>,
    pub file_system_configs: Option<Vec<FileSystemConfig>>,
    pub ephemeral_storage: Option<EphemeralStorage>,
    pub snap_start: Option<SnapStart>,
    pub logging_config: Option<LoggingConfigInput>,
    // The members of `UNHONOURED_MEMBERS` (TenancyConfig is CreateFunction's only).
    pub tenancy_config: Option<serde_json::Value>,
    pub capacity_provider_config: Option<serde_json::Value>,
    pub durable_config: Option<serde_json::Value>,
    pub runtime_config: Option<serde_json::Value>,
    pub accelerator_config: Option<serde_json::Value>,
    pub image_config: Option<ImageConfig>,
}

/// `ImageConfig`: what overrides the image's `Entrypoint`, `Cmd` and `WorkingDir`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_point: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
}

impl ImageConfig {
    fn is_empty(&self) -> bool {
        self.entry_point.is_none() && self.command.is_none() && self.working_directory.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfigResponse {
    pub image_config: ImageConfig,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnvironmentInput {
    #[serde(default)]
    pub variables: IndexMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeadLetterConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TracingConfig {
    pub mode: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EphemeralStorage {
    pub size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnapStart {
    pub apply_on: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LoggingConfigInput {
    pub log_format: Option<String>,
    pub application_log_level: Option<String>,
    pub system_log_level: Option<String>,
    pub log_group: Option<String>,
}

impl VersionConfig {
    /// The configuration of a new function before the request's members are applied.
    pub fn defaults(name: &str, role: String, code: StoredCode) -> Self {
        Self {
            package_type: "Zip".into(),
            runtime: None,
            handler: None,
            role,
            description: String::new(),
            timeout: DEFAULT_TIMEOUT,
            memory_size: DEFAULT_MEMORY,
            environment: None,
            tracing_mode: "PassThrough".into(),
            architectures: vec!["x86_64".into()],
            ephemeral_storage: DEFAULT_EPHEMERAL_STORAGE,
            logging: LoggingConfig {
                log_format: "Text".into(),
                application_log_level: None,
                system_log_level: None,
                log_group: arn::default_log_group(name),
            },
            snap_start_apply_on: "None".into(),
            dead_letter_target: None,
            kms_key_arn: None,
            vpc: None,
            vpc_id: String::new(),
            layers: Vec::new(),
            layer_details: Vec::new(),
            file_system_configs: Vec::new(),
            code,
            image_config: None,
            unhonoured: BTreeMap::new(),
        }
    }

    /// Applies the members present in `input`; validates the result (and a new runtime).
    pub fn apply(
        &mut self,
        input: ConfigInput,
        runtimes: &dyn RuntimeCatalog,
        resolve_layers: LayerResolver<'_>,
    ) -> Result<(), LambdaError> {
        if let Some(runtime) = &input.runtime {
            crate::runtime::validate(runtimes, runtime)?;
        }
        if let Some(layers) = &input.layers {
            self.layer_details = resolve_layers(layers)?;
        }
        let ConfigInput {
            runtime,
            role,
            handler,
            description,
            timeout,
            memory_size,
            vpc_config,
            environment,
            dead_letter_config,
            kms_key_arn,
            tracing_config,
            layers,
            file_system_configs,
            ephemeral_storage,
            snap_start,
            logging_config,
            tenancy_config,
            capacity_provider_config,
            durable_config,
            runtime_config,
            accelerator_config,
            image_config,
        } = input;
        if let Some(v) = image_config {
            if self.package_type != "Image" {
                return Err(LambdaError::invalid(
                    "Please don't provide ImageConfig when the intended function PackageType is Zip.",
                ));
            }
            // An empty ImageConfig removes the overrides (AWS then omits ImageConfigResponse).
            self.image_config = (!v.is_empty()).then_some(v);
        }
        let unhonoured = [
            tenancy_config,
            capacity_provider_config,
            durable_config,
            runtime_config,
            accelerator_config,
        ];
        for (name, value) in UNHONOURED_MEMBERS.iter().zip(unhonoured) {
            if let Some(v) = value.filter(|v| !v.is_null()) {
                self.unhonoured.insert((*name).to_string(), v);
            }
        }
        if let Some(v) = runtime {
            self.runtime = Some(v);
        }
        if let Some(v) = role {
            self.role = v;
        }
        if let Some(v) = handler {
            self.handler = Some(v);
        }
        if let Some(v) = description {
            self.description = v;
        }
        if let Some(v) = timeout {
            self.timeout = v;
        }
        if let Some(v) = memory_size {
            self.memory_size = v;
        }
        if let Some(v) = vpc_config {
            // Empty subnet and security-group lists detach the function from its VPC; AWS then
            // answers with the emptied config (`"SubnetIds": [], "VpcId": ""`), not without one.
            self.vpc = Some(v);
            // Set again from EC2's answer by the caller (`ControlPlane::vpc_of`).
            self.vpc_id = String::new();
        }
        if let Some(v) = environment {
            self.environment = Some(v.variables);
        }
        if let Some(v) = dead_letter_config {
            self.dead_letter_target = v.target_arn.filter(|t| !t.is_empty());
        }
        if let Some(v) = kms_key_arn {
            self.kms_key_arn = (!v.is_empty()).then_some(v);
        }
        if let Some(TracingConfig { mode: Some(mode) }) = tracing_config {
            self.tracing_mode = mode;
        }
        if let Some(v) = layers {
            self.layers = v;
        }
        if let Some(v) = file_system_configs {
            self.file_system_configs = v;
        }
        if let Some(v) = ephemeral_storage {
            self.ephemeral_storage = v.size;
        }
        if let Some(SnapStart { apply_on: Some(v) }) = snap_start {
            self.snap_start_apply_on = v;
        }
        if let Some(l) = logging_config {
            self.apply_logging(l)?;
        }
        self.validate()
    }

    fn apply_logging(&mut self, l: LoggingConfigInput) -> Result<(), LambdaError> {
        if let Some(f) = l.log_format {
            self.logging.log_format = f;
        }
        if let Some(g) = l.log_group {
            self.logging.log_group = g;
        }
        let has_levels = l.application_log_level.is_some() || l.system_log_level.is_some();
        if self.logging.log_format == "JSON" {
            // AWS fills in INFO for JSON logs when a level is not given.
            self.logging.application_log_level = Some(
                l.application_log_level
                    .or(self.logging.application_log_level.take())
                    .unwrap_or_else(|| "INFO".into()),
            );
            self.logging.system_log_level = Some(
                l.system_log_level
                    .or(self.logging.system_log_level.take())
                    .unwrap_or_else(|| "INFO".into()),
            );
        } else {
            if has_levels {
                return Err(LambdaError::invalid(
                    "LogLevel is not supported when LogFormat is set to \"Text\". Remove LogLevel \
                     from your request or change the LogFormat to \"JSON\" and try again.",
                ));
            }
            self.logging.application_log_level = None;
            self.logging.system_log_level = None;
        }
        Ok(())
    }

    /// Checks the constraints the API model cannot express.
    pub fn validate(&self) -> Result<(), LambdaError> {
        if self.package_type == "Image"
            && (self.runtime.is_some() || self.handler.is_some() || !self.layers.is_empty())
        {
            return Err(LambdaError::invalid(IMAGE_WITH_ZIP_MEMBERS));
        }
        if self.package_type == "Zip" && (self.runtime.is_none() || self.handler.is_none()) {
            return Err(LambdaError::invalid(
                "Runtime and Handler are mandatory parameters for functions created with \
                 deployment packages.",
            ));
        }
        if self.timeout > MAX_TIMEOUT {
            return Err(LambdaError::validation(format!(
                "1 validation error detected: Value '{}' at 'timeout' failed to satisfy \
                 constraint: Member must have value less than or equal to {MAX_TIMEOUT}",
                self.timeout
            )));
        }
        if self.memory_size > MAX_MEMORY {
            return Err(LambdaError::validation(format!(
                "1 validation error detected: Value '{}' at 'memorySize' failed to satisfy \
                 constraint: Member must have value less than or equal to {MAX_MEMORY}",
                self.memory_size
            )));
        }
        if let Some(vars) = &self.environment {
            validate_environment(vars)?;
        }
        Ok(())
    }

    /// The environment as the engine takes it.
    pub fn environment_map(&self) -> BTreeMap<String, String> {
        self.environment
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

fn validate_environment(vars: &IndexMap<String, String>) -> Result<(), LambdaError> {
    let reserved: Vec<&str> = vars
        .keys()
        .map(String::as_str)
        .filter(|k| RESERVED_ENV_KEYS.contains(k))
        .collect();
    if !reserved.is_empty() {
        return Err(LambdaError::invalid(format!(
            "Lambda was unable to configure your environment variables because the environment \
             variables you have provided contains reserved keys that are currently not supported \
             for modification. Reserved keys used in this request: {}",
            reserved.join(", ")
        )));
    }
    let measured = serde_json::to_string(vars).unwrap_or_default();
    if measured.len() > MAX_ENVIRONMENT_BYTES {
        return Err(LambdaError::invalid(format!(
            "Lambda was unable to configure your environment variables because the environment \
             variables you have provided exceeded the 4KB limit. String measured: {measured}"
        )));
    }
    Ok(())
}

/// AWS's answer to `Handler`, `Runtime` or `Layers` on an Image function.
pub const IMAGE_WITH_ZIP_MEMBERS: &str =
    "Please don't provide Handler or Runtime or Layer when the intended function PackageType is Image.";

/// How much of the configuration an operation shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Get/Create/Update responses: everything, including state and runtime version.
    Full,
    /// ListFunctions / ListVersionsByFunction entries: AWS omits state and runtime version.
    Listing,
}

/// AWS's `FunctionConfiguration` output shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionConfiguration {
    pub function_name: String,
    pub function_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    pub role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    pub code_size: u64,
    pub description: String,
    pub timeout: u32,
    pub memory_size: u32,
    pub last_modified: String,
    pub code_sha256: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_config: Option<VpcConfigResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_config: Option<DeadLetterConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvironmentResponse>,
    #[serde(rename = "KMSKeyArn", skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
    pub tracing_config: TracingConfig,
    pub revision_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<LayerReference>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reason_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_status_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_status_reason_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_system_configs: Option<Vec<FileSystemConfig>>,
    pub package_type: String,
    pub architectures: Vec<String>,
    pub ephemeral_storage: EphemeralStorage,
    pub snap_start: SnapStartResponse,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_version_config: Option<RuntimeVersionConfig>,
    pub logging_config: LoggingConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_config_response: Option<ImageConfigResponse>,
    /// `TenancyConfig`, `DurableConfig`, ... as stored ([`UNHONOURED_MEMBERS`]).
    #[serde(flatten)]
    pub unhonoured: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VpcConfigResponse {
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    pub vpc_id: String,
    pub ipv6_allowed_for_dual_stack: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnvironmentResponse {
    pub variables: IndexMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LayerReference {
    pub arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_size: Option<u64>,
}

/// A layer version a function uses, as resolved by the layers module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LayerDetail {
    pub arn: String,
    pub code_size: u64,
    pub sha256_hex: String,
    /// A hot-reloaded layer: the host directory mounted as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hot_reload_dir: Option<std::path::PathBuf>,
}

/// Resolves layer version ARNs (existence, limits, region) for the function being configured.
pub type LayerResolver<'a> = &'a dyn Fn(&[String]) -> Result<Vec<LayerDetail>, LambdaError>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnapStartResponse {
    pub apply_on: String,
    pub optimization_status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeVersionConfig {
    pub runtime_version_arn: String,
}

impl VersionRecord {
    /// Renders this version as AWS does. `function_arn` is the (un)qualified ARN to show.
    pub fn render(
        &self,
        scope: &Scope,
        name: &str,
        function_arn: String,
        view: View,
    ) -> FunctionConfiguration {
        let c = &self.config;
        let full = view == View::Full;
        let s = &self.status;
        FunctionConfiguration {
            function_name: name.to_string(),
            function_arn,
            runtime: c.runtime.clone(),
            role: c.role.clone(),
            handler: c.handler.clone(),
            code_size: c.code.size,
            description: c.description.clone(),
            timeout: c.timeout,
            memory_size: c.memory_size,
            last_modified: self.last_modified.clone(),
            code_sha256: c.code.sha256_base64(),
            version: self.version.clone(),
            vpc_config: c.vpc.as_ref().map(|v| VpcConfigResponse {
                subnet_ids: v.subnet_ids.clone(),
                security_group_ids: v.security_group_ids.clone(),
                vpc_id: c.vpc_id.clone(),
                ipv6_allowed_for_dual_stack: v.ipv6_allowed_for_dual_stack.unwrap_or(false),
            }),
            dead_letter_config: c.dead_letter_target.as_ref().map(|t| DeadLetterConfig {
                target_arn: Some(t.clone()),
            }),
            environment: c.environment.as_ref().map(|v| EnvironmentResponse {
                variables: v.clone(),
            }),
            kms_key_arn: c.kms_key_arn.clone(),
            tracing_config: TracingConfig {
                mode: Some(c.tracing_mode.clone()),
            },
            revision_id: self.revision_id.clone(),
            layers: (!c.layers.is_empty()).then(|| {
                c.layers
                    .iter()
                    .map(|a| LayerReference {
                        arn: a.clone(),
                        code_size: c
                            .layer_details
                            .iter()
                            .find(|d| &d.arn == a)
                            .map(|d| d.code_size),
                    })
                    .collect()
            }),
            state: full.then(|| s.state.as_str().to_string()),
            state_reason: s.state_reason.clone().filter(|_| full),
            state_reason_code: s.state_reason_code.clone().filter(|_| full),
            last_update_status: s
                .last_update
                .filter(|_| full)
                .map(|u| u.as_str().to_string()),
            last_update_status_reason: s.last_update_reason.clone().filter(|_| full),
            last_update_status_reason_code: s.last_update_reason_code.clone().filter(|_| full),
            file_system_configs: (!c.file_system_configs.is_empty())
                .then(|| c.file_system_configs.clone()),
            package_type: c.package_type.clone(),
            architectures: c.architectures.clone(),
            ephemeral_storage: EphemeralStorage {
                size: c.ephemeral_storage,
            },
            snap_start: SnapStartResponse {
                apply_on: c.snap_start_apply_on.clone(),
                optimization_status: "Off".into(),
            },
            runtime_version_config: c.runtime.as_ref().filter(|_| full).map(|r| {
                RuntimeVersionConfig {
                    runtime_version_arn: arn::runtime_version_arn(&scope.region, r),
                }
            }),
            logging_config: c.logging.clone(),
            image_config_response: c
                .image_config
                .clone()
                .map(|image_config| ImageConfigResponse { image_config }),
            unhonoured: c.unhonoured.clone(),
        }
    }
}

/// `LastModified` in AWS's format, e.g. `2024-05-01T12:00:00.000+0000`.
pub fn now_timestamp() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3f%z")
        .to_string()
}

#[cfg(test)]
mod tests {
    fn missing_layers(arns: &[String]) -> Result<Vec<LayerDetail>, LambdaError> {
        match arns.first() {
            Some(arn) => Err(LambdaError::invalid(format!(
                "Layer version {arn} does not exist."
            ))),
            None => Ok(Vec::new()),
        }
    }

    use super::*;
    use crate::runtime::FixedCatalog;
    use crate::ErrorCode;

    fn code() -> StoredCode {
        StoredCode {
            sha256_hex: "00".repeat(32),
            size: 10,
            unzipped_size: 20,
            hot_reload_dir: None,
            image: None,
        }
    }

    fn catalog() -> FixedCatalog {
        FixedCatalog(vec!["python3.12".into()])
    }

    fn base() -> VersionConfig {
        let mut c = VersionConfig::defaults("f", "arn:aws:iam::000000000000:role/r".into(), code());
        c.runtime = Some("python3.12".into());
        c.handler = Some("h.handler".into());
        c
    }

    #[test]
    fn defaults_match_aws() {
        let c = VersionConfig::defaults("f", "r".into(), code());
        assert_eq!(
            (c.timeout, c.memory_size, c.ephemeral_storage),
            (3, 128, 512)
        );
        assert_eq!(c.logging.log_group, "/aws/lambda/f");
        assert_eq!(c.logging.log_format, "Text");
        assert_eq!(c.architectures, vec!["x86_64"]);
        assert_eq!(c.tracing_mode, "PassThrough");
    }

    #[test]
    fn zip_functions_need_runtime_and_handler() {
        let mut c = VersionConfig::defaults("f", "r".into(), code());
        let e = c
            .apply(ConfigInput::default(), &catalog(), &missing_layers)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterValueException);
        assert_eq!(
            e.message,
            "Runtime and Handler are mandatory parameters for functions created with deployment packages."
        );
    }

    #[test]
    fn environment_over_4kb_is_rejected_with_the_measured_string() {
        let mut c = base();
        let mut vars = IndexMap::new();
        vars.insert("SMALL_VAR".to_string(), "ok".to_string());
        vars.insert("LARGE_VAR".to_string(), "x".repeat(4096));
        let input = ConfigInput {
            environment: Some(EnvironmentInput { variables: vars }),
            ..Default::default()
        };
        let e = c.apply(input, &catalog(), &missing_layers).unwrap_err();
        assert!(e.message.starts_with(
            "Lambda was unable to configure your environment variables because the environment \
             variables you have provided exceeded the 4KB limit. String measured: \
             {\"SMALL_VAR\":\"ok\",\"LARGE_VAR\":\"xxx"
        ));
        assert!(e.message.ends_with("xxx\"}"));
    }

    #[test]
    fn environment_of_exactly_4kb_is_accepted() {
        let mut c = base();
        let mut vars = IndexMap::new();
        // {"LARGE_VAR":"..."} = 16 bytes of JSON around the value.
        vars.insert("LARGE_VAR".to_string(), "x".repeat(4096 - 16));
        let input = ConfigInput {
            environment: Some(EnvironmentInput { variables: vars }),
            ..Default::default()
        };
        c.apply(input, &catalog(), &missing_layers).unwrap();
        assert_eq!(
            serde_json::to_string(c.environment.as_ref().unwrap())
                .unwrap()
                .len(),
            4096
        );
    }

    #[test]
    fn reserved_environment_keys_are_rejected() {
        let mut c = base();
        let mut vars = IndexMap::new();
        vars.insert("AWS_REGION".to_string(), "x".to_string());
        let input = ConfigInput {
            environment: Some(EnvironmentInput { variables: vars }),
            ..Default::default()
        };
        let e = c.apply(input, &catalog(), &missing_layers).unwrap_err();
        assert!(e
            .message
            .ends_with("Reserved keys used in this request: AWS_REGION"));
    }

    #[test]
    fn members_flint_does_not_honour_are_stored_and_returned_as_given() {
        let mut c = base();
        let input: ConfigInput = serde_json::from_value(serde_json::json!({
            "TenancyConfig": {"TenantIsolationMode": "PER_TENANT"},
            "DurableConfig": {"RetentionPeriodInDays": 7, "ExecutionTimeout": 3600},
        }))
        .unwrap();
        c.apply(input, &catalog(), &missing_layers).unwrap();
        let later: ConfigInput = serde_json::from_value(serde_json::json!({
            "DurableConfig": {"RetentionPeriodInDays": 14},
        }))
        .unwrap();
        c.apply(later, &catalog(), &missing_layers).unwrap();
        let stored: VersionConfig =
            serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(stored, c, "kept in the stored document");
        assert_eq!(
            serde_json::Value::Object(c.unhonoured.clone().into_iter().collect()),
            serde_json::json!({
                "TenancyConfig": {"TenantIsolationMode": "PER_TENANT"},
                "DurableConfig": {"RetentionPeriodInDays": 14},
            })
        );
    }

    #[test]
    fn timeout_above_900_is_a_validation_error() {
        let mut c = base();
        let e = c
            .apply(
                ConfigInput {
                    timeout: Some(901),
                    ..Default::default()
                },
                &catalog(),
                &missing_layers,
            )
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationException);
    }

    #[test]
    fn json_logging_gets_info_levels_and_text_refuses_levels() {
        let mut c = base();
        let input = ConfigInput {
            logging_config: Some(LoggingConfigInput {
                log_format: Some("JSON".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        c.apply(input, &catalog(), &missing_layers).unwrap();
        assert_eq!(c.logging.application_log_level.as_deref(), Some("INFO"));
        assert_eq!(c.logging.system_log_level.as_deref(), Some("INFO"));
        let input = ConfigInput {
            logging_config: Some(LoggingConfigInput {
                log_format: Some("Text".into()),
                application_log_level: Some("DEBUG".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(base().apply(input, &catalog(), &missing_layers).is_err());
    }

    #[test]
    fn unknown_layers_do_not_exist() {
        let mut c = base();
        let arn = "arn:aws:lambda:us-east-1:000000000000:layer:l:1".to_string();
        let e = c
            .apply(
                ConfigInput {
                    layers: Some(vec![arn.clone()]),
                    ..Default::default()
                },
                &catalog(),
                &missing_layers,
            )
            .unwrap_err();
        assert_eq!(e.message, format!("Layer version {arn} does not exist."));
    }

    #[test]
    fn listing_view_omits_state_and_runtime_version() {
        let rec = VersionRecord {
            version: LATEST.into(),
            snapshot_id: "s".into(),
            revision_id: "r".into(),
            last_modified: now_timestamp(),
            config: base(),
            status: Status::settled(),
            latest_description: None,
        };
        let scope = Scope {
            account: "000000000000".into(),
            region: "us-east-1".into(),
        };
        let full = serde_json::to_value(rec.render(&scope, "f", "arn".into(), View::Full)).unwrap();
        assert_eq!(full["State"], "Active");
        assert_eq!(full["LastUpdateStatus"], "Successful");
        assert!(full["RuntimeVersionConfig"]["RuntimeVersionArn"].is_string());
        assert!(full.get("Environment").is_none());
        let list =
            serde_json::to_value(rec.render(&scope, "f", "arn".into(), View::Listing)).unwrap();
        for absent in [
            "State",
            "LastUpdateStatus",
            "RuntimeVersionConfig",
            "StateReason",
        ] {
            assert!(list.get(absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn timestamps_have_aws_format() {
        let t = now_timestamp();
        assert_eq!(t.len(), "2024-05-01T12:00:00.000+0000".len(), "{t}");
        assert!(t.ends_with("+0000"));
    }
}
