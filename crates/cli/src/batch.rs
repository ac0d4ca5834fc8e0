//! `harken batch`: a directory, an `s3://` prefix or a manifest transcribed into an output
//! directory or prefix, with a resumable index (`harken-batch` owns the job; this module binds
//! it to the engine, the terminal and the signals). `--jsonl` makes it a worker for engines that
//! pipe records through a process (Spark's `RDD.pipe`, AWS Batch array jobs, `xargs`).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use harken_api::{ResponseFormat, render};
use harken_batch::{
    ErrorBody, Event, Input, RunConfig, Shard, Source, Status, Transcribed, Transcriber,
    WorkerConfig,
};
use harken_engine::{Engine, Task, TranscribeOptions};
use indicatif::{ProgressBar, ProgressStyle};

use crate::ModelArgs;
use crate::transcribe::DecodingArgs;

/// Flags of `harken batch`.
#[derive(clap::Args, Debug)]
pub(crate) struct BatchArgs {
    /// A directory or `s3://BUCKET/PREFIX` of audio files (listed recursively by extension).
    #[arg(conflicts_with_all = ["manifest", "jsonl"], required_unless_present_any = ["manifest", "jsonl"])]
    source: Option<String>,
    /// A JSON-lines manifest (path or `s3://`): `{"audio": "…", "id": "…", "language": "…"}`
    /// or a bare path/URI per line; relative paths resolve beside the manifest.
    #[arg(long, conflicts_with = "jsonl")]
    manifest: Option<String>,
    /// Output directory or `s3://BUCKET/PREFIX`: one result per input and `index.jsonl`
    /// (`index-I-of-N.jsonl` per shard). Required except with --jsonl.
    #[arg(long, short = 'o', required_unless_present = "jsonl")]
    output: Option<String>,
    /// Worker mode: requests on stdin, one JSON record per request on stdout (completion
    /// order); with --output, result files are written too.
    #[arg(long)]
    jsonl: bool,
    /// Result format.
    #[arg(long, short = 'f', default_value = "json", value_parser = ["text", "json", "verbose_json", "srt", "vtt"])]
    format: String,
    /// Inputs transcribed at once. They share the process's --threads compute threads (default:
    /// all cores), so give --threads at least --jobs.
    #[arg(long, short = 'j', default_value_t = 2)]
    jobs: usize,
    /// Take only shard INDEX of COUNT (default: from AWS_BATCH_JOB_ARRAY_INDEX and
    /// AWS_BATCH_JOB_ARRAY_SIZE in an AWS Batch array job).
    #[arg(long, value_name = "INDEX/COUNT")]
    shard: Option<String>,
    /// Transcribe every input again, even those an earlier run finished.
    #[arg(long)]
    force: bool,
    /// Refuse inputs larger than this (e.g. 512MB, 1GB).
    #[arg(long, default_value = "1GB")]
    max_input_bytes: String,
    /// Reject audio longer than this many seconds.
    #[arg(long)]
    max_audio_seconds: Option<f64>,
    /// Spoken language code, or `auto` (a manifest line's `language` wins).
    #[arg(long, default_value = "auto")]
    language: String,
    /// Transcribe, or translate into English.
    #[arg(long, default_value = "transcribe", value_parser = ["transcribe", "translate"])]
    task: String,
    /// Beam width (default 5 for Whisper; the model's for CTC).
    #[arg(long)]
    beam: Option<usize>,
    /// Align each word to the audio (adds `words` to JSON results).
    #[arg(long)]
    word_timestamps: bool,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    decoding: DecodingArgs,
}

struct EngineTranscriber<'a> {
    engine: &'a Engine,
    opts: TranscribeOptions,
    format: ResponseFormat,
    task: String,
}

impl Transcriber for EngineTranscriber<'_> {
    fn transcribe(&self, audio: Vec<u8>, input: &Input) -> Result<Transcribed, ErrorBody> {
        let mut opts = self.opts.clone();
        if let Some(l) = &input.language {
            opts.language = (l != "auto").then(|| l.clone());
        }
        let ext = input.rel.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
        let (t, _) = self
            .engine
            .transcribe_bytes(audio, ext.as_deref(), &opts, &mut |_| {})
            .map_err(|e| ErrorBody::new(e.kind(), format!("{e}")))?;
        let body = render(&t, self.format, None, &self.task);
        Ok(Transcribed { body, text: t.text, language: t.language, duration: t.duration_s })
    }
}

pub(crate) fn run(args: BatchArgs) -> Result<ExitCode> {
    let format = ResponseFormat::parse(&args.format).context("unknown --format")?;
    let max_input_bytes =
        crate::model::parse_bytes(&args.max_input_bytes).context("--max-input-bytes")?;
    let shard = match &args.shard {
        Some(s) => Some(Shard::parse(s)?),
        None => Shard::from_env(|k| std::env::var(k).ok())?,
    };
    if args.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let task = if args.task == "translate" { Task::Translate } else { Task::Transcribe };
    let mut opts = TranscribeOptions {
        language: (args.language != "auto").then(|| args.language.clone()),
        task,
        beam_size: args.beam.unwrap_or(5),
        word_timestamps: args.word_timestamps,
        ..TranscribeOptions::default()
    };
    args.decoding.apply(&mut opts);
    if opts.lm.beam.is_none() {
        opts.lm.beam = args.beam;
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("while starting the I/O runtime")?;
    let stop = Arc::new(AtomicBool::new(false));
    rt.spawn(stop_on_signals(Arc::clone(&stop)));

    // List before loading the model: a wrong source fails in a second, not after the load.
    let inputs = if args.jsonl {
        Vec::new()
    } else {
        let source = match (&args.source, &args.manifest) {
            (_, Some(m)) => Source::Manifest(m.clone()),
            (Some(s), None) => Source::Prefix(s.clone()),
            (None, None) => bail!("give a directory, an s3:// prefix or --manifest"),
        };
        let inputs = rt
            .block_on(harken_batch::list_inputs(&source))
            .with_context(|| format!("while listing {source:?}"))?;
        if inputs.is_empty() {
            bail!(
                "no audio files in {source:?} (extensions: {})",
                harken_batch::AUDIO_EXTENSIONS.join(", ")
            );
        }
        inputs
    };

    let loaded = crate::model::load(&args.model, args.max_audio_seconds)?;
    let model = loaded.identity.as_ref().map_or_else(
        || loaded.engine.dir().display().to_string(),
        |i| format!("{}@{} {}", i.package, i.version, i.digest),
    );
    let settings = settings(&model, &args.model.precision, &args.format, &opts);
    let transcriber =
        EngineTranscriber { engine: &loaded.engine, opts, format, task: args.task.clone() };

    if args.jsonl {
        let cfg = WorkerConfig {
            jobs: args.jobs,
            output: args.output.clone(),
            extension: format.extension().to_owned(),
            settings,
            max_input_bytes,
            shard,
        };
        let stdin = Box::new(std::io::BufReader::new(std::io::stdin()));
        let mut stdout = std::io::stdout();
        let s =
            harken_batch::serve_jsonl(rt.handle(), stdin, &mut stdout, &cfg, &transcriber, &stop)?;
        tracing::info!(requests = s.total, ok = s.ok, failed = s.failed, "jsonl worker done");
        return Ok(if stop.load(Ordering::SeqCst) {
            ExitCode::from(143)
        } else {
            ExitCode::SUCCESS
        });
    }

    let output = args.output.clone().context("--output is required")?;
    let cfg = RunConfig {
        output: output.clone(),
        extension: format.extension().to_owned(),
        jobs: args.jobs,
        settings,
        max_input_bytes,
        shard,
        force: args.force,
    };
    let bar = progress_bar();
    let audio_s = std::sync::Mutex::new(0.0f64);
    let on_event = |e: Event<'_>| match e {
        Event::Planned { total, skipped } => {
            tracing::info!(total, skipped, "batch planned");
            if let Some(b) = &bar {
                b.set_length((total - skipped) as u64);
                if skipped > 0 {
                    b.println(format!(
                        "{skipped} of {total} inputs done by an earlier run; skipping them"
                    ));
                }
            }
        }
        Event::Finished(r) => {
            let done = audio_s.lock().map(|mut a| {
                *a += r.duration.unwrap_or(0.0);
                *a
            });
            match r.status {
                Status::Ok => tracing::info!(audio = %r.audio, seconds = r.seconds, "transcribed"),
                Status::Error => {
                    let e = r.error.as_ref();
                    tracing::warn!(audio = %r.audio, code = e.map(|e| e.code.as_str()), error = e.map(|e| e.message.as_str()), "failed");
                    if let Some(b) = &bar {
                        b.println(format!(
                            "failed: {}: {}",
                            r.audio,
                            e.map_or("", |e| e.message.as_str())
                        ));
                    }
                }
            }
            if let Some(b) = &bar {
                b.inc(1);
                if let Ok(a) = done {
                    b.set_message(format!("{a:.0} s of audio"));
                }
            }
        }
    };
    let started = std::time::Instant::now();
    let s = harken_batch::run(rt.handle(), inputs, &cfg, &transcriber, &stop, &on_event)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let wall = started.elapsed().as_secs_f64();
    let audio = audio_s.into_inner().unwrap_or(0.0);
    eprintln!(
        "harken batch: {} inputs: {} transcribed, {} failed, {} done earlier, {} left; {:.0} s of audio in {:.1} s ({:.1}× real time); index: {}",
        s.total,
        s.ok,
        s.failed,
        s.skipped,
        s.remaining,
        audio,
        wall,
        if wall > 0.0 { audio / wall } else { 0.0 },
        harken_artifacts::objects::join(&output, &harken_batch::index_name(shard)),
    );
    if s.remaining > 0 {
        eprintln!("harken batch: stopped by a signal; run the same command again to finish");
        return Ok(ExitCode::from(143));
    }
    Ok(if s.failed > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// What makes results comparable between runs: the model and every option that changes text.
fn settings(model: &str, precision: &str, format: &str, opts: &TranscribeOptions) -> String {
    use sha2::Digest as _;
    let all = format!("{model}|{precision}|{format}|{opts:?}|{}", env!("CARGO_PKG_VERSION"));
    let digest = sha2::Sha256::digest(all.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{model} {format} {hex}")
}

/// SIGTERM or Ctrl-C: finish the inputs in flight, then stop; a second one stops at once.
async fn stop_on_signals(stop: Arc<AtomicBool>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) =
            (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
        else {
            return;
        };
        for n in 0.. {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            if n > 0 {
                eprintln!("harken batch: second signal; stopping now");
                std::process::exit(143);
            }
            eprintln!(
                "harken batch: signal received; finishing the inputs in flight (again to stop now)"
            );
            stop.store(true, Ordering::SeqCst);
        }
    }
}

fn progress_bar() -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:40}] {pos}/{len} files, {msg}, eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Some(bar)
}
