//! The runner against local directories with a transcriber that needs no model: the bytes of
//! each "audio" file say what to do (`ok:TEXT`, `bad`, `panic`, `slow:TEXT`). The real engine
//! runs through `harken batch` in the CLI's end-to-end tests.

#![allow(clippy::unwrap_used)]

use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use harken_batch::{
    ErrorBody, Input, Record, RunConfig, Source, Status, Transcribed, Transcriber, WorkerConfig,
    list_inputs, run, serve_jsonl,
};
use harken_core::ErrorKind;

struct Fake {
    calls: AtomicUsize,
    stop_after: Option<(usize, &'static AtomicBool)>,
}

impl Fake {
    fn new() -> Self {
        Fake { calls: AtomicUsize::new(0), stop_after: None }
    }
}

impl Transcriber for Fake {
    fn transcribe(&self, audio: Vec<u8>, _input: &Input) -> Result<Transcribed, ErrorBody> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some((after, flag)) = self.stop_after
            && n >= after
        {
            flag.store(true, Ordering::SeqCst);
        }
        let s = String::from_utf8(audio).unwrap();
        let text = if let Some(t) = s.strip_prefix("ok:") {
            t.to_owned()
        } else if let Some(t) = s.strip_prefix("slow:") {
            std::thread::sleep(Duration::from_millis(300));
            t.to_owned()
        } else if s == "panic" {
            panic!("fake transcriber panics");
        } else {
            return Err(ErrorBody::new(ErrorKind::UnsupportedMedia, "not audio"));
        };
        Ok(Transcribed {
            body: format!("{{\"text\":\"{text}\"}}"),
            text,
            language: "en".into(),
            duration: 1.5,
        })
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, body) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

fn config(out: &Path, settings: &str) -> RunConfig {
    RunConfig {
        output: out.display().to_string(),
        extension: "json".into(),
        jobs: 2,
        settings: settings.into(),
        max_input_bytes: 1 << 20,
        shard: None,
        force: false,
    }
}

fn index(out: &Path, name: &str) -> Vec<Record> {
    std::fs::read_to_string(out.join(name))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn failures_are_recorded_and_a_rerun_does_only_what_is_left() {
    let rt = rt();
    let src = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    write(
        src.path(),
        &[
            ("a.wav", "ok:alpha"),
            ("sub/b.flac", "ok:beta"),
            ("c.mp3", "bad"),
            ("d.wav", "panic"),
            ("skip.txt", "x"),
        ],
    );
    let inputs =
        rt.block_on(list_inputs(&Source::Prefix(src.path().display().to_string()))).unwrap();
    assert_eq!(inputs.len(), 4, "the .txt file is not audio");
    let fake = Fake::new();
    let stop = AtomicBool::new(false);
    let s =
        run(rt.handle(), inputs.clone(), &config(out.path(), "m1"), &fake, &stop, &|_| {}).unwrap();
    assert_eq!((s.total, s.skipped, s.ok, s.failed, s.remaining), (4, 0, 2, 2, 0));
    assert_eq!(
        std::fs::read_to_string(out.path().join("sub/b.json")).unwrap(),
        "{\"text\":\"beta\"}"
    );
    let recs = index(out.path(), "index.jsonl");
    assert_eq!(recs.len(), 4);
    let bad = recs.iter().find(|r| r.audio.ends_with("c.mp3")).unwrap();
    assert_eq!(bad.status, Status::Error);
    assert_eq!(bad.error.as_ref().unwrap().code, "unsupported_media");
    let panicked = recs.iter().find(|r| r.audio.ends_with("d.wav")).unwrap();
    assert_eq!(panicked.error.as_ref().unwrap().code, "internal");

    // Second run: the successes are skipped, the failures tried again.
    let fake = Fake::new();
    let s =
        run(rt.handle(), inputs.clone(), &config(out.path(), "m1"), &fake, &stop, &|_| {}).unwrap();
    assert_eq!((s.skipped, s.ok, s.failed), (2, 0, 2));
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2);

    // A changed input, a deleted result and changed settings each bring work back.
    std::thread::sleep(Duration::from_millis(20));
    write(src.path(), &[("a.wav", "ok:alpha two")]);
    std::fs::remove_file(out.path().join("sub/b.json")).unwrap();
    let inputs =
        rt.block_on(list_inputs(&Source::Prefix(src.path().display().to_string()))).unwrap();
    let fake = Fake::new();
    let s =
        run(rt.handle(), inputs.clone(), &config(out.path(), "m1"), &fake, &stop, &|_| {}).unwrap();
    assert_eq!((s.skipped, s.ok), (0, 2));
    let fake = Fake::new();
    let s = run(rt.handle(), inputs, &config(out.path(), "m2"), &fake, &stop, &|_| {}).unwrap();
    assert_eq!((s.skipped, s.ok, s.failed), (0, 2, 2));
}

#[test]
fn a_stop_finishes_what_is_in_flight_and_leaves_the_rest() {
    static STOP: AtomicBool = AtomicBool::new(false);
    let rt = rt();
    let src = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let files: Vec<(String, String)> =
        (0..10).map(|i| (format!("f{i}.wav"), format!("slow:t{i}"))).collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    write(src.path(), &refs);
    let inputs =
        rt.block_on(list_inputs(&Source::Prefix(src.path().display().to_string()))).unwrap();
    let fake = Fake { calls: AtomicUsize::new(0), stop_after: Some((3, &STOP)) };
    let s =
        run(rt.handle(), inputs.clone(), &config(out.path(), "m"), &fake, &STOP, &|_| {}).unwrap();
    assert!(s.ok >= 3 && s.ok <= 4, "{s:?}");
    assert_eq!(s.ok + s.remaining, 10);
    assert_eq!(index(out.path(), "index.jsonl").len(), s.ok, "every finished input is indexed");
    // Resuming does the rest.
    let stop = AtomicBool::new(false);
    let s2 =
        run(rt.handle(), inputs, &config(out.path(), "m"), &Fake::new(), &stop, &|_| {}).unwrap();
    assert_eq!((s2.skipped, s2.ok), (s.ok, 10 - s.ok));
}

#[test]
fn shards_split_the_inputs_and_write_their_own_index() {
    let rt = rt();
    let src = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let files: Vec<(String, String)> =
        (0..7).map(|i| (format!("f{i}.wav"), format!("ok:t{i}"))).collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    write(src.path(), &refs);
    let inputs =
        rt.block_on(list_inputs(&Source::Prefix(src.path().display().to_string()))).unwrap();
    let stop = AtomicBool::new(false);
    let mut seen = 0;
    for i in 0..3 {
        let cfg = RunConfig { shard: harken_batch::Shard::new(i, 3), ..config(out.path(), "m") };
        let s = run(rt.handle(), inputs.clone(), &cfg, &Fake::new(), &stop, &|_| {}).unwrap();
        seen += s.ok;
        assert_eq!(index(out.path(), &format!("index-{i:05}-of-00003.jsonl")).len(), s.ok);
    }
    assert_eq!(seen, 7);
    // The whole set, unsharded, finds all of it done through the shards' indexes.
    let s =
        run(rt.handle(), inputs, &config(out.path(), "m"), &Fake::new(), &stop, &|_| {}).unwrap();
    assert_eq!(s.skipped, 7);
}

#[test]
fn the_jsonl_worker_answers_every_line_once() {
    let rt = rt();
    let src = tempfile::tempdir().unwrap();
    write(src.path(), &[("a.wav", "ok:alpha"), ("b.wav", "bad")]);
    let a = src.path().join("a.wav").display().to_string();
    let b = src.path().join("b.wav").display().to_string();
    let stdin = format!(
        "{a}\n\n{{\"audio\":\"{b}\",\"id\":\"7\"}}\n{{\"audio\": 5}}\n{}\n",
        src.path().join("missing.wav").display()
    );
    let mut out = Vec::new();
    let cfg = WorkerConfig {
        jobs: 2,
        output: None,
        extension: "json".into(),
        settings: "m".into(),
        max_input_bytes: 1 << 20,
        shard: None,
    };
    let stop = AtomicBool::new(false);
    let s =
        serve_jsonl(rt.handle(), Box::new(Cursor::new(stdin)), &mut out, &cfg, &Fake::new(), &stop)
            .unwrap();
    assert_eq!((s.total, s.ok, s.failed), (4, 1, 3));
    let recs: Vec<Record> =
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(recs.len(), 4);
    let by = |f: &dyn Fn(&Record) -> bool| recs.iter().find(|r| f(r)).unwrap().clone();
    assert_eq!(by(&|r| r.audio == a).text.as_deref(), Some("alpha"));
    assert_eq!(by(&|r| r.id.as_deref() == Some("7")).error.unwrap().code, "unsupported_media");
    assert_eq!(by(&|r| r.audio.contains("missing")).error.unwrap().code, "not_found");
    assert_eq!(by(&|r| r.audio.contains("5}")).error.unwrap().code, "invalid_input");
}
