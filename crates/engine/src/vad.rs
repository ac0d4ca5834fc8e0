//! Transcription of only the speech in a recording (faster-whisper's `vad_filter`).
//!
//! Silero VAD finds the speech regions; they are joined and transcribed as one recording, and
//! every segment and word time is moved back onto the original timeline. Where nobody speaks
//! the model never runs, so it cannot invent text there, and long pauses cost nothing.

use std::time::Instant;

use harken_core::{Audio, Transcript};
use harken_vad::{Silero, Timeline, VadOptions, collect, speech_regions};

use crate::{Engine, Progress, Result, Timings, TranscribeOptions};

pub(crate) fn transcribe_speech(
    engine: &Engine,
    model: &Silero,
    vad: &VadOptions,
    audio: &Audio,
    opts: &TranscribeOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(Transcript, Timings)> {
    vad.validate()?;
    let rate = f64::from(audio.sample_rate_hz);
    let total_s = audio.samples.len() as f64 / rate;
    let t = Instant::now();
    let probs = model.probs(&audio.samples);
    let regions = speech_regions(&probs, audio.samples.len(), vad);
    let vad_time = t.elapsed();
    let speech =
        Audio { samples: collect(&audio.samples, &regions), sample_rate_hz: audio.sample_rate_hz };
    tracing::debug!(
        regions = regions.len(),
        speech_s = speech.samples.len() as f64 / rate,
        total_s,
        vad_ms = vad_time.as_millis() as u64,
        "voice activity detection"
    );
    if speech.samples.is_empty() {
        progress(Progress::at(total_s, total_s));
        let transcript = Transcript {
            text: String::new(),
            language: opts.language.clone().unwrap_or_default(),
            language_probability: None,
            duration_s: total_s,
            segments: Vec::new(),
        };
        return Ok((transcript, Timings { vad: vad_time, ..Timings::default() }));
    }
    let timeline = Timeline::new(&regions);
    let inner = TranscribeOptions { vad: None, ..opts.clone() };
    let (mut tr, mut timings) =
        engine.transcribe_all(&speech, &inner, &mut |p: Progress<'_>| {
            let mut segments = p.segments.to_vec();
            segments.iter_mut().for_each(|s| to_original(&timeline, s));
            progress(Progress {
                done_s: timeline.original(p.done_s, true).min(total_s),
                total_s,
                segments: &segments,
            })
        })?;
    tr.segments.iter_mut().for_each(|s| to_original(&timeline, s));
    tr.duration_s = total_s;
    timings.vad = vad_time;
    Ok((tr, timings))
}

fn to_original(timeline: &Timeline, seg: &mut harken_core::Segment) {
    seg.start_s = timeline.original(seg.start_s, false);
    seg.end_s = timeline.original(seg.end_s, true).max(seg.start_s);
    for w in seg.words.iter_mut().flatten() {
        w.start_s = timeline.original(w.start_s, false);
        w.end_s = timeline.original(w.end_s, true).max(w.start_s);
    }
}
