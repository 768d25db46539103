//! The payload format 2.0 event a function URL hands its function, built as AWS builds it:
//! lower-cased headers with repeated ones comma-joined, cookies apart, the query both raw and
//! parsed, `requestContext` with the URL's id and domain, the caller for `AWS_IAM`, and the body
//! as text or — when it is not text — base64.

use base64::Engine as _;
use http::HeaderMap;
use serde_json::{json, Map, Value};

/// The signed caller of an `AWS_IAM` URL (`requestContext.authorizer.iam`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamCaller {
    pub access_key: String,
    pub account_id: String,
}

/// What the event is built from.
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// The path as the client sent it, still percent-encoded (after the path form's prefix).
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub source_ip: String,
}

/// Where the request arrived.
pub struct Context<'a> {
    pub url_id: &'a str,
    pub domain_name: &'a str,
    pub request_id: &'a str,
    pub caller: Option<&'a IamCaller>,
    pub now: chrono::DateTime<chrono::Utc>,
}

/// Content types whose bodies AWS passes as text; any other body is base64-encoded.
fn is_text(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let ct = ct.to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence,
            "application/json"
                | "application/javascript"
                | "application/xml"
                | "application/x-www-form-urlencoded"
                | "application/graphql"
                | "application/yaml"
        )
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// `a=1&a=2&b` → `{"a": "1,2", "b": ""}`, values decoded, repeats comma-joined.
fn query_parameters(raw: &str) -> Map<String, Value> {
    let mut out: Map<String, Value> = Map::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode(k), decode(v));
        match out.get_mut(&k) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                out.insert(k, Value::String(v));
            }
        }
    }
    out
}

/// The `x-forwarded-*` headers AWS's front end adds (its documented event): the client's
/// address appended to any it sent, the scheme, and the port (the Host header's, else 80).
fn forwarded_headers(headers: &mut Map<String, Value>, source_ip: &str) {
    match headers.get_mut("x-forwarded-for") {
        Some(Value::String(chain)) => {
            chain.push_str(", ");
            chain.push_str(source_ip);
        }
        _ => {
            headers.insert("x-forwarded-for".into(), json!(source_ip));
        }
    }
    let port = headers
        .get("host")
        .and_then(Value::as_str)
        .and_then(|h| h.rsplit_once(':'))
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or("80")
        .to_string();
    headers.insert("x-forwarded-proto".into(), json!("http"));
    headers.insert("x-forwarded-port".into(), json!(port));
}

/// The event, serialized.
pub fn build(req: &HttpRequest<'_>, ctx: &Context<'_>) -> Vec<u8> {
    let mut headers: Map<String, Value> = Map::new();
    let mut cookies: Vec<Value> = Vec::new();
    for (name, value) in req.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        // Hop-by-hop: AWS's front end does not pass the client's connection headers on.
        if name == http::header::CONNECTION || name.as_str() == "keep-alive" {
            continue;
        }
        if name == http::header::COOKIE {
            cookies.extend(
                value
                    .split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(|c| Value::String(c.to_string())),
            );
            continue;
        }
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_string(), Value::String(value.into_owned()));
            }
        }
    }
    forwarded_headers(&mut headers, &req.source_ip);
    let user_agent = headers
        .get("user-agent")
        .cloned()
        .unwrap_or(Value::String(String::new()));
    let content_type = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());

    let account_id = ctx
        .caller
        .map_or_else(|| "anonymous".to_string(), |c| c.account_id.clone());
    let mut request_context = json!({
        "accountId": account_id,
        "apiId": ctx.url_id,
        "domainName": ctx.domain_name,
        "domainPrefix": ctx.url_id,
        "http": {
            "method": req.method,
            "path": req.raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": req.source_ip,
            "userAgent": user_agent,
        },
        "requestId": ctx.request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": ctx.now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
        "timeEpoch": ctx.now.timestamp_millis(),
    });
    if let Some(caller) = ctx.caller {
        request_context["authorizer"] = json!({
            "iam": {
                "accessKey": caller.access_key,
                "accountId": caller.account_id,
                "callerId": caller.access_key,
                "cognitoIdentity": null,
                "principalOrgId": null,
                "userArn": format!("arn:aws:iam::{}:root", caller.account_id),
                "userId": caller.account_id,
            }
        });
    }

    let mut event = Map::new();
    event.insert("version".into(), json!("2.0"));
    event.insert("routeKey".into(), json!("$default"));
    event.insert("rawPath".into(), json!(req.raw_path));
    event.insert("rawQueryString".into(), json!(req.raw_query));
    if !cookies.is_empty() {
        event.insert("cookies".into(), Value::Array(cookies));
    }
    event.insert("headers".into(), Value::Object(headers));
    if !req.raw_query.is_empty() {
        event.insert(
            "queryStringParameters".into(),
            Value::Object(query_parameters(req.raw_query)),
        );
    }
    event.insert("requestContext".into(), request_context);
    let text = is_text(content_type).then(|| std::str::from_utf8(req.body).ok());
    match text.flatten() {
        _ if req.body.is_empty() => {
            event.insert("isBase64Encoded".into(), json!(false));
        }
        Some(body) => {
            event.insert("body".into(), json!(body));
            event.insert("isBase64Encoded".into(), json!(false));
        }
        None => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(req.body);
            event.insert("body".into(), json!(b64));
            event.insert("isBase64Encoded".into(), json!(true));
        }
    }
    serde_json::to_vec(&Value::Object(event)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn event(method: &str, query: &str, headers: &HeaderMap, body: &[u8]) -> Value {
        let req = HttpRequest {
            method,
            raw_path: "/a/b%20c",
            raw_query: query,
            headers,
            body,
            source_ip: "127.0.0.1".into(),
        };
        let ctx = Context {
            url_id: "abc",
            domain_name: "abc.lambda-url.us-east-1.localhost",
            request_id: "rid",
            caller: None,
            now: chrono::DateTime::from_timestamp(1_583_348_638, 390_000_000).unwrap_or_default(),
        };
        serde_json::from_slice(&build(&req, &ctx)).unwrap()
    }

    #[test]
    fn headers_are_lower_cased_and_repeats_joined_and_cookies_apart() {
        let mut h = HeaderMap::new();
        h.append("X-Multi", HeaderValue::from_static("1"));
        h.append("X-Multi", HeaderValue::from_static("2"));
        h.append("Cookie", HeaderValue::from_static("a=1; b=2"));
        h.append("User-Agent", HeaderValue::from_static("curl/8"));
        let e = event("GET", "x=1&x=2&y=%20", &h, b"");
        assert_eq!(e["headers"]["x-multi"], "1,2");
        assert!(e["headers"].get("cookie").is_none());
        assert_eq!(e["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(e["queryStringParameters"], json!({"x": "1,2", "y": " "}));
        assert_eq!(e["rawQueryString"], "x=1&x=2&y=%20");
        assert_eq!(e["requestContext"]["http"]["userAgent"], "curl/8");
        assert_eq!(e["requestContext"]["accountId"], "anonymous");
        assert_eq!(e["requestContext"]["time"], "04/Mar/2020:19:03:58 +0000");
        assert_eq!(e["requestContext"]["timeEpoch"], 1_583_348_638_390_i64);
        assert_eq!(e["isBase64Encoded"], false);
        assert!(e.get("body").is_none());
    }

    #[test]
    fn connection_headers_are_dropped_and_the_forwarded_ones_added_as_aws_does() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("keep-alive"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            "host",
            HeaderValue::from_static("id.lambda-url.us-east-1.localhost:9000"),
        );
        let e = event("GET", "", &h, b"");
        assert!(e["headers"].get("connection").is_none());
        assert!(e["headers"].get("keep-alive").is_none());
        assert_eq!(e["headers"]["x-forwarded-for"], "127.0.0.1");
        assert_eq!(e["headers"]["x-forwarded-proto"], "http");
        assert_eq!(e["headers"]["x-forwarded-port"], "9000");

        h.insert(
            "host",
            HeaderValue::from_static("id.lambda-url.us-east-1.example"),
        );
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        let e = event("GET", "", &h, b"");
        assert_eq!(e["headers"]["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(e["headers"]["x-forwarded-port"], "80");
    }

    #[test]
    fn text_bodies_pass_as_text_and_others_as_base64() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        let e = event("POST", "", &h, b"{\"a\":1}");
        assert_eq!(e["body"], "{\"a\":1}");
        assert_eq!(e["isBase64Encoded"], false);
        assert!(e.get("queryStringParameters").is_none());
        h.insert(
            "content-type",
            HeaderValue::from_static("application/octet-stream"),
        );
        let e = event("POST", "", &h, b"\x00\x01");
        assert_eq!(e["body"], "AAE=");
        assert_eq!(e["isBase64Encoded"], true);
    }
}
