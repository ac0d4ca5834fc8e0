//! Word timestamps from cross-attention: dynamic time warping over the alignment heads' scores,
//! then reference Whisper's punctuation merging and duration clamps.
//!
//! Ported from OpenAI Whisper's `whisper/timing.py` (openai/whisper, commit 517a43ec):
//! `find_alignment` ([`find_alignment`]), `dtw_cpu`/`backtrace` ([`dtw`]), `median_filter`,
//! `merge_punctuations` and the segment loop of `add_word_timestamps` ([`assign_words`]).

use harken_core::{Segment, Word};

use crate::WhisperTokenizer;

/// Encoder positions per second (1500 per 30 s).
pub const TOKENS_PER_SECOND: f32 = 50.0;
const MEDIAN_FILTER_WIDTH: usize = 7;
const PREPEND_PUNCTUATION: &str = "\"'“¿([{-";
const APPEND_PUNCTUATION: &str = "\"'.。,，!！?？:：”)]}、";

/// One word aligned within a window, times relative to the window start.
#[derive(Debug, Clone, PartialEq)]
pub struct WordTiming {
    /// Text, with its leading space.
    pub word: String,
    /// Its tokens.
    pub tokens: Vec<u32>,
    /// Start, seconds.
    pub start_s: f32,
    /// End, seconds.
    pub end_s: f32,
    /// Mean probability of its tokens.
    pub probability: f32,
}

/// Inputs of [`find_alignment`]: the alignment heads' pre-softmax scores over the token sequence
/// `[sot_sequence.., <|notimestamps|>, text_tokens.., <|endoftext|>]`.
#[derive(Debug)]
pub struct AlignmentInput<'a> {
    /// Scores `[heads][tokens][audio_ctx]`, flattened.
    pub qk: &'a [f32],
    /// Number of heads.
    pub heads: usize,
    /// Number of tokens in the sequence.
    pub tokens: usize,
    /// Encoder positions in `qk`'s last dimension.
    pub audio_ctx: usize,
    /// Mel frames of real audio in the window (positions beyond `num_frames / 2` are padding).
    pub num_frames: usize,
    /// Length of the start-of-transcript sequence.
    pub sot_len: usize,
    /// The text tokens.
    pub text_tokens: &'a [u32],
    /// Probability the decoder gave each text token.
    pub text_token_probs: &'a [f32],
}

/// Align each word of `text_tokens` to a span of audio.
pub fn find_alignment(
    tok: &WhisperTokenizer,
    input: &AlignmentInput<'_>,
    language: &str,
) -> Vec<WordTiming> {
    let n_text = input.text_tokens.len();
    if n_text == 0 || input.heads == 0 {
        return Vec::new();
    }
    let frames = (input.num_frames / 2).clamp(1, input.audio_ctx);
    let t = input.tokens;
    // Per head: softmax over frames, standardise over tokens, median-filter over frames.
    let mut matrix = vec![0.0f32; t * frames];
    for h in 0..input.heads {
        let mut w = vec![0.0f32; t * frames];
        for i in 0..t {
            let row = &input.qk[(h * t + i) * input.audio_ctx..][..frames];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
            for (o, &x) in w[i * frames..(i + 1) * frames].iter_mut().zip(row) {
                *o = (x - max).exp() / sum;
            }
        }
        for f in 0..frames {
            let mean = (0..t).map(|i| w[i * frames + f]).sum::<f32>() / t as f32;
            let var = (0..t).map(|i| (w[i * frames + f] - mean).powi(2)).sum::<f32>() / t as f32;
            let std = var.sqrt();
            for i in 0..t {
                let v = &mut w[i * frames + f];
                *v = (*v - mean) / std;
            }
        }
        for i in 0..t {
            let filtered = median_filter(&w[i * frames..(i + 1) * frames], MEDIAN_FILTER_WIDTH);
            for (m, v) in matrix[i * frames..(i + 1) * frames].iter_mut().zip(filtered) {
                *m += v / input.heads as f32;
            }
        }
    }
    // Rows from <|notimestamps|> up to, not including, <|endoftext|>.
    let rows = t.saturating_sub(input.sot_len + 1);
    let start = input.sot_len;
    let cost: Vec<f32> =
        matrix[start * frames..(start + rows) * frames].iter().map(|v| -v).collect();
    let path = dtw(&cost, rows, frames);

    let mut with_eot = input.text_tokens.to_vec();
    with_eot.push(tok.eot);
    let words = tok.split_to_words(&with_eot, language);
    let mut boundaries = vec![0usize];
    for (_, toks) in &words[..words.len().saturating_sub(1)] {
        boundaries.push(boundaries.last().copied().unwrap_or(0) + toks.len());
    }
    let mut jump_times = Vec::new();
    let mut prev_text = None;
    for &(ti, fi) in &path {
        if prev_text != Some(ti) {
            jump_times.push(fi as f32 / TOKENS_PER_SECOND);
        }
        prev_text = Some(ti);
    }
    let mut out = Vec::new();
    for (w, pair) in words.iter().zip(boundaries.windows(2)) {
        let (a, b) = (pair[0], pair[1]);
        let (Some(&start_s), Some(&end_s)) = (jump_times.get(a), jump_times.get(b)) else { break };
        let probs = &input.text_token_probs[a.min(n_text)..b.min(n_text)];
        let probability =
            if probs.is_empty() { 0.0 } else { probs.iter().sum::<f32>() / probs.len() as f32 };
        out.push(WordTiming {
            word: w.0.clone(),
            tokens: w.1.clone(),
            start_s,
            end_s,
            probability,
        });
    }
    out
}

/// Median filter of width `width` (odd) with reflect padding, as reference Whisper's
/// `median_filter`.
fn median_filter(x: &[f32], width: usize) -> Vec<f32> {
    let half = width / 2;
    if x.len() <= half {
        return x.to_vec();
    }
    let n = x.len() as isize;
    let at = |i: isize| -> f32 {
        let j = if i < 0 {
            -i
        } else if i >= n {
            2 * (n - 1) - i
        } else {
            i
        };
        x[j.clamp(0, n - 1) as usize]
    };
    let mut win = Vec::with_capacity(width);
    (0..n)
        .map(|i| {
            win.clear();
            win.extend((i - half as isize..=i + half as isize).map(at));
            win.sort_by(f32::total_cmp);
            win[half]
        })
        .collect()
}

/// Monotonic alignment of `rows` × `cols` costs (row-major): the `(row, col)` path from
/// `(0, 0)` to the last cell, in order.
pub fn dtw(cost: &[f32], rows: usize, cols: usize) -> Vec<(usize, usize)> {
    if rows == 0 || cols == 0 {
        return Vec::new();
    }
    let w = cols + 1;
    let mut acc = vec![f32::INFINITY; (rows + 1) * w];
    let mut trace = vec![u8::MAX; (rows + 1) * w];
    acc[0] = 0.0;
    for j in 1..=cols {
        for i in 1..=rows {
            let c0 = acc[(i - 1) * w + j - 1];
            let c1 = acc[(i - 1) * w + j];
            let c2 = acc[i * w + j - 1];
            let (c, t) = if c0 < c1 && c0 < c2 {
                (c0, 0)
            } else if c1 < c0 && c1 < c2 {
                (c1, 1)
            } else {
                (c2, 2)
            };
            acc[i * w + j] = cost[(i - 1) * cols + j - 1] + c;
            trace[i * w + j] = t;
        }
    }
    let (mut i, mut j) = (rows, cols);
    let mut path = Vec::with_capacity(rows + cols);
    while i > 0 || j > 0 {
        path.push((i.saturating_sub(1), j.saturating_sub(1)));
        let t = if i == 0 {
            2
        } else if j == 0 {
            1
        } else {
            trace[i * w + j]
        };
        match t {
            0 => {
                i -= 1;
                j -= 1;
            }
            1 => i -= 1,
            _ => j -= 1,
        }
    }
    path.reverse();
    path
}

/// Attach leading punctuation to the following word and trailing punctuation to the previous.
pub fn merge_punctuations(al: &mut [WordTiming]) {
    if al.len() < 2 {
        return;
    }
    let (mut i, mut j) = (al.len() as isize - 2, al.len() - 1);
    while i >= 0 {
        let iu = i as usize;
        let prev = al[iu].word.clone();
        if prev.starts_with(' ')
            && !prev.trim().is_empty()
            && PREPEND_PUNCTUATION.contains(prev.trim())
        {
            let prev_tokens = std::mem::take(&mut al[iu].tokens);
            let f = &mut al[j];
            f.word = format!("{prev}{}", f.word);
            f.tokens = [prev_tokens, std::mem::take(&mut f.tokens)].concat();
            al[iu].word.clear();
        } else {
            j = iu;
        }
        i -= 1;
    }
    let (mut i, mut j) = (0usize, 1usize);
    while j < al.len() {
        let follow = al[j].word.clone();
        if !al[i].word.ends_with(' ')
            && !follow.is_empty()
            && APPEND_PUNCTUATION.contains(follow.as_str())
        {
            let toks = std::mem::take(&mut al[j].tokens);
            al[i].word.push_str(&follow);
            al[i].tokens.extend(toks);
            al[j].word.clear();
        } else {
            i = j;
        }
        j += 1;
    }
}

/// Distribute aligned words over the window's segments and apply reference Whisper's duration
/// heuristics. `time_offset_s` is the window start; `last_speech_s` carries the end of speech
/// between windows. Segment times may be tightened to their words.
pub fn assign_words(
    segments: &mut [Segment],
    mut alignment: Vec<WordTiming>,
    eot: u32,
    time_offset_s: f64,
    last_speech_s: &mut f64,
) {
    let durations: Vec<f32> =
        alignment.iter().map(|w| w.end_s - w.start_s).filter(|&d| d != 0.0).collect();
    let median = if durations.is_empty() {
        0.0
    } else {
        let mut d = durations.clone();
        d.sort_by(f32::total_cmp);
        let m = d.len() / 2;
        if d.len().is_multiple_of(2) { (d[m - 1] + d[m]) / 2.0 } else { d[m] }
    };
    let median = f64::from(median.min(0.7));
    let max_duration = median * 2.0;
    if !durations.is_empty() {
        let ends = ".。!！?？";
        for i in 1..alignment.len() {
            if f64::from(alignment[i].end_s - alignment[i].start_s) > max_duration {
                if !alignment[i].word.is_empty() && ends.contains(alignment[i].word.as_str()) {
                    alignment[i].end_s = alignment[i].start_s + max_duration as f32;
                } else if !alignment[i - 1].word.is_empty()
                    && ends.contains(alignment[i - 1].word.as_str())
                {
                    alignment[i].start_s = alignment[i].end_s - max_duration as f32;
                }
            }
        }
    }
    merge_punctuations(&mut alignment);
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    let mut wi = 0;
    for seg in segments.iter_mut() {
        let n_text = seg.tokens.iter().filter(|&&t| t < eot).count();
        let mut saved = 0;
        let mut words: Vec<Word> = Vec::new();
        while wi < alignment.len() && saved < n_text {
            let t = &alignment[wi];
            if !t.word.is_empty() {
                words.push(Word {
                    text: t.word.clone(),
                    start_s: round2(time_offset_s + f64::from(t.start_s)),
                    end_s: round2(time_offset_s + f64::from(t.end_s)),
                    probability: t.probability,
                });
            }
            saved += t.tokens.len();
            wi += 1;
        }
        if let (Some(first), true) = (words.first().cloned(), !words.is_empty()) {
            if first.end_s - *last_speech_s > median * 4.0
                && (first.end_s - first.start_s > max_duration
                    || (words.len() > 1 && words[1].end_s - first.start_s > max_duration * 2.0))
            {
                if words.len() > 1 && words[1].end_s - words[1].start_s > max_duration {
                    let boundary = (words[1].end_s / 2.0).max(words[1].end_s - max_duration);
                    words[0].end_s = boundary;
                    words[1].start_s = boundary;
                }
                words[0].start_s = (words[0].end_s - max_duration).max(0.0);
            }
            if seg.start_s < words[0].end_s && seg.start_s - 0.5 > words[0].start_s {
                words[0].start_s = (words[0].end_s - median).min(seg.start_s).max(0.0);
            } else {
                seg.start_s = words[0].start_s;
            }
            let last = words.len() - 1;
            if seg.end_s > words[last].start_s && seg.end_s + 0.5 < words[last].end_s {
                words[last].end_s = (words[last].start_s + median).max(seg.end_s);
            } else {
                seg.end_s = words[last].end_s;
            }
            *last_speech_s = seg.end_s;
        }
        seg.words = Some(words);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtw_follows_the_cheap_diagonal() {
        // 3 tokens × 6 frames; token k is cheap on frames 2k, 2k+1.
        let mut cost = vec![1.0f32; 18];
        for k in 0..3 {
            cost[k * 6 + 2 * k] = -1.0;
            cost[k * 6 + 2 * k + 1] = -1.0;
        }
        let path = dtw(&cost, 3, 6);
        assert_eq!(path.first(), Some(&(0, 0)));
        assert_eq!(path.last(), Some(&(2, 5)));
        let token_starts: Vec<usize> =
            (0..3).map(|k| path.iter().find(|p| p.0 == k).map(|p| p.1).unwrap()).collect();
        assert_eq!(token_starts, vec![0, 2, 4]);
    }

    #[test]
    fn median_filter_removes_spikes() {
        let x = [0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 0.0];
        assert!(median_filter(&x, 7).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn punctuation_joins_neighbours() {
        let w = |s: &str| WordTiming {
            word: s.into(),
            tokens: vec![1],
            start_s: 0.0,
            end_s: 1.0,
            probability: 1.0,
        };
        let mut al = vec![w(" \""), w("Hello"), w(","), w(" world"), w(".")];
        merge_punctuations(&mut al);
        let words: Vec<&str> =
            al.iter().map(|w| w.word.as_str()).filter(|w| !w.is_empty()).collect();
        assert_eq!(words, vec![" \"Hello,", " world."]);
    }
}
