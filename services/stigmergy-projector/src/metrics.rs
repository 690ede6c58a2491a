//! What a projector counts for `/metrics`: the events and pages it applied, how long pages took,
//! the failures it is retrying, the documents it published, and how far behind the log it is —
//! read at each scrape from where it stands and the log's head (the embedded log), or from each
//! assigned partition's high watermark as last asked of the brokers (a Kafka group member asks
//! every few seconds, on a thread of its own, so the lag grows while applying is stuck).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use stigmergy_log::EventLog;

/// A projector's metrics; clones count into the same series. Until
/// [`register`](Self::register)ed, they count for nobody.
#[derive(Clone, Debug)]
pub struct ProjectorMetrics {
    events: Counter,
    new_events: Counter,
    pages: Counter,
    page_seconds: Histogram,
    retries: Family<[(&'static str, &'static str); 1], Counter>,
    published: Counter,
    progress: Arc<Mutex<Progress>>,
    /// Whether it counts for a member of a Kafka group, which also tells new events and
    /// publishes documents.
    member: bool,
}

/// Where the projector stands, for the lag computed at each scrape.
#[derive(Default)]
enum Progress {
    #[default]
    Unknown,
    /// On the embedded log: the position applied.
    Log {
        log: Arc<dyn EventLog>,
        applied: u64,
    },
    /// A group member: its assigned partitions.
    Group(BTreeMap<(String, i32), Partition>),
}

/// An assigned partition: the next offset to apply (`None`: from the beginning), and its
/// watermarks as last asked.
#[derive(Clone, Copy, Debug, Default)]
struct Partition {
    applied: Option<i64>,
    watermarks: Option<(i64, i64)>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unknown => f.write_str("Unknown"),
            Self::Log { applied, .. } => f.debug_struct("Log").field("applied", applied).finish(),
            Self::Group(partitions) => f.debug_tuple("Group").field(partitions).finish(),
        }
    }
}

impl Default for ProjectorMetrics {
    fn default() -> Self {
        Self {
            events: Counter::default(),
            new_events: Counter::default(),
            pages: Counter::default(),
            // 1 ms to about 65 s.
            page_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            retries: Family::default(),
            published: Counter::default(),
            progress: Arc::default(),
            member: false,
        }
    }
}

impl ProjectorMetrics {
    /// The metrics of a member of a Kafka consumer group
    /// ([`GroupProjector`](crate::kafka::GroupProjector)), which also counts the events new to
    /// the views and the documents it publishes.
    pub fn group_member() -> Self {
        Self {
            member: true,
            ..Self::default()
        }
    }

    /// Registers the series under `registry` (the names gain its prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "projector_events",
            "Events applied to the views (read again after a crash or a rebalance, they count again)",
            self.events.clone(),
        );
        if self.member {
            registry.register(
                "projector_new_events",
                "Events applied that the views did not hold yet",
                self.new_events.clone(),
            );
            registry.register(
                "projector_published_documents",
                "Open-metadata documents published on the metadata topic",
                self.published.clone(),
            );
        }
        registry.register(
            "projector_pages",
            "Pages applied, each in one transaction of the views store",
            self.pages.clone(),
        );
        registry.register(
            "projector_page_seconds",
            "Time to apply a page to the views store",
            self.page_seconds.clone(),
        );
        registry.register(
            "projector_retries",
            "Failures the projector is retrying, by what failed: apply (the views store) or publish (the metadata and anomalies topics)",
            self.retries.clone(),
        );
        registry.register_collector(Box::new(Lag(self.progress.clone())));
    }

    pub(crate) fn applied(&self, events: usize, new: Option<usize>, elapsed: Duration) {
        self.events.inc_by(events as u64);
        if let Some(new) = new {
            self.new_events.inc_by(new as u64);
        }
        self.pages.inc();
        self.page_seconds.observe(elapsed.as_secs_f64());
    }

    pub(crate) fn retrying(&self, what: &'static str) {
        self.retries.get_or_create(&[("what", what)]).inc();
    }

    pub(crate) fn published(&self, documents: usize) {
        self.published.inc_by(documents as u64);
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The projector follows `log` and has applied it up to `applied`.
    pub(crate) fn log_applied(&self, log: &Arc<dyn EventLog>, applied: u64) {
        *self.progress() = Progress::Log {
            log: log.clone(),
            applied,
        };
    }

    /// The member was assigned `partitions`, each to resume at an offset (`None`: from the
    /// beginning); an empty list when they were revoked.
    pub(crate) fn assigned(&self, assigned: Vec<((String, i32), Option<i64>)>) {
        *self.progress() = Progress::Group(
            assigned
                .into_iter()
                .map(|(partition, applied)| {
                    let progress = Partition {
                        applied,
                        watermarks: None,
                    };
                    (partition, progress)
                })
                .collect(),
        );
    }

    /// The watermarks of `partition` as just asked of the brokers.
    pub(crate) fn watermarks(&self, partition: (String, i32), low: i64, high: i64) {
        if let Progress::Group(partitions) = &mut *self.progress()
            && let Some(assigned) = partitions.get_mut(&partition)
        {
            assigned.watermarks = Some((low, high));
        }
    }

    /// The member applied its partitions up to these offsets (the next to apply).
    pub(crate) fn offsets_applied<'a>(
        &self,
        offsets: impl IntoIterator<Item = (&'a str, i32, i64)>,
    ) {
        if let Progress::Group(partitions) = &mut *self.progress() {
            for (topic, partition, next) in offsets {
                if let Some(assigned) = partitions.get_mut(&(topic.to_owned(), partition)) {
                    assigned.applied = Some(next);
                }
            }
        }
    }
}

/// Encodes the lag at each scrape.
#[derive(Debug)]
struct Lag(Arc<Mutex<Progress>>);

const LAG_HELP: &str = "Events in the log that the projector has not applied yet.";

impl Collector for Lag {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let progress = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match &*progress {
            Progress::Unknown => Ok(()),
            Progress::Log { log, applied } => {
                gauge(
                    &mut encoder,
                    "projector_position",
                    "The log position the views hold up to.",
                    *applied as i64,
                )?;
                gauge(
                    &mut encoder,
                    "projector_lag_events",
                    LAG_HELP,
                    log.head().0.saturating_sub(*applied) as i64,
                )
            }
            Progress::Group(partitions) => {
                let lags: Vec<((&str, i32), i64)> = partitions
                    .iter()
                    .filter_map(|((topic, partition), progress)| {
                        let (low, high) = progress.watermarks?;
                        let from = progress.applied.unwrap_or(low).max(low);
                        Some(((topic.as_str(), *partition), (high - from).max(0)))
                    })
                    .collect();
                gauge(
                    &mut encoder,
                    "projector_partitions_assigned",
                    "Partitions of the stage topics assigned to this member of the group.",
                    partitions.len() as i64,
                )?;
                // The whole lag once every partition's is known (until then, none: not zero).
                if lags.len() == partitions.len() {
                    gauge(
                        &mut encoder,
                        "projector_lag_events",
                        LAG_HELP,
                        lags.iter().map(|(_, lag)| lag).sum(),
                    )?;
                }
                let mut family = encoder.encode_descriptor(
                    "projector_partition_lag_events",
                    "Records of an assigned partition not applied yet, from its high watermark as last asked of the brokers.",
                    None,
                    MetricType::Gauge,
                )?;
                for ((topic, partition), lag) in lags {
                    let partition = partition.to_string();
                    let labels = [("topic", topic), ("partition", partition.as_str())];
                    ConstGauge::new(lag).encode(family.encode_family(&labels)?)?;
                }
                Ok(())
            }
        }
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}
