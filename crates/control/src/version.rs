//! Function versions: publishing `$LATEST` as an immutable, numbered snapshot of its code and
//! configuration (PublishVersion, with AWS's CodeSha256 / RevisionId preconditions and its reuse of
//! an unchanged version) and listing a function's versions (ListVersionsByFunction).

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::configuration::{now_timestamp, FunctionConfiguration, VersionRecord, View, LATEST};
use crate::function_name;
use crate::lifecycle::Status;
use crate::state::Draft;
use crate::{arn, ControlPlane, LambdaError, Scope};

/// ListVersionsByFunction's default and largest page (AWS returns at most 50 per call).
pub const MAX_LIST_ITEMS: usize = 50;

/// What [`publish_with`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub number: u64,
    /// False when `$LATEST` was unchanged and the newest version was returned instead.
    pub created: bool,
}

/// Publishes the draft's `$LATEST` as a new version and returns its number — or, as AWS does,
/// returns the newest published version when `$LATEST` has not changed since it was published.
/// The new version starts `Pending` (as after UpdateFunctionCode with `Publish`).
pub fn publish(draft: &mut Draft, description: Option<String>) -> u64 {
    publish_with(draft, description, Status::creating()).number
}

/// [`publish`] with the status the new version starts in.
pub fn publish_with(draft: &mut Draft, description: Option<String>, status: Status) -> Published {
    let latest = &draft.doc.latest;
    if let Some((n, newest)) = draft.versions().iter().next_back() {
        // Compare against what `$LATEST` was when published: a Description given to
        // PublishVersion is the version's own and does not make `$LATEST` "changed", but a
        // changed `$LATEST` description does (AWS publishes a new version for it).
        let mut then = newest.config.clone();
        if let Some(d) = &newest.latest_description {
            then.description.clone_from(d);
        }
        if then == latest.config {
            return Published {
                number: *n,
                created: false,
            };
        }
    }
    let n = draft.doc.last_published + 1;
    let mut config = latest.config.clone();
    let mut latest_description = None;
    if let Some(d) = description {
        if d != config.description {
            latest_description = Some(std::mem::replace(&mut config.description, d));
        }
    }
    let record = VersionRecord {
        version: n.to_string(),
        snapshot_id: uuid::Uuid::new_v4().to_string(),
        revision_id: uuid::Uuid::new_v4().to_string(),
        last_modified: now_timestamp(),
        config,
        status,
        latest_description,
    };
    draft.doc.last_published = n;
    draft.put_version(n, record);
    Published {
        number: n,
        created: true,
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PublishVersionInput {
    pub function_name: String,
    pub code_sha256: Option<String>,
    pub description: Option<String>,
    pub revision_id: Option<String>,
    /// `LATEST_PUBLISHED` targets Lambda Managed Instances, which Flint does not have.
    pub publish_to: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListVersionsInput {
    pub function_name: String,
    pub marker: Option<String>,
    pub max_items: Option<u32>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListVersionsOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    pub versions: Vec<FunctionConfiguration>,
}

pub async fn publish_version(
    cp: &ControlPlane,
    scope: &Scope,
    input: PublishVersionInput,
) -> Result<FunctionConfiguration, LambdaError> {
    let fref = function_name::resolve(scope, &input.function_name, None)?;
    if fref.qualifier.as_deref().is_some_and(|q| q != LATEST) {
        return Err(LambdaError::unqualified_only());
    }
    if let Some(target) = input.publish_to.as_deref() {
        return Err(LambdaError::invalid(format!(
            "PublishTo {target} is only supported for functions with a capacity provider."
        )));
    }
    let name = fref.name.clone();
    let function_arn = arn::function_arn(scope, &name);
    let not_found = || LambdaError::function_not_found(&function_arn);
    let (_, shown) = cp
        .index
        .modify(scope, &name, not_found, |current, draft| {
            let latest = &current.doc.latest;
            latest.status.check_updatable(&function_arn)?;
            if input
                .revision_id
                .as_deref()
                .is_some_and(|r| r != latest.revision_id)
            {
                return Err(LambdaError::stale_function_revision());
            }
            if let Some(sha) = input.code_sha256.as_deref() {
                let current_sha = latest.config.code.sha256_base64();
                if sha != current_sha {
                    return Err(LambdaError::invalid(format!(
                        "CodeSHA256 ({sha}) is different from current CodeSHA256 in $LATEST \
                         ({current_sha}). Please try again with the CodeSHA256 in $LATEST."
                    )));
                }
            }
            // `$LATEST` is settled (checked above), so its code is in place: the new version is
            // Active at once, as AWS answers.
            let published = publish_with(draft, input.description.clone(), Status::settled());
            if published.created {
                // Publishing is a change of the function: `$LATEST` gets a new RevisionId.
                draft.doc.latest.revision_id = uuid::Uuid::new_v4().to_string();
            }
            draft
                .versions()
                .get(&published.number)
                .cloned()
                .ok_or_else(|| LambdaError::service("published version missing"))
        })
        .await?;
    let version_arn = arn::qualified_function_arn(scope, &name, &shown.version);
    Ok(shown.render(scope, &name, version_arn, View::Full))
}

/// Position in the listing: `$LATEST` is 0, then versions by number.
fn encode_marker(position: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v:{position}"))
}

fn decode_marker(marker: &str) -> Result<u64, LambdaError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(marker)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| s.strip_prefix("v:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| LambdaError::invalid_marker(marker))
}

pub async fn list_versions(
    cp: &ControlPlane,
    scope: &Scope,
    input: ListVersionsInput,
) -> Result<ListVersionsOutput, LambdaError> {
    let fref = function_name::resolve(scope, &input.function_name, None)?;
    let f = cp
        .index
        .get(scope, &fref.name)
        .ok_or_else(|| LambdaError::function_not_found(&fref.unqualified_arn(scope)))?;
    let after = input.marker.as_deref().map(decode_marker).transpose()?;
    let page = (input.max_items.unwrap_or(MAX_LIST_ITEMS as u32) as usize).clamp(1, MAX_LIST_ITEMS);
    let mut remaining = std::iter::once((0, &f.doc.latest))
        .chain(f.versions.iter().map(|(n, v)| (*n, v)))
        .filter(|(position, _)| after.is_none_or(|a| *position > a));
    let mut versions = Vec::new();
    let mut last = None;
    for (position, v) in remaining.by_ref().take(page) {
        let version_arn = arn::qualified_function_arn(scope, f.name(), &v.version);
        versions.push(v.render(scope, f.name(), version_arn, View::Listing));
        last = Some(position);
    }
    let next_marker = match (remaining.next(), last) {
        (Some(_), Some(position)) => Some(encode_marker(position)),
        _ => None,
    };
    Ok(ListVersionsOutput {
        next_marker,
        versions,
    })
}

#[cfg(test)]
pub(crate) mod tests;
