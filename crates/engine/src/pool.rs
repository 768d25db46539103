//! Placement: the execution environments of each function version snapshot. A warm invoke takes
//! a provisioned environment first, then the most recently used idle one (LIFO keeps few
//! environments warm); otherwise the caller cold-starts one. Pools live in a sharded map so the
//! hot path takes two short, uncontended locks and nothing global.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::environment::Environment;
use crate::throttle::{Counters, Throttle};
use crate::FunctionSpec;

const SHARDS: usize = 16;

/// `reserved_concurrency` packed for an atomic compare (`NO_RESERVATION` = none).
const NO_RESERVATION: u64 = u64::MAX;

fn pack_reserved(r: Option<u32>) -> u64 {
    r.map_or(NO_RESERVATION, u64::from)
}

/// The environments of one snapshot.
pub(crate) struct Pool {
    pub(crate) counters: Counters,
    /// Active tracing's sampling: the first invocation each second, then 5 %.
    pub(crate) trace_reservoir: crate::xray::Reservoir,
    /// The function's metrics (shared by every snapshot of the function).
    pub(crate) metrics: Arc<crate::metrics::FunctionMetrics>,
    /// The reservation last seen on an invoke's spec: a change (same snapshot id) is learned.
    seen_reserved: AtomicU64,
    /// Set while the pool has (or may get) provisioned environments, so ordinary pools skip
    /// the provisioned list without taking the lock.
    has_provisioned: AtomicBool,
    state: Mutex<PoolState>,
    /// Wakes a cold start waiting for a start slot when an environment comes back idle.
    pub(crate) returns: crate::admission::Returns,
}

#[derive(Default)]
struct PoolState {
    /// Warm on-demand environments, most recently used last.
    idle: Vec<(Arc<Environment>, Instant)>,
    /// Retired (or removed from the map): environments coming back are stopped.
    retired: bool,
    provisioned: Provisioned,
    /// The /tmp of an environment stopped by a timeout, for the next cold start of this snapshot
    /// (Lambda restarts the runtime after a timeout but keeps the environment's /tmp).
    kept_tmp: Option<(flint_sandbox::KeptTmp, Instant)>,
}

/// Provisioned concurrency of the snapshot: environments initialised ahead of invokes, kept
/// while idle, replaced when they die.
#[derive(Default)]
struct Provisioned {
    target: u32,
    /// Every live provisioned environment, idle or busy.
    members: Vec<Arc<Environment>>,
    /// The idle ones.
    idle: Vec<Arc<Environment>>,
    /// Starts in flight.
    starting: u32,
    /// Consecutive failed starts (init error, crash) and when to try again.
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<String>,
}

/// How far a pool's provisioned concurrency is (for status reporting and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProvisionedStatus {
    /// Environments asked for.
    pub requested: u32,
    /// Initialised and alive (idle or busy).
    pub ready: u32,
    /// Why the last start failed, while starts keep failing.
    pub last_error: Option<String>,
}

impl Pool {
    fn new(
        counters: Counters,
        metrics: Arc<crate::metrics::FunctionMetrics>,
        spec: &FunctionSpec,
    ) -> Self {
        Self {
            counters,
            trace_reservoir: crate::xray::Reservoir::default(),
            metrics,
            seen_reserved: AtomicU64::new(pack_reserved(spec.reserved_concurrency)),
            has_provisioned: AtomicBool::new(false),
            state: Mutex::default(),
            returns: crate::admission::Returns::default(),
        }
    }

    /// True (once) when this spec's reservation differs from the last one seen here.
    pub(crate) fn reservation_changed(&self, spec: &FunctionSpec) -> bool {
        let now = pack_reserved(spec.reserved_concurrency);
        self.seen_reserved.load(Ordering::Relaxed) != now
            && self.seen_reserved.swap(now, Ordering::AcqRel) != now
    }

    /// Whether the pool has (or is getting) provisioned environments: an invoke that finds none
    /// idle is a spillover.
    pub(crate) fn has_provisioned(&self) -> bool {
        self.has_provisioned.load(Ordering::Acquire)
    }

    /// An idle provisioned environment, if any.
    pub(crate) fn take_provisioned(&self) -> Option<Arc<Environment>> {
        if !self.has_provisioned.load(Ordering::Acquire) {
            return None;
        }
        let mut st = self.state.lock();
        while let Some(env) = st.provisioned.idle.pop() {
            if env.credentials_expired() {
                // Its role session lapses: retired, the provisioner replaces it.
                st.provisioned.members.retain(|m| !Arc::ptr_eq(m, &env));
                env.retire(flint_runtime_api::ShutdownReason::Spindown);
                continue;
            }
            if env.is_healthy() {
                return Some(env);
            }
            // Died while idle: the provisioner replaces it.
        }
        None
    }

    /// A warm environment, if one is idle and alive.
    pub(crate) fn take_idle(&self) -> Option<Arc<Environment>> {
        let mut st = self.state.lock();
        while let Some((env, _)) = st.idle.pop() {
            if env.credentials_expired() {
                env.retire(flint_runtime_api::ShutdownReason::Spindown);
                continue;
            }
            if env.is_healthy() {
                return Some(env);
            }
            // Died while idle (crash, OOM after a background thread ran): drop it.
        }
        None
    }

    /// Puts an environment back after an invoke; returns it when it must be stopped instead.
    pub(crate) fn put_back(&self, env: Arc<Environment>) -> Option<Arc<Environment>> {
        if !env.is_healthy() || env.credentials_expired() {
            return Some(env);
        }
        let mut st = self.state.lock();
        if st.retired {
            return Some(env);
        }
        if env.provisioned {
            // Still wanted unless provisioned concurrency was lowered meanwhile.
            if st.provisioned.members.iter().any(|m| Arc::ptr_eq(m, &env)) {
                env.end_use();
                st.provisioned.idle.push(env);
                return None;
            }
            return Some(env);
        }
        env.end_use();
        st.idle.push((env, Instant::now()));
        drop(st);
        self.returns.returned();
        None
    }

    /// Marks the pool retired and hands back its idle environments to stop.
    fn retire(&self) -> Vec<Arc<Environment>> {
        let mut st = self.state.lock();
        st.retired = true;
        self.has_provisioned.store(false, Ordering::Release);
        let prov = std::mem::take(&mut st.provisioned);
        st.kept_tmp = None;
        let mut out: Vec<Arc<Environment>> = st.idle.drain(..).map(|(e, _)| e).collect();
        // Busy members are stopped when they come back (the pool is retired).
        out.extend(prov.idle);
        out
    }

    /// Idle environments unused for longer than `idle_timeout` (provisioned ones never are), and
    /// idle ones, provisioned too, whose execution role's session is about to expire (the
    /// provisioner replaces those).
    fn expired(&self, now: Instant, idle_timeout: Duration) -> Vec<Arc<Environment>> {
        let mut st = self.state.lock();
        let mut out = Vec::new();
        st.idle.retain(|(env, since)| {
            let keep = now.duration_since(*since) < idle_timeout
                && env.is_healthy()
                && !env.credentials_expired();
            if !keep {
                out.push(env.clone());
            }
            keep
        });
        let p = &mut st.provisioned;
        let lapsed: Vec<_> = p
            .idle
            .iter()
            .filter(|env| env.credentials_expired())
            .cloned()
            .collect();
        if !lapsed.is_empty() {
            let gone = |env: &Arc<Environment>| lapsed.iter().any(|l| Arc::ptr_eq(l, env));
            p.idle.retain(|env| !gone(env));
            p.members.retain(|env| !gone(env));
            out.extend(lapsed);
        }
        if st
            .kept_tmp
            .as_ref()
            .is_some_and(|(_, since)| now.duration_since(*since) >= idle_timeout)
        {
            st.kept_tmp = None;
        }
        out
    }

    fn is_empty(&self) -> bool {
        let st = self.state.lock();
        st.idle.is_empty()
            && st.provisioned.target == 0
            && st.provisioned.members.is_empty()
            && st.kept_tmp.is_none()
    }

    /// Keeps a stopped environment's /tmp for the next cold start (the latest one wins).
    pub(crate) fn keep_tmp(&self, tmp: flint_sandbox::KeptTmp) {
        let mut st = self.state.lock();
        if !st.retired {
            st.kept_tmp = Some((tmp, Instant::now()));
        }
    }

    /// The /tmp kept for the next cold start, if any.
    pub(crate) fn take_kept_tmp(&self) -> Option<flint_sandbox::KeptTmp> {
        self.state.lock().kept_tmp.take().map(|(t, _)| t)
    }

    pub(crate) fn is_retired(&self) -> bool {
        self.state.lock().retired
    }

    /// Sets how many provisioned environments to keep; returns those to stop now (idle ones
    /// beyond the new target; busy ones beyond it are stopped when they come back).
    pub(crate) fn set_provisioned_target(&self, target: u32) -> Vec<Arc<Environment>> {
        let mut st = self.state.lock();
        if st.retired {
            return Vec::new();
        }
        let p = &mut st.provisioned;
        if p.target != target {
            // A new target deserves a fresh attempt even after failures.
            p.failures = 0;
            p.retry_at = None;
            p.last_error = None;
        }
        p.target = target;
        let mut stop = Vec::new();
        p.members.retain(|e| e.is_healthy());
        p.idle.retain(|e| e.is_healthy());
        while p.members.len() > target as usize {
            if let Some(idle) = p.idle.pop() {
                p.members.retain(|m| !Arc::ptr_eq(m, &idle));
                stop.push(idle);
            } else {
                // A busy one: out of the members, so it is stopped when its invoke ends.
                p.members.pop();
            }
        }
        self.has_provisioned.store(target > 0, Ordering::Release);
        stop
    }

    /// How many provisioned environments to start now (counted as starting), after pruning the
    /// dead ones; 0 while a failing start is backing off.
    pub(crate) fn provisioned_shortfall(&self, now: Instant) -> u32 {
        let mut st = self.state.lock();
        if st.retired {
            return 0;
        }
        let p = &mut st.provisioned;
        p.members.retain(|e| e.is_healthy());
        p.idle.retain(|e| e.is_healthy());
        if p.retry_at.is_some_and(|at| now < at) {
            return 0;
        }
        let have = p.members.len() as u32 + p.starting;
        let need = p.target.saturating_sub(have);
        p.starting += need;
        need
    }

    /// A provisioned start finished. `Ok(env)`: initialised, joins the pool (or is handed back
    /// to stop when no longer wanted). `Err(reason)`: failed, retried after a backoff.
    pub(crate) fn provisioned_started(
        &self,
        started: Result<Arc<Environment>, String>,
    ) -> Option<Arc<Environment>> {
        let mut st = self.state.lock();
        let retired = st.retired;
        let p = &mut st.provisioned;
        p.starting = p.starting.saturating_sub(1);
        match started {
            Ok(env) => {
                p.failures = 0;
                p.retry_at = None;
                p.last_error = None;
                if retired || p.members.len() >= p.target as usize {
                    return Some(env);
                }
                p.members.push(env.clone());
                env.end_use();
                p.idle.push(env);
                None
            }
            Err(reason) => {
                p.failures += 1;
                // 1 s, 2 s, 4 s ... up to a minute: a broken function must not spin.
                let backoff = Duration::from_secs(1 << p.failures.min(6).saturating_sub(1));
                p.retry_at = Some(Instant::now() + backoff.min(Duration::from_secs(60)));
                p.last_error = Some(reason);
                None
            }
        }
    }

    pub(crate) fn provisioned_status(&self) -> ProvisionedStatus {
        let st = self.state.lock();
        let p = &st.provisioned;
        ProvisionedStatus {
            requested: p.target,
            ready: p.members.iter().filter(|e| e.is_healthy()).count() as u32,
            last_error: p.last_error.clone(),
        }
    }
}

/// Every snapshot's pool, sharded by snapshot id.
pub(crate) struct Pools {
    shards: Vec<Mutex<HashMap<String, Arc<Pool>>>>,
    pub(crate) metrics: crate::metrics::Registry,
}

impl Default for Pools {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            metrics: crate::metrics::Registry::default(),
        }
    }
}

fn shard_of(snapshot_id: &str) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    snapshot_id.hash(&mut h);
    (h.finish() as usize) % SHARDS
}

impl Pools {
    pub(crate) fn get_or_create(&self, spec: &FunctionSpec, throttle: &Throttle) -> Arc<Pool> {
        let shard = &self.shards[shard_of(&spec.snapshot_id)];
        if let Some(p) = shard.lock().get(&spec.snapshot_id) {
            return p.clone();
        }
        // Counters are looked up outside the shard lock (they take locks of their own).
        let counters = throttle.counters(spec);
        let metrics = self
            .metrics
            .function(&spec.account, &spec.region, &spec.function_name);
        shard
            .lock()
            .entry(spec.snapshot_id.clone())
            .or_insert_with(|| Arc::new(Pool::new(counters, metrics, spec)))
            .clone()
    }

    /// Idle environments: (on-demand, provisioned), over every pool.
    pub(crate) fn idle_environments(&self) -> (usize, usize) {
        let mut out = (0, 0);
        for shard in &self.shards {
            let pools: Vec<Arc<Pool>> = shard.lock().values().cloned().collect();
            for p in pools {
                let st = p.state.lock();
                out.0 += st.idle.len();
                out.1 += st.provisioned.idle.len();
            }
        }
        out
    }

    /// Each pool's provisioned environments, alive and busy, with its function's counters
    /// (several snapshots of one function share them).
    pub(crate) fn provisioned_usage(
        &self,
    ) -> Vec<(Arc<crate::metrics::FunctionMetrics>, u32, u32)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let pools: Vec<Arc<Pool>> = shard.lock().values().cloned().collect();
            for p in pools {
                let st = p.state.lock();
                let members = st.provisioned.members.len() as u32;
                if members > 0 {
                    let busy = members.saturating_sub(st.provisioned.idle.len() as u32);
                    out.push((p.metrics.clone(), members, busy));
                }
            }
        }
        out
    }

    /// Removes a snapshot's pool; returns its idle environments to stop.
    pub(crate) fn retire(&self, snapshot_id: &str) -> Vec<Arc<Environment>> {
        let removed = self.shards[shard_of(snapshot_id)]
            .lock()
            .remove(snapshot_id);
        removed.map(|p| p.retire()).unwrap_or_default()
    }

    /// Retires every pool (shutdown).
    pub(crate) fn retire_all(&self) -> Vec<Arc<Environment>> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let pools: Vec<Arc<Pool>> = shard.lock().drain().map(|(_, p)| p).collect();
            for p in pools {
                out.extend(p.retire());
            }
        }
        out
    }

    /// Idle environments past the idle timeout; pools left without idle environments are
    /// dropped (marked retired, so an environment still busy in one is stopped when it returns).
    pub(crate) fn reap(&self, idle_timeout: Duration) -> Vec<Arc<Environment>> {
        let now = Instant::now();
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut map = shard.lock();
            map.retain(|_, pool| {
                out.extend(pool.expired(now, idle_timeout));
                // Keep pools that are referenced elsewhere (an invoke in flight) or still warm.
                let keep = !pool.is_empty() || Arc::strong_count(pool) > 1;
                if !keep {
                    out.extend(pool.retire());
                }
                keep
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Pool {
        let spec = crate::tests::spec("s");
        Pool::new(Throttle::new(10).counters(&spec), Arc::default(), &spec)
    }

    #[test]
    fn failed_provisioned_starts_back_off_and_a_new_target_retries_at_once() {
        let p = pool();
        assert!(p.set_provisioned_target(2).is_empty());
        let now = Instant::now();
        assert_eq!(p.provisioned_shortfall(now), 2);
        assert_eq!(p.provisioned_shortfall(now), 0, "starts in flight count");
        assert!(p.provisioned_started(Err("init failed".into())).is_none());
        assert!(p.provisioned_started(Err("init failed".into())).is_none());
        assert_eq!(p.provisioned_shortfall(now), 0, "backing off");
        assert_eq!(
            p.provisioned_shortfall(now + Duration::from_secs(61)),
            2,
            "retried after the backoff"
        );
        let status = p.provisioned_status();
        assert_eq!((status.requested, status.ready), (2, 0));
        assert_eq!(status.last_error.as_deref(), Some("init failed"));
        p.provisioned_started(Err("again".into()));
        p.provisioned_started(Err("again".into()));
        p.set_provisioned_target(3);
        assert_eq!(
            p.provisioned_shortfall(now),
            3,
            "a new target starts afresh"
        );
        assert_eq!(p.provisioned_status().last_error, None);
    }

    #[test]
    fn a_pool_with_provisioned_concurrency_is_never_reaped() {
        let pools = Pools::default();
        let throttle = Throttle::new(10);
        let spec = crate::tests::spec("kept");
        let pool = pools.get_or_create(&spec, &throttle);
        pool.set_provisioned_target(1);
        drop(pool);
        assert!(pools.reap(Duration::ZERO).is_empty());
        let again = pools.get_or_create(&spec, &throttle);
        assert_eq!(again.provisioned_status().requested, 1, "the same pool");
        again.set_provisioned_target(0);
        drop(again);
        pools.reap(Duration::ZERO);
        assert_eq!(
            pools
                .get_or_create(&spec, &throttle)
                .provisioned_status()
                .requested,
            0,
            "an empty pool is dropped"
        );
    }

    #[test]
    fn ordinary_pools_skip_the_provisioned_list() {
        let p = pool();
        assert!(p.take_provisioned().is_none());
        assert!(!p.has_provisioned.load(Ordering::Acquire));
        p.set_provisioned_target(1);
        assert!(p.has_provisioned.load(Ordering::Acquire));
        p.set_provisioned_target(0);
        assert!(!p.has_provisioned.load(Ordering::Acquire));
    }

    #[test]
    fn a_changed_reservation_is_noticed_once() {
        let p = pool();
        let mut spec = crate::tests::spec("s");
        assert!(!p.reservation_changed(&spec));
        spec.reserved_concurrency = Some(5);
        assert!(p.reservation_changed(&spec));
        assert!(!p.reservation_changed(&spec));
    }
}
