//! PublishVersion, ListVersionsByFunction and qualified Get/Delete end to end through
//! `ControlPlane::execute`, on a real store in a temp dir. The fixture is shared with the alias tests.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::code::test_zip;
use crate::{ControlOptions, ControlPlane, ErrorCode, FixedCatalog, LambdaError, Scope};

pub(crate) const ROLE: &str = "arn:aws:iam::000000000000:role/lambda-role";
pub(crate) const ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function";

pub(crate) use crate::test_feed::Retired;

pub(crate) struct Fixture {
    /// Holds the data dir for the fixture's lifetime.
    pub _dir: tempfile::TempDir,
    pub cp: Arc<ControlPlane>,
    pub retired: Arc<Retired>,
}

fn options() -> ControlOptions {
    ControlOptions {
        public_base_url: "http://flint.test:9000".into(),
        create_settle: Duration::from_millis(20),
        update_settle: Duration::from_millis(20),
        ..Default::default()
    }
}

pub(crate) fn open(dir: &std::path::Path, retired: Arc<Retired>) -> Arc<ControlPlane> {
    let store = Arc::new(flint_store::Store::open(dir).unwrap());
    let catalog = Arc::new(FixedCatalog(vec!["python3.12".into()]));
    let cp = ControlPlane::open_with(dir, store, catalog, options()).unwrap();
    retired.follow(&cp);
    cp
}

pub(crate) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let retired = Arc::new(Retired::default());
    let cp = open(dir.path(), retired.clone());
    Fixture {
        _dir: dir,
        cp,
        retired,
    }
}

pub(crate) fn scope() -> Scope {
    Scope {
        account: "000000000000".into(),
        region: "us-east-1".into(),
    }
}

pub(crate) fn zip_b64(body: &str) -> (String, String) {
    let zip = test_zip(&[("handler.py", body.as_bytes(), 0o644)]);
    let sha = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&zip));
    (base64::engine::general_purpose::STANDARD.encode(&zip), sha)
}

pub(crate) async fn exec(cp: &ControlPlane, op: &str, input: Value) -> Result<Value, LambdaError> {
    cp.execute(&scope(), op, input).await
}

pub(crate) async fn ok(cp: &ControlPlane, op: &str, input: Value) -> Value {
    match exec(cp, op, input).await {
        Ok(v) => v,
        Err(e) => panic!("{op} failed: {e}"),
    }
}

/// Waits until `$LATEST` is Active and its last update Successful.
pub(crate) async fn settled(cp: &ControlPlane, name: &str) -> Value {
    for _ in 0..200 {
        let c = ok(
            cp,
            "GetFunctionConfiguration",
            json!({"FunctionName": name}),
        )
        .await;
        if c["State"] == "Active" && c["LastUpdateStatus"] == "Successful" {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{name} never settled");
}

/// Creates a function with environment `STAGE=staging` and waits until it is Active.
pub(crate) async fn create_settled(cp: &ControlPlane, name: &str) -> Value {
    let (zip, _) = zip_b64("def handler(e, c):\n    return 1\n");
    ok(
        cp,
        "CreateFunction",
        json!({
            "FunctionName": name,
            "Runtime": "python3.12",
            "Role": ROLE,
            "Handler": "handler.handler",
            "Code": {"ZipFile": zip},
            "Environment": {"Variables": {"STAGE": "staging"}},
        }),
    )
    .await;
    settled(cp, name).await
}

/// Changes `$LATEST` (its environment) and waits for the update to finish.
pub(crate) async fn update_env(cp: &ControlPlane, name: &str, stage: &str) {
    ok(
        cp,
        "UpdateFunctionConfiguration",
        json!({"FunctionName": name, "Environment": {"Variables": {"STAGE": stage}}}),
    )
    .await;
    settled(cp, name).await;
}

pub(crate) async fn publish(cp: &ControlPlane, name: &str) -> Value {
    ok(cp, "PublishVersion", json!({"FunctionName": name})).await
}

/// A function with versions 1 (STAGE=staging) and 2 (STAGE=prod).
pub(crate) async fn two_versions(cp: &ControlPlane, name: &str) {
    create_settled(cp, name).await;
    publish(cp, name).await;
    update_env(cp, name, "prod").await;
    publish(cp, name).await;
}

pub(crate) fn assert_err(r: Result<Value, LambdaError>, code: ErrorCode, message: &str) {
    match r {
        Ok(v) => panic!("expected {code:?} {message}, got {v}"),
        Err(e) => assert_eq!((e.code, e.message.as_str()), (code, message)),
    }
}

#[tokio::test]
async fn publish_makes_an_active_numbered_snapshot_and_changes_latest_revision() {
    let fx = fixture();
    let latest = create_settled(&fx.cp, "f").await;
    let v = publish(&fx.cp, "f").await;
    assert_eq!(v["FunctionArn"], format!("{ARN}:f:1"));
    assert_eq!(v["Version"], "1");
    assert_eq!(v["State"], "Active");
    assert_eq!(v["LastUpdateStatus"], "Successful");
    assert_eq!(v["CodeSha256"], latest["CodeSha256"]);
    assert_eq!(v["Environment"], json!({"Variables": {"STAGE": "staging"}}));
    assert!(v.get("StateReason").is_none());
    assert_ne!(v["RevisionId"], latest["RevisionId"]);
    let after = ok(
        &fx.cp,
        "GetFunctionConfiguration",
        json!({"FunctionName": "f"}),
    )
    .await;
    assert_ne!(
        after["RevisionId"], latest["RevisionId"],
        "publish changes $LATEST's revision"
    );
    // The version's own revision stays (it is already Active: nothing to settle).
    tokio::time::sleep(Duration::from_millis(60)).await;
    let got = ok(
        &fx.cp,
        "GetFunction",
        json!({"FunctionName": "f", "Qualifier": "1"}),
    )
    .await;
    assert_eq!(got["Configuration"]["RevisionId"], v["RevisionId"]);
    assert_eq!(got["Configuration"]["FunctionArn"], format!("{ARN}:f:1"));
    assert!(got["Code"]["Location"]
        .as_str()
        .unwrap_or_default()
        .contains("/_flint/code/"));
    // The version is its own snapshot, runnable at once.
    let (spec, invoked) = fx.cp.resolve_invoke(&scope(), "f", Some("1")).unwrap();
    let (latest_spec, _) = fx.cp.resolve_invoke(&scope(), "f", None).unwrap();
    assert_eq!(spec.version, "1");
    assert_eq!(invoked, format!("{ARN}:f:1"));
    assert_ne!(spec.snapshot_id, latest_spec.snapshot_id);
}

#[tokio::test]
async fn publishing_an_unchanged_latest_returns_the_newest_version() {
    let fx = fixture();
    create_settled(&fx.cp, "f").await;
    let first = ok(
        &fx.cp,
        "PublishVersion",
        json!({"FunctionName": "f", "Description": "first"}),
    )
    .await;
    let latest_rev = ok(
        &fx.cp,
        "GetFunctionConfiguration",
        json!({"FunctionName": "f"}),
    )
    .await["RevisionId"]
        .clone();
    let again = ok(
        &fx.cp,
        "PublishVersion",
        json!({"FunctionName": "f", "Description": "another description"}),
    )
    .await;
    assert_eq!(again["Version"], "1");
    assert_eq!(again["Description"], "first");
    assert_eq!(again["RevisionId"], first["RevisionId"]);
    let now = ok(
        &fx.cp,
        "GetFunctionConfiguration",
        json!({"FunctionName": "f"}),
    )
    .await;
    assert_eq!(now["RevisionId"], latest_rev, "nothing was published");
    let list = ok(
        &fx.cp,
        "ListVersionsByFunction",
        json!({"FunctionName": "f"}),
    )
    .await;
    assert_eq!(list["Versions"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn a_description_change_on_latest_publishes_a_new_version_with_the_same_code() {
    // AWS's version lifecycle: publish with an own description, change only `$LATEST`'s
    // description, publish again -> version 2 (same code); a third publish reuses 2.
    let fx = fixture();
    create_settled(&fx.cp, "f").await;
    let first = ok(
        &fx.cp,
        "PublishVersion",
        json!({"FunctionName": "f", "Description": "First version description"}),
    )
    .await;
    assert_eq!(first["Version"], "1");
    ok(
        &fx.cp,
        "UpdateFunctionConfiguration",
        json!({"FunctionName": "f", "Description": "Second version"}),
    )
    .await;
    settled(&fx.cp, "f").await;
    let second = publish(&fx.cp, "f").await;
    assert_eq!(second["Version"], "2");
    assert_eq!(second["Description"], "Second version");
    assert_eq!(second["CodeSha256"], first["CodeSha256"]);
    let third = ok(
        &fx.cp,
        "PublishVersion",
        json!({"FunctionName": "f", "Description": "Third version description"}),
    )
    .await;
    assert_eq!(third["Version"], "2");
    assert_eq!(third["RevisionId"], second["RevisionId"]);
}

#[tokio::test]
async fn update_function_code_with_publish_answers_with_the_new_versions_arn() {
    let fx = fixture();
    create_settled(&fx.cp, "f").await;
    let (zip, _) = zip_b64("def handler(e, c):\n    return 2\n");
    let answer = ok(
        &fx.cp,
        "UpdateFunctionCode",
        json!({"FunctionName": "f", "ZipFile": zip, "Publish": true}),
    )
    .await;
    assert_eq!(answer["Version"], "1");
    assert_eq!(answer["FunctionArn"], format!("{ARN}:f:1"));
    let latest = settled(&fx.cp, "f").await;
    assert_eq!(latest["FunctionArn"], format!("{ARN}:f"));
    assert_eq!(latest["CodeSha256"], answer["CodeSha256"]);
}

#[tokio::test]
async fn a_published_version_keeps_its_code_and_configuration_after_latest_changes() {
    let fx = fixture();
    create_settled(&fx.cp, "f").await;
    let v1 = publish(&fx.cp, "f").await;
    let (v1_spec, _) = fx.cp.resolve_invoke(&scope(), "f", Some("1")).unwrap();
    let (zip, sha) = zip_b64("def handler(e, c):\n    return 2\n");
    ok(
        &fx.cp,
        "UpdateFunctionCode",
        json!({"FunctionName": "f", "ZipFile": zip}),
    )
    .await;
    settled(&fx.cp, "f").await;
    update_env(&fx.cp, "f", "prod").await;
    let still = ok(
        &fx.cp,
        "GetFunctionConfiguration",
        json!({"FunctionName": "f:1"}),
    )
    .await;
    assert_eq!(still["CodeSha256"], v1["CodeSha256"]);
    assert_eq!(
        still["Environment"],
        json!({"Variables": {"STAGE": "staging"}})
    );
    let (spec, _) = fx.cp.resolve_invoke(&scope(), "f", Some("1")).unwrap();
    assert!(
        Arc::ptr_eq(&spec, &v1_spec),
        "the version's snapshot is untouched"
    );
    let v2 = publish(&fx.cp, "f").await;
    assert_eq!(v2["Version"], "2");
    assert_eq!(v2["CodeSha256"], sha);
    assert_eq!(v2["Environment"], json!({"Variables": {"STAGE": "prod"}}));
    let (spec2, _) = fx.cp.resolve_invoke(&scope(), "f", Some("2")).unwrap();
    assert_ne!(spec2.code_dir, v1_spec.code_dir);
    assert_eq!(
        spec2.environment.get("STAGE").map(String::as_str),
        Some("prod")
    );
}

#[tokio::test]
async fn publish_checks_code_sha256_and_revision_id_like_aws() {
    let fx = fixture();
    let latest = create_settled(&fx.cp, "f").await;
    let sha = latest["CodeSha256"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_err(
        exec(
            &fx.cp,
            "PublishVersion",
            json!({"FunctionName": "f", "CodeSha256": "somenonexistentsha256"}),
        )
        .await,
        ErrorCode::InvalidParameterValueException,
        &format!(
            "CodeSHA256 (somenonexistentsha256) is different from current CodeSHA256 in $LATEST \
             ({sha}). Please try again with the CodeSHA256 in $LATEST."
        ),
    );
    assert_err(
        exec(
            &fx.cp,
            "PublishVersion",
            json!({"FunctionName": "f", "RevisionId": "wrong"}),
        )
        .await,
        ErrorCode::PreconditionFailedException,
        "The Revision Id provided does not match the latest Revision Id. Call the \
         GetFunction/GetAlias API to retrieve the latest Revision Id",
    );
    let v = ok(
        &fx.cp,
        "PublishVersion",
        json!({"FunctionName": "f", "CodeSha256": sha, "RevisionId": latest["RevisionId"]}),
    )
    .await;
    assert_eq!(v["Version"], "1");
}

#[tokio::test]
async fn publish_refuses_while_the_function_is_pending_or_updating() {
    let fx = fixture();
    let (zip, _) = zip_b64("x = 1");
    ok(
        &fx.cp,
        "CreateFunction",
        json!({"FunctionName": "f", "Runtime": "python3.12", "Role": ROLE,
               "Handler": "handler.handler", "Code": {"ZipFile": zip}}),
    )
    .await;
    assert_err(
        exec(&fx.cp, "PublishVersion", json!({"FunctionName": "f"})).await,
        ErrorCode::ResourceConflictException,
        "The operation cannot be performed at this time. The function is currently in the \
         following state: Pending",
    );
    settled(&fx.cp, "f").await;
    ok(
        &fx.cp,
        "UpdateFunctionConfiguration",
        json!({"FunctionName": "f", "Description": "d"}),
    )
    .await;
    assert_err(
        exec(&fx.cp, "PublishVersion", json!({"FunctionName": "f"})).await,
        ErrorCode::ResourceConflictException,
        &format!(
            "The operation cannot be performed at this time. An update is in progress for \
             resource: {ARN}:f"
        ),
    );
    settled(&fx.cp, "f").await;
    assert_eq!(publish(&fx.cp, "f").await["Description"], "d");
}

#[tokio::test]
async fn publish_on_missing_or_qualified_functions_fails() {
    let fx = fixture();
    assert_err(
        exec(&fx.cp, "PublishVersion", json!({"FunctionName": "nope"})).await,
        ErrorCode::ResourceNotFoundException,
        &format!("Function not found: {ARN}:nope"),
    );
    create_settled(&fx.cp, "f").await;
    assert_err(
        exec(&fx.cp, "PublishVersion", json!({"FunctionName": "f:1"})).await,
        ErrorCode::InvalidParameterValueException,
        "This operation is permitted on Lambda functions only. Aliases and versions do not \
         support this operation. Please specify either a function name or an unqualified \
         function ARN.",
    );
    let v = ok(
        &fx.cp,
        "PublishVersion",
        json!({"FunctionName": format!("{ARN}:f")}),
    )
    .await;
    assert_eq!(v["Version"], "1");
}

#[tokio::test]
async fn version_numbers_are_never_reused_after_a_delete() {
    let fx = fixture();
    two_versions(&fx.cp, "f").await;
    ok(
        &fx.cp,
        "DeleteFunction",
        json!({"FunctionName": "f", "Qualifier": "2"}),
    )
    .await;
    assert_err(
        exec(
            &fx.cp,
            "GetFunction",
            json!({"FunctionName": "f", "Qualifier": "2"}),
        )
        .await,
        ErrorCode::ResourceNotFoundException,
        &format!("Function not found: {ARN}:f:2"),
    );
    update_env(&fx.cp, "f", "third").await;
    let v = publish(&fx.cp, "f").await;
    assert_eq!(v["Version"], "3");
}

#[tokio::test]
async fn list_versions_shows_latest_first_then_versions_ascending_with_qualified_arns() {
    let fx = fixture();
    two_versions(&fx.cp, "f").await;
    let list = ok(
        &fx.cp,
        "ListVersionsByFunction",
        json!({"FunctionName": "f"}),
    )
    .await;
    let versions = list["Versions"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = versions
        .iter()
        .filter_map(|v| v["Version"].as_str())
        .collect();
    assert_eq!(names, ["$LATEST", "1", "2"]);
    let arns: Vec<&str> = versions
        .iter()
        .filter_map(|v| v["FunctionArn"].as_str())
        .collect();
    assert_eq!(
        arns,
        [
            format!("{ARN}:f:$LATEST"),
            format!("{ARN}:f:1"),
            format!("{ARN}:f:2")
        ]
    );
    // The listing view, as AWS's: no State.
    assert!(versions.iter().all(|v| v.get("State").is_none()));
    assert!(list.get("NextMarker").is_none());
    assert_eq!(
        versions[1]["Environment"],
        json!({"Variables": {"STAGE": "staging"}})
    );
}

#[tokio::test]
async fn list_versions_pages_with_markers() {
    let fx = fixture();
    two_versions(&fx.cp, "f").await;
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..10 {
        let mut input = json!({"FunctionName": "f", "MaxItems": 1});
        if let Some(m) = &marker {
            input["Marker"] = json!(m);
        }
        let page = ok(&fx.cp, "ListVersionsByFunction", input).await;
        let versions = page["Versions"].as_array().cloned().unwrap_or_default();
        assert_eq!(versions.len(), 1);
        seen.push(
            versions[0]["Version"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        match page["NextMarker"].as_str() {
            Some(m) => marker = Some(m.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["$LATEST", "1", "2"]);
    assert_err(
        exec(
            &fx.cp,
            "ListVersionsByFunction",
            json!({"FunctionName": "f", "Marker": "!!"}),
        )
        .await,
        ErrorCode::InvalidParameterValueException,
        "Invalid marker: !!",
    );
    assert_err(
        exec(
            &fx.cp,
            "ListVersionsByFunction",
            json!({"FunctionName": "nope"}),
        )
        .await,
        ErrorCode::ResourceNotFoundException,
        &format!("Function not found: {ARN}:nope"),
    );
}

#[tokio::test]
async fn qualified_get_and_delete_follow_aws_rules() {
    let fx = fixture();
    create_settled(&fx.cp, "f").await;
    publish(&fx.cp, "f").await;
    let latest = ok(
        &fx.cp,
        "GetFunction",
        json!({"FunctionName": "f", "Qualifier": "$LATEST"}),
    )
    .await;
    assert_eq!(
        latest["Configuration"]["FunctionArn"],
        format!("{ARN}:f:$LATEST")
    );
    assert_err(
        exec(
            &fx.cp,
            "GetFunctionConfiguration",
            json!({"FunctionName": "f", "Qualifier": "1221"}),
        )
        .await,
        ErrorCode::ResourceNotFoundException,
        &format!("Function not found: {ARN}:f:1221"),
    );
    assert_err(
        exec(
            &fx.cp,
            "DeleteFunction",
            json!({"FunctionName": "f", "Qualifier": "$LATEST"}),
        )
        .await,
        ErrorCode::InvalidParameterValueException,
        "$LATEST version cannot be deleted without deleting the function.",
    );
    // Deleting a version that does not exist succeeds (twice).
    for _ in 0..2 {
        let r = ok(
            &fx.cp,
            "DeleteFunction",
            json!({"FunctionName": "f", "Qualifier": "1233"}),
        )
        .await;
        assert_eq!(r["StatusCode"], 204);
    }
    let before = fx.retired.0.lock().len();
    ok(&fx.cp, "DeleteFunction", json!({"FunctionName": "f:1"})).await;
    assert_eq!(
        fx.retired.0.lock().len(),
        before + 1,
        "version 1's snapshot retired"
    );
    ok(&fx.cp, "DeleteFunction", json!({"FunctionName": "f"})).await;
    assert_err(
        exec(
            &fx.cp,
            "DeleteFunction",
            json!({"FunctionName": "f", "Qualifier": "1233"}),
        )
        .await,
        ErrorCode::ResourceNotFoundException,
        &format!("Function not found: {ARN}:f"),
    );
}

#[tokio::test]
async fn deleting_a_function_removes_its_versions_and_aliases_and_retires_their_snapshots() {
    let fx = fixture();
    two_versions(&fx.cp, "f").await;
    ok(
        &fx.cp,
        "CreateAlias",
        json!({"FunctionName": "f", "Name": "live", "FunctionVersion": "1"}),
    )
    .await;
    let snapshots: Vec<String> = ["$LATEST", "1", "2"]
        .iter()
        .map(|q| {
            fx.cp
                .resolve_invoke(&scope(), "f", Some(q))
                .map(|(s, _)| s.snapshot_id.clone())
                .unwrap()
        })
        .collect();
    fx.retired.0.lock().clear();
    ok(&fx.cp, "DeleteFunction", json!({"FunctionName": "f"})).await;
    let retired = fx.retired.0.lock().clone();
    for id in &snapshots {
        assert!(retired.contains(id), "{id} retired");
    }
    create_settled(&fx.cp, "f").await;
    let aliases = ok(&fx.cp, "ListAliases", json!({"FunctionName": "f"})).await;
    assert_eq!(aliases["Aliases"], json!([]));
    let versions = ok(
        &fx.cp,
        "ListVersionsByFunction",
        json!({"FunctionName": "f"}),
    )
    .await;
    assert_eq!(versions["Versions"].as_array().map(Vec::len), Some(1));
    // Numbering starts again for the new function.
    assert_eq!(publish(&fx.cp, "f").await["Version"], "1");
}

#[tokio::test]
async fn versions_and_aliases_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let retired = Arc::new(Retired::default());
    let alias;
    {
        let cp = open(dir.path(), retired.clone());
        two_versions(&cp, "f").await;
        alias = ok(
            &cp,
            "CreateAlias",
            json!({"FunctionName": "f", "Name": "live", "FunctionVersion": "1",
                   "Description": "d", "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.25}}}),
        )
        .await;
        // Version 2 is in the alias's routing: it stays.
        assert_err(
            exec(&cp, "DeleteFunction", json!({"FunctionName": "f:2"})).await,
            ErrorCode::ResourceConflictException,
            "Unable to delete version because the following aliases reference it: [live]",
        );
    }
    let cp = open(dir.path(), retired);
    assert_eq!(
        ok(
            &cp,
            "GetAlias",
            json!({"FunctionName": "f", "Name": "live"})
        )
        .await,
        alias
    );
    let list = ok(&cp, "ListVersionsByFunction", json!({"FunctionName": "f"})).await;
    let names: Vec<&str> = list["Versions"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v["Version"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["$LATEST", "1", "2"]);
    let (spec, invoked) = cp.resolve_invoke(&scope(), "f", Some("live")).unwrap();
    assert!(spec.version == "1" || spec.version == "2");
    assert_eq!(invoked, format!("{ARN}:f:live"));
    // The counter survives too.
    update_env(&cp, "f", "third").await;
    assert_eq!(publish(&cp, "f").await["Version"], "3");
}
