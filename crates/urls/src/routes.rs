//! Which function a URL id reaches: a map kept from the change feed (`FunctionState.url_configs`).
//! A lookup first applies every change already published, so a URL answers as soon as
//! CreateFunctionUrlConfig (or AddPermission, UpdateAlias, ...) has answered.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use flint_spec::feed::Subscription;
use flint_spec::{Change, FunctionSpec, FunctionState, Scope, UrlConfig, LATEST};
use parking_lot::Mutex;

/// One URL: the function as it is now, and the qualifier the URL belongs to.
#[derive(Debug, Clone)]
pub struct Route {
    pub function: Arc<FunctionState>,
    /// `None` for the function's own URL, else the alias.
    pub alias: Option<String>,
    pub config: UrlConfig,
}

impl Route {
    /// The version this request runs: the function's `$LATEST`, or the alias' version with its
    /// weighted routing.
    pub fn pick_version(&self) -> Option<&Arc<FunctionSpec>> {
        let Some(alias) = &self.alias else {
            return self.function.versions.get(LATEST);
        };
        let route = self.function.aliases.get(alias)?;
        let version = match &route.additional {
            Some((other, weight)) if rand::random::<f64>() < *weight => other,
            _ => &route.version,
        };
        self.function.versions.get(version)
    }

    /// The ARN the function sees as `invoked_function_arn`.
    pub fn invoked_arn(&self) -> String {
        match &self.alias {
            Some(a) => format!("{}:{a}", self.function.arn),
            None => self.function.arn.clone(),
        }
    }
}

pub struct Routes {
    state: Mutex<State>,
}

struct State {
    changes: Subscription,
    by_id: HashMap<String, Arc<Route>>,
    /// The URL ids of each function, to drop them when it changes.
    ids: HashMap<(Scope, String), Vec<String>>,
}

impl State {
    fn catch_up(&mut self) {
        while let Some(change) = self.changes.try_next() {
            if let Change::Function {
                scope, name, state, ..
            } = &*change
            {
                self.apply(scope, name, state.as_ref());
            }
        }
    }

    fn apply(&mut self, scope: &Scope, name: &str, state: Option<&Arc<FunctionState>>) {
        let key = (scope.clone(), name.to_string());
        for id in self.ids.remove(&key).unwrap_or_default() {
            self.by_id.remove(&id);
        }
        let Some(function) = state else {
            return;
        };
        let mut ids = Vec::with_capacity(function.url_configs.len());
        for (qualifier, config) in &function.url_configs {
            let alias = (!qualifier.is_empty()).then(|| qualifier.clone());
            if alias
                .as_ref()
                .is_some_and(|a| !function.aliases.contains_key(a))
            {
                continue;
            }
            let route = Route {
                function: function.clone(),
                alias,
                config: config.clone(),
            };
            self.by_id.insert(config.url_id.clone(), Arc::new(route));
            ids.push(config.url_id.clone());
        }
        if !ids.is_empty() {
            self.ids.insert(key, ids);
        }
    }
}

impl Routes {
    pub fn new(changes: Subscription) -> Arc<Self> {
        let mut state = State {
            changes,
            by_id: HashMap::new(),
            ids: HashMap::new(),
        };
        state.catch_up();
        let routes = Arc::new(Self {
            state: Mutex::new(state),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(keep_up(Arc::downgrade(&routes)));
        }
        routes
    }

    /// The URL `url_id` as it is now.
    pub fn get(&self, url_id: &str) -> Option<Arc<Route>> {
        let mut state = self.state.lock();
        state.catch_up();
        state.by_id.get(url_id).cloned()
    }
}

/// Applies published changes now and then even when no request asks, so they do not pile up.
async fn keep_up(routes: Weak<Routes>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(routes) = routes.upgrade() else {
            return;
        };
        routes.state.lock().catch_up();
    }
}
