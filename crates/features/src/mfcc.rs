//! MFCCs exactly as TensorFlow's `AudioSpectrogram` + `Mfcc` ops compute them — the front end
//! of DeepSpeech and Coqui STT models, whose weights were trained on these numbers.
//!
//! One window at a time: periodic Hann window, zero-padded to the next power of two, real FFT
//! in f64, squared magnitude (stored as f32, as the spectrogram op's output tensor is), then
//! the mel stage on `sqrt` of it: HTK-style triangles between `lower_hz` and `upper_hz` laid
//! out on `1127·ln(1 + f/700)`, each FFT bin weighted into its two neighbouring channels, DC
//! excluded; natural log with a floor of 1e-12; DCT-II with TensorFlow's scaling
//! `sqrt(2/N)·cos(π/N·(j + ½)·i)`, no special case for `i = 0`. Arithmetic follows TFLite's
//! kernels (`tensorflow/lite/kernels/internal/{spectrogram,mfcc,mfcc_mel_filterbank,
//! mfcc_dct}.cc`) in f64, so the results agree with the TFLite runtime to rounding.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

/// The op's parameters (DeepSpeech: 512-sample window at 16 kHz, 40 channels, 20–8000 Hz,
/// 26 coefficients).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MfccConfig {
    /// Samples per second.
    pub sample_rate: u32,
    /// Samples per window.
    pub window: usize,
    /// Mel channels.
    pub channels: usize,
    /// Lowest filter edge, Hz.
    pub lower_hz: f64,
    /// Highest filter edge, Hz.
    pub upper_hz: f64,
    /// DCT coefficients kept.
    pub coefficients: usize,
}

/// A prepared MFCC computer (FFT plan, window, filterbank and DCT tables).
pub struct TfMfcc {
    config: MfccConfig,
    fft: Arc<dyn RealToComplex<f64>>,
    fft_len: usize,
    hann: Vec<f64>,
    start: usize,
    end: usize,
    band: Vec<i32>,
    weights: Vec<f64>,
    cosines: Vec<f64>,
}

impl std::fmt::Debug for TfMfcc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TfMfcc").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Parameters the op would refuse.
#[derive(Debug, Clone, thiserror::Error)]
#[error("MFCC parameters: {0}")]
pub struct MfccError(String);

fn freq_to_mel(f: f64) -> f64 {
    1127.0 * (f / 700.0).ln_1p()
}

impl TfMfcc {
    /// Prepare for `config`.
    pub fn new(config: MfccConfig) -> Result<Self, MfccError> {
        let c = config;
        if c.window < 2 || c.channels < 1 || c.coefficients < 1 || c.coefficients > c.channels {
            return Err(MfccError(format!("{c:?}")));
        }
        if c.sample_rate == 0 || c.lower_hz < 0.0 || c.upper_hz <= c.lower_hz {
            return Err(MfccError(format!("{c:?}")));
        }
        let fft_len = c.window.next_power_of_two();
        let bins = fft_len / 2 + 1;
        let pi = 1f64.atan() * 4.0;
        let hann = (0..c.window)
            .map(|i| 0.5 - 0.5 * (2.0 * pi * i as f64 / c.window as f64).cos())
            .collect();

        // The filterbank (MfccMelFilterbank::Initialize).
        let mel_low = freq_to_mel(c.lower_hz);
        let mel_span = freq_to_mel(c.upper_hz) - mel_low;
        let spacing = mel_span / (c.channels + 1) as f64;
        let centers: Vec<f64> =
            (0..=c.channels).map(|i| mel_low + spacing * (i + 1) as f64).collect();
        let hz_per_bin = 0.5 * f64::from(c.sample_rate) / (bins - 1) as f64;
        let start = (1.5 + c.lower_hz / hz_per_bin) as usize;
        let end = (c.upper_hz / hz_per_bin) as usize;
        let mut band = vec![-2i32; bins];
        let mut channel = 0usize;
        for (i, b) in band.iter_mut().enumerate() {
            if i < start || i > end {
                continue;
            }
            let melf = freq_to_mel(i as f64 * hz_per_bin);
            while channel < c.channels && centers[channel] < melf {
                channel += 1;
            }
            *b = channel as i32 - 1;
        }
        let weights = (0..bins)
            .map(|i| {
                if i < start || i > end {
                    return 0.0;
                }
                let melf = freq_to_mel(i as f64 * hz_per_bin);
                match usize::try_from(band[i]) {
                    Ok(ch) => (centers[ch + 1] - melf) / (centers[ch + 1] - centers[ch]),
                    Err(_) => (centers[0] - melf) / (centers[0] - mel_low),
                }
            })
            .collect();

        // The DCT (MfccDct::Initialize).
        let fnorm = (2.0 / c.channels as f64).sqrt();
        let arg = pi / c.channels as f64;
        let cosines = (0..c.coefficients)
            .flat_map(|i| {
                (0..c.channels).map(move |j| fnorm * (i as f64 * arg * (j as f64 + 0.5)).cos())
            })
            .collect();
        Ok(TfMfcc {
            config,
            fft: RealFftPlanner::<f64>::new().plan_fft_forward(fft_len),
            fft_len,
            hann,
            start,
            end: end.min(bins - 1),
            band,
            weights,
            cosines,
        })
    }

    /// The configuration.
    pub fn config(&self) -> MfccConfig {
        self.config
    }

    /// The coefficients of one window of exactly `config.window` samples, appended to `out`.
    pub fn compute(&self, window: &[f32], out: &mut Vec<f32>) {
        let c = self.config;
        let mut input = vec![0f64; self.fft_len];
        for ((o, &s), &w) in input.iter_mut().zip(window).zip(&self.hann) {
            *o = f64::from(s) * w;
        }
        let mut spectrum = self.fft.make_output_vec();
        // The lengths come from the plan itself, so the FFT cannot fail.
        if self.fft.process(&mut input, &mut spectrum).is_err() {
            out.extend(std::iter::repeat_n(0.0, c.coefficients));
            return;
        }
        let mut mel = vec![0f64; c.channels];
        let bins = self.start..=self.end;
        let rows =
            spectrum[bins.clone()].iter().zip(&self.weights[bins.clone()]).zip(&self.band[bins]);
        for ((bin, &weight), &ch) in rows {
            let power = bin.re * bin.re + bin.im * bin.im;
            // The spectrogram op's output tensor is f32.
            let magnitude = f64::from(power as f32).sqrt();
            let weighted = magnitude * weight;
            if ch >= 0 {
                mel[ch as usize] += weighted;
            }
            if ((ch + 1) as usize) < c.channels {
                mel[(ch + 1) as usize] += magnitude - weighted;
            }
        }
        for v in &mut mel {
            *v = v.max(1e-12).ln();
        }
        out.extend(
            self.cosines
                .chunks_exact(c.channels)
                .map(|row| row.iter().zip(&mel).map(|(a, b)| a * b).sum::<f64>() as f32),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deepspeech() -> TfMfcc {
        TfMfcc::new(MfccConfig {
            sample_rate: 16_000,
            window: 512,
            channels: 40,
            lower_hz: 20.0,
            upper_hz: 8000.0,
            coefficients: 26,
        })
        .unwrap()
    }

    #[test]
    fn silence_gives_the_floor() {
        let mut out = Vec::new();
        deepspeech().compute(&[0.0; 512], &mut out);
        // log(1e-12) in every channel: only the DC coefficient is non-zero.
        let dc = (2.0f64 / 40.0).sqrt() * 40.0 * (1e-12f64).ln();
        assert!((f64::from(out[0]) - dc).abs() < 1e-3, "{}", out[0]);
        assert!(out[1..].iter().all(|v| v.abs() < 1e-3), "{out:?}");
    }

    #[test]
    fn a_tone_peaks_in_its_channel() {
        let m = deepspeech();
        let tone: Vec<f32> = (0..512).map(|i| (i as f32 * 0.3).sin() * 0.5).collect();
        let mut out = Vec::new();
        m.compute(&tone, &mut out);
        assert_eq!(out.len(), 26);
        assert!(out.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn bad_parameters_are_refused() {
        let mut c = deepspeech().config();
        c.coefficients = 41;
        assert!(TfMfcc::new(c).is_err());
        c.coefficients = 26;
        c.upper_hz = 10.0;
        assert!(TfMfcc::new(c).is_err());
    }
}
