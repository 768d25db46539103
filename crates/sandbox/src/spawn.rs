//! Flint's side of starting a sandbox: create its cgroup, start `init_program __sandbox-init` with
//! the spec on a control socket, wait for "running" or the reason it could not start; then the
//! `Sandbox` handle that kills, waits and reads peak memory.

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::Duration;

use crate::cgroup::SandboxCgroup;
use crate::handshake::{InitReport, InitRequest};
use crate::host::{Isolation, SANDBOX_GID, SANDBOX_UID};
use crate::{ExitInfo, SandboxError, SandboxSpec, Sandboxes, INIT_ARG};

/// Longest wait for a sandbox to report that its program runs (a healthy one takes milliseconds).
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Used when no memory cgroup exists: RLIMIT_DATA floor so tiny limits do not break interpreters.
const MIN_DATA_LIMIT: u64 = 64 * 1024 * 1024;

pub(crate) fn spawn(sandboxes: &Sandboxes, spec: &SandboxSpec) -> Result<Sandbox, SandboxError> {
    if let Isolation::Unavailable(reason) = &sandboxes.isolation {
        return Err(
            io::Error::other(format!("cannot sandbox functions on this host: {reason}")).into(),
        );
    }
    validate_id(&spec.id)?;
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(io::Error::other("Sandboxes::spawn needs a tokio runtime").into());
    }
    let identity = &sandboxes.identity;
    if identity.privileged {
        // The sandbox user owns its /tmp (like sbx_user1051 on Lambda).
        std::os::unix::fs::chown(
            &spec.tmp_dir,
            Some(identity.outer_uid),
            Some(identity.outer_gid),
        )?;
        std::fs::set_permissions(
            &spec.tmp_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
    }
    let cgroup = sandboxes.cgroups.create(&spec.id, spec.memory_mb)?;
    let memory_bytes = u64::from(spec.memory_mb) * 1024 * 1024;
    let request = InitRequest {
        spec: spec.clone(),
        user_namespace: sandboxes.isolation == Isolation::UserNamespace,
        uid_map: identity.uid_map(),
        gid_map: identity.gid_map(),
        deny_setgroups: !identity.privileged,
        uid: SANDBOX_UID,
        gid: SANDBOX_GID,
        drop_groups: identity.privileged,
        cgroup_procs: cgroup.procs_files(),
        root_mount: sandboxes.root_mount.clone(),
        data_limit: (!cgroup.has_memory()).then_some(memory_bytes.max(MIN_DATA_LIMIT)),
        file_size_limit: (spec.tmp_size_mb > 0).then(|| u64::from(spec.tmp_size_mb) * 1024 * 1024),
        hostname: hostname(&spec.id),
        etc_overlays: sandboxes.etc_overlays.clone(),
    };
    match start(sandboxes, &request) {
        Ok((child, control)) => {
            let mut child = child;
            Ok(Sandbox {
                stdout: child.stdout.take(),
                stderr: child.stderr.take(),
                id: spec.id.clone(),
                child,
                control: Some(control),
                cgroup: Some(cgroup),
                exit: None,
                final_peak: None,
                final_oom: false,
                tmp: None,
            })
        }
        Err(e) => {
            cgroup.kill_all();
            cgroup.remove_now_or_later();
            Err(e)
        }
    }
}

fn start(
    sandboxes: &Sandboxes,
    request: &InitRequest,
) -> Result<(tokio::process::Child, BufReader<UnixStream>), SandboxError> {
    let (mut ours, theirs) = UnixStream::pair()?;
    let mut cmd = tokio::process::Command::new(&sandboxes.init_program);
    cmd.arg(INIT_ARG)
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let program = request.spec.program.display().to_string();
    let mut line = serde_json::to_vec(request).map_err(io::Error::other)?;
    line.push(b'\n');
    ours.write_all(&line)?;
    ours.set_read_timeout(Some(START_TIMEOUT))?;
    let mut control = BufReader::new(ours);
    let mut text = String::new();
    loop {
        text.clear();
        let outcome: Result<(), SandboxError> = match control.read_line(&mut text) {
            Ok(0) => Err(io::Error::other("sandbox init exited during set-up").into()),
            Ok(_) => match InitReport::parse(&text) {
                Some(InitReport::Running) => break,
                Some(InitReport::StartFailed { reason }) => Err(SandboxError::Start {
                    program: program.clone(),
                    reason,
                }),
                Some(InitReport::SetupFailed { reason }) => {
                    Err(io::Error::other(format!("sandbox set-up failed: {reason}")).into())
                }
                // The program may already have exited; that arrives after Running, not before.
                Some(InitReport::Exited { .. }) | None => continue,
            },
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(
                    io::Error::new(io::ErrorKind::TimedOut, "sandbox did not start within 10 s")
                        .into(),
                )
            }
            Err(e) => Err(e.into()),
        };
        if let Err(e) = outcome {
            let _ = child.start_kill();
            return Err(e);
        }
    }
    Ok((child, control))
}

/// Sandbox ids name cgroup directories: keep them to a safe alphabet.
fn validate_id(id: &str) -> Result<(), SandboxError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid sandbox id {id:?}"),
        )
        .into())
    }
}

/// The sandbox's hostname: a fixed prefix and the id (at most 64 bytes, the kernel's limit).
fn hostname(id: &str) -> String {
    let mut name = format!("flint-{id}");
    name.truncate(64);
    name
}

/// A running (or finished) sandbox. Dropping it kills what is left and removes its cgroup.
pub struct Sandbox {
    pub stdout: Option<tokio::process::ChildStdout>,
    pub stderr: Option<tokio::process::ChildStderr>,
    id: String,
    /// The sandbox's supervisor (`__sandbox-init` in the host namespaces).
    child: tokio::process::Child,
    /// Control socket: carries the program's exit report; closing it ends the sandbox.
    control: Option<BufReader<UnixStream>>,
    cgroup: Option<SandboxCgroup>,
    exit: Option<ExitInfo>,
    /// Peak memory and OOM state saved when `kill()` removed the cgroup.
    final_peak: Option<u64>,
    final_oom: bool,
    /// This sandbox's /tmp on the EphemeralStorage volume (set by `Sandboxes::spawn`), deleted
    /// when the sandbox is dropped.
    pub(crate) tmp: Option<crate::ephemeral_storage::TmpDir>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("id", &self.id)
            .field("exit", &self.exit)
            .finish()
    }
}

impl Sandbox {
    /// The spec's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Asks the program to stop (SIGTERM, forwarded by the sandbox's PID 1); `kill()` after a
    /// grace period if it does not. Does not block.
    pub fn terminate(&mut self) {
        if self.exit.is_some() {
            return;
        }
        if let Some(control) = &self.control {
            let _ = control.get_ref().write_all(&[crate::handshake::TERMINATE]);
        }
    }

    /// SIGKILL everything inside; idempotent, does not block.
    pub fn kill(&mut self) {
        if self.exit.is_none() {
            // The supervisor's death takes PID 1 (parent-death signal), and PID 1's the namespace.
            let _ = self.child.start_kill();
        }
        if let Some(cg) = self.cgroup.take() {
            self.final_peak = cg.peak_memory_bytes();
            self.final_oom = cg.oom_kills().unwrap_or(0) > 0;
            cg.kill_all();
            cg.remove_now_or_later();
        }
    }

    /// Resolves when the sandbox's PID 1 has exited.
    pub async fn wait(&mut self) -> ExitInfo {
        if let Some(exit) = self.exit {
            return exit;
        }
        let status = self.child.wait().await;
        let reported = self.take_exit_report();
        let oom_killed = match &self.cgroup {
            Some(cg) => cg.oom_kills().unwrap_or(0) > 0,
            None => self.final_oom,
        };
        let info = match (reported, status) {
            (Some((code, signal)), _) => ExitInfo {
                code,
                signal,
                oom_killed,
            },
            (None, Ok(status)) => {
                use std::os::unix::process::ExitStatusExt;
                ExitInfo {
                    code: status.code(),
                    signal: status.signal(),
                    oom_killed,
                }
            }
            (None, Err(_)) => ExitInfo {
                code: None,
                signal: None,
                oom_killed,
            },
        };
        self.exit = Some(info);
        info
    }

    /// The program's exit as PID 1 reported it (buffered before the supervisor exited).
    fn take_exit_report(&mut self) -> Option<(Option<i32>, Option<i32>)> {
        let control = self.control.as_mut()?;
        control.get_ref().set_nonblocking(true).ok()?;
        let mut found = None;
        let mut line = String::new();
        loop {
            line.clear();
            match control.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if let Some(InitReport::Exited { code, signal }) = InitReport::parse(&line) {
                        found = Some((code, signal));
                    }
                }
            }
        }
        found
    }

    /// The cgroup's peak memory since start or the last reset.
    pub fn peak_memory_bytes(&self) -> Option<u64> {
        match &self.cgroup {
            Some(cg) => cg.peak_memory_bytes(),
            None => self.final_peak,
        }
    }

    pub fn reset_peak_memory(&self) {
        if let Some(cg) = &self.cgroup {
            cg.reset_peak_memory();
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Closing the control socket also tells the supervisor to end the sandbox.
        self.control = None;
        if self.exit.is_none() {
            let _ = self.child.start_kill();
        }
        if let Some(cg) = self.cgroup.take() {
            if self.exit.is_none() {
                cg.kill_all();
            }
            cg.remove_now_or_later();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_escape_the_cgroup_dir_are_refused() {
        assert!(validate_id("env-1a2b_3.c").is_ok());
        for bad in ["", ".", "..", "a/b", "../x", "a b", &"x".repeat(200)] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    /// Pins the `.init_array` hook: this libtest binary re-executed as `__sandbox-init` must act
    /// as the init instead of running tests (the engine's tests rely on it).
    #[tokio::test]
    async fn harness_test_binaries_can_be_their_own_init() {
        let scratch = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            scratch.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let code = scratch.path().join("code");
        let tmp = scratch.path().join("tmp");
        std::fs::create_dir_all(&code).unwrap();
        std::fs::create_dir_all(&tmp).unwrap();
        let exe = std::env::current_exe().unwrap();
        let sandboxes = Sandboxes::new(&scratch.path().join("state"), exe).unwrap();
        let spec = SandboxSpec {
            id: format!("unit-{}", std::process::id()),
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "exit 42".into()],
            env: vec![],
            code_dir: code,
            opt_dir: None,
            runtime_dir: None,
            extra_ro_binds: vec![],
            tmp_dir: tmp,
            tmp_size_mb: 512,
            memory_mb: 128,
            isolate_network: false,
        };
        let mut sb = sandboxes.spawn(&spec).unwrap();
        let exit = tokio::time::timeout(Duration::from_secs(10), sb.wait())
            .await
            .unwrap();
        assert_eq!(exit.code, Some(42));
    }

    #[test]
    fn hostname_fits_the_kernel_limit() {
        assert_eq!(hostname("abc"), "flint-abc");
        assert_eq!(hostname(&"x".repeat(100)).len(), 64);
    }
}
