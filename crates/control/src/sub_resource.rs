//! What the per-function sub-resources (permissions, tags, concurrency, event-invoke configs, URL
//! configs, runtime-management, recursion and code-signing settings) share: where they are stored
//! (the function's own document, so they change atomically with it and vanish with it) and how a
//! qualifier designates a version or an alias. Their operations are in `operations.rs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::concurrency::ProvisionedConfig;
use crate::configuration::LATEST;
use crate::event_invoke_config::EventInvokeConfig;
use crate::policy::Policy;
use crate::runtime_management::RuntimeManagement;
use crate::state::{Function, FunctionDoc, Index};
use crate::tags::{ResourceTags, TaggedKind};
use crate::url_config::UrlConfig;
use crate::{LambdaError, Scope};

/// The input of the List* operations on a function's sub-resources.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListInput {
    pub function_name: String,
    pub marker: Option<String>,
    pub max_items: Option<u32>,
}

/// The sub-resources of one function, stored in its [`FunctionDoc`]. Maps are keyed by the
/// qualifier they apply to (see each field).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionSettings {
    /// Resource policies: `""` for the unqualified function, else a version number or alias.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policies: BTreeMap<String, Policy>,
    /// Event invoke configs: `$LATEST` (also the unqualified function), a version or an alias.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub event_invoke_configs: BTreeMap<String, EventInvokeConfig>,
    /// Function URLs: `""` for the unqualified function, else an alias.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub url_configs: BTreeMap<String, UrlConfig>,
    /// Provisioned concurrency: a published version number or an alias.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub provisioned: BTreeMap<String, ProvisionedConfig>,
    /// Runtime management: `$LATEST` or a published version number.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub runtime_management: BTreeMap<String, RuntimeManagement>,
    /// `Allow` or `Terminate` (None = AWS's default, Terminate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive_loop: Option<String>,
    /// The code signing configuration the function uses (`code_signing.rs`). Earlier releases
    /// kept it in a document of its own, folded in here at start-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_signing_config_arn: Option<String>,
}

impl FunctionSettings {
    /// Forgets everything attached to a version or alias that is being deleted.
    pub fn forget_qualifier(&mut self, qualifier: &str) {
        self.policies.remove(qualifier);
        self.event_invoke_configs.remove(qualifier);
        self.url_configs.remove(qualifier);
        self.provisioned.remove(qualifier);
        self.runtime_management.remove(qualifier);
    }
}

/// Hook for DeleteAlias and DeleteFunction(Qualifier): drops the deleted version's or alias's
/// policy, URL, event-invoke, provisioned-concurrency and runtime-management configs.
pub fn forget_qualifier(doc: &mut FunctionDoc, qualifier: &str) {
    doc.settings.forget_qualifier(qualifier);
}

/// What a qualifier designates, by its syntax alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Qualifier {
    Latest,
    Version(u64),
    /// A name that can be an alias (`(?!^[0-9]+$)[a-zA-Z0-9-_]+`).
    Alias(String),
    /// Neither (e.g. `1.0`, `with-$`): no version or alias can have it.
    Invalid(String),
}

impl Qualifier {
    pub fn parse(q: &str) -> Self {
        if q == LATEST {
            return Self::Latest;
        }
        if !q.is_empty() && q.bytes().all(|b| b.is_ascii_digit()) {
            // "01" is no version (versions are written without leading zeros).
            return match q.parse::<u64>() {
                Ok(n) if n.to_string() == q => Self::Version(n),
                _ => Self::Invalid(q.to_string()),
            };
        }
        if is_alias_name(q) {
            Self::Alias(q.to_string())
        } else {
            Self::Invalid(q.to_string())
        }
    }
}

/// `[a-zA-Z0-9-_]+`, not all digits: the names an alias may have.
pub fn is_alias_name(q: &str) -> bool {
    !q.is_empty()
        && q.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !q.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `qualifier` designates something that exists in `f` (`$LATEST`, a published version,
/// an alias). Aliases resolve through [`crate::function::resolve_version`].
pub fn qualifier_exists(f: &Function, qualifier: &str) -> bool {
    crate::function::resolve_version(f, Some(qualifier)).is_some()
}

/// The published version an alias (or a version qualifier) points at, if any.
pub fn target_version(f: &Function, qualifier: &str) -> Option<String> {
    crate::function::resolve_version(f, Some(qualifier)).map(|v| v.version.clone())
}

/// State shared by the sub-resources across functions.
pub struct Registry {
    /// URL id → (scope, function, URL key). A hint only: lookups verify it against the function.
    pub(crate) urls: RwLock<HashMap<String, (Scope, String, String)>>,
    /// Serializes changes that are checked against account-wide sums (reserved and provisioned
    /// concurrency), so two functions cannot both take the last free executions.
    pub(crate) concurrency: tokio::sync::Mutex<()>,
    /// Owners of the other taggable resources (see [`crate::tags::ResourceTags`]).
    pub(crate) taggers: RwLock<HashMap<TaggedKind, Arc<dyn ResourceTags>>>,
}

impl Registry {
    /// Indexes the URL ids of every function loaded from the store.
    pub fn load(index: &Index) -> Self {
        let mut urls = HashMap::new();
        for (scope, f) in index.all() {
            for (key, u) in &f.doc.settings.url_configs {
                urls.insert(
                    u.url_id.clone(),
                    (scope.clone(), f.name().to_string(), key.clone()),
                );
            }
        }
        Self {
            urls: RwLock::new(urls),
            concurrency: tokio::sync::Mutex::new(()),
            taggers: RwLock::new(HashMap::new()),
        }
    }
}

/// `Marker`/`MaxItems` paging over items sorted by an opaque key: the page starting at `marker`
/// and the marker of the next page.
pub fn page<T>(
    mut items: Vec<(String, T)>,
    marker: Option<&str>,
    max_items: Option<u32>,
) -> Result<(Vec<T>, Option<String>), LambdaError> {
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let max = max_items.unwrap_or(50).clamp(1, 50) as usize;
    let start = match marker {
        None => 0,
        Some(m) => {
            let key = decode_marker(m)?;
            items.partition_point(|(k, _)| k.as_str() < key.as_str())
        }
    };
    let mut rest = items.into_iter().skip(start);
    let page: Vec<(String, T)> = rest.by_ref().take(max).collect();
    let next = rest.next().map(|(k, _)| encode_marker(&k));
    Ok((page.into_iter().map(|(_, t)| t).collect(), next))
}

fn encode_marker(key: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

fn decode_marker(marker: &str) -> Result<String, LambdaError> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(marker)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| LambdaError::invalid_marker(marker))
}

/// Sort key of a qualifier in listings: `$LATEST`, then versions by number, then aliases.
pub fn listing_key(qualifier: &str) -> String {
    match Qualifier::parse(qualifier) {
        Qualifier::Latest => "0".into(),
        Qualifier::Version(n) => format!("1:{n:020}"),
        Qualifier::Alias(a) | Qualifier::Invalid(a) => format!("2:{a}"),
    }
}

/// Fixtures shared by the sub-resource modules' tests: a control plane on a real store in a
/// temp dir, without an engine.
#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;
    use std::time::Duration;

    use base64::Engine as _;
    use serde_json::{json, Value};

    use crate::code::test_zip;
    use crate::{ControlOptions, ControlPlane, FixedCatalog, LambdaError, Scope};

    pub const ROLE: &str = "arn:aws:iam::000000000000:role/lambda-role";

    pub struct Fixture {
        pub dir: tempfile::TempDir,
        pub cp: Arc<ControlPlane>,
    }

    pub fn options() -> ControlOptions {
        ControlOptions {
            public_base_url: "http://flint.test:9000".into(),
            create_settle: Duration::from_millis(20),
            update_settle: Duration::from_millis(20),
            ..Default::default()
        }
    }

    pub fn open(dir: &std::path::Path) -> Arc<ControlPlane> {
        let store = Arc::new(flint_store::Store::open(dir).unwrap());
        let catalog = Arc::new(FixedCatalog(vec!["python3.12".into()]));
        ControlPlane::open_with(dir, store, catalog, options()).unwrap()
    }

    pub fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let cp = open(dir.path());
        Fixture { dir, cp }
    }

    /// A second control plane on the same data dir: what a restart sees.
    pub fn reopen(fx: &Fixture) -> Arc<ControlPlane> {
        open(fx.dir.path())
    }

    pub fn scope() -> Scope {
        Scope {
            account: "000000000000".into(),
            region: "us-east-1".into(),
        }
    }

    pub fn fn_arn(name: &str) -> String {
        format!("arn:aws:lambda:us-east-1:000000000000:function:{name}")
    }

    pub async fn exec(cp: &ControlPlane, op: &str, input: Value) -> Result<Value, LambdaError> {
        cp.execute(&scope(), op, input).await
    }

    /// Creates a function and waits until it is Active.
    pub async fn create_function(cp: &ControlPlane, name: &str) -> Value {
        let zip = test_zip(&[("handler.py", b"def handler(e, c):\n    return e\n", 0o644)]);
        let out = exec(
            cp,
            "CreateFunction",
            json!({
                "FunctionName": name,
                "Runtime": "python3.12",
                "Role": ROLE,
                "Handler": "handler.handler",
                "Code": {"ZipFile": base64::engine::general_purpose::STANDARD.encode(zip)},
            }),
        )
        .await
        .unwrap();
        settle(cp, name, None).await;
        out
    }

    /// Waits until the version is Active with its last update Successful.
    pub async fn settle(cp: &ControlPlane, name: &str, qualifier: Option<&str>) {
        let mut input = json!({"FunctionName": name});
        if let Some(q) = qualifier {
            input["Qualifier"] = json!(q);
        }
        for _ in 0..200 {
            let c = exec(cp, "GetFunctionConfiguration", input.clone())
                .await
                .unwrap();
            if c["State"] == "Active" && c["LastUpdateStatus"] == "Successful" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{name} did not settle");
    }

    /// Publishes `$LATEST` (changing its description first so each call makes a new version).
    pub async fn publish(cp: &ControlPlane, name: &str) -> String {
        let v = exec(cp, "PublishVersion", json!({"FunctionName": name}))
            .await
            .unwrap();
        let version = v["Version"].as_str().unwrap().to_string();
        settle(cp, name, Some(&version)).await;
        version
    }

    pub async fn create_alias(cp: &ControlPlane, name: &str, alias: &str, version: &str) -> Value {
        exec(
            cp,
            "CreateAlias",
            json!({"FunctionName": name, "Name": alias, "FunctionVersion": version}),
        )
        .await
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualifiers_are_told_apart_by_syntax() {
        assert_eq!(Qualifier::parse("$LATEST"), Qualifier::Latest);
        assert_eq!(Qualifier::parse("12"), Qualifier::Version(12));
        assert_eq!(
            Qualifier::parse("prod-1"),
            Qualifier::Alias("prod-1".into())
        );
        assert_eq!(
            Qualifier::parse("valid-with-$-but-doesnotexist"),
            Qualifier::Invalid("valid-with-$-but-doesnotexist".into())
        );
        assert_eq!(Qualifier::parse("01"), Qualifier::Invalid("01".into()));
    }

    #[test]
    fn paging_resumes_at_the_marker_and_orders_latest_versions_aliases() {
        let items: Vec<(String, &str)> = ["b", "$LATEST", "10", "2", "a"]
            .iter()
            .map(|q| (listing_key(q), *q))
            .collect();
        let (p, next) = page(items.clone(), None, Some(2)).unwrap();
        assert_eq!(p, ["$LATEST", "2"]);
        let (p, next) = page(items.clone(), next.as_deref(), Some(2)).unwrap();
        assert_eq!(p, ["10", "a"]);
        let (p, next) = page(items.clone(), next.as_deref(), Some(2)).unwrap();
        assert_eq!(p, ["b"]);
        assert!(next.is_none());
        assert!(page(items, Some("!!"), None).is_err());
    }

    #[test]
    fn forgetting_a_qualifier_drops_all_its_configs() {
        let mut s = FunctionSettings::default();
        s.policies.insert("prod".into(), Policy::default());
        s.url_configs
            .insert("prod".into(), UrlConfig::test_value("id"));
        s.policies.insert(String::new(), Policy::default());
        s.forget_qualifier("prod");
        assert_eq!(s.policies.len(), 1);
        assert!(s.url_configs.is_empty());
    }
}
