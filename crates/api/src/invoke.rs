//! The Invoke hot path (`POST /2015-03-31/functions/{FunctionName}/invocations`), its buffered
//! response-streaming twin, and the legacy InvokeAsync: headers and qualifier checked against the model, the payload checked to be JSON
//! without building a JSON value, then resolve → run (or queue) → the payload and Lambda's
//! `X-Amz-*` headers back.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flint_control::{ErrorCode, Scope};
use flint_engine::{FunctionSpec, InvokeRequest, Payload};
use http::{HeaderValue, StatusCode};
use serde::de::IgnoredAny;
use serde_json::Value;

use crate::error::ApiError;
use crate::json_check::JsonCheck;
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

/// An empty (or blank) payload is the empty event; anything else must be JSON — checked across
/// the chunks it arrived in, which go on to the runtime as they are (`json_check.rs`).
fn checked_payload(body: Payload) -> Result<Payload, ApiError> {
    let chunks = body.chunks();
    if chunks.iter().all(|c| c.iter().all(u8::is_ascii_whitespace)) {
        return Ok(Payload::from(Bytes::from_static(b"{}")));
    }
    let mut check = JsonCheck::new();
    for chunk in chunks {
        check.feed(chunk);
    }
    if check.finish() {
        return Ok(body);
    }
    // Refused: serde_json reads it whole for the position and words of the error.
    let whole = body.contiguous();
    match serde_json::from_slice::<IgnoredAny>(&whole) {
        Err(e) => Err(invalid_payload(&whole, &e)),
        Ok(_) => Ok(body),
    }
}

fn str_of<'a>(input: &'a Value, key: &str) -> Option<&'a str> {
    input.get(key).and_then(Value::as_str)
}

/// Invoke's members besides the payload.
#[derive(Debug, Default, PartialEq)]
struct Input {
    function_name: String,
    qualifier: Option<String>,
    invocation_type: Option<String>,
    log_type: Option<String>,
    client_context: Option<String>,
}

/// The request's members, checked against the model (only the small ones — name, qualifier,
/// headers — go through it; the payload stays bytes). The usual request, whose members the
/// model's checks accept as they stand, is read directly ([`plain_input`]).
fn input_of(
    op: &Operation,
    labels: &[(String, String)],
    parts: &http::request::Parts,
) -> Result<Input, ApiError> {
    if op.name == "Invoke" {
        if let Some(input) = plain_input(labels, parts) {
            return Ok(input);
        }
    }
    model_input(op, labels, parts)
}

/// The operation's members from the URI, query and headers (the payload stays bytes), by the
/// model: its input shape and the assembled value.
fn members(
    op: &Operation,
    labels: &[(String, String)],
    parts: &http::request::Parts,
) -> Result<(crate::model::ShapeId, Value), ApiError> {
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
    Ok((shape, input))
}

fn model_input(
    op: &Operation,
    labels: &[(String, String)],
    parts: &http::request::Parts,
) -> Result<Input, ApiError> {
    let (shape, input) = members(op, labels, parts)?;
    validation::validate(&MODEL, &op.name, shape, &input)?;
    let owned = |key| str_of(&input, key).map(str::to_string);
    Ok(Input {
        function_name: owned("FunctionName").unwrap_or_default(),
        qualifier: owned("Qualifier"),
        invocation_type: owned("InvocationType"),
        log_type: owned("LogType"),
        client_context: owned("ClientContext"),
    })
}

/// An Invoke request's members read without the model, when each is one the model's checks
/// accept as it stands: a plain function name (letters, digits, `-`, `_`; at most 64), no query
/// or just a plain `Qualifier`, the invocation and log types among the model's values, and none
/// of the rarer headers (client context, durable execution name, tenant id). Anything else goes
/// through the model, which words the refusals.
fn plain_input(labels: &[(String, String)], parts: &http::request::Parts) -> Option<Input> {
    let [(label, name)] = labels else {
        return None;
    };
    let plain = |s: &str, max: usize, extra: &[u8]| {
        !s.is_empty()
            && s.len() <= max
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || extra.contains(&b))
    };
    if label != "FunctionName" || !plain(name, 64, b"") {
        return None;
    }
    let qualifier = match parts.uri.query() {
        None => None,
        Some(q) => {
            let v = q.strip_prefix("Qualifier=")?;
            if !plain(v, 128, b"$") {
                return None;
            }
            Some(v.to_string())
        }
    };
    let headers = &parts.headers;
    for rare in [
        "x-amz-client-context",
        "x-amz-durable-execution-name",
        "x-amz-tenant-id",
    ] {
        if headers.contains_key(rare) {
            return None;
        }
    }
    let one_of = |header: &str, values: &[&str]| match headers.get(header) {
        None => Some(None),
        Some(v) => values
            .iter()
            .find(|x| x.as_bytes() == v.as_bytes())
            .map(|x| Some(x.to_string())),
    };
    Some(Input {
        function_name: name.clone(),
        qualifier,
        invocation_type: one_of(
            "x-amz-invocation-type",
            &["Event", "RequestResponse", "DryRun"],
        )?,
        log_type: one_of("x-amz-log-type", &["None", "Tail"])?,
        client_context: None,
    })
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
    body: Payload,
    request_id: &str,
) -> Result<Response, ApiError> {
    let input = input_of(op, labels, parts)?;
    // InvokeWithResponseStream runs buffered and frames the result as an event stream.
    let streaming = op.name == "InvokeWithResponseStream";

    let invocation_type = match input.invocation_type.as_deref() {
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
    let client_context = input.client_context;
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

    let (function, invoked_arn) =
        backend.resolve_invoke(scope, &input.function_name, input.qualifier.as_deref())?;
    // An Event invoke that closes a loop is accepted; the async queue stops it (its DLQ or
    // on-failure destination gets it), as AWS does.
    let refuse_loop = invocation_type != InvocationType::Event;
    let trace_header = next_hop(backend, scope, &function, parts, refuse_loop)?;
    let req = InvokeRequest {
        function,
        invoked_arn,
        payload,
        client_context,
        tail_log: input.log_type.as_deref() == Some("Tail"),
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
                &out.payload.contiguous(),
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
            // The function's answer goes out as the chunks it came in (no gathering copy).
            let mut resp = Response::new(Body::new(out.payload.into_body()));
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
    body: Payload,
    request_id: &str,
) -> Result<Response, ApiError> {
    let (shape, input) = members(op, labels, parts)?;
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
        let check = |chunks: &[&'static [u8]]| {
            checked_payload(Payload::from_chunks(
                chunks.iter().map(|c| Bytes::from_static(c)).collect(),
            ))
        };
        assert_eq!(check(&[]).unwrap(), Payload::from(&b"{}"[..]));
        assert_eq!(check(&[b" \n", b"\t"]).unwrap(), Payload::from(&b"{}"[..]));
        assert_eq!(check(&[b"[1]"]).unwrap(), Payload::from(&b"[1]"[..]));
        // Across chunks, kept as they came.
        let split = check(&[b"{\"a\": [1, ", b"2]}"]).unwrap();
        assert_eq!((split.chunks().len(), split.len()), (2, 13));
        for bad in [&[&b"n\x87r"[..]][..], &[b"{\"a\"", b": }"]] {
            let e = check(bad).unwrap_err();
            assert_eq!(e.code, "InvalidRequestContentException");
            assert!(e.message.starts_with(
                "Could not parse request body into json: Could not parse payload into json: "
            ));
        }
    }

    /// Whatever the direct reading takes, it reads as the model does; what it leaves, the model
    /// reads (or refuses).
    #[test]
    fn plain_input_reads_what_the_model_reads() {
        let op = MODEL.operation("Invoke").unwrap();
        let names = [
            "f",
            "my-fn_2",
            &"a".repeat(64),
            &"a".repeat(65),
            "f.x",
            "f:prod",
            "",
        ];
        let queries = [
            None,
            Some("Qualifier=prod"),
            Some("Qualifier=$LATEST"),
            Some("Qualifier=%24LATEST"),
            Some("Qualifier="),
            Some("Qualifier=a&x=1"),
            Some("Other=1"),
        ];
        let headers: [&[(&str, &str)]; 7] = [
            &[],
            &[("X-Amz-Invocation-Type", "Event")],
            &[
                ("x-amz-invocation-type", "DryRun"),
                ("X-Amz-Log-Type", "Tail"),
            ],
            &[("X-Amz-Invocation-Type", "event")],
            &[("X-Amz-Log-Type", "Everything")],
            &[("X-Amz-Client-Context", "e30=")],
            &[("X-Amz-Tenant-Id", "t")],
        ];
        let mut plain = 0;
        for name in names {
            for query in queries {
                for hs in headers {
                    let uri = match query {
                        Some(q) => format!("/x?{q}"),
                        None => "/x".to_string(),
                    };
                    let mut req = http::Request::post(uri);
                    for (k, v) in hs {
                        req = req.header(*k, *v);
                    }
                    let (parts, ()) = req.body(()).unwrap().into_parts();
                    let labels = vec![("FunctionName".to_string(), name.to_string())];
                    let model = model_input(op, &labels, &parts);
                    if let Some(direct) = plain_input(&labels, &parts) {
                        plain += 1;
                        assert_eq!(
                            Ok(&direct),
                            model.as_ref().map_err(|e| &e.message),
                            "{name} {query:?} {hs:?}"
                        );
                    }
                    assert_eq!(
                        input_of(op, &labels, &parts).map_err(|e| e.message),
                        model.map_err(|e| e.message)
                    );
                }
            }
        }
        assert!(plain >= 20, "the direct reading took only {plain} requests");
    }
}
