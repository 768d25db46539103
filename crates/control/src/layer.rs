//! Lambda layers: published versions (numbered 1, 2, … per layer name, numbers never reused), their
//! zips stored once by SHA-256 and unpacked under `data_dir/layers/`, their resource policies, and
//! what functions need from them ([`Layers::resolve_for_function`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flint_store::{DocKey, Store, StoreError};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::code::{decode_zip_file, CodeStore, StoredCode};
use crate::error::ErrorCode;
use crate::resource_util::{iso_timestamp, list_page, opt_i64, opt_str, opt_str_list, store_error};
use crate::{LambdaError, Scope};

/// Store kind of a layer document (all versions of one layer name, and its version counter).
const KIND: &str = "layer";
/// Lambda's quota on layers per function.
pub const MAX_LAYERS_PER_FUNCTION: usize = 5;
const DEFAULT_LIST_ITEMS: usize = 50;
const MAX_LIST_ITEMS: usize = 50;

const RESOURCE_NOT_FOUND: &str = "The resource you requested does not exist.";
const VERSION_BELOW_ONE: &str = "Layer Version Cannot be less than 1";
const UNZIP_FAILED: &str =
    "Could not unzip uploaded file. Please check your file, then try to upload again.";
const NO_POLICY: &str = "No policy is associated with the given resource.";
const STALE_POLICY_REVISION: &str =
    "The Revision Id provided does not match the latest Revision Id. \
     Call the GetLayerPolicy API to retrieve the latest Revision Id";

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
    fn list_item(&self, layer_arn: &str) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert(
            "LayerVersionArn".into(),
            format!("{layer_arn}:{}", self.version).into(),
        );
        m.insert("Version".into(), self.version.into());
        m.insert("Description".into(), self.description.clone().into());
        m.insert("CreatedDate".into(), self.created_date.clone().into());
        if let Some(r) = &self.compatible_runtimes {
            m.insert("CompatibleRuntimes".into(), json!(r));
        }
        if let Some(l) = &self.license_info {
            m.insert("LicenseInfo".into(), l.clone().into());
        }
        if let Some(a) = &self.compatible_architectures {
            m.insert("CompatibleArchitectures".into(), json!(a));
        }
        m
    }

    fn may_be_used_by(&self, owner_account: &str, caller_account: &str) -> bool {
        if owner_account == caller_account {
            return true;
        }
        let root = format!("arn:aws:iam::{caller_account}:root");
        self.policy.as_ref().is_some_and(|p| {
            p.statements.iter().any(|s| match &s["Principal"] {
                Value::String(p) => p == "*",
                other => other["AWS"].as_str() == Some(root.as_str()),
            })
        })
    }
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
    code: CodeStore,
    layers: RwLock<HashMap<LayerKey, LayerDoc>>,
    base_url: RwLock<String>,
}

impl Layers {
    /// Loads every layer from the store; layer content lives under `data_dir/layers/`.
    pub fn open(store: Arc<Store>, data_dir: &Path) -> Result<Self, StoreError> {
        let code = CodeStore::open_layers(&flint_store::Layout::new(data_dir), store.clone())?;
        let mut layers = HashMap::new();
        for doc in store.list_all(KIND)? {
            match serde_json::from_str::<LayerDoc>(&doc.value) {
                Ok(d) => {
                    layers.insert((doc.account, doc.region, doc.key), d);
                }
                Err(e) => tracing::warn!(layer = %doc.key, "unreadable layer document: {e}"),
            }
        }
        Ok(Self {
            store,
            code,
            layers: RwLock::new(layers),
            base_url: RwLock::new("http://127.0.0.1:9000".into()),
        })
    }

    /// The public address of the api (for `Content.Location`), without a trailing slash.
    pub fn set_base_url(&self, url: &str) {
        *self.base_url.write() = url.trim_end_matches('/').to_string();
    }

    /// The stored zip of a layer's content (what `Content.Location` serves), if it exists.
    pub fn blob_path(&self, sha256_hex: &str) -> Option<PathBuf> {
        self.code.blob_path(sha256_hex)
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
        let does_not_exist =
            |arn: &str| LambdaError::invalid(format!("Layer version {arn} does not exist."));
        let mut parsed = Vec::with_capacity(layer_version_arns.len());
        for arn in layer_version_arns {
            // `arn:aws:lambda:::awslayer:NAME` (AWS-managed layers) do not exist here.
            let Some(r) = LayerVersionRef::parse(arn) else {
                return Err(does_not_exist(arn));
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
                    _ => return Err(does_not_exist(arn)),
                }
            };
            let unpacked_dir = self.code.ensure_unpacked(&code.sha256_hex)?;
            out.push(ResolvedLayer {
                arn: arn.clone(),
                code_size: code.size,
                unzipped_size: code.unzipped_size,
                sha256_hex: code.sha256_hex,
                unpacked_dir,
            });
        }
        Ok(out)
    }

    /// Runs one of the layer operations; `None` if `operation` is not one of them.
    /// `PublishLayerVersion` unzips and writes to disk: call this off the async workers.
    pub fn execute(
        &self,
        scope: &Scope,
        operation: &str,
        input: &Value,
    ) -> Option<Result<Value, LambdaError>> {
        Some(match operation {
            "PublishLayerVersion" => self.publish(scope, input),
            "GetLayerVersion" => self.get_version(scope, input),
            "GetLayerVersionByArn" => self.get_version_by_arn(scope, input),
            "ListLayers" => self.list_layers(scope, input),
            "ListLayerVersions" => self.list_versions(scope, input),
            "DeleteLayerVersion" => self.delete_version(scope, input),
            "AddLayerVersionPermission" => self.add_permission(scope, input),
            "RemoveLayerVersionPermission" => self.remove_permission(scope, input),
            "GetLayerVersionPolicy" => self.get_policy(scope, input),
            _ => return None,
        })
    }

    fn publish(&self, scope: &Scope, input: &Value) -> Result<Value, LambdaError> {
        let (owner, name) = target(scope, input, "lambda:PublishLayerVersion")?;
        let content = input.get("Content").unwrap_or(&Value::Null);
        let zip = match opt_str(content, "ZipFile") {
            Some(b64) => decode_zip_file(b64)?,
            // Flint has no S3, so the bucket never exists (as the functions module says).
            None if content.get("S3Bucket").is_some() => return Err(s3_content_error()),
            None => return Err(LambdaError::invalid(UNZIP_FAILED)),
        };
        // Unzipping is the slow part: do it before taking the lock.
        let code = self.code.ingest(&zip)?;
        let mut layers = self.layers.write();
        let k = key(&owner, &name);
        let mut doc = layers.get(&k).cloned().unwrap_or(LayerDoc {
            last_version: 0,
            versions: BTreeMap::new(),
        });
        let version = doc.last_version + 1;
        let lv = LayerVersion {
            version,
            description: opt_str(input, "Description")
                .unwrap_or_default()
                .to_string(),
            created_date: iso_timestamp(chrono::Utc::now()),
            compatible_runtimes: opt_str_list(input, "CompatibleRuntimes"),
            compatible_architectures: opt_str_list(input, "CompatibleArchitectures"),
            license_info: opt_str(input, "LicenseInfo").map(str::to_string),
            code,
            policy: None,
        };
        doc.last_version = version;
        doc.versions.insert(version, lv.clone());
        self.persist(&owner, &name, &doc)?;
        layers.insert(k, doc);
        Ok(self.version_output(&owner, &name, &lv))
    }

    fn get_version(&self, scope: &Scope, input: &Value) -> Result<Value, LambdaError> {
        let (owner, name) = layer_of(scope, opt_str(input, "LayerName").unwrap_or_default());
        let version = version_number(input)?;
        self.read_version(scope, &owner, &name, version)
    }

    fn get_version_by_arn(&self, scope: &Scope, input: &Value) -> Result<Value, LambdaError> {
        let arn = opt_str(input, "Arn").unwrap_or_default();
        let r = LayerVersionRef::parse(arn)
            .ok_or_else(|| LambdaError::not_found(RESOURCE_NOT_FOUND))?;
        if r.version < 1 {
            return Err(LambdaError::invalid(VERSION_BELOW_ONE));
        }
        self.read_version(scope, &r.scope, &r.name, r.version as u64)
    }

    fn read_version(
        &self,
        caller: &Scope,
        owner: &Scope,
        name: &str,
        version: u64,
    ) -> Result<Value, LambdaError> {
        let layers = self.layers.read();
        let lv = layers
            .get(&key(owner, name))
            .and_then(|d| d.versions.get(&version))
            .filter(|v| v.may_be_used_by(&owner.account, &caller.account))
            .ok_or_else(|| LambdaError::not_found(RESOURCE_NOT_FOUND))?;
        Ok(self.version_output(owner, name, lv))
    }

    fn list_layers(&self, scope: &Scope, input: &Value) -> Result<Value, LambdaError> {
        let runtime = opt_str(input, "CompatibleRuntime");
        let arch = opt_str(input, "CompatibleArchitecture");
        let layers = self.layers.read();
        let found: Vec<(String, Value)> = layers
            .iter()
            .filter(|((a, r, _), _)| *a == scope.account && *r == scope.region)
            .filter_map(|((_, _, name), doc)| {
                let latest = doc
                    .versions
                    .values()
                    .rev()
                    .find(|v| v.matches(runtime, arch))?;
                let layer_arn = layer_arn(scope, name);
                let item = json!({
                    "LayerName": name,
                    "LayerArn": layer_arn,
                    "LatestMatchingVersion": latest.list_item(&layer_arn),
                });
                Some((name.clone(), item))
            })
            .collect();
        Ok(list_page(
            "Layers",
            found,
            input,
            (DEFAULT_LIST_ITEMS, MAX_LIST_ITEMS),
        ))
    }

    fn list_versions(&self, scope: &Scope, input: &Value) -> Result<Value, LambdaError> {
        let (owner, name) = layer_of(scope, opt_str(input, "LayerName").unwrap_or_default());
        let runtime = opt_str(input, "CompatibleRuntime");
        let arch = opt_str(input, "CompatibleArchitecture");
        let layer_arn = layer_arn(&owner, &name);
        let layers = self.layers.read();
        // Newest first; the marker key sorts that way.
        let found: Vec<(String, Value)> = layers
            .get(&key(&owner, &name))
            .map(|d| {
                d.versions
                    .values()
                    .rev()
                    .filter(|v| v.matches(runtime, arch))
                    .filter(|v| v.may_be_used_by(&owner.account, &scope.account))
                    // Newest first: the key counts down.
                    .map(|v| {
                        let key = format!("{:020}", u64::MAX - v.version);
                        (key, Value::Object(v.list_item(&layer_arn)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(list_page(
            "LayerVersions",
            found,
            input,
            (DEFAULT_LIST_ITEMS, MAX_LIST_ITEMS),
        ))
    }

    fn delete_version(&self, scope: &Scope, input: &Value) -> Result<Value, LambdaError> {
        let (owner, name) = target(scope, input, "lambda:DeleteLayerVersion")?;
        let version = version_number(input)?;
        let mut layers = self.layers.write();
        let k = key(&owner, &name);
        if let Some(doc) = layers.get(&k) {
            if doc.versions.contains_key(&version) {
                let mut doc = doc.clone();
                doc.versions.remove(&version);
                // The document stays (with its counter) so that version numbers are not reused.
                // The content stays too: functions that use this version keep working.
                self.persist(&owner, &name, &doc)?;
                layers.insert(k, doc);
            }
        }
        Ok(json!({}))
    }

    fn add_permission(&self, scope: &Scope, input: &Value) -> Result<Value, LambdaError> {
        let (owner, name) = target(scope, input, "lambda:AddLayerVersionPermission")?;
        let version = version_number(input)?;
        let sid = opt_str(input, "StatementId").unwrap_or_default();
        let principal = match opt_str(input, "Principal").unwrap_or_default() {
            "*" => json!("*"),
            p if p.len() == 12 && p.bytes().all(|b| b.is_ascii_digit()) => {
                json!({ "AWS": format!("arn:aws:iam::{p}:root") })
            }
            p => json!({ "AWS": p }),
        };
        let mut layers = self.layers.write();
        let k = key(&owner, &name);
        let mut doc = layers
            .get(&k)
            .cloned()
            .ok_or_else(|| version_missing(&owner, &name, version))?;
        let lv = doc
            .versions
            .get_mut(&version)
            .ok_or_else(|| version_missing(&owner, &name, version))?;
        check_revision(lv.policy.as_ref(), opt_str(input, "RevisionId"))?;
        let policy = lv.policy.get_or_insert_with(|| LayerPolicy {
            revision_id: String::new(),
            statements: Vec::new(),
        });
        if policy.statements.iter().any(|s| s["Sid"] == sid) {
            return Err(LambdaError::conflict(format!(
                "The statement id ({sid}) provided already exists. Please provide a new \
                 statement id, or remove the existing statement."
            )));
        }
        let mut statement = json!({
            "Sid": sid,
            "Effect": "Allow",
            "Principal": principal,
            "Action": opt_str(input, "Action").unwrap_or("lambda:GetLayerVersion"),
            "Resource": format!("{}:{version}", layer_arn(&owner, &name)),
        });
        if let Some(org) = opt_str(input, "OrganizationId") {
            statement["Condition"] = json!({ "StringEquals": { "aws:PrincipalOrgID": org } });
        }
        policy.statements.push(statement.clone());
        policy.revision_id = uuid::Uuid::new_v4().to_string();
        let revision_id = policy.revision_id.clone();
        self.persist(&owner, &name, &doc)?;
        layers.insert(k, doc);
        Ok(json!({ "Statement": statement.to_string(), "RevisionId": revision_id }))
    }

    fn remove_permission(&self, scope: &Scope, input: &Value) -> Result<Value, LambdaError> {
        let (owner, name) = target(scope, input, "lambda:RemoveLayerVersionPermission")?;
        let version = version_number(input)?;
        let sid = opt_str(input, "StatementId").unwrap_or_default();
        let mut layers = self.layers.write();
        let k = key(&owner, &name);
        let mut doc = layers
            .get(&k)
            .cloned()
            .ok_or_else(|| version_missing(&owner, &name, version))?;
        let lv = doc
            .versions
            .get_mut(&version)
            .ok_or_else(|| version_missing(&owner, &name, version))?;
        check_revision(lv.policy.as_ref(), opt_str(input, "RevisionId"))?;
        let not_found =
            || LambdaError::not_found(format!("Statement {sid} is not found in resource policy."));
        let policy = lv.policy.as_mut().ok_or_else(not_found)?;
        let before = policy.statements.len();
        policy.statements.retain(|s| s["Sid"] != sid);
        if policy.statements.len() == before {
            return Err(not_found());
        }
        if policy.statements.is_empty() {
            lv.policy = None;
        } else {
            policy.revision_id = uuid::Uuid::new_v4().to_string();
        }
        self.persist(&owner, &name, &doc)?;
        layers.insert(k, doc);
        Ok(json!({}))
    }

    fn get_policy(&self, scope: &Scope, input: &Value) -> Result<Value, LambdaError> {
        let (owner, name) = layer_of(scope, opt_str(input, "LayerName").unwrap_or_default());
        let version = version_number(input)?;
        let layers = self.layers.read();
        let lv = layers
            .get(&key(&owner, &name))
            .and_then(|d| d.versions.get(&version))
            .ok_or_else(|| version_missing(&owner, &name, version))?;
        let policy = lv
            .policy
            .as_ref()
            .ok_or_else(|| LambdaError::not_found(NO_POLICY))?;
        let document = json!({
            "Version": "2012-10-17",
            "Id": "default",
            "Statement": policy.statements,
        });
        Ok(json!({ "Policy": document.to_string(), "RevisionId": policy.revision_id }))
    }

    fn version_output(&self, owner: &Scope, name: &str, lv: &LayerVersion) -> Value {
        let layer_arn = layer_arn(owner, name);
        let mut m = serde_json::Map::new();
        m.insert(
            "Content".into(),
            json!({
                "Location": format!("{}/_flint/layers/{}", self.base_url.read(), lv.code.sha256_hex),
                "CodeSha256": lv.code.sha256_base64(),
                "CodeSize": lv.code.size,
            }),
        );
        m.insert("LayerArn".into(), layer_arn.clone().into());
        m.extend(lv.list_item(&layer_arn));
        Value::Object(m)
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

fn layer_arn(scope: &Scope, name: &str) -> String {
    format!(
        "arn:aws:lambda:{}:{}:layer:{name}",
        scope.region, scope.account
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
fn target(scope: &Scope, input: &Value, action: &str) -> Result<(Scope, String), LambdaError> {
    let (owner, name) = layer_of(scope, opt_str(input, "LayerName").unwrap_or_default());
    if owner != *scope {
        return Err(LambdaError::new(
            ErrorCode::AccessDeniedException,
            format!(
                "User: arn:aws:iam::{}:root is not authorized to perform: {action} on resource: {}",
                scope.account,
                layer_arn(&owner, &name)
            ),
        ));
    }
    Ok((owner, name))
}

fn s3_content_error() -> LambdaError {
    LambdaError::invalid(
        "Error occurred while GetObject. S3 Error Code: NoSuchBucket. S3 Error Message: The \
         specified bucket does not exist",
    )
}

fn version_number(input: &Value) -> Result<u64, LambdaError> {
    match opt_i64(input, "VersionNumber") {
        Some(v) if v >= 1 => Ok(v as u64),
        _ => Err(LambdaError::invalid(VERSION_BELOW_ONE)),
    }
}

fn version_missing(owner: &Scope, name: &str, version: u64) -> LambdaError {
    LambdaError::not_found(format!(
        "Layer version {}:{version} does not exist.",
        layer_arn(owner, name)
    ))
}

fn check_revision(policy: Option<&LayerPolicy>, given: Option<&str>) -> Result<(), LambdaError> {
    match given {
        Some(r) if policy.is_none_or(|p| p.revision_id != r) => {
            Err(LambdaError::precondition(STALE_POLICY_REVISION))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::test_zip;
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

    fn open(dir: &Path) -> Layers {
        let store = Arc::new(Store::open(dir).unwrap());
        Layers::open(store, dir).unwrap()
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

    fn run(l: &Layers, op: &str, input: Value) -> Result<Value, LambdaError> {
        l.execute(&scope(), op, &input).expect("a layer operation")
    }

    fn publish(l: &Layers, name: &str, extra: Value) -> Value {
        let mut input = json!({"LayerName": name, "Content": {"ZipFile": b64(&zip())}});
        if let (Value::Object(i), Value::Object(e)) = (&mut input, extra) {
            i.extend(e);
        }
        run(l, "PublishLayerVersion", input).unwrap()
    }

    fn err(r: Result<Value, LambdaError>) -> (ErrorCode, String) {
        let e = r.unwrap_err();
        (e.code, e.message)
    }

    #[test]
    fn publish_numbers_versions_and_describes_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let l = open(dir.path());
        l.set_base_url("http://127.0.0.1:9000/");
        let out = publish(
            &l,
            "mylayer",
            json!({"Description": "d", "LicenseInfo": "MIT",
                   "CompatibleRuntimes": ["python3.12"], "CompatibleArchitectures": ["x86_64"]}),
        );
        let hex_digest = hex::encode(Sha256::digest(zip()));
        assert_eq!(
            out,
            json!({
                "Content": {
                    "Location": format!("http://127.0.0.1:9000/_flint/layers/{hex_digest}"),
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
        let second = publish(&l, "mylayer", json!({}));
        assert_eq!(second["Version"], 2);
        // Not given: absent, not empty lists; Description defaults to "".
        assert!(second.get("CompatibleRuntimes").is_none());
        assert!(second.get("LicenseInfo").is_none());
        assert_eq!(second["Description"], "");
        let unpacked = l.unpacked_dir(&hex_digest).unwrap();
        assert_eq!(
            std::fs::read(unpacked.join("python/lib.py")).unwrap(),
            b"X = 1"
        );
        assert!(l.blob_path(&hex_digest).is_some());
        assert_eq!(l.total_code_size(&scope()), 2 * zip().len() as u64);
    }

    #[test]
    fn empty_compatibility_lists_are_kept_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let l = open(dir.path());
        let out = publish(
            &l,
            "e",
            json!({"CompatibleRuntimes": [], "CompatibleArchitectures": []}),
        );
        assert_eq!(out["CompatibleRuntimes"], json!([]));
        assert_eq!(out["CompatibleArchitectures"], json!([]));
    }

    #[test]
    fn bad_content_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let l = open(dir.path());
        let r = run(
            &l,
            "PublishLayerVersion",
            json!({"LayerName": "x", "Content": {"ZipFile": b64(b"not a zip")}}),
        );
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
            &l,
            "PublishLayerVersion",
            json!({"LayerName": "x", "Content": {"ZipFile": b64(&evil)}}),
        );
        assert_eq!(err(r).0, ErrorCode::InvalidParameterValueException);
        let r = run(
            &l,
            "PublishLayerVersion",
            json!({"LayerName": "x", "Content": {"S3Bucket": "b", "S3Key": "k"}}),
        );
        assert_eq!(
            err(r),
            (
                ErrorCode::InvalidParameterValueException,
                s3_content_error().message
            )
        );
        // Nothing was published.
        let out = run(&l, "ListLayerVersions", json!({"LayerName": "x"})).unwrap();
        assert_eq!(out, json!({"LayerVersions": []}));
    }

    #[test]
    fn get_errors_are_aws_messages() {
        let dir = tempfile::tempdir().unwrap();
        let l = open(dir.path());
        publish(&l, "l", json!({}));
        for v in [0, -1] {
            let r = run(
                &l,
                "GetLayerVersion",
                json!({"LayerName": "l", "VersionNumber": v}),
            );
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
            &l,
            "GetLayerVersion",
            json!({"LayerName": "l", "VersionNumber": 2}),
        );
        assert_eq!(err(r), missing);
        let r = run(
            &l,
            "GetLayerVersion",
            json!({"LayerName": "nope", "VersionNumber": 1}),
        );
        assert_eq!(err(r), missing);
        let r = run(
            &l,
            "GetLayerVersionByArn",
            json!({"Arn": "arn:aws:lambda:us-east-1:111111111111:layer:l:2"}),
        );
        assert_eq!(err(r), missing);
        let by_arn = run(
            &l,
            "GetLayerVersionByArn",
            json!({"Arn": "arn:aws:lambda:us-east-1:111111111111:layer:l:1"}),
        )
        .unwrap();
        let by_name = run(
            &l,
            "GetLayerVersion",
            json!({"LayerName": "arn:aws:lambda:us-east-1:111111111111:layer:l", "VersionNumber": 1}),
        )
        .unwrap();
        assert_eq!(by_arn, by_name);
        assert_eq!(by_arn["Version"], 1);
    }

    #[test]
    fn delete_is_idempotent_and_numbers_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let l = open(dir.path());
        publish(&l, "l", json!({}));
        publish(&l, "l", json!({}));
        let del = |n: i64| {
            run(
                &l,
                "DeleteLayerVersion",
                json!({"LayerName": "l", "VersionNumber": n}),
            )
        };
        assert_eq!(del(1).unwrap(), json!({}));
        assert_eq!(del(1).unwrap(), json!({}));
        assert_eq!(del(7).unwrap(), json!({}));
        assert_eq!(
            run(
                &l,
                "DeleteLayerVersion",
                json!({"LayerName": "nope", "VersionNumber": 1})
            )
            .unwrap(),
            json!({})
        );
        assert_eq!(err(del(-1)).1, "Layer Version Cannot be less than 1");
        del(2).unwrap();
        let out = run(&l, "ListLayerVersions", json!({"LayerName": "l"})).unwrap();
        assert_eq!(out, json!({"LayerVersions": []}));
        assert_eq!(publish(&l, "l", json!({}))["Version"], 3);
    }

    #[test]
    fn list_layers_shows_latest_matching_version() {
        let dir = tempfile::tempdir().unwrap();
        let l = open(dir.path());
        publish(
            &l,
            "b",
            json!({"CompatibleRuntimes": ["python3.12"], "CompatibleArchitectures": ["x86_64"]}),
        );
        publish(
            &l,
            "b",
            json!({"CompatibleRuntimes": ["nodejs20.x"], "CompatibleArchitectures": ["arm64"]}),
        );
        publish(&l, "a", json!({"CompatibleRuntimes": ["python3.12"]}));
        let out = run(&l, "ListLayers", json!({})).unwrap();
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

        let out = run(&l, "ListLayers", json!({"CompatibleRuntime": "python3.12"})).unwrap();
        let versions: Vec<_> = out["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["LatestMatchingVersion"]["Version"].clone())
            .collect();
        assert_eq!(versions, [json!(1), json!(1)]);
        let out = run(&l, "ListLayers", json!({"CompatibleArchitecture": "arm64"})).unwrap();
        assert_eq!(out["Layers"].as_array().unwrap().len(), 1);
        assert_eq!(out["Layers"][0]["LayerName"], "b");

        let page1 = run(&l, "ListLayers", json!({"MaxItems": 1})).unwrap();
        assert_eq!(page1["Layers"][0]["LayerName"], "a");
        let marker = page1["NextMarker"].as_str().unwrap().to_string();
        let page2 = run(&l, "ListLayers", json!({"MaxItems": 1, "Marker": marker})).unwrap();
        assert_eq!(page2["Layers"][0]["LayerName"], "b");
        assert!(page2.get("NextMarker").is_none());
    }

    #[test]
    fn list_layer_versions_is_newest_first_filtered_and_paged() {
        let dir = tempfile::tempdir().unwrap();
        let l = open(dir.path());
        for rt in ["python3.12", "nodejs20.x", "python3.12"] {
            publish(
                &l,
                "l",
                json!({"CompatibleRuntimes": [rt], "Description": "x", "LicenseInfo": "MIT"}),
            );
        }
        let out = run(&l, "ListLayerVersions", json!({"LayerName": "l"})).unwrap();
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
            &l,
            "ListLayerVersions",
            json!({"LayerName": "l", "CompatibleRuntime": "python3.12", "MaxItems": 1}),
        )
        .unwrap();
        assert_eq!(out["LayerVersions"][0]["Version"], 3);
        let marker = out["NextMarker"].as_str().unwrap().to_string();
        let out = run(
            &l,
            "ListLayerVersions",
            json!({"LayerName": "l", "CompatibleRuntime": "python3.12", "MaxItems": 1, "Marker": marker}),
        )
        .unwrap();
        assert_eq!(out["LayerVersions"][0]["Version"], 1);
        assert!(out.get("NextMarker").is_none());
        let out = run(
            &l,
            "ListLayerVersions",
            json!({"LayerName": "doesnotexist"}),
        )
        .unwrap();
        assert_eq!(out, json!({"LayerVersions": []}));
    }

    #[test]
    fn policy_lifecycle_matches_aws() {
        let dir = tempfile::tempdir().unwrap();
        let l = open(dir.path());
        publish(&l, "l", json!({}));
        let get = || {
            run(
                &l,
                "GetLayerVersionPolicy",
                json!({"LayerName": "l", "VersionNumber": 1}),
            )
        };
        assert_eq!(
            err(get()),
            (
                ErrorCode::ResourceNotFoundException,
                "No policy is associated with the given resource.".into()
            )
        );
        let add = |sid: &str, rev: Option<&str>| {
            let mut input = json!({"LayerName": "l", "VersionNumber": 1, "StatementId": sid,
                                   "Action": "lambda:GetLayerVersion", "Principal": "*"});
            if let Some(r) = rev {
                input["RevisionId"] = r.into();
            }
            run(&l, "AddLayerVersionPermission", input)
        };
        let s1 = add("s1", None).unwrap();
        assert_eq!(
            s1["Statement"],
            r#"{"Sid":"s1","Effect":"Allow","Principal":"*","Action":"lambda:GetLayerVersion","Resource":"arn:aws:lambda:us-east-1:111111111111:layer:l:1"}"#
        );
        let policy = get().unwrap();
        assert_eq!(policy["RevisionId"], s1["RevisionId"]);
        assert_eq!(
            policy["Policy"],
            r#"{"Version":"2012-10-17","Id":"default","Statement":[{"Sid":"s1","Effect":"Allow","Principal":"*","Action":"lambda:GetLayerVersion","Resource":"arn:aws:lambda:us-east-1:111111111111:layer:l:1"}]}"#
        );
        assert_eq!(
            err(add("s1", None)),
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
        assert_eq!(err(add("s2", Some("wrong"))), stale);
        let s2 = add("s2", policy["RevisionId"].as_str()).unwrap();
        assert_ne!(s2["RevisionId"], s1["RevisionId"]);
        let remove = |sid: &str, rev: Option<&str>| {
            let mut input = json!({"LayerName": "l", "VersionNumber": 1, "StatementId": sid});
            if let Some(r) = rev {
                input["RevisionId"] = r.into();
            }
            run(&l, "RemoveLayerVersionPermission", input)
        };
        assert_eq!(err(remove("s1", Some("wrong"))), stale);
        assert_eq!(
            err(remove("doesnotexist", None)),
            (
                ErrorCode::ResourceNotFoundException,
                "Statement doesnotexist is not found in resource policy.".into()
            )
        );
        assert_eq!(remove("s2", s2["RevisionId"].as_str()).unwrap(), json!({}));
        let after = get().unwrap();
        assert_ne!(after["RevisionId"], s2["RevisionId"]);
        let doc: Value = serde_json::from_str(after["Policy"].as_str().unwrap()).unwrap();
        assert_eq!(doc["Statement"].as_array().unwrap().len(), 1);
        remove("s1", None).unwrap();
        assert_eq!(
            err(get()).1,
            "No policy is associated with the given resource."
        );
    }

    #[test]
    fn policy_operations_on_missing_versions_name_the_version_arn() {
        let dir = tempfile::tempdir().unwrap();
        let l = open(dir.path());
        publish(&l, "l", json!({}));
        for (name, v) in [("l-doesnotexist", 1), ("l", 2)] {
            let want = (
                ErrorCode::ResourceNotFoundException,
                format!("Layer version arn:aws:lambda:us-east-1:111111111111:layer:{name}:{v} does not exist."),
            );
            let r = run(
                &l,
                "AddLayerVersionPermission",
                json!({"LayerName": name, "VersionNumber": v, "StatementId": "s",
                       "Action": "lambda:GetLayerVersion", "Principal": "*"}),
            );
            assert_eq!(err(r), want);
            let r = run(
                &l,
                "GetLayerVersionPolicy",
                json!({"LayerName": name, "VersionNumber": v}),
            );
            assert_eq!(err(r), want);
            let r = run(
                &l,
                "RemoveLayerVersionPermission",
                json!({"LayerName": name, "VersionNumber": v, "StatementId": "s"}),
            );
            assert_eq!(err(r), want);
        }
    }

    #[test]
    fn account_principals_and_organizations_become_aws_statements() {
        let dir = tempfile::tempdir().unwrap();
        let l = open(dir.path());
        publish(&l, "l", json!({}));
        let out = run(
            &l,
            "AddLayerVersionPermission",
            json!({"LayerName": "l", "VersionNumber": 1, "StatementId": "acct",
                   "Action": "lambda:GetLayerVersion", "Principal": "222222222222",
                   "OrganizationId": "o-abcdefghij"}),
        )
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

    #[test]
    fn other_accounts_use_a_layer_only_with_permission() {
        let dir = tempfile::tempdir().unwrap();
        let l = open(dir.path());
        publish(&l, "shared", json!({}));
        let other = Scope {
            account: "222222222222".into(),
            region: REGION.into(),
        };
        let arn = "arn:aws:lambda:us-east-1:111111111111:layer:shared:1".to_string();
        let e = l
            .resolve_for_function(&other, std::slice::from_ref(&arn))
            .unwrap_err();
        assert_eq!(e.message, format!("Layer version {arn} does not exist."));
        let get = l
            .execute(&other, "GetLayerVersionByArn", &json!({"Arn": arn}))
            .unwrap();
        assert_eq!(get.unwrap_err().code, ErrorCode::ResourceNotFoundException);
        // The other account cannot change it either.
        let del = l
            .execute(
                &other,
                "DeleteLayerVersion",
                &json!({"LayerName": "arn:aws:lambda:us-east-1:111111111111:layer:shared", "VersionNumber": 1}),
            )
            .unwrap();
        assert_eq!(del.unwrap_err().code, ErrorCode::AccessDeniedException);
        run(
            &l,
            "AddLayerVersionPermission",
            json!({"LayerName": "shared", "VersionNumber": 1, "StatementId": "s",
                   "Action": "lambda:GetLayerVersion", "Principal": "222222222222"}),
        )
        .unwrap();
        assert_eq!(
            l.resolve_for_function(&other, std::slice::from_ref(&arn))
                .unwrap()
                .len(),
            1
        );
        let get = l
            .execute(&other, "GetLayerVersionByArn", &json!({"Arn": arn}))
            .unwrap();
        assert_eq!(get.unwrap()["Version"], 1);
    }

    #[test]
    fn resolve_for_function_checks_as_aws_does() {
        let dir = tempfile::tempdir().unwrap();
        let l = open(dir.path());
        let mut arns = Vec::new();
        for n in 1..=6 {
            arns.push(
                publish(&l, &format!("l{n}"), json!({}))["LayerVersionArn"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        let v2 = publish(&l, "l1", json!({}))["LayerVersionArn"]
            .as_str()
            .unwrap()
            .to_string();
        let e = l.resolve_for_function(&scope(), &arns).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                ErrorCode::InvalidParameterValueException,
                "Cannot reference more than 5 layers."
            )
        );
        let e = l
            .resolve_for_function(&scope(), &[arns[0].clone(), v2.clone()])
            .unwrap_err();
        assert_eq!(
            e.message,
            "Two different versions of the same layer are not allowed to be referenced in the same \
             function. arn:aws:lambda:us-east-1:111111111111:layer:l1:1 and \
             arn:aws:lambda:us-east-1:111111111111:layer:l1:2 are versions of the same layer."
        );
        let e = l
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
            .resolve_for_function(&scope(), &[v2.clone(), arns[1].clone()])
            .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].arn, v2);
        assert_eq!(ok[0].code_size, zip().len() as u64);
        assert!(ok[0].unpacked_dir.join("bin/tool").is_file());
        // A deleted version stays usable by digest for functions that already reference it.
        run(
            &l,
            "DeleteLayerVersion",
            json!({"LayerName": "l1", "VersionNumber": 2}),
        )
        .unwrap();
        assert!(l
            .resolve_for_function(&scope(), std::slice::from_ref(&v2))
            .is_err());
        assert!(l.unpacked_dir(&ok[0].sha256_hex).unwrap().is_dir());
    }

    #[test]
    fn layers_survive_reopening_the_store() {
        let dir = tempfile::tempdir().unwrap();
        {
            let l = open(dir.path());
            publish(&l, "l", json!({"Description": "kept"}));
            publish(&l, "l", json!({}));
            run(
                &l,
                "AddLayerVersionPermission",
                json!({"LayerName": "l", "VersionNumber": 1, "StatementId": "s1",
                       "Action": "lambda:GetLayerVersion", "Principal": "*"}),
            )
            .unwrap();
            run(
                &l,
                "DeleteLayerVersion",
                json!({"LayerName": "l", "VersionNumber": 2}),
            )
            .unwrap();
        }
        let l = open(dir.path());
        let v1 = run(
            &l,
            "GetLayerVersion",
            json!({"LayerName": "l", "VersionNumber": 1}),
        )
        .unwrap();
        assert_eq!(v1["Description"], "kept");
        let policy = run(
            &l,
            "GetLayerVersionPolicy",
            json!({"LayerName": "l", "VersionNumber": 1}),
        );
        assert!(policy.unwrap()["Policy"]
            .as_str()
            .unwrap()
            .contains("\"Sid\":\"s1\""));
        assert_eq!(publish(&l, "l", json!({}))["Version"], 3);
    }

    #[test]
    fn unknown_operations_are_not_ours() {
        let dir = tempfile::tempdir().unwrap();
        let l = open(dir.path());
        assert!(l.execute(&scope(), "CreateFunction", &json!({})).is_none());
    }
}
