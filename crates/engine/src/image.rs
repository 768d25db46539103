//! Container image functions (`PackageType: Image`): the process an image runs — its entry point
//! and command (already overridden by the function's `ImageConfig`), found in the image's own
//! root filesystem, with the image's environment — as a `Launch` like a runtime's.

use std::path::{Path, PathBuf};

use flint_runtimes::Launch;
use flint_spec::ImageSpec;

/// Docker's default `PATH` when an image sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to exec for `image`: `ENTRYPOINT + CMD`, the program looked up on the image's `PATH`.
pub(crate) fn launch(image: &ImageSpec) -> Result<Launch, String> {
    let mut argv = image.entrypoint.iter().chain(&image.command);
    let Some(program) = argv.next() else {
        return Err("the image has neither an entry point nor a command".into());
    };
    let path = image
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
    let program = find_program(&image.rootfs, program, path)
        .ok_or_else(|| format!("{program}: no such file in the image"))?;
    Ok(Launch {
        program,
        args: argv.cloned().collect(),
        env: image.env.clone(),
        ro_binds: Vec::new(),
        ro_mounts: Vec::new(),
    })
}

/// Where the image has bash (what starts external extensions), as a path inside it.
pub(crate) fn bash(image: &ImageSpec) -> Option<PathBuf> {
    ["usr/bin/bash", "bin/bash"]
        .into_iter()
        .find(|p| {
            // The last component may be a symlink inside the image; only its presence counts.
            image.rootfs.join(p).symlink_metadata().is_ok()
        })
        .map(|p| Path::new("/").join(p))
}

/// The working directory inside the image: its `WorkingDir`, or `/`.
pub(crate) fn working_dir(image: &ImageSpec) -> &str {
    if image.working_dir.is_empty() {
        "/"
    } else {
        &image.working_dir
    }
}

/// `program` as the image's shell would find it: a path as it is, a bare name on `PATH`.
fn find_program(rootfs: &Path, program: &str, path: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    path.split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| Path::new(d).join(program))
        .find(|p| {
            // Symlinks (e.g. /bin -> usr/bin) are the image's: test the path without the host's.
            let inside = rootfs.join(p.strip_prefix("/").unwrap_or(p));
            std::fs::symlink_metadata(&inside).is_ok()
                || inside
                    .parent()
                    .and_then(|d| std::fs::canonicalize(d).ok())
                    .is_some_and(|d| d.starts_with(rootfs) && d.join(program).exists())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rootfs: &Path, entrypoint: &[&str], command: &[&str]) -> ImageSpec {
        ImageSpec {
            rootfs: rootfs.to_path_buf(),
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            command: command.iter().map(|s| s.to_string()).collect(),
            working_dir: String::new(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        }
    }

    #[test]
    fn entrypoint_and_command_make_the_argv() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("bin")).unwrap();
        std::fs::write(root.path().join("bin/sh"), "").unwrap();
        let l = launch(&spec(root.path(), &["sh", "-c"], &["echo hi"])).unwrap();
        assert_eq!(l.program, PathBuf::from("/bin/sh"));
        assert_eq!(l.args, vec!["-c", "echo hi"]);
        let l = launch(&spec(root.path(), &[], &["/lambda-entrypoint.sh", "h"])).unwrap();
        assert_eq!(l.program, PathBuf::from("/lambda-entrypoint.sh"));
        assert!(launch(&spec(root.path(), &[], &[])).is_err());
        assert!(launch(&spec(root.path(), &["missing"], &[])).is_err());
    }
}
