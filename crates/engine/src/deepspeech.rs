//! DeepSpeech 0.9 / Coqui STT models from their `.tflite` files: the native client's streaming
//! state machine (`StreamingState` in `native_client/deepspeech.cc`), reproduced so that the
//! same audio gives the same frames, the same network inputs and the same transcript.
//!
//! Audio flows through three buffers: samples until a window is full (MFCC of the window, then
//! the window moves by one step), MFCC frames until `2·n_context + 1` of them make a time step
//! (the buffer starts with `n_context` zero frames), time steps until `n_steps` make a batch
//! for the acoustic model (LSTM state carried from batch to batch), whose probabilities go to
//! the decoder. At the end the partial window is processed, `n_context` zero frames close the
//! context, and the partial batch runs. One quirk is kept on purpose: the client copies a
//! partial last window over the previous window's samples in the model's input tensor, so the
//! tail of that window is the previous window's tail, not zeros.

use std::sync::Arc;

use harken_core::{Audio, Segment, Transcript, Word};
use harken_ctc::{LmScorer, NativeDecoder, NativeOptions, NativeOutput, Scorer};
use harken_features::{MfccConfig, TfMfcc};
use harken_model::{DeepSpeech, LstmState};

use crate::transcribe::{LmOptions, Progress, Timings, TranscribeOptions};
use crate::{Error, Result};

/// A loaded `.tflite` model and its front end.
pub(crate) struct DsSide {
    pub(crate) model: DeepSpeech,
    pub(crate) mfcc: TfMfcc,
    /// The external scorer (`--scorer`), checked against the model's alphabet.
    pub(crate) scorer: Option<Scorer>,
    /// Samples per window and per step, as the client computes them from the metadata.
    win_len: usize,
    win_step: usize,
    /// A package's decoding defaults: beam width (else the model's), α and β (else the
    /// scorer's). A request's options override them.
    pub(crate) defaults: Defaults,
}

/// Decoding defaults a package records for its DeepSpeech model.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Defaults {
    pub(crate) beam: Option<usize>,
    pub(crate) alpha: Option<f32>,
    pub(crate) beta: Option<f32>,
}

impl DsSide {
    pub(crate) fn load(path: &std::path::Path) -> Result<Self> {
        let model = DeepSpeech::load(path)?;
        let meta = model.metadata();
        let p = model.mfcc_params();
        let sr = f64::from(meta.sample_rate);
        let win_len = (sr * (f64::from(meta.win_len_ms) / 1000.0)) as usize;
        let win_step = (sr * (f64::from(meta.win_step_ms) / 1000.0)) as usize;
        let bad = |detail: String| Error::ModelDir { dir: path.to_owned(), detail };
        if win_len != p.window || win_step == 0 {
            return Err(bad(format!(
                "metadata says {win_len}-sample windows every {win_step}, the feature graph takes {}",
                p.window
            )));
        }
        if meta.sample_rate != harken_features::SAMPLE_RATE_HZ {
            return Err(bad(format!(
                "the model takes {} Hz audio; Harken feeds models {} Hz",
                meta.sample_rate,
                harken_features::SAMPLE_RATE_HZ
            )));
        }
        let mfcc = TfMfcc::new(MfccConfig {
            sample_rate: p.sample_rate,
            window: p.window,
            channels: p.channels,
            lower_hz: p.lower_hz,
            upper_hz: p.upper_hz,
            coefficients: p.coefficients,
        })
        .map_err(|e| bad(e.to_string()))?;
        Ok(DsSide { model, mfcc, scorer: None, win_len, win_step, defaults: Defaults::default() })
    }

    /// Open a `.scorer` package and check that it was made for this model's alphabet.
    pub(crate) fn set_scorer(&mut self, path: &std::path::Path) -> Result<()> {
        let scorer = Scorer::open(path)
            .map_err(|e| Error::Scorer { path: path.to_owned(), detail: e.to_string() })?;
        scorer
            .check_alphabet(&self.model.metadata().alphabet)
            .map_err(|e| Error::Scorer { path: path.to_owned(), detail: e.to_string() })?;
        self.scorer = Some(scorer);
        Ok(())
    }

    /// The scorer of one request: the package's α and β unless `lm` overrides them, and the
    /// hot words (`word` gets `weight`, `word:boost` its own boost), or none when `lm`
    /// disables it.
    pub(crate) fn lm_scorer(
        &self,
        lm: &LmOptions,
        hotwords: &[String],
        weight: f32,
    ) -> Option<Arc<LmScorer>> {
        let scorer = self.scorer.as_ref().filter(|_| lm.enabled != Some(false))?;
        let mut s = LmScorer::new(scorer.clone(), self.model.metadata().alphabet.clone());
        let (a, b) = s.alpha_beta();
        let a = lm.alpha.or(self.defaults.alpha).unwrap_or(a);
        s.set_alpha_beta(a, lm.beta.or(self.defaults.beta).unwrap_or(b));
        for w in hotwords {
            match w.rsplit_once(':').and_then(|(w, b)| Some((w, b.trim().parse::<f32>().ok()?))) {
                Some((word, boost)) => s.add_hot_word(word.trim(), boost),
                None => s.add_hot_word(w.trim(), weight),
            }
        }
        Some(Arc::new(s))
    }

    /// Seconds per output frame.
    pub(crate) fn frame_s(&self) -> f64 {
        self.win_step as f64 / f64::from(self.model.metadata().sample_rate)
    }

    /// A new stream decoding with beam width `beam` (the model's when `None`) and `scorer`.
    pub(crate) fn stream(
        &self,
        beam: Option<usize>,
        scorer: Option<Arc<LmScorer>>,
    ) -> DsStream<'_> {
        let d = self.model.dims();
        let beam = beam.or(self.defaults.beam).unwrap_or(self.model.metadata().beam_width as usize);
        let labels = self.model.metadata().alphabet.len();
        let opts = NativeOptions::client(beam);
        DsStream {
            side: self,
            audio: Vec::with_capacity(self.win_len),
            window: vec![0.0; self.win_len],
            mfcc: vec![0.0; d.n_context * d.n_features],
            batch: Vec::with_capacity(d.n_steps * d.feats_per_step()),
            state: self.model.initial_state(),
            decoder: match scorer {
                Some(s) => NativeDecoder::with_scorer(labels, opts, s),
                None => NativeDecoder::new(labels, opts),
            },
            probs: Vec::new(),
            features: Vec::new(),
            keep_probs: false,
            frames: 0,
        }
    }

    /// The text of a result: its labels' strings concatenated.
    pub(crate) fn text(&self, out: &NativeOutput) -> String {
        let labels = &self.model.metadata().alphabet;
        out.tokens.iter().filter_map(|&t| labels.get(t as usize)).map(String::as_str).collect()
    }

    /// Words and their times from a result's labels and frames, split at the space label.
    fn words(&self, out: &NativeOutput, duration_s: f64) -> Vec<Word> {
        let labels = &self.model.metadata().alphabet;
        let step = self.frame_s();
        let mut words: Vec<Word> = Vec::new();
        let mut cur: Option<(String, f64, f64)> = None;
        let flush = |cur: &mut Option<(String, f64, f64)>, words: &mut Vec<Word>| {
            if let Some((text, start, end)) = cur.take() {
                let text = if words.is_empty() { text } else { format!(" {text}") };
                words.push(Word {
                    text,
                    start_s: start,
                    end_s: end.min(duration_s),
                    probability: 1.0,
                });
            }
        };
        for (&t, &frame) in out.tokens.iter().zip(&out.timesteps) {
            let s = labels.get(t as usize).map_or("", String::as_str);
            let at = f64::from(frame) * step;
            if s == " " {
                flush(&mut cur, &mut words);
                continue;
            }
            match &mut cur {
                Some((text, _, end)) => {
                    text.push_str(s);
                    *end = at + step;
                }
                None => cur = Some((s.to_owned(), at, at + step)),
            }
        }
        flush(&mut cur, &mut words);
        words
    }

    pub(crate) fn transcribe(
        &self,
        audio: &Audio,
        opts: &TranscribeOptions,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(Transcript, Timings)> {
        if opts.task != harken_core::Task::Transcribe {
            return Err(Error::Option("DeepSpeech models cannot translate".into()));
        }
        let mut timings = Timings::default();
        let t = std::time::Instant::now();
        let scorer = self.lm_scorer(&opts.lm, &opts.hotwords, opts.hotword_weight);
        let mut stream = self.stream(opts.lm.beam, scorer);
        let total = audio.duration_s();
        let chunk = 16 * harken_features::SAMPLE_RATE_HZ as usize;
        for (i, part) in audio.samples.chunks(chunk).enumerate() {
            stream.feed(part)?;
            progress(Progress::at(((i + 1) * chunk) as f64 / 16_000.0, total));
        }
        let out = stream.finish()?;
        timings.windows = stream.frames();
        timings.encoder = t.elapsed();
        let text = self.text(&out);
        let words = self.words(&out, total);
        let segment = Segment {
            id: 0,
            seek_frames: 0,
            start_s: words.first().map_or(0.0, |w| w.start_s),
            end_s: words.last().map_or(total, |w| w.end_s),
            text: format!(" {text}"),
            tokens: out.tokens.clone(),
            temperature: 0.0,
            avg_logprob: out.confidence,
            compression_ratio: 0.0,
            no_speech_prob: 0.0,
            words: opts.word_timestamps.then_some(words),
        };
        let language = self.model.metadata().language.clone().unwrap_or_default();
        let transcript = Transcript {
            segments: if text.is_empty() { Vec::new() } else { vec![segment] },
            text,
            language,
            language_probability: None,
            duration_s: total,
        };
        Ok((transcript, timings))
    }
}

/// One utterance being decoded, fed audio as it arrives.
pub struct DsStream<'a> {
    side: &'a DsSide,
    audio: Vec<f32>,
    /// The model's `input_samples` tensor: what the last window left there.
    window: Vec<f32>,
    mfcc: Vec<f32>,
    batch: Vec<f32>,
    state: LstmState,
    decoder: NativeDecoder,
    probs: Vec<f64>,
    features: Vec<f32>,
    keep_probs: bool,
    frames: usize,
}

impl DsStream<'_> {
    /// Feed samples (16 kHz, `i16 / 32768` scale).
    pub fn feed(&mut self, mut samples: &[f32]) -> Result<()> {
        let (len, step) = (self.side.win_len, self.side.win_step);
        while !samples.is_empty() {
            let take = (len - self.audio.len()).min(samples.len());
            self.audio.extend_from_slice(&samples[..take]);
            samples = &samples[take..];
            if self.audio.len() == len {
                let buf = std::mem::take(&mut self.audio);
                self.window_done(&buf)?;
                self.audio = buf;
                self.audio.drain(..step.min(len));
            }
        }
        Ok(())
    }

    /// The client's `processAudioWindow`: `buf` is written over the start of the input
    /// tensor (a short last window keeps the previous window's tail).
    fn window_done(&mut self, buf: &[f32]) -> Result<()> {
        self.window[..buf.len()].copy_from_slice(buf);
        let mut frame = Vec::with_capacity(self.side.model.dims().n_features);
        self.side.mfcc.compute(&self.window, &mut frame);
        if self.keep_probs {
            self.features.extend_from_slice(&frame);
        }
        self.push_mfcc(&frame)
    }

    fn push_mfcc(&mut self, frame: &[f32]) -> Result<()> {
        let d = self.side.model.dims();
        self.mfcc.extend_from_slice(frame);
        if self.mfcc.len() == d.feats_per_step() {
            self.batch.extend_from_slice(&self.mfcc);
            self.mfcc.drain(..d.n_features);
            if self.batch.len() == d.n_steps * d.feats_per_step() {
                self.run_batch()?;
            }
        }
        Ok(())
    }

    fn run_batch(&mut self) -> Result<()> {
        let d = self.side.model.dims();
        let n = self.batch.len() / d.feats_per_step();
        if n == 0 {
            return Ok(());
        }
        let probs = self.side.model.infer(&self.batch, n, &mut self.state)?;
        self.batch.clear();
        self.frames += n;
        let wide: Vec<f64> = probs.iter().map(|&p| f64::from(p)).collect();
        self.decoder.next(&wide, d.n_classes);
        if self.keep_probs {
            self.probs.extend_from_slice(&wide);
        }
        Ok(())
    }

    /// The best transcript so far (`DS_IntermediateDecode`).
    pub fn intermediate(&self) -> NativeOutput {
        self.decoder.decode(1).into_iter().next().unwrap_or(NativeOutput {
            tokens: Vec::new(),
            timesteps: Vec::new(),
            confidence: 0.0,
        })
    }

    /// Flush the buffers and return the best transcript (`DS_FinishStream`).
    pub fn finish(&mut self) -> Result<NativeOutput> {
        let buf = std::mem::take(&mut self.audio);
        self.window_done(&buf)?;
        let d = self.side.model.dims();
        for _ in 0..d.n_context {
            self.push_mfcc(&vec![0.0; d.n_features])?;
        }
        self.run_batch()?;
        Ok(self.intermediate())
    }

    /// Keep every window's MFCCs and every frame's probabilities from now on, for
    /// [`DsStream::features`] and [`DsStream::probabilities`].
    pub fn keep_probabilities(&mut self) {
        self.keep_probs = true;
    }

    /// The frame probabilities kept (`frames × classes`), for checks against the client.
    pub fn probabilities(&self) -> &[f64] {
        &self.probs
    }

    /// The MFCC frames kept (`windows × n_features`; the zero frames of the context padding
    /// are not included).
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// Frames decoded so far.
    pub fn frames(&self) -> usize {
        self.frames
    }
}
