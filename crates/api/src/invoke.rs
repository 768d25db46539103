//! The Invoke hot path (`POST /2015-03-31/functions/{FunctionName}/invocations`), its buffered
//! response-streaming twin, and the legacy InvokeAsync: headers and qualifier checked against the model, the payload checked to be JSON
//! without building a JSON value, then resolve → run (or queue) → the payload and Lambda's
//! `X-Amz-*` headers back.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flint_control::{ErrorCode, Scope};
use flint_engine::{FunctionSpec, InvokeRequest};
use http::{HeaderValue, StatusCode};
use serde::de::IgnoredAny;
use serde_json::Value;

use crate::error::ApiError;
use crate::model::{Operation, MODEL};
use crate::{request, response_stream, validation, Backend};

/// Synchronous invoke request bodies AWS accepts.
pub(crate) const SYNC_PAYLOAD_LIMIT: usize = 6_291_456;
/// Event (asynchronous) invoke payloads AWS accepts.
pub(crate) const EVENT_PAYLOAD_LIMIT: usize = 1_048_576;
/// The legacy InvokeAsync operation's limit.
pub(crate) const INVOKE_ASYNC_LIMIT: usize = 262_144;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InvocationType {
    RequestResponse,
    Event,
    DryRun,
}

/// AWS's answer to a payload that is not JSON: Jackson's words for the mistake.
fn invalid_payload(body: &[u8], e: &serde_json::Error) -> ApiError {
    ApiError::lambda(
        ErrorCode::InvalidRequestContentException,
        format!(
            "Could not parse request body into json: Could not parse payload into json: {}",
            crate::jackson::parse_error(body, e)
        ),
    )
}

/// An empty (or blank) payload is the empty event; anything else must be JSON.
fn checked_payload(body: Bytes) -> Result<Bytes, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Bytes::from_static(b"{}"));
    }
    serde_json::from_slice::<IgnoredAny>(&body).map_err(|e| invalid_payload(&body, &e))?;
    Ok(body)
}

fn str_of<'a>(input: &'a Value, key: &str) -> Option<&'a str> {
    input.get(key).and_then(Value::as_str)
}

/// The caller's X-Ray trace header (`X-Amzn-Trace-Id`), which the invocation carries on: the
/// AWS SDKs inside functions send it, and with it the lineage recursion detection counts.
fn trace_header(parts: &http::request::Parts) -> Option<String> {
    let value = parts.headers.get("x-amzn-trace-id")?.to_str().ok()?;
    (value.starts_with("Root=") && value.len() <= MAX_TRACE_HEADER).then(|| value.to_string())
}

/// The trace header this invocation carries: the caller's, with the function's count in its
/// recursion lineage raised; a chain that invoked the function too often is stopped unless the
/// function allows recursive loops.
fn next_hop<B: Backend>(
    backend: &B,
    scope: &Scope,
    function: &FunctionSpec,
    parts: &http::request::Parts,
    refuse_loop: bool,
) -> Result<String, ApiError> {
    let hop =
        flint_engine::lineage::next_hop(trace_header(parts).as_deref(), &function.function_arn);
    if refuse_loop && hop.is_loop() && !backend.recursion_allowed(scope, &function.function_name) {
        tracing::warn!(function = %function.function_name,
            "recursive invocation loop stopped after {} invocations", flint_engine::lineage::MAX_INVOCATIONS);
        return Err(ApiError::lambda(
            ErrorCode::RecursiveInvocationException,
            "Lambda has detected your function being invoked in a recursive loop with other AWS resources and stopped your function's invocation.",
        ));
    }
    Ok(hop.trace_header)
}

/// Longer trace headers are ignored (a fresh one is made) rather than stored with each event.
const MAX_TRACE_HEADER: usize = 1024;

fn header(resp: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

pub(crate) async fn invoke<B: Backend>(
    backend: &B,
    scope: &Scope,
    op: &Operation,
    labels: &[(String, String)],
    parts: &http::request::Parts,
    body: Bytes,
    request_id: &str,
) -> Result<Response, ApiError> {
    // Only the small members (name, qualifier, headers) go through the model; the payload
    // stays bytes.
    let Some(shape) = op.input else {
        return Err(ApiError::unknown_operation());
    };
    let input = request::assemble(
        &MODEL,
        shape,
        labels,
        parts.uri.query(),
        &parts.headers,
        b"",
    )?;
    validation::validate(&MODEL, &op.name, shape, &input)?;
    // InvokeWithResponseStream runs buffered and frames the result as an event stream.
    let streaming = op.name == "InvokeWithResponseStream";

    let invocation_type = match str_of(&input, "InvocationType") {
        None | Some("RequestResponse") => InvocationType::RequestResponse,
        Some("Event") => InvocationType::Event,
        Some(_) => InvocationType::DryRun,
    };
    if invocation_type == InvocationType::Event && body.len() > EVENT_PAYLOAD_LIMIT {
        return Err(ApiError::lambda(
            ErrorCode::RequestEntityTooLargeException,
            format!(
                "{} byte payload is too large for the Event invocation type (limit {EVENT_PAYLOAD_LIMIT} bytes)",
                body.len()
            ),
        ));
    }
    let payload = checked_payload(body)?;
    let client_context = str_of(&input, "ClientContext").map(str::to_string);
    if let Some(cc) = &client_context {
        use base64::Engine as _;
        let ok = base64::engine::general_purpose::STANDARD
            .decode(cc.as_bytes())
            .ok()
            .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
            .is_some_and(|v| v.is_object());
        if !ok {
            return Err(ApiError::lambda(
                ErrorCode::InvalidRequestContentException,
                "Client context must be a valid Base64-encoded JSON object.",
            ));
        }
    }

    let name = str_of(&input, "FunctionName").unwrap_or_default();
    let qualifier = str_of(&input, "Qualifier");
    let (function, invoked_arn) = backend.resolve_invoke(scope, name, qualifier)?;
    // An Event invoke that closes a loop is accepted; the async queue stops it (its DLQ or
    // on-failure destination gets it), as AWS does.
    let refuse_loop = invocation_type != InvocationType::Event;
    let trace_header = next_hop(backend, scope, &function, parts, refuse_loop)?;
    let req = InvokeRequest {
        function,
        invoked_arn,
        payload,
        client_context,
        tail_log: str_of(&input, "LogType") == Some("Tail"),
        request_id: request_id.to_string(),
        trace_header: Some(trace_header),
        async_attempt: None,
    };

    match invocation_type {
        InvocationType::DryRun => Ok(StatusCode::NO_CONTENT.into_response()),
        InvocationType::Event => {
            backend.enqueue_async(req).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        InvocationType::RequestResponse if streaming => {
            let out = match backend.invoke_streaming(req).await? {
                flint_engine::Invoked::Buffered(out) => out,
                flint_engine::Invoked::Streamed(s) => {
                    let version = s.executed_version.clone();
                    let mut resp = Response::new(response_stream::stream(s));
                    resp.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/vnd.amazon.eventstream"),
                    );
                    header(&mut resp, "X-Amz-Executed-Version", &version);
                    return Ok(resp);
                }
            };
            let body = response_stream::encode(
                &out.payload,
                out.function_error.as_deref(),
                out.log_result.as_deref(),
            );
            let mut resp = Response::new(Body::from(body));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.amazon.eventstream"),
            );
            header(&mut resp, "X-Amz-Executed-Version", &out.executed_version);
            Ok(resp)
        }
        InvocationType::RequestResponse => {
            let out = backend.invoke(req).await?;
            let mut resp = Response::new(Body::from(out.payload));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            header(&mut resp, "X-Amz-Executed-Version", &out.executed_version);
            if let Some(fe) = &out.function_error {
                header(&mut resp, "X-Amz-Function-Error", fe);
            }
            if let Some(log) = &out.log_result {
                header(&mut resp, "X-Amz-Log-Result", log);
            }
            Ok(resp)
        }
    }
}

/// The deprecated `InvokeAsync`: queue the event, answer `202 {"Status": 202}`.
pub(crate) async fn invoke_async<B: Backend>(
    backend: &B,
    scope: &Scope,
    op: &Operation,
    labels: &[(String, String)],
    parts: &http::request::Parts,
    body: Bytes,
    request_id: &str,
) -> Result<Response, ApiError> {
    let Some(shape) = op.input else {
        return Err(ApiError::unknown_operation());
    };
    let input = request::assemble(
        &MODEL,
        shape,
        labels,
        parts.uri.query(),
        &parts.headers,
        b"",
    )?;
    // InvokeArgs is the body (bytes); everything else the model checks.
    validation::validate(&MODEL, &op.name, shape, &{
        let mut v = input.clone();
        if let Some(o) = v.as_object_mut() {
            o.insert("InvokeArgs".into(), Value::String(String::new()));
        }
        v
    })?;
    let payload = checked_payload(body)?;
    let name = str_of(&input, "FunctionName").unwrap_or_default();
    let (function, invoked_arn) = backend.resolve_invoke(scope, name, None)?;
    let trace_header = next_hop(backend, scope, &function, parts, false)?;
    backend
        .enqueue_async(InvokeRequest {
            function,
            invoked_arn,
            payload,
            client_context: None,
            tail_log: false,
            request_id: request_id.to_string(),
            trace_header: Some(trace_header),
            async_attempt: None,
        })
        .await?;
    let mut resp = Response::new(Body::from(r#"{"Status":202}"#));
    *resp.status_mut() = StatusCode::ACCEPTED;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_payload_is_the_empty_event_and_garbage_is_refused() {
        assert_eq!(
            checked_payload(Bytes::new()).unwrap(),
            Bytes::from_static(b"{}")
        );
        assert_eq!(
            checked_payload(Bytes::from_static(b" \n")).unwrap(),
            Bytes::from_static(b"{}")
        );
        assert_eq!(
            checked_payload(Bytes::from_static(b"[1]")).unwrap(),
            Bytes::from_static(b"[1]")
        );
        let e = checked_payload(Bytes::from_static(b"n\x87r")).unwrap_err();
        assert_eq!(e.code, "InvalidRequestContentException");
        assert!(e.message.starts_with(
            "Could not parse request body into json: Could not parse payload into json: "
        ));
    }
}
