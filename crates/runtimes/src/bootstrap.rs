//! The managed runtimes' bootstraps (Python, Node.js, Ruby, and the Java runtime client's classes
//! compiled by build.rs), embedded in the binary and written out to
//! the directory the engine mounts at `/var/runtime` (LAMBDA_RUNTIME_DIR) in every sandbox, with
//! the Python runtime byte-compiled there for each interpreter (the mount is read-only, so a
//! sandbox could never cache it). Idempotent: only changed files are rewritten or recompiled.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where the engine mounts the installed bootstraps inside the sandbox.
pub const RUNTIME_DIR: &str = "/var/runtime";
/// The Python bootstrap as seen inside the sandbox.
pub const PYTHON_BOOTSTRAP: &str = "/var/runtime/python/bootstrap.py";
/// The Node.js bootstrap as seen inside the sandbox.
pub const NODE_BOOTSTRAP: &str = "/var/runtime/node/index.mjs";
/// The Ruby bootstrap as seen inside the sandbox.
pub const RUBY_BOOTSTRAP: &str = "/var/runtime/ruby/bootstrap.rb";
/// The Java launcher (a shell script: JVM flags from the memory size) as seen inside the sandbox.
pub const JAVA_LAUNCHER: &str = "/var/runtime/java/bootstrap.sh";

/// AWS's nodejs18.x sets `NODE_EXTRA_CA_CERTS` to this file of the runtime dir (recorded).
pub(crate) const NODE_EXTRA_CA_CERTS_FILE: &str = "ca-cert.pem";
/// The host's CA bundle (Debian's), copied to `NODE_EXTRA_CA_CERTS_FILE`.
const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The Python runtime proper, imported by `python/bootstrap.py`: the file that gets bytecode.
pub(crate) const PYTHON_MODULE: &str = "python/flint_runtime_bootstrap.py";

/// (path relative to the runtime dir, content).
pub(crate) const SOURCES: &[(&str, &[u8])] = &[
    (
        "python/bootstrap.py",
        include_bytes!("../python/bootstrap.py"),
    ),
    (
        PYTHON_MODULE,
        include_bytes!("../python/flint_runtime_bootstrap.py"),
    ),
    ("node/index.mjs", include_bytes!("../node/index.mjs")),
    (
        "node/preinit/warm.js",
        include_bytes!("../node/preinit/warm.js"),
    ),
    (
        "node/preinit/warm_esm.mjs",
        include_bytes!("../node/preinit/warm_esm.mjs"),
    ),
    ("ruby/bootstrap.rb", include_bytes!("../ruby/bootstrap.rb")),
    ("java/bootstrap.sh", include_bytes!("../java/bootstrap.sh")),
];

/// The Java runtime client's class files (`java/classes/...`), compiled from java/src by
/// build.rs; empty when flint was built without a javac.
pub(crate) const JAVA_CLASSES: &[(&str, &[u8])] =
    include!(concat!(env!("OUT_DIR"), "/java_classes.rs"));

/// Whether this binary carries the Java runtime client (it was built with a javac).
pub(crate) fn java_client_built() -> bool {
    !JAVA_CLASSES.is_empty()
}

/// Every embedded file.
pub(crate) fn files() -> impl Iterator<Item = &'static (&'static str, &'static [u8])> {
    SOURCES.iter().chain(JAVA_CLASSES.iter())
}

/// Byte-compiles the file named by argv[1] next to it (`__pycache__/<name>.<cache tag>.pyc`).
/// CHECKED_HASH: the interpreter checks the pyc against the source's hash, not its mtime, so a
/// pyc that does not match the source is never used, whatever the clocks or mounts say.
const PRECOMPILE_SCRIPT: &str = "import py_compile, sys
py_compile.compile(sys.argv[1], doraise=True, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
";

/// How long one interpreter may take to byte-compile the runtime (≈40 ms normally).
const PRECOMPILE_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes every embedded file under `dir`, leaving files that already hold the same bytes alone
/// (so running sandboxes never see a half-written file, and restarts cost no writes). Returns
/// the relative paths it (re)wrote.
pub(crate) fn install(dir: &Path) -> std::io::Result<Vec<&'static str>> {
    let mut written = Vec::new();
    // nodejs18.x's NODE_EXTRA_CA_CERTS file: AWS's holds Amazon's RDS CAs; here the host's
    // roots (the bundle the sandbox's /etc has), or nothing -- always present, so that Node
    // never warns that it cannot load it.
    let node_ca = std::fs::read(HOST_CA_BUNDLE).unwrap_or_default();
    let ca = std::iter::once((NODE_EXTRA_CA_CERTS_FILE, node_ca.as_slice()));
    for (relative, content) in files().map(|&(r, c)| (r, c)).chain(ca) {
        let target = dir.join(relative);
        if std::fs::read(&target).is_ok_and(|existing| existing == content) {
            continue;
        }
        written.push(relative);
        let parent = target.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)?;
        // Write beside the target and rename over it: readers see the old or the new file whole.
        let mut tmp = tempfile_in(parent, relative)?;
        tmp.1.write_all(content)?;
        tmp.1.sync_all()?;
        drop(tmp.1);
        set_mode(&tmp.0, 0o644)?;
        std::fs::rename(&tmp.0, &target)?;
    }
    Ok(written)
}

/// A Python interpreter to byte-compile the runtime with, and the pyc name it uses.
pub(crate) struct PythonCompiler<'a> {
    pub program: &'a Path,
    /// (major, minor): CPython names its bytecode `<module>.cpython-<major><minor>.pyc`.
    pub version: (u32, u32),
}

/// Where CPython `version` looks for the bytecode of the Python runtime module under `dir`.
pub(crate) fn python_cache_path(dir: &Path, version: (u32, u32)) -> PathBuf {
    let module = dir.join(PYTHON_MODULE);
    let stem = module
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = module.parent().unwrap_or(dir);
    parent
        .join("__pycache__")
        .join(format!("{stem}.cpython-{}{}.pyc", version.0, version.1))
}

/// Byte-compiles the Python runtime module with each interpreter whose bytecode is missing, or
/// with all of them when the module was just rewritten. Without bytecode the runtime still works
/// (Python compiles it at every start, ~5 ms), so a failure is logged, not returned.
pub(crate) fn precompile_python(dir: &Path, compilers: &[PythonCompiler<'_>], rewritten: bool) {
    let module = dir.join(PYTHON_MODULE);
    for compiler in compilers {
        if !rewritten && python_cache_path(dir, compiler.version).is_file() {
            continue;
        }
        if let Err(reason) = run_precompile(compiler.program, &module) {
            tracing::warn!(
                interpreter = %compiler.program.display(),
                %reason,
                "could not byte-compile the Python runtime: its cold starts compile it instead"
            );
        }
    }
}

fn run_precompile(program: &Path, module: &Path) -> Result<(), String> {
    // -I: no PYTHON* variables, user site or cwd on the path can change what compiles the file.
    let mut child = Command::new(program)
        .arg("-I")
        .arg("-c")
        .arg(PRECOMPILE_SCRIPT)
        .arg(module)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    use std::io::Read;
                    let _ = pipe.read_to_string(&mut err);
                }
                let last = err.lines().last().unwrap_or("").to_string();
                return Err(format!("{status}: {last}"));
            }
            Err(e) => return Err(e.to_string()),
            Ok(None) if started.elapsed() > PRECOMPILE_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {PRECOMPILE_TIMEOUT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
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
        let written = install(tmp.path()).expect("install");
        assert_eq!(written.len(), files().count() + 1);
        assert!(tmp.path().join(NODE_EXTRA_CA_CERTS_FILE).is_file());
        let stub = std::fs::read_to_string(tmp.path().join("python/bootstrap.py")).expect("py");
        let py = std::fs::read_to_string(tmp.path().join(PYTHON_MODULE)).expect("module");
        let js = std::fs::read_to_string(tmp.path().join("node/index.mjs")).expect("js");
        assert!(stub.contains("from flint_runtime_bootstrap import main"));
        assert!(py.contains("/2018-06-01/runtime"));
        assert!(js.contains("/2018-06-01/runtime"));
        // The modules a pre-initialised node loads before the function is known (warmUp).
        for (warm, handler) in [
            ("node/preinit/warm.js", "'warm.handler'"),
            ("node/preinit/warm_esm.mjs", "'warm_esm.handler'"),
        ] {
            let text = std::fs::read_to_string(tmp.path().join(warm)).expect("warm module");
            assert!(text.contains("handler"), "{warm}");
            assert!(js.contains(handler), "{handler}");
        }
        let rb = std::fs::read_to_string(tmp.path().join("ruby/bootstrap.rb")).expect("rb");
        assert!(rb.contains("/2018-06-01/runtime"));
        if java_client_built() {
            assert!(tmp
                .path()
                .join("java/classes/flint/lambda/Main.class")
                .is_file());
            assert!(tmp
                .path()
                .join("java/classes/com/amazonaws/services/lambda/runtime/Context.class")
                .is_file());
        }
        assert!(install(tmp.path()).expect("again").is_empty());
    }

    /// CPython 3.11 as Debian installs it, if this machine has it (the tests skip otherwise).
    fn system_python() -> Option<PythonCompiler<'static>> {
        let program = Path::new("/usr/bin/python3.11");
        program.exists().then_some(PythonCompiler {
            program,
            version: (3, 11),
        })
    }

    #[test]
    fn precompile_writes_bytecode_the_interpreter_then_loads() {
        let Some(python) = system_python() else {
            return;
        };
        let tmp = tempfile::tempdir().expect("tempdir");
        install(tmp.path()).expect("install");
        precompile_python(tmp.path(), std::slice::from_ref(&python), true);
        let pyc = python_cache_path(tmp.path(), (3, 11));
        assert!(pyc.is_file(), "no bytecode at {}", pyc.display());
        // -v names the file each module's code comes from.
        let out = Command::new(python.program)
            .args(["-v", "-c", "import flint_runtime_bootstrap"])
            .env("PYTHONPATH", tmp.path().join("python"))
            .output()
            .expect("run python");
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{log}");
        assert!(
            log.contains(&format!("code object from '{}'", pyc.display())),
            "the runtime was not loaded from its bytecode: {log}"
        );
    }

    #[test]
    fn precompile_skips_existing_bytecode_unless_the_module_was_rewritten() {
        let Some(python) = system_python() else {
            return;
        };
        let tmp = tempfile::tempdir().expect("tempdir");
        install(tmp.path()).expect("install");
        let pyc = python_cache_path(tmp.path(), (3, 11));
        std::fs::create_dir_all(pyc.parent().expect("parent")).expect("mkdir");
        std::fs::write(&pyc, b"placeholder").expect("write");
        precompile_python(tmp.path(), std::slice::from_ref(&python), false);
        assert_eq!(std::fs::read(&pyc).expect("read"), b"placeholder");
        precompile_python(tmp.path(), std::slice::from_ref(&python), true);
        let header = std::fs::read(&pyc).expect("read");
        // A PEP 552 header: magic, then flags 0b11 (hash-based, checked against the source).
        assert!(
            header.len() > 16 && header[4..8] == [3, 0, 0, 0],
            "{header:?}"
        );
    }

    #[test]
    fn precompile_failure_leaves_the_runtime_usable_without_bytecode() {
        let tmp = tempfile::tempdir().expect("tempdir");
        install(tmp.path()).expect("install");
        let missing = PythonCompiler {
            program: Path::new("/nonexistent/python3.99"),
            version: (3, 99),
        };
        precompile_python(tmp.path(), &[missing], true);
        assert!(!python_cache_path(tmp.path(), (3, 99)).exists());
        assert!(tmp.path().join(PYTHON_MODULE).is_file());
    }

    #[test]
    fn python_cache_path_follows_cpythons_naming() {
        assert_eq!(
            python_cache_path(Path::new("/rt"), (3, 12)),
            PathBuf::from("/rt/python/__pycache__/flint_runtime_bootstrap.cpython-312.pyc")
        );
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
        let node = SOURCES
            .iter()
            .find(|(p, _)| *p == "node/index.mjs")
            .expect("node file");
        assert_eq!(repaired.as_bytes(), node.1);
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("node"))
            .expect("ls")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
