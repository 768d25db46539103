//! Where the code of CreateFunction, UpdateFunctionCode and PublishLayerVersion comes from: the
//! request's `ZipFile`, an S3 object (`S3Bucket`/`S3Key`/`S3ObjectVersion`, fetched through
//! Flint's outbound S3 connection, an [`ObjectSource`] the server plugs in), or — LocalStack's
//! hot-reload convention — a directory on the Flint host (`S3Bucket` = the hot-reload bucket,
//! `S3Key` = its absolute path), mounted as it is.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use crate::code::{self, StoredCode, MAX_UNZIPPED_SIZE};
use crate::{ControlPlane, LambdaError, Scope};

/// LocalStack's default hot-reload bucket name (`BUCKET_MARKER_LOCAL`).
pub const DEFAULT_HOT_RELOAD_BUCKET: &str = "hot-reload";

/// Why an object could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectError {
    /// S3's own error code and message (`NoSuchBucket`, `NoSuchKey`, `NoSuchVersion`, ...).
    S3 { code: String, message: String },
    /// The object is larger than the limit asked for.
    TooLarge,
    /// S3 unreachable, a local write failed, ...
    Unavailable(String),
}

/// A boxed future of [`ObjectSource`] (no async trait in the language's stable dyn form yet).
pub type ObjectFuture<'a> = Pin<Box<dyn Future<Output = Result<u64, ObjectError>> + Send + 'a>>;

/// GetObject into a file: Flint's S3 connection (the connectors crate), plugged in by the server.
pub trait ObjectSource: Send + Sync {
    /// Downloads `bucket`/`key` (at `version`) into `dest`, reading at most `limit` bytes
    /// (more: [`ObjectError::TooLarge`]); returns the object's size. `region`: the caller's.
    fn get_object_to_file<'a>(
        &'a self,
        region: &'a str,
        bucket: &'a str,
        key: &'a str,
        version: Option<&'a str>,
        dest: &'a Path,
        limit: u64,
    ) -> ObjectFuture<'a>;
}

/// The code members of a request (`Code` of CreateFunction, UpdateFunctionCode's own,
/// `Content` of PublishLayerVersion).
#[derive(Debug, Default)]
pub struct CodeSource {
    pub zip_file: Option<String>,
    pub s3_bucket: Option<String>,
    pub s3_key: Option<String>,
    pub s3_object_version: Option<String>,
}

/// A package ready to store: a zip (from the request or S3) or a hot-reload directory.
pub enum Package {
    /// `ZipFile`: AWS's 50 MB direct-upload limit applies.
    Uploaded(Vec<u8>),
    /// An S3 object: only the unzipped limit applies.
    Fetched(Vec<u8>),
    HotReload(PathBuf),
}

impl Package {
    /// Stores the package in `store` (blocking for zips: call it off the async workers).
    /// The pin keeps the stored code from the garbage collector until the caller has recorded
    /// it.
    pub fn store(self, store: &code::CodeStore) -> Result<code::Ingested, LambdaError> {
        match self {
            Package::Uploaded(zip) => store.ingest(&zip),
            Package::Fetched(zip) => store.ingest_fetched(&zip),
            Package::HotReload(dir) => Ok(code::Ingested {
                code: StoredCode::hot_reload(dir),
                pin: None,
            }),
        }
    }
}

/// Lambda's message for an S3 error while fetching code.
pub fn get_object_error(code: &str, message: &str) -> LambdaError {
    LambdaError::invalid(format!(
        "Error occurred while GetObject. S3 Error Code: {code}. S3 Error Message: {message}"
    ))
}

/// `S3Key` of the hot-reload bucket: an absolute path to an existing directory, not inside
/// Flint's own data dir.
pub fn hot_reload_dir(key: &str, data_dir: &Path) -> Result<PathBuf, LambdaError> {
    let path = Path::new(key);
    if !path.is_absolute() {
        // LocalStack's message for the same mistake.
        return Err(LambdaError::invalid(format!(
            "When using hot reloading, the archive key has to be an absolute path! Your archive \
             key: {key}"
        )));
    }
    let real = path
        .canonicalize()
        .ok()
        .filter(|p| p.is_dir())
        .ok_or_else(|| {
            LambdaError::invalid(format!(
                "When using hot reloading, the archive key has to be a directory on the Flint \
                 host! Your archive key: {key}"
            ))
        })?;
    let data_dir = data_dir.canonicalize().unwrap_or_else(|_| data_dir.into());
    if real.starts_with(&data_dir) || data_dir.starts_with(&real) {
        return Err(LambdaError::invalid(format!(
            "When using hot reloading, the archive key cannot be (inside) Flint's data \
             directory. Your archive key: {key}"
        )));
    }
    Ok(path.to_path_buf())
}

impl ControlPlane {
    /// Plugs in Flint's S3 connection (without one, every S3 location is a missing bucket).
    pub fn set_object_source(&self, source: std::sync::Arc<dyn ObjectSource>) {
        *self.objects.write() = Some(source);
    }

    /// Reads the package a request names, downloading an S3 object to `dest` (removed after).
    /// `missing` is the error for a request with no source.
    pub(crate) async fn fetch_package(
        &self,
        scope: &Scope,
        src: CodeSource,
        dest: PathBuf,
        missing: fn() -> LambdaError,
    ) -> Result<Package, LambdaError> {
        if let Some(b64) = src.zip_file {
            let zip = tokio::task::spawn_blocking(move || code::decode_zip_file(&b64))
                .await
                .map_err(|e| LambdaError::service(format!("decoding the zip failed: {e}")))??;
            return Ok(Package::Uploaded(zip));
        }
        let Some(bucket) = src.s3_bucket else {
            return Err(missing());
        };
        let key = src.s3_key.unwrap_or_default();
        let hot_bucket = self.options.read().hot_reload_bucket.clone();
        if hot_bucket.as_deref() == Some(bucket.as_str()) {
            let dir = hot_reload_dir(&key, &self.data_dir)?;
            // Never silent: which account had which host directory mounted.
            tracing::info!(
                account = %scope.account,
                region = %scope.region,
                "hot reload: mounting host directory {} as code",
                dir.display()
            );
            return Ok(Package::HotReload(dir));
        }
        let Some(objects) = self.objects.read().clone() else {
            return Err(LambdaError::s3_no_such_bucket());
        };
        if key.is_empty() {
            return Err(get_object_error(
                "NoSuchKey",
                "The specified key does not exist.",
            ));
        }
        let fetched = objects
            .get_object_to_file(
                &scope.region,
                &bucket,
                &key,
                src.s3_object_version.as_deref(),
                &dest,
                MAX_UNZIPPED_SIZE,
            )
            .await;
        let read = match fetched {
            Ok(_) => {
                let path = dest.clone();
                tokio::task::spawn_blocking(move || std::fs::read(path))
                    .await
                    .map_err(|e| LambdaError::service(format!("reading the download: {e}")))
                    .and_then(|r| {
                        r.map_err(|e| LambdaError::service(format!("reading the download: {e}")))
                    })
            }
            Err(ObjectError::S3 { code, message }) => Err(get_object_error(&code, &message)),
            Err(ObjectError::TooLarge) => Err(code::too_big_unzipped()),
            Err(ObjectError::Unavailable(why)) => Err(LambdaError::service(format!(
                "Error occurred while GetObject: {why}"
            ))),
        };
        let _ = tokio::fs::remove_file(&dest).await;
        Ok(Package::Fetched(read?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_reload_dirs_must_be_absolute_existing_and_outside_the_data_dir() {
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("data");
        let code = t.path().join("code");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&code).unwrap();
        let ok = hot_reload_dir(code.to_str().unwrap(), &data).unwrap();
        assert_eq!(ok, code);
        let e = hot_reload_dir("relative/dir", &data).unwrap_err();
        assert_eq!(
            e.message,
            "When using hot reloading, the archive key has to be an absolute path! Your archive \
             key: relative/dir"
        );
        let missing = t.path().join("missing");
        let e = hot_reload_dir(missing.to_str().unwrap(), &data).unwrap_err();
        assert!(e.message.contains("has to be a directory"), "{}", e.message);
        let file = t.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(hot_reload_dir(file.to_str().unwrap(), &data).is_err());
        let inside = data.join("code");
        std::fs::create_dir_all(&inside).unwrap();
        assert!(hot_reload_dir(inside.to_str().unwrap(), &data).is_err());
        // A parent of the data dir would show it too.
        assert!(hot_reload_dir(t.path().to_str().unwrap(), &data).is_err());
    }

    #[test]
    fn get_object_errors_quote_s3() {
        assert_eq!(
            get_object_error("NoSuchKey", "The specified key does not exist.").message,
            "Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: The \
             specified key does not exist."
        );
        assert_eq!(
            get_object_error("NoSuchBucket", "The specified bucket does not exist").message,
            LambdaError::s3_no_such_bucket().message
        );
    }
}
