//! The projector runtime of Stigmergy: follows the event log from the position the views store
//! last applied, and applies what it reads in pages, each page and the new position in one
//! transaction of the store. A crash replays the page it was in; applying is idempotent, so
//! nothing is counted twice. The same runtime runs in the all-in-one process and on its own.
//!
//! In split mode, [`kafka::GroupProjector`] is the same projector as a member of a Kafka
//! consumer group, keeping the group's offsets in the store with the views.
//!
//! It decides nothing about what the events mean: the index rows are the domain's
//! (`stigmergy_domain::views`), the storage is the store's.

pub mod kafka;
pub mod metrics;

use std::sync::Arc;

use futures_util::{FutureExt, StreamExt};
use stigmergy_domain::{Event, LogPosition};
use stigmergy_log::EventLog;
use stigmergy_store::ViewStore;
use tracing::{Instrument, info_span};

pub use metrics::ProjectorMetrics;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the event log failed")]
    Log(#[from] stigmergy_log::Error),
    #[error("writing the views failed")]
    Store(#[from] stigmergy_store::Error),
    #[error("the Kafka consumer failed: {0}")]
    Kafka(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Most events applied in one transaction, unless configured otherwise. When the projector is
/// far behind (rebuilding the views, catching up a new store) every page is full, and larger
/// pages cost less per event: a page's writes to the same part of the store go out once, and a
/// resource touched many times in a page is derived once. Live, a page holds what arrived while
/// the last one was applied, far fewer. The store answers queries from what was committed while
/// a page is applied, so a long page holds up no reader.
pub const DEFAULT_PAGE_SIZE: usize = 50_000;

/// Most events in the first page, the one applied at position 0, unless configured otherwise.
/// A store that holds no events yet indexes and derives its first page in memory and writes it
/// in bulk (`docs/views.md`): four times as fast as page after page, at about 5 KB of memory per
/// event while the page is applied.
pub const DEFAULT_FIRST_PAGE_SIZE: usize = 1_000_000;

/// A projector: one name (its position in the store), one log, one store.
#[derive(Clone, Debug)]
pub struct Projector {
    name: String,
    log: Arc<dyn EventLog>,
    store: Arc<dyn ViewStore>,
    page_size: usize,
    first_page_size: usize,
    metrics: ProjectorMetrics,
}

impl Projector {
    pub fn new(name: impl Into<String>, log: Arc<dyn EventLog>, store: Arc<dyn ViewStore>) -> Self {
        Self {
            name: name.into(),
            log,
            store,
            page_size: DEFAULT_PAGE_SIZE,
            first_page_size: DEFAULT_FIRST_PAGE_SIZE,
            metrics: ProjectorMetrics::default(),
        }
    }

    /// Counts what it applies, and how far behind the log it is, into `metrics`.
    pub fn with_metrics(mut self, metrics: ProjectorMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Most events applied in one transaction.
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Most events in the page applied at position 0.
    pub fn with_first_page_size(mut self, first_page_size: usize) -> Self {
        self.first_page_size = first_page_size.max(1);
        self
    }

    /// The most events to apply in the page after `position`.
    fn limit(&self, position: LogPosition) -> usize {
        if position == LogPosition(0) {
            self.first_page_size
        } else {
            self.page_size
        }
    }

    /// Applies everything up to the log's head as it is now, and returns the position reached.
    pub async fn catch_up(&self) -> Result<LogPosition> {
        let mut position = self.store.position(&self.name).await?;
        self.metrics.log_applied(&self.log, position.0);
        loop {
            let page = self.log.read_after(position, self.limit(position)).await?;
            let Some(last) = page.last().map(|stored| stored.position) else {
                return Ok(position);
            };
            let page: Vec<(LogPosition, Event)> =
                page.into_iter().map(|s| (s.position, s.event)).collect();
            self.apply(page).await?;
            position = last;
        }
    }

    /// Follows the log without end, applying each page as it arrives: everything already in the
    /// log first, then each new event as soon as it is durable (with the events that arrived
    /// meanwhile, up to a page).
    pub async fn run(&self) -> Result<()> {
        let position = self.store.position(&self.name).await?;
        self.metrics.log_applied(&self.log, position.0);
        let mut limit = self.limit(position);
        let mut events = self.log.follow(position);
        while let Some(first) = events.next().await {
            let first = first?;
            let mut page = vec![(first.position, first.event)];
            while page.len() < limit {
                match events.next().now_or_never() {
                    Some(Some(next)) => {
                        let next = next?;
                        page.push((next.position, next.event));
                    }
                    _ => break,
                }
            }
            self.apply(page).await?;
            limit = self.page_size;
        }
        Ok(())
    }

    async fn apply(&self, page: Vec<(LogPosition, Event)>) -> Result<()> {
        let (events, last) = (page.len(), page.last().map(|(position, _)| *position));
        let span = info_span!("projector.apply", projector = %self.name, events);
        let started = std::time::Instant::now();
        if let Err(failure) = self.store.apply(&self.name, page).instrument(span).await {
            self.metrics.retrying("apply");
            return Err(failure.into());
        }
        self.metrics.applied(events, None, started.elapsed());
        if let Some(last) = last {
            self.metrics.log_applied(&self.log, last.0);
        }
        Ok(())
    }
}
