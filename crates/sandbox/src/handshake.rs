//! What Flint and a sandbox's init say to each other over the control socket (the init's stdin):
//! Flint sends a JSON line saying how to prepare the namespaces, then (at once, or later for a pooled
//! sandbox) one with the spec; the init answers with JSON lines (prepared, set-up failed, the
//! program could not be exec'd, the program runs, the program exited).

use std::path::PathBuf;

use crate::SandboxSpec;

/// Byte Flint writes on the control socket to ask for a graceful stop (SIGTERM to the program).
pub(crate) const TERMINATE: u8 = b't';

/// First line Flint sends: how to build the sandbox's namespaces and cgroup membership. None of it
/// depends on the function, so a sandbox can be prepared this far before a spec exists (the pool).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct PrepareRequest {
    /// Create a user namespace (else: Flint is root and the host has none; root builds the sandbox
    /// and the program is started with the real uid/gid of the launch request).
    pub user_namespace: bool,
    /// Give the sandbox its own network namespace.
    pub isolate_network: bool,
    /// With `isolate_network`: the sockets PID 1 opens there besides the two fixed listeners.
    pub namespace_ports: crate::netns::NamespacePorts,
    /// With `isolate_network`: connect the namespace to the host (veth + NAT) for outbound
    /// access; without it the sandbox reaches nothing but Flint's listeners.
    pub veth: Option<crate::outbound::VethPlan>,
    /// `/proc/<pid>/uid_map` and `gid_map` contents written by the init for the sandbox.
    pub uid_map: String,
    pub gid_map: String,
    /// Write `deny` to `/proc/<pid>/setgroups` first (needed when Flint is not root).
    pub deny_setgroups: bool,
    /// `cgroup.procs` files that the sandbox's PID 1 is written into before it does anything.
    pub cgroup_procs: Vec<PathBuf>,
    /// Also build the root a managed runtime needs and start its interpreter, which waits for
    /// the function (see `preinit.rs`).
    #[serde(default)]
    pub preinit: Option<PreinitPlan>,
}

/// A pre-initialised runtime to start in the prepared sandbox: the parts of a launch request
/// that do not depend on the function.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct PreinitPlan {
    pub template: crate::preinit::Template,
    pub uid: u32,
    pub gid: u32,
    pub drop_groups: bool,
    pub root_mount: PathBuf,
    pub root_files: crate::mounts::RootFiles,
}

/// Second line: the function to run in the prepared sandbox, and how.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct LaunchRequest {
    pub spec: SandboxSpec,
    /// uid/gid of the program inside the sandbox (Lambda's sbx_user1051: 993/990).
    pub uid: u32,
    pub gid: u32,
    /// Drop supplementary groups (possible when Flint is root).
    pub drop_groups: bool,
    /// Empty host dir where the sandbox's tmpfs root is mounted (inside its own mount namespace).
    pub root_mount: PathBuf,
    /// RLIMIT_DATA in bytes when no memory cgroup can enforce MemorySize.
    pub data_limit: Option<u64>,
    /// RLIMIT_FSIZE in bytes: the /tmp size as a per-file limit.
    pub file_size_limit: Option<u64>,
    pub hostname: String,
    /// Flint's `/etc` tree and the files it adds at the root of zip sandboxes.
    pub root_files: crate::mounts::RootFiles,
}

/// One JSON line (requests are sent as lines on the control socket).
pub(crate) fn request_line<T: serde::Serialize>(request: &T) -> std::io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(request).map_err(std::io::Error::other)?;
    line.push(b'\n');
    Ok(line)
}

/// A message from the init to Flint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum InitReport {
    /// The sandbox could not be built (a mount, a cgroup, the uid map).
    SetupFailed { reason: String },
    /// The namespaces and cgroups are in place; PID 1 waits for the launch request.
    Prepared,
    /// execve of the program failed (missing, not executable, bad interpreter).
    StartFailed { reason: String },
    /// The program was exec'd.
    Running,
    /// The program ended (reported by the sandbox's PID 1 just before it exits).
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
    },
}

impl InitReport {
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self)
            .unwrap_or_else(|_| b"{\"kind\":\"setup_failed\",\"reason\":\"encoding\"}".to_vec());
        line.push(b'\n');
        line
    }

    pub fn parse(line: &str) -> Option<InitReport> {
        serde_json::from_str(line.trim()).ok()
    }
}

/// errno as Go's os/exec words it (Lambda's `Runtime.InvalidEntrypoint` messages come from Go:
/// `fork/exec /var/task/bootstrap: no such file or directory`).
pub(crate) fn errno_words(errno: i32) -> String {
    let text = nix::errno::Errno::from_raw(errno).desc();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("errno {errno}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_survive_a_round_trip_as_one_line() {
        for report in [
            InitReport::SetupFailed {
                reason: "mount /var/task: permission denied".into(),
            },
            InitReport::StartFailed {
                reason: "no such file or directory".into(),
            },
            InitReport::Prepared,
            InitReport::Running,
            InitReport::Exited {
                code: Some(3),
                signal: None,
            },
            InitReport::Exited {
                code: None,
                signal: Some(9),
            },
        ] {
            let line = report.to_line();
            assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
            assert_eq!(
                InitReport::parse(std::str::from_utf8(&line).unwrap()),
                Some(report)
            );
        }
        assert_eq!(InitReport::parse("garbage"), None);
    }

    #[test]
    fn errno_is_worded_like_go() {
        assert_eq!(errno_words(libc::ENOENT), "no such file or directory");
        assert_eq!(errno_words(libc::EACCES), "permission denied");
        assert_eq!(errno_words(libc::ENOEXEC), "exec format error");
    }
}
