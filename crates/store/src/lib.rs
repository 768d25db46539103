//! Persistence: one SQLite database under the data dir (WAL, `synchronous=FULL`, so every write
//! is durable before it returns) holding JSON documents keyed by (account, region, kind, key), and
//! content-addressed blobs (code and layer zips) stored once by SHA-256 under `blobs/`.
//!
//! Documents are deliberately generic: each control-plane resource kind (`function`, `version`,
//! `alias`, `layer-version`, `event`, ...) serialises its own struct, so adding a resource needs no
//! schema change. A clustered backend would implement the same calls.

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
}

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
    pub value: String,
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
}

impl Store {
    /// Opens (creating if needed) `data_dir/flint.db` and `data_dir/blobs/`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        fs::create_dir_all(data_dir)?;
        let blobs_dir = data_dir.join("blobs");
        fs::create_dir_all(&blobs_dir)?;
        let conn = Connection::open(data_dir.join("flint.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS docs (
                account TEXT NOT NULL, region TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
                value TEXT NOT NULL,
                PRIMARY KEY (account, region, kind, key)
            ) WITHOUT ROWID;",
        )?;
        Ok(Self {
            conn: Mutex::new(conn),
            blobs_dir,
        })
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

    pub fn put(&self, k: &DocKey<'_>, value: &str) -> Result<()> {
        let conn = self.conn.lock();
        conn.prepare_cached(
            "INSERT INTO docs (account, region, kind, key, value) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (account, region, kind, key) DO UPDATE SET value = excluded.value",
        )?
        .execute(params![k.account, k.region, k.kind, k.key, value])?;
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
                    tx.prepare_cached(
                        "INSERT INTO docs (account, region, kind, key, value) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (account, region, kind, key) DO UPDATE SET value = excluded.value",
                    )?
                    .execute(params![account, region, kind, key, value])?;
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
        Ok(())
    }

    /// Every document of one kind in one scope, ordered by key.
    pub fn list(&self, account: &str, region: &str, kind: &str) -> Result<Vec<Doc>> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT account, region, kind, key, value FROM docs
             WHERE account=?1 AND region=?2 AND kind=?3 ORDER BY key",
        )?;
        let rows = stmt.query_map(params![account, region, kind], row_to_doc)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Every document of one kind in every scope (used to load state at start-up).
    pub fn list_all(&self, kind: &str) -> Result<Vec<Doc>> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT account, region, kind, key, value FROM docs WHERE kind=?1
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
}

fn row_to_doc(r: &rusqlite::Row<'_>) -> rusqlite::Result<Doc> {
    Ok(Doc {
        account: r.get(0)?,
        region: r.get(1)?,
        kind: r.get(2)?,
        key: r.get(3)?,
        value: r.get(4)?,
    })
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
    }
}
