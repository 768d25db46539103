//! Code signing configurations: which signing profiles a function's code must be signed by and
//! what happens to untrusted code, plus which functions use which configuration (a function's
//! binding lives in its own document, `FunctionSettings::code_signing_config_arn`, so it changes
//! and vanishes with the function). Flint records and reports them; it does not verify
//! signatures (there is no AWS Signer to ask).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use flint_store::{Change, DocKey, Store, StoreError};
use parking_lot::RwLock;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::function_name;
use crate::resource_util::{iso_timestamp, list_page, store_error};
use crate::state::{FunctionDoc, KIND_FUNCTION};
use crate::tags::Empty;
use crate::{arn, ControlPlane, LambdaError, Scope};

const KIND: &str = "code-signing-config";
/// Where earlier releases kept which configuration each function uses (keyed by function name);
/// folded into the function documents at start-up by [`fold_legacy_bindings`].
const LEGACY_BINDING_KIND: &str = "function-code-signing-config";
const DEFAULT_LIST_ITEMS: usize = 50;
const MAX_LIST_ITEMS: usize = 10_000;

/// A configuration as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CodeSigningConfig {
    id: String,
    description: String,
    signing_profile_version_arns: Vec<String>,
    untrusted_artifact_on_deployment: String,
    last_modified: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

impl CodeSigningConfig {
    fn output(&self, scope: &Scope) -> CodeSigningConfigShape {
        CodeSigningConfigShape {
            code_signing_config_id: self.id.clone(),
            code_signing_config_arn: arn::code_signing_config_arn(scope, &self.id),
            description: self.description.clone(),
            allowed_publishers: AllowedPublishersShape {
                signing_profile_version_arns: self.signing_profile_version_arns.clone(),
            },
            code_signing_policies: CodeSigningPoliciesShape {
                untrusted_artifact_on_deployment: self.untrusted_artifact_on_deployment.clone(),
            },
            last_modified: self.last_modified.clone(),
        }
    }
}

/// A function's binding as earlier releases stored it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LegacyBinding {
    code_signing_config_arn: String,
}

/// Moves the bindings earlier releases stored as separate documents into the functions' own
/// documents, one transaction per function (the legacy document goes in the same one). Runs once
/// at start-up, before the functions are loaded; a binding of a function that no longer exists is
/// dropped, and one already present in the function's document wins.
pub fn fold_legacy_bindings(store: &Store) -> Result<(), StoreError> {
    for legacy in store.list_all(LEGACY_BINDING_KIND)? {
        let remove_legacy = Change::Delete {
            account: legacy.account.clone(),
            region: legacy.region.clone(),
            kind: LEGACY_BINDING_KIND.into(),
            key: legacy.key.clone(),
        };
        let binding = match serde_json::from_str::<LegacyBinding>(&legacy.value) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(function = %legacy.key, "unreadable code signing binding moved aside (table moved_aside): {e}");
                store.move_aside(&legacy, &e.to_string())?;
                continue;
            }
        };
        let function_key = DocKey {
            account: &legacy.account,
            region: &legacy.region,
            kind: KIND_FUNCTION,
            key: &legacy.key,
        };
        let mut changes = Vec::new();
        if let Some(value) = store.get(&function_key)? {
            let Ok(mut doc) = serde_json::from_str::<FunctionDoc>(&value) else {
                tracing::warn!(function = %legacy.key, "binding of an unreadable function left in place");
                continue;
            };
            if doc.settings.code_signing_config_arn.is_none() {
                doc.settings.code_signing_config_arn = Some(binding.code_signing_config_arn);
                let Ok(value) = serde_json::to_string(&doc) else {
                    continue;
                };
                changes.push(Change::Put {
                    account: legacy.account.clone(),
                    region: legacy.region.clone(),
                    kind: KIND_FUNCTION.into(),
                    key: legacy.key.clone(),
                    value,
                });
            }
        }
        changes.push(remove_legacy);
        store.apply(&changes)?;
    }
    Ok(())
}

/// (account, region, id).
type Key = (String, String, String);

/// All code signing configurations, in memory and durable in the store.
pub struct CodeSigningConfigs {
    store: Arc<Store>,
    configs: RwLock<HashMap<Key, CodeSigningConfig>>,
}

impl CodeSigningConfigs {
    pub fn open(store: Arc<Store>) -> Result<Self, StoreError> {
        let mut configs = HashMap::new();
        let format = flint_store::FORMAT_1;
        for doc in store.load::<CodeSigningConfig>(KIND, format, crate::state::upgrade_unchanged)? {
            configs.insert((doc.account, doc.region, doc.key), doc.value);
        }
        Ok(Self {
            store,
            configs: RwLock::new(configs),
        })
    }

    /// Checks that a configuration a function is to use exists: AWS's 404
    /// `CodeSigningConfigNotFoundException` if not (CreateFunction checks before any work).
    pub fn check_for_function(&self, scope: &Scope, csc_arn: &str) -> Result<(), LambdaError> {
        self.find(scope, csc_arn)
            .map(|_| ())
            .ok_or_else(|| LambdaError::code_signing_config_not_found_for_function(csc_arn))
    }

    fn find(&self, scope: &Scope, arn: &str) -> Option<CodeSigningConfig> {
        let id = own_id(scope, arn)?;
        self.configs.read().get(&key(scope, &id)).cloned()
    }

    /// Changes a configuration under the write lock; `edit` says whether it changed anything
    /// (then it is persisted). Returns the configuration as it is now.
    fn modify(
        &self,
        scope: &Scope,
        arn: &str,
        edit: impl FnOnce(&mut CodeSigningConfig) -> Result<bool, LambdaError>,
    ) -> Result<CodeSigningConfig, LambdaError> {
        let not_found = || LambdaError::code_signing_config_not_found(arn);
        let mut configs = self.configs.write();
        let id = own_id(scope, arn).ok_or_else(not_found)?;
        let mut c = configs
            .get(&key(scope, &id))
            .cloned()
            .ok_or_else(not_found)?;
        if edit(&mut c)? {
            self.persist(scope, &c)?;
        }
        configs.insert(key(scope, &id), c.clone());
        Ok(c)
    }

    fn persist(&self, scope: &Scope, c: &CodeSigningConfig) -> Result<(), LambdaError> {
        let value = serde_json::to_string(c).map_err(store_error)?;
        self.store
            .put(&doc_key(scope, &c.id), &value)
            .map_err(store_error)
    }
}

/// TagResource/UntagResource/ListTags reach these through the tags module.
impl crate::tags::ResourceTags for CodeSigningConfigs {
    /// The tags of a configuration (for ListTags), or 404 if there is no such configuration.
    fn tags(&self, scope: &Scope, arn: &str) -> Result<BTreeMap<String, String>, LambdaError> {
        self.find(scope, arn)
            .map(|c| c.tags)
            .ok_or_else(|| LambdaError::code_signing_config_not_found(arn))
    }

    /// Replaces a configuration's tags (TagResource/UntagResource compute the new set).
    fn set_tags(
        &self,
        scope: &Scope,
        arn: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<(), LambdaError> {
        self.modify(scope, arn, |c| {
            c.tags = tags;
            Ok(true)
        })
        .map(|_| ())
    }
}

fn key(scope: &Scope, k: &str) -> Key {
    (scope.account.clone(), scope.region.clone(), k.to_string())
}

fn doc_key<'a>(scope: &'a Scope, id: &'a str) -> DocKey<'a> {
    DocKey {
        account: &scope.account,
        region: &scope.region,
        kind: KIND,
        key: id,
    }
}

/// The id in `arn` if it is a configuration ARN of the caller's own (account, region).
fn own_id(scope: &Scope, arn: &str) -> Option<String> {
    arn.strip_prefix(&arn::code_signing_config_prefix(scope))
        .map(str::to_string)
}

/// `csc-` and 17 lowercase alphanumerics, as AWS's ids look.
fn new_id() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let tail: String = (0..17)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect();
    format!("csc-{tail}")
}

/// Names of the scope's functions bound to `arn`.
fn bound_functions(cp: &ControlPlane, scope: &Scope, arn: &str) -> Vec<String> {
    cp.index
        .list(scope)
        .iter()
        .filter(|f| f.doc.settings.code_signing_config_arn.as_deref() == Some(arn))
        .map(|f| f.name().to_string())
        .collect()
}

/// The unqualified function `FunctionName` designates, read as every function operation reads
/// it (another region's ARN is AWS's "not reachable in this region" 404, another account's a
/// 403), or AWS's 404 if it does not exist.
fn existing_function(
    cp: &ControlPlane,
    scope: &Scope,
    function_name: &str,
) -> Result<(String, Option<String>), LambdaError> {
    let f = function_name::resolve(scope, function_name, None)?;
    let function = cp
        .index
        .get(scope, &f.name)
        .ok_or_else(|| LambdaError::function_not_found(&f.unqualified_arn(scope)))?;
    Ok((
        f.name,
        function.doc.settings.code_signing_config_arn.clone(),
    ))
}

/// Binds a function to a configuration (or unbinds it) in the function's own document.
async fn set_binding(
    cp: &ControlPlane,
    scope: &Scope,
    name: &str,
    csc_arn: Option<String>,
) -> Result<(), LambdaError> {
    let not_found = || LambdaError::function_not_found(&arn::function_arn(scope, name));
    cp.index
        .modify(scope, name, not_found, |_, draft| {
            draft.doc.settings.code_signing_config_arn = csc_arn;
            Ok(())
        })
        .await?;
    Ok(())
}

// ---- Inputs and outputs, as the model names their members ----

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllowedPublishersInput {
    pub signing_profile_version_arns: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CodeSigningPoliciesInput {
    pub untrusted_artifact_on_deployment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateCodeSigningConfigInput {
    pub description: Option<String>,
    pub allowed_publishers: Option<AllowedPublishersInput>,
    pub code_signing_policies: Option<CodeSigningPoliciesInput>,
    pub tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateCodeSigningConfigInput {
    #[serde(default)]
    pub code_signing_config_arn: String,
    pub description: Option<String>,
    pub allowed_publishers: Option<AllowedPublishersInput>,
    pub code_signing_policies: Option<CodeSigningPoliciesInput>,
}

/// Get/Delete/ListFunctionsBy…: a configuration by ARN (the list also pages).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CodeSigningConfigArnInput {
    #[serde(default)]
    pub code_signing_config_arn: String,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListCodeSigningConfigsInput {
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutFunctionCodeSigningConfigInput {
    #[serde(default)]
    pub code_signing_config_arn: String,
    #[serde(default)]
    pub function_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionInput {
    #[serde(default)]
    pub function_name: String,
}

/// The model's `CodeSigningConfig` shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CodeSigningConfigShape {
    pub code_signing_config_id: String,
    pub code_signing_config_arn: String,
    pub description: String,
    pub allowed_publishers: AllowedPublishersShape,
    pub code_signing_policies: CodeSigningPoliciesShape,
    pub last_modified: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllowedPublishersShape {
    pub signing_profile_version_arns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CodeSigningPoliciesShape {
    pub untrusted_artifact_on_deployment: String,
}

/// Create/Get/UpdateCodeSigningConfig's answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CodeSigningConfigOutput {
    pub code_signing_config: CodeSigningConfigShape,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListCodeSigningConfigsOutput {
    pub code_signing_configs: Vec<CodeSigningConfigShape>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

/// Put/GetFunctionCodeSigningConfig's answer; AWS answers Get with neither member for a
/// function without a configuration.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionCodeSigningConfigOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_signing_config_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_name: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListFunctionsByCodeSigningConfigOutput {
    pub function_arns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

// ---- The operations ----

pub async fn create(
    cp: &ControlPlane,
    scope: &Scope,
    input: CreateCodeSigningConfigInput,
) -> Result<CodeSigningConfigOutput, LambdaError> {
    let c = CodeSigningConfig {
        id: new_id(),
        description: input.description.unwrap_or_default(),
        signing_profile_version_arns: input
            .allowed_publishers
            .and_then(|p| p.signing_profile_version_arns)
            .unwrap_or_default(),
        untrusted_artifact_on_deployment: input
            .code_signing_policies
            .and_then(|p| p.untrusted_artifact_on_deployment)
            .unwrap_or_else(|| "Warn".into()),
        last_modified: iso_timestamp(chrono::Utc::now()),
        tags: input.tags.unwrap_or_default(),
    };
    let configs = &cp.code_signing;
    let mut all = configs.configs.write();
    configs.persist(scope, &c)?;
    let out = c.output(scope);
    all.insert(key(scope, &c.id), c);
    Ok(CodeSigningConfigOutput {
        code_signing_config: out,
    })
}

pub async fn get(
    cp: &ControlPlane,
    scope: &Scope,
    input: CodeSigningConfigArnInput,
) -> Result<CodeSigningConfigOutput, LambdaError> {
    let arn = &input.code_signing_config_arn;
    let c = cp
        .code_signing
        .find(scope, arn)
        .ok_or_else(|| LambdaError::code_signing_config_not_found(arn))?;
    Ok(CodeSigningConfigOutput {
        code_signing_config: c.output(scope),
    })
}

pub async fn update(
    cp: &ControlPlane,
    scope: &Scope,
    input: UpdateCodeSigningConfigInput,
) -> Result<CodeSigningConfigOutput, LambdaError> {
    let c = cp
        .code_signing
        .modify(scope, &input.code_signing_config_arn, |c| {
            let old = c.clone();
            if let Some(d) = input.description {
                c.description = d;
            }
            if let Some(arns) = input
                .allowed_publishers
                .and_then(|p| p.signing_profile_version_arns)
            {
                c.signing_profile_version_arns = arns;
            }
            if let Some(p) = input
                .code_signing_policies
                .and_then(|p| p.untrusted_artifact_on_deployment)
            {
                c.untrusted_artifact_on_deployment = p;
            }
            let changed = c.description != old.description
                || c.signing_profile_version_arns != old.signing_profile_version_arns
                || c.untrusted_artifact_on_deployment != old.untrusted_artifact_on_deployment;
            if changed {
                c.last_modified = iso_timestamp(chrono::Utc::now());
            }
            Ok(changed)
        })?;
    Ok(CodeSigningConfigOutput {
        code_signing_config: c.output(scope),
    })
}

pub async fn delete(
    cp: &ControlPlane,
    scope: &Scope,
    input: CodeSigningConfigArnInput,
) -> Result<Empty, LambdaError> {
    let arn = &input.code_signing_config_arn;
    let not_found = || LambdaError::code_signing_config_not_found(arn);
    let configs = &cp.code_signing;
    let mut all = configs.configs.write();
    let id = own_id(scope, arn).ok_or_else(not_found)?;
    if !all.contains_key(&key(scope, &id)) {
        return Err(not_found());
    }
    if !bound_functions(cp, scope, arn).is_empty() {
        return Err(LambdaError::conflict(format!(
            "The code signing configuration {arn} cannot be deleted because it is used by \
             one or more functions."
        )));
    }
    configs
        .store
        .delete(&doc_key(scope, &id))
        .map_err(store_error)?;
    all.remove(&key(scope, &id));
    Ok(Empty {})
}

pub async fn list(
    cp: &ControlPlane,
    scope: &Scope,
    input: ListCodeSigningConfigsInput,
) -> Result<ListCodeSigningConfigsOutput, LambdaError> {
    let found = cp
        .code_signing
        .configs
        .read()
        .iter()
        .filter(|((a, r, _), _)| *a == scope.account && *r == scope.region)
        .map(|(_, c)| (c.id.clone(), c.output(scope)))
        .collect();
    let (code_signing_configs, next_marker) = list_page(
        found,
        input.marker.as_deref(),
        input.max_items,
        (DEFAULT_LIST_ITEMS, MAX_LIST_ITEMS),
    );
    Ok(ListCodeSigningConfigsOutput {
        code_signing_configs,
        next_marker,
    })
}

pub async fn put_function(
    cp: &ControlPlane,
    scope: &Scope,
    input: PutFunctionCodeSigningConfigInput,
) -> Result<FunctionCodeSigningConfigOutput, LambdaError> {
    let arn = input.code_signing_config_arn;
    cp.code_signing.check_for_function(scope, &arn)?;
    let (name, _) = existing_function(cp, scope, &input.function_name)?;
    set_binding(cp, scope, &name, Some(arn.clone())).await?;
    Ok(FunctionCodeSigningConfigOutput {
        code_signing_config_arn: Some(arn),
        function_name: Some(name),
    })
}

pub async fn get_function(
    cp: &ControlPlane,
    scope: &Scope,
    input: FunctionInput,
) -> Result<FunctionCodeSigningConfigOutput, LambdaError> {
    let (name, bound) = existing_function(cp, scope, &input.function_name)?;
    Ok(FunctionCodeSigningConfigOutput {
        function_name: bound.is_some().then_some(name),
        code_signing_config_arn: bound,
    })
}

pub async fn delete_function(
    cp: &ControlPlane,
    scope: &Scope,
    input: FunctionInput,
) -> Result<Empty, LambdaError> {
    let (name, bound) = existing_function(cp, scope, &input.function_name)?;
    if bound.is_some() {
        set_binding(cp, scope, &name, None).await?;
    }
    Ok(Empty {})
}

pub async fn list_functions(
    cp: &ControlPlane,
    scope: &Scope,
    input: CodeSigningConfigArnInput,
) -> Result<ListFunctionsByCodeSigningConfigOutput, LambdaError> {
    let arn = &input.code_signing_config_arn;
    cp.code_signing
        .find(scope, arn)
        .ok_or_else(|| LambdaError::code_signing_config_not_found(arn))?;
    let found = bound_functions(cp, scope, arn)
        .into_iter()
        .map(|n| {
            let function_arn = arn::function_arn(scope, &n);
            (n, function_arn)
        })
        .collect();
    let (function_arns, next_marker) = list_page(
        found,
        input.marker.as_deref(),
        input.max_items,
        (DEFAULT_LIST_ITEMS, MAX_LIST_ITEMS),
    );
    Ok(ListFunctionsByCodeSigningConfigOutput {
        function_arns,
        next_marker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::sub_resource::test_support::{
        create_function, exec, fixture, reopen, scope, Fixture,
    };
    use crate::tags::ResourceTags as _;
    use serde_json::{json, Value};

    const PREFIX: &str = "arn:aws:lambda:us-east-1:000000000000:";

    /// A control plane with one function, `fn1`.
    async fn open() -> Fixture {
        let fx = fixture();
        create_function(&fx.cp, "fn1").await;
        fx
    }

    async fn run(c: &ControlPlane, op: &str, input: Value) -> Result<Value, LambdaError> {
        exec(c, op, input).await
    }

    async fn create(c: &ControlPlane) -> String {
        let out = run(
            c,
            "CreateCodeSigningConfig",
            json!({"Description": "Testing CodeSigning Config",
                   "AllowedPublishers": {"SigningProfileVersionArns": ["arn:aws:signer:us-east-1:000000000000:/signing-profiles/test"]},
                   "CodeSigningPolicies": {"UntrustedArtifactOnDeployment": "Enforce"}}),
        )
        .await
        .unwrap();
        out["CodeSigningConfig"]["CodeSigningConfigArn"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn err(r: Result<Value, LambdaError>) -> (ErrorCode, String) {
        let e = r.unwrap_err();
        (e.code, e.message)
    }

    #[tokio::test]
    async fn create_describes_the_config_with_an_aws_shaped_id() {
        let fx = open().await;
        let c = &*fx.cp;
        let out = run(
            c,
            "CreateCodeSigningConfig",
            json!({"AllowedPublishers": {"SigningProfileVersionArns": ["arn:aws:signer:us-east-1:000000000000:/signing-profiles/p"]}}),
        ).await
        .unwrap();
        let csc = &out["CodeSigningConfig"];
        let id = csc["CodeSigningConfigId"].as_str().unwrap();
        assert_eq!(id.len(), 21);
        assert!(id.starts_with("csc-"));
        assert!(id[4..]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert_eq!(
            csc["CodeSigningConfigArn"],
            format!("{PREFIX}code-signing-config:{id}")
        );
        assert_eq!(
            csc["CodeSigningPolicies"],
            json!({"UntrustedArtifactOnDeployment": "Warn"})
        );
        assert_eq!(csc["Description"], "");
        assert!(csc["LastModified"].as_str().unwrap().ends_with("+0000"));
    }

    #[tokio::test]
    async fn lifecycle_matches_aws() {
        let fx = open().await;
        let c = &*fx.cp;
        let arn = create(c).await;
        let upd = run(
            c,
            "UpdateCodeSigningConfig",
            json!({"CodeSigningConfigArn": arn, "CodeSigningPolicies": {"UntrustedArtifactOnDeployment": "Warn"}}),
        ).await
        .unwrap();
        assert_eq!(
            upd["CodeSigningConfig"]["CodeSigningPolicies"]["UntrustedArtifactOnDeployment"],
            "Warn"
        );
        assert_eq!(
            upd["CodeSigningConfig"]["Description"],
            "Testing CodeSigning Config"
        );
        let got = run(
            c,
            "GetCodeSigningConfig",
            json!({"CodeSigningConfigArn": arn}),
        )
        .await
        .unwrap();
        assert_eq!(got, upd);
        let put = run(
            c,
            "PutFunctionCodeSigningConfig",
            json!({"CodeSigningConfigArn": arn, "FunctionName": "fn1"}),
        )
        .await
        .unwrap();
        assert_eq!(
            put,
            json!({"CodeSigningConfigArn": arn, "FunctionName": "fn1"})
        );
        let get = run(
            c,
            "GetFunctionCodeSigningConfig",
            json!({"FunctionName": "fn1"}),
        )
        .await
        .unwrap();
        assert_eq!(get, put);
        let list = run(c, "ListCodeSigningConfigs", json!({})).await.unwrap();
        assert_eq!(list["CodeSigningConfigs"][0], got["CodeSigningConfig"]);
        let fns = run(
            c,
            "ListFunctionsByCodeSigningConfig",
            json!({"CodeSigningConfigArn": arn}),
        )
        .await
        .unwrap();
        assert_eq!(
            fns,
            json!({"FunctionArns": [format!("{PREFIX}function:fn1")]})
        );
        // In use: cannot be deleted.
        let r = run(
            c,
            "DeleteCodeSigningConfig",
            json!({"CodeSigningConfigArn": arn}),
        )
        .await;
        assert_eq!(err(r).0, ErrorCode::ResourceConflictException);
        assert_eq!(
            run(
                c,
                "DeleteFunctionCodeSigningConfig",
                json!({"FunctionName": "fn1"})
            )
            .await
            .unwrap(),
            json!({})
        );
        assert_eq!(
            run(
                c,
                "DeleteCodeSigningConfig",
                json!({"CodeSigningConfigArn": arn})
            )
            .await
            .unwrap(),
            json!({})
        );
        let r = run(
            c,
            "GetCodeSigningConfig",
            json!({"CodeSigningConfigArn": arn}),
        )
        .await;
        assert_eq!(err(r).0, ErrorCode::ResourceNotFoundException);
    }

    #[tokio::test]
    async fn not_found_errors_match_aws() {
        let fx = open().await;
        let c = &*fx.cp;
        let arn = create(c).await;
        // As AWS's test does: the last character changed (to one it is not already).
        let last = if arn.ends_with('x') { 'y' } else { 'x' };
        let invalid = format!("{}{last}", &arn[..arn.len() - 1]);
        let csc_missing = (
            ErrorCode::ResourceNotFoundException,
            format!("The Lambda code signing configuration {invalid} can not be found."),
        );
        let fn_missing = (
            ErrorCode::ResourceNotFoundException,
            format!("Function not found: {PREFIX}function:csc-test-doesnotexist"),
        );
        let csc_missing_for_fn = (
            ErrorCode::CodeSigningConfigNotFoundException,
            format!(
                "The code signing configuration cannot be found. Check that the provided \
                 configuration is not deleted: {invalid}."
            ),
        );
        assert_eq!(
            err(run(
                c,
                "DeleteCodeSigningConfig",
                json!({"CodeSigningConfigArn": invalid})
            )
            .await),
            csc_missing
        );
        // Nothing bound: deleting the binding is fine.
        assert_eq!(
            run(
                c,
                "DeleteFunctionCodeSigningConfig",
                json!({"FunctionName": "fn1"})
            )
            .await
            .unwrap(),
            json!({})
        );
        assert_eq!(
            err(run(
                c,
                "DeleteFunctionCodeSigningConfig",
                json!({"FunctionName": "csc-test-doesnotexist"})
            )
            .await),
            fn_missing
        );
        assert_eq!(
            err(run(
                c,
                "PutFunctionCodeSigningConfig",
                json!({"FunctionName": "csc-test-doesnotexist", "CodeSigningConfigArn": arn})
            )
            .await),
            fn_missing
        );
        assert_eq!(
            err(run(
                c,
                "PutFunctionCodeSigningConfig",
                json!({"FunctionName": "fn1", "CodeSigningConfigArn": invalid})
            )
            .await),
            csc_missing_for_fn
        );
        assert_eq!(
            err(run(
                c,
                "PutFunctionCodeSigningConfig",
                json!({"FunctionName": "csc-test-doesnotexist", "CodeSigningConfigArn": invalid})
            )
            .await),
            csc_missing_for_fn
        );
        assert_eq!(
            err(run(
                c,
                "UpdateCodeSigningConfig",
                json!({"CodeSigningConfigArn": invalid, "Description": "d"})
            )
            .await),
            csc_missing
        );
        assert_eq!(
            err(run(
                c,
                "UpdateCodeSigningConfig",
                json!({"CodeSigningConfigArn": invalid})
            )
            .await),
            csc_missing
        );
        let unchanged = run(
            c,
            "UpdateCodeSigningConfig",
            json!({"CodeSigningConfigArn": arn}),
        )
        .await
        .unwrap();
        assert_eq!(
            unchanged["CodeSigningConfig"]["CodeSigningPolicies"]["UntrustedArtifactOnDeployment"],
            "Enforce"
        );
        assert_eq!(
            err(run(
                c,
                "GetCodeSigningConfig",
                json!({"CodeSigningConfigArn": invalid})
            )
            .await),
            csc_missing
        );
        assert_eq!(
            run(
                c,
                "GetFunctionCodeSigningConfig",
                json!({"FunctionName": "fn1"})
            )
            .await
            .unwrap(),
            json!({})
        );
        assert_eq!(
            err(run(
                c,
                "GetFunctionCodeSigningConfig",
                json!({"FunctionName": "csc-test-doesnotexist"})
            )
            .await),
            fn_missing
        );
        assert_eq!(
            run(
                c,
                "ListFunctionsByCodeSigningConfig",
                json!({"CodeSigningConfigArn": arn})
            )
            .await
            .unwrap(),
            json!({"FunctionArns": []})
        );
        assert_eq!(
            err(run(
                c,
                "ListFunctionsByCodeSigningConfig",
                json!({"CodeSigningConfigArn": invalid})
            )
            .await),
            csc_missing
        );
    }

    #[tokio::test]
    async fn deleted_functions_drop_out_of_listings_and_take_their_binding_with_them() {
        let fx = open().await;
        let c = &*fx.cp;
        let arn = create(c).await;
        create_function(c, "fn2").await;
        for name in ["fn2".to_string(), format!("{PREFIX}function:fn1")] {
            run(
                c,
                "PutFunctionCodeSigningConfig",
                json!({"CodeSigningConfigArn": arn, "FunctionName": name}),
            )
            .await
            .unwrap();
        }
        run(c, "DeleteFunction", json!({"FunctionName": "fn1"}))
            .await
            .unwrap();
        let out = run(
            c,
            "ListFunctionsByCodeSigningConfig",
            json!({"CodeSigningConfigArn": arn}),
        )
        .await
        .unwrap();
        assert_eq!(
            out,
            json!({"FunctionArns": [format!("{PREFIX}function:fn2")]})
        );
        // A new function of the deleted one's name starts without a configuration.
        create_function(c, "fn1").await;
        let get = |name: &'static str| {
            run(
                c,
                "GetFunctionCodeSigningConfig",
                json!({"FunctionName": name}),
            )
        };
        assert_eq!(get("fn1").await.unwrap(), json!({}));
        run(
            c,
            "DeleteFunctionCodeSigningConfig",
            json!({"FunctionName": "fn2"}),
        )
        .await
        .unwrap();
        assert_eq!(get("fn2").await.unwrap(), json!({}));
        assert_eq!(
            run(
                c,
                "DeleteCodeSigningConfig",
                json!({"CodeSigningConfigArn": arn})
            )
            .await
            .unwrap(),
            json!({})
        );
        let e = run(
            c,
            "PutFunctionCodeSigningConfig",
            json!({"CodeSigningConfigArn": arn, "FunctionName": "fn2"}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::CodeSigningConfigNotFoundException);
    }

    #[tokio::test]
    async fn the_binding_is_part_of_the_function_document() {
        let fx = open().await;
        let c = &*fx.cp;
        let arn = create(c).await;
        run(
            c,
            "PutFunctionCodeSigningConfig",
            json!({"CodeSigningConfigArn": arn, "FunctionName": "fn1"}),
        )
        .await
        .unwrap();
        let f = c.index.get(&scope(), "fn1").unwrap();
        assert_eq!(
            f.doc.settings.code_signing_config_arn.as_deref(),
            Some(arn.as_str())
        );
        let stored = Store::open(fx.dir.path()).unwrap();
        assert!(stored.list_all(LEGACY_BINDING_KIND).unwrap().is_empty());
    }

    #[tokio::test]
    async fn legacy_binding_documents_are_folded_into_their_functions_once() {
        let fx = open().await;
        let arn = create(&fx.cp).await;
        {
            // What an earlier release wrote: a binding document beside the function's.
            let store = Store::open(fx.dir.path()).unwrap();
            let legacy = serde_json::to_string(&LegacyBinding {
                code_signing_config_arn: arn.clone(),
            })
            .unwrap();
            for name in ["fn1", "gone"] {
                let k = DocKey {
                    account: "000000000000",
                    region: "us-east-1",
                    kind: LEGACY_BINDING_KIND,
                    key: name,
                };
                store.put(&k, &legacy).unwrap();
            }
        }
        let c = reopen(&fx);
        let got = exec(
            &c,
            "GetFunctionCodeSigningConfig",
            json!({"FunctionName": "fn1"}),
        )
        .await
        .unwrap();
        assert_eq!(
            got,
            json!({"CodeSigningConfigArn": arn, "FunctionName": "fn1"})
        );
        let store = Store::open(fx.dir.path()).unwrap();
        assert!(store.list_all(LEGACY_BINDING_KIND).unwrap().is_empty());
        // Folded for good: the function's own document has it, and it is still in use.
        let again = reopen(&fx);
        let e = exec(
            &again,
            "DeleteCodeSigningConfig",
            json!({"CodeSigningConfigArn": arn}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::ResourceConflictException);
    }

    #[tokio::test]
    async fn listing_is_paginated() {
        let fx = open().await;
        let c = &*fx.cp;
        for _ in 0..3 {
            create(c).await;
        }
        let p1 = run(c, "ListCodeSigningConfigs", json!({"MaxItems": 2}))
            .await
            .unwrap();
        assert_eq!(p1["CodeSigningConfigs"].as_array().unwrap().len(), 2);
        let m = p1["NextMarker"].as_str().unwrap();
        let p2 = run(
            c,
            "ListCodeSigningConfigs",
            json!({"MaxItems": 2, "Marker": m}),
        )
        .await
        .unwrap();
        assert_eq!(p2["CodeSigningConfigs"].as_array().unwrap().len(), 1);
        assert!(p2.get("NextMarker").is_none());
    }

    #[tokio::test]
    async fn configs_bindings_and_tags_survive_reopening() {
        let fx = open().await;
        let arn = {
            let c = &*fx.cp;
            let arn = create(c).await;
            run(
                c,
                "PutFunctionCodeSigningConfig",
                json!({"CodeSigningConfigArn": arn, "FunctionName": "fn1"}),
            )
            .await
            .unwrap();
            c.code_signing
                .set_tags(
                    &scope(),
                    &arn,
                    BTreeMap::from([("k".to_string(), "v".to_string())]),
                )
                .unwrap();
            arn
        };
        let reopened = reopen(&fx);
        let c = &*reopened;
        let got = run(
            c,
            "GetCodeSigningConfig",
            json!({"CodeSigningConfigArn": arn}),
        )
        .await
        .unwrap();
        assert_eq!(
            got["CodeSigningConfig"]["Description"],
            "Testing CodeSigning Config"
        );
        assert_eq!(
            run(
                c,
                "GetFunctionCodeSigningConfig",
                json!({"FunctionName": "fn1"})
            )
            .await
            .unwrap()["CodeSigningConfigArn"],
            arn.as_str()
        );
        assert_eq!(
            c.code_signing
                .tags(&scope(), &arn)
                .unwrap()
                .get("k")
                .map(String::as_str),
            Some("v")
        );
        assert_eq!(
            c.code_signing
                .tags(
                    &scope(),
                    "arn:aws:lambda:us-east-1:000000000000:code-signing-config:csc-x"
                )
                .unwrap_err()
                .code,
            ErrorCode::ResourceNotFoundException
        );
    }

    #[tokio::test]
    async fn function_arns_of_another_region_are_not_reachable() {
        let fx = open().await;
        let c = &*fx.cp;
        let arn = create(c).await;
        let wrong = "arn:aws:lambda:eu-central-1:000000000000:function:fn1";
        let unreachable = (
            ErrorCode::ResourceNotFoundException,
            "Functions from 'eu-central-1' are not reachable in this region ('us-east-1')"
                .to_string(),
        );
        for (op, input) in [
            (
                "GetFunctionCodeSigningConfig",
                json!({"FunctionName": wrong}),
            ),
            (
                "DeleteFunctionCodeSigningConfig",
                json!({"FunctionName": wrong}),
            ),
            (
                "PutFunctionCodeSigningConfig",
                json!({"FunctionName": wrong, "CodeSigningConfigArn": arn}),
            ),
        ] {
            assert_eq!(err(run(c, op, input).await), unreachable, "{op}");
        }
        // The caller's own region in a full ARN still reaches the function.
        let own = format!("{PREFIX}function:fn1");
        assert_eq!(
            run(
                c,
                "GetFunctionCodeSigningConfig",
                json!({"FunctionName": own})
            )
            .await
            .unwrap(),
            json!({})
        );
    }

    #[tokio::test]
    async fn other_regions_do_not_see_the_config() {
        let fx = open().await;
        let c = &*fx.cp;
        let arn = create(c).await;
        let other = Scope {
            account: "000000000000".into(),
            region: "eu-west-1".into(),
        };
        let r = c
            .execute(
                &other,
                "GetCodeSigningConfig",
                json!({"CodeSigningConfigArn": arn}),
            )
            .await;
        assert_eq!(r.unwrap_err().code, ErrorCode::ResourceNotFoundException);
        let r = c.execute(&other, "ListCodeSigningConfigs", json!({})).await;
        assert_eq!(r.unwrap(), json!({"CodeSigningConfigs": []}));
    }
}
