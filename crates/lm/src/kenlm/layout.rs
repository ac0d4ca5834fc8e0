//! Where everything lies in a KenLM trie binary, computed from the header alone, exactly as
//! KenLM sizes its memory (`GenericModel::Size`, `TrieSearch::Size`/`SetupMemory`,
//! `BitPackedMiddle::Size`, `ArrayBhiksha::Size`, `SeparatelyQuantize::Size`). The reader and
//! the writer share it, so the two can only disagree with KenLM together, never with each
//! other.
//!
//! File = header (sanity block, fixed parameters, counts; 8-aligned) · sorted vocabulary
//! (word count, then `u64` hashes) · search (quantizer bins, unigram records, one bit-packed
//! array per middle order, the bit-packed longest order) · optionally the vocabulary strings.

use super::bits::required_bits;
use crate::{Error, MAX_ORDER, Result};

/// The magic KenLM writes, its trailing NUL included (`kMagicBytes`).
pub(crate) const MAGIC: &[u8] = b"mmap lm http://kheafield.com/code format version 5\n\0\0";
/// What every version's magic starts with.
pub(crate) const MAGIC_BEFORE_VERSION: &[u8] = b"mmap lm http://kheafield.com/code format version";
/// The magic of a file `build_binary` did not finish.
pub(crate) const MAGIC_INCOMPLETE: &[u8] = b"mmap lm http://kheafield.com/code incomplete\n";
/// The sanity block: magic padded to 56 bytes, test floats and integers (`struct Sanity`).
pub(crate) const SANITY: usize = 88;
/// `struct FixedWidthParameters`: order, probing multiplier, model type, has-vocabulary flag,
/// search version (20 bytes with C padding).
pub(crate) const FIXED: usize = 20;
/// Search version of the trie structures (`TrieSearch::kVersion`).
pub(crate) const TRIE_VERSION: u32 = 1;
/// Version byte of quantizer bins (`kSeparatelyQuantizeVersion`).
pub(crate) const QUANT_VERSION: u8 = 2;
/// Version byte of pointer-compression arrays (`kArrayBhikshaVersion`).
pub(crate) const BHIKSHA_VERSION: u8 = 0;
/// Bytes per unigram record: log10 probability, back-off, index of its first bigram.
pub(crate) const UNIGRAM_BYTES: usize = 16;

/// The sanity block a little-endian, 64-bit build of KenLM writes.
pub(crate) fn sanity_block() -> [u8; SANITY] {
    let mut s = [0u8; SANITY];
    s[..MAGIC.len()].copy_from_slice(MAGIC);
    s[56..60].copy_from_slice(&0.0f32.to_le_bytes());
    s[60..64].copy_from_slice(&1.0f32.to_le_bytes());
    s[64..68].copy_from_slice(&(-0.5f32).to_le_bytes());
    s[68..72].copy_from_slice(&1u32.to_le_bytes());
    s[72..76].copy_from_slice(&u32::MAX.to_le_bytes());
    s[80..88].copy_from_slice(&1u64.to_le_bytes());
    s
}

/// Round up to a multiple of 8 (KenLM `ALIGN8`).
pub(crate) fn align8(x: usize) -> usize {
    x.div_ceil(8) * 8
}

/// Bytes of the header of an order-`order` model (`TotalHeaderSize`).
pub(crate) fn header_bytes(order: usize) -> usize {
    align8(SANITY + FIXED + 8 * order)
}

/// Which search structure a binary holds (KenLM `ModelType`; the numbers are the file's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelType {
    /// Hash tables (`build_binary probing`); recognised, not read.
    Probing,
    /// Hash tables with rest costs; recognised, not read.
    RestProbing,
    /// Bit-packed trie, values as floats (`build_binary trie`).
    Trie,
    /// Trie with quantized values (`-q`).
    QuantTrie,
    /// Trie with compressed child pointers (`-a`).
    ArrayTrie,
    /// Trie with quantized values and compressed pointers (`-q -a`, as DeepSpeech builds).
    QuantArrayTrie,
}

impl ModelType {
    pub(crate) fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            0 => ModelType::Probing,
            1 => ModelType::RestProbing,
            2 => ModelType::Trie,
            3 => ModelType::QuantTrie,
            4 => ModelType::ArrayTrie,
            5 => ModelType::QuantArrayTrie,
            _ => return None,
        })
    }

    pub(crate) fn code(self) -> u32 {
        match self {
            ModelType::Probing => 0,
            ModelType::RestProbing => 1,
            ModelType::Trie => 2,
            ModelType::QuantTrie => 3,
            ModelType::ArrayTrie => 4,
            ModelType::QuantArrayTrie => 5,
        }
    }

    /// Whether values are quantized.
    pub fn quantized(self) -> bool {
        matches!(self, ModelType::QuantTrie | ModelType::QuantArrayTrie)
    }

    /// Whether child pointers are compressed (Raj and Whittaker's sorted-array method).
    pub fn pointer_compressed(self) -> bool {
        matches!(self, ModelType::ArrayTrie | ModelType::QuantArrayTrie)
    }

    /// Whether this is one of the trie structures.
    pub fn is_trie(self) -> bool {
        !matches!(self, ModelType::Probing | ModelType::RestProbing)
    }

    /// The trie type with these options.
    pub(crate) fn trie(quantized: bool, pointer_compressed: bool) -> Self {
        match (quantized, pointer_compressed) {
            (false, false) => ModelType::Trie,
            (true, false) => ModelType::QuantTrie,
            (false, true) => ModelType::ArrayTrie,
            (true, true) => ModelType::QuantArrayTrie,
        }
    }
}

/// Bits of the quantized values: `-q` (probabilities) and `-b` (back-offs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuantBits {
    /// Bits per probability code, 1..=25.
    pub prob: u8,
    /// Bits per back-off code, 2..=25 (two codes are reserved for the two zeros).
    pub backoff: u8,
}

/// One bit-packed array of n-grams (a middle order or the longest).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Packed {
    /// File offset of the packed bits.
    pub base: usize,
    /// Entries, the end sentinel of a middle order not included.
    pub entries: u64,
    pub word_bits: u8,
    /// Bits of the value (probability, or probability and back-off).
    pub value_bits: u8,
    /// Bits of the child pointer stored in the entry (middle orders).
    pub next_bits: u8,
    pub total_bits: u8,
    /// Pointer compression: file offset of the first `u64` of the offsets array and its
    /// length (middle orders of ARRAY tries).
    pub offsets: Option<(usize, usize)>,
    /// Where the structure starts (the 2-byte pointer-compression header of ARRAY tries).
    pub start: usize,
}

impl Packed {
    /// `BitPacked::BaseSize`: one more entry than stored (the end sentinel), rounded up to
    /// bytes, plus 8 bytes so that a 64-bit read at the last entry stays inside.
    fn base_bytes(entries: u64, total_bits: u8) -> Option<usize> {
        let bits = (entries.checked_add(1)?).checked_mul(u64::from(total_bits))?;
        usize::try_from(bits.checked_add(7)? / 8 + 8).ok()
    }
}

/// Where the quantizer's bins are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QuantLayout {
    pub bits: QuantBits,
    /// File offset of the first bin (after the 8-byte version header).
    pub tables: usize,
}

impl QuantLayout {
    /// File offset of the probability bins of middle order `k` (2 ≤ k < order), or of the
    /// longest order's bins for `k == order`.
    pub(crate) fn prob_table(&self, k: usize) -> usize {
        self.tables + (k - 2) * 4 * ((1usize << self.bits.prob) + (1usize << self.bits.backoff))
    }
    /// File offset of the back-off bins of middle order `k`.
    pub(crate) fn backoff_table(&self, k: usize) -> usize {
        self.prob_table(k) + 4 * (1usize << self.bits.prob)
    }
}

/// The layout of a trie binary.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub order: usize,
    /// File offset of the sorted vocabulary (its word count, then the hashes).
    pub vocab: usize,
    /// File offset of the search structures.
    pub search: usize,
    pub quant: Option<QuantLayout>,
    /// File offset of the unigram records.
    pub unigram: usize,
    /// Orders 2..order-1 (index 0: bigrams).
    pub middle: [Packed; MAX_ORDER],
    pub longest: Packed,
    /// End of the search structures: where vocabulary strings (or, in DeepSpeech scorers,
    /// its word trie) begin.
    pub end: usize,
}

fn too_big() -> Error {
    Error::KenLm { detail: "n-gram counts too large for this machine's address space".into() }
}

/// `ChopBits`: how many high bits of the child pointers the offsets array takes over, the
/// number (at most `max_chop`) that minimises table size minus the bits saved. The
/// arithmetic wraps as KenLM's mixed unsigned/signed 64-bit expression does.
fn chop_bits(max_offset: u64, max_next: u64, max_chop: u8) -> u8 {
    let required = required_bits(max_next);
    let mut best = 0u8;
    let mut lowest = i64::MAX;
    for chop in 0..=required.min(max_chop) {
        let table = (max_next >> (required - chop)).wrapping_mul(64);
        let change = table.wrapping_sub(max_offset.wrapping_mul(u64::from(chop))) as i64;
        if change < lowest {
            lowest = change;
            best = chop;
        }
    }
    best
}

impl Layout {
    /// Lay out an order-`counts.len()` trie. `counts[0]` includes `<unk>`; `quant` is set for
    /// the QUANT types; `pointer_bits` (the `-a` value) for the ARRAY types.
    pub(crate) fn trie(
        counts: &[u64],
        quant: Option<QuantBits>,
        pointer_bits: Option<u8>,
    ) -> Result<Layout> {
        let order = counts.len();
        if !(2..=MAX_ORDER).contains(&order) {
            return Err(Error::KenLm {
                detail: format!("order {order}: KenLM tries need 2 to {MAX_ORDER}"),
            });
        }
        let size = |x: u64| usize::try_from(x).map_err(|_| too_big());
        let add = |a: usize, b: usize| a.checked_add(b).ok_or_else(too_big);
        let header = header_bytes(order);
        let vocab = header;
        let vocab_bytes = size(counts[0])?.checked_add(1).and_then(|n| n.checked_mul(8));
        let search = add(vocab, vocab_bytes.ok_or_else(too_big)?)?;
        let mut at = search;
        let quant = match quant {
            Some(bits) => {
                let q = QuantLayout { bits, tables: at + 8 };
                let middle_table = 4 * ((1usize << bits.prob) + (1usize << bits.backoff));
                at = add(at, (order - 2) * middle_table + 4 * (1usize << bits.prob) + 8)?;
                Some(q)
            }
            None => None,
        };
        let unigram = at;
        let uni_bytes = size(counts[0])?.checked_add(2).and_then(|n| n.checked_mul(UNIGRAM_BYTES));
        at = add(at, uni_bytes.ok_or_else(too_big)?)?;
        let word_bits = required_bits(counts[0]);
        let mut middle = [Packed::default(); MAX_ORDER];
        for k in 2..order {
            let entries = counts[k - 1];
            let max_next = counts[k];
            let value_bits = quant.map_or(63, |q| q.bits.prob + q.bits.backoff);
            let start = at;
            let (next_bits, offsets, array_bytes) = match pointer_bits {
                Some(max_chop) => {
                    let max_offset = entries.checked_add(1).ok_or_else(too_big)?;
                    let chop = chop_bits(max_offset, max_next, max_chop);
                    let required = required_bits(max_next);
                    let count = size((max_next >> (required - chop)) + 1)?;
                    // The array starts 8-aligned after an 8-byte header; KenLM aligns
                    // addresses, which are file offsets plus a page-aligned mapping.
                    let first = align8(start) + 8;
                    let bytes = count.checked_add(1).and_then(|n| n.checked_mul(8));
                    (required - chop, Some((first, count)), add(bytes.ok_or_else(too_big)?, 7)?)
                }
                None => (required_bits(max_next), None, 0),
            };
            let total_bits = word_bits + value_bits + next_bits;
            let base = add(start, array_bytes)?;
            let bytes = Packed::base_bytes(entries, total_bits).ok_or_else(too_big)?;
            middle[k - 2] = Packed {
                base,
                entries,
                word_bits,
                value_bits,
                next_bits,
                total_bits,
                offsets,
                start,
            };
            at = add(base, bytes)?;
        }
        let value_bits = quant.map_or(31, |q| q.bits.prob);
        let total_bits = word_bits + value_bits;
        let entries = counts[order - 1];
        let longest = Packed {
            base: at,
            entries,
            word_bits,
            value_bits,
            next_bits: 0,
            total_bits,
            offsets: None,
            start: at,
        };
        at = add(at, Packed::base_bytes(entries, total_bits).ok_or_else(too_big)?)?;
        Ok(Layout { order, vocab, search, quant, unigram, middle, longest, end: at })
    }

    /// The packed array of order `k` (2..=order).
    pub(crate) fn packed(&self, k: usize) -> &Packed {
        if k == self.order { &self.longest } else { &self.middle[k - 2] }
    }
}

/// The fixed header fields, as written after the sanity block.
#[derive(Debug, Clone)]
pub(crate) struct Fixed {
    pub order: usize,
    pub probing_multiplier: f32,
    pub model_type: ModelType,
    pub has_vocabulary: bool,
    pub search_version: u32,
    pub counts: Vec<u64>,
}

impl Fixed {
    /// The header bytes (sanity block, fixed fields, counts, zero padding).
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut h = vec![0u8; header_bytes(self.order)];
        h[..SANITY].copy_from_slice(&sanity_block());
        let f = &mut h[SANITY..];
        // Orders are at most MAX_ORDER, so the byte holds them.
        f[0] = self.order as u8;
        f[4..8].copy_from_slice(&self.probing_multiplier.to_le_bytes());
        f[8..12].copy_from_slice(&self.model_type.code().to_le_bytes());
        f[12] = u8::from(self.has_vocabulary);
        f[16..20].copy_from_slice(&self.search_version.to_le_bytes());
        for (i, c) in self.counts.iter().enumerate() {
            f[FIXED + 8 * i..FIXED + 8 * i + 8].copy_from_slice(&c.to_le_bytes());
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_88_byte_sanity_plus_fields() {
        assert_eq!(MAGIC.len(), 53);
        assert_eq!(header_bytes(3), 136);
        assert_eq!(header_bytes(5), 152);
        let h = Fixed {
            order: 3,
            probing_multiplier: 1.5,
            model_type: ModelType::QuantArrayTrie,
            has_vocabulary: false,
            search_version: 1,
            counts: vec![1616, 6933, 8551],
        }
        .to_bytes();
        assert_eq!(&h[88..92], &[3, 0, 0, 0]);
        assert_eq!(&h[96..100], &[5, 0, 0, 0]);
        assert_eq!(h.len(), 136);
    }

    #[test]
    fn chop_bits_prefers_small_tables() {
        // No chopping can pay for a table when there are few pointers.
        assert_eq!(chop_bits(2, 1000, 255), 0);
        // Many entries pointing into a large next order: chop most of the pointer.
        let c = chop_bits(1_000_000, 3_000_000, 255);
        assert!(c > 5, "{c}");
        assert!(chop_bits(1_000_000, 3_000_000, 3) <= 3);
    }
}
