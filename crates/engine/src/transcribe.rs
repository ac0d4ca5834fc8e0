//! Reference Whisper's long-form transcription loop over 30-s windows.
//!
//! Ported from OpenAI Whisper's `whisper/transcribe.py::transcribe` (openai/whisper, commit
//! 517a43ec): `decode_with_fallback` ([`decode_with_fallback`]), the seek arithmetic over
//! timestamp tokens, the no-speech skip, prompt conditioning on previous text with its reset
//! above temperature 0.5, and `add_word_timestamps`. One addition: a window whose audio peaks
//! below −60 dBFS is skipped without decoding, because Whisper invents words ("You") for
//! digital silence when its no-speech and log-probability thresholds disagree.

use std::time::{Duration, Instant};

use harken_core::{Audio, Segment, Task, Transcript};
use harken_decode::{
    AlignmentInput, Search, StepModel, TIME_PRECISION_S, WindowOptions, WindowResult, assign_words,
    decode_window, find_alignment,
};
use harken_features::HOP_SAMPLES;
use harken_model::{DecoderSession, EncoderOutput};

use crate::{Error, Result, WhisperSide};

/// Per-request options. Defaults are faster-whisper's `transcribe()` defaults.
#[derive(Debug, Clone)]
pub struct TranscribeOptions {
    /// Spoken language code; `None` detects it from the first 30 s.
    pub language: Option<String>,
    /// Transcribe or translate to English.
    pub task: Task,
    /// Beam width at temperature 0; 1 means greedy decoding.
    pub beam_size: usize,
    /// Beam patience (candidates collected = beam × patience).
    pub patience: f32,
    /// Samples per temperature above 0.
    pub best_of: usize,
    /// Temperatures tried in order until a result passes the thresholds.
    pub temperatures: Vec<f32>,
    /// Fallback when the text's compression ratio is above this (too repetitive).
    pub compression_ratio_threshold: Option<f32>,
    /// Fallback when the mean token log-probability is below this.
    pub logprob_threshold: Option<f32>,
    /// A window is silent when `<|nospeech|>` is likelier than this and log-probability is low.
    pub no_speech_threshold: Option<f32>,
    /// Prompt each window with the text of the previous ones.
    pub condition_on_previous_text: bool,
    /// Text prepended as the prompt of the first window (names, spelling, style).
    pub initial_prompt: Option<String>,
    /// Align words to the audio.
    pub word_timestamps: bool,
    /// Predict timestamps (segments); without them each window is one segment.
    pub timestamps: bool,
    /// Latest first timestamp of a window, seconds.
    pub max_initial_timestamp_s: f32,
    /// Words to favour (names, jargon): boosted inside the decoder's search, not prompted.
    pub hotwords: Vec<String>,
    /// Boost per hot word (natural-log units added to a hypothesis that spells it).
    pub hotword_weight: f32,
    /// Language-model fusion settings.
    pub lm: LmOptions,
    /// With word timestamps: skip silences longer than this (seconds) around a segment whose
    /// words look invented (improbable, too short or too long), as reference Whisper's
    /// `hallucination_silence_threshold`.
    pub hallucination_silence_threshold: Option<f32>,
    /// Transcribe only the speech that voice activity detection finds (faster-whisper's
    /// `vad_filter`); times stay on the original timeline.
    pub vad: Option<harken_vad::VadOptions>,
}

/// Language-model settings of one request; `None` fields take the model's defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LmOptions {
    /// Fuse the model's n-gram LM (CTC models: on by default when the package has one).
    pub enabled: Option<bool>,
    /// LM weight α.
    pub alpha: Option<f32>,
    /// Word bonus β.
    pub beta: Option<f32>,
    /// Restrict CTC words to the vocabulary trie (on by default when the package has one).
    pub trie: Option<bool>,
    /// CTC beam width (1 = greedy; default from the package, else 64).
    pub beam: Option<usize>,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        TranscribeOptions {
            language: None,
            task: Task::Transcribe,
            beam_size: 5,
            patience: 1.0,
            best_of: 5,
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            compression_ratio_threshold: Some(2.4),
            logprob_threshold: Some(-1.0),
            no_speech_threshold: Some(0.6),
            condition_on_previous_text: true,
            initial_prompt: None,
            word_timestamps: false,
            timestamps: true,
            max_initial_timestamp_s: 1.0,
            hotwords: Vec::new(),
            hotword_weight: 5.0,
            lm: LmOptions::default(),
            hallucination_silence_threshold: None,
            vad: None,
        }
    }
}

/// Progress of one transcription, reported after each window.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// Audio seconds done.
    pub done_s: f64,
    /// Audio seconds in all.
    pub total_s: f64,
    /// Segments finished since the last report, final (they will not change), in time order:
    /// what a streaming response sends as it goes.
    pub segments: &'a [Segment],
}

impl Progress<'_> {
    /// A report with no new segments.
    pub fn at(done_s: f64, total_s: f64) -> Self {
        Progress { done_s, total_s, segments: &[] }
    }
}

/// Wall time spent in each stage of one transcription.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Decoding and resampling the input file.
    pub audio: Duration,
    /// Log-mel spectrogram.
    pub mel: Duration,
    /// Encoder passes.
    pub encoder: Duration,
    /// Decoder passes (search, fallback and language detection).
    pub decoder: Duration,
    /// Word alignment.
    pub alignment: Duration,
    /// Number of 30-s windows decoded.
    pub windows: usize,
    /// Voice activity detection.
    pub vad: Duration,
    /// Seconds of audio the model ran on (after voice activity detection, when asked).
    pub speech_s: f64,
}

/// The model's decoder as the search sees it.
struct Step<'a>(DecoderSession<'a>, usize);

impl StepModel for Step<'_> {
    fn step(&mut self, tokens: &[&[u32]], positions: &[usize]) -> harken_decode::Result<Vec<f32>> {
        let l =
            self.0.step(tokens, positions).map_err(|e| harken_decode::Error::Model(Box::new(e)))?;
        Ok(l.into_vec())
    }
    fn reorder(&mut self, rows: &[usize]) -> harken_decode::Result<()> {
        self.0.reorder(rows).map_err(|e| harken_decode::Error::Model(Box::new(e)))
    }
    fn vocab(&self) -> usize {
        self.1
    }
}

const N_SAMPLES_PAD: usize = 480_000;
const INPUT_STRIDE: usize = 2;
const SILENCE_PEAK: f32 = 0.001;

/// One window's view for the hallucination guard (reference Whisper's
/// `hallucination_silence_threshold`, as faster-whisper implements it).
struct HallucinationWindow {
    threshold: f64,
    time_offset: f64,
    window_end: f64,
    duration_s: f64,
    /// End of the last word before this window.
    speech_before: f64,
}

/// What the guard decided for a window.
#[derive(Debug, PartialEq)]
enum HallucinationCut {
    /// Keep every segment.
    None,
    /// Drop the whole window and decode again from this time (the leading silence skipped).
    SkipWindowTo(f64),
    /// Segments from the suspect one on were dropped; go on from this time (infinite: the end).
    SeekTo(f64),
}

/// How unlike real speech a word is: improbable, shorter than 133 ms, longer than 2 s.
fn word_anomaly(w: &harken_core::Word) -> f64 {
    let mut score = 0.0;
    if w.probability < 0.15 {
        score += 1.0;
    }
    let d = w.end_s - w.start_s;
    if d < 0.133 {
        score += (0.133 - d) * 15.0;
    }
    if d > 2.0 {
        score += d - 2.0;
    }
    score
}

/// A segment whose first eight words (punctuation aside) are mostly anomalous.
fn segment_anomaly(s: &Segment) -> bool {
    let Some(words) = &s.words else { return false };
    let words: Vec<_> = words
        .iter()
        .filter(|w| {
            !w.text
                .trim()
                .chars()
                .all(|c| c.is_ascii_punctuation() || "“”¿、。，！？：".contains(c))
        })
        .take(8)
        .collect();
    if words.is_empty() {
        return false;
    }
    let score: f64 = words.iter().map(|w| word_anomaly(w)).sum();
    score >= 3.0 || score + 0.01 >= words.len() as f64
}

fn has_words(s: &Segment) -> bool {
    s.words.as_ref().is_some_and(|w| !w.is_empty())
}

impl HallucinationWindow {
    fn check(&self, current: &mut Vec<Segment>) -> HallucinationCut {
        let t = self.threshold;
        if let Some(first) = current.iter().find(|s| has_words(s))
            && segment_anomaly(first)
        {
            let gap = first.start_s - self.time_offset;
            if gap > t {
                return HallucinationCut::SkipWindowTo(self.time_offset + gap);
            }
        }
        let mut last_end = self.speech_before;
        for i in 0..current.len() {
            if !has_words(&current[i]) {
                continue;
            }
            let seg = &current[i];
            if segment_anomaly(seg) {
                let next = current[i + 1..].iter().find(|s| has_words(s));
                let next_start = next
                    .and_then(|n| n.words.as_ref())
                    .and_then(|w| w.first())
                    .map_or(self.window_end, |w| w.start_s);
                let silence_before = seg.start_s - last_end > t
                    || seg.start_s < t
                    || seg.start_s - self.time_offset < 2.0;
                let silence_after = next_start - seg.end_s > t
                    || next.is_some_and(segment_anomaly)
                    || self.window_end - seg.end_s < 2.0;
                if silence_before && silence_after {
                    let to = if self.duration_s - seg.end_s < t {
                        f64::INFINITY
                    } else {
                        (self.time_offset + 1.0).max(seg.start_s)
                    };
                    current.truncate(i);
                    return HallucinationCut::SeekTo(to);
                }
            }
            last_end = current[i].end_s;
        }
        HallucinationCut::None
    }
}

pub(crate) fn run(
    engine: &WhisperSide,
    audio: &Audio,
    opts: &TranscribeOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(Transcript, Timings)> {
    validate(opts)?;
    let _span = tracing::info_span!("transcribe", duration_s = audio.duration_s()).entered();
    let mut timings = Timings::default();
    let tok = &engine.tokenizer;
    let dims = engine.model.dims();
    let n_frames = dims.n_mel_frames();
    let duration_s = audio.duration_s();
    let mut transcript = Transcript {
        text: String::new(),
        language: opts.language.clone().unwrap_or_else(|| "en".into()),
        language_probability: None,
        duration_s,
        segments: Vec::new(),
    };
    if !tok.multilingual {
        if let Some(l) = opts.language.as_deref().filter(|l| *l != "en") {
            return Err(harken_decode::Error::Unsupported(format!(
                "this model is English-only; --language {l} is not available"
            ))
            .into());
        }
        transcript.language = "en".into();
    }
    if let Some(l) = &opts.language
        && tok.multilingual
    {
        tok.language_token(l)?;
    }
    if audio.samples.is_empty() {
        return Ok((transcript, timings));
    }
    let t = Instant::now();
    let mel = engine.mel.compute(&audio.samples, N_SAMPLES_PAD);
    let hot_sequences = hotword_sequences(tok, &opts.hotwords);
    let fusion = match (&engine.lm, opts.lm.enabled) {
        (Some(model), None | Some(true)) => Some(harken_decode::LmFusion {
            model: model.clone(),
            alpha: opts.lm.alpha.unwrap_or(0.3),
            beta: opts.lm.beta.unwrap_or(0.5),
        }),
        (None, Some(true)) => {
            return Err(Error::Option(
                "LM fusion was asked for but no language model is loaded (harken --lm FILE)".into(),
            ));
        }
        _ => None,
    };
    timings.mel = t.elapsed();
    let content_frames = audio.samples.len() / HOP_SAMPLES;

    let mut suppress = engine.dir.suppress.clone();
    suppress.extend([
        tok.sot,
        tok.sot_prev,
        tok.sot_lm,
        tok.transcribe,
        tok.translate,
        tok.no_speech,
    ]);
    suppress.sort_unstable();
    suppress.dedup();
    let suppress_at_begin = if engine.dir.suppress_at_begin.is_empty() {
        vec![tok.eot]
    } else {
        engine.dir.suppress_at_begin.clone()
    };

    let mut all_tokens: Vec<u32> = Vec::new();
    if let Some(p) = opts.initial_prompt.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        all_tokens.extend(tok.encode(&format!(" {p}")));
    }
    let mut prompt_reset_since = 0;
    let mut language: Option<String> =
        if tok.multilingual { opts.language.clone() } else { Some("en".into()) };
    let mut last_speech_s = 0.0f64;
    let mut seek = 0usize;
    let mut window_index = 0u64;
    while seek < content_frames {
        let time_offset = (seek * HOP_SAMPLES) as f64 / f64::from(harken_features::SAMPLE_RATE_HZ);
        let segment_size = n_frames.min(content_frames - seek);
        let segment_duration =
            (segment_size * HOP_SAMPLES) as f64 / f64::from(harken_features::SAMPLE_RATE_HZ);
        let s0 = seek * HOP_SAMPLES;
        let s1 = ((seek + segment_size) * HOP_SAMPLES).min(audio.samples.len());
        let peak = audio.samples[s0..s1].iter().fold(0.0f32, |m, x| m.max(x.abs()));
        if peak < SILENCE_PEAK {
            seek += segment_size;
            progress(Progress::at((seek * HOP_SAMPLES) as f64 / 16_000.0, duration_s));
            continue;
        }
        // Only the window's real frames; the rest is zero, as reference Whisper's `pad_or_trim`
        // of the sliced segment (not the log-mel of the zero padding, which costs 1.4 points of
        // WER on eval/dev).
        let window = mel.window(seek, segment_size, n_frames);
        let t = Instant::now();
        let enc = engine.model.encode(&window)?;
        timings.encoder += t.elapsed();
        timings.windows += 1;

        let t = Instant::now();
        if language.is_none() {
            let (code, p) = detect_language(engine, &enc)?;
            transcript.language_probability = Some(p);
            language = Some(code);
        }
        let lang = language.clone().unwrap_or_else(|| "en".into());
        let sot_sequence = tok.sot_sequence(Some(&lang), opts.task)?;
        let base = WindowOptions {
            search: Search::Greedy,
            prompt: if opts.condition_on_previous_text || prompt_reset_since == 0 {
                all_tokens[prompt_reset_since..].to_vec()
            } else {
                Vec::new()
            },
            sot_sequence: sot_sequence.clone(),
            timestamps: opts.timestamps,
            max_initial_timestamp_s: opts.max_initial_timestamp_s,
            suppress: suppress.clone(),
            suppress_at_begin: suppress_at_begin.clone(),
            sample_len: dims.n_text_ctx / 2,
            n_text_ctx: dims.n_text_ctx,
            hotwords: hot_sequences.clone(),
            hotword_weight: opts.hotword_weight,
            lm: fusion.clone(),
        };
        let result = decode_with_fallback(engine, &enc, &base, opts, window_index)?;
        timings.decoder += t.elapsed();
        window_index += 1;

        if let Some(ns) = opts.no_speech_threshold {
            let mut skip = result.no_speech_prob > ns;
            if opts.logprob_threshold.is_some_and(|lt| result.avg_logprob > lt) {
                skip = false;
            }
            if skip {
                seek += segment_size;
                progress(Progress::at((seek * HOP_SAMPLES) as f64 / 16_000.0, duration_s));
                continue;
            }
        }

        let previous_seek = seek;
        let tokens = &result.tokens;
        let is_ts = |t: u32| t >= tok.timestamp_begin;
        let ts_pos = |t: u32| f64::from(t - tok.timestamp_begin);
        let single_timestamp_ending = tokens.len() >= 2
            && !is_ts(tokens[tokens.len() - 2])
            && is_ts(tokens[tokens.len() - 1]);
        let consecutive: Vec<usize> =
            (1..tokens.len()).filter(|&i| is_ts(tokens[i - 1]) && is_ts(tokens[i])).collect();
        let mut current: Vec<Segment> = Vec::new();
        let new_segment = |start: f64, end: f64, toks: &[u32]| Segment {
            id: 0,
            seek_frames: previous_seek,
            start_s: start,
            end_s: end,
            text: tok.decode(toks),
            tokens: toks.to_vec(),
            temperature: result.temperature,
            avg_logprob: result.avg_logprob,
            compression_ratio: result.compression_ratio,
            no_speech_prob: result.no_speech_prob,
            words: None,
        };
        let precision = f64::from(TIME_PRECISION_S);
        if !consecutive.is_empty() {
            let mut slices = consecutive.clone();
            if single_timestamp_ending {
                slices.push(tokens.len());
            }
            let mut last = 0;
            for &cur in &slices {
                let sliced = &tokens[last..cur];
                let (first, lastt) = (sliced[0], sliced[sliced.len() - 1]);
                if is_ts(first) && is_ts(lastt) {
                    current.push(new_segment(
                        time_offset + ts_pos(first) * precision,
                        time_offset + ts_pos(lastt) * precision,
                        sliced,
                    ));
                }
                last = cur;
            }
            if single_timestamp_ending {
                seek += segment_size;
            } else {
                let last_ts = tokens[last - 1];
                seek += (ts_pos(last_ts) as usize) * INPUT_STRIDE;
            }
        } else {
            let mut duration = segment_duration;
            if let Some(&lt) = tokens.iter().rev().find(|&&t| is_ts(t))
                && lt != tok.timestamp_begin
            {
                duration = ts_pos(lt) * precision;
            }
            current.push(new_segment(time_offset, time_offset + duration, tokens));
            seek += segment_size;
        }

        if opts.word_timestamps && !current.is_empty() {
            let speech_before = last_speech_s;
            let t = Instant::now();
            align_words(
                engine,
                &enc,
                &sot_sequence,
                &lang,
                &mut current,
                time_offset,
                segment_size,
                &mut last_speech_s,
            )?;
            timings.alignment += t.elapsed();
            if !single_timestamp_ending {
                let last_word_end = current
                    .iter()
                    .rev()
                    .filter_map(|s| s.words.as_ref().and_then(|w| w.last()).map(|w| w.end_s))
                    .next();
                if let Some(end) = last_word_end
                    && end > time_offset
                {
                    seek = (end * 100.0).round() as usize;
                }
            }
            if let Some(threshold) = opts.hallucination_silence_threshold {
                let window = HallucinationWindow {
                    threshold: f64::from(threshold),
                    time_offset,
                    window_end: time_offset + segment_duration,
                    duration_s,
                    speech_before,
                };
                match window.check(&mut current) {
                    HallucinationCut::None => {}
                    HallucinationCut::SkipWindowTo(t) => {
                        seek = ((t * 100.0).round() as usize).max(previous_seek + 1);
                        progress(Progress::at(
                            (seek.min(content_frames) * HOP_SAMPLES) as f64 / 16_000.0,
                            duration_s,
                        ));
                        continue;
                    }
                    HallucinationCut::SeekTo(t) => {
                        seek = if t.is_infinite() {
                            content_frames
                        } else {
                            ((t * 100.0).round() as usize).max(previous_seek + 1)
                        };
                    }
                }
            }
        }
        // Guard against a model that never advances.
        if seek <= previous_seek {
            seek = previous_seek + segment_size;
        }

        for s in &mut current {
            if s.start_s == s.end_s || s.text.trim().is_empty() {
                s.text.clear();
                s.tokens.clear();
                s.words = Some(Vec::new()).filter(|_| opts.word_timestamps);
            }
        }
        let first_new = transcript.segments.len();
        for s in current.into_iter().filter(|s| !s.text.is_empty()) {
            all_tokens.extend(&s.tokens);
            let mut s = s;
            s.tokens.retain(|&t| t < tok.eot);
            s.id = transcript.segments.len();
            transcript.segments.push(s);
        }
        if !opts.condition_on_previous_text || result.temperature > 0.5 {
            prompt_reset_since = all_tokens.len();
        }
        progress(Progress {
            done_s: (seek.min(content_frames) * HOP_SAMPLES) as f64 / 16_000.0,
            total_s: duration_s,
            segments: &transcript.segments[first_new..],
        });
    }
    transcript.language = language.unwrap_or_else(|| "en".into());
    transcript.text =
        transcript.segments.iter().map(|s| s.text.as_str()).collect::<String>().trim().to_owned();
    Ok((transcript, timings))
}

/// Token sequences of each hot word as Whisper would spell it mid-sentence (leading space) and
/// at the start, as given, capitalised and lowercase.
fn hotword_sequences(tok: &harken_decode::WhisperTokenizer, words: &[String]) -> Vec<Vec<u32>> {
    let mut out: Vec<Vec<u32>> = Vec::new();
    for w in words {
        let w = w.trim();
        let mut cap = w.chars();
        let capital: String =
            cap.next().map(|c| c.to_uppercase().chain(cap).collect()).unwrap_or_default();
        for v in [w.to_owned(), capital, w.to_lowercase()] {
            for text in [format!(" {v}"), v.clone()] {
                let ids = tok.encode(&text);
                if !ids.is_empty() && !out.contains(&ids) {
                    out.push(ids);
                }
            }
        }
    }
    out
}

fn validate(opts: &TranscribeOptions) -> Result<()> {
    if opts.beam_size == 0 || opts.beam_size > 32 {
        return Err(Error::Option(format!("beam size must be 1–32, got {}", opts.beam_size)));
    }
    if opts.temperatures.is_empty() || opts.temperatures.iter().any(|t| !(0.0..=2.0).contains(t)) {
        return Err(Error::Option("temperatures must be between 0 and 2".into()));
    }
    if opts.best_of == 0 || opts.best_of > 32 {
        return Err(Error::Option(format!("best-of must be 1–32, got {}", opts.best_of)));
    }
    Ok(())
}

fn decode_with_fallback(
    engine: &WhisperSide,
    enc: &EncoderOutput,
    base: &WindowOptions,
    opts: &TranscribeOptions,
    window_index: u64,
) -> Result<WindowResult> {
    let mut tried: Vec<WindowResult> = Vec::new();
    for &temperature in &opts.temperatures {
        let mut wo = base.clone();
        wo.search = if temperature > 0.0 {
            Search::Sample {
                temperature,
                best_of: opts.best_of,
                seed: 0x5eed ^ window_index.wrapping_mul(31),
            }
        } else if opts.beam_size > 1 {
            Search::Beam { width: opts.beam_size, patience: opts.patience }
        } else {
            Search::Greedy
        };
        let mut step = Step(engine.model.decoder(enc, 1)?, engine.model.dims().n_vocab);
        let r = decode_window(&mut step, &engine.tokenizer, &wo)?;
        let mut needs_fallback = false;
        if opts.compression_ratio_threshold.is_some_and(|c| r.compression_ratio > c) {
            needs_fallback = true;
        }
        if opts.logprob_threshold.is_some_and(|l| r.avg_logprob < l) {
            needs_fallback = true;
        }
        if opts.no_speech_threshold.is_some_and(|n| r.no_speech_prob > n) {
            needs_fallback = false;
        }
        tracing::debug!(
            temperature,
            avg_logprob = r.avg_logprob,
            compression_ratio = r.compression_ratio,
            no_speech_prob = r.no_speech_prob,
            needs_fallback,
            "window decoded"
        );
        if !needs_fallback {
            return Ok(r);
        }
        tried.push(r);
    }
    // Every temperature failed: keep the likeliest result that is not repetitive, as
    // faster-whisper does, else the likeliest of all.
    let cr = opts.compression_ratio_threshold.unwrap_or(f32::INFINITY);
    let best_below = tried
        .iter()
        .filter(|r| r.compression_ratio <= cr)
        .max_by(|a, b| a.avg_logprob.total_cmp(&b.avg_logprob))
        .cloned();
    let best = best_below
        .or_else(|| tried.iter().max_by(|a, b| a.avg_logprob.total_cmp(&b.avg_logprob)).cloned());
    best.ok_or_else(|| Error::Option("no temperatures to decode with".into()))
}

fn detect_language(engine: &WhisperSide, enc: &EncoderOutput) -> Result<(String, f32)> {
    let tok = &engine.tokenizer;
    let mut session = engine.model.decoder(enc, 1)?;
    let logits = session.step(&[&[tok.sot]], &[0])?;
    let row = logits.row(0, 0);
    let langs = &tok.languages;
    let max = langs.iter().map(|&(_, id)| row[id as usize]).fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = langs.iter().map(|&(_, id)| (row[id as usize] - max).exp()).sum();
    let best = langs.iter().max_by(|a, b| row[a.1 as usize].total_cmp(&row[b.1 as usize]));
    let (code, id) = best.cloned().unwrap_or_else(|| ("en".into(), 0));
    let p = (row[id as usize] - max).exp() / sum;
    tracing::info!(language = %code, probability = p, "language detected");
    Ok((code, p))
}

#[allow(clippy::too_many_arguments)] // the window's context, spelled out once
fn align_words(
    engine: &WhisperSide,
    enc: &EncoderOutput,
    sot_sequence: &[u32],
    language: &str,
    segments: &mut [Segment],
    time_offset: f64,
    num_frames: usize,
    last_speech_s: &mut f64,
) -> Result<()> {
    let tok = &engine.tokenizer;
    let text_tokens: Vec<u32> =
        segments.iter().flat_map(|s| s.tokens.iter().copied().filter(|&t| t < tok.eot)).collect();
    if text_tokens.is_empty() || engine.dir.alignment_heads.is_empty() {
        for s in segments.iter_mut() {
            s.words = Some(Vec::new());
        }
        return Ok(());
    }
    let mut seq = sot_sequence.to_vec();
    seq.push(tok.no_timestamps);
    seq.extend(&text_tokens);
    seq.push(tok.eot);
    let n_ctx = engine.model.dims().n_text_ctx;
    if seq.len() > n_ctx {
        seq.truncate(n_ctx);
    }
    let scores = engine.model.alignment_scores(enc, &seq, &engine.dir.alignment_heads)?;
    let vocab = engine.model.dims().n_vocab;
    let eot = tok.eot as usize;
    let probs: Vec<f32> = text_tokens
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let pos = sot_sequence.len() + i;
            let row = scores.logits.get(pos * vocab..pos * vocab + eot).unwrap_or(&[]);
            if row.is_empty() {
                return 0.0;
            }
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
            row.get(t as usize).map_or(0.0, |&x| (x - max).exp() / sum)
        })
        .collect();
    let input = AlignmentInput {
        qk: &scores.qk,
        heads: scores.heads,
        tokens: scores.tokens,
        audio_ctx: scores.audio_ctx,
        num_frames,
        sot_len: sot_sequence.len(),
        text_tokens: &text_tokens,
        text_token_probs: &probs,
    };
    let alignment = find_alignment(tok, &input, language);
    assign_words(segments, alignment, tok.eot, time_offset, last_speech_s);
    Ok(())
}
