//! Batch transcription: many inputs in, one result per input out, and an index that says what
//! happened to each — the job `harken batch` runs on one machine and the unit every scale-out
//! engine (AWS Batch array jobs, Spark's `RDD.pipe`, Lambda fan-out) hands to a worker.
//!
//! What this crate owns:
//! - **Inputs** ([`Source`], [`Input`]): a local directory or `s3://` prefix (audio files by
//!   extension), or a manifest (JSON lines with `audio`, or bare URIs); their order, and the
//!   share of them a worker takes ([`Shard`], from `AWS_BATCH_JOB_ARRAY_INDEX`).
//! - **Results and the index** ([`Record`], [`Index`]): where each result goes, the JSON line
//!   recorded for it (success with text and timings, or failure with a code and reason), and the
//!   rule that makes a run resumable — an input is skipped when the index holds a success for
//!   the same input version under the same settings and its result file still exists.
//! - **The runner** ([`run`], [`serve_jsonl`]): bounded concurrency, per-input errors recorded
//!   and never fatal, a stop flag (SIGTERM) that lets inputs in flight finish.
//!
//! Transcribing is the caller's: a [`Transcriber`] gets bytes and returns a rendered result, so
//! this crate needs no engine and its tests need no model. Object I/O goes through
//! `harken-artifacts`; the runner is synchronous and drives that async I/O on a runtime handle
//! the binary passes in.

mod input;
mod record;
mod run;

pub use input::{AUDIO_EXTENSIONS, Input, Request, Shard, Source, list_inputs, parse_request};
pub use record::{ErrorBody, Index, Record, Status, index_name};
pub use run::{
    Event, RunConfig, Summary, Transcribed, Transcriber, WorkerConfig, result_name, run,
    serve_jsonl,
};

/// Errors that stop a batch before it starts (a missing source, an unreadable manifest); errors
/// of single inputs are recorded in the index instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Listing or reading the source, or writing the index, failed.
    #[error(transparent)]
    Store(#[from] harken_artifacts::Error),
    /// A manifest line is not a request.
    #[error("{location} line {line}: {detail}")]
    Manifest {
        /// The manifest.
        location: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// A setting is out of range.
    #[error("{0}")]
    Config(String),
    /// Writing the worker's output failed (a closed pipe).
    #[error("writing results: {0}")]
    Output(#[from] std::io::Error),
}

impl Error {
    /// The failure class.
    pub fn kind(&self) -> harken_core::ErrorKind {
        match self {
            Error::Store(e) => e.kind(),
            Error::Manifest { .. } | Error::Config(_) => harken_core::ErrorKind::InvalidInput,
            Error::Output(_) => harken_core::ErrorKind::Internal,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
