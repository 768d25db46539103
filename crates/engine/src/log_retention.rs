//! Log retention: a function's log streams are deleted once older than the retention period
//! (by last write), and its oldest streams go first while all of them together exceed the
//! per-function size cap — so that the logs of a busy or chatty function cannot fill Flint's
//! disk. Streams of live environments are kept (they are still being written). Runs at start and
//! periodically in the background (`flint serve --log-retention-days`, `--log-retention-mb`).

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::{Duration, SystemTime};

use crate::Inner;

/// How long and how much of a function's logs are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRetention {
    /// Streams last written longer ago than this are deleted (None: kept forever).
    pub max_age: Option<Duration>,
    /// A function's streams together stay under this many bytes, oldest deleted first (None: no
    /// cap).
    pub max_bytes_per_function: Option<u64>,
}

impl Default for LogRetention {
    /// 7 days and 1 GiB per function: a week of history, as a developer expects locally.
    fn default() -> Self {
        Self {
            max_age: Some(Duration::from_secs(7 * 24 * 3600)),
            max_bytes_per_function: Some(1024 * 1024 * 1024),
        }
    }
}

/// How often retention is applied.
const PERIOD: Duration = Duration::from_secs(600);

/// Applies `retention` at start and every [`PERIOD`] until the engine is gone.
pub(crate) async fn enforce(inner: Weak<Inner>, retention: LogRetention) {
    if retention.max_age.is_none() && retention.max_bytes_per_function.is_none() {
        return;
    }
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(me) = inner.upgrade() else { return };
        let root = me.config.layout.logs();
        let open: HashSet<PathBuf> = me
            .live_environments()
            .iter()
            .map(|e| e.log.path().to_path_buf())
            .collect();
        drop(me);
        let swept =
            tokio::task::spawn_blocking(move || apply(&root, retention, SystemTime::now(), &open))
                .await;
        match swept {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!("log retention: deleted {n} log stream(s)"),
            Ok(Err(e)) => tracing::warn!("log retention: {e}"),
            Err(e) => tracing::warn!("log retention: {e}"),
        }
    }
}

/// One stream file as found on disk.
struct Found {
    path: PathBuf,
    modified: SystemTime,
    bytes: u64,
}

/// Applies `retention` to every function's streams under `root`
/// (`<account>/<region>/<function>/<stream>.log`); `open` streams are kept. Returns how many
/// streams were deleted.
pub(crate) fn apply(
    root: &Path,
    retention: LogRetention,
    now: SystemTime,
    open: &HashSet<PathBuf>,
) -> io::Result<usize> {
    let mut deleted = 0;
    for function_dir in function_dirs(root)? {
        let mut streams = Vec::new();
        collect(&function_dir, &mut streams)?;
        // Oldest first.
        streams.sort_by(|a, b| a.modified.cmp(&b.modified).then(a.path.cmp(&b.path)));
        let mut total: u64 = streams.iter().map(|s| s.bytes).sum();
        for s in &streams {
            if open.contains(&s.path) {
                continue;
            }
            let expired = retention
                .max_age
                .is_some_and(|age| now.duration_since(s.modified).unwrap_or_default() > age);
            let over = retention
                .max_bytes_per_function
                .is_some_and(|cap| total > cap);
            if !expired && !over {
                continue;
            }
            match fs::remove_file(&s.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let _ = fs::remove_file(crate::logs::index_path(&s.path));
            total = total.saturating_sub(s.bytes);
            deleted += 1;
        }
        remove_empty_dirs(&function_dir);
    }
    Ok(deleted)
}

/// `<root>/<account>/<region>/<function>` directories.
fn function_dirs(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for account in subdirs(root)? {
        for region in subdirs(&account)? {
            out.extend(subdirs(&region)?);
        }
    }
    Ok(out)
}

fn subdirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// The `.log` files under `dir` (stream names hold `/`: they are nested).
fn collect(dir: &Path, out: &mut Vec<Found>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let ty = entry.file_type()?;
        if ty.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "log") {
            let meta = entry.metadata()?;
            out.push(Found {
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                bytes: meta.len(),
                path,
            });
        }
    }
    Ok(())
}

/// Removes the date directories left empty under a function's logs (not the function's own).
fn remove_empty_dirs(function_dir: &Path) {
    fn walk(dir: &Path) -> bool {
        let Ok(entries) = fs::read_dir(dir) else {
            return false;
        };
        let mut empty = true;
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) && walk(&path) {
                let _ = fs::remove_dir(&path);
            } else {
                empty = false;
            }
        }
        empty
    }
    walk(function_dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    /// Writes a stream (and its index) of `bytes` bytes last written `age` before `now`.
    fn stream(dir: &Path, name: &str, bytes: usize, now: SystemTime, age: Duration) -> PathBuf {
        let path = dir.join(format!("{name}.log"));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, vec![b'x'; bytes]).unwrap();
        fs::write(crate::logs::index_path(&path), "/aws/lambda/f\n").unwrap();
        let f = fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(now - age).unwrap();
        path
    }

    fn policy(days: Option<u64>, bytes: Option<u64>) -> LogRetention {
        LogRetention {
            max_age: days.map(|d| DAY * d as u32),
            max_bytes_per_function: bytes,
        }
    }

    #[test]
    fn streams_older_than_the_retention_are_deleted_with_their_index() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("000000000000/us-east-1/fn");
        let now = SystemTime::now();
        let old = stream(&f, "2026/11/01/[$LATEST]aa", 10, now, DAY * 8);
        let recent = stream(&f, "2026/12/05/[$LATEST]bb", 10, now, DAY * 6);
        let n = apply(t.path(), policy(Some(7), None), now, &HashSet::new()).unwrap();
        assert_eq!(n, 1);
        assert!(!old.exists() && !crate::logs::index_path(&old).exists());
        assert!(recent.exists());
        assert!(!f.join("2026/11").exists(), "empty date directories go too");
    }

    #[test]
    fn the_oldest_streams_go_until_the_function_fits_its_cap() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("000000000000/us-east-1/fn");
        let other = t.path().join("000000000000/us-east-1/other");
        let now = SystemTime::now();
        let s1 = stream(&f, "a/[1]1", 400, now, Duration::from_secs(30));
        let s2 = stream(&f, "a/[1]2", 400, now, Duration::from_secs(20));
        let s3 = stream(&f, "a/[1]3", 400, now, Duration::from_secs(10));
        let elsewhere = stream(&other, "a/[1]1", 900, now, Duration::from_secs(40));
        let n = apply(t.path(), policy(None, Some(1000)), now, &HashSet::new()).unwrap();
        assert_eq!(n, 1);
        assert!(!s1.exists() && s2.exists() && s3.exists());
        assert!(elsewhere.exists(), "the cap is per function");
    }

    #[test]
    fn a_stream_still_being_written_is_kept() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("000000000000/us-east-1/fn");
        let now = SystemTime::now();
        let live = stream(&f, "a/[1]1", 10, now, DAY * 30);
        let open = HashSet::from([live.clone()]);
        assert_eq!(
            apply(t.path(), policy(Some(1), Some(1)), now, &open).unwrap(),
            0
        );
        assert!(live.exists());
    }

    #[test]
    fn no_retention_keeps_everything() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("000000000000/us-east-1/fn");
        let now = SystemTime::now();
        let s = stream(&f, "a/[1]1", 10, now, DAY * 3650);
        assert_eq!(
            apply(t.path(), policy(None, None), now, &HashSet::new()).unwrap(),
            0
        );
        assert!(s.exists());
    }
}
