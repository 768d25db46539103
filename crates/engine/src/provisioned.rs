//! Provisioned concurrency: the change feed says how many environments each snapshot should keep
//! initialised (`Engine::follow` → `set`); a background task starts them ahead of invokes (with
//! `AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency`), replaces those that die, and
//! stops them when their target shrinks or goes away. The pools hold the environments; each
//! target also remembers whether all its environments were up at once (the allocation is done)
//! and whether the function's own init keeps failing, which GetProvisionedConcurrencyConfig reports
//! (published on the engine's provisioned report, which the control plane follows).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use flint_runtime_api::Readiness;
use parking_lot::Mutex;
use tokio::sync::{watch, Notify, Semaphore};

use crate::environment::{self, InitType, StartError};
use crate::invoke::INIT_TIMEOUT;
use crate::pool::Pool;
use crate::{FunctionSpec, Inner, ProvisionedAllocation, ProvisionedReport};

/// How often targets are checked for dead or missing environments without being told.
const CHECK_PERIOD: Duration = Duration::from_millis(200);

/// Provisioned starts running at once across the engine (each one is a runtime's whole init).
const PARALLEL_STARTS: usize = 4;

/// Retired snapshot ids remembered so a late `set` (read before the retirement) cannot bring
/// them back.
const RETIRED_MEMORY: usize = 4096;

/// Consecutive failed starts, for reasons of the function's own (its init raised, the runtime
/// exited or hung during init), after which the allocation counts as failed. More than one so
/// that a single unlucky start does not show as FAILED.
const FAILED_AFTER: u32 = 2;

struct Target {
    spec: Arc<FunctionSpec>,
    count: u32,
    pool: Arc<Pool>,
    /// All `count` environments were up at once since `count` was set. Replacing one that died
    /// later does not undo it (AWS stays READY meanwhile).
    allocated: bool,
    /// Consecutive starts that failed because of the function, and the last one's reason.
    function_failures: u32,
    last_function_failure: Option<String>,
}

impl Target {
    fn new(spec: Arc<FunctionSpec>, count: u32, pool: Arc<Pool>) -> Self {
        Self {
            spec,
            count,
            pool,
            allocated: false,
            function_failures: 0,
            last_function_failure: None,
        }
    }

    /// Notes the allocation as done once every environment asked for is up.
    fn observe(&mut self, ready: u32) {
        if ready >= self.count {
            self.allocated = true;
        }
    }
}

/// Why a provisioned start failed.
#[derive(Debug)]
enum StartFailure {
    /// The function's init raised, or its runtime exited or hung during init, or its
    /// configuration cannot start (runtime, entrypoint).
    Function(String),
    /// Flint could not start the environment, or is stopping.
    Service(String),
}

impl StartFailure {
    fn message(&self) -> &str {
        match self {
            StartFailure::Function(m) | StartFailure::Service(m) => m,
        }
    }
}

pub(crate) struct Provisioner {
    targets: Mutex<HashMap<String, Target>>,
    wake: Arc<Notify>,
    starts: Arc<Semaphore>,
    retired: Mutex<(VecDeque<String>, HashSet<String>)>,
    /// Every target's allocation, as last published (see [`Provisioner::publish`]).
    report: watch::Sender<ProvisionedReport>,
}

impl Default for Provisioner {
    fn default() -> Self {
        Self {
            targets: Mutex::default(),
            wake: Arc::new(Notify::new()),
            starts: Arc::new(Semaphore::new(PARALLEL_STARTS)),
            retired: Mutex::default(),
            report: watch::Sender::new(ProvisionedReport::new()),
        }
    }
}

impl Provisioner {
    /// Replaces every target: `(spec, n)` keeps `n` environments of `spec`'s snapshot (entries
    /// of one snapshot add up); snapshots left out keep none.
    pub(crate) fn set(&self, inner: &Inner, targets: Vec<(Arc<FunctionSpec>, u32)>) {
        let mut wanted: HashMap<String, (Arc<FunctionSpec>, u32)> = HashMap::new();
        {
            let retired = self.retired.lock();
            for (spec, n) in targets {
                if n == 0 || retired.1.contains(&spec.snapshot_id) {
                    continue;
                }
                let entry = wanted
                    .entry(spec.snapshot_id.clone())
                    .or_insert_with(|| (spec.clone(), 0));
                entry.0 = spec;
                entry.1 = entry.1.saturating_add(n);
            }
        }
        // Provisioned concurrency of a function without a reservation comes out of the
        // account's unreserved pool.
        let mut claims: HashMap<(String, String), u32> = HashMap::new();
        for (spec, n) in wanted.values() {
            if spec.reserved_concurrency.is_none() {
                let c = claims
                    .entry((spec.account.clone(), spec.region.clone()))
                    .or_default();
                *c = c.saturating_add(*n);
            }
        }
        inner.throttle.set_provisioned_claims(&claims);
        // A function with a reservation: its provisioned concurrency comes out of that.
        let mut function_claims: HashMap<(String, String, String), u32> = HashMap::new();
        for (spec, n) in wanted.values() {
            if spec.reserved_concurrency.is_some() {
                let c = function_claims
                    .entry((
                        spec.account.clone(),
                        spec.region.clone(),
                        spec.function_name.clone(),
                    ))
                    .or_default();
                *c = c.saturating_add(*n);
            }
        }
        inner.throttle.set_function_claims(&function_claims);

        let mut stop = Vec::new();
        let mut changed = false;
        {
            let mut current = self.targets.lock();
            current.retain(|id, t| {
                let keep = wanted.contains_key(id);
                if !keep {
                    stop.extend(t.pool.set_provisioned_target(0));
                    changed = true;
                }
                keep
            });
            for (id, (spec, n)) in wanted {
                match current.get_mut(&id) {
                    Some(t) => {
                        t.spec = spec;
                        if t.count != n {
                            // A new count is a new allocation, with fresh attempts.
                            t.count = n;
                            t.allocated = false;
                            t.function_failures = 0;
                            t.last_function_failure = None;
                            stop.extend(t.pool.set_provisioned_target(n));
                            changed = true;
                        }
                    }
                    None => {
                        let pool = inner.pools.get_or_create(&spec, &inner.throttle);
                        stop.extend(pool.set_provisioned_target(n));
                        current.insert(id, Target::new(spec, n, pool));
                        changed = true;
                    }
                }
            }
        }
        for env in stop {
            env.kill();
        }
        if changed {
            self.wake.notify_one();
        }
        self.publish();
    }

    /// A snapshot is retired: its target goes (its pool stops the environments).
    pub(crate) fn forget(&self, snapshot_id: &str) {
        {
            let mut retired = self.retired.lock();
            if retired.1.insert(snapshot_id.to_string()) {
                retired.0.push_back(snapshot_id.to_string());
                if retired.0.len() > RETIRED_MEMORY {
                    if let Some(old) = retired.0.pop_front() {
                        retired.1.remove(&old);
                    }
                }
            }
        }
        self.targets.lock().remove(snapshot_id);
        self.publish();
    }

    pub(crate) fn report(&self) -> watch::Receiver<ProvisionedReport> {
        self.report.subscribe()
    }

    /// Publishes every target's allocation if any changed since the last time.
    pub(crate) fn publish(&self) {
        let ids: Vec<String> = self.targets.lock().keys().cloned().collect();
        let now: ProvisionedReport = ids
            .into_iter()
            .filter_map(|id| self.allocation(&id).map(|a| (id, a)))
            .collect();
        self.report.send_if_modified(|last| {
            if *last == now {
                return false;
            }
            *last = now;
            true
        });
    }

    pub(crate) fn allocation(&self, snapshot_id: &str) -> Option<ProvisionedAllocation> {
        let pool = self.targets.lock().get(snapshot_id)?.pool.clone();
        // The pool's lock is taken outside the targets' one (never both at once).
        let ready = pool.provisioned_status().ready;
        let mut targets = self.targets.lock();
        let t = targets
            .get_mut(snapshot_id)
            .filter(|t| Arc::ptr_eq(&t.pool, &pool))?;
        t.observe(ready);
        Some(ProvisionedAllocation {
            requested: t.count,
            ready,
            allocated: t.allocated,
            init_failure: (t.function_failures >= FAILED_AFTER)
                .then(|| t.last_function_failure.clone())
                .flatten(),
        })
    }

    /// A start of `pool`'s target finished: counts the function's failures in a row and notes
    /// the allocation done once everything is up.
    fn started(&self, snapshot_id: &str, pool: &Arc<Pool>, outcome: Result<(), &StartFailure>) {
        let ready = pool.provisioned_status().ready;
        let mut targets = self.targets.lock();
        // The target may have been replaced (retired, then set again) while the start ran.
        let Some(t) = targets
            .get_mut(snapshot_id)
            .filter(|t| Arc::ptr_eq(&t.pool, pool))
        else {
            return;
        };
        match outcome {
            Ok(()) => {
                t.function_failures = 0;
                t.last_function_failure = None;
            }
            Err(StartFailure::Function(reason)) => {
                t.function_failures = t.function_failures.saturating_add(1);
                t.last_function_failure = Some(reason.clone());
            }
            Err(StartFailure::Service(_)) => {}
        }
        t.observe(ready);
    }

    /// The targets to check, minus those whose pool was retired meanwhile.
    fn current(&self) -> Vec<(Arc<FunctionSpec>, Arc<Pool>)> {
        let mut targets = self.targets.lock();
        targets.retain(|_, t| !t.pool.is_retired());
        targets
            .values()
            .map(|t| (t.spec.clone(), t.pool.clone()))
            .collect()
    }

    /// Notes allocations completed without a start (a lowered count).
    fn observe_all(&self, pools: &[(Arc<FunctionSpec>, Arc<Pool>)]) {
        let ready: Vec<(String, Arc<Pool>, u32)> = pools
            .iter()
            .map(|(spec, pool)| {
                let ready = pool.provisioned_status().ready;
                (spec.snapshot_id.clone(), pool.clone(), ready)
            })
            .collect();
        let mut targets = self.targets.lock();
        for (id, pool, ready) in ready {
            if let Some(t) = targets.get_mut(&id).filter(|t| Arc::ptr_eq(&t.pool, &pool)) {
                t.observe(ready);
            }
        }
    }
}

/// Keeps every target's environments started: on a change and every [`CHECK_PERIOD`].
pub(crate) async fn maintain(inner: Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if strong.is_shutting_down() {
            return;
        }
        let now = Instant::now();
        let current = strong.provisioner.current();
        for (spec, pool) in &current {
            for _ in 0..pool.provisioned_shortfall(now) {
                tokio::spawn(start_one(strong.clone(), spec.clone(), pool.clone()));
            }
        }
        strong.provisioner.observe_all(&current);
        strong.provisioner.publish();
        let wake = strong.provisioner.wake.clone();
        // Not holding the engine while waiting: dropping it must be able to free it.
        drop(strong);
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(CHECK_PERIOD) => {}
        }
    }
}

/// Starts one provisioned environment and waits for its init; the pool takes it (or hands it
/// back to stop when it is no longer wanted).
async fn start_one(inner: Arc<Inner>, spec: Arc<FunctionSpec>, pool: Arc<Pool>) {
    let permit = inner.provisioner.starts.clone().acquire_owned().await;
    let result = if permit.is_err() || inner.is_shutting_down() || pool.is_retired() {
        Err(StartFailure::Service("stopped".to_string()))
    } else {
        init(&inner, &spec).await
    };
    drop(permit);
    let stopping = inner.is_shutting_down() || pool.is_retired();
    if let Err(failure) = &result {
        if !stopping {
            tracing::warn!(
                "provisioned concurrency of {} (version {}): {}",
                spec.function_name,
                spec.version,
                failure.message()
            );
        }
    }
    let (pool_result, outcome) = match result {
        Ok(env) => (Ok(env), Ok(())),
        Err(failure) => (Err(failure.message().to_string()), Err(failure)),
    };
    if let Some(unwanted) = pool.provisioned_started(pool_result) {
        unwanted.kill();
    }
    if !stopping {
        inner
            .provisioner
            .started(&spec.snapshot_id, &pool, outcome.as_ref().map(|_| ()));
        inner.provisioner.publish();
    }
}

async fn init(
    inner: &Arc<Inner>,
    spec: &Arc<FunctionSpec>,
) -> Result<Arc<environment::Environment>, StartFailure> {
    let env = environment::start(inner, spec, false, InitType::Provisioned, None)
        .await
        .map_err(|e| match e {
            StartError::InvalidRuntime(m) | StartError::InvalidEntrypoint(m) => {
                StartFailure::Function(m)
            }
            StartError::Exited(code) => {
                StartFailure::Function(format!("Runtime exited with error: exit status {code}"))
            }
            StartError::Service(m) => StartFailure::Service(m),
        })?;
    match tokio::time::timeout(INIT_TIMEOUT, env.api.ready()).await {
        Ok(Readiness::Ready) => Ok(env),
        Ok(Readiness::InitFailed(err)) => {
            env.kill();
            Err(StartFailure::Function(format!(
                "init failed: {} {}",
                err.error_type.as_deref().unwrap_or("Runtime.Unknown"),
                String::from_utf8_lossy(&err.body)
            )))
        }
        Ok(Readiness::ExtensionFailed(f)) => {
            env.kill();
            Err(StartFailure::Function(format!(
                "init failed: {} (extension {}) {}",
                f.error_type, f.name, f.detail
            )))
        }
        Ok(Readiness::Closed | Readiness::Starting) => {
            let info = env.exit_info().await;
            Err(StartFailure::Function(format!(
                "the runtime exited during init ({info:?})"
            )))
        }
        Err(_) => {
            env.kill();
            Err(StartFailure::Function(format!(
                "init did not finish within {} s",
                INIT_TIMEOUT.as_secs()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::Pools;
    use crate::throttle::Throttle;

    /// A provisioner with one target of `count` environments of snapshot `id`.
    fn provisioner(id: &str, count: u32) -> (Provisioner, Arc<Pool>) {
        let spec = Arc::new(crate::tests::spec(id));
        let pool = Pools::default().get_or_create(&spec, &Throttle::new(10));
        pool.set_provisioned_target(count);
        let p = Provisioner::default();
        p.targets
            .lock()
            .insert(id.into(), Target::new(spec, count, pool.clone()));
        (p, pool)
    }

    fn init_error() -> StartFailure {
        StartFailure::Function("init failed: Runtime.Custom boom".into())
    }

    #[test]
    fn a_target_is_in_progress_until_its_environments_are_up() {
        let (p, _) = provisioner("s", 2);
        let a = p.allocation("s");
        assert_eq!(
            a,
            Some(ProvisionedAllocation {
                requested: 2,
                ready: 0,
                allocated: false,
                init_failure: None,
            })
        );
        assert_eq!(p.allocation("other"), None, "no target, no allocation");
    }

    #[test]
    fn allocation_stays_done_while_a_dead_environment_is_replaced() {
        let (p, _) = provisioner("s", 2);
        let mut targets = p.targets.lock();
        let t = targets.get_mut("s").unwrap();
        t.observe(1);
        assert!(!t.allocated, "one of two is not the allocation");
        t.observe(2);
        assert!(t.allocated);
        t.observe(1);
        assert!(t.allocated, "a replacement does not undo it");
    }

    #[test]
    fn init_failures_in_a_row_are_reported_and_a_success_clears_them() {
        let (p, pool) = provisioner("s", 1);
        p.started("s", &pool, Err(&init_error()));
        assert_eq!(
            p.allocation("s").unwrap().init_failure,
            None,
            "a single failed start is retried quietly"
        );
        p.started("s", &pool, Err(&init_error()));
        assert_eq!(
            p.allocation("s").unwrap().init_failure.as_deref(),
            Some("init failed: Runtime.Custom boom")
        );
        p.started("s", &pool, Ok(()));
        assert_eq!(p.allocation("s").unwrap().init_failure, None);
    }

    #[test]
    fn failures_of_flint_itself_are_not_the_functions() {
        let (p, pool) = provisioner("s", 1);
        for _ in 0..5 {
            p.started("s", &pool, Err(&StartFailure::Service("no sandbox".into())));
        }
        let a = p.allocation("s").unwrap();
        assert_eq!((a.allocated, a.init_failure), (false, None));
    }

    #[test]
    fn a_start_of_a_replaced_target_is_ignored() {
        let (p, _) = provisioner("s", 1);
        let stale = Pools::default().get_or_create(&crate::tests::spec("s"), &Throttle::new(10));
        for _ in 0..3 {
            p.started("s", &stale, Err(&init_error()));
        }
        assert_eq!(p.allocation("s").unwrap().init_failure, None);
    }
}
