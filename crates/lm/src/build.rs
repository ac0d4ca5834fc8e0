//! Estimating a model from text: interpolated modified Kneser–Ney (Chen & Goodman), the
//! estimator of KenLM's `lmplz`, written out in ARPA back-off form.
//!
//! 1. Count every n-gram of orders 1..N in sentences padded as `<s> w… </s>`.
//! 2. Adjusted counts: raw counts for order N and for n-grams starting with `<s>`; for lower
//!    orders, the number of distinct words seen to the left (continuation counts).
//! 3. Discounts per order from the counts of adjusted counts `t1..t4`:
//!    `Y = t1/(t1+2·t2)`, `D1 = 1-2Y·t2/t1`, `D2 = 2-3Y·t3/t2`, `D3+ = 3-4Y·t4/t3`.
//! 4. `p(w|h) = (a(hw) - D(a(hw)))/Σa(h·) + γ(h)·p(w|h')`, with
//!    `γ(h) = (D1·N1(h·) + D2·N2(h·) + D3+·N3+(h·))/Σa(h·)`; unigrams interpolate with the
//!    uniform distribution over the vocabulary (incl. `<unk>`, excl. `<s>`).
//! 5. ARPA: each n-gram's probability is the interpolated `p`; its back-off is `γ` of it as a
//!    context (0 in log10 when nothing follows it).
//!
//! Count pruning ([`build_pruned`], `lmplz --prune`): an n-gram of order k ≥ 2 whose raw count
//! is at most `thresholds[k-1]` is left out. As in lmplz, discounts still come from every
//! n-gram, a context's denominator still sums all its extensions, and the adjusted counts of
//! the pruned extensions join the back-off mass, so each distribution still sums to one.
//! Thresholds must not decrease with the order, which keeps every kept n-gram's context and
//! suffix kept too.
//!
//! Memory ([`BuildOptions::memory`], `harken lm build --memory`): as in lmplz, the vocabulary
//! and per-word arrays (unigram counts and probabilities) stay in memory; n-grams of order ≥ 2
//! are counted in hash maps that are written out as sorted runs whenever they reach the budget,
//! and every later step streams sorted files through the `sort` module: adjusted counts by a
//! merge-join of each order with the suffix-sorted order above, denominators and `γ` over
//! records grouped by context, interpolation by a merge-join with the suffix-sorted
//! probabilities of the order below, and the output, order by order, into a [`Sink`]. With a
//! file sink ([`build_into`]) neither the text, its counts nor the model has to fit in memory;
//! [`build_with`] collects the model into [`Tables`].

use std::collections::HashMap;
use std::io::BufRead;
use std::path::PathBuf;

use rustc_hash::FxHashMap;

use crate::arpa::Tables;
use crate::sink::{Sink, TablesSink};
use crate::sort::{Gram, Order, Rec, RecReader, RecWriter, Sorter, Spill, compare};
use crate::{Error, MAX_ORDER, Result};

/// Discounts of one order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Discounts {
    /// For adjusted count 1, 2 and 3 or more.
    pub d: [f64; 3],
}

impl Discounts {
    fn of(&self, count: u64) -> f64 {
        match count {
            0 => 0.0,
            1 => self.d[0],
            2 => self.d[1],
            _ => self.d[2],
        }
    }
}

/// How to estimate.
pub struct BuildOptions<'a> {
    /// Highest order.
    pub order: usize,
    /// Count thresholds, `lmplz --prune` style: `prune[k-1]` for order k, the last value
    /// repeating for higher orders; empty prunes nothing.
    pub prune: Vec<u64>,
    /// Bytes of n-gram records held in memory before sorted runs go to disk. The vocabulary,
    /// per-word arrays and the finished tables come on top.
    pub memory: usize,
    /// Where the temporary files go (a fresh directory inside, removed at the end).
    pub temp_dir: PathBuf,
    /// Told the name of each step as it starts.
    pub progress: Option<&'a dyn Fn(&str)>,
}

impl Default for BuildOptions<'_> {
    fn default() -> Self {
        BuildOptions {
            order: 3,
            prune: Vec::new(),
            memory: 1 << 30,
            temp_dir: std::env::temp_dir(),
            progress: None,
        }
    }
}

/// An estimated model and how it was made.
#[derive(Debug)]
pub struct Built {
    /// The model.
    pub tables: Tables,
    /// How it was estimated.
    pub report: BuildReport,
}

/// What an estimation did.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// Discounts per order.
    pub discounts: Vec<Discounts>,
    /// n-grams per order in the model.
    pub counts: Vec<usize>,
    /// Sorted runs written because the records outgrew [`BuildOptions::memory`] (0: all
    /// sorting happened in memory).
    pub runs: u64,
    /// Bytes of temporary files written (counts and intermediate records included).
    pub temp_bytes: u64,
}

/// Estimate an order-`order` model from sentences, one per line, tokens separated by spaces.
/// Returns the tables and the discounts used per order.
pub fn build(text: impl BufRead, order: usize) -> Result<(Tables, Vec<Discounts>)> {
    build_pruned(text, order, &[])
}

/// [`build`] with count pruning: `thresholds[k-1]` for order k (the last value repeats for
/// higher orders; `[]` prunes nothing), as `lmplz --prune`.
pub fn build_pruned(
    text: impl BufRead,
    order: usize,
    thresholds: &[u64],
) -> Result<(Tables, Vec<Discounts>)> {
    let b = build_with(
        text,
        &BuildOptions { order, prune: thresholds.to_vec(), ..Default::default() },
    )?;
    Ok((b.tables, b.report.discounts))
}

fn bad(detail: impl Into<String>) -> Error {
    Error::Build { line: 0, detail: detail.into() }
}

fn log10(x: f64) -> f32 {
    if x > 0.0 { x.log10() as f32 } else { -99.0 }
}

/// Bytes a counting map takes (hashbrown: one control byte per bucket, buckets ≈ 8/7 of the
/// capacity).
fn map_bytes(m: &FxHashMap<Gram, u64>) -> usize {
    m.capacity() * (std::mem::size_of::<(Gram, u64)>() + 1) * 8 / 7
}

fn gram(ids: &[u32]) -> Gram {
    let mut g = [0; MAX_ORDER];
    g[..ids.len()].copy_from_slice(ids);
    g
}

/// Estimate a model with the options in `opts` into memory.
pub fn build_with(text: impl BufRead, opts: &BuildOptions<'_>) -> Result<Built> {
    let mut sink = TablesSink::default();
    let report = build_into(text, opts, &mut sink)?;
    Ok(Built { tables: sink.tables, report })
}

/// Estimate a model with the options in `opts` and hand it to `sink` record by record (see
/// the module documentation): with a file sink, memory stays within the budget plus the
/// vocabulary, whatever the size of the text and of the model.
pub fn build_into(
    text: impl BufRead,
    opts: &BuildOptions<'_>,
    sink: &mut dyn Sink,
) -> Result<BuildReport> {
    let order = opts.order;
    let thresholds = &opts.prune;
    let threshold =
        |k: usize| -> u64 { thresholds.get(k - 1).or(thresholds.last()).copied().unwrap_or(0) };
    if thresholds.first().is_some_and(|&t| t > 0) {
        return Err(bad("unigrams cannot be pruned by count: the first threshold must be 0"));
    }
    if thresholds.windows(2).any(|w| w[1] < w[0]) {
        return Err(bad("prune thresholds must not decrease with the order"));
    }
    if order == 0 || order > MAX_ORDER {
        return Err(bad(format!("order {order}: between 1 and {MAX_ORDER} supported")));
    }
    let stage = |s: &str| {
        if let Some(p) = opts.progress {
            p(s);
        }
    };
    let spill = Spill::new(&opts.temp_dir)?;

    // 1. Counts: unigrams in a per-word array, higher orders in hash maps flushed to sorted
    //    runs when they reach half the budget (draining one takes as much again).
    stage("counting");
    let mut vocab: HashMap<String, u32> = HashMap::new();
    let mut words: Vec<String> = Vec::new();
    let id = |w: &str, vocab: &mut HashMap<String, u32>, words: &mut Vec<String>| -> u32 {
        if let Some(&i) = vocab.get(w) {
            return i;
        }
        let i = words.len() as u32;
        vocab.insert(w.to_owned(), i);
        words.push(w.to_owned());
        i
    };
    let bos = id("<s>", &mut vocab, &mut words);
    id("</s>", &mut vocab, &mut words);
    id("<unk>", &mut vocab, &mut words);
    let mut uni: Vec<u64> = Vec::new();
    // Orders ≥ 2 are counted by up to one worker per core, each owning some orders' maps
    // (dealt in snake order, largest first, to even out the work); this thread reads the
    // text, assigns ids and counts unigrams.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(order - 1);
    let mut counters: Vec<Counter<'_>> = (0..workers.max(1))
        .map(|_| Counter { maps: Vec::new(), budget: opts.memory / 2 / workers.max(1) })
        .collect();
    for (i, k) in (2..=order).rev().enumerate() {
        let round = i / workers.max(1);
        let slot = i % workers.max(1);
        let w = if round.is_multiple_of(2) { slot } else { workers.max(1) - 1 - slot };
        counters[w].maps.push((
            k,
            FxHashMap::default(),
            Sorter::new(&spill, k, Order::Suffix, 0, true),
        ));
    }
    let mut sentences = 0usize;
    let counted: Vec<Counter<'_>> = std::thread::scope(|scope| -> Result<Vec<Counter<'_>>> {
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for mut counter in counters {
            let (tx, rx) = std::sync::mpsc::sync_channel::<std::sync::Arc<Batch>>(4);
            senders.push(tx);
            handles.push(scope.spawn(move || -> Result<Counter<'_>> {
                for batch in rx {
                    for s in batch.sentences() {
                        counter.count(s)?;
                    }
                }
                Ok(counter)
            }));
        }
        let mut batch = Batch::default();
        let send = |batch: Batch| -> bool {
            let batch = std::sync::Arc::new(batch);
            // A worker that stopped has an error to report at the join.
            senders.iter().all(|tx| tx.send(batch.clone()).is_ok())
        };
        let mut sentence = Vec::new();
        let mut read_error = None;
        for (i, line) in text.lines().enumerate() {
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    read_error =
                        Some(Error::Build { line: i + 1, detail: format!("unreadable text: {e}") });
                    break;
                }
            };
            sentence.clear();
            sentence.push(bos);
            for w in line.split_whitespace() {
                if w == "<s>" || w == "</s>" || w == "<unk>" {
                    continue;
                }
                sentence.push(id(w, &mut vocab, &mut words));
            }
            // An empty line is a sentence `<s> </s>`, as lmplz counts it.
            sentence.push(1); // </s>
            sentences += 1;
            uni.resize(words.len(), 0);
            for &w in &sentence {
                uni[w as usize] += 1;
            }
            batch.push(&sentence);
            if batch.ids.len() >= 1 << 16 && !send(std::mem::take(&mut batch)) {
                break;
            }
        }
        if !batch.ids.is_empty() {
            send(batch);
        }
        drop(senders);
        let mut done = Vec::new();
        for h in handles {
            done.push(h.join().map_err(|_| bad("a counting thread panicked"))??);
        }
        match read_error {
            Some(e) => Err(e),
            None => Ok(done),
        }
    })?;
    let mut maps: Vec<FxHashMap<Gram, u64>> = (0..=order).map(|_| FxHashMap::default()).collect();
    let mut counted_runs: Vec<Sorter<'_>> =
        (0..=order).map(|k| Sorter::new(&spill, k.max(1), Order::Suffix, 0, true)).collect();
    for c in counted {
        for (k, m, s) in c.maps {
            maps[k] = m;
            counted_runs[k] = s;
        }
    }
    if sentences == 0 {
        return Err(bad("no text to estimate from"));
    }
    uni.resize(words.len(), 0);
    // One count file per order ≥ 2, in suffix order.
    let mut counts: Vec<Option<PathBuf>> = vec![None; order + 1];
    for k in 2..=order {
        stage(&format!("sorting {k}-gram counts"));
        let recs: Vec<Rec> =
            std::mem::take(&mut maps[k]).into_iter().map(|(g, a)| Rec { g, a, b: 0 }).collect();
        let sorter =
            std::mem::replace(&mut counted_runs[k], Sorter::new(&spill, k, Order::Suffix, 0, true));
        let mut merged = sorter.finish_with(recs)?;
        let mut w = RecWriter::create(&spill, "counts", k)?;
        while let Some(r) = merged.next()? {
            w.write(&r)?;
        }
        counts[k] = Some(w.finish()?);
    }
    drop(maps);

    // 2. Adjusted counts and discounts.
    stage("adjusting counts");
    let mut adj1 = uni.clone();
    if let Some(path) = &counts.get(2).cloned().flatten() {
        adj1.iter_mut().for_each(|a| *a = 0);
        let mut r = RecReader::open(path, 2)?;
        while let Some(rec) = r.next()? {
            adj1[rec.g[1] as usize] += 1;
        }
    }
    let tally = |t: &mut [f64; 5], a: u64| {
        if (1..=4).contains(&a) {
            t[a as usize] += 1.0;
        }
    };
    let mut discounts = Vec::with_capacity(order);
    for k in 1..=order {
        let mut t = [0f64; 5];
        if k == 1 {
            for (w, &a) in adj1.iter().enumerate() {
                if w != bos as usize {
                    tally(&mut t, a);
                }
            }
        } else {
            let mut adj = Adjusted::open(&counts, k, bos)?;
            while let Some(r) = adj.next()? {
                tally(&mut t, r.b);
            }
        }
        let d = if t[1] > 0.0 && t[2] > 0.0 && t[3] > 0.0 && t[4] > 0.0 {
            let y = t[1] / (t[1] + 2.0 * t[2]);
            [1.0 - 2.0 * y * t[2] / t[1], 2.0 - 3.0 * y * t[3] / t[2], 3.0 - 4.0 * y * t[4] / t[3]]
        } else {
            // lmplz's --discount_fallback values, for tiny or artificial corpora.
            [0.5, 1.0, 1.5]
        };
        discounts.push(Discounts { d });
    }

    // 3. Unigrams, in memory: interpolated with the uniform distribution over the
    //    vocabulary (all words but <s>).
    stage("estimating 1-grams");
    let vocab_size = (words.len() - 1) as f64;
    let mut stats = ContextStats::default();
    for (w, &a) in adj1.iter().enumerate() {
        if w != bos as usize {
            stats.add(a, false);
        }
    }
    let g0 = stats.gamma(&discounts[0]).unwrap_or(0.0);
    let p1: Vec<f64> = adj1
        .iter()
        .map(|&a| {
            (a as f64 - discounts[0].of(a)).max(0.0) / stats.sum.max(1) as f64 + g0 / vocab_size
        })
        .collect();

    // 4. Higher orders: group by context (lexical order) for the denominators and γ, then
    //    by suffix to interpolate with the order below.
    // gammas[k]: γ of each k-gram as a context, lexical order.
    let mut gammas: Vec<Option<PathBuf>> = vec![None; order + 1];
    // probs[k]: interpolated probability of each kept k-gram, suffix order.
    let mut probs: Vec<Option<PathBuf>> = vec![None; order + 1];
    let mut counts_kept = vec![0usize; order];
    counts_kept[0] = words.len();
    for k in 2..=order {
        stage(&format!("estimating {k}-grams"));
        let pruned = |r: &Rec| threshold(k) > 0 && r.a <= threshold(k);
        let mut by_context = Sorter::new(&spill, k, Order::Lex, opts.memory / 2, false);
        let mut adj = Adjusted::open(&counts, k, bos)?;
        while let Some(r) = adj.next()? {
            by_context.push(r)?;
        }
        let mut by_context = by_context.finish()?;
        let mut by_suffix = Sorter::new(&spill, k, Order::Suffix, opts.memory / 2, false);
        let mut gamma_out = RecWriter::create(&spill, "gamma", k - 1)?;
        let mut group: Vec<Rec> = Vec::new();
        loop {
            let r = by_context.next()?;
            if let Some(first) = group.first()
                && r.is_none_or(|r| r.g[..k - 1] != first.g[..k - 1])
            {
                let mut stats = ContextStats::default();
                for r in &group {
                    stats.add(r.b, pruned(r));
                }
                let gamma = stats.gamma(&discounts[k - 1]);
                if let Some(g) = gamma {
                    gamma_out.write(&Rec { g: first.g, a: g.to_bits(), b: 0 })?;
                }
                for r in group.iter().filter(|r| !pruned(r)) {
                    let u =
                        (r.b as f64 - discounts[k - 1].of(r.b)).max(0.0) / stats.sum.max(1) as f64;
                    by_suffix.push(Rec {
                        g: r.g,
                        a: u.to_bits(),
                        b: gamma.unwrap_or(0.0).to_bits(),
                    })?;
                }
                group.clear();
            }
            match r {
                Some(r) => group.push(r),
                None => break,
            }
        }
        drop(by_context);
        gammas[k - 1] = Some(gamma_out.finish()?);
        let mut by_suffix = by_suffix.finish()?;
        let mut lower = match &probs[k - 1] {
            Some(p) if k > 2 => Some(Peekable::new(RecReader::open(p, k - 1)?)),
            _ => None,
        };
        let mut probs_out = RecWriter::create(&spill, "prob", k)?;
        while let Some(r) = by_suffix.next()? {
            let low = match lower.as_mut() {
                None => p1[r.g[1] as usize],
                Some(lower) => lower.find(&r.g[1..k])?.map_or(0.0, |l| f64::from_bits(l.a)),
            };
            let p = f64::from_bits(r.a) + f64::from_bits(r.b) * low;
            probs_out.write(&Rec { g: r.g, a: p.to_bits(), b: 0 })?;
            counts_kept[k - 1] += 1;
        }
        probs[k] = Some(probs_out.finish()?);
    }

    // 5. Output: back-offs are γ of each n-gram as a context; ids remapped to the sorted
    //    vocabulary, so each order is sorted twice more (by the old ids to meet its γ, by
    //    the new ones for the sink).
    stage("writing the model");
    let mut sorted: Vec<(String, u32)> = words.iter().cloned().zip(0..).collect();
    sorted.sort();
    let mut remap = vec![0u32; words.len()];
    for (new, (_, old)) in sorted.iter().enumerate() {
        remap[*old as usize] = new as u32;
    }
    let vocab: Vec<String> = sorted.into_iter().map(|(w, _)| w).collect();
    let mut uni_prob = vec![0f32; words.len()];
    for (old, &p) in p1.iter().enumerate() {
        if old != bos as usize {
            uni_prob[remap[old] as usize] = log10(p);
        }
    }
    let mut uni_bo = vec![0f32; words.len()];
    if let Some(path) = &gammas[1] {
        let mut r = RecReader::open(path, 1)?;
        while let Some(rec) = r.next()? {
            uni_bo[remap[rec.g[0] as usize] as usize] = log10(f64::from_bits(rec.a));
        }
    }
    sink.begin(&vocab, &counts_kept, &uni_prob, (order > 1).then_some(uni_bo.as_slice()))?;
    for k in 2..=order {
        let Some(path) = &probs[k] else { continue };
        let mut by_old = Sorter::new(&spill, k, Order::Lex, opts.memory / 2, false);
        let mut r = RecReader::open(path, k)?;
        while let Some(rec) = r.next()? {
            by_old.push(rec)?;
        }
        let mut by_old = by_old.finish()?;
        let mut gamma = match (&gammas[k], k < order) {
            (Some(g), true) => Some(Peekable::new(RecReader::open(g, k)?)),
            _ => None,
        };
        let mut by_new = Sorter::new(&spill, k, Order::Lex, opts.memory / 2, false);
        while let Some(mut rec) = by_old.next()? {
            let bo = match gamma.as_mut() {
                Some(g) => g.find_lex(&rec.g[..k])?.map_or(0.0, |x| log10(f64::from_bits(x.a))),
                None => 0.0,
            };
            for w in &mut rec.g[..k] {
                *w = remap[*w as usize];
            }
            let p = log10(f64::from_bits(rec.a));
            by_new.push(Rec { g: rec.g, a: u64::from(p.to_bits()), b: u64::from(bo.to_bits()) })?;
        }
        drop(by_old);
        let mut by_new = by_new.finish()?;
        while let Some(rec) = by_new.next()? {
            let bo = (k < order).then(|| f32::from_bits(rec.b as u32));
            sink.record(&rec.g[..k], f32::from_bits(rec.a as u32), bo)?;
        }
    }
    sink.finish()?;
    Ok(BuildReport {
        discounts,
        counts: counts_kept,
        runs: spill.runs(),
        temp_bytes: spill.written(),
    })
}

/// Padded sentences (`<s> … </s>` ids) passed to the counting workers.
#[derive(Default)]
struct Batch {
    ids: Vec<u32>,
    ends: Vec<usize>,
}

impl Batch {
    fn push(&mut self, sentence: &[u32]) {
        self.ids.extend_from_slice(sentence);
        self.ends.push(self.ids.len());
    }

    fn sentences(&self) -> impl Iterator<Item = &[u32]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let s = &self.ids[start..end];
            start = end;
            s
        })
    }
}

/// Counts of some orders ≥ 2: a hash map per order, written out as a sorted run (all of this
/// counter's maps at once) when they would outgrow the counter's share of the budget.
struct Counter<'s> {
    maps: Vec<(usize, FxHashMap<Gram, u64>, Sorter<'s>)>,
    budget: usize,
}

impl Counter<'_> {
    fn count(&mut self, sentence: &[u32]) -> Result<()> {
        for i in 0..self.maps.len() {
            let k = self.maps[i].0;
            for win in sentence.windows(k) {
                let g = gram(win);
                if let Some(c) = self.maps[i].1.get_mut(&g) {
                    *c += 1;
                    continue;
                }
                let m = &self.maps[i].1;
                if m.len() == m.capacity() {
                    // The next insert doubles this map: flush first if that would not fit
                    // (draining a map takes about as much again, hence half the budget).
                    let total: usize = self.maps.iter().map(|m| map_bytes(&m.1)).sum();
                    if total + 2 * map_bytes(m).max(4096) > self.budget {
                        self.flush()?;
                    }
                }
                self.maps[i].1.insert(g, 1);
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        for (_, m, sorter) in &mut self.maps {
            let recs: Vec<Rec> = m.drain().map(|(g, a)| Rec { g, a, b: 0 }).collect();
            sorter.push_run(recs)?;
        }
        Ok(())
    }
}

/// Per context: Σ adjusted counts of its extensions, N1/N2/N3+ of the kept ones, Σ adjusted
/// counts of the pruned ones.
#[derive(Default)]
struct ContextStats {
    sum: u64,
    n: [u64; 3],
    lost: u64,
}

impl ContextStats {
    fn add(&mut self, a: u64, pruned: bool) {
        self.sum += a;
        if pruned {
            self.lost += a;
        } else if a > 0 {
            self.n[(a.min(3) - 1) as usize] += 1;
        }
    }

    /// The back-off mass `γ`, or `None` for a context nothing was counted after.
    fn gamma(&self, d: &Discounts) -> Option<f64> {
        if self.sum == 0 {
            return None;
        }
        let d = d.d;
        Some(
            (d[0] * self.n[0] as f64
                + d[1] * self.n[1] as f64
                + d[2] * self.n[2] as f64
                + self.lost as f64)
                / self.sum as f64,
        )
    }
}

/// A record reader with one record of look-ahead, for merge-joins.
struct Peekable {
    reader: RecReader,
    head: Option<Rec>,
    started: bool,
}

impl Peekable {
    fn new(reader: RecReader) -> Self {
        Peekable { reader, head: None, started: false }
    }

    fn advance_while(&mut self, key: &[u32], order: Order) -> Result<Option<Rec>> {
        if !self.started {
            self.head = self.reader.next()?;
            self.started = true;
        }
        let k = key.len();
        while let Some(h) = self.head {
            match compare(order, &h.g[..k], key) {
                std::cmp::Ordering::Less => self.head = self.reader.next()?,
                std::cmp::Ordering::Equal => return Ok(Some(h)),
                std::cmp::Ordering::Greater => return Ok(None),
            }
        }
        Ok(None)
    }

    /// The record whose ids equal `key`, for keys asked in ascending suffix order.
    fn find(&mut self, key: &[u32]) -> Result<Option<Rec>> {
        self.advance_while(key, Order::Suffix)
    }

    /// The record whose ids equal `key`, for keys asked in ascending lexical order.
    fn find_lex(&mut self, key: &[u32]) -> Result<Option<Rec>> {
        self.advance_while(key, Order::Lex)
    }
}

/// Adjusted counts of order `k` in suffix order (`a` = raw count, `b` = adjusted): the raw
/// count at the highest order and for n-grams starting with `<s>`, else the number of distinct
/// words seen before the n-gram — a merge-join with the suffix-sorted counts of order `k + 1`,
/// where the extensions of each n-gram are adjacent.
struct Adjusted {
    k: usize,
    bos: u32,
    counts: RecReader,
    longer: Option<Peekable>,
}

impl Adjusted {
    fn open(counts: &[Option<PathBuf>], k: usize, bos: u32) -> Result<Self> {
        let path = |k: usize| counts.get(k).cloned().flatten();
        let this = path(k).ok_or_else(|| bad(format!("no {k}-gram counts")))?;
        let longer = match path(k + 1) {
            Some(p) => Some(Peekable::new(RecReader::open(&p, k + 1)?)),
            None => None,
        };
        Ok(Adjusted { k, bos, counts: RecReader::open(&this, k)?, longer })
    }

    fn next(&mut self) -> Result<Option<Rec>> {
        let Some(mut r) = self.counts.next()? else { return Ok(None) };
        r.b = match self.longer.as_mut() {
            Some(longer) if r.g[0] != self.bos => {
                let k = self.k;
                let mut n = 0;
                // Skip to this n-gram's extensions, then count them.
                if !longer.started {
                    longer.head = longer.reader.next()?;
                    longer.started = true;
                }
                while let Some(h) = longer.head {
                    match compare(Order::Suffix, &h.g[1..=k], &r.g[..k]) {
                        std::cmp::Ordering::Greater => break,
                        std::cmp::Ordering::Equal => n += 1,
                        std::cmp::Ordering::Less => {}
                    }
                    longer.head = longer.reader.next()?;
                }
                n
            }
            _ => r.a,
        };
        Ok(Some(r))
    }
}
