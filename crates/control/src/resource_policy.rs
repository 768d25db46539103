//! The whole-document resource policy operations (PutResourcePolicy, GetResourcePolicy,
//! DeleteResourcePolicy) on a function, version or alias. They read and write the same policy
//! AddPermission / RemovePermission / GetPolicy edit statement by statement, with the same
//! RevisionId, so either family sees what the other did.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::configuration::LATEST;
use crate::function_name::{self, FunctionRef};
use crate::policy::{self, Empty, Policy, Statement};
use crate::{ControlPlane, LambdaError, Scope};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutResourcePolicyInput {
    pub resource_arn: String,
    pub policy: String,
    pub revision_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourcePolicyInput {
    pub resource_arn: String,
    pub revision_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourcePolicyOutput {
    pub policy: String,
    pub revision_id: String,
}

/// The function (and qualifier) a `ResourceArn` names. Customer-managed runtimes, the other
/// resource the model allows, do not exist in Flint.
fn target(scope: &Scope, resource_arn: &str) -> Result<FunctionRef, LambdaError> {
    let is_function = resource_arn
        .split(':')
        .nth(5)
        .is_some_and(|kind| kind == "function");
    if !is_function {
        return Err(LambdaError::not_found(format!(
            "Flint has no resource policies for {resource_arn}: only functions, versions and \
             aliases have them here"
        )));
    }
    function_name::resolve(scope, resource_arn, None)
}

/// The statements of a policy document, each in the shape Flint evaluates. A statement Flint
/// could not evaluate exactly (an `Action` list, a condition key it does not know, ...) is
/// refused rather than stored as something it would not enforce.
fn statements(document: &str) -> Result<Vec<Statement>, LambdaError> {
    let doc: Value = serde_json::from_str(document).map_err(|e| {
        LambdaError::invalid(format!("The policy is not a valid JSON document: {e}"))
    })?;
    let list = match doc.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => {
            return Err(LambdaError::invalid(
                "The policy must have a Statement: an object or a list of them.",
            ))
        }
    };
    if list.is_empty() {
        return Err(LambdaError::invalid(
            "The policy must have at least one statement.",
        ));
    }
    let mut out: Vec<Statement> = Vec::with_capacity(list.len());
    for s in list {
        let statement: Statement = serde_json::from_value(s).map_err(|e| {
            LambdaError::invalid(format!(
                "Flint does not support this policy statement yet ({e}). Statements need a Sid, \
                 an Effect, a Principal (\"*\", {{\"AWS\": ...}} or {{\"Service\": ...}}), one \
                 Action, one Resource and the conditions AddPermission writes."
            ))
        })?;
        if !matches!(statement.effect.as_str(), "Allow" | "Deny") {
            return Err(LambdaError::invalid(format!(
                "Invalid policy effect: {}",
                statement.effect
            )));
        }
        if out.iter().any(|s| s.sid == statement.sid) {
            return Err(LambdaError::invalid(format!(
                "Statement ids must be unique: {} appears more than once.",
                statement.sid
            )));
        }
        out.push(statement);
    }
    Ok(out)
}

pub async fn put(
    cp: &ControlPlane,
    scope: &Scope,
    input: PutResourcePolicyInput,
) -> Result<ResourcePolicyOutput, LambdaError> {
    let fref = target(scope, &input.resource_arn)?;
    if fref.qualifier.as_deref() == Some(LATEST) {
        return Err(LambdaError::invalid(
            "We currently do not support adding policies for $LATEST.",
        ));
    }
    let statements = statements(&input.policy)?;
    let key = policy::policy_key(&fref);
    let not_found = || policy::missing_qualifier(scope, &fref);
    let mut out = None;
    cp.index
        .modify(scope, &fref.name, not_found, |current, draft| {
            policy::check_target(scope, &fref, current)?;
            let existing = current.doc.settings.policies.get(&key);
            policy::check_revision(input.revision_id.as_deref(), current, &key, existing)?;
            let mut policy = Policy {
                revision_id: String::new(),
                statements: statements.clone(),
            };
            policy::check_size(&policy)?;
            policy.revision_id = policy::bump_revision(draft, &key);
            out = Some(ResourcePolicyOutput {
                policy: policy.document(),
                revision_id: policy.revision_id.clone(),
            });
            draft.doc.settings.policies.insert(key.clone(), policy);
            Ok(())
        })
        .await?;
    out.ok_or_else(|| LambdaError::service("the policy was not written"))
}

pub async fn get(
    cp: &ControlPlane,
    scope: &Scope,
    input: ResourcePolicyInput,
) -> Result<ResourcePolicyOutput, LambdaError> {
    let fref = target(scope, &input.resource_arn)?;
    let f = cp
        .index
        .get(scope, &fref.name)
        .ok_or_else(|| LambdaError::function_not_found(&fref.arn(scope)))?;
    policy::check_target(scope, &fref, &f)?;
    let policy = f
        .doc
        .settings
        .policies
        .get(&policy::policy_key(&fref))
        .ok_or_else(LambdaError::no_policy)?;
    Ok(ResourcePolicyOutput {
        policy: policy.document(),
        revision_id: policy.revision_id.clone(),
    })
}

pub async fn delete(
    cp: &ControlPlane,
    scope: &Scope,
    input: ResourcePolicyInput,
) -> Result<Empty, LambdaError> {
    let fref = target(scope, &input.resource_arn)?;
    let key = policy::policy_key(&fref);
    let not_found = || policy::missing_qualifier(scope, &fref);
    cp.index
        .modify(scope, &fref.name, not_found, |current, draft| {
            policy::check_target(scope, &fref, current)?;
            let Some(existing) = current.doc.settings.policies.get(&key) else {
                return Err(LambdaError::no_policy());
            };
            policy::check_revision(input.revision_id.as_deref(), current, &key, Some(existing))?;
            policy::bump_revision(draft, &key);
            draft.doc.settings.policies.remove(&key);
            Ok(())
        })
        .await?;
    Ok(Empty {})
}

#[cfg(test)]
mod tests;
