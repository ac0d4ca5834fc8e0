//! Shrinking a model: relative-entropy (Stolcke) pruning to a byte budget, and vocabulary
//! filtering.
//!
//! Stolcke pruning scores each explicit n-gram `h w` (order ≥ 2) by the increase in relative
//! entropy if it were dropped and `p(w|h)` came from the back-off `bo'(h)·p(w|h')` instead:
//! `ΔH = -P(h)·[p(w|h)·(ln(bo'(h)·p(w|h')) - ln p(w|h)) + num(h)·(ln bo'(h) - ln bo(h))]`, with
//! `num(h) = 1 - Σ p(x|h)` over the explicit `x`, `den(h) = 1 - Σ p(x|h')`, `bo = num/den` and
//! `bo' = (num + p(w|h))/(den + p(w|h'))`. Scores come from the unpruned model (as SRILM does);
//! n-grams are removed cheapest first until the binary fits, never removing an n-gram that is
//! the context of one that stays. Back-offs are then recomputed, lowest order first, so every
//! context's distribution sums to one again.

use std::collections::HashSet;

use crate::arpa::Tables;
use crate::{Model, Result};

/// Bytes of the binary format for these tables (exact, without writing it).
pub fn binary_size(t: &Tables, quantize: bool) -> u64 {
    let strings: u64 = t.vocab.iter().map(|w| w.len() as u64).sum();
    let counts: Vec<usize> = (1..=t.order()).map(|k| t.count(k)).collect();
    size_for(strings, t.vocab.len(), &counts, quantize)
}

/// Bytes of the binary format for a vocabulary of `vocab` words (`strings` bytes) and `counts`.
fn size_for(strings: u64, vocab: usize, counts: &[usize], quantize: bool) -> u64 {
    let pad = |x: u64| x.div_ceil(8) * 8;
    let order = counts.len();
    let mut size = 1024
        + pad(strings)
        + pad(4 * (vocab as u64 + 1))
        + pad(4 * crate::binary::hash_slots(vocab) as u64);
    for k in 1..=order {
        let n = counts[k - 1] as u64;
        let q = quantize && k > 1;
        let values = if q { pad(n) } else { pad(4 * n) };
        let kinds = if k < order { 2 } else { 1 };
        if k > 1 {
            size += pad(4 * k as u64 * n);
            if n > 0 {
                size += pad(4 * (vocab as u64 + 1));
            }
        }
        size += kinds * values;
        if q {
            size += kinds * 1024;
        }
    }
    size
}

fn p10(x: f32) -> f64 {
    10f64.powf(f64::from(x))
}

/// Prune `t` by relative entropy until its binary takes at most `max_bytes`. Returns the
/// pruned tables (unchanged when they already fit).
pub fn prune_to_bytes(t: &Tables, max_bytes: u64, quantize: bool) -> Result<Tables> {
    let order = t.order();
    if order < 2 || binary_size(t, quantize) <= max_bytes {
        return Ok(t.clone());
    }
    let model = Model::from_tables(t, false)?;
    // Marginal probability of each context, by order: P(h) = Π p(h_i | h_<i).
    let ctx_prob = |h: &[u32]| -> f64 {
        let mut st = model.null_state();
        let mut lp = 0.0f64;
        for &w in h {
            let (p, s, _) = model.score_id(&st, Some(w));
            lp += f64::from(p);
            st = s;
        }
        10f64.powf(lp)
    };
    let state_of = |h: &[u32]| -> crate::State {
        let mut st = model.null_state();
        for &w in h {
            st = model.score_id(&st, Some(w)).1;
        }
        st
    };
    // (ΔH, order, index) for every n-gram of order ≥ 2.
    let mut scored: Vec<(f64, usize, usize)> = Vec::new();
    for k in 2..=order {
        let ids = &t.ids[k - 1];
        let n = t.count(k);
        let mut i = 0;
        while i < n {
            let h = &ids[i * k..i * k + k - 1];
            let mut j = i;
            while j < n && &ids[j * k..j * k + k - 1] == h {
                j += 1;
            }
            let lower = state_of(&h[1..]);
            let (mut sum_p, mut sum_q) = (0.0f64, 0.0f64);
            let mut q_of = Vec::with_capacity(j - i);
            for r in i..j {
                let w = ids[r * k + k - 1];
                let q = p10(model.score_id(&lower, Some(w)).0);
                sum_p += p10(t.prob[k - 1][r]);
                sum_q += q;
                q_of.push(q);
            }
            let num = (1.0 - sum_p).max(1e-12);
            let den = (1.0 - sum_q).max(1e-12);
            let bo = num / den;
            let ph = ctx_prob(h);
            for (r, q) in (i..j).zip(q_of) {
                let p = p10(t.prob[k - 1][r]);
                let bo2 = (num + p) / (den + q);
                let dh = -ph * (p * ((bo2 * q).ln() - p.ln()) + num * (bo2.ln() - bo.ln()));
                scored.push((dh, k, r));
            }
            i = j;
        }
    }
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Children still kept per (order, index): a context cannot go while it has any.
    let mut children: Vec<Vec<u32>> = (1..=order).map(|k| vec![0u32; t.count(k)]).collect();
    let find = |k: usize, tuple: &[u32]| -> Option<usize> {
        if k == 1 {
            return Some(tuple[0] as usize);
        }
        let ids = &t.ids[k - 1];
        let n = t.count(k);
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match ids[mid * k..mid * k + k].cmp(tuple) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    };
    for k in 2..=order {
        for r in 0..t.count(k) {
            if let Some(parent) = find(k - 1, &t.ids[k - 1][r * k..r * k + k - 1]) {
                children[k - 2][parent] += 1;
            }
        }
    }
    let mut removed: Vec<HashSet<usize>> = vec![HashSet::new(); order];
    let mut counts: Vec<usize> = (1..=order).map(|k| t.count(k)).collect();
    let strings: u64 = t.vocab.iter().map(|w| w.len() as u64).sum();
    let size_of = |counts: &[usize]| size_for(strings, t.vocab.len(), counts, quantize);
    let mut pending = scored;
    loop {
        let mut progressed = false;
        let mut deferred = Vec::new();
        for (dh, k, r) in pending {
            if size_of(&counts) <= max_bytes {
                break;
            }
            if children[k - 1][r] > 0 {
                deferred.push((dh, k, r));
                continue;
            }
            removed[k - 1].insert(r);
            counts[k - 1] -= 1;
            if let Some(parent) = find(k - 1, &t.ids[k - 1][r * k..r * k + k - 1]) {
                children[k - 2][parent] -= 1;
            }
            progressed = true;
        }
        if !progressed || size_of(&counts) <= max_bytes || deferred.is_empty() {
            break;
        }
        pending = deferred;
    }
    let smallest = size_of(&counts);
    if smallest > max_bytes {
        return Err(crate::Error::Budget { max_bytes, smallest });
    }
    // Keep what was not removed.
    let mut out = Tables {
        vocab: t.vocab.clone(),
        ids: vec![Vec::new(); order],
        prob: vec![Vec::new(); order],
        backoff: vec![Vec::new(); order - 1],
    };
    out.prob[0] = t.prob[0].clone();
    out.backoff[0] = t.backoff[0].clone();
    for k in 2..=order {
        for r in 0..t.count(k) {
            if removed[k - 1].contains(&r) {
                continue;
            }
            out.ids[k - 1].extend_from_slice(&t.ids[k - 1][r * k..r * k + k]);
            out.prob[k - 1].push(t.prob[k - 1][r]);
            if k < order {
                out.backoff[k - 1].push(t.backoff[k - 1][r]);
            }
        }
    }
    renormalize(&mut out)?;
    Ok(out)
}

/// Recompute every back-off so each context's distribution sums to one, lowest order first.
pub fn renormalize(t: &mut Tables) -> Result<()> {
    let order = t.order();
    for len in 1..order {
        let model = Model::from_tables(t, false)?;
        let k = len + 1; // children order
        let n_ctx = t.count(len);
        let mut sums = vec![(0.0f64, 0.0f64); n_ctx];
        let mut has = vec![false; n_ctx];
        let ids = &t.ids[k - 1];
        for r in 0..t.count(k) {
            let g = &ids[r * k..r * k + k];
            let h = &g[..len];
            let idx = if len == 1 { Some(h[0] as usize) } else { find_in(t, len, h) };
            let Some(idx) = idx else { continue };
            let mut st = model.null_state();
            for &w in &h[1..] {
                st = model.score_id(&st, Some(w)).1;
            }
            let q = p10(model.score_id(&st, Some(g[len])).0);
            sums[idx].0 += p10(t.prob[k - 1][r]);
            sums[idx].1 += q;
            has[idx] = true;
        }
        for (i, (sp, sq)) in sums.into_iter().enumerate() {
            t.backoff[len - 1][i] = if has[i] {
                let num = (1.0 - sp).max(1e-12);
                let den = (1.0 - sq).max(1e-12);
                (num / den).log10() as f32
            } else {
                0.0
            };
        }
    }
    Ok(())
}

fn find_in(t: &Tables, k: usize, tuple: &[u32]) -> Option<usize> {
    let ids = &t.ids[k - 1];
    let (mut lo, mut hi) = (0, t.count(k));
    while lo < hi {
        let mid = (lo + hi) / 2;
        match ids[mid * k..mid * k + k].cmp(tuple) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Some(mid),
        }
    }
    None
}

/// Keep only n-grams whose words are all in `keep` (plus `<s>`, `</s>`, `<unk>`), as KenLM's
/// `filter` does: probabilities and back-offs are left as they are, so sentences made of kept
/// words score exactly as before.
pub fn filter_vocabulary(t: &Tables, keep: &HashSet<String>) -> Result<Tables> {
    let order = t.order();
    let special = ["<s>", "</s>", "<unk>"];
    let kept: Vec<bool> =
        t.vocab.iter().map(|w| keep.contains(w) || special.contains(&w.as_str())).collect();
    let mut remap = vec![u32::MAX; t.vocab.len()];
    let mut out = Tables {
        vocab: Vec::new(),
        ids: vec![Vec::new(); order],
        prob: vec![Vec::new(); order],
        backoff: vec![Vec::new(); order.saturating_sub(1)],
    };
    for (i, w) in t.vocab.iter().enumerate() {
        if kept[i] {
            remap[i] = out.vocab.len() as u32;
            out.vocab.push(w.clone());
            out.prob[0].push(t.prob[0][i]);
            if order > 1 {
                out.backoff[0].push(t.backoff[0][i]);
            }
        }
    }
    for k in 2..=order {
        for r in 0..t.count(k) {
            let g = &t.ids[k - 1][r * k..r * k + k];
            if g.iter().all(|&w| kept[w as usize]) {
                out.ids[k - 1].extend(g.iter().map(|&w| remap[w as usize]));
                out.prob[k - 1].push(t.prob[k - 1][r]);
                if k < order {
                    out.backoff[k - 1].push(t.backoff[k - 1][r]);
                }
            }
        }
    }
    Ok(out)
}

/// Keep the `max_words` most probable words (and `<s>`, `</s>`): the others become `<unk>`,
/// which takes over their unigram probability (added to the model if it had none), n-grams
/// through them go, and back-offs are renormalised. For budgets that unigrams alone exceed:
/// unlike [`filter_vocabulary`] the result is still a proper model, and out-of-vocabulary words
/// score as the class of words it no longer spells.
pub fn shrink_vocabulary(t: &Tables, max_words: usize) -> Result<Tables> {
    let special = |w: &str| matches!(w, "<s>" | "</s>" | "<unk>");
    let mut by_prob: Vec<usize> = (0..t.vocab.len()).filter(|&i| !special(&t.vocab[i])).collect();
    if by_prob.len() <= max_words {
        return Ok(t.clone());
    }
    by_prob.sort_by(|&a, &b| t.prob[0][b].total_cmp(&t.prob[0][a]).then(a.cmp(&b)));
    let keep: HashSet<String> = by_prob[..max_words].iter().map(|&i| t.vocab[i].clone()).collect();
    let mut mass: f64 = by_prob[max_words..].iter().map(|&i| p10(t.prob[0][i])).sum();
    // A model without <unk> gets one (sorted into the vocabulary, ids shifted past it).
    let mut with_unk;
    let src = match t.vocab.binary_search_by(|w| w.as_str().cmp("<unk>")) {
        Ok(i) => {
            mass += p10(t.prob[0][i]);
            t
        }
        Err(pos) => {
            with_unk = t.clone();
            with_unk.vocab.insert(pos, "<unk>".to_owned());
            with_unk.prob[0].insert(pos, -99.0);
            if let Some(bo) = with_unk.backoff.first_mut() {
                bo.insert(pos, 0.0);
            }
            for ids in with_unk.ids.iter_mut().skip(1) {
                for w in ids.iter_mut().filter(|w| **w as usize >= pos) {
                    *w += 1;
                }
            }
            &with_unk
        }
    };
    let mut out = filter_vocabulary(src, &keep)?;
    if let Ok(u) = out.vocab.binary_search_by(|w| w.as_str().cmp("<unk>")) {
        out.prob[0][u] = mass.max(1e-99).log10() as f32;
    }
    renormalize(&mut out)?;
    Ok(out)
}
