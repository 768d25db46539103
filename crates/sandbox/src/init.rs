//! What runs in `flint __sandbox-init`: a fresh single-threaded process (so forking is safe) that
//! builds one sandbox and execs the function's program in it. Three processes of ours:
//!
//! - the *supervisor* (this process, in the host's namespaces): on the prepare request it clones the
//!   sandbox's PID 1 into new user/mount/pid/ipc/uts[/net] namespaces, puts it in the cgroups,
//!   writes its uid/gid maps and reports "prepared"; then it passes the launch request (the spec)
//!   on to PID 1 and waits for it; it kills the sandbox when Flint goes away (its control socket
//!   hangs up). The two requests may come at once, or far apart for a sandbox in Flint's pool;
//! - the sandbox's *PID 1*: waits for the spec, mounts the root filesystem, pivots into it, forks
//!   the program, reports whether exec worked, reaps orphans, and reports the program's exit
//!   before leaving (which ends everything in the pid namespace);
//! - the *program*: drops to uid 993/gid 990 with no capabilities and `no_new_privs`, and execs.
//!
//! Why the map is written by the supervisor: a process may only map its own uid into a namespace it
//! creates unless a privileged process in the parent namespace writes the map. With Flint as root,
//! 993 inside maps to 993 outside (not to root: real root's files must stay out of reach), and 0
//! inside to the host's nobody, which builds the root so that it is root's as on Lambda.

use std::ffi::CString;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::sys::signal::{self, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{self, ForkResult, Pid};

use crate::handshake::{errno_words, InitReport, LaunchRequest, PreinitPlan, PrepareRequest};
use crate::preinit::SPEC_FD;

/// How long a pre-started interpreter may take to reach the point where it waits.
const PREINIT_TIMEOUT_MS: libc::c_int = 10_000;
use crate::mounts;

/// The control socket to Flint is the init's stdin.
const CONTROL_FD: RawFd = 0;
/// Upper bound of a launch request (the spec with its environment; Lambda allows 4 KB of
/// variables): a guard against a runaway writer, not a limit anyone should meet.
const MAX_LAUNCH_REQUEST: usize = 16 * 1024 * 1024;
use crate::handshake::TERMINATE;

/// The program's pid inside the namespace, for PID 1's SIGTERM forwarding.
static PROGRAM_PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// PID 1 ignores signals it has no handler for, so a graceful stop is forwarded by hand.
extern "C" fn forward_sigterm(_: libc::c_int) {
    let pid = PROGRAM_PID.load(std::sync::atomic::Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

/// Entry point; returns the supervisor's exit code (mirroring the sandbox's PID 1).
pub(crate) fn run() -> i32 {
    let mut control = BufReader::new(ControlFd);
    let mut line = String::new();
    if control.read_line(&mut line).is_err() || line.is_empty() {
        return 125;
    }
    let req: PrepareRequest = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => {
            report(&InitReport::SetupFailed {
                reason: format!("bad prepare request: {e}"),
            });
            return 125;
        }
    };
    match supervise(&req, &mut control) {
        Ok(code) => code,
        Err(reason) => {
            report(&InitReport::SetupFailed { reason });
            125
        }
    }
}

/// Writes one report line to Flint (best effort: Flint may be gone).
fn report(r: &InitReport) {
    let line = r.to_line();
    // MSG_NOSIGNAL: when Flint is gone we must not die of SIGPIPE here (we may run before Rust's
    // runtime has set SIGPIPE to ignored: see `BECOME_INIT_IF_ASKED`).
    // SAFETY: CONTROL_FD stays open for the life of this process; send(2) on a borrowed fd.
    let _ = unsafe {
        libc::send(
            CONTROL_FD,
            line.as_ptr().cast(),
            line.len(),
            libc::MSG_NOSIGNAL,
        )
    };
}

/// Reads from fd 0 without owning (closing) it.
struct ControlFd;

impl Read for ControlFd {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // SAFETY: reading into a valid buffer from an fd this process keeps open.
        let n = unsafe { libc::read(CONTROL_FD, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

fn supervise(req: &PrepareRequest, control: &mut BufReader<ControlFd>) -> Result<i32, String> {
    // No core files from our processes (the supervisor re-raises PID 1's signal on itself). Only
    // the soft limit: the hard one stays, so the function's program can get Lambda's 10 GiB (a
    // hard limit cannot be raised again inside the user namespace).
    let core_hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_CORE)
        .map_or(0, |(_, hard)| hard);
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, core_hard);
    // We may run before Rust's runtime ignores SIGPIPE (see `BECOME_INIT_IF_ASKED`): a PID 1 that
    // died must show up as a failed write, not kill us. The program gets default dispositions.
    // SAFETY: setting a signal disposition to SIG_IGN.
    let _ = unsafe { signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) };
    let (ready_r, ready_w) = pipe()?;
    let (go_r, go_w) = pipe()?;

    let mut flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    if req.user_namespace {
        flags |= libc::CLONE_NEWUSER;
    }
    if req.isolate_network {
        flags |= libc::CLONE_NEWNET;
    }
    // clone(2) like fork (no new stack): we are single-threaded, so the child is a plain copy.
    // SAFETY: raw clone with fork semantics; the child only runs `pid1`, which never returns.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return Err(format!(
            "clone namespaces: {}",
            std::io::Error::last_os_error()
        ));
    }
    if pid == 0 {
        drop(ready_r);
        drop(go_w);
        let code = pid1(req, ready_w, go_r);
        // SAFETY: leaving the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let child = Pid::from_raw(pid as i32);
    drop(ready_w);
    drop(go_r);
    let kill_child = |reason: String| -> Result<i32, String> {
        let _ = signal::kill(child, Signal::SIGKILL);
        let _ = waitpid(child, None);
        Err(reason)
    };

    // The slow part of a sandbox's start (joining a v1 memory cgroup waits for an RCU grace
    // period): done before the spec is known, so a pooled sandbox has it behind it.
    for procs in &req.cgroup_procs {
        if let Err(e) = crate::cgroup::write_file(procs, &pid.to_string()) {
            return kill_child(format!("join cgroup {}: {e}", procs.display()));
        }
    }
    if req.user_namespace {
        if let Err(e) = write_id_maps(pid as i32, req) {
            return kill_child(e);
        }
    }
    // Wait until PID 1 has armed its parent-death signal.
    let mut byte = [0u8; 1];
    if read_fd(&ready_r, &mut byte) != 1 {
        return kill_child("sandbox PID 1 died before start".into());
    }
    if let (true, Some(veth)) = (req.isolate_network, &req.veth) {
        // The namespace exists (and PID 1 holds it): connect it to the host's network.
        if let Err(e) = crate::outbound::connect(pid as i32, veth) {
            return kill_child(format!("outbound network: {e}"));
        }
    }
    if req.preinit.is_some() {
        // PID 1 may now build the root and start the interpreter, as the mapped root of its
        // namespace; it says "p" once the interpreter waits for the function.
        if !write_all_fd(&go_w, b"m") {
            return kill_child("sandbox PID 1 died before start".into());
        }
        if read_fd(&ready_r, &mut byte) != 1 || byte != *b"p" {
            return kill_child("the pre-initialised runtime did not start".into());
        }
    }
    report(&InitReport::Prepared);
    // The launch request: already here for a sandbox started for a spec, or much later for one
    // waiting in Flint's pool. End of file means Flint no longer wants this sandbox.
    let mut launch = Vec::new();
    match control.read_until(b'\n', &mut launch) {
        Ok(n) if n > 0 && launch.ends_with(b"\n") => {}
        _ => {
            let result = kill_child("no launch request".into());
            // Flint is gone (or dropped this prepared sandbox): the cgroups, still under their
            // pool names, would outlive a Flint that exits without cleaning up. PID 1 is reaped,
            // so they are empty; Flint's own removal may win the race, which is fine.
            for procs in &req.cgroup_procs {
                if let Some(dir) = procs.parent() {
                    let _ = std::fs::remove_dir(dir);
                }
            }
            return result;
        }
    }
    // PID 1 parses it (it runs the same code); ending the pipe marks the end of the request.
    if !write_all_fd(&go_w, &launch) {
        return kill_child("sandbox PID 1 died before start".into());
    }
    drop(go_w);
    Ok(wait_for_pid1(child))
}

fn write_id_maps(pid: i32, req: &PrepareRequest) -> Result<(), String> {
    let proc_dir = Path::new("/proc").join(pid.to_string());
    let write = |name: &str, value: &str| {
        crate::cgroup::write_file(&proc_dir.join(name), value)
            .map_err(|e| format!("write {name} of the sandbox: {e}"))
    };
    write("uid_map", &req.uid_map)?;
    if req.deny_setgroups {
        write("setgroups", "deny")?;
    }
    write("gid_map", &req.gid_map)
}

/// Waits for PID 1 while watching the control socket: if Flint goes away, the sandbox goes too.
fn wait_for_pid1(child: Pid) -> i32 {
    // SAFETY: pidfd_open on our own unreaped child.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.as_raw(), 0) };
    // SAFETY: a new descriptor that nothing else owns.
    let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd as i32) });
    let mut control_open = true;
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                // Die the same way, so that Flint sees the signal when PID 1 reported nothing.
                // SAFETY: resetting a disposition and signalling ourselves.
                unsafe {
                    let _ = signal::signal(sig, SigHandler::SigDfl);
                }
                let _ = signal::sigprocmask(
                    signal::SigmaskHow::SIG_SETMASK,
                    Some(&SigSet::empty()),
                    None,
                );
                let _ = signal::kill(unistd::getpid(), sig);
                return 128 + sig as i32;
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 125,
        }
        let mut fds = vec![];
        if control_open {
            fds.push(libc::pollfd {
                fd: CONTROL_FD,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let Some(p) = &pidfd {
            fds.push(libc::pollfd {
                fd: p.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let timeout = if pidfd.is_some() { -1 } else { 50 };
        // SAFETY: valid pollfd array of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n <= 0 {
            continue;
        }
        if control_open && fds[0].revents != 0 {
            let mut buf = [0u8; 64];
            // SAFETY: reading into a local buffer.
            let got = unsafe { libc::read(CONTROL_FD, buf.as_mut_ptr().cast(), buf.len()) };
            if got <= 0 {
                // Flint closed its end (dropped the sandbox, or died): end the sandbox.
                control_open = false;
                let _ = signal::kill(child, Signal::SIGKILL);
            } else if buf[..got as usize].contains(&TERMINATE) {
                // PID 1 forwards it to the program (see `forward_sigterm`).
                let _ = signal::kill(child, Signal::SIGTERM);
            }
        }
    }
}

fn read_fd(fd: &OwnedFd, buf: &mut [u8]) -> isize {
    loop {
        // SAFETY: reading into a valid buffer from an owned fd.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && nix::errno::Errno::last() == nix::errno::Errno::EINTR {
            continue;
        }
        return n;
    }
}

fn write_fd(fd: &OwnedFd, buf: &[u8]) -> isize {
    // SAFETY: writing a valid buffer to an owned fd.
    unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) }
}

/// Writes all of `buf` (a pipe takes 64 KiB at once; the reader drains it meanwhile).
fn write_all_fd(fd: &OwnedFd, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        let n = write_fd(fd, buf);
        if n < 0 && nix::errno::Errno::last() == nix::errno::Errno::EINTR {
            continue;
        }
        if n <= 0 {
            return false;
        }
        buf = &buf[n as usize..];
    }
    true
}

/// Reads until end of file (at most `limit` bytes).
fn read_to_end_fd(fd: &OwnedFd, limit: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = read_fd(fd, &mut chunk);
        if n < 0 {
            return None;
        }
        if n == 0 {
            return Some(out);
        }
        out.extend_from_slice(&chunk[..n as usize]);
        if out.len() > limit {
            return None;
        }
    }
}

/// The program's argv/envp and credentials, prepared before any fork.
struct ExecPlan {
    program: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    uid: u32,
    gid: u32,
    drop_groups: bool,
    data_limit: Option<u64>,
    file_size_limit: Option<u64>,
    /// SIGXFSZ ignored (with a per-file /tmp limit: write(2) then fails with EFBIG).
    ignore_sigxfsz: bool,
    /// A descriptor that crosses the exec (a pre-initialised runtime's [`SPEC_FD`]).
    keep_fd: Option<RawFd>,
    /// The default seccomp filter, compiled before the fork.
    seccomp: seccompiler::BpfProgram,
}

impl ExecPlan {
    fn new(req: &LaunchRequest) -> Result<Self, String> {
        let c = |s: &[u8]| {
            CString::new(s)
                .map_err(|_| "a NUL byte in the program, its arguments or environment".to_string())
        };
        let program = c(req.spec.program.as_os_str().as_bytes())?;
        let mut argv = vec![program.clone()];
        for a in &req.spec.args {
            argv.push(c(a.as_bytes())?);
        }
        let mut envp = Vec::with_capacity(req.spec.env.len());
        for (k, v) in &req.spec.env {
            if k.is_empty() || k.contains('=') {
                return Err(format!("invalid environment variable name {k:?}"));
            }
            envp.push(c(format!("{k}={v}").as_bytes())?);
        }
        Ok(ExecPlan {
            program,
            argv,
            envp,
            uid: req.uid,
            gid: req.gid,
            drop_groups: req.drop_groups,
            data_limit: req.data_limit,
            file_size_limit: req.file_size_limit,
            ignore_sigxfsz: req.file_size_limit.is_some(),
            keep_fd: None,
            seccomp: crate::seccomp::default_filter()?,
        })
    }

    /// A pre-initialised runtime's interpreter: the template's program and arguments, the
    /// environment it starts with, and the spec's descriptor; the spec's own limits come later.
    fn preinit(plan: &PreinitPlan) -> Result<Self, String> {
        let c = |s: &[u8]| {
            CString::new(s)
                .map_err(|_| "a NUL byte in the program, its arguments or environment".to_string())
        };
        let t = &plan.template;
        let program = c(t.program.as_os_str().as_bytes())?;
        let mut argv = vec![program.clone()];
        for a in &t.args {
            argv.push(c(a.as_bytes())?);
        }
        let envp = t
            .exec_env()
            .iter()
            .map(|(k, v)| c(format!("{k}={v}").as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ExecPlan {
            program,
            argv,
            envp,
            uid: plan.uid,
            gid: plan.gid,
            drop_groups: plan.drop_groups,
            data_limit: None,
            file_size_limit: None,
            ignore_sigxfsz: t.file_size_limited,
            keep_fd: Some(SPEC_FD),
            seccomp: crate::seccomp::default_filter()?,
        })
    }
}

/// A pre-started interpreter waiting for its function.
struct Preinit {
    pid: Pid,
    /// PID 1's end of the socket at the interpreter's [`SPEC_FD`].
    socket: OwnedFd,
}

/// Builds the root a managed runtime needs (the function's code, layers and /tmp still empty
/// directories, the host's root kept at /tmp until then) and starts the interpreter in it, which
/// runs Flint's bootstrap up to where it needs the function, says "r" and waits.
fn preinit_start(prep: &PrepareRequest, plan: &PreinitPlan) -> Result<Preinit, String> {
    let _ = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP);
    mounts::make_slave()?;
    let entries = mounts::plan_preinit(&plan.template, &plan.root_files)?;
    let exec = ExecPlan::preinit(plan)?;
    let detached = mounts::detach_sources(&entries)?;
    let (build_uid, build_gid) = builder_ids(prep, plan.uid, plan.gid);
    mounts::mount_root(&plan.root_mount, build_uid, build_gid)?;
    if prep.user_namespace {
        let _ = std::fs::write("/proc/sys/user/max_user_namespaces", "0");
    }
    // The root is filled as the sandbox user (see `build_sandbox`) by the interpreter's process
    // before it execs: we keep Flint's own identity, which the function's trees must be opened
    // with later (and which we could not take back: it is not mapped in the namespace). Its
    // pivot_root moves our root too. One child, so the interpreter is pid 2 as in a fresh start.
    let (err_r, err_w) = pipe()?;
    let (ours, theirs) =
        std::os::unix::net::UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    let (ours, theirs) = (OwnedFd::from(ours), OwnedFd::from(theirs));
    // SAFETY: we are single-threaded (a clone of a single-threaded process).
    let pid = match unsafe { unistd::fork() } {
        Ok(ForkResult::Child) => {
            drop(err_r);
            drop(ours);
            if prep.user_namespace {
                // SAFETY: plain set*id syscalls.
                unsafe {
                    libc::setfsgid(build_gid);
                    libc::setfsuid(build_uid);
                }
            }
            let reason = match mounts::build_root(&entries, detached, true) {
                // SAFETY: dup2 onto a free descriptor number; the copy has no close-on-exec flag.
                Ok(()) if unsafe { libc::dup2(theirs.as_raw_fd(), SPEC_FD) } < 0 => {
                    format!("dup2: {}", std::io::Error::last_os_error())
                }
                Ok(()) => format!(
                    "exec {}: {}",
                    plan.template.program.display(),
                    errno_words(exec_program(&exec))
                ),
                Err(reason) => reason,
            };
            let _ = write_all_fd(&err_w, reason.as_bytes());
            // SAFETY: leave without running anything of the parent's.
            unsafe { libc::_exit(127) };
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => return Err(format!("fork the interpreter: {e}")),
    };
    drop(theirs);
    drop(err_w);
    drop(detached);
    // End of file once the interpreter is exec'd (close-on-exec), else why it is not.
    let reason = read_to_end_fd(&err_r, 64 * 1024).unwrap_or_default();
    if !reason.is_empty() {
        let _ = waitpid(pid, None);
        return Err(String::from_utf8_lossy(&reason).into_owned());
    }
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    let fail = |reason: String| {
        let _ = signal::kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        Err(reason)
    };
    let mut fds = [libc::pollfd {
        fd: ours.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: a valid pollfd array of length 1.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, PREINIT_TIMEOUT_MS) };
    let mut byte = [0u8; 1];
    if n != 1 || read_fd(&ours, &mut byte) != 1 || byte != *b"r" {
        return fail("the interpreter did not get ready".into());
    }
    Ok(Preinit { pid, socket: ours })
}

/// Starts the function in a pre-initialised sandbox: its trees mounted, its limits set, its
/// environment where a fresh start would have it (see `preinit.rs`), and the interpreter told.
fn preinit_launch(
    plan: &PreinitPlan,
    launch: &LaunchRequest,
    started: Preinit,
) -> Result<(), String> {
    let spec = &launch.spec;
    let t = &plan.template;
    if spec.program != t.program || spec.args != t.args || spec.image_root.is_some() {
        return Err("the spec is not the one this runtime was started for".into());
    }
    let _ = unistd::sethostname(&launch.hostname);
    let late = mounts::late_entries(mounts::plan(
        &spec.code_dir,
        spec.opt_dir.as_deref(),
        spec.runtime_dir.as_deref(),
        &[],
        &[],
        &spec.tmp_dir,
        &launch.root_files,
    )?);
    // Opened as Flint's own identity, which this process kept (see `preinit_start`).
    let detached = mounts::detach_late(&late);
    mounts::attach_late(detached?)?;
    mounts::make_private()?;
    let working_dir = enter_working_dir(spec.working_dir.as_deref(), launch.uid)?;
    let pid = started.pid.as_raw();
    for (resource, limit) in [
        (libc::RLIMIT_FSIZE, launch.file_size_limit),
        (libc::RLIMIT_DATA, launch.data_limit),
    ] {
        if let Some(limit) = limit {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            // SAFETY: prlimit on our own child with a valid struct and no old-value pointer.
            if unsafe { libc::prlimit(pid, resource, &lim, std::ptr::null_mut()) } != 0 {
                return Err(format!("prlimit: {}", std::io::Error::last_os_error()));
            }
        }
    }
    crate::preinit::replace_environ(pid, &crate::preinit::environ_bytes(&spec.env))?;
    let message = serde_json::to_vec(&crate::preinit::FunctionStart {
        env: &spec.env,
        cwd: &working_dir,
    })
    .map_err(|e| format!("encode the function's start: {e}"))?;
    if !write_all_fd(&started.socket, &message) {
        return Err("the interpreter is gone".into());
    }
    // End of the message: closing our end.
    drop(started.socket);
    Ok(())
}

/// The sandbox's PID 1. Returns its exit code.
fn pid1(prep: &PrepareRequest, ready: OwnedFd, go: OwnedFd) -> i32 {
    // If the supervisor dies, so do we (and with us the whole pid namespace).
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    if prep.isolate_network {
        // Before "ready": Flint takes the listeners before the supervisor's "prepared".
        match crate::netns::set_up_inside(&prep.namespace_ports) {
            Ok(listeners) => {
                let raw: Vec<RawFd> = listeners.iter().map(AsRawFd::as_raw_fd).collect();
                if crate::netns::send_fds(CONTROL_FD, crate::netns::LISTENERS, &raw).is_err() {
                    return 125;
                }
            }
            Err(reason) => {
                let _ = crate::netns::send_fds(CONTROL_FD, crate::netns::FAILED, &[]);
                report(&InitReport::SetupFailed {
                    reason: format!("network namespace: {reason}"),
                });
                return 125;
            }
        }
    }
    if write_fd(&ready, b"r") != 1 {
        return 125;
    }
    let mut preinit = None;
    if let Some(plan) = &prep.preinit {
        // The supervisor's "m": our uid/gid maps are written.
        let mut byte = [0u8; 1];
        if read_fd(&go, &mut byte) != 1 {
            return 125;
        }
        match preinit_start(prep, plan) {
            Ok(p) => preinit = Some(p),
            Err(reason) => {
                report(&InitReport::SetupFailed {
                    reason: format!("pre-initialised runtime: {reason}"),
                });
                return 125;
            }
        }
        if write_fd(&ready, b"p") != 1 {
            return 125;
        }
    }
    drop(ready);
    let launch = match read_to_end_fd(&go, MAX_LAUNCH_REQUEST) {
        // Empty: the supervisor is gone, or Flint dropped this sandbox unused.
        Some(bytes) if !bytes.is_empty() => bytes,
        _ => return 125,
    };
    drop(go);
    let launch: LaunchRequest = match serde_json::from_slice(&launch) {
        Ok(l) => l,
        Err(e) => {
            report(&InitReport::SetupFailed {
                reason: format!("bad launch request: {e}"),
            });
            return 125;
        }
    };
    if let (Some(started), Some(plan)) = (preinit, &prep.preinit) {
        let pid = started.pid;
        return match preinit_launch(plan, &launch, started) {
            Ok(()) => reap(pid),
            Err(reason) => {
                report(&InitReport::SetupFailed {
                    reason: format!("pre-initialised runtime: {reason}"),
                });
                125
            }
        };
    }
    let prepared = match prepare_launch(prep, &launch) {
        Ok(p) => p,
        Err(reason) => {
            report(&InitReport::SetupFailed { reason });
            return 125;
        }
    };
    let (entries, exec) = prepared;
    if let Err(reason) = build_sandbox(prep, &launch, &entries) {
        report(&InitReport::SetupFailed { reason });
        return 125;
    }
    start_program_and_reap(&exec)
}

/// Checks the launch request against the namespaces we have, and plans the mounts and the exec.
fn prepare_launch(
    prep: &PrepareRequest,
    launch: &LaunchRequest,
) -> Result<(Vec<mounts::Entry>, ExecPlan), String> {
    if launch.spec.isolate_network != prep.isolate_network {
        return Err(format!(
            "the sandbox was prepared with isolate_network = {}, the spec asks for {}",
            prep.isolate_network, launch.spec.isolate_network
        ));
    }
    let entries = match &launch.spec.image_root {
        Some(_) => mounts::plan_image(
            &launch.spec.tmp_dir,
            &launch.root_files.etc_dir,
            &launch.root_files.resolv_conf,
        )?,
        None => mounts::plan(
            &launch.spec.code_dir,
            launch.spec.opt_dir.as_deref(),
            launch.spec.runtime_dir.as_deref(),
            &launch.spec.extra_ro_binds,
            &launch.spec.ro_mounts,
            &launch.spec.tmp_dir,
            &launch.root_files,
        )?,
    };
    let exec = ExecPlan::new(launch)?;
    Ok((entries, exec))
}

fn build_sandbox(
    prep: &PrepareRequest,
    req: &LaunchRequest,
    entries: &[mounts::Entry],
) -> Result<(), String> {
    // Now that we sit in the sandbox's cgroup, make it the root of the cgroups we can see.
    let _ = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP);
    let _ = unistd::sethostname(&req.hostname);
    mounts::make_private()?;
    // Host paths are opened while we still carry Flint's own identity, which can traverse them
    // (e.g. /root is 0700; capabilities in a user namespace do not cover unmapped owners).
    let detached = mounts::detach_sources(entries)?;
    let (build_uid, build_gid) = match &req.spec.image_root {
        Some(image_root) => {
            let root = mounts::detach_image_root(image_root)?;
            mounts::attach_image_root(&root, &req.root_mount, req.uid, req.gid)?;
            (req.uid, req.gid)
        }
        None => {
            let (uid, gid) = builder_ids(prep, req.uid, req.gid);
            mounts::mount_root(&req.root_mount, uid, gid)?;
            (uid, gid)
        }
    };
    if prep.user_namespace {
        // Files can only be created under an identity mapped in the namespace: become the
        // builder (see `builder_ids`) for file access, keeping the namespace's capabilities (real
        // uid unchanged).
        // SAFETY: plain set*id syscalls.
        unsafe {
            libc::setfsgid(build_gid);
            libc::setfsuid(build_uid);
        }
    }
    mounts::build_root(entries, detached, false)?;
    if prep.user_namespace {
        // No nested user namespaces for the program: they are a favourite kernel attack surface
        // and a function has no use for them. Per-namespace limit, so the host is untouched.
        let _ = std::fs::write("/proc/sys/user/max_user_namespaces", "0");
    }
    enter_working_dir(req.spec.working_dir.as_deref(), req.uid).map(drop)
}

/// The ids a zip function's root is built with: the namespace's root where its maps name one
/// (Flint as root: `/`, `/opt` and the mount points are root's, as on Lambda; it is the host's
/// nobody, see `host::ROOT_STANDIN`), else the sandbox user, the one id an unprivileged
/// namespace maps. The program still runs as the sandbox user.
fn builder_ids(prep: &PrepareRequest, uid: u32, gid: u32) -> (u32, u32) {
    let maps_root = |map: &str| {
        map.lines()
            .any(|l| l.split_whitespace().next() == Some("0"))
    };
    if prep.user_namespace && maps_root(&prep.uid_map) && maps_root(&prep.gid_map) {
        (0, 0)
    } else {
        (uid, gid)
    }
}

/// Makes the spec's working directory (`/var/task` unless it names one) this process's, and
/// returns it.
fn enter_working_dir(
    working_dir: Option<&std::path::Path>,
    uid: u32,
) -> Result<std::path::PathBuf, String> {
    let working_dir = working_dir.unwrap_or(std::path::Path::new("/var/task"));
    std::env::set_current_dir(working_dir).map_err(|e| {
        format!(
            "chdir {}: {e} (it must exist and be readable by uid {uid})",
            working_dir.display()
        )
    })?;
    Ok(working_dir.to_path_buf())
}

fn start_program_and_reap(exec: &ExecPlan) -> i32 {
    let (status_r, status_w) = match pipe() {
        Ok(p) => p,
        Err(reason) => {
            report(&InitReport::SetupFailed { reason });
            return 125;
        }
    };
    // SAFETY: we are single-threaded (a clone of a single-threaded process).
    let program = match unsafe { unistd::fork() } {
        Ok(ForkResult::Child) => {
            drop(status_r);
            let errno = exec_program(exec);
            let _ = write_fd(&status_w, &errno.to_ne_bytes());
            // SAFETY: leave without running anything of the parent's.
            unsafe { libc::_exit(127) };
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => {
            report(&InitReport::SetupFailed {
                reason: format!("fork the program: {e}"),
            });
            return 125;
        }
    };
    drop(status_w);
    let mut errno = [0u8; 4];
    let n = read_fd(&status_r, &mut errno);
    drop(status_r);
    if n == 4 {
        let reason = errno_words(i32::from_ne_bytes(errno));
        report(&InitReport::StartFailed { reason });
        let _ = waitpid(program, None);
        return 127;
    }
    reap(program)
}

/// PID 1 once the program runs: forward SIGTERM to it, report it running, and reap every orphan
/// until the program itself ends.
fn reap(program: Pid) -> i32 {
    PROGRAM_PID.store(program.as_raw(), std::sync::atomic::Ordering::SeqCst);
    let forward = signal::SigAction::new(
        SigHandler::Handler(forward_sigterm),
        signal::SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler only calls kill(2), which is async-signal-safe.
    let _ = unsafe { signal::sigaction(Signal::SIGTERM, &forward) };
    report(&InitReport::Running);
    // PID 1 of the namespace: reap every orphan until the program itself ends.
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == program => {
                report(&InitReport::Exited {
                    code: Some(code),
                    signal: None,
                });
                return code;
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == program => {
                report(&InitReport::Exited {
                    code: None,
                    signal: Some(sig as i32),
                });
                return 128 + sig as i32;
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return 125,
        }
    }
}

/// In the forked program process: drop every privilege and exec. Returns errno on failure.
fn exec_program(exec: &ExecPlan) -> i32 {
    let errno = || nix::errno::Errno::last_raw();
    // SAFETY: this process is single-threaded; all calls below are plain syscalls on prepared data.
    unsafe {
        // Signals: default dispositions (Rust ignores SIGPIPE at start-up) and nothing blocked.
        for sig in Signal::iterator() {
            if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
                let _ = signal::signal(sig, SigHandler::SigDfl);
            }
        }
        let _ = signal::sigprocmask(
            signal::SigmaskHow::SIG_SETMASK,
            Some(&SigSet::empty()),
            None,
        );
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        libc::setsid();

        // stdin is /dev/null; stdout/stderr are Flint's pipes; nothing else crosses exec.
        let devnull = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if devnull < 0 || libc::dup2(devnull, 0) < 0 {
            return errno();
        }
        libc::close(devnull);
        if libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) != 0
        {
            // Pre-5.11 kernels: mark them one by one.
            for fd in 3..1024 {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        if let Some(fd) = exec.keep_fd {
            libc::fcntl(fd, libc::F_SETFD, 0);
        }

        // Lambda's limits (recorded on AWS, test_runtime_ulimits): 1,024 file descriptors, 742
        // processes (counted per user of the sandbox's own user namespace, so one environment's
        // processes do not count against another's), 64 KiB of locked memory, 10 GiB core files
        // and an 8 MiB stack (soft; the hard limit stays unlimited, as AWS's).
        set_rlimit(libc::RLIMIT_NOFILE, 1024);
        set_rlimit(libc::RLIMIT_NPROC, 742);
        set_rlimit(libc::RLIMIT_MEMLOCK, 65_536);
        set_rlimit(libc::RLIMIT_CORE, 10_737_418_240);
        set_rlimit_soft_hard(libc::RLIMIT_STACK, 8 * 1024 * 1024, libc::RLIM_INFINITY);
        if let Some(limit) = exec.data_limit {
            set_rlimit(libc::RLIMIT_DATA, limit);
        }
        if let Some(limit) = exec.file_size_limit {
            set_rlimit(libc::RLIMIT_FSIZE, limit);
        }
        if exec.ignore_sigxfsz {
            // Past the limit write(2) fails with EFBIG instead of killing the process.
            let _ = signal::signal(Signal::SIGXFSZ, SigHandler::SigIgn);
        }

        // No capability may survive: empty the bounding set while we still may (CAP_SETPCAP).
        for cap in 0..=63 {
            if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0
                && nix::errno::Errno::last() == nix::errno::Errno::EINVAL
            {
                break;
            }
        }
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
        if exec.drop_groups && libc::setgroups(0, std::ptr::null()) != 0 {
            return errno();
        }
        if libc::setresgid(exec.gid, exec.gid, exec.gid) != 0
            || libc::setresuid(exec.uid, exec.uid, exec.uid) != 0
        {
            return errno();
        }
        clear_capabilities();
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return errno();
        }
        if crate::seccomp::install(&exec.seccomp).is_err() {
            return libc::EPERM;
        }

        let mut argv: Vec<*const libc::c_char> = exec.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = exec.envp.iter().map(|e| e.as_ptr()).collect();
        envp.push(std::ptr::null());
        libc::execve(exec.program.as_ptr(), argv.as_ptr(), envp.as_ptr());
        errno()
    }
}

fn set_rlimit(resource: libc::__rlimit_resource_t, value: u64) {
    set_rlimit_soft_hard(resource, value, value);
}

fn set_rlimit_soft_hard(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit with a valid struct.
    unsafe { libc::setrlimit(resource, &lim) };
}

/// capset(2) with empty permitted/effective/inheritable sets (version 3, two 32-bit words).
fn clear_capabilities() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset with a version-3 header and two data words, as the ABI requires.
    unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prep(user_namespace: bool, uid_map: &str, gid_map: &str) -> PrepareRequest {
        PrepareRequest {
            user_namespace,
            isolate_network: false,
            namespace_ports: Default::default(),
            veth: None,
            uid_map: uid_map.into(),
            gid_map: gid_map.into(),
            deny_setgroups: false,
            cgroup_procs: Vec::new(),
            preinit: None,
        }
    }

    #[test]
    fn the_root_is_built_by_the_namespaces_root_only_where_the_maps_name_one() {
        let root = prep(true, "0 65534 1\n993 993 1\n", "0 65534 1\n990 990 1\n");
        assert_eq!(builder_ids(&root, 993, 990), (0, 0));
        let unprivileged = prep(true, "993 1000 1\n", "990 1000 1\n");
        assert_eq!(builder_ids(&unprivileged, 993, 990), (993, 990));
        // Without a user namespace the maps are not written: nothing changes.
        let no_userns = prep(false, "0 65534 1\n993 993 1\n", "0 65534 1\n990 990 1\n");
        assert_eq!(builder_ids(&no_userns, 993, 990), (993, 990));
    }
}
