//! The content-addressed cache on local disk.
//!
//! ```text
//! ROOT/blobs/sha256/<hex>      one read-only file per distinct content, named by its sha256
//! ROOT/packages/<digest>/      a package: MLmodel + hard links to blobs (so mmap reads the blob)
//! ROOT/refs/<sha256(uri)>.json which package a URI resolved to last (offline mode, archives)
//! ROOT/tmp/                    partial downloads (<hex>.partial, resumable) and staging dirs
//! ROOT/locks/                  lock files: per blob being downloaded, per package in use, per
//!                              archive URI being fetched; `gc` deletes those nobody holds
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

/// How a lock is held: exclusive for downloads, imports and eviction; shared for a package lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockMode {
    Exclusive,
    Shared,
}

/// The name of the lock a package's lease takes.
pub(crate) fn package_lock(digest: &str) -> String {
    format!("pkg-{digest}")
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

    fn lock_path(&self, name: &str) -> PathBuf {
        self.locks().join(format!("{name}.lock"))
    }

    /// Take lock `name` in `mode`, waiting for it.
    pub(crate) fn lock(&self, name: &str, mode: LockMode) -> Result<File> {
        let p = self.lock_path(name);
        match self.acquire(name, mode, true, &mut || {})? {
            Some(f) => Ok(f),
            // A blocking acquisition either locks or fails with an error.
            None => Err(Error::io(&p, std::io::Error::other("lock acquisition gave up"))),
        }
    }

    /// Take lock `name` in `mode` if nobody holds it in a conflicting mode; `None` otherwise.
    pub(crate) fn try_lock(&self, name: &str, mode: LockMode) -> Result<Option<File>> {
        self.acquire(name, mode, false, &mut || {})
    }

    /// Whether someone holds lock `name` (in any mode). Creates no lock file: a holder's file is
    /// always linked at its path (see [`Layout::acquire`]).
    pub(crate) fn is_locked(&self, name: &str) -> bool {
        let p = self.lock_path(name);
        match File::options().write(true).open(&p) {
            Ok(f) => matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
            Err(_) => false,
        }
    }

    /// Open (creating) `locks/<name>.lock` and lock it. `before_lock` runs between the open and
    /// the lock (a test hook; production passes a no-op).
    ///
    /// Lock files are removed by [`Layout::remove_idle_locks`], which unlinks a file only while
    /// it holds that file's exclusive lock. So a process may open a file, wait for its lock, and
    /// get it only after the file was unlinked: the lock it holds then guards nothing, and a
    /// third process could create a fresh file and lock that at the same time. So after locking
    /// we check that the path still names the file we locked, and start over when it does not.
    fn acquire(
        &self,
        name: &str,
        mode: LockMode,
        wait: bool,
        before_lock: &mut dyn FnMut(),
    ) -> Result<Option<File>> {
        use std::fs::TryLockError;
        let p = self.lock_path(name);
        loop {
            let f = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&p)
                .map_err(|e| Error::io(&p, e))?;
            before_lock();
            let locked = match (mode, wait) {
                (LockMode::Exclusive, true) => f.lock().map_err(TryLockError::Error),
                (LockMode::Shared, true) => f.lock_shared().map_err(TryLockError::Error),
                (LockMode::Exclusive, false) => f.try_lock(),
                (LockMode::Shared, false) => f.try_lock_shared(),
            };
            match locked {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => return Err(Error::io(&p, e)),
            }
            if still_linked(&f, &p)? {
                return Ok(Some(f));
            }
        }
    }

    /// Delete every lock file nobody holds; returns how many. Each is unlinked while this
    /// process holds its exclusive lock, which [`Layout::acquire`] relies on.
    pub(crate) fn remove_idle_locks(&self) -> usize {
        let Ok(rd) = std::fs::read_dir(self.locks()) else { return 0 };
        let mut removed = 0;
        for e in rd.filter_map(|e| e.ok()) {
            let file_name = e.file_name().to_string_lossy().into_owned();
            let Some(name) = file_name.strip_suffix(".lock") else { continue };
            if let Ok(Some(_held)) = self.try_lock(name, LockMode::Exclusive)
                && std::fs::remove_file(e.path()).is_ok()
            {
                removed += 1;
            }
        }
        removed
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

/// Whether `path` still names the open file `f` (same device and inode).
fn still_linked(f: &File, path: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let held = f.metadata().map_err(|e| Error::io(path, e))?;
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.dev() == held.dev() && m.ino() == held.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> (tempfile::TempDir, Layout) {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let l = Layout::new(tmp.path().join("store")).unwrap_or_else(|e| panic!("{e}"));
        (tmp, l)
    }

    /// A cleaner unlinks the lock file between our open and our lock: we must not come back
    /// holding a lock on the unlinked file, which no other process would ever see.
    #[test]
    fn a_lock_file_unlinked_before_locking_is_reopened() {
        let (_tmp, l) = layout();
        let path = l.lock_path("x");
        let mut calls = 0;
        let mut unlink_once = || {
            calls += 1;
            if calls == 1 {
                std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
            }
        };
        let f = l
            .acquire("x", LockMode::Exclusive, true, &mut unlink_once)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("a waiting acquisition locks"));
        assert_eq!(calls, 2, "the first, unlinked file was given up");
        assert!(still_linked(&f, &path).unwrap_or_else(|e| panic!("{e}")));
        // And it really excludes: a second acquisition cannot take it.
        assert!(l.try_lock("x", LockMode::Shared).unwrap_or_else(|e| panic!("{e}")).is_none());
    }

    #[test]
    fn idle_lock_files_are_removed_held_ones_kept() {
        let (_tmp, l) = layout();
        let held = l.lock("held", LockMode::Shared).unwrap_or_else(|e| panic!("{e}"));
        drop(l.lock("idle", LockMode::Exclusive).unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(l.remove_idle_locks(), 1);
        assert!(l.lock_path("held").is_file());
        assert!(!l.lock_path("idle").exists());
        assert!(l.is_locked("held") && !l.is_locked("idle"));
        assert!(!l.lock_path("idle").exists(), "is_locked creates no file");
        drop(held);
        assert_eq!(l.remove_idle_locks(), 1);
        assert!(std::fs::read_dir(l.locks()).map(|d| d.count()).unwrap_or(1) == 0);
    }
}
