//! The control plane: functions, versions, aliases, layers, policies, tags, concurrency settings,
//! event-invoke configs, URL configs, code-signing configs and event source mappings — validated,
//! persistent (every change durable before it is acknowledged) and consistent (RevisionId guards).
//!
//! CONTRACT with the api crate (keep stable):
//! - `ControlPlane::execute(scope, operation, input)`: `operation` is the API model's operation name
//!   (`CreateFunction`, `GetFunction`, ...); `input` is a JSON object keyed by the model's input
//!   member names (URI, query-string, header and body members merged, already validated against the
//!   model's min/max/pattern/enum/required constraints by the api crate; blobs such as
//!   `Code.ZipFile` are still base64 strings). The result is a JSON object keyed by the model's
//!   output member names; the api crate places header-bound members in headers and the rest in the
//!   body. The operations are listed in `operations.rs`; one that Flint does not offer answers
//!   `LambdaError::unsupported_operation`, an unknown one `LambdaError::unknown_operation`.
//! - `ControlPlane::resolve_invoke(scope, function_name, qualifier)`: the hot path for Invoke; no
//!   disk access, returns the snapshot the engine runs and the ARN the caller invoked.
//! - `ControlPlane::set_public_base_url(url)` and `ControlPlane::download(...)`: GetFunction's
//!   `Code.Location` and GetLayerVersion's `Content.Location` are signed URLs
//!   `{base}/_flint/{code|layers}/{sha256-hex}?expires={unix}&signature={hex}` (`signed_url.rs`);
//!   the api crate serves those paths (without SigV4) with the file `download` returns once it has
//!   checked the signature and expiry.
//!
//! CONTRACT with the data planes: control depends on none of them. Every change they must act on
//! is published, once durable, on the change feed (`flint_spec::Change`): `ControlPlane::subscribe`
//! gives a data plane the state as it stands and then every change (see `publish.rs`). Where
//! provisioned environments stand comes back on a watch channel (`follow_provisioned_report`).

pub mod access;
pub mod account;
pub mod alias;
pub mod arn;
pub mod code;
pub mod code_gc;
pub mod code_signing;
pub mod code_source;
pub mod concurrency;
pub mod configuration;
pub mod error;
pub mod event_invoke_config;
pub mod event_source_mapping;
pub mod function;
pub mod function_name;
pub mod layer;
pub mod lifecycle;
pub mod operations;
pub mod policy;
mod publish;
pub mod recursion;
pub mod resource_policy;
pub mod resource_util;
pub mod runtime;
pub mod runtime_management;
pub mod signed_url;
pub mod source_check;
pub mod state;
pub mod sub_resource;
pub mod tags;
#[cfg(test)]
mod test_feed;
pub mod url_config;
pub mod version;
pub mod vpc;

pub use error::{ErrorCode, LambdaError};
pub use flint_spec::Scope;
pub use runtime::{FixedCatalog, RuntimeCatalog};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::RwLock;

use signed_url::{Download, DownloadError};

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("store: {0}")]
    Store(#[from] flint_store::StoreError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Tunables of the control plane.
#[derive(Debug, Clone)]
pub struct ControlOptions {
    /// Base URL of this server as clients reach it (for `Code.Location`).
    pub public_base_url: String,
    /// How long a new function (or published version) stays `Pending`.
    pub create_settle: Duration,
    /// How long an update stays `InProgress` (a second update meanwhile gets a 409, as on AWS).
    pub update_settle: Duration,
    /// Account concurrency limit reported by GetAccountSettings.
    pub account_concurrency: u32,
    /// Lifetime of a `Code.Location` URL (AWS: 10 minutes).
    pub code_url_ttl: Duration,
    /// The `S3Bucket` whose `S3Key` names a host directory to mount as it is (hot reload,
    /// LocalStack's convention); None: hot reload is off.
    pub hot_reload_bucket: Option<String>,
    /// How long code stays on disk after the last reference to it went (see `code_gc`).
    pub code_gc_grace: Duration,
    /// The host ids unpacked code and layers are given to: those that show as root inside the
    /// sandboxes (`flint_sandbox::Sandboxes::root_owner`), so that `/var/task` and `/opt` are
    /// root's there as on Lambda. None: Flint's own.
    pub code_owner: Option<(u32, u32)>,
}

impl Default for ControlOptions {
    fn default() -> Self {
        Self {
            public_base_url: "http://127.0.0.1:9000".into(),
            create_settle: Duration::from_millis(100),
            update_settle: Duration::from_millis(500),
            account_concurrency: 1000,
            code_url_ttl: Duration::from_secs(600),
            hot_reload_bucket: None,
            code_gc_grace: Duration::from_secs(2),
            code_owner: None,
        }
    }
}

pub struct ControlPlane {
    me: Weak<ControlPlane>,
    pub(crate) index: state::Index,
    pub(crate) code: Arc<code::CodeStore>,
    pub(crate) runtimes: Arc<dyn RuntimeCatalog>,
    pub(crate) options: RwLock<ControlOptions>,
    /// Signs `Code.Location` and `Content.Location` URLs; fresh per process (they are short-lived).
    urls: signed_url::UrlSigner,
    /// Cross-function state of permissions, URLs, concurrency, ... (see `sub_resource`).
    pub(crate) sub_resources: sub_resource::Registry,
    pub(crate) layers: Arc<layer::Layers>,
    pub(crate) code_signing: Arc<code_signing::CodeSigningConfigs>,
    pub(crate) mappings: Arc<event_source_mapping::EventSourceMappings>,
    /// Where provisioned environments stand, as the engine reports it (None: no engine; see
    /// `concurrency`).
    pub(crate) provisioned_report:
        RwLock<Option<tokio::sync::watch::Receiver<flint_spec::ProvisionedReport>>>,
    /// Flint's S3 connection, for code named by S3 location (see `code_source`).
    pub(crate) objects: RwLock<Option<Arc<dyn code_source::ObjectSource>>>,
    /// Flint's connection to the sources of event source mappings (see `source_check`).
    pub(crate) source_check: RwLock<Option<Arc<dyn source_check::SourceCheck>>>,
    /// EC2, for `VpcConfig` (see `vpc.rs`).
    pub(crate) vpc_lookup: RwLock<Option<Arc<dyn vpc::VpcLookup>>>,
    /// The data dir (hot-reload directories may not show it).
    pub(crate) data_dir: PathBuf,
    /// Removes code nothing references (see `code_gc`).
    pub(crate) gc: code_gc::Collector,
}

impl ControlPlane {
    pub fn open(
        data_dir: &Path,
        store: Arc<flint_store::Store>,
        runtimes: Arc<flint_runtimes::RuntimeRegistry>,
    ) -> Result<Arc<Self>, OpenError> {
        Self::open_with(data_dir, store, runtimes, ControlOptions::default())
    }

    /// [`ControlPlane::open`] with any runtime catalog and options (tests, embedders).
    pub fn open_with(
        data_dir: &Path,
        store: Arc<flint_store::Store>,
        runtimes: Arc<dyn RuntimeCatalog>,
        options: ControlOptions,
    ) -> Result<Arc<Self>, OpenError> {
        let layout = flint_store::Layout::new(data_dir);
        // This server owns the data dir: what a stopped one half-wrote goes.
        store.remove_partial_blobs()?;
        let pins = Arc::new(code::Pins::default());
        let code = Arc::new(code::CodeStore::open(
            &layout,
            store.clone(),
            pins.clone(),
            options.code_owner,
        )?);
        // Before the functions load: earlier releases kept code-signing bindings apart.
        code_signing::fold_legacy_bindings(&store)?;
        let index = state::Index::load(store.clone(), code.clone(), options.account_concurrency)?;
        let sub_resources = sub_resource::Registry::load(&index);
        let layers = Arc::new(layer::Layers::open(
            store.clone(),
            data_dir,
            pins,
            options.code_owner,
        )?);
        let code_signing = Arc::new(code_signing::CodeSigningConfigs::open(store.clone())?);
        let mappings = Arc::new(event_source_mapping::EventSourceMappings::open(
            store,
            index.feed().clone(),
        )?);
        let cp = Arc::new_cyclic(|me| Self {
            me: me.clone(),
            index,
            code,
            runtimes,
            options: RwLock::new(options),
            urls: signed_url::UrlSigner::new(),
            sub_resources,
            layers,
            code_signing: code_signing.clone(),
            mappings: mappings.clone(),
            provisioned_report: RwLock::new(None),
            objects: RwLock::new(None),
            source_check: RwLock::new(None),
            vpc_lookup: RwLock::new(None),
            data_dir: data_dir.to_path_buf(),
            gc: code_gc::Collector::default(),
        });
        cp.register_tagged_resources(tags::TaggedKind::EventSourceMapping, mappings);
        cp.register_tagged_resources(tags::TaggedKind::CodeSigningConfig, code_signing);
        cp.resume_image_pulls();
        code_gc::spawn(Arc::downgrade(&cp));
        Ok(cp)
    }

    /// Versions whose image was still being pulled when Flint stopped: pull again. Images
    /// missing from the cache (a data dir restored without `images/`): pulled again in the
    /// background, the versions staying Active (an invoke meanwhile fails to start).
    fn resume_image_pulls(&self) {
        let mut missing = std::collections::BTreeMap::new();
        for (scope, f) in self.index.all() {
            for v in f.all_versions() {
                if state::awaits_image(v) {
                    self.schedule_settle(
                        &scope,
                        f.name(),
                        &v.version,
                        &v.snapshot_id,
                        Duration::ZERO,
                    );
                } else if let Some(image) = &v.config.code.image {
                    if self.code.images().cached(&image.manifest_digest).is_none() {
                        let arch = v.config.architectures.first().cloned().unwrap_or_default();
                        missing.insert(
                            image.manifest_digest.clone(),
                            (image.resolved_image_uri.clone(), arch),
                        );
                    }
                }
            }
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        for (digest, (uri, arch)) in missing {
            let images = self.code.images().clone();
            rt.spawn(async move {
                tracing::info!(image = %uri, digest = %digest, "image missing from the cache: pulling it again");
                if let Err(e) = images.pull(&uri, &arch).await {
                    tracing::warn!(image = %uri, "image pull failed: {e}");
                }
            });
        }
    }

    /// Resolves the layer version ARNs a function's configuration names.
    pub(crate) fn resolve_layers(
        &self,
        scope: &Scope,
        arns: &[String],
    ) -> Result<Vec<configuration::LayerDetail>, LambdaError> {
        Ok(self
            .layers
            .resolve_for_function(scope, arns)?
            .into_iter()
            .map(|l| configuration::LayerDetail {
                arn: l.arn,
                code_size: l.code_size,
                sha256_hex: l.sha256_hex,
                hot_reload_dir: l.hot_reload_dir,
            })
            .collect())
    }

    /// Event source mappings, for the pollers.
    pub fn event_source_mappings(&self) -> &Arc<event_source_mapping::EventSourceMappings> {
        &self.mappings
    }

    /// The base URL clients reach this server at, e.g. `http://127.0.0.1:9000`.
    pub fn set_public_base_url(&self, url: String) {
        let url = url.trim_end_matches('/').to_string();
        self.options.write().public_base_url = url;
    }

    pub fn set_options(&self, options: ControlOptions) {
        self.index.set_account_limit(options.account_concurrency);
        *self.options.write() = options;
    }

    /// A data plane's subscription to the change feed: the state as it stands (every function,
    /// every scope's unreserved pool), then every change, in order.
    pub fn subscribe(&self) -> flint_spec::feed::Subscription {
        self.index.subscribe(|| self.mappings.current())
    }

    /// Get/ListProvisionedConcurrencyConfigs report where the engine's provisioned environments
    /// stand, as it publishes them.
    pub fn follow_provisioned_report(
        &self,
        report: tokio::sync::watch::Receiver<flint_spec::ProvisionedReport>,
    ) {
        *self.provisioned_report.write() = Some(report);
    }

    /// Get/ListEventSourceMappings report what the pollers last said of each mapping
    /// (`LastProcessingResult`, a source they cannot reach), as they publish it.
    pub fn follow_mapping_report(
        &self,
        report: tokio::sync::watch::Receiver<flint_spec::MappingReport>,
    ) {
        self.mappings.follow_report(report);
    }

    pub async fn execute(
        &self,
        scope: &Scope,
        operation: &str,
        input: serde_json::Value,
    ) -> Result<serde_json::Value, LambdaError> {
        // Operations a resource policy can open to other accounts run in the owner's scope once
        // the policy allows the caller.
        if let Some(cross) = access::cross_account_action(operation) {
            let name = access::named_function(&cross, &input);
            let qualifier = input.get("Qualifier").and_then(|v| v.as_str());
            if let Some(owner) = self.cross_account_owner(scope, name, qualifier, cross.action)? {
                return operations::execute(self, &owner, operation, input).await;
            }
        }
        operations::execute(self, scope, operation, input).await
    }

    /// Returns the snapshot to run and the ARN the caller invoked (qualified if they qualified).
    pub fn resolve_invoke(
        &self,
        scope: &Scope,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<(Arc<flint_spec::FunctionSpec>, String), LambdaError> {
        let owner = self.cross_account_owner(
            scope,
            Some(function_name),
            qualifier,
            "lambda:InvokeFunction",
        )?;
        let scope = owner.as_ref().unwrap_or(scope);
        let fref = function_name::resolve(scope, function_name, qualifier)?;
        let invoked_arn = fref.arn(scope);
        // AWS names the version it looked for: an unqualified invoke reports `...:$LATEST`.
        let not_found = || match fref.qualifier {
            Some(_) => LambdaError::function_not_found(&invoked_arn),
            None => LambdaError::function_not_found(&format!("{invoked_arn}:$LATEST")),
        };
        let f = self.index.get(scope, &fref.name).ok_or_else(not_found)?;
        let version = function::resolve_invoke_version(&f, fref.qualifier.as_deref())
            .ok_or_else(|| LambdaError::function_not_found(&invoked_arn))?;
        version.status.check_invocable()?;
        let spec = f
            .spec(&version.version)
            .cloned()
            .ok_or_else(|| LambdaError::service("function snapshot missing"))?;
        // Only after a lost code dir (restored data dir) does this touch the disk.
        let code = &version.config.code;
        if code.hot_reload_dir.is_none()
            && code.image.is_none()
            && !self.code.is_unpacked(&code.sha256_hex)
        {
            self.code.ensure_unpacked(&version.config.code.sha256_hex)?;
        }
        Ok((spec, invoked_arn))
    }

    /// Pulls the image of an Image function's version that is not pulled yet; None for zips
    /// (and for versions that changed meanwhile).
    async fn pull_image_of(
        &self,
        scope: &Scope,
        name: &str,
        version: &str,
        snapshot: &str,
    ) -> Option<Result<code::ImageConfigStored, flint_oci::ImageError>> {
        let f = self.index.get(scope, name)?;
        let record = f.version(version).filter(|r| r.snapshot_id == snapshot)?;
        let image = record.config.code.image.as_ref()?;
        if let Some(config) = &image.config {
            return Some(Ok(config.clone()));
        }
        let arch = record
            .config
            .architectures
            .first()
            .cloned()
            .unwrap_or_else(|| "x86_64".into());
        tracing::info!(function = %name, image = %image.image_uri, "pulling image");
        let started = std::time::Instant::now();
        let pulled = self
            .code
            .images()
            .pull(&image.resolved_image_uri, &arch)
            .await;
        match &pulled {
            Ok(p) => tracing::info!(
                function = %name, image = %image.image_uri, digest = %p.manifest_digest,
                "image ready in {} ms", started.elapsed().as_millis()
            ),
            Err(e) => {
                tracing::warn!(function = %name, image = %image.image_uri, "image pull failed: {e}")
            }
        }
        Some(pulled.map(|p| p.config.into()))
    }

    /// Removes unpacked images no function version uses any more (done when this returns).
    pub async fn collect_images(&self) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let collected = tokio::task::spawn_blocking(move || {
            let images = me.code.images().clone();
            images.collect_garbage(|digest| me.image_in_use(digest))
        })
        .await;
        if let Err(e) = collected {
            tracing::warn!("image garbage collection failed: {e}");
        }
    }

    /// Does any function version (of any account) run the image of `manifest_digest`?
    fn image_in_use(&self, manifest_digest: &str) -> bool {
        self.index.all().iter().any(|(_, f)| {
            f.all_versions().any(|v| {
                v.config
                    .code
                    .image
                    .as_ref()
                    .is_some_and(|i| i.manifest_digest == manifest_digest)
            })
        })
    }

    /// The stored zip a signed download URL (`Code.Location`, `Content.Location`) grants, once
    /// its signature and expiry are checked.
    pub fn download(
        &self,
        download: Download,
        sha256_hex: &str,
        expires: u64,
        signature: &str,
    ) -> Result<PathBuf, DownloadError> {
        self.urls.verify(
            download,
            sha256_hex,
            expires,
            signature,
            signed_url::now_unix(),
        )?;
        match download {
            Download::FunctionCode => self.code.blob_path(sha256_hex),
            Download::LayerContent => self.layers.blob_path(sha256_hex),
        }
        .ok_or(DownloadError::NotFound)
    }

    /// A signed URL for downloading a zip, valid for `code_url_ttl` (AWS: 10 minutes).
    pub(crate) fn download_url(&self, download: Download, sha256_hex: &str) -> String {
        let (base, ttl) = {
            let o = self.options.read();
            (o.public_base_url.clone(), o.code_url_ttl)
        };
        let expires = signed_url::now_unix() + ttl.as_secs();
        let path = self.urls.path_and_query(download, sha256_hex, expires);
        format!("{base}{path}")
    }

    /// Moves `version` of a function to its settled state (Active / Successful) after `delay`,
    /// unless its code or configuration changed meanwhile (its snapshot id is the token: the
    /// RevisionId also moves on changes that leave the pending transition alone, such as tags).
    pub(crate) fn schedule_settle(
        &self,
        scope: &Scope,
        name: &str,
        version: &str,
        snapshot_id: &str,
        delay: Duration,
    ) {
        let (Some(me), Ok(rt)) = (self.me.upgrade(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        let (scope, name, version, snapshot) = (
            scope.clone(),
            name.to_string(),
            version.to_string(),
            snapshot_id.to_string(),
        );
        rt.spawn(async move {
            tokio::time::sleep(delay).await;
            // An Image function stays Pending (or InProgress) while its image is pulled.
            let pulled = me.pull_image_of(&scope, &name, &version, &snapshot).await;
            let not_found = || LambdaError::not_found("gone");
            let outcome = me
                .index
                .modify(&scope, &name, not_found, |_, draft| {
                    let record = if version == configuration::LATEST {
                        Some(&mut draft.doc.latest)
                    } else {
                        version.parse().ok().and_then(|n| draft.version_mut(n))
                    };
                    match record {
                        Some(r) if r.snapshot_id == snapshot && !r.status.is_settled() => {
                            match &pulled {
                                Some(Ok(config)) => {
                                    if let Some(image) = r.config.code.image.as_mut() {
                                        image.config = Some(config.clone());
                                    }
                                    state::settle_record(r);
                                }
                                Some(Err(e)) => {
                                    r.status = r
                                        .status
                                        .failed(error::image_reason_code(e), e.to_string());
                                    r.revision_id = uuid::Uuid::new_v4().to_string();
                                }
                                None => state::settle_record(r),
                            }
                            Ok(())
                        }
                        _ => Err(LambdaError::conflict("changed meanwhile")),
                    }
                })
                .await;
            if let Err(e) = outcome {
                tracing::debug!(function = %name, version = %version, "settle skipped: {}", e.message);
            }
            if pulled.is_some() {
                me.collect_images().await;
            }
        });
    }
}
