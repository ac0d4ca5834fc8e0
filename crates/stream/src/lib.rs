//! Live transcription on top of `harken-engine`: audio arrives in pieces of any size, text
//! comes out as it becomes certain.
//!
//! Synchronous like the engine (the server runs it on a blocking worker). One [`Stream`] per
//! caller. Audio is cut into *utterances* — by voice activity detection (`server_vad`: an
//! utterance ends after the configured silence) or by the caller's explicit [`Stream::commit`].
//! While an utterance grows, the Whisper path re-decodes its audio every `partial_every_s`
//! (greedy, cheap) and commits the words two consecutive hypotheses agree on (LocalAgreement-2,
//! as whisper_streaming): those words are sent as [`Event::Delta`] and never retracted. When the
//! utterance ends, one full decode (the request's beam, fallback and guards) gives
//! [`Event::Completed`], the final text of that utterance. Utterances longer than
//! `max_utterance_s` are ended there, so a stream of an hour holds at most that much audio.

use harken_audio::{RawFormat, Resampler};
use harken_engine::{Audio, Engine, TranscribeOptions};
use harken_vad::{EndpointOptions, Silero, VadEvent, VadStream};

/// Sample rate of the audio a stream takes.
pub const SAMPLE_RATE: u32 = 16_000;

/// Raw audio bytes as a live client sends them (16-bit PCM or G.711 at any rate) → 16 kHz
/// samples, band-limited, kept across pieces (an odd byte waits for its pair).
pub struct AudioInput {
    format: RawFormat,
    resampler: Option<Resampler>,
    carry: Vec<u8>,
    samples: Vec<f32>,
}

impl std::fmt::Debug for AudioInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioInput").field("format", &self.format).finish_non_exhaustive()
    }
}

impl AudioInput {
    /// Input of `format` at `rate_hz`.
    pub fn new(format: RawFormat, rate_hz: u32) -> Result<Self, harken_audio::Error> {
        let resampler =
            if rate_hz == SAMPLE_RATE { None } else { Some(Resampler::new(rate_hz, SAMPLE_RATE)?) };
        Ok(Self { format, resampler, carry: Vec::new(), samples: Vec::new() })
    }

    /// The 16 kHz samples of the next piece of bytes (some may come with the next piece).
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<f32>, harken_audio::Error> {
        self.carry.extend_from_slice(bytes);
        let whole =
            self.carry.len() / self.format.bytes_per_sample() * self.format.bytes_per_sample();
        self.samples.clear();
        harken_audio::decode_raw(&self.carry[..whole], self.format, &mut self.samples);
        self.carry.drain(..whole);
        match &mut self.resampler {
            None => Ok(std::mem::take(&mut self.samples)),
            Some(r) => {
                let mut out = Vec::with_capacity(self.samples.len());
                r.push(&self.samples, &mut out)?;
                Ok(out)
            }
        }
    }
}

/// How a stream decides and decodes.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Turn detection; `None`: the caller commits (an utterance is everything since the last
    /// commit).
    pub turn_detection: Option<EndpointOptions>,
    /// Options of the final decode of each utterance (language, prompt, beam, guards).
    pub decode: TranscribeOptions,
    /// Seconds of new audio between partial decodes.
    pub partial_every_s: f32,
    /// An utterance is ended at this length.
    pub max_utterance_s: f32,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            turn_detection: Some(EndpointOptions::default()),
            decode: TranscribeOptions::default(),
            partial_every_s: 1.0,
            max_utterance_s: 25.0,
        }
    }
}

/// What a stream reports. Times are milliseconds from the start of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Voice activity detection heard speech start (`at_ms` includes the prefix padding).
    SpeechStarted {
        /// Utterance number, from 0.
        item: u64,
        /// Start, ms.
        at_ms: u64,
    },
    /// Voice activity detection heard the speech stop.
    SpeechStopped {
        /// Utterance number.
        item: u64,
        /// End, ms.
        at_ms: u64,
    },
    /// The utterance's audio is complete and will be transcribed (by VAD, by the caller, or at
    /// the length limit).
    Committed {
        /// Utterance number.
        item: u64,
    },
    /// Words now certain, to append to the utterance's text so far.
    Delta {
        /// Utterance number.
        item: u64,
        /// Text to append (with its leading space).
        text: String,
    },
    /// The utterance's final text.
    Completed {
        /// Utterance number.
        item: u64,
        /// The whole text.
        text: String,
        /// Seconds of audio in the utterance.
        audio_s: f64,
    },
}

/// Why a stream failed.
pub type Error = harken_engine::Error;

/// One live transcription.
pub struct Stream<'e> {
    engine: &'e Engine,
    opts: StreamOptions,
    vad: Option<VadStream<'e>>,
    /// Samples received so far.
    pos: u64,
    /// Audio kept before speech starts (prefix padding).
    preroll: Vec<f32>,
    /// The current utterance's audio.
    utterance: Vec<f32>,
    in_utterance: bool,
    item: u64,
    /// Samples of the utterance at the last partial decode.
    decoded_at: usize,
    /// Words committed in the current utterance, and the previous partial hypothesis.
    committed: Vec<String>,
    previous: Vec<String>,
}

impl std::fmt::Debug for Stream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("pos", &self.pos)
            .field("item", &self.item)
            .finish_non_exhaustive()
    }
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

impl<'e> Stream<'e> {
    /// A stream on `engine`; `vad` is required when `opts.turn_detection` is set.
    pub fn new(
        engine: &'e Engine,
        vad: Option<&'e Silero>,
        opts: StreamOptions,
    ) -> Result<Self, Error> {
        let vad = match (&opts.turn_detection, vad) {
            (Some(t), Some(m)) => Some(VadStream::new(m, *t)),
            (Some(_), None) => return Err(harken_engine::Error::NoVad),
            (None, _) => None,
        };
        Ok(Self {
            in_utterance: vad.is_none(),
            engine,
            opts,
            vad,
            pos: 0,
            preroll: Vec::new(),
            utterance: Vec::new(),
            item: 0,
            decoded_at: 0,
            committed: Vec::new(),
            previous: Vec::new(),
        })
    }

    fn ms(samples: u64) -> u64 {
        samples * 1000 / u64::from(SAMPLE_RATE)
    }

    /// Number of the utterance being heard (or the next one).
    pub fn item(&self) -> u64 {
        self.item
    }

    /// Seconds of audio received.
    pub fn received_s(&self) -> f64 {
        self.pos as f64 / f64::from(SAMPLE_RATE)
    }

    /// Feeds 16 kHz mono samples.
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<Event>, Error> {
        let mut out = Vec::new();
        // VAD events are at chunk granularity: feed in pieces so that each event is applied at
        // the right place in the audio.
        for piece in samples.chunks(harken_vad::CHUNK) {
            let events = match &mut self.vad {
                Some(v) => v.push(piece),
                None => Vec::new(),
            };
            self.pos += piece.len() as u64;
            if self.in_utterance {
                self.utterance.extend_from_slice(piece);
            } else {
                self.preroll.extend_from_slice(piece);
                let keep =
                    self.opts.turn_detection.map_or(0, |t| t.prefix_padding_ms as usize * 16)
                        + piece.len();
                if self.preroll.len() > 2 * keep.max(harken_vad::CHUNK) {
                    let drop = self.preroll.len() - keep;
                    self.preroll.drain(..drop);
                }
            }
            for e in events {
                match e {
                    VadEvent::SpeechStarted { at } if !self.in_utterance => {
                        let back = (self.pos.saturating_sub(at)) as usize;
                        let from = self.preroll.len().saturating_sub(back);
                        self.utterance = self.preroll.split_off(from);
                        self.preroll.clear();
                        self.in_utterance = true;
                        out.push(Event::SpeechStarted { item: self.item, at_ms: Self::ms(at) });
                    }
                    VadEvent::SpeechStopped { at } if self.in_utterance => {
                        // Keep the audio up to where the silence began, plus a little.
                        let extra = (self.pos.saturating_sub(at)) as usize;
                        let tail = extra.saturating_sub(3200); // 200 ms of the silence stays
                        let keep = self.utterance.len().saturating_sub(tail);
                        self.utterance.truncate(keep);
                        out.push(Event::SpeechStopped { item: self.item, at_ms: Self::ms(at) });
                        out.extend(self.finish_utterance()?);
                    }
                    _ => {}
                }
            }
            if self.in_utterance {
                let limit = (self.opts.max_utterance_s * SAMPLE_RATE as f32) as usize;
                if self.utterance.len() >= limit {
                    out.extend(self.finish_utterance()?);
                    // Speech goes on: the next utterance starts at once.
                    self.in_utterance = true;
                } else if (self.utterance.len() - self.decoded_at) as f32
                    >= self.opts.partial_every_s * SAMPLE_RATE as f32
                {
                    out.extend(self.partial()?);
                }
            }
        }
        Ok(out)
    }

    /// Decodes the utterance so far and commits what two hypotheses agree on.
    fn partial(&mut self) -> Result<Vec<Event>, Error> {
        self.decoded_at = self.utterance.len();
        let opts = TranscribeOptions {
            beam_size: 1,
            temperatures: vec![0.0],
            word_timestamps: false,
            vad: None,
            ..self.opts.decode.clone()
        };
        let audio = Audio { samples: self.utterance.clone(), sample_rate_hz: SAMPLE_RATE };
        let (tr, _) = self.engine.transcribe(&audio, &opts, &mut |_| {})?;
        let hyp = words(&tr.text);
        let agreed = hyp.iter().zip(&self.previous).take_while(|(a, b)| a == b).count();
        self.previous = hyp;
        if agreed <= self.committed.len()
            || self.committed.iter().zip(&self.previous).any(|(a, b)| a != b)
        {
            return Ok(Vec::new());
        }
        let new: Vec<String> = self.previous[self.committed.len()..agreed].to_vec();
        self.committed.extend(new.iter().cloned());
        Ok(vec![Event::Delta { item: self.item, text: format!(" {}", new.join(" ")) }])
    }

    /// Ends the current utterance: the final decode, the last delta, `Completed`.
    fn finish_utterance(&mut self) -> Result<Vec<Event>, Error> {
        let item = self.item;
        let audio =
            Audio { samples: std::mem::take(&mut self.utterance), sample_rate_hz: SAMPLE_RATE };
        self.in_utterance = self.vad.is_none();
        self.item += 1;
        self.decoded_at = 0;
        let committed = std::mem::take(&mut self.committed);
        self.previous.clear();
        let mut out = vec![Event::Committed { item }];
        let audio_s = audio.samples.len() as f64 / f64::from(SAMPLE_RATE);
        let text = if audio.samples.is_empty() {
            String::new()
        } else {
            let opts = TranscribeOptions { vad: None, ..self.opts.decode.clone() };
            self.engine.transcribe(&audio, &opts, &mut |_| {})?.0.text
        };
        let fin = words(&text);
        if fin.len() > committed.len() && fin[..committed.len()] == committed[..] {
            out.push(Event::Delta { item, text: format!(" {}", fin[committed.len()..].join(" ")) });
        } else if committed.is_empty() && !fin.is_empty() {
            out.push(Event::Delta { item, text: format!(" {}", fin.join(" ")) });
        }
        out.push(Event::Completed { item, text, audio_s });
        Ok(out)
    }

    /// The caller ends the utterance (`input_audio_buffer.commit`): whatever was heard since
    /// the last one is transcribed now.
    pub fn commit(&mut self) -> Result<Vec<Event>, Error> {
        if self.vad.is_some() && !self.in_utterance {
            // With turn detection and no open utterance, the pre-roll is all there is.
            self.utterance = std::mem::take(&mut self.preroll);
        }
        self.finish_utterance()
    }

    /// Drops the audio not yet transcribed (`input_audio_buffer.clear`).
    pub fn clear(&mut self) {
        self.utterance.clear();
        self.preroll.clear();
        self.committed.clear();
        self.previous.clear();
        self.decoded_at = 0;
        self.in_utterance = self.vad.is_none();
    }

    /// End of the stream: an open utterance is finished.
    pub fn finish(&mut self) -> Result<Vec<Event>, Error> {
        let mut out = Vec::new();
        if let Some(v) = &mut self.vad {
            for e in v.finish() {
                if let VadEvent::SpeechStopped { at } = e
                    && self.in_utterance
                {
                    out.push(Event::SpeechStopped { item: self.item, at_ms: Self::ms(at) });
                }
            }
        }
        if self.in_utterance && !self.utterance.is_empty() {
            out.extend(self.finish_utterance()?);
        }
        Ok(out)
    }
}
