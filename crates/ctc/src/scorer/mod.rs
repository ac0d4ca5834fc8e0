//! DeepSpeech's `.scorer` package: a KenLM binary (`harken_lm::kenlm`) with DeepSpeech's
//! trie appended where KenLM's search structures end — a `TRIE` header (magic, version 6, the
//! UTF-8 flag, the default α and β) and an OpenFST [`fst::ConstFst`] vocabulary trie over
//! alphabet labels (label = alphabet index + 1, each word followed by the space label) or, in
//! UTF-8 mode, over bytes. Read memory-mapped, never copied; written from an n-gram model, a
//! vocabulary and an alphabet as `generate_scorer_package` writes it.
//!
//! [`LmScorer`] is the scorer's part of the native client's decoding (`Scorer::make_ngram`,
//! `get_log_cond_prob`, `is_scoring_boundary` and hot words), with the client's mix of `f32`
//! and `f64` kept, since it decides ties in the beam.

pub mod fst;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use harken_lm::kenlm::{KenLm, KenState};

pub use fst::{ConstFst, FstBuilder};

/// `'TRIE'` as a C++ multi-character constant, written little-endian.
const TRIE_MAGIC: i32 = 0x5452_4945;
/// The trie format the 0.9 and Coqui 1.x clients read.
const TRIE_VERSION: i32 = 6;
/// The client's score for a word outside the LM's vocabulary.
const OOV_SCORE: f64 = -1000.0;
/// `log10(e)` as the client's `float` constant (`0.4342944819f`, the same `f32`).
const LOG10_E: f32 = std::f32::consts::LOG10_E;

/// Errors of scorer packages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScorerError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The KenLM part is not valid.
    #[error("scorer language model: {0}")]
    Lm(#[from] harken_lm::Error),
    /// The trie part (header or FST) is not valid.
    #[error("scorer trie: {0}")]
    Trie(String),
    /// The scorer was not made for this model's alphabet.
    #[error("scorer does not match the model: {0}")]
    Mismatch(String),
}

impl ScorerError {
    /// The failure class, for transports.
    pub fn kind(&self) -> harken_core::ErrorKind {
        harken_core::ErrorKind::Unavailable
    }
}

/// The bytes of a scorer: a read-only map of the file or an owned buffer.
#[derive(Clone)]
pub struct Bytes(Arc<Storage>);

enum Storage {
    Map(memmap2::Mmap),
    Vec(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &*self.0 {
            Storage::Map(m) => m,
            Storage::Vec(v) => v,
        }
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(Arc::new(Storage::Vec(v)))
    }
}

impl Bytes {
    /// Map a file read-only.
    pub fn map(path: &Path) -> Result<Self, ScorerError> {
        let io = |source| ScorerError::Io { path: path.display().to_string(), source };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and private to this process; a scorer changed on disk
        // while mapped is outside what any model file can promise (the same as KenLM's mmap).
        // Every access is bounds-checked against the map's length.
        #[allow(unsafe_code)] // memory-mapping is the point: a 1 GB scorer loads in O(1)
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        // The trie is walked one arc at a time: no read-ahead around each faulted page.
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Random);
        Ok(Bytes(Arc::new(Storage::Map(map))))
    }
}

/// The fixed part after the KenLM data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrieHeader {
    /// Bytes of the package: UTF-8 mode (bytes as labels, code points as LM words).
    pub utf8: bool,
    /// Default LM weight α.
    pub alpha: f64,
    /// Default word insertion bonus β.
    pub beta: f64,
}

const TRIE_HEADER_BYTES: usize = 25;

/// An opened `.scorer`: the language model, the trie header and the vocabulary FST.
#[derive(Clone)]
pub struct Scorer {
    lm: Arc<KenLm>,
    header: TrieHeader,
    fst: ConstFst,
    trie_offset: u64,
    bytes: u64,
}

impl std::fmt::Debug for Scorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scorer")
            .field("order", &self.lm.order())
            .field("header", &self.header)
            .field("fst", &self.fst)
            .finish()
    }
}

/// Whether `bytes` start like a KenLM binary (a scorer or a bare KenLM model).
pub fn is_kenlm_file(path: &Path) -> bool {
    let mut head = [0u8; 64];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .is_ok_and(|n| harken_lm::kenlm::is_kenlm(&head[..n]))
}

impl Scorer {
    /// Map and open a `.scorer` file.
    pub fn open(path: &Path) -> Result<Scorer, ScorerError> {
        let lm = KenLm::open(path)?;
        let bytes = Bytes::map(path)?;
        Self::with_parts(lm, bytes)
    }

    /// Open a scorer held in memory.
    pub fn from_bytes(data: Vec<u8>) -> Result<Scorer, ScorerError> {
        let lm = KenLm::from_bytes(data.clone())?;
        Self::with_parts(lm, Bytes::from(data))
    }

    fn with_parts(lm: KenLm, bytes: Bytes) -> Result<Scorer, ScorerError> {
        let trie_offset = lm.end_of_search();
        let at =
            usize::try_from(trie_offset).ok().filter(|&o| o < bytes.len()).ok_or_else(|| {
                ScorerError::Trie(
                    "the file ends where the trie should begin: a bare KenLM model, not a scorer \
                     package (make one with `harken lm convert MODEL out.scorer`)"
                        .into(),
                )
            })?;
        let header = read_header(bytes.get(at..).unwrap_or_default())?;
        let fst = ConstFst::parse(bytes.clone(), at + TRIE_HEADER_BYTES)?;
        Ok(Scorer { lm: Arc::new(lm), header, fst, trie_offset, bytes: bytes.len() as u64 })
    }

    /// The language model.
    pub fn lm(&self) -> &KenLm {
        &self.lm
    }

    /// The trie header.
    pub fn header(&self) -> TrieHeader {
        self.header
    }

    /// The vocabulary FST.
    pub fn fst(&self) -> &ConstFst {
        &self.fst
    }

    /// Where the trie starts (where KenLM's search ends).
    pub fn trie_offset(&self) -> u64 {
        self.trie_offset
    }

    /// Size of the package file.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The vocabulary as strings, decoded through `labels` (the model's alphabet; ignored in
    /// UTF-8 mode). Words the alphabet cannot spell are skipped.
    pub fn vocabulary(&self, labels: &[String], limit: usize) -> Vec<String> {
        let space = labels.iter().position(|l| l == " ");
        self.fst
            .words(limit)
            .into_iter()
            .filter_map(|w| {
                if self.header.utf8 {
                    let b: Vec<u8> =
                        w.iter().map(|&l| u8::try_from(l).ok()).collect::<Option<_>>()?;
                    String::from_utf8(b).ok()
                } else {
                    let mut s = String::new();
                    for &l in &w {
                        let i = (l as usize).checked_sub(1)?;
                        if Some(i) == space {
                            continue;
                        }
                        s.push_str(labels.get(i)?);
                    }
                    Some(s)
                }
            })
            .collect()
    }

    /// Check that this scorer was made for a model with these output labels: every FST label
    /// is one of them, words end with the space label (alphabet mode), and the words the trie
    /// spells are words of the LM. A scorer for another alphabet spells other words.
    pub fn check_alphabet(&self, labels: &[String]) -> Result<(), ScorerError> {
        if self.header.utf8 {
            if labels.len() != 255 {
                return Err(ScorerError::Mismatch(format!(
                    "a UTF-8 (bytes) scorer needs a model with 255 byte labels; this one has {}",
                    labels.len()
                )));
            }
            return Ok(());
        }
        let sample = self.fst.words(200);
        if sample.is_empty() {
            return Err(ScorerError::Mismatch("the scorer's vocabulary is empty".into()));
        }
        let space = labels.iter().position(|l| l == " ").map(|i| i as u32 + 1);
        for w in &sample {
            if w.iter().any(|&l| l == 0 || l as usize > labels.len()) || w.last().copied() != space
            {
                return Err(ScorerError::Mismatch(format!(
                    "its vocabulary uses labels this model's {}-symbol alphabet does not have",
                    labels.len()
                )));
            }
        }
        let words = self.vocabulary(labels, 200);
        let known = words.iter().filter(|w| self.lm.index(w) != 0).count();
        if known * 2 < words.len() {
            return Err(ScorerError::Mismatch(format!(
                "only {known} of {} of its vocabulary words, spelled with this model's alphabet, \
                 are in its language model: it was made for another alphabet",
                words.len()
            )));
        }
        Ok(())
    }
}

fn read_header(b: &[u8]) -> Result<TrieHeader, ScorerError> {
    let b = b
        .get(..TRIE_HEADER_BYTES)
        .ok_or_else(|| ScorerError::Trie("the file ends inside the trie header".into()))?;
    let i32_at = |i: usize| i32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let f64_at = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[i..i + 8]);
        f64::from_le_bytes(a)
    };
    if i32_at(0) != TRIE_MAGIC {
        return Err(ScorerError::Trie(
            "no TRIE header after the language model (not a DeepSpeech scorer, or a damaged one)"
                .into(),
        ));
    }
    let version = i32_at(4);
    if version != TRIE_VERSION {
        return Err(ScorerError::Trie(format!(
            "trie version {version}; this reader (as the 0.9 client) reads version {TRIE_VERSION}"
        )));
    }
    let header = TrieHeader { utf8: b[8] != 0, alpha: f64_at(9), beta: f64_at(17) };
    if !header.alpha.is_finite() || !header.beta.is_finite() {
        return Err(ScorerError::Trie("α or β is not a finite number".into()));
    }
    Ok(header)
}

/// Append the trie part (header and FST) of a scorer to `out`, which already holds
/// `lm_bytes` bytes of KenLM data. `words` are label sequences (alphabet mode: each ending in
/// the space label), labels already shifted by one.
pub fn write_trie(
    out: &mut impl Write,
    lm_bytes: u64,
    header: TrieHeader,
    mut words: Vec<Vec<u32>>,
) -> Result<u64, ScorerError> {
    let io = |source| ScorerError::Io { path: "scorer".into(), source };
    out.write_all(&TRIE_MAGIC.to_le_bytes()).map_err(io)?;
    out.write_all(&TRIE_VERSION.to_le_bytes()).map_err(io)?;
    out.write_all(&[u8::from(header.utf8)]).map_err(io)?;
    out.write_all(&header.alpha.to_le_bytes()).map_err(io)?;
    out.write_all(&header.beta.to_le_bytes()).map_err(io)?;
    words.sort_unstable();
    words.dedup();
    let mut b = FstBuilder::new();
    for w in &words {
        b.add(w)?;
    }
    let n = b.write(out, lm_bytes + TRIE_HEADER_BYTES as u64).map_err(io)?;
    Ok(TRIE_HEADER_BYTES as u64 + n)
}

/// The label sequences of `words` as `fill_dictionary` makes them: alphabet mode splits each
/// word into code points, maps each to its label + 1 and appends the space label + 1 (a word
/// with a character outside the alphabet is left out); UTF-8 mode takes the bytes + 1... as
/// the client does, the raw bytes. `<s>`, `</s>` and `<unk>` are never words.
pub fn dictionary_words(words: &[String], labels: &[String], utf8: bool) -> Vec<Vec<u32>> {
    let map: HashMap<&str, u32> =
        labels.iter().enumerate().map(|(i, l)| (l.as_str(), i as u32 + 1)).collect();
    let space = labels.iter().position(|l| l == " ").map(|i| i as u32 + 1);
    words
        .iter()
        .filter(|w| !matches!(w.as_str(), "<s>" | "</s>" | "<unk>") && !w.is_empty())
        .filter_map(|w| {
            if utf8 {
                // UTF8Alphabet maps byte b to label b - 1, and the trie holds label + 1 = b.
                return Some(w.bytes().map(u32::from).collect());
            }
            let mut seq = Vec::with_capacity(w.len() + 1);
            for ch in w.chars() {
                let mut buf = [0u8; 4];
                seq.push(*map.get(&*ch.encode_utf8(&mut buf))?);
            }
            seq.push(space?);
            Some(seq)
        })
        .collect()
}

/// The scorer's side of the native client's beam search for one alphabet: LM weight α, word
/// bonus β, hot words.
#[derive(Debug, Clone)]
pub struct LmScorer {
    scorer: Scorer,
    labels: Vec<String>,
    space: Option<u32>,
    alpha: f64,
    beta: f64,
    hot_words: HashMap<String, f32>,
}

impl LmScorer {
    /// The scorer with its own α and β (rounded to `f32` as the client's `reset_params`).
    pub fn new(scorer: Scorer, labels: Vec<String>) -> Self {
        let h = scorer.header;
        let space = labels.iter().position(|l| l == " ").map(|i| i as u32);
        let mut s =
            LmScorer { scorer, labels, space, alpha: 0.0, beta: 0.0, hot_words: HashMap::new() };
        s.set_alpha_beta(h.alpha as f32, h.beta as f32);
        s
    }

    /// Override α and β (`DS_SetScorerAlphaBeta`).
    pub fn set_alpha_beta(&mut self, alpha: f32, beta: f32) {
        self.alpha = f64::from(alpha);
        self.beta = f64::from(beta);
    }

    /// α and β in use.
    pub fn alpha_beta(&self) -> (f32, f32) {
        (self.alpha as f32, self.beta as f32)
    }

    /// Boost a word (`DS_AddHotWord`; a later boost for the same word replaces it).
    pub fn add_hot_word(&mut self, word: &str, boost: f32) {
        self.hot_words.insert(word.to_owned(), boost);
    }

    /// The package.
    pub fn scorer(&self) -> &Scorer {
        &self.scorer
    }

    pub(crate) fn utf8(&self) -> bool {
        self.scorer.header.utf8
    }

    pub(crate) fn beta(&self) -> f64 {
        self.beta
    }

    pub(crate) fn fst(&self) -> &ConstFst {
        &self.scorer.fst
    }

    pub(crate) fn space(&self) -> Option<u32> {
        self.space
    }

    /// The string of one label (UTF-8 mode: the byte `label + 1`).
    pub(crate) fn label_bytes(&self, label: u32) -> Vec<u8> {
        if self.utf8() {
            vec![(label + 1) as u8]
        } else {
            self.labels.get(label as usize).map(|s| s.as_bytes().to_vec()).unwrap_or_default()
        }
    }

    pub(crate) fn max_order(&self) -> usize {
        self.scorer.lm.order()
    }

    /// `get_log_cond_prob`: the natural-log probability of the last word given the others,
    /// from `<s>` when `bos`; [`OOV_SCORE`] as soon as one word is outside the vocabulary.
    fn log_cond_prob(&self, words: &[Vec<u8>], bos: bool) -> f64 {
        let lm = &self.scorer.lm;
        let mut state: KenState = if bos { lm.begin_sentence() } else { lm.null_context() };
        let mut cond = 0.0f64;
        for w in words {
            let idx = lm.index(&String::from_utf8_lossy(w));
            if idx == 0 {
                return OOV_SCORE;
            }
            let (p, next) = lm.score(&state, idx);
            cond = f64::from(p);
            state = next;
        }
        cond / f64::from(LOG10_E)
    }

    /// The score added to a prefix whose last words are `ngram` (oldest first) when it reaches
    /// a scoring boundary during the search: `(ln P + hot boosts) · α`, as `f32`.
    pub(crate) fn boundary_score(&self, ngram: &[Vec<u8>]) -> f32 {
        let mut hot = 0.0f32;
        if !self.hot_words.is_empty() {
            for w in ngram {
                if let Some(b) = self.hot_words.get(&*String::from_utf8_lossy(w)) {
                    hot += *b;
                }
            }
        }
        let bos = ngram.len() < self.max_order();
        ((self.log_cond_prob(ngram, bos) + f64::from(hot)) * self.alpha) as f32
    }

    /// The score `decode` adds for an unfinished last word: `ln P · α` (no hot words), as
    /// `f32`, then `+ β` in `f64` rounded back.
    pub(crate) fn final_score(&self, ngram: &[Vec<u8>]) -> f32 {
        let bos = ngram.len() < self.max_order();
        let s = (self.log_cond_prob(ngram, bos) * self.alpha) as f32;
        (f64::from(s) + self.beta) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_words_follow_the_client() {
        let labels: Vec<String> = [" ", "a", "b", "ü"].iter().map(|s| s.to_string()).collect();
        let words: Vec<String> =
            ["ab", "üa", "<s>", "abc", "", "</s>"].iter().map(|s| s.to_string()).collect();
        let seqs = dictionary_words(&words, &labels, false);
        assert_eq!(seqs, vec![vec![2, 3, 1], vec![4, 2, 1]]);
        let bytes = dictionary_words(&["ü".to_string()], &labels, true);
        assert_eq!(bytes, vec![vec![0xC3, 0xBC]]);
    }

    #[test]
    fn trie_headers_are_checked() {
        let mut b = Vec::new();
        b.extend_from_slice(&TRIE_MAGIC.to_le_bytes());
        b.extend_from_slice(&TRIE_VERSION.to_le_bytes());
        b.push(1);
        b.extend_from_slice(&0.93f64.to_le_bytes());
        b.extend_from_slice(&1.18f64.to_le_bytes());
        let h = read_header(&b).unwrap();
        assert!(h.utf8);
        assert_eq!((h.alpha, h.beta), (0.93, 1.18));
        assert!(read_header(&b[..20]).is_err());
        let mut v5 = b.clone();
        v5[4] = 5;
        assert!(read_header(&v5).unwrap_err().to_string().contains("version 5"));
        let mut wrong = b;
        wrong[0] = b'X';
        assert!(read_header(&wrong).is_err());
    }
}
