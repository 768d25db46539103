//! The control plane's state: every function (its `$LATEST`, published versions and
//! function-level settings) held in memory for reads and invokes, and written through to the store
//! — one `Store::apply` per logical change, before the change is visible or acknowledged. Writers
//! of one function are serialized by its slot's lock. Every change, once durable, is published on
//! the change feed (the function's new state, the snapshots it retired, and the scope's unreserved
//! concurrency when that moved), under the feed's lock so that publications are ordered.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use flint_spec::feed::{ChangeFeed, Subscription};
use flint_spec::FunctionSpec;
use flint_store::{Change, Store};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::code::CodeStore;
use crate::configuration::{VersionConfig, VersionRecord, LATEST};
use crate::{LambdaError, Scope};

/// Store kinds. Published versions are separate documents so that updating `$LATEST` does not
/// rewrite a function's whole history.
pub const KIND_FUNCTION: &str = "function";
pub const KIND_VERSION: &str = "function-version";

/// The record format of both kinds. Format 0 (before formats existed) has the same shape.
pub const FORMAT: u32 = flint_store::FORMAT_1;

/// Format 0 → 1 of a kind whose shape did not change when formats began.
pub(crate) fn upgrade_unchanged(
    from: u32,
    v: serde_json::Value,
) -> Result<serde_json::Value, String> {
    match from {
        0 => Ok(v),
        _ => Err(format!("no upgrade from format {from}")),
    }
}

/// The function-level document (kind `function`, key = name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionDoc {
    pub name: String,
    pub latest: VersionRecord,
    /// The highest version number ever published (numbers are never reused).
    #[serde(default)]
    pub last_published: u64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub reserved_concurrency: Option<u32>,
    /// The function's aliases by name (see `alias.rs`); they live and die with the function.
    #[serde(default)]
    pub aliases: BTreeMap<String, crate::alias::AliasRecord>,
    /// Permissions, URL/event-invoke/provisioned/runtime configs, recursion (`sub_resource.rs`).
    #[serde(default)]
    pub settings: crate::sub_resource::FunctionSettings,
}

/// An immutable view of one function; replaced as a whole on every change.
#[derive(Debug)]
pub struct Function {
    pub doc: FunctionDoc,
    pub versions: BTreeMap<u64, VersionRecord>,
    /// What the engine runs, per version key (`$LATEST`, `1`, ...): built once per change.
    specs: HashMap<String, Arc<FunctionSpec>>,
    /// What the data planes are told about it (see `publish.rs`); built once per change.
    published: Arc<flint_spec::FunctionState>,
}

impl Function {
    pub fn name(&self) -> &str {
        &self.doc.name
    }

    /// A version by qualifier (`$LATEST` or a number). Aliases are resolved by the caller.
    pub fn version(&self, qualifier: &str) -> Option<&VersionRecord> {
        if qualifier == LATEST {
            return Some(&self.doc.latest);
        }
        let n: u64 = qualifier.parse().ok()?;
        // "01" is not version 1.
        if n.to_string() != qualifier {
            return None;
        }
        self.versions.get(&n)
    }

    pub fn spec(&self, version: &str) -> Option<&Arc<FunctionSpec>> {
        self.specs.get(version)
    }

    pub fn all_versions(&self) -> impl Iterator<Item = &VersionRecord> {
        std::iter::once(&self.doc.latest).chain(self.versions.values())
    }

    /// Total code size of the function's versions, as GetAccountSettings counts it.
    pub fn code_size(&self) -> u64 {
        self.all_versions().map(|v| v.config.code.size).sum()
    }

    fn build(
        scope: &Scope,
        doc: FunctionDoc,
        versions: BTreeMap<u64, VersionRecord>,
        code: &CodeStore,
        previous: Option<&Function>,
    ) -> Self {
        let mut specs = HashMap::new();
        for v in std::iter::once(&doc.latest).chain(versions.values()) {
            let spec = build_spec(scope, &doc, v, code);
            // Keep the same Arc when nothing changed, so the engine sees one snapshot per change.
            let spec = match previous.and_then(|p| p.specs.get(&v.version)) {
                Some(old) if **old == spec => old.clone(),
                _ => Arc::new(spec),
            };
            specs.insert(v.version.clone(), spec);
        }
        let mut f = Self {
            doc,
            versions,
            specs,
            // Set below: what is published is derived from the function itself.
            published: Default::default(),
        };
        let state = crate::publish::function_state(scope, &f);
        f.published = match previous {
            // Unchanged for the data planes (a status transition, a tag): the same Arc.
            Some(p) if *p.published == state => p.published.clone(),
            _ => Arc::new(state),
        };
        f
    }

    /// The function as the data planes see it.
    pub fn published(&self) -> &Arc<flint_spec::FunctionState> {
        &self.published
    }
}

/// The function's variables plus what its logging configuration tells the runtime: in JSON
/// format Lambda passes the application log level as `AWS_LAMBDA_LOG_LEVEL`.
fn runtime_environment(c: &crate::configuration::VersionConfig) -> BTreeMap<String, String> {
    let mut env = c.environment_map();
    if c.logging.log_format == "JSON" {
        if let Some(level) = &c.logging.application_log_level {
            env.insert("AWS_LAMBDA_LOG_LEVEL".into(), level.clone());
        }
    }
    env
}

fn build_spec(
    scope: &Scope,
    doc: &FunctionDoc,
    v: &VersionRecord,
    code: &CodeStore,
) -> FunctionSpec {
    let c = &v.config;
    FunctionSpec {
        snapshot_id: v.snapshot_id.clone(),
        account: scope.account.clone(),
        region: scope.region.clone(),
        function_name: doc.name.clone(),
        version: v.version.clone(),
        function_arn: crate::arn::function_arn(scope, &doc.name),
        runtime: c.runtime.clone().unwrap_or_default(),
        handler: c.handler.clone().unwrap_or_default(),
        role: c.role.clone(),
        code_dir: code.dir_of(&c.code),
        layer_dirs: c
            .layer_details
            .iter()
            .map(|l| match &l.hot_reload_dir {
                Some(dir) => dir.clone(),
                None => code.layer_dir(&l.sha256_hex),
            })
            .collect(),
        hot_reload_dirs: c
            .code
            .hot_reload_dir
            .iter()
            .chain(
                c.layer_details
                    .iter()
                    .filter_map(|l| l.hot_reload_dir.as_ref()),
            )
            .cloned()
            .collect(),
        memory_mb: c.memory_size,
        timeout_secs: c.timeout,
        ephemeral_storage_mb: c.ephemeral_storage,
        environment: runtime_environment(c),
        log_group: c.logging.log_group.clone(),
        log_format: c.logging.log_format.clone(),
        reserved_concurrency: doc.reserved_concurrency,
        tracing_active: c.tracing_mode == "Active",
        image: image_spec(c, code),
    }
}

/// What an Image function runs: the image's config overridden by the function's `ImageConfig`.
/// None for zips, and for an image not pulled yet (such a version is not invocable).
fn image_spec(c: &VersionConfig, code: &CodeStore) -> Option<flint_spec::ImageSpec> {
    let image = c.code.image.as_ref()?;
    let own = image.config.as_ref()?;
    let overrides = c.image_config.clone().unwrap_or_default();
    Some(flint_spec::ImageSpec {
        rootfs: code.images().rootfs(&image.manifest_digest),
        entrypoint: overrides
            .entry_point
            .unwrap_or_else(|| own.entrypoint.clone()),
        command: overrides.command.unwrap_or_else(|| own.cmd.clone()),
        working_dir: overrides
            .working_directory
            .unwrap_or_else(|| own.working_dir.clone()),
        env: own
            .env
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
}

/// A function being changed: the caller edits it, [`Index::modify`] persists what was touched.
pub struct Draft {
    pub doc: FunctionDoc,
    versions: BTreeMap<u64, VersionRecord>,
    touched: BTreeSet<u64>,
    removed: BTreeSet<u64>,
}

impl Draft {
    pub fn versions(&self) -> &BTreeMap<u64, VersionRecord> {
        &self.versions
    }
    /// Adds or replaces a published version.
    pub fn put_version(&mut self, n: u64, record: VersionRecord) {
        self.versions.insert(n, record);
        self.touched.insert(n);
        self.removed.remove(&n);
    }
    pub fn version_mut(&mut self, n: u64) -> Option<&mut VersionRecord> {
        let v = self.versions.get_mut(&n)?;
        self.touched.insert(n);
        Some(v)
    }
    pub fn remove_version(&mut self, n: u64) -> Option<VersionRecord> {
        let v = self.versions.remove(&n)?;
        self.touched.remove(&n);
        self.removed.insert(n);
        Some(v)
    }
}

/// One function's place in the index. `current` is None once the function is deleted (a writer
/// that waited on the lock then sees it is gone).
pub struct Slot {
    writer: tokio::sync::Mutex<()>,
    current: RwLock<Option<Arc<Function>>>,
}

impl Slot {
    pub fn current(&self) -> Option<Arc<Function>> {
        self.current.read().clone()
    }
}

/// Every function of every scope.
pub struct Index {
    store: Arc<Store>,
    code: Arc<CodeStore>,
    scopes: RwLock<HashMap<Scope, BTreeMap<String, Arc<Slot>>>>,
    /// Where changes are published. Lock order: the feed's lock, then `scopes`, then a slot's
    /// `current`.
    feed: Arc<ChangeFeed>,
    /// The account concurrency limit (for the unreserved pools), and each scope's unreserved
    /// concurrency as last published.
    account_limit: std::sync::atomic::AtomicU32,
    unreserved: Mutex<HashMap<Scope, u32>>,
}

fn store_err(e: flint_store::StoreError) -> LambdaError {
    LambdaError::service(format!("store: {e}"))
}

fn version_key(name: &str, n: u64) -> String {
    format!("{name}:{n:010}")
}

fn put(
    scope: &Scope,
    kind: &str,
    key: String,
    value: &impl Serialize,
) -> Result<Change, LambdaError> {
    let value = serde_json::to_string(value).map_err(|e| LambdaError::service(e.to_string()))?;
    Ok(Change::Put {
        account: scope.account.clone(),
        region: scope.region.clone(),
        kind: kind.into(),
        key,
        value,
    })
}

fn delete(scope: &Scope, kind: &str, key: String) -> Change {
    Change::Delete {
        account: scope.account.clone(),
        region: scope.region.clone(),
        kind: kind.into(),
        key,
    }
}

impl Index {
    /// Loads every function from the store. Versions left Pending/InProgress by a previous run
    /// are settled now: their code was unpacked before the change was persisted.
    pub fn load(
        store: Arc<Store>,
        code: Arc<CodeStore>,
        account_limit: u32,
    ) -> Result<Self, flint_store::StoreError> {
        let mut docs: HashMap<(Scope, String), FunctionDoc> = HashMap::new();
        for d in store.load::<FunctionDoc>(KIND_FUNCTION, FORMAT, upgrade_unchanged)? {
            let scope = Scope {
                account: d.account,
                region: d.region,
            };
            docs.insert((scope, d.key), d.value);
        }
        let mut versions: HashMap<(Scope, String), BTreeMap<u64, VersionRecord>> = HashMap::new();
        for d in store.load::<VersionRecord>(KIND_VERSION, FORMAT, upgrade_unchanged)? {
            let name = d.key.rsplit_once(':').map(|(name, _)| name.to_string());
            let number = d.value.version.parse::<u64>().ok();
            let (Some(name), Some(n)) = (name, number) else {
                let doc = flint_store::Doc {
                    account: d.account,
                    region: d.region,
                    kind: KIND_VERSION.into(),
                    key: d.key,
                    format: FORMAT,
                    value: serde_json::to_string(&d.value).unwrap_or_default(),
                };
                tracing::error!(key = %doc.key, "version record with a malformed key or number moved aside");
                store.move_aside(&doc, "malformed key or version number")?;
                continue;
            };
            let scope = Scope {
                account: d.account,
                region: d.region,
            };
            versions
                .entry((scope, name))
                .or_default()
                .insert(n, d.value);
        }
        let mut changes = Vec::new();
        let mut scopes: HashMap<Scope, BTreeMap<String, Arc<Slot>>> = HashMap::new();
        for ((scope, name), mut doc) in docs {
            let mut vs = versions
                .remove(&(scope.clone(), name.clone()))
                .unwrap_or_default();
            // An image not pulled yet keeps its version Pending: the pull resumes after start
            // (`ControlPlane::resume_image_pulls`).
            if !doc.latest.status.is_settled() && !awaits_image(&doc.latest) {
                settle_record(&mut doc.latest);
            }
            for (n, v) in vs.iter_mut() {
                if !v.status.is_settled() && !awaits_image(v) {
                    settle_record(v);
                    if let Ok(c) = put(&scope, KIND_VERSION, version_key(&name, *n), v) {
                        changes.push(c);
                    }
                }
            }
            if let Ok(c) = put(&scope, KIND_FUNCTION, name.clone(), &doc) {
                changes.push(c);
            }
            let f = Function::build(&scope, doc, vs, &code, None);
            let slot = Slot {
                writer: tokio::sync::Mutex::new(()),
                current: RwLock::new(Some(Arc::new(f))),
            };
            scopes
                .entry(scope)
                .or_default()
                .insert(name, Arc::new(slot));
        }
        if !changes.is_empty() {
            store.apply(&changes)?;
        }
        Ok(Self {
            store,
            code,
            scopes: RwLock::new(scopes),
            feed: Arc::new(ChangeFeed::new()),
            account_limit: std::sync::atomic::AtomicU32::new(account_limit),
            unreserved: Mutex::new(HashMap::new()),
        })
    }

    /// The change feed, shared with the other publishers (event source mappings).
    pub(crate) fn feed(&self) -> &Arc<ChangeFeed> {
        &self.feed
    }

    /// A subscription to the change feed: every function and every scope's unreserved
    /// concurrency as they stand, and what `more` says stands besides, then every change.
    pub fn subscribe(&self, more: impl FnOnce() -> Vec<flint_spec::Change>) -> Subscription {
        self.feed.subscribe_with(|| {
            let mut changes: Vec<flint_spec::Change> = self
                .all()
                .into_iter()
                .map(|(scope, f)| flint_spec::Change::Function {
                    state: Some(f.published.clone()),
                    name: f.name().to_string(),
                    scope,
                    retired: Vec::new(),
                })
                .collect();
            let scopes: BTreeSet<Scope> = self.scopes.read().keys().cloned().collect();
            let mut published = self.unreserved.lock();
            for scope in scopes {
                let n = self.compute_unreserved(&scope);
                published.insert(scope.clone(), n);
                changes.push(flint_spec::Change::Unreserved {
                    scope,
                    unreserved: n,
                });
            }
            changes.extend(more());
            changes
        })
    }

    /// Changes the account concurrency limit; every scope's unreserved pool is republished.
    pub fn set_account_limit(&self, limit: u32) {
        self.feed.publish_with(|| {
            self.account_limit
                .store(limit, std::sync::atomic::Ordering::Release);
            let scopes: Vec<Scope> = self.scopes.read().keys().cloned().collect();
            let changes = scopes
                .iter()
                .filter_map(|s| self.unreserved_change(s))
                .collect();
            ((), changes)
        });
    }

    fn compute_unreserved(&self, scope: &Scope) -> u32 {
        let limit = self
            .account_limit
            .load(std::sync::atomic::Ordering::Acquire);
        crate::publish::unreserved(&self.list(scope), limit)
    }

    /// The scope's unreserved concurrency, if it moved since it was last published. Called
    /// under the feed's lock.
    fn unreserved_change(&self, scope: &Scope) -> Option<flint_spec::Change> {
        let n = self.compute_unreserved(scope);
        let mut published = self.unreserved.lock();
        if published.get(scope) == Some(&n) {
            return None;
        }
        published.insert(scope.clone(), n);
        Some(flint_spec::Change::Unreserved {
            scope: scope.clone(),
            unreserved: n,
        })
    }

    /// The changes to publish once a function changed from `old` to `new` (None: it did not
    /// exist / no longer exists). Nothing about the function if the data planes would see no
    /// difference.
    fn changes_of(
        &self,
        scope: &Scope,
        name: &str,
        old: Option<&Function>,
        new: Option<&Function>,
        retired: Vec<String>,
    ) -> Vec<flint_spec::Change> {
        let state = new.map(|f| f.published.clone());
        let same = match (old, &state) {
            (Some(o), Some(n)) => Arc::ptr_eq(&o.published, n),
            _ => false,
        };
        let mut changes = Vec::new();
        if !same || !retired.is_empty() {
            changes.push(flint_spec::Change::Function {
                scope: scope.clone(),
                name: name.to_string(),
                state,
                retired,
            });
        }
        changes.extend(self.unreserved_change(scope));
        changes
    }

    /// The function's current view (no disk access).
    pub fn get(&self, scope: &Scope, name: &str) -> Option<Arc<Function>> {
        let slot = self.scopes.read().get(scope)?.get(name)?.clone();
        slot.current()
    }

    /// All functions of a scope, by name.
    pub fn list(&self, scope: &Scope) -> Vec<Arc<Function>> {
        let slots: Vec<Arc<Slot>> = self
            .scopes
            .read()
            .get(scope)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        slots.iter().filter_map(|s| s.current()).collect()
    }

    pub fn contains(&self, scope: &Scope, name: &str) -> bool {
        self.get(scope, name).is_some()
    }

    /// Adds a new function; 409 if the name is taken. Persisted before it becomes visible.
    pub fn insert(
        &self,
        scope: &Scope,
        doc: FunctionDoc,
        versions: BTreeMap<u64, VersionRecord>,
    ) -> Result<Arc<Function>, LambdaError> {
        let mut changes = vec![put(scope, KIND_FUNCTION, doc.name.clone(), &doc)?];
        for (n, v) in &versions {
            changes.push(put(scope, KIND_VERSION, version_key(&doc.name, *n), v)?);
        }
        let name = doc.name.clone();
        let f = Arc::new(Function::build(scope, doc, versions, &self.code, None));
        self.feed.publish_with(|| {
            {
                let mut scopes = self.scopes.write();
                let functions = scopes.entry(scope.clone()).or_default();
                if functions.get(&name).is_some_and(|s| s.current().is_some()) {
                    return (Err(LambdaError::function_already_exists(&name)), Vec::new());
                }
                if let Err(e) = self.store.apply(&changes) {
                    return (Err(store_err(e)), Vec::new());
                }
                let slot = Slot {
                    writer: tokio::sync::Mutex::new(()),
                    current: RwLock::new(Some(f.clone())),
                };
                functions.insert(name.clone(), Arc::new(slot));
            }
            (
                Ok(()),
                self.changes_of(scope, &name, None, Some(&f), Vec::new()),
            )
        })?;
        Ok(f)
    }

    /// Changes one function under its writer lock: `edit` sees the current state and may refuse;
    /// what it touched is persisted in one transaction, then published (with the snapshot ids
    /// that no longer exist, for the engine to retire). Returns the new view and the edit's result.
    pub async fn modify<R>(
        &self,
        scope: &Scope,
        name: &str,
        not_found: impl FnOnce() -> LambdaError,
        edit: impl FnOnce(&Function, &mut Draft) -> Result<R, LambdaError>,
    ) -> Result<(Arc<Function>, R), LambdaError> {
        let slot = self.slot(scope, name).ok_or_else(not_found)?;
        let _guard = slot.writer.lock().await;
        let Some(current) = slot.current() else {
            return Err(LambdaError::function_not_found(&crate::arn::function_arn(
                scope, name,
            )));
        };
        let mut draft = Draft {
            doc: current.doc.clone(),
            versions: current.versions.clone(),
            touched: BTreeSet::new(),
            removed: BTreeSet::new(),
        };
        let result = edit(&current, &mut draft)?;
        let mut changes = vec![put(scope, KIND_FUNCTION, name.to_string(), &draft.doc)?];
        for n in &draft.touched {
            if let Some(v) = draft.versions.get(n) {
                changes.push(put(scope, KIND_VERSION, version_key(name, *n), v)?);
            }
        }
        for n in &draft.removed {
            changes.push(delete(scope, KIND_VERSION, version_key(name, *n)));
        }
        self.store.apply(&changes).map_err(store_err)?;
        let next = Arc::new(Function::build(
            scope,
            draft.doc,
            draft.versions,
            &self.code,
            Some(&current),
        ));
        let retired = retired_snapshots(&current, Some(&next));
        self.feed.publish_with(|| {
            *slot.current.write() = Some(next.clone());
            (
                (),
                self.changes_of(scope, name, Some(&current), Some(&next), retired),
            )
        });
        Ok((next, result))
    }

    /// Deletes a whole function (all versions); its snapshots are retired.
    pub async fn remove(
        &self,
        scope: &Scope,
        name: &str,
        not_found: impl FnOnce() -> LambdaError,
    ) -> Result<(), LambdaError> {
        let slot = self.slot(scope, name).ok_or_else(not_found)?;
        let _guard = slot.writer.lock().await;
        let Some(current) = slot.current() else {
            return Err(LambdaError::function_not_found(&crate::arn::function_arn(
                scope, name,
            )));
        };
        let mut changes = vec![delete(scope, KIND_FUNCTION, name.to_string())];
        for n in current.versions.keys() {
            changes.push(delete(scope, KIND_VERSION, version_key(name, *n)));
        }
        self.store.apply(&changes).map_err(store_err)?;
        self.feed.publish_with(|| {
            *slot.current.write() = None;
            {
                let mut scopes = self.scopes.write();
                if let Some(functions) = scopes.get_mut(scope) {
                    if functions.get(name).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                        functions.remove(name);
                    }
                }
            }
            let retired = retired_snapshots(&current, None);
            (
                (),
                self.changes_of(scope, name, Some(&current), None, retired),
            )
        });
        Ok(())
    }

    fn slot(&self, scope: &Scope, name: &str) -> Option<Arc<Slot>> {
        self.scopes.read().get(scope)?.get(name).cloned()
    }

    /// Every scope's functions (for start-up checks and account-wide sums).
    pub fn all(&self) -> Vec<(Scope, Arc<Function>)> {
        let scopes = self.scopes.read();
        scopes
            .iter()
            .flat_map(|(scope, fns)| {
                fns.values()
                    .filter_map(move |s| s.current().map(|f| (scope.clone(), f)))
            })
            .collect()
    }
}

/// Snapshot ids of `old` that `new` no longer has.
fn retired_snapshots(old: &Function, new: Option<&Function>) -> Vec<String> {
    let kept: BTreeSet<&str> = new
        .map(|n| n.all_versions().map(|v| v.snapshot_id.as_str()).collect())
        .unwrap_or_default();
    old.all_versions()
        .map(|v| v.snapshot_id.as_str())
        .filter(|id| !kept.contains(id))
        .map(str::to_string)
        .collect()
}

/// Marks a version's pending change as applied (new RevisionId, as AWS does on each transition).
/// A version whose container image is not pulled yet.
pub(crate) fn awaits_image(v: &VersionRecord) -> bool {
    v.config
        .code
        .image
        .as_ref()
        .is_some_and(|i| i.config.is_none())
}

pub fn settle_record(v: &mut VersionRecord) {
    v.status = crate::lifecycle::Status::settled();
    v.revision_id = uuid::Uuid::new_v4().to_string();
}
