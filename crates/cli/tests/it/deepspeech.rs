//! DeepSpeech / Coqui STT `.tflite` models through the real binary: the official client's
//! transcripts (golden file made with libdeepspeech 0.9.3), JSON word timings, the beam flag,
//! and clear errors for a broken model file.

use std::path::PathBuf;

use crate::{cache_dir, harken, stderr, stdout, testdata};

/// The Coqui STT model `scripts/install-deepspeech.sh` installs, or `None` after a SKIP line
/// (a failure under `CI=true`).
fn armspeech() -> Option<PathBuf> {
    let path = cache_dir().join("deepspeech/armspeech/model.tflite");
    if path.is_file() {
        return Some(path);
    }
    let msg = format!("{} not installed (run scripts/install-deepspeech.sh)", path.display());
    assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI=true: {msg}");
    eprintln!("\n*** SKIP real-model test: {msg} ***\n");
    None
}

fn golden() -> Vec<(String, String)> {
    let path = testdata("../golden/deepspeech-armspeech.tsv");
    std::fs::read_to_string(path)
        .expect("golden file")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (f, t) = l.split_once('\t').expect("file<TAB>text");
            (f.to_owned(), t.to_owned())
        })
        .collect()
}

#[test]
fn transcripts_equal_the_official_clients() {
    let Some(model) = armspeech() else { return };
    let model = model.to_str().expect("utf-8");
    for (file, want) in golden() {
        let clip = testdata(&file);
        let out = harken(&["transcribe", "--model", model, clip.to_str().expect("utf-8")]);
        assert!(out.status.success(), "{file}: {}", stderr(&out));
        assert_eq!(stdout(&out).trim_end_matches('\n'), want, "{file}");
    }
}

#[test]
fn word_timings_and_the_beam_flag() {
    let Some(model) = armspeech() else { return };
    let model = model.to_str().expect("utf-8");
    let clip = testdata("numbers_16k.wav");
    let clip = clip.to_str().expect("utf-8");
    let out = harken(&[
        "transcribe",
        "--model",
        model,
        "--format",
        "verbose_json",
        "--word-timestamps",
        clip,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let words = v["words"].as_array().expect("words");
    let text = v["text"].as_str().expect("text");
    // The model carries Coqui's placeholder sentence, not a language tag: no language.
    assert_eq!(v["language"], "", "{v}");
    assert_eq!(words.len(), text.split(' ').filter(|w| !w.is_empty()).count(), "{v}");
    let mut last = 0.0;
    for w in words {
        let (s, e) = (w["start"].as_f64().expect("start"), w["end"].as_f64().expect("end"));
        assert!(s >= last - 1e-9 && e > s && e <= 3.2, "{w}");
        last = s;
    }
    // A beam of 1 is a different (greedy-like) search: it still runs and gives text.
    let narrow = harken(&["transcribe", "--model", model, "--beam", "1", clip]);
    assert!(narrow.status.success(), "{}", stderr(&narrow));
    assert!(!stdout(&narrow).trim().is_empty());
}

#[test]
fn a_broken_model_file_is_a_clear_error() {
    let Some(model) = armspeech() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let cut = tmp.path().join("cut.tflite");
    let bytes = std::fs::read(&model).expect("model");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let clip = testdata("numbers_16k.wav");
    let out = harken(&[
        "transcribe",
        "--model",
        cut.to_str().expect("utf-8"),
        clip.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("cut.tflite") && !err.contains("panicked"), "{err}");
}
