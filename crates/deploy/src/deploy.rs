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

mod event_invoke_config;
mod event_source_mapping;
mod function;
mod layer;
mod permission;
mod removal;
mod url;
mod version;

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
