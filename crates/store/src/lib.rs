//! Persistence: one SQLite database under the data dir (WAL, `synchronous=FULL`, so every write
//! is durable before it returns) holding JSON documents keyed by (account, region, kind, key), and
//! content-addressed blobs (code and layer zips) stored once by SHA-256 under `blobs/`.
//!
//! Documents are deliberately generic: each resource kind (`function`, `function-version`,
//! `layer`, `async-event`, ...) serialises its own struct, so adding a resource needs no schema
//! change. Every document is a versioned envelope: (account, region, kind, key, **format**,
//! value), where the format is the kind's own record version, owned by the module that writes the
//! kind. Readers go through [`Store::load`], which upgrades older formats with the kind's
//! migration and moves a record it cannot read aside (table `moved_aside`, reported at start-up)
//! instead of skipping it. The database itself carries a schema version (`PRAGMA user_version`)
//! and is upgraded by the ordered [`MIGRATIONS`] when opened; a newer schema is refused.
//! A clustered backend would implement the same calls.

mod layout;

pub use layout::Layout;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "the data dir was written by a newer Flint (database schema {found}; this build reads up \
         to {known}): use that version, or another --data-dir"
    )]
    NewerSchema { found: u32, known: u32 },
}

/// The format every kind's records are written in unless their module says otherwise; records
/// written before formats existed read as format 0.
pub const FORMAT_1: u32 = 1;

/// Schema migrations, in order: `MIGRATIONS[n]` takes the database from schema `n` to `n + 1`.
/// Schema 0 is the release before versioning (one `docs` table without formats).
pub const MIGRATIONS: &[&str] = &[
    // 0 -> 1: a format per record (old records are format 0), and a place for records that
    // cannot be read.
    "CREATE TABLE IF NOT EXISTS docs (
        account TEXT NOT NULL, region TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (account, region, kind, key)
    ) WITHOUT ROWID;
    ALTER TABLE docs ADD COLUMN format INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE moved_aside (
        id INTEGER PRIMARY KEY,
        account TEXT NOT NULL, region TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
        format INTEGER NOT NULL, value TEXT NOT NULL, reason TEXT NOT NULL, moved_at TEXT NOT NULL
    );",
];

/// The schema this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

pub type Result<T> = std::result::Result<T, StoreError>;

/// Where a document lives. `account`/`region` may be empty for global documents.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DocKey<'a> {
    pub account: &'a str,
    pub region: &'a str,
    pub kind: &'a str,
    pub key: &'a str,
}

/// One stored document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub account: String,
    pub region: String,
    pub kind: String,
    pub key: String,
    /// The kind's record format the value is in.
    pub format: u32,
    pub value: String,
}

/// A record read by [`Store::load`], in the kind's current format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded<T> {
    pub account: String,
    pub region: String,
    pub key: String,
    pub value: T,
}

/// A record that could not be read and was moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedAside {
    pub account: String,
    pub region: String,
    pub kind: String,
    pub key: String,
    pub format: u32,
    pub reason: String,
    pub moved_at: String,
}

/// A change applied atomically with others (see [`Store::apply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Put {
        account: String,
        region: String,
        kind: String,
        key: String,
        value: String,
    },
    Delete {
        account: String,
        region: String,
        kind: String,
        key: String,
    },
}

pub struct Store {
    conn: Mutex<Connection>,
    blobs_dir: PathBuf,
    /// Wakes the checkpointer after a write (see [`checkpointer`]); closing it stops the thread.
    checkpoint: std::sync::mpsc::SyncSender<()>,
}

/// Pages of page cache per connection (negative: KiB), so that a queue of tens of thousands of
/// events is written without reading its pages back from the file.
const CACHE_KIB: i64 = 32 * 1024;
/// The WAL is checkpointed by a background thread ([`checkpointer`]) at most this often, not
/// inline by the write that fills it (a checkpoint copies pages and fsyncs the database file:
/// milliseconds a group commit, and every caller waiting on it, would wait for).
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);
/// The writer still checkpoints inline once the WAL holds this many pages (16 MiB): a bound on
/// its size should the checkpointer never find it still (a checkpoint that runs while writes
/// continue cannot let the WAL restart from its beginning; one by the writer can).
const WAL_BACKSTOP_PAGES: i64 = 4096;

const UPSERT: &str = "INSERT INTO docs (account, region, kind, key, format, value)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
     ON CONFLICT (account, region, kind, key)
     DO UPDATE SET format = excluded.format, value = excluded.value";

/// The database holds functions' environment variables (often secrets): readable by Flint's own
/// user only. Created so (SQLite gives its `-wal` and `-shm` files the database's mode), and an
/// older one readable by others is made so.
fn owner_only(database: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(database)?;
    if file.metadata()?.permissions().mode() & 0o077 != 0 {
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    for suffix in ["-wal", "-shm"] {
        let mut side = database.as_os_str().to_owned();
        side.push(suffix);
        match fs::metadata(&side) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                fs::set_permissions(&side, fs::Permissions::from_mode(0o600))?;
            }
            _ => {}
        }
    }
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the database and blob directory of the data dir `data_dir`
    /// (see [`Layout`]), upgrading the database's schema if it is older than this build's.
    pub fn open(data_dir: &Path) -> Result<Self> {
        Self::open_layout(&Layout::new(data_dir))
    }

    pub fn open_layout(layout: &Layout) -> Result<Self> {
        fs::create_dir_all(layout.root())?;
        let blobs_dir = layout.blobs();
        fs::create_dir_all(&blobs_dir)?;
        owner_only(&layout.database())?;
        let mut conn = Connection::open(layout.database())?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        conn.pragma_update(None, "wal_autocheckpoint", WAL_BACKSTOP_PAGES)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        let checkpoint = checkpointer(&layout.database())?;
        Ok(Self {
            conn: Mutex::new(conn),
            blobs_dir,
            checkpoint,
        })
    }

    /// After a write: the checkpointer may run (it is not waited for).
    fn wrote(&self) {
        let _ = self.checkpoint.try_send(());
    }

    /// Every record of `kind`, in the kind's current `format`: older records are upgraded by
    /// `upgrade(found_format, value)` (and written back upgraded), and a record that is newer
    /// than `format`, cannot be upgraded or does not parse as `T` is moved aside with the
    /// reason (never silently skipped) and reported in the log.
    pub fn load<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        format: u32,
        upgrade: impl Fn(u32, serde_json::Value) -> std::result::Result<serde_json::Value, String>,
    ) -> Result<Vec<Loaded<T>>> {
        let mut out = Vec::new();
        for doc in self.list_all(kind)? {
            let read = || -> std::result::Result<(T, Option<String>), String> {
                if doc.format > format {
                    return Err(format!(
                        "record format {} is newer than this build's ({format})",
                        doc.format
                    ));
                }
                if doc.format == format {
                    let value = serde_json::from_str(&doc.value).map_err(|e| e.to_string())?;
                    return Ok((value, None));
                }
                let old: serde_json::Value =
                    serde_json::from_str(&doc.value).map_err(|e| e.to_string())?;
                let new = upgrade(doc.format, old)?;
                let text = new.to_string();
                let value = serde_json::from_value(new).map_err(|e| e.to_string())?;
                Ok((value, Some(text)))
            };
            match read() {
                Ok((value, upgraded)) => {
                    if let Some(text) = upgraded {
                        let key = DocKey {
                            account: &doc.account,
                            region: &doc.region,
                            kind,
                            key: &doc.key,
                        };
                        self.put_record(&key, format, &text)?;
                    }
                    out.push(Loaded {
                        account: doc.account,
                        region: doc.region,
                        key: doc.key,
                        value,
                    });
                }
                Err(reason) => {
                    tracing::error!(
                        kind,
                        key = %doc.key,
                        account = %doc.account,
                        region = %doc.region,
                        "unreadable record moved aside (table moved_aside): {reason}"
                    );
                    self.move_aside(&doc, &reason)?;
                }
            }
        }
        Ok(out)
    }

    /// Moves a record out of `docs` into `moved_aside`, with why, in one transaction.
    pub fn move_aside(&self, doc: &Doc, reason: &str) -> Result<()> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO moved_aside (account, region, kind, key, format, value, reason, moved_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
        )?
        .execute(params![
            doc.account,
            doc.region,
            doc.kind,
            doc.key,
            doc.format,
            doc.value,
            reason
        ])?;
        tx.prepare_cached(
            "DELETE FROM docs WHERE account=?1 AND region=?2 AND kind=?3 AND key=?4",
        )?
        .execute(params![doc.account, doc.region, doc.kind, doc.key])?;
        tx.commit()?;
        Ok(())
    }

    /// Records moved aside so far (by this run or earlier ones), oldest first.
    pub fn moved_aside(&self) -> Result<Vec<MovedAside>> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT account, region, kind, key, format, reason, moved_at FROM moved_aside ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(MovedAside {
                account: r.get(0)?,
                region: r.get(1)?,
                kind: r.get(2)?,
                key: r.get(3)?,
                format: r.get(4)?,
                reason: r.get(5)?,
                moved_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    pub fn get(&self, k: &DocKey<'_>) -> Result<Option<String>> {
        let conn = self.conn.lock();
        let v = conn
            .prepare_cached(
                "SELECT value FROM docs WHERE account=?1 AND region=?2 AND kind=?3 AND key=?4",
            )?
            .query_row(params![k.account, k.region, k.kind, k.key], |r| r.get(0))
            .optional()?;
        Ok(v)
    }

    /// Writes a record in [`FORMAT_1`].
    pub fn put(&self, k: &DocKey<'_>, value: &str) -> Result<()> {
        self.put_record(k, FORMAT_1, value)
    }

    /// Writes a record in the kind's record format `format`.
    pub fn put_record(&self, k: &DocKey<'_>, format: u32, value: &str) -> Result<()> {
        let conn = self.conn.lock();
        conn.prepare_cached(UPSERT)?
            .execute(params![k.account, k.region, k.kind, k.key, format, value])?;
        drop(conn);
        self.wrote();
        Ok(())
    }

    /// Returns whether a document was deleted.
    pub fn delete(&self, k: &DocKey<'_>) -> Result<bool> {
        let conn = self.conn.lock();
        let n = conn
            .prepare_cached(
                "DELETE FROM docs WHERE account=?1 AND region=?2 AND kind=?3 AND key=?4",
            )?
            .execute(params![k.account, k.region, k.kind, k.key])?;
        drop(conn);
        self.wrote();
        Ok(n > 0)
    }

    /// Applies several changes in one transaction: all or none are durable.
    pub fn apply(&self, changes: &[Change]) -> Result<()> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        for c in changes {
            match c {
                Change::Put {
                    account,
                    region,
                    kind,
                    key,
                    value,
                } => {
                    tx.prepare_cached(UPSERT)?
                        .execute(params![account, region, kind, key, FORMAT_1, value])?;
                }
                Change::Delete {
                    account,
                    region,
                    kind,
                    key,
                } => {
                    tx.prepare_cached(
                        "DELETE FROM docs WHERE account=?1 AND region=?2 AND kind=?3 AND key=?4",
                    )?
                    .execute(params![account, region, kind, key])?;
                }
            }
        }
        tx.commit()?;
        drop(conn);
        self.wrote();
        Ok(())
    }

    /// Writes records (key, format, value) and deletes documents in one transaction: one
    /// fsync for the lot (group commit). All or none are durable.
    pub fn write_records(
        &self,
        puts: &[(DocKey<'_>, u32, &str)],
        deletes: &[DocKey<'_>],
    ) -> Result<()> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        for (k, format, value) in puts {
            tx.prepare_cached(UPSERT)?
                .execute(params![k.account, k.region, k.kind, k.key, format, value])?;
        }
        for k in deletes {
            tx.prepare_cached(
                "DELETE FROM docs WHERE account=?1 AND region=?2 AND kind=?3 AND key=?4",
            )?
            .execute(params![k.account, k.region, k.kind, k.key])?;
        }
        tx.commit()?;
        drop(conn);
        self.wrote();
        Ok(())
    }

    /// Every document of one kind in one scope, ordered by key.
    pub fn list(&self, account: &str, region: &str, kind: &str) -> Result<Vec<Doc>> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT account, region, kind, key, format, value FROM docs
             WHERE account=?1 AND region=?2 AND kind=?3 ORDER BY key",
        )?;
        let rows = stmt.query_map(params![account, region, kind], row_to_doc)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Every document of one kind in every scope (used to load state at start-up).
    pub fn list_all(&self, kind: &str) -> Result<Vec<Doc>> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT account, region, kind, key, format, value FROM docs WHERE kind=?1
             ORDER BY account, region, key",
        )?;
        let rows = stmt.query_map(params![kind], row_to_doc)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Stores `bytes` once by SHA-256 (durably: written to a temp file, fsynced, renamed) and
    /// returns the digest in hex.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String> {
        let digest = hex::encode(Sha256::digest(bytes));
        let path = self.blob_path(&digest);
        if !path.exists() {
            let mut tmp = tempfile::NamedTempFile::new_in(&self.blobs_dir)?;
            tmp.write_all(bytes)?;
            tmp.as_file().sync_all()?;
            tmp.persist(&path).map_err(|e| StoreError::Io(e.error))?;
            fs::File::open(&self.blobs_dir)?.sync_all()?;
        }
        Ok(digest)
    }

    pub fn get_blob(&self, digest_hex: &str) -> Result<Vec<u8>> {
        Ok(fs::read(self.blob_path(digest_hex))?)
    }

    pub fn blob_path(&self, digest_hex: &str) -> PathBuf {
        self.blobs_dir.join(digest_hex)
    }

    /// The digests of every stored blob.
    pub fn blob_digests(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.blobs_dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                out.push(name);
            }
        }
        Ok(out)
    }

    /// Removes a blob; false if there was none.
    pub fn remove_blob(&self, digest_hex: &str) -> Result<bool> {
        match fs::remove_file(self.blob_path(digest_hex)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes blobs half-written when a server stopped (`put_blob`'s temporary files). Only
    /// for the server that owns the data dir, before it stores anything.
    pub fn remove_partial_blobs(&self) -> Result<()> {
        for entry in fs::read_dir(&self.blobs_dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
}

/// Starts the thread that checkpoints the WAL of the database at `path` (its own connection: a
/// passive checkpoint runs beside the writer, never blocking it) when woken by a write, at most
/// every [`CHECKPOINT_EVERY`]; it ends when the returned sender is dropped.
fn checkpointer(path: &Path) -> Result<std::sync::mpsc::SyncSender<()>> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || {
            while rx.recv().is_ok() {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!("store: WAL checkpoint: {e}");
                }
                std::thread::sleep(CHECKPOINT_EVERY);
            }
        })?;
    Ok(tx)
}

fn row_to_doc(r: &rusqlite::Row<'_>) -> rusqlite::Result<Doc> {
    Ok(Doc {
        account: r.get(0)?,
        region: r.get(1)?,
        kind: r.get(2)?,
        key: r.get(3)?,
        format: r.get(4)?,
        value: r.get(5)?,
    })
}

/// Brings the database to [`SCHEMA_VERSION`], one migration per transaction; refuses a newer one.
fn migrate(conn: &mut Connection) -> Result<()> {
    let found: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let to = from + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", to)?;
        tx.commit()?;
        if from > 0 || has_records(conn)? {
            tracing::info!("store: database schema upgraded from {from} to {to}");
        }
    }
    Ok(())
}

fn has_records(conn: &Connection) -> Result<bool> {
    Ok(conn.query_row("SELECT EXISTS (SELECT 1 FROM docs)", [], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(k: &'a str) -> DocKey<'a> {
        DocKey {
            account: "000000000000",
            region: "us-east-1",
            kind: "function",
            key: k,
        }
    }

    #[test]
    fn a_group_commit_writes_records_and_deletes_together() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let s = Store::open(dir.path())?;
        s.put(&key("gone"), "{}")?;
        s.write_records(
            &[(key("a"), 2, "{\"a\":1}"), (key("b"), 2, "{}")],
            &[key("gone")],
        )?;
        let docs = s.list("000000000000", "us-east-1", "function")?;
        let keys: Vec<(&str, u32)> = docs.iter().map(|d| (d.key.as_str(), d.format)).collect();
        assert_eq!(keys, [("a", 2), ("b", 2)]);
        Ok(())
    }

    #[test]
    fn the_database_is_readable_by_its_owner_only() -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let layout = Layout::new(dir.path());
        let mode = |p: &Path| fs::metadata(p).map(|m| m.permissions().mode() & 0o777);
        {
            let s = Store::open(dir.path())?;
            s.put(&key("a"), "{\"secret\":1}")?;
            assert_eq!(mode(&layout.database())?, 0o600);
            let mut wal = layout.database().into_os_string();
            wal.push("-wal");
            assert_eq!(mode(Path::new(&wal))?, 0o600);
        }
        // One an earlier Flint left readable by everyone is made private.
        fs::set_permissions(layout.database(), fs::Permissions::from_mode(0o644))?;
        let _s = Store::open(dir.path())?;
        assert_eq!(mode(&layout.database())?, 0o600);
        Ok(())
    }

    #[test]
    fn documents_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.put(&key("a"), "{\"x\":1}").unwrap();
            s.put(&key("b"), "{}").unwrap();
            assert!(s.delete(&key("b")).unwrap());
            assert!(!s.delete(&key("b")).unwrap());
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.get(&key("a")).unwrap().as_deref(), Some("{\"x\":1}"));
        assert_eq!(s.get(&key("b")).unwrap(), None);
        assert_eq!(
            s.list("000000000000", "us-east-1", "function")
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            s.list("000000000000", "eu-west-1", "function")
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn apply_is_all_or_nothing_and_blobs_dedupe() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let put = |k: &str| Change::Put {
            account: "a".into(),
            region: "r".into(),
            kind: "k".into(),
            key: k.into(),
            value: "v".into(),
        };
        s.apply(&[put("1"), put("2")]).unwrap();
        assert_eq!(s.list_all("k").unwrap().len(), 2);
        let d1 = s.put_blob(b"zip").unwrap();
        let d2 = s.put_blob(b"zip").unwrap();
        assert_eq!(d1, d2);
        assert_eq!(s.get_blob(&d1).unwrap(), b"zip");
        assert_eq!(s.blob_digests().unwrap(), vec![d1.clone()]);
        assert!(s.remove_blob(&d1).unwrap());
        assert!(!s.remove_blob(&d1).unwrap());
        assert!(s.blob_digests().unwrap().is_empty());
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct V2 {
        name: String,
        size: u32,
    }

    fn upgrade(
        from: u32,
        mut v: serde_json::Value,
    ) -> std::result::Result<serde_json::Value, String> {
        match from {
            1 => {
                v["size"] = serde_json::json!(0);
                Ok(v)
            }
            _ => Err(format!("no upgrade from format {from}")),
        }
    }

    #[test]
    fn load_upgrades_old_formats_and_moves_unreadable_records_aside() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let k = |key| DocKey {
            account: "a",
            region: "r",
            kind: "thing",
            key,
        };
        s.put_record(&k("current"), 2, r#"{"name":"c","size":3}"#)
            .unwrap();
        s.put_record(&k("old"), 1, r#"{"name":"o"}"#).unwrap();
        s.put_record(&k("ancient"), 0, r#"{"name":"x"}"#).unwrap();
        s.put_record(&k("future"), 3, r#"{"name":"f","size":1}"#)
            .unwrap();
        s.put_record(&k("garbled"), 2, r#"{"name":"#).unwrap();
        let loaded: Vec<Loaded<V2>> = s.load("thing", 2, upgrade).unwrap();
        let names: Vec<(&str, u32)> = loaded
            .iter()
            .map(|l| (l.key.as_str(), l.value.size))
            .collect();
        assert_eq!(names, [("current", 3), ("old", 0)]);
        // The upgrade was written back; the others were moved aside, with why.
        let again: Vec<Loaded<V2>> = s.load("thing", 2, |_, _| Err("called".into())).unwrap();
        assert_eq!(again.len(), 2);
        let aside = s.moved_aside().unwrap();
        let keys: Vec<&str> = aside.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["ancient", "future", "garbled"]);
        assert!(aside[1].reason.contains("newer"), "{:?}", aside[1]);
        assert_eq!(s.get(&k("garbled")).unwrap(), None);
    }

    #[test]
    fn an_unversioned_database_is_upgraded_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join("flint.db")).unwrap();
            conn.execute_batch(
                "CREATE TABLE docs (account TEXT NOT NULL, region TEXT NOT NULL, kind TEXT NOT NULL,
                 key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (account, region, kind, key))
                 WITHOUT ROWID;
                 INSERT INTO docs VALUES ('a', 'r', 'function', 'f', '{}');",
            )
            .unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let docs = s.list_all("function").unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(
            docs[0].format, 0,
            "records from before formats read as format 0"
        );
        drop(s);
        {
            let conn = Connection::open(dir.path().join("flint.db")).unwrap();
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        }
        match Store::open(dir.path()) {
            Err(StoreError::NewerSchema { found, known }) => {
                assert_eq!((found, known), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            }
            other => panic!("expected NewerSchema, got {:?}", other.map(|_| ())),
        }
    }
}
