//! CloudWatch Logs and X-Ray over what Flint keeps of its functions. Logs: the filter pattern language ([`FilterPattern`]),
//! the engine's log streams as stored in the data dir ([`LogStore`]), and the CloudWatch Logs API
//! operations Flint answers ([`execute`]; [`LiveTail`] for `StartLiveTail`). No HTTP here:
//! crates/api routes `Logs_20140328.*` requests to [`execute`] and renders [`LogsError`] as CloudWatch does.
//! Traces: the X-Ray API's GetTraceSummaries and BatchGetTraces over the functions' kept
//! segments ([`TraceStore`], [`xray_execute`]), for requests crates/api routes by their SigV4
//! scope `xray`.
#![forbid(unsafe_code)]

pub mod emf;
mod live_tail;
mod operations;
mod pattern;
mod store;
mod traces;

pub use live_tail::{LiveTail, MAX_EVENTS_PER_UPDATE};
pub use operations::{execute, ErrorCode, LogsError, SUPPORTED};
pub use pattern::{FilterPattern, PatternError};
pub use store::{Event, LogStore, Stream};
pub use traces::{xray_execute, TraceStore, XrayError, XrayErrorCode, XRAY_SUPPORTED};
