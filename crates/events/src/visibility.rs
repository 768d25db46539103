//! What the asynchronous queue holds, per function: events waiting (including those running),
//! attempts in flight, events that failed for good and events that succeeded since start-up.

use std::collections::HashMap;

use flint_spec::Scope;
use parking_lot::Mutex;
use serde::Serialize;

/// One function's numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueDepth {
    /// Events accepted and not finished (waiting, due later, or running).
    pub queued: u64,
    /// Attempts running now.
    pub in_flight: u64,
    /// Events whose retries ran out (since start-up).
    pub failed: u64,
}

#[derive(Default)]
pub(crate) struct Counts {
    by_function: Mutex<HashMap<(Scope, String), QueueDepth>>,
}

impl Counts {
    fn with(&self, scope: &Scope, function: &str, f: impl FnOnce(&mut QueueDepth)) {
        let mut map = self.by_function.lock();
        match map.get_mut(&(scope.clone(), function.to_string())) {
            Some(d) => f(d),
            None => {
                let mut d = QueueDepth::default();
                f(&mut d);
                map.insert((scope.clone(), function.to_string()), d);
            }
        }
    }
    pub(crate) fn queued(&self, scope: &Scope, function: &str) {
        self.with(scope, function, |d| d.queued += 1);
    }
    pub(crate) fn done(&self, scope: &Scope, function: &str) {
        self.with(scope, function, |d| d.queued = d.queued.saturating_sub(1));
    }
    pub(crate) fn started(&self, scope: &Scope, function: &str) {
        self.with(scope, function, |d| d.in_flight += 1);
    }
    pub(crate) fn ended(&self, scope: &Scope, function: &str) {
        self.with(scope, function, |d| {
            d.in_flight = d.in_flight.saturating_sub(1)
        });
    }
    pub(crate) fn failed(&self, scope: &Scope, function: &str) {
        self.with(scope, function, |d| d.failed += 1);
    }
    pub(crate) fn get(&self, scope: &Scope, function: &str) -> QueueDepth {
        self.by_function
            .lock()
            .get(&(scope.clone(), function.to_string()))
            .copied()
            .unwrap_or_default()
    }
    pub(crate) fn all(&self) -> Vec<(Scope, String, QueueDepth)> {
        let mut all: Vec<_> = self
            .by_function
            .lock()
            .iter()
            .map(|((s, f), d)| (s.clone(), f.clone(), *d))
            .collect();
        all.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        all
    }
}
