//! Event invoke configs end to end through `ControlPlane::execute`.

use serde_json::{json, Value};

use crate::sub_resource::test_support::*;
use crate::ErrorCode;

fn without_time(mut v: Value) -> Value {
    assert!(v["LastModified"].as_f64().unwrap() > 1.6e9, "epoch seconds");
    v.as_object_mut().unwrap().remove("LastModified");
    v
}

fn empty_destinations() -> Value {
    json!({"OnSuccess": {}, "OnFailure": {}})
}

#[tokio::test]
async fn put_replaces_update_merges_and_get_list_delete_follow() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    let latest = format!("{}:$LATEST", fn_arn("f"));
    let put = exec(
        &fx.cp,
        "PutFunctionEventInvokeConfig",
        json!({"FunctionName": "f", "MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 60}),
    )
    .await
    .unwrap();
    assert_eq!(
        without_time(put),
        json!({"FunctionArn": latest, "MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 60,
               "DestinationConfig": empty_destinations()})
    );
    let put = exec(
        &fx.cp,
        "PutFunctionEventInvokeConfig",
        json!({"FunctionName": "f", "MaximumRetryAttempts": 0}),
    )
    .await
    .unwrap();
    assert!(
        put.get("MaximumEventAgeInSeconds").is_none(),
        "put replaces"
    );
    exec(
        &fx.cp,
        "PutFunctionEventInvokeConfig",
        json!({"FunctionName": "f", "MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 60}),
    )
    .await
    .unwrap();
    let upd = exec(
        &fx.cp,
        "UpdateFunctionEventInvokeConfig",
        json!({"FunctionName": "f", "MaximumRetryAttempts": 0}),
    )
    .await
    .unwrap();
    assert_eq!(upd["MaximumRetryAttempts"], 0);
    assert_eq!(upd["MaximumEventAgeInSeconds"], 60, "update merges");
    let got = exec(
        &fx.cp,
        "GetFunctionEventInvokeConfig",
        json!({"FunctionName": "f", "Qualifier": "$LATEST"}),
    )
    .await
    .unwrap();
    assert_eq!(got, upd);

    let v = publish(&fx.cp, "f").await;
    let e = exec(
        &fx.cp,
        "GetFunctionEventInvokeConfig",
        json!({"FunctionName": "f", "Qualifier": v}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message,
        format!(
            "The function {}:{v} doesn't have an EventInvokeConfig",
            fn_arn("f")
        )
    );
    exec(
        &fx.cp,
        "PutFunctionEventInvokeConfig",
        json!({"FunctionName": "f", "Qualifier": v, "MaximumEventAgeInSeconds": 120}),
    )
    .await
    .unwrap();
    create_alias(&fx.cp, "f", "eventinvokealias", &v).await;
    let alias = exec(
        &fx.cp,
        "PutFunctionEventInvokeConfig",
        json!({"FunctionName": format!("{}:eventinvokealias", fn_arn("f")), "MaximumRetryAttempts": 1}),
    )
    .await
    .unwrap();
    assert_eq!(
        alias["FunctionArn"],
        format!("{}:eventinvokealias", fn_arn("f"))
    );

    let all = exec(
        &fx.cp,
        "ListFunctionEventInvokeConfigs",
        json!({"FunctionName": "f"}),
    )
    .await
    .unwrap();
    let arns: Vec<&str> = all["FunctionEventInvokeConfigs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["FunctionArn"].as_str().unwrap())
        .collect();
    assert_eq!(
        arns,
        [
            latest.clone(),
            format!("{}:{v}", fn_arn("f")),
            format!("{}:eventinvokealias", fn_arn("f"))
        ]
    );
    let first = exec(
        &fx.cp,
        "ListFunctionEventInvokeConfigs",
        json!({"FunctionName": "f", "MaxItems": 2}),
    )
    .await
    .unwrap();
    assert_eq!(
        first["FunctionEventInvokeConfigs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let rest = exec(
        &fx.cp,
        "ListFunctionEventInvokeConfigs",
        json!({"FunctionName": "f", "MaxItems": 2, "Marker": first["NextMarker"]}),
    )
    .await
    .unwrap();
    assert_eq!(
        rest["FunctionEventInvokeConfigs"][0]["FunctionArn"],
        arns[2]
    );
    assert!(rest.get("NextMarker").is_none());

    let cp = reopen(&fx);
    let again = exec(
        &cp,
        "ListFunctionEventInvokeConfigs",
        json!({"FunctionName": "f"}),
    )
    .await
    .unwrap();
    assert_eq!(again, all);
    for q in ["$LATEST", v.as_str(), "eventinvokealias"] {
        exec(
            &cp,
            "DeleteFunctionEventInvokeConfig",
            json!({"FunctionName": "f", "Qualifier": q}),
        )
        .await
        .unwrap();
    }
    let none = exec(
        &cp,
        "ListFunctionEventInvokeConfigs",
        json!({"FunctionName": "f"}),
    )
    .await
    .unwrap();
    assert_eq!(none, json!({"FunctionEventInvokeConfigs": []}));
    let e = exec(
        &cp,
        "DeleteFunctionEventInvokeConfig",
        json!({"FunctionName": "f"}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message,
        format!("The function {latest} doesn't have an EventInvokeConfig")
    );
}

#[tokio::test]
async fn missing_functions_qualifiers_and_arguments_get_aws_errors() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    for name in ["doesnotexist".to_string(), fn_arn("doesnotexist")] {
        let e = exec(
            &fx.cp,
            "PutFunctionEventInvokeConfig",
            json!({"FunctionName": name, "MaximumRetryAttempts": 1}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::ResourceNotFoundException);
        assert_eq!(e.message, "The function doesn't exist.");
    }
    let e = exec(
        &fx.cp,
        "PutFunctionEventInvokeConfig",
        json!({"FunctionName": "doesnotexist"}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message,
        "You must specify at least one of error handling or destination setting."
    );
    let e = exec(
        &fx.cp,
        "PutFunctionEventInvokeConfig",
        json!({"FunctionName": "f", "Qualifier": "nope", "MaximumRetryAttempts": 1}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.message, "The function doesn't exist.");
    let e = exec(
        &fx.cp,
        "PutFunctionEventInvokeConfig",
        json!({"FunctionName": "f:1", "Qualifier": "$LATEST", "MaximumRetryAttempts": 1}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message,
        "The derived qualifier from the function name does not match the specified qualifier."
    );
    let e = exec(
        &fx.cp,
        "UpdateFunctionEventInvokeConfig",
        json!({"FunctionName": "f", "MaximumRetryAttempts": 0}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message,
        format!(
            "The function {}:$LATEST doesn't have an EventInvokeConfig",
            fn_arn("f")
        )
    );
    let e = exec(
        &fx.cp,
        "UpdateFunctionEventInvokeConfig",
        json!({"FunctionName": "doesnotexist", "MaximumRetryAttempts": 0}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.message, "The function doesn't exist.");
    for (op, input) in [
        (
            "GetFunctionEventInvokeConfig",
            json!({"FunctionName": "doesnotexist"}),
        ),
        (
            "DeleteFunctionEventInvokeConfig",
            json!({"FunctionName": "doesnotexist"}),
        ),
    ] {
        let e = exec(&fx.cp, op, input).await.unwrap_err();
        assert_eq!(
            e.message,
            format!(
                "The function {}:$LATEST doesn't have an EventInvokeConfig",
                fn_arn("doesnotexist")
            )
        );
    }
    let e = exec(
        &fx.cp,
        "GetFunctionEventInvokeConfig",
        json!({"FunctionName": "f", "Qualifier": "doesnotexist"}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message,
        format!(
            "The function {}:doesnotexist doesn't have an EventInvokeConfig",
            fn_arn("f")
        )
    );
    let e = exec(
        &fx.cp,
        "ListFunctionEventInvokeConfigs",
        json!({"FunctionName": "doesnotexist"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.message, "The function doesn't exist.");
    let e = exec(
        &fx.cp,
        "PutFunctionEventInvokeConfig",
        json!({"FunctionName": "f", "MaximumRetryAttempts": 3}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationException);
}

#[tokio::test]
async fn destinations_are_validated_like_aws() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    create_function(&fx.cp, "g").await;
    let put = |d: Value| {
        exec(
            &fx.cp,
            "PutFunctionEventInvokeConfig",
            json!({"FunctionName": "f", "DestinationConfig": d}),
        )
    };
    let missing = fn_arn("doesnotexist");
    let e = put(json!({"OnSuccess": {"Destination": missing}}))
        .await
        .unwrap_err();
    assert_eq!(
        e.message,
        format!("The destination ARN {missing} is invalid.")
    );
    let e = put(json!({"OnSuccess": {"Destination": fn_arn("f")}}))
        .await
        .unwrap_err();
    assert_eq!(
        e.message,
        "You can't specify the function as a destination for itself."
    );
    let ok = put(json!({"OnSuccess": {"Destination": fn_arn("g")}}))
        .await
        .unwrap();
    assert_eq!(
        ok["DestinationConfig"],
        json!({"OnSuccess": {"Destination": fn_arn("g")}, "OnFailure": {}})
    );
    let iam = fn_arn("f").replace(":lambda:", ":iam:");
    let e = put(json!({"OnSuccess": {"Destination": iam}}))
        .await
        .unwrap_err();
    assert_eq!(
        e.message,
        format!(
            "The provided destination config DestinationConfig(onSuccess=OnSuccess(destination=\
             {iam}), onFailure=null) is invalid."
        )
    );
    let ok = put(json!({"OnSuccess": {}})).await.unwrap();
    assert_eq!(ok["DestinationConfig"], empty_destinations());
    let bad = fn_arn("f").replace(":lambda:", ":_-/!lambda:");
    let e = put(json!({"OnFailure": {"Destination": bad}}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationException);
    assert!(e
        .message
        .contains("at 'destinationConfig.onFailure.destination'"));
    let queue = "arn:aws:sqs:us-east-1:000000000000:dlq";
    put(json!({"OnFailure": {"Destination": queue}}))
        .await
        .unwrap();
    let settings = fx.cp.async_invoke_settings(&scope(), "f", None).unwrap();
    assert_eq!(settings.on_failure.as_deref(), Some(queue));
    assert_eq!(settings.maximum_retry_attempts, 2);
    assert_eq!(settings.maximum_event_age_in_seconds, 21_600);
}

#[tokio::test]
async fn configs_die_with_their_version_and_function() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    let v = publish(&fx.cp, "f").await;
    for q in ["$LATEST", v.as_str()] {
        exec(
            &fx.cp,
            "PutFunctionEventInvokeConfig",
            json!({"FunctionName": "f", "Qualifier": q, "MaximumRetryAttempts": 1}),
        )
        .await
        .unwrap();
    }
    exec(
        &fx.cp,
        "DeleteFunction",
        json!({"FunctionName": "f", "Qualifier": v}),
    )
    .await
    .unwrap();
    let list = exec(
        &fx.cp,
        "ListFunctionEventInvokeConfigs",
        json!({"FunctionName": "f"}),
    )
    .await
    .unwrap();
    assert_eq!(
        list["FunctionEventInvokeConfigs"].as_array().unwrap().len(),
        1
    );
    exec(&fx.cp, "DeleteFunction", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    create_function(&fx.cp, "f").await;
    let list = exec(
        &fx.cp,
        "ListFunctionEventInvokeConfigs",
        json!({"FunctionName": "f"}),
    )
    .await
    .unwrap();
    assert_eq!(list, json!({"FunctionEventInvokeConfigs": []}));
}
