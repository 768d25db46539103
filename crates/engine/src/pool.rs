//! Placement: the execution environments of each function version snapshot. A warm invoke takes
//! the most recently used idle environment (LIFO keeps few environments warm); otherwise the
//! caller cold-starts one. Pools live in a sharded map so the hot path takes two short,
//! uncontended locks and nothing global.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::environment::Environment;
use crate::throttle::{Counters, Throttle};
use crate::FunctionSpec;

const SHARDS: usize = 16;

/// The environments of one snapshot.
pub(crate) struct Pool {
    pub(crate) counters: Counters,
    state: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    /// Warm environments, most recently used last.
    idle: Vec<(Arc<Environment>, Instant)>,
    /// Retired (or removed from the map): environments coming back are stopped.
    retired: bool,
}

impl Pool {
    /// A warm environment, if one is idle and alive.
    pub(crate) fn take_idle(&self) -> Option<Arc<Environment>> {
        let mut st = self.state.lock();
        while let Some((env, _)) = st.idle.pop() {
            if env.is_healthy() {
                return Some(env);
            }
            // Died while idle (crash, OOM after a background thread ran): drop it.
        }
        None
    }

    /// Puts an environment back after an invoke; returns it when it must be stopped instead.
    pub(crate) fn put_back(&self, env: Arc<Environment>) -> Option<Arc<Environment>> {
        if !env.is_healthy() {
            return Some(env);
        }
        let mut st = self.state.lock();
        if st.retired {
            return Some(env);
        }
        st.idle.push((env, Instant::now()));
        None
    }

    /// Marks the pool retired and hands back its idle environments to stop.
    fn retire(&self) -> Vec<Arc<Environment>> {
        let mut st = self.state.lock();
        st.retired = true;
        st.idle.drain(..).map(|(e, _)| e).collect()
    }

    /// Idle environments unused for longer than `idle_timeout`.
    fn expired(&self, now: Instant, idle_timeout: Duration) -> Vec<Arc<Environment>> {
        let mut st = self.state.lock();
        let mut out = Vec::new();
        st.idle.retain(|(env, since)| {
            let keep = now.duration_since(*since) < idle_timeout && env.is_healthy();
            if !keep {
                out.push(env.clone());
            }
            keep
        });
        out
    }

    fn is_empty(&self) -> bool {
        self.state.lock().idle.is_empty()
    }
}

/// Every snapshot's pool, sharded by snapshot id.
pub(crate) struct Pools {
    shards: Vec<Mutex<HashMap<String, Arc<Pool>>>>,
}

impl Default for Pools {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
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
        shard
            .lock()
            .entry(spec.snapshot_id.clone())
            .or_insert_with(|| {
                Arc::new(Pool {
                    counters,
                    state: Mutex::default(),
                })
            })
            .clone()
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
