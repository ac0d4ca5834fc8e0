//! Transcribe a 16-kHz WAV file with a DeepSpeech `.tflite` model and print, as JSON, the text,
//! the MFCC frames and the per-frame probabilities: what `scripts/deepspeech-reference.py`
//! compares with the TFLite runtime and libdeepspeech.
//!
//! `cargo run --release -p harken-engine --example deepspeech_trace -- MODEL.tflite AUDIO.wav [CHUNK_SAMPLES] [BEAM] [SCORER]`

use harken_engine::{Engine, EngineConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, audio, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: deepspeech_trace MODEL.tflite AUDIO.wav [CHUNK_SAMPLES] [BEAM] [SCORER]".into(),
        );
    };
    let chunk: usize = rest.first().map_or(Ok(usize::MAX), |c| c.parse())?;
    let beam: Option<usize> = rest.get(1).filter(|b| *b != "-").map(|b| b.parse()).transpose()?;
    let config = EngineConfig { scorer: rest.get(2).map(Into::into), ..Default::default() };
    let engine = Engine::load_tflite(model.as_ref(), &config)?;
    let opts = harken_audio::DecodeOptions { target_rate_hz: 16_000, max_duration_s: None };
    let audio = harken_audio::decode_file(audio.as_ref(), &opts)?;
    let mut topts = harken_engine::TranscribeOptions::default();
    topts.lm.beam = beam;
    let mut stream = engine.deepspeech_stream(&topts).ok_or("not a DeepSpeech model")?;
    stream.keep_probabilities();
    for part in audio.samples.chunks(chunk.max(1)) {
        stream.feed(part)?;
    }
    let out = stream.finish()?;
    let text = engine.deepspeech_text(&out).unwrap_or_default();
    let json = serde_json::json!({
        "text": text,
        "isa": engine.isa().to_string(),
        "timesteps": out.timesteps,
        "features": stream.features(),
        "probabilities": stream.probabilities(),
        "n_features": engine.deepspeech_dims().map_or(0, |d| d.n_features),
        "classes": engine.deepspeech_dims().map_or(0, |d| d.n_classes),
    });
    println!("{json}");
    Ok(())
}
