//! Function code: a deployment package (zip) is checked against Lambda's size limits, stored once
//! by SHA-256 in the store's blobs, and unpacked once per digest into `data_dir/code/<sha256-hex>/`
//! (atomically, keeping exec bits, refusing paths and links that escape), which the engine mounts
//! read-only at /var/task.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};

use crate::error::ErrorCode;
use crate::LambdaError;

/// Lambda's quota on a zip uploaded directly (`Code.ZipFile`).
pub const MAX_ZIPPED_SIZE: u64 = 52_428_800;
/// Lambda's quota on the unpacked size of a function's code and layers.
pub const MAX_UNZIPPED_SIZE: u64 = 262_144_000;

/// A deployment package as the function configuration describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StoredCode {
    /// Hex SHA-256: the blob's name and the code directory's name.
    pub sha256_hex: String,
    /// Size of the zip in bytes (`CodeSize`).
    pub size: u64,
    /// Sum of the unpacked files' sizes.
    pub unzipped_size: u64,
    /// Hot reload (`S3Bucket` = the hot-reload bucket): the host directory mounted as it is
    /// instead of an unpacked zip. No digest, no blob; sizes are 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hot_reload_dir: Option<PathBuf>,
    /// `PackageType: Image`: the container image instead of a zip (`sha256_hex` is then the
    /// digest the URI resolved to, as AWS's `CodeSha256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<StoredImage>,
}

/// A function's container image as resolved and pulled.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StoredImage {
    /// As the caller gave it (`Code.ImageUri`).
    pub image_uri: String,
    /// `repository@sha256:…` (`Code.ResolvedImageUri`).
    pub resolved_image_uri: String,
    /// `sha256:…` of the manifest for the function's architecture: names the unpacked root.
    pub manifest_digest: String,
    /// The image's own configuration, known once pulled (None while `Pending`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ImageConfigStored>,
}

/// The image config's `Entrypoint`, `Cmd`, `WorkingDir` and `Env`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfigStored {
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub working_dir: String,
    #[serde(default)]
    pub env: Vec<String>,
}

impl From<flint_oci::ImageConfig> for ImageConfigStored {
    fn from(c: flint_oci::ImageConfig) -> Self {
        Self {
            entrypoint: c.entrypoint,
            cmd: c.cmd,
            working_dir: c.working_dir,
            env: c.env,
        }
    }
}

/// `CodeSha256` of hot-reloaded code: what LocalStack reports, so tools written for it agree.
pub const HOT_RELOAD_SHA256: &str = "hot-reloading-hash-not-available";

impl StoredCode {
    /// Code mounted from a host directory (hot reload).
    pub fn hot_reload(dir: PathBuf) -> Self {
        Self {
            sha256_hex: String::new(),
            size: 0,
            unzipped_size: 0,
            hot_reload_dir: Some(dir),
            image: None,
        }
    }

    /// A container image resolved to `digest` (`sha256:…`), not pulled yet.
    pub fn image(image_uri: &str, pulled: &flint_oci::ResolvedImage) -> Self {
        Self {
            sha256_hex: pulled
                .digest
                .strip_prefix("sha256:")
                .unwrap_or(&pulled.digest)
                .to_string(),
            size: 0,
            unzipped_size: 0,
            hot_reload_dir: None,
            image: Some(StoredImage {
                image_uri: image_uri.to_string(),
                resolved_image_uri: pulled.resolved_uri.clone(),
                manifest_digest: pulled.manifest_digest.clone(),
                config: None,
            }),
        }
    }

    /// `CodeSha256` as AWS reports it: base64 of the zip's SHA-256.
    pub fn sha256_base64(&self) -> String {
        if self.hot_reload_dir.is_some() {
            return HOT_RELOAD_SHA256.into();
        }
        if self.image.is_some() {
            // AWS shows an image's digest in hex (ResolvedImageUri's `@sha256:` part).
            return self.sha256_hex.clone();
        }
        let raw = hex::decode(&self.sha256_hex).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(raw)
    }
}

/// Registries reached over plain http besides loopback ones (`FLINT_INSECURE_REGISTRIES`,
/// comma-separated `host:port`, as Docker's `insecure-registries`).
fn insecure_registries() -> Vec<String> {
    std::env::var("FLINT_INSECURE_REGISTRIES")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Digests an operation in flight has stored but not yet recorded (CreateFunction between its
/// ingest and its commit): the garbage collector leaves them alone. Shared by the functions' and
/// the layers' stores, whose zips share the store's blobs.
#[derive(Default, Debug)]
pub struct Pins {
    counts: parking_lot::Mutex<std::collections::HashMap<String, usize>>,
}

impl Pins {
    /// Pins `sha256_hex` until the returned guard is dropped.
    pub fn pin(self: &Arc<Self>, sha256_hex: &str) -> CodePin {
        *self
            .counts
            .lock()
            .entry(sha256_hex.to_string())
            .or_default() += 1;
        CodePin {
            pins: self.clone(),
            sha256_hex: sha256_hex.to_string(),
        }
    }

    /// Runs `f` with the set of pinned digests, no pin taken or released meanwhile.
    pub fn while_held<R>(
        &self,
        f: impl FnOnce(&std::collections::HashMap<String, usize>) -> R,
    ) -> R {
        f(&self.counts.lock())
    }
}

/// Keeps a digest's code on disk while held (see [`Pins`]).
#[derive(Debug)]
pub struct CodePin {
    pins: Arc<Pins>,
    sha256_hex: String,
}

impl Drop for CodePin {
    fn drop(&mut self) {
        let mut counts = self.pins.counts.lock();
        if let Some(n) = counts.get_mut(&self.sha256_hex) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.sha256_hex);
            }
        }
    }
}

/// Stored code and the pin that keeps it on disk until the caller has recorded it.
#[derive(Debug)]
pub struct Ingested {
    pub code: StoredCode,
    pub pin: Option<CodePin>,
}

/// Zips by digest, on disk and unpacked.
pub struct CodeStore {
    store: Arc<flint_store::Store>,
    root: PathBuf,
    /// Where layers are unpacked ([`flint_store::Layout::layer_code`]).
    layer_root: PathBuf,
    /// Digests known to be unpacked, so that invokes need not look at the disk.
    unpacked: RwLock<HashSet<String>>,
    /// [`MAX_UNZIPPED_SIZE`], lowered by tests.
    max_unzipped: u64,
    /// Container images' cache (`PackageType: Image`).
    images: Arc<flint_oci::ImageStore>,
    /// Digests being stored and not yet recorded (shared with the other code store).
    pins: Arc<Pins>,
    /// Who owns unpacked code ([`ControlOptions::code_owner`](crate::ControlOptions)): the host
    /// ids that show as root inside the sandboxes, or None to leave Flint's own.
    owner: Option<(u32, u32)>,
}

impl CodeStore {
    /// The functions' code ([`flint_store::Layout::code`]).
    pub fn open(
        layout: &flint_store::Layout,
        store: Arc<flint_store::Store>,
        pins: Arc<Pins>,
        owner: Option<(u32, u32)>,
    ) -> io::Result<Self> {
        Self::open_at(layout.code(), layout, store, pins, owner)
    }

    /// The layers' contents ([`flint_store::Layout::layer_code`]).
    pub fn open_layers(
        layout: &flint_store::Layout,
        store: Arc<flint_store::Store>,
        pins: Arc<Pins>,
        owner: Option<(u32, u32)>,
    ) -> io::Result<Self> {
        Self::open_at(layout.layer_code(), layout, store, pins, owner)
    }

    /// Opens `root`, removing half-finished unpacks and noting the finished ones; with an
    /// `owner`, `root` is closed to everyone but Flint's user (the owner is the host's nobody,
    /// which no other host process may reach the code through) and code unpacked by an earlier
    /// Flint is given to the owner.
    fn open_at(
        root: PathBuf,
        layout: &flint_store::Layout,
        store: Arc<flint_store::Store>,
        pins: Arc<Pins>,
        owner: Option<(u32, u32)>,
    ) -> io::Result<Self> {
        fs::create_dir_all(&root)?;
        if owner.is_some() {
            fs::set_permissions(&root, fs::Permissions::from_mode(0o700))?;
        }
        let mut unpacked = HashSet::new();
        for entry in fs::read_dir(&root)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                // Half-finished unpacks (directories) and downloads (files).
                let _ = fs::remove_dir_all(entry.path());
                let _ = fs::remove_file(entry.path());
            } else if is_hex_digest(&name) {
                if let Some((uid, gid)) = owner {
                    if entry.metadata()?.uid() != uid {
                        chown_tree(&entry.path(), uid, gid)?;
                    }
                }
                unpacked.insert(name);
            }
        }
        Ok(Self {
            store,
            root,
            layer_root: layout.layer_code(),
            unpacked: RwLock::new(unpacked),
            max_unzipped: MAX_UNZIPPED_SIZE,
            images: Arc::new(flint_oci::ImageStore::new(
                layout.images(),
                insecure_registries(),
            )),
            pins,
            owner,
        })
    }

    /// Where the code of this digest is (or will be) unpacked.
    pub fn code_dir(&self, sha256_hex: &str) -> PathBuf {
        self.root.join(sha256_hex)
    }

    /// Where the layers' store ([`CodeStore::open_layers`]) unpacks a layer.
    pub fn layer_dir(&self, sha256_hex: &str) -> PathBuf {
        self.layer_root.join(sha256_hex)
    }

    /// The container images' cache.
    pub fn images(&self) -> &Arc<flint_oci::ImageStore> {
        &self.images
    }

    /// What the engine mounts for this code: the hot-reload directory, or the unpacked zip.
    pub fn dir_of(&self, code: &StoredCode) -> PathBuf {
        match &code.hot_reload_dir {
            Some(dir) => dir.clone(),
            None => self.code_dir(&code.sha256_hex),
        }
    }

    /// A fresh path for a download on its way in (removed at the next start if left behind).
    pub fn download_path(&self) -> PathBuf {
        self.root
            .join(format!(".tmp-download-{}", uuid::Uuid::new_v4()))
    }

    /// Checks, stores and unpacks a zip uploaded directly (`ZipFile`). Blocking (disk and CPU):
    /// run it off the async workers.
    /// The code stays pinned (safe from the garbage collector) while `pin` is held: keep it
    /// until the function or layer that uses the code is recorded.
    pub fn ingest(&self, zip: &[u8]) -> Result<Ingested, LambdaError> {
        if zip.len() as u64 > MAX_ZIPPED_SIZE {
            return Err(LambdaError::new(
                ErrorCode::RequestEntityTooLargeException,
                format!("Zipped size must be smaller than {MAX_ZIPPED_SIZE} bytes"),
            ));
        }
        self.ingest_unchecked_size(zip)
    }

    /// [`CodeStore::ingest`] for a zip fetched from S3: no 50 MB limit on the zip (AWS has none
    /// for S3 objects); the unzipped limit still applies.
    pub fn ingest_fetched(&self, zip: &[u8]) -> Result<Ingested, LambdaError> {
        self.ingest_unchecked_size(zip)
    }

    fn ingest_unchecked_size(&self, zip: &[u8]) -> Result<Ingested, LambdaError> {
        let sha256_hex = hex::encode(Sha256::digest(zip));
        // Before anything touches the disk: a collection running now must not remove what
        // this ingest finds already there.
        let pin = self.pins.pin(&sha256_hex);
        let unzipped_size = declared_unzipped_size(zip, self.max_unzipped)?;
        let dir = self.code_dir(&sha256_hex);
        if !self.is_unpacked(&sha256_hex) && !dir.is_dir() {
            let tmp = self.unpack_to_temp(zip)?;
            self.store
                .put_blob(zip)
                .map_err(|e| LambdaError::service(format!("store: {e}")))?;
            self.commit(tmp, &dir)?;
        } else {
            // Already unpacked, but the blob is what GetFunction serves: make sure it is there.
            self.store
                .put_blob(zip)
                .map_err(|e| LambdaError::service(format!("store: {e}")))?;
        }
        self.unpacked.write().insert(sha256_hex.clone());
        Ok(Ingested {
            code: StoredCode {
                sha256_hex,
                size: zip.len() as u64,
                unzipped_size,
                hot_reload_dir: None,
                image: None,
            },
            pin: Some(pin),
        })
    }

    pub fn is_unpacked(&self, sha256_hex: &str) -> bool {
        self.unpacked.read().contains(sha256_hex)
    }

    /// Makes sure the code directory exists, re-unpacking it from the stored blob if it was lost
    /// (e.g. a data dir restored without `code/`). Cheap when already known to be unpacked.
    pub fn ensure_unpacked(&self, sha256_hex: &str) -> Result<PathBuf, LambdaError> {
        let dir = self.code_dir(sha256_hex);
        if self.is_unpacked(sha256_hex) {
            return Ok(dir);
        }
        if !dir.is_dir() {
            let zip = self
                .store
                .get_blob(sha256_hex)
                .map_err(|e| LambdaError::service(format!("code {sha256_hex} is lost: {e}")))?;
            let tmp = self.unpack_to_temp(&zip)?;
            self.commit(tmp, &dir)?;
        }
        self.unpacked.write().insert(sha256_hex.to_string());
        Ok(dir)
    }

    /// The stored zip of a digest (what `Code.Location` serves).
    pub fn blob_path(&self, sha256_hex: &str) -> Option<PathBuf> {
        if !is_hex_digest(sha256_hex) {
            return None;
        }
        let path = self.store.blob_path(sha256_hex);
        path.is_file().then_some(path)
    }

    /// The digests unpacked under this store's root.
    pub(crate) fn unpacked_on_disk(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if is_hex_digest(&name) {
                out.push(name);
            }
        }
        Ok(out)
    }

    /// Takes a digest's unpacked tree out of use: renamed aside at once (a cold start from now
    /// on would unpack it again), for the caller to delete with [`remove_aside`]. None if it
    /// was not there.
    pub(crate) fn set_aside(&self, sha256_hex: &str) -> Option<PathBuf> {
        self.unpacked.write().remove(sha256_hex);
        let dir = self.code_dir(sha256_hex);
        let aside = self.root.join(format!(".tmp-gc-{}", uuid::Uuid::new_v4()));
        match fs::rename(&dir, &aside) {
            Ok(()) => Some(aside),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!("cannot remove {}: {e}", dir.display());
                None
            }
        }
    }

    /// The store holding the zips.
    pub(crate) fn store(&self) -> &Arc<flint_store::Store> {
        &self.store
    }

    /// The digests being stored and not yet recorded.
    pub(crate) fn pins(&self) -> &Arc<Pins> {
        &self.pins
    }

    fn unpack_to_temp(&self, zip: &[u8]) -> Result<PathBuf, LambdaError> {
        let tmp = self.root.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
        let unpacked = unpack(zip, &tmp, self.max_unzipped).and_then(|()| match self.owner {
            Some((uid, gid)) => chown_tree(&tmp, uid, gid)
                .map_err(|e| LambdaError::service(format!("unpacking code: {e}"))),
            None => Ok(()),
        });
        match unpacked {
            Ok(()) => Ok(tmp),
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(e)
            }
        }
    }

    fn commit(&self, tmp: PathBuf, dir: &Path) -> Result<(), LambdaError> {
        if let Err(e) = fs::rename(&tmp, dir) {
            let _ = fs::remove_dir_all(&tmp);
            // Someone unpacked the same digest meanwhile: theirs is as good as ours.
            if !dir.is_dir() {
                return Err(LambdaError::service(format!("unpacking code: {e}")));
            }
        }
        Ok(())
    }
}

/// Deletes a tree [`CodeStore::set_aside`] moved out of the way (what is left after a crash is
/// removed at the next start, as every `.tmp-` entry is).
pub(crate) fn remove_aside(dir: &Path) {
    if let Err(e) = fs::remove_dir_all(dir) {
        tracing::warn!("cannot remove {}: {e}", dir.display());
    }
}

/// Decodes `Code.ZipFile` / `ZipFile` (base64 in the JSON input).
pub fn decode_zip_file(b64: &str) -> Result<Vec<u8>, LambdaError> {
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| unzip_failed())
}

fn unzip_failed() -> LambdaError {
    LambdaError::unzip_failed()
}

pub(crate) fn too_big_unzipped() -> LambdaError {
    LambdaError::invalid(format!(
        "Unzipped size must be smaller than {MAX_UNZIPPED_SIZE} bytes"
    ))
}

fn is_hex_digest(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Sum of the sizes the zip's entries claim (checked again while unpacking, since a zip can lie).
fn declared_unzipped_size(zip: &[u8], limit: u64) -> Result<u64, LambdaError> {
    let mut archive = zip::ZipArchive::new(io::Cursor::new(zip)).map_err(|_| unzip_failed())?;
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(|_| unzip_failed())?;
        total = total.saturating_add(entry.size());
    }
    if total > limit {
        return Err(too_big_unzipped());
    }
    Ok(total)
}

/// Gives `dir` and everything under it to `uid`/`gid` (symbolic links themselves, never what
/// they point at).
fn chown_tree(dir: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))?;
    if !fs::symlink_metadata(dir)?.is_dir() {
        return Ok(());
    }
    for entry in fs::read_dir(dir)? {
        chown_tree(&entry?.path(), uid, gid)?;
    }
    Ok(())
}

/// Unpacks `zip` into the new directory `dest`. Symlinks are created last so that no file is ever
/// written through one, and only if they stay inside `dest`.
fn unpack(zip: &[u8], dest: &Path, limit: u64) -> Result<(), LambdaError> {
    let io_err = |e: io::Error| LambdaError::service(format!("unpacking code: {e}"));
    fs::create_dir_all(dest).map_err(io_err)?;
    fs::set_permissions(dest, fs::Permissions::from_mode(0o755)).map_err(io_err)?;
    let mut archive = zip::ZipArchive::new(io::Cursor::new(zip)).map_err(|_| unzip_failed())?;
    let mut budget = limit;
    let mut links: Vec<(PathBuf, String)> = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|_| unzip_failed())?;
        let rel = entry.enclosed_name().ok_or_else(unzip_failed)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = dest.join(&rel);
        let mode = entry.unix_mode().map(|m| m & 0o777);
        if entry.is_dir() {
            fs::create_dir_all(&target).map_err(|_| unzip_failed())?;
            // Directories must stay traversable for the function's user.
            let m = mode.unwrap_or(0o755) | 0o555;
            fs::set_permissions(&target, fs::Permissions::from_mode(m)).map_err(io_err)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|_| unzip_failed())?;
        }
        if entry.is_symlink() {
            let mut link = String::new();
            (&mut entry)
                .take(4096)
                .read_to_string(&mut link)
                .map_err(|_| unzip_failed())?;
            links.push((rel, link));
            continue;
        }
        let mut file = fs::File::create(&target).map_err(|_| unzip_failed())?;
        let written =
            io::copy(&mut (&mut entry).take(budget + 1), &mut file).map_err(|_| unzip_failed())?;
        if written > budget {
            return Err(too_big_unzipped());
        }
        budget -= written;
        // Keep the zip's exec bits; everything must at least be readable by the function.
        let m = mode.unwrap_or(0o644) | 0o444;
        fs::set_permissions(&target, fs::Permissions::from_mode(m)).map_err(io_err)?;
    }
    for (rel, link) in links {
        create_contained_symlink(dest, &rel, &link)?;
    }
    Ok(())
}

/// Creates `dest/rel -> link` if the link, resolved lexically from its own directory, stays
/// inside `dest` and no directory on the way to it is itself a link.
fn create_contained_symlink(dest: &Path, rel: &Path, link: &str) -> Result<(), LambdaError> {
    let link_path = Path::new(link);
    if link.is_empty() || link_path.is_absolute() {
        return Err(unzip_failed());
    }
    let mut depth: i64 = rel.components().count() as i64 - 1;
    for c in link_path.components() {
        match c {
            std::path::Component::ParentDir => depth -= 1,
            std::path::Component::Normal(_) => depth += 1,
            std::path::Component::CurDir => {}
            _ => return Err(unzip_failed()),
        }
        if depth < 0 {
            return Err(unzip_failed());
        }
    }
    let mut dir = dest.to_path_buf();
    if let Some(parent) = rel.parent() {
        for c in parent.components() {
            dir.push(c);
            let meta = fs::symlink_metadata(&dir).map_err(|_| unzip_failed())?;
            if meta.file_type().is_symlink() {
                return Err(unzip_failed());
            }
        }
    }
    std::os::unix::fs::symlink(link_path, dest.join(rel)).map_err(|_| unzip_failed())
}

/// Builds zips for tests: `(path, contents, unix mode)`; a mode with `0o120000` makes a symlink
/// whose target is `contents`, a path ending in `/` a directory.
#[cfg(test)]
pub(crate) fn test_zip(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
    for (path, contents, mode) in entries {
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
        if path.ends_with('/') {
            w.add_directory(*path, opts).unwrap();
        } else if mode & 0o170000 == 0o120000 {
            w.add_symlink(*path, std::str::from_utf8(contents).unwrap(), opts)
                .unwrap();
        } else {
            w.start_file(*path, opts).unwrap();
            w.write_all(contents).unwrap();
        }
    }
    w.finish().unwrap().into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, CodeStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(flint_store::Store::open(dir.path()).unwrap());
        let code = CodeStore::open(
            &flint_store::Layout::new(dir.path()),
            store,
            Default::default(),
            None,
        )
        .unwrap();
        (dir, code)
    }

    #[test]
    fn code_is_given_to_the_owner_under_a_root_only_flint_may_enter() {
        let dir = tempfile::tempdir().unwrap();
        // Giving files away takes root (CI runs as root; elsewhere there is nothing to check).
        if fs::metadata(dir.path()).unwrap().uid() != 0 {
            return;
        }
        let layout = flint_store::Layout::new(dir.path());
        let store = Arc::new(flint_store::Store::open(dir.path()).unwrap());
        let zip = test_zip(&[
            ("index.py", b"def handler(e, c): return e", 0o644),
            ("lib/", b"", 0o755),
            ("lib/x.py", b"", 0o644),
            ("link", b"index.py", 0o120777),
        ]);
        // An earlier Flint unpacked one as its own.
        let old = CodeStore::open(&layout, store.clone(), Default::default(), None).unwrap();
        let before = old.ingest(&zip).unwrap().code;
        let owner = Some((65534, 65534));
        let code = CodeStore::open(&layout, store, Default::default(), owner).unwrap();
        let fresh = code
            .ingest(&test_zip(&[("main.js", b"exports.handler = 1", 0o644)]))
            .unwrap()
            .code;
        let owned = |p: &Path| {
            let m = fs::symlink_metadata(p).unwrap();
            (m.uid(), m.gid())
        };
        for sha in [&before.sha256_hex, &fresh.sha256_hex] {
            let tree = code.code_dir(sha);
            assert_eq!(owned(&tree), (65534, 65534), "{}", tree.display());
            for entry in fs::read_dir(&tree).unwrap() {
                assert_eq!(owned(&entry.unwrap().path()), (65534, 65534));
            }
        }
        assert_eq!(
            owned(&code.code_dir(&before.sha256_hex).join("lib/x.py")),
            (65534, 65534)
        );
        let root_mode = fs::metadata(layout.code()).unwrap().permissions().mode() & 0o777;
        assert_eq!(root_mode, 0o700);
    }

    #[test]
    fn ingest_stores_blob_and_unpacks_with_exec_bits() {
        let (_d, code) = setup();
        let zip = test_zip(&[
            ("handler.py", b"def handler(e, c): return e", 0o644),
            ("bin/", b"", 0o755),
            ("bin/tool", b"#!/bin/sh\necho hi", 0o755),
        ]);
        let stored = code.ingest(&zip).unwrap().code;
        assert_eq!(stored.size, zip.len() as u64);
        assert_eq!(stored.sha256_hex, hex::encode(Sha256::digest(&zip)));
        assert_eq!(
            stored.sha256_base64(),
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&zip))
        );
        let dir = code.code_dir(&stored.sha256_hex);
        assert_eq!(
            fs::read(dir.join("handler.py")).unwrap(),
            b"def handler(e, c): return e"
        );
        let mode = fs::metadata(dir.join("bin/tool"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        let mode = fs::metadata(dir.join("handler.py"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0);
        assert!(code.blob_path(&stored.sha256_hex).is_some());
        // Same zip again: same digest, no error.
        assert_eq!(code.ingest(&zip).unwrap().code, stored);
    }

    #[test]
    fn not_a_zip_is_rejected_with_aws_message() {
        let (_d, code) = setup();
        let e = code
            .ingest(b"this is not a zipfile, just a random string")
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterValueException);
        assert_eq!(e.message, LambdaError::unzip_failed().message);
    }

    #[test]
    fn oversized_zip_is_too_large() {
        let (_d, code) = setup();
        let big = vec![0u8; MAX_ZIPPED_SIZE as usize + 1];
        let e = code.ingest(&big).unwrap_err();
        assert_eq!(e.code, ErrorCode::RequestEntityTooLargeException);
        assert_eq!(e.message, "Zipped size must be smaller than 52428800 bytes");
    }

    #[test]
    fn oversized_unzipped_content_is_rejected() {
        let (_d, mut code) = setup();
        code.max_unzipped = 1000;
        let zip = test_zip(&[("a", &[0u8; 600], 0o644), ("b", &[0u8; 600], 0o644)]);
        let e = code.ingest(&zip).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterValueException);
        assert_eq!(
            e.message,
            "Unzipped size must be smaller than 262144000 bytes"
        );
        // Entries that understate their size are caught while unpacking.
        let dest = code.root.join("x");
        let zip = test_zip(&[("a", &[0u8; 600], 0o644)]);
        assert!(unpack(&zip, &dest, 599).is_err());
        assert!(unpack(&zip, &code.root.join("y"), 600).is_ok());
    }

    #[test]
    fn escaping_paths_and_links_are_refused() {
        let (_d, code) = setup();
        let zip = test_zip(&[("../evil", b"x", 0o644)]);
        assert_eq!(
            code.ingest(&zip).unwrap_err().message,
            LambdaError::unzip_failed().message
        );
        let zip = test_zip(&[("link", b"/etc", 0o120777)]);
        assert_eq!(
            code.ingest(&zip).unwrap_err().message,
            LambdaError::unzip_failed().message
        );
        let zip = test_zip(&[("d/link", b"../../etc", 0o120777)]);
        assert_eq!(
            code.ingest(&zip).unwrap_err().message,
            LambdaError::unzip_failed().message
        );
        // Nothing half-unpacked is left behind.
        let leftovers: Vec<_> = fs::read_dir(&code.root).unwrap().collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn links_inside_the_package_are_kept() {
        let (_d, code) = setup();
        let zip = test_zip(&[
            ("lib/real.py", b"x = 1", 0o644),
            ("alias.py", b"lib/real.py", 0o120777),
        ]);
        let stored = code.ingest(&zip).unwrap().code;
        let dir = code.code_dir(&stored.sha256_hex);
        assert_eq!(fs::read(dir.join("alias.py")).unwrap(), b"x = 1");
    }

    #[test]
    fn lost_code_dir_is_unpacked_again_from_the_blob() {
        let (d, code) = setup();
        let zip = test_zip(&[("index.js", b"exports.handler = async () => 1", 0o644)]);
        let stored = code.ingest(&zip).unwrap().code;
        fs::remove_dir_all(code.code_dir(&stored.sha256_hex)).unwrap();
        // A fresh open (as after a restart) no longer knows it as unpacked.
        let store = Arc::new(flint_store::Store::open(d.path()).unwrap());
        let code = CodeStore::open(
            &flint_store::Layout::new(d.path()),
            store,
            Default::default(),
            None,
        )
        .unwrap();
        assert!(!code.is_unpacked(&stored.sha256_hex));
        let dir = code.ensure_unpacked(&stored.sha256_hex).unwrap();
        assert!(dir.join("index.js").is_file());
        assert!(code.is_unpacked(&stored.sha256_hex));
    }

    #[test]
    fn hot_reload_code_is_stored_as_its_directory_and_old_records_still_read() {
        let hot = StoredCode::hot_reload(PathBuf::from("/src/fn"));
        assert_eq!(hot.sha256_base64(), HOT_RELOAD_SHA256);
        assert_eq!((hot.size, hot.unzipped_size), (0, 0));
        let json = serde_json::to_value(&hot).unwrap();
        assert_eq!(json["HotReloadDir"], "/src/fn");
        assert_eq!(serde_json::from_value::<StoredCode>(json).unwrap(), hot);
        // Records written before hot reload existed have no such member.
        let old: StoredCode = serde_json::from_value(serde_json::json!({
            "Sha256Hex": "00".repeat(32), "Size": 1, "UnzippedSize": 2
        }))
        .unwrap();
        assert_eq!(old.hot_reload_dir, None);
        let zipped = serde_json::to_value(&old).unwrap();
        assert!(zipped.get("HotReloadDir").is_none());
        let (_d, code) = setup();
        assert_eq!(code.dir_of(&hot), PathBuf::from("/src/fn"));
        assert_eq!(code.dir_of(&old), code.code_dir(&old.sha256_hex));
    }

    #[test]
    fn bad_base64_is_an_unzip_error() {
        assert_eq!(
            decode_zip_file("%%%").unwrap_err().message,
            LambdaError::unzip_failed().message
        );
        assert_eq!(decode_zip_file("aGk=").unwrap(), b"hi");
    }
}
