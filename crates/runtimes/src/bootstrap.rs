//! The managed runtimes' bootstraps (Python, Node.js), embedded in the binary and written out to
//! the directory the engine mounts at `/var/runtime` (LAMBDA_RUNTIME_DIR) in every sandbox.
//! Writing is idempotent: a file is only rewritten when its content changed.

use std::io::Write;
use std::path::Path;

/// Where the engine mounts the installed bootstraps inside the sandbox.
pub const RUNTIME_DIR: &str = "/var/runtime";
/// The Python bootstrap as seen inside the sandbox.
pub const PYTHON_BOOTSTRAP: &str = "/var/runtime/python/bootstrap.py";
/// The Node.js bootstrap as seen inside the sandbox.
pub const NODE_BOOTSTRAP: &str = "/var/runtime/node/index.mjs";

/// (path relative to the runtime dir, content).
pub(crate) const FILES: &[(&str, &str)] = &[
    (
        "python/bootstrap.py",
        include_str!("../python/bootstrap.py"),
    ),
    ("node/index.mjs", include_str!("../node/index.mjs")),
];

/// Writes every embedded file under `dir`, leaving files that already hold the same bytes alone
/// (so running sandboxes never see a half-written file, and restarts cost no writes).
pub(crate) fn install(dir: &Path) -> std::io::Result<()> {
    for (relative, content) in FILES {
        let target = dir.join(relative);
        if std::fs::read(&target).is_ok_and(|existing| existing == content.as_bytes()) {
            continue;
        }
        let parent = target.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)?;
        // Write beside the target and rename over it: readers see the old or the new file whole.
        let mut tmp = tempfile_in(parent, relative)?;
        tmp.1.write_all(content.as_bytes())?;
        tmp.1.sync_all()?;
        drop(tmp.1);
        set_mode(&tmp.0, 0o644)?;
        std::fs::rename(&tmp.0, &target)?;
    }
    Ok(())
}

fn tempfile_in(dir: &Path, relative: &str) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    let name = Path::new(relative)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("bootstrap");
    // Unique per process and call, so concurrent installs never share a temporary file.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let file = std::fs::File::create(&path)?;
    Ok((path, file))
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_writes_python_and_node_bootstraps() {
        let tmp = tempfile::tempdir().expect("tempdir");
        install(tmp.path()).expect("install");
        let py = std::fs::read_to_string(tmp.path().join("python/bootstrap.py")).expect("py");
        let js = std::fs::read_to_string(tmp.path().join("node/index.mjs")).expect("js");
        assert!(py.contains("/2018-06-01/runtime"));
        assert!(js.contains("/2018-06-01/runtime"));
    }

    #[test]
    fn install_is_idempotent_and_repairs_changed_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        install(tmp.path()).expect("install");
        let target = tmp.path().join("node/index.mjs");
        let before = std::fs::metadata(&target)
            .and_then(|m| m.modified())
            .expect("mtime");
        std::thread::sleep(std::time::Duration::from_millis(20));
        install(tmp.path()).expect("install again");
        let after = std::fs::metadata(&target)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert_eq!(before, after, "unchanged content must not be rewritten");

        std::fs::write(&target, "tampered").expect("write");
        install(tmp.path()).expect("repair");
        let repaired = std::fs::read_to_string(&target).expect("read");
        assert_eq!(repaired, FILES[1].1);
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("node"))
            .expect("ls")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
