//! One execution environment: its sandboxed runtime process, its Runtime API endpoint and its log.
//! `start` is the cold start (scratch dirs, /opt, environment variables, spawn); a supervisor task
//! notices the process ending, closes the Runtime API so a waiting invoke learns of it at once,
//! and cleans up.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use flint_runtime_api::RuntimeApi;
use flint_sandbox::{ExitInfo, Sandbox, SandboxError, SandboxSpec};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::logs::{self, EnvLog, Stream};
use crate::{extensions, layers, FunctionNetwork, FunctionSpec, Inner};

/// Why a cold start failed before the runtime ran.
#[derive(Debug)]
pub(crate) enum StartError {
    /// The runtime id cannot run here.
    InvalidRuntime(String),
    /// No bootstrap, or it cannot be executed (`Runtime.InvalidEntrypoint`).
    InvalidEntrypoint(String),
    /// Our own failure (I/O, sandbox set-up).
    Service(String),
    /// The runtime ended as soon as it started, with this exit status: on AWS a managed
    /// runtime's bootstrap (a shell script) runs `AWS_LAMBDA_EXEC_WRAPPER`, so a wrapper that
    /// does not exist is bash's 127 (126: not executable), a `Runtime.ExitError`.
    Exited(i32),
}

pub(crate) struct Environment {
    pub(crate) id: String,
    pub(crate) api: RuntimeApi,
    pub(crate) log: Arc<EnvLog>,
    /// Held only for `kill` and `peak_memory_bytes`, and by the supervisor for one poll at a time.
    sandbox: Mutex<Sandbox>,
    exit: watch::Sender<Option<ExitInfo>>,
    /// False once the environment must not be reused (timed out, died, retired).
    healthy: AtomicBool,
    /// Its extensions were sent SHUTDOWN: it is stopped once they are done.
    retiring: AtomicBool,
    pub(crate) spawned_at: Instant,
    /// Cold-start phases before the runtime's own init: preparing (runtime dir, layers, /tmp,
    /// Runtime API) and the sandbox up to the exec of its program.
    pub(crate) prepare_time: Duration,
    pub(crate) sandbox_time: Duration,
    /// Started for provisioned concurrency (kept while idle, never reaped).
    pub(crate) provisioned: bool,
    pub(crate) init_type: InitType,
    scratch_dir: PathBuf,
    /// Where the function's X-Ray segments go (`Layout::function_traces`, the OTLP export).
    pub(crate) traces: Arc<crate::xray::TraceSink>,
    /// Whether the environment is in use, and frozen (see `freeze.rs`).
    freeze: Mutex<crate::freeze::FreezeState>,
    /// Revoked when the environment is dropped.
    _credentials: Credentials,
    /// An execution role's session expires: the environment is not reused past this (see
    /// [`Environment::credentials_expired`]).
    credentials_expire: Option<Instant>,
    /// Flint's API inside the environment's namespace; stopped with it.
    api_server: ApiServer,
    /// The host directories it runs on (code, layers): kept on disk while it lives.
    pub(crate) code_dirs: Vec<PathBuf>,
}

/// When an environment running on a role session that expires at `expiration` stops being
/// reused: five minutes before (half the time left for a shorter session), so that no invoke
/// starts with credentials about to lapse.
fn retire_before(expiration: std::time::SystemTime) -> Instant {
    let left = expiration
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    Instant::now() + left.saturating_sub(Duration::from_secs(300).min(left / 2))
}

/// An environment's issued credentials, valid for as long as it lives.
struct Credentials {
    issued: crate::Issued,
    registry: crate::IssuedCredentials,
}

impl Drop for Credentials {
    fn drop(&mut self) {
        self.registry.revoke(&self.issued.access_key_id);
    }
}

/// The task serving Flint's API inside an environment's namespace, aborted with it.
/// The tasks serving an isolated environment's namespace: Flint's API, endpoint forwarders, the
/// X-Ray daemon address.
struct ApiServer(Vec<tokio::task::AbortHandle>);

impl ApiServer {
    fn stop(&self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How an environment's init came about (`AWS_LAMBDA_INITIALIZATION_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InitType {
    /// A cold start for an invoke.
    OnDemand,
    /// Started ahead of invokes for provisioned concurrency.
    Provisioned,
}

impl InitType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::OnDemand => "on-demand",
            Self::Provisioned => "provisioned-concurrency",
        }
    }
}

impl Environment {
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire) && self.exit.borrow().is_none()
    }

    /// Its execution role's session is about to expire: it takes no further invokes (retired
    /// when the pool or the reaper finds it idle, stopped when it comes back from one).
    pub(crate) fn credentials_expired(&self) -> bool {
        self.credentials_expire
            .is_some_and(|at| Instant::now() >= at)
    }

    /// Before an invocation: marks the environment in use, thawing it if it was frozen.
    pub(crate) fn begin_use(&self) {
        let mut st = self.freeze.lock();
        st.busy = true;
        if st.frozen {
            self.sandbox.lock().thaw();
            st.frozen = false;
        }
    }

    /// Back in its pool, idle: it may be frozen after a while.
    pub(crate) fn end_use(&self) {
        let mut st = self.freeze.lock();
        st.busy = false;
        st.idle_since = Instant::now();
    }

    /// Freezes the environment if it has been idle for `after` (true if it froze it now).
    pub(crate) fn freeze_if_idle(&self, after: Duration, now: Instant) -> bool {
        let mut st = self.freeze.lock();
        if st.busy || st.frozen || now.duration_since(st.idle_since) < after || !self.is_healthy() {
            return false;
        }
        st.frozen = self.sandbox.lock().freeze();
        st.frozen
    }

    /// Asks the runtime to stop (SIGTERM to the program); `kill` if it does not.
    pub(crate) fn terminate(&self) {
        self.healthy.store(false, Ordering::Release);
        self.sandbox.lock().terminate();
    }

    /// Flint is stopping: extensions subscribed to `SHUTDOWN` get it (spindown) and their
    /// deadline, then the runtime is asked to stop ([`Environment::terminate`]).
    pub(crate) fn shut_down(self: &Arc<Self>) {
        self.shut_down_extensions_then(
            flint_runtime_api::ShutdownReason::Spindown,
            Self::terminate,
            |env| {
                // From here on a `kill` (the engine's, after its grace) stops it at once.
                env.retiring.store(false, Ordering::Release);
                env.terminate();
            },
        );
    }

    /// Takes the environment's /tmp out of it (before it is stopped), for a successor.
    pub(crate) fn take_tmp(&self) -> Option<flint_sandbox::KeptTmp> {
        self.sandbox.lock().take_tmp()
    }

    /// Retires the environment as Lambda does: extensions subscribed to `SHUTDOWN` get it and
    /// AWS's deadline (2 s) to finish, then everything is stopped. Without such extensions
    /// this is [`Environment::kill`].
    pub(crate) fn retire(self: &Arc<Self>, reason: flint_runtime_api::ShutdownReason) {
        self.shut_down_extensions_then(reason, Self::kill, Self::stop_now);
    }

    /// `SHUTDOWN` (`reason`) to the extensions subscribed to it, AWS's deadline for them, then
    /// `finish`, in the background; without such extensions (or outside a runtime) `otherwise`
    /// at once. Until `finish`, a `kill` from elsewhere (the pool refusing an unhealthy
    /// environment) waits for the SHUTDOWN; a second call while one runs does nothing.
    fn shut_down_extensions_then(
        self: &Arc<Self>,
        reason: flint_runtime_api::ShutdownReason,
        otherwise: fn(&Self),
        finish: fn(&Self),
    ) {
        if !self.api.has_external_extensions() {
            otherwise(self);
            return;
        }
        self.healthy.store(false, Ordering::Release);
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            otherwise(self);
            return;
        };
        if self.retiring.swap(true, Ordering::AcqRel) {
            return;
        }
        let env = self.clone();
        handle.spawn(async move {
            env.begin_use();
            env.api
                .shut_down_extensions(reason, extensions::SHUTDOWN_DEADLINE)
                .await;
            finish(&env);
        });
    }

    /// Stops the environment (SIGKILL of everything inside); the supervisor cleans up. An
    /// environment whose extensions are handling SHUTDOWN stops when they are done.
    pub(crate) fn kill(&self) {
        self.healthy.store(false, Ordering::Release);
        if !self.retiring.load(Ordering::Acquire) {
            self.sandbox.lock().kill();
        }
    }

    fn stop_now(&self) {
        self.healthy.store(false, Ordering::Release);
        self.sandbox.lock().kill();
    }

    /// Max memory used so far, in MB as the REPORT line counts them.
    pub(crate) fn max_memory_used_mb(&self) -> u64 {
        let bytes = self.sandbox.lock().peak_memory_bytes().unwrap_or(0);
        bytes.div_ceil(1024 * 1024)
    }

    /// How the process ended (waits briefly: the supervisor records it right after the exit).
    pub(crate) async fn exit_info(&self) -> Option<ExitInfo> {
        let mut rx = self.exit.subscribe();
        let waited =
            tokio::time::timeout(Duration::from_secs(2), rx.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(info)) => *info,
            _ => None,
        }
    }
}

/// Cold start: prepares and spawns one environment of `spec`. `capture_tail` starts the first
/// invocation's tail buffer now, so that init output is part of it.
pub(crate) async fn start(
    inner: &Arc<Inner>,
    spec: &Arc<FunctionSpec>,
    capture_tail: bool,
    init_type: InitType,
    kept_tmp: Option<flint_sandbox::KeptTmp>,
) -> Result<Arc<Environment>, StartError> {
    let begun = Instant::now();
    let code_dirs: Vec<PathBuf> = std::iter::once(spec.code_dir.clone())
        .chain(spec.layer_dirs.iter().cloned())
        .collect();
    // Until it is registered, the code it is about to mount must stay where it is.
    let _starting = inner.starting(code_dirs.clone());
    let traces = Arc::new(inner.trace_sink(spec));
    let runtime_dir = inner.runtime_dir().await.map_err(StartError::Service)?;
    let opt_dir = if spec.image.is_some() || spec.layer_dirs.is_empty() {
        None
    } else if let [only] = spec.layer_dirs.as_slice() {
        // One layer is /opt as it is (a hot-reloaded one then shows edits as they happen).
        Some(only.clone())
    } else {
        let root = inner.config.layout.merged_layers();
        let dirs = spec.layer_dirs.clone();
        // A hot-reloaded layer changed: merge again rather than reuse the earlier tree.
        let generation = inner.hot_reload.generation(&spec.hot_reload_dirs);
        let merged = tokio::task::spawn_blocking(move || layers::merged(&root, &dirs, generation))
            .await
            .map_err(|e| StartError::Service(format!("merging layers: {e}")))?
            .map_err(|e| StartError::Service(format!("merging layers: {e}")))?;
        Some(merged)
    };

    let launch = match &spec.image {
        // A container image: its entry point and command, in its own root.
        Some(image) => crate::image::launch(image).map_err(StartError::InvalidEntrypoint)?,
        None => inner
            .runtimes
            .resolve(&spec.runtime, &spec.code_dir, opt_dir.as_deref())
            .map_err(|e| match e.function_error_type() {
                // No bootstrap: the function's fault, reported in the invoke payload.
                Some(_) => StartError::InvalidEntrypoint(e.to_string()),
                None => StartError::InvalidRuntime(e.to_string()),
            })?,
    };
    // Managed runtimes run through the function's wrapper script when it names one.
    let wrapper = spec
        .environment
        .get("AWS_LAMBDA_EXEC_WRAPPER")
        .filter(|w| spec.image.is_none() && !spec.runtime.starts_with("provided") && !w.is_empty())
        .cloned();
    let launch = match &wrapper {
        Some(wrapper) => launch.with_exec_wrapper(wrapper),
        None => launch,
    };
    // External extensions (layers' /opt/extensions, or an image's own) start first, through
    // the launcher (a bash script: an image needs its own bash, as AWS's base images have).
    let extension_names = match &spec.image {
        Some(image) => extensions::discover(Some(&image.rootfs.join("opt"))),
        None => extensions::discover(opt_dir.as_deref()),
    };
    let launch = match &spec.image {
        _ if extension_names.is_empty() => launch,
        None => extensions::with_launcher(launch, &extension_names),
        Some(image) => match crate::image::bash(image) {
            Some(bash) => {
                let mut launch = extensions::with_launcher(launch, &extension_names);
                launch.program = bash;
                launch
            }
            None => {
                tracing::warn!(
                    function = %spec.function_name,
                    "the image has extensions in /opt/extensions but no bash to start them with: \
                     they are not started"
                );
                launch
            }
        },
    };

    // The execution role's session, when Flint gets one from STS (else it issues its own below).
    let role_session = match inner.role_credentials.get() {
        Some(source) if !spec.role.is_empty() => {
            let session_name = crate::network::role_session_name(&spec.function_name);
            let session = source
                .assume(&spec.role, &session_name, &spec.region)
                .await
                .map_err(|why| {
                    StartError::Service(format!(
                        "assuming the execution role {} for {}: {why}",
                        spec.role, spec.function_name
                    ))
                })?;
            Some(session)
        }
        _ => None,
    };

    let id = format!("{:016x}", rand::random::<u64>());
    let scratch_dir = inner.config.layout.environments().join(&id);
    let tmp_dir = scratch_dir.join("tmp");
    make_tmp_dir(&tmp_dir)
        .map_err(|e| StartError::Service(format!("creating {}: {e}", tmp_dir.display())))?;

    // --- isolation: the environment's network and credentials ---
    let isolated = inner.config.function_network == FunctionNetwork::Isolated;
    let api = if isolated {
        // Served on a listener inside the environment's namespace once the sandbox exists.
        RuntimeApi::in_namespace(std::net::SocketAddr::from((
            flint_sandbox::NAMESPACE_HOST,
            flint_sandbox::RUNTIME_API_PORT,
        )))
    } else {
        // Held shut until the sandbox exists: then only its own processes may connect.
        RuntimeApi::bind_gated().map_err(|e| StartError::Service(format!("runtime api: {e}")))?
    };
    api.set_function(flint_runtime_api::FunctionInfo {
        function_name: spec.function_name.clone(),
        function_version: spec.version.clone(),
        handler: spec.handler.clone(),
        account_id: spec.account.clone(),
    });
    let has_extensions = !extension_names.is_empty();
    if has_extensions {
        api.expect_extensions(extension_names);
    }
    let (issued, credentials_expire) = match role_session {
        Some(session) => {
            let expire = session.expiration.map(retire_before);
            (inner.issued.register(session, &spec.account), expire)
        }
        None => (inner.issued.issue(&spec.account), None),
    };
    let credentials = Credentials {
        issued,
        registry: inner.issued.clone(),
    };
    let lambda_endpoint = isolated.then(crate::network::lambda_endpoint_in_namespace);
    // The resolv.conf the sandbox gets follows the host's (and whether outbound access is on).
    if let Some(dns) = &inner.dns {
        dns.refresh(inner.sandboxes.has_outbound());
    }
    // Endpoints on the host's loopback become forwarders inside the namespace.
    let in_namespace = isolated.then(|| inner.namespace_endpoints.read().clone());
    // --- end isolation ---
    let log_stream = logs::log_stream_name(&spec.version);
    let endpoints = inner.service_endpoints.read().clone();
    let mut env = environment_variables_with(
        spec,
        &launch.env,
        api.address(),
        &log_stream,
        init_type,
        in_namespace
            .as_ref()
            .map_or(&endpoints[..], |ns| &ns.vars[..]),
    );
    set_credentials(&mut env, &credentials.issued, lambda_endpoint.as_deref());
    // The host network: the X-Ray daemon's address is a loopback port of this environment's own.
    let host_xray = if isolated {
        None
    } else {
        match std::net::UdpSocket::bind(("127.0.0.1", 0)).and_then(|s| Ok((s.local_addr()?, s))) {
            Ok((addr, socket)) => {
                set_xray_daemon(&mut env, addr);
                Some(socket)
            }
            Err(e) => {
                tracing::warn!("no X-Ray daemon address for an environment: {e}");
                None
            }
        }
    };

    let sandbox_spec = SandboxSpec {
        id: id.clone(),
        program: launch.program.clone(),
        args: launch.args.clone(),
        env,
        code_dir: spec.code_dir.clone(),
        opt_dir,
        runtime_dir: spec.image.is_none().then_some(runtime_dir),
        image_root: spec.image.as_ref().map(|i| i.rootfs.clone()),
        working_dir: spec
            .image
            .as_ref()
            .map(|i| crate::image::working_dir(i).into()),
        extra_ro_binds: launch.ro_binds.clone(),
        ro_mounts: launch.ro_mounts.clone(),
        tmp_dir,
        tmp_size_mb: spec.ephemeral_storage_mb,
        memory_mb: spec.memory_mb,
        isolate_network: isolated,
    };
    let spawned_at = Instant::now();
    // Spawning waits for the sandbox's set-up handshake (milliseconds, up to seconds on a busy
    // host): keep it off the async workers that serve warm invokes.
    let sandboxes = inner.sandboxes.clone();
    let spawned =
        tokio::task::spawn_blocking(move || sandboxes.spawn_reusing_tmp(&sandbox_spec, kept_tmp))
            .await
            .map_err(|e| StartError::Service(format!("starting sandbox: {e}")));
    let sandbox_time = spawned_at.elapsed();
    let mut sandbox = match spawned {
        Ok(Ok(s)) => s,
        Err(e) => {
            remove_scratch(scratch_dir);
            return Err(e);
        }
        Ok(Err(e)) => {
            remove_scratch(scratch_dir);
            return Err(match e {
                SandboxError::Start { program, reason }
                    if wrapper.as_deref() == Some(program.as_str()) =>
                {
                    StartError::Exited(wrapper_exit_status(&reason))
                }
                SandboxError::Start { program, reason } => {
                    StartError::InvalidEntrypoint(format!("fork/exec {program}: {reason}"))
                }
                SandboxError::Io(e) => StartError::Service(format!("starting sandbox: {e}")),
            });
        }
    };

    let mut api_server = Vec::new();
    if let Some(socket) = host_xray {
        api_server.push(crate::network::accept_xray_segments(socket, traces.clone()));
    }
    if isolated {
        let Some(listeners) = sandbox.take_listeners() else {
            remove_scratch(scratch_dir);
            return Err(StartError::Service(
                "starting sandbox: no listeners in its network namespace".into(),
            ));
        };
        // Telemetry goes to extensions' listeners inside the namespace (before the API is
        // served: an extension may subscribe as soon as it runs).
        let connect = match listeners.connector() {
            Ok(c) => Some(std::sync::Arc::new(move |port: u16| {
                c.connect(
                    std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                    std::time::Duration::from_secs(1),
                )
            }) as flint_runtime_api::ConnectInside),
            Err(e) => {
                tracing::debug!("no connector into the environment's namespace: {e}");
                None
            }
        };
        api.telemetry_in_namespace(connect);
        api.attach(listeners.runtime_api);
        let forwards = in_namespace
            .as_deref()
            .map_or(&[][..], |ns| &ns.forwards[..]);
        for (port, listener) in listeners.tcp {
            if let Some(f) = forwards.iter().find(|f| f.inside_port == port) {
                api_server.push(crate::network::forward(listener, f.target));
            }
        }
        for (_, socket) in listeners.udp {
            api_server.push(crate::network::accept_xray_segments(socket, traces.clone()));
        }
        if let (Some(sockets), Some(dns)) = (listeners.dns, &inner.dns) {
            api_server.push(crate::dns::serve_udp(sockets.udp, dns.clone()));
            api_server.push(crate::dns::serve_tcp(sockets.tcp, dns.clone()));
        }
        if let Some(serve) = inner.api_in_namespace.get() {
            api_server.push(serve(
                listeners.lambda_api,
                crate::SandboxCaller {
                    account: spec.account.clone(),
                    access_key_id: credentials.issued.access_key_id.clone(),
                },
            ));
        }
    } else {
        let check = sandbox.connection_check();
        if check.is_none() {
            tracing::debug!("environment {id}: no cgroup to tell its processes by; its Runtime API is open to any local process");
        }
        api.admit(check);
    }

    let stdout = sandbox
        .stdout
        .take()
        .and_then(|s| into_pipe(s.into_owned_fd()));
    let stderr = sandbox
        .stderr
        .take()
        .and_then(|s| into_pipe(s.into_owned_fd()));
    let log_path = logs::stream_path(
        &inner.log_dir(&spec.account, &spec.region, &spec.function_name),
        &log_stream,
    );
    let json = spec.log_format.eq_ignore_ascii_case("json");
    let log = EnvLog::new(
        &inner.log_writer,
        log_path,
        json,
        stdout,
        stderr,
        capture_tail,
        {
            let mut first = logs::init_start_line(json, &spec.runtime, &spec.region);
            if let Some(stand_in) = inner.runtimes.substitute(&spec.runtime) {
                first.push_str(&logs::stand_in_line(json, &spec.runtime, &stand_in));
            }
            first
        },
    )
    .with_log_group(&spec.log_group)
    .with_telemetry(api.telemetry());
    let log = Arc::new(if has_extensions {
        log.with_extensions()
    } else {
        log
    });
    tokio::spawn(log.clone().pump(Stream::Stdout));
    tokio::spawn(log.clone().pump(Stream::Stderr));

    let (exit, _) = watch::channel(None);
    let env = Arc::new(Environment {
        id,
        api,
        log,
        sandbox: Mutex::new(sandbox),
        exit,
        healthy: AtomicBool::new(true),
        retiring: AtomicBool::new(false),
        spawned_at,
        prepare_time: spawned_at.duration_since(begun),
        sandbox_time,
        provisioned: init_type == InitType::Provisioned,
        init_type,
        scratch_dir,
        traces,
        freeze: Mutex::new(crate::freeze::FreezeState::in_use()),
        _credentials: credentials,
        credentials_expire,
        api_server: ApiServer(api_server),
        code_dirs,
    });
    inner.register(&env);
    tokio::spawn(supervise(env.clone(), Arc::downgrade(inner)));
    Ok(env)
}

fn into_pipe(
    fd: std::io::Result<std::os::fd::OwnedFd>,
) -> Option<tokio::net::unix::pipe::Receiver> {
    match fd.and_then(tokio::net::unix::pipe::Receiver::from_owned_fd) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!("cannot read an environment's output: {e}");
            None
        }
    }
}

/// Waits for the process to end, then records it, wakes any invoke waiting on the environment
/// and cleans up.
async fn supervise(env: Arc<Environment>, inner: Weak<Inner>) {
    let info = std::future::poll_fn(|cx| {
        let mut sandbox = env.sandbox.lock();
        let mut wait = std::pin::pin!(sandbox.wait());
        wait.as_mut().poll(cx)
    })
    .await;
    env.healthy.store(false, Ordering::Release);
    env.exit.send_replace(Some(info));
    env.api.close();
    env.api_server.stop();
    env.log.drain();
    env.log.close();
    // Make sure nothing is left behind in the sandbox (children of a dead init, its cgroup).
    env.sandbox.lock().kill();
    if let Some(inner) = inner.upgrade() {
        inner.deregister(&env.id);
    }
    remove_scratch(env.scratch_dir.clone());
}

fn remove_scratch(dir: PathBuf) {
    tokio::task::spawn_blocking(move || {
        let _ = std::fs::remove_dir_all(dir);
    });
}

/// A private, disk-backed /tmp that the function's user inside the sandbox can write to,
/// whatever uid the sandbox maps it to.
fn make_tmp_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777))
}

/// Variables the function's own configuration may not override (AWS rejects or ignores them).
const RESERVED: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// The complete environment of the runtime process without service endpoints (see
/// [`environment_variables_with`]).
#[cfg(test)]
pub(crate) fn environment_variables(
    spec: &FunctionSpec,
    runtime_env: &[(String, String)],
    runtime_api: &str,
    log_stream: &str,
    init_type: InitType,
) -> Vec<(String, String)> {
    environment_variables_with(spec, runtime_env, runtime_api, log_stream, init_type, &[])
}

/// The complete environment of the runtime process: Lambda's own variables, the service
/// endpoints Flint was given (`AWS_ENDPOINT_URL_LAMBDA` and the like: the function's own SDK
/// calls reach Flint and the user's chosen services), then the runtime's, then the function's
/// (which win, except over the reserved ones).
pub(crate) fn environment_variables_with(
    spec: &FunctionSpec,
    runtime_env: &[(String, String)],
    runtime_api: &str,
    log_stream: &str,
    init_type: InitType,
    service_endpoints: &[(String, String)],
) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = Vec::with_capacity(32 + spec.environment.len());
    let mut set = |k: &str, v: String| {
        if let Some(slot) = vars.iter_mut().find(|(name, _)| name == k) {
            slot.1 = v;
        } else {
            vars.push((k.to_string(), v));
        }
    };
    set("AWS_LAMBDA_FUNCTION_NAME", spec.function_name.clone());
    set("AWS_LAMBDA_FUNCTION_VERSION", spec.version.clone());
    set(
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        spec.memory_mb.to_string(),
    );
    set("AWS_REGION", spec.region.clone());
    set("AWS_DEFAULT_REGION", spec.region.clone());
    set("LAMBDA_TASK_ROOT", "/var/task".into());
    set("LAMBDA_RUNTIME_DIR", "/var/runtime".into());
    // An image's handler is its command's first word (the base images' entry point takes it
    // as its argument and exports it again).
    let handler = match &spec.image {
        Some(image) => image.command.first().cloned().unwrap_or_default(),
        None => spec.handler.clone(),
    };
    set("_HANDLER", handler);
    set("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string());
    set("AWS_LAMBDA_LOG_GROUP_NAME", spec.log_group.clone());
    set("AWS_LAMBDA_LOG_STREAM_NAME", log_stream.to_string());
    set("AWS_LAMBDA_INITIALIZATION_TYPE", init_type.as_str().into());
    set("TZ", ":UTC".into());
    // What the X-Ray SDK does without a trace header; Lambda's default, the function may change it.
    set("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR".into());
    set("LANG", "en_US.UTF-8".into());
    // AWS's managed runtimes (but Java's) start from a bash bootstrap script, which leaves its
    // working directory and shell level in the runtime's environment (recorded by LocalStack's
    // test_introspection_invoke); provided runtimes and images start their program directly.
    if spec.image.is_none()
        && !spec.runtime.starts_with("provided")
        && !spec.runtime.starts_with("java")
    {
        set("PWD", "/var/task".into());
        set("SHLVL", "0".into());
    }
    set(
        "PATH",
        "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin".into(),
    );
    set(
        "LD_LIBRARY_PATH",
        "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib"
            .into(),
    );
    if spec.log_format.eq_ignore_ascii_case("json") {
        set("AWS_LAMBDA_LOG_FORMAT", "JSON".into());
        // Lambda's default ApplicationLogLevel; a configured level reaches the runtime as the
        // same variable in the function's environment (which wins below).
        set("AWS_LAMBDA_LOG_LEVEL", "INFO".into());
    }
    for (k, v) in service_endpoints {
        set(k, v.clone());
    }
    for (k, v) in runtime_env {
        set(k, v.clone());
    }
    for (k, v) in &spec.environment {
        if !RESERVED.contains(&k.as_str()) {
            set(k, v.clone());
        }
    }
    vars
}

/// The environment's issued credentials, and where it reaches Flint's API (isolated network);
/// set last, so that the function's own variables cannot replace them.
fn set_credentials(
    vars: &mut Vec<(String, String)>,
    issued: &crate::Issued,
    lambda_endpoint: Option<&str>,
) {
    let mut set = |k: &str, v: &str| {
        vars.retain(|(name, _)| name != k);
        vars.push((k.to_string(), v.to_string()));
    };
    set("AWS_ACCESS_KEY_ID", &issued.access_key_id);
    set("AWS_SECRET_ACCESS_KEY", &issued.secret_access_key);
    set("AWS_SESSION_TOKEN", &issued.session_token);
    if let Some(url) = lambda_endpoint {
        set("AWS_ENDPOINT_URL_LAMBDA", url);
    }
    if lambda_endpoint.is_some() {
        // The X-Ray daemon's address (isolated network: Flint accepts segments there).
        let addr = std::net::SocketAddr::from((
            flint_sandbox::NAMESPACE_HOST,
            crate::network::XRAY_DAEMON_PORT,
        ));
        set_xray_daemon(vars, addr);
    }
}

/// Where the X-Ray SDKs send segments: `AWS_XRAY_DAEMON_ADDRESS` and its two halves, as Lambda
/// sets them.
fn set_xray_daemon(vars: &mut Vec<(String, String)>, addr: std::net::SocketAddr) {
    for (k, v) in [
        ("AWS_XRAY_DAEMON_ADDRESS", addr.to_string()),
        ("_AWS_XRAY_DAEMON_ADDRESS", addr.ip().to_string()),
        ("_AWS_XRAY_DAEMON_PORT", addr.port().to_string()),
    ] {
        vars.retain(|(name, _)| name != k);
        vars.push((k.to_string(), v));
    }
}

/// Lookup of every variable as a map (tests and diagnostics).
#[cfg(test)]
fn as_map(vars: &[(String, String)]) -> std::collections::HashMap<&str, &str> {
    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn spec() -> FunctionSpec {
        FunctionSpec {
            snapshot_id: "s".into(),
            account: "000000000000".into(),
            region: "eu-west-1".into(),
            function_name: "fn".into(),
            version: "$LATEST".into(),
            function_arn: "arn:aws:lambda:eu-west-1:000000000000:function:fn".into(),
            runtime: "provided.al2023".into(),
            handler: "h.handler".into(),
            role: String::new(),
            code_dir: "/nonexistent".into(),
            layer_dirs: vec![],
            hot_reload_dirs: vec![],
            memory_mb: 256,
            timeout_secs: 3,
            ephemeral_storage_mb: 512,
            environment: BTreeMap::from([
                ("AWS_REGION".to_string(), "xx".to_string()),
                ("LANG".to_string(), "C".to_string()),
                ("MINE".to_string(), "1".to_string()),
            ]),
            log_group: "/aws/lambda/fn".into(),
            log_format: "Text".into(),
            reserved_concurrency: None,
            tracing_active: false,
            image: None,
        }
    }

    #[test]
    fn function_variables_win_except_reserved_ones() {
        let runtime = vec![(
            "AWS_EXECUTION_ENV".to_string(),
            "AWS_Lambda_python3.12".to_string(),
        )];
        let vars = environment_variables(
            &spec(),
            &runtime,
            "127.0.0.1:9",
            "2024/01/01/[$LATEST]ab",
            InitType::OnDemand,
        );
        let m = as_map(&vars);
        assert_eq!(m["AWS_LAMBDA_INITIALIZATION_TYPE"], "on-demand");
        assert_eq!(m["AWS_XRAY_CONTEXT_MISSING"], "LOG_ERROR");
        assert_eq!(m["AWS_REGION"], "eu-west-1");
        assert_eq!(m["LANG"], "C");
        assert_eq!(m["MINE"], "1");
        assert_eq!(m["AWS_EXECUTION_ENV"], "AWS_Lambda_python3.12");
        assert_eq!(m["AWS_LAMBDA_RUNTIME_API"], "127.0.0.1:9");
        assert_eq!(m["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
        assert_eq!(m["_HANDLER"], "h.handler");
        assert!(!m.contains_key("AWS_LAMBDA_LOG_FORMAT"));
        assert_eq!(vars.len(), m.len(), "no variable is listed twice");
    }

    #[test]
    fn managed_runtimes_have_the_bootstrap_scripts_pwd_and_shlvl() {
        let vars = |runtime: &str| {
            let mut s = spec();
            s.runtime = runtime.into();
            let vars = environment_variables(&s, &[], "a:1", "l", InitType::OnDemand);
            as_map(&vars)
                .into_iter()
                .filter(|(k, _)| *k == "PWD" || *k == "SHLVL")
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let mut python = vars("python3.12");
        python.sort();
        assert_eq!(
            python,
            vec![
                ("PWD".to_string(), "/var/task".to_string()),
                ("SHLVL".to_string(), "0".to_string())
            ]
        );
        assert!(vars("provided.al2023").is_empty());
        assert!(vars("java21").is_empty());
    }

    #[test]
    fn service_endpoints_are_set_and_the_function_may_override_them() {
        let mut spec = spec();
        spec.environment.insert(
            "AWS_ENDPOINT_URL_SQS".to_string(),
            "http://mine:1".to_string(),
        );
        let endpoints = [
            (
                "AWS_ENDPOINT_URL_LAMBDA".to_string(),
                "http://127.0.0.1:9000".to_string(),
            ),
            (
                "AWS_ENDPOINT_URL_SQS".to_string(),
                "http://127.0.0.1:5000".to_string(),
            ),
        ];
        let vars =
            environment_variables_with(&spec, &[], "a:1", "s", InitType::OnDemand, &endpoints);
        let m = as_map(&vars);
        assert_eq!(m["AWS_ENDPOINT_URL_LAMBDA"], "http://127.0.0.1:9000");
        assert_eq!(m["AWS_ENDPOINT_URL_SQS"], "http://mine:1");
    }

    #[test]
    fn json_logs_default_to_the_info_level_unless_configured() {
        let mut json = spec();
        json.log_format = "JSON".into();
        let vars = environment_variables(&json, &[], "a:1", "s", InitType::OnDemand);
        assert_eq!(as_map(&vars)["AWS_LAMBDA_LOG_FORMAT"], "JSON");
        assert_eq!(as_map(&vars)["AWS_LAMBDA_LOG_LEVEL"], "INFO");
        json.environment
            .insert("AWS_LAMBDA_LOG_LEVEL".into(), "WARN".into());
        let vars = environment_variables(&json, &[], "a:1", "s", InitType::OnDemand);
        assert_eq!(as_map(&vars)["AWS_LAMBDA_LOG_LEVEL"], "WARN");
        let text = environment_variables(&spec(), &[], "a:1", "s", InitType::OnDemand);
        assert!(!as_map(&text).contains_key("AWS_LAMBDA_LOG_LEVEL"));
    }

    #[test]
    fn provisioned_environments_say_so_in_their_initialization_type() {
        let vars = environment_variables(&spec(), &[], "127.0.0.1:9", "s", InitType::Provisioned);
        assert_eq!(
            as_map(&vars)["AWS_LAMBDA_INITIALIZATION_TYPE"],
            "provisioned-concurrency"
        );
    }

    #[test]
    fn issued_credentials_and_the_endpoint_replace_the_functions_own() {
        let mut vars = vec![
            ("AWS_ACCESS_KEY_ID".to_string(), "mine".to_string()),
            (
                "AWS_ENDPOINT_URL_LAMBDA".to_string(),
                "http://x".to_string(),
            ),
        ];
        let issued = crate::IssuedCredentials::default().issue("000000000000");
        set_credentials(&mut vars, &issued, Some("http://169.254.100.1:9000"));
        let m = as_map(&vars);
        assert_eq!(m["AWS_ACCESS_KEY_ID"], issued.access_key_id);
        assert_eq!(m["AWS_SESSION_TOKEN"], issued.session_token);
        assert_eq!(m["AWS_ENDPOINT_URL_LAMBDA"], "http://169.254.100.1:9000");
        assert_eq!(vars.len(), m.len(), "no variable is listed twice");
    }
}

/// The exit status bash gives a command it cannot run: 126 when it is there but may not be
/// executed, 127 when it is not found.
fn wrapper_exit_status(reason: &str) -> i32 {
    if reason.to_ascii_lowercase().contains("permission denied") {
        126
    } else {
        127
    }
}

#[cfg(test)]
mod wrapper_tests {
    use super::wrapper_exit_status;

    #[test]
    fn a_wrapper_that_cannot_run_exits_as_bash_would() {
        assert_eq!(wrapper_exit_status("no such file or directory"), 127);
        assert_eq!(wrapper_exit_status("permission denied"), 126);
    }
}
