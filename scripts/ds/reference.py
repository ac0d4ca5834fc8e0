#!/usr/bin/env python3
"""Harken's DeepSpeech / Coqui STT path against the official runtimes, side by side.

Two references:
  * libdeepspeech.so from the `deepspeech-tflite==0.9.3` wheel (the official client's
    library), driven through ctypes: DS_CreateModel, DS_SetModelBeamWidth, DS_SpeechToText and
    the stream functions (DS_CreateStream / DS_FeedAudioContent / DS_FinishStream). Its
    transcripts are what Harken must reproduce exactly.
  * the client library's own MFCC filterbank energies and class probabilities, recorded by an
    LD_PRELOAD shim on libm's log() (scripts/ds/logtrace.c): Harken's features and
    probabilities must match them (1e-5 and 1e-4). The TFLite runtime on PyPI is no reference
    here: it is TensorFlow 2.14, whose float tanh and logistic differ from the client's 2.3.

Usage:
  deepspeech-reference.py check --lib libdeepspeech.so --model m.tflite --trace BIN \
      --harken BIN --shim logtrace.so [--beam N] [--chunk N] [--scorer S [--alpha A --beta B]
      [--hot-word WORD:BOOST]...] FILE.wav...
      Exit status 1 when any transcript differs or a tolerance is exceeded. With a scorer
      (DS_EnableExternalScorer, DS_SetScorerAlphaBeta, DS_AddHotWord) only the transcripts are
      compared: features and probabilities do not depend on it.
  deepspeech-reference.py stt --lib libdeepspeech.so --model m.tflite [--beam N] [--scorer S]
      FILE.wav...

Audio must be 16-kHz mono 16-bit WAV (what the client takes).
"""

import argparse
import ctypes
import json
import subprocess
import sys
import time
import wave

import numpy as np


def read_pcm16(path):
    with wave.open(path, "rb") as w:
        if w.getframerate() != 16000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise SystemExit(f"{path}: need 16-kHz mono 16-bit WAV")
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


class Client:
    """The official client library through its C API."""

    def __init__(self, lib, model, beam=None, scorer=None, alpha_beta=None, hot_words=()):
        self.lib = ctypes.CDLL(lib)
        L = self.lib
        L.DS_CreateModel.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
        L.DS_SetModelBeamWidth.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        L.DS_GetModelBeamWidth.argtypes = [ctypes.c_void_p]
        L.DS_GetModelBeamWidth.restype = ctypes.c_uint
        L.DS_EnableExternalScorer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        L.DS_SpeechToText.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_short), ctypes.c_uint]
        L.DS_SpeechToText.restype = ctypes.c_void_p
        L.DS_CreateStream.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
        L.DS_FeedAudioContent.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_short), ctypes.c_uint]
        L.DS_FinishStream.argtypes = [ctypes.c_void_p]
        L.DS_FinishStream.restype = ctypes.c_void_p
        L.DS_FreeString.argtypes = [ctypes.c_void_p]
        L.DS_FreeModel.argtypes = [ctypes.c_void_p]
        self.model = ctypes.c_void_p()
        t = time.perf_counter()
        rc = L.DS_CreateModel(model.encode(), ctypes.byref(self.model))
        self.load_s = time.perf_counter() - t
        if rc != 0:
            raise SystemExit(f"DS_CreateModel({model}) failed: {rc:#x}")
        self.scorer_load_s = 0.0
        if scorer:
            t = time.perf_counter()
            rc = L.DS_EnableExternalScorer(self.model, scorer.encode())
            self.scorer_load_s = time.perf_counter() - t
            if rc != 0:
                raise SystemExit(f"DS_EnableExternalScorer({scorer}) failed: {rc:#x}")
            if alpha_beta is not None:
                L.DS_SetScorerAlphaBeta.argtypes = [ctypes.c_void_p, ctypes.c_float, ctypes.c_float]
                rc = L.DS_SetScorerAlphaBeta(self.model, *alpha_beta)
                if rc != 0:
                    raise SystemExit(f"DS_SetScorerAlphaBeta failed: {rc:#x}")
            L.DS_AddHotWord.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_float]
            for word, boost in hot_words:
                rc = L.DS_AddHotWord(self.model, word.encode(), boost)
                if rc != 0:
                    raise SystemExit(f"DS_AddHotWord({word}) failed: {rc:#x}")
        if beam:
            L.DS_SetModelBeamWidth(self.model, beam)
        self.beam = L.DS_GetModelBeamWidth(self.model)

    def _text(self, p):
        s = ctypes.cast(p, ctypes.c_char_p).value.decode("utf-8")
        self.lib.DS_FreeString(p)
        return s

    def stt(self, pcm):
        buf = (ctypes.c_short * len(pcm)).from_buffer_copy(pcm.tobytes())
        return self._text(self.lib.DS_SpeechToText(self.model, buf, len(pcm)))

    def stt_stream(self, pcm, chunk):
        s = ctypes.c_void_p()
        if self.lib.DS_CreateStream(self.model, ctypes.byref(s)) != 0:
            raise SystemExit("DS_CreateStream failed")
        for i in range(0, len(pcm), chunk):
            part = pcm[i : i + chunk]
            buf = (ctypes.c_short * len(part)).from_buffer_copy(part.tobytes())
            self.lib.DS_FeedAudioContent(s, buf, len(part))
        return self._text(self.lib.DS_FinishStream(s))


def client_trace(a, path):
    """The client's own MFCCs and probabilities for one file, from a run under the log() shim."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        trace = os.path.join(tmp, "log.bin")
        env = dict(os.environ, LD_PRELOAD=a.shim, DS_LOG_TRACE=trace)
        cmd = [sys.executable, __file__, "stt", "--lib", a.lib, "--model", a.model, path]
        if a.beam:
            cmd[-1:-1] = ["--beam", str(a.beam)]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise SystemExit(f"client trace failed:\n{r.stderr}")
        raw = np.fromfile(trace, dtype=np.uint64).reshape(-1, 2)
    callers, values = raw[:, 0], raw[:, 1].view(np.float64)
    # The two busiest call sites are the MFCC filterbank and the decoder (a few other calls
    # happen while the model loads); the first window's MFCC comes before any decoding.
    sites, counts = np.unique(callers, return_counts=True)
    busy = sites[np.argsort(-counts)[:2]]
    if len(busy) < 2:
        raise SystemExit("log() trace: expected calls from the MFCC and from the decoder")
    first = {int(s): int(np.argmax(callers == s)) for s in busy}
    mfcc_site, decoder_site = sorted(busy, key=lambda s: first[int(s)])
    mel = values[callers == mfcc_site]
    probs = values[callers == decoder_site] - np.float64(np.finfo(np.float32).tiny)
    return mel, probs


def tf_dct(log_mel, n_coeff):
    """TensorFlow's MfccDct on rows of log filterbank energies."""
    n = log_mel.shape[1]
    j = np.arange(n)
    cos = np.stack([np.sqrt(2.0 / n) * np.cos(i * (np.pi / n) * (j + 0.5)) for i in range(n_coeff)])
    return log_mel @ cos.T


def harken_trace(binary, model, path, chunk, beam, scorer=None):
    cmd = [binary, model, path, str(chunk), str(beam) if beam else "-"] + ([scorer] if scorer else [])
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return json.loads(r.stdout), time.perf_counter() - t


def hot_words(a):
    out = []
    for h in a.hot_word or []:
        word, _, boost = h.rpartition(":")
        out.append((word, float(boost)))
    return out


def harken_decoding_flags(a):
    flags = ["--beam", str(a.beam)] if a.beam else []
    if a.scorer:
        flags += ["--scorer", a.scorer]
        if a.alpha is not None:
            flags += ["--lm-alpha", repr(a.alpha), "--lm-beta", repr(a.beta)]
        for h in a.hot_word or []:
            flags += ["--hotwords", h]
    return flags


def check(a):
    alpha_beta = (a.alpha, a.beta) if a.alpha is not None else None
    client = Client(a.lib, a.model, a.beam, a.scorer, alpha_beta, hot_words(a))
    if a.scorer and (a.alpha is not None or a.hot_word):
        # The trace example takes no α/β or hot words: the CLI carries those checks.
        a.trace_ok = False
    else:
        a.trace_ok = True
    failures = 0
    worst_feat = worst_prob = 0.0
    for path in a.files:
        pcm = read_pcm16(path)
        want = client.stt(pcm)
        want_stream = client.stt_stream(pcm, a.chunk)
        if a.trace_ok:
            got, _ = harken_trace(a.trace, a.model, path, 1 << 30, a.beam, a.scorer)
            got_stream, _ = harken_trace(a.trace, a.model, path, a.chunk, a.beam, a.scorer)
        else:
            got = got_stream = None
        cli = subprocess.run(
            [a.harken, "transcribe", "--model", a.model, path] + harken_decoding_flags(a),
            capture_output=True, text=True, check=False,
        )
        cli_text = cli.stdout.rstrip("\n")
        if cli.returncode != 0:
            print(cli.stderr, file=sys.stderr)
        if a.scorer:
            texts = [cli_text] + ([got["text"], got_stream["text"]] if got else [])
            same = all(t == want for t in texts) and want == want_stream
            failures += not same
            print(json.dumps({
                "file": path, "ok": same, "client": want, "client_streamed": want_stream,
                "harken_cli": cli_text, "harken": got and got["text"],
                "harken_streamed": got_stream and got_stream["text"],
            }, ensure_ascii=False))
            continue
        mel, cprobs = client_trace(a, path)
        hf = np.array(got["features"], np.float64)
        n_coeff = int(got["n_features"])
        hf = hf.reshape(-1, n_coeff)
        channels = mel.size // hf.shape[0]
        cf = tf_dct(np.log(mel.reshape(hf.shape[0], channels)), n_coeff).astype(np.float32)
        df = float(np.max(np.abs(hf - cf))) if cf.size else 0.0
        classes = int(got["classes"])
        hp = np.array(got["probabilities"], np.float64).reshape(-1, classes)
        cp = cprobs.reshape(-1, classes)
        # The client decodes from the first frame whose blank probability is below 0.999, and
        # sorts the classes by probability when there are more than 40: compare sorted rows of
        # the frames it saw.
        hp = hp[hp.shape[0] - cp.shape[0]:]
        if classes > 40:
            hp, cp = -np.sort(-hp, axis=1), -np.sort(-cp, axis=1)
        dp = float(np.max(np.abs(hp - cp))) if cp.size else 0.0
        worst_feat, worst_prob = max(worst_feat, df), max(worst_prob, dp)
        same = want == got["text"] == got_stream["text"] == want_stream == cli_text
        ok = same and df <= 1e-5 and dp <= 1e-4
        failures += not ok
        print(json.dumps({
            "file": path, "ok": ok, "client": want, "client_streamed": want_stream,
            "harken": got["text"], "harken_streamed": got_stream["text"], "harken_cli": cli_text,
            "max_feature_diff": df, "max_probability_diff": dp, "frames": int(hp.shape[0]),
        }, ensure_ascii=False))
    print(json.dumps({"files": len(a.files), "failures": failures, "beam": client.beam,
                      "scorer": a.scorer, "alpha_beta": alpha_beta, "hot_words": hot_words(a),
                      "max_feature_diff": None if a.scorer else worst_feat,
                      "max_probability_diff": None if a.scorer else worst_prob}))
    return 1 if failures else 0


def stt(a):
    client = Client(a.lib, a.model, a.beam, a.scorer)
    for path in a.files:
        pcm = read_pcm16(path)
        t = time.perf_counter()
        text = client.stt(pcm)
        print(json.dumps({"file": path, "text": text, "seconds": time.perf_counter() - t,
                          "audio_s": len(pcm) / 16000}, ensure_ascii=False))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("check", "stt"):
        s = sub.add_parser(name)
        s.add_argument("--lib", required=True)
        s.add_argument("--model", required=True)
        s.add_argument("--beam", type=int)
        s.add_argument("--scorer")
        s.add_argument("files", nargs="+")
        if name == "check":
            s.add_argument("--trace", required=True, help="the deepspeech_trace example binary")
            s.add_argument("--harken", required=True, help="the harken binary")
            s.add_argument("--chunk", type=int, default=1234, help="samples per fed chunk")
            s.add_argument("--shim", required=True, help="logtrace.so (scripts/ds/logtrace.c)")
            s.add_argument("--alpha", type=float, help="DS_SetScorerAlphaBeta (with --beta)")
            s.add_argument("--beta", type=float)
            s.add_argument("--hot-word", action="append", help="WORD:BOOST for DS_AddHotWord")
    a = p.parse_args()
    return check(a) if a.cmd == "check" else stt(a)


if __name__ == "__main__":
    sys.exit(main())
