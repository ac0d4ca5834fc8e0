//! Harken model packages: a directory holding the model's files and an `MLmodel` manifest that
//! MLflow accepts, with Harken's fields (family, every file's size and sha256, front end,
//! decoding defaults, self-test clips) in a `harken` flavor. The format is documented in
//! `docs/package-format.md`.
//!
//! This crate owns the manifest schema ([`manifest`]), opening and checking a package on local
//! disk ([`Package::open`] checks structure and sizes; [`Package::verify`] hashes every file) and
//! building one from a model directory ([`pack`]). It does no network I/O: fetching packages is
//! `harken-artifacts`' job.
//!
//! A package's identity is its **digest**: the sha256 of its `MLmodel` file. The manifest lists
//! the sha256 of every other file, so the digest covers all the bytes of the package (a hash
//! tree of depth one) and two packages with the same digest are the same model.

mod error;
pub mod manifest;
mod pack;

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

pub use error::{Error, Result};
pub use manifest::{
    Decoding, EncoderRef, Family, FileEntry, Flavors, Frontend, HarkenFlavor, MlModel,
    SCHEMA_VERSION, SelfTest, WeightsFormat,
};
pub use pack::{PackOptions, pack, pack_deepspeech};

/// The manifest's file name, as MLflow spells it.
pub const MLMODEL: &str = "MLmodel";

/// Manifests larger than this are refused before parsing (a real one is a few KB).
const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// A package on local disk whose manifest parsed and whose files exist with the listed sizes.
#[derive(Debug, Clone)]
pub struct Package {
    dir: PathBuf,
    mlmodel: MlModel,
    digest: String,
}

impl Package {
    /// Open the package in `dir`: parse and validate `MLmodel`, check that every listed file
    /// exists with its listed size. Cheap (no hashing); see [`Package::verify`].
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(MLMODEL);
        let bytes = read_manifest_bytes(&path)?;
        let package = Self::from_manifest_bytes(dir, &bytes)?;
        for f in &package.flavor().files {
            let p = package.path(&f.path);
            let meta = std::fs::metadata(&p)
                .map_err(|e| Error::Missing { file: p.clone(), detail: e.to_string() })?;
            if !meta.is_file() {
                return Err(Error::Missing { file: p, detail: "not a regular file".into() });
            }
            if meta.len() != f.size {
                return Err(Error::SizeMismatch { file: p, expected: f.size, actual: meta.len() });
            }
        }
        Ok(package)
    }

    /// Parse and validate manifest bytes for a package that will live in `dir`; no file access.
    /// Used by fetchers that read the manifest before any other file exists locally.
    pub fn from_manifest_bytes(dir: &Path, bytes: &[u8]) -> Result<Self> {
        let mlmodel = parse_manifest(bytes)?;
        Ok(Package { dir: dir.to_owned(), mlmodel, digest: sha256_hex(bytes) })
    }

    /// The package directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The whole `MLmodel` document.
    pub fn mlmodel(&self) -> &MlModel {
        &self.mlmodel
    }

    /// Harken's flavor of the manifest.
    pub fn flavor(&self) -> &HarkenFlavor {
        &self.mlmodel.flavors.harken
    }

    /// sha256 of the `MLmodel` file (lower-case hex): the package's identity.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Rewrite this package's decoding defaults in its `MLmodel` (a new digest: the package
    /// becomes a new version of itself). Everything else in the manifest is kept.
    pub fn set_decoding(&self, decoding: manifest::Decoding) -> Result<Package> {
        let mut m = self.mlmodel().clone();
        m.flavors.harken.decoding = decoding;
        let yaml = serde_norway::to_string(&m)
            .map_err(|e| Error::Manifest { detail: format!("serialising MLmodel: {e}") })?;
        let path = self.dir().join(MLMODEL);
        let tmp = self.dir().join(".MLmodel.tmp");
        std::fs::write(&tmp, yaml.as_bytes()).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        Package::open(self.dir())
    }

    /// `name:version@sha256:<first 12 hex digits>`, for logs and `/v1/models`.
    pub fn label(&self) -> String {
        let f = self.flavor();
        format!("{}:{}@sha256:{}", f.name, f.version, &self.digest[..12])
    }

    /// Absolute path of a file named in the manifest.
    pub fn path(&self, rel: &str) -> PathBuf {
        rel.split('/').fold(self.dir.clone(), |p, c| p.join(c))
    }

    /// Total bytes of all listed files.
    pub fn total_bytes(&self) -> u64 {
        self.flavor().files.iter().map(|f| f.size).sum()
    }

    /// Hash every file and compare with the manifest. `progress(done, total)` is called with
    /// bytes hashed so far.
    pub fn verify(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<()> {
        let total = self.total_bytes();
        let mut done = 0;
        for f in &self.flavor().files {
            let p = self.path(&f.path);
            let actual = sha256_file(&p, &mut |n| progress(done + n, total))?;
            if actual != f.sha256 {
                return Err(Error::DigestMismatch { file: p, expected: f.sha256.clone(), actual });
            }
            done += f.size;
        }
        progress(done, total);
        Ok(())
    }
}

fn read_manifest_bytes(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| Error::Missing {
        file: path.to_owned(),
        detail: if e.kind() == std::io::ErrorKind::NotFound {
            "no MLmodel file: not a Harken package (create one with `harken model pack`)".into()
        } else {
            e.to_string()
        },
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(Error::Manifest {
            detail: format!("MLmodel is larger than {MAX_MANIFEST_BYTES} bytes"),
        });
    }
    Ok(bytes)
}

/// Parse `MLmodel` bytes and check everything that can be checked without the files.
pub fn parse_manifest(bytes: &[u8]) -> Result<MlModel> {
    // Read the schema version before the strict parse, so that a newer manifest gets "upgrade
    // Harken" rather than an unknown-field error.
    let loose: serde_norway::Value = serde_norway::from_slice(bytes)
        .map_err(|e| Error::Manifest { detail: format!("MLmodel is not valid YAML: {e}") })?;
    let flavor = loose.get("flavors").and_then(|f| f.get("harken")).ok_or_else(|| {
        Error::Manifest { detail: "MLmodel has no `flavors.harken` section".into() }
    })?;
    match flavor.get("schema_version").and_then(serde_norway::Value::as_u64) {
        Some(v) if v == u64::from(SCHEMA_VERSION) => {}
        Some(v) => return Err(Error::UnsupportedSchema { found: v, supported: SCHEMA_VERSION }),
        None => {
            return Err(Error::Manifest {
                detail: "flavors.harken.schema_version is missing or not an integer".into(),
            });
        }
    }
    let mlmodel: MlModel = serde_norway::from_value(loose)
        .map_err(|e| Error::Manifest { detail: format!("flavors.harken: {e}") })?;
    validate(&mlmodel.flavors.harken)?;
    Ok(mlmodel)
}

fn validate(f: &HarkenFlavor) -> Result<()> {
    let bad = |detail: String| Err(Error::Manifest { detail });
    if f.name.trim().is_empty() || f.version.trim().is_empty() {
        return bad("name and version must not be empty".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for file in &f.files {
        check_relative(&file.path)?;
        if file.path == MLMODEL {
            return bad("files must not list MLmodel itself".into());
        }
        if !seen.insert(file.path.as_str()) {
            return bad(format!("file {:?} is listed twice", file.path));
        }
        if file.sha256.len() != 64
            || !file.sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return bad(format!("file {:?}: sha256 must be 64 lower-case hex digits", file.path));
        }
    }
    for p in f.family.paths() {
        if !seen.contains(p) {
            return bad(format!(
                "the {} family names {p:?}, which is not in files",
                f.family.name()
            ));
        }
    }
    for t in &f.self_test {
        if !seen.contains(t.audio.as_str()) {
            return bad(format!("self-test clip {:?} is not in files", t.audio));
        }
    }
    if f.frontend.sample_rate_hz == 0 || f.frontend.n_mels == 0 {
        return bad("frontend.sample_rate_hz and frontend.n_mels must be positive".into());
    }
    Ok(())
}

/// A manifest path must stay inside the package: relative, `/`-separated, no `.`/`..`, no
/// empty components.
pub fn check_relative(path: &str) -> Result<()> {
    let ok = !path.is_empty()
        && !path.contains('\\')
        && !path.contains('\0')
        && path.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
        && Path::new(path).components().all(|c| matches!(c, Component::Normal(_)));
    if ok { Ok(()) } else { Err(Error::UnsafePath { path: path.to_owned() }) }
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex sha256 of the file at `path`, streaming; `progress(bytes_read)`.
pub fn sha256_file(path: &Path, progress: &mut dyn FnMut(u64)) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n_total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        n_total += n as u64;
        progress(n_total);
    }
    Ok(hex(&hasher.finalize()))
}

/// An incremental sha256 for callers that hash while they write (downloads, copies).
#[derive(Default, Clone)]
pub struct Hasher(Sha256);

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }
    /// Feed bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    /// Lower-case hex digest.
    pub fn finish(self) -> String {
        hex(&self.0.finalize())
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_vectors() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn relative_paths_must_stay_inside() {
        for ok in ["model.bin", "selftest/a.wav", "a/b/c"] {
            assert!(check_relative(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a\\b", "a/."] {
            assert!(check_relative(bad).is_err(), "{bad}");
        }
    }
}
