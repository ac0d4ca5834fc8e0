//! The index: one JSON line per input saying what became of it, and the resume rule read from
//! it. A worker of the JSONL protocol prints the same lines.

use std::collections::{HashMap, HashSet};

use harken_artifacts::objects;
use serde::{Deserialize, Serialize};

use crate::{Input, Result, Shard};

/// Whether an input was transcribed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Transcribed; the result was written.
    Ok,
    /// Not transcribed; `error` says why.
    Error,
}

/// Why an input failed: a stable code from Harken's error table and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable snake_case code (`invalid_input`, `unsupported_media`, `not_found`, …).
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
}

impl ErrorBody {
    /// An error of class `kind`.
    pub fn new(kind: harken_core::ErrorKind, message: impl Into<String>) -> Self {
        ErrorBody { code: harken_api::ErrorInfo::of(kind).code.to_owned(), message: message.into() }
    }
}

/// One line of the index (and of the JSONL worker's output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The caller's identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The input as given.
    pub audio: String,
    /// Success or failure.
    pub status: Status,
    /// The transcript.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Language used or detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Audio seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// Wall seconds spent transcribing (decode included, fetch excluded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Wall seconds spent fetching the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_seconds: Option<f64>,
    /// Where the result was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    /// The input's version (ETag or size and modification time) when it was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_version: Option<String>,
    /// The model and options that produced the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<String>,
    /// Completion time, Unix seconds.
    #[serde(default)]
    pub t: f64,
}

impl Record {
    /// A failure record for `input`.
    pub fn failed(input: &Input, error: ErrorBody) -> Self {
        Record {
            id: input.id.clone(),
            audio: input.audio.clone(),
            status: Status::Error,
            text: None,
            language: None,
            duration: None,
            seconds: None,
            fetch_seconds: None,
            output: None,
            error: Some(error),
            input_version: input.validator.clone(),
            settings: None,
            t: now(),
        }
    }
}

pub(crate) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The index file's name below the output: `index.jsonl`, or one per shard so that workers of
/// an array job never write the same object.
pub fn index_name(shard: Option<Shard>) -> String {
    match shard {
        None => "index.jsonl".to_owned(),
        Some(s) => format!("index-{:05}-of-{:05}.jsonl", s.index, s.count),
    }
}

fn is_index(rel: &str) -> bool {
    !rel.contains('/') && rel.starts_with("index") && rel.ends_with(".jsonl")
}

/// What earlier runs into the same output did: the last record of each input from every index
/// file there, and the results that exist.
#[derive(Debug, Default)]
pub struct Index {
    last: HashMap<String, Record>,
    outputs: HashSet<String>,
    /// Records of the file this run appends to, in order (rewritten whole on S3).
    pub(crate) own: Vec<Record>,
}

impl Index {
    /// Read the index files below `output` (none yet is an empty index). A torn last line (a
    /// run killed mid-write) is ignored.
    pub async fn load(output: &str, own_name: &str) -> Result<Self> {
        let listing = match objects::list(output).await {
            Ok(l) => l,
            Err(harken_artifacts::Error::NotFound { .. }) => return Ok(Index::default()),
            Err(e) => return Err(e.into()),
        };
        let mut index = Index::default();
        for o in &listing {
            if !is_index(&o.rel) {
                index.outputs.insert(o.uri.clone());
                continue;
            }
            let bytes = objects::read(&o.uri, u64::MAX).await?;
            for line in String::from_utf8_lossy(&bytes).lines() {
                let Ok(r) = serde_json::from_str::<Record>(line) else {
                    tracing::warn!(index = %o.uri, "skipping an unreadable index line");
                    continue;
                };
                if o.rel == own_name {
                    index.own.push(r.clone());
                }
                index.last.insert(r.audio.clone(), r);
            }
        }
        Ok(index)
    }

    /// Whether `input` is done under `settings`: its last record is a success for the same
    /// input version, and its result still exists.
    pub fn is_done(&self, input: &Input, settings: &str) -> bool {
        self.last.get(&input.audio).is_some_and(|r| {
            r.status == Status::Ok
                && r.settings.as_deref() == Some(settings)
                && input.validator.is_some()
                && r.input_version == input.validator
                && r.output.as_ref().is_some_and(|o| self.outputs.contains(o))
        })
    }

    /// Whether the last record of `audio` is a success (of any version or settings).
    pub fn succeeded(&self, audio: &str) -> bool {
        self.last.get(audio).is_some_and(|r| r.status == Status::Ok)
    }

    /// Records read, one per input.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether no record was read.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}
