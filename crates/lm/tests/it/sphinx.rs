//! CMU Sphinx `.lm.bin` import against pocketsphinx's own reading of the same file
//! (`testdata/lm/README.md`), and against damaged files.

use std::io::Read;

use harken_lm::{Model, arpa, sphinx};

use crate::testdata;

fn fixture() -> Vec<u8> {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(testdata("small-3gram.lm.bin.gz")).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

/// Same n-grams as pocketsphinx's ARPA export of the file, values within its 4-decimal
/// rounding; and the import keeps the lmplz model it was made from (16-bit tables with more
/// bins than distinct values lose nothing): held-out perplexity equal to 1e-6.
#[test]
fn reads_what_pocketsphinx_wrote() {
    let (ours, report) = sphinx::read(&fixture()).unwrap();
    assert_eq!(report.header_counts, vec![1616, 6933, 8551]);
    assert_eq!(report.records, report.header_counts);
    assert_eq!(report.repeats_dropped, 0);
    let theirs = arpa::read(arpa::open(&testdata("small-3gram.sphinx.arpa.gz")).unwrap()).unwrap();
    assert_eq!(ours.vocab, theirs.vocab);
    let (mut max_p, mut max_bo) = (0f32, 0f32);
    for k in 1..=3 {
        assert_eq!(ours.ids[k - 1], theirs.ids[k - 1], "order {k}");
        for (a, b) in ours.prob[k - 1].iter().zip(&theirs.prob[k - 1]) {
            max_p = max_p.max((a - b).abs());
        }
        if k < 3 {
            for (a, b) in ours.backoff[k - 1].iter().zip(&theirs.backoff[k - 1]) {
                max_bo = max_bo.max((a - b).abs());
            }
        }
    }
    assert!(max_p <= 5.1e-5 && max_bo <= 5.1e-5, "prob {max_p}, back-off {max_bo}");
    let text = std::fs::read_to_string(testdata("heldout.txt")).unwrap();
    let original = arpa::read(arpa::open(&testdata("small-3gram.arpa.gz")).unwrap()).unwrap();
    let (a, b) = (
        harken_lm::evaluate(&Model::from_tables(&ours, false).unwrap(), &text).perplexity(),
        harken_lm::evaluate(&Model::from_tables(&original, false).unwrap(), &text).perplexity(),
    );
    assert!((a / b - 1.0).abs() < 1e-6, "perplexity {a} vs the lmplz original {b}");
    // Model::load recognises the format by its magic.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.lm.bin");
    std::fs::write(&path, fixture()).unwrap();
    assert!(sphinx::is_sphinx(&path));
    let loaded = Model::load(&path).unwrap();
    assert_eq!(loaded.counts(), vec![1616, 6933, 8551]);
    eprintln!(
        "Sphinx import: max |Δ| vs pocketsphinx prob {max_p:.1e}, back-off {max_bo:.1e}; perplexity {a:.4} vs {b:.4}"
    );
}

/// pocketsphinx's writer can declare more bigrams than it links (the shipped en-US model:
/// 58); the level is sized for the header and the extra records are zero. Such a file reads,
/// with the linked records only.
#[test]
fn tolerates_a_header_that_overcounts() {
    let good = fixture();
    let extra = 58usize;
    // Layout (docs/lm-format.md): magic 19, order 1, counts 12, quantizer 4, 3 tables of 65,536
    // f32, 1,617 unigrams of 12 bytes, then the bigram level.
    let (n1, n2, n3) = (1616u64, 6933u64, 8551u64);
    let bits = |x: u64| 64 - x.leading_zeros() as u64;
    let total = bits(n1) + 32 + bits(n3);
    let level = |n: u64| (((n + 1) * total).div_ceil(8) + 8) as usize;
    let start = 19 + 1 + 12 + 4 + 3 * 65536 * 4 + (n1 as usize + 1) * 12;
    let end = start + level(n2);
    let grown = level(n2 + extra as u64) - level(n2);
    let mut bad = good[..end].to_vec();
    bad.extend(std::iter::repeat_n(0u8, grown));
    bad.extend_from_slice(&good[end..]);
    bad[24..28].copy_from_slice(&((n2 as u32) + extra as u32).to_le_bytes());
    let (t, report) = sphinx::read(&bad).unwrap();
    assert_eq!(report.header_counts[1], 6933 + extra);
    assert_eq!(report.records[1], 6933);
    assert_eq!(t.count(2), 6933);
    assert_eq!(t.ids, sphinx::read(&good).unwrap().0.ids);
}

/// Truncations and byte flips give an error or a model, never a panic.
#[test]
fn damaged_files_are_refused_cleanly() {
    let good = fixture();
    for cut in [0, 10, 19, 25, 40, 1000, good.len() / 2, good.len() - 1] {
        let err = sphinx::read(&good[..cut]).unwrap_err().to_string();
        assert!(err.contains("CMU Sphinx"), "{cut}: {err}");
    }
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut refused = 0;
    for i in 0..400 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut m = good.clone();
        // Mostly outside the value tables, where a flip would change nothing structural.
        let at = if i % 2 == 0 {
            (x as usize) % 40
        } else {
            786_468 + (x as usize) % (m.len() - 786_468)
        };
        m[at] ^= 1 << (x >> 60 & 7);
        match std::panic::catch_unwind(|| {
            sphinx::read(&m).map(|(t, _)| Model::from_tables(&t, false).map(|_| ()))
        }) {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => refused += 1,
            Err(_) => panic!("mutant {i} (byte {at}) panicked"),
        }
    }
    assert!(refused > 50, "only {refused} of 400 mutants refused");
}
