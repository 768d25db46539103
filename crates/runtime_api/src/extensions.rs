//! The Extensions API (2020-01-01) of one environment: who registered (by `Lambda-Extension-Name`),
//! for which events (`INVOKE`, `SHUTDOWN`), and where each is in AWS's cycle — registered, parked
//! in `event/next`, or busy with an event. The engine learns from it when Init is over (every
//! extension asked for its first event), when an invoke's post-runtime phase ends (every
//! `INVOKE` subscriber asked for its next event) and when a `SHUTDOWN` was acknowledged.
//! Nothing here is touched on the invoke path of an environment without extensions but one
//! relaxed atomic load.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};

use crate::Invocation;

/// AWS's limit of extensions per function.
pub const MAX_EXTENSIONS: usize = 10;

/// Why a `SHUTDOWN` event is sent (`shutdownReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownReason {
    /// The environment is retired (idle, or the function changed).
    Spindown,
    /// An invoke timed out.
    Timeout,
    /// The runtime or an extension failed.
    Failure,
}

impl ShutdownReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Spindown => "spindown",
            Self::Timeout => "timeout",
            Self::Failure => "failure",
        }
    }
}

/// A refusal of the Extensions API, as AWS words it (403 with `errorType`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ExtensionError {
    #[error("Empty extension name")]
    InvalidName,
    #[error("Extension registration closed already")]
    RegistrationClosed,
    #[error("Extension with this name already registered")]
    NameTaken,
    #[error("Extension limit ({MAX_EXTENSIONS}) reached")]
    TooMany,
    #[error("{0}: Invalid event type")]
    InvalidEvent(String),
    #[error("Missing Lambda-Extension-Identifier header")]
    MissingIdentifier,
    #[error("Unknown extension {0}")]
    Unknown(String),
    #[error("State transition from {from} to {to} failed for extension {id}")]
    InvalidState {
        from: &'static str,
        to: &'static str,
        id: String,
    },
    #[error("Lambda-Extension-Function-Error-Type not found")]
    MissingErrorType,
    #[error("{0}")]
    InvalidRequest(String),
}

impl ExtensionError {
    /// AWS's `errorType` for the refusal.
    pub(crate) fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidName => "Extension.InvalidExtensionName",
            Self::RegistrationClosed => "Extension.RegistrationClosed",
            Self::NameTaken | Self::InvalidState { .. } => "Extension.InvalidExtensionState",
            Self::TooMany => "Extension.TooManyExtensions",
            Self::InvalidEvent(_) => "Extension.InvalidEventType",
            Self::MissingIdentifier => "Extension.MissingExtensionIdentifier",
            Self::Unknown(_) => "Extension.UnknownExtensionIdentifier",
            Self::MissingErrorType => "Extension.MissingHeader",
            Self::InvalidRequest(_) => "InvalidRequestFormat",
        }
    }
}

/// Where an extension is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Registered, has not asked for an event yet (its init runs).
    Registered,
    /// Asked for its next event (parked in `event/next`, or will be handed one on its next call).
    Ready,
    /// Was handed an event and has not asked for the next one.
    Busy,
    /// Reported `init/error` or `exit/error`, or its process ended.
    Failed,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Registered => "Registered",
            Phase::Ready => "Ready",
            Phase::Busy => "Running",
            Phase::Failed => "Failed",
        }
    }
}

struct Extension {
    id: String,
    name: String,
    external: bool,
    invoke: bool,
    shutdown: bool,
    phase: Phase,
    waiter: Option<oneshot::Sender<Bytes>>,
    queue: VecDeque<Bytes>,
}

/// What the register response carries.
#[derive(Debug, Clone, Default)]
pub struct FunctionInfo {
    pub function_name: String,
    pub function_version: String,
    pub handler: String,
    pub account_id: String,
}

/// An extension's failure during Init, as the invoke reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionFailure {
    /// `Extension.Crash`, or the type the extension posted to `init/error`/`exit/error`.
    pub error_type: String,
    /// The extension's name.
    pub name: String,
    /// How it ended (`exit status 1`), for a crash.
    pub detail: String,
}

/// A registered extension as the platform logs it (`EXTENSION Name: ... State: ... Events: [...]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionSummary {
    pub name: String,
    pub state: &'static str,
    pub events: Vec<&'static str>,
}

#[derive(Default)]
struct State {
    list: Vec<Extension>,
    /// Executables of `/opt/extensions` the launcher starts, by name.
    expected: Vec<String>,
    /// The runtime began (the launcher was released): no external extension may register later.
    closed: bool,
    /// The runtime asked for its first event: registration is over.
    runtime_ready: bool,
    /// `SHUTDOWN` was sent: an extension ending now does what it was asked.
    shutting_down: bool,
    failure: Option<ExtensionFailure>,
}

pub(crate) struct Extensions {
    state: Mutex<State>,
    /// Bumped on every change the engine may wait for.
    changed: watch::Sender<u64>,
    /// Whether any extension subscribed to `INVOKE`: the one check on the invoke path.
    any_invoke: AtomicBool,
    info: Mutex<FunctionInfo>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Extensions {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            changed: watch::channel(0).0,
            any_invoke: AtomicBool::new(false),
            info: Mutex::new(FunctionInfo::default()),
        }
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub(crate) fn set_function(&self, info: FunctionInfo) {
        *self.info.lock() = info;
    }

    pub(crate) fn function(&self) -> FunctionInfo {
        self.info.lock().clone()
    }

    /// The external extensions the environment starts (their executables' names).
    pub(crate) fn expect(&self, names: Vec<String>) {
        self.state.lock().expected = names;
        self.bump();
    }

    pub(crate) fn register(&self, name: &str, events: &[String]) -> Result<String, ExtensionError> {
        if name.is_empty() {
            return Err(ExtensionError::InvalidName);
        }
        let mut invoke = false;
        let mut shutdown = false;
        let external = {
            let st = self.state.lock();
            st.expected.iter().any(|n| n == name)
        };
        for e in events {
            match e.as_str() {
                "INVOKE" => invoke = true,
                // Internal extensions (in the runtime's process) cannot outlive it.
                "SHUTDOWN" if external => shutdown = true,
                other => return Err(ExtensionError::InvalidEvent(other.to_string())),
            }
        }
        let id = uuid::Uuid::new_v4().to_string();
        {
            let mut st = self.state.lock();
            if st.runtime_ready || (!external && st.failure.is_some()) {
                return Err(ExtensionError::RegistrationClosed);
            }
            if st.list.iter().any(|e| e.name == name) {
                return Err(ExtensionError::NameTaken);
            }
            if st.list.len() >= MAX_EXTENSIONS {
                return Err(ExtensionError::TooMany);
            }
            st.list.push(Extension {
                id: id.clone(),
                name: name.to_string(),
                external,
                invoke,
                shutdown,
                phase: Phase::Registered,
                waiter: None,
                queue: VecDeque::new(),
            });
        }
        if invoke {
            self.any_invoke.store(true, Ordering::Release);
        }
        self.bump();
        Ok(id)
    }

    /// `event/next`: the extension's next event now, or a channel for it.
    pub(crate) fn next(&self, id: &str) -> Result<NextEvent, ExtensionError> {
        let mut st = self.state.lock();
        let Some(ext) = st.list.iter_mut().find(|e| e.id == id) else {
            return Err(ExtensionError::Unknown(id.to_string()));
        };
        if ext.phase == Phase::Failed {
            return Err(ExtensionError::InvalidState {
                from: ext.phase.name(),
                to: "Ready",
                id: id.to_string(),
            });
        }
        let out = match ext.queue.pop_front() {
            Some(event) => {
                ext.phase = Phase::Busy;
                NextEvent::Now(event)
            }
            None => {
                ext.phase = Phase::Ready;
                let (tx, rx) = oneshot::channel();
                ext.waiter = Some(tx);
                NextEvent::Wait(rx)
            }
        };
        drop(st);
        self.bump();
        Ok(out)
    }

    /// `init/error` and `exit/error`.
    pub(crate) fn error(&self, id: &str, error_type: String) -> Result<(), ExtensionError> {
        let mut st = self.state.lock();
        let Some(ext) = st.list.iter_mut().find(|e| e.id == id) else {
            return Err(ExtensionError::Unknown(id.to_string()));
        };
        ext.phase = Phase::Failed;
        ext.waiter = None;
        let name = ext.name.clone();
        if st.failure.is_none() {
            st.failure = Some(ExtensionFailure {
                error_type,
                name,
                detail: String::new(),
            });
        }
        drop(st);
        self.bump();
        Ok(())
    }

    /// The launcher saw an external extension's process end (`code`: its exit status, or
    /// 128 + signal as a shell reports it).
    pub(crate) fn exited(&self, name: &str, code: i32) {
        let mut st = self.state.lock();
        let detail = if code > 128 {
            format!("signal: {}", code - 128)
        } else {
            format!("exit status {code}")
        };
        let mut failed = !st.shutting_down;
        if let Some(ext) = st.list.iter_mut().find(|e| e.name == name) {
            failed &= ext.phase != Phase::Failed;
            ext.phase = Phase::Failed;
            ext.waiter = None;
        }
        if failed && st.failure.is_none() {
            st.failure = Some(ExtensionFailure {
                error_type: "Extension.Crash".into(),
                name: name.to_string(),
                detail,
            });
        }
        drop(st);
        self.bump();
    }

    /// Marks the runtime's first `/next`: registration closes.
    pub(crate) fn runtime_ready(&self) {
        self.state.lock().runtime_ready = true;
        self.bump();
    }

    /// Whether Init is over on the extensions' side: every expected external extension
    /// registered, and every extension asked for its first event. `Err` on a failure.
    fn init_state(st: &State) -> Result<bool, ExtensionFailure> {
        if let Some(f) = &st.failure {
            return Err(f.clone());
        }
        let all_registered = st
            .expected
            .iter()
            .all(|n| st.list.iter().any(|e| &e.name == n));
        Ok(all_registered && st.list.iter().all(|e| e.phase != Phase::Registered))
    }

    /// Waits until every expected external extension has registered (the runtime may start),
    /// or one failed.
    pub(crate) async fn registered(&self) {
        let mut rx = self.changed.subscribe();
        loop {
            {
                let st = self.state.lock();
                let done = st.failure.is_some()
                    || st
                        .expected
                        .iter()
                        .all(|n| st.list.iter().any(|e| &e.name == n));
                if done {
                    drop(st);
                    self.state.lock().closed = true;
                    return;
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Whether the extensions' Init is over (a failure counts as over).
    pub(crate) fn is_initialized(&self) -> bool {
        !matches!(Self::init_state(&self.state.lock()), Ok(false))
    }

    pub(crate) fn failure(&self) -> Option<ExtensionFailure> {
        self.state.lock().failure.clone()
    }

    /// Hands `INVOKE` to every subscriber (cheap no-op without any).
    pub(crate) fn invoke(&self, inv: &Invocation) {
        if !self.any_invoke.load(Ordering::Acquire) {
            return;
        }
        let event = serde_json::json!({
            "eventType": "INVOKE",
            "deadlineMs": inv.deadline_ms,
            "requestId": inv.request_id,
            "invokedFunctionArn": inv.invoked_function_arn,
            "tracing": { "type": "X-Amzn-Trace-Id", "value": inv.trace_id },
        });
        let event = Bytes::from(event.to_string());
        let mut st = self.state.lock();
        for ext in st
            .list
            .iter_mut()
            .filter(|e| e.invoke && e.phase != Phase::Failed)
        {
            Self::hand(ext, event.clone());
        }
        drop(st);
        self.bump();
    }

    fn hand(ext: &mut Extension, event: Bytes) {
        let event = match ext.waiter.take() {
            Some(w) => match w.send(event) {
                Ok(()) => {
                    ext.phase = Phase::Busy;
                    return;
                }
                Err(back) => back,
            },
            None => event,
        };
        ext.queue.push_back(event);
        ext.phase = Phase::Busy;
    }

    /// Whether some extension subscribed to `INVOKE` (an invoke then has a post-runtime phase).
    pub(crate) fn has_invoke_subscribers(&self) -> bool {
        self.any_invoke.load(Ordering::Acquire)
    }

    /// Waits until no extension is busy with an event (or failed).
    pub(crate) async fn idle(&self) {
        let mut rx = self.changed.subscribe();
        loop {
            let busy = self
                .state
                .lock()
                .list
                .iter()
                .any(|e| e.phase == Phase::Busy);
            if !busy {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Sends `SHUTDOWN` to every subscriber; returns whether there was any, and whether all
    /// the subscribers are external (AWS's deadline is shorter when none is).
    pub(crate) fn shutdown(&self, reason: ShutdownReason, deadline_ms_from_now: u64) -> bool {
        let event = serde_json::json!({
            "eventType": "SHUTDOWN",
            "deadlineMs": now_ms() + deadline_ms_from_now,
            "shutdownReason": reason.as_str(),
        });
        let event = Bytes::from(event.to_string());
        let mut st = self.state.lock();
        st.shutting_down = true;
        let mut any = false;
        for ext in st
            .list
            .iter_mut()
            .filter(|e| e.shutdown && e.phase != Phase::Failed)
        {
            any = true;
            Self::hand(ext, event.clone());
        }
        drop(st);
        self.bump();
        any
    }

    /// Whether any external extension registered (it then gets `SHUTDOWN`).
    pub(crate) fn has_external(&self) -> bool {
        self.state.lock().list.iter().any(|e| e.external)
    }

    /// The registered extensions, for the platform's `EXTENSION` lines.
    pub(crate) fn summary(&self) -> Vec<ExtensionSummary> {
        self.state
            .lock()
            .list
            .iter()
            .map(|e| {
                let mut events = Vec::new();
                if e.invoke {
                    events.push("INVOKE");
                }
                if e.shutdown {
                    events.push("SHUTDOWN");
                }
                ExtensionSummary {
                    name: e.name.clone(),
                    state: if e.phase == Phase::Failed {
                        "Failed"
                    } else {
                        "Ready"
                    },
                    events,
                }
            })
            .collect()
    }

    /// The name of a registered extension, by identifier.
    pub(crate) fn name_of(&self, id: &str) -> Option<String> {
        self.state
            .lock()
            .list
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.name.clone())
    }

    /// The environment is gone: every parked `event/next` ends.
    pub(crate) fn close(&self) {
        let mut st = self.state.lock();
        for e in &mut st.list {
            e.waiter = None;
        }
        drop(st);
        self.bump();
    }
}

pub(crate) enum NextEvent {
    Now(Bytes),
    Wait(oneshot::Receiver<Bytes>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Payload;

    fn invocation() -> Invocation {
        Invocation {
            request_id: "r1".into(),
            deadline_ms: 42,
            invoked_function_arn: "arn:x".into(),
            trace_id: "Root=1-a".into(),
            client_context: None,
            cognito_identity: None,
            payload: Payload::default(),
        }
    }

    #[tokio::test]
    async fn init_ends_when_every_expected_extension_asked_for_its_first_event() {
        let x = Extensions::new();
        x.expect(vec!["a".into()]);
        assert!(!x.is_initialized());
        let id = x.register("a", &["INVOKE".into()]).unwrap_or_default();
        assert!(!x.is_initialized());
        let _wait = x.next(&id);
        assert!(x.is_initialized());
    }

    #[tokio::test]
    async fn an_invoke_keeps_the_subscriber_busy_until_its_next_call() -> Result<(), ExtensionError>
    {
        let x = Extensions::new();
        let id = x.register("a", &["INVOKE".into()])?;
        let NextEvent::Wait(rx) = x.next(&id)? else {
            panic!("nothing to hand yet")
        };
        x.invoke(&invocation());
        let event: serde_json::Value =
            serde_json::from_slice(&rx.await.unwrap_or_default()).unwrap_or_default();
        assert_eq!(event["eventType"], "INVOKE");
        assert_eq!(event["requestId"], "r1");
        assert_eq!(event["deadlineMs"], 42);
        assert_eq!(event["tracing"]["type"], "X-Amzn-Trace-Id");
        let idle = x.idle();
        tokio::pin!(idle);
        assert!(futures_poll(&mut idle).is_none(), "still busy");
        let _ = x.next(&id)?;
        assert!(futures_poll(&mut idle).is_some());
        Ok(())
    }

    fn futures_poll<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match std::pin::Pin::new(f).poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }

    #[test]
    fn registration_refusals_are_awss() {
        let x = Extensions::new();
        assert_eq!(x.register("", &[]), Err(ExtensionError::InvalidName));
        assert!(x.register("a", &[]).is_ok());
        assert_eq!(x.register("a", &[]), Err(ExtensionError::NameTaken));
        assert_eq!(
            x.register("b", &["SHUTDOWN".into()])
                .map_err(|e| e.error_type()),
            Err("Extension.InvalidEventType"),
            "an internal extension cannot subscribe to SHUTDOWN"
        );
        for i in 1..MAX_EXTENSIONS {
            assert!(x.register(&format!("e{i}"), &[]).is_ok());
        }
        assert_eq!(x.register("eleventh", &[]), Err(ExtensionError::TooMany));
        x.runtime_ready();
        let y = Extensions::new();
        y.runtime_ready();
        assert_eq!(
            y.register("late", &[]),
            Err(ExtensionError::RegistrationClosed)
        );
    }

    #[test]
    fn a_crash_before_shutdown_is_an_extension_crash() {
        let x = Extensions::new();
        x.expect(vec!["a".into()]);
        let _ = x.register("a", &["SHUTDOWN".into()]);
        x.exited("a", 1);
        let f = x.failure();
        assert_eq!(
            f.as_ref().map(|f| f.error_type.as_str()),
            Some("Extension.Crash")
        );
        assert_eq!(f.map(|f| f.detail), Some("exit status 1".into()));
    }
}
