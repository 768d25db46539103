//! Flint's side of starting a sandbox: create its cgroup, start `init_program __sandbox-init` with
//! the prepare and launch requests on a control socket, wait for "running" or the reason it could
//! not start; sandboxes prepared ahead of their spec (the pool's, see `pool.rs`) and how a spec
//! takes one; then the `Sandbox` handle that kills, waits and reads peak memory.

use std::future::Future;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use crate::cgroup::{Layout, SandboxCgroup};
use crate::handshake::{request_line, InitReport, LaunchRequest, PrepareRequest};
use crate::host::{Identity, Isolation, SANDBOX_GID, SANDBOX_UID};
use crate::netns::{NamespaceListeners, NamespacePorts};
use crate::outbound::VethPlan;
use crate::{ExitInfo, SandboxError, SandboxSpec, Sandboxes, INIT_ARG};
use std::sync::Arc;

/// Longest wait for a sandbox to report that its program runs: a detector of a stuck start, not
/// a limit on a slow one. A healthy start takes milliseconds; on a loaded host it waits for the
/// cores, which is waiting, not failure (the engine bounds how many start at once, and the invoke
/// waits within its own timeout). Was 10 s: a burst of cold starts on 2 cores passed it (issue 16).
const START_TIMEOUT: Duration = Duration::from_secs(60);
const START_TIMEOUT_MESSAGE: &str = "sandbox did not start within 60 s";
/// Used when no memory cgroup exists: RLIMIT_DATA floor so tiny limits do not break interpreters.
const MIN_DATA_LIMIT: u64 = 64 * 1024 * 1024;
/// How long a failed pooled sandbox's cgroup may take to empty before the spec's own start.
const CLEANUP_PATIENCE: Duration = Duration::from_millis(500);

pub(crate) fn spawn(sandboxes: &Sandboxes, spec: &SandboxSpec) -> Result<Sandbox, SandboxError> {
    let launcher = &sandboxes.launcher;
    if let Isolation::Unavailable(reason) = &launcher.isolation {
        return Err(
            io::Error::other(format!("cannot sandbox functions on this host: {reason}")).into(),
        );
    }
    validate_id(&spec.id)?;
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(io::Error::other("Sandboxes::spawn needs a tokio runtime").into());
    }
    let identity = &launcher.identity;
    match identity.root_standin() {
        Some((uid, gid)) if launcher.isolation == Isolation::UserNamespace => {
            // AWS's /tmp: root's, drwxrwxrwt. Open to everyone, so its host-side parent is
            // closed first: no other host user may reach it (the sandbox's PID 1 opens it as
            // Flint's uid, the parent's owner; inside, the bind needs no parent).
            if let Some(parent) = spec.tmp_dir.parent() {
                std::fs::set_permissions(
                    parent,
                    std::os::unix::fs::PermissionsExt::from_mode(0o700),
                )?;
            }
            std::os::unix::fs::chown(&spec.tmp_dir, Some(uid), Some(gid))?;
            std::fs::set_permissions(
                &spec.tmp_dir,
                std::os::unix::fs::PermissionsExt::from_mode(0o1777),
            )?;
        }
        _ if identity.privileged => {
            // Without a user namespace: the sandbox user (real uid 993) owns its /tmp.
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
        _ => {}
    }
    let template = sandboxes
        .pool
        .preinit_enabled()
        .then(|| crate::preinit::template_of(spec))
        .flatten();
    if let Some(zygote) = sandboxes.pool.take(spec.isolate_network, template) {
        let preinit = zygote.preinit.as_ref().map(|t| t.family);
        match launcher.launch(zygote, spec) {
            Ok(sandbox) => {
                if let Some(family) = preinit {
                    sandboxes.pool.preinit_outcome(true, "");
                    tracing::debug!(
                        "sandbox {} started in a pre-initialised {family:?} runtime",
                        spec.id
                    );
                }
                return Ok(sandbox);
            }
            Err(LaunchFailure::Final(e)) => return Err(e),
            Err(LaunchFailure::Prepared(reason)) => {
                if preinit.is_some() {
                    sandboxes.pool.preinit_outcome(false, &reason);
                }
                tracing::debug!(
                    "a prepared sandbox could not take {} ({reason}); starting it from scratch",
                    spec.id
                )
            }
        }
    }
    launcher.spawn_fresh(spec)
}

/// What `Sandboxes` decided at start that every sandbox start needs (shared with the pool's thread).
#[derive(Debug)]
pub(crate) struct Launcher {
    pub init_program: PathBuf,
    /// Empty dir where each sandbox mounts its root, inside its own mount namespace.
    pub root_mount: PathBuf,
    pub isolation: Isolation,
    pub identity: Identity,
    pub cgroups: Layout,
    /// The `/etc` of zip-packaged functions (see `etc.rs`) and `lambda-entrypoint.sh`.
    pub root_files: crate::mounts::RootFiles,
    /// What an isolated sandbox's namespace gets (changed rarely: at start-up).
    pub net: std::sync::RwLock<Arc<NetSetup>>,
}

/// The network set-up of isolated sandboxes: a prepared sandbox keeps the one it was made with.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct NetSetup {
    pub ports: NamespacePorts,
    /// Outbound access (veth + NAT), when the host allows it.
    pub veth: Option<VethPlan>,
    /// The file bound at `/etc/resolv.conf` in isolated sandboxes (the engine's: the host's
    /// nameservers, or the DNS relay at 169.254.100.1); the host's own without it.
    pub resolv_conf: Option<PathBuf>,
}

/// Why starting a spec in a prepared sandbox failed.
enum LaunchFailure {
    /// The spec's own failure (its program cannot be exec'd, or no answer in time): final.
    Final(SandboxError),
    /// The prepared sandbox broke (it died, a cgroup write failed...): start the spec from scratch,
    /// which reports the spec's problem if there is one.
    Prepared(String),
}

impl Launcher {
    /// The current network set-up of isolated sandboxes.
    pub(crate) fn net(&self) -> Arc<NetSetup> {
        self.net.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set_net(&self, net: NetSetup) {
        *self.net.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(net);
    }

    fn prepare_request(
        &self,
        cgroup: &SandboxCgroup,
        isolate_network: bool,
        net: &NetSetup,
        preinit: Option<&crate::preinit::Template>,
    ) -> PrepareRequest {
        let identity = &self.identity;
        PrepareRequest {
            preinit: preinit.map(|t| crate::handshake::PreinitPlan {
                template: t.clone(),
                uid: SANDBOX_UID,
                gid: SANDBOX_GID,
                drop_groups: identity.privileged,
                root_mount: self.root_mount.clone(),
                root_files: self.root_files_for(isolate_network, net),
            }),
            user_namespace: self.isolation == Isolation::UserNamespace,
            isolate_network,
            namespace_ports: net.ports.clone(),
            veth: net.veth.clone(),
            uid_map: identity.uid_map(),
            gid_map: identity.gid_map(),
            deny_setgroups: !identity.privileged,
            cgroup_procs: cgroup.procs_files(),
        }
    }

    fn launch_request(&self, spec: &SandboxSpec, cgroup: &SandboxCgroup) -> LaunchRequest {
        let memory_bytes = u64::from(spec.memory_mb) * 1024 * 1024;
        LaunchRequest {
            spec: spec.clone(),
            uid: SANDBOX_UID,
            gid: SANDBOX_GID,
            drop_groups: self.identity.privileged,
            root_mount: self.root_mount.clone(),
            data_limit: (!cgroup.has_memory()).then_some(memory_bytes.max(MIN_DATA_LIMIT)),
            file_size_limit: (spec.tmp_size_mb > 0)
                .then(|| u64::from(spec.tmp_size_mb) * 1024 * 1024),
            hostname: hostname(&spec.id),
            root_files: self.root_files_for(spec.isolate_network, &self.net()),
        }
    }

    /// The files at a sandbox's root (isolated ones get the engine's resolv.conf).
    fn root_files_for(&self, isolate_network: bool, net: &NetSetup) -> crate::mounts::RootFiles {
        crate::mounts::RootFiles {
            resolv_conf: isolate_network
                .then(|| net.resolv_conf.clone())
                .flatten()
                .unwrap_or_else(|| self.root_files.resolv_conf.clone()),
            ..self.root_files.clone()
        }
    }

    /// Starts a sandbox for `spec` from nothing: both requests at once.
    fn spawn_fresh(&self, spec: &SandboxSpec) -> Result<Sandbox, SandboxError> {
        let cgroup = self.cgroups.create(&spec.id, spec.memory_mb)?;
        let result = (|| {
            let mut started = Started::start(&self.init_program)?;
            let net = self.net();
            let mut lines =
                request_line(&self.prepare_request(&cgroup, spec.isolate_network, &net, None))?;
            lines.extend(request_line(&self.launch_request(spec, &cgroup))?);
            started.control.get_mut().write_all(&lines)?;
            if spec.isolate_network {
                started.receive_listeners(&spec.program, &net.ports)?;
            }
            wait_for(&mut started.control, Stage::Running, &spec.program)?;
            Ok(started)
        })();
        match result {
            Ok(started) => started.into_sandbox(spec.id.clone(), cgroup),
            Err(e) => {
                // `started` (if any) was dropped: its supervisor is killed.
                cgroup.kill_all();
                cgroup.remove_now_or_later();
                Err(e)
            }
        }
    }

    /// Prepares a sandbox up to the point where only the spec is missing (for the pool): its
    /// supervisor runs, PID 1 sits in new namespaces and in a fresh cgroup named `name`.
    /// With `preinit`, the sandbox also starts that runtime's interpreter (see `preinit.rs`).
    pub(crate) fn prepare(
        &self,
        name: &str,
        isolate_network: bool,
        preinit: Option<Arc<crate::preinit::Template>>,
    ) -> io::Result<Prepared> {
        let cgroup = self.cgroups.create_for_pool(name)?;
        let net = self.net();
        let result = (|| {
            let mut started = Started::start(&self.init_program)?;
            let line = request_line(&self.prepare_request(
                &cgroup,
                isolate_network,
                &net,
                preinit.as_deref(),
            ))?;
            started.control.get_mut().write_all(&line)?;
            let as_io = |e| match e {
                SandboxError::Io(e) => e,
                other => io::Error::other(other.to_string()),
            };
            if isolate_network {
                started
                    .receive_listeners(Path::new(INIT_ARG), &net.ports)
                    .map_err(as_io)?;
            }
            wait_for(&mut started.control, Stage::Prepared, Path::new(INIT_ARG)).map_err(as_io)?;
            Ok(started)
        })();
        match result {
            Ok(started) => Ok(Prepared {
                started: Some(started),
                cgroup: Some(cgroup),
                isolate_network,
                net,
                preinit,
            }),
            Err(e) => {
                cgroup.kill_all();
                cgroup.remove_now_or_later();
                Err(e)
            }
        }
    }

    /// Starts `spec` in a prepared sandbox: its limits on the cgroup, then the launch request.
    fn launch(&self, mut prepared: Prepared, spec: &SandboxSpec) -> Result<Sandbox, LaunchFailure> {
        let (Some(mut started), Some(mut cgroup)) =
            (prepared.started.take(), prepared.cgroup.take())
        else {
            return Err(LaunchFailure::Prepared("incomplete".into()));
        };
        let fail = |cgroup: SandboxCgroup, reason: String| {
            cgroup.remove_now(CLEANUP_PATIENCE);
            Err(LaunchFailure::Prepared(reason))
        };
        if started.supervisor.has_exited() {
            return fail(cgroup, "its supervisor exited".into());
        }
        let started_at = std::time::Instant::now();
        if let Err(e) = self.cgroups.assign(&mut cgroup, &spec.id, spec.memory_mb) {
            return fail(cgroup, format!("cgroup limits: {e}"));
        }
        let line = match request_line(&self.launch_request(spec, &cgroup)) {
            Ok(l) => l,
            Err(e) => return fail(cgroup, e.to_string()),
        };
        if let Err(e) = started.control.get_mut().write_all(&line) {
            return fail(cgroup, format!("control socket: {e}"));
        }
        let limits_set = started_at.elapsed();
        match wait_for(&mut started.control, Stage::Running, &spec.program) {
            Ok(()) => {
                tracing::debug!(
                    "sandbox {} started in a prepared one: cgroup limits {} µs, running after {:.1} ms",
                    spec.id,
                    limits_set.as_micros(),
                    started_at.elapsed().as_secs_f64() * 1e3
                );
                started
                    .into_sandbox(spec.id.clone(), cgroup)
                    .map_err(LaunchFailure::Final)
            }
            Err(e) => {
                drop(started);
                let final_error = matches!(e, SandboxError::Start { .. })
                    || matches!(&e, SandboxError::Io(io) if io.kind() == io::ErrorKind::TimedOut);
                if final_error {
                    cgroup.kill_all();
                    cgroup.remove_now_or_later();
                    Err(LaunchFailure::Final(e))
                } else {
                    fail(cgroup, e.to_string())
                }
            }
        }
    }
}

/// A sandbox prepared up to its spec, waiting in the pool. Dropping it ends it.
pub(crate) struct Prepared {
    started: Option<Started>,
    cgroup: Option<SandboxCgroup>,
    pub isolate_network: bool,
    /// The network set-up it was prepared with (stale once the launcher's changes).
    pub net: Arc<NetSetup>,
    /// The runtime whose interpreter waits in it, if any.
    pub preinit: Option<Arc<crate::preinit::Template>>,
}

impl Prepared {
    /// Ends it and removes its cgroup before returning (at shutdown: the parent dirs go next).
    pub fn dispose_now(mut self) {
        if let Some(mut started) = self.started.take() {
            started.supervisor.kill();
        }
        if let Some(cg) = self.cgroup.take() {
            cg.remove_now(Duration::from_secs(2));
        }
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if let Some(mut started) = self.started.take() {
            started.supervisor.kill();
        }
        if let Some(cg) = self.cgroup.take() {
            cg.kill_all();
            cg.remove_now_or_later();
        }
    }
}

/// A running supervisor, its control socket and its program's output pipes.
struct Started {
    supervisor: Supervisor,
    control: BufReader<UnixStream>,
    stdout: Option<std::process::ChildStdout>,
    stderr: Option<std::process::ChildStderr>,
    /// The listeners PID 1 made in the sandbox's own network namespace.
    listeners: Option<NamespaceListeners>,
}

impl Started {
    fn start(init_program: &Path) -> io::Result<Started> {
        let (ours, theirs) = UnixStream::pair()?;
        // std, not tokio, processes: a pooled sandbox is started on the pool's thread, outside any
        // runtime, and may be used by another runtime than the one alive when it was prepared.
        let mut child = std::process::Command::new(init_program)
            .arg(INIT_ARG)
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        Ok(Started {
            supervisor: Supervisor::new(child),
            control: BufReader::new(ours),
            stdout,
            stderr,
            listeners: None,
        })
    }

    /// Takes the listeners PID 1 sends (first thing on the control socket for an isolated
    /// network), or the reason it could not make them.
    fn receive_listeners(
        &mut self,
        program: &Path,
        ports: &NamespacePorts,
    ) -> Result<(), SandboxError> {
        let socket = self.control.get_ref();
        socket.set_read_timeout(Some(START_TIMEOUT))?;
        let wanted = ports.descriptors();
        let (byte, fds) = crate::netns::recv_fds(socket.as_raw_fd(), wanted).map_err(|e| {
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) {
                io::Error::new(io::ErrorKind::TimedOut, START_TIMEOUT_MESSAGE)
            } else {
                e
            }
        })?;
        if byte == crate::netns::LISTENERS {
            self.listeners = Some(NamespaceListeners::from_fds(fds, ports)?);
            return Ok(());
        }
        // PID 1 failed (its report follows), or the supervisor reported first.
        match wait_for(&mut self.control, Stage::Running, program) {
            Err(e) => Err(e),
            Ok(()) => Err(io::Error::other("sandbox network namespace: no listeners").into()),
        }
    }

    fn into_sandbox(mut self, id: String, cgroup: SandboxCgroup) -> Result<Sandbox, SandboxError> {
        let pipes = (|| {
            let stdout = self
                .stdout
                .take()
                .map(tokio::process::ChildStdout::from_std)
                .transpose()?;
            let stderr = self
                .stderr
                .take()
                .map(tokio::process::ChildStderr::from_std)
                .transpose()?;
            io::Result::Ok((stdout, stderr))
        })();
        let (stdout, stderr) = match pipes {
            Ok(p) => p,
            Err(e) => {
                self.supervisor.kill();
                cgroup.kill_all();
                cgroup.remove_now_or_later();
                return Err(e.into());
            }
        };
        Ok(Sandbox {
            stdout,
            stderr,
            listeners: self.listeners.take(),
            id,
            supervisor: self.supervisor,
            control: Some(self.control),
            cgroup: Some(cgroup),
            exit: None,
            final_peak: None,
            final_oom: false,
            tmp: None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Prepared,
    Running,
}

/// Reads the init's reports until `stage` (or the reason it will not get there).
fn wait_for(
    control: &mut BufReader<UnixStream>,
    stage: Stage,
    program: &Path,
) -> Result<(), SandboxError> {
    control.get_ref().set_read_timeout(Some(START_TIMEOUT))?;
    let mut text = String::new();
    loop {
        text.clear();
        match control.read_line(&mut text) {
            Ok(0) => return Err(io::Error::other("sandbox init exited during set-up").into()),
            Ok(_) => match InitReport::parse(&text) {
                Some(InitReport::Running) if stage == Stage::Running => return Ok(()),
                Some(InitReport::Prepared) if stage == Stage::Prepared => return Ok(()),
                Some(InitReport::StartFailed { reason }) => {
                    return Err(SandboxError::Start {
                        program: program.display().to_string(),
                        reason,
                    })
                }
                Some(InitReport::SetupFailed { reason }) => {
                    return Err(io::Error::other(format!("sandbox set-up failed: {reason}")).into())
                }
                // "Prepared" on the way to running; the program's exit arrives after "running".
                _ => continue,
            },
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(io::Error::new(io::ErrorKind::TimedOut, START_TIMEOUT_MESSAGE).into())
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The `__sandbox-init` process in the host's namespaces. Dropping it kills it (which ends the
/// sandbox) and leaves the reaping to a background thread.
struct Supervisor {
    child: Option<std::process::Child>,
    /// The pidfd registered with the runtime of the first `wait`. It lives here, not in the `wait`
    /// future, because callers may poll a new future each time (the engine does): the waker must
    /// stay registered after a future is dropped. Declared before `pidfd`: dropped first.
    watch: Option<tokio::io::unix::AsyncFd<PidfdRef>>,
    /// Readable once the process exits: lets `wait` await it without a thread.
    pidfd: Option<OwnedFd>,
    /// Kernels before 5.3 have no pidfd: `wait` polls on this timer instead.
    tick: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

/// A pidfd borrowed for `AsyncFd` (which must not close it).
struct PidfdRef(RawFd);

impl AsRawFd for PidfdRef {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl Supervisor {
    fn new(child: std::process::Child) -> Supervisor {
        // SAFETY: pidfd_open(2) on our own child, which nobody else reaps (no pid reuse).
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::c_int, 0) };
        // SAFETY: a new fd that we own (when the call succeeded).
        let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) });
        Supervisor {
            child: Some(child),
            watch: None,
            pidfd,
            tick: None,
        }
    }

    /// SIGKILL (a no-op once it has been reaped: std never signals a reaped pid).
    fn kill(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
        }
    }

    fn has_exited(&mut self) -> bool {
        match &mut self.child {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    async fn wait(&mut self) -> io::Result<std::process::ExitStatus> {
        std::future::poll_fn(|cx| self.poll_wait(cx)).await
    }

    fn poll_wait(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<std::process::ExitStatus>> {
        use std::task::Poll;
        let Supervisor {
            child,
            watch,
            pidfd,
            tick,
        } = self;
        let Some(child) = child.as_mut() else {
            return Poll::Ready(Err(io::Error::other("sandbox supervisor already gone")));
        };
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Poll::Ready(Ok(status)),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            if let Some(fd) = pidfd {
                if watch.is_none() {
                    // SAFETY: the pidfd is owned by this struct and outlives `watch`, which is
                    // declared (so dropped) before it; it stays the same open fd all that time.
                    let registered = unsafe {
                        tokio::io::unix::AsyncFd::register_with_interest(
                            PidfdRef(fd.as_raw_fd()),
                            tokio::io::Interest::READABLE,
                        )
                    };
                    match registered {
                        Ok(w) => *watch = Some(w),
                        Err(e) => return Poll::Ready(Err(e.into())),
                    }
                }
                if let Some(w) = watch {
                    match w.poll_read_ready(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(mut guard)) => {
                            guard.clear_ready();
                            continue;
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    }
                }
            }
            let timer =
                tick.get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(5))));
            match timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => {
                    let next = tokio::time::Instant::now() + Duration::from_millis(5);
                    timer.as_mut().reset(next);
                }
            }
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = child.kill();
        if let Err(mpsc::SendError(mut child)) = reaper().send(child) {
            // No reaper thread: a short blocking wait (the process was just SIGKILLed).
            let _ = child.wait();
        }
    }
}

/// The background thread that reaps killed supervisors (no zombies, and no blocking in `drop`).
fn reaper() -> &'static mpsc::Sender<std::process::Child> {
    static SENDER: OnceLock<mpsc::Sender<std::process::Child>> = OnceLock::new();
    SENDER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<std::process::Child>();
        let spawned = std::thread::Builder::new()
            .name("flint-sandbox-reaper".into())
            .spawn(move || {
                while let Ok(mut child) = rx.recv() {
                    let _ = child.wait();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the sandbox reaper thread: {e}");
        }
        tx
    })
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
    /// Listeners in the sandbox's own network namespace (`isolate_network`), for Flint to serve.
    listeners: Option<NamespaceListeners>,
    id: String,
    /// The sandbox's supervisor (`__sandbox-init` in the host namespaces).
    supervisor: Supervisor,
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

/// A sandbox's /tmp taken out of it before it is stopped, to become the /tmp of the next sandbox
/// of the same function (Lambda keeps /tmp when it restarts a runtime after a timeout). Dropping
/// it deletes the directory, as dropping its sandbox would have.
#[derive(Debug)]
pub struct KeptTmp(pub(crate) crate::ephemeral_storage::TmpDir);

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
        // A frozen program would not see SIGTERM until thawed.
        self.thaw();
        if let Some(control) = &self.control {
            let _ = control.get_ref().write_all(&[crate::handshake::TERMINATE]);
        }
    }

    /// A check that a loopback TCP connection (connecting socket's address, our socket's address)
    /// comes from a process of this sandbox; `None` without a cgroup to list its processes.
    #[allow(clippy::type_complexity)]
    pub fn connection_check(
        &self,
    ) -> Option<
        std::sync::Arc<dyn Fn(std::net::SocketAddr, std::net::SocketAddr) -> bool + Send + Sync>,
    > {
        let procs = self.cgroup.as_ref()?.procs_files().into_iter().next()?;
        Some(std::sync::Arc::new(move |peer, local| {
            crate::socket_owner::connected_from(&procs, peer, local)
        }))
    }

    /// The listeners inside the sandbox's own network namespace (once; `None` without
    /// `isolate_network`): the Runtime API's at 169.254.100.1:9001, Flint's API's at :9000.
    pub fn take_listeners(&mut self) -> Option<NamespaceListeners> {
        self.listeners.take()
    }

    /// Takes this sandbox's /tmp out of it, so that stopping the sandbox leaves it in place for
    /// `Sandboxes::spawn_reusing_tmp`. `None` where /tmp is not a volume of its own (the per-file
    /// fallback) or it was taken already.
    pub fn take_tmp(&mut self) -> Option<KeptTmp> {
        self.tmp.take().map(KeptTmp)
    }

    /// Stops every process of the sandbox (cgroup freezer) until [`Sandbox::thaw`]; false where
    /// the host offers no freezer. An idle environment runs nothing, as on Lambda.
    pub fn freeze(&self) -> bool {
        self.cgroup.as_ref().is_some_and(|cg| cg.freeze())
    }

    /// Lets a frozen sandbox's processes run again.
    pub fn thaw(&self) {
        if let Some(cg) = &self.cgroup {
            cg.thaw();
        }
    }

    /// SIGKILL everything inside; idempotent, does not block.
    pub fn kill(&mut self) {
        if self.exit.is_none() {
            // The supervisor's death takes PID 1 (parent-death signal), and PID 1's the namespace.
            self.supervisor.kill();
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
        let status = self.supervisor.wait().await;
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
            self.supervisor.kill();
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
            image_root: None,
            working_dir: None,
            extra_ro_binds: vec![],
            ro_mounts: vec![],
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
