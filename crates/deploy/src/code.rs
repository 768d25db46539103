//! Code packages: a directory zipped deterministically (sorted entries, fixed timestamps, the
//! executable bit kept), a `.zip` taken as it is, and CloudFormation's inline `ZipFile` source
//! zipped as `index.py` / `index.js`. The same input gives the same bytes, so a re-deploy sees
//! an unchanged `CodeSha256` and leaves the code alone.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use zip::write::SimpleFileOptions;

use crate::error::{DeployError, Result};

/// A zip and its digest as Lambda reports it (`CodeSha256`: base64 of the SHA-256).
#[derive(Debug, Clone)]
pub struct Package {
    pub zip: Vec<u8>,
    pub sha256: String,
}

impl Package {
    fn new(zip: Vec<u8>) -> Package {
        let sha256 = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&zip));
        Package { zip, sha256 }
    }

    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.zip)
    }
}

/// A local path: a directory (zipped) or a zip file (as it is).
pub fn package_path(path: &Path) -> Result<Package> {
    let meta = std::fs::metadata(path).map_err(|source| DeployError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_file() {
        let bytes = std::fs::read(path).map_err(|source| DeployError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if !bytes.starts_with(b"PK") {
            return Err(DeployError::Usage(format!(
                "{} is neither a directory nor a zip file",
                path.display()
            )));
        }
        return Ok(Package::new(bytes));
    }
    zip_dir(path)
}

fn options(mode: u32) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(mode)
}

fn zip_error(path: &Path, e: impl std::fmt::Display) -> DeployError {
    DeployError::Usage(format!("zipping {}: {e}", path.display()))
}

/// Every file under `dir` (symbolic links followed, as `sam build` does), in name order.
fn zip_dir(dir: &Path) -> Result<Package> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name();
    for entry in walker {
        let entry = entry.map_err(|e| zip_error(dir, e))?;
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(relative) = entry.path().strip_prefix(dir) else {
            continue;
        };
        let name = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let mode = entry_mode(&entry);
        let bytes = std::fs::read(entry.path()).map_err(|source| DeployError::Read {
            path: entry.path().to_path_buf(),
            source,
        })?;
        writer
            .start_file(name, options(mode))
            .map_err(|e| zip_error(dir, e))?;
        writer.write_all(&bytes).map_err(|e| zip_error(dir, e))?;
    }
    let cursor = writer.finish().map_err(|e| zip_error(dir, e))?;
    Ok(Package::new(cursor.into_inner()))
}

fn entry_mode(entry: &walkdir::DirEntry) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    let executable = entry
        .metadata()
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false);
    if executable {
        0o755
    } else {
        0o644
    }
}

/// CloudFormation's `Code.ZipFile`: the source text as the runtime's `index` file.
pub fn package_inline(source: &str, runtime: &str) -> Result<Package> {
    let name = if runtime.starts_with("nodejs") {
        "index.js"
    } else if runtime.starts_with("python") {
        "index.py"
    } else {
        return Err(DeployError::Usage(format!(
            "Code.ZipFile works only for python and nodejs runtimes (not {runtime:?})"
        )));
    };
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let here = Path::new(name);
    writer
        .start_file(name, options(0o644))
        .map_err(|e| zip_error(here, e))?;
    writer
        .write_all(source.as_bytes())
        .map_err(|e| zip_error(here, e))?;
    let cursor = writer.finish().map_err(|e| zip_error(here, e))?;
    Ok(Package::new(cursor.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_zips_to_the_same_bytes_every_time() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pkg")).unwrap();
        std::fs::write(dir.path().join("b.py"), "b").unwrap();
        std::fs::write(dir.path().join("pkg/a.py"), "a").unwrap();
        let one = package_path(dir.path()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(dir.path().join("b.py"), "b").unwrap();
        let two = package_path(dir.path()).unwrap();
        assert_eq!(one.sha256, two.sha256);
        let archive = zip::ZipArchive::new(std::io::Cursor::new(one.zip)).unwrap();
        let names: Vec<_> = archive.file_names().collect();
        assert_eq!(names, ["b.py", "pkg/a.py"]);
        std::fs::write(dir.path().join("b.py"), "changed").unwrap();
        assert_ne!(package_path(dir.path()).unwrap().sha256, one.sha256);
    }

    #[test]
    fn inline_code_becomes_the_runtimes_index_file() {
        let p = package_inline("exports.handler = async () => 1;", "nodejs20.x").unwrap();
        let archive = zip::ZipArchive::new(std::io::Cursor::new(p.zip)).unwrap();
        assert_eq!(archive.file_names().collect::<Vec<_>>(), ["index.js"]);
        assert!(package_inline("x", "provided.al2023").is_err());
    }
}
