//! The trie writer: [`Tables`] in, the bytes `build_binary … trie` writes out.
//!
//! The steps are KenLM's (`lm/search_trie.cc` `BuildTrie`, `lm/trie_sort.cc`), in its order,
//! because each leaves traces in the bytes:
//!
//! 1. Words get KenLM ids (0 `<unk>`, the others by ascending MurmurHash64A), each order's
//!    n-grams are reversed (predicted word first) and sorted, and the reversed contexts of
//!    each order are collected (`SortedFiles`).
//! 2. A walk over all orders in trie order (`RecursiveInsert`) finds the n-grams a pruned
//!    model lacks on the path to a longer one ("blanks", `BlankManager`) and asks for the
//!    back-offs their probabilities need (`SRISucks::Send`).
//! 3. Those back-offs are added (`ObtainBackoffs`); a zero back-off asked for turns from -0
//!    ("no extension") to +0.
//! 4. Quantizer bins are trained on each order's probabilities (blanks first) and non-zero
//!    back-offs (`SeparatelyQuantize::Train`, equal-count bins, centres averaged in `f64`).
//! 5. A second walk writes the entries (`WriteEntries`): unigram records, then bit-packed
//!    middle and longest entries with their child pointers, compressed through offset arrays
//!    for the ARRAY types (`ArrayBhiksha`).
//!
//! It owns nothing else: reading ARPA is [`crate::arpa`]'s job and the layout is
//! [`super::layout`]'s.

use std::cmp::Ordering;

use super::bits::{
    EXTENSION_BACKOFF, NO_EXTENSION_BACKOFF, SIGN_BIT, has_extension, mask, murmur_hash64a,
    set_extension, write_bits,
};
use super::layout::{self, Fixed, Layout, ModelType, Packed, QuantBits};
use crate::arpa::Tables;
use crate::{Error, MAX_ORDER, Result};

/// `build_binary` options that change the trie's bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrieOptions {
    /// `-q` / `-b`: quantize probabilities and back-offs to this many bits (`None`: floats).
    pub quantize: Option<QuantBits>,
    /// `-a`: compress child pointers, moving at most this many of their high bits into offset
    /// arrays (255: as many as saves space). `None`: plain pointers.
    pub pointer_bits: Option<u8>,
    /// Append the vocabulary strings (`build_binary` does unless `-v`).
    pub include_vocab: bool,
    /// `-u`: log10 probability of `<unk>` when the model has none (KenLM's default is -100).
    pub unknown_log10: f32,
}

impl TrieOptions {
    /// `build_binary trie`: floats, plain pointers, vocabulary strings included.
    pub fn plain() -> Self {
        TrieOptions {
            quantize: None,
            pointer_bits: None,
            include_vocab: true,
            unknown_log10: -100.0,
        }
    }

    /// `build_binary -a 255 -q 8 -v trie`, DeepSpeech's and Coqui STT's scorer settings.
    pub fn deepspeech() -> Self {
        TrieOptions {
            quantize: Some(QuantBits { prob: 8, backoff: 8 }),
            pointer_bits: Some(255),
            include_vocab: false,
            unknown_log10: -100.0,
        }
    }

    /// The model type these options produce.
    pub fn model_type(&self) -> ModelType {
        ModelType::trie(self.quantize.is_some(), self.pointer_bits.is_some())
    }
}

fn refuse(detail: impl Into<String>) -> Error {
    Error::KenLmBuild { detail: detail.into() }
}

/// Write `t` as a KenLM trie binary into `out`, byte-identical to what `build_binary` writes
/// for the same ARPA with the same options. Returns the bytes written.
///
/// KenLM's own checks are kept: at least a bigram model, `<s>` and `</s>` present, no positive
/// log10 probability, finite back-offs, every context of an n-gram present as an n-gram; a
/// missing `<unk>` is added with [`TrieOptions::unknown_log10`]. Also refused: `<unk>` spelled
/// both `<unk>` and `<UNK>`, and two words with the same 64-bit hash (KenLM would build a
/// broken vocabulary). Memory: the file is built whole, next to a reversed, sorted copy of the
/// n-grams, then written.
///
/// Words are hashed and stored as their UTF-8 bytes, as KenLM does with the bytes of a UTF-8
/// ARPA file; an ARPA file in another encoding (which [`crate::arpa`] decodes as Latin-1) gets
/// other hashes, so other ids and bytes, than `build_binary` gives it.
pub fn write_trie(t: &Tables, opts: &TrieOptions, out: &mut impl std::io::Write) -> Result<u64> {
    let bytes = build(t, opts)?;
    out.write_all(&bytes).map_err(|e| Error::Io { path: "(output)".into(), source: e })?;
    Ok(bytes.len() as u64)
}

/// One order's n-grams, reversed (predicted word first) and sorted.
struct Level {
    k: usize,
    words: Vec<u32>,
    prob: Vec<f32>,
    /// Empty for the highest order.
    backoff: Vec<f32>,
}

impl Level {
    fn len(&self) -> usize {
        self.prob.len()
    }
    fn gram(&self, i: usize) -> &[u32] {
        &self.words[i * self.k..(i + 1) * self.k]
    }
}

/// A request for the back-off of one n-gram, to be added to a blank's probability.
struct Messages {
    /// Reversed context n-grams, `len` words each.
    words: Vec<u32>,
    /// (order - 1 of the blank, index among that order's blanks).
    targets: Vec<(usize, usize)>,
}

/// A log10 probability as KenLM's ARPA reader accepts it (not positive; NaN is refused too).
fn check_prob(p: f32, what: &dyn Fn() -> String) -> Result<f32> {
    if p.is_nan() || p > 0.0 {
        return Err(refuse(format!(
            "{}: log10 probability {p} (KenLM refuses positive ones unless build_binary -i)",
            what()
        )));
    }
    Ok(p)
}

/// Zero back-offs become -0 (no extension until something extends them), as KenLM reads them.
fn check_backoff(b: f32, what: &dyn Fn() -> String) -> Result<f32> {
    if !b.is_finite() {
        return Err(refuse(format!("{}: back-off {b}", what())));
    }
    Ok(if b == 0.0 { NO_EXTENSION_BACKOFF } else { b })
}

fn build(t: &Tables, opts: &TrieOptions) -> Result<Vec<u8>> {
    let order = t.order();
    if !(2..=MAX_ORDER).contains(&order) {
        return Err(refuse(format!("order {order}: KenLM's trie needs 2 to {MAX_ORDER}")));
    }
    if let Some(q) = opts.quantize
        && (!(1..=25).contains(&q.prob) || !(2..=25).contains(&q.backoff))
    {
        return Err(refuse(format!(
            "quantization to {} probability and {} back-off bits: 1 to 25 and 2 to 25 supported",
            q.prob, q.backoff
        )));
    }
    if t.vocab.len() != t.count(1) || t.backoff.len() != order - 1 || t.ids.len() != order {
        return Err(refuse("inconsistent tables (vocabulary, unigram and order counts differ)"));
    }

    // 1. KenLM ids.
    let unk_hashes = [murmur_hash64a(b"<unk>"), murmur_hash64a(b"<UNK>")];
    let mut unk: Option<usize> = None;
    let mut hashed: Vec<(u64, usize)> = Vec::with_capacity(t.vocab.len());
    for (i, w) in t.vocab.iter().enumerate() {
        let h = murmur_hash64a(w.as_bytes());
        if unk_hashes.contains(&h) {
            if unk.is_some() {
                return Err(refuse("both <unk> and <UNK> are in the vocabulary"));
            }
            unk = Some(i);
        } else {
            hashed.push((h, i));
        }
    }
    hashed.sort_unstable();
    if let Some(w) = hashed.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(refuse(format!(
            "words {:?} and {:?} have the same MurmurHash64A",
            t.vocab[w[0].1], t.vocab[w[1].1]
        )));
    }
    for marker in ["<s>", "</s>"] {
        if t.vocab.binary_search_by(|w| w.as_str().cmp(marker)).is_err() {
            return Err(refuse(format!(
                "no {marker} in the vocabulary (build_binary -s not supported)"
            )));
        }
    }
    let v = hashed.len() + 1;
    if u32::try_from(v).is_err() {
        return Err(refuse("more than 2^32 words"));
    }
    let mut ken = vec![0u32; t.vocab.len()];
    for (rank, &(_, i)) in hashed.iter().enumerate() {
        ken[i] = (rank + 1) as u32;
    }
    // Unigram weights by KenLM id. Without <unk>, record 0 stays zero while building (KenLM's
    // zero-filled file) and gets -100 at the end.
    let mut uni = vec![(0f32, EXTENSION_BACKOFF); v];
    for (i, w) in t.vocab.iter().enumerate() {
        let what = || format!("unigram {w:?}");
        uni[ken[i] as usize] =
            (check_prob(t.prob[0][i], &what)?, check_backoff(t.backoff[0][i], &what)?);
    }

    // Reversed, sorted n-grams and their contexts.
    let mut levels: Vec<Level> = Vec::with_capacity(order - 1);
    let mut contexts: Vec<Vec<u32>> = Vec::with_capacity(order - 1);
    for k in 2..=order {
        let n = t.count(k);
        let src = &t.ids[k - 1];
        if src.len() != n * k || (k < order && t.backoff[k - 1].len() != n) {
            return Err(refuse(format!("inconsistent {k}-gram tables")));
        }
        let mut rev = Vec::with_capacity(n * k);
        for g in src.chunks_exact(k) {
            for &w in g.iter().rev() {
                let w = ken.get(w as usize).ok_or_else(|| {
                    refuse(format!("{k}-gram word id {w} outside the vocabulary"))
                })?;
                rev.push(*w);
            }
        }
        let mut perm: Vec<usize> = (0..n).collect();
        perm.sort_unstable_by(|&a, &b| rev[a * k..(a + 1) * k].cmp(&rev[b * k..(b + 1) * k]));
        let mut words = Vec::with_capacity(n * k);
        let mut prob = Vec::with_capacity(n);
        let mut backoff = Vec::with_capacity(if k < order { n } else { 0 });
        for &i in &perm {
            let g = &rev[i * k..(i + 1) * k];
            if words.len() >= k && &words[words.len() - k..] == g {
                return Err(refuse(format!("duplicate {k}-gram (KenLM ids {g:?}, reversed)")));
            }
            words.extend_from_slice(g);
            let what = || format!("{k}-gram {}", i + 1);
            prob.push(check_prob(t.prob[k - 1][i], &what)?);
            if k < order {
                backoff.push(check_backoff(t.backoff[k - 1][i], &what)?);
            }
        }
        // Contexts: each n-gram's words after the predicted one, sorted and unique.
        let mut ctx: Vec<&[u32]> = words.chunks_exact(k).map(|g| &g[1..]).collect();
        ctx.sort_unstable();
        ctx.dedup();
        contexts.push(ctx.concat());
        levels.push(Level { k, words, prob, backoff });
    }

    // 2. Find the blanks and ask for their back-offs.
    let mut finder = FindBlanks {
        uni: &uni,
        counts: vec![0u64; order],
        values: vec![Vec::new(); order],
        messages: (0..order).map(|_| Messages { words: Vec::new(), targets: Vec::new() }).collect(),
    };
    walk(&levels, v, &mut finder)?;
    let FindBlanks { counts, mut values, messages, .. } = finder;

    // 3. Add the back-offs; note which requested contexts are blanks themselves.
    let mut extends: Vec<Vec<u32>> = vec![Vec::new(); order];
    for (len, m) in messages.into_iter().enumerate().skip(1).take(order.saturating_sub(2)) {
        if m.targets.is_empty() {
            continue;
        }
        let mut sorted: Vec<usize> = (0..m.targets.len()).collect();
        sorted.sort_by(|&a, &b| {
            m.words[a * len..(a + 1) * len].cmp(&m.words[b * len..(b + 1) * len])
        });
        if len == 1 {
            for &i in &sorted {
                let w = m.words[i] as usize;
                let (array, index) = m.targets[i];
                let bo = &mut uni[w].1;
                if !has_extension(*bo) {
                    *bo = EXTENSION_BACKOFF;
                }
                values[array][index] += *bo;
            }
            continue;
        }
        let level = &mut levels[len - 2];
        let (mut r, mut mi) = (0usize, 0usize);
        let mut ext = Vec::new();
        while r < level.len() && mi < sorted.len() {
            let i = sorted[mi];
            let msg = &m.words[i * len..(i + 1) * len];
            match level.gram(r).cmp(msg) {
                Ordering::Less => r += 1,
                Ordering::Greater => {
                    ext.extend_from_slice(msg);
                    mi += 1;
                }
                Ordering::Equal => {
                    let bo = &mut level.backoff[r];
                    if !has_extension(*bo) {
                        *bo = EXTENSION_BACKOFF;
                    } else {
                        let (array, index) = m.targets[i];
                        values[array][index] += *bo;
                    }
                    mi += 1;
                }
            }
        }
        extends[len] = ext;
    }

    // 4. Quantizer bins.
    let quant = opts.quantize.map(|bits| train(bits, &levels, &values));

    // 5. Lay out and write.
    let layout = Layout::trie(&counts, opts.quantize, opts.pointer_bits)?;
    let mut buf = vec![0u8; layout.end];
    // Sorted vocabulary: word count without <unk>, then the hashes.
    buf[layout.vocab..layout.vocab + 8].copy_from_slice(&((v - 1) as u64).to_le_bytes());
    for (i, (h, _)) in hashed.iter().enumerate() {
        let at = layout.vocab + 8 + 8 * i;
        buf[at..at + 8].copy_from_slice(&h.to_le_bytes());
    }
    if let (Some(q), Some(tables)) = (layout.quant, &quant) {
        let s = layout.search;
        buf[s] = layout::QUANT_VERSION;
        buf[s + 1] = q.bits.prob;
        buf[s + 2] = q.bits.backoff;
        for k in 2..=order {
            let (p, b) = &tables[k - 2];
            put_floats(&mut buf, q.prob_table(k), p);
            if k < order {
                put_floats(&mut buf, q.backoff_table(k), b);
            }
        }
    }
    // Unigram weights, marked as extending when they are bigram contexts.
    let mut ctx2 = contexts[0].iter().peekable();
    for (w, weights) in uni.iter_mut().enumerate() {
        if ctx2.peek().is_some_and(|&&c| c as usize == w) {
            set_extension(&mut weights.1);
            ctx2.next();
        }
    }
    let mut writer = WriteEntries {
        buf: &mut buf,
        layout: &layout,
        uni: &uni,
        levels: &levels,
        contexts: &contexts,
        ctx_at: vec![0; order + 1],
        quant: quant.as_deref(),
        blank_values: &values,
        blank_at: vec![0; order],
        extends: &extends,
        extend_at: vec![0; order],
        inserted: vec![0; order + 1],
        write_to: vec![1; order + 1],
        unigram_next: vec![0; v + 1],
    };
    walk(&levels, v, &mut writer)?;
    writer.unigram_next[v] = writer.inserted[2];
    // Every context must have been an n-gram of its own (KenLM's final check).
    let left = ctx2.count();
    if left > 0 {
        return Err(missing_context(2, &contexts[0], contexts[0].len() - left));
    }
    for k in 3..=order {
        let at = writer.ctx_at[k];
        let c = &contexts[k - 2];
        if at * (k - 1) < c.len() {
            return Err(missing_context(k, c, at));
        }
    }
    for k in 2..order {
        let next_end = writer.inserted[k + 1];
        writer.finish_middle(k, next_end, opts.pointer_bits.unwrap_or(0))?;
    }
    let unigram_next = std::mem::take(&mut writer.unigram_next);
    drop(writer);
    for (w, next) in unigram_next.iter().enumerate() {
        let at = layout.unigram + layout::UNIGRAM_BYTES * w;
        if let Some(&(p, b)) = uni.get(w) {
            let (p, b) = if w == 0 && unk.is_none() {
                (opts.unknown_log10, EXTENSION_BACKOFF)
            } else {
                (p, b)
            };
            buf[at..at + 4].copy_from_slice(&p.to_le_bytes());
            buf[at + 4..at + 8].copy_from_slice(&b.to_le_bytes());
        }
        buf[at + 8..at + 16].copy_from_slice(&next.to_le_bytes());
    }
    let header = Fixed {
        order,
        probing_multiplier: 1.5,
        model_type: opts.model_type(),
        has_vocabulary: opts.include_vocab,
        search_version: layout::TRIE_VERSION,
        counts: counts.clone(),
    }
    .to_bytes();
    buf[..header.len()].copy_from_slice(&header);
    if opts.include_vocab {
        buf.extend_from_slice(b"<unk>\0");
        for &(_, i) in &hashed {
            buf.extend_from_slice(t.vocab[i].as_bytes());
            buf.push(0);
        }
    }
    Ok(buf)
}

fn missing_context(k: usize, contexts: &[u32], at: usize) -> Error {
    let c = &contexts[at * (k - 1)..(at + 1) * (k - 1)];
    refuse(format!(
        "a {k}-gram has the context with reversed KenLM ids {c:?}, which is not a {}-gram of the model",
        k - 1
    ))
}

fn put_floats(buf: &mut [u8], at: usize, values: &[f32]) {
    for (i, x) in values.iter().enumerate() {
        buf[at + 4 * i..at + 4 * i + 4].copy_from_slice(&x.to_le_bytes());
    }
}

/// Bins of equal counts over sorted `values`, each centred on its members' mean
/// (`MakeBins`): the sum runs in `f64` in ascending order, divided by the count as an `f32`.
/// Empty bins repeat the previous centre (the first: -inf).
fn make_bins(values: &mut [f32], bins: usize) -> Vec<f32> {
    values.sort_unstable_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
    let mut centers = Vec::with_capacity(bins);
    let n = values.len() as u64;
    let mut start = 0usize;
    for i in 0..bins {
        let finish = (n * (i as u64 + 1) / bins as u64) as usize;
        let c = if finish == start {
            centers.last().copied().unwrap_or(f32::NEG_INFINITY)
        } else {
            let sum: f64 = values[start..finish].iter().fold(0.0, |s, &x| s + f64::from(x));
            (sum / f64::from((finish - start) as f32)) as f32
        };
        centers.push(c);
        start = finish;
    }
    centers
}

/// Per order 2..=N: probability bins and (middle orders) back-off bins, the latter led by the
/// two reserved codes for -0 and +0.
fn train(bits: QuantBits, levels: &[Level], blanks: &[Vec<f32>]) -> Vec<(Vec<f32>, Vec<f32>)> {
    let order = levels.len() + 1;
    levels
        .iter()
        .map(|l| {
            if l.k == order {
                let mut p = l.prob.clone();
                return (make_bins(&mut p, 1 << bits.prob), Vec::new());
            }
            let mut p = blanks[l.k - 1].clone();
            p.extend_from_slice(&l.prob);
            let mut b: Vec<f32> = l.backoff.iter().copied().filter(|&x| x != 0.0).collect();
            let mut bo = vec![NO_EXTENSION_BACKOFF, EXTENSION_BACKOFF];
            bo.extend(make_bins(&mut b, (1 << bits.backoff) - 2));
            (make_bins(&mut p, 1 << bits.prob), bo)
        })
        .collect()
}

/// The nearest bin at or after `reserved` (`Bins::Encode`): the first centre not below the
/// value or the one before it, whichever is closer (ties go up).
fn encode(centers: &[f32], value: f32, reserved: usize) -> u64 {
    let above = reserved + centers[reserved..].partition_point(|&c| c < value);
    let code = if above == reserved {
        reserved
    } else if above == centers.len() {
        centers.len() - 1
    } else {
        above - usize::from(value - centers[above - 1] < centers[above] - value)
    };
    code as u64
}

fn encode_backoff(centers: &[f32], value: f32) -> u64 {
    if value == 0.0 {
        return u64::from(has_extension(value));
    }
    encode(centers, value, 2)
}

/// What the two walks do at each n-gram.
trait Visitor {
    fn unigram_prob(&self, w: u32) -> f32;
    fn unigram(&mut self, w: u32);
    /// A blank of order `order`: the first `order` words of `gram` (reversed) are not an
    /// n-gram of the model; its probability comes from the `based_on`-gram's `basis`.
    fn blank(&mut self, order: usize, gram: &[u32], based_on: usize, basis: f32) -> Result<()>;
    fn middle(&mut self, k: usize, i: usize) -> Result<()>;
    fn longest(&mut self, i: usize) -> Result<()>;
}

/// Visit every n-gram in trie order (reversed n-grams ascending, a prefix before its
/// extensions), inserting blanks where a prefix is missing (`RecursiveInsert` with
/// `BlankManager::Visit`).
fn walk(levels: &[Level], vocab: usize, v: &mut dyn Visitor) -> Result<()> {
    let order = levels.len() + 1;
    let mut at = vec![0usize; order + 1];
    let mut been = [0u32; MAX_ORDER];
    let mut been_len = 0usize;
    let mut basis = [f32::INFINITY; MAX_ORDER];
    let mut unigram = 0usize;
    let mut uni_key = [0u32; 1];
    loop {
        // The smallest head among the unigram counter and each order's next record.
        let mut best: Option<(usize, &[u32])> = None;
        if unigram < vocab {
            uni_key[0] = unigram as u32;
            best = Some((1, &uni_key[..]));
        }
        for l in levels {
            if at[l.k] < l.len() {
                let g = l.gram(at[l.k]);
                if best.is_none_or(|(_, b)| g < b) {
                    best = Some((l.k, g));
                }
            }
        }
        let Some((k, gram)) = best else { break };
        let prob = if k == 1 { v.unigram_prob(gram[0]) } else { levels[k - 2].prob[at[k]] };
        // BlankManager::Visit.
        basis[k - 1] = prob;
        let overlap = (k - 1).min(been_len);
        let mut cur = 0;
        while cur < overlap && been[cur] == gram[cur] {
            cur += 1;
        }
        if cur != k - 1 {
            let mut blank = cur + 1;
            if blank == 1 {
                return Err(refuse("an n-gram's word has no unigram"));
            }
            let mut lower = blank - 2;
            while basis[lower] == f32::INFINITY {
                lower = lower
                    .checked_sub(1)
                    .ok_or_else(|| refuse("no lower-order basis for a blank"))?;
            }
            let gram_copy: Vec<u32> = gram.to_vec();
            while cur != k - 1 {
                v.blank(blank, &gram_copy, lower + 1, basis[lower])?;
                been[cur] = gram_copy[cur];
                basis[blank - 1] = f32::INFINITY;
                blank += 1;
                cur += 1;
            }
            been[cur] = gram_copy[cur];
        } else {
            been[cur] = gram[cur];
        }
        been_len = k;
        match k {
            1 => {
                v.unigram(unigram as u32);
                unigram += 1;
            }
            _ if k == order => {
                v.longest(at[k])?;
                at[k] += 1;
            }
            _ => {
                v.middle(k, at[k])?;
                at[k] += 1;
            }
        }
    }
    Ok(())
}

/// First walk: counts with blanks, and the back-off requests of each blank (`FindBlanks`,
/// `SRISucks::Send`).
struct FindBlanks<'a> {
    uni: &'a [(f32, f32)],
    counts: Vec<u64>,
    /// Per order - 1: the blanks' probabilities in walk order.
    values: Vec<Vec<f32>>,
    /// Per context length: requests.
    messages: Vec<Messages>,
}

impl Visitor for FindBlanks<'_> {
    fn unigram_prob(&self, w: u32) -> f32 {
        self.uni[w as usize].0
    }
    fn unigram(&mut self, _: u32) {
        self.counts[0] += 1;
    }
    fn blank(&mut self, order: usize, gram: &[u32], based_on: usize, basis: f32) -> Result<()> {
        let target = (order - 1, self.values[order - 1].len());
        for len in based_on..order {
            let m = &mut self.messages[len];
            m.words.extend_from_slice(&gram[1..1 + len]);
            m.targets.push(target);
        }
        self.values[order - 1].push(basis);
        self.counts[order - 1] += 1;
        Ok(())
    }
    fn middle(&mut self, k: usize, _: usize) -> Result<()> {
        self.counts[k - 1] += 1;
        Ok(())
    }
    fn longest(&mut self, _: usize) -> Result<()> {
        let n = self.counts.len();
        self.counts[n - 1] += 1;
        Ok(())
    }
}

/// Second walk: the entries (`WriteEntries`).
struct WriteEntries<'a> {
    buf: &'a mut [u8],
    layout: &'a Layout,
    uni: &'a [(f32, f32)],
    levels: &'a [Level],
    /// Per order 2..=N (index k - 2): that order's reversed contexts.
    contexts: &'a [Vec<u32>],
    /// Per order (index k): contexts of order k consumed.
    ctx_at: Vec<usize>,
    quant: Option<&'a [(Vec<f32>, Vec<f32>)]>,
    blank_values: &'a [Vec<f32>],
    blank_at: Vec<usize>,
    extends: &'a [Vec<u32>],
    extend_at: Vec<usize>,
    /// Per order (index k): entries inserted so far.
    inserted: Vec<u64>,
    /// Per middle order (index k): next offsets-array slot to fill.
    write_to: Vec<usize>,
    unigram_next: Vec<u64>,
}

impl WriteEntries<'_> {
    /// Whether the blank `gram` (`order` words) is itself a context some back-off was asked
    /// of (`BackoffMessages::Extends`).
    fn extends(&mut self, order: usize, gram: &[u32]) -> bool {
        let list = &self.extends[order];
        let at = &mut self.extend_at[order];
        loop {
            let Some(e) = list.get(*at * order..(*at + 1) * order) else { return false };
            match gram.cmp(e) {
                Ordering::Greater => *at += 1,
                Ordering::Less => return false,
                Ordering::Equal => return true,
            }
        }
    }

    /// Store a child pointer (`DontBhiksha`/`ArrayBhiksha::WriteNext`).
    fn write_next(&mut self, p: &Packed, k: usize, bit: u64, index: u64, value: u64) -> Result<()> {
        if let Some((offsets, count)) = p.offsets {
            let high = usize::try_from(value >> p.next_bits).unwrap_or(usize::MAX);
            while self.write_to[k] <= high {
                let slot = self.write_to[k];
                if slot >= count {
                    return Err(refuse("child pointer beyond the offsets array"));
                }
                let at = offsets + 8 * slot;
                self.buf[at..at + 8].copy_from_slice(&index.to_le_bytes());
                self.write_to[k] += 1;
            }
            write_bits(self.buf, bit, value & mask(p.next_bits));
        } else {
            write_bits(self.buf, bit, value);
        }
        Ok(())
    }

    /// Append an entry for `word` to middle order `k` with its values.
    fn insert_middle(&mut self, k: usize, word: u32, prob: f32, backoff: f32) -> Result<()> {
        let p = *self.layout.packed(k);
        let index = self.inserted[k];
        let mut bit = 8 * p.base as u64 + index * u64::from(p.total_bits);
        write_bits(self.buf, bit, u64::from(word));
        bit += u64::from(p.word_bits);
        match self.quant {
            None => {
                write_bits(self.buf, bit, u64::from(prob.to_bits() & !SIGN_BIT));
                write_bits(self.buf, bit + 31, u64::from(backoff.to_bits()));
            }
            Some(q) => {
                let bits = self.layout.quant.map_or(0, |q| q.bits.backoff);
                let (pt, bt) = &q[k - 2];
                let code = (encode(pt, prob, 0) << bits) | encode_backoff(bt, backoff);
                write_bits(self.buf, bit, code);
            }
        }
        let next = self.inserted[k + 1];
        self.write_next(&p, k, bit + u64::from(p.value_bits), index, next)?;
        self.inserted[k] += 1;
        Ok(())
    }

    /// `BitPackedMiddle::FinishedLoading`: the end pointer after the last entry, the offsets
    /// array's completeness and its header.
    fn finish_middle(&mut self, k: usize, next_end: u64, pointer_bits: u8) -> Result<()> {
        let p = *self.layout.packed(k);
        let index = self.inserted[k];
        let bit = 8 * p.base as u64
            + index * u64::from(p.total_bits)
            + u64::from(p.total_bits - p.next_bits);
        self.write_next(&p, k, bit, index, next_end)?;
        if let Some((_, count)) = p.offsets {
            if self.write_to[k] != count {
                return Err(refuse("the offsets array did not fill (inconsistent counts)"));
            }
            self.buf[p.start] = layout::BHIKSHA_VERSION;
            self.buf[p.start + 1] = pointer_bits;
        }
        Ok(())
    }
}

impl Visitor for WriteEntries<'_> {
    fn unigram_prob(&self, w: u32) -> f32 {
        self.uni[w as usize].0
    }

    fn unigram(&mut self, w: u32) {
        self.unigram_next[w as usize] = self.inserted[2];
    }

    fn blank(&mut self, order: usize, gram: &[u32], _: usize, _: f32) -> Result<()> {
        let at = self.blank_at[order - 1];
        let prob = *self.blank_values[order - 1]
            .get(at)
            .ok_or_else(|| refuse("more blanks on the second walk than the first"))?;
        self.blank_at[order - 1] += 1;
        let total = self.levels.len() + 1;
        let backoff = if order != total - 1 && self.extends(order, &gram[..order]) {
            EXTENSION_BACKOFF
        } else {
            NO_EXTENSION_BACKOFF
        };
        self.insert_middle(order, gram[order - 1], prob, backoff)
    }

    fn middle(&mut self, k: usize, i: usize) -> Result<()> {
        let l = &self.levels[k - 2];
        let gram = l.gram(i);
        let (prob, mut backoff) = (l.prob[i], l.backoff[i]);
        // Contexts of order k + 1 are k-grams; one that is this n-gram makes it extend.
        let ctx = &self.contexts[k - 1];
        let at = self.ctx_at[k + 1];
        if ctx.get(at * k..(at + 1) * k) == Some(gram) {
            set_extension(&mut backoff);
            self.ctx_at[k + 1] += 1;
        }
        let word = gram[k - 1];
        self.insert_middle(k, word, prob, backoff)
    }

    fn longest(&mut self, i: usize) -> Result<()> {
        let k = self.levels.len() + 1;
        let l = &self.levels[k - 2];
        let p = self.layout.longest;
        let index = self.inserted[k];
        let mut bit = 8 * p.base as u64 + index * u64::from(p.total_bits);
        write_bits(self.buf, bit, u64::from(l.gram(i)[k - 1]));
        bit += u64::from(p.word_bits);
        let prob = l.prob[i];
        match self.quant {
            None => write_bits(self.buf, bit, u64::from(prob.to_bits() & !SIGN_BIT)),
            Some(q) => write_bits(self.buf, bit, encode(&q[k - 2].0, prob, 0)),
        }
        self.inserted[k] += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_average_equal_counts_in_f64() {
        let mut v = vec![-3.0f32, -1.0, -2.0, -4.0];
        assert_eq!(make_bins(&mut v, 2), vec![-3.5, -1.5]);
        let mut few = vec![-1.0f32];
        assert_eq!(make_bins(&mut few, 3), vec![f32::NEG_INFINITY, f32::NEG_INFINITY, -1.0]);
    }

    #[test]
    fn encoding_picks_the_nearer_centre() {
        let c = [-3.0f32, -2.0, -1.0];
        assert_eq!(encode(&c, -2.4, 0), 1);
        assert_eq!(encode(&c, -2.6, 0), 0);
        assert_eq!(encode(&c, -5.0, 0), 0);
        assert_eq!(encode(&c, 0.5, 0), 2);
        let b = [-0.0f32, 0.0, -0.5, 0.5];
        assert_eq!(encode_backoff(&b, -0.0), 0);
        assert_eq!(encode_backoff(&b, 0.0), 1);
        assert_eq!(encode_backoff(&b, -0.7), 2);
        assert_eq!(encode_backoff(&b, 0.2), 3);
    }
}
