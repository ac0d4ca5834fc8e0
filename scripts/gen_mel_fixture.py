#!/usr/bin/env python3
"""Write the reference Whisper log-mel fixture for testdata/audio/speech_16k_s16.wav.

Run with the bench venv (bench/setup-peer.sh creates it; it holds faster-whisper 1.2.1):

    ~/.cache/harken/bench-venv/bin/python scripts/gen_mel_fixture.py [--check]

It decodes the clip with faster-whisper's own `decode_audio` (PyAV, resampled to 16 kHz mono s16,
then / 32768 to float32) and runs faster-whisper's own `FeatureExtractor` exactly as
`WhisperModel.transcribe` does for a clip shorter than 30 s: `FeatureExtractor(feature_size=80)`
(the models have no preprocessor_config.json, so these are the defaults) called as
`extractor(audio)`, i.e. `padding=160`, `chunk_length=None`. What that means:

  * 160 zero samples (one hop) are appended to the audio - NOT 30 s of zeros as openai-whisper's
    `log_mel_spectrogram(audio, padding=N_SAMPLES)` does;
  * STFT: n_fft 400, hop 160, periodic Hann (np.hanning(401)[:-1]), center=True with *reflect*
    padding of 200 samples on each side (so the tail reflects the 160 appended zeros);
  * power spectrum |X|^2 with the last STFT frame dropped, Slaney-normalised 80-band mel filters
    (librosa-style, 0..8 kHz), log10(max(x, 1e-10)), clamp at (global max - 8), then (x + 4) / 4.
    The max is taken over this whole array (for long audio: over the whole file, not per 30 s);
  * result: float32 [80, n_frames] with n_frames = n_samples // 160 + 1.

`transcribe` then uses only the first `content_frames = n_frames - 1` frames
(`generate_segments`: `content_frames = features.shape[-1] - 1`) and pads that slice to 3000
frames with 0.0 (`pad_or_trim`, in the normalised log-mel domain - not the log-mel of silence)
before the encoder. The fixture stores the full [80, n_frames] array; the sidecar records
`content_frames` and these rules.

Outputs (little-endian float32, raw, no header):
  testdata/features/speech_16k_s16.mel80.f32   row-major [n_mels][n_frames]
  testdata/features/speech_16k_s16.mel80.json  sidecar: shape, layout, generator, padding facts
  testdata/features/speech_16k_s16.pcm.f32     the decode_audio() samples the mel was computed on

--check recomputes everything and fails if the stored files differ (exit 1).
"""
import argparse
import hashlib
import json
import os
import sys
import wave

import numpy as np

try:
    import faster_whisper
    from faster_whisper.audio import decode_audio
    from faster_whisper.feature_extractor import FeatureExtractor
except ImportError:
    sys.exit("gen_mel_fixture: faster_whisper is not importable; run bench/setup-peer.sh and use "
             "the bench venv's python (~/.cache/harken/bench-venv/bin/python)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WAV = os.path.join(ROOT, "testdata", "audio", "speech_16k_s16.wav")
OUT = os.path.join(ROOT, "testdata", "features")
STEM = "speech_16k_s16"


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="verify the stored fixture, write nothing")
    args = ap.parse_args()
    if not os.path.exists(WAV):
        sys.exit(f"gen_mel_fixture: {WAV} is missing; run scripts/gen-test-audio.sh first")

    audio = decode_audio(WAV, sampling_rate=16000)
    assert audio.dtype == np.float32 and audio.ndim == 1

    # For a 16 kHz mono s16 WAV, decode_audio must be the exact int16 / 32768 of the file.
    with wave.open(WAV) as w:
        raw = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    identical = raw.shape == audio.shape and np.array_equal(raw.astype(np.float32) / 32768.0, audio)

    fe = FeatureExtractor(feature_size=80)
    mel = fe(audio)  # as WhisperModel.transcribe: padding=160, chunk_length=None
    mel = np.ascontiguousarray(mel, dtype="<f4")
    n_mels, n_frames = mel.shape
    assert n_mels == 80 and n_frames == audio.shape[0] // 160 + 1, mel.shape

    mel_bytes = mel.tobytes(order="C")
    pcm_bytes = np.ascontiguousarray(audio, dtype="<f4").tobytes()
    meta = {
        "n_mels": 80,
        "n_frames": int(n_frames),
        "layout": "row-major [n_mels][n_frames]",
        "dtype": "float32 little-endian, raw, no header",
        "generator": (
            f"scripts/gen_mel_fixture.py: faster_whisper {faster_whisper.__version__} "
            f"FeatureExtractor(feature_size=80)(decode_audio(wav)) with default padding=160, "
            f"chunk_length=None (as WhisperModel.transcribe); numpy {np.__version__}"
        ),
        "source_audio": "testdata/audio/speech_16k_s16.wav",
        "pcm_file": f"{STEM}.pcm.f32",
        "sample_rate": 16000,
        "n_samples": int(audio.shape[0]),
        "pcm_is_wav_int16_div_32768": bool(identical),
        "content_frames": int(n_frames - 1),
        "frames_formula": "n_frames = n_samples // 160 + 1; transcribe feeds the encoder "
                          "mel[:, :content_frames] (content_frames = n_frames - 1) padded "
                          "with 0.0 to 3000 frames",
        "padding": "160 zero samples appended (not 30 s); STFT center=True, reflect pad 200 "
                   "each side; last STFT frame dropped; log10 clamp at global max - 8; (x+4)/4",
        "stft": {"n_fft": 400, "hop": 160, "window": "periodic hann (np.hanning(401)[:-1])"},
        "mel_filters": "slaney-normalised, slaney mel scale, 0..8000 Hz (librosa-style)",
        "stats": {"min": float(mel.min()), "max": float(mel.max()), "mean": float(mel.mean())},
        "sha256": {f"{STEM}.mel80.f32": sha256(mel_bytes), f"{STEM}.pcm.f32": sha256(pcm_bytes)},
    }
    files = {
        f"{STEM}.mel80.f32": mel_bytes,
        f"{STEM}.pcm.f32": pcm_bytes,
        f"{STEM}.mel80.json": (json.dumps(meta, indent=2) + "\n").encode(),
    }
    if args.check:
        bad = [n for n, b in files.items()
               if not os.path.exists(os.path.join(OUT, n)) or open(os.path.join(OUT, n), "rb").read() != b]
        if bad:
            print("gen_mel_fixture: differs from the stored fixture: " + ", ".join(bad))
            return 1
        print("gen_mel_fixture: stored fixture matches")
        return 0
    os.makedirs(OUT, exist_ok=True)
    for name, b in files.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(b)
    print(f"gen_mel_fixture: wrote {OUT}/{STEM}.{{mel80.f32,mel80.json,pcm.f32}}: "
          f"[80 x {n_frames}] from {audio.shape[0]} samples; pcm identical to WAV/32768: {identical}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
