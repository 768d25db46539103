//! Input assembly: URI labels, query-string members (converted to the member's type), header
//! members and the JSON body merged into one JSON object keyed by the model's member names —
//! the `input` the control plane's `execute` takes.

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::model::{Kind, Location, Model, ShapeId};
use crate::route::query_pairs;
use crate::validation::counted;
use flint_control::ErrorCode;

fn bad_body(detail: impl std::fmt::Display) -> ApiError {
    ApiError::lambda(
        ErrorCode::InvalidRequestContentException,
        format!("Could not parse request body into json: {detail}"),
    )
}

/// A string from the URI, query or a header, as the member's type.
fn typed(model: &Model, shape: ShapeId, raw: &str, path: &str) -> Result<Value, ApiError> {
    let not = |what: &str| {
        ApiError::validation(counted(&[format!(
            "Value '{raw}' at '{path}' failed to satisfy constraint: Member must be {what}"
        )]))
    };
    Ok(match model.shape(shape).kind {
        Kind::Integer | Kind::Long => Value::from(
            raw.trim()
                .parse::<i64>()
                .map_err(|_| not("a valid integer"))?,
        ),
        Kind::Double => {
            let f: f64 = raw.trim().parse().map_err(|_| not("a valid number"))?;
            serde_json::Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| not("a valid number"))?
        }
        Kind::Boolean => match raw.trim().to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(not("a valid boolean")),
        },
        _ => Value::String(raw.to_string()),
    })
}

/// Builds the operation's input. `labels` are the decoded URI labels of the route.
pub(crate) fn assemble(
    model: &Model,
    input_shape: ShapeId,
    labels: &[(String, String)],
    query: Option<&str>,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<Value, ApiError> {
    let members = model.members(input_shape);
    let payload = match &model.shape(input_shape).kind {
        Kind::Structure { payload, .. } => *payload,
        _ => None,
    };
    let mut input = Map::new();

    match payload {
        Some(i) => {
            // The body is one member: raw bytes (base64 here, as blobs travel in JSON) or a
            // structure.
            let m = &members[i];
            if !body.is_empty() {
                let v = match model.shape(m.shape).kind {
                    Kind::Blob | Kind::String => {
                        Value::String(base64::engine::general_purpose::STANDARD.encode(body))
                    }
                    _ => serde_json::from_slice(body).map_err(bad_body)?,
                };
                input.insert(m.name.clone(), v);
            }
        }
        None => {
            let trimmed = body.iter().all(|b| b.is_ascii_whitespace());
            if !trimmed {
                match serde_json::from_slice::<Value>(body).map_err(bad_body)? {
                    Value::Object(obj) => {
                        for m in members.iter().filter(|m| m.location == Location::Body) {
                            if let Some(v) = obj.get(&m.name) {
                                input.insert(m.name.clone(), v.clone());
                            }
                        }
                    }
                    Value::Null => {}
                    _ => return Err(bad_body("the body is not a JSON object")),
                }
            }
        }
    }

    let pairs = query.map(query_pairs).unwrap_or_default();
    for m in members {
        match m.location {
            Location::Uri => {
                if let Some((_, v)) = labels.iter().find(|(n, _)| *n == m.location_name) {
                    input.insert(m.name.clone(), typed(model, m.shape, v, &m.path_name)?);
                }
            }
            Location::Query => {
                let values: Vec<&str> = pairs
                    .iter()
                    .filter(|(k, _)| *k == m.location_name)
                    .map(|(_, v)| v.as_str())
                    .collect();
                if values.is_empty() {
                    continue;
                }
                let v = match model.shape(m.shape).kind {
                    Kind::List { member } => Value::Array(
                        values
                            .iter()
                            .map(|v| typed(model, member, v, &m.path_name))
                            .collect::<Result<_, _>>()?,
                    ),
                    _ => typed(model, m.shape, values[0], &m.path_name)?,
                };
                input.insert(m.name.clone(), v);
            }
            Location::Header => {
                if let Some(v) = headers.get(m.location_name.as_str()) {
                    let s = String::from_utf8_lossy(v.as_bytes());
                    input.insert(m.name.clone(), typed(model, m.shape, &s, &m.path_name)?);
                }
            }
            Location::Body | Location::StatusCode => {}
        }
    }
    Ok(Value::Object(input))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MODEL;
    use serde_json::json;

    fn shape(op: &str) -> ShapeId {
        MODEL.operation(op).unwrap().input.unwrap()
    }

    #[test]
    fn merges_labels_query_and_body_by_member_name() {
        let v = assemble(
            &MODEL,
            shape("UpdateAlias"),
            &[
                ("FunctionName".into(), "f".into()),
                ("Name".into(), "live".into()),
            ],
            None,
            &http::HeaderMap::new(),
            br#"{"FunctionVersion": "2", "Unknown": 1}"#,
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"FunctionVersion": "2", "FunctionName": "f", "Name": "live"})
        );
    }

    #[test]
    fn query_members_take_their_types() {
        let v = assemble(
            &MODEL,
            shape("ListFunctions"),
            &[],
            Some("MaxItems=10&FunctionVersion=ALL&Marker=a%2Bb"),
            &http::HeaderMap::new(),
            b"",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"FunctionVersion": "ALL", "Marker": "a+b", "MaxItems": 10})
        );
        let v = assemble(
            &MODEL,
            shape("UntagResource"),
            &[("Resource".into(), "arn".into())],
            Some("tagKeys=a&tagKeys=b"),
            &http::HeaderMap::new(),
            b"",
        )
        .unwrap();
        assert_eq!(v["TagKeys"], json!(["a", "b"]));
    }

    #[test]
    fn uri_long_labels_become_numbers() {
        let v = assemble(
            &MODEL,
            shape("GetLayerVersion"),
            &[
                ("LayerName".into(), "l".into()),
                ("VersionNumber".into(), "3".into()),
            ],
            None,
            &http::HeaderMap::new(),
            b"",
        )
        .unwrap();
        assert_eq!(v["VersionNumber"], json!(3));
        let e = assemble(
            &MODEL,
            shape("ListFunctions"),
            &[],
            Some("MaxItems=ten"),
            &http::HeaderMap::new(),
            b"",
        )
        .unwrap_err();
        assert_eq!(e.code, "ValidationException");
    }

    #[test]
    fn bad_json_body_is_invalid_request_content() {
        let e = assemble(
            &MODEL,
            shape("CreateFunction"),
            &[],
            None,
            &http::HeaderMap::new(),
            b"{nope",
        )
        .unwrap_err();
        assert_eq!(e.code, "InvalidRequestContentException");
        assert_eq!(e.status, 400);
        assert!(e
            .message
            .starts_with("Could not parse request body into json: "));
    }
}
