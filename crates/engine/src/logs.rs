//! Function logs: each environment's stdout/stderr is read continuously, split into lines and
//! attributed to the invocation in progress (for `LogType: Tail`), together with Lambda's platform
//! lines (START/END/REPORT). A background thread appends everything to
//! `logs/<account>/<region>/<function>/<log-stream>.log`, so the hot path never touches the disk.
//! Beside each stream, `<log-stream>.idx` records its log group (first line) and when each batch
//! of lines arrived (`<byte offset> <unix ms>` lines): the CloudWatch Logs API reads events'
//! timestamps from it (crate flint-logs).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::net::unix::pipe;

/// `LogType: Tail` returns this many bytes of the invocation's log.
pub(crate) const TAIL_BYTES: usize = 4096;

/// Lines written by the background writer thread.
enum WriterMsg {
    Append {
        path: Arc<PathBuf>,
        bytes: Bytes,
        /// When the lines were read from the environment (Unix ms).
        at_ms: u64,
        /// The stream's log group (the function's `LoggingConfig.LogGroup`).
        group: Arc<str>,
    },
    Close(Arc<PathBuf>),
    Flush(mpsc::SyncSender<()>),
}

/// Handle to the background thread that persists logs.
/// The thread ends when the last sender (this one and every environment's) is dropped.
pub(crate) struct LogWriter {
    sender: mpsc::Sender<WriterMsg>,
}

impl LogWriter {
    pub(crate) fn start() -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("flint-logs".into())
            .spawn(move || write_loop(rx))?;
        Ok(Self { sender: tx })
    }

    fn sender(&self) -> mpsc::Sender<WriterMsg> {
        self.sender.clone()
    }

    /// Waits until everything sent so far is on disk (bounded, for shutdown and tests).
    pub(crate) fn flush(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.sender.send(WriterMsg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(5));
        }
    }
}

/// How often the writer wakes to write what was queued. Polling (instead of blocking on the
/// channel) means senders never have to wake a parked thread: no syscall on the invoke path.
const WRITE_INTERVAL: Duration = Duration::from_millis(20);

fn write_loop(rx: mpsc::Receiver<WriterMsg>) {
    let mut files: HashMap<Arc<PathBuf>, OpenStream> = HashMap::new();
    let mut failed: std::collections::HashSet<Arc<PathBuf>> = Default::default();
    loop {
        std::thread::sleep(WRITE_INTERVAL);
        let mut acks = Vec::new();
        let mut disconnected = false;
        loop {
            let m = match rx.try_recv() {
                Ok(m) => m,
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    disconnected = true;
                    break;
                }
            };
            match m {
                WriterMsg::Append {
                    path,
                    bytes,
                    at_ms,
                    group,
                } => {
                    if failed.contains(&path) {
                        // Already reported once; don't flood Flint's own log.
                    } else if let Err(e) = append(&mut files, &path, &bytes, at_ms, &group) {
                        tracing::warn!("cannot write function log {}: {e}", path.display());
                        failed.insert(path);
                    }
                }
                WriterMsg::Close(path) => {
                    if let Some(mut f) = files.remove(&path) {
                        let _ = f.file.flush();
                        let _ = f.index.flush();
                    }
                    failed.remove(&path);
                }
                WriterMsg::Flush(ack) => acks.push(ack),
            }
        }
        for f in files.values_mut() {
            let _ = f.file.flush();
            let _ = f.index.flush();
        }
        for ack in acks {
            let _ = ack.send(());
        }
        if disconnected {
            return;
        }
    }
}

/// A log stream (one environment's output) stops growing at this size: Flint's disk is not the
/// function's to fill. What follows is dropped, noted once in the stream.
pub(crate) const MAX_STREAM_BYTES: u64 = 100 * 1024 * 1024;

/// An open log stream file and how much it holds.
struct OpenStream {
    file: BufWriter<File>,
    /// `<log-stream>.idx`: the log group, then `<offset> <unix ms>` per batch.
    index: BufWriter<File>,
    size: u64,
    truncated: bool,
}

fn append(
    files: &mut HashMap<Arc<PathBuf>, OpenStream>,
    path: &Arc<PathBuf>,
    bytes: &[u8],
    at_ms: u64,
    group: &str,
) -> std::io::Result<()> {
    append_capped(files, path, bytes, MAX_STREAM_BYTES, at_ms, group)
}

/// Where a stream's index lives: beside it, `.idx` for `.log`.
pub(crate) fn index_path(stream: &Path) -> PathBuf {
    stream.with_extension("idx")
}

fn append_capped(
    files: &mut HashMap<Arc<PathBuf>, OpenStream>,
    path: &Arc<PathBuf>,
    bytes: &[u8],
    cap: u64,
    at_ms: u64,
    group: &str,
) -> std::io::Result<()> {
    if !files.contains_key(path) {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path.as_path())?;
        let size = f.metadata().map(|m| m.len()).unwrap_or(0);
        let idx = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(index_path(path))?;
        let mut index = BufWriter::new(idx);
        if index.get_ref().metadata().map(|m| m.len()).unwrap_or(0) == 0 {
            writeln!(index, "{group}")?;
        }
        files.insert(
            path.clone(),
            OpenStream {
                file: BufWriter::new(f),
                index,
                size,
                truncated: false,
            },
        );
    }
    let Some(s) = files.get_mut(path) else {
        return Ok(());
    };
    if s.truncated {
        return Ok(());
    }
    if s.size.saturating_add(bytes.len() as u64) > cap {
        s.truncated = true;
        return writeln!(
            s.file,
            "[flint] log stream truncated: it reached {cap} bytes; later output is dropped"
        );
    }
    writeln!(s.index, "{} {at_ms}", s.size)?;
    s.size += bytes.len() as u64;
    s.file.write_all(bytes)
}

/// `YYYY/MM/DD/[<version>]<32 hex>`, as Lambda names an environment's log stream.
pub(crate) fn log_stream_name(version: &str) -> String {
    let id: u128 = rand::random();
    format!(
        "{}/[{}]{:032x}",
        chrono::Utc::now().format("%Y/%m/%d"),
        version,
        id
    )
}

/// Where a log stream's file lives under a function's log dir.
pub(crate) fn stream_path(function_dir: &Path, stream: &str) -> PathBuf {
    function_dir.join(format!("{stream}.log"))
}

/// The two output pipes of an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// One environment's log: its pipes, the partial lines read so far, and the tail buffer of the
/// invocation in progress.
pub(crate) struct EnvLog {
    path: Arc<PathBuf>,
    /// The log group its stream belongs to (recorded in the stream's index).
    group: Arc<str>,
    writer: mpsc::Sender<WriterMsg>,
    json: bool,
    stdout: Option<pipe::Receiver>,
    stderr: Option<pipe::Receiver>,
    capture: Mutex<Capture>,
    /// Where the function's lines go as `function` telemetry events (when subscribed).
    telemetry: Option<flint_runtime_api::TelemetrySink>,
    /// External extensions run: their output lines arrive tagged (see `extensions::TAG`).
    tagged: bool,
}

#[derive(Default)]
struct Capture {
    partial: [Vec<u8>; 2],
    eof: [bool; 2],
    /// Bytes of the current invocation's log, when its caller asked for the tail.
    tail: Option<Vec<u8>>,
    /// Lines not yet handed to the writer (sent once per read batch or invocation).
    pending: Vec<u8>,
}

impl EnvLog {
    /// The stream file this environment writes.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn new(
        writer: &LogWriter,
        path: PathBuf,
        json: bool,
        stdout: Option<pipe::Receiver>,
        stderr: Option<pipe::Receiver>,
        capture_tail: bool,
        init_start: String,
    ) -> Self {
        // INIT_START goes to the stream only: Lambda's log tail starts at the invoke's START.
        let capture = Capture {
            tail: capture_tail.then(Vec::new),
            pending: init_start.into_bytes(),
            ..Capture::default()
        };
        Self {
            path: Arc::new(path),
            group: Arc::from(""),
            writer: writer.sender(),
            json,
            stdout,
            stderr,
            capture: Mutex::new(capture),
            telemetry: None,
            tagged: false,
        }
    }

    /// The stream belongs to this log group (`LoggingConfig.LogGroup`).
    pub(crate) fn with_log_group(mut self, group: &str) -> Self {
        self.group = Arc::from(group);
        self
    }

    /// The environment runs external extensions: lines tagged as theirs are told apart.
    pub(crate) fn with_extensions(mut self) -> Self {
        self.tagged = true;
        self
    }

    /// Also hands the function's lines to the environment's telemetry subscribers.
    pub(crate) fn with_telemetry(mut self, sink: flint_runtime_api::TelemetrySink) -> Self {
        self.telemetry = Some(sink);
        self
    }

    pub(crate) fn is_json(&self) -> bool {
        self.json
    }

    fn pipe(&self, s: Stream) -> Option<&pipe::Receiver> {
        match s {
            Stream::Stdout => self.stdout.as_ref(),
            Stream::Stderr => self.stderr.as_ref(),
        }
    }

    /// Reads one pipe until it ends. Run as a task per pipe.
    pub(crate) async fn pump(self: Arc<Self>, s: Stream) {
        loop {
            let Some(p) = self.pipe(s) else { return };
            if p.readable().await.is_err() {
                return;
            }
            if self.read_available(s, true) {
                return;
            }
        }
    }

    /// Reads what is buffered in the pipe without waiting (handing the lines to the writer when
    /// `send`); true at end of file. Reading happens
    /// under the capture lock so that chunks are processed in order even when the invoke path
    /// drains concurrently with the pump task.
    fn read_available(&self, s: Stream, send: bool) -> bool {
        let Some(p) = self.pipe(s) else { return true };
        let idx = s as usize;
        let mut buf = [0u8; 8192];
        let mut cap = self.capture.lock();
        if cap.eof[idx] {
            return true;
        }
        loop {
            match p.try_read(&mut buf) {
                Ok(0) => {
                    cap.eof[idx] = true;
                    self.flush_partial(&mut cap, idx);
                    self.send_pending(&mut cap);
                    return true;
                }
                Ok(n) => self.accept(&mut cap, idx, &buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if send {
                        self.send_pending(&mut cap);
                    }
                    return false;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    cap.eof[idx] = true;
                    self.flush_partial(&mut cap, idx);
                    self.send_pending(&mut cap);
                    return true;
                }
            }
        }
    }

    /// Complete lines go out; the rest waits for its newline.
    fn accept(&self, cap: &mut Capture, idx: usize, data: &[u8]) {
        let Some(last_nl) = data.iter().rposition(|&b| b == b'\n') else {
            cap.partial[idx].extend_from_slice(data);
            return;
        };
        let (complete, rest) = data.split_at(last_nl + 1);
        if cap.partial[idx].is_empty() {
            self.output(cap, complete);
        } else {
            let mut line = std::mem::take(&mut cap.partial[idx]);
            line.extend_from_slice(complete);
            self.output(cap, &line);
        }
        cap.partial[idx].extend_from_slice(rest);
    }

    fn flush_partial(&self, cap: &mut Capture, idx: usize) {
        if cap.partial[idx].is_empty() {
            return;
        }
        let mut line = std::mem::take(&mut cap.partial[idx]);
        line.push(b'\n');
        self.output(cap, &line);
    }

    /// Complete lines of the environment's output: the function's, and (tagged) its
    /// extensions', which go to the log untagged and to telemetry as `extension` records.
    fn output(&self, cap: &mut Capture, bytes: &[u8]) {
        if !self.tagged || !bytes.contains(&crate::extensions::TAG) {
            self.function_lines(bytes);
            self.emit(cap, bytes);
            return;
        }
        let mut out = Vec::with_capacity(bytes.len());
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            let body = line
                .strip_prefix(&[crate::extensions::TAG])
                .and_then(|rest| {
                    let end = rest.iter().position(|&b| b == crate::extensions::TAG)?;
                    Some(&rest[end + 1..])
                });
            match body {
                Some(body) => {
                    self.extension_line(body);
                    out.extend_from_slice(body);
                }
                None => {
                    self.function_lines(line);
                    out.extend_from_slice(line);
                }
            }
        }
        self.emit(cap, &out);
    }

    fn extension_line(&self, line: &[u8]) {
        use flint_runtime_api::Category;
        let Some(sink) = self
            .telemetry
            .as_ref()
            .filter(|s| s.wants(Category::Extension))
        else {
            return;
        };
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\n');
        sink.emit(
            Category::Extension,
            flint_runtime_api::telemetry_event("extension", serde_json::Value::from(text)),
        );
    }

    /// The function's complete lines, as `function` telemetry events (a JSON-format line's
    /// record is its object, as AWS sends it).
    fn function_lines(&self, bytes: &[u8]) {
        use flint_runtime_api::Category;
        let Some(sink) = self
            .telemetry
            .as_ref()
            .filter(|s| s.wants(Category::Function))
        else {
            return;
        };
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let text = String::from_utf8_lossy(line);
            let record = if self.json {
                serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .filter(serde_json::Value::is_object)
                    .unwrap_or_else(|| serde_json::Value::from(text.as_ref()))
            } else {
                serde_json::Value::from(text.as_ref())
            };
            sink.emit(
                Category::Function,
                flint_runtime_api::telemetry_event("function", record),
            );
        }
    }

    fn emit(&self, cap: &mut Capture, bytes: &[u8]) {
        if let Some(tail) = cap.tail.as_mut() {
            tail.extend_from_slice(bytes);
            // Keep memory bounded for chatty functions: only the last 4 KB is ever returned.
            if tail.len() > 4 * TAIL_BYTES {
                tail.drain(..tail.len() - TAIL_BYTES);
            }
        }
        cap.pending.extend_from_slice(bytes);
    }

    fn send_pending(&self, cap: &mut Capture) {
        if !cap.pending.is_empty() {
            let bytes = Bytes::from(std::mem::take(&mut cap.pending));
            let at_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let _ = self.writer.send(WriterMsg::Append {
                path: self.path.clone(),
                bytes,
                at_ms,
                group: self.group.clone(),
            });
        }
    }

    /// Pulls in whatever the function wrote before answering, so it belongs to this invocation.
    pub(crate) fn drain(&self) {
        // The invocation's lines go to the writer with its END/REPORT, in one message.
        self.read_available(Stream::Stdout, false);
        self.read_available(Stream::Stderr, false);
        let mut cap = self.capture.lock();
        self.flush_partial(&mut cap, 0);
        self.flush_partial(&mut cap, 1);
    }

    /// Starts an invocation's record: the tail buffer (if wanted) and the START line.
    pub(crate) fn begin(&self, request_id: &str, version: &str, capture_tail: bool) {
        let line = start_line(self.json, request_id, version);
        let mut cap = self.capture.lock();
        // On a cold start the buffer already holds the init output, which belongs to this invoke.
        match (capture_tail, cap.tail.is_some()) {
            (true, false) => cap.tail = Some(Vec::with_capacity(line.len() + 256)),
            (false, true) => cap.tail = None,
            _ => {}
        }
        self.emit(&mut cap, line.as_bytes());
    }

    /// Stops capturing a tail (the invocation it was for is gone).
    pub(crate) fn discard_tail(&self) {
        self.capture.lock().tail = None;
    }

    /// Writes a platform line (END, REPORT, timeout notice) in order with the function's output.
    pub(crate) fn platform(&self, line: &str) {
        let mut cap = self.capture.lock();
        self.emit(&mut cap, line.as_bytes());
    }

    /// Ends the invocation's record and returns the last 4 KB when a tail was captured.
    pub(crate) fn finish(&self) -> Option<Vec<u8>> {
        let mut tail = {
            let mut cap = self.capture.lock();
            self.send_pending(&mut cap);
            cap.tail.take()?
        };
        if tail.len() > TAIL_BYTES {
            tail.drain(..tail.len() - TAIL_BYTES);
        }
        Some(tail)
    }

    /// The environment is gone: the writer may close the file.
    pub(crate) fn close(&self) {
        self.send_pending(&mut self.capture.lock());
        let _ = self.writer.send(WriterMsg::Close(self.path.clone()));
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The first line of a log stream: `INIT_START Runtime Version: python:3.12.v1\tRuntime Version
/// ARN: arn:aws:lambda:<region>::runtime:<64 hex>`.
pub(crate) fn init_start_line(json: bool, runtime: &str, region: &str) -> String {
    let (version, arn) = runtime_version(runtime, region);
    if json {
        serde_json::json!({
            "time": now_rfc3339(),
            "type": "platform.initStart",
            "record": {
                "initializationType": "on-demand",
                "phase": "init",
                "runtimeVersion": version,
                "runtimeVersionArn": arn,
            },
        })
        .to_string()
            + "\n"
    } else {
        format!("INIT_START Runtime Version: {version}\tRuntime Version ARN: {arn}\n")
    }
}

/// Said right after INIT_START when another interpreter version stands in for the runtime's
/// (`python3.13` on Python 3.11): Flint's own line, so nobody mistakes it for the real one.
pub(crate) fn stand_in_line(json: bool, runtime: &str, stand_in: &str) -> String {
    let message = format!(
        "WARNING Flint: this host has no interpreter for {runtime}; {stand_in} stands in. Code \
         that needs {runtime} may fail (`flint runtimes` lists what runs each runtime)."
    );
    if json {
        serde_json::json!({"time": now_rfc3339(), "type": "flint.runtimeStandIn", "level": "WARN", "message": message})
            .to_string()
            + "\n"
    } else {
        message + "\n"
    }
}

/// The runtime's version and version ARN as Lambda names them (`python:3.12.v1`,
/// `arn:aws:lambda:<region>::runtime:<64 hex>`).
pub(crate) fn runtime_version(runtime: &str, region: &str) -> (String, String) {
    use sha2::{Digest, Sha256};
    // python3.12 → python:3.12, nodejs20.x → nodejs:20, provided.al2023 → provided:al2023,
    // ruby3.3 → ruby:3.3, java21 → java:21, java8.al2 → java:8.al2.
    let version = if let Some(v) = runtime.strip_prefix("python") {
        format!("python:{v}")
    } else if let Some(v) = runtime.strip_prefix("ruby") {
        format!("ruby:{v}")
    } else if let Some(v) = runtime.strip_prefix("java") {
        format!("java:{v}")
    } else if let Some(v) = runtime.strip_prefix("nodejs") {
        format!("nodejs:{}", v.trim_end_matches(".x"))
    } else {
        runtime.replacen('.', ":", 1)
    };
    let digest: String = Sha256::digest(runtime.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (
        format!("{version}.v1"),
        format!("arn:aws:lambda:{region}::runtime:{digest}"),
    )
}

pub(crate) fn start_line(json: bool, request_id: &str, version: &str) -> String {
    if json {
        serde_json::json!({
            "time": now_rfc3339(),
            "type": "platform.start",
            "record": { "requestId": request_id, "version": version },
        })
        .to_string()
            + "\n"
    } else {
        format!("START RequestId: {request_id} Version: {version}\n")
    }
}

/// Flint's own record of an asynchronous attempt (AWS's logs have none; its console shows
/// them as metrics): which attempt of the event this was and how it ended.
pub(crate) fn async_attempt_line(
    json: bool,
    request_id: &str,
    attempt: u32,
    outcome: &str,
) -> String {
    if json {
        serde_json::json!({
            "time": now_rfc3339(),
            "type": "flint.asyncAttempt",
            "record": { "requestId": request_id, "attempt": attempt, "outcome": outcome },
        })
        .to_string()
            + "\n"
    } else {
        format!("ASYNC RequestId: {request_id}\tAttempt: {attempt}\tOutcome: {outcome}\n")
    }
}

pub(crate) fn end_line(json: bool, request_id: &str) -> Option<String> {
    // The JSON format has no END record: platform.report closes the invocation.
    (!json).then(|| format!("END RequestId: {request_id}\n"))
}

/// Measurements for the REPORT line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Report {
    pub duration: Duration,
    pub billed_ms: u64,
    pub memory_mb: u32,
    pub max_memory_used_mb: u64,
    pub init: Option<Duration>,
    /// `Some("timeout")`, `Some("error")` when the invoke did not complete normally.
    pub status: Option<&'static str>,
    pub error_type: Option<&'static str>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn report_line(json: bool, request_id: &str, r: &Report) -> String {
    if json {
        let mut metrics = serde_json::json!({
            "durationMs": (ms(r.duration) * 100.0).round() / 100.0,
            "billedDurationMs": r.billed_ms,
            "memorySizeMB": r.memory_mb,
            "maxMemoryUsedMB": r.max_memory_used_mb,
        });
        if let Some(init) = r.init {
            metrics["initDurationMs"] = serde_json::json!((ms(init) * 100.0).round() / 100.0);
        }
        let mut record = serde_json::json!({
            "requestId": request_id,
            "metrics": metrics,
            "status": r.status.unwrap_or("success"),
        });
        if let Some(t) = r.error_type {
            record["errorType"] = serde_json::json!(t);
        }
        return serde_json::json!({ "time": now_rfc3339(), "type": "platform.report", "record": record })
            .to_string()
            + "\n";
    }
    let mut s = format!(
        "REPORT RequestId: {request_id}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\t",
        ms(r.duration),
        r.billed_ms,
        r.memory_mb,
        r.max_memory_used_mb
    );
    if let Some(init) = r.init {
        s.push_str(&format!("Init Duration: {:.2} ms\t", ms(init)));
    }
    if let Some(status) = r.status {
        s.push_str(&format!("Status: {status}\t"));
        if let Some(t) = r.error_type {
            s.push_str(&format!("Error Type: {t}\t"));
        }
    }
    s.push('\n');
    s
}

/// The line Lambda writes when an invoke times out.
pub(crate) fn timeout_line(request_id: &str, timeout_secs: u32) -> String {
    format!(
        "{} {request_id} Task timed out after {timeout_secs}.00 seconds\n",
        now_rfc3339()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_stream_stops_growing_at_its_cap_and_says_so() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = Arc::new(dir.path().join("stream"));
        let mut files = HashMap::new();
        for _ in 0..10 {
            append_capped(&mut files, &path, &[b'x'; 100], 350, 7, "/aws/lambda/fn")?;
        }
        for f in files.values_mut() {
            f.file.flush()?;
            f.index.flush()?;
        }
        let index = std::fs::read_to_string(index_path(&path))?;
        assert_eq!(index, "/aws/lambda/fn\n0 7\n100 7\n200 7\n");
        let text = std::fs::read_to_string(path.as_path())?;
        assert!(text.starts_with(&"x".repeat(300)), "{text}");
        assert!(text.ends_with("later output is dropped\n"), "{text}");
        assert_eq!(text.matches("truncated").count(), 1);
        assert!(text.len() < 450);
        Ok(())
    }

    #[test]
    fn log_stream_names_follow_lambdas_format() {
        let s = log_stream_name("$LATEST");
        let (date, rest) = s.split_at(11);
        assert_eq!(date.len(), 11);
        assert_eq!(date.matches('/').count(), 3);
        let hex = rest.strip_prefix("[$LATEST]").unwrap_or("");
        assert_eq!(hex.len(), 32);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn report_line_has_init_duration_only_on_cold_starts() {
        let mut r = Report {
            duration: Duration::from_micros(1234),
            billed_ms: 2,
            memory_mb: 128,
            max_memory_used_mb: 40,
            init: Some(Duration::from_micros(12345)),
            status: None,
            error_type: None,
        };
        assert_eq!(
            report_line(false, "id", &r),
            "REPORT RequestId: id\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 40 MB\tInit Duration: 12.35 ms\t\n"
        );
        r.init = None;
        assert!(!report_line(false, "id", &r).contains("Init Duration"));
    }

    #[test]
    fn json_report_carries_metrics() {
        let r = Report {
            duration: Duration::from_millis(3),
            billed_ms: 3,
            memory_mb: 256,
            max_memory_used_mb: 50,
            init: None,
            status: Some("timeout"),
            error_type: None,
        };
        let v: serde_json::Value =
            serde_json::from_str(&report_line(true, "id", &r)).unwrap_or_default();
        assert_eq!(v["type"], "platform.report");
        assert_eq!(v["record"]["metrics"]["memorySizeMB"], 256);
        assert_eq!(v["record"]["status"], "timeout");
    }

    /// Writes to the pipe and lets the reactor see the data (as it has by the time a runtime's
    /// answer, sent after its output, is processed).
    async fn write(tx: &mut pipe::Sender, data: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        tx.write_all(data).await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok(())
    }

    fn env_log(dir: &Path) -> std::io::Result<(EnvLog, pipe::Sender, LogWriter, PathBuf)> {
        let writer = LogWriter::start()?;
        let (tx, rx) = pipe::pipe()?;
        let path = dir.join("stream.log");
        let log = EnvLog::new(
            &writer,
            path.clone(),
            false,
            Some(rx),
            None,
            false,
            "INIT_START x\n".into(),
        );
        Ok((log, tx, writer, path))
    }

    #[tokio::test]
    async fn output_written_before_the_answer_belongs_to_the_invocation() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (log, mut tx, writer, path) = env_log(dir.path())?;
        write(&mut tx, b"from init\n").await?;
        log.drain();
        log.begin("r1", "$LATEST", true);
        // A line and a half: the half is completed later, and still belongs to r1.
        write(&mut tx, b"line one\nhalf").await?;
        log.drain();
        log.platform("END RequestId: r1\n");
        let tail = String::from_utf8(log.finish().unwrap_or_default()).unwrap_or_default();
        assert_eq!(
            tail,
            "START RequestId: r1 Version: $LATEST\nline one\nhalf\nEND RequestId: r1\n"
        );
        log.close();
        writer.flush();
        let file = std::fs::read_to_string(path)?;
        assert!(
            file.starts_with("INIT_START x\nfrom init\nSTART RequestId: r1"),
            "{file}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn tail_keeps_the_last_4_kb() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (log, mut tx, _writer, _path) = env_log(dir.path())?;
        log.begin("r2", "1", true);
        for chunk in 0..20 {
            let text: String = (chunk * 100..chunk * 100 + 100)
                .map(|i| format!("line {i:05}\n"))
                .collect();
            write(&mut tx, text.as_bytes()).await?;
            log.drain();
        }
        log.drain();
        log.platform("REPORT RequestId: r2\n");
        let tail = log.finish().unwrap_or_default();
        assert_eq!(tail.len(), TAIL_BYTES);
        assert!(tail.ends_with(b"line 01999\nREPORT RequestId: r2\n"));
        Ok(())
    }

    #[test]
    fn a_stand_in_interpreter_is_named_after_init_start() {
        let l = stand_in_line(false, "python3.13", "Python 3.11");
        assert!(l.starts_with("WARNING Flint: this host has no interpreter for python3.13; Python 3.11 stands in."), "{l}");
        let j: serde_json::Value =
            serde_json::from_str(&stand_in_line(true, "nodejs22.x", "Node.js 20.20.2"))
                .expect("json");
        assert_eq!(j["level"], "WARN");
    }

    #[test]
    fn init_start_names_the_runtime_as_lambda_does() {
        let l = init_start_line(false, "python3.12", "eu-west-1");
        assert!(l.starts_with("INIT_START Runtime Version: python:3.12.v1\tRuntime Version ARN: arn:aws:lambda:eu-west-1::runtime:"), "{l}");
        assert!(init_start_line(false, "nodejs20.x", "r").contains("nodejs:20.v1"));
        assert!(init_start_line(false, "provided.al2023", "r").contains("provided:al2023.v1"));
        assert!(init_start_line(false, "ruby3.3", "r").contains("ruby:3.3.v1"));
        assert!(init_start_line(false, "java21", "r").contains("java:21.v1"));
        assert!(init_start_line(false, "java8.al2", "r").contains("java:8.al2.v1"));
    }

    #[test]
    fn timeout_line_names_the_request_and_the_limit() {
        let l = timeout_line("abc", 3);
        assert!(l.ends_with(" abc Task timed out after 3.00 seconds\n"));
    }
}
