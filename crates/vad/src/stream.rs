//! Live detection: samples arrive in pieces of any size; events say where an utterance starts
//! and where it ends.
//!
//! The rules are those of a server-side turn detector (OpenAI's `server_vad`, Silero's
//! `VADIterator`): speech starts at the first chunk at or above `threshold` (reported
//! `prefix_padding_ms` earlier, so the caller keeps that much audio before it); it stops once
//! `silence_duration_ms` of chunks have stayed below the silence threshold, and the stop is
//! reported where the silence began.

use crate::{CHUNK, SAMPLE_RATE, Silero, SileroState};

/// Options of the live turn detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointOptions {
    /// Probability at or above which a chunk is speech.
    pub threshold: f32,
    /// Probability below which a chunk counts towards the closing silence; default
    /// `max(threshold - 0.15, 0.01)`.
    pub neg_threshold: Option<f32>,
    /// Audio kept before the detected start.
    pub prefix_padding_ms: u32,
    /// Silence that ends an utterance.
    pub silence_duration_ms: u32,
}

impl Default for EndpointOptions {
    /// OpenAI's `server_vad` defaults.
    fn default() -> Self {
        Self {
            threshold: 0.5,
            neg_threshold: None,
            prefix_padding_ms: 300,
            silence_duration_ms: 500,
        }
    }
}

/// A change of state, at a sample position counted from the start of the stream (16 kHz).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech began; `at` already includes the prefix padding.
    SpeechStarted {
        /// Sample position.
        at: u64,
    },
    /// Speech ended at `at`, where the closing silence began.
    SpeechStopped {
        /// Sample position.
        at: u64,
    },
}

/// The turn detector over per-chunk probabilities.
#[derive(Debug, Clone)]
pub struct Endpointer {
    opts: EndpointOptions,
    /// Samples consumed so far (the start of the next chunk).
    pos: u64,
    in_speech: bool,
    silence_since: Option<u64>,
}

impl Endpointer {
    /// A detector at the start of a stream.
    pub fn new(opts: EndpointOptions) -> Self {
        Self { opts, pos: 0, in_speech: false, silence_since: None }
    }

    /// Whether an utterance is open.
    pub fn in_speech(&self) -> bool {
        self.in_speech
    }

    /// Feeds the probability of the next chunk.
    pub fn push(&mut self, prob: f32) -> Option<VadEvent> {
        let at = self.pos;
        self.pos += CHUNK as u64;
        let neg = self.opts.neg_threshold.unwrap_or((self.opts.threshold - 0.15).max(0.01));
        if prob >= self.opts.threshold {
            self.silence_since = None;
            if !self.in_speech {
                self.in_speech = true;
                let pad = u64::from(self.opts.prefix_padding_ms) * u64::from(SAMPLE_RATE) / 1000;
                return Some(VadEvent::SpeechStarted { at: at.saturating_sub(pad) });
            }
            return None;
        }
        if self.in_speech && prob < neg {
            let since = *self.silence_since.get_or_insert(at);
            let needed = u64::from(self.opts.silence_duration_ms) * u64::from(SAMPLE_RATE) / 1000;
            if self.pos - since >= needed {
                self.in_speech = false;
                self.silence_since = None;
                return Some(VadEvent::SpeechStopped { at: since });
            }
        }
        None
    }

    /// Closes an open utterance at the current position (end of stream).
    pub fn finish(&mut self) -> Option<VadEvent> {
        if !self.in_speech {
            return None;
        }
        self.in_speech = false;
        Some(VadEvent::SpeechStopped { at: self.silence_since.take().unwrap_or(self.pos) })
    }
}

/// The network and the turn detector together, fed with samples in pieces of any size.
#[derive(Debug)]
pub struct VadStream<'m> {
    model: &'m Silero,
    state: SileroState,
    pending: Vec<f32>,
    endpointer: Endpointer,
    last_prob: f32,
}

impl<'m> VadStream<'m> {
    /// A stream at its start.
    pub fn new(model: &'m Silero, opts: EndpointOptions) -> Self {
        Self {
            model,
            state: SileroState::default(),
            pending: Vec::with_capacity(CHUNK),
            endpointer: Endpointer::new(opts),
            last_prob: 0.0,
        }
    }

    /// Feeds 16 kHz samples; returns the events of every chunk completed by them.
    pub fn push(&mut self, samples: &[f32]) -> Vec<VadEvent> {
        let mut events = Vec::new();
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (CHUNK - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == CHUNK {
                self.last_prob = self.model.chunk_prob(&mut self.state, &self.pending);
                self.pending.clear();
                events.extend(self.endpointer.push(self.last_prob));
            }
        }
        events
    }

    /// Ends the stream: a partial last chunk is judged, and an open utterance closed.
    pub fn finish(&mut self) -> Vec<VadEvent> {
        let mut events = Vec::new();
        if !self.pending.is_empty() {
            self.last_prob = self.model.chunk_prob(&mut self.state, &self.pending);
            self.pending.clear();
            events.extend(self.endpointer.push(self.last_prob));
        }
        events.extend(self.endpointer.finish());
        events
    }

    /// Whether an utterance is open.
    pub fn in_speech(&self) -> bool {
        self.endpointer.in_speech()
    }

    /// The probability of the last chunk judged.
    pub fn last_prob(&self) -> f32 {
        self.last_prob
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_with_padding_and_stops_where_silence_began() {
        let mut e = Endpointer::new(EndpointOptions::default());
        let mut events = Vec::new();
        for p in std::iter::repeat_n(0.0, 30)
            .chain(std::iter::repeat_n(0.9, 30))
            .chain(std::iter::repeat_n(0.0, 30))
        {
            events.extend(e.push(p));
        }
        let pad = 300 * 16;
        assert_eq!(
            events,
            vec![
                VadEvent::SpeechStarted { at: 30 * CHUNK as u64 - pad },
                VadEvent::SpeechStopped { at: 60 * CHUNK as u64 },
            ]
        );
        assert_eq!(e.finish(), None);
    }

    #[test]
    fn a_short_pause_does_not_end_the_turn() {
        let mut e =
            Endpointer::new(EndpointOptions { silence_duration_ms: 500, ..Default::default() });
        let mut n = 0;
        for p in [0.9; 10].into_iter().chain([0.0; 10]).chain([0.9; 10]) {
            n += usize::from(e.push(p).is_some());
        }
        assert_eq!(n, 1, "only the start");
        assert!(e.in_speech());
        assert!(matches!(e.finish(), Some(VadEvent::SpeechStopped { .. })));
    }
}
