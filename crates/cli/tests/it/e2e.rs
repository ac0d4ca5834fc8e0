//! Behaviour of `harken transcribe` and `harken bench` on real audio and bad input.

use crate::{harken, model, read_wav16, stderr, stdout, testdata, transcribe, wav16};

fn words(s: &str) -> Vec<String> {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Word-level edit distance over the reference length.
pub(crate) fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let (r, h) = (words(reference), words(hypothesis));
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            cur[j + 1] = (prev[j + 1] + 1).min(cur[j] + 1).min(prev[j] + usize::from(rw != hw));
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len().max(1) as f64
}

fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[test]
fn every_encoding_transcribes_to_the_same_sentence() {
    let Some(m) = model("base") else { return };
    let files: Vec<String> =
        ["speech_16k_s16.wav", "speech.flac", "speech.mp3", "speech.ogg", "speech_8k_u8.wav"]
            .iter()
            .map(|f| testdata(f).to_string_lossy().into_owned())
            .collect();
    let mut args = vec![
        "transcribe",
        "--model",
        m.to_str().unwrap(),
        "--threads",
        "2",
        "--language",
        "en",
        "--format",
        "json",
    ];
    args.extend(files.iter().map(String::as_str));
    let o = harken(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = json_lines(&stdout(&o));
    assert_eq!(rows.len(), files.len(), "one JSON line per file");
    // Word error rate against the sentence spoken; looser for lossy and telephone-band copies.
    let reference = "the quick brown fox jumps over the lazy dog";
    for (r, max_wer) in rows.iter().zip([0.12, 0.12, 0.25, 0.35, 0.8]) {
        let text = r["text"].as_str().unwrap();
        let wer = word_error_rate(reference, text);
        assert!(wer <= max_wer, "{}: WER {wer:.2} > {max_wer}: {text:?}", r["file"]);
        assert_eq!(r["language"], "en");
        assert!((r["duration"].as_f64().unwrap() - 2.8).abs() < 0.1, "{}", r["duration"]);
    }
    // Lossless encodings give identical text.
    assert_eq!(rows[0]["text"], rows[1]["text"]);
}

#[test]
fn silence_gives_an_empty_transcript() {
    let Some(m) = model("base") else { return };
    let o = transcribe(
        m.to_str().unwrap(),
        &["--format", "json", testdata("silence_2s.wav").to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["text"], "");
    assert_eq!(v["segments"].as_array().unwrap().len(), 0);
}

#[test]
fn bad_input_exits_2_with_one_line_and_keeps_other_results() {
    let Some(m) = model("base") else { return };
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.wav");
    std::fs::write(&text, "definitely not audio\n".repeat(10)).unwrap();
    let empty = dir.path().join("empty.mp3");
    std::fs::write(&empty, b"").unwrap();
    let missing = dir.path().join("missing.flac");
    let good = testdata("numbers_16k.wav");
    let o = transcribe(
        m.to_str().unwrap(),
        &[
            "--language",
            "en",
            text.to_str().unwrap(),
            empty.to_str().unwrap(),
            good.to_str().unwrap(),
            missing.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "one line per bad file: {err}");
    assert!(
        lines[0].contains("notes.wav") && lines[0].contains("not a supported audio file"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("empty.mp3") && lines[1].contains("empty"), "{}", lines[1]);
    assert!(lines[2].contains("missing.flac"), "{}", lines[2]);
    assert!(!err.contains("panicked"));
    // The good file in between was still transcribed.
    assert!(stdout(&o).to_lowercase().contains("tuesday"), "{}", stdout(&o));
}

#[test]
fn missing_model_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_harken"))
        .args(["transcribe", testdata("numbers_16k.wav").to_str().unwrap()])
        .env("HARKEN_CACHE_DIR", dir.path())
        .env_remove("HARKEN_MODEL_URI")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("scripts/install-models.sh base"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn bad_flags_are_rejected() {
    let o = harken(&["transcribe", "--format", "xml", "x.wav"]);
    assert_eq!(o.status.code(), Some(2));
    let o = harken(&["transcribe", "--beam", "0", "--model", "/nonexistent", "x.wav"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn word_timestamps_are_ordered_and_inside_the_audio() {
    let Some(m) = model("base") else { return };
    let o = transcribe(
        m.to_str().unwrap(),
        &[
            "--language",
            "en",
            "--format",
            "verbose_json",
            "--word-timestamps",
            testdata("numbers_16k.wav").to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let words = v["words"].as_array().expect("words");
    assert!(words.len() >= 5, "{words:?}");
    let duration = v["duration"].as_f64().unwrap();
    let mut prev_start = 0.0;
    for w in words {
        let (s, e) = (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap());
        assert!(s <= e && s >= prev_start && e <= duration + 0.05, "{w} in {duration}");
        prev_start = s;
    }
    // "Tuesday" is the last word and is spoken in the last second of the clip.
    let last = words.last().unwrap();
    assert!(last["word"].as_str().unwrap().to_lowercase().contains("tuesday"), "{last}");
    assert!(last["start"].as_f64().unwrap() > duration - 1.5, "{last}");
}

#[test]
fn audio_longer_than_30_s_is_decoded_window_by_window() {
    let Some(m) = model("base") else { return };
    // Two different sentences repeated with pauses: 6 × (2.8 s + 1 s) + 6 × (~3 s + 1 s) ≈ 47 s.
    let a = read_wav16(&testdata("speech_16k_s16.wav"));
    let b = read_wav16(&testdata("numbers_16k.wav"));
    let mut samples = Vec::new();
    for _ in 0..6 {
        samples.extend(&a);
        samples.extend(std::iter::repeat_n(0.0, 16_000));
        samples.extend(&b);
        samples.extend(std::iter::repeat_n(0.0, 16_000));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.wav");
    std::fs::write(&path, wav16(&samples)).unwrap();
    let o = transcribe(
        m.to_str().unwrap(),
        &["--threads", "2", "--language", "en", "--format", "json", path.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let segs = v["segments"].as_array().unwrap();
    let last_end = segs.last().unwrap()["end"].as_f64().unwrap();
    let duration = v["duration"].as_f64().unwrap();
    assert!(
        last_end > 40.0 && last_end <= duration + 0.5,
        "last segment ends at {last_end} of {duration}"
    );
    let text = v["text"].as_str().unwrap().to_lowercase();
    assert!(text.matches("tuesday").count() >= 5, "sentences lost at window cuts: {text}");
    assert!(text.matches("quick").count() >= 5, "sentences lost at window cuts: {text}");
    let mut prev = 0.0;
    for s in segs {
        let start = s["start"].as_f64().unwrap();
        assert!(start >= prev - 0.01, "segments out of order: {segs:?}");
        prev = start;
    }
}

#[test]
fn english_only_model_refuses_other_languages() {
    let Some(m) = model("tiny.en") else { return };
    let o = transcribe(
        m.to_str().unwrap(),
        &["--language", "de", testdata("numbers_16k.wav").to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("English-only"), "{}", stderr(&o));
    let o = transcribe(m.to_str().unwrap(), &[testdata("numbers_16k.wav").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).to_lowercase().contains("tuesday"), "{}", stdout(&o));
}

#[test]
fn bench_reports_json_the_planner_can_read() {
    let Some(m) = model("base") else { return };
    let o = harken(&[
        "bench",
        "--model",
        m.to_str().unwrap(),
        "--threads",
        "2",
        "--runs",
        "1",
        "--language",
        "en",
        "--json",
        testdata("numbers_16k.wav").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["load_seconds"].as_f64().unwrap() > 0.0);
    assert!(v["peak_rss_bytes"].as_u64().unwrap() > 100 << 20);
    let f = &v["files"][0];
    for stage in ["audio", "mel", "encoder", "decoder"] {
        assert!(f["stages"][stage].as_f64().is_some(), "{stage}");
    }
    assert!(f["stages"]["encoder"].as_f64().unwrap() > 0.0);
    assert!(f["rtf"].as_f64().unwrap() > 0.0);
    assert_eq!(f["runs_seconds"].as_array().unwrap().len(), 1);
}
