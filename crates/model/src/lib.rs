//! Acoustic models on candle: today the Whisper encoder–decoder, loaded from CTranslate2 or
//! Hugging Face weight files.
//!
//! Brief overview: [`Whisper::load_ct2`] / [`Whisper::load_safetensors`] memory-map a weights
//! file and build the network ([`Precision`] picks f32 or 8-bit linear layers);
//! [`Whisper::encode`] turns a 30-s log-mel window into an [`EncoderOutput`]; a
//! [`DecoderSession`] feeds tokens and returns [`Logits`], keeping the self-attention cache
//! across steps and reordering it between beams; [`Whisper::alignment_scores`] gives the
//! cross-attention scores word timestamps are computed from.
//!
//! candle types never appear in this crate's public API, so the backend can change without
//! touching the decoder or the engine.

mod ct2;
mod ctc;
pub mod deepspeech;
mod error;
mod int8file;
#[doc(hidden)]
pub mod ops;
mod weights;
mod whisper;

pub use ct2::{Ct2Dtype, Ct2File, Ct2Var};
pub use ctc::{CtcAcoustic, HeadLayer, read_ctc_head, write_ctc_acoustic, write_ctc_head};
pub use deepspeech::{DeepSpeech, DsDims, DsMetadata, LstmState, MfccParams};
pub use error::{Error, Result};
pub use harken_kernels::{CpuReport, Isa};
pub use int8file::{FloatWeights, INT8_FORMAT, Int8Report, write_int8};
pub use whisper::{
    AlignmentScores, DecoderSession, Dims, EncoderOutput, Logits, Precision, Whisper,
};
