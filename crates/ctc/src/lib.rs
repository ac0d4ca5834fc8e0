//! CTC decoding for the DeepSpeech-style pipeline: an acoustic network emits one distribution
//! over an [`Alphabet`] (plus blank) per frame; this crate turns those posteriors into text.
//!
//! Brief overview: [`greedy`] takes the best symbol per frame; [`BeamSearch`] is a CTC prefix
//! beam search that fuses an n-gram language model (`harken-lm`) at word boundaries
//! (`acoustic + α·ln P_LM(word) + β` per word), prunes prefixes that cannot complete a word of a
//! [`VocabTrie`], boosts [`Hotwords`] on matching prefixes and whole words, and returns an N-best
//! list with confidences and frame-level token and word timings. [`ctc_loss`] is the CTC
//! objective and its gradient, for training acoustic heads. [`NativeDecoder`] is DeepSpeech's
//! own decoder, reproduced exactly, for models imported from DeepSpeech and Coqui STT.
//!
//! Written by hand: the published Rust CTC decoder crates either lack LM fusion at word
//! boundaries, a vocabulary trie and hot words, or bind C++ (KenLM/DeepSpeech's native client);
//! this crate keeps the pipeline pure Rust on top of Harken's own LM format.
//!
//! [`Scorer`] opens DeepSpeech's `.scorer` packages (KenLM binary + OpenFST vocabulary trie)
//! for [`NativeDecoder`], and writes them.
//!
//! **Invariant:** pure computation over slices; no I/O except [`VocabTrie`] (de)serialisation
//! from bytes and mapping a `.scorer` file read-only; no threads, no globals.

mod alphabet;
mod beam;
mod greedy;
mod loss;
pub mod native;
pub mod scorer;
mod trie;

pub use alphabet::Alphabet;
pub use beam::{BeamOptions, BeamSearch, Hotwords, LmFusion};
pub use greedy::greedy;
pub use loss::ctc_loss;
pub use native::{NativeDecoder, NativeOptions, NativeOutput};
pub use scorer::{LmScorer, Scorer, ScorerError};
pub use trie::VocabTrie;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An alphabet file is malformed.
    #[error("alphabet: {0}")]
    Alphabet(String),
    /// Text holds a character the alphabet does not have.
    #[error("character {ch:?} is not in the alphabet")]
    Unknown {
        /// The character.
        ch: char,
    },
    /// A vocabulary trie file is malformed.
    #[error("vocabulary trie: {0}")]
    Trie(String),
    /// Posteriors do not match the alphabet or are not finite.
    #[error("posteriors: {0}")]
    Input(String),
}

impl Error {
    /// The failure class, for transports.
    pub fn kind(&self) -> harken_core::ErrorKind {
        match self {
            Error::Input(_) | Error::Unknown { .. } => harken_core::ErrorKind::InvalidInput,
            Error::Alphabet(_) | Error::Trie(_) => harken_core::ErrorKind::Unavailable,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Log-posteriors of one utterance: `frames × classes` row-major, `classes` = alphabet + blank.
#[derive(Debug, Clone, Copy)]
pub struct Posteriors<'a> {
    /// Natural-log probabilities, one row per frame.
    pub log_probs: &'a [f32],
    /// Row width (alphabet size + 1; the blank is the last class).
    pub classes: usize,
}

impl<'a> Posteriors<'a> {
    /// Check shape and values; `classes` must be `alphabet.len() + 1`.
    pub fn new(log_probs: &'a [f32], classes: usize) -> Result<Self> {
        if classes < 2 || !log_probs.len().is_multiple_of(classes) {
            return Err(Error::Input(format!(
                "{} values do not form rows of {classes} classes",
                log_probs.len()
            )));
        }
        if let Some(v) = log_probs.iter().find(|v| v.is_nan() || **v > 1e-3) {
            return Err(Error::Input(format!("{v} is not a log-probability")));
        }
        Ok(Posteriors { log_probs, classes })
    }

    /// Number of frames.
    pub fn frames(&self) -> usize {
        self.log_probs.len() / self.classes
    }

    /// The row of frame `t`.
    pub fn row(&self, t: usize) -> &'a [f32] {
        &self.log_probs[t * self.classes..(t + 1) * self.classes]
    }

    /// Index of the blank class.
    pub fn blank(&self) -> usize {
        self.classes - 1
    }
}

/// One symbol of a hypothesis and the frame it was first emitted at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// Alphabet index.
    pub symbol: u32,
    /// Frame index.
    pub frame: usize,
}

/// One word of a hypothesis with its first and last frame (inclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordSpan {
    /// The word.
    pub word: String,
    /// Frame of its first symbol.
    pub start_frame: usize,
    /// Frame of its last symbol.
    pub end_frame: usize,
}

/// A decoded hypothesis.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// The text (words separated by single spaces).
    pub text: String,
    /// Emitted symbols (spaces included) with frames.
    pub tokens: Vec<Token>,
    /// Words with frame spans.
    pub words: Vec<WordSpan>,
    /// Total score (natural log): acoustic log-probability plus weighted LM and bonuses.
    pub score: f64,
    /// Acoustic part of `score` (CTC log-probability of the prefix).
    pub acoustic: f64,
    /// Probability of this hypothesis among the returned N-best (softmax of scores).
    pub confidence: f64,
}

/// Levenshtein distance between two sequences (words for WER, characters for CER), for
/// tuning and training reports.
pub fn edit_distance<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Split emitted symbols into words at the alphabet's space.
pub(crate) fn words_of(alphabet: &Alphabet, tokens: &[Token]) -> (String, Vec<WordSpan>) {
    let mut words: Vec<WordSpan> = Vec::new();
    let mut cur = String::new();
    let mut span = (0, 0);
    for t in tokens {
        if Some(t.symbol) == alphabet.space() {
            if !cur.is_empty() {
                words.push(WordSpan {
                    word: std::mem::take(&mut cur),
                    start_frame: span.0,
                    end_frame: span.1,
                });
            }
            continue;
        }
        if cur.is_empty() {
            span.0 = t.frame;
        }
        span.1 = t.frame;
        cur.push_str(alphabet.symbol(t.symbol));
    }
    if !cur.is_empty() {
        words.push(WordSpan { word: cur, start_frame: span.0, end_frame: span.1 });
    }
    let text = words.iter().map(|w| w.word.as_str()).collect::<Vec<_>>().join(" ");
    (text, words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_substitutions_insertions_deletions() {
        assert_eq!(edit_distance(&["a", "b", "c"], &["a", "x", "c", "d"]), 2);
        assert_eq!(edit_distance::<u8>(&[], &[1, 2]), 2);
        assert_eq!(edit_distance(b"kitten", b"sitting"), 3);
    }
}
