//! The content-addressed cache on local disk.
//!
//! ```text
//! ROOT/blobs/sha256/<hex>      one read-only file per distinct content, named by its sha256
//! ROOT/packages/<digest>/      a package: MLmodel + hard links to blobs (so mmap reads the blob)
//! ROOT/refs/<sha256(uri)>.json which package a URI resolved to last (offline mode, archives)
//! ROOT/tmp/                    partial downloads (<hex>.partial, resumable) and staging dirs
//! ROOT/locks/                  lock files: one per blob being downloaded, one per package in use
//! ```
//!
//! Invariants: a file appears under `blobs/` only by an atomic rename after its size and sha256
//! matched; a package directory appears only by an atomic rename of a complete staging
//! directory. So nothing partial or corrupt is ever visible under `blobs/` or `packages/`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Paths of the cache layout.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub root: PathBuf,
}

/// What a URI resolved to, remembered for offline use and archive revalidation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Ref {
    pub uri: String,
    pub digest: String,
    #[serde(default)]
    pub validator: Option<String>,
    #[serde(default)]
    pub registry_version: Option<String>,
    pub resolved_unix_s: u64,
}

/// A marker file inside each package dir whose mtime is the last use (LRU eviction).
pub(crate) const USED_MARKER: &str = ".harken-last-used";

pub(crate) fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Layout {
    pub(crate) fn new(root: PathBuf) -> Result<Self> {
        let l = Layout { root };
        for d in [l.blobs(), l.packages(), l.refs(), l.tmp(), l.locks()] {
            std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        }
        Ok(l)
    }
    pub(crate) fn blobs(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }
    pub(crate) fn packages(&self) -> PathBuf {
        self.root.join("packages")
    }
    pub(crate) fn refs(&self) -> PathBuf {
        self.root.join("refs")
    }
    pub(crate) fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }
    pub(crate) fn locks(&self) -> PathBuf {
        self.root.join("locks")
    }
    pub(crate) fn blob(&self, sha: &str) -> PathBuf {
        self.blobs().join(sha)
    }
    pub(crate) fn package(&self, digest: &str) -> PathBuf {
        self.packages().join(digest)
    }
    fn ref_path(&self, uri: &str) -> PathBuf {
        self.refs().join(format!("{}.json", harken_package::sha256_hex(uri.as_bytes())))
    }

    pub(crate) fn read_ref(&self, uri: &str) -> Option<Ref> {
        let bytes = std::fs::read(self.ref_path(uri)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub(crate) fn write_ref(&self, r: &Ref) -> Result<()> {
        let path = self.ref_path(&r.uri);
        let tmp = self.tmp().join(format!("ref-{}-{}", std::process::id(), unique()));
        let bytes =
            serde_json::to_vec_pretty(r).map_err(|e| Error::io(&path, std::io::Error::other(e)))?;
        std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
    }

    pub(crate) fn all_refs(&self) -> Vec<Ref> {
        let Ok(rd) = std::fs::read_dir(self.refs()) else { return Vec::new() };
        rd.filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect()
    }

    /// Open (creating) a lock file.
    pub(crate) fn lock_file(&self, name: &str) -> Result<File> {
        let p = self.locks().join(format!("{name}.lock"));
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| Error::io(&p, e))
    }

    /// Record a use of package `digest` now.
    pub(crate) fn touch(&self, digest: &str) {
        let p = self.package(digest).join(USED_MARKER);
        if let Ok(f) = File::options().create(true).truncate(false).write(true).open(&p) {
            let _ = f.set_modified(SystemTime::now());
        }
    }

    pub(crate) fn last_used(&self, digest: &str) -> SystemTime {
        let dir = self.package(digest);
        std::fs::metadata(dir.join(USED_MARKER))
            .or_else(|_| std::fs::metadata(&dir))
            .and_then(|m| m.modified())
            .unwrap_or(UNIX_EPOCH)
    }

    /// A fresh staging directory under `tmp/`.
    pub(crate) fn staging(&self, what: &str) -> Result<PathBuf> {
        let p = self.tmp().join(format!("{what}-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        Ok(p)
    }
}

/// A process-unique suffix.
pub(crate) fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{nanos:x}{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Make `path` read-only: cached content is immutable.
pub(crate) fn make_read_only(path: &Path) -> Result<()> {
    let mut perm = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.permissions();
    perm.set_readonly(true);
    std::fs::set_permissions(path, perm).map_err(|e| Error::io(path, e))
}

/// Fsync a directory so a rename into it survives a crash.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Remove a directory tree, making read-only entries writable first is unnecessary on Unix
/// (unlink needs write permission on the directory, not the file).
pub(crate) fn remove_tree(p: &Path) {
    let _ = std::fs::remove_dir_all(p);
}
