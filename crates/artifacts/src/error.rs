//! Errors of the artifact store.

use std::path::PathBuf;

use harken_core::ErrorKind;

/// A model could not be resolved, fetched, cached or pushed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URI is not one Harken understands.
    #[error("model URI {uri:?}: {detail}")]
    BadUri {
        /// The URI as given.
        uri: String,
        /// What is wrong and what is accepted.
        detail: String,
    },
    /// `HARKEN_OFFLINE=1` and the model is not in the cache.
    #[error(
        "{uri} is not in the cache and HARKEN_OFFLINE=1 forbids the network (pull it once online with `harken model pull {uri}`)"
    )]
    Offline {
        /// The URI.
        uri: String,
    },
    /// The remote object does not exist.
    #[error("{location}: not found{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    NotFound {
        /// Where we looked.
        location: String,
        /// Extra context from the server.
        detail: Option<String>,
    },
    /// The remote store failed (after retries, for transient failures).
    #[error("{location}: {detail}")]
    Remote {
        /// What we were talking to.
        location: String,
        /// The failure.
        detail: String,
        /// Whether retrying might help.
        transient: bool,
    },
    /// An object is larger than the caller accepts.
    #[error("{location} is larger than {limit} bytes")]
    TooLarge {
        /// The object.
        location: String,
        /// The limit, bytes.
        limit: u64,
    },
    /// Downloaded bytes do not match the manifest.
    #[error(
        "{location}: sha256 is {actual}, the manifest says {expected}; the download was discarded"
    )]
    DigestMismatch {
        /// The remote file.
        location: String,
        /// Expected sha256.
        expected: String,
        /// sha256 of what arrived.
        actual: String,
    },
    /// Downloaded size differs from the manifest.
    #[error(
        "{location}: {actual} bytes arrived, the manifest says {expected}; the download was discarded"
    )]
    SizeMismatch {
        /// The remote file.
        location: String,
        /// Expected size.
        expected: u64,
        /// Received size.
        actual: u64,
    },
    /// The cache's file system is full.
    #[error(
        "no space left on the device holding the cache ({}) while writing {}: {needed} bytes needed; free space (`harken model gc` removes unused models) or point HARKEN_CACHE_DIR elsewhere",
        cache.display(), file.display()
    )]
    DiskFull {
        /// The cache root.
        cache: PathBuf,
        /// The file being written.
        file: PathBuf,
        /// Bytes the download needed.
        needed: u64,
    },
    /// An archive entry would escape the extraction directory, or is of an unsupported kind.
    #[error("archive {archive}: entry {entry:?} {detail}; refusing to extract")]
    UnsafeArchive {
        /// The archive.
        archive: String,
        /// The entry name.
        entry: String,
        /// Why it was refused.
        detail: String,
    },
    /// An archive could not be read.
    #[error("archive {archive}: {detail}")]
    Archive {
        /// The archive.
        archive: String,
        /// What failed.
        detail: String,
    },
    /// The package itself is invalid.
    #[error(transparent)]
    Package(#[from] harken_package::Error),
    /// Local file-system trouble in the cache.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
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

    pub(crate) fn remote(
        location: impl Into<String>,
        detail: impl ToString,
        transient: bool,
    ) -> Self {
        Error::Remote { location: location.into(), detail: detail.to_string(), transient }
    }

    /// Whether a retry could succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Remote { transient: true, .. })
    }

    /// The failure class.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BadUri { .. } | Error::UnsafeArchive { .. } | Error::Archive { .. } => {
                ErrorKind::InvalidInput
            }
            Error::NotFound { .. } | Error::Offline { .. } => ErrorKind::NotFound,
            Error::Remote { .. } => ErrorKind::Unavailable,
            Error::TooLarge { .. } => ErrorKind::TooLarge,
            Error::Package(e) => e.kind(),
            _ => ErrorKind::Internal,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
