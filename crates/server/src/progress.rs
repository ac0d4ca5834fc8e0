//! Progress of the transcriptions in flight, by request id: what `GET /v1/progress/{id}` reads
//! so that a client (the web page) can show how far a long file has got.
//!
//! An entry lives exactly as long as its request is admitted (a guard removes it), so the map
//! holds at most `workers + queue` entries whatever clients send.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

/// Where one request stands.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub(crate) struct Status {
    /// `queued` (waiting for a worker) or `running`.
    pub(crate) state: &'static str,
    /// Audio seconds transcribed so far.
    pub(crate) done_s: f64,
    /// Audio seconds in all (0 until the audio is decoded).
    pub(crate) total_s: f64,
}

/// The shared map of request id → status.
#[derive(Debug, Clone, Default)]
pub(crate) struct Registry(Arc<Mutex<HashMap<String, Status>>>);

impl Registry {
    /// Track `id` as queued until the returned guard drops.
    pub(crate) fn track(&self, id: &str) -> Tracked {
        let queued = Status { state: "queued", done_s: 0.0, total_s: 0.0 };
        self.lock().insert(id.to_owned(), queued);
        Tracked { registry: self.clone(), id: id.to_owned() }
    }

    /// The status of `id`, while its request is in flight.
    pub(crate) fn get(&self, id: &str) -> Option<Status> {
        self.lock().get(id).copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Status>> {
        // A poisoned map only means a panic elsewhere while holding it; the data stays usable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One tracked request; dropping it forgets the request.
#[derive(Debug)]
pub(crate) struct Tracked {
    registry: Registry,
    id: String,
}

impl Tracked {
    /// Record progress of the running transcription.
    pub(crate) fn update(&self, done_s: f64, total_s: f64) {
        if let Some(s) = self.registry.lock().get_mut(&self.id) {
            *s = Status { state: "running", done_s, total_s };
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_as_long_as_their_guard() {
        let r = Registry::default();
        let t = r.track("a");
        assert_eq!(r.get("a").map(|s| s.state), Some("queued"));
        t.update(5.0, 60.0);
        assert_eq!(r.get("a"), Some(Status { state: "running", done_s: 5.0, total_s: 60.0 }));
        drop(t);
        assert_eq!(r.get("a"), None);
    }
}
