//! `harken`: the command-line front end. Parses flags, resolves the model, wires the engine to
//! stdout, and maps every error to one line on stderr and exit code 2 (ripgrep's policy).

mod batch;
mod bench;
mod lambda;
mod listen;
mod lm_cmd;
mod model;
mod package_cmd;
mod plan;
mod scorer_io;
mod serve;
mod transcribe;
mod vad_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Speech to text with Whisper, in one static binary.
#[derive(Parser, Debug)]
#[command(name = "harken", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Transcribe (or translate) audio files.
    Transcribe(transcribe::TranscribeArgs),
    /// Transcribe a directory, an s3:// prefix or a manifest into an output, resumably; or
    /// serve as a JSON-lines worker (--jsonl).
    Batch(batch::BatchArgs),
    /// Measure load time, real-time factor, per-stage times and peak memory.
    Bench(bench::BenchArgs),
    /// Serve the SageMaker container contract and the OpenAI transcription API over HTTP.
    Serve(serve::ServeArgs),
    /// Run as an AWS Lambda function (custom runtime); also what `bootstrap` runs.
    Lambda(lambda::LambdaArgs),
    /// Size and price the deployment on every platform from speed measured here.
    Plan(plan::PlanArgs),
    /// n-gram language models: convert, inspect, evaluate.
    #[command(subcommand)]
    Lm(lm_cmd::LmCommand),
    /// Model packages and the local model cache.
    #[command(subcommand)]
    Model(package_cmd::ModelCommand),
    /// Find the speech in audio files (Silero VAD): regions as JSON lines.
    Vad(vad_cmd::VadCmdArgs),
    /// Live captions: an audio file played at real-time speed through the streaming recogniser.
    Listen(listen::ListenArgs),
}

/// Shared model and threading flags.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ModelArgs {
    /// Model: a package or Whisper directory, a DeepSpeech / Coqui STT `.tflite` file, an
    /// installed name (`base`, `tiny.en`), or a URI
    /// (`file://`, `s3://BUCKET/PREFIX`, `https://…/model.tar.gz`, `models:/NAME/VERSION`,
    /// `models:/NAME@ALIAS`, `runs:/RUN_ID/PATH`). Default: the installed Whisper base.
    #[arg(long, env = "HARKEN_MODEL_URI")]
    model: Option<String>,
    /// Compute threads (default: all cores).
    #[arg(long, env = "HARKEN_THREADS")]
    threads: Option<usize>,
    /// In-memory weight precision: f32, or int8 (8-bit linear layers, activations quantized per
    /// row). A model with an int8 weights file is int8 whatever this says.
    #[arg(long, env = "HARKEN_PRECISION", default_value = "f32", value_parser = ["f32", "int8"])]
    precision: String,
    /// Kernel path: auto (the best this CPU runs), amx, avx512, avx2 or scalar.
    #[arg(long, env = "HARKEN_CPU", default_value = "auto")]
    cpu: String,
    /// An n-gram LM (ARPA or Harken binary) fused into Whisper's beam search at word
    /// boundaries (CTC packages carry their own).
    #[arg(long = "whisper-lm", env = "HARKEN_WHISPER_LM")]
    whisper_lm: Option<std::path::PathBuf>,
    /// A DeepSpeech / Coqui STT `.scorer` package for a `.tflite` model (KenLM + vocabulary
    /// trie, memory-mapped); its α and β apply unless --lm-alpha / --lm-beta say otherwise.
    #[arg(long, env = "HARKEN_SCORER")]
    scorer: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    one_line_panics();
    // In a Lambda deployment zip the binary is `bootstrap`, started without arguments.
    let as_bootstrap = std::env::args_os()
        .next()
        .and_then(|a| std::path::Path::new(&a).file_name().map(|n| n == "bootstrap"))
        .unwrap_or(false);
    let command = if as_bootstrap {
        use clap::FromArgMatches as _;
        let matches =
            <lambda::LambdaArgs as clap::Args>::augment_args(clap::Command::new("bootstrap"))
                .get_matches_from(["bootstrap"]);
        match lambda::LambdaArgs::from_arg_matches(&matches) {
            Ok(a) => Command::Lambda(a),
            Err(e) => e.exit(),
        }
    } else {
        Cli::parse().command
    };
    init_logging(matches!(command, Command::Lambda(_)));
    let result = match command {
        Command::Lambda(args) => lambda::run(args),
        Command::Transcribe(args) => transcribe::run(args),
        Command::Batch(args) => batch::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Model(cmd) => package_cmd::run(cmd),
        Command::Vad(args) => vad_cmd::run(args),
        Command::Listen(args) => listen::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Lm(cmd) => lm_cmd::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("harken: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Report a panic as one line on stderr instead of the default multi-line message. Libraries
/// contain panics where they can (the audio decoder turns one into an error); the line still
/// appears then, so a decoder bug stays visible.
fn one_line_panics() {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_owned());
        let at =
            info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("harken: internal panic{at}: {}", what.replace('\n', " "));
    }));
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Logs go to stderr at the `HARKEN_LOG` level (default `warn`). By default the audio
/// decoders' own log lines are off: a probe failure is already reported as Harken's one-line
/// error, and the decoder's internal detail only adds noise.
///
/// On Lambda (`harken lambda`) the default level is `info` and lines are JSON, one per event, as
/// CloudWatch Logs Insights queries them.
fn init_logging(lambda: bool) {
    const QUIET_DECODERS: &str = "symphonia_core=off,symphonia_bundle_mp3=off,symphonia_bundle_flac=off,symphonia_format_wav=off,symphonia_format_ogg=off,symphonia_codec_vorbis=off,symphonia_codec_pcm=off";
    let filter = match std::env::var("HARKEN_LOG") {
        Ok(spec) => tracing_subscriber::EnvFilter::new(spec),
        Err(_) if lambda => tracing_subscriber::EnvFilter::new(format!("info,{QUIET_DECODERS}")),
        Err(_) => tracing_subscriber::EnvFilter::new(format!("warn,{QUIET_DECODERS}")),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if lambda { builder.json().flatten_event(true).try_init() } else { builder.try_init() };
}
