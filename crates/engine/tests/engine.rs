//! End-to-end tests of the engine with real sandboxes: `provided.al2023` functions whose bootstrap
//! is a small Python Runtime API client (or this very test binary acting as a minimal Rust one),
//! and managed Python/Node functions through the runtimes crate.
//!
//! `harness = false` (libtest-mimic): this binary is also the sandbox's init (`__sandbox-init`)
//! and, copied into a function's code as `bootstrap`, a runtime. The usual test arguments work:
//! `cargo test -p flint-engine --test engine -- NAME`, `--exact`, `--list`, `--skip`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use flint_engine::{
    Engine, EngineConfig, FunctionSpec, InvokeError, InvokeRequest, InvokeResponse, ThrottleReason,
};

type TestResult = Result<(), String>;

macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!("{}:{}: {}", file!(), line!(), format!($($fmt)+)));
        }
    };
}

fn main() {
    let mut args = std::env::args();
    let argv0 = args.next().unwrap_or_default();
    if args.next().as_deref() == Some(flint_sandbox::INIT_ARG) {
        flint_sandbox::init_main();
    }
    if argv0.ends_with("/bootstrap") {
        rust_bootstrap();
    }
    let mut args = libtest_mimic::Arguments::from_args();
    // One case at a time: cases count the host's sandbox processes and measure latencies.
    args.test_threads = Some(1);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            std::process::exit(2);
        }
    };
    let trials = cases()
        .into_iter()
        .map(|(name, case)| {
            let rt = rt.handle().clone();
            libtest_mimic::Trial::test(name, move || Ok(rt.block_on(run_case(case))?))
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

type Case = fn(Arc<Harness>) -> std::pin::Pin<Box<dyn std::future::Future<Output = TestResult>>>;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        vec![$((stringify!($name), (|h| Box::pin($name(h))) as Case)),*]
    };
}

fn cases() -> Vec<(&'static str, Case)> {
    cases![
        warm_invoke_reuses_the_environment,
        parallel_invokes_get_parallel_environments,
        timeout_is_sandbox_timedout_and_the_next_invoke_gets_a_fresh_environment,
        runtime_exit_is_runtime_exit_error,
        error_report_is_unhandled_and_keeps_the_environment_warm,
        reserved_concurrency_zero_is_throttled,
        init_error_is_returned_and_init_is_retried,
        missing_bootstrap_is_invalid_entrypoint,
        oversized_response_is_function_response_size_too_large,
        log_tail_has_start_end_report_and_the_functions_output,
        logs_are_persisted_per_log_stream,
        retire_stops_idle_environments,
        out_of_memory_is_runtime_out_of_memory,
        account_concurrency_limit_throttles,
        layers_are_merged_at_opt_with_later_layers_winning,
        idle_environments_are_reaped,
        runtime_sees_lambdas_environment_and_headers,
        async_event_survives_an_engine_restart,
        python_function_runs_through_the_managed_runtime,
        node_function_runs_through_the_managed_runtime,
        provisioned_environments_are_ready_before_the_first_invoke,
        provisioned_environments_are_kept_idle_and_replaced_when_they_die,
        set_provisioned_to_zero_or_retire_stops_them,
        failing_provisioned_init_is_reported_and_retried_with_backoff,
        provisioned_concurrency_is_carved_out_of_the_unreserved_pool,
        reservations_shrink_the_unreserved_pool,
        shutdown_terminates_a_busy_environment_and_leaves_no_processes,
        shutdown_kills_a_runtime_that_ignores_sigterm_after_the_grace_period,
        a_caller_that_stops_waiting_does_not_lose_the_environment,
        warm_invoke_latency,
        role_sessions_are_per_environment_and_not_reused_past_their_expiry,
    ]
}

/// One case on a fresh engine, within 90 s; the engine is shut down whatever the outcome.
async fn run_case(case: Case) -> TestResult {
    let harness =
        Arc::new(Harness::new(Duration::from_secs(60)).map_err(|e| format!("setup: {e}"))?);
    let result = tokio::time::timeout(Duration::from_secs(90), case(harness.clone())).await;
    harness.engine.shutdown().await;
    result.map_err(|_| "timed out after 90 s".to_string())?
}

/// One engine on a fresh data dir.
struct Harness {
    dir: tempfile::TempDir,
    engine: Arc<Engine>,
    sandboxes: Arc<flint_sandbox::Sandboxes>,
    runtimes: Arc<flint_runtimes::RuntimeRegistry>,
}

impl Harness {
    fn new(idle_timeout: Duration) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let sandboxes = Arc::new(
            flint_sandbox::Sandboxes::new(&dir.path().join("sandbox"), exe)
                .map_err(|e| e.to_string())?,
        );
        let runtimes = Arc::new(flint_runtimes::RuntimeRegistry::discover());
        let engine = Engine::new(
            config(dir.path(), idle_timeout),
            sandboxes.clone(),
            runtimes.clone(),
        )
        .map_err(|e| e.to_string())?;
        Ok(Self {
            dir,
            engine,
            sandboxes,
            runtimes,
        })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn config(dir: &Path, idle_timeout: Duration) -> EngineConfig {
    EngineConfig {
        layout: flint_store::Layout::new(dir),
        idle_timeout,
        account_concurrency: 1000,
        function_network: flint_engine::FunctionNetwork::Host,
        log_retention: Default::default(),
        otlp_traces_url: None,
        host_resolv_conf: "/etc/resolv.conf".into(),
    }
}

/// The Python Runtime API client used as `bootstrap` by most cases. The event says what to do.
const PY_BOOTSTRAP: &str = r#"#!/usr/bin/python3.11
import http.client, json, os, signal, socket, sys, time
if os.environ.get("IGNORE_SIGTERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
def hold(gate, who):
    # The test's Gate: say who arrived, then wait until the test lets go.
    try:
        h, p = gate.rsplit(":", 1)
        with socket.create_connection((h, int(p))) as s:
            s.sendall((who + "\n").encode())
            s.recv(1)
    except OSError:
        pass
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
TOKEN = os.urandom(8).hex()
if os.environ.get("INIT_GATE"):
    hold(os.environ["INIT_GATE"], "init")
if os.environ.get("INIT_ACTION") == "fail":
    print("init is failing", flush=True)
    conn.request("POST", "/2018-06-01/runtime/init/error",
                 body=json.dumps({"errorMessage": "init failed", "errorType": "Runtime.Custom"}),
                 headers={"Lambda-Runtime-Function-Error-Type": "Runtime.Custom"})
    conn.getresponse().read()
    sys.exit(1)
print("init done", TOKEN, flush=True)
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    body = r.read()
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    headers = {k.lower(): v for k, v in r.getheaders()}
    ev = json.loads(body)
    action = ev.get("action", "echo")
    print("handling", rid, action, flush=True)
    if action == "sleep":
        time.sleep(ev["secs"])
    if action == "hold":
        hold(ev["gate"], rid)
    if action == "exit":
        sys.exit(ev.get("code", 1))
    if action == "oom":
        hog = []
        while True:
            hog.append(bytearray(16 * 1024 * 1024))
    if action == "error":
        out, path, extra = json.dumps({"errorMessage": "it broke", "errorType": "ValueError"}), "error", {"Lambda-Runtime-Function-Error-Type": "Unhandled"}
    elif action == "big":
        out, path, extra = "x" * (7 * 1024 * 1024), "response", {}
    elif action == "opt":
        out, path, extra = json.dumps({"files": sorted(os.listdir("/opt")), "x": open("/opt/x.txt").read()}), "response", {}
    elif action == "env":
        out, path, extra = json.dumps({"env": dict(os.environ), "headers": headers, "cwd": os.getcwd()}), "response", {}
    else:
        out, path, extra = json.dumps({"echo": ev, "token": TOKEN}), "response", {}
    conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/{path}", body=out, headers=extra)
    resp = conn.getresponse()
    resp.read()
    print("posted", resp.status, flush=True)
"#;

fn write_exec(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

fn code_dir(h: &Harness, name: &str, bootstrap: Option<&[u8]>) -> Result<PathBuf, String> {
    let dir = h.path().join("code").join(name);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    if let Some(b) = bootstrap {
        write_exec(&dir.join("bootstrap"), b).map_err(|e| e.to_string())?;
    }
    Ok(dir)
}

fn spec(name: &str, code_dir: PathBuf) -> FunctionSpec {
    FunctionSpec {
        snapshot_id: format!("{name}-{:08x}", rand::random::<u32>()),
        account: "000000000000".into(),
        region: "us-east-1".into(),
        function_name: name.into(),
        version: "$LATEST".into(),
        function_arn: format!("arn:aws:lambda:us-east-1:000000000000:function:{name}"),
        runtime: "provided.al2023".into(),
        handler: "handler".into(),
        role: String::new(),
        code_dir,
        layer_dirs: vec![],
        hot_reload_dirs: vec![],
        memory_mb: 128,
        timeout_secs: 10,
        ephemeral_storage_mb: 512,
        environment: BTreeMap::new(),
        log_group: format!("/aws/lambda/{name}"),
        log_format: "Text".into(),
        reserved_concurrency: None,
        tracing_active: false,
        image: None,
    }
}

fn py_function(h: &Harness, name: &str) -> Result<Arc<FunctionSpec>, String> {
    Ok(Arc::new(spec(
        name,
        code_dir(h, name, Some(PY_BOOTSTRAP.as_bytes()))?,
    )))
}

fn request(f: &Arc<FunctionSpec>, payload: &str, tail: bool) -> InvokeRequest {
    InvokeRequest {
        trace_header: None,
        async_attempt: None,
        function: f.clone(),
        invoked_arn: f.function_arn.clone(),
        payload: Bytes::from(payload.to_string()).into(),
        client_context: None,
        tail_log: tail,
        request_id: uuid::Uuid::new_v4().to_string(),
    }
}

async fn invoke(
    h: &Harness,
    f: &Arc<FunctionSpec>,
    payload: &str,
) -> Result<InvokeResponse, String> {
    h.engine
        .invoke(request(f, payload, true))
        .await
        .map_err(|e| format!("invoke failed: {e:?}"))
}

fn json(p: &flint_engine::Payload) -> serde_json::Value {
    serde_json::from_slice(&p.contiguous()).unwrap_or(serde_json::Value::Null)
}

fn tail(r: &InvokeResponse) -> String {
    let raw = r.log_result.as_deref().unwrap_or("");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn show(r: &InvokeResponse) -> String {
    format!(
        "payload={} error={:?}\n--- log ---\n{}",
        String::from_utf8_lossy(&r.payload.contiguous()),
        r.function_error,
        tail(r)
    )
}

/// A TCP barrier between a case and its functions, so that cases order concurrent events by
/// what happened rather than by sleeping (as tests/test_many_environments.py does): a handler
/// given `gate.hold()` as its event, or an init with `INIT_GATE` set to `gate.addr`, connects,
/// says who it is (the request id, or `init`), and carries on only once the case lets go of
/// its [`Held`].
struct Gate {
    listener: tokio::net::TcpListener,
    addr: String,
}

/// A function waiting at a [`Gate`]; dropping it lets the function carry on.
struct Held {
    _conn: tokio::net::TcpStream,
    who: String,
    at: Instant,
}

impl Gate {
    async fn new() -> Result<Gate, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener
            .local_addr()
            .map_err(|e| e.to_string())?
            .to_string();
        Ok(Gate { listener, addr })
    }

    /// The event of an invoke that holds at this gate.
    fn hold(&self) -> String {
        serde_json::json!({"action": "hold", "gate": self.addr}).to_string()
    }

    /// The next function to arrive (within 30 s); it waits until the `Held` is dropped.
    async fn arrival(&self) -> Result<Held, String> {
        use tokio::io::AsyncBufReadExt;
        let arrive = async {
            let (conn, _) = self.listener.accept().await.map_err(|e| e.to_string())?;
            let at = Instant::now();
            let mut conn = tokio::io::BufReader::new(conn);
            let mut who = String::new();
            conn.read_line(&mut who).await.map_err(|e| e.to_string())?;
            Ok(Held {
                _conn: conn.into_inner(),
                who: who.trim_end().to_string(),
                at,
            })
        };
        tokio::time::timeout(Duration::from_secs(30), arrive)
            .await
            .map_err(|_| "nothing arrived at the gate within 30 s".to_string())?
    }

    /// From now on every arrival goes straight through (until the case ends).
    fn open(self) {
        tokio::spawn(async move {
            while let Ok((conn, _)) = self.listener.accept().await {
                drop(conn);
            }
        });
    }
}

/// Everything a function's log streams hold so far (flushed first).
async fn log_text(engine: &Engine, f: &FunctionSpec) -> Result<String, String> {
    engine.flush_logs().await;
    let mut text = String::new();
    for s in engine
        .log_streams(&f.account, &f.region, &f.function_name)
        .map_err(|e| e.to_string())?
    {
        text.push_str(&std::fs::read_to_string(&s.path).unwrap_or_default());
    }
    Ok(text)
}

/// Waits (up to `limit`) until `needle` appears `n` times in the function's logs.
async fn wait_for_log(
    engine: &Engine,
    f: &FunctionSpec,
    needle: &str,
    n: usize,
    limit: Duration,
) -> TestResult {
    let deadline = Instant::now() + limit;
    loop {
        let seen = log_text(engine, f).await?.matches(needle).count();
        if seen >= n {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{needle:?} {seen} times in the log, not {n}, after {limit:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn warm_invoke_reuses_the_environment(h: Arc<Harness>) -> TestResult {
    let f = py_function(&h, "warm")?;
    let first = invoke(&h, &f, r#"{"n":1}"#).await?;
    check!(first.function_error.is_none(), "{}", show(&first));
    check!(json(&first.payload)["echo"]["n"] == 1, "{}", show(&first));
    check!(
        tail(&first).contains("Init Duration"),
        "cold start reports its init: {}",
        show(&first)
    );
    let second = invoke(&h, &f, r#"{"n":2}"#).await?;
    check!(
        json(&second.payload)["token"] == json(&first.payload)["token"],
        "same environment: {}",
        show(&second)
    );
    check!(
        !tail(&second).contains("Init Duration"),
        "warm invoke has no init: {}",
        show(&second)
    );
    check!(second.executed_version == "$LATEST", "executed version");
    check!(
        h.engine.environment_count() == 1,
        "one environment, got {}",
        h.engine.environment_count()
    );
    Ok(())
}

async fn parallel_invokes_get_parallel_environments(h: Arc<Harness>) -> TestResult {
    let f = py_function(&h, "parallel")?;
    // Both hold until both have arrived: they ran at the same time.
    let gate = Gate::new().await?;
    let hold = gate.hold();
    let both_arrive = async {
        let first = gate.arrival().await?;
        let second = gate.arrival().await?;
        drop((first, second));
        Ok::<(), String>(())
    };
    let (a, b, arrived) = tokio::join!(invoke(&h, &f, &hold), invoke(&h, &f, &hold), both_arrive);
    arrived?;
    let (a, b) = (a?, b?);
    check!(
        a.function_error.is_none() && b.function_error.is_none(),
        "{}\n{}",
        show(&a),
        show(&b)
    );
    check!(
        json(&a.payload)["token"] != json(&b.payload)["token"],
        "two environments: {}\n{}",
        show(&a),
        show(&b)
    );
    check!(
        h.engine.environment_count() == 2,
        "two environments, got {}",
        h.engine.environment_count()
    );
    // Both are warm now: two more parallel invokes start nothing new (the first holds until
    // the second is done).
    let c = invoke(&h, &f, &hold);
    let d = async {
        let held = gate.arrival().await?;
        let d = invoke(&h, &f, r#"{}"#).await;
        drop(held);
        d
    };
    let (c, d) = tokio::join!(c, d);
    check!(
        !tail(&c?).contains("Init Duration") && !tail(&d?).contains("Init Duration"),
        "warm reuse"
    );
    check!(h.engine.environment_count() == 2, "still two environments");
    Ok(())
}

async fn timeout_is_sandbox_timedout_and_the_next_invoke_gets_a_fresh_environment(
    h: Arc<Harness>,
) -> TestResult {
    let mut s = spec(
        "timeout",
        code_dir(&h, "timeout", Some(PY_BOOTSTRAP.as_bytes()))?,
    );
    s.timeout_secs = 1;
    let f = Arc::new(s);
    let first = invoke(&h, &f, "{}").await?;
    let req = request(&f, r#"{"action":"sleep","secs":5}"#, true);
    let id = req.request_id.clone();
    let started = Instant::now();
    let r = h.engine.invoke(req).await.map_err(|e| format!("{e:?}"))?;
    let took = started.elapsed();
    check!(
        r.function_error.as_deref() == Some("Unhandled"),
        "{}",
        show(&r)
    );
    let v = json(&r.payload);
    check!(v["errorType"] == "Sandbox.Timedout", "{}", show(&r));
    check!(
        v["errorMessage"] == format!("RequestId: {id} Error: Task timed out after 1.00 seconds"),
        "{}",
        show(&r)
    );
    check!(
        took >= Duration::from_millis(990) && took < Duration::from_millis(1500),
        "timed out after {took:?}"
    );
    check!(
        tail(&r).contains("Task timed out after 1.00 seconds"),
        "{}",
        show(&r)
    );
    let next = invoke(&h, &f, "{}").await?;
    check!(next.function_error.is_none(), "{}", show(&next));
    check!(
        json(&next.payload)["token"] != json(&first.payload)["token"],
        "fresh environment: {}",
        show(&next)
    );
    check!(
        tail(&next).contains("Init Duration"),
        "cold start after a timeout"
    );
    Ok(())
}

async fn runtime_exit_is_runtime_exit_error(h: Arc<Harness>) -> TestResult {
    let f = py_function(&h, "exit")?;
    let req = request(&f, r#"{"action":"exit","code":1}"#, true);
    let id = req.request_id.clone();
    let r = h.engine.invoke(req).await.map_err(|e| format!("{e:?}"))?;
    check!(
        r.function_error.as_deref() == Some("Unhandled"),
        "{}",
        show(&r)
    );
    let v = json(&r.payload);
    check!(v["errorType"] == "Runtime.ExitError", "{}", show(&r));
    check!(
        v["errorMessage"]
            == format!("RequestId: {id} Error: Runtime exited with error: exit status 1"),
        "{}",
        show(&r)
    );
    let next = invoke(&h, &f, "{}").await?;
    check!(
        next.function_error.is_none(),
        "a new environment serves the next invoke: {}",
        show(&next)
    );
    Ok(())
}

async fn error_report_is_unhandled_and_keeps_the_environment_warm(h: Arc<Harness>) -> TestResult {
    let f = py_function(&h, "error")?;
    let first = invoke(&h, &f, "{}").await?;
    let r = invoke(&h, &f, r#"{"action":"error"}"#).await?;
    check!(
        r.function_error.as_deref() == Some("Unhandled"),
        "{}",
        show(&r)
    );
    check!(
        json(&r.payload)
            == serde_json::json!({"errorMessage": "it broke", "errorType": "ValueError"}),
        "{}",
        show(&r)
    );
    let after = invoke(&h, &f, "{}").await?;
    check!(
        json(&after.payload)["token"] == json(&first.payload)["token"],
        "same environment after /error"
    );
    Ok(())
}

async fn reserved_concurrency_zero_is_throttled(h: Arc<Harness>) -> TestResult {
    let mut s = spec(
        "reserved0",
        code_dir(&h, "reserved0", Some(PY_BOOTSTRAP.as_bytes()))?,
    );
    s.reserved_concurrency = Some(0);
    let f = Arc::new(s);
    match h.engine.invoke(request(&f, "{}", false)).await {
        Err(InvokeError::Throttled {
            reason: ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded,
        }) => {}
        other => {
            return Err(format!(
                "expected a throttle, got {:?}",
                other.map(|r| show(&r))
            ))
        }
    }
    check!(h.engine.environment_count() == 0, "nothing started");
    // Reserved concurrency 1: a second parallel invoke is throttled while the first runs.
    let mut s = spec(
        "reserved1",
        code_dir(&h, "reserved1", Some(PY_BOOTSTRAP.as_bytes()))?,
    );
    s.reserved_concurrency = Some(1);
    let f = Arc::new(s);
    let gate = Gate::new().await?;
    let hold = gate.hold();
    let slow = invoke(&h, &f, &hold);
    let second = async {
        let _held = gate.arrival().await?;
        Ok::<_, String>(h.engine.invoke(request(&f, "{}", false)).await)
    };
    let (slow, second) = tokio::join!(slow, second);
    let second = second?;
    check!(slow?.function_error.is_none(), "first runs");
    check!(
        matches!(
            second,
            Err(InvokeError::Throttled {
                reason: ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded
            })
        ),
        "second is throttled"
    );
    Ok(())
}

async fn init_error_is_returned_and_init_is_retried(h: Arc<Harness>) -> TestResult {
    let mut s = spec(
        "initerr",
        code_dir(&h, "initerr", Some(PY_BOOTSTRAP.as_bytes()))?,
    );
    s.environment.insert("INIT_ACTION".into(), "fail".into());
    let f = Arc::new(s);
    for _ in 0..2 {
        let r = invoke(&h, &f, "{}").await?;
        check!(
            r.function_error.as_deref() == Some("Unhandled"),
            "{}",
            show(&r)
        );
        check!(
            json(&r.payload)
                == serde_json::json!({"errorMessage": "init failed", "errorType": "Runtime.Custom"}),
            "{}",
            show(&r)
        );
        check!(
            tail(&r).contains("init is failing"),
            "init output in the tail: {}",
            show(&r)
        );
    }
    Ok(())
}

async fn missing_bootstrap_is_invalid_entrypoint(h: Arc<Harness>) -> TestResult {
    let f = Arc::new(spec("nobootstrap", code_dir(&h, "nobootstrap", None)?));
    let req = request(&f, "{}", true);
    let id = req.request_id.clone();
    let r = h.engine.invoke(req).await.map_err(|e| format!("{e:?}"))?;
    check!(
        r.function_error.as_deref() == Some("Unhandled"),
        "{}",
        show(&r)
    );
    let v = json(&r.payload);
    check!(
        v["errorType"] == "Runtime.InvalidEntrypoint",
        "{}",
        show(&r)
    );
    check!(
        v["errorMessage"]
            == format!("RequestId: {id} Error: Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]"),
        "{}",
        show(&r)
    );
    check!(
        tail(&r).contains(&format!("REPORT RequestId: {id}\tDuration: "))
            && tail(&r).contains("\tStatus: error\tError Type: Runtime.InvalidEntrypoint"),
        "every invoke ends with a REPORT: {}",
        show(&r)
    );
    Ok(())
}

async fn oversized_response_is_function_response_size_too_large(h: Arc<Harness>) -> TestResult {
    let f = py_function(&h, "big")?;
    let r = invoke(&h, &f, r#"{"action":"big"}"#).await?;
    check!(
        r.function_error.as_deref() == Some("Unhandled"),
        "{}",
        show(&r)
    );
    check!(
        json(&r.payload)["errorType"] == "Function.ResponseSizeTooLarge",
        "{}",
        show(&r)
    );
    Ok(())
}

async fn log_tail_has_start_end_report_and_the_functions_output(h: Arc<Harness>) -> TestResult {
    let f = py_function(&h, "logs")?;
    let _ = invoke(&h, &f, "{}").await?;
    let req = request(&f, "{}", true);
    let id = req.request_id.clone();
    let r = h.engine.invoke(req).await.map_err(|e| format!("{e:?}"))?;
    let t = tail(&r);
    let start = t.find(&format!("START RequestId: {id} Version: $LATEST\n"));
    let handling = t.find(&format!("handling {id} echo\n"));
    let end = t.find(&format!("END RequestId: {id}\n"));
    let report = t.find(&format!("REPORT RequestId: {id}\tDuration: "));
    check!(
        start.is_some() && handling.is_some() && end.is_some() && report.is_some(),
        "{t}"
    );
    check!(
        start < handling && handling < end && end < report,
        "in order: {t}"
    );
    check!(
        t.contains("\tMemory Size: 128 MB\tMax Memory Used: "),
        "{t}"
    );
    check!(
        !t.contains("init done"),
        "a warm invoke's tail holds only its own lines: {t}"
    );
    // Without LogType Tail there is no log result.
    let quiet = h
        .engine
        .invoke(request(&f, "{}", false))
        .await
        .map_err(|e| format!("{e:?}"))?;
    check!(quiet.log_result.is_none(), "no log result unless asked");
    Ok(())
}

async fn logs_are_persisted_per_log_stream(h: Arc<Harness>) -> TestResult {
    let f = py_function(&h, "persist")?;
    let req = request(&f, "{}", false);
    let id = req.request_id.clone();
    h.engine.invoke(req).await.map_err(|e| format!("{e:?}"))?;
    h.engine.flush_logs().await;
    let streams = h
        .engine
        .log_streams(&f.account, &f.region, &f.function_name)
        .map_err(|e| e.to_string())?;
    check!(streams.len() == 1, "one stream: {streams:?}");
    check!(
        streams[0].name.contains("/[$LATEST]"),
        "stream name {}",
        streams[0].name
    );
    let text = std::fs::read_to_string(&streams[0].path).map_err(|e| e.to_string())?;
    check!(
        text.contains("init done") && text.contains(&format!("END RequestId: {id}")),
        "{text}"
    );
    check!(
        streams[0]
            .path
            .starts_with(h.engine.log_dir(&f.account, &f.region, &f.function_name)),
        "under log_dir"
    );
    Ok(())
}

async fn retire_stops_idle_environments(h: Arc<Harness>) -> TestResult {
    let f = py_function(&h, "retire")?;
    let first = invoke(&h, &f, "{}").await?;
    check!(h.engine.environment_count() == 1, "one environment");
    h.engine.retire(&f.snapshot_id);
    wait_for(|| h.engine.environment_count() == 0, Duration::from_secs(3)).await?;
    let next = invoke(&h, &f, "{}").await?;
    check!(
        json(&next.payload)["token"] != json(&first.payload)["token"],
        "a new environment after retire"
    );
    Ok(())
}

async fn out_of_memory_is_runtime_out_of_memory(h: Arc<Harness>) -> TestResult {
    let f = py_function(&h, "oom")?;
    let req = request(&f, r#"{"action":"oom"}"#, true);
    let id = req.request_id.clone();
    let r = h.engine.invoke(req).await.map_err(|e| format!("{e:?}"))?;
    check!(
        r.function_error.as_deref() == Some("Unhandled"),
        "{}",
        show(&r)
    );
    let v = json(&r.payload);
    check!(v["errorType"] == "Runtime.OutOfMemory", "{}", show(&r));
    check!(
        v["errorMessage"]
            == format!("RequestId: {id} Error: Runtime exited with error: signal: killed"),
        "{}",
        show(&r)
    );
    check!(
        tail(&r).contains("Max Memory Used: 128 MB"),
        "peak at the limit: {}",
        show(&r)
    );
    Ok(())
}

async fn account_concurrency_limit_throttles(h: Arc<Harness>) -> TestResult {
    h.engine.shutdown().await;
    let mut cfg = config(&h.path().join("limit"), Duration::from_secs(60));
    cfg.account_concurrency = 1;
    let engine =
        Engine::new(cfg, h.sandboxes.clone(), h.runtimes.clone()).map_err(|e| e.to_string())?;
    let f = py_function(&h, "limited")?;
    let gate = Gate::new().await?;
    let slow = engine.invoke(request(&f, &gate.hold(), false));
    let second = async {
        let _held = gate.arrival().await?;
        Ok::<_, String>(engine.invoke(request(&f, "{}", false)).await)
    };
    let (slow, second) = tokio::join!(slow, second);
    let second = second?;
    let ok = slow.map(|r| r.function_error.is_none()).unwrap_or(false);
    let throttled = matches!(
        second,
        Err(InvokeError::Throttled {
            reason: ThrottleReason::ConcurrentInvocationLimitExceeded
        })
    );
    engine.shutdown().await;
    check!(ok, "the first invoke runs");
    check!(
        throttled,
        "the second is throttled: {:?}",
        second.map(|r| show(&r))
    );
    Ok(())
}

async fn layers_are_merged_at_opt_with_later_layers_winning(h: Arc<Harness>) -> TestResult {
    let layer = |name: &str, x: &str, bootstrap: bool| -> Result<PathBuf, String> {
        let dir = h.path().join("layers").join(name);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("x.txt"), x).map_err(|e| e.to_string())?;
        std::fs::write(dir.join(format!("{name}.txt")), name).map_err(|e| e.to_string())?;
        if bootstrap {
            write_exec(&dir.join("bootstrap"), PY_BOOTSTRAP.as_bytes())
                .map_err(|e| e.to_string())?;
        }
        Ok(dir)
    };
    let mut s = spec("layered", code_dir(&h, "layered", None)?);
    s.layer_dirs = vec![
        layer("one", "from one", true)?,
        layer("two", "from two", false)?,
    ];
    let f = Arc::new(s);
    let r = invoke(&h, &f, r#"{"action":"opt"}"#).await?;
    check!(
        r.function_error.is_none(),
        "the layer's bootstrap runs: {}",
        show(&r)
    );
    let v = json(&r.payload);
    check!(v["x"] == "from two", "later layer wins: {v}");
    check!(
        v["files"] == serde_json::json!(["bootstrap", "one.txt", "two.txt", "x.txt"]),
        "{v}"
    );
    Ok(())
}

async fn idle_environments_are_reaped(h: Arc<Harness>) -> TestResult {
    h.engine.shutdown().await;
    let engine = Engine::new(
        config(&h.path().join("reap"), Duration::from_millis(300)),
        h.sandboxes.clone(),
        h.runtimes.clone(),
    )
    .map_err(|e| e.to_string())?;
    let f = py_function(&h, "reap")?;
    engine
        .invoke(request(&f, "{}", false))
        .await
        .map_err(|e| format!("{e:?}"))?;
    check!(engine.environment_count() == 1, "one environment");
    wait_for(|| engine.environment_count() == 0, Duration::from_secs(3)).await?;
    engine.shutdown().await;
    Ok(())
}

/// An STS stand-in: a new session per call, expiring 2.4 s later (environments then lapse after
/// 1.2 s: half the time left, as under five minutes).
struct ShortSessions(std::sync::atomic::AtomicU32);

impl flint_engine::RoleCredentials for ShortSessions {
    fn assume<'a>(
        &'a self,
        role_arn: &'a str,
        session_name: &'a str,
        _region: &'a str,
    ) -> flint_engine::RoleFuture<'a> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            Ok(flint_engine::RoleSession {
                access_key_id: format!("ASIASTUB{n}"),
                secret_access_key: format!("secret of {role_arn} as {session_name}"),
                session_token: format!("token{n}"),
                expiration: Some(std::time::SystemTime::now() + Duration::from_millis(2400)),
            })
        })
    }
}

async fn role_sessions_are_per_environment_and_not_reused_past_their_expiry(
    h: Arc<Harness>,
) -> TestResult {
    h.engine
        .set_role_credentials(Arc::new(ShortSessions(std::sync::atomic::AtomicU32::new(
            0,
        ))));
    let mut s = spec("role", code_dir(&h, "role", Some(PY_BOOTSTRAP.as_bytes()))?);
    s.role = "arn:aws:iam::000000000000:role/exec".into();
    let f = Arc::new(s);
    let key_of = |r: &InvokeResponse| json(&r.payload)["env"]["AWS_ACCESS_KEY_ID"].clone();
    let first = invoke(&h, &f, r#"{"action":"env"}"#).await?;
    check!(
        key_of(&first) == "ASIASTUB0",
        "the session's key: {}",
        show(&first)
    );
    check!(
        json(&first.payload)["env"]["AWS_SESSION_TOKEN"] == "token0",
        "{}",
        show(&first)
    );
    let issued = h.engine.issued_credentials();
    check!(
        issued
            .get("ASIASTUB0")
            .is_some_and(|i| i.account == "000000000000"
                && i.secret_access_key == "secret of arn:aws:iam::000000000000:role/exec as role"),
        "Flint's API knows the session as the function's account"
    );
    let warm = invoke(&h, &f, r#"{"action":"env"}"#).await?;
    check!(
        key_of(&warm) == "ASIASTUB0",
        "reused while valid: {}",
        show(&warm)
    );
    // Past the point where the session is too close to its expiry: a new environment, a new
    // session, and the old one stopped (its keys forgotten).
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let later = invoke(&h, &f, r#"{"action":"env"}"#).await?;
    check!(
        key_of(&later) == "ASIASTUB1",
        "a fresh session: {}",
        show(&later)
    );
    wait_for(
        || issued.get("ASIASTUB0").is_none() && h.engine.environment_count() == 1,
        Duration::from_secs(5),
    )
    .await
}

async fn runtime_sees_lambdas_environment_and_headers(h: Arc<Harness>) -> TestResult {
    let mut s = spec("env", code_dir(&h, "env", Some(PY_BOOTSTRAP.as_bytes()))?);
    s.environment.insert("MY_VAR".into(), "mine".into());
    s.environment
        .insert("AWS_REGION".into(), "not-allowed".into());
    s.memory_mb = 256;
    let f = Arc::new(s);
    let mut req = request(&f, r#"{"action":"env"}"#, false);
    req.invoked_arn = format!("{}:prod", f.function_arn);
    req.client_context =
        Some(base64::engine::general_purpose::STANDARD.encode(r#"{"custom":{"a":"b"}}"#));
    let id = req.request_id.clone();
    let r = h.engine.invoke(req).await.map_err(|e| format!("{e:?}"))?;
    let v = json(&r.payload);
    let env = &v["env"];
    check!(env["AWS_LAMBDA_FUNCTION_NAME"] == "env", "{v}");
    check!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256", "{v}");
    check!(env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST", "{v}");
    check!(
        env["AWS_REGION"] == "us-east-1",
        "reserved variables win: {v}"
    );
    check!(env["MY_VAR"] == "mine", "{v}");
    check!(
        env["LAMBDA_TASK_ROOT"] == "/var/task" && env["_HANDLER"] == "handler",
        "{v}"
    );
    check!(env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/env", "{v}");
    check!(
        env["AWS_LAMBDA_LOG_STREAM_NAME"]
            .as_str()
            .is_some_and(|s| s.contains("/[$LATEST]")),
        "{v}"
    );
    check!(
        env["AWS_ACCESS_KEY_ID"]
            .as_str()
            .is_some_and(|s| s.starts_with("ASIA")),
        "{v}"
    );
    check!(env["TZ"] == ":UTC", "{v}");
    check!(v["cwd"] == "/var/task", "{v}");
    let headers = &v["headers"];
    check!(
        headers["lambda-runtime-aws-request-id"] == id.as_str(),
        "{v}"
    );
    check!(
        headers["lambda-runtime-invoked-function-arn"]
            == format!("{}:prod", f.function_arn).as_str(),
        "{v}"
    );
    check!(headers["content-type"] == "application/json", "{v}");
    check!(
        headers["lambda-runtime-client-context"] == r#"{"custom":{"a":"b"}}"#,
        "{v}"
    );
    check!(
        headers["lambda-runtime-trace-id"]
            .as_str()
            .is_some_and(|s| s.starts_with("Root=1-")),
        "{v}"
    );
    let deadline: u64 = headers["lambda-runtime-deadline-ms"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    check!(
        deadline > now && deadline <= now + 10_000,
        "deadline {deadline} vs now {now}"
    );
    Ok(())
}

/// The asynchronous data plane (flint-events) over this engine, knowing the one function `f`.
async fn events_for(
    engine: &Arc<Engine>,
    store: &Arc<flint_store::Store>,
    f: &Arc<FunctionSpec>,
) -> Result<Arc<flint_events::Events>, String> {
    let state = flint_spec::FunctionState {
        scope: flint_spec::Scope {
            account: f.account.clone(),
            region: f.region.clone(),
        },
        name: f.function_name.clone(),
        arn: f.function_arn.clone(),
        versions: [(f.version.clone(), f.clone())].into(),
        ..Default::default()
    };
    let feed = flint_spec::feed::ChangeFeed::new();
    let changes = feed.subscribe_with(|| {
        vec![flint_spec::Change::Function {
            scope: state.scope.clone(),
            name: state.name.clone(),
            state: Some(Arc::new(state.clone())),
            retired: Vec::new(),
        }]
    });
    // No destinations here: the connectors are never used.
    let connectors = flint_connectors::Connectors::load(Default::default()).await;
    flint_events::Events::start(
        engine.clone(),
        store.clone(),
        changes,
        feed.subscribe_with(Vec::new),
        Arc::new(connectors),
        flint_events::EventsConfig {
            workers: 4,
            ..flint_events::EventsConfig::for_account_concurrency(1000)
        },
    )
    .map_err(|e| e.to_string())
}

async fn async_event_survives_an_engine_restart(h: Arc<Harness>) -> TestResult {
    let f = py_function(&h, "async")?;
    let store =
        Arc::new(flint_store::Store::open(&h.path().join("data")).map_err(|e| e.to_string())?);
    let events = events_for(&h.engine, &store, &f).await?;
    // The event is still running (held at the gate) when the engine stops.
    let gate = Gate::new().await?;
    let req = request(&f, &gate.hold(), false);
    let id = req.request_id.clone();
    events.enqueue(req).await.map_err(|e| format!("{e:?}"))?;
    check!(
        pending_events(&store)? == 1,
        "stored before enqueue returns"
    );
    let held = gate.arrival().await?;
    check!(held.who == id, "the event is running: {}", held.who);
    events.shutdown();
    h.engine.shutdown().await;
    check!(
        pending_events(&store)? == 1,
        "still pending after an interrupted run"
    );
    drop(held);
    gate.open();

    let engine = Engine::new(
        config(h.path(), Duration::from_secs(60)),
        h.sandboxes.clone(),
        h.runtimes.clone(),
    )
    .map_err(|e| e.to_string())?;
    let events = events_for(&engine, &store, &f).await?;
    let done = wait_for(
        || pending_events(&store).map(|n| n == 0).unwrap_or(false),
        Duration::from_secs(15),
    )
    .await;
    engine.flush_logs().await;
    let mut handled = 0;
    for s in engine
        .log_streams(&f.account, &f.region, &f.function_name)
        .map_err(|e| e.to_string())?
    {
        let text = std::fs::read_to_string(&s.path).unwrap_or_default();
        handled += text.matches(&format!("handling {id} hold")).count();
    }
    events.shutdown();
    engine.shutdown().await;
    done?;
    check!(handled == 2, "the event ran once per engine, got {handled}");
    Ok(())
}

fn pending_events(store: &flint_store::Store) -> Result<usize, String> {
    store
        .list_all(flint_events::ASYNC_EVENT_KIND)
        .map(|d| d.len())
        .map_err(|e| e.to_string())
}

async fn python_function_runs_through_the_managed_runtime(h: Arc<Harness>) -> TestResult {
    if h.runtimes.resolve("python3.12", h.path(), None).is_err() {
        return Err("python3.12 is not resolvable here".into());
    }
    let dir = code_dir(&h, "pyfn", None)?;
    std::fs::write(
        dir.join("app.py"),
        "import os\nprint('module loaded')\ndef handler(event, context):\n    print('in handler', context.aws_request_id)\n    return {'got': event, 'fn': context.function_name}\n",
    )
    .map_err(|e| e.to_string())?;
    let mut s = spec("pyfn", dir);
    s.runtime = "python3.12".into();
    s.handler = "app.handler".into();
    let f = Arc::new(s);
    let req = request(&f, r#"{"k":"v"}"#, true);
    let id = req.request_id.clone();
    let r = h.engine.invoke(req).await.map_err(|e| format!("{e:?}"))?;
    check!(r.function_error.is_none(), "{}", show(&r));
    check!(
        json(&r.payload) == serde_json::json!({"got": {"k": "v"}, "fn": "pyfn"}),
        "{}",
        show(&r)
    );
    check!(
        tail(&r).contains(&format!("in handler {id}")),
        "{}",
        show(&r)
    );
    let warm = invoke(&h, &f, "{}").await?;
    check!(
        warm.function_error.is_none() && !tail(&warm).contains("Init Duration"),
        "{}",
        show(&warm)
    );
    Ok(())
}

async fn node_function_runs_through_the_managed_runtime(h: Arc<Harness>) -> TestResult {
    if h.runtimes.resolve("nodejs20.x", h.path(), None).is_err() {
        return Err("nodejs20.x is not resolvable here".into());
    }
    let dir = code_dir(&h, "nodefn", None)?;
    std::fs::write(
        dir.join("index.mjs"),
        "export const handler = async (event, context) => { console.log('in handler'); return { got: event, fn: context.functionName }; };\n",
    )
    .map_err(|e| e.to_string())?;
    let mut s = spec("nodefn", dir);
    s.runtime = "nodejs20.x".into();
    s.handler = "index.handler".into();
    let f = Arc::new(s);
    let r = invoke(&h, &f, r#"{"k":1}"#).await?;
    check!(r.function_error.is_none(), "{}", show(&r));
    check!(
        json(&r.payload) == serde_json::json!({"got": {"k": 1}, "fn": "nodefn"}),
        "{}",
        show(&r)
    );
    check!(tail(&r).contains("in handler"), "{}", show(&r));
    Ok(())
}

/// Warm invokes against this binary acting as a minimal Rust runtime: what is measured is
/// Flint's own path (engine + Runtime API) plus a few microseconds of the runtime's.
async fn warm_invoke_latency(h: Arc<Harness>) -> TestResult {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = code_dir(&h, "latency", None)?;
    std::fs::copy(&exe, dir.join("bootstrap")).map_err(|e| e.to_string())?;
    let f = Arc::new(spec("latency", dir));
    let r = invoke(&h, &f, r#"{"hello":"world"}"#).await?;
    check!(
        r.function_error.is_none() && r.payload == br#"{"hello":"world"}"#[..],
        "{}",
        show(&r)
    );
    let n: usize = std::env::var("FLINT_LATENCY_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    for _ in 0..200 {
        h.engine
            .invoke(request(&f, r#"{"hello":"world"}"#, false))
            .await
            .map_err(|e| format!("{e:?}"))?;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let req = request(&f, r#"{"hello":"world"}"#, false);
        let t = Instant::now();
        let r = h.engine.invoke(req).await.map_err(|e| format!("{e:?}"))?;
        samples.push(t.elapsed());
        check!(r.function_error.is_none(), "{}", show(&r));
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "    warm invoke latency over {n} invokes: p50 {:.1?} p90 {:.1?} p99 {:.1?} max {:.1?}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        samples[samples.len() - 1]
    );
    check!(
        h.engine.environment_count() == 1,
        "all warm on one environment"
    );
    Ok(())
}

async fn provisioned_environments_are_ready_before_the_first_invoke(h: Arc<Harness>) -> TestResult {
    let f = py_function(&h, "prov")?;
    h.engine.set_provisioned(vec![(f.clone(), 2)]);
    wait_for(
        || {
            h.engine
                .provisioned_allocation(&f.snapshot_id)
                .is_some_and(|s| s.ready == 2)
        },
        Duration::from_secs(10),
    )
    .await?;
    check!(
        h.engine.environment_count() == 2,
        "two environments before any invoke, got {}",
        h.engine.environment_count()
    );
    let r = invoke(&h, &f, r#"{"action":"env"}"#).await?;
    check!(r.function_error.is_none(), "{}", show(&r));
    check!(
        json(&r.payload)["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == "provisioned-concurrency",
        "{}",
        show(&r)
    );
    check!(
        !tail(&r).contains("Init Duration"),
        "a provisioned environment's first invoke has no init: {}",
        show(&r)
    );
    check!(
        !tail(&r).contains("init done"),
        "init output is not part of the invoke's tail: {}",
        show(&r)
    );
    check!(h.engine.environment_count() == 2, "nothing new started");
    // Three at once: two on provisioned environments, the third spills over to a cold start.
    let gate = Gate::new().await?;
    let hold = gate.hold();
    let third = async {
        let held = (gate.arrival().await?, gate.arrival().await?);
        let c = invoke(&h, &f, r#"{"action":"env"}"#).await;
        drop(held);
        c
    };
    let (a, b, c) = tokio::join!(invoke(&h, &f, &hold), invoke(&h, &f, &hold), third);
    let (a, b, c) = (a?, b?, c?);
    check!(
        !tail(&a).contains("Init Duration") && !tail(&b).contains("Init Duration"),
        "{}\n{}",
        show(&a),
        show(&b)
    );
    check!(
        tail(&c).contains("Init Duration")
            && json(&c.payload)["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand",
        "the spill-over is an on-demand cold start: {}",
        show(&c)
    );
    check!(
        h.engine.environment_count() == 3,
        "two provisioned, one on demand"
    );
    Ok(())
}

async fn provisioned_environments_are_kept_idle_and_replaced_when_they_die(
    h: Arc<Harness>,
) -> TestResult {
    h.engine.shutdown().await;
    let engine = Engine::new(
        config(&h.path().join("prov-idle"), Duration::from_millis(200)),
        h.sandboxes.clone(),
        h.runtimes.clone(),
    )
    .map_err(|e| e.to_string())?;
    let result = async {
        let f = py_function(&h, "prov-idle")?;
        engine.set_provisioned(vec![(f.clone(), 1)]);
        let ready = || {
            engine
                .provisioned_allocation(&f.snapshot_id)
                .is_some_and(|s| s.ready == 1)
        };
        wait_for(ready, Duration::from_secs(10)).await?;
        let first = engine
            .invoke(request(&f, "{}", false))
            .await
            .map_err(|e| format!("{e:?}"))?;
        // Idle beyond the idle timeout: an on-demand environment idle since after it is reaped,
        // the provisioned one is still there.
        let on_demand = py_function(&h, "on-demand")?;
        engine
            .invoke(request(&on_demand, "{}", false))
            .await
            .map_err(|e| format!("{e:?}"))?;
        check!(engine.environment_count() == 2, "one of each");
        wait_for(|| engine.environment_count() < 2, Duration::from_secs(10))
            .await
            .map_err(|e| format!("the on-demand environment is not reaped: {e}"))?;
        check!(
            engine.environment_count() == 1,
            "the provisioned environment is not reaped"
        );
        let again = engine
            .invoke(request(&f, "{}", false))
            .await
            .map_err(|e| format!("{e:?}"))?;
        check!(
            json(&again.payload)["token"] == json(&first.payload)["token"],
            "the same environment"
        );
        // It dies: a fresh one replaces it without any invoke asking.
        let died = engine
            .invoke(request(&f, r#"{"action":"exit","code":3}"#, false))
            .await
            .map_err(|e| format!("{e:?}"))?;
        check!(died.function_error.is_some(), "the exit is an error");
        wait_for(ready, Duration::from_secs(10)).await?;
        check!(engine.environment_count() == 1, "replaced");
        let replaced = engine
            .invoke(request(&f, "{}", true))
            .await
            .map_err(|e| format!("{e:?}"))?;
        check!(
            json(&replaced.payload)["token"] != json(&first.payload)["token"]
                && !tail(&replaced).contains("Init Duration"),
            "a new provisioned environment: {}",
            show(&replaced)
        );
        Ok(())
    }
    .await;
    engine.shutdown().await;
    result
}

async fn set_provisioned_to_zero_or_retire_stops_them(h: Arc<Harness>) -> TestResult {
    let f = py_function(&h, "prov-stop")?;
    h.engine.set_provisioned(vec![(f.clone(), 2)]);
    wait_for(
        || h.engine.environment_count() == 2,
        Duration::from_secs(10),
    )
    .await?;
    h.engine.set_provisioned(vec![(f.clone(), 1)]);
    wait_for(|| h.engine.environment_count() == 1, Duration::from_secs(3)).await?;
    h.engine.set_provisioned(vec![]);
    wait_for(|| h.engine.environment_count() == 0, Duration::from_secs(3)).await?;
    check!(
        h.engine.provisioned_allocation(&f.snapshot_id).is_none(),
        "no target left"
    );
    // Retiring the snapshot stops its provisioned environments, and a late set_provisioned of
    // the retired snapshot does not bring them back.
    let g = py_function(&h, "prov-retire")?;
    h.engine.set_provisioned(vec![(g.clone(), 1)]);
    wait_for(
        || h.engine.environment_count() == 1,
        Duration::from_secs(10),
    )
    .await?;
    h.engine.retire(&g.snapshot_id);
    wait_for(|| h.engine.environment_count() == 0, Duration::from_secs(3)).await?;
    // Set along with another function's: the provisioner brings that one up, not the retired.
    let k = py_function(&h, "prov-after-retire")?;
    h.engine
        .set_provisioned(vec![(g.clone(), 1), (k.clone(), 1)]);
    wait_for(
        || {
            h.engine
                .provisioned_allocation(&k.snapshot_id)
                .is_some_and(|s| s.ready == 1)
        },
        Duration::from_secs(10),
    )
    .await?;
    check!(
        h.engine.environment_count() == 1
            && h.engine.provisioned_allocation(&g.snapshot_id).is_none(),
        "nothing restarted for a retired snapshot: {} environments, {:?}",
        h.engine.environment_count(),
        h.engine.provisioned_allocation(&g.snapshot_id)
    );
    Ok(())
}

async fn failing_provisioned_init_is_reported_and_retried_with_backoff(
    h: Arc<Harness>,
) -> TestResult {
    let mut s = spec(
        "prov-fail",
        code_dir(&h, "prov-fail", Some(PY_BOOTSTRAP.as_bytes()))?,
    );
    s.environment.insert("INIT_ACTION".into(), "fail".into());
    // Each init attempt passes the gate, which notes when.
    let gate = Gate::new().await?;
    s.environment.insert("INIT_GATE".into(), gate.addr.clone());
    let f = Arc::new(s);
    h.engine.set_provisioned(vec![(f.clone(), 1)]);
    let mut attempts = Vec::new();
    for _ in 0..3 {
        attempts.push(gate.arrival().await?.at);
    }
    gate.open();
    wait_for(
        || {
            h.engine
                .provisioned_allocation(&f.snapshot_id)
                .is_some_and(|s| s.init_failure.is_some())
        },
        Duration::from_secs(10),
    )
    .await?;
    let status = h.engine.provisioned_allocation(&f.snapshot_id);
    check!(
        status.as_ref().is_some_and(|s| s.ready == 0
            && s.requested == 1
            && s.init_failure
                .as_deref()
                .is_some_and(|e| e.contains("Runtime.Custom"))),
        "{status:?}"
    );
    // Backing off (1 s, then 2 s): not a start every reconcile.
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    check!(
        gaps[0] >= Duration::from_secs(1) && gaps[1] >= Duration::from_secs(2),
        "init attempts {gaps:?} apart"
    );
    wait_for_log(&h.engine, &f, "init is failing", 3, Duration::from_secs(5)).await?;
    // An invoke meanwhile gets the init error itself, on demand.
    let r = invoke(&h, &f, "{}").await?;
    check!(
        json(&r.payload)["errorType"] == "Runtime.Custom",
        "{}",
        show(&r)
    );
    Ok(())
}

async fn provisioned_concurrency_is_carved_out_of_the_unreserved_pool(
    h: Arc<Harness>,
) -> TestResult {
    h.engine.shutdown().await;
    let mut cfg = config(&h.path().join("prov-pool"), Duration::from_secs(60));
    cfg.account_concurrency = 2;
    let engine =
        Engine::new(cfg, h.sandboxes.clone(), h.runtimes.clone()).map_err(|e| e.to_string())?;
    let result = async {
        let f = py_function(&h, "prov-pool")?;
        engine.set_provisioned(vec![(f.clone(), 1)]);
        wait_for(
            || {
                engine
                    .provisioned_allocation(&f.snapshot_id)
                    .is_some_and(|s| s.ready == 1)
            },
            Duration::from_secs(10),
        )
        .await?;
        // One slot left for on-demand invokes: the provisioned one plus one more run, a third
        // is throttled.
        let gate = Gate::new().await?;
        let third = async {
            let _held = (gate.arrival().await?, gate.arrival().await?);
            Ok::<_, String>(engine.invoke(request(&f, "{}", false)).await)
        };
        let (a, b, c) = tokio::join!(
            engine.invoke(request(&f, &gate.hold(), false)),
            engine.invoke(request(&f, &gate.hold(), false)),
            third
        );
        let c = c?;
        check!(
            a.is_ok_and(|r| r.function_error.is_none())
                && b.is_ok_and(|r| r.function_error.is_none()),
            "provisioned + one unreserved slot run"
        );
        check!(
            matches!(
                c,
                Err(InvokeError::Throttled {
                    reason: ThrottleReason::ConcurrentInvocationLimitExceeded
                })
            ),
            "the third is throttled: {:?}",
            c.map(|r| show(&r))
        );
        Ok(())
    }
    .await;
    engine.shutdown().await;
    result
}

async fn reservations_shrink_the_unreserved_pool(h: Arc<Harness>) -> TestResult {
    h.engine.shutdown().await;
    let mut cfg = config(&h.path().join("unreserved"), Duration::from_secs(60));
    cfg.account_concurrency = 3;
    let engine =
        Engine::new(cfg, h.sandboxes.clone(), h.runtimes.clone()).map_err(|e| e.to_string())?;
    let result = async {
        let mut s = spec(
            "reserving",
            code_dir(&h, "reserving", Some(PY_BOOTSTRAP.as_bytes()))?,
        );
        s.reserved_concurrency = Some(2);
        let reserving = Arc::new(s);
        engine
            .invoke(request(&reserving, "{}", false))
            .await
            .map_err(|e| format!("{e:?}"))?;
        // 3 - 2 reserved = 1 unreserved: a second concurrent invoke of another function is
        // throttled while the reserved function still gets its two.
        let f = py_function(&h, "unreserved")?;
        let gate = Gate::new().await?;
        // While one invoke of each function holds at the gate: another of each.
        let later = async {
            let _held = (gate.arrival().await?, gate.arrival().await?);
            let (b, r2) = tokio::join!(
                engine.invoke(request(&f, "{}", false)),
                engine.invoke(request(&reserving, "{}", false)),
            );
            Ok::<_, String>((b, r2))
        };
        let (a, r1, later) = tokio::join!(
            engine.invoke(request(&f, &gate.hold(), false)),
            engine.invoke(request(&reserving, &gate.hold(), false)),
            later,
        );
        let (b, r2) = later?;
        check!(a.is_ok_and(|r| r.function_error.is_none()), "first runs");
        check!(
            matches!(
                b,
                Err(InvokeError::Throttled {
                    reason: ThrottleReason::ConcurrentInvocationLimitExceeded
                })
            ),
            "the unreserved pool is 1: {:?}",
            b.map(|r| show(&r))
        );
        check!(
            r1.is_ok_and(|r| r.function_error.is_none())
                && r2.is_ok_and(|r| r.function_error.is_none()),
            "the reserved function keeps its guarantee"
        );
        // The control plane's figure replaces the engine's own estimate.
        engine.set_unreserved_concurrency(&f.account, &f.region, 2);
        let later = async {
            let _held = gate.arrival().await?;
            Ok::<_, String>(engine.invoke(request(&f, "{}", false)).await)
        };
        let (a, b) = tokio::join!(engine.invoke(request(&f, &gate.hold(), false)), later);
        let b = b?;
        check!(
            a.is_ok() && b.is_ok(),
            "two unreserved slots once told: {:?}",
            b.map(|r| show(&r))
        );
        Ok(())
    }
    .await;
    engine.shutdown().await;
    result
}

async fn a_caller_that_stops_waiting_does_not_lose_the_environment(h: Arc<Harness>) -> TestResult {
    let f = py_function(&h, "abandoned")?;
    let first = invoke(&h, &f, "{}").await?;
    // The caller goes away mid-invoke (a client disconnect drops the invoke future).
    let gate = Gate::new().await?;
    let req = request(&f, &gate.hold(), false);
    let id = req.request_id.clone();
    let held = tokio::select! {
        r = h.engine.invoke(req) => return Err(format!("the held invoke ended: {:?}", r.map(|r| show(&r)))),
        held = gate.arrival() => held?,
    };
    drop(held);
    // It runs to its end meanwhile: its REPORT is written just before the environment goes back.
    wait_for_log(
        &h.engine,
        &f,
        &format!("REPORT RequestId: {id}"),
        1,
        Duration::from_secs(10),
    )
    .await?;
    let next = invoke(&h, &f, "{}").await?;
    check!(
        json(&next.payload)["token"] == json(&first.payload)["token"]
            && h.engine.environment_count() == 1,
        "the environment went back to its pool: {} ({} environments)",
        show(&next),
        h.engine.environment_count()
    );
    // The abandoned invocation ran to its end, and its log says so.
    let text = log_text(&h.engine, &f).await?;
    check!(
        text.contains(&format!("END RequestId: {id}"))
            && text.contains(&format!("REPORT RequestId: {id}")),
        "{text}"
    );

    // Gone during a cold start: the environment finishes its init and stays warm.
    let mut s = spec(
        "abandoned-cold",
        code_dir(&h, "abandoned-cold", Some(PY_BOOTSTRAP.as_bytes()))?,
    );
    s.environment.insert("INIT_GATE".into(), gate.addr.clone());
    let g = Arc::new(s);
    let held = tokio::select! {
        r = h.engine.invoke(request(&g, "{}", false)) => return Err(format!("the invoke ended during a held init: {:?}", r.map(|r| show(&r)))),
        held = gate.arrival() => held?,
    };
    check!(
        held.who == "init",
        "the caller gave up during init: {}",
        held.who
    );
    drop(held);
    // The init finishes in the background ("init done" is its last word before it asks for
    // an event) and the environment joins the pool.
    wait_for_log(&h.engine, &g, "init done", 1, Duration::from_secs(10)).await?;
    let warm = invoke(&h, &g, "{}").await?;
    check!(
        warm.function_error.is_none() && !tail(&warm).contains("Init Duration"),
        "the initialised environment is reused: {}",
        show(&warm)
    );
    check!(
        h.engine.environment_count() == 2,
        "no environment lost or added: {}",
        h.engine.environment_count()
    );
    Ok(())
}

/// Processes whose environment holds `marker` (the function's own variable).
fn processes_with(marker: &str) -> Vec<u32> {
    let needle = marker.as_bytes();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(environ) = std::fs::read(entry.path().join("environ")) {
            if environ.split(|&b| b == 0).any(|v| v == needle) {
                out.push(pid);
            }
        }
    }
    out
}

/// The v1 cgroup dirs of a process that belong to a sandbox (`flint-sandboxes/...`).
fn sandbox_cgroups(pid: u32) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let controller = controllers
                .split(',')
                .find(|c| matches!(*c, "memory" | "pids" | "cpu"))?;
            path.contains("flint-sandboxes")
                .then(|| PathBuf::from(format!("/sys/fs/cgroup/{controller}{path}")))
        })
        .filter(|p| p.exists())
        .collect()
}

/// This process's children that are sandbox supervisors.
fn sandbox_children() -> Vec<u32> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let is_child = status
            .lines()
            .any(|l| l.strip_prefix("PPid:").map(str::trim) == Some(me.as_str()));
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if is_child && String::from_utf8_lossy(&cmdline).contains(flint_sandbox::INIT_ARG) {
            out.push(pid);
        }
    }
    out
}

/// Starts a long invoke of a function tagged with a unique variable, shuts the engine down and
/// checks how long that took and that nothing is left.
async fn shutdown_with_a_busy_environment(
    h: &Harness,
    name: &str,
    ignore_sigterm: bool,
) -> Result<Duration, String> {
    let mut s = spec(name, code_dir(h, name, Some(PY_BOOTSTRAP.as_bytes()))?);
    let marker = format!("FLINT_TEST_MARKER={}", uuid::Uuid::new_v4());
    if let Some((k, v)) = marker.split_once('=') {
        s.environment.insert(k.into(), v.into());
    }
    if ignore_sigterm {
        s.environment.insert("IGNORE_SIGTERM".into(), "1".into());
    }
    s.timeout_secs = 60;
    let f = Arc::new(s);
    let engine = h.engine.clone();
    // Held at the gate (and so past any signal set-up) until the shutdown is over.
    let gate = Gate::new().await?;
    let busy = tokio::spawn({
        let (f, event) = (f.clone(), gate.hold());
        async move { engine.invoke(request(&f, &event, false)).await }
    });
    let _held = gate.arrival().await?;
    check!(
        !processes_with(&marker).is_empty(),
        "the function's processes are found"
    );
    check!(
        !sandbox_children().is_empty(),
        "a sandbox supervisor is running"
    );
    let cgroups: Vec<PathBuf> = processes_with(&marker)
        .into_iter()
        .flat_map(sandbox_cgroups)
        .collect();
    check!(!cgroups.is_empty(), "the function runs in its own cgroups");
    let started = Instant::now();
    h.engine.shutdown().await;
    let took = started.elapsed();
    let answer = tokio::time::timeout(Duration::from_secs(2), busy)
        .await
        .map_err(|_| "the busy invoke did not return".to_string())?
        .map_err(|e| e.to_string())?;
    check!(
        answer.as_ref().is_ok_and(|r| r.function_error.is_some()),
        "the interrupted invoke ends with an error: {:?}",
        answer.map(|r| show(&r))
    );
    check!(
        processes_with(&marker).is_empty(),
        "the function's processes are gone: {:?}",
        processes_with(&marker)
    );
    check!(
        sandbox_children().is_empty(),
        "no sandbox supervisor left: {:?}",
        sandbox_children()
    );
    check!(h.engine.environment_count() == 0, "no environment left");
    wait_for(
        || cgroups.iter().all(|c| !c.exists()),
        Duration::from_secs(3),
    )
    .await
    .map_err(|e| format!("cgroups left: {cgroups:?}: {e}"))?;
    let envs = h.path().join("work").join("envs");
    wait_for(
        || std::fs::read_dir(&envs).is_ok_and(|mut d| d.next().is_none()),
        Duration::from_secs(2),
    )
    .await
    .map_err(|e| format!("scratch dirs left in {}: {e}", envs.display()))?;
    Ok(took)
}

async fn shutdown_terminates_a_busy_environment_and_leaves_no_processes(
    h: Arc<Harness>,
) -> TestResult {
    let took = shutdown_with_a_busy_environment(&h, "busy", false).await?;
    println!("    shutdown with a busy environment took {took:.1?}");
    check!(
        took < Duration::from_millis(1500),
        "SIGTERM ends it well within the grace period: {took:?}"
    );
    Ok(())
}

async fn shutdown_kills_a_runtime_that_ignores_sigterm_after_the_grace_period(
    h: Arc<Harness>,
) -> TestResult {
    let took = shutdown_with_a_busy_environment(&h, "stubborn", true).await?;
    println!("    shutdown with a runtime ignoring SIGTERM took {took:.1?}");
    check!(
        took >= flint_engine::SHUTDOWN_GRACE && took < Duration::from_secs(3),
        "killed after the grace period: {took:?}"
    );
    Ok(())
}

async fn wait_for(mut cond: impl FnMut() -> bool, limit: Duration) -> TestResult {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if cond() {
        Ok(())
    } else {
        Err(format!("condition not met within {limit:?}"))
    }
}

/// A minimal Runtime API client over one keep-alive connection: echoes each event.
fn rust_bootstrap() -> ! {
    let code = match bootstrap_loop() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("bootstrap: {e}");
            1
        }
    };
    std::process::exit(code)
}

fn bootstrap_loop() -> std::io::Result<()> {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").map_err(std::io::Error::other)?;
    let stream = std::net::TcpStream::connect(&api)?;
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        writer
            .write_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: rt\r\n\r\n")?;
        let (headers, body) = read_response(&mut reader)?;
        let id = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("lambda-runtime-aws-request-id"))
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let head = format!(
            "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: rt\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut out = head.into_bytes();
        out.extend_from_slice(&body);
        writer.write_all(&out)?;
        read_response(&mut reader)?;
    }
}

type Headers = Vec<(String, String)>;

fn read_response(r: &mut impl BufRead) -> std::io::Result<(Headers, Vec<u8>)> {
    let mut line = String::new();
    let mut headers = Vec::new();
    let mut len = 0usize;
    r.read_line(&mut line)?;
    if line.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim().to_string();
            if k.eq_ignore_ascii_case("content-length") {
                len = v.parse().unwrap_or(0);
            }
            headers.push((k.to_string(), v));
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok((headers, body))
}
