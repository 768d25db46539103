//! EphemeralStorage without btrfs: each environment's /tmp is an ext4 filesystem of its own, a
//! sparse image of `EphemeralStorage` bytes on a loop device, so writes past the size fail with
//! ENOSPC whatever the number of files. Formatting and mounting one costs ~35 ms here (and its
//! unmount ~8 ms), too much for a cold start: a background thread keeps a few ready per size that
//! functions use (512 MB from the start), and a release is done by the reaper thread.
//!
//! The images are mounted under `mnt/`, a bind of itself made a shared mount at start, so that a
//! mount made after a prepared sandbox cloned Flint's mount table still propagates into it (and
//! its unmount too); a sandbox makes its copy private when it builds its root, and keeps only its
//! own /tmp of it.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Ready filesystems kept per size.
const READY_PER_SIZE: usize = 2;
/// Sizes kept ready at once (the most recently asked for); others are made on demand.
const SIZES_KEPT: usize = 4;
/// How long the maker waits after a take while that size still has one ready: the cold start
/// that took it runs first (making one is ~35 ms of mkfs and mount on a 2-core host).
const REFILL_DELAY: Duration = Duration::from_millis(50);
/// The maker's nice value: refilling yields to cold starts and invokes.
const MAKER_NICE: libc::c_int = 10;
/// Lambda's default EphemeralStorage, kept ready from the start.
const DEFAULT_SIZE_MB: u32 = 512;
/// Lambda's largest; used for "unlimited" (size 0).
const MAX_SIZE_MB: u32 = 10_240;

/// Every environment's /tmp as an ext4 image of its own.
pub(crate) struct ImagePool {
    shared: Arc<Shared>,
    reaper: mpsc::Sender<Job>,
}

/// Work for the reaper thread.
enum Job {
    Release(Image),
    /// Answer once everything queued before is done.
    Flush(mpsc::Sender<()>),
}

impl std::fmt::Debug for ImagePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImagePool")
            .field("mnt", &self.shared.mnt)
            .finish()
    }
}

/// What the maker thread shares with the pool.
struct Shared {
    mnt: PathBuf,
    images: PathBuf,
    mkfs: PathBuf,
    owner: (u32, u32),
    next: AtomicU64,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    ready: HashMap<u32, Vec<Image>>,
    /// Sizes to keep ready, most recently asked for first.
    wanted: Vec<u32>,
    shutdown: bool,
}

/// One mounted ext4 filesystem; unmounted and deleted by `release`.
pub(crate) struct Image {
    mount_point: PathBuf,
    file: PathBuf,
}

impl Image {
    pub fn path(&self) -> &Path {
        &self.mount_point
    }
}

impl ImagePool {
    /// Sets up `dir` (cleaned of leftovers by the caller) and proves one image can be made.
    pub fn open(dir: &Path, owner: (u32, u32)) -> Result<ImagePool, String> {
        let mkfs = super::find_program("mkfs.ext4").ok_or("mkfs.ext4 not found (e2fsprogs)")?;
        let mnt = dir.join("mnt");
        let images = dir.join("images");
        for d in [dir, &mnt, &images] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        // Before anything is mounted: a bind without an owner file is a dead Flint's to another
        // Flint's (or another pool's) `sweep_orphans`, which would unmount it under us.
        if let Some(me) = super::process_identity("self") {
            std::fs::write(dir.join(super::OWNER_FILE), me)
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        share(&mnt)?;
        let shared = Arc::new(Shared {
            mnt,
            images,
            mkfs,
            owner,
            next: AtomicU64::new(0),
            state: Mutex::new(State {
                wanted: vec![DEFAULT_SIZE_MB],
                ..State::default()
            }),
            wake: Condvar::new(),
        });
        let probe = shared.make(DEFAULT_SIZE_MB)?;
        shared
            .lock()
            .ready
            .entry(DEFAULT_SIZE_MB)
            .or_default()
            .push(probe);
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("flint-tmp-reaper".into())
            .spawn(move || {
                for job in rx {
                    match job {
                        Job::Release(image) => release(image),
                        Job::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })
            .map_err(|e| format!("reaper thread: {e}"))?;
        let maker = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("flint-tmp-maker".into())
            .spawn(move || maker.keep_ready())
            .map_err(|e| format!("maker thread: {e}"))?;
        Ok(ImagePool { shared, reaper: tx })
    }

    pub fn mount_point(&self) -> &Path {
        &self.shared.mnt
    }

    /// A fresh /tmp of `size_mb` (0: Lambda's largest), owned by the sandbox user: a ready one
    /// when there is one, else made now (and this size kept ready from now on).
    pub fn create(&self, size_mb: u32) -> io::Result<Image> {
        let size_mb = if size_mb == 0 { MAX_SIZE_MB } else { size_mb };
        let ready = {
            let mut state = self.shared.lock();
            if state.shutdown {
                return Err(io::Error::other("Flint is shutting down"));
            }
            state.wanted.retain(|s| *s != size_mb);
            state.wanted.insert(0, size_mb);
            state.wanted.truncate(SIZES_KEPT);
            let wanted = state.wanted.clone();
            state.ready.retain(|size, images| {
                let keep = wanted.contains(size);
                if !keep {
                    for image in images.drain(..) {
                        let _ = self.reaper.send(Job::Release(image));
                    }
                }
                keep
            });
            state.ready.get_mut(&size_mb).and_then(Vec::pop)
        };
        self.shared.wake.notify_one();
        match ready {
            Some(image) => Ok(image),
            None => self.shared.make(size_mb).map_err(io::Error::other),
        }
    }

    /// Unmounts and deletes `image` in the background.
    pub fn release(&self, image: Image) {
        if let Err(mpsc::SendError(Job::Release(image))) = self.reaper.send(Job::Release(image)) {
            release(image);
        }
    }

    /// At shutdown: no more images; the ready ones and those already released are unmounted and
    /// deleted before this returns (within a few seconds).
    pub fn close(&self) {
        let ready: Vec<Image> = {
            let mut state = self.shared.lock();
            state.shutdown = true;
            state.ready.drain().flat_map(|(_, v)| v).collect()
        };
        self.shared.wake.notify_all();
        for image in ready {
            release(image);
        }
        let (done, flushed) = mpsc::channel();
        if self.reaper.send(Job::Flush(done)).is_ok() {
            let _ = flushed.recv_timeout(Duration::from_secs(5));
        }
    }
}

impl Drop for ImagePool {
    fn drop(&mut self) {
        self.close();
        // Images still in use by a sandbox went to the reaper already (they hold this pool).
        let _ = umount2(&self.shared.mnt, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir_all(&self.shared.images);
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The maker thread: refills the wanted sizes, one image at a time, until shutdown.
    fn keep_ready(&self) {
        // SAFETY: setpriority on this thread (a tid is a valid `who` for PRIO_PROCESS on Linux);
        // mkfs.ext4 inherits it.
        unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, MAKER_NICE);
        }
        let mut failures = 0u32;
        loop {
            let (size, spare) = {
                let mut state = self.lock();
                loop {
                    if state.shutdown {
                        return;
                    }
                    let short = state
                        .wanted
                        .iter()
                        .copied()
                        .find(|s| state.ready.get(s).map_or(0, Vec::len) < READY_PER_SIZE);
                    match short {
                        Some(size) => {
                            break (size, state.ready.get(&size).is_some_and(|v| !v.is_empty()))
                        }
                        None => {
                            state = self.wake.wait(state).unwrap_or_else(|p| p.into_inner());
                        }
                    }
                }
            };
            if spare {
                std::thread::sleep(REFILL_DELAY);
            }
            match self.make(size) {
                Ok(image) => {
                    failures = 0;
                    let mut state = self.lock();
                    if state.shutdown || !state.wanted.contains(&size) {
                        drop(state);
                        release(image);
                    } else {
                        state.ready.entry(size).or_default().push(image);
                    }
                }
                Err(e) => {
                    // The cold start makes its own then; retry later, not in a tight loop.
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!("cannot prepare a /tmp image: {e}");
                    }
                    std::thread::sleep(Duration::from_secs(u64::from(failures.min(30))));
                }
            }
        }
    }

    /// A sparse image of `size_mb`, formatted, attached and mounted at `mnt/<n>`, empty and
    /// owned by the sandbox user.
    fn make(&self, size_mb: u32) -> Result<Image, String> {
        let name = self.next.fetch_add(1, Ordering::Relaxed).to_string();
        let image = Image {
            mount_point: self.mnt.join(&name),
            file: self.images.join(format!("{name}.img")),
        };
        match self.format_and_mount(&image, size_mb) {
            Ok(()) => Ok(image),
            Err(e) => {
                release(image);
                Err(e)
            }
        }
    }

    fn format_and_mount(&self, image: &Image, size_mb: u32) -> Result<(), String> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&image.file)
            .and_then(|f| f.set_len(u64::from(size_mb) << 20).map(|()| f))
            .map_err(|e| format!("sparse image {}: {e}", image.file.display()))?;
        let (uid, gid) = self.owner;
        // No journal (nothing in /tmp outlives a crash), no blocks reserved for root, inode
        // tables left for the kernel to treat as zero (`noinit_itable` below); 4 KiB blocks, as
        // the loop device's sectors may be (direct I/O).
        let out = std::process::Command::new(&self.mkfs)
            .args([
                "-q",
                "-F",
                "-t",
                "ext4",
                "-b",
                "4096",
                "-O",
                "^has_journal",
                "-m",
                "0",
                "-E",
            ])
            .arg(format!(
                "lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner={uid}:{gid}"
            ))
            .arg(&image.file)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("{}: {e}", self.mkfs.display()))?;
        if !out.status.success() {
            return Err(format!(
                "mkfs.ext4 failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let loop_dev =
            super::loop_attach(&file, &image.file).map_err(|e| format!("loop device: {e}"))?;
        drop(file);
        std::fs::create_dir(&image.mount_point)
            .map_err(|e| format!("{}: {e}", image.mount_point.display()))?;
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOATIME;
        // `discard` punches holes in the image as /tmp files are deleted: the disk is given back.
        mount(
            Some(&loop_dev.path),
            &image.mount_point,
            Some("ext4"),
            flags,
            Some("noinit_itable,discard"),
        )
        .map_err(|e| {
            format!(
                "mount {} on {}: {e}",
                loop_dev.path.display(),
                image.mount_point.display()
            )
        })?;
        // The mount holds the loop device now; with autoclear it goes away at the last unmount.
        let device = loop_dev.path.clone();
        drop(loop_dev);
        // ext4 keeps up to 2 % (at most 64 MiB) for delayed allocation; /tmp should offer its size.
        if let Some(dev) = device.file_name().and_then(|n| n.to_str()) {
            let _ = std::fs::write(format!("/sys/fs/ext4/{dev}/reserved_clusters"), "0");
        }
        // Lambda's /tmp starts empty.
        let _ = std::fs::remove_dir(image.mount_point.join("lost+found"));
        std::fs::set_permissions(&image.mount_point, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("{}: {e}", image.mount_point.display()))?;
        Ok(())
    }
}

/// Unmounts (lazily: a sandbox may still hold it; its loop device detaches itself once nothing
/// does) and deletes one image.
fn release(image: Image) {
    let _ = umount2(&image.mount_point, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir(&image.mount_point);
    let _ = std::fs::remove_file(&image.file);
}

/// Makes `mnt` a mount point of its own in a new peer group: mounts below it propagate into the
/// mount namespaces cloned from Flint's (prepared sandboxes), and never to the host's.
fn share(mnt: &Path) -> Result<(), String> {
    let err = |what: &str, e: nix::Error| format!("{what} {}: {e}", mnt.display());
    mount(Some(mnt), mnt, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| err("bind", e))?;
    for flag in [MsFlags::MS_PRIVATE, MsFlags::MS_SHARED] {
        mount(None::<&str>, mnt, None::<&str>, flag, None::<&str>)
            .map_err(|e| err("propagation of", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs root and mkfs.ext4 (skipped otherwise): a /tmp holds about its size in total across
    /// files, a ready one is handed out at once, and releasing one frees its loop device.
    #[test]
    fn each_environment_gets_its_own_ext4_of_its_size() {
        use std::io::Write;
        if !nix::unistd::geteuid().is_root() || super::super::find_program("mkfs.ext4").is_none() {
            eprintln!("skipped: needs root and mkfs.ext4");
            return;
        }
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().join("tmp-volume");
        let pool = ImagePool::open(&dir, (993, 990)).unwrap();
        let started = std::time::Instant::now();
        let tmp = pool.create(DEFAULT_SIZE_MB).unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(5),
            "{:?}",
            started.elapsed()
        );
        let empty: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert!(empty.is_empty(), "{empty:?}");
        let small = pool.create(20).unwrap();
        let chunk = vec![7u8; 1 << 20];
        let mut written = 0u64;
        let mut error = None;
        'files: for n in 0..10 {
            let mut f = std::fs::File::create(small.path().join(format!("f{n}"))).unwrap();
            for _ in 0..5 {
                if let Err(e) = f.write_all(&chunk).and_then(|()| f.sync_all()) {
                    error = Some(e);
                    break 'files;
                }
                written += chunk.len() as u64;
            }
        }
        let error = error.expect("more than 20 MB written to a 20 MB /tmp");
        assert_eq!(error.raw_os_error(), Some(libc::ENOSPC), "{error}");
        assert!(written >= 18 << 20, "only {written} bytes fit");
        let image_file = small.file.clone();
        pool.release(small);
        pool.release(tmp);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !super::super::loops_backed_by(&image_file).is_empty() || image_file.exists() {
            assert!(std::time::Instant::now() < deadline, "loop device left");
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(pool);
    }
}
