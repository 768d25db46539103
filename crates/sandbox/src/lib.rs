//! One execution environment's isolation: namespaces (user, mount, pid, ipc, uts, optionally net),
//! a cgroup with the memory/pids/cpu limits, a minimal root filesystem (read-only /var/task, /opt,
//! /var/runtime, a private disk-backed /tmp), kill on demand and peak-memory reporting.
//!
//! CONTRACT (used by the engine; keep these signatures stable):
//! - `Sandboxes::new(state_dir)` detects what the host supports (cgroup v1/v2, user namespaces),
//!   logs once what it cannot enforce, and removes leftovers of a previous run (cgroups, mounts,
//!   processes) under its own names.
//! - `Sandboxes::spawn(spec)` starts `spec.program` inside a new sandbox and returns at once
//!   (blocking work is small: a fork/exec and a short handshake). stdout/stderr are pipes.
//! - `Sandbox::kill()` ends everything in the sandbox (SIGKILL of its PID 1 ends the pid namespace)
//!   and removes its cgroup; `Sandbox::wait()` resolves when its PID 1 is gone.
//! - `init_main()` is the entry point of the re-executed binary (`flint __sandbox-init ...`), which
//!   sets up the namespaces and mounts and then execs the program. The flint binary calls it
//!   when its first argument is `INIT_ARG`.

use std::path::PathBuf;

/// argv[1] of the re-executed flint binary that becomes a sandbox's init.
pub const INIT_ARG: &str = "__sandbox-init";

/// What to run and with which limits.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SandboxSpec {
    /// Unique id (used for the cgroup name and the hostname suffix).
    pub id: String,
    /// Program path as seen inside the sandbox (e.g. `/var/task/bootstrap`, `/usr/bin/python3.11`).
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The complete environment of the program (nothing is inherited from Flint).
    pub env: Vec<(String, String)>,
    /// Host directory mounted read-only at /var/task (also the working directory).
    pub code_dir: PathBuf,
    /// Host directory mounted read-only at /opt (the merged layers), if any.
    pub opt_dir: Option<PathBuf>,
    /// Host directory mounted read-only at /var/runtime (Flint's managed runtime bootstraps), if any.
    pub runtime_dir: Option<PathBuf>,
    /// Host paths bind-mounted read-only at the same path inside (e.g. an interpreter's prefix that
    /// lives outside /usr).
    pub extra_ro_binds: Vec<PathBuf>,
    /// Host directory (disk-backed, created by the caller, empty) mounted read-write at /tmp.
    pub tmp_dir: PathBuf,
    /// /tmp size in MB (EphemeralStorage.Size); enforced where the host allows.
    pub tmp_size_mb: u32,
    /// Memory limit in MB (MemorySize); enforced by the cgroup.
    pub memory_mb: u32,
    /// Give the sandbox its own network namespace (no network but its own loopback).
    pub isolate_network: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The program could not be started (missing, not executable, exec failed).
    #[error("cannot start {program}: {reason}")]
    Start { program: String, reason: String },
    #[error("sandbox i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// How a sandbox's PID 1 ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The cgroup's OOM killer fired.
    pub oom_killed: bool,
}

/// PLACEHOLDER signatures (the sandbox's owner replaces the bodies).
pub struct Sandboxes {}

impl Sandboxes {
    /// `init_program` is the executable re-executed as `init_program __sandbox-init` (the flint
    /// binary: `/proc/self/exe`).
    pub fn new(_state_dir: &std::path::Path, _init_program: PathBuf) -> Result<Self, SandboxError> {
        todo!("placeholder")
    }
    pub fn spawn(&self, _spec: &SandboxSpec) -> Result<Sandbox, SandboxError> {
        todo!("placeholder")
    }
    /// One line for the start-up banner: what isolation and limits are enforced here.
    pub fn summary(&self) -> String {
        todo!("placeholder")
    }
}

pub struct Sandbox {
    pub stdout: Option<tokio::process::ChildStdout>,
    pub stderr: Option<tokio::process::ChildStderr>,
}

impl Sandbox {
    /// SIGKILL everything inside; idempotent, does not block.
    pub fn kill(&mut self) {
        todo!("placeholder")
    }
    /// Resolves when the sandbox's PID 1 has exited.
    pub async fn wait(&mut self) -> ExitInfo {
        todo!("placeholder")
    }
    /// The cgroup's peak memory since start or the last reset.
    pub fn peak_memory_bytes(&self) -> Option<u64> {
        todo!("placeholder")
    }
    pub fn reset_peak_memory(&self) {
        todo!("placeholder")
    }
}

/// Entry point of `flint __sandbox-init`.
pub fn init_main() -> ! {
    todo!("placeholder")
}
