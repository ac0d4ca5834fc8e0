//! CTC prefix beam search with n-gram shallow fusion, a vocabulary trie and hot words.
//!
//! Every distinct prefix is a node of an arena; what depends only on the prefix (its LM score
//! so far, LM state, position in the vocabulary and hot-word tries) is computed once when the
//! node is created, so a word is scored by the LM once however many beams reach it. Beams carry
//! only the prefix and its blank / non-blank log-probabilities (Hannun et al., 2014).

use std::collections::HashMap;

use crate::{Alphabet, Hypothesis, Posteriors, Token, VocabTrie, words_of};

const LN_10: f64 = std::f64::consts::LN_10;

/// Language-model fusion weights.
#[derive(Debug, Clone, Copy)]
pub struct LmFusion<'a> {
    /// The n-gram model.
    pub model: &'a harken_lm::Model,
    /// Weight of the LM's log-probability (natural-log scale: `α·ln 10·log10 P`).
    pub alpha: f32,
    /// Bonus per word (counters the LM's preference for short outputs).
    pub beta: f32,
    /// log10 probability charged for a word the LM does not know (reachable without a trie).
    pub unk_log10: f32,
}

/// Words to favour, with a weight in natural-log units.
#[derive(Debug, Clone)]
pub struct Hotwords {
    trie: VocabTrie,
    /// Shortest hot word below each node (for the prefix bonus).
    shortest: Vec<u16>,
    weight: f32,
}

impl Hotwords {
    /// Hot words over `alphabet` (normalised with [`Alphabet::normalize`]; phrases are split
    /// into words) with one `weight`. Returns the set and how many words were unusable.
    pub fn new(alphabet: &Alphabet, words: &[String], weight: f32) -> (Self, usize) {
        let norm: Vec<String> = words
            .iter()
            .flat_map(|w| alphabet.normalize(w).split(' ').map(str::to_owned).collect::<Vec<_>>())
            .filter(|w| !w.is_empty())
            .collect();
        let (trie, skipped) = VocabTrie::from_words(alphabet, norm.iter().map(String::as_str));
        let mut shortest = vec![u16::MAX; trie.nodes()];
        // Children come after parents (breadth-first), so one reverse pass settles every node.
        let depth = {
            let mut d = vec![0u16; trie.nodes()];
            for n in 0..trie.nodes() as u32 {
                for c in trie.children(n) {
                    d[c as usize] = d[n as usize].saturating_add(1);
                }
            }
            d
        };
        for n in (0..trie.nodes() as u32).rev() {
            let mut best = if trie.is_word(n) { depth[n as usize] } else { u16::MAX };
            for c in trie.children(n) {
                best = best.min(shortest[c as usize]);
            }
            shortest[n as usize] = best;
        }
        (Hotwords { trie, shortest, weight }, skipped)
    }

    /// Number of distinct hot words.
    pub fn len(&self) -> usize {
        self.trie.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.trie.is_empty()
    }

    /// Bonus for a partial word of `len` symbols at hot-word trie node `node`: the weight in
    /// proportion to how much of the shortest matching hot word is already spelled.
    fn prefix_bonus(&self, node: u32, len: u32) -> f64 {
        let full = self.shortest.get(node as usize).copied().unwrap_or(u16::MAX);
        if len == 0 || full == u16::MAX {
            return 0.0;
        }
        f64::from(self.weight) * f64::from(len) / f64::from(full.max(1))
    }
}

/// Search limits.
#[derive(Debug, Clone, Copy)]
pub struct BeamOptions {
    /// Prefixes kept after each frame.
    pub beam_width: usize,
    /// Prefixes scoring more than this (natural log) below the best are dropped.
    pub beam_threshold: f64,
    /// Symbols with a log-probability below this in a frame are not expanded.
    pub token_min_logp: f32,
    /// Hypotheses returned.
    pub nbest: usize,
}

impl Default for BeamOptions {
    fn default() -> Self {
        BeamOptions { beam_width: 32, beam_threshold: 25.0, token_min_logp: -10.0, nbest: 1 }
    }
}

/// A configured decoder; cheap to build per request.
#[derive(Debug, Clone)]
pub struct BeamSearch<'a> {
    /// Output symbols.
    pub alphabet: &'a Alphabet,
    /// Shallow fusion, when enabled.
    pub lm: Option<LmFusion<'a>>,
    /// Restrict words to this vocabulary (hot words are always allowed).
    pub trie: Option<&'a VocabTrie>,
    /// Words to boost.
    pub hotwords: Option<&'a Hotwords>,
    /// Limits.
    pub options: BeamOptions,
}

#[derive(Debug, Clone)]
struct Prefix {
    parent: u32,
    symbol: u32,
    frame: usize,
    /// Weighted LM score and bonuses of the completed words.
    lm: f64,
    lm_state: Option<harken_lm::State>,
    vocab: Option<u32>,
    hot: Option<u32>,
    partial_len: u32,
}

#[derive(Debug, Clone, Copy)]
struct Beam {
    prefix: u32,
    p_b: f64,
    p_nb: f64,
}

fn lse(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let m = a.max(b);
    m + ((a - m).exp() + (b - m).exp()).ln()
}

struct Search<'s, 'a> {
    cfg: &'s BeamSearch<'a>,
    arena: Vec<Prefix>,
    children: HashMap<(u32, u32), Option<u32>>,
}

impl Search<'_, '_> {
    /// The symbols of the partial word ending at `prefix`.
    fn partial_word(&self, prefix: u32) -> String {
        let mut syms = Vec::new();
        let mut at = prefix;
        for _ in 0..self.arena[prefix as usize].partial_len {
            syms.push(self.arena[at as usize].symbol);
            at = self.arena[at as usize].parent;
        }
        syms.reverse();
        self.cfg.alphabet.decode(&syms)
    }

    /// LM score (weighted, natural log) of closing the partial word at `p`, and the next state.
    fn close_word(&self, p: &Prefix, word: &str, hot: bool) -> (f64, Option<harken_lm::State>) {
        let Some(lm) = &self.cfg.lm else { return (0.0, None) };
        let state = p.lm_state.unwrap_or_else(|| lm.model.begin_sentence());
        let (log10, next) = match lm.model.vocab_id(word) {
            Some(id) => {
                let (l, s, _) = lm.model.score_id(&state, Some(id));
                (f64::from(l), s)
            }
            // A hot word is wanted even when the LM has never seen it: charge it as a rare
            // word rather than as noise.
            None if hot => (-5.0, lm.model.null_state()),
            None => (f64::from(lm.unk_log10), lm.model.null_state()),
        };
        (f64::from(lm.alpha) * LN_10 * log10 + f64::from(lm.beta), Some(next))
    }

    /// The prefix `parent + symbol`, created on first use; `None` when the trie forbids it.
    fn child(&mut self, parent: u32, symbol: u32, frame: usize) -> Option<u32> {
        if let Some(&c) = self.children.get(&(parent, symbol)) {
            return c;
        }
        let p = self.arena[parent as usize].clone();
        let is_space = Some(symbol) == self.cfg.alphabet.space();
        let made = if is_space {
            let hot_word = match (self.cfg.hotwords, p.hot) {
                (Some(h), Some(n)) => h.trie.is_word(n),
                _ => false,
            };
            let known = match (self.cfg.trie, p.vocab) {
                (Some(t), Some(n)) => t.is_word(n),
                (Some(_), None) => false,
                (None, _) => true,
            };
            if !known && !hot_word {
                None
            } else {
                let word = self.partial_word(parent);
                let (lm, state) = self.close_word(&p, &word, hot_word);
                let bonus = if hot_word {
                    self.cfg.hotwords.map_or(0.0, |h| f64::from(h.weight))
                } else {
                    0.0
                };
                Some(Prefix {
                    parent,
                    symbol,
                    frame,
                    lm: p.lm + lm + bonus,
                    lm_state: state,
                    vocab: self.cfg.trie.map(|_| VocabTrie::ROOT),
                    hot: self.cfg.hotwords.map(|_| VocabTrie::ROOT),
                    partial_len: 0,
                })
            }
        } else {
            let vocab = match (self.cfg.trie, p.vocab) {
                (Some(t), Some(n)) => t.child(n, symbol),
                _ => None,
            };
            let hot = match (self.cfg.hotwords, p.hot) {
                (Some(h), Some(n)) => h.trie.child(n, symbol),
                _ => None,
            };
            if self.cfg.trie.is_some() && vocab.is_none() && hot.is_none() {
                None
            } else {
                Some(Prefix {
                    parent,
                    symbol,
                    frame,
                    lm: p.lm,
                    lm_state: p.lm_state,
                    vocab,
                    hot,
                    partial_len: p.partial_len + 1,
                })
            }
        };
        let id = made.map(|node| {
            self.arena.push(node);
            (self.arena.len() - 1) as u32
        });
        self.children.insert((parent, symbol), id);
        id
    }

    /// Ranking score of a prefix: acoustic + LM so far + hot-word prefix bonus.
    fn score(&self, b: &Beam) -> f64 {
        let p = &self.arena[b.prefix as usize];
        let bonus = match (self.cfg.hotwords, p.hot) {
            (Some(h), Some(n)) => h.prefix_bonus(n, p.partial_len),
            _ => 0.0,
        };
        lse(b.p_b, b.p_nb) + p.lm + bonus
    }

    fn tokens(&self, mut at: u32) -> Vec<Token> {
        let mut out = Vec::new();
        while at != 0 {
            let p = &self.arena[at as usize];
            out.push(Token { symbol: p.symbol, frame: p.frame });
            at = p.parent;
        }
        out.reverse();
        out
    }
}

impl BeamSearch<'_> {
    /// Decode one utterance; returns up to `nbest` hypotheses, best first (at least one).
    pub fn decode(&self, post: &Posteriors<'_>) -> Vec<Hypothesis> {
        let blank = post.blank();
        let root = Prefix {
            parent: 0,
            symbol: u32::MAX,
            frame: 0,
            lm: 0.0,
            lm_state: self.lm.map(|l| l.model.begin_sentence()),
            vocab: self.trie.map(|_| VocabTrie::ROOT),
            hot: self.hotwords.map(|_| VocabTrie::ROOT),
            partial_len: 0,
        };
        let mut s = Search { cfg: self, arena: vec![root], children: HashMap::new() };
        let mut beams = vec![Beam { prefix: 0, p_b: 0.0, p_nb: f64::NEG_INFINITY }];
        let mut index: HashMap<u32, usize> = HashMap::new();
        let mut next: Vec<Beam> = Vec::new();
        let mut cands: Vec<usize> = Vec::new();
        for t in 0..post.frames() {
            let row = post.row(t);
            cands.clear();
            cands.extend((0..blank).filter(|&k| row[k] >= self.options.token_min_logp));
            if cands.is_empty() {
                let top = (0..blank).max_by(|&a, &b| row[a].total_cmp(&row[b]));
                cands.extend(top);
            }
            next.clear();
            index.clear();
            let mut add = |next: &mut Vec<Beam>, prefix: u32, b: f64, nb: f64| {
                let i = *index.entry(prefix).or_insert_with(|| {
                    next.push(Beam { prefix, p_b: f64::NEG_INFINITY, p_nb: f64::NEG_INFINITY });
                    next.len() - 1
                });
                next[i].p_b = lse(next[i].p_b, b);
                next[i].p_nb = lse(next[i].p_nb, nb);
            };
            for &beam in &beams {
                let total = lse(beam.p_b, beam.p_nb);
                add(&mut next, beam.prefix, total + f64::from(row[blank]), f64::NEG_INFINITY);
                let last = (beam.prefix != 0).then(|| s.arena[beam.prefix as usize].symbol);
                let at_word_start = s.arena[beam.prefix as usize].partial_len == 0;
                for &k in &cands {
                    let lp = f64::from(row[k]);
                    let k32 = k as u32;
                    let is_space = Some(k32) == self.alphabet.space();
                    if is_space && at_word_start {
                        // A space with no word before it changes nothing: it acts as a blank.
                        add(&mut next, beam.prefix, total + lp, f64::NEG_INFINITY);
                        continue;
                    }
                    let from = if Some(k32) == last {
                        add(&mut next, beam.prefix, f64::NEG_INFINITY, beam.p_nb + lp);
                        beam.p_b + lp
                    } else {
                        total + lp
                    };
                    if from == f64::NEG_INFINITY {
                        continue;
                    }
                    if let Some(c) = s.child(beam.prefix, k32, t) {
                        add(&mut next, c, f64::NEG_INFINITY, from);
                    }
                }
            }
            let mut scored: Vec<(f64, Beam)> = next.iter().map(|b| (s.score(b), *b)).collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            let best = scored.first().map_or(0.0, |x| x.0);
            beams.clear();
            beams.extend(
                scored
                    .iter()
                    .take(self.options.beam_width.max(1))
                    .take_while(|x| x.0 >= best - self.options.beam_threshold)
                    .map(|x| x.1),
            );
        }
        // Close the last word and the sentence.
        let mut finals: Vec<(f64, f64, u32)> = beams
            .iter()
            .map(|b| {
                let p = s.arena[b.prefix as usize].clone();
                let acoustic = lse(b.p_b, b.p_nb);
                let mut lm = p.lm;
                let mut state = p.lm_state;
                if p.partial_len > 0 {
                    let word = s.partial_word(b.prefix);
                    let hot = match (self.hotwords, p.hot) {
                        (Some(h), Some(n)) => h.trie.is_word(n),
                        _ => false,
                    };
                    let known = match (self.trie, p.vocab) {
                        (Some(t), Some(n)) => t.is_word(n),
                        (Some(_), None) => false,
                        (None, _) => true,
                    };
                    let (w, st) = s.close_word(&p, &word, hot);
                    lm += w;
                    state = st;
                    if hot {
                        lm += self.hotwords.map_or(0.0, |h| f64::from(h.weight));
                    } else if !known {
                        // Cut off mid-word: charged as an unknown word, never dropped, so
                        // there is always an answer.
                        lm += self
                            .lm
                            .map_or(-10.0, |l| f64::from(l.alpha) * LN_10 * f64::from(l.unk_log10));
                    }
                }
                if let (Some(l), Some(st)) = (&self.lm, state) {
                    let eos = l.model.vocab_id("</s>");
                    if eos.is_some() {
                        let (e, _, _) = l.model.score_id(&st, eos);
                        lm += f64::from(l.alpha) * LN_10 * f64::from(e);
                    }
                }
                (acoustic + lm, acoustic, b.prefix)
            })
            .collect();
        finals.sort_by(|a, b| b.0.total_cmp(&a.0));
        let norm = finals.iter().fold(f64::NEG_INFINITY, |acc, f| lse(acc, f.0));
        finals
            .iter()
            .take(self.options.nbest.max(1))
            .map(|&(score, acoustic, prefix)| {
                let tokens = s.tokens(prefix);
                let (text, words) = words_of(self.alphabet, &tokens);
                Hypothesis {
                    text,
                    tokens,
                    words,
                    score,
                    acoustic,
                    confidence: (score - norm).exp(),
                }
            })
            .collect()
    }
}
