//! Asynchronous invocation settings: Put (replace), Update (merge), Get, Delete and
//! ListFunctionEventInvokeConfigs on `$LATEST`, a published version or an alias — retry attempts,
//! maximum event age and OnSuccess/OnFailure destinations, validated as AWS validates them.

use serde::{Deserialize, Serialize};

use crate::configuration::LATEST;
use crate::function::QualifiedInput;
use crate::function_name::{self, FunctionRef};
use crate::state::Function;
use crate::sub_resource::{self, ListInput};
use crate::{arn, ControlPlane, LambdaError, Scope};

/// The model's pattern for a destination, as AWS quotes it.
const DESTINATION_PATTERN: &str = "$|kafka://([^.]([a-zA-Z0-9\\-_.]{0,248}))|arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\\-])+:((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1})?:(\\d{12})?:(.*)";

/// Services a destination may be: queues, topics, functions, event buses (and S3 buckets for
/// failures, which AWS accepts since 2024).
const DESTINATION_SERVICES: &[&str] = &["sqs", "sns", "lambda", "events", "s3"];

/// One stored event invoke config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventInvokeConfig {
    /// Epoch seconds (with milliseconds), as the `Date` timestamp renders.
    pub last_modified: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_retry_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_event_age_in_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DestinationConfigInput {
    pub on_success: Option<DestinationInput>,
    pub on_failure: Option<DestinationInput>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DestinationInput {
    pub destination: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutInput {
    pub function_name: String,
    pub qualifier: Option<String>,
    pub maximum_retry_attempts: Option<u32>,
    pub maximum_event_age_in_seconds: Option<u32>,
    pub destination_config: Option<DestinationConfigInput>,
}

/// The `FunctionEventInvokeConfig` shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventInvokeConfigOutput {
    pub last_modified: f64,
    pub function_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_retry_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_event_age_in_seconds: Option<u32>,
    pub destination_config: DestinationConfigOutput,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DestinationConfigOutput {
    pub on_success: DestinationOutput,
    pub on_failure: DestinationOutput,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DestinationOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListOutput {
    pub function_event_invoke_configs: Vec<EventInvokeConfigOutput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Empty {}

/// What an asynchronous invoke of a version or alias must honour.
#[derive(Debug, Clone, PartialEq)]
pub struct AsyncInvokeSettings {
    /// Retries after a failed attempt (AWS default 2).
    pub maximum_retry_attempts: u32,
    /// How long an event may wait, in seconds (AWS default 6 hours).
    pub maximum_event_age_in_seconds: u32,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
}

impl Default for AsyncInvokeSettings {
    fn default() -> Self {
        Self {
            maximum_retry_attempts: 2,
            maximum_event_age_in_seconds: 21_600,
            on_success: None,
            on_failure: None,
        }
    }
}

impl ControlPlane {
    /// The event invoke config an asynchronous invoke of `function_name` (+ qualifier) runs
    /// under: the config of the version or alias invoked (`$LATEST` when unqualified), or AWS's
    /// defaults. None if the function does not exist.
    pub fn async_invoke_settings(
        &self,
        scope: &Scope,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Option<AsyncInvokeSettings> {
        let fref = function_name::resolve(scope, function_name, qualifier).ok()?;
        let f = self.index.get(scope, &fref.name)?;
        let key = fref.qualifier.unwrap_or_else(|| LATEST.into());
        let defaults = AsyncInvokeSettings::default();
        Some(match f.doc.settings.event_invoke_configs.get(&key) {
            Some(c) => AsyncInvokeSettings {
                maximum_retry_attempts: c
                    .maximum_retry_attempts
                    .unwrap_or(defaults.maximum_retry_attempts),
                maximum_event_age_in_seconds: c
                    .maximum_event_age_in_seconds
                    .unwrap_or(defaults.maximum_event_age_in_seconds),
                on_success: c.on_success.clone(),
                on_failure: c.on_failure.clone(),
            },
            None => defaults,
        })
    }
}

fn function_missing() -> LambdaError {
    LambdaError::not_found("The function doesn't exist.")
}

fn config_missing(scope: &Scope, name: &str, key: &str) -> LambdaError {
    LambdaError::not_found(format!(
        "The function {} doesn't have an EventInvokeConfig",
        arn::qualified_function_arn(scope, name, key)
    ))
}

/// The config key of a request: its qualifier, `$LATEST` when unqualified.
fn key_of(fref: &FunctionRef) -> String {
    fref.qualifier.clone().unwrap_or_else(|| LATEST.into())
}

fn render(scope: &Scope, name: &str, key: &str, c: &EventInvokeConfig) -> EventInvokeConfigOutput {
    EventInvokeConfigOutput {
        last_modified: c.last_modified,
        function_arn: arn::qualified_function_arn(scope, name, key),
        maximum_retry_attempts: c.maximum_retry_attempts,
        maximum_event_age_in_seconds: c.maximum_event_age_in_seconds,
        destination_config: DestinationConfigOutput {
            on_success: DestinationOutput {
                destination: c.on_success.clone(),
            },
            on_failure: DestinationOutput {
                destination: c.on_failure.clone(),
            },
        },
    }
}

fn now() -> f64 {
    crate::resource_util::epoch_seconds(chrono::Utc::now())
}

fn check_ranges(retries: Option<u32>, age: Option<u32>) -> Result<(), LambdaError> {
    let fail = |value: u32, member: &str, constraint: &str| {
        LambdaError::validation(format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy \
             constraint: Member must have value {constraint}"
        ))
    };
    match retries {
        Some(r) if r > 2 => return Err(fail(r, "maximumRetryAttempts", "less than or equal to 2")),
        _ => {}
    }
    match age {
        Some(a) if a < 60 => Err(fail(
            a,
            "maximumEventAgeInSeconds",
            "greater than or equal to 60",
        )),
        Some(a) if a > 21_600 => Err(fail(
            a,
            "maximumEventAgeInSeconds",
            "less than or equal to 21600",
        )),
        _ => Ok(()),
    }
}

/// `arn:PARTITION:SERVICE:REGION?:ACCOUNT?:...` — the parts of the model's pattern that matter.
fn destination_service(destination: &str) -> Option<&str> {
    let parts: Vec<&str> = destination.splitn(6, ':').collect();
    let [arn, partition, service, region, account, _rest] = parts.as_slice() else {
        return None;
    };
    let partition_ok = partition
        .strip_prefix("aws")
        .is_some_and(|p| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    let service_ok = !service.is_empty()
        && service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let region_ok = region
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let account_ok =
        account.is_empty() || (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()));
    (*arn == "arn" && partition_ok && service_ok && region_ok && account_ok).then_some(*service)
}

fn describe(config: &DestinationConfigInput) -> String {
    let part = |name: &str, d: &Option<DestinationInput>| match d {
        None => "null".to_string(),
        Some(d) => format!(
            "{name}(destination={})",
            d.destination.as_deref().unwrap_or("null")
        ),
    };
    format!(
        "DestinationConfig(onSuccess={}, onFailure={})",
        part("OnSuccess", &config.on_success),
        part("OnFailure", &config.on_failure)
    )
}

/// Syntax and service of the destinations (before the function is looked at).
fn check_destination_syntax(config: &DestinationConfigInput) -> Result<(), LambdaError> {
    for (member, d) in [
        ("onSuccess", &config.on_success),
        ("onFailure", &config.on_failure),
    ] {
        let Some(dest) = d.as_ref().and_then(|d| d.destination.as_deref()) else {
            continue;
        };
        if dest.is_empty() || dest.starts_with("kafka://") {
            continue;
        }
        let Some(service) = destination_service(dest) else {
            return Err(LambdaError::validation(format!(
                "1 validation error detected: Value '{dest}' at 'destinationConfig.{member}.\
                 destination' failed to satisfy constraint: Member must satisfy regular \
                 expression pattern: {DESTINATION_PATTERN}"
            )));
        };
        if !DESTINATION_SERVICES.contains(&service) {
            return Err(LambdaError::invalid(format!(
                "The provided destination config {} is invalid.",
                describe(config)
            )));
        }
    }
    Ok(())
}

/// Function destinations must exist and must not be the function itself.
fn check_function_destinations(
    cp: &ControlPlane,
    scope: &Scope,
    own_name: &str,
    destinations: [Option<&str>; 2],
) -> Result<(), LambdaError> {
    for dest in destinations.into_iter().flatten() {
        if destination_service(dest) != Some("lambda") {
            continue;
        }
        let invalid = || LambdaError::invalid(format!("The destination ARN {dest} is invalid."));
        let Ok(target) = function_name::resolve(scope, dest, None) else {
            return Err(invalid());
        };
        if target.name == own_name {
            return Err(LambdaError::invalid(
                "You can't specify the function as a destination for itself.",
            ));
        }
        let exists = cp.index.get(scope, &target.name).is_some_and(|f| {
            target
                .qualifier
                .as_deref()
                .is_none_or(|q| sub_resource::qualifier_exists(&f, q))
        });
        if !exists {
            return Err(invalid());
        }
    }
    Ok(())
}

fn target_exists(f: &Function, key: &str) -> bool {
    sub_resource::qualifier_exists(f, key)
}

/// Put and Update: `merge` keeps what the request does not set.
async fn store(
    cp: &ControlPlane,
    scope: &Scope,
    input: PutInput,
    merge: bool,
) -> Result<EventInvokeConfigOutput, LambdaError> {
    if input.maximum_retry_attempts.is_none()
        && input.maximum_event_age_in_seconds.is_none()
        && input.destination_config.is_none()
    {
        return Err(LambdaError::invalid(
            "You must specify at least one of error handling or destination setting.",
        ));
    }
    check_ranges(
        input.maximum_retry_attempts,
        input.maximum_event_age_in_seconds,
    )?;
    let fref = function_name::resolve(scope, &input.function_name, input.qualifier.as_deref())?;
    if let Some(d) = &input.destination_config {
        check_destination_syntax(d)?;
    }
    let key = key_of(&fref);
    let name = fref.name.clone();
    let (_, shown) = cp
        .index
        .modify(scope, &name, function_missing, |current, draft| {
            if !target_exists(current, &key) {
                return Err(function_missing());
            }
            let existing = current.doc.settings.event_invoke_configs.get(&key);
            let mut config = match (merge, existing) {
                (true, Some(c)) => c.clone(),
                (true, None) => return Err(config_missing(scope, &name, &key)),
                (false, _) => EventInvokeConfig {
                    last_modified: 0.0,
                    maximum_retry_attempts: None,
                    maximum_event_age_in_seconds: None,
                    on_success: None,
                    on_failure: None,
                },
            };
            if let Some(r) = input.maximum_retry_attempts {
                config.maximum_retry_attempts = Some(r);
            }
            if let Some(a) = input.maximum_event_age_in_seconds {
                config.maximum_event_age_in_seconds = Some(a);
            }
            if let Some(d) = &input.destination_config {
                if let Some(s) = &d.on_success {
                    config.on_success = s.destination.clone().filter(|x| !x.is_empty());
                }
                if let Some(f) = &d.on_failure {
                    config.on_failure = f.destination.clone().filter(|x| !x.is_empty());
                }
            }
            check_function_destinations(
                cp,
                scope,
                &name,
                [config.on_success.as_deref(), config.on_failure.as_deref()],
            )?;
            config.last_modified = now();
            let shown = render(scope, &name, &key, &config);
            draft
                .doc
                .settings
                .event_invoke_configs
                .insert(key.clone(), config);
            Ok(shown)
        })
        .await?;
    Ok(shown)
}

pub async fn put(
    cp: &ControlPlane,
    scope: &Scope,
    input: PutInput,
) -> Result<EventInvokeConfigOutput, LambdaError> {
    store(cp, scope, input, false).await
}

pub async fn update(
    cp: &ControlPlane,
    scope: &Scope,
    input: PutInput,
) -> Result<EventInvokeConfigOutput, LambdaError> {
    store(cp, scope, input, true).await
}

pub async fn get(
    cp: &ControlPlane,
    scope: &Scope,
    input: QualifiedInput,
) -> Result<EventInvokeConfigOutput, LambdaError> {
    let fref = function_name::resolve(scope, &input.function_name, input.qualifier.as_deref())?;
    let key = key_of(&fref);
    let missing = || config_missing(scope, &fref.name, &key);
    let f = cp.index.get(scope, &fref.name).ok_or_else(missing)?;
    if !target_exists(&f, &key) {
        return Err(missing());
    }
    let c = f
        .doc
        .settings
        .event_invoke_configs
        .get(&key)
        .ok_or_else(missing)?;
    Ok(render(scope, &fref.name, &key, c))
}

pub async fn delete(
    cp: &ControlPlane,
    scope: &Scope,
    input: QualifiedInput,
) -> Result<Empty, LambdaError> {
    let fref = function_name::resolve(scope, &input.function_name, input.qualifier.as_deref())?;
    let key = key_of(&fref);
    let missing = || config_missing(scope, &fref.name, &key);
    cp.index
        .modify(scope, &fref.name, missing, |current, draft| {
            if !target_exists(current, &key)
                || draft
                    .doc
                    .settings
                    .event_invoke_configs
                    .remove(&key)
                    .is_none()
            {
                return Err(missing());
            }
            Ok(())
        })
        .await?;
    Ok(Empty {})
}

pub async fn list(
    cp: &ControlPlane,
    scope: &Scope,
    input: ListInput,
) -> Result<ListOutput, LambdaError> {
    let fref = function_name::resolve(scope, &input.function_name, None)?;
    let f = cp
        .index
        .get(scope, &fref.name)
        .ok_or_else(function_missing)?;
    let items: Vec<(String, EventInvokeConfigOutput)> = f
        .doc
        .settings
        .event_invoke_configs
        .iter()
        .filter(|(k, _)| target_exists(&f, k))
        .map(|(k, c)| (sub_resource::listing_key(k), render(scope, f.name(), k, c)))
        .collect();
    let (configs, next_marker) =
        sub_resource::page(items, input.marker.as_deref(), input.max_items)?;
    Ok(ListOutput {
        function_event_invoke_configs: configs,
        next_marker,
    })
}

#[cfg(test)]
mod tests;
