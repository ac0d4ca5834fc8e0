//! Errors of decoding.

use harken_core::ErrorKind;

/// Why decoding failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The tokenizer file is missing or malformed.
    #[error("tokenizer {path}: {detail}")]
    Tokenizer {
        /// The file.
        path: std::path::PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// A language code the model does not know.
    #[error("unknown language {code:?}; the model knows: {known}")]
    UnknownLanguage {
        /// The code asked for.
        code: String,
        /// The codes the model knows, comma-separated.
        known: String,
    },
    /// An option the model cannot honour (translation on an English-only model, …).
    #[error("{0}")]
    Unsupported(String),
    /// The model failed while scoring tokens.
    #[error("model step failed")]
    Model(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Tokenizer { .. } => ErrorKind::Unavailable,
            Error::UnknownLanguage { .. } | Error::Unsupported(_) => ErrorKind::InvalidInput,
            Error::Model(_) => ErrorKind::Internal,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
