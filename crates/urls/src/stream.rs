//! `InvokeMode: RESPONSE_STREAM`: the function's stream goes to the HTTP client as it is written.
//! A response of type `application/vnd.awslambda.http-integration-response` (what
//! `awslambda.HttpResponseStream.from` writes) starts with a JSON prelude — `statusCode`,
//! `headers`, `cookies` — ended by 8 NUL bytes; the rest is the body.

use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use flint_engine::StreamedResponse;
use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::Value;

use crate::error::UrlError;

/// The content type of a stream that begins with a status/headers prelude.
pub const HTTP_INTEGRATION: &str = "application/vnd.awslambda.http-integration-response";

/// The prelude's end.
const DELIMITER: [u8; 8] = [0; 8];

/// Largest prelude Flint waits for before giving up on finding its end.
const MAX_PRELUDE: usize = 64 * 1024;

fn find_delimiter(buf: &[u8]) -> Option<usize> {
    buf.windows(DELIMITER.len()).position(|w| w == DELIMITER)
}

/// The HTTP response for a streamed invocation: its head as soon as it is known, its body as the
/// function writes it. A function that fails before writing anything is a 502 (504 on timeout).
pub async fn respond(mut s: StreamedResponse) -> Result<Response, UrlError> {
    let prelude_expected = s
        .content_type
        .as_deref()
        .is_some_and(|ct| ct.eq_ignore_ascii_case(HTTP_INTEGRATION));
    let mut head = BytesMut::new();
    let (prelude, first) = if prelude_expected {
        loop {
            if let Some(i) = find_delimiter(&head) {
                let rest = head.split_off(i + DELIMITER.len());
                head.truncate(i);
                break (Some(head.freeze()), rest.freeze());
            }
            if head.len() > MAX_PRELUDE {
                break (None, head.freeze());
            }
            match s.chunks.recv().await {
                Some(c) => head.extend_from_slice(&c),
                None => break (None, head.freeze()),
            }
        }
    } else {
        match s.chunks.recv().await {
            Some(c) => (None, c),
            None => (None, Bytes::new()),
        }
    };
    if prelude.is_none() && first.is_empty() && s.chunks.is_closed() && s.chunks.is_empty() {
        // Nothing was written: the ending decides.
        let done = s.done.await.ok();
        if let Some(d) = done.filter(|d| d.function_error.is_some()) {
            return Err(crate::function_error(&d.payload.contiguous()));
        }
    }

    let mut resp = Response::new(Body::empty());
    let content_type = match &prelude {
        Some(_) => None,
        None => s.content_type.clone(),
    };
    if let Some(p) = prelude {
        apply_prelude(&p, &mut resp);
    }
    if let Some(ct) = content_type.and_then(|c| HeaderValue::try_from(c).ok()) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, ct);
    }
    if !resp.headers().contains_key(http::header::CONTENT_TYPE) {
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    let first = (!first.is_empty()).then_some(first);
    let rest = futures::stream::unfold(s.chunks, |mut rx| async move {
        let c = rx.recv().await?;
        Some((Ok::<Bytes, std::convert::Infallible>(c), rx))
    });
    let first = futures::stream::iter(first.map(Ok::<Bytes, std::convert::Infallible>));
    use futures::StreamExt as _;
    *resp.body_mut() = Body::from_stream(first.chain(rest));
    Ok(resp)
}

fn apply_prelude(prelude: &[u8], resp: &mut Response) {
    let Ok(Value::Object(p)) = serde_json::from_slice::<Value>(prelude) else {
        return;
    };
    if let Some(code) = p
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        *resp.status_mut() = code;
    }
    let headers = resp.headers_mut();
    if let Some(Value::Object(h)) = p.get("headers") {
        for (k, v) in h {
            let value = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(k.as_str()),
                HeaderValue::try_from(value),
            ) {
                headers.insert(name, value);
            }
        }
    }
    if let Some(Value::Array(cookies)) = p.get("cookies") {
        for c in cookies.iter().filter_map(Value::as_str) {
            if let Ok(v) = HeaderValue::from_str(c) {
                headers.append(http::header::SET_COOKIE, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::sync::{mpsc, oneshot};

    #[tokio::test]
    async fn a_prelude_sets_the_head_and_the_rest_is_the_body() {
        let (tx, chunks) = mpsc::channel(8);
        let (_done_tx, done) = oneshot::channel();
        tx.send(Bytes::from_static(
            b"{\"statusCode\":201,\"headers\":{\"x-a\":\"1\"},",
        ))
        .await
        .unwrap();
        tx.send(Bytes::from_static(
            b"\"cookies\":[\"c=1\"]}\0\0\0\0\0\0\0\0hel",
        ))
        .await
        .unwrap();
        tx.send(Bytes::from_static(b"lo")).await.unwrap();
        drop(tx);
        let resp = respond(StreamedResponse {
            content_type: Some(HTTP_INTEGRATION.into()),
            chunks,
            done,
            executed_version: "$LATEST".into(),
        })
        .await
        .unwrap();
        assert_eq!(resp.status(), 201);
        assert_eq!(resp.headers()["x-a"], "1");
        assert_eq!(resp.headers()["set-cookie"], "c=1");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello");
    }
}
