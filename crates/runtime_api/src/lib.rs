//! The Lambda Runtime API (2018-06-01) that one execution environment's runtime talks to: a small
//! HTTP/1.1 server on `127.0.0.1:<port>` (the environment's `AWS_LAMBDA_RUNTIME_API`) that hands
//! invocations to `GET /runtime/invocation/next` and collects `/response`, `/error` and `/init/error`.
//!
//! The engine side is [`RuntimeApi`]: `bind()` per environment, `ready()` to await the end of init,
//! `deliver(invocation)` to get a one-shot receiver of the [`Outcome`], `close()` when the process
//! is gone. The hand-off is a short `parking_lot` critical section plus a one-shot channel; no lock
//! is ever held across an await.

pub mod bandwidth;
mod extension_server;
mod extensions;
mod payload;
mod server;
mod state;
mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

pub use extensions::{
    ExtensionFailure, ExtensionSummary, FunctionInfo, ShutdownReason, MAX_EXTENSIONS,
};
pub use payload::{Payload, PayloadBody, PayloadBuilder, ReadError};
pub use server::{new_trace_id, MAX_CONNECTIONS};
pub use telemetry::{event as telemetry_event, Category, ConnectInside};

/// Largest response (or error) body a runtime may post: 6 MB as AWS counts it.
pub const MAX_RESPONSE_BYTES: usize = 6_291_556;

/// One event handed to the runtime by `/next`.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    /// Unix time in milliseconds at which the invoke times out (`Lambda-Runtime-Deadline-Ms`).
    pub deadline_ms: u64,
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    pub invoked_function_arn: String,
    /// `Lambda-Runtime-Trace-Id` (X-Ray trace header).
    pub trace_id: String,
    /// `Lambda-Runtime-Client-Context`, when the caller sent one (decoded JSON text).
    pub client_context: Option<String>,
    /// `Lambda-Runtime-Cognito-Identity`, when present.
    pub cognito_identity: Option<String>,
    pub payload: Payload,
}

/// Largest streamed response (`Lambda-Runtime-Function-Response-Mode: streaming`): 200 MB, as
/// AWS allows since July 2025.
pub const MAX_STREAMED_RESPONSE_BYTES: usize = 200 * 1024 * 1024;

/// A response the runtime streams: its chunks as they arrive, and how it ends.
pub struct ResponseStream {
    /// The `Content-Type` the runtime posted (`application/vnd.awslambda.http-integration-response`
    /// when a status/headers prelude comes first).
    pub content_type: Option<String>,
    /// The body's chunks, as the runtime wrote them (bounded: a slow reader slows the function).
    pub chunks: mpsc::Receiver<Bytes>,
    /// How the stream ended: `Response` (empty) when the body ended cleanly, `Error` for the
    /// `Lambda-Runtime-Function-Error-Type`/`-Body` trailers or a broken stream,
    /// `ResponseTooLarge` past [`MAX_STREAMED_RESPONSE_BYTES`].
    pub end: oneshot::Receiver<Outcome>,
}

impl std::fmt::Debug for ResponseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseStream")
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

/// Two streams are never the same stream.
impl PartialEq for ResponseStream {
    fn eq(&self, _: &Self) -> bool {
        false
    }
}
impl Eq for ResponseStream {}

/// How an invocation ended, as far as the Runtime API can tell.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `POST /invocation/{id}/response`: the body as its chunks arrived.
    Response(Payload),
    /// `POST /invocation/{id}/response` with `Lambda-Runtime-Function-Response-Mode: streaming`:
    /// the response has begun and goes on arriving.
    Streaming(ResponseStream),
    /// `POST /invocation/{id}/error`: the body as posted and `Lambda-Runtime-Function-Error-Type`.
    Error {
        error_type: Option<String>,
        body: Bytes,
    },
    /// The runtime posted a response larger than [`MAX_RESPONSE_BYTES`] (it got a 413).
    ResponseTooLarge,
    /// The environment was closed (process gone) before the runtime answered.
    Closed,
}

/// The body a runtime posted to `/runtime/init/error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitError {
    pub error_type: Option<String>,
    pub body: Bytes,
}

/// Where the runtime is in its initialisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Started, has not asked for an event yet.
    Starting,
    /// Called `/next` at least once: init is done.
    Ready,
    /// Reported `/runtime/init/error`.
    InitFailed(InitError),
    /// An extension failed during Init (crashed, or reported `init/error`/`exit/error`).
    ExtensionFailed(ExtensionFailure),
    /// The environment is gone.
    Closed,
}

/// Emits telemetry events of one environment (see [`RuntimeApi::telemetry`]).
#[derive(Clone)]
pub struct TelemetrySink(Arc<state::Shared>);

impl TelemetrySink {
    /// Whether any subscriber wants events of `category` (cheap: one atomic load).
    pub fn wants(&self, category: Category) -> bool {
        self.0.telemetry.wants(category)
    }

    pub fn emit(&self, category: Category, event: Bytes) {
        self.0.telemetry.emit(category, event);
    }
}

/// Decides whether a connection to the Runtime API comes from the environment's own processes,
/// given the connecting socket's address (the accepted connection's peer) and the listener's.
/// Every environment's endpoint sits on the host's loopback, reachable from any function: without
/// this, one function could take another's events from its `/next`.
pub type PeerCheck = Arc<dyn Fn(SocketAddr, SocketAddr) -> bool + Send + Sync>;

/// Who may talk to an endpoint.
#[derive(Clone)]
pub(crate) enum Gate {
    /// Not decided yet: connections wait.
    Pending,
    /// Any local process (tests, hosts where the owner of a socket cannot be told).
    Open,
    Check(PeerCheck),
}

/// The Runtime API endpoint of one execution environment. Dropping it stops the server and every
/// connection to it.
pub struct RuntimeApi {
    addr: SocketAddr,
    address: String,
    shared: Arc<state::Shared>,
    readiness: watch::Receiver<Readiness>,
    gate: watch::Sender<Gate>,
    server: tokio::task::JoinHandle<()>,
    /// Where the listener of an `in_namespace` endpoint goes once it exists.
    listener: parking_lot::Mutex<Option<oneshot::Sender<std::net::TcpListener>>>,
}

impl RuntimeApi {
    /// Binds `127.0.0.1:0` and starts serving any local process. Must be called inside a Tokio
    /// runtime.
    pub fn bind() -> std::io::Result<Self> {
        Self::bind_with(Gate::Open)
    }

    /// Binds like [`RuntimeApi::bind`], but holds every connection until [`RuntimeApi::admit`]
    /// says who may connect (the environment's processes do not exist yet when it is bound).
    pub fn bind_gated() -> std::io::Result<Self> {
        Self::bind_with(Gate::Pending)
    }

    fn bind_with(gate: Gate) -> std::io::Result<Self> {
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let (shared, readiness) = state::Shared::new();
        let shared = Arc::new(shared);
        let (gate, gate_rx) = watch::channel(gate);
        let server = tokio::spawn(server::serve(listener, shared.clone(), gate_rx));
        Ok(Self {
            addr,
            address: addr.to_string(),
            shared,
            readiness,
            gate,
            server,
            listener: parking_lot::Mutex::new(None),
        })
    }

    /// An endpoint whose listener comes later ([`RuntimeApi::attach`]): one made inside the
    /// environment's own network namespace, where only its processes can connect, at `address`
    /// (`169.254.100.1:9001`). Must be called inside a Tokio runtime.
    pub fn in_namespace(address: std::net::SocketAddr) -> Self {
        let (shared, readiness) = state::Shared::new();
        let shared = Arc::new(shared);
        let (gate, gate_rx) = watch::channel(Gate::Open);
        let (listener_tx, listener_rx) = oneshot::channel::<std::net::TcpListener>();
        let serving = shared.clone();
        let server = tokio::spawn(async move {
            let Ok(std_listener) = listener_rx.await else {
                return;
            };
            let listener = std_listener
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(std_listener));
            match listener {
                Ok(l) => server::serve(l, serving, gate_rx).await,
                Err(e) => tracing::warn!("runtime api: cannot serve the namespace's listener: {e}"),
            }
        });
        Self {
            addr: address,
            address: address.to_string(),
            shared,
            readiness,
            gate,
            server,
            listener: parking_lot::Mutex::new(Some(listener_tx)),
        }
    }

    /// Serves an [`RuntimeApi::in_namespace`] endpoint on `listener` (once).
    pub fn attach(&self, listener: std::net::TcpListener) {
        if let Some(tx) = self.listener.lock().take() {
            let _ = tx.send(listener);
        }
    }

    /// Opens a gated endpoint: to connections that pass `check`, or to every local process
    /// with `None`.
    pub fn admit(&self, check: Option<PeerCheck>) {
        self.gate.send_replace(match check {
            Some(c) => Gate::Check(c),
            None => Gate::Open,
        });
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Resolves once the runtime has finished init (first `/next`), reported an init error, or
    /// the environment was closed.
    pub async fn ready(&self) -> Readiness {
        let mut rx = self.readiness.clone();
        let readiness = match rx.wait_for(|r| *r != Readiness::Starting).await {
            Ok(r) => r.clone(),
            Err(_) => Readiness::Closed,
        };
        readiness
    }

    /// The current readiness without waiting.
    pub fn readiness(&self) -> Readiness {
        self.readiness.borrow().clone()
    }

    /// Hands `invocation` to the runtime (now if it is waiting in `/next`, else on its next call)
    /// and returns where its outcome will arrive. One invocation at a time per environment.
    pub fn deliver(&self, invocation: Invocation) -> oneshot::Receiver<Outcome> {
        self.shared.deliver(invocation)
    }

    /// Says what the Extensions API's register answers carry.
    pub fn set_function(&self, info: FunctionInfo) {
        self.shared.extensions.set_function(info);
    }

    /// The external extensions this environment starts (executables of `/opt/extensions`):
    /// Init waits for each to register and ask for its first event.
    pub fn expect_extensions(&self, names: Vec<String>) {
        self.shared.extensions.expect(names);
    }

    /// The environment has a network namespace of its own: telemetry is delivered through
    /// `connect` (a connection made inside it), or — without one, when Flint may not enter the
    /// namespace — subscriptions are refused rather than silently never delivered.
    pub fn telemetry_in_namespace(&self, connect: Option<telemetry::ConnectInside>) {
        self.shared.telemetry.set_reach(match connect {
            Some(c) => telemetry::Reach::Namespace(c),
            None => telemetry::Reach::Unreachable,
        });
    }

    /// Whether an invocation has a post-runtime phase (an extension subscribed to `INVOKE`).
    pub fn has_invoke_extensions(&self) -> bool {
        self.shared.extensions.has_invoke_subscribers()
    }

    /// The post-runtime phase: resolves once every extension handed the invocation's `INVOKE`
    /// has asked for its next event (or failed).
    pub async fn extensions_idle(&self) {
        self.shared.extensions.idle().await;
    }

    /// Whether any external extension registered (it gets `SHUTDOWN`).
    pub fn has_external_extensions(&self) -> bool {
        self.shared.extensions.has_external()
    }

    /// Delivers buffered telemetry, sends `SHUTDOWN` to the extensions subscribed to it and
    /// waits (until `within` has passed) for each to finish; false when none subscribed.
    pub async fn shut_down_extensions(
        &self,
        reason: ShutdownReason,
        within: std::time::Duration,
    ) -> bool {
        let started = tokio::time::Instant::now();
        self.shared.telemetry.flush(within / 2).await;
        let left = within.saturating_sub(started.elapsed());
        if !self
            .shared
            .extensions
            .shutdown(reason, left.as_millis() as u64)
        {
            return false;
        }
        let _ = tokio::time::timeout(left, self.shared.extensions.idle()).await;
        true
    }

    /// The registered extensions (for the `EXTENSION` log lines and `platform.extension`).
    pub fn extensions(&self) -> Vec<ExtensionSummary> {
        self.shared.extensions.summary()
    }

    /// A handle for whoever emits telemetry without holding the endpoint (the log pump).
    pub fn telemetry(&self) -> TelemetrySink {
        TelemetrySink(self.shared.clone())
    }

    /// Whether any subscriber wants events of `category` (cheap: one atomic load).
    pub fn telemetry_wants(&self, category: Category) -> bool {
        self.shared.telemetry.wants(category)
    }

    /// When the current invocation's response began to arrive at the Runtime API (known only
    /// while a telemetry subscriber wants platform events); taken, so each invocation reads its
    /// own.
    pub fn take_response_began(&self) -> Option<std::time::Instant> {
        self.shared.take_response_began()
    }

    /// Queues an event (see [`telemetry_event`]) for the subscribers of `category`.
    pub fn emit_telemetry(&self, category: Category, event: Bytes) {
        self.shared.telemetry.emit(category, event);
    }

    /// Marks the environment gone: the current invocation (if any) ends with [`Outcome::Closed`],
    /// and so does every later `deliver`.
    pub fn close(&self) {
        self.shared.close();
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.shared.close();
        self.server.abort();
    }
}
