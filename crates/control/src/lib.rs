//! The control plane: functions, versions, aliases, layers, policies, tags, concurrency settings,
//! event-invoke configs, URL configs, code-signing configs and event source mappings — validated,
//! persistent (every change durable before it is acknowledged) and consistent (RevisionId guards).
//!
//! CONTRACT with the api crate (keep stable):
//! - `ControlPlane::execute(scope, operation, input)`: `operation` is the API model's operation name
//!   (`CreateFunction`, `GetFunction`, ...); `input` is a JSON object keyed by the model's input
//!   member names (URI, query-string, header and body members merged, already validated against the
//!   model's min/max/pattern/enum/required constraints by the api crate; blobs such as
//!   `Code.ZipFile` are still base64 strings). The result is a JSON object keyed by the model's
//!   output member names; the api crate places header-bound members in headers and the rest in the
//!   body. Unknown operations → `LambdaError` UnknownOperationException.
//! - `ControlPlane::resolve_invoke(scope, function_name, qualifier)`: the hot path for Invoke; no
//!   disk access, returns the snapshot the engine runs and the ARN the caller invoked.

pub mod error;

pub use error::{ErrorCode, LambdaError};

/// Who is asking: every resource lives in one (account, region) and is invisible to others.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    pub account: String,
    pub region: String,
}

use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("store: {0}")]
    Store(#[from] flint_store::StoreError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// PLACEHOLDER signatures (the control plane's owner replaces the bodies).
pub struct ControlPlane {}

impl ControlPlane {
    pub fn open(
        _data_dir: &std::path::Path,
        _store: Arc<flint_store::Store>,
        _runtimes: Arc<flint_runtimes::RuntimeRegistry>,
        _engine: Arc<flint_engine::Engine>,
    ) -> Result<Arc<Self>, OpenError> {
        todo!("placeholder")
    }
    pub async fn execute(
        &self,
        _scope: &Scope,
        _operation: &str,
        _input: serde_json::Value,
    ) -> Result<serde_json::Value, LambdaError> {
        todo!("placeholder")
    }
    /// Returns the snapshot to run and the ARN the caller invoked (qualified if they qualified).
    pub fn resolve_invoke(
        &self,
        _scope: &Scope,
        _function_name: &str,
        _qualifier: Option<&str>,
    ) -> Result<(Arc<flint_engine::FunctionSpec>, String), LambdaError> {
        todo!("placeholder")
    }
}
