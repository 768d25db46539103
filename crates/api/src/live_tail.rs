//! `StartLiveTail`'s response: an AWS event stream (`application/vnd.amazon.eventstream`, framed
//! by the `aws-smithy-eventstream` crate) carrying, after the `initial-response` event of the
//! awsJson protocol (the response's other members: none), one `sessionStart`, then a `sessionUpdate`
//! every second with what the session's groups gained (crate flint-logs' [`LiveTail`]), until
//! the client goes away or three hours have passed (then `SessionTimeoutException`, as
//! CloudWatch ends a session). A failure to read the logs ends the stream with
//! `SessionStreamingException`.

use std::time::Duration;

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use flint_logs::LiveTail;
use tokio::time::{Instant, MissedTickBehavior};

/// How long CloudWatch keeps a Live Tail session open.
pub(crate) const SESSION_LIMIT: Duration = Duration::from_secs(3 * 3600);

/// How often a `sessionUpdate` is sent (CloudWatch: every second, empty when nothing matched).
const UPDATE_EVERY: Duration = Duration::from_secs(1);

fn frame(headers: [(&'static str, String); 3], payload: Vec<u8>) -> Bytes {
    let message = headers
        .into_iter()
        .fold(Message::new(payload), |m, (name, value)| {
            m.add_header(Header::new(name, HeaderValue::String(value.into())))
        });
    let mut out = Vec::new();
    match aws_smithy_eventstream::frame::write_message_to(&message, &mut out) {
        Ok(()) => Bytes::from(out),
        // Only a message past the format's 16 MB limit: said as the stream's failure.
        Err(e) => exception(
            "SessionStreamingException",
            &format!("an update could not be encoded: {e}"),
        ),
    }
}

/// One event of the stream (`:message-type: event`).
pub(crate) fn event(event_type: &str, payload: &serde_json::Value) -> Bytes {
    frame(
        [
            (":event-type", event_type.to_string()),
            (":content-type", "application/json".to_string()),
            (":message-type", "event".to_string()),
        ],
        payload.to_string().into_bytes(),
    )
}

/// A modelled exception in the stream (`:message-type: exception`); ends it.
pub(crate) fn exception(exception_type: &str, message: &str) -> Bytes {
    let message = Message::new(serde_json::json!({ "message": message }).to_string())
        .add_header(Header::new(
            ":exception-type",
            HeaderValue::String(exception_type.to_string().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("exception".into()),
        ));
    let mut out = Vec::new();
    // A small message with three short headers always encodes.
    let _ = aws_smithy_eventstream::frame::write_message_to(&message, &mut out);
    Bytes::from(out)
}

struct Session {
    tail: Option<LiveTail>,
    ticks: tokio::time::Interval,
    ends: Instant,
    over: bool,
}

/// The response body of a started session: `sessionStart`, then an update every second until
/// `limit` has passed.
pub(crate) fn body(tail: LiveTail, request_id: &str, limit: Duration) -> Body {
    use futures::StreamExt as _;
    let session_id = uuid::Uuid::new_v4().to_string();
    let initial = event("initial-response", &serde_json::json!({}));
    let start = event("sessionStart", &tail.session_start(request_id, &session_id));
    let now = Instant::now();
    let mut ticks = tokio::time::interval_at(now + UPDATE_EVERY, UPDATE_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let session = Session {
        tail: Some(tail),
        ticks,
        ends: now + limit,
        over: false,
    };
    let updates = futures::stream::unfold(session, |mut s| async move {
        if s.over {
            return None;
        }
        tokio::select! {
            _ = s.ticks.tick() => {}
            _ = tokio::time::sleep_until(s.ends) => {}
        }
        if Instant::now() >= s.ends {
            s.over = true;
            let end = exception(
                "SessionTimeoutException",
                "The Live Tail session has ended after 3 hours, its maximum duration.",
            );
            return Some((Ok::<Bytes, std::convert::Infallible>(end), s));
        }
        let mut tail = s.tail.take()?;
        // Reading the streams is file I/O: off the async workers.
        let read = tokio::task::spawn_blocking(move || {
            let update = tail.update();
            (tail, update)
        })
        .await;
        let out = match read {
            Ok((tail, Ok(update))) => {
                s.tail = Some(tail);
                event("sessionUpdate", &update)
            }
            Ok((_, Err(e))) => {
                s.over = true;
                exception("SessionStreamingException", &e.message)
            }
            Err(e) => {
                s.over = true;
                exception("SessionStreamingException", &format!("reading logs: {e}"))
            }
        };
        Some((Ok(out), s))
    });
    Body::from_stream(futures::stream::iter([Ok(initial), Ok(start)]).chain(updates))
}

/// The response: 200, an event stream.
pub(crate) fn respond(tail: LiveTail, request_id: &str) -> Response {
    let mut r = Response::new(body(tail, request_id, SESSION_LIMIT));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::read_message_from;
    use http_body_util::BodyExt as _;

    fn header<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
        m.headers()
            .iter()
            .find(|h| h.name().as_str() == name)
            .and_then(|h| h.value().as_string().ok())
            .map(|s| s.as_str())
    }

    #[tokio::test]
    async fn a_session_starts_updates_every_second_and_times_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let streams = dir.path().join("fn/2026/01/02");
        std::fs::create_dir_all(&streams).expect("mkdir");
        std::fs::write(streams.join("[$LATEST]ab.log"), "old\n").expect("log");
        let store = flint_logs::LogStore::new(dir.path());
        let tail = LiveTail::start(
            store,
            "a",
            "r",
            &serde_json::json!({"logGroupIdentifiers": ["/aws/lambda/fn"]}),
        )
        .expect("start");
        let mut body = body(tail, "req-1", Duration::from_millis(1500));
        let mut messages = Vec::new();
        while let Some(frame) = body.frame().await {
            let mut data = frame.expect("frame").into_data().expect("data");
            while !data.is_empty() {
                messages.push(read_message_from(&mut data).expect("message"));
            }
        }
        let kinds: Vec<_> = messages
            .iter()
            .map(|m| {
                header(m, ":event-type")
                    .or(header(m, ":exception-type"))
                    .unwrap_or("?")
            })
            .collect();
        // Updates every second until the limit (how many depends on the machine's load).
        assert_eq!(kinds[..2], ["initial-response", "sessionStart"]);
        assert_eq!(kinds.last(), Some(&"SessionTimeoutException"));
        let updates = &kinds[2..kinds.len() - 1];
        assert!(
            !updates.is_empty() && updates.iter().all(|k| *k == "sessionUpdate"),
            "{kinds:?}"
        );
        let start: serde_json::Value = serde_json::from_slice(messages[1].payload()).expect("json");
        assert_eq!(start["requestId"], "req-1");
        assert_eq!(start["logGroupIdentifiers"][0], "/aws/lambda/fn");
        let update: serde_json::Value =
            serde_json::from_slice(messages[2].payload()).expect("json");
        assert_eq!(update["sessionResults"], serde_json::json!([]));
        assert_eq!(
            messages.last().and_then(|m| header(m, ":message-type")),
            Some("exception")
        );
    }
}
