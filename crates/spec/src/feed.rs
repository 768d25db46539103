//! The change feed: the control plane publishes every [`Change`] a data plane must act on; each
//! data plane holds a [`Subscription`]. Lossless and ordered: each subscriber has its own
//! unbounded queue (changes are rare next to invokes, and a lagging subscriber must not miss a
//! retirement), and a new subscriber first receives the state as it stands, then every later
//! change, with nothing lost or repeated in between.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::Change;

/// The publishing side, owned by the control plane.
#[derive(Default)]
pub struct ChangeFeed {
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Arc<Change>>>>,
}

impl ChangeFeed {
    pub fn new() -> Self {
        Self::default()
    }

    /// Publishes the changes `make` returns. `make` runs under the feed's lock, so whatever it
    /// reads and applies is ordered with every other publication and subscription: the last
    /// change published about a thing is the latest state of it.
    pub fn publish_with<R>(&self, make: impl FnOnce() -> (R, Vec<Change>)) -> R {
        let mut subscribers = self.subscribers.lock();
        let (result, changes) = make();
        for change in changes {
            let change = Arc::new(change);
            subscribers.retain(|s| s.send(change.clone()).is_ok());
        }
        result
    }

    /// Publishes one change.
    pub fn publish(&self, change: Change) {
        self.publish_with(|| ((), vec![change]));
    }

    /// A new subscription that starts with `current()` (the state as it stands, read under the
    /// feed's lock) and then receives every change published after it.
    pub fn subscribe_with(&self, current: impl FnOnce() -> Vec<Change>) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut subscribers = self.subscribers.lock();
        for change in current() {
            // The receiver is alive: it is returned below.
            let _ = tx.send(Arc::new(change));
        }
        subscribers.push(tx);
        Subscription { rx }
    }

    /// How many subscriptions are still open.
    pub fn subscribers(&self) -> usize {
        let mut subscribers = self.subscribers.lock();
        subscribers.retain(|s| !s.is_closed());
        subscribers.len()
    }
}

/// The receiving side, held by a data plane. Dropping it unsubscribes.
pub struct Subscription {
    rx: mpsc::UnboundedReceiver<Arc<Change>>,
}

impl Subscription {
    /// The next change; `None` once the feed is gone.
    pub async fn next(&mut self) -> Option<Arc<Change>> {
        self.rx.recv().await
    }

    /// The next change if one is already waiting.
    pub fn try_next(&mut self) -> Option<Arc<Change>> {
        self.rx.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scope;

    fn unreserved(n: u32) -> Change {
        Change::Unreserved {
            scope: Scope {
                account: "000000000000".into(),
                region: "us-east-1".into(),
            },
            unreserved: n,
        }
    }

    #[test]
    fn a_subscriber_gets_the_current_state_then_every_change_in_order() {
        let feed = ChangeFeed::new();
        feed.publish(unreserved(1)); // before anyone listens: gone
        let mut sub = feed.subscribe_with(|| vec![unreserved(2)]);
        feed.publish(unreserved(3));
        feed.publish_with(|| ((), vec![unreserved(4), unreserved(5)]));
        let seen: Vec<Change> = std::iter::from_fn(|| sub.try_next())
            .map(|c| (*c).clone())
            .collect();
        assert_eq!(
            seen,
            vec![unreserved(2), unreserved(3), unreserved(4), unreserved(5)]
        );
    }

    #[test]
    fn a_dropped_subscription_is_forgotten() {
        let feed = ChangeFeed::new();
        let a = feed.subscribe_with(Vec::new);
        let _b = feed.subscribe_with(Vec::new);
        assert_eq!(feed.subscribers(), 2);
        drop(a);
        feed.publish(unreserved(1));
        assert_eq!(feed.subscribers(), 1);
    }
}
