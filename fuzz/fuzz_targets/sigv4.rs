//! SigV4 as the API verifies it, against AWS's own signer (`aws-sigv4`, what every AWS SDK for
//! Rust uses): a request the signer signed is accepted, the same request with its body changed is
//! refused, and an arbitrary `Authorization` header never panics.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use arbitrary::Arbitrary;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use flint_api::{ApiConfig, Credentials};
use libfuzzer_sys::fuzz_target;

const AKID: &str = "AKIAFUZZFUZZFUZZFUZZ";
const SECRET: &str = "fuzz/secret/key/fuzz/secret/key/fuzz0000";

#[derive(Debug, Arbitrary)]
struct Input {
    method: bool,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Which byte of the body to change for the negative check.
    flip: usize,
    /// An `Authorization` header of the fuzzer's own (no panic, and no acceptance).
    raw_authorization: String,
    raw_date: String,
}

fn config() -> &'static ApiConfig {
    static CONFIG: OnceLock<ApiConfig> = OnceLock::new();
    CONFIG.get_or_init(|| ApiConfig {
        credentials: Some(Credentials::new([(AKID.to_string(), SECRET.to_string())])),
        ..ApiConfig::default()
    })
}

fn signed(
    method: &str,
    uri: &http::Uri,
    headers: &[(http::HeaderName, http::HeaderValue)],
    body: &[u8],
    at: SystemTime,
) -> Option<http::Request<Vec<u8>>> {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(uri.clone())
        .header(http::header::HOST, "localhost:9001");
    for (n, v) in headers {
        builder = builder.header(n, v);
    }
    let mut req = builder.body(body.to_vec()).ok()?;
    let identity = aws_credential_types::Credentials::new(AKID, SECRET, None, None, "fuzz").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("lambda")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .ok()?
        .into();
    let full = format!("http://localhost:9001{}", uri.path_and_query()?.as_str());
    let pairs: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let signable = SignableRequest::new(
        method,
        full,
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .ok()?;
    let (instructions, _) = sign(signable, &params).ok()?.into_parts();
    instructions.apply_to_request_http1x(&mut req);
    Some(req)
}

fuzz_target!(|input: Input| {
    let method = if input.method { "POST" } else { "GET" };
    let mut uri = format!("/2015-03-31/functions/{}", input.path);
    if let Some(q) = &input.query {
        uri.push('?');
        uri.push_str(q);
    }
    let Ok(uri) = uri.parse::<http::Uri>() else {
        return;
    };
    let headers: Vec<_> = input
        .headers
        .iter()
        .filter_map(|(n, v)| {
            let n = http::HeaderName::from_bytes(n.as_bytes()).ok()?;
            // The signer owns these; a request carrying its own copy is another test.
            if n.as_str().starts_with("x-amz-")
                || n == http::header::AUTHORIZATION
                || n == http::header::HOST
            {
                return None;
            }
            Some((n, http::HeaderValue::from_str(v).ok()?))
        })
        .collect();
    let now = SystemTime::now();
    let at = now - Duration::from_secs(5);

    if let Some(req) = signed(method, &uri, &headers, &input.body, at) {
        let (parts, body) = req.into_parts();
        if let Err(e) = flint_api::authenticate(config(), &parts, &body) {
            panic!("a request aws-sigv4 signed was refused: {e:?}\n{parts:?}");
        }
        if !body.is_empty() {
            let mut changed = body.clone();
            let i = input.flip % changed.len();
            changed[i] ^= 0x01;
            assert!(
                flint_api::authenticate(config(), &parts, &changed).is_err(),
                "a signed request with its body changed was accepted"
            );
        }
    }

    // Arbitrary header text: refused (the fuzzer does not know the secret), never a panic.
    let mut builder = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::HOST, "localhost:9001");
    if let Ok(v) = http::HeaderValue::from_str(&input.raw_authorization) {
        builder = builder.header(http::header::AUTHORIZATION, v);
    }
    if let Ok(v) = http::HeaderValue::from_str(&input.raw_date) {
        builder = builder.header("x-amz-date", v);
    }
    if let Ok(req) = builder.body(input.body) {
        let (parts, body) = req.into_parts();
        assert!(
            flint_api::authenticate(config(), &parts, &body).is_err(),
            "a made-up signature was accepted"
        );
    }
});
