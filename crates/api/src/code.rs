//! Code downloads: `GET /_flint/code/<sha256>?expires=..&signature=..` (GetFunction's
//! `Code.Location`, signed and short-lived like AWS's presigned S3 URL) and
//! `GET /_flint/layers/<sha256>` (GetLayerVersion's `Content.Location`). No SigV4, as with S3
//! URLs: the URL itself is the capability.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

use crate::error::ApiError;
use crate::route::query_pairs;
use crate::{AppState, Backend, ZipRef};

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn not_found() -> Response {
    ApiError::new(
        "ResourceNotFoundException",
        StatusCode::NOT_FOUND,
        "The resource you requested does not exist.",
    )
    .into_response()
}

async fn send<B: Backend>(st: &AppState<B>, zip: ZipRef<'_>) -> Response {
    match st.backend.code_zip(zip).await {
        Some(bytes) => {
            let mut resp = bytes.into_response();
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/zip"),
            );
            resp
        }
        None => not_found(),
    }
}

pub(crate) async fn function_code<B: Backend>(
    State(st): State<Arc<AppState<B>>>,
    Path(sha256): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    // Only a digest reaches the store: no path tricks.
    if !is_sha256_hex(&sha256) {
        return not_found();
    }
    let pairs = query.as_deref().map(query_pairs).unwrap_or_default();
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
        return not_found();
    };
    send(
        &st,
        ZipRef::FunctionCode {
            sha256_hex: &sha256,
            expires,
            signature,
        },
    )
    .await
}

pub(crate) async fn layer_content<B: Backend>(
    State(st): State<Arc<AppState<B>>>,
    Path(sha256): Path<String>,
) -> Response {
    if !is_sha256_hex(&sha256) {
        return not_found();
    }
    send(
        &st,
        ZipRef::LayerContent {
            sha256_hex: &sha256,
        },
    )
    .await
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
