//! Carries concurrency settings from the control plane to the engine: every few hundred
//! milliseconds, the provisioned concurrency configs (resolved to the snapshots they run) and,
//! for each account the engine has counted invokes for, its `UnreservedConcurrentExecutions`.
//! The engine makes both cheap when nothing changed.

use std::sync::Arc;
use std::time::Duration;

use flint_control::{ControlPlane, Scope};
use flint_engine::Engine;

/// How stale the engine's view of the control plane's concurrency settings may get.
const PERIOD: Duration = Duration::from_millis(200);

/// Starts the reconciler; it runs until aborted.
pub fn spawn(control: Arc<ControlPlane>, engine: Arc<Engine>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            reconcile(&control, &engine);
        }
    })
}

/// One pass: the engine ends up with exactly the control plane's provisioned concurrency and
/// unreserved pools.
pub fn reconcile(control: &ControlPlane, engine: &Engine) {
    let targets = control
        .provisioned_concurrency()
        .into_iter()
        .map(|t| (t.spec, t.requested))
        .collect();
    engine.set_provisioned(targets);
    for (account, region) in engine.invoked_scopes() {
        let scope = Scope { account, region };
        let unreserved = flint_control::concurrency::unreserved(control, &scope);
        engine.set_unreserved_concurrency(&scope.account, &scope.region, unreserved);
    }
}
