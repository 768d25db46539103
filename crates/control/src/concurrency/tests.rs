//! Reserved and provisioned concurrency end to end through `ControlPlane::execute`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::sub_resource::test_support::*;
use crate::ErrorCode;

async fn unreserved(cp: &crate::ControlPlane) -> Value {
    exec(cp, "GetAccountSettings", json!({})).await.unwrap()["AccountLimit"]
        ["UnreservedConcurrentExecutions"]
        .clone()
}

#[tokio::test]
async fn reserved_concurrency_lifecycle_reaches_the_function_and_the_account() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    let (spec_before, _) = fx.cp.resolve_invoke(&scope(), "f", None).unwrap();
    let put = exec(
        &fx.cp,
        "PutFunctionConcurrency",
        json!({"FunctionName": "f", "ReservedConcurrentExecutions": 0}),
    )
    .await
    .unwrap();
    assert_eq!(put, json!({"ReservedConcurrentExecutions": 0}));
    exec(
        &fx.cp,
        "PutFunctionConcurrency",
        json!({"FunctionName": "f", "ReservedConcurrentExecutions": 5}),
    )
    .await
    .unwrap();
    let get = exec(
        &fx.cp,
        "GetFunctionConcurrency",
        json!({"FunctionName": "f"}),
    )
    .await
    .unwrap();
    assert_eq!(get, json!({"ReservedConcurrentExecutions": 5}));
    let f = exec(&fx.cp, "GetFunction", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    assert_eq!(f["Concurrency"], json!({"ReservedConcurrentExecutions": 5}));
    assert_eq!(unreserved(&fx.cp).await, 995);
    // The engine sees the new limit in a new spec of the same snapshot (warm environments stay).
    let (spec_after, _) = fx.cp.resolve_invoke(&scope(), "f", None).unwrap();
    assert_eq!(spec_after.reserved_concurrency, Some(5));
    assert_eq!(spec_after.snapshot_id, spec_before.snapshot_id);

    let cp = reopen(&fx);
    let get = exec(&cp, "GetFunctionConcurrency", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    assert_eq!(get, json!({"ReservedConcurrentExecutions": 5}));
    exec(
        &cp,
        "DeleteFunctionConcurrency",
        json!({"FunctionName": "f"}),
    )
    .await
    .unwrap();
    let get = exec(&cp, "GetFunctionConcurrency", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    assert_eq!(get, json!({}));
    assert_eq!(unreserved(&cp).await, 1000);
    let (spec, _) = cp.resolve_invoke(&scope(), "f", None).unwrap();
    assert_eq!(spec.reserved_concurrency, None);
}

#[tokio::test]
async fn reserved_concurrency_errors_match_aws() {
    let fx = fixture();
    let e = exec(
        &fx.cp,
        "PutFunctionConcurrency",
        json!({"FunctionName": "doesnotexist", "ReservedConcurrentExecutions": 1}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message,
        format!("Function not found: {}:$LATEST", fn_arn("doesnotexist"))
    );
    let e = exec(
        &fx.cp,
        "GetFunctionConcurrency",
        json!({"FunctionName": "doesnotexist"}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message,
        format!("Function not found: {}", fn_arn("doesnotexist"))
    );
    create_function(&fx.cp, "f").await;
    create_function(&fx.cp, "g").await;
    let e = exec(
        &fx.cp,
        "PutFunctionConcurrency",
        json!({"FunctionName": format!("{}:$LATEST", fn_arn("f")), "ReservedConcurrentExecutions": 0}),
    )
    .await
    .unwrap_err();
    assert!(e
        .message
        .starts_with("This operation is permitted on Lambda functions only."));
    let below = "Specified ReservedConcurrentExecutions for function decreases account's \
                 UnreservedConcurrentExecution below its minimum value of [100].";
    for n in [1001, 901] {
        let e = exec(
            &fx.cp,
            "PutFunctionConcurrency",
            json!({"FunctionName": "f", "ReservedConcurrentExecutions": n}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.message, below);
    }
    exec(
        &fx.cp,
        "PutFunctionConcurrency",
        json!({"FunctionName": "f", "ReservedConcurrentExecutions": 900}),
    )
    .await
    .unwrap();
    let e = exec(
        &fx.cp,
        "PutFunctionConcurrency",
        json!({"FunctionName": "g", "ReservedConcurrentExecutions": 1}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.message, below);
    assert_eq!(unreserved(&fx.cp).await, 100);
}

fn not_found_config() -> &'static str {
    "No Provisioned Concurrency Config found for this function"
}

#[tokio::test]
async fn provisioned_concurrency_errors_match_aws() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    let v = publish(&fx.cp, "f").await;
    let get = |q: &str, name: &str| {
        exec(
            &fx.cp,
            "GetProvisionedConcurrencyConfig",
            json!({"FunctionName": name, "Qualifier": q}),
        )
    };
    let e = get(&v, "f").await.unwrap_err();
    assert_eq!(
        e.code,
        ErrorCode::ProvisionedConcurrencyConfigNotFoundException
    );
    assert_eq!(e.message, not_found_config());
    let e = get("noalias", "doesnotexist").await.unwrap_err();
    assert_eq!(
        e.message,
        format!("Cannot find alias arn: {}:noalias", fn_arn("doesnotexist"))
    );
    let e = get("noalias", "f").await.unwrap_err();
    assert_eq!(
        e.message,
        format!("Cannot find alias arn: {}:noalias", fn_arn("f"))
    );
    let e = get("10", "f").await.unwrap_err();
    assert_eq!(e.message, format!("Function not found: {}:10", fn_arn("f")));
    let e = get("$LATEST", "f").await.unwrap_err();
    assert_eq!(
        e.message,
        "The function resource provided must be an alias or a published version."
    );
    let list = exec(
        &fx.cp,
        "ListProvisionedConcurrencyConfigs",
        json!({"FunctionName": "f"}),
    )
    .await
    .unwrap();
    assert_eq!(list, json!({"ProvisionedConcurrencyConfigs": []}));
    let e = exec(
        &fx.cp,
        "ListProvisionedConcurrencyConfigs",
        json!({"FunctionName": "doesnotexist"}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message,
        format!("Function not found: {}", fn_arn("doesnotexist"))
    );

    let delete = |q: &str, name: &str| {
        exec(
            &fx.cp,
            "DeleteProvisionedConcurrencyConfig",
            json!({"FunctionName": name, "Qualifier": q}),
        )
    };
    let e = delete("1", "doesnotexist").await.unwrap_err();
    assert_eq!(
        e.message,
        format!("Function not found: {}:1", fn_arn("doesnotexist"))
    );
    let e = delete("10", "f").await.unwrap_err();
    assert_eq!(e.message, format!("Function not found: {}:10", fn_arn("f")));
    let e = delete("$LATEST", "f").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParameterValueException);
    // A config that does not exist deletes fine.
    assert_eq!(delete(&v, "f").await.unwrap(), json!({}));

    let put = |q: &str, name: &str, n: u32| {
        exec(
            &fx.cp,
            "PutProvisionedConcurrencyConfig",
            json!({"FunctionName": name, "Qualifier": q, "ProvisionedConcurrentExecutions": n}),
        )
    };
    let e = put(&v, "f", 0).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationException);
    let e = put("noalias", "doesnotexist", 1).await.unwrap_err();
    assert_eq!(
        e.message,
        format!("Cannot find alias arn: {}:noalias", fn_arn("doesnotexist"))
    );
    let e = put("1", "doesnotexist", 1).await.unwrap_err();
    assert_eq!(
        e.message,
        format!("Function not found: {}:1", fn_arn("doesnotexist"))
    );
    let e = put("10", "f", 1).await.unwrap_err();
    assert_eq!(e.message, format!("Function not found: {}:10", fn_arn("f")));
    let e = put("$LATEST", "f", 1).await.unwrap_err();
    assert_eq!(
        e.message,
        "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
    );
}

#[tokio::test]
async fn provisioned_configs_become_ready_conflict_across_alias_and_version_and_persist() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    let v = publish(&fx.cp, "f").await;
    create_alias(&fx.cp, "f", "live", &v).await;
    let put = |q: &str, n: u32| {
        exec(
            &fx.cp,
            "PutProvisionedConcurrencyConfig",
            json!({"FunctionName": "f", "Qualifier": q, "ProvisionedConcurrentExecutions": n}),
        )
    };
    let out = put(&v, 1).await.unwrap();
    assert_eq!(out["Status"], "IN_PROGRESS");
    assert_eq!(out["RequestedProvisionedConcurrentExecutions"], 1);
    assert_eq!(out["AvailableProvisionedConcurrentExecutions"], 0);
    assert_eq!(out["AllocatedProvisionedConcurrentExecutions"], 0);
    assert!(out["LastModified"].as_str().unwrap().ends_with("+0000"));
    let e = put("live", 1).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceConflictException);
    assert_eq!(
        e.message,
        "Alias can't be used for Provisioned Concurrency configuration on an already Provisioned \
         version"
    );
    tokio::time::sleep(Duration::from_millis(40)).await;
    let got = exec(
        &fx.cp,
        "GetProvisionedConcurrencyConfig",
        json!({"FunctionName": "f", "Qualifier": v}),
    )
    .await
    .unwrap();
    assert_eq!(got["Status"], "READY");
    assert_eq!(got["AvailableProvisionedConcurrentExecutions"], 1);
    assert_eq!(got["AllocatedProvisionedConcurrentExecutions"], 1);
    exec(
        &fx.cp,
        "DeleteProvisionedConcurrencyConfig",
        json!({"FunctionName": "f", "Qualifier": v}),
    )
    .await
    .unwrap();
    let e = exec(
        &fx.cp,
        "GetProvisionedConcurrencyConfig",
        json!({"FunctionName": "f", "Qualifier": v}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.message, not_found_config());

    put("live", 3).await.unwrap();
    let e = put(&v, 1).await.unwrap_err();
    assert_eq!(
        e.message,
        "Version is pointed by a Provisioned Concurrency alias"
    );
    let targets = fx.cp.provisioned_concurrency();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].qualifier, "live");
    assert_eq!(targets[0].requested, 3);
    assert_eq!(targets[0].spec.version, v);
    assert_eq!(unreserved(&fx.cp).await, 997);

    tokio::time::sleep(Duration::from_millis(40)).await;
    let cp = reopen(&fx);
    let list = exec(
        &cp,
        "ListProvisionedConcurrencyConfigs",
        json!({"FunctionName": "f"}),
    )
    .await
    .unwrap();
    let configs = list["ProvisionedConcurrencyConfigs"].as_array().unwrap();
    assert_eq!(configs.len(), 1);
    assert_eq!(configs[0]["FunctionArn"], format!("{}:live", fn_arn("f")));
    assert_eq!(configs[0]["Status"], "READY");
    assert_eq!(cp.provisioned_concurrency().len(), 1);

    // Deleting the alias takes its config along.
    exec(
        &cp,
        "DeleteAlias",
        json!({"FunctionName": "f", "Name": "live"}),
    )
    .await
    .unwrap();
    let list = exec(
        &cp,
        "ListProvisionedConcurrencyConfigs",
        json!({"FunctionName": "f"}),
    )
    .await
    .unwrap();
    assert_eq!(list, json!({"ProvisionedConcurrencyConfigs": []}));
    assert!(cp.provisioned_concurrency().is_empty());
    let e = exec(
        &cp,
        "GetProvisionedConcurrencyConfig",
        json!({"FunctionName": "f", "Qualifier": "live"}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message,
        format!("Cannot find alias arn: {}:live", fn_arn("f"))
    );
}

#[tokio::test]
async fn reserved_and_provisioned_concurrency_limit_each_other() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    let v1 = publish(&fx.cp, "f").await;
    exec(
        &fx.cp,
        "UpdateFunctionConfiguration",
        json!({"FunctionName": "f", "MemorySize": 256}),
    )
    .await
    .unwrap();
    settle(&fx.cp, "f", None).await;
    let v2 = publish(&fx.cp, "f").await;
    assert_ne!(v1, v2);
    exec(
        &fx.cp,
        "PutFunctionConcurrency",
        json!({"FunctionName": "f", "ReservedConcurrentExecutions": 2}),
    )
    .await
    .unwrap();
    let put = |q: &str, n: u32| {
        exec(
            &fx.cp,
            "PutProvisionedConcurrencyConfig",
            json!({"FunctionName": "f", "Qualifier": q, "ProvisionedConcurrentExecutions": n}),
        )
    };
    put(&v1, 2).await.unwrap();
    let over = "Requested Provisioned Concurrency should not be greater than the \
                reservedConcurrentExecution for function";
    assert_eq!(put(&v2, 1).await.unwrap_err().message, over);
    assert_eq!(put(&v1, 3).await.unwrap_err().message, over);
    let e = exec(
        &fx.cp,
        "PutFunctionConcurrency",
        json!({"FunctionName": "f", "ReservedConcurrentExecutions": 1}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message,
        " ReservedConcurrentExecutions  1 should not be lower than function's total provisioned \
         concurrency [2]."
    );
    // Without a reservation, provisioned concurrency comes out of the account's pool.
    exec(
        &fx.cp,
        "DeleteFunctionConcurrency",
        json!({"FunctionName": "f"}),
    )
    .await
    .unwrap();
    assert_eq!(unreserved(&fx.cp).await, 998);
    let e = put(&v2, 1001).await.unwrap_err();
    assert_eq!(
        e.message,
        "Specified ConcurrentExecutions for function is greater than account's unreserved \
         concurrency [998]."
    );
    let e = put(&v2, 950).await.unwrap_err();
    assert_eq!(
        e.message,
        "Specified ConcurrentExecutions for function decreases account's \
         UnreservedConcurrentExecution below its minimum value of [100]."
    );
    put(&v2, 898).await.unwrap();
    assert_eq!(unreserved(&fx.cp).await, 100);
}

#[tokio::test]
async fn deleting_a_version_or_the_function_drops_its_provisioned_config() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    let v = publish(&fx.cp, "f").await;
    exec(
        &fx.cp,
        "PutProvisionedConcurrencyConfig",
        json!({"FunctionName": "f", "Qualifier": v, "ProvisionedConcurrentExecutions": 4}),
    )
    .await
    .unwrap();
    exec(
        &fx.cp,
        "DeleteFunction",
        json!({"FunctionName": "f", "Qualifier": v}),
    )
    .await
    .unwrap();
    assert!(fx.cp.provisioned_concurrency().is_empty());
    assert_eq!(unreserved(&fx.cp).await, 1000);
    let v = publish(&fx.cp, "f").await;
    exec(
        &fx.cp,
        "PutProvisionedConcurrencyConfig",
        json!({"FunctionName": "f", "Qualifier": v, "ProvisionedConcurrentExecutions": 4}),
    )
    .await
    .unwrap();
    exec(&fx.cp, "DeleteFunction", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    assert!(fx.cp.provisioned_concurrency().is_empty());
    assert!(reopen(&fx).provisioned_concurrency().is_empty());
}
