//! Provisioned concurrency: the control plane says how many environments each snapshot should
//! keep initialised (`set`); a background task starts them ahead of invokes (with
//! `AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency`), replaces those that die, and
//! stops them when their target shrinks or goes away. The pools hold the environments.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use flint_runtime_api::Readiness;
use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore};

use crate::environment::{self, InitType, StartError};
use crate::invoke::INIT_TIMEOUT;
use crate::pool::Pool;
use crate::{FunctionSpec, Inner};

/// How often targets are checked for dead or missing environments without being told.
const CHECK_PERIOD: Duration = Duration::from_millis(200);

/// Provisioned starts running at once across the engine (each one is a runtime's whole init).
const PARALLEL_STARTS: usize = 4;

/// Retired snapshot ids remembered so a late `set` (read before the retirement) cannot bring
/// them back.
const RETIRED_MEMORY: usize = 4096;

struct Target {
    spec: Arc<FunctionSpec>,
    count: u32,
    pool: Arc<Pool>,
}

pub(crate) struct Provisioner {
    targets: Mutex<HashMap<String, Target>>,
    wake: Arc<Notify>,
    starts: Arc<Semaphore>,
    retired: Mutex<(VecDeque<String>, HashSet<String>)>,
}

impl Default for Provisioner {
    fn default() -> Self {
        Self {
            targets: Mutex::default(),
            wake: Arc::new(Notify::new()),
            starts: Arc::new(Semaphore::new(PARALLEL_STARTS)),
            retired: Mutex::default(),
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
                            t.count = n;
                            stop.extend(t.pool.set_provisioned_target(n));
                            changed = true;
                        }
                    }
                    None => {
                        let pool = inner.pools.get_or_create(&spec, &inner.throttle);
                        stop.extend(pool.set_provisioned_target(n));
                        current.insert(
                            id,
                            Target {
                                spec,
                                count: n,
                                pool,
                            },
                        );
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
    }

    pub(crate) fn status(&self, snapshot_id: &str) -> Option<crate::ProvisionedStatus> {
        let pool = self.targets.lock().get(snapshot_id)?.pool.clone();
        Some(pool.provisioned_status())
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
        for (spec, pool) in strong.provisioner.current() {
            for _ in 0..pool.provisioned_shortfall(now) {
                tokio::spawn(start_one(strong.clone(), spec.clone(), pool.clone()));
            }
        }
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
        Err("stopped".to_string())
    } else {
        init(&inner, &spec).await
    };
    drop(permit);
    if let Err(reason) = &result {
        if !inner.is_shutting_down() && !pool.is_retired() {
            tracing::warn!(
                "provisioned concurrency of {} (version {}): {reason}",
                spec.function_name,
                spec.version
            );
        }
    }
    if let Some(unwanted) = pool.provisioned_started(result) {
        unwanted.kill();
    }
}

async fn init(
    inner: &Arc<Inner>,
    spec: &Arc<FunctionSpec>,
) -> Result<Arc<environment::Environment>, String> {
    let env = environment::start(inner, spec, false, InitType::Provisioned)
        .await
        .map_err(|e| match e {
            StartError::InvalidRuntime(m)
            | StartError::InvalidEntrypoint(m)
            | StartError::Service(m) => m,
        })?;
    match tokio::time::timeout(INIT_TIMEOUT, env.api.ready()).await {
        Ok(Readiness::Ready) => Ok(env),
        Ok(Readiness::InitFailed(err)) => {
            env.kill();
            Err(format!(
                "init failed: {} {}",
                err.error_type.as_deref().unwrap_or("Runtime.Unknown"),
                String::from_utf8_lossy(&err.body)
            ))
        }
        Ok(Readiness::Closed | Readiness::Starting) => {
            let info = env.exit_info().await;
            Err(format!("the runtime exited during init ({info:?})"))
        }
        Err(_) => {
            env.kill();
            Err(format!(
                "init did not finish within {} s",
                INIT_TIMEOUT.as_secs()
            ))
        }
    }
}
