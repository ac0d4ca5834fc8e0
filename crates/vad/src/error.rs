//! The crate's error type.

/// What can go wrong loading the VAD model or checking its options.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The weights file could not be read.
    #[error("reading VAD weights {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a safetensors file, or not the Silero network this crate runs.
    #[error("VAD weights: {0}")]
    Weights(String),
    /// An option is out of range.
    #[error("invalid VAD option: {0}")]
    Option(String),
}
