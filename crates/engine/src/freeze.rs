//! Idle environments are frozen (cgroup freezer), as Lambda freezes an execution environment
//! between invocations: a background process makes no progress, a fork bomb started by one
//! invocation cannot fill the pids limit before the next. Freezing happens `FREEZE_AFTER` into
//! an idle period, not at the end of every invocation: back-to-back warm invokes then pay
//! nothing (a thaw is a cgroup write plus a wake-up of every process of the environment, tens
//! of µs on a path that takes ~100 µs), and an environment that is idle for longer than a
//! blink runs nothing, which is what matters for isolation and for the host.

use std::sync::Weak;
use std::time::{Duration, Instant};

use crate::Inner;

/// Idle time after which an environment is frozen.
pub(crate) const FREEZE_AFTER: Duration = Duration::from_millis(100);
/// How often idle environments are looked at.
const SCAN_PERIOD: Duration = Duration::from_millis(50);

/// An environment's use, as far as freezing is concerned.
#[derive(Debug)]
pub(crate) struct FreezeState {
    /// Checked out for an invocation (or still starting).
    pub busy: bool,
    pub idle_since: Instant,
    pub frozen: bool,
}

impl FreezeState {
    /// A new environment: in use until its pool first takes it back.
    pub fn in_use() -> Self {
        Self {
            busy: true,
            idle_since: Instant::now(),
            frozen: false,
        }
    }
}

/// Freezes environments idle for longer than [`FREEZE_AFTER`], until the engine is gone.
pub(crate) async fn freeze_idle(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(SCAN_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let now = Instant::now();
        for env in inner.live_environments() {
            env.freeze_if_idle(FREEZE_AFTER, now);
        }
    }
}
