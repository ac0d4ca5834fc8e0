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
    load_ms: AtomicU64,
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

    pub(crate) fn queued(&self, delta: i64) {
        self.queued.fetch_add(delta, Ordering::Relaxed);
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
            "harken_model_load_seconds",
            "Time to load the model.",
            "gauge",
            self.load_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        );
        o
    }
}
