//! Function permissions: AddPermission, RemovePermission and GetPolicy on a function, a published
//! version or an alias — the resource-based policy document exactly as AWS builds it, its
//! RevisionId (shared with the function version it guards) and AWS's error messages.

use serde::{Deserialize, Serialize};

use crate::configuration::LATEST;
use crate::error::ErrorCode;
use crate::function_name::{self, FunctionRef};
use crate::state::{Draft, Function};
use crate::sub_resource::Qualifier;
use crate::{ControlPlane, LambdaError, Scope};

/// AWS's limit on a function policy document, in bytes.
pub const MAX_POLICY_BYTES: usize = 20_480;

/// The model's pattern for `StatementId`, as AWS quotes it.
const STATEMENT_ID_PATTERN: &str = "([a-zA-Z0-9-_]+)";

/// One resource policy (of the function, a version or an alias).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Policy {
    pub revision_id: String,
    pub statements: Vec<Statement>,
}

/// A policy statement, its members in AWS's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Statement {
    pub sid: String,
    pub effect: String,
    pub principal: Principal,
    pub action: String,
    pub resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
}

/// `"*"`, `{"Service": ...}` or `{"AWS": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Principal {
    Service {
        #[serde(rename = "Service")]
        service: String,
    },
    Aws {
        #[serde(rename = "AWS")]
        aws: String,
    },
    Any(String),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(
        rename = "StringEquals",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub string_equals: Option<StringEquals>,
    #[serde(rename = "ArnLike", default, skip_serializing_if = "Option::is_none")]
    pub arn_like: Option<ArnLike>,
    #[serde(rename = "Bool", default, skip_serializing_if = "Option::is_none")]
    pub bool_: Option<BoolCondition>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringEquals {
    #[serde(
        rename = "AWS:SourceAccount",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub source_account: Option<String>,
    #[serde(
        rename = "lambda:FunctionUrlAuthType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub function_url_auth_type: Option<String>,
    #[serde(
        rename = "aws:PrincipalOrgID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub principal_org_id: Option<String>,
    #[serde(
        rename = "lambda:EventSourceToken",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub event_source_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArnLike {
    #[serde(rename = "AWS:SourceArn")]
    pub source_arn: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoolCondition {
    #[serde(rename = "lambda:InvokedViaFunctionUrl")]
    pub invoked_via_function_url: String,
}

/// The policy document GetPolicy returns (as a JSON string).
#[derive(Serialize)]
struct PolicyDocument<'a> {
    #[serde(rename = "Version")]
    version: &'static str,
    #[serde(rename = "Id")]
    id: &'static str,
    #[serde(rename = "Statement")]
    statement: &'a [Statement],
}

impl Policy {
    /// The policy document as AWS renders it.
    pub fn document(&self) -> String {
        serde_json::to_string(&PolicyDocument {
            version: "2012-10-17",
            id: "default",
            statement: &self.statements,
        })
        .unwrap_or_default()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddPermissionInput {
    pub function_name: String,
    pub statement_id: String,
    pub action: String,
    pub principal: String,
    pub source_arn: Option<String>,
    pub source_account: Option<String>,
    pub event_source_token: Option<String>,
    pub qualifier: Option<String>,
    pub revision_id: Option<String>,
    #[serde(rename = "PrincipalOrgID")]
    pub principal_org_id: Option<String>,
    pub function_url_auth_type: Option<String>,
    pub invoked_via_function_url: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddPermissionOutput {
    pub statement: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemovePermissionInput {
    pub function_name: String,
    pub statement_id: String,
    pub qualifier: Option<String>,
    pub revision_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Empty {}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetPolicyInput {
    pub function_name: String,
    pub qualifier: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetPolicyOutput {
    pub policy: String,
    pub revision_id: String,
}

/// 404 for a version or alias of an existing function that does not exist, as AWS words it.
pub(crate) fn missing_qualifier(scope: &Scope, fref: &FunctionRef) -> LambdaError {
    match fref.qualifier.as_deref().map(Qualifier::parse) {
        Some(Qualifier::Alias(_)) => {
            LambdaError::not_found(format!("Cannot find alias arn: {}", fref.arn(scope)))
        }
        _ => LambdaError::function_not_found(&fref.arn(scope)),
    }
}

/// Checks the caller's qualifier designates a version or alias of `f`.
pub(crate) fn check_target(
    scope: &Scope,
    fref: &FunctionRef,
    f: &Function,
) -> Result<(), LambdaError> {
    match fref.qualifier.as_deref() {
        None => Ok(()),
        Some(q) if crate::sub_resource::qualifier_exists(f, q) => Ok(()),
        Some(_) => Err(missing_qualifier(scope, fref)),
    }
}

/// The policy key of a qualifier: `""` for the function itself (and `$LATEST`).
pub(crate) fn policy_key(fref: &FunctionRef) -> String {
    match fref.qualifier.as_deref() {
        None | Some(LATEST) => String::new(),
        Some(q) => q.to_string(),
    }
}

/// The current RevisionId of what the policy guards: the version's (`$LATEST` for the function)
/// or the alias's.
fn target_revision(f: &Function, key: &str) -> Option<String> {
    if key.is_empty() {
        return Some(f.doc.latest.revision_id.clone());
    }
    if let Some(a) = f.doc.aliases.get(key) {
        return Some(a.revision_id.clone());
    }
    f.version(key).map(|v| v.revision_id.clone())
}

/// A RevisionId precondition: the policy's current revision or, before the first statement, the
/// revision of the version or alias it guards. AWS words the two failures differently.
/// AWS's limit on a function's whole policy document.
pub(crate) fn check_size(policy: &Policy) -> Result<(), LambdaError> {
    let size = policy.document().len();
    if size > MAX_POLICY_BYTES {
        return Err(LambdaError::new(
            ErrorCode::PolicyLengthExceededException,
            format!(
                "The final policy size ({size}) is bigger than the limit ({MAX_POLICY_BYTES})."
            ),
        ));
    }
    Ok(())
}

pub(crate) fn check_revision(
    given: Option<&str>,
    f: &Function,
    key: &str,
    policy: Option<&Policy>,
) -> Result<(), LambdaError> {
    let Some(given) = given else {
        return Ok(());
    };
    let target = target_revision(f, key);
    match policy {
        Some(p) if p.revision_id == given || target.as_deref() == Some(given) => Ok(()),
        Some(_) => Err(LambdaError::stale_function_revision()),
        None if target.as_deref() == Some(given) => Ok(()),
        None => Err(LambdaError::stale_policy_revision("GetPolicy")),
    }
}

/// Gives the policy a new RevisionId and — as AWS does — the version it guards the same one.
/// A version still being created or updated keeps its revision: its settling is keyed by it.
pub(crate) fn bump_revision(draft: &mut Draft, key: &str) -> String {
    let revision = uuid::Uuid::new_v4().to_string();
    let record = if key.is_empty() {
        Some(&mut draft.doc.latest)
    } else {
        key.parse::<u64>()
            .ok()
            .filter(|n| n.to_string() == key)
            .and_then(|n| draft.version_mut(n))
    };
    if let Some(r) = record {
        if r.status.is_settled() {
            r.revision_id.clone_from(&revision);
        }
    }
    revision
}

fn principal(value: &str) -> Result<Principal, LambdaError> {
    let invalid = || {
        LambdaError::invalid(
            "The provided principal was invalid. Please check the principal and try again.",
        )
    };
    if value == "*" {
        return Ok(Principal::Any("*".into()));
    }
    if value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Principal::Aws {
            aws: crate::arn::account_root(value),
        });
    }
    if let Some(rest) = value.strip_prefix("arn:") {
        // arn:PARTITION:iam::ACCOUNT:... or arn:PARTITION:sts::ACCOUNT:...
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        return match parts.as_slice() {
            [partition, "iam" | "sts", "", account, resource]
                if partition.starts_with("aws")
                    && account.len() == 12
                    && account.bytes().all(|b| b.is_ascii_digit())
                    && !resource.is_empty() =>
            {
                Ok(Principal::Aws { aws: value.into() })
            }
            _ => Err(invalid()),
        };
    }
    let service_host = value
        .strip_suffix(".amazonaws.com")
        .or_else(|| value.strip_suffix(".amazon.com"));
    match service_host {
        Some(host)
            if !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') =>
        {
            Ok(Principal::Service {
                service: value.into(),
            })
        }
        _ => Err(invalid()),
    }
}

fn statement_from(
    scope: &Scope,
    fref: &FunctionRef,
    input: &AddPermissionInput,
) -> Result<Statement, LambdaError> {
    let principal = principal(&input.principal)?;
    let string_equals = StringEquals {
        source_account: input.source_account.clone(),
        function_url_auth_type: input.function_url_auth_type.clone(),
        principal_org_id: input.principal_org_id.clone(),
        event_source_token: input.event_source_token.clone(),
    };
    let condition = Condition {
        string_equals: (string_equals != StringEquals::default()).then_some(string_equals),
        arn_like: input
            .source_arn
            .clone()
            .map(|source_arn| ArnLike { source_arn }),
        bool_: input
            .invoked_via_function_url
            .filter(|b| *b)
            .map(|_| BoolCondition {
                invoked_via_function_url: "true".into(),
            }),
    };
    Ok(Statement {
        sid: input.statement_id.clone(),
        effect: "Allow".into(),
        principal,
        action: input.action.clone(),
        resource: fref.arn(scope),
        condition: (condition != Condition::default()).then_some(condition),
    })
}

fn check_statement_id(sid: &str) -> Result<(), LambdaError> {
    let valid = !sid.is_empty()
        && sid.len() <= 100
        && sid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(LambdaError::validation(format!(
            "1 validation error detected: Value '{sid}' at 'statementId' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: {STATEMENT_ID_PATTERN}"
        )))
    }
}

pub async fn add_permission(
    cp: &ControlPlane,
    scope: &Scope,
    input: AddPermissionInput,
) -> Result<AddPermissionOutput, LambdaError> {
    check_statement_id(&input.statement_id)?;
    let fref = function_name::resolve(scope, &input.function_name, input.qualifier.as_deref())?;
    if fref.qualifier.as_deref() == Some(LATEST) {
        return Err(LambdaError::invalid(
            "We currently do not support adding policies for $LATEST.",
        ));
    }
    let statement = statement_from(scope, &fref, &input)?;
    let rendered =
        serde_json::to_string(&statement).map_err(|e| LambdaError::service(e.to_string()))?;
    let key = policy_key(&fref);
    let not_found = || missing_qualifier(scope, &fref);
    cp.index
        .modify(scope, &fref.name, not_found, |current, draft| {
            check_target(scope, &fref, current)?;
            let existing = current.doc.settings.policies.get(&key);
            check_revision(input.revision_id.as_deref(), current, &key, existing)?;
            let mut policy = existing.cloned().unwrap_or_default();
            if policy.statements.iter().any(|s| s.sid == statement.sid) {
                return Err(LambdaError::statement_exists(&statement.sid));
            }
            policy.statements.push(statement.clone());
            check_size(&policy)?;
            policy.revision_id = bump_revision(draft, &key);
            draft.doc.settings.policies.insert(key.clone(), policy);
            Ok(())
        })
        .await?;
    Ok(AddPermissionOutput {
        statement: rendered,
    })
}

pub async fn remove_permission(
    cp: &ControlPlane,
    scope: &Scope,
    input: RemovePermissionInput,
) -> Result<Empty, LambdaError> {
    let fref = function_name::resolve(scope, &input.function_name, input.qualifier.as_deref())?;
    let key = policy_key(&fref);
    let not_found = || LambdaError::not_found(format!("No policy found for: {}", fref.arn(scope)));
    cp.index
        .modify(scope, &fref.name, not_found, |current, draft| {
            check_target(scope, &fref, current)?;
            let Some(existing) = current.doc.settings.policies.get(&key) else {
                return Err(LambdaError::no_policy());
            };
            check_revision(input.revision_id.as_deref(), current, &key, Some(existing))?;
            let mut policy = existing.clone();
            let before = policy.statements.len();
            policy.statements.retain(|s| s.sid != input.statement_id);
            if policy.statements.len() == before {
                return Err(LambdaError::statement_not_found(&input.statement_id));
            }
            let revision = bump_revision(draft, &key);
            if policy.statements.is_empty() {
                draft.doc.settings.policies.remove(&key);
            } else {
                policy.revision_id = revision;
                draft.doc.settings.policies.insert(key.clone(), policy);
            }
            Ok(())
        })
        .await?;
    Ok(Empty {})
}

pub async fn get_policy(
    cp: &ControlPlane,
    scope: &Scope,
    input: GetPolicyInput,
) -> Result<GetPolicyOutput, LambdaError> {
    let fref = function_name::resolve(scope, &input.function_name, input.qualifier.as_deref())?;
    let f = cp
        .index
        .get(scope, &fref.name)
        .ok_or_else(LambdaError::resource_not_found)?;
    check_target(scope, &fref, &f).map_err(|_| LambdaError::resource_not_found())?;
    let policy = f
        .doc
        .settings
        .policies
        .get(&policy_key(&fref))
        .ok_or_else(LambdaError::resource_not_found)?;
    Ok(GetPolicyOutput {
        policy: policy.document(),
        revision_id: policy.revision_id.clone(),
    })
}

impl ControlPlane {
    /// The resource policy document of a function, version or alias, if it has one (for callers
    /// that evaluate permissions, e.g. cross-account invokes or `AWS_IAM` function URLs).
    pub fn function_policy(
        &self,
        scope: &Scope,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Option<String> {
        let fref = function_name::resolve(scope, function_name, qualifier).ok()?;
        let f = self.index.get(scope, &fref.name)?;
        f.doc
            .settings
            .policies
            .get(&policy_key(&fref))
            .map(Policy::document)
    }
}

#[cfg(test)]
mod tests;
