//! Function URL configs end to end through `ControlPlane::execute`.

use serde_json::json;

use crate::sub_resource::test_support::*;
use crate::ErrorCode;

fn url_id(url: &str) -> &str {
    url.strip_prefix("http://")
        .and_then(|s| s.strip_suffix(".lambda-url.us-east-1.flint.test:9000/"))
        .unwrap()
}

#[test]
fn a_url_is_the_host_form_under_the_servers_port() {
    assert_eq!(
        super::host_form_url("http://127.0.0.1:9000", "eu-west-1", "abc"),
        "http://abc.lambda-url.eu-west-1.localhost:9000/"
    );
    assert_eq!(
        super::host_form_url("http://[::1]:80", "us-east-1", "abc"),
        "http://abc.lambda-url.us-east-1.localhost:80/"
    );
    assert_eq!(
        super::host_form_url("https://flint.example.com", "us-east-1", "abc"),
        "https://abc.lambda-url.us-east-1.flint.example.com/"
    );
}

#[tokio::test]
async fn url_config_lifecycle_matches_aws_shapes() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    let created = exec(
        &fx.cp,
        "CreateFunctionUrlConfig",
        json!({"FunctionName": "f", "AuthType": "NONE"}),
    )
    .await
    .unwrap();
    let keys: Vec<&String> = created.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["FunctionUrl", "FunctionArn", "AuthType", "CreationTime"]
    );
    assert_eq!(created["FunctionArn"], fn_arn("f"));
    let url = created["FunctionUrl"].as_str().unwrap();
    let id = url_id(url);
    assert_eq!(id.len(), 32);
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    assert!(created["CreationTime"].as_str().unwrap().ends_with('Z'));

    let e = exec(
        &fx.cp,
        "CreateFunctionUrlConfig",
        json!({"FunctionName": "f", "AuthType": "NONE"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceConflictException);
    assert_eq!(
        e.message,
        format!(
            "Failed to create function url config for [functionArn = {}]. Error message:  \
             FunctionUrlConfig exists for this Lambda function",
            fn_arn("f")
        )
    );
    let got = exec(&fx.cp, "GetFunctionUrlConfig", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    assert_eq!(got["InvokeMode"], "BUFFERED");
    assert_eq!(got["FunctionUrl"], url);
    assert!(got["LastModifiedTime"].is_string());

    let target = fx.cp.function_url_target(id).unwrap();
    assert_eq!(target.function_name, "f");
    assert_eq!(target.qualifier, None);
    assert_eq!(target.auth_type, "NONE");

    let cors = json!({"AllowOrigins": ["*"], "MaxAge": 60});
    let updated = exec(
        &fx.cp,
        "UpdateFunctionUrlConfig",
        json!({"FunctionName": "f", "AuthType": "AWS_IAM", "Cors": cors}),
    )
    .await
    .unwrap();
    assert_eq!(updated["AuthType"], "AWS_IAM");
    assert_eq!(updated["Cors"], cors);
    assert!(updated.get("InvokeMode").is_none());
    assert_eq!(updated["CreationTime"], got["CreationTime"]);

    let cp = reopen(&fx);
    let target = cp.function_url_target(id).unwrap();
    assert_eq!(target.auth_type, "AWS_IAM");
    assert_eq!(target.cors.and_then(|c| c.max_age), Some(60));

    exec(&cp, "DeleteFunctionUrlConfig", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    let e = exec(&cp, "GetFunctionUrlConfig", json!({"FunctionName": "f"}))
        .await
        .unwrap_err();
    assert_eq!(e.message, "The resource you requested does not exist.");
    assert!(cp.function_url_target(id).is_none());
}

#[tokio::test]
async fn alias_urls_are_separate_and_listed_with_paging() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    let v = publish(&fx.cp, "f").await;
    create_alias(&fx.cp, "f", "urlalias", &v).await;
    let empty = exec(
        &fx.cp,
        "ListFunctionUrlConfigs",
        json!({"FunctionName": "f"}),
    )
    .await
    .unwrap();
    assert_eq!(empty, json!({"FunctionUrlConfigs": []}));
    exec(
        &fx.cp,
        "CreateFunctionUrlConfig",
        json!({"FunctionName": "f", "AuthType": "NONE"}),
    )
    .await
    .unwrap();
    let alias = exec(
        &fx.cp,
        "CreateFunctionUrlConfig",
        json!({"FunctionName": "f:urlalias", "Qualifier": "urlalias", "AuthType": "NONE",
               "InvokeMode": "RESPONSE_STREAM"}),
    )
    .await
    .unwrap();
    assert_eq!(alias["FunctionArn"], format!("{}:urlalias", fn_arn("f")));
    assert_eq!(alias["InvokeMode"], "RESPONSE_STREAM");
    let target = fx
        .cp
        .function_url_target(url_id(alias["FunctionUrl"].as_str().unwrap()))
        .unwrap();
    assert_eq!(target.qualifier.as_deref(), Some("urlalias"));
    assert_eq!(target.invoke_mode, "RESPONSE_STREAM");

    let all = exec(
        &fx.cp,
        "ListFunctionUrlConfigs",
        json!({"FunctionName": "f"}),
    )
    .await
    .unwrap();
    let configs = all["FunctionUrlConfigs"].as_array().unwrap();
    assert_eq!(configs.len(), 2);
    assert_eq!(configs[0]["FunctionArn"], fn_arn("f"));
    assert_eq!(configs[1]["InvokeMode"], "RESPONSE_STREAM");
    let one = exec(
        &fx.cp,
        "ListFunctionUrlConfigs",
        json!({"FunctionName": "f", "MaxItems": 1}),
    )
    .await
    .unwrap();
    let two = exec(
        &fx.cp,
        "ListFunctionUrlConfigs",
        json!({"FunctionName": "f", "MaxItems": 1, "Marker": one["NextMarker"]}),
    )
    .await
    .unwrap();
    assert_ne!(
        one["FunctionUrlConfigs"][0]["FunctionUrl"],
        two["FunctionUrlConfigs"][0]["FunctionUrl"]
    );
    // Deleting the function's own URL leaves the alias's.
    exec(
        &fx.cp,
        "DeleteFunctionUrlConfig",
        json!({"FunctionName": "f"}),
    )
    .await
    .unwrap();
    exec(
        &fx.cp,
        "GetFunctionUrlConfig",
        json!({"FunctionName": "f", "Qualifier": "urlalias"}),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn names_and_qualifiers_are_checked_as_aws_does() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    let v = publish(&fx.cp, "f").await;
    create_alias(&fx.cp, "f", "urlalias", &v).await;
    for op in ["CreateFunctionUrlConfig", "UpdateFunctionUrlConfig"] {
        for input in [
            json!({"FunctionName": "doesnotexist", "AuthType": "NONE"}),
            json!({"FunctionName": fn_arn("doesnotexist"), "AuthType": "NONE"}),
            json!({"FunctionName": "f", "Qualifier": "v1", "AuthType": "NONE"}),
        ] {
            let e = exec(&fx.cp, op, input).await.unwrap_err();
            assert_eq!(e.message, "Function does not exist", "{op}");
        }
    }
    for op in [
        "GetFunctionUrlConfig",
        "DeleteFunctionUrlConfig",
        "UpdateFunctionUrlConfig",
    ] {
        let e = exec(&fx.cp, op, json!({"FunctionName": "f", "AuthType": "NONE"}))
            .await
            .unwrap_err();
        assert_eq!(
            e.message, "The resource you requested does not exist.",
            "{op}"
        );
    }
    for op in ["GetFunctionUrlConfig", "DeleteFunctionUrlConfig"] {
        for input in [
            json!({"FunctionName": "doesnotexist"}),
            json!({"FunctionName": "f", "Qualifier": "v1"}),
        ] {
            let e = exec(&fx.cp, op, input).await.unwrap_err();
            assert_eq!(
                e.message, "The resource you requested does not exist.",
                "{op}"
            );
        }
    }
    for q in ["1", "2", "$LATEST"] {
        let e = exec(
            &fx.cp,
            "CreateFunctionUrlConfig",
            json!({"FunctionName": "f", "Qualifier": q, "AuthType": "NONE"}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationException);
        assert_eq!(
            e.message,
            format!(
                "1 validation error detected: Value '{q}' at 'qualifier' failed to satisfy \
                 constraint: Member must satisfy regular expression pattern: \
                 ((?!^\\d+$)^[0-9a-zA-Z-_]+$)"
            )
        );
    }
    let e = exec(
        &fx.cp,
        "GetFunctionUrlConfig",
        json!({"FunctionName": "f:urlalias-doesnotmatch", "Qualifier": "urlalias"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParameterValueException);
    let e = exec(
        &fx.cp,
        "ListFunctionUrlConfigs",
        json!({"FunctionName": "doesnotexist"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.message, "Function does not exist");
}

#[tokio::test]
async fn urls_die_with_their_function_and_alias() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    let v = publish(&fx.cp, "f").await;
    create_alias(&fx.cp, "f", "live", &v).await;
    let own = exec(
        &fx.cp,
        "CreateFunctionUrlConfig",
        json!({"FunctionName": "f", "AuthType": "NONE"}),
    )
    .await
    .unwrap();
    let aliased = exec(
        &fx.cp,
        "CreateFunctionUrlConfig",
        json!({"FunctionName": "f", "Qualifier": "live", "AuthType": "NONE"}),
    )
    .await
    .unwrap();
    let own_id = url_id(own["FunctionUrl"].as_str().unwrap()).to_string();
    let alias_id = url_id(aliased["FunctionUrl"].as_str().unwrap()).to_string();
    exec(
        &fx.cp,
        "DeleteAlias",
        json!({"FunctionName": "f", "Name": "live"}),
    )
    .await
    .unwrap();
    assert!(fx.cp.function_url_target(&alias_id).is_none());
    assert!(fx.cp.function_url_target(&own_id).is_some());
    exec(&fx.cp, "DeleteFunction", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    assert!(fx.cp.function_url_target(&own_id).is_none());
    create_function(&fx.cp, "f").await;
    assert!(fx.cp.function_url_target(&own_id).is_none());
    assert!(reopen(&fx).function_url_target(&own_id).is_none());
}

#[tokio::test]
async fn an_update_keeps_showing_the_invoke_mode_once_set_as_aws_answers() {
    // LocalStack's test_lambda_update_function_url_config, AWS's recorded answers.
    let fx = fixture();
    create_function(&fx.cp, "m").await;
    let created = exec(
        &fx.cp,
        "CreateFunctionUrlConfig",
        json!({"FunctionName": "m", "AuthType": "NONE", "InvokeMode": "BUFFERED"}),
    )
    .await
    .unwrap();
    assert_eq!(created["InvokeMode"], "BUFFERED");
    let set = exec(
        &fx.cp,
        "UpdateFunctionUrlConfig",
        json!({"FunctionName": "m", "InvokeMode": "RESPONSE_STREAM"}),
    )
    .await
    .unwrap();
    assert_eq!(set["InvokeMode"], "RESPONSE_STREAM");
    let untouched = exec(
        &fx.cp,
        "UpdateFunctionUrlConfig",
        json!({"FunctionName": "m", "AuthType": "NONE"}),
    )
    .await
    .unwrap();
    assert_eq!(untouched["InvokeMode"], "RESPONSE_STREAM");
}
