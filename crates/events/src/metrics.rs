//! Lambda's event-source-mapping and destination metrics, counted where the pollers and the
//! destinations do their work (relaxed atomics) and read by `GET /metrics` at scrape time:
//! per mapping `PolledEventCount`, `FilteredOutEventCount`, `InvokedEventCount`,
//! `FailedInvokeEventCount`, `DroppedEventCount` and, for streams, `IteratorAge`; per function
//! `DestinationDeliveryFailures` and `DeadLetterErrors`. One registry per process
//! ([`registry`]): mapping ids are unique and functions are keyed by account and region, and the
//! places that count (pollers, the async queue's destinations) need no handle passed down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;

/// One mapping's counters.
#[derive(Debug, Default)]
pub struct MappingMetrics {
    /// Records read from the source.
    pub polled: AtomicU64,
    /// Records the mapping's `FilterCriteria` dropped.
    pub filtered_out: AtomicU64,
    /// Records sent to the function (each attempt of a retried batch counts again).
    pub invoked: AtomicU64,
    /// Records of invocations that failed (a function error, a partial batch failure's items).
    pub failed_invoke: AtomicU64,
    /// Records given up on (too old, retries exhausted).
    pub dropped: AtomicU64,
    /// The age of the last record of the last batch sent, in ms (streams; [`NO_AGE`] before).
    pub iterator_age_ms: AtomicU64,
}

/// `iterator_age_ms` before any batch.
pub const NO_AGE: u64 = u64::MAX;

/// What a scrape reads of one mapping.
#[derive(Debug, Clone)]
pub struct MappingSnapshot {
    pub uuid: String,
    pub account: String,
    pub region: String,
    /// The function's name (without qualifier).
    pub function: String,
    pub polled: u64,
    pub filtered_out: u64,
    pub invoked: u64,
    pub failed_invoke: u64,
    pub dropped: u64,
    pub iterator_age_ms: Option<u64>,
}

/// A function's destination counters.
#[derive(Debug, Default)]
pub struct DestinationMetrics {
    /// Records an on-success/on-failure destination did not accept.
    pub delivery_failures: AtomicU64,
    /// Events the dead-letter queue did not accept.
    pub dead_letter_errors: AtomicU64,
}

/// (account, region, function name).
pub type FunctionKey = (String, String, String);

/// Every running mapping's counters (`GET /metrics`).
pub fn mappings() -> Vec<MappingSnapshot> {
    registry().mappings()
}

/// ((account, region, function), delivery failures, dead-letter errors) of every function that
/// had one (`GET /metrics`).
pub fn destinations() -> Vec<(FunctionKey, u64, u64)> {
    registry().destinations()
}

/// The process's registry.
pub(crate) fn registry() -> &'static Registry {
    static REGISTRY: std::sync::LazyLock<Registry> = std::sync::LazyLock::new(Registry::default);
    &REGISTRY
}

/// Every running mapping's and every function's counters.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    mappings: Mutex<HashMap<String, (FunctionKey, Arc<MappingMetrics>)>>,
    destinations: Mutex<HashMap<FunctionKey, Arc<DestinationMetrics>>>,
}

impl Registry {
    /// The counters of mapping `uuid` (kept across its poller's restarts).
    pub(crate) fn mapping(&self, uuid: &str, function: FunctionKey) -> Arc<MappingMetrics> {
        let mut m = self.mappings.lock();
        let entry = m.entry(uuid.to_string()).or_insert_with(|| {
            let metrics = MappingMetrics::default();
            metrics.iterator_age_ms.store(NO_AGE, Relaxed);
            (function.clone(), Arc::new(metrics))
        });
        entry.0 = function;
        entry.1.clone()
    }

    /// A deleted mapping's counters go.
    pub(crate) fn forget_mapping(&self, uuid: &str) {
        self.mappings.lock().remove(uuid);
    }

    pub(crate) fn destination(&self, function: FunctionKey) -> Arc<DestinationMetrics> {
        self.destinations
            .lock()
            .entry(function)
            .or_default()
            .clone()
    }

    pub(crate) fn mappings(&self) -> Vec<MappingSnapshot> {
        let mut out: Vec<MappingSnapshot> = self
            .mappings
            .lock()
            .iter()
            .map(|(uuid, ((account, region, function), m))| MappingSnapshot {
                uuid: uuid.clone(),
                account: account.clone(),
                region: region.clone(),
                function: function.clone(),
                polled: m.polled.load(Relaxed),
                filtered_out: m.filtered_out.load(Relaxed),
                invoked: m.invoked.load(Relaxed),
                failed_invoke: m.failed_invoke.load(Relaxed),
                dropped: m.dropped.load(Relaxed),
                iterator_age_ms: Some(m.iterator_age_ms.load(Relaxed)).filter(|a| *a != NO_AGE),
            })
            .collect();
        out.sort_by(|a, b| a.uuid.cmp(&b.uuid));
        out
    }

    /// ((account, region, function), delivery failures, dead-letter errors).
    pub(crate) fn destinations(&self) -> Vec<(FunctionKey, u64, u64)> {
        let mut out: Vec<_> = self
            .destinations
            .lock()
            .iter()
            .map(|(k, m)| {
                (
                    k.clone(),
                    m.delivery_failures.load(Relaxed),
                    m.dead_letter_errors.load(Relaxed),
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(f: &str) -> FunctionKey {
        ("123456789012".into(), "us-east-1".into(), f.into())
    }

    #[test]
    fn a_mappings_counters_survive_a_restart_and_go_with_it() {
        let r = Registry::default();
        let m = r.mapping("u1", key("f"));
        m.polled.fetch_add(3, Relaxed);
        assert_eq!(r.mappings()[0].iterator_age_ms, None);
        let again = r.mapping("u1", key("g"));
        again.iterator_age_ms.store(1500, Relaxed);
        let snap = &r.mappings()[0];
        assert_eq!((snap.polled, snap.function.as_str()), (3, "g"));
        assert_eq!(snap.iterator_age_ms, Some(1500));
        r.forget_mapping("u1");
        assert!(r.mappings().is_empty());
    }

    #[test]
    fn destination_counters_are_per_function() {
        let r = Registry::default();
        r.destination(key("f"))
            .delivery_failures
            .fetch_add(1, Relaxed);
        r.destination(key("f"))
            .dead_letter_errors
            .fetch_add(2, Relaxed);
        assert_eq!(r.destinations(), vec![(key("f"), 1, 2)]);
    }
}
