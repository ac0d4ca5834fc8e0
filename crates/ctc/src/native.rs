//! The decoder of DeepSpeech's native client (`native_client/ctcdecode`, v0.9.3), reproduced
//! step for step so that a DeepSpeech or Coqui STT model gives, through Harken, the transcript
//! the official client gives.
//!
//! Harken's own [`crate::BeamSearch`] is a different search (its pruning, LM state and hot
//! words are its own), so it cannot promise identical output; this module can. What it keeps
//! from the original, because each one changes results:
//! - a prefix tree whose nodes survive pruning while they have children (`exists = false`) and
//!   are revived with their probabilities reset; children kept in insertion order, visited
//!   children-first when the beam is collected;
//! - all arithmetic in `f32` except the per-frame probabilities (`f64`), and
//!   `ln(p + f32::MIN_POSITIVE)` as the log-probability of a class; `log_sum_exp` with
//!   `-f32::MAX` standing for minus infinity;
//! - beam expansion delayed until a frame's blank probability drops below 0.999;
//! - the cut-off: with `cutoff_prob < 1`, classes sorted by probability and cut at the
//!   cumulative probability or `cutoff_top_n`; with `cutoff_prob = 1` (the client's value) all
//!   classes;
//! - the beam kept as the `beam_width` best prefixes by score, ties broken by the smaller
//!   character (prefixes are ranked before their nodes are made: see [`NativeDecoder::next`]);
//! - timesteps recorded in a shared tree, as the client reports them for word timings.
//!
//! With a [`LmScorer`] (a `.scorer` package), also as the client: the vocabulary FST gates new
//! characters (a node keeps its FST state; after a complete word the state returns to the
//! start), the LM is asked at each scoring boundary (a space in alphabet mode, a complete code
//! point in UTF-8 mode) for the last word given up to `order − 1` before it, from `<s>` when
//! fewer words precede, `α·(ln P + hot boosts) + β` is added, and a frame's prefixes are cut
//! where `ln p(c) + score` falls below the `beam_width`-th score `+ ln p(blank) − max(0, β)`.
//! At the end, an unfinished last word is scored too before ranking.
//!
//! Results do not depend on the order prefixes are visited in (each node gets at most two
//! contributions a frame, and the cut-off is monotone in the score), so the
//! implementation-defined orders of `std::nth_element` and `std::partial_sort` do not matter.

use std::sync::Arc;

use crate::scorer::LmScorer;

/// Minus infinity as the original writes it.
const NEG_INF: f32 = -f32::MAX;
const ROOT: i32 = -1;

/// `ln(eˣ + eʸ)` as `decoder_utils.h` computes it.
fn log_sum_exp(x: f32, y: f32) -> f32 {
    if x <= NEG_INF {
        return y;
    }
    if y <= NEG_INF {
        return x;
    }
    let m = x.max(y);
    ((x - m).exp() + (y - m).exp()).ln() + m
}

/// Search settings; [`NativeOptions::client`] gives the client's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NativeOptions {
    /// Prefixes kept per frame.
    pub beam_width: usize,
    /// Cumulative-probability cut-off of the classes tried per frame (1.0: none).
    pub cutoff_prob: f64,
    /// With `cutoff_prob < 1`, at most this many classes per frame.
    pub cutoff_top_n: usize,
}

impl NativeOptions {
    /// The values `DS_CreateStream` uses, with the model's (or the caller's) beam width.
    pub fn client(beam_width: usize) -> Self {
        NativeOptions { beam_width: beam_width.max(1), cutoff_prob: 1.0, cutoff_top_n: 40 }
    }
}

/// One result: labels, the frame each was emitted at, and the score.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeOutput {
    /// Alphabet labels (no blanks).
    pub tokens: Vec<u32>,
    /// The frame of each label.
    pub timesteps: Vec<u32>,
    /// The prefix's log-probability (the client's `confidence`).
    pub confidence: f32,
}

#[derive(Debug, Clone)]
struct Node {
    character: i32,
    parent: Option<usize>,
    children: Vec<(u32, usize)>,
    log_prob_b_prev: f32,
    log_prob_nb_prev: f32,
    log_prob_b_cur: f32,
    log_prob_nb_cur: f32,
    score: f32,
    exists: bool,
    /// Index into the timestep tree.
    timesteps: usize,
    /// State in the scorer's vocabulary FST.
    dict_state: u32,
    /// Alphabet mode: the LM score this prefix gets when a space follows (computed once).
    space_score: Option<f32>,
    previous_timesteps: Option<usize>,
    new_timestep: u32,
}

impl Node {
    fn new(character: i32, parent: Option<usize>) -> Self {
        Node {
            character,
            parent,
            children: Vec::new(),
            log_prob_b_prev: NEG_INF,
            log_prob_nb_prev: NEG_INF,
            log_prob_b_cur: NEG_INF,
            log_prob_nb_cur: NEG_INF,
            score: NEG_INF,
            exists: true,
            timesteps: 0,
            previous_timesteps: None,
            new_timestep: 0,
            dict_state: 0,
            space_score: None,
        }
    }
}

/// A node of the timestep tree: its frame and its parent (the root holds no frame).
#[derive(Debug, Clone)]
struct Step {
    frame: u32,
    parent: usize,
    children: Vec<usize>,
}

/// A child that would be created this frame: its parent, label, score and the parent's
/// timestep node.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    parent: usize,
    character: u32,
    score: f32,
    steps: usize,
    dict_state: u32,
}

/// The decoder state of one stream: feed it frames with [`NativeDecoder::next`], read the
/// best transcripts at any time with [`NativeDecoder::decode`].
#[derive(Debug, Clone)]
pub struct NativeDecoder {
    opts: NativeOptions,
    blank: usize,
    nodes: Vec<Node>,
    free: Vec<usize>,
    prefixes: Vec<usize>,
    steps: Vec<Step>,
    abs_time: u32,
    start_expanding: bool,
    scorer: Option<Arc<LmScorer>>,
}

impl NativeDecoder {
    /// A decoder for an alphabet of `labels` symbols (the blank is class `labels`).
    pub fn new(labels: usize, opts: NativeOptions) -> Self {
        let mut root = Node::new(ROOT, None);
        root.score = 0.0;
        root.log_prob_b_prev = 0.0;
        NativeDecoder {
            opts: NativeOptions { beam_width: opts.beam_width.max(1), ..opts },
            blank: labels,
            nodes: vec![root],
            free: Vec::new(),
            prefixes: vec![0],
            steps: vec![Step { frame: 0, parent: 0, children: Vec::new() }],
            abs_time: 0,
            start_expanding: false,
            scorer: None,
        }
    }

    /// A decoder with an external scorer (`DS_EnableExternalScorer`); the alphabet is the
    /// scorer's.
    pub fn with_scorer(labels: usize, opts: NativeOptions, scorer: Arc<LmScorer>) -> Self {
        let mut d = Self::new(labels, opts);
        if let Some(s) = scorer.fst().start() {
            d.nodes[0].dict_state = s;
        }
        d.scorer = Some(scorer);
        d
    }

    /// The external scorer, if any.
    pub fn scorer(&self) -> Option<&LmScorer> {
        self.scorer.as_deref()
    }

    fn alloc(&mut self, node: Node) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.nodes[i] = node;
                i
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        }
    }

    /// The child of `p` for `c`, created or revived (`PathTrie::get_path_trie`).
    fn child(&mut self, p: usize, c: u32, dict_state: u32) -> usize {
        if let Some(&(_, ch)) = self.nodes[p].children.iter().find(|(k, _)| *k == c) {
            let n = &mut self.nodes[ch];
            if !n.exists {
                n.exists = true;
                n.log_prob_b_prev = NEG_INF;
                n.log_prob_nb_prev = NEG_INF;
                n.log_prob_b_cur = NEG_INF;
                n.log_prob_nb_cur = NEG_INF;
            }
            return ch;
        }
        let mut node = Node::new(c as i32, Some(p));
        node.dict_state = dict_state;
        let ch = self.alloc(node);
        self.nodes[p].children.push((c, ch));
        ch
    }

    /// `PathTrie::remove`: drop a node from the beam, and from the tree when it has no
    /// children, then any ancestors left childless and out of the beam.
    fn remove(&mut self, mut i: usize) {
        self.nodes[i].exists = false;
        loop {
            if !self.nodes[i].children.is_empty() {
                return;
            }
            let Some(p) = self.nodes[i].parent else { return };
            let c = self.nodes[i].character as u32;
            let kids = &mut self.nodes[p].children;
            if let Some(pos) = kids.iter().position(|(k, _)| *k == c) {
                kids.remove(pos);
            }
            self.free.push(i);
            if self.nodes[p].children.is_empty() && !self.nodes[p].exists {
                i = p;
            } else {
                return;
            }
        }
    }

    fn add_step(&mut self, parent: usize, frame: u32) -> usize {
        self.steps.push(Step { frame, parent, children: Vec::new() });
        let i = self.steps.len() - 1;
        self.steps[parent].children.push(i);
        i
    }

    /// Log-probabilities of the classes to try at one frame (`get_pruned_log_probs`).
    fn pruned(&self, probs: &[f64]) -> Vec<(usize, f32)> {
        let mut idx: Vec<(usize, f64)> = probs.iter().copied().enumerate().collect();
        let mut len = idx.len();
        if self.opts.cutoff_prob < 1.0 || self.opts.cutoff_top_n < len {
            idx.sort_by(|a, b| b.1.total_cmp(&a.1));
            if self.opts.cutoff_prob < 1.0 {
                let mut cum = 0.0;
                len = 0;
                for &(_, p) in &idx {
                    cum += p;
                    len += 1;
                    if cum >= self.opts.cutoff_prob || len >= self.opts.cutoff_top_n {
                        break;
                    }
                }
            }
        }
        let floor = f64::from(f32::MIN_POSITIVE);
        idx[..len].iter().map(|&(i, p)| (i, (p + floor).ln() as f32)).collect()
    }

    /// Feed `frames` frames of `classes` probabilities each (softmax outputs, blank last).
    ///
    /// The client creates a node for every (prefix, class) pair — 20,000 per frame at its
    /// default beam of 500 — and then keeps the best `beam_width`. Here a pair whose child is
    /// not in the beam is first a candidate: such a child's score after the frame is exactly
    /// the one contribution it gets (`ln p(c) + ` the parent's score), so candidates and beam
    /// members are ranked together and only the winners become nodes. Same beam, same scores,
    /// a fortieth of the allocation, lookup and traversal.
    pub fn next(&mut self, probs: &[f64], classes: usize) {
        let frames = probs.len() / classes.max(1);
        let mut candidates: Vec<Candidate> = Vec::new();
        let scorer = self.scorer.clone();
        for t in 0..frames {
            let prob = &probs[t * classes..(t + 1) * classes];
            if prob.get(self.blank).is_some_and(|&b| b < 0.999) {
                self.start_expanding = true;
            }
            if !self.start_expanding {
                self.abs_time += 1;
                continue;
            }
            let now = self.abs_time;
            candidates.clear();
            let n_prefixes = self.prefixes.len().min(self.opts.beam_width);
            // The client's cut-off with a scorer: prefixes sorted by score, the worst kept one
            // sets the bar (computed in f64, stored as f32, as the original).
            let (min_cutoff, full_beam) = match &scorer {
                Some(sc) if n_prefixes > 0 => {
                    let worst = self.prefixes[..n_prefixes]
                        .iter()
                        .map(|&p| self.nodes[p].score)
                        .fold(f32::INFINITY, f32::min);
                    let blank = prob.get(self.blank).copied().unwrap_or(0.0);
                    let cut = f64::from(worst) + blank.ln() - sc.beta().max(0.0);
                    (cut as f32, n_prefixes == self.opts.beam_width)
                }
                _ => (NEG_INF, false),
            };
            for (c, log_prob_c) in self.pruned(prob) {
                for i in 0..n_prefixes {
                    let p = self.prefixes[i];
                    let (score, character, b_prev, nb_prev, p_steps) = {
                        let n = &self.nodes[p];
                        (n.score, n.character, n.log_prob_b_prev, n.log_prob_nb_prev, n.timesteps)
                    };
                    if full_beam && log_prob_c + score < min_cutoff {
                        continue;
                    }
                    if score == NEG_INF {
                        continue;
                    }
                    if c == self.blank {
                        let log_p = log_prob_c + score;
                        let n = &mut self.nodes[p];
                        if n.log_prob_nb_cur < log_p {
                            n.previous_timesteps = None;
                        }
                        n.log_prob_b_cur = log_sum_exp(n.log_prob_b_cur, log_p);
                        continue;
                    }
                    if c as i32 == character {
                        let log_p = log_prob_c + nb_prev;
                        let n = &mut self.nodes[p];
                        if n.log_prob_nb_cur < log_p {
                            n.previous_timesteps = None;
                        }
                        n.log_prob_nb_cur = log_sum_exp(n.log_prob_nb_cur, log_p);
                    }
                    let existing = self.nodes[p].children.iter().find(|(k, _)| *k == c as u32);
                    let existing = existing.map(|&(_, ch)| ch);
                    // A new child must continue a vocabulary word.
                    let mut dict_state = 0;
                    if existing.is_none()
                        && let Some(sc) = &scorer
                    {
                        let fst = sc.fst();
                        let state = self.nodes[p].dict_state;
                        match fst.find(state, c as u32 + 1) {
                            Some(next) => {
                                dict_state = match fst.start() {
                                    Some(start) if fst.is_final(next) => start,
                                    _ => next,
                                };
                            }
                            None => {
                                if fst.is_final(state)
                                    && let Some(start) = fst.start()
                                {
                                    self.nodes[p].dict_state = start;
                                }
                                continue;
                            }
                        }
                    }
                    let mut log_p = if c as i32 == character && b_prev > NEG_INF {
                        log_prob_c + b_prev
                    } else if c as i32 != character {
                        log_prob_c + score
                    } else {
                        NEG_INF
                    };
                    if let Some(sc) = &scorer
                        && let Some(lm) = self.lm_score(sc, p, c as u32)
                    {
                        log_p += lm;
                        log_p = (f64::from(log_p) + sc.beta()) as f32;
                    }
                    match existing.filter(|&x| self.nodes[x].exists) {
                        Some(x) => {
                            let n = &mut self.nodes[x];
                            if n.log_prob_nb_cur < log_p {
                                n.previous_timesteps = Some(p_steps);
                                n.new_timestep = now;
                            }
                            n.log_prob_nb_cur = log_sum_exp(n.log_prob_nb_cur, log_p);
                        }
                        None => candidates.push(Candidate {
                            parent: p,
                            character: c as u32,
                            score: log_p,
                            steps: p_steps,
                            dict_state,
                        }),
                    }
                }
            }
            self.select(&candidates, now);
            self.abs_time += 1;
        }
    }

    /// The LM score (before β) the client adds when prefix `p` is extended by `c`, or `None`
    /// when that is not a scoring boundary. Alphabet mode scores the word before a space,
    /// remembered per node; UTF-8 mode scores the code point `c` completes.
    fn lm_score(&mut self, sc: &LmScorer, p: usize, c: u32) -> Option<f32> {
        if !sc.utf8() {
            if Some(c) != sc.space() {
                return None;
            }
            if let Some(s) = self.nodes[p].space_score {
                return Some(s);
            }
            let s = sc.boundary_score(&self.ngram(sc, p, None));
            self.nodes[p].space_score = Some(s);
            return Some(s);
        }
        if !self.codepoint_complete(sc, p, c) {
            return None;
        }
        Some(sc.boundary_score(&self.ngram(sc, p, Some(c))))
    }

    /// Labels of the path ending at `p` (then `extra`), newest first, the root excluded.
    fn path_back(&self, p: usize, extra: Option<u32>) -> impl Iterator<Item = u32> + '_ {
        let mut cur = Some(p);
        extra.into_iter().chain(std::iter::from_fn(move || {
            let n = &self.nodes[cur?];
            if n.character == ROOT {
                return None;
            }
            cur = n.parent;
            Some(n.character as u32)
        }))
    }

    /// UTF-8 mode `is_scoring_boundary` for the prefix `p` + `c`: the bytes since the last
    /// code-point start are as many as that start byte announces.
    fn codepoint_complete(&self, sc: &LmScorer, p: usize, c: u32) -> bool {
        let mut dist = 0usize;
        let mut first = None;
        for l in self.path_back(p, Some(c)) {
            dist += 1;
            let b = sc.label_bytes(l).first().copied().unwrap_or(0);
            if b & 0xC0 != 0x80 {
                first = Some(b);
                break;
            }
        }
        let Some(b) = first else { return false };
        let needed = if b >> 3 == 0x1E {
            4
        } else if b >> 4 == 0x0E {
            3
        } else if b >> 5 == 0x06 {
            2
        } else if b >> 7 == 0 {
            1
        } else {
            return false;
        };
        dist == needed
    }

    /// `Scorer::make_ngram`: the last `order` words (alphabet mode: split at spaces; UTF-8
    /// mode: code points) of the prefix `p` (+ `extra`), oldest first.
    fn ngram(&self, sc: &LmScorer, p: usize, extra: Option<u32>) -> Vec<Vec<u8>> {
        let order = sc.max_order();
        let utf8 = sc.utf8();
        let space = sc.space();
        let mut words: Vec<Vec<u8>> = Vec::new();
        let mut word: Vec<u32> = Vec::new();
        let mut labels = self.path_back(p, extra).peekable();
        while words.len() < order && labels.peek().is_some() {
            word.clear();
            // One word back: alphabet mode stops at a space (the space itself ends the
            // previous word's walk), UTF-8 mode at a code-point start byte.
            for l in labels.by_ref() {
                if utf8 {
                    word.push(l);
                    if sc.label_bytes(l).first().is_some_and(|b| b & 0xC0 != 0x80) {
                        break;
                    }
                } else {
                    if Some(l) == space {
                        break;
                    }
                    word.push(l);
                }
            }
            let bytes: Vec<u8> = word.iter().rev().flat_map(|&l| sc.label_bytes(l)).collect();
            words.push(bytes);
        }
        words.reverse();
        words
    }

    /// End of a frame: rank the beam's prefixes (their new scores) with the candidates, keep
    /// the best `beam_width`, make nodes for the winning candidates and drop the losing
    /// prefixes — the tree and beam the client has after its `iterate_to_vec` and
    /// `nth_element`.
    fn select(&mut self, candidates: &[Candidate], now: u32) {
        let width = self.opts.beam_width;
        let old: Vec<usize> = std::mem::take(&mut self.prefixes);
        // (score, character, index into old or candidates + old.len())
        let mut ranked: Vec<(f32, i32, usize)> = Vec::with_capacity(old.len() + candidates.len());
        for (k, &p) in old.iter().enumerate() {
            let n = &self.nodes[p];
            ranked.push((log_sum_exp(n.log_prob_b_cur, n.log_prob_nb_cur), n.character, k));
        }
        for (k, c) in candidates.iter().enumerate() {
            ranked.push((c.score, c.character as i32, old.len() + k));
        }
        let by_rank =
            |a: &(f32, i32, usize), b: &(f32, i32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if ranked.len() > width {
            ranked.select_nth_unstable_by(width, by_rank);
            ranked.truncate(width);
        }
        let mut keep_old = vec![false; old.len()];
        for &(_, _, k) in &ranked {
            if k < old.len() {
                keep_old[k] = true;
            }
        }
        let mut next = Vec::with_capacity(ranked.len());
        for (k, &p) in old.iter().enumerate() {
            if keep_old[k] {
                self.roll_over(p);
                next.push(p);
            }
        }
        for &(_, _, k) in &ranked {
            let Some(c) = k.checked_sub(old.len()).map(|k| &candidates[k]) else { continue };
            let x = self.child(c.parent, c.character, c.dict_state);
            let n = &mut self.nodes[x];
            if n.log_prob_nb_cur < c.score {
                n.previous_timesteps = Some(c.steps);
                n.new_timestep = now;
            }
            n.log_prob_nb_cur = log_sum_exp(n.log_prob_nb_cur, c.score);
            self.roll_over(x);
            next.push(x);
        }
        for (k, &p) in old.iter().enumerate() {
            if !keep_old[k] {
                self.remove(p);
            }
        }
        self.prefixes = next;
    }

    /// A kept node's end of frame: current probabilities become previous, the score is
    /// recomputed and a pending timestep is recorded (`iterate_to_vec` for one node).
    fn roll_over(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        n.log_prob_b_prev = n.log_prob_b_cur;
        n.log_prob_nb_prev = n.log_prob_nb_cur;
        n.log_prob_b_cur = NEG_INF;
        n.log_prob_nb_cur = NEG_INF;
        n.score = log_sum_exp(n.log_prob_b_prev, n.log_prob_nb_prev);
        if let Some(prev) = n.previous_timesteps.take() {
            let frame = n.new_timestep;
            let found =
                self.steps[prev].children.iter().copied().find(|&s| self.steps[s].frame == frame);
            let ts = match found {
                Some(s) => s,
                None => self.add_step(prev, frame),
            };
            self.nodes[node].timesteps = ts;
        }
    }

    /// The `num_results` best transcripts so far (`DecoderState::decode`): with a scorer,
    /// a prefix that does not end at a boundary gets its last (unfinished) word scored first.
    pub fn decode(&self, num_results: usize) -> Vec<NativeOutput> {
        let nodes = &self.nodes;
        let mut best: Vec<(f32, usize)> =
            self.prefixes.iter().map(|&p| (nodes[p].score, p)).collect();
        if let Some(sc) = &self.scorer {
            for (score, p) in best.iter_mut().take(self.opts.beam_width) {
                let n = &nodes[*p];
                let at_boundary = if sc.utf8() {
                    n.character == ROOT
                        || n.parent
                            .is_some_and(|q| self.codepoint_complete(sc, q, n.character as u32))
                } else {
                    n.parent.is_none() || Some(n.character as u32) == sc.space()
                };
                if !at_boundary || (sc.utf8() && n.character == ROOT) {
                    *score += sc.final_score(&self.ngram(sc, *p, None));
                }
            }
        }
        best.sort_by(|a, b| {
            b.0.total_cmp(&a.0).then(nodes[a.1].character.cmp(&nodes[b.1].character))
        });
        best.into_iter()
            .take(num_results.max(1))
            .map(|(score, p)| {
                let mut tokens = Vec::new();
                let mut cur = Some(p);
                while let Some(i) = cur {
                    if nodes[i].character != ROOT {
                        tokens.push(nodes[i].character as u32);
                    }
                    cur = nodes[i].parent;
                }
                tokens.reverse();
                let mut timesteps = Vec::new();
                let mut s = nodes[p].timesteps;
                while s != 0 {
                    timesteps.push(self.steps[s].frame);
                    s = self.steps[s].parent;
                }
                timesteps.reverse();
                NativeOutput { tokens, timesteps, confidence: score }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames of a 3-symbol alphabet (blank = 3).
    fn frames(rows: &[[f64; 4]]) -> Vec<f64> {
        rows.iter().flatten().copied().collect()
    }

    #[test]
    fn decodes_a_clear_sequence_with_repeats_and_blanks() {
        let p = frames(&[
            [0.0, 0.0, 0.0, 1.0],
            [0.9, 0.05, 0.0, 0.05],
            [0.9, 0.05, 0.0, 0.05],
            [0.0, 0.0, 0.0, 1.0],
            [0.9, 0.05, 0.0, 0.05],
            [0.05, 0.0, 0.9, 0.05],
        ]);
        let mut d = NativeDecoder::new(3, NativeOptions::client(8));
        d.next(&p, 4);
        let out = d.decode(1);
        assert_eq!(out[0].tokens, [0, 0, 2]);
        assert_eq!(out[0].timesteps, [1, 4, 5]);
    }

    #[test]
    fn feeding_in_pieces_equals_feeding_at_once() {
        let p: Vec<f64> = (0..40 * 4)
            .map(|i| (i as f64 * 0.37).sin().abs() + 0.01)
            .collect::<Vec<_>>()
            .chunks(4)
            .flat_map(|r| {
                let s: f64 = r.iter().sum();
                r.iter().map(move |v| v / s).collect::<Vec<_>>()
            })
            .collect();
        let mut a = NativeDecoder::new(3, NativeOptions::client(5));
        a.next(&p, 4);
        let mut b = NativeDecoder::new(3, NativeOptions::client(5));
        for chunk in p.chunks(4 * 7) {
            b.next(chunk, 4);
        }
        assert_eq!(a.decode(3), b.decode(3));
        assert!(!a.decode(1)[0].tokens.is_empty());
    }

    #[test]
    fn nothing_but_blank_gives_nothing() {
        let p = frames(&[[0.0, 0.0, 0.0, 1.0]; 5]);
        let mut d = NativeDecoder::new(3, NativeOptions::client(4));
        d.next(&p, 4);
        assert!(d.decode(1)[0].tokens.is_empty());
    }
}
