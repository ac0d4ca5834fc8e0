//! Wire formats: how a [`Transcript`] is rendered for users and clients, and how an
//! [`ErrorKind`] maps to a status code.
//!
//! Brief overview: [`ResponseFormat`] names OpenAI's `response_format` values; [`render`]
//! produces the body for one; [`ErrorInfo::of`] is the single table from error kind to HTTP
//! status and OpenAI error type/code. Only this crate defines serialisable wire types.

mod languages;

use harken_core::{ErrorKind, Transcript};
use serde::Serialize;

pub use languages::language_name;

/// Output formats, named as OpenAI's `response_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    /// Plain text, one line.
    Text,
    /// `{text, language, duration, segments}`.
    Json,
    /// OpenAI's verbose shape with per-segment decoder statistics.
    VerboseJson,
    /// SubRip subtitles.
    Srt,
    /// WebVTT subtitles.
    Vtt,
}

impl ResponseFormat {
    /// Parse an OpenAI `response_format` value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "text" => ResponseFormat::Text,
            "json" => ResponseFormat::Json,
            "verbose_json" => ResponseFormat::VerboseJson,
            "srt" => ResponseFormat::Srt,
            "vtt" => ResponseFormat::Vtt,
            _ => return None,
        })
    }

    /// MIME type of the rendered body.
    pub fn content_type(self) -> &'static str {
        match self {
            ResponseFormat::Text => "text/plain; charset=utf-8",
            ResponseFormat::Json | ResponseFormat::VerboseJson => "application/json",
            ResponseFormat::Srt => "application/x-subrip",
            ResponseFormat::Vtt => "text/vtt",
        }
    }

    /// Usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            ResponseFormat::Text => "txt",
            ResponseFormat::Json | ResponseFormat::VerboseJson => "json",
            ResponseFormat::Srt => "srt",
            ResponseFormat::Vtt => "vtt",
        }
    }
}

#[derive(Serialize)]
struct JsonWord<'a> {
    word: &'a str,
    start: f64,
    end: f64,
    probability: f32,
}

#[derive(Serialize)]
struct JsonSegment<'a> {
    id: usize,
    start: f64,
    end: f64,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    words: Option<Vec<JsonWord<'a>>>,
}

#[derive(Serialize)]
struct Json<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    text: &'a str,
    language: &'a str,
    duration: f64,
    segments: Vec<JsonSegment<'a>>,
}

#[derive(Serialize)]
struct VerboseSegment<'a> {
    id: usize,
    seek: usize,
    start: f64,
    end: f64,
    text: &'a str,
    tokens: &'a [u32],
    temperature: f32,
    avg_logprob: f32,
    compression_ratio: f32,
    no_speech_prob: f32,
}

#[derive(Serialize)]
struct VerboseWord<'a> {
    word: &'a str,
    start: f64,
    end: f64,
}

#[derive(Serialize)]
struct Verbose<'a> {
    task: &'a str,
    language: &'a str,
    duration: f64,
    text: &'a str,
    segments: Vec<VerboseSegment<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    words: Option<Vec<VerboseWord<'a>>>,
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Render `t` in `format`. `file` is added to JSON output when given (several inputs in one
/// run); `task` is `"transcribe"` or `"translate"` for verbose JSON.
pub fn render(t: &Transcript, format: ResponseFormat, file: Option<&str>, task: &str) -> String {
    match format {
        ResponseFormat::Text => format!("{}\n", t.text),
        ResponseFormat::Json => {
            let body = Json {
                file,
                text: &t.text,
                language: &t.language,
                duration: r3(t.duration_s),
                segments: t
                    .segments
                    .iter()
                    .map(|s| JsonSegment {
                        id: s.id,
                        start: r3(s.start_s),
                        end: r3(s.end_s),
                        text: s.text.trim(),
                        words: s.words.as_ref().map(|ws| {
                            ws.iter()
                                .map(|w| JsonWord {
                                    word: &w.text,
                                    start: r3(w.start_s),
                                    end: r3(w.end_s),
                                    probability: w.probability,
                                })
                                .collect()
                        }),
                    })
                    .collect(),
            };
            to_json(&body)
        }
        ResponseFormat::VerboseJson => {
            let words: Option<Vec<VerboseWord<'_>>> =
                t.segments.iter().any(|s| s.words.is_some()).then(|| {
                    t.segments
                        .iter()
                        .flat_map(|s| s.words.iter().flatten())
                        .map(|w| VerboseWord {
                            word: w.text.trim(),
                            start: r3(w.start_s),
                            end: r3(w.end_s),
                        })
                        .collect()
                });
            let body = Verbose {
                task,
                language: language_name(&t.language).unwrap_or(&t.language),
                duration: r3(t.duration_s),
                text: &t.text,
                segments: t
                    .segments
                    .iter()
                    .map(|s| VerboseSegment {
                        id: s.id,
                        seek: s.seek_frames,
                        start: r3(s.start_s),
                        end: r3(s.end_s),
                        text: &s.text,
                        tokens: &s.tokens,
                        temperature: s.temperature,
                        avg_logprob: s.avg_logprob,
                        compression_ratio: s.compression_ratio,
                        no_speech_prob: s.no_speech_prob,
                    })
                    .collect(),
                words,
            };
            to_json(&body)
        }
        ResponseFormat::Srt => {
            let mut out = String::new();
            for (i, s) in t.segments.iter().enumerate() {
                out.push_str(&format!(
                    "{}\n{} --> {}\n{}\n\n",
                    i + 1,
                    timestamp(s.start_s, ','),
                    timestamp(s.end_s, ','),
                    s.text.trim()
                ));
            }
            out
        }
        ResponseFormat::Vtt => {
            let mut out = String::from("WEBVTT\n\n");
            for s in &t.segments {
                out.push_str(&format!(
                    "{} --> {}\n{}\n\n",
                    timestamp(s.start_s, '.'),
                    timestamp(s.end_s, '.'),
                    s.text.trim()
                ));
            }
            out
        }
    }
}

fn to_json<T: Serialize>(v: &T) -> String {
    // Serialising plain structs of strings and numbers cannot fail; NaN becomes null.
    let mut s = serde_json::to_string(v).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

/// `HH:MM:SS,mmm` (SRT, `sep = ','`) or `HH:MM:SS.mmm` (VTT).
pub fn timestamp(seconds: f64, sep: char) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    let (h, rem) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rem) = (rem / 60_000, rem % 60_000);
    let (s, ms) = (rem / 1000, rem % 1000);
    format!("{h:02}:{m:02}:{s:02}{sep}{ms:03}")
}

/// How an error kind appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorInfo {
    /// HTTP status code.
    pub status: u16,
    /// OpenAI `error.type`.
    pub openai_type: &'static str,
    /// Stable snake_case code.
    pub code: &'static str,
    /// Seconds for `Retry-After`, when retrying can help.
    pub retry_after_s: Option<u32>,
}

impl ErrorInfo {
    /// The one table from [`ErrorKind`] to wire representation.
    pub fn of(kind: ErrorKind) -> Self {
        let (status, openai_type, code, retry_after_s) = match kind {
            ErrorKind::InvalidInput => (400, "invalid_request_error", "invalid_input", None),
            ErrorKind::UnsupportedMedia => {
                (415, "invalid_request_error", "unsupported_media", None)
            }
            ErrorKind::TooLarge => (413, "invalid_request_error", "too_large", None),
            ErrorKind::NotFound => (404, "invalid_request_error", "not_found", None),
            ErrorKind::Overloaded => (503, "server_error", "overloaded", Some(1)),
            ErrorKind::Timeout => (504, "server_error", "timeout", None),
            ErrorKind::Unavailable => (503, "server_error", "unavailable", Some(5)),
            _ => (500, "server_error", "internal", None),
        };
        ErrorInfo { status, openai_type, code, retry_after_s }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_and_carry() {
        assert_eq!(timestamp(0.0, ','), "00:00:00,000");
        assert_eq!(timestamp(3661.5, '.'), "01:01:01.500");
        assert_eq!(timestamp(59.9996, ','), "00:01:00,000");
    }

    #[test]
    fn formats_parse() {
        for f in ["text", "json", "verbose_json", "srt", "vtt"] {
            assert!(ResponseFormat::parse(f).is_some());
        }
        assert!(ResponseFormat::parse("xml").is_none());
    }
}
