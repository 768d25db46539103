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
//!   body. Unknown operations → `LambdaError` UnknownOperationException.
//! - `ControlPlane::resolve_invoke(scope, function_name, qualifier)`: the hot path for Invoke; no
//!   disk access, returns the snapshot the engine runs and the ARN the caller invoked.
//!
//! CONTRACT with the data planes: control depends on none of them. Every change they must act on
//! is published, once durable, on the change feed (`flint_spec::Change`): `ControlPlane::subscribe`
//! gives a data plane the state as it stands and then every change (see `publish.rs`). Where
//! provisioned environments stand comes back on a watch channel (`follow_provisioned_report`).
//! - `ControlPlane::set_public_base_url(url)` and `ControlPlane::code_blob_for_url(...)`: GetFunction's
//!   `Code.Location` is `{base}/_flint/code/{sha256-hex}?expires={unix}&signature={hex}`; the api
//!   crate serves that path (unauthenticated) with the file `code_blob_for_url` returns.

pub mod account;
pub mod alias;
pub mod arn;
pub mod code;
pub mod code_signing;
pub mod concurrency;
pub mod configuration;
pub mod error;
pub mod event_invoke_config;
pub mod event_source_mapping;
pub mod function;
pub mod function_name;
pub mod layer;
pub mod lifecycle;
pub mod policy;
mod publish;
pub mod recursion;
pub mod resource_util;
pub mod runtime;
pub mod runtime_management;
pub mod state;
pub mod sub_resource;
pub mod tags;
#[cfg(test)]
mod test_feed;
pub mod url_config;
pub mod version;

pub use error::{ErrorCode, LambdaError};
pub use flint_spec::Scope;
pub use runtime::{FixedCatalog, RuntimeCatalog};

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

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
}

impl Default for ControlOptions {
    fn default() -> Self {
        Self {
            public_base_url: "http://127.0.0.1:9000".into(),
            create_settle: Duration::from_millis(100),
            update_settle: Duration::from_millis(50),
            account_concurrency: 1000,
            code_url_ttl: Duration::from_secs(600),
        }
    }
}

pub struct ControlPlane {
    me: Weak<ControlPlane>,
    pub(crate) index: state::Index,
    pub(crate) code: Arc<code::CodeStore>,
    pub(crate) runtimes: Arc<dyn RuntimeCatalog>,
    pub(crate) options: RwLock<ControlOptions>,
    /// Signs `Code.Location` URLs; fresh per process (the URLs are short-lived anyway).
    url_secret: [u8; 32],
    /// Cross-function state of permissions, URLs, concurrency, ... (see `sub_resource`).
    pub(crate) sub_resources: sub_resource::Registry,
    pub(crate) layers: Arc<layer::Layers>,
    pub(crate) code_signing: Arc<code_signing::CodeSigningConfigs>,
    pub(crate) mappings: Arc<event_source_mapping::EventSourceMappings>,
    /// Where provisioned environments stand, as the engine reports it (None: no engine; see
    /// `concurrency`).
    pub(crate) provisioned_report:
        RwLock<Option<tokio::sync::watch::Receiver<flint_spec::ProvisionedReport>>>,
}

/// The functions as the code-signing and event-source-mapping modules see them; bound to the
/// control plane once it exists (they are opened before it).
#[derive(Default)]
struct LateFunctions(std::sync::OnceLock<Weak<ControlPlane>>);

impl resource_util::FunctionDirectory for LateFunctions {
    fn function_exists(&self, scope: &Scope, name: &str, qualifier: Option<&str>) -> bool {
        self.0.get().and_then(Weak::upgrade).is_some_and(|cp| {
            resource_util::FunctionDirectory::function_exists(&*cp, scope, name, qualifier)
        })
    }
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
        let code = Arc::new(code::CodeStore::open(&layout, store.clone())?);
        let index = state::Index::load(store.clone(), code.clone(), options.account_concurrency)?;
        let url_secret: [u8; 32] = rand::random();
        let sub_resources = sub_resource::Registry::load(&index);
        let functions = Arc::new(LateFunctions::default());
        let layers = Arc::new(layer::Layers::open(store.clone(), data_dir)?);
        layers.set_base_url(&options.public_base_url);
        let code_signing = Arc::new(code_signing::CodeSigningConfigs::open(
            store.clone(),
            data_dir,
            functions.clone(),
        )?);
        let mappings = Arc::new(event_source_mapping::EventSourceMappings::open(
            store,
            data_dir,
            functions.clone(),
        )?);
        let cp = Arc::new_cyclic(|me| Self {
            me: me.clone(),
            index,
            code,
            runtimes,
            options: RwLock::new(options),
            url_secret,
            sub_resources,
            layers,
            code_signing: code_signing.clone(),
            mappings: mappings.clone(),
            provisioned_report: RwLock::new(None),
        });
        let _ = functions.0.set(Arc::downgrade(&cp));
        cp.register_tagged_resources(tags::TaggedKind::EventSourceMapping, mappings);
        cp.register_tagged_resources(tags::TaggedKind::CodeSigningConfig, code_signing);
        Ok(cp)
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
            })
            .collect())
    }

    /// The stored zip of a layer version (`Content.Location`), if there is one.
    pub fn layer_blob(&self, sha256_hex: &str) -> Option<PathBuf> {
        self.layers.blob_path(sha256_hex)
    }

    /// Event source mappings, for the pollers.
    pub fn event_source_mappings(&self) -> &Arc<event_source_mapping::EventSourceMappings> {
        &self.mappings
    }

    /// The base URL clients reach this server at, e.g. `http://127.0.0.1:9000`.
    pub fn set_public_base_url(&self, url: String) {
        let url = url.trim_end_matches('/').to_string();
        self.layers.set_base_url(&url);
        self.options.write().public_base_url = url;
    }

    pub fn set_options(&self, options: ControlOptions) {
        self.index.set_account_limit(options.account_concurrency);
        *self.options.write() = options;
    }

    /// A data plane's subscription to the change feed: the state as it stands (every function,
    /// every scope's unreserved pool), then every change, in order.
    pub fn subscribe(&self) -> flint_spec::feed::Subscription {
        self.index.subscribe()
    }

    /// Get/ListProvisionedConcurrencyConfigs report where the engine's provisioned environments
    /// stand, as it publishes them.
    pub fn follow_provisioned_report(
        &self,
        report: tokio::sync::watch::Receiver<flint_spec::ProvisionedReport>,
    ) {
        *self.provisioned_report.write() = Some(report);
    }

    pub async fn execute(
        &self,
        scope: &Scope,
        operation: &str,
        input: serde_json::Value,
    ) -> Result<serde_json::Value, LambdaError> {
        // One line per operation: the handler's typed input and output do the (de)serialising.
        match operation {
            "CreateFunction" => call(input, |i| function::create(self, scope, i)).await,
            "GetFunction" => call(input, |i| function::get(self, scope, i)).await,
            "GetFunctionConfiguration" => {
                call(input, |i| function::get_configuration(self, scope, i)).await
            }
            "ListFunctions" => call(input, |i| function::list(self, scope, i)).await,
            "UpdateFunctionCode" => call(input, |i| function::update_code(self, scope, i)).await,
            "UpdateFunctionConfiguration" => {
                call(input, |i| function::update_configuration(self, scope, i)).await
            }
            "DeleteFunction" => call(input, |i| function::delete(self, scope, i)).await,
            "PublishVersion" => call(input, |i| version::publish_version(self, scope, i)).await,
            "ListVersionsByFunction" => {
                call(input, |i| version::list_versions(self, scope, i)).await
            }
            "CreateAlias" => call(input, |i| alias::create(self, scope, i)).await,
            "GetAlias" => call(input, |i| alias::get(self, scope, i)).await,
            "UpdateAlias" => call(input, |i| alias::update(self, scope, i)).await,
            "DeleteAlias" => call(input, |i| alias::delete(self, scope, i)).await,
            "ListAliases" => call(input, |i| alias::list(self, scope, i)).await,
            "GetAccountSettings" => {
                call(input, |i| account::get_account_settings(self, scope, i)).await
            }
            op if sub_resource::handles(op) => sub_resource::execute(self, scope, op, input).await,
            // Unzipping and writing a layer is blocking work: keep it off the async workers.
            "PublishLayerVersion" => {
                let (layers, scope) = (self.layers.clone(), scope.clone());
                tokio::task::spawn_blocking(move || {
                    layers.execute(&scope, "PublishLayerVersion", &input)
                })
                .await
                .map_err(|e| LambdaError::service(format!("layer publishing failed: {e}")))?
                .unwrap_or_else(|| Err(unknown_operation(operation)))
            }
            op => self
                .layers
                .execute(scope, op, &input)
                .or_else(|| self.code_signing.execute(scope, op, &input))
                .or_else(|| self.mappings.execute(scope, op, &input))
                .unwrap_or_else(|| Err(unknown_operation(op))),
        }
    }

    /// Returns the snapshot to run and the ARN the caller invoked (qualified if they qualified).
    pub fn resolve_invoke(
        &self,
        scope: &Scope,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<(Arc<flint_spec::FunctionSpec>, String), LambdaError> {
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
        if !self.code.is_unpacked(&version.config.code.sha256_hex) {
            self.code.ensure_unpacked(&version.config.code.sha256_hex)?;
        }
        Ok((spec, invoked_arn))
    }

    /// The stored zip a `Code.Location` URL points at, if its signature is valid and unexpired.
    pub fn code_blob_for_url(
        &self,
        sha256_hex: &str,
        expires: u64,
        signature: &str,
    ) -> Option<PathBuf> {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        if now > expires {
            return None;
        }
        let expected = self.sign_code_url(sha256_hex, expires);
        let matches = expected.len() == signature.len()
            && expected
                .bytes()
                .zip(signature.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !matches {
            return None;
        }
        self.code.blob_path(sha256_hex)
    }

    /// `Code.Location` for a digest.
    pub(crate) fn code_location(&self, sha256_hex: &str) -> String {
        let (base, ttl) = {
            let o = self.options.read();
            (o.public_base_url.clone(), o.code_url_ttl)
        };
        let expires = chrono::Utc::now().timestamp().max(0) as u64 + ttl.as_secs();
        let signature = self.sign_code_url(sha256_hex, expires);
        format!("{base}/_flint/code/{sha256_hex}?expires={expires}&signature={signature}")
    }

    fn sign_code_url(&self, sha256_hex: &str, expires: u64) -> String {
        let mut h = Sha256::new();
        h.update(self.url_secret);
        h.update(sha256_hex.as_bytes());
        h.update(b":");
        h.update(expires.to_string().as_bytes());
        hex::encode(h.finalize())
    }

    /// Moves `version` of a function to its settled state (Active / Successful) after `delay`,
    /// unless it changed meanwhile (its RevisionId is the token).
    pub(crate) fn schedule_settle(
        &self,
        scope: &Scope,
        name: &str,
        version: &str,
        revision_id: &str,
        delay: Duration,
    ) {
        let (Some(me), Ok(rt)) = (self.me.upgrade(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        let (scope, name, version, revision) = (
            scope.clone(),
            name.to_string(),
            version.to_string(),
            revision_id.to_string(),
        );
        rt.spawn(async move {
            tokio::time::sleep(delay).await;
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
                        Some(r) if r.revision_id == revision => {
                            state::settle_record(r);
                            Ok(())
                        }
                        _ => Err(LambdaError::conflict("changed meanwhile")),
                    }
                })
                .await;
            if let Err(e) = outcome {
                tracing::debug!(function = %name, version = %version, "settle skipped: {}", e.message);
            }
        });
    }
}

/// Deserialises an operation's input, runs its handler and serialises its output.
async fn call<I, O, F>(
    input: serde_json::Value,
    handler: impl FnOnce(I) -> F,
) -> Result<serde_json::Value, LambdaError>
where
    I: DeserializeOwned,
    O: Serialize,
    F: Future<Output = Result<O, LambdaError>>,
{
    let input = if input.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        input
    };
    let typed: I = serde_json::from_value(input)
        .map_err(|e| LambdaError::new(ErrorCode::InvalidParameterValueException, e.to_string()))?;
    let output = handler(typed).await?;
    serde_json::to_value(output).map_err(|e| LambdaError::service(e.to_string()))
}

fn unknown_operation(operation: &str) -> LambdaError {
    LambdaError::new(
        ErrorCode::UnknownOperationException,
        format!("Unknown operation {operation}"),
    )
}
