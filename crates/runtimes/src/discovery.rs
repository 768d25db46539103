//! Finding the language interpreters installed on this machine: `pythonX.Y` and `node` executables
//! in /usr/bin, /usr/local/bin and the PATH directories, and picking, for a runtime id, the exact
//! version or else the nearest one of the same language.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One interpreter found on the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interpreter {
    /// Canonical path of the executable (symlinks resolved): this is what the sandbox runs.
    pub path: PathBuf,
    /// (major, minor) for Python, (major, minor) for Node.
    pub version: (u32, u32),
    /// As shown to users: `3.11` for Python (from the file name), `20.20.2` for Node.
    pub version_string: String,
    /// The install prefix (the parent of the `bin` directory holding the executable).
    pub prefix: PathBuf,
}

/// Everything discovery found, newest version first within each language.
#[derive(Debug, Clone, Default)]
pub(crate) struct Found {
    pub python: Vec<Interpreter>,
    pub node: Vec<Interpreter>,
    pub ruby: Vec<Interpreter>,
    /// JDKs and JREs: `path` is their `bin/java`, `prefix` the Java home.
    pub java: Vec<Interpreter>,
}

/// Where Debian (and most distributions) install Java runtimes under a prefix (`/usr/lib/jvm`),
/// one Java home per directory.
const JVM_DIR_IN_PREFIX: &str = "lib/jvm";

/// How long `node --version` may take before that node is ignored (discovery runs at server
/// start and must not hang it).
const VERSION_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The directories searched, in order of preference: system directories first because the
/// sandbox binds /usr as a whole, while other places (e.g. under a 0700 home) may not be reachable.
pub(crate) fn default_search_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path).filter(|d| d.is_absolute()));
    }
    dirs
}

/// Scans `dirs` for interpreters. Duplicates (the same file reached through symlinks or the
/// usr-merge `/bin` → `/usr/bin`) are kept once, at their first, preferred, place.
pub(crate) fn find(dirs: &[PathBuf]) -> Found {
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut found = Found::default();
    let mut nodes: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut pythons: Vec<(PathBuf, (u32, u32))> = Vec::new();
        let mut rubies: Vec<(PathBuf, (u32, u32))> = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name == "node" {
                nodes.push(entry.path());
            } else if let Some(version) = python_version_from_name(name) {
                pythons.push((entry.path(), version));
            } else if let Some(version) = versioned_name("ruby", name) {
                rubies.push((entry.path(), version));
            }
        }
        // read_dir order is arbitrary; sort so that results do not depend on it.
        pythons.sort();
        rubies.sort();
        for (list, candidates) in [(&mut found.python, pythons), (&mut found.ruby, rubies)] {
            for (path, version) in candidates {
                if let Some(canonical) = usable_executable(&path, &mut seen) {
                    list.push(Interpreter {
                        prefix: install_prefix(&canonical),
                        path: canonical,
                        version,
                        version_string: format!("{}.{}", version.0, version.1),
                    });
                }
            }
        }
    }
    for path in nodes {
        let Some(canonical) = usable_executable(&path, &mut seen) else {
            continue;
        };
        match probe_node_version(&canonical) {
            Some((version, version_string)) => found.node.push(Interpreter {
                prefix: install_prefix(&canonical),
                path: canonical,
                version,
                version_string,
            }),
            None => {
                tracing::warn!(node = %canonical.display(), "ignoring node: `node --version` failed")
            }
        }
    }
    // Java homes live beside a bin directory: /usr/bin → /usr/lib/jvm.
    let mut jvm_dirs: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        if dir.file_name().is_some_and(|n| n == "bin") {
            let jvm = dir.parent().unwrap_or(dir).join(JVM_DIR_IN_PREFIX);
            if let Ok(jvm) = std::fs::canonicalize(jvm) {
                if !jvm_dirs.contains(&jvm) {
                    jvm_dirs.push(jvm);
                }
            }
        }
    }
    for jvm in jvm_dirs {
        let homes = find_java_homes(&jvm, &mut seen);
        found.java.extend(homes);
    }
    // Stable sort: for equal versions the earlier (preferred) directory stays first.
    found.python.sort_by_key(|i| std::cmp::Reverse(i.version));
    found.node.sort_by_key(|i| std::cmp::Reverse(i.version));
    found.ruby.sort_by_key(|i| std::cmp::Reverse(i.version));
    found.java.sort_by_key(|i| std::cmp::Reverse(i.version));
    found
}

/// The Java homes under `jvm_dir` (`/usr/lib/jvm/java-17-openjdk-amd64`), each known by the
/// `JAVA_VERSION` of its `release` file: reading it costs nothing, unlike `java -version`
/// (~60 ms). Symlinked aliases of one home (`default-java`) are kept once.
pub(crate) fn find_java_homes(jvm_dir: &Path, seen: &mut Vec<PathBuf>) -> Vec<Interpreter> {
    let Ok(entries) = std::fs::read_dir(jvm_dir) else {
        return Vec::new();
    };
    let mut homes: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    homes.sort();
    let mut found = Vec::new();
    for home in homes {
        let Ok(home) = std::fs::canonicalize(&home) else {
            continue;
        };
        let Ok(release) = std::fs::read_to_string(home.join("release")) else {
            continue;
        };
        let Some((version, version_string)) = parse_java_release(&release) else {
            continue;
        };
        if let Some(java) = usable_executable(&home.join("bin").join("java"), seen) {
            found.push(Interpreter {
                path: java,
                version,
                version_string,
                prefix: home,
            });
        }
    }
    found
}

/// `JAVA_VERSION="17.0.15"` → ((17, 0), "17.0.15"); `"1.8.0_412"` → ((8, 0), "1.8.0_412").
pub(crate) fn parse_java_release(release: &str) -> Option<((u32, u32), String)> {
    let value = release
        .lines()
        .find_map(|l| l.strip_prefix("JAVA_VERSION="))?
        .trim()
        .trim_matches('"');
    let mut parts = value.split(['.', '_', '+', '-']);
    let mut major: u32 = parts.next()?.parse().ok()?;
    if major == 1 {
        major = parts.next()?.parse().ok()?;
    }
    Some(((major, 0), value.to_string()))
}

/// `ruby3.1` → (3, 1) for prefix `ruby`; anything else (`ruby`, `ruby3.1-dbg`) → None.
pub(crate) fn versioned_name(prefix: &str, name: &str) -> Option<(u32, u32)> {
    let rest = name.strip_prefix(prefix)?;
    let (major, minor) = rest.split_once('.')?;
    if major.is_empty()
        || minor.is_empty()
        || !major.bytes().all(|b| b.is_ascii_digit())
        || !minor.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// `python3.12` → (3, 12). Anything else (`python3`, `python3.12-config`, `python3.12m`) → None.
pub(crate) fn python_version_from_name(name: &str) -> Option<(u32, u32)> {
    versioned_name("python", name)
}

/// `v20.20.2\n` → ((20, 20), "20.20.2").
pub(crate) fn parse_node_version(output: &str) -> Option<((u32, u32), String)> {
    let v = output.trim().strip_prefix('v')?;
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some(((major, minor), v.to_string()))
}

/// The canonical path of `path` if it is an executable ELF file not seen before. Scripts are
/// skipped on purpose: version-manager shims (pyenv, nodenv) are shell scripts that need the
/// manager's whole tree, which a sandbox does not have.
fn usable_executable(path: &Path, seen: &mut Vec<PathBuf>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let canonical = std::fs::canonicalize(path).ok()?;
    if seen.contains(&canonical) {
        return None;
    }
    let meta = std::fs::metadata(&canonical).ok()?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return None;
    }
    let mut magic = [0u8; 4];
    std::fs::File::open(&canonical)
        .ok()?
        .read_exact(&mut magic)
        .ok()?;
    seen.push(canonical.clone());
    (magic == *b"\x7fELF").then_some(canonical)
}

/// `/opt/node-v22/bin/node` → `/opt/node-v22`; an executable not in a `bin` dir → its own dir.
fn install_prefix(executable: &Path) -> PathBuf {
    let dir = executable.parent().unwrap_or(Path::new("/"));
    match dir.file_name() {
        Some(name) if name == "bin" => dir.parent().unwrap_or(dir).to_path_buf(),
        _ => dir.to_path_buf(),
    }
}

/// Runs `node --version` (≈40 ms, once per distinct node at discovery), with a time limit.
fn probe_node_version(node: &Path) -> Option<((u32, u32), String)> {
    let mut child = Command::new(node)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) if started.elapsed() > VERSION_PROBE_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    let mut out = String::new();
    child.stdout.take()?.read_to_string(&mut out).ok()?;
    parse_node_version(&out)
}

/// The interpreter for `want`: the exact (major, minor) for Python / major for Node if present,
/// else the nearest of the same major line (ties go to the newer one, which usually runs code
/// written for an older version). Returns the choice and whether it is exact.
pub(crate) fn pick(
    candidates: &[Interpreter],
    want: (u32, u32),
    match_minor: bool,
) -> Option<(&Interpreter, bool)> {
    let key = |i: &Interpreter| {
        if match_minor {
            i.version
        } else {
            (i.version.0, 0)
        }
    };
    if let Some(exact) = candidates.iter().find(|i| key(i) == want) {
        return Some((exact, true));
    }
    // Distance within the same major for Python (3.x); across majors for Node.
    let distance = |i: &Interpreter| -> Option<u32> {
        let k = key(i);
        if match_minor {
            (k.0 == want.0).then(|| k.1.abs_diff(want.1))
        } else {
            Some(k.0.abs_diff(want.0))
        }
    };
    // candidates are sorted newest first, so min_by_key's first-minimum is the newer on ties.
    candidates
        .iter()
        .filter_map(|i| distance(i).map(|d| (d, i)))
        .min_by_key(|(d, _)| *d)
        .map(|(_, i)| (i, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interp(path: &str, version: (u32, u32)) -> Interpreter {
        Interpreter {
            path: PathBuf::from(path),
            version,
            version_string: format!("{}.{}", version.0, version.1),
            prefix: PathBuf::from("/usr"),
        }
    }

    #[test]
    fn python_version_from_name_accepts_only_versioned_executables() {
        assert_eq!(python_version_from_name("python3.11"), Some((3, 11)));
        assert_eq!(python_version_from_name("python3.8"), Some((3, 8)));
        assert_eq!(python_version_from_name("python3"), None);
        assert_eq!(python_version_from_name("python3.11-config"), None);
        assert_eq!(python_version_from_name("python3.11m"), None);
        assert_eq!(python_version_from_name("python-argcomplete"), None);
    }

    #[test]
    fn ruby_names_and_java_release_files_give_versions() {
        assert_eq!(versioned_name("ruby", "ruby3.1"), Some((3, 1)));
        assert_eq!(versioned_name("ruby", "ruby"), None);
        assert_eq!(versioned_name("ruby", "ruby3.1-dbg"), None);
        assert_eq!(
            parse_java_release("IMPLEMENTOR=\"Debian\"\nJAVA_VERSION=\"17.0.15\"\n"),
            Some(((17, 0), "17.0.15".to_string()))
        );
        assert_eq!(
            parse_java_release("JAVA_VERSION=\"1.8.0_412\""),
            Some(((8, 0), "1.8.0_412".to_string()))
        );
        assert_eq!(
            parse_java_release("JAVA_VERSION=\"21\""),
            Some(((21, 0), "21".to_string()))
        );
        assert_eq!(parse_java_release("IMPLEMENTOR=x"), None);
    }

    #[test]
    fn find_java_homes_reads_release_files_and_skips_aliases() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let home = tmp.path().join("java-17-openjdk-amd64");
        std::fs::create_dir_all(home.join("bin")).expect("mkdir");
        std::fs::write(home.join("release"), "JAVA_VERSION=\"17.0.15\"\n").expect("write");
        let elf = std::fs::read("/proc/self/exe")
            .map(|b| b[..64].to_vec())
            .expect("elf header");
        let java = home.join("bin/java");
        std::fs::write(&java, elf).expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&java, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::os::unix::fs::symlink(&home, tmp.path().join("default-java")).expect("symlink");
        std::fs::create_dir(tmp.path().join("no-release")).expect("mkdir");
        let found = find_java_homes(tmp.path(), &mut Vec::new());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].version, (17, 0));
        assert_eq!(found[0].version_string, "17.0.15");
        assert_eq!(
            found[0].prefix,
            std::fs::canonicalize(&home).expect("canonical")
        );
    }

    #[test]
    fn parse_node_version_reads_node_dash_dash_version() {
        assert_eq!(
            parse_node_version("v20.20.2\n"),
            Some(((20, 20), "20.20.2".to_string()))
        );
        assert_eq!(parse_node_version("garbage"), None);
    }

    #[test]
    fn pick_prefers_the_exact_version() {
        let c = [
            interp("/a/python3.12", (3, 12)),
            interp("/a/python3.11", (3, 11)),
        ];
        let (i, exact) = pick(&c, (3, 11), true).expect("found");
        assert_eq!(i.path, PathBuf::from("/a/python3.11"));
        assert!(exact);
    }

    #[test]
    fn pick_falls_back_to_the_nearest_and_prefers_newer_on_ties() {
        let c = [
            interp("/a/python3.13", (3, 13)),
            interp("/a/python3.11", (3, 11)),
        ];
        let (i, exact) = pick(&c, (3, 12), true).expect("found");
        assert_eq!(i.path, PathBuf::from("/a/python3.13"));
        assert!(!exact);
        let (i, _) = pick(&c, (3, 8), true).expect("found");
        assert_eq!(i.path, PathBuf::from("/a/python3.11"));
    }

    #[test]
    fn pick_matches_node_by_major_only() {
        let c = [interp("/n/22", (22, 3)), interp("/n/20", (20, 20))];
        let (i, exact) = pick(&c, (20, 0), false).expect("found");
        assert_eq!(i.path, PathBuf::from("/n/20"));
        assert!(exact);
        let (i, exact) = pick(&c, (24, 0), false).expect("found");
        assert_eq!(i.path, PathBuf::from("/n/22"));
        assert!(!exact);
    }

    #[test]
    fn pick_never_crosses_python_major_versions() {
        let c = [interp("/a/python2.7", (2, 7))];
        assert!(pick(&c, (3, 12), true).is_none());
    }

    #[test]
    fn install_prefix_is_the_parent_of_bin() {
        assert_eq!(
            install_prefix(Path::new("/opt/node-v22/bin/node")),
            PathBuf::from("/opt/node-v22")
        );
        assert_eq!(
            install_prefix(Path::new("/srv/node")),
            PathBuf::from("/srv")
        );
    }

    #[test]
    fn find_skips_scripts_and_deduplicates_symlinks() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).expect("mkdir");
        // A pyenv-style shim: a script, not an interpreter.
        let shim = bin.join("python3.9");
        std::fs::write(&shim, "#!/bin/sh\nexec pyenv\n").expect("write");
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        // A real ELF reached twice.
        let elf = std::fs::read("/proc/self/exe")
            .map(|b| b[..64].to_vec())
            .expect("elf header");
        let real = bin.join("python3.10");
        std::fs::write(&real, elf).expect("write");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let other = tmp.path().join("other");
        std::fs::create_dir(&other).expect("mkdir");
        std::os::unix::fs::symlink(&real, other.join("python3.10")).expect("symlink");

        let found = find(&[bin.clone(), other]);
        let paths: Vec<_> = found.python.iter().map(|i| i.path.clone()).collect();
        let canonical = std::fs::canonicalize(&real).expect("canonical");
        assert_eq!(paths, vec![canonical]);
        assert_eq!(found.python[0].version, (3, 10));
    }
}
