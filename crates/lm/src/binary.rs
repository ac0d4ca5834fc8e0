//! The binary format (documented in `docs/lm-format.md`): a 512-byte little-endian header, then
//! 8-byte-aligned sections — sorted vocabulary strings and their offsets, and per order the
//! records' word ids (sorted tuples), probabilities and back-offs, as `f32` or as 8-bit codes
//! into 256-entry codebooks. Loading maps the file and checks the header and section bounds:
//! O(1), nothing is parsed or copied; pages are read when queries touch them.
//!
//! Written by hand: no crate offers a memory-mappable n-gram format (KenLM's is C++ and tied to
//! its query code).

use crate::arpa::Tables;
use crate::{Error, MAX_ORDER, Result};

pub(crate) const MAGIC: &[u8; 8] = b"HARKENLM";
pub(crate) const VERSION: u32 = 1;
pub(crate) const HEADER: usize = 1024;
const OFF_COUNTS: usize = 24;
const OFF_VOCAB: usize = 88;
const OFF_ORDERS: usize = 112;
const OFF_CHECKSUM: usize = 432;
const OFF_FIRST: usize = 440;
const OFF_HASH: usize = 504;
/// Per order ≥ 2: offset of its n-gram hash index (0: none), then at +64 its slot count.
const OFF_NGRAM_HASH: usize = 520;

/// Where an order's arrays live.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OrderLayout {
    pub ids: usize,
    pub prob: usize,
    pub bo: usize,
    pub prob_cb: usize,
    pub bo_cb: usize,
}

/// The parsed header.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub order: usize,
    pub quantized: bool,
    pub vocab: usize,
    pub counts: [usize; MAX_ORDER],
    pub strings: (usize, usize),
    pub index: usize,
    pub orders: [OrderLayout; MAX_ORDER],
    pub checksum: u64,
    /// Per order ≥ 2: offset of `u32[V+1]`, the first record of each first word.
    pub first: [usize; MAX_ORDER],
    /// Vocabulary hash table: offset and slot count (a power of two).
    pub hash: (usize, usize),
    /// Per order ≥ 2, when written: n-gram hash index offset and slot count.
    pub ngram_hash: [Option<(usize, usize)>; MAX_ORDER],
}

/// Hash of an id tuple for the n-gram index (multiply–xorshift per word).
#[inline]
pub(crate) fn hash_ids(ids: &[u32]) -> u64 {
    let mut h: u64 = 0x243f_6a88_85a3_08d3;
    for &w in ids {
        h = (h ^ u64::from(w)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
    }
    h
}

/// A hash mapped onto `0..slots` (multiply-shift: any slot count, no modulo).
#[inline]
pub(crate) fn slot_of(h: u64, slots: usize) -> usize {
    ((u128::from(h) * slots as u128) >> 64) as usize
}

/// Slots of an order's n-gram index: twice its records (load 0.5 keeps the probes of a miss,
/// the common case when backing off, to about two).
pub(crate) fn ngram_slots(count: usize) -> usize {
    2 * count + 1
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

pub(crate) fn f32_at(b: &[u8], off: usize) -> f32 {
    f32::from_bits(u32_at(b, off))
}

/// FNV-1a, 64 bit: cheap, dependency-free integrity check of the body.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn corrupt(detail: impl Into<String>) -> Error {
    Error::Binary { detail: detail.into() }
}

impl Header {
    /// Parse and bounds-check the header of a file of `b.len()` bytes.
    pub(crate) fn parse(b: &[u8]) -> Result<Self> {
        if b.len() < HEADER || &b[..8] != MAGIC {
            return Err(corrupt("not a Harken LM binary (bad magic)"));
        }
        let version = u32_at(b, 8);
        if version != VERSION {
            return Err(corrupt(format!("format version {version}; this build reads {VERSION}")));
        }
        let order = u32_at(b, 12) as usize;
        let quant = u32_at(b, 16);
        let vocab = u32_at(b, 20) as usize;
        if order == 0 || order > MAX_ORDER || !(quant == 0 || quant == 8) || vocab == 0 {
            return Err(corrupt(format!(
                "bad header: order {order}, quantization {quant}, vocab {vocab}"
            )));
        }
        let mut counts = [0usize; MAX_ORDER];
        for (k, c) in counts.iter_mut().enumerate() {
            *c = usize::try_from(u64_at(b, OFF_COUNTS + 8 * k))
                .map_err(|_| corrupt("count too large"))?;
        }
        if counts[0] != vocab {
            return Err(corrupt("unigram count differs from the vocabulary size"));
        }
        let rd =
            |off: usize| usize::try_from(u64_at(b, off)).map_err(|_| corrupt("offset too large"));
        let strings = (rd(OFF_VOCAB)?, rd(OFF_VOCAB + 8)?);
        let index = rd(OFF_VOCAB + 16)?;
        let mut orders = [OrderLayout::default(); MAX_ORDER];
        for (k, o) in orders.iter_mut().enumerate().take(order) {
            let base = OFF_ORDERS + 40 * k;
            *o = OrderLayout {
                ids: rd(base)?,
                prob: rd(base + 8)?,
                bo: rd(base + 16)?,
                prob_cb: rd(base + 24)?,
                bo_cb: rd(base + 32)?,
            };
        }
        let mut first = [0usize; MAX_ORDER];
        for (k, f) in first.iter_mut().enumerate().take(order).skip(1) {
            *f = rd(OFF_FIRST + 8 * k)?;
        }
        let hash = (rd(OFF_HASH)?, rd(OFF_HASH + 8)?);
        if !hash.1.is_power_of_two() || hash.1 < vocab {
            return Err(corrupt("bad vocabulary hash table size"));
        }
        let mut ngram_hash = [None; MAX_ORDER];
        for k in 2..=order {
            let (off, slots) =
                (rd(OFF_NGRAM_HASH + 8 * (k - 1))?, rd(OFF_NGRAM_HASH + 64 + 8 * (k - 1))?);
            if off != 0 {
                // At least one empty slot, so every probe sequence ends.
                if slots <= counts[k - 1] {
                    return Err(corrupt(format!(
                        "{k}-gram hash index has {slots} slots for {} records",
                        counts[k - 1]
                    )));
                }
                ngram_hash[k - 1] = Some((off, slots));
            }
        }
        let h = Header {
            order,
            quantized: quant == 8,
            vocab,
            counts,
            strings,
            index,
            orders,
            checksum: u64_at(b, OFF_CHECKSUM),
            first,
            hash,
            ngram_hash,
        };
        h.check_bounds(b.len())?;
        Ok(h)
    }

    fn check_bounds(&self, len: usize) -> Result<()> {
        let fits = |off: usize, n: usize, what: &str| -> Result<()> {
            match off.checked_add(n) {
                Some(end) if off >= HEADER && end <= len => Ok(()),
                _ => Err(corrupt(format!("{what} runs past the end of the file (truncated?)"))),
            }
        };
        fits(self.strings.0, self.strings.1, "vocabulary strings")?;
        let vocab_bytes = self
            .vocab
            .checked_add(1)
            .and_then(|v| v.checked_mul(4))
            .ok_or_else(|| corrupt("vocabulary size overflow"))?;
        fits(self.index, vocab_bytes, "vocabulary index")?;
        fits(
            self.hash.0,
            self.hash.1.checked_mul(4).ok_or_else(|| corrupt("hash overflow"))?,
            "vocabulary hash",
        )?;
        for k in 1..=self.order {
            let o = self.orders[k - 1];
            let n = self.counts[k - 1];
            let q = self.quantized && k > 1;
            let vbytes =
                if q { n } else { n.checked_mul(4).ok_or_else(|| corrupt("count overflow"))? };
            if k > 1 {
                fits(
                    o.ids,
                    n.checked_mul(4 * k).ok_or_else(|| corrupt("count overflow"))?,
                    "n-gram ids",
                )?;
                if n > 0 {
                    fits(self.first[k - 1], vocab_bytes, "first-word index")?;
                }
            }
            fits(o.prob, vbytes, "probabilities")?;
            if k < self.order {
                fits(o.bo, vbytes, "back-offs")?;
            }
            if q {
                fits(o.prob_cb, 1024, "probability codebook")?;
                if k < self.order {
                    fits(o.bo_cb, 1024, "back-off codebook")?;
                }
            }
            if let Some((off, slots)) = self.ngram_hash[k - 1] {
                fits(
                    off,
                    slots.checked_mul(4).ok_or_else(|| corrupt("hash overflow"))?,
                    "n-gram hash index",
                )?;
            }
        }
        Ok(())
    }
}

/// Slots of the vocabulary hash table: a power of two at least 1.25 × the vocabulary (load
/// factor 0.4–0.8: short probes, a quarter of the bytes of a 2× table).
pub(crate) fn hash_slots(vocab: usize) -> usize {
    (vocab.max(1) + vocab / 4).next_power_of_two()
}

/// Equal-count binning (as KenLM's quantizer): sort, cut into 256 bins, centre = bin mean.
fn codebook(values: &[f32]) -> Vec<f32> {
    let mut v = values.to_vec();
    v.sort_by(f32::total_cmp);
    let mut cb = Vec::with_capacity(256);
    if v.is_empty() {
        return vec![0.0; 256];
    }
    for i in 0..256 {
        let lo = i * v.len() / 256;
        let hi = ((i + 1) * v.len() / 256).max(lo + 1).min(v.len());
        let lo = lo.min(v.len() - 1);
        let slice = &v[lo..hi];
        cb.push(slice.iter().map(|&x| f64::from(x)).sum::<f64>() as f32 / slice.len() as f32);
    }
    cb
}

fn encode(cb: &[f32], x: f32) -> u8 {
    // cb is sorted ascending; pick the nearest centre.
    let i = cb.partition_point(|&c| c < x);
    let best = if i == 0 {
        0
    } else if i >= cb.len() {
        cb.len() - 1
    } else if (x - cb[i - 1]).abs() <= (cb[i] - x).abs() {
        i - 1
    } else {
        i
    };
    best as u8
}

/// Serialise `t` into the binary format, with n-gram hash indexes when `hash_index`.
pub(crate) fn encode_tables(t: &Tables, quantize: bool, hash_index: bool) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    // Writing into memory cannot fail.
    let _ = write_tables(t, quantize, hash_index, &mut out);
    out.into_inner()
}

/// The body after the header, written as it is produced: its position (for the header's
/// offsets) and running checksum are kept, so a file never has to exist in memory whole.
struct Body<W: std::io::Write> {
    w: W,
    pos: usize,
    sum: u64,
}

impl<W: std::io::Write> Body<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        for &b in bytes {
            self.sum ^= u64::from(b);
            self.sum = self.sum.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.pos += bytes.len();
        self.w.write_all(bytes)
    }
    fn put_u32s(&mut self, values: impl IntoIterator<Item = u32>) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(1 << 16);
        for v in values {
            buf.extend_from_slice(&v.to_le_bytes());
            if buf.len() >= 1 << 16 {
                self.put(&buf)?;
                buf.clear();
            }
        }
        self.put(&buf)
    }
    fn pad8(&mut self) -> std::io::Result<()> {
        let n = (8 - self.pos % 8) % 8;
        self.put(&[0u8; 8][..n])
    }
}

/// Write `t` in the binary format to `w` (header last, by seeking back); returns the bytes
/// written. Memory beyond `t`: one order's codebook or hash index at a time.
pub(crate) fn write_tables<W: std::io::Write + std::io::Seek>(
    t: &Tables,
    quantize: bool,
    hash_index: bool,
    w: W,
) -> std::io::Result<u64> {
    let order = t.order();
    let mut head = vec![0u8; HEADER];
    head[..8].copy_from_slice(MAGIC);
    head[8..12].copy_from_slice(&VERSION.to_le_bytes());
    head[12..16].copy_from_slice(&(order as u32).to_le_bytes());
    head[16..20].copy_from_slice(&(if quantize { 8u32 } else { 0 }).to_le_bytes());
    head[20..24].copy_from_slice(&(t.vocab.len() as u32).to_le_bytes());
    let put64 = |head: &mut Vec<u8>, at: usize, v: usize| {
        head[at..at + 8].copy_from_slice(&(v as u64).to_le_bytes())
    };
    for k in 1..=order {
        put64(&mut head, OFF_COUNTS + 8 * (k - 1), t.count(k));
    }
    let mut w = w;
    w.write_all(&head)?;
    let mut out = Body { w, pos: HEADER, sum: 0xcbf2_9ce4_8422_2325 };
    // Vocabulary: concatenated strings, then vocab+1 offsets.
    let strings_off = out.pos;
    let mut offsets = Vec::with_capacity(t.vocab.len() + 1);
    let mut len = 0u32;
    for word in &t.vocab {
        offsets.push(len);
        out.put(word.as_bytes())?;
        len += word.len() as u32;
    }
    offsets.push(len);
    out.pad8()?;
    let index_off = out.pos;
    out.put_u32s(offsets)?;
    out.pad8()?;
    put64(&mut head, OFF_VOCAB, strings_off);
    put64(&mut head, OFF_VOCAB + 8, len as usize);
    put64(&mut head, OFF_VOCAB + 16, index_off);
    // Vocabulary hash: open addressing, linear probing, slot = id + 1 (0 = empty).
    let slots = hash_slots(t.vocab.len());
    let mut table = vec![0u32; slots];
    for (id, word) in t.vocab.iter().enumerate() {
        let mut i = (fnv1a(word.as_bytes()) as usize) & (slots - 1);
        while table[i] != 0 {
            i = (i + 1) & (slots - 1);
        }
        table[i] = id as u32 + 1;
    }
    put64(&mut head, OFF_HASH, out.pos);
    put64(&mut head, OFF_HASH + 8, slots);
    out.put_u32s(table)?;
    out.pad8()?;
    for k in 1..=order {
        let base = OFF_ORDERS + 40 * (k - 1);
        if k > 1 {
            put64(&mut head, base, out.pos);
            out.put_u32s(t.ids[k - 1].iter().copied())?;
            out.pad8()?;
            // First record of each first word (records are sorted, so a prefix scan); an empty
            // order has none.
            if t.count(k) > 0 {
                put64(&mut head, OFF_FIRST + 8 * (k - 1), out.pos);
                let ids = &t.ids[k - 1];
                let n = t.count(k);
                let mut r = 0usize;
                let firsts = (0..=t.vocab.len() as u32).map(|w| {
                    while r < n && ids[r * k] < w {
                        r += 1;
                    }
                    r as u32
                });
                out.put_u32s(firsts)?;
            }
            out.pad8()?;
        }
        let q = quantize && k > 1;
        let mut write_values = |out: &mut Body<W>, values: &[f32], slot: usize, cb_slot: usize| {
            if q {
                let cb = codebook(values);
                put64(&mut head, base + cb_slot, out.pos);
                out.put_u32s(cb.iter().map(|c| c.to_bits()))?;
                put64(&mut head, base + slot, out.pos);
                let codes: Vec<u8> = values.iter().map(|&x| encode(&cb, x)).collect();
                out.put(&codes)?;
            } else {
                put64(&mut head, base + slot, out.pos);
                out.put_u32s(values.iter().map(|x| x.to_bits()))?;
            }
            out.pad8()
        };
        write_values(&mut out, &t.prob[k - 1], 8, 24)?;
        if k < order {
            write_values(&mut out, &t.backoff[k - 1], 16, 32)?;
        }
        if hash_index && k > 1 && t.count(k) > 0 {
            // Open addressing, linear probing; slot = record index + 1 (0 = empty).
            let n = t.count(k);
            let slots = ngram_slots(n);
            let mut table = vec![0u32; slots];
            for r in 0..n {
                let mut i = slot_of(hash_ids(&t.ids[k - 1][r * k..r * k + k]), slots);
                while table[i] != 0 {
                    i = if i + 1 == slots { 0 } else { i + 1 };
                }
                table[i] = r as u32 + 1;
            }
            put64(&mut head, OFF_NGRAM_HASH + 8 * (k - 1), out.pos);
            put64(&mut head, OFF_NGRAM_HASH + 64 + 8 * (k - 1), slots);
            out.put_u32s(table)?;
            out.pad8()?;
        }
    }
    head[OFF_CHECKSUM..OFF_CHECKSUM + 8].copy_from_slice(&out.sum.to_le_bytes());
    let total = out.pos as u64;
    let mut w = out.w;
    w.seek(std::io::SeekFrom::Start(0))?;
    w.write_all(&head)?;
    w.seek(std::io::SeekFrom::Start(total))?;
    w.flush()?;
    Ok(total)
}
