//! Where everything lives under the data dir. Every crate and the CLI take paths from here; no
//! other code joins names onto the data dir.
//!
//! ```text
//! <data dir>/
//!   flint.db, flint.db-wal     the store (documents)
//!   flint.lock                 held by the `flint serve` using this data dir
//!   blobs/<sha256>             code and layer zips, by digest
//!   code/<sha256>/             functions' unpacked code (mounted at /var/task)
//!   layers/code/<sha256>/      layers' unpacked contents (merged at /opt)
//!   sandbox/                   the sandboxes' own state (the /tmp volume, prepared sandboxes)
//!   work/envs/<id>/            one execution environment's scratch space
//!   work/layers/               merged layer trees shared by environments (+ `<key>.sources`)
//!   work/runtime/              the managed runtimes' bootstraps
//!   work/logs/<account>/<region>/<function>/<stream>.log    function logs
//! ```

use std::path::{Path, PathBuf};

/// The data dir's layout. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn database(&self) -> PathBuf {
        self.root.join("flint.db")
    }

    pub fn lock_file(&self) -> PathBuf {
        self.root.join("flint.lock")
    }

    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// Root of the functions' unpacked code.
    pub fn code(&self) -> PathBuf {
        self.root.join("code")
    }

    /// Root of the layers' unpacked contents.
    pub fn layer_code(&self) -> PathBuf {
        self.root.join("layers").join("code")
    }

    pub fn sandbox(&self) -> PathBuf {
        self.root.join("sandbox")
    }

    /// Scratch space, rebuilt as needed (nothing in it outlives a restart but the logs).
    pub fn work(&self) -> PathBuf {
        self.root.join("work")
    }

    pub fn environments(&self) -> PathBuf {
        self.work().join("envs")
    }

    /// Container images (`PackageType: Image`): blobs by digest and unpacked root filesystems.
    pub fn images(&self) -> PathBuf {
        self.root.join("images")
    }

    pub fn merged_layers(&self) -> PathBuf {
        self.work().join("layers")
    }

    pub fn runtime_bootstraps(&self) -> PathBuf {
        self.work().join("runtime")
    }

    pub fn logs(&self) -> PathBuf {
        self.work().join("logs")
    }

    /// One function's log streams.
    pub fn function_logs(&self, account: &str, region: &str, function: &str) -> PathBuf {
        self.logs().join(account).join(region).join(function)
    }

    /// Every function's X-Ray segments: `<traces>/<account>/<region>/<function>/`.
    pub fn traces(&self) -> PathBuf {
        self.work().join("traces")
    }

    /// One function's X-Ray segments (JSON lines): its own and those its code sent.
    pub fn function_traces(&self, account: &str, region: &str, function: &str) -> PathBuf {
        self.traces()
            .join(account)
            .join(region)
            .join(function)
            .join("segments.jsonl")
    }
}
