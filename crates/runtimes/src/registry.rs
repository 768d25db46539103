//! The runtime registry: every supported runtime id mapped, once at start-up, to the interpreter
//! that runs it here and to a ready-made `Launch`, so that resolving a runtime on the cold-start
//! path is a lookup and a clone.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::bootstrap::{
    self, JAVA_LAUNCHER, NODE_BOOTSTRAP, PYTHON_BOOTSTRAP, RUBY_BOOTSTRAP, RUNTIME_DIR,
};
use crate::discovery::{self, Interpreter};
use crate::install::RuntimesDir;
use crate::runtime_id::{self, RuntimeId};
use crate::{Family, Launch, RuntimeError, RuntimeMapping};

/// Flags AWS's Node.js runtimes start node with (heap sizes aside, which depend on memory), but
/// for `--expose-gc`: that V8 flag keeps node from starting off its built-in snapshot (~9 ms of
/// every cold start), so node/index.mjs sets it and `global.gc` itself before any function code
/// runs (and lists it in `process.execArgv`).
const NODE_FLAGS: &[&str] = &["--max-http-header-size=81920"];

/// Where a `provided*` function's bootstrap may be, in Lambda's order of preference.
const TASK_BOOTSTRAP: &str = "/var/task/bootstrap";
const OPT_BOOTSTRAP: &str = "/opt/bootstrap";

/// Lambda's RUBYLIB, as recorded: its first entry is AWS's runtime client gem, which Flint's
/// runtimes do not have (Flint's client is one file run by path), kept so that the variable reads
/// as on Lambda.
const RUBYLIB: &str =
    "/var/runtime/gems/aws_lambda_ric-3.1.3/lib:/var/task:/var/runtime/lib:/opt/ruby/lib";

/// Where AWS's managed runtimes keep their interpreter (`/var/lang/bin/node`).
const LANG_DIR: &str = "/var/lang";

struct Entry {
    runtime: &'static RuntimeId,
    interpreter: Option<Interpreter>,
    exact: bool,
    /// The launch of a managed runtime, built at discovery (None: provided, or no interpreter).
    launch: Option<Launch>,
    /// Set once the substitution warning for this id has been logged.
    warned: AtomicBool,
}

/// Runtime ids mapped to what runs them on this machine. Built once (`discover`), then shared.
pub struct RuntimeRegistry {
    entries: Vec<Entry>,
    /// Where `flint runtimes install` puts the AWS SDKs and Node.js versions, if Flint has one.
    installed: Option<RuntimesDir>,
}

impl RuntimeRegistry {
    /// Finds the interpreters in /usr/bin, /usr/local/bin and the PATH directories.
    pub fn discover() -> Self {
        Self::discover_in(&discovery::default_search_dirs())
    }

    /// Like `discover`, also searching the Node.js versions installed in `installed` and mounting
    /// its AWS SDKs into the managed runtimes' environments once they are installed.
    pub fn discover_with(installed: RuntimesDir) -> Self {
        let mut dirs = discovery::default_search_dirs();
        dirs.extend(installed.node_bin_dirs());
        let mut registry = Self::discover_in(&dirs);
        // A Node.js Flint installed sits at /var/lang inside, where AWS's runtimes keep theirs.
        let node_root = installed.root().join("node");
        for entry in &mut registry.entries {
            let (Some(i), Some(launch)) = (&entry.interpreter, &mut entry.launch) else {
                continue;
            };
            if i.prefix.starts_with(&node_root) {
                if let Ok(relative) = i.path.strip_prefix(&i.prefix) {
                    launch.program = Path::new(LANG_DIR).join(relative);
                    launch.ro_binds.clear();
                    launch.ro_mounts = vec![(i.prefix.clone(), PathBuf::from(LANG_DIR))];
                }
            }
        }
        registry.installed = Some(installed);
        registry
    }

    /// Like `discover`, searching only `dirs` (in order of preference).
    pub fn discover_in(dirs: &[PathBuf]) -> Self {
        let found = discovery::find(dirs);
        let entries = runtime_id::SUPPORTED
            .iter()
            .map(|runtime| {
                let picked = match (runtime.family, runtime.version) {
                    (Family::Python, Some(want)) => discovery::pick(&found.python, want, true),
                    (Family::Node, Some(want)) => discovery::pick(&found.node, want, false),
                    (Family::Ruby, Some(want)) => discovery::pick(&found.ruby, want, true),
                    // Without the runtime client's classes (javac was missing when flint was
                    // built) no JVM can run a Java function.
                    (Family::Java, Some(want)) if bootstrap::java_client_built() => {
                        discovery::pick(&found.java, want, false)
                    }
                    _ => None,
                };
                let (interpreter, exact) = match picked {
                    Some((i, exact)) => (Some(i.clone()), exact),
                    None => (None, false),
                };
                let launch = interpreter.as_ref().map(|i| managed_launch(runtime, i));
                tracing::debug!(
                    runtime = runtime.id,
                    interpreter = ?interpreter.as_ref().map(|i| &i.path),
                    exact,
                    "runtime mapped"
                );
                Entry {
                    runtime,
                    interpreter,
                    exact,
                    launch,
                    warned: AtomicBool::new(false),
                }
            })
            .collect();
        Self {
            entries,
            installed: None,
        }
    }

    /// The family of a supported runtime id, whether or not it can run here.
    pub fn family(id: &str) -> Option<Family> {
        runtime_id::lookup(id).map(|r| r.family)
    }

    /// Whether `id` can run here (for CreateFunction/UpdateFunctionConfiguration validation).
    pub fn check(&self, id: &str) -> Result<Family, RuntimeError> {
        let entry = self.entry(id)?;
        if entry.runtime.family != Family::Provided && entry.launch.is_none() {
            return Err(RuntimeError::Unavailable(id.to_string()));
        }
        Ok(entry.runtime.family)
    }

    /// How to start an environment of runtime `id`. `code_dir` and `opt_dir` are the host
    /// directories that will be mounted at /var/task and /opt (to find a `bootstrap`).
    pub fn resolve(
        &self,
        id: &str,
        code_dir: &Path,
        opt_dir: Option<&Path>,
    ) -> Result<Launch, RuntimeError> {
        let entry = self.entry(id)?;
        if entry.runtime.family == Family::Provided {
            return provided_launch(code_dir, opt_dir);
        }
        let launch = entry
            .launch
            .as_ref()
            .ok_or_else(|| RuntimeError::Unavailable(id.to_string()))?;
        let mut launch = launch.clone();
        if let Some(installed) = &self.installed {
            // Checked at each cold start: an install that finished since start-up is used at once.
            match entry.runtime.family {
                Family::Python => {
                    if let (Some(dir), Some((major, minor))) =
                        (installed.python_sdk_mount(), entry.runtime.version)
                    {
                        let target = format!("/var/lang/lib/python{major}.{minor}/site-packages");
                        launch.ro_mounts.push((dir, PathBuf::from(target)));
                    }
                }
                Family::Node => {
                    if let Some(dir) = installed.node_sdk_mount() {
                        let target = PathBuf::from(RUNTIME_DIR).join("node_modules");
                        launch.ro_mounts.push((dir, target));
                    }
                }
                Family::Ruby | Family::Java | Family::Provided => {}
            }
        }
        if !entry.exact && !entry.warned.swap(true, Ordering::Relaxed) {
            if let Some(i) = &entry.interpreter {
                tracing::warn!(
                    runtime = id,
                    interpreter = %i.path.display(),
                    version = %i.version_string,
                    "no exact interpreter for this runtime: the nearest version stands in"
                );
            }
        }
        Ok(launch)
    }

    /// The interpreter that stands in for `id` when it is not the exact version (`Python 3.11`,
    /// `Node.js 20.20.2`), for the warning in the function's own log.
    pub fn substitute(&self, id: &str) -> Option<String> {
        let entry = self.entry(id).ok()?;
        if entry.exact {
            return None;
        }
        let i = entry.interpreter.as_ref()?;
        Some(match entry.runtime.family {
            Family::Python => format!("Python {}", i.version_string),
            Family::Ruby => format!("Ruby {}", i.version_string),
            Family::Java => format!("Java {}", i.version_string),
            _ => format!("Node.js {}", i.version_string),
        })
    }

    /// The Python interpreters the managed runtimes use (to byte-compile installed packages for),
    /// and the `nodejsN.x` majors that have no exact Node.js here.
    pub fn install_needs(&self) -> (Vec<PathBuf>, Vec<u32>) {
        let mut pythons: Vec<PathBuf> = Vec::new();
        let mut nodes: Vec<u32> = Vec::new();
        for e in &self.entries {
            match (e.runtime.family, &e.interpreter, e.runtime.version) {
                (Family::Python, Some(i), _) if !pythons.contains(&i.path) => {
                    pythons.push(i.path.clone())
                }
                (Family::Node, _, Some((major, _))) if !e.exact && !nodes.contains(&major) => {
                    nodes.push(major)
                }
                _ => {}
            }
        }
        (pythons, nodes)
    }

    /// One line per supported runtime id, for `flint runtimes`.
    pub fn list(&self) -> Vec<RuntimeMapping> {
        self.entries
            .iter()
            .map(|e| RuntimeMapping {
                id: e.runtime.id.to_string(),
                family: e.runtime.family,
                interpreter: e.interpreter.as_ref().map(|i| i.path.clone()),
                interpreter_version: e.interpreter.as_ref().map(|i| i.version_string.clone()),
                exact: e.exact,
            })
            .collect()
    }

    /// Writes the embedded bootstraps (python/, node/) into `dir` (mounted at /var/runtime), and
    /// byte-compiles the Python runtime there with every Python interpreter a runtime id maps to
    /// (a sandbox cannot write to /var/runtime, so this is the only place its bytecode can come
    /// from). Compiling runs only for a new interpreter or a changed runtime, ≈40 ms each.
    pub fn install_bootstraps(&self, dir: &Path) -> std::io::Result<()> {
        let written = crate::bootstrap::install(dir)?;
        // Where the JavaScript SDK is mounted, as on AWS (the mount point must exist: /var/runtime
        // itself is a read-only mount of `dir`).
        std::fs::create_dir_all(dir.join("node_modules"))?;
        let mut compilers: Vec<bootstrap::PythonCompiler<'_>> = Vec::new();
        for entry in &self.entries {
            if entry.runtime.family != Family::Python || entry.launch.is_none() {
                continue;
            }
            if let Some(i) = &entry.interpreter {
                if !compilers.iter().any(|c| c.program == i.path) {
                    compilers.push(bootstrap::PythonCompiler {
                        program: &i.path,
                        version: i.version,
                    });
                }
            }
        }
        let rewritten = written.contains(&bootstrap::PYTHON_MODULE);
        bootstrap::precompile_python(dir, &compilers, rewritten);
        Ok(())
    }

    fn entry(&self, id: &str) -> Result<&Entry, RuntimeError> {
        self.entries
            .iter()
            .find(|e| e.runtime.id == id)
            .ok_or_else(|| RuntimeError::Unsupported(id.to_string()))
    }
}

/// The launch of a managed runtime: the interpreter running Flint's bootstrap, with the
/// environment Lambda gives that runtime (values as recorded from real Lambda environments).
fn managed_launch(runtime: &RuntimeId, interpreter: &Interpreter) -> Launch {
    let mut env = vec![(
        "AWS_EXECUTION_ENV".to_string(),
        format!("AWS_Lambda_{}", runtime.id),
    )];
    let args = match runtime.family {
        Family::Python => {
            // Lambda sets PYTHONPATH to the runtime dir only; the bootstrap puts /var/task and
            // the layers' /opt/python paths in front of sys.path, as Lambda's does.
            env.push(("PYTHONPATH".to_string(), RUNTIME_DIR.to_string()));
            vec![PYTHON_BOOTSTRAP.to_string()]
        }
        Family::Ruby => {
            // As Lambda's Ruby runtimes set them (recorded), with the id's Ruby version in the
            // gem paths: a layer's gems for ruby3.3 are in /opt/ruby/gems/3.3.0 whatever Ruby
            // stands in here.
            let (major, minor) = runtime.version.unwrap_or((3, 0));
            let abi = format!("{major}.{minor}.0");
            env.push(("GEM_HOME".to_string(), RUNTIME_DIR.to_string()));
            env.push((
                "GEM_PATH".to_string(),
                format!(
                    "/var/task/vendor/bundle/ruby/{abi}:/opt/ruby/gems/{abi}:{RUNTIME_DIR}:\
                     {RUNTIME_DIR}/ruby/{abi}"
                ),
            ));
            env.push(("RUBYLIB".to_string(), RUBYLIB.to_string()));
            // Lambda starts the Ruby runtime through a shell script, which leaves these (and
            // doubles the /var/lang entries of PATH and LD_LIBRARY_PATH), as recorded.
            env.push(("PWD".to_string(), "/var/task".to_string()));
            env.push(("SHLVL".to_string(), "0".to_string()));
            env.push((
                "PATH".to_string(),
                "/var/lang/bin:/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin".to_string(),
            ));
            env.push((
                "LD_LIBRARY_PATH".to_string(),
                "/var/lang/lib:/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:\
                 /var/task:/var/task/lib:/opt/lib"
                    .to_string(),
            ));
            vec![RUBY_BOOTSTRAP.to_string()]
        }
        Family::Java => {
            // The launcher script adds AWS's JVM flags (heap sizes from the function's memory)
            // and execs this JVM.
            let launch = Launch {
                program: PathBuf::from("/bin/sh"),
                args: vec![
                    JAVA_LAUNCHER.to_string(),
                    interpreter.path.to_string_lossy().into_owned(),
                ],
                env,
                ro_binds: if interpreter.path.starts_with("/usr/") {
                    Vec::new()
                } else {
                    vec![interpreter.prefix.clone()]
                },
                ro_mounts: Vec::new(),
            };
            return launch;
        }
        Family::Node | Family::Provided => {
            let major = runtime.version.map(|v| v.0).unwrap_or(0);
            if runtime.family == Family::Node && major == 18 {
                // AWS's nodejs18.x trusts its bundled CAs this way (recorded; not from 20 on).
                env.push((
                    "NODE_EXTRA_CA_CERTS".to_string(),
                    format!(
                        "{RUNTIME_DIR}/{}",
                        crate::bootstrap::NODE_EXTRA_CA_CERTS_FILE
                    ),
                ));
            }
            env.push((
                "NODE_PATH".to_string(),
                format!(
                    "/opt/nodejs/node{major}/node_modules:/opt/nodejs/node_modules:\
                     {RUNTIME_DIR}/node_modules:{RUNTIME_DIR}:/var/task"
                ),
            ));
            NODE_FLAGS
                .iter()
                .map(|f| f.to_string())
                .chain(std::iter::once(NODE_BOOTSTRAP.to_string()))
                .collect()
        }
    };
    // The sandbox binds /usr whole; an interpreter installed elsewhere needs its prefix bound.
    let ro_binds = if interpreter.path.starts_with("/usr/") {
        Vec::new()
    } else {
        vec![interpreter.prefix.clone()]
    };
    Launch {
        program: interpreter.path.clone(),
        args,
        env,
        ro_binds,
        ro_mounts: Vec::new(),
    }
}

/// `provided*`: the function's own `bootstrap`, else a layer's, as Lambda looks for them.
fn provided_launch(code_dir: &Path, opt_dir: Option<&Path>) -> Result<Launch, RuntimeError> {
    // symlink_metadata: a bootstrap that is a symlink into the sandbox's view (e.g. to
    // /var/task/bin/app) need not resolve on the host to count as present.
    let program = if code_dir.join("bootstrap").symlink_metadata().is_ok() {
        TASK_BOOTSTRAP
    } else if opt_dir.is_some_and(|d| d.join("bootstrap").symlink_metadata().is_ok()) {
        OPT_BOOTSTRAP
    } else {
        return Err(RuntimeError::MissingBootstrap);
    };
    Ok(Launch {
        program: PathBuf::from(program),
        args: Vec::new(),
        env: Vec::new(),
        ro_binds: Vec::new(),
        ro_mounts: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_elf(dir: &Path, name: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let header = std::fs::read("/proc/self/exe").expect("exe");
        let path = dir.join(name);
        std::fs::write(&path, &header[..64]).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    fn registry_with_pythons(names: &[&str]) -> (tempfile::TempDir, RuntimeRegistry) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).expect("mkdir");
        for name in names {
            fake_elf(&bin, name);
        }
        let registry = RuntimeRegistry::discover_in(&[bin]);
        (tmp, registry)
    }

    #[test]
    fn resolve_rejects_unknown_runtimes_as_unsupported() {
        let (_tmp, registry) = registry_with_pythons(&[]);
        let err = registry
            .resolve("dotnet8", Path::new("/nonexistent"), None)
            .expect_err("unsupported");
        assert!(matches!(err, RuntimeError::Unsupported(id) if id == "dotnet8"));
    }

    #[test]
    fn resolve_reports_a_known_runtime_without_interpreter_as_unavailable() {
        let (_tmp, registry) = registry_with_pythons(&[]);
        let err = registry
            .resolve("python3.12", Path::new("/nonexistent"), None)
            .expect_err("unavailable");
        assert!(matches!(err, RuntimeError::Unavailable(_)));
        assert!(matches!(
            registry.check("python3.12"),
            Err(RuntimeError::Unavailable(_))
        ));
    }

    #[test]
    fn resolve_python_runs_the_bootstrap_with_lambdas_environment() {
        let (tmp, registry) = registry_with_pythons(&["python3.12"]);
        let launch = registry
            .resolve("python3.12", Path::new("/nonexistent"), None)
            .expect("resolve");
        let canonical = std::fs::canonicalize(tmp.path().join("bin/python3.12")).expect("c");
        assert_eq!(launch.program, canonical);
        assert_eq!(
            launch.args,
            vec!["/var/runtime/python/bootstrap.py".to_string()]
        );
        assert!(launch
            .env
            .contains(&("AWS_EXECUTION_ENV".into(), "AWS_Lambda_python3.12".into())));
        assert!(launch
            .env
            .contains(&("PYTHONPATH".into(), "/var/runtime".into())));
        // Installed outside /usr: the sandbox must bind its prefix.
        assert_eq!(
            launch.ro_binds,
            vec![canonical
                .parent()
                .and_then(Path::parent)
                .expect("p")
                .to_path_buf()]
        );
    }

    #[test]
    fn nearest_python_stands_in_and_list_says_so() {
        let (_tmp, registry) = registry_with_pythons(&["python3.11"]);
        let launch = registry
            .resolve("python3.13", Path::new("/nonexistent"), None)
            .expect("nearest");
        assert!(launch.program.ends_with("python3.11"));
        // The execution env still names the runtime the function asked for.
        assert!(launch
            .env
            .contains(&("AWS_EXECUTION_ENV".into(), "AWS_Lambda_python3.13".into())));
        let list = registry.list();
        assert_eq!(list.len(), runtime_id::SUPPORTED.len());
        let m311 = list.iter().find(|m| m.id == "python3.11").expect("3.11");
        let m313 = list.iter().find(|m| m.id == "python3.13").expect("3.13");
        assert!(m311.exact);
        assert!(!m313.exact);
        assert_eq!(m313.interpreter_version.as_deref(), Some("3.11"));
    }

    #[test]
    fn provided_prefers_the_functions_bootstrap_over_a_layers() {
        let (_tmp, registry) = registry_with_pythons(&[]);
        let code = tempfile::tempdir().expect("code");
        let opt = tempfile::tempdir().expect("opt");
        std::fs::write(opt.path().join("bootstrap"), "#!/bin/sh\n").expect("write");
        let launch = registry
            .resolve("provided.al2023", code.path(), Some(opt.path()))
            .expect("layer bootstrap");
        assert_eq!(launch.program, PathBuf::from("/opt/bootstrap"));
        assert!(
            launch.env.is_empty(),
            "provided runtimes get no AWS_EXECUTION_ENV"
        );

        std::fs::write(code.path().join("bootstrap"), "#!/bin/sh\n").expect("write");
        let launch = registry
            .resolve("provided.al2", code.path(), Some(opt.path()))
            .expect("own bootstrap");
        assert_eq!(launch.program, PathBuf::from("/var/task/bootstrap"));
    }

    #[test]
    fn provided_without_any_bootstrap_is_an_invalid_entrypoint() {
        let (_tmp, registry) = registry_with_pythons(&[]);
        let code = tempfile::tempdir().expect("code");
        let err = registry
            .resolve("provided", code.path(), None)
            .expect_err("missing");
        assert!(matches!(err, RuntimeError::MissingBootstrap));
        assert_eq!(err.function_error_type(), Some("Runtime.InvalidEntrypoint"));
        assert_eq!(
            err.to_string(),
            "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]"
        );
    }

    #[test]
    fn install_bootstraps_precompiles_for_the_mapped_pythons_only() {
        // A fake (non-Python) python3.12 cannot compile: install still succeeds, without bytecode.
        let (_tmp, registry) = registry_with_pythons(&["python3.12"]);
        let dir = tempfile::tempdir().expect("runtime dir");
        registry.install_bootstraps(dir.path()).expect("install");
        assert!(dir.path().join("python/bootstrap.py").is_file());
        assert!(!bootstrap::python_cache_path(dir.path(), (3, 12)).exists());

        if Path::new("/usr/bin/python3.11").exists() {
            let registry = RuntimeRegistry::discover_in(&[PathBuf::from("/usr/bin")]);
            registry.install_bootstraps(dir.path()).expect("install");
            assert!(bootstrap::python_cache_path(dir.path(), (3, 11)).is_file());
        }
    }

    #[test]
    fn coldprobe_launches_runtimes_with_the_registrys_flags() {
        // scripts/coldprobe.py mirrors managed_launch; a flag added here must be added there.
        let probe = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/coldprobe.py"
        ))
        .expect("read scripts/coldprobe.py");
        let quoted: Vec<String> = NODE_FLAGS.iter().map(|f| format!("{f:?}")).collect();
        assert!(probe.contains(&format!("NODE_FLAGS = [{}]", quoted.join(", "))));
        let interpreter = Interpreter {
            path: PathBuf::from("/usr/bin/python3.12"),
            version: (3, 12),
            version_string: "3.12".into(),
            prefix: PathBuf::from("/usr"),
        };
        let python = runtime_id::lookup("python3.12").expect("python3.12");
        assert_eq!(
            managed_launch(python, &interpreter).args,
            vec![PYTHON_BOOTSTRAP.to_string()]
        );
        assert!(probe.contains("PYTHON_FLAGS = []"));
    }

    #[test]
    fn discover_on_this_machine_maps_python_3_11_and_node_exactly() {
        // The machine Flint is developed on has Debian's python3.11 and a node 20; skip quietly
        // elsewhere rather than fail.
        let registry = RuntimeRegistry::discover();
        let list = registry.list();
        if Path::new("/usr/bin/python3.11").exists() {
            let m = list.iter().find(|m| m.id == "python3.11").expect("listed");
            assert_eq!(
                m.interpreter.as_deref(),
                Some(Path::new("/usr/bin/python3.11"))
            );
            assert!(m.exact);
        }
        if Path::new("/usr/bin/node").exists() {
            let launch = registry
                .resolve("nodejs20.x", Path::new("/nonexistent"), None)
                .expect("node");
            assert_eq!(launch.args.last().map(String::as_str), Some(NODE_BOOTSTRAP));
            assert!(launch.env.iter().any(|(k, v)| k == "NODE_PATH"
                && v == "/opt/nodejs/node20/node_modules:/opt/nodejs/node_modules:/var/runtime/node_modules:/var/runtime:/var/task"));
            assert!(launch.ro_binds.is_empty());
        }
    }

    #[test]
    fn only_nodejs18_gets_awss_node_extra_ca_certs() {
        let registry = RuntimeRegistry::discover();
        if !Path::new("/usr/bin/node").exists() {
            return;
        }
        let extra_ca = |id: &str| {
            let launch = registry
                .resolve(id, Path::new("/nonexistent"), None)
                .expect("node");
            launch
                .env
                .iter()
                .find(|(k, _)| k == "NODE_EXTRA_CA_CERTS")
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            extra_ca("nodejs18.x").as_deref(),
            Some("/var/runtime/ca-cert.pem")
        );
        assert_eq!(extra_ca("nodejs20.x"), None);
        assert_eq!(extra_ca("nodejs22.x"), None);
    }

    #[test]
    fn ruby_runs_the_bootstrap_with_lambdas_gem_paths_and_names_its_stand_in() {
        let (_tmp, registry) = registry_with_pythons(&["ruby3.1"]);
        let launch = registry
            .resolve("ruby3.3", Path::new("/nonexistent"), None)
            .expect("ruby3.3 runs on the stand-in");
        assert!(launch.program.ends_with("ruby3.1"));
        assert_eq!(launch.args, vec![RUBY_BOOTSTRAP.to_string()]);
        let env = |name: &str| {
            launch
                .env
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            env("AWS_EXECUTION_ENV").as_deref(),
            Some("AWS_Lambda_ruby3.3")
        );
        assert_eq!(env("GEM_HOME").as_deref(), Some("/var/runtime"));
        assert_eq!(
            env("GEM_PATH").as_deref(),
            Some(
                "/var/task/vendor/bundle/ruby/3.3.0:/opt/ruby/gems/3.3.0:/var/runtime:\
                 /var/runtime/ruby/3.3.0"
            )
        );
        assert_eq!(
            env("RUBYLIB").as_deref(),
            Some("/var/runtime/gems/aws_lambda_ric-3.1.3/lib:/var/task:/var/runtime/lib:/opt/ruby/lib")
        );
        assert_eq!(env("SHLVL").as_deref(), Some("0"));
        assert_eq!(registry.substitute("ruby3.3").as_deref(), Some("Ruby 3.1"));
        assert!(registry.check("ruby3.4").is_ok());
    }

    #[test]
    fn java_runs_the_launcher_with_the_nearest_jvm() {
        if !bootstrap::java_client_built() {
            return; // built without javac: the Java runtimes are unavailable by design
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let bin = tmp.path().join("bin");
        let home = tmp.path().join("lib/jvm/java-17-openjdk-amd64");
        std::fs::create_dir_all(&bin).expect("mkdir");
        std::fs::create_dir_all(home.join("bin")).expect("mkdir");
        std::fs::write(home.join("release"), "JAVA_VERSION=\"17.0.15\"\n").expect("write");
        let java = fake_elf(&home.join("bin"), "java");
        let registry = RuntimeRegistry::discover_in(&[bin]);
        let launch = registry
            .resolve("java21", Path::new("/nonexistent"), None)
            .expect("java21 runs on the stand-in");
        assert_eq!(launch.program, PathBuf::from("/bin/sh"));
        let java = std::fs::canonicalize(java).expect("canonical");
        assert_eq!(
            launch.args,
            vec![
                JAVA_LAUNCHER.to_string(),
                java.to_string_lossy().into_owned()
            ]
        );
        // Outside /usr: the Java home is bound into the sandbox.
        assert_eq!(
            launch.ro_binds,
            vec![std::fs::canonicalize(&home).expect("canonical")]
        );
        assert!(launch.env.contains(&(
            "AWS_EXECUTION_ENV".to_string(),
            "AWS_Lambda_java21".to_string()
        )));
        assert_eq!(
            registry.substitute("java21").as_deref(),
            Some("Java 17.0.15")
        );
        assert_eq!(registry.substitute("java17"), None);
    }
}
