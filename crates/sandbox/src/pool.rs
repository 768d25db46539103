//! The pool of prepared sandboxes: a few sandboxes started ahead of any spec, with the slow part of
//! a start behind them (exec of the init, namespaces, and above all joining a cgroup v1 memory
//! controller, which waits for an RCU grace period: ~10–30 ms). A spawn takes one and only adds the
//! spec; a background thread prepares the next one, one at a time, after each take.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::preinit::Template;
use crate::spawn::{Launcher, Prepared};

/// Prepared sandboxes kept ready unless `FLINT_SANDBOX_POOL` or `Sandboxes::set_pool_size` says
/// otherwise.
pub(crate) const DEFAULT_SIZE: usize = 2;
/// After a take, the cold start that took it gets the CPU first (2 cores: preparing the next one
/// costs an exec of the 15 MB init and its relocations).
const REFILL_DELAY: Duration = Duration::from_millis(50);
/// Managed runtimes (python3.x, nodejsN.x of one setting) kept pre-initialised, the most
/// recently used ones: one sandbox each.
const MAX_RUNTIMES: usize = 2;
/// Failed launches in a row after which pre-initialised runtimes are turned off.
const MAX_PREINIT_FAILURES: u32 = 3;
/// Longest pause between attempts when preparing keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Names of pool cgroups: '~' keeps them apart from sandbox ids (see `validate_id`).
static NEXT_NAME: AtomicU64 = AtomicU64::new(0);

pub(crate) struct Pool {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    launcher: Arc<Launcher>,
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    size: usize,
    ready: VecDeque<Prepared>,
    /// The kind to prepare: follows the specs (the engine uses one setting for all functions).
    isolate_network: bool,
    last_take: Option<Instant>,
    shutdown: bool,
    /// Keep pre-initialised runtimes (`FLINT_PREINIT_RUNTIMES`, see `preinit.rs`).
    preinit: bool,
    runtimes: Vec<Slot>,
    /// Launches in pre-initialised sandboxes that failed in a row.
    preinit_failures: u32,
}

/// A recently used managed runtime and its pre-initialised sandbox (once prepared).
struct Slot {
    template: Arc<Template>,
    ready: Option<Prepared>,
    used: Instant,
}

impl State {
    /// Every prepared sandbox, plain and pre-initialised, taken out.
    fn drain_all(&mut self) -> Vec<Prepared> {
        let mut out: Vec<Prepared> = self.ready.drain(..).collect();
        out.extend(self.runtimes.iter_mut().filter_map(|s| s.ready.take()));
        out
    }
}

/// What the refill thread prepares next.
enum Job {
    Plain,
    Runtime(Arc<Template>),
}

impl Pool {
    /// A pool of `size` prepared sandboxes (0: none; every spawn starts from scratch).
    pub fn new(launcher: Arc<Launcher>, size: usize, preinit: bool) -> Pool {
        let pool = Pool {
            shared: Arc::new(Shared {
                launcher,
                state: Mutex::new(State {
                    size: 0,
                    ready: VecDeque::new(),
                    isolate_network: false,
                    last_take: None,
                    shutdown: false,
                    preinit,
                    runtimes: Vec::new(),
                    preinit_failures: 0,
                }),
                wake: Condvar::new(),
            }),
            thread: Mutex::new(None),
        };
        pool.set_size(size);
        pool
    }

    pub fn size(&self) -> usize {
        self.shared.lock().size
    }

    /// How many prepared sandboxes wait right now.
    pub fn ready(&self) -> usize {
        self.shared.lock().ready.len()
    }

    pub fn set_size(&self, size: usize) {
        let surplus: Vec<Prepared> = {
            let mut state = self.shared.lock();
            if state.shutdown {
                return;
            }
            state.size = size;
            let keep = state.ready.len().min(size);
            let mut surplus: Vec<Prepared> = state.ready.drain(keep..).collect();
            if size == 0 {
                surplus.extend(state.runtimes.drain(..).filter_map(|s| s.ready));
            }
            surplus
        };
        drop(surplus);
        if size > 0 {
            self.start_thread();
        }
        self.shared.wake.notify_all();
    }

    fn start_thread(&self) {
        let mut thread = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        if thread.is_some() {
            return;
        }
        let shared = self.shared.clone();
        match std::thread::Builder::new()
            .name("flint-sandbox-pool".into())
            .spawn(move || refill(&shared))
        {
            Ok(handle) => *thread = Some(handle),
            Err(e) => tracing::warn!("cannot start the sandbox pool thread: {e}; no pool"),
        }
    }

    /// Whether sandboxes with a pre-initialised runtime are kept.
    pub fn preinit_enabled(&self) -> bool {
        let state = self.shared.lock();
        state.preinit && state.size > 0
    }

    /// Turns pre-initialised runtimes on or off (off ends those waiting).
    pub fn set_preinit(&self, on: bool) {
        let stale: Vec<Prepared> = {
            let mut state = self.shared.lock();
            state.preinit = on;
            if on {
                Vec::new()
            } else {
                state.runtimes.drain(..).filter_map(|s| s.ready).collect()
            }
        };
        self.shared.wake.notify_all();
        drop(stale);
    }

    /// Counts launches in pre-initialised sandboxes: after [`MAX_PREINIT_FAILURES`] failures in a
    /// row (a host where ptrace or `PR_SET_MM_MAP` is refused, say) they are turned off, with a
    /// warning, rather than prepared in vain before every fresh start.
    pub fn preinit_outcome(&self, ok: bool, reason: &str) {
        let off = {
            let mut state = self.shared.lock();
            if ok {
                state.preinit_failures = 0;
                false
            } else {
                state.preinit_failures += 1;
                state.preinit_failures >= MAX_PREINIT_FAILURES && state.preinit
            }
        };
        if off {
            tracing::warn!(
                "pre-initialised runtimes failed {MAX_PREINIT_FAILURES} times in a row (last: {reason}); turned off, cold starts start interpreters fresh"
            );
            self.set_preinit(false);
        }
    }

    /// How many pre-initialised runtimes wait right now.
    pub fn preinit_ready(&self) -> usize {
        let state = self.shared.lock();
        state.runtimes.iter().filter(|s| s.ready.is_some()).count()
    }

    /// A prepared sandbox of the wanted kind, if one is ready: with `runtime`'s interpreter
    /// waiting in it when there is one (the runtime is remembered, and prepared from now on).
    /// Asking for the other kind switches what the pool prepares (the ones of the old kind are
    /// dropped).
    pub fn take(&self, isolate_network: bool, runtime: Option<Template>) -> Option<Prepared> {
        let (taken, stale) = {
            let mut state = self.shared.lock();
            if state.size == 0 || state.shutdown {
                return None;
            }
            let now = Instant::now();
            state.last_take = Some(now);
            let current = self.shared.launcher.net();
            if state.isolate_network != isolate_network {
                state.isolate_network = isolate_network;
                (None, state.drain_all())
            } else if isolate_network
                && (state.ready.iter().any(|p| !Arc::ptr_eq(&p.net, &current))
                    || state.runtimes.iter().any(|s| {
                        s.ready
                            .as_ref()
                            .is_some_and(|p| !Arc::ptr_eq(&p.net, &current))
                    }))
            {
                // Prepared before the network set-up changed.
                (None, state.drain_all())
            } else {
                let mut stale = Vec::new();
                let mut taken = None;
                if let (Some(runtime), true) = (runtime, state.preinit) {
                    match state.runtimes.iter_mut().find(|s| *s.template == runtime) {
                        Some(slot) => {
                            slot.used = now;
                            taken = slot.ready.take();
                        }
                        None => {
                            state.runtimes.push(Slot {
                                template: Arc::new(runtime),
                                ready: None,
                                used: now,
                            });
                            if state.runtimes.len() > MAX_RUNTIMES {
                                if let Some((oldest, _)) = state
                                    .runtimes
                                    .iter()
                                    .enumerate()
                                    .min_by_key(|(_, s)| s.used)
                                {
                                    stale.extend(state.runtimes.remove(oldest).ready);
                                }
                            }
                        }
                    }
                }
                (taken.or_else(|| state.ready.pop_front()), stale)
            }
        };
        self.shared.wake.notify_all();
        drop(stale);
        taken
    }

    /// Prepares sandboxes of this kind from now on (the ones of the other kind are dropped).
    pub fn prepare_kind(&self, isolate_network: bool) {
        let stale: Vec<Prepared> = {
            let mut state = self.shared.lock();
            if state.isolate_network == isolate_network {
                return;
            }
            state.isolate_network = isolate_network;
            state.drain_all()
        };
        self.shared.wake.notify_all();
        drop(stale);
    }

    /// Ends the prepared sandboxes (the launcher's set-up changed); the pool refills.
    pub fn flush(&self) {
        let stale: Vec<Prepared> = self.shared.lock().drain_all();
        self.shared.wake.notify_all();
        drop(stale);
    }

    /// Stops the refill thread and ends every prepared sandbox, cgroups removed, before returning.
    pub fn shutdown(&self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_all();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        let ready: Vec<Prepared> = self.shared.lock().drain_all();
        for prepared in ready {
            prepared.dispose_now();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves a consistent queue: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The refill thread: prepares one sandbox at a time while the pool is short.
fn refill(shared: &Shared) {
    let mut failures: u32 = 0;
    loop {
        let (isolate_network, job) = {
            let mut state = shared.lock();
            loop {
                if state.shutdown {
                    return;
                }
                let job = if state.ready.len() < state.size {
                    Some(Job::Plain)
                } else if state.preinit && state.size > 0 {
                    let kind = state.isolate_network;
                    state
                        .runtimes
                        .iter()
                        .find(|s| s.ready.is_none() && s.template.isolate_network == kind)
                        .map(|s| Job::Runtime(s.template.clone()))
                } else {
                    None
                };
                if let Some(job) = job {
                    let since = state.last_take.map(|t| t.elapsed());
                    match since {
                        Some(since) if since < REFILL_DELAY => {
                            state = wait(shared, state, Some(REFILL_DELAY - since));
                            continue;
                        }
                        _ => break (state.isolate_network, job),
                    }
                }
                state = wait(shared, state, None);
            }
        };
        let name = format!("pool~{}", NEXT_NAME.fetch_add(1, Ordering::Relaxed));
        let started = Instant::now();
        let template = match &job {
            Job::Plain => None,
            Job::Runtime(t) => Some(t.clone()),
        };
        match shared.launcher.prepare(&name, isolate_network, template) {
            Ok(prepared) => {
                failures = 0;
                tracing::debug!(
                    "prepared a sandbox for the pool in {:.1} ms{}",
                    started.elapsed().as_secs_f64() * 1e3,
                    if prepared.preinit.is_some() {
                        " (with a pre-initialised runtime)"
                    } else {
                        ""
                    }
                );
                let unwanted = {
                    let mut state = shared.lock();
                    let current = state.isolate_network == prepared.isolate_network
                        && Arc::ptr_eq(&prepared.net, &shared.launcher.net());
                    if state.shutdown || !current {
                        Some(prepared)
                    } else if let Some(t) = prepared.preinit.clone() {
                        let on = state.preinit;
                        match state
                            .runtimes
                            .iter_mut()
                            .find(|s| Arc::ptr_eq(&s.template, &t) && s.ready.is_none())
                        {
                            Some(slot) if on => {
                                tracing::debug!(
                                    "a pre-initialised {:?} runtime waits ({})",
                                    t.family,
                                    t.program.display()
                                );
                                slot.ready = Some(prepared);
                                None
                            }
                            _ => Some(prepared),
                        }
                    } else if state.ready.len() >= state.size {
                        Some(prepared)
                    } else {
                        state.ready.push_back(prepared);
                        None
                    }
                };
                // Ended outside the lock: a take must never wait for it.
                drop(unwanted);
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(
                        "cannot prepare a sandbox for the pool ({failures} time(s) in a row): {e}; cold starts take the slower path meanwhile"
                    );
                }
                let pause = Duration::from_millis(100)
                    .saturating_mul(1 << failures.min(9))
                    .min(MAX_BACKOFF);
                let deadline = Instant::now() + pause;
                let mut state = shared.lock();
                while !state.shutdown && Instant::now() < deadline {
                    state = wait(shared, state, Some(deadline - Instant::now()));
                }
            }
        }
    }
}

fn wait<'a>(
    shared: &'a Shared,
    state: MutexGuard<'a, State>,
    timeout: Option<Duration>,
) -> MutexGuard<'a, State> {
    match timeout {
        Some(t) => match shared.wake.wait_timeout(state, t) {
            Ok((s, _)) => s,
            Err(p) => p.into_inner().0,
        },
        None => shared.wake.wait(state).unwrap_or_else(|p| p.into_inner()),
    }
}

/// Whether to keep pre-initialised runtimes, from `FLINT_PREINIT_RUNTIMES` (on by default).
pub(crate) fn preinit_from_env(value: Option<&str>) -> Result<bool, String> {
    match value.map(str::trim) {
        None | Some("") | Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(v) => Err(format!(
            "FLINT_PREINIT_RUNTIMES={v:?} is neither on nor off"
        )),
    }
}

/// The pool size from `FLINT_SANDBOX_POOL` (a count; 0 turns the pool off).
pub(crate) fn size_from_env(value: Option<&str>) -> Result<usize, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(DEFAULT_SIZE),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= 64)
            .ok_or_else(|| format!("FLINT_SANDBOX_POOL={v:?} is not a count from 0 to 64")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_size_comes_from_the_environment_with_a_default() {
        assert_eq!(size_from_env(None), Ok(DEFAULT_SIZE));
        assert_eq!(size_from_env(Some("")), Ok(DEFAULT_SIZE));
        assert_eq!(size_from_env(Some("0")), Ok(0));
        assert_eq!(size_from_env(Some(" 4 ")), Ok(4));
        assert!(size_from_env(Some("-1")).is_err());
        assert!(size_from_env(Some("lots")).is_err());
        assert!(size_from_env(Some("1000")).is_err());
    }

    #[test]
    fn preinit_is_on_unless_turned_off() {
        assert_eq!(preinit_from_env(None), Ok(true));
        assert_eq!(preinit_from_env(Some("on")), Ok(true));
        assert_eq!(preinit_from_env(Some("off")), Ok(false));
        assert!(preinit_from_env(Some("yes")).is_err());
    }
}
