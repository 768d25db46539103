//! Idle-environment benchmark: starts the real `flint serve`, brings up `FLINT_IDLE_ENVS` (default
//! 200) warm execution environments at once, holds them idle, and reports what they cost: Flint's
//! own memory (VmRSS/VmHWM/RssAnon from /proc), threads, descriptors and idle CPU, the sandboxes'
//! memory (per process kind and per memory cgroup), the bring-up time, and a warm round over every
//! environment that proves none was lost or restarted (each handler returns an id made at init
//! and a per-process invoke counter).
//!
//! Each environment belongs to its own function (one function = one environment when it is
//! invoked once), so that every environment is reached deterministically by name; the functions
//! are a mix of python3.11, nodejs20.x and provided.al2023 (a `/bin/sh` + curl bootstrap, or the
//! `lambda_runtime` one named by `FLINT_BENCH_RUST_BOOTSTRAP`). Flint's baseline is taken after the
//! functions exist and before any environment, so the per-environment figures exclude metadata.
//!
//! Run: `cargo bench -p flint --bench idle` (see BENCHMARKS.md). Environment: `FLINT_IDLE_ENVS`
//! (default 200), `FLINT_IDLE_HOLD_SECS` (default 30), `FLINT_IDLE_CONCURRENCY` (cold invokes in
//! flight during bring-up, default: all), `FLINT_BENCH_RUST_BOOTSTRAP`.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_lambda::types::Runtime;
use bytes::Bytes;
use common::{connect, pct, wait_active, zip_of, Sender};
use http_body_util::{BodyExt, Full};
use tokio::sync::Semaphore;

/// Far beyond the hold: no environment may be reaped while we measure.
const IDLE_TIMEOUT_SECS: u64 = 3600;

// ------------------------------------------------------------------------------------------
// The server
// ------------------------------------------------------------------------------------------

// ------------------------------------------------------------------------------------------
// Functions
// ------------------------------------------------------------------------------------------

/// Returns an id made once per runtime process and how many invokes this process has served.
const PYTHON_HANDLER: &[u8] = b"import uuid\n\
ENV_ID = uuid.uuid4().hex\n\
COUNT = 0\n\
\n\
def handler(event, context):\n    global COUNT\n    COUNT += 1\n    return {'env': ENV_ID, 'count': COUNT}\n";

const NODE_HANDLER: &[u8] = b"import { randomUUID } from 'node:crypto';\n\
const ENV_ID = randomUUID();\n\
let count = 0;\n\
export const handler = async () => { count += 1; return { env: ENV_ID, count }; };\n";

/// A custom runtime in AWS's tutorial shape (sh + curl), with the same id and counter.
const SHELL_BOOTSTRAP: &[u8] = b"#!/bin/sh\n\
set -eu\n\
API=\"http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime\"\n\
ENV_ID=\"$(cat /proc/sys/kernel/random/uuid)\"\n\
COUNT=0\n\
while true; do\n\
  HEADERS=\"$(mktemp)\"\n\
  curl -sS -o /dev/null -D \"$HEADERS\" \"$API/invocation/next\"\n\
  REQUEST_ID=\"$(grep -i '^lambda-runtime-aws-request-id:' \"$HEADERS\" | cut -d: -f2 | tr -d '[:space:]')\"\n\
  rm -f \"$HEADERS\"\n\
  COUNT=$((COUNT + 1))\n\
  curl -sS -o /dev/null -X POST \"$API/invocation/$REQUEST_ID/response\" -d \"{\\\"env\\\":\\\"$ENV_ID\\\",\\\"count\\\":$COUNT}\"\n\
done\n";

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Python,
    Node,
    Shell,
    Rust,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Python => "python3.11",
            Kind::Node => "nodejs20.x",
            Kind::Shell => "provided (sh+curl)",
            Kind::Rust => "provided (lambda_runtime)",
        }
    }
}

struct Function {
    name: String,
    kind: Kind,
}

/// `n` functions: half python, a quarter node, a quarter provided.
async fn create_functions(c: &aws_sdk_lambda::Client, n: usize) -> Vec<Function> {
    let rust = std::env::var("FLINT_BENCH_RUST_BOOTSTRAP")
        .ok()
        .map(|p| std::fs::read(&p).unwrap_or_else(|e| panic!("reading {p}: {e}")));
    let python = zip_of(&[("index.py", PYTHON_HANDLER, 0o644)]);
    let node = zip_of(&[("index.mjs", NODE_HANDLER, 0o644)]);
    let provided = match &rust {
        Some(bin) => zip_of(&[("bootstrap", bin, 0o755)]),
        None => zip_of(&[("bootstrap", SHELL_BOOTSTRAP, 0o755)]),
    };
    let mut fns = Vec::with_capacity(n);
    for i in 0..n {
        let (kind, runtime, handler, zip) = match i % 4 {
            0 | 2 => (Kind::Python, Runtime::Python311, "index.handler", &python),
            1 => (Kind::Node, Runtime::Nodejs20x, "index.handler", &node),
            _ if rust.is_some() => (Kind::Rust, Runtime::Providedal2023, "bootstrap", &provided),
            _ => (Kind::Shell, Runtime::Providedal2023, "bootstrap", &provided),
        };
        let name = format!("idle-{i:03}");
        // Generous timeout: 200 cold starts share 2 cores, and the first invoke waits for its init.
        common::create(c, &name, runtime, handler, zip.clone(), 120).await;
        fns.push(Function { name, kind });
    }
    for f in &fns {
        wait_active(c, &f.name).await;
    }
    fns
}

// ------------------------------------------------------------------------------------------
// Invokes (raw keep-alive HTTP/1.1, signed once per function)
// ------------------------------------------------------------------------------------------

/// Who answered an invoke: the environment's id (made at its init) and its invoke counter.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    env: String,
    count: u64,
}

async fn invoke(
    sender: &mut Sender,
    template: &http::Request<Full<Bytes>>,
) -> Result<(Answer, Duration), String> {
    let mut req = http::Request::builder()
        .method("POST")
        .uri(template.uri().path());
    for (k, v) in template.headers() {
        req = req.header(k, v);
    }
    let req = req
        .body(template.body().clone())
        .map_err(|e| e.to_string())?;
    sender.ready().await.map_err(|e| format!("ready: {e}"))?;
    let start = Instant::now();
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = resp.status();
    let err = resp.headers().get("x-amz-function-error").cloned();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    let took = start.elapsed();
    if !status.is_success() || err.is_some() {
        return Err(format!(
            "{status} {err:?} {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("payload {body:?}: {e}"))?;
    // The Rust bootstrap has no id of its own: its log stream is made per environment.
    let env = v
        .get("env")
        .or_else(|| v.get("log_stream"))
        .and_then(|e| e.as_str())
        .ok_or_else(|| format!("no env id in {v}"))?
        .to_string();
    let count = v
        .get("count")
        .and_then(|c| c.as_u64())
        .ok_or_else(|| format!("no count in {v}"))?;
    Ok((Answer { env, count }, took))
}

/// One invoke of every function at once (at most `concurrency` in flight), each on its own
/// connection. Returns per-function answers and latencies, and the wall time of the round.
async fn concurrent_round(
    port: u16,
    fns: &[Function],
    concurrency: usize,
) -> (Vec<Result<(Answer, Duration), String>>, Duration) {
    let gate = Arc::new(Semaphore::new(concurrency));
    let start = Instant::now();
    let tasks: Vec<_> = fns
        .iter()
        .map(|f| {
            let template = common::invoke_request(port, &f.name, b"{\"bench\":\"idle\"}");
            let gate = gate.clone();
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
                let mut s = connect(port).await?;
                invoke(&mut s, &template).await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap_or_else(|e| Err(format!("task: {e}"))));
    }
    (out, start.elapsed())
}

/// One invoke of every function after the other, on one connection.
async fn sequential_round(port: u16, fns: &[Function]) -> Vec<Result<(Answer, Duration), String>> {
    let mut out = Vec::with_capacity(fns.len());
    let mut s = match connect(port).await {
        Ok(s) => s,
        Err(e) => return fns.iter().map(|_| Err(e.clone())).collect(),
    };
    for f in fns {
        let template = common::invoke_request(port, &f.name, b"{\"bench\":\"idle\"}");
        out.push(invoke(&mut s, &template).await);
    }
    out
}

fn latencies(results: &[Result<(Answer, Duration), String>]) -> Vec<Duration> {
    let mut lat: Vec<Duration> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|(_, d)| *d))
        .collect();
    lat.sort();
    lat
}

/// "p50 x ms  p99 y ms" overall, then the same per runtime kind.
fn latency_summary(fns: &[Function], results: &[Result<(Answer, Duration), String>]) -> String {
    let all = latencies(results);
    let mut out = format!(
        "p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        pct(&all, 0.5),
        pct(&all, 0.99),
        pct(&all, 1.0)
    );
    let mut by_kind: BTreeMap<Kind, Vec<Duration>> = BTreeMap::new();
    for (f, r) in fns.iter().zip(results) {
        if let Ok((_, d)) = r {
            by_kind.entry(f.kind).or_default().push(*d);
        }
    }
    for (kind, mut lat) in by_kind {
        lat.sort();
        out.push_str(&format!(
            "\n    {:<26} p50 {:8.3} ms  p99 {:8.3} ms  ({} invokes)",
            kind.label(),
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            lat.len()
        ));
    }
    out
}

// ------------------------------------------------------------------------------------------
// /proc measurements
// ------------------------------------------------------------------------------------------

/// A process's figures from /proc/<pid>/status, smaps_rollup, fd/ and stat.
#[derive(Debug, Default, Clone)]
struct ProcStats {
    rss_kb: u64,
    hwm_kb: u64,
    anon_kb: u64,
    pss_kb: u64,
    threads: u64,
    fds: u64,
    cpu_ticks: u64,
}

fn status_kb(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn proc_stats(pid: u32) -> Option<ProcStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let pss_kb = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .map(|s| status_kb(&s, "Pss:"))
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    Some(ProcStats {
        rss_kb: status_kb(&status, "VmRSS:"),
        hwm_kb: status_kb(&status, "VmHWM:"),
        anon_kb: status_kb(&status, "RssAnon:"),
        pss_kb,
        threads: status_kb(&status, "Threads:"),
        fds,
        cpu_ticks: cpu_ticks(pid).unwrap_or(0),
    })
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn parent_and_comm(pid: u32) -> Option<(u32, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let ppid = stat[close + 2..].split_whitespace().nth(1)?.parse().ok()?;
    Some((ppid, comm))
}

/// Every process below `root` (not `root` itself), with its command name.
fn descendants(root: u32) -> Vec<(u32, String)> {
    let mut children: HashMap<u32, Vec<(u32, String)>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((ppid, comm)) = parent_and_comm(pid) {
                children.entry(ppid).or_default().push((pid, comm));
            }
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for (c, comm) in children.get(&p).into_iter().flatten() {
            out.push((*c, comm.clone()));
            todo.push(*c);
        }
    }
    out
}

fn memory_cgroup(pid: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "memory") {
            return Some(PathBuf::from(format!(
                "/sys/fs/cgroup/memory{}",
                path.trim_end()
            )));
        }
        if controllers.is_empty() && path.len() > 1 {
            // cgroup v2
            return Some(PathBuf::from(format!("/sys/fs/cgroup{}", path.trim_end())));
        }
    }
    None
}

fn read_u64(path: PathBuf) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// What the sandboxes hold: processes by kind, and their memory cgroups.
#[derive(Debug, Default)]
struct SandboxStats {
    /// comm → (processes, RSS kB, PSS kB, CPU ticks)
    by_comm: BTreeMap<String, (u64, u64, u64, u64)>,
    pids: HashSet<u32>,
    cgroups: usize,
    cgroup_usage_bytes: u64,
    cgroup_rss_bytes: u64,
    cpu_ticks: u64,
}

fn sandbox_stats(flint: u32) -> SandboxStats {
    let own_cgroup = memory_cgroup(flint);
    let mut s = SandboxStats::default();
    let mut cgroups = HashSet::new();
    for (pid, comm) in descendants(flint) {
        let Some(p) = proc_stats(pid) else { continue };
        let e = s.by_comm.entry(comm).or_default();
        e.0 += 1;
        e.1 += p.rss_kb;
        e.2 += p.pss_kb;
        e.3 += p.cpu_ticks;
        s.cpu_ticks += p.cpu_ticks;
        s.pids.insert(pid);
        if let Some(cg) = memory_cgroup(pid) {
            if Some(&cg) != own_cgroup.as_ref() {
                cgroups.insert(cg);
            }
        }
    }
    s.cgroups = cgroups.len();
    for cg in cgroups {
        s.cgroup_usage_bytes += read_u64(cg.join("memory.usage_in_bytes"))
            .or_else(|| read_u64(cg.join("memory.current")))
            .unwrap_or(0);
        if let Ok(stat) = std::fs::read_to_string(cg.join("memory.stat")) {
            // v1 counts resident anonymous memory as `rss`, v2 as `anon`.
            let rss = stat.lines().find_map(|l| {
                l.strip_prefix("rss ")
                    .or_else(|| l.strip_prefix("anon "))
                    .and_then(|n| n.trim().parse::<u64>().ok())
            });
            s.cgroup_rss_bytes += rss.unwrap_or(0);
        }
    }
    s
}

fn soft_fd_limit(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .unwrap_or_else(|| "?".into())
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn flint_line(label: &str, p: &ProcStats) -> String {
    format!(
        "flint {label:<26} VmRSS {:7.1} MB  VmHWM {:7.1} MB  RssAnon {:7.1} MB  threads {:4}  fds {:5}",
        mb(p.rss_kb),
        mb(p.hwm_kb),
        mb(p.anon_kb),
        p.threads,
        p.fds
    )
}

/// Checks a warm round against the cold one: every function answered by the environment that
/// answered it before, whose counter moved on by exactly one.
fn check_warm(
    fns: &[Function],
    cold: &HashMap<String, Answer>,
    warm: &[Result<(Answer, Duration), String>],
    expected_count: u64,
) -> (usize, Vec<String>) {
    let mut same = 0;
    let mut problems = Vec::new();
    for (f, r) in fns.iter().zip(warm) {
        match (r, cold.get(&f.name)) {
            (Ok((a, _)), Some(c)) if a.env == c.env && a.count == expected_count => same += 1,
            (Ok((a, _)), Some(c)) => problems.push(format!(
                "{}: env {} count {} (cold: env {} count {})",
                f.name, a.env, a.count, c.env, c.count
            )),
            (Ok(_), None) => problems.push(format!("{}: had no cold answer", f.name)),
            (Err(e), _) => problems.push(format!("{}: {e}", f.name)),
        }
    }
    (same, problems)
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let env_num = |k: &str, d: usize| -> usize {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let n = env_num("FLINT_IDLE_ENVS", 200).max(1);
    let hold = env_num("FLINT_IDLE_HOLD_SECS", 30) as u64;
    let concurrency = env_num("FLINT_IDLE_CONCURRENCY", n).max(1);
    let ticks_per_sec = 100.0; // USER_HZ on Linux

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    // 200 sandboxes take a moment to stop.
    let server = common::start_server(
        &["--idle-timeout-secs", &IDLE_TIMEOUT_SECS.to_string()],
        Duration::from_secs(20),
    );
    let (port, pid) = (server.port, server.pid());
    let mut lines: Vec<String> = Vec::new();
    let mut failed = false;

    rt.block_on(async {
        let c = common::client(port).await;
        // Let the server settle (first requests warm its allocator and connection pools).
        let _ = c.list_functions().send().await;
        let at_start = proc_stats(pid).expect("flint's /proc");
        let created_at = Instant::now();
        let fns = create_functions(&c, n).await;
        let create_secs = created_at.elapsed().as_secs_f64();
        drop(c);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = proc_stats(pid).expect("flint's /proc");
        let before_sandboxes = sandbox_stats(pid);
        // Flint's CPU with the functions but no environment (no invoke yet), as a reference for
        // its CPU while the environments idle.
        let quiet = Duration::from_secs(hold.clamp(1, 10));
        let quiet_start = Instant::now();
        tokio::time::sleep(quiet).await;
        let no_env_cpu = proc_stats(pid)
            .map(|p| p.cpu_ticks.saturating_sub(before.cpu_ticks))
            .unwrap_or(0) as f64
            / ticks_per_sec
            / quiet_start.elapsed().as_secs_f64()
            * 100.0;

        // Bring-up: one cold invoke per function, all at once.
        let (cold, bring_up) = concurrent_round(port, &fns, concurrency).await;
        let cold_ok: HashMap<String, Answer> = fns
            .iter()
            .zip(&cold)
            .filter_map(|(f, r)| r.as_ref().ok().map(|(a, _)| (f.name.clone(), a.clone())))
            .collect();
        let cold_errors: Vec<String> = fns
            .iter()
            .zip(&cold)
            .filter_map(|(f, r)| r.as_ref().err().map(|e| format!("{}: {e}", f.name)))
            .collect();
        let distinct: HashSet<&str> = cold_ok.values().map(|a| a.env.as_str()).collect();
        let cold_lat = latencies(&cold);
        let after_bring_up = proc_stats(pid).expect("flint's /proc");

        // Hold idle.
        let held_from = sandbox_stats(pid);
        let flint_ticks_from = proc_stats(pid).map(|p| p.cpu_ticks).unwrap_or(0);
        let hold_start = Instant::now();
        tokio::time::sleep(Duration::from_secs(hold)).await;
        let held_secs = hold_start.elapsed().as_secs_f64();
        let idle = proc_stats(pid).expect("flint's /proc");
        let idle_sandboxes = sandbox_stats(pid);
        let flint_cpu = (idle.cpu_ticks.saturating_sub(flint_ticks_from)) as f64
            / ticks_per_sec
            / held_secs
            * 100.0;
        let sandbox_cpu = (idle_sandboxes.cpu_ticks.saturating_sub(held_from.cpu_ticks)) as f64
            / ticks_per_sec
            / held_secs
            * 100.0;
        let lost_pids = held_from.pids.difference(&idle_sandboxes.pids).count();
        let new_pids = idle_sandboxes.pids.difference(&held_from.pids).count();

        // Warm rounds: every environment once, one after the other; then all at once.
        // The second sequential round tells what the first touch after the idle spell costs.
        let seq = sequential_round(port, &fns).await;
        let (seq_same, seq_problems) = check_warm(&fns, &cold_ok, &seq, 2);
        let seq2 = sequential_round(port, &fns).await;
        let (seq2_same, seq2_problems) = check_warm(&fns, &cold_ok, &seq2, 3);
        let (conc, conc_wall) = concurrent_round(port, &fns, n).await;
        let (conc_same, conc_problems) = check_warm(&fns, &cold_ok, &conc, 4);
        let after_warm = proc_stats(pid).expect("flint's /proc");
        let after_warm_sandboxes = sandbox_stats(pid);

        // ---- report ----
        let up = cold_ok.len();
        lines.push(format!(
            "{n} functions ({}), created in {create_secs:.1} s; idle timeout {IDLE_TIMEOUT_SECS} s; \
             flint's soft fd limit {}",
            kinds_summary(&fns),
            soft_fd_limit(pid)
        ));
        lines.push(flint_line("at start", &at_start));
        lines.push(flint_line("functions, no environment", &before));
        lines.push(flint_line("right after bring-up", &after_bring_up));
        lines.push(flint_line(&format!("{up} idle ({held_secs:.0} s)"), &idle));
        lines.push(flint_line("after the warm rounds", &after_warm));
        if up > 0 {
            let per = |a: u64, b: u64| (a as f64 - b as f64) / up as f64;
            lines.push(format!(
                "flint per environment (idle - no environment): VmRSS {:.1} kB  RssAnon {:.1} kB  \
                 threads {:.2}  fds {:.2}",
                per(idle.rss_kb, before.rss_kb),
                per(idle.anon_kb, before.anon_kb),
                per(idle.threads, before.threads),
                per(idle.fds, before.fds),
            ));
        }
        lines.push(format!(
            "flint CPU while {up} environments idled: {flint_cpu:.2} % of one core (with the \
             functions and no environment: {no_env_cpu:.2} %); sandboxes {sandbox_cpu:.2} %"
        ));
        lines.push(format!(
            "bring-up: {up}/{n} environments ({} distinct ids) in {:.2} s wall ({} in flight); cold \
             invoke p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms",
            distinct.len(),
            bring_up.as_secs_f64(),
            concurrency.min(n),
            pct(&cold_lat, 0.5),
            pct(&cold_lat, 0.99),
            pct(&cold_lat, 1.0),
        ));
        lines.push(format!(
            "sandboxes with {up} idle: {} processes in {} memory cgroups (before any: {} processes); \
             cgroups' usage {:.1} MB (rss {:.1} MB)",
            idle_sandboxes.pids.len(),
            idle_sandboxes.cgroups,
            before_sandboxes.pids.len(),
            idle_sandboxes.cgroup_usage_bytes as f64 / 1048576.0,
            idle_sandboxes.cgroup_rss_bytes as f64 / 1048576.0,
        ));
        let (mut tot_rss, mut tot_pss) = (0, 0);
        for (comm, (count, rss, pss, ticks)) in &idle_sandboxes.by_comm {
            tot_rss += rss;
            tot_pss += pss;
            // CPU during the hold, of the processes of this kind that were there before it.
            let before = held_from.by_comm.get(comm).map(|e| e.3).unwrap_or(0);
            let cpu = ticks.saturating_sub(before) as f64 / ticks_per_sec / held_secs * 100.0;
            lines.push(format!(
                "  {comm:<16} {count:4} processes  RSS {:8.1} MB ({:6.2} MB each)  PSS {:8.1} MB  \
                 CPU while idle {cpu:.2} %",
                mb(*rss),
                mb(*rss) / *count as f64,
                mb(*pss)
            ));
        }
        lines.push(format!(
            "  total            RSS {:8.1} MB  PSS {:8.1} MB  ({:.2} MB PSS per environment)",
            mb(tot_rss),
            mb(tot_pss),
            if up > 0 { mb(tot_pss) / up as f64 } else { 0.0 }
        ));
        lines.push(format!(
            "during the hold: {lost_pids} sandbox processes ended, {new_pids} started"
        ));
        lines.push(format!(
            "warm round, sequential, first after the idle spell: {seq_same}/{n} answered by their \
             own environment (counter 2); {}",
            latency_summary(&fns, &seq)
        ));
        lines.push(format!(
            "warm round, sequential, again: {seq2_same}/{n} by their own environment (counter 3); {}",
            latency_summary(&fns, &seq2)
        ));
        lines.push(format!(
            "warm round, {n} at once (a new connection each): {conc_same}/{n} by their own \
             environment (counter 4) in {:.2} s wall; {}",
            conc_wall.as_secs_f64(),
            latency_summary(&fns, &conc)
        ));
        lines.push(format!(
            "sandbox processes after the warm rounds: {} (at idle: {})",
            after_warm_sandboxes.pids.len(),
            idle_sandboxes.pids.len()
        ));
        let problems: Vec<&String> = cold_errors
            .iter()
            .chain(&seq_problems)
            .chain(&seq2_problems)
            .chain(&conc_problems)
            .collect();
        if up < n || distinct.len() < up || seq_same < n || seq2_same < n || conc_same < n || lost_pids > 0 {
            failed = true;
            lines.push(format!("FAILED: {} problem(s); first ones:", problems.len()));
            for p in problems.iter().take(10) {
                lines.push(format!("  {p}"));
            }
        }
    });
    drop(server);
    println!("\n== Flint idle-environments benchmark ==");
    for l in lines {
        println!("{l}");
    }
    if failed {
        std::process::exit(1);
    }
}

fn kinds_summary(fns: &[Function]) -> String {
    let mut counts: BTreeMap<Kind, usize> = BTreeMap::new();
    for f in fns {
        *counts.entry(f.kind).or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, c)| format!("{c} {}", k.label()))
        .collect::<Vec<_>>()
        .join(", ")
}
