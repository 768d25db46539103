//! Asynchronous invoke benchmark: starts the real `flint serve` with a trivial `provided`
//! function built with AWS's `lambda_runtime` crate (the fixture bootstrap, which sends its
//! request id to the benchmark over TCP per run when `NOTIFY_TCP_PORT` is set: functions
//! share the host's network, so delivery is observed, not inferred). Then:
//!
//! 1. accept: `Event` invokes over `FLINT_BENCH_CONNECTIONS` keep-alive connections for
//!    `FLINT_BENCH_SECS`, counting the 202s (each durable before it is answered) and the events
//!    delivered meanwhile;
//! 2. drain: how fast the backlog the accept phase left is delivered, with nothing else running;
//! 3. a synchronous warm invoke's p50 with an idle queue, and again while a backlog drains (only
//!    samples taken while events were still queued count);
//! 4. accept alone: on a fresh server, `Event` invokes whose runs sleep 5 s (16 workers deliver
//!    ~3/s), so Flint's CPU per accept is measured without delivery sharing the cores;
//! 5. crash: on a fresh data dir, `kill -9` Flint while it accepts, restart it on the same data
//!    dir, `kill -9` it again while it delivers, restart it, and assert that every event that got
//!    a 202 was delivered at least once (by request id).
//!
//! Run: `cargo bench -p flint --bench async_invoke` (see BENCHMARKS.md). Environment:
//! `FLINT_BENCH_SECS` (default 5), `FLINT_BENCH_CONNECTIONS` (default 8),
//! `FLINT_BENCH_RUST_BOOTSTRAP` (default `target/fixtures/bench-release/bootstrap`, built by
//! `CARGO_TARGET_DIR=target/fixtures cargo build --profile bench-release --features current-thread
//! --manifest-path tests/fixtures/rust-bootstrap/Cargo.toml`), `FLINT_BENCH_ONLY` = a subset of
//! `perf,accept,crash` (default all three).

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_lambda::types::{Environment, Runtime};
use bytes::Bytes;
use common::{pct, zip_of, Sender};
use http_body_util::{BodyExt, Full};

/// The function reports each delivery to the benchmark on the host's loopback: it needs the
/// host's network (`flint serve` isolates functions by default). Every server here starts on a
/// fresh data dir, where `flint serve` would install the managed runtimes' SDKs (pip, npm) in
/// the background, competing for the cores while the benchmark measures: the function is
/// `provided.al2023`, which needs none.
/// `FLINT_BENCH_SERVER_ARGS` (whitespace-separated) replaces them, e.g. with an empty value to
/// bisect with binaries older than those two flags.
const SERVER_ARGS: &[&str] = &["--function-network", "host", "--install-runtimes", "off"];

fn server_args() -> Vec<String> {
    match std::env::var("FLINT_BENCH_SERVER_ARGS") {
        Ok(args) => args.split_whitespace().map(String::from).collect(),
        Err(_) => SERVER_ARGS.iter().map(|a| a.to_string()).collect(),
    }
}

fn server_args_ref(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// What the sink function reported: every request id delivered, and how many
/// deliveries (with repeats) there were.
#[derive(Default)]
struct Deliveries {
    count: AtomicU64,
    ids: Mutex<HashSet<String>>,
}

/// One invoke; Err if the connection failed (the server was killed).
async fn send(
    sender: &mut Sender,
    template: &http::Request<Full<Bytes>>,
    event: bool,
) -> Result<(Duration, http::StatusCode, Option<String>), String> {
    let mut req = http::Request::builder()
        .method("POST")
        .uri(template.uri().path());
    for (k, v) in template.headers() {
        req = req.header(k, v);
    }
    if event {
        req = req.header("x-amz-invocation-type", "Event");
    }
    let req = req
        .body(template.body().clone())
        .map_err(|e| e.to_string())?;
    sender.ready().await.map_err(|e| e.to_string())?;
    let start = Instant::now();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let id = resp
        .headers()
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    resp.into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok((start.elapsed(), status, id))
}

/// Reads the request ids the sink's environments write, one connection per environment.
fn count_deliveries(listener: std::net::TcpListener, delivered: Arc<Deliveries>) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let delivered = delivered.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(conn).lines() {
                    let Ok(id) = line else { return };
                    delivered.ids.lock().expect("lock").insert(id);
                    delivered.count.fetch_add(1, Ordering::Release);
                }
            });
        }
    });
}

async fn wait_delivered(delivered: &Deliveries, n: u64, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while delivered.count.load(Ordering::Acquire) < n {
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Some(start.elapsed())
}

/// Sync warm-invoke latencies (one connection) for `secs`, or until `until` says stop.
async fn sync_latencies(
    port: u16,
    name: &str,
    secs: f64,
    until: impl Fn() -> bool,
) -> Vec<Duration> {
    let template = common::invoke_request(port, name, b"{}");
    let mut sender = common::connect(port).await.expect("connect");
    let mut lat = Vec::new();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < secs && !until() {
        let (d, status, _) = send(&mut sender, &template, false).await.expect("sync");
        assert!(status.is_success(), "sync invoke: {status}");
        lat.push(d);
    }
    lat.sort();
    lat
}

/// Sends Event invokes over `conns` connections for `secs` (or until the server goes away, if
/// `tolerate_death`); returns the request ids of the 202s.
async fn flood(
    port: u16,
    name: &str,
    conns: usize,
    secs: f64,
    tolerate_death: bool,
) -> Vec<String> {
    flood_with(port, name, b"{\"bench\":true}", conns, secs, tolerate_death).await
}

/// As [`flood`], with this payload.
async fn flood_with(
    port: u16,
    name: &str,
    body: &'static [u8],
    conns: usize,
    secs: f64,
    tolerate_death: bool,
) -> Vec<String> {
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let accepted = accepted.clone();
        let template = common::invoke_request(port, name, body);
        tasks.push(tokio::spawn(async move {
            let mut sender = common::connect(port).await.expect("connect");
            let mut mine = Vec::new();
            while Instant::now() < deadline {
                match send(&mut sender, &template, true).await {
                    Ok((_, status, id)) => {
                        assert_eq!(status, http::StatusCode::ACCEPTED, "event invoke");
                        mine.push(id.expect("a 202 names its request id"));
                    }
                    Err(e) if tolerate_death => {
                        let _ = e;
                        break;
                    }
                    Err(e) => panic!("event invoke: {e}"),
                }
            }
            accepted.lock().expect("lock").extend(mine);
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
    let ids = std::mem::take(&mut *accepted.lock().expect("lock"));
    ids
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    // USER_HZ: 100 on Linux.
    ticks as f64 / 100.0
}

fn bootstrap_zip() -> Vec<u8> {
    let path = std::env::var("FLINT_BENCH_RUST_BOOTSTRAP").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../target/fixtures/bench-release/bootstrap"
        )
        .to_string()
    });
    let bin = std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{path}: {e} (build it: see the head of crates/flint/benches/async_invoke.rs)")
    });
    zip_of(&[("bootstrap", &bin, 0o755)])
}

/// Creates the sink function (reporting to `sink_port`) and waits until it is Active.
async fn create_sink(c: &aws_sdk_lambda::Client, sink_port: u16) {
    common::create(
        c,
        "async-sink",
        Runtime::Providedal2023,
        "bootstrap",
        bootstrap_zip(),
        30,
    )
    .await;
    common::wait_active(c, "async-sink").await;
    c.update_function_configuration()
        .function_name("async-sink")
        .environment(
            Environment::builder()
                .variables("NOTIFY_TCP_PORT", sink_port.to_string())
                .build(),
        )
        .send()
        .await
        .expect("configure sink");
    common::wait_active(c, "async-sink").await;
}

/// The two functions of the benchmark: `async-sink` (reports each run's request id) and
/// `sync-echo` (the synchronous invokes that flow meanwhile).
async fn create_functions(port: u16, sink_port: u16) {
    let c = common::client(port).await;
    create_sink(&c, sink_port).await;
    common::create(
        &c,
        "sync-echo",
        Runtime::Providedal2023,
        "bootstrap",
        bootstrap_zip(),
        3,
    )
    .await;
    common::wait_active(&c, "sync-echo").await;
}

async fn perf(
    port: u16,
    pid: u32,
    delivered: &Deliveries,
    sink_port: u16,
    secs: f64,
    conns: usize,
) {
    create_functions(port, sink_port).await;
    let count = || delivered.count.load(Ordering::Acquire);

    // Warm-up: environments of both functions exist.
    let warm = flood(port, "async-sink", conns, 1.0, false).await.len() as u64;
    wait_delivered(delivered, warm, Duration::from_secs(60))
        .await
        .expect("warm-up events delivered");
    let _ = sync_latencies(port, "sync-echo", 1.0, || false).await;

    // Baseline: sync p50 with an idle queue.
    let idle = sync_latencies(port, "sync-echo", secs.min(3.0), || false).await;

    // (1) Accept, counting deliveries meanwhile.
    let before = count();
    let cpu0 = cpu_secs(pid);
    let start = Instant::now();
    let accepted = flood(port, "async-sink", conns, secs, false).await.len() as u64;
    let accept_secs = start.elapsed().as_secs_f64();
    let during = count() - before;
    let accept_cpu = cpu_secs(pid) - cpu0;
    // (2) The backlog drains with nothing else running.
    let drain_start = Instant::now();
    let left = (before + accepted).saturating_sub(count());
    let cpu1 = cpu_secs(pid);
    let drained = wait_delivered(delivered, before + accepted, Duration::from_secs(120)).await;
    let drain_cpu = cpu_secs(pid) - cpu1;
    let total = start.elapsed().as_secs_f64();

    // (3) Sync p50 while a backlog drains. Accepts alone are delivered as fast as they come, so
    // the backlog is built while synchronous invokes flow (the queue yields to them, so events
    // pile up), then the synchronous invokes are measured while it is still there.
    let before = count();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let background = {
        let stop = stop.clone();
        tokio::spawn(async move {
            sync_latencies(port, "sync-echo", 600.0, || stop.load(Ordering::Acquire)).await
        })
    };
    let accepted2 = flood(port, "async-sink", conns, secs, false).await.len() as u64;
    stop.store(true, Ordering::Release);
    background.await.expect("sync while accepting");
    let target = before + accepted2;
    let backlog = target.saturating_sub(count());
    let busy = sync_latencies(port, "sync-echo", secs.min(3.0), || count() >= target).await;
    let busy_secs: f64 = busy.iter().map(Duration::as_secs_f64).sum();
    let backlog_after = target.saturating_sub(count());
    // (2b) That backlog drains with nothing else running: the dispatcher's own rate.
    let cpu2 = cpu_secs(pid);
    match wait_delivered(delivered, target, Duration::from_secs(120)).await {
        Some(d) => println!(
            "drain of a stored backlog: {backlog_after} events in {:.2} s = {:.0} events/s (flint CPU {:.0} µs per event)",
            d.as_secs_f64(),
            backlog_after as f64 / d.as_secs_f64().max(1e-9),
            (cpu_secs(pid) - cpu2) * 1e6 / backlog_after.max(1) as f64
        ),
        None => println!(
            "second backlog: {} of {accepted2} not seen delivered within 120 s",
            target.saturating_sub(count())
        ),
    }

    println!("async accept: {accepted} Event invokes in {accept_secs:.2} s over {conns} connections = {:.0}/s (each durable before its 202)", accepted as f64 / accept_secs);
    println!(
        "delivered while accepting: {during} ({:.0}/s)",
        during as f64 / accept_secs
    );
    println!(
        "flint CPU while accepting: {accept_cpu:.2} s = {:.0} µs per event accepted or delivered",
        accept_cpu * 1e6 / (accepted + during).max(1) as f64
    );
    match drained {
        Some(d) => {
            println!(
                "drain: the {left} events still queued when the senders stopped were delivered in {:.2} s = {:.0} events/s",
                d.as_secs_f64(),
                left as f64 / d.as_secs_f64().max(1e-9)
            );
            println!(
                "end to end: all {accepted} delivered {total:.2} s after the first was sent = {:.0} events/s",
                accepted as f64 / total
            );
            let _ = drain_start;
            println!(
                "flint CPU while draining: {drain_cpu:.2} s = {:.0} µs per event delivered",
                drain_cpu * 1e6 / left.max(1) as f64
            );
        }
        None => println!(
            "drain: {} of {accepted} not seen delivered within 120 s",
            (before + accepted).saturating_sub(count())
        ),
    }
    println!(
        "sync warm invoke p50: {:.3} ms with an idle queue ({} samples), {:.3} ms with a backlog of {backlog} events ({backlog_after} left after: {} samples over {busy_secs:.2} s); p99 {:.3} / {:.3} ms",
        pct(&idle, 0.5),
        idle.len(),
        pct(&busy, 0.5),
        busy.len(),
        pct(&idle, 0.99),
        pct(&busy, 0.99)
    );
}

/// Accept alone: on a fresh server, `Event` invokes whose runs sleep 5 s each, so the 16 workers
/// deliver ~3 events/s and the CPU Flint uses is (nearly all) the accept path's.
fn accept_only(rt: &tokio::runtime::Runtime, sink_port: u16, secs: f64, conns: usize) {
    let server = common::start_server(&server_args_ref(&server_args()), Duration::from_secs(1));
    let port = server.port;
    let pid = server.pid();
    rt.block_on(create_functions(port, sink_port));
    let body: &[u8] = b"{\"sleep_ms\":5000}";
    // Warm-up: the connections, the workers busy sleeping.
    rt.block_on(flood_with(port, "async-sink", body, conns, 1.0, false));
    println!("accept alone: flint pid {pid}, flooding for {secs:.0} s");
    let cpu0 = cpu_secs(pid);
    let start = Instant::now();
    let accepted = rt
        .block_on(flood_with(port, "async-sink", body, conns, secs, false))
        .len() as u64;
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid) - cpu0;
    println!(
        "accept alone (delivery held back): {accepted} Event invokes in {elapsed:.2} s over {conns} connections = {:.0}/s; flint CPU {cpu:.2} s = {:.1} µs per accept ({:.2} of a core)",
        accepted as f64 / elapsed,
        cpu * 1e6 / accepted.max(1) as f64,
        cpu / elapsed
    );
    // The backlog would take hours to deliver: the server (and its data dir) just go.
    drop(server);
}

/// `kill -9` during accept and during delivery; every 202 must be delivered at least once.
fn crash(rt: &tokio::runtime::Runtime, delivered: &Arc<Deliveries>, sink_port: u16, conns: usize) {
    let grace = Duration::from_secs(5);
    let server = common::start_server(&server_args_ref(&server_args()), grace);
    let port = server.port;
    rt.block_on(create_functions(port, sink_port));
    // Kill while 8 connections are sending, and synchronous invokes flow meanwhile (so that the
    // queue yields and a backlog is stored when the kill comes).
    let background = rt.spawn(async move {
        let template = common::invoke_request(port, "sync-echo", b"{}");
        let Ok(mut sender) = common::connect(port).await else {
            return;
        };
        while send(&mut sender, &template, false).await.is_ok() {}
    });
    let flood_task = rt.spawn(async move { flood(port, "async-sink", conns, 30.0, true).await });
    std::thread::sleep(Duration::from_millis(3000));
    let dir = server.kill9();
    let acked = rt.block_on(flood_task).expect("flood");
    rt.block_on(background).expect("sync invokes");
    let at_kill = delivered.count.load(Ordering::Acquire);
    println!(
        "crash: killed (-9) while accepting: {} events had a 202, {at_kill} deliveries seen by then",
        acked.len()
    );
    // Restart; kill again once it is delivering.
    let server = common::start_server_in(&server_args_ref(&server_args()), grace, dir);
    let deadline = Instant::now() + Duration::from_secs(60);
    while delivered.count.load(Ordering::Acquire)
        < at_kill + (acked.len() as u64).saturating_sub(at_kill) / 2
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    let dir = server.kill9();
    let at_second = delivered.count.load(Ordering::Acquire);
    println!(
        "crash: restarted, then killed (-9) while delivering, after {} more deliveries",
        at_second - at_kill
    );
    let server = common::start_server_in(&server_args_ref(&server_args()), grace, dir);
    let missing = |d: &Deliveries| {
        let ids = d.ids.lock().expect("lock");
        acked.iter().filter(|id| !ids.contains(*id)).count()
    };
    let start = Instant::now();
    while missing(delivered) > 0 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let lost = missing(delivered);
    println!(
        "crash: restarted again; {} of {} acknowledged events delivered ({} deliveries in all, repeats included); lost: {lost}",
        acked.len() - lost,
        acked.len(),
        delivered.count.load(Ordering::Acquire)
    );
    drop(server);
    assert_eq!(lost, 0, "acknowledged events were lost across kill -9");
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
    let only = std::env::var("FLINT_BENCH_ONLY").unwrap_or_else(|_| "perf,accept,crash".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let sink = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let sink_port = sink.local_addr().expect("sink addr").port();
    let delivered = Arc::new(Deliveries::default());
    count_deliveries(sink, delivered.clone());

    if only.split(',').any(|o| o == "perf") {
        let server = common::start_server(&server_args_ref(&server_args()), Duration::from_secs(5));
        rt.block_on(perf(
            server.port,
            server.pid(),
            &delivered,
            sink_port,
            secs,
            conns,
        ));
        drop(server);
    }
    if only.split(',').any(|o| o == "accept") {
        accept_only(&rt, sink_port, secs, conns);
    }
    if only.split(',').any(|o| o == "crash") {
        let fresh = Arc::new(Deliveries::default());
        let sink = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let sink_port = sink.local_addr().expect("sink addr").port();
        count_deliveries(sink, fresh.clone());
        crash(&rt, &fresh, sink_port, conns);
    }
}
