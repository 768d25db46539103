//! For tests: what the change feed says was retired.

use flint_spec::feed::Subscription;
use flint_spec::Change;
use parking_lot::{Mutex, MutexGuard};

use crate::ControlPlane;

/// Snapshot ids the change feed retired, collected from a subscription.
#[derive(Default)]
pub(crate) struct Retired(pub RetiredLog);

impl Retired {
    /// Follows `cp`'s feed from now on (replacing any earlier subscription).
    pub(crate) fn follow(&self, cp: &ControlPlane) {
        *self.0.sub.lock() = Some(cp.subscribe());
    }
}

#[derive(Default)]
pub(crate) struct RetiredLog {
    sub: Mutex<Option<Subscription>>,
    ids: Mutex<Vec<String>>,
}

impl RetiredLog {
    /// Every retirement published so far.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Vec<String>> {
        let mut ids = self.ids.lock();
        if let Some(sub) = self.sub.lock().as_mut() {
            while let Some(change) = sub.try_next() {
                if let Change::Function { retired, .. } = &*change {
                    ids.extend(retired.iter().cloned());
                }
            }
        }
        ids
    }
}
