//! One execution environment's isolation: namespaces (user, mount, pid, ipc, uts, optionally net),
//! a cgroup with the memory/pids/cpu limits, a minimal root filesystem (read-only /var/task, /opt,
//! /var/runtime, a private disk-backed /tmp), kill on demand and peak-memory reporting.
//!
//! CONTRACT (used by the engine; keep these signatures stable):
//! - `Sandboxes::new(state_dir)` detects what the host supports (cgroup v1/v2, user namespaces),
//!   logs once what it cannot enforce, and removes leftovers of a previous run (cgroups, mounts,
//!   processes) under its own names.
//! - `Sandboxes::spawn(spec)` starts `spec.program` inside a new sandbox and returns at once
//!   (blocking work is small: a fork/exec and a short handshake). stdout/stderr are pipes.
//! - `Sandbox::kill()` ends everything in the sandbox (SIGKILL of its PID 1 ends the pid namespace)
//!   and removes its cgroup; `Sandbox::wait()` resolves when its PID 1 is gone.
//! - `init_main()` is the entry point of the re-executed binary (`flint __sandbox-init ...`), which
//!   sets up the namespaces and mounts and then execs the program. The flint binary calls it
//!   when its first argument is `INIT_ARG`.
//!
//! How it works (details in `init.rs`): `spawn` creates the cgroup, starts `init_program
//! __sandbox-init` (a fresh single-threaded process, the *supervisor*) with the request on a
//! control socket; the supervisor clones the sandbox's PID 1 into new namespaces, joins it to the
//! cgroup and writes its uid/gid maps; PID 1 builds the root and forks the program, which drops
//! to uid 993/gid 990 with no capabilities and execs. Closing the control socket (dropping the
//! `Sandbox`, or Flint dying) ends the sandbox.
//!
//! The pool (`pool.rs`): `Sandboxes` keeps a few sandboxes prepared up to the spec (supervisor
//! exec'd, PID 1 in its namespaces, joined to a fresh cgroup, id maps written: the slow part, mostly
//! the cgroup v1 memory attach) so that `spawn` only sets the spec's limits and sends the spec.
//! Size: `FLINT_SANDBOX_POOL` (default 2, 0 = off) or `Sandboxes::set_pool_size`. A prepared
//! sandbox's cgroup is created as `pool~<n>` and renamed to the spec's id when taken (cgroup v1;
//! v2 cannot rename, so there it keeps the pool name). It also keeps, for the two most recently
//! used Python and Node runtimes, one sandbox whose interpreter already runs Flint's bootstrap and
//! waits for the function (`preinit.rs`; `FLINT_PREINIT_RUNTIMES=on|off` or
//! `Sandboxes::set_preinit_runtimes`).
//!
//! Tests of other crates: any binary linking this crate (with glibc) acts as the init when run as
//! `<exe> __sandbox-init`, so a test can pass `std::env::current_exe()` as `init_program`.
//!
//! /tmp (EphemeralStorage): run as root, Flint mounts one btrfs volume (a sparse image on a loop
//! device) and gives each sandbox a subvolume whose quota group is the size, or, without
//! mkfs.btrfs, an ext4 image of its own (from a pool kept ready), created by `spawn` and deleted
//! when the `Sandbox` is dropped; `spec.tmp_dir` is then unused. Elsewhere /tmp is
//! `spec.tmp_dir`, limited per file (RLIMIT_FSIZE). See `ephemeral_storage.rs`.

// Unsafe code is denied workspace-wide; these modules talk to the kernel where no safe wrapper
// exists (clone into namespaces, fork/exec in a single-threaded init, pidfds, open_tree and
// move_mount, loop-device ioctls, SCM_RIGHTS), so each allows it for itself. Every unsafe block
// carries a `// SAFETY:` comment (clippy::undocumented_unsafe_blocks).
mod cgroup;
#[allow(unsafe_code)]
mod ephemeral_storage;
mod etc;
mod handshake;
mod host;
#[allow(unsafe_code)]
mod init;
#[allow(unsafe_code)]
mod mounts;
#[allow(unsafe_code)]
mod netns;
mod outbound;
mod pool;
#[allow(unsafe_code)]
mod preinit;
mod seccomp;
#[allow(unsafe_code)]
mod socket_owner;
#[allow(unsafe_code)]
mod spawn;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use netns::{
    DnsSockets, NamespaceConnector, NamespaceListeners, NamespacePorts, DNS_PORT, LAMBDA_API_PORT,
    NAMESPACE_HOST, RUNTIME_API_PORT,
};
pub use outbound::FunctionSubnet;
pub use spawn::{KeptTmp, Sandbox};

/// argv[1] of the re-executed flint binary that becomes a sandbox's init.
pub const INIT_ARG: &str = "__sandbox-init";

/// What to run and with which limits.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SandboxSpec {
    /// Unique id (used for the cgroup name and the hostname suffix).
    pub id: String,
    /// Program path as seen inside the sandbox (e.g. `/var/task/bootstrap`, `/usr/bin/python3.11`).
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The complete environment of the program (nothing is inherited from Flint).
    pub env: Vec<(String, String)>,
    /// Host directory mounted read-only at /var/task (also the working directory).
    pub code_dir: PathBuf,
    /// Host directory mounted read-only at /opt (the merged layers), if any.
    pub opt_dir: Option<PathBuf>,
    /// Host directory mounted read-only at /var/runtime (Flint's managed runtime bootstraps), if any.
    pub runtime_dir: Option<PathBuf>,
    /// A container image's unpacked root filesystem: the sandbox's root (read-only) instead of
    /// Flint's minimal one; `code_dir`, `opt_dir`, `runtime_dir` and `extra_ro_binds` are then
    /// ignored (the image brings its own /var/task, /opt and runtime).
    #[serde(default)]
    pub image_root: Option<PathBuf>,
    /// Working directory inside the sandbox (None: /var/task).
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// Host paths bind-mounted read-only at the same path inside (e.g. an interpreter's prefix that
    /// lives outside /usr).
    pub extra_ro_binds: Vec<PathBuf>,
    /// Host directories mounted read-only at another absolute path inside (host, sandbox), after
    /// /var/runtime (so a mount point inside it works): the AWS SDKs of the managed runtimes.
    #[serde(default)]
    pub ro_mounts: Vec<(PathBuf, PathBuf)>,
    /// Host directory (disk-backed, created by the caller, empty) mounted read-write at /tmp when
    /// Flint has no /tmp volume of its own (see `Sandboxes::new`'s start-up log).
    pub tmp_dir: PathBuf,
    /// /tmp size in MB (EphemeralStorage.Size): for /tmp as a whole on the volume, else per file.
    pub tmp_size_mb: u32,
    /// Memory limit in MB (MemorySize); enforced by the cgroup.
    pub memory_mb: u32,
    /// Give the sandbox its own network namespace: its own loopback, and 169.254.100.1 where
    /// Flint listens for it (`Sandbox::take_listeners`); no other network.
    pub isolate_network: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The program could not be started (missing, not executable, exec failed).
    #[error("cannot start {program}: {reason}")]
    Start { program: String, reason: String },
    #[error("sandbox i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// How a sandbox's PID 1 ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The cgroup's OOM killer fired.
    pub oom_killed: bool,
}

/// The host's sandboxing capabilities and the factory of sandboxes.
pub struct Sandboxes {
    /// What every start needs (init program, isolation, cgroups, ...), shared with the pool.
    launcher: Arc<spawn::Launcher>,
    /// Sandboxes prepared ahead of their spec.
    pool: pool::Pool,
    /// Where each sandbox's /tmp comes from.
    tmp: ephemeral_storage::TmpStorage,
    summary: String,
    /// NAT and filter for isolated sandboxes' outbound access, while enabled.
    host_nat: std::sync::Mutex<Option<outbound::HostNat>>,
    /// The host ids that show as root inside (see [`Sandboxes::root_owner`]).
    root_owner: Option<(u32, u32)>,
}

impl std::fmt::Debug for Sandboxes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandboxes")
            .field("summary", &self.summary)
            .finish()
    }
}

impl Sandboxes {
    /// `init_program` is the executable re-executed as `init_program __sandbox-init` (the flint
    /// binary: `/proc/self/exe`).
    pub fn new(state_dir: &Path, init_program: PathBuf) -> Result<Self, SandboxError> {
        std::fs::create_dir_all(state_dir)?;
        let state_dir = state_dir.canonicalize()?;
        let root_mount = state_dir.join("rootfs");
        std::fs::create_dir_all(&root_mount)?;
        if !init_program.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("sandbox init program {} not found", init_program.display()),
            )
            .into());
        }
        let identity = host::Identity::current();
        let isolation = host::detect_isolation(identity.privileged);
        match &isolation {
            host::Isolation::UserNamespace => {}
            host::Isolation::RootWithoutUserNamespace => tracing::warn!(
                "user namespaces are unavailable: sandboxes are built by root and run as host uid {}",
                host::SANDBOX_UID
            ),
            host::Isolation::Unavailable(reason) => tracing::warn!(
                "{reason}: functions cannot be sandboxed and will fail to start; run Flint as root or enable user namespaces"
            ),
        }
        // One parent per data dir, so that two Flints (or parallel tests) never clean each other up.
        let cgroups = cgroup::Layout::detect(&instance_key(&state_dir));
        for problem in &cgroups.problems {
            tracing::warn!("cgroup limit not enforced: {problem}");
        }
        if cgroups.memory.is_none() {
            tracing::warn!("MemorySize is enforced only as RLIMIT_DATA (no memory cgroup): no OOM kills, no peak memory");
        }
        let started = std::time::Instant::now();
        let tmp = ephemeral_storage::TmpStorage::open(
            &state_dir.join("tmp-volume"),
            (identity.outer_uid, identity.outer_gid),
        );
        match &tmp {
            ephemeral_storage::TmpStorage::Volume(v) => tracing::info!(
                "EphemeralStorage: each /tmp is a btrfs subvolume limited by a quota group, on {} (set up in {} ms)",
                v.mount_point().display(),
                started.elapsed().as_millis()
            ),
            ephemeral_storage::TmpStorage::Images(pool) => tracing::info!(
                "EphemeralStorage: each /tmp is an ext4 image of its size on a loop device, mounted under {} (set up in {} ms)",
                pool.mount_point().display(),
                started.elapsed().as_millis()
            ),
            ephemeral_storage::TmpStorage::PerFile(reason) => tracing::warn!(
                "EphemeralStorage (/tmp size) is enforced per file (RLIMIT_FSIZE), not for /tmp as a whole: {reason}"
            ),
        }
        let removed = cgroups.remove_leftovers();
        if removed > 0 {
            tracing::info!("removed {removed} sandbox cgroup(s) left by a previous run");
        }
        // Root's inside, as on Lambda, where a user namespace maps a second id.
        let root_owner = match isolation {
            host::Isolation::UserNamespace => identity.root_standin(),
            _ => None,
        };
        let root_files = mounts::RootFiles {
            etc_dir: etc::build(&state_dir.join("etc"))?,
            files: host::write_root_files(&state_dir, root_owner)?,
            resolv_conf: mounts::RESOLV_CONF.into(),
        };
        let summary = summarize(&isolation, &cgroups, &tmp);
        let pool_size =
            match pool::size_from_env(std::env::var("FLINT_SANDBOX_POOL").ok().as_deref()) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!("{e}; keeping {} prepared sandboxes", pool::DEFAULT_SIZE);
                    pool::DEFAULT_SIZE
                }
            };
        // Nothing to prepare when sandboxes cannot be built here.
        let pool_size = if matches!(isolation, host::Isolation::Unavailable(_)) {
            0
        } else {
            pool_size
        };
        let preinit =
            match pool::preinit_from_env(std::env::var("FLINT_PREINIT_RUNTIMES").ok().as_deref()) {
                Ok(on) => on,
                Err(e) => {
                    tracing::warn!("{e}; pre-initialised runtimes stay on");
                    true
                }
            };
        let launcher = Arc::new(spawn::Launcher {
            init_program,
            root_mount,
            isolation,
            identity,
            cgroups,
            root_files,
            net: Default::default(),
        });
        Ok(Sandboxes {
            pool: pool::Pool::new(launcher.clone(), pool_size, preinit),
            launcher,
            tmp,
            summary,
            host_nat: std::sync::Mutex::new(None),
            root_owner,
        })
    }

    /// The host uid and gid that show as root inside the sandboxes — the host's nobody, when
    /// Flint is root and has user namespaces; None otherwise (then only the sandbox user is
    /// mapped, or no user namespace is used). Files Flint gives them (the functions' unpacked
    /// code and layers) are root's at `/var/task` and `/opt`, as on Lambda; they must sit under
    /// a directory only Flint's own user may enter, so that no host process running as nobody
    /// reaches them (the sandboxes open their mounts' sources as Flint's user).
    pub fn root_owner(&self) -> Option<(u32, u32)> {
        self.root_owner
    }

    pub fn spawn(&self, spec: &SandboxSpec) -> Result<Sandbox, SandboxError> {
        self.spawn_reusing_tmp(spec, None)
    }

    /// `spawn`, with `kept` (the /tmp of an earlier sandbox of the same function, see
    /// `Sandbox::take_tmp`) as its /tmp instead of a new one.
    pub fn spawn_reusing_tmp(
        &self,
        spec: &SandboxSpec,
        kept: Option<KeptTmp>,
    ) -> Result<Sandbox, SandboxError> {
        // Released (in the background) if the sandbox fails to start, or when it is dropped.
        let tmp = match kept {
            Some(KeptTmp(tmp)) => tmp,
            None => match self.tmp.create(&spec.id, spec.tmp_size_mb)? {
                Some(tmp) => tmp,
                None => return spawn::spawn(self, spec),
            },
        };
        let mut spec = spec.clone();
        spec.tmp_dir = tmp.path().to_path_buf();
        // /tmp is limited as a whole; Lambda has no per-file limit on top of that.
        spec.tmp_size_mb = 0;
        let mut sandbox = spawn::spawn(self, &spec)?;
        sandbox.tmp = Some(tmp);
        Ok(sandbox)
    }

    /// How many sandboxes are kept prepared ahead of their spec (0: the pool is off).
    pub fn pool_size(&self) -> usize {
        self.pool.size()
    }

    /// Changes the number of prepared sandboxes (0 turns the pool off and ends those waiting).
    /// Ignored on hosts where sandboxes cannot be built.
    pub fn set_pool_size(&self, size: usize) {
        if !matches!(self.launcher.isolation, host::Isolation::Unavailable(_)) {
            self.pool.set_size(size);
        }
    }

    /// Whether the pool keeps Python and Node interpreters started ahead, one for each of the two
    /// most recently used managed runtimes (see `preinit.rs`); needs the pool.
    pub fn preinit_runtimes(&self) -> bool {
        self.pool.preinit_enabled()
    }

    /// Turns pre-initialised runtimes on or off (`FLINT_PREINIT_RUNTIMES=on|off` at start).
    pub fn set_preinit_runtimes(&self, on: bool) {
        self.pool.set_preinit(on);
    }

    /// How many pre-initialised runtimes wait right now.
    pub fn preinit_ready(&self) -> usize {
        self.pool.preinit_ready()
    }

    /// Which kind of sandbox the pool prepares: with a network namespace of their own or not
    /// (the engine uses one setting for every function; a spec of the other kind still starts,
    /// from scratch).
    pub fn set_pool_network(&self, isolate_network: bool) {
        self.pool.prepare_kind(isolate_network);
    }

    /// Gives isolated sandboxes outbound access to other machines (a veth pair each, NAT on the
    /// host; see the `outbound` module) from now on. Root only, with iproute2 and nftables
    /// installed: otherwise the reason, and isolated sandboxes keep reaching nothing but Flint.
    /// Returns the nftables table it made (removed when `Sandboxes` is dropped).
    pub fn enable_outbound(&self, subnet: FunctionSubnet) -> Result<String, String> {
        if let host::Isolation::Unavailable(reason) = &self.launcher.isolation {
            return Err(reason.clone());
        }
        let mut held = self.host_nat.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(nat) = held.as_ref() {
            return Ok(nat.table().to_string());
        }
        let (nat, plan) = outbound::HostNat::enable(subnet)?;
        let table = nat.table().to_string();
        *held = Some(nat);
        let mut net = (*self.launcher.net()).clone();
        net.veth = Some(plan);
        self.launcher.set_net(net);
        self.pool.flush();
        Ok(table)
    }

    /// Whether isolated sandboxes prepared now reach other machines (see [`Self::enable_outbound`]).
    pub fn has_outbound(&self) -> bool {
        self.launcher.net().veth.is_some()
    }

    /// The file bound at `/etc/resolv.conf` in isolated sandboxes from now on (kept up to date
    /// by its writer: a change reaches running sandboxes too); `None`: the host's own.
    pub fn set_isolated_resolv_conf(&self, path: Option<PathBuf>) {
        let mut net = (*self.launcher.net()).clone();
        if net.resolv_conf == path {
            return;
        }
        net.resolv_conf = path;
        self.launcher.set_net(net);
        self.pool.flush();
    }

    /// Removes the host-wide NAT and filter of [`Self::enable_outbound`] (at shutdown, once the
    /// sandboxes have stopped: dropping `Sandboxes` does it too, but a server may exit before
    /// the last reference goes). Sandboxes prepared from now on get no outbound access.
    pub fn disable_outbound(&self) {
        let nat = self
            .host_nat
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if nat.is_some() {
            let mut net = (*self.launcher.net()).clone();
            net.veth = None;
            self.launcher.set_net(net);
            self.pool.flush();
        }
        drop(nat);
    }

    /// The sockets every isolated sandbox gets at 169.254.100.1 besides the Runtime API and
    /// Lambda API listeners (`NamespaceListeners::tcp` and `udp`), from now on.
    pub fn set_namespace_ports(&self, ports: NamespacePorts) {
        let mut net = (*self.launcher.net()).clone();
        if net.ports == ports {
            return;
        }
        net.ports = ports;
        self.launcher.set_net(net);
        self.pool.flush();
    }

    /// At shutdown, once the environments have stopped: frees what /tmp storage holds on the host
    /// (the ext4 backend's mounts, loop devices and images) without waiting for the last
    /// reference to `Sandboxes` to go. Later spawns get no volume of their own.
    pub fn release_tmp_storage(&self) {
        self.tmp.close();
    }

    /// How many prepared sandboxes are ready right now (a spawn takes one when there is one).
    pub fn pool_ready(&self) -> usize {
        self.pool.ready()
    }

    /// Whether /tmp is limited as a whole (EphemeralStorage), not just per file.
    pub fn tmp_size_is_total(&self) -> bool {
        !matches!(self.tmp, ephemeral_storage::TmpStorage::PerFile(_))
    }

    /// One line for the start-up banner: what isolation and limits are enforced here.
    pub fn summary(&self) -> String {
        self.summary.clone()
    }
}

impl Drop for Sandboxes {
    fn drop(&mut self) {
        // First the prepared sandboxes (their PID 1s hold copies of the host's mounts, the /tmp
        // volume's among them, and their cgroups sit in the instance dirs).
        self.pool.shutdown();
        // Only succeeds once every sandbox is gone (a cgroup with children cannot be removed).
        self.launcher.cgroups.remove_instance_dirs();
        // The NAT rules last: live sandboxes' pairs vanish with their namespaces.
        drop(
            self.host_nat
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
    }
}

fn summarize(
    isolation: &host::Isolation,
    cgroups: &cgroup::Layout,
    tmp: &ephemeral_storage::TmpStorage,
) -> String {
    let ns = match isolation {
        host::Isolation::UserNamespace => "user+mount+pid+ipc+uts namespaces".to_string(),
        host::Isolation::RootWithoutUserNamespace => {
            "mount+pid+ipc+uts namespaces (no user namespace)".to_string()
        }
        host::Isolation::Unavailable(r) => format!("NO sandboxing ({r})"),
    };
    let version = |p: &Option<cgroup::Place>| match p {
        Some(cgroup::Place {
            version: cgroup::Version::V1,
            ..
        }) => "v1",
        Some(cgroup::Place {
            version: cgroup::Version::V2,
            ..
        }) => "v2",
        None => "",
    };
    let mut limits = Vec::new();
    if cgroups.memory.is_some() {
        limits.push(format!("memory (cgroup {})", version(&cgroups.memory)));
    } else {
        limits.push("memory (rlimit only)".to_string());
    }
    if cgroups.pids.is_some() {
        limits.push(format!(
            "pids {} (cgroup {})",
            cgroup::PIDS_MAX,
            version(&cgroups.pids)
        ));
    }
    if cgroups.cpu.is_some() {
        limits.push(format!(
            "cpu share by memory (cgroup {})",
            version(&cgroups.cpu)
        ));
    }
    limits.push(tmp.describe().to_string());
    format!("sandboxes: {ns}; limits: {}", limits.join(", "))
}

/// A short stable name for a data dir (FNV-1a of its canonical path).
fn instance_key(state_dir: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in state_dir.as_os_str().as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Entry point of `flint __sandbox-init`.
pub fn init_main() -> ! {
    std::process::exit(init::run())
}

/// Any binary that links this crate becomes a sandbox init when started as `<exe> __sandbox-init`,
/// before its `main` runs: so test binaries with the standard harness (the engine's, ours) can
/// pass `std::env::current_exe()` as `init_program`. glibc hands argc/argv to `.init_array`
/// functions; elsewhere the binary's `main` must call `init_main()` itself (flint's does).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // a `.init_array` entry: glibc calls it with argc/argv before main
#[used]
#[link_section = ".init_array"]
static BECOME_INIT_IF_ASKED: extern "C" fn(libc::c_int, *const *const libc::c_char) =
    become_init_if_asked;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // reads the raw argv glibc hands to `.init_array` functions
extern "C" fn become_init_if_asked(argc: libc::c_int, argv: *const *const libc::c_char) {
    if argc < 2 || argv.is_null() {
        return;
    }
    // SAFETY: glibc passes the process's argv (argc entries, NUL-terminated strings).
    let first = unsafe { *argv.add(1) };
    if first.is_null() {
        return;
    }
    // SAFETY: a valid NUL-terminated C string from argv.
    if unsafe { std::ffi::CStr::from_ptr(first) }.to_bytes() == INIT_ARG.as_bytes() {
        init_main();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_key_is_stable_and_differs_per_data_dir() {
        assert_eq!(
            instance_key(Path::new("/a/.flint/sandbox")),
            instance_key(Path::new("/a/.flint/sandbox"))
        );
        assert_ne!(
            instance_key(Path::new("/a/.flint/sandbox")),
            instance_key(Path::new("/b/.flint/sandbox"))
        );
        assert_eq!(instance_key(Path::new("/x")).len(), 16);
    }

    #[test]
    fn summary_names_what_is_not_enforced() {
        let s = summarize(
            &host::Isolation::Unavailable("no userns".into()),
            &cgroup::Layout::default(),
            &ephemeral_storage::TmpStorage::PerFile("not root".into()),
        );
        assert!(s.contains("NO sandboxing"), "{s}");
        assert!(s.contains("memory (rlimit only)"), "{s}");
        assert!(s.contains("/tmp size per file"), "{s}");
    }
}
