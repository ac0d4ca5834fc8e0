//! `harken bench`: load time, real-time factor, per-stage times and peak RSS, as a table or as
//! JSON for the deployment planner and `bench/compare.py`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use harken_engine::TranscribeOptions;
use serde_json::json;

use crate::ModelArgs;

/// Flags of `harken bench`.
#[derive(clap::Args, Debug)]
pub(crate) struct BenchArgs {
    /// Audio files to transcribe.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    /// Transcriptions per file.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Beam width; 1 decodes greedily.
    #[arg(long, default_value_t = 5)]
    beam: usize,
    /// Spoken language code, or `auto`.
    #[arg(long, default_value = "auto")]
    language: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: BenchArgs) -> Result<ExitCode> {
    let loaded = crate::model::load(&args.model, None)?;
    let engine = &loaded.engine;
    let load_s = engine.load_time().as_secs_f64();
    let opts = TranscribeOptions {
        language: (args.language != "auto").then(|| args.language.clone()),
        beam_size: args.beam,
        ..TranscribeOptions::default()
    };
    let mut files = Vec::new();
    for f in &args.files {
        let mut runs = Vec::new();
        let mut last = None;
        for _ in 0..args.runs.max(1) {
            let t = Instant::now();
            let (tr, timings) = engine
                .transcribe_file(f, &opts, &mut |_| {})
                .with_context(|| format!("while transcribing {}", f.display()))?;
            runs.push(t.elapsed().as_secs_f64());
            last = Some((tr, timings));
        }
        let Some((tr, tm)) = last else { continue };
        let mut sorted = runs.clone();
        sorted.sort_by(f64::total_cmp);
        let min = sorted[0];
        let median = sorted[sorted.len() / 2];
        files.push(json!({
            "file": f.to_string_lossy(),
            "audio_seconds": tr.duration_s,
            "runs_seconds": runs,
            "min_seconds": min,
            "median_seconds": median,
            "rtf": if tr.duration_s > 0.0 { min / tr.duration_s } else { 0.0 },
            "stages": {
                "audio": tm.audio.as_secs_f64(),
                "mel": tm.mel.as_secs_f64(),
                "encoder": tm.encoder.as_secs_f64(),
                "decoder": tm.decoder.as_secs_f64(),
                "alignment": tm.alignment.as_secs_f64(),
            },
            "windows": tm.windows,
            "text": tr.text,
        }));
    }
    let report = json!({
        "model": engine.dir().to_string_lossy(),
        "family": engine.family(),
        "precision": if engine.is_int8() { "int8" } else { "f32" },
        "cpu_path": engine.isa().name(),
        "cpu_detected": harken_engine::Isa::detect().name(),
        "cpu_features": harken_engine::CpuReport::probe().features,
        "threads": args.model.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        // DeepSpeech models decode with their own (or their package's) beam width.
        "beam": (engine.family() != "deepspeech").then_some(args.beam),
        "load_seconds": load_s,
        "peak_rss_bytes": peak_rss_bytes(),
        "model_bytes": crate::model::model_bytes(&loaded.lease),
        "lm_bytes": lm_bytes(&loaded.lease, args.model.scorer.as_deref()),
        "binary_bytes": std::env::current_exe().and_then(std::fs::metadata).map_or(0, |m| m.len()),
        "files": files,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("model      {}", report["model"].as_str().unwrap_or(""));
        println!("load       {load_s:.3} s");
        println!(
            "kernels    {} ({}, detected {})",
            report["cpu_path"].as_str().unwrap_or(""),
            report["precision"].as_str().unwrap_or(""),
            report["cpu_detected"].as_str().unwrap_or("")
        );
        println!(
            "peak RSS   {:.1} MiB",
            report["peak_rss_bytes"].as_u64().unwrap_or(0) as f64 / 1048576.0
        );
        for f in report["files"].as_array().into_iter().flatten() {
            let st = &f["stages"];
            println!(
                "{}: {:.1} s audio, min {:.3} s, median {:.3} s, RTF {:.3} | audio {:.3} mel {:.3} encoder {:.3} decoder {:.3} s",
                f["file"].as_str().unwrap_or(""),
                f["audio_seconds"].as_f64().unwrap_or(0.0),
                f["min_seconds"].as_f64().unwrap_or(0.0),
                f["median_seconds"].as_f64().unwrap_or(0.0),
                f["rtf"].as_f64().unwrap_or(0.0),
                st["audio"].as_f64().unwrap_or(0.0),
                st["mel"].as_f64().unwrap_or(0.0),
                st["encoder"].as_f64().unwrap_or(0.0),
                st["decoder"].as_f64().unwrap_or(0.0),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Peak resident set size of this process (`VmHWM`), bytes; 0 where `/proc` is absent.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Bytes of the language model the engine decodes with: `--scorer`, or the package's scorer
/// or n-gram LM.
fn lm_bytes(resolved: &harken_artifacts::Resolved, scorer: Option<&std::path::Path>) -> u64 {
    if let Some(s) = scorer {
        return std::fs::metadata(s).map_or(0, |m| m.len());
    }
    let Some(p) = &resolved.package else { return 0 };
    let lm = match &p.flavor().family {
        harken_package::Family::Deepspeech { scorer, .. } => scorer.as_deref(),
        harken_package::Family::Ctc { language_model, .. } => language_model.as_deref(),
        harken_package::Family::Whisper { .. } => None,
    };
    lm.and_then(|lm| p.flavor().files.iter().find(|f| f.path == lm)).map_or(0, |f| f.size)
}
