//! The embedded adapter of the views store: `views.sqlite` in the data directory.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use stigmergy_domain::views::derive::{Facts, FootprintChange, Methods, Touching};
use stigmergy_domain::views::{
    Direction, EventIndex, Flow, FlowKind, Holding, Lineage, Memo, Record, Role, walk,
};
use stigmergy_domain::{
    Event, EventId, Iri, LogPosition, OrganizationId, PositiveAmount, Quantity, Timestamp, Unit,
};

use super::{
    CountedEvent, Derived, EventScope, FootprintCursor, FootprintFilter, FootprintProvenance,
    FootprintStatus, FootprintVersion, HELD_EPSILON, Held, ListedEvent, MEMO_RESOURCES,
    PartitionOffset, Remembered, TimelineEntry, ViewStore, WhenStale, derive_first_page,
    footprint_id, merged_offsets, methods_fingerprint, provenance_of, recorded_at, shared, stale,
    unseen,
};
use crate::sqlite::SharedConnection;
use crate::{Error, Result};

/// Every resource is numbered in the order it is first seen, and the index rows key events by
/// their log position: what a page adds lands at the end of each index, next to what the pages
/// before it added, so a page dirties few pages of the file however large it grows (ids and IRIs
/// are random: keyed by them, every row went to a page of its own).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS projector_positions (
    projector TEXT PRIMARY KEY,
    position  INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS resources (
    no  INTEGER PRIMARY KEY,
    iri TEXT NOT NULL UNIQUE
) STRICT;
CREATE TABLE IF NOT EXISTS view_events (
    position    INTEGER PRIMARY KEY,
    event_id    BLOB NOT NULL UNIQUE,
    event_type  TEXT NOT NULL,
    subject     TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    envelope    TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS touches (
    resource INTEGER NOT NULL,
    role     TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (resource, role, position)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS flows (
    position INTEGER NOT NULL,
    ordinal  INTEGER NOT NULL,
    event_id BLOB NOT NULL,
    from_no  INTEGER NOT NULL,
    to_no    INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    amount   REAL,
    unit     TEXT,
    organization TEXT NOT NULL,
    occurred INTEGER NOT NULL,
    PRIMARY KEY (position, ordinal)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS consignments (
    resource  INTEGER NOT NULL,
    consignee TEXT NOT NULL,
    position  INTEGER NOT NULL,
    event_id  BLOB NOT NULL,
    shipper   TEXT NOT NULL,
    occurred  INTEGER NOT NULL,
    PRIMARY KEY (resource, consignee, position)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS movements (
    position     INTEGER NOT NULL,
    ordinal      INTEGER NOT NULL,
    resource     INTEGER NOT NULL,
    organization TEXT NOT NULL,
    inflow       INTEGER NOT NULL,
    amount       REAL NOT NULL,
    unit         TEXT NOT NULL,
    PRIMARY KEY (position, ordinal)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    resource INTEGER PRIMARY KEY,
    record   TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS footprints (
    resource  INTEGER NOT NULL,
    version   INTEGER NOT NULL,
    id        BLOB NOT NULL,
    status    TEXT NOT NULL,
    preceding BLOB,
    issued_at INTEGER NOT NULL,
    footprint TEXT NOT NULL,
    PRIMARY KEY (resource, version)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS retracted (
    event_id BLOB PRIMARY KEY,
    by_event BLOB NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS retracted_positions (
    position INTEGER PRIMARY KEY
) STRICT;
CREATE TABLE IF NOT EXISTS view_writes (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
) STRICT;
INSERT INTO view_writes (id, generation) VALUES (1, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS consumer_offsets (
    consumer_group TEXT NOT NULL,
    topic          TEXT NOT NULL,
    partition      INTEGER NOT NULL,
    next_offset    INTEGER NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition)
) STRICT, WITHOUT ROWID;
";

/// The secondary indexes of the tables above (name, then what it indexes): dropped while a first
/// page is written in bulk, and built again after it, in one pass each.
const INDEXES: &[&str] = &[
    "touches_by_event ON touches (position)",
    "view_events_by_recorder ON view_events (recorded_by, position)",
    "flows_by_from ON flows (from_no, organization, occurred)",
    "flows_by_to ON flows (to_no)",
    "consignments_by_time ON consignments (resource, consignee, occurred)",
    "consignments_by_shipper ON consignments (resource, shipper)",
    "movements_by_resource ON movements (resource, organization)",
    "footprints_by_id ON footprints (id)",
    "footprints_by_issue ON footprints (issued_at, id)",
];

/// The version of the tables above; a store written by another version is rebuilt.
const SCHEMA_VERSION: i64 = 9;

/// Every table any version had, dropped for a rebuild.
const TABLES: &[&str] = &[
    "projector_positions",
    "resources",
    "view_events",
    "touches",
    "flows",
    "consignments",
    "movements",
    "records",
    "footprints",
    "retracted",
    "retracted_positions",
    "view_writes",
    "view_meta",
    "consumer_offsets",
];

/// The views are derived data: when they were written by another version of the tables, or
/// with other methods (other emission factors or value-equation weights), they are dropped, and
/// the projector, finding no position (and no consumed offset), replays the log (the topics)
/// into them from the start.
fn rebuild_when_stale(connection: &Connection, methods: &Methods, when: WhenStale) -> Result<()> {
    let fingerprint = methods_fingerprint(methods);
    let version: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let recorded: Option<String> = if version == SCHEMA_VERSION {
        connection
            .query_row(
                "SELECT value FROM view_meta WHERE key = 'methods'",
                [],
                |row| row.get(0),
            )
            .optional()?
    } else {
        None
    };
    if recorded.as_deref() == Some(fingerprint.as_str()) {
        return Ok(());
    }
    let fresh = version == 0;
    if when == WhenStale::Refuse && !fresh {
        return Err(stale("the views in views.sqlite"));
    }
    for table in TABLES {
        connection.execute_batch(&format!("DROP TABLE IF EXISTS {table};"))?;
    }
    connection.execute_batch(SCHEMA)?;
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS view_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;",
    )?;
    connection.execute(
        "INSERT INTO view_meta (key, value) VALUES ('methods', ?1)",
        params![fingerprint],
    )?;
    connection.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(())
}

/// The views store in `views.sqlite`.
#[derive(Clone)]
pub struct SqliteViewStore {
    /// Applies pages.
    connection: SharedConnection,
    /// Answers queries, from what was committed: a long page (catching up) does not hold them up.
    reader: SharedConnection,
    methods: Arc<Methods>,
    /// What the writer keeps across pages.
    writer: Arc<Mutex<Writer>>,
}

/// What the writer keeps from one page to the next: the memo of facts, and the numbers of the
/// resources it has seen.
#[derive(Debug)]
struct Writer {
    remembered: Remembered,
    numbers: Numbers,
}

/// The numbers of resources (table `resources`), as read or assigned. A number never changes
/// once committed, so what this store read or committed stays true whoever writes next; what a
/// failed transaction assigned is forgotten.
#[derive(Debug, Default)]
struct Numbers(HashMap<Iri, i64>);

impl Numbers {
    /// How many numbers are kept at most; past that the map starts again.
    const CAPACITY: usize = 2_000_000;

    /// The number of `resource`, assigning the next one when it has none.
    fn assign(&mut self, transaction: &Transaction<'_>, resource: &Iri) -> Result<i64> {
        if let Some(no) = self.find(transaction, resource)? {
            return Ok(no);
        }
        let no = transaction
            .prepare_cached("INSERT INTO resources (iri) VALUES (?1) RETURNING no")?
            .query_row(params![resource.as_str()], |row| row.get(0))?;
        self.0.insert(resource.clone(), no);
        Ok(no)
    }

    /// The number of `resource`, if it has one.
    fn find(&mut self, transaction: &Transaction<'_>, resource: &Iri) -> Result<Option<i64>> {
        if let Some(no) = self.0.get(resource) {
            return Ok(Some(*no));
        }
        let no = number_of(transaction, resource)?;
        if let Some(no) = no {
            self.0.insert(resource.clone(), no);
        }
        Ok(no)
    }

    fn committed(&mut self) {
        if self.0.len() > Self::CAPACITY {
            self.0.clear();
        }
    }
}

fn create_indexes(connection: &Connection) -> Result<()> {
    for index in INDEXES {
        connection.execute(&format!("CREATE INDEX IF NOT EXISTS {index}"), [])?;
    }
    Ok(())
}

fn drop_indexes(connection: &Connection) -> Result<()> {
    for index in INDEXES {
        let name = index.split_whitespace().next().unwrap_or_default();
        connection.execute(&format!("DROP INDEX IF EXISTS {name}"), [])?;
    }
    Ok(())
}

fn number_of(connection: &Connection, resource: &Iri) -> Result<Option<i64>> {
    Ok(connection
        .prepare_cached("SELECT no FROM resources WHERE iri = ?1")?
        .query_row(params![resource.as_str()], |row| row.get(0))
        .optional()?)
}

impl std::fmt::Debug for SqliteViewStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteViewStore").finish_non_exhaustive()
    }
}

pub(crate) fn role_from(name: &str) -> Option<Role> {
    Role::ALL.iter().copied().find(|role| role.name() == name)
}

pub(crate) fn kind_from(name: &str) -> Option<FlowKind> {
    FlowKind::ALL
        .iter()
        .copied()
        .find(|kind| kind.name() == name)
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("the views store holds an unreadable row: {what}"))
}

impl SqliteViewStore {
    /// Whether `sql`, given the event's id, finds a row.
    async fn has_event(&self, sql: &'static str, event_id: EventId) -> Result<bool> {
        self.reader
            .run(move |connection| {
                Ok(connection
                    .query_row(sql, params![&event_id.as_bytes()[..]], |_| Ok(()))
                    .optional()?
                    .is_some())
            })
            .await
    }

    /// Opens (creating when missing) `views.sqlite` in `dir`, deriving records with `methods`;
    /// views derived otherwise are rebuilt.
    pub fn open(dir: &Path, methods: Methods) -> Result<Self> {
        Self::open_when_stale(dir, methods, WhenStale::Rebuild)
    }

    /// [`open`](Self::open), doing `when` with views derived otherwise.
    pub fn open_when_stale(dir: &Path, methods: Methods, when: WhenStale) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        // The connection is only ever used behind the store's mutex: SQLite's own locking is not
        // needed.
        let connection = Connection::open_with_flags(
            dir.join("views.sqlite"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
                | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        // The views can be rebuilt from the log, so a commit need not wait for the disk: after a
        // power loss the store is consistent at an earlier position and replays from there.
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        // Up to 512 MiB of pages in memory (allocated as used), and a checkpoint every 256 MiB
        // of log rather than every 4: pages written again and again go to the file once.
        connection.pragma_update(None, "cache_size", -524_288)?;
        connection.pragma_update(None, "wal_autocheckpoint", 65_536)?;
        rebuild_when_stale(&connection, &methods, when)?;
        connection.execute_batch(SCHEMA)?;
        create_indexes(&connection)?;
        let reader = Connection::open_with_flags(
            dir.join("views.sqlite"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Up to 64 MiB of pages for queries; the writer's cache serves the projector.
        reader.pragma_update(None, "cache_size", -65_536)?;
        Ok(Self {
            connection: SharedConnection::new(connection),
            reader: SharedConnection::new(reader),
            methods: Arc::new(methods),
            writer: Arc::new(Mutex::new(Writer {
                remembered: Remembered::new(MEMO_RESOURCES),
                numbers: Numbers::default(),
            })),
        })
    }

    /// Keeps the facts of at most `resources` resources in memory from one page to the next
    /// (default [`MEMO_RESOURCES`]; 0 keeps none).
    pub fn with_memo_resources(self, resources: usize) -> Self {
        if let Ok(mut writer) = self.writer.lock() {
            writer.remembered = Remembered::new(resources);
        }
        self
    }

    /// Runs `write` on the writing connection with the methods and what the writer keeps across
    /// pages; `write` returns the generation of the views it committed, if it wrote any, and
    /// what it read and numbered is kept for the next page — or forgotten when it failed.
    async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&mut Connection, &Methods, &mut Writer) -> Result<(T, Option<i64>)>
        + Send
        + 'static,
    ) -> Result<T> {
        let methods = self.methods.clone();
        let writer = self.writer.clone();
        self.connection
            .run(move |connection| {
                let mut writer = writer
                    .lock()
                    .map_err(|_| Error::Unavailable("a views writer panicked".into()))?;
                match write(connection, &methods, &mut writer) {
                    Ok((written, generation)) => {
                        if let Some(generation) = generation {
                            writer.remembered.committed(generation);
                            writer.numbers.committed();
                        }
                        Ok(written)
                    }
                    Err(error) => {
                        writer.remembered.failed();
                        writer.numbers = Numbers::default();
                        Err(error)
                    }
                }
            })
            .await
    }
}

#[async_trait]
impl ViewStore for SqliteViewStore {
    async fn position(&self, projector: &str) -> Result<LogPosition> {
        let projector = projector.to_owned();
        self.reader
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

    async fn apply(&self, projector: &str, page: Vec<(LogPosition, Event)>) -> Result<()> {
        let Some(last) = page.last().map(|(position, _)| *position) else {
            return Ok(());
        };
        let projector = projector.to_owned();
        self.write(move |connection, methods, writer| {
            let generation =
                apply_page(connection, &projector, &shared(page), last, methods, writer)?;
            Ok(((), Some(generation)))
        })
        .await
    }

    async fn consumed(&self, group: &str) -> Result<Vec<PartitionOffset>> {
        let group = group.to_owned();
        self.reader
            .run(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT topic, partition, next_offset FROM consumer_offsets
                     WHERE consumer_group = ?1 ORDER BY topic, partition",
                )?;
                let rows = statement.query_map(params![group], |row| {
                    Ok(PartitionOffset {
                        topic: row.get(0)?,
                        partition: row.get(1)?,
                        next: row.get(2)?,
                    })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
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
        self.write(move |connection, methods, writer| {
            apply_consumed(connection, &group, events, offsets, methods, writer)
        })
        .await
    }

    async fn timeline(&self, resource: &Iri) -> Result<Vec<TimelineEntry>> {
        let resource = resource.to_string();
        self.reader
            .run(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT e.position, e.envelope, t.role FROM touches t
                     JOIN view_events e ON e.position = t.position
                     WHERE t.resource = (SELECT no FROM resources WHERE iri = ?1)
                     AND NOT EXISTS (SELECT 1 FROM retracted_positions r WHERE r.position = t.position)
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

    async fn lineage(
        &self,
        resource: &Iri,
        direction: Direction,
        max_depth: u32,
    ) -> Result<Lineage> {
        let resource = resource.clone();
        self.reader
            .run(move |connection| {
                walk(&resource, direction, max_depth, |direction, frontier| {
                    let mut flows = Vec::new();
                    for node in frontier {
                        if let Some(no) = number_of(connection, node)? {
                            flows.extend(neighbours(connection, direction, no, i64::MIN)?);
                        }
                    }
                    Ok(flows)
                })
            })
            .await
    }

    async fn record(&self, resource: &Iri) -> Result<Option<Record>> {
        let resource = resource.clone();
        self.reader
            .run(move |connection| match number_of(connection, &resource)? {
                Some(no) => read_record(connection, no),
                None => Ok(None),
            })
            .await
    }

    async fn footprint_versions(&self, resource: &Iri) -> Result<Vec<FootprintVersion>> {
        let resource = resource.clone();
        self.reader
            .run(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT id, version, status, preceding, issued_at, footprint FROM footprints
                     WHERE resource = (SELECT no FROM resources WHERE iri = ?1) ORDER BY version",
                )?;
                let rows = statement.query_map(params![resource.as_str()], |row| {
                    Ok((
                        row.get::<_, Vec<u8>>(0)?,
                        row.get::<_, u32>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, Option<Vec<u8>>>(3)?,
                        row.get::<_, u64>(4)?,
                        row.get::<_, String>(5)?,
                    ))
                })?;
                let mut versions = Vec::new();
                for row in rows {
                    let (id, version, status, preceding, issued_at, footprint) = row?;
                    let uuid = |bytes: Vec<u8>| uuid::Uuid::from_slice(&bytes).map_err(corrupt);
                    versions.push(FootprintVersion {
                        id: uuid(id)?,
                        resource: resource.clone(),
                        version,
                        status: FootprintStatus::from_name(&status)
                            .ok_or_else(|| corrupt(&status))?,
                        preceding: preceding.map(uuid).transpose()?,
                        issued_at: LogPosition(issued_at),
                        footprint: serde_json::from_str(&footprint).map_err(corrupt)?,
                    });
                }
                Ok(versions)
            })
            .await
    }

    async fn footprint_version(&self, id: uuid::Uuid) -> Result<Option<FootprintVersion>> {
        self.reader
            .run(move |connection| {
                let row = connection
                    .prepare_cached(&format!(
                        "SELECT {FOOTPRINT_COLUMNS} FROM footprints f
                         JOIN resources r ON r.no = f.resource WHERE f.id = ?1"
                    ))?
                    .query_row(params![&id.as_bytes()[..]], footprint_row)
                    .optional()?;
                row.map(footprint_version).transpose()
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
        let filter = filter.clone();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.reader
            .run(move |connection| {
                let (issued_at, id) = match after {
                    Some(cursor) => (cursor.issued_at.0, cursor.id.as_bytes().to_vec()),
                    // Positions start at 1, and every id sorts after no bytes at all.
                    None => (0, Vec::new()),
                };
                let mut values: Vec<Box<dyn rusqlite::ToSql>> =
                    vec![Box::new(issued_at), Box::new(id), Box::new(limit)];
                let mut sql = format!(
                    "SELECT {FOOTPRINT_COLUMNS} FROM footprints f
                     JOIN resources r ON r.no = f.resource
                     WHERE f.issued_at >= ?1 AND (f.issued_at > ?1 OR f.id > ?2)"
                );
                if let Some(status) = filter.status {
                    values.push(Box::new(status.name()));
                    sql.push_str(&format!(" AND f.status = ?{}", values.len()));
                }
                if let Some(resources) = &filter.resources {
                    let mut placeholders = Vec::with_capacity(resources.len());
                    for resource in resources {
                        values.push(Box::new(resource.to_string()));
                        placeholders.push(format!("?{}", values.len()));
                    }
                    sql.push_str(&format!(
                        " AND f.resource IN (SELECT no FROM resources WHERE iri IN ({}))",
                        placeholders.join(", ")
                    ));
                }
                sql.push_str(" ORDER BY f.issued_at, f.id LIMIT ?3");
                let mut statement = connection.prepare(&sql)?;
                let rows = statement.query_map(
                    rusqlite::params_from_iter(values.iter().map(AsRef::as_ref)),
                    footprint_row,
                )?;
                let mut versions = Vec::new();
                for row in rows {
                    versions.push(footprint_version(row?)?);
                }
                Ok(versions)
            })
            .await
    }

    async fn footprint_provenance(
        &self,
        version: &FootprintVersion,
    ) -> Result<Option<FootprintProvenance>> {
        let resource = version.resource.clone();
        let issued_at = i64::try_from(version.issued_at.0).map_err(corrupt)?;
        self.reader
            .run(move |connection| {
                let envelope: Option<String> = connection
                    .prepare_cached("SELECT envelope FROM view_events WHERE position = ?1")?
                    .query_row(params![issued_at], |row| row.get(0))
                    .optional()?;
                let Some(envelope) = envelope else {
                    return Ok(None);
                };
                let issued = recorded_at(&envelope)?;
                let mut statement = connection.prepare_cached(
                    "SELECT e.position, t.role, e.envelope FROM touches t
                     JOIN view_events e ON e.position = t.position
                     WHERE t.resource = (SELECT no FROM resources WHERE iri = ?1)
                     AND t.role IN ('created', 'repaired') AND t.position <= ?2
                     AND NOT EXISTS (SELECT 1 FROM retracted x
                         JOIN view_events b ON b.event_id = x.by_event
                         WHERE x.event_id = e.event_id AND b.position <= ?2)",
                )?;
                let rows = statement.query_map(params![resource.as_str(), issued_at], |row| {
                    Ok((
                        row.get::<_, u64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                    ))
                })?;
                let mut counted: Vec<CountedEvent> = Vec::new();
                for row in rows {
                    let (position, role, envelope) = row?;
                    counted.push((
                        LogPosition(position),
                        role_from(&role).ok_or_else(|| corrupt(&role))?,
                        serde_json::from_str(&envelope).map_err(corrupt)?,
                    ));
                }
                Ok(provenance_of(issued, &counted))
            })
            .await
    }

    async fn is_retracted(&self, event_id: EventId) -> Result<bool> {
        self.has_event("SELECT 1 FROM retracted WHERE event_id = ?1", event_id)
            .await
    }

    async fn holds(&self, event_id: EventId) -> Result<bool> {
        self.has_event("SELECT 1 FROM view_events WHERE event_id = ?1", event_id)
            .await
    }

    async fn events(
        &self,
        scope: &EventScope,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<ListedEvent>> {
        let scope = scope.clone();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.reader
            .run(move |connection| {
                const COLUMNS: &str = "SELECT e.position, e.envelope,
                    EXISTS (SELECT 1 FROM retracted_positions r WHERE r.position = e.position)
                    FROM view_events e";
                let (filter, key) = match &scope {
                    EventScope::All => ("", None),
                    EventScope::RecordedBy(organization) => {
                        ("AND e.recorded_by = ?3", Some(organization.as_str()))
                    }
                    EventScope::Touching(resource) => (
                        "AND e.position IN (SELECT t.position FROM touches t
                         WHERE t.resource = (SELECT no FROM resources WHERE iri = ?3)
                         AND t.position > ?1)",
                        Some(resource.as_str()),
                    ),
                };
                let mut statement = connection.prepare_cached(&format!(
                    "{COLUMNS} WHERE e.position > ?1 {filter} ORDER BY e.position LIMIT ?2"
                ))?;
                let map = |row: &rusqlite::Row<'_>| {
                    Ok((
                        row.get::<_, u64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, bool>(2)?,
                    ))
                };
                let rows = match key {
                    Some(key) => statement
                        .query_map(params![after.0, limit, key], map)?
                        .collect::<rusqlite::Result<Vec<_>>>()?,
                    None => statement
                        .query_map(params![after.0, limit], map)?
                        .collect::<rusqlite::Result<Vec<_>>>()?,
                };
                rows.into_iter()
                    .map(|(position, envelope, retracted)| {
                        Ok(ListedEvent {
                            position: LogPosition(position),
                            event: serde_json::from_str(&envelope).map_err(corrupt)?,
                            retracted,
                        })
                    })
                    .collect()
            })
            .await
    }

    async fn records(&self, resources: &[Iri]) -> Result<Vec<(Iri, Record)>> {
        let resources = resources.to_vec();
        self.reader
            .run(move |connection| {
                let mut found = Vec::with_capacity(resources.len());
                for resource in resources {
                    if let Some(no) = number_of(connection, &resource)?
                        && let Some(record) = read_record(connection, no)?
                    {
                        found.push((resource, record));
                    }
                }
                Ok(found)
            })
            .await
    }

    async fn search(&self, text: &str, limit: usize) -> Result<Vec<(Iri, Record)>> {
        let text = text.to_lowercase();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.reader
            .run(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT r.iri, c.record FROM records c JOIN resources r ON r.no = c.resource
                     WHERE instr(lower(json_extract(c.record, '$.name')), ?1) > 0
                     ORDER BY r.iri LIMIT ?2",
                )?;
                let rows = statement.query_map(params![text, limit], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })?;
                rows.map(|row| {
                    let (iri, record) = row?;
                    Ok((
                        Iri::parse(iri).map_err(corrupt)?,
                        serde_json::from_str(&record).map_err(corrupt)?,
                    ))
                })
                .collect()
            })
            .await
    }

    async fn holders(&self, resource: &Iri) -> Result<Vec<(OrganizationId, Held)>> {
        let resource = resource.clone();
        self.reader
            .run(move |connection| {
                let Some(no) = number_of(connection, &resource)? else {
                    return Ok(Vec::new());
                };
                let mut statement = connection.prepare_cached(
                    "SELECT m.organization, m.unit, total(CASE WHEN m.inflow THEN m.amount ELSE -m.amount END) AS held
                     FROM movements m WHERE m.resource = ?1
                     AND NOT EXISTS (SELECT 1 FROM retracted_positions x WHERE x.position = m.position)
                     GROUP BY m.organization, m.unit HAVING held > ?2
                     ORDER BY m.organization, m.unit",
                )?;
                let rows = statement.query_map(params![no, HELD_EPSILON], sum_row)?;
                rows.map(|row| {
                    let (organization, unit, amount) = row?;
                    Ok((
                        Iri::parse(organization).map_err(corrupt)?,
                        Held::read(resource.clone(), amount, &unit)?,
                    ))
                })
                .collect()
            })
            .await
    }

    async fn held_by(&self, organization: &OrganizationId, limit: usize) -> Result<Vec<Held>> {
        let organization = organization.to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.reader
            .run(move |connection| {
                // Every movement is the recording organisation's own (see `EventIndex::of`),
                // so the organisation's events find its movements.
                let mut statement = connection.prepare_cached(
                    "SELECT r.iri, m.unit, total(CASE WHEN m.inflow THEN m.amount ELSE -m.amount END) AS held
                     FROM view_events e JOIN movements m ON m.position = e.position
                     JOIN resources r ON r.no = m.resource
                     WHERE e.recorded_by = ?1 AND m.organization = ?1
                     AND NOT EXISTS (SELECT 1 FROM retracted_positions x WHERE x.position = e.position)
                     GROUP BY m.resource, m.unit HAVING held > ?2
                     ORDER BY r.iri, m.unit LIMIT ?3",
                )?;
                let rows =
                    statement.query_map(params![organization, HELD_EPSILON, limit], sum_row)?;
                rows.map(|row| {
                    let (iri, unit, amount) = row?;
                    Held::read(Iri::parse(iri).map_err(corrupt)?, amount, &unit)
                })
                .collect()
            })
            .await
    }
}

/// Applies a page in one transaction (see [`ViewStore::apply`]), and returns the generation of
/// the views it wrote.
fn apply_page(
    connection: &mut Connection,
    projector: &str,
    page: &[(LogPosition, Arc<Event>)],
    last: LogPosition,
    methods: &Methods,
    writer: &mut Writer,
) -> Result<i64> {
    let transaction = connection.transaction()?;
    let generation = write_page(&transaction, page, last, methods, writer)?;
    advance(&transaction, projector, last)?;
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
    writer: &mut Writer,
) -> Result<(usize, Option<i64>)> {
    // The write lock from the start, before reading what the views hold: another handle on the
    // file waits until this one has committed, then finds its events.
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut known = HashSet::with_capacity(events.len());
    {
        let mut stored =
            transaction.prepare_cached("SELECT 1 FROM view_events WHERE event_id = ?1")?;
        for event in &events {
            if stored.exists(params![&event.event_id.as_bytes()[..]])? {
                known.insert(event.event_id);
            }
        }
    }
    let head: u64 = transaction.query_row(
        "SELECT COALESCE(MAX(position), 0) FROM view_events",
        [],
        |row| row.get(0),
    )?;
    let page = shared(unseen(events, known, LogPosition(head)));
    let generation = match page.last() {
        Some(&(last, _)) => {
            let generation = write_page(&transaction, &page, last, methods, writer)?;
            advance(&transaction, group, last)?;
            Some(generation)
        }
        None => None,
    };
    let mut offset = transaction.prepare_cached(
        "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (consumer_group, topic, partition)
         DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
    )?;
    for PartitionOffset {
        topic,
        partition,
        next,
    } in merged_offsets(offsets)
    {
        offset.execute(params![group, topic, partition, next])?;
    }
    drop(offset);
    transaction.commit()?;
    Ok((page.len(), generation))
}

/// Moves `projector` to `last`, unless it is further already.
fn advance(transaction: &Transaction<'_>, projector: &str, last: LogPosition) -> Result<()> {
    transaction
        .prepare_cached(
            "INSERT INTO projector_positions (projector, position) VALUES (?1, ?2)
             ON CONFLICT (projector) DO UPDATE SET position = max(position, excluded.position)",
        )?
        .execute(params![projector, last.0])?;
    Ok(())
}

/// Writes a page at its positions — its events and index rows, the records it changes and the
/// footprint versions they issue — in `transaction`, counting one more generation of the views,
/// and returns that generation.
fn write_page(
    transaction: &Transaction<'_>,
    page: &[(LogPosition, Arc<Event>)],
    last: LogPosition,
    methods: &Methods,
    writer: &mut Writer,
) -> Result<i64> {
    let generation: i64 = transaction.query_row(
        "UPDATE view_writes SET generation = generation + 1 WHERE id = 1 RETURNING generation",
        [],
        |row| row.get(0),
    )?;
    let Writer {
        remembered,
        numbers,
    } = writer;
    let memo = remembered.for_generation(generation);
    let empty: bool = transaction.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM view_events) AND NOT EXISTS (SELECT 1 FROM resources)",
        [],
        |row| row.get(0),
    )?;
    if empty {
        apply_first_page(transaction, numbers, memo, page, last, methods)?;
    } else {
        let mut indexed = Vec::with_capacity(page.len());
        let mut events = HashMap::with_capacity(page.len());
        for (position, event) in page {
            let index = store_event(transaction, numbers, *position, event)?;
            events.insert(index.position.0 as i64, event.clone());
            indexed.push((event.as_ref(), index));
        }
        let mut facts = SqliteFacts {
            transaction,
            numbers,
            issued_at: last,
            events,
        };
        memo.refresh_page(&mut facts, &indexed, methods)?;
    }
    Ok(generation)
}

/// Applies a page to a store that holds no events yet: everything the derivation can ask about
/// is in the page, so it is indexed in memory ([`Ledger`]) and the records are derived from there
/// on a second thread while this one writes the events and their index rows. Every table is
/// written in the order of its key, with its secondary indexes built afterwards in one pass.
fn apply_first_page(
    transaction: &Transaction<'_>,
    numbers: &mut Numbers,
    memo: &mut Memo,
    page: &[(LogPosition, Arc<Event>)],
    last: LogPosition,
    methods: &Methods,
) -> Result<()> {
    // The ledger answers from memory: the memo would only copy its answers.
    memo.clear();
    let derived = std::thread::scope(|scope| {
        let deriving = scope.spawn(move || derive_first_page(page, methods));
        // The indexes are built while the records are still being derived.
        let written =
            write_events(transaction, numbers, page).and_then(|()| create_indexes(transaction));
        let derived = deriving
            .join()
            .map_err(|_| Error::Unavailable("deriving the views panicked".into()))?;
        written.and(derived)
    })?;
    write_records(transaction, numbers, derived, last)?;
    Ok(())
}

/// Writes the events of a first page, their index rows and the retracted ids.
fn write_events(
    transaction: &Transaction<'_>,
    numbers: &mut Numbers,
    page: &[(LogPosition, Arc<Event>)],
) -> Result<()> {
    drop_indexes(transaction)?;
    // Each event once, at the position it first has; the first retraction of each id. The
    // index rows are computed here as well as in the ledger, so that neither thread waits for
    // the other.
    let mut first: HashMap<EventId, i64> = HashMap::with_capacity(page.len());
    let mut stored = Vec::with_capacity(page.len());
    let mut retractions: HashMap<EventId, EventId> = HashMap::new();
    for (position, event) in page {
        if first.contains_key(&event.event_id) {
            continue;
        }
        first.insert(event.event_id, position.0 as i64);
        if let Some(gone) = EventIndex::retracts(event) {
            retractions.entry(gone).or_insert(event.event_id);
        }
        stored.push((event, EventIndex::of(event, *position)));
    }
    // Numbered in IRI order, so that both keys of `resources` grow as they are written.
    let mut resources: HashSet<&Iri> = HashSet::with_capacity(page.len());
    for (_, index) in &stored {
        resources.extend(index.touches.iter().map(|row| &row.resource));
        resources.extend(index.flows.iter().flat_map(|row| [&row.from, &row.to]));
        resources.extend(index.movements.iter().map(|row| &row.resource));
        resources.extend(index.consignments.iter().map(|row| &row.resource));
    }
    let mut resources: Vec<&Iri> = resources.into_iter().collect();
    resources.sort_unstable();
    let mut resource =
        transaction.prepare_cached("INSERT INTO resources (no, iri) VALUES (?1, ?2)")?;
    for (no, iri) in resources.into_iter().enumerate() {
        let no = no as i64 + 1;
        resource.execute(params![no, iri.as_str()])?;
        numbers.0.insert(iri.clone(), no);
    }
    let mut event = transaction.prepare_cached(
        "INSERT INTO view_events (position, event_id, event_type, subject, recorded_by, occurred_at, envelope)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut touches = Vec::new();
    let mut consignments = Vec::new();
    for (stored, index) in &stored {
        let at = index.position.0 as i64;
        let id = &stored.event_id.as_bytes()[..];
        event.execute(params![
            at,
            id,
            stored.event_type().name(),
            stored.subject.as_str(),
            stored.recorded_by.as_str(),
            stored.occurred_at.to_string(),
            serde_json::to_string(stored.as_ref()).map_err(corrupt)?,
        ])?;
        for row in &index.touches {
            touches.push((
                numbers.assign(transaction, &row.resource)?,
                row.role.name(),
                at,
            ));
        }
        insert_flows_and_movements(transaction, numbers, stored, index)?;
        for row in &index.consignments {
            consignments.push((
                numbers.assign(transaction, &row.resource)?,
                row.consignee.as_str(),
                at,
                stored.event_id,
                row.shipper.as_str(),
                stored.occurred_at.unix_micros(),
            ));
        }
    }
    touches.sort_unstable();
    let mut touch = transaction
        .prepare_cached("INSERT INTO touches (resource, role, position) VALUES (?1, ?2, ?3)")?;
    for (no, role, at) in touches {
        touch.execute(params![no, role, at])?;
    }
    consignments.sort_unstable_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    let mut consignment = transaction.prepare_cached(
        "INSERT INTO consignments (resource, consignee, position, event_id, shipper, occurred)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (no, consignee, at, id, shipper, occurred) in consignments {
        consignment.execute(params![
            no,
            consignee,
            at,
            &id.as_bytes()[..],
            shipper,
            occurred
        ])?;
    }
    let mut retracted_positions: Vec<i64> = retractions
        .keys()
        .filter_map(|gone| first.get(gone).copied())
        .collect();
    let mut retractions: Vec<(EventId, EventId)> = retractions.into_iter().collect();
    retractions.sort_unstable();
    let mut retracted =
        transaction.prepare_cached("INSERT INTO retracted (event_id, by_event) VALUES (?1, ?2)")?;
    for (gone, by) in retractions {
        retracted.execute(params![&gone.as_bytes()[..], &by.as_bytes()[..]])?;
    }
    retracted_positions.sort_unstable();
    let mut retracted_position =
        transaction.prepare_cached("INSERT INTO retracted_positions (position) VALUES (?1)")?;
    for at in retracted_positions {
        retracted_position.execute(params![at])?;
    }
    Ok(())
}

/// Writes the records derived from a first page and the footprint versions they issued.
fn write_records(
    transaction: &Transaction<'_>,
    numbers: &mut Numbers,
    derived: Vec<Derived>,
    last: LogPosition,
) -> Result<()> {
    let mut numbered = Vec::with_capacity(derived.len());
    for record in derived {
        numbered.push((numbers.assign(transaction, &record.resource)?, record));
    }
    numbered.sort_unstable_by_key(|(no, _)| *no);
    let mut insert_record =
        transaction.prepare_cached("INSERT INTO records (resource, record) VALUES (?1, ?2)")?;
    let mut footprint = transaction.prepare_cached(
        "INSERT INTO footprints (resource, version, id, status, preceding, issued_at, footprint)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (no, derived) in numbered {
        insert_record.execute(params![no, derived.record])?;
        let mut preceding: Option<uuid::Uuid> = None;
        let issued = derived.footprints.len();
        for (n, json) in derived.footprints.into_iter().enumerate() {
            let version = n as u32 + 1;
            let id = footprint_id(&derived.resource, version);
            let status = if n + 1 == issued && !derived.withdrawn {
                FootprintStatus::Active
            } else {
                FootprintStatus::Deprecated
            };
            footprint.execute(params![
                no,
                version,
                &id.as_bytes()[..],
                status.name(),
                preceding.as_ref().map(|p| &p.as_bytes()[..]),
                last.0,
                json,
            ])?;
            preceding = Some(id);
        }
    }
    Ok(())
}

/// A row of (IRI, unit, sum) of the holdings queries.
fn sum_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, f64)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

fn read_record(connection: &Connection, resource: i64) -> Result<Option<Record>> {
    let json: Option<String> = connection
        .prepare_cached("SELECT record FROM records WHERE resource = ?1")?
        .query_row(params![resource], |row| row.get(0))
        .optional()?;
    json.map(|json| serde_json::from_str(&json).map_err(corrupt))
        .transpose()
}

/// The store as the derivation reads and writes it, inside the transaction applying a page.
struct SqliteFacts<'t> {
    transaction: &'t Transaction<'t>,
    numbers: &'t mut Numbers,
    /// The position of the page's last event, stamped on the footprint versions it issues.
    issued_at: LogPosition,
    /// The events read (or applied) in this transaction, by position, parsed once.
    events: HashMap<i64, Arc<Event>>,
}

impl SqliteFacts<'_> {
    /// The event of a row (position, envelope), parsed unless it was already.
    fn event(&mut self, position: i64, envelope: &str) -> Result<Arc<Event>> {
        if let Some(event) = self.events.get(&position) {
            return Ok(event.clone());
        }
        let event: Arc<Event> = Arc::new(serde_json::from_str(envelope).map_err(corrupt)?);
        self.events.insert(position, event.clone());
        Ok(event)
    }

    fn number(&mut self, resource: &Iri) -> Result<Option<i64>> {
        self.numbers.find(self.transaction, resource)
    }
}

impl Facts for SqliteFacts<'_> {
    type Error = Error;

    fn events(&mut self, resource: &Iri, roles: &[Role]) -> Result<Vec<Arc<Event>>> {
        let Some(no) = self.number(resource)? else {
            return Ok(Vec::new());
        };
        // One range of the touches' primary key per role, merged in event-id order.
        let mut statement = self.transaction.prepare_cached(
            "SELECT e.position, e.event_id, e.envelope FROM touches t
             JOIN view_events e ON e.position = t.position
             WHERE t.resource = ?1 AND t.role = ?2
             AND NOT EXISTS (SELECT 1 FROM retracted_positions r WHERE r.position = t.position)",
        )?;
        let mut rows: Vec<(i64, Vec<u8>, String)> = Vec::new();
        for role in roles {
            let found = statement.query_map(params![no, role.name()], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?;
            for row in found {
                rows.push(row?);
            }
        }
        drop(statement);
        rows.sort_by(|a, b| a.1.cmp(&b.1));
        rows.dedup_by(|a, b| a.0 == b.0);
        rows.iter()
            .map(|(position, _, envelope)| self.event(*position, envelope))
            .collect()
    }

    fn flows_from(&mut self, resource: &Iri, since: Option<Timestamp>) -> Result<Vec<Flow>> {
        let Some(no) = self.number(resource)? else {
            return Ok(Vec::new());
        };
        neighbours(
            self.transaction,
            Direction::Downstream,
            no,
            since.map_or(i64::MIN, |t| t.unix_micros()),
        )
    }

    fn consumers(
        &mut self,
        resource: &Iri,
        organization: &OrganizationId,
        since: Timestamp,
    ) -> Result<Vec<Iri>> {
        let Some(no) = self.number(resource)? else {
            return Ok(Vec::new());
        };
        let mut statement = self.transaction.prepare_cached(
            "SELECT DISTINCT r.iri FROM flows f JOIN resources r ON r.no = f.to_no
             WHERE f.from_no = ?1 AND f.organization = ?2
             AND f.occurred >= ?3 AND f.kind IN ('input', 'part')
             AND NOT EXISTS (SELECT 1 FROM retracted_positions x WHERE x.position = f.position)
             ORDER BY r.iri",
        )?;
        let rows = statement.query_map(
            params![no, organization.as_str(), since.unix_micros()],
            |row| row.get::<_, String>(0),
        )?;
        rows.map(|row| Iri::parse(row?).map_err(corrupt)).collect()
    }

    fn latest_dispatch_to(
        &mut self,
        resource: &Iri,
        consignee: &OrganizationId,
        at: Timestamp,
    ) -> Result<Option<Arc<Event>>> {
        let Some(no) = self.number(resource)? else {
            return Ok(None);
        };
        let mut statement = self.transaction.prepare_cached(
            "SELECT e.position, e.envelope FROM consignments c JOIN view_events e ON e.position = c.position
             WHERE c.resource = ?1 AND c.consignee = ?2 AND c.occurred <= ?3
             AND NOT EXISTS (SELECT 1 FROM retracted_positions r WHERE r.position = c.position)
             ORDER BY c.occurred DESC, c.event_id DESC LIMIT 1",
        )?;
        let row: Option<(i64, String)> = statement
            .query_row(params![no, consignee.as_str(), at.unix_micros()], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        drop(statement);
        row.map(|(position, envelope)| self.event(position, &envelope))
            .transpose()
    }

    fn consignees(
        &mut self,
        resource: &Iri,
        shipper: &OrganizationId,
    ) -> Result<Vec<OrganizationId>> {
        let Some(no) = self.number(resource)? else {
            return Ok(Vec::new());
        };
        let mut statement = self.transaction.prepare_cached(
            "SELECT DISTINCT c.consignee FROM consignments c WHERE c.resource = ?1 AND c.shipper = ?2
             AND NOT EXISTS (SELECT 1 FROM retracted_positions r WHERE r.position = c.position)
             ORDER BY c.consignee",
        )?;
        let rows =
            statement.query_map(params![no, shipper.as_str()], |row| row.get::<_, String>(0))?;
        rows.map(|row| Iri::parse(row?).map_err(corrupt)).collect()
    }

    fn holdings(&mut self, resource: &Iri) -> Result<Vec<Holding>> {
        let Some(no) = self.number(resource)? else {
            return Ok(Vec::new());
        };
        let mut statement = self.transaction.prepare_cached(
            "SELECT organization, unit, total(CASE WHEN inflow THEN amount ELSE 0 END),
             total(CASE WHEN inflow THEN 0 ELSE amount END)
             FROM movements m WHERE m.resource = ?1
             AND NOT EXISTS (SELECT 1 FROM retracted_positions r WHERE r.position = m.position)
             GROUP BY organization, unit ORDER BY organization, unit",
        )?;
        let rows = statement.query_map(params![no], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, f64>(2)?,
                row.get::<_, f64>(3)?,
            ))
        })?;
        let mut holdings = Vec::new();
        for row in rows {
            let (organization, unit, inflow, outflow) = row?;
            holdings.push(Holding {
                organization: Iri::parse(organization).map_err(corrupt)?,
                unit: Unit::from_code(&unit).ok_or_else(|| corrupt(&unit))?,
                inflow,
                outflow,
            });
        }
        Ok(holdings)
    }

    fn movement_events(
        &mut self,
        resource: &Iri,
        organization: &OrganizationId,
    ) -> Result<Vec<EventId>> {
        let Some(no) = self.number(resource)? else {
            return Ok(Vec::new());
        };
        let mut statement = self.transaction.prepare_cached(
            "SELECT DISTINCT e.event_id FROM movements m JOIN view_events e ON e.position = m.position
             WHERE m.resource = ?1 AND m.organization = ?2
             AND NOT EXISTS (SELECT 1 FROM retracted_positions r WHERE r.position = m.position)
             ORDER BY e.event_id",
        )?;
        let rows = statement.query_map(params![no, organization.as_str()], |row| {
            row.get::<_, Vec<u8>>(0)
        })?;
        rows.map(|row| event_id_from(&row?)).collect()
    }

    fn touched_by(&mut self, event: EventId) -> Result<Option<Touching>> {
        let found: Option<(i64, String)> = self
            .transaction
            .prepare_cached("SELECT position, envelope FROM view_events WHERE event_id = ?1")?
            .query_row(params![&event.as_bytes()[..]], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        let Some((position, envelope)) = found else {
            return Ok(None);
        };
        let gone = self.event(position, &envelope)?;
        let mut statement = self.transaction.prepare_cached(
            "SELECT DISTINCT r.iri FROM touches t JOIN resources r ON r.no = t.resource
             WHERE t.position = ?1 ORDER BY r.iri",
        )?;
        let rows = statement.query_map(params![position], |row| row.get::<_, String>(0))?;
        let mut resources = Vec::new();
        for row in rows {
            resources.push(Iri::parse(row?).map_err(corrupt)?);
        }
        Ok(Some((gone, resources)))
    }

    fn record(&mut self, resource: &Iri) -> Result<Option<Arc<Record>>> {
        match self.number(resource)? {
            Some(no) => Ok(read_record(self.transaction, no)?.map(Arc::new)),
            None => Ok(None),
        }
    }

    fn save(
        &mut self,
        resource: &Iri,
        record: &Arc<Record>,
        change: FootprintChange,
    ) -> Result<()> {
        let no = self.numbers.assign(self.transaction, resource)?;
        let json = serde_json::to_string(record.as_ref()).map_err(corrupt)?;
        self.transaction
            .prepare_cached(
                "INSERT INTO records (resource, record) VALUES (?1, ?2)
                 ON CONFLICT (resource) DO UPDATE SET record = excluded.record",
            )?
            .execute(params![no, json])?;
        if change == FootprintChange::Unchanged {
            return Ok(());
        }
        let current: Option<(Vec<u8>, u32)> = self
            .transaction
            .prepare_cached(
                "SELECT id, version FROM footprints WHERE resource = ?1 ORDER BY version DESC LIMIT 1",
            )?
            .query_row(params![no], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        if let Some((_, version)) = &current {
            self.transaction
                .prepare_cached(
                    "UPDATE footprints SET status = 'Deprecated' WHERE resource = ?1 AND version = ?2",
                )?
                .execute(params![no, version])?;
        }
        if let (FootprintChange::Issued, Some(footprint)) = (change, &record.footprint) {
            let version = current.as_ref().map_or(1, |(_, version)| version + 1);
            self.transaction
                .prepare_cached(
                    "INSERT INTO footprints (resource, version, id, status, preceding, issued_at, footprint)
                     VALUES (?1, ?2, ?3, 'Active', ?4, ?5, ?6)",
                )?
                .execute(params![
                    no,
                    version,
                    &footprint_id(resource, version).as_bytes()[..],
                    current.map(|(id, _)| id),
                    self.issued_at.0,
                    serde_json::to_string(footprint).map_err(corrupt)?,
                ])?;
        }
        Ok(())
    }
}

/// The columns [`footprint_row`] reads, of `footprints f` joined with `resources r`.
const FOOTPRINT_COLUMNS: &str =
    "f.id, f.version, f.status, f.preceding, f.issued_at, f.footprint, r.iri";

/// A row of [`FOOTPRINT_COLUMNS`], as stored.
type FootprintRow = (Vec<u8>, u32, String, Option<Vec<u8>>, u64, String, String);

fn footprint_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<FootprintRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
    ))
}

fn footprint_version(row: FootprintRow) -> Result<FootprintVersion> {
    let (id, version, status, preceding, issued_at, footprint, resource) = row;
    let uuid = |bytes: Vec<u8>| uuid::Uuid::from_slice(&bytes).map_err(corrupt);
    Ok(FootprintVersion {
        id: uuid(id)?,
        resource: Iri::parse(resource).map_err(corrupt)?,
        version,
        status: FootprintStatus::from_name(&status).ok_or_else(|| corrupt(&status))?,
        preceding: preceding.map(uuid).transpose()?,
        issued_at: LogPosition(issued_at),
        footprint: serde_json::from_str(&footprint).map_err(corrupt)?,
    })
}

fn event_id_from(bytes: &[u8]) -> Result<EventId> {
    uuid::Uuid::from_slice(bytes)
        .map(EventId::from_uuid)
        .map_err(corrupt)
}

/// Writes an event and its index rows, unless it is already stored, and returns the rows for
/// the refresh (at the position where the event was first stored).
fn store_event(
    transaction: &Transaction<'_>,
    numbers: &mut Numbers,
    position: LogPosition,
    event: &Event,
) -> Result<EventIndex> {
    let id = &event.event_id.as_bytes()[..];
    let envelope = serde_json::to_string(event).map_err(corrupt)?;
    let inserted = transaction
        .prepare_cached(
            "INSERT INTO view_events (position, event_id, event_type, subject, recorded_by, occurred_at, envelope)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            position.0,
            id,
            event.event_type().name(),
            event.subject.as_str(),
            event.recorded_by.as_str(),
            event.occurred_at.to_string(),
            envelope
        ])?;
    if inserted == 0 {
        let stored: Option<i64> = transaction
            .prepare_cached("SELECT position FROM view_events WHERE event_id = ?1")?
            .query_row(params![id], |row| row.get(0))
            .optional()?;
        return match stored {
            Some(stored) => Ok(EventIndex::of(event, LogPosition(stored as u64))),
            None => Err(Error::Unavailable(format!(
                "log position {} holds another event than {} in the views store",
                position.0, event.event_id
            ))),
        };
    }
    let mut index = EventIndex::of(event, position);
    let at = position.0 as i64;
    let mut touch = transaction.prepare_cached(
        "INSERT INTO touches (resource, role, position) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
    )?;
    for row in &index.touches {
        touch.execute(params![
            numbers.assign(transaction, &row.resource)?,
            row.role.name(),
            at
        ])?;
    }
    let mut consignment = transaction.prepare_cached(
        "INSERT INTO consignments (resource, consignee, position, event_id, shipper, occurred)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for row in &index.consignments {
        consignment.execute(params![
            numbers.assign(transaction, &row.resource)?,
            row.consignee.as_str(),
            at,
            id,
            row.shipper.as_str(),
            event.occurred_at.unix_micros(),
        ])?;
    }
    insert_flows_and_movements(transaction, numbers, event, &index)?;
    // A retraction hides the event it retracts if it is stored; an event retracted before it
    // arrived is hidden as it is stored.
    if let Some(retracted) = EventIndex::retracts(event) {
        transaction
            .prepare_cached(
                "INSERT INTO retracted (event_id, by_event) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?
            .execute(params![&retracted.as_bytes()[..], id])?;
        transaction
            .prepare_cached(
                "INSERT INTO retracted_positions (position)
                 SELECT position FROM view_events WHERE event_id = ?1 ON CONFLICT DO NOTHING",
            )?
            .execute(params![&retracted.as_bytes()[..]])?;
    }
    let retracted_before = transaction
        .prepare_cached(
            "INSERT INTO retracted_positions (position)
             SELECT ?1 FROM retracted WHERE event_id = ?2 ON CONFLICT DO NOTHING",
        )?
        .execute(params![at, id])?;
    index.counted = retracted_before == 0;
    Ok(index)
}

/// Writes the flows and movements of an event: rows keyed by its position.
fn insert_flows_and_movements(
    transaction: &Transaction<'_>,
    numbers: &mut Numbers,
    event: &Event,
    index: &EventIndex,
) -> Result<()> {
    let at = index.position.0 as i64;
    let mut flow = transaction.prepare_cached(
        "INSERT INTO flows (position, ordinal, event_id, from_no, to_no, kind, amount, unit, organization, occurred)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for (ordinal, row) in index.flows.iter().enumerate() {
        flow.execute(params![
            at,
            ordinal as i64,
            &event.event_id.as_bytes()[..],
            numbers.assign(transaction, &row.from)?,
            numbers.assign(transaction, &row.to)?,
            row.kind.name(),
            row.quantity.map(|q| q.amount.get()),
            row.quantity.map(|q| q.unit.code()),
            event.recorded_by.as_str(),
            event.occurred_at.unix_micros(),
        ])?;
    }
    let mut movement = transaction.prepare_cached(
        "INSERT INTO movements (position, ordinal, resource, organization, inflow, amount, unit)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (ordinal, row) in index.movements.iter().enumerate() {
        movement.execute(params![
            at,
            ordinal as i64,
            numbers.assign(transaction, &row.resource)?,
            row.organization.as_str(),
            row.inflow,
            row.measure.amount,
            row.measure.unit.code(),
        ])?;
    }
    Ok(())
}

/// The flows into (upstream) or out of (downstream) resource number `node`, of events that
/// occurred at `since` (microseconds since the epoch) or later, in event-id order.
fn neighbours(
    connection: &Connection,
    direction: Direction,
    node: i64,
    since: i64,
) -> Result<Vec<Flow>> {
    let sql = match direction {
        Direction::Upstream => {
            "SELECT a.iri, b.iri, f.kind, f.amount, f.unit FROM flows f
             JOIN resources a ON a.no = f.from_no JOIN resources b ON b.no = f.to_no
             WHERE f.to_no = ?1
             AND (f.occurred >= ?2 OR f.kind IN ('input', 'part'))
             AND NOT EXISTS (SELECT 1 FROM retracted_positions r WHERE r.position = f.position)
             ORDER BY f.event_id, f.ordinal"
        }
        Direction::Downstream => {
            "SELECT a.iri, b.iri, f.kind, f.amount, f.unit FROM flows f
             JOIN resources a ON a.no = f.from_no JOIN resources b ON b.no = f.to_no
             WHERE f.from_no = ?1
             AND (f.occurred >= ?2 OR f.kind IN ('input', 'part'))
             AND NOT EXISTS (SELECT 1 FROM retracted_positions r WHERE r.position = f.position)
             ORDER BY f.event_id, f.ordinal"
        }
    };
    let mut statement = connection.prepare_cached(sql)?;
    let rows = statement.query_map(params![node, since], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, Option<f64>>(3)?,
            row.get::<_, Option<String>>(4)?,
        ))
    })?;
    let mut flows = Vec::new();
    for row in rows {
        let (from, to, kind, amount, unit) = row?;
        let quantity = match (amount, unit) {
            (Some(amount), Some(unit)) => Some(Quantity {
                amount: PositiveAmount::new(amount).map_err(corrupt)?,
                unit: Unit::from_code(&unit).ok_or_else(|| corrupt(&unit))?,
            }),
            _ => None,
        };
        flows.push(Flow {
            from: Iri::parse(from).map_err(corrupt)?,
            to: Iri::parse(to).map_err(corrupt)?,
            kind: kind_from(&kind).ok_or_else(|| corrupt(&kind))?,
            quantity,
        });
    }
    Ok(flows)
}
