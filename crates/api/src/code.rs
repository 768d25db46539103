//! `GET /_flint/code/<sha256-hex>`: the stored code zip, which GetFunction's `Code.Location`
//! points at (AWS hands out a presigned S3 URL; like it, this URL needs no signature — the
//! digest is the capability).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

use crate::error::ApiError;
use crate::{AppState, Backend};

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub(crate) async fn serve<B: Backend>(
    State(st): State<Arc<AppState<B>>>,
    Path(sha256): Path<String>,
) -> Response {
    let not_found = || {
        ApiError::new(
            "ResourceNotFoundException",
            StatusCode::NOT_FOUND,
            "The resource you requested does not exist.",
        )
        .into_response()
    };
    // Only a digest reaches the store: no path tricks.
    if !is_sha256_hex(&sha256) {
        return not_found();
    }
    match st.backend.code_zip(&sha256).await {
        Some(zip) => {
            let mut resp = zip.into_response();
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/zip"),
            );
            resp
        }
        None => not_found(),
    }
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
