//! What the data planes are told: a function as [`FunctionState`] (every version's spec, aliases,
//! provisioned concurrency resolved to the versions it runs, event invoke and URL configs), and a
//! scope's unreserved concurrency. [`crate::state::Index`] publishes these on the change feed
//! after every durable change; nothing else reaches the data planes.

use std::sync::Arc;

use flint_spec::{AliasRoute, FunctionState, ProvisionedTarget, Scope};

use crate::state::Function;
use crate::{arn, concurrency, sub_resource};

/// A function as the data planes see it.
pub(crate) fn function_state(scope: &Scope, f: &Function) -> FunctionState {
    let versions = f
        .all_versions()
        .filter_map(|v| Some((v.version.clone(), f.spec(&v.version)?.clone())))
        .collect();
    let aliases = f
        .doc
        .aliases
        .iter()
        .map(|(name, a)| {
            let route = AliasRoute {
                version: a.function_version.clone(),
                additional: a.routing.as_ref().map(|r| (r.version.clone(), r.weight)),
            };
            (name.clone(), route)
        })
        .collect();
    let provisioned = concurrency::live_provisioned(f)
        .filter_map(|(q, p)| {
            let version = sub_resource::target_version(f, q)?;
            Some(ProvisionedTarget {
                qualifier: q.to_string(),
                spec: f.spec(&version)?.clone(),
                requested: p.requested,
            })
        })
        .collect();
    let settings = &f.doc.settings;
    let event_invoke_configs = settings
        .event_invoke_configs
        .iter()
        .map(|(q, c)| {
            let config = flint_spec::EventInvokeConfig {
                maximum_retry_attempts: c.maximum_retry_attempts,
                maximum_event_age_in_seconds: c.maximum_event_age_in_seconds,
                on_success: c.on_success.clone(),
                on_failure: c.on_failure.clone(),
            };
            (q.clone(), config)
        })
        .collect();
    let url_configs = settings
        .url_configs
        .iter()
        .map(|(q, u)| {
            let config = flint_spec::UrlConfig {
                url_id: u.url_id.clone(),
                auth_type: u.auth_type.clone(),
                invoke_mode: u.invoke_mode.clone().unwrap_or_else(|| "BUFFERED".into()),
                cors: u.cors.as_ref().and_then(|c| serde_json::to_value(c).ok()),
            };
            (q.clone(), config)
        })
        .collect();
    let dead_letter_targets = f
        .all_versions()
        .filter_map(|v| Some((v.version.clone(), v.config.dead_letter_target.clone()?)))
        .collect();
    FunctionState {
        scope: scope.clone(),
        name: f.name().to_string(),
        arn: arn::function_arn(scope, f.name()),
        versions,
        aliases,
        reserved_concurrency: f.doc.reserved_concurrency,
        provisioned,
        event_invoke_configs,
        url_configs,
        recursive_loop: settings
            .recursive_loop
            .clone()
            .unwrap_or_else(|| crate::recursion::TERMINATE.to_string()),
        dead_letter_targets,
    }
}

/// A scope's `UnreservedConcurrentExecutions`: the account's limit minus what its functions
/// claim (a reservation, else their provisioned concurrency).
pub(crate) fn unreserved(functions: &[Arc<Function>], account_limit: u32) -> u32 {
    let used: u64 = functions
        .iter()
        .map(|f| u64::from(concurrency::claim(f)))
        .sum();
    u32::try_from(u64::from(account_limit).saturating_sub(used)).unwrap_or(u32::MAX)
}
