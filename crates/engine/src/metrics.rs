//! Lambda's per-function metrics (Invocations, Errors, Throttles, Duration, ConcurrentExecutions)
//! and Flint's own (cold starts, Init Duration), counted on the invoke path with relaxed atomics
//! only: each pool holds its function's [`FunctionMetrics`], looked up once when the pool is made.
//! [`Engine::metrics`](crate::Engine::metrics) reads them for `GET /metrics`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

/// Upper bounds (ms) of the duration histograms' buckets (the last is +Inf).
pub const DURATION_BUCKETS_MS: [f64; 14] = [
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
];

/// A histogram of durations: cumulative-free bucket counts (rendered cumulative), sum, count.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; DURATION_BUCKETS_MS.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    pub(crate) fn observe(&self, d: Duration) {
        let ms = d.as_secs_f64() * 1000.0;
        let i = DURATION_BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(DURATION_BUCKETS_MS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }

    /// Per-bucket counts (not cumulative; the last is above every bound), and the sum in ms.
    pub fn read(&self) -> (Vec<u64>, f64) {
        (
            self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            self.sum_us.load(Relaxed) as f64 / 1000.0,
        )
    }
}

/// One function's counters (all its versions and aliases together, as Lambda's per-function
/// metrics without the `Resource` dimension).
#[derive(Debug, Default)]
pub struct FunctionMetrics {
    pub invocations: AtomicU64,
    /// Invocations that ended in a function error (reported, crashed or timed out).
    pub errors: AtomicU64,
    pub throttles: AtomicU64,
    pub cold_starts: AtomicU64,
    /// Invocations a provisioned environment ran (`ProvisionedConcurrencyInvocations`).
    pub provisioned_invocations: AtomicU64,
    /// Invocations of a version or alias with provisioned concurrency that found none idle
    /// (`ProvisionedConcurrencySpilloverInvocations`).
    pub spillover_invocations: AtomicU64,
    /// Invocations running now.
    pub concurrent: AtomicI64,
    pub duration: Histogram,
    pub init_duration: Histogram,
}

/// Every function's metrics, by (account, region, function name).
#[derive(Debug, Default)]
pub struct Registry {
    functions: RwLock<HashMap<(String, String, String), Arc<FunctionMetrics>>>,
}

impl Registry {
    pub(crate) fn function(&self, account: &str, region: &str, name: &str) -> Arc<FunctionMetrics> {
        let key = (account.to_string(), region.to_string(), name.to_string());
        if let Some(m) = self.functions.read().get(&key) {
            return m.clone();
        }
        self.functions.write().entry(key).or_default().clone()
    }

    /// Every function counted so far: ((account, region, name), metrics).
    pub fn all(&self) -> Vec<((String, String, String), Arc<FunctionMetrics>)> {
        let mut v: Vec<_> = self
            .functions
            .read()
            .iter()
            .map(|(k, m)| (k.clone(), m.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// One invocation running: counted in `concurrent` until dropped (with the invocation's slot).
#[derive(Debug)]
pub(crate) struct Running(Arc<FunctionMetrics>);

impl Running {
    pub(crate) fn start(m: &Arc<FunctionMetrics>) -> Self {
        m.concurrent.fetch_add(1, Relaxed);
        Self(m.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.concurrent.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let (b, sum) = h.read();
        assert_eq!(b[0], 1);
        assert_eq!(b[2], 1);
        assert_eq!(b[DURATION_BUCKETS_MS.len()], 1);
        assert!((sum - 60003.5).abs() < 0.01);
    }

    #[test]
    fn running_counts_until_dropped() {
        let r = Registry::default();
        let m = r.function("1", "r", "f");
        let a = Running::start(&m);
        assert_eq!(r.function("1", "r", "f").concurrent.load(Relaxed), 1);
        drop(a);
        assert_eq!(m.concurrent.load(Relaxed), 0);
    }
}
