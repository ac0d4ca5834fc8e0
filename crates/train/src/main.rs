//! `harken-train`: train a CTC head on a frozen Whisper encoder.
//!
//! - `features`: run the Whisper encoder over every window of a manifest (`{"audio","text"}`
//!   lines) with the same framing as inference (`harken_features::encoder_windows`) and store
//!   the frames that cover audio as f16 (`features.f16` + `index.jsonl`).
//! - `fit`: train dense layers with GELU between them by CTC (`harken_ctc::ctc_loss`) with
//!   AdamW; greedy WER on a validation set picks the best epoch; writes the acoustic model file
//!   (`harken_model::write_ctc_acoustic`: the encoder's tensors plus the head) and a JSON log.
//!
//! The loss gradient comes from the CTC forward–backward in `harken-ctc`; candle back-propagates
//! it through the head by differentiating `Σ logits · g` with `g` held constant, whose gradient
//! with respect to the logits is exactly `g`.

use std::fs::File;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor, Var};
use candle_nn::Optimizer;
use clap::{Parser, Subcommand};
use harken_ctc::{Alphabet, Posteriors, ctc_loss, greedy};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

mod eval;

#[derive(Parser)]
#[command(about = "Train a CTC head on a frozen Whisper encoder")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Encode a manifest's audio with the Whisper encoder and store the features.
    Features {
        /// JSON-lines manifest: {"audio": path relative to the manifest, "text": transcript}.
        manifest: PathBuf,
        /// CTranslate2 Whisper `model.bin`.
        #[arg(long)]
        whisper: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Train the head and write the acoustic model file.
    Fit {
        /// Training features directory.
        #[arg(long)]
        train: PathBuf,
        /// Validation features directory.
        #[arg(long)]
        valid: PathBuf,
        /// CTranslate2 Whisper `model.bin` the features came from (its encoder is exported).
        #[arg(long)]
        whisper: PathBuf,
        /// Output acoustic model (`.safetensors`).
        #[arg(long)]
        out: PathBuf,
        /// Hidden widths (one per hidden layer; empty for a linear head).
        #[arg(long, value_delimiter = ',', default_value = "768")]
        hidden: Vec<usize>,
        #[arg(long, default_value_t = 12)]
        epochs: usize,
        /// Windows per step.
        #[arg(long, default_value_t = 8)]
        batch: usize,
        #[arg(long, default_value_t = 1e-3)]
        lr: f64,
        #[arg(long, default_value_t = 0.2)]
        dropout: f32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Assemble an acoustic model file from a trained head and Whisper weights.
    Export {
        /// A file holding `ctc_head/...` tensors (a head file or another acoustic model).
        #[arg(long)]
        head: PathBuf,
        /// CTranslate2 Whisper `model.bin` whose encoder the head was trained on.
        #[arg(long)]
        whisper: PathBuf,
        /// Output acoustic model.
        #[arg(long)]
        out: PathBuf,
    },
    /// Decode a manifest with a CTC package under several decoder configurations; the
    /// posteriors are computed once (and cached as raw f32 files for other decoders).
    Eval {
        /// CTC package directory (its encoder and head make the posteriors).
        #[arg(long)]
        package: PathBuf,
        /// JSON-lines manifest ({"audio", "text"}).
        #[arg(long)]
        manifest: PathBuf,
        /// Directory caching `NNNN.f32` posteriors and `index.json`.
        #[arg(long)]
        cache: PathBuf,
        /// Configurations, `NAME=key:value,...` with keys lm (path or none), trie (path or
        /// none), alpha, beta, beam, hotwords (`|`-separated), hotword_weight.
        #[arg(long = "config", required = true)]
        configs: Vec<String>,
        /// Output JSON lines: one per configuration and utterance.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Serialize, Deserialize, Clone)]
struct IndexEntry {
    audio: String,
    text: String,
    /// Row offset into features.f16.
    offset: usize,
    frames: usize,
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Features { manifest, whisper, out } => features(&manifest, &whisper, &out),
        Cmd::Fit { train, valid, whisper, out, hidden, epochs, batch, lr, dropout, seed } => {
            fit(&FitArgs { train, valid, whisper, out, hidden, epochs, batch, lr, dropout, seed })
        }
        Cmd::Export { head, whisper, out } => {
            let layers = harken_model::read_ctc_head(&head)?;
            let bytes = harken_model::write_ctc_acoustic(&whisper, &layers, &out)?;
            eprintln!("wrote {} ({bytes} bytes, {} head layers)", out.display(), layers.len());
            Ok(())
        }
        Cmd::Eval { package, manifest, cache, configs, out } => {
            eval::run(&package, &manifest, &cache, &configs, &out)
        }
    }
}

fn features(manifest: &Path, whisper: &Path, out: &Path) -> Result<()> {
    let model = harken_model::Whisper::load_ct2(whisper, harken_model::Precision::F32)
        .with_context(|| format!("loading {}", whisper.display()))?;
    let dims = model.dims();
    let mel = harken_features::LogMel::new(dims.n_mels);
    let base = manifest.parent().unwrap_or(Path::new("."));
    let lines: Vec<serde_json::Value> = std::io::BufReader::new(File::open(manifest)?)
        .lines()
        .map(|l| Ok(serde_json::from_str(&l?)?))
        .collect::<Result<_>>()?;
    std::fs::create_dir_all(out)?;
    let mut feats = BufWriter::new(File::create(out.join("features.f16"))?);
    let mut index = BufWriter::new(File::create(out.join("index.jsonl"))?);
    let bar = indicatif::ProgressBar::new(lines.len() as u64);
    let mut offset = 0;
    let started = Instant::now();
    for l in &lines {
        let audio = l["audio"].as_str().context("manifest line without audio")?;
        let text = l["text"].as_str().unwrap_or_default();
        let pcm =
            harken_audio::decode_file(&base.join(audio), &harken_audio::DecodeOptions::whisper())
                .with_context(|| format!("decoding {audio}"))?;
        let windows = harken_features::encoder_windows(&mel, &pcm.samples, dims.n_mel_frames());
        if windows.len() != 1 {
            bail!("{audio}: training windows must be at most 30 s");
        }
        let w = &windows[0];
        let enc = model.encode(&w.mel)?.to_vec()?;
        let rows = &enc[..w.frames * dims.n_audio_state];
        for v in rows {
            feats.write_all(&half::f16::from_f32(*v).to_le_bytes())?;
        }
        let e = IndexEntry { audio: audio.into(), text: text.into(), offset, frames: w.frames };
        serde_json::to_writer(&mut index, &e)?;
        index.write_all(b"\n")?;
        offset += w.frames;
        bar.inc(1);
    }
    bar.finish();
    feats.flush()?;
    index.flush()?;
    std::fs::write(out.join("width"), dims.n_audio_state.to_string())?;
    eprintln!("{} windows, {offset} frames, {:.0} s", lines.len(), started.elapsed().as_secs_f64());
    Ok(())
}

struct FitArgs {
    train: PathBuf,
    valid: PathBuf,
    whisper: PathBuf,
    out: PathBuf,
    hidden: Vec<usize>,
    epochs: usize,
    batch: usize,
    lr: f64,
    dropout: f32,
    seed: u64,
}

/// Features of one set, memory-mapped.
struct Set {
    map: memmap2::Mmap,
    index: Vec<IndexEntry>,
    targets: Vec<Vec<u32>>,
    width: usize,
}

impl Set {
    fn open(dir: &Path, alphabet: &Alphabet) -> Result<Self> {
        let f =
            File::open(dir.join("features.f16")).with_context(|| format!("{}", dir.display()))?;
        // SAFETY: read-only map of a file this tool wrote and does not modify while training.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&f)? };
        let width: usize = std::fs::read_to_string(dir.join("width"))?.trim().parse()?;
        let index: Vec<IndexEntry> = std::io::BufReader::new(File::open(dir.join("index.jsonl"))?)
            .lines()
            .map(|l| Ok(serde_json::from_str(&l?)?))
            .collect::<Result<_>>()?;
        let targets = index
            .iter()
            .map(|e| alphabet.encode(&alphabet.normalize(&e.text)).map_err(Into::into))
            .collect::<Result<Vec<_>>>()?;
        Ok(Set { map, index, targets, width })
    }

    fn rows(&self, i: usize) -> Vec<f32> {
        let e = &self.index[i];
        let b = &self.map[e.offset * self.width * 2..(e.offset + e.frames) * self.width * 2];
        b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
    }
}

/// A seeded generator (SplitMix64): candle's CPU backend cannot be seeded, and the head must
/// come out the same from the same data and seed.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

struct Head {
    layers: Vec<(Var, Var)>,
}

impl Head {
    /// PyTorch's default `nn.Linear` initialisation, uniform in ±1/√fan_in, from `rng`.
    fn new(widths: &[usize], rng: &mut Rng) -> Result<Self> {
        let layers = widths
            .windows(2)
            .map(|w| {
                let bound = 1.0 / (w[0] as f32).sqrt();
                let mut draw = |n: usize| -> Vec<f32> {
                    (0..n).map(|_| (rng.unit() * 2.0 - 1.0) * bound).collect()
                };
                let weight = Var::from_tensor(&Tensor::from_vec(
                    draw(w[0] * w[1]),
                    (w[1], w[0]),
                    &Device::Cpu,
                )?)?;
                let bias = Var::from_tensor(&Tensor::from_vec(draw(w[1]), w[1], &Device::Cpu)?)?;
                Ok((weight, bias))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Head { layers })
    }

    fn vars(&self) -> Vec<Var> {
        self.layers.iter().flat_map(|(w, b)| [w.clone(), b.clone()]).collect()
    }

    fn forward(&self, x: &Tensor, dropout: f32, rng: &mut Rng) -> Result<Tensor> {
        let mut x = x.clone();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            if dropout > 0.0 {
                let keep = 1.0 - dropout;
                let n = x.elem_count();
                let mask: Vec<f32> =
                    (0..n).map(|_| if rng.unit() < keep { 1.0 / keep } else { 0.0 }).collect();
                let m = Tensor::from_vec(mask, x.shape(), &Device::Cpu)?;
                x = (x * m)?;
            }
            x = x.matmul(&w.as_tensor().t()?)?.broadcast_add(b.as_tensor())?;
            if i + 1 < self.layers.len() {
                x = x.gelu_erf()?;
            }
        }
        Ok(x)
    }
}

#[derive(Serialize)]
struct EpochLog {
    epoch: usize,
    train_loss_per_frame: f64,
    valid_loss_per_frame: f64,
    valid_cer: f64,
    valid_wer: f64,
    seconds: f64,
}

fn fit(a: &FitArgs) -> Result<()> {
    let alphabet = Alphabet::english();
    let train = Set::open(&a.train, &alphabet)?;
    let valid = Set::open(&a.valid, &alphabet)?;
    let classes = alphabet.len() + 1;
    let dev = Device::Cpu;
    let mut rng = Rng(a.seed);
    let mut widths = vec![train.width];
    widths.extend(&a.hidden);
    widths.push(classes);
    let head = Head::new(&widths, &mut rng)?;
    let steps_per_epoch = train.index.len().div_ceil(a.batch);
    let total_steps = steps_per_epoch * a.epochs;
    let mut opt = candle_nn::AdamW::new(
        head.vars(),
        candle_nn::ParamsAdamW { lr: a.lr, weight_decay: 1e-4, ..Default::default() },
    )?;
    let mut order: Vec<usize> = (0..train.index.len()).collect();
    let mut log = Vec::new();
    let mut best: Option<(f64, Vec<harken_model::HeadLayer>)> = None;
    let mut step = 0usize;
    eprintln!(
        "training {} windows ({} frames), validating on {}; widths {widths:?}",
        train.index.len(),
        train.index.iter().map(|e| e.frames).sum::<usize>(),
        valid.index.len()
    );
    for epoch in 1..=a.epochs {
        let started = Instant::now();
        for i in (1..order.len()).rev() {
            order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let (mut loss_sum, mut frames_sum) = (0.0f64, 0usize);
        for chunk in order.chunks(a.batch) {
            // Linear warm-up over 200 steps, then linear decay to a tenth.
            let lr = a.lr
                * ((step + 1) as f64 / 200.0).min(1.0)
                * (1.0 - 0.9 * step as f64 / total_steps.max(1) as f64);
            opt.set_learning_rate(lr);
            step += 1;
            let rows: Vec<Vec<f32>> = chunk.par_iter().map(|&i| train.rows(i)).collect();
            let lens: Vec<usize> = chunk.iter().map(|&i| train.index[i].frames).collect();
            let n: usize = lens.iter().sum();
            let x = Tensor::from_vec(rows.concat(), (n, train.width), &dev)?;
            let logits = head.forward(&x, a.dropout, &mut rng)?;
            let lp = candle_nn::ops::log_softmax(&logits, 1)?.flatten_all()?.to_vec1::<f32>()?;
            let mut starts = Vec::with_capacity(lens.len());
            let mut acc = 0;
            for l in &lens {
                starts.push(acc);
                acc += l;
            }
            let results: Vec<Option<(f64, Vec<f32>)>> = chunk
                .par_iter()
                .zip(&starts)
                .zip(&lens)
                .map(|((&i, &s), &l)| {
                    ctc_loss(
                        &lp[s * classes..(s + l) * classes],
                        classes,
                        &train.targets[i],
                        alphabet.blank(),
                    )
                })
                .collect();
            let mut grad = vec![0.0f32; n * classes];
            let mut used = 0;
            for ((r, &s), &l) in results.iter().zip(&starts).zip(&lens) {
                if let Some((loss, g)) = r {
                    grad[s * classes..(s + l) * classes].copy_from_slice(g);
                    loss_sum += loss;
                    frames_sum += l;
                    used += 1;
                }
            }
            if used == 0 {
                continue;
            }
            // Mean over utterances of the per-utterance loss, scaled per 100 frames so the
            // step size does not depend on how long windows are.
            let scale = 100.0 / (n as f32);
            let g = Tensor::from_vec(grad, (n, classes), &dev)?.affine(f64::from(scale), 0.0)?;
            let surrogate = (logits * g)?.sum_all()?;
            opt.backward_step(&surrogate)?;
        }
        let (vloss, cer, wer) = evaluate(&head, &valid, &alphabet)?;
        let entry = EpochLog {
            epoch,
            train_loss_per_frame: loss_sum / frames_sum.max(1) as f64,
            valid_loss_per_frame: vloss,
            valid_cer: cer,
            valid_wer: wer,
            seconds: started.elapsed().as_secs_f64(),
        };
        eprintln!("{}", serde_json::to_string(&entry)?);
        log.push(entry);
        if best.as_ref().is_none_or(|b| wer < b.0) {
            best = Some((wer, export(&head)?));
        }
    }
    let Some((wer, layers)) = best else { bail!("no epoch ran") };
    let bytes = harken_model::write_ctc_acoustic(&a.whisper, &layers, &a.out)?;
    let head_path = a.out.with_extension("head.safetensors");
    harken_model::write_ctc_head(&layers, &head_path)?;
    let log_path = a.out.with_extension("log.json");
    std::fs::write(&log_path, serde_json::to_string_pretty(&log)?)?;
    eprintln!(
        "wrote {} ({bytes} bytes; best valid greedy WER {:.2}%), {}",
        a.out.display(),
        wer * 100.0,
        log_path.display()
    );
    Ok(())
}

fn export(head: &Head) -> Result<Vec<harken_model::HeadLayer>> {
    head.layers
        .iter()
        .map(|(w, b)| {
            let (_, inputs) = w.as_tensor().dims2()?;
            Ok(harken_model::HeadLayer {
                weight: w.as_tensor().flatten_all()?.to_vec1::<f32>()?,
                bias: b.as_tensor().to_vec1::<f32>()?,
                inputs,
            })
        })
        .collect()
}

fn evaluate(head: &Head, set: &Set, alphabet: &Alphabet) -> Result<(f64, f64, f64)> {
    let classes = alphabet.len() + 1;
    let (mut loss, mut frames, mut ce, mut cn, mut we, mut wn) = (0.0, 0, 0, 0, 0, 0);
    for i in 0..set.index.len() {
        let e = &set.index[i];
        let x = Tensor::from_vec(set.rows(i), (e.frames, set.width), &Device::Cpu)?;
        let lp = candle_nn::ops::log_softmax(&head.forward(&x, 0.0, &mut Rng(0))?, 1)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        if let Some((l, _)) = ctc_loss(&lp, classes, &set.targets[i], alphabet.blank()) {
            loss += l;
            frames += e.frames;
        }
        let hyp = greedy(&Posteriors::new(&lp, classes)?, alphabet).text;
        let refr = alphabet.normalize(&e.text);
        ce += harken_ctc::edit_distance(
            &hyp.chars().collect::<Vec<_>>(),
            &refr.chars().collect::<Vec<_>>(),
        );
        cn += refr.chars().count();
        let (hw, rw): (Vec<&str>, Vec<&str>) =
            (hyp.split_whitespace().collect(), refr.split_whitespace().collect());
        we += harken_ctc::edit_distance(&hw, &rw);
        wn += rw.len();
    }
    Ok((loss / frames.max(1) as f64, ce as f64 / cn.max(1) as f64, we as f64 / wn.max(1) as f64))
}
