//! What capture counts for `/metrics`: the events it recorded (new or duplicate), the requests it
//! refused by problem type, and how long appends take to become durable.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Capture's metrics; clones count into the same series. Until [`register`](Self::register)ed,
/// they count for nobody.
#[derive(Clone, Debug)]
pub struct CaptureMetrics {
    events: Family<[(&'static str, &'static str); 1], Counter>,
    refusals: Family<[(&'static str, &'static str); 1], Counter>,
    append_seconds: Histogram,
}

impl Default for CaptureMetrics {
    fn default() -> Self {
        Self {
            events: Family::default(),
            refusals: Family::default(),
            // 100 µs to about 26 s.
            append_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 19)),
        }
    }
}

impl CaptureMetrics {
    /// Registers the series under `registry` (the names gain its prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "capture_events",
            "Events recorded, by outcome: recorded (new) or duplicate (already in the log)",
            self.events.clone(),
        );
        registry.register(
            "capture_refusals",
            "Requests to record events refused, by problem type (docs/api.md); nothing of them was recorded",
            self.refusals.clone(),
        );
        registry.register(
            "capture_append_seconds",
            "Time from a request's admission until its events were durable in the log (or refused by a rule)",
            self.append_seconds.clone(),
        );
    }

    pub(crate) fn recorded(&self, new: u64, duplicates: u64) {
        if new > 0 {
            self.events
                .get_or_create(&[("outcome", "recorded")])
                .inc_by(new);
        }
        if duplicates > 0 {
            self.events
                .get_or_create(&[("outcome", "duplicate")])
                .inc_by(duplicates);
        }
    }

    pub(crate) fn refused(&self, problem: &'static str) {
        self.refusals.get_or_create(&[("problem", problem)]).inc();
    }

    pub(crate) fn appended(&self, elapsed: std::time::Duration) {
        self.append_seconds.observe(elapsed.as_secs_f64());
    }
}
