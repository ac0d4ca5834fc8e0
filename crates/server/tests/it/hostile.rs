//! Slow and hostile clients on a real socket: slowloris headers, idle connections, a
//! byte-a-tick upload, the connection limit, request-smuggling shapes and absurd multipart.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use harken_server::{AppState, ConnLimits, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{config, engine, multipart, wav};

/// A server on a loopback port; stopped (gracefully) when dropped.
struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

async fn start(config: ServerConfig) -> Option<Server> {
    let e = engine()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(harken_server::serve(listener, AppState::new(e, config), async {
        let _ = rx.await;
    }));
    Some(Server { addr, stop: Some(tx) })
}

fn limits(f: impl FnOnce(&mut ConnLimits)) -> ServerConfig {
    let mut c = config();
    f(&mut c.conn);
    c
}

/// Everything the server sends until it closes the connection (or `within` passes: a failure).
async fn read_until_closed(sock: &mut TcpStream, within: Duration) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(within, sock.read_to_end(&mut out))
        .await
        .unwrap_or_else(|_| panic!("the server kept the connection open past {within:?}"))
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn slowloris_headers_and_idle_connections_are_closed_at_the_header_timeout() {
    let Some(srv) = start(limits(|l| l.header_timeout = Duration::from_secs(1))).await else {
        return;
    };
    // Idle: connects and sends nothing.
    let mut idle = TcpStream::connect(srv.addr).await.unwrap();
    // Slowloris: a request line, then one header byte every 200 ms for ever.
    let mut slow = TcpStream::connect(srv.addr).await.unwrap();
    slow.write_all(b"POST /invocations HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        for _ in 0..50 {
            if slow.write_all(b"X").await.is_err() {
                return (slow, true);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        (slow, false)
    });
    read_until_closed(&mut idle, Duration::from_secs(5)).await;
    let (mut slow, cut) = trickle.await.unwrap();
    if !cut {
        read_until_closed(&mut slow, Duration::from_secs(1)).await;
    }
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());
    // The server still serves a well-behaved client.
    let mut ok = TcpStream::connect(srv.addr).await.unwrap();
    ok.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let resp = read_until_closed(&mut ok, Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

#[tokio::test]
async fn an_upload_slower_than_the_minimum_rate_gets_408() {
    let Some(srv) = start(limits(|l| {
        l.body_grace = Duration::from_secs(1);
        l.body_min_rate = 500;
    }))
    .await
    else {
        return;
    };
    let mut sock = TcpStream::connect(srv.addr).await.unwrap();
    sock.write_all(
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nContent-Length: 100000\r\n\r\n",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let (mut rd, mut wr) = sock.into_split();
    tokio::spawn(async move {
        // 10 bytes every 100 ms: 100 bytes/s, a fifth of the minimum.
        for _ in 0..100 {
            if wr.write_all(&[0u8; 10]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut out)).await.unwrap().ok();
    let resp = String::from_utf8_lossy(&out);
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
    assert!(resp.contains("\"code\":\"body_timeout\""), "{resp}");
    // Grace 1 s plus what the bytes earned (~0.1 s): well before the upload would end (10 s).
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());

    // An upload at full speed passes the same pace.
    let body = wav();
    let mut sock = TcpStream::connect(srv.addr).await.unwrap();
    let head = format!(
        "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nAccept: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&body).await.unwrap();
    let resp = read_until_closed(&mut sock, Duration::from_secs(60)).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

#[tokio::test]
async fn past_the_connection_limit_a_connection_gets_503_and_the_slot_comes_back() {
    let Some(srv) = start(limits(|l| l.max_connections = 2)).await else { return };
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        // A keep-alive request proves the connection is accepted and holds its slot.
        s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        held.push(s);
    }
    let mut third = TcpStream::connect(srv.addr).await.unwrap();
    third.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let resp = read_until_closed(&mut third, Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    assert!(resp.contains("retry-after: 1"), "{resp}");
    let body = resp.split("\r\n\r\n").nth(1).unwrap();
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["error"]["code"], "overloaded", "{resp}");

    drop(held.pop());
    // The slot is released when the server notices the close; poll briefly.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let resp = read_until_closed(&mut s, Duration::from_secs(5)).await;
        if resp.starts_with("HTTP/1.1 200") {
            assert!(resp.contains("harken_connections_refused_total 1"), "{resp}");
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot never came back: {resp}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn request_smuggling_shapes_are_refused_or_neutralised() {
    let Some(srv) = start(config()).await else { return };
    let exchange = |raw: &'static [u8]| async move {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(raw).await.unwrap();
        read_until_closed(&mut s, Duration::from_secs(10)).await
    };
    // Content-Length and Transfer-Encoding together: the chunked framing wins (RFC 9112 6.3)
    // and the connection closes after the answer, so the "smuggled" request is never served.
    let resp = exchange(
        b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /ping HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(resp.matches("HTTP/1.1 ").count(), 1, "{resp}");
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    // Two different Content-Lengths: 400, closed.
    let resp = exchange(
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabcGET /ping HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert_eq!(resp.matches("HTTP/1.1 ").count(), 1, "{resp}");
    // A transfer coding other than chunked last: 400.
    let resp =
        exchange(b"POST /invocations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc")
            .await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    // Whitespace before the colon (a classic parser-disagreement shape): 400.
    let resp =
        exchange(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length : 3\r\n\r\nabc").await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    // Transfer-Encoding on HTTP/1.0, which has no chunked framing: 400.
    let resp = exchange(
        b"POST /invocations HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 400") || resp.starts_with("HTTP/1.0 400"), "{resp}");
}

#[tokio::test]
async fn absurd_multipart_bodies_get_4xx_quickly() {
    let Some(e) = engine() else { return };
    let app = harken_server::router(AppState::new(e, config()));
    // 10,000 tiny parts.
    let mut body = Vec::new();
    for i in 0..10_000 {
        body.extend_from_slice(
            format!("--b\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nx\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(b"--b--\r\n");
    let started = Instant::now();
    let (status, _, text) = super::send(
        &app,
        super::post("/v1/audio/transcriptions", "multipart/form-data; boundary=b", body),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("more than 256 multipart fields"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A part name larger than the body limit (2 MiB here): 413, not an allocation of the rest.
    let mut body = b"--b\r\nContent-Disposition: form-data; name=\"".to_vec();
    body.resize(body.len() + 3 * 1024 * 1024, b'n');
    body.extend_from_slice(b"\"\r\n\r\nx\r\n--b--\r\n");
    let (status, _, text) = super::send(
        &app,
        super::post("/v1/audio/transcriptions", "multipart/form-data; boundary=b", body),
    )
    .await;
    assert_eq!(status, 413, "{text}");

    // A 1 MiB part name under the limit: an unknown field, ignored; the request still needs
    // its file.
    let mut body = b"--b\r\nContent-Disposition: form-data; name=\"".to_vec();
    body.resize(body.len() + 1024 * 1024, b'n');
    body.extend_from_slice(b"\"\r\n\r\nx\r\n--b--\r\n");
    let (status, _, text) = super::send(
        &app,
        super::post("/v1/audio/transcriptions", "multipart/form-data; boundary=b", body),
    )
    .await;
    assert_eq!(status, 400, "{text}");

    // Many hot-word parts under the field limit still work as a list (and its own limit).
    let hot: Vec<(&str, &str)> = (0..101).map(|_| ("hotwords[]", "tuesday")).collect();
    let (ctype, body) = multipart(&hot, Some(&wav()));
    let (status, _, text) =
        super::send(&app, super::post("/v1/audio/transcriptions", &ctype, body)).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("at most 100"), "{text}");
}
