//! The HTTP side of the Extensions API (`/2020-01-01/extension/...`), the Telemetry API
//! (`/2022-07-01/telemetry`) and the Logs API (`/2020-08-15/logs`), served beside the Runtime
//! API at `AWS_LAMBDA_RUNTIME_API`; plus the two calls of Flint's extension launcher
//! (`/flint/extensions/...`), which starts `/opt/extensions/*` before the runtime. Refusals are
//! the JSON errors AWS's answer with.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Method, StatusCode};
use hyper::body::Incoming;

use crate::extensions::{ExtensionError, NextEvent};
use crate::server::{closed, error, json, method_not_allowed, not_found, read_body, Reply};
use crate::state::Shared;
use crate::telemetry::Api;

const H_NAME: &str = "lambda-extension-name";
const H_IDENTIFIER: &str = "lambda-extension-identifier";
const H_ERROR_TYPE: &str = "lambda-extension-function-error-type";
const H_ACCEPT_FEATURE: &str = "lambda-extension-accept-feature";
const H_EVENT_ID: HeaderName = HeaderName::from_static("lambda-extension-event-identifier");
/// Flint's launcher reports an extension's exit status in this header.
const H_EXIT_CODE: &str = "flint-exit-code";

pub(crate) async fn handle(
    shared: &Arc<Shared>,
    parts: http::request::Parts,
    body: Incoming,
) -> Reply {
    let path = parts.uri.path();
    let method = &parts.method;
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    match path {
        "/2020-01-01/extension/register" => {
            if method != Method::POST {
                return method_not_allowed();
            }
            let name = header(H_NAME).unwrap_or_default();
            let features = header(H_ACCEPT_FEATURE).unwrap_or_default();
            let body = read_body(body).await.unwrap_or_default();
            register(shared, &name, &features, &body)
        }
        "/2020-01-01/extension/event/next" => {
            if method != Method::GET {
                return method_not_allowed();
            }
            match header(H_IDENTIFIER) {
                Some(id) => next(shared, &id).await,
                None => refusal(&ExtensionError::MissingIdentifier),
            }
        }
        "/2020-01-01/extension/init/error" | "/2020-01-01/extension/exit/error" => {
            if method != Method::POST {
                return method_not_allowed();
            }
            let _ = read_body(body).await;
            let Some(id) = header(H_IDENTIFIER) else {
                return refusal(&ExtensionError::MissingIdentifier);
            };
            let Some(error_type) = header(H_ERROR_TYPE) else {
                return refusal(&ExtensionError::MissingErrorType);
            };
            let result = shared.extensions.error(&id, error_type);
            shared.extensions_changed();
            match result {
                Ok(()) => json(
                    StatusCode::ACCEPTED,
                    Bytes::from_static(br#"{"status":"OK"}"#),
                ),
                Err(e) => refusal(&e),
            }
        }
        "/2022-07-01/telemetry" | "/2020-08-15/logs" => {
            if method != Method::PUT {
                return method_not_allowed();
            }
            let api = if path.starts_with("/2022") {
                Api::Telemetry
            } else {
                Api::Logs
            };
            let body = read_body(body).await.unwrap_or_default();
            let Some(id) = header(H_IDENTIFIER) else {
                return refusal(&ExtensionError::MissingIdentifier);
            };
            let Some(name) = shared.extensions.name_of(&id) else {
                return refusal(&ExtensionError::Unknown(id));
            };
            match shared.telemetry.subscribe(&name, &body, api) {
                Ok(()) => json(StatusCode::OK, Bytes::from_static(br#""OK""#)),
                Err(e) => error(StatusCode::BAD_REQUEST, "ValidationError", &e.0),
            }
        }
        "/flint/extensions/launch" => {
            // The launcher starts the runtime once every extension registered (or one failed).
            shared.extensions.registered().await;
            json(StatusCode::OK, Bytes::from_static(br#"{"status":"OK"}"#))
        }
        "/flint/extensions/exited" => {
            let name = header(H_NAME).unwrap_or_default();
            let code = header(H_EXIT_CODE)
                .and_then(|c| c.trim().parse::<i32>().ok())
                .unwrap_or(-1);
            shared.extensions.exited(&name, code);
            shared.extensions_changed();
            json(StatusCode::OK, Bytes::from_static(br#"{"status":"OK"}"#))
        }
        _ => not_found(),
    }
}

fn refusal(e: &ExtensionError) -> Reply {
    let status = match e {
        ExtensionError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::FORBIDDEN,
    };
    error(status, e.error_type(), &e.to_string())
}

#[derive(serde::Deserialize)]
struct RegisterRequest {
    #[serde(default)]
    events: Vec<String>,
}

fn register(shared: &Shared, name: &str, features: &str, body: &[u8]) -> Reply {
    let req: RegisterRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RegisterRequest { events: Vec::new() }
    } else {
        match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return refusal(&ExtensionError::InvalidRequest(e.to_string())),
        }
    };
    let id = match shared.extensions.register(name, &req.events) {
        Ok(id) => id,
        Err(e) => return refusal(&e),
    };
    shared.extensions_changed();
    let info = shared.extensions.function();
    let mut body = serde_json::json!({
        "functionName": info.function_name,
        "functionVersion": info.function_version,
        "handler": info.handler,
    });
    if features.split(',').any(|f| f.trim() == "accountId") {
        body["accountId"] = serde_json::json!(info.account_id);
    }
    let mut resp = json(StatusCode::OK, Bytes::from(body.to_string()));
    if let Ok(v) = HeaderValue::try_from(id) {
        resp.headers_mut()
            .insert(HeaderName::from_static(H_IDENTIFIER), v);
    }
    resp
}

async fn next(shared: &Shared, id: &str) -> Reply {
    let next = shared.extensions.next(id);
    shared.extensions_changed();
    let event = match next {
        Ok(NextEvent::Now(e)) => e,
        Ok(NextEvent::Wait(rx)) => match rx.await {
            Ok(e) => e,
            Err(_) => return closed(),
        },
        Err(e) => return refusal(&e),
    };
    let mut resp = http::Response::new(crate::Payload::from(event).into_body());
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::try_from(uuid::Uuid::new_v4().to_string()) {
        h.insert(H_EVENT_ID, v);
    }
    resp
}
