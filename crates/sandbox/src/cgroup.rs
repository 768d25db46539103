//! Control groups of the sandboxes: finds where this host lets us create them (cgroup v1 controller
//! hierarchies, or a delegated cgroup v2 subtree), creates one cgroup per sandbox with Lambda's
//! limits (memory = MemorySize, pids, a CPU *weight* proportional to memory), reads peak memory and
//! OOM kills, and removes them again (retrying in the background while processes are still exiting).

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Folder (under this process's own cgroup) that holds every Flint sandbox cgroup.
pub(crate) const PARENT_NAME: &str = "flint-sandboxes";
/// Leaf that Flint moves itself into on cgroup v2 (a cgroup with children may hold no process).
const SERVER_LEAF_NAME: &str = "flint-server";
/// Lambda gives 1 vCPU at 1,769 MB and scales CPU linearly with memory.
const MB_PER_VCPU: u64 = 1769;
/// Lambda's limit on processes and threads per execution environment.
pub(crate) const PIDS_MAX: u32 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
}

/// Where one controller's sandbox cgroups are created: `dir/<sandbox id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    pub version: Version,
    /// This Flint instance's parent cgroup (already created).
    pub dir: PathBuf,
}

/// The host's cgroup set-up for sandboxes, decided once at start.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    pub memory: Option<Place>,
    pub pids: Option<Place>,
    pub cpu: Option<Place>,
    /// Where idle sandboxes are frozen: the v1 freezer hierarchy, or the v2 dir (whose
    /// `cgroup.freeze` needs no controller).
    pub freezer: Option<Place>,
    /// cgroup v1 `memory.memsw.*` exists (swap accounting), so swap can be limited too.
    pub memsw: bool,
    /// Why a controller is unavailable (logged once, shown in the summary).
    pub problems: Vec<String>,
}

impl Layout {
    /// Detects the host's cgroups and prepares `flint-sandboxes/<instance>` in each usable one.
    /// Never fails: what cannot be used is left `None` with a reason in `problems`.
    pub fn detect(instance: &str) -> Layout {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mounts = parse_mountinfo(&mountinfo);
        let memberships = parse_proc_cgroup(&own);
        let mut layout = Layout::default();
        let mut v2_places: Option<Result<PathBuf, String>> = None;

        for controller in ["memory", "pids", "cpu"] {
            let place = match v1_dir(&mounts, &memberships, controller) {
                Some(own_dir) => {
                    let dir = own_dir.join(PARENT_NAME).join(instance);
                    match fs::create_dir_all(&dir) {
                        Ok(()) => Ok(Place {
                            version: Version::V1,
                            dir,
                        }),
                        Err(e) => Err(format!("cannot create {}: {e}", dir.display())),
                    }
                }
                None => match v2_target(&mounts, &memberships) {
                    Some((mount, own_rel)) if v2_root_has(&mount, controller) => {
                        let prepared = v2_places.get_or_insert_with(|| {
                            prepare_v2(&mount, &own_rel, instance, nix::unistd::geteuid().is_root())
                        });
                        match prepared {
                            Ok(dir) => Ok(Place {
                                version: Version::V2,
                                dir: dir.clone(),
                            }),
                            Err(e) => Err(e.clone()),
                        }
                    }
                    _ => Err("no cgroup hierarchy offers it".to_string()),
                },
            };
            match place {
                Ok(p) => match controller {
                    "memory" => layout.memory = Some(p),
                    "pids" => layout.pids = Some(p),
                    _ => layout.cpu = Some(p),
                },
                Err(reason) => layout
                    .problems
                    .push(format!("{controller} controller: {reason}")),
            }
        }
        layout.freezer = match v1_dir(&mounts, &memberships, "freezer") {
            Some(own_dir) => {
                let dir = own_dir.join(PARENT_NAME).join(instance);
                match fs::create_dir_all(&dir) {
                    Ok(()) => Some(Place {
                        version: Version::V1,
                        dir,
                    }),
                    Err(e) => {
                        layout
                            .problems
                            .push(format!("freezer: cannot create {}: {e}", dir.display()));
                        None
                    }
                }
            }
            None => [&layout.memory, &layout.pids, &layout.cpu]
                .into_iter()
                .flatten()
                .find(|p| p.version == Version::V2)
                .cloned(),
        };
        if layout.freezer.is_none() {
            layout.problems.push(
                "freezer: no v1 freezer hierarchy nor a v2 cgroup (idle environments keep running)"
                    .into(),
            );
        }
        layout.memsw = layout.memory.as_ref().is_some_and(|p| {
            p.version == Version::V1 && p.dir.join("memory.memsw.limit_in_bytes").exists()
        });
        layout
    }

    /// Distinct instance dirs (a v2 hierarchy holds all controllers in one dir).
    fn instance_dirs(&self) -> Vec<&Place> {
        let mut seen = BTreeSet::new();
        [&self.memory, &self.pids, &self.cpu, &self.freezer]
            .into_iter()
            .flatten()
            .filter(|p| seen.insert(p.dir.clone()))
            .collect()
    }

    /// Removes this instance's (empty) parent cgroups, when Flint stops.
    pub fn remove_instance_dirs(&self) {
        for place in self.instance_dirs() {
            let _ = fs::remove_dir(&place.dir);
        }
    }

    /// Kills and removes cgroups left by a previous run of this instance (a crash, kill -9).
    pub fn remove_leftovers(&self) -> usize {
        let mut removed = 0;
        for place in self.instance_dirs() {
            let Ok(entries) = fs::read_dir(&place.dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let dir = entry.path();
                kill_cgroup(place.version, &dir);
                if remove_with_retry(place.version, &dir, Duration::from_secs(2)).is_ok() {
                    removed += 1;
                } else {
                    tracing::warn!("could not remove leftover cgroup {}", dir.display());
                }
            }
        }
        removed
    }

    /// Creates the cgroup(s) of one sandbox and writes its limits.
    pub fn create(&self, id: &str, memory_mb: u32) -> io::Result<SandboxCgroup> {
        let mut cg = self.create_dirs(id)?;
        if let Err(e) = self.write_limits(&mut cg, memory_mb) {
            cg.remove_now_or_later();
            return Err(e);
        }
        Ok(cg)
    }

    /// Creates the cgroup(s) of a sandbox prepared ahead of its spec (the pool), named `name`: only
    /// the pids limit is known yet; `assign` writes the rest when a spec takes the sandbox.
    pub fn create_for_pool(&self, name: &str) -> io::Result<SandboxCgroup> {
        let cg = self.create_dirs(name)?;
        if let Some(place) = &self.pids {
            if let Some(dir) = cg.dir_in(place) {
                if let Err(e) = write_file(&dir.join("pids.max"), &PIDS_MAX.to_string()) {
                    cg.remove_now_or_later();
                    return Err(e);
                }
            }
        }
        Ok(cg)
    }

    /// Gives a pool cgroup to the sandbox `id`: renamed after it where the hierarchy allows (v1;
    /// cgroup v2 refuses renames, so there it keeps its pool name), with the spec's limits, and
    /// the peak memory counted from here (not from the sandbox's idle time in the pool).
    pub fn assign(&self, cg: &mut SandboxCgroup, id: &str, memory_mb: u32) -> io::Result<()> {
        for d in &mut cg.dirs {
            if d.version != Version::V1 {
                continue;
            }
            let Some(parent) = d.path.parent() else {
                continue;
            };
            let target = parent.join(id);
            if target.exists() {
                // A previous sandbox with this id (it should not happen): start from a clean one.
                kill_cgroup(d.version, &target);
                remove_with_retry(d.version, &target, Duration::from_millis(500))?;
            }
            // Best effort: the name only helps people (and tests) find a sandbox's cgroup.
            if fs::rename(&d.path, &target).is_ok() {
                d.path = target;
            }
        }
        self.write_limits(cg, memory_mb)?;
        cg.reset_peak_memory();
        Ok(())
    }

    fn create_dirs(&self, name: &str) -> io::Result<SandboxCgroup> {
        let mut cg = SandboxCgroup::default();
        for place in self.instance_dirs() {
            let dir = place.dir.join(name);
            if dir.exists() {
                // A previous sandbox with this id (it should not happen): start from a clean one.
                kill_cgroup(place.version, &dir);
                remove_with_retry(place.version, &dir, Duration::from_millis(500))?;
            }
            let created = match fs::create_dir(&dir) {
                // Our instance dir vanished (someone cleaned up): v1 parents need no set-up.
                Err(e) if e.kind() == io::ErrorKind::NotFound && place.version == Version::V1 => {
                    fs::create_dir_all(&dir)
                }
                other => other,
            };
            let ino = match created.and_then(|()| fs::metadata(&dir)) {
                Ok(m) => m.ino(),
                Err(e) => {
                    cg.remove_now_or_later();
                    return Err(e);
                }
            };
            cg.dirs.push(CgroupDir {
                version: place.version,
                path: dir,
                ino,
            });
        }
        Ok(cg)
    }

    fn write_limits(&self, cg: &mut SandboxCgroup, memory_mb: u32) -> io::Result<()> {
        let bytes = u64::from(memory_mb) * 1024 * 1024;
        if let Some(place) = &self.memory {
            if let Some(dir) = cg.dir_in(place) {
                match place.version {
                    Version::V1 => {
                        write_file(&dir.join("memory.limit_in_bytes"), &bytes.to_string())?;
                        if self.memsw {
                            // Same as the memory limit: no swapping past MemorySize.
                            write_file(
                                &dir.join("memory.memsw.limit_in_bytes"),
                                &bytes.to_string(),
                            )?;
                        }
                    }
                    Version::V2 => {
                        write_file(&dir.join("memory.max"), &bytes.to_string())?;
                        // Absent when the host has no swap accounting; nothing to limit then.
                        let _ = write_file(&dir.join("memory.swap.max"), "0");
                        cg.peak_file = fs::OpenOptions::new()
                            .read(true)
                            .write(true)
                            .open(dir.join("memory.peak"))
                            .or_else(|_| fs::File::open(dir.join("memory.peak")))
                            .ok();
                    }
                }
                cg.memory = Some((place.version, dir));
            }
        }
        if let Some(place) = &self.pids {
            if let Some(dir) = cg.dir_in(place) {
                write_file(&dir.join("pids.max"), &PIDS_MAX.to_string())?;
            }
        }
        if let Some(place) = &self.freezer {
            if let Some(dir) = cg.dir_in(place) {
                let file = match place.version {
                    Version::V1 => dir.join("freezer.state"),
                    Version::V2 => dir.join("cgroup.freeze"),
                };
                cg.freezer = fs::OpenOptions::new()
                    .write(true)
                    .open(file)
                    .ok()
                    .map(|f| (place.version, f));
            }
        }
        if let Some(place) = &self.cpu {
            if let Some(dir) = cg.dir_in(place) {
                match place.version {
                    Version::V1 => write_file(
                        &dir.join("cpu.shares"),
                        &cpu_shares_v1(memory_mb).to_string(),
                    )?,
                    Version::V2 => write_file(
                        &dir.join("cpu.weight"),
                        &cpu_weight_v2(memory_mb).to_string(),
                    )?,
                }
            }
        }
        Ok(())
    }
}

/// cgroup v1 `cpu.shares` (default 1024 = one "normal" process) for a function's memory size.
pub(crate) fn cpu_shares_v1(memory_mb: u32) -> u64 {
    (1024 * u64::from(memory_mb) / MB_PER_VCPU).clamp(2, 262_144)
}

/// cgroup v2 `cpu.weight` (default 100) for a function's memory size.
pub(crate) fn cpu_weight_v2(memory_mb: u32) -> u64 {
    (100 * u64::from(memory_mb) / MB_PER_VCPU).clamp(1, 10_000)
}

/// One sandbox's cgroup dirs (one per v1 hierarchy, or one v2 dir).
#[derive(Debug, Default)]
pub(crate) struct SandboxCgroup {
    dirs: Vec<CgroupDir>,
    memory: Option<(Version, PathBuf)>,
    /// v2 `memory.peak` held open: since Linux 6.12 a write resets the peak seen through this fd.
    peak_file: Option<fs::File>,
    /// v1 `memory.max_usage_in_bytes`, opened at the first read and kept: every invoke's REPORT
    /// reads it, and a path lookup in the cgroup filesystem costs more than the read.
    v1_peak_file: std::sync::OnceLock<Option<fs::File>>,
    /// `freezer.state` (v1) or `cgroup.freeze` (v2), held open: written at every freeze/thaw.
    freezer: Option<(Version, fs::File)>,
}

impl SandboxCgroup {
    /// This sandbox's dir under `place` (one controller's instance dir).
    fn dir_in(&self, place: &Place) -> Option<PathBuf> {
        self.dirs
            .iter()
            .find(|d| d.path.parent() == Some(place.dir.as_path()))
            .map(|d| d.path.clone())
    }

    /// `cgroup.procs` files to write the sandbox's first process into.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|d| d.path.join("cgroup.procs"))
            .collect()
    }

    pub fn has_memory(&self) -> bool {
        self.memory.is_some()
    }

    pub fn peak_memory_bytes(&self) -> Option<u64> {
        let (version, dir) = self.memory.as_ref()?;
        match version {
            Version::V1 => {
                let file = self
                    .v1_peak_file
                    .get_or_init(|| fs::File::open(dir.join("memory.max_usage_in_bytes")).ok());
                match file {
                    Some(f) => read_u64_at(f),
                    None => read_u64(&dir.join("memory.max_usage_in_bytes")),
                }
            }
            Version::V2 => {
                if let Some(file) = &self.peak_file {
                    return read_u64_at(file);
                }
                // Kernels before 5.19 have no memory.peak: the current usage is the best we have.
                read_u64(&dir.join("memory.peak")).or_else(|| read_u64(&dir.join("memory.current")))
            }
        }
    }

    pub fn reset_peak_memory(&self) {
        let Some((version, dir)) = &self.memory else {
            return;
        };
        match version {
            Version::V1 => {
                let _ = write_file(&dir.join("memory.max_usage_in_bytes"), "0");
            }
            Version::V2 => {
                if let Some(mut file) = self.peak_file.as_ref() {
                    // Fails (EINVAL/EACCES) before Linux 6.12: the peak then counts from the start.
                    let _ = file
                        .seek(io::SeekFrom::Start(0))
                        .and_then(|_| file.write_all(b"reset\n"));
                }
            }
        }
    }

    /// How many times the OOM killer fired in this cgroup.
    pub fn oom_kills(&self) -> Option<u64> {
        let (version, dir) = self.memory.as_ref()?;
        let (file, key) = match version {
            Version::V1 => ("memory.oom_control", "oom_kill"),
            Version::V2 => ("memory.events", "oom_kill"),
        };
        let text = fs::read_to_string(dir.join(file)).ok()?;
        keyed_value(&text, key)
    }

    /// SIGKILLs every process in the sandbox's cgroups.
    pub fn kill_all(&self) {
        for d in &self.dirs {
            kill_cgroup(d.version, &d.path);
        }
    }

    /// Stops every process of the sandbox until `thaw` (false where no freezer is available).
    pub fn freeze(&self) -> bool {
        self.write_freezer(true)
    }

    pub fn thaw(&self) -> bool {
        self.write_freezer(false)
    }

    fn write_freezer(&self, frozen: bool) -> bool {
        use std::os::unix::fs::FileExt;
        let Some((version, file)) = &self.freezer else {
            return false;
        };
        let value: &[u8] = match (version, frozen) {
            (Version::V1, true) => b"FROZEN",
            (Version::V1, false) => b"THAWED",
            (Version::V2, true) => b"1",
            (Version::V2, false) => b"0",
        };
        file.write_at(value, 0).is_ok()
    }

    /// Kills what is inside and removes the cgroup dirs before returning (waiting up to `patience`
    /// for the processes to be gone): for shutdown, when the parent dirs are removed right after.
    pub fn remove_now(mut self, patience: Duration) {
        self.peak_file = None;
        self.v1_peak_file = std::sync::OnceLock::new();
        for d in std::mem::take(&mut self.dirs) {
            kill_cgroup(d.version, &d.path);
            if d.remove_with_retry(patience).is_err() {
                tracing::warn!("cgroup {} is still busy; left in place", d.path.display());
            }
        }
    }

    /// Removes the cgroup dirs now, or hands them to a background thread that retries while the
    /// sandbox's processes are still exiting.
    pub fn remove_now_or_later(mut self) {
        self.peak_file = None;
        self.v1_peak_file = std::sync::OnceLock::new();
        let pending: Vec<CgroupDir> = std::mem::take(&mut self.dirs)
            .into_iter()
            .filter(|d| fs::remove_dir(&d.path).is_err() && d.path.exists())
            .collect();
        if !pending.is_empty() {
            remover().send(pending).ok();
        }
    }
}

/// The background thread that removes cgroups whose processes were still exiting.
fn remover() -> &'static mpsc::Sender<Vec<CgroupDir>> {
    static SENDER: OnceLock<mpsc::Sender<Vec<CgroupDir>>> = OnceLock::new();
    SENDER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Vec<CgroupDir>>();
        let spawned = std::thread::Builder::new()
            .name("flint-cgroup-remover".into())
            .spawn(move || {
                while let Ok(dirs) = rx.recv() {
                    for d in dirs {
                        if d.remove_with_retry(Duration::from_secs(10)).is_err() {
                            tracing::warn!(
                                "cgroup {} is still busy after 10 s; left in place",
                                d.path.display()
                            );
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the cgroup remover thread: {e}");
        }
        tx
    })
}

/// One created cgroup dir; the inode tells it apart from a later cgroup of the same name.
#[derive(Debug)]
struct CgroupDir {
    version: Version,
    path: PathBuf,
    ino: u64,
}

impl CgroupDir {
    fn remove_with_retry(&self, patience: Duration) -> io::Result<()> {
        let start = Instant::now();
        let mut pause = Duration::from_micros(200);
        loop {
            match fs::metadata(&self.path) {
                Ok(m) if m.ino() == self.ino => {}
                // Gone, or already replaced by a new sandbox's cgroup of the same id: not ours.
                _ => return Ok(()),
            }
            match fs::remove_dir(&self.path) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) if start.elapsed() >= patience => return Err(e),
                Err(_) => {
                    kill_cgroup(self.version, &self.path);
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
            }
        }
    }
}

fn remove_with_retry(version: Version, dir: &Path, patience: Duration) -> io::Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(200);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if start.elapsed() >= patience => return Err(e),
            Err(_) => {
                kill_cgroup(version, dir);
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        }
    }
}

/// SIGKILLs the processes of one cgroup dir (v2 `cgroup.kill` when present, else one by one).
fn kill_cgroup(version: Version, dir: &Path) {
    if version == Version::V2 && write_file(&dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) else {
        return;
    };
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        if pid > 1 {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
    }
    // A frozen process dies only once thawed.
    let _ = match version {
        Version::V1 => write_file(&dir.join("freezer.state"), "THAWED"),
        Version::V2 => write_file(&dir.join("cgroup.freeze"), "0"),
    };
}

pub(crate) fn write_file(path: &Path, value: &str) -> io::Result<()> {
    // One write() per value: cgroup files reject values split over several writes.
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
}

/// A number from a cgroup file held open (read from offset 0 every time).
fn read_u64_at(file: &fs::File) -> Option<u64> {
    let mut buf = [0u8; 32];
    let n = file.read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

fn read_u64(path: &Path) -> Option<u64> {
    let mut s = String::new();
    fs::File::open(path).ok()?.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

/// `key value` lines (memory.events, memory.oom_control).
pub(crate) fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next() == Some(key))
            .then(|| parts.next()?.parse().ok())
            .flatten()
    })
}

/// A cgroup filesystem mount from /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupMount {
    pub v2: bool,
    /// Path inside the hierarchy that is mounted (usually `/`).
    pub root: String,
    pub mount_point: PathBuf,
    /// v1 controllers of this hierarchy (from the super options).
    pub controllers: Vec<String>,
}

pub(crate) fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 5 || r.len() < 3 {
            continue;
        }
        let v2 = match r[0] {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let controllers = if v2 {
            Vec::new()
        } else {
            r[2].split(',')
                .filter(|o| !matches!(*o, "rw" | "ro") && !o.contains('='))
                .map(str::to_string)
                .collect()
        };
        out.push(CgroupMount {
            v2,
            root: unescape_mount_path(l[3]),
            mount_point: PathBuf::from(unescape_mount_path(l[4])),
            controllers,
        });
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape_mount_path(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of /proc/self/cgroup: hierarchy controllers (empty for v2) and our path in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Membership {
    pub controllers: Vec<String>,
    pub path: String,
}

pub(crate) fn parse_proc_cgroup(text: &str) -> Vec<Membership> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?.to_string();
            let controllers = if controllers.is_empty() {
                Vec::new()
            } else {
                controllers.split(',').map(str::to_string).collect()
            };
            Some(Membership { controllers, path })
        })
        .collect()
}

/// Our own cgroup dir in the v1 hierarchy that has `controller`, if one is mounted.
pub(crate) fn v1_dir(
    mounts: &[CgroupMount],
    memberships: &[Membership],
    controller: &str,
) -> Option<PathBuf> {
    let mount = mounts
        .iter()
        .find(|m| !m.v2 && m.controllers.iter().any(|c| c == controller))?;
    let member = memberships
        .iter()
        .find(|m| m.controllers.iter().any(|c| c == controller))?;
    Some(join_cgroup_path(
        &mount.mount_point,
        &mount.root,
        &member.path,
    ))
}

/// Maps a cgroup path onto a mount of (part of) its hierarchy.
fn join_cgroup_path(mount_point: &Path, mount_root: &str, path: &str) -> PathBuf {
    let rel = if mount_root != "/" && path.starts_with(mount_root) {
        &path[mount_root.len()..]
    } else {
        path
    };
    mount_point.join(rel.trim_start_matches('/'))
}

/// The cgroup v2 mount and our path in it (`0::/path`).
fn v2_target(mounts: &[CgroupMount], memberships: &[Membership]) -> Option<(PathBuf, String)> {
    let mount = mounts.iter().find(|m| m.v2)?;
    let member = memberships.iter().find(|m| m.controllers.is_empty())?;
    let rel = if mount.root != "/" && member.path.starts_with(&mount.root) {
        member.path[mount.root.len()..].to_string()
    } else {
        member.path.clone()
    };
    Some((mount.mount_point.clone(), rel))
}

fn v2_root_has(mount: &Path, controller: &str) -> bool {
    fs::read_to_string(mount.join("cgroup.controllers"))
        .is_ok_and(|s| s.split_whitespace().any(|c| c == controller))
}

/// Prepares `<base>/flint-sandboxes/<instance>` on cgroup v2 with controllers enabled down to it.
/// `base` is our own cgroup when it is delegated to us (we move ourselves into a leaf, since a v2
/// cgroup with children may not hold processes), else the root cgroup when we are root.
pub(crate) fn prepare_v2(
    mount: &Path,
    own_rel: &str,
    instance: &str,
    is_root: bool,
) -> Result<PathBuf, String> {
    let own = mount.join(own_rel.trim_start_matches('/'));
    let wanted = |dir: &Path| -> Vec<String> {
        fs::read_to_string(dir.join("cgroup.controllers"))
            .unwrap_or_default()
            .split_whitespace()
            .filter(|c| matches!(*c, "memory" | "pids" | "cpu"))
            .map(str::to_string)
            .collect()
    };
    let base = if own == mount {
        // The real root cgroup may hold processes and have children; the root of a cgroup
        // namespace (a container) may not, so there we also step into a leaf first.
        if enable_controllers(&own, &wanted(&own)).is_err() {
            take_own_cgroup(&own, &wanted(&own))?;
        }
        own
    } else {
        match take_own_cgroup(&own, &wanted(&own)) {
            Ok(()) => own,
            Err(reason) if is_root => {
                tracing::debug!("cgroup v2: not using our own cgroup ({reason}); using the root cgroup");
                mount.to_path_buf()
            }
            Err(reason) => {
                return Err(format!(
                    "{reason}; run Flint in a delegated cgroup, e.g. `systemd-run --user --scope -p Delegate=yes flint serve`"
                ))
            }
        }
    };
    let controllers = wanted(&base);
    if controllers.is_empty() {
        return Err(format!(
            "no memory/pids/cpu controller is delegated to {}",
            base.display()
        ));
    }
    let mut dir = base;
    for next in [PARENT_NAME, instance] {
        enable_controllers(&dir, &controllers)?;
        dir = dir.join(next);
        if let Err(e) = fs::create_dir(&dir) {
            if e.kind() != io::ErrorKind::AlreadyExists {
                return Err(format!("cannot create {}: {e}", dir.display()));
            }
        }
    }
    enable_controllers(&dir, &controllers)?;
    Ok(dir)
}

/// Moves this process into `own/flint-server` so that `own` may get child cgroups with controllers.
fn take_own_cgroup(own: &Path, controllers: &[String]) -> Result<(), String> {
    if controllers.is_empty() {
        return Err(format!(
            "no memory/pids/cpu controller is delegated to {}",
            own.display()
        ));
    }
    let me = std::process::id().to_string();
    let procs = fs::read_to_string(own.join("cgroup.procs"))
        .map_err(|e| format!("cannot read {}: {e}", own.join("cgroup.procs").display()))?;
    if procs
        .lines()
        .any(|p| p.trim() != me && !p.trim().is_empty())
    {
        return Err(format!(
            "other processes share our cgroup {}",
            own.display()
        ));
    }
    let leaf = own.join(SERVER_LEAF_NAME);
    if let Err(e) = fs::create_dir(&leaf) {
        if e.kind() != io::ErrorKind::AlreadyExists {
            return Err(format!("cannot create {}: {e}", leaf.display()));
        }
    }
    write_file(&leaf.join("cgroup.procs"), &me)
        .map_err(|e| format!("cannot move Flint into {}: {e}", leaf.display()))
}

fn enable_controllers(dir: &Path, controllers: &[String]) -> Result<(), String> {
    let file = dir.join("cgroup.subtree_control");
    let enabled = fs::read_to_string(&file).unwrap_or_default();
    for c in controllers {
        if enabled.split_whitespace().any(|e| e == c) {
            continue;
        }
        write_file(&file, &format!("+{c}"))
            .map_err(|e| format!("cannot enable {c} in {}: {e}", file.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
35 25 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
36 35 0:31 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
40 35 0:35 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
41 35 0:36 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory
42 35 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
";
    const PROC_CGROUP: &str = "\
9:name=systemd:/
4:memory:/process_api/0313fd
2:cpu,cpuacct:/
0::/
";

    #[test]
    fn v1_comounted_controllers_are_found_beneath_our_own_cgroup() {
        let mounts = parse_mountinfo(MOUNTINFO);
        let members = parse_proc_cgroup(PROC_CGROUP);
        assert_eq!(
            v1_dir(&mounts, &members, "memory"),
            Some(PathBuf::from("/sys/fs/cgroup/memory/process_api/0313fd"))
        );
        assert_eq!(
            v1_dir(&mounts, &members, "cpu"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert_eq!(v1_dir(&mounts, &members, "pids"), None);
        let named = mounts
            .iter()
            .find(|m| m.mount_point.ends_with("systemd"))
            .map(|m| m.controllers.clone());
        assert_eq!(named, Some(vec!["xattr".to_string()]));
    }

    #[test]
    fn v2_member_path_is_taken_from_the_zero_line() {
        let mounts = parse_mountinfo(MOUNTINFO);
        let members = parse_proc_cgroup("0::/user.slice/flint.scope\n");
        assert_eq!(
            v2_target(&mounts, &members),
            Some((
                PathBuf::from("/sys/fs/cgroup/unified"),
                "/user.slice/flint.scope".to_string()
            ))
        );
    }

    #[test]
    fn bind_mounted_hierarchy_roots_are_stripped() {
        assert_eq!(
            join_cgroup_path(
                Path::new("/sys/fs/cgroup/memory"),
                "/docker/abc",
                "/docker/abc/sub"
            ),
            PathBuf::from("/sys/fs/cgroup/memory/sub")
        );
    }

    #[test]
    fn escaped_mount_points_are_decoded() {
        assert_eq!(unescape_mount_path("/a\\040b"), "/a b");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
    }

    #[test]
    fn cpu_share_is_proportional_to_memory_like_lambda() {
        assert_eq!(cpu_shares_v1(1769), 1024);
        assert_eq!(cpu_shares_v1(3538), 2048);
        assert_eq!(cpu_shares_v1(128), 74);
        assert_eq!(cpu_shares_v1(1), 2);
        assert_eq!(cpu_weight_v2(1769), 100);
        assert_eq!(cpu_weight_v2(10240), 578);
        assert_eq!(cpu_weight_v2(128), 7);
    }

    #[test]
    fn oom_kill_count_is_read_from_keyed_files() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed_value(v1, "oom_kill"), Some(3));
        let v2 = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(keyed_value(v2, "oom_kill"), Some(1));
        assert_eq!(keyed_value("oom_kill_disable 0\n", "oom_kill"), None);
    }

    /// A fake cgroup v2 tree (plain files) where our cgroup is delegated and holds only us.
    #[test]
    fn v2_delegated_cgroup_gets_a_server_leaf_and_enabled_controllers() {
        let tmp = tempfile::tempdir().unwrap();
        let mount = tmp.path();
        let own = mount.join("user.slice/flint.service");
        fs::create_dir_all(&own).unwrap();
        fs::write(mount.join("cgroup.controllers"), "cpu memory pids io\n").unwrap();
        fs::write(own.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        fs::write(
            own.join("cgroup.procs"),
            format!("{}\n", std::process::id()),
        )
        .unwrap();
        fs::write(own.join("cgroup.subtree_control"), "").unwrap();
        // Files the kernel would create in new cgroups.
        for d in ["flint-server", "flint-sandboxes", "flint-sandboxes/inst"] {
            fs::create_dir_all(own.join(d)).unwrap();
            fs::write(own.join(d).join("cgroup.controllers"), "cpu memory pids\n").unwrap();
            fs::write(own.join(d).join("cgroup.subtree_control"), "").unwrap();
            fs::write(own.join(d).join("cgroup.procs"), "").unwrap();
        }
        let dir = prepare_v2(mount, "/user.slice/flint.service", "inst", false).unwrap();
        assert_eq!(dir, own.join("flint-sandboxes/inst"));
        assert_eq!(
            fs::read_to_string(own.join("flint-server/cgroup.procs")).unwrap(),
            std::process::id().to_string()
        );
        // Plain files are overwritten in place (no truncation); the kernel accumulates instead.
        // The last controller written shows that each level was enabled, one controller a write.
        assert!(fs::read_to_string(own.join("cgroup.subtree_control"))
            .unwrap()
            .starts_with("+pids"));
        assert!(fs::read_to_string(dir.join("cgroup.subtree_control"))
            .unwrap()
            .starts_with("+pids"));
    }

    #[test]
    fn v2_shared_cgroup_is_refused_for_non_root_with_a_hint() {
        let tmp = tempfile::tempdir().unwrap();
        let mount = tmp.path();
        let own = mount.join("session.scope");
        fs::create_dir_all(&own).unwrap();
        fs::write(own.join("cgroup.controllers"), "memory pids cpu\n").unwrap();
        fs::write(own.join("cgroup.procs"), "1\n2\n").unwrap();
        let err = prepare_v2(mount, "/session.scope", "inst", false).unwrap_err();
        assert!(err.contains("other processes share"), "{err}");
        assert!(err.contains("Delegate=yes"), "{err}");
    }
}
