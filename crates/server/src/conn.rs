//! Connections: the accept loop, how many connections may be open, how long a client may take
//! to send its headers, and how slowly it may send a body.
//!
//! Why not `axum::serve`: it gives hyper no timer, so hyper's header read timeout never runs and
//! a client sending one header byte a minute (slowloris) holds a connection and a task for ever;
//! it also has no connection limit. This loop serves HTTP/1.1 (what SageMaker, load balancers,
//! API Gateway and every client here speak to a container; WebSocket upgrades included) with:
//!
//! - a connection limit: past it the connection gets a fixed 503 with `Retry-After` and is
//!   closed, written without parsing anything, so refusing costs almost nothing;
//! - a header read timeout (hyper's), which also closes keep-alive connections left idle;
//! - a body pace (Apache `mod_reqtimeout`'s rule): a body must arrive within `body_grace` plus
//!   one second per `body_min_rate` bytes received, else 408 (see [`pace_body`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use harken_core::ErrorKind;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, watch};

use crate::{ApiError, AppState, Metrics};

/// Limits below the request: connections, header and body timing.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Connections open at once; past it, a canned 503 and a close.
    pub max_connections: usize,
    /// Longest a client may take to send a request's headers (also the keep-alive idle limit).
    pub header_timeout: Duration,
    /// Time a body may take before the pace applies.
    pub body_grace: Duration,
    /// Slowest accepted body, bytes per second after the grace (each `body_min_rate` bytes
    /// received extend the deadline by one second). 0 turns the pace off.
    pub body_min_rate: u64,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_grace: Duration::from_secs(20),
            body_min_rate: 500,
        }
    }
}

/// The refusal written when every connection slot is taken: fixed bytes, so refusing a
/// connection allocates nothing and runs no handler.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 129\r\n\r\n\
{\"error\":{\"message\":\"server busy: too many open connections; retry shortly\",\"type\":\"server_error\",\"code\":\"overloaded\",\"param\":null}}";

/// Serve the API of `state` on `listener` under its [`ConnLimits`] until `shutdown` completes,
/// then finish the requests in flight (idle connections close at once) and return.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let limits = state.config.conn.clone();
    let metrics: Arc<Metrics> = state.metrics.clone();
    let router = crate::router(state);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Every connection task holds a receiver; `closed()` on the sender resolves when the last
    // one has finished (axum's own graceful-shutdown trick).
    let (stop_tx, stop_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; the listener stays.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.connection_refused();
            tokio::spawn(refuse(stream));
            continue;
        };
        metrics.connections(1);
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let conn = http.serve_connection(TokioIo::new(stream), service).with_upgrades();
        let mut stop = stop_rx.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                // Timeouts, resets and malformed requests end here; hyper has already answered
                // what deserved an answer (400, 408, 431).
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            metrics.connections(-1);
            drop(stop);
        });
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(());
    stop_tx.closed().await;
    Ok(())
}

/// Answer a connection over the limit with [`REFUSAL`] and close it. What the client already
/// sent is drained briefly so the close does not turn into a reset that hides the answer.
async fn refuse(mut stream: tokio::net::TcpStream) {
    let _ = stream.write_all(REFUSAL).await;
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let drain = async {
        let mut left = 64 * 1024usize;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// Middleware: hold every request body to the pace of [`ConnLimits`]; a body that falls behind
/// ends the request with 408 and closes the connection (its unread rest cannot be skipped).
pub(crate) async fn pace_body(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let limits = &s.config.conn;
    if limits.body_min_rate == 0 {
        return next.run(req).await;
    }
    let late = Arc::new(AtomicBool::new(false));
    let (parts, body) = req.into_parts();
    let paced = Paced {
        inner: body,
        started: tokio::time::Instant::now(),
        grace: limits.body_grace,
        rate: limits.body_min_rate,
        received: 0,
        timer: None,
        late: late.clone(),
    };
    let resp = next.run(Request::from_parts(parts, Body::new(paced))).await;
    if late.load(Ordering::Relaxed) {
        s.metrics.body_timeout();
        let mut resp = ApiError {
            kind: ErrorKind::InvalidInput,
            message: format!(
                "the request body arrived too slowly (under {} bytes/s after {} s)",
                limits.body_min_rate,
                limits.body_grace.as_secs()
            ),
            code: Some("body_timeout"),
            status: Some(StatusCode::REQUEST_TIMEOUT),
        }
        .into_response();
        resp.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
        return resp;
    }
    resp
}

/// The error a paced body ends with.
#[derive(Debug, thiserror::Error)]
#[error("request body too slow")]
struct TooSlow;

/// A request body with a deadline that moves one second later per `rate` bytes received.
struct Paced {
    inner: Body,
    started: tokio::time::Instant,
    grace: Duration,
    rate: u64,
    received: u64,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    late: Arc<AtomicBool>,
}

impl Paced {
    fn deadline(&self) -> tokio::time::Instant {
        let earned = Duration::from_secs_f64(self.received as f64 / self.rate as f64);
        self.started + self.grace + earned
    }
}

impl HttpBody for Paced {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.received += data.len() as u64;
                    let deadline = self.deadline();
                    if let Some(t) = self.timer.as_mut() {
                        t.as_mut().reset(deadline);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                let deadline = self.deadline();
                let timer =
                    self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        self.late.store(true, Ordering::Relaxed);
                        Poll::Ready(Some(Err(axum::Error::new(TooSlow))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
