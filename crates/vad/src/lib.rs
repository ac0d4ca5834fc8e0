//! Voice activity detection: which parts of a recording hold speech.
//!
//! Pure computation, no I/O beyond reading the weights: [`Silero`] runs the Silero VAD network
//! (the model faster-whisper, speaches and whisperX use) over 16 kHz audio in 32 ms chunks;
//! [`speech_regions`] turns its per-chunk probabilities into padded speech regions with the
//! options of faster-whisper's `VadOptions`; [`Timeline`] maps times in the concatenated speech
//! back onto the original recording; [`VadStream`] and [`Endpointer`] do the same live, chunk
//! by chunk, and say when an utterance starts and ends. Every front end (file transcription,
//! streaming, the realtime WebSocket) uses this one crate.

mod error;
mod onnx;
mod regions;
mod silero;
mod stream;

pub use error::Error;
pub use regions::{Region, Timeline, VadOptions, collect, speech_regions};
pub use silero::{CHUNK, CONTEXT, SAMPLE_RATE, Silero, SileroState};
pub use stream::{EndpointOptions, Endpointer, VadEvent, VadStream};

/// The file name of the Silero weights inside an installed model directory.
pub const WEIGHTS_FILE: &str = "silero_vad_16k_op15.onnx";
