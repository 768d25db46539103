//! Concurrency settings: reserved concurrency (Put/Get/DeleteFunctionConcurrency) and provisioned
//! concurrency (Put/Get/Delete/ListProvisionedConcurrencyConfigs), checked against the account's
//! limit the way AWS checks them, and the account-wide `UnreservedConcurrentExecutions`.
//!
//! Reserved concurrency lives in `FunctionDoc.reserved_concurrency` and reaches the engine through
//! `FunctionSpec.reserved_concurrency`: a change yields a new spec `Arc` with the same
//! `snapshot_id`, so warm environments are kept. Provisioned configs reach the engine in the
//! function's published state (`publish.rs`); a config's `Status` and counts come from where
//! those environments stand (the engine's [`flint_spec::ProvisionedReport`], followed through
//! [`ControlPlane::follow_provisioned_report`]), or, with no engine attached, from the
//! create-settle delay.

use serde::{Deserialize, Serialize};

use crate::configuration::LATEST;
use crate::error::ErrorCode;
use crate::function_name::{self, FunctionRef};
use crate::policy::missing_qualifier;
use crate::state::Function;
use crate::sub_resource::{self, Qualifier};
use crate::{arn, ControlPlane, LambdaError, Scope};

/// The least unreserved concurrency AWS leaves an account (capped by the account's limit).
pub const MIN_UNRESERVED: u32 = 100;

/// `ProvisionedConcurrencyStatusEnum`.
pub const STATUS_IN_PROGRESS: &str = "IN_PROGRESS";
pub const STATUS_READY: &str = "READY";
pub const STATUS_FAILED: &str = "FAILED";
/// `StatusReason` of a config whose function's init keeps failing (recorded against AWS).
pub const REASON_INIT_FAILURE: &str = "FUNCTION_ERROR_INIT_FAILURE";

use flint_spec::ProvisionedAllocation as ProvisionedProgress;

/// A provisioned concurrency config of a published version or an alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProvisionedConfig {
    pub requested: u32,
    /// `LastModified` as AWS renders it (`2024-05-01T12:00:00.000+0000`).
    pub last_modified: String,
    /// Until when (epoch milliseconds) the config is IN_PROGRESS with nothing available, as AWS
    /// answers right after a Put; then, with no engine attached, it counts as allocated, and
    /// with one the engine's environments say.
    pub ready_at_ms: i64,
}

impl ProvisionedConfig {
    pub fn is_ready(&self) -> bool {
        chrono::Utc::now().timestamp_millis() >= self.ready_at_ms
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutReservedInput {
    pub function_name: String,
    pub reserved_concurrent_executions: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionInput {
    pub function_name: String,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReservedOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved_concurrent_executions: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct Empty {}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutProvisionedInput {
    pub function_name: String,
    pub qualifier: Option<String>,
    pub provisioned_concurrent_executions: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProvisionedInput {
    pub function_name: String,
    pub qualifier: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListProvisionedInput {
    pub function_name: String,
    pub marker: Option<String>,
    pub max_items: Option<u32>,
}

/// `GetProvisionedConcurrencyConfigResponse` and the items of the list (with `FunctionArn`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProvisionedOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_arn: Option<String>,
    pub requested_provisioned_concurrent_executions: u32,
    pub available_provisioned_concurrent_executions: u32,
    pub allocated_provisioned_concurrent_executions: u32,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    pub last_modified: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListProvisionedOutput {
    pub provisioned_concurrency_configs: Vec<ProvisionedOutput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

/// Provisioned configs whose version or alias still exists.
pub(crate) fn live_provisioned(f: &Function) -> impl Iterator<Item = (&str, &ProvisionedConfig)> {
    f.doc
        .settings
        .provisioned
        .iter()
        .filter(|(q, _)| sub_resource::qualifier_exists(f, q))
        .map(|(q, p)| (q.as_str(), p))
}

fn provisioned_total(f: &Function) -> u32 {
    live_provisioned(f).map(|(_, p)| p.requested).sum()
}

/// What a function takes from the account's pool: its reservation, else its provisioned
/// concurrency.
pub(crate) fn claim(f: &Function) -> u32 {
    f.doc
        .reserved_concurrency
        .unwrap_or_else(|| provisioned_total(f))
}

/// The sum of the claims of the scope's functions other than `except`.
fn claims_of_others(cp: &ControlPlane, scope: &Scope, except: &str) -> u64 {
    cp.index
        .list(scope)
        .iter()
        .filter(|f| f.name() != except)
        .map(|f| u64::from(claim(f)))
        .sum()
}

fn account_limit(cp: &ControlPlane) -> u64 {
    u64::from(cp.options.read().account_concurrency)
}

fn min_unreserved(limit: u64) -> u64 {
    u64::from(MIN_UNRESERVED).min(limit)
}

/// GetAccountSettings' `UnreservedConcurrentExecutions` for a scope.
pub fn unreserved(cp: &ControlPlane, scope: &Scope) -> u32 {
    let limit = cp.options.read().account_concurrency;
    crate::publish::unreserved(&cp.index.list(scope), limit)
}

fn unqualified(scope: &Scope, function_name: &str) -> Result<FunctionRef, LambdaError> {
    let fref = function_name::resolve(scope, function_name, None)?;
    if fref.qualifier.is_some() {
        return Err(LambdaError::unqualified_only());
    }
    Ok(fref)
}

pub async fn put_reserved(
    cp: &ControlPlane,
    scope: &Scope,
    input: PutReservedInput,
) -> Result<ReservedOutput, LambdaError> {
    let fref = unqualified(scope, &input.function_name)?;
    let n = input.reserved_concurrent_executions;
    let not_found =
        || LambdaError::function_not_found(&arn::qualified_function_arn(scope, &fref.name, LATEST));
    let _account = cp.sub_resources.concurrency.lock().await;
    cp.index
        .modify(scope, &fref.name, not_found, |current, draft| {
            let provisioned = provisioned_total(current);
            if n < provisioned {
                return Err(LambdaError::invalid(format!(
                    " ReservedConcurrentExecutions  {n} should not be lower than function's \
                     total provisioned concurrency [{provisioned}]."
                ))
                .untyped());
            }
            let limit = account_limit(cp);
            let others = claims_of_others(cp, scope, &fref.name);
            let min = min_unreserved(limit);
            if limit < others + u64::from(n) + min {
                return Err(LambdaError::invalid(format!(
                    "Specified ReservedConcurrentExecutions for function decreases account's \
                     UnreservedConcurrentExecution below its minimum value of [{min}]."
                ))
                .untyped());
            }
            draft.doc.reserved_concurrency = Some(n);
            Ok(())
        })
        .await?;
    Ok(ReservedOutput {
        reserved_concurrent_executions: Some(n),
    })
}

pub async fn get_reserved(
    cp: &ControlPlane,
    scope: &Scope,
    input: FunctionInput,
) -> Result<ReservedOutput, LambdaError> {
    let fref = unqualified(scope, &input.function_name)?;
    let f = cp
        .index
        .get(scope, &fref.name)
        .ok_or_else(|| LambdaError::function_not_found(&fref.unqualified_arn(scope)))?;
    Ok(ReservedOutput {
        reserved_concurrent_executions: f.doc.reserved_concurrency,
    })
}

pub async fn delete_reserved(
    cp: &ControlPlane,
    scope: &Scope,
    input: FunctionInput,
) -> Result<Empty, LambdaError> {
    let fref = unqualified(scope, &input.function_name)?;
    let not_found = || LambdaError::function_not_found(&fref.unqualified_arn(scope));
    let _account = cp.sub_resources.concurrency.lock().await;
    cp.index
        .modify(scope, &fref.name, not_found, |_, draft| {
            draft.doc.reserved_concurrency = None;
            Ok(())
        })
        .await?;
    Ok(Empty {})
}

fn must_be_published() -> LambdaError {
    LambdaError::invalid("The function resource provided must be an alias or a published version.")
}

/// The qualifier of a provisioned-concurrency request; `$LATEST` (or none) is refused with `latest`.
fn provisioned_ref(
    scope: &Scope,
    function_name: &str,
    qualifier: Option<&str>,
    latest: fn() -> LambdaError,
) -> Result<(FunctionRef, String), LambdaError> {
    let fref = function_name::resolve(scope, function_name, qualifier)?;
    match fref.qualifier.clone() {
        None => Err(latest()),
        Some(q) if q == LATEST => Err(latest()),
        Some(q) => Ok((fref, q)),
    }
}

/// Checks the version or alias exists; returns the published version it designates.
fn provisioned_target(
    scope: &Scope,
    fref: &FunctionRef,
    f: &Function,
    q: &str,
) -> Result<String, LambdaError> {
    let version =
        sub_resource::target_version(f, q).ok_or_else(|| missing_qualifier(scope, fref))?;
    if version == LATEST {
        return Err(LambdaError::invalid(
            "Provisioned Concurrency Configs cannot be applied to unpublished function versions.",
        ));
    }
    Ok(version)
}

/// Status, available and allocated counts, and the reason of a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Allocation {
    status: &'static str,
    available: u32,
    allocated: u32,
    reason: Option<&'static str>,
}

/// Where the config `p` (one of those running the snapshot, which together ask for
/// `snapshot_total`) stands given the engine's `progress` for that snapshot.
fn allocation(
    p: &ProvisionedConfig,
    snapshot_total: u32,
    progress: Option<&ProvisionedProgress>,
) -> Allocation {
    let in_progress = |available| Allocation {
        status: STATUS_IN_PROGRESS,
        available,
        allocated: 0,
        reason: None,
    };
    let Some(progress) = progress else {
        return in_progress(0);
    };
    let available = progress.ready.min(p.requested);
    if progress.requested != snapshot_total {
        // The engine has not been told of the latest change yet: its state is of another count.
        return in_progress(available);
    }
    if progress.allocated {
        // Replacing an environment that died later does not make the config IN_PROGRESS again.
        return Allocation {
            status: STATUS_READY,
            available,
            allocated: p.requested,
            reason: None,
        };
    }
    if progress.init_failure.is_some() {
        return Allocation {
            status: STATUS_FAILED,
            available,
            allocated: 0,
            reason: Some(REASON_INIT_FAILURE),
        };
    }
    in_progress(available)
}

/// The snapshot the config on `q` runs now and what all the configs running it ask for.
fn snapshot_of(f: &Function, q: &str) -> Option<(String, u32)> {
    let snapshot = |q: &str| {
        let version = sub_resource::target_version(f, q)?;
        f.spec(&version).map(|s| s.snapshot_id.clone())
    };
    let id = snapshot(q)?;
    let total = live_provisioned(f)
        .filter(|(other, _)| snapshot(other).as_deref() == Some(id.as_str()))
        .map(|(_, p)| p.requested)
        .fold(0u32, u32::saturating_add);
    Some((id, total))
}

fn render(
    cp: &ControlPlane,
    f: &Function,
    q: &str,
    p: &ProvisionedConfig,
    function_arn: Option<String>,
) -> ProvisionedOutput {
    let report = cp.provisioned_report.read().clone();
    let a = match report {
        // Within the settle delay the config is IN_PROGRESS with nothing available whatever the
        // environments' pace, as AWS answers a Get right after the Put (recorded by LocalStack's
        // test_provisioned_concurrency: even a fast start is not READY at once).
        _ if !p.is_ready() => allocation(p, p.requested, None),
        Some(report) => match snapshot_of(f, q) {
            Some((id, total)) => allocation(p, total, report.borrow().get(&id)),
            None => allocation(p, p.requested, None),
        },
        // No engine attached: the settle delay stands in for the environments' start.
        None => Allocation {
            status: STATUS_READY,
            available: p.requested,
            allocated: p.requested,
            reason: None,
        },
    };
    ProvisionedOutput {
        function_arn,
        requested_provisioned_concurrent_executions: p.requested,
        available_provisioned_concurrent_executions: a.available,
        allocated_provisioned_concurrent_executions: a.allocated,
        status: a.status.into(),
        status_reason: a.reason.map(str::to_string),
        last_modified: p.last_modified.clone(),
    }
}

/// PutProvisionedConcurrencyConfig's answer: the engine has not been told yet (as on AWS, a
/// Put answers IN_PROGRESS with nothing available).
fn render_accepted(p: &ProvisionedConfig) -> ProvisionedOutput {
    let a = allocation(p, p.requested, None);
    ProvisionedOutput {
        function_arn: None,
        requested_provisioned_concurrent_executions: p.requested,
        available_provisioned_concurrent_executions: a.available,
        allocated_provisioned_concurrent_executions: a.allocated,
        status: a.status.into(),
        status_reason: None,
        last_modified: p.last_modified.clone(),
    }
}

pub async fn put_provisioned(
    cp: &ControlPlane,
    scope: &Scope,
    input: PutProvisionedInput,
) -> Result<ProvisionedOutput, LambdaError> {
    let n = input.provisioned_concurrent_executions;
    if n == 0 {
        return Err(LambdaError::validation(
            "1 validation error detected: Value '0' at 'provisionedConcurrentExecutions' failed \
             to satisfy constraint: Member must have value greater than or equal to 1",
        ));
    }
    let (fref, q) = provisioned_ref(
        scope,
        &input.function_name,
        input.qualifier.as_deref(),
        || {
            LambdaError::invalid(
                "Provisioned Concurrency Configs cannot be applied to unpublished function \
                 versions.",
            )
        },
    )?;
    let settle = cp.options.read().create_settle;
    let _account = cp.sub_resources.concurrency.lock().await;
    let not_found = || missing_qualifier(scope, &fref);
    let (_, config) = cp
        .index
        .modify(scope, &fref.name, not_found, |current, draft| {
            let version = provisioned_target(scope, &fref, current, &q)?;
            let configs = &current.doc.settings.provisioned;
            match Qualifier::parse(&q) {
                Qualifier::Alias(_) if configs.contains_key(&version) => {
                    return Err(LambdaError::conflict(
                        "Alias can't be used for Provisioned Concurrency configuration on an \
                         already Provisioned version",
                    ));
                }
                Qualifier::Version(_) => {
                    let aliased = live_provisioned(current).any(|(other, _)| {
                        matches!(Qualifier::parse(other), Qualifier::Alias(_))
                            && sub_resource::target_version(current, other).as_deref()
                                == Some(version.as_str())
                    });
                    if aliased {
                        return Err(LambdaError::conflict(
                            "Version is pointed by a Provisioned Concurrency alias",
                        ));
                    }
                }
                _ => {}
            }
            // This function's provisioned total once `q` has `n` (replacing its old value).
            let previous = u64::from(configs.get(&q).map_or(0, |p| p.requested));
            let total =
                u64::from(provisioned_total(current)).saturating_sub(previous) + u64::from(n);
            let limit = account_limit(cp);
            match current.doc.reserved_concurrency {
                Some(reserved) if total > u64::from(reserved) => {
                    return Err(LambdaError::invalid(
                        "Requested Provisioned Concurrency should not be greater than the \
                         reservedConcurrentExecution for function",
                    ));
                }
                Some(_) => {}
                None => {
                    let others = claims_of_others(cp, scope, &fref.name);
                    let available = limit.saturating_sub(others + (total - u64::from(n)));
                    if u64::from(n) > available {
                        return Err(LambdaError::invalid(format!(
                            "Specified ConcurrentExecutions for function is greater than \
                             account's unreserved concurrency [{available}]."
                        ))
                        .untyped());
                    }
                    let min = min_unreserved(limit);
                    if limit < others + total + min {
                        return Err(LambdaError::invalid(format!(
                            "Specified ConcurrentExecutions for function decreases account's \
                             UnreservedConcurrentExecution below its minimum value of [{min}]."
                        ))
                        .untyped());
                    }
                }
            }
            let settle_ms = i64::try_from(settle.as_millis()).unwrap_or(i64::MAX);
            let config = ProvisionedConfig {
                requested: n,
                last_modified: crate::configuration::now_timestamp(),
                ready_at_ms: chrono::Utc::now()
                    .timestamp_millis()
                    .saturating_add(settle_ms.max(1)),
            };
            draft
                .doc
                .settings
                .provisioned
                .insert(q.clone(), config.clone());
            Ok(config)
        })
        .await?;
    Ok(render_accepted(&config))
}

pub async fn get_provisioned(
    cp: &ControlPlane,
    scope: &Scope,
    input: ProvisionedInput,
) -> Result<ProvisionedOutput, LambdaError> {
    let (fref, q) = provisioned_ref(
        scope,
        &input.function_name,
        input.qualifier.as_deref(),
        must_be_published,
    )?;
    let f = cp
        .index
        .get(scope, &fref.name)
        .ok_or_else(|| missing_qualifier(scope, &fref))?;
    if !sub_resource::qualifier_exists(&f, &q) {
        return Err(missing_qualifier(scope, &fref));
    }
    let config = f.doc.settings.provisioned.get(&q).ok_or_else(|| {
        LambdaError::new(
            ErrorCode::ProvisionedConcurrencyConfigNotFoundException,
            "No Provisioned Concurrency Config found for this function",
        )
    })?;
    Ok(render(cp, &f, &q, config, None))
}

pub async fn delete_provisioned(
    cp: &ControlPlane,
    scope: &Scope,
    input: ProvisionedInput,
) -> Result<Empty, LambdaError> {
    let (fref, q) = provisioned_ref(
        scope,
        &input.function_name,
        input.qualifier.as_deref(),
        must_be_published,
    )?;
    let not_found = || missing_qualifier(scope, &fref);
    let _account = cp.sub_resources.concurrency.lock().await;
    cp.index
        .modify(scope, &fref.name, not_found, |current, draft| {
            if !sub_resource::qualifier_exists(current, &q) {
                return Err(missing_qualifier(scope, &fref));
            }
            // Deleting a config that does not exist succeeds, as on AWS.
            draft.doc.settings.provisioned.remove(&q);
            Ok(())
        })
        .await?;
    Ok(Empty {})
}

pub async fn list_provisioned(
    cp: &ControlPlane,
    scope: &Scope,
    input: ListProvisionedInput,
) -> Result<ListProvisionedOutput, LambdaError> {
    let fref = function_name::resolve(scope, &input.function_name, None)?;
    let f = cp
        .index
        .get(scope, &fref.name)
        .ok_or_else(|| LambdaError::function_not_found(&fref.unqualified_arn(scope)))?;
    let items: Vec<(String, ProvisionedOutput)> = live_provisioned(&f)
        .map(|(q, p)| {
            let arn = arn::qualified_function_arn(scope, f.name(), q);
            (
                sub_resource::listing_key(q),
                render(cp, &f, q, p, Some(arn)),
            )
        })
        .collect();
    let (configs, next_marker) =
        sub_resource::page(items, input.marker.as_deref(), input.max_items)?;
    Ok(ListProvisionedOutput {
        provisioned_concurrency_configs: configs,
        next_marker,
    })
}

#[cfg(test)]
mod tests;
