//! `harken transcribe`: files in, text/JSON/subtitles out, one file at a time so a failure on
//! one input never loses the others' output.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use harken_api::{ResponseFormat, render};
use harken_engine::{Engine, Task, TranscribeOptions};
use indicatif::{ProgressBar, ProgressStyle};

use crate::ModelArgs;

/// Flags of `harken transcribe`.
#[derive(clap::Args, Debug)]
pub(crate) struct TranscribeArgs {
    /// Audio files (WAV, FLAC, MP3, OGG Vorbis/Opus, M4A/AAC, WebM/Opus).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    /// Output format.
    #[arg(long, short = 'f', default_value = "text", value_parser = ["text", "json", "verbose_json", "srt", "vtt"])]
    format: String,
    /// Spoken language code (en, de, …) or `auto` to detect it.
    #[arg(long, default_value = "auto")]
    language: String,
    /// Transcribe, or translate into English.
    #[arg(long, default_value = "transcribe", value_parser = ["transcribe", "translate"])]
    task: String,
    /// Align each word to the audio (adds `words` to JSON output).
    #[arg(long)]
    word_timestamps: bool,
    /// Beam width; 1 decodes greedily (default: 5 for Whisper, the model's for DeepSpeech and
    /// CTC models).
    #[arg(long)]
    beam: Option<usize>,
    /// Text that conditions the first window (names, spelling, style).
    #[arg(long)]
    initial_prompt: Option<String>,
    /// Do not prompt each window with the previous window's text.
    #[arg(long)]
    no_condition_on_previous_text: bool,
    /// Write `<name>.<ext>` files into this directory instead of printing to stdout.
    #[arg(long, short = 'o')]
    output_dir: Option<PathBuf>,
    /// Reject audio longer than this many seconds.
    #[arg(long)]
    max_audio_seconds: Option<f64>,
    #[command(flatten)]
    decoding: DecodingArgs,
}

/// Hot words and language-model flags shared by `transcribe` and `bench`.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct DecodingArgs {
    /// Words to favour (names, jargon), boosted inside the search; comma-separated or repeated.
    #[arg(long, value_delimiter = ',')]
    pub(crate) hotwords: Vec<String>,
    /// Boost per hot word (natural-log units).
    #[arg(long, default_value_t = 5.0)]
    pub(crate) hotword_weight: f32,
    /// Turn the n-gram LM on (CTC packages: default on when the package has one).
    #[arg(long, overrides_with = "no_lm")]
    pub(crate) lm: bool,
    /// Turn the n-gram LM off.
    #[arg(long)]
    pub(crate) no_lm: bool,
    /// LM weight α (default: the package's).
    #[arg(long)]
    pub(crate) lm_alpha: Option<f32>,
    /// Word bonus β (default: the package's).
    #[arg(long)]
    pub(crate) lm_beta: Option<f32>,
    /// CTC: allow words outside the vocabulary trie.
    #[arg(long)]
    pub(crate) no_trie: bool,
    /// CTC beam width (1 = greedy; default: the package's, else 64).
    #[arg(long)]
    pub(crate) ctc_beam: Option<usize>,
    /// With --word-timestamps: skip silences longer than this many seconds around words that
    /// look invented (reference Whisper's hallucination_silence_threshold).
    #[arg(long)]
    pub(crate) hallucination_silence_threshold: Option<f32>,
    #[command(flatten)]
    pub(crate) vad: VadArgs,
}

/// Voice activity detection flags (faster-whisper's `VadOptions`); any of them turns it on.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct VadArgs {
    /// Transcribe only the speech Silero VAD finds; no text where nobody speaks.
    #[arg(long)]
    pub(crate) vad: bool,
    /// Speech probability at or above which a 32-ms chunk is speech [default: 0.5].
    #[arg(long)]
    pub(crate) vad_threshold: Option<f32>,
    /// Probability below which a chunk is silence [default: threshold - 0.15].
    #[arg(long)]
    pub(crate) vad_neg_threshold: Option<f32>,
    /// Drop speech shorter than this, ms [default: 0].
    #[arg(long)]
    pub(crate) vad_min_speech_ms: Option<u32>,
    /// Split speech longer than this, seconds [default: no limit].
    #[arg(long)]
    pub(crate) vad_max_speech_s: Option<f32>,
    /// Silence that ends a speech region, ms [default: 2000].
    #[arg(long)]
    pub(crate) vad_min_silence_ms: Option<u32>,
    /// Padding kept on each side of a speech region, ms [default: 400].
    #[arg(long)]
    pub(crate) vad_speech_pad_ms: Option<u32>,
}

impl VadArgs {
    /// The options, when voice activity detection is on.
    pub(crate) fn options(&self) -> Option<harken_engine::VadOptions> {
        let any = self.vad
            || self.vad_threshold.is_some()
            || self.vad_neg_threshold.is_some()
            || self.vad_min_speech_ms.is_some()
            || self.vad_max_speech_s.is_some()
            || self.vad_min_silence_ms.is_some()
            || self.vad_speech_pad_ms.is_some();
        any.then(|| self.values())
    }

    /// The options these flags give, on or not.
    pub(crate) fn values(&self) -> harken_engine::VadOptions {
        let d = harken_engine::VadOptions::default();
        harken_engine::VadOptions {
            threshold: self.vad_threshold.unwrap_or(d.threshold),
            neg_threshold: self.vad_neg_threshold.or(d.neg_threshold),
            min_speech_duration_ms: self.vad_min_speech_ms.unwrap_or(d.min_speech_duration_ms),
            max_speech_duration_s: self.vad_max_speech_s.unwrap_or(d.max_speech_duration_s),
            min_silence_duration_ms: self.vad_min_silence_ms.unwrap_or(d.min_silence_duration_ms),
            speech_pad_ms: self.vad_speech_pad_ms.unwrap_or(d.speech_pad_ms),
        }
    }
}

impl DecodingArgs {
    pub(crate) fn apply(&self, opts: &mut TranscribeOptions) {
        opts.hotwords =
            self.hotwords.iter().map(|w| w.trim().to_owned()).filter(|w| !w.is_empty()).collect();
        opts.hotword_weight = self.hotword_weight;
        opts.lm = harken_engine::LmOptions {
            enabled: if self.no_lm {
                Some(false)
            } else if self.lm {
                Some(true)
            } else {
                None
            },
            alpha: self.lm_alpha,
            beta: self.lm_beta,
            trie: self.no_trie.then_some(false),
            beam: self.ctc_beam,
        };
        opts.vad = self.vad.options();
        opts.hallucination_silence_threshold = self.hallucination_silence_threshold;
    }
}

pub(crate) fn run(args: TranscribeArgs) -> Result<ExitCode> {
    let format = ResponseFormat::parse(&args.format).context("unknown --format")?;
    let task = if args.task == "translate" { Task::Translate } else { Task::Transcribe };
    let mut opts = TranscribeOptions {
        language: (args.language != "auto").then(|| args.language.clone()),
        task,
        beam_size: args.beam.unwrap_or(5),
        initial_prompt: args.initial_prompt.clone(),
        word_timestamps: args.word_timestamps,
        condition_on_previous_text: !args.no_condition_on_previous_text,
        ..TranscribeOptions::default()
    };
    args.decoding.apply(&mut opts);
    // An explicit --beam is the beam of a CTC search too (as `deepspeech --beam_width`).
    if opts.lm.beam.is_none() {
        opts.lm.beam = args.beam;
    }
    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("while creating {}", dir.display()))?;
    }
    let loaded = crate::model::load(&args.model, args.max_audio_seconds)?;
    let engine = &loaded.engine;
    let several = args.files.len() > 1;
    let mut failures = 0usize;
    let stdout = std::io::stdout();
    for file in &args.files {
        // A bug that panics on one input must not lose the other files' transcripts.
        let one = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            transcribe_one(engine, file, &opts, format, several, &args)
        }))
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!("internal error while transcribing (see the panic line above)"))
        });
        match one {
            Ok(body) => {
                if let Some(dir) = &args.output_dir {
                    let stem = file
                        .file_stem()
                        .map_or_else(|| "out".into(), |s| s.to_string_lossy().into_owned());
                    let out = dir.join(format!("{stem}.{}", format.extension()));
                    std::fs::write(&out, body)
                        .with_context(|| format!("while writing {}", out.display()))?;
                } else {
                    let mut lock = stdout.lock();
                    if several
                        && !matches!(format, ResponseFormat::Json | ResponseFormat::VerboseJson)
                    {
                        writeln!(lock, "==> {} <==", file.display())?;
                    }
                    lock.write_all(body.as_bytes())?;
                    lock.flush()?;
                }
            }
            Err(e) => {
                failures += 1;
                eprintln!("harken: {}: {e:#}", file.display());
            }
        }
    }
    if failures > 0 {
        if failures == args.files.len() && !several {
            bail!("no file transcribed");
        }
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

fn transcribe_one(
    engine: &Engine,
    file: &std::path::Path,
    opts: &TranscribeOptions,
    format: ResponseFormat,
    several: bool,
    args: &TranscribeArgs,
) -> Result<String> {
    let bar = progress_bar();
    let mut on_progress = |p: harken_engine::Progress<'_>| {
        if let Some(b) = &bar {
            // Only long inputs get a visible bar; short ones finish before it matters.
            if p.total_s > 30.0 {
                b.set_length((p.total_s * 10.0) as u64);
                b.set_position((p.done_s * 10.0) as u64);
            }
        }
    };
    let (t, _timings) = engine.transcribe_file(file, opts, &mut on_progress)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let name = file.to_string_lossy();
    Ok(render(&t, format, several.then_some(&*name), &args.task))
}

fn progress_bar() -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    let style = ProgressStyle::with_template(
        "{spinner} {elapsed_precise} [{bar:40}] {percent}% audio, eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}
