//! The seccomp filter every function's processes run under, in the spirit of Docker's default
//! profile: the system calls a function has no use for and that widen the kernel's attack
//! surface (mounting, namespaces, BPF, keyrings, userfaultfd, perf, modules, kexec, clocks,
//! io_uring, …) fail with `EPERM`; everything else is allowed. Installed by the program's process
//! just before `execve` (with `no_new_privs`), so it holds for the runtime and all it starts.

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

/// Denied system calls (all architectures).
const DENIED: &[libc::c_long] = &[
    // Filesystems and namespaces: the sandbox's mounts are final.
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_quotactl,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    // Kernel facilities that are frequent exploit vectors.
    libc::SYS_bpf,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_userfaultfd,
    libc::SYS_perf_event_open,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_lookup_dcookie,
    // The host's kernel, clock and logs.
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_reboot,
    libc::SYS_acct,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_syslog,
    libc::SYS_vhangup,
];

/// Denied system calls that exist only on x86-64.
#[cfg(target_arch = "x86_64")]
const DENIED_ARCH: &[libc::c_long] = &[
    libc::SYS_kexec_file_load,
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_uselib,
    libc::SYS_nfsservctl,
    libc::SYS__sysctl,
];
#[cfg(target_arch = "aarch64")]
const DENIED_ARCH: &[libc::c_long] = &[libc::SYS_kexec_file_load];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const DENIED_ARCH: &[libc::c_long] = &[];

/// The compiled default filter.
#[allow(clippy::useless_conversion)] // `c_long` is `i64` only on 64-bit targets
pub(crate) fn default_filter() -> Result<BpfProgram, String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("seccomp: unsupported architecture: {e}"))?;
    // An empty rule list matches the call whatever its arguments.
    let rules = DENIED
        .iter()
        .chain(DENIED_ARCH)
        .map(|n| (i64::from(*n), Vec::new()))
        .collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| format!("seccomp filter: {e}"))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| format!("seccomp filter: {e}"))
}

/// Installs `filter` on the calling thread (after `PR_SET_NO_NEW_PRIVS`).
pub(crate) fn install(filter: &BpfProgram) -> Result<(), String> {
    seccompiler::apply_filter(filter).map_err(|e| format!("seccomp: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_filter_compiles() {
        let filter = super::default_filter().unwrap();
        assert!(filter.len() > super::DENIED.len());
    }
}
