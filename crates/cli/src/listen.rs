//! `harken listen`: live captions in the terminal from an audio file played at real-time speed
//! (`--file`; what demos and tests use), through the same streaming recogniser as the server's
//! WebSocket. Partial text is shown in grey and overwritten in place; each final line stays.
//! `--format jsonl` prints one JSON object per event for programs.
//!
//! The microphone (cpal) is not wired yet: `--file` is required.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use harken_stream::{Event, Stream, StreamOptions};

use crate::ModelArgs;

/// Flags of `harken listen`.
#[derive(clap::Args, Debug)]
pub(crate) struct ListenArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Play this file at real-time speed instead of the microphone.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Feed the file as fast as the recogniser goes (no real-time pacing).
    #[arg(long)]
    fast: bool,
    /// Output: live captions on a terminal, or one JSON object per event.
    #[arg(long, default_value = "text", value_parser = ["text", "jsonl"])]
    format: String,
    /// Spoken language code (default: detect).
    #[arg(long)]
    language: Option<String>,
    /// Silence that ends an utterance, ms.
    #[arg(long, default_value_t = 500)]
    silence_ms: u32,
}

pub(crate) fn run(args: ListenArgs) -> Result<ExitCode> {
    let Some(file) = &args.file else {
        bail!(
            "live microphone input is not available in this build; use --file AUDIO (played at real-time speed)"
        );
    };
    let audio = harken_audio::decode_file(file, &harken_audio::DecodeOptions::whisper())
        .with_context(|| format!("while reading {}", file.display()))?;
    let loaded = crate::model::load(&args.model, None)?;
    let engine = &loaded.engine;
    let vad = engine
        .vad()
        .map(|v| &**v)
        .context("live captions need the VAD model (scripts/install-models.sh vad)")?;
    let mut opts = StreamOptions::default();
    if let Some(t) = &mut opts.turn_detection {
        t.silence_duration_ms = args.silence_ms;
    }
    opts.decode.language = args.language.clone();
    let mut stream = Stream::new(engine, Some(vad), opts)?;
    let jsonl = args.format == "jsonl";
    let mut partial = String::new();
    let start = Instant::now();
    let piece = 1600; // 100 ms
    let mut out = std::io::stdout().lock();
    let mut show = |events: Vec<Event>, out: &mut dyn Write| -> Result<()> {
        for e in events {
            let at = start.elapsed().as_secs_f64();
            if jsonl {
                let v = match &e {
                    Event::SpeechStarted { item, at_ms } => {
                        serde_json::json!({"type": "speech_started", "item": item, "audio_ms": at_ms, "wall_s": at})
                    }
                    Event::SpeechStopped { item, at_ms } => {
                        serde_json::json!({"type": "speech_stopped", "item": item, "audio_ms": at_ms, "wall_s": at})
                    }
                    Event::Committed { item } => {
                        serde_json::json!({"type": "committed", "item": item, "wall_s": at})
                    }
                    Event::Delta { item, text } => {
                        serde_json::json!({"type": "partial", "item": item, "delta": text, "wall_s": at})
                    }
                    Event::Completed { item, text, audio_s } => {
                        serde_json::json!({"type": "final", "item": item, "text": text, "audio_seconds": audio_s, "wall_s": at})
                    }
                };
                writeln!(out, "{v}")?;
                continue;
            }
            match e {
                Event::Delta { text, .. } => {
                    partial.push_str(&text);
                    write!(out, "\r\x1b[2K\x1b[90m{}\x1b[0m", partial.trim())?;
                }
                Event::Completed { text, .. } => {
                    partial.clear();
                    writeln!(out, "\r\x1b[2K{}", text.trim())?;
                }
                _ => {}
            }
            out.flush()?;
        }
        Ok(())
    };
    for (i, chunk) in audio.samples.chunks(piece).enumerate() {
        if !args.fast {
            let due = Duration::from_secs_f64((i * piece) as f64 / 16_000.0);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let events = stream.push(chunk)?;
        show(events, &mut out)?;
    }
    let events = stream.finish()?;
    show(events, &mut out)?;
    Ok(ExitCode::SUCCESS)
}
