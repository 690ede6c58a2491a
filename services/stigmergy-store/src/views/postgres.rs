//! The PostgreSQL adapter of the views store, for a `postgres://` URL: the tables of the embedded
//! store, created by numbered migrations when it connects, used through a small pool of
//! synchronous connections on Tokio's blocking pool (the derivation's [`Facts`] is synchronous).
//!
//! It answers exactly what the SQLite adapter answers, in the same order: ids are UUIDs, which
//! PostgreSQL orders by their 16 bytes as SQLite orders its blobs, and text is ordered by bytes
//! (`COLLATE "C"`), whatever the database's collation.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use postgres::{Client, GenericClient, NoTls, Row, Transaction};
use stigmergy_domain::views::derive::{Facts, FootprintChange, Methods, Touching};
use stigmergy_domain::views::{Direction, EventIndex, Flow, Holding, Lineage, Record, Role, walk};
use stigmergy_domain::{
    Event, EventId, Iri, LogPosition, OrganizationId, PositiveAmount, Quantity, Timestamp, Unit,
};

use super::sqlite::{corrupt, kind_from, role_from};
use super::{
    CountedEvent, Derived, EventScope, FootprintCursor, FootprintFilter, FootprintProvenance,
    FootprintStatus, FootprintVersion, HELD_EPSILON, Held, ListedEvent, MEMO_RESOURCES,
    PartitionOffset, Remembered, TimelineEntry, ViewStore, WhenStale, derive_first_page,
    footprint_id, merged_offsets, methods_fingerprint, provenance_of, recorded_at, shared, stale,
    unseen,
};
use crate::pg::{Connection, Migrations, Pool, Statements, migrate};
use crate::{Error, Result};

/// The schema, one step per entry, each applied once and in order, and recorded in
/// `view_migrations`. A step that has shipped is never edited: a change is a new step.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "the views tables",
        "
CREATE TABLE projector_positions (
    projector TEXT PRIMARY KEY,
    position  BIGINT NOT NULL
);
CREATE TABLE view_events (
    event_id    UUID PRIMARY KEY,
    position    BIGINT NOT NULL,
    event_type  TEXT NOT NULL,
    subject     TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    envelope    TEXT NOT NULL
);
CREATE TABLE touches (
    resource TEXT NOT NULL,
    event_id UUID NOT NULL,
    role     TEXT NOT NULL,
    PRIMARY KEY (resource, role, event_id)
);
CREATE TABLE flows (
    event_id UUID NOT NULL,
    ordinal  INTEGER NOT NULL,
    from_id  TEXT NOT NULL,
    to_id    TEXT NOT NULL,
    kind     TEXT NOT NULL,
    amount   DOUBLE PRECISION,
    unit     TEXT,
    organization TEXT NOT NULL,
    occurred BIGINT NOT NULL,
    PRIMARY KEY (event_id, ordinal)
);
CREATE INDEX flows_by_to ON flows (to_id);
CREATE INDEX flows_by_consumer ON flows (from_id, organization);
CREATE TABLE consignments (
    resource  TEXT NOT NULL,
    consignee TEXT NOT NULL,
    event_id  UUID NOT NULL,
    shipper   TEXT NOT NULL,
    occurred  BIGINT NOT NULL,
    PRIMARY KEY (resource, consignee, event_id)
);
CREATE INDEX consignments_by_time ON consignments (resource, consignee, occurred);
CREATE INDEX consignments_by_shipper ON consignments (resource, shipper);
CREATE TABLE movements (
    event_id     UUID NOT NULL,
    ordinal      INTEGER NOT NULL,
    resource     TEXT NOT NULL,
    organization TEXT NOT NULL,
    inflow       BOOLEAN NOT NULL,
    amount       DOUBLE PRECISION NOT NULL,
    unit         TEXT NOT NULL,
    PRIMARY KEY (event_id, ordinal)
);
CREATE INDEX movements_by_resource ON movements (resource);
CREATE INDEX touches_by_event ON touches (event_id);
CREATE TABLE records (
    resource TEXT PRIMARY KEY,
    record   TEXT NOT NULL
);
CREATE TABLE footprints (
    id        UUID PRIMARY KEY,
    resource  TEXT NOT NULL,
    version   INTEGER NOT NULL,
    status    TEXT NOT NULL,
    preceding UUID,
    issued_at BIGINT NOT NULL,
    footprint TEXT NOT NULL,
    UNIQUE (resource, version)
);
CREATE TABLE retracted (
    event_id UUID PRIMARY KEY,
    by_event UUID NOT NULL
);
",
    ),
    (
        2,
        "a count of the pages applied, to know when another process wrote; the methods in force",
        "
CREATE TABLE view_writes (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO view_writes (id, generation) VALUES (1, 0);
CREATE TABLE view_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
",
    ),
    (
        3,
        "the events in log order, and by the organisation that recorded them",
        "
CREATE UNIQUE INDEX view_events_by_position ON view_events (position);
CREATE INDEX view_events_by_recorder ON view_events (recorded_by, position);
",
    ),
    (
        4,
        "the offsets each Kafka consumer group consumed, stored with the views they produced",
        "
CREATE TABLE consumer_offsets (
    consumer_group TEXT NOT NULL,
    topic          TEXT NOT NULL,
    partition      INTEGER NOT NULL,
    next_offset    BIGINT NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition)
);
",
    ),
    (
        5,
        "the footprint versions in the order they were issued, for listing them",
        "
CREATE INDEX footprints_by_issue ON footprints (issued_at, id);
",
    ),
];

/// The advisory lock (one 64-bit key) held while migrating, so that two services starting
/// together migrate one after the other.
const MIGRATION_LOCK: i64 = 0x5374_6967_6d65_7267;
/// The class of the advisory locks (two 32-bit keys: this and the hash of the projector's name,
/// or the consumer group's) held by the transaction applying a page, so that one projector's
/// pages never interleave.
const PROJECTOR_LOCK: i32 = 0x5669_6577;

/// Connections kept open: the projector's one, and a few for the gateway's reads.
const POOL_SIZE: u32 = 4;
/// How long a call waits for a connection (and a new connection for the server) before
/// reporting the store unavailable, unless the URL says otherwise (`connect_timeout`).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// The views store in a PostgreSQL database.
#[derive(Clone)]
pub struct PostgresViewStore {
    pool: std::sync::Arc<Pool>,
    methods: std::sync::Arc<Methods>,
    /// What the refreshes read, kept across pages.
    remembered: std::sync::Arc<std::sync::Mutex<Remembered>>,
}

impl std::fmt::Debug for PostgresViewStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresViewStore").finish_non_exhaustive()
    }
}

fn unavailable(what: impl std::fmt::Display) -> Error {
    Error::Unavailable(what.to_string())
}

impl PostgresViewStore {
    /// Whether `sql`, given the event's id, finds a row.
    async fn has_event(&self, sql: &'static str, event_id: EventId) -> Result<bool> {
        let id = event_id.uuid();
        self.run(move |connection| Ok(connection.query_opt(sql, &[&id])?.is_some()))
            .await
    }

    /// Connects to the database of `url` (`postgres://user:password@host:port/database`),
    /// bringing its tables up to date, and derives records with `methods`.
    pub fn connect(url: &str, methods: Methods) -> Result<Self> {
        Self::connect_when_stale(url, methods, WhenStale::Rebuild)
    }

    /// [`connect`](Self::connect), doing `when` with views derived with other methods.
    pub fn connect_when_stale(url: &str, methods: Methods, when: WhenStale) -> Result<Self> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| unavailable(format!("invalid PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECTION_TIMEOUT);
        }
        // Connecting blocks on the client's own runtime, which Tokio forbids on an async thread.
        std::thread::scope(|scope| {
            scope
                .spawn(|| Self::connect_blocking(config, methods, when))
                .join()
        })
        .map_err(|_| unavailable("connecting to PostgreSQL panicked"))?
    }

    fn connect_blocking(
        config: postgres::Config,
        methods: Methods,
        when: WhenStale,
    ) -> Result<Self> {
        let mut client = config.connect(NoTls)?;
        migrate(&mut client, &VIEW_MIGRATIONS)?;
        rebuild_when_stale(&mut client, &methods, when)?;
        drop(client);
        Ok(Self {
            pool: std::sync::Arc::new(Pool::open(config, POOL_SIZE, CONNECTION_TIMEOUT)?),
            methods: std::sync::Arc::new(methods),
            remembered: std::sync::Arc::new(std::sync::Mutex::new(Remembered::new(MEMO_RESOURCES))),
        })
    }

    /// Keeps the facts of at most `resources` resources in memory from one page to the next
    /// (default [`MEMO_RESOURCES`]; 0 keeps none).
    pub fn with_memo_resources(self, resources: usize) -> Self {
        if let Ok(mut remembered) = self.remembered.lock() {
            *remembered = Remembered::new(resources);
        }
        self
    }

    /// Runs `work` with a connection of the pool on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let pool = pool
                .0
                .as_ref()
                .ok_or_else(|| unavailable("the PostgreSQL pool is closed"))?;
            let mut connection = pool
                .get()
                .map_err(|e| unavailable(format!("no PostgreSQL connection: {e}")))?;
            work(&mut connection)
        })
        .await
        .map_err(unavailable)?
    }

    /// Runs `write` with a connection of the pool, the methods and what the refreshes read, kept
    /// across pages; `write` returns the generation of the views it committed, if it wrote any,
    /// and what it read is kept for the next page — or forgotten when it failed.
    async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&mut Connection, &Methods, &mut Remembered) -> Result<(T, Option<i64>)>
        + Send
        + 'static,
    ) -> Result<T> {
        let methods = self.methods.clone();
        let remembered = self.remembered.clone();
        self.run(move |connection| {
            let mut remembered = remembered
                .lock()
                .map_err(|_| unavailable("a views writer panicked"))?;
            match write(connection, &methods, &mut remembered) {
                Ok((written, generation)) => {
                    if let Some(generation) = generation {
                        remembered.committed(generation);
                    }
                    Ok(written)
                }
                Err(error) => {
                    remembered.failed();
                    Err(error)
                }
            }
        })
        .await
    }

    /// How many resources are upstream of `resource` up to `max_depth` levels, itself included,
    /// through the flows of events that are not retracted — computed by ONE recursive query, the
    /// baseline the level-by-level walk of [`ViewStore::lineage`] is measured against.
    ///
    /// The rows are (resource, depth) pairs united with `UNION`, so a cycle is followed only
    /// until `max_depth` and the work is bounded by resources × depth, never by paths.
    pub async fn upstream_by_recursive_cte(&self, resource: &Iri, max_depth: u32) -> Result<usize> {
        let resource = resource.to_string();
        let max_depth = i32::try_from(max_depth).unwrap_or(i32::MAX);
        self.run(move |connection| {
            let row = connection.query_one(
                "WITH RECURSIVE upstream (node, depth) AS (
                     SELECT $1::text, 0
                     UNION
                     SELECT f.from_id, u.depth + 1 FROM upstream u JOIN flows f ON f.to_id = u.node
                     WHERE u.depth < $2
                     AND NOT EXISTS (SELECT 1 FROM retracted r WHERE r.event_id = f.event_id)
                 )
                 SELECT count(DISTINCT node) FROM upstream",
                &[&resource, &max_depth],
            )?;
            let count: i64 = row.try_get(0)?;
            usize::try_from(count).map_err(corrupt)
        })
        .await
    }
}

/// The views' migrations.
const VIEW_MIGRATIONS: Migrations = Migrations {
    table: "view_migrations",
    lock: MIGRATION_LOCK,
    what: "the PostgreSQL views store",
    steps: MIGRATIONS,
};

/// The views are derived data: when they were derived with other methods (other emission
/// factors or value-equation weights) than `methods`, they are emptied, and the projectors,
/// finding no position (and no consumed offset), replay the log (the topics) into them from the
/// start. The page count moves on, so a process holding facts in memory from before forgets them.
fn rebuild_when_stale(client: &mut Client, methods: &Methods, when: WhenStale) -> Result<()> {
    let fingerprint = methods_fingerprint(methods);
    let mut transaction = client.transaction()?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    let recorded: Option<String> = transaction
        .query_opt("SELECT value FROM view_meta WHERE key = 'methods'", &[])?
        .map(|row| row.try_get(0))
        .transpose()?;
    if recorded.as_deref() == Some(fingerprint.as_str()) {
        return Ok(());
    }
    if when == WhenStale::Refuse && recorded.is_some() {
        return Err(stale("the views in PostgreSQL"));
    }
    transaction.batch_execute(
        "TRUNCATE projector_positions, consumer_offsets, view_events, touches, flows,
                  consignments, movements, records, footprints, retracted;
         UPDATE view_writes SET generation = generation + 1 WHERE id = 1;",
    )?;
    transaction.execute(
        "INSERT INTO view_meta (key, value) VALUES ('methods', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&fingerprint],
    )?;
    transaction.commit()?;
    Ok(())
}

fn position_param(position: LogPosition) -> Result<i64> {
    i64::try_from(position.0).map_err(|_| {
        unavailable(format!(
            "log position {position:?} exceeds PostgreSQL's BIGINT"
        ))
    })
}

/// The columns [`footprint_version`] reads, of `footprints` (a macro, so that statements are
/// whole at compile time and can be prepared once per connection).
macro_rules! footprint_columns {
    () => {
        "id, version, status, preceding, issued_at, footprint, resource"
    };
}

fn footprint_version(row: &Row) -> Result<FootprintVersion> {
    let version: i32 = row.try_get(1)?;
    let status: &str = row.try_get(2)?;
    let footprint: &str = row.try_get(5)?;
    let resource: &str = row.try_get(6)?;
    Ok(FootprintVersion {
        id: row.try_get(0)?,
        resource: Iri::parse(resource).map_err(corrupt)?,
        version: u32::try_from(version).map_err(corrupt)?,
        status: FootprintStatus::from_name(status).ok_or_else(|| corrupt(status))?,
        preceding: row.try_get(3)?,
        issued_at: position_from(row, 4)?,
        footprint: serde_json::from_str(footprint).map_err(corrupt)?,
    })
}

fn position_from(row: &Row, column: usize) -> Result<LogPosition> {
    let position: i64 = row.try_get(column)?;
    u64::try_from(position).map(LogPosition).map_err(corrupt)
}

#[async_trait]
impl ViewStore for PostgresViewStore {
    async fn position(&self, projector: &str) -> Result<LogPosition> {
        let projector = projector.to_owned();
        self.run(move |connection| {
            match connection.query_opt(
                "SELECT position FROM projector_positions WHERE projector = $1",
                &[&projector],
            )? {
                Some(row) => position_from(&row, 0),
                None => Ok(LogPosition(0)),
            }
        })
        .await
    }

    async fn apply(&self, projector: &str, page: Vec<(LogPosition, Event)>) -> Result<()> {
        let Some(last) = page.last().map(|(position, _)| *position) else {
            return Ok(());
        };
        let projector = projector.to_owned();
        self.write(move |client, methods, remembered| {
            let generation =
                apply_page(client, &projector, &shared(page), last, methods, remembered)?;
            Ok(((), Some(generation)))
        })
        .await
    }

    async fn consumed(&self, group: &str) -> Result<Vec<PartitionOffset>> {
        let group = group.to_owned();
        self.run(move |connection| {
            let rows = connection.query(
                "SELECT topic, partition, next_offset FROM consumer_offsets
                 WHERE consumer_group = $1 ORDER BY topic COLLATE \"C\", partition",
                &[&group],
            )?;
            rows.iter()
                .map(|row| {
                    Ok(PartitionOffset {
                        topic: row.try_get(0)?,
                        partition: row.try_get(1)?,
                        next: row.try_get(2)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn apply_consumed(
        &self,
        group: &str,
        events: Vec<Event>,
        offsets: Vec<PartitionOffset>,
    ) -> Result<usize> {
        if events.is_empty() && offsets.is_empty() {
            return Ok(0);
        }
        let group = group.to_owned();
        self.write(move |client, methods, remembered| {
            apply_consumed(client, &group, events, offsets, methods, remembered)
        })
        .await
    }

    async fn timeline(&self, resource: &Iri) -> Result<Vec<TimelineEntry>> {
        let resource = resource.to_string();
        self.run(move |connection| {
            let rows = connection.query(
                "SELECT e.position, e.envelope, t.role FROM touches t
                 JOIN view_events e ON e.event_id = t.event_id
                 WHERE t.resource = $1
                 AND NOT EXISTS (SELECT 1 FROM retracted r WHERE r.event_id = t.event_id)
                 ORDER BY e.occurred_at COLLATE \"C\", e.position, t.role COLLATE \"C\"",
                &[&resource],
            )?;
            let mut entries = Vec::with_capacity(rows.len());
            for row in rows {
                let envelope: &str = row.try_get(1)?;
                let role: &str = row.try_get(2)?;
                entries.push(TimelineEntry {
                    position: position_from(&row, 0)?,
                    event: serde_json::from_str(envelope).map_err(corrupt)?,
                    role: role_from(role).ok_or_else(|| corrupt(role))?,
                });
            }
            Ok(entries)
        })
        .await
    }

    async fn lineage(
        &self,
        resource: &Iri,
        direction: Direction,
        max_depth: u32,
    ) -> Result<Lineage> {
        let resource = resource.clone();
        self.run(move |connection| {
            let Connection { client, statements } = connection;
            walk(&resource, direction, max_depth, |direction, frontier| {
                neighbours(client, statements, direction, frontier, i64::MIN)
            })
        })
        .await
    }

    async fn record(&self, resource: &Iri) -> Result<Option<Record>> {
        let resource = resource.clone();
        self.run(move |connection| {
            let Connection { client, statements } = connection;
            read_record(client, statements, &resource)
        })
        .await
    }

    async fn footprint_versions(&self, resource: &Iri) -> Result<Vec<FootprintVersion>> {
        let resource = resource.clone();
        self.run(move |connection| {
            let rows = connection.query(
                "SELECT id, version, status, preceding, issued_at, footprint FROM footprints
                 WHERE resource = $1 ORDER BY version",
                &[&resource.as_str()],
            )?;
            let mut versions = Vec::with_capacity(rows.len());
            for row in rows {
                let version: i32 = row.try_get(1)?;
                let status: &str = row.try_get(2)?;
                let footprint: &str = row.try_get(5)?;
                versions.push(FootprintVersion {
                    id: row.try_get(0)?,
                    resource: resource.clone(),
                    version: u32::try_from(version).map_err(corrupt)?,
                    status: FootprintStatus::from_name(status).ok_or_else(|| corrupt(status))?,
                    preceding: row.try_get(3)?,
                    issued_at: position_from(&row, 4)?,
                    footprint: serde_json::from_str(footprint).map_err(corrupt)?,
                });
            }
            Ok(versions)
        })
        .await
    }

    async fn footprint_version(&self, id: uuid::Uuid) -> Result<Option<FootprintVersion>> {
        self.run(move |connection| {
            connection
                .query_opt(
                    concat!(
                        "SELECT ",
                        footprint_columns!(),
                        " FROM footprints WHERE id = $1"
                    ),
                    &[&id],
                )?
                .map(|row| footprint_version(&row))
                .transpose()
        })
        .await
    }

    async fn footprint_page(
        &self,
        filter: &FootprintFilter,
        after: Option<FootprintCursor>,
        limit: usize,
    ) -> Result<Vec<FootprintVersion>> {
        if limit == 0 || filter.resources.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Vec::new());
        }
        let (issued_at, id) = match after {
            Some(cursor) => (
                i64::try_from(cursor.issued_at.0).map_err(corrupt)?,
                cursor.id,
            ),
            // Positions start at 1.
            None => (0, uuid::Uuid::nil()),
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let status = filter.status.map(FootprintStatus::name);
        let resources: Option<Vec<String>> = filter
            .resources
            .as_ref()
            .map(|resources| resources.iter().map(Iri::to_string).collect());
        self.run(move |connection| {
            let rows = connection.query(
                concat!(
                    "SELECT ",
                    footprint_columns!(),
                    " FROM footprints
                     WHERE issued_at >= $1 AND (issued_at > $1 OR id > $2)
                     AND ($3::TEXT IS NULL OR status = $3)
                     AND ($4::TEXT[] IS NULL OR resource = ANY($4))
                     ORDER BY issued_at, id LIMIT $5"
                ),
                &[&issued_at, &id, &status, &resources, &limit],
            )?;
            rows.iter().map(footprint_version).collect()
        })
        .await
    }

    async fn footprint_provenance(
        &self,
        version: &FootprintVersion,
    ) -> Result<Option<FootprintProvenance>> {
        let resource = version.resource.to_string();
        let issued_at = i64::try_from(version.issued_at.0).map_err(corrupt)?;
        self.run(move |connection| {
            let Some(row) = connection.query_opt(
                "SELECT envelope FROM view_events WHERE position = $1",
                &[&issued_at],
            )?
            else {
                return Ok(None);
            };
            let issued = recorded_at(row.try_get(0)?)?;
            let rows = connection.query(
                "SELECT e.position, t.role, e.envelope FROM touches t
                 JOIN view_events e ON e.event_id = t.event_id
                 WHERE t.resource = $1 AND t.role IN ('created', 'repaired')
                 AND e.position <= $2
                 AND NOT EXISTS (SELECT 1 FROM retracted x
                     JOIN view_events b ON b.event_id = x.by_event
                     WHERE x.event_id = t.event_id AND b.position <= $2)",
                &[&resource, &issued_at],
            )?;
            let mut counted: Vec<CountedEvent> = Vec::with_capacity(rows.len());
            for row in &rows {
                let role: &str = row.try_get(1)?;
                let envelope: &str = row.try_get(2)?;
                counted.push((
                    position_from(row, 0)?,
                    role_from(role).ok_or_else(|| corrupt(role))?,
                    serde_json::from_str(envelope).map_err(corrupt)?,
                ));
            }
            Ok(provenance_of(issued, &counted))
        })
        .await
    }

    async fn is_retracted(&self, event_id: EventId) -> Result<bool> {
        self.has_event("SELECT 1 FROM retracted WHERE event_id = $1", event_id)
            .await
    }

    async fn holds(&self, event_id: EventId) -> Result<bool> {
        self.has_event("SELECT 1 FROM view_events WHERE event_id = $1", event_id)
            .await
    }

    async fn events(
        &self,
        scope: &EventScope,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<ListedEvent>> {
        let scope = scope.clone();
        let after = i64::try_from(after.0).map_err(corrupt)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |connection| {
            macro_rules! columns {
                () => {
                    "SELECT e.position, e.envelope,
                     EXISTS (SELECT 1 FROM retracted r WHERE r.event_id = e.event_id)
                     FROM view_events e"
                };
            }
            let rows = match &scope {
                EventScope::All => connection.query(
                    concat!(
                        columns!(),
                        " WHERE e.position > $1 ORDER BY e.position LIMIT $2"
                    ),
                    &[&after, &limit],
                )?,
                EventScope::RecordedBy(organization) => connection.query(
                    concat!(
                        columns!(),
                        " WHERE e.position > $1 AND e.recorded_by = $3
                         ORDER BY e.position LIMIT $2"
                    ),
                    &[&after, &limit, &organization.as_str()],
                )?,
                EventScope::Touching(resource) => connection.query(
                    concat!(
                        columns!(),
                        " WHERE e.position > $1
                         AND e.event_id IN (SELECT t.event_id FROM touches t WHERE t.resource = $3)
                         ORDER BY e.position LIMIT $2"
                    ),
                    &[&after, &limit, &resource.as_str()],
                )?,
            };
            rows.iter()
                .map(|row| {
                    let envelope: &str = row.try_get(1)?;
                    Ok(ListedEvent {
                        position: position_from(row, 0)?,
                        event: serde_json::from_str(envelope).map_err(corrupt)?,
                        retracted: row.try_get(2)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn records(&self, resources: &[Iri]) -> Result<Vec<(Iri, Record)>> {
        let resources: Vec<String> = resources.iter().map(Iri::to_string).collect();
        self.run(move |connection| {
            let rows = connection.query(
                "SELECT resource, record FROM records WHERE resource = ANY($1)",
                &[&resources],
            )?;
            rows.iter().map(resource_and_record).collect()
        })
        .await
    }

    async fn search(&self, text: &str, limit: usize) -> Result<Vec<(Iri, Record)>> {
        let text = text.to_lowercase();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |connection| {
            let rows = connection.query(
                "SELECT resource, record FROM records
                 WHERE strpos(lower(record::jsonb ->> 'name'), $1) > 0
                 ORDER BY resource COLLATE \"C\" LIMIT $2",
                &[&text, &limit],
            )?;
            rows.iter().map(resource_and_record).collect()
        })
        .await
    }

    async fn holders(&self, resource: &Iri) -> Result<Vec<(OrganizationId, Held)>> {
        let resource = resource.clone();
        self.run(move |connection| {
            let rows = connection.query(
                "SELECT m.organization, m.unit,
                 sum(CASE WHEN m.inflow THEN m.amount ELSE -m.amount END) AS held
                 FROM movements m WHERE m.resource = $1
                 AND NOT EXISTS (SELECT 1 FROM retracted x WHERE x.event_id = m.event_id)
                 GROUP BY m.organization, m.unit
                 HAVING sum(CASE WHEN m.inflow THEN m.amount ELSE -m.amount END) > $2
                 ORDER BY m.organization COLLATE \"C\", m.unit COLLATE \"C\"",
                &[&resource.as_str(), &HELD_EPSILON],
            )?;
            rows.iter()
                .map(|row| {
                    let organization: &str = row.try_get(0)?;
                    let unit: &str = row.try_get(1)?;
                    Ok((
                        Iri::parse(organization).map_err(corrupt)?,
                        Held::read(resource.clone(), row.try_get(2)?, unit)?,
                    ))
                })
                .collect()
        })
        .await
    }

    async fn held_by(&self, organization: &OrganizationId, limit: usize) -> Result<Vec<Held>> {
        let organization = organization.to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |connection| {
            // Every movement is the recording organisation's own (see `EventIndex::of`), so
            // the organisation's events find its movements.
            let rows = connection.query(
                "SELECT m.resource, m.unit,
                 sum(CASE WHEN m.inflow THEN m.amount ELSE -m.amount END) AS held
                 FROM view_events e JOIN movements m ON m.event_id = e.event_id
                 WHERE e.recorded_by = $1 AND m.organization = $1
                 AND NOT EXISTS (SELECT 1 FROM retracted x WHERE x.event_id = e.event_id)
                 GROUP BY m.resource, m.unit
                 HAVING sum(CASE WHEN m.inflow THEN m.amount ELSE -m.amount END) > $2
                 ORDER BY m.resource COLLATE \"C\", m.unit COLLATE \"C\" LIMIT $3",
                &[&organization, &HELD_EPSILON, &limit],
            )?;
            rows.iter()
                .map(|row| {
                    let resource: &str = row.try_get(0)?;
                    let unit: &str = row.try_get(1)?;
                    Held::read(
                        Iri::parse(resource).map_err(corrupt)?,
                        row.try_get(2)?,
                        unit,
                    )
                })
                .collect()
        })
        .await
    }
}

/// A row of (resource, record).
fn resource_and_record(row: &Row) -> Result<(Iri, Record)> {
    let resource: &str = row.try_get(0)?;
    let record: &str = row.try_get(1)?;
    Ok((
        Iri::parse(resource).map_err(corrupt)?,
        serde_json::from_str(record).map_err(corrupt)?,
    ))
}

/// Applies a page in one transaction (see [`ViewStore::apply`]), and returns the generation of
/// the views it wrote.
fn apply_page(
    connection: &mut Connection,
    projector: &str,
    page: &[(LogPosition, Arc<Event>)],
    last: LogPosition,
    methods: &Methods,
    remembered: &mut Remembered,
) -> Result<i64> {
    let Connection { client, statements } = connection;
    let mut transaction = client.transaction()?;
    lock_projector(&mut transaction, projector)?;
    let generation = write_page(
        &mut transaction,
        statements,
        page,
        last,
        methods,
        remembered,
    )?;
    advance(&mut transaction, projector, last)?;
    transaction.commit()?;
    Ok(generation)
}

/// Applies events consumed from partitioned topics and stores `group`'s offsets, in one
/// transaction (see [`ViewStore::apply_consumed`]); returns how many events were new, and the
/// generation of the views written when any was.
fn apply_consumed(
    connection: &mut Connection,
    group: &str,
    events: Vec<Event>,
    offsets: Vec<PartitionOffset>,
    methods: &Methods,
    remembered: &mut Remembered,
) -> Result<(usize, Option<i64>)> {
    let Connection { client, statements } = connection;
    let mut transaction = client.transaction()?;
    // Before reading what the views hold: another process of the group waits until this one
    // has committed, then finds its events.
    lock_projector(&mut transaction, group)?;
    let ids: Vec<uuid::Uuid> = events.iter().map(|event| event.event_id.uuid()).collect();
    let known = transaction
        .query(
            "SELECT event_id FROM view_events WHERE event_id = ANY($1)",
            &[&ids],
        )?
        .iter()
        .map(|row| row.try_get(0).map(EventId::from_uuid))
        .collect::<Result<HashSet<EventId>, _>>()?;
    let head = position_from(
        &transaction.query_one("SELECT COALESCE(MAX(position), 0) FROM view_events", &[])?,
        0,
    )?;
    let page = shared(unseen(events, known, head));
    let generation = match page.last() {
        Some(&(last, _)) => {
            let generation = write_page(
                &mut transaction,
                statements,
                &page,
                last,
                methods,
                remembered,
            )?;
            advance(&mut transaction, group, last)?;
            Some(generation)
        }
        None => None,
    };
    let offsets = merged_offsets(offsets);
    let topics: Vec<&str> = offsets.iter().map(|o| o.topic.as_str()).collect();
    let partitions: Vec<i32> = offsets.iter().map(|o| o.partition).collect();
    let nexts: Vec<i64> = offsets.iter().map(|o| o.next).collect();
    transaction.execute(
        "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset)
         SELECT $1::text, * FROM UNNEST($2::text[], $3::int[], $4::bigint[])
         ON CONFLICT (consumer_group, topic, partition)
         DO UPDATE SET next_offset = GREATEST(consumer_offsets.next_offset, excluded.next_offset)",
        &[&group, &topics, &partitions, &nexts],
    )?;
    transaction.commit()?;
    Ok((page.len(), generation))
}

/// Takes the advisory lock of `projector` (or consumer group) for the rest of the transaction.
fn lock_projector(transaction: &mut Transaction<'_>, projector: &str) -> Result<()> {
    transaction.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&PROJECTOR_LOCK, &projector],
    )?;
    Ok(())
}

/// Moves `projector` to `last`, unless it is further already.
fn advance(transaction: &mut Transaction<'_>, projector: &str, last: LogPosition) -> Result<()> {
    transaction.execute(
        "INSERT INTO projector_positions (projector, position) VALUES ($1, $2)
         ON CONFLICT (projector)
         DO UPDATE SET position = GREATEST(projector_positions.position, excluded.position)",
        &[&projector, &position_param(last)?],
    )?;
    Ok(())
}

/// Writes a page at its positions — its events and index rows, the records it changes and the
/// footprint versions they issue — in `transaction`, counting one more generation of the views,
/// and returns that generation.
fn write_page(
    transaction: &mut Transaction<'_>,
    statements: &mut Statements,
    page: &[(LogPosition, Arc<Event>)],
    last: LogPosition,
    methods: &Methods,
    remembered: &mut Remembered,
) -> Result<i64> {
    let generation: i64 = transaction
        .query_one(
            "UPDATE view_writes SET generation = generation + 1 WHERE id = 1 RETURNING generation",
            &[],
        )?
        .try_get(0)?;
    let memo = remembered.for_generation(generation);
    let empty: bool = transaction
        .query_one("SELECT NOT EXISTS (SELECT 1 FROM view_events)", &[])?
        .try_get(0)?;
    if empty {
        // The ledger answers from memory: the memo would only copy its answers.
        memo.clear();
        let derived = std::thread::scope(|scope| {
            let deriving = scope.spawn(move || derive_first_page(page, methods));
            let written = store_page(transaction, statements, page);
            let derived = deriving
                .join()
                .map_err(|_| unavailable("deriving the views panicked"))?;
            written.and(derived)
        })?;
        store_records(transaction, statements, derived, last)?;
    } else {
        let indexes = store_page(transaction, statements, page)?;
        let indexed: Vec<(&Event, EventIndex)> = page
            .iter()
            .map(|(_, event)| event.as_ref())
            .zip(indexes)
            .collect();
        let mut facts = PostgresFacts {
            transaction,
            statements,
            issued_at: last,
        };
        memo.refresh_page(&mut facts, &indexed, methods)?;
    }
    Ok(generation)
}

fn read_record(
    client: &mut impl GenericClient,
    statements: &mut Statements,
    resource: &Iri,
) -> Result<Option<Record>> {
    let rows = statements.query(
        client,
        "SELECT record FROM records WHERE resource = $1",
        &[&resource.as_str()],
    )?;
    match rows.first() {
        Some(row) => {
            let json: &str = row.try_get(0)?;
            Ok(Some(serde_json::from_str(json).map_err(corrupt)?))
        }
        None => Ok(None),
    }
}

/// The store as the derivation reads and writes it, inside the transaction applying a page.
struct PostgresFacts<'a, 't> {
    transaction: &'a mut Transaction<'t>,
    statements: &'a mut Statements,
    /// The position of the page's last event, stamped on the footprint versions it issues.
    issued_at: LogPosition,
}

impl Facts for PostgresFacts<'_, '_> {
    type Error = Error;

    fn events(&mut self, resource: &Iri, roles: &[Role]) -> Result<Vec<Arc<Event>>> {
        let roles: Vec<&str> = roles.iter().map(|role| role.name()).collect();
        let rows = self.statements.query(
            self.transaction,
            "SELECT e.envelope FROM view_events e
             WHERE e.event_id IN (
                 SELECT t.event_id FROM touches t WHERE t.resource = $1 AND t.role = ANY($2)
             )
             AND NOT EXISTS (SELECT 1 FROM retracted r WHERE r.event_id = e.event_id)
             ORDER BY e.event_id",
            &[&resource.as_str(), &roles],
        )?;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let envelope: &str = row.try_get(0)?;
            events.push(Arc::new(serde_json::from_str(envelope).map_err(corrupt)?));
        }
        Ok(events)
    }

    fn flows_from(&mut self, resource: &Iri, since: Option<Timestamp>) -> Result<Vec<Flow>> {
        neighbours(
            self.transaction,
            self.statements,
            Direction::Downstream,
            std::slice::from_ref(resource),
            since.map_or(i64::MIN, |t| t.unix_micros()),
        )
    }

    fn consumers(
        &mut self,
        resource: &Iri,
        organization: &OrganizationId,
        since: Timestamp,
    ) -> Result<Vec<Iri>> {
        let rows = self.statements.query(
            self.transaction,
            "SELECT DISTINCT f.to_id COLLATE \"C\" FROM flows f
             WHERE f.from_id = $1 AND f.organization = $2 AND f.occurred >= $3
             AND f.kind IN ('input', 'part')
             AND NOT EXISTS (SELECT 1 FROM retracted r WHERE r.event_id = f.event_id)
             ORDER BY 1",
            &[
                &resource.as_str(),
                &organization.as_str(),
                &since.unix_micros(),
            ],
        )?;
        iris(&rows)
    }

    fn latest_dispatch_to(
        &mut self,
        resource: &Iri,
        consignee: &OrganizationId,
        at: Timestamp,
    ) -> Result<Option<Arc<Event>>> {
        let rows = self.statements.query(
            self.transaction,
            "SELECT e.envelope FROM consignments c JOIN view_events e ON e.event_id = c.event_id
             WHERE c.resource = $1 AND c.consignee = $2 AND c.occurred <= $3
             AND NOT EXISTS (SELECT 1 FROM retracted r WHERE r.event_id = c.event_id)
             ORDER BY c.occurred DESC, c.event_id DESC LIMIT 1",
            &[&resource.as_str(), &consignee.as_str(), &at.unix_micros()],
        )?;
        match rows.first() {
            Some(row) => {
                let envelope: &str = row.try_get(0)?;
                Ok(Some(Arc::new(
                    serde_json::from_str(envelope).map_err(corrupt)?,
                )))
            }
            None => Ok(None),
        }
    }

    fn consignees(
        &mut self,
        resource: &Iri,
        shipper: &OrganizationId,
    ) -> Result<Vec<OrganizationId>> {
        let rows = self.statements.query(
            self.transaction,
            "SELECT DISTINCT c.consignee COLLATE \"C\" FROM consignments c
             WHERE c.resource = $1 AND c.shipper = $2
             AND NOT EXISTS (SELECT 1 FROM retracted r WHERE r.event_id = c.event_id)
             ORDER BY 1",
            &[&resource.as_str(), &shipper.as_str()],
        )?;
        iris(&rows)
    }

    fn holdings(&mut self, resource: &Iri) -> Result<Vec<Holding>> {
        let rows = self.statements.query(
            self.transaction,
            "SELECT m.organization COLLATE \"C\", m.unit COLLATE \"C\",
             COALESCE(SUM(CASE WHEN m.inflow THEN m.amount ELSE 0 END), 0),
             COALESCE(SUM(CASE WHEN m.inflow THEN 0 ELSE m.amount END), 0)
             FROM movements m WHERE m.resource = $1
             AND NOT EXISTS (SELECT 1 FROM retracted r WHERE r.event_id = m.event_id)
             GROUP BY 1, 2 ORDER BY 1, 2",
            &[&resource.as_str()],
        )?;
        let mut holdings = Vec::with_capacity(rows.len());
        for row in rows {
            let organization: &str = row.try_get(0)?;
            let unit: &str = row.try_get(1)?;
            holdings.push(Holding {
                organization: Iri::parse(organization).map_err(corrupt)?,
                unit: Unit::from_code(unit).ok_or_else(|| corrupt(unit))?,
                inflow: row.try_get(2)?,
                outflow: row.try_get(3)?,
            });
        }
        Ok(holdings)
    }

    fn movement_events(
        &mut self,
        resource: &Iri,
        organization: &OrganizationId,
    ) -> Result<Vec<EventId>> {
        let rows = self.statements.query(
            self.transaction,
            "SELECT DISTINCT m.event_id FROM movements m
             WHERE m.resource = $1 AND m.organization = $2
             AND NOT EXISTS (SELECT 1 FROM retracted r WHERE r.event_id = m.event_id)
             ORDER BY m.event_id",
            &[&resource.as_str(), &organization.as_str()],
        )?;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let id: uuid::Uuid = row.try_get(0)?;
            events.push(EventId::from_uuid(id));
        }
        Ok(events)
    }

    fn touched_by(&mut self, event: EventId) -> Result<Option<Touching>> {
        let id = event.uuid();
        let found = self.statements.query(
            self.transaction,
            "SELECT envelope FROM view_events WHERE event_id = $1",
            &[&id],
        )?;
        let Some(found) = found.first() else {
            return Ok(None);
        };
        let envelope: &str = found.try_get(0)?;
        let gone: Arc<Event> = Arc::new(serde_json::from_str(envelope).map_err(corrupt)?);
        let rows = self.statements.query(
            self.transaction,
            "SELECT DISTINCT resource COLLATE \"C\" FROM touches WHERE event_id = $1 ORDER BY 1",
            &[&id],
        )?;
        Ok(Some((gone, iris(&rows)?)))
    }

    fn record(&mut self, resource: &Iri) -> Result<Option<Arc<Record>>> {
        Ok(read_record(self.transaction, self.statements, resource)?.map(Arc::new))
    }

    fn save(
        &mut self,
        resource: &Iri,
        record: &Arc<Record>,
        change: FootprintChange,
    ) -> Result<()> {
        let json = serde_json::to_string(record.as_ref()).map_err(corrupt)?;
        self.statements.execute(
            self.transaction,
            "INSERT INTO records (resource, record) VALUES ($1, $2)
             ON CONFLICT (resource) DO UPDATE SET record = excluded.record",
            &[&resource.as_str(), &json],
        )?;
        if change == FootprintChange::Unchanged {
            return Ok(());
        }
        let current = self.statements.query(
            self.transaction,
            "SELECT id, version FROM footprints WHERE resource = $1 ORDER BY version DESC LIMIT 1",
            &[&resource.as_str()],
        )?;
        let current: Option<(uuid::Uuid, i32)> = match current.first() {
            Some(row) => Some((row.try_get(0)?, row.try_get(1)?)),
            None => None,
        };
        if let Some((id, _)) = &current {
            self.statements.execute(
                self.transaction,
                "UPDATE footprints SET status = 'Deprecated' WHERE id = $1",
                &[id],
            )?;
        }
        if let (FootprintChange::Issued, Some(footprint)) = (change, &record.footprint) {
            let version = current.as_ref().map_or(1, |(_, version)| version + 1);
            let number = u32::try_from(version).map_err(corrupt)?;
            self.statements.execute(
                self.transaction,
                "INSERT INTO footprints (id, resource, version, status, preceding, issued_at, footprint)
                 VALUES ($1, $2, $3, 'Active', $4, $5, $6)",
                &[
                    &footprint_id(resource, number),
                    &resource.as_str(),
                    &version,
                    &current.map(|(id, _)| id),
                    &position_param(self.issued_at)?,
                    &serde_json::to_string(footprint).map_err(corrupt)?,
                ],
            )?;
        }
        Ok(())
    }
}

/// Most events written by one statement: a statement's parameters must stay well under
/// PostgreSQL's limit of 1 GB per value, and a page may hold a million events.
const EVENTS_PER_STATEMENT: usize = 20_000;

/// Writes a page of events and their index rows (upserts), one statement per table for every
/// [`EVENTS_PER_STATEMENT`] events, and returns each event's rows for the refresh.
fn store_page(
    transaction: &mut Transaction<'_>,
    statements: &mut Statements,
    page: &[(LogPosition, Arc<Event>)],
) -> Result<Vec<EventIndex>> {
    let mut indexes = Vec::with_capacity(page.len());
    for part in page.chunks(EVENTS_PER_STATEMENT) {
        indexes.extend(store_events(transaction, statements, part)?);
    }
    Ok(indexes)
}

/// Writes the records derived from a first page ([`derive_first_page`]) and the footprint
/// versions they issued, one statement per table for every [`EVENTS_PER_STATEMENT`] records.
fn store_records(
    transaction: &mut Transaction<'_>,
    statements: &mut Statements,
    derived: Vec<Derived>,
    last: LogPosition,
) -> Result<()> {
    let issued_at = position_param(last)?;
    for part in derived.chunks(EVENTS_PER_STATEMENT) {
        let resources: Vec<&str> = part.iter().map(|d| d.resource.as_str()).collect();
        let records: Vec<&str> = part.iter().map(|d| d.record.as_str()).collect();
        statements.execute(
            transaction,
            "INSERT INTO records (resource, record) SELECT * FROM UNNEST($1::text[], $2::text[])",
            &[&resources, &records],
        )?;
        let mut versions = FootprintColumns::default();
        for derived in part {
            let mut preceding = None;
            let issued = derived.footprints.len();
            for (n, footprint) in derived.footprints.iter().enumerate() {
                let version = u32::try_from(n + 1).map_err(corrupt)?;
                let id = footprint_id(&derived.resource, version);
                let active = n + 1 == issued && !derived.withdrawn;
                versions.id.push(id);
                versions.resource.push(derived.resource.as_str());
                versions
                    .version
                    .push(i32::try_from(version).map_err(corrupt)?);
                versions.status.push(if active {
                    FootprintStatus::Active.name()
                } else {
                    FootprintStatus::Deprecated.name()
                });
                versions.preceding.push(preceding);
                versions.footprint.push(footprint.as_str());
                preceding = Some(id);
            }
        }
        let issued_at = vec![issued_at; versions.id.len()];
        statements.execute(
            transaction,
            "INSERT INTO footprints (id, resource, version, status, preceding, issued_at, footprint)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::int[], $4::text[], $5::uuid[],
                                  $6::bigint[], $7::text[])",
            &[
                &versions.id,
                &versions.resource,
                &versions.version,
                &versions.status,
                &versions.preceding,
                &issued_at,
                &versions.footprint,
            ],
        )?;
    }
    Ok(())
}

/// The columns of footprint versions.
#[derive(Default)]
struct FootprintColumns<'a> {
    id: Vec<uuid::Uuid>,
    resource: Vec<&'a str>,
    version: Vec<i32>,
    status: Vec<&'static str>,
    preceding: Vec<Option<uuid::Uuid>>,
    footprint: Vec<&'a str>,
}

/// Writes events and their index rows (upserts), one statement per table, and returns each
/// event's rows for the refresh.
fn store_events(
    transaction: &mut Transaction<'_>,
    statements: &mut Statements,
    page: &[(LogPosition, Arc<Event>)],
) -> Result<Vec<EventIndex>> {
    let mut events = EventColumns::default();
    let mut touches: (Vec<&str>, Vec<uuid::Uuid>, Vec<&str>) = Default::default();
    let mut flows = FlowColumns::default();
    let mut consignments = ConsignmentColumns::default();
    let mut movements = MovementColumns::default();
    let mut retracted: (Vec<uuid::Uuid>, Vec<uuid::Uuid>) = Default::default();
    let indexes: Vec<EventIndex> = page
        .iter()
        .map(|(position, event)| EventIndex::of(event, *position))
        .collect();
    for ((position, event), index) in page.iter().zip(&indexes) {
        let id = event.event_id.uuid();
        events.id.push(id);
        events.position.push(position_param(*position)?);
        events.event_type.push(event.event_type().name());
        events.subject.push(event.subject.as_str());
        events.recorded_by.push(event.recorded_by.as_str());
        events.occurred_at.push(event.occurred_at.to_string());
        events
            .envelope
            .push(serde_json::to_string(event.as_ref()).map_err(corrupt)?);
        for row in &index.touches {
            touches.0.push(row.resource.as_str());
            touches.1.push(id);
            touches.2.push(row.role.name());
        }
        let occurred = event.occurred_at.unix_micros();
        for (ordinal, row) in index.flows.iter().enumerate() {
            flows.id.push(id);
            flows.ordinal.push(ordinal_param(ordinal)?);
            flows.from.push(row.from.as_str());
            flows.to.push(row.to.as_str());
            flows.kind.push(row.kind.name());
            flows.amount.push(row.quantity.map(|q| q.amount.get()));
            flows.unit.push(row.quantity.map(|q| q.unit.code()));
            flows.organization.push(event.recorded_by.as_str());
            flows.occurred.push(occurred);
        }
        for row in &index.consignments {
            consignments.resource.push(row.resource.as_str());
            consignments.consignee.push(row.consignee.as_str());
            consignments.id.push(id);
            consignments.shipper.push(row.shipper.as_str());
            consignments.occurred.push(occurred);
        }
        for (ordinal, row) in index.movements.iter().enumerate() {
            movements.id.push(id);
            movements.ordinal.push(ordinal_param(ordinal)?);
            movements.resource.push(row.resource.as_str());
            movements.organization.push(row.organization.as_str());
            movements.inflow.push(row.inflow);
            movements.amount.push(row.measure.amount);
            movements.unit.push(row.measure.unit.code());
        }
        if let Some(of) = EventIndex::retracts(event) {
            retracted.0.push(of.uuid());
            retracted.1.push(id);
        }
    }
    statements.execute(
        transaction,
        "INSERT INTO view_events (event_id, position, event_type, subject, recorded_by, occurred_at, envelope)
         SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
         ON CONFLICT (event_id) DO NOTHING",
        &[
            &events.id,
            &events.position,
            &events.event_type,
            &events.subject,
            &events.recorded_by,
            &events.occurred_at,
            &events.envelope,
        ],
    )?;
    statements.execute(
        transaction,
        "INSERT INTO touches (resource, event_id, role)
         SELECT * FROM UNNEST($1::text[], $2::uuid[], $3::text[]) ON CONFLICT DO NOTHING",
        &[&touches.0, &touches.1, &touches.2],
    )?;
    statements.execute(
        transaction,
        "INSERT INTO flows (event_id, ordinal, from_id, to_id, kind, amount, unit, organization, occurred)
         SELECT * FROM UNNEST($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[],
                              $6::float8[], $7::text[], $8::text[], $9::bigint[])
         ON CONFLICT DO NOTHING",
        &[
            &flows.id,
            &flows.ordinal,
            &flows.from,
            &flows.to,
            &flows.kind,
            &flows.amount,
            &flows.unit,
            &flows.organization,
            &flows.occurred,
        ],
    )?;
    statements.execute(
        transaction,
        "INSERT INTO consignments (resource, consignee, event_id, shipper, occurred)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::uuid[], $4::text[], $5::bigint[])
         ON CONFLICT DO NOTHING",
        &[
            &consignments.resource,
            &consignments.consignee,
            &consignments.id,
            &consignments.shipper,
            &consignments.occurred,
        ],
    )?;
    statements.execute(
        transaction,
        "INSERT INTO movements (event_id, ordinal, resource, organization, inflow, amount, unit)
         SELECT * FROM UNNEST($1::uuid[], $2::int[], $3::text[], $4::text[], $5::bool[],
                              $6::float8[], $7::text[])
         ON CONFLICT DO NOTHING",
        &[
            &movements.id,
            &movements.ordinal,
            &movements.resource,
            &movements.organization,
            &movements.inflow,
            &movements.amount,
            &movements.unit,
        ],
    )?;
    statements.execute(
        transaction,
        "INSERT INTO retracted (event_id, by_event)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[]) ON CONFLICT DO NOTHING",
        &[&retracted.0, &retracted.1],
    )?;
    Ok(indexes)
}

/// The columns of a page's `view_events` rows.
#[derive(Default)]
struct EventColumns<'a> {
    id: Vec<uuid::Uuid>,
    position: Vec<i64>,
    event_type: Vec<&'static str>,
    subject: Vec<&'a str>,
    recorded_by: Vec<&'a str>,
    occurred_at: Vec<String>,
    envelope: Vec<String>,
}

/// The columns of a page's `flows` rows.
#[derive(Default)]
struct FlowColumns<'a> {
    id: Vec<uuid::Uuid>,
    ordinal: Vec<i32>,
    from: Vec<&'a str>,
    to: Vec<&'a str>,
    kind: Vec<&'static str>,
    amount: Vec<Option<f64>>,
    unit: Vec<Option<&'static str>>,
    organization: Vec<&'a str>,
    occurred: Vec<i64>,
}

/// The columns of a page's `consignments` rows.
#[derive(Default)]
struct ConsignmentColumns<'a> {
    resource: Vec<&'a str>,
    consignee: Vec<&'a str>,
    id: Vec<uuid::Uuid>,
    shipper: Vec<&'a str>,
    occurred: Vec<i64>,
}

/// The columns of a page's `movements` rows.
#[derive(Default)]
struct MovementColumns<'a> {
    id: Vec<uuid::Uuid>,
    ordinal: Vec<i32>,
    resource: Vec<&'a str>,
    organization: Vec<&'a str>,
    inflow: Vec<bool>,
    amount: Vec<f64>,
    unit: Vec<&'static str>,
}

fn ordinal_param(ordinal: usize) -> Result<i32> {
    i32::try_from(ordinal)
        .map_err(|_| unavailable(format!("an event has more than {} index rows", i32::MAX)))
}

/// The flows into (upstream) or out of (downstream) every resource of `frontier`, in one query:
/// resource by resource in the frontier's order, each in event-id then ordinal order — the order
/// the embedded store answers in.
fn neighbours(
    client: &mut impl GenericClient,
    statements: &mut Statements,
    direction: Direction,
    frontier: &[Iri],
    since: i64,
) -> Result<Vec<Flow>> {
    let sql = match direction {
        Direction::Upstream => {
            "SELECT f.from_id, f.to_id, f.kind, f.amount, f.unit
             FROM unnest($1::text[]) WITH ORDINALITY AS frontier (node, n)
             JOIN flows f ON f.to_id = frontier.node
             WHERE (f.occurred >= $2 OR f.kind IN ('input', 'part')) AND NOT EXISTS (SELECT 1 FROM retracted r WHERE r.event_id = f.event_id)
             ORDER BY frontier.n, f.event_id, f.ordinal"
        }
        Direction::Downstream => {
            "SELECT f.from_id, f.to_id, f.kind, f.amount, f.unit
             FROM unnest($1::text[]) WITH ORDINALITY AS frontier (node, n)
             JOIN flows f ON f.from_id = frontier.node
             WHERE (f.occurred >= $2 OR f.kind IN ('input', 'part')) AND NOT EXISTS (SELECT 1 FROM retracted r WHERE r.event_id = f.event_id)
             ORDER BY frontier.n, f.event_id, f.ordinal"
        }
    };
    let nodes: Vec<&str> = frontier.iter().map(Iri::as_str).collect();
    let rows = statements.query(client, sql, &[&nodes, &since])?;
    let mut flows = Vec::with_capacity(rows.len());
    for row in rows {
        let from: &str = row.try_get(0)?;
        let to: &str = row.try_get(1)?;
        let kind: &str = row.try_get(2)?;
        let amount: Option<f64> = row.try_get(3)?;
        let unit: Option<&str> = row.try_get(4)?;
        let quantity = match (amount, unit) {
            (Some(amount), Some(unit)) => Some(Quantity {
                amount: PositiveAmount::new(amount).map_err(corrupt)?,
                unit: Unit::from_code(unit).ok_or_else(|| corrupt(unit))?,
            }),
            _ => None,
        };
        flows.push(Flow {
            from: Iri::parse(from).map_err(corrupt)?,
            to: Iri::parse(to).map_err(corrupt)?,
            kind: kind_from(kind).ok_or_else(|| corrupt(kind))?,
            quantity,
        });
    }
    Ok(flows)
}

fn iris(rows: &[postgres::Row]) -> Result<Vec<Iri>> {
    let mut iris = Vec::with_capacity(rows.len());
    for row in rows {
        let iri: &str = row.try_get(0)?;
        iris.push(Iri::parse(iri).map_err(corrupt)?);
    }
    Ok(iris)
}
