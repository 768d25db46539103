//! Carries concurrency settings from the control plane to the engine: every few hundred
//! milliseconds, the provisioned concurrency configs (resolved to the snapshots they run) and,
//! for each account the engine has counted invokes for, its `UnreservedConcurrentExecutions`.
//! The engine makes both cheap when nothing changed. The other way, the control plane asks the
//! engine where a snapshot's provisioned environments stand when it answers a Get or List.

use std::sync::{Arc, Weak};
use std::time::Duration;

use flint_control::concurrency::ProvisionedProgress;
use flint_control::{ControlPlane, Scope};
use flint_engine::Engine;

/// How stale the engine's view of the control plane's concurrency settings may get.
const PERIOD: Duration = Duration::from_millis(200);

/// Starts the reconciler; it runs until aborted. Also lets the control plane's answers about
/// provisioned concurrency reflect the engine.
pub fn spawn(control: Arc<ControlPlane>, engine: Arc<Engine>) -> tokio::task::JoinHandle<()> {
    connect_progress(&control, &engine);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Walking every function 5 times a second costs CPU in proportion to their number:
        // only when a function changed, or the engine started counting a new scope.
        let mut seen: Option<(u64, Vec<(String, String)>)> = None;
        loop {
            tick.tick().await;
            let mut scopes = engine.invoked_scopes();
            scopes.sort();
            let now = (control.functions_generation(), scopes);
            if seen.as_ref() == Some(&now) {
                continue;
            }
            reconcile(&control, &engine);
            seen = Some(now);
        }
    })
}

/// GetProvisionedConcurrencyConfig and ListProvisionedConcurrencyConfigs read the engine's
/// provisioned environments (weakly: the hook adds no owner of the engine).
pub fn connect_progress(control: &ControlPlane, engine: &Arc<Engine>) {
    let engine: Weak<Engine> = Arc::downgrade(engine);
    control.set_provisioned_progress(Arc::new(move |snapshot_id: &str| {
        let a = engine.upgrade()?.provisioned_allocation(snapshot_id)?;
        Some(ProvisionedProgress {
            requested: a.requested,
            ready: a.ready,
            allocated: a.allocated,
            init_failure: a.init_failure,
        })
    }));
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
