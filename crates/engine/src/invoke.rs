//! The invoke path, top to bottom: count concurrency → take a provisioned or warm environment, or
//! cold-start one → hand the event to its Runtime API → wait for the response, an error, the
//! deadline or the process dying → write END/REPORT, return the environment to its pool → answer.
//! A caller that stops waiting (client disconnect) does not cut this short: the rest runs in the
//! background, so environments are never lost.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use flint_runtime_api::{Invocation, Outcome, Payload, Readiness, ResponseStream};
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use crate::admission::Admission;
use crate::environment::{self, Environment, InitType, StartError};
use crate::extensions;
use crate::function_error as fe;
use crate::logs::{self, Report};
use crate::pool::Pool;
use crate::throttle::{self, Class};
use crate::{
    Inner, InvokeError, InvokeRequest, InvokeResponse, Invoked, StreamedResponse, ThrottleReason,
};

/// How long a runtime may take to initialise (Lambda's limit for on-demand init).
pub(crate) const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How an invocation ended, for the answer and the REPORT line.
struct Ending {
    payload: Payload,
    function_error: bool,
    /// REPORT `Status:` (timeout, error) when the platform ended the invoke.
    status: Option<&'static str>,
    error_type: Option<&'static str>,
    /// The runtime began a streamed response: the invocation goes on until it ends.
    stream: Option<ResponseStream>,
}

impl Ending {
    fn ok(payload: impl Into<Payload>) -> Self {
        Self {
            payload: payload.into(),
            function_error: false,
            status: None,
            error_type: None,
            stream: None,
        }
    }
    fn failed(payload: impl Into<Payload>) -> Self {
        Self {
            function_error: true,
            ..Self::ok(payload)
        }
    }
    fn platform(
        payload: impl Into<Payload>,
        status: &'static str,
        error_type: &'static str,
    ) -> Self {
        Self {
            status: Some(status),
            error_type: Some(error_type),
            ..Self::failed(payload)
        }
    }
    /// The `status` of `platform.runtimeDone`.
    fn telemetry_status(&self) -> &'static str {
        match (self.status, self.function_error) {
            (Some(s), _) => s,
            (None, true) => "error",
            (None, false) => "success",
        }
    }
    fn streaming(stream: ResponseStream) -> Self {
        Self {
            stream: Some(stream),
            ..Self::ok(Payload::default())
        }
    }
}

pub(crate) async fn invoke(
    inner: &Arc<Inner>,
    req: InvokeRequest,
    class: Class,
) -> Result<Invoked, InvokeError> {
    let spec = &req.function;
    inner
        .invocations
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if inner.is_shutting_down() {
        return Err(InvokeError::Service("Flint is shutting down".into()));
    }
    if spec.reserved_concurrency == Some(0) {
        inner
            .pools
            .metrics
            .function(&spec.account, &spec.region, &spec.function_name)
            .throttles
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Err(InvokeError::Throttled {
            reason: ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded,
        });
    }
    let pool = inner.pools.get_or_create(spec, &inner.throttle);
    if pool.reservation_changed(spec) {
        inner.throttle.learn(spec);
    }

    // Placement: a provisioned environment first, else a warm one (the whole hot path is
    // these branches), else a cold start.
    let (env, init, lease) = if let Some(env) = pool.take_provisioned() {
        // Provisioned concurrency is carved out already: of the unreserved pool, or of the
        // function's reservation (its on-demand invokes get the rest): the environments
        // themselves bound these invokes.
        let lease = throttle::Lease::free().running(&pool.metrics);
        pool.metrics.provisioned_invocations.fetch_add(1, Relaxed);
        (env, None, lease)
    } else {
        if pool.has_provisioned() {
            pool.metrics.spillover_invocations.fetch_add(1, Relaxed);
        }
        let lease = throttle::lease(&pool.counters, class, spec.reserved_concurrency)
            .map_err(|reason| {
                pool.metrics.throttles.fetch_add(1, Relaxed);
                InvokeError::Throttled { reason }
            })?
            .running(&pool.metrics);
        let admitted = match pool.take_idle() {
            Some(env) => Admission::Warm(env),
            None => admit_cold_start(inner, &pool, spec).await?,
        };
        match admitted {
            Admission::Warm(env) => (env, None, lease),
            Admission::Cold(slot) => match cold_start(inner, &pool, &req, slot).await? {
                Ok((env, init)) => (env, Some(init), lease),
                Err((env, ending)) => {
                    return Ok(Invoked::Buffered(conclude(
                        &pool,
                        env,
                        &req,
                        Instant::now(),
                        None,
                        ending,
                        false,
                    )))
                }
            },
        }
    };

    let mut run = Checkout {
        pool: &pool,
        req: &req,
        env: Some(env.clone()),
        init,
        lease: Some(lease),
        started: Instant::now(),
        deadline: tokio::time::Instant::now(),
        outcome: None,
        done: None,
        trace: String::new(),
    };
    let mut ending = run.run(&env).await;
    let runtime_duration = run.started.elapsed();
    extensions::runtime_done(
        &env.api,
        &extensions::RuntimeDone {
            request_id: &req.request_id,
            status: ending.telemetry_status(),
            error_type: ending.error_type,
            started: run.started,
            duration: runtime_duration,
            produced_bytes: ending.payload.len(),
            trace: &run.trace,
        },
    );
    if ending.stream.is_none() && env.api.has_invoke_extensions() && env.is_healthy() {
        if !req.tail_log {
            // The caller has its answer now; the post-runtime phase (extensions finishing
            // with the event), the REPORT and the return to the pool follow in the background.
            let response = answer(&req, &ending, None);
            let (pool, req) = (pool.clone(), req.clone());
            let (started, init, deadline) = (run.started, run.init, run.deadline);
            let lease = run.lease.take();
            run.outcome = None;
            if let Some(env) = run.env.take() {
                tokio::spawn(async move {
                    post_runtime(&env, deadline).await;
                    conclude(&pool, Some(env), &req, started, init, ending, true);
                    drop(lease);
                });
            }
            return Ok(Invoked::Buffered(response));
        }
        post_runtime(&env, run.deadline).await;
    }
    drop(env);
    if let Some(stream) = ending.stream.take() {
        // The response has begun: the caller reads it as it arrives while the invocation runs
        // on (deadline included) in the background; its ending comes on `done`.
        let (done_tx, done) = oneshot::channel();
        run.outcome = Some(stream.end);
        run.done = Some(done_tx);
        let executed_version = req.function.version.clone();
        drop(run);
        return Ok(Invoked::Streamed(StreamedResponse {
            content_type: stream.content_type,
            chunks: stream.chunks,
            done,
            executed_version,
        }));
    }
    Ok(Invoked::Buffered(run.conclude(ending)))
}

/// An environment checked out of its pool for one invocation. When the caller stops waiting
/// (a client disconnect drops the invoke future), the invocation still runs to its end in the
/// background, as on Lambda, and the environment then goes back to its pool: none is lost.
struct Checkout<'a> {
    pool: &'a Arc<Pool>,
    req: &'a InvokeRequest,
    env: Option<Arc<Environment>>,
    init: Option<Duration>,
    lease: Option<throttle::Lease>,
    started: Instant,
    deadline: tokio::time::Instant,
    outcome: Option<oneshot::Receiver<Outcome>>,
    /// Where the ending of a streamed response goes.
    done: Option<oneshot::Sender<InvokeResponse>>,
    /// The trace header the function got (for telemetry's `tracing`), once known.
    trace: String,
}

impl Checkout<'_> {
    /// Hands the event to the runtime and waits for how it ends.
    async fn run(&mut self, env: &Arc<Environment>) -> Ending {
        let req = self.req;
        let spec = &req.function;
        env.log.begin(&req.request_id, &spec.version, req.tail_log);
        let timeout = Duration::from_secs(u64::from(spec.timeout_secs.max(1)));
        env.begin_use();
        self.started = Instant::now();
        self.deadline = tokio::time::Instant::now() + timeout;
        let decide = || spec.tracing_active && self.pool.trace_reservoir.sample();
        let trace_id = match &req.trace_header {
            Some(t) if t.starts_with("Root=") => crate::xray::with_sampling(t, decide),
            _ => crate::xray::with_sampling(&flint_runtime_api::new_trace_id(), decide),
        };
        let wall_start = std::time::SystemTime::now();
        extensions::start(&env.api, &req.request_id, &spec.version, &trace_id);
        if env
            .api
            .telemetry_wants(flint_runtime_api::Category::Platform)
        {
            self.trace.clone_from(&trace_id);
        }
        let sampled = crate::xray::sampled_ids(&trace_id)
            .map(|(root, parent)| (root.to_string(), parent.to_string()));
        let outcome = self.outcome.insert(env.api.deliver(Invocation {
            request_id: req.request_id.clone(),
            deadline_ms: epoch_ms() + timeout.as_millis() as u64,
            invoked_function_arn: req.invoked_arn.clone(),
            trace_id,
            client_context: req.client_context.as_deref().map(decode_client_context),
            cognito_identity: None,
            payload: req.payload.clone(),
        }));
        let ending = wait_for_outcome(self.pool, env, outcome, self.deadline, req).await;
        if let Some((root, parent)) = sampled {
            // A sampled invocation: the function's own segment, parent of what its code sent.
            let segment = crate::xray::function_segment(&crate::xray::Invocation {
                function_name: &spec.function_name,
                invoked_arn: &req.invoked_arn,
                request_id: &req.request_id,
                trace_id: &root,
                segment_id: &parent,
                start: wall_start,
                end: std::time::SystemTime::now(),
                function_error: ending.function_error,
                platform_error: ending.status.is_some() && !ending.function_error,
            });
            if let Err(e) = env.traces.keep(segment.as_bytes()) {
                tracing::warn!(function = %spec.function_name, "cannot keep an X-Ray segment: {e}");
            }
        }
        ending
    }

    /// The invocation is over: log, pool and answer.
    fn conclude(mut self, ending: Ending) -> InvokeResponse {
        self.outcome = None;
        let env = self.env.take();
        conclude(
            self.pool,
            env,
            self.req,
            self.started,
            self.init,
            ending,
            true,
        )
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        let Some(env) = self.env.take() else { return };
        let Some(mut outcome) = self.outcome.take() else {
            // Dropped before the event was handed over: nothing ran.
            if let Some(env) = self.pool.put_back(env) {
                env.kill();
            }
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            env.kill();
            return;
        };
        let pool = self.pool.clone();
        let req = self.req.clone();
        let (started, init, deadline, lease, done) = (
            self.started,
            self.init,
            self.deadline,
            self.lease.take(),
            self.done.take(),
        );
        handle.spawn(async move {
            let mut ending = wait_for_outcome(&pool, &env, &mut outcome, deadline, &req).await;
            // A stream nobody reads any more still runs to its end (or its deadline).
            while let Some(stream) = ending.stream.take() {
                drop(stream.chunks);
                let mut end = stream.end;
                ending = wait_for_outcome(&pool, &env, &mut end, deadline, &req).await;
            }
            let response = conclude(&pool, Some(env), &req, started, init, ending, true);
            if let Some(done) = done {
                let _ = done.send(response);
            }
            // The slot stays taken until the function is done.
            drop(lease);
        });
    }
}

/// AWS's post-runtime phase: the invocation is over once every extension handed its `INVOKE`
/// has asked for its next event. One still busy at the deadline costs the environment.
async fn post_runtime(env: &Environment, deadline: tokio::time::Instant) {
    if tokio::time::timeout_at(deadline, env.api.extensions_idle())
        .await
        .is_err()
    {
        env.kill();
    }
}

/// Waits for the runtime's answer, the deadline (the environment is stopped) or its exit.
async fn wait_for_outcome(
    pool: &Pool,
    env: &Arc<Environment>,
    outcome: &mut oneshot::Receiver<Outcome>,
    deadline: tokio::time::Instant,
    req: &InvokeRequest,
) -> Ending {
    let spec = &req.function;
    let outcome = tokio::select! {
        biased;
        o = outcome => Some(o.unwrap_or(Outcome::Closed)),
        _ = tokio::time::sleep_until(deadline) => None,
    };
    match outcome {
        Some(Outcome::Response(body)) => Ending::ok(body),
        Some(Outcome::Streaming(stream)) => Ending::streaming(stream),
        // The runtime reported the error and carries on: the environment stays warm.
        Some(Outcome::Error { error_type, body }) => {
            Ending::failed(fe::reported(error_type.as_deref(), body))
        }
        Some(Outcome::ResponseTooLarge) => Ending::failed(fe::response_too_large()),
        Some(Outcome::Closed) => {
            let (payload, error_type) = fe::exited(&req.request_id, env.exit_info().await);
            Ending::platform(payload, "error", error_type)
        }
        None => {
            // Lambda restarts the runtime but keeps the environment's /tmp: the next cold start
            // of this snapshot gets it.
            if let Some(tmp) = env.take_tmp() {
                pool.keep_tmp(tmp);
            }
            // Its extensions hear of it (SHUTDOWN, reason timeout) before it is stopped.
            env.retire(flint_runtime_api::ShutdownReason::Timeout);
            env.log
                .platform(&logs::timeout_line(&req.request_id, spec.timeout_secs));
            Ending::platform(
                fe::timed_out(&req.request_id, spec.timeout_secs),
                "timeout",
                fe::SANDBOX_TIMEDOUT,
            )
        }
    }
}

type ColdStart = Result<(Arc<Environment>, Duration), (Option<Arc<Environment>>, Ending)>;

/// Waits, within the invoke's own timeout, for a start slot or for one of the function's
/// environments to come back idle (see `admission.rs`); throttled past it.
async fn admit_cold_start(
    inner: &Arc<Inner>,
    pool: &Arc<Pool>,
    spec: &crate::FunctionSpec,
) -> Result<Admission, InvokeError> {
    let wait = Duration::from_secs(u64::from(spec.timeout_secs.max(1)));
    inner
        .cold_starts
        .admit(&pool.returns, || pool.take_idle(), wait)
        .await
        .map_err(|reason| {
            pool.metrics.throttles.fetch_add(1, Relaxed);
            InvokeError::Throttled { reason }
        })
}

/// Starts an environment and waits for its runtime to finish init. A failure of the function's own
/// making (bad bootstrap, init error, crash, init timeout) is an `Ending`; ours is an `InvokeError`.
async fn cold_start(
    inner: &Arc<Inner>,
    pool: &Arc<Pool>,
    req: &InvokeRequest,
    slot: OwnedSemaphorePermit,
) -> Result<ColdStart, InvokeError> {
    let kept_tmp = pool.take_kept_tmp();
    let env = match environment::start(
        inner,
        &req.function,
        req.tail_log,
        InitType::OnDemand,
        kept_tmp,
    )
    .await
    {
        Ok(env) => env,
        Err(StartError::InvalidRuntime(m)) => return Err(InvokeError::InvalidRuntime(m)),
        Err(StartError::Service(m)) => return Err(InvokeError::Service(m)),
        Err(StartError::InvalidEntrypoint(detail)) => {
            let payload = fe::invalid_entrypoint(&req.request_id, &detail);
            return Ok(Err((
                None,
                Ending::platform(payload, "error", fe::RUNTIME_INVALID_ENTRYPOINT),
            )));
        }
        Err(StartError::Exited(code)) => {
            let exit = flint_sandbox::ExitInfo {
                code: Some(code),
                signal: None,
                oom_killed: false,
            };
            let (payload, error_type) = fe::exited(&req.request_id, Some(exit));
            return Ok(Err((None, Ending::platform(payload, "error", error_type))));
        }
    };
    let mut starting = Starting {
        pool,
        env: Some(env.clone()),
        slot: Some(slot),
    };
    let ready = tokio::time::timeout(INIT_TIMEOUT, env.api.ready()).await;
    starting.env = None;
    // The init is over: the next cold start may begin.
    starting.slot = None;
    let ending = match ready {
        Ok(Readiness::Ready) => {
            let init = env.spawned_at.elapsed();
            tracing::debug!(
                function = %req.function.function_name,
                "cold start: prepare {:.2} ms, sandbox {:.2} ms, runtime init {:.2} ms (Init Duration {:.2} ms)",
                env.prepare_time.as_secs_f64() * 1e3,
                env.sandbox_time.as_secs_f64() * 1e3,
                init.saturating_sub(env.sandbox_time).as_secs_f64() * 1e3,
                init.as_secs_f64() * 1e3,
            );
            extensions::init_done(
                &env.api,
                &req.function,
                env.init_type.as_str(),
                init,
                "success",
                None,
            );
            let lines = extensions::extension_lines(&env.api, env.log.is_json());
            if !lines.is_empty() {
                env.log.platform(&lines);
            }
            return Ok(Ok((env, init)));
        }
        Ok(Readiness::ExtensionFailed(f)) => {
            env.kill();
            let (payload, error_type) = fe::extension_failed(&req.request_id, &f);
            extensions::init_done(
                &env.api,
                &req.function,
                env.init_type.as_str(),
                env.spawned_at.elapsed(),
                "error",
                Some(error_type),
            );
            Ending::platform(payload, "error", error_type)
        }
        Ok(Readiness::InitFailed(err)) => {
            // The environment is discarded; the next invoke runs init again.
            env.kill();
            let payload = fe::reported(err.error_type.as_deref(), err.body);
            Ending::platform(payload, "error", "Runtime.InitError")
        }
        Ok(Readiness::Closed | Readiness::Starting) => {
            let (payload, error_type) = fe::exited(&req.request_id, env.exit_info().await);
            Ending::platform(payload, "error", error_type)
        }
        Err(_) => {
            env.kill();
            let payload = fe::timed_out(&req.request_id, req.function.timeout_secs);
            Ending::platform(payload, "timeout", fe::SANDBOX_TIMEDOUT)
        }
    };
    Ok(Err((Some(env), ending)))
}

/// An environment in its init for an invoke. When the caller stops waiting, the init still
/// completes in the background and the environment joins its pool warm (or is stopped when the
/// init fails): none is lost.
struct Starting<'a> {
    pool: &'a Arc<Pool>,
    env: Option<Arc<Environment>>,
    /// The start slot (see `admission.rs`), held until the init is over.
    slot: Option<OwnedSemaphorePermit>,
}

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        let Some(env) = self.env.take() else { return };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            env.kill();
            return;
        };
        let pool = self.pool.clone();
        let slot = self.slot.take();
        handle.spawn(async move {
            let left = INIT_TIMEOUT.saturating_sub(env.spawned_at.elapsed());
            let ready = tokio::time::timeout(left, env.api.ready()).await;
            drop(slot);
            match ready {
                Ok(Readiness::Ready) => {
                    // Its init output belonged to the abandoned invoke, not to the next one.
                    env.log.discard_tail();
                    if let Some(env) = pool.put_back(env) {
                        env.kill();
                    }
                }
                _ => env.kill(),
            }
        });
    }
}

/// Closes the invocation's log (END, REPORT), gives the environment back (or stops it) and
/// builds the answer.
fn conclude(
    pool: &Pool,
    env: Option<Arc<Environment>>,
    req: &InvokeRequest,
    started: Instant,
    init: Option<Duration>,
    ending: Ending,
    begun: bool,
) -> InvokeResponse {
    let spec = &req.function;
    let duration = started.elapsed();
    let m = &pool.metrics;
    m.invocations.fetch_add(1, Relaxed);
    if ending.status.is_some() || ending.function_error {
        m.errors.fetch_add(1, Relaxed);
    }
    m.duration.observe(duration);
    if let Some(init) = init {
        m.cold_starts.fetch_add(1, Relaxed);
        m.init_duration.observe(init);
    }
    let mut tail = None;
    if let Some(env) = env {
        let log = &env.log;
        if !begun {
            log.begin(&req.request_id, &spec.version, req.tail_log);
        }
        log.drain();
        if let Some(end) = logs::end_line(log.is_json(), &req.request_id) {
            log.platform(&end);
        }
        // Lambda bills an on-demand cold start's init, on every runtime (since August 2025);
        // a provisioned environment's init is not part of any invoke.
        let report = Report {
            duration,
            billed_ms: billed_ms(duration + init.unwrap_or_default()),
            memory_mb: spec.memory_mb,
            max_memory_used_mb: env.max_memory_used_mb(),
            init,
            status: ending.status,
            error_type: ending.error_type,
        };
        log.platform(&logs::report_line(log.is_json(), &req.request_id, &report));
        extensions::report(&env.api, &req.request_id, &report);
        if let Some(attempt) = req.async_attempt {
            let outcome = match (ending.status, ending.function_error) {
                (Some(status), _) => status,
                (None, true) => "error",
                (None, false) => "success",
            };
            log.platform(&logs::async_attempt_line(
                log.is_json(),
                &req.request_id,
                attempt,
                outcome,
            ));
        }
        tail = log.finish();
        if let Some(env) = pool.put_back(env) {
            env.kill();
        }
    } else if req.tail_log {
        // Nothing ran: the tail holds just Lambda's own lines, REPORT included.
        let mut t = logs::start_line(false, &req.request_id, &spec.version);
        t.push_str(&format!("END RequestId: {}\n", req.request_id));
        let report = Report {
            duration,
            billed_ms: billed_ms(duration),
            memory_mb: spec.memory_mb,
            max_memory_used_mb: 0,
            init: None,
            status: ending.status,
            error_type: ending.error_type,
        };
        t.push_str(&logs::report_line(false, &req.request_id, &report));
        tail = Some(t.into_bytes());
    }
    answer(req, &ending, tail)
}

/// The caller's answer.
fn answer(req: &InvokeRequest, ending: &Ending, tail: Option<Vec<u8>>) -> InvokeResponse {
    InvokeResponse {
        payload: ending.payload.clone(),
        function_error: ending.function_error.then(|| fe::UNHANDLED.to_string()),
        log_result: if req.tail_log {
            Some(base64::engine::general_purpose::STANDARD.encode(tail.unwrap_or_default()))
        } else {
            None
        },
        executed_version: req.function.version.clone(),
    }
}

/// Billed Duration: whole milliseconds, rounded up, at least 1.
fn billed_ms(d: Duration) -> u64 {
    (d.as_micros().div_ceil(1000) as u64).max(1)
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `X-Amz-Client-Context` is base64; the runtime gets the JSON text.
fn decode_client_context(b64: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| b64.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billed_duration_rounds_up_to_whole_milliseconds() {
        assert_eq!(billed_ms(Duration::ZERO), 1);
        assert_eq!(billed_ms(Duration::from_micros(1001)), 2);
        assert_eq!(billed_ms(Duration::from_millis(90)), 90);
    }

    #[test]
    fn client_context_is_decoded_for_the_runtime() {
        assert_eq!(decode_client_context("eyJhIjoxfQ=="), "{\"a\":1}");
        assert_eq!(decode_client_context("not base64!"), "not base64!");
    }
}
