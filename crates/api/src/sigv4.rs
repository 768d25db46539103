//! SigV4 authentication: every API request carries an `Authorization: AWS4-HMAC-SHA256 ...`
//! header naming an access key and a credential scope; that yields the caller's (account, region).
//! With configured credentials the signature is verified by re-signing the request with
//! `aws-sigv4` (only the signed headers, the raw path and query, the client's `X-Amz-Date`) and
//! comparing in constant time.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use chrono::{DateTime, NaiveDateTime, Utc};
use flint_control::Scope;
use http::StatusCode;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::credentials::Credentials;
use crate::error::ApiError;

/// The account AWS-style tools get when their access key id is not an account number.
pub const DEFAULT_ACCOUNT: &str = "000000000000";

const DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// The parts of an `Authorization` header Flint needs.
#[derive(Debug, PartialEq)]
pub(crate) struct Authorization<'a> {
    pub access_key_id: &'a str,
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub signed_headers: Vec<&'a str>,
    pub signature: &'a str,
}

pub(crate) fn missing_token() -> ApiError {
    ApiError::new(
        "MissingAuthenticationTokenException",
        StatusCode::FORBIDDEN,
        "Missing Authentication Token",
    )
}

/// AWS's front door answers a malformed signature with 403, like a missing one.
fn incomplete(message: impl Into<String>) -> ApiError {
    ApiError::new(
        "IncompleteSignatureException",
        StatusCode::FORBIDDEN,
        message,
    )
}

fn invalid_signature(message: impl Into<String>) -> ApiError {
    ApiError::new("InvalidSignatureException", StatusCode::FORBIDDEN, message)
}

pub(crate) const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the \
    signature you provided. Check your AWS Secret Access Key and signing method. Consult the service \
    documentation for details.";

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/lambda/aws4_request,
/// SignedHeaders=host;x-amz-date, Signature=hex`.
pub(crate) fn parse_authorization(value: &str) -> Result<Authorization<'_>, ApiError> {
    let value = value.trim();
    let rest = value.strip_prefix("AWS4-HMAC-SHA256").map(str::trim_start);
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    if let Some(rest) = rest {
        for part in rest.split(',') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("Credential=") {
                credential = Some(v);
            } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
                signed = Some(v);
            } else if let Some(v) = part.strip_prefix("Signature=") {
                signature = Some(v);
            }
        }
    }
    let mut missing = String::new();
    for (name, v) in [
        ("Credential", &credential),
        ("Signature", &signature),
        ("SignedHeaders", &signed),
    ] {
        if v.is_none_or(|s| s.is_empty()) {
            missing.push_str(&format!(
                "Authorization header requires '{name}' parameter. "
            ));
        }
    }
    if rest.is_none() || !missing.is_empty() {
        return Err(incomplete(
            format!("{missing}Authorization={value}")
                .trim_start()
                .to_string(),
        ));
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(incomplete(format!("Authorization={value}")));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(incomplete(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            scope.get(2).copied().unwrap_or_default()
        )));
    };
    if access_key_id.is_empty() || region.is_empty() {
        return Err(incomplete(format!("Authorization={value}")));
    }
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers: signed.split(';').collect(),
        signature,
    })
}

/// The access key id a request was signed with (after a successful `authenticate_with`).
pub(crate) fn access_key_of(parts: &http::request::Parts) -> Option<&str> {
    let header = parts
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    parse_authorization(header).ok().map(|a| a.access_key_id)
}

/// The caller's scope: a 12-digit access key id names the account.
pub(crate) fn scope_of(auth: &Authorization<'_>) -> Scope {
    let account = if auth.access_key_id.len() == 12
        && auth.access_key_id.bytes().all(|b| b.is_ascii_digit())
    {
        auth.access_key_id.to_string()
    } else {
        DEFAULT_ACCOUNT.to_string()
    };
    Scope {
        account,
        region: auth.region.to_string(),
    }
}

/// A request body as its signature hashes it: one slice, or the chunks an Invoke payload
/// arrived in (hashed in turn, never gathered).
pub(crate) trait SignedBody {
    fn sha256(&self) -> [u8; 32];
}

impl SignedBody for [u8] {
    fn sha256(&self) -> [u8; 32] {
        Sha256::digest(self).into()
    }
}

impl SignedBody for Vec<u8> {
    fn sha256(&self) -> [u8; 32] {
        self.as_slice().sha256()
    }
}

impl<const N: usize> SignedBody for [u8; N] {
    fn sha256(&self) -> [u8; 32] {
        self.as_slice().sha256()
    }
}

impl SignedBody for flint_engine::Payload {
    fn sha256(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for chunk in self.chunks() {
            h.update(chunk);
        }
        h.finalize().into()
    }
}

/// The authentication step for one request: parses (and, with credentials, verifies) its
/// signature. `body` is needed only when verifying.
#[cfg(test)]
pub(crate) fn authenticate(
    credentials: Option<&Credentials>,
    max_skew: Duration,
    parts: &http::request::Parts,
    body: &(impl SignedBody + ?Sized),
    now: SystemTime,
) -> Result<Scope, ApiError> {
    authenticate_with(credentials, None, max_skew, parts, body, now)
}

/// [`authenticate`], also knowing the credentials Flint issued to its environments: a request
/// signed with one of those is verified in every mode and acts in its environment's account.
pub(crate) fn authenticate_with(
    credentials: Option<&Credentials>,
    issued: Option<&flint_engine::IssuedCredentials>,
    max_skew: Duration,
    parts: &http::request::Parts,
    body: &(impl SignedBody + ?Sized),
    now: SystemTime,
) -> Result<Scope, ApiError> {
    authenticate_for(SERVICE, credentials, issued, max_skew, parts, body, now)
}

/// [`authenticate_with`] for a request to another service on Flint's endpoint (`logs`).
pub(crate) fn authenticate_for(
    service: &str,
    credentials: Option<&Credentials>,
    issued: Option<&flint_engine::IssuedCredentials>,
    max_skew: Duration,
    parts: &http::request::Parts,
    body: &(impl SignedBody + ?Sized),
    now: SystemTime,
) -> Result<Scope, ApiError> {
    let Some(header) = parts.headers.get(http::header::AUTHORIZATION) else {
        return Err(missing_token());
    };
    let header = header
        .to_str()
        .map_err(|_| incomplete("Authorization header is not valid text."))?;
    let auth = parse_authorization(header)?;
    check_scope(service, &auth, parts)?;
    if let Some(issued) = issued.and_then(|i| i.get(auth.access_key_id)) {
        let token = parts
            .headers
            .get("x-amz-security-token")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !bool::from(token.ct_eq(issued.session_token.as_bytes())) {
            return Err(unrecognized_client());
        }
        verify(&issued.secret_access_key, max_skew, &auth, parts, body, now)?;
        return Ok(Scope {
            account: issued.account,
            region: auth.region.to_string(),
        });
    }
    if let Some(creds) = credentials {
        let Some(secret) = creds.secret(auth.access_key_id) else {
            return Err(unrecognized_client());
        };
        verify(secret, max_skew, &auth, parts, body, now)?;
    }
    Ok(scope_of(&auth))
}

/// The access key is not one Flint knows (or its session token is not the one issued with it).
pub(crate) fn unrecognized_client() -> ApiError {
    ApiError::new(
        "UnrecognizedClientException",
        StatusCode::FORBIDDEN,
        "The security token included in the request is invalid.",
    )
}

/// The service this endpoint answers for: a signature scoped to another is not one for Lambda.
const SERVICE: &str = "lambda";

/// What AWS checks of a signature before looking at keys: the scope names Lambda, its date is
/// the day of `X-Amz-Date`, and `host` is signed (otherwise a signature could be replayed
/// against another endpoint).
fn check_scope(
    service: &str,
    auth: &Authorization<'_>,
    parts: &http::request::Parts,
) -> Result<(), ApiError> {
    if auth.service != service {
        return Err(invalid_signature(format!(
            "Credential should be scoped to correct service: '{service}'. "
        )));
    }
    if !auth
        .signed_headers
        .iter()
        .any(|h| h.eq_ignore_ascii_case("host"))
    {
        return Err(invalid_signature(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    if let Some(amz_date) = parts
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
    {
        let day = amz_date.get(..8).unwrap_or(amz_date);
        if day != auth.date {
            return Err(invalid_signature(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '{}' != '{day}', from '{amz_date}'.",
                auth.date
            )));
        }
    }
    Ok(())
}

fn verify(
    secret: &str,
    max_skew: Duration,
    auth: &Authorization<'_>,
    parts: &http::request::Parts,
    body: &(impl SignedBody + ?Sized),
    now: SystemTime,
) -> Result<(), ApiError> {
    let amz_date = parts
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."))?;
    let signed_at = NaiveDateTime::parse_from_str(amz_date, DATE_FORMAT)
        .map_err(|_| {
            incomplete(format!(
                "Date must be in ISO-8601 'basic format'. Got '{amz_date}'."
            ))
        })?
        .and_utc();
    check_skew(signed_at, DateTime::<Utc>::from(now), max_skew)?;

    // Lambda signs the body itself: the hash is always the body's. An `x-amz-content-sha256`
    // must match it (`UNSIGNED-PAYLOAD` is S3's, and would let a signed request carry any body).
    let body_hash = hex::encode(body.sha256());
    let claimed = parts
        .headers
        .get("x-amz-content-sha256")
        .map(|v| v.to_str().unwrap_or_default());
    if let Some(c) = claimed {
        if !c.eq_ignore_ascii_case(&body_hash) {
            return Err(invalid_signature(
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            ));
        }
    }
    let payload_hash = claimed.map(str::to_string).unwrap_or(body_hash);

    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let values = parts.headers.get_all(*name);
        let mut any = false;
        for v in values {
            any = true;
            headers.push((
                name,
                v.to_str()
                    .map_err(|_| invalid_signature(SIGNATURE_MISMATCH))?,
            ));
        }
        if !any {
            return Err(invalid_signature(SIGNATURE_MISMATCH));
        }
    }
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let uri = format!("http://{host}{path_and_query}");

    let identity =
        aws_credential_types::Credentials::new(auth.access_key_id, secret, None, None, "flint")
            .into();
    let mut settings = SigningSettings::default();
    // Exactly the headers the client signed, nothing excluded or added.
    settings.excluded_headers = Some(Vec::new());
    let time = SystemTime::from(signed_at);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(auth.region)
        .name(auth.service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|_| invalid_signature(SIGNATURE_MISMATCH))?
        .into();
    let signable = SignableRequest::new(
        parts.method.as_str(),
        uri,
        headers.into_iter(),
        SignableBody::Precomputed(payload_hash),
    )
    .map_err(|_| invalid_signature(SIGNATURE_MISMATCH))?;
    let expected = sign(signable, &params).map_err(|_| invalid_signature(SIGNATURE_MISMATCH))?;
    let expected = expected.signature();
    if expected.len() == auth.signature.len()
        && bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes()))
    {
        Ok(())
    } else {
        Err(invalid_signature(SIGNATURE_MISMATCH))
    }
}

fn check_skew(
    signed_at: DateTime<Utc>,
    now: DateTime<Utc>,
    max_skew: Duration,
) -> Result<(), ApiError> {
    let skew = chrono::Duration::from_std(max_skew).unwrap_or(chrono::Duration::minutes(5));
    let minutes = skew.num_minutes();
    if signed_at < now - skew {
        return Err(invalid_signature(format!(
            "Signature expired: {} is now earlier than {} ({} - {minutes} min.)",
            signed_at.format(DATE_FORMAT),
            (now - skew).format(DATE_FORMAT),
            now.format(DATE_FORMAT)
        )));
    }
    if signed_at > now + skew {
        return Err(invalid_signature(format!(
            "Signature not yet current: {} is still later than {} ({} + {minutes} min.)",
            signed_at.format(DATE_FORMAT),
            (now + skew).format(DATE_FORMAT),
            now.format(DATE_FORMAT)
        )));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_sigv4::http_request::SigningSettings;

    /// Signs a request as an AWS SDK would (aws-sigv4 itself), for tests across the crate.
    pub(crate) fn signed(
        mut req: http::Request<Vec<u8>>,
        akid: &str,
        secret: &str,
        region: &str,
        at: SystemTime,
    ) -> http::Request<Vec<u8>> {
        if !req.headers().contains_key(http::header::HOST) {
            req.headers_mut().insert(
                http::header::HOST,
                http::HeaderValue::from_static("localhost:9000"),
            );
        }
        let identity =
            aws_credential_types::Credentials::new(akid, secret, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("lambda")
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let uri = format!(
            "http://localhost:9000{}",
            req.uri().path_and_query().unwrap().as_str()
        );
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let signable = SignableRequest::new(
            req.method().as_str(),
            uri,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(req.body()),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        instructions.apply_to_request_http1x(&mut req);
        req
    }

    fn parts_of(req: http::Request<Vec<u8>>) -> (http::request::Parts, Vec<u8>) {
        let (p, b) = req.into_parts();
        (p, b)
    }

    fn request(path: &str, body: &str) -> http::Request<Vec<u8>> {
        http::Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json")
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    #[test]
    fn parses_the_authorization_header() {
        let a = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=123456789012/20240101/eu-west-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
        )
        .unwrap();
        assert_eq!(a.region, "eu-west-1");
        assert_eq!(a.signed_headers, vec!["host", "x-amz-date"]);
        assert_eq!(
            scope_of(&a),
            Scope {
                account: "123456789012".into(),
                region: "eu-west-1".into()
            }
        );
        let b = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/lambda/aws4_request,SignedHeaders=host,Signature=abc",
        )
        .unwrap();
        assert_eq!(scope_of(&b).account, DEFAULT_ACCOUNT);
        let e = parse_authorization("Bearer xyz").unwrap_err();
        assert_eq!(
            (e.code, e.status.as_u16()),
            ("IncompleteSignatureException", 403)
        );
        let e = parse_authorization("AWS4-HMAC-SHA256 garbage").unwrap_err();
        assert_eq!(e.status.as_u16(), 403);
    }

    #[test]
    fn unsigned_request_is_missing_authentication_token() {
        let (p, b) = parts_of(request("/2015-03-31/functions", ""));
        let e =
            authenticate(None, Duration::from_secs(300), &p, &b, SystemTime::now()).unwrap_err();
        assert_eq!(
            (e.code, e.status.as_u16(), e.message.as_str()),
            (
                "MissingAuthenticationTokenException",
                403,
                "Missing Authentication Token"
            )
        );
    }

    #[test]
    fn a_correctly_signed_request_verifies_including_encoded_arns() {
        let creds = Credentials::new([("AKIDEXAMPLE".to_string(), "secret".to_string())]);
        let now = SystemTime::now();
        let path = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af/invocations?Qualifier=%24LATEST";
        let req = signed(
            request(path, "{\"a\":1}"),
            "AKIDEXAMPLE",
            "secret",
            "us-west-2",
            now,
        );
        let (p, b) = parts_of(req);
        let scope = authenticate(Some(&creds), Duration::from_secs(300), &p, &b, now).unwrap();
        assert_eq!(
            scope,
            Scope {
                account: DEFAULT_ACCOUNT.into(),
                region: "us-west-2".into()
            }
        );
    }

    #[test]
    fn wrong_secret_tampered_body_and_unknown_key_are_rejected() {
        let creds = Credentials::new([("AKIDEXAMPLE".to_string(), "secret".to_string())]);
        let now = SystemTime::now();
        let req = signed(
            request("/2015-03-31/functions", "{}"),
            "AKIDEXAMPLE",
            "wrong",
            "us-east-1",
            now,
        );
        let (p, b) = parts_of(req);
        let e = authenticate(Some(&creds), Duration::from_secs(300), &p, &b, now).unwrap_err();
        assert_eq!(
            (e.code, e.status.as_u16()),
            ("InvalidSignatureException", 403)
        );
        assert_eq!(e.message, SIGNATURE_MISMATCH);

        let req = signed(
            request("/2015-03-31/functions", "{}"),
            "AKIDEXAMPLE",
            "secret",
            "us-east-1",
            now,
        );
        let (p, _) = parts_of(req);
        let e = authenticate(
            Some(&creds),
            Duration::from_secs(300),
            &p,
            b"{\"x\":1}",
            now,
        )
        .unwrap_err();
        assert_eq!(e.code, "InvalidSignatureException");

        let req = signed(
            request("/2015-03-31/functions", "{}"),
            "AKIDOTHER",
            "secret",
            "us-east-1",
            now,
        );
        let (p, b) = parts_of(req);
        let e = authenticate(Some(&creds), Duration::from_secs(300), &p, &b, now).unwrap_err();
        assert_eq!(e.code, "UnrecognizedClientException");
        assert_eq!(
            e.message,
            "The security token included in the request is invalid."
        );
    }

    #[test]
    fn stale_signatures_are_expired() {
        let creds = Credentials::new([("AKIDEXAMPLE".to_string(), "secret".to_string())]);
        let now = SystemTime::now();
        let then = now - Duration::from_secs(3600);
        let req = signed(
            request("/2015-03-31/functions", ""),
            "AKIDEXAMPLE",
            "secret",
            "us-east-1",
            then,
        );
        let (p, b) = parts_of(req);
        let e = authenticate(Some(&creds), Duration::from_secs(300), &p, &b, now).unwrap_err();
        assert_eq!(e.code, "InvalidSignatureException");
        assert!(
            e.message.starts_with("Signature expired: "),
            "{}",
            e.message
        );
        assert!(e.message.ends_with(" - 5 min.)"), "{}", e.message);
    }

    /// The request's Authorization header with `from` replaced by `to`.
    fn rewrite_authorization(req: &mut http::Request<Vec<u8>>, from: &str, to: &str) {
        let auth = req.headers()[http::header::AUTHORIZATION]
            .to_str()
            .unwrap()
            .replace(from, to);
        req.headers_mut().insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_str(&auth).unwrap(),
        );
    }

    fn refusal(req: http::Request<Vec<u8>>, creds: Option<&Credentials>) -> ApiError {
        let (p, b) = parts_of(req);
        authenticate(creds, Duration::from_secs(300), &p, &b, SystemTime::now()).unwrap_err()
    }

    #[test]
    fn a_signature_scoped_to_another_service_is_refused() {
        let mut req = signed(
            request("/2015-03-31/functions", ""),
            "123456789012",
            "s",
            "us-east-1",
            SystemTime::now(),
        );
        rewrite_authorization(&mut req, "/lambda/aws4_request", "/s3/aws4_request");
        let e = refusal(req, None);
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                "InvalidSignatureException",
                "Credential should be scoped to correct service: 'lambda'. "
            )
        );
    }

    #[test]
    fn a_credential_date_other_than_x_amz_date_is_refused() {
        let now = SystemTime::now();
        let mut req = signed(
            request("/2015-03-31/functions", ""),
            "123456789012",
            "s",
            "us-east-1",
            now,
        );
        let day = DateTime::<Utc>::from(now).format("%Y%m%d").to_string();
        rewrite_authorization(&mut req, &format!("/{day}/"), "/20000101/");
        let e = refusal(req, None);
        assert_eq!(e.code, "InvalidSignatureException");
        assert!(
            e.message.starts_with(&format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20000101' != '{day}', from '{day}T"
            )),
            "{}",
            e.message
        );
    }

    #[test]
    fn host_must_be_a_signed_header() {
        let mut req = signed(
            request("/2015-03-31/functions", ""),
            "123456789012",
            "s",
            "us-east-1",
            SystemTime::now(),
        );
        rewrite_authorization(
            &mut req,
            "SignedHeaders=content-type;host;",
            "SignedHeaders=content-type;",
        );
        let e = refusal(req, None);
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                "InvalidSignatureException",
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
            )
        );
    }

    #[test]
    fn a_payload_in_chunks_hashes_as_its_bytes_do() {
        let whole = b"{\"a\": \"chunked payload\"}";
        let chunks = flint_engine::Payload::from_chunks(vec![
            bytes::Bytes::from_static(&whole[..7]),
            bytes::Bytes::from_static(&whole[7..20]),
            bytes::Bytes::from_static(&whole[20..]),
        ]);
        assert_eq!(chunks.chunks().len(), 3);
        assert_eq!(chunks.sha256(), whole[..].sha256());
        assert_ne!(chunks.sha256(), b"{}".sha256());
    }

    #[test]
    fn an_unsigned_payload_cannot_carry_a_swapped_body() {
        let creds = Credentials::new([("AKIDEXAMPLE".to_string(), "secret".to_string())]);
        let now = SystemTime::now();
        let mut req = request("/2015-03-31/functions/f/invocations", "{\"a\":1}");
        req.headers_mut().insert(
            http::header::HOST,
            http::HeaderValue::from_static("localhost:9000"),
        );
        req.headers_mut().insert(
            "x-amz-content-sha256",
            http::HeaderValue::from_static("UNSIGNED-PAYLOAD"),
        );
        let identity =
            aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "t").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("lambda")
            .time(now)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let signable = SignableRequest::new(
            "POST",
            "http://localhost:9000/2015-03-31/functions/f/invocations",
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::UnsignedPayload,
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        instructions.apply_to_request_http1x(&mut req);
        *req.body_mut() = b"{\"swapped\":true}".to_vec();
        let e = refusal(req, Some(&creds));
        assert_eq!(e.code, "InvalidSignatureException");
    }

    #[test]
    fn without_credentials_any_well_formed_signature_is_accepted() {
        let now = SystemTime::now();
        let req = signed(
            request("/2015-03-31/functions", ""),
            "123456789012",
            "whatever",
            "ap-south-1",
            now,
        );
        let (p, b) = parts_of(req);
        let scope = authenticate(
            None,
            Duration::from_secs(300),
            &p,
            &b,
            now - Duration::from_secs(86400),
        )
        .unwrap();
        assert_eq!(
            scope,
            Scope {
                account: "123456789012".into(),
                region: "ap-south-1".into()
            }
        );
    }
}
