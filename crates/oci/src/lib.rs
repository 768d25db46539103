//! Container images for `PackageType: Image` functions, pulled without Docker: a tag or digest
//! resolved against any OCI registry (`oci-client`: Docker Hub, ECR, private registries with
//! basic or bearer-token auth, plain-http local registries), the function's architecture chosen
//! from an image index, layers unpacked safely (`unpack.rs`) into one read-only root filesystem
//! per image manifest under `DATA/images/`, shared by every function that runs it and removed by
//! `ImageStore::collect_garbage` once none does.

mod unpack;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};

pub use unpack::{add_mount_points, apply_layer, UnpackError};

const MANIFEST_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
const GZIP_LAYERS: [&str; 2] = [
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
];
const TAR_LAYERS: [&str; 2] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.docker.image.rootfs.diff.tar",
];

/// Why an image could not be used; `control` maps each to AWS's error or `StateReasonCode`.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No such repository, tag or digest.
    #[error("Source image {0} does not exist. Provide a valid source image.")]
    NotFound(String),
    /// The registry refused our credentials (or asked for some and we had none).
    #[error("Lambda does not have permission to access the image {uri}: {reason}")]
    AccessDenied { uri: String, reason: String },
    /// An image index without the function's architecture, or an image built for another one.
    #[error("The image manifest, config or layer media type for the source image {uri} is not supported: no {architecture} image.")]
    WrongArchitecture { uri: String, architecture: String },
    /// Not an image Lambda can run: unknown media types, a refused layer, a broken config.
    #[error("The image manifest, config or layer media type for the source image {uri} is not supported: {reason}")]
    Invalid { uri: String, reason: String },
    /// The registry could not be reached or failed.
    #[error("Lambda was unable to pull the image {uri}: {reason}")]
    Registry { uri: String, reason: String },
}

/// The parts of the image config (`config` of the OCI image configuration) Lambda uses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub working_dir: String,
    /// `KEY=value` strings, as in the image.
    #[serde(default)]
    pub env: Vec<String>,
}

/// What an image URI names, for the function's architecture.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedImage {
    /// `repository@sha256:…` of what the URI named (the index when it names one).
    pub resolved_uri: String,
    /// `sha256:…` that the URI resolved to.
    pub digest: String,
    /// `sha256:…` of the manifest for the function's architecture: the cache key.
    pub manifest_digest: String,
}

/// A pulled image, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct PulledImage {
    /// `repository@sha256:…` of what the URI named (the index when it names one).
    pub resolved_uri: String,
    /// `sha256:…` that the URI resolved to (AWS's `CodeSha256` is its hex part).
    pub digest: String,
    /// `sha256:…` of the manifest for the function's architecture: the cache key.
    pub manifest_digest: String,
    pub config: ImageConfig,
    /// The unpacked root filesystem (read-only in the sandbox).
    pub rootfs: PathBuf,
}

/// The image cache under the data dir and the registries' client.
pub struct ImageStore {
    dir: PathBuf,
    /// Registries reached over plain http besides loopback ones (`host:port`).
    insecure: Vec<String>,
    /// One pull per manifest at a time; others wait and then find it unpacked.
    pulling: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: Option<String>,
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct ConfigFile {
    architecture: Option<String>,
    #[serde(default)]
    config: Option<ConfigSection>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigSection {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    working_dir: Option<String>,
    env: Option<Vec<String>>,
}

/// Lambda's architecture names → the OCI platform's.
pub fn oci_architecture(lambda_architecture: &str) -> &'static str {
    match lambda_architecture {
        "arm64" => "arm64",
        _ => "amd64",
    }
}

/// Docker's rule: registries on loopback are reached over plain http.
fn is_loopback(registry: &str) -> bool {
    let host = registry
        .rsplit_once(':')
        .map_or(registry, |(h, _)| h)
        .trim_matches(['[', ']']);
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

/// Credentials for `registry` from Docker's config (`$DOCKER_CONFIG/config.json` or
/// `~/.docker/config.json`): its credential helper (`credHelpers.REGISTRY`, else `credsStore`:
/// `docker-credential-NAME get`, e.g. amazon-ecr-credential-helper's `ecr-login`, which signs
/// ECR's GetAuthorizationToken with the standard AWS credential chain), else
/// `auths.REGISTRY.auth` (base64 `user:password`) as `docker login` leaves it.
fn docker_config_auth(registry: &str) -> RegistryAuth {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")));
    let Some(text) = dir.and_then(|d| std::fs::read_to_string(d.join("config.json")).ok()) else {
        return RegistryAuth::Anonymous;
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
        return RegistryAuth::Anonymous;
    };
    let helper = json["credHelpers"][registry]
        .as_str()
        .or_else(|| json["credsStore"].as_str());
    if let Some(auth) = helper.and_then(|h| credential_helper(h, registry)) {
        return auth;
    }
    let auths = &json["auths"];
    let entry = [
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ]
    .iter()
    .find_map(|k| auths.get(k).cloned());
    let Some(entry) = entry else {
        return RegistryAuth::Anonymous;
    };
    if let (Some(u), Some(p)) = (entry["username"].as_str(), entry["password"].as_str()) {
        return RegistryAuth::Basic(u.into(), p.into());
    }
    use base64::Engine;
    entry["auth"]
        .as_str()
        .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(u, p)| RegistryAuth::Basic(u.into(), p.into()))
        })
        .unwrap_or(RegistryAuth::Anonymous)
}

/// Docker's credential helper protocol: `docker-credential-NAME get`, the registry on stdin,
/// `{"Username": …, "Secret": …}` on stdout. None when it fails or knows no credentials.
fn credential_helper(name: &str, registry: &str) -> Option<RegistryAuth> {
    use std::io::Write;
    if name.is_empty() || name.contains('/') {
        return None;
    }
    let mut child = std::process::Command::new(format!("docker-credential-{name}"))
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| tracing::warn!("credential helper docker-credential-{name}: {e}"))
        .ok()?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(registry.as_bytes());
    }
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let user = v["Username"].as_str()?;
    let secret = v["Secret"].as_str()?;
    Some(if user == "<token>" {
        // An identity token (Docker's convention) is presented as a bearer token.
        RegistryAuth::Bearer(secret.to_string())
    } else {
        RegistryAuth::Basic(user.to_string(), secret.to_string())
    })
}

impl ImageStore {
    pub fn new(dir: impl Into<PathBuf>, insecure: Vec<String>) -> ImageStore {
        ImageStore {
            dir: dir.into(),
            insecure,
            pulling: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, registry: &str) -> Client {
        let protocol = if is_loopback(registry) || self.insecure.iter().any(|r| r == registry) {
            ClientProtocol::HttpsExcept(vec![registry.to_string()])
        } else {
            ClientProtocol::Https
        };
        Client::new(ClientConfig {
            protocol,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            ..Default::default()
        })
    }

    /// The root filesystem of the image of `manifest_digest` (once pulled).
    pub fn rootfs(&self, manifest_digest: &str) -> PathBuf {
        self.image_dir(manifest_digest).join("rootfs")
    }

    /// Where the image of `manifest_digest` (`sha256:…`) is unpacked.
    fn image_dir(&self, manifest_digest: &str) -> PathBuf {
        self.dir
            .join(manifest_digest.replace(':', "-").replace(['/', '.'], "_"))
    }

    /// The root filesystem of an image pulled earlier, if it is still here.
    pub fn cached(&self, manifest_digest: &str) -> Option<(PathBuf, ImageConfig)> {
        let dir = self.image_dir(manifest_digest);
        let config = std::fs::read(dir.join("config.json")).ok()?;
        let config = serde_json::from_slice(&config).ok()?;
        Some((dir.join("rootfs"), config))
    }

    /// Resolves `uri` for `architecture` (Lambda's: `x86_64`, `arm64`): the digests only (one
    /// or two manifest requests), so that a missing image is refused at once.
    pub async fn resolve(
        &self,
        uri: &str,
        architecture: &str,
    ) -> Result<ResolvedImage, ImageError> {
        let (resolved, _, _, _) = self.resolve_manifest(uri, architecture).await?;
        Ok(resolved)
    }

    async fn resolve_manifest(
        &self,
        uri: &str,
        architecture: &str,
    ) -> Result<(ResolvedImage, Manifest, bool, (Client, Reference)), ImageError> {
        let invalid = |reason: String| ImageError::Invalid {
            uri: uri.to_string(),
            reason,
        };
        let reference: Reference = uri
            .parse()
            .map_err(|e| invalid(format!("invalid image reference: {e}")))?;
        let registry = reference.resolve_registry().to_string();
        let client = self.client(&registry);
        let for_registry = registry.clone();
        // A credential helper is a process: off the async workers.
        let auth = tokio::task::spawn_blocking(move || docker_config_auth(&for_registry))
            .await
            .unwrap_or(RegistryAuth::Anonymous);
        let (raw, digest) = client
            .pull_manifest_raw(&reference, &auth, &MANIFEST_TYPES)
            .await
            .map_err(|e| registry_error(uri, e))?;
        let resolved_uri = format!(
            "{}/{}@{digest}",
            reference.registry(),
            reference.repository()
        );
        let manifest: Manifest = serde_json::from_slice(&raw)
            .map_err(|e| invalid(format!("unreadable manifest: {e}")))?;
        let want = oci_architecture(architecture);
        let is_index = manifest.manifests.is_some()
            || manifest
                .media_type
                .as_deref()
                .is_some_and(|t| t.contains("index") || t.contains("list"));
        let (manifest, manifest_digest) = if is_index {
            let entry = manifest
                .manifests
                .unwrap_or_default()
                .into_iter()
                .find(|m| {
                    m.platform
                        .as_ref()
                        .is_some_and(|p| p.os == "linux" && p.architecture == want)
                })
                .ok_or_else(|| ImageError::WrongArchitecture {
                    uri: uri.to_string(),
                    architecture: architecture.to_string(),
                })?;
            let by_digest = Reference::with_digest(
                reference.registry().to_string(),
                reference.repository().to_string(),
                entry.digest.clone(),
            );
            let (raw, d) = client
                .pull_manifest_raw(&by_digest, &auth, &MANIFEST_TYPES[2..])
                .await
                .map_err(|e| registry_error(uri, e))?;
            let m: Manifest = serde_json::from_slice(&raw)
                .map_err(|e| invalid(format!("unreadable manifest: {e}")))?;
            (m, d)
        } else {
            (manifest, digest.clone())
        };
        let resolved = ResolvedImage {
            resolved_uri,
            digest,
            manifest_digest,
        };
        Ok((resolved, manifest, is_index, (client, reference)))
    }

    /// Resolves `uri` for `architecture` and makes sure its root filesystem is unpacked here.
    pub async fn pull(&self, uri: &str, architecture: &str) -> Result<PulledImage, ImageError> {
        let invalid = |reason: String| ImageError::Invalid {
            uri: uri.to_string(),
            reason,
        };
        let (resolved, manifest, from_index, (client, reference)) =
            self.resolve_manifest(uri, architecture).await?;
        let want = oci_architecture(architecture);
        let ResolvedImage {
            resolved_uri,
            digest,
            manifest_digest,
        } = resolved;

        let lock = self
            .pulling
            .lock()
            .entry(manifest_digest.clone())
            .or_default()
            .clone();
        let _one_pull = lock.lock().await;
        if let Some((rootfs, config)) = self.cached(&manifest_digest) {
            return Ok(PulledImage {
                resolved_uri,
                digest,
                manifest_digest,
                config,
                rootfs,
            });
        }

        let config_desc = manifest
            .config
            .as_ref()
            .ok_or_else(|| invalid("manifest without a config".into()))?;
        let mut config_bytes = Vec::new();
        client
            .pull_blob(&reference, config_desc.digest.as_str(), &mut config_bytes)
            .await
            .map_err(|e| registry_error(uri, e))?;
        let config_file: ConfigFile = serde_json::from_slice(&config_bytes)
            .map_err(|e| invalid(format!("unreadable image config: {e}")))?;
        if !from_index
            && config_file
                .architecture
                .as_deref()
                .is_some_and(|a| a != want)
        {
            return Err(ImageError::WrongArchitecture {
                uri: uri.to_string(),
                architecture: architecture.to_string(),
            });
        }
        let section = config_file.config.unwrap_or(ConfigSection {
            entrypoint: None,
            cmd: None,
            working_dir: None,
            env: None,
        });
        let config = ImageConfig {
            entrypoint: section.entrypoint.unwrap_or_default(),
            cmd: section.cmd.unwrap_or_default(),
            working_dir: section.working_dir.unwrap_or_default(),
            env: section.env.unwrap_or_default(),
        };

        let final_dir = self.image_dir(&manifest_digest);
        let partial = self.dir.join(format!(
            ".partial-{}",
            final_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let io_error = |e: std::io::Error| ImageError::Registry {
            uri: uri.to_string(),
            reason: format!("image cache: {e}"),
        };
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(io_error)?;
        }
        let rootfs = partial.join("rootfs");
        std::fs::create_dir_all(&rootfs).map_err(io_error)?;
        let total = manifest.layers.len();
        for (i, layer) in manifest.layers.iter().enumerate() {
            let media_type = layer.media_type.clone().unwrap_or_default();
            let gzip = GZIP_LAYERS.contains(&media_type.as_str());
            if !gzip && !TAR_LAYERS.contains(&media_type.as_str()) {
                let _ = std::fs::remove_dir_all(&partial);
                return Err(invalid(format!("layer media type {media_type}")));
            }
            tracing::info!(image = uri, layer = %layer.digest, "pulling layer {}/{total}", i + 1);
            let blob = partial.join("layer.blob");
            let mut file = tokio::fs::File::create(&blob).await.map_err(io_error)?;
            if let Err(e) = client
                .pull_blob(&reference, layer.digest.as_str(), &mut file)
                .await
            {
                let _ = std::fs::remove_dir_all(&partial);
                return Err(registry_error(uri, e));
            }
            drop(file);
            let root = rootfs.clone();
            let blob_path = blob.clone();
            let applied = tokio::task::spawn_blocking(move || -> Result<(), UnpackError> {
                let f = std::io::BufReader::new(std::fs::File::open(&blob_path)?);
                if gzip {
                    apply_layer(&root, flate2::read::GzDecoder::new(f))
                } else {
                    apply_layer(&root, f)
                }
            })
            .await
            .map_err(|e| invalid(format!("unpacking: {e}")))?;
            let _ = std::fs::remove_file(&blob);
            if let Err(e) = applied {
                let _ = std::fs::remove_dir_all(&partial);
                return Err(invalid(format!("layer {}: {e}", layer.digest)));
            }
        }
        add_mount_points(&rootfs).map_err(io_error)?;
        let json = serde_json::to_vec(&config).map_err(|e| invalid(e.to_string()))?;
        std::fs::write(partial.join("config.json"), json).map_err(io_error)?;
        if final_dir.exists() {
            std::fs::remove_dir_all(&final_dir).map_err(io_error)?;
        }
        std::fs::rename(&partial, &final_dir).map_err(io_error)?;
        tracing::info!(image = uri, digest = %manifest_digest, layers = total, "image unpacked");
        Ok(PulledImage {
            resolved_uri,
            digest,
            manifest_digest,
            config,
            rootfs: final_dir.join("rootfs"),
        })
    }

    /// Removes every unpacked image (and left-over partial pull) whose manifest digest
    /// `in_use` does not claim; returns how many. `in_use` is asked again for each image while
    /// that image's pull lock is held, so a function created meanwhile keeps its image: either
    /// it is in `in_use` by then, or its pull (which takes the lock) comes after the removal and
    /// pulls again.
    pub fn collect_garbage(&self, in_use: impl Fn(&str) -> bool) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let digest = name
                .strip_prefix(".partial-")
                .unwrap_or(&name)
                .replacen('-', ":", 1);
            if in_use(&digest) {
                continue;
            }
            let lock = self
                .pulling
                .lock()
                .entry(digest.clone())
                .or_default()
                .clone();
            let Ok(_no_pull) = lock.try_lock() else {
                continue; // being pulled right now
            };
            if in_use(&digest) {
                continue;
            }
            if std::fs::remove_dir_all(entry.path()).is_ok() {
                tracing::info!(image = %digest, "removed an image no function version uses");
                removed += 1;
            }
        }
        removed
    }
}

fn registry_error(uri: &str, e: oci_client::errors::OciDistributionError) -> ImageError {
    use oci_client::errors::{OciDistributionError as E, OciErrorCode};
    let uri = uri.to_string();
    match e {
        E::ImageManifestNotFoundError(_) => ImageError::NotFound(uri),
        E::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                )
            }) {
                ImageError::NotFound(uri)
            } else if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                ImageError::AccessDenied {
                    uri,
                    reason: format!("{envelope}"),
                }
            } else {
                ImageError::Registry {
                    uri,
                    reason: format!("{envelope}"),
                }
            }
        }
        E::ServerError { code: 404, .. } => ImageError::NotFound(uri),
        E::UnauthorizedError { url } => ImageError::AccessDenied {
            uri,
            reason: format!("{url}: unauthorized"),
        },
        E::AuthenticationFailure(reason) => ImageError::AccessDenied { uri, reason },
        E::UnsupportedMediaTypeError(t) | E::IncompatibleLayerMediaTypeError(t) => {
            ImageError::Invalid {
                uri,
                reason: format!("media type {t}"),
            }
        }
        other => ImageError::Registry {
            uri,
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_plain_http() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("localhost"));
        assert!(!is_loopback("123.dkr.ecr.us-east-1.amazonaws.com"));
        assert!(!is_loopback("docker.io"));
    }

    #[test]
    fn lambda_architectures_map_to_oci_platforms() {
        assert_eq!(oci_architecture("x86_64"), "amd64");
        assert_eq!(oci_architecture("arm64"), "arm64");
    }

    #[test]
    fn garbage_collection_keeps_images_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path(), vec![]);
        for d in ["sha256:aa", "sha256:bb"] {
            std::fs::create_dir_all(store.image_dir(d).join("rootfs")).unwrap();
        }
        assert_eq!(store.collect_garbage(|d| d == "sha256:aa"), 1);
        assert!(store.image_dir("sha256:aa").exists());
        assert!(!store.image_dir("sha256:bb").exists());
    }
}
