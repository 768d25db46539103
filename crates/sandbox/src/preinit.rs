//! Pre-initialised managed runtimes: a prepared sandbox (see `pool.rs`) in which the Python or
//! Node interpreter was already exec'd with Flint's bootstrap, and has run it up to the point
//! where it needs the function, before any function is known. A spec that matches takes it and
//! only pays for what depends on the function: its mounts, limits and environment.
//!
//! The function must not be able to tell. What differs between a pre-started interpreter and a
//! fresh one, and how each is made equal (PID 1 does all of it in `init.rs` before it lets the
//! interpreter go on):
//!
//! - *What the interpreter read at its start-up* (`PYTHON*`, `NODE_*`, locale, `TZ`, `PATH`, the
//!   dynamic loader's variables, the runtime dir, ...): a spec whose values differ from the ones
//!   the interpreter was started with does not match (see [`read_at_start`]); it starts fresh.
//! - *The function's environment*: the interpreter gets it on a socket at [`SPEC_FD`] and sets
//!   `os.environ`/`process.env` (and so the C `environ`) itself.
//! - */proc/self/environ* shows the memory range the kernel wrote at exec: the interpreter was
//!   started with a [`PAD_VAR`] large enough for any spec's environment; PID 1 writes the spec's
//!   variables over that range and moves the range's end there with `prctl(PR_SET_MM,
//!   PR_SET_MM_MAP)`, a call only a process can make for itself: PID 1 makes the interpreter's
//!   main thread execute it (ptrace syscall injection, x86-64 only; see [`replace_environ`]).
//! - *cwd*, *argv*, *cmdline*: the program and its arguments are part of the match, so argv and
//!   `/proc/self/cmdline` are the same already; the interpreter changes directory itself.
//! - *limits*: uid/gid, capabilities, `no_new_privs`, seccomp and the fixed rlimits are set before
//!   the exec as for any program; the spec's own ones (`RLIMIT_FSIZE`, `RLIMIT_DATA`) are set by
//!   PID 1 with `prlimit`, and the cgroup's limits by Flint, as for any pooled sandbox.

use std::path::{Path, PathBuf};

use crate::SandboxSpec;

/// The descriptor on which a pre-started interpreter waits for the function (closed before the
/// function's code runs; the highest one under the 1,024 limit, so that the interpreter's own
/// descriptors get the numbers they get in a fresh start).
pub(crate) const SPEC_FD: i32 = 1023;
/// Set (to [`SPEC_FD`]) in a pre-started interpreter's environment only: tells the bootstrap to
/// wait for the function before it reads anything of it.
pub(crate) const FD_VAR: &str = "_FLINT_PREINIT_FD";
/// A variable that reserves room at exec for the function's environment.
pub(crate) const PAD_VAR: &str = "_FLINT_PREINIT_PAD";
/// Size of that room: Lambda allows 4 KB of variables, Flint adds its own (~2 KB).
pub(crate) const PAD_BYTES: usize = 32 * 1024;
/// Kept free in the room for the `prctl_mm_map` struct written after the environment.
const MAP_ROOM: usize = 256;

/// The bootstraps Flint ships (`flint_runtimes::PYTHON_BOOTSTRAP`, `NODE_BOOTSTRAP`; this crate
/// does not depend on that one).
const PYTHON_BOOTSTRAP: &str = "/var/runtime/python/bootstrap.py";
const NODE_BOOTSTRAP: &str = "/var/runtime/node/index.mjs";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Family {
    Python,
    Node,
}

/// What a spec must share with a pre-initialised sandbox to start in it: everything the
/// interpreter saw before the function was known.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Template {
    pub family: Family,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub runtime_dir: PathBuf,
    pub extra_ro_binds: Vec<PathBuf>,
    pub ro_mounts: Vec<(PathBuf, PathBuf)>,
    /// The spec's variables that [`read_at_start`] names, in its order.
    pub startup_env: Vec<(String, String)>,
    /// /tmp is limited per file (RLIMIT_FSIZE, and SIGXFSZ ignored from the exec on).
    pub file_size_limited: bool,
    pub isolate_network: bool,
}

impl Template {
    /// The environment the interpreter is exec'd with.
    pub fn exec_env(&self) -> Vec<(String, String)> {
        let mut env = self.startup_env.clone();
        env.push((FD_VAR.to_string(), SPEC_FD.to_string()));
        env.push((PAD_VAR.to_string(), "x".repeat(PAD_BYTES)));
        env
    }
}

/// Variables an interpreter, its dynamic loader, libc or Flint's bootstraps read before the
/// bootstrap waits for the function (deliberately wide: a user variable of these names makes the
/// function start fresh, which is only slower).
pub(crate) fn read_at_start(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "PYTHON", "NODE_", "UV_", "V8_", "LD_", "LC_", "MALLOC_", "GLIBC_", "OPENSSL_", "SSL_",
        "_FLINT_",
    ];
    const NAMES: &[&str] = &[
        "LANG",
        "LANGUAGE",
        "TZ",
        "HOME",
        "PATH",
        "TMPDIR",
        "TERM",
        "NO_COLOR",
        "FORCE_COLOR",
        "AWS_EXECUTION_ENV",
        "LAMBDA_RUNTIME_DIR",
        "LAMBDA_TASK_ROOT",
        "AWS_LAMBDA_EXEC_WRAPPER",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || NAMES.contains(&name)
}

/// The template of a spec that a pre-initialised sandbox can run, or None (a `provided`
/// runtime, a container image, an exec wrapper, an environment too large for the room...).
pub(crate) fn template_of(spec: &SandboxSpec) -> Option<Template> {
    if !cfg!(target_arch = "x86_64") || spec.image_root.is_some() || spec.working_dir.is_some() {
        return None;
    }
    let name = spec.program.file_name()?.to_str()?;
    let family = if name.starts_with("python3") && spec.args == [PYTHON_BOOTSTRAP] {
        Family::Python
    } else if name == "node" && spec.args.last().map(String::as_str) == Some(NODE_BOOTSTRAP) {
        Family::Node
    } else {
        return None;
    };
    let runtime_dir = spec.runtime_dir.clone()?;
    let late = |target: &Path| {
        ["/var/task", "/opt", "/tmp"]
            .iter()
            .any(|l| target.starts_with(l))
    };
    if spec.extra_ro_binds.iter().any(|p| late(p)) || spec.ro_mounts.iter().any(|(_, t)| late(t)) {
        return None;
    }
    if environ_bytes(&spec.env).len() + MAP_ROOM > PAD_BYTES
        || spec.env.iter().any(|(k, _)| k.starts_with("_FLINT_"))
    {
        return None;
    }
    Some(Template {
        family,
        program: spec.program.clone(),
        args: spec.args.clone(),
        runtime_dir,
        extra_ro_binds: spec.extra_ro_binds.clone(),
        ro_mounts: spec.ro_mounts.clone(),
        startup_env: spec
            .env
            .iter()
            .filter(|(k, _)| read_at_start(k))
            .cloned()
            .collect(),
        file_size_limited: spec.tmp_size_mb > 0,
        isolate_network: spec.isolate_network,
    })
}

/// The environment as the kernel lays it out at exec (`/proc/self/environ`).
pub(crate) fn environ_bytes(env: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in env {
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// What PID 1 sends the waiting interpreter: the function's environment and working directory.
#[derive(Debug, serde::Serialize)]
pub(crate) struct FunctionStart<'a> {
    pub env: &'a [(String, String)],
    pub cwd: &'a Path,
}

/// Replaces what `/proc/<pid>/environ` shows with `env` (bytes as [`environ_bytes`] makes them),
/// in the range where the kernel put the environment at exec; `pid` is a child of the caller,
/// blocked in a system call (the read of [`SPEC_FD`]), that was exec'd with [`PAD_VAR`].
#[cfg(target_arch = "x86_64")]
pub(crate) fn replace_environ(pid: i32, env: &[u8]) -> Result<(), String> {
    inject::replace_environ(pid, env)
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn replace_environ(_pid: i32, _env: &[u8]) -> Result<(), String> {
    Err("pre-initialised runtimes need x86-64".into())
}

#[cfg(target_arch = "x86_64")]
mod inject {
    use std::os::unix::fs::FileExt;

    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    use nix::unistd::Pid;

    use super::MAP_ROOM;

    const PR_SET_MM: u64 = 35;
    const PR_SET_MM_MAP: u64 = 14;
    const ERESTARTSYS: i64 = 512;
    const ERESTARTNOINTR: i64 = 513;
    const ERESTARTNOHAND: i64 = 514;
    const ERESTART_RESTARTBLOCK: i64 = 516;

    /// `struct prctl_mm_map` (include/uapi/linux/prctl.h).
    #[repr(C)]
    struct MmMap {
        start_code: u64,
        end_code: u64,
        start_data: u64,
        end_data: u64,
        start_brk: u64,
        brk: u64,
        start_stack: u64,
        arg_start: u64,
        arg_end: u64,
        env_start: u64,
        env_end: u64,
        auxv: u64,
        auxv_size: u32,
        exe_fd: u32,
    }

    impl MmMap {
        fn to_bytes(&self) -> Vec<u8> {
            let mut out = Vec::with_capacity(104);
            for v in [
                self.start_code,
                self.end_code,
                self.start_data,
                self.end_data,
                self.start_brk,
                self.brk,
                self.start_stack,
                self.arg_start,
                self.arg_end,
                self.env_start,
                self.env_end,
                self.auxv,
            ] {
                out.extend_from_slice(&v.to_ne_bytes());
            }
            out.extend_from_slice(&self.auxv_size.to_ne_bytes());
            out.extend_from_slice(&self.exe_fd.to_ne_bytes());
            out
        }
    }

    /// A ptrace-stopped thread: registers saved at the stop, put back (with the interrupted
    /// system call set to restart) and detached when dropped.
    struct Traced {
        pid: i32,
        saved: libc::user_regs_struct,
        syscall_insn: u64,
    }

    fn ptrace(req: libc::c_uint, pid: i32, addr: usize, data: usize) -> Result<i64, String> {
        // SAFETY: the requests used here take integers or a pointer to a live
        // `user_regs_struct` of ours as `data`.
        let rc = unsafe { libc::ptrace(req, pid, addr, data) };
        if rc < 0 {
            return Err(format!("ptrace {req}: {}", std::io::Error::last_os_error()));
        }
        Ok(rc)
    }

    fn get_regs(pid: i32) -> Result<libc::user_regs_struct, String> {
        // SAFETY: an all-zero user_regs_struct is a valid value (plain integers).
        let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        ptrace(
            libc::PTRACE_GETREGS,
            pid,
            0,
            &mut regs as *mut libc::user_regs_struct as usize,
        )?;
        Ok(regs)
    }

    fn set_regs(pid: i32, regs: &libc::user_regs_struct) -> Result<(), String> {
        ptrace(
            libc::PTRACE_SETREGS,
            pid,
            0,
            regs as *const libc::user_regs_struct as usize,
        )
        .map(|_| ())
    }

    fn wait_stop(pid: i32) -> Result<(), String> {
        loop {
            match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::__WALL)) {
                Ok(WaitStatus::Stopped(..))
                | Ok(WaitStatus::PtraceEvent(..))
                | Ok(WaitStatus::PtraceSyscall(..)) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Ok(other) => return Err(format!("the interpreter ended: {other:?}")),
                Err(e) => return Err(format!("waitpid: {e}")),
            }
        }
    }

    impl Traced {
        fn seize(pid: i32) -> Result<Traced, String> {
            ptrace(
                libc::PTRACE_SEIZE,
                pid,
                0,
                libc::PTRACE_O_TRACESYSGOOD as usize,
            )?;
            let stopped = ptrace(libc::PTRACE_INTERRUPT, pid, 0, 0).and_then(|_| wait_stop(pid));
            if let Err(e) = stopped {
                let _ = ptrace(libc::PTRACE_DETACH, pid, 0, 0);
                return Err(e);
            }
            let saved = match get_regs(pid) {
                Ok(r) => r,
                Err(e) => {
                    let _ = ptrace(libc::PTRACE_DETACH, pid, 0, 0);
                    return Err(e);
                }
            };
            let traced = Traced {
                pid,
                saved,
                syscall_insn: saved.rip.wrapping_sub(2),
            };
            if (saved.orig_rax as i64) < 0 {
                return Err("the interpreter is not waiting in a system call".into());
            }
            Ok(traced)
        }

        /// Makes the stopped thread execute one system call; its return value.
        fn syscall(&self, nr: i64, args: [u64; 6]) -> Result<i64, String> {
            let mut regs = self.saved;
            regs.rip = self.syscall_insn;
            regs.rax = nr as u64;
            // Not "in a system call" any more: the kernel must not restart the interrupted one.
            regs.orig_rax = u64::MAX;
            regs.rdi = args[0];
            regs.rsi = args[1];
            regs.rdx = args[2];
            regs.r10 = args[3];
            regs.r8 = args[4];
            regs.r9 = args[5];
            set_regs(self.pid, &regs)?;
            // To the call's entry, then to its exit.
            ptrace(libc::PTRACE_SYSCALL, self.pid, 0, 0)?;
            wait_stop(self.pid)?;
            ptrace(libc::PTRACE_SYSCALL, self.pid, 0, 0)?;
            wait_stop(self.pid)?;
            Ok(get_regs(self.pid)?.rax as i64)
        }
    }

    impl Drop for Traced {
        fn drop(&mut self) {
            let mut regs = self.saved;
            // What the kernel does when it returns to user space with no signal to handle:
            // the interrupted call runs again.
            let rc = regs.rax as i64;
            if (regs.orig_rax as i64) >= 0 {
                if [-ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND].contains(&rc) {
                    regs.rax = regs.orig_rax;
                    regs.rip = self.syscall_insn;
                } else if rc == -ERESTART_RESTARTBLOCK {
                    regs.rax = libc::SYS_restart_syscall as u64;
                    regs.rip = self.syscall_insn;
                }
            }
            let _ = set_regs(self.pid, &regs);
            let _ = ptrace(libc::PTRACE_DETACH, self.pid, 0, 0);
        }
    }

    /// Fields 26.. of /proc/<pid>/stat (startcode ... env_end), by their field numbers.
    fn stat_fields(pid: i32) -> Result<Vec<u64>, String> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
        // The command name may hold spaces and parentheses: fields start after the last ')'.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .ok_or("unreadable stat")?;
        // Field 3 is the first after ')'.
        let mut fields = vec![0u64; 3];
        for f in rest.split_whitespace() {
            fields.push(f.parse::<i64>().map(|v| v as u64).unwrap_or(0));
        }
        if fields.len() <= 51 {
            return Err("stat without the memory layout fields".into());
        }
        Ok(fields)
    }

    pub(super) fn replace_environ(pid: i32, env: &[u8]) -> Result<(), String> {
        let f = stat_fields(pid)?;
        let (env_start, old_end) = (f[50], f[51]);
        let room = old_end.saturating_sub(env_start) as usize;
        if env.len() + MAP_ROOM > room {
            return Err(format!(
                "environment of {} bytes does not fit the {room} reserved",
                env.len()
            ));
        }
        let mem = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{pid}/mem"))
            .map_err(|e| format!("/proc/{pid}/mem: {e}"))?;
        let traced = Traced::seize(pid)?;
        // Stopped inside a system call (the blocking read of the spec): the two bytes before the
        // instruction pointer are that call's `syscall` instruction, which the injection reuses.
        let mut insn = [0u8; 2];
        mem.read_exact_at(&mut insn, traced.syscall_insn)
            .map_err(|e| format!("read the interpreter's code: {e}"))?;
        if insn != [0x0f, 0x05] {
            return Err("no syscall instruction before the interpreter's stop".into());
        }
        // The heap's current end (the map sets it: it must not move).
        let brk = traced.syscall(libc::SYS_brk, [0; 6])?;
        let env_end = env_start + env.len() as u64;
        let map_at = (env_end + 7) & !7;
        let map = MmMap {
            start_code: f[26],
            end_code: f[27],
            start_data: f[45],
            end_data: f[46],
            start_brk: f[47],
            brk: brk as u64,
            start_stack: f[28],
            arg_start: f[48],
            arg_end: f[49],
            env_start,
            env_end,
            auxv: 0,
            auxv_size: 0,
            exe_fd: u32::MAX,
        };
        let write = |at: u64, bytes: &[u8]| {
            mem.write_all_at(bytes, at)
                .map_err(|e| format!("write the interpreter's memory: {e}"))
        };
        write(env_start, env)?;
        let map = map.to_bytes();
        write(map_at, &map)?;
        let rc = traced.syscall(
            libc::SYS_prctl,
            [PR_SET_MM, PR_SET_MM_MAP, map_at, map.len() as u64, 0, 0],
        )?;
        // What the padding held (the start-up variables, the map) is not left behind.
        write(env_end, &vec![0u8; (old_end - env_end) as usize])?;
        if rc != 0 {
            return Err(format!(
                "prctl(PR_SET_MM_MAP): {}",
                std::io::Error::from_raw_os_error((-rc) as i32)
            ));
        }
        drop(traced);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(program: &str, args: &[&str], env: &[(&str, &str)]) -> SandboxSpec {
        SandboxSpec {
            id: "t".into(),
            program: program.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            code_dir: "/code".into(),
            opt_dir: None,
            runtime_dir: Some("/rt".into()),
            image_root: None,
            working_dir: None,
            extra_ro_binds: vec![],
            ro_mounts: vec![],
            tmp_dir: "/t".into(),
            tmp_size_mb: 512,
            memory_mb: 128,
            isolate_network: false,
        }
    }

    #[test]
    fn managed_python_and_node_have_templates_others_not() {
        let py = template_of(&spec("/usr/bin/python3.11", &[PYTHON_BOOTSTRAP], &[]));
        assert_eq!(py.map(|t| t.family), Some(Family::Python));
        let node = template_of(&spec(
            "/usr/bin/node",
            &["--max-http-header-size=81920", NODE_BOOTSTRAP],
            &[],
        ));
        assert_eq!(node.map(|t| t.family), Some(Family::Node));
        assert!(template_of(&spec("/var/task/bootstrap", &[], &[])).is_none());
        assert!(template_of(&spec("/var/task/wrapper", &["/usr/bin/python3.11"], &[])).is_none());
        assert!(template_of(&spec(
            "/usr/bin/python3.11",
            &[PYTHON_BOOTSTRAP],
            &[(FD_VAR, "1023")]
        ))
        .is_none());
        let big = "v".repeat(PAD_BYTES);
        assert!(template_of(&spec(
            "/usr/bin/python3.11",
            &[PYTHON_BOOTSTRAP],
            &[("A", &big)]
        ))
        .is_none());
    }

    #[test]
    fn only_start_up_variables_must_match() {
        let a = template_of(&spec(
            "/usr/bin/python3.11",
            &[PYTHON_BOOTSTRAP],
            &[
                ("MY_VAR", "1"),
                ("TZ", ":UTC"),
                ("AWS_LAMBDA_FUNCTION_NAME", "a"),
            ],
        ));
        let b = template_of(&spec(
            "/usr/bin/python3.11",
            &[PYTHON_BOOTSTRAP],
            &[
                ("MY_VAR", "2"),
                ("TZ", ":UTC"),
                ("AWS_LAMBDA_FUNCTION_NAME", "b"),
            ],
        ));
        assert_eq!(a, b);
        let c = template_of(&spec(
            "/usr/bin/python3.11",
            &[PYTHON_BOOTSTRAP],
            &[("PYTHONHASHSEED", "0"), ("TZ", ":UTC")],
        ));
        assert_ne!(a, c);
        assert!(read_at_start("NODE_OPTIONS") && read_at_start("LD_PRELOAD"));
        assert!(!read_at_start("AWS_LAMBDA_RUNTIME_API") && !read_at_start("_HANDLER"));
    }

    #[test]
    fn environ_bytes_are_laid_out_as_at_exec() {
        let env = vec![("A".to_string(), "1".to_string()), ("B".into(), "".into())];
        assert_eq!(environ_bytes(&env), b"A=1\0B=\0");
    }
}
