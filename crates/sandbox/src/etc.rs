//! The `/etc` of zip-packaged functions: one small read-only tree per Flint, built at start under
//! the sandbox state dir and bound whole at `/etc`, shaped like Lambda's rather than the host's.
//! It holds what the runtimes and the C library read (users and groups naming sbx_user1051, name
//! service and resolver configuration, the loader cache, CA certificates, the time zone); nothing
//! else of the host's `/etc` (shadow, ssh, hostname, fstab, cron, installed services) is visible.
//! `resolv.conf` is an empty mount point here: each sandbox gets the host's current one bound over
//! it. Container-image functions keep their image's own `/etc` (see `mounts::plan_image`).

use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::host::{SANDBOX_GID, SANDBOX_UID};

/// Every top-level name the tree may hold (the sandbox's `/etc` lists nothing else).
#[cfg(test)]
const NAMES: [&str; 17] = [
    "alternatives",
    "group",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "mtab",
    "nsswitch.conf",
    "os-release",
    "passwd",
    "pki",
    "protocols",
    "resolv.conf",
    "services",
    "ssl",
];

/// Where a host keeps its CA bundle (Debian/Ubuntu, Fedora/Amazon Linux, openSUSE, Alpine).
const CA_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Lambda's users: root, nobody (what unmapped owners show as in a user namespace) and the
/// sandbox user; `getpass.getuser()`, `os.userInfo()` and `Path.home()` look the latter up.
fn passwd() -> String {
    format!(
        "root:x:0:0:root:/root:/bin/bash\n\
         nobody:x:65534:65534:Kernel Overflow User:/:/sbin/nologin\n\
         sbx_user1051:x:{SANDBOX_UID}:{SANDBOX_GID}::/tmp:/sbin/nologin\n"
    )
}

fn group() -> String {
    format!("root:x:0:\nnobody:x:65534:\nsbx_user1051:x:{SANDBOX_GID}:\n")
}

/// `sandbox.localdomain` names the environment itself, as in AWS's: extensions bind their
/// Telemetry API listeners there. The host's own names are not listed.
const HOSTS: &str = "127.0.0.1\tlocalhost localhost.localdomain\n\
                     ::1\tlocalhost localhost.localdomain ip6-localhost ip6-loopback\n\
                     127.0.0.1\tsandbox.localdomain sandbox\n";

/// Files only: no systemd, LDAP or NIS modules that would reach for services not in the sandbox.
const NSSWITCH: &str = "passwd: files\ngroup: files\nshadow: files\n\
                        hosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n\
                        ethers: files\nrpc: files\n";

/// Builds the tree at `dir` (replacing what a previous run left there) and returns `dir`.
pub(crate) fn build(dir: &Path) -> io::Result<PathBuf> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::create_dir_all(dir)?;
    set_mode(dir, 0o755)?;
    write(dir, "passwd", passwd().as_bytes())?;
    write(dir, "group", group().as_bytes())?;
    write(dir, "hosts", HOSTS.as_bytes())?;
    write(dir, "nsswitch.conf", NSSWITCH.as_bytes())?;
    // The mount point of the host's resolver configuration (bound per sandbox, so a change on
    // the host reaches new environments); empty means "nameserver 127.0.0.1" to the C library.
    write(dir, "resolv.conf", b"")?;
    // The host-built interpreters need the loader's cache and configuration.
    for name in [
        "ld.so.cache",
        "ld.so.conf",
        "services",
        "protocols",
        "mime.types",
    ] {
        copy_if_present(&Path::new("/etc").join(name), &dir.join(name))?;
    }
    copy_conf_dir(Path::new("/etc/ld.so.conf.d"), &dir.join("ld.so.conf.d"))?;
    // Lambda's clock is UTC (its TZ is ":UTC" too).
    for zone in ["/usr/share/zoneinfo/Etc/UTC", "/usr/share/zoneinfo/UTC"] {
        if Path::new(zone).exists() {
            symlink(zone, dir.join("localtime"))?;
            break;
        }
    }
    // Which distribution the userland (the host's /usr) is: tools that read it must find the
    // truth, not Amazon Linux's name with Debian's libraries behind it.
    if Path::new("/usr/lib/os-release").is_file() {
        symlink("../usr/lib/os-release", dir.join("os-release"))?;
    } else {
        copy_if_present(Path::new("/etc/os-release"), &dir.join("os-release"))?;
    }
    symlink("../proc/self/mounts", dir.join("mtab"))?;
    certificates(dir)?;
    alternatives(dir)?;
    java(dir)?;
    Ok(dir.to_path_buf())
}

/// The CA bundle where Debian's OpenSSL and Amazon Linux's look for it
/// (`ssl/certs/ca-certificates.crt`, `pki/tls/certs/ca-bundle.crt`), the hashed links of the
/// host's certificate directory (OpenSSL's CApath), and OpenSSL's configuration.
fn certificates(dir: &Path) -> io::Result<()> {
    let certs = dir.join("ssl/certs");
    std::fs::create_dir_all(&certs)?;
    for d in [dir.join("ssl"), certs.clone()] {
        set_mode(&d, 0o755)?;
    }
    if let Some(bundle) = CA_BUNDLES.iter().map(Path::new).find(|p| p.is_file()) {
        std::fs::copy(bundle, certs.join("ca-certificates.crt"))?;
        set_mode(&certs.join("ca-certificates.crt"), 0o644)?;
        let pki = dir.join("pki/tls/certs");
        std::fs::create_dir_all(&pki)?;
        for d in [dir.join("pki"), dir.join("pki/tls"), pki.clone()] {
            set_mode(&d, 0o755)?;
        }
        symlink(
            "../../../ssl/certs/ca-certificates.crt",
            pki.join("ca-bundle.crt"),
        )?;
    }
    // Debian's CApath: links into /usr/share/ca-certificates (visible through /usr) and links
    // to those links; copied as links, the bundle aside.
    if let Ok(entries) = std::fs::read_dir("/etc/ssl/certs") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let target = certs.join(&name);
            if target.exists() {
                continue;
            }
            if let Ok(points_to) = std::fs::read_link(entry.path()) {
                if points_to.is_relative() || points_to.starts_with("/usr/") {
                    symlink(points_to, target)?;
                }
            }
        }
    }
    copy_if_present(
        Path::new("/etc/ssl/openssl.cnf"),
        &dir.join("ssl/openssl.cnf"),
    )
}

/// Debian's JDKs keep their configuration in `/etc/java-N-openjdk` (`lib/jvm.cfg`,
/// `conf/security/java.security` and the rest link there: without it `java` does not start) and
/// their trust store at `/etc/ssl/certs/java/cacerts`: copied when the host has them.
fn java(dir: &Path) -> io::Result<()> {
    if let Ok(entries) = std::fs::read_dir("/etc") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let is_jdk = name.to_str().is_some_and(|n| n.starts_with("java-"));
            if is_jdk && entry.file_type().is_ok_and(|t| t.is_dir()) {
                copy_tree(&entry.path(), &dir.join(&name))?;
            }
        }
    }
    let store = Path::new("/etc/ssl/certs/java/cacerts");
    if store.is_file() {
        let java = dir.join("ssl/certs/java");
        std::fs::create_dir_all(&java)?;
        set_mode(&java, 0o755)?;
        copy_if_present(store, &java.join("cacerts"))?;
    }
    Ok(())
}

/// A host directory's files and subdirectories (links followed), readable by everyone.
fn copy_tree(source: &Path, target: &Path) -> io::Result<()> {
    std::fs::create_dir_all(target)?;
    set_mode(target, 0o755)?;
    for entry in std::fs::read_dir(source)?.flatten() {
        let (from, to) = (entry.path(), target.join(entry.file_name()));
        if from.is_dir() {
            copy_tree(&from, &to)?;
        } else if from.is_file() {
            copy_if_present(&from, &to)?;
        }
    }
    Ok(())
}

/// Debian routes some commands through `/etc/alternatives` (`awk`, `which`, `nodejs`): keep the
/// links that commands in /usr/bin and /usr/sbin go through, and only those.
fn alternatives(dir: &Path) -> io::Result<()> {
    let out = dir.join("alternatives");
    let mut made = false;
    for bin in ["/usr/bin", "/usr/sbin"] {
        let Ok(entries) = std::fs::read_dir(bin) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(link) = std::fs::read_link(entry.path()) else {
                continue;
            };
            let Ok(name) = link.strip_prefix("/etc/alternatives") else {
                continue;
            };
            let Ok(points_to) = std::fs::read_link(Path::new("/etc/alternatives").join(name))
            else {
                continue;
            };
            if !points_to.starts_with("/usr/") || name.components().count() != 1 {
                continue;
            }
            if !made {
                std::fs::create_dir_all(&out)?;
                set_mode(&out, 0o755)?;
                made = true;
            }
            let target = out.join(name);
            if std::fs::symlink_metadata(&target).is_err() {
                symlink(points_to, target)?;
            }
        }
    }
    Ok(())
}

fn write(dir: &Path, name: &str, content: &[u8]) -> io::Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, content)?;
    set_mode(&path, 0o644)
}

/// Copies a host file's content (following links) if the host has it.
fn copy_if_present(source: &Path, target: &Path) -> io::Result<()> {
    match std::fs::copy(source, target) {
        Ok(_) => set_mode(target, 0o644),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The `*.conf` files of a host `.d` directory.
fn copy_conf_dir(source: &Path, target: &Path) -> io::Result<()> {
    let Ok(entries) = std::fs::read_dir(source) else {
        return Ok(());
    };
    std::fs::create_dir_all(target)?;
    set_mode(target, 0o755)?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if Path::new(&name).extension().is_some_and(|e| e == "conf") && entry.path().is_file() {
            copy_if_present(&entry.path(), &target.join(name))?;
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_holds_only_the_allowed_names() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = build(&scratch.path().join("etc")).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                NAMES.contains(&name.as_str()) || name.starts_with("java-"),
                "unexpected /etc/{name}"
            );
        }
        for name in ["passwd", "group", "hosts", "nsswitch.conf", "resolv.conf"] {
            assert!(dir.join(name).is_file(), "{name}");
        }
        assert!(!dir.join("shadow").exists());
    }

    #[test]
    fn a_debian_jdk_finds_its_configuration() {
        let jdks: Vec<_> = std::fs::read_dir("/etc")
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("java-"))
            .collect();
        if jdks.is_empty() {
            eprintln!("skipped: the host has no Debian JDK");
            return;
        }
        let scratch = tempfile::tempdir().unwrap();
        let dir = build(&scratch.path().join("etc")).unwrap();
        for jdk in jdks {
            let cfg = dir.join(jdk.file_name()).join("jvm-amd64.cfg");
            if jdk.path().join("jvm-amd64.cfg").is_file() {
                assert!(cfg.is_file(), "{}", cfg.display());
            }
        }
    }

    #[test]
    fn passwd_and_group_name_the_sandbox_user_and_no_host_user() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = build(&scratch.path().join("etc")).unwrap();
        let passwd = std::fs::read_to_string(dir.join("passwd")).unwrap();
        assert!(passwd.contains("sbx_user1051:x:993:990::/tmp:/sbin/nologin\n"));
        assert_eq!(passwd.lines().count(), 3, "{passwd}");
        let group = std::fs::read_to_string(dir.join("group")).unwrap();
        assert!(group.contains("sbx_user1051:x:990:\n"));
        let hosts = std::fs::read_to_string(dir.join("hosts")).unwrap();
        assert!(hosts.contains("sandbox.localdomain"));
    }

    #[test]
    fn building_again_replaces_the_previous_tree() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().join("etc");
        build(&dir).unwrap();
        std::fs::write(dir.join("stale"), b"x").unwrap();
        build(&dir).unwrap();
        assert!(!dir.join("stale").exists());
    }

    #[test]
    fn the_ca_bundle_is_where_debian_and_amazon_linux_look() {
        if !CA_BUNDLES.iter().any(|p| Path::new(p).is_file()) {
            eprintln!("skipped: the host has no CA bundle");
            return;
        }
        let scratch = tempfile::tempdir().unwrap();
        let dir = build(&scratch.path().join("etc")).unwrap();
        let debian = std::fs::read(dir.join("ssl/certs/ca-certificates.crt")).unwrap();
        assert!(debian.starts_with(b"-----BEGIN CERTIFICATE-----"));
        assert_eq!(
            std::fs::read(dir.join("pki/tls/certs/ca-bundle.crt")).unwrap(),
            debian
        );
    }
}
