//! Errors of model loading and inference.

use std::path::PathBuf;

use harken_core::ErrorKind;

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A weights file could not be opened or mapped.
    #[error("cannot read model file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A weights file is not in the format it claims.
    #[error("malformed model file {path}: {detail}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What was wrong, with the offset where it helps.
        detail: String,
    },
    /// A tensor the architecture needs is absent or has the wrong shape.
    #[error("model weights: {detail}")]
    Weights {
        /// Which tensor and what was expected.
        detail: String,
    },
    /// A caller passed inputs that do not fit the model (too many tokens, wrong mel size).
    #[error("invalid model input: {detail}")]
    Input {
        /// What was wrong.
        detail: String,
    },
    /// The tensor backend failed.
    #[error("tensor backend: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            Error::Input { .. } => ErrorKind::InvalidInput,
            Error::Io { .. } | Error::Format { .. } | Error::Weights { .. } => {
                ErrorKind::Unavailable
            }
            Error::Backend(_) => ErrorKind::Internal,
        }
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Backend(Box::new(e))
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
