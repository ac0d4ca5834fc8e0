//! n-gram language models: a streaming ARPA reader and writer ([`arpa`]), a compact binary
//! format that loads by memory-mapping in O(1) ([`Model::open`]), and queries with explicit
//! state and full back-off semantics ([`Model::score`]). KenLM's own binary format, as DeepSpeech
//! and Coqui STT scorers carry it, is read and written byte-exactly by [`kenlm`] ([`KenLm`],
//! [`kenlm::write_trie`]).
//!
//! Scoring follows the ARPA back-off definition KenLM implements: for context `h` and word `w`,
//! `log10 P(w|h) = p(h w)` when the n-gram `h w` exists, else `bo(h) + log10 P(w|h')` with `h'`
//! the context without its oldest word; a missing context has back-off 0. Words outside the
//! vocabulary score as `<unk>`.

pub mod arpa;
mod binary;
pub mod build;
pub mod kenlm;
pub mod prune;
pub mod sample;
pub mod sink;
mod sort;
pub mod sphinx;

use std::path::{Path, PathBuf};

pub use arpa::Tables;
pub use binary::BinarySink;
use binary::{Header, f32_at, u32_at};
pub use kenlm::{KenLm, KenState, is_kenlm};

/// Highest supported order.
pub const MAX_ORDER: usize = 8;

/// Errors of the LM crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Malformed ARPA text.
    #[error("ARPA line {line}: {detail}")]
    Arpa {
        /// 1-based line number (0: whole file).
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// Training text or estimation options that a model cannot be built from.
    #[error("{}", build_message(*.line, .detail))]
    Build {
        /// 1-based line of the text (0: not about one line).
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// A binary file that is not valid.
    #[error("LM binary: {detail}")]
    Binary {
        /// What is wrong.
        detail: String,
    },
    /// A KenLM binary this crate cannot read: not KenLM's format, another format version, a
    /// model type or parameter it does not support, or inconsistent structures.
    #[error("KenLM binary: {detail}")]
    KenLm {
        /// What is wrong.
        detail: String,
    },
    /// A KenLM binary shorter than its own header says it is.
    #[error(
        "KenLM binary: {what} needs {needed_bytes} bytes but the file has {file_bytes} (truncated?)"
    )]
    KenLmTruncated {
        /// The part that does not fit.
        what: &'static str,
        /// Bytes the header implies.
        needed_bytes: u64,
        /// Bytes the file has.
        file_bytes: u64,
    },
    /// n-gram tables that KenLM's `build_binary` would refuse, or options it does not accept.
    #[error("cannot write a KenLM trie: {detail}")]
    KenLmBuild {
        /// What is wrong.
        detail: String,
    },
    /// Pruning cannot reach the byte budget.
    #[error(
        "a {max_bytes}-byte budget cannot be met: the smallest model this pruning keeps (unigrams and the contexts of what stays) takes {smallest} bytes"
    )]
    Budget {
        /// The budget.
        max_bytes: u64,
        /// The smallest size reachable.
        smallest: u64,
    },
    /// File-system failure.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn build_message(line: usize, detail: &str) -> String {
    if line == 0 {
        format!("cannot build a model: {detail}")
    } else {
        format!("text line {line}: {detail}")
    }
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_owned(), source }
    }

    /// The failure class.
    pub fn kind(&self) -> harken_core::ErrorKind {
        match self {
            Error::Io { .. } => harken_core::ErrorKind::NotFound,
            _ => harken_core::ErrorKind::InvalidInput,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

enum Storage {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Storage {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// The words a query has seen, most recent last (at most `order - 1`), with the back-off of
/// each of its suffixes, so that scoring the next word never looks a context up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct State {
    len: u8,
    words: [u32; MAX_ORDER - 1],
    /// `backoff[j - 1]`: bits of the log10 back-off of the last `j` words (0 when that n-gram
    /// is not in the model). Bits, so that states stay `Eq + Hash`.
    backoff: [u32; MAX_ORDER - 1],
}

const EMPTY: State = State { len: 0, words: [0; MAX_ORDER - 1], backoff: [0; MAX_ORDER - 1] };

impl State {
    /// Number of context words held.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }
    /// Whether the state holds no context.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    fn words(&self) -> &[u32] {
        &self.words[..self.len()]
    }
    /// Sum of the back-offs of the suffixes of at least `from` words.
    fn backoff_from(&self, from: usize) -> f32 {
        self.backoff[..self.len()]
            .iter()
            .skip(from.saturating_sub(1))
            .map(|&b| f32::from_bits(b))
            .sum()
    }
}

/// A loaded model (binary, memory-mapped or in memory).
pub struct Model {
    data: Storage,
    h: Header,
    unk: Option<u32>,
    bos: Option<u32>,
    eos: Option<u32>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("order", &self.h.order)
            .field("counts", &self.counts())
            .finish()
    }
}

/// Whether a file is a Harken LM binary (by its magic bytes).
pub fn is_binary(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok()
        && &magic == binary::MAGIC
}

impl Model {
    /// Map a binary model. O(1): checks the header and section bounds, parses nothing.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only and private; model files are written once (atomically
        // renamed into place) and not modified while loaded. Every access is bounds-checked
        // against the header, which was checked against the file length.
        #[allow(unsafe_code)] // memory-mapping is the point: O(1) load, pages read on demand
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        // Queries are binary searches: without this the kernel reads ahead and maps the
        // neighbours of every faulted page, and RSS grows several times faster than the pages
        // actually read. Advisory: a failure changes nothing but that.
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Random);
        Self::from_storage(Storage::Mapped(map))
    }

    /// A model from binary bytes in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::from_storage(Storage::Owned(bytes))
    }

    /// Build the binary form of `t` in memory and open it.
    pub fn from_tables(t: &Tables, quantize: bool) -> Result<Self> {
        Self::from_bytes(binary::encode_tables(t, quantize, false))
    }

    /// [`Model::from_tables`] with n-gram hash indexes (faster lookups, about 8 more bytes per
    /// n-gram).
    pub fn from_tables_indexed(t: &Tables, quantize: bool) -> Result<Self> {
        Self::from_bytes(binary::encode_tables(t, quantize, true))
    }

    /// Load any model file: a Harken binary is mapped, ARPA (plain or gzip) and CMU Sphinx
    /// binaries (`.lm.bin`) are parsed.
    pub fn load(path: &Path) -> Result<Self> {
        if is_binary(path) {
            Self::open(path)
        } else if sphinx::is_sphinx(path) {
            Self::from_tables(&sphinx::read_file(path)?.0, false)
        } else {
            Self::from_tables(&arpa::read(arpa::open(path)?)?, false)
        }
    }

    fn from_storage(data: Storage) -> Result<Self> {
        let h = Header::parse(&data)?;
        let mut m = Model { data, h, unk: None, bos: None, eos: None };
        m.unk = m.vocab_id("<unk>");
        m.bos = m.vocab_id("<s>");
        m.eos = m.vocab_id("</s>");
        Ok(m)
    }

    /// Check the body against the header's checksum (reads the whole file).
    pub fn verify(&self) -> Result<()> {
        let sum = binary::fnv1a(&self.data[binary::HEADER..]);
        if sum == self.h.checksum {
            Ok(())
        } else {
            Err(Error::Binary { detail: "checksum mismatch: the file is damaged".into() })
        }
    }

    /// Serialise `t` and write it to `path` atomically.
    pub fn write_binary(t: &Tables, quantize: bool, path: &Path) -> Result<u64> {
        Self::write_binary_with(t, quantize, false, path)
    }

    /// [`Model::write_binary`], with n-gram hash indexes when `hash_index` (lookups by one
    /// hash probe instead of a binary search; 8 bytes per n-gram of order ≥ 2).
    pub fn write_binary_with(
        t: &Tables,
        quantize: bool,
        hash_index: bool,
        path: &Path,
    ) -> Result<u64> {
        let tmp = path.with_extension("tmp-write");
        let written = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e)).and_then(|f| {
            binary::write_tables(t, quantize, hash_index, std::io::BufWriter::new(f))
        });
        let bytes = match written {
            Ok(n) => n,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(match e {
                    Error::Io { source, .. } => Error::io(&tmp, source),
                    other => other,
                });
            }
        };
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        Ok(bytes)
    }

    /// Highest order.
    pub fn order(&self) -> usize {
        self.h.order
    }

    /// n-gram counts per order.
    pub fn counts(&self) -> Vec<usize> {
        self.h.counts[..self.h.order].to_vec()
    }

    /// Whether probabilities are 8-bit quantized.
    pub fn quantized(&self) -> bool {
        self.h.quantized
    }

    /// Whether lookups go through n-gram hash indexes (every order ≥ 2 that has records).
    pub fn hash_indexed(&self) -> bool {
        (2..=self.h.order).any(|k| self.h.ngram_hash[k - 1].is_some())
    }

    /// Size of the model's bytes.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.h.vocab
    }

    /// The word with id `id` (empty for an id outside the vocabulary or a damaged index).
    pub fn word(&self, id: u32) -> &str {
        if id as usize >= self.h.vocab {
            return "";
        }
        let i = self.h.index + 4 * id as usize;
        let (a, b) = (u32_at(&self.data, i) as usize, u32_at(&self.data, i + 4) as usize);
        let (start, end) = (self.h.strings.0 + a, self.h.strings.0 + b);
        if a > b || b > self.h.strings.1 {
            return "";
        }
        self.data.get(start..end).and_then(|s| std::str::from_utf8(s).ok()).unwrap_or("")
    }

    /// The id of `word`, if it is in the vocabulary (a hash-table probe).
    pub fn vocab_id(&self, word: &str) -> Option<u32> {
        let (off, slots) = self.h.hash;
        let mut i = (binary::fnv1a(word.as_bytes()) as usize) & (slots - 1);
        for _ in 0..slots {
            let v = u32_at(&self.data, off + 4 * i);
            if v == 0 {
                return None;
            }
            let id = v - 1;
            if (id as usize) < self.h.vocab && self.word(id) == word {
                return Some(id);
            }
            i = (i + 1) & (slots - 1);
        }
        None
    }

    /// The state at the start of a sentence (context `<s>`).
    pub fn begin_sentence(&self) -> State {
        let mut s = EMPTY;
        if let Some(b) = self.bos
            && self.h.order > 1
        {
            s.words[0] = b;
            s.len = 1;
            s.backoff[0] = self.value(1, b as usize, true).to_bits();
        }
        s
    }

    /// The empty state (no context).
    pub fn null_state(&self) -> State {
        EMPTY
    }

    /// Index of the order-`k` record with ids `tuple`.
    fn find(&self, tuple: &[u32]) -> Option<usize> {
        let k = tuple.len();
        if k == 1 {
            return Some(tuple[0] as usize);
        }
        if self.h.counts[k - 1] == 0 {
            return None;
        }
        let base = self.h.orders[k - 1].ids;
        if let Some((off, slots)) = self.h.ngram_hash[k - 1] {
            let n = self.h.counts[k - 1];
            let mut i = binary::slot_of(binary::hash_ids(tuple), slots);
            for _ in 0..slots {
                let v = u32_at(&self.data, off + 4 * i) as usize;
                if v == 0 {
                    return None;
                }
                let r = v - 1;
                if r < n && (0..k).all(|j| u32_at(&self.data, base + (r * k + j) * 4) == tuple[j]) {
                    return Some(r);
                }
                i = if i + 1 == slots { 0 } else { i + 1 };
            }
            return None;
        }
        // Only the records that start with the tuple's first word.
        let first = self.h.first[k - 1] + 4 * tuple[0] as usize;
        let (mut lo, mut hi) =
            (u32_at(&self.data, first) as usize, u32_at(&self.data, first + 4) as usize);
        hi = hi.min(self.h.counts[k - 1]);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let off = base + mid * k * 4;
            let mut ord = std::cmp::Ordering::Equal;
            for (j, &t) in tuple.iter().enumerate().skip(1) {
                ord = u32_at(&self.data, off + 4 * j).cmp(&t);
                if ord != std::cmp::Ordering::Equal {
                    break;
                }
            }
            match ord {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    fn value(&self, k: usize, i: usize, backoff: bool) -> f32 {
        let o = self.h.orders[k - 1];
        let (off, cb) = if backoff { (o.bo, o.bo_cb) } else { (o.prob, o.prob_cb) };
        if self.h.quantized && k > 1 {
            f32_at(&self.data, cb + 4 * usize::from(self.data[off + i]))
        } else {
            f32_at(&self.data, off + 4 * i)
        }
    }

    /// Score word id `w` (`None`: out of vocabulary, scored as `<unk>`) after `state`.
    /// Returns the log10 probability, the next state and the length of the n-gram that matched.
    pub fn score_id(&self, state: &State, w: Option<u32>) -> (f32, State, usize) {
        let n_max = self.h.order;
        let ctx = state.words();
        let m = ctx.len().min(n_max - 1);
        let ctx = &ctx[ctx.len() - m..];
        let mut next = EMPTY;
        let Some(w) = w.or(self.unk) else {
            // No <unk> in the model: KenLM substitutes a unigram of log10 -100 and still
            // applies the context's back-offs.
            return (-100.0 + state.backoff_from(1), next, 0);
        };
        // Bottom-up, as KenLM's trie: the n-grams ending in `w` of growing length. Each one
        // found is also a suffix of the next state, whose back-off it carries. Every length is
        // tried (no stop at the first miss): ARPA does not promise that suffixes of an n-gram
        // exist (pruned models drop them).
        let mut t = [0u32; MAX_ORDER];
        t[..m].copy_from_slice(ctx);
        t[m] = w;
        let full = &t[..=m];
        let mut p = self.value(1, w as usize, false);
        let mut matched = 1;
        let mut bo = [0u32; MAX_ORDER - 1];
        if n_max > 1 {
            bo[0] = self.value(1, w as usize, true).to_bits();
        }
        for l in 2..=m + 1 {
            if let Some(i) = self.find(&full[m + 1 - l..]) {
                p = self.value(l, i, false);
                matched = l;
                if l < n_max {
                    bo[l - 1] = self.value(l, i, true).to_bits();
                }
            }
        }
        // The contexts at least as long as the match back off.
        let p = p + state.backoff_from(matched);
        let keep = matched.min(n_max - 1);
        next.words[..keep].copy_from_slice(&full[m + 1 - keep..]);
        next.backoff[..keep].copy_from_slice(&bo[..keep]);
        next.len = keep as u8;
        (p, next, matched)
    }

    /// Score `word` after `state`: (log10 probability, next state).
    pub fn score(&self, state: &State, word: &str) -> (f32, State) {
        let (p, s, _) = self.score_id(state, self.vocab_id(word));
        (p, s)
    }

    /// Score one sentence with `<s>` and `</s>`: per-word log10 probabilities (the last is
    /// `</s>`) and whether each word was out of vocabulary.
    pub fn score_sentence(&self, words: &[&str]) -> Vec<(f32, bool)> {
        let mut st = self.begin_sentence();
        let mut out = Vec::with_capacity(words.len() + 1);
        for w in words {
            let id = self.vocab_id(w);
            let (p, s, _) = self.score_id(&st, id);
            out.push((p, id.is_none()));
            st = s;
        }
        let (p, _, _) = self.score_id(&st, self.eos);
        out.push((p, false));
        out
    }

    /// The tables back (for writing ARPA from a binary).
    pub fn to_tables(&self) -> Tables {
        let mut sink = sink::TablesSink::default();
        // Filling tables in memory cannot fail.
        let _ = self.write_to(&mut sink);
        sink.tables
    }

    /// Hand the model to `sink` record by record, straight from the mapped file (so a binary
    /// converts to ARPA without being loaded whole).
    pub fn write_to(&self, sink: &mut dyn sink::Sink) -> Result<u64> {
        let order = self.h.order;
        let vocab: Vec<String> =
            (0..self.h.vocab as u32).map(|i| self.word(i).to_owned()).collect();
        let counts: Vec<usize> = self.h.counts[..order].to_vec();
        let uni_prob: Vec<f32> = (0..counts[0]).map(|i| self.value(1, i, false)).collect();
        let uni_bo: Vec<f32> = if order > 1 {
            (0..counts[0]).map(|i| self.value(1, i, true)).collect()
        } else {
            Vec::new()
        };
        sink.begin(&vocab, &counts, &uni_prob, (order > 1).then_some(uni_bo.as_slice()))?;
        let mut ids = [0u32; MAX_ORDER];
        for k in 2..=order {
            let base = self.h.orders[k - 1].ids;
            for i in 0..counts[k - 1] {
                for (j, id) in ids[..k].iter_mut().enumerate() {
                    *id = u32_at(&self.data, base + 4 * (i * k + j));
                }
                let bo = (k < order).then(|| self.value(k, i, true));
                sink.record(&ids[..k], self.value(k, i, false), bo)?;
            }
        }
        sink.finish()
    }
}

/// Perplexity figures over a text.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// Sentences.
    pub sentences: usize,
    /// Words (without `</s>`).
    pub words: usize,
    /// Out-of-vocabulary words.
    pub oov: usize,
    /// Sum of log10 probabilities, all tokens incl. `</s>`.
    pub log10_sum: f64,
    /// Sum excluding OOV tokens.
    pub log10_sum_no_oov: f64,
}

impl Evaluation {
    /// Perplexity over all tokens (words + `</s>`).
    pub fn perplexity(&self) -> f64 {
        10f64.powf(-self.log10_sum / (self.words + self.sentences) as f64)
    }
    /// Perplexity excluding OOV tokens.
    pub fn perplexity_no_oov(&self) -> f64 {
        10f64.powf(-self.log10_sum_no_oov / (self.words + self.sentences - self.oov) as f64)
    }
    /// OOV rate over words.
    pub fn oov_rate(&self) -> f64 {
        if self.words == 0 { 0.0 } else { self.oov as f64 / self.words as f64 }
    }
}

/// Evaluate `model` on whitespace-tokenised lines of `text` (one sentence per line).
pub fn evaluate(model: &Model, text: &str) -> Evaluation {
    let mut e = Evaluation::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        e.sentences += 1;
        e.words += words.len();
        for (p, oov) in model.score_sentence(&words) {
            e.log10_sum += f64::from(p);
            if oov {
                e.oov += 1;
            } else {
                e.log10_sum_no_oov += f64::from(p);
            }
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOY: &str = "\\data\\\nngram 1=5\nngram 2=4\nngram 3=2\n\n\\1-grams:\n-1.0\t<s>\t-0.5\n-0.7\t</s>\n-1.2\t<unk>\n-0.6\ta\t-0.3\n-0.8\tb\t-0.2\n\n\\2-grams:\n-0.3\t<s> a\t-0.1\n-0.4\ta b\t-0.15\n-0.5\tb </s>\n-0.9\tb a\n\n\\3-grams:\n-0.2\t<s> a b\n-0.25\ta b </s>\n\n\\end\\\n";

    fn toy(quantize: bool) -> Model {
        let t = arpa::read(TOY.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        Model::from_tables(&t, quantize).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn back_off_follows_the_arpa_definition() {
        let m = toy(false);
        let s = m.begin_sentence();
        let (p, s) = m.score(&s, "a"); // <s> a: bigram
        assert!((p - -0.3).abs() < 1e-6);
        let (p, s) = m.score(&s, "b"); // <s> a b: trigram
        assert!((p - -0.2).abs() < 1e-6);
        let (p, _) = m.score(&s, "</s>"); // a b </s>: trigram
        assert!((p - -0.25).abs() < 1e-6);
        // b after "a b": no trigram "a b b", no bigram "b b": bo(a b) + bo(b) + p(b)
        let (_, s2) = m.score(&m.begin_sentence(), "a");
        let (_, s2) = m.score(&s2, "b");
        let (p, _) = m.score(&s2, "b");
        assert!((p - (-0.15 + -0.2 + -0.8)).abs() < 1e-6, "{p}");
        // OOV scores as <unk> with the context's back-offs.
        let (p, s3) = m.score(&m.begin_sentence(), "zebra");
        assert!((p - (-0.5 + -1.2)).abs() < 1e-6, "{p}");
        assert!(s3.len() == 1);
    }

    #[test]
    fn arpa_round_trip_and_quantized_close() {
        let m = toy(false);
        let mut out = Vec::new();
        arpa::write(&m.to_tables(), &mut out).unwrap_or_else(|e| panic!("{e}"));
        let again = arpa::read(out.as_slice()).unwrap_or_else(|e| panic!("{e}"));
        let m2 = Model::from_tables(&again, false).unwrap_or_else(|e| panic!("{e}"));
        let q = toy(true);
        for sent in [vec!["a", "b"], vec!["b", "a", "zebra"], vec![]] {
            let a = m.score_sentence(&sent);
            assert_eq!(a, m2.score_sentence(&sent));
            for ((x, _), (y, _)) in a.iter().zip(q.score_sentence(&sent)) {
                assert!((x - y).abs() < 0.05, "{x} vs {y}");
            }
        }
        m.verify().unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn damaged_binaries_are_refused() {
        let t = arpa::read(TOY.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let good = binary::encode_tables(&t, false, false);
        for cut in [0, 7, 100, 511, good.len() / 2, good.len() - 1] {
            assert!(Model::from_bytes(good[..cut].to_vec()).is_err(), "cut {cut}");
        }
        let mut flipped = good.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0xff;
        let m = Model::from_bytes(flipped).unwrap_or_else(|e| panic!("{e}"));
        assert!(m.verify().is_err());
    }

    /// Deterministic byte mutations of a valid binary: opening fails cleanly or yields a model
    /// whose queries and export never panic.
    #[test]
    fn mutated_binaries_never_panic() {
        let t = arpa::read(TOY.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        for quantize in [false, true] {
            let good = binary::encode_tables(&t, quantize, quantize);
            let mut x: u64 = 0x2545_f491_4f6c_dd1d;
            for i in 0..3000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let mut m = good.clone();
                for j in 0..(1 + i % 3) {
                    let at = (x as usize).wrapping_add(j * 131) % m.len();
                    m[at] = (x >> (8 * (j % 8))) as u8;
                }
                let r = std::panic::catch_unwind(|| {
                    if let Ok(model) = Model::from_bytes(m) {
                        let _ = model.score_sentence(&["a", "b", "zebra", "</s>"]);
                        let _ = model.to_tables();
                        let _ = model.verify();
                    }
                });
                assert!(r.is_ok(), "mutant {i} (quantize {quantize}) panicked");
            }
        }
    }

    /// Mutated ARPA text (byte flips, inserted separators, truncations) and mutated training
    /// text read to a model or an error, never a panic; a model read is usable.
    #[test]
    fn mutated_text_never_panics() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b" \t\n-.=0123456789\\abs<>/e";
        for i in 0..3000 {
            let mut m = TOY.as_bytes().to_vec();
            for _ in 0..(1 + i % 4) {
                let r = next();
                let at = (r as usize) % m.len();
                match r >> 62 {
                    0 => m[at] = alphabet[(r >> 8) as usize % alphabet.len()],
                    1 => m.insert(at, alphabet[(r >> 8) as usize % alphabet.len()]),
                    2 => {
                        m.remove(at);
                    }
                    _ => m.truncate(at.max(1)),
                }
            }
            let r = std::panic::catch_unwind(|| {
                if let Ok(t) = arpa::read(m.as_slice())
                    && let Ok(model) = Model::from_tables(&t, i % 2 == 0)
                {
                    let _ = model.score_sentence(&["a", "b", "zebra"]);
                }
                let _ = build::build(m.as_slice(), 1 + i % 4);
            });
            assert!(r.is_ok(), "mutant {i} panicked: {:?}", String::from_utf8_lossy(&m));
        }
    }

    #[test]
    fn malformed_arpa_names_the_line() {
        for (text, want) in [
            ("hello", "no \\data\\"),
            ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\ta\n\\end\\\n", "header says 2"),
            (
                "\\data\\\nngram 1=1\nngram 2=1\n\n\\1-grams:\n-1\ta\t0\n\n\\2-grams:\n-1\ta q\n\\end\\\n",
                "has no unigram",
            ),
            ("\\data\\\nngram 1=1\n\n\\1-grams:\nx\ta\n\\end\\\n", "log10 probability"),
        ] {
            let err = arpa::read(text.as_bytes()).map(|_| ()).unwrap_err().to_string();
            assert!(err.contains(want), "{want:?} not in {err:?}");
        }
    }
}
