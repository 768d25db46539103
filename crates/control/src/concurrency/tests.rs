//! Reserved and provisioned concurrency end to end through `ControlPlane::execute`.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::concurrency::ProvisionedProgress;
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
    let got = until_ready(&fx.cp, &v).await;
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
    let targets = provisioned_targets(&fx.cp);
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].qualifier, "live");
    assert_eq!(targets[0].requested, 3);
    assert_eq!(targets[0].spec.version, v);
    assert_eq!(unreserved(&fx.cp).await, 997);

    until_ready(&fx.cp, "live").await;
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
    assert_eq!(provisioned_targets(&cp).len(), 1);

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
    assert!(provisioned_targets(&cp).is_empty());
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
    assert!(provisioned_targets(&fx.cp).is_empty());
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
    assert!(provisioned_targets(&fx.cp).is_empty());
    assert!(provisioned_targets(&reopen(&fx)).is_empty());
}

/// Stands in for the engine: publishes what each snapshot's provisioned environments look like.
struct Engine(tokio::sync::watch::Sender<flint_spec::ProvisionedReport>);

struct Report<'a>(&'a Engine);

impl Engine {
    fn lock(&self) -> Report<'_> {
        Report(self)
    }
}

impl Report<'_> {
    fn insert(&self, snapshot: String, progress: ProvisionedProgress) {
        self.0 .0.send_modify(|r| {
            r.insert(snapshot, progress);
        });
    }
}

/// Past the fixture's settle delay, when a config reports what the engine has.
async fn past_settle() {
    tokio::time::sleep(options().update_settle + Duration::from_millis(5)).await;
}

#[tokio::test]
async fn a_config_is_in_progress_with_nothing_available_right_after_its_put_as_on_aws() {
    let fx = fixture();
    let engine = attach_engine(&fx.cp);
    create_function(&fx.cp, "f").await;
    let v = publish(&fx.cp, "f").await;
    exec(
        &fx.cp,
        "PutProvisionedConcurrencyConfig",
        json!({"FunctionName": "f", "Qualifier": v, "ProvisionedConcurrentExecutions": 1}),
    )
    .await
    .unwrap();
    // The engine was quick: its environment is up before the settle delay has passed.
    let snapshot = provisioned_targets(&fx.cp)[0].spec.snapshot_id.clone();
    engine.lock().insert(snapshot, progress(1, 1, true));
    assert_eq!(
        provisioned_state(&fx.cp, &v).await,
        state("IN_PROGRESS", 0, 0)
    );
    past_settle().await;
    assert_eq!(provisioned_state(&fx.cp, &v).await, state("READY", 1, 1));
}

fn attach_engine(cp: &crate::ControlPlane) -> Engine {
    let (tx, rx) = tokio::sync::watch::channel(HashMap::new());
    cp.follow_provisioned_report(rx);
    Engine(tx)
}

/// The provisioned concurrency the change feed tells the engine to keep, as it stands.
fn provisioned_targets(cp: &crate::ControlPlane) -> Vec<flint_spec::ProvisionedTarget> {
    let mut feed = cp.subscribe();
    let mut out = Vec::new();
    while let Some(change) = feed.try_next() {
        if let flint_spec::Change::Function {
            state: Some(state), ..
        } = &*change
        {
            out.extend(state.provisioned.iter().cloned());
        }
    }
    out
}

fn progress(requested: u32, ready: u32, allocated: bool) -> ProvisionedProgress {
    ProvisionedProgress {
        requested,
        ready,
        allocated,
        init_failure: None,
    }
}

/// (Status, Available, Allocated, StatusReason) of a Get.
async fn provisioned_state(cp: &crate::ControlPlane, q: &str) -> (String, u64, u64, Value) {
    let got = exec(
        cp,
        "GetProvisionedConcurrencyConfig",
        json!({"FunctionName": "f", "Qualifier": q}),
    )
    .await
    .unwrap();
    (
        got["Status"].as_str().unwrap().to_string(),
        got["AvailableProvisionedConcurrentExecutions"]
            .as_u64()
            .unwrap(),
        got["AllocatedProvisionedConcurrentExecutions"]
            .as_u64()
            .unwrap(),
        got.get("StatusReason").cloned().unwrap_or(Value::Null),
    )
}

fn state(status: &str, available: u64, allocated: u64) -> (String, u64, u64, Value) {
    (status.to_string(), available, allocated, Value::Null)
}

#[tokio::test]
async fn provisioned_status_follows_the_engines_environments() {
    let fx = fixture();
    let engine = attach_engine(&fx.cp);
    create_function(&fx.cp, "f").await;
    let v = publish(&fx.cp, "f").await;
    let put = exec(
        &fx.cp,
        "PutProvisionedConcurrencyConfig",
        json!({"FunctionName": "f", "Qualifier": v, "ProvisionedConcurrentExecutions": 2}),
    )
    .await
    .unwrap();
    past_settle().await;
    assert_eq!(put["Status"], "IN_PROGRESS");
    assert_eq!(put.get("StatusReason"), None);
    let snapshot = provisioned_targets(&fx.cp)[0].spec.snapshot_id.clone();

    // Long after the settle delay, nothing is up yet: still IN_PROGRESS.
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert_eq!(
        provisioned_state(&fx.cp, &v).await,
        state("IN_PROGRESS", 0, 0)
    );
    engine
        .lock()
        .insert(snapshot.clone(), progress(2, 1, false));
    assert_eq!(
        provisioned_state(&fx.cp, &v).await,
        state("IN_PROGRESS", 1, 0)
    );
    engine.lock().insert(snapshot.clone(), progress(2, 2, true));
    assert_eq!(provisioned_state(&fx.cp, &v).await, state("READY", 2, 2));
    let list = exec(
        &fx.cp,
        "ListProvisionedConcurrencyConfigs",
        json!({"FunctionName": "f"}),
    )
    .await
    .unwrap();
    let item = &list["ProvisionedConcurrencyConfigs"][0];
    assert_eq!(
        (
            &item["Status"],
            &item["AvailableProvisionedConcurrentExecutions"],
            &item["AllocatedProvisionedConcurrentExecutions"]
        ),
        (&json!("READY"), &json!(2), &json!(2))
    );
    // One died and is being replaced: still READY, one fewer available.
    engine.lock().insert(snapshot.clone(), progress(2, 1, true));
    assert_eq!(provisioned_state(&fx.cp, &v).await, state("READY", 1, 2));

    // A new count: until the engine has been told, what it has is of the old one.
    exec(
        &fx.cp,
        "PutProvisionedConcurrencyConfig",
        json!({"FunctionName": "f", "Qualifier": v, "ProvisionedConcurrentExecutions": 3}),
    )
    .await
    .unwrap();
    past_settle().await;
    engine.lock().insert(snapshot.clone(), progress(2, 2, true));
    assert_eq!(
        provisioned_state(&fx.cp, &v).await,
        state("IN_PROGRESS", 2, 0)
    );
    engine.lock().insert(snapshot.clone(), progress(3, 3, true));
    assert_eq!(provisioned_state(&fx.cp, &v).await, state("READY", 3, 3));
}

#[tokio::test]
async fn provisioned_config_fails_when_the_functions_init_keeps_failing() {
    let fx = fixture();
    let engine = attach_engine(&fx.cp);
    create_function(&fx.cp, "f").await;
    let v = publish(&fx.cp, "f").await;
    create_alias(&fx.cp, "f", "live", &v).await;
    exec(
        &fx.cp,
        "PutProvisionedConcurrencyConfig",
        json!({"FunctionName": "f", "Qualifier": "live", "ProvisionedConcurrentExecutions": 1}),
    )
    .await
    .unwrap();
    past_settle().await;
    let snapshot = provisioned_targets(&fx.cp)[0].spec.snapshot_id.clone();
    engine.lock().insert(
        snapshot,
        ProvisionedProgress {
            requested: 1,
            ready: 0,
            allocated: false,
            init_failure: Some("init failed: Runtime.Custom boom".into()),
        },
    );
    assert_eq!(
        provisioned_state(&fx.cp, "live").await,
        (
            "FAILED".to_string(),
            0,
            0,
            json!("FUNCTION_ERROR_INIT_FAILURE")
        )
    );
    let list = exec(
        &fx.cp,
        "ListProvisionedConcurrencyConfigs",
        json!({"FunctionName": "f"}),
    )
    .await
    .unwrap();
    let item = &list["ProvisionedConcurrencyConfigs"][0];
    assert_eq!(item["Status"], "FAILED");
    assert_eq!(item["StatusReason"], "FUNCTION_ERROR_INIT_FAILURE");
    assert_eq!(item["FunctionArn"], format!("{}:live", fn_arn("f")));
}

#[tokio::test]
async fn configs_of_two_aliases_on_one_version_share_its_environments() {
    let fx = fixture();
    let engine = attach_engine(&fx.cp);
    create_function(&fx.cp, "f").await;
    let v = publish(&fx.cp, "f").await;
    create_alias(&fx.cp, "f", "a", &v).await;
    create_alias(&fx.cp, "f", "b", &v).await;
    for (q, n) in [("a", 1), ("b", 2)] {
        exec(
            &fx.cp,
            "PutProvisionedConcurrencyConfig",
            json!({"FunctionName": "f", "Qualifier": q, "ProvisionedConcurrentExecutions": n}),
        )
        .await
        .unwrap();
        past_settle().await;
    }
    let snapshot = provisioned_targets(&fx.cp)[0].spec.snapshot_id.clone();
    // The engine keeps 1 + 2 for the version.
    engine.lock().insert(snapshot.clone(), progress(2, 2, true));
    assert_eq!(
        provisioned_state(&fx.cp, "a").await,
        state("IN_PROGRESS", 1, 0)
    );
    engine.lock().insert(snapshot, progress(3, 3, true));
    assert_eq!(provisioned_state(&fx.cp, "a").await, state("READY", 1, 1));
    assert_eq!(provisioned_state(&fx.cp, "b").await, state("READY", 2, 2));
}

/// Every change a data plane must act on, as the feed says it, in a compact form.
fn drain(feed: &mut flint_spec::feed::Subscription) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(change) = feed.try_next() {
        out.push(match &*change {
            flint_spec::Change::Function {
                name,
                state,
                retired,
                ..
            } => match state {
                Some(s) => format!(
                    "function {name} reserved={:?} retired={}",
                    s.reserved_concurrency,
                    retired.len()
                ),
                None => format!("deleted {name} retired={}", retired.len()),
            },
            flint_spec::Change::Unreserved { unreserved, .. } => format!("unreserved {unreserved}"),
            flint_spec::Change::EventSourceMapping { uuid, .. } => format!("mapping {uuid}"),
        });
    }
    out
}

#[tokio::test]
async fn the_feed_carries_every_change_and_only_changes() {
    let fx = fixture();
    let mut feed = fx.cp.subscribe();
    assert_eq!(drain(&mut feed), Vec::<String>::new(), "nothing yet");
    create_function(&fx.cp, "f").await;
    assert_eq!(
        drain(&mut feed),
        ["function f reserved=None retired=0", "unreserved 1000"]
    );
    exec(&fx.cp, "GetFunction", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    assert_eq!(
        drain(&mut feed),
        Vec::<String>::new(),
        "reads change nothing"
    );
    exec(
        &fx.cp,
        "PutFunctionConcurrency",
        json!({"FunctionName": "f", "ReservedConcurrentExecutions": 3}),
    )
    .await
    .unwrap();
    assert_eq!(
        drain(&mut feed),
        ["function f reserved=Some(3) retired=0", "unreserved 997"]
    );
    // A late subscriber starts from the state as it stands.
    let mut late = fx.cp.subscribe();
    assert_eq!(
        drain(&mut late),
        ["function f reserved=Some(3) retired=0", "unreserved 997"]
    );
    exec(&fx.cp, "DeleteFunction", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    let deleted = ["deleted f retired=1", "unreserved 1000"];
    assert_eq!(drain(&mut feed), deleted);
    assert_eq!(drain(&mut late), deleted);
}

/// GetProvisionedConcurrencyConfig of `q`, polled until its Status is READY (with no engine
/// attached, once the settle delay has passed), within a deadline.
async fn until_ready(cp: &crate::ControlPlane, q: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = exec(
            cp,
            "GetProvisionedConcurrencyConfig",
            json!({"FunctionName": "f", "Qualifier": q}),
        )
        .await
        .unwrap();
        if got["Status"] == "READY" {
            return got;
        }
        assert!(std::time::Instant::now() < deadline, "never READY: {got}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
