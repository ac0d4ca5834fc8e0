//! Shared vocabulary of Harken: the types every other crate speaks.
//!
//! Brief overview:
//! - [`Audio`]: mono `f32` PCM with its sample rate, what `harken-audio` produces.
//! - [`Transcript`], [`Segment`], [`Word`]: what the engine returns; `harken-api` renders them.
//! - [`ErrorKind`]: the closed set of failure classes that transports map to status codes.
//!
//! This crate owns no external dependency beyond `thiserror` and does no I/O.

use std::fmt;

/// Mono PCM audio, samples in `[-1, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Interleaving already removed: one sample per frame.
    pub samples: Vec<f32>,
    /// Samples per second.
    pub sample_rate_hz: u32,
}

impl Audio {
    /// Duration in seconds (0 for an empty buffer or a zero rate).
    pub fn duration_s(&self) -> f64 {
        if self.sample_rate_hz == 0 {
            return 0.0;
        }
        self.samples.len() as f64 / f64::from(self.sample_rate_hz)
    }
}

/// The class of a failure, shared by every library error through its `kind()` method.
///
/// Transports map it to a status code in one table (`harken-api`); the CLI maps every kind to
/// exit code 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input is malformed (corrupt audio, bad option value).
    InvalidInput,
    /// The input is well-formed but in a format Harken does not decode.
    UnsupportedMedia,
    /// The input exceeds a configured limit (bytes, seconds).
    TooLarge,
    /// A named thing (model, file, language) does not exist.
    NotFound,
    /// Too much work in flight; retry later.
    Overloaded,
    /// The work took longer than allowed.
    Timeout,
    /// A dependency (model, store) is not ready.
    Unavailable,
    /// A bug or an unexpected state inside Harken.
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::UnsupportedMedia => "unsupported_media",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        };
        f.write_str(s)
    }
}

/// Whether the model transcribes in the spoken language or translates into English.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Task {
    /// Text in the language spoken.
    #[default]
    Transcribe,
    /// English text whatever the language spoken.
    Translate,
}

/// One word with its time span, from cross-attention alignment.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    /// The word as decoded, including its leading space if any.
    pub text: String,
    /// Start, seconds from the start of the audio.
    pub start_s: f64,
    /// End, seconds from the start of the audio.
    pub end_s: f64,
    /// Mean token probability of the word, in `[0, 1]`.
    pub probability: f32,
}

/// A span of text with its time span and the decoder's statistics for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Index of the segment in its transcript.
    pub id: usize,
    /// Start of the 30-s window (in mel frames, 10 ms each) the segment was decoded in.
    pub seek_frames: usize,
    /// Start, seconds from the start of the audio.
    pub start_s: f64,
    /// End, seconds from the start of the audio.
    pub end_s: f64,
    /// Decoded text, with its leading space as the model produced it.
    pub text: String,
    /// Text token ids of the segment (timestamps and specials excluded).
    pub tokens: Vec<u32>,
    /// Sampling temperature the window was finally decoded at.
    pub temperature: f32,
    /// Mean log-probability of the window's tokens.
    pub avg_logprob: f32,
    /// gzip-style compression ratio of the window's text.
    pub compression_ratio: f32,
    /// Probability of `<|nospeech|>` at the first decoding step of the window.
    pub no_speech_prob: f32,
    /// Word timings, when asked for.
    pub words: Option<Vec<Word>>,
}

/// The result of transcribing one audio input.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// Full text, segments joined, leading/trailing whitespace trimmed.
    pub text: String,
    /// Language code (`en`, `de`, …) used or detected.
    pub language: String,
    /// Probability of the language when it was detected; `None` when it was given.
    pub language_probability: Option<f32>,
    /// Duration of the audio, seconds.
    pub duration_s: f64,
    /// Segments in time order.
    pub segments: Vec<Segment>,
}
