//! The CloudWatch Logs API on Flint's endpoint: awsJson1_1 requests (`POST /`, `X-Amz-Target:
//! Logs_20140328.<Op>`, SigV4 for service `logs`) are told apart from the Lambda API's REST paths
//! by their target, answered from the functions' log streams (crate flint-logs) and their errors
//! rendered as CloudWatch Logs renders them: HTTP 400, `{"__type": ..., "message": ...}`.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use flint_logs::{ErrorCode, LogsError};
use http::{HeaderValue, StatusCode};

use crate::{ApiError, AppState, Backend};

/// The target prefix of every CloudWatch Logs operation.
pub(crate) const TARGET_PREFIX: &str = "Logs_20140328.";

/// Largest request body (CloudWatch Logs' requests are small; PutLogEvents' 1 MB is the most).
const REQUEST_LIMIT: usize = 1_048_576;

const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The operation a request targets, when it is one for CloudWatch Logs.
pub(crate) fn target(parts: &http::request::Parts) -> Option<&str> {
    parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(TARGET_PREFIX))
}

fn respond(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE),
    );
    r
}

fn error(e: &LogsError) -> Response {
    respond(
        StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::BAD_REQUEST),
        &e.body(),
    )
}

/// A signature problem, in CloudWatch's shape (same code, status and message as Lambda's).
fn auth_error(e: &ApiError) -> Response {
    respond(
        e.status,
        &serde_json::json!({ "__type": e.code, "message": e.message }),
    )
}

pub(crate) async fn handle<B: Backend>(
    st: &AppState<B>,
    parts: http::request::Parts,
    body: Body,
    operation: String,
    request_id: &str,
) -> Response {
    let body: Bytes = match crate::read_body(body, REQUEST_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return error(&LogsError::new(
                ErrorCode::InvalidParameterException,
                "The request body could not be read or is too large.",
            ))
        }
    };
    let scope = match st.authenticate_for("logs", &parts, &body) {
        Ok(s) => s,
        Err(e) => return auth_error(&e),
    };
    let input: serde_json::Value = if body.is_empty() {
        serde_json::json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => {
                return respond(
                    StatusCode::BAD_REQUEST,
                    &serde_json::json!({ "__type": "SerializationException" }),
                )
            }
        }
    };
    let Some(root) = st.backend.logs_root() else {
        return error(&LogsError::new(
            ErrorCode::ServiceUnavailableException,
            "This Flint keeps no function logs.",
        ));
    };
    let store = flint_logs::LogStore::new(root.join(&scope.account).join(&scope.region));
    if operation == "StartLiveTail" {
        let started = tokio::task::spawn_blocking(move || {
            flint_logs::LiveTail::start(store, &scope.account, &scope.region, &input)
        })
        .await;
        return match started {
            Ok(Ok(tail)) => crate::live_tail::respond(tail, request_id),
            Ok(Err(e)) => error(&e),
            Err(e) => error(&LogsError::new(
                ErrorCode::ServiceUnavailableException,
                format!("reading logs: {e}"),
            )),
        };
    }
    // Reading streams is file I/O: off the async workers.
    let result = tokio::task::spawn_blocking(move || {
        flint_logs::execute(&store, &scope.account, &scope.region, &operation, &input)
    })
    .await;
    match result {
        Ok(Ok(out)) => respond(StatusCode::OK, &out),
        Ok(Err(e)) => error(&e),
        Err(e) => error(&LogsError::new(
            ErrorCode::ServiceUnavailableException,
            format!("reading logs: {e}"),
        )),
    }
}
