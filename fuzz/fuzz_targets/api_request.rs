//! The Lambda API's front door — routing, SigV4 header parsing, request assembly from path, query,
//! headers and body, validation against the model, error rendering — driven through the real
//! router with arbitrary requests and a backend that accepts everything.
//!
//! Invariants: no panic, and never a 5xx: bad input is the caller's error (4xx), never Flint's.
#![no_main]

use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use axum::body::Body;
use bytes::Bytes;
use flint_api::{ApiConfig, Backend, DownloadError, ZipRef};
use flint_control::{LambdaError, Scope};
use flint_engine::{FunctionSpec, InvokeError, InvokeRequest, InvokeResponse};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use tower::ServiceExt;

/// Accepts every operation and invoke: the fuzzer explores the front door, not the control plane.
struct AcceptAll;

fn spec(name: &str) -> Arc<FunctionSpec> {
    let spec = serde_json::from_value(json!({
        "snapshot_id": "s1", "account": "123456789012", "region": "us-east-1",
        "function_name": name, "version": "$LATEST",
        "function_arn": format!("arn:aws:lambda:us-east-1:123456789012:function:{name}"),
        "runtime": "python3.12", "handler": "h.h", "code_dir": "/nonexistent", "layer_dirs": [],
        "memory_mb": 128, "timeout_secs": 3, "ephemeral_storage_mb": 512, "environment": {},
        "log_group": format!("/aws/lambda/{name}"), "log_format": "Text",
        "reserved_concurrency": null
    }));
    Arc::new(spec.unwrap_or_else(|e| panic!("FunctionSpec changed shape: {e}")))
}

impl Backend for AcceptAll {
    async fn execute(&self, _: &Scope, operation: &str, _: Value) -> Result<Value, LambdaError> {
        Ok(json!({ "Operation": operation }))
    }

    fn resolve_invoke(
        &self,
        _: &Scope,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<(Arc<FunctionSpec>, String), LambdaError> {
        let s = spec(function_name);
        let arn = match qualifier {
            Some(q) => format!("{}:{q}", s.function_arn),
            None => s.function_arn.clone(),
        };
        Ok((s, arn))
    }

    async fn invoke(&self, req: InvokeRequest) -> Result<InvokeResponse, InvokeError> {
        Ok(InvokeResponse {
            payload: req.payload,
            function_error: None,
            log_result: None,
            executed_version: "$LATEST".into(),
        })
    }

    async fn enqueue_async(&self, _: InvokeRequest) -> Result<(), InvokeError> {
        Ok(())
    }

    async fn code_zip(&self, _: ZipRef<'_>) -> Result<Bytes, DownloadError> {
        Err(DownloadError::NotFound)
    }
}

#[derive(Debug, Arbitrary)]
enum Method {
    Get,
    Post,
    Put,
    Delete,
    Patch,
    Head,
    Other(String),
}

#[derive(Debug, Arbitrary)]
struct Input {
    method: Method,
    /// Appended to a real operation's path so that the fuzzer starts from routable requests.
    path_prefix: u8,
    path: String,
    query: Option<String>,
    /// Sign with a well-formed (unverified) Authorization header, or send the fuzzer's own.
    authorization: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

const PREFIXES: &[&str] = &[
    "/2015-03-31/functions",
    "/2015-03-31/functions/f",
    "/2015-03-31/functions/f/invocations",
    "/2015-03-31/functions/f/configuration",
    "/2015-03-31/functions/f/code",
    "/2015-03-31/functions/f/aliases",
    "/2015-03-31/functions/f/versions",
    "/2015-03-31/functions/f/policy",
    "/2015-03-31/event-source-mappings/",
    "/2015-03-31/tags/arn:aws:lambda:us-east-1:123456789012:function:f",
    "/2017-10-31/functions/f/concurrency",
    "/2019-09-25/functions/f/event-invoke-config",
    "/2018-10-31/layers/l/versions",
    "/2021-10-31/functions/f/url",
    "/2021-11-15/functions/f/response-streaming-invocations",
    "/2014-11-13/functions/f/invoke-async/",
    "/2016-08-19/account-settings/",
    "/_flint/code/",
    "/metrics",
    "/",
];

const GOOD_AUTH: &str = "AWS4-HMAC-SHA256 Credential=123456789012/20261206/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("tokio: {e}"))
    })
}

fn router() -> axum::Router {
    static APP: OnceLock<axum::Router> = OnceLock::new();
    APP.get_or_init(|| flint_api::router_with(Arc::new(AcceptAll), ApiConfig::default()))
        .clone()
}

fuzz_target!(|input: Input| {
    let method = match input.method {
        Method::Get => http::Method::GET,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Delete => http::Method::DELETE,
        Method::Patch => http::Method::PATCH,
        Method::Head => http::Method::HEAD,
        Method::Other(m) => match http::Method::from_bytes(m.as_bytes()) {
            Ok(m) => m,
            Err(_) => return,
        },
    };
    let prefix = PREFIXES[usize::from(input.path_prefix) % PREFIXES.len()];
    let mut uri = format!("{prefix}{}", input.path);
    if let Some(q) = &input.query {
        uri.push('?');
        uri.push_str(q);
    }
    // What hyper would refuse before Flint sees it is not Flint's to handle.
    let Ok(uri) = uri.parse::<http::Uri>() else {
        return;
    };
    let mut builder = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "localhost:9001")
        .header("x-amz-date", "20261206T120000Z");
    let auth = input.authorization.as_deref().unwrap_or(GOOD_AUTH);
    if let Ok(v) = http::HeaderValue::from_str(auth) {
        builder = builder.header(http::header::AUTHORIZATION, v);
    }
    for (name, value) in &input.headers {
        let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) else {
            continue;
        };
        builder = builder.header(n, v);
    }
    let Ok(request) = builder.body(Body::from(input.body)) else {
        return;
    };
    let response = runtime().block_on(router().oneshot(request));
    let Ok(response) = response;
    assert!(
        !response.status().is_server_error(),
        "a request got {}",
        response.status()
    );
});
