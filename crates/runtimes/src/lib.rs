//! Lambda runtime identifiers mapped to what runs them on this machine, and the managed runtimes'
//! bootstraps (Python, Node.js, Ruby, Java) that Flint ships inside its binary.
//!
//! CONTRACT (used by control and engine; keep these signatures stable):
//! - `RuntimeRegistry::discover()` finds interpreters on this machine (exact version first, then the
//!   nearest of the same language, with a warning) for every runtime id Flint supports.
//! - `RuntimeRegistry::resolve(id)` tells how to start an environment of that runtime.
//! - `RuntimeRegistry::install_bootstraps(dir)` writes the embedded bootstrap sources into `dir`,
//!   which the engine mounts read-only at `/var/runtime` (LAMBDA_RUNTIME_DIR), and byte-compiles
//!   the Python runtime there for each Python interpreter in use (≈40 ms each, only when missing).
//!
//! The bootstraps (`python/bootstrap.py`, which runs `python/flint_runtime_bootstrap.py`, and
//! `node/index.mjs`, `ruby/bootstrap.rb`, the Java client `java/src` that build.rs compiles and
//! `java/bootstrap.sh` starts) honour `LAMBDA_TASK_ROOT` and `LAMBDA_RUNTIME_DIR`, defaulting to /var/task
//! and /var/runtime, and need `_HANDLER` and `AWS_LAMBDA_RUNTIME_API` plus the usual
//! `AWS_LAMBDA_FUNCTION_*` variables from the engine. `scripts/coldprobe.py` times their start-up.

use std::path::PathBuf;

mod bootstrap;
mod discovery;
mod install;
mod registry;
mod runtime_id;

pub use bootstrap::{JAVA_LAUNCHER, NODE_BOOTSTRAP, PYTHON_BOOTSTRAP, RUBY_BOOTSTRAP, RUNTIME_DIR};
pub use install::{InstallError, Installed, RuntimesDir, NODE_SDK_PACKAGES, PYTHON_SDK_PACKAGES};
pub use registry::RuntimeRegistry;

/// The language family of a runtime id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Python,
    Node,
    Ruby,
    Java,
    /// `provided`, `provided.al2`, `provided.al2023`: the zip's (or a layer's) `bootstrap` runs.
    Provided,
}

/// How to start the runtime process of one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// Program path as seen inside the sandbox (host paths are bind-mounted at the same place).
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Runtime-specific environment (`AWS_EXECUTION_ENV`, `PYTHONPATH`, `NODE_PATH`, ...).
    pub env: Vec<(String, String)>,
    /// Host directories that must be visible read-only at the same path inside the sandbox.
    pub ro_binds: Vec<PathBuf>,
    /// Host directories mounted read-only at another path inside (host, sandbox): the AWS SDKs.
    pub ro_mounts: Vec<(PathBuf, PathBuf)>,
}

impl Launch {
    /// Runs the launch through a wrapper script, as Lambda does for managed runtimes when the
    /// function sets `AWS_LAMBDA_EXEC_WRAPPER`: the wrapper gets the original command as its
    /// arguments (`wrapper program args...`).
    pub fn with_exec_wrapper(mut self, wrapper: impl Into<PathBuf>) -> Self {
        let original = std::mem::replace(&mut self.program, wrapper.into());
        self.args.insert(0, original.to_string_lossy().into_owned());
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The id is not one Flint knows how to run.
    #[error("unsupported runtime {0}")]
    Unsupported(String),
    /// Known, but no interpreter for it was found on this machine.
    #[error("no interpreter for runtime {0} on this machine")]
    Unavailable(String),
    /// A `provided*` function with no `bootstrap` in its code nor in its layers (Lambda reports
    /// this at invoke as `Runtime.InvalidEntrypoint`, with this message after "RequestId: ... Error: ").
    #[error("Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]")]
    MissingBootstrap,
}

impl RuntimeError {
    /// The function error type Lambda reports in the invoke payload when this stops an
    /// environment from starting; None when it is an API-level error (InvalidRuntimeException).
    pub fn function_error_type(&self) -> Option<&'static str> {
        match self {
            Self::MissingBootstrap => Some("Runtime.InvalidEntrypoint"),
            Self::Unsupported(_) | Self::Unavailable(_) => None,
        }
    }
}

/// One line of `flint runtimes`.
#[derive(Debug, Clone)]
pub struct RuntimeMapping {
    pub id: String,
    pub family: Family,
    /// The interpreter found (None for `provided.*`, or when none was found).
    pub interpreter: Option<PathBuf>,
    pub interpreter_version: Option<String>,
    /// False when the nearest version of the same language stands in.
    pub exact: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_wrapper_receives_the_original_command() {
        let launch = Launch {
            program: PathBuf::from("/usr/bin/python3.11"),
            args: vec!["/var/runtime/python/bootstrap.py".into()],
            env: vec![],
            ro_binds: vec![],
            ro_mounts: vec![],
        }
        .with_exec_wrapper("/var/task/wrapper");
        assert_eq!(launch.program, PathBuf::from("/var/task/wrapper"));
        assert_eq!(
            launch.args,
            vec![
                "/usr/bin/python3.11".to_string(),
                "/var/runtime/python/bootstrap.py".to_string()
            ]
        );
    }
}
