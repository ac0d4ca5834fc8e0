//! `harken vad`: where the speech is in audio files, by Silero VAD, without a speech model.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use harken_vad::{Silero, speech_regions};

use crate::transcribe::VadArgs;

/// Flags of `harken vad`.
#[derive(clap::Args, Debug)]
pub(crate) struct VadCmdArgs {
    /// Audio files (any format `transcribe` reads).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Also print each 32-ms chunk's speech probability.
    #[arg(long)]
    probs: bool,
    #[command(flatten)]
    vad: VadArgs,
}

/// One JSON line per file: `{file, duration, speech, regions: [{start, end}], probs?}` (seconds).
pub(crate) fn run(args: VadCmdArgs) -> Result<ExitCode> {
    let (path, _) = crate::model::vad_path();
    let model = Silero::load(&path).with_context(|| {
        format!("while loading the VAD model {} (scripts/install-models.sh vad)", path.display())
    })?;
    let opts = args.vad.values();
    opts.validate()?;
    let mut failures = 0;
    for file in &args.files {
        let audio = match harken_audio::decode_file(file, &harken_audio::DecodeOptions::whisper()) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                failures += 1;
                continue;
            }
        };
        let probs = model.probs(&audio.samples);
        let regions = speech_regions(&probs, audio.samples.len(), &opts);
        let sr = f64::from(harken_vad::SAMPLE_RATE);
        let speech: usize = regions.iter().map(|r| r.len()).sum();
        let mut line = serde_json::json!({
            "file": file.display().to_string(),
            "duration": audio.samples.len() as f64 / sr,
            "speech": speech as f64 / sr,
            "regions": regions
                .iter()
                .map(|r| serde_json::json!({"start": r.start as f64 / sr, "end": r.end as f64 / sr}))
                .collect::<Vec<_>>(),
        });
        if args.probs {
            line["probs"] = serde_json::json!(probs);
        }
        println!("{line}");
    }
    Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
