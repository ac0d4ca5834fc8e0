//! `harken-model` against the real model files installed by `scripts/install-models.sh`:
//! the CTranslate2 parser on the real `model.bin`, and the Hugging Face safetensors path checked
//! against it by converting tiny.en to HF names and comparing logits.
//!
//! Without the models the tests print a loud SKIP line; under `CI=true` they fail.

// Test helpers outside #[test] fns: a failed unwrap is a failed test, which is the point.
#![allow(clippy::unwrap_used)]

mod deepspeech;

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use harken_model::{Ct2Dtype, Ct2File, Precision, Whisper};

fn model(name: &str) -> Option<PathBuf> {
    let base = std::env::var_os("HARKEN_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/harken")
    });
    let dir = base.join("models").join(format!("whisper-{name}"));
    if dir.join("model.bin").is_file() {
        return Some(dir);
    }
    let msg = format!(
        "model {name} not installed at {} (run scripts/install-models.sh all)",
        dir.display()
    );
    assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI=true: {msg}");
    eprintln!("\n*** SKIP real-model test: {msg} ***\n");
    None
}

#[test]
fn parses_the_real_base_model_bin() {
    let Some(dir) = model("base") else { return };
    let f = Ct2File::open(&dir.join("model.bin")).unwrap();
    assert_eq!(f.spec, "WhisperSpec");
    let names = f.names();
    assert_eq!(names.len(), 212);
    assert_eq!(f.int_scalar("encoder/num_heads"), Some(8));
    // The output projection is an alias of the embedding.
    let (emb, _) = f.var("decoder/embeddings/weight").unwrap();
    assert_eq!(emb.shape, vec![51_865, 512]);
    assert_eq!(emb.dtype, Ct2Dtype::F16);
    let (proj, _) = f.var("decoder/projection/weight").unwrap();
    assert_eq!(proj.range, emb.range);
    // The key-bias slot of every fused projection is zero (Whisper has no k bias).
    let (_, b) = f.var("encoder/layer_0/self_attention/linear_0/bias").unwrap();
    assert!(b[1024..2048].iter().all(|&x| x == 0));
}

/// Split CTranslate2's fused tensors back into Hugging Face `WhisperForConditionalGeneration`
/// names: the inverse of the mapping `harken-model` applies when it reads safetensors.
fn to_hf(f: &Ct2File) -> HashMap<String, Tensor> {
    let mut out = HashMap::new();
    for name in f.names() {
        let (var, bytes) = f.var(name).unwrap();
        if var.shape.is_empty() || var.dtype != Ct2Dtype::F16 {
            continue;
        }
        let t = Tensor::from_raw_buffer(bytes, DType::F16, &var.shape, &Device::Cpu).unwrap();
        let parts: Vec<&str> = name.split('/').collect();
        let side = parts[0];
        let root = format!("model.{side}");
        let wb = |s: &str| match s {
            "gamma" => "weight".to_owned(),
            "beta" => "bias".to_owned(),
            o => o.to_owned(),
        };
        let mut put = |k: String, v: Tensor| {
            out.insert(k, v);
        };
        match &parts[1..] {
            [c @ ("conv1" | "conv2"), w] => put(format!("{root}.{c}.{w}"), t),
            ["position_encodings", _] => put(format!("{root}.embed_positions.weight"), t),
            ["embeddings", _] => put(format!("{root}.embed_tokens.weight"), t),
            ["layer_norm", g] => put(format!("{root}.layer_norm.{}", wb(g)), t),
            [layer, block, rest @ ..] => {
                let p = format!("{root}.layers.{}", &layer["layer_".len()..]);
                let d = var.shape[0];
                match (*block, rest) {
                    ("self_attention", ["layer_norm", g]) => {
                        put(format!("{p}.self_attn_layer_norm.{}", wb(g)), t)
                    }
                    ("attention", ["layer_norm", g]) => {
                        put(format!("{p}.encoder_attn_layer_norm.{}", wb(g)), t)
                    }
                    ("ffn", ["layer_norm", g]) => put(format!("{p}.final_layer_norm.{}", wb(g)), t),
                    ("ffn", ["linear_0", w]) => put(format!("{p}.fc1.{w}"), t),
                    ("ffn", ["linear_1", w]) => put(format!("{p}.fc2.{w}"), t),
                    ("self_attention", ["linear_0", w]) => {
                        let n = d / 3;
                        put(format!("{p}.self_attn.q_proj.{w}"), t.narrow(0, 0, n).unwrap());
                        if *w == "weight" {
                            put(format!("{p}.self_attn.k_proj.weight"), t.narrow(0, n, n).unwrap());
                        }
                        put(format!("{p}.self_attn.v_proj.{w}"), t.narrow(0, 2 * n, n).unwrap());
                    }
                    ("self_attention", ["linear_1", w]) => {
                        put(format!("{p}.self_attn.out_proj.{w}"), t)
                    }
                    ("attention", ["linear_0", w]) => {
                        put(format!("{p}.encoder_attn.q_proj.{w}"), t)
                    }
                    ("attention", ["linear_1", w]) => {
                        let n = d / 2;
                        if *w == "weight" {
                            put(
                                format!("{p}.encoder_attn.k_proj.weight"),
                                t.narrow(0, 0, n).unwrap(),
                            );
                        }
                        put(format!("{p}.encoder_attn.v_proj.{w}"), t.narrow(0, n, n).unwrap());
                    }
                    ("attention", ["linear_2", w]) => {
                        put(format!("{p}.encoder_attn.out_proj.{w}"), t)
                    }
                    other => panic!("unmapped {name}: {other:?}"),
                }
            }
            other => panic!("unmapped {name}: {other:?}"),
        }
    }
    out
}

fn logits(m: &Whisper) -> Vec<f32> {
    let d = m.dims();
    // A deterministic, speech-like-range input: the encoder does not care what it means.
    let mel: Vec<f32> =
        (0..d.n_mels * d.n_mel_frames()).map(|i| ((i as f32 * 0.37).sin() * 0.8) - 0.2).collect();
    let enc = m.encode(&mel).unwrap();
    let mut s = m.decoder(&enc, 1).unwrap();
    // <|startoftranscript|> of tiny.en, then " The".
    s.step(&[&[50_257, 383]], &[0, 1]).unwrap().into_vec()
}

#[test]
fn safetensors_layout_matches_ctranslate2() {
    let Some(dir) = model("tiny.en") else { return };
    let ct2 = Ct2File::open(&dir.join("model.bin")).unwrap();
    let hf = to_hf(&ct2);
    assert!(hf.contains_key("model.decoder.layers.0.encoder_attn.k_proj.weight"));
    assert!(!hf.contains_key("model.encoder.layers.0.self_attn.k_proj.bias"));
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("model.safetensors");
    candle_core::safetensors::save(&hf, &st).unwrap();
    let a = Whisper::load_ct2(&dir.join("model.bin"), Precision::F32).unwrap();
    let b = Whisper::load_safetensors(&st, Some(6), Some(6), Precision::F32).unwrap();
    assert_eq!(a.dims(), b.dims());
    let (la, lb) = (logits(&a), logits(&b));
    let max = la.iter().zip(&lb).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(max < 1e-4, "logits differ by {max}");
}

/// The real log-mel of `testdata/audio/speech_16k_s16.wav` (faster-whisper's features), padded
/// with zeros to one window as `transcribe` does.
fn speech_mel(m: &Whisper) -> Vec<f32> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/features");
    let raw = std::fs::read(root.join("speech_16k_s16.mel80.f32")).unwrap();
    let v: Vec<f32> =
        raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let (n_mels, frames, content) = (80, 281, 280);
    let d = m.dims();
    assert_eq!(d.n_mels, n_mels);
    let mut mel = vec![0f32; n_mels * d.n_mel_frames()];
    for b in 0..n_mels {
        mel[b * d.n_mel_frames()..b * d.n_mel_frames() + content]
            .copy_from_slice(&v[b * frames..b * frames + content]);
    }
    mel
}

/// Greedy tokens (no timestamps) for the speech fixture, and the logits of the first step.
fn greedy(m: &Whisper, steps: usize) -> (Vec<u32>, Vec<f32>) {
    let enc = m.encode(&speech_mel(m)).unwrap();
    let mut s = m.decoder(&enc, 1).unwrap();
    // tiny.en: <|startoftranscript|> <|notimestamps|>.
    let mut feed = vec![50_257u32, 50_362];
    let (mut out, mut first) = (Vec::new(), Vec::new());
    for _ in 0..steps {
        let l = s.step(&[&feed], &[feed.len() - 1]).unwrap().into_vec();
        let t =
            l.iter().enumerate().max_by(|x, y| x.1.total_cmp(y.1)).map(|(i, _)| i as u32).unwrap();
        if first.is_empty() {
            first = l;
        }
        if t == 50_256 {
            break;
        }
        out.push(t);
        feed = vec![t];
    }
    (out, first)
}

/// Quantization, and rounding differences between kernel paths, may change one word's spelling
/// (tiny.en here: "brown fox" → "brown-fox", which is 3 token edits), not the transcript. WER
/// on the eval sets is the real check (`bench/run.sh`).
fn assert_close_tokens(a: &[u32], b: &[u32]) {
    let (n, m) = (a.len(), b.len());
    let mut d: Vec<Vec<usize>> = (0..=n)
        .map(|i| {
            (0..=m)
                .map(|j| {
                    if i == 0 {
                        j
                    } else if j == 0 {
                        i
                    } else {
                        0
                    }
                })
                .collect()
        })
        .collect();
    for i in 1..=n {
        for j in 1..=m {
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]));
        }
    }
    assert!(d[n][m] <= 3, "{a:?} vs {b:?}: {} edits", d[n][m]);
}

#[test]
fn int8_weights_decode_real_speech_as_f32_does() {
    let Some(dir) = model("tiny.en") else { return };
    let a = Whisper::load_ct2(&dir.join("model.bin"), Precision::F32).unwrap();
    let b = Whisper::load_ct2(&dir.join("model.bin"), Precision::Int8).unwrap();
    let (ta, _) = greedy(&a, 24);
    let (tb, _) = greedy(&b, 24);
    assert!(ta.len() > 5, "{ta:?}");
    assert_close_tokens(&ta, &tb);
}

#[test]
fn int8_file_gives_the_logits_of_quantizing_at_load() {
    let Some(dir) = model("tiny.en") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("model.int8.safetensors");
    let report =
        harken_model::write_int8(harken_model::FloatWeights::Ct2(&dir.join("model.bin")), &out)
            .unwrap();
    // 4 encoder × 4 linears, 4 decoder × 7 linears, the embedding.
    assert_eq!(report.quantized, 4 * 4 + 4 * 7 + 1, "{report:?}");
    let f16_bytes = std::fs::metadata(dir.join("model.bin")).unwrap().len();
    assert!(report.bytes * 10 < f16_bytes * 6, "int8 file {} B vs f16 {f16_bytes} B", report.bytes);
    let mapped = Whisper::load_int8(&out).unwrap();
    let at_load = Whisper::load_ct2(&dir.join("model.bin"), Precision::Int8).unwrap();
    assert!(mapped.is_int8() && at_load.is_int8());
    assert_eq!(mapped.dims(), at_load.dims());
    assert_eq!(logits(&mapped), logits(&at_load));
    assert_eq!(greedy(&mapped, 24), greedy(&at_load, 24));
}

#[test]
fn every_kernel_path_gives_the_same_int8_logits() {
    let Some(dir) = model("tiny.en") else { return };
    let mut m = Whisper::load_ct2(&dir.join("model.bin"), Precision::Int8).unwrap();
    m.set_isa(harken_model::Isa::Scalar);
    let (want_tokens, want) = greedy(&m, 24);
    for isa in harken_model::Isa::runnable() {
        m.set_isa(isa);
        let (tokens, got) = greedy(&m, 24);
        assert_close_tokens(&tokens, &want_tokens);
        // The int8 products are bit-identical; attention differs by rounding (fused
        // multiply-add; bf16 tiles for the encoder on AMX), which can move an activation
        // across a quantization step.
        let max = got.iter().zip(&want).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        eprintln!("{isa}: first-step logits within {max} of the scalar path");
        assert!(max < 1.0, "{isa}: logits differ by {max}");
    }
}

#[test]
fn malformed_int8_files_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("model.int8.safetensors");
    std::fs::write(&p, b"not a model").unwrap();
    assert!(Whisper::load_int8(&p).is_err());
    // A valid safetensors file without Harken's metadata.
    let t =
        candle_core::Tensor::zeros(4, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
    candle_core::safetensors::save(&std::collections::HashMap::from([("x".to_owned(), t)]), &p)
        .unwrap();
    let err = Whisper::load_int8(&p).unwrap_err().to_string();
    assert!(err.contains("harken-whisper-int8"), "{err}");
    let Some(dir) = model("tiny.en") else { return };
    harken_model::write_int8(harken_model::FloatWeights::Ct2(&dir.join("model.bin")), &p).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    for cut in [9, 100, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&p, &bytes[..cut]).unwrap();
        assert!(Whisper::load_int8(&p).is_err(), "cut at {cut}");
    }
}
