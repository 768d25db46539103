//! Output rendering: the control plane's result object becomes the HTTP response the model
//! describes — header-bound members in headers, a `statusCode` member as the status, the rest as
//! the JSON body, and no body at all for 204.

use axum::body::Body;
use axum::response::Response;
use base64::Engine as _;
use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::{Map, Value};

use crate::model::{Kind, Location, Model, Operation};

fn header_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Operations AWS answers with another status than the model's `responseCode` (recorded:
/// DeleteFunction is 204 with no body, its `StatusCode` member reflecting that).
const STATUS_OVERRIDES: &[(&str, u16)] = &[("DeleteFunction", 204)];

pub(crate) fn render(model: &Model, op: &Operation, output: Value) -> Response {
    let code = STATUS_OVERRIDES
        .iter()
        .find(|(name, _)| *name == op.name)
        .map_or(op.response_code, |(_, code)| *code);
    let mut status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    let mut headers = Vec::new();
    let mut body: Option<Vec<u8>> = None;

    match (op.output, output) {
        (Some(shape), Value::Object(mut obj)) => {
            let members = model.members(shape);
            for m in members {
                match m.location {
                    Location::Header => {
                        if let Some(text) = obj.remove(&m.name).as_ref().and_then(header_text) {
                            if let (Ok(n), Ok(v)) = (
                                HeaderName::from_bytes(m.location_name.as_bytes()),
                                HeaderValue::from_str(&text),
                            ) {
                                headers.push((n, v));
                            }
                        }
                    }
                    Location::StatusCode => {
                        if let Some(code) = obj.remove(&m.name).and_then(|v| v.as_u64()) {
                            if let Ok(s) = u16::try_from(code).map(StatusCode::from_u16) {
                                status = s.unwrap_or(status);
                            }
                        }
                    }
                    _ => {}
                }
            }
            let payload = match &model.shape(shape).kind {
                Kind::Structure {
                    payload: Some(i), ..
                } => members.get(*i),
                _ => None,
            };
            body = Some(match payload {
                Some(p) => match (obj.remove(&p.name), &model.shape(p.shape).kind) {
                    // Blob payloads travel base64 inside the JSON result and raw on the wire.
                    (Some(Value::String(s)), Kind::Blob) => {
                        base64::engine::general_purpose::STANDARD
                            .decode(s.as_bytes())
                            .unwrap_or_else(|_| s.into_bytes())
                    }
                    (Some(v), _) => serde_json::to_vec(&v).unwrap_or_default(),
                    (None, _) => Vec::new(),
                },
                None => serde_json::to_vec(&Value::Object(obj)).unwrap_or_default(),
            });
        }
        (Some(_), Value::Null) | (None, _) => {}
        (Some(_), other) => body = Some(serde_json::to_vec(&other).unwrap_or_default()),
    }

    if status == StatusCode::NO_CONTENT {
        body = None;
    }
    let has_body = body.is_some();
    let mut resp = Response::new(body.map(Body::from).unwrap_or_else(Body::empty));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if has_body {
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    for (n, v) in headers {
        h.insert(n, v);
    }
    resp
}

/// An empty JSON object for operations whose result the control plane left empty.
pub(crate) fn empty_object() -> Value {
    Value::Object(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MODEL;
    use axum::body::to_bytes;
    use serde_json::json;

    async fn body_of(r: Response) -> Vec<u8> {
        to_bytes(r.into_body(), usize::MAX).await.unwrap().to_vec()
    }

    #[tokio::test]
    async fn create_function_is_201_json() {
        let op = MODEL.operation("CreateFunction").unwrap();
        let r = render(&MODEL, op, json!({"FunctionName": "f"}));
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(body_of(r).await, br#"{"FunctionName":"f"}"#);
    }

    #[tokio::test]
    async fn no_content_operations_have_empty_bodies() {
        let op = MODEL.operation("DeleteAlias").unwrap();
        let r = render(&MODEL, op, empty_object());
        assert_eq!(r.status(), 204);
        assert!(body_of(r).await.is_empty());
        let op = MODEL.operation("DeleteCodeSigningConfig").unwrap();
        let r = render(&MODEL, op, json!({}));
        assert_eq!(r.status(), 204);
        assert!(body_of(r).await.is_empty());
    }

    #[tokio::test]
    async fn status_code_member_sets_the_status() {
        let op = MODEL.operation("DeleteFunction").unwrap();
        let r = render(&MODEL, op, json!({"StatusCode": 204}));
        assert_eq!(r.status(), 204);
        // AWS answers 204 whatever the model's responseCode says.
        let r = render(&MODEL, op, json!({}));
        assert_eq!(r.status(), 204);
        assert!(body_of(r).await.is_empty());
        let op = MODEL.operation("GetAccountSettings").unwrap();
        let r = render(&MODEL, op, json!({}));
        assert_eq!(r.status(), 200);
        assert_eq!(body_of(r).await, b"{}");
    }
}
