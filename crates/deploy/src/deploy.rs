//! The deploy itself: resources in dependency order, each created, updated in place or left
//! alone in Flint, one progress line per step (CloudFormation's statuses), then what the
//! template no longer has deleted, then the Outputs.
//!
//! Flint keeps no stack records: a function carries AWS's `aws:cloudformation:stack-name` and
//! `aws:cloudformation:logical-id` tags, and everything else the stack makes hangs off its
//! functions (versions, aliases, URLs, permissions, event invoke configs, event source
//! mappings), so the next deploy finds the stack by listing functions and their tags.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Write as _;
use std::time::Duration;

use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

use crate::client::{seg, LambdaClient};
use crate::code::{self, Package};
use crate::error::{DeployError, Result};
use crate::intrinsics::{references, Outputs, Resolver};
use crate::names::{physical_name, placeholder};
use crate::other::{OtherServices, CREATABLE};
use crate::sam::LOCAL_PATH;
use crate::template::Template;

pub const TAG_STACK: &str = "aws:cloudformation:stack-name";
pub const TAG_LOGICAL_ID: &str = "aws:cloudformation:logical-id";
pub const TAG_STACK_ID: &str = "aws:cloudformation:stack-id";
/// A digest of the configuration last deployed, so an unchanged one is not sent again.
pub const TAG_CONFIGURATION: &str = "flint:deploy:configuration";
/// Where S3 or image code came from (a local zip is compared by its CodeSha256 instead).
pub const TAG_CODE: &str = "flint:deploy:code";

/// Properties whose values CloudFormation turns into numbers or booleans (a parameter's value is
/// a string; Lambda's API wants the JSON type).
const INTEGERS: &[&str] = &[
    "MemorySize",
    "Timeout",
    "ReservedConcurrentExecutions",
    "Size",
    "BatchSize",
    "MaximumBatchingWindowInSeconds",
    "MaximumRetryAttempts",
    "MaximumEventAgeInSeconds",
    "MaximumRecordAgeInSeconds",
    "ParallelizationFactor",
    "TumblingWindowInSeconds",
    "MaximumConcurrency",
    "MaxAge",
];
const BOOLEANS: &[&str] = &["Enabled", "BisectBatchOnFunctionError", "AllowCredentials"];

/// Fields UpdateEventSourceMapping takes.
const ESM_MUTABLE: &[&str] = &[
    "BatchSize",
    "BisectBatchOnFunctionError",
    "DestinationConfig",
    "FilterCriteria",
    "FunctionResponseTypes",
    "MaximumBatchingWindowInSeconds",
    "MaximumRecordAgeInSeconds",
    "MaximumRetryAttempts",
    "ParallelizationFactor",
    "ScalingConfig",
    "SourceAccessConfigurations",
    "TumblingWindowInSeconds",
    "DocumentDBEventSourceConfig",
    "KMSKeyArn",
    "MetricsConfig",
    "ProvisionedPollerConfig",
];

/// What an update sends for a configuration property the template no longer sets (Lambda's
/// UpdateFunctionConfiguration leaves a field it is not sent unchanged).
fn configuration_default(key: &str) -> Option<Value> {
    Some(match key {
        "Description" => json!(""),
        "Environment" => json!({"Variables": {}}),
        "Layers" => json!([]),
        "MemorySize" => json!(128),
        "Timeout" => json!(3),
        "EphemeralStorage" => json!({"Size": 512}),
        "TracingConfig" => json!({"Mode": "PassThrough"}),
        "DeadLetterConfig" => json!({"TargetArn": ""}),
        _ => return None,
    })
}

pub struct Options {
    pub stack_name: String,
    pub delete_removed: bool,
    /// `--create-other-resources`: where SQS queues, SNS topics, S3 buckets and Kinesis
    /// streams are created (else they are skipped).
    pub other_services: Option<OtherServices>,
    /// `--hot-reload`: functions' local code directories mounted through this bucket name
    /// instead of zipped.
    pub hot_reload_bucket: Option<String>,
}

/// One line per resource step, aligned as CloudFormation's event list.
struct Progress;

impl Progress {
    fn line(&self, status: &str, kind: &str, logical: &str, detail: &str) {
        let mut out = std::io::stdout().lock();
        // A closed stdout is no reason to fail a deploy.
        let _ = writeln!(out, "{status:<20} {kind:<34} {logical:<30} {detail}");
        let _ = out.flush();
    }

    fn warn(&self, logical: &str, message: &str) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "WARNING {logical}: {message}");
    }
}

/// The sub-resources this deploy keeps, per function name (the rest of the stack's are removed).
#[derive(Default)]
struct Kept {
    aliases: HashSet<(String, String)>,
    urls: HashSet<(String, String)>,
    permissions: HashSet<(String, String, String)>,
    invoke_configs: HashSet<(String, String)>,
    mappings: HashSet<String>,
}

pub struct Deployer {
    client: LambdaClient,
    resolver: Resolver,
    template: Template,
    options: Options,
    progress: Progress,
    /// The stack's functions in Flint before this deploy: logical id → function name.
    existing: HashMap<String, String>,
    /// The stack's functions after it: name → logical id.
    deployed_functions: HashMap<String, String>,
    kept: Kept,
}

impl Deployer {
    pub fn new(
        client: LambdaClient,
        resolver: Resolver,
        template: Template,
        options: Options,
    ) -> Deployer {
        Deployer {
            client,
            resolver,
            template,
            options,
            progress: Progress,
            existing: HashMap::new(),
            deployed_functions: HashMap::new(),
            kept: Kept::default(),
        }
    }

    pub fn warn(&self, logical: &str, message: &str) {
        self.progress.warn(logical, message);
    }

    pub async fn run(mut self) -> Result<()> {
        let order = self.order()?;
        self.existing = self.stack_functions().await?;
        for logical in &order {
            let resource = self.template.resources[logical].clone();
            let kind = resource
                .get("Type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if let Err(e) = self.deploy_one(logical, &kind, &resource).await {
                let failed = if self.existing.contains_key(logical) {
                    "UPDATE_FAILED"
                } else {
                    "CREATE_FAILED"
                };
                self.progress.line(failed, &kind, logical, &e.to_string());
                return Err(e.for_resource(logical));
            }
        }
        if self.options.delete_removed {
            self.delete_removed().await?;
        }
        self.print_outputs()
    }

    /// The resources to deploy (their Condition true), each after what it refers to.
    fn order(&self) -> Result<Vec<String>> {
        let mut deps: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (logical, resource) in &self.template.resources {
            if let Some(Value::String(c)) = resource.get("Condition") {
                if !self.resolver.condition(c)? {
                    self.progress.line(
                        "SKIPPED",
                        type_of(resource),
                        logical,
                        &format!("condition {c} is false"),
                    );
                    continue;
                }
            }
            let mut refs = BTreeSet::new();
            references(
                resource.get("Properties").unwrap_or(&Value::Null),
                &mut refs,
            );
            match resource.get("DependsOn") {
                Some(Value::String(d)) => {
                    refs.insert(d.clone());
                }
                Some(Value::Array(ds)) => {
                    refs.extend(ds.iter().filter_map(Value::as_str).map(str::to_string));
                }
                _ => {}
            }
            let refs = refs
                .into_iter()
                .map(|r| self.resolver.ref_aliases.get(&r).cloned().unwrap_or(r))
                .filter(|r| self.template.resources.contains_key(r))
                .collect();
            deps.insert(logical.clone(), refs);
        }
        let mut order = Vec::new();
        let mut done: HashSet<String> = HashSet::new();
        // Template order among the ready ones, as a reader expects.
        let all: Vec<String> = self
            .template
            .resources
            .keys()
            .filter(|k| deps.contains_key(*k))
            .cloned()
            .collect();
        while order.len() < all.len() {
            let before = order.len();
            for logical in &all {
                if done.contains(logical) {
                    continue;
                }
                let ready = deps[logical]
                    .iter()
                    .all(|d| done.contains(d) || !deps.contains_key(d));
                if ready {
                    done.insert(logical.clone());
                    order.push(logical.clone());
                }
            }
            if order.len() == before {
                let stuck: Vec<_> = all.iter().filter(|l| !done.contains(*l)).cloned().collect();
                return Err(DeployError::Template(format!(
                    "circular dependency between resources: {}",
                    stuck.join(", ")
                )));
            }
        }
        Ok(order)
    }

    async fn deploy_one(&mut self, logical: &str, kind: &str, resource: &Value) -> Result<()> {
        let raw = resource.get("Properties").cloned().unwrap_or(json!({}));
        let mut props = self.resolver.resolve(&raw)?.unwrap_or(json!({}));
        coerce(&mut props);
        let outputs = match kind {
            "AWS::Lambda::Function" => self.function(logical, kind, props).await?,
            "AWS::Lambda::LayerVersion" => self.layer(logical, kind, props).await?,
            "AWS::Lambda::Version" => self.version(logical, kind, props).await?,
            "AWS::Lambda::Alias" => self.alias(logical, kind, props).await?,
            "AWS::Lambda::Url" => self.url(logical, kind, props).await?,
            "AWS::Lambda::Permission" => self.permission(logical, kind, props).await?,
            "AWS::Lambda::EventSourceMapping" => self.mapping(logical, kind, props).await?,
            "AWS::Lambda::EventInvokeConfig" => self.invoke_config(logical, kind, props).await?,
            "AWS::Lambda::LayerVersionPermission" => {
                self.layer_permission(logical, kind, props).await?
            }
            _ if CREATABLE.contains(&kind) && self.options.other_services.is_some() => {
                let out = placeholder(&self.resolver, logical, kind, &props);
                self.progress
                    .line("CREATE_IN_PROGRESS", kind, logical, &plain(&out.reference));
                let out = match &self.options.other_services {
                    Some(other) => other.create(kind, &props, out).await?,
                    None => out,
                };
                let detail = format!("{} (at the AWS endpoint)", plain(&out.reference));
                self.progress
                    .line("CREATE_COMPLETE", kind, logical, &detail);
                out
            }
            _ => {
                let out = placeholder(&self.resolver, logical, kind, &props);
                let detail = if kind.starts_with("AWS::Lambda::") {
                    format!(
                        "not supported by flint deploy; stands for {}",
                        out.reference
                    )
                } else {
                    let arn = out.attributes.get("Arn").and_then(Value::as_str);
                    format!(
                        "other service, not created; Ref = {}{}",
                        plain(&out.reference),
                        arn.map(|a| format!(", Arn = {a}")).unwrap_or_default()
                    )
                };
                self.progress.line("SKIPPED", kind, logical, &detail);
                out
            }
        };
        self.resolver.resources.insert(logical.to_string(), outputs);
        Ok(())
    }

    fn begin(&self, existed: bool, kind: &str, logical: &str, physical: &str) {
        let status = if existed {
            "UPDATE_IN_PROGRESS"
        } else {
            "CREATE_IN_PROGRESS"
        };
        self.progress.line(status, kind, logical, physical);
    }

    fn finish(&self, existed: bool, changed: bool, kind: &str, logical: &str, physical: &str) {
        let status = match (existed, changed) {
            (false, _) => "CREATE_COMPLETE",
            (true, true) => "UPDATE_COMPLETE",
            (true, false) => "UPDATE_COMPLETE",
        };
        let detail = if existed && !changed {
            format!("{physical} (no changes)")
        } else {
            physical.to_string()
        };
        self.progress.line(status, kind, logical, &detail);
    }

    // ---------------------------------------------------------------------------------------
    // Functions
    // ---------------------------------------------------------------------------------------

    /// The stack's functions now in Flint (by their CloudFormation tags).
    async fn stack_functions(&self) -> Result<HashMap<String, String>> {
        let mut out = HashMap::new();
        let mut marker: Option<String> = None;
        loop {
            let path = match &marker {
                Some(m) => format!("/2015-03-31/functions/?MaxItems=50&Marker={}", seg(m)),
                None => "/2015-03-31/functions/?MaxItems=50".to_string(),
            };
            let page = self
                .client
                .call("ListFunctions", "GET", &path, None)
                .await?;
            for f in page["Functions"].as_array().into_iter().flatten() {
                let Some(arn) = f["FunctionArn"].as_str() else {
                    continue;
                };
                let tags = self
                    .client
                    .call(
                        "ListTags",
                        "GET",
                        &format!("/2017-03-31/tags/{}", seg(arn)),
                        None,
                    )
                    .await?;
                if tags["Tags"][TAG_STACK].as_str() == Some(self.options.stack_name.as_str()) {
                    if let (Some(logical), Some(name)) = (
                        tags["Tags"][TAG_LOGICAL_ID].as_str(),
                        f["FunctionName"].as_str(),
                    ) {
                        out.insert(logical.to_string(), name.to_string());
                    }
                }
            }
            match page["NextMarker"].as_str() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn function(&mut self, logical: &str, kind: &str, props: Value) -> Result<Outputs> {
        let Value::Object(mut props) = props else {
            return Err(DeployError::Template("Properties is not a mapping".into()));
        };
        let name = match props.remove("FunctionName") {
            Some(Value::String(n)) => n,
            Some(other) => {
                return Err(DeployError::Template(format!(
                    "FunctionName {other} is not a string"
                )))
            }
            None => self
                .existing
                .get(logical)
                .cloned()
                .unwrap_or_else(|| physical_name(&self.options.stack_name, logical, 64)),
        };
        let code = props.remove("Code").unwrap_or(Value::Null);
        let user_tags = props.remove("Tags");
        let reserved = props.remove("ReservedConcurrentExecutions");
        if !props.contains_key("Role") {
            props.insert(
                "Role".into(),
                format!(
                    "arn:aws:iam::{}:role/{}",
                    self.resolver.account,
                    physical_name(&self.options.stack_name, &format!("{logical}Role"), 64)
                )
                .into(),
            );
        }
        let runtime = props.get("Runtime").and_then(Value::as_str).unwrap_or("");
        let code = self.code(&code, runtime, "Code")?;
        let digest = short_digest(&Value::Object(props.clone()));
        // Settings CreateFunction/UpdateFunctionConfiguration do not take: each has its own
        // operation, called after them.
        let recursive_loop = props.remove("RecursiveLoop");
        let runtime_management = props.remove("RuntimeManagementConfig");
        let mut settings_due = false;

        let mut tags = Map::new();
        for t in user_tags
            .iter()
            .flat_map(|t| t.as_array().into_iter().flatten())
        {
            if let (Some(k), Some(v)) = (t["Key"].as_str(), t.get("Value")) {
                tags.insert(k.to_string(), plain(v).into());
            }
        }
        tags.insert(TAG_STACK.into(), self.options.stack_name.clone().into());
        tags.insert(TAG_LOGICAL_ID.into(), logical.into());
        tags.insert(TAG_STACK_ID.into(), self.resolver.stack_id().into());
        tags.insert(TAG_CONFIGURATION.into(), digest.clone().into());
        if let CodeSource::Reference(identity, _) = &code {
            tags.insert(TAG_CODE.into(), identity.clone().into());
        }

        let path = format!("/2015-03-31/functions/{}", seg(&name));
        let current = match self.client.call("GetFunction", "GET", &path, None).await {
            Ok(v) => Some(v),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        self.begin(current.is_some(), kind, logical, &name);
        let changed;
        match &current {
            None => {
                let mut body = props.clone();
                body.insert("FunctionName".into(), name.clone().into());
                body.insert("Code".into(), code.api_body());
                body.insert("Tags".into(), Value::Object(tags.clone()));
                self.client
                    .call(
                        "CreateFunction",
                        "POST",
                        "/2015-03-31/functions",
                        Some(&Value::Object(body)),
                    )
                    .await?;
                self.wait_function(&name).await?;
                changed = true;
                settings_due = true;
            }
            Some(current) => {
                let owner = current["Tags"][TAG_STACK].as_str();
                let owner_logical = current["Tags"][TAG_LOGICAL_ID].as_str();
                if owner != Some(self.options.stack_name.as_str()) || owner_logical != Some(logical)
                {
                    return Err(DeployError::Template(format!(
                        "function {name} already exists and is not {logical} of stack {} \
                         (its tags say stack {}, logical id {})",
                        self.options.stack_name,
                        owner.unwrap_or("-"),
                        owner_logical.unwrap_or("-")
                    )));
                }
                let code_changed = match &code {
                    CodeSource::Zip(p) => {
                        current["Configuration"]["CodeSha256"].as_str() != Some(p.sha256.as_str())
                    }
                    CodeSource::Reference(identity, _) => {
                        current["Tags"][TAG_CODE].as_str() != Some(identity.as_str())
                    }
                };
                let config_changed =
                    current["Tags"][TAG_CONFIGURATION].as_str() != Some(digest.as_str());
                if code_changed {
                    let mut body = match code.api_body() {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    };
                    if let Some(a) = props.get("Architectures") {
                        body.insert("Architectures".into(), a.clone());
                    }
                    self.client
                        .call(
                            "UpdateFunctionCode",
                            "PUT",
                            &format!("{path}/code"),
                            Some(&Value::Object(body)),
                        )
                        .await?;
                    self.wait_function(&name).await?;
                }
                if config_changed {
                    settings_due = true;
                    let mut body = props.clone();
                    body.remove("PackageType");
                    body.remove("Architectures");
                    if let Some(arn) = body.remove("CodeSigningConfigArn") {
                        self.client
                            .call(
                                "PutFunctionCodeSigningConfig",
                                "PUT",
                                &format!(
                                    "/2020-06-30/functions/{}/code-signing-config",
                                    seg(&name)
                                ),
                                Some(&json!({"CodeSigningConfigArn": arn})),
                            )
                            .await?;
                    }
                    for key in [
                        "Description",
                        "Environment",
                        "Layers",
                        "MemorySize",
                        "Timeout",
                        "EphemeralStorage",
                        "TracingConfig",
                        "DeadLetterConfig",
                    ] {
                        if !body.contains_key(key) {
                            if let Some(d) = configuration_default(key) {
                                body.insert(key.into(), d);
                            }
                        }
                    }
                    self.client
                        .call(
                            "UpdateFunctionConfiguration",
                            "PUT",
                            &format!("{path}/configuration"),
                            Some(&Value::Object(body)),
                        )
                        .await?;
                    self.wait_function(&name).await?;
                }
                let tags_changed = self.sync_tags(current, &tags).await?;
                changed = code_changed || config_changed || tags_changed;
            }
        }
        if settings_due {
            if let Some(v) = recursive_loop {
                self.client
                    .call(
                        "PutFunctionRecursionConfig",
                        "PUT",
                        &format!("/2024-08-31/functions/{}/recursion-config", seg(&name)),
                        Some(&json!({"RecursiveLoop": v})),
                    )
                    .await?;
            }
            if let Some(v) = runtime_management {
                self.client
                    .call(
                        "PutRuntimeManagementConfig",
                        "PUT",
                        &format!(
                            "/2021-07-20/functions/{}/runtime-management-config",
                            seg(&name)
                        ),
                        Some(&v),
                    )
                    .await?;
            }
        }
        let reserved_now = current
            .as_ref()
            .and_then(|c| c["Concurrency"]["ReservedConcurrentExecutions"].as_i64());
        let reserved_wanted = reserved.as_ref().and_then(Value::as_i64);
        let mut concurrency_changed = false;
        if reserved_now != reserved_wanted {
            let path = format!("/2017-10-31/functions/{}/concurrency", seg(&name));
            match reserved_wanted {
                Some(n) => {
                    self.client
                        .call(
                            "PutFunctionConcurrency",
                            "PUT",
                            &path,
                            Some(&json!({"ReservedConcurrentExecutions": n})),
                        )
                        .await?;
                }
                None => {
                    self.client
                        .call("DeleteFunctionConcurrency", "DELETE", &path, None)
                        .await?;
                }
            }
            concurrency_changed = true;
        }
        let configuration = self
            .client
            .call(
                "GetFunctionConfiguration",
                "GET",
                &format!("{path}/configuration"),
                None,
            )
            .await?;
        self.finish(
            current.is_some(),
            changed || concurrency_changed,
            kind,
            logical,
            &name,
        );
        self.deployed_functions
            .insert(name.clone(), logical.to_string());
        let mut out = Outputs {
            reference: name.into(),
            ..Default::default()
        };
        out.attributes
            .insert("Arn".into(), configuration["FunctionArn"].clone());
        Ok(out)
    }

    /// Tags as wanted (user tags added, changed or removed); true when something changed.
    async fn sync_tags(&self, current: &Value, wanted: &Map<String, Value>) -> Result<bool> {
        let Some(arn) = current["Configuration"]["FunctionArn"].as_str() else {
            return Ok(false);
        };
        let now = current["Tags"].as_object().cloned().unwrap_or_default();
        let path = format!("/2017-03-31/tags/{}", seg(arn));
        let stale: Vec<&String> = now.keys().filter(|k| !wanted.contains_key(*k)).collect();
        let mut changed = false;
        if !stale.is_empty() {
            let query: Vec<String> = stale
                .iter()
                .map(|k| format!("tagKeys={}", seg(k)))
                .collect();
            self.client
                .call(
                    "UntagResource",
                    "DELETE",
                    &format!("{path}?{}", query.join("&")),
                    None,
                )
                .await?;
            changed = true;
        }
        if wanted.iter().any(|(k, v)| now.get(k) != Some(v)) {
            self.client
                .call(
                    "TagResource",
                    "POST",
                    &path,
                    Some(&json!({"Tags": Value::Object(wanted.clone())})),
                )
                .await?;
            changed = true;
        }
        Ok(changed)
    }

    /// Until the function is Active and its last update done (or failed: the reason).
    async fn wait_function(&self, name: &str) -> Result<()> {
        let path = format!("/2015-03-31/functions/{}/configuration", seg(name));
        for _ in 0..1200 {
            let c = self
                .client
                .call("GetFunctionConfiguration", "GET", &path, None)
                .await?;
            let state = c["State"].as_str().unwrap_or("Active");
            let update = c["LastUpdateStatus"].as_str().unwrap_or("Successful");
            if state == "Failed" || update == "Failed" {
                let reason = c["StateReason"]
                    .as_str()
                    .or(c["LastUpdateStatusReason"].as_str())
                    .unwrap_or("no reason given");
                return Err(DeployError::Template(format!(
                    "function {name} failed: {reason}"
                )));
            }
            if state == "Active" && update != "InProgress" {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(DeployError::Template(format!(
            "function {name} did not become Active within 2 minutes"
        )))
    }

    /// A Code/Content property as a package or a reference Flint fetches itself.
    fn code(&self, code: &Value, runtime: &str, what: &str) -> Result<CodeSource> {
        if let Some(path) = code.get(LOCAL_PATH) {
            let Some(path) = path.as_str() else {
                return Err(DeployError::Template(format!(
                    "{what}: a local path must be a string, not {path}"
                )));
            };
            let full = self.template.dir.join(path);
            if let (Some(bucket), "Code", true) =
                (&self.options.hot_reload_bucket, what, full.is_dir())
            {
                // Mounted, not copied: edits show at the next invoke (docs/code-from-s3.md).
                let dir = std::fs::canonicalize(&full).map_err(|source| DeployError::Read {
                    path: full.clone(),
                    source,
                })?;
                let body = json!({"S3Bucket": bucket, "S3Key": dir.to_string_lossy()});
                return Ok(CodeSource::Reference(short_digest(&body), body));
            }
            return code::package_path(&full).map(CodeSource::Zip);
        }
        if let Some(source) = code.get("ZipFile") {
            let Some(source) = source.as_str() else {
                return Err(DeployError::Template(format!(
                    "{what}.ZipFile is not a string"
                )));
            };
            return code::package_inline(source, runtime).map(CodeSource::Zip);
        }
        let Value::Object(m) = code else {
            return Err(DeployError::Template(format!(
                "{what} is missing (CodeUri, InlineCode, Code.ZipFile, Code.S3Bucket/S3Key or \
                 a local path)"
            )));
        };
        if m.contains_key("S3Bucket") || m.contains_key("ImageUri") {
            return Ok(CodeSource::Reference(short_digest(code), code.clone()));
        }
        Err(DeployError::Template(format!(
            "{what}: expected ZipFile, S3Bucket/S3Key or ImageUri, got {code}"
        )))
    }

    // ---------------------------------------------------------------------------------------
    // Layers
    // ---------------------------------------------------------------------------------------

    async fn layer(&mut self, logical: &str, kind: &str, props: Value) -> Result<Outputs> {
        let Value::Object(mut props) = props else {
            return Err(DeployError::Template("Properties is not a mapping".into()));
        };
        let name = match props.remove("LayerName") {
            Some(Value::String(n)) => n,
            _ => physical_name(&self.options.stack_name, logical, 140),
        };
        let content = props.remove("Content").unwrap_or(Value::Null);
        let content = self.code(&content, "", "Content")?;
        let base = format!("/2018-10-31/layers/{}/versions", seg(&name));
        let latest = match self
            .client
            .call("ListLayerVersions", "GET", &base, None)
            .await
        {
            Ok(list) => list["LayerVersions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["Version"].as_i64())
                .max(),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let mut current = None;
        if let Some(v) = latest {
            current = Some(
                self.client
                    .call("GetLayerVersion", "GET", &format!("{base}/{v}"), None)
                    .await?,
            );
        }
        let unchanged = current.as_ref().is_some_and(|c| {
            let same_code = match &content {
                CodeSource::Zip(p) => c["Content"]["CodeSha256"].as_str() == Some(&p.sha256),
                CodeSource::Reference(..) => false,
            };
            same_code
                && props.iter().all(|(k, v)| c.get(k) == Some(v))
                && [
                    "Description",
                    "CompatibleRuntimes",
                    "CompatibleArchitectures",
                    "LicenseInfo",
                ]
                .iter()
                .all(|k| props.contains_key(*k) || c.get(*k).is_none_or(is_empty))
        });
        self.begin(current.is_some(), kind, logical, &name);
        let published = match (&current, unchanged) {
            (Some(c), true) => c.clone(),
            _ => {
                let mut body = props.clone();
                body.insert("Content".into(), content.api_body());
                self.client
                    .call(
                        "PublishLayerVersion",
                        "POST",
                        &base,
                        Some(&Value::Object(body)),
                    )
                    .await?
            }
        };
        let arn = published["LayerVersionArn"].clone();
        self.finish(current.is_some(), !unchanged, kind, logical, &plain(&arn));
        let mut out = Outputs {
            reference: arn.clone(),
            ..Default::default()
        };
        out.attributes.insert("LayerVersionArn".into(), arn);
        Ok(out)
    }

    // ---------------------------------------------------------------------------------------
    // Versions and aliases
    // ---------------------------------------------------------------------------------------

    async fn version(&mut self, logical: &str, kind: &str, props: Value) -> Result<Outputs> {
        let (name, _) = function_and_qualifier(&props, "FunctionName")?;
        let base = format!("/2015-03-31/functions/{}/versions", seg(&name));
        let before: HashSet<String> = self
            .client
            .call(
                "ListVersionsByFunction",
                "GET",
                &format!("{base}?MaxItems=10000"),
                None,
            )
            .await?["Versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["Version"].as_str().map(str::to_string))
            .collect();
        let existed = before.len() > 1;
        self.begin(existed, kind, logical, &name);
        let mut body = Map::new();
        for key in ["Description", "CodeSha256"] {
            if let Some(v) = props.get(key) {
                body.insert(key.into(), v.clone());
            }
        }
        let published = self
            .client
            .call("PublishVersion", "POST", &base, Some(&Value::Object(body)))
            .await?;
        let version = published["Version"].as_str().unwrap_or("").to_string();
        let arn = published["FunctionArn"].clone();
        self.finish(
            existed,
            !before.contains(&version),
            kind,
            logical,
            &plain(&arn),
        );
        let mut out = Outputs {
            reference: arn.clone(),
            ..Default::default()
        };
        out.attributes.insert("Version".into(), version.into());
        out.attributes.insert("FunctionArn".into(), arn);
        Ok(out)
    }

    async fn alias(&mut self, logical: &str, kind: &str, props: Value) -> Result<Outputs> {
        let (function, _) = function_and_qualifier(&props, "FunctionName")?;
        let alias = str_prop(&props, "Name")?;
        let base = format!("/2015-03-31/functions/{}/aliases", seg(&function));
        let path = format!("{base}/{}", seg(&alias));
        let current = match self.client.call("GetAlias", "GET", &path, None).await {
            Ok(v) => Some(v),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let physical = format!("{function}:{alias}");
        self.begin(current.is_some(), kind, logical, &physical);
        let mut body = Map::new();
        for key in ["FunctionVersion", "Description", "RoutingConfig"] {
            if let Some(v) = props.get(key) {
                body.insert(key.into(), v.clone());
            }
        }
        let (answer, changed) = match &current {
            None => {
                body.insert("Name".into(), alias.clone().into());
                let a = self
                    .client
                    .call("CreateAlias", "POST", &base, Some(&Value::Object(body)))
                    .await?;
                (a, true)
            }
            Some(c) => {
                body.entry("Description").or_insert(json!(""));
                body.entry("RoutingConfig")
                    .or_insert(json!({"AdditionalVersionWeights": {}}));
                let same = c["FunctionVersion"] == body["FunctionVersion"]
                    && c["Description"].as_str().unwrap_or("") == plain(&body["Description"])
                    && weights(&c["RoutingConfig"]) == weights(&body["RoutingConfig"]);
                if same {
                    (c.clone(), false)
                } else {
                    let a = self
                        .client
                        .call("UpdateAlias", "PUT", &path, Some(&Value::Object(body)))
                        .await?;
                    (a, true)
                }
            }
        };
        self.finish(current.is_some(), changed, kind, logical, &physical);
        self.kept.aliases.insert((function, alias));
        let arn = answer["AliasArn"].clone();
        let mut out = Outputs {
            reference: arn.clone(),
            ..Default::default()
        };
        out.attributes.insert("AliasArn".into(), arn);
        Ok(out)
    }

    // ---------------------------------------------------------------------------------------
    // URLs, permissions, event invoke configs, event source mappings
    // ---------------------------------------------------------------------------------------

    async fn url(&mut self, logical: &str, kind: &str, props: Value) -> Result<Outputs> {
        let (function, arn_qualifier) = function_and_qualifier(&props, "TargetFunctionArn")?;
        let qualifier = props
            .get("Qualifier")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or(arn_qualifier);
        let query = qualifier
            .as_ref()
            .map(|q| format!("?Qualifier={}", seg(q)))
            .unwrap_or_default();
        let path = format!("/2021-10-31/functions/{}/url{query}", seg(&function));
        let current = match self
            .client
            .call("GetFunctionUrlConfig", "GET", &path, None)
            .await
        {
            Ok(v) => Some(v),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let physical = match &qualifier {
            Some(q) => format!("{function}:{q}"),
            None => function.clone(),
        };
        self.begin(current.is_some(), kind, logical, &physical);
        let mut body = Map::new();
        for key in ["AuthType", "Cors", "InvokeMode"] {
            if let Some(v) = props.get(key) {
                body.insert(key.into(), v.clone());
            }
        }
        let (answer, changed) = match &current {
            None => {
                let a = self
                    .client
                    .call(
                        "CreateFunctionUrlConfig",
                        "POST",
                        &path,
                        Some(&Value::Object(body)),
                    )
                    .await?;
                (a, true)
            }
            Some(c) => {
                body.entry("Cors").or_insert(json!({}));
                body.entry("InvokeMode").or_insert(json!("BUFFERED"));
                let same = c["AuthType"] == body["AuthType"]
                    && c["InvokeMode"].as_str().unwrap_or("BUFFERED") == plain(&body["InvokeMode"])
                    && cors_equal(&c["Cors"], &body["Cors"]);
                if same {
                    (c.clone(), false)
                } else {
                    let a = self
                        .client
                        .call(
                            "UpdateFunctionUrlConfig",
                            "PUT",
                            &path,
                            Some(&Value::Object(body)),
                        )
                        .await?;
                    (a, true)
                }
            }
        };
        let url = answer["FunctionUrl"].clone();
        self.finish(current.is_some(), changed, kind, logical, &plain(&url));
        self.kept
            .urls
            .insert((function, qualifier.unwrap_or_default()));
        let mut out = Outputs {
            reference: answer["FunctionArn"].clone(),
            ..Default::default()
        };
        out.attributes.insert("FunctionUrl".into(), url);
        out.attributes
            .insert("FunctionArn".into(), answer["FunctionArn"].clone());
        Ok(out)
    }

    /// AddLayerVersionPermission on the version the template names (layer versions are
    /// immutable and never deleted, so neither are their statements).
    async fn layer_permission(
        &mut self,
        logical: &str,
        kind: &str,
        props: Value,
    ) -> Result<Outputs> {
        let arn = str_prop(&props, "LayerVersionArn")?;
        // arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION
        let parts: Vec<&str> = arn.split(':').collect();
        let (Some(name), Some(version)) = (parts.get(6), parts.get(7)) else {
            return Err(DeployError::Template(format!(
                "LayerVersionArn {arn} is not a layer version ARN"
            )));
        };
        let mut body = Map::new();
        for key in ["Action", "Principal", "OrganizationId"] {
            if let Some(v) = props.get(key) {
                body.insert(key.into(), v.clone());
            }
        }
        let prefix = physical_name(&self.options.stack_name, logical, 90);
        let sid = format!(
            "{prefix}-{}",
            &short_digest(&Value::Object(body.clone()))[..8]
        );
        let path = format!(
            "/2018-10-31/layers/{}/versions/{}/policy",
            seg(name),
            seg(version)
        );
        let present = match self
            .client
            .call("GetLayerVersionPolicy", "GET", &path, None)
            .await
        {
            Ok(p) => policy_statements(&p)
                .iter()
                .any(|s| s["Sid"].as_str() == Some(sid.as_str())),
            Err(e) if e.is_not_found() => false,
            Err(e) => return Err(e),
        };
        self.begin(present, kind, logical, &sid);
        if !present {
            body.insert("StatementId".into(), sid.clone().into());
            self.client
                .call(
                    "AddLayerVersionPermission",
                    "POST",
                    &path,
                    Some(&Value::Object(body)),
                )
                .await?;
        }
        self.finish(present, !present, kind, logical, &sid);
        Ok(Outputs {
            reference: sid.into(),
            ..Default::default()
        })
    }

    /// A permission's statement id carries a digest of its properties (`<stack>-<Logical>-
    /// <SUFFIX>-<digest>`): an unchanged one is found as it is, a changed one is added under its
    /// new id and the old statement removed (CloudFormation replaces permissions too).
    async fn permission(&mut self, logical: &str, kind: &str, props: Value) -> Result<Outputs> {
        let (function, qualifier) = function_and_qualifier(&props, "FunctionName")?;
        let mut body = Map::new();
        for key in [
            "Action",
            "Principal",
            "SourceArn",
            "SourceAccount",
            "EventSourceToken",
            "FunctionUrlAuthType",
            "PrincipalOrgID",
            "InvokedViaFunctionUrl",
        ] {
            if let Some(v) = props.get(key) {
                body.insert(key.into(), v.clone());
            }
        }
        let prefix = physical_name(&self.options.stack_name, logical, 90);
        let digest = short_digest(&Value::Object(body.clone()));
        let sid = format!("{prefix}-{}", &digest[..8]);
        let query = qualifier
            .as_ref()
            .map(|q| format!("?Qualifier={}", seg(q)))
            .unwrap_or_default();
        let base = format!("/2015-03-31/functions/{}/policy", seg(&function));
        let sids: Vec<String> = match self
            .client
            .call("GetPolicy", "GET", &format!("{base}{query}"), None)
            .await
        {
            Ok(p) => policy_statements(&p)
                .iter()
                .filter_map(|s| s["Sid"].as_str().map(str::to_string))
                .filter(|s| s.starts_with(&format!("{prefix}-")))
                .collect(),
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e),
        };
        let existed = !sids.is_empty();
        let unchanged = sids.contains(&sid);
        self.begin(existed, kind, logical, &sid);
        if !unchanged {
            body.insert("StatementId".into(), sid.clone().into());
            self.client
                .call(
                    "AddPermission",
                    "POST",
                    &format!("{base}{query}"),
                    Some(&Value::Object(body)),
                )
                .await?;
        }
        for stale in sids.iter().filter(|s| **s != sid) {
            self.client
                .call(
                    "RemovePermission",
                    "DELETE",
                    &format!("{base}/{}{query}", seg(stale)),
                    None,
                )
                .await?;
        }
        self.finish(existed, !unchanged, kind, logical, &sid);
        self.kept
            .permissions
            .insert((function, qualifier.unwrap_or_default(), sid.clone()));
        Ok(Outputs {
            reference: sid.into(),
            ..Default::default()
        })
    }

    async fn invoke_config(&mut self, logical: &str, kind: &str, props: Value) -> Result<Outputs> {
        let (function, _) = function_and_qualifier(&props, "FunctionName")?;
        let qualifier = str_prop(&props, "Qualifier")?;
        let path = format!(
            "/2019-09-25/functions/{}/event-invoke-config?Qualifier={}",
            seg(&function),
            seg(&qualifier)
        );
        let current = match self
            .client
            .call("GetFunctionEventInvokeConfig", "GET", &path, None)
            .await
        {
            Ok(v) => Some(v),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let physical = format!("{function}:{qualifier}");
        self.begin(current.is_some(), kind, logical, &physical);
        let mut body = Map::new();
        for key in [
            "MaximumRetryAttempts",
            "MaximumEventAgeInSeconds",
            "DestinationConfig",
        ] {
            if let Some(v) = props.get(key) {
                body.insert(key.into(), v.clone());
            }
        }
        let same = current
            .as_ref()
            .is_some_and(|c| body.iter().all(|(k, v)| c.get(k) == Some(v)));
        if !same {
            self.client
                .call(
                    "PutFunctionEventInvokeConfig",
                    "PUT",
                    &path,
                    Some(&Value::Object(body)),
                )
                .await?;
        }
        self.finish(current.is_some(), !same, kind, logical, &physical);
        self.kept.invoke_configs.insert((function, qualifier));
        Ok(Outputs {
            reference: physical.into(),
            ..Default::default()
        })
    }

    async fn mapping(&mut self, logical: &str, kind: &str, props: Value) -> Result<Outputs> {
        let Value::Object(mut props) = props else {
            return Err(DeployError::Template("Properties is not a mapping".into()));
        };
        let function = str_prop(&Value::Object(props.clone()), "FunctionName")?;
        let source = props
            .get("EventSourceArn")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut query = format!("?FunctionName={}", seg(&function));
        if let Some(s) = &source {
            query.push_str(&format!("&EventSourceArn={}", seg(s)));
        }
        let found = self
            .client
            .call(
                "ListEventSourceMappings",
                "GET",
                &format!("/2015-03-31/event-source-mappings/{query}"),
                None,
            )
            .await?;
        let current = found["EventSourceMappings"]
            .as_array()
            .and_then(|m| m.first())
            .cloned();
        let physical = source.clone().unwrap_or_else(|| function.clone());
        self.begin(current.is_some(), kind, logical, &physical);
        let (answer, changed) = match &current {
            None => {
                props.insert(
                    "Tags".into(),
                    json!({TAG_STACK: self.options.stack_name, TAG_LOGICAL_ID: logical,
                           TAG_STACK_ID: self.resolver.stack_id()}),
                );
                let a = self
                    .client
                    .call(
                        "CreateEventSourceMapping",
                        "POST",
                        "/2015-03-31/event-source-mappings/",
                        Some(&Value::Object(props)),
                    )
                    .await?;
                (a, true)
            }
            Some(c) => {
                let mut body = Map::new();
                for key in ESM_MUTABLE {
                    if let Some(v) = props.get(*key) {
                        body.insert((*key).into(), v.clone());
                    }
                }
                let enabled = props
                    .get("Enabled")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                let enabled_now = matches!(
                    c["State"].as_str(),
                    Some("Enabled" | "Enabling" | "Creating" | "Updating")
                );
                let same = enabled == enabled_now && body.iter().all(|(k, v)| c.get(k) == Some(v));
                if same {
                    (c.clone(), false)
                } else {
                    body.insert("Enabled".into(), enabled.into());
                    body.insert("FunctionName".into(), function.clone().into());
                    let uuid = c["UUID"].as_str().unwrap_or("");
                    let a = self
                        .client
                        .call(
                            "UpdateEventSourceMapping",
                            "PUT",
                            &format!("/2015-03-31/event-source-mappings/{}", seg(uuid)),
                            Some(&Value::Object(body)),
                        )
                        .await?;
                    (a, true)
                }
            }
        };
        let uuid = answer["UUID"].as_str().unwrap_or("").to_string();
        self.finish(
            current.is_some(),
            changed,
            kind,
            logical,
            &format!("{physical} ({uuid})"),
        );
        self.kept.mappings.insert(uuid.clone());
        let mut out = Outputs {
            reference: uuid.clone().into(),
            ..Default::default()
        };
        out.attributes.insert("Id".into(), uuid.into());
        if let Some(arn) = answer.get("EventSourceMappingArn") {
            out.attributes
                .insert("EventSourceMappingArn".into(), arn.clone());
        }
        Ok(out)
    }

    // ---------------------------------------------------------------------------------------
    // What the template no longer has
    // ---------------------------------------------------------------------------------------

    async fn delete_removed(&mut self) -> Result<()> {
        let removed: Vec<(String, String)> = self
            .existing
            .iter()
            .filter(|(_, name)| !self.deployed_functions.contains_key(*name))
            .map(|(l, n)| (l.clone(), n.clone()))
            .collect();
        let kept: Vec<String> = self.deployed_functions.keys().cloned().collect();
        // Event source mappings of the stack's functions that the template no longer has.
        let all_names: HashSet<&str> = kept
            .iter()
            .chain(removed.iter().map(|(_, n)| n))
            .map(String::as_str)
            .collect();
        let mut marker: Option<String> = None;
        loop {
            let path = match &marker {
                Some(m) => format!("/2015-03-31/event-source-mappings/?Marker={}", seg(m)),
                None => "/2015-03-31/event-source-mappings/".to_string(),
            };
            let page = self
                .client
                .call("ListEventSourceMappings", "GET", &path, None)
                .await?;
            for m in page["EventSourceMappings"].as_array().into_iter().flatten() {
                let uuid = m["UUID"].as_str().unwrap_or("");
                let function = m["FunctionArn"].as_str().map(name_of_arn);
                let ours = function.is_some_and(|(f, _)| all_names.contains(&f));
                if ours && !self.kept.mappings.contains(uuid) {
                    self.client
                        .call(
                            "DeleteEventSourceMapping",
                            "DELETE",
                            &format!("/2015-03-31/event-source-mappings/{}", seg(uuid)),
                            None,
                        )
                        .await?;
                    self.removed_line("AWS::Lambda::EventSourceMapping", uuid);
                }
            }
            match page["NextMarker"].as_str() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        for name in &kept {
            self.delete_removed_children(name).await?;
        }
        for (logical, name) in removed {
            self.progress.line(
                "DELETE_IN_PROGRESS",
                "AWS::Lambda::Function",
                &logical,
                &name,
            );
            match self
                .client
                .call(
                    "DeleteFunction",
                    "DELETE",
                    &format!("/2015-03-31/functions/{}", seg(&name)),
                    None,
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.for_resource(&logical)),
            }
            self.progress
                .line("DELETE_COMPLETE", "AWS::Lambda::Function", &logical, &name);
        }
        Ok(())
    }

    fn removed_line(&self, kind: &str, physical: &str) {
        self.progress
            .line("DELETE_COMPLETE", kind, "(removed from template)", physical);
    }

    /// A kept function's aliases, URLs, stack permissions and event invoke configs that this
    /// deploy did not keep.
    async fn delete_removed_children(&self, function: &str) -> Result<()> {
        let f = seg(function);
        let aliases = self
            .client
            .call(
                "ListAliases",
                "GET",
                &format!("/2015-03-31/functions/{f}/aliases"),
                None,
            )
            .await?;
        let mut qualifiers: Vec<String> = vec![String::new()];
        for a in aliases["Aliases"].as_array().into_iter().flatten() {
            let Some(name) = a["Name"].as_str() else {
                continue;
            };
            if self
                .kept
                .aliases
                .contains(&(function.to_string(), name.to_string()))
            {
                qualifiers.push(name.to_string());
                continue;
            }
            self.client
                .call(
                    "DeleteAlias",
                    "DELETE",
                    &format!("/2015-03-31/functions/{f}/aliases/{}", seg(name)),
                    None,
                )
                .await?;
            self.removed_line("AWS::Lambda::Alias", &format!("{function}:{name}"));
        }
        let urls = self
            .client
            .call(
                "ListFunctionUrlConfigs",
                "GET",
                &format!("/2021-10-31/functions/{f}/urls"),
                None,
            )
            .await?;
        for u in urls["FunctionUrlConfigs"].as_array().into_iter().flatten() {
            let Some((_, q)) = u["FunctionArn"].as_str().map(name_of_arn) else {
                continue;
            };
            let q = q.unwrap_or_default();
            if self.kept.urls.contains(&(function.to_string(), q.clone())) {
                continue;
            }
            let query = if q.is_empty() {
                String::new()
            } else {
                format!("?Qualifier={}", seg(&q))
            };
            self.client
                .call(
                    "DeleteFunctionUrlConfig",
                    "DELETE",
                    &format!("/2021-10-31/functions/{f}/url{query}"),
                    None,
                )
                .await?;
            self.removed_line(
                "AWS::Lambda::Url",
                &format!(
                    "{function}{}",
                    if q.is_empty() {
                        String::new()
                    } else {
                        format!(":{q}")
                    }
                ),
            );
        }
        let prefix = format!("{}-", self.options.stack_name);
        for q in &qualifiers {
            let query = if q.is_empty() {
                String::new()
            } else {
                format!("?Qualifier={}", seg(q))
            };
            let policy = match self
                .client
                .call(
                    "GetPolicy",
                    "GET",
                    &format!("/2015-03-31/functions/{f}/policy{query}"),
                    None,
                )
                .await
            {
                Ok(p) => p,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            for s in policy_statements(&policy) {
                let Some(sid) = s["Sid"].as_str() else {
                    continue;
                };
                let key = (function.to_string(), q.clone(), sid.to_string());
                if !sid.starts_with(&prefix) || self.kept.permissions.contains(&key) {
                    continue;
                }
                self.client
                    .call(
                        "RemovePermission",
                        "DELETE",
                        &format!("/2015-03-31/functions/{f}/policy/{}{query}", seg(sid)),
                        None,
                    )
                    .await?;
                self.removed_line("AWS::Lambda::Permission", sid);
            }
        }
        let configs = self
            .client
            .call(
                "ListFunctionEventInvokeConfigs",
                "GET",
                &format!("/2019-09-25/functions/{f}/event-invoke-config/list"),
                None,
            )
            .await?;
        for c in configs["FunctionEventInvokeConfigs"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some((_, q)) = c["FunctionArn"].as_str().map(name_of_arn) else {
                continue;
            };
            let q = q.unwrap_or_else(|| "$LATEST".to_string());
            if self
                .kept
                .invoke_configs
                .contains(&(function.to_string(), q.clone()))
            {
                continue;
            }
            self.client
                .call(
                    "DeleteFunctionEventInvokeConfig",
                    "DELETE",
                    &format!(
                        "/2019-09-25/functions/{f}/event-invoke-config?Qualifier={}",
                        seg(&q)
                    ),
                    None,
                )
                .await?;
            self.removed_line("AWS::Lambda::EventInvokeConfig", &format!("{function}:{q}"));
        }
        Ok(())
    }

    fn print_outputs(&self) -> Result<()> {
        if self.template.outputs.is_empty() {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "\nOutputs:");
        for (key, output) in &self.template.outputs {
            if let Some(Value::String(c)) = output.get("Condition") {
                if !self.resolver.condition(c)? {
                    continue;
                }
            }
            let value = output.get("Value").unwrap_or(&Value::Null);
            let value = self
                .resolver
                .resolve(value)
                .map_err(|e| DeployError::Template(format!("Outputs.{key}: {e}")))?
                .unwrap_or(Value::Null);
            let _ = writeln!(out, "{key} = {}", plain(&value));
            if let Some(d) = output.get("Description").and_then(Value::as_str) {
                let _ = writeln!(out, "  # {d}");
            }
        }
        let _ = out.flush();
        Ok(())
    }
}

/// Code as deployed: a zip this deploy sends, or a location Flint fetches (S3, an image).
enum CodeSource {
    Zip(Package),
    /// An identity (digest of the location) and the API's Code body.
    Reference(String, Value),
}

impl CodeSource {
    fn api_body(&self) -> Value {
        match self {
            CodeSource::Zip(p) => json!({"ZipFile": p.base64()}),
            CodeSource::Reference(_, body) => body.clone(),
        }
    }
}

fn type_of(resource: &Value) -> &str {
    resource.get("Type").and_then(Value::as_str).unwrap_or("")
}

/// A value as text (strings without their quotes).
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

fn short_digest(v: &Value) -> String {
    hex::encode(&Sha256::digest(v.to_string().as_bytes())[..16])
}

fn str_prop(props: &Value, key: &str) -> Result<String> {
    match props.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(other) => Err(DeployError::Template(format!(
            "{key} {other} is not a string"
        ))),
        None => Err(DeployError::Template(format!("{key} is required"))),
    }
}

/// A function named by name, `name:qualifier`, or a (qualified) ARN.
fn function_and_qualifier(props: &Value, key: &str) -> Result<(String, Option<String>)> {
    let s = str_prop(props, key)?;
    if s.starts_with("arn:") {
        let (name, q) = name_of_arn(&s);
        return Ok((name.to_string(), q));
    }
    Ok(match s.split_once(':') {
        Some((n, q)) => (n.to_string(), Some(q.to_string())),
        None => (s, None),
    })
}

/// `arn:aws:lambda:R:A:function:NAME[:QUALIFIER]` → (NAME, QUALIFIER).
fn name_of_arn(arn: &str) -> (&str, Option<String>) {
    let mut parts = arn.splitn(8, ':').skip(6);
    let name = parts.next().unwrap_or(arn);
    (name, parts.next().map(str::to_string))
}

fn policy_statements(policy: &Value) -> Vec<Value> {
    policy["Policy"]
        .as_str()
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
        .and_then(|p| p["Statement"].as_array().cloned())
        .unwrap_or_default()
}

fn weights(routing: &Value) -> Value {
    routing
        .get("AdditionalVersionWeights")
        .cloned()
        .unwrap_or(json!({}))
}

fn cors_equal(a: &Value, b: &Value) -> bool {
    let norm = |v: &Value| -> Map<String, Value> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| !is_empty(v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    norm(a) == norm(b)
}

/// Strings where Lambda wants numbers or booleans, converted as CloudFormation converts them.
pub fn coerce(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                if let Value::String(s) = v {
                    if INTEGERS.contains(&k.as_str()) {
                        if let Ok(n) = s.trim().parse::<i64>() {
                            *v = n.into();
                        }
                        continue;
                    }
                    if BOOLEANS.contains(&k.as_str()) {
                        match s.to_ascii_lowercase().as_str() {
                            "true" => *v = true.into(),
                            "false" => *v = false.into(),
                            _ => {}
                        }
                        continue;
                    }
                }
                coerce(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(coerce),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployer(resources: Value) -> Deployer {
        let template = Template::from_value(
            json!({"Resources": resources, "Conditions": {"Never": {"Fn::Equals": [1, 2]}}}),
            std::path::PathBuf::from("."),
        )
        .unwrap();
        let mut resolver = Resolver::default();
        resolver
            .evaluate_conditions(&template.conditions.clone())
            .unwrap();
        let client = LambdaClient::new(
            "http://127.0.0.1:1",
            "us-east-1",
            aws_credential_types::Credentials::new("a", "b", None, None, "t"),
        )
        .unwrap();
        Deployer::new(
            client,
            resolver,
            template,
            Options {
                stack_name: "s".into(),
                delete_removed: true,
                other_services: None,
                hot_reload_bucket: None,
            },
        )
    }

    #[test]
    fn resources_deploy_after_what_they_refer_to_and_depend_on() {
        let d = deployer(json!({
            "Alias": {"Type": "AWS::Lambda::Alias", "Properties": {
                "FunctionName": {"Ref": "Fn"},
                "FunctionVersion": {"Fn::GetAtt": ["Version", "Version"]}}},
            "Version": {"Type": "AWS::Lambda::Version",
                        "Properties": {"FunctionName": {"Fn::Sub": "${Fn}"}}},
            "Fn": {"Type": "AWS::Lambda::Function", "DependsOn": "Role"},
            "Role": {"Type": "AWS::IAM::Role"},
            "Gone": {"Type": "AWS::Lambda::Function", "Condition": "Never"},
        }));
        assert_eq!(d.order().unwrap(), ["Role", "Fn", "Version", "Alias"]);
    }

    #[test]
    fn a_circular_dependency_is_named() {
        let d = deployer(json!({
            "A": {"Type": "AWS::Lambda::Function", "Properties": {"X": {"Ref": "B"}}},
            "B": {"Type": "AWS::Lambda::Function", "Properties": {"X": {"Fn::GetAtt": ["A", "Arn"]}}},
        }));
        let e = d.order().unwrap_err().to_string();
        assert!(
            e.contains("circular dependency between resources: A, B"),
            "{e}"
        );
    }

    #[test]
    fn parameter_strings_become_the_numbers_and_booleans_lambda_wants() {
        let mut v = json!({"MemorySize": "256", "Timeout": 3, "Enabled": "False",
                           "EphemeralStorage": {"Size": "1024"}, "Description": "12"});
        coerce(&mut v);
        assert_eq!(
            v,
            json!({"MemorySize": 256, "Timeout": 3, "Enabled": false,
                   "EphemeralStorage": {"Size": 1024}, "Description": "12"})
        );
    }

    #[test]
    fn functions_are_named_by_name_qualified_name_or_arn() {
        let f = |s: &str| function_and_qualifier(&json!({"F": s}), "F").unwrap();
        assert_eq!(f("fn"), ("fn".into(), None));
        assert_eq!(f("fn:live"), ("fn".into(), Some("live".into())));
        assert_eq!(
            f("arn:aws:lambda:us-east-1:000000000000:function:fn:live"),
            ("fn".into(), Some("live".into()))
        );
        assert_eq!(
            f("arn:aws:lambda:us-east-1:000000000000:function:fn"),
            ("fn".into(), None)
        );
    }
}
