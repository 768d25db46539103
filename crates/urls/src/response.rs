//! A function's result as the HTTP response of its URL, mapped as AWS maps it: an object with a
//! `statusCode` is a response (`headers`, `cookies` as `Set-Cookie`, `body`, `isBase64Encoded`);
//! any other JSON value is the body of a `200 application/json` response -- a string as its
//! text, anything else as compact JSON (recorded: `"hello"` → `hello`, `{"hello": "world"}` →
//! `{"hello":"world"}`, `["hello", 3, true]` → `["hello",3,true]`).

use axum::body::Body;
use axum::response::Response;
use base64::Engine as _;
use bytes::Bytes;
use flint_engine::Payload;
use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::Value;

use crate::error::UrlError;

fn header_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn inferred(payload: Bytes) -> Response {
    let mut resp = Response::new(Body::from(payload));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A RESPONSE_STREAM URL's answer for a function that did not stream: the payload unread, with
/// a streamed response's default type.
pub fn verbatim(payload: Payload) -> Response {
    let mut resp = Response::new(Body::new(payload.into_body()));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    resp
}

/// JSON text without the whitespace between its tokens; the tokens themselves (numbers of any
/// size or precision, strings with their escapes) are kept byte for byte.
fn compact(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            in_string = b == b'"';
            out.push(b);
        }
    }
    out
}

/// The URL's answer for a successful invocation's payload.
pub fn map(payload: Bytes) -> Result<Response, UrlError> {
    // Only an object with a statusCode is a structured response; anything else is the body.
    let obj = match serde_json::from_slice::<Value>(&payload) {
        Ok(Value::Object(obj)) if obj.contains_key("statusCode") => obj,
        Ok(Value::String(text)) => return Ok(inferred(Bytes::from(text))),
        Ok(_) => return Ok(inferred(Bytes::from(compact(&payload)))),
        Err(_) => return Ok(inferred(payload)),
    };
    let Some(code) = obj.get("statusCode") else {
        return Ok(inferred(payload));
    };
    let code = match code {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    let status = code
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(UrlError::FunctionError)?;
    let body = match obj.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(s)) => {
            if obj.get("isBase64Encoded") == Some(&Value::Bool(true)) {
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map(Bytes::from)
                    .map_err(|_| UrlError::FunctionError)?
            } else {
                Bytes::from(s.clone())
            }
        }
        Some(other) => Bytes::from(other.to_string()),
    };
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    if let Some(Value::Object(h)) = obj.get("headers") {
        for (k, v) in h {
            let (Ok(name), Some(value)) = (HeaderName::try_from(k.as_str()), header_text(v)) else {
                continue;
            };
            if let Ok(value) = HeaderValue::try_from(value) {
                headers.insert(name, value);
            }
        }
    }
    if let Some(Value::Array(cookies)) = obj.get("cookies") {
        for c in cookies.iter().filter_map(Value::as_str) {
            if let Ok(v) = HeaderValue::from_str(c) {
                headers.append(http::header::SET_COOKIE, v);
            }
        }
    }
    if !headers.contains_key(http::header::CONTENT_TYPE) {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn parts(resp: Response) -> (u16, http::HeaderMap, Vec<u8>) {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, headers, body)
    }

    #[tokio::test]
    async fn a_structured_response_sets_status_headers_cookies_and_body() {
        let payload = br#"{"statusCode":201,"headers":{"x-a":"1","x-n":2},"cookies":["a=1","b=2; Secure"],"body":"aGk=","isBase64Encoded":true}"#;
        let (status, headers, body) = parts(map(Bytes::from_static(payload)).unwrap()).await;
        assert_eq!(status, 201);
        assert_eq!(headers["x-a"], "1");
        assert_eq!(headers["x-n"], "2");
        let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2; Secure"]);
        assert_eq!(body, b"hi");
    }

    #[tokio::test]
    async fn any_other_json_is_a_200_json_body_compact_and_a_string_its_text_as_recorded() {
        let cases: [(&[u8], &[u8]); 9] = [
            (br#"{"hello": "world"}"#, br#"{"hello":"world"}"#),
            (br#"["hello", 3, true]"#, br#"["hello",3,true]"#),
            (br#""hello""#, b"hello"),
            (
                br#""a \"quoted\" \u00e9""#,
                "a \"quoted\" \u{e9}".as_bytes(),
            ),
            (b"3", b"3"),
            (b"3.1", b"3.1"),
            (b"true", b"true"),
            (b"null", b"null"),
            (
                b"{ \"k\" : [ 123456789012345678901234567890, 1.50 ],\n \"s\": \"a b\\\" c\" }",
                b"{\"k\":[123456789012345678901234567890,1.50],\"s\":\"a b\\\" c\"}",
            ),
        ];
        for (payload, expected) in cases {
            let (status, headers, body) =
                parts(map(Bytes::copy_from_slice(payload)).unwrap()).await;
            assert_eq!(status, 200);
            assert_eq!(headers["content-type"], "application/json");
            assert_eq!(
                String::from_utf8_lossy(&body),
                String::from_utf8_lossy(expected)
            );
        }
    }

    #[test]
    fn an_impossible_status_is_a_function_error() {
        let r = map(Bytes::from_static(b"{\"statusCode\":\"abc\"}"));
        assert_eq!(r.err(), Some(UrlError::FunctionError));
    }
}
