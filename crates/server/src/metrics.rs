//! Prometheus text-format metrics, kept with atomics and one small mutex.
//!
//! Hand-written: the handful of series the server exposes do not justify a metrics framework
//! and its exporter in a binary that also ships to Lambda.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

const BUCKETS_S: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS_S.len()],
    count: u64,
    sum: f64,
}

/// Server metrics.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    audio_ms: AtomicU64,
    in_flight: AtomicI64,
    queued: AtomicI64,
    queued_audio_ms: AtomicI64,
    in_flight_audio_ms: AtomicI64,
    load_ms: AtomicU64,
    streams: AtomicI64,
    streams_refused: AtomicU64,
    stream_audio_us: AtomicU64,
    stream_busy_us: AtomicU64,
    stream_utterances: AtomicU64,
    connections: AtomicI64,
    connections_refused: AtomicU64,
    body_timeouts: AtomicU64,
}

impl Metrics {
    pub(crate) fn set_model_load_seconds(&self, s: f64) {
        self.load_ms.store((s * 1000.0) as u64, Ordering::Relaxed);
    }

    pub(crate) fn observe(&self, route: &str, status: u16, seconds: f64) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((route.to_owned(), status)).or_default() += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            let h = l.entry(route.to_owned()).or_default();
            for (i, b) in BUCKETS_S.iter().enumerate() {
                if seconds <= *b {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += seconds;
        }
    }

    pub(crate) fn add_audio_seconds(&self, s: f64) {
        self.audio_ms.fetch_add((s * 1000.0) as u64, Ordering::Relaxed);
    }

    pub(crate) fn streams(&self, delta: i64) {
        self.streams.fetch_add(delta, Ordering::Relaxed);
    }

    pub(crate) fn stream_refused(&self) {
        self.streams_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// One piece of live audio, `audio_s` long, took `busy_s` of recogniser time.
    pub(crate) fn observe_stream_chunk(&self, audio_s: f64, busy_s: f64) {
        self.stream_audio_us.fetch_add((audio_s * 1e6) as u64, Ordering::Relaxed);
        self.stream_busy_us.fetch_add((busy_s * 1e6) as u64, Ordering::Relaxed);
    }

    pub(crate) fn stream_utterance(&self) {
        self.stream_utterances.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connections(&self, delta: i64) {
        self.connections.fetch_add(delta, Ordering::Relaxed);
    }

    pub(crate) fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn body_timeout(&self) {
        self.body_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn queued(&self, delta: i64) {
        self.queued.fetch_add(delta, Ordering::Relaxed);
    }

    /// Audio seconds of requests waiting for a worker (`delta` signed).
    pub(crate) fn queued_audio(&self, delta_s: f64) {
        self.queued_audio_ms.fetch_add((delta_s * 1000.0).round() as i64, Ordering::Relaxed);
    }

    /// Audio seconds of requests being transcribed (`delta` signed).
    pub(crate) fn in_flight_audio(&self, delta_s: f64) {
        self.in_flight_audio_ms.fetch_add((delta_s * 1000.0).round() as i64, Ordering::Relaxed);
    }

    pub(crate) fn in_flight(&self, delta: i64) {
        self.in_flight.fetch_add(delta, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "# HELP harken_requests_total Requests by route and status.\n# TYPE harken_requests_total counter"
        );
        if let Ok(r) = self.requests.lock() {
            for ((route, status), n) in r.iter() {
                let _ = writeln!(
                    o,
                    "harken_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP harken_request_duration_seconds Request latency.\n# TYPE harken_request_duration_seconds histogram"
        );
        if let Ok(l) = self.latency.lock() {
            for (route, h) in l.iter() {
                for (b, c) in BUCKETS_S.iter().zip(h.counts) {
                    let _ = writeln!(
                        o,
                        "harken_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {c}"
                    );
                }
                let _ = writeln!(
                    o,
                    "harken_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    o,
                    "harken_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    o,
                    "harken_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count
                );
            }
        }
        let gauge = |o: &mut String, name: &str, help: &str, kind: &str, v: f64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        gauge(
            &mut o,
            "harken_audio_seconds_total",
            "Audio seconds transcribed.",
            "counter",
            self.audio_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        );
        let streams = [
            (
                "harken_streams_active",
                "Live transcription streams open.",
                "gauge",
                self.streams.load(Ordering::Relaxed) as f64,
            ),
            (
                "harken_streams_refused_total",
                "Live streams refused at the limit.",
                "counter",
                self.streams_refused.load(Ordering::Relaxed) as f64,
            ),
            (
                "harken_stream_audio_seconds_total",
                "Live audio seconds received.",
                "counter",
                self.stream_audio_us.load(Ordering::Relaxed) as f64 / 1e6,
            ),
            (
                "harken_stream_busy_seconds_total",
                "Recogniser seconds spent on live audio (busy / audio is the real-time factor).",
                "counter",
                self.stream_busy_us.load(Ordering::Relaxed) as f64 / 1e6,
            ),
            (
                "harken_stream_utterances_total",
                "Live utterances completed.",
                "counter",
                self.stream_utterances.load(Ordering::Relaxed) as f64,
            ),
        ];
        let connections = [
            (
                "harken_connections_open",
                "HTTP connections open.",
                "gauge",
                self.connections.load(Ordering::Relaxed) as f64,
            ),
            (
                "harken_connections_refused_total",
                "Connections answered 503 and closed at the connection limit.",
                "counter",
                self.connections_refused.load(Ordering::Relaxed) as f64,
            ),
            (
                "harken_body_timeouts_total",
                "Requests ended with 408 because the body arrived too slowly.",
                "counter",
                self.body_timeouts.load(Ordering::Relaxed) as f64,
            ),
        ];
        for (name, help, kind, v) in streams.into_iter().chain(connections) {
            gauge(&mut o, name, help, kind, v);
        }
        gauge(
            &mut o,
            "harken_in_flight",
            "Transcriptions running.",
            "gauge",
            self.in_flight.load(Ordering::Relaxed) as f64,
        );
        gauge(
            &mut o,
            "harken_queue_depth",
            "Requests waiting for a worker.",
            "gauge",
            self.queued.load(Ordering::Relaxed) as f64,
        );
        gauge(
            &mut o,
            "harken_queued_audio_seconds",
            "Audio seconds of requests waiting for a worker (from file headers; the scaling signal: work, not requests).",
            "gauge",
            self.queued_audio_ms.load(Ordering::Relaxed).max(0) as f64 / 1000.0,
        );
        gauge(
            &mut o,
            "harken_in_flight_audio_seconds",
            "Audio seconds of requests being transcribed.",
            "gauge",
            self.in_flight_audio_ms.load(Ordering::Relaxed).max(0) as f64 / 1000.0,
        );
        gauge(
            &mut o,
            "harken_model_load_seconds",
            "Time to load the model.",
            "gauge",
            self.load_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        );
        o
    }
}
