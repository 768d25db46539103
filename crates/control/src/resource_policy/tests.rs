//! The whole-document policy operations against the statement operations, through
//! `ControlPlane::execute` on a real store.

use serde_json::{json, Value};

use crate::sub_resource::test_support::*;
use crate::ErrorCode;

fn document(sid: &str, account: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
            "Action": "lambda:InvokeFunction",
            "Resource": fn_arn("f"),
        }]
    })
    .to_string()
}

fn statements(out: &Value) -> Value {
    let p: Value = serde_json::from_str(out["Policy"].as_str().unwrap()).unwrap();
    p["Statement"].clone()
}

#[tokio::test]
async fn a_put_document_replaces_the_statements_and_get_policy_sees_it() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    exec(
        &fx.cp,
        "AddPermission",
        json!({"FunctionName": "f", "StatementId": "old", "Action": "lambda:InvokeFunction",
               "Principal": "333333333333"}),
    )
    .await
    .unwrap();
    let put = exec(
        &fx.cp,
        "PutResourcePolicy",
        json!({"ResourceArn": fn_arn("f"), "Policy": document("shared", "222222222222")}),
    )
    .await
    .unwrap();
    let got = exec(&fx.cp, "GetPolicy", json!({"FunctionName": "f"}))
        .await
        .unwrap();
    assert_eq!(got["RevisionId"], put["RevisionId"]);
    assert_eq!(statements(&got).as_array().unwrap().len(), 1);
    assert_eq!(statements(&got)[0]["Sid"], "shared");
    // AddPermission adds to the document PutResourcePolicy wrote.
    exec(
        &fx.cp,
        "AddPermission",
        json!({"FunctionName": "f", "StatementId": "more", "Action": "lambda:GetFunction",
               "Principal": "222222222222"}),
    )
    .await
    .unwrap();
    let whole = exec(
        &fx.cp,
        "GetResourcePolicy",
        json!({"ResourceArn": fn_arn("f")}),
    )
    .await
    .unwrap();
    assert_eq!(statements(&whole).as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_stale_revision_id_is_refused_and_the_current_one_accepted() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    let put = exec(
        &fx.cp,
        "PutResourcePolicy",
        json!({"ResourceArn": fn_arn("f"), "Policy": document("a", "222222222222")}),
    )
    .await
    .unwrap();
    let stale = exec(
        &fx.cp,
        "PutResourcePolicy",
        json!({"ResourceArn": fn_arn("f"), "Policy": document("b", "222222222222"),
               "RevisionId": "00000000-0000-0000-0000-000000000000"}),
    )
    .await
    .unwrap_err();
    assert_eq!(stale.code, ErrorCode::PreconditionFailedException);
    exec(
        &fx.cp,
        "DeleteResourcePolicy",
        json!({"ResourceArn": fn_arn("f"), "RevisionId": put["RevisionId"]}),
    )
    .await
    .unwrap();
    let gone = exec(
        &fx.cp,
        "GetResourcePolicy",
        json!({"ResourceArn": fn_arn("f")}),
    )
    .await
    .unwrap_err();
    assert_eq!(gone.code, ErrorCode::ResourceNotFoundException);
    let again = exec(
        &fx.cp,
        "DeleteResourcePolicy",
        json!({"ResourceArn": fn_arn("f")}),
    )
    .await
    .unwrap_err();
    assert_eq!(again.code, ErrorCode::ResourceNotFoundException);
}

#[tokio::test]
async fn a_statement_flint_could_not_enforce_exactly_is_refused() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    let doc = json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "s", "Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunction",
        "Resource": fn_arn("f"),
        "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]});
    let e = exec(
        &fx.cp,
        "PutResourcePolicy",
        json!({"ResourceArn": fn_arn("f"), "Policy": doc.to_string()}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParameterValueException);
    assert!(e.message.contains("IpAddress"), "{}", e.message);
    let e = exec(
        &fx.cp,
        "PutResourcePolicy",
        json!({"ResourceArn": fn_arn("f"), "Policy": "not json"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParameterValueException);
}

#[tokio::test]
async fn an_alias_has_a_policy_of_its_own() {
    let fx = fixture();
    create_function(&fx.cp, "f").await;
    let e = exec(
        &fx.cp,
        "PutResourcePolicy",
        json!({"ResourceArn": format!("{}:live", fn_arn("f")), "Policy": document("a", "222222222222")}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceNotFoundException);
    assert!(e.message.contains("alias"), "{}", e.message);
}
