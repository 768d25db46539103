//! Function URL benchmark: a warm function URL request (payload format 2.0, `AuthType: NONE`,
//! Host-form routing) against a warm Invoke of the same function, p50/p99 on one keep-alive
//! connection each, interleaved in rounds so both see the same machine state.
//!
//! Run: `cargo bench -p flint --bench url` (see BENCHMARKS.md). `FLINT_BENCH_SECS` (default 5)
//! is the time spent on each side.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_lambda::types::Runtime;
use bytes::Bytes;
use common::{pct, zip_of, Sender};
use http_body_util::{BodyExt, Full};

async fn timed(sender: &mut Sender, req: http::Request<Full<Bytes>>) -> Duration {
    sender.ready().await.expect("ready");
    let start = Instant::now();
    let resp = sender.send_request(req).await.expect("send");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let took = start.elapsed();
    assert!(status.is_success(), "request failed: {status} {body:?}");
    took
}

fn copy(template: &http::Request<Full<Bytes>>) -> http::Request<Full<Bytes>> {
    let mut req = http::Request::builder()
        .method(template.method())
        .uri(template.uri().path());
    for (k, v) in template.headers() {
        req = req.header(k, v);
    }
    req.body(template.body().clone()).expect("request")
}

fn main() {
    let secs: u64 = std::env::var("FLINT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = common::start_server(&[], Duration::from_secs(5));
    let port = server.port;
    rt.block_on(async move {
        let c = common::client(port).await;
        let zip = zip_of(&[(
            "index.py",
            b"def handler(event, context):\n    return {'statusCode': 200, 'body': 'ok'}\n",
            0o644,
        )]);
        common::create(&c, "bench-url", Runtime::Python311, "index.handler", zip, 3).await;
        common::wait_active(&c, "bench-url").await;
        let url = c
            .create_function_url_config()
            .function_name("bench-url")
            .auth_type(aws_sdk_lambda::types::FunctionUrlAuthType::None)
            .send()
            .await
            .expect("url")
            .function_url;
        c.add_permission()
            .function_name("bench-url")
            .statement_id("url")
            .action("lambda:InvokeFunctionUrl")
            .principal("*")
            .function_url_auth_type(aws_sdk_lambda::types::FunctionUrlAuthType::None)
            .send()
            .await
            .expect("permission");
        c.add_permission()
            .function_name("bench-url")
            .statement_id("invoke")
            .action("lambda:InvokeFunction")
            .principal("*")
            .invoked_via_function_url(true)
            .send()
            .await
            .expect("permission");
        let host = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let url_template = http::Request::builder()
            .method("GET")
            .uri("/bench?x=1")
            .header("host", host)
            .header("user-agent", "flint-bench")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let invoke_template = common::invoke_request(port, "bench-url", b"{\"bench\":true}");

        let mut url_conn = common::connect(port).await.expect("connect");
        let mut invoke_conn = common::connect(port).await.expect("connect");
        for _ in 0..300 {
            timed(&mut url_conn, copy(&url_template)).await;
            timed(&mut invoke_conn, copy(&invoke_template)).await;
        }
        let (mut url_times, mut invoke_times) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + Duration::from_secs(secs * 2);
        while Instant::now() < deadline {
            for _ in 0..100 {
                url_times.push(timed(&mut url_conn, copy(&url_template)).await);
            }
            for _ in 0..100 {
                invoke_times.push(timed(&mut invoke_conn, copy(&invoke_template)).await);
            }
        }
        url_times.sort();
        invoke_times.sort();
        println!(
            "warm Invoke        p50 {:.3} ms  p99 {:.3} ms  (n={})",
            pct(&invoke_times, 0.5),
            pct(&invoke_times, 0.99),
            invoke_times.len()
        );
        println!(
            "warm function URL  p50 {:.3} ms  p99 {:.3} ms  (n={})",
            pct(&url_times, 0.5),
            pct(&url_times, 0.99),
            url_times.len()
        );
        println!(
            "URL − Invoke at p50: {:+.1} µs",
            (pct(&url_times, 0.5) - pct(&invoke_times, 0.5)) * 1000.0
        );
    });
    drop(server);
}
