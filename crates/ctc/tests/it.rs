//! Decoding hand-made posteriors where the right answer is known.

// Helpers outside #[test] fns: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use harken_ctc::{
    Alphabet, BeamOptions, BeamSearch, Hotwords, LmFusion, Posteriors, VocabTrie, greedy,
};

/// Frames given as `[(char, prob)]`; the rest of each frame's mass goes to blank (`'_'`).
fn post(alpha: &Alphabet, frames: &[&[(char, f32)]]) -> Vec<f32> {
    let classes = alpha.len() + 1;
    let mut out = Vec::new();
    for f in frames {
        let mut row = vec![1e-6f32; classes];
        let mut rest = 1.0;
        for &(c, p) in *f {
            let i = if c == '_' { alpha.blank() } else { alpha.index(c).unwrap() };
            row[i as usize] = p;
            rest -= p;
        }
        if !f.iter().any(|x| x.0 == '_') {
            row[alpha.blank() as usize] = rest.max(1e-6);
        }
        let z: f32 = row.iter().sum();
        out.extend(row.iter().map(|p| (p / z).ln()));
    }
    out
}

/// One clear symbol per frame, blanks between.
fn spell(alpha: &Alphabet, text: &str, p: f32) -> Vec<Vec<(char, f32)>> {
    let mut v = Vec::new();
    for c in text.chars() {
        v.push(vec![(c, p)]);
        v.push(vec![('_', 0.98)]);
    }
    let _ = alpha;
    v
}

fn refs(v: &[Vec<(char, f32)>]) -> Vec<&[(char, f32)]> {
    v.iter().map(Vec::as_slice).collect()
}

fn lm(text: &str) -> harken_lm::Model {
    let (tables, _) = harken_lm::build::build(std::io::Cursor::new(text), 2).unwrap();
    harken_lm::Model::from_tables(&tables, false).unwrap()
}

fn decoder<'a>(a: &'a Alphabet) -> BeamSearch<'a> {
    BeamSearch {
        alphabet: a,
        lm: None,
        trie: None,
        hotwords: None,
        options: BeamOptions::default(),
    }
}

#[test]
fn greedy_and_beam_agree_on_clear_speech() {
    let a = Alphabet::english();
    let lp = post(&a, &refs(&spell(&a, "hello world", 0.9)));
    let p = Posteriors::new(&lp, a.len() + 1).unwrap();
    assert_eq!(greedy(&p, &a).text, "hello world");
    let best = &decoder(&a).decode(&p)[0];
    assert_eq!(best.text, "hello world");
    assert_eq!(best.words.len(), 2);
    // "world" starts at frame 12 (6 symbols × 2 frames) and its "d" is at frame 20.
    assert_eq!((best.words[1].start_frame, best.words[1].end_frame), (12, 20));
}

#[test]
fn beam_sums_paths_that_greedy_cannot() {
    // Two frames with P(a) = 0.4, P(blank) = 0.6: the best path is blank-blank ("", 0.36) but
    // "a" collects 0.4·0.4 + 0.4·0.6 + 0.6·0.4 = 0.64.
    let a = Alphabet::english();
    let lp = post(&a, &[&[('a', 0.4)], &[('a', 0.4)]]);
    let p = Posteriors::new(&lp, a.len() + 1).unwrap();
    assert_eq!(greedy(&p, &a).text, "");
    let h = &decoder(&a).decode(&p)[0];
    assert_eq!(h.text, "a");
    assert!((h.acoustic - 0.64f64.ln()).abs() < 1e-3, "{}", h.acoustic);
}

#[test]
fn repeated_letters_need_a_blank() {
    let a = Alphabet::english();
    let lp = post(&a, &[&[('l', 0.95)], &[('l', 0.95)], &[('_', 0.95)], &[('l', 0.95)]]);
    let p = Posteriors::new(&lp, a.len() + 1).unwrap();
    assert_eq!(greedy(&p, &a).text, "ll");
    assert_eq!(decoder(&a).decode(&p)[0].text, "ll");
}

/// "the ?at" where the acoustics slightly prefer "kat".
fn ambiguous(a: &Alphabet) -> Vec<f32> {
    let mut f = spell(a, "the ", 0.9);
    f.push(vec![('k', 0.5), ('c', 0.4)]);
    f.push(vec![('_', 0.98)]);
    f.extend(spell(a, "at", 0.9));
    post(a, &refs(&f))
}

#[test]
fn language_model_fixes_an_acoustic_confusion() {
    let a = Alphabet::english();
    let lp = ambiguous(&a);
    let p = Posteriors::new(&lp, a.len() + 1).unwrap();
    assert_eq!(decoder(&a).decode(&p)[0].text, "the kat");
    let model = lm("the cat sat\nthe cat ran\na cat sat on the mat\nthe dog sat\n");
    let mut d = decoder(&a);
    d.lm = Some(LmFusion { model: &model, alpha: 0.5, beta: 0.0, unk_log10: -10.0 });
    assert_eq!(d.decode(&p)[0].text, "the cat");
}

#[test]
fn vocabulary_trie_prunes_unknown_words() {
    let a = Alphabet::english();
    let lp = ambiguous(&a);
    let p = Posteriors::new(&lp, a.len() + 1).unwrap();
    let (trie, _) = VocabTrie::from_words(&a, ["the", "cat", "hat"]);
    let mut d = decoder(&a);
    d.trie = Some(&trie);
    assert_eq!(d.decode(&p)[0].text, "the cat");
}

#[test]
fn hot_words_win_close_calls_only() {
    let a = Alphabet::english();
    let lp = ambiguous(&a);
    let p = Posteriors::new(&lp, a.len() + 1).unwrap();
    let (hot, skipped) = Hotwords::new(&a, &["Cat".to_string()], 3.0);
    assert_eq!((hot.len(), skipped), (1, 0));
    let mut d = decoder(&a);
    d.hotwords = Some(&hot);
    assert_eq!(d.decode(&p)[0].text, "the cat");
    // A hot word allowed through a trie that does not know it.
    let (trie, _) = VocabTrie::from_words(&a, ["the", "kat"]);
    d.trie = Some(&trie);
    assert_eq!(d.decode(&p)[0].text, "the cat");
    // Clear speech is not overridden by a small boost.
    let clear = post(&a, &refs(&spell(&a, "the kat", 0.95)));
    let pc = Posteriors::new(&clear, a.len() + 1).unwrap();
    let (weak, _) = Hotwords::new(&a, &["cat".to_string()], 1.0);
    let mut d = decoder(&a);
    d.hotwords = Some(&weak);
    assert_eq!(d.decode(&pc)[0].text, "the kat");
}

#[test]
fn nbest_is_sorted_with_confidences() {
    let a = Alphabet::english();
    let lp = ambiguous(&a);
    let p = Posteriors::new(&lp, a.len() + 1).unwrap();
    let mut d = decoder(&a);
    d.options.nbest = 3;
    let n = d.decode(&p);
    assert!(n.len() >= 2);
    assert_eq!(n[0].text, "the kat");
    assert_eq!(n[1].text, "the cat");
    assert!(n.windows(2).all(|w| w[0].score >= w[1].score));
    let total: f64 = n.iter().map(|h| h.confidence).sum();
    assert!(total <= 1.0 + 1e-9, "{total}");
    // The k/c frame is 0.5 against 0.4; everything else is shared.
    let ratio = n[0].confidence / n[1].confidence;
    assert!((ratio - 1.25).abs() < 0.01, "{ratio}");
}

#[test]
fn empty_and_bad_input() {
    let a = Alphabet::english();
    let p = Posteriors::new(&[], a.len() + 1).unwrap();
    assert_eq!(decoder(&a).decode(&p)[0].text, "");
    assert!(Posteriors::new(&[0.0; 5], a.len() + 1).is_err());
    assert!(Posteriors::new(&[f32::NAN; 29], a.len() + 1).is_err());
}
