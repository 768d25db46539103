//! Layers: a function's layer directories merged into one tree mounted at /opt, later layers
//! winning on conflicts as in Lambda. Merged trees are cached under `Layout::merged_layers()/<digest
//! of the list>` and built once (hard links where possible, copies across file systems); beside
//! each, `<digest>.sources` lists the layer directories it was built from, so that the tree goes
//! when one of them is removed (its hard links would otherwise keep a deleted layer's files).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The merged /opt tree for `layer_dirs` (built on first use); `generation` tells apart the
/// states of hot-reloaded layer directories (0 when there are none).
pub(crate) fn merged(
    layers_root: &Path,
    layer_dirs: &[PathBuf],
    generation: u64,
) -> io::Result<PathBuf> {
    let mut h = Sha256::new();
    if generation != 0 {
        h.update(generation.to_le_bytes());
    }
    for d in layer_dirs {
        h.update(d.as_os_str().as_encoded_bytes());
        h.update([0u8]);
    }
    let key: String = h
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    let target = layers_root.join(&key);
    if target.is_dir() {
        return Ok(target);
    }
    fs::create_dir_all(layers_root)?;
    // Build beside the target and rename: a concurrent cold start never sees half a tree.
    let building = layers_root.join(format!("{key}.building-{:016x}", rand::random::<u64>()));
    fs::create_dir_all(&building)?;
    let result = (|| {
        for dir in layer_dirs {
            merge_into(dir, &building)?;
        }
        write_sources(&layers_root.join(format!("{key}{SOURCES}")), layer_dirs)
    })();
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&building);
        return Err(e);
    }
    match fs::rename(&building, &target) {
        Ok(()) => Ok(target),
        Err(_) if target.is_dir() => {
            // Someone else finished first: theirs is identical.
            let _ = fs::remove_dir_all(&building);
            Ok(target)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&building);
            Err(e)
        }
    }
}

/// Suffix of the file naming a merged tree's layer directories.
const SOURCES: &str = ".sources";

fn write_sources(path: &Path, layer_dirs: &[PathBuf]) -> io::Result<()> {
    let mut text = String::new();
    for d in layer_dirs {
        text.push_str(&d.to_string_lossy());
        text.push('\n');
    }
    fs::write(path, text)
}

/// Removes the merged trees built from any of `removed` (their layer directories are gone).
pub(crate) fn forget_built_from(layers_root: &Path, removed: &[PathBuf]) -> io::Result<()> {
    let entries = match fs::read_dir(layers_root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let Some(key) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(SOURCES))
        else {
            continue;
        };
        let sources = fs::read_to_string(&path)?;
        if sources
            .lines()
            .any(|l| removed.iter().any(|r| r.as_os_str() == l))
        {
            let tree = layers_root.join(key);
            if tree.is_dir() {
                fs::remove_dir_all(&tree)?;
            }
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Copies `src`'s tree over `dst`, replacing what is there.
fn merge_into(src: &Path, dst: &Path) -> io::Result<()> {
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let ty = entry.file_type()?;
        let existing = fs::symlink_metadata(&to).ok();
        if ty.is_dir() {
            if existing.as_ref().is_some_and(|m| !m.is_dir()) {
                fs::remove_file(&to)?;
            }
            fs::create_dir_all(&to)?;
            fs::set_permissions(&to, fs::metadata(&from)?.permissions())?;
            merge_into(&from, &to)?;
            continue;
        }
        match existing {
            Some(m) if m.is_dir() => fs::remove_dir_all(&to)?,
            Some(_) => fs::remove_file(&to)?,
            None => {}
        }
        if ty.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
        } else if fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_layers_win_and_the_merge_is_cached() -> io::Result<()> {
        let t = tempfile::tempdir()?;
        let a = t.path().join("a");
        let b = t.path().join("b");
        fs::create_dir_all(a.join("python"))?;
        fs::create_dir_all(b.join("python"))?;
        fs::write(a.join("python/x.py"), "a")?;
        fs::write(a.join("only_a"), "a")?;
        fs::write(b.join("python/x.py"), "b")?;
        let root = t.path().join("layers");
        let m = merged(&root, &[a.clone(), b.clone()], 0)?;
        assert_eq!(fs::read_to_string(m.join("python/x.py"))?, "b");
        assert_eq!(fs::read_to_string(m.join("only_a"))?, "a");
        assert_eq!(merged(&root, &[a.clone(), b.clone()], 0)?, m);
        let reversed = merged(&root, &[b, a], 0)?;
        assert_ne!(reversed, m);
        assert_eq!(fs::read_to_string(reversed.join("python/x.py"))?, "a");
        Ok(())
    }

    #[test]
    fn trees_built_from_a_removed_layer_are_forgotten() -> io::Result<()> {
        let t = tempfile::tempdir()?;
        let (a, b, c) = (t.path().join("a"), t.path().join("b"), t.path().join("c"));
        for d in [&a, &b, &c] {
            fs::create_dir_all(d)?;
            fs::write(d.join("f"), d.to_string_lossy().as_bytes())?;
        }
        let root = t.path().join("layers");
        let ab = merged(&root, &[a.clone(), b.clone()], 0)?;
        let bc = merged(&root, &[b.clone(), c.clone()], 0)?;
        forget_built_from(&root, std::slice::from_ref(&a))?;
        assert!(!ab.exists(), "built from the removed layer");
        assert!(bc.join("f").is_file(), "built from others only");
        forget_built_from(&root, &[c])?;
        assert_eq!(fs::read_dir(&root)?.count(), 0, "nothing left beside");
        Ok(())
    }
}
