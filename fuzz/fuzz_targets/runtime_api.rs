//! The Runtime API (with the Extensions, Telemetry and Logs APIs on its address) as a function's
//! processes reach it: arbitrary HTTP/1.1 request sequences — well-framed requests built from the
//! fuzzer's methods, paths, headers and bodies, or raw bytes — on a real TCP connection to a real
//! endpoint holding one pending invocation.
//!
//! Invariants: no panic in the server, and the endpoint still hands out the next invocation after
//! whatever came before (one bad client does not wedge it).
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::Bytes;
use flint_runtime_api::{Invocation, RuntimeApi};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REQUEST_ID: &str = "8f507cfc-0000-4000-8000-000000000001";

const PATHS: &[&str] = &[
    "/2018-06-01/runtime/invocation/next",
    "/2018-06-01/runtime/invocation/8f507cfc-0000-4000-8000-000000000001/response",
    "/2018-06-01/runtime/invocation/8f507cfc-0000-4000-8000-000000000001/error",
    "/2018-06-01/runtime/invocation/",
    "/2018-06-01/runtime/init/error",
    "/2020-01-01/extension/register",
    "/2020-01-01/extension/event/next",
    "/2020-01-01/extension/init/error",
    "/2020-01-01/extension/exit/error",
    "/2022-07-01/telemetry",
    "/2020-08-15/logs",
    "/",
];

const HEADERS: &[&str] = &[
    "Lambda-Runtime-Function-Error-Type",
    "Lambda-Runtime-Function-Response-Mode",
    "Lambda-Extension-Name",
    "Lambda-Extension-Identifier",
    "Lambda-Extension-Accept-Feature",
    "Lambda-Extension-Function-Error-Type",
    "Content-Type",
    "Transfer-Encoding",
    "Trailer",
    "Lambda-Runtime-Function-Error-Body",
    "Expect",
    "Connection",
];

#[derive(Debug, Arbitrary)]
enum Part {
    Request {
        post: bool,
        path: u8,
        suffix: String,
        headers: Vec<(u8, String)>,
        body: Vec<u8>,
        /// Send the body chunked (with an optional trailer), as streaming responses do.
        chunked: Option<Vec<(String, String)>>,
    },
    Raw(Vec<u8>),
}

fn frame(part: &Part, out: &mut Vec<u8>) {
    match part {
        Part::Raw(bytes) => out.extend_from_slice(bytes),
        Part::Request {
            post,
            path,
            suffix,
            headers,
            body,
            chunked,
        } => {
            let method = if *post { "POST" } else { "GET" };
            let path = PATHS[usize::from(*path) % PATHS.len()];
            out.extend_from_slice(
                format!("{method} {path}{suffix} HTTP/1.1\r\nHost: 127.0.0.1\r\n").as_bytes(),
            );
            for (name, value) in headers {
                let name = HEADERS[usize::from(*name) % HEADERS.len()];
                out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
            match chunked {
                None => {
                    out.extend_from_slice(
                        format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes(),
                    );
                    out.extend_from_slice(body);
                }
                Some(trailers) => {
                    out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                    for chunk in body.chunks(7) {
                        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                        out.extend_from_slice(chunk);
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b"0\r\n");
                    for (n, v) in trailers {
                        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
                    }
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("tokio: {e}"));
        // libFuzzer's C++ main leaves SIGPIPE fatal (Rust's own main, as in `flint`, ignores
        // it): a handler makes a write to a closed socket the EPIPE Flint sees in production.
        static PIPE: std::sync::Mutex<Option<tokio::signal::unix::Signal>> =
            std::sync::Mutex::new(None);
        let pipe = rt.block_on(async {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::pipe())
        });
        if let (Ok(pipe), Ok(mut slot)) = (pipe, PIPE.lock()) {
            *slot = Some(pipe);
        }
        rt
    })
}

fn invocation(request_id: &str) -> Invocation {
    Invocation {
        request_id: request_id.to_string(),
        deadline_ms: u64::MAX / 2,
        invoked_function_arn: "arn:aws:lambda:us-east-1:123456789012:function:fuzz".into(),
        trace_id: "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0".into(),
        client_context: None,
        cognito_identity: None,
        payload: Bytes::from_static(b"{\"fuzz\":true}"),
    }
}

/// Sends `bytes` on a fresh connection and reads what comes back until the server closes it or
/// goes quiet (a request that waits for an event holds the connection open).
async fn exchange(api: &RuntimeApi, bytes: &[u8], quiet: Duration) -> Vec<u8> {
    let mut answer = Vec::new();
    let Ok(mut stream) = TcpStream::connect(api.addr()).await else {
        return answer;
    };
    if stream.write_all(bytes).await.is_err() || stream.shutdown().await.is_err() {
        return answer;
    }
    let _ = tokio::time::timeout(quiet, stream.read_to_end(&mut answer)).await;
    answer
}

fuzz_target!(|parts: Vec<Part>| {
    let mut bytes = Vec::new();
    for part in &parts {
        frame(part, &mut bytes);
    }
    runtime().block_on(async {
        let Ok(api) = RuntimeApi::bind() else {
            return;
        };
        let _first = api.deliver(invocation(REQUEST_ID));
        exchange(&api, &bytes, Duration::from_millis(30)).await;
        // Still serving: a later invocation reaches a well-behaved runtime.
        let _second = api.deliver(invocation("8f507cfc-0000-4000-8000-000000000002"));
        let next = exchange(
            &api,
            b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            Duration::from_millis(30),
        )
        .await;
        let text = String::from_utf8_lossy(&next);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 "),
            "not an HTTP answer after {bytes:?}: {text}"
        );
        api.close();
    });
});
