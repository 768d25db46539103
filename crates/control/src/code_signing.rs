//! Code signing configurations: which signing profiles a function's code must be signed by and
//! what happens to untrusted code, plus which functions use which configuration. Flint records and
//! reports them; it does not verify signatures (there is no AWS Signer to ask).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use flint_store::{DocKey, Store, StoreError};
use parking_lot::RwLock;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ErrorCode;
use crate::resource_util::{
    iso_timestamp, lambda_arn, list_page, opt_str, opt_str_list, store_error, FunctionDirectory,
};
use crate::{LambdaError, Scope};

const KIND: &str = "code-signing-config";
/// Which configuration each function uses, keyed by function name.
const BINDING_KIND: &str = "function-code-signing-config";
const DEFAULT_LIST_ITEMS: usize = 50;
const MAX_LIST_ITEMS: usize = 10_000;

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
    fn output(&self, scope: &Scope) -> Value {
        json!({
            "CodeSigningConfigId": self.id,
            "CodeSigningConfigArn": csc_arn(scope, &self.id),
            "Description": self.description,
            "AllowedPublishers": { "SigningProfileVersionArns": self.signing_profile_version_arns },
            "CodeSigningPolicies": {
                "UntrustedArtifactOnDeployment": self.untrusted_artifact_on_deployment
            },
            "LastModified": self.last_modified,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Binding {
    code_signing_config_arn: String,
}

/// (account, region, id or function name).
type Key = (String, String, String);

/// All code signing configurations and function bindings, in memory and durable in the store.
pub struct CodeSigningConfigs {
    store: Arc<Store>,
    functions: Arc<dyn FunctionDirectory>,
    configs: RwLock<HashMap<Key, CodeSigningConfig>>,
    /// Function name → configuration ARN.
    bindings: RwLock<HashMap<Key, String>>,
}

impl CodeSigningConfigs {
    pub fn open(
        store: Arc<Store>,
        _data_dir: &Path,
        functions: Arc<dyn FunctionDirectory>,
    ) -> Result<Self, StoreError> {
        let mut configs = HashMap::new();
        for doc in store.list_all(KIND)? {
            match serde_json::from_str::<CodeSigningConfig>(&doc.value) {
                Ok(c) => {
                    configs.insert((doc.account, doc.region, doc.key), c);
                }
                Err(e) => tracing::warn!(id = %doc.key, "unreadable code signing config: {e}"),
            }
        }
        let mut bindings = HashMap::new();
        for doc in store.list_all(BINDING_KIND)? {
            match serde_json::from_str::<Binding>(&doc.value) {
                Ok(b) => {
                    bindings.insert(
                        (doc.account, doc.region, doc.key),
                        b.code_signing_config_arn,
                    );
                }
                Err(e) => tracing::warn!(function = %doc.key, "unreadable binding: {e}"),
            }
        }
        Ok(Self {
            store,
            functions,
            configs: RwLock::new(configs),
            bindings: RwLock::new(bindings),
        })
    }

    /// Runs one of the code-signing operations; `None` if `operation` is not one of them.
    pub fn execute(
        &self,
        scope: &Scope,
        operation: &str,
        input: &Value,
    ) -> Option<Result<Value, LambdaError>> {
        Some(match operation {
            "CreateCodeSigningConfig" => self.create(scope, input),
            "GetCodeSigningConfig" => self.get(scope, input),
            "UpdateCodeSigningConfig" => self.update(scope, input),
            "DeleteCodeSigningConfig" => self.delete(scope, input),
            "ListCodeSigningConfigs" => self.list(scope, input),
            "PutFunctionCodeSigningConfig" => self.put_function(scope, input),
            "GetFunctionCodeSigningConfig" => self.get_function(scope, input),
            "DeleteFunctionCodeSigningConfig" => self.delete_function(scope, input),
            "ListFunctionsByCodeSigningConfig" => self.list_functions(scope, input),
            _ => return None,
        })
    }

    /// Checks that a configuration a function is to use exists: AWS's 404
    /// `CodeSigningConfigNotFoundException` if not (CreateFunction checks before any work).
    pub fn check_for_function(&self, scope: &Scope, csc_arn: &str) -> Result<(), LambdaError> {
        self.find(scope, csc_arn)
            .map(|_| ())
            .ok_or_else(|| csc_not_found_for_function(csc_arn))
    }

    /// For `CreateFunction`'s `CodeSigningConfigArn`: checks the configuration exists and binds
    /// the (new) function to it.
    pub fn bind_function(
        &self,
        scope: &Scope,
        function_name: &str,
        csc_arn: &str,
    ) -> Result<(), LambdaError> {
        self.check_for_function(scope, csc_arn)?;
        let value = serde_json::to_string(&Binding {
            code_signing_config_arn: csc_arn.into(),
        })
        .map_err(store_error)?;
        let mut bindings = self.bindings.write();
        self.store
            .put(&doc_key(scope, BINDING_KIND, function_name), &value)
            .map_err(store_error)?;
        bindings.insert(key(scope, function_name), csc_arn.to_string());
        Ok(())
    }

    /// The configuration a function uses, if any.
    pub fn function_binding(&self, scope: &Scope, function_name: &str) -> Option<String> {
        self.bindings
            .read()
            .get(&key(scope, function_name))
            .cloned()
    }

    /// Forgets a deleted function's binding (so that a new function of the same name starts
    /// without one).
    pub fn forget_function(&self, scope: &Scope, function_name: &str) -> Result<(), LambdaError> {
        let mut bindings = self.bindings.write();
        if bindings.remove(&key(scope, function_name)).is_some() {
            self.store
                .delete(&doc_key(scope, BINDING_KIND, function_name))
                .map_err(store_error)?;
        }
        Ok(())
    }

    /// The tags of a configuration (for ListTags), or 404 if there is no such configuration.
    pub fn tags(&self, scope: &Scope, arn: &str) -> Result<BTreeMap<String, String>, LambdaError> {
        self.find(scope, arn)
            .map(|c| c.tags)
            .ok_or_else(|| csc_not_found(arn))
    }

    /// Replaces a configuration's tags (TagResource/UntagResource compute the new set).
    pub fn set_tags(
        &self,
        scope: &Scope,
        arn: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<(), LambdaError> {
        let mut configs = self.configs.write();
        let id = own_id(scope, arn).ok_or_else(|| csc_not_found(arn))?;
        let mut c = configs
            .get(&key(scope, &id))
            .cloned()
            .ok_or_else(|| csc_not_found(arn))?;
        c.tags = tags;
        self.persist(scope, &c)?;
        configs.insert(key(scope, &id), c);
        Ok(())
    }

    fn create(&self, scope: &Scope, input: &Value) -> Result<Value, LambdaError> {
        let publishers = input.get("AllowedPublishers").unwrap_or(&Value::Null);
        let policy = input
            .get("CodeSigningPolicies")
            .and_then(|p| opt_str(p, "UntrustedArtifactOnDeployment"))
            .unwrap_or("Warn");
        let tags = input
            .get("Tags")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let c = CodeSigningConfig {
            id: new_id(),
            description: opt_str(input, "Description")
                .unwrap_or_default()
                .to_string(),
            signing_profile_version_arns: opt_str_list(publishers, "SigningProfileVersionArns")
                .unwrap_or_default(),
            untrusted_artifact_on_deployment: policy.to_string(),
            last_modified: iso_timestamp(chrono::Utc::now()),
            tags,
        };
        let mut configs = self.configs.write();
        self.persist(scope, &c)?;
        let out = json!({ "CodeSigningConfig": c.output(scope) });
        configs.insert(key(scope, &c.id), c);
        Ok(out)
    }

    fn get(&self, scope: &Scope, input: &Value) -> Result<Value, LambdaError> {
        let arn = opt_str(input, "CodeSigningConfigArn").unwrap_or_default();
        let c = self.find(scope, arn).ok_or_else(|| csc_not_found(arn))?;
        Ok(json!({ "CodeSigningConfig": c.output(scope) }))
    }

    fn update(&self, scope: &Scope, input: &Value) -> Result<Value, LambdaError> {
        let arn = opt_str(input, "CodeSigningConfigArn").unwrap_or_default();
        let mut configs = self.configs.write();
        let id = own_id(scope, arn).ok_or_else(|| csc_not_found(arn))?;
        let old = configs
            .get(&key(scope, &id))
            .ok_or_else(|| csc_not_found(arn))?;
        let mut c = old.clone();
        if let Some(d) = opt_str(input, "Description") {
            c.description = d.to_string();
        }
        if let Some(arns) = input
            .get("AllowedPublishers")
            .and_then(|p| opt_str_list(p, "SigningProfileVersionArns"))
        {
            c.signing_profile_version_arns = arns;
        }
        if let Some(p) = input
            .get("CodeSigningPolicies")
            .and_then(|p| opt_str(p, "UntrustedArtifactOnDeployment"))
        {
            c.untrusted_artifact_on_deployment = p.to_string();
        }
        let changed = c.description != old.description
            || c.signing_profile_version_arns != old.signing_profile_version_arns
            || c.untrusted_artifact_on_deployment != old.untrusted_artifact_on_deployment;
        if changed {
            c.last_modified = iso_timestamp(chrono::Utc::now());
            self.persist(scope, &c)?;
        }
        let out = json!({ "CodeSigningConfig": c.output(scope) });
        configs.insert(key(scope, &id), c);
        Ok(out)
    }

    fn delete(&self, scope: &Scope, input: &Value) -> Result<Value, LambdaError> {
        let arn = opt_str(input, "CodeSigningConfigArn").unwrap_or_default();
        let mut configs = self.configs.write();
        let id = own_id(scope, arn).ok_or_else(|| csc_not_found(arn))?;
        if !configs.contains_key(&key(scope, &id)) {
            return Err(csc_not_found(arn));
        }
        if !self.bound_functions(scope, arn).is_empty() {
            return Err(LambdaError::conflict(format!(
                "The code signing configuration {arn} cannot be deleted because it is used by \
                 one or more functions."
            )));
        }
        self.store
            .delete(&doc_key(scope, KIND, &id))
            .map_err(store_error)?;
        configs.remove(&key(scope, &id));
        Ok(json!({}))
    }

    fn list(&self, scope: &Scope, input: &Value) -> Result<Value, LambdaError> {
        let configs = self.configs.read();
        let found = configs
            .iter()
            .filter(|((a, r, _), _)| *a == scope.account && *r == scope.region)
            .map(|(_, c)| (c.id.clone(), c.output(scope)))
            .collect();
        Ok(list_page(
            "CodeSigningConfigs",
            found,
            input,
            (DEFAULT_LIST_ITEMS, MAX_LIST_ITEMS),
        ))
    }

    fn put_function(&self, scope: &Scope, input: &Value) -> Result<Value, LambdaError> {
        let arn = opt_str(input, "CodeSigningConfigArn").unwrap_or_default();
        self.find(scope, arn)
            .ok_or_else(|| csc_not_found_for_function(arn))?;
        let name = self.existing_function(scope, input)?;
        self.bind_function(scope, &name, arn)?;
        Ok(json!({ "CodeSigningConfigArn": arn, "FunctionName": name }))
    }

    fn get_function(&self, scope: &Scope, input: &Value) -> Result<Value, LambdaError> {
        let name = self.existing_function(scope, input)?;
        Ok(match self.function_binding(scope, &name) {
            Some(arn) => json!({ "CodeSigningConfigArn": arn, "FunctionName": name }),
            // AWS answers 200 with neither member for a function without a configuration.
            None => json!({}),
        })
    }

    fn delete_function(&self, scope: &Scope, input: &Value) -> Result<Value, LambdaError> {
        let name = self.existing_function(scope, input)?;
        self.forget_function(scope, &name)?;
        Ok(json!({}))
    }

    fn list_functions(&self, scope: &Scope, input: &Value) -> Result<Value, LambdaError> {
        let arn = opt_str(input, "CodeSigningConfigArn").unwrap_or_default();
        self.find(scope, arn).ok_or_else(|| csc_not_found(arn))?;
        let found = self
            .bound_functions(scope, arn)
            .into_iter()
            .map(|n| {
                let arn = lambda_arn(scope, &format!("function:{n}"));
                (n, Value::from(arn))
            })
            .collect();
        Ok(list_page(
            "FunctionArns",
            found,
            input,
            (DEFAULT_LIST_ITEMS, MAX_LIST_ITEMS),
        ))
    }

    /// Names of the existing functions bound to `arn` (bindings of functions deleted without
    /// [`Self::forget_function`] are ignored).
    fn bound_functions(&self, scope: &Scope, arn: &str) -> Vec<String> {
        self.bindings
            .read()
            .iter()
            .filter(|((a, r, _), bound)| {
                *a == scope.account && *r == scope.region && bound.as_str() == arn
            })
            .map(|((_, _, name), _)| name.clone())
            .filter(|name| self.functions.function_exists(scope, name, None))
            .collect()
    }

    /// The unqualified function `FunctionName` designates, or AWS's 404.
    fn existing_function(&self, scope: &Scope, input: &Value) -> Result<String, LambdaError> {
        let given = opt_str(input, "FunctionName").unwrap_or_default();
        // Read as every function operation reads it: another region's ARN is AWS's "not
        // reachable in this region" 404, another account's a 403.
        let f = crate::function_name::resolve(scope, given, None)?;
        if !self.functions.function_exists(scope, &f.name, None) {
            return Err(LambdaError::function_not_found(&f.unqualified_arn(scope)));
        }
        Ok(f.name)
    }

    fn find(&self, scope: &Scope, arn: &str) -> Option<CodeSigningConfig> {
        let id = own_id(scope, arn)?;
        self.configs.read().get(&key(scope, &id)).cloned()
    }

    fn persist(&self, scope: &Scope, c: &CodeSigningConfig) -> Result<(), LambdaError> {
        let value = serde_json::to_string(c).map_err(store_error)?;
        self.store
            .put(&doc_key(scope, KIND, &c.id), &value)
            .map_err(store_error)
    }
}

fn key(scope: &Scope, k: &str) -> Key {
    (scope.account.clone(), scope.region.clone(), k.to_string())
}

fn doc_key<'a>(scope: &'a Scope, kind: &'a str, key: &'a str) -> DocKey<'a> {
    DocKey {
        account: &scope.account,
        region: &scope.region,
        kind,
        key,
    }
}

fn csc_arn(scope: &Scope, id: &str) -> String {
    lambda_arn(scope, &format!("code-signing-config:{id}"))
}

/// The id in `arn` if it is a configuration ARN of the caller's own (account, region).
fn own_id(scope: &Scope, arn: &str) -> Option<String> {
    let prefix = lambda_arn(scope, "code-signing-config:");
    arn.strip_prefix(&prefix).map(str::to_string)
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

fn csc_not_found(arn: &str) -> LambdaError {
    LambdaError::not_found(format!(
        "The Lambda code signing configuration {arn} can not be found."
    ))
}

/// The function-binding operations report a missing configuration with their own code.
fn csc_not_found_for_function(arn: &str) -> LambdaError {
    LambdaError::new(
        ErrorCode::CodeSigningConfigNotFoundException,
        format!(
            "The code signing configuration cannot be found. Check that the provided \
             configuration is not deleted: {arn}."
        ),
    )
}

/// TagResource/UntagResource/ListTags reach these through the tags module.
impl crate::tags::ResourceTags for CodeSigningConfigs {
    fn tags(&self, scope: &Scope, arn: &str) -> Result<BTreeMap<String, String>, LambdaError> {
        CodeSigningConfigs::tags(self, scope, arn)
    }

    fn set_tags(
        &self,
        scope: &Scope,
        arn: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<(), LambdaError> {
        CodeSigningConfigs::set_tags(self, scope, arn, tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Functions that exist, by name.
    #[derive(Default)]
    struct FakeFunctions(RwLock<HashSet<String>>);

    impl FunctionDirectory for FakeFunctions {
        fn function_exists(&self, _scope: &Scope, name: &str, _q: Option<&str>) -> bool {
            self.0.read().contains(name)
        }
    }

    const PREFIX: &str = "arn:aws:lambda:us-east-1:111111111111:";

    fn scope() -> Scope {
        Scope {
            account: "111111111111".into(),
            region: "us-east-1".into(),
        }
    }

    fn open(dir: &Path) -> (CodeSigningConfigs, Arc<FakeFunctions>) {
        let fns = Arc::new(FakeFunctions::default());
        fns.0.write().insert("fn1".into());
        let store = Arc::new(Store::open(dir).unwrap());
        (
            CodeSigningConfigs::open(store, dir, fns.clone()).unwrap(),
            fns,
        )
    }

    fn run(c: &CodeSigningConfigs, op: &str, input: Value) -> Result<Value, LambdaError> {
        c.execute(&scope(), op, &input)
            .expect("a code signing operation")
    }

    fn create(c: &CodeSigningConfigs) -> String {
        let out = run(
            c,
            "CreateCodeSigningConfig",
            json!({"Description": "Testing CodeSigning Config",
                   "AllowedPublishers": {"SigningProfileVersionArns": ["arn:aws:signer:us-east-1:111111111111:/signing-profiles/test"]},
                   "CodeSigningPolicies": {"UntrustedArtifactOnDeployment": "Enforce"}}),
        )
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

    #[test]
    fn create_describes_the_config_with_an_aws_shaped_id() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = open(dir.path());
        let out = run(
            &c,
            "CreateCodeSigningConfig",
            json!({"AllowedPublishers": {"SigningProfileVersionArns": ["arn:aws:signer:us-east-1:111111111111:/signing-profiles/p"]}}),
        )
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

    #[test]
    fn lifecycle_matches_aws() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = open(dir.path());
        let arn = create(&c);
        let upd = run(
            &c,
            "UpdateCodeSigningConfig",
            json!({"CodeSigningConfigArn": arn, "CodeSigningPolicies": {"UntrustedArtifactOnDeployment": "Warn"}}),
        )
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
            &c,
            "GetCodeSigningConfig",
            json!({"CodeSigningConfigArn": arn}),
        )
        .unwrap();
        assert_eq!(got, upd);
        let put = run(
            &c,
            "PutFunctionCodeSigningConfig",
            json!({"CodeSigningConfigArn": arn, "FunctionName": "fn1"}),
        )
        .unwrap();
        assert_eq!(
            put,
            json!({"CodeSigningConfigArn": arn, "FunctionName": "fn1"})
        );
        let get = run(
            &c,
            "GetFunctionCodeSigningConfig",
            json!({"FunctionName": "fn1"}),
        )
        .unwrap();
        assert_eq!(get, put);
        let list = run(&c, "ListCodeSigningConfigs", json!({})).unwrap();
        assert_eq!(list["CodeSigningConfigs"][0], got["CodeSigningConfig"]);
        let fns = run(
            &c,
            "ListFunctionsByCodeSigningConfig",
            json!({"CodeSigningConfigArn": arn}),
        )
        .unwrap();
        assert_eq!(
            fns,
            json!({"FunctionArns": [format!("{PREFIX}function:fn1")]})
        );
        // In use: cannot be deleted.
        let r = run(
            &c,
            "DeleteCodeSigningConfig",
            json!({"CodeSigningConfigArn": arn}),
        );
        assert_eq!(err(r).0, ErrorCode::ResourceConflictException);
        assert_eq!(
            run(
                &c,
                "DeleteFunctionCodeSigningConfig",
                json!({"FunctionName": "fn1"})
            )
            .unwrap(),
            json!({})
        );
        assert_eq!(
            run(
                &c,
                "DeleteCodeSigningConfig",
                json!({"CodeSigningConfigArn": arn})
            )
            .unwrap(),
            json!({})
        );
        let r = run(
            &c,
            "GetCodeSigningConfig",
            json!({"CodeSigningConfigArn": arn}),
        );
        assert_eq!(err(r).0, ErrorCode::ResourceNotFoundException);
    }

    #[test]
    fn not_found_errors_match_aws() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = open(dir.path());
        let arn = create(&c);
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
                &c,
                "DeleteCodeSigningConfig",
                json!({"CodeSigningConfigArn": invalid})
            )),
            csc_missing
        );
        // Nothing bound: deleting the binding is fine.
        assert_eq!(
            run(
                &c,
                "DeleteFunctionCodeSigningConfig",
                json!({"FunctionName": "fn1"})
            )
            .unwrap(),
            json!({})
        );
        assert_eq!(
            err(run(
                &c,
                "DeleteFunctionCodeSigningConfig",
                json!({"FunctionName": "csc-test-doesnotexist"})
            )),
            fn_missing
        );
        assert_eq!(
            err(run(
                &c,
                "PutFunctionCodeSigningConfig",
                json!({"FunctionName": "csc-test-doesnotexist", "CodeSigningConfigArn": arn})
            )),
            fn_missing
        );
        assert_eq!(
            err(run(
                &c,
                "PutFunctionCodeSigningConfig",
                json!({"FunctionName": "fn1", "CodeSigningConfigArn": invalid})
            )),
            csc_missing_for_fn
        );
        assert_eq!(
            err(run(
                &c,
                "PutFunctionCodeSigningConfig",
                json!({"FunctionName": "csc-test-doesnotexist", "CodeSigningConfigArn": invalid})
            )),
            csc_missing_for_fn
        );
        assert_eq!(
            err(run(
                &c,
                "UpdateCodeSigningConfig",
                json!({"CodeSigningConfigArn": invalid, "Description": "d"})
            )),
            csc_missing
        );
        assert_eq!(
            err(run(
                &c,
                "UpdateCodeSigningConfig",
                json!({"CodeSigningConfigArn": invalid})
            )),
            csc_missing
        );
        let unchanged = run(
            &c,
            "UpdateCodeSigningConfig",
            json!({"CodeSigningConfigArn": arn}),
        )
        .unwrap();
        assert_eq!(
            unchanged["CodeSigningConfig"]["CodeSigningPolicies"]["UntrustedArtifactOnDeployment"],
            "Enforce"
        );
        assert_eq!(
            err(run(
                &c,
                "GetCodeSigningConfig",
                json!({"CodeSigningConfigArn": invalid})
            )),
            csc_missing
        );
        assert_eq!(
            run(
                &c,
                "GetFunctionCodeSigningConfig",
                json!({"FunctionName": "fn1"})
            )
            .unwrap(),
            json!({})
        );
        assert_eq!(
            err(run(
                &c,
                "GetFunctionCodeSigningConfig",
                json!({"FunctionName": "csc-test-doesnotexist"})
            )),
            fn_missing
        );
        assert_eq!(
            run(
                &c,
                "ListFunctionsByCodeSigningConfig",
                json!({"CodeSigningConfigArn": arn})
            )
            .unwrap(),
            json!({"FunctionArns": []})
        );
        assert_eq!(
            err(run(
                &c,
                "ListFunctionsByCodeSigningConfig",
                json!({"CodeSigningConfigArn": invalid})
            )),
            csc_missing
        );
    }

    #[test]
    fn deleted_functions_drop_out_of_listings() {
        let dir = tempfile::tempdir().unwrap();
        let (c, fns) = open(dir.path());
        let arn = create(&c);
        fns.0.write().insert("fn2".into());
        c.bind_function(&scope(), "fn2", &arn).unwrap();
        run(
            &c,
            "PutFunctionCodeSigningConfig",
            json!({"CodeSigningConfigArn": arn, "FunctionName": format!("{PREFIX}function:fn1")}),
        )
        .unwrap();
        fns.0.write().remove("fn1");
        let out = run(
            &c,
            "ListFunctionsByCodeSigningConfig",
            json!({"CodeSigningConfigArn": arn}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"FunctionArns": [format!("{PREFIX}function:fn2")]})
        );
        c.forget_function(&scope(), "fn2").unwrap();
        assert_eq!(c.function_binding(&scope(), "fn2"), None);
        assert_eq!(
            run(
                &c,
                "DeleteCodeSigningConfig",
                json!({"CodeSigningConfigArn": arn})
            )
            .unwrap(),
            json!({})
        );
        let e = c.bind_function(&scope(), "fn2", &arn).unwrap_err();
        assert_eq!(e.code, ErrorCode::CodeSigningConfigNotFoundException);
    }

    #[test]
    fn listing_is_paginated() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = open(dir.path());
        for _ in 0..3 {
            create(&c);
        }
        let p1 = run(&c, "ListCodeSigningConfigs", json!({"MaxItems": 2})).unwrap();
        assert_eq!(p1["CodeSigningConfigs"].as_array().unwrap().len(), 2);
        let m = p1["NextMarker"].as_str().unwrap();
        let p2 = run(
            &c,
            "ListCodeSigningConfigs",
            json!({"MaxItems": 2, "Marker": m}),
        )
        .unwrap();
        assert_eq!(p2["CodeSigningConfigs"].as_array().unwrap().len(), 1);
        assert!(p2.get("NextMarker").is_none());
    }

    #[test]
    fn configs_bindings_and_tags_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let arn = {
            let (c, _) = open(dir.path());
            let arn = create(&c);
            run(
                &c,
                "PutFunctionCodeSigningConfig",
                json!({"CodeSigningConfigArn": arn, "FunctionName": "fn1"}),
            )
            .unwrap();
            c.set_tags(
                &scope(),
                &arn,
                BTreeMap::from([("k".to_string(), "v".to_string())]),
            )
            .unwrap();
            arn
        };
        let (c, _) = open(dir.path());
        let got = run(
            &c,
            "GetCodeSigningConfig",
            json!({"CodeSigningConfigArn": arn}),
        )
        .unwrap();
        assert_eq!(
            got["CodeSigningConfig"]["Description"],
            "Testing CodeSigning Config"
        );
        assert_eq!(
            c.function_binding(&scope(), "fn1").as_deref(),
            Some(arn.as_str())
        );
        assert_eq!(
            c.tags(&scope(), &arn).unwrap().get("k").map(String::as_str),
            Some("v")
        );
        assert_eq!(
            c.tags(
                &scope(),
                "arn:aws:lambda:us-east-1:111111111111:code-signing-config:csc-x"
            )
            .unwrap_err()
            .code,
            ErrorCode::ResourceNotFoundException
        );
    }

    #[test]
    fn function_arns_of_another_region_are_not_reachable() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = open(dir.path());
        let arn = create(&c);
        let wrong = "arn:aws:lambda:eu-central-1:111111111111:function:fn1";
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
            assert_eq!(err(run(&c, op, input)), unreachable, "{op}");
        }
        // The caller's own region in a full ARN still reaches the function.
        let own = format!("{PREFIX}function:fn1");
        assert_eq!(
            run(
                &c,
                "GetFunctionCodeSigningConfig",
                json!({"FunctionName": own})
            )
            .unwrap(),
            json!({})
        );
    }

    #[test]
    fn other_regions_do_not_see_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = open(dir.path());
        let arn = create(&c);
        let other = Scope {
            account: "111111111111".into(),
            region: "eu-west-1".into(),
        };
        let r = c
            .execute(
                &other,
                "GetCodeSigningConfig",
                &json!({"CodeSigningConfigArn": arn}),
            )
            .unwrap();
        assert_eq!(r.unwrap_err().code, ErrorCode::ResourceNotFoundException);
        let r = c
            .execute(&other, "ListCodeSigningConfigs", &json!({}))
            .unwrap();
        assert_eq!(r.unwrap(), json!({"CodeSigningConfigs": []}));
    }
}
