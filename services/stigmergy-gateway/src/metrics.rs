//! What the gateway counts for `/metrics`: the GraphQL subscriptions open, and those ended
//! because their client fell more than the buffer behind.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The gateway's metrics; clones count into the same series. Until
/// [`register`](Self::register)ed, they count for nobody.
#[derive(Clone, Debug, Default)]
pub struct GatewayMetrics {
    subscriptions: Gauge,
    fell_behind: Counter,
}

impl GatewayMetrics {
    /// Registers the series under `registry` (the names gain its prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "gateway_subscriptions",
            "GraphQL subscriptions open (events and anomalies)",
            self.subscriptions.clone(),
        );
        registry.register(
            "gateway_subscriptions_fell_behind",
            "Subscriptions ended because their client fell more than the buffer behind",
            self.fell_behind.clone(),
        );
    }

    /// Counts a subscription open until the guard is dropped.
    pub(crate) fn open(&self) -> OpenSubscription {
        self.subscriptions.inc();
        OpenSubscription(self.subscriptions.clone())
    }

    pub(crate) fn fell_behind(&self) {
        self.fell_behind.inc();
    }
}

/// A subscription counted as open while this lives.
#[derive(Debug)]
pub(crate) struct OpenSubscription(Gauge);

impl Drop for OpenSubscription {
    fn drop(&mut self) {
        self.0.dec();
    }
}
