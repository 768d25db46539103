//! Signed download URLs: GetFunction's `Code.Location` and GetLayerVersion's `Content.Location`
//! are capabilities, like S3's presigned URLs. Each is an HMAC-SHA256 over what it grants (which
//! kind of download, the zip's digest, the expiry), short-lived, and checked here before the api
//! serves a byte: no zip is served by its digest alone, and a function's code cannot be fetched
//! through a layer URL (the kind is part of what is signed).

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// What a download URL grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Download {
    /// A function's deployment package (`/_flint/code/<sha256>`).
    FunctionCode,
    /// A layer version's content (`/_flint/layers/<sha256>`).
    LayerContent,
}

impl Download {
    /// The path segment the api serves this kind under.
    pub fn path_segment(self) -> &'static str {
        match self {
            Self::FunctionCode => "code",
            Self::LayerContent => "layers",
        }
    }
}

/// Why a download URL is refused; the messages are S3's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DownloadError {
    /// The URL lacks its expiry or signature.
    #[error("Access Denied")]
    Unsigned,
    /// Signed, but its time is up.
    #[error("Request has expired")]
    Expired,
    /// The signature does not match what the URL names (tampered or forged).
    #[error("The request signature we calculated does not match the signature you provided.")]
    BadSignature,
    /// A valid URL whose zip is gone.
    #[error("The resource you requested does not exist.")]
    NotFound,
}

/// Signs and checks download URLs with a key drawn per process (the URLs live minutes anyway).
pub struct UrlSigner {
    /// One SHA-256 block: HMAC's natural key size.
    key: [u8; 64],
}

impl Default for UrlSigner {
    fn default() -> Self {
        Self::new()
    }
}

impl UrlSigner {
    pub fn new() -> Self {
        let mut key = [0u8; 64];
        rand::thread_rng().fill(&mut key[..]);
        Self { key }
    }

    /// `/_flint/<kind>/<sha256>?expires=<unix seconds>&signature=<hex>`.
    pub fn path_and_query(&self, download: Download, sha256_hex: &str, expires: u64) -> String {
        let signature = hex::encode(
            self.mac(download, sha256_hex, expires)
                .finalize()
                .into_bytes(),
        );
        format!(
            "/_flint/{}/{sha256_hex}?expires={expires}&signature={signature}",
            download.path_segment()
        )
    }

    /// Checks a URL's signature (in constant time), then its expiry against `now` (unix seconds).
    pub fn verify(
        &self,
        download: Download,
        sha256_hex: &str,
        expires: u64,
        signature: &str,
        now: u64,
    ) -> Result<(), DownloadError> {
        let given = hex::decode(signature).map_err(|_| DownloadError::BadSignature)?;
        let expected = self
            .mac(download, sha256_hex, expires)
            .finalize()
            .into_bytes();
        if !bool::from(expected.as_slice().ct_eq(&given)) {
            return Err(DownloadError::BadSignature);
        }
        if now > expires {
            return Err(DownloadError::Expired);
        }
        Ok(())
    }

    fn mac(&self, download: Download, sha256_hex: &str, expires: u64) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new(&self.key.into());
        mac.update(download.path_segment().as_bytes());
        mac.update(b"\n");
        mac.update(sha256_hex.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }
}

/// Now, in unix seconds.
pub fn now_unix() -> u64 {
    chrono::Utc::now().timestamp().max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (u64, String) {
        let (_, query) = url.split_once('?').unwrap();
        let (expires, signature) = query
            .strip_prefix("expires=")
            .unwrap()
            .split_once("&signature=")
            .unwrap();
        (expires.parse().unwrap(), signature.to_string())
    }

    const SHA: &str = "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12";

    #[test]
    fn a_signed_url_opens_its_zip_until_it_expires() {
        let s = UrlSigner::new();
        let url = s.path_and_query(Download::FunctionCode, SHA, 1_000);
        assert!(url.starts_with(&format!("/_flint/code/{SHA}?expires=1000&signature=")));
        let (expires, sig) = parts(&url);
        assert_eq!(
            s.verify(Download::FunctionCode, SHA, expires, &sig, 1_000),
            Ok(())
        );
        assert_eq!(
            s.verify(Download::FunctionCode, SHA, expires, &sig, 1_001),
            Err(DownloadError::Expired)
        );
    }

    #[test]
    fn tampered_urls_are_refused() {
        let s = UrlSigner::new();
        let (expires, sig) = parts(&s.path_and_query(Download::LayerContent, SHA, 1_000));
        let other = "cd".repeat(32);
        for (kind, sha, exp, sig) in [
            (Download::LayerContent, other.as_str(), expires, sig.clone()),
            (Download::LayerContent, SHA, expires + 600, sig.clone()),
            (Download::LayerContent, SHA, expires, "00".repeat(32)),
            (Download::LayerContent, SHA, expires, "not hex".into()),
            (Download::LayerContent, SHA, expires, String::new()),
            // A layer URL's signature does not open the function-code path.
            (Download::FunctionCode, SHA, expires, sig.clone()),
        ] {
            assert_eq!(
                s.verify(kind, sha, exp, &sig, 0),
                Err(DownloadError::BadSignature),
                "{kind:?} {sha} {exp} {sig}"
            );
        }
    }

    #[test]
    fn another_process_key_does_not_verify() {
        let (expires, sig) =
            parts(&UrlSigner::new().path_and_query(Download::FunctionCode, SHA, 9));
        assert_eq!(
            UrlSigner::new().verify(Download::FunctionCode, SHA, expires, &sig, 0),
            Err(DownloadError::BadSignature)
        );
    }
}
