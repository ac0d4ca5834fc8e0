//! Drawing sentences from a back-off model: synthetic corpora of a known distribution, for
//! exercising estimation at scale (on-disk sorting, large models) where no large real text is
//! at hand.
//!
//! Exact for a normalised back-off model: after context `h` the explicit n-grams `h w` carry
//! mass `m(h)`; with probability `m(h)` one of them is drawn by its probability, otherwise a word
//! is drawn from the shorter context `h'` until it is not one of the explicit ones — which is
//! the back-off distribution `bo(h)·p(w|h')` restricted to the remaining words, without needing
//! `bo(h)` itself. Records are sorted by id tuple, so the extensions of a context are one range
//! found by binary search, and a per-order running sum inside each range picks a word.

use crate::arpa::Tables;

/// Draws sentences from tables; deterministic for a seed.
pub struct Sampler<'t> {
    t: &'t Tables,
    /// For each order: running sum of probabilities within each context's range.
    cum: Vec<Vec<f64>>,
    bos: Option<u32>,
    eos: Option<u32>,
    rng: std::cell::Cell<u64>,
}

impl<'t> Sampler<'t> {
    /// A sampler over `t` seeded with `seed`.
    pub fn new(t: &'t Tables, seed: u64) -> Self {
        let find = |w: &str| t.vocab.binary_search_by(|v| v.as_str().cmp(w)).ok().map(|i| i as u32);
        let (bos, eos) = (find("<s>"), find("</s>"));
        let mut cum = Vec::with_capacity(t.order());
        for k in 1..=t.order() {
            let probs = &t.prob[k - 1];
            let mut c = Vec::with_capacity(probs.len());
            let mut acc = 0f64;
            let ids = &t.ids[k - 1];
            for (i, &p) in probs.iter().enumerate() {
                let context = |i: usize| &ids[i * k..i * k + k - 1];
                if k > 1 && i > 0 && context(i - 1) != context(i) {
                    acc = 0.0;
                }
                let skip = k == 1 && Some(i as u32) == bos;
                acc += if skip { 0.0 } else { 10f64.powf(f64::from(p)) };
                c.push(acc);
            }
            cum.push(c);
        }
        Sampler { t, cum, bos, eos, rng: (seed ^ 0x9e37_79b9_7f4a_7c15).into() }
    }

    fn uniform(&self) -> f64 {
        // SplitMix64.
        self.rng.set(self.rng.get().wrapping_add(0x9e37_79b9_7f4a_7c15));
        let mut z = self.rng.get();
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The records of order `h.len() + 1` that extend `h`.
    fn range(&self, h: &[u32]) -> std::ops::Range<usize> {
        let k = h.len() + 1;
        let ids = &self.t.ids[k - 1];
        let n = self.t.prob[k - 1].len();
        let ctx = |i: usize| &ids[i * k..i * k + k - 1];
        let lo = partition(n, |i| ctx(i) < h);
        let hi = lo + partition(n - lo, |i| ctx(lo + i) <= h);
        lo..hi
    }

    fn draw(&self, h: &[u32]) -> u32 {
        let k = h.len() + 1;
        if k == 1 {
            let c = &self.cum[0][..];
            let total = c.last().copied().unwrap_or(0.0);
            let u = self.uniform() * total;
            return partition(c.len(), |i| c[i] <= u).min(c.len().saturating_sub(1)) as u32;
        }
        let r = self.range(h);
        if r.is_empty() {
            return self.draw(&h[1..]);
        }
        let c = &self.cum[k - 1][r.clone()];
        let mass = c[c.len() - 1];
        let u = self.uniform();
        let ids = &self.t.ids[k - 1];
        let last = |i: usize| ids[(r.start + i) * k + k - 1];
        if u < mass {
            let i = partition(c.len(), |i| c[i] <= u).min(c.len() - 1);
            return last(i);
        }
        // Back off: any word but the explicit ones (their last ids are sorted).
        let mut w = 0;
        for _ in 0..1000 {
            w = self.draw(&h[1..]);
            let j = partition(c.len(), |i| last(i) < w);
            if j == c.len() || last(j) != w {
                return w;
            }
        }
        w
    }

    /// One sentence of at most `max_words` words (without `<s>` and `</s>`).
    pub fn sentence(&mut self, max_words: usize) -> Vec<&'t str> {
        let order = self.t.order();
        let Some(bos) = self.bos else { return Vec::new() };
        let mut h = vec![bos];
        let mut out = Vec::new();
        while out.len() < max_words {
            let w = self.draw(&h);
            if Some(w) == self.eos || Some(w) == self.bos {
                break;
            }
            out.push(self.t.vocab[w as usize].as_str());
            h.push(w);
            if h.len() > order - 1 {
                h.remove(0);
            }
        }
        out
    }
}

/// The first index in `0..n` where `pred` turns false (`pred` true then false).
fn partition(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) { lo = mid + 1 } else { hi = mid }
    }
    lo
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn word_frequencies_follow_the_model() {
        // Unigram-heavy toy: after <s>, "a" 0.5, "b" 0.3, "</s>" 0.2 through the bigrams.
        let arpa = "\\data\\\nngram 1=4\nngram 2=3\n\n\\1-grams:\n-1.0\t</s>\n-99\t<s>\t0\n-0.5\ta\t0\n-0.5\tb\t0\n\n\\2-grams:\n-0.30103\t<s> a\n-0.5228787\t<s> b\n-0.69897\t<s> </s>\n\n\\end\\\n";
        let t = crate::arpa::read(arpa.as_bytes()).unwrap();
        let mut s = Sampler::new(&t, 7);
        let (mut a, mut b, mut empty) = (0, 0, 0);
        let n = 20_000;
        for _ in 0..n {
            // One word: the first draw follows <s>.
            match s.sentence(1).first().copied() {
                Some("a") => a += 1,
                Some("b") => b += 1,
                None => empty += 1,
                other => panic!("{other:?}"),
            }
        }
        let f = |x: i32| f64::from(x) / f64::from(n);
        assert!(
            (f(a) - 0.5).abs() < 0.02 && (f(b) - 0.3).abs() < 0.02 && (f(empty) - 0.2).abs() < 0.02
        );
        // Same seed, same text.
        let (x, y) = (Sampler::new(&t, 1).sentence(50), Sampler::new(&t, 1).sentence(50));
        assert_eq!(x, y);
    }
}
