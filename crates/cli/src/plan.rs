//! `harken plan`: measure the model here (or read `harken bench --json` results), then let
//! `harken-plan` size and price every platform for a workload.
//!
//! With `--backlog-files N` it prices a one-off backlog on every batch platform instead (and
//! with `--simulate` plays each run out); `--check-local INDEX` compares the simulation with
//! a finished `harken batch` run.
//!
//! Measuring runs `harken bench --json` as child processes, once on 1 thread and once on all
//! cores: the thread count of the compute pool is fixed per process, and the two timings give
//! the parallel fraction used to scale to other vCPU counts.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use harken_plan::simulate::ListedFile;
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
    /// Plan a one-off backlog of this many files (mean length --mean-audio-seconds) instead
    /// of yearly traffic.
    #[arg(long, value_name = "N")]
    backlog_files: Option<u64>,
    /// Backlog: share of file attempts that fail.
    #[arg(long, default_value_t = 0.001, requires = "backlog_files")]
    failure_rate: f64,
    /// Backlog: retries of a failed file before it is recorded as failed.
    #[arg(long, default_value_t = 2, requires = "backlog_files")]
    max_retries: u32,
    /// Backlog: finish within this many hours; instance counts and Lambda memory are sized
    /// to it.
    #[arg(long, requires = "backlog_files")]
    deadline_hours: Option<f64>,
    /// Backlog: run the Ray/Spark cluster's workers on Spot too (AWS Batch always uses Spot).
    #[arg(long, requires = "backlog_files")]
    spot: bool,
    /// Backlog: also run the discrete-event simulation of every platform.
    #[arg(long, requires = "backlog_files")]
    simulate: bool,
    /// Backlog: spread of audio lengths, the σ of a log-normal around the mean (0: all equal).
    #[arg(long, default_value_t = 0.5, requires = "backlog_files")]
    audio_sigma: f64,
    /// Backlog: Lambda concurrency (default: the prices file's account quota, 1,000).
    #[arg(long, requires = "backlog_files")]
    lambda_concurrency: Option<u32>,
    /// Backlog: nodes of the Ray/Spark cluster (default: sized, up to the prices file's
    /// maximum).
    #[arg(long, requires = "backlog_files")]
    cluster_nodes: Option<u32>,
    /// Seed of the simulation's random numbers.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Check the simulation against a finished `harken batch` run: its index (JSON lines
    /// with "status", "duration" and "seconds"; optional "fetch_seconds", and "t", the finish
    /// time in Unix seconds).
    #[arg(long, value_name = "INDEX.jsonl", conflicts_with = "backlog_files")]
    check_local: Option<PathBuf>,
    /// Workers that run used (with --check-local).
    #[arg(long, default_value_t = 1, requires = "check_local")]
    check_workers: u32,
    /// Measured wall-clock seconds of that run (default: from the lines' "t" stamps).
    #[arg(long, requires = "check_local")]
    check_wall_seconds: Option<f64>,
}

/// What `harken plan` was asked to do.
enum Mode {
    /// Yearly traffic (the default).
    Traffic,
    /// A one-off backlog.
    Backlog(harken_plan::Backlog),
    /// Compare the simulation with a finished local run.
    CheckLocal { index: PathBuf, workers: u32, wall_s: Option<f64> },
}

impl PlanArgs {
    fn mode(&self) -> Mode {
        if let Some(index) = &self.check_local {
            return Mode::CheckLocal {
                index: index.clone(),
                workers: self.check_workers,
                wall_s: self.check_wall_seconds,
            };
        }
        match self.backlog_files {
            Some(files) => Mode::Backlog(harken_plan::Backlog {
                files,
                mean_audio_s: self.mean_audio_seconds,
                audio_sigma: self.audio_sigma,
                audio_bytes_per_s: 32_000.0,
                failure_rate: self.failure_rate,
                max_retries: self.max_retries,
                deadline_s: self.deadline_hours.map(|h| h * 3600.0),
                spot_cluster: self.spot,
                lambda_concurrency: self.lambda_concurrency,
                cluster_nodes: self.cluster_nodes,
                simulate: self.simulate,
                seed: self.seed,
            }),
            None => Mode::Traffic,
        }
    }
}

pub(crate) fn run(a: PlanArgs) -> Result<ExitCode> {
    let mode = a.mode();
    if let Mode::CheckLocal { index, workers, wall_s } = &mode {
        return check_local(index, *workers, *wall_s, a.seed, a.json);
    }
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
    if let Mode::Backlog(backlog) = &mode {
        let started = Instant::now();
        let plan = harken_plan::plan_backlog(&measurement, backlog, &prices)?;
        let elapsed = started.elapsed().as_secs_f64();
        if a.json {
            println!("{}", serde_json::to_string_pretty(&plan)?);
        } else {
            print!("{}", harken_plan::render_backlog(&plan));
        }
        if backlog.simulate {
            eprintln!(
                "harken plan: planned and simulated {} platforms × {} files in {elapsed:.2} s",
                plan.rows.len(),
                backlog.files
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
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

/// `--check-local`: read a `harken batch` index and compare the simulation with the run.
fn check_local(
    index: &Path,
    workers: u32,
    wall_s: Option<f64>,
    seed: u64,
    json: bool,
) -> Result<ExitCode> {
    let text = std::fs::read_to_string(index)
        .with_context(|| format!("while reading {}", index.display()))?;
    let run = local_run(&text).with_context(|| format!("in {}", index.display()))?;
    let measured = wall_s.or(run.span_s);
    let check = harken_plan::check_local(run.files, workers, measured, seed)?;
    if json {
        let mut v = serde_json::to_value(&check)?;
        v["skipped_lines"] = run.skipped.into();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", harken_plan::render_check(&check));
        if run.skipped > 0 {
            println!("skipped    {} line(s) whose status is not \"ok\"", run.skipped);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The transcribed files of a `harken batch` index, in order.
struct LocalRun {
    files: Vec<ListedFile>,
    /// From the first start (`t - seconds - fetch_seconds`) to the last finish (`t`), when
    /// every line has `t`.
    span_s: Option<f64>,
    /// File lines with another status.
    skipped: usize,
}

fn local_run(text: &str) -> Result<LocalRun> {
    let mut files = Vec::new();
    let mut skipped = 0;
    let (mut first, mut last, mut stamped) = (f64::INFINITY, f64::NEG_INFINITY, true);
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(line).with_context(|| format!("line {}: not JSON", i + 1))?;
        match v["status"].as_str() {
            Some("ok") => {}
            Some(_) => {
                skipped += 1;
                continue;
            }
            None => continue, // a summary or other non-file line
        }
        let num = |k: &str| {
            v[k].as_f64()
                .with_context(|| format!("line {}: \"{k}\" missing or not a number", i + 1))
        };
        // A worker also spends the fetch; an index may not record it.
        let service_s = num("seconds")? + v["fetch_seconds"].as_f64().unwrap_or(0.0);
        let audio_s = num("duration")?;
        match v["t"].as_f64().filter(|&t| t > 0.0) {
            Some(t) => {
                first = first.min(t - service_s);
                last = last.max(t);
            }
            None => stamped = false,
        }
        files.push(ListedFile { audio_s, service_s });
    }
    if files.is_empty() {
        bail!("no line with \"status\": \"ok\"");
    }
    Ok(LocalRun { files, span_s: (stamped && last > first).then_some(last - first), skipped })
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
