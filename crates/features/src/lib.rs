//! `Audio` samples → Whisper's log-mel spectrogram.
//!
//! Owns the front end only: Hann-windowed, centred (reflect-padded) STFT with a real FFT
//! (realfft), power spectrum, Slaney-style mel filterbank, `log10`, dynamic-range clamp to 8
//! (i.e. 80 dB) below the global maximum and the `(x + 4) / 4` scaling. It mirrors OpenAI
//! Whisper's `whisper/audio.py::log_mel_spectrogram` (openai/whisper, commit 517a43ec, names:
//! `N_FFT` = [`N_FFT`], `HOP_LENGTH` = [`HOP_SAMPLES`], `mel_filters` = [`mel_filterbank`])
//! and librosa 0.10's `filters.mel(htk=False, norm="slaney")` for the filterbank, computed here
//! instead of shipped as an asset.
//!
//! Brief overview: build a [`LogMel`] once per model (it owns the FFT plan and filters), then
//! [`LogMel::compute`] a [`MelSpectrogram`] per input and cut 30-s windows from it with
//! [`MelSpectrogram::window`].

mod mfcc;

pub use mfcc::{MfccConfig, MfccError, TfMfcc};

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

/// FFT size and window length, samples (25 ms at 16 kHz).
pub const N_FFT: usize = 400;
/// Hop between frames, samples (10 ms at 16 kHz).
pub const HOP_SAMPLES: usize = 160;
/// Sample rate the front end is defined for, Hz.
pub const SAMPLE_RATE_HZ: u32 = 16_000;

/// A log-mel spectrogram, stored mel-major: `data[mel * n_frames + frame]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MelSpectrogram {
    /// Number of mel bins.
    pub n_mels: usize,
    /// Number of 10-ms frames.
    pub n_frames: usize,
    /// Values, mel-major.
    pub data: Vec<f32>,
}

impl MelSpectrogram {
    /// Frames `[start, start + take)` as a mel-major `[n_mels, len]` buffer; frames past `take`
    /// or past the end are zero (Whisper's `pad_or_trim`).
    pub fn window(&self, start: usize, take: usize, len: usize) -> Vec<f32> {
        let mut out = vec![0.0; self.n_mels * len];
        let start = start.min(self.n_frames);
        let avail = (self.n_frames - start).min(len).min(take);
        for m in 0..self.n_mels {
            let src = &self.data[m * self.n_frames + start..m * self.n_frames + start + avail];
            out[m * len..m * len + avail].copy_from_slice(src);
        }
        out
    }
}

/// A Whisper log-mel front end for a fixed number of mel bins.
pub struct LogMel {
    n_mels: usize,
    window: Vec<f32>,
    /// Per mel bin: first FFT bin with a non-zero weight and the weights from there.
    filters: Vec<(usize, Vec<f32>)>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl std::fmt::Debug for LogMel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMel").field("n_mels", &self.n_mels).finish_non_exhaustive()
    }
}

impl LogMel {
    /// A front end with `n_mels` bins (80 for most Whisper models, 128 for large-v3).
    pub fn new(n_mels: usize) -> Self {
        let dense = mel_filterbank(SAMPLE_RATE_HZ, N_FFT, n_mels);
        let n_bins = N_FFT / 2 + 1;
        let filters = (0..n_mels)
            .map(|m| {
                let row = &dense[m * n_bins..(m + 1) * n_bins];
                let first = row.iter().position(|&w| w != 0.0).unwrap_or(0);
                let last = row.iter().rposition(|&w| w != 0.0).map_or(first, |l| l + 1);
                (first, row[first..last.max(first)].to_vec())
            })
            .collect();
        // Periodic Hann window, as torch.hann_window(N_FFT).
        let window = (0..N_FFT)
            .map(|n| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos()) as f32
            })
            .collect();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        LogMel { n_mels, window, filters, fft }
    }

    /// Number of mel bins.
    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// The log-mel spectrogram of 16-kHz `samples` followed by `pad_samples` zeros.
    ///
    /// Whisper appends 30 s of zeros (`pad_samples = 480_000`) so that every window, the last
    /// included, is computed from real STFT frames. The result has
    /// `(samples.len() + pad_samples) / HOP_SAMPLES` frames (the STFT's last frame is dropped,
    /// as Whisper does).
    pub fn compute(&self, samples: &[f32], pad_samples: usize) -> MelSpectrogram {
        let total = samples.len() + pad_samples;
        let n_frames = total / HOP_SAMPLES;
        let mut data = vec![0.0f32; self.n_mels * n_frames];
        let half = N_FFT / 2;
        // Sample at signed position `i` of the reflect-padded signal (torch `pad_mode="reflect"`).
        let at = |i: isize| -> f32 {
            let n = total as isize;
            if n <= 1 {
                return if n == 1 && i == 0 { get(samples, 0) } else { 0.0 };
            }
            let mut j = i;
            // Reflect (without repeating the edge) until inside; at most a couple of steps.
            while j < 0 || j >= n {
                if j < 0 {
                    j = -j;
                }
                if j >= n {
                    j = 2 * (n - 1) - j;
                }
            }
            get(samples, j as usize)
        };
        let mut frame = self.fft.make_input_vec();
        let mut spec = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0.0f32; N_FFT / 2 + 1];
        let mut max = f32::NEG_INFINITY;
        for t in 0..n_frames {
            let start = (t * HOP_SAMPLES) as isize - half as isize;
            if start >= 0 && (start as usize + N_FFT) <= samples.len() {
                let s = start as usize;
                for ((f, x), w) in frame.iter_mut().zip(&samples[s..s + N_FFT]).zip(&self.window) {
                    *f = x * w;
                }
            } else {
                for (k, (f, w)) in frame.iter_mut().zip(&self.window).enumerate() {
                    *f = at(start + k as isize) * w;
                }
            }
            // The sizes come from the plan itself, so processing cannot fail.
            let _ = self.fft.process_with_scratch(&mut frame, &mut spec, &mut scratch);
            for (p, c) in power.iter_mut().zip(&spec) {
                *p = c.re * c.re + c.im * c.im;
            }
            for (m, (first, weights)) in self.filters.iter().enumerate() {
                let e: f32 = weights.iter().zip(&power[*first..]).map(|(w, p)| w * p).sum();
                let v = e.max(1e-10).log10();
                max = max.max(v);
                data[m * n_frames + t] = v;
            }
        }
        let floor = max - 8.0;
        for v in &mut data {
            *v = (v.max(floor) + 4.0) / 4.0;
        }
        MelSpectrogram { n_mels: self.n_mels, n_frames, data }
    }
}

fn get(samples: &[f32], i: usize) -> f32 {
    samples.get(i).copied().unwrap_or(0.0)
}

/// One encoder window of a CTC transcription: a full-length mel window and which of its
/// encoder frames to decode.
#[derive(Debug, Clone)]
pub struct EncoderWindow {
    /// Mel-major `[n_mels][n_mel_frames]` values.
    pub mel: Vec<f32>,
    /// Encoder frames `[keep_from, frames)` of this window are decoded: `frames` stops at the
    /// audio's end plus a short margin (the rest is padding), `keep_from` skips the part an
    /// earlier window already covered.
    pub frames: usize,
    /// First decoded encoder frame (0 for the first window, the overlap's middle after it).
    pub keep_from: usize,
    /// Offset of this window in the audio, in encoder frames.
    pub first_frame: usize,
}

/// Encoder frames decoded past the end of the audio (0.5 s): CTC heads may emit the last
/// symbol a little after it was spoken.
pub const CTC_TAIL_FRAMES: usize = 25;

/// Overlap between consecutive windows, in encoder frames (2 s). Each side decodes half of it,
/// so no word is cut at a window edge without at least 1 s of context around it.
pub const CTC_OVERLAP_FRAMES: usize = 100;

/// Cut 16-kHz `samples` into encoder windows of `n_mel_frames` mel frames overlapping by
/// [`CTC_OVERLAP_FRAMES`], the framing the CTC acoustic models are trained and run with (one
/// code path for both). Concatenating each window's frames `[keep_from, frames)` gives one
/// frame per 20 ms of audio, in order.
pub fn encoder_windows(mel: &LogMel, samples: &[f32], n_mel_frames: usize) -> Vec<EncoderWindow> {
    let window_samples = n_mel_frames * HOP_SAMPLES;
    let spec = mel.compute(samples, window_samples);
    let enc_frames = n_mel_frames / 2;
    let overlap = CTC_OVERLAP_FRAMES.min(enc_frames / 2);
    let stride_frames = enc_frames - overlap;
    let stride = stride_frames * 2 * HOP_SAMPLES;
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let left = samples.len().saturating_sub(start);
        let covered = left.div_ceil(2 * HOP_SAMPLES);
        let last = left <= window_samples;
        let frames = if last {
            (covered + CTC_TAIL_FRAMES).min(enc_frames)
        } else {
            enc_frames - overlap / 2
        };
        let first = start / HOP_SAMPLES;
        out.push(EncoderWindow {
            mel: spec.window(first, n_mel_frames.min(left / HOP_SAMPLES + 1), n_mel_frames),
            frames,
            keep_from: if start == 0 { 0 } else { overlap / 2 },
            first_frame: first / 2,
        });
        if last {
            break;
        }
        start += stride;
    }
    out
}

/// librosa's Slaney mel filterbank (`htk=False, norm="slaney"`, fmin 0, fmax `rate/2`), as a
/// dense `[n_mels, n_fft/2 + 1]` row-major matrix.
pub fn mel_filterbank(sample_rate_hz: u32, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let n_bins = n_fft / 2 + 1;
    let sr = f64::from(sample_rate_hz);
    let fft_freqs: Vec<f64> = (0..n_bins).map(|i| i as f64 * sr / n_fft as f64).collect();
    let (mel_min, mel_max) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(mel_min + (mel_max - mel_min) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut out = vec![0.0f32; n_mels * n_bins];
    for m in 0..n_mels {
        let enorm = 2.0 / (mel_f[m + 2] - mel_f[m]);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - mel_f[m]) / (mel_f[m + 1] - mel_f[m]);
            let upper = (mel_f[m + 2] - f) / (mel_f[m + 2] - mel_f[m + 1]);
            out[m * n_bins + k] = (lower.min(upper).max(0.0) * enorm) as f32;
        }
    }
    out
}

const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn logstep() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ { MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / logstep() } else { hz / F_SP }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (logstep() * (mel - MIN_LOG_MEL)).exp()
    } else {
        F_SP * mel
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn encoder_windows_tile_the_audio_once() {
        let mel = LogMel::new(80);
        for secs in [0.0f32, 2.5, 29.0, 30.0, 31.0, 70.3] {
            let n = (secs * 16_000.0) as usize;
            let samples = vec![0.0f32; n];
            let w = encoder_windows(&mel, &samples, 3000);
            // Decoded ranges are contiguous in absolute frames and cover the audio.
            let mut next = 0;
            for x in &w {
                assert_eq!(x.first_frame + x.keep_from, next, "{secs} s");
                assert!(x.keep_from <= x.frames && x.frames <= 1500);
                assert_eq!(x.mel.len(), 80 * 3000);
                next = x.first_frame + x.frames;
            }
            let need = n.div_ceil(320);
            assert!(next >= need && next <= need + CTC_TAIL_FRAMES, "{secs} s: {next} vs {need}");
            assert_eq!(
                w.len(),
                if secs <= 30.0 { 1 } else { 1 + ((n - 1) / (1400 * 320)) },
                "{secs} s"
            );
        }
    }

    use super::*;

    #[test]
    fn filterbank_matches_librosa_values() {
        // Reference: librosa.filters.mel(sr=16000, n_fft=400, n_mels=80) (= whisper's
        // mel_filters.npz "mel_80"), entries read off numpy.
        let fb = mel_filterbank(16_000, 400, 80);
        let n_bins = 201;
        // Hand check of row 0, bin 1 (40 Hz): mel_f = [0, 37.24, 74.47] Hz, weight
        // (74.47 - 40) / 37.24 · 2 / 74.47 ≈ 0.02486.
        assert!((fb[1] - 0.024_86).abs() < 1e-4, "{}", fb[1]);
        // Every filter has some weight and rows are non-negative.
        for m in 0..80 {
            let row = &fb[m * n_bins..(m + 1) * n_bins];
            assert!(row.iter().all(|&w| w >= 0.0));
            assert!(row.iter().any(|&w| w > 0.0), "mel {m} empty");
        }
    }

    #[test]
    fn frame_count_drops_last_stft_frame() {
        let lm = LogMel::new(80);
        let mel = lm.compute(&vec![0.0; 16_000], 0);
        assert_eq!(mel.n_frames, 100);
        let mel = lm.compute(&vec![0.0; 16_000], 480_000);
        assert_eq!(mel.n_frames, 3100);
    }

    #[test]
    fn silence_is_flat_and_tone_lands_in_the_right_bin() {
        let lm = LogMel::new(80);
        let silent = lm.compute(&vec![0.0; 8_000], 0);
        assert!(silent.data.iter().all(|&v| (v - silent.data[0]).abs() < 1e-6));
        let tone: Vec<f32> = (0..16_000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin())
            .collect();
        let mel = lm.compute(&tone, 0);
        let t = 50;
        let best = (0..80).max_by(|&a, &b| {
            mel.data[a * mel.n_frames + t].total_cmp(&mel.data[b * mel.n_frames + t])
        });
        // 1 kHz sits at mel ≈ 15 on the Slaney scale; bins are ~0.57 mel wide around there.
        assert!(matches!(best, Some(25..=28)), "{best:?}");
    }

    #[test]
    fn window_pads_with_zeros() {
        let mel =
            MelSpectrogram { n_mels: 2, n_frames: 3, data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0] };
        assert_eq!(mel.window(1, 4, 4), vec![2.0, 3.0, 0.0, 0.0, 5.0, 6.0, 0.0, 0.0]);
        assert_eq!(mel.window(0, 1, 2), vec![1.0, 0.0, 4.0, 0.0]);
    }
}
