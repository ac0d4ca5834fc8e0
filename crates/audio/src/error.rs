//! Errors of audio decoding.

use harken_core::ErrorKind;

/// Why bytes could not become [`harken_core::Audio`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Zero bytes of input.
    #[error("audio input is empty (0 bytes)")]
    Empty,
    /// No supported container or codec recognised the bytes.
    #[error(
        "not a supported audio file (expected WAV, FLAC, MP3, OGG Vorbis/Opus, M4A/AAC or WebM/Opus)"
    )]
    Unrecognized {
        /// What the probe reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The container holds no audio track Harken can decode.
    #[error("the file contains no decodable audio track")]
    NoAudioTrack,
    /// The container's codec is recognised but not decoded.
    #[error("unsupported audio codec: {codec}")]
    UnsupportedCodec {
        /// Codec name as the container reports it.
        codec: String,
    },
    /// A header field has an impossible value.
    #[error("invalid audio header: {what}")]
    InvalidHeader {
        /// Which field and what it held.
        what: String,
    },
    /// The stream is damaged beyond use.
    #[error("corrupt audio data: {detail}")]
    Corrupt {
        /// What failed.
        detail: String,
    },
    /// The stream ended before the length its header declares.
    #[error("truncated audio: header declares {expected_frames} frames, file holds {got_frames}")]
    Truncated {
        /// Frames the header declares.
        expected_frames: u64,
        /// Frames actually decoded.
        got_frames: u64,
    },
    /// Samples that are NaN or infinite.
    #[error("audio contains non-finite samples (NaN or infinity)")]
    NonFinite,
    /// Float samples so large they cannot be audio (a damaged float stream).
    #[error("audio sample values are absurd (magnitude above {limit}); the float data is damaged")]
    OutOfRange {
        /// The largest magnitude accepted.
        limit: f32,
    },
    /// Longer than the caller allows.
    #[error("audio is longer than the limit: more than {limit_ms} ms")]
    TooLong {
        /// The configured limit.
        limit_ms: u64,
    },
    /// Reading the file failed.
    #[error("cannot read audio file {path}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The resampler rejected its configuration (a bug or an absurd rate).
    #[error("cannot resample from {from_hz} Hz to {to_hz} Hz")]
    Resample {
        /// Source rate.
        from_hz: u32,
        /// Target rate.
        to_hz: u32,
        /// What rubato reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Unrecognized { .. } | Error::UnsupportedCodec { .. } | Error::NoAudioTrack => {
                ErrorKind::UnsupportedMedia
            }
            Error::TooLong { .. } => ErrorKind::TooLarge,
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            Error::Resample { .. } => ErrorKind::Internal,
            _ => ErrorKind::InvalidInput,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
