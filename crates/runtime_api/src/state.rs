//! The state shared between the engine and one environment's HTTP handlers: who is waiting in
//! `/next`, which invocation is current, and whether init is done. Every operation is a short
//! critical section under a `parking_lot::Mutex`; waiting happens on one-shot channels outside it.

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};

use crate::extensions::Extensions;
use crate::telemetry::Telemetry;
use crate::{InitError, Invocation, Outcome, Readiness};

pub(crate) struct Shared {
    state: Mutex<State>,
    readiness: watch::Sender<Readiness>,
    pub(crate) extensions: Extensions,
    pub(crate) telemetry: Telemetry,
    /// When the current invocation's response began to arrive (kept only while a telemetry
    /// subscriber wants platform events: `platform.runtimeDone`'s spans).
    response_began: Mutex<Option<std::time::Instant>>,
}

#[derive(Default)]
struct State {
    /// The runtime's parked `/next` call.
    next_waiter: Option<oneshot::Sender<Invocation>>,
    /// Delivered while the runtime was not waiting: handed over by its next `/next`.
    pending: Option<Invocation>,
    /// The invocation whose response is expected, and where its outcome goes.
    current: Option<Current>,
    ready: bool,
    closed: bool,
}

struct Current {
    request_id: String,
    tx: oneshot::Sender<Outcome>,
}

/// What `/next` gets: an invocation now, or a channel on which one will arrive.
pub(crate) enum Next {
    Now(Invocation),
    Wait(oneshot::Receiver<Invocation>),
    Closed,
}

/// Why a `/response` or `/error` was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No current invocation has this id.
    InvalidRequestId,
}

/// Why `/init/error` was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InitRefusal {
    /// The runtime already finished init (called `/next`).
    AlreadyReady,
}

impl Shared {
    pub(crate) fn new() -> (Self, watch::Receiver<Readiness>) {
        let (readiness, rx) = watch::channel(Readiness::Starting);
        (
            Self {
                state: Mutex::new(State::default()),
                readiness,
                extensions: Extensions::new(),
                telemetry: Telemetry::new(),
                response_began: Mutex::new(None),
            },
            rx,
        )
    }

    /// A `/response` request's head arrived.
    pub(crate) fn response_begins(&self) {
        if self.telemetry.wants(crate::Category::Platform) {
            *self.response_began.lock() = Some(std::time::Instant::now());
        }
    }

    /// When the last response began (taken: each invocation reads its own once).
    pub(crate) fn take_response_began(&self) -> Option<std::time::Instant> {
        self.response_began.lock().take()
    }

    pub(crate) fn deliver(&self, invocation: Invocation) -> oneshot::Receiver<Outcome> {
        self.extensions.invoke(&invocation);
        if self.telemetry.wants(crate::Category::Platform) {
            self.response_began.lock().take();
        }
        let (tx, rx) = oneshot::channel();
        let mut st = self.state.lock();
        if st.closed {
            drop(st);
            let _ = tx.send(Outcome::Closed);
            return rx;
        }
        // A previous current invocation (never answered) is superseded: its receiver sees the
        // sender dropped, which the engine treats like a closed environment.
        st.current = Some(Current {
            request_id: invocation.request_id.clone(),
            tx,
        });
        let invocation = match st.next_waiter.take() {
            Some(waiter) => match waiter.send(invocation) {
                Ok(()) => return rx,
                // The `/next` caller went away (connection closed): keep it for the next call.
                Err(back) => back,
            },
            None => invocation,
        };
        st.pending = Some(invocation);
        rx
    }

    pub(crate) fn next(&self) -> Next {
        let mut st = self.state.lock();
        if st.closed {
            return Next::Closed;
        }
        if !st.ready {
            st.ready = true;
            self.extensions.runtime_ready();
            self.refresh(&st);
        }
        if let Some(inv) = st.pending.take() {
            return Next::Now(inv);
        }
        let (tx, rx) = oneshot::channel();
        st.next_waiter = Some(tx);
        Next::Wait(rx)
    }

    /// Init is over when the runtime asked for its first event and every extension for its
    /// first; an extension's failure ends it at once. An init error reported before stays the
    /// verdict.
    fn refresh(&self, st: &State) {
        let failure = self.extensions.failure();
        let ready = st.ready && self.extensions.is_initialized();
        self.readiness.send_if_modified(|r| {
            if *r != Readiness::Starting {
                return false;
            }
            if let Some(f) = failure {
                *r = Readiness::ExtensionFailed(f);
                return true;
            }
            if ready {
                *r = Readiness::Ready;
            }
            ready
        });
    }

    /// An extension registered, asked for an event or failed: Init may be over.
    pub(crate) fn extensions_changed(&self) {
        let st = self.state.lock();
        self.refresh(&st);
    }

    /// Completes the current invocation if `request_id` names it.
    pub(crate) fn complete(&self, request_id: &str, outcome: Outcome) -> Result<(), Refusal> {
        let current = {
            let mut st = self.state.lock();
            match &st.current {
                Some(c) if c.request_id == request_id => st.current.take(),
                _ => None,
            }
        };
        match current {
            Some(c) => {
                // The engine may have given up (timeout): nothing to do then.
                let _ = c.tx.send(outcome);
                Ok(())
            }
            None => Err(Refusal::InvalidRequestId),
        }
    }

    pub(crate) fn init_error(
        &self,
        error_type: Option<String>,
        body: Bytes,
    ) -> Result<(), InitRefusal> {
        let st = self.state.lock();
        if st.ready {
            return Err(InitRefusal::AlreadyReady);
        }
        if !st.closed {
            self.readiness
                .send_replace(Readiness::InitFailed(InitError { error_type, body }));
        }
        Ok(())
    }

    pub(crate) fn close(&self) {
        let (current, waiter) = {
            let mut st = self.state.lock();
            st.closed = true;
            st.pending = None;
            (st.current.take(), st.next_waiter.take())
        };
        drop(waiter);
        self.extensions.close();
        self.telemetry.close();
        if let Some(c) = current {
            let _ = c.tx.send(Outcome::Closed);
        }
        self.readiness.send_if_modified(|r| match r {
            Readiness::Starting | Readiness::Ready => {
                *r = Readiness::Closed;
                true
            }
            Readiness::InitFailed(_) | Readiness::ExtensionFailed(_) | Readiness::Closed => false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Payload;

    fn invocation(id: &str) -> Invocation {
        Invocation {
            request_id: id.to_string(),
            deadline_ms: 0,
            invoked_function_arn: "arn".into(),
            trace_id: "t".into(),
            client_context: None,
            cognito_identity: None,
            payload: Bytes::from_static(b"{}").into(),
        }
    }

    #[tokio::test]
    async fn delivery_before_next_is_handed_over_by_the_next_call() {
        let (shared, _rx) = Shared::new();
        let _out = shared.deliver(invocation("a"));
        match shared.next() {
            Next::Now(inv) => assert_eq!(inv.request_id, "a"),
            _ => panic!("expected the pending invocation"),
        }
    }

    #[tokio::test]
    async fn delivery_to_a_waiting_next_wakes_it() {
        let (shared, _rx) = Shared::new();
        let Next::Wait(rx) = shared.next() else {
            panic!("expected to wait")
        };
        let _out = shared.deliver(invocation("b"));
        assert_eq!(rx.await.map(|i| i.request_id).ok().as_deref(), Some("b"));
    }

    #[tokio::test]
    async fn response_with_another_request_id_is_refused() {
        let (shared, _rx) = Shared::new();
        let out = shared.deliver(invocation("c"));
        assert_eq!(
            shared.complete("other", Outcome::Response(Payload::default())),
            Err(Refusal::InvalidRequestId)
        );
        assert_eq!(
            shared.complete("c", Outcome::Response(b"1"[..].into())),
            Ok(())
        );
        assert_eq!(out.await.ok(), Some(Outcome::Response(b"1"[..].into())));
        // Answered once: a second answer has no current invocation.
        assert_eq!(
            shared.complete("c", Outcome::Response(Payload::default())),
            Err(Refusal::InvalidRequestId)
        );
    }

    #[tokio::test]
    async fn close_ends_the_current_invocation_and_later_deliveries() {
        let (shared, rx) = Shared::new();
        let out = shared.deliver(invocation("d"));
        shared.close();
        assert_eq!(out.await.ok(), Some(Outcome::Closed));
        assert_eq!(
            shared.deliver(invocation("e")).await.ok(),
            Some(Outcome::Closed)
        );
        assert_eq!(*rx.borrow(), Readiness::Closed);
    }

    #[tokio::test]
    async fn init_error_after_next_is_refused() {
        let (shared, rx) = Shared::new();
        assert!(shared.init_error(None, Bytes::new()).is_ok());
        assert!(matches!(*rx.borrow(), Readiness::InitFailed(_)));
        let (shared, _rx) = Shared::new();
        let _ = shared.next();
        assert_eq!(
            shared.init_error(None, Bytes::new()),
            Err(InitRefusal::AlreadyReady)
        );
    }
}
