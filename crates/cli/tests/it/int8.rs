//! int8 models end to end: `harken model quantize`, transcription from the int8 file on every
//! kernel path this machine runs (AMX, AVX-512, AVX2, scalar), packaging, and the `--cpu`
//! switch's errors.

use crate::e2e::word_error_rate;
use crate::{harken, model, stderr, stdout, testdata, transcribe};

#[test]
fn quantized_model_transcribes_on_every_kernel_path() {
    let Some(src) = model("tiny.en") else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("tiny-int8");
    let q = harken(&[
        "model",
        "quantize",
        src.to_str().expect("utf-8"),
        "-o",
        out.to_str().expect("utf-8"),
    ]);
    assert!(q.status.success(), "{}", stderr(&q));
    assert!(out.join("model.int8.safetensors").is_file() && out.join("tokenizer.json").is_file());
    let again = harken(&[
        "model",
        "quantize",
        src.to_str().expect("utf-8"),
        "-o",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(again.status.code(), Some(2), "an existing output is refused: {}", stderr(&again));
    let clip = testdata("speech_16k_s16.wav");
    let clip = clip.to_str().expect("utf-8");
    // tiny.en itself mishears this clip ("The quick roundfire stump over the lazy dog.", as
    // faster-whisper's float32 does too): int8 is held to the float model's own transcript.
    let f32 = transcribe(src.to_str().expect("utf-8"), &["--beam", "1", clip]);
    assert!(f32.status.success(), "{}", stderr(&f32));
    let want = stdout(&f32);
    assert!(want.contains("lazy dog"), "{want}");
    let mut texts = std::collections::HashMap::new();
    for cpu in ["auto", "amx", "avx512", "avx2", "scalar"] {
        let o = transcribe(out.to_str().expect("utf-8"), &["--cpu", cpu, "--beam", "1", clip]);
        let err = stderr(&o);
        if err.contains("does not report") {
            eprintln!("kernel path {cpu}: not on this CPU ({})", err.trim());
            continue;
        }
        assert!(o.status.success(), "--cpu {cpu}: {err}");
        let wer = word_error_rate(&want, &stdout(&o));
        assert!(wer <= 0.25, "--cpu {cpu}: {:?} vs f32 {want:?} (WER {wer})", stdout(&o));
        texts.insert(cpu, stdout(&o));
    }
    // AMX computes the same int8 products as AVX-512 VNNI, bit for bit; only the encoder's
    // attention differs (bf16 tiles): the same words.
    if let (Some(amx), Some(avx512)) = (texts.get("amx"), texts.get("avx512")) {
        let wer = word_error_rate(avx512, amx);
        assert!(wer <= 0.1, "amx {amx:?} vs avx512 {avx512:?} (WER {wer})");
    }
    // The package of an int8 directory records its format and loads like any package.
    let pkg = tmp.path().join("pkg");
    let p = harken(&[
        "model",
        "pack",
        out.to_str().expect("utf-8"),
        "-o",
        pkg.to_str().expect("utf-8"),
    ]);
    assert!(p.status.success(), "{}", stderr(&p));
    let manifest = std::fs::read_to_string(pkg.join("MLmodel")).expect("MLmodel");
    assert!(manifest.contains("format: harken_int8"), "{manifest}");
    assert!(manifest.contains("weights: model.int8.safetensors"), "{manifest}");
    let o = transcribe(pkg.to_str().expect("utf-8"), &["--beam", "1", clip]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(word_error_rate(&want, &stdout(&o)) <= 0.25, "{} vs {want}", stdout(&o));
}

#[test]
fn bench_json_names_the_kernel_path() {
    let Some(src) = model("tiny.en") else { return };
    let clip = testdata("speech_16k_s16.wav");
    let o = harken(&[
        "bench",
        "--model",
        src.to_str().expect("utf-8"),
        "--precision",
        "int8",
        "--cpu",
        "scalar",
        "--runs",
        "1",
        "--beam",
        "1",
        "--json",
        clip.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("bench JSON");
    assert_eq!(doc["cpu_path"], "scalar");
    assert_eq!(doc["precision"], "int8");
    assert!(doc["cpu_features"].is_array());
}

#[test]
fn unknown_kernel_paths_are_clear_errors() {
    let Some(src) = model("tiny.en") else { return };
    let clip = testdata("speech_16k_s16.wav");
    for (cpu, says) in [("sse9", "unknown CPU path"), ("avx1024", "unknown CPU path")] {
        let o = transcribe(
            src.to_str().expect("utf-8"),
            &["--cpu", cpu, clip.to_str().expect("utf-8")],
        );
        assert_eq!(o.status.code(), Some(2), "--cpu {cpu}");
        let err = stderr(&o);
        assert!(err.contains(says) && err.lines().count() == 1, "--cpu {cpu}: {err}");
    }
}
