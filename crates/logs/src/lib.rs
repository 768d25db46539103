//! CloudWatch Logs over Flint's function logs: the filter pattern language ([`FilterPattern`]),
//! the engine's log streams as stored in the data dir ([`LogStore`]), and the CloudWatch Logs API
//! operations Flint answers ([`execute`]). No HTTP here: crates/api routes `Logs_20140328.*`
//! requests to [`execute`] and renders [`LogsError`] as CloudWatch does.
#![forbid(unsafe_code)]

pub mod emf;
mod operations;
mod pattern;
mod store;

pub use operations::{execute, ErrorCode, LogsError, SUPPORTED};
pub use pattern::{FilterPattern, PatternError};
pub use store::{Event, LogStore, Stream};
