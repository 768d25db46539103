//! The sandbox's root filesystem, built by its PID 1 in its own mount namespace: a small tmpfs
//! root with read-only binds of /usr and of Flint's own /etc tree (`etc.rs`, not the host's), the
//! usr-merge symlinks, /var/task, /opt, /var/runtime, a read-write disk-backed /tmp, a fresh
//! /proc with its host-revealing files masked, a few /dev nodes; then `pivot_root`.
//!
//! Host paths are opened first (`open_tree`, as the identity that can traverse them) and attached
//! later (`move_mount`) as the builder who owns the tmpfs root (the sandbox user, or the
//! namespace's root where Flint as root maps one: `init::builder_ids`); see `init.rs` for why.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

/// `struct mount_attr` of mount_setattr(2) (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Device nodes bound from the host (mknod is refused in a user namespace).
const DEV_NODES: [&str; 5] = ["null", "zero", "random", "urandom", "full"];
/// /proc files about the host (its boot command line, kernel memory and keys, timers,
/// scheduler state) shown empty inside. The network tables (`/proc/net/*`) show the sandbox's own
/// network namespace when it has one (the default); with `--function-network host` they are the
/// host's, as everything else of its network is.
const PROC_MASKED: [&str; 9] = [
    "cmdline",
    "config.gz",
    "kcore",
    "keys",
    "latency_stats",
    "timer_list",
    "timer_stats",
    "sched_debug",
    "sysrq-trigger",
];
/// /proc directories about the host's hardware, shown empty inside (as Docker does).
const PROC_MASKED_DIRS: [&str; 3] = ["acpi", "asound", "scsi"];
/// Top-level host entries of a usr-merged system that are symlinks (or, on older hosts, dirs).
const USR_MERGE: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];
/// Paths owned by the sandbox layout; an extra bind may not land on or under them.
const RESERVED: [&str; 7] = [
    "/var/task",
    "/opt",
    "/var/runtime",
    "/tmp",
    "/proc",
    "/dev",
    "/etc",
];
/// The host's resolver configuration, bound over the `/etc` tree's empty one in each sandbox
/// (isolated sandboxes get the engine's instead: see `LaunchRequest::resolv_conf`).
pub(crate) const RESOLV_CONF: &str = "/etc/resolv.conf";

/// A host tree cloned and detached, waiting to be attached inside the new root.
pub(crate) struct Detached {
    fd: OwnedFd,
    /// Path inside the sandbox, relative (the root being built is the working directory).
    target: PathBuf,
    is_dir: bool,
}

/// What Flint provides at every zip sandbox's root, the same for all (made at start).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct RootFiles {
    /// Flint's `/etc` tree (see `etc.rs`).
    pub etc_dir: PathBuf,
    /// Host files shown read-only at a path relative to the root (`lambda-entrypoint.sh`).
    pub files: Vec<(PathBuf, String)>,
    /// Bound at `/etc/resolv.conf`: the host's [`RESOLV_CONF`], or the engine's for isolated
    /// sandboxes (see `NetSetup::resolv_conf`).
    pub resolv_conf: PathBuf,
}

/// What goes where; produced from the spec before anything is mounted.
pub(crate) enum Entry {
    /// Bind a host path (read-only unless `rw`).
    Bind {
        source: PathBuf,
        target: PathBuf,
        rw: bool,
    },
    /// A symlink in the root (usr-merge).
    Symlink { target: PathBuf, points_to: PathBuf },
    /// An empty directory (e.g. /opt without layers).
    Dir(PathBuf),
}

/// The layout of a sandbox's root; `extra` are host paths to show at the same place.
pub(crate) fn plan(
    code_dir: &Path,
    opt_dir: Option<&Path>,
    runtime_dir: Option<&Path>,
    extra: &[PathBuf],
    mounts: &[(PathBuf, PathBuf)],
    tmp_dir: &Path,
    root_files: &RootFiles,
) -> Result<Vec<Entry>, String> {
    let RootFiles {
        etc_dir,
        files: root_files,
        resolv_conf,
    } = root_files;
    let mut entries = vec![
        Entry::Bind {
            source: "/usr".into(),
            target: "usr".into(),
            rw: false,
        },
        Entry::Bind {
            source: etc_dir.to_path_buf(),
            target: "etc".into(),
            rw: false,
        },
    ];
    if resolv_conf.is_file() {
        entries.push(Entry::Bind {
            source: resolv_conf.into(),
            target: "etc/resolv.conf".into(),
            rw: false,
        });
    }
    // Amazon Linux's /bin/sh is bash (bootstraps use `set -o pipefail`, which dash refuses).
    if let (Ok(sh), true) = (
        std::fs::canonicalize("/usr/bin/sh"),
        Path::new("/usr/bin/bash").is_file(),
    ) {
        if sh.starts_with("/usr/") && !sh.ends_with("bash") {
            if let Ok(target) = sh.strip_prefix("/") {
                entries.push(Entry::Bind {
                    source: "/usr/bin/bash".into(),
                    target: target.to_path_buf(),
                    rw: false,
                });
            }
        }
    }
    for (source, name) in root_files {
        let target = Path::new(name);
        let plain = !name.is_empty()
            && target.components().all(
                |c| matches!(c, Component::Normal(n) if !n.as_encoded_bytes().starts_with(b".")),
            );
        if !plain {
            return Err(format!("invalid root file {name:?}"));
        }
        entries.push(Entry::Bind {
            source: source.clone(),
            target: target.to_path_buf(),
            rw: false,
        });
    }
    for name in USR_MERGE {
        let host = Path::new("/").join(name);
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(points_to) = std::fs::read_link(&host) {
                    entries.push(Entry::Symlink {
                        target: name.into(),
                        points_to,
                    });
                }
            }
            Ok(m) if m.is_dir() => entries.push(Entry::Bind {
                source: host,
                target: name.into(),
                rw: false,
            }),
            _ => {}
        }
    }
    entries.push(Entry::Bind {
        source: code_dir.to_path_buf(),
        target: "var/task".into(),
        rw: false,
    });
    entries.push(match opt_dir {
        Some(dir) => Entry::Bind {
            source: dir.to_path_buf(),
            target: "opt".into(),
            rw: false,
        },
        None => Entry::Dir("opt".into()),
    });
    entries.push(match runtime_dir {
        Some(dir) => Entry::Bind {
            source: dir.to_path_buf(),
            target: "var/runtime".into(),
            rw: false,
        },
        None => Entry::Dir("var/runtime".into()),
    });
    for path in extra {
        match extra_target(path)? {
            Some(target) if path.exists() => entries.push(Entry::Bind {
                source: path.clone(),
                target,
                rw: false,
            }),
            _ => {}
        }
    }
    for (source, target) in mounts {
        let clean = target.is_absolute()
            && target
                .components()
                .skip(1)
                .all(|c| matches!(c, Component::Normal(_)))
            && target.components().count() > 2;
        if !clean
            || ["/tmp", "/proc", "/dev", "/etc"]
                .iter()
                .any(|r| target.starts_with(r))
        {
            return Err(format!("mount target {} is not allowed", target.display()));
        }
        entries.push(Entry::Bind {
            source: source.clone(),
            target: target.strip_prefix("/").unwrap_or(target).to_path_buf(),
            rw: false,
        });
    }
    entries.push(tmp_bind(tmp_dir));
    Ok(entries)
}

/// The layout of a container image's sandbox: the image is the (read-only) root with its own
/// `/etc`, so only what Flint provides is bound in — `/etc/hosts` (sandbox.localdomain, from
/// Flint's `/etc` tree), the host's resolver configuration, and the read-write `/tmp`. The
/// image's unpacker made those mount points exist.
pub(crate) fn plan_image(
    tmp_dir: &Path,
    etc_dir: &Path,
    resolv_conf: &Path,
) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    for (source, target) in [
        (etc_dir.join("hosts"), "etc/hosts"),
        (resolv_conf.to_path_buf(), "etc/resolv.conf"),
    ] {
        if source.exists() {
            entries.push(Entry::Bind {
                source,
                target: target.into(),
                rw: false,
            });
        }
    }
    entries.push(tmp_bind(tmp_dir));
    Ok(entries)
}

/// Phase 1 of an image sandbox: the image's root filesystem, cloned read-only (as the identity
/// that can read the data dir).
pub(crate) fn detach_image_root(source: &Path) -> Result<OwnedFd, String> {
    let fd = open_tree(source).map_err(|e| format!("image root {}: {e}", source.display()))?;
    set_attrs(
        &fd,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
    )
    .map_err(|e| format!("read-only image root {}: {e}", source.display()))?;
    Ok(fd)
}

/// The image's root attached where the root is built, made the working directory, with a
/// tmpfs `/dev` of the sandbox user's (the device nodes and links are made in it).
pub(crate) fn attach_image_root(
    fd: &OwnedFd,
    root_mount: &Path,
    uid: u32,
    gid: u32,
) -> Result<(), String> {
    move_mount(fd, root_mount)
        .map_err(|e| format!("attach the image root at {}: {e}", root_mount.display()))?;
    std::env::set_current_dir(root_mount)
        .map_err(|e| format!("chdir {}: {e}", root_mount.display()))?;
    let data = format!("mode=0755,size=64k,nr_inodes=64,uid={uid},gid={gid}");
    mount(
        Some("tmpfs"),
        "dev",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(data.as_str()),
    )
    .map_err(|e| format!("mount /dev in the image: {e}"))
}

/// The sandbox's read-write `/tmp` (last: nothing is mounted over it).
fn tmp_bind(tmp_dir: &Path) -> Entry {
    Entry::Bind {
        source: tmp_dir.to_path_buf(),
        target: "tmp".into(),
        rw: true,
    }
}

/// Where an extra read-only bind lands (relative), or None when it is already visible (/usr).
pub(crate) fn extra_target(path: &Path) -> Result<Option<PathBuf>, String> {
    let clean = path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !clean || path == Path::new("/") {
        return Err(format!(
            "extra bind {} must be an absolute path without `..`",
            path.display()
        ));
    }
    if path.starts_with("/usr") {
        return Ok(None);
    }
    if let Some(reserved) = RESERVED
        .iter()
        .find(|r| path.starts_with(r) || Path::new(r).starts_with(path))
    {
        return Err(format!(
            "extra bind {} overlaps the sandbox's {reserved}",
            path.display()
        ));
    }
    if USR_MERGE
        .iter()
        .any(|n| path.starts_with(Path::new("/").join(n)))
    {
        return Ok(None);
    }
    Ok(Some(path.strip_prefix("/").unwrap_or(path).to_path_buf()))
}

/// Phase 1 (as the identity that can read the host paths): clone the host trees to bind.
pub(crate) fn detach_sources(entries: &[Entry]) -> Result<Vec<Detached>, String> {
    let mut out = Vec::new();
    for entry in entries {
        if let Entry::Bind { source, target, rw } = entry {
            let is_dir = std::fs::metadata(source)
                .map_err(|e| format!("{}: {e}", source.display()))?
                .is_dir();
            let fd = open_tree(source).map_err(|e| format!("bind {}: {e}", source.display()))?;
            out.push(detached_bind(fd, source, target, *rw, is_dir)?);
        }
    }
    for node in DEV_NODES {
        let source = Path::new("/dev").join(node);
        let fd = open_tree(&source).map_err(|e| format!("bind {}: {e}", source.display()))?;
        set_attrs(&fd, MOUNT_ATTR_NOSUID).map_err(|e| format!("bind {}: {e}", source.display()))?;
        out.push(Detached {
            fd,
            target: Path::new("dev").join(node),
            is_dir: false,
        });
    }
    Ok(out)
}

/// Mounts the (empty, the builder's: `uid`/`gid`) tmpfs root and makes it the working directory.
pub(crate) fn mount_root(root_mount: &Path, uid: u32, gid: u32) -> Result<(), String> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let data = format!("mode=0755,size=1m,nr_inodes=4096,uid={uid},gid={gid}");
    mount(
        Some("tmpfs"),
        root_mount,
        Some("tmpfs"),
        flags,
        Some(data.as_str()),
    )
    .map_err(|e| format!("mount tmpfs root at {}: {e}", root_mount.display()))?;
    std::env::set_current_dir(root_mount)
        .map_err(|e| format!("chdir {}: {e}", root_mount.display()))
}

/// Our mounts must not propagate to the host (and the host's must not appear in the sandbox).
pub(crate) fn make_private() -> Result<(), String> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("make / private: {e}"))
}

/// Where a pre-initialised sandbox mounts the function's own trees once it is known (see
/// `preinit.rs`): until then these are empty directories.
const LATE: &[&str] = &["var/task", "opt", "tmp"];

fn is_late(target: &Path) -> bool {
    LATE.iter().any(|l| target == Path::new(l))
}

/// The layout of a pre-initialised runtime's root before the function is known: `plan`'s, with
/// empty directories where the function's code, layers and /tmp go.
pub(crate) fn plan_preinit(
    template: &crate::preinit::Template,
    root_files: &RootFiles,
) -> Result<Vec<Entry>, String> {
    let entries = plan(
        Path::new("/"),
        None,
        Some(&template.runtime_dir),
        &template.extra_ro_binds,
        &template.ro_mounts,
        Path::new("/"),
        root_files,
    )?;
    let mut out: Vec<Entry> = entries
        .into_iter()
        .filter(
            |e| !matches!(e, Entry::Bind { target, .. } | Entry::Dir(target) if is_late(target)),
        )
        .collect();
    out.extend(LATE.iter().map(|l| Entry::Dir(l.into())));
    Ok(out)
}

/// The function's own trees of a launch's plan (its code, layers and /tmp).
pub(crate) fn late_entries(entries: Vec<Entry>) -> Vec<Entry> {
    entries
        .into_iter()
        .filter(|e| matches!(e, Entry::Bind { target, .. } if is_late(target)))
        .collect()
}

/// `struct open_how` of openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}
const RESOLVE_IN_ROOT: u64 = 0x10;

/// In a pre-initialised sandbox, whose host root still sits at /tmp (see `build_root`): clones
/// the late entries' host trees from there (paths resolved inside that root, as on the host).
pub(crate) fn detach_late(entries: &[Entry]) -> Result<Vec<Detached>, String> {
    let host = std::fs::File::open("/tmp").map_err(|e| format!("the host root: {e}"))?;
    let mut out = Vec::new();
    for entry in entries {
        let Entry::Bind { source, target, rw } = entry else {
            continue;
        };
        let relative = source.strip_prefix("/").unwrap_or(source);
        let c = cstring(relative).map_err(|e| format!("{}: {e}", source.display()))?;
        let how = OpenHow {
            flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
            mode: 0,
            resolve: RESOLVE_IN_ROOT,
        };
        // SAFETY: openat2 with a valid dirfd, NUL-terminated path and a correctly sized open_how;
        // the returned fd is ours.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                host.as_raw_fd(),
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd < 0 {
            return Err(format!(
                "{}: {}",
                source.display(),
                io::Error::last_os_error()
            ));
        }
        // SAFETY: the kernel just returned this fd and nothing else owns it.
        let path_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let is_dir = std::fs::metadata(format!("/proc/self/fd/{}", path_fd.as_raw_fd()))
            .map_err(|e| format!("{}: {e}", source.display()))?
            .is_dir();
        let fd = open_tree_at(&path_fd).map_err(|e| format!("bind {}: {e}", source.display()))?;
        out.push(detached_bind(fd, source, target, *rw, is_dir)?);
    }
    Ok(out)
}

/// The host root goes (detached: nothing of the host stays reachable) and the function's trees
/// take their places.
pub(crate) fn attach_late(detached: Vec<Detached>) -> Result<(), String> {
    umount2("/tmp", MntFlags::MNT_DETACH).map_err(|e| format!("detach the host root: {e}"))?;
    for d in detached {
        let target = Path::new("/").join(&d.target);
        move_mount(&d.fd, &target).map_err(|e| format!("attach {}: {e}", target.display()))?;
    }
    Ok(())
}

/// A pre-initialised sandbox's mounts until the function is known: ours do not propagate to the
/// host, and the host's still propagate to us — the ext4 `/tmp` of the function is mounted under
/// the shared `tmp-volume/mnt` after this sandbox was made (`make_private` follows at launch).
pub(crate) fn make_slave() -> Result<(), String> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| format!("make / a slave: {e}"))
}

/// Phase 2 (as the sandbox user, still privileged in its namespace): fill the root and pivot.
/// With `keep_host`, the host's root stays mounted at /tmp after the pivot, for `detach_late`.
pub(crate) fn build_root(
    entries: &[Entry],
    detached: Vec<Detached>,
    keep_host: bool,
) -> Result<(), String> {
    for entry in entries {
        match entry {
            Entry::Symlink { target, points_to } => {
                std::os::unix::fs::symlink(points_to, target)
                    .map_err(|e| format!("symlink /{}: {e}", target.display()))?
            }
            Entry::Dir(dir) => create_dirs(dir)?,
            Entry::Bind { .. } => {}
        }
    }
    create_dirs(Path::new("dev"))?;
    for d in detached {
        if d.is_dir {
            create_dirs(&d.target)?;
        } else if std::fs::symlink_metadata(&d.target).is_err() {
            // A file mount point; an existing one (a file under the /etc bind) is mounted over.
            if let Some(parent) = d.target.parent() {
                create_dirs(parent)?;
            }
            std::fs::File::create(&d.target)
                .map_err(|e| format!("create /{}: {e}", d.target.display()))?;
        }
        move_mount(&d.fd, &d.target).map_err(|e| format!("attach /{}: {e}", d.target.display()))?;
    }
    create_dirs(Path::new("proc"))?;
    mount(
        Some("proc"),
        "proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| format!("mount /proc: {e}"))?;
    // What /proc tells of the host rather than of the sandbox: empty, as Docker masks it.
    for file in PROC_MASKED {
        let target = Path::new("proc").join(file);
        if target.exists() {
            mount(
                Some("dev/null"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| format!("mask /{}: {e}", target.display()))?;
        }
    }
    for dir in PROC_MASKED_DIRS {
        let target = Path::new("proc").join(dir);
        if target.is_dir() {
            mount(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=4k,nr_inodes=1"),
            )
            .map_err(|e| format!("mask /{}: {e}", target.display()))?;
        }
    }
    create_dirs(Path::new("dev/shm"))?;
    mount(
        Some("tmpfs"),
        "dev/shm",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777,size=64m"),
    )
    .map_err(|e| format!("mount /dev/shm: {e}"))?;
    for (link, to) in [
        ("dev/fd", "/proc/self/fd"),
        ("dev/stdin", "/proc/self/fd/0"),
        ("dev/stdout", "/proc/self/fd/1"),
        ("dev/stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(to, link).map_err(|e| format!("symlink /{link}: {e}"))?;
    }
    // The root itself read-only: the sandbox can write only /tmp (and /dev/shm).
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_BIND
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .map_err(|e| format!("remount / read-only: {e}"))?;
    if keep_host {
        nix::unistd::pivot_root(".", "tmp").map_err(|e| format!("pivot_root: {e}"))?;
        return std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"));
    }
    nix::unistd::pivot_root(".", ".").map_err(|e| format!("pivot_root: {e}"))?;
    // The old root now sits on top of the new one: detach it, and the host is gone.
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("detach the host root: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))
}

/// A detached copy of `source`'s tree (`fd`, from `open_tree`) made nosuid and nodev, and
/// read-only unless `rw`, to be attached at `target`.
fn detached_bind(
    fd: OwnedFd,
    source: &Path,
    target: &Path,
    rw: bool,
    is_dir: bool,
) -> Result<Detached, String> {
    let mut set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if !rw {
        set |= MOUNT_ATTR_RDONLY;
    }
    set_attrs(&fd, set).map_err(|e| format!("read-only bind {}: {e}", source.display()))?;
    Ok(Detached {
        fd,
        target: target.to_path_buf(),
        is_dir,
    })
}

fn create_dirs(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("mkdir /{}: {e}", dir.display()))
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn open_tree(path: &Path) -> io::Result<OwnedFd> {
    let c = cstring(path)?;
    let flags = OPEN_TREE_CLONE | AT_RECURSIVE | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: plain syscall with a valid NUL-terminated path; the returned fd is owned by us.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `open_tree` of an `O_PATH` descriptor.
fn open_tree_at(fd: &OwnedFd) -> io::Result<OwnedFd> {
    let flags = OPEN_TREE_CLONE
        | AT_RECURSIVE
        | libc::O_CLOEXEC as libc::c_uint
        | libc::AT_EMPTY_PATH as libc::c_uint;
    let empty = c"";
    // SAFETY: plain syscall on a valid fd with an empty path; the returned fd is owned by us.
    let tree = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), empty.as_ptr(), flags) };
    if tree < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(tree as i32) })
}

fn set_attrs(fd: &OwnedFd, set: u64) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = c"";
    // SAFETY: valid fd, empty path with AT_EMPTY_PATH, and a correctly sized mount_attr.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            (libc::AT_EMPTY_PATH as libc::c_uint) | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn move_mount(fd: &OwnedFd, target: &Path) -> io::Result<()> {
    let c = cstring(target)?;
    let empty = c"";
    // SAFETY: valid fd and paths; a relative target resolves against the working directory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_binds_outside_usr_land_at_the_same_path() {
        assert_eq!(
            extra_target(Path::new("/root/.pyenv/versions/3.12.7")).unwrap(),
            Some(PathBuf::from("root/.pyenv/versions/3.12.7"))
        );
        assert_eq!(
            extra_target(Path::new("/usr/lib/python3.11")).unwrap(),
            None
        );
        assert_eq!(
            extra_target(Path::new("/lib/x86_64-linux-gnu")).unwrap(),
            None
        );
    }

    #[test]
    fn extra_binds_may_not_cover_the_sandbox_layout() {
        assert!(extra_target(Path::new("/var/task")).is_err());
        assert!(extra_target(Path::new("/opt/python")).is_err());
        assert!(extra_target(Path::new("/var")).is_err());
        assert!(extra_target(Path::new("/etc/ssh")).is_err());
        assert!(extra_target(Path::new("/")).is_err());
        assert!(extra_target(Path::new("relative/path")).is_err());
        assert!(extra_target(Path::new("/home/../etc")).is_err());
    }

    #[test]
    fn mounts_may_not_land_on_tmp_proc_dev_or_escape() {
        for target in [
            "/tmp/x",
            "/proc/x",
            "/dev/x",
            "/etc/x",
            "/var/../etc",
            "/",
            "/var",
            "var/x",
        ] {
            let mounts = [(PathBuf::from("/sdk"), PathBuf::from(target))];
            let planned = plan(
                Path::new("/c"),
                None,
                None,
                &[],
                &mounts,
                Path::new("/t"),
                &RootFiles {
                    etc_dir: "/state/etc".into(),
                    files: vec![],
                    resolv_conf: RESOLV_CONF.into(),
                },
            );
            assert!(planned.is_err(), "{target}");
        }
    }

    #[test]
    fn plan_puts_code_read_only_and_tmp_read_write() {
        let root_files = RootFiles {
            etc_dir: "/state/etc".into(),
            files: vec![(
                PathBuf::from("/state/lambda-entrypoint.sh"),
                "lambda-entrypoint.sh".to_string(),
            )],
            resolv_conf: RESOLV_CONF.into(),
        };
        let entries = plan(
            Path::new("/code"),
            None,
            Some(Path::new("/rt")),
            &[],
            &[(
                PathBuf::from("/sdk"),
                PathBuf::from("/var/runtime/node_modules"),
            )],
            Path::new("/scratch/tmp"),
            &root_files,
        )
        .unwrap();
        let binds: Vec<(String, bool)> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::Bind { target, rw, .. } => Some((target.display().to_string(), *rw)),
                _ => None,
            })
            .collect();
        assert!(binds.contains(&("var/task".to_string(), false)));
        assert!(binds.contains(&("tmp".to_string(), true)));
        assert!(binds.contains(&("usr".to_string(), false)));
        assert!(binds.contains(&("lambda-entrypoint.sh".to_string(), false)));
        // Flint's /etc tree, never the host's.
        assert!(entries.iter().any(|e| matches!(e,
            Entry::Bind { source, target, rw: false }
                if target == Path::new("etc") && source == Path::new("/state/etc"))));
        // A mount inside /var/runtime comes after /var/runtime itself.
        let at = |t: &str| binds.iter().position(|(b, _)| b == t);
        assert!(at("var/runtime/node_modules") > at("var/runtime"));
        assert!(entries
            .iter()
            .any(|e| matches!(e, Entry::Dir(d) if d == Path::new("opt"))));
    }
}
