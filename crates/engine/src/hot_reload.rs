//! Hot reload: functions (and layers) whose code is a host directory mounted as it is
//! (`FunctionSpec::hot_reload_dirs`). The directories are watched with inotify (the `notify`
//! crate); a change under one retires the environments of every snapshot mounting it, as an
//! update of the code would, so the next invoke starts afresh and loads the edited files
//! (interpreted runtimes keep modules loaded: a running environment would not see the edit).
//!
//! Changes arriving together (an editor's write-and-rename, a build writing many files) are
//! handled as one batch, once the tree has been quiet for 50 ms (debounce). Reads do not count: the function's own cold start opens the files.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::Inner;

/// How long a hot-reloaded tree must be quiet before its environments are retired.
const QUIET: std::time::Duration = std::time::Duration::from_millis(50);
/// The longest a batch of changes is held back.
const MAX_BATCH: std::time::Duration = std::time::Duration::from_secs(1);

/// What the engine knows of hot-reloaded snapshots.
#[derive(Default)]
pub(crate) struct HotReload {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Created when the first hot-reloaded snapshot appears (see [`HotReload::start`]).
    watcher: Option<RecommendedWatcher>,
    /// The changed paths' channel, until the watcher is created.
    events: Option<mpsc::UnboundedSender<Vec<PathBuf>>>,
    /// Watched directory → the snapshots mounting it.
    dirs: HashMap<PathBuf, HashSet<String>>,
    /// Snapshot → the watched directories it mounts.
    snapshots: HashMap<String, Vec<PathBuf>>,
    /// Directory → how many batches of changes it has seen (part of the merged-layers key, so
    /// that a merged /opt with a hot-reloaded layer is built again after a change).
    generations: HashMap<PathBuf, u64>,
}

/// Whether a watcher event is a change of the tree (not a read).
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

impl HotReload {
    /// Starts handling changes for the engine `inner` (from `Engine::follow`). Idempotent.
    pub(crate) fn start(&self, inner: Weak<Inner>) -> Option<tokio::task::JoinHandle<()>> {
        let mut st = self.state.lock();
        if st.events.is_some() || st.watcher.is_some() {
            return None;
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<PathBuf>>();
        st.events = Some(tx);
        drop(st);
        Some(tokio::spawn(async move {
            while let Some(mut paths) = rx.recv().await {
                // One batch: everything until the tree has been quiet for QUIET (a build
                // writing a binary, an editor's write-and-rename), at most MAX_BATCH long.
                let until = tokio::time::Instant::now() + MAX_BATCH;
                while let Ok(Some(more)) = tokio::time::timeout_at(
                    until.min(tokio::time::Instant::now() + QUIET),
                    rx.recv(),
                )
                .await
                {
                    paths.extend(more);
                }
                let Some(inner) = inner.upgrade() else { return };
                let retired = inner.hot_reload.changed(&paths);
                for (dir, id) in &retired {
                    tracing::info!(
                        snapshot = %id,
                        "hot reload: {} changed, retiring its environments",
                        dir.display()
                    );
                    // The pool only: the snapshot lives on (its concurrency counters and
                    // provisioned target stay), its next environments load the new files.
                    for env in inner.pools.retire(id) {
                        env.kill();
                    }
                }
            }
        }))
    }

    /// The snapshots mounting a changed path (and bumps those directories' generations).
    fn changed(&self, paths: &[PathBuf]) -> Vec<(PathBuf, String)> {
        let mut st = self.state.lock();
        let hit: Vec<PathBuf> = st
            .dirs
            .keys()
            .filter(|d| paths.iter().any(|p| p.starts_with(d)))
            .cloned()
            .collect();
        let mut out = Vec::new();
        for dir in hit {
            *st.generations.entry(dir.clone()).or_default() += 1;
            if let Some(ids) = st.dirs.get(&dir) {
                out.extend(ids.iter().map(|id| (dir.clone(), id.clone())));
            }
        }
        out
    }

    /// Follows a function's change: `specs` are its snapshots now, `retired` those gone.
    pub(crate) fn track<'a>(
        &self,
        specs: impl Iterator<Item = &'a Arc<flint_spec::FunctionSpec>>,
        retired: &[String],
    ) {
        let mut st = self.state.lock();
        for id in retired {
            st.forget(id);
        }
        for spec in specs {
            if spec.hot_reload_dirs.is_empty() || st.snapshots.contains_key(&spec.snapshot_id) {
                continue;
            }
            let id = spec.snapshot_id.clone();
            for dir in &spec.hot_reload_dirs {
                if !st.dirs.contains_key(dir) {
                    if let Err(e) = st.watch(dir) {
                        tracing::warn!("hot reload: cannot watch {}: {e}", dir.display());
                    }
                }
                st.dirs.entry(dir.clone()).or_default().insert(id.clone());
            }
            st.snapshots.insert(id, spec.hot_reload_dirs.clone());
        }
    }

    /// A number that changes whenever one of `dirs` changes.
    pub(crate) fn generation(&self, dirs: &[PathBuf]) -> u64 {
        let st = self.state.lock();
        dirs.iter()
            .map(|d| st.generations.get(d).copied().unwrap_or(0))
            .fold(0u64, |a, g| a.wrapping_mul(1_000_003).wrapping_add(g))
    }
}

impl State {
    fn watch(&mut self, dir: &Path) -> notify::Result<()> {
        if self.watcher.is_none() {
            let Some(tx) = self.events.clone() else {
                return Err(notify::Error::generic("the engine does not follow changes"));
            };
            let watcher =
                notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
                    Ok(event) if is_change(&event.kind) => {
                        let _ = tx.send(event.paths);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("hot reload: watching failed: {e}"),
                })?;
            self.watcher = Some(watcher);
        }
        match self.watcher.as_mut() {
            Some(w) => w.watch(dir, RecursiveMode::Recursive),
            None => Ok(()),
        }
    }

    fn forget(&mut self, snapshot_id: &str) {
        let Some(dirs) = self.snapshots.remove(snapshot_id) else {
            return;
        };
        for dir in dirs {
            let now_unused = match self.dirs.get_mut(&dir) {
                Some(ids) => {
                    ids.remove(snapshot_id);
                    ids.is_empty()
                }
                None => false,
            };
            if now_unused {
                self.dirs.remove(&dir);
                self.generations.remove(&dir);
                if let Some(w) = self.watcher.as_mut() {
                    let _ = w.unwatch(&dir);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, ModifyKind};

    #[test]
    fn reads_are_not_changes() {
        assert!(is_change(&EventKind::Modify(ModifyKind::Data(
            DataChange::Content
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
    }

    #[test]
    fn a_change_names_the_snapshots_mounting_the_dir() {
        let t = tempfile::tempdir().unwrap();
        let hot = HotReload::default();
        // Not started: tracking still records (watching is refused, logged).
        let mut spec = crate::tests::spec("s1");
        spec.hot_reload_dirs = vec![t.path().to_path_buf()];
        let spec = Arc::new(spec);
        hot.track(std::iter::once(&spec), &[]);
        let g0 = hot.generation(&spec.hot_reload_dirs);
        let hit = hot.changed(&[t.path().join("a/b.py")]);
        assert_eq!(hit, vec![(t.path().to_path_buf(), "s1".to_string())]);
        assert_ne!(hot.generation(&spec.hot_reload_dirs), g0);
        assert!(hot.changed(&[PathBuf::from("/elsewhere")]).is_empty());
        hot.track(std::iter::empty(), &["s1".to_string()]);
        assert!(hot.changed(&[t.path().join("a/b.py")]).is_empty());
    }
}
