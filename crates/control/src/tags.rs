//! Tags: TagResource, UntagResource and ListTags on function ARNs (stored in the function's
//! document) and — through [`ResourceTags`] implementations registered by their owners — on event
//! source mapping and code signing config ARNs. At most 50 tags per resource, as on AWS.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{function_name, ControlPlane, LambdaError, Scope};

/// AWS's limit on tags per resource.
pub const MAX_TAGS: usize = 50;

/// The `TaggableResource` pattern AWS quotes in its validation message.
const RESOURCE_PATTERN: &str = "arn:(aws[a-zA-Z-]*):lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:\\d{12}:(function:[a-zA-Z0-9-_]+(:(\\$LATEST|[a-zA-Z0-9-_]+))?|layer:([a-zA-Z0-9-_]+)|code-signing-config:csc-[a-z0-9]{17}|event-source-mapping:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|capacity-provider:[a-zA-Z0-9-_]+)";

/// Kinds of taggable resources other modules own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaggedKind {
    EventSourceMapping,
    CodeSigningConfig,
}

/// What an owner of taggable resources (event source mappings, code signing configs) offers
/// TagResource/UntagResource/ListTags. Both read and write the resource's whole tag set; the
/// owner answers its own 404 for an unknown ARN.
pub trait ResourceTags: Send + Sync {
    fn tags(&self, scope: &Scope, arn: &str) -> Result<BTreeMap<String, String>, LambdaError>;
    fn set_tags(
        &self,
        scope: &Scope,
        arn: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<(), LambdaError>;
}

impl ControlPlane {
    /// Makes TagResource/UntagResource/ListTags reach the resources of `kind` (until registered,
    /// their ARNs answer 404).
    pub fn register_tagged_resources(&self, kind: TaggedKind, owner: Arc<dyn ResourceTags>) {
        self.sub_resources.taggers.write().insert(kind, owner);
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceInput {
    pub resource: String,
    pub tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagResourceInput {
    pub resource: String,
    pub tag_keys: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsInput {
    pub resource: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsOutput {
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct Empty {}

/// 400 when a resource would carry more than [`MAX_TAGS`] tags (also CreateFunction's `Tags`).
pub fn check_limit(tags: &BTreeMap<String, String>) -> Result<(), LambdaError> {
    if tags.len() > MAX_TAGS {
        return Err(LambdaError::invalid(
            "Number of tags exceeds resource tag limit.",
        ));
    }
    Ok(())
}

/// The resource a `Resource` ARN designates.
enum Target {
    Function(String),
    Other(TaggedKind),
    CapacityProvider,
}

fn invalid_resource(arn: &str) -> LambdaError {
    LambdaError::validation(format!(
        "1 validation error detected: Value '{arn}' at 'resource' failed to satisfy constraint: \
         Member must satisfy regular expression pattern: {RESOURCE_PATTERN}"
    ))
}

fn target(scope: &Scope, arn: &str) -> Result<Target, LambdaError> {
    let parts: Vec<&str> = arn.split(':').collect();
    let [_arn @ "arn", partition, "lambda", _region, _account, kind, rest @ ..] = parts.as_slice()
    else {
        return Err(invalid_resource(arn));
    };
    if !partition.starts_with("aws") {
        return Err(invalid_resource(arn));
    }
    match (*kind, rest) {
        ("function", [_, ..]) if rest.len() <= 2 => {
            let fref = function_name::resolve(scope, arn, None)?;
            if fref.qualifier.is_some() {
                return Err(LambdaError::invalid(
                    "Tags on function aliases and versions are not supported. Please specify a \
                     function ARN.",
                ));
            }
            Ok(Target::Function(fref.name))
        }
        ("event-source-mapping", [_]) => Ok(Target::Other(TaggedKind::EventSourceMapping)),
        ("code-signing-config", [_]) => Ok(Target::Other(TaggedKind::CodeSigningConfig)),
        ("capacity-provider", [_]) => Ok(Target::CapacityProvider),
        _ => Err(invalid_resource(arn)),
    }
}

fn owner(
    cp: &ControlPlane,
    kind: TaggedKind,
    arn: &str,
) -> Result<Arc<dyn ResourceTags>, LambdaError> {
    cp.sub_resources
        .taggers
        .read()
        .get(&kind)
        .cloned()
        .ok_or_else(|| not_found(kind, arn))
}

fn not_found(kind: TaggedKind, arn: &str) -> LambdaError {
    match kind {
        TaggedKind::EventSourceMapping => LambdaError::event_source_mapping_not_found(arn),
        TaggedKind::CodeSigningConfig => LambdaError::code_signing_config_not_found(arn),
    }
}

fn capacity_provider_missing(arn: &str) -> LambdaError {
    LambdaError::not_found(format!("Capacity provider not found: {arn}"))
}

/// Applies `change` to a resource's tags (under the function's lock for functions; a function's
/// `$LATEST` gets a new RevisionId).
async fn change_tags(
    cp: &ControlPlane,
    scope: &Scope,
    arn: &str,
    change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), LambdaError>,
) -> Result<(), LambdaError> {
    match target(scope, arn)? {
        Target::Function(name) => {
            let not_found = || LambdaError::function_not_found(arn);
            cp.index
                .modify(scope, &name, not_found, |_, draft| {
                    change(&mut draft.doc.tags)?;
                    // AWS gives `$LATEST` a new RevisionId on every tag change (recorded).
                    draft.doc.latest.revision_id = uuid::Uuid::new_v4().to_string();
                    Ok(())
                })
                .await?;
            Ok(())
        }
        Target::Other(kind) => {
            let owner = owner(cp, kind, arn)?;
            let mut tags = owner.tags(scope, arn)?;
            change(&mut tags)?;
            owner.set_tags(scope, arn, tags)
        }
        Target::CapacityProvider => Err(capacity_provider_missing(arn)),
    }
}

pub async fn tag_resource(
    cp: &ControlPlane,
    scope: &Scope,
    input: TagResourceInput,
) -> Result<Empty, LambdaError> {
    let new = input.tags.unwrap_or_default();
    // Validate the ARN first: a malformed or qualified ARN is reported before an empty tag set.
    target(scope, &input.resource)?;
    if new.is_empty() {
        return Err(LambdaError::invalid(
            "An error occurred and the request cannot be processed.",
        ));
    }
    change_tags(cp, scope, &input.resource, |tags| {
        let mut merged = tags.clone();
        merged.extend(new);
        check_limit(&merged)?;
        *tags = merged;
        Ok(())
    })
    .await?;
    Ok(Empty {})
}

pub async fn untag_resource(
    cp: &ControlPlane,
    scope: &Scope,
    input: UntagResourceInput,
) -> Result<Empty, LambdaError> {
    let Some(keys) = input.tag_keys else {
        return Err(LambdaError::validation(
            "1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: \
             Member must not be null",
        ));
    };
    change_tags(cp, scope, &input.resource, |tags| {
        for k in &keys {
            tags.remove(k);
        }
        Ok(())
    })
    .await?;
    Ok(Empty {})
}

pub async fn list_tags(
    cp: &ControlPlane,
    scope: &Scope,
    input: ListTagsInput,
) -> Result<ListTagsOutput, LambdaError> {
    let arn = &input.resource;
    let tags = match target(scope, arn)? {
        Target::Function(name) => cp
            .index
            .get(scope, &name)
            .map(|f| f.doc.tags.clone())
            .ok_or_else(|| LambdaError::function_not_found(arn))?,
        Target::Other(kind) => owner(cp, kind, arn)?.tags(scope, arn)?,
        Target::CapacityProvider => return Err(capacity_provider_missing(arn)),
    };
    Ok(ListTagsOutput { tags })
}

#[cfg(test)]
mod tests;
