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
    // Writing into memory cannot fail, and the tables are consistent by construction.
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

/// Write `t` in the binary format to `w`; returns the bytes written.
pub(crate) fn write_tables<W: std::io::Write + std::io::Seek>(
    t: &Tables,
    quantize: bool,
    hash_index: bool,
    w: W,
) -> Result<u64> {
    crate::sink::feed(t, &mut BinarySink::new(w, quantize, hash_index)?)
}

fn io(e: std::io::Error) -> Error {
    Error::Io { path: "(output)".into(), source: e }
}

/// Writes the binary format as records arrive (header last, by seeking back). Memory beyond
/// the vocabulary: the values of the order being written (4–8 bytes per record) and its hash
/// index; ids go straight out.
pub struct BinarySink<W: std::io::Write + std::io::Seek> {
    out: Body<W>,
    head: Vec<u8>,
    quantize: bool,
    hash_index: bool,
    counts: Vec<usize>,
    vocab: usize,
    /// Order whose records are arriving (1 after `begin`).
    current: usize,
    /// Of the current order: records per first word, values, hash slots, records so far.
    per_first: Vec<u32>,
    probs: Vec<f32>,
    backoffs: Vec<f32>,
    slots: Vec<u32>,
    seen: usize,
}

impl<W: std::io::Write + std::io::Seek> BinarySink<W> {
    /// A sink writing to `w` (8-bit values for orders ≥ 2 when `quantize`, n-gram hash
    /// indexes when `hash_index`).
    pub fn new(mut w: W, quantize: bool, hash_index: bool) -> Result<Self> {
        w.write_all(&[0u8; HEADER]).map_err(io)?;
        Ok(BinarySink {
            out: Body { w, pos: HEADER, sum: 0xcbf2_9ce4_8422_2325 },
            head: vec![0u8; HEADER],
            quantize,
            hash_index,
            counts: Vec::new(),
            vocab: 0,
            current: 0,
            per_first: Vec::new(),
            probs: Vec::new(),
            backoffs: Vec::new(),
            slots: Vec::new(),
            seen: 0,
        })
    }

    fn put64(&mut self, at: usize, v: usize) {
        self.head[at..at + 8].copy_from_slice(&(v as u64).to_le_bytes());
    }

    /// Values of order `k` (probabilities or back-offs), f32 or codebook + codes.
    fn values(&mut self, k: usize, values: &[f32], slot: usize, cb_slot: usize) -> Result<()> {
        let base = OFF_ORDERS + 40 * (k - 1);
        if self.quantize && k > 1 {
            let cb = codebook(values);
            self.put64(base + cb_slot, self.out.pos);
            self.out.put_u32s(cb.iter().map(|c| c.to_bits())).map_err(io)?;
            self.put64(base + slot, self.out.pos);
            let codes: Vec<u8> = values.iter().map(|&x| encode(&cb, x)).collect();
            self.out.put(&codes).map_err(io)?;
        } else {
            self.put64(base + slot, self.out.pos);
            self.out.put_u32s(values.iter().map(|x| x.to_bits())).map_err(io)?;
        }
        self.out.pad8().map_err(io)
    }

    /// Start order `k` ≥ 2: its ids come next.
    fn open(&mut self, k: usize) -> Result<()> {
        self.current = k;
        self.put64(OFF_ORDERS + 40 * (k - 1), self.out.pos);
        let n = self.counts[k - 1];
        self.per_first = vec![0; self.vocab + 1];
        self.probs = Vec::with_capacity(n);
        self.backoffs = Vec::with_capacity(if k < self.counts.len() { n } else { 0 });
        self.slots = if self.hash_index && n > 0 { vec![0; ngram_slots(n)] } else { Vec::new() };
        self.seen = 0;
        Ok(())
    }

    /// End the current order ≥ 2: first-word index, values, hash index.
    fn close(&mut self) -> Result<()> {
        let k = self.current;
        if self.seen != self.counts[k - 1] {
            return Err(Error::Binary {
                detail: format!(
                    "{} {k}-grams written, {} announced",
                    self.seen,
                    self.counts[k - 1]
                ),
            });
        }
        self.out.pad8().map_err(io)?;
        if self.seen > 0 {
            self.put64(OFF_FIRST + 8 * (k - 1), self.out.pos);
            let mut acc = 0u32;
            let firsts: Vec<u32> = self
                .per_first
                .iter()
                .map(|&c| {
                    let at = acc;
                    acc += c;
                    at
                })
                .collect();
            self.out.put_u32s(firsts).map_err(io)?;
        }
        self.out.pad8().map_err(io)?;
        let probs = std::mem::take(&mut self.probs);
        self.values(k, &probs, 8, 24)?;
        if k < self.counts.len() {
            let bos = std::mem::take(&mut self.backoffs);
            self.values(k, &bos, 16, 32)?;
        }
        if !self.slots.is_empty() {
            let slots = std::mem::take(&mut self.slots);
            self.put64(OFF_NGRAM_HASH + 8 * (k - 1), self.out.pos);
            self.put64(OFF_NGRAM_HASH + 64 + 8 * (k - 1), slots.len());
            self.out.put_u32s(slots).map_err(io)?;
            self.out.pad8().map_err(io)?;
        }
        Ok(())
    }
}

impl<W: std::io::Write + std::io::Seek> crate::sink::Sink for BinarySink<W> {
    fn begin(
        &mut self,
        vocab: &[String],
        counts: &[usize],
        uni_prob: &[f32],
        uni_backoff: Option<&[f32]>,
    ) -> Result<()> {
        let order = counts.len();
        self.counts = counts.to_vec();
        self.vocab = vocab.len();
        self.head[..8].copy_from_slice(MAGIC);
        self.head[8..12].copy_from_slice(&VERSION.to_le_bytes());
        self.head[12..16].copy_from_slice(&(order as u32).to_le_bytes());
        self.head[16..20].copy_from_slice(&(if self.quantize { 8u32 } else { 0 }).to_le_bytes());
        self.head[20..24].copy_from_slice(&(vocab.len() as u32).to_le_bytes());
        for (k, &n) in counts.iter().enumerate() {
            self.put64(OFF_COUNTS + 8 * k, n);
        }
        // Vocabulary: concatenated strings, then vocab+1 offsets.
        let strings_off = self.out.pos;
        let mut offsets = Vec::with_capacity(vocab.len() + 1);
        let mut len = 0u32;
        for word in vocab {
            offsets.push(len);
            self.out.put(word.as_bytes()).map_err(io)?;
            len += word.len() as u32;
        }
        offsets.push(len);
        self.out.pad8().map_err(io)?;
        let index_off = self.out.pos;
        self.out.put_u32s(offsets).map_err(io)?;
        self.out.pad8().map_err(io)?;
        self.put64(OFF_VOCAB, strings_off);
        self.put64(OFF_VOCAB + 8, len as usize);
        self.put64(OFF_VOCAB + 16, index_off);
        // Vocabulary hash: open addressing, linear probing, slot = id + 1 (0 = empty).
        let slots = hash_slots(vocab.len());
        let mut table = vec![0u32; slots];
        for (id, word) in vocab.iter().enumerate() {
            let mut i = (fnv1a(word.as_bytes()) as usize) & (slots - 1);
            while table[i] != 0 {
                i = (i + 1) & (slots - 1);
            }
            table[i] = id as u32 + 1;
        }
        self.put64(OFF_HASH, self.out.pos);
        self.put64(OFF_HASH + 8, slots);
        self.out.put_u32s(table).map_err(io)?;
        self.out.pad8().map_err(io)?;
        self.values(1, uni_prob, 8, 24)?;
        if let (true, Some(bo)) = (order > 1, uni_backoff) {
            self.values(1, bo, 16, 32)?;
        }
        self.current = 1;
        Ok(())
    }

    fn record(&mut self, ids: &[u32], prob: f32, backoff: Option<f32>) -> Result<()> {
        let k = ids.len();
        while self.current < k {
            if self.current > 1 {
                self.close()?;
            }
            self.open(self.current + 1)?;
        }
        if k != self.current || self.seen >= self.counts[k - 1] {
            return Err(Error::Binary {
                detail: format!("{k}-gram out of order or beyond the count"),
            });
        }
        let first = ids[0] as usize;
        if first >= self.vocab {
            return Err(Error::Binary {
                detail: format!("word id {first} outside the vocabulary"),
            });
        }
        self.per_first[first] += 1;
        let mut bytes = [0u8; 4 * MAX_ORDER];
        for (chunk, id) in bytes.chunks_exact_mut(4).zip(ids) {
            chunk.copy_from_slice(&id.to_le_bytes());
        }
        self.out.put(&bytes[..4 * k]).map_err(io)?;
        self.probs.push(prob);
        if let Some(b) = backoff {
            self.backoffs.push(b);
        }
        if !self.slots.is_empty() {
            let n = self.slots.len();
            let mut i = slot_of(hash_ids(ids), n);
            while self.slots[i] != 0 {
                i = if i + 1 == n { 0 } else { i + 1 };
            }
            self.slots[i] = self.seen as u32 + 1;
        }
        self.seen += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<u64> {
        let order = self.counts.len();
        while self.current < order {
            if self.current > 1 {
                self.close()?;
            }
            self.open(self.current + 1)?;
        }
        if self.current > 1 {
            self.close()?;
        }
        let sum = self.out.sum;
        self.head[OFF_CHECKSUM..OFF_CHECKSUM + 8].copy_from_slice(&sum.to_le_bytes());
        let total = self.out.pos as u64;
        let w = &mut self.out.w;
        w.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
        w.write_all(&self.head).map_err(io)?;
        w.seek(std::io::SeekFrom::Start(total)).map_err(io)?;
        w.flush().map_err(io)?;
        Ok(total)
    }
}
