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
//! Counts are held in memory (hash maps); corpora beyond RAM need the on-disk sort that is not
//! written yet.

use std::collections::HashMap;
use std::io::BufRead;

use crate::arpa::{Tables, sort_records};
use crate::{Error, MAX_ORDER, Result};

/// Per context: (Σ adjusted counts of its extensions, N1, N2, N3+ of the kept ones, Σ adjusted
/// counts of the pruned ones).
type ContextStats = (u64, u64, u64, u64, u64);

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
    let threshold =
        |k: usize| -> u64 { thresholds.get(k - 1).or(thresholds.last()).copied().unwrap_or(0) };
    if thresholds.first().is_some_and(|&t| t > 0) {
        return Err(Error::Arpa {
            line: 0,
            detail: "unigrams cannot be pruned by count: the first threshold must be 0".into(),
        });
    }
    if thresholds.windows(2).any(|w| w[1] < w[0]) {
        return Err(Error::Arpa {
            line: 0,
            detail: "prune thresholds must not decrease with the order".into(),
        });
    }
    if order == 0 || order > MAX_ORDER {
        return Err(Error::Arpa {
            line: 0,
            detail: format!("order {order}: between 1 and {MAX_ORDER} supported"),
        });
    }
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
    let eos = id("</s>", &mut vocab, &mut words);
    let unk = id("<unk>", &mut vocab, &mut words);
    // raw[n-1]: counts of n-grams.
    let mut raw: Vec<HashMap<Vec<u32>, u64>> = vec![HashMap::new(); order];
    let mut sentence = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line =
            line.map_err(|e| Error::Arpa { line: i + 1, detail: format!("unreadable text: {e}") })?;
        sentence.clear();
        sentence.push(bos);
        for w in line.split_whitespace() {
            if w == "<s>" || w == "</s>" || w == "<unk>" {
                continue;
            }
            sentence.push(id(w, &mut vocab, &mut words));
        }
        if sentence.len() == 1 {
            continue;
        }
        sentence.push(eos);
        for n in 1..=order {
            for g in sentence.windows(n) {
                *raw[n - 1].entry(g.to_vec()).or_insert(0) += 1;
            }
        }
    }
    if raw[0].is_empty() {
        return Err(Error::Arpa { line: 0, detail: "no text to estimate from".into() });
    }
    // Adjusted counts.
    let mut adj: Vec<HashMap<Vec<u32>, u64>> = vec![HashMap::new(); order];
    adj[order - 1] = raw[order - 1].clone();
    for n in (1..order).rev() {
        let mut cont: HashMap<Vec<u32>, u64> = HashMap::new();
        for g in raw[n].keys() {
            *cont.entry(g[1..].to_vec()).or_insert(0) += 1;
        }
        let mut a = HashMap::with_capacity(raw[n - 1].len());
        for (g, &c) in &raw[n - 1] {
            let v = if g[0] == bos { c } else { cont.get(g).copied().unwrap_or(0) };
            a.insert(g.clone(), v);
        }
        adj[n - 1] = a;
    }
    // <s> is never predicted; <unk> was never seen.
    adj[0].remove(&vec![bos]);
    // Discounts.
    let mut discounts = Vec::with_capacity(order);
    for a in &adj {
        let mut t = [0f64; 5];
        for &c in a.values() {
            if (1..=4).contains(&c) {
                t[c as usize] += 1.0;
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
    // Count pruning, on raw counts (orders ≥ 2 only).
    let pruned = |n: usize, g: &[u32]| -> bool {
        n > 0 && threshold(n + 1) > 0 && raw[n].get(g).copied().unwrap_or(0) <= threshold(n + 1)
    };
    // Per-context statistics: (Σa, N1, N2, N3+ of kept, Σa of pruned).
    let mut ctx_stats: Vec<HashMap<Vec<u32>, ContextStats>> = vec![HashMap::new(); order];
    for (n, a) in adj.iter().enumerate() {
        for (g, &c) in a {
            let e = ctx_stats[n].entry(g[..g.len() - 1].to_vec()).or_insert((0, 0, 0, 0, 0));
            e.0 += c;
            if pruned(n, g) {
                e.4 += c;
                continue;
            }
            match c {
                0 => {}
                1 => e.1 += 1,
                2 => e.2 += 1,
                _ => e.3 += 1,
            }
        }
    }
    let gamma = |n: usize, h: &[u32]| -> Option<f64> {
        let &(sum, n1, n2, n3, lost) = ctx_stats[n].get(h)?;
        if sum == 0 {
            return None;
        }
        let d = discounts[n].d;
        Some((d[0] * n1 as f64 + d[1] * n2 as f64 + d[2] * n3 as f64 + lost as f64) / sum as f64)
    };
    // Interpolated probabilities, order by order.
    let vocab_size = (words.len() - 1) as f64; // all but <s>
    let mut prob: Vec<HashMap<Vec<u32>, f64>> = vec![HashMap::new(); order];
    let g0 = gamma(0, &[]).unwrap_or(0.0);
    let sum0 = ctx_stats[0].get(&Vec::new()).map_or(1, |s| s.0).max(1) as f64;
    for w in 0..words.len() as u32 {
        if w == bos {
            continue;
        }
        let a = adj[0].get(&vec![w]).copied().unwrap_or(0);
        let u = (a as f64 - discounts[0].of(a)).max(0.0) / sum0;
        prob[0].insert(vec![w], u + g0 / vocab_size);
    }
    for n in 1..order {
        let mut p_n = HashMap::with_capacity(adj[n].len());
        for (g, &a) in &adj[n] {
            if pruned(n, g) {
                continue;
            }
            let h = &g[..n];
            let &(sum, ..) = ctx_stats[n].get(h).unwrap_or(&(1, 0, 0, 0, 0));
            let u = (a as f64 - discounts[n].of(a)).max(0.0) / sum.max(1) as f64;
            let lower = prob[n - 1].get(&g[1..]).copied().unwrap_or(0.0);
            p_n.insert(g.clone(), u + gamma(n, h).unwrap_or(0.0) * lower);
        }
        prob[n] = p_n;
    }
    // Tables, with ids remapped to sorted vocabulary order.
    let mut sorted: Vec<(String, u32)> = words.iter().cloned().zip(0..).collect();
    sorted.sort();
    let mut remap = vec![0u32; words.len()];
    for (new, (_, old)) in sorted.iter().enumerate() {
        remap[*old as usize] = new as u32;
    }
    let mut t = Tables {
        vocab: sorted.iter().map(|(w, _)| w.clone()).collect(),
        ids: vec![Vec::new(); order],
        prob: vec![Vec::new(); order],
        backoff: vec![Vec::new(); order - 1],
    };
    let log10 = |x: f64| if x > 0.0 { x.log10() as f32 } else { -99.0 };
    // Unigrams: every vocabulary word, indexed by new id.
    t.prob[0] = vec![0.0; words.len()];
    if order > 1 {
        t.backoff[0] = vec![0.0; words.len()];
    }
    for old in 0..words.len() as u32 {
        let new = remap[old as usize] as usize;
        t.prob[0][new] =
            if old == bos { 0.0 } else { log10(prob[0].get(&vec![old]).copied().unwrap_or(0.0)) };
        if order > 1 {
            t.backoff[0][new] = gamma(1, &[old]).map_or(0.0, log10);
        }
    }
    let _ = (eos, unk);
    for (n, prob_n) in prob.iter().enumerate().skip(1) {
        let k = n + 1;
        let mut ids = Vec::with_capacity(prob_n.len() * k);
        let mut ps = Vec::with_capacity(prob_n.len());
        let mut bos_ = Vec::new();
        for (g, &p) in prob_n {
            ids.extend(g.iter().map(|&w| remap[w as usize]));
            ps.push(log10(p));
            if k < order {
                bos_.push(gamma(k, g).map_or(0.0, log10));
            }
        }
        sort_records(k, &mut ids, &mut ps, if k < order { Some(&mut bos_) } else { None });
        t.ids[n] = ids;
        t.prob[n] = ps;
        if k < order {
            t.backoff[n] = bos_;
        }
    }
    Ok((t, discounts))
}
