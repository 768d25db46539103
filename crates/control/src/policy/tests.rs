//! Permissions end to end through `ControlPlane::execute`, on a real store in a temp dir.

use serde_json::{json, Value};

use crate::sub_resource::test_support::*;
use crate::ErrorCode;

fn add(name: &str, sid: &str, principal: &str) -> Value {
    json!({
        "FunctionName": name,
        "StatementId": sid,
        "Action": "lambda:InvokeFunction",
        "Principal": principal,
    })
}

fn statement(out: &Value) -> Value {
    serde_json::from_str(out["Statement"].as_str().unwrap()).unwrap()
}

fn policy(out: &Value) -> Value {
    serde_json::from_str(out["Policy"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn add_permission_builds_the_statement_as_aws_does() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    let mut input = add("f", "s3", "s3.amazonaws.com");
    input["SourceArn"] = json!("arn:aws:s3:::test-bucket");
    let out = exec(&fx.cp, "AddPermission", input).await.unwrap();
    let s = out["Statement"].as_str().unwrap();
    // Member order matters to clients that compare strings.
    assert_eq!(
        s,
        format!(
            "{{\"Sid\":\"s3\",\"Effect\":\"Allow\",\"Principal\":{{\"Service\":\"s3.amazonaws.com\"}},\
             \"Action\":\"lambda:InvokeFunction\",\"Resource\":\"{}\",\"Condition\":{{\"ArnLike\":\
             {{\"AWS:SourceArn\":\"arn:aws:s3:::test-bucket\"}}}}}}",
            fn_arn("f")
        )
    );
    let got = exec(&fx.cp, "GetPolicy", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    let p = policy(&got);
    assert_eq!(p["Version"], "2012-10-17");
    assert_eq!(p["Id"], "default");
    assert_eq!(p["Statement"][0], statement(&out));
    assert!(got["Policy"]
        .as_str()
        .unwrap()
        .starts_with("{\"Version\":\"2012-10-17\",\"Id\":\"default\""));
}

#[tokio::test]
async fn principals_and_conditions_take_aws_forms() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    let mut i = add("f", "wildcard", "*");
    i["SourceAccount"] = json!("000000000000");
    let s = statement(&exec(&fx.cp, "AddPermission", i).await.unwrap());
    assert_eq!(s["Principal"], "*");
    assert_eq!(
        s["Condition"],
        json!({"StringEquals": {"AWS:SourceAccount": "000000000000"}})
    );

    let s = statement(
        &exec(&fx.cp, "AddPermission", add("f", "account", "111111111111"))
            .await
            .unwrap(),
    );
    assert_eq!(
        s["Principal"],
        json!({"AWS": "arn:aws:iam::111111111111:root"})
    );
    assert!(s.get("Condition").is_none());

    let user = "arn:aws:iam::111111111111:user/bob";
    let s = statement(
        &exec(&fx.cp, "AddPermission", add("f", "user", user))
            .await
            .unwrap(),
    );
    assert_eq!(s["Principal"], json!({"AWS": user}));

    let mut i = add("f", "url", "*");
    i["Action"] = json!("lambda:InvokeFunctionUrl");
    i["SourceArn"] = json!("arn:aws:s3:::b");
    i["SourceAccount"] = json!("000000000000");
    i["PrincipalOrgID"] = json!("o-1234567890");
    i["FunctionUrlAuthType"] = json!("NONE");
    let out = exec(&fx.cp, "AddPermission", i).await.unwrap();
    let cond = out["Statement"].as_str().unwrap();
    assert!(cond.ends_with(
        "\"Condition\":{\"StringEquals\":{\"AWS:SourceAccount\":\"000000000000\",\
         \"lambda:FunctionUrlAuthType\":\"NONE\",\"aws:PrincipalOrgID\":\"o-1234567890\"},\
         \"ArnLike\":{\"AWS:SourceArn\":\"arn:aws:s3:::b\"}}}"
    ));

    let mut i = add("f", "alexa", "*");
    i["EventSourceToken"] = json!("amzn1.ask.skill.x");
    let s = statement(&exec(&fx.cp, "AddPermission", i).await.unwrap());
    assert_eq!(
        s["Condition"],
        json!({"StringEquals": {"lambda:EventSourceToken": "amzn1.ask.skill.x"}})
    );
}

#[tokio::test]
async fn invalid_inputs_get_aws_errors() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    let e = exec(
        &fx.cp,
        "AddPermission",
        add("f", "example.com", "s3.amazonaws.com"),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationException);
    assert_eq!(
        e.message,
        "1 validation error detected: Value 'example.com' at 'statementId' failed to satisfy \
         constraint: Member must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)"
    );
    let mut i = add("f:alias-not-42", "s3", "s3.amazonaws.com");
    i["Qualifier"] = json!("42");
    let e = exec(&fx.cp, "AddPermission", i).await.unwrap_err();
    assert_eq!(
        e.message,
        "The derived qualifier from the function name does not match the specified qualifier."
    );
    let mut i = add("f:$LATEST", "s3", "s3.amazonaws.com");
    i["Qualifier"] = json!("$LATEST");
    let e = exec(&fx.cp, "AddPermission", i).await.unwrap_err();
    assert_eq!(
        e.message,
        "We currently do not support adding policies for $LATEST."
    );
    let e = exec(&fx.cp, "AddPermission", add("f", "s", "invalid.nonaws.com"))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParameterValueException);
    assert_eq!(
        e.message,
        "The provided principal was invalid. Please check the principal and try again."
    );
}

#[tokio::test]
async fn missing_functions_versions_aliases_and_policies_are_404s() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    let e = exec(
        &fx.cp,
        "AddPermission",
        add("doesnotexist", "s3", "s3.amazonaws.com"),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceNotFoundException);
    assert_eq!(
        e.message,
        format!("Function not found: {}", fn_arn("doesnotexist"))
    );
    let e = exec(
        &fx.cp,
        "AddPermission",
        add("f:alias-doesnotexist", "s3", "s3.amazonaws.com"),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message,
        format!("Cannot find alias arn: {}:alias-doesnotexist", fn_arn("f"))
    );
    let mut i = add("f", "s3", "s3.amazonaws.com");
    i["Qualifier"] = json!("42");
    let e = exec(&fx.cp, "AddPermission", i).await.unwrap_err();
    assert_eq!(e.message, format!("Function not found: {}:42", fn_arn("f")));
    let mut i = add("f", "s3", "s3.amazonaws.com");
    i["Qualifier"] = json!("valid-with-$-but-doesnotexist");
    let e = exec(&fx.cp, "AddPermission", i).await.unwrap_err();
    assert_eq!(
        e.message,
        format!(
            "Function not found: {}:valid-with-$-but-doesnotexist",
            fn_arn("f")
        )
    );

    for input in [
        json!({"FunctionName": "doesnotexist"}),
        json!({"FunctionName": "f", "Qualifier": "77"}),
        json!({"FunctionName": "f"}),
    ] {
        let e = exec(&fx.cp, "GetPolicy", input).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::ResourceNotFoundException);
        assert_eq!(e.message, "The resource you requested does not exist.");
    }

    let e = exec(
        &fx.cp,
        "RemovePermission",
        json!({"FunctionName": "f", "StatementId": "s3"}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message,
        "No policy is associated with the given resource."
    );
    let e = exec(
        &fx.cp,
        "RemovePermission",
        json!({"FunctionName": "doesnotexist", "StatementId": "s3"}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message,
        format!("No policy found for: {}", fn_arn("doesnotexist"))
    );
    let e = exec(
        &fx.cp,
        "RemovePermission",
        json!({"FunctionName": "f", "StatementId": "s3", "Qualifier": "alias-doesnotexist"}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message,
        format!("Cannot find alias arn: {}:alias-doesnotexist", fn_arn("f"))
    );
}

#[tokio::test]
async fn duplicate_sids_conflict_and_removal_empties_the_policy() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    exec(&fx.cp, "AddPermission", add("f", "s3", "s3.amazonaws.com"))
        .await
        .unwrap();
    let e = exec(&fx.cp, "AddPermission", add("f", "s3", "s3.amazonaws.com"))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceConflictException);
    assert_eq!(
        e.message,
        "The statement id (s3) provided already exists. Please provide a new statement id, or \
         remove the existing statement."
    );
    exec(
        &fx.cp,
        "AddPermission",
        add("f", "sqs", "sqs.amazonaws.com"),
    )
    .await
    .unwrap();
    let p = exec(&fx.cp, "GetPolicy", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    let sids: Vec<Value> = policy(&p)["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].clone())
        .collect();
    assert_eq!(sids, [json!("s3"), json!("sqs")]);
    let e = exec(
        &fx.cp,
        "RemovePermission",
        json!({"FunctionName": "f", "StatementId": "non-existent"}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message,
        "Statement non-existent is not found in resource policy."
    );
    exec(
        &fx.cp,
        "RemovePermission",
        json!({"FunctionName": "f", "StatementId": "sqs"}),
    )
    .await
    .unwrap();
    let p2 = exec(&fx.cp, "GetPolicy", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    assert_ne!(p2["RevisionId"], p["RevisionId"]);
    assert_eq!(policy(&p2)["Statement"].as_array().unwrap().len(), 1);
    exec(
        &fx.cp,
        "RemovePermission",
        json!({"FunctionName": "f", "StatementId": "s3", "RevisionId": p2["RevisionId"]}),
    )
    .await
    .unwrap();
    let e = exec(&fx.cp, "GetPolicy", json!({"FunctionName": "f"}))
        .await
        .unwrap_err();
    assert_eq!(e.message, "The resource you requested does not exist.");
}

#[tokio::test]
async fn revision_ids_are_shared_with_the_function_and_guard_changes() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    let rev = |v: &Value| v["Configuration"]["RevisionId"].clone();
    let before = exec(&fx.cp, "GetFunction", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    let mut i = add("f", "s3", "s3.amazonaws.com");
    i["RevisionId"] = json!("wrong");
    let e = exec(&fx.cp, "AddPermission", i).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::PreconditionFailedException);
    assert_eq!(
        e.message,
        "The Revision Id provided does not match the latest Revision Id. Call the GetPolicy API \
         to retrieve the latest Revision Id"
    );
    let mut i = add("f", "s3", "s3.amazonaws.com");
    i["RevisionId"] = rev(&before);
    exec(&fx.cp, "AddPermission", i).await.unwrap();
    let p = exec(&fx.cp, "GetPolicy", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    let after = exec(&fx.cp, "GetFunction", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    assert_ne!(rev(&before), p["RevisionId"]);
    assert_eq!(rev(&after), p["RevisionId"]);
    let e = exec(
        &fx.cp,
        "RemovePermission",
        json!({"FunctionName": "f", "StatementId": "s3", "RevisionId": "wrong"}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message,
        "The Revision Id provided does not match the latest Revision Id. Call the \
         GetFunction/GetAlias API to retrieve the latest Revision Id"
    );
    exec(
        &fx.cp,
        "RemovePermission",
        json!({"FunctionName": "f", "StatementId": "s3", "RevisionId": p["RevisionId"]}),
    )
    .await
    .unwrap();
    let removed = exec(&fx.cp, "GetFunction", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    assert_ne!(rev(&removed), rev(&after));
}

#[tokio::test]
async fn versions_and_aliases_have_their_own_policies() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    exec(&fx.cp, "AddPermission", add("f", "s3", "s3.amazonaws.com"))
        .await
        .unwrap();
    let v = publish(&fx.cp, "f").await;
    let e = exec(
        &fx.cp,
        "GetPolicy",
        json!({"FunctionName": "f", "Qualifier": v}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceNotFoundException);
    let mut i = add(&format!("f:{v}"), "s3", "s3.amazonaws.com");
    i["Qualifier"] = json!(v);
    exec(&fx.cp, "AddPermission", i).await.unwrap();
    let pv = exec(
        &fx.cp,
        "GetPolicy",
        json!({"FunctionName": "f", "Qualifier": v}),
    )
    .await
    .unwrap();
    assert_eq!(
        policy(&pv)["Statement"][0]["Resource"],
        format!("{}:{v}", fn_arn("f"))
    );
    let cv = exec(
        &fx.cp,
        "GetFunction",
        json!({"FunctionName": "f", "Qualifier": v}),
    )
    .await
    .unwrap();
    assert_eq!(cv["Configuration"]["RevisionId"], pv["RevisionId"]);

    let alias = create_alias(&fx.cp, "f", "permission-alias", &v).await;
    let mut i = add("f", "s3", "s3.amazonaws.com");
    i["Qualifier"] = json!("permission-alias");
    i["RevisionId"] = json!("wrong");
    let e = exec(&fx.cp, "AddPermission", i).await.unwrap_err();
    assert_eq!(
        e.message,
        "The Revision Id provided does not match the latest Revision Id. Call the GetPolicy API \
         to retrieve the latest Revision Id"
    );
    let mut i = add("f:permission-alias", "s3", "s3.amazonaws.com");
    i["Qualifier"] = json!("permission-alias");
    i["RevisionId"] = alias["RevisionId"].clone();
    exec(&fx.cp, "AddPermission", i).await.unwrap();
    let pa = exec(
        &fx.cp,
        "GetPolicy",
        json!({"FunctionName": "f", "Qualifier": "permission-alias"}),
    )
    .await
    .unwrap();
    assert_eq!(
        policy(&pa)["Statement"][0]["Resource"],
        format!("{}:permission-alias", fn_arn("f"))
    );
    // The function's own policy is untouched.
    let p = exec(&fx.cp, "GetPolicy", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    assert_eq!(policy(&p)["Statement"].as_array().unwrap().len(), 1);
    assert!(fx
        .cp
        .function_policy(&scope(), "f", Some("permission-alias"))
        .is_some());
}

#[tokio::test]
async fn policies_survive_reopening_and_die_with_the_function() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    exec(&fx.cp, "AddPermission", add("f", "s3", "s3.amazonaws.com"))
        .await
        .unwrap();
    let before = exec(&fx.cp, "GetPolicy", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    let cp = reopen(&fx);
    let after = exec(&cp, "GetPolicy", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    assert_eq!(before, after);
    exec(&cp, "DeleteFunction", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    create_function(&cp, "f").await;
    let e = exec(&cp, "GetPolicy", json!({"FunctionName": "f"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceNotFoundException);
}

#[tokio::test]
async fn oversized_policies_are_refused() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    let mut refused = None;
    for i in 0..200 {
        let mut input = add(
            "f",
            &format!("statement-{i:03}-{}", "x".repeat(60)),
            "s3.amazonaws.com",
        );
        input["SourceArn"] = json!(format!("arn:aws:s3:::{}", "b".repeat(60)));
        if let Err(e) = exec(&fx.cp, "AddPermission", input).await {
            refused = Some(e);
            break;
        }
    }
    let e = refused.expect("the policy never hit the limit");
    assert_eq!(e.code, ErrorCode::PolicyLengthExceededException);
    let p = exec(&fx.cp, "GetPolicy", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    assert!(p["Policy"].as_str().unwrap().len() <= crate::policy::MAX_POLICY_BYTES);
}
