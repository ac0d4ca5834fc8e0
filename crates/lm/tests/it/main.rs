//! Harken's queries against KenLM's on a model KenLM's `lmplz` estimated
//! (`testdata/lm/small-3gram.arpa.gz`) and held-out text: per-token log10 probabilities within
//! 1e-4 (f32), perplexity of the 8-bit model within 1%. KenLM runs as the PyPI `kenlm` module
//! from the venv of `scripts/install-test-tools.sh`; without it the test prints a SKIP line,
//! except under `CI=true`.

#![allow(clippy::unwrap_used)]

mod kenlm;
mod sphinx;

use std::path::{Path, PathBuf};
use std::process::Command;

use harken_lm::{Model, arpa};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/lm").join(name)
}

fn kenlm_python() -> Option<PathBuf> {
    let venv = std::env::var_os("HARKEN_STORE_VENV").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/harken/store-venv")
    });
    let py = venv.join("bin/python");
    if Command::new(&py).args(["-c", "import kenlm"]).status().is_ok_and(|s| s.success()) {
        return Some(py);
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "CI=true: no kenlm module in {}",
        venv.display()
    );
    eprintln!("\n*** SKIP KenLM parity: no kenlm module (scripts/install-test-tools.sh) ***\n");
    None
}

#[test]
fn queries_match_kenlm() {
    let Some(py) = kenlm_python() else { return };
    let model_path = testdata("small-3gram.arpa.gz");
    let tables = arpa::read(arpa::open(&model_path).unwrap()).unwrap();
    let full = Model::from_tables(&tables, false).unwrap();
    let quant = Model::from_tables(&tables, true).unwrap();
    let text = std::fs::read_to_string(testdata("heldout.txt")).unwrap();
    let script = r#"
import json, sys, kenlm
m = kenlm.Model(sys.argv[1])
out = [[s[0] for s in m.full_scores(l.strip(), bos=True, eos=True)] for l in open(sys.argv[2]) if l.split()]
print(json.dumps(out))
"#;
    let out = Command::new(&py)
        .arg("-c")
        .arg(script)
        .arg(&model_path)
        .arg(testdata("heldout.txt"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let kenlm: Vec<Vec<f64>> = serde_json::from_slice(&out.stdout).unwrap();
    let mut max_diff = 0f64;
    let (mut sum_k, mut sum_q, mut tokens) = (0f64, 0f64, 0usize);
    for (line, k) in text.lines().filter(|l| !l.trim().is_empty()).zip(&kenlm) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let ours = full.score_sentence(&words);
        let ours_q = quant.score_sentence(&words);
        assert_eq!(ours.len(), k.len(), "{line}");
        for ((p, _), kp) in ours.iter().zip(k) {
            max_diff = max_diff.max((f64::from(*p) - kp).abs());
        }
        sum_k += k.iter().sum::<f64>();
        sum_q += ours_q.iter().map(|(p, _)| f64::from(*p)).sum::<f64>();
        tokens += k.len();
    }
    assert!(tokens > 500);
    assert!(max_diff < 1e-4, "max per-token difference {max_diff}");
    let (ppl_k, ppl_q) = (10f64.powf(-sum_k / tokens as f64), 10f64.powf(-sum_q / tokens as f64));
    assert!((ppl_q / ppl_k - 1.0).abs() < 0.01, "8-bit perplexity {ppl_q} vs KenLM {ppl_k}");
    eprintln!(
        "KenLM parity: {tokens} tokens, max |diff| {max_diff:.2e}; perplexity KenLM {ppl_k:.3}, 8-bit {ppl_q:.3}"
    );
}

#[test]
fn binary_file_round_trips_and_maps() {
    let tables = arpa::read(arpa::open(&testdata("small-3gram.arpa.gz")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.bin");
    Model::write_binary(&tables, false, &path).unwrap();
    let mapped = Model::open(&path).unwrap();
    mapped.verify().unwrap();
    assert_eq!(mapped.counts(), vec![1616, 6933, 8551]);
    let in_mem = Model::from_tables(&tables, false).unwrap();
    let text = std::fs::read_to_string(testdata("heldout.txt")).unwrap();
    let (a, b) = (harken_lm::evaluate(&mapped, &text), harken_lm::evaluate(&in_mem, &text));
    assert_eq!(a.log10_sum, b.log10_sum);
    assert!(a.oov > 0 && a.perplexity_no_oov() < a.perplexity());
    // ARPA written back from the binary reads to the same model.
    let mut arpa_text = Vec::new();
    arpa::write(&mapped.to_tables(), &mut arpa_text).unwrap();
    let again = Model::from_tables(&arpa::read(arpa_text.as_slice()).unwrap(), false).unwrap();
    assert_eq!(harken_lm::evaluate(&again, &text).log10_sum, a.log10_sum);
    // The n-gram hash index changes how records are found, not what they say.
    let indexed_path = dir.path().join("h.bin");
    let plain = std::fs::metadata(&path).unwrap().len();
    let indexed_bytes = Model::write_binary_with(&tables, false, true, &indexed_path).unwrap();
    assert!(indexed_bytes >= plain + 8 * (6933 + 8551) as u64, "{indexed_bytes} vs {plain}");
    let indexed = Model::open(&indexed_path).unwrap();
    indexed.verify().unwrap();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(indexed.score_sentence(&words), mapped.score_sentence(&words), "{line}");
    }
    for q in [false, true] {
        let a = Model::from_tables(&tables, q).unwrap();
        let b = Model::from_tables_indexed(&tables, q).unwrap();
        assert_eq!(
            harken_lm::evaluate(&a, &text).log10_sum,
            harken_lm::evaluate(&b, &text).log10_sum
        );
    }
    // A truncated file is refused at open, not at query time.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    assert!(Model::open(&path).unwrap_err().to_string().contains("truncated"));
}

/// `harken lm build` against `lmplz` on the same text: same n-grams, per-n-gram log10
/// probabilities and back-offs within 1e-4, held-out perplexity within 1%.
#[test]
fn kneser_ney_build_matches_lmplz() {
    let train = std::fs::File::open(testdata("train.txt")).unwrap();
    let (ours, discounts) = harken_lm::build::build(std::io::BufReader::new(train), 3).unwrap();
    let theirs = arpa::read(arpa::open(&testdata("small-3gram.arpa.gz")).unwrap()).unwrap();
    assert_eq!(discounts.len(), 3);
    for k in 1..=3 {
        assert_eq!(ours.count(k), theirs.count(k), "order {k}");
    }
    assert_eq!(ours.vocab, theirs.vocab);
    let mut max_p = 0f32;
    let mut max_bo = 0f32;
    for k in 1..=3 {
        assert_eq!(ours.ids[k - 1], theirs.ids[k - 1], "order {k} n-grams");
        for (i, (a, b)) in ours.prob[k - 1].iter().zip(&theirs.prob[k - 1]).enumerate() {
            if k == 1 && ours.vocab[i] == "<s>" {
                continue;
            }
            max_p = max_p.max((a - b).abs());
        }
        if k < 3 {
            for (a, b) in ours.backoff[k - 1].iter().zip(&theirs.backoff[k - 1]) {
                max_bo = max_bo.max((a - b).abs());
            }
        }
    }
    assert!(max_p < 1e-4 && max_bo < 1e-4, "max |diff|: prob {max_p}, back-off {max_bo}");
    let text = std::fs::read_to_string(testdata("heldout.txt")).unwrap();
    let a = harken_lm::evaluate(&Model::from_tables(&ours, false).unwrap(), &text).perplexity();
    let b = harken_lm::evaluate(&Model::from_tables(&theirs, false).unwrap(), &text).perplexity();
    assert!((a / b - 1.0).abs() < 0.01, "perplexity {a} vs lmplz {b}");
    eprintln!(
        "KN vs lmplz: max |Δ log10 p| {max_p:.2e}, max |Δ back-off| {max_bo:.2e}; perplexity {a:.3} vs {b:.3}"
    );
}

/// `lmplz --prune 0 1 1`: singleton bigrams and trigrams dropped, their mass moved to the
/// back-offs. Same n-grams, probabilities and back-offs within 1e-4 of lmplz's.
#[test]
fn count_pruning_matches_lmplz() {
    let train = std::fs::File::open(testdata("train.txt")).unwrap();
    let (ours, _) =
        harken_lm::build::build_pruned(std::io::BufReader::new(train), 3, &[0, 1, 1]).unwrap();
    let theirs =
        arpa::read(arpa::open(&testdata("small-3gram-prune011.arpa.gz")).unwrap()).unwrap();
    let full = arpa::read(arpa::open(&testdata("small-3gram.arpa.gz")).unwrap()).unwrap();
    assert!(theirs.count(2) < full.count(2) && theirs.count(3) < full.count(3));
    let (mut max_p, mut max_bo) = (0f32, 0f32);
    for k in 1..=3 {
        assert_eq!(ours.count(k), theirs.count(k), "order {k}");
        assert_eq!(ours.ids[k - 1], theirs.ids[k - 1], "order {k} n-grams");
        for (i, (a, b)) in ours.prob[k - 1].iter().zip(&theirs.prob[k - 1]).enumerate() {
            if !(k == 1 && ours.vocab[i] == "<s>") {
                max_p = max_p.max((a - b).abs());
            }
        }
        if k < 3 {
            for (a, b) in ours.backoff[k - 1].iter().zip(&theirs.backoff[k - 1]) {
                max_bo = max_bo.max((a - b).abs());
            }
        }
    }
    assert!(max_p < 1e-4 && max_bo < 1e-4, "max |diff|: prob {max_p}, back-off {max_bo}");
    let m = Model::from_tables(&ours, false).unwrap();
    let text = std::fs::read_to_string(testdata("heldout.txt")).unwrap();
    let (a, b) = (
        harken_lm::evaluate(&m, &text).perplexity(),
        harken_lm::evaluate(&Model::from_tables(&theirs, false).unwrap(), &text).perplexity(),
    );
    assert!((a / b - 1.0).abs() < 0.01, "perplexity {a} vs lmplz {b}");
    // Bad thresholds are refused.
    for bad in [&[1u64, 1, 1][..], &[0, 2, 1]] {
        let t = std::io::Cursor::new("a b c\n");
        assert!(harken_lm::build::build_pruned(t, 3, bad).is_err(), "{bad:?}");
    }
    eprintln!(
        "--prune 0 1 1 vs lmplz: max |Δ log10 p| {max_p:.2e}, max |Δ back-off| {max_bo:.2e}; perplexity {a:.3} vs {b:.3}"
    );
}

/// Pruning to a byte budget: the result fits, is a valid model that still scores every
/// sentence, loses some perplexity but not absurdly, and an impossible budget is an error.
#[test]
fn stolcke_pruning_meets_a_byte_budget() {
    use harken_lm::prune::{binary_size, filter_vocabulary, prune_to_bytes};
    let tables = arpa::read(arpa::open(&testdata("small-3gram.arpa.gz")).unwrap()).unwrap();
    let text = std::fs::read_to_string(testdata("heldout.txt")).unwrap();
    let full = binary_size(&tables, false);
    let base = harken_lm::evaluate(&Model::from_tables(&tables, false).unwrap(), &text)
        .perplexity_no_oov();
    let mut last = base;
    for div in [2, 4] {
        let pruned = prune_to_bytes(&tables, full / div, false).unwrap();
        let size = binary_size(&pruned, false);
        assert!(size <= full / div, "{size} > {}", full / div);
        assert_eq!(
            Model::from_tables(&pruned, false).unwrap().bytes() as u64,
            size,
            "size estimate is exact"
        );
        let ppl = harken_lm::evaluate(&Model::from_tables(&pruned, false).unwrap(), &text)
            .perplexity_no_oov();
        assert!(ppl >= last * 0.999 && ppl < base * 3.0, "1/{div}: perplexity {ppl} (full {base})");
        last = ppl;
        // Back-offs were renormalised: after any context, probabilities over the vocabulary
        // (without <s>, which is never predicted) sum to one.
        let m = Model::from_tables(&pruned, false).unwrap();
        assert_distributions_sum_to_one(&m, &format!("1/{div}"));
    }
    let err = prune_to_bytes(&tables, 1000, false).unwrap_err().to_string();
    assert!(err.contains("cannot be met"), "{err}");
    // Vocabulary filtering keeps scores of in-vocabulary sentences exactly.
    let keep: std::collections::HashSet<String> =
        text.split_whitespace().map(str::to_owned).collect();
    let filtered = filter_vocabulary(&tables, &keep).unwrap();
    assert!(filtered.vocab.len() < tables.vocab.len());
    let (a, b) = (
        Model::from_tables(&tables, false).unwrap(),
        Model::from_tables(&filtered, false).unwrap(),
    );
    for line in text.lines().take(20) {
        let words: Vec<&str> =
            line.split_whitespace().filter(|w| a.vocab_id(w).is_some()).collect();
        assert_eq!(a.score_sentence(&words), b.score_sentence(&words), "{line}");
    }
}

/// `--memory`: with a budget about a hundred times smaller than the counts, every sort spills
/// to disk and merges in rounds; the model is bit for bit the one built in memory (orders 2–5,
/// with and without count pruning), and the temporary directory is gone afterwards.
#[test]
fn on_disk_build_equals_in_memory_build() {
    use harken_lm::build::{BuildOptions, build_with};
    let text = std::fs::read(testdata("train.txt")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (order, prune) in [(2, vec![]), (3, vec![]), (5, vec![]), (4, vec![0, 1, 2])] {
        let opts = |memory: usize| BuildOptions {
            order,
            prune: prune.clone(),
            memory,
            temp_dir: tmp.path().to_owned(),
            progress: None,
        };
        let big = build_with(text.as_slice(), &opts(1 << 30)).unwrap();
        let small = build_with(text.as_slice(), &opts(64 << 10)).unwrap();
        assert_eq!(big.report.runs, 0, "order {order}: 1 GiB holds this corpus");
        assert!(
            small.report.runs > 10,
            "order {order}: only {} runs with 64 KiB",
            small.report.runs
        );
        assert_eq!(small.report.discounts, big.report.discounts);
        assert_eq!(small.tables.vocab, big.tables.vocab);
        assert_eq!(small.tables.ids, big.tables.ids, "order {order} {prune:?}");
        assert_eq!(small.tables.prob, big.tables.prob, "order {order} {prune:?}");
        assert_eq!(small.tables.backoff, big.tables.backoff, "order {order} {prune:?}");
        assert!(small.tables.count(2) > 1000 && small.tables.count(order) > 0);
        eprintln!(
            "order {order} prune {prune:?}: {} runs, {} temporary bytes with 64 KiB; {} n-grams",
            small.report.runs,
            small.report.temp_bytes,
            (1..=order).map(|k| small.tables.count(k)).sum::<usize>()
        );
    }
    // Streamed straight into files, the outputs are the bytes the in-memory model writes.
    let opts = BuildOptions {
        order: 4,
        prune: vec![],
        memory: 64 << 10,
        temp_dir: tmp.path().to_owned(),
        progress: None,
    };
    let tables = build_with(text.as_slice(), &opts).unwrap().tables;
    let mut arpa_out = Vec::new();
    harken_lm::build::build_into(
        text.as_slice(),
        &opts,
        &mut harken_lm::sink::ArpaSink::new(&mut arpa_out),
    )
    .unwrap();
    let mut want = Vec::new();
    arpa::write(&tables, &mut want).unwrap();
    assert!(arpa_out == want, "streamed ARPA differs");
    for (q, h) in [(false, false), (true, true)] {
        let mut bin = std::io::Cursor::new(Vec::new());
        let sink = &mut harken_lm::BinarySink::new(&mut bin, q, h).unwrap();
        harken_lm::build::build_into(text.as_slice(), &opts, sink).unwrap();
        let path = tmp.path().join("want.bin");
        Model::write_binary_with(&tables, q, h, &path).unwrap();
        assert!(bin.into_inner() == std::fs::read(&path).unwrap(), "streamed binary {q} {h}");
        std::fs::remove_file(&path).unwrap();
    }
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "temporary files removed");
}

/// An empty line is the sentence `<s> </s>` (lmplz counts it so; on a sampled 8 M-word corpus
/// with 20 empty lines this was the one n-gram the two disagreed on).
#[test]
fn empty_lines_are_sentences() {
    let (t, _) = harken_lm::build::build("a b\n\na\n".as_bytes(), 2).unwrap();
    let id = |w: &str| t.vocab.iter().position(|v| v == w).unwrap() as u32;
    let bigrams: Vec<&[u32]> = t.ids[1].chunks(2).collect();
    assert!(bigrams.contains(&&[id("<s>"), id("</s>")][..]), "{bigrams:?}");
    assert!(harken_lm::build::build("".as_bytes(), 2).is_err());
}

/// Shrinking the vocabulary for budgets below the unigrams: the most probable words stay,
/// `<unk>` takes the others' probability, and every context's distribution still sums to one.
#[test]
fn shrunk_vocabulary_is_still_a_distribution() {
    use harken_lm::prune::shrink_vocabulary;
    let tables = arpa::read(arpa::open(&testdata("small-3gram.arpa.gz")).unwrap()).unwrap();
    let small = shrink_vocabulary(&tables, 300).unwrap();
    assert_eq!(small.vocab.len(), 303, "300 words + <s>, </s>, <unk>");
    assert!(small.count(2) < tables.count(2) && small.count(3) < tables.count(3));
    let (full, m) =
        (Model::from_tables(&tables, false).unwrap(), Model::from_tables(&small, false).unwrap());
    assert!(m.vocab_id("the").is_some(), "the most frequent word stays");
    // The rarest word now scores as <unk>, whose unigram mass is the dropped words' plus its own.
    let dropped: f64 = (0..full.vocab_size() as u32)
        .filter(|&i| m.vocab_id(full.word(i)).is_none() || full.word(i) == "<unk>")
        .map(|i| 10f64.powf(f64::from(full.score_id(&full.null_state(), Some(i)).0)))
        .sum();
    let unk = 10f64.powf(f64::from(m.score(&m.null_state(), "<unk>").0));
    assert!((unk / dropped - 1.0).abs() < 1e-4, "<unk> {unk} vs dropped mass {dropped}");
    assert_distributions_sum_to_one(&m, "300 words");
}

/// After a few contexts, probabilities over the vocabulary (without `<s>`, which is never
/// predicted) sum to one.
fn assert_distributions_sum_to_one(m: &Model, what: &str) {
    for ctx in [vec![], vec!["the"], vec!["of"], vec!["of", "the"], vec!["the", "model"]] {
        let mut st = m.begin_sentence();
        for w in &ctx {
            st = m.score(&st, w).1;
        }
        let total: f64 = (0..m.vocab_size() as u32)
            .filter(|&id| m.word(id) != "<s>")
            .map(|id| 10f64.powf(f64::from(m.score_id(&st, Some(id)).0)))
            .sum();
        assert!((total - 1.0).abs() < 2e-3, "{what}, context {ctx:?}: sum {total}");
    }
}

/// Reading ARPA with a tiny sort budget (records sorted on disk) gives the same model.
#[test]
fn arpa_reads_the_same_through_disk_sorting() {
    let path = testdata("small-3gram.arpa.gz");
    let want = arpa::read(arpa::open(&path).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = harken_lm::sink::TablesSink::default();
    let counts =
        arpa::read_into(arpa::open(&path).unwrap(), &mut sink, 8 << 10, tmp.path()).unwrap();
    assert_eq!(counts, vec![1616, 6933, 8551]);
    let got = sink.tables;
    assert_eq!(
        (got.vocab, got.ids, got.prob, got.backoff),
        (want.vocab, want.ids, want.prob, want.backoff)
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
