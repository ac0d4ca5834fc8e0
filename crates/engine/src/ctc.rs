//! The DeepSpeech-style pipeline: Whisper encoder + CTC head → posteriors → prefix beam search
//! with the package's n-gram LM, vocabulary trie and the request's hot words.

use std::path::Path;
use std::time::Instant;

use harken_core::{Audio, Segment, Transcript, Word};
use harken_ctc::{Alphabet, BeamOptions, BeamSearch, Hotwords, LmFusion, Posteriors, VocabTrie};
use harken_model::{CtcAcoustic, Precision};

use crate::transcribe::{Progress, Timings, TranscribeOptions};
use crate::{Error, Result};

/// Seconds per encoder frame.
const FRAME_S: f64 = 0.02;

/// Everything a CTC package loads.
pub(crate) struct CtcSide {
    pub(crate) acoustic: CtcAcoustic,
    pub(crate) alphabet: Alphabet,
    pub(crate) lm: Option<harken_lm::Model>,
    pub(crate) trie: Option<VocabTrie>,
    pub(crate) alpha: f32,
    pub(crate) beta: f32,
    pub(crate) beam: usize,
    pub(crate) mel: harken_features::LogMel,
}

fn model_err(dir: &Path, detail: String) -> Error {
    Error::ModelDir { dir: dir.to_owned(), detail }
}

impl CtcSide {
    pub(crate) fn load(package: &harken_package::Package, precision: Precision) -> Result<Self> {
        let dir = package.dir();
        let harken_package::Family::Ctc { acoustic_model, alphabet, language_model, trie, .. } =
            &package.flavor().family
        else {
            return Err(model_err(dir, "not a CTC package".into()));
        };
        let acoustic = CtcAcoustic::load(&package.path(acoustic_model), precision)?;
        let text = std::fs::read_to_string(package.path(alphabet))
            .map_err(|e| model_err(dir, format!("{alphabet}: {e}")))?;
        let alphabet =
            Alphabet::parse(&text).map_err(|e| model_err(dir, format!("{alphabet}: {e}")))?;
        if alphabet.len() + 1 != acoustic.classes() {
            return Err(model_err(
                dir,
                format!(
                    "the alphabet has {} symbols + blank, the acoustic model emits {} classes",
                    alphabet.len(),
                    acoustic.classes()
                ),
            ));
        }
        let lm = match language_model {
            Some(p) => Some(
                harken_lm::Model::load(&package.path(p))
                    .map_err(|e| model_err(dir, format!("{p}: {e}")))?,
            ),
            None => None,
        };
        let trie = match trie {
            Some(p) => {
                let bytes = std::fs::read(package.path(p))
                    .map_err(|e| model_err(dir, format!("{p}: {e}")))?;
                let t = VocabTrie::from_bytes(&bytes)
                    .map_err(|e| model_err(dir, format!("{p}: {e}")))?;
                if t.alphabet_len() != alphabet.len() {
                    return Err(model_err(dir, format!("{p} was built for another alphabet")));
                }
                Some(t)
            }
            None => None,
        };
        let d = &package.flavor().decoding;
        Ok(CtcSide {
            mel: harken_features::LogMel::new(acoustic.n_mels()),
            acoustic,
            alphabet,
            lm,
            trie,
            alpha: d.lm_alpha.unwrap_or(0.5),
            beta: d.lm_beta.unwrap_or(1.0),
            beam: d.beam_size.map_or(64, |b| b as usize),
        })
    }

    /// Posteriors of the whole audio: every window's frames that cover audio, concatenated.
    pub(crate) fn posteriors(
        &self,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress<'_>),
        timings: &mut Timings,
    ) -> Result<Vec<f32>> {
        let t = Instant::now();
        let windows = harken_features::encoder_windows(
            &self.mel,
            &audio.samples,
            self.acoustic.n_mel_frames(),
        );
        timings.mel += t.elapsed();
        let classes = self.acoustic.classes();
        let mut out = Vec::new();
        let total = audio.duration_s();
        for (i, w) in windows.iter().enumerate() {
            let t = Instant::now();
            let lp = self.acoustic.log_probs(&w.mel)?;
            timings.encoder += t.elapsed();
            timings.windows += 1;
            let end = w.frames.min(self.acoustic.n_frames());
            out.extend_from_slice(&lp[w.keep_from.min(end) * classes..end * classes]);
            let done = ((i + 1) as f64 * 30.0).min(total);
            progress(Progress::at(done, total));
        }
        Ok(out)
    }

    /// Decode posteriors with the request's LM, trie, beam and hot-word settings.
    pub(crate) fn decode(
        &self,
        lp: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<harken_ctc::Hypothesis> {
        let classes = self.acoustic.classes();
        let post = Posteriors::new(lp, classes).map_err(|e| Error::Option(e.to_string()))?;
        let beam = opts.lm.beam.unwrap_or(self.beam).max(1);
        let use_lm = opts.lm.enabled.unwrap_or(true);
        let use_trie = opts.lm.trie.unwrap_or(true);
        let (hot, _) = Hotwords::new(&self.alphabet, &opts.hotwords, opts.hotword_weight);
        if beam == 1 && hot.is_empty() {
            return Ok(harken_ctc::greedy(&post, &self.alphabet));
        }
        let search = BeamSearch {
            alphabet: &self.alphabet,
            lm: self.lm.as_ref().filter(|_| use_lm).map(|m| LmFusion {
                model: m,
                alpha: opts.lm.alpha.unwrap_or(self.alpha),
                beta: opts.lm.beta.unwrap_or(self.beta),
                unk_log10: -10.0,
            }),
            trie: self.trie.as_ref().filter(|_| use_trie),
            hotwords: (!hot.is_empty()).then_some(&hot),
            options: BeamOptions { beam_width: beam, ..BeamOptions::default() },
        };
        Ok(search
            .decode(&post)
            .into_iter()
            .next()
            .unwrap_or_else(|| harken_ctc::greedy(&post, &self.alphabet)))
    }

    pub(crate) fn transcribe(
        &self,
        audio: &Audio,
        opts: &TranscribeOptions,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(Transcript, Timings)> {
        if opts.language.as_deref().is_some_and(|l| l != "en") {
            return Err(Error::Option(format!(
                "this CTC model transcribes English only, not {:?}",
                opts.language.as_deref().unwrap_or_default()
            )));
        }
        if opts.task != harken_core::Task::Transcribe {
            return Err(Error::Option("CTC models cannot translate".into()));
        }
        let mut timings = Timings::default();
        let lp = self.posteriors(audio, progress, &mut timings)?;
        let t = Instant::now();
        let hyp = self.decode(&lp, opts)?;
        timings.decoder += t.elapsed();
        let words: Vec<Word> = hyp
            .words
            .iter()
            .enumerate()
            .map(|(i, w)| Word {
                text: if i == 0 { w.word.clone() } else { format!(" {}", w.word) },
                start_s: w.start_frame as f64 * FRAME_S,
                end_s: ((w.end_frame + 1) as f64 * FRAME_S).min(audio.duration_s().max(FRAME_S)),
                probability: hyp.confidence as f32,
            })
            .collect();
        let duration_s = audio.duration_s();
        let segment = Segment {
            id: 0,
            seek_frames: 0,
            start_s: words.first().map_or(0.0, |w| w.start_s),
            end_s: words.last().map_or(duration_s, |w| w.end_s),
            text: format!(" {}", hyp.text),
            tokens: hyp.tokens.iter().map(|t| t.symbol).collect(),
            temperature: 0.0,
            avg_logprob: (hyp.acoustic / (lp.len() / self.acoustic.classes()).max(1) as f64) as f32,
            compression_ratio: 0.0,
            no_speech_prob: 0.0,
            words: opts.word_timestamps.then_some(words),
        };
        let transcript = Transcript {
            text: hyp.text.clone(),
            language: "en".into(),
            language_probability: None,
            duration_s,
            segments: if hyp.text.is_empty() { Vec::new() } else { vec![segment] },
        };
        Ok((transcript, timings))
    }
}
