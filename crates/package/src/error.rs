//! Errors of package handling.

use std::path::PathBuf;

use harken_core::ErrorKind;

/// A package could not be opened, verified or built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The manifest is malformed or inconsistent.
    #[error("invalid MLmodel: {detail}")]
    Manifest {
        /// What is wrong.
        detail: String,
    },
    /// The manifest was written by a newer (or older) schema.
    #[error(
        "MLmodel has harken schema_version {found}; this build reads version {supported} (upgrade Harken or re-pack the model)"
    )]
    UnsupportedSchema {
        /// Version in the file.
        found: u64,
        /// Version this build reads.
        supported: u32,
    },
    /// A listed file is missing or unreadable.
    #[error("{}: {detail}", file.display())]
    Missing {
        /// The file.
        file: PathBuf,
        /// Why.
        detail: String,
    },
    /// A file's size differs from the manifest.
    #[error("{}: size is {actual} bytes, the manifest says {expected}", file.display())]
    SizeMismatch {
        /// The file.
        file: PathBuf,
        /// Size in the manifest.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },
    /// A file's contents differ from the manifest.
    #[error("{}: sha256 is {actual}, the manifest says {expected}", file.display())]
    DigestMismatch {
        /// The file.
        file: PathBuf,
        /// sha256 in the manifest.
        expected: String,
        /// sha256 of the bytes on disk.
        actual: String,
    },
    /// A path would leave the package directory.
    #[error("path {path:?} is not a plain relative path inside the package")]
    UnsafePath {
        /// The offending path.
        path: String,
    },
    /// The source directory is not a model Harken can pack.
    #[error("cannot pack {}: {detail}", dir.display())]
    NotAModel {
        /// The directory.
        dir: PathBuf,
        /// What is missing.
        detail: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_owned(), source }
    }

    /// The failure class.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Missing { .. } | Error::NotAModel { .. } => ErrorKind::NotFound,
            Error::Io { .. } => ErrorKind::Internal,
            _ => ErrorKind::InvalidInput,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
