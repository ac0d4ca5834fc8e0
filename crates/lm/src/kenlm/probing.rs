//! Lookups in the hash-table type (`build_binary probing`, KenLM `lm/search_hashed.cc`,
//! `util/probing_hash_table.hh`, `lm/vocab.cc` `ProbingVocabulary`): a vocabulary table from
//! word hash to id, an array of unigrams, and one linear-probing table per higher order keyed
//! by a hash of the n-gram's ids (most recent word first). Reading only: the tables' contents
//! depend on the order of the ARPA file's lines, which [`crate::arpa::Tables`] does not keep,
//! so a byte-exact writer would need the ARPA text itself. Probes stop after one lap of a
//! table, so a damaged file cannot hang a query.

use super::bits::{SIGN_BIT, f32_at, u32_at, u64_at};
use super::{Structure, bad, truncated};
use crate::Result;

/// Bytes of a vocabulary entry (`ProbingVocabularyEntry`, packed: hash, id).
const VOCAB_ENTRY: usize = 12;
/// Bytes of a middle entry (key, probability, back-off).
const MIDDLE_ENTRY: usize = 16;
/// Bytes of a longest-order entry (`ProbEntry`, packed: key, probability).
const LONGEST_ENTRY: usize = 12;
/// Unigram record: probability, back-off.
const UNIGRAM_ENTRY: usize = 8;

/// One hash table: file offset and bucket count.
#[derive(Debug, Clone, Copy, Default)]
struct Table {
    at: usize,
    buckets: usize,
}

/// `ProbingHashTable::Size`: the larger of `entries + 1` and `multiplier × entries` (in `f32`,
/// truncated) buckets.
fn buckets(entries: u64, multiplier: f32) -> Option<usize> {
    let scaled = (multiplier * entries as f32) as u64;
    usize::try_from(entries.checked_add(1)?.max(scaled)).ok()
}

/// The n-gram key of `current` extended by `next` (`detail::CombineWordHash`).
fn combine(current: u64, next: u32) -> u64 {
    current.wrapping_mul(8_978_948_897_894_561_157)
        ^ (u64::from(next) + 1).wrapping_mul(17_894_857_484_156_487_943)
}

/// A probing binary's structures.
#[derive(Debug, Clone)]
pub(crate) struct Probing {
    vocab: Table,
    bound: u32,
    unigram: usize,
    /// Middle orders 2..order-1, then the longest.
    tables: Vec<Table>,
    pub end: usize,
}

impl Probing {
    pub(crate) fn open(
        b: &[u8],
        header: usize,
        counts: &[u64],
        multiplier: f32,
    ) -> Result<Probing> {
        // KenLM refuses multipliers below 1 (and NaN fails the same test here).
        if multiplier.is_nan() || multiplier < 1.0 {
            return Err(bad(format!("probing multiplier {multiplier}, below 1")));
        }
        let too_big = || bad("n-gram counts too large for this machine's address space");
        let order = counts.len();
        let n = usize::try_from(counts[0]).map_err(|_| too_big())?;
        let sized = |entries: u64, size: usize| -> Result<(usize, usize)> {
            let b = buckets(entries, multiplier).ok_or_else(too_big)?;
            Ok((b, b.checked_mul(size).ok_or_else(too_big)?))
        };
        // The vocabulary: an 8-byte header (version, bound), then its table.
        let (vocab_buckets, vocab_bytes) = sized(counts[0], VOCAB_ENTRY)?;
        let vocab = Table { at: header + 8, buckets: vocab_buckets };
        let mut at = vocab.at.checked_add(vocab_bytes).ok_or_else(too_big)?;
        let unigram = at;
        // One more record than unigrams: room for a <unk> the ARPA lacked.
        let uni_bytes = n.checked_add(1).and_then(|x| x.checked_mul(UNIGRAM_ENTRY));
        at = at.checked_add(uni_bytes.ok_or_else(too_big)?).ok_or_else(too_big)?;
        let mut tables = Vec::with_capacity(order - 1);
        for k in 2..=order {
            let size = if k == order { LONGEST_ENTRY } else { MIDDLE_ENTRY };
            let (buckets, bytes) = sized(counts[k - 1], size)?;
            tables.push(Table { at, buckets });
            at = at.checked_add(bytes).ok_or_else(too_big)?;
        }
        let end = at;
        if b.len() < end {
            return Err(truncated("the hash tables", end, b.len()));
        }
        let version = u32_at(b, header);
        if version != 0 {
            return Err(bad(format!("probing vocabulary version {version}; this reader reads 0")));
        }
        let bound = u32_at(b, header + 4);
        if bound == 0 || u64::from(bound) > counts[0] + 1 {
            return Err(bad(format!("{bound} vocabulary words for {} unigrams", counts[0])));
        }
        Ok(Probing { vocab, bound, unigram, tables, end })
    }

    pub(crate) fn vocab_size(&self) -> usize {
        self.bound as usize
    }

    /// The entry of `key` in table `t` whose entries are `size` bytes, by linear probing from
    /// `key % buckets` until the key or an empty slot (key 0).
    fn find(d: &[u8], t: Table, size: usize, key: u64) -> Option<usize> {
        if t.buckets == 0 {
            return None;
        }
        let mut i = (key % t.buckets as u64) as usize;
        for _ in 0..t.buckets {
            let at = t.at + size * i;
            match u64_at(d, at) {
                k if k == key => return Some(at),
                0 => return None,
                _ => i = if i + 1 == t.buckets { 0 } else { i + 1 },
            }
        }
        None
    }

    pub(crate) fn index(&self, d: &[u8], hash: u64) -> u32 {
        Self::find(d, self.vocab, VOCAB_ENTRY, hash).map_or(0, |at| u32_at(d, at + 8))
    }
}

/// Probabilities carry a flag in their sign bit: set when no longer n-gram ends in this one
/// (KenLM's `IndependentLeft`); the probability itself is always negative.
fn split_sign(raw: f32) -> (f32, bool) {
    (f32::from_bits(raw.to_bits() | SIGN_BIT), raw.to_bits() & SIGN_BIT != 0)
}

impl Structure for Probing {
    type Node = u64;

    fn unigram(&self, d: &[u8], w: u32) -> (f32, f32, u64, bool) {
        let at = self.unigram + UNIGRAM_ENTRY * w as usize;
        let (prob, independent) = split_sign(f32_at(d, at));
        (prob, f32_at(d, at + 4), u64::from(w), independent)
    }

    fn middle(&self, d: &[u8], k: usize, word: u32, node: &mut u64) -> Option<(f32, f32, bool)> {
        *node = combine(*node, word);
        let at = Self::find(d, self.tables[k - 2], MIDDLE_ENTRY, *node)?;
        let (prob, independent) = split_sign(f32_at(d, at + 8));
        Some((prob, f32_at(d, at + 12), independent))
    }

    fn longest(&self, d: &[u8], word: u32, node: u64) -> Option<f32> {
        let t = *self.tables.last()?;
        let at = Self::find(d, t, LONGEST_ENTRY, combine(node, word))?;
        Some(f32_at(d, at + 8))
    }
}
