//! Invoke benchmark: starts the real `flint serve`, creates trivial functions, and measures
//! warm sync-invoke latency (one connection, p50/p99), throughput (8 connections) and cold starts
//! through the HTTP API — with a raw keep-alive HTTP/1.1 client and a signature computed once, so
//! the client's own cost stays out of the numbers.
//!
//! Run: `cargo bench -p flint --bench invoke` (see BENCHMARKS.md). Environment:
//! `FLINT_BENCH_RUST_BOOTSTRAP` = a `bootstrap` built with the `lambda_runtime` crate (the
//! `provided` case is skipped without it), `FLINT_BENCH_RUST_BOOTSTRAP_CT` = the same built with
//! `--features current-thread` (`provided-ct`), `FLINT_BENCH_SECS` (default 5),
//! `FLINT_BENCH_ONLY` = comma-separated subset of `python,node,provided,provided-ct`.
//! Cold starts also report Lambda's own `Init Duration` (sandbox creation → first `/next`), and
//! the run ends with the bare interpreters' start-up for comparison.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_lambda::types::{Environment, Runtime};
use bytes::Bytes;
use common::{pct, zip_of, Sender};
use http_body_util::{BodyExt, Full};

/// CreateFunction and wait until it is Active.
async fn create(
    c: &aws_sdk_lambda::Client,
    name: &str,
    runtime: Runtime,
    handler: &str,
    zip: Vec<u8>,
) {
    common::create(c, name, runtime, handler, zip, 3).await;
    common::wait_active(c, name).await;
}

fn invoke_request(port: u16, name: &str) -> http::Request<Full<Bytes>> {
    common::invoke_request(port, name, b"{\"bench\":true}")
}

async fn connect(port: u16) -> Sender {
    common::connect(port).await.expect("connect")
}

async fn invoke_once(sender: &mut Sender, template: &http::Request<Full<Bytes>>) -> Duration {
    invoke_full(sender, template, false).await.0
}

/// One invoke; with `tail`, also Lambda's REPORT line of it (`LogType: Tail`).
async fn invoke_full(
    sender: &mut Sender,
    template: &http::Request<Full<Bytes>>,
    tail: bool,
) -> (Duration, Option<String>) {
    let mut req = http::Request::builder()
        .method("POST")
        .uri(template.uri().path());
    for (k, v) in template.headers() {
        req = req.header(k, v);
    }
    if tail {
        req = req.header("x-amz-log-type", "Tail");
    }
    let req = req.body(template.body().clone()).expect("request");
    sender.ready().await.expect("ready");
    let start = Instant::now();
    let resp = sender.send_request(req).await.expect("send");
    let status = resp.status();
    let err = resp.headers().get("x-amz-function-error").cloned();
    let log = resp
        .headers()
        .get("x-amz-log-result")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(v).ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let took = start.elapsed();
    assert!(
        status.is_success() && err.is_none(),
        "invoke failed: {status} {body:?}"
    );
    let report = log.and_then(|l| {
        l.lines()
            .find(|l| l.starts_with("REPORT"))
            .map(str::to_string)
    });
    (took, report)
}

/// `Init Duration: 12.34 ms` of a REPORT line: sandbox creation to the runtime's first `/next`.
fn init_duration_ms(report: &str) -> Option<f64> {
    let rest = report.split("Init Duration: ").nth(1)?;
    rest.split(' ').next()?.parse().ok()
}

/// The bare interpreter's own start-up (`python3.11 -c pass`, `node -e 0`): p50 and min of `n`.
fn bare_start(program: &str, args: &[&str], n: usize) -> Option<(f64, f64)> {
    let mut lat = Vec::new();
    for _ in 0..n {
        let start = Instant::now();
        let ok = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?
            .success();
        if !ok {
            return None;
        }
        lat.push(start.elapsed());
    }
    lat.sort();
    Some((pct(&lat, 0.5), pct(&lat, 0.0)))
}

async fn bench_function(port: u16, name: &str, secs: u64) -> String {
    let template = invoke_request(port, name);
    // Warm-up (also the cold start).
    let mut s = connect(port).await;
    for _ in 0..200 {
        invoke_once(&mut s, &template).await;
    }
    // Latency, one connection.
    let mut lat = Vec::new();
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        lat.push(invoke_once(&mut s, &template).await);
    }
    lat.sort();
    let (p50, p99) = (pct(&lat, 0.50), pct(&lat, 0.99));
    // Throughput, 8 connections.
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (done, count, template) = (done.clone(), count.clone(), invoke_request(port, name));
        tasks.push(tokio::spawn(async move {
            let mut s = connect(port).await;
            while !done.load(Ordering::Relaxed) {
                invoke_once(&mut s, &template).await;
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    done.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let rps = count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    format!(
        "{name:<10} warm p50 {p50:.3} ms  p99 {p99:.3} ms  ({} invokes, 1 conn)  throughput {rps:.0} invokes/s (8 conns)",
        lat.len()
    )
}

/// Cold start: change the configuration (a new snapshot), then time the first invoke.
async fn bench_cold(c: &aws_sdk_lambda::Client, port: u16, name: &str, n: usize) -> String {
    let template = invoke_request(port, name);
    let mut s = connect(port).await;
    let mut lat = Vec::new();
    let mut init = Vec::new();
    for i in 0..n {
        c.update_function_configuration()
            .function_name(name)
            .environment(
                Environment::builder()
                    .variables("COLD", i.to_string())
                    .build(),
            )
            .send()
            .await
            .expect("update");
        loop {
            let f = c
                .get_function_configuration()
                .function_name(name)
                .send()
                .await
                .expect("get");
            if f.last_update_status().map(|s| s.as_str()) == Some("Successful") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (took, report) = invoke_full(&mut s, &template, true).await;
        lat.push(took);
        if let Some(ms) = report.as_deref().and_then(init_duration_ms) {
            init.push(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    lat.sort();
    init.sort();
    let init = if init.is_empty() {
        "no Init Duration reported".to_string()
    } else {
        format!(
            "Init Duration (sandbox → first /next) p50 {:.2} ms  min {:.2} ms",
            pct(&init, 0.5),
            pct(&init, 0.0)
        )
    };
    format!(
        "{name:<10} cold invoke p50 {:.2} ms  min {:.2} ms  max {:.2} ms  ({n} cold starts); {init}",
        pct(&lat, 0.5),
        pct(&lat, 0.0),
        pct(&lat, 1.0)
    )
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let secs: u64 = std::env::var("FLINT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let only = std::env::var("FLINT_BENCH_ONLY")
        .unwrap_or_else(|_| "python,node,provided,provided-ct".into());
    // One thread, like one of wrk's: the client's own hops between threads stay out of the numbers.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let server = common::start_server(&[], Duration::from_secs(5));
    let port = server.port;
    let lines = rt.block_on(async move {
        let c = common::client(port).await;
        let mut lines = Vec::new();
        let mut fns: Vec<&str> = Vec::new();
        if only.contains("python") {
            let zip = zip_of(&[(
                "index.py",
                b"def handler(event, context):\n    return event\n",
                0o644,
            )]);
            create(&c, "bench-python", Runtime::Python311, "index.handler", zip).await;
            fns.push("bench-python");
        }
        if only.contains("node") {
            let zip = zip_of(&[(
                "index.mjs",
                b"export const handler = async (event) => event;\n",
                0o644,
            )]);
            create(&c, "bench-node", Runtime::Nodejs20x, "index.handler", zip).await;
            fns.push("bench-node");
        }
        // `provided`: AWS's lambda_runtime client as `#[tokio::main]` writes it (multi-threaded);
        // `provided-ct`: the same bootstrap on a current-thread runtime.
        for (case, var) in [
            ("provided", "FLINT_BENCH_RUST_BOOTSTRAP"),
            ("provided-ct", "FLINT_BENCH_RUST_BOOTSTRAP_CT"),
        ] {
            if !only.split(',').any(|o| o == case) {
                continue;
            }
            let name = if case == "provided" {
                "bench-provided"
            } else {
                "bench-provided-ct"
            };
            match std::env::var(var) {
                Ok(path) => {
                    let bin = std::fs::read(&path).expect("read rust bootstrap");
                    let zip = zip_of(&[("bootstrap", &bin, 0o755)]);
                    create(&c, name, Runtime::Providedal2023, "bootstrap", zip).await;
                    fns.push(name);
                }
                Err(_) => lines.push(format!("{name} skipped: set {var}")),
            }
        }
        for name in &fns {
            lines.push(bench_function(port, name, secs).await);
        }
        for name in &fns {
            lines.push(bench_cold(&c, port, name, 20).await);
        }
        lines
    });
    drop(server);
    println!(
        "\n== Flint invoke benchmark ({} s per measurement) ==",
        secs
    );
    for l in lines {
        println!("{l}");
    }
    // What the managed runtimes' cold starts are measured against: the interpreters Flint runs.
    for (runtime, args) in [
        ("python3.11", &["-c", "pass"][..]),
        ("nodejs20.x", &["-e", "0"][..]),
    ] {
        let Some(program) = interpreter_of(runtime) else {
            println!("bare interpreter for {runtime}: not available");
            continue;
        };
        let label = format!("{program} {}", args.join(" "));
        match bare_start(&program, args, 20) {
            Some((p50, min)) => {
                println!("bare interpreter `{label}` start-up p50 {p50:.2} ms  min {min:.2} ms (20 runs)")
            }
            None => println!("bare interpreter `{label}`: did not run"),
        }
    }
}

/// The interpreter `flint runtimes` lists for `runtime`.
fn interpreter_of(runtime: &str) -> Option<String> {
    let out = Command::new(common::flint_binary())
        .arg("runtimes")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.lines().find_map(|l| {
        let mut cols = l.split_whitespace();
        (cols.next() == Some(runtime))
            .then(|| cols.next().map(str::to_string))
            .flatten()
            .filter(|p| p.starts_with('/'))
    })
}
