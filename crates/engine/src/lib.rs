//! The API boundary every front end uses: load a model once (a Whisper directory or package,
//! or a CTC package), then transcribe audio with it from any number of threads.
//!
//! Brief overview: [`Engine::load`] reads a [`ModelDir`] (CTranslate2 or Hugging Face layout),
//! memory-maps the weights and builds the network; [`Engine::transcribe_file`] /
//! [`Engine::transcribe`] run the whole pipeline — decode audio (`harken-audio`), log-mel
//! (`harken-features`), then reference Whisper's long-form loop: 30-s windows, seeking by the
//! predicted timestamps, temperature fallback judged by compression ratio, mean log-probability
//! and no-speech probability, optional word alignment — and return a [`Transcript`] with
//! per-stage [`Timings`]. A CTC package (`ctc` family) instead runs the Whisper encoder with
//! a trained head and decodes its posteriors by prefix beam search with the package's n-gram
//! LM and vocabulary trie (`harken-ctc`); the same options, transcript and timings apply.
//!
//! **Architecture invariant:** synchronous, no network, no environment variables, no globals;
//! the engine reads only the local files it is handed and never sees a URI or an HTTP type.
//!
//! ```no_run
//! use harken_engine::{Engine, EngineConfig, TranscribeOptions};
//! let engine = Engine::load(std::path::Path::new("whisper-base"), &EngineConfig::default())?;
//! let (transcript, _timings) =
//!     engine.transcribe_file(std::path::Path::new("talk.wav"), &TranscribeOptions::default(), &mut |_| {})?;
//! println!("{}", transcript.text);
//! # Ok::<(), harken_engine::Error>(())
//! ```

mod ctc;
mod deepspeech;
mod error;
mod model_dir;
mod quantize;
mod transcribe;
mod vad;

use std::path::Path;
use std::time::{Duration, Instant};

pub use deepspeech::DsStream;
pub use error::{Error, Result};
pub use harken_audio::{AUDIO_MEDIA_TYPES, is_audio_media_type};
pub use harken_core::{Audio, Segment, Task, Transcript, Word};
pub use harken_ctc::NativeOutput;
pub use harken_model::{CpuReport, Int8Report};
pub use harken_model::{Dims, Isa, Precision};
pub use harken_vad::{Silero, VadOptions};
pub use model_dir::{ModelDir, WeightsFormat};
pub use quantize::quantize_model_dir;
pub use transcribe::{LmOptions, Progress, Timings, TranscribeOptions};

use harken_decode::WhisperTokenizer;
use harken_features::LogMel;
use harken_model::Whisper;

/// Deployment-tier settings of an engine.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    /// In-memory precision of the linear layers (an int8 weights file is int8 whatever this
    /// says).
    pub precision: Precision,
    /// Kernel path; `None`: the best this CPU runs.
    pub isa: Option<Isa>,
    /// Reject audio longer than this, seconds (`None`: no limit).
    pub max_audio_s: Option<f64>,
    /// An n-gram LM (ARPA or Harken binary) fused into Whisper's beam search at word
    /// boundaries; CTC packages bring their own.
    pub whisper_lm: Option<std::path::PathBuf>,
    /// A DeepSpeech `.scorer` package for a `.tflite` model (`DS_EnableExternalScorer`).
    pub scorer: Option<std::path::PathBuf>,
}

/// A loaded model, ready to transcribe. `Send + Sync`: share it behind an `Arc`.
pub struct Engine {
    kind: Kind,
    dir: std::path::PathBuf,
    config: EngineConfig,
    load_time: Duration,
    vad: Option<std::sync::Arc<Silero>>,
}

enum Kind {
    Whisper(Box<WhisperSide>),
    Ctc(Box<ctc::CtcSide>),
    DeepSpeech(Box<deepspeech::DsSide>),
}

/// What the Whisper pipeline needs.
pub(crate) struct WhisperSide {
    pub(crate) model: Whisper,
    pub(crate) tokenizer: WhisperTokenizer,
    pub(crate) mel: LogMel,
    pub(crate) dir: ModelDir,
    pub(crate) lm: Option<std::sync::Arc<harken_lm::Model>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Engine");
        d.field("dir", &self.dir);
        match &self.kind {
            Kind::Whisper(w) => d.field("dims", &w.model.dims()),
            Kind::Ctc(c) => d.field("ctc", &c.acoustic),
            Kind::DeepSpeech(m) => d.field("deepspeech", &m.model),
        };
        d.finish_non_exhaustive()
    }
}

impl Engine {
    /// Load the model in directory `dir` (a raw CTranslate2 or Hugging Face Whisper directory).
    pub fn load(dir: &Path, config: &EngineConfig) -> Result<Self> {
        if dir.is_file() && dir.extension().is_some_and(|e| e.eq_ignore_ascii_case("tflite")) {
            return Self::load_tflite(dir, config);
        }
        Self::load_model_dir(ModelDir::open(dir)?, None, config)
    }

    /// Load a DeepSpeech 0.9 / Coqui STT acoustic model from its `.tflite` file as it is.
    pub fn load_tflite(path: &Path, config: &EngineConfig) -> Result<Self> {
        Self::load_deepspeech(path, config.scorer.as_deref(), None, config)
    }

    /// A DeepSpeech model with `scorer` (`None`: none), under a package's decoding defaults.
    fn load_deepspeech(
        path: &Path,
        scorer: Option<&Path>,
        package: Option<&harken_package::Package>,
        config: &EngineConfig,
    ) -> Result<Self> {
        let start = Instant::now();
        let label = package.map(harken_package::Package::label);
        let _span = tracing::info_span!("load", model = %path.display(), package = label.as_deref().unwrap_or("-")).entered();
        let mut side = deepspeech::DsSide::load(path)?;
        if let Some(isa) = config.isa {
            side.model.set_isa(isa);
        }
        if let Some(scorer) = scorer {
            side.set_scorer(scorer)?;
        }
        if let Some(p) = package {
            let d = &p.flavor().decoding;
            side.defaults = deepspeech::Defaults {
                beam: d.beam_size.map(|b| b as usize),
                alpha: d.lm_alpha,
                beta: d.lm_beta,
            };
            let want = p.flavor().frontend.n_mels as usize;
            if side.model.mfcc_params().channels != want {
                return Err(Error::ModelDir {
                    dir: p.dir().to_owned(),
                    detail: format!(
                        "the manifest says {want} mel bins, the model's filterbank has {}",
                        side.model.mfcc_params().channels
                    ),
                });
            }
        }
        let load_time = start.elapsed();
        let meta = side.model.metadata();
        tracing::info!(
            seconds = load_time.as_secs_f64(),
            dims = ?side.model.dims(),
            int8 = side.model.is_int8(),
            cpu_path = %side.model.isa(),
            labels = meta.alphabet.len(),
            beam_width = meta.beam_width,
            language = meta.language.as_deref().unwrap_or("-"),
            scorer = ?scorer,
            "DeepSpeech model loaded"
        );
        Ok(Engine {
            kind: Kind::DeepSpeech(Box::new(side)),
            dir: package.map_or(path, |p| p.dir()).to_owned(),
            config: config.clone(),
            load_time,
            vad: None,
        })
    }

    /// A stream for a DeepSpeech model (audio in as it arrives, DeepSpeech's decoder state
    /// kept), decoding as `opts` says: beam width `opts.lm.beam` (the model's when `None`),
    /// the scorer unless `opts.lm.enabled` is `Some(false)`, α/β overrides and hot words.
    /// `None` for other models.
    pub fn deepspeech_stream(&self, opts: &TranscribeOptions) -> Option<DsStream<'_>> {
        match &self.kind {
            Kind::DeepSpeech(d) => {
                let scorer = d.lm_scorer(&opts.lm, &opts.hotwords, opts.hotword_weight);
                Some(d.stream(opts.lm.beam, scorer))
            }
            _ => None,
        }
    }

    /// Sizes of a DeepSpeech model (`None` for other models).
    pub fn deepspeech_dims(&self) -> Option<harken_model::DsDims> {
        match &self.kind {
            Kind::DeepSpeech(d) => Some(d.model.dims()),
            _ => None,
        }
    }

    /// The text of a DeepSpeech result (`None` for other models).
    pub fn deepspeech_text(&self, out: &NativeOutput) -> Option<String> {
        match &self.kind {
            Kind::DeepSpeech(d) => Some(d.text(out)),
            _ => None,
        }
    }

    /// Load a verified package: the manifest says which file is which, and its front end must
    /// match the weights.
    pub fn load_package(package: &harken_package::Package, config: &EngineConfig) -> Result<Self> {
        let want = package.flavor().frontend.n_mels as usize;
        if let harken_package::Family::Deepspeech { acoustic_model, scorer } =
            &package.flavor().family
        {
            // `--scorer` replaces the package's own scorer.
            let scorer = match &config.scorer {
                Some(s) => Some(s.clone()),
                None => scorer.as_deref().map(|s| package.path(s)),
            };
            return Self::load_deepspeech(
                &package.path(acoustic_model),
                scorer.as_deref(),
                Some(package),
                config,
            );
        }
        if let harken_package::Family::Ctc { .. } = package.flavor().family {
            let start = Instant::now();
            let _span = tracing::info_span!("load", package = %package.label()).entered();
            let mut side = ctc::CtcSide::load(package, config.precision)?;
            if let Some(isa) = config.isa {
                side.acoustic.set_isa(isa);
            }
            if side.acoustic.n_mels() != want {
                return Err(Error::ModelDir {
                    dir: package.dir().to_owned(),
                    detail: format!(
                        "the manifest says {want} mel bins, the encoder takes {}",
                        side.acoustic.n_mels()
                    ),
                });
            }
            let load_time = start.elapsed();
            tracing::info!(seconds = load_time.as_secs_f64(), acoustic = ?side.acoustic, lm = side.lm.is_some(), trie = side.trie.is_some(), "CTC model loaded");
            return Ok(Engine {
                kind: Kind::Ctc(Box::new(side)),
                dir: package.dir().to_owned(),
                config: config.clone(),
                load_time,
                vad: None,
            });
        }
        let engine = Self::load_model_dir(ModelDir::from_package(package)?, Some(package), config)?;
        if engine.n_mels() != want {
            return Err(Error::ModelDir {
                dir: package.dir().to_owned(),
                detail: format!(
                    "the manifest says {want} mel bins, the weights take {}",
                    engine.n_mels()
                ),
            });
        }
        Ok(engine)
    }

    fn load_model_dir(
        md: ModelDir,
        package: Option<&harken_package::Package>,
        config: &EngineConfig,
    ) -> Result<Self> {
        let start = Instant::now();
        let dir = md.dir.clone();
        let label = package.map(harken_package::Package::label);
        let _span =
            tracing::info_span!("load", dir = %dir.display(), package = label.as_deref().unwrap_or("-"))
                .entered();
        let model = match &md.weights {
            WeightsFormat::Ct2(p) => Whisper::load_ct2(p, config.precision)?,
            WeightsFormat::SafeTensors(p) => {
                Whisper::load_safetensors(p, md.heads.0, md.heads.1, config.precision)?
            }
            WeightsFormat::Int8(p) => Whisper::load_int8(p)?,
        };
        let mut model = model;
        if let Some(isa) = config.isa {
            model.set_isa(isa);
        }
        let dims = model.dims();
        let tokenizer = WhisperTokenizer::from_file(&md.tokenizer, dims.n_vocab)?;
        let mel = LogMel::new(dims.n_mels);
        let lm = match &config.whisper_lm {
            Some(p) => Some(std::sync::Arc::new(harken_lm::Model::load(p).map_err(|e| {
                Error::ModelDir { dir: p.clone(), detail: format!("language model: {e}") }
            })?)),
            None => None,
        };
        let load_time = start.elapsed();
        tracing::info!(
            seconds = load_time.as_secs_f64(),
            ?dims,
            int8 = model.is_int8(),
            cpu_path = %model.isa(),
            "model loaded"
        );
        Ok(Engine {
            dir: dir.clone(),
            kind: Kind::Whisper(Box::new(WhisperSide { model, tokenizer, mel, dir: md, lm })),
            config: config.clone(),
            load_time,
            vad: None,
        })
    }

    /// How long [`Engine::load`] took.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// The kernel path the model runs.
    pub fn isa(&self) -> Isa {
        match &self.kind {
            Kind::Whisper(w) => w.model.isa(),
            Kind::Ctc(c) => c.acoustic.isa(),
            Kind::DeepSpeech(d) => d.model.isa(),
        }
    }

    /// Whether the linear layers run in int8.
    pub fn is_int8(&self) -> bool {
        match &self.kind {
            Kind::Whisper(w) => w.model.is_int8(),
            Kind::Ctc(_) => self.config.precision == Precision::Int8,
            Kind::DeepSpeech(d) => d.model.is_int8(),
        }
    }

    /// Architecture sizes of a Whisper model (`None` for CTC models).
    pub fn dims(&self) -> Option<Dims> {
        match &self.kind {
            Kind::Whisper(w) => Some(w.model.dims()),
            Kind::Ctc(_) | Kind::DeepSpeech(_) => None,
        }
    }

    fn n_mels(&self) -> usize {
        match &self.kind {
            Kind::Whisper(w) => w.model.dims().n_mels,
            Kind::Ctc(c) => c.acoustic.n_mels(),
            Kind::DeepSpeech(_) => 0,
        }
    }

    /// The directory the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `whisper`, `ctc` or `deepspeech`.
    pub fn family(&self) -> &'static str {
        match &self.kind {
            Kind::Whisper(_) => "whisper",
            Kind::Ctc(_) => "ctc",
            Kind::DeepSpeech(_) => "deepspeech",
        }
    }

    /// Whether the model knows languages other than English.
    pub fn multilingual(&self) -> bool {
        match &self.kind {
            Kind::Whisper(w) => w.tokenizer.multilingual,
            Kind::Ctc(_) | Kind::DeepSpeech(_) => false,
        }
    }

    /// Language codes the model knows (empty for English-only models).
    pub fn languages(&self) -> Vec<String> {
        match &self.kind {
            Kind::Whisper(w) => w.tokenizer.languages.iter().map(|(c, _)| c.clone()).collect(),
            Kind::Ctc(_) => Vec::new(),
            Kind::DeepSpeech(d) => d.model.metadata().language.iter().cloned().collect(),
        }
    }

    /// Decode CTC posteriors from [`Engine::ctc_posteriors`] with `opts`' LM, trie, beam and
    /// hot words: the text. For tuning and evaluation without re-running the encoder.
    pub fn ctc_decode(&self, log_probs: &[f32], opts: &TranscribeOptions) -> Result<String> {
        match &self.kind {
            Kind::Ctc(c) => Ok(c.decode(log_probs, opts)?.text),
            _ => Err(Error::Option("not a CTC package".into())),
        }
    }

    /// Per-frame log-posteriors of a CTC model over its alphabet (blank last), 20 ms frames:
    /// for evaluation and external decoders. `None` for Whisper models.
    pub fn ctc_posteriors(&self, audio: &Audio) -> Option<Result<(Vec<f32>, Vec<String>)>> {
        let Kind::Ctc(c) = &self.kind else { return None };
        let labels =
            (0..c.alphabet.len() as u32).map(|i| c.alphabet.symbol(i).to_owned()).collect();
        Some(c.posteriors(audio, &mut |_| {}, &mut Timings::default()).map(|p| (p, labels)))
    }

    /// Decode the audio file at `path` and transcribe it.
    pub fn transcribe_file(
        &self,
        path: &Path,
        opts: &TranscribeOptions,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(Transcript, Timings)> {
        self.decode_then_transcribe(|o| harken_audio::decode_file(path, o), opts, progress)
    }

    /// Decode audio held in memory (any supported container) and transcribe it.
    pub fn transcribe_bytes(
        &self,
        bytes: Vec<u8>,
        ext_hint: Option<&str>,
        opts: &TranscribeOptions,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(Transcript, Timings)> {
        self.decode_then_transcribe(
            |o| harken_audio::decode_bytes(bytes, ext_hint, o),
            opts,
            progress,
        )
    }

    /// Decode audio held in memory at the model's rate within the configured length limit,
    /// without transcribing it (a streaming front end checks the input before it answers).
    pub fn decode_bytes(&self, bytes: Vec<u8>) -> Result<Audio> {
        Ok(harken_audio::decode_bytes(bytes, None, &self.decode_options())?)
    }

    /// The model's sample rate and the configured length limit.
    fn decode_options(&self) -> harken_audio::DecodeOptions {
        harken_audio::DecodeOptions {
            target_rate_hz: harken_features::SAMPLE_RATE_HZ,
            max_duration_s: self.config.max_audio_s,
        }
    }

    /// Decode with the model's rate and the configured length limit, timing the decode.
    fn decode_then_transcribe(
        &self,
        decode: impl FnOnce(&harken_audio::DecodeOptions) -> harken_audio::Result<Audio>,
        opts: &TranscribeOptions,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(Transcript, Timings)> {
        let decode_opts = self.decode_options();
        let t = Instant::now();
        let audio = decode(&decode_opts)?;
        let audio_time = t.elapsed();
        // The length is known once decoded: say so before the first window is done.
        let total_s = audio.samples.len() as f64 / f64::from(harken_features::SAMPLE_RATE_HZ);
        progress(Progress::at(0.0, total_s));
        let (tr, mut timings) = self.transcribe(&audio, opts, progress)?;
        timings.audio = audio_time;
        Ok((tr, timings))
    }

    /// Gives the engine a voice activity detector, for requests with [`TranscribeOptions::vad`]
    /// and for live transcription.
    pub fn set_vad(&mut self, model: std::sync::Arc<Silero>) {
        self.vad = Some(model);
    }

    /// The voice activity detector, when one is loaded.
    pub fn vad(&self) -> Option<&std::sync::Arc<Silero>> {
        self.vad.as_ref()
    }

    /// Transcribe 16-kHz mono audio.
    pub fn transcribe(
        &self,
        audio: &Audio,
        opts: &TranscribeOptions,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(Transcript, Timings)> {
        if let Some(v) = &opts.vad {
            let model = self.vad.as_deref().ok_or(Error::NoVad)?;
            return vad::transcribe_speech(self, model, v, audio, opts, progress);
        }
        self.transcribe_all(audio, opts, progress)
    }

    /// Transcribe every sample, without voice activity detection.
    fn transcribe_all(
        &self,
        audio: &Audio,
        opts: &TranscribeOptions,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(Transcript, Timings)> {
        if audio.sample_rate_hz != harken_features::SAMPLE_RATE_HZ {
            return Err(Error::Option(format!(
                "audio must be {} Hz, got {} Hz",
                harken_features::SAMPLE_RATE_HZ,
                audio.sample_rate_hz
            )));
        }
        let (tr, mut timings) = match &self.kind {
            Kind::Whisper(w) => transcribe::run(w, audio, opts, progress),
            Kind::Ctc(c) => c.transcribe(audio, opts, progress),
            Kind::DeepSpeech(d) => d.transcribe(audio, opts, progress),
        }?;
        timings.speech_s = audio.samples.len() as f64 / f64::from(audio.sample_rate_hz);
        Ok((tr, timings))
    }
}
