//! EphemeralStorage: each environment's /tmp, sized as a whole (512–10240 MB) on disk and never
//! charged to MemorySize. One btrfs filesystem (a sparse image on a loop device) is mounted when
//! `Sandboxes` starts; each environment's /tmp is a subvolume in it whose quota group carries the
//! size limit, so a write past it fails with EDQUOT inside the function. Without mkfs.btrfs (or
//! where btrfs cannot be set up), each /tmp is an ext4 image of its own (`ext4.rs`; ENOSPC past
//! the size). Where neither can be set up (not root, no loop device, neither mkfs), /tmp is the
//! caller's directory, limited per file. `FLINT_SANDBOX_TMP=btrfs|ext4|per-file` picks one.
//!
//! Why btrfs and not ext4 project quotas: ext4 quotas need the kernel's QFMT_V2 and XFS's need
//! XFS_QUOTA, both missing on our hosts, while btrfs quota groups are part of btrfs itself. Why one
//! shared filesystem: formatting and mounting one per environment costs ~25 ms (and ~50 ms to
//! unmount); a subvolume and its quota group cost ~0.2 ms.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

mod ext4;

/// Largest sparse image: the filesystem never needs more than the sum of live environments' sizes.
const MAX_IMAGE_BYTES: u64 = 1 << 40;
/// Below this much free disk a shared volume is not worth it (one environment may need 10 GB,
/// but refusing to start would be worse: the per-file mode still works).
const MIN_IMAGE_BYTES: u64 = 1 << 30;
/// How often the reaper retries removing the quota groups of deleted environments (btrfs frees a
/// deleted subvolume's space in the background, after its next transaction commit).
const QGROUP_RETRY: Duration = Duration::from_secs(10);
/// In the volume's dir: "<pid> <start time>" of the Flint that mounted it.
const OWNER_FILE: &str = "owner";
/// Operator switch: `FLINT_SANDBOX_TMP=btrfs|ext4|per-file` forces one backend (unset: btrfs,
/// else ext4, else per file).
const MODE_ENV: &str = "FLINT_SANDBOX_TMP";

/// Where each environment's /tmp comes from; decided once at start.
#[derive(Debug)]
pub(crate) enum TmpStorage {
    /// A quota-limited subvolume per environment on Flint's own btrfs volume.
    Volume(Arc<Volume>),
    /// An ext4 image per environment (no mkfs.btrfs on the host).
    Images(Arc<ext4::ImagePool>),
    /// The caller's directory (`SandboxSpec::tmp_dir`), limited per file; why no volume.
    PerFile(String),
}

impl TmpStorage {
    /// Sets up the volume under `dir` (removing what a previous run left there), or says why not.
    pub fn open(dir: &Path, owner: (u32, u32)) -> TmpStorage {
        let forced = std::env::var(MODE_ENV).ok();
        if forced.as_deref() == Some("per-file") {
            return TmpStorage::PerFile(format!("{MODE_ENV}=per-file"));
        }
        if !nix::unistd::geteuid().is_root() {
            return TmpStorage::PerFile("loop devices need root".to_string());
        }
        let mut reasons = Vec::new();
        if forced.as_deref() != Some("ext4") {
            match Volume::open(dir, owner) {
                Ok(v) => return TmpStorage::Volume(Arc::new(v)),
                // A half-made volume must not stay mounted.
                Err(reason) => {
                    cleanup_leftovers(dir);
                    reasons.push(reason);
                }
            }
        }
        if forced.as_deref() != Some("btrfs") {
            cleanup_leftovers(dir);
            sweep_orphans();
            match ext4::ImagePool::open(dir, owner) {
                Ok(pool) => {
                    if let Some(why_not_btrfs) = reasons.first() {
                        tracing::info!("EphemeralStorage: no btrfs volume ({why_not_btrfs})");
                    }
                    return TmpStorage::Images(Arc::new(pool));
                }
                Err(reason) => {
                    cleanup_leftovers(dir);
                    reasons.push(reason);
                }
            }
        }
        TmpStorage::PerFile(reasons.join("; "))
    }

    /// For the start-up banner.
    pub fn describe(&self) -> &'static str {
        match self {
            TmpStorage::Volume(_) => "/tmp size as a whole (btrfs quota)",
            TmpStorage::Images(_) => "/tmp size as a whole (ext4 image)",
            TmpStorage::PerFile(_) => "/tmp size per file",
        }
    }

    /// At shutdown, once the environments have stopped: unmounts and deletes the btrfs volume,
    /// or the ext4 backend's images, and frees their loop devices now — not when the last
    /// reference to `Sandboxes` drops, which a process that exits may never do.
    pub fn close(&self) {
        match self {
            TmpStorage::Volume(volume) => volume.close(),
            TmpStorage::Images(pool) => {
                pool.close();
                if let Some(dir) = pool.mount_point().parent() {
                    cleanup_leftovers(dir);
                }
            }
            TmpStorage::PerFile(_) => {}
        }
    }

    /// A fresh /tmp of `size_mb` for sandbox `id`; None for the per-file mode (the caller's dir).
    pub fn create(&self, id: &str, size_mb: u32) -> io::Result<Option<TmpDir>> {
        match self {
            TmpStorage::Volume(v) => v.create(id, size_mb).map(Some),
            TmpStorage::Images(pool) => {
                let image = pool.create(size_mb)?;
                Ok(Some(TmpDir {
                    path: image.path().to_path_buf(),
                    backing: Backing::Image(Some(image), Arc::clone(pool)),
                }))
            }
            TmpStorage::PerFile(_) => Ok(None),
        }
    }
}

/// The mounted btrfs volume holding every environment's /tmp.
pub(crate) struct Volume {
    mount_point: PathBuf,
    image: PathBuf,
    /// The filesystem's root directory (ioctls that create and destroy subvolumes go through it).
    root: OwnedFd,
    /// Host ids that own each /tmp (the sandbox user as seen from outside).
    owner: (u32, u32),
    /// Makes subvolume names unique even when a sandbox id is reused before the reaper ran.
    next: AtomicU64,
    reaper: mpsc::Sender<Release>,
    /// Nested subvolumes of an environment join its quota group (squota's auto-inheritance);
    /// with full qgroups they would escape the limit.
    simple_quotas: bool,
}

impl std::fmt::Debug for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volume")
            .field("mount_point", &self.mount_point)
            .field("simple_quotas", &self.simple_quotas)
            .finish()
    }
}

/// An environment's /tmp to delete, with its quota group.
struct Release {
    name: String,
    qgroup: u64,
}

impl Volume {
    fn open(dir: &Path, owner: (u32, u32)) -> Result<Volume, String> {
        let mkfs = find_program("mkfs.btrfs").ok_or("mkfs.btrfs not found (btrfs-progs)")?;
        cleanup_leftovers(dir);
        sweep_orphans();
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mount_point = dir.join("mnt");
        let image = dir.join("image");
        std::fs::create_dir_all(&mount_point)
            .map_err(|e| format!("{}: {e}", mount_point.display()))?;
        // Only root (the sandbox supervisors) needs to reach the subvolumes through here.
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o711))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let size = image_size(dir)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&image)
            .and_then(|f| f.set_len(size).map(|()| f))
            .map_err(|e| format!("sparse image {}: {e}", image.display()))?;
        let out = std::process::Command::new(&mkfs)
            .args([
                "-q",
                "-f",
                "-K",
                "-m",
                "single",
                "-d",
                "single",
                "-L",
                "flint-tmp",
            ])
            .arg(&image)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("{}: {e}", mkfs.display()))?;
        if !out.status.success() {
            return Err(format!(
                "mkfs.btrfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let loop_dev = loop_attach(&file, &image).map_err(|e| format!("loop device: {e}"))?;
        drop(file);
        mount_volume(&loop_dev.path, &mount_point)?;
        // The mount holds the loop device now; with autoclear it goes away at unmount.
        drop(loop_dev);
        let root = open_dir(&mount_point).map_err(|e| format!("{}: {e}", mount_point.display()))?;
        let simple_quotas = match quota_ctl(&root, QUOTA_CTL_ENABLE_SIMPLE) {
            Ok(()) => true,
            Err(_) => {
                quota_ctl(&root, QUOTA_CTL_ENABLE).map_err(|e| format!("btrfs quotas: {e}"))?;
                false
            }
        };
        let reaper_root = root
            .try_clone()
            .map_err(|e| format!("dup volume fd: {e}"))?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("flint-tmp-reaper".into())
            .spawn(move || reap(reaper_root, rx))
            .map_err(|e| format!("reaper thread: {e}"))?;
        if !simple_quotas {
            tracing::warn!(
                "btrfs simple quotas are unavailable (kernel < 6.7): subvolumes a function creates inside /tmp escape its size limit"
            );
        }
        let volume = Volume {
            mount_point,
            image,
            root,
            owner,
            next: AtomicU64::new(0),
            reaper: tx,
            simple_quotas,
        };
        volume.probe()?;
        // Lets a later Flint with another data dir unmount this volume if we die (see sweep_orphans).
        if let Some(me) = process_identity("self") {
            let _ = std::fs::write(dir.join(OWNER_FILE), me);
        }
        Ok(volume)
    }

    pub fn mount_point(&self) -> &Path {
        &self.mount_point
    }

    /// Proves that limits can be set before any environment depends on them.
    fn probe(&self) -> Result<(), String> {
        let (name, qgroup) = self
            .make(".probe", 1)
            .map_err(|e| format!("btrfs quota probe: {e}"))?;
        release(&self.root, &name, qgroup).map_err(|e| format!("btrfs quota probe: {e}"))
    }

    /// A fresh /tmp of `size_mb` (0: unlimited) for sandbox `id`, owned by the sandbox user.
    pub fn create(self: &Arc<Self>, id: &str, size_mb: u32) -> io::Result<TmpDir> {
        let (name, qgroup) = self.make(id, size_mb)?;
        Ok(TmpDir {
            path: self.mount_point.join(&name),
            backing: Backing::Subvolume {
                name,
                qgroup,
                volume: Arc::clone(self),
            },
        })
    }

    /// Subvolume `<id>.<n>`, its level-1 quota group with the limit, owner and mode.
    fn make(&self, id: &str, size_mb: u32) -> io::Result<(String, u64)> {
        if id.is_empty() || id.len() > 200 || id.contains('/') || id.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid sandbox id {id:?}"),
            ));
        }
        let name = format!("{id}.{}", self.next.fetch_add(1, Ordering::Relaxed));
        subvol_create(&self.root, &name)?;
        let made = (|| {
            let dir = open_dir_at(&self.root, &name)?;
            let subvol = subvol_id(&dir)?;
            // A level-1 group above the subvolume's own: subvolumes nested inside join it too.
            let qgroup = (1 << 48) | subvol;
            qgroup_create(&self.root, qgroup, true)?;
            qgroup_assign(&self.root, subvol, qgroup)?;
            if size_mb > 0 {
                qgroup_limit(&self.root, qgroup, u64::from(size_mb) << 20)?;
            }
            nix::unistd::fchown(
                dir.as_raw_fd(),
                Some(nix::unistd::Uid::from_raw(self.owner.0)),
                Some(nix::unistd::Gid::from_raw(self.owner.1)),
            )?;
            nix::sys::stat::fchmod(
                dir.as_raw_fd(),
                nix::sys::stat::Mode::from_bits_truncate(0o700),
            )?;
            Ok::<u64, io::Error>(qgroup)
        })();
        match made {
            Ok(qgroup) => Ok((name, qgroup)),
            Err(e) => {
                let _ = self.reaper.send(Release { name, qgroup: 0 });
                Err(e)
            }
        }
    }
}

impl Volume {
    /// Unmounts the volume and deletes its image; again (at drop) does nothing.
    fn close(&self) {
        // Lazy: the reaper's descriptor keeps the filesystem alive until queued deletions are done;
        // the loop device detaches itself afterwards (autoclear).
        let _ = nix::mount::umount2(&self.mount_point, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&self.image);
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        self.close();
    }
}

/// One environment's /tmp; dropping it deletes it (in the background).
pub(crate) struct TmpDir {
    path: PathBuf,
    backing: Backing,
}

enum Backing {
    /// A subvolume of the btrfs volume and its quota group.
    Subvolume {
        name: String,
        qgroup: u64,
        volume: Arc<Volume>,
    },
    /// An ext4 image of its own (None once released).
    Image(Option<ext4::Image>, Arc<ext4::ImagePool>),
}

impl std::fmt::Debug for TmpDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TmpDir").field("path", &self.path).finish()
    }
}

impl TmpDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        match &mut self.backing {
            Backing::Subvolume {
                name,
                qgroup,
                volume,
            } => {
                let _ = volume.reaper.send(Release {
                    name: std::mem::take(name),
                    qgroup: *qgroup,
                });
            }
            Backing::Image(image, pool) => {
                if let Some(image) = image.take() {
                    pool.release(image);
                }
            }
        }
    }
}

/// The reaper thread: deletes released subvolumes (which can take tens of ms for large ones, too
/// long for a `Drop` on the invoke path) and removes their quota groups once btrfs has freed them.
fn reap(root: OwnedFd, rx: mpsc::Receiver<Release>) {
    let mut pending_qgroups: Vec<u64> = Vec::new();
    let mut warned = false;
    loop {
        match rx.recv_timeout(QGROUP_RETRY) {
            Ok(r) => {
                if let Err(e) = release(&root, &r.name, r.qgroup) {
                    if !warned {
                        tracing::warn!("cannot delete /tmp volume {}: {e}", r.name);
                        warned = true;
                    }
                }
                if r.qgroup != 0 {
                    pending_qgroups.push(r.qgroup);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        // Busy while the deleted subvolume's own group is still a member; gone groups are done.
        pending_qgroups.retain(|q| {
            matches!(qgroup_create(&root, *q, false), Err(e) if e.raw_os_error() == Some(libc::EBUSY))
        });
    }
}

/// Lifts the limit (a full group cannot even delete) and deletes the subvolume and any nested in it.
fn release(root: &OwnedFd, name: &str, qgroup: u64) -> io::Result<()> {
    if qgroup != 0 {
        let _ = qgroup_limit(root, qgroup, NO_LIMIT);
    }
    destroy_tree(root, name)
}

/// Deletes subvolume `name` under `parent`; nested subvolumes (made by the function) first.
fn destroy_tree(parent: &OwnedFd, name: &str) -> io::Result<()> {
    match subvol_destroy(parent, name) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {
            let dir = open_dir_at(parent, name)?;
            destroy_nested(&dir, 0)?;
            subvol_destroy(parent, name)
        }
        other => other,
    }
}

/// Deletes every subvolume below `dir` (a subvolume's root has inode number 256).
fn destroy_nested(dir: &OwnedFd, depth: usize) -> io::Result<()> {
    // Bounded: a function could nest directories very deeply.
    if depth > 64 {
        return Ok(());
    }
    let path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    for entry in std::fs::read_dir(&path)?.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_dir() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        use std::os::unix::fs::MetadataExt;
        if meta.ino() == BTRFS_FIRST_FREE_OBJECTID {
            destroy_tree(dir, &name)?;
        } else if let Ok(sub) = open_dir_at(dir, &name) {
            destroy_nested(&sub, depth + 1)?;
        }
    }
    Ok(())
}

/// Unmounts a volume a previous run left under `dir` and frees its loop devices.
pub(crate) fn cleanup_leftovers(dir: &Path) {
    let mount_point = dir.join("mnt");
    let image = dir.join("image");
    let mut unmounted = 0;
    // The ext4 backend's: one mount per environment below `mnt`, each on a loop device of its own.
    if let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") {
        for (m, _, _) in mounts(&info) {
            if m.parent() == Some(mount_point.as_path())
                && nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH).is_ok()
            {
                unmounted += 1;
            }
        }
    }
    while is_mount_point(&mount_point) && unmounted < 16 {
        if nix::mount::umount2(&mount_point, nix::mount::MntFlags::MNT_DETACH).is_err() {
            break;
        }
        unmounted += 1;
    }
    let mut detached = 0;
    let images = dir.join("images");
    let ext4_loops = loops_under(&images);
    for n in loops_backed_by(&image).into_iter().chain(ext4_loops) {
        let dev = format!("/dev/loop{n}");
        if let Ok(f) = std::fs::OpenOptions::new().read(true).open(&dev) {
            // SAFETY: LOOP_CLR_FD takes no argument; the fd is valid.
            if unsafe { libc::ioctl(f.as_raw_fd(), LOOP_CLR_FD as _, 0) } == 0 {
                detached += 1;
            }
        }
    }
    if unmounted + detached > 0 {
        tracing::info!(
            "removed a /tmp volume left by a previous run ({unmounted} mount(s), {detached} loop device(s))"
        );
    }
    let _ = std::fs::remove_file(&image);
    let _ = std::fs::remove_dir_all(&images);
    if let Ok(entries) = std::fs::read_dir(&mount_point) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

/// Unmounts /tmp volumes of *other* data dirs whose Flint died (killed test servers in temporary
/// dirs, typically: nobody restarts Flint on those dirs to clean up). A volume is orphaned when
/// its image was deleted under it (a live Flint unmounts before deleting), or when the process
/// named in its owner file is gone.
fn sweep_orphans() {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    // Deepest first: an ext4 backend's per-environment mounts before its `mnt` bind.
    let mut found: Vec<_> = mounts(&info).collect();
    found.reverse();
    for (mount_point, fstype, source) in found {
        let dir = if fstype == "btrfs" && mount_point.ends_with("tmp-volume/mnt") {
            mount_point.parent()
        } else if mount_point.ends_with("tmp-volume/mnt") {
            // The ext4 backend's shared bind of `mnt` (of whatever the data dir's filesystem is).
            mount_point.parent()
        } else if fstype == "ext4"
            && mount_point
                .parent()
                .is_some_and(|p| p.ends_with("tmp-volume/mnt"))
        {
            mount_point.parent().and_then(Path::parent)
        } else {
            None
        };
        let Some(dir) = dir else {
            continue;
        };
        // A live Flint unmounts an image before deleting it (btrfs: its one image; ext4: each).
        let image_deleted = source
            .strip_prefix("/dev/loop")
            .and_then(|n| std::fs::read(format!("/sys/block/loop{n}/loop/backing_file")).ok())
            .is_some_and(|b| {
                let b = b.strip_suffix(b"\n").unwrap_or(&b);
                b.ends_with(b"/tmp-volume/image (deleted)")
                    || (fstype == "ext4"
                        && b.ends_with(b" (deleted)")
                        && b.windows(19).any(|w| w == b"/tmp-volume/images/"))
            });
        // The ext4 backend writes its owner file before it makes the bind: without one, the
        // data dir was deleted under a Flint that is gone.
        let ext4_bind = fstype != "btrfs" && mount_point.ends_with("tmp-volume/mnt");
        let owner_dead = match std::fs::read_to_string(dir.join(OWNER_FILE)) {
            Ok(owner) => (|| {
                let pid = owner.split_whitespace().next()?.parse::<u32>().ok()?;
                Some(process_identity(&pid.to_string()).as_deref() != Some(owner.trim()))
            })()
            .unwrap_or(false),
            Err(_) => ext4_bind,
        };
        if image_deleted || owner_dead {
            if nix::mount::umount2(&mount_point, nix::mount::MntFlags::MNT_DETACH).is_ok() {
                tracing::info!(
                    "unmounted the /tmp volume of a Flint that is gone: {}",
                    mount_point.display()
                );
            }
            let _ = std::fs::remove_file(dir.join("image"));
            let _ = std::fs::remove_dir_all(dir.join("images"));
        }
    }
}

/// "<pid> <start time>" of a process (`self` or a pid), which a reused pid does not match.
fn process_identity(pid: &str) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at ") ".
    let rest = &stat[stat.rfind(") ")? + 2..];
    // Field 22 (starttime) is the 20th after the command name.
    let start = rest.split_whitespace().nth(19)?;
    let pid = stat.split_whitespace().next()?;
    Some(format!("{pid} {start}"))
}

/// (mount point, filesystem type, source) of each line of /proc/self/mountinfo, with the
/// kernel's octal escapes undone in the mount point.
fn mounts(info: &str) -> impl Iterator<Item = (PathBuf, String, String)> + '_ {
    info.lines().filter_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mount_point = left.split(' ').nth(4)?;
        let mut right = right.split(' ');
        let fstype = right.next()?.to_string();
        let source = right.next()?.to_string();
        use std::os::unix::ffi::OsStringExt;
        Some((
            PathBuf::from(std::ffi::OsString::from_vec(unescape_octal(mount_point))),
            fstype,
            source,
        ))
    })
}

fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let found = mounts(&info).any(|(m, _, _)| m == path);
    found
}

fn unescape_octal(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Loop devices whose backing file is `image` (possibly already unlinked).
fn loops_backed_by(image: &Path) -> Vec<u32> {
    let want = image.as_os_str().as_bytes();
    loops_where(|backing| backing_matches(backing, want))
}

/// Loop devices whose backing file is in directory `dir` (possibly already unlinked).
fn loops_under(dir: &Path) -> Vec<u32> {
    let mut want = dir.as_os_str().as_bytes().to_vec();
    want.push(b'/');
    loops_where(|backing| backing.starts_with(&want) && !backing[want.len()..].contains(&b'/'))
}

fn loops_where(matches: impl Fn(&[u8]) -> bool) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let n: u32 = name.strip_prefix("loop")?.parse().ok()?;
            let backing = std::fs::read(e.path().join("loop/backing_file")).ok()?;
            matches(&backing).then_some(n)
        })
        .collect()
}

fn backing_matches(backing: &[u8], image: &[u8]) -> bool {
    let trimmed = backing.strip_suffix(b"\n").unwrap_or(backing);
    trimmed == image || trimmed.strip_suffix(b" (deleted)") == Some(image)
}

/// min(free disk, 1 TiB), in whole MiB; refused below 1 GiB.
fn image_size(dir: &Path) -> Result<u64, String> {
    let st =
        nix::sys::statvfs::statvfs(dir).map_err(|e| format!("statvfs {}: {e}", dir.display()))?;
    let free = st
        .blocks_available()
        .saturating_mul(st.fragment_size() as u64);
    let size = free.min(MAX_IMAGE_BYTES) & !((1 << 20) - 1);
    if size < MIN_IMAGE_BYTES {
        return Err(format!("only {} MB free on {}", free >> 20, dir.display()));
    }
    Ok(size)
}

/// A host program by name: on `PATH`, then in the usual sbin/bin directories (Flint may run
/// with a `PATH` that lacks `/usr/sbin`, where `mkfs.btrfs`, `losetup`, `ip` and `nft` live).
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn mount_volume(dev: &Path, mount_point: &Path) -> Result<(), String> {
    use nix::mount::MsFlags;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOATIME;
    // Discarding freed extents punches holes in the image, so deleted /tmp files give disk back.
    let mut last = String::new();
    for data in ["discard=async", "discard", ""] {
        match nix::mount::mount(Some(dev), mount_point, Some("btrfs"), flags, Some(data)) {
            Ok(()) => return Ok(()),
            Err(e) => last = format!("mount {} on {}: {e}", dev.display(), mount_point.display()),
        }
    }
    Err(last)
}

// ---- loop devices (linux/loop.h) ----

const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_FLAGS_DIRECT_IO: u32 = 16;

#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

struct LoopDevice {
    path: PathBuf,
    _fd: OwnedFd,
}

/// A free loop device bound to `file`, with autoclear (detached at its last unmount/close) and
/// direct I/O (the image's pages are not cached twice, once more in the host's page cache).
fn loop_attach(file: &std::fs::File, image: &Path) -> io::Result<LoopDevice> {
    let control = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")?;
    let mut last = io::Error::other("no free loop device");
    // Another process may take the device between GET_FREE and CONFIGURE: try again.
    for _ in 0..8 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
        let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)?;
        let fd = OwnedFd::from(dev);
        for (block_size, flags) in [
            (4096, LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO),
            (0, LO_FLAGS_AUTOCLEAR),
        ] {
            let mut name = [0u8; 64];
            let bytes = image.as_os_str().as_bytes();
            let len = bytes.len().min(63);
            name[..len].copy_from_slice(&bytes[..len]);
            let config = LoopConfig {
                fd: file.as_raw_fd() as u32,
                block_size,
                info: LoopInfo64 {
                    lo_device: 0,
                    lo_inode: 0,
                    lo_rdevice: 0,
                    lo_offset: 0,
                    lo_sizelimit: 0,
                    lo_number: 0,
                    lo_encrypt_type: 0,
                    lo_encrypt_key_size: 0,
                    lo_flags: flags,
                    lo_file_name: name,
                    lo_crypt_name: [0; 64],
                    lo_encrypt_key: [0; 32],
                    lo_init: [0; 2],
                },
                reserved: [0; 8],
            };
            // SAFETY: a correctly laid out loop_config that outlives the call.
            let rc = unsafe {
                libc::ioctl(
                    fd.as_raw_fd(),
                    LOOP_CONFIGURE as _,
                    &config as *const LoopConfig,
                )
            };
            if rc == 0 {
                return Ok(LoopDevice { path, _fd: fd });
            }
            last = io::Error::last_os_error();
            if last.raw_os_error() != Some(libc::EINVAL) {
                break;
            }
        }
        if last.raw_os_error() != Some(libc::EBUSY) {
            return Err(last);
        }
    }
    Err(last)
}

// ---- btrfs (linux/btrfs.h) ----

const BTRFS_IOC_SUBVOL_CREATE: libc::c_ulong = 0x5000_940E;
const BTRFS_IOC_SNAP_DESTROY: libc::c_ulong = 0x5000_940F;
const BTRFS_IOC_INO_LOOKUP: libc::c_ulong = 0xD000_9412;
const BTRFS_IOC_QUOTA_CTL: libc::c_ulong = 0xC010_9428;
const BTRFS_IOC_QGROUP_ASSIGN: libc::c_ulong = 0x4018_9429;
const BTRFS_IOC_QGROUP_CREATE: libc::c_ulong = 0x4010_942A;
const BTRFS_IOC_QGROUP_LIMIT: libc::c_ulong = 0x8030_942B;
const QUOTA_CTL_ENABLE: u64 = 1;
const QUOTA_CTL_ENABLE_SIMPLE: u64 = 4;
const QGROUP_LIMIT_MAX_RFER: u64 = 1;
/// `max_rfer` value that removes the limit.
const NO_LIMIT: u64 = u64::MAX;
const BTRFS_FIRST_FREE_OBJECTID: u64 = 256;
const BTRFS_PATH_NAME_MAX: usize = 4087;

#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; BTRFS_PATH_NAME_MAX + 1],
}

#[repr(C)]
struct InoLookupArgs {
    treeid: u64,
    objectid: u64,
    name: [u8; 4080],
}

#[repr(C)]
struct QuotaCtlArgs {
    cmd: u64,
    status: u64,
}

#[repr(C)]
struct QgroupAssignArgs {
    assign: u64,
    src: u64,
    dst: u64,
}

#[repr(C)]
struct QgroupCreateArgs {
    create: u64,
    qgroupid: u64,
}

#[repr(C)]
struct QgroupLimitArgs {
    qgroupid: u64,
    flags: u64,
    max_rfer: u64,
    max_excl: u64,
    rsv_rfer: u64,
    rsv_excl: u64,
}

/// ioctl with a pointer argument; errno as an io::Error.
fn ioctl<T>(fd: &OwnedFd, request: libc::c_ulong, arg: &mut T) -> io::Result<()> {
    // SAFETY: every caller passes the struct the request is defined with, valid for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg as *mut T) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn vol_args(name: &str) -> io::Result<Box<VolArgs>> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > 255 || bytes.contains(&b'/') || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad subvolume name",
        ));
    }
    let mut args = Box::new(VolArgs {
        fd: 0,
        name: [0; BTRFS_PATH_NAME_MAX + 1],
    });
    args.name[..bytes.len()].copy_from_slice(bytes);
    Ok(args)
}

fn subvol_create(parent: &OwnedFd, name: &str) -> io::Result<()> {
    ioctl(parent, BTRFS_IOC_SUBVOL_CREATE, &mut *vol_args(name)?)
}

fn subvol_destroy(parent: &OwnedFd, name: &str) -> io::Result<()> {
    ioctl(parent, BTRFS_IOC_SNAP_DESTROY, &mut *vol_args(name)?)
}

/// The id of the subvolume `dir` belongs to.
fn subvol_id(dir: &OwnedFd) -> io::Result<u64> {
    let mut args = Box::new(InoLookupArgs {
        treeid: 0,
        objectid: BTRFS_FIRST_FREE_OBJECTID,
        name: [0; 4080],
    });
    ioctl(dir, BTRFS_IOC_INO_LOOKUP, &mut *args)?;
    Ok(args.treeid)
}

fn quota_ctl(root: &OwnedFd, cmd: u64) -> io::Result<()> {
    ioctl(
        root,
        BTRFS_IOC_QUOTA_CTL,
        &mut QuotaCtlArgs { cmd, status: 0 },
    )
}

fn qgroup_create(root: &OwnedFd, qgroupid: u64, create: bool) -> io::Result<()> {
    let mut args = QgroupCreateArgs {
        create: u64::from(create),
        qgroupid,
    };
    ioctl(root, BTRFS_IOC_QGROUP_CREATE, &mut args)
}

fn qgroup_assign(root: &OwnedFd, child: u64, parent: u64) -> io::Result<()> {
    let mut args = QgroupAssignArgs {
        assign: 1,
        src: child,
        dst: parent,
    };
    ioctl(root, BTRFS_IOC_QGROUP_ASSIGN, &mut args)
}

fn qgroup_limit(root: &OwnedFd, qgroupid: u64, max_bytes: u64) -> io::Result<()> {
    let mut args = QgroupLimitArgs {
        qgroupid,
        flags: QGROUP_LIMIT_MAX_RFER,
        max_rfer: max_bytes,
        max_excl: 0,
        rsv_rfer: 0,
        rsv_excl: 0,
    };
    ioctl(root, BTRFS_IOC_QGROUP_LIMIT, &mut args)
}

fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    open_dir_raw(libc::AT_FDCWD, &c)
}

fn open_dir_at(parent: &OwnedFd, name: &str) -> io::Result<OwnedFd> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    open_dir_raw(parent.as_raw_fd(), &c)
}

fn open_dir_raw(at: libc::c_int, path: &CString) -> io::Result<OwnedFd> {
    // SAFETY: a valid NUL-terminated path; the returned fd is ours alone.
    let fd = unsafe {
        libc::openat(
            at,
            path.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_structs_have_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
        assert_eq!(std::mem::size_of::<VolArgs>(), 4096);
        assert_eq!(std::mem::size_of::<InoLookupArgs>(), 4096);
        assert_eq!(std::mem::size_of::<QgroupLimitArgs>(), 48);
        // _IOW/_IOR/_IOWR encode the argument size: a wrong struct would change the number.
        assert_eq!((BTRFS_IOC_QGROUP_LIMIT >> 16) & 0x3fff, 48);
        assert_eq!((BTRFS_IOC_QGROUP_ASSIGN >> 16) & 0x3fff, 24);
        assert_eq!((BTRFS_IOC_QGROUP_CREATE >> 16) & 0x3fff, 16);
        assert_eq!((BTRFS_IOC_SUBVOL_CREATE >> 16) & 0x3fff, 4096);
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        let info = "36 35 98:0 / /data/my\\040dir rw,noatime master:1 - btrfs /dev/loop0 rw\n\
                    37 35 98:0 / /plain rw - ext4 /dev/vda rw";
        let found: Vec<(PathBuf, String, String)> = mounts(info).collect();
        assert_eq!(
            found,
            [
                (
                    PathBuf::from("/data/my dir"),
                    "btrfs".into(),
                    "/dev/loop0".into()
                ),
                (PathBuf::from("/plain"), "ext4".into(), "/dev/vda".into())
            ]
        );
    }

    #[test]
    fn process_identity_tells_a_live_process_from_a_reused_pid() {
        let me = process_identity("self").unwrap();
        let pid = std::process::id().to_string();
        assert!(me.starts_with(&format!("{pid} ")), "{me}");
        assert_eq!(process_identity(&pid), Some(me.clone()));
        assert_eq!(process_identity("999999999"), None);
    }

    #[test]
    fn loop_backing_file_matches_even_when_unlinked() {
        assert!(backing_matches(
            b"/s/tmp-volume/image\n",
            b"/s/tmp-volume/image"
        ));
        assert!(backing_matches(
            b"/s/tmp-volume/image (deleted)\n",
            b"/s/tmp-volume/image"
        ));
        assert!(!backing_matches(
            b"/s/tmp-volume/image2\n",
            b"/s/tmp-volume/image"
        ));
    }

    /// Needs root and mkfs.btrfs (skipped otherwise): the cold-start cost of a /tmp, its owner,
    /// and that dropping it deletes it, nested subvolumes included, and unmounts at the end.
    #[test]
    fn each_environment_gets_its_own_subvolume_in_well_under_a_millisecond() {
        use std::os::unix::fs::MetadataExt;
        if !nix::unistd::geteuid().is_root() || find_program("mkfs.btrfs").is_none() {
            eprintln!("skipped: needs root and mkfs.btrfs");
            return;
        }
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().join("tmp-volume");
        let volume = match TmpStorage::open(&dir, (993, 990)) {
            TmpStorage::Volume(v) => v,
            other => panic!("no btrfs volume as root: {other:?}"),
        };
        assert!(is_mount_point(&dir.join("mnt")));
        let mut times = Vec::new();
        let mut tmps = Vec::new();
        for n in 0..20 {
            let start = std::time::Instant::now();
            tmps.push(volume.create(&format!("env-{n}"), 512).unwrap());
            times.push(start.elapsed());
        }
        times.sort();
        assert!(
            times[times.len() / 2] < Duration::from_millis(1),
            "median {:?}",
            times[times.len() / 2]
        );
        for tmp in &tmps {
            let meta = std::fs::metadata(tmp.path()).unwrap();
            assert_eq!(
                (meta.uid(), meta.gid(), meta.mode() & 0o777),
                (993, 990, 0o700)
            );
            assert_eq!(
                meta.ino(),
                BTRFS_FIRST_FREE_OBJECTID,
                "not a subvolume root"
            );
        }
        // A function may make subvolumes of its own: they go with its /tmp.
        let first = open_dir(tmps[0].path()).unwrap();
        subvol_create(&first, "nested").unwrap();
        std::fs::write(tmps[0].path().join("nested/file"), b"x").unwrap();
        drop(first);
        let paths: Vec<PathBuf> = tmps.iter().map(|t| t.path().to_path_buf()).collect();
        drop(tmps);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while paths.iter().any(|p| p.exists()) {
            assert!(
                std::time::Instant::now() < deadline,
                "subvolumes left behind"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(volume);
        assert!(!is_mount_point(&dir.join("mnt")));
        assert!(!dir.join("image").exists());
    }

    #[test]
    fn subvolume_names_cannot_leave_the_volume() {
        assert!(vol_args("env-1.0").is_ok());
        for bad in ["", "a/b", "..\0", &"x".repeat(300)] {
            assert!(vol_args(bad).is_err(), "{bad:?}");
        }
    }
}
