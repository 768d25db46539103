//! Cold-start admission (issue 16, "no 500 under load"): at most a fixed number of execution
//! environments start at once, machine-wide. An invoke that needs a cold start while every slot
//! is taken waits — for a slot, or for a warm environment of its own function coming back to
//! the pool, whichever comes first — within its own timeout; past it, it is throttled with
//! AWS's 429 (`FunctionInvocationRateLimitExceeded`: the function asked to scale faster than
//! this machine starts environments), never a `ServiceException`.
//!
//! Starting too many sandboxes at once is what made a burst fail: each start is a fork, mounts
//! and an interpreter's import, all competing for the same cores, so with hundreds at once every
//! one of them is slow and the sandbox's own start-up deadline fired (a 500). A bounded number
//! starting at once keeps each start as fast as the machine allows, and the rest wait.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::environment::Environment;
use crate::ThrottleReason;

/// Slots per core: a start spends much of its time off-CPU (fork, mounts, exec, reading the
/// runtime's files), so a few per core keep the cores busy without making each start slow.
const SLOTS_PER_CORE: usize = 4;

/// How many environments may start at once, machine-wide.
pub(crate) struct ColdStarts {
    slots: Arc<Semaphore>,
}

/// What a cold start's wait ended with.
pub(crate) enum Admission {
    /// A warm environment of the function came back meanwhile: no start needed.
    Warm(Arc<Environment>),
    /// A start slot, held until the environment's init is over.
    Cold(OwnedSemaphorePermit),
}

impl ColdStarts {
    pub(crate) fn new(slots: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(slots.max(1))),
        }
    }

    /// `SLOTS_PER_CORE` × the cores Flint may use.
    pub(crate) fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(SLOTS_PER_CORE * cores)
    }

    /// A start slot, or a warm environment from `returns` (the function's pool), whichever
    /// comes first; throttled once `wait` has passed with neither.
    pub(crate) async fn admit(
        &self,
        returns: &Returns,
        take_idle: impl Fn() -> Option<Arc<Environment>>,
        wait: Duration,
    ) -> Result<Admission, ThrottleReason> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(Admission::Cold(permit));
        }
        let _waiting = returns.waiting();
        let deadline = tokio::time::Instant::now() + wait;
        let acquire = self.slots.clone().acquire_owned();
        tokio::pin!(acquire);
        loop {
            let returned = returns.notify.notified();
            tokio::pin!(returned);
            // Registered before looking, so a return between the look and the wait is not missed.
            returned.as_mut().enable();
            if let Some(env) = take_idle() {
                return Ok(Admission::Warm(env));
            }
            tokio::select! {
                biased;
                permit = &mut acquire => {
                    return permit
                        .map(Admission::Cold)
                        // Never closed; if it were, no start could be admitted.
                        .map_err(|_| ThrottleReason::FunctionInvocationRateLimitExceeded);
                }
                () = &mut returned => {}
                () = tokio::time::sleep_until(deadline) => {
                    return Err(ThrottleReason::FunctionInvocationRateLimitExceeded);
                }
            }
        }
    }

    /// Slots free now (tests).
    #[cfg(test)]
    fn available(&self) -> usize {
        self.slots.available_permits()
    }
}

/// A pool's signal that an environment came back idle, raised only while a cold start waits
/// (a warm invoke's return then costs one atomic load).
#[derive(Default)]
pub(crate) struct Returns {
    notify: Notify,
    waiters: AtomicUsize,
}

impl Returns {
    /// Called after an environment was put back idle.
    pub(crate) fn returned(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.notify.notify_one();
        }
    }

    fn waiting(&self) -> Waiting<'_> {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        Waiting(self)
    }
}

struct Waiting<'a>(&'a Returns);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_a_slot_then_throttles_at_its_timeout() {
        let starts = ColdStarts::new(1);
        let returns = Returns::default();
        let first = starts
            .admit(&returns, || None, Duration::from_millis(50))
            .await
            .map_err(|r| r.as_str());
        assert!(matches!(first, Ok(Admission::Cold(_))));
        assert_eq!(starts.available(), 0);
        // The only slot is taken for longer than the second invoke's timeout.
        let second = starts
            .admit(&returns, || None, Duration::from_millis(50))
            .await;
        assert!(matches!(
            second,
            Err(ThrottleReason::FunctionInvocationRateLimitExceeded)
        ));
        // Freed: the next one starts.
        drop(first);
        assert_eq!(starts.available(), 1);
        let third = starts
            .admit(&returns, || None, Duration::from_millis(50))
            .await;
        assert!(matches!(third, Ok(Admission::Cold(_))));
    }

    #[tokio::test]
    async fn a_waiter_gets_the_slot_freed_before_its_timeout() {
        let starts = Arc::new(ColdStarts::new(1));
        let returns = Arc::new(Returns::default());
        let Ok(Admission::Cold(held)) = starts.admit(&returns, || None, Duration::ZERO).await
        else {
            panic!("the first start is admitted at once");
        };
        let waiter = {
            let (starts, returns) = (starts.clone(), returns.clone());
            tokio::spawn(async move {
                starts
                    .admit(&returns, || None, Duration::from_secs(30))
                    .await
                    .is_ok()
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
        assert!(waiter.await.unwrap_or(false));
    }

    #[tokio::test]
    async fn a_returned_environment_ends_the_wait_without_a_slot() {
        // No environment is needed to test the signal: `take_idle` counts the looks.
        let starts = Arc::new(ColdStarts::new(1));
        let returns = Arc::new(Returns::default());
        let _held = starts.admit(&returns, || None, Duration::ZERO).await;
        let looked = Arc::new(AtomicUsize::new(0));
        let waiter = {
            let (starts, returns, looked) = (starts.clone(), returns.clone(), looked.clone());
            tokio::spawn(async move {
                let look = || {
                    looked.fetch_add(1, Ordering::SeqCst);
                    None
                };
                let _ = starts.admit(&returns, look, Duration::from_secs(30)).await;
            })
        };
        while looked.load(Ordering::SeqCst) < 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        returns.returned();
        // Woken by the return, it looks again (and, finding nothing here, waits on).
        while looked.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        waiter.abort();
        // A return nobody waits for raises nothing.
        let _ = waiter.await;
        assert_eq!(returns.waiters.load(Ordering::SeqCst), 0);
    }
}
