//! Lookups in the trie types: the sorted vocabulary, the unigram array and the bit-packed
//! levels (KenLM `lm/trie.cc`, `lm/bhiksha.hh`, `lm/quantize.hh`, `lm/vocab.cc`
//! `SortedVocabulary`), and walking every n-gram back out for [`super::KenLm::to_tables_with`].
//! Every read is bounds-checked (out-of-file bytes read as zero) and every search bails out on
//! data that is not sorted, so a damaged file gives wrong answers, never a panic or a hang.

use std::cmp::Ordering;

use super::bits::{f32_at, read_bits, read_f32_bits, read_nonpositive_f31, u64_at};
use super::layout::{self, Layout, Packed, QuantBits};
use super::{Structure, bad, truncated};
use crate::Result;
use crate::arpa::Tables;

/// The children of a trie node: entries `begin..end` of the next level.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Range {
    begin: u64,
    end: u64,
}

/// A trie binary's structures.
#[derive(Debug, Clone)]
pub(crate) struct Trie {
    pub layout: Layout,
    /// Unigrams, `<unk>` included (the bound interpolation search starts from).
    unigrams: u64,
    /// Hashes in the sorted vocabulary (words without `<unk>`).
    hashes: usize,
    pub pointer_bits: Option<u8>,
}

impl Trie {
    /// Read the parameters stored at the start of the search structures and lay them out.
    pub(crate) fn open(
        b: &[u8],
        counts: &[u64],
        quantized: bool,
        pointer_compressed: bool,
    ) -> Result<Trie> {
        // Sizes up to the search structures do not depend on quantization or pointer
        // compression, whose parameters are stored at the start of those structures.
        let plain = Layout::trie(counts, None, None)?;
        let quant = if quantized {
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
        let pointer_bits = match (pointer_compressed, counts.len()) {
            (false, _) => None,
            // Without middle orders there is no pointer array and no stored limit.
            (true, 2) => Some(0),
            (true, _) => {
                // The configured limit is stored only in the 2-byte header of each middle
                // order's offsets array; KenLM reads the first.
                let at = Layout::trie(counts, quant, None)?.middle[0].start;
                if b.len() < at + 2 {
                    return Err(truncated("the pointer arrays", at + 2, b.len()));
                }
                if b[at] != layout::BHIKSHA_VERSION {
                    return Err(bad(format!(
                        "pointer compression version {}; this reader reads {}",
                        b[at],
                        layout::BHIKSHA_VERSION
                    )));
                }
                Some(b[at + 1])
            }
        };
        let layout = Layout::trie(counts, quant, pointer_bits)?;
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
        // `stored < counts[0]`, and the unigram array of that many records fits in the file.
        Ok(Trie { layout, unigrams: counts[0], hashes: stored as usize, pointer_bits })
    }

    /// Words in the vocabulary, `<unk>` included.
    pub(crate) fn vocab_size(&self) -> usize {
        self.hashes + 1
    }

    /// The rank of `hash` among the sorted hashes plus one, or 0 (`<unk>`). Any search finds
    /// the same slot in a sorted table; KenLM interpolates, a binary search is as exact and
    /// needs no floating point.
    pub(crate) fn index(&self, d: &[u8], hash: u64) -> u32 {
        let base = self.layout.vocab + 8;
        let (mut lo, mut hi) = (0usize, self.hashes);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match u64_at(d, base + 8 * mid).cmp(&hash) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                // KenLM's ids are 32-bit; a vocabulary beyond that has no id for the word.
                Ordering::Equal => return u32::try_from(mid + 1).unwrap_or(0),
            }
        }
        0
    }

    /// Unigram `w`: log10 probability, back-off and its bigrams' range.
    fn unigram_record(&self, d: &[u8], w: u32) -> (f32, f32, Range) {
        let at = self.layout.unigram + layout::UNIGRAM_BYTES * w as usize;
        let begin = u64_at(d, at + 8);
        let end = u64_at(d, at + layout::UNIGRAM_BYTES + 8);
        (f32_at(d, at), f32_at(d, at + 4), Range { begin, end })
    }

    fn bit_base(p: &Packed) -> u64 {
        8 * p.base as u64
    }

    /// Bit offset of the value of entry `i` of `p`.
    fn value_bit(p: &Packed, i: u64) -> u64 {
        Self::bit_base(p) + i * u64::from(p.total_bits) + u64::from(p.word_bits)
    }

    /// Among entries `range` of `p`, the one holding `word` (`util::BoundedSortedUniformFind`
    /// with KenLM's 32-bit pivot: interpolation between the bounds' words, which start as 0
    /// and the unigram count).
    fn find(&self, d: &[u8], p: &Packed, range: Range, word: u32) -> Option<u64> {
        if range.begin > range.end || range.end > p.entries {
            return None;
        }
        let key = u64::from(word);
        let (mut before_it, mut before_v) = (range.begin.wrapping_sub(1), 0u64);
        let (mut after_it, mut after_v) = (range.end, self.unigrams);
        while after_it.wrapping_sub(before_it) > 1 {
            let width = after_it.wrapping_sub(before_it) - 1;
            // Sorted data keeps `before_v <= key <= after_v`; anything else is damage.
            let off = key.checked_sub(before_v)?;
            let span = after_v.checked_sub(before_v)?;
            let step = u128::from(off) * u128::from(width) / (u128::from(span) + 1);
            let step = u64::try_from(step).ok().filter(|&s| s < width)?;
            let pivot = before_it.wrapping_add(1 + step);
            let bit = Self::bit_base(p).wrapping_add(pivot.wrapping_mul(u64::from(p.total_bits)));
            let mid = read_bits(d, bit, p.word_bits);
            match mid.cmp(&key) {
                Ordering::Less => (before_it, before_v) = (pivot, mid),
                Ordering::Greater => (after_it, after_v) = (pivot, mid),
                Ordering::Equal => return Some(pivot),
            }
        }
        None
    }

    fn middle_values(&self, d: &[u8], k: usize, i: u64) -> (f32, f32) {
        let at = Self::value_bit(&self.layout.middle[k - 2], i);
        match self.layout.quant {
            None => (read_nonpositive_f31(d, at), read_f32_bits(d, at + 31)),
            Some(q) => {
                let pc = read_bits(d, at + u64::from(q.bits.backoff), q.bits.prob) as usize;
                let bc = read_bits(d, at, q.bits.backoff) as usize;
                (f32_at(d, q.prob_table(k) + 4 * pc), f32_at(d, q.backoff_table(k) + 4 * bc))
            }
        }
    }

    fn longest_value(&self, d: &[u8], i: u64) -> f32 {
        let at = Self::value_bit(&self.layout.longest, i);
        match self.layout.quant {
            None => read_nonpositive_f31(d, at),
            Some(q) => {
                let c = read_bits(d, at, q.bits.prob) as usize;
                f32_at(d, q.prob_table(self.layout.order) + 4 * c)
            }
        }
    }

    /// The children of middle entry `i` (`DontBhiksha`/`ArrayBhiksha::ReadNext`): its pointer
    /// and the next entry's, with the high bits from the offsets array when compressed.
    fn children(&self, d: &[u8], p: &Packed, i: u64) -> Range {
        let at = Self::value_bit(p, i) + u64::from(p.value_bits);
        let lo_begin = read_bits(d, at, p.next_bits);
        let lo_end = read_bits(d, at + u64::from(p.total_bits), p.next_bits);
        let Some((offsets, count)) = p.offsets else {
            return Range { begin: lo_begin, end: lo_end };
        };
        // High bits: the last array position whose first entry index is <= i (resp. i + 1).
        let off = |j: usize| u64_at(d, offsets + 8 * j);
        let (mut lo, mut hi) = (0usize, count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if off(mid) <= i {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        // A valid array starts with 0, so only damage gets here; an inverted range finds
        // nothing.
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

    /// Every n-gram, for [`super::KenLm::to_tables_with`]: `to_ours` maps KenLM ids to the
    /// tables' ids. Zero back-offs come back as +0.
    pub(crate) fn export(&self, d: &[u8], to_ours: &[u32], t: &mut Tables) -> Result<()> {
        let order = self.layout.order;
        let v = to_ours.len();
        let zero = |b: f32| if b == 0.0 { 0.0 } else { b };
        let mut uni_prob = vec![0f32; v];
        let mut uni_bo = vec![0f32; v];
        // Reversed paths of the previous level (predicted word first) and their children.
        let mut paths: Vec<u32> = Vec::with_capacity(v);
        let mut ranges: Vec<Range> = Vec::with_capacity(v);
        for (w, &ours) in to_ours.iter().enumerate() {
            // `v` came from a u32 vocabulary size.
            let (p, b, r) = self.unigram_record(d, w as u32);
            uni_prob[ours as usize] = p;
            uni_bo[ours as usize] = zero(b);
            paths.push(w as u32);
            ranges.push(r);
        }
        t.prob[0] = uni_prob;
        t.backoff[0] = uni_bo;
        for k in 2..=order {
            let p = *self.layout.packed(k);
            let (mut next_paths, mut next_ranges) = (Vec::new(), Vec::new());
            let (mut ids, mut probs, mut bos) = (Vec::new(), Vec::new(), Vec::new());
            let mut expect = 0u64;
            for (parent, r) in paths.chunks(k - 1).zip(&ranges) {
                if r.begin != expect || r.end < r.begin || r.end > p.entries {
                    return Err(bad(format!(
                        "the {k}-gram ranges are not contiguous (entry {} where {expect} was due)",
                        r.begin
                    )));
                }
                expect = r.end;
                for i in r.begin..r.end {
                    let bit = Self::bit_base(&p) + i * u64::from(p.total_bits);
                    let word = read_bits(d, bit, p.word_bits);
                    let word = u32::try_from(word)
                        .ok()
                        .filter(|&x| (x as usize) < v)
                        .ok_or_else(|| bad(format!("{k}-gram entry {i} has word id {word}")))?;
                    next_paths.extend_from_slice(parent);
                    next_paths.push(word);
                    // The reversed path read backwards is the n-gram in reading order.
                    let path = &next_paths[next_paths.len() - k..];
                    ids.extend(path.iter().rev().map(|&x| to_ours[x as usize]));
                    if k < order {
                        let (pr, bo) = self.middle_values(d, k, i);
                        probs.push(pr);
                        bos.push(zero(bo));
                        next_ranges.push(self.children(d, &p, i));
                    } else {
                        probs.push(self.longest_value(d, i));
                    }
                }
            }
            if expect != p.entries {
                return Err(bad(format!("the trie reaches {expect} of {} {k}-grams", p.entries)));
            }
            crate::arpa::sort_records(k, &mut ids, &mut probs, (k < order).then_some(&mut bos));
            t.ids[k - 1] = ids;
            t.prob[k - 1] = probs;
            if k < order {
                t.backoff[k - 1] = bos;
            }
            paths = next_paths;
            ranges = next_ranges;
        }
        Ok(())
    }
}

impl Structure for Trie {
    type Node = Range;

    fn unigram(&self, d: &[u8], w: u32) -> (f32, f32, Range, bool) {
        let (p, b, r) = self.unigram_record(d, w);
        // No children: no longer n-gram ends in this word ("independent left").
        (p, b, r, r.begin == r.end)
    }

    fn middle(&self, d: &[u8], k: usize, word: u32, node: &mut Range) -> Option<(f32, f32, bool)> {
        let p = &self.layout.middle[k - 2];
        let i = self.find(d, p, *node, word)?;
        let (prob, bo) = self.middle_values(d, k, i);
        *node = self.children(d, p, i);
        Some((prob, bo, node.begin == node.end))
    }

    fn longest(&self, d: &[u8], word: u32, node: Range) -> Option<f32> {
        let i = self.find(d, &self.layout.longest, node, word)?;
        Some(self.longest_value(d, i))
    }
}
