//! Function aliases: CreateAlias, GetAlias, UpdateAlias, DeleteAlias and ListAliases, with AWS's
//! routing-configuration rules (one extra version at most, never `$LATEST`), RevisionId guards and
//! messages — and the weighted pick an invoke through an alias makes between its versions.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::configuration::{VersionRecord, LATEST};
use crate::function_name::{self, FunctionRef};
use crate::state::Function;
use crate::{arn, ControlPlane, LambdaError, Scope};

/// ListAliases' default and largest page.
pub const MAX_LIST_ITEMS: usize = 50;

/// The longest alias name the model allows.
const MAX_NAME_LEN: usize = 128;

/// The model's pattern for alias names, as AWS quotes it.
const NAME_PATTERN: &str = "(?!^[0-9]+$)([a-zA-Z0-9-_]+)";

/// An alias as stored in its function's document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AliasRecord {
    pub name: String,
    /// `$LATEST` or a published version number.
    pub function_version: String,
    #[serde(default)]
    pub description: String,
    /// The one extra version traffic is shifted to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<AdditionalVersion>,
    /// Changes on every change of the alias (and only then).
    pub revision_id: String,
}

/// `RoutingConfig.AdditionalVersionWeights`' single entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AdditionalVersion {
    pub version: String,
    /// Share of invokes (0.0–1.0) that run `version` instead of the alias's version.
    pub weight: f64,
}

impl AliasRecord {
    /// Does the alias route any traffic to `version` (as its version or its extra one)?
    pub fn references(&self, version: &str) -> bool {
        self.function_version == version
            || self.routing.as_ref().is_some_and(|r| r.version == version)
    }

    /// The version an invoke through this alias runs: the extra version with its weight.
    pub fn pick_version(&self) -> &str {
        match &self.routing {
            Some(r) if r.weight > 0.0 && rand::random::<f64>() < r.weight => &r.version,
            _ => &self.function_version,
        }
    }

    pub fn render(&self, scope: &Scope, function: &str) -> AliasConfiguration {
        AliasConfiguration {
            alias_arn: arn::qualified_function_arn(scope, function, &self.name),
            name: self.name.clone(),
            function_version: self.function_version.clone(),
            description: self.description.clone(),
            routing_config: self.routing.as_ref().map(|r| RoutingConfig {
                additional_version_weights: BTreeMap::from([(r.version.clone(), r.weight)]),
            }),
            revision_id: self.revision_id.clone(),
        }
    }
}

/// The `AliasConfiguration` shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AliasConfiguration {
    pub alias_arn: String,
    pub name: String,
    pub function_version: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_config: Option<RoutingConfig>,
    pub revision_id: String,
}

/// `AliasRoutingConfiguration`, in and out.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoutingConfig {
    #[serde(default)]
    pub additional_version_weights: BTreeMap<String, f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateAliasInput {
    pub function_name: String,
    pub name: String,
    pub function_version: String,
    pub description: Option<String>,
    pub routing_config: Option<RoutingConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AliasInput {
    pub function_name: String,
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateAliasInput {
    pub function_name: String,
    pub name: String,
    pub function_version: Option<String>,
    pub description: Option<String>,
    pub routing_config: Option<RoutingConfig>,
    pub revision_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAliasesInput {
    pub function_name: String,
    pub function_version: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<u32>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAliasesOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    pub aliases: Vec<AliasConfiguration>,
}

/// DeleteAlias answers 204 with no body.
#[derive(Debug, Serialize)]
pub struct Empty {}

/// 404 of GetAlias (and of operations on an alias-qualified resource) for a missing alias.
pub fn not_found_by_arn(alias_arn: &str) -> LambdaError {
    LambdaError::not_found(format!("Cannot find alias arn: {alias_arn}"))
}

/// 404 of UpdateAlias for a missing alias.
fn not_found(alias_arn: &str) -> LambdaError {
    LambdaError::not_found(format!("Alias not found: {alias_arn}"))
}

/// Is `qualifier` shaped like an alias name (not `$LATEST`, not a version number)?
pub fn is_alias_name(qualifier: &str) -> bool {
    !qualifier.is_empty()
        && !qualifier.bytes().all(|b| b.is_ascii_digit())
        && qualifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The model's constraints on `Name`, checked again here so that no alias can shadow a version.
fn validate_name(name: &str) -> Result<(), LambdaError> {
    if name.len() > MAX_NAME_LEN {
        return Err(LambdaError::validation(format!(
            "1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: \
             Member must have length less than or equal to {MAX_NAME_LEN}"
        )));
    }
    if !is_alias_name(name) {
        return Err(LambdaError::validation(format!(
            "1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: {NAME_PATTERN}"
        )));
    }
    Ok(())
}

/// A Java-style rendering of the weights map, as AWS quotes it in validation errors: `{2=0.5}`.
fn java_map(weights: &BTreeMap<String, f64>) -> String {
    let items: Vec<String> = weights.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", items.join(", "))
}

/// Checks a routing configuration against the alias's version and the function's versions, in the
/// order AWS reports problems. Returns the extra version to store (None for an empty config).
fn validate_routing(
    scope: &Scope,
    f: &Function,
    function_version: &str,
    weights: &BTreeMap<String, f64>,
) -> Result<Option<AdditionalVersion>, LambdaError> {
    // The model's constraints (the api checks them too; a stored alias must never break them).
    if weights
        .keys()
        .any(|k| k.is_empty() || k.len() > 1024 || !k.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(LambdaError::validation(format!(
            "1 validation error detected: Value '{}' at 'routingConfig.additionalVersionWeights' \
             failed to satisfy constraint: Map keys must satisfy constraint: [Member must have \
             length less than or equal to 1024, Member must have length greater than or equal to \
             1, Member must satisfy regular expression pattern: [0-9]+]",
            java_map(weights)
        )));
    }
    if weights.values().any(|w| !(0.0..=1.0).contains(w)) {
        return Err(LambdaError::validation(format!(
            "1 validation error detected: Value '{}' at 'routingConfig.additionalVersionWeights' \
             failed to satisfy constraint: Map value must satisfy constraint: [Member must have \
             value less than or equal to 1.0, Member must have value greater than or equal to \
             0.0, Member must not be null]",
            java_map(weights)
        )));
    }
    if weights.len() > 1 {
        return Err(LambdaError::invalid(
            "Number of items in AdditionalVersionWeights cannot be greater than 1",
        ));
    }
    let Some((version, weight)) = weights.iter().next() else {
        return Ok(None);
    };
    if function_version == LATEST {
        return Err(LambdaError::invalid(
            "$LATEST is not supported for an alias pointing to more than 1 version",
        )
        .untyped());
    }
    if version == function_version {
        return Err(LambdaError::invalid(format!(
            "Invalid function version {version}. Function version {version} is already included \
             in routing configuration."
        )));
    }
    require_version(scope, f, function_version)?;
    require_version(scope, f, version)?;
    Ok(Some(AdditionalVersion {
        version: version.clone(),
        weight: *weight,
    }))
}

fn require_version<'a>(
    scope: &Scope,
    f: &'a Function,
    version: &str,
) -> Result<&'a VersionRecord, LambdaError> {
    f.version(version).ok_or_else(|| {
        LambdaError::function_not_found(&arn::qualified_function_arn(scope, f.name(), version))
    })
}

/// The function an alias operation addresses; a qualifier on its name is not part of it.
fn function_ref(scope: &Scope, function_name: &str) -> Result<FunctionRef, LambdaError> {
    let mut fref = function_name::resolve(scope, function_name, None)?;
    fref.qualifier = None;
    Ok(fref)
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub async fn create(
    cp: &ControlPlane,
    scope: &Scope,
    input: CreateAliasInput,
) -> Result<AliasConfiguration, LambdaError> {
    let fref = function_ref(scope, &input.function_name)?;
    validate_name(&input.name)?;
    let name = fref.name.clone();
    // AWS names the version it looked for when the function itself is missing.
    let not_found = || {
        LambdaError::function_not_found(&arn::qualified_function_arn(
            scope,
            &name,
            &input.function_version,
        ))
    };
    let weights = input.routing_config.unwrap_or_default();
    let (_, alias) = cp
        .index
        .modify(scope, &name, not_found, |current, draft| {
            let routing = validate_routing(
                scope,
                current,
                &input.function_version,
                &weights.additional_version_weights,
            )?;
            require_version(scope, current, &input.function_version)?;
            if current.doc.aliases.contains_key(&input.name) {
                return Err(LambdaError::conflict(format!(
                    "Alias already exists: {}",
                    arn::qualified_function_arn(scope, &name, &input.name)
                )));
            }
            let alias = AliasRecord {
                name: input.name.clone(),
                function_version: input.function_version.clone(),
                description: input.description.clone().unwrap_or_default(),
                routing,
                revision_id: new_id(),
            };
            draft.doc.aliases.insert(alias.name.clone(), alias.clone());
            Ok(alias)
        })
        .await?;
    Ok(alias.render(scope, &name))
}

pub async fn get(
    cp: &ControlPlane,
    scope: &Scope,
    input: AliasInput,
) -> Result<AliasConfiguration, LambdaError> {
    let fref = function_ref(scope, &input.function_name)?;
    let f = cp
        .index
        .get(scope, &fref.name)
        .ok_or_else(|| LambdaError::function_not_found(&fref.unqualified_arn(scope)))?;
    let alias = f.doc.aliases.get(&input.name).ok_or_else(|| {
        not_found_by_arn(&arn::qualified_function_arn(scope, &fref.name, &input.name))
    })?;
    Ok(alias.render(scope, &fref.name))
}

pub async fn update(
    cp: &ControlPlane,
    scope: &Scope,
    input: UpdateAliasInput,
) -> Result<AliasConfiguration, LambdaError> {
    let fref = function_ref(scope, &input.function_name)?;
    let name = fref.name.clone();
    let not_found_fn = || LambdaError::function_not_found(&arn::function_arn(scope, &name));
    let (_, alias) = cp
        .index
        .modify(scope, &name, not_found_fn, |current, draft| {
            let existing = current.doc.aliases.get(&input.name).ok_or_else(|| {
                not_found(&arn::qualified_function_arn(scope, &name, &input.name))
            })?;
            if input
                .revision_id
                .as_deref()
                .is_some_and(|r| r != existing.revision_id)
            {
                return Err(LambdaError::stale_function_revision());
            }
            let function_version = input
                .function_version
                .clone()
                .unwrap_or_else(|| existing.function_version.clone());
            // A routing config given replaces the old one (an empty one removes it).
            let weights = match &input.routing_config {
                Some(rc) => rc.additional_version_weights.clone(),
                None => existing
                    .routing
                    .iter()
                    .map(|r| (r.version.clone(), r.weight))
                    .collect(),
            };
            let routing = validate_routing(scope, current, &function_version, &weights)?;
            require_version(scope, current, &function_version)?;
            let alias = AliasRecord {
                name: existing.name.clone(),
                function_version,
                description: input
                    .description
                    .clone()
                    .unwrap_or_else(|| existing.description.clone()),
                routing,
                revision_id: new_id(),
            };
            draft.doc.aliases.insert(alias.name.clone(), alias.clone());
            Ok(alias)
        })
        .await?;
    Ok(alias.render(scope, &name))
}

pub async fn delete(
    cp: &ControlPlane,
    scope: &Scope,
    input: AliasInput,
) -> Result<Empty, LambdaError> {
    let fref = function_ref(scope, &input.function_name)?;
    let name = fref.name.clone();
    let not_found_fn = || LambdaError::function_not_found(&arn::function_arn(scope, &name));
    // Deleting an alias that does not exist succeeds, as on AWS; skip the write then.
    let f = cp.index.get(scope, &name).ok_or_else(not_found_fn)?;
    if !f.doc.aliases.contains_key(&input.name) {
        return Ok(Empty {});
    }
    cp.index
        .modify(scope, &name, not_found_fn, |_, draft| {
            draft.doc.aliases.remove(&input.name);
            // The alias's permissions, URL, event-invoke and provisioned configs go with it.
            crate::sub_resource::forget_qualifier(&mut draft.doc, &input.name);
            Ok(())
        })
        .await?;
    Ok(Empty {})
}

fn encode_marker(alias: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(alias)
}

fn decode_marker(marker: &str) -> Result<String, LambdaError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(marker)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .ok_or_else(|| LambdaError::invalid_marker(marker))
}

pub async fn list(
    cp: &ControlPlane,
    scope: &Scope,
    input: ListAliasesInput,
) -> Result<ListAliasesOutput, LambdaError> {
    let fref = function_ref(scope, &input.function_name)?;
    let f = cp
        .index
        .get(scope, &fref.name)
        .ok_or_else(|| LambdaError::function_not_found(&fref.unqualified_arn(scope)))?;
    let after = input.marker.as_deref().map(decode_marker).transpose()?;
    let page = (input.max_items.unwrap_or(MAX_LIST_ITEMS as u32) as usize).clamp(1, MAX_LIST_ITEMS);
    let mut matching = f
        .doc
        .aliases
        .values()
        .filter(|a| after.as_deref().is_none_or(|m| a.name.as_str() > m))
        .filter(|a| {
            input
                .function_version
                .as_deref()
                .is_none_or(|v| a.function_version == v)
        });
    let aliases: Vec<AliasConfiguration> = matching
        .by_ref()
        .take(page)
        .map(|a| a.render(scope, &fref.name))
        .collect();
    let next_marker = match (matching.next(), aliases.last()) {
        (Some(_), Some(last)) => Some(encode_marker(&last.name)),
        _ => None,
    };
    Ok(ListAliasesOutput {
        next_marker,
        aliases,
    })
}

#[cfg(test)]
mod tests;
