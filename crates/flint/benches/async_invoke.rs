//! Asynchronous invoke benchmark: starts the real `flint serve`, then (1) sends `Event` invokes of
//! a trivial Python function over 8 keep-alive connections for `FLINT_BENCH_SECS` and counts the
//! 202s (each durable before it is answered), while counting the events delivered meanwhile;
//! (2) measures how fast the backlog drains end to end; (3) measures a synchronous warm invoke's
//! p50 on its own and again while a backlog drains. The function reports each run with one UDP
//! datagram to the benchmark (functions share the host's network), so delivery is observed, not
//! inferred.
//!
//! Run: `cargo bench -p flint --bench async_invoke` (see BENCHMARKS.md). Environment:
//! `FLINT_BENCH_SECS` (default 5), `FLINT_BENCH_CONNECTIONS` (default 8).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_lambda::types::{Environment, Runtime};
use bytes::Bytes;
use common::{pct, zip_of, Sender};
use http_body_util::{BodyExt, Full};

const SINK: &str = "import os, socket\n\
ADDR = ('127.0.0.1', int(os.environ['BENCH_UDP_PORT']))\n\
S = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
def handler(event, context):\n    S.sendto(b'x', ADDR)\n    return 1\n";

const ECHO: &str = "def handler(event, context):\n    return 1\n";

async fn send(
    sender: &mut Sender,
    template: &http::Request<Full<Bytes>>,
    event: bool,
) -> (Duration, http::StatusCode) {
    let mut req = http::Request::builder()
        .method("POST")
        .uri(template.uri().path());
    for (k, v) in template.headers() {
        req = req.header(k, v);
    }
    if event {
        req = req.header("x-amz-invocation-type", "Event");
    }
    let req = req.body(template.body().clone()).expect("request");
    sender.ready().await.expect("ready");
    let start = Instant::now();
    let resp = sender.send_request(req).await.expect("send");
    let status = resp.status();
    let _ = resp.into_body().collect().await.expect("body");
    (start.elapsed(), status)
}

/// Counts the datagrams the sink function sends, one per delivered event.
fn count_deliveries(socket: std::net::UdpSocket, delivered: Arc<AtomicU64>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16];
        while socket.recv(&mut buf).is_ok() {
            delivered.fetch_add(1, Ordering::Relaxed);
        }
    });
}

async fn wait_delivered(delivered: &AtomicU64, n: u64, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while delivered.load(Ordering::Relaxed) < n {
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Some(start.elapsed())
}

/// Sync warm-invoke latencies (one connection) for `secs`.
async fn sync_latencies(port: u16, name: &str, secs: f64) -> Vec<Duration> {
    let template = common::invoke_request(port, name, b"{}");
    let mut sender = common::connect(port).await.expect("connect");
    let mut lat = Vec::new();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < secs {
        let (d, status) = send(&mut sender, &template, false).await;
        assert!(status.is_success(), "sync invoke: {status}");
        lat.push(d);
    }
    lat.sort();
    lat
}

/// Sends Event invokes over `conns` connections for `secs`; returns the 202s counted.
async fn flood(port: u16, name: &str, conns: usize, secs: f64) -> u64 {
    let accepted = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let accepted = accepted.clone();
        let template = common::invoke_request(port, name, b"{\"bench\":true}");
        tasks.push(tokio::spawn(async move {
            let mut sender = common::connect(port).await.expect("connect");
            while Instant::now() < deadline {
                let (_, status) = send(&mut sender, &template, true).await;
                assert_eq!(status, http::StatusCode::ACCEPTED, "event invoke");
                accepted.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
    accepted.load(Ordering::Relaxed)
}

fn main() {
    let secs: f64 = std::env::var("FLINT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let conns: usize = std::env::var("FLINT_BENCH_CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let server = common::start_server(&[], Duration::from_secs(5));
    let port = server.port;
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let udp_port = udp.local_addr().expect("udp addr").port();
    let delivered = Arc::new(AtomicU64::new(0));
    count_deliveries(udp, delivered.clone());

    rt.block_on(async {
        let c = common::client(port).await;
        let sink_zip = zip_of(&[("index.py", SINK.as_bytes(), 0o644)]);
        common::create(&c, "async-sink", Runtime::Python311, "index.handler", sink_zip, 30).await;
        common::wait_active(&c, "async-sink").await;
        c.update_function_configuration()
            .function_name("async-sink")
            .environment(
                Environment::builder()
                    .variables("BENCH_UDP_PORT", udp_port.to_string())
                    .build(),
            )
            .send()
            .await
            .expect("configure sink");
        common::wait_active(&c, "async-sink").await;
        let echo_zip = zip_of(&[("index.py", ECHO.as_bytes(), 0o644)]);
        common::create(&c, "sync-echo", Runtime::Python311, "index.handler", echo_zip, 3).await;
        common::wait_active(&c, "sync-echo").await;

        // Warm-up: environments of both functions exist.
        let warm = flood(port, "async-sink", 1, 0.5).await;
        wait_delivered(&delivered, warm, Duration::from_secs(60))
            .await
            .expect("warm-up events delivered");
        let _ = sync_latencies(port, "sync-echo", 1.0).await;

        // Baseline: sync p50 with an idle queue.
        let idle = sync_latencies(port, "sync-echo", secs.min(3.0)).await;

        // (1) Accept, counting deliveries meanwhile.
        let before = delivered.load(Ordering::Relaxed);
        let start = Instant::now();
        let accepted = flood(port, "async-sink", conns, secs).await;
        let accept_secs = start.elapsed().as_secs_f64();
        let during = delivered.load(Ordering::Relaxed) - before;

        // (3) Sync p50 while the backlog drains, then (2) the drain itself.
        let busy = sync_latencies(port, "sync-echo", secs.min(3.0)).await;
        let backlog_left = (before + accepted).saturating_sub(delivered.load(Ordering::Relaxed));
        let drained = wait_delivered(&delivered, before + accepted, Duration::from_secs(600))
            .await
            .map(|d| d.as_secs_f64() + start.elapsed().as_secs_f64() - d.as_secs_f64());
        let total = start.elapsed().as_secs_f64();

        println!("async accept: {accepted} Event invokes in {accept_secs:.1} s over {conns} connections = {:.0}/s (each durable before its 202)", accepted as f64 / accept_secs);
        println!("delivered while accepting: {during} ({:.0}/s)", during as f64 / accept_secs);
        match drained {
            Some(_) => println!(
                "end to end: all {accepted} delivered {total:.1} s after the first was sent = {:.0} events/s",
                accepted as f64 / total
            ),
            None => println!("end to end: not all delivered within 600 s"),
        }
        println!(
            "sync warm invoke p50: {:.3} ms with an idle queue, {:.3} ms while a backlog drained ({} events were still queued after the measurement) (p99 {:.3} / {:.3} ms)",
            pct(&idle, 0.5),
            pct(&busy, 0.5),
            backlog_left,
            pct(&idle, 0.99),
            pct(&busy, 0.99)
        );
    });
    drop(server);
}
