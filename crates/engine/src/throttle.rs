//! Concurrency counting: a function with reserved concurrency counts against its own reservation,
//! every other sync invoke against its account's (per region) unreserved pool — the account's
//! limit minus what functions claim (reservations, and provisioned concurrency of functions
//! without one), AWS's `UnreservedConcurrentExecutions`. Counters are atomics cached on each
//! snapshot's pool, so the hot path takes no lock here; a lease gives its slot back on drop.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::{FunctionSpec, ThrottleReason};

/// Which data plane an invoke belongs to: async invokes have their own workers and do not take
/// slots from the account's sync pool, so a backlog of events cannot starve callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Sync,
    Async,
}

/// Invocations in flight against one limit. An account's counter carries its limit (the
/// unreserved pool, which changes as functions reserve concurrency); a function's limit comes
/// with each invoke's spec.
#[derive(Debug)]
pub(crate) struct Counter {
    in_use: AtomicU32,
    limit: AtomicU32,
    /// A function's counter: the provisioned concurrency its versions and aliases hold, carved
    /// out of its reservation (on-demand invokes get what is left; AWS throttles `$LATEST` when
    /// provisioned concurrency takes the whole reservation).
    claimed: AtomicU32,
}

impl Default for Counter {
    fn default() -> Self {
        Self::with_limit(u32::MAX)
    }
}

impl Counter {
    pub(crate) fn with_limit(limit: u32) -> Self {
        Self {
            in_use: AtomicU32::new(0),
            limit: AtomicU32::new(limit),
            claimed: AtomicU32::new(0),
        }
    }

    fn try_acquire(&self, limit: u32) -> bool {
        self.in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    fn release(&self) {
        self.in_use.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn limit(&self) -> u32 {
        self.limit.load(Ordering::Acquire)
    }

    fn claimed(&self) -> u32 {
        self.claimed.load(Ordering::Acquire)
    }

    fn set_limit(&self, limit: u32) {
        self.limit.store(limit, Ordering::Release);
    }

    #[cfg(test)]
    pub(crate) fn in_use(&self) -> u32 {
        self.in_use.load(Ordering::Acquire)
    }
}

/// The counters one function version counts against.
#[derive(Debug, Clone)]
pub(crate) struct Counters {
    pub(crate) function: Arc<Counter>,
    pub(crate) account: Arc<Counter>,
}

/// A granted slot; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Lease {
    counter: Option<Arc<Counter>>,
    /// The invocation counted as running (ConcurrentExecutions) while the slot is held.
    running: Option<crate::metrics::Running>,
}

impl Lease {
    /// An invoke that takes no slot (async, or on a provisioned environment of a function
    /// without reserved concurrency: provisioned concurrency is already carved out of the pool).
    pub(crate) fn free() -> Self {
        Self {
            counter: None,
            running: None,
        }
    }

    /// Counts the invocation as running for as long as the slot is held.
    pub(crate) fn running(mut self, metrics: &Arc<crate::metrics::FunctionMetrics>) -> Self {
        self.running = Some(crate::metrics::Running::start(metrics));
        self
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(c) = &self.counter {
            c.release();
        }
    }
}

type ScopeKey = (String, String);

/// One (account, region): its unreserved pool and what is known of its functions' claims.
struct Account {
    counter: Arc<Counter>,
    /// The unreserved concurrency as the control plane computes it, once told.
    unreserved: Option<u32>,
    /// Reserved concurrency of the functions whose specs the engine has seen, by function name
    /// (used until the control plane says): the reservation and the snapshots it was seen on.
    reserved: HashMap<String, (u32, HashSet<String>)>,
    /// Provisioned concurrency of functions without a reservation.
    provisioned: u32,
}

impl Account {
    fn new(limit: u32) -> Self {
        Self {
            counter: Arc::new(Counter::with_limit(limit)),
            unreserved: None,
            reserved: HashMap::new(),
            provisioned: 0,
        }
    }

    fn recompute(&self, account_limit: u32) {
        let limit = match self.unreserved {
            Some(n) => n.min(account_limit),
            None => {
                let reserved: u64 = self.reserved.values().map(|(n, _)| u64::from(*n)).sum();
                let claimed = reserved + u64::from(self.provisioned);
                u32::try_from(u64::from(account_limit).saturating_sub(claimed)).unwrap_or(0)
            }
        };
        self.counter.set_limit(limit);
    }
}

/// The registry of counters (touched only when a snapshot's pool is created or a reservation
/// changes, never by a warm invoke).
pub(crate) struct Throttle {
    account_limit: u32,
    accounts: Mutex<HashMap<ScopeKey, Account>>,
    functions: Mutex<HashMap<(String, String, String), Arc<Counter>>>,
    /// Which function each snapshot with a learned reservation belongs to (to forget it).
    snapshots: Mutex<HashMap<String, (ScopeKey, String)>>,
}

impl Throttle {
    pub(crate) fn new(account_limit: u32) -> Self {
        Self {
            account_limit,
            accounts: Mutex::default(),
            functions: Mutex::default(),
            snapshots: Mutex::default(),
        }
    }

    pub(crate) fn counters(&self, spec: &FunctionSpec) -> Counters {
        self.learn(spec);
        let account = {
            let mut accounts = self.accounts.lock();
            accounts
                .entry((spec.account.clone(), spec.region.clone()))
                .or_insert_with(|| Account::new(self.account_limit))
                .counter
                .clone()
        };
        let function = self
            .functions
            .lock()
            .entry((
                spec.account.clone(),
                spec.region.clone(),
                spec.function_name.clone(),
            ))
            .or_default()
            .clone();
        Counters { function, account }
    }

    /// Records the function's reservation as this spec states it (a change of reserved
    /// concurrency keeps the snapshot id, so the pool calls this again when it notices one).
    pub(crate) fn learn(&self, spec: &FunctionSpec) {
        let key = (spec.account.clone(), spec.region.clone());
        let mut accounts = self.accounts.lock();
        let account = accounts
            .entry(key.clone())
            .or_insert_with(|| Account::new(self.account_limit));
        match spec.reserved_concurrency {
            Some(n) => {
                let entry = account
                    .reserved
                    .entry(spec.function_name.clone())
                    .or_insert_with(|| (n, HashSet::new()));
                entry.0 = n;
                entry.1.insert(spec.snapshot_id.clone());
                self.snapshots
                    .lock()
                    .insert(spec.snapshot_id.clone(), (key, spec.function_name.clone()));
            }
            None => {
                if account.reserved.remove(&spec.function_name).is_some() {
                    self.snapshots.lock().remove(&spec.snapshot_id);
                }
            }
        }
        account.recompute(self.account_limit);
    }

    /// A snapshot is gone; a function none of whose snapshots remain no longer claims anything.
    pub(crate) fn forget(&self, snapshot_id: &str) {
        let Some((key, function)) = self.snapshots.lock().remove(snapshot_id) else {
            return;
        };
        let mut accounts = self.accounts.lock();
        if let Some(account) = accounts.get_mut(&key) {
            if let Some((_, snapshots)) = account.reserved.get_mut(&function) {
                snapshots.remove(snapshot_id);
                if snapshots.is_empty() {
                    account.reserved.remove(&function);
                }
            }
            account.recompute(self.account_limit);
        }
    }

    /// The control plane's `UnreservedConcurrentExecutions` of a scope (authoritative from now on).
    pub(crate) fn set_unreserved(&self, account: &str, region: &str, unreserved: u32) {
        let mut accounts = self.accounts.lock();
        let a = accounts
            .entry((account.to_string(), region.to_string()))
            .or_insert_with(|| Account::new(self.account_limit));
        if a.unreserved != Some(unreserved) {
            a.unreserved = Some(unreserved);
            a.recompute(self.account_limit);
        }
    }

    /// Provisioned concurrency of functions without a reservation, per scope (scopes left out
    /// have none).
    pub(crate) fn set_provisioned_claims(&self, claims: &HashMap<ScopeKey, u32>) {
        let mut accounts = self.accounts.lock();
        for key in claims.keys() {
            accounts
                .entry(key.clone())
                .or_insert_with(|| Account::new(self.account_limit));
        }
        for (key, a) in accounts.iter_mut() {
            let n = claims.get(key).copied().unwrap_or(0);
            if a.provisioned != n {
                a.provisioned = n;
                a.recompute(self.account_limit);
            }
        }
    }

    /// Provisioned concurrency of functions with a reservation, per function (functions left
    /// out have none): on-demand invokes of such a function get its reservation minus this.
    pub(crate) fn set_function_claims(&self, claims: &HashMap<(String, String, String), u32>) {
        let mut functions = self.functions.lock();
        for key in claims.keys() {
            functions.entry(key.clone()).or_default();
        }
        for (key, counter) in functions.iter() {
            let n = claims.get(key).copied().unwrap_or(0);
            counter.claimed.store(n, Ordering::Release);
        }
    }

    /// The current unreserved limit of a scope.
    #[cfg(test)]
    pub(crate) fn unreserved(&self, account: &str, region: &str) -> u32 {
        self.accounts
            .lock()
            .get(&(account.to_string(), region.to_string()))
            .map_or(self.account_limit, |a| a.counter.limit())
    }
}

/// Takes a slot for one invoke, or says which limit refused it.
pub(crate) fn lease(
    counters: &Counters,
    class: Class,
    reserved: Option<u32>,
) -> Result<Lease, ThrottleReason> {
    match (reserved, class) {
        (Some(limit), _) => {
            let on_demand = limit.saturating_sub(counters.function.claimed());
            if counters.function.try_acquire(on_demand) {
                Ok(Lease {
                    counter: Some(counters.function.clone()),
                    running: None,
                })
            } else {
                Err(ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded)
            }
        }
        (None, Class::Sync) => {
            if counters.account.try_acquire(counters.account.limit()) {
                Ok(Lease {
                    counter: Some(counters.account.clone()),
                    running: None,
                })
            } else {
                Err(ThrottleReason::ConcurrentInvocationLimitExceeded)
            }
        }
        (None, Class::Async) => Ok(Lease::free()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(account_limit: u32) -> Counters {
        Counters {
            function: Arc::default(),
            account: Arc::new(Counter::with_limit(account_limit)),
        }
    }

    #[test]
    fn reserved_zero_always_throttles() {
        let c = counters(1000);
        assert_eq!(
            lease(&c, Class::Sync, Some(0)).err(),
            Some(ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded)
        );
        assert!(lease(&c, Class::Async, Some(0)).is_err());
    }

    #[test]
    fn provisioned_concurrency_holding_the_whole_reservation_throttles_on_demand_invokes() {
        let c = counters(1000);
        let key = ("a".to_string(), "r".to_string(), "f".to_string());
        let t = Throttle::new(1000);
        t.functions.lock().insert(key.clone(), c.function.clone());
        t.set_function_claims(&HashMap::from([(key.clone(), 1)]));
        assert_eq!(
            lease(&c, Class::Sync, Some(1)).err(),
            Some(ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded)
        );
        let one = lease(&c, Class::Sync, Some(2)).ok();
        assert!(one.is_some());
        assert!(lease(&c, Class::Sync, Some(2)).is_err());
        drop(one);
        t.set_function_claims(&HashMap::new());
        assert!(lease(&c, Class::Sync, Some(1)).is_ok());
    }

    #[test]
    fn account_pool_refuses_beyond_its_limit_and_frees_on_drop() {
        let c = counters(2);
        let a = lease(&c, Class::Sync, None).ok();
        let b = lease(&c, Class::Sync, None).ok();
        assert!(a.is_some() && b.is_some());
        assert_eq!(
            lease(&c, Class::Sync, None).err(),
            Some(ThrottleReason::ConcurrentInvocationLimitExceeded)
        );
        drop(a);
        assert!(lease(&c, Class::Sync, None).is_ok());
        assert_eq!(c.account.in_use(), 1);
    }

    #[test]
    fn async_invokes_do_not_take_account_slots() {
        let c = counters(1);
        let _a = lease(&c, Class::Async, None);
        assert!(lease(&c, Class::Sync, None).is_ok());
    }

    #[test]
    fn reserved_functions_count_only_against_their_reservation() {
        let c = counters(1000);
        let _a = lease(&c, Class::Sync, Some(1));
        assert_eq!(c.account.in_use(), 0);
        assert!(lease(&c, Class::Async, Some(1)).is_err());
    }

    fn spec(name: &str, snapshot: &str, reserved: Option<u32>) -> FunctionSpec {
        let mut s = crate::tests::spec(snapshot);
        s.function_name = name.into();
        s.reserved_concurrency = reserved;
        s
    }

    #[test]
    fn reservations_shrink_the_unreserved_pool() {
        let t = Throttle::new(10);
        let plain = t.counters(&spec("plain", "p1", None));
        assert_eq!(plain.account.limit(), 10);
        t.counters(&spec("big", "b1", Some(4)));
        t.counters(&spec("small", "s1", Some(2)));
        assert_eq!(plain.account.limit(), 4);
        // A changed reservation is seen again on the same snapshot.
        t.learn(&spec("big", "b1", Some(7)));
        assert_eq!(plain.account.limit(), 1);
        let _one = lease(&plain, Class::Sync, None).ok();
        assert_eq!(
            lease(&plain, Class::Sync, None).err(),
            Some(ThrottleReason::ConcurrentInvocationLimitExceeded)
        );
        // Deleting the reservation (DeleteFunctionConcurrency) gives it back.
        t.learn(&spec("big", "b1", None));
        assert_eq!(plain.account.limit(), 8);
    }

    #[test]
    fn a_function_whose_snapshots_are_all_retired_claims_nothing() {
        let t = Throttle::new(10);
        t.counters(&spec("r", "v1", Some(3)));
        t.counters(&spec("r", "v2", Some(3)));
        assert_eq!(t.unreserved("000000000000", "us-east-1"), 7);
        t.forget("v1");
        assert_eq!(t.unreserved("000000000000", "us-east-1"), 7);
        t.forget("v2");
        assert_eq!(t.unreserved("000000000000", "us-east-1"), 10);
    }

    #[test]
    fn the_control_planes_figure_wins_over_what_was_learned() {
        let t = Throttle::new(10);
        let plain = t.counters(&spec("plain", "p1", None));
        t.counters(&spec("r", "r1", Some(3)));
        t.set_unreserved("000000000000", "us-east-1", 5);
        assert_eq!(plain.account.limit(), 5);
        // Never above the engine's own account limit.
        t.set_unreserved("000000000000", "us-east-1", 50);
        assert_eq!(plain.account.limit(), 10);
    }

    #[test]
    fn provisioned_concurrency_of_unreserved_functions_is_carved_out() {
        let t = Throttle::new(10);
        let plain = t.counters(&spec("plain", "p1", None));
        let key = ("000000000000".to_string(), "us-east-1".to_string());
        t.set_provisioned_claims(&HashMap::from([(key, 3)]));
        assert_eq!(plain.account.limit(), 7);
        t.set_provisioned_claims(&HashMap::new());
        assert_eq!(plain.account.limit(), 10);
    }
}
