//! The views store, embedded adapter: the events the projectors applied, their index rows
//! (touches and flows), the retracted ids and each projector's position, in `views.sqlite`.
//!
//! `apply` writes a page of events, their rows and the new position in ONE transaction, so a
//! crash replays the page and the upserts make the replay harmless. Every query leaves out the
//! rows of retracted events; which events exist, not the order they came in, decides every
//! answer.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use stigmergy_domain::views::{Direction, EventIndex, Flow, FlowKind, Lineage, Role, walk};
use stigmergy_domain::{Event, EventId, Iri, LogPosition, Quantity};

use crate::sqlite::SharedConnection;
use crate::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS projector_positions (
    projector TEXT PRIMARY KEY,
    position  INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS view_events (
    event_id    BLOB PRIMARY KEY,
    position    INTEGER NOT NULL,
    event_type  TEXT NOT NULL,
    subject     TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    envelope    TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS touches (
    resource TEXT NOT NULL,
    event_id BLOB NOT NULL,
    role     TEXT NOT NULL,
    PRIMARY KEY (resource, event_id, role)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS flows (
    event_id BLOB NOT NULL,
    ordinal  INTEGER NOT NULL,
    from_id  TEXT NOT NULL,
    to_id    TEXT NOT NULL,
    kind     TEXT NOT NULL,
    amount   REAL,
    unit     TEXT,
    PRIMARY KEY (event_id, ordinal)
) STRICT;
CREATE INDEX IF NOT EXISTS flows_by_to ON flows (to_id);
CREATE INDEX IF NOT EXISTS flows_by_from ON flows (from_id);
CREATE TABLE IF NOT EXISTS retracted (
    event_id BLOB PRIMARY KEY,
    by_event BLOB NOT NULL
) STRICT;
";

/// One row of a resource's timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelineEntry {
    pub position: LogPosition,
    pub event: Event,
    pub role: Role,
}

/// The views store in the data directory.
#[derive(Clone)]
pub struct ViewStore {
    connection: SharedConnection,
}

impl std::fmt::Debug for ViewStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewStore").finish_non_exhaustive()
    }
}

fn role_from(name: &str) -> Option<Role> {
    Role::ALL.iter().copied().find(|role| role.name() == name)
}

fn kind_from(name: &str) -> Option<FlowKind> {
    FlowKind::ALL
        .iter()
        .copied()
        .find(|kind| kind.name() == name)
}

fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("the views store holds an unreadable row: {what}"))
}

impl ViewStore {
    /// Opens (creating when missing) `views.sqlite` in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        let connection = Connection::open(dir.join("views.sqlite"))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        // The views can be rebuilt from the log, so a commit need not wait for the disk: after a
        // power loss the store is consistent at an earlier position and replays from there.
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.execute_batch(SCHEMA)?;
        Ok(Self {
            connection: SharedConnection::new(connection),
        })
    }

    /// The last log position `projector` applied (0 before the first).
    pub async fn position(&self, projector: &str) -> Result<LogPosition> {
        let projector = projector.to_owned();
        self.connection
            .run(move |connection| {
                let position: Option<u64> = connection
                    .query_row(
                        "SELECT position FROM projector_positions WHERE projector = ?1",
                        params![projector],
                        |row| row.get(0),
                    )
                    .optional()?;
                Ok(LogPosition(position.unwrap_or(0)))
            })
            .await
    }

    /// Applies a page of events and moves `projector` past the last, in one transaction.
    pub async fn apply(&self, projector: &str, page: Vec<(LogPosition, Event)>) -> Result<()> {
        let projector = projector.to_owned();
        self.connection.run(move |connection| {
            let transaction = connection.transaction()?;
            let mut last = None;
            for (position, event) in &page {
                store_event(&transaction, *position, event)?;
                last = Some(*position);
            }
            if let Some(last) = last {
                transaction.execute(
                    "INSERT INTO projector_positions (projector, position) VALUES (?1, ?2)
                     ON CONFLICT (projector) DO UPDATE SET position = max(position, excluded.position)",
                    params![projector, last.0],
                )?;
            }
            transaction.commit()?;
            Ok(())
        })
        .await
    }

    /// Every event touching `resource` that is not retracted, in `occurredAt` then log order.
    pub async fn timeline(&self, resource: &Iri) -> Result<Vec<TimelineEntry>> {
        let resource = resource.to_string();
        self.connection
            .run(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT e.position, e.envelope, t.role FROM touches t
                 JOIN view_events e ON e.event_id = t.event_id
                 WHERE t.resource = ?1 AND t.event_id NOT IN (SELECT event_id FROM retracted)
                 ORDER BY e.occurred_at, e.position, t.role",
                )?;
                let rows = statement.query_map(params![resource], |row| {
                    Ok((
                        row.get::<_, u64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                    ))
                })?;
                let mut entries = Vec::new();
                for row in rows {
                    let (position, envelope, role) = row?;
                    let event: Event = serde_json::from_str(&envelope).map_err(corrupt)?;
                    let role = role_from(&role).ok_or_else(|| corrupt(&role))?;
                    entries.push(TimelineEntry {
                        position: LogPosition(position),
                        event,
                        role,
                    });
                }
                Ok(entries)
            })
            .await
    }

    /// The lineage of `resource`, upstream or downstream, up to `max_depth` levels, through the
    /// flows of events that are not retracted.
    pub async fn lineage(
        &self,
        resource: &Iri,
        direction: Direction,
        max_depth: u32,
    ) -> Result<Lineage> {
        let resource = resource.clone();
        self.connection
            .run(move |connection| {
                walk(&resource, direction, max_depth, |direction, frontier| {
                    neighbours(connection, direction, frontier)
                })
            })
            .await
    }

    /// Whether an event was retracted.
    pub async fn is_retracted(&self, event_id: EventId) -> Result<bool> {
        self.connection
            .run(move |connection| {
                Ok(connection
                    .query_row(
                        "SELECT 1 FROM retracted WHERE event_id = ?1",
                        params![&event_id.as_bytes()[..]],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some())
            })
            .await
    }
}

fn store_event(
    transaction: &rusqlite::Transaction<'_>,
    position: LogPosition,
    event: &Event,
) -> Result<()> {
    let id = &event.event_id.as_bytes()[..];
    let envelope = serde_json::to_string(event).map_err(corrupt)?;
    transaction
        .prepare_cached(
            "INSERT INTO view_events (event_id, position, event_type, subject, recorded_by, occurred_at, envelope)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (event_id) DO NOTHING",
        )?
        .execute(params![
            id,
            position.0,
            event.event_type().name(),
            event.subject.as_str(),
            event.recorded_by.as_str(),
            event.occurred_at.to_string(),
            envelope
        ])?;
    let index = EventIndex::of(event, position);
    let mut touch = transaction.prepare_cached(
        "INSERT INTO touches (resource, event_id, role) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
    )?;
    for row in &index.touches {
        touch.execute(params![row.resource.as_str(), id, row.role.name()])?;
    }
    let mut flow = transaction.prepare_cached(
        "INSERT INTO flows (event_id, ordinal, from_id, to_id, kind, amount, unit) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT DO NOTHING",
    )?;
    for (ordinal, row) in index.flows.iter().enumerate() {
        flow.execute(params![
            id,
            ordinal as i64,
            row.from.as_str(),
            row.to.as_str(),
            row.kind.name(),
            row.quantity.map(|q| q.amount.get()),
            row.quantity.map(|q| q.unit.code()),
        ])?;
    }
    if let Some(retracted) = EventIndex::retracts(event) {
        transaction
            .prepare_cached(
                "INSERT INTO retracted (event_id, by_event) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?
            .execute(params![&retracted.as_bytes()[..], id])?;
    }
    Ok(())
}

fn neighbours(
    connection: &Connection,
    direction: Direction,
    frontier: &[Iri],
) -> Result<Vec<Flow>> {
    let sql = match direction {
        Direction::Upstream => {
            "SELECT from_id, to_id, kind, amount, unit FROM flows WHERE to_id = ?1
             AND event_id NOT IN (SELECT event_id FROM retracted) ORDER BY event_id, ordinal"
        }
        Direction::Downstream => {
            "SELECT from_id, to_id, kind, amount, unit FROM flows WHERE from_id = ?1
             AND event_id NOT IN (SELECT event_id FROM retracted) ORDER BY event_id, ordinal"
        }
    };
    let mut statement = connection.prepare_cached(sql)?;
    let mut flows = Vec::new();
    for node in frontier {
        let rows = statement.query_map(params![node.as_str()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<f64>>(3)?,
                row.get::<_, Option<String>>(4)?,
            ))
        })?;
        for row in rows {
            let (from, to, kind, amount, unit) = row?;
            let quantity = match (amount, unit) {
                (Some(amount), Some(unit)) => Some(
                    serde_json::from_value::<Quantity>(
                        serde_json::json!({ "amount": amount, "unit": unit }),
                    )
                    .map_err(corrupt)?,
                ),
                _ => None,
            };
            flows.push(Flow {
                from: Iri::parse(from).map_err(corrupt)?,
                to: Iri::parse(to).map_err(corrupt)?,
                kind: kind_from(&kind).ok_or_else(|| corrupt(&kind))?,
                quantity,
            });
        }
    }
    Ok(flows)
}
