//! Best-path decoding: the most likely class per frame, repeats merged, blanks dropped.

use crate::{Alphabet, Hypothesis, Posteriors, Token, words_of};

/// Greedy (best-path) decoding. Leading, trailing and repeated spaces are dropped from the text.
pub fn greedy(post: &Posteriors<'_>, alphabet: &Alphabet) -> Hypothesis {
    let blank = post.blank();
    let mut tokens = Vec::new();
    let mut prev = blank;
    let mut acoustic = 0.0f64;
    for t in 0..post.frames() {
        let row = post.row(t);
        let (best, lp) = row
            .iter()
            .enumerate()
            .fold((blank, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
        acoustic += f64::from(lp);
        if best != blank && best != prev {
            tokens.push(Token { symbol: best as u32, frame: t });
        }
        prev = best;
    }
    let (text, words) = words_of(alphabet, &tokens);
    Hypothesis { text, tokens, words, score: acoustic, acoustic, confidence: 1.0 }
}
