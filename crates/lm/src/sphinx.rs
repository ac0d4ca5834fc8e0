//! CMU Sphinx binary trie models (`.lm.bin`, magic "Trie Language Model"), as pocketsphinx
//! writes them and the SpeechRecognition wheel ships one, read into [`Tables`]. Layout:
//! `docs/lm-format.md` ("CMU Sphinx import"). Written here because no Rust crate reads it.
//!
//! The file is a suffix trie: unigrams (f32 in log base 1.0001, with a `next` index), then for
//! each order a bit-packed level whose records hold the *preceding* word, 16-bit indexes into
//! per-order value tables, and (below the top order) the start of their children. The n-gram of
//! a record is its own word followed by the words on its path to the root.
//!
//! Tolerated defects of real files: a header count larger than the records written (the real
//! number of each level is the sentinel `next` of the level below — pocketsphinx's writer
//! over-counts placeholder bigrams), and child lists with out-of-order or repeated words (the
//! same writer bug attaches some trigrams to the wrong parent); of repeated n-grams the first
//! met is kept, as a trie walk meets it.

use std::path::Path;

use crate::arpa::{Tables, sort_records};
use crate::{Error, Result};

/// The first bytes of a CMU Sphinx trie model.
pub const MAGIC: &[u8] = b"Trie Language Model";

/// Highest order pocketsphinx writes.
const MAX_SPHINX_ORDER: usize = 5;

/// Entries of each quantization table (16-bit indexes).
const BINS: usize = 65536;

/// log10 of the log base the values are stored in (1.0001, pocketsphinx's default; the file
/// does not record it).
const LOG10_BASE: f64 = 4.342_727_686_266_964e-5;

/// What reading found besides the model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// n-gram counts the header declares, per order.
    pub header_counts: Vec<usize>,
    /// Records actually present, per order (before dropping repeats).
    pub records: Vec<usize>,
    /// Repeated n-grams dropped (the first occurrence is kept).
    pub repeats_dropped: usize,
}

/// Whether `path` starts with the CMU Sphinx magic.
pub fn is_sphinx(path: &Path) -> bool {
    let mut magic = [0u8; 19];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && magic == MAGIC
}

/// Read a CMU Sphinx model file.
pub fn read_file(path: &Path) -> Result<(Tables, Report)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read(&bytes)
}

fn corrupt(detail: impl Into<String>) -> Error {
    Error::Binary { detail: format!("CMU Sphinx model: {}", detail.into()) }
}

/// Bits needed to hold `x` itself (0 for 0), as pocketsphinx sizes its fields.
fn required_bits(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// A little-endian reader over the file with bounds checks.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let Some(end) = end else {
            return Err(corrupt(format!(
                "{what} runs past the end of the file ({} bytes; truncated, or written on a big-endian machine?)",
                self.b.len()
            )));
        };
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
}

fn f32_le(s: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]])
}

/// One bit-packed level.
struct Level<'a> {
    bytes: &'a [u8],
    word_bits: u32,
    /// 0 for the top order (no back-off, no children).
    next_bits: u32,
    total_bits: u64,
}

impl Level<'_> {
    /// `len` ≤ 25 bits at bit offset `bit`, least significant bit first.
    fn bits(&self, bit: u64, len: u32) -> u32 {
        let byte = (bit >> 3) as usize;
        let Some(s) = self.bytes.get(byte..byte + 4) else { return 0 };
        let v = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        (v >> (bit & 7)) & ((1u32 << len) - 1)
    }
    fn word(&self, i: usize) -> u32 {
        self.bits(i as u64 * self.total_bits, self.word_bits)
    }
    /// (back-off index, probability index) of a middle record; (0, probability) at the top.
    fn quant(&self, i: usize) -> (u32, u32) {
        let at = i as u64 * self.total_bits + u64::from(self.word_bits);
        if self.next_bits == 0 {
            (0, self.bits(at, 16))
        } else {
            (self.bits(at, 16), self.bits(at + 16, 16))
        }
    }
    fn next(&self, i: usize) -> u32 {
        self.bits(i as u64 * self.total_bits + u64::from(self.word_bits) + 32, self.next_bits)
    }
}

/// Read a CMU Sphinx model from its bytes.
pub fn read(b: &[u8]) -> Result<(Tables, Report)> {
    let mut c = Cursor { b, at: 0 };
    if c.take(MAGIC.len(), "magic")? != MAGIC {
        return Err(corrupt("not a CMU Sphinx trie model (no \"Trie Language Model\" magic)"));
    }
    let order = usize::from(c.take(1, "order")?[0]);
    if order == 0 || order > MAX_SPHINX_ORDER {
        return Err(corrupt(format!("order {order}: pocketsphinx writes 1 to 5")));
    }
    let mut counts = Vec::with_capacity(order);
    for k in 1..=order {
        counts.push(c.u32(&format!("{k}-gram count"))? as usize);
    }
    let n1 = counts[0];
    if n1 == 0 {
        return Err(corrupt("no unigrams"));
    }
    let word_bits = required_bits(n1 as u64);
    if word_bits > 25 {
        return Err(corrupt(format!("{n1} words: more than pocketsphinx's 25-bit word ids")));
    }
    // Value tables: for each middle order a probability and a back-off table, then the top
    // order's probabilities. The 4 bytes before them once named the quantizer; always 16-bit.
    let tables = if order > 1 {
        c.take(4, "quantization field")?;
        c.take((2 * (order - 2) + 1) * BINS * 4, "quantization tables")?
    } else {
        &[][..]
    };
    let table = |k: usize, backoff: bool, i: u32| -> f32 {
        // k: order 2..=N; middle orders have (prob, back-off) pairs.
        let t = if k < order { 2 * (k - 2) + usize::from(backoff) } else { 2 * (order - 2) };
        f32_le(tables, t * BINS + i as usize)
    };
    let uni = c.take((n1 + 1) * 12, "unigrams")?;
    let uni_next = |w: usize| {
        u32::from_le_bytes([uni[12 * w + 8], uni[12 * w + 9], uni[12 * w + 10], uni[12 * w + 11]])
    };
    let mut levels = Vec::with_capacity(order.saturating_sub(1));
    for k in 2..=order {
        let next_bits = if k < order { required_bits(counts[k] as u64) } else { 0 };
        if next_bits > 25 {
            return Err(corrupt(format!(
                "{} {}-grams: more than 25-bit indexes",
                counts[k],
                k + 1
            )));
        }
        let quant_bits = if k < order { 32 } else { 16 };
        let total_bits = u64::from(word_bits + quant_bits + next_bits);
        let size = ((counts[k - 1] as u64 + 1) * total_bits).div_ceil(8) + 8;
        let size = usize::try_from(size).map_err(|_| corrupt("level size overflow"))?;
        let bytes = c.take(size, &format!("{k}-gram level"))?;
        levels.push(Level { bytes, word_bits, next_bits, total_bits });
    }
    let string_bytes = c.u32("word strings length")? as usize;
    let strings = c.take(string_bytes, "word strings")?;
    if c.at != b.len() {
        return Err(corrupt(format!("{} bytes after the word strings", b.len() - c.at)));
    }
    let raw_words: Vec<&[u8]> = strings.split(|&x| x == 0).take(n1).collect();
    if raw_words.len() != n1 || strings.last() != Some(&0) {
        return Err(corrupt(format!("{} word strings, the header says {n1}", raw_words.len())));
    }

    // Real record counts and child ranges, checked before anything is indexed by them: each
    // level's ranges start at 0, never go backwards and end at its sentinel.
    if order > 1 && uni_next(0) != 0 {
        return Err(corrupt("the first unigram's children do not start at 0"));
    }
    let mut records = vec![n1];
    let mut prev_next = 0u32;
    for w in 0..=n1 {
        let nx = uni_next(w);
        if nx < prev_next {
            return Err(corrupt(format!("unigram {w}: child index goes backwards")));
        }
        prev_next = nx;
    }
    for (li, level) in levels.iter().enumerate() {
        let k = li + 2;
        let real =
            if li == 0 { uni_next(n1) } else { levels[li - 1].next(records[k - 2]) } as usize;
        if real > counts[k - 1] {
            return Err(corrupt(format!(
                "{real} {k}-grams linked, the header has room for {}",
                counts[k - 1]
            )));
        }
        records.push(real);
        if level.next_bits > 0 {
            if level.next(0) != 0 {
                return Err(corrupt(format!("the first {k}-gram's children do not start at 0")));
            }
            let mut prev = 0;
            for i in 0..=real {
                let nx = level.next(i);
                if nx < prev || nx as usize > counts[k] {
                    return Err(corrupt(format!("{k}-gram {i}: bad child index {nx}")));
                }
                prev = nx;
            }
        }
    }

    // Words: UTF-8, or Latin-1 byte for byte (as the ARPA reader), then sorted for Tables.
    let words: Vec<String> = raw_words
        .iter()
        .map(|w| match std::str::from_utf8(w) {
            Ok(s) => s.to_owned(),
            Err(_) => w.iter().map(|&x| char::from(x)).collect(),
        })
        .collect();
    let mut perm: Vec<u32> = (0..n1 as u32).collect();
    perm.sort_by(|&a, &b| words[a as usize].cmp(&words[b as usize]));
    let mut remap = vec![0u32; n1];
    for (new, &old) in perm.iter().enumerate() {
        remap[old as usize] = new as u32;
    }
    if perm.windows(2).any(|p| words[p[0] as usize] == words[p[1] as usize]) {
        return Err(corrupt("a word appears twice in the vocabulary"));
    }
    let log10 = |v: f32| (f64::from(v) * LOG10_BASE) as f32;
    let mut t = Tables {
        vocab: perm.iter().map(|&o| words[o as usize].clone()).collect(),
        ids: vec![Vec::new(); order],
        prob: vec![Vec::new(); order],
        backoff: vec![Vec::new(); order - 1],
    };
    t.prob[0] = perm.iter().map(|&o| log10(f32_le(uni, 3 * o as usize))).collect();
    if order > 1 {
        t.backoff[0] = perm.iter().map(|&o| log10(f32_le(uni, 3 * o as usize + 1))).collect();
    }

    // Walk the levels: a record's n-gram is its word, then its parent's n-gram.
    let mut report =
        Report { header_counts: counts.clone(), records: records.clone(), repeats_dropped: 0 };
    let mut parent_grams: Vec<u32> = (0..n1 as u32).collect(); // order-1 "n-grams" = ids
    for (li, level) in levels.iter().enumerate() {
        let k = li + 2;
        let real = records[k - 1];
        let mut grams = vec![0u32; real * k];
        let mut prob = Vec::with_capacity(real);
        let mut bo = Vec::with_capacity(if k < order { real } else { 0 });
        let parents = if li == 0 { n1 } else { records[k - 2] };
        let child_range = |p: usize| -> (usize, usize) {
            if li == 0 {
                (uni_next(p) as usize, uni_next(p + 1) as usize)
            } else {
                let above = &levels[li - 1];
                (above.next(p) as usize, above.next(p + 1) as usize)
            }
        };
        for p in 0..parents {
            let (lo, hi) = child_range(p);
            for i in lo..hi.min(real) {
                let w = level.word(i);
                if w as usize >= n1 {
                    return Err(corrupt(format!(
                        "{k}-gram {i}: word id {w} outside the vocabulary"
                    )));
                }
                grams[i * k] = w;
                grams[i * k + 1..i * k + k]
                    .copy_from_slice(&parent_grams[p * (k - 1)..p * (k - 1) + k - 1]);
            }
        }
        for i in 0..real {
            let (b, p) = level.quant(i);
            prob.push(log10(table(k, false, p)));
            if k < order {
                bo.push(log10(table(k, true, b)));
            }
        }
        // Tables: remapped ids, sorted; of repeated n-grams keep the first.
        let mut ids: Vec<u32> = grams.iter().map(|&w| remap[w as usize]).collect();
        let mut first: Vec<u32> = (0..real as u32).collect();
        first.sort_by(|&a, &b| {
            let (a, b) = (a as usize, b as usize);
            ids[a * k..a * k + k].cmp(&ids[b * k..b * k + k]).then(a.cmp(&b))
        });
        first.dedup_by(|b, a| {
            let (a, b) = (*a as usize, *b as usize);
            ids[a * k..a * k + k] == ids[b * k..b * k + k]
        });
        report.repeats_dropped += real - first.len();
        let mut kept_ids = Vec::with_capacity(first.len() * k);
        for &i in &first {
            let i = i as usize;
            kept_ids.extend_from_slice(&ids[i * k..i * k + k]);
        }
        let mut kept_prob: Vec<f32> = first.iter().map(|&i| prob[i as usize]).collect();
        let mut kept_bo: Vec<f32> =
            if k < order { first.iter().map(|&i| bo[i as usize]).collect() } else { Vec::new() };
        sort_records(
            k,
            &mut kept_ids,
            &mut kept_prob,
            if k < order { Some(&mut kept_bo) } else { None },
        );
        ids = kept_ids;
        t.ids[k - 1] = ids;
        t.prob[k - 1] = kept_prob;
        if k < order {
            t.backoff[k - 1] = kept_bo;
        }
        parent_grams = grams;
    }
    Ok((t, report))
}
