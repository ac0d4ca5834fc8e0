//! `harken plan`: measure the model here (or read `harken bench --json` results), then let
//! `harken-plan` size and price every platform for a workload.
//!
//! Measuring runs `harken bench --json` as child processes, once on 1 thread and once on all
//! cores: the thread count of the compute pool is fixed per process, and the two timings give
//! the parallel fraction used to scale to other vCPU counts.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use harken_plan::{Measurement, Prices, Workload};
use serde_json::Value;

use crate::ModelArgs;

/// A short clip of speech for measuring when no `--audio` is given.
const BUILTIN_CLIP: &[u8] = include_bytes!("../../../testdata/audio/numbers_16k.wav");

/// Flags of `harken plan`.
#[derive(clap::Args, Debug)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Invocations per year.
    #[arg(long, default_value_t = 250_000.0)]
    invocations_per_year: f64,
    /// Mean audio length per invocation, seconds.
    #[arg(long, default_value_t = 20.0)]
    mean_audio_seconds: f64,
    /// 95th-percentile audio length, seconds (default: 1.5 × mean).
    #[arg(long)]
    p95_audio_seconds: Option<f64>,
    /// Requests in flight at the busiest moment.
    #[arg(long, default_value_t = 1)]
    peak_concurrency: u32,
    /// Region of the prices (the built-in file covers us-east-1; others need --prices).
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Prices and limits file (default: the built-in deploy/prices/aws-us-east-1.yaml).
    #[arg(long)]
    prices: Option<PathBuf>,
    /// Use these `harken bench --json` results instead of measuring (give two, on 1 and N
    /// threads, to measure the parallel fraction).
    #[arg(long = "bench")]
    bench: Vec<PathBuf>,
    /// Parallel fraction when only one bench result is given.
    #[arg(long, default_value_t = 0.8)]
    parallel_fraction: f64,
    /// Audio to measure with (default: a 3-s built-in clip; pass representative audio).
    #[arg(long)]
    audio: Vec<PathBuf>,
    /// Put API Gateway (HTTP API) in front of Lambda.
    #[arg(long)]
    api_gateway: bool,
    /// Keep one Lambda environment warm with a 5-minute schedule.
    #[arg(long)]
    keep_warm: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: PlanArgs) -> Result<ExitCode> {
    let prices = match &a.prices {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("while reading {}", path.display()))?;
            Prices::parse(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => Prices::builtin(),
    };
    if prices.region != a.region {
        bail!(
            "the prices file is for {}, not {}; pass --prices with a file for {}",
            prices.region,
            a.region,
            a.region
        );
    }
    let reports: Vec<Value> = if a.bench.is_empty() {
        measure(&a)?
    } else {
        a.bench
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("while reading {}", p.display()))?;
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not `harken bench --json` output", p.display()))
            })
            .collect::<Result<_>>()?
    };
    let measurement = measurement_from(&reports, a.parallel_fraction)?;
    let workload = Workload {
        invocations_per_year: a.invocations_per_year,
        mean_audio_s: a.mean_audio_seconds,
        p95_audio_s: a.p95_audio_seconds.unwrap_or(a.mean_audio_seconds * 1.5),
        peak_concurrency: a.peak_concurrency.max(1),
        audio_bytes_per_s: 32_000.0,
        api_gateway: a.api_gateway,
        keep_warm: a.keep_warm,
    };
    let plan = harken_plan::plan(&measurement, &workload, &prices)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", harken_plan::render(&plan));
    }
    Ok(ExitCode::SUCCESS)
}

/// Run `harken bench --json` on 1 thread and on all cores.
fn measure(a: &PlanArgs) -> Result<Vec<Value>> {
    let exe = std::env::current_exe().context("while locating the harken binary")?;
    let tmp = tempfile::Builder::new().prefix("harken-plan-").tempdir()?;
    let audio: Vec<PathBuf> = if a.audio.is_empty() {
        let p = tmp.path().join("clip.wav");
        std::fs::write(&p, BUILTIN_CLIP)?;
        vec![p]
    } else {
        a.audio.clone()
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut thread_counts = vec![1];
    if cores > 1 {
        thread_counts.push(cores);
    }
    let mut out = Vec::new();
    for threads in thread_counts {
        eprintln!("harken plan: measuring on {threads} thread(s)…");
        let mut c = Command::new(&exe);
        c.args(["bench", "--json", "--runs", "3", "--language", "en"]).args([
            "--threads",
            &threads.to_string(),
            "--precision",
            &a.model.precision,
        ]);
        if let Some(m) = &a.model.model {
            c.args(["--model", m]);
        }
        c.args(&audio);
        let o = c.output().context("while running harken bench")?;
        if !o.status.success() {
            bail!("harken bench failed: {}", String::from_utf8_lossy(&o.stderr).trim());
        }
        out.push(serde_json::from_slice(&o.stdout).context("while reading harken bench output")?);
    }
    Ok(out)
}

/// Turn bench reports into the planner's measurement.
fn measurement_from(reports: &[Value], fallback_p: f64) -> Result<Measurement> {
    let f64_of = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    let totals = |r: &Value| -> (f64, f64, f64, f64) {
        let mut t = (0.0, 0.0, 0.0, 0.0); // time, audio, encoder, windows
        for f in r["files"].as_array().into_iter().flatten() {
            t.0 += f64_of(f, "min_seconds");
            t.1 += f64_of(f, "audio_seconds");
            t.2 += f["stages"]["encoder"].as_f64().unwrap_or(0.0);
            t.3 += f["windows"].as_f64().unwrap_or(1.0);
        }
        t
    };
    let Some(best) = reports.iter().max_by_key(|r| r["threads"].as_u64().unwrap_or(1)) else {
        bail!("no bench results");
    };
    let (time, audio, encoder, windows) = totals(best);
    if audio <= 0.0 || windows <= 0.0 {
        bail!("bench results hold no transcribed audio");
    }
    let threads = best["threads"].as_u64().unwrap_or(1) as u32;
    let single = reports.iter().find(|r| r["threads"].as_u64() == Some(1));
    let (p, how) = match single {
        Some(s) if threads > 1 => {
            let p = Measurement::parallel_fraction_from(totals(s).0, time, threads);
            (p, format!("parallel fraction from 1 vs {threads} threads"))
        }
        _ => (fallback_p, format!("parallel fraction {fallback_p} assumed")),
    };
    let model = best["model"].as_str().unwrap_or("model");
    let model = std::path::Path::new(model)
        .file_name()
        .map_or_else(|| model.to_owned(), |n| n.to_string_lossy().into_owned());
    // Whisper's encoder (and the CTC heads on it) runs whole 30-s windows; a DeepSpeech
    // network costs the same for every 20-ms frame, so all its time scales with the audio.
    let per_window = best["family"].as_str().is_none_or(|f| f != "deepspeech");
    let (encoder_s_per_window, other_s_per_audio_s) = if per_window {
        (encoder / windows, ((time - encoder) / audio).max(0.0))
    } else {
        (0.0, time / audio)
    };
    let beam = match best["beam"].as_u64() {
        Some(b) => format!("beam {b}"),
        None => "the model's beam".to_owned(),
    };
    Ok(Measurement {
        model: format!("{model} ({})", best["precision"].as_str().unwrap_or("f32")),
        threads,
        encoder_s_per_window,
        other_s_per_audio_s,
        parallel_fraction: p,
        peak_rss_bytes: best["peak_rss_bytes"].as_u64().unwrap_or(0),
        load_s: f64_of(best, "load_seconds"),
        model_bytes: best["model_bytes"].as_u64().unwrap_or(0),
        binary_bytes: best["binary_bytes"].as_u64().unwrap_or(0),
        lm_bytes: best["lm_bytes"].as_u64().unwrap_or(0),
        source: format!(
            "harken bench: {audio:.1} s of audio in {windows:.0} {}, {beam}, min of runs; {how}",
            if per_window { "window(s)" } else { "frames" }
        ),
    })
}
