//! Live transcription over WebSocket: `GET /v1/realtime` speaks OpenAI's Realtime API in
//! transcription mode (both the GA dialect — `session.update` with `session.type:
//! "transcription"`, `audio/pcm` — and the beta one — `OpenAI-Beta: realtime=v1`,
//! `transcription_session.update`, `pcm16`), and `GET /v1/listen` is the plain mode: binary PCM
//! frames in, `{"type": "partial" | "final", ...}` JSON out.
//!
//! Each connection owns one `harken_stream::Stream` on a dedicated blocking thread; the socket
//! task decodes client events and forwards audio and commands to it. Limits: at most
//! `max_streams` at once (then an error event and close code 1013), a maximum session length,
//! an idle timeout, a cap on audio queued behind the recogniser (a stream that falls behind is
//! told so and closed, never silently late), and 15 MiB per client event.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine as _;
use harken_audio::RawFormat;
use harken_engine::TranscribeOptions;
use harken_stream::{AudioInput, Event, Stream, StreamOptions};
use harken_vad::EndpointOptions;
use serde_json::{Value, json};

use crate::AppState;

/// Limits of live transcription.
#[derive(Debug, Clone)]
pub struct StreamLimits {
    /// Streams open at once.
    pub max_streams: usize,
    /// Longest session.
    pub max_session: Duration,
    /// A session with no client event for this long is closed.
    pub idle_timeout: Duration,
    /// Audio seconds allowed to wait for the recogniser before the stream is closed as behind.
    pub max_backlog_s: f64,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            max_streams: 4,
            max_session: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(60),
            max_backlog_s: 20.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Dialect {
    Ga,
    Beta,
    Plain,
}

/// The session as the client configured it.
#[derive(Debug, Clone)]
struct Session {
    id: String,
    format: RawFormat,
    rate: u32,
    language: Option<String>,
    prompt: Option<String>,
    model: String,
    turn: Option<EndpointOptions>,
}

impl Session {
    fn new(dialect: Dialect, q: &ListenQuery) -> Self {
        let rate = match dialect {
            Dialect::Plain => q.rate.unwrap_or(16_000),
            _ => 24_000,
        };
        let format = match q.format.as_deref() {
            Some("mulaw" | "pcmu" | "g711_ulaw") => RawFormat::Mulaw,
            Some("alaw" | "pcma" | "g711_alaw") => RawFormat::Alaw,
            _ => RawFormat::Pcm16,
        };
        Session {
            id: format!("sess_{:016x}", rand_id()),
            format,
            rate,
            language: q.language.clone(),
            prompt: None,
            model: q.model.clone().unwrap_or_else(|| "whisper-1".into()),
            turn: Some(EndpointOptions::default()),
        }
    }

    fn turn_json(&self) -> Value {
        match &self.turn {
            None => Value::Null,
            Some(t) => json!({"type": "server_vad", "threshold": t.threshold,
                "prefix_padding_ms": t.prefix_padding_ms, "silence_duration_ms": t.silence_duration_ms}),
        }
    }

    fn transcription_json(&self) -> Value {
        json!({"model": self.model, "language": self.language, "prompt": self.prompt.clone().unwrap_or_default()})
    }

    fn json(&self, dialect: Dialect) -> Value {
        match dialect {
            Dialect::Beta => json!({
                "id": self.id, "object": "realtime.transcription_session",
                "input_audio_format": match self.format { RawFormat::Pcm16 => "pcm16", RawFormat::Mulaw => "g711_ulaw", RawFormat::Alaw => "g711_alaw" },
                "input_audio_transcription": self.transcription_json(),
                "turn_detection": self.turn_json(),
                "input_audio_noise_reduction": null, "include": null, "modalities": ["text"],
            }),
            _ => {
                let format = match self.format {
                    RawFormat::Pcm16 => json!({"type": "audio/pcm", "rate": self.rate}),
                    RawFormat::Mulaw => json!({"type": "audio/pcmu"}),
                    RawFormat::Alaw => json!({"type": "audio/pcma"}),
                };
                json!({
                    "type": "transcription", "id": self.id, "object": "realtime.transcription_session",
                    "audio": {"input": {"format": format, "transcription": self.transcription_json(),
                        "turn_detection": self.turn_json(), "noise_reduction": null}},
                    "include": null,
                })
            }
        }
    }

    /// Applies a `session.update` (GA) or `transcription_session.update` (beta) body.
    fn update(&mut self, dialect: Dialect, s: &Value) -> Result<(), String> {
        let (format, transcription, turn) = if dialect == Dialect::Beta {
            (
                s.get("input_audio_format").cloned(),
                s.get("input_audio_transcription"),
                s.get("turn_detection"),
            )
        } else {
            if let Some(t) = s.get("type").and_then(Value::as_str)
                && t != "transcription"
            {
                return Err(format!(
                    "session.type {t:?} is not supported: this server transcribes (use \"transcription\")"
                ));
            }
            let input = s.pointer("/audio/input");
            (
                input.and_then(|i| i.get("format")).cloned(),
                input.and_then(|i| i.get("transcription")),
                input.and_then(|i| i.get("turn_detection")),
            )
        };
        if let Some(f) = format {
            let (name, rate) = match &f {
                Value::String(s) => (s.clone(), None),
                Value::Object(o) => (
                    o.get("type").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    o.get("rate").and_then(Value::as_u64),
                ),
                _ => return Err("audio format must be a string or an object".into()),
            };
            let (format, default_rate) = match name.as_str() {
                "pcm16" | "audio/pcm" => (RawFormat::Pcm16, 24_000),
                "g711_ulaw" | "audio/pcmu" => (RawFormat::Mulaw, 8_000),
                "g711_alaw" | "audio/pcma" => (RawFormat::Alaw, 8_000),
                other => {
                    return Err(format!(
                        "audio format {other:?} is not supported (pcm16 / audio/pcm, g711_ulaw / audio/pcmu, g711_alaw / audio/pcma)"
                    ));
                }
            };
            let rate = rate.map_or(default_rate, |r| r as u32);
            if !(8_000..=48_000).contains(&rate) {
                return Err(format!("audio rate {rate} Hz is outside 8000–48000"));
            }
            self.format = format;
            self.rate = rate;
        }
        if let Some(t) = transcription.filter(|t| !t.is_null()) {
            if let Some(m) = t.get("model").and_then(Value::as_str) {
                self.model = m.to_owned();
            }
            self.language = t
                .get("language")
                .and_then(Value::as_str)
                .filter(|l| !l.is_empty())
                .map(str::to_owned);
            self.prompt = t
                .get("prompt")
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty())
                .map(str::to_owned);
        }
        if let Some(turn) = turn {
            self.turn = match turn {
                Value::Null => None,
                t => {
                    let kind = t.get("type").and_then(Value::as_str).unwrap_or("server_vad");
                    if kind != "server_vad" {
                        return Err(format!(
                            "turn_detection.type {kind:?} is not supported (server_vad, or null for manual commits)"
                        ));
                    }
                    let d = EndpointOptions::default();
                    let threshold = t
                        .get("threshold")
                        .and_then(Value::as_f64)
                        .map_or(d.threshold, |v| v as f32);
                    if !(threshold > 0.0 && threshold < 1.0) {
                        return Err(format!(
                            "turn_detection.threshold {threshold} must be between 0 and 1"
                        ));
                    }
                    let ms = |k: &str, dv: u32| {
                        t.get(k).and_then(Value::as_u64).map_or(dv, |v| v.min(10_000) as u32)
                    };
                    Some(EndpointOptions {
                        threshold,
                        neg_threshold: None,
                        prefix_padding_ms: ms("prefix_padding_ms", d.prefix_padding_ms),
                        silence_duration_ms: ms("silence_duration_ms", d.silence_duration_ms),
                    })
                }
            };
        }
        Ok(())
    }
}

/// A random session id: std's hasher keys are drawn from the OS for each `RandomState`.
fn rand_id() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0u8)
}

/// Query of the WebSocket routes.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ListenQuery {
    model: Option<String>,
    /// Plain mode: sample rate of the PCM frames (default 16000).
    rate: Option<u32>,
    /// Plain mode: pcm16 (default), mulaw, alaw.
    format: Option<String>,
    language: Option<String>,
}

pub(crate) async fn realtime(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListenQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let beta = headers
        .get_all("openai-beta")
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains("realtime=v1")));
    let dialect = if beta { Dialect::Beta } else { Dialect::Ga };
    ws.max_message_size(16 << 20).on_upgrade(move |socket| session(s, socket, dialect, q))
}

pub(crate) async fn listen(
    State(s): State<AppState>,
    Query(q): Query<ListenQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.max_message_size(16 << 20).on_upgrade(move |socket| session(s, socket, Dialect::Plain, q))
}

/// What the socket task tells the recogniser thread.
enum Cmd {
    Audio(Vec<u8>),
    Commit,
    Clear,
    Configure(Session),
}

struct Out {
    dialect: Dialect,
    next: u64,
}

impl Out {
    fn event(&mut self, mut v: Value) -> Message {
        self.next += 1;
        if self.dialect != Dialect::Plain {
            v["event_id"] = json!(format!("event_{:08}", self.next));
        }
        Message::Text(Utf8Bytes::from(v.to_string()))
    }

    fn error(&mut self, code: &str, message: &str, client_event: Option<&str>) -> Message {
        let mut e = json!({"type": "invalid_request_error", "code": code, "message": message, "param": null, "event_id": client_event});
        if matches!(code, "server_error" | "too_many_streams" | "stream_behind") {
            e["type"] = json!("server_error");
        }
        self.event(json!({"type": "error", "error": e}))
    }
}

fn item_id(session: &str, item: u64) -> String {
    format!("item_{}_{item:04}", &session[5..13.min(session.len())])
}

/// Events of the recogniser in the session's dialect.
fn render(dialect: Dialect, session: &str, e: &Event, partial: &mut String) -> Value {
    let item = |n: u64| item_id(session, n);
    if dialect == Dialect::Plain {
        return match e {
            Event::SpeechStarted { item, at_ms } => {
                json!({"type": "speech_started", "item": item, "at_ms": at_ms})
            }
            Event::SpeechStopped { item, at_ms } => {
                json!({"type": "speech_stopped", "item": item, "at_ms": at_ms})
            }
            Event::Committed { item } => json!({"type": "committed", "item": item}),
            Event::Delta { item, text } => {
                partial.push_str(text);
                json!({"type": "partial", "item": item, "text": partial.trim()})
            }
            Event::Completed { item, text, audio_s } => {
                partial.clear();
                json!({"type": "final", "item": item, "text": text, "audio_seconds": audio_s})
            }
        };
    }
    match e {
        Event::SpeechStarted { item: n, at_ms } => {
            json!({"type": "input_audio_buffer.speech_started", "audio_start_ms": at_ms, "item_id": item(*n)})
        }
        Event::SpeechStopped { item: n, at_ms } => {
            json!({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": at_ms, "item_id": item(*n)})
        }
        Event::Committed { item: n } => json!({"type": "input_audio_buffer.committed",
            "previous_item_id": n.checked_sub(1).map(item), "item_id": item(*n)}),
        Event::Delta { item: n, text } => {
            json!({"type": "conversation.item.input_audio_transcription.delta",
            "item_id": item(*n), "content_index": 0, "delta": text})
        }
        Event::Completed { item: n, text, audio_s } => {
            json!({"type": "conversation.item.input_audio_transcription.completed",
            "item_id": item(*n), "content_index": 0, "transcript": text,
            "usage": {"type": "duration", "seconds": audio_s}})
        }
    }
}

fn stream_options(s: &Session) -> StreamOptions {
    StreamOptions {
        turn_detection: s.turn,
        decode: TranscribeOptions {
            language: s.language.clone(),
            initial_prompt: s.prompt.clone(),
            ..TranscribeOptions::default()
        },
        ..StreamOptions::default()
    }
}

/// The recogniser thread: owns the stream, turns commands into events.
fn recognise(
    engine: Arc<harken_engine::Engine>,
    session: Session,
    rx: std::sync::mpsc::Receiver<Cmd>,
    tx: tokio::sync::mpsc::UnboundedSender<Result<Event, String>>,
    backlog: Arc<AtomicU64>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let vad = engine.vad().map(|v| &**v);
    let open = |s: &Session| -> Result<(Stream<'_>, AudioInput), String> {
        let stream = Stream::new(&engine, vad, stream_options(s)).map_err(|e| e.to_string())?;
        let input = AudioInput::new(s.format, s.rate).map_err(|e| e.to_string())?;
        Ok((stream, input))
    };
    let (mut stream, mut input) = match open(&session) {
        Ok(v) => v,
        Err(e) => {
            let _ = tx.send(Err(e));
            return;
        }
    };
    let seconds_per_byte =
        |s: &Session| 1.0 / (f64::from(s.rate) * s.format.bytes_per_sample() as f64);
    let mut per_byte = seconds_per_byte(&session);
    while let Ok(cmd) = rx.recv() {
        let result = match cmd {
            Cmd::Audio(bytes) => {
                let secs = bytes.len() as f64 * per_byte;
                let t = Instant::now();
                let r = input
                    .push(&bytes)
                    .map_err(|e| e.to_string())
                    .and_then(|samples| stream.push(&samples).map_err(|e| e.to_string()));
                backlog.fetch_sub((secs * 1e6) as u64, Ordering::Relaxed);
                metrics.observe_stream_chunk(secs, t.elapsed().as_secs_f64());
                r
            }
            Cmd::Commit => stream.commit().map_err(|e| e.to_string()),
            Cmd::Clear => {
                stream.clear();
                Ok(Vec::new())
            }
            Cmd::Configure(s) => match open(&s) {
                Ok((st, inp)) => {
                    per_byte = seconds_per_byte(&s);
                    stream = st;
                    input = inp;
                    Ok(Vec::new())
                }
                Err(e) => Err(e),
            },
        };
        let failed = match result {
            Ok(events) => events.into_iter().any(|e| tx.send(Ok(e)).is_err()),
            Err(e) => tx.send(Err(e)).is_err(),
        };
        if failed {
            return;
        }
    }
    // The socket closed: finish what was heard, for a client still reading (plain mode's
    // half-close), then stop.
    if let Ok(events) = stream.finish() {
        for e in events {
            let _ = tx.send(Ok(e));
        }
    }
}

async fn session(s: AppState, mut socket: WebSocket, dialect: Dialect, q: ListenQuery) {
    let mut out = Out { dialect, next: 0 };
    let limits = s.config.streams.clone();
    let Ok(slot) = s.streams.clone().try_acquire_owned() else {
        let msg = out.error(
            "too_many_streams",
            &format!(
                "{} live streams are open, the most this server takes; retry later",
                limits.max_streams
            ),
            None,
        );
        let _ = socket.send(msg).await;
        let _ = socket
            .send(Message::Close(Some(CloseFrame {
                code: 1013,
                reason: "too many streams".into(),
            })))
            .await;
        s.metrics.stream_refused();
        return;
    };
    s.metrics.streams(1);
    let started = Instant::now();
    let mut session = Session::new(dialect, &q);
    if dialect != Dialect::Plain {
        let created = if dialect == Dialect::Beta {
            "transcription_session.created"
        } else {
            "session.created"
        };
        let msg = out.event(json!({"type": created, "session": session.json(dialect)}));
        if socket.send(msg).await.is_err() {
            s.metrics.streams(-1);
            return;
        }
    }
    let (cmd_tx, cmd_rx) = std::sync::mpsc::channel::<Cmd>();
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let backlog = Arc::new(AtomicU64::new(0));
    let worker = {
        let (engine, session, backlog, metrics) =
            (s.engine.clone(), session.clone(), backlog.clone(), s.metrics.clone());
        std::thread::Builder::new()
            .name("harken-stream".into())
            .spawn(move || recognise(engine, session, cmd_rx, ev_tx, backlog, metrics))
    };
    if worker.is_err() {
        let msg = out.error("server_error", "could not start the recogniser", None);
        let _ = socket.send(msg).await;
        s.metrics.streams(-1);
        return;
    }
    let mut partial = String::new();
    let deadline = tokio::time::Instant::now() + limits.max_session;
    let reason: &str = loop {
        let idle = tokio::time::sleep(limits.idle_timeout);
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                let msg = out.error("session_expired", &format!("the session reached its maximum length of {} s", limits.max_session.as_secs()), None);
                let _ = socket.send(msg).await;
                break "session expired";
            }
            _ = idle => {
                let msg = out.error("idle_timeout", &format!("no client event for {} s", limits.idle_timeout.as_secs()), None);
                let _ = socket.send(msg).await;
                break "idle";
            }
            ev = ev_rx.recv() => {
                let Some(ev) = ev else { break "recogniser stopped" };
                let msg = match ev {
                    Ok(e) => {
                        if let Event::Completed { .. } = e {
                            s.metrics.stream_utterance();
                        }
                        out.event(render(dialect, &session.id, &e, &mut partial))
                    }
                    Err(e) => out.error("server_error", &e, None),
                };
                if socket.send(msg).await.is_err() { break "client gone"; }
            }
            msg = socket.recv() => {
                let msg = match msg {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        // tungstenite's capacity error: a frame or message over the limit.
                        let text = e.to_string();
                        let big = text.contains("too long") || text.contains("apacity") || text.contains("limit");
                        let (code, reason) = if big { (1009, "message too big (limit 16 MiB)") } else { (1002, "protocol error") };
                        tracing::info!(error = %text, "closing a live stream on a bad frame");
                        let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                        break "bad frame";
                    }
                    None => break "client gone",
                };
                let reply = match msg {
                    Message::Binary(b) => queue_audio(&cmd_tx, &backlog, &session, &limits, b.to_vec(), &mut out),
                    Message::Text(t) => {
                        if dialect == Dialect::Plain {
                            match t.trim() {
                                "commit" => { let _ = cmd_tx.send(Cmd::Commit); None }
                                "clear" => { let _ = cmd_tx.send(Cmd::Clear); None }
                                other => Some(out.error("invalid_event", &format!("plain mode takes binary PCM frames and the text commands \"commit\" and \"clear\", not {:?}", truncate(other)), None)),
                            }
                        } else {
                            client_event(&t, dialect, &mut session, &cmd_tx, &backlog, &limits, &mut out)
                        }
                    }
                    Message::Close(_) => break "client closed",
                    _ => None,
                };
                if let Some(r) = reply {
                    let fatal = r.to_text().is_ok_and(|t| t.contains("\"stream_behind\""));
                    if socket.send(r).await.is_err() { break "client gone"; }
                    if fatal { break "behind"; }
                }
            }
        }
    };
    drop(cmd_tx);
    // Plain clients may half-close and still read the last final; give the recogniser a moment.
    if reason == "client closed" || reason == "client gone" {
        while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(10), ev_rx.recv()).await {
            let Ok(e) = ev else { break };
            let msg = out.event(render(dialect, &session.id, &e, &mut partial));
            if socket.send(msg).await.is_err() {
                break;
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
    tracing::info!(session = %session.id, reason, seconds = started.elapsed().as_secs_f64(), "stream closed");
    s.metrics.streams(-1);
    drop(slot);
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

fn queue_audio(
    cmd_tx: &std::sync::mpsc::Sender<Cmd>,
    backlog: &AtomicU64,
    session: &Session,
    limits: &StreamLimits,
    bytes: Vec<u8>,
    out: &mut Out,
) -> Option<Message> {
    let secs =
        bytes.len() as f64 / (f64::from(session.rate) * session.format.bytes_per_sample() as f64);
    let queued = backlog.fetch_add((secs * 1e6) as u64, Ordering::Relaxed) as f64 / 1e6 + secs;
    if queued > limits.max_backlog_s {
        return Some(out.error(
            "stream_behind",
            &format!("{queued:.1} s of audio are waiting for the recogniser (limit {} s): this server cannot keep up with this stream", limits.max_backlog_s),
            None,
        ));
    }
    let _ = cmd_tx.send(Cmd::Audio(bytes));
    None
}

#[allow(clippy::too_many_arguments)]
fn client_event(
    text: &str,
    dialect: Dialect,
    session: &mut Session,
    cmd_tx: &std::sync::mpsc::Sender<Cmd>,
    backlog: &AtomicU64,
    limits: &StreamLimits,
    out: &mut Out,
) -> Option<Message> {
    let v: Value = match serde_json::from_str(text) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return Some(out.error("invalid_json", "a client event must be a JSON object", None));
        }
        Err(e) => {
            return Some(out.error("invalid_json", &format!("the event is not JSON: {e}"), None));
        }
    };
    let id = v.get("event_id").and_then(Value::as_str).map(str::to_owned);
    let id = id.as_deref();
    let Some(kind) = v.get("type").and_then(Value::as_str) else {
        return Some(out.error("missing_type", "the event has no \"type\"", id));
    };
    match kind {
        "session.update" | "transcription_session.update" => {
            let want = if dialect == Dialect::Beta {
                "transcription_session.update"
            } else {
                "session.update"
            };
            if kind != want {
                return Some(out.error("wrong_dialect", &format!("{kind} is the other API version's event; this connection speaks {} (send {want})", if dialect == Dialect::Beta { "the beta API (OpenAI-Beta: realtime=v1)" } else { "the GA API" }), id));
            }
            let body = v.get("session").cloned().unwrap_or(Value::Null);
            let mut next = session.clone();
            if let Err(e) = next.update(dialect, &body) {
                return Some(out.error("invalid_value", &e, id));
            }
            *session = next;
            let _ = cmd_tx.send(Cmd::Configure(session.clone()));
            let updated = if dialect == Dialect::Beta {
                "transcription_session.updated"
            } else {
                "session.updated"
            };
            Some(out.event(json!({"type": updated, "session": session.json(dialect)})))
        }
        "input_audio_buffer.append" => {
            let Some(audio) = v.get("audio").and_then(Value::as_str) else {
                return Some(out.error(
                    "missing_audio",
                    "input_audio_buffer.append needs \"audio\": base64 of the audio bytes",
                    id,
                ));
            };
            match base64::engine::general_purpose::STANDARD.decode(audio) {
                Ok(bytes) => queue_audio(cmd_tx, backlog, session, limits, bytes, out),
                Err(e) => {
                    Some(out.error("invalid_audio", &format!("\"audio\" is not base64: {e}"), id))
                }
            }
        }
        "input_audio_buffer.commit" => {
            let _ = cmd_tx.send(Cmd::Commit);
            None
        }
        "input_audio_buffer.clear" => {
            let _ = cmd_tx.send(Cmd::Clear);
            Some(out.event(json!({"type": "input_audio_buffer.cleared"})))
        }
        other => Some(out.error(
            "unknown_event",
            &format!("unknown or unsupported client event type {:?}", truncate(other)),
            id,
        )),
    }
}

/// Feed client events (text frames) through the protocol as a session does, audio conversion
/// included, without an engine: the fuzzing entry point. Returns the events answered.
#[cfg(feature = "fuzzing")]
pub(crate) fn replay_client_events(frames: &[&str], beta: bool) -> Vec<Message> {
    let dialect = if beta { Dialect::Beta } else { Dialect::Ga };
    let mut session = Session::new(dialect, &ListenQuery::default());
    let (cmd_tx, cmd_rx) = std::sync::mpsc::channel();
    let backlog = AtomicU64::new(0);
    let limits = StreamLimits::default();
    let mut out = Out { dialect, next: 0 };
    let mut answers = Vec::new();
    let mut input = AudioInput::new(session.format, session.rate).ok();
    for text in frames {
        answers.extend(client_event(
            text,
            dialect,
            &mut session,
            &cmd_tx,
            &backlog,
            &limits,
            &mut out,
        ));
        while let Ok(cmd) = cmd_rx.try_recv() {
            match cmd {
                Cmd::Audio(bytes) => {
                    if let Some(i) = input.as_mut() {
                        let _ = i.push(&bytes);
                    }
                }
                Cmd::Configure(s) => input = AudioInput::new(s.format, s.rate).ok(),
                Cmd::Commit | Cmd::Clear => {}
            }
        }
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ga_session_update_sets_format_language_and_turn_detection() {
        let mut s = Session::new(Dialect::Ga, &ListenQuery::default());
        let body = json!({"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcmu"}, "transcription": {"model": "whisper-1", "language": "de"},
            "turn_detection": {"type": "server_vad", "threshold": 0.6, "silence_duration_ms": 800}}}});
        s.update(Dialect::Ga, &body).expect("valid");
        assert_eq!((s.format, s.rate, s.language.as_deref()), (RawFormat::Mulaw, 8000, Some("de")));
        let t = s.turn.expect("vad");
        assert_eq!((t.threshold, t.silence_duration_ms, t.prefix_padding_ms), (0.6, 800, 300));
        s.update(Dialect::Ga, &json!({"audio": {"input": {"turn_detection": null}}}))
            .expect("valid");
        assert!(s.turn.is_none());
    }

    #[test]
    fn beta_update_and_bad_values() {
        let mut s = Session::new(Dialect::Beta, &ListenQuery::default());
        s.update(Dialect::Beta, &json!({"input_audio_format": "g711_alaw"})).expect("valid");
        assert_eq!(s.format, RawFormat::Alaw);
        assert!(s.update(Dialect::Beta, &json!({"input_audio_format": "mp3"})).is_err());
        assert!(s.update(Dialect::Ga, &json!({"type": "realtime"})).is_err());
        assert!(
            s.update(
                Dialect::Ga,
                &json!({"audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}})
            )
            .is_err()
        );
        assert!(
            s.update(
                Dialect::Ga,
                &json!({"audio": {"input": {"format": {"type": "audio/pcm", "rate": 1000}}}})
            )
            .is_err()
        );
    }
}
