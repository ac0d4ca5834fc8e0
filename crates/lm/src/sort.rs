//! External merge sort of fixed-width n-gram records, so that estimating a model needs memory
//! for a bounded buffer rather than for all of its n-grams ([`crate::build`]).
//!
//! A [`Sorter`] keeps records in a buffer of at most a byte budget; a full buffer is sorted,
//! equal keys summed when asked, and written to a run file; [`Sorter::finish`] merges the runs
//! (at most [`MAX_FAN_IN`] files open at once, merging in rounds beyond that) into one ordered
//! stream. Nothing touches the disk while everything fits.
//!
//! Written here rather than taken from `extsort`: that crate pulls its input from one
//! infallible iterator, while the estimator pushes records from merge-joins over files whose
//! I/O errors must propagate, and it bounds its buffer by item count with no summing merge.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use crate::{Error, MAX_ORDER, Result};

/// Word ids of one n-gram; only the first `k` are meaningful.
pub(crate) type Gram = [u32; MAX_ORDER];

/// Runs merged at once; more runs are merged in rounds.
pub(crate) const MAX_FAN_IN: usize = 64;

/// One record: an n-gram and two 64-bit payloads (counts, or `f64` bits).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rec {
    pub g: Gram,
    pub a: u64,
    pub b: u64,
}

/// Bytes a record takes in memory.
pub(crate) const REC_BYTES: usize = std::mem::size_of::<Rec>();

/// How records are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// By word ids left to right: records sharing a context are adjacent.
    Lex,
    /// By word ids right to left: records sharing a suffix are adjacent, and the suffixes
    /// come in the suffix order of the order below.
    Suffix,
}

/// Compare two id slices of equal length in `order`.
pub(crate) fn compare(order: Order, x: &[u32], y: &[u32]) -> Ordering {
    match order {
        Order::Lex => x.cmp(y),
        Order::Suffix => x.iter().rev().cmp(y.iter().rev()),
    }
}

/// The first `k` ids in comparison order packed into two integers (unused slots zero): one
/// or two integer comparisons per pair while sorting instead of an element-wise loop.
#[inline]
fn sort_key(order: Order, k: usize, g: &Gram) -> (u128, u128) {
    let mut w = [0u32; 8];
    match order {
        Order::Lex => w[..k].copy_from_slice(&g[..k]),
        Order::Suffix => {
            for (slot, &id) in w.iter_mut().zip(g[..k].iter().rev()) {
                *slot = id;
            }
        }
    }
    let pack = |w: &[u32]| {
        (u128::from(w[0]) << 96)
            | (u128::from(w[1]) << 64)
            | (u128::from(w[2]) << 32)
            | u128::from(w[3])
    };
    (pack(&w[..4]), pack(&w[4..]))
}

/// Temporary files of one estimation; removed when dropped. Shared by counting threads.
pub(crate) struct Spill {
    dir: tempfile::TempDir,
    next: AtomicU64,
    /// Bytes written so far.
    pub written: AtomicU64,
    /// Run files written so far.
    pub runs: AtomicU64,
}

impl Spill {
    pub(crate) fn new(parent: &Path) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("harken-lm-")
            .tempdir_in(parent)
            .map_err(|e| Error::io(parent, e))?;
        Ok(Spill { dir, next: 0.into(), written: 0.into(), runs: 0.into() })
    }

    /// Bytes written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Relaxed)
    }

    /// Run files written so far.
    pub(crate) fn runs(&self) -> u64 {
        self.runs.load(Relaxed)
    }

    /// A fresh file name.
    pub(crate) fn path(&self, what: &str) -> PathBuf {
        let n = self.next.fetch_add(1, Relaxed);
        self.dir.path().join(format!("{what}-{n}"))
    }
}

/// Sequential writer of `k`-word records.
pub(crate) struct RecWriter<'s> {
    k: usize,
    path: PathBuf,
    out: BufWriter<File>,
    spill: &'s Spill,
}

impl<'s> RecWriter<'s> {
    pub(crate) fn create(spill: &'s Spill, what: &str, k: usize) -> Result<Self> {
        let path = spill.path(what);
        let f = File::create(&path).map_err(|e| Error::io(&path, e))?;
        Ok(RecWriter { k, out: BufWriter::with_capacity(1 << 16, f), path, spill })
    }

    pub(crate) fn write(&mut self, r: &Rec) -> Result<()> {
        let mut buf = [0u8; MAX_ORDER * 4 + 16];
        let n = record_bytes(self.k);
        for (i, w) in r.g[..self.k].iter().enumerate() {
            buf[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        buf[self.k * 4..self.k * 4 + 8].copy_from_slice(&r.a.to_le_bytes());
        buf[self.k * 4 + 8..n].copy_from_slice(&r.b.to_le_bytes());
        self.out.write_all(&buf[..n]).map_err(|e| Error::io(&self.path, e))?;
        self.spill.written.fetch_add(n as u64, Relaxed);
        Ok(())
    }

    /// Flush and return the file's path.
    pub(crate) fn finish(mut self) -> Result<PathBuf> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))?;
        Ok(self.path)
    }
}

fn record_bytes(k: usize) -> usize {
    k * 4 + 16
}

/// Sequential reader of `k`-word records.
pub(crate) struct RecReader {
    k: usize,
    path: PathBuf,
    input: BufReader<File>,
}

impl RecReader {
    pub(crate) fn open(path: &Path, k: usize) -> Result<Self> {
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(RecReader { k, path: path.to_owned(), input: BufReader::with_capacity(1 << 16, f) })
    }

    pub(crate) fn next(&mut self) -> Result<Option<Rec>> {
        let at_end = self.input.fill_buf().map_err(|e| Error::io(&self.path, e))?.is_empty();
        if at_end {
            return Ok(None);
        }
        let mut buf = [0u8; MAX_ORDER * 4 + 16];
        let n = record_bytes(self.k);
        self.input.read_exact(&mut buf[..n]).map_err(|e| Error::io(&self.path, e))?;
        let mut g = [0u32; MAX_ORDER];
        for (i, w) in g[..self.k].iter_mut().enumerate() {
            *w = u32::from_le_bytes([buf[i * 4], buf[i * 4 + 1], buf[i * 4 + 2], buf[i * 4 + 3]]);
        }
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[at..at + 8]);
            u64::from_le_bytes(b)
        };
        Ok(Some(Rec { g, a: word(self.k * 4), b: word(self.k * 4 + 8) }))
    }
}

/// Sorts `k`-word records in `order` within a memory budget.
pub(crate) struct Sorter<'s> {
    k: usize,
    order: Order,
    /// Sum `a` over records with equal ids (counting).
    sum: bool,
    cap: usize,
    buf: Vec<Rec>,
    runs: Vec<PathBuf>,
    spill: &'s Spill,
}

impl<'s> Sorter<'s> {
    pub(crate) fn new(spill: &'s Spill, k: usize, order: Order, budget: usize, sum: bool) -> Self {
        let cap = (budget / REC_BYTES).max(16);
        Sorter { k, order, sum, cap, buf: Vec::new(), runs: Vec::new(), spill }
    }

    pub(crate) fn push(&mut self, r: Rec) -> Result<()> {
        if self.buf.len() == self.buf.capacity() {
            // Grow without overshooting the budget (a doubling Vec could take twice it).
            let more = self.buf.capacity().max(1024).min(self.cap - self.buf.len()).max(1);
            self.buf.reserve_exact(more);
        }
        self.buf.push(r);
        if self.buf.len() >= self.cap {
            self.spill_buffer()?;
        }
        Ok(())
    }

    /// Write `recs` (any order) as one run, bypassing the buffer.
    pub(crate) fn push_run(&mut self, mut recs: Vec<Rec>) -> Result<()> {
        self.sort_in_memory(&mut recs);
        self.write_run(&recs)
    }

    fn sort_in_memory(&self, recs: &mut Vec<Rec>) {
        let (k, order) = (self.k, self.order);
        // Both cores: sorting is a quarter of an estimation's time.
        rayon::slice::ParallelSliceMut::par_sort_unstable_by_key(recs.as_mut_slice(), |r| {
            sort_key(order, k, &r.g)
        });
        if self.sum {
            recs.dedup_by(|next, kept| {
                let same = next.g[..k] == kept.g[..k];
                if same {
                    kept.a += next.a;
                }
                same
            });
        }
    }

    fn write_run(&mut self, recs: &[Rec]) -> Result<()> {
        if recs.is_empty() {
            return Ok(());
        }
        let mut w = RecWriter::create(self.spill, "run", self.k)?;
        for r in recs {
            w.write(r)?;
        }
        self.runs.push(w.finish()?);
        self.spill.runs.fetch_add(1, Relaxed);
        Ok(())
    }

    fn spill_buffer(&mut self) -> Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        self.sort_in_memory(&mut buf);
        self.write_run(&buf)?;
        buf.clear();
        self.buf = buf;
        Ok(())
    }

    /// [`Sorter::finish`] with `recs` (any order) added; sorted in memory when nothing was
    /// written out before.
    pub(crate) fn finish_with(mut self, mut recs: Vec<Rec>) -> Result<Merged> {
        if self.runs.is_empty() && self.buf.is_empty() {
            self.sort_in_memory(&mut recs);
            return Ok(Merged::Memory(recs.into_iter()));
        }
        self.push_run(recs)?;
        self.finish()
    }

    /// All records in order (equal ids summed when summing).
    pub(crate) fn finish(mut self) -> Result<Merged> {
        if self.runs.is_empty() {
            let mut buf = std::mem::take(&mut self.buf);
            self.sort_in_memory(&mut buf);
            return Ok(Merged::Memory(buf.into_iter()));
        }
        self.spill_buffer()?;
        self.buf = Vec::new();
        while self.runs.len() > MAX_FAN_IN {
            let group: Vec<PathBuf> = self.runs.drain(..MAX_FAN_IN).collect();
            let mut merged = Merged::files(&group, self.k, self.order, self.sum)?;
            let mut w = RecWriter::create(self.spill, "run", self.k)?;
            while let Some(r) = merged.next()? {
                w.write(&r)?;
            }
            self.runs.push(w.finish()?);
            for p in group {
                let _ = std::fs::remove_file(p);
            }
        }
        Merged::files(&self.runs, self.k, self.order, self.sum)
    }
}

/// The head of one run in the merge heap (a max-heap, so the comparison is reversed).
pub(crate) struct Head {
    key: (u128, u128),
    rec: Rec,
    run: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        other.key.cmp(&self.key).then(other.run.cmp(&self.run))
    }
}

/// A sorted stream of records.
pub(crate) enum Merged {
    Memory(std::vec::IntoIter<Rec>),
    Files { readers: Vec<RecReader>, heap: BinaryHeap<Head>, k: usize, order: Order, sum: bool },
}

impl Merged {
    fn files(paths: &[PathBuf], k: usize, order: Order, sum: bool) -> Result<Self> {
        let mut readers = Vec::with_capacity(paths.len());
        let mut heap = BinaryHeap::with_capacity(paths.len());
        for (run, p) in paths.iter().enumerate() {
            let mut r = RecReader::open(p, k)?;
            if let Some(rec) = r.next()? {
                heap.push(Head { key: sort_key(order, k, &rec.g), rec, run });
            }
            readers.push(r);
        }
        Ok(Merged::Files { readers, heap, k, order, sum })
    }

    pub(crate) fn next(&mut self) -> Result<Option<Rec>> {
        match self {
            Merged::Memory(it) => Ok(it.next()),
            Merged::Files { readers, heap, k, order, sum } => {
                let Some(mut head) = heap.pop() else { return Ok(None) };
                let mut out = head.rec;
                loop {
                    if let Some(rec) = readers[head.run].next()? {
                        head.key = sort_key(*order, *k, &rec.g);
                        head.rec = rec;
                        heap.push(head);
                    }
                    if !*sum {
                        break;
                    }
                    match heap.peek() {
                        Some(h) if h.rec.g[..*k] == out.g[..*k] => {}
                        _ => break,
                    }
                    let Some(h) = heap.pop() else { break };
                    out.a += h.rec.a;
                    head = h;
                }
                Ok(Some(out))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rec(ids: &[u32], a: u64) -> Rec {
        let mut g = [0; MAX_ORDER];
        g[..ids.len()].copy_from_slice(ids);
        Rec { g, a, b: 7 }
    }

    fn drain(mut m: Merged) -> Vec<Rec> {
        let mut v = Vec::new();
        while let Some(r) = m.next().unwrap() {
            v.push(r);
        }
        v
    }

    #[test]
    fn spilled_merge_equals_in_memory_sort() {
        let spill = Spill::new(&std::env::temp_dir()).unwrap();
        // Pseudo-random 3-grams with many repeats, summed.
        let mut x = 12345u64;
        let mut input = Vec::new();
        for _ in 0..20_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let ids = [(x >> 33) as u32 % 7, (x >> 40) as u32 % 5, (x >> 50) as u32 % 11];
            input.push(rec(&ids, 1 + (x >> 60)));
        }
        for order in [Order::Lex, Order::Suffix] {
            let mut small = Sorter::new(&spill, 3, order, 40 * REC_BYTES, true);
            let mut big = Sorter::new(&spill, 3, order, usize::MAX / 2, true);
            for r in &input {
                small.push(*r).unwrap();
                big.push(*r).unwrap();
            }
            assert!(small.runs.len() > MAX_FAN_IN, "merges in rounds");
            let (s, b) = (drain(small.finish().unwrap()), drain(big.finish().unwrap()));
            assert_eq!(s, b);
            assert_eq!(s.len(), 7 * 5 * 11);
            assert_eq!(s.iter().map(|r| r.a).sum::<u64>(), input.iter().map(|r| r.a).sum());
            assert!(s.windows(2).all(|w| compare(order, &w[0].g[..3], &w[1].g[..3]).is_lt()));
        }
        assert!(spill.written() > 0);
    }

    #[test]
    fn suffix_order_groups_suffixes() {
        let (a, b) = ([1, 2, 3], [9, 1, 3]);
        assert_eq!(compare(Order::Suffix, &a, &b), Ordering::Greater);
        assert_eq!(compare(Order::Lex, &a, &b), Ordering::Less);
        assert_eq!(compare(Order::Suffix, &[5, 2, 3], &[1, 3, 3]), Ordering::Less);
    }
}
