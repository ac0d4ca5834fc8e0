//! KenLM's binary format (magic `mmap lm http://kheafield.com/code format version 5`), the language
//! model part of DeepSpeech and Coqui STT `.scorer` files: a reader ([`KenLm`]) whose queries
//! return exactly KenLM's `FullScore` log10 probabilities, bit for bit, and a writer
//! ([`write_trie`]) whose output is byte-identical to `build_binary … trie`.
//!
//! This module owns the trie family of the format: `TRIE`, `QUANT_TRIE` (`-q`/`-b`),
//! `ARRAY_TRIE` (`-a`, compressed child pointers) and `QUANT_ARRAY_TRIE` (both; what DeepSpeech
//! ships), with or without the vocabulary strings (`-v` drops them); the hash-table type
//! (`probing`) is read too, not written (its bytes depend on the ARPA's line order), and
//! `REST_PROBING` is refused with a typed error. It
//! deliberately does not own DeepSpeech's word trie, which scorers append at
//! [`KenLm::end_of_search`].
//!
//! Written by hand: no Rust crate reads or writes KenLM's format, and the format is KenLM's
//! in-memory data structures dumped as they are, so byte-exactness means following KenLM's
//! builder step by step (its sort orders, its "blank" n-grams for pruned models, its quantizer
//! training, its pointer-compression arrays), which a binding could not give without C++.
//! The port follows KenLM at commit b9f35777d112ce2fc10bd3986302517a16dc3883 (kpu/kenlm, as
//! vendored in DeepSpeech's `native_client/kenlm`); names in comments are its names, in its
//! `lm/` and `util/` sources.
//!
//! # The trie
//!
//! n-grams are stored reversed: the first level is the predicted word (the unigram array),
//! each deeper level one more word of context, older first. Every level is one bit-packed
//! array sorted by (parent, word), each entry holding its word, its value (probability and
//! back-off, as floats or bin indices) and the index of its first child; a query walks from
//! the word back through its context, so each step is an interpolation search among the
//! children found by the previous one. Word ids are KenLM's own: 0 is `<unk>`, the others
//! ranked by the MurmurHash64A of the word, so a word's id comes from its hash alone and files
//! without vocabulary strings still map words.

mod bits;
mod layout;
mod probing;
mod trie;
mod write;

use std::path::Path;

use crate::arpa::Tables;
use crate::{Error, MAX_ORDER, Result, Storage};
use bits::{f32_at, has_extension, u32_at, u64_at};
use layout::Fixed;
use probing::Probing;
use trie::Trie;

pub use bits::murmur_hash64a;
pub use layout::{ModelType, QuantBits};
pub use write::{TrieOptions, write_trie};

/// Whether `bytes` start like a KenLM binary (its magic, any format version). A file that
/// passes may still be refused by [`KenLm::from_bytes`] (another version, an unfinished build,
/// rest-cost probing).
pub fn is_kenlm(bytes: &[u8]) -> bool {
    bytes.starts_with(layout::MAGIC_BEFORE_VERSION) || bytes.starts_with(layout::MAGIC_INCOMPLETE)
}

/// What a query knows of the words before the next one, as KenLM's `lm::ngram::State`: up to
/// `order - 1` words, most recent first, with the back-off of each n-gram they form (the most
/// recent word alone, then the two most recent, …). Context is cut after the longest of these
/// n-grams that some longer n-gram extends (KenLM's state minimisation: the rest cannot change
/// a future score), so states that score every future word alike tend to compare equal.
/// Equality and hashing look at the words only, as KenLM's do.
#[derive(Debug, Clone, Copy)]
pub struct KenState {
    words: [u32; MAX_ORDER - 1],
    backoff: [f32; MAX_ORDER - 1],
    len: u8,
}

impl KenState {
    const EMPTY: KenState =
        KenState { words: [0; MAX_ORDER - 1], backoff: [0.0; MAX_ORDER - 1], len: 0 };

    /// Number of context words held.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the state holds no context (scoring from it backs off to unigrams).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The context words, most recent first (KenLM ids).
    pub fn words(&self) -> &[u32] {
        &self.words[..self.len()]
    }

    /// The log10 back-offs of the context n-grams, shortest first (`backoffs()[j]` belongs to
    /// the `j + 1` most recent words).
    pub fn backoffs(&self) -> &[f32] {
        &self.backoff[..self.len()]
    }
}

impl Default for KenState {
    /// The empty state, as [`KenLm::null_context`].
    fn default() -> Self {
        KenState::EMPTY
    }
}

impl PartialEq for KenState {
    fn eq(&self, other: &Self) -> bool {
        self.words() == other.words()
    }
}

impl Eq for KenState {}

impl std::hash::Hash for KenState {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.words().hash(state);
    }
}

/// The result of [`KenLm::full_score`], as KenLM's `FullScoreReturn`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FullScore {
    /// log10 probability of the word given the state.
    pub log10_prob: f32,
    /// Length of the longest n-gram found that ends in the word (1: the unigram). It counts
    /// the "blank" n-grams KenLM inserts for pruned models.
    pub ngram_length: u8,
}

/// What the scoring walk needs of a search structure (KenLM's `Search` template parameter):
/// the unigram, then one level per context word, then the longest order.
pub(crate) trait Structure {
    /// Where the walk stands: a trie range, or a hash of the words so far.
    type Node: Copy;
    /// Probability, back-off, node and whether no longer n-gram ends in the word.
    fn unigram(&self, d: &[u8], w: u32) -> (f32, f32, Self::Node, bool);
    /// Middle order `k`: the n-gram extended by the older `word`, if present, with its
    /// probability, back-off and independence; `node` moves on.
    fn middle(
        &self,
        d: &[u8],
        k: usize,
        word: u32,
        node: &mut Self::Node,
    ) -> Option<(f32, f32, bool)>;
    /// The longest order's probability of the n-gram extended by `word`.
    fn longest(&self, d: &[u8], word: u32, node: Self::Node) -> Option<f32>;
}

#[derive(Debug, Clone)]
enum Search {
    // Boxed: the layout of every order is inline, ten times the probing variant.
    Trie(Box<Trie>),
    Probing(Probing),
}

/// A KenLM binary, memory-mapped ([`KenLm::open`]) or in memory ([`KenLm::from_bytes`]).
/// Opening checks the header and that every structure lies inside the file; nothing is
/// copied or parsed. Queries never panic on a damaged file: reads outside the file see zeros
/// and searches that meet unsorted data stop, so they return wrong numbers at worst.
pub struct KenLm {
    data: Storage,
    fixed: Fixed,
    search: Search,
    /// Words, `<unk>` included (ids are `0..vocab_size`).
    vocab_size: u32,
    /// Where the search structures end.
    end: usize,
    bos: u32,
    eos: u32,
}

impl std::fmt::Debug for KenLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KenLm")
            .field("model_type", &self.fixed.model_type)
            .field("counts", &self.fixed.counts)
            .field("has_vocabulary", &self.fixed.has_vocabulary)
            .finish()
    }
}

pub(crate) fn bad(detail: impl Into<String>) -> Error {
    Error::KenLm { detail: detail.into() }
}

pub(crate) fn truncated(what: &'static str, needed: usize, len: usize) -> Error {
    Error::KenLmTruncated { what, needed_bytes: needed as u64, file_bytes: len as u64 }
}

/// Check the sanity block the way KenLM's `IsBinaryFormat` does, with its distinctions.
fn check_sanity(b: &[u8]) -> Result<()> {
    if b.starts_with(layout::MAGIC_INCOMPLETE) {
        return Err(bad("build_binary did not finish writing this file"));
    }
    if !b.starts_with(layout::MAGIC_BEFORE_VERSION) {
        return Err(bad("not a KenLM binary (no KenLM magic)"));
    }
    let rest = &b[layout::MAGIC_BEFORE_VERSION.len()..];
    let digits: Vec<u8> = rest
        .iter()
        .skip_while(|c| **c == b' ')
        .take_while(|c| c.is_ascii_digit())
        .copied()
        .collect();
    let version = std::str::from_utf8(&digits).ok().and_then(|d| d.parse::<u64>().ok());
    if let Some(v) = version
        && v != 5
    {
        return Err(bad(format!("format version {v}; this reader reads version 5")));
    }
    if b.len() < layout::SANITY {
        return Err(truncated("the header", layout::SANITY, b.len()));
    }
    if b[..layout::SANITY] != layout::sanity_block() {
        return Err(bad(
            "the header's test values differ from a little-endian 64-bit KenLM's (another architecture, or damaged)",
        ));
    }
    Ok(())
}

impl KenLm {
    /// Map a KenLM binary. O(1) in the model size: checks the header and the layout.
    pub fn open(path: &Path) -> Result<KenLm> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only and private; model files are not modified while
        // loaded. Every read goes through bounds-checked accessors (`bits::u64_at`).
        #[allow(unsafe_code)] // memory-mapping is the point: O(1) load, pages read on demand
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        // Queries are searches that jump around the file; read-ahead would only waste memory.
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Random);
        Self::from_storage(Storage::Mapped(map))
    }

    /// A KenLM binary held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<KenLm> {
        Self::from_storage(Storage::Owned(bytes))
    }

    fn from_storage(data: Storage) -> Result<KenLm> {
        let b: &[u8] = &data;
        check_sanity(b)?;
        let s = layout::SANITY;
        if b.len() < s + layout::FIXED {
            return Err(truncated("the header", s + layout::FIXED, b.len()));
        }
        let order = usize::from(b[s]);
        let probing_multiplier = f32_at(b, s + 4);
        let code = u32_at(b, s + 8);
        let has_vocabulary = b[s + 12] != 0;
        let search_version = u32_at(b, s + 16);
        let model_type =
            ModelType::from_code(code).ok_or_else(|| bad(format!("unknown model type {code}")))?;
        let version = if model_type.is_trie() { layout::TRIE_VERSION } else { 0 };
        if model_type == ModelType::RestProbing {
            return Err(bad("model type RestProbing (probing with rest costs) is not read"));
        }
        if search_version != version {
            return Err(bad(format!(
                "{model_type:?} version {search_version}; this reader reads {version}"
            )));
        }
        if !(2..=MAX_ORDER).contains(&order) {
            return Err(bad(format!("order {order}; 2 to {MAX_ORDER} are read")));
        }
        let header = layout::header_bytes(order);
        if b.len() < header {
            return Err(truncated("the header", header, b.len()));
        }
        let counts: Vec<u64> = (0..order).map(|i| u64_at(b, s + layout::FIXED + 8 * i)).collect();
        if counts[0] == 0 {
            return Err(bad("no unigrams"));
        }
        let (search, vocab_size, end) = if model_type.is_trie() {
            let t =
                Trie::open(b, &counts, model_type.quantized(), model_type.pointer_compressed())?;
            let (v, end) = (t.vocab_size(), t.layout.end);
            (Search::Trie(Box::new(t)), v, end)
        } else {
            let p = Probing::open(b, header, &counts, probing_multiplier)?;
            let (v, end) = (p.vocab_size(), p.end);
            (Search::Probing(p), v, end)
        };
        let vocab_size = u32::try_from(vocab_size)
            .map_err(|_| bad(format!("{vocab_size} words: KenLM's ids are 32-bit")))?;
        if has_vocabulary && !b[end..].starts_with(b"<unk>\0") {
            return Err(bad("the vocabulary strings do not start with <unk>"));
        }
        let fixed =
            Fixed { order, probing_multiplier, model_type, has_vocabulary, search_version, counts };
        let mut m = KenLm { data, fixed, search, vocab_size, end, bos: 0, eos: 0 };
        m.bos = m.index("<s>");
        m.eos = m.index("</s>");
        Ok(m)
    }

    /// Highest order.
    pub fn order(&self) -> usize {
        self.fixed.order
    }

    /// n-gram counts per order, as the header stores them: unigrams include `<unk>` (added with
    /// log10 probability -100, or `-u`, when the ARPA had none), higher orders include the
    /// blank n-grams KenLM inserted for pruned models.
    pub fn counts(&self) -> &[u64] {
        &self.fixed.counts
    }

    /// The search structure.
    pub fn model_type(&self) -> ModelType {
        self.fixed.model_type
    }

    /// Bits of quantized probabilities and back-offs (`None`: stored as floats).
    pub fn quantization(&self) -> Option<QuantBits> {
        match &self.search {
            Search::Trie(t) => t.layout.quant.map(|q| q.bits),
            Search::Probing(_) => None,
        }
    }

    /// The bit limit of pointer compression (`build_binary -a`; `None` without it).
    pub fn pointer_compression_bits(&self) -> Option<u8> {
        match &self.search {
            Search::Trie(t) => t.pointer_bits,
            Search::Probing(_) => None,
        }
    }

    /// Whether the file carries the vocabulary strings after the search structures.
    pub fn has_vocabulary(&self) -> bool {
        self.fixed.has_vocabulary
    }

    /// The file offset where the search structures end (KenLM `GetEndOfSearchOffset`): the
    /// vocabulary strings begin there, and DeepSpeech scorers built without them (`-v`)
    /// append their word trie there.
    pub fn end_of_search(&self) -> u64 {
        self.end as u64
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Words in the vocabulary, `<unk>` included (valid ids are `0..vocab_size()`).
    pub fn vocab_size(&self) -> u32 {
        self.vocab_size
    }

    /// KenLM's id of `word`, from its MurmurHash64A alone (so files without vocabulary strings
    /// map words too), 0 (`<unk>`) when the model does not have it. In tries, ids rank the
    /// hashes (the sorted table's position plus one); in probing models they are the ARPA's
    /// unigram order, found through a hash table.
    pub fn index(&self, word: &str) -> u32 {
        let hash = murmur_hash64a(word.as_bytes());
        match &self.search {
            Search::Trie(t) => t.index(&self.data, hash),
            Search::Probing(p) => p.index(&self.data, hash),
        }
    }

    /// The id of `<s>` (0 when the model has none).
    pub fn begin_sentence_id(&self) -> u32 {
        self.bos
    }

    /// The id of `</s>` (0 when the model has none).
    pub fn end_sentence_id(&self) -> u32 {
        self.eos
    }

    /// The state at the start of a sentence: context `<s>`, kept whatever its back-off
    /// (KenLM's `BeginSentenceState`).
    pub fn begin_sentence(&self) -> KenState {
        let mut s = KenState::EMPTY;
        s.words[0] = self.bos;
        s.backoff[0] = match &self.search {
            Search::Trie(t) => t.unigram(&self.data, self.bos).1,
            Search::Probing(p) => p.unigram(&self.data, self.bos).1,
        };
        s.len = 1;
        s
    }

    /// The state without context (KenLM's `NullContextState`).
    pub fn null_context(&self) -> KenState {
        KenState::EMPTY
    }

    /// log10 P(`word` | `state`) and the state after it: KenLM's `FullScore(...).prob`, bit
    /// for bit. Ids outside the vocabulary score as `<unk>`.
    pub fn score(&self, state: &KenState, word: u32) -> (f32, KenState) {
        let (r, s) = self.full_score(state, word);
        (r.log10_prob, s)
    }

    /// [`KenLm::score`] with the length of the n-gram matched.
    ///
    /// Follows KenLM's `GenericModel::FullScore` / `ScoreExceptBackoff` / `ResumeScore`: look
    /// the word up, then walk its context most recent first, one trie level per word, while
    /// the n-gram so far is found and has children; take the probability of the longest found
    /// and add, in this order, the back-offs of the state's n-grams at least that long.
    pub fn full_score(&self, state: &KenState, word: u32) -> (FullScore, KenState) {
        let word = if word < self.vocab_size { word } else { 0 };
        match &self.search {
            Search::Trie(t) => score(t.as_ref(), &self.data, self.fixed.order, state, word),
            Search::Probing(p) => score(p, &self.data, self.fixed.order, state, word),
        }
    }

    /// The vocabulary strings in id order (`<unk>` first), when the file has them.
    /// Words that are not UTF-8 are read as Latin-1, as the ARPA reader does.
    pub fn vocabulary(&self) -> Result<Option<Vec<String>>> {
        if !self.fixed.has_vocabulary {
            return Ok(None);
        }
        let n = self.vocab_size as usize;
        let mut words = Vec::with_capacity(n);
        let mut rest = &self.data[self.end..];
        for _ in 0..n {
            let Some(nul) = rest.iter().position(|&c| c == 0) else {
                return Err(bad(format!(
                    "the vocabulary strings end after {} of {n} words",
                    words.len()
                )));
            };
            words.push(crate::arpa::decode_line(&rest[..nul]));
            rest = &rest[nul + 1..];
        }
        Ok(Some(words))
    }

    /// The model as [`Tables`], with the file's own vocabulary strings (an error when it has
    /// none: use [`KenLm::to_tables_with`]).
    ///
    /// Every n-gram of the trie comes back, the blank n-grams KenLM inserted for pruned models
    /// included (as ordinary n-grams whose probability is the back-off estimate they stand
    /// for), so an ARPA written from the tables scores every sentence as this model does.
    /// Quantized values come back as their bin centres; zero back-offs as +0.
    pub fn to_tables(&self) -> Result<Tables> {
        let Some(words) = self.vocabulary()? else {
            return Err(bad(
                "the file has no vocabulary strings (built with -v); pass the words to to_tables_with",
            ));
        };
        self.to_tables_with(&|id| words.get(id as usize).cloned())
    }

    /// [`KenLm::to_tables`] for files without vocabulary strings: `words(id)` names KenLM id
    /// `id` (for example by inverting [`KenLm::index`] over a word list). Every id in
    /// `0..vocab_size()` needs a distinct word.
    pub fn to_tables_with(&self, words: &dyn Fn(u32) -> Option<String>) -> Result<Tables> {
        let Search::Trie(trie) = &self.search else {
            return Err(bad(
                "probing models cannot list their n-grams (hash tables keep no words)",
            ));
        };
        let order = self.fixed.order;
        let v = self.vocab_size;
        let mut names: Vec<(String, u32)> = Vec::with_capacity(v as usize);
        for id in 0..v {
            let w = words(id).ok_or_else(|| bad(format!("no word given for id {id}")))?;
            names.push((w, id));
        }
        names.sort();
        if let Some(w) = names.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(bad(format!("two ids carry the word {:?}", w[0].0)));
        }
        // KenLM id -> position in the sorted vocabulary (the tables' id).
        let mut to_ours = vec![0u32; v as usize];
        for (ours, (_, id)) in names.iter().enumerate() {
            // At most `v` names, and `v` is a u32.
            to_ours[*id as usize] = ours as u32;
        }
        let mut t = Tables {
            vocab: names.into_iter().map(|(w, _)| w).collect(),
            ids: vec![Vec::new(); order],
            prob: vec![Vec::new(); order],
            backoff: vec![Vec::new(); order - 1],
        };
        trie.export(&self.data, &to_ours, &mut t)?;
        Ok(t)
    }
}

/// KenLM's `GenericModel::FullScore` over any search structure: look the word up, then walk
/// its context most recent first while the n-gram so far is found and has longer n-grams
/// ending in it (`ScoreExceptBackoff`, `ResumeScore`); take the probability of the longest
/// found, then add, shortest first, the back-offs of the state's n-grams at least that long.
fn score<S: Structure>(
    s: &S,
    d: &[u8],
    order: usize,
    state: &KenState,
    word: u32,
) -> (FullScore, KenState) {
    let mut out = KenState::EMPTY;
    let (mut prob, uni_backoff, mut node, mut independent) = s.unigram(d, word);
    out.backoff[0] = uni_backoff;
    out.words[0] = word;
    // The state keeps words up to the longest n-gram that can be extended (back-off not -0).
    let mut next_use = u8::from(has_extension(uni_backoff));
    let mut ngram_length = 1u8;
    let ctx = state.len();
    for i in 0..ctx {
        if independent {
            break;
        }
        // `k` ≤ MAX_ORDER, which fits in a byte.
        let k = i + 2;
        if k == order {
            if let Some(p) = s.longest(d, state.words[i], node) {
                prob = p;
                ngram_length = k as u8;
            }
            break;
        }
        let Some((p, bo, ind)) = s.middle(d, k, state.words[i], &mut node) else { break };
        independent = ind;
        out.backoff[i + 1] = bo;
        prob = p;
        ngram_length = k as u8;
        if has_extension(bo) {
            next_use = k as u8;
        }
    }
    // The new state: the word, then the context words that still extend (KenLM's
    // `CopyRemainingHistory`; without context, at most the word).
    out.len = next_use;
    let keep = usize::from(next_use).saturating_sub(1);
    out.words[1..1 + keep].copy_from_slice(&state.words[..keep]);
    // Back-offs beyond the state's length are never read; clear them so that copies of equal
    // states are identical bytes too.
    for b in &mut out.backoff[usize::from(out.len)..] {
        *b = 0.0;
    }
    // Back off from every context at least as long as the n-gram matched, shortest first,
    // one `f32` addition at a time as KenLM does (the order changes the last bit).
    let matched = usize::from(ngram_length);
    for &b in state.backoff.iter().take(ctx).skip(matched - 1) {
        prob += b;
    }
    (FullScore { log10_prob: prob, ngram_length }, out)
}
