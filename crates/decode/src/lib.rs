//! Logits → text for Whisper: tokenizer, window decoding (greedy, beam search, temperature
//! sampling with reference Whisper's logit filters and timestamp rules) and word alignment.
//!
//! Brief overview: [`WhisperTokenizer`] knows the special tokens; [`decode_window`] runs one
//! 30-s window against anything implementing [`StepModel`] and returns a [`WindowResult`];
//! [`find_alignment`] and [`assign_words`] turn cross-attention scores into word timings.
//! Nothing here touches tensors, files beyond the tokenizer, or threads.

mod alignment;
mod error;
mod search;
mod tokenizer;

pub use alignment::{
    AlignmentInput, TOKENS_PER_SECOND, WordTiming, assign_words, dtw, find_alignment,
    merge_punctuations,
};
pub use error::{Error, Result};
pub use search::{
    LmFusion, Search, StepModel, TIME_PRECISION_S, WindowOptions, WindowResult, compression_ratio,
    decode_window, initial_tokens,
};
pub use tokenizer::WhisperTokenizer;
