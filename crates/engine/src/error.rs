//! Errors of the engine: the union of its components' errors, plus model-directory problems.

use std::path::PathBuf;

use harken_core::ErrorKind;

/// Why loading or transcribing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Decoding the audio failed.
    #[error(transparent)]
    Audio(#[from] harken_audio::Error),
    /// The network failed to load or run.
    #[error(transparent)]
    Model(#[from] harken_model::Error),
    /// Decoding tokens failed.
    #[error(transparent)]
    Decode(#[from] harken_decode::Error),
    /// The model directory lacks a file or holds an unusable one.
    #[error("model directory {dir}: {detail}")]
    ModelDir {
        /// The directory.
        dir: PathBuf,
        /// What is missing or wrong.
        detail: String,
    },
    /// An external scorer (`.scorer` package) cannot be used.
    #[error("scorer {path}: {detail}")]
    Scorer {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A transcription option is out of range.
    #[error("invalid option: {0}")]
    Option(String),
    /// Voice activity detection was asked for, but no VAD model is loaded.
    #[error("voice activity detection needs the Silero VAD model (scripts/install-models.sh vad)")]
    NoVad,
    /// The VAD model failed to load.
    #[error(transparent)]
    Vad(#[from] harken_vad::Error),
}

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Audio(e) => e.kind(),
            Error::Model(e) => e.kind(),
            Error::Decode(e) => e.kind(),
            Error::ModelDir { .. } => ErrorKind::NotFound,
            Error::Scorer { .. } => ErrorKind::Unavailable,
            Error::Option(_) => ErrorKind::InvalidInput,
            Error::NoVad => ErrorKind::Unavailable,
            Error::Vad(harken_vad::Error::Option(_)) => ErrorKind::InvalidInput,
            Error::Vad(_) => ErrorKind::Unavailable,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
