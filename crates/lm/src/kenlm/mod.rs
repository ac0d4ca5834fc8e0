//! KenLM's binary format (magic `mmap lm http://kheafield.com/code format version 5`), the language
//! model part of DeepSpeech and Coqui STT `.scorer` files: a reader ([`KenLm`]) whose queries
//! return exactly KenLM's `FullScore` log10 probabilities, bit for bit, and a writer
//! ([`write_trie`]) whose output is byte-identical to `build_binary … trie`.
//!
//! This module owns the trie family of the format: `TRIE`, `QUANT_TRIE` (`-q`/`-b`),
//! `ARRAY_TRIE` (`-a`, compressed child pointers) and `QUANT_ARRAY_TRIE` (both; what DeepSpeech
//! ships), with or without the vocabulary strings (`-v` drops them). The hash-table types
//! (`probing`) are recognised and refused with a typed error. It deliberately does not own
//! DeepSpeech's word trie, which scorers append at [`KenLm::end_of_search`].
//!
//! Written by hand: no Rust crate reads or writes KenLM's format, and the format is KenLM's
//! in-memory data structures dumped as they are, so byte-exactness means following KenLM's
//! builder step by step (its sort orders, its "blank" n-grams for pruned models, its quantizer
//! training, its pointer-compression arrays), which a binding could not give without C++.
//! The port follows KenLM as vendored in DeepSpeech (`native_client/kenlm`, KenLM v0.9.0);
//! names in comments map to its `lm/` sources.
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
mod write;

use std::path::Path;

use crate::arpa::Tables;
use crate::{Error, MAX_ORDER, Result, Storage};
use bits::{f32_at, has_extension, read_bits, read_f32_bits, read_nonpositive_f31, u32_at, u64_at};
use layout::{Fixed, Layout, Packed};

pub use bits::murmur_hash64a;
pub use layout::{ModelType, QuantBits};
pub use write::{TrieOptions, write_trie};

/// Whether `bytes` start like a KenLM binary (its magic, any format version). A file that
/// passes may still be refused by [`KenLm::from_bytes`] (another version, a probing model).
pub fn is_kenlm(bytes: &[u8]) -> bool {
    bytes.starts_with(layout::MAGIC_BEFORE_VERSION) || bytes.starts_with(layout::MAGIC_INCOMPLETE)
}

/// What a query knows of the words before the next one, as KenLM's `lm::ngram::State`: up to
/// `order - 1` words, most recent first, with the back-off of each n-gram they form (the most
/// recent word alone, then the two most recent, …). Words that cannot start a longer n-gram
/// are left out (KenLM's state minimisation), so states that score every future word alike
/// compare equal. Equality and hashing look at the words only, as KenLM's do.
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

/// The children of a trie node: entries `begin..end` of the next level.
#[derive(Debug, Clone, Copy)]
struct Range {
    begin: u64,
    end: u64,
}

/// A KenLM trie binary, memory-mapped ([`KenLm::open`]) or in memory ([`KenLm::from_bytes`]).
/// Opening checks the header and that every structure lies inside the file; nothing is
/// copied or parsed. Queries never panic on a damaged file: reads outside the file see zeros
/// and searches that meet unsorted data stop, so they return wrong numbers at worst.
pub struct KenLm {
    data: Storage,
    fixed: Fixed,
    layout: Layout,
    /// Hashes in the sorted vocabulary (words without `<unk>`).
    hashes: usize,
    pointer_bits: Option<u8>,
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

fn bad(detail: impl Into<String>) -> Error {
    Error::KenLm { detail: detail.into() }
}

fn truncated(what: &'static str, needed: usize, len: usize) -> Error {
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
        if !model_type.is_trie() {
            return Err(bad(format!(
                "model type {model_type:?}: only the trie types (build_binary trie) are read"
            )));
        }
        if search_version != layout::TRIE_VERSION {
            return Err(bad(format!("trie version {search_version}; this reader reads 1")));
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
        // Sizes up to the search structures do not depend on quantization or pointer
        // compression, whose parameters are stored at the start of those structures.
        let plain = Layout::trie(&counts, None, None)?;
        let quant = if model_type.quantized() {
            let at = plain.search;
            if b.len() < at + 3 {
                return Err(truncated("the quantizer header", at + 3, b.len()));
            }
            if b[at] != layout::QUANT_VERSION {
                return Err(bad(format!(
                    "quantization version {}; this reader reads {}",
                    b[at],
                    layout::QUANT_VERSION
                )));
            }
            let bits = QuantBits { prob: b[at + 1], backoff: b[at + 2] };
            if !(1..=25).contains(&bits.prob) || !(1..=25).contains(&bits.backoff) {
                return Err(bad(format!(
                    "quantization with {} probability and {} back-off bits (1 to 25 allowed)",
                    bits.prob, bits.backoff
                )));
            }
            Some(bits)
        } else {
            None
        };
        let pointer_bits = if model_type.pointer_compressed() {
            if order > 2 {
                // The configured bit limit is stored only in the header of each middle order's
                // offsets array; KenLM reads the first.
                let at = Layout::trie(&counts, quant, None)?.middle[0].start;
                if b.len() < at + 2 {
                    return Err(truncated("the pointer arrays", at + 2, b.len()));
                }
                if b[at] != layout::BHIKSHA_VERSION {
                    return Err(bad(format!(
                        "pointer compression version {}; this reader reads 0",
                        b[at]
                    )));
                }
                Some(b[at + 1])
            } else {
                Some(0)
            }
        } else {
            None
        };
        let layout = Layout::trie(&counts, quant, pointer_bits)?;
        if b.len() < layout.end {
            return Err(truncated("the search structures", layout.end, b.len()));
        }
        let stored = u64_at(b, layout.vocab);
        if stored >= counts[0] {
            return Err(bad(format!(
                "the vocabulary lists {stored} words besides <unk> but there are {} unigrams",
                counts[0]
            )));
        }
        if has_vocabulary && !b[layout.end..].starts_with(b"<unk>\0") {
            return Err(bad("the vocabulary strings do not start with <unk>"));
        }
        let fixed =
            Fixed { order, probing_multiplier, model_type, has_vocabulary, search_version, counts };
        // `stored < counts[0]`, which fits in memory (the unigram array does).
        let mut m =
            KenLm { data, fixed, layout, hashes: stored as usize, pointer_bits, bos: 0, eos: 0 };
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
        self.layout.quant.map(|q| q.bits)
    }

    /// The bit limit of pointer compression (`build_binary -a`; `None` without it).
    pub fn pointer_compression_bits(&self) -> Option<u8> {
        self.pointer_bits
    }

    /// Whether the file carries the vocabulary strings after the search structures.
    pub fn has_vocabulary(&self) -> bool {
        self.fixed.has_vocabulary
    }

    /// The file offset where the search structures end (KenLM `GetEndOfSearchOffset`): the
    /// vocabulary strings begin there, and DeepSpeech scorers built without them (`-v`)
    /// append their word trie there.
    pub fn end_of_search(&self) -> u64 {
        self.layout.end as u64
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Words in the vocabulary, `<unk>` included (valid ids are `0..vocab_size()`).
    pub fn vocab_size(&self) -> u32 {
        // `hashes < counts[0]`, and KenLM's ids are 32-bit; a larger count is refused by no
        // query (ids are u32), so saturate.
        u32::try_from(self.hashes + 1).unwrap_or(u32::MAX)
    }

    /// KenLM's id of `word`: its rank among the vocabulary's sorted MurmurHash64A hashes plus
    /// one, or 0 (`<unk>`) when the hash is not there. Works without vocabulary strings.
    pub fn index(&self, word: &str) -> u32 {
        let key = murmur_hash64a(word.as_bytes());
        let base = self.layout.vocab + 8;
        let (mut lo, mut hi) = (0usize, self.hashes);
        // Any search finds the same slot in a sorted table; KenLM interpolates, a binary
        // search is as exact and needs no floating point.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let h = u64_at(&self.data, base + 8 * mid);
            match h.cmp(&key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                // Ids fit in u32: `vocab_size` saturates beyond that and so does this.
                std::cmp::Ordering::Equal => return u32::try_from(mid + 1).unwrap_or(0),
            }
        }
        0
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
        s.backoff[0] = self.unigram(self.bos).1;
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
        let word = if word < self.vocab_size() { word } else { 0 };
        let order = self.fixed.order;
        let mut out = KenState::EMPTY;
        let (mut prob, uni_backoff, mut node) = self.unigram(word);
        // No children: no longer n-gram ends in this word ("independent left").
        let mut independent = node.begin == node.end;
        out.backoff[0] = uni_backoff;
        out.words[0] = word;
        let mut next_use = u8::from(has_extension(uni_backoff));
        let mut ngram_length = 1u8;
        let ctx = state.len();
        for i in 0..ctx {
            if independent {
                break;
            }
            let k = i + 2;
            if k == order {
                if let Some(p) = self.find_longest(state.words[i], node) {
                    prob = p;
                    ngram_length = order as u8;
                }
                break;
            }
            let Some((p, bo, child)) = self.find_middle(k, state.words[i], node) else { break };
            node = child;
            independent = child.begin == child.end;
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
        // Back-offs beyond the state's length are never read; clear them so copies of equal
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

    /// Unigram `w`: log10 probability, back-off and its bigrams' range.
    fn unigram(&self, w: u32) -> (f32, f32, Range) {
        let at = self.layout.unigram + layout::UNIGRAM_BYTES * w as usize;
        let d = &self.data;
        let begin = u64_at(d, at + 8);
        let end = u64_at(d, at + layout::UNIGRAM_BYTES + 8);
        (f32_at(d, at), f32_at(d, at + 4), Range { begin, end })
    }

    /// Among entries `range` of the packed array `p`, the one holding `word`
    /// (`util::BoundedSortedUniformFind` with KenLM's 32-bit pivot: interpolation between the
    /// bounds' words, which start as 0 and the vocabulary size).
    fn find(&self, p: &Packed, range: Range, word: u32) -> Option<u64> {
        if range.begin > range.end || range.end > p.entries {
            return None;
        }
        let key = u64::from(word);
        let (mut before_it, mut before_v) = (range.begin.wrapping_sub(1), 0u64);
        let (mut after_it, mut after_v) = (range.end, self.fixed.counts[0]);
        while after_it.wrapping_sub(before_it) > 1 {
            let width = after_it.wrapping_sub(before_it) - 1;
            // Sorted data keeps `before_v <= key <= after_v`; anything else is damage.
            let off = key.checked_sub(before_v)?;
            let span = after_v.checked_sub(before_v)?;
            let step = u128::from(off) * u128::from(width) / (u128::from(span) + 1);
            let step = u64::try_from(step).ok().filter(|&s| s < width)?;
            let pivot = before_it.wrapping_add(1 + step);
            let bit = self.bit_base(p).wrapping_add(pivot.wrapping_mul(u64::from(p.total_bits)));
            let mid = read_bits(&self.data, bit, p.word_bits);
            match mid.cmp(&key) {
                std::cmp::Ordering::Less => (before_it, before_v) = (pivot, mid),
                std::cmp::Ordering::Greater => (after_it, after_v) = (pivot, mid),
                std::cmp::Ordering::Equal => return Some(pivot),
            }
        }
        None
    }

    fn bit_base(&self, p: &Packed) -> u64 {
        8 * p.base as u64
    }

    /// Middle order `k`: probability, back-off and children of `word` under `node`.
    fn find_middle(&self, k: usize, word: u32, node: Range) -> Option<(f32, f32, Range)> {
        let p = &self.layout.middle[k - 2];
        let i = self.find(p, node, word)?;
        let (prob, bo) = self.middle_values(k, i);
        Some((prob, bo, self.children(p, i)))
    }

    /// Value bits of entry `i` of the packed array `p`.
    fn value_bit(&self, p: &Packed, i: u64) -> u64 {
        self.bit_base(p) + i * u64::from(p.total_bits) + u64::from(p.word_bits)
    }

    fn middle_values(&self, k: usize, i: u64) -> (f32, f32) {
        let p = &self.layout.middle[k - 2];
        let at = self.value_bit(p, i);
        let d = &self.data;
        match self.layout.quant {
            None => (read_nonpositive_f31(d, at), read_f32_bits(d, at + 31)),
            Some(q) => {
                let pc = read_bits(d, at + u64::from(q.bits.backoff), q.bits.prob) as usize;
                let bc = read_bits(d, at, q.bits.backoff) as usize;
                (f32_at(d, q.prob_table(k) + 4 * pc), f32_at(d, q.backoff_table(k) + 4 * bc))
            }
        }
    }

    fn longest_value(&self, i: u64) -> f32 {
        let p = &self.layout.longest;
        let at = self.value_bit(p, i);
        match self.layout.quant {
            None => read_nonpositive_f31(&self.data, at),
            Some(q) => {
                let c = read_bits(&self.data, at, q.bits.prob) as usize;
                f32_at(&self.data, q.prob_table(self.fixed.order) + 4 * c)
            }
        }
    }

    fn find_longest(&self, word: u32, node: Range) -> Option<f32> {
        let i = self.find(&self.layout.longest, node, word)?;
        Some(self.longest_value(i))
    }

    /// The children of middle entry `i` (`DontBhiksha::ReadNext` / `ArrayBhiksha::ReadNext`):
    /// its pointer and the next entry's, with the high bits from the offsets array when
    /// pointers are compressed.
    fn children(&self, p: &Packed, i: u64) -> Range {
        let at = self.value_bit(p, i) + u64::from(p.value_bits);
        let next = u64::from(p.total_bits);
        let d = &self.data;
        let lo_begin = read_bits(d, at, p.next_bits);
        let lo_end = read_bits(d, at + next, p.next_bits);
        let Some((offsets, count)) = p.offsets else {
            return Range { begin: lo_begin, end: lo_end };
        };
        // High bits: the last array position whose first index is <= i (resp. i + 1).
        let off = |j: usize| u64_at(d, offsets + 8 * j);
        let (mut lo, mut hi) = (0usize, count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if off(mid) <= i { lo = mid + 1 } else { hi = mid }
        }
        let Some(begin_hi) = lo.checked_sub(1) else { return Range { begin: 1, end: 0 } };
        let mut end_hi = begin_hi + 1;
        while end_hi < count && off(end_hi) <= i + 1 {
            end_hi += 1;
        }
        end_hi -= 1;
        let shift = u32::from(p.next_bits);
        let high = |h: usize| (h as u64).checked_shl(shift).unwrap_or(0);
        Range { begin: high(begin_hi) | lo_begin, end: high(end_hi) | lo_end }
    }

    /// The vocabulary strings in id order (`<unk>` first), when the file has them.
    /// Words that are not UTF-8 are read as Latin-1, as the ARPA reader does.
    pub fn vocabulary(&self) -> Result<Option<Vec<String>>> {
        if !self.fixed.has_vocabulary {
            return Ok(None);
        }
        let n = self.hashes + 1;
        let mut words = Vec::with_capacity(n);
        let mut rest = &self.data[self.layout.end..];
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
        let order = self.fixed.order;
        let v = self.vocab_size();
        if u64::from(v) > self.fixed.counts[0] {
            return Err(bad("more words than unigrams"));
        }
        let mut names: Vec<(String, u32)> = Vec::with_capacity(v as usize);
        for id in 0..v {
            let w = words(id).ok_or_else(|| bad(format!("no word given for id {id}")))?;
            names.push((w, id));
        }
        names.sort();
        if let Some(w) = names.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(bad(format!("two ids carry the word {:?}", w[0].0)));
        }
        // KenLM id -> position in the sorted vocabulary (Harken's id).
        let mut to_ours = vec![0u32; v as usize];
        for (ours, (_, id)) in names.iter().enumerate() {
            to_ours[*id as usize] = ours as u32;
        }
        let mut t = Tables {
            vocab: names.into_iter().map(|(w, _)| w).collect(),
            ids: vec![Vec::new(); order],
            prob: vec![Vec::new(); order],
            backoff: vec![Vec::new(); order - 1],
        };
        let zero = |b: f32| if b == 0.0 { 0.0 } else { b };
        let mut uni_prob = vec![0f32; v as usize];
        let mut uni_bo = vec![0f32; v as usize];
        // Reversed paths of the previous level (KenLM ids, predicted word first) and each
        // entry's children.
        let mut paths: Vec<u32> = Vec::new();
        let mut ranges: Vec<Range> = Vec::new();
        for w in 0..v {
            let (p, b, r) = self.unigram(w);
            uni_prob[to_ours[w as usize] as usize] = p;
            uni_bo[to_ours[w as usize] as usize] = zero(b);
            paths.push(w);
            ranges.push(r);
        }
        t.prob[0] = uni_prob;
        t.backoff[0] = uni_bo;
        for k in 2..=order {
            let p = *self.layout.packed(k);
            let mut next_paths = Vec::new();
            let mut next_ranges = Vec::new();
            let mut expect = 0u64;
            let mut ids = Vec::new();
            let mut probs = Vec::new();
            let mut bos = Vec::new();
            for (parent, r) in paths.chunks(k - 1).zip(&ranges) {
                if r.begin != expect || r.end < r.begin || r.end > p.entries {
                    return Err(bad(format!(
                        "the {k}-gram ranges are not contiguous (entry {} where {expect} was due)",
                        r.begin
                    )));
                }
                expect = r.end;
                for i in r.begin..r.end {
                    let bit = self.bit_base(&p) + i * u64::from(p.total_bits);
                    let word = read_bits(&self.data, bit, p.word_bits);
                    let word = u32::try_from(word)
                        .ok()
                        .filter(|&x| x < v)
                        .ok_or_else(|| bad(format!("{k}-gram entry {i} has word id {word}")))?;
                    next_paths.extend_from_slice(parent);
                    next_paths.push(word);
                    // Reversed path -> the n-gram in reading order, in Harken ids.
                    ids.extend(
                        next_paths[next_paths.len() - k..]
                            .iter()
                            .rev()
                            .map(|&x| to_ours[x as usize]),
                    );
                    if k < order {
                        let (pr, bo) = self.middle_values(k, i);
                        probs.push(pr);
                        bos.push(zero(bo));
                        next_ranges.push(self.children(&p, i));
                    } else {
                        probs.push(self.longest_value(i));
                    }
                }
            }
            if expect != p.entries {
                return Err(bad(format!("the trie reaches {expect} of {} {k}-grams", p.entries)));
            }
            let bo = (k < order).then_some(&mut bos);
            crate::arpa::sort_records(k, &mut ids, &mut probs, bo);
            t.ids[k - 1] = ids;
            t.prob[k - 1] = probs;
            if k < order {
                t.backoff[k - 1] = bos;
            }
            paths = next_paths;
            ranges = next_ranges;
        }
        Ok(t)
    }
}
