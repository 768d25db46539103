//! Flint's HTTP front door: every REST path of the Lambda API (2015-03-31) routed from the API
//! model, SigV4 authentication → (account, region), model-driven input assembly and validation,
//! and AWS's error rendering. On the same listener: the CloudWatch Logs API for the functions'
//! logs (requests with `X-Amz-Target: Logs_20140328.*`, `logs.rs`) and `GET /metrics`
//! (`metrics.rs`). Thin: the control plane does the work, the engine runs invokes.
//!
//! `router(Flint { control, engine, events, store }, config)` is what `flint serve` mounts; `router_with(backend,
//! config)` takes any [`Backend`] (tests use a fake one).

mod access_log;
mod code;
mod credentials;
mod error;
mod fast;
mod invoke;
mod jackson;
mod json_check;
pub mod listener;
mod live_tail;
mod logs;
mod metrics;
mod model;
mod request;
mod response;
mod response_stream;
mod route;
mod sigv4;
mod validation;
mod xray;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use bytes::Bytes;
use flint_control::{ControlPlane, LambdaError, Scope};
use flint_engine::{Engine, FunctionSpec, InvokeError, InvokeRequest, InvokeResponse};

pub use access_log::RequestId;
pub use credentials::{load_credentials_file, Credentials, CredentialsError};
pub use error::ApiError;
pub use fast::{Api, Claims};
pub use flint_control::signed_url::{Download, DownloadError};
pub use metrics::MetricsSnapshot;
pub use sigv4::DEFAULT_ACCOUNT;

use model::MODEL;

/// Largest request body for control-plane operations (AWS's CreateFunction limit).
pub const CONTROL_REQUEST_LIMIT: usize = 70_167_211;

/// Settings of the HTTP front door.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Accepted access keys (from `--credentials-file`). `None`: any well-formed SigV4 signature
    /// is accepted unverified.
    pub credentials: Option<Credentials>,
    /// How far a signature's `X-Amz-Date` may be from now (AWS allows 5 minutes).
    pub max_clock_skew: Duration,
    /// Credentials Flint issued to its execution environments: verified in every mode.
    pub issued: Option<flint_engine::IssuedCredentials>,
    /// Serve `GET /metrics` (Prometheus text, unsigned).
    pub metrics: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            credentials: None,
            max_clock_skew: Duration::from_secs(300),
            issued: None,
            metrics: true,
        }
    }
}

/// What the api needs from the rest of Flint: the control plane for operations, the data planes for
/// invokes, the store for code zips. Implemented by [`Flint`]; tests implement it with fakes.
pub trait Backend: Send + Sync + 'static {
    fn execute(
        &self,
        scope: &Scope,
        operation: &str,
        input: serde_json::Value,
    ) -> impl Future<Output = Result<serde_json::Value, LambdaError>> + Send;

    fn resolve_invoke(
        &self,
        scope: &Scope,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<(Arc<FunctionSpec>, String), LambdaError>;

    fn invoke(
        &self,
        req: InvokeRequest,
    ) -> impl Future<Output = Result<InvokeResponse, InvokeError>> + Send;

    /// An invoke whose response may stream (InvokeWithResponseStream); by default, buffered.
    fn invoke_streaming(
        &self,
        req: InvokeRequest,
    ) -> impl Future<Output = Result<flint_engine::Invoked, InvokeError>> + Send {
        async move { self.invoke(req).await.map(flint_engine::Invoked::Buffered) }
    }

    fn enqueue_async(
        &self,
        req: InvokeRequest,
    ) -> impl Future<Output = Result<(), InvokeError>> + Send;

    /// Whether the function may run in a recursive loop (its recursion config says `Allow`).
    fn recursion_allowed(&self, _scope: &Scope, _function_name: &str) -> bool {
        false
    }

    /// The zip a `Code.Location` / `Content.Location` URL names, once the control plane has
    /// checked its signature and expiry (digests are already checked to be 64 lowercase hex
    /// digits).
    fn code_zip(
        &self,
        zip: ZipRef<'_>,
    ) -> impl Future<Output = Result<Bytes, DownloadError>> + Send;

    /// Where the functions' log streams are kept (`<root>/<account>/<region>/<function>/`), for
    /// the CloudWatch Logs API and EMF metrics; `None`: no logs.
    fn logs_root(&self) -> Option<std::path::PathBuf> {
        None
    }

    /// Where the functions' X-Ray segments are kept (`<root>/<account>/<region>/<function>/`),
    /// for the X-Ray API; `None`: no traces.
    fn traces_root(&self) -> Option<std::path::PathBuf> {
        None
    }

    /// What `GET /metrics` reports of invocations and environments; `None`: nothing.
    fn metrics(&self) -> Option<MetricsSnapshot> {
        None
    }
}

/// What a download URL names: `/_flint/{code|layers}/<sha256>?expires=<unix>&signature=<hex>`,
/// GetFunction's `Code.Location` or GetLayerVersion's `Content.Location`, signed by the control
/// plane (`flint_control::signed_url`). No zip is served without a valid signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZipRef<'a> {
    pub download: Download,
    pub sha256_hex: &'a str,
    pub expires: u64,
    pub signature: &'a str,
}

/// Reads the zip a signed URL grants, as the control plane allows.
pub async fn read_download(
    control: &ControlPlane,
    zip: ZipRef<'_>,
) -> Result<Bytes, DownloadError> {
    let path = control.download(zip.download, zip.sha256_hex, zip.expires, zip.signature)?;
    tokio::fs::read(path)
        .await
        .map(Bytes::from)
        .map_err(|_| DownloadError::NotFound)
}

/// The real backend: Flint's control plane, engine, asynchronous data plane and store. Zips are
/// served only through the control plane's signed URLs, never from the store by digest.
pub struct Flint {
    pub control: Arc<ControlPlane>,
    pub engine: Arc<Engine>,
    pub events: Arc<flint_events::Events>,
    pub store: Arc<flint_store::Store>,
}

impl Backend for Flint {
    async fn execute(
        &self,
        scope: &Scope,
        operation: &str,
        input: serde_json::Value,
    ) -> Result<serde_json::Value, LambdaError> {
        self.control.execute(scope, operation, input).await
    }

    fn resolve_invoke(
        &self,
        scope: &Scope,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<(Arc<FunctionSpec>, String), LambdaError> {
        self.control.resolve_invoke(scope, function_name, qualifier)
    }

    fn recursion_allowed(&self, scope: &Scope, function_name: &str) -> bool {
        self.control.recursion_allowed(scope, function_name)
    }

    async fn invoke(&self, req: InvokeRequest) -> Result<InvokeResponse, InvokeError> {
        self.engine.invoke(req).await
    }

    async fn invoke_streaming(
        &self,
        req: InvokeRequest,
    ) -> Result<flint_engine::Invoked, InvokeError> {
        self.engine.invoke_streaming(req).await
    }

    async fn enqueue_async(&self, req: InvokeRequest) -> Result<(), InvokeError> {
        self.events.enqueue(req).await
    }

    async fn code_zip(&self, zip: ZipRef<'_>) -> Result<Bytes, DownloadError> {
        read_download(&self.control, zip).await
    }

    fn logs_root(&self) -> Option<std::path::PathBuf> {
        Some(self.engine.logs_root())
    }

    fn traces_root(&self) -> Option<std::path::PathBuf> {
        Some(self.engine.traces_root())
    }

    fn metrics(&self) -> Option<MetricsSnapshot> {
        Some(MetricsSnapshot {
            engine: self.engine.metrics(),
            async_queues: self
                .events
                .queue_depths()
                .into_iter()
                .map(|(scope, f, q)| ((scope.account, scope.region), f, q))
                .collect(),
            event_sources: flint_events::metrics::mappings(),
            destinations: flint_events::metrics::destinations(),
        })
    }
}

/// The Lambda API over Flint's real control plane and data planes.
pub fn router(backend: Flint, config: ApiConfig) -> Router {
    router_with(Arc::new(backend), config)
}

/// The Lambda API over Flint's real control plane and data planes, with its Invoke route (what
/// `flint serve` serves: [`listener::serve`]).
pub fn api(backend: Flint, config: ApiConfig) -> Api {
    api_with(Arc::new(backend), config)
}

pub(crate) struct AppState<B> {
    pub backend: Arc<B>,
    pub config: ApiConfig,
    pub routes: route::Routes,
    pub emf: metrics::EmfState,
}

impl<B> AppState<B> {
    /// Checks a request signed for another service Flint answers (`logs`, `xray`) with the
    /// server's credentials and issued ones: the caller's account and region.
    pub(crate) fn authenticate_for(
        &self,
        service: &str,
        parts: &http::request::Parts,
        body: &[u8],
    ) -> Result<Scope, ApiError> {
        sigv4::authenticate_for(
            service,
            self.config.credentials.as_ref(),
            self.config.issued.as_ref(),
            self.config.max_clock_skew,
            parts,
            body,
            std::time::SystemTime::now(),
        )
    }
}

/// The Lambda API over any backend (the axum app alone).
pub fn router_with<B: Backend>(backend: Arc<B>, config: ApiConfig) -> Router {
    api_with(backend, config).router()
}

/// The Lambda API over any backend: the axum app and the Invoke route in front of it, sharing
/// one state.
pub fn api_with<B: Backend>(backend: Arc<B>, config: ApiConfig) -> Api {
    let state = Arc::new(AppState {
        backend,
        config,
        routes: route::Routes::new(&MODEL),
        emf: Default::default(),
    });
    let router = if state.config.metrics {
        Router::new().route("/metrics", get(metrics::scrape::<B>))
    } else {
        Router::new()
    };
    let router = router
        .route("/_flint/code/{sha256}", get(code::function_code::<B>))
        .route("/_flint/layers/{sha256}", get(code::layer_content::<B>))
        .fallback(dispatch::<B>)
        .with_state(state.clone())
        .layer(axum::middleware::from_fn(access_log::access_log));
    Api::new(router, state)
}

/// SigV4 authentication of a request outside the Lambda REST API (a function URL with
/// `AuthType: AWS_IAM`), exactly as the API authenticates its own: the caller's scope.
pub fn authenticate(
    config: &ApiConfig,
    parts: &http::request::Parts,
    body: &[u8],
) -> Result<Scope, ApiError> {
    sigv4::authenticate_with(
        config.credentials.as_ref(),
        config.issued.as_ref(),
        config.max_clock_skew,
        parts,
        body,
        SystemTime::now(),
    )
}

/// The largest request body an operation accepts.
fn body_limit(op: Option<&str>) -> usize {
    match op {
        Some("Invoke" | "InvokeWithResponseStream") => invoke::SYNC_PAYLOAD_LIMIT,
        Some("InvokeAsync") => invoke::INVOKE_ASYNC_LIMIT,
        _ => CONTROL_REQUEST_LIMIT,
    }
}

/// How long a request's body may take to arrive (6 MB at 100 kB/s).
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// AWS's answer to a body over [`body_limit`].
fn too_large(op: Option<&str>) -> ApiError {
    let name = match op {
        Some("Invoke") => "InvokeFunction",
        Some(other) => other,
        None => "Unknown",
    };
    ApiError::lambda(
        flint_control::ErrorCode::RequestEntityTooLargeException,
        format!(
            "Request must be smaller than {} bytes for the {name} operation",
            body_limit(op)
        ),
    )
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, Option<String>> {
    read_payload(body, limit).await.map(|p| p.contiguous())
}

/// A request body as hyper read it, its chunks not gathered (an Invoke payload: checked and
/// handed to the runtime as they are). `Err(None)`: over `limit`.
async fn read_payload(body: Body, limit: usize) -> Result<flint_engine::Payload, Option<String>> {
    flint_engine::Payload::read(body, limit)
        .await
        .map_err(|e| match e {
            flint_engine::ReadError::TooLarge => None,
            flint_engine::ReadError::Broken(m) => Some(m),
        })
}

/// Every Lambda API request: authenticate, route, then invoke or hand to the control plane.
async fn dispatch<B: Backend>(
    State(st): State<Arc<AppState<B>>>,
    request_id: Option<Extension<RequestId>>,
    req: Request,
) -> Response {
    let request_id = request_id
        .map(|Extension(r)| r.0)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    match handle(&st, req, &request_id).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle<B: Backend>(
    st: &AppState<B>,
    req: Request,
    request_id: &str,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    if let Some(op) = logs::target(&parts) {
        let op = op.to_string();
        return Ok(logs::handle(st, parts, body, op, request_id).await);
    }
    if xray::signed_for_xray(&parts.headers) {
        return Ok(xray::handle(st, parts, body, request_id).await);
    }
    // AWS refuses unsigned requests before looking at the path.
    if !parts.headers.contains_key(http::header::AUTHORIZATION) {
        return Err(sigv4::missing_token());
    }
    let matched = st
        .routes
        .find(&parts.method, parts.uri.path(), parts.uri.query());
    serve_matched(st, parts, body, matched, request_id).await
}

/// A Lambda API request once routed (`matched`: `None` if no operation has its method and
/// path): its body read within the operation's limit, its signature checked, then the
/// operation run.
async fn serve_matched<B: Backend>(
    st: &AppState<B>,
    parts: http::request::Parts,
    body: Body,
    matched: Option<route::Matched>,
    request_id: &str,
) -> Result<Response, ApiError> {
    let op = matched.as_ref().map(|m| &MODEL.operations[m.op]);

    let op_name = op.map(|o| o.name.as_str());
    let limit = body_limit(op_name);
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(op_name));
    }
    // A client trickling its body must not hold a connection (and its slot) forever.
    let body = match tokio::time::timeout(BODY_READ_TIMEOUT, read_payload(body, limit)).await {
        Ok(Ok(b)) => b,
        Ok(Err(None)) => return Err(too_large(op_name)),
        Err(_) => {
            return Err(ApiError::lambda(
                flint_control::ErrorCode::InvalidRequestContentException,
                "Could not read the request body in time",
            ))
        }
        Ok(Err(Some(e))) => {
            return Err(ApiError::lambda(
                flint_control::ErrorCode::InvalidRequestContentException,
                format!("Could not read the request body: {e}"),
            ))
        }
    };

    let scope = sigv4::authenticate_with(
        st.config.credentials.as_ref(),
        st.config.issued.as_ref(),
        st.config.max_clock_skew,
        &parts,
        &body,
        SystemTime::now(),
    )?;
    // Through an environment's own listener: only with the credentials issued to it (so only
    // within its account).
    if let Some(caller) = parts.extensions.get::<flint_engine::SandboxCaller>() {
        if sigv4::access_key_of(&parts) != Some(caller.access_key_id.as_str()) {
            return Err(sigv4::unrecognized_client());
        }
    }
    let (Some(m), Some(op)) = (matched.as_ref(), op) else {
        return Err(ApiError::unknown_operation());
    };
    let backend = st.backend.as_ref();
    match op.name.as_str() {
        "Invoke" | "InvokeWithResponseStream" => {
            invoke::invoke(backend, &scope, op, &m.labels, &parts, body, request_id).await
        }
        "InvokeAsync" => {
            invoke::invoke_async(backend, &scope, op, &m.labels, &parts, body, request_id).await
        }
        _ => {
            let input = match op.input {
                Some(shape) => {
                    let input = request::assemble(
                        &MODEL,
                        shape,
                        &m.labels,
                        parts.uri.query(),
                        &parts.headers,
                        &body.contiguous(),
                    )?;
                    validation::validate(&MODEL, &op.name, shape, &input)?;
                    input
                }
                None => response::empty_object(),
            };
            let output = control_call(backend.execute(&scope, &op.name, input)).await?;
            Ok(response::render(&MODEL, op, output))
        }
    }
}

/// Runs a control-plane operation. Those write to SQLite with `synchronous=FULL` (an fsync per
/// acknowledged change) on the calling thread: on a multi-threaded runtime the worker hands its
/// other tasks (warm invokes) to another thread for the duration, so no invoke waits for a disk.
async fn control_call<F: std::future::Future>(fut: F) -> F::Output {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| h.block_on(fut))
        }
        _ => fut.await,
    }
}

#[cfg(test)]
mod tests;
