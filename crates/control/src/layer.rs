//! Lambda layers: published versions (numbered 1, 2, … per layer name, numbers never reused), their
//! zips stored once by SHA-256 and unpacked under `data_dir/layers/`, their resource policies, and
//! what functions need from them ([`Layers::resolve_for_function`]). The operations are the
//! handlers at the end of the file; [`Layers`] holds the state they share.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flint_store::{DocKey, Store, StoreError};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::code::{CodeStore, StoredCode};
use crate::code_source::{CodeSource, Package};
use crate::error::ErrorCode;
use crate::resource_util::{iso_timestamp, list_page, store_error};
use crate::signed_url::Download;
use crate::tags::Empty;
use crate::{arn, ControlPlane, LambdaError, Scope};

/// Store kind of a layer document (all versions of one layer name, and its version counter).
const KIND: &str = "layer";
/// Lambda's quota on layers per function.
pub const MAX_LAYERS_PER_FUNCTION: usize = 5;
const DEFAULT_LIST_ITEMS: usize = 50;
const MAX_LIST_ITEMS: usize = 50;

/// A layer version a function may use, as the function's configuration and sandbox need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedLayer {
    /// The layer version ARN as the function configuration lists it.
    pub arn: String,
    /// Size of the layer's zip (`Layers[].CodeSize`).
    pub code_size: u64,
    /// Sum of the unpacked files' sizes (counts against the function's unzipped quota).
    pub unzipped_size: u64,
    /// Hex SHA-256 of the zip: lets [`Layers::unpacked_dir`] find the content again after the
    /// version is deleted (a function keeps using a layer version deleted after it was attached).
    pub sha256_hex: String,
    /// Where the content is unpacked (merged read-only at /opt by the sandbox).
    pub unpacked_dir: PathBuf,
    /// A hot-reloaded layer's host directory.
    pub hot_reload_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LayerDoc {
    /// Highest version number ever published: numbers are never reused, even after deletes.
    last_version: u64,
    versions: BTreeMap<u64, LayerVersion>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LayerVersion {
    version: u64,
    description: String,
    created_date: String,
    /// `None` when the publisher did not say (then the member is absent, not `[]`).
    compatible_runtimes: Option<Vec<String>>,
    compatible_architectures: Option<Vec<String>>,
    license_info: Option<String>,
    code: StoredCode,
    policy: Option<LayerPolicy>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LayerPolicy {
    revision_id: String,
    statements: Vec<Value>,
}

impl LayerVersion {
    fn matches(&self, runtime: Option<&str>, architecture: Option<&str>) -> bool {
        let has = |list: &Option<Vec<String>>, want: Option<&str>| match want {
            None => true,
            Some(w) => list.as_ref().is_some_and(|l| l.iter().any(|x| x == w)),
        };
        has(&self.compatible_runtimes, runtime) && has(&self.compatible_architectures, architecture)
    }

    /// The members every layer-version shape shares (`LayerVersionsListItem`).
    fn list_item(&self, owner: &Scope, name: &str) -> LayerVersionItem {
        LayerVersionItem {
            layer_version_arn: arn::layer_version_arn(owner, name, self.version),
            version: self.version,
            description: self.description.clone(),
            created_date: self.created_date.clone(),
            compatible_runtimes: self.compatible_runtimes.clone(),
            license_info: self.license_info.clone(),
            compatible_architectures: self.compatible_architectures.clone(),
        }
    }

    /// Whether `caller_account` may read and use this version: its owner always; another
    /// account when a statement of the version's policy allows it `lambda:GetLayerVersion`
    /// (AddLayerVersionPermission's principal, the account or `*`). A statement with a condition
    /// (`aws:PrincipalOrgID`) never admits a direct caller: Flint has no organisations.
    fn may_be_used_by(&self, owner_account: &str, caller_account: &str) -> bool {
        if owner_account == caller_account {
            return true;
        }
        self.policy.as_ref().is_some_and(|p| {
            p.statements
                .iter()
                .any(|s| statement_admits(s, caller_account))
        })
    }
}

/// One layer-version statement (as AddLayerVersionPermission writes it) evaluated for a caller
/// of another account asking `lambda:GetLayerVersion`.
fn statement_admits(s: &Value, caller_account: &str) -> bool {
    let action = s["Action"].as_str().unwrap_or("");
    let action_ok =
        action == "*" || action == "lambda:*" || action.eq_ignore_ascii_case(LAYER_READ_ACTION);
    let principal_ok = match &s["Principal"] {
        Value::String(p) => p == "*",
        other => other["AWS"].as_str().is_some_and(|aws| {
            aws == "*" || aws == caller_account || aws.split(':').nth(4) == Some(caller_account)
        }),
    };
    s["Effect"] == "Allow" && action_ok && principal_ok && s.get("Condition").is_none()
}

/// The action a layer version permission grants, and that reading or using a layer needs.
const LAYER_READ_ACTION: &str = "lambda:GetLayerVersion";

/// AWS's 403 for another account's layer version its policy does not share with the caller
/// (whether or not that version exists: another account's layers are not disclosed).
fn layer_access_denied(caller: &Scope, layer_version_arn: &str) -> LambdaError {
    LambdaError::new(
        ErrorCode::AccessDeniedException,
        format!(
            "User: {} is not authorized to perform: {LAYER_READ_ACTION} on resource: \
             {layer_version_arn} because no resource-based policy allows the \
             {LAYER_READ_ACTION} action",
            arn::account_root(&caller.account)
        ),
    )
}

/// (account, region, layer name).
type LayerKey = (String, String, String);

/// A layer version ARN taken apart.
struct LayerVersionRef {
    scope: Scope,
    name: String,
    version: i64,
}

impl LayerVersionRef {
    /// `arn:PARTITION:lambda:REGION:ACCOUNT:layer:NAME:VERSION`.
    fn parse(arn: &str) -> Option<Self> {
        match arn.split(':').collect::<Vec<_>>().as_slice() {
            ["arn", _, "lambda", region, account, "layer", name, version] => Some(Self {
                scope: Scope {
                    account: account.to_string(),
                    region: region.to_string(),
                },
                name: name.to_string(),
                version: version.parse().ok()?,
            }),
            _ => None,
        }
    }
}

/// All layers of all scopes, indexed in memory and durable in the store.
pub struct Layers {
    store: Arc<Store>,
    pub(crate) code: CodeStore,
    layers: RwLock<HashMap<LayerKey, LayerDoc>>,
}

impl Layers {
    /// Loads every layer from the store; layer content lives under `data_dir/layers/`.
    /// `pins` are shared with the functions' code store (the zips share the store's blobs).
    pub fn open(
        store: Arc<Store>,
        data_dir: &Path,
        pins: Arc<crate::code::Pins>,
        owner: Option<(u32, u32)>,
    ) -> Result<Self, StoreError> {
        let code = CodeStore::open_layers(
            &flint_store::Layout::new(data_dir),
            store.clone(),
            pins,
            owner,
        )?;
        let mut layers = HashMap::new();
        let format = flint_store::FORMAT_1;
        for doc in store.load::<LayerDoc>(KIND, format, crate::state::upgrade_unchanged)? {
            layers.insert((doc.account, doc.region, doc.key), doc.value);
        }
        Ok(Self {
            store,
            code,
            layers: RwLock::new(layers),
        })
    }

    /// The stored zip of a layer's content (what a signed `Content.Location` serves), if any.
    pub fn blob_path(&self, sha256_hex: &str) -> Option<PathBuf> {
        self.code.blob_path(sha256_hex)
    }

    /// Adds the digests of every layer version's content (hot-reloaded ones have none).
    pub(crate) fn add_referenced(&self, out: &mut HashSet<String>) {
        for doc in self.layers.read().values() {
            for v in doc.versions.values() {
                if v.code.hot_reload_dir.is_none() {
                    out.insert(v.code.sha256_hex.clone());
                }
            }
        }
    }

    /// The unpacked content of a layer zip, unpacking it again from its blob if it was lost.
    pub fn unpacked_dir(&self, sha256_hex: &str) -> Result<PathBuf, LambdaError> {
        self.code.ensure_unpacked(sha256_hex)
    }

    /// Sum of the zip sizes of the scope's layer versions (`AccountUsage.TotalCodeSize`).
    pub fn total_code_size(&self, scope: &Scope) -> u64 {
        self.layers
            .read()
            .iter()
            .filter(|((a, r, _), _)| *a == scope.account && *r == scope.region)
            .flat_map(|(_, d)| d.versions.values())
            .map(|v| v.code.size)
            .sum()
    }

    /// Checks a function's `Layers` as AWS does and resolves them to their content.
    pub fn resolve_for_function(
        &self,
        scope: &Scope,
        layer_version_arns: &[String],
    ) -> Result<Vec<ResolvedLayer>, LambdaError> {
        if layer_version_arns.len() > MAX_LAYERS_PER_FUNCTION {
            return Err(LambdaError::invalid("Cannot reference more than 5 layers."));
        }
        let mut parsed = Vec::with_capacity(layer_version_arns.len());
        for arn in layer_version_arns {
            // `arn:aws:lambda:::awslayer:NAME` (AWS-managed layers) do not exist here.
            let Some(r) = LayerVersionRef::parse(arn) else {
                return Err(LambdaError::layer_version_does_not_exist(arn));
            };
            if r.scope.region != scope.region {
                return Err(LambdaError::invalid(format!(
                    "Layers are not in the same region as the function. \
                     Layers are expected to be in region {}.",
                    scope.region
                )));
            }
            parsed.push((arn, r));
        }
        for (i, (arn, r)) in parsed.iter().enumerate() {
            if let Some((other, _)) = parsed[..i]
                .iter()
                .find(|(_, o)| o.name == r.name && o.scope.account == r.scope.account)
            {
                return Err(LambdaError::invalid(format!(
                    "Two different versions of the same layer are not allowed to be referenced \
                     in the same function. {other} and {arn} are versions of the same layer."
                )));
            }
        }
        let mut out = Vec::with_capacity(parsed.len());
        for (arn, r) in parsed {
            let code = {
                let layers = self.layers.read();
                let version = u64::try_from(r.version).ok().and_then(|v| {
                    layers
                        .get(&key(&r.scope, &r.name))
                        .and_then(|d| d.versions.get(&v))
                });
                match version {
                    Some(v) if v.may_be_used_by(&r.scope.account, &scope.account) => v.code.clone(),
                    _ if r.scope.account != scope.account => {
                        return Err(layer_access_denied(scope, arn))
                    }
                    _ => return Err(LambdaError::layer_version_does_not_exist(arn)),
                }
            };
            let unpacked_dir = match &code.hot_reload_dir {
                Some(dir) => dir.clone(),
                None => self.code.ensure_unpacked(&code.sha256_hex)?,
            };
            out.push(ResolvedLayer {
                arn: arn.clone(),
                code_size: code.size,
                unzipped_size: code.unzipped_size,
                sha256_hex: code.sha256_hex,
                unpacked_dir,
                hot_reload_dir: code.hot_reload_dir,
            });
        }
        Ok(out)
    }

    /// Stores a new version of the caller's layer. Unzips and writes to disk: call it off the
    /// async workers.
    fn publish(
        &self,
        scope: &Scope,
        input: PublishLayerVersionInput,
        package: Package,
    ) -> Result<(Scope, String, LayerVersion), LambdaError> {
        let (owner, name) = target(scope, &input.layer_name, "lambda:PublishLayerVersion")?;
        // Unzipping is the slow part: do it before taking the lock. The pin keeps the content
        // from the garbage collector until the version is recorded.
        let crate::code::Ingested { code, pin: _pin } = package.store(&self.code)?;
        let mut layers = self.layers.write();
        let k = key(&owner, &name);
        let mut doc = layers.get(&k).cloned().unwrap_or(LayerDoc {
            last_version: 0,
            versions: BTreeMap::new(),
        });
        let version = doc.last_version + 1;
        let lv = LayerVersion {
            version,
            description: input.description.unwrap_or_default(),
            created_date: iso_timestamp(chrono::Utc::now()),
            compatible_runtimes: input.compatible_runtimes,
            compatible_architectures: input.compatible_architectures,
            license_info: input.license_info,
            code,
            policy: None,
        };
        doc.last_version = version;
        doc.versions.insert(version, lv.clone());
        self.persist(&owner, &name, &doc)?;
        layers.insert(k, doc);
        Ok((owner, name, lv))
    }

    /// A version the caller may read, or AWS's 404.
    fn readable_version(
        &self,
        caller: &Scope,
        owner: &Scope,
        name: &str,
        version: u64,
    ) -> Result<LayerVersion, LambdaError> {
        let found = self
            .layers
            .read()
            .get(&key(owner, name))
            .and_then(|d| d.versions.get(&version))
            .filter(|v| v.may_be_used_by(&owner.account, &caller.account))
            .cloned();
        match found {
            Some(v) => Ok(v),
            None if owner.account != caller.account => Err(layer_access_denied(
                caller,
                &arn::layer_version_arn(owner, name, version),
            )),
            None => Err(LambdaError::resource_not_found()),
        }
    }

    /// Changes one version of the caller's layer under the write lock and persists it: `edit` may
    /// refuse, and a missing version is AWS's 404 naming the version ARN.
    fn modify_version<R>(
        &self,
        owner: &Scope,
        name: &str,
        version: u64,
        edit: impl FnOnce(&mut LayerVersion) -> Result<R, LambdaError>,
    ) -> Result<R, LambdaError> {
        let missing =
            || LambdaError::layer_version_not_found(&arn::layer_version_arn(owner, name, version));
        let mut layers = self.layers.write();
        let k = key(owner, name);
        let mut doc = layers.get(&k).cloned().ok_or_else(missing)?;
        let lv = doc.versions.get_mut(&version).ok_or_else(missing)?;
        let out = edit(lv)?;
        self.persist(owner, name, &doc)?;
        layers.insert(k, doc);
        Ok(out)
    }

    fn persist(&self, owner: &Scope, name: &str, doc: &LayerDoc) -> Result<(), LambdaError> {
        let value = serde_json::to_string(doc).map_err(store_error)?;
        let k = DocKey {
            account: &owner.account,
            region: &owner.region,
            kind: KIND,
            key: name,
        };
        self.store.put(&k, &value).map_err(store_error)
    }
}

fn key(scope: &Scope, name: &str) -> LayerKey {
    (
        scope.account.clone(),
        scope.region.clone(),
        name.to_string(),
    )
}

/// `LayerName` is a name or a layer ARN (`arn:aws:lambda:REGION:ACCOUNT:layer:NAME`), which may
/// name another account's layer.
fn layer_of(scope: &Scope, layer_name: &str) -> (Scope, String) {
    match layer_name.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", _, "lambda", region, account, "layer", name] => (
            Scope {
                account: account.to_string(),
                region: region.to_string(),
            },
            name.to_string(),
        ),
        _ => (scope.clone(), layer_name.to_string()),
    }
}

/// The layer a changing operation targets: only the caller's own.
fn target(scope: &Scope, layer_name: &str, action: &str) -> Result<(Scope, String), LambdaError> {
    let (owner, name) = layer_of(scope, layer_name);
    if owner != *scope {
        return Err(LambdaError::not_authorized(
            &scope.account,
            action,
            &arn::layer_arn(&owner, &name),
        ));
    }
    Ok((owner, name))
}

fn version_number(given: Option<i64>) -> Result<u64, LambdaError> {
    match given {
        Some(v) if v >= 1 => Ok(v as u64),
        _ => Err(LambdaError::layer_version_below_one()),
    }
}

fn check_revision(policy: Option<&LayerPolicy>, given: Option<&str>) -> Result<(), LambdaError> {
    match given {
        Some(r) if policy.is_none_or(|p| p.revision_id != r) => {
            Err(LambdaError::stale_policy_revision("GetLayerPolicy"))
        }
        _ => Ok(()),
    }
}

// ---- Inputs and outputs, as the model names their members ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PublishLayerVersionInput {
    #[serde(default)]
    pub layer_name: String,
    pub description: Option<String>,
    #[serde(default)]
    pub content: LayerContentInput,
    pub compatible_runtimes: Option<Vec<String>>,
    pub license_info: Option<String>,
    pub compatible_architectures: Option<Vec<String>>,
}

/// `Content` of PublishLayerVersion (`LayerVersionContentInput`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LayerContentInput {
    pub s3_bucket: Option<String>,
    pub s3_key: Option<String>,
    pub s3_object_version: Option<String>,
    pub zip_file: Option<String>,
}

/// GetLayerVersion, DeleteLayerVersion and GetLayerVersionPolicy: a version by layer and number.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LayerVersionInput {
    #[serde(default)]
    pub layer_name: String,
    pub version_number: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetLayerVersionByArnInput {
    #[serde(default)]
    pub arn: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListLayersInput {
    pub compatible_runtime: Option<String>,
    pub compatible_architecture: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListLayerVersionsInput {
    #[serde(default)]
    pub layer_name: String,
    pub compatible_runtime: Option<String>,
    pub compatible_architecture: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddLayerVersionPermissionInput {
    #[serde(default)]
    pub layer_name: String,
    pub version_number: Option<i64>,
    #[serde(default)]
    pub statement_id: String,
    pub action: Option<String>,
    #[serde(default)]
    pub principal: String,
    pub organization_id: Option<String>,
    pub revision_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemoveLayerVersionPermissionInput {
    #[serde(default)]
    pub layer_name: String,
    pub version_number: Option<i64>,
    #[serde(default)]
    pub statement_id: String,
    pub revision_id: Option<String>,
}

/// The members every layer-version shape shares (`LayerVersionsListItem`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LayerVersionItem {
    pub layer_version_arn: String,
    pub version: u64,
    pub description: String,
    pub created_date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compatible_runtimes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license_info: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compatible_architectures: Option<Vec<String>>,
}

/// PublishLayerVersion's, GetLayerVersion's and GetLayerVersionByArn's answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LayerVersionOutput {
    pub content: LayerContentOutput,
    pub layer_arn: String,
    #[serde(flatten)]
    pub item: LayerVersionItem,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LayerContentOutput {
    /// A signed, short-lived download URL (see `signed_url`).
    pub location: String,
    pub code_sha256: String,
    pub code_size: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LayersListItem {
    pub layer_name: String,
    pub layer_arn: String,
    pub latest_matching_version: LayerVersionItem,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListLayersOutput {
    pub layers: Vec<LayersListItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListLayerVersionsOutput {
    pub layer_versions: Vec<LayerVersionItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddLayerVersionPermissionOutput {
    pub statement: String,
    pub revision_id: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetLayerVersionPolicyOutput {
    pub policy: String,
    pub revision_id: String,
}

fn version_output(
    cp: &ControlPlane,
    owner: &Scope,
    name: &str,
    lv: &LayerVersion,
) -> LayerVersionOutput {
    LayerVersionOutput {
        content: LayerContentOutput {
            location: match &lv.code.hot_reload_dir {
                Some(dir) => format!("file://{}", dir.display()),
                None => cp.download_url(Download::LayerContent, &lv.code.sha256_hex),
            },
            code_sha256: lv.code.sha256_base64(),
            code_size: lv.code.size,
        },
        layer_arn: arn::layer_arn(owner, name),
        item: lv.list_item(owner, name),
    }
}

// ---- The operations ----

pub async fn publish_version(
    cp: &ControlPlane,
    scope: &Scope,
    mut input: PublishLayerVersionInput,
) -> Result<LayerVersionOutput, LambdaError> {
    // Only the caller's own layers, before any download.
    target(scope, &input.layer_name, "lambda:PublishLayerVersion")?;
    let content = std::mem::take(&mut input.content);
    let src = CodeSource {
        zip_file: content.zip_file,
        s3_bucket: content.s3_bucket,
        s3_key: content.s3_key,
        s3_object_version: content.s3_object_version,
    };
    let package = cp
        .fetch_package(
            scope,
            src,
            cp.layers.code.download_path(),
            LambdaError::unzip_failed,
        )
        .await?;
    // Unzipping and writing a layer is blocking work: keep it off the async workers.
    let (layers, caller) = (cp.layers.clone(), scope.clone());
    let (owner, name, lv) =
        tokio::task::spawn_blocking(move || layers.publish(&caller, input, package))
            .await
            .map_err(|e| LambdaError::service(format!("layer publishing failed: {e}")))??;
    Ok(version_output(cp, &owner, &name, &lv))
}

pub async fn get_version(
    cp: &ControlPlane,
    scope: &Scope,
    input: LayerVersionInput,
) -> Result<LayerVersionOutput, LambdaError> {
    let (owner, name) = layer_of(scope, &input.layer_name);
    let version = version_number(input.version_number)?;
    let lv = cp.layers.readable_version(scope, &owner, &name, version)?;
    Ok(version_output(cp, &owner, &name, &lv))
}

pub async fn get_version_by_arn(
    cp: &ControlPlane,
    scope: &Scope,
    input: GetLayerVersionByArnInput,
) -> Result<LayerVersionOutput, LambdaError> {
    let r = LayerVersionRef::parse(&input.arn).ok_or_else(LambdaError::resource_not_found)?;
    if r.version < 1 {
        return Err(LambdaError::layer_version_below_one());
    }
    let lv = cp
        .layers
        .readable_version(scope, &r.scope, &r.name, r.version as u64)?;
    Ok(version_output(cp, &r.scope, &r.name, &lv))
}

pub async fn list_layers(
    cp: &ControlPlane,
    scope: &Scope,
    input: ListLayersInput,
) -> Result<ListLayersOutput, LambdaError> {
    let (runtime, arch) = (
        input.compatible_runtime.as_deref(),
        input.compatible_architecture.as_deref(),
    );
    let found: Vec<(String, LayersListItem)> = cp
        .layers
        .layers
        .read()
        .iter()
        .filter(|((a, r, _), _)| *a == scope.account && *r == scope.region)
        .filter_map(|((_, _, name), doc)| {
            let latest = doc
                .versions
                .values()
                .rev()
                .find(|v| v.matches(runtime, arch))?;
            let item = LayersListItem {
                layer_name: name.clone(),
                layer_arn: arn::layer_arn(scope, name),
                latest_matching_version: latest.list_item(scope, name),
            };
            Some((name.clone(), item))
        })
        .collect();
    let (layers, next_marker) = list_page(
        found,
        input.marker.as_deref(),
        input.max_items,
        (DEFAULT_LIST_ITEMS, MAX_LIST_ITEMS),
    );
    Ok(ListLayersOutput {
        layers,
        next_marker,
    })
}

pub async fn list_versions(
    cp: &ControlPlane,
    scope: &Scope,
    input: ListLayerVersionsInput,
) -> Result<ListLayerVersionsOutput, LambdaError> {
    let (owner, name) = layer_of(scope, &input.layer_name);
    let (runtime, arch) = (
        input.compatible_runtime.as_deref(),
        input.compatible_architecture.as_deref(),
    );
    let found: Vec<(String, LayerVersionItem)> = cp
        .layers
        .layers
        .read()
        .get(&key(&owner, &name))
        .map(|d| {
            d.versions
                .values()
                .filter(|v| v.matches(runtime, arch))
                .filter(|v| v.may_be_used_by(&owner.account, &scope.account))
                // Newest first: the key counts down.
                .map(|v| {
                    let key = format!("{:020}", u64::MAX - v.version);
                    (key, v.list_item(&owner, &name))
                })
                .collect()
        })
        .unwrap_or_default();
    let (layer_versions, next_marker) = list_page(
        found,
        input.marker.as_deref(),
        input.max_items,
        (DEFAULT_LIST_ITEMS, MAX_LIST_ITEMS),
    );
    Ok(ListLayerVersionsOutput {
        layer_versions,
        next_marker,
    })
}

pub async fn delete_version(
    cp: &ControlPlane,
    scope: &Scope,
    input: LayerVersionInput,
) -> Result<Empty, LambdaError> {
    let (owner, name) = target(scope, &input.layer_name, "lambda:DeleteLayerVersion")?;
    let version = version_number(input.version_number)?;
    let layers = &cp.layers;
    let mut all = layers.layers.write();
    let k = key(&owner, &name);
    if let Some(doc) = all.get(&k) {
        if doc.versions.contains_key(&version) {
            let mut doc = doc.clone();
            doc.versions.remove(&version);
            // The document stays (with its counter) so that version numbers are not reused.
            // The content stays while functions use it (they keep working); the garbage
            // collector removes it once none does.
            layers.persist(&owner, &name, &doc)?;
            all.insert(k, doc);
        }
    }
    drop(all);
    cp.collect_code();
    Ok(Empty {})
}

pub async fn add_permission(
    cp: &ControlPlane,
    scope: &Scope,
    input: AddLayerVersionPermissionInput,
) -> Result<AddLayerVersionPermissionOutput, LambdaError> {
    let (owner, name) = target(scope, &input.layer_name, "lambda:AddLayerVersionPermission")?;
    let version = version_number(input.version_number)?;
    let sid = input.statement_id;
    let principal = match input.principal.as_str() {
        "*" => json!("*"),
        p if p.len() == 12 && p.bytes().all(|b| b.is_ascii_digit()) => {
            json!({ "AWS": arn::account_root(p) })
        }
        p => json!({ "AWS": p }),
    };
    let mut statement = json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": principal,
        "Action": input.action.as_deref().unwrap_or("lambda:GetLayerVersion"),
        "Resource": arn::layer_version_arn(&owner, &name, version),
    });
    if let Some(org) = &input.organization_id {
        statement["Condition"] = json!({ "StringEquals": { "aws:PrincipalOrgID": org } });
    }
    let revision_id = cp.layers.modify_version(&owner, &name, version, |lv| {
        check_revision(lv.policy.as_ref(), input.revision_id.as_deref())?;
        let policy = lv.policy.get_or_insert_with(|| LayerPolicy {
            revision_id: String::new(),
            statements: Vec::new(),
        });
        if policy.statements.iter().any(|s| s["Sid"] == sid.as_str()) {
            return Err(LambdaError::statement_exists(&sid));
        }
        policy.statements.push(statement.clone());
        policy.revision_id = uuid::Uuid::new_v4().to_string();
        Ok(policy.revision_id.clone())
    })?;
    Ok(AddLayerVersionPermissionOutput {
        statement: statement.to_string(),
        revision_id,
    })
}

pub async fn remove_permission(
    cp: &ControlPlane,
    scope: &Scope,
    input: RemoveLayerVersionPermissionInput,
) -> Result<Empty, LambdaError> {
    let (owner, name) = target(
        scope,
        &input.layer_name,
        "lambda:RemoveLayerVersionPermission",
    )?;
    let version = version_number(input.version_number)?;
    let sid = input.statement_id;
    cp.layers.modify_version(&owner, &name, version, |lv| {
        check_revision(lv.policy.as_ref(), input.revision_id.as_deref())?;
        let not_found = || LambdaError::statement_not_found(&sid);
        let policy = lv.policy.as_mut().ok_or_else(not_found)?;
        let before = policy.statements.len();
        policy.statements.retain(|s| s["Sid"] != sid.as_str());
        if policy.statements.len() == before {
            return Err(not_found());
        }
        if policy.statements.is_empty() {
            lv.policy = None;
        } else {
            policy.revision_id = uuid::Uuid::new_v4().to_string();
        }
        Ok(())
    })?;
    Ok(Empty {})
}

pub async fn get_policy(
    cp: &ControlPlane,
    scope: &Scope,
    input: LayerVersionInput,
) -> Result<GetLayerVersionPolicyOutput, LambdaError> {
    let (owner, name) = layer_of(scope, &input.layer_name);
    let version = version_number(input.version_number)?;
    let layers = cp.layers.layers.read();
    let lv = layers
        .get(&key(&owner, &name))
        .and_then(|d| d.versions.get(&version))
        .ok_or_else(|| {
            LambdaError::layer_version_not_found(&arn::layer_version_arn(&owner, &name, version))
        })?;
    let policy = lv.policy.as_ref().ok_or_else(LambdaError::no_policy)?;
    let document = json!({
        "Version": "2012-10-17",
        "Id": "default",
        "Statement": policy.statements,
    });
    Ok(GetLayerVersionPolicyOutput {
        policy: document.to_string(),
        revision_id: policy.revision_id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::test_zip;
    use crate::error::ErrorCode;
    use crate::sub_resource::test_support::{fixture, reopen};
    use base64::Engine as _;
    use sha2::{Digest, Sha256};

    const ACCOUNT: &str = "111111111111";
    const REGION: &str = "us-east-1";

    fn scope() -> Scope {
        Scope {
            account: ACCOUNT.into(),
            region: REGION.into(),
        }
    }

    fn zip() -> Vec<u8> {
        test_zip(&[
            ("python/lib.py", b"X = 1", 0o644),
            ("bin/tool", b"#!/bin/sh\n", 0o755),
        ])
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    async fn run(cp: &ControlPlane, op: &str, input: Value) -> Result<Value, LambdaError> {
        cp.execute(&scope(), op, input).await
    }

    async fn publish(l: &ControlPlane, name: &str, extra: Value) -> Value {
        let mut input = json!({"LayerName": name, "Content": {"ZipFile": b64(&zip())}});
        if let (Value::Object(i), Value::Object(e)) = (&mut input, extra) {
            i.extend(e);
        }
        run(l, "PublishLayerVersion", input).await.unwrap()
    }

    fn err(r: Result<Value, LambdaError>) -> (ErrorCode, String) {
        let e = r.unwrap_err();
        (e.code, e.message)
    }

    #[tokio::test]
    async fn publish_numbers_versions_and_describes_the_content() {
        let fx = fixture();
        let l = &*fx.cp;
        let out = publish(
            l,
            "mylayer",
            json!({"Description": "d", "LicenseInfo": "MIT",
                   "CompatibleRuntimes": ["python3.12"], "CompatibleArchitectures": ["x86_64"]}),
        )
        .await;
        let hex_digest = hex::encode(Sha256::digest(zip()));
        let location = out["Content"]["Location"].as_str().unwrap();
        let prefix = format!("http://flint.test:9000/_flint/layers/{hex_digest}?expires=");
        assert!(location.starts_with(&prefix), "{location}");
        assert!(location.contains("&signature="), "{location}");
        assert_eq!(
            out,
            json!({
                "Content": {
                    "Location": location,
                    "CodeSha256": b64(&Sha256::digest(zip())),
                    "CodeSize": zip().len(),
                },
                "LayerArn": "arn:aws:lambda:us-east-1:111111111111:layer:mylayer",
                "LayerVersionArn": "arn:aws:lambda:us-east-1:111111111111:layer:mylayer:1",
                "Version": 1,
                "Description": "d",
                "CreatedDate": out["CreatedDate"],
                "CompatibleRuntimes": ["python3.12"],
                "LicenseInfo": "MIT",
                "CompatibleArchitectures": ["x86_64"],
            })
        );
        let created = out["CreatedDate"].as_str().unwrap();
        assert_eq!(created.len(), "2024-05-01T12:00:00.000+0000".len());
        assert!(created.ends_with("+0000"));
        let second = publish(l, "mylayer", json!({})).await;
        assert_eq!(second["Version"], 2);
        // Not given: absent, not empty lists; Description defaults to "".
        assert!(second.get("CompatibleRuntimes").is_none());
        assert!(second.get("LicenseInfo").is_none());
        assert_eq!(second["Description"], "");
        let unpacked = l.layers.unpacked_dir(&hex_digest).unwrap();
        assert_eq!(
            std::fs::read(unpacked.join("python/lib.py")).unwrap(),
            b"X = 1"
        );
        assert!(l.layers.blob_path(&hex_digest).is_some());
        assert_eq!(l.layers.total_code_size(&scope()), 2 * zip().len() as u64);
    }

    #[tokio::test]
    async fn empty_compatibility_lists_are_kept_as_given() {
        let fx = fixture();
        let l = &*fx.cp;
        let out = publish(
            l,
            "e",
            json!({"CompatibleRuntimes": [], "CompatibleArchitectures": []}),
        )
        .await;
        assert_eq!(out["CompatibleRuntimes"], json!([]));
        assert_eq!(out["CompatibleArchitectures"], json!([]));
    }

    #[tokio::test]
    async fn bad_content_is_refused() {
        let fx = fixture();
        let l = &*fx.cp;
        let r = run(
            l,
            "PublishLayerVersion",
            json!({"LayerName": "x", "Content": {"ZipFile": b64(b"not a zip")}}),
        )
        .await;
        assert_eq!(
            err(r),
            (
                ErrorCode::InvalidParameterValueException,
                "Could not unzip uploaded file. Please check your file, then try to upload again."
                    .into()
            )
        );
        let evil = test_zip(&[("../escape", b"x", 0o644)]);
        let r = run(
            l,
            "PublishLayerVersion",
            json!({"LayerName": "x", "Content": {"ZipFile": b64(&evil)}}),
        )
        .await;
        assert_eq!(err(r).0, ErrorCode::InvalidParameterValueException);
        let r = run(
            l,
            "PublishLayerVersion",
            json!({"LayerName": "x", "Content": {"S3Bucket": "b", "S3Key": "k"}}),
        )
        .await;
        assert_eq!(
            err(r),
            (
                ErrorCode::InvalidParameterValueException,
                LambdaError::s3_no_such_bucket().message
            )
        );
        // Nothing was published.
        let out = run(l, "ListLayerVersions", json!({"LayerName": "x"}))
            .await
            .unwrap();
        assert_eq!(out, json!({"LayerVersions": []}));
    }

    #[tokio::test]
    async fn get_errors_are_aws_messages() {
        let fx = fixture();
        let l = &*fx.cp;
        publish(l, "l", json!({})).await;
        for v in [0, -1] {
            let r = run(
                l,
                "GetLayerVersion",
                json!({"LayerName": "l", "VersionNumber": v}),
            )
            .await;
            assert_eq!(
                err(r),
                (
                    ErrorCode::InvalidParameterValueException,
                    "Layer Version Cannot be less than 1".into()
                )
            );
        }
        let missing = (
            ErrorCode::ResourceNotFoundException,
            "The resource you requested does not exist.".to_string(),
        );
        let r = run(
            l,
            "GetLayerVersion",
            json!({"LayerName": "l", "VersionNumber": 2}),
        )
        .await;
        assert_eq!(err(r), missing);
        let r = run(
            l,
            "GetLayerVersion",
            json!({"LayerName": "nope", "VersionNumber": 1}),
        )
        .await;
        assert_eq!(err(r), missing);
        let r = run(
            l,
            "GetLayerVersionByArn",
            json!({"Arn": "arn:aws:lambda:us-east-1:111111111111:layer:l:2"}),
        )
        .await;
        assert_eq!(err(r), missing);
        let by_arn = run(
            l,
            "GetLayerVersionByArn",
            json!({"Arn": "arn:aws:lambda:us-east-1:111111111111:layer:l:1"}),
        )
        .await
        .unwrap();
        let by_name = run(
            l,
            "GetLayerVersion",
            json!({"LayerName": "arn:aws:lambda:us-east-1:111111111111:layer:l", "VersionNumber": 1}),
        ).await
        .unwrap();
        assert_eq!(by_arn, by_name);
        assert_eq!(by_arn["Version"], 1);
    }

    #[tokio::test]
    async fn delete_is_idempotent_and_numbers_are_never_reused() {
        let fx = fixture();
        let l = &*fx.cp;
        publish(l, "l", json!({})).await;
        publish(l, "l", json!({})).await;
        let del = async |n: i64| {
            run(
                l,
                "DeleteLayerVersion",
                json!({"LayerName": "l", "VersionNumber": n}),
            )
            .await
        };
        assert_eq!(del(1).await.unwrap(), json!({}));
        assert_eq!(del(1).await.unwrap(), json!({}));
        assert_eq!(del(7).await.unwrap(), json!({}));
        assert_eq!(
            run(
                l,
                "DeleteLayerVersion",
                json!({"LayerName": "nope", "VersionNumber": 1})
            )
            .await
            .unwrap(),
            json!({})
        );
        assert_eq!(err(del(-1).await).1, "Layer Version Cannot be less than 1");
        del(2).await.unwrap();
        let out = run(l, "ListLayerVersions", json!({"LayerName": "l"}))
            .await
            .unwrap();
        assert_eq!(out, json!({"LayerVersions": []}));
        assert_eq!(publish(l, "l", json!({})).await["Version"], 3);
    }

    #[tokio::test]
    async fn list_layers_shows_latest_matching_version() {
        let fx = fixture();
        let l = &*fx.cp;
        publish(
            l,
            "b",
            json!({"CompatibleRuntimes": ["python3.12"], "CompatibleArchitectures": ["x86_64"]}),
        )
        .await;
        publish(
            l,
            "b",
            json!({"CompatibleRuntimes": ["nodejs20.x"], "CompatibleArchitectures": ["arm64"]}),
        )
        .await;
        publish(l, "a", json!({"CompatibleRuntimes": ["python3.12"]})).await;
        let out = run(l, "ListLayers", json!({})).await.unwrap();
        let layers = out["Layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0]["LayerName"], "a");
        assert_eq!(
            layers[1]["LayerArn"],
            "arn:aws:lambda:us-east-1:111111111111:layer:b"
        );
        assert_eq!(layers[1]["LatestMatchingVersion"]["Version"], 2);
        assert_eq!(
            layers[1]["LatestMatchingVersion"]["LayerVersionArn"],
            "arn:aws:lambda:us-east-1:111111111111:layer:b:2"
        );
        assert!(layers[1]["LatestMatchingVersion"].get("Content").is_none());
        assert!(out.get("NextMarker").is_none());

        let out = run(l, "ListLayers", json!({"CompatibleRuntime": "python3.12"}))
            .await
            .unwrap();
        let versions: Vec<_> = out["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["LatestMatchingVersion"]["Version"].clone())
            .collect();
        assert_eq!(versions, [json!(1), json!(1)]);
        let out = run(l, "ListLayers", json!({"CompatibleArchitecture": "arm64"}))
            .await
            .unwrap();
        assert_eq!(out["Layers"].as_array().unwrap().len(), 1);
        assert_eq!(out["Layers"][0]["LayerName"], "b");

        let page1 = run(l, "ListLayers", json!({"MaxItems": 1})).await.unwrap();
        assert_eq!(page1["Layers"][0]["LayerName"], "a");
        let marker = page1["NextMarker"].as_str().unwrap().to_string();
        let page2 = run(l, "ListLayers", json!({"MaxItems": 1, "Marker": marker}))
            .await
            .unwrap();
        assert_eq!(page2["Layers"][0]["LayerName"], "b");
        assert!(page2.get("NextMarker").is_none());
    }

    #[tokio::test]
    async fn list_layer_versions_is_newest_first_filtered_and_paged() {
        let fx = fixture();
        let l = &*fx.cp;
        for rt in ["python3.12", "nodejs20.x", "python3.12"] {
            publish(
                l,
                "l",
                json!({"CompatibleRuntimes": [rt], "Description": "x", "LicenseInfo": "MIT"}),
            )
            .await;
        }
        let out = run(l, "ListLayerVersions", json!({"LayerName": "l"}))
            .await
            .unwrap();
        let items = out["LayerVersions"].as_array().unwrap();
        assert_eq!(
            items
                .iter()
                .map(|i| i["Version"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            [3, 2, 1]
        );
        let keys: Vec<&str> = items[0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "LayerVersionArn",
                "Version",
                "Description",
                "CreatedDate",
                "CompatibleRuntimes",
                "LicenseInfo"
            ]
        );
        let out = run(
            l,
            "ListLayerVersions",
            json!({"LayerName": "l", "CompatibleRuntime": "python3.12", "MaxItems": 1}),
        )
        .await
        .unwrap();
        assert_eq!(out["LayerVersions"][0]["Version"], 3);
        let marker = out["NextMarker"].as_str().unwrap().to_string();
        let out = run(
            l,
            "ListLayerVersions",
            json!({"LayerName": "l", "CompatibleRuntime": "python3.12", "MaxItems": 1, "Marker": marker}),
        ).await
        .unwrap();
        assert_eq!(out["LayerVersions"][0]["Version"], 1);
        assert!(out.get("NextMarker").is_none());
        let out = run(l, "ListLayerVersions", json!({"LayerName": "doesnotexist"}))
            .await
            .unwrap();
        assert_eq!(out, json!({"LayerVersions": []}));
    }

    #[tokio::test]
    async fn policy_lifecycle_matches_aws() {
        let fx = fixture();
        let l = &*fx.cp;
        publish(l, "l", json!({})).await;
        let get = async || {
            run(
                l,
                "GetLayerVersionPolicy",
                json!({"LayerName": "l", "VersionNumber": 1}),
            )
            .await
        };
        assert_eq!(
            err(get().await),
            (
                ErrorCode::ResourceNotFoundException,
                "No policy is associated with the given resource.".into()
            )
        );
        let add = async |sid: &str, rev: Option<&str>| {
            let mut input = json!({"LayerName": "l", "VersionNumber": 1, "StatementId": sid,
                                   "Action": "lambda:GetLayerVersion", "Principal": "*"});
            if let Some(r) = rev {
                input["RevisionId"] = r.into();
            }
            run(l, "AddLayerVersionPermission", input).await
        };
        let s1 = add("s1", None).await.unwrap();
        assert_eq!(
            s1["Statement"],
            r#"{"Sid":"s1","Effect":"Allow","Principal":"*","Action":"lambda:GetLayerVersion","Resource":"arn:aws:lambda:us-east-1:111111111111:layer:l:1"}"#
        );
        let policy = get().await.unwrap();
        assert_eq!(policy["RevisionId"], s1["RevisionId"]);
        assert_eq!(
            policy["Policy"],
            r#"{"Version":"2012-10-17","Id":"default","Statement":[{"Sid":"s1","Effect":"Allow","Principal":"*","Action":"lambda:GetLayerVersion","Resource":"arn:aws:lambda:us-east-1:111111111111:layer:l:1"}]}"#
        );
        assert_eq!(
            err(add("s1", None).await),
            (
                ErrorCode::ResourceConflictException,
                "The statement id (s1) provided already exists. Please provide a new statement id, \
                 or remove the existing statement."
                    .into()
            )
        );
        let stale = (
            ErrorCode::PreconditionFailedException,
            "The Revision Id provided does not match the latest Revision Id. Call the GetLayerPolicy \
             API to retrieve the latest Revision Id"
                .to_string(),
        );
        assert_eq!(err(add("s2", Some("wrong")).await), stale);
        let s2 = add("s2", policy["RevisionId"].as_str()).await.unwrap();
        assert_ne!(s2["RevisionId"], s1["RevisionId"]);
        let remove = async |sid: &str, rev: Option<&str>| {
            let mut input = json!({"LayerName": "l", "VersionNumber": 1, "StatementId": sid});
            if let Some(r) = rev {
                input["RevisionId"] = r.into();
            }
            run(l, "RemoveLayerVersionPermission", input).await
        };
        assert_eq!(err(remove("s1", Some("wrong")).await), stale);
        assert_eq!(
            err(remove("doesnotexist", None).await),
            (
                ErrorCode::ResourceNotFoundException,
                "Statement doesnotexist is not found in resource policy.".into()
            )
        );
        assert_eq!(
            remove("s2", s2["RevisionId"].as_str()).await.unwrap(),
            json!({})
        );
        let after = get().await.unwrap();
        assert_ne!(after["RevisionId"], s2["RevisionId"]);
        let doc: Value = serde_json::from_str(after["Policy"].as_str().unwrap()).unwrap();
        assert_eq!(doc["Statement"].as_array().unwrap().len(), 1);
        remove("s1", None).await.unwrap();
        assert_eq!(
            err(get().await).1,
            "No policy is associated with the given resource."
        );
    }

    #[tokio::test]
    async fn policy_operations_on_missing_versions_name_the_version_arn() {
        let fx = fixture();
        let l = &*fx.cp;
        publish(l, "l", json!({})).await;
        for (name, v) in [("l-doesnotexist", 1), ("l", 2)] {
            let want = (
                ErrorCode::ResourceNotFoundException,
                format!("Layer version arn:aws:lambda:us-east-1:111111111111:layer:{name}:{v} does not exist."),
            );
            let r = run(
                l,
                "AddLayerVersionPermission",
                json!({"LayerName": name, "VersionNumber": v, "StatementId": "s",
                       "Action": "lambda:GetLayerVersion", "Principal": "*"}),
            )
            .await;
            assert_eq!(err(r), want);
            let r = run(
                l,
                "GetLayerVersionPolicy",
                json!({"LayerName": name, "VersionNumber": v}),
            )
            .await;
            assert_eq!(err(r), want);
            let r = run(
                l,
                "RemoveLayerVersionPermission",
                json!({"LayerName": name, "VersionNumber": v, "StatementId": "s"}),
            )
            .await;
            assert_eq!(err(r), want);
        }
    }

    #[tokio::test]
    async fn account_principals_and_organizations_become_aws_statements() {
        let fx = fixture();
        let l = &*fx.cp;
        publish(l, "l", json!({})).await;
        let out = run(
            l,
            "AddLayerVersionPermission",
            json!({"LayerName": "l", "VersionNumber": 1, "StatementId": "acct",
                   "Action": "lambda:GetLayerVersion", "Principal": "222222222222",
                   "OrganizationId": "o-abcdefghij"}),
        )
        .await
        .unwrap();
        let st: Value = serde_json::from_str(out["Statement"].as_str().unwrap()).unwrap();
        assert_eq!(
            st["Principal"],
            json!({"AWS": "arn:aws:iam::222222222222:root"})
        );
        assert_eq!(
            st["Condition"],
            json!({"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}})
        );
    }

    #[tokio::test]
    async fn other_accounts_use_a_layer_only_with_permission() {
        let fx = fixture();
        let l = &*fx.cp;
        publish(l, "shared", json!({})).await;
        let other = Scope {
            account: "222222222222".into(),
            region: REGION.into(),
        };
        let arn = "arn:aws:lambda:us-east-1:111111111111:layer:shared:1".to_string();
        let e = l
            .layers
            .resolve_for_function(&other, std::slice::from_ref(&arn))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::AccessDeniedException);
        assert_eq!(
            e.message,
            format!(
                "User: arn:aws:iam::222222222222:root is not authorized to perform: \
                 lambda:GetLayerVersion on resource: {arn} because no resource-based policy \
                 allows the lambda:GetLayerVersion action"
            )
        );
        let get = l
            .execute(&other, "GetLayerVersionByArn", json!({"Arn": arn}))
            .await;
        assert_eq!(get.unwrap_err().code, ErrorCode::AccessDeniedException);
        // Nor does a version that does not exist say so to another account.
        let missing = l
            .execute(
                &other,
                "GetLayerVersion",
                json!({"LayerName": "arn:aws:lambda:us-east-1:111111111111:layer:shared", "VersionNumber": 9}),
            )
            .await;
        assert_eq!(missing.unwrap_err().code, ErrorCode::AccessDeniedException);
        // An organisation-scoped grant admits no direct caller (Flint has no organisations).
        run(
            l,
            "AddLayerVersionPermission",
            json!({"LayerName": "shared", "VersionNumber": 1, "StatementId": "org",
                   "Action": "lambda:GetLayerVersion", "Principal": "*",
                   "OrganizationId": "o-abcdefghij"}),
        )
        .await
        .unwrap();
        let get = l
            .execute(&other, "GetLayerVersionByArn", json!({"Arn": arn}))
            .await;
        assert_eq!(get.unwrap_err().code, ErrorCode::AccessDeniedException);
        // The other account cannot change it either.
        let del = l
            .execute(
                &other,
                "DeleteLayerVersion",
                json!({"LayerName": "arn:aws:lambda:us-east-1:111111111111:layer:shared", "VersionNumber": 1}),
            )
            .await;
        assert_eq!(del.unwrap_err().code, ErrorCode::AccessDeniedException);
        run(
            l,
            "AddLayerVersionPermission",
            json!({"LayerName": "shared", "VersionNumber": 1, "StatementId": "s",
                   "Action": "lambda:GetLayerVersion", "Principal": "222222222222"}),
        )
        .await
        .unwrap();
        assert_eq!(
            l.layers
                .resolve_for_function(&other, std::slice::from_ref(&arn))
                .unwrap()
                .len(),
            1
        );
        let get = l
            .execute(&other, "GetLayerVersionByArn", json!({"Arn": arn}))
            .await;
        assert_eq!(get.unwrap()["Version"], 1);
    }

    #[tokio::test]
    async fn resolve_for_function_checks_as_aws_does() {
        let fx = fixture();
        let l = &*fx.cp;
        let mut arns = Vec::new();
        for n in 1..=6 {
            arns.push(
                publish(l, &format!("l{n}"), json!({})).await["LayerVersionArn"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        let v2 = publish(l, "l1", json!({})).await["LayerVersionArn"]
            .as_str()
            .unwrap()
            .to_string();
        let e = l.layers.resolve_for_function(&scope(), &arns).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                ErrorCode::InvalidParameterValueException,
                "Cannot reference more than 5 layers."
            )
        );
        let e = l
            .layers
            .resolve_for_function(&scope(), &[arns[0].clone(), v2.clone()])
            .unwrap_err();
        assert_eq!(
            e.message,
            "Two different versions of the same layer are not allowed to be referenced in the same \
             function. arn:aws:lambda:us-east-1:111111111111:layer:l1:1 and \
             arn:aws:lambda:us-east-1:111111111111:layer:l1:2 are versions of the same layer."
        );
        let e = l
            .layers
            .resolve_for_function(&scope(), &[arns[0].clone(), arns[0].clone()])
            .unwrap_err();
        assert!(e
            .message
            .contains("layer:l1:1 and arn:aws:lambda:us-east-1:111111111111:layer:l1:1 are"));
        for missing in [
            "arn:aws:lambda:us-east-1:111111111111:layer:doesnotexist:1",
            "arn:aws:lambda:us-east-1:111111111111:layer:l1:9",
        ] {
            let e = l
                .layers
                .resolve_for_function(&scope(), &[missing.to_string()])
                .unwrap_err();
            assert_eq!(
                (e.code, e.message),
                (
                    ErrorCode::InvalidParameterValueException,
                    format!("Layer version {missing} does not exist.")
                )
            );
        }
        let e = l
            .layers
            .resolve_for_function(
                &scope(),
                &["arn:aws:lambda:eu-west-1:111111111111:layer:l1:1".into()],
            )
            .unwrap_err();
        assert_eq!(
            e.message,
            "Layers are not in the same region as the function. Layers are expected to be in region us-east-1."
        );
        let ok = l
            .layers
            .resolve_for_function(&scope(), &[v2.clone(), arns[1].clone()])
            .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].arn, v2);
        assert_eq!(ok[0].code_size, zip().len() as u64);
        assert!(ok[0].unpacked_dir.join("bin/tool").is_file());
        // A deleted version stays usable by digest for functions that already reference it.
        run(
            l,
            "DeleteLayerVersion",
            json!({"LayerName": "l1", "VersionNumber": 2}),
        )
        .await
        .unwrap();
        assert!(l
            .layers
            .resolve_for_function(&scope(), std::slice::from_ref(&v2))
            .is_err());
        assert!(l.layers.unpacked_dir(&ok[0].sha256_hex).unwrap().is_dir());
    }

    #[tokio::test]
    async fn layers_survive_reopening_the_store() {
        let fx = fixture();
        {
            let l = &*fx.cp;
            publish(l, "l", json!({"Description": "kept"})).await;
            publish(l, "l", json!({})).await;
            run(
                l,
                "AddLayerVersionPermission",
                json!({"LayerName": "l", "VersionNumber": 1, "StatementId": "s1",
                       "Action": "lambda:GetLayerVersion", "Principal": "*"}),
            )
            .await
            .unwrap();
            run(
                l,
                "DeleteLayerVersion",
                json!({"LayerName": "l", "VersionNumber": 2}),
            )
            .await
            .unwrap();
        }
        let reopened = reopen(&fx);
        let l = &*reopened;
        let v1 = run(
            l,
            "GetLayerVersion",
            json!({"LayerName": "l", "VersionNumber": 1}),
        )
        .await
        .unwrap();
        assert_eq!(v1["Description"], "kept");
        let policy = run(
            l,
            "GetLayerVersionPolicy",
            json!({"LayerName": "l", "VersionNumber": 1}),
        )
        .await;
        assert!(policy.unwrap()["Policy"]
            .as_str()
            .unwrap()
            .contains("\"Sid\":\"s1\""));
        assert_eq!(publish(l, "l", json!({})).await["Version"], 3);
    }
}
