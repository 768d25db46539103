//! InvokeWithResponseStream's body in AWS's event-stream encoding
//! (`application/vnd.amazon.eventstream`): a `PayloadChunk` event per chunk the function streams,
//! sent as it arrives, then `InvokeComplete` with the error and log tail. A function that answers
//! buffered gets one chunk with its whole result.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::json;

/// One event-stream message: prelude (total and header lengths, CRC), string headers, payload,
/// message CRC.
fn message(event_type: &str, content_type: &str, payload: &[u8]) -> Bytes {
    let mut headers = BytesMut::new();
    for (name, value) in [
        (":event-type", event_type),
        (":content-type", content_type),
        (":message-type", "event"),
    ] {
        headers.put_u8(name.len() as u8);
        headers.put_slice(name.as_bytes());
        headers.put_u8(7); // string
        headers.put_u16(value.len() as u16);
        headers.put_slice(value.as_bytes());
    }
    let total = 12 + headers.len() + payload.len() + 4;
    let mut out = BytesMut::with_capacity(total);
    out.put_u32(total as u32);
    out.put_u32(headers.len() as u32);
    let mut crc = flate2::Crc::new();
    crc.update(&out[..8]);
    out.put_u32(crc.sum());
    out.put_slice(&headers);
    out.put_slice(payload);
    let mut crc = flate2::Crc::new();
    crc.update(&out);
    out.put_u32(crc.sum());
    out.freeze()
}

/// One `PayloadChunk` event.
pub(crate) fn chunk(payload: &[u8]) -> Bytes {
    message("PayloadChunk", "application/octet-stream", payload)
}

/// The body of a streamed invoke: each chunk as an event as soon as it arrives, then the
/// completion once the invocation has ended.
pub(crate) fn stream(s: flint_engine::StreamedResponse) -> axum::body::Body {
    use futures::StreamExt as _;
    let flint_engine::StreamedResponse { chunks, done, .. } = s;
    let chunks = futures::stream::unfold(chunks, |mut rx| async move {
        let c = rx.recv().await?;
        Some((Ok::<Bytes, std::convert::Infallible>(chunk(&c)), rx))
    });
    let complete = futures::stream::once(async move {
        let end = done.await.ok();
        let (payload, error, log) = match &end {
            Some(r) => (
                r.payload.contiguous(),
                r.function_error.clone(),
                r.log_result.clone(),
            ),
            None => (Bytes::new(), None, None),
        };
        // The chunks already went out: only the completion is encoded here.
        let body = match error {
            Some(code) => encode(&payload, Some(&code), log.as_deref()),
            None => encode(b"", None, log.as_deref()),
        };
        Ok(body)
    });
    axum::body::Body::from_stream(chunks.chain(complete))
}

/// The response body for a finished invoke: the payload (unless the function failed) and the
/// completion event carrying the error and log tail.
pub(crate) fn encode(
    payload: &[u8],
    function_error: Option<&str>,
    log_result: Option<&str>,
) -> Bytes {
    let mut body = BytesMut::new();
    let mut complete = serde_json::Map::new();
    match function_error {
        None => {
            if !payload.is_empty() {
                body.put(message("PayloadChunk", "application/octet-stream", payload));
            }
        }
        Some(code) => {
            complete.insert("ErrorCode".into(), json!(code));
            complete.insert(
                "ErrorDetails".into(),
                json!(String::from_utf8_lossy(payload)),
            );
        }
    }
    if let Some(log) = log_result {
        complete.insert("LogResult".into(), json!(log));
    }
    let complete = serde_json::to_vec(&complete).unwrap_or_else(|_| b"{}".to_vec());
    body.put(message("InvokeComplete", "application/json", &complete));
    body.freeze()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Decodes messages back into (event type, payload), checking both CRCs.
    pub(crate) fn decode(mut b: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let total = u32::from_be_bytes(b[0..4].try_into().unwrap()) as usize;
            let hlen = u32::from_be_bytes(b[4..8].try_into().unwrap()) as usize;
            let mut crc = flate2::Crc::new();
            crc.update(&b[..8]);
            assert_eq!(crc.sum(), u32::from_be_bytes(b[8..12].try_into().unwrap()));
            let mut crc = flate2::Crc::new();
            crc.update(&b[..total - 4]);
            assert_eq!(
                crc.sum(),
                u32::from_be_bytes(b[total - 4..total].try_into().unwrap())
            );
            let mut h = &b[12..12 + hlen];
            let mut event = String::new();
            while !h.is_empty() {
                let nlen = h[0] as usize;
                let name = std::str::from_utf8(&h[1..1 + nlen]).unwrap().to_string();
                assert_eq!(h[1 + nlen], 7);
                let vlen = u16::from_be_bytes([h[2 + nlen], h[3 + nlen]]) as usize;
                let value = std::str::from_utf8(&h[4 + nlen..4 + nlen + vlen]).unwrap();
                if name == ":event-type" {
                    event = value.to_string();
                }
                h = &h[4 + nlen + vlen..];
            }
            out.push((event, b[12 + hlen..total - 4].to_vec()));
            b = &b[total..];
        }
        out
    }

    #[test]
    fn a_result_is_one_chunk_then_completion() {
        let body = encode(b"{\"ok\":true}", None, Some("TE9H"));
        let events = decode(&body);
        assert_eq!(
            events[0],
            ("PayloadChunk".to_string(), b"{\"ok\":true}".to_vec())
        );
        assert_eq!(events[1].0, "InvokeComplete");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&events[1].1).unwrap(),
            json!({"LogResult": "TE9H"})
        );
    }

    #[test]
    fn a_function_error_is_reported_in_the_completion() {
        let events = decode(&encode(
            b"{\"errorMessage\":\"bad\"}",
            Some("Unhandled"),
            None,
        ));
        assert_eq!(events.len(), 1);
        let complete: serde_json::Value = serde_json::from_slice(&events[0].1).unwrap();
        assert_eq!(complete["ErrorCode"], "Unhandled");
        assert_eq!(complete["ErrorDetails"], "{\"errorMessage\":\"bad\"}");
    }
}
