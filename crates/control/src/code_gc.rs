//! Garbage collection of code: the zips (blobs), unpacked code and layer contents that no
//! function version (aliases name versions, which keep theirs) and no layer version references
//! any more leave the disk, so that a deleted function's code — secrets included — is gone soon
//! after DeleteFunction, DeleteLayerVersion or an UpdateFunctionCode that replaced it.
//!
//! Mark and sweep. A digest is removed once it has been unreferenced for a grace period (which
//! covers an operation between resolving a layer and recording the function that uses it), is
//! not pinned by an ingest in flight (`code::Pins`: stored, not yet recorded), and no live or
//! starting environment runs on its directory (the engine says which, through
//! [`flint_spec::CodeUsers`]); what must wait is looked at again shortly after. Sweeps run after
//! the operations that drop references and once at start (leftovers of a crash).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::ControlPlane;

/// First look again this long after a sweep that left something waiting.
const RETRY_FIRST: Duration = Duration::from_millis(500);
/// Looks again at most this far apart while something waits (a long invoke of a deleted
/// function keeps its code).
const RETRY_MAX: Duration = Duration::from_secs(30);

/// The collector's state, owned by the control plane.
#[derive(Default)]
pub(crate) struct Collector {
    /// A permit waits for the task if it is busy sweeping: no wake is lost.
    wake: Arc<Notify>,
    /// Digests seen unreferenced, and since when.
    marked: Mutex<HashMap<String, Instant>>,
    /// Who runs code from its directories (the engine), once wired.
    users: RwLock<Option<Arc<dyn flint_spec::CodeUsers>>>,
}

/// What one sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Digests whose blob and unpacked trees were removed.
    pub removed: Vec<String>,
    /// Unreferenced digests kept for now (in grace, pinned, or in use).
    pub waiting: usize,
}

impl Collector {
    pub(crate) fn set_users(&self, users: Arc<dyn flint_spec::CodeUsers>) {
        *self.users.write() = Some(users);
    }

    /// Asks the background task for a sweep.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Sweeps once now, then whenever woken, and again while something waits.
pub(crate) fn spawn(cp: Weak<ControlPlane>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let Some(wake) = cp.upgrade().map(|me| me.gc.wake.clone()) else {
        return;
    };
    rt.spawn(async move {
        let mut retry = None::<Duration>;
        loop {
            let Some(me) = cp.upgrade() else { return };
            let swept = tokio::task::spawn_blocking({
                let me = me.clone();
                move || me.sweep_code(Instant::now())
            })
            .await;
            let waiting = match swept {
                Ok(s) => {
                    if !s.removed.is_empty() {
                        tracing::info!(
                            "code garbage collection: removed {} unreferenced package(s)",
                            s.removed.len()
                        );
                    }
                    s.waiting > 0
                }
                Err(e) => {
                    tracing::warn!("code garbage collection failed: {e}");
                    false
                }
            };
            retry = waiting.then(|| retry.map_or(RETRY_FIRST, |r| (r * 2).min(RETRY_MAX)));
            drop(me);
            let woken = wake.notified();
            match retry {
                Some(after) => {
                    tokio::select! {
                        _ = woken => retry = None,
                        _ = tokio::time::sleep(after) => {}
                    }
                }
                None => woken.await,
            }
        }
    });
}

impl ControlPlane {
    /// Who runs code from the code store's directories (the engine): their directories are
    /// kept while in use, and told when removed.
    pub fn set_code_users(&self, users: Arc<dyn flint_spec::CodeUsers>) {
        self.gc.set_users(users);
        self.gc.wake();
    }

    /// Asks for a sweep of unreferenced code (in the background; returns at once).
    pub fn collect_code(&self) {
        self.gc.wake();
    }

    /// Digests that something references: every function version's code and layers, every
    /// layer version's content.
    fn referenced_code(&self) -> HashSet<String> {
        let mut out = HashSet::new();
        for (_, f) in self.index.all() {
            for v in f.all_versions() {
                let code = &v.config.code;
                if code.hot_reload_dir.is_none() && code.image.is_none() {
                    out.insert(code.sha256_hex.clone());
                }
                for l in &v.config.layer_details {
                    if l.hot_reload_dir.is_none() {
                        out.insert(l.sha256_hex.clone());
                    }
                }
            }
        }
        self.layers.add_referenced(&mut out);
        out
    }

    /// One sweep (blocking: directory reads and removals). `now` is the clock the grace period
    /// is measured on.
    pub fn sweep_code(&self, now: Instant) -> Sweep {
        let grace = self.options.read().code_gc_grace;
        let users = self.gc.users.read().clone();
        let in_use = users.as_ref().map(|u| u.dirs_in_use()).unwrap_or_default();
        let mut candidates: HashSet<String> = HashSet::new();
        let listed = [
            self.code.unpacked_on_disk(),
            self.layers.code.unpacked_on_disk(),
            self.code
                .store()
                .blob_digests()
                .map_err(|e| std::io::Error::other(e.to_string())),
        ];
        for l in listed {
            match l {
                Ok(digests) => candidates.extend(digests),
                Err(e) => tracing::warn!("code garbage collection: listing: {e}"),
            }
        }
        let mut sweep = Sweep::default();
        let mut aside: Vec<PathBuf> = Vec::new();
        let mut removed_dirs: Vec<PathBuf> = Vec::new();
        // Pins are neither taken nor released meanwhile: an ingest that found the code on disk
        // holds its pin from before it looked, one that records its function releases it after.
        self.code.pins().while_held(|pinned| {
            let referenced = self.referenced_code();
            let mut marked = self.gc.marked.lock();
            marked.retain(|d, _| !referenced.contains(d) && candidates.contains(d));
            for digest in candidates {
                if referenced.contains(&digest) {
                    continue;
                }
                let code_dir = self.code.code_dir(&digest);
                let layer_dir = self.code.layer_dir(&digest);
                if pinned.contains_key(&digest)
                    || in_use.contains(&code_dir)
                    || in_use.contains(&layer_dir)
                {
                    sweep.waiting += 1;
                    continue;
                }
                let since = *marked.entry(digest.clone()).or_insert(now);
                if now.saturating_duration_since(since) < grace {
                    sweep.waiting += 1;
                    continue;
                }
                marked.remove(&digest);
                if let Some(a) = self.code.set_aside(&digest) {
                    aside.push(a);
                    removed_dirs.push(code_dir);
                }
                if let Some(a) = self.layers.code.set_aside(&digest) {
                    aside.push(a);
                    removed_dirs.push(layer_dir);
                }
                if let Err(e) = self.code.store().remove_blob(&digest) {
                    tracing::warn!("code garbage collection: blob {digest}: {e}");
                }
                sweep.removed.push(digest);
            }
        });
        for dir in &aside {
            crate::code::remove_aside(dir);
        }
        if let (Some(users), false) = (users, removed_dirs.is_empty()) {
            users.dirs_removed(&removed_dirs);
        }
        sweep.removed.sort();
        sweep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::test_zip;
    use crate::sub_resource::test_support::{exec, fixture, settle, ROLE};
    use base64::Engine as _;
    use serde_json::json;
    use sha2::{Digest, Sha256};

    fn zip(secret: &str) -> Vec<u8> {
        test_zip(&[("handler.py", secret.as_bytes(), 0o644)])
    }

    fn digest(zip: &[u8]) -> String {
        hex::encode(Sha256::digest(zip))
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    async fn create(cp: &ControlPlane, name: &str, zip: &[u8], layers: &[String]) {
        exec(
            cp,
            "CreateFunction",
            json!({
                "FunctionName": name, "Runtime": "python3.12", "Role": ROLE,
                "Handler": "handler.handler", "Code": {"ZipFile": b64(zip)}, "Layers": layers,
            }),
        )
        .await
        .unwrap();
        settle(cp, name, None).await;
    }

    async fn delete(cp: &ControlPlane, name: &str) {
        exec(cp, "DeleteFunction", json!({"FunctionName": name}))
            .await
            .unwrap();
    }

    /// Two sweeps a grace period apart: what a deleted reference leaves behind is gone.
    fn sweep_past_grace(cp: &ControlPlane) {
        let now = Instant::now();
        cp.sweep_code(now);
        cp.sweep_code(now + Duration::from_secs(60));
    }

    fn on_disk(cp: &ControlPlane, digest: &str) -> bool {
        cp.code.code_dir(digest).exists() || cp.code.store().blob_path(digest).exists()
    }

    fn layer_on_disk(cp: &ControlPlane, digest: &str) -> bool {
        cp.code.layer_dir(digest).exists() || cp.code.store().blob_path(digest).exists()
    }

    #[tokio::test]
    async fn a_deleted_functions_code_leaves_the_disk_while_shared_code_stays() {
        let fx = fixture();
        let (shared, own) = (zip("shared"), zip("own secret"));
        create(&fx.cp, "a", &shared, &[]).await;
        create(&fx.cp, "b", &shared, &[]).await;
        create(&fx.cp, "c", &own, &[]).await;
        delete(&fx.cp, "a").await;
        delete(&fx.cp, "c").await;
        sweep_past_grace(&fx.cp);
        assert!(!on_disk(&fx.cp, &digest(&own)));
        assert!(fx.cp.code.code_dir(&digest(&shared)).is_dir());
        assert!(fx.cp.code.store().blob_path(&digest(&shared)).is_file());
        delete(&fx.cp, "b").await;
        sweep_past_grace(&fx.cp);
        assert!(!on_disk(&fx.cp, &digest(&shared)));
    }

    #[tokio::test]
    async fn unreferenced_code_waits_out_the_grace_period() {
        let fx = fixture();
        let own = zip("x");
        create(&fx.cp, "a", &own, &[]).await;
        delete(&fx.cp, "a").await;
        let now = Instant::now();
        let first = fx.cp.sweep_code(now);
        assert!(first.removed.is_empty() && first.waiting >= 1, "{first:?}");
        assert!(on_disk(&fx.cp, &digest(&own)));
        let later = fx.cp.sweep_code(now + Duration::from_secs(3));
        assert_eq!(later.removed, vec![digest(&own)]);
    }

    #[tokio::test]
    async fn replaced_latest_code_goes_but_a_published_versions_stays() {
        let fx = fixture();
        let (v1, v2, v3) = (zip("1"), zip("2"), zip("3"));
        create(&fx.cp, "f", &v1, &[]).await;
        exec(&fx.cp, "PublishVersion", json!({"FunctionName": "f"}))
            .await
            .unwrap();
        for next in [&v2, &v3] {
            settle(&fx.cp, "f", None).await;
            exec(
                &fx.cp,
                "UpdateFunctionCode",
                json!({"FunctionName": "f", "ZipFile": b64(next)}),
            )
            .await
            .unwrap();
        }
        sweep_past_grace(&fx.cp);
        assert!(on_disk(&fx.cp, &digest(&v1)), "version 1's code");
        assert!(!on_disk(&fx.cp, &digest(&v2)), "replaced $LATEST code");
        assert!(on_disk(&fx.cp, &digest(&v3)), "$LATEST's code");
    }

    #[tokio::test]
    async fn code_pinned_by_an_ingest_in_flight_is_kept() {
        let fx = fixture();
        let own = zip("in flight");
        let ingested = fx.cp.code.ingest(&own).unwrap();
        sweep_past_grace(&fx.cp);
        assert!(on_disk(&fx.cp, &digest(&own)));
        drop(ingested);
        sweep_past_grace(&fx.cp);
        assert!(!on_disk(&fx.cp, &digest(&own)));
    }

    #[derive(Default)]
    struct FakeEngine {
        in_use: Mutex<HashSet<PathBuf>>,
        removed: Mutex<Vec<PathBuf>>,
    }

    impl flint_spec::CodeUsers for FakeEngine {
        fn dirs_in_use(&self) -> HashSet<PathBuf> {
            self.in_use.lock().clone()
        }
        fn dirs_removed(&self, dirs: &[PathBuf]) {
            self.removed.lock().extend_from_slice(dirs);
        }
    }

    #[tokio::test]
    async fn code_a_live_environment_runs_on_waits_until_it_is_gone() {
        let fx = fixture();
        let own = zip("running");
        create(&fx.cp, "a", &own, &[]).await;
        let engine = Arc::new(FakeEngine::default());
        let dir = fx.cp.code.code_dir(&digest(&own));
        engine.in_use.lock().insert(dir.clone());
        fx.cp.set_code_users(engine.clone());
        delete(&fx.cp, "a").await;
        sweep_past_grace(&fx.cp);
        assert!(dir.join("handler.py").is_file());
        engine.in_use.lock().clear();
        sweep_past_grace(&fx.cp);
        assert!(!on_disk(&fx.cp, &digest(&own)));
        assert_eq!(*engine.removed.lock(), vec![dir]);
    }

    #[tokio::test]
    async fn layer_content_stays_while_a_function_uses_it() {
        let fx = fixture();
        let content = test_zip(&[("python/secret.py", b"S = 1", 0o644)]);
        let out = exec(
            &fx.cp,
            "PublishLayerVersion",
            json!({"LayerName": "l", "Content": {"ZipFile": b64(&content)}}),
        )
        .await
        .unwrap();
        let arn = out["LayerVersionArn"].as_str().unwrap().to_string();
        create(&fx.cp, "f", &zip("f"), std::slice::from_ref(&arn)).await;
        exec(
            &fx.cp,
            "DeleteLayerVersion",
            json!({"LayerName": "l", "VersionNumber": 1}),
        )
        .await
        .unwrap();
        sweep_past_grace(&fx.cp);
        assert!(fx.cp.code.layer_dir(&digest(&content)).is_dir());
        delete(&fx.cp, "f").await;
        sweep_past_grace(&fx.cp);
        assert!(!layer_on_disk(&fx.cp, &digest(&content)));
    }
}
