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

/// A scorer for the armspeech model, made the way a user makes one: `harken lm build` on
/// the committed Armenian text, then `harken lm convert … x.scorer --alphabet model.tflite`.
fn make_scorer(model: &str, dir: &std::path::Path) -> PathBuf {
    let text = testdata("../deepspeech/armspeech-lm.txt");
    let arpa = dir.join("arm.arpa");
    let scorer = dir.join("arm.scorer");
    let (arpa_s, scorer_s) = (arpa.to_str().expect("utf-8"), scorer.to_str().expect("utf-8"));
    let out = harken(&["lm", "build", text.to_str().expect("utf-8"), "--order", "3", "-o", arpa_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = harken(&["lm", "convert", arpa_s, "-o", scorer_s, "--alphabet", model]);
    assert!(out.status.success(), "{}", stderr(&out));
    scorer
}

#[test]
fn scorer_transcripts_equal_the_official_clients() {
    let Some(model) = armspeech() else { return };
    let model = model.to_str().expect("utf-8");
    let tmp = tempfile::tempdir().expect("temp dir");
    let scorer = make_scorer(model, tmp.path());
    let scorer = scorer.to_str().expect("utf-8");
    let golden = std::fs::read_to_string(testdata("../golden/deepspeech-armspeech-scorer.tsv"))
        .expect("golden file");
    let mut checked = 0;
    for line in golden.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let mut f = line.splitn(3, '\t');
        let (config, file, want) = (f.next(), f.next(), f.next().unwrap_or(""));
        let (Some(config), Some(file)) = (config, file) else { panic!("bad line {line:?}") };
        let clip = testdata(file);
        let mut args =
            vec!["transcribe", "--model", model, "--scorer", scorer, clip.to_str().expect("utf-8")];
        if config == "tuned" {
            args.extend([
                "--beam",
                "64",
                "--lm-alpha",
                "1.7",
                "--lm-beta",
                "0.4",
                "--hotwords",
                "սե:3.5,ի:-2.25",
            ]);
        }
        let out = harken(&args);
        assert!(out.status.success(), "{file}: {}", stderr(&out));
        assert_eq!(stdout(&out).trim_end_matches('\n'), want, "{config} {file}");
        checked += 1;
    }
    assert_eq!(checked, 6);
    // The scorer changes the result: without it the client's transcript is another.
    let clip = testdata("numbers_16k.wav");
    let plain = harken(&["transcribe", "--model", model, clip.to_str().expect("utf-8")]);
    let scored = harken(&[
        "transcribe",
        "--model",
        model,
        "--scorer",
        scorer,
        clip.to_str().expect("utf-8"),
    ]);
    assert_ne!(stdout(&plain), stdout(&scored));
    let off = harken(&[
        "transcribe",
        "--model",
        model,
        "--scorer",
        scorer,
        "--no-lm",
        clip.to_str().expect("utf-8"),
    ]);
    assert_eq!(stdout(&plain), stdout(&off), "--no-lm turns the scorer off");
}

#[test]
fn scorer_tools_and_bad_scorers() {
    let Some(model) = armspeech() else { return };
    let model = model.to_str().expect("utf-8");
    let tmp = tempfile::tempdir().expect("temp dir");
    let scorer = make_scorer(model, tmp.path());
    let scorer_s = scorer.to_str().expect("utf-8");
    let info = harken(&["lm", "info", scorer_s, "--alphabet", model, "--verify"]);
    assert!(info.status.success(), "{}", stderr(&info));
    let text = stdout(&info);
    for want in ["DeepSpeech scorer package", "QuantArrayTrie", "8-bit", "-a 255", "trie check ok"]
    {
        assert!(text.contains(want), "{want:?} in {text}");
    }
    assert!(text.contains("alphabet   matches"), "{text}");

    // Back to ARPA and into a pruned scorer: the words come from the trie via the alphabet.
    let arpa = tmp.path().join("back.arpa");
    let out = harken(&[
        "lm",
        "convert",
        scorer_s,
        "-o",
        arpa.to_str().expect("utf-8"),
        "--alphabet",
        model,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let back = std::fs::read_to_string(&arpa).expect("arpa");
    assert!(back.contains("ngram 3="), "{back:.200}");
    let small = tmp.path().join("small.scorer");
    let out = harken(&[
        "lm",
        "prune",
        scorer_s,
        "--max-bytes",
        "60KB",
        "-o",
        small.to_str().expect("utf-8"),
        "--alphabet",
        model,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let small_bytes = std::fs::metadata(&small).expect("pruned").len();
    assert!(small_bytes < std::fs::metadata(&scorer).expect("scorer").len(), "{small_bytes}");
    let clip = testdata("speech_16k_s16.wav");
    let clip = clip.to_str().expect("utf-8");
    let out =
        harken(&["transcribe", "--model", model, "--scorer", small.to_str().expect("utf-8"), clip]);
    assert!(out.status.success(), "{}", stderr(&out));
    let eval = harken(&[
        "lm",
        "eval",
        scorer_s,
        testdata("../deepspeech/armspeech-lm.txt").to_str().expect("utf-8"),
    ]);
    assert!(eval.status.success(), "{}", stderr(&eval));
    assert!(stdout(&eval).contains("perplexity"), "{}", stdout(&eval));

    // A scorer for another alphabet, a truncated one and a bare KenLM model: clear errors.
    let english = tmp.path().join("alphabet.txt");
    std::fs::write(
        &english,
        " \na\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\nm\nn\no\np\nq\nr\ns\nt\nu\nv\nw\nx\ny\nz\n'\n",
    )
    .expect("alphabet");
    let words = tmp.path().join("words.txt");
    std::fs::write(&words, "the cat sat on a mat\nthe dog sat on the cat\n").expect("words");
    let en_arpa = tmp.path().join("en.arpa");
    let out = harken(&[
        "lm",
        "build",
        words.to_str().expect("utf-8"),
        "--order",
        "2",
        "-o",
        en_arpa.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let en = tmp.path().join("en.scorer");
    let out = harken(&[
        "lm",
        "convert",
        en_arpa.to_str().expect("utf-8"),
        "-o",
        en.to_str().expect("utf-8"),
        "--alphabet",
        english.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cut = tmp.path().join("cut.scorer");
    let bytes = std::fs::read(&scorer).expect("scorer");
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).expect("write");
    let bare = tmp.path().join("bare.scorer");
    std::fs::write(&bare, &bytes[..55_416.min(bytes.len())]).expect("write");
    for (bad, want) in [(&en, "does not match"), (&cut, "trie"), (&bare, "not a scorer")] {
        let out = harken(&[
            "transcribe",
            "--model",
            model,
            "--scorer",
            bad.to_str().expect("utf-8"),
            clip,
        ]);
        assert!(!out.status.success(), "{}", bad.display());
        let err = stderr(&out);
        assert!(err.contains(want) && !err.contains("panicked"), "{}: {err}", bad.display());
    }
}

/// The `(config, file, text)` lines of the client's transcripts with the Harken-made scorer.
fn scorer_golden() -> Vec<(String, String, String)> {
    std::fs::read_to_string(testdata("../golden/deepspeech-armspeech-scorer.tsv"))
        .expect("golden file")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let mut f = l.splitn(3, '\t');
            let (c, file, t) = (f.next(), f.next(), f.next().unwrap_or(""));
            let (Some(c), Some(file)) = (c, file) else { panic!("bad line {l:?}") };
            (c.to_owned(), file.to_owned(), t.to_owned())
        })
        .collect()
}

#[test]
fn a_package_of_the_model_and_its_scorer_decodes_as_the_client() {
    let Some(model) = armspeech() else { return };
    let model = model.to_str().expect("utf-8");
    let tmp = tempfile::tempdir().expect("temp dir");
    let scorer = make_scorer(model, tmp.path());
    let scorer_s = scorer.to_str().expect("utf-8");
    let golden = scorer_golden();
    let (_, clip, want) = golden.iter().find(|(c, _, _)| c == "default").expect("default line");
    let clip = testdata(clip);
    let clip = clip.to_str().expect("utf-8");

    let pkg = tmp.path().join("pkg");
    let pkg_s = pkg.to_str().expect("utf-8");
    let self_test = format!("{clip}={want}");
    let out = harken(&[
        "model",
        "pack",
        model,
        "--scorer",
        scorer_s,
        "-o",
        pkg_s,
        "--name",
        "armspeech",
        "--self-test",
        &self_test,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = harken(&["model", "inspect", "--json", pkg_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(v["family"], "deepspeech", "{v}");
    assert_eq!(v["frontend"]["n_mels"], 40, "{v}");
    let out = harken(&["model", "verify", "--self-test", pkg_s]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // The package decodes as the client with the model's beam and the scorer's α/β.
    for (config, file, want) in golden.iter().filter(|(c, _, _)| c == "default") {
        let f = testdata(file);
        let out = harken(&["transcribe", "--model", pkg_s, f.to_str().expect("utf-8")]);
        assert!(out.status.success(), "{file}: {}", stderr(&out));
        assert_eq!(stdout(&out).trim_end_matches('\n'), want, "{config} {file}");
    }
    // `--no-lm` drops the package's scorer: the client's transcript without one.
    let plain = golden_text("numbers_16k.wav");
    let out = harken(&[
        "transcribe",
        "--model",
        pkg_s,
        "--no-lm",
        testdata("numbers_16k.wav").to_str().expect("utf-8"),
    ]);
    assert_eq!(stdout(&out).trim_end_matches('\n'), plain);

    // A package's beam is its default; a request's `--beam` wins over it.
    let beam1 = tmp.path().join("beam1");
    let out =
        harken(&["model", "pack", model, "-o", beam1.to_str().expect("utf-8"), "--beam", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let numbers = testdata("numbers_16k.wav");
    let numbers = numbers.to_str().expect("utf-8");
    let packaged = harken(&["transcribe", "--model", beam1.to_str().expect("utf-8"), numbers]);
    let flagged = harken(&["transcribe", "--model", model, "--beam", "1", numbers]);
    assert_eq!(stdout(&packaged), stdout(&flagged));
    let wide = harken(&[
        "transcribe",
        "--model",
        beam1.to_str().expect("utf-8"),
        "--beam",
        "500",
        numbers,
    ]);
    assert_eq!(stdout(&wide).trim_end_matches('\n'), plain);

    // The planner prices it per second of audio and knows its scorer.
    let out = harken(&["plan", "--model", pkg_s, "--json", "--audio", numbers]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let m = &v["measurement"];
    assert_eq!(m["encoder_s_per_window"], 0.0, "{m}");
    assert!(m["other_s_per_audio_s"].as_f64().expect("rate") > 0.0, "{m}");
    assert_eq!(m["lm_bytes"], std::fs::metadata(&scorer).expect("scorer").len(), "{m}");
    assert!(v["rows"].as_array().is_some_and(|r| r.len() >= 5), "{v}");
}

#[test]
fn packing_refuses_what_would_not_load() {
    let Some(model) = armspeech() else { return };
    let model_s = model.to_str().expect("utf-8");
    let tmp = tempfile::tempdir().expect("temp dir");
    // A scorer for another alphabet.
    let english = tmp.path().join("alphabet.txt");
    std::fs::write(&english, " \na\nb\nc\nd\ne\nf\ng\nh\ni\nt\n'\n").expect("alphabet");
    let words = tmp.path().join("words.txt");
    std::fs::write(&words, "the cat\na dig\n").expect("words");
    let arpa = tmp.path().join("en.arpa");
    let en = tmp.path().join("en.scorer");
    let p = |p: &std::path::Path| p.to_str().expect("utf-8").to_owned();
    let out = harken(&["lm", "build", &p(&words), "--order", "2", "-o", &p(&arpa)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = harken(&["lm", "convert", &p(&arpa), "-o", &p(&en), "--alphabet", &p(&english)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pkg = tmp.path().join("pkg");
    let out = harken(&["model", "pack", model_s, "--scorer", &p(&en), "-o", &p(&pkg)]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("does not fit") && !err.contains("panicked"), "{err}");
    assert!(!pkg.exists(), "nothing is written for a refused pack");

    // A directory with two models: which one is meant is not guessed.
    let two = tmp.path().join("two");
    std::fs::create_dir(&two).expect("dir");
    std::fs::copy(&model, two.join("a.tflite")).expect("copy");
    std::fs::copy(&model, two.join("b.tflite")).expect("copy");
    let out = harken(&["model", "pack", &p(&two), "-o", &p(&pkg)]);
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("2 .tflite models"), "{err}");
    // One model in a directory is found; a missing self-test clip leaves nothing behind.
    std::fs::remove_file(two.join("b.tflite")).expect("rm");
    let out = harken(&["model", "pack", &p(&two), "-o", &p(&pkg), "--self-test", "gone.wav=x"]);
    assert!(!out.status.success() && stderr(&out).contains("gone.wav"), "{}", stderr(&out));
    assert!(!pkg.exists(), "no half-written package");
    let out = harken(&["model", "pack", &p(&two), "-o", &p(&pkg)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(pkg.join("a.tflite").is_file() && pkg.join("MLmodel").is_file());
}

/// The client's transcript of `file` without a scorer.
fn golden_text(file: &str) -> String {
    golden().into_iter().find(|(f, _)| f == file).map(|(_, t)| t).expect("golden line")
}
