//! The CTC pipeline end to end through the real binary: a package assembled from the installed
//! Whisper base encoder and the committed head (`models/ctc-en`), an LM built here from the
//! repository's own text, a vocabulary trie; greedy, beam, LM, trie and hot words.

use std::path::{Path, PathBuf};

use crate::{harken, model, read_wav16, stderr, stdout, testdata, transcribe, wav16};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Assemble a CTC package under `tmp`, or `None` when Whisper base is not installed.
fn ctc_package(tmp: &Path) -> Option<PathBuf> {
    let base = model("base")?;
    let src = tmp.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let head = harken_model::read_ctc_head(&repo().join("models/ctc-en/head.safetensors")).unwrap();
    harken_model::write_ctc_acoustic(
        &base.join("model.bin"),
        &head,
        &src.join("acoustic.safetensors"),
    )
    .unwrap();
    std::fs::copy(repo().join("models/ctc-en/alphabet.txt"), src.join("alphabet.txt")).unwrap();
    let corpus = repo().join("testdata/lm/train.txt");
    let lm = src.join("lm.bin");
    let o = harken(&[
        "lm",
        "build",
        corpus.to_str().unwrap(),
        "--order",
        "3",
        "-o",
        lm.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let trie = src.join("vocab.trie");
    let o = harken(&["lm", "trie", lm.to_str().unwrap(), "-o", trie.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pkg = tmp.join("pkg");
    let o = harken(&[
        "model",
        "pack",
        src.to_str().unwrap(),
        "-o",
        pkg.to_str().unwrap(),
        "--name",
        "ctc-test",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    Some(pkg)
}

fn text(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", stderr(o));
    stdout(o).trim().to_owned()
}

#[test]
fn ctc_package_transcribes_with_greedy_beam_lm_and_hot_words() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(pkg) = ctc_package(tmp.path()) else { return };
    let pkg = pkg.to_str().unwrap();
    let clip = testdata("speech_16k_s16.wav");
    let clip = clip.to_str().unwrap();
    let reference = "the quick brown fox jumps over the lazy dog";

    // Greedy and an LM-free beam: the acoustic model alone.
    let greedy = text(&transcribe(pkg, &["--ctc-beam", "1", clip]));
    let beam = text(&transcribe(pkg, &["--no-lm", "--no-trie", clip]));
    // The committed head spells this clip as "the cquik broun foks sumps over he lasy dog"
    // (WER 0.67): a weak acoustic model on its own, which is what the LM is for (with the
    // shared trigram: "the quick brown fossum over the lazy dog").
    for hyp in [&greedy, &beam] {
        let wer = crate::e2e::word_error_rate(reference, hyp);
        assert!(wer <= 0.8, "{hyp:?}: WER {wer}");
        for w in ["the", "over", "dog"] {
            assert!(hyp.split_whitespace().any(|x| x == w), "{w} missing from {hyp:?}");
        }
    }

    // With the package's LM and trie every word must be in the LM's vocabulary.
    let o = transcribe(pkg, &["--format", "verbose_json", "--word-timestamps", clip]);
    let v: serde_json::Value = serde_json::from_str(&text(&o)).unwrap();
    let vocab =
        std::fs::read_to_string(repo().join("testdata/lm/train.txt")).unwrap().to_lowercase();
    let words = v["words"].as_array().expect("words");
    let duration = v["duration"].as_f64().unwrap();
    let mut prev = 0.0;
    for w in words {
        let word = w["word"].as_str().unwrap().trim().to_owned();
        assert!(vocab.split_whitespace().any(|x| x == word), "{word} is not in the LM's text");
        let (s, e) = (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap());
        assert!(s >= prev && s < e && e <= duration + 0.05, "{w} in {duration}");
        prev = s;
    }

    // The LM here (the repository's docs) knows none of the pangram's rarer words, so the trie
    // keeps them out; boosted as hot words they come through, one at a time.
    let plain = text(&transcribe(pkg, &[clip]));
    for hot in ["quick", "brown", "fox", "jumps"] {
        assert!(!plain.split_whitespace().any(|w| w == hot), "{plain}");
        let boosted = text(&transcribe(pkg, &["--hotwords", hot, clip]));
        assert!(boosted.split_whitespace().any(|w| w == hot), "{hot}: {boosted}");
    }

    // Options a CTC model cannot honour are refused with a clear message.
    let o = transcribe(pkg, &["--language", "de", clip]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("English only"), "{}", stderr(&o));
}

#[test]
fn ctc_audio_longer_than_30_s_is_decoded_across_overlapping_windows() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(pkg) = ctc_package(tmp.path()) else { return };
    // The pangram 12 times with 0.7-s pauses: about 44 s, two windows overlapping by 2 s.
    let a = read_wav16(&testdata("speech_16k_s16.wav"));
    let mut samples = Vec::new();
    for _ in 0..12 {
        samples.extend(&a);
        samples.extend(std::iter::repeat_n(0.0, 11_200));
    }
    let path = tmp.path().join("long.wav");
    std::fs::write(&path, wav16(&samples)).unwrap();
    let o = transcribe(
        pkg.to_str().unwrap(),
        &[
            "--ctc-beam",
            "1",
            "--format",
            "verbose_json",
            "--word-timestamps",
            path.to_str().unwrap(),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&text(&o)).unwrap();
    let words = v["words"].as_array().expect("words");
    // Each repetition starts with "the": twelve of them, one clip length (3.5 s) apart, also
    // across the window boundary at 28 s (a word lost or doubled there breaks the spacing).
    let the: Vec<f64> = words
        .iter()
        .filter(|w| w["word"].as_str().unwrap().trim() == "the")
        .map(|w| w["start"].as_f64().unwrap())
        .collect();
    let period = (a.len() + 11_200) as f64 / 16_000.0;
    assert_eq!(the.len(), 12, "{the:?}");
    assert!(the.windows(2).all(|w| (w[1] - w[0] - period).abs() < 0.3), "{the:?}");
    let duration = v["duration"].as_f64().unwrap();
    assert!(the[11] > duration - period - 0.3 && the[11] < duration, "{the:?} in {duration}");
}
