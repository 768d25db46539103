//! `flint serve`: the one place where Flint's services are put together. It takes the data dir
//! (one server per data dir: `flint.lock`), opens the store, discovers runtimes, prepares
//! sandboxing, opens the control plane, starts the data planes — the engine (sync invokes) and
//! events (the async queue) — each on its own subscription to the control plane's change feed,
//! connects the engine's provisioned-concurrency report back to the control plane, and serves the
//! Lambda API until SIGINT/SIGTERM, then stops the data planes and every sandbox.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to serve the Lambda API on (use it as the AWS endpoint URL).
    #[arg(long, default_value = "127.0.0.1:9000", env = "FLINT_LISTEN")]
    listen: SocketAddr,
    /// Directory for all state: the database, code and layer zips, logs, scratch space.
    #[arg(long, default_value_os_t = crate::default_data_dir(), env = "FLINT_DATA_DIR")]
    data_dir: PathBuf,
    /// AWS shared-credentials file (INI): only these keys are accepted and signatures are
    /// verified. Without it, any well-formed SigV4 signature is accepted.
    #[arg(long, env = "FLINT_CREDENTIALS_FILE")]
    credentials_file: Option<PathBuf>,
    /// Serve on a non-loopback address even without --credentials-file (anyone who can reach
    /// the address can then run code on this machine).
    #[arg(long)]
    allow_unauthenticated_remote: bool,
    /// Stop an execution environment after it has been idle this many seconds.
    #[arg(long, default_value_t = 300)]
    idle_timeout_secs: u64,
    /// Account-wide concurrency limit (AWS's default is 1000).
    #[arg(long, default_value_t = 1000)]
    account_concurrency: u32,
    /// Ask the kernel (PM QoS, /dev/cpu_dma_latency) to keep idle CPUs quick to wake: `auto`
    /// holds the request only while invokes are flowing (warm invokes are a chain of wake-ups;
    /// on VMs whose idle vCPUs halt, each costs ~40 µs), `on` holds it always, `off` never asks.
    #[arg(long, value_enum, default_value_t = crate::cpu_latency::Mode::Auto, env = "FLINT_CPU_LATENCY_QOS")]
    cpu_latency_qos: crate::cpu_latency::Mode,
    /// Where other AWS services live (SQS, SNS, EventBridge, S3: destinations and dead-letter
    /// queues), e.g. an emulator's `http://127.0.0.1:5000`. Without it, the AWS SDK's own
    /// configuration applies: `AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL`, the profile, or
    /// real AWS. A per-service variable still wins over this. Functions get it as
    /// `AWS_ENDPOINT_URL`.
    #[arg(long, env = "FLINT_AWS_ENDPOINT_URL")]
    aws_endpoint_url: Option<String>,
    /// Whose credentials functions run with. `flint`: temporary keys Flint issues to each
    /// environment, good for Flint's own API (as the function's account) and nothing else.
    /// `assume-role`: each environment gets a session of the function's execution role from
    /// STS `AssumeRole` (through `--aws-endpoint-url`, `AWS_ENDPOINT_URL_STS`, or real AWS with
    /// Flint's own AWS credentials), as on AWS: its calls to other services act as that role,
    /// and Flint's API accepts them too. An environment whose role cannot be assumed does not
    /// start (the invoke fails, saying why); one is not reused within five minutes of its
    /// session's expiry.
    #[arg(long, value_enum, default_value_t = FunctionCredentials::Flint, env = "FLINT_FUNCTION_CREDENTIALS")]
    function_credentials: FunctionCredentials,
    /// Seconds before the first retry of a failed asynchronous invocation (the second waits
    /// twice as long). AWS waits about a minute; less is handy in tests and development.
    #[arg(long, default_value_t = 60, env = "FLINT_ASYNC_RETRY_DELAY_SECS")]
    async_retry_delay_secs: u64,
    /// Milliseconds an update (UpdateFunctionCode/Configuration) stays `LastUpdateStatus:
    /// InProgress`; a second update meanwhile gets AWS's 409. AWS takes a second or more; the
    /// default is long enough that the answer right after an update says InProgress, as AWS's
    /// does, and short enough for waiters (boto3's `function_updated_v2` polls every second).
    #[arg(long, default_value_t = 500, env = "FLINT_UPDATE_SETTLE_MS")]
    update_settle_ms: u64,
    /// Threads serving the API and the Runtime APIs. Default: half the CPUs (at least one) —
    /// the functions need the rest, and fewer threads mean fewer hand-offs per invoke.
    #[arg(long, env = "FLINT_WORKER_THREADS")]
    worker_threads: Option<usize>,
    // --- isolation (issue 12): limits of the API listener ---
    /// Seconds a client has to send a request's headers; also how long a kept-alive API
    /// connection may stay idle.
    #[arg(long, default_value_t = 30, env = "FLINT_HEADER_READ_TIMEOUT_SECS")]
    header_read_timeout_secs: u64,
    /// API connections served at once (further clients wait to be accepted).
    #[arg(long, default_value_t = 4096, env = "FLINT_MAX_CONNECTIONS")]
    max_connections: usize,
    /// Delete a function's log streams last written more than this many days ago (0: keep
    /// them forever).
    #[arg(long, default_value_t = 7, env = "FLINT_LOG_RETENTION_DAYS")]
    log_retention_days: u64,
    /// Keep at most this many MiB of log streams per function, deleting the oldest first (0:
    /// no cap).
    #[arg(long, default_value_t = 1024, env = "FLINT_LOG_RETENTION_MB")]
    log_retention_mb: u64,
    /// Also export the functions' X-Ray segments to an OpenTelemetry collector as OTLP/HTTP JSON
    /// spans: the collector's base URL (spans go to `<URL>/v1/traces`), as
    /// OTEL_EXPORTER_OTLP_ENDPOINT; OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the full URL) is read
    /// too. Unset: no export.
    #[arg(long)]
    otlp_endpoint: Option<String>,
    /// Where functions run on the network. `isolated` (the default) gives each execution
    /// environment a network namespace of its own: the Runtime API at 169.254.100.1:9001,
    /// Flint's API at AWS_ENDPOINT_URL_LAMBDA (answering only the environment's issued
    /// credentials), the AWS endpoints Flint was given that sit on this host's loopback at
    /// 169.254.100.1 (forwarded by Flint; AWS_ENDPOINT_URL* say where), the X-Ray daemon
    /// address; other machines through a veth pair and NAT; nothing else of this host (its
    /// loopback services, its own addresses) nor other environments. Outbound access needs
    /// Flint to run as root with `ip` (iproute2) and `nft` (nftables) installed; otherwise
    /// Flint says so at start and isolated functions reach only Flint. `host` shares this
    /// host's network with every function (any local service is then in reach).
    #[arg(long, value_enum, default_value_t = FunctionNetworkArg::Isolated, env = "FLINT_FUNCTION_NETWORK")]
    function_network: FunctionNetworkArg,
    /// Where isolated environments' addresses come from (a /31 each, NAT'd to other machines):
    /// an IPv4 network of /16 to /24 that this host does not otherwise need to reach. Move it
    /// when the default collides with a network of the host's.
    #[arg(long, default_value_t = flint_sandbox::FunctionSubnet::DEFAULT, env = "FLINT_FUNCTION_SUBNET")]
    function_subnet: flint_sandbox::FunctionSubnet,
    /// The resolver configuration whose nameservers isolated functions' DNS goes to (tests
    /// point it at a resolver of their own).
    #[arg(
        long,
        default_value = "/etc/resolv.conf",
        env = "FLINT_RESOLV_CONF",
        hide = true
    )]
    resolv_conf: PathBuf,
    // --- end isolation ---
    /// Keep Python and Node interpreters started ahead with Flint's bootstrap, in the prepared
    /// sandbox pool, for the two most recently used managed runtimes: a cold start of a
    /// python3.x or nodejs function then skips the interpreter's start-up and the bootstrap's
    /// imports (Python Init Duration ~4 ms instead of ~30). The function sees what a fresh start shows
    /// (environment, /proc/self/environ and cmdline, argv, modules, ids, limits); each costs
    /// the idle memory of one interpreter (see BENCHMARKS.md). Needs x86-64.
    #[arg(long, value_enum, default_value_t = OnOff::On, env = "FLINT_PREINIT_RUNTIMES")]
    preinit_runtimes: OnOff,
    /// Hot reload (LocalStack's convention): CreateFunction, UpdateFunctionCode and
    /// PublishLayerVersion with this `S3Bucket` take `S3Key` as an absolute directory on this
    /// host, mounted read-only as the function's code (or layer) instead of a copy; edits show at
    /// the next invoke. Any caller who may create functions can then have any directory Flint can
    /// read mounted into them: default `hot-reload` without --credentials-file (a local
    /// development server), off with it unless named here; an empty value turns it off.
    #[arg(long, env = "FLINT_HOT_RELOAD_BUCKET")]
    hot_reload_bucket: Option<String>,
    #[command(flatten)]
    runtimes: crate::runtimes::RuntimesDirArgs,
    /// AWS's managed runtimes carry the AWS SDK (boto3; the SDK for JavaScript v3). `auto`
    /// fetches the missing ones in the background at start (pip, npm; functions started before
    /// it finishes run without); `off` leaves it to `flint runtimes install`.
    #[arg(long, value_enum, default_value_t = crate::runtimes::AutoInstall::Auto, env = "FLINT_INSTALL_RUNTIMES")]
    install_runtimes: crate::runtimes::AutoInstall,
    /// `GET /metrics` on the API listener: Prometheus text, no signature needed (like most
    /// exporters; it names functions and accounts, so `off` where the listener is reachable by
    /// people who should not see them).
    #[arg(long, value_enum, default_value_t = Switch::On, env = "FLINT_METRICS")]
    metrics: Switch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Switch {
    On,
    Off,
}

/// The hot-reload bucket in force: as given (empty: off), else LocalStack's `hot-reload` unless
/// the server authenticates its callers (several users: mounting host paths is not for them).
fn hot_reload_bucket(given: Option<&str>, authenticated: bool) -> Option<String> {
    match given {
        Some("") => None,
        Some(name) => Some(name.to_string()),
        None if authenticated => None,
        None => Some(flint_control::code_source::DEFAULT_HOT_RELOAD_BUCKET.to_string()),
    }
}

/// Code named by S3 location, fetched through Flint's outbound S3 connection.
struct S3Objects(Arc<flint_connectors::Connectors>);

impl flint_control::code_source::ObjectSource for S3Objects {
    fn get_object_to_file<'a>(
        &'a self,
        region: &'a str,
        bucket: &'a str,
        key: &'a str,
        version: Option<&'a str>,
        dest: &'a std::path::Path,
        limit: u64,
    ) -> flint_control::code_source::ObjectFuture<'a> {
        use flint_connectors::GetObjectError as E;
        use flint_control::code_source::ObjectError;
        Box::pin(async move {
            self.0
                .s3_get_object_to_file(region, bucket, key, version, dest, limit)
                .await
                .map_err(|e| match e {
                    E::S3 { code, message } => ObjectError::S3 { code, message },
                    E::TooLarge { .. } => ObjectError::TooLarge,
                    E::Other(why) => ObjectError::Unavailable(why),
                })
        })
    }
}

/// EC2, asked about functions' `VpcConfig` through the same connection.
struct VpcLookup(Arc<flint_connectors::Connectors>);

impl flint_control::vpc::VpcLookup for VpcLookup {
    fn vpc_of<'a>(
        &'a self,
        region: &'a str,
        subnet_ids: &'a [String],
        security_group_ids: &'a [String],
    ) -> flint_control::vpc::VpcFuture<'a> {
        use flint_connectors::VpcProblem as P;
        use flint_control::vpc::VpcLookupError as E;
        Box::pin(async move {
            self.0
                .vpc_of(region, subnet_ids, security_group_ids)
                .await
                .map_err(|problem| match problem {
                    P::Refused {
                        operation,
                        code,
                        message,
                    } => E::Refused {
                        operation,
                        code,
                        message,
                    },
                    unreachable @ P::Unreachable { .. } => E::Unreachable(unreachable.to_string()),
                })
        })
    }
}

/// Execution roles' sessions, from STS through the same connection.
struct RoleSessions(Arc<flint_connectors::Connectors>);

impl flint_engine::RoleCredentials for RoleSessions {
    fn assume<'a>(
        &'a self,
        role_arn: &'a str,
        session_name: &'a str,
        region: &'a str,
    ) -> flint_engine::RoleFuture<'a> {
        Box::pin(async move {
            self.0
                .assume_role(role_arn, session_name, region)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Whose credentials a function's environment gets (`--function-credentials`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum FunctionCredentials {
    /// Credentials Flint makes up per environment: they act as the function's account on
    /// Flint's own API and are unknown to every other service.
    Flint,
    /// A session of the function's execution role per environment, from STS `AssumeRole`
    /// (session name: the function's name) through Flint's outbound connection, as on AWS.
    AssumeRole,
}

/// The sources of event source mappings, asked whether they exist through the same connection.
struct MappingSources(Arc<flint_connectors::Connectors>);

impl flint_control::source_check::SourceCheck for MappingSources {
    fn check<'a>(
        &'a self,
        service: flint_control::source_check::SourceService,
        arn: &'a str,
    ) -> flint_control::source_check::SourceFuture<'a> {
        use flint_connectors::{SourceProblem as P, SourceService as C};
        use flint_control::source_check::{SourceCheckError as E, SourceService as S};
        let service = match service {
            S::Sqs => C::Sqs,
            S::Kinesis => C::Kinesis,
            S::DynamoDbStreams => C::DynamoDbStreams,
        };
        Box::pin(async move {
            self.0
                .check_source(service, arn)
                .await
                .map_err(|problem| match problem {
                    P::Missing { .. } => E::Missing,
                    P::Refused { code, message, .. } => E::Refused { code, message },
                    unreachable @ P::Unreachable { .. } => E::Unreachable(unreachable.to_string()),
                })
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum FunctionNetworkArg {
    Isolated,
    Host,
}

impl From<FunctionNetworkArg> for flint_engine::FunctionNetwork {
    fn from(arg: FunctionNetworkArg) -> Self {
        match arg {
            FunctionNetworkArg::Isolated => Self::Isolated,
            FunctionNetworkArg::Host => Self::Host,
        }
    }
}

/// Serves `app` inside each isolated environment, as that environment (issue 12).
fn serve_api_in_environments(engine: &flint_engine::Engine, app: flint_api::Api) {
    let limits = flint_api::listener::ListenerLimits {
        header_read_timeout: Some(Duration::from_secs(30)),
        // One function's connections: the Lambda API is all it reaches there.
        max_connections: 64,
    };
    engine.serve_api_in_environments(Arc::new(move |listener, caller| {
        let app = app.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            match listener
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(listener))
            {
                Ok(listener) => {
                    flint_api::listener::serve(
                        listener,
                        app,
                        limits,
                        Some(caller),
                        std::future::pending(),
                    )
                    .await
                }
                Err(e) => tracing::warn!("cannot serve the API inside an environment: {e}"),
            }
        })
        .abort_handle()
    }));
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing();
    raise_open_file_limit();
    let workers = args.worker_threads.filter(|n| *n > 0).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() / 2)
            .unwrap_or(1)
            .max(1)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .thread_name("flint")
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(serve(args));
    // Blocking work still queued (a sandbox mid-start) must not hold the exit up.
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}

/// Every execution environment holds about 7 descriptors (Runtime API listener and connection,
/// sandbox control socket, stdout/stderr pipes, pidfd, log file): the usual soft limit of 1024
/// would stop Flint at ~140 environments. Raise it to the hard limit, as servers do.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((mut soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        soft = hard;
    }
    let envs = soft / 8;
    tracing::debug!(
        "open file limit {} (room for about {envs} environments)",
        soft
    );
    if soft < 4096 {
        tracing::warn!(
            "open file limit is {}: room for only about {envs} execution environments (raise it with ulimit -n)",
            soft
        );
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if !args.listen.ip().is_loopback()
        && args.credentials_file.is_none()
        && !args.allow_unauthenticated_remote
    {
        anyhow::bail!(
            "refusing to serve on {} without --credentials-file: anyone who can reach it could run \
             code here. Pass --credentials-file FILE, or --allow-unauthenticated-remote to insist.",
            args.listen
        );
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let data_dir = args
        .data_dir
        .canonicalize()
        .context("resolving the data dir")?;
    let layout = flint_store::Layout::new(&data_dir);
    let _lock = lock_data_dir(&layout)?;

    let credentials = match &args.credentials_file {
        Some(path) => Some(
            flint_api::load_credentials_file(path)
                .with_context(|| format!("reading credentials file {}", path.display()))?,
        ),
        None => None,
    };

    let store = Arc::new(flint_store::Store::open_layout(&layout).context("opening the store")?);
    let runtimes_dir = args.runtimes.resolve(&data_dir);
    let runtimes = Arc::new(flint_runtimes::RuntimeRegistry::discover_with(
        runtimes_dir.clone(),
    ));
    // /proc/self/exe stays valid even if the binary on disk is replaced while Flint runs.
    let init_program = PathBuf::from("/proc/self/exe");
    let sandboxes = Arc::new(
        flint_sandbox::Sandboxes::new(&layout.sandbox(), init_program)
            .context("preparing sandboxes")?,
    );
    sandboxes.set_preinit_runtimes(args.preinit_runtimes == OnOff::On);

    // The control plane, then the data planes, each following its change feed.
    let control = flint_control::ControlPlane::open_with(
        layout.root(),
        store.clone(),
        runtimes.clone(),
        flint_control::ControlOptions {
            account_concurrency: args.account_concurrency,
            update_settle: Duration::from_millis(args.update_settle_ms),
            public_base_url: format!("http://{}", args.listen),
            hot_reload_bucket: hot_reload_bucket(
                args.hot_reload_bucket.as_deref(),
                args.credentials_file.is_some(),
            ),
            code_owner: sandboxes.root_owner(),
            ..flint_control::ControlOptions::default()
        },
    )
    .context("opening the control plane")?;
    control.set_public_base_url(format!("http://{}", args.listen));
    let engine = flint_engine::Engine::new(
        flint_engine::EngineConfig {
            layout: layout.clone(),
            idle_timeout: Duration::from_secs(args.idle_timeout_secs),
            account_concurrency: args.account_concurrency,
            function_network: args.function_network.into(),
            log_retention: flint_engine::LogRetention {
                max_age: (args.log_retention_days > 0)
                    .then(|| Duration::from_secs(args.log_retention_days.saturating_mul(86_400))),
                max_bytes_per_function: (args.log_retention_mb > 0)
                    .then(|| args.log_retention_mb.saturating_mul(1024 * 1024)),
            },
            otlp_traces_url: otlp_traces_url(args.otlp_endpoint.as_deref(), std::env::vars()),
            host_resolv_conf: args.resolv_conf.clone(),
        },
        sandboxes.clone(),
        runtimes.clone(),
    )
    .context("starting the engine")?;
    engine.set_service_endpoints(service_endpoints(
        args.listen,
        args.aws_endpoint_url.as_deref(),
        std::env::vars(),
    ));
    let connectors = Arc::new(
        flint_connectors::Connectors::load(flint_connectors::ConnectorOptions {
            endpoint_url: args.aws_endpoint_url.clone(),
        })
        .await,
    );
    // Before the engine follows the functions: provisioned environments start right away.
    if args.function_credentials == FunctionCredentials::AssumeRole {
        engine.set_role_credentials(Arc::new(RoleSessions(connectors.clone())));
    }
    engine.follow(control.subscribe());
    control.follow_provisioned_report(engine.provisioned_report());
    // Code no function uses any more leaves the disk once no environment runs on it.
    control.set_code_users(engine.clone());
    control.set_object_source(Arc::new(S3Objects(connectors.clone())));
    control.set_source_check(Arc::new(MappingSources(connectors.clone())));
    control.set_vpc_lookup(Arc::new(VpcLookup(connectors.clone())));
    let events = flint_events::Events::start(
        engine.clone(),
        store.clone(),
        control.subscribe(),
        control.subscribe(),
        connectors,
        flint_events::EventsConfig {
            retry_base_delay: Duration::from_secs(args.async_retry_delay_secs),
            ..flint_events::EventsConfig::for_account_concurrency(args.account_concurrency)
        },
    )
    .context("starting the async queue")?;
    control.follow_mapping_report(events.mapping_report());
    report_moved_aside(&store, &layout);
    let qos = crate::cpu_latency::start(args.cpu_latency_qos, engine.clone());

    let config = flint_api::ApiConfig {
        credentials,
        issued: Some(engine.issued_credentials()),
        metrics: args.metrics == Switch::On,
        ..flint_api::ApiConfig::default()
    };
    // Function URLs (by Host or the path form) in front of the Lambda API, on its listener.
    let urls = flint_urls::FunctionUrls::new(
        control.subscribe(),
        engine.clone(),
        control.clone(),
        url_authenticator(config.clone()),
    );
    let app = flint_api::api(
        flint_api::Flint {
            control,
            engine: engine.clone(),
            events: events.clone(),
            store,
        },
        config,
    );
    let app = app.in_front(|api| flint_urls::in_front_of(api, urls), flint_urls::claims);
    serve_api_in_environments(&engine, app.clone());

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(
        "Flint {} serving the Lambda API at http://{} (data dir {}; {}; {})",
        env!("CARGO_PKG_VERSION"),
        args.listen,
        data_dir.display(),
        sandboxes.summary(),
        qos
    );
    match args.function_network {
        FunctionNetworkArg::Isolated => match sandboxes.enable_outbound(args.function_subnet) {
            Ok(table) => tracing::info!(
                "functions run in network namespaces of their own: Flint's API at {} from \
                 inside, other machines through NAT (nftables table inet {table}, sandbox \
                 addresses {}), nothing of this host's loopback (--function-network host \
                 to share it)",
                flint_engine::lambda_endpoint_in_namespace(),
                args.function_subnet,
            ),
            Err(reason) => tracing::warn!(
                "functions run in network namespaces of their own WITHOUT outbound access: \
                 {reason}. They reach only Flint's API ({}) and the AWS endpoints Flint \
                 forwards; run Flint as root with iproute2 and nftables installed for outbound \
                 access, or --function-network host to share this host's network",
                flint_engine::lambda_endpoint_in_namespace()
            ),
        },
        FunctionNetworkArg::Host => tracing::warn!(
            "functions share this host's network (--function-network host): they reach every \
             service on its loopback, Flint's API included"
        ),
    }
    let hot_bucket = hot_reload_bucket(
        args.hot_reload_bucket.as_deref(),
        args.credentials_file.is_some(),
    );
    if let Some(bucket) = hot_bucket {
        tracing::info!(
            "hot reload: S3Bucket {bucket:?} with S3Key = an absolute host directory mounts it \
             as the code (--hot-reload-bucket '' turns this off)"
        );
    }
    crate::runtimes::at_serve_start(runtimes.clone(), runtimes_dir, args.install_runtimes);
    tracing::info!(
        "try: aws --endpoint-url http://{} lambda list-functions",
        args.listen
    );

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let limits = flint_api::listener::ListenerLimits {
        header_read_timeout: Some(Duration::from_secs(args.header_read_timeout_secs.max(1))),
        max_connections: args.max_connections,
    };
    let mut server = tokio::spawn(async move {
        flint_api::listener::serve::<()>(listener, app, limits, None, async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        })
        .await;
        Ok::<(), std::io::Error>(())
    });
    let served = tokio::select! {
        r = &mut server => Some(r),
        _ = shutdown_signal() => None,
    };

    // Stopping the environments ends the invokes in flight, which lets the server drain.
    let _ = stop_tx.send(true);
    // Events not finished stay stored and resume at the next start.
    events.shutdown();
    tracing::info!("shutting down: stopping execution environments");
    engine.shutdown().await;
    // The host-wide NAT rules go with the last sandbox.
    sandboxes.disable_outbound();
    // The /tmp images' mounts and loop devices too (a crash leaves them to the next start).
    sandboxes.release_tmp_storage();
    let served = match served {
        Some(r) => Some(r),
        None => tokio::time::timeout(Duration::from_millis(500), &mut server)
            .await
            .ok(),
    };
    tracing::info!("stopped");
    match served {
        Some(Ok(r)) => r.context("serving"),
        Some(Err(e)) => Err(anyhow::anyhow!("the server task failed: {e}")),
        // Connections still open after the environments stopped are dropped with the runtime.
        None => Ok(()),
    }
}

/// The `AWS_ENDPOINT_URL*` variables every function gets: Flint's own API for Lambda (an
/// unspecified listen address is reached on loopback), `--aws-endpoint-url` as
/// `AWS_ENDPOINT_URL`, and the endpoint variables Flint itself was started with.
fn service_endpoints(
    listen: SocketAddr,
    aws_endpoint_url: Option<&str>,
    flint_env: impl Iterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    let mut lambda = listen;
    if lambda.ip().is_unspecified() {
        lambda.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let mut vars: Vec<(String, String)> = flint_env
        .filter(|(k, _)| {
            (k == "AWS_ENDPOINT_URL" || k.starts_with("AWS_ENDPOINT_URL_"))
                && k != "AWS_ENDPOINT_URL_LAMBDA"
        })
        .collect();
    if let Some(url) = aws_endpoint_url {
        vars.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
        vars.push(("AWS_ENDPOINT_URL".into(), url.to_string()));
    }
    vars.push(("AWS_ENDPOINT_URL_LAMBDA".into(), format!("http://{lambda}")));
    vars.sort();
    vars
}

/// `AWS_IAM` function URLs authenticate their callers as the Lambda API does.
fn url_authenticator(config: flint_api::ApiConfig) -> flint_urls::Authenticate {
    Arc::new(move |parts, body| {
        flint_api::authenticate(&config, parts, body)
            .map(|scope| scope.account)
            .map_err(|e| e.message)
    })
}

/// Holds `flint.lock` for as long as the server runs: two servers on one data dir would each
/// start the other's functions' async events and fight over the sandboxes' state.
fn lock_data_dir(layout: &flint_store::Layout) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    let path = layout.lock_file();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        anyhow::anyhow!(
            "another Flint is serving the data dir {} ({}: {e}); stop it or pass another --data-dir",
            layout.root().display(),
            path.display()
        )
    })
}

/// Says, once at start, which stored records could not be read (they were moved aside, not lost).
fn report_moved_aside(store: &flint_store::Store, layout: &flint_store::Layout) {
    match store.moved_aside() {
        Ok(aside) if !aside.is_empty() => tracing::warn!(
            "{} stored record(s) could not be read and are kept aside in the table moved_aside of {} \
             (the latest: {} {} in {} {}: {})",
            aside.len(),
            layout.database().display(),
            aside[aside.len() - 1].kind,
            aside[aside.len() - 1].key,
            aside[aside.len() - 1].account,
            aside[aside.len() - 1].region,
            aside[aside.len() - 1].reason
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot list the records moved aside: {e}"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Where traces are exported (the full OTLP/HTTP traces URL): `--otlp-endpoint` (a base URL),
/// else OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as it is, as the OpenTelemetry SDKs use it),
/// else OTEL_EXPORTER_OTLP_ENDPOINT (a base URL); `None` when none is set (or empty).
fn otlp_traces_url(
    flag: Option<&str>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Option<String> {
    let base = |url: &str| format!("{}/v1/traces", url.trim_end_matches('/'));
    if let Some(url) = flag.filter(|u| !u.is_empty()) {
        return Some(base(url));
    }
    let env: std::collections::HashMap<String, String> = env
        .into_iter()
        .filter(|(k, v)| k.starts_with("OTEL_EXPORTER_OTLP_") && !v.is_empty())
        .collect();
    env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .cloned()
        .or_else(|| env.get("OTEL_EXPORTER_OTLP_ENDPOINT").map(|u| base(u)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_otlp_url_comes_from_the_flag_then_the_standard_variables() {
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(super::otlp_traces_url(None, env(&[])), None);
        assert_eq!(
            super::otlp_traces_url(
                None,
                env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")])
            ),
            Some("http://c:4318/v1/traces".into())
        );
        assert_eq!(
            super::otlp_traces_url(
                None,
                env(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:1/x")
                ])
            ),
            Some("http://t:1/x".into())
        );
        assert_eq!(
            super::otlp_traces_url(
                Some("http://f:4318"),
                env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:1/x")])
            ),
            Some("http://f:4318/v1/traces".into())
        );
    }

    #[test]
    fn hot_reload_is_on_by_default_only_without_credentials() {
        assert_eq!(
            super::hot_reload_bucket(None, false).as_deref(),
            Some("hot-reload")
        );
        assert_eq!(super::hot_reload_bucket(None, true), None);
        assert_eq!(super::hot_reload_bucket(Some(""), false), None);
        assert_eq!(
            super::hot_reload_bucket(Some("mine"), true).as_deref(),
            Some("mine")
        );
    }

    use super::*;

    #[test]
    fn functions_reach_flint_for_lambda_and_the_given_endpoints_for_the_rest() {
        let env = [
            ("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:5001"),
            ("AWS_ENDPOINT_URL_LAMBDA", "http://elsewhere"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5002"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let listen: SocketAddr = "0.0.0.0:9000".parse().unwrap_or_else(|_| unreachable!());
        let vars = service_endpoints(listen, Some("http://127.0.0.1:5000"), env.into_iter());
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
                ("AWS_ENDPOINT_URL_LAMBDA", "http://127.0.0.1:9000"),
                ("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:5001"),
            ]
        );
    }
}
