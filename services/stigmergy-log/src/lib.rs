//! The event log of Stigmergy: the [`EventLog`] port every service appends to and reads from, its
//! embedded adapter [`EmbeddedLog`], a durable log in the data directory, and its Kafka adapter
//! [`KafkaLog`], one topic per lifecycle stage read through a local mirror.
//!
//! An append is answered only once its events are durable, and it is atomic: all of its events
//! are stored or none. Positions are dense and ordered; readers read from a position and can
//! follow the tail live. This crate stores and returns events; it never judges them (the rules
//! live in `stigmergy-domain`, the decision to append in the capture service).

mod embedded;
pub mod kafka;

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use stigmergy_domain::{Event, EventId, LogPosition};

pub use embedded::{EmbeddedLog, EmbeddedLogConfig, SCHEMA as EMBEDDED_SCHEMA};
pub use kafka::{KafkaConfig, KafkaLog};

/// An event as the log holds it: where it is, and what it is.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    pub position: LogPosition,
    pub event: Event,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the event log storage failed")]
    Storage(#[from] rusqlite::Error),
    #[error("no connection to the event log storage could be had")]
    Pool(#[from] r2d2::Error),
    #[error("event {0} is already in the log")]
    DuplicateEventId(EventId),
    #[error("a stored event could not be read back: {0}")]
    Corrupt(String),
    #[error("the event log is closed")]
    Closed,
    #[error("the event log stopped accepting appends after a failed one")]
    Stopped,
    #[error("the Kafka broker failed: {0}")]
    Kafka(String),
    #[error("unsupported event log URL {0:?}: use embedded://DIR or kafka://HOST:PORT[,HOST:PORT]")]
    UnsupportedUrl(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The port: an append-only, totally ordered, durable sequence of events.
#[async_trait]
pub trait EventLog: Send + Sync + fmt::Debug {
    /// Appends `events` atomically; the future gives their positions once they are durable.
    ///
    /// The append is enqueued before this function returns, so appends land in the order they
    /// were called, whether or not the earlier futures were awaited. Fails with
    /// [`Error::DuplicateEventId`] (storing nothing) when one of the ids is already in the log.
    ///
    /// Fail-stop: once an append fails for another reason, every append after it fails with
    /// [`Error::Stopped`] until [`resume`](Self::resume) is called, so that nothing built on a
    /// failed append can land after it.
    fn append(&self, events: Vec<Event>) -> BoxFuture<'static, Result<Vec<LogPosition>>>;

    /// Accepts appends again after a failure (see [`append`](Self::append)). Call it once every
    /// append made before the failure was seen has been answered.
    fn resume(&self);

    /// Up to `limit` events after `after` (exclusive), in log order. `LogPosition(0)` reads from
    /// the start.
    async fn read_after(&self, after: LogPosition, limit: usize) -> Result<Vec<StoredEvent>>;

    /// The event with this id, if the log holds it.
    async fn get(&self, event_id: EventId) -> Result<Option<StoredEvent>>;

    /// The position of the last durable event (`LogPosition(0)` for an empty log).
    fn head(&self) -> LogPosition;

    /// Every event after `after`, then each new one as it becomes durable, without end.
    fn follow(&self, after: LogPosition) -> BoxStream<'static, Result<StoredEvent>>;

    /// Like [`follow`](Self::follow), for a reader that already knows what this process appends
    /// (capture's rules): every event after `after` up to the head as it is now, then each event
    /// other processes append as it becomes durable, at the positions `follow` gives them. It may
    /// also give some events this process appended, so the reader skips what it knows. A log
    /// that receives other processes' events apart from its own (Kafka) spares the reader reading
    /// its own back; by default, this is `follow`.
    fn follow_foreign(&self, after: LogPosition) -> BoxStream<'static, Result<StoredEvent>> {
        self.follow(after)
    }

    /// Waits until reads see every event that was durable in the log when this was called,
    /// whoever appended it. Immediate for a log this process alone appends to.
    async fn sync(&self) -> Result<()> {
        Ok(())
    }

    /// Whether other processes append to this log too, so that a reader must expect events it
    /// did not append.
    fn is_shared(&self) -> bool {
        false
    }
}

/// Where the event log is, as a URL: `embedded://DIR` (a directory, relative or absolute) or
/// `kafka://HOST:PORT[,HOST:PORT]` (the bootstrap brokers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogUrl {
    Embedded(std::path::PathBuf),
    Kafka(String),
}

impl FromStr for LogUrl {
    type Err = Error;
    fn from_str(url: &str) -> Result<Self> {
        if let Some(dir) = url.strip_prefix("embedded://")
            && !dir.is_empty()
        {
            return Ok(Self::Embedded(dir.into()));
        }
        if let Some(brokers) = url.strip_prefix("kafka://") {
            let valid = !brokers.is_empty()
                && brokers.split(',').all(|broker| {
                    broker
                        .rsplit_once(':')
                        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
                });
            if valid {
                return Ok(Self::Kafka(brokers.to_owned()));
            }
        }
        Err(Error::UnsupportedUrl(url.to_owned()))
    }
}

impl fmt::Display for LogUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Embedded(dir) => write!(f, "embedded://{}", dir.display()),
            Self::Kafka(brokers) => write!(f, "kafka://{brokers}"),
        }
    }
}
