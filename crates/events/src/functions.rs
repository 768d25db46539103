//! The functions as the asynchronous data plane knows them: the latest [`FunctionState`] of each,
//! from the change feed. Lookups first apply every change already published, so an event queued
//! right after its function was created or changed sees that change.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use flint_spec::feed::Subscription;
use flint_spec::{Change, FunctionState, Scope};
use parking_lot::Mutex;

pub struct Functions {
    state: Mutex<State>,
}

struct State {
    changes: Subscription,
    functions: HashMap<(Scope, String), Arc<FunctionState>>,
}

impl State {
    fn catch_up(&mut self) {
        while let Some(change) = self.changes.try_next() {
            if let Change::Function {
                scope, name, state, ..
            } = &*change
            {
                let key = (scope.clone(), name.clone());
                match state {
                    Some(s) => self.functions.insert(key, s.clone()),
                    None => self.functions.remove(&key),
                };
            }
        }
    }
}

impl Functions {
    pub fn new(changes: Subscription) -> Self {
        let mut state = State {
            changes,
            functions: HashMap::new(),
        };
        state.catch_up();
        Self {
            state: Mutex::new(state),
        }
    }

    /// The function as it is now (None: it does not exist).
    pub fn get(&self, scope: &Scope, name: &str) -> Option<Arc<FunctionState>> {
        let mut state = self.state.lock();
        state.catch_up();
        state
            .functions
            .get(&(scope.clone(), name.to_string()))
            .cloned()
    }
}

/// Applies published changes now and then even when no event asks, so they do not pile up.
pub(crate) async fn keep_up(functions: Weak<Functions>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(functions) = functions.upgrade() else {
            return;
        };
        functions.state.lock().catch_up();
    }
}
