//! Unpacking an image's layers, in order, into one root filesystem, as a container runtime does:
//! whiteouts (`.wh.NAME` deletes NAME of a lower layer, `.wh..wh..opq` empties a directory of
//! lower layers' entries), hard links, symlinks. A layer is untrusted input: no entry may write
//! outside the root — `..` components are refused, and parents are resolved inside the root
//! (a symlink `lib -> /usr/lib` in the image means `ROOT/usr/lib`, never the host's).

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
/// Symlinks followed while resolving one path (Linux's own limit is 40).
const MAX_HOPS: usize = 40;

/// Why a layer was refused.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// An entry names a path outside the root (`..`), or a hard link points outside it.
    #[error("layer entry {0:?} escapes the image root")]
    PathEscape(String),
    #[error("layer entry {path:?}: {reason}")]
    Entry { path: String, reason: String },
    #[error("reading layer: {0}")]
    Io(#[from] io::Error),
}

/// A layer's path, made relative and checked: no `..`, no absolute parts.
fn clean(raw: &Path) -> Result<PathBuf, UnpackError> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(UnpackError::PathEscape(raw.display().to_string()))
            }
        }
    }
    Ok(out)
}

/// Resolves `rel` (clean, relative) inside `root`, following symlinks among its parents as the
/// image's own root would (absolute targets and `..` never leave `root`). The last component is
/// not followed: it is what the entry creates or replaces.
pub(crate) fn resolve_in_root(root: &Path, rel: &Path) -> Result<PathBuf, UnpackError> {
    let escape = || UnpackError::PathEscape(rel.display().to_string());
    let mut parts: Vec<std::ffi::OsString> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .collect();
    let Some(last) = parts.pop() else {
        return Ok(root.to_path_buf());
    };
    // The resolved parent, as components under root; `pending` is what is left to walk (reversed).
    let mut resolved: Vec<std::ffi::OsString> = Vec::new();
    let mut pending: Vec<std::ffi::OsString> = parts.into_iter().rev().collect();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        if part == "." || part.is_empty() {
            continue;
        }
        let mut here = root.to_path_buf();
        here.extend(&resolved);
        here.push(&part);
        match fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(escape());
                }
                let target = fs::read_link(&here)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push(n.to_os_string()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => resolved.push(part),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&resolved);
    out.push(last);
    Ok(out)
}

/// Removes whatever is at `path` (not following a symlink there).
fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn entry_error(path: &Path, e: impl std::fmt::Display) -> UnpackError {
    UnpackError::Entry {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Applies one layer (an uncompressed tar stream) on top of `root`.
pub fn apply_layer(root: &Path, layer: impl Read) -> Result<(), UnpackError> {
    let mut archive = tar::Archive::new(layer);
    // Paths this layer has created: an opaque whiteout hides only the lower layers' entries.
    let mut this_layer: HashSet<PathBuf> = HashSet::new();
    let mut dir_modes: Vec<(PathBuf, u32)> = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.into_owned();
        let rel = clean(&raw)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        if name == OPAQUE {
            let dir = resolve_in_root(root, &parent_rel.join("x"))?
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| root.to_path_buf());
            if let Ok(children) = fs::read_dir(&dir) {
                for child in children.flatten() {
                    let child_rel = parent_rel.join(child.file_name());
                    if !this_layer.contains(&child_rel) {
                        remove_any(&child.path()).map_err(|e| entry_error(&raw, e))?;
                    }
                }
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let target = resolve_in_root(root, &parent_rel.join(hidden))?;
            remove_any(&target).map_err(|e| entry_error(&raw, e))?;
            continue;
        }
        let target = resolve_in_root(root, &rel)?;
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| entry_error(&raw, e))?;
        }
        let mode = entry.header().mode().unwrap_or(0o644) & 0o7777;
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => {
                match fs::symlink_metadata(&target) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        fs::remove_file(&target).map_err(|e| entry_error(&raw, e))?;
                        fs::create_dir(&target).map_err(|e| entry_error(&raw, e))?;
                    }
                    Err(_) => fs::create_dir(&target).map_err(|e| entry_error(&raw, e))?,
                }
                dir_modes.push((target, mode));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_any(&target).map_err(|e| entry_error(&raw, e))?;
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(|e| entry_error(&raw, e))?;
                io::copy(&mut entry, &mut file).map_err(|e| entry_error(&raw, e))?;
                file.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(|e| entry_error(&raw, e))?;
            }
            tar::EntryType::Symlink => {
                let points_to = entry
                    .link_name()?
                    .ok_or_else(|| entry_error(&raw, "symlink without a target"))?
                    .into_owned();
                remove_any(&target).map_err(|e| entry_error(&raw, e))?;
                std::os::unix::fs::symlink(&points_to, &target)
                    .map_err(|e| entry_error(&raw, e))?;
            }
            tar::EntryType::Link => {
                let linked = entry
                    .link_name()?
                    .ok_or_else(|| entry_error(&raw, "hard link without a target"))?
                    .into_owned();
                let source = resolve_in_root(root, &clean(&linked)?)?;
                match fs::symlink_metadata(&source) {
                    Ok(m) if m.is_file() => {}
                    _ => return Err(UnpackError::PathEscape(linked.display().to_string())),
                }
                remove_any(&target).map_err(|e| entry_error(&raw, e))?;
                fs::hard_link(&source, &target).map_err(|e| entry_error(&raw, e))?;
            }
            // Device nodes and fifos cannot be made unprivileged in the sandbox either; the
            // image gets Flint's /dev. Extended headers are consumed by the tar reader.
            _ => continue,
        }
        this_layer.insert(rel);
    }
    // Directory modes last, so that a read-only directory could still be filled.
    for (dir, mode) in dir_modes.into_iter().rev() {
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// What the sandbox mounts over, made to exist (as the right kind of node) in a finished root:
/// the root is bound read-only, so mount points cannot be created later.
pub fn add_mount_points(root: &Path) -> io::Result<()> {
    for dir in ["proc", "dev", "tmp", "etc", "var/task", "opt"] {
        let path = root.join(dir);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                fs::remove_file(&path)?;
                fs::create_dir_all(&path)?;
            }
            Err(_) => fs::create_dir_all(&path)?,
        }
    }
    for file in ["etc/hosts", "etc/resolv.conf"] {
        let path = root.join(file);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                remove_any(&path)?;
                fs::write(&path, b"")?;
            }
            Err(_) => fs::write(&path, b"")?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data).unwrap();
    }

    fn link(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, path: &str, to: &str) {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o777);
        h.set_entry_type(kind);
        b.append_link(&mut h, path, to).unwrap();
    }

    /// A tar whose entry names a raw path the builder would refuse (`..`).
    fn raw_entry(path: &str) -> Vec<u8> {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        let mut out = h.as_bytes().to_vec();
        let mut data = [0u8; 512];
        data[0] = b'x';
        out.extend_from_slice(&data);
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    #[test]
    fn whiteouts_remove_lower_layers_entries() {
        let root = tempfile::tempdir().unwrap();
        let lower = layer(|b| {
            file(b, "a/keep", b"1");
            file(b, "a/gone", b"2");
            file(b, "opq/old", b"3");
        });
        let upper = layer(|b| {
            file(b, "a/.wh.gone", b"");
            file(b, "opq/.wh..wh..opq", b"");
            file(b, "opq/new", b"4");
        });
        apply_layer(root.path(), &lower[..]).unwrap();
        apply_layer(root.path(), &upper[..]).unwrap();
        assert!(root.path().join("a/keep").exists());
        assert!(!root.path().join("a/gone").exists());
        assert!(!root.path().join("opq/old").exists());
        assert_eq!(fs::read(root.path().join("opq/new")).unwrap(), b"4");
    }

    #[test]
    fn an_opaque_whiteout_keeps_its_own_layers_entries_before_it() {
        let root = tempfile::tempdir().unwrap();
        let l = layer(|b| {
            file(b, "d/mine", b"1");
            file(b, "d/.wh..wh..opq", b"");
        });
        apply_layer(root.path(), &l[..]).unwrap();
        assert!(root.path().join("d/mine").exists());
    }

    #[test]
    fn parent_paths_escaping_the_root_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let l = raw_entry("../escaped");
        let err = apply_layer(root.path(), &l[..]).unwrap_err();
        assert!(matches!(err, UnpackError::PathEscape(_)), "{err}");
        assert!(!root.path().parent().unwrap().join("escaped").exists());
    }

    #[test]
    fn writes_through_a_symlink_stay_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let target = outside.path().to_str().unwrap().to_string();
        let l = layer(|b| {
            link(b, tar::EntryType::Symlink, "evil", &target);
            link(b, tar::EntryType::Symlink, "up", "../../../..");
            file(b, "evil/file", b"x");
            file(b, "up/file2", b"y");
        });
        apply_layer(root.path(), &l[..]).unwrap();
        assert!(fs::read_dir(outside.path()).unwrap().next().is_none());
        // Re-rooted: an absolute target means the same path inside the image.
        assert!(root
            .path()
            .join(target.trim_start_matches('/'))
            .join("file")
            .exists());
        assert!(root.path().join("file2").exists());
    }

    #[test]
    fn hard_links_point_inside_the_root_only() {
        let root = tempfile::tempdir().unwrap();
        let l = layer(|b| {
            file(b, "bin/a", b"same");
            link(b, tar::EntryType::Link, "bin/b", "bin/a");
        });
        apply_layer(root.path(), &l[..]).unwrap();
        assert_eq!(fs::read(root.path().join("bin/b")).unwrap(), b"same");
        let bad = layer(|b| link(b, tar::EntryType::Link, "x", "etc/passwd-not-here"));
        assert!(apply_layer(root.path(), &bad[..]).is_err());
    }

    #[test]
    fn mount_points_replace_symlinks() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", root.path().join("etc/hosts")).unwrap();
        add_mount_points(root.path()).unwrap();
        assert!(fs::symlink_metadata(root.path().join("etc/hosts"))
            .unwrap()
            .is_file());
        assert!(root.path().join("proc").is_dir());
    }
}
