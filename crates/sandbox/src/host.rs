//! What this host lets Flint do, decided once at start: whether user namespaces can be created,
//! and which host uid/gid stand for Lambda's sandbox user (sbx_user1051, uid 993 / gid 990).

use std::path::Path;

/// Lambda's sandbox user and group inside the execution environment.
pub(crate) const SANDBOX_UID: u32 = 993;
pub(crate) const SANDBOX_GID: u32 = 990;

/// The host uid and gid that stand for root inside a sandbox when Flint is root: the host's
/// `nobody`/`nogroup`, which own nothing that matters. Files Flint gives them
/// (`/lambda-entrypoint.sh`) show as root's inside, as on Lambda, without the host's root ever
/// being mapped in; no process of a sandbox runs as uid 0 (the program is 993, without
/// capabilities), so the mapping only names owners.
pub(crate) const ROOT_STANDIN: (u32, u32) = (65534, 65534);

/// How sandboxes get their privileges to build mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Isolation {
    /// A user namespace per sandbox (the normal case, root or not).
    UserNamespace,
    /// Flint is root but the host forbids user namespaces: root builds the sandbox in new
    /// mount/pid/ipc/uts namespaces and the program runs as the real uid 993.
    RootWithoutUserNamespace,
    /// Not root and no user namespaces: sandboxes cannot be built.
    Unavailable(String),
}

/// The host ids that the sandbox user maps to, and how the maps are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub outer_uid: u32,
    pub outer_gid: u32,
    /// Flint is root: it may write any map, keep setgroups allowed (to drop groups), chown /tmp.
    pub privileged: bool,
}

impl Identity {
    pub fn current() -> Identity {
        let euid = nix::unistd::geteuid().as_raw();
        let egid = nix::unistd::getegid().as_raw();
        if euid == 0 {
            // Not root's own ids: a sandbox must never act as the host's root on shared files.
            Identity {
                outer_uid: SANDBOX_UID,
                outer_gid: SANDBOX_GID,
                privileged: true,
            }
        } else {
            Identity {
                outer_uid: euid,
                outer_gid: egid,
                privileged: false,
            }
        }
    }

    /// The sandbox user on its host uid; root too on [`ROOT_STANDIN`] when Flint is root (an
    /// unprivileged process may map its own uid only).
    pub fn uid_map(&self) -> String {
        match self.root_standin() {
            Some((uid, _)) => format!("0 {uid} 1\n{SANDBOX_UID} {} 1\n", self.outer_uid),
            None => format!("{SANDBOX_UID} {} 1\n", self.outer_uid),
        }
    }

    pub fn gid_map(&self) -> String {
        match self.root_standin() {
            Some((_, gid)) => format!("0 {gid} 1\n{SANDBOX_GID} {} 1\n", self.outer_gid),
            None => format!("{SANDBOX_GID} {} 1\n", self.outer_gid),
        }
    }

    /// The host ids that show as root inside a user namespace, if any.
    pub fn root_standin(&self) -> Option<(u32, u32)> {
        self.privileged.then_some(ROOT_STANDIN)
    }
}

pub(crate) fn detect_isolation(privileged: bool) -> Isolation {
    let read = |p: &str| {
        std::fs::read_to_string(Path::new(p))
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
    };
    let max = read("/proc/sys/user/max_user_namespaces");
    let unprivileged = read("/proc/sys/kernel/unprivileged_userns_clone");
    // Operator escape hatch for hosts whose user namespaces misbehave (e.g. LSM restrictions).
    let disabled = std::env::var("FLINT_SANDBOX_USERNS").is_ok_and(|v| v == "0");
    let reason = if disabled {
        Some("user namespaces are turned off (FLINT_SANDBOX_USERNS=0)".to_string())
    } else if max == Some(0) {
        Some("user namespaces are disabled (user.max_user_namespaces = 0)".to_string())
    } else if !privileged && unprivileged == Some(0) {
        Some(
            "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)"
                .to_string(),
        )
    } else if !Path::new("/proc/self/ns/user").exists() {
        Some("the kernel has no user namespaces".to_string())
    } else {
        None
    };
    match (reason, privileged) {
        (None, _) => Isolation::UserNamespace,
        (Some(_), true) => Isolation::RootWithoutUserNamespace,
        (Some(r), false) => Isolation::Unavailable(r),
    }
}

/// Files Flint adds at the sandbox's root (`lambda-entrypoint.sh`, as in AWS's environments and
/// its base images' ENTRYPOINT), written into `dir`: (host file, path relative to the root).
/// `owner`: the host ids to give them, which show as root in the sandbox (see [`ROOT_STANDIN`]);
/// `None` leaves Flint's own.
pub(crate) fn write_root_files(
    dir: &Path,
    owner: Option<(u32, u32)>,
) -> std::io::Result<Vec<(std::path::PathBuf, String)>> {
    // In a directory only Flint's own uid may enter: the stand-in owner (the host's nobody) may
    // write a file it owns, so no host process running as nobody must reach it. The sandbox's
    // PID 1 opens it with Flint's uid, the directory's owner, before it changes identity.
    let dir = dir.join("root-files");
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let entrypoint = dir.join("lambda-entrypoint.sh");
    std::fs::write(&entrypoint, LAMBDA_ENTRYPOINT)?;
    std::fs::set_permissions(
        &entrypoint,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&entrypoint, Some(uid), Some(gid))?;
    }
    Ok(vec![(entrypoint, "lambda-entrypoint.sh".to_string())])
}

/// AWS's `/lambda-entrypoint.sh`: runs the runtime's bootstrap with the handler as `_HANDLER`.
const LAMBDA_ENTRYPOINT: &str = r#"#!/bin/sh
# Copyright 2020 Amazon.com, Inc. or its affiliates. All Rights Reserved.

if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" 1>&2
  exit 142
fi
export _HANDLER="$1"

RUNTIME_ENTRYPOINT=/var/runtime/bootstrap
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ]; then
  exec /usr/local/bin/aws-lambda-rie $RUNTIME_ENTRYPOINT
else
  exec $RUNTIME_ENTRYPOINT
fi
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_put_the_sandbox_user_on_one_host_id() {
        let id = Identity {
            outer_uid: 1000,
            outer_gid: 1000,
            privileged: false,
        };
        assert_eq!(id.uid_map(), "993 1000 1\n");
        assert_eq!(id.gid_map(), "990 1000 1\n");
        assert_eq!(id.root_standin(), None);
    }

    #[test]
    fn root_maps_the_sandboxs_root_to_nobody_never_to_the_hosts_root() {
        let id = Identity {
            outer_uid: SANDBOX_UID,
            outer_gid: SANDBOX_GID,
            privileged: true,
        };
        assert_eq!(id.uid_map(), "0 65534 1\n993 993 1\n");
        assert_eq!(id.gid_map(), "0 65534 1\n990 990 1\n");
        for line in id.uid_map().lines().chain(id.gid_map().lines()) {
            let outer: Vec<&str> = line.split(' ').collect();
            assert_ne!(outer[1], "0", "{line}");
        }
    }

    #[test]
    fn root_files_go_to_the_given_owner_in_a_directory_only_flint_enters() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_root_files(dir.path(), None).unwrap();
        let (path, target) = &files[0];
        assert_eq!(target, "lambda-entrypoint.sh");
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o755);
        let parent = std::fs::metadata(path.parent().unwrap()).unwrap();
        assert_eq!(parent.mode() & 0o7777, 0o700);
        if nix::unistd::geteuid().is_root() {
            write_root_files(dir.path(), Some(ROOT_STANDIN)).unwrap();
            let meta = std::fs::metadata(path).unwrap();
            assert_eq!((meta.uid(), meta.gid()), ROOT_STANDIN);
        }
    }

    #[test]
    fn root_never_maps_the_sandbox_user_to_root() {
        if nix::unistd::geteuid().is_root() {
            let id = Identity::current();
            assert_ne!(id.outer_uid, 0);
            assert_ne!(id.outer_gid, 0);
            assert!(id.privileged);
        }
    }
}
