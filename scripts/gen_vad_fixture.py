"""Reference VAD output for testdata/audio/vad_pauses_16k.wav.

Writes testdata/vad/vad_pauses_16k.json with
- `probs`: per-chunk speech probabilities of the silero-vad package's own 16 kHz ONNX model
  (the file scripts/install-models.sh installs), run on onnxruntime exactly as the package's
  `OnnxWrapper` runs it (512-sample chunks, the previous 64 samples in front, state carried);
- `regions`: faster-whisper's `get_speech_timestamps` rules applied to those probabilities, for
  two option sets;
- `faster_whisper_probs`: faster-whisper's bundled Silero model (an older v6 export) on the same
  audio, for the agreement figure.
The Rust tests check harken-vad against `probs` and `regions`. Run with the bench venv
(bench/setup-peer.sh) after `scripts/install-models.sh vad`:

    ~/.cache/harken/bench-venv/bin/python scripts/gen_vad_fixture.py [--check]
"""

import json
import os
import sys
import wave
from pathlib import Path

import numpy as np
import onnxruntime
import faster_whisper
import faster_whisper.vad as fw_vad

ROOT = Path(__file__).resolve().parent.parent
WAV = ROOT / "testdata/audio/vad_pauses_16k.wav"
OUT = ROOT / "testdata/vad/vad_pauses_16k.json"
CACHE = Path(os.environ.get("HARKEN_CACHE_DIR", Path.home() / ".cache/harken"))
MODEL = CACHE / "models/silero-vad/silero_vad_16k_op15.onnx"
OPTION_SETS = {
    "default": {},
    "tight": {"min_silence_duration_ms": 500, "speech_pad_ms": 100, "min_speech_duration_ms": 250},
}


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def package_probs(audio: np.ndarray, model: Path = MODEL) -> np.ndarray:
    """The silero-vad package's OnnxWrapper calling convention, without torch."""
    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"], sess_options=opts)
    state = np.zeros((2, 1, 128), np.float32)
    context = np.zeros((1, 64), np.float32)
    out = []
    for i in range(0, len(audio), 512):
        chunk = audio[i : i + 512]
        chunk = np.pad(chunk, (0, 512 - len(chunk)))[None, :]
        x = np.concatenate([context, chunk], 1)
        p, state = session.run(None, {"input": x, "state": state, "sr": np.array(16000, dtype=np.int64)})
        context = x[:, -64:]
        out.append(float(p.reshape(-1)[0]))
    return np.array(out, np.float32)


class _Fixed:
    """Stands in for faster-whisper's model so that its region rules run on given probabilities."""

    def __init__(self, probs):
        self.probs = probs

    def __call__(self, audio):
        return self.probs[: len(audio) // 512].reshape(-1, 1)


def regions(audio: np.ndarray, probs: np.ndarray, opts: dict) -> list:
    real = fw_vad.get_vad_model
    fw_vad.get_vad_model = lambda: _Fixed(probs)
    try:
        return fw_vad.get_speech_timestamps(audio, fw_vad.VadOptions(**opts))
    finally:
        fw_vad.get_vad_model = real


def main() -> None:
    audio = read_wav(WAV)
    probs = package_probs(audio)
    fw = fw_vad.get_vad_model()(np.pad(audio, (0, 512 - audio.shape[0] % 512))).reshape(-1)
    out = {
        "source": f"silero-vad 6.2.3 silero_vad_16k_op15.onnx on onnxruntime {onnxruntime.__version__}; "
        f"regions by faster-whisper {faster_whisper.__version__} get_speech_timestamps",
        "samples": int(audio.shape[0]),
        "probs": [round(float(p), 6) for p in probs],
        "regions": {
            name: {"options": opts, "regions": regions(audio, probs, opts)} for name, opts in OPTION_SETS.items()
        },
        "faster_whisper_probs": [round(float(p), 6) for p in fw],
    }
    text = json.dumps(out, indent=1) + "\n"
    if "--check" in sys.argv:
        same = OUT.read_text() == text
        print("vad fixture:", "matches" if same else "DIFFERS")
        sys.exit(0 if same else 1)
    OUT.write_text(text)
    print(f"wrote {OUT}: {len(probs)} chunks")


if __name__ == "__main__":
    main()
