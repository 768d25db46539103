//! What both benchmarks need: a real `flint serve` on a free port (stopped with SIGTERM), an AWS
//! SDK client to set functions up, and a raw keep-alive HTTP/1.1 invoke with a signature computed
//! once, so that the client's own cost stays out of the numbers.

// Each benchmark is its own crate and uses a part of this module.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};
use bytes::Bytes;
use http_body_util::Full;
use tokio::net::TcpStream;

pub const ACCOUNT: &str = "000000000000";
pub const REGION: &str = "us-east-1";

/// A running `flint serve`; dropping it stops it (SIGTERM, then SIGKILL after `stop_grace`).
pub struct Server {
    child: Child,
    pub port: u16,
    stop_grace: Duration,
    dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + self.stop_grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL (no shutdown of any kind) and hands back its data dir.
    pub fn kill9(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.dir
            .take()
            .expect("the data dir is held until the server is dropped")
    }
}

/// Starts the release `flint serve` with its defaults plus `extra` arguments, on a fresh data dir,
/// logging at `warn` (at `info` it writes one access-log line per request).
pub fn start_server(extra: &[&str], stop_grace: Duration) -> Server {
    start_server_in(extra, stop_grace, tempfile::tempdir().expect("tempdir"))
}

/// As [`start_server`], on the data dir `dir` (e.g. one a killed server left), on a fresh port.
pub fn start_server_in(extra: &[&str], stop_grace: Duration, dir: tempfile::TempDir) -> Server {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let child = Command::new(flint_binary())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start flint");
    // A restart after kill -9 first clears what the killed server left (sandboxes): allow time.
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "flint did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Server {
        child,
        port,
        stop_grace,
        dir: Some(dir),
    }
}

/// A zip of `(name, content, unix mode)`.
pub fn zip_of(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        for (name, data, mode) in files {
            let opts = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
            z.start_file(*name, opts).expect("zip");
            z.write_all(data).expect("zip");
        }
        z.finish().expect("zip");
    }
    buf.into_inner()
}

pub async fn client(port: u16) -> aws_sdk_lambda::Client {
    let creds = aws_sdk_lambda::config::Credentials::new("test", "test", None, None, "bench");
    let conf = aws_sdk_lambda::Config::builder()
        .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
        .region(aws_sdk_lambda::config::Region::new(REGION))
        .credentials_provider(creds)
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_lambda::Client::from_conf(conf)
}

/// CreateFunction (not waiting for it to be Active).
pub async fn create(
    c: &aws_sdk_lambda::Client,
    name: &str,
    runtime: Runtime,
    handler: &str,
    zip: Vec<u8>,
    timeout_secs: i32,
) {
    c.create_function()
        .function_name(name)
        .runtime(runtime)
        .handler(handler)
        .role(format!("arn:aws:iam::{ACCOUNT}:role/bench"))
        .timeout(timeout_secs)
        .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
        .send()
        .await
        .expect("create function");
}

pub async fn wait_active(c: &aws_sdk_lambda::Client, name: &str) {
    for _ in 0..400 {
        let f = c
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .expect("get function");
        if f.state().map(|s| s.as_str()) == Some("Active") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{name} did not become Active");
}

/// A signed invoke request of `body` (signature computed once and reused: the server accepts any
/// well-formed signature when no credentials are configured, and the clock-skew window is
/// minutes).
pub fn invoke_request(port: u16, name: &str, body: &'static [u8]) -> http::Request<Full<Bytes>> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_smithy_runtime_api::client::identity::Identity;
    let body = Bytes::from_static(body);
    let uri = format!("http://127.0.0.1:{port}/2015-03-31/functions/{name}/invocations");
    let mut req = http::Request::builder()
        .method("POST")
        .uri(&uri)
        .header("host", format!("127.0.0.1:{port}"))
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))
        .expect("request");
    let identity: Identity =
        aws_credential_types::Credentials::new("test", "test", None, None, "bench").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("lambda")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let signable = SignableRequest::new(
        "POST",
        &uri,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(&body),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    instructions.apply_to_request_http1x(&mut req);
    req
}

pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A keep-alive HTTP/1.1 connection to Flint (no Nagle delay).
pub async fn connect(port: u16) -> Result<Sender, String> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// The `p` quantile (0..=1) of sorted durations, in ms (NaN when empty).
pub fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// The `flint` binary under test: this build's, or `FLINT_BENCH_FLINT` (to measure another
/// build, e.g. the previous release, in the same run and on the same machine state).
pub fn flint_binary() -> std::path::PathBuf {
    std::env::var_os("FLINT_BENCH_FLINT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_flint").into())
}
