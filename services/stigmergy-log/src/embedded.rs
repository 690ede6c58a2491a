//! The embedded adapter: SQLite in WAL mode with `synchronous=FULL`, one writer thread doing group
//! commit, and a small pool of read connections.
//!
//! Appends are handed to the writer thread over a channel. The writer takes every append that is
//! waiting (up to a bound), writes them in one transaction (each in its own savepoint, so one
//! failing append does not take the others down) and commits: one fsync of the write-ahead log
//! for the whole group. Only then are the appenders answered.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream};
use futures_util::{FutureExt, StreamExt};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use stigmergy_domain::{Event, EventId, LogPosition};
use tokio::sync::{oneshot, watch};
use tracing::{debug, error, info_span};

use crate::{Error, EventLog, Result, StoredEvent};

/// Tuning of the embedded log.
#[derive(Clone, Debug)]
pub struct EmbeddedLogConfig {
    /// Most appends the writer puts in one transaction (one fsync).
    pub max_group_appends: usize,
    /// Most events the writer puts in one transaction.
    pub max_group_events: usize,
    /// Read connections kept open.
    pub read_connections: u32,
}

impl Default for EmbeddedLogConfig {
    fn default() -> Self {
        Self {
            max_group_appends: 256,
            max_group_events: 20_000,
            read_connections: 4,
        }
    }
}

struct Row {
    event_id: EventId,
    event_type: &'static str,
    subject: String,
    recorded_at: String,
    envelope: String,
}

struct AppendRequest {
    rows: Vec<Row>,
    reply: oneshot::Sender<Result<Vec<LogPosition>>>,
}

/// The embedded event log: `events.sqlite` in the data directory.
#[derive(Clone)]
pub struct EmbeddedLog {
    writer: mpsc::Sender<AppendRequest>,
    /// Set by the writer when a group commit fails; cleared by `resume`.
    stopped: Arc<AtomicBool>,
    readers: r2d2::Pool<SqliteConnectionManager>,
    head: watch::Receiver<LogPosition>,
    path: PathBuf,
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLog")
            .field("path", &self.path)
            .field("head", &*self.head.borrow())
            .finish()
    }
}

/// The table of the embedded log; public so that benchmarks compare against exactly this
/// shape. Events are read by position and by id only (the views index them otherwise), so the
/// id is the one index: an index by subject, which nothing read, was dropped, since every
/// append paid for it (subjects are random, so each event dirtied a page of its own).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    position    INTEGER PRIMARY KEY,
    event_id    BLOB NOT NULL UNIQUE,
    event_type  TEXT NOT NULL,
    subject     TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    envelope    TEXT NOT NULL
) STRICT;
DROP INDEX IF EXISTS events_by_subject;
";

fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(Duration::from_secs(30))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: in WAL mode every commit fsyncs the write-ahead log before it returns.
    connection.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

impl EmbeddedLog {
    /// [`EventLog::append`] for a caller that has serialised the events already:
    /// `envelopes[i]` must be `events[i]` as JSON (`serde_json::to_string`), which is what the
    /// log stores and reads back. The Kafka adapter's mirror stores the records it sent this way
    /// instead of serialising each event twice.
    pub fn append_encoded(
        &self,
        events: &[Event],
        envelopes: Vec<String>,
    ) -> BoxFuture<'static, Result<Vec<LogPosition>>> {
        if events.is_empty() {
            return futures_util::future::ready(Ok(Vec::new())).boxed();
        }
        if events.len() != envelopes.len() {
            return futures_util::future::ready(Err(Error::Corrupt(format!(
                "{} events with {} envelopes",
                events.len(),
                envelopes.len()
            ))))
            .boxed();
        }
        let rows = events
            .iter()
            .zip(envelopes)
            .map(|(event, envelope)| Row {
                event_id: event.event_id,
                event_type: event.event_type().name(),
                subject: event.subject.to_string(),
                recorded_at: event.recorded_at.to_string(),
                envelope,
            })
            .collect();
        let (reply, answer) = oneshot::channel();
        let sent = self
            .writer
            .send(AppendRequest { rows, reply })
            .map_err(|_| Error::Closed);
        async move {
            sent?;
            answer.await.map_err(|_| Error::Closed)?
        }
        .boxed()
    }

    /// Opens (creating when missing) the log in `dir`, and starts its writer thread.
    pub fn open(dir: &Path, config: EmbeddedLogConfig) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Corrupt(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("events.sqlite");
        let writer_connection = Connection::open(&path)?;
        configure(&writer_connection)?;
        writer_connection.execute_batch(SCHEMA)?;
        let head: u64 = writer_connection.query_row(
            "SELECT COALESCE(MAX(position), 0) FROM events",
            [],
            |row| row.get(0),
        )?;

        let manager = SqliteConnectionManager::file(&path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(|c| c.busy_timeout(Duration::from_secs(30)));
        let readers = r2d2::Pool::builder()
            .max_size(config.read_connections.max(1))
            .build(manager)?;

        let (head_tx, head_rx) = watch::channel(LogPosition(head));
        let (tx, rx) = mpsc::channel();
        let stopped = Arc::new(AtomicBool::new(false));
        let writer_stopped = stopped.clone();
        thread::Builder::new()
            .name("event-log-writer".into())
            .spawn(move || write_loop(writer_connection, rx, head_tx, writer_stopped, config))
            .map_err(|e| Error::Corrupt(format!("cannot start the log writer: {e}")))?;
        Ok(Self {
            writer: tx,
            stopped,
            readers,
            head: head_rx,
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let connection = pool.get()?;
            work(&connection)
        })
        .await
        .map_err(|_| Error::Closed)?
    }
}

fn decode(position: u64, envelope: &str) -> Result<StoredEvent> {
    let event: Event = serde_json::from_str(envelope)
        .map_err(|e| Error::Corrupt(format!("event at position {position}: {e}")))?;
    Ok(StoredEvent {
        position: LogPosition(position),
        event,
    })
}

/// Decodes rows read together, on every core when there are many (a projector rebuilding the
/// views reads up to a million at once; parsing is most of the time it takes).
fn decode_all(rows: &[(u64, String)]) -> Result<Vec<StoredEvent>> {
    const ALONE_BELOW: usize = 10_000;
    let decode_part = |part: &[(u64, String)]| -> Result<Vec<StoredEvent>> {
        part.iter()
            .map(|(position, envelope)| decode(*position, envelope))
            .collect()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if rows.len() < ALONE_BELOW || threads == 1 {
        return decode_part(rows);
    }
    let parts: Vec<&[(u64, String)]> = rows.chunks(rows.len().div_ceil(threads)).collect();
    let Some((first, rest)) = parts.split_first() else {
        return Ok(Vec::new());
    };
    std::thread::scope(|scope| {
        let others: Vec<_> = rest
            .iter()
            .map(|part| scope.spawn(|| decode_part(part)))
            .collect();
        let mut events = decode_part(first)?;
        events.reserve(rows.len() - events.len());
        for other in others {
            let decoded = other
                .join()
                .map_err(|_| Error::Corrupt("decoding events panicked".into()))?;
            events.extend(decoded?);
        }
        Ok(events)
    })
}

#[async_trait]
impl EventLog for EmbeddedLog {
    fn append(&self, events: Vec<Event>) -> BoxFuture<'static, Result<Vec<LogPosition>>> {
        let envelopes = info_span!("log.append", events = events.len()).in_scope(|| {
            events
                .iter()
                .map(|event| {
                    serde_json::to_string(event).map_err(|e| Error::Corrupt(e.to_string()))
                })
                .collect::<Result<Vec<_>>>()
        });
        match envelopes {
            Ok(envelopes) => self.append_encoded(&events, envelopes),
            Err(failure) => futures_util::future::ready(Err(failure)).boxed(),
        }
    }

    fn resume(&self) {
        self.stopped.store(false, Ordering::SeqCst);
    }

    async fn read_after(&self, after: LogPosition, limit: usize) -> Result<Vec<StoredEvent>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.blocking(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT position, envelope FROM events WHERE position > ?1 ORDER BY position LIMIT ?2",
            )?;
            let rows = statement
                .query_map(params![after.0, limit], |row| {
                    Ok((row.get::<_, u64>(0)?, row.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            decode_all(&rows)
        })
        .await
    }

    async fn get(&self, event_id: EventId) -> Result<Option<StoredEvent>> {
        self.blocking(move |connection| {
            let found = connection
                .prepare_cached("SELECT position, envelope FROM events WHERE event_id = ?1")?
                .query_row(params![&event_id.as_bytes()[..]], |row| {
                    Ok((row.get::<_, u64>(0)?, row.get::<_, String>(1)?))
                })
                .optional()?;
            found
                .map(|(position, envelope)| decode(position, &envelope))
                .transpose()
        })
        .await
    }

    fn head(&self) -> LogPosition {
        *self.head.borrow()
    }

    fn follow(&self, after: LogPosition) -> BoxStream<'static, Result<StoredEvent>> {
        struct Follow {
            log: EmbeddedLog,
            after: LogPosition,
            buffered: VecDeque<StoredEvent>,
            head: watch::Receiver<LogPosition>,
            failed: bool,
        }
        let state = Follow {
            log: self.clone(),
            after,
            buffered: VecDeque::new(),
            head: self.head.clone(),
            failed: false,
        };
        stream::unfold(state, |mut state| async move {
            loop {
                if state.failed {
                    return None;
                }
                if let Some(next) = state.buffered.pop_front() {
                    state.after = next.position;
                    return Some((Ok(next), state));
                }
                if *state.head.borrow_and_update() > state.after {
                    match state.log.read_after(state.after, 512).await {
                        Ok(events) => state.buffered.extend(events),
                        Err(error) => {
                            state.failed = true;
                            return Some((Err(error), state));
                        }
                    }
                    continue;
                }
                if state.head.changed().await.is_err() {
                    return None;
                }
            }
        })
        .boxed()
    }
}

fn write_loop(
    mut connection: Connection,
    requests: mpsc::Receiver<AppendRequest>,
    head: watch::Sender<LogPosition>,
    stopped: Arc<AtomicBool>,
    config: EmbeddedLogConfig,
) {
    while let Ok(first) = requests.recv() {
        let mut group = vec![first];
        let mut events = group[0].rows.len();
        while group.len() < config.max_group_appends && events < config.max_group_events {
            match requests.try_recv() {
                Ok(next) => {
                    events += next.rows.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        if stopped.load(Ordering::SeqCst) {
            for request in group {
                let _ = request.reply.send(Err(Error::Stopped));
            }
            continue;
        }
        let span = info_span!("log.group_commit", appends = group.len(), events);
        let _guard = span.enter();
        match write_group(&mut connection, &group) {
            Ok(outcomes) => {
                let last = outcomes
                    .iter()
                    .filter_map(|o| o.as_ref().ok())
                    .filter_map(|p| p.last())
                    .max()
                    .copied();
                if let Some(last) = last {
                    head.send_replace(last);
                }
                for (request, outcome) in group.into_iter().zip(outcomes) {
                    let _ = request.reply.send(outcome);
                }
            }
            Err(failure) => {
                error!(error = %failure, "group commit failed; every append in the group is refused, and later ones until resumed");
                stopped.store(true, Ordering::SeqCst);
                for request in group {
                    let _ = request.reply.send(Err(Error::Corrupt(format!(
                        "group commit failed: {failure}"
                    ))));
                }
            }
        }
    }
    debug!("event log writer stopped");
}

/// Writes a group in one transaction. The outer error means nothing of the group was committed;
/// an inner error means that append alone was rolled back.
fn write_group(
    connection: &mut Connection,
    group: &[AppendRequest],
) -> rusqlite::Result<Vec<Result<Vec<LogPosition>>>> {
    let mut transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(group.len());
    for request in group {
        let savepoint_outcome = (|| -> rusqlite::Result<Result<Vec<LogPosition>>> {
            let mut savepoint = transaction.savepoint()?;
            let mut positions = Vec::with_capacity(request.rows.len());
            {
                let mut insert = savepoint.prepare_cached(
                    "INSERT INTO events (event_id, event_type, subject, recorded_at, envelope) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for row in &request.rows {
                    match insert.execute(params![
                        &row.event_id.as_bytes()[..],
                        row.event_type,
                        row.subject,
                        row.recorded_at,
                        row.envelope
                    ]) {
                        Ok(_) => positions.push(LogPosition(savepoint.last_insert_rowid() as u64)),
                        Err(rusqlite::Error::SqliteFailure(e, _))
                            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                        {
                            drop(insert);
                            savepoint.rollback()?;
                            return Ok(Err(Error::DuplicateEventId(row.event_id)));
                        }
                        Err(other) => return Err(other),
                    }
                }
            }
            savepoint.commit()?;
            Ok(Ok(positions))
        })()?;
        outcomes.push(savepoint_outcome);
    }
    transaction.commit()?;
    Ok(outcomes)
}
