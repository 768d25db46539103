//! Test support: a small Runtime API 2018-06-01 server (std::net, thread per connection,
//! HTTP/1.1 keep-alive) that hands out queued invocations and records what the runtime posts,
//! and a helper that starts a bootstrap as the sandbox would, with temp dirs for /var/task and
//! /var/runtime.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flint_runtimes::{Launch, RuntimeRegistry};

pub const FUNCTION_NAME: &str = "my-function";
pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:my-function";

#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub body: Vec<u8>,
    /// Extra headers (client context, cognito identity...).
    pub headers: Vec<(String, String)>,
}

impl Invocation {
    pub fn json(request_id: &str, body: &str) -> Self {
        Self {
            request_id: request_id.to_string(),
            body: body.as_bytes().to_vec(),
            headers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostKind {
    Response(String),
    Error(String),
    InitError,
}

#[derive(Debug, Clone)]
pub struct Post {
    pub kind: PostKind,
    /// Lower-cased header names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// Trailers of a chunked body (lower-cased names).
    pub trailers: HashMap<String, String>,
}

impl Post {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Invocation>,
    posts: Vec<Post>,
    connections: usize,
    nexts: usize,
    /// Every chunk of a chunked POST, as it arrived (before the post itself is complete).
    chunks: Vec<Vec<u8>>,
}

struct Shared {
    state: Mutex<State>,
    cv: Condvar,
    /// Send `/next` bodies with `Transfer-Encoding: chunked` (as a streaming server may).
    chunked_next: std::sync::atomic::AtomicBool,
}

pub struct FakeRuntimeApi {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FakeRuntimeApi {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
            chunked_next: std::sync::atomic::AtomicBool::new(false),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                s.state.lock().expect("lock").connections += 1;
                let s = s.clone();
                std::thread::spawn(move || serve_connection(stream, s));
            }
        });
        Self { addr, shared }
    }

    pub fn push(&self, invocation: Invocation) {
        self.shared
            .state
            .lock()
            .expect("lock")
            .queue
            .push_back(invocation);
        self.shared.cv.notify_all();
    }

    /// Waits until at least `n` posts arrived (panics after `timeout`) and returns them all.
    pub fn wait_posts(&self, n: usize, timeout: Duration) -> Vec<Post> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state.lock().expect("lock");
        while state.posts.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {n} posts, got {:?}",
                state.posts
            );
            state = self.shared.cv.wait_timeout(state, left).expect("wait").0;
        }
        state.posts.clone()
    }

    /// Waits until at least `n` chunks of chunked posts arrived (panics after `timeout`) and
    /// returns them all: what a streaming runtime has sent so far.
    pub fn wait_chunks(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state.lock().expect("lock");
        while state.chunks.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {n} chunks, got {:?}",
                state.chunks
            );
            state = self.shared.cv.wait_timeout(state, left).expect("wait").0;
        }
        state.chunks.clone()
    }

    /// How many posts have arrived so far.
    pub fn post_count(&self) -> usize {
        self.shared.state.lock().expect("lock").posts.len()
    }

    pub fn set_chunked_next(&self, on: bool) {
        self.shared
            .chunked_next
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn connections(&self) -> usize {
        self.shared.state.lock().expect("lock").connections
    }

    pub fn nexts(&self) -> usize {
        self.shared.state.lock().expect("lock").nexts
    }
}

fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut writer = write_half;
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let (body, trailers) = if headers
            .get("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            read_chunked(&mut reader, &shared)
        } else {
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            (body, HashMap::new())
        };
        let prefix = "/2018-06-01/runtime/";
        let route = path.strip_prefix(prefix).unwrap_or("");
        let response = if method == "GET" && route == "invocation/next" {
            let invocation = {
                let mut state = shared.state.lock().expect("lock");
                state.nexts += 1;
                shared.cv.notify_all();
                loop {
                    if let Some(i) = state.queue.pop_front() {
                        break i;
                    }
                    state = shared.cv.wait(state).expect("wait");
                }
            };
            next_response(
                &invocation,
                shared
                    .chunked_next
                    .load(std::sync::atomic::Ordering::Relaxed),
            )
        } else if method == "POST" {
            let kind = if route == "init/error" {
                Some(PostKind::InitError)
            } else if let Some(rest) = route.strip_prefix("invocation/") {
                match rest.rsplit_once('/') {
                    Some((id, "response")) => Some(PostKind::Response(id.to_string())),
                    Some((id, "error")) => Some(PostKind::Error(id.to_string())),
                    _ => None,
                }
            } else {
                None
            };
            match kind {
                Some(kind) => {
                    shared.state.lock().expect("lock").posts.push(Post {
                        kind,
                        headers,
                        body,
                        trailers,
                    });
                    shared.cv.notify_all();
                    accepted()
                }
                None => not_found(),
            }
        } else {
            not_found()
        };
        if writer.write_all(&response).is_err() {
            return;
        }
    }
}

/// A chunked body and its trailers; each chunk is recorded in `shared` as it arrives.
fn read_chunked(
    reader: &mut BufReader<TcpStream>,
    shared: &Shared,
) -> (Vec<u8>, HashMap<String, String>) {
    let mut body = Vec::new();
    let mut trailers = HashMap::new();
    loop {
        let mut size = String::new();
        if reader.read_line(&mut size).unwrap_or(0) == 0 {
            return (body, trailers);
        }
        let n =
            usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        if n == 0 {
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return (body, trailers);
                }
                let line = line.trim_end();
                if line.is_empty() {
                    return (body, trailers);
                }
                if let Some((k, v)) = line.split_once(':') {
                    trailers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
        }
        let mut chunk = vec![0; n];
        if reader.read_exact(&mut chunk).is_err() {
            return (body, trailers);
        }
        body.extend_from_slice(&chunk);
        shared.state.lock().expect("lock").chunks.push(chunk);
        shared.cv.notify_all();
        let mut crlf = String::new();
        let _ = reader.read_line(&mut crlf);
    }
}

fn next_response(i: &Invocation, chunked: bool) -> Vec<u8> {
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() + 30_000)
        .unwrap_or(0);
    let mut head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {}\r\n\
         Lambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: {FUNCTION_ARN}\r\n\
         Lambda-Runtime-Trace-Id: Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1\r\n\
         {}\r\n",
        i.request_id,
        if chunked {
            "Transfer-Encoding: chunked".to_string()
        } else {
            format!("Content-Length: {}", i.body.len())
        }
    );
    for (k, v) in &i.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if chunked {
        // Two chunks, so that a reader must join them.
        let (a, b) = i.body.split_at(i.body.len() / 2);
        for part in [a, b] {
            if !part.is_empty() {
                out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                out.extend_from_slice(part);
                out.extend_from_slice(b"\r\n");
            }
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        out.extend_from_slice(&i.body);
    }
    out
}

fn accepted() -> Vec<u8> {
    let body = r#"{"status":"OK"}"#;
    format!(
        "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn not_found() -> Vec<u8> {
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()
}

/// One function environment: the bootstrap process of a runtime, started the way the engine
/// starts it (the `Launch` from the registry), with /var/task and /var/runtime rewritten to
/// temp dirs.
pub struct Function {
    pub api: FakeRuntimeApi,
    pub task: tempfile::TempDir,
    pub runtime_dir: tempfile::TempDir,
    child: Option<Child>,
    spawned_at: Instant,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

/// The registry of this machine, discovered once per test binary.
pub fn registry() -> &'static RuntimeRegistry {
    static REGISTRY: std::sync::OnceLock<RuntimeRegistry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(RuntimeRegistry::discover)
}

/// The launch of `runtime`, or None (test skipped) when this machine cannot run it.
/// `FLINT_TEST_PYTHON` / `FLINT_TEST_NODE` run the suites on another interpreter.
pub fn launch_of(runtime: &str) -> Option<Launch> {
    match registry().resolve(runtime, Path::new("/nonexistent"), None) {
        Ok(mut l) => {
            let var = if runtime.starts_with("python") {
                "FLINT_TEST_PYTHON"
            } else {
                "FLINT_TEST_NODE"
            };
            if let Some(program) = std::env::var_os(var) {
                l.program = PathBuf::from(program);
            }
            Some(l)
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            None
        }
    }
}

impl Function {
    /// Writes `files` (path, content) into a fresh task dir and starts `launch` on it.
    pub fn start(
        launch: &Launch,
        handler: &str,
        files: &[(&str, &str)],
        extra_env: &[(&str, &str)],
    ) -> Self {
        let api = FakeRuntimeApi::start();
        let task = tempfile::tempdir().expect("task dir");
        let runtime_dir = tempfile::tempdir().expect("runtime dir");
        registry()
            .install_bootstraps(runtime_dir.path())
            .expect("install bootstraps");
        for (path, content) in files {
            let p = task.path().join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, content).expect("write");
        }
        let rewrite = |s: &str| -> String {
            s.replace("/var/runtime", &runtime_dir.path().display().to_string())
                .replace("/var/task", &task.path().display().to_string())
        };
        let mut cmd = Command::new(&launch.program);
        cmd.args(launch.args.iter().map(|a| rewrite(a)))
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "en_US.UTF-8")
            .env("TZ", ":UTC")
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .env("_HANDLER", handler)
            .env("LAMBDA_TASK_ROOT", task.path())
            .env("LAMBDA_RUNTIME_DIR", runtime_dir.path())
            .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/my-function")
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2026/11/21/[$LATEST]0123456789abcdef",
            )
            .env("AWS_REGION", "us-east-1")
            .current_dir(task.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &launch.env {
            cmd.env(k, rewrite(v));
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let spawned_at = Instant::now();
        let mut child = cmd.spawn().expect("spawn runtime");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        for (pipe, sink) in [
            (
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
                stdout.clone(),
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
                stderr.clone(),
            ),
        ] {
            if let Some(mut pipe) = pipe {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 8192];
                    loop {
                        match pipe.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => sink
                                .lock()
                                .expect("lock")
                                .push_str(&String::from_utf8_lossy(&buf[..n])),
                        }
                    }
                });
            }
        }
        Self {
            api,
            task,
            runtime_dir,
            child: Some(child),
            spawned_at,
            stdout,
            stderr,
        }
    }

    pub fn task_path(&self) -> PathBuf {
        self.task.path().to_path_buf()
    }

    /// Queues one invocation and waits for what the runtime posts back for it.
    pub fn invoke(&self, request_id: &str, event: &str) -> Post {
        self.invoke_with(Invocation::json(request_id, event))
    }

    pub fn invoke_with(&self, invocation: Invocation) -> Post {
        let before = self.api.wait_posts(0, Duration::from_secs(1)).len();
        self.api.push(invocation);
        let posts = self.api.wait_posts(before + 1, Duration::from_secs(20));
        posts[before].clone()
    }

    /// Time from spawning the runtime to its first `GET /next` (its init, handler loaded).
    pub fn time_to_first_next(&self) -> Duration {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.api.nexts() == 0 {
            assert!(Instant::now() < deadline, "no /next within 20 s");
            std::thread::sleep(Duration::from_micros(200));
        }
        self.spawned_at.elapsed()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().expect("lock").clone()
    }

    /// The runtime's stdout once it contains `needle` (a reader thread collects it, so output
    /// written just before a post may arrive a moment after it), or whatever there is after 5 s.
    pub fn stdout_with(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let out = self.stdout();
            if out.contains(needle) || std::time::Instant::now() > deadline {
                return out;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// CPU time (user + system) the runtime process has used so far, from /proc.
    pub fn cpu_time(&self) -> Duration {
        let Some(child) = self.child.as_ref() else {
            return Duration::ZERO;
        };
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<u64> = rest
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
        // USER_HZ is 100 on Linux.
        Duration::from_millis(ticks * 10)
    }

    /// Waits for the runtime process to exit and returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A "null runtime" in Rust over the same HTTP exchange (next, then post the event back), to
/// tell the fake server's and the test's own share of a round trip from the bootstrap's.
pub fn null_runtime(api: &FakeRuntimeApi) {
    let addr = api.addr;
    std::thread::spawn(move || {
        let Ok(stream) = TcpStream::connect(addr) else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let Ok(mut writer) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        let read_response = |reader: &mut BufReader<TcpStream>| -> Option<(String, Vec<u8>)> {
            let mut request_id = String::new();
            let mut len = 0usize;
            let mut line = String::new();
            reader.read_line(&mut line).ok()?;
            loop {
                line.clear();
                reader.read_line(&mut line).ok()?;
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':') {
                    match k.to_ascii_lowercase().as_str() {
                        "content-length" => len = v.trim().parse().ok()?,
                        "lambda-runtime-aws-request-id" => request_id = v.trim().to_string(),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).ok()?;
            Some((request_id, body))
        };
        loop {
            if writer
                .write_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
                .is_err()
            {
                return;
            }
            let Some((id, body)) = read_response(&mut reader) else {
                return;
            };
            let mut req = format!(
                "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            req.extend_from_slice(&body);
            if writer.write_all(&req).is_err() || read_response(&mut reader).is_none() {
                return;
            }
        }
    });
}
