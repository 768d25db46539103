//! The Runtime API over real HTTP/1.1, as a runtime client sees it: long-poll `/next`, the
//! invocation headers, `/response`, `/error`, `/init/error`, and the 4xx answers to mistakes.

use std::time::Duration;

use bytes::Bytes;
use flint_runtime_api::{Invocation, Outcome, Readiness, RuntimeApi, MAX_RESPONSE_BYTES};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Client {
    r: BufReader<TcpStream>,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

impl Client {
    async fn connect(api: &RuntimeApi) -> std::io::Result<Self> {
        Ok(Self {
            r: BufReader::new(TcpStream::connect(api.addr()).await?),
        })
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &str,
        body: &[u8],
    ) -> std::io::Result<Reply> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: rt\r\nContent-Length: {}\r\n{headers}\r\n",
            body.len()
        );
        self.r.get_mut().write_all(head.as_bytes()).await?;
        self.r.get_mut().write_all(body).await?;
        let mut line = String::new();
        self.r.read_line(&mut line).await?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut headers = Vec::new();
        let mut len = 0;
        loop {
            line.clear();
            self.r.read_line(&mut line).await?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
                headers.push((k.to_string(), v.trim().to_string()));
            }
        }
        let mut body = vec![0; len];
        self.r.read_exact(&mut body).await?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

fn invocation(id: &str) -> Invocation {
    Invocation {
        request_id: id.into(),
        deadline_ms: 1_700_000_000_000,
        invoked_function_arn: "arn:aws:lambda:us-east-1:000000000000:function:f:prod".into(),
        trace_id: flint_runtime_api::new_trace_id(),
        client_context: Some("{\"custom\":{}}".into()),
        cognito_identity: None,
        payload: Bytes::from_static(b"{\"k\":1}").into(),
    }
}

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[tokio::test]
async fn connections_beyond_the_environments_cap_wait_for_a_slot() -> TestResult {
    let api = RuntimeApi::bind()?;
    let mut held = Vec::new();
    for _ in 0..flint_runtime_api::MAX_CONNECTIONS {
        held.push(TcpStream::connect(api.addr()).await?);
    }
    let mut c = Client::connect(&api).await?;
    let asked = tokio::spawn(async move {
        c.send("GET", "/2018-06-01/runtime/no-such-path", "", b"")
            .await
            .map(|r| r.status)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!asked.is_finished(), "served beyond the cap");
    held.pop();
    let status = tokio::time::timeout(Duration::from_secs(10), asked).await???;
    assert!((400..500).contains(&status), "{status}");
    Ok(())
}

#[tokio::test]
async fn next_long_polls_and_carries_lambdas_headers() -> TestResult {
    let api = RuntimeApi::bind()?;
    let mut c = Client::connect(&api).await?;
    let next = tokio::spawn(async move {
        let r = c
            .send("GET", "/2018-06-01/runtime/invocation/next", "", b"")
            .await;
        (c, r)
    });
    assert_eq!(api.ready().await, Readiness::Ready);
    let outcome = api.deliver(invocation("req-1"));
    let (mut c, r) = next.await?;
    let r = r?;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"{\"k\":1}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("lambda-runtime-aws-request-id"), Some("req-1"));
    assert_eq!(
        r.header("lambda-runtime-deadline-ms"),
        Some("1700000000000")
    );
    assert_eq!(
        r.header("lambda-runtime-invoked-function-arn"),
        Some("arn:aws:lambda:us-east-1:000000000000:function:f:prod")
    );
    assert_eq!(
        r.header("lambda-runtime-client-context"),
        Some("{\"custom\":{}}")
    );
    assert!(r
        .header("lambda-runtime-trace-id")
        .is_some_and(|t| t.starts_with("Root=1-")));
    assert!(r.header("lambda-runtime-cognito-identity").is_none());

    // Same keep-alive connection for the answer.
    let r = c
        .send(
            "POST",
            "/2018-06-01/runtime/invocation/req-1/response",
            "",
            b"\"done\"",
        )
        .await?;
    assert_eq!(r.status, 202);
    assert_eq!(r.json(), serde_json::json!({"status": "OK"}));
    assert_eq!(outcome.await?, Outcome::Response(b"\"done\""[..].into()));
    Ok(())
}

#[tokio::test]
async fn error_posts_carry_the_error_type_header() -> TestResult {
    let api = RuntimeApi::bind()?;
    let outcome = api.deliver(invocation("req-2"));
    let mut c = Client::connect(&api).await?;
    let r = c
        .send("GET", "/2018-06-01/runtime/invocation/next", "", b"")
        .await?;
    assert_eq!(r.header("lambda-runtime-aws-request-id"), Some("req-2"));
    let body = br#"{"errorMessage":"boom","errorType":"Error"}"#;
    let r = c
        .send(
            "POST",
            "/2018-06-01/runtime/invocation/req-2/error",
            "Lambda-Runtime-Function-Error-Type: Unhandled\r\n",
            body,
        )
        .await?;
    assert_eq!(r.status, 202);
    assert_eq!(
        outcome.await?,
        Outcome::Error {
            error_type: Some("Unhandled".into()),
            body: Bytes::from_static(body)
        }
    );
    Ok(())
}

#[tokio::test]
async fn wrong_request_id_is_refused_with_invalid_request_id() -> TestResult {
    let api = RuntimeApi::bind()?;
    let _outcome = api.deliver(invocation("req-3"));
    let mut c = Client::connect(&api).await?;
    c.send("GET", "/2018-06-01/runtime/invocation/next", "", b"")
        .await?;
    let r = c
        .send(
            "POST",
            "/2018-06-01/runtime/invocation/other/response",
            "",
            b"{}",
        )
        .await?;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorType"], "InvalidRequestID");
    let r = c
        .send(
            "GET",
            "/2018-06-01/runtime/invocation/req-3/response",
            "",
            b"",
        )
        .await?;
    assert_eq!(r.status, 405);
    let r = c.send("GET", "/2018-06-01/runtime/nope", "", b"").await?;
    assert_eq!(r.status, 404);
    Ok(())
}

#[tokio::test]
async fn oversized_response_is_refused_and_reported() -> TestResult {
    let api = RuntimeApi::bind()?;
    let outcome = api.deliver(invocation("req-4"));
    let mut c = Client::connect(&api).await?;
    c.send("GET", "/2018-06-01/runtime/invocation/next", "", b"")
        .await?;
    let big = vec![b'x'; MAX_RESPONSE_BYTES + 1];
    let r = c
        .send(
            "POST",
            "/2018-06-01/runtime/invocation/req-4/response",
            "",
            &big,
        )
        .await?;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["errorType"], "RequestEntityTooLarge");
    assert_eq!(outcome.await?, Outcome::ResponseTooLarge);
    Ok(())
}

#[tokio::test]
async fn init_error_is_reported_before_the_first_next() -> TestResult {
    let api = RuntimeApi::bind()?;
    let mut c = Client::connect(&api).await?;
    let body = br#"{"errorMessage":"bad import","errorType":"Runtime.ImportModuleError"}"#;
    let r = c
        .send(
            "POST",
            "/2018-06-01/runtime/init/error",
            "Lambda-Runtime-Function-Error-Type: Runtime.ImportModuleError\r\n",
            body,
        )
        .await?;
    assert_eq!(r.status, 202);
    match tokio::time::timeout(Duration::from_secs(1), api.ready()).await? {
        Readiness::InitFailed(e) => {
            assert_eq!(e.error_type.as_deref(), Some("Runtime.ImportModuleError"));
            assert_eq!(&e.body[..], body);
        }
        other => panic!("expected an init failure, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn closing_ends_a_waiting_invocation() -> TestResult {
    let api = RuntimeApi::bind()?;
    let outcome = api.deliver(invocation("req-5"));
    api.close();
    assert_eq!(outcome.await?, Outcome::Closed);
    assert_eq!(api.ready().await, Readiness::Closed);
    Ok(())
}

/// AWS's Rust client drops the acknowledgement unread; an empty one keeps its connection alive
/// for the next `/next` (see `Ack` in server.rs). Everyone else gets AWS's body.
#[tokio::test]
async fn rust_client_gets_an_empty_acknowledgement_on_the_same_connection() -> TestResult {
    let api = RuntimeApi::bind()?;
    let mut c = Client::connect(&api).await?;
    for id in ["r-1", "r-2"] {
        let outcome = api.deliver(invocation(id));
        let r = c
            .send("GET", "/2018-06-01/runtime/invocation/next", "", b"")
            .await?;
        assert_eq!(r.header("lambda-runtime-aws-request-id"), Some(id));
        let r = c
            .send(
                "POST",
                &format!("/2018-06-01/runtime/invocation/{id}/response"),
                "User-Agent: aws-lambda-rust/1.5.0\r\n",
                b"{}",
            )
            .await?;
        assert_eq!(r.status, 202);
        assert!(r.body.is_empty());
        assert_eq!(r.header("content-length"), Some("0"));
        assert_eq!(outcome.await?, Outcome::Response(b"{}"[..].into()));
    }
    Ok(())
}

#[tokio::test]
async fn a_gated_endpoint_serves_only_connections_its_check_admits() -> TestResult {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let api = RuntimeApi::bind_gated()?;
    // Connected before the gate is decided: the connection waits, then is judged.
    let mut early = Client::connect(&api).await?;
    let allow = Arc::new(AtomicBool::new(false));
    let verdict = allow.clone();
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let log = seen.clone();
    api.admit(Some(Arc::new(move |peer, local| {
        log.lock().push((peer, local));
        verdict.load(Ordering::SeqCst)
    })));
    let refused = early
        .send("GET", "/2018-06-01/runtime/invocation/next", "", b"")
        .await;
    assert!(refused.is_err(), "a refused connection gets no answer");
    assert_eq!(
        api.readiness(),
        Readiness::Starting,
        "nothing reached /next"
    );

    allow.store(true, Ordering::SeqCst);
    let mut c = Client::connect(&api).await?;
    let next = tokio::spawn(async move {
        c.send("GET", "/2018-06-01/runtime/invocation/next", "", b"")
            .await
    });
    assert_eq!(api.ready().await, Readiness::Ready);
    let _outcome = api.deliver(invocation("req-gate"));
    let r = next.await??;
    assert_eq!(r.header("lambda-runtime-aws-request-id"), Some("req-gate"));
    // The check was asked about both connections, with the listener's address as `local`.
    let seen = seen.lock().clone();
    assert_eq!(seen.len(), 2);
    assert!(seen
        .iter()
        .all(|(peer, local)| peer.ip().is_loopback() && *local == api.addr()));
    Ok(())
}
