//! Zip ingestion as CreateFunction / PublishLayerVersion run it (`CodeStore::ingest`): size checks,
//! unpacking with permissions and symlinks, the content-addressed commit.
//!
//! Invariants: no panic; whatever the archive says, nothing is written outside the code store,
//! and every symlink the unpacked tree holds resolves inside it.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use flint_control::code::CodeStore;
use libfuzzer_sys::fuzz_target;

struct Fixture {
    /// `<scratch>/data` is the data dir; nothing else may ever appear in `<scratch>`.
    scratch: tempfile::TempDir,
    layout: flint_store::Layout,
    store: Arc<flint_store::Store>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let scratch = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let layout = flint_store::Layout::new(scratch.path().join("data"));
        let store =
            flint_store::Store::open_layout(&layout).unwrap_or_else(|e| panic!("store: {e}"));
        Fixture {
            scratch,
            layout,
            store: Arc::new(store),
        }
    })
}

/// Every entry under `dir`, not following symlinks.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        out.push(path.clone());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&path, out);
        }
    }
}

fuzz_target!(|zip: &[u8]| {
    let f = fixture();
    // A fresh view each time: the previous input's package was removed from disk below.
    let Ok(code) = CodeStore::open(&f.layout, f.store.clone(), Default::default()) else {
        return;
    };
    let Ok(ingested) = code.ingest(zip) else {
        return;
    };
    let root = code.code_dir(&ingested.code.sha256_hex);
    let Ok(canonical_root) = root.canonicalize() else {
        panic!("ingest succeeded but {} is missing", root.display());
    };
    let mut entries = Vec::new();
    walk(&root, &mut entries);
    for path in &entries {
        if path.is_symlink() {
            // A dangling link is harmless; one that resolves must stay inside the package.
            if let Ok(target) = path.canonicalize() {
                assert!(
                    target.starts_with(&canonical_root),
                    "{} escapes to {}",
                    path.display(),
                    target.display()
                );
            }
        }
    }
    let outside: Vec<_> = std::fs::read_dir(f.scratch.path())
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(
        outside,
        vec![std::ffi::OsString::from("data")],
        "written outside the data dir"
    );
    // Keep the disk bounded over a long run: forget this package.
    let _ = std::fs::remove_dir_all(&root);
    if let Some(blob) = code.blob_path(&ingested.code.sha256_hex) {
        let _ = std::fs::remove_file(blob);
    }
});
