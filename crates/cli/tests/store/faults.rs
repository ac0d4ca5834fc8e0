//! Faults: the S3 server killed mid-download (then resume), a wrong sha256, a full disk,
//! archives with escaping entries; and archives over a real HTTP server.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

use crate::*;

/// A TCP proxy in front of moto. When `cut_after` bytes of one response have passed, it tells
/// the test (`hit`), waits for the test to say go (`go`: the test kills moto meanwhile), then
/// drops the connection.
struct Proxy {
    port: u16,
}

/// Where to cut a response: byte count, armed flag, "cut happened" and "go on" signals.
type Cut = (u64, Arc<AtomicBool>, mpsc::Sender<()>, Arc<std::sync::Mutex<mpsc::Receiver<()>>>);

fn pump(mut from: TcpStream, mut to: TcpStream, limit: Option<Cut>) {
    let mut buf = [0u8; 64 * 1024];
    let mut n_total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((cut, armed, hit, go)) = &limit
            && armed.load(Ordering::SeqCst)
            && n_total + n as u64 >= *cut
        {
            armed.store(false, Ordering::SeqCst);
            let _ = to.write_all(&buf[..(*cut - n_total) as usize]);
            let _ = hit.send(());
            let _ = go.lock().unwrap().recv();
            break;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        n_total += n as u64;
    }
    let _ = from.shutdown(std::net::Shutdown::Both);
    let _ = to.shutdown(std::net::Shutdown::Both);
}

impl Proxy {
    fn start(
        upstream: u16,
        cut_after: u64,
        armed: Arc<AtomicBool>,
    ) -> (Proxy, mpsc::Receiver<()>, mpsc::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (hit_tx, hit_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel();
        let go_rx = Arc::new(std::sync::Mutex::new(go_rx));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    // Upstream dead: hang up, as a load balancer in front of a dead node would.
                    drop(client);
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pump(c2, s2, None));
                let limit =
                    Some((cut_after, Arc::clone(&armed), hit_tx.clone(), Arc::clone(&go_rx)));
                std::thread::spawn(move || pump(server, client, limit));
            }
        });
        (Proxy { port }, hit_rx, go_tx)
    }
}

#[test]
fn s3_server_killed_mid_download_fails_cleanly_then_resumes() {
    let Some(venv) = venv() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let moto_port = free_port();
    let mut moto_proc = moto(&venv, moto_port);
    boto(&venv, moto_port, "s3.create_bucket(Bucket='models')");
    let pkg = synthetic_package(tmp.path(), 24, "1");
    let cache = tmp.path().join("cache");
    run_ok(harken(&cache, moto_port).args([
        "model",
        "push",
        pkg.to_str().unwrap(),
        "s3://models/m",
    ]));

    let armed = Arc::new(AtomicBool::new(true));
    let (proxy, hit, go) = Proxy::start(moto_port, 5 << 20, Arc::clone(&armed));
    let child = harken(&cache, proxy.port)
        .args(["model", "pull", "--json", "s3://models/m"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // 5 MB into model.bin: kill the S3 server, then let the connection drop.
    hit.recv_timeout(std::time::Duration::from_secs(60)).unwrap();
    let _ = moto_proc.0.kill();
    let _ = moto_proc.0.wait();
    go.send(()).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("retrying"), "retries are logged: {err}");
    assert!(err.contains("harken: while resolving model s3://models/m"), "{err}");
    // Nothing partial became visible; the partial download waits in tmp/ for a resume.
    assert!(
        entries(&cache.join("store/blobs/sha256")).len() <= 2,
        "only small files may have landed"
    );
    assert!(entries(&cache.join("store/packages")).is_empty());
    let partial =
        entries(&cache.join("store/tmp")).into_iter().find(|e| e.ends_with(".partial")).unwrap();
    let have = std::fs::metadata(cache.join("store/tmp").join(&partial)).unwrap().len();
    assert!(have >= 4 << 20, "kept {have} bytes");

    // The server comes back (empty: moto keeps objects in memory), the package is pushed again,
    // and the pull resumes from the partial file instead of starting over.
    let _moto2 = moto(&venv, moto_port);
    boto(&venv, moto_port, "s3.create_bucket(Bucket='models')");
    run_ok(harken(&tmp.path().join("push-cache"), moto_port).args([
        "model",
        "push",
        pkg.to_str().unwrap(),
        "s3://models/m",
    ]));
    let r = pull_json(&mut harken(&cache, proxy.port), "s3://models/m");
    let weights = std::fs::metadata(pkg.join("model.bin")).unwrap().len();
    let got = r["downloaded_bytes"].as_u64().unwrap();
    assert!(got < weights - (4 << 20), "resumed: {got} bytes transferred for {weights} of weights");
    run_ok(Command::new(env!("CARGO_BIN_EXE_harken")).args([
        "model",
        "verify",
        r["dir"].as_str().unwrap(),
    ]));
}

#[test]
fn wrong_sha256_never_lands_in_the_cache() {
    let Some(venv) = venv() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (_moto, port) = moto_with_bucket(&venv);
    let pkg = synthetic_package(tmp.path(), 2, "1");
    let cache = tmp.path().join("cache");
    run_ok(harken(&cache, port).args(["model", "push", pkg.to_str().unwrap(), "s3://models/m"]));
    // Replace the weights in the bucket with other bytes of the same size.
    boto(&venv, port, "s3.put_object(Bucket='models', Key='m/model.bin', Body=bytes(2*1024*1024))");
    let err = run_err(harken(&cache, port).args(["model", "pull", "s3://models/m"]));
    assert!(
        err.contains("sha256 is") && err.contains("the manifest says") && err.contains("discarded"),
        "{err}"
    );
    let sha = harken_sha(&pkg, "model.bin");
    assert!(!entries(&cache.join("store/blobs/sha256")).contains(&sha));
    assert!(entries(&cache.join("store/packages")).is_empty());
    assert!(entries(&cache.join("store/tmp")).iter().all(|e| !e.ends_with(".partial")));
}

fn harken_sha(pkg: &Path, file: &str) -> String {
    let m = std::fs::read_to_string(pkg.join("MLmodel")).unwrap();
    let i = m.find(&format!("path: {file}")).unwrap();
    let rest = &m[i..];
    let j = rest.find("sha256: ").unwrap();
    rest[j + 8..j + 72].to_owned()
}

#[test]
fn full_disk_fails_clearly_and_leaves_nothing_behind() {
    let Some(venv) = venv() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (_moto, port) = moto_with_bucket(&venv);
    let pkg = synthetic_package(tmp.path(), 16, "1");
    run_ok(harken(&tmp.path().join("c0"), port).args([
        "model",
        "push",
        pkg.to_str().unwrap(),
        "s3://models/m",
    ]));
    let small = tmp.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=6m", "tmpfs", small.to_str().unwrap()])
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(!ci(), "CI=true: cannot mount a tmpfs for the full-disk test (needs root)");
        eprintln!("\n*** SKIP full-disk test: mount -t tmpfs is not permitted here ***\n");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _u = Unmount(&small);
    let err = run_err(harken(&small, port).args(["model", "pull", "s3://models/m"]));
    assert!(err.contains("no space left on the device holding the cache"), "{err}");
    assert!(entries(&small.join("store/packages")).is_empty());
    assert!(
        entries(&small.join("store/tmp")).iter().all(|e| !e.ends_with(".partial")),
        "the partial file is removed on a full disk"
    );
    assert!(!entries(&small.join("store/blobs/sha256")).contains(&harken_sha(&pkg, "model.bin")));
}

/// Build a tar.gz or zip with Python's standard library (it writes entries Rust's `tar`
/// crate refuses to create, such as `../evil`).
fn python_archive(out: &Path, kind: &str, entries: &str) {
    let script = format!(
        r#"
import io, tarfile, zipfile, sys
out, kind = sys.argv[1], sys.argv[2]
entries = {entries}
if kind == 'tar':
    with tarfile.open(out, 'w:gz') as t:
        for name, data, link in entries:
            ti = tarfile.TarInfo(name)
            if link is not None:
                ti.type = tarfile.SYMTYPE; ti.linkname = link
                t.addfile(ti)
            else:
                ti.size = len(data); t.addfile(ti, io.BytesIO(data))
else:
    with zipfile.ZipFile(out, 'w') as z:
        for name, data, link in entries:
            z.writestr(name, data)
"#
    );
    let ok = Command::new("python3").arg("-c").arg(script).arg(out).arg(kind).status().unwrap();
    assert!(ok.success());
}

#[test]
fn archives_with_escaping_entries_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let cases = [
        (
            "dotdot.tar.gz",
            "tar",
            r#"[("model.bin", b"x", None), ("../evil", b"pwned", None)]"#,
            "contains `..`",
        ),
        ("abs.tar.gz", "tar", r#"[("/tmp/harken-evil-abs", b"pwned", None)]"#, "absolute path"),
        ("link.tar.gz", "tar", r#"[("model.bin", None, "../../etc/passwd")]"#, "points outside"),
        ("dotdot.zip", "zip", r#"[("a/../../evil", b"pwned", None)]"#, "contains `..`"),
        // Each link alone stays inside; writing through the first would not.
        (
            "chain.tar.gz",
            "tar",
            r#"[("x/y", None, ".."), ("x/y/x/y/l", None, "../../.."), ("x/y/x/y/l/evil", b"pwned", None)]"#,
            "beneath a symbolic link",
        ),
    ];
    for (name, kind, spec, want) in cases {
        let archive = tmp.path().join(name);
        python_archive(&archive, kind, spec);
        let err = run_err(harken(&cache, 1).args(["model", "pull", archive.to_str().unwrap()]));
        assert!(err.contains("refusing to extract") && err.contains(want), "{name}: {err}");
    }
    assert!(!tmp.path().join("evil").exists() && !Path::new("/tmp/harken-evil-abs").exists());
    assert!(entries(&cache.join("store/packages")).is_empty());
    assert!(
        entries(&cache.join("store/tmp")).is_empty(),
        "staging dirs are cleaned up: {:?}",
        entries(&cache.join("store/tmp"))
    );
}

#[test]
fn archives_over_http_are_extracted_verified_and_revalidated() {
    let tmp = tempfile::tempdir().unwrap();
    let serve = tmp.path().join("www");
    std::fs::create_dir_all(&serve).unwrap();
    let pkg = synthetic_package(tmp.path(), 3, "1");
    // A package archive (MLmodel inside a top directory) and a raw model (packed on arrival).
    let ok = Command::new("tar")
        .args([
            "czf",
            serve.join("pkg.tar.gz").to_str().unwrap(),
            "-C",
            tmp.path().to_str().unwrap(),
            "pkg-1",
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd {} && python3 -m zipfile -c {} model.bin tokenizer.json config.json",
            tmp.path().join("src-1").display(),
            serve.join("raw.zip").display()
        ))
        .status()
        .unwrap();
    assert!(ok.success());
    let port = free_port();
    let mut child = Command::new("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string()])
        .current_dir(&serve)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_http(port, "/", std::time::Duration::from_secs(20), &mut child);
    let _server = Proc(child);
    let cache = tmp.path().join("cache");

    let url = format!("http://127.0.0.1:{port}/pkg.tar.gz");
    let a = pull_json(&mut harken(&cache, 1), &url);
    assert_eq!(a["cache_hit"], false);
    assert_eq!(a["version"], "1");
    let local = Command::new(env!("CARGO_BIN_EXE_harken"))
        .args(["model", "inspect", "--json", pkg.to_str().unwrap()])
        .output()
        .unwrap();
    let local: serde_json::Value = serde_json::from_slice(&local.stdout).unwrap();
    assert_eq!(a["digest"], local["digest"], "the archive's package keeps its identity");
    let b = pull_json(&mut harken(&cache, 1), &url);
    assert_eq!(
        b["cache_hit"], true,
        "revalidated by Last-Modified/ETag, not downloaded again: {b}"
    );

    let raw = pull_json(&mut harken(&cache, 1), &format!("http://127.0.0.1:{port}/raw.zip"));
    assert_eq!(raw["name"], "raw", "a raw archive's package is named after the archive");
    let again = pull_json(
        &mut harken(&tmp.path().join("cache2"), 1),
        &format!("http://127.0.0.1:{port}/raw.zip"),
    );
    assert_eq!(again["digest"], raw["digest"], "the same raw archive always gets the same digest");
    run_ok(Command::new(env!("CARGO_BIN_EXE_harken")).args([
        "model",
        "verify",
        raw["dir"].as_str().unwrap(),
    ]));
    // Its weights are the same bytes as the first package's: stored once.
    let blobs = entries(&cache.join("store/blobs/sha256"));
    assert_eq!(blobs.len(), 3, "model.bin, tokenizer.json, config.json once each: {blobs:?}");

    let err = run_err(harken(&cache, 1).args([
        "model",
        "pull",
        &format!("http://127.0.0.1:{port}/missing.tar.gz"),
    ]));
    assert!(err.contains("not found"), "{err}");
}

/// Serves the directory `argv[2]` at about 2 MB/s, so a download lasts long enough for a
/// second process to start while the first is still transferring.
const SLOW_HTTP: &str = r#"
import functools, http.server, sys, time
class Slow(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
    def copyfile(self, src, dst):
        while True:
            b = src.read(64 * 1024)
            if not b:
                return
            dst.write(b)
            time.sleep(0.03)
h = functools.partial(Slow, directory=sys.argv[2])
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), h).serve_forever()
"#;

#[test]
fn two_processes_pulling_one_archive_download_it_once() {
    let Some(venv) = venv() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let serve = tmp.path().join("www");
    std::fs::create_dir_all(&serve).unwrap();
    synthetic_package(tmp.path(), 3, "1");
    let archive = serve.join("pkg.tar.gz");
    let ok = Command::new("tar")
        .args(["czf", archive.to_str().unwrap(), "-C", tmp.path().to_str().unwrap(), "pkg-1"])
        .status()
        .unwrap();
    assert!(ok.success());
    let size = std::fs::metadata(&archive).unwrap().len();
    let (_server, port) = python_server(&venv, SLOW_HTTP, &[serve.to_str().unwrap()]);
    let cache = tmp.path().join("cache");
    let url = format!("http://127.0.0.1:{port}/pkg.tar.gz");
    let reports = pull_twice_at_once(&cache, 1, &url);
    assert_eq!(reports[0]["digest"], reports[1]["digest"]);
    let downloaded: u64 = reports.iter().map(|r| r["downloaded_bytes"].as_u64().unwrap()).sum();
    assert_eq!(downloaded, size, "the archive is downloaded once between them: {reports:?}");
    assert!(
        reports.iter().any(|r| r["cache_hit"] == true),
        "the second finds the first one's package: {reports:?}"
    );
    assert!(
        entries(&cache.join("store/tmp")).is_empty(),
        "{:?}",
        entries(&cache.join("store/tmp"))
    );
}
