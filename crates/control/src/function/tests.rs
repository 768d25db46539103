//! Function operations end to end through `ControlPlane::execute`, on a real store in a temp dir.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::code::test_zip;
use crate::{ControlOptions, ControlPlane, ErrorCode, FixedCatalog, LambdaError, Scope};

const ROLE: &str = "arn:aws:iam::000000000000:role/lambda-role";

use crate::test_feed::Retired;

struct Fixture {
    dir: tempfile::TempDir,
    cp: Arc<ControlPlane>,
    retired: Arc<Retired>,
}

fn options() -> ControlOptions {
    ControlOptions {
        public_base_url: "http://flint.test:9000".into(),
        create_settle: Duration::from_millis(30),
        update_settle: Duration::from_millis(30),
        ..Default::default()
    }
}

fn open(dir: &std::path::Path, retired: Arc<Retired>) -> Arc<ControlPlane> {
    let store = Arc::new(flint_store::Store::open(dir).unwrap());
    let catalog = Arc::new(FixedCatalog(vec!["python3.12".into(), "nodejs20.x".into()]));
    let cp = ControlPlane::open_with(dir, store, catalog, options()).unwrap();
    retired.follow(&cp);
    cp
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let retired = Arc::new(Retired::default());
    let cp = open(dir.path(), retired.clone());
    Fixture { dir, cp, retired }
}

fn scope() -> Scope {
    Scope {
        account: "000000000000".into(),
        region: "us-east-1".into(),
    }
}

fn zip_bytes(body: &str) -> Vec<u8> {
    test_zip(&[("handler.py", body.as_bytes(), 0o644)])
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn create_input(name: &str) -> Value {
    json!({
        "FunctionName": name,
        "Runtime": "python3.12",
        "Role": ROLE,
        "Handler": "handler.handler",
        "Code": {"ZipFile": b64(&zip_bytes("def handler(e, c):\n    return e\n"))},
    })
}

async fn exec(cp: &ControlPlane, op: &str, input: Value) -> Result<Value, LambdaError> {
    cp.execute(&scope(), op, input).await
}

async fn create(cp: &ControlPlane, name: &str) -> Value {
    exec(cp, "CreateFunction", create_input(name))
        .await
        .unwrap()
}

/// Waits until the function's $LATEST is Active and its last update Successful.
async fn settled(cp: &ControlPlane, name: &str) -> Value {
    for _ in 0..100 {
        let c = exec(
            cp,
            "GetFunctionConfiguration",
            json!({"FunctionName": name}),
        )
        .await
        .unwrap();
        if c["State"] == "Active" && c["LastUpdateStatus"] == "Successful" {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{name} never settled");
}

fn assert_err(r: Result<Value, LambdaError>, code: ErrorCode, message: &str) {
    let e = r.unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (code, message));
}

#[tokio::test]
async fn create_answers_pending_with_aws_fields_then_becomes_active() {
    let fx = fixture();
    let zip = zip_bytes("def handler(e, c):\n    return e\n");
    let c = create(&fx.cp, "f1").await;
    assert_eq!(c["FunctionName"], "f1");
    assert_eq!(
        c["FunctionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:f1"
    );
    assert_eq!(c["Runtime"], "python3.12");
    assert_eq!(c["Role"], ROLE);
    assert_eq!(c["Handler"], "handler.handler");
    assert_eq!(c["CodeSize"], zip.len());
    assert_eq!(c["CodeSha256"], b64(&Sha256::digest(&zip)));
    assert_eq!(c["Description"], "");
    assert_eq!(c["Timeout"], 3);
    assert_eq!(c["MemorySize"], 128);
    assert_eq!(c["Version"], "$LATEST");
    assert_eq!(c["TracingConfig"], json!({"Mode": "PassThrough"}));
    assert_eq!(c["PackageType"], "Zip");
    assert_eq!(c["Architectures"], json!(["x86_64"]));
    assert_eq!(c["EphemeralStorage"], json!({"Size": 512}));
    assert_eq!(
        c["SnapStart"],
        json!({"ApplyOn": "None", "OptimizationStatus": "Off"})
    );
    assert_eq!(
        c["LoggingConfig"],
        json!({"LogFormat": "Text", "LogGroup": "/aws/lambda/f1"})
    );
    assert!(c["RuntimeVersionConfig"]["RuntimeVersionArn"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:lambda:us-east-1::runtime:"));
    assert_eq!(c["State"], "Pending");
    assert_eq!(c["StateReason"], "The function is being created.");
    assert_eq!(c["StateReasonCode"], "Creating");
    assert!(c.get("LastUpdateStatus").is_none());
    assert!(c.get("Environment").is_none());
    assert_eq!(c["LastModified"].as_str().unwrap().len(), 28);
    uuid::Uuid::parse_str(c["RevisionId"].as_str().unwrap()).unwrap();

    let after = settled(&fx.cp, "f1").await;
    assert_ne!(
        after["RevisionId"], c["RevisionId"],
        "the transition changes the RevisionId"
    );
    assert!(after.get("StateReason").is_none());
}

#[tokio::test]
async fn get_function_returns_configuration_and_a_working_code_location() {
    let fx = fixture();
    let mut input = create_input("f1");
    input["Tags"] = json!({"team": "a"});
    exec(&fx.cp, "CreateFunction", input).await.unwrap();
    let g = exec(&fx.cp, "GetFunction", json!({"FunctionName": "f1"}))
        .await
        .unwrap();
    assert_eq!(g["Configuration"]["FunctionName"], "f1");
    assert_eq!(g["Code"]["RepositoryType"], "S3");
    assert_eq!(g["Tags"], json!({"team": "a"}));
    assert!(g.get("Concurrency").is_none());
    let location = g["Code"]["Location"].as_str().unwrap();
    let zip = zip_bytes("def handler(e, c):\n    return e\n");
    let hex = hex::encode(Sha256::digest(&zip));
    let prefix = format!("http://flint.test:9000/_flint/code/{hex}?expires=");
    assert!(location.starts_with(&prefix), "{location}");
    let query = &location[prefix.len()..];
    let (expires, signature) = query.split_once("&signature=").unwrap();
    let expires: u64 = expires.parse().unwrap();
    let code = crate::signed_url::Download::FunctionCode;
    let path = fx.cp.download(code, &hex, expires, signature).unwrap();
    assert_eq!(std::fs::read(path).unwrap(), zip);
    let refused = Err(crate::signed_url::DownloadError::BadSignature);
    assert_eq!(fx.cp.download(code, &hex, expires, "0000"), refused);
    assert_eq!(fx.cp.download(code, &hex, expires + 1, signature), refused);
    // Nor does a function's URL open the layers' path.
    let layer = crate::signed_url::Download::LayerContent;
    assert_eq!(fx.cp.download(layer, &hex, expires, signature), refused);
}

#[tokio::test]
async fn names_arns_and_qualifiers_address_the_same_function() {
    let fx = fixture();
    create(&fx.cp, "f1").await;
    for name in [
        "f1",
        "000000000000:function:f1",
        "arn:aws:lambda:us-east-1:000000000000:function:f1",
    ] {
        let c = exec(
            &fx.cp,
            "GetFunctionConfiguration",
            json!({"FunctionName": name}),
        )
        .await
        .unwrap();
        assert_eq!(
            c["FunctionArn"],
            "arn:aws:lambda:us-east-1:000000000000:function:f1"
        );
    }
    let c = exec(
        &fx.cp,
        "GetFunctionConfiguration",
        json!({"FunctionName": "f1", "Qualifier": "$LATEST"}),
    )
    .await
    .unwrap();
    assert_eq!(
        c["FunctionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:f1:$LATEST"
    );
}

#[tokio::test]
async fn missing_functions_and_versions_are_not_found_as_on_aws() {
    let fx = fixture();
    assert_err(
        exec(&fx.cp, "GetFunction", json!({"FunctionName": "nope"})).await,
        ErrorCode::ResourceNotFoundException,
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope",
    );
    assert_err(
        exec(
            &fx.cp,
            "GetFunction",
            json!({"FunctionName": "some-function:$LATEST", "Qualifier": "$LATEST"}),
        )
        .await,
        ErrorCode::ResourceNotFoundException,
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:some-function:$LATEST",
    );
    create(&fx.cp, "f1").await;
    assert_err(
        exec(
            &fx.cp,
            "GetFunctionConfiguration",
            json!({"FunctionName": "f1", "Qualifier": "1221"}),
        )
        .await,
        ErrorCode::ResourceNotFoundException,
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:f1:1221",
    );
    assert_err(
        exec(
            &fx.cp,
            "GetFunction",
            json!({"FunctionName": "arn:aws:lambda:ap-southeast-1:000000000000:function:f1"}),
        )
        .await,
        ErrorCode::ResourceNotFoundException,
        "Functions from 'ap-southeast-1' are not reachable in this region ('us-east-1')",
    );
    assert_err(
        exec(&fx.cp, "GetFunction", json!({"FunctionName": "arn:aws:lambda:us-east-1:000000000000:function:f1:1", "Qualifier": "$LATEST"})).await,
        ErrorCode::InvalidParameterValueException,
        "The derived qualifier from the function name does not match the specified qualifier.",
    );
    // Another scope does not see the function.
    let other = Scope {
        account: "111111111111".into(),
        region: "us-east-1".into(),
    };
    let e = fx
        .cp
        .execute(&other, "GetFunction", json!({"FunctionName": "f1"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceNotFoundException);
}

#[tokio::test]
async fn creating_an_existing_function_conflicts() {
    let fx = fixture();
    create(&fx.cp, "f1").await;
    assert_err(
        exec(&fx.cp, "CreateFunction", create_input("f1")).await,
        ErrorCode::ResourceConflictException,
        "Function already exist: f1",
    );
}

#[tokio::test]
async fn create_rejects_bad_code_and_configuration_like_aws() {
    let fx = fixture();
    let mut i = create_input("f1");
    i["Code"] = json!({"ZipFile": b64(b"this is not a zipfile, just a random string")});
    assert_err(
        exec(&fx.cp, "CreateFunction", i).await,
        ErrorCode::InvalidParameterValueException,
        "Could not unzip uploaded file. Please check your file, then try to upload again.",
    );
    let mut i = create_input("f1");
    i["Code"] = json!({"S3Bucket": "nope", "S3Key": "k.zip"});
    assert_err(
        exec(&fx.cp, "CreateFunction", i).await,
        ErrorCode::InvalidParameterValueException,
        "Error occurred while GetObject. S3 Error Code: NoSuchBucket. S3 Error Message: The specified bucket does not exist",
    );
    let mut i = create_input("f1");
    i["Runtime"] = json!("python3.7");
    let e = exec(&fx.cp, "CreateFunction", i).await.unwrap_err();
    assert!(e
        .message
        .starts_with("The runtime parameter of python3.7 is no longer supported"));
    let mut i = create_input("f1");
    i.as_object_mut().unwrap().remove("Handler");
    assert_err(
        exec(&fx.cp, "CreateFunction", i).await,
        ErrorCode::InvalidParameterValueException,
        "Runtime and Handler are mandatory parameters for functions created with deployment packages.",
    );
    let mut i = create_input("f1");
    i["Runtime"] = json!("java21");
    let e = exec(&fx.cp, "CreateFunction", i).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParameterValueException);
    assert!(e.message.contains("not supported by this Flint server"));
    // An Image function may not name a runtime or handler (create_input has both).
    let mut i = create_input("f1");
    i["PackageType"] = json!("Image");
    i["Code"] = json!({"ImageUri": "127.0.0.1:1/repo:latest"});
    assert_err(
        exec(&fx.cp, "CreateFunction", i).await,
        ErrorCode::InvalidParameterValueException,
        crate::configuration::IMAGE_WITH_ZIP_MEMBERS,
    );
    // An image whose registry cannot be reached is refused at once.
    let mut i = create_input("f1");
    i["PackageType"] = json!("Image");
    i["Code"] = json!({"ImageUri": "127.0.0.1:1/repo:latest"});
    i.as_object_mut().unwrap().remove("Runtime");
    i.as_object_mut().unwrap().remove("Handler");
    let e = exec(&fx.cp, "CreateFunction", i).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParameterValueException);
    assert!(
        e.message.contains("127.0.0.1:1/repo:latest"),
        "{}",
        e.message
    );
    // A zip function may not name an image.
    let mut i = create_input("f1");
    i["Code"]["ImageUri"] = json!("127.0.0.1:1/repo:latest");
    assert_err(
        exec(&fx.cp, "CreateFunction", i).await,
        ErrorCode::InvalidParameterValueException,
        "Please don't provide ImageUri when the intended function PackageType is Zip.",
    );
    // Nothing was created by the failed attempts.
    let l = exec(&fx.cp, "ListFunctions", json!({})).await.unwrap();
    assert_eq!(l["Functions"], json!([]));
}

#[tokio::test]
async fn environment_is_shown_only_when_configured() {
    let fx = fixture();
    let mut i = create_input("f1");
    i["Environment"] = json!({"Variables": {}});
    let c = exec(&fx.cp, "CreateFunction", i).await.unwrap();
    assert_eq!(c["Environment"], json!({"Variables": {}}));
    let c = create(&fx.cp, "f2").await;
    assert!(c.get("Environment").is_none());
}

#[tokio::test]
async fn update_configuration_is_in_progress_then_successful_and_blocks_a_second_update() {
    let fx = fixture();
    create(&fx.cp, "f1").await;
    let before = settled(&fx.cp, "f1").await;
    let u = exec(
        &fx.cp,
        "UpdateFunctionConfiguration",
        json!({"FunctionName": "f1", "Description": "Changed", "MemorySize": 512, "Timeout": 10,
               "Environment": {"Variables": {"ENV_A": "a"}}, "Runtime": "nodejs20.x"}),
    )
    .await
    .unwrap();
    assert_eq!(u["LastUpdateStatus"], "InProgress");
    assert_eq!(
        u["LastUpdateStatusReason"],
        "The function is being created."
    );
    assert_eq!(u["LastUpdateStatusReasonCode"], "Creating");
    assert_eq!(u["State"], "Active");
    assert_eq!(u["Description"], "Changed");
    assert_eq!(
        (u["MemorySize"].as_u64(), u["Timeout"].as_u64()),
        (Some(512), Some(10))
    );
    assert_eq!(u["Environment"], json!({"Variables": {"ENV_A": "a"}}));
    assert_ne!(u["RuntimeVersionConfig"], before["RuntimeVersionConfig"]);
    assert_ne!(u["RevisionId"], before["RevisionId"]);
    assert_err(
        exec(&fx.cp, "UpdateFunctionConfiguration", json!({"FunctionName": "f1", "Description": "again"})).await,
        ErrorCode::ResourceConflictException,
        "The operation cannot be performed at this time. An update is in progress for resource: arn:aws:lambda:us-east-1:000000000000:function:f1",
    );
    let after = settled(&fx.cp, "f1").await;
    assert_eq!(after["Description"], "Changed");
    assert!(after.get("LastUpdateStatusReason").is_none());
    exec(
        &fx.cp,
        "UpdateFunctionConfiguration",
        json!({"FunctionName": "f1", "Description": "again"}),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn stale_revision_id_fails_the_precondition() {
    let fx = fixture();
    let c = create(&fx.cp, "f1").await;
    let current = settled(&fx.cp, "f1").await;
    for (op, extra) in [
        ("UpdateFunctionConfiguration", json!({"Description": "x"})),
        (
            "UpdateFunctionCode",
            json!({"ZipFile": b64(&zip_bytes("x = 2"))}),
        ),
    ] {
        let mut input = extra;
        input["FunctionName"] = json!("f1");
        input["RevisionId"] = c["RevisionId"].clone();
        assert_err(
            exec(&fx.cp, op, input).await,
            ErrorCode::PreconditionFailedException,
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
        );
    }
    exec(
        &fx.cp,
        "UpdateFunctionConfiguration",
        json!({"FunctionName": "f1", "Description": "x", "RevisionId": current["RevisionId"]}),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn concurrent_updates_with_one_revision_let_exactly_one_win() {
    let fx = fixture();
    create(&fx.cp, "f1").await;
    let current = settled(&fx.cp, "f1").await;
    let rev = current["RevisionId"].clone();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let cp = fx.cp.clone();
        let rev = rev.clone();
        tasks.push(tokio::spawn(async move {
            cp.execute(
                &scope(),
                "UpdateFunctionConfiguration",
                json!({"FunctionName": "f1", "Description": format!("d{i}"), "RevisionId": rev}),
            )
            .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(e) => assert!(matches!(
                e.code,
                ErrorCode::PreconditionFailedException | ErrorCode::ResourceConflictException
            )),
        }
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn update_code_replaces_the_code_and_retires_the_old_snapshot() {
    let fx = fixture();
    create(&fx.cp, "f1").await;
    settled(&fx.cp, "f1").await;
    let (old_spec, _) = fx.cp.resolve_invoke(&scope(), "f1", None).unwrap();
    let new_zip = zip_bytes("def handler(e, c):\n    return 2\n");
    let u = exec(
        &fx.cp,
        "UpdateFunctionCode",
        json!({"FunctionName": "f1", "ZipFile": b64(&new_zip)}),
    )
    .await
    .unwrap();
    assert_eq!(u["CodeSha256"], b64(&Sha256::digest(&new_zip)));
    assert_eq!(u["CodeSize"], new_zip.len());
    assert_eq!(u["LastUpdateStatus"], "InProgress");
    assert_eq!(*fx.retired.0.lock(), vec![old_spec.snapshot_id.clone()]);
    let (new_spec, _) = fx.cp.resolve_invoke(&scope(), "f1", None).unwrap();
    assert_ne!(new_spec.snapshot_id, old_spec.snapshot_id);
    assert_eq!(
        std::fs::read_to_string(new_spec.code_dir.join("handler.py")).unwrap(),
        "def handler(e, c):\n    return 2\n"
    );
    settled(&fx.cp, "f1").await;
    // Settling changes the RevisionId but not what runs: same snapshot, same Arc.
    let (settled_spec, _) = fx.cp.resolve_invoke(&scope(), "f1", None).unwrap();
    assert!(Arc::ptr_eq(&settled_spec, &new_spec));
    assert_err(
        exec(
            &fx.cp,
            "UpdateFunctionCode",
            json!({"FunctionName": "f1", "ImageUri": "x:latest"}),
        )
        .await,
        ErrorCode::InvalidParameterValueException,
        "Please don't provide ImageUri when updating a function with packageType Zip.",
    );
    assert_err(
        exec(
            &fx.cp,
            "UpdateFunctionCode",
            json!({"FunctionName": "nope", "ZipFile": b64(&new_zip)}),
        )
        .await,
        ErrorCode::ResourceNotFoundException,
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope",
    );
}

#[tokio::test]
async fn delete_removes_the_function_and_follows_aws_rules_for_qualifiers() {
    let fx = fixture();
    create(&fx.cp, "f1").await;
    settled(&fx.cp, "f1").await;
    let (spec, _) = fx.cp.resolve_invoke(&scope(), "f1", None).unwrap();
    assert_err(
        exec(
            &fx.cp,
            "DeleteFunction",
            json!({"FunctionName": "f1", "Qualifier": "$LATEST"}),
        )
        .await,
        ErrorCode::InvalidParameterValueException,
        "$LATEST version cannot be deleted without deleting the function.",
    );
    // A version that does not exist: nothing to do, success.
    let d = exec(
        &fx.cp,
        "DeleteFunction",
        json!({"FunctionName": "f1", "Qualifier": "1233"}),
    )
    .await
    .unwrap();
    assert_eq!(d, json!({"StatusCode": 204}));
    let d = exec(&fx.cp, "DeleteFunction", json!({"FunctionName": "f1"}))
        .await
        .unwrap();
    assert_eq!(d, json!({"StatusCode": 204}));
    assert!(fx.retired.0.lock().contains(&spec.snapshot_id));
    let gone = "Function not found: arn:aws:lambda:us-east-1:000000000000:function:f1";
    assert_err(
        exec(&fx.cp, "DeleteFunction", json!({"FunctionName": "f1"})).await,
        ErrorCode::ResourceNotFoundException,
        gone,
    );
    assert_err(
        exec(
            &fx.cp,
            "DeleteFunction",
            json!({"FunctionName": "f1", "Qualifier": "1233"}),
        )
        .await,
        ErrorCode::ResourceNotFoundException,
        gone,
    );
    assert_err(
        exec(&fx.cp, "GetFunction", json!({"FunctionName": "f1"})).await,
        ErrorCode::ResourceNotFoundException,
        gone,
    );
    // The name can be used again.
    create(&fx.cp, "f1").await;
}

#[tokio::test]
async fn publish_on_create_makes_version_one_and_list_all_shows_it() {
    let fx = fixture();
    let mut i = create_input("f1");
    i["Publish"] = json!(true);
    let c = exec(&fx.cp, "CreateFunction", i).await.unwrap();
    assert_eq!(c["Version"], "1");
    assert_eq!(
        c["FunctionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:f1"
    );
    create(&fx.cp, "f2").await;
    settled(&fx.cp, "f1").await;
    let v1 = exec(
        &fx.cp,
        "GetFunction",
        json!({"FunctionName": "f1", "Qualifier": "1"}),
    )
    .await
    .unwrap();
    assert_eq!(
        v1["Configuration"]["FunctionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:f1:1"
    );
    let all = exec(&fx.cp, "ListFunctions", json!({"FunctionVersion": "ALL"}))
        .await
        .unwrap();
    let arns: Vec<&str> = all["Functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["FunctionArn"].as_str().unwrap())
        .collect();
    assert_eq!(
        arns,
        vec![
            "arn:aws:lambda:us-east-1:000000000000:function:f1:$LATEST",
            "arn:aws:lambda:us-east-1:000000000000:function:f1:1",
            "arn:aws:lambda:us-east-1:000000000000:function:f2:$LATEST",
        ]
    );
    let default = exec(&fx.cp, "ListFunctions", json!({})).await.unwrap();
    let f = &default["Functions"][0];
    assert_eq!(
        f["FunctionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:f1"
    );
    for absent in ["State", "LastUpdateStatus", "RuntimeVersionConfig"] {
        assert!(f.get(absent).is_none(), "{absent}");
    }
    // Deleting version 1 leaves $LATEST.
    exec(
        &fx.cp,
        "DeleteFunction",
        json!({"FunctionName": "f1", "Qualifier": "1"}),
    )
    .await
    .unwrap();
    assert!(exec(
        &fx.cp,
        "GetFunction",
        json!({"FunctionName": "f1", "Qualifier": "1"})
    )
    .await
    .is_err());
    assert!(exec(&fx.cp, "GetFunction", json!({"FunctionName": "f1"}))
        .await
        .is_ok());
}

#[tokio::test]
async fn list_functions_pages_with_markers() {
    let fx = fixture();
    for n in ["c", "a", "b"] {
        create(&fx.cp, n).await;
    }
    let p1 = exec(&fx.cp, "ListFunctions", json!({"MaxItems": 2}))
        .await
        .unwrap();
    let names = |v: &Value| -> Vec<String> {
        v["Functions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["FunctionName"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&p1), vec!["a", "b"]);
    let marker = p1["NextMarker"].as_str().unwrap().to_string();
    let p2 = exec(
        &fx.cp,
        "ListFunctions",
        json!({"MaxItems": 2, "Marker": marker}),
    )
    .await
    .unwrap();
    assert_eq!(names(&p2), vec!["c"]);
    assert!(p2.get("NextMarker").is_none());
    let all = exec(&fx.cp, "ListFunctions", json!({"MaxItems": 1000}))
        .await
        .unwrap();
    assert_eq!(names(&all).len(), 3);
    assert!(exec(&fx.cp, "ListFunctions", json!({"Marker": "!!"}))
        .await
        .is_err());
}

#[tokio::test]
async fn list_functions_caps_pages_at_fifty() {
    let fx = fixture();
    for i in 0..52 {
        create(&fx.cp, &format!("f{i:02}")).await;
    }
    let p1 = exec(&fx.cp, "ListFunctions", json!({})).await.unwrap();
    assert_eq!(p1["Functions"].as_array().unwrap().len(), 50);
    let p2 = exec(&fx.cp, "ListFunctions", json!({"Marker": p1["NextMarker"]}))
        .await
        .unwrap();
    assert_eq!(p2["Functions"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn account_settings_report_limits_and_real_usage() {
    let fx = fixture();
    let s = exec(&fx.cp, "GetAccountSettings", Value::Null)
        .await
        .unwrap();
    assert_eq!(
        s["AccountLimit"],
        json!({"TotalCodeSize": 80530636800u64, "CodeSizeUnzipped": 262144000, "CodeSizeZipped": 52428800,
               "ConcurrentExecutions": 1000, "UnreservedConcurrentExecutions": 1000})
    );
    assert_eq!(
        s["AccountUsage"],
        json!({"TotalCodeSize": 0, "FunctionCount": 0})
    );
    let c1 = create(&fx.cp, "f1").await;
    let c2 = create(&fx.cp, "f2").await;
    let s = exec(&fx.cp, "GetAccountSettings", json!({})).await.unwrap();
    let total = c1["CodeSize"].as_u64().unwrap() + c2["CodeSize"].as_u64().unwrap();
    assert_eq!(
        s["AccountUsage"],
        json!({"TotalCodeSize": total, "FunctionCount": 2})
    );
}

#[tokio::test]
async fn create_with_a_missing_code_signing_config_is_code_signing_config_not_found() {
    let fx = fixture();
    let missing = "arn:aws:lambda:us-east-1:000000000000:code-signing-config:csc-0123456789abcdefg";
    let mut input = create_input("f1");
    input["CodeSigningConfigArn"] = missing.into();
    assert_err(
        exec(&fx.cp, "CreateFunction", input).await,
        ErrorCode::CodeSigningConfigNotFoundException,
        &format!(
            "The code signing configuration cannot be found. Check that the provided \
             configuration is not deleted: {missing}."
        ),
    );
    assert!(exec(&fx.cp, "GetFunction", json!({"FunctionName": "f1"}))
        .await
        .is_err());
    // An existing configuration is accepted and bound.
    let csc = exec(
        &fx.cp,
        "CreateCodeSigningConfig",
        json!({"AllowedPublishers": {"SigningProfileVersionArns": ["arn:aws:signer:us-east-1:000000000000:/signing-profiles/p"]}}),
    )
    .await
    .unwrap();
    let arn = csc["CodeSigningConfig"]["CodeSigningConfigArn"].clone();
    let mut input = create_input("f2");
    input["CodeSigningConfigArn"] = arn.clone();
    exec(&fx.cp, "CreateFunction", input).await.unwrap();
    let bound = exec(
        &fx.cp,
        "GetFunctionCodeSigningConfig",
        json!({"FunctionName": "f2"}),
    )
    .await
    .unwrap();
    assert_eq!(bound["CodeSigningConfigArn"], arn);
}

#[tokio::test]
async fn layer_versions_count_towards_the_accounts_code_size() {
    let fx = fixture();
    let f = create(&fx.cp, "f1").await;
    let layer = zip_bytes("LAYER = 1");
    let l1 = exec(
        &fx.cp,
        "PublishLayerVersion",
        json!({"LayerName": "lib", "Content": {"ZipFile": b64(&layer)}}),
    )
    .await
    .unwrap();
    let l2 = exec(
        &fx.cp,
        "PublishLayerVersion",
        json!({"LayerName": "lib", "Content": {"ZipFile": b64(&zip_bytes("LAYER = 22"))}}),
    )
    .await
    .unwrap();
    let layer_sizes =
        l1["Content"]["CodeSize"].as_u64().unwrap() + l2["Content"]["CodeSize"].as_u64().unwrap();
    assert!(layer_sizes > 0);
    let s = exec(&fx.cp, "GetAccountSettings", json!({})).await.unwrap();
    assert_eq!(
        s["AccountUsage"],
        json!({"TotalCodeSize": f["CodeSize"].as_u64().unwrap() + layer_sizes, "FunctionCount": 1})
    );
}

#[tokio::test]
async fn resolve_invoke_refuses_pending_and_unknown_qualifiers() {
    let fx = fixture();
    create(&fx.cp, "f1").await;
    let e = fx.cp.resolve_invoke(&scope(), "f1", None).unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceConflictException);
    assert_eq!(
        e.message,
        "The operation cannot be performed at this time. The function is currently in the following state: Pending"
    );
    settled(&fx.cp, "f1").await;
    let (spec, arn) = fx.cp.resolve_invoke(&scope(), "f1", None).unwrap();
    assert_eq!(arn, "arn:aws:lambda:us-east-1:000000000000:function:f1");
    assert_eq!(
        (spec.runtime.as_str(), spec.handler.as_str()),
        ("python3.12", "handler.handler")
    );
    assert_eq!(
        (spec.memory_mb, spec.timeout_secs, spec.ephemeral_storage_mb),
        (128, 3, 512)
    );
    assert_eq!(spec.log_group, "/aws/lambda/f1");
    assert!(spec.code_dir.join("handler.py").is_file());
    let (again, arn) = fx
        .cp
        .resolve_invoke(&scope(), "f1", Some("$LATEST"))
        .unwrap();
    assert!(
        Arc::ptr_eq(&spec, &again),
        "one Arc per change, not per invoke"
    );
    assert_eq!(
        arn,
        "arn:aws:lambda:us-east-1:000000000000:function:f1:$LATEST"
    );
    let e = fx
        .cp
        .resolve_invoke(&scope(), "f1", Some("99"))
        .unwrap_err();
    assert_eq!(
        e.message,
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:f1:99"
    );
    let e = fx.cp.resolve_invoke(&scope(), "nope", None).unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceNotFoundException);
}

#[tokio::test]
async fn state_survives_a_restart_and_pending_work_is_settled() {
    let dir = tempfile::tempdir().unwrap();
    let retired = Arc::new(Retired::default());
    let spec_before;
    {
        let cp = open(dir.path(), retired.clone());
        let mut i = create_input("f1");
        i["Environment"] = json!({"Variables": {"B": "2", "A": "1"}});
        exec(&cp, "CreateFunction", i).await.unwrap();
        settled(&cp, "f1").await;
        spec_before = cp.resolve_invoke(&scope(), "f1", None).unwrap().0;
        // An update still in progress when the process stops.
        let mut slow = options();
        slow.update_settle = Duration::from_secs(3600);
        cp.set_options(slow);
        exec(
            &cp,
            "UpdateFunctionConfiguration",
            json!({"FunctionName": "f1", "Description": "d"}),
        )
        .await
        .unwrap();
    }
    // The code dir is lost too: it is unpacked again from the stored zip on first use.
    std::fs::remove_dir_all(dir.path().join("code")).unwrap();
    let cp = open(dir.path(), retired);
    let c = exec(
        &cp,
        "GetFunctionConfiguration",
        json!({"FunctionName": "f1"}),
    )
    .await
    .unwrap();
    assert_eq!(c["Description"], "d");
    assert_eq!(c["LastUpdateStatus"], "Successful");
    assert_eq!(c["State"], "Active");
    assert_eq!(c["Environment"], json!({"Variables": {"B": "2", "A": "1"}}));
    let (spec, _) = cp.resolve_invoke(&scope(), "f1", None).unwrap();
    assert_ne!(spec.snapshot_id, spec_before.snapshot_id);
    assert!(spec.code_dir.join("handler.py").is_file());
}

#[tokio::test]
async fn unknown_operations_are_reported() {
    let fx = fixture();
    let e = exec(&fx.cp, "FrobnicateFunction", json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownOperationException);
    let _ = fx.dir.path();
}

#[tokio::test]
async fn update_code_with_publish_answers_the_new_version() {
    let fx = fixture();
    create(&fx.cp, "f1").await;
    settled(&fx.cp, "f1").await;
    let zip = zip_bytes("v = 2");
    let u = exec(
        &fx.cp,
        "UpdateFunctionCode",
        json!({"FunctionName": "f1", "ZipFile": b64(&zip), "Publish": true}),
    )
    .await
    .unwrap();
    assert_eq!(u["Version"], "1");
    assert_eq!(u["State"], "Pending");
    assert_eq!(u["CodeSha256"], b64(&Sha256::digest(&zip)));
    settled(&fx.cp, "f1").await;
    for _ in 0..100 {
        if fx.cp.resolve_invoke(&scope(), "f1", Some("1")).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (v1, arn) = fx.cp.resolve_invoke(&scope(), "f1", Some("1")).unwrap();
    assert_eq!(v1.version, "1");
    assert_eq!(arn, "arn:aws:lambda:us-east-1:000000000000:function:f1:1");
    let (latest, _) = fx.cp.resolve_invoke(&scope(), "f1", None).unwrap();
    assert_ne!(v1.snapshot_id, latest.snapshot_id);
    assert_eq!(v1.code_dir, latest.code_dir);
}

#[tokio::test]
async fn other_resources_can_ask_whether_a_function_version_exists() {
    let fx = fixture();
    create(&fx.cp, "f1").await;
    assert!(fx.cp.function_exists(&scope(), "f1", None));
    assert!(fx.cp.function_exists(&scope(), "f1", Some("$LATEST")));
    assert!(!fx.cp.function_exists(&scope(), "f1", Some("1")));
    assert!(!fx.cp.function_exists(&scope(), "f2", None));
}

#[tokio::test]
async fn an_emptied_vpc_config_is_answered_empty_as_aws_does() {
    let fx = fixture();
    let plain = create(&fx.cp, "vpc").await;
    assert!(plain.get("VpcConfig").is_none());
    settled(&fx.cp, "vpc").await;
    let u = exec(
        &fx.cp,
        "UpdateFunctionConfiguration",
        json!({"FunctionName": "vpc",
               "VpcConfig": {"SubnetIds": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}}),
    )
    .await
    .unwrap();
    assert_eq!(u["VpcConfig"]["SubnetIds"], json!(["subnet-1"]));
    settled(&fx.cp, "vpc").await;
    let u = exec(
        &fx.cp,
        "UpdateFunctionConfiguration",
        json!({"FunctionName": "vpc", "VpcConfig": {"SubnetIds": [], "SecurityGroupIds": []}}),
    )
    .await
    .unwrap();
    let empty = json!({"SubnetIds": [], "SecurityGroupIds": [], "VpcId": "",
                       "Ipv6AllowedForDualStack": false});
    assert_eq!(u["VpcConfig"], empty);
    assert_eq!(settled(&fx.cp, "vpc").await["VpcConfig"], empty);
}
