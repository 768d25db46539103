//! The whole front door driven through the router (no socket) with a fake backend: routing,
//! authentication, validation, error rendering and the invoke path.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::{to_bytes, Body};
use flint_control::{LambdaError, Scope};
use flint_engine::{FunctionSpec, InvokeError, InvokeRequest, InvokeResponse, ThrottleReason};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;
use crate::sigv4::tests::signed;

#[derive(Default)]
struct Fake {
    executed: Mutex<Vec<(Scope, String, Value)>>,
    invoked: Mutex<Vec<(InvokeRequest, &'static str)>>,
}

fn spec(name: &str) -> Arc<FunctionSpec> {
    Arc::new(FunctionSpec {
        snapshot_id: "s1".into(),
        account: "123456789012".into(),
        region: "us-east-1".into(),
        function_name: name.into(),
        version: "$LATEST".into(),
        function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{name}"),
        runtime: "python3.12".into(),
        handler: "h.h".into(),
        role: String::new(),
        code_dir: "/nonexistent".into(),
        layer_dirs: vec![],
        hot_reload_dirs: vec![],
        memory_mb: 128,
        timeout_secs: 3,
        ephemeral_storage_mb: 512,
        environment: Default::default(),
        log_group: format!("/aws/lambda/{name}"),
        log_format: "Text".into(),
        reserved_concurrency: None,
        tracing_active: false,
        image: None,
    })
}

impl Backend for Fake {
    async fn execute(
        &self,
        scope: &Scope,
        operation: &str,
        input: Value,
    ) -> Result<Value, LambdaError> {
        self.executed
            .lock()
            .push((scope.clone(), operation.to_string(), input.clone()));
        if input.get("Marker").and_then(Value::as_str) == Some("panic") {
            panic!("the fake control plane was told to panic");
        }
        match input.get("FunctionName").and_then(Value::as_str) {
            Some("missing") => Err(LambdaError::not_found(
                "Function not found: arn:aws:lambda:us-east-1:123456789012:function:missing",
            )),
            _ => Ok(json!({"FunctionName": input.get("FunctionName"), "Echo": operation})),
        }
    }

    fn resolve_invoke(
        &self,
        _scope: &Scope,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<(Arc<FunctionSpec>, String), LambdaError> {
        if function_name == "missing" {
            return Err(LambdaError::not_found(
                "Function not found: arn:aws:lambda:us-east-1:123456789012:function:missing:$LATEST",
            ));
        }
        let s = spec(function_name);
        let arn = match qualifier {
            Some(q) => format!("{}:{q}", s.function_arn),
            None => s.function_arn.clone(),
        };
        Ok((s, arn))
    }

    async fn invoke(&self, req: InvokeRequest) -> Result<InvokeResponse, InvokeError> {
        let payload = req.payload.contiguous();
        let tail = req.tail_log;
        self.invoked.lock().push((req, "sync"));
        if payload.starts_with(b"\"throttle\"") {
            return Err(InvokeError::Throttled {
                reason: ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded,
            });
        }
        let failed = payload.starts_with(b"\"fail\"");
        Ok(InvokeResponse {
            payload: payload.into(),
            function_error: failed.then(|| "Unhandled".to_string()),
            log_result: tail.then(|| "U1RBUlQ=".to_string()),
            executed_version: "$LATEST".into(),
        })
    }

    async fn enqueue_async(&self, req: InvokeRequest) -> Result<(), InvokeError> {
        self.invoked.lock().push((req, "async"));
        Ok(())
    }

    /// Signed as "sig"; `expires=1` has expired; only the digest `abab…` is stored.
    async fn code_zip(&self, zip: ZipRef<'_>) -> Result<Bytes, DownloadError> {
        if zip.signature != "sig" {
            return Err(DownloadError::BadSignature);
        }
        if zip.expires == 1 {
            return Err(DownloadError::Expired);
        }
        if zip.sha256_hex != "ab".repeat(32) {
            return Err(DownloadError::NotFound);
        }
        Ok(Bytes::from_static(b"PK\x03\x04zip"))
    }
}

const AKID: &str = "123456789012";

fn app(fake: &Arc<Fake>, config: ApiConfig) -> Router {
    router_with(fake.clone(), config)
}

fn req(method: &str, uri: &str, body: &[u8]) -> http::Request<Vec<u8>> {
    http::Request::builder()
        .method(method)
        .uri(uri)
        .body(body.to_vec())
        .unwrap()
}

fn sign(r: http::Request<Vec<u8>>) -> http::Request<Vec<u8>> {
    signed(r, AKID, "secret", "us-east-1", SystemTime::now())
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn error_code(&self) -> &str {
        self.headers
            .get("x-amzn-ErrorType")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn send(app: Router, r: http::Request<Vec<u8>>) -> Answer {
    let resp = app.oneshot(r.map(Body::from)).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

#[tokio::test]
async fn unsigned_requests_get_missing_authentication_token_with_a_request_id() {
    let fake = Arc::new(Fake::default());
    let a = send(
        app(&fake, ApiConfig::default()),
        req("GET", "/2015-03-31/functions", b""),
    )
    .await;
    assert_eq!(a.status, 403);
    assert_eq!(a.error_code(), "MissingAuthenticationTokenException");
    assert_eq!(a.json()["message"], "Missing Authentication Token");
    assert!(uuid::Uuid::parse_str(a.header("x-amzn-RequestId").unwrap()).is_ok());
    assert!(fake.executed.lock().is_empty());
}

#[tokio::test]
async fn unknown_routes_are_unknown_operation() {
    let fake = Arc::new(Fake::default());
    let a = send(
        app(&fake, ApiConfig::default()),
        sign(req("GET", "/2015-03-31/nothing-here", b"")),
    )
    .await;
    assert_eq!(a.status, 404);
    assert_eq!(a.error_code(), "UnknownOperationException");
    let a = send(
        app(&fake, ApiConfig::default()),
        sign(req("PATCH", "/2015-03-31/functions/f", b"")),
    )
    .await;
    assert_eq!(a.status, 404);
}

#[tokio::test]
async fn get_function_by_encoded_arn_reaches_the_control_plane_in_the_callers_scope() {
    let fake = Arc::new(Fake::default());
    let a = send(
        app(&fake, ApiConfig::default()),
        sign(req(
            "GET",
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Amy-fn?Qualifier=live",
            b"",
        )),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let calls = fake.executed.lock();
    let (scope, op, input) = &calls[0];
    assert_eq!(
        scope,
        &Scope {
            account: AKID.into(),
            region: "us-east-1".into()
        }
    );
    assert_eq!(op, "GetFunction");
    assert_eq!(
        input,
        &json!({"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:my-fn", "Qualifier": "live"})
    );
}

#[tokio::test]
async fn create_function_validation_matches_aws_and_skips_the_backend() {
    let fake = Arc::new(Fake::default());
    let body = json!({"FunctionName": "f", "Role": "r1", "Runtime": "python3.12", "Handler": "h.h", "Code": {"ZipFile": "UEs="}});
    let a = send(
        app(&fake, ApiConfig::default()),
        sign(req(
            "POST",
            "/2015-03-31/functions",
            body.to_string().as_bytes(),
        )),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.error_code(), "ValidationException");
    assert_eq!(
        a.json()["message"],
        "1 validation error detected: Value 'r1' at 'role' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+"
    );
    assert!(fake.executed.lock().is_empty());
}

#[tokio::test]
async fn created_function_is_201_with_the_control_planes_body() {
    let fake = Arc::new(Fake::default());
    let body = json!({"FunctionName": "f", "Role": "arn:aws:iam::123456789012:role/r", "Runtime": "python3.12", "Handler": "h.h", "Code": {"ZipFile": "UEs="}});
    let a = send(
        app(&fake, ApiConfig::default()),
        sign(req(
            "POST",
            "/2015-03-31/functions",
            body.to_string().as_bytes(),
        )),
    )
    .await;
    assert_eq!(a.status, 201);
    assert_eq!(
        a.json(),
        json!({"FunctionName": "f", "Echo": "CreateFunction"})
    );
    assert_eq!(fake.executed.lock()[0].2["Code"]["ZipFile"], "UEs=");
}

#[tokio::test]
async fn control_plane_errors_render_as_aws_does() {
    let fake = Arc::new(Fake::default());
    let a = send(
        app(&fake, ApiConfig::default()),
        sign(req("GET", "/2015-03-31/functions/missing", b"")),
    )
    .await;
    assert_eq!(a.status, 404);
    assert_eq!(a.error_code(), "ResourceNotFoundException");
    assert_eq!(
        a.json(),
        json!({"Type": "User", "Message": "Function not found: arn:aws:lambda:us-east-1:123456789012:function:missing"})
    );
}

#[tokio::test]
async fn a_panicking_handler_answers_500_service_exception() {
    let fake = Arc::new(Fake::default());
    let a = send(
        app(&fake, ApiConfig::default()),
        sign(req("GET", "/2015-03-31/functions?Marker=panic", b"")),
    )
    .await;
    assert_eq!(a.status, 500);
    assert_eq!(a.error_code(), "ServiceException");
    assert_eq!(a.json()["Type"], "Server");
    assert!(a.header("x-amzn-RequestId").is_some());
}

#[tokio::test]
async fn no_content_operations_answer_204_without_body() {
    let fake = Arc::new(Fake::default());
    let a = send(
        app(&fake, ApiConfig::default()),
        sign(req("DELETE", "/2017-10-31/functions/f/concurrency", b"")),
    )
    .await;
    assert_eq!(a.status, 204);
    assert!(a.body.is_empty());
    assert_eq!(fake.executed.lock()[0].1, "DeleteFunctionConcurrency");
}

#[tokio::test]
async fn bad_json_body_is_invalid_request_content() {
    let fake = Arc::new(Fake::default());
    let a = send(
        app(&fake, ApiConfig::default()),
        sign(req("POST", "/2015-03-31/functions", b"{not json")),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.error_code(), "InvalidRequestContentException");
}

#[tokio::test]
async fn sync_invoke_returns_payload_and_lambda_headers() {
    let fake = Arc::new(Fake::default());
    let mut r = req(
        "POST",
        "/2015-03-31/functions/f/invocations?Qualifier=live",
        br#"{"k":"v"}"#,
    );
    r.headers_mut()
        .insert("X-Amz-Log-Type", "Tail".parse().unwrap());
    let a = send(app(&fake, ApiConfig::default()), sign(r)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, br#"{"k":"v"}"#);
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(a.header("X-Amz-Executed-Version"), Some("$LATEST"));
    assert_eq!(a.header("X-Amz-Log-Result"), Some("U1RBUlQ="));
    assert_eq!(a.header("X-Amz-Function-Error"), None);
    let invoked = fake.invoked.lock();
    let (ireq, kind) = &invoked[0];
    assert_eq!(*kind, "sync");
    assert!(ireq.tail_log);
    assert_eq!(
        ireq.invoked_arn,
        "arn:aws:lambda:us-east-1:123456789012:function:f:live"
    );
    assert_eq!(a.header("x-amzn-RequestId"), Some(ireq.request_id.as_str()));
}

#[tokio::test]
async fn function_errors_are_200_with_x_amz_function_error() {
    let fake = Arc::new(Fake::default());
    let a = send(
        app(&fake, ApiConfig::default()),
        sign(req(
            "POST",
            "/2015-03-31/functions/f/invocations",
            b"\"fail\"",
        )),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("X-Amz-Function-Error"), Some("Unhandled"));
}

#[tokio::test]
async fn empty_payload_is_the_empty_event() {
    let fake = Arc::new(Fake::default());
    let a = send(
        app(&fake, ApiConfig::default()),
        sign(req("POST", "/2015-03-31/functions/f/invocations", b"")),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        fake.invoked.lock()[0].0.payload.contiguous().as_ref(),
        b"{}"
    );
}

#[tokio::test]
async fn event_invokes_are_queued_with_202_and_dry_runs_are_204() {
    let fake = Arc::new(Fake::default());
    let mut r = req("POST", "/2015-03-31/functions/f/invocations", b"{}");
    r.headers_mut()
        .insert("X-Amz-Invocation-Type", "Event".parse().unwrap());
    let a = send(app(&fake, ApiConfig::default()), sign(r)).await;
    assert_eq!(a.status, 202);
    assert!(a.body.is_empty());
    assert_eq!(fake.invoked.lock()[0].1, "async");

    let mut r = req("POST", "/2015-03-31/functions/f/invocations", b"{}");
    r.headers_mut()
        .insert("X-Amz-Invocation-Type", "DryRun".parse().unwrap());
    let a = send(app(&fake, ApiConfig::default()), sign(r)).await;
    assert_eq!(a.status, 204);
    assert!(a.body.is_empty());
    assert_eq!(fake.invoked.lock().len(), 1, "a dry run runs nothing");

    let mut r = req("POST", "/2015-03-31/functions/f/invocations", b"{}");
    r.headers_mut()
        .insert("X-Amz-Invocation-Type", "Sometimes".parse().unwrap());
    let a = send(app(&fake, ApiConfig::default()), sign(r)).await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.json()["message"],
        "1 validation error detected: Value 'Sometimes' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
    );
}

#[tokio::test]
async fn oversized_payloads_are_413() {
    let fake = Arc::new(Fake::default());
    let big = vec![b' '; invoke::SYNC_PAYLOAD_LIMIT + 1];
    let a = send(
        app(&fake, ApiConfig::default()),
        sign(req("POST", "/2015-03-31/functions/f/invocations", &big)),
    )
    .await;
    assert_eq!(a.status, 413);
    assert_eq!(a.error_code(), "RequestEntityTooLargeException");
    assert_eq!(
        a.json()["message"],
        "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
    );

    let mut event = format!("\"{}\"", "x".repeat(invoke::EVENT_PAYLOAD_LIMIT)).into_bytes();
    event.truncate(invoke::EVENT_PAYLOAD_LIMIT + 1);
    let mut r = req("POST", "/2015-03-31/functions/f/invocations", &event);
    r.headers_mut()
        .insert("X-Amz-Invocation-Type", "Event".parse().unwrap());
    let a = send(app(&fake, ApiConfig::default()), sign(r)).await;
    assert_eq!(a.status, 413);
    assert_eq!(
        a.json()["message"],
        "1048577 byte payload is too large for the Event invocation type (limit 1048576 bytes)"
    );
    assert!(fake.invoked.lock().is_empty());
}

#[tokio::test]
async fn non_json_payload_is_invalid_request_content() {
    let fake = Arc::new(Fake::default());
    let a = send(
        app(&fake, ApiConfig::default()),
        sign(req(
            "POST",
            "/2015-03-31/functions/f/invocations",
            b"n\x87r\x9e",
        )),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.error_code(), "InvalidRequestContentException");
    assert!(a.json()["message"].as_str().unwrap().starts_with(
        "Could not parse request body into json: Could not parse payload into json: "
    ));
}

#[tokio::test]
async fn throttled_invokes_are_429_with_reason() {
    let fake = Arc::new(Fake::default());
    let a = send(
        app(&fake, ApiConfig::default()),
        sign(req(
            "POST",
            "/2015-03-31/functions/f/invocations",
            b"\"throttle\"",
        )),
    )
    .await;
    assert_eq!(a.status, 429);
    assert_eq!(a.error_code(), "TooManyRequestsException");
    assert_eq!(
        a.json(),
        json!({"Type": "User", "message": "Rate Exceeded.", "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"})
    );
}

#[tokio::test]
async fn invoking_a_missing_function_is_404() {
    let fake = Arc::new(Fake::default());
    let a = send(
        app(&fake, ApiConfig::default()),
        sign(req(
            "POST",
            "/2015-03-31/functions/missing/invocations",
            b"{}",
        )),
    )
    .await;
    assert_eq!(a.status, 404);
    assert_eq!(a.error_code(), "ResourceNotFoundException");
}

#[tokio::test]
async fn invoke_function_name_is_validated_against_the_model() {
    let fake = Arc::new(Fake::default());
    let a = send(
        app(&fake, ApiConfig::default()),
        sign(req(
            "POST",
            "/2015-03-31/functions/my-function!/invocations",
            b"{}",
        )),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.error_code(), "ValidationException");
    assert!(a.json()["message"]
        .as_str()
        .unwrap()
        .starts_with("1 validation error detected: Value 'my-function!' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: "));
}

#[tokio::test]
async fn invoke_async_queues_and_answers_status_202() {
    let fake = Arc::new(Fake::default());
    let a = send(
        app(&fake, ApiConfig::default()),
        sign(req(
            "POST",
            "/2014-11-13/functions/f/invoke-async/",
            b"{\"a\":1}",
        )),
    )
    .await;
    assert_eq!(a.status, 202);
    assert_eq!(a.json(), json!({"Status": 202}));
    assert_eq!(fake.invoked.lock()[0].1, "async");
}

#[tokio::test]
async fn with_credentials_good_signatures_pass_and_bad_ones_are_403() {
    let fake = Arc::new(Fake::default());
    let config = ApiConfig {
        credentials: Some(Credentials::new([(AKID.to_string(), "secret".to_string())])),
        ..ApiConfig::default()
    };
    let a = send(app(&fake, config.clone()), sign(req("POST", "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af/invocations", b"{}"))).await;
    assert_eq!(a.status, 200);

    let r = signed(
        req("GET", "/2015-03-31/functions", b""),
        AKID,
        "not-the-secret",
        "us-east-1",
        SystemTime::now(),
    );
    let a = send(app(&fake, config.clone()), r).await;
    assert_eq!(a.status, 403);
    assert_eq!(a.error_code(), "InvalidSignatureException");

    let r = signed(
        req("GET", "/2015-03-31/functions", b""),
        "AKIDUNKNOWN",
        "secret",
        "us-east-1",
        SystemTime::now(),
    );
    let a = send(app(&fake, config), r).await;
    assert_eq!(a.status, 403);
    assert_eq!(a.error_code(), "UnrecognizedClientException");
}

#[tokio::test]
async fn code_zips_are_served_by_signed_url_without_sigv4() {
    let fake = Arc::new(Fake::default());
    let get = |path: String| send(app(&fake, ApiConfig::default()), req("GET", &path, b""));
    let good = "ab".repeat(32);
    for kind in ["code", "layers"] {
        let a = get(format!("/_flint/{kind}/{good}?expires=99&signature=sig")).await;
        assert_eq!(a.status, 200, "{kind}");
        assert_eq!(a.header("content-type"), Some("application/zip"));
        assert_eq!(a.body, b"PK\x03\x04zip");
        let other = "cd".repeat(32);
        let a = get(format!("/_flint/{kind}/{other}?expires=99&signature=sig")).await;
        assert_eq!(a.status, 404, "{kind}");
        assert_eq!(a.error_code(), "ResourceNotFoundException");
        let a = get(format!(
            "/_flint/{kind}/..%2F..%2Fetc%2Fpasswd?expires=99&signature=sig"
        ))
        .await;
        assert_eq!(a.status, 404, "{kind}");
    }
}

fn s3_error(a: &Answer) -> String {
    String::from_utf8_lossy(&a.body).into_owned()
}

#[tokio::test]
async fn bare_tampered_and_expired_download_urls_are_refused_as_s3_does() {
    let fake = Arc::new(Fake::default());
    let get = |path: String| send(app(&fake, ApiConfig::default()), req("GET", &path, b""));
    let good = "ab".repeat(32);
    for kind in ["code", "layers"] {
        // A bare digest is no capability: layer contents included.
        let a = get(format!("/_flint/{kind}/{good}")).await;
        assert_eq!(a.status, 403, "{kind}");
        assert_eq!(a.header("content-type"), Some("application/xml"));
        assert!(
            s3_error(&a).contains("<Code>AccessDenied</Code>"),
            "{}",
            s3_error(&a)
        );
        let a = get(format!("/_flint/{kind}/{good}?expires=99&signature=forged")).await;
        assert_eq!(a.status, 403, "{kind}");
        assert!(s3_error(&a).contains("<Code>SignatureDoesNotMatch</Code>"));
        let a = get(format!("/_flint/{kind}/{good}?expires=1&signature=sig")).await;
        assert_eq!(a.status, 403, "{kind}");
        assert!(s3_error(&a).contains("<Message>Request has expired</Message>"));
        let a = get(format!("/_flint/{kind}/{good}?expires=soon&signature=sig")).await;
        assert_eq!(a.status, 403, "{kind}");
    }
}

#[test]
fn every_model_operation_is_handled_by_one_place_or_listed_as_unsupported() {
    use flint_control::operations::{DATA_PLANE, HANDLED, UNSUPPORTED};
    let listed = |name: &str| {
        [HANDLED, DATA_PLANE, UNSUPPORTED]
            .iter()
            .filter(|list| list.contains(&name))
            .count()
    };
    for op in &MODEL.operations {
        assert_eq!(
            listed(&op.name),
            1,
            "{} must be in exactly one of operations::{{HANDLED, DATA_PLANE, UNSUPPORTED}}",
            op.name
        );
    }
    for name in HANDLED.iter().chain(DATA_PLANE).chain(UNSUPPORTED) {
        assert!(
            MODEL.operations.iter().any(|op| op.name == *name),
            "{name} is not an operation of the model"
        );
    }
}

#[test]
fn every_runtime_of_the_model_is_known_to_the_control_plane() {
    use flint_control::runtime::{AWS_RUNTIMES, AWS_RUNTIMES_NEWER, DEPRECATED_RUNTIMES};
    let runtimes = MODEL
        .shape_named("Runtime")
        .and_then(|s| s.enum_values.clone())
        .unwrap_or_default();
    assert!(runtimes.len() > 40, "the model's Runtime enum is missing");
    for r in &runtimes {
        assert!(
            [AWS_RUNTIMES, AWS_RUNTIMES_NEWER, DEPRECATED_RUNTIMES]
                .iter()
                .any(|list| list.contains(&r.as_str())),
            "runtime {r} of the model is in none of control::runtime's lists"
        );
    }
}

#[test]
fn every_enum_value_of_the_model_was_reviewed() {
    let known: std::collections::HashMap<&str, Vec<&str>> =
        include_str!("../model/known-enums.txt")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(shape, values)| (shape.trim(), values.split_whitespace().collect()))
            .collect();
    let mut unknown = Vec::new();
    for shape in &MODEL.shapes {
        for v in shape.enum_values.iter().flatten() {
            let listed = known
                .get(shape.name.as_str())
                .is_some_and(|vs| vs.contains(&v.as_str()));
            if !listed {
                unknown.push(format!("{}: {v}", shape.name));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "enum values of the model Flint was not reviewed against (model/known-enums.txt): {unknown:?}"
    );
}

/// The api over a real control plane (on a temporary data dir, without an engine).
struct Real {
    cp: Arc<ControlPlane>,
    _dir: tempfile::TempDir,
}

impl Real {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(flint_store::Store::open(dir.path()).unwrap());
        let catalog = Arc::new(flint_control::FixedCatalog(vec!["python3.12".into()]));
        let options = flint_control::ControlOptions {
            public_base_url: "http://flint.test:9000".into(),
            ..Default::default()
        };
        let cp = ControlPlane::open_with(dir.path(), store, catalog, options).unwrap();
        Self { cp, _dir: dir }
    }
}

impl Backend for Real {
    async fn execute(
        &self,
        scope: &Scope,
        operation: &str,
        input: Value,
    ) -> Result<Value, LambdaError> {
        self.cp.execute(scope, operation, input).await
    }

    fn resolve_invoke(
        &self,
        scope: &Scope,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<(Arc<FunctionSpec>, String), LambdaError> {
        self.cp.resolve_invoke(scope, function_name, qualifier)
    }

    async fn invoke(&self, _req: InvokeRequest) -> Result<InvokeResponse, InvokeError> {
        Err(InvokeError::Service("no engine in this test".into()))
    }

    async fn enqueue_async(&self, _req: InvokeRequest) -> Result<(), InvokeError> {
        Err(InvokeError::Service("no engine in this test".into()))
    }

    async fn code_zip(&self, zip: ZipRef<'_>) -> Result<Bytes, DownloadError> {
        read_download(&self.cp, zip).await
    }
}

fn zip_with(name: &str, content: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file(name, zip::write::SimpleFileOptions::default())
        .unwrap();
    w.write_all(content).unwrap();
    w.finish().unwrap().into_inner()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn caller() -> Scope {
    Scope {
        account: AKID.into(),
        region: "us-east-1".into(),
    }
}

#[tokio::test]
async fn an_unsupported_operation_answers_an_aws_style_error_naming_it() {
    let real = Arc::new(Real::new());
    let a = send(
        router_with(real.clone(), ApiConfig::default()),
        sign(req("GET", "/2025-11-30/capacity-providers", b"")),
    )
    .await;
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.error_code(), "UnknownOperationException");
    assert_eq!(
        a.json(),
        json!({"Type": "User", "message": "Flint does not support the ListCapacityProviders operation yet"})
    );
}

#[tokio::test]
async fn signed_urls_download_function_code_and_layer_content_and_nothing_else() {
    let real = Arc::new(Real::new());
    let get = |path: &str| {
        send(
            router_with(real.clone(), ApiConfig::default()),
            req("GET", path, b""),
        )
    };
    let function_zip = zip_with("handler.py", b"def handler(e, c):\n    return e\n");
    real.cp
        .execute(
            &caller(),
            "CreateFunction",
            json!({"FunctionName": "f", "Runtime": "python3.12", "Handler": "handler.handler",
                   "Role": "arn:aws:iam::123456789012:role/r",
                   "Code": {"ZipFile": b64(&function_zip)}}),
        )
        .await
        .unwrap();
    let layer_zip = zip_with("python/lib.py", b"X = 1");
    let layer = real
        .cp
        .execute(
            &caller(),
            "PublishLayerVersion",
            json!({"LayerName": "l", "Content": {"ZipFile": b64(&layer_zip)}}),
        )
        .await
        .unwrap();
    let function = send(
        router_with(real.clone(), ApiConfig::default()),
        sign(req("GET", "/2015-03-31/functions/f", b"")),
    )
    .await
    .json();
    let path_of = |v: &Value| {
        v.as_str()
            .unwrap()
            .strip_prefix("http://flint.test:9000")
            .unwrap()
            .to_string()
    };
    let code_path = path_of(&function["Code"]["Location"]);
    let layer_path = path_of(&layer["Content"]["Location"]);

    let a = get(&code_path).await;
    assert_eq!((a.status, a.body), (200, function_zip));
    let a = get(&layer_path).await;
    assert_eq!((a.status, a.body), (200, layer_zip));

    // The function's zip through the layers' path, and a layer URL's signature on the code path.
    let swapped = code_path.replacen("/_flint/code/", "/_flint/layers/", 1);
    assert_eq!(get(&swapped).await.status, 403);
    let swapped = layer_path.replacen("/_flint/layers/", "/_flint/code/", 1);
    assert_eq!(get(&swapped).await.status, 403);
    // Bare digests, and a signature moved to another expiry.
    for path in [&code_path, &layer_path] {
        let (bare, query) = path.split_once('?').unwrap();
        assert_eq!(get(bare).await.status, 403, "{bare}");
        let (expires, signature) = query
            .strip_prefix("expires=")
            .unwrap()
            .split_once("&signature=")
            .unwrap();
        let later: u64 = expires.parse::<u64>().unwrap() + 3600;
        let a = get(&format!("{bare}?expires={later}&signature={signature}")).await;
        assert_eq!(a.status, 403);
        assert!(s3_error(&a).contains("SignatureDoesNotMatch"));
    }
}

#[tokio::test]
async fn query_literal_operations_route_through_the_router() {
    let fake = Arc::new(Fake::default());
    let a = send(
        app(&fake, ApiConfig::default()),
        sign(req("GET", "/2018-10-31/layers?find=LayerVersion&Arn=arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Alayer%3Al%3A1", b"")),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let calls = fake.executed.lock();
    assert_eq!(calls[0].1, "GetLayerVersionByArn");
    assert_eq!(
        calls[0].2["Arn"],
        "arn:aws:lambda:us-east-1:123456789012:layer:l:1"
    );
}

#[tokio::test]
async fn response_streaming_invoke_answers_an_event_stream() {
    let fake = Arc::new(Fake::default());
    let a = send(
        app(&fake, ApiConfig::default()),
        sign(req(
            "POST",
            "/2021-11-15/functions/f/response-streaming-invocations",
            b"{\"s\":1}",
        )),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        a.header("content-type"),
        Some("application/vnd.amazon.eventstream")
    );
    assert_eq!(a.header("X-Amz-Executed-Version"), Some("$LATEST"));
    let events = crate::response_stream::tests::decode(&a.body);
    assert_eq!(
        events[0],
        ("PayloadChunk".to_string(), b"{\"s\":1}".to_vec())
    );
    assert_eq!(events[1].0, "InvokeComplete");
}

fn logs_req(target: &str) -> http::Request<Vec<u8>> {
    http::Request::builder()
        .method("POST")
        .uri("/")
        .header("x-amz-target", format!("Logs_20140328.{target}"))
        .header("content-type", "application/x-amz-json-1.1")
        .body(b"{}".to_vec())
        .unwrap()
}

#[tokio::test]
async fn cloudwatch_logs_requests_get_cloudwatchs_error_shape_not_lambdas() {
    let fake = Arc::new(Fake::default());
    // Unsigned: refused in CloudWatch's shape.
    let a = send(
        app(&fake, ApiConfig::default()),
        logs_req("DescribeLogGroups"),
    )
    .await;
    assert_eq!(a.status, 403);
    assert_eq!(a.json()["__type"], "MissingAuthenticationTokenException");
    assert_eq!(a.header("content-type"), Some("application/x-amz-json-1.1"));
    assert_eq!(a.error_code(), "", "no Lambda x-amzn-ErrorType");
    assert!(fake.executed.lock().is_empty());
}

#[tokio::test]
async fn metrics_are_served_unsigned_unless_turned_off() {
    let fake = Arc::new(Fake::default());
    let a = send(
        app(&fake, ApiConfig::default()),
        req("GET", "/metrics", b""),
    )
    .await;
    assert_eq!(a.status, 200);
    assert!(a
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")));
    let off = ApiConfig {
        metrics: false,
        ..ApiConfig::default()
    };
    let a = send(app(&fake, off), req("GET", "/metrics", b"")).await;
    assert_eq!(a.status, 403, "falls through to the Lambda API");
}
