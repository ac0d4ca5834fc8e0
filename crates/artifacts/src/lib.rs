//! The artifact store: a model URI (`path`, `file://`, `s3://`, `http(s)://`, `models:/`,
//! `runs:/`) becomes a verified package directory in a content-addressed local cache, ready to
//! be memory-mapped by the engine.
//!
//! What this crate owns: URI parsing ([`ModelUri`]), the cache layout and its invariants
//! (`cache` module: temp download → sha256 → atomic rename; per-blob and per-archive file locks
//! so concurrent processes download once; package leases taken before a package is looked up or
//! assembled; LRU eviction under a byte cap), resumable downloads with retry and
//! backoff, safe archive extraction, the MLflow REST calls, and `push`. It is async (tokio); the
//! engine never sees any of it (STYLE.md: the engine never sees a URI).

mod archive;
mod cache;
mod error;
mod mlflow;
pub mod objects;
mod profile;
mod remote;
mod uri;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use harken_package::{MLMODEL, Package};

use cache::{Layout, LockMode, Ref, now_unix, package_lock};
pub use error::{Error, Result};
use remote::Location;
pub use uri::{ModelUri, Selector};

/// Download attempts per file before giving up (each resumes where the last stopped).
const ATTEMPTS: u32 = 5;
/// First retry delay; doubles per attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// Where and how the cache works (deployment tier: resolved by the binary from flags/env).
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Cache root (e.g. `$HARKEN_CACHE_DIR/store`).
    pub root: PathBuf,
    /// Evict least-recently-used packages when the cache exceeds this many bytes.
    pub max_bytes: Option<u64>,
    /// Never touch the network (`HARKEN_OFFLINE=1`).
    pub offline: bool,
}

/// Progress and notable events, for progress bars and logs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A file download starts (`resume_at` > 0 when continuing a partial file).
    Download {
        /// File name in the package.
        file: String,
        /// Its size, bytes (when known).
        total: Option<u64>,
        /// Bytes already on disk from an earlier attempt.
        resume_at: u64,
    },
    /// Bytes of the current download so far.
    Bytes {
        /// File name.
        file: String,
        /// Bytes on disk.
        done: u64,
    },
    /// The current download finished and verified.
    Downloaded {
        /// File name.
        file: String,
        /// Bytes transferred in this process.
        bytes: u64,
    },
    /// A transient failure; retrying after `delay`.
    Retry {
        /// File name.
        file: String,
        /// Attempt number that failed (1-based).
        attempt: u32,
        /// Wait before the next attempt.
        delay: Duration,
        /// What failed.
        error: String,
    },
    /// Another process holds the download lock of this file; waiting for it.
    Waiting {
        /// File name.
        file: String,
    },
    /// The remote was unreachable; the cached copy is used.
    StaleFallback {
        /// The URI.
        uri: String,
        /// What failed.
        error: String,
    },
    /// A package was evicted to respect the size cap.
    Evicted {
        /// Its digest.
        digest: String,
        /// Bytes freed.
        bytes: u64,
    },
}

/// How long each phase of a resolution took.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// Registry lookups and manifest fetch.
    pub resolve: Duration,
    /// Transfers (and archive extraction).
    pub download: Duration,
    /// Hashing that was not overlapped with the transfer (local archives, `--verify`).
    pub verify: Duration,
}

/// A URI resolved to a local directory.
#[derive(Debug)]
pub struct Resolved {
    /// The directory the engine loads.
    pub dir: PathBuf,
    /// The package, when the directory is one (a raw local Whisper directory is not).
    pub package: Option<Package>,
    /// The chain of resolution, for logs (`models:/asr@prod → version 3 → mlflow-artifacts:/…`).
    pub source: String,
    /// The MLflow model version, for registry URIs.
    pub registry_version: Option<String>,
    /// Whether nothing had to be downloaded.
    pub cache_hit: bool,
    /// Bytes transferred.
    pub downloaded_bytes: u64,
    /// Phase durations.
    pub timings: Timings,
    /// A shared lock on the package: `gc` in another process will not evict it while held.
    _lease: Option<std::fs::File>,
}

/// One package in the cache.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    /// Package digest.
    pub digest: String,
    /// Package name.
    pub name: String,
    /// Package version.
    pub version: String,
    /// Model family.
    pub family: String,
    /// Bytes of its files.
    pub bytes: u64,
    /// Last use.
    pub last_used: SystemTime,
    /// URIs that resolved to it.
    pub uris: Vec<String>,
    /// Whether a process holds it open.
    pub in_use: bool,
}

/// What `gc` did.
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    /// Packages evicted.
    pub packages_removed: usize,
    /// Content bytes freed (blobs no package uses any more).
    pub bytes_freed: u64,
    /// Partial downloads and staging directories removed.
    pub temp_removed: usize,
    /// Bytes of content left.
    pub bytes_kept: u64,
    /// Lock files nobody held, deleted.
    pub locks_removed: usize,
}

type Sink = Arc<dyn Fn(Event) + Send + Sync>;

/// The artifact store.
pub struct Store {
    cfg: StoreConfig,
    layout: Layout,
    client: reqwest::Client,
    events: Sink,
    /// Runs right after a package directory is assembled (tests race `gc` against it).
    #[cfg(test)]
    after_assemble: Option<Box<dyn Fn() + Send + Sync>>,
}

/// What a flow (package directory or archive) produced.
struct Fetched {
    package: Package,
    downloaded: u64,
    hit: bool,
    /// The package's lease, taken before the package was looked up or assembled: a `gc` in
    /// another process can never remove it between assembly and use.
    lease: std::fs::File,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl Store {
    /// Open (creating) the cache at `cfg.root`. `events` receives progress.
    pub fn new(cfg: StoreConfig, events: impl Fn(Event) + Send + Sync + 'static) -> Result<Self> {
        let layout = Layout::new(cfg.root.clone())?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("harken/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::remote("http client", e, false))?;
        Ok(Store {
            cfg,
            layout,
            client,
            events: Arc::new(events),
            #[cfg(test)]
            after_assemble: None,
        })
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.cfg.root
    }

    fn emit(&self, e: Event) {
        (self.events)(e);
    }

    /// Resolve `uri` to a local, verified package directory (or a raw local model directory).
    pub async fn resolve(&self, uri: &ModelUri) -> Result<Resolved> {
        let key = uri.to_string();
        if let ModelUri::Local(p) = uri {
            if p.is_dir() {
                if p.join(MLMODEL).is_file() {
                    let package = Package::open(p)?;
                    return Ok(self.resolved_local(p, Some(package), &key));
                }
                return Ok(self.resolved_local(p, None, &key));
            }
            // A DeepSpeech / Coqui STT acoustic model is one file, used in place.
            if p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("tflite")) {
                return Ok(self.resolved_local(p, None, &key));
            }
            if uri::archive_kind(&p.to_string_lossy()).is_none() {
                return Err(Error::NotFound {
                    location: p.display().to_string(),
                    detail: Some("no such directory or archive".into()),
                });
            }
        }
        if self.cfg.offline && uri.is_remote() {
            return self.cached_ref(&key, "offline").ok_or(Error::Offline { uri: key });
        }
        match self.resolve_online(uri, &key).await {
            Ok(r) => {
                if let (false, Some(max)) = (r.cache_hit, self.cfg.max_bytes) {
                    let keep = r.package.as_ref().map(|p| p.digest().to_owned());
                    self.gc(Some(max), keep.as_deref())?;
                }
                Ok(r)
            }
            // A cold start must not fail because S3 hiccupped when the cache has the model.
            Err(e) if e.is_transient() => match self.cached_ref(&key, "stale") {
                Some(r) => {
                    self.emit(Event::StaleFallback { uri: key, error: e.to_string() });
                    Ok(r)
                }
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    fn resolved_local(&self, p: &Path, package: Option<Package>, key: &str) -> Resolved {
        Resolved {
            dir: p.to_owned(),
            package,
            source: key.to_owned(),
            registry_version: None,
            cache_hit: true,
            downloaded_bytes: 0,
            timings: Timings::default(),
            _lease: None,
        }
    }

    fn cached_ref(&self, key: &str, why: &str) -> Option<Resolved> {
        let r = self.layout.read_ref(key)?;
        let dir = self.layout.package(&r.digest);
        // Lease first: a package opened before its lease could be evicted in between.
        let lease = self.lease(&r.digest).ok()?;
        let package = Package::open(&dir).ok()?;
        self.layout.touch(&r.digest);
        Some(Resolved {
            dir,
            package: Some(package),
            source: format!("{key} → cached sha256:{} ({why})", &r.digest[..12]),
            registry_version: r.registry_version,
            cache_hit: true,
            downloaded_bytes: 0,
            timings: Timings::default(),
            _lease: Some(lease),
        })
    }

    /// A shared lock on package `digest`, waiting while a `gc` holds it exclusively (only for
    /// as long as it takes to remove the package). Take it before looking for the package.
    fn lease(&self, digest: &str) -> Result<std::fs::File> {
        self.layout.lock(&package_lock(digest), LockMode::Shared)
    }

    /// Take lock `name`, waiting on a blocking thread when another process holds it (then
    /// `Event::Waiting` names `file`).
    async fn lock_waiting(&self, name: &str, mode: LockMode, file: &str) -> Result<std::fs::File> {
        if let Some(f) = self.layout.try_lock(name, mode)? {
            return Ok(f);
        }
        self.emit(Event::Waiting { file: file.to_owned() });
        let (layout, lock_name) = (self.layout.clone(), name.to_owned());
        tokio::task::spawn_blocking(move || layout.lock(&lock_name, mode))
            .await
            .map_err(|e| Error::io(&self.layout.locks().join(name), std::io::Error::other(e)))?
    }

    async fn resolve_online(&self, uri: &ModelUri, key: &str) -> Result<Resolved> {
        let t0 = Instant::now();
        let (loc, source, version) = match uri {
            ModelUri::Local(p) => (Location::Local(p.clone()), key.to_owned(), None),
            ModelUri::S3 { bucket, key: k } => (
                Location::S3 {
                    store: remote::s3_store(bucket)?,
                    bucket: bucket.clone(),
                    key: k.clone(),
                },
                key.to_owned(),
                None,
            ),
            ModelUri::Http(url) => (
                Location::Http { client: self.client.clone(), url: url.clone(), auth: None },
                key.to_owned(),
                None,
            ),
            ModelUri::MlflowModel { name, selector } => {
                let m = mlflow::Mlflow::from_env(self.client.clone(), key)?;
                let (version, art) = m.resolve_model(name, selector).await?;
                (
                    m.artifact_location(&art)?,
                    format!("{key} → version {version} → {art}"),
                    Some(version),
                )
            }
            ModelUri::MlflowRun { run_id, path } => {
                let m = mlflow::Mlflow::from_env(self.client.clone(), key)?;
                let art = m.resolve_run(run_id, path).await?;
                (m.artifact_location(&art)?, format!("{key} → {art}"), None)
            }
        };
        // Judge by the path alone: a presigned URL's query string follows the extension.
        let is_archive = match &loc {
            Location::Http { url, .. } => uri::archive_kind(url.path()),
            other => uri::archive_kind(&other.to_string()),
        };
        let mut timings = Timings { resolve: t0.elapsed(), ..Timings::default() };
        let Fetched { package, downloaded, hit, lease } = match is_archive {
            Some(kind) => self.archive_flow(&loc, kind, key, version.clone(), &mut timings).await?,
            None => self.package_flow(&loc, key, version.clone(), &mut timings).await?,
        };
        let digest = package.digest().to_owned();
        self.layout.touch(&digest);
        Ok(Resolved {
            dir: package.dir().to_owned(),
            source: format!("{source} → sha256:{}", &digest[..12]),
            package: Some(package),
            registry_version: version,
            cache_hit: hit,
            downloaded_bytes: downloaded,
            timings,
            _lease: Some(lease),
        })
    }

    /// A package directory at `loc`: fetch MLmodel, then every file not already cached.
    async fn package_flow(
        &self,
        loc: &Location,
        key: &str,
        version: Option<String>,
        timings: &mut Timings,
    ) -> Result<Fetched> {
        let t = Instant::now();
        let manifest_loc = loc.join(MLMODEL);
        let bytes = match manifest_loc.get_small(4 << 20).await {
            Err(Error::NotFound { .. }) => {
                return Err(Error::NotFound {
                    location: manifest_loc.to_string(),
                    detail: Some("no MLmodel there: not a Harken package (create one with `harken model pack` and `harken model push`), or point at a .tar.gz/.zip".into()),
                });
            }
            other => other?,
        };
        let digest = harken_package::sha256_hex(&bytes);
        let dir = self.layout.package(&digest);
        let remote_pkg = Package::from_manifest_bytes(&dir, &bytes)?;
        timings.resolve += t.elapsed();
        let t = Instant::now();
        let lease = self.lock_waiting(&package_lock(&digest), LockMode::Shared, MLMODEL).await?;
        let mut downloaded = 0;
        let hit = dir.is_dir();
        if !hit {
            let mut held = Vec::new();
            for f in &remote_pkg.flavor().files {
                let (n, lock) =
                    self.fetch_blob(&loc.join(&f.path), &f.path, f.size, &f.sha256).await?;
                downloaded += n;
                held.push(lock);
            }
            self.assemble(&digest, &bytes, &remote_pkg)?;
            drop(held);
        }
        timings.download += t.elapsed();
        self.layout.write_ref(&Ref {
            uri: key.to_owned(),
            digest,
            validator: None,
            registry_version: version,
            resolved_unix_s: now_unix(),
        })?;
        Ok(Fetched { package: Package::open(&dir)?, downloaded, hit, lease })
    }

    /// Hard-link the blobs of `pkg` into a staging dir, add MLmodel, rename into `packages/`.
    fn assemble(&self, digest: &str, manifest: &[u8], pkg: &Package) -> Result<()> {
        let final_dir = self.layout.package(digest);
        if final_dir.is_dir() {
            return Ok(());
        }
        let staging = self.layout.staging("pkg")?;
        let result = (|| {
            for f in &pkg.flavor().files {
                let to = f.path.split('/').fold(staging.clone(), |p, c| p.join(c));
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                }
                let blob = self.layout.blob(&f.sha256);
                std::fs::hard_link(&blob, &to).map_err(|e| Error::io(&to, e))?;
            }
            let m = staging.join(MLMODEL);
            std::fs::write(&m, manifest)
                .map_err(|e| self.write_error(&m, e, manifest.len() as u64))?;
            match std::fs::rename(&staging, &final_dir) {
                Ok(()) => {}
                // Another process assembled the same package first.
                Err(_) if final_dir.is_dir() => cache::remove_tree(&staging),
                Err(e) => return Err(Error::io(&final_dir, e)),
            }
            cache::sync_dir(&self.layout.packages());
            Ok(())
        })();
        if result.is_err() {
            cache::remove_tree(&staging);
        }
        #[cfg(test)]
        if let Some(hook) = &self.after_assemble {
            hook();
        }
        result
    }

    fn write_error(&self, file: &Path, e: std::io::Error, needed: u64) -> Error {
        if e.kind() == std::io::ErrorKind::StorageFull
            || e.kind() == std::io::ErrorKind::QuotaExceeded
        {
            Error::DiskFull { cache: self.cfg.root.clone(), file: file.to_owned(), needed }
        } else {
            Error::io(file, e)
        }
    }

    /// Ensure blob `sha256` is in the cache, downloading it from `loc` when missing. Returns
    /// bytes transferred by this process.
    ///
    /// The blob's lock comes back held: until the caller has linked the blob into a package, a
    /// `gc` in another process (which deletes unlinked blobs only under their lock) leaves it.
    async fn fetch_blob(
        &self,
        loc: &Location,
        name: &str,
        size: u64,
        sha256: &str,
    ) -> Result<(u64, std::fs::File)> {
        let blob = self.layout.blob(sha256);
        let lock = self.lock_waiting(sha256, LockMode::Exclusive, name).await?;
        // The lock is released when `lock` drops, on every path out of here.
        if blob.is_file() {
            return Ok((0, lock));
        }
        let partial = self.layout.tmp().join(format!("{sha256}.partial"));
        let (transferred, actual) = self.download(loc, name, &partial, Some(size)).await?;
        let actual_size = std::fs::metadata(&partial).map_err(|e| Error::io(&partial, e))?.len();
        if actual_size != size {
            let _ = std::fs::remove_file(&partial);
            return Err(Error::SizeMismatch {
                location: loc.to_string(),
                expected: size,
                actual: actual_size,
            });
        }
        if actual != sha256 {
            let _ = std::fs::remove_file(&partial);
            return Err(Error::DigestMismatch {
                location: loc.to_string(),
                expected: sha256.to_owned(),
                actual,
            });
        }
        cache::make_read_only(&partial)?;
        std::fs::rename(&partial, &blob).map_err(|e| Error::io(&blob, e))?;
        cache::sync_dir(&self.layout.blobs());
        self.emit(Event::Downloaded { file: name.to_owned(), bytes: transferred });
        Ok((transferred, lock))
    }

    /// Download `loc` into `partial`, resuming from its current length, retrying transient
    /// failures with exponential backoff. Returns bytes transferred and the sha256 of the whole
    /// file, hashed as the bytes arrive (a resumed prefix is hashed once from disk), so the
    /// file is not read a second time to verify it.
    async fn download(
        &self,
        loc: &Location,
        name: &str,
        partial: &Path,
        size: Option<u64>,
    ) -> Result<(u64, String)> {
        let mut transferred = 0u64;
        let mut attempt = 0;
        let mut hashed = Hashed::default();
        loop {
            attempt += 1;
            let mut have = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
            if size.is_some_and(|s| have > s) {
                // Longer than the object: not a prefix of it. Start over.
                let _ = std::fs::remove_file(partial);
                have = 0;
            }
            if hashed.len != have {
                // A partial file from an earlier process (or a torn write): hash what is there.
                hashed = Hashed::of_prefix(partial, have)?;
            }
            if size.is_some_and(|s| have == s && s > 0) {
                return Ok((transferred, hashed.hasher.finish()));
            }
            self.emit(Event::Download { file: name.to_owned(), total: size, resume_at: have });
            match self
                .download_once(loc, name, partial, size.unwrap_or(0), &mut hashed, &mut transferred)
                .await
            {
                Ok(()) => return Ok((transferred, hashed.hasher.finish())),
                Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                    let delay = FIRST_BACKOFF * 2u32.pow(attempt - 1);
                    tracing::warn!(file = name, attempt, ?delay, error = %e, "download failed; retrying");
                    self.emit(Event::Retry {
                        file: name.to_owned(),
                        attempt,
                        delay,
                        error: e.to_string(),
                    });
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    if matches!(e, Error::DiskFull { .. }) {
                        // Do not keep hogging a full disk with a partial file.
                        let _ = std::fs::remove_file(partial);
                    }
                    return Err(e);
                }
            }
        }
    }

    /// One attempt: append from `hashed.len` to the end, hashing as it goes.
    async fn download_once(
        &self,
        loc: &Location,
        name: &str,
        partial: &Path,
        total: u64,
        hashed: &mut Hashed,
        transferred: &mut u64,
    ) -> Result<()> {
        let offset = hashed.len;
        let (mut stream, restarted) = loc.stream_from(offset).await?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(partial)
            .map_err(|e| Error::io(partial, e))?;
        let mut done = offset;
        if restarted && offset > 0 {
            file.set_len(0).map_err(|e| Error::io(partial, e))?;
            *hashed = Hashed::default();
            done = 0;
        }
        let mut last_emit = Instant::now();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            file.write_all(&chunk).map_err(|e| self.write_error(partial, e, total))?;
            hashed.hasher.update(&chunk);
            hashed.len += chunk.len() as u64;
            done += chunk.len() as u64;
            *transferred += chunk.len() as u64;
            if last_emit.elapsed() > Duration::from_millis(100) {
                self.emit(Event::Bytes { file: name.to_owned(), done });
                last_emit = Instant::now();
            }
        }
        file.sync_all().map_err(|e| self.write_error(partial, e, total))?;
        self.emit(Event::Bytes { file: name.to_owned(), done });
        if total > 0 && done < total {
            return Err(Error::remote(
                loc.to_string(),
                format!("connection ended after {done} of {total} bytes"),
                true,
            ));
        }
        Ok(())
    }

    /// An archive at `loc`: revalidate by ETag, else download, extract safely, verify, import.
    ///
    /// The fetch runs under the exclusive lock `archive-<sha256(uri)>`, the stem of its partial
    /// file: two processes pulling the same archive at once would otherwise both download it
    /// onto that one partial file. The second waits, then finds the first one's ref.
    async fn archive_flow(
        &self,
        loc: &Location,
        kind: uri::ArchiveKind,
        key: &str,
        version: Option<String>,
        timings: &mut Timings,
    ) -> Result<Fetched> {
        let t = Instant::now();
        let meta = loc.head().await?;
        timings.resolve += t.elapsed();
        if let Some(hit) = self.archive_hit(key, &meta)? {
            return Ok(hit);
        }
        let label = loc.to_string();
        let lock_name = format!("archive-{}", harken_package::sha256_hex(key.as_bytes()));
        let _fetching = self.lock_waiting(&lock_name, LockMode::Exclusive, &label).await?;
        if let Some(hit) = self.archive_hit(key, &meta)? {
            return Ok(hit);
        }
        let t = Instant::now();
        let (archive_path, downloaded, temp_archive) = match loc {
            Location::Local(p) => (p.clone(), 0, false),
            _ => {
                let partial = self.layout.tmp().join(format!("{lock_name}.partial"));
                // An archive whose validator changed must not resume onto old bytes.
                let marker = partial.with_extension("validator");
                let old = std::fs::read_to_string(&marker).ok();
                if old.as_deref() != meta.validator.as_deref() {
                    let _ = std::fs::remove_file(&partial);
                }
                if let Some(v) = &meta.validator {
                    let _ = std::fs::write(&marker, v);
                }
                let (n, _sha256) = self.download(loc, &label, &partial, meta.size).await?;
                let _ = std::fs::remove_file(&marker);
                (partial, n, true)
            }
        };
        let staging = self.layout.staging("extract")?;
        let result = async {
            let (a, s, l) = (archive_path.clone(), staging.clone(), label.clone());
            tokio::task::spawn_blocking(move || archive::extract(kind, &a, &s, &l))
                .await
                .map_err(|e| Error::Archive { archive: label.clone(), detail: e.to_string() })??;
            timings.download += t.elapsed();
            let t = Instant::now();
            let imported = self.import_dir(&staging, &label)?;
            timings.verify += t.elapsed();
            Ok::<_, Error>(imported)
        }
        .await;
        cache::remove_tree(&staging);
        if temp_archive {
            let _ = std::fs::remove_file(&archive_path);
        }
        let (package, lease) = result?;
        self.layout.write_ref(&Ref {
            uri: key.to_owned(),
            digest: package.digest().to_owned(),
            validator: meta.validator,
            registry_version: version,
            resolved_unix_s: now_unix(),
        })?;
        Ok(Fetched { package, downloaded, hit: false, lease })
    }

    /// The cached package of archive `key` when its validator still matches `meta`.
    fn archive_hit(&self, key: &str, meta: &remote::Meta) -> Result<Option<Fetched>> {
        let (Some(r), Some(v)) = (self.layout.read_ref(key), meta.validator.as_ref()) else {
            return Ok(None);
        };
        if r.validator.as_ref() != Some(v) {
            return Ok(None);
        }
        let lease = self.lease(&r.digest)?;
        Ok(Package::open(&self.layout.package(&r.digest)).ok().map(|package| Fetched {
            package,
            downloaded: 0,
            hit: true,
            lease,
        }))
    }

    /// Take an extracted directory (a package, or a raw Whisper model which gets packed),
    /// verify every file, move the files into blobs and assemble the package. Returns it with
    /// its lease, taken before assembly.
    fn import_dir(&self, extracted: &Path, label: &str) -> Result<(Package, std::fs::File)> {
        let root = find_root(extracted).ok_or_else(|| Error::Archive {
            archive: label.to_owned(),
            detail: "holds neither a Harken package (MLmodel) nor a Whisper model (model.bin or model.safetensors + tokenizer.json)".into(),
        })?;
        let packed;
        let root = if root.join(MLMODEL).is_file() {
            root
        } else {
            let out = self.layout.staging("packed")?;
            let _ = std::fs::remove_dir(&out);
            // A stable identity for a raw archive: named after the archive, time zero, so the
            // same bytes always give the same digest.
            let base = label.rsplit('/').next().unwrap_or(label);
            let base = base.split(['?', '#']).next().unwrap_or(base);
            let name = [".tar.gz", ".tgz", ".zip", ".TAR.GZ", ".ZIP"]
                .iter()
                .find_map(|ext| base.strip_suffix(ext))
                .unwrap_or(base);
            let opts = harken_package::PackOptions {
                name: Some(if name.is_empty() { "model".into() } else { name.to_owned() }),
                created_unix_s: Some(0),
                ..Default::default()
            };
            harken_package::pack(&root, &out, &opts, &mut |_, _| {})?;
            packed = out;
            packed.clone()
        };
        let pkg = Package::open(&root)?;
        pkg.verify(&mut |_, _| {}).map_err(|e| match e {
            harken_package::Error::DigestMismatch { file, expected, actual } => {
                Error::DigestMismatch {
                    location: format!("{label}: {}", file.display()),
                    expected,
                    actual,
                }
            }
            other => Error::Package(other),
        })?;
        let mut held = Vec::new();
        for f in &pkg.flavor().files {
            let blob = self.layout.blob(&f.sha256);
            held.push(self.layout.lock(&f.sha256, LockMode::Exclusive)?);
            if blob.is_file() {
                continue;
            }
            let src = pkg.path(&f.path);
            let tmp = self.layout.tmp().join(format!("{}.import-{}", f.sha256, cache::unique()));
            // Symlinks inside archives are copied through; plain files are moved.
            let is_link = std::fs::symlink_metadata(&src)
                .map(|m| m.file_type().is_symlink())
                .unwrap_or(false);
            if is_link {
                std::fs::copy(&src, &tmp).map_err(|e| self.write_error(&tmp, e, f.size))?;
            } else {
                std::fs::rename(&src, &tmp).map_err(|e| Error::io(&tmp, e))?;
            }
            cache::make_read_only(&tmp)?;
            std::fs::rename(&tmp, &blob).map_err(|e| Error::io(&blob, e))?;
        }
        let manifest = std::fs::read(root.join(MLMODEL)).map_err(|e| Error::io(&root, e))?;
        let digest = pkg.digest().to_owned();
        let lease = self.lease(&digest)?;
        self.assemble(&digest, &manifest, &pkg)?;
        drop(held);
        if root != extracted {
            cache::remove_tree(&root);
        }
        Ok((Package::open(&self.layout.package(&digest))?, lease))
    }

    /// Upload the package in `pkg` to `uri` (`s3://`, a local path / `file://`, or
    /// `models:/NAME` to register a new MLflow model version, optionally moving `alias`).
    /// Files go first and `MLmodel` last, so readers never see a manifest without its files.
    pub async fn push(
        &self,
        pkg: &Package,
        uri: &ModelUri,
        alias: Option<&str>,
    ) -> Result<PushReport> {
        if self.cfg.offline {
            return Err(Error::Offline { uri: uri.to_string() });
        }
        let key = uri.to_string();
        match uri {
            ModelUri::MlflowModel { name, selector } => {
                if !matches!(selector, Selector::Latest) {
                    return Err(Error::BadUri {
                        uri: key,
                        detail: "push to models:/NAME (a new version is created; choose the alias with --alias)".into(),
                    });
                }
                let m = mlflow::Mlflow::from_env(self.client.clone(), &key)?;
                let (run_id, artifact_uri) = m.create_run(pkg).await?;
                let pushed = async {
                    self.upload_package(pkg, &m.artifact_location(&artifact_uri)?).await?;
                    m.register(name, alias, pkg, &run_id, &artifact_uri).await
                }
                .await;
                let version = match pushed {
                    Ok(v) => v,
                    Err(e) => {
                        // A run left RUNNING looks like a push still in progress, forever.
                        if let Err(mark) = m.set_run_status(&run_id, "FAILED").await {
                            tracing::warn!(run_id, error = %mark, "could not mark the MLflow run FAILED");
                        }
                        return Err(e);
                    }
                };
                Ok(PushReport {
                    uri: format!("models:/{name}/{version}"),
                    registry_version: Some(version),
                })
            }
            ModelUri::MlflowRun { .. } => Err(Error::BadUri {
                uri: key,
                detail: "push to models:/NAME, s3:// or a directory".into(),
            }),
            ModelUri::Http(_) => Err(Error::BadUri {
                uri: key,
                detail: "push over plain HTTP is not supported; push to s3:// or models:/NAME"
                    .into(),
            }),
            ModelUri::S3 { bucket, key: k } => {
                let dest = Location::S3 {
                    store: remote::s3_store(bucket)?,
                    bucket: bucket.clone(),
                    key: k.clone(),
                };
                self.upload_package(pkg, &dest).await?;
                Ok(PushReport { uri: key, registry_version: None })
            }
            ModelUri::Local(p) => {
                self.upload_package(pkg, &Location::Local(p.clone())).await?;
                Ok(PushReport { uri: key, registry_version: None })
            }
        }
    }

    /// Every file of `pkg` below `dest`, `MLmodel` last: a reader never sees a manifest whose
    /// files are missing.
    async fn upload_package(&self, pkg: &Package, dest: &Location) -> Result<()> {
        for f in &pkg.flavor().files {
            self.upload_file(&dest.join(&f.path), &f.path, &pkg.path(&f.path)).await?;
        }
        self.upload_file(&dest.join(MLMODEL), MLMODEL, &pkg.dir().join(MLMODEL)).await
    }

    async fn upload_file(&self, dest: &Location, rel: &str, src: &Path) -> Result<()> {
        let label = format!("↑ {rel}");
        let total = std::fs::metadata(src).map(|m| m.len()).ok();
        self.emit(Event::Download { file: label.clone(), total, resume_at: 0 });
        let events = Arc::clone(&self.events);
        let name = label.clone();
        dest.put_file(src, &move |done| events(Event::Bytes { file: name.clone(), done })).await?;
        self.emit(Event::Downloaded { file: label, bytes: total.unwrap_or(0) });
        Ok(())
    }

    /// Packages in the cache, most recently used first.
    pub fn list(&self) -> Result<Vec<CacheEntry>> {
        let refs = self.layout.all_refs();
        let mut out = Vec::new();
        let rd = std::fs::read_dir(self.layout.packages())
            .map_err(|e| Error::io(&self.layout.packages(), e))?;
        for entry in rd.filter_map(|e| e.ok()) {
            let digest = entry.file_name().to_string_lossy().into_owned();
            let Ok(p) = Package::open(&entry.path()) else { continue };
            let f = p.flavor();
            out.push(CacheEntry {
                name: f.name.clone(),
                version: f.version.clone(),
                family: f.family.name().to_owned(),
                bytes: p.total_bytes(),
                last_used: self.layout.last_used(&digest),
                uris: refs.iter().filter(|r| r.digest == digest).map(|r| r.uri.clone()).collect(),
                in_use: self.in_use(&digest),
                digest,
            });
        }
        out.sort_by_key(|e| std::cmp::Reverse(e.last_used));
        Ok(out)
    }

    fn in_use(&self, digest: &str) -> bool {
        self.layout.is_locked(&package_lock(digest))
    }

    /// Evict least-recently-used packages until content is at most `max_bytes` (never `keep`
    /// nor a package in use), then delete content no package references and stale temp files.
    pub fn gc(&self, max_bytes: Option<u64>, keep: Option<&str>) -> Result<GcReport> {
        let mut report = GcReport::default();
        if let Some(max) = max_bytes {
            let mut entries = self.list()?;
            entries.sort_by_key(|e| e.last_used);
            let mut total = self.blob_bytes();
            for e in entries {
                if total <= max {
                    break;
                }
                if Some(e.digest.as_str()) == keep {
                    continue;
                }
                let Ok(Some(lock)) =
                    self.layout.try_lock(&package_lock(&e.digest), LockMode::Exclusive)
                else {
                    continue;
                };
                cache::remove_tree(&self.layout.package(&e.digest));
                drop(lock);
                report.packages_removed += 1;
                let freed = self.sweep_blobs();
                total = total.saturating_sub(freed);
                report.bytes_freed += freed;
                self.emit(Event::Evicted { digest: e.digest.clone(), bytes: freed });
                tracing::info!(digest = %e.digest, name = %e.name, freed, "evicted package");
            }
        }
        report.bytes_freed += self.sweep_blobs();
        // Refs to packages that are gone.
        for r in self.layout.all_refs() {
            if !self.layout.package(&r.digest).is_dir() {
                let p = self
                    .layout
                    .refs()
                    .join(format!("{}.json", harken_package::sha256_hex(r.uri.as_bytes())));
                let _ = std::fs::remove_file(p);
            }
        }
        // Temp files nobody is writing: a partial download's lock (`<sha256>` for a blob,
        // `archive-<sha256(uri)>` for an archive) is free; it stays held while the partial is
        // removed, so a download cannot start on it meanwhile.
        if let Ok(rd) = std::fs::read_dir(self.layout.tmp()) {
            for e in rd.filter_map(|e| e.ok()) {
                let name = e.file_name().to_string_lossy().into_owned();
                let mut _writer_lock = None;
                let busy = match name.strip_suffix(".partial") {
                    Some(stem) => match self.layout.try_lock(stem, LockMode::Exclusive) {
                        Ok(Some(l)) => {
                            _writer_lock = Some(l);
                            false
                        }
                        _ => true,
                    },
                    _ => e
                        .metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(3600)),
                };
                if !busy {
                    let p = e.path();
                    if p.is_dir() {
                        cache::remove_tree(&p);
                    } else {
                        let _ = std::fs::remove_file(&p);
                    }
                    report.temp_removed += 1;
                }
            }
        }
        // Last, so the locks this clean-up took are gone too.
        report.locks_removed = self.layout.remove_idle_locks();
        report.bytes_kept = self.blob_bytes();
        Ok(report)
    }

    /// Total bytes of content in the cache.
    pub fn blob_bytes(&self) -> u64 {
        std::fs::read_dir(self.layout.blobs())
            .map(|rd| {
                rd.filter_map(|e| e.ok()).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()
            })
            .unwrap_or(0)
    }

    /// Delete blobs no package links to (link count 1: only `blobs/` holds them).
    fn sweep_blobs(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let mut freed = 0;
        if let Ok(rd) = std::fs::read_dir(self.layout.blobs()) {
            for e in rd.filter_map(|e| e.ok()) {
                let name = e.file_name().to_string_lossy().into_owned();
                // A blob whose lock is held is being downloaded or linked into a package.
                if let Ok(m) = e.metadata()
                    && m.nlink() == 1
                    && let Ok(Some(_lock)) = self.layout.try_lock(&name, LockMode::Exclusive)
                    && std::fs::remove_file(e.path()).is_ok()
                {
                    freed += m.len();
                }
            }
        }
        freed
    }
}

/// A running sha256 over the first `len` bytes of a partial download.
#[derive(Default)]
struct Hashed {
    hasher: harken_package::Hasher,
    len: u64,
}

impl Hashed {
    /// The hash state after the first `len` bytes of `path`.
    fn of_prefix(path: &Path, len: u64) -> Result<Self> {
        use std::io::Read;
        let mut h = Hashed::default();
        if len == 0 {
            return Ok(h);
        }
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut reader = file.take(len);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader.read(&mut buf).map_err(|e| Error::io(path, e))?;
            if n == 0 {
                break;
            }
            h.hasher.update(&buf[..n]);
            h.len += n as u64;
        }
        Ok(h)
    }
}

/// The bytes of one object at `uri` (`s3://BUCKET/KEY`, `http(s)://…`, or a path), refusing
/// more than `max_bytes`. For inputs that live beside models (audio on S3 for the Lambda
/// handler); credentials and endpoint come from the same environment as model URIs.
pub async fn read_object(uri: &str, max_bytes: u64) -> Result<bytes::Bytes> {
    let loc = match ModelUri::parse(uri)? {
        ModelUri::S3 { bucket, key } => {
            Location::S3 { store: remote::s3_store(&bucket)?, bucket, key }
        }
        ModelUri::Http(url) => Location::Http { client: reqwest::Client::new(), url, auth: None },
        ModelUri::Local(p) => Location::Local(p),
        _ => {
            return Err(Error::BadUri {
                uri: uri.to_owned(),
                detail: "expected s3://BUCKET/KEY, an http(s) URL or a path".into(),
            });
        }
    };
    loc.get_small(max_bytes).await
}

/// Where a push went.
#[derive(Debug, Clone)]
pub struct PushReport {
    /// The URI to pull it back with.
    pub uri: String,
    /// The MLflow version created.
    pub registry_version: Option<String>,
}

/// The directory inside an extracted archive that holds the model: the root, or its single
/// subdirectory (archives made with `tar czf m.tar.gz model/`).
fn find_root(dir: &Path) -> Option<PathBuf> {
    let is_model = |d: &Path| {
        d.join(MLMODEL).is_file()
            || ((d.join("model.bin").is_file() || d.join("model.safetensors").is_file())
                && d.join("tokenizer.json").is_file())
    };
    if is_model(dir) {
        return Some(dir.to_owned());
    }
    let subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    match subdirs.as_slice() {
        [only] if is_model(only) => Some(only.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A raw Whisper-shaped model (never loaded) as `dir/model.tar.gz`.
    fn raw_model_archive(dir: &Path) -> PathBuf {
        let path = dir.join("model.tar.gz");
        let f = std::fs::File::create(&path).unwrap();
        let mut t =
            tar::Builder::new(flate2::write::GzEncoder::new(f, flate2::Compression::fast()));
        for (name, data) in [
            ("model.bin", vec![7u8; 64 << 10]),
            ("tokenizer.json", b"{\"synthetic\": true}".to_vec()),
            ("config.json", b"{}".to_vec()),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            t.append_data(&mut h, name, data.as_slice()).unwrap();
        }
        t.into_inner().unwrap().finish().unwrap();
        path
    }

    fn store(root: &Path) -> Store {
        let cfg = StoreConfig { root: root.to_owned(), max_bytes: None, offline: false };
        Store::new(cfg, |_| {}).unwrap()
    }

    /// `gc --all` in another process, run at the worst moment: right after the package is
    /// assembled, before `resolve` returns it. The package must survive, leased.
    #[test]
    fn gc_cannot_evict_a_package_between_assembly_and_lease() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = raw_model_archive(tmp.path());
        let root = tmp.path().join("store");
        let mut puller = store(&root);
        let other = store(&root);
        let evicted = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&evicted);
        puller.after_assemble = Some(Box::new(move || {
            let report = other.gc(Some(0), None).unwrap();
            seen.fetch_add(report.packages_removed, Ordering::SeqCst);
        }));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let resolved = rt.block_on(puller.resolve(&ModelUri::Local(archive))).unwrap();
        assert_eq!(evicted.load(Ordering::SeqCst), 0, "gc evicted the package it had to skip");
        let pkg = Package::open(&resolved.dir).unwrap();
        pkg.verify(&mut |_, _| {}).unwrap();
        let listed = store(&root).list().unwrap();
        assert!(listed.len() == 1 && listed[0].in_use, "{listed:?}");
        // Once the lease is dropped, gc may evict it.
        drop(resolved);
        assert_eq!(store(&root).gc(Some(0), None).unwrap().packages_removed, 1);
    }
}
