//! Lambda runtime identifiers mapped to what runs them on this machine, and the managed runtimes'
//! bootstraps (Python, Node.js) that Flint ships inside its binary.
//!
//! CONTRACT (used by control and engine; keep these signatures stable):
//! - `RuntimeRegistry::discover()` finds interpreters on this machine (exact version first, then the
//!   nearest of the same language, with a warning) for every runtime id Flint supports.
//! - `RuntimeRegistry::resolve(id)` tells how to start an environment of that runtime.
//! - `RuntimeRegistry::install_bootstraps(dir)` writes the embedded bootstrap sources into `dir`,
//!   which the engine mounts read-only at `/var/runtime` (LAMBDA_RUNTIME_DIR).

use std::path::PathBuf;

/// The language family of a runtime id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Python,
    Node,
    /// `provided`, `provided.al2`, `provided.al2023`: the zip's (or a layer's) `bootstrap` runs.
    Provided,
}

/// How to start the runtime process of one environment.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Program path as seen inside the sandbox (host paths are bind-mounted at the same place).
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Runtime-specific environment (`AWS_EXECUTION_ENV`, `PYTHONPATH`, `NODE_PATH`, ...).
    pub env: Vec<(String, String)>,
    /// Host directories that must be visible read-only at the same path inside the sandbox.
    pub ro_binds: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The id is not one Flint knows how to run.
    #[error("unsupported runtime {0}")]
    Unsupported(String),
    /// Known, but no interpreter for it was found on this machine.
    #[error("no interpreter for runtime {0} on this machine")]
    Unavailable(String),
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

/// PLACEHOLDER signatures (the runtimes' owner replaces the bodies).
pub struct RuntimeRegistry {}

impl RuntimeRegistry {
    pub fn discover() -> Self {
        todo!("placeholder")
    }
    /// How to start an environment of runtime `id`. `code_dir` and `opt_dir` are the host
    /// directories that will be mounted at /var/task and /opt (to find a `bootstrap`).
    pub fn resolve(
        &self,
        _id: &str,
        _code_dir: &std::path::Path,
        _opt_dir: Option<&std::path::Path>,
    ) -> Result<Launch, RuntimeError> {
        todo!("placeholder")
    }
    pub fn list(&self) -> Vec<RuntimeMapping> {
        todo!("placeholder")
    }
    /// Writes the embedded bootstraps (python/, node/) into `dir` (mounted at /var/runtime).
    pub fn install_bootstraps(&self, _dir: &std::path::Path) -> std::io::Result<()> {
        todo!("placeholder")
    }
}
