//! GetObject for code named by S3 location (`Code.S3Bucket`/`S3Key`/`S3ObjectVersion` of
//! CreateFunction and UpdateFunctionCode, `Content.*` of PublishLayerVersion): the object is
//! streamed into a file, and the download stops as soon as it passes the caller's limit, so an
//! oversized object never fills the disk or the memory.

use aws_sdk_s3::error::ProvideErrorMetadata;
use tokio::io::AsyncWriteExt;

use crate::Connectors;

/// Why an object could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum GetObjectError {
    /// S3 answered with an error: its code (`NoSuchBucket`, `NoSuchKey`, `NoSuchVersion`,
    /// `AccessDenied`, ...) and message, as Lambda quotes them.
    #[error("S3 Error Code: {code}. S3 Error Message: {message}")]
    S3 { code: String, message: String },
    /// The object is larger than the limit (only the first `limit + 1` bytes were read).
    #[error("the object is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// S3 could not be reached, or writing the file failed.
    #[error("{0}")]
    Other(String),
}

impl Connectors {
    /// Downloads `bucket`/`key` (at `version` when given) into the file `dest` (created or
    /// truncated), reading at most `limit` bytes; returns the object's size. `region` is the
    /// bucket's region when known (a function's own region: AWS wants the bucket there).
    pub async fn s3_get_object_to_file(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        dest: &std::path::Path,
        limit: u64,
    ) -> Result<u64, GetObjectError> {
        let conf = aws_sdk_s3::config::Builder::from(&self.config)
            .region(self.region(region))
            .force_path_style(self.custom_endpoint)
            .build();
        let out = aws_sdk_s3::Client::from_conf(conf)
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version.map(str::to_string))
            .send()
            .await
            .map_err(|e| match (e.code(), e.message()) {
                (Some(code), message) => GetObjectError::S3 {
                    code: code.to_string(),
                    message: message.unwrap_or_default().to_string(),
                },
                (None, _) => GetObjectError::Other(
                    crate::call_error("S3", "GetObject", bucket, e).to_string(),
                ),
            })?;
        if out
            .content_length
            .is_some_and(|n| n > 0 && n as u64 > limit)
        {
            return Err(GetObjectError::TooLarge { limit });
        }
        let io_err =
            |e: std::io::Error| GetObjectError::Other(format!("writing {}: {e}", dest.display()));
        let mut file = tokio::fs::File::create(dest).await.map_err(io_err)?;
        let mut body = out.body;
        let mut total: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| GetObjectError::Other(format!("reading the object: {e}")))?;
            total += chunk.len() as u64;
            if total > limit {
                return Err(GetObjectError::TooLarge { limit });
            }
            file.write_all(&chunk).await.map_err(io_err)?;
        }
        file.flush().await.map_err(io_err)?;
        Ok(total)
    }
}
