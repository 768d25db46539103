//! CORS, answered by the URL from its `Cors` config as AWS does: a preflight (`OPTIONS` with
//! `Origin` and `Access-Control-Request-Method`) never reaches the function, and every other
//! response from an allowed origin gets the `Access-Control-*` headers (replacing any the
//! function set).

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::Value;

/// The `Cors` shape of a URL config.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Cors {
    pub allow_credentials: bool,
    pub allow_headers: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_origins: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<u64>,
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl Cors {
    /// From the config's JSON (AWS's member names).
    pub fn from_config(v: &Value) -> Self {
        Self {
            allow_credentials: v.get("AllowCredentials").and_then(Value::as_bool) == Some(true),
            allow_headers: strings(v, "AllowHeaders"),
            allow_methods: strings(v, "AllowMethods"),
            allow_origins: strings(v, "AllowOrigins"),
            expose_headers: strings(v, "ExposeHeaders"),
            max_age: v.get("MaxAge").and_then(Value::as_u64),
        }
    }

    /// The `Access-Control-Allow-Origin` value for this request's origin, if it is allowed.
    fn allow_origin(&self, origin: &str) -> Option<String> {
        if self.allow_origins.iter().any(|o| o == "*") {
            // A wildcard cannot be combined with credentials: echo the origin then.
            return Some(if self.allow_credentials {
                origin.to_string()
            } else {
                "*".to_string()
            });
        }
        self.allow_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
            .then(|| origin.to_string())
    }

    fn method_allowed(&self, method: &str) -> bool {
        self.allow_methods
            .iter()
            .any(|m| m == "*" || m.eq_ignore_ascii_case(method))
    }
}

fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(http::header::ORIGIN)?.to_str().ok()
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// Whether this request is a CORS preflight the URL answers itself.
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(http::header::ORIGIN)
        && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to a preflight: 200, with the allowances when the origin and method are allowed.
pub fn preflight(cors: &Cors, headers: &HeaderMap) -> Response {
    let mut resp = Response::new(Body::empty());
    let requested = headers
        .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(allow_origin) = origin(headers).and_then(|o| cors.allow_origin(o)) else {
        return resp;
    };
    if !cors.method_allowed(requested) {
        return resp;
    }
    let h = resp.headers_mut();
    set(h, "access-control-allow-origin", &allow_origin);
    set(
        h,
        "access-control-allow-methods",
        &cors.allow_methods.join(","),
    );
    if !cors.allow_headers.is_empty() {
        set(
            h,
            "access-control-allow-headers",
            &cors.allow_headers.join(","),
        );
    }
    if let Some(age) = cors.max_age {
        set(h, "access-control-max-age", &age.to_string());
    }
    if cors.allow_credentials {
        set(h, "access-control-allow-credentials", "true");
    }
    if allow_origin != "*" {
        set(h, "vary", "Origin");
    }
    resp
}

/// Adds the CORS headers to an ordinary response for an allowed origin.
pub fn decorate(cors: &Cors, request_headers: &HeaderMap, response_headers: &mut HeaderMap) {
    for name in [
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-expose-headers",
        "access-control-max-age",
        "access-control-allow-credentials",
    ] {
        response_headers.remove(name);
    }
    let Some(allow_origin) = origin(request_headers).and_then(|o| cors.allow_origin(o)) else {
        return;
    };
    set(
        response_headers,
        "access-control-allow-origin",
        &allow_origin,
    );
    if !cors.expose_headers.is_empty() {
        set(
            response_headers,
            "access-control-expose-headers",
            &cors.expose_headers.join(","),
        );
    }
    if cors.allow_credentials {
        set(response_headers, "access-control-allow-credentials", "true");
    }
    if allow_origin != "*" {
        set(response_headers, "vary", "Origin");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(origin: &str, method: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("origin", HeaderValue::from_str(origin).unwrap());
        h.insert(
            "access-control-request-method",
            HeaderValue::from_str(method).unwrap(),
        );
        h
    }

    fn config() -> Cors {
        Cors::from_config(&json!({
            "AllowOrigins": ["https://app.example"],
            "AllowMethods": ["GET", "POST"],
            "AllowHeaders": ["x-custom"],
            "ExposeHeaders": ["x-out"],
            "MaxAge": 600,
            "AllowCredentials": true
        }))
    }

    #[test]
    fn a_preflight_from_an_allowed_origin_gets_every_allowance() {
        let resp = preflight(&config(), &request("https://app.example", "POST"));
        let h = resp.headers();
        assert_eq!(h["access-control-allow-origin"], "https://app.example");
        assert_eq!(h["access-control-allow-methods"], "GET,POST");
        assert_eq!(h["access-control-allow-headers"], "x-custom");
        assert_eq!(h["access-control-max-age"], "600");
        assert_eq!(h["access-control-allow-credentials"], "true");
    }

    #[test]
    fn a_preflight_from_another_origin_or_for_another_method_gets_none() {
        let resp = preflight(&config(), &request("https://evil.example", "POST"));
        assert!(resp.headers().get("access-control-allow-origin").is_none());
        let resp = preflight(&config(), &request("https://app.example", "DELETE"));
        assert!(resp.headers().get("access-control-allow-origin").is_none());
    }

    #[test]
    fn responses_to_allowed_origins_expose_headers_and_replace_the_functions() {
        let mut out = HeaderMap::new();
        out.insert("access-control-allow-origin", HeaderValue::from_static("*"));
        decorate(&config(), &request("https://app.example", "GET"), &mut out);
        assert_eq!(out["access-control-allow-origin"], "https://app.example");
        assert_eq!(out["access-control-expose-headers"], "x-out");
        let mut out = HeaderMap::new();
        decorate(&config(), &request("https://evil.example", "GET"), &mut out);
        assert!(out.is_empty());
    }
}
