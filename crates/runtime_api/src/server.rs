//! The HTTP side of the Runtime API: one listener per environment (`flint_listener`: HTTP/1.1
//! with keep-alive, no Nagle delay, at most [`MAX_CONNECTIONS`] connections), routing the four
//! 2018-06-01 endpoints and answering mistakes with the JSON errors (`InvalidRequestID`,
//! `InvalidStateTransition`, `RequestEntityTooLarge`) AWS's does.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use tokio::net::TcpListener;

use crate::state::{InitRefusal, Next, Shared};
use crate::Gate;
use crate::{Invocation, Outcome, Payload, MAX_RESPONSE_BYTES};
use tokio::sync::watch;

const PREFIX: &str = "/2018-06-01/runtime/";

const H_REQUEST_ID: HeaderName = HeaderName::from_static("lambda-runtime-aws-request-id");
const H_DEADLINE: HeaderName = HeaderName::from_static("lambda-runtime-deadline-ms");
const H_ARN: HeaderName = HeaderName::from_static("lambda-runtime-invoked-function-arn");
const H_TRACE: HeaderName = HeaderName::from_static("lambda-runtime-trace-id");
const H_CLIENT_CONTEXT: HeaderName = HeaderName::from_static("lambda-runtime-client-context");
const H_COGNITO: HeaderName = HeaderName::from_static("lambda-runtime-cognito-identity");
const H_ERROR_TYPE: &str = "lambda-runtime-function-error-type";
const H_ERROR_BODY: &str = "lambda-runtime-function-error-body";
const H_RESPONSE_MODE: &str = "lambda-runtime-function-response-mode";

/// Chunks of a streamed response buffered between the runtime and the reader.
const STREAM_BUFFER: usize = 16;

pub(crate) type Reply = Response<crate::PayloadBody>;

/// How long a connection waits for the environment's gate to be decided before it is dropped.
const GATE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Connections one environment may hold open (its runtime, its extensions, their telemetry
/// and logs subscriptions need a handful): a function opening more waits in the accept queue
/// instead of holding Flint's descriptors.
pub const MAX_CONNECTIONS: usize = 64;

/// The Runtime API's limits: a connection cap, and no header-read deadline, because a kept-alive
/// connection of a frozen environment is idle for as long as the environment is (a runtime whose
/// pooled connection was closed meanwhile would fail its next request when thawed); only the
/// environment's own processes can connect, so what they hold costs only their environment.
fn limits() -> flint_listener::ListenerLimits {
    flint_listener::ListenerLimits {
        header_read_timeout: None,
        max_connections: MAX_CONNECTIONS,
    }
}

/// Accepts connections until the task is aborted (aborting it also ends every connection).
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, gate: watch::Receiver<Gate>) {
    let warned = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checking = Arc::new(tokio::sync::Mutex::new(()));
    flint_listener::serve(listener, limits(), std::future::pending(), move |conn| {
        let shared = shared.clone();
        let mut gate = gate.clone();
        let warned = warned.clone();
        let checking = checking.clone();
        async move {
            if !admitted(&mut gate, &checking, conn.local, conn.peer).await {
                // Once per environment: a function knocking in a loop must not flood Flint's
                // own log.
                if !warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::warn!(
                        "runtime api: refused a connection from {}: not from this environment's processes",
                        conn.peer
                    );
                }
                return None;
            }
            Some(service_fn(move |req| handle(shared.clone(), req)))
        }
    })
    .await
}

/// Whether the connection may talk to this endpoint (waits for the gate to be decided).
async fn admitted(
    gate: &mut watch::Receiver<Gate>,
    checking: &tokio::sync::Mutex<()>,
    local: std::net::SocketAddr,
    peer: std::net::SocketAddr,
) -> bool {
    let waited = tokio::time::timeout(GATE_WAIT, gate.wait_for(|g| !matches!(g, Gate::Pending)))
        .await
        .map(|r| r.map(|g| g.clone()));
    let gate = match waited {
        Ok(Ok(g)) => g,
        _ => return false,
    };
    let Gate::Check(check) = gate else {
        return true;
    };
    // Only with the host's network (`--function-network host`): a netlink lookup and /proc
    // reads, bounded, on the blocking pool so that no async worker waits for them, and one at
    // a time per environment so that a flood of connections costs only that environment.
    let _turn = checking.lock().await;
    tokio::task::spawn_blocking(move || check(peer, local))
        .await
        .unwrap_or(false)
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    let (parts, body) = req.into_parts();
    let Some(rest) = parts.uri.path().strip_prefix(PREFIX) else {
        return Ok(crate::extension_server::handle(&shared, parts, body).await);
    };
    let reply = match rest {
        "invocation/next" => {
            if parts.method != Method::GET {
                return Ok(method_not_allowed());
            }
            next(&shared).await
        }
        "init/error" => {
            if parts.method != Method::POST {
                return Ok(method_not_allowed());
            }
            let error_type = error_type_header(&parts.headers);
            // An oversized init error is cut rather than refused: the runtime is failing anyway.
            let body = read_body(body).await.unwrap_or_default();
            match shared.init_error(error_type, body) {
                Ok(()) => accepted(),
                Err(InitRefusal::AlreadyReady) => error(
                    StatusCode::FORBIDDEN,
                    "InvalidStateTransition",
                    "State transition from Ready to InitError failed for runtime. Error: State transition is not allowed",
                ),
            }
        }
        _ => match parse_invocation_path(rest) {
            Some((id, kind)) => {
                if parts.method != Method::POST {
                    return Ok(method_not_allowed());
                }
                let id = id.to_owned();
                if kind == PostKind::Response {
                    shared.response_begins();
                }
                let error_type = match kind {
                    PostKind::Error => error_type_header(&parts.headers),
                    PostKind::Response => None,
                };
                let ack = Ack::for_client(&parts.headers);
                let streaming = parts
                    .headers
                    .get(H_RESPONSE_MODE)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"streaming"));
                if streaming && kind == PostKind::Response {
                    let content_type = parts
                        .headers
                        .get(CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    post_stream(&shared, &id, content_type, body, ack).await
                } else {
                    post_result(&shared, &id, kind, error_type, body, ack).await
                }
            }
            None => not_found(),
        },
    };
    Ok(reply)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PostKind {
    Response,
    Error,
}

/// `invocation/{id}/response` or `invocation/{id}/error` → (id, kind).
fn parse_invocation_path(rest: &str) -> Option<(&str, PostKind)> {
    let tail = rest.strip_prefix("invocation/")?;
    let (id, kind) = if let Some(id) = tail.strip_suffix("/response") {
        (id, PostKind::Response)
    } else {
        (tail.strip_suffix("/error")?, PostKind::Error)
    };
    if id.is_empty() || id.contains('/') {
        return None;
    }
    Some((id, kind))
}

async fn next(shared: &Shared) -> Reply {
    let invocation = match shared.next() {
        Next::Now(inv) => inv,
        Next::Wait(rx) => match rx.await {
            Ok(inv) => inv,
            Err(_) => return closed(),
        },
        Next::Closed => return closed(),
    };
    invocation_response(invocation)
}

fn invocation_response(inv: Invocation) -> Reply {
    let mut resp = Response::new(inv.payload.into_body());
    let h = resp.headers_mut();
    // awslambdaric refuses an event without a Content-Type.
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::try_from(inv.request_id) {
        h.insert(H_REQUEST_ID, v);
    }
    h.insert(H_DEADLINE, HeaderValue::from(inv.deadline_ms));
    if let Ok(v) = HeaderValue::try_from(inv.invoked_function_arn) {
        h.insert(H_ARN, v);
    }
    if let Ok(v) = HeaderValue::try_from(inv.trace_id) {
        h.insert(H_TRACE, v);
    }
    if let Some(v) = inv
        .client_context
        .and_then(|c| HeaderValue::try_from(c).ok())
    {
        h.insert(H_CLIENT_CONTEXT, v);
    }
    if let Some(v) = inv
        .cognito_identity
        .and_then(|c| HeaderValue::try_from(c).ok())
    {
        h.insert(H_COGNITO, v);
    }
    resp
}

/// How a `/response` or `/error` is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ack {
    /// `202 {"status":"OK"}`, as AWS's Runtime API answers.
    StatusOk,
    /// `202` with an empty body, for AWS's Rust client (`lambda_runtime`): it drops the answer
    /// unread (aws-lambda-rust-runtime#1110), and hyper then closes the connection rather than
    /// reuse it, so every invoke would pay for a new TCP connection to `/next`. With nothing left
    /// unread the connection stays alive. The client never looks past the status.
    Empty,
}

impl Ack {
    fn for_client(headers: &http::HeaderMap) -> Self {
        let rust_client = headers
            .get(USER_AGENT)
            .is_some_and(|ua| ua.as_bytes().starts_with(b"aws-lambda-rust/"));
        if rust_client {
            Ack::Empty
        } else {
            Ack::StatusOk
        }
    }
}

async fn post_result(
    shared: &Shared,
    id: &str,
    kind: PostKind,
    error_type: Option<String>,
    body: Incoming,
    ack: Ack,
) -> Reply {
    // The body is read even when the id is wrong: an unread body would cost the runtime its
    // keep-alive connection.
    let outcome = match (read_payload(body).await, kind) {
        (Ok(body), PostKind::Response) => Outcome::Response(body),
        (Ok(body), PostKind::Error) => Outcome::Error {
            error_type,
            body: body.contiguous(),
        },
        // An oversized error report ends the invoke the same way: the caller must not wait for
        // the deadline.
        (Err(BodyError::TooLarge), _) => {
            if shared.complete(id, Outcome::ResponseTooLarge).is_err() {
                return invalid_request_id();
            }
            return too_large();
        }
        (Err(BodyError::Broken), _) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "Could not read the request body",
            );
        }
    };
    match shared.complete(id, outcome) {
        Ok(()) if ack == Ack::Empty => {
            let mut resp = Response::new(Payload::default().into_body());
            *resp.status_mut() = StatusCode::ACCEPTED;
            resp
        }
        Ok(()) => accepted(),
        Err(_) => invalid_request_id(),
    }
}

/// A streamed `/response`: the invocation's outcome is the stream itself, handed over as soon as
/// the request's head arrives; each chunk follows as the runtime writes it, and the trailers (or
/// a broken connection) say how it ended.
async fn post_stream(
    shared: &Shared,
    id: &str,
    content_type: Option<String>,
    mut body: Incoming,
    ack: Ack,
) -> Reply {
    let (chunk_tx, chunks) = tokio::sync::mpsc::channel(STREAM_BUFFER);
    let (end_tx, end) = tokio::sync::oneshot::channel();
    let stream = crate::ResponseStream {
        content_type,
        chunks,
        end,
    };
    if shared.complete(id, Outcome::Streaming(stream)).is_err() {
        let _ = body.collect().await;
        return invalid_request_id();
    }
    let mut total = 0usize;
    let mut reader_gone = false;
    let mut pacer = crate::bandwidth::StreamPacer::new();
    let ending = loop {
        match body.frame().await {
            None => break Outcome::Response(Payload::default()),
            Some(Err(_)) => {
                break Outcome::Error {
                    error_type: Some("Runtime.TruncatedResponse".into()),
                    body: Bytes::from_static(
                        br#"{"errorType":"Runtime.TruncatedResponse","errorMessage":"The response stream was interrupted."}"#,
                    ),
                }
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    total += data.len();
                    if total > crate::MAX_STREAMED_RESPONSE_BYTES {
                        break Outcome::ResponseTooLarge;
                    }
                    // A reader that went away (client disconnect) no longer gets chunks; the
                    // function still runs to its end.
                    if !reader_gone && !data.is_empty() {
                        pacer.pace(data.len()).await;
                        reader_gone = chunk_tx.send(data).await.is_err();
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        if let Some(t) = error_type_header(&trailers) {
                            break Outcome::Error {
                                body: trailer_error_body(&trailers, &t),
                                error_type: Some(t),
                            };
                        }
                    }
                }
            },
        }
    };
    drop(chunk_tx);
    let too_large = ending == Outcome::ResponseTooLarge;
    let _ = end_tx.send(ending);
    if too_large {
        return too_large_streamed();
    }
    match ack {
        Ack::Empty => {
            let mut resp = Response::new(Payload::default().into_body());
            *resp.status_mut() = StatusCode::ACCEPTED;
            resp
        }
        Ack::StatusOk => accepted(),
    }
}

/// `Lambda-Runtime-Function-Error-Body` is base64 of the error document; without it, one is built
/// from the error type.
fn trailer_error_body(trailers: &http::HeaderMap, error_type: &str) -> Bytes {
    use base64::Engine as _;
    trailers
        .get(H_ERROR_BODY)
        .and_then(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.as_bytes())
                .ok()
        })
        .map(Bytes::from)
        .unwrap_or_else(|| {
            Bytes::from(
                serde_json::json!({"errorType": error_type, "errorMessage": error_type})
                    .to_string(),
            )
        })
}

fn too_large_streamed() -> Reply {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
        &format!(
            "Exceeded maximum allowed payload size ({} bytes).",
            crate::MAX_STREAMED_RESPONSE_BYTES
        ),
    )
}

pub(crate) enum BodyError {
    TooLarge,
    Broken,
}

/// A posted body as one buffer (a single-chunk body comes out without a copy).
pub(crate) async fn read_body(body: Incoming) -> Result<Bytes, BodyError> {
    read_payload(body).await.map(|p| p.contiguous())
}

/// A posted body as hyper read it, its chunks not gathered (a response on its way to the caller).
async fn read_payload(body: Incoming) -> Result<Payload, BodyError> {
    Payload::read(body, MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| match e {
            crate::ReadError::TooLarge => BodyError::TooLarge,
            crate::ReadError::Broken(_) => BodyError::Broken,
        })
}

fn error_type_header(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(H_ERROR_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

pub(crate) fn json(status: StatusCode, body: Bytes) -> Reply {
    let mut resp = Response::new(Payload::from(body).into_body());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn accepted() -> Reply {
    json(
        StatusCode::ACCEPTED,
        Bytes::from_static(br#"{"status":"OK"}"#),
    )
}

pub(crate) fn error(status: StatusCode, error_type: &str, message: &str) -> Reply {
    let body = serde_json::json!({ "errorMessage": message, "errorType": error_type }).to_string();
    json(status, Bytes::from(body))
}

fn invalid_request_id() -> Reply {
    error(
        StatusCode::BAD_REQUEST,
        "InvalidRequestID",
        "Invalid request ID",
    )
}

fn too_large() -> Reply {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
        &format!("Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
    )
}

pub(crate) fn closed() -> Reply {
    error(
        StatusCode::GONE,
        "EnvironmentClosed",
        "The execution environment is shutting down",
    )
}

pub(crate) fn not_found() -> Reply {
    error(
        StatusCode::NOT_FOUND,
        "InvalidURL",
        "Unknown Runtime API path",
    )
}

pub(crate) fn method_not_allowed() -> Reply {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "Method not allowed",
    )
}

/// A fresh X-Ray trace header (`Root=1-<time>-<96 bits>;Parent=<64 bits>`), without a sampling
/// decision: the engine adds it from the function's tracing mode.
pub fn new_trace_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let root: [u8; 12] = rand::random();
    let parent: [u8; 8] = rand::random();
    let mut s = String::with_capacity(80);
    let _ = write!(s, "Root=1-{:08x}-", secs as u32);
    push_hex(&mut s, &root);
    s.push_str(";Parent=");
    push_hex(&mut s, &parent);
    s
}

/// Lower-case hex of `bytes` (on every invoke without a caller's trace: no formatter per byte).
fn push_hex(s: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocation_paths_parse_id_and_kind() {
        assert_eq!(
            parse_invocation_path("invocation/abc/response"),
            Some(("abc", PostKind::Response))
        );
        assert_eq!(
            parse_invocation_path("invocation/abc/error"),
            Some(("abc", PostKind::Error))
        );
        assert_eq!(parse_invocation_path("invocation//error"), None);
        assert_eq!(parse_invocation_path("invocation/a/b/error"), None);
        assert_eq!(parse_invocation_path("invocation/abc"), None);
    }

    #[test]
    fn only_the_rust_client_gets_an_empty_acknowledgement() {
        let mut h = http::HeaderMap::new();
        assert_eq!(Ack::for_client(&h), Ack::StatusOk);
        h.insert(
            USER_AGENT,
            HeaderValue::from_static("aws-lambda-rust/1.5.0"),
        );
        assert_eq!(Ack::for_client(&h), Ack::Empty);
        h.insert(
            USER_AGENT,
            HeaderValue::from_static("Python/3.11 awslambdaric"),
        );
        assert_eq!(Ack::for_client(&h), Ack::StatusOk);
    }

    #[test]
    fn trace_ids_have_xrays_shape() {
        let t = new_trace_id();
        let root = t.strip_prefix("Root=1-").unwrap_or("");
        assert_eq!(root.len(), 8 + 1 + 24 + ";Parent=".len() + 16);
        assert_ne!(t, new_trace_id());
        let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        assert!(root[9..33].chars().all(hex), "{t}");
        let mut s = String::new();
        push_hex(&mut s, &[0x00, 0x9f, 0xa0, 0xff]);
        assert_eq!(s, "009fa0ff");
    }
}
