//! Code downloads: `GET /_flint/code/<sha256>?expires=..&signature=..` (GetFunction's
//! `Code.Location`) and `GET /_flint/layers/<sha256>?expires=..&signature=..` (GetLayerVersion's
//! `Content.Location`), signed by the control plane and short-lived like AWS's presigned S3 URLs.
//! No SigV4, as with S3 URLs: the URL itself is the capability, so one that is unsigned, tampered
//! with or expired gets S3's 403.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

use crate::error::ApiError;
use crate::route::query_pairs;
use crate::{AppState, Backend, Download, DownloadError, ZipRef};

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn not_found() -> Response {
    ApiError::from(flint_control::LambdaError::resource_not_found()).into_response()
}

/// S3's answer to a presigned URL it will not honour: 403 with an XML error document.
fn refused(e: DownloadError) -> Response {
    let code = match e {
        DownloadError::BadSignature => "SignatureDoesNotMatch",
        DownloadError::Unsigned | DownloadError::Expired | DownloadError::NotFound => {
            "AccessDenied"
        }
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{e}</Message></Error>"
    );
    let mut resp = (StatusCode::FORBIDDEN, body).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    resp
}

async fn download<B: Backend>(
    st: &AppState<B>,
    download: Download,
    sha256: &str,
    query: Option<&str>,
) -> Response {
    // Only a digest reaches the control plane: no path tricks.
    if !is_sha256_hex(sha256) {
        return not_found();
    }
    let pairs = query.map(query_pairs).unwrap_or_default();
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(pk, _)| pk == k)
            .map(|(_, v)| v.as_str())
    };
    let (Some(expires), Some(signature)) = (
        get("expires").and_then(|e| e.parse().ok()),
        get("signature"),
    ) else {
        return refused(DownloadError::Unsigned);
    };
    let zip = ZipRef {
        download,
        sha256_hex: sha256,
        expires,
        signature,
    };
    match st.backend.code_zip(zip).await {
        Ok(bytes) => {
            let mut resp = bytes.into_response();
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/zip"),
            );
            resp
        }
        Err(DownloadError::NotFound) => not_found(),
        Err(e) => refused(e),
    }
}

pub(crate) async fn function_code<B: Backend>(
    State(st): State<Arc<AppState<B>>>,
    Path(sha256): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    download(&st, Download::FunctionCode, &sha256, query.as_deref()).await
}

pub(crate) async fn layer_content<B: Backend>(
    State(st): State<Arc<AppState<B>>>,
    Path(sha256): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    download(&st, Download::LayerContent, &sha256, query.as_deref()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lowercase_sha256_digests_are_accepted() {
        assert!(is_sha256_hex(&"a".repeat(64)));
        assert!(!is_sha256_hex(&"A".repeat(64)));
        assert!(!is_sha256_hex("../../etc/passwd"));
        assert!(!is_sha256_hex(&"a".repeat(63)));
    }
}
