//! Whisper's tokenizer: text tokens through the `tokenizers` crate, special tokens found by name.
//!
//! Owns the id arithmetic reference Whisper hard-codes (`whisper/tokenizer.py`): the
//! start-of-transcript sequence, language and task tokens, `<|notimestamps|>` and the timestamp
//! range that follows it, and the split of a token sequence into words for alignment.

use std::path::Path;

use harken_core::Task;

use crate::{Error, Result};

/// A Whisper tokenizer with its special-token ids.
pub struct WhisperTokenizer {
    inner: tokenizers::Tokenizer,
    /// `<|endoftext|>`.
    pub eot: u32,
    /// `<|startoftranscript|>`.
    pub sot: u32,
    /// `<|startofprev|>`.
    pub sot_prev: u32,
    /// `<|startoflm|>`.
    pub sot_lm: u32,
    /// `<|translate|>`.
    pub translate: u32,
    /// `<|transcribe|>`.
    pub transcribe: u32,
    /// `<|nospeech|>` (`<|nocaptions|>` in older vocabularies).
    pub no_speech: u32,
    /// `<|notimestamps|>`.
    pub no_timestamps: u32,
    /// `<|0.00|>`; every id from here up is a timestamp, 20 ms apart.
    pub timestamp_begin: u32,
    /// Language codes and their token ids, in the model's order (empty for English-only models).
    pub languages: Vec<(String, u32)>,
    /// Whether the model is multilingual (has language and task tokens in its prompt).
    pub multilingual: bool,
}

impl std::fmt::Debug for WhisperTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperTokenizer")
            .field("eot", &self.eot)
            .field("timestamp_begin", &self.timestamp_begin)
            .field("languages", &self.languages.len())
            .finish_non_exhaustive()
    }
}

impl WhisperTokenizer {
    /// Load `tokenizer.json`; `n_vocab` is the model's vocabulary size, which tells a
    /// multilingual model (51 865 or more) from an English-only one.
    pub fn from_file(path: &Path, n_vocab: usize) -> Result<Self> {
        let err = |detail: String| Error::Tokenizer { path: path.to_owned(), detail };
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| err(e.to_string()))?;
        let id = |name: &str| inner.token_to_id(name);
        let need = |name: &str| id(name).ok_or_else(|| err(format!("no special token {name}")));
        let eot = need("<|endoftext|>")?;
        let sot = need("<|startoftranscript|>")?;
        let translate = need("<|translate|>")?;
        let transcribe = need("<|transcribe|>")?;
        let no_timestamps = need("<|notimestamps|>")?;
        let no_speech = id("<|nospeech|>")
            .or_else(|| id("<|nocaptions|>"))
            .ok_or_else(|| err("no <|nospeech|> token".into()))?;
        let multilingual = n_vocab >= 51_865;
        let languages = if multilingual {
            (sot + 1..translate)
                .filter_map(|i| {
                    let tok = inner.id_to_token(i)?;
                    let code = tok.strip_prefix("<|")?.strip_suffix("|>")?.to_owned();
                    Some((code, i))
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(WhisperTokenizer {
            eot,
            sot,
            sot_prev: need("<|startofprev|>")?,
            sot_lm: need("<|startoflm|>")?,
            translate,
            transcribe,
            no_speech,
            no_timestamps,
            timestamp_begin: no_timestamps + 1,
            languages,
            multilingual,
            inner,
        })
    }

    /// The token id of language `code`.
    pub fn language_token(&self, code: &str) -> Result<u32> {
        self.languages.iter().find(|(c, _)| c == code).map(|&(_, id)| id).ok_or_else(|| {
            Error::UnknownLanguage {
                code: code.to_owned(),
                known: self.languages.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>().join(","),
            }
        })
    }

    /// The start-of-transcript sequence: `<|sot|>` then, on multilingual models, the language
    /// and the task.
    pub fn sot_sequence(&self, language: Option<&str>, task: Task) -> Result<Vec<u32>> {
        let mut seq = vec![self.sot];
        if self.multilingual {
            seq.push(self.language_token(language.unwrap_or("en"))?);
            seq.push(match task {
                Task::Transcribe => self.transcribe,
                Task::Translate => self.translate,
            });
        } else {
            if language.is_some_and(|l| l != "en") {
                return Err(Error::Unsupported(
                    "this model is English-only; use --language en".into(),
                ));
            }
            if task == Task::Translate {
                return Err(Error::Unsupported(
                    "this model is English-only and cannot translate".into(),
                ));
            }
        }
        Ok(seq)
    }

    /// Whether text token `token` begins with a space (starts a new word).
    pub fn starts_word(&self, token: u32) -> bool {
        // Byte-level BPE spells a leading space as 'Ġ'.
        self.inner.id_to_token(token).is_some_and(|t| t.starts_with('\u{120}'))
    }

    /// Decode text tokens (specials and timestamps are skipped).
    pub fn decode(&self, tokens: &[u32]) -> String {
        let text: Vec<u32> = tokens.iter().copied().filter(|&t| t < self.eot).collect();
        self.inner.decode(&text, false).unwrap_or_default()
    }

    /// Token ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.inner.encode(text, false).map(|e| e.get_ids().to_vec()).unwrap_or_default()
    }

    /// Split text tokens into words, as reference Whisper's `split_tokens_on_spaces` (or on
    /// Unicode characters for languages written without spaces). Returns each word's text and
    /// tokens.
    pub fn split_to_words(&self, tokens: &[u32], language: &str) -> Vec<(String, Vec<u32>)> {
        if matches!(language, "zh" | "ja" | "th" | "lo" | "my" | "yue") {
            return self.split_on_unicode(tokens);
        }
        let mut words: Vec<(String, Vec<u32>)> = Vec::new();
        for (sub, toks) in self.split_on_unicode(tokens) {
            let special = toks.first().is_some_and(|&t| t >= self.eot);
            let with_space = sub.starts_with(' ');
            let trimmed = sub.trim();
            // Reference Whisper tests `strip() in string.punctuation`, which an empty string passes.
            let punct = trimmed.is_empty()
                || (trimmed.chars().count() == 1
                    && trimmed.chars().all(|c| c.is_ascii_punctuation()));
            if special || with_space || punct || words.is_empty() {
                words.push((sub, toks));
            } else if let Some(last) = words.last_mut() {
                last.0.push_str(&sub);
                last.1.extend(toks);
            }
        }
        words
    }

    /// Group tokens so that each group decodes to whole Unicode characters.
    fn split_on_unicode(&self, tokens: &[u32]) -> Vec<(String, Vec<u32>)> {
        let mut out = Vec::new();
        let mut current: Vec<u32> = Vec::new();
        for &t in tokens {
            current.push(t);
            let text = self.decode_with_specials(&current);
            if !text.contains('\u{FFFD}') {
                out.push((text, std::mem::take(&mut current)));
            }
        }
        if !current.is_empty() {
            out.push((self.decode_with_specials(&current), current));
        }
        out
    }

    fn decode_with_specials(&self, tokens: &[u32]) -> String {
        if tokens.iter().all(|&t| t >= self.eot) {
            return String::new();
        }
        self.decode(tokens)
    }
}
