//! The runner: a fixed number of worker threads take inputs one at a time, fetch, transcribe,
//! write the result, and record the outcome. Nothing one input does stops the others; a stop
//! request (SIGTERM) lets the inputs in flight finish and leaves the rest for the next run.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use harken_artifacts::objects;
use harken_core::ErrorKind;
use tokio::runtime::Handle;

use crate::record::now;
use crate::{Error, ErrorBody, Index, Input, Record, Result, Shard, Status, parse_request};

/// HEAD requests in flight while checking which inputs a resumed run can skip.
const HEADS_IN_FLIGHT: usize = 32;
/// How often an index on S3 (rewritten whole: S3 has no append) is saved during a run.
const S3_INDEX_EVERY: Duration = Duration::from_secs(30);

/// A transcription, rendered.
#[derive(Debug, Clone)]
pub struct Transcribed {
    /// The result file's contents in the chosen format.
    pub body: String,
    /// Plain text, for the index.
    pub text: String,
    /// Language used or detected.
    pub language: String,
    /// Audio seconds.
    pub duration: f64,
}

/// What turns audio into a result: the engine, in the binary.
pub trait Transcriber: Sync {
    /// Transcribe one input's bytes.
    fn transcribe(&self, audio: Vec<u8>, input: &Input) -> Result<Transcribed, ErrorBody>;
}

/// Settings of a batch run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Output directory or `s3://` prefix.
    pub output: String,
    /// Extension of result files (`json`, `txt`, `srt`, …).
    pub extension: String,
    /// Inputs in flight.
    pub jobs: usize,
    /// The model and options, recorded with each result; a change makes results stale.
    pub settings: String,
    /// Largest input read, bytes.
    pub max_input_bytes: u64,
    /// This worker's share, when the inputs are split between workers.
    pub shard: Option<Shard>,
    /// Transcribe everything again, ignoring earlier results.
    pub force: bool,
}

/// Settings of a JSONL worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Inputs in flight.
    pub jobs: usize,
    /// Also write result files here (the records name them).
    pub output: Option<String>,
    /// Extension of result files.
    pub extension: String,
    /// Recorded with each result.
    pub settings: String,
    /// Largest input read, bytes.
    pub max_input_bytes: u64,
    /// Take only this share of the request lines.
    pub shard: Option<Shard>,
}

/// Progress of a run, for a progress bar and logs.
#[derive(Debug)]
pub enum Event<'a> {
    /// The plan: inputs of this worker, and how many earlier runs already did.
    Planned {
        /// Inputs this run is responsible for.
        total: usize,
        /// Of those, done by an earlier run.
        skipped: usize,
    },
    /// An input finished, well or not.
    Finished(&'a Record),
}

/// How a run ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Inputs this run was responsible for.
    pub total: usize,
    /// Done by an earlier run.
    pub skipped: usize,
    /// Transcribed now.
    pub ok: usize,
    /// Failed now (recorded in the index).
    pub failed: usize,
    /// Left undone because a stop was requested.
    pub remaining: usize,
}

/// Run a batch over `inputs` into `cfg.output`, appending to the index there.
pub fn run(
    rt: &Handle,
    inputs: Vec<Input>,
    cfg: &RunConfig,
    transcriber: &dyn Transcriber,
    stop: &AtomicBool,
    on_event: &(dyn Fn(Event<'_>) + Sync),
) -> Result<Summary> {
    if cfg.jobs == 0 {
        return Err(Error::Config("jobs must be at least 1".into()));
    }
    let index_name = crate::index_name(cfg.shard);
    let mut inputs: Vec<Input> = match cfg.shard {
        Some(s) => {
            inputs.into_iter().enumerate().filter(|(i, _)| s.takes(*i)).map(|(_, x)| x).collect()
        }
        None => inputs,
    };
    let index = if cfg.force {
        Index::default()
    } else {
        rt.block_on(Index::load(&cfg.output, &index_name))?
    };
    // Inputs named by a manifest carry no version; look it up where an earlier success could
    // let the input be skipped.
    if !index.is_empty() {
        rt.block_on(fill_versions(&mut inputs, &index))?;
    }
    let total = inputs.len();
    let todo: Vec<Input> =
        inputs.into_iter().filter(|i| cfg.force || !index.is_done(i, &cfg.settings)).collect();
    let skipped = total - todo.len();
    on_event(Event::Planned { total, skipped });
    let targets = output_names(&todo, &cfg.extension);

    let index_uri = objects::join(&cfg.output, &index_name);
    let sink = Mutex::new(IndexSink::open(&index_uri, index.own)?);
    let next = AtomicUsize::new(0);
    let (ok, failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let work = |_: usize| {
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some(input) = todo.get(i) else { return };
            let output = objects::join(&cfg.output, &targets[i]);
            let record =
                process(rt, input, Some(&output), cfg.max_input_bytes, &cfg.settings, transcriber);
            if record.status == Status::Ok { &ok } else { &failed }.fetch_add(1, Ordering::SeqCst);
            on_event(Event::Finished(&record));
            if let Ok(mut s) = sink.lock() {
                s.push(rt, record);
            }
        }
    };
    std::thread::scope(|s| {
        for w in 0..cfg.jobs.min(todo.len()).max(1) {
            let work = &work;
            s.spawn(move || work(w));
        }
    });
    let sink = sink.into_inner().map_err(|_| Error::Config("index writer poisoned".into()))?;
    sink.finish(rt)?;
    let (ok, failed) = (ok.into_inner(), failed.into_inner());
    Ok(Summary { total, skipped, ok, failed, remaining: todo.len() - ok - failed })
}

async fn fill_versions(inputs: &mut [Input], index: &Index) -> Result<()> {
    let wanted: Vec<usize> = inputs
        .iter()
        .enumerate()
        .filter(|(_, i)| i.validator.is_none() && index.succeeded(&i.audio))
        .map(|(n, _)| n)
        .collect();
    let heads = futures::stream::iter(wanted.into_iter().map(|n| {
        let uri = inputs[n].uri.clone();
        async move { (n, objects::head(&uri).await) }
    }))
    .buffer_unordered(HEADS_IN_FLIGHT)
    .collect::<Vec<_>>()
    .await;
    for (n, head) in heads {
        // A missing or unreadable input is left without a version: it is retried and its error
        // recorded then.
        if let Ok(Some(h)) = head {
            inputs[n].size = Some(h.size);
            inputs[n].validator = h.validator;
        }
    }
    Ok(())
}

/// The result name of `rel`: its extension replaced by `ext` (`calls/a.wav` → `calls/a.json`).
pub fn result_name(rel: &str, ext: &str) -> String {
    let (dir, name) = match rel.rsplit_once('/') {
        Some((d, n)) => (format!("{d}/"), n),
        None => (String::new(), rel),
    };
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    format!("{dir}{stem}.{ext}")
}

/// Result names: the input's name with the result's extension in place of its own; when two
/// inputs would share a name (`a.wav`, `a.mp3`), the later keeps its own extension too.
fn output_names(inputs: &[Input], ext: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    inputs
        .iter()
        .map(|i| {
            let mut out = result_name(&i.rel, ext);
            if !seen.insert(out.clone()) {
                out = format!("{}.{ext}", i.rel);
                seen.insert(out.clone());
            }
            out
        })
        .collect()
}

fn process(
    rt: &Handle,
    input: &Input,
    output: Option<&str>,
    max_bytes: u64,
    settings: &str,
    transcriber: &dyn Transcriber,
) -> Record {
    let started = Instant::now();
    let mut input = input.clone();
    let fetched = rt.block_on(async {
        if input.validator.is_none() || input.size.is_none() {
            match objects::head(&input.uri).await {
                Ok(Some(h)) => {
                    input.size = Some(h.size);
                    input.validator = h.validator;
                }
                Ok(None) => {
                    return Err(ErrorBody::new(
                        ErrorKind::NotFound,
                        format!("{} does not exist", input.uri),
                    ));
                }
                // HTTP servers may refuse HEAD; the GET below says what is wrong, if anything.
                Err(_) => {}
            }
        }
        if let Some(size) = input.size.filter(|s| *s > max_bytes) {
            return Err(ErrorBody::new(
                ErrorKind::TooLarge,
                format!("{size} bytes is over the {max_bytes}-byte input limit"),
            ));
        }
        objects::read(&input.uri, max_bytes)
            .await
            .map_err(|e| ErrorBody::new(e.kind(), format!("{e}")))
    });
    let fetch_seconds = started.elapsed().as_secs_f64();
    let bytes = match fetched {
        Ok(b) => b,
        Err(e) => return Record::failed(&input, e),
    };
    let t0 = Instant::now();
    // A bug that panics on one input must not take the batch down with it.
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        transcriber.transcribe(bytes.to_vec(), &input)
    }))
    .unwrap_or_else(|_| Err(ErrorBody::new(ErrorKind::Internal, "internal error (a panic)")));
    let seconds = t0.elapsed().as_secs_f64();
    let t = match done {
        Ok(t) => t,
        Err(e) => {
            let mut r = Record::failed(&input, e);
            r.fetch_seconds = Some(fetch_seconds);
            r.seconds = Some(seconds);
            return r;
        }
    };
    if let Some(out) = output
        && let Err(e) = rt.block_on(objects::write(out, Bytes::from(t.body)))
    {
        return Record::failed(
            &input,
            ErrorBody::new(e.kind(), format!("writing the result: {e}")),
        );
    }
    Record {
        id: input.id.clone(),
        audio: input.audio.clone(),
        status: Status::Ok,
        text: Some(t.text),
        language: Some(t.language),
        duration: Some(t.duration),
        seconds: Some(seconds),
        fetch_seconds: Some(fetch_seconds),
        output: output.map(str::to_owned),
        error: None,
        input_version: input.validator.clone(),
        settings: Some(settings.to_owned()),
        t: now(),
    }
}

/// Where records go: appended line by line to a local file (flushed each time, so a killed run
/// loses at most the line being written), or kept and rewritten whole on S3.
enum IndexSink {
    Local(std::fs::File),
    S3 { uri: String, records: Vec<Record>, saved: Instant, dirty: bool },
}

impl IndexSink {
    fn open(uri: &str, own: Vec<Record>) -> Result<Self> {
        if objects::is_s3(uri) {
            return Ok(IndexSink::S3 {
                uri: uri.to_owned(),
                records: own,
                saved: Instant::now(),
                dirty: false,
            });
        }
        let path = std::path::Path::new(uri);
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).read(true).open(path)?;
        // A run killed mid-line leaves a torn last line; start on a fresh one.
        let len = f.metadata()?.len();
        if len > 0 {
            use std::io::{Read, Seek, SeekFrom};
            let mut last = [0u8; 1];
            f.seek(SeekFrom::Start(len - 1))?;
            f.read_exact(&mut last)?;
            if last[0] != b'\n' {
                f.write_all(b"\n")?;
            }
        }
        Ok(IndexSink::Local(f))
    }

    fn push(&mut self, rt: &Handle, r: Record) {
        match self {
            IndexSink::Local(f) => {
                let line = serde_json::to_string(&r).unwrap_or_default();
                if let Err(e) = f.write_all(format!("{line}\n").as_bytes()).and_then(|()| f.flush())
                {
                    tracing::error!(error = %e, "could not append to the index");
                }
            }
            IndexSink::S3 { records, saved, dirty, .. } => {
                records.push(r);
                *dirty = true;
                if saved.elapsed() >= S3_INDEX_EVERY
                    && let Err(e) = self.save(rt)
                {
                    tracing::warn!(error = %e, "could not save the index; retrying later");
                }
            }
        }
    }

    fn save(&mut self, rt: &Handle) -> Result<()> {
        if let IndexSink::S3 { uri, records, saved, dirty } = self {
            let mut body = String::new();
            for r in records.iter() {
                body.push_str(&serde_json::to_string(r).unwrap_or_default());
                body.push('\n');
            }
            rt.block_on(objects::write(uri, Bytes::from(body)))?;
            *saved = Instant::now();
            *dirty = false;
        }
        Ok(())
    }

    fn finish(mut self, rt: &Handle) -> Result<()> {
        match &mut self {
            IndexSink::Local(f) => Ok(f.sync_all()?),
            IndexSink::S3 { dirty, .. } if *dirty => self.save(rt),
            IndexSink::S3 { .. } => Ok(()),
        }
    }
}

/// The JSONL worker: requests on `input` (one a line), one record a line on `out` in completion
/// order. Per-request failures are records, not errors; the worker stops at end of input, or
/// at a stop request once the requests in flight are done.
pub fn serve_jsonl(
    rt: &Handle,
    input: Box<dyn BufRead + Send>,
    out: &mut (dyn Write + Send),
    cfg: &WorkerConfig,
    transcriber: &dyn Transcriber,
    stop: &AtomicBool,
) -> Result<Summary> {
    if cfg.jobs == 0 {
        return Err(Error::Config("jobs must be at least 1".into()));
    }
    let (tx, rx) = mpsc::sync_channel::<std::result::Result<Input, Record>>(cfg.jobs * 2);
    let shard = cfg.shard;
    // Reading stdin blocks; on its own thread (not joined) a stop request never waits for the
    // next line.
    std::thread::spawn(move || {
        for (n, line) in input.lines().enumerate() {
            let Ok(line) = line else { break };
            if shard.is_some_and(|s| !s.takes(n)) {
                continue;
            }
            let item = match parse_request(&line) {
                None => continue,
                Some(Ok(r)) => Ok(r.into_input(None)),
                Some(Err(detail)) => {
                    let audio: String = line.chars().take(200).collect();
                    let input = Input {
                        audio,
                        uri: String::new(),
                        rel: String::new(),
                        id: None,
                        language: None,
                        size: None,
                        validator: None,
                    };
                    Err(Record::failed(
                        &input,
                        ErrorBody::new(
                            ErrorKind::InvalidInput,
                            format!("line {}: {detail}", n + 1),
                        ),
                    ))
                }
            };
            if tx.send(item).is_err() {
                break;
            }
        }
    });
    let rx = Mutex::new(rx);
    let out = Mutex::new(out);
    let summary = Mutex::new(Summary::default());
    let write_err: Mutex<Option<std::io::Error>> = Mutex::new(None);
    let names = Mutex::new(std::collections::HashSet::new());
    let work = || {
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let item = {
                let Ok(rx) = rx.lock() else { return };
                match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(item) => item,
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            };
            let record = match item {
                Err(r) => r,
                Ok(input) => {
                    let target = cfg.output.as_ref().map(|o| {
                        let mut name = output_names(std::slice::from_ref(&input), &cfg.extension)
                            .pop()
                            .unwrap_or_default();
                        if let Ok(mut seen) = names.lock()
                            && !seen.insert(name.clone())
                        {
                            name = format!("{}.{}", input.rel, cfg.extension);
                        }
                        objects::join(o, &name)
                    });
                    process(
                        rt,
                        &input,
                        target.as_deref(),
                        cfg.max_input_bytes,
                        &cfg.settings,
                        transcriber,
                    )
                }
            };
            if let Ok(mut s) = summary.lock() {
                s.total += 1;
                if record.status == Status::Ok { s.ok += 1 } else { s.failed += 1 }
            }
            let line = serde_json::to_string(&record).unwrap_or_default();
            let Ok(mut o) = out.lock() else { return };
            if let Err(e) = writeln!(o, "{line}").and_then(|()| o.flush()) {
                if let Ok(mut w) = write_err.lock() {
                    w.get_or_insert(e);
                }
                stop.store(true, Ordering::SeqCst);
                return;
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 0..cfg.jobs {
            s.spawn(work);
        }
    });
    if let Some(e) = write_err.into_inner().ok().flatten() {
        return Err(Error::Output(e));
    }
    Ok(summary.into_inner().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(rel: &str) -> Input {
        Input {
            audio: rel.into(),
            uri: rel.into(),
            rel: rel.into(),
            id: None,
            language: None,
            size: None,
            validator: None,
        }
    }

    #[test]
    fn output_names_never_collide() {
        let got = output_names(
            &[input("a.wav"), input("a.mp3"), input("d/b.flac"), input("noext")],
            "json",
        );
        assert_eq!(got, ["a.json", "a.mp3.json", "d/b.json", "noext.json"]);
    }
}
