//! The one table of Lambda's API operations. Every operation of the model is in exactly one list:
//! served by the control plane (the table below: the model's name → its handler, each
//! `handler(cp, scope, typed input) -> typed output`), served by the api crate and the engine
//! (the invokes), or [`UNSUPPORTED`] — answered with an AWS-style error naming the operation. A
//! test in the api crate checks the lists against the embedded model.
//!
//! A new operation is one line here and a handler in the module of its Lambda concept.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::ErrorCode;
use crate::{
    account, alias, code_signing, concurrency, event_invoke_config, event_source_mapping, function,
    layer, policy, recursion, resource_policy, runtime_management, tags, url_config, version,
    ControlPlane, LambdaError, Scope,
};

/// Defines [`HANDLED`] and [`execute`] from one list, so the two cannot disagree.
macro_rules! operations {
    ($($name:literal => $handler:path,)*) => {
        /// Every operation the control plane serves, by the model's name.
        pub const HANDLED: &[&str] = &[$($name),*];

        /// Runs one operation: its typed input and output do the (de)serialising.
        pub(crate) async fn execute(
            cp: &ControlPlane,
            scope: &Scope,
            operation: &str,
            input: Value,
        ) -> Result<Value, LambdaError> {
            match operation {
                $($name => call(input, |i| $handler(cp, scope, i)).await,)*
                op if UNSUPPORTED.contains(&op) => Err(LambdaError::unsupported_operation(op)),
                op => Err(LambdaError::unknown_operation(op)),
            }
        }
    };
}

operations! {
    // Functions (function.rs), versions (version.rs), aliases (alias.rs), the account.
    "CreateFunction" => function::create,
    "GetFunction" => function::get,
    "GetFunctionConfiguration" => function::get_configuration,
    "ListFunctions" => function::list,
    "UpdateFunctionCode" => function::update_code,
    "UpdateFunctionConfiguration" => function::update_configuration,
    "DeleteFunction" => function::delete,
    "PublishVersion" => version::publish_version,
    "ListVersionsByFunction" => version::list_versions,
    "CreateAlias" => alias::create,
    "GetAlias" => alias::get,
    "UpdateAlias" => alias::update,
    "DeleteAlias" => alias::delete,
    "ListAliases" => alias::list,
    "GetAccountSettings" => account::get_account_settings,
    // A function's sub-resources (stored in its document; see sub_resource.rs).
    "AddPermission" => policy::add_permission,
    "RemovePermission" => policy::remove_permission,
    "GetPolicy" => policy::get_policy,
    "PutResourcePolicy" => resource_policy::put,
    "GetResourcePolicy" => resource_policy::get,
    "DeleteResourcePolicy" => resource_policy::delete,
    "TagResource" => tags::tag_resource,
    "UntagResource" => tags::untag_resource,
    "ListTags" => tags::list_tags,
    "PutFunctionConcurrency" => concurrency::put_reserved,
    "GetFunctionConcurrency" => concurrency::get_reserved,
    "DeleteFunctionConcurrency" => concurrency::delete_reserved,
    "PutProvisionedConcurrencyConfig" => concurrency::put_provisioned,
    "GetProvisionedConcurrencyConfig" => concurrency::get_provisioned,
    "DeleteProvisionedConcurrencyConfig" => concurrency::delete_provisioned,
    "ListProvisionedConcurrencyConfigs" => concurrency::list_provisioned,
    "PutFunctionEventInvokeConfig" => event_invoke_config::put,
    "UpdateFunctionEventInvokeConfig" => event_invoke_config::update,
    "GetFunctionEventInvokeConfig" => event_invoke_config::get,
    "DeleteFunctionEventInvokeConfig" => event_invoke_config::delete,
    "ListFunctionEventInvokeConfigs" => event_invoke_config::list,
    "CreateFunctionUrlConfig" => url_config::create,
    "GetFunctionUrlConfig" => url_config::get,
    "UpdateFunctionUrlConfig" => url_config::update,
    "DeleteFunctionUrlConfig" => url_config::delete,
    "ListFunctionUrlConfigs" => url_config::list,
    "GetRuntimeManagementConfig" => runtime_management::get,
    "PutRuntimeManagementConfig" => runtime_management::put,
    "GetFunctionRecursionConfig" => recursion::get,
    "PutFunctionRecursionConfig" => recursion::put,
    // Layers (layer.rs).
    "PublishLayerVersion" => layer::publish_version,
    "GetLayerVersion" => layer::get_version,
    "GetLayerVersionByArn" => layer::get_version_by_arn,
    "ListLayers" => layer::list_layers,
    "ListLayerVersions" => layer::list_versions,
    "DeleteLayerVersion" => layer::delete_version,
    "AddLayerVersionPermission" => layer::add_permission,
    "RemoveLayerVersionPermission" => layer::remove_permission,
    "GetLayerVersionPolicy" => layer::get_policy,
    // Code signing configs and their functions (code_signing.rs).
    "CreateCodeSigningConfig" => code_signing::create,
    "GetCodeSigningConfig" => code_signing::get,
    "UpdateCodeSigningConfig" => code_signing::update,
    "DeleteCodeSigningConfig" => code_signing::delete,
    "ListCodeSigningConfigs" => code_signing::list,
    "PutFunctionCodeSigningConfig" => code_signing::put_function,
    "GetFunctionCodeSigningConfig" => code_signing::get_function,
    "DeleteFunctionCodeSigningConfig" => code_signing::delete_function,
    "ListFunctionsByCodeSigningConfig" => code_signing::list_functions,
    // Event source mappings (event_source_mapping.rs).
    "CreateEventSourceMapping" => event_source_mapping::create,
    "GetEventSourceMapping" => event_source_mapping::get,
    "UpdateEventSourceMapping" => event_source_mapping::update,
    "DeleteEventSourceMapping" => event_source_mapping::delete,
    "ListEventSourceMappings" => event_source_mapping::list,
}

/// Operations the api crate serves itself, through the engine: they never reach [`execute`].
pub const DATA_PLANE: &[&str] = &["Invoke", "InvokeAsync", "InvokeWithResponseStream"];

/// Operations of Lambda's API that Flint does not offer: Lambda Managed Instances (capacity
/// providers and their scaling) and durable executions. They answer
/// [`LambdaError::unsupported_operation`].
pub const UNSUPPORTED: &[&str] = &[
    "CreateCapacityProvider",
    "GetCapacityProvider",
    "UpdateCapacityProvider",
    "DeleteCapacityProvider",
    "ListCapacityProviders",
    "ListFunctionVersionsByCapacityProvider",
    "GetFunctionScalingConfig",
    "PutFunctionScalingConfig",
    "GetDurableExecution",
    "GetDurableExecutionHistory",
    "GetDurableExecutionState",
    "ListDurableExecutionsByFunction",
    "StopDurableExecution",
    "CheckpointDurableExecution",
    "SendDurableExecutionCallbackSuccess",
    "SendDurableExecutionCallbackFailure",
    "SendDurableExecutionCallbackHeartbeat",
    "DeleteDurableExecution",
    "PauseDurableExecution",
    "ResumeDurableExecution",
];

/// Deserialises an operation's input, runs its handler and serialises its output.
async fn call<I, O, F>(input: Value, handler: impl FnOnce(I) -> F) -> Result<Value, LambdaError>
where
    I: DeserializeOwned,
    O: Serialize,
    F: Future<Output = Result<O, LambdaError>>,
{
    let input = if input.is_null() {
        Value::Object(Default::default())
    } else {
        input
    };
    let typed: I = serde_json::from_value(input)
        .map_err(|e| LambdaError::new(ErrorCode::InvalidParameterValueException, e.to_string()))?;
    let output = handler(typed).await?;
    serde_json::to_value(output).map_err(|e| LambdaError::service(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::json;

    use super::*;
    use crate::sub_resource::test_support::{exec, fixture};

    #[test]
    fn every_operation_is_in_exactly_one_list() {
        let all: Vec<&str> = HANDLED
            .iter()
            .chain(DATA_PLANE)
            .chain(UNSUPPORTED)
            .copied()
            .collect();
        let unique: HashSet<&str> = all.iter().copied().collect();
        assert_eq!(unique.len(), all.len(), "an operation is listed twice");
    }

    #[tokio::test]
    async fn an_unsupported_operation_is_named_in_a_client_error() {
        let fx = fixture();
        let e = exec(&fx.cp, "GetDurableExecution", json!({}))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownOperationException);
        assert_eq!(e.code.status(), 400);
        assert_eq!(
            e.message,
            "Flint does not support the GetDurableExecution operation yet"
        );
    }

    #[tokio::test]
    async fn an_operation_no_model_has_is_unknown() {
        let fx = fixture();
        let e = exec(&fx.cp, "FrobnicateFunction", json!({}))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownOperationException);
        assert_eq!(e.message, "Unknown operation FrobnicateFunction");
    }

    #[tokio::test]
    async fn inputs_that_do_not_fit_the_operation_are_invalid_parameters() {
        let fx = fixture();
        let e = exec(&fx.cp, "GetLayerVersion", json!({"LayerName": 5}))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterValueException);
    }
}
