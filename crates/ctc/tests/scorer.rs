//! `.scorer` packages end to end in memory: an ARPA model written as KenLM + trie, opened,
//! and used by the native decoder; damaged packages never panic.

use std::sync::Arc;

use harken_ctc::scorer::{self, LmScorer, Scorer, TrieHeader};
use harken_ctc::{NativeDecoder, NativeOptions};

const ARPA: &str = "\\data\\
ngram 1=6
ngram 2=3

\\1-grams:
-1.0\t<unk>\t0
-99\t<s>\t-0.3
-0.7\t</s>\t0
-0.5\tab\t-0.2
-0.9\tba\t-0.2
-1.2\tcab\t-0.1

\\2-grams:
-0.2\t<s> ab
-0.3\tab ba
-0.1\tba </s>

\\end\\
";

fn labels() -> Vec<String> {
    [" ", "a", "b", "c"].iter().map(|s| s.to_string()).collect()
}

fn package(alpha: f64, beta: f64) -> Vec<u8> {
    let tables = harken_lm::arpa::read(ARPA.as_bytes()).expect("arpa");
    let mut out = Vec::new();
    let lm = harken_lm::kenlm::write_trie(
        &tables,
        &harken_lm::kenlm::TrieOptions::deepspeech(),
        &mut out,
    )
    .expect("kenlm");
    let words = scorer::dictionary_words(&tables.vocab, &labels(), false);
    scorer::write_trie(&mut out, lm, TrieHeader { utf8: false, alpha, beta }, words).expect("trie");
    out
}

/// Frames over " abc" + blank: "a", blank, "c" (strong), then a weak "b" beside it.
fn frames() -> Vec<f64> {
    let rows: [[f64; 5]; 5] = [
        [0.0, 0.9, 0.0, 0.0, 0.1],
        [0.0, 0.0, 0.0, 0.0, 1.0],
        [0.0, 0.0, 0.35, 0.6, 0.05],
        [0.0, 0.0, 0.0, 0.0, 1.0],
        [0.0, 0.0, 0.0, 0.0, 1.0],
    ];
    rows.iter().flatten().copied().collect()
}

#[test]
fn the_vocabulary_gates_and_the_lm_scores() {
    let bytes = package(0.93, 1.18);
    let sc = Scorer::from_bytes(bytes).expect("scorer");
    assert_eq!(sc.lm().order(), 2);
    assert!(!sc.header().utf8);
    sc.check_alphabet(&labels()).expect("alphabet matches");
    let mut vocab = sc.vocabulary(&labels(), 100);
    vocab.sort();
    assert_eq!(vocab, ["ab", "ba", "cab"]);

    // Without a scorer the acoustics win: "ac".
    let mut plain = NativeDecoder::new(4, NativeOptions::client(16));
    plain.next(&frames(), 5);
    assert_eq!(plain.decode(1)[0].tokens, [1, 3]);

    // With it, only vocabulary words (or their prefixes) survive: "ab".
    let lm = Arc::new(LmScorer::new(sc.clone(), labels()));
    let mut d = NativeDecoder::with_scorer(4, NativeOptions::client(16), lm);
    d.next(&frames(), 5);
    let best = d.decode(3);
    assert_eq!(best[0].tokens, [1, 2]);
    for out in &best {
        let text: String = out.tokens.iter().map(|&t| labels()[t as usize].clone()).collect();
        assert!(
            text.split(' ')
                .all(|w| w.is_empty() || ["ab", "ba", "cab"].iter().any(|v| v.starts_with(w))),
            "{text:?}"
        );
    }
    // A hot word changes the score of prefixes that end with it.
    let mut hot = LmScorer::new(sc, labels());
    hot.add_hot_word("ab", 10.0);
    let mut h = NativeDecoder::with_scorer(4, NativeOptions::client(16), Arc::new(hot));
    let mut f = frames();
    f.extend_from_slice(&[1.0, 0.0, 0.0, 0.0, 0.0]); // a space: "ab" is scored with its boost
    let mut base_frames = frames();
    base_frames.extend_from_slice(&[1.0, 0.0, 0.0, 0.0, 0.0]);
    h.next(&f, 5);
    let mut base = NativeDecoder::with_scorer(
        4,
        NativeOptions::client(16),
        Arc::new(LmScorer::new(Scorer::from_bytes(package(0.93, 1.18)).expect("scorer"), labels())),
    );
    base.next(&base_frames, 5);
    let (hb, bb) = (h.decode(1)[0].clone(), base.decode(1)[0].clone());
    assert_eq!(hb.tokens, bb.tokens);
    assert!(hb.confidence > bb.confidence + 5.0, "{} vs {}", hb.confidence, bb.confidence);
}

#[test]
fn a_scorer_for_other_labels_is_refused() {
    let sc = Scorer::from_bytes(package(1.0, 1.0)).expect("scorer");
    let other: Vec<String> = [" ", "x", "y"].iter().map(|s| s.to_string()).collect();
    assert!(sc.check_alphabet(&other).is_err());
    // Same size, other order: the trie spells cb, bc, acb, none of them LM words.
    let swapped: Vec<String> = [" ", "c", "b", "a"].iter().map(|s| s.to_string()).collect();
    let err = sc.check_alphabet(&swapped).expect_err("another alphabet");
    assert!(err.to_string().contains("another alphabet"), "{err}");
}

#[test]
fn damaged_packages_never_panic() {
    let bytes = package(0.5, 0.5);
    let lm = Arc::new(LmScorer::new(Scorer::from_bytes(bytes.clone()).expect("ok"), labels()));
    let trie_at = lm.scorer().trie_offset() as usize;
    for cut in (0..bytes.len()).step_by(7) {
        assert!(Scorer::from_bytes(bytes[..cut].to_vec()).is_err(), "cut at {cut}");
    }
    let mut seed = 0x9E37_79B9_u32;
    for _ in 0..2000 {
        let mut b = bytes.clone();
        for _ in 0..3 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let i = trie_at + seed as usize % (b.len() - trie_at);
            b[i] ^= (seed >> 24) as u8 | 1;
        }
        if let Ok(sc) = Scorer::from_bytes(b) {
            let _ = sc.fst().verify();
            let lm = Arc::new(LmScorer::new(sc, labels()));
            let mut d = NativeDecoder::with_scorer(4, NativeOptions::client(8), lm);
            d.next(&frames(), 5);
            let _ = d.decode(2);
        }
    }
}
