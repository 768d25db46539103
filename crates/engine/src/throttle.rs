//! Concurrency counting: a function with reserved concurrency counts against its own reservation,
//! every other sync invoke against its account's (per region) pool. Counters are atomics cached
//! on each snapshot's pool, so the hot path takes no lock here; a lease gives its slot back on drop.

use std::collections::HashMap;
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

/// Invocations in flight against one limit.
#[derive(Debug, Default)]
pub(crate) struct Counter {
    in_use: AtomicU32,
}

impl Counter {
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
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(c) = &self.counter {
            c.release();
        }
    }
}

/// The registry of counters (touched only when a snapshot's pool is created).
#[derive(Default)]
pub(crate) struct Throttle {
    accounts: Mutex<HashMap<(String, String), Arc<Counter>>>,
    functions: Mutex<HashMap<(String, String, String), Arc<Counter>>>,
}

impl Throttle {
    pub(crate) fn counters(&self, spec: &FunctionSpec) -> Counters {
        let account = self
            .accounts
            .lock()
            .entry((spec.account.clone(), spec.region.clone()))
            .or_default()
            .clone();
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
}

/// Takes a slot for one invoke, or says which limit refused it.
pub(crate) fn lease(
    counters: &Counters,
    class: Class,
    reserved: Option<u32>,
    account_limit: u32,
) -> Result<Lease, ThrottleReason> {
    match (reserved, class) {
        (Some(limit), _) => {
            if counters.function.try_acquire(limit) {
                Ok(Lease {
                    counter: Some(counters.function.clone()),
                })
            } else {
                Err(ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded)
            }
        }
        (None, Class::Sync) => {
            if counters.account.try_acquire(account_limit) {
                Ok(Lease {
                    counter: Some(counters.account.clone()),
                })
            } else {
                Err(ThrottleReason::ConcurrentInvocationLimitExceeded)
            }
        }
        (None, Class::Async) => Ok(Lease { counter: None }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters() -> Counters {
        Counters {
            function: Arc::default(),
            account: Arc::default(),
        }
    }

    #[test]
    fn reserved_zero_always_throttles() {
        let c = counters();
        assert_eq!(
            lease(&c, Class::Sync, Some(0), 1000).err(),
            Some(ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded)
        );
        assert!(lease(&c, Class::Async, Some(0), 1000).is_err());
    }

    #[test]
    fn account_pool_refuses_beyond_its_limit_and_frees_on_drop() {
        let c = counters();
        let a = lease(&c, Class::Sync, None, 2).ok();
        let b = lease(&c, Class::Sync, None, 2).ok();
        assert!(a.is_some() && b.is_some());
        assert_eq!(
            lease(&c, Class::Sync, None, 2).err(),
            Some(ThrottleReason::ConcurrentInvocationLimitExceeded)
        );
        drop(a);
        assert!(lease(&c, Class::Sync, None, 2).is_ok());
        assert_eq!(c.account.in_use(), 1);
    }

    #[test]
    fn async_invokes_do_not_take_account_slots() {
        let c = counters();
        let _a = lease(&c, Class::Async, None, 1);
        assert!(lease(&c, Class::Sync, None, 1).is_ok());
    }

    #[test]
    fn reserved_functions_count_only_against_their_reservation() {
        let c = counters();
        let _a = lease(&c, Class::Sync, Some(1), 1000);
        assert_eq!(c.account.in_use(), 0);
        assert!(lease(&c, Class::Async, Some(1), 1000).is_err());
    }
}
