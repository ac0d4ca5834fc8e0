//! Speech regions of a whole recording, and the map from concatenated speech back to it.
//!
//! The region rules are faster-whisper's (`get_speech_timestamps` with `VadOptions`), so that
//! `--vad` cuts a recording where a faster-whisper user expects: a region opens at a chunk whose
//! probability reaches `threshold`, closes after `min_silence_duration_ms` below
//! `neg_threshold`, is split before `max_speech_duration_s` at the last silence of at least 98 ms
//! (else hard), is dropped if shorter than `min_speech_duration_ms`, and is padded by
//! `speech_pad_ms` on each side (neighbours closer than twice the padding share the gap).

use crate::{CHUNK, Error, SAMPLE_RATE};

/// Options for [`speech_regions`], with faster-whisper's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadOptions {
    /// Probability at or above which a chunk is speech.
    pub threshold: f32,
    /// Probability below which a chunk is silence; default `max(threshold - 0.15, 0.01)`.
    pub neg_threshold: Option<f32>,
    /// Regions shorter than this are dropped.
    pub min_speech_duration_ms: u32,
    /// Regions longer than this are split.
    pub max_speech_duration_s: f32,
    /// Silence that ends a region.
    pub min_silence_duration_ms: u32,
    /// Padding added on each side of a region.
    pub speech_pad_ms: u32,
}

impl Default for VadOptions {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            neg_threshold: None,
            min_speech_duration_ms: 0,
            max_speech_duration_s: f32::INFINITY,
            min_silence_duration_ms: 2000,
            speech_pad_ms: 400,
        }
    }
}

impl VadOptions {
    /// Checks ranges: thresholds in (0, 1), a positive maximum duration.
    pub fn validate(&self) -> Result<(), Error> {
        let prob = |name: &str, v: f32| {
            if v > 0.0 && v < 1.0 {
                Ok(())
            } else {
                Err(Error::Option(format!("{name} must be between 0 and 1 (exclusive), got {v}")))
            }
        };
        prob("threshold", self.threshold)?;
        if let Some(n) = self.neg_threshold {
            prob("neg_threshold", n)?;
        }
        if self.max_speech_duration_s.is_nan() || self.max_speech_duration_s <= 0.0 {
            return Err(Error::Option(format!(
                "max_speech_duration_s must be positive, got {}",
                self.max_speech_duration_s
            )));
        }
        Ok(())
    }

    /// The silence threshold in effect.
    pub fn neg_threshold(&self) -> f32 {
        self.neg_threshold.unwrap_or((self.threshold - 0.15).max(0.01))
    }
}

/// A span of samples at 16 kHz, `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// First sample.
    pub start: usize,
    /// One past the last sample.
    pub end: usize,
}

impl Region {
    /// Length in samples.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the region holds no samples.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// Speech regions from per-chunk probabilities (`probs[i]` covers samples `i * CHUNK ..`) of a
/// recording `n_samples` long.
pub fn speech_regions(probs: &[f32], n_samples: usize, opts: &VadOptions) -> Vec<Region> {
    let sr = SAMPLE_RATE as f64;
    let chunk = CHUNK as f64;
    let min_speech = sr * f64::from(opts.min_speech_duration_ms) / 1000.0;
    let pad = sr * f64::from(opts.speech_pad_ms) / 1000.0;
    let max_speech = sr * f64::from(opts.max_speech_duration_s) - chunk - 2.0 * pad;
    let min_silence = sr * f64::from(opts.min_silence_duration_ms) / 1000.0;
    let min_silence_at_max = sr * 98.0 / 1000.0;
    let neg = opts.neg_threshold();

    let mut regions: Vec<(usize, usize)> = Vec::new();
    let mut start: Option<usize> = None;
    // Where the current silence began (0: none), the last silence long enough to cut at, and
    // where speech resumed after it.
    let (mut temp_end, mut prev_end, mut next_start) = (0usize, 0usize, 0usize);
    for (i, &p) in probs.iter().enumerate() {
        let at = i * CHUNK;
        if p >= opts.threshold && temp_end != 0 {
            temp_end = 0;
            if next_start < prev_end {
                next_start = at;
            }
        }
        let Some(s) = start else {
            if p >= opts.threshold {
                start = Some(at);
            }
            continue;
        };
        if (at - s) as f64 > max_speech {
            if prev_end != 0 {
                regions.push((s, prev_end));
                start = if next_start < prev_end { None } else { Some(next_start) };
                prev_end = 0;
                next_start = 0;
                temp_end = 0;
            } else {
                regions.push((s, at));
                start = None;
                prev_end = 0;
                next_start = 0;
                temp_end = 0;
                continue;
            }
        }
        let Some(s) = start else { continue };
        if p < neg {
            if temp_end == 0 {
                temp_end = at;
            }
            if (at - temp_end) as f64 > min_silence_at_max {
                prev_end = temp_end;
            }
            if ((at - temp_end) as f64) < min_silence {
                continue;
            }
            if (temp_end - s) as f64 > min_speech {
                regions.push((s, temp_end));
            }
            start = None;
            prev_end = 0;
            next_start = 0;
            temp_end = 0;
        }
    }
    if let Some(s) = start
        && (n_samples.saturating_sub(s)) as f64 > min_speech
    {
        regions.push((s, n_samples));
    }

    let pad = pad as usize;
    let mut out: Vec<Region> =
        regions.into_iter().map(|(start, end)| Region { start, end }).collect();
    let n = out.len();
    for i in 0..n {
        if i == 0 {
            out[i].start = out[i].start.saturating_sub(pad);
        }
        if i + 1 < n {
            let gap = out[i + 1].start.saturating_sub(out[i].end);
            if gap < 2 * pad {
                out[i].end += gap / 2;
                out[i + 1].start = out[i + 1].start.saturating_sub(gap / 2);
            } else {
                out[i].end = (out[i].end + pad).min(n_samples);
                out[i + 1].start = out[i + 1].start.saturating_sub(pad);
            }
        } else {
            out[i].end = (out[i].end + pad).min(n_samples);
        }
    }
    out.retain(|r| !r.is_empty());
    out
}

/// The samples of `regions`, concatenated.
pub fn collect(samples: &[f32], regions: &[Region]) -> Vec<f32> {
    let mut out = Vec::with_capacity(regions.iter().map(Region::len).sum());
    for r in regions {
        out.extend_from_slice(&samples[r.start.min(samples.len())..r.end.min(samples.len())]);
    }
    out
}

/// Maps a time in the concatenated speech of [`collect`] back to the original recording.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// For each region: where it ends in the concatenated audio (samples) and the silence
    /// removed before it (seconds).
    ends: Vec<usize>,
    silence_before: Vec<f64>,
}

impl Timeline {
    /// The map for `regions` (sorted, disjoint).
    pub fn new(regions: &[Region]) -> Self {
        let (mut removed, mut prev_end) = (0usize, 0usize);
        let mut t = Self::default();
        for r in regions {
            removed += r.start.saturating_sub(prev_end);
            prev_end = r.end;
            t.ends.push(r.end - removed);
            t.silence_before.push(removed as f64 / f64::from(SAMPLE_RATE));
        }
        t
    }

    /// The original time of `t` seconds into the concatenated speech. An end time that falls
    /// exactly on a region's end stays in that region (it must not jump over the gap).
    pub fn original(&self, t: f64, is_end: bool) -> f64 {
        if self.ends.is_empty() {
            return t;
        }
        let sample = (t * f64::from(SAMPLE_RATE)).max(0.0) as usize;
        let i = match self.ends.binary_search(&sample) {
            Ok(i) if is_end => i,
            Ok(i) => i + 1,
            Err(i) => i,
        }
        .min(self.ends.len() - 1);
        t + self.silence_before[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probs(pattern: &[(f32, usize)]) -> Vec<f32> {
        pattern.iter().flat_map(|&(p, n)| std::iter::repeat_n(p, n)).collect()
    }

    #[test]
    fn one_padded_region_in_silence() {
        // 1 s of silence, 1 s of speech, 3 s of silence (chunks of 32 ms).
        let p = probs(&[(0.0, 31), (0.9, 31), (0.0, 94)]);
        let n = p.len() * CHUNK;
        let r = speech_regions(&p, n, &VadOptions::default());
        assert_eq!(r, vec![Region { start: 31 * CHUNK - 6400, end: 62 * CHUNK + 6400 }]);
    }

    #[test]
    fn short_pauses_do_not_split_and_long_ones_do() {
        let opts =
            VadOptions { min_silence_duration_ms: 500, speech_pad_ms: 0, ..Default::default() };
        // A 320 ms pause (10 chunks) keeps one region; a 960 ms pause (30 chunks) splits.
        let p = probs(&[(0.9, 20), (0.1, 10), (0.9, 20), (0.1, 30), (0.9, 20)]);
        let r = speech_regions(&p, p.len() * CHUNK, &opts);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0], Region { start: 0, end: 50 * CHUNK });
        assert_eq!(r[1].start, 80 * CHUNK);
    }

    #[test]
    fn hysteresis_keeps_speech_between_thresholds() {
        // 0.4 is below threshold 0.5 but above neg_threshold 0.35: still speech once started.
        let opts =
            VadOptions { min_silence_duration_ms: 100, speech_pad_ms: 0, ..Default::default() };
        let p = probs(&[(0.9, 5), (0.4, 50), (0.0, 10)]);
        let r = speech_regions(&p, p.len() * CHUNK, &opts);
        assert_eq!(r, vec![Region { start: 0, end: 55 * CHUNK }]);
    }

    #[test]
    fn long_speech_is_split_before_the_maximum() {
        let opts =
            VadOptions { max_speech_duration_s: 2.0, speech_pad_ms: 0, ..Default::default() };
        let p = probs(&[(0.9, 200)]);
        let r = speech_regions(&p, p.len() * CHUNK, &opts);
        assert!(r.len() >= 3, "{r:?}");
        assert!(r.iter().all(|r| r.len() as f32 <= 2.0 * 16000.0), "{r:?}");
    }

    #[test]
    fn minimum_speech_drops_clicks() {
        let opts = VadOptions {
            min_speech_duration_ms: 250,
            min_silence_duration_ms: 100,
            ..Default::default()
        };
        let p = probs(&[(0.0, 10), (0.9, 3), (0.0, 40)]);
        assert!(speech_regions(&p, p.len() * CHUNK, &opts).is_empty());
    }

    #[test]
    fn timeline_maps_back_across_removed_silence() {
        let regions =
            [Region { start: 16_000, end: 32_000 }, Region { start: 64_000, end: 80_000 }];
        let t = Timeline::new(&regions);
        assert!((t.original(0.5, false) - 1.5).abs() < 1e-9);
        assert!((t.original(1.0, true) - 2.0).abs() < 1e-9, "an end on the boundary stays");
        assert!((t.original(1.0, false) - 4.0).abs() < 1e-9, "a start on the boundary moves on");
        assert!((t.original(1.5, false) - 4.5).abs() < 1e-9);
        assert_eq!(collect(&vec![1.0; 100_000], &regions).len(), 32_000);
    }

    #[test]
    fn options_are_checked() {
        assert!(VadOptions::default().validate().is_ok());
        assert!(VadOptions { threshold: 1.5, ..Default::default() }.validate().is_err());
        assert!(
            VadOptions { max_speech_duration_s: 0.0, ..Default::default() }.validate().is_err()
        );
        assert!((VadOptions::default().neg_threshold() - 0.35).abs() < 1e-6);
    }
}
