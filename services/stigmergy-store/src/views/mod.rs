//! The views: what the projectors derive from the log for buyers and auditors, behind one port
//! ([`ViewStore`]) with two adapters, embedded SQLite ([`SqliteViewStore`], the default, in the
//! data directory) and PostgreSQL ([`PostgresViewStore`]).
//!
//! Both keep the same tables: the events applied and their index rows (touches, flows,
//! movements), the retracted ids, each resource's derived record, the footprint versions and each
//! projector's position, and the offsets each Kafka consumer group consumed. `apply` writes a
//! page of events from the totally ordered log, its index rows, the records the page changed
//! (refreshed by the domain's `views::derive`) and the new position in ONE transaction, so a crash
//! replays the page and the upserts make the replay harmless. `apply_consumed` does the same for
//! events consumed from partitioned topics, which carry no log position: it skips those the views
//! already hold (a redelivery), numbers the others after the last position stored, and stores the
//! group's consumed offsets ([`PartitionOffset`]) in the same transaction, so that the group
//! resumes each partition where the views stand. Every query leaves out what retracted events
//! contributed. Footprint versions are also found by id and listed in the order they were issued,
//! with what they rest on ([`FootprintProvenance`]), for the PACT exchange of the gateway.

mod postgres;
mod sqlite;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::Arc;

use stigmergy_domain::views::{
    Direction, Footprint, Ledger, Lineage, Memo, Methods, Record, Role, derive,
};
use stigmergy_domain::{
    CountryCode, Event, EventId, EventPayload, Iri, LogPosition, OrganizationId, Timestamp, Unit,
};

pub use postgres::PostgresViewStore;
pub use sqlite::SqliteViewStore;

use crate::{Error, Result};
use sqlite::corrupt;

/// One row of a resource's timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelineEntry {
    pub position: LogPosition,
    pub event: Event,
    pub role: Role,
}

/// Where a consumer group is in one partition of a topic: the offset of the next message it reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionOffset {
    pub topic: String,
    pub partition: i32,
    pub next: i64,
}

/// The offsets of a consumed page, one per partition — the greatest where a partition comes more
/// than once — in (topic, partition) order.
pub(crate) fn merged_offsets(mut offsets: Vec<PartitionOffset>) -> Vec<PartitionOffset> {
    offsets.sort_unstable();
    let mut merged: Vec<PartitionOffset> = Vec::with_capacity(offsets.len());
    for offset in offsets {
        match merged.last_mut() {
            // Sorted: a later offset of the same partition is the greater.
            Some(last) if last.topic == offset.topic && last.partition == offset.partition => {
                last.next = offset.next;
            }
            _ => merged.push(offset),
        }
    }
    merged
}

/// The events of a consumed page that are new — neither among the `known` ids (those the views
/// hold) nor a repeat of an id earlier in the page — at the positions after `head`, one each, in
/// page order.
pub(crate) fn unseen<S: BuildHasher>(
    events: Vec<Event>,
    mut known: HashSet<EventId, S>,
    head: LogPosition,
) -> Vec<(LogPosition, Event)> {
    let mut next = head.0;
    events
        .into_iter()
        .filter(|event| known.insert(event.event_id))
        .map(|event| {
            next += 1;
            (LogPosition(next), event)
        })
        .collect()
}

/// Which events a listing walks: every one, or those one index finds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventScope {
    All,
    /// The events an organisation recorded.
    RecordedBy(OrganizationId),
    /// The events that touch a resource (those its timeline lists, retracted ones included).
    Touching(Iri),
}

/// An event as the views list it.
#[derive(Clone, Debug, PartialEq)]
pub struct ListedEvent {
    pub position: LogPosition,
    pub event: Event,
    /// Whether a later event retracted it.
    pub retracted: bool,
}

/// What an organisation holds of a resource: what its events moved in less what they moved
/// out, in one unit, retracted events left out.
#[derive(Clone, Debug, PartialEq)]
pub struct Held {
    pub resource: Iri,
    pub amount: f64,
    pub unit: Unit,
}

impl Held {
    /// A held amount as a store reads it back: the unit by its code.
    pub(crate) fn read(resource: Iri, amount: f64, unit: &str) -> Result<Self> {
        Ok(Self {
            resource,
            amount,
            unit: Unit::from_code(unit).ok_or_else(|| corrupt(unit))?,
        })
    }
}

/// Whether a footprint version is the current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FootprintStatus {
    Active,
    Deprecated,
}

impl FootprintStatus {
    pub fn name(self) -> &'static str {
        match self {
            Self::Active => "Active",
            Self::Deprecated => "Deprecated",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "Active" => Some(Self::Active),
            "Deprecated" => Some(Self::Deprecated),
            _ => None,
        }
    }
}

/// One issued version of a resource's footprint.
#[derive(Clone, Debug, PartialEq)]
pub struct FootprintVersion {
    /// A stable id for the version: UUIDv5 of the resource and the version number.
    pub id: uuid::Uuid,
    pub resource: Iri,
    /// 1 for the first version issued.
    pub version: u32,
    pub status: FootprintStatus,
    /// The version it replaces.
    pub preceding: Option<uuid::Uuid>,
    /// The log position of the last event of the page that issued it.
    pub issued_at: LogPosition,
    pub footprint: Footprint,
}

/// Which footprint versions a listing walks ([`ViewStore::footprint_page`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FootprintFilter {
    /// Only the versions of these resources; `None` for every resource (an empty list matches
    /// nothing).
    pub resources: Option<Vec<Iri>>,
    /// Only the versions with this status.
    pub status: Option<FootprintStatus>,
}

/// A place in the listing of footprint versions, which runs in the order they were issued: by
/// the log position of the page that issued them, then by id (as 16 bytes). A listing resumes
/// after the cursor of the last version it gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FootprintCursor {
    pub issued_at: LogPosition,
    pub id: uuid::Uuid,
}

impl FootprintVersion {
    /// Where a listing that gave this version resumes.
    pub fn cursor(&self) -> FootprintCursor {
        FootprintCursor {
            issued_at: self.issued_at,
            id: self.id,
        }
    }
}

/// What a footprint version rests on, as the log tells it ([`ViewStore::footprint_provenance`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FootprintProvenance {
    /// When the event at the version's `issued_at` position was recorded: the page that issued
    /// the version ended with that event, so the version was issued then or shortly after.
    pub issued: Timestamp,
    /// The organisation that recorded the resource's creation.
    pub maker: OrganizationId,
    /// Where it was made: the country of the facility of the event that created it (the origin
    /// of a sourced lot).
    pub country: Option<CountryCode>,
    /// The `occurredAt` of the earliest and of the latest of the resource's own events the
    /// version counts: its creation and its repairs, recorded at positions up to `issued_at` and
    /// not retracted by an event recorded there or before.
    pub activity: (Timestamp, Timestamp),
}

/// One of the events a footprint version counts, as [`provenance_of`] reads it: its position,
/// how it concerns the resource, and the event.
pub(crate) type CountedEvent = (LogPosition, Role, Event);

/// The provenance of a footprint version issued by the page that ended with an event recorded
/// at `issued`, from the resource's creation and repairs it counts (`counted`, in any order):
/// `None` without a creation.
pub(crate) fn provenance_of(
    issued: Timestamp,
    counted: &[CountedEvent],
) -> Option<FootprintProvenance> {
    let (_, _, creation) = counted
        .iter()
        .filter(|(_, role, _)| *role == Role::Created)
        .min_by_key(|(position, ..)| *position)?;
    let place = match &creation.payload {
        EventPayload::MaterialSourced(sourced) => Some(&sourced.origin),
        EventPayload::BatchFabricated(fabricated) => Some(&fabricated.facility),
        EventPayload::BatchRecycled(recycled) => Some(&recycled.facility),
        _ => None,
    };
    let first = counted
        .iter()
        .map(|(_, _, event)| event.occurred_at)
        .min()?;
    let last = counted
        .iter()
        .map(|(_, _, event)| event.occurred_at)
        .max()?;
    Some(FootprintProvenance {
        issued,
        maker: creation.recorded_by.clone(),
        country: place.map(|place| place.country),
        activity: (first, last),
    })
}

/// The `recordedAt` of a stored envelope.
pub(crate) fn recorded_at(envelope: &str) -> Result<Timestamp> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Recorded {
        recorded_at: Timestamp,
    }
    serde_json::from_str::<Recorded>(envelope)
        .map(|recorded| recorded.recorded_at)
        .map_err(corrupt)
}

/// What opening a views store does when its views were derived with other methods (or, for
/// SQLite, by another version of its tables) than the ones it is opened with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenStale {
    /// Empty them, so that the projector replays the log into them: for the projector's process.
    Rebuild,
    /// Refuse to open: for a process that only reads them (a gateway, an export), which must not
    /// wipe what the projectors wrote because its own configuration differs.
    Refuse,
}

/// The refusal of [`WhenStale::Refuse`].
pub(crate) fn stale(what: &str) -> crate::Error {
    crate::Error::Unavailable(format!(
        "{what} were derived with other methods (the [footprint] and [contribution] settings) \
         or by another version: give this process the projectors' settings, or let a projector \
         rebuild them"
    ))
}

/// The id of version `version` of `resource`'s footprint.
pub fn footprint_id(resource: &Iri, version: u32) -> uuid::Uuid {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x5d1c_8a4e_2f7b_4c39_9e61_0b3a_7d2f_c845);
    uuid::Uuid::new_v5(&NAMESPACE, format!("{resource}#{version}").as_bytes())
}

/// The methods in force, as a string that changes whenever a figure they give could.
pub(crate) fn methods_fingerprint(methods: &Methods) -> String {
    let mut grid: Vec<(&str, f64)> = methods
        .factors
        .grid
        .by_country
        .iter()
        .map(|(country, factor)| (country.as_str(), *factor))
        .collect();
    grid.sort_by(|a, b| a.0.cmp(b.0));
    format!(
        "{} {}; {}; grid {grid:?} world {}; transport {:?}; {:?}",
        stigmergy_domain::views::METHOD,
        stigmergy_domain::views::METHOD_VERSION,
        stigmergy_domain::views::contribution::METHOD,
        methods.factors.grid.world,
        methods.factors.transport,
        methods.contribution
    )
}

/// How many resources' facts a store keeps in memory from one page to the next, unless configured
/// otherwise (`with_memo_resources`): about 2 KB each. Replaying 1,000,000 generated events it
/// gives 1.7x the throughput of none and 1.5x that of 100,000 (`docs/views.md`).
pub const MEMO_RESOURCES: usize = 1_000_000;

/// The memo of facts a store keeps from one page to the next (see `views::memo`), and the
/// generation of the views it is good for. Every page a store applies counts one more
/// generation in the same transaction (table `view_writes`); when the generation a page finds
/// is not the one after the last this store wrote, someone else (another process) applied pages
/// in between and the memo is cleared.
#[derive(Debug)]
pub(crate) struct Remembered {
    memo: Memo,
    generation: Option<i64>,
}

impl Remembered {
    pub(crate) fn new(resources: usize) -> Self {
        Self {
            memo: Memo::new(resources),
            generation: None,
        }
    }

    /// The memo for the page that writes `generation`.
    pub(crate) fn for_generation(&mut self, generation: i64) -> &mut Memo {
        if self.generation != Some(generation - 1) {
            self.memo.clear();
        }
        self.generation = None;
        &mut self.memo
    }

    /// The page that wrote `generation` committed.
    pub(crate) fn committed(&mut self, generation: i64) {
        self.generation = Some(generation);
        self.memo.trim();
    }

    /// A page failed: the memo may hold what its transaction read.
    pub(crate) fn failed(&mut self) {
        self.generation = None;
        self.memo.clear();
    }
}

/// A page with its events shared rather than copied: the refresh, the memo and a first page's
/// two threads all hold them.
pub(crate) fn shared(page: Vec<(LogPosition, Event)>) -> Vec<(LogPosition, Arc<Event>)> {
    page.into_iter()
        .map(|(position, event)| (position, Arc::new(event)))
        .collect()
}

/// A record derived from a first page, serialised, with the footprints it issued.
pub(crate) struct Derived {
    pub(crate) resource: Iri,
    pub(crate) record: String,
    pub(crate) footprints: Vec<String>,
    pub(crate) withdrawn: bool,
}

/// The records of a first page — a page applied to a store that holds no events yet, so that
/// everything the derivation can ask about is in the page — indexed and derived in memory
/// ([`Ledger`]), and serialised. Each adapter runs it on a thread of its own while it writes the
/// page's events and index rows.
pub(crate) fn derive_first_page(
    page: &[(LogPosition, Arc<Event>)],
    methods: &Methods,
) -> Result<Vec<Derived>> {
    let mut ledger = Ledger::new();
    for (position, event) in page {
        ledger
            .add(*position, event.clone())
            .map_err(|taken| Error::Unavailable(taken.to_string()))?;
    }
    let mut derivation = ledger.derivation();
    let indexed = ledger.indexed();
    let derived = derive::touched(&mut derivation, &indexed)
        .and_then(|touched| derive::refresh(&mut derivation, touched, methods));
    if let Err(never) = derived {
        match never {}
    }
    let records = derivation.finish();
    records
        .saved()
        .map(|saved| {
            Ok(Derived {
                resource: saved.resource.clone(),
                record: serde_json::to_string(saved.record.as_ref()).map_err(corrupt)?,
                footprints: saved
                    .issued
                    .footprints
                    .iter()
                    .map(|footprint| serde_json::to_string(footprint).map_err(corrupt))
                    .collect::<Result<_>>()?,
                withdrawn: saved.issued.withdrawn,
            })
        })
        .collect()
}

/// The read store of the views. Both adapters pass the same test suite.
#[async_trait]
pub trait ViewStore: Send + Sync + std::fmt::Debug {
    /// The last log position `projector` applied (0 before the first).
    async fn position(&self, projector: &str) -> Result<LogPosition>;

    /// Applies a page of events — index rows, refreshed records, footprint versions — and moves
    /// `projector` past the last, in one transaction.
    async fn apply(&self, projector: &str, page: Vec<(LogPosition, Event)>) -> Result<()>;

    /// The next offset `group` reads in each partition it has applied from, in (topic,
    /// partition) order (empty before the first).
    async fn consumed(&self, group: &str) -> Result<Vec<PartitionOffset>>;

    /// Applies events consumed from partitioned topics and records `offsets` for `group`, in ONE
    /// transaction. Events whose id the views already hold (a redelivery after a crash or a
    /// rebalance, a producer retry) are skipped, and so is a repeat of an id within the page (the
    /// first is kept); the others get the next positions after the last position the store
    /// holds, in page order, and are applied exactly as [`apply`](Self::apply) applies a page
    /// (index rows, refreshed records, footprint versions; the first-page path when the store is
    /// empty), and `group`'s [`position`](Self::position) moves to the last of them. A stored
    /// offset never moves back (the greater is kept), and the offsets are stored even when no
    /// event is new. Returns the number of events that were new.
    async fn apply_consumed(
        &self,
        group: &str,
        events: Vec<Event>,
        offsets: Vec<PartitionOffset>,
    ) -> Result<usize>;

    /// Every event touching `resource` that is not retracted, in `occurredAt` then log order.
    async fn timeline(&self, resource: &Iri) -> Result<Vec<TimelineEntry>>;

    /// The lineage of `resource`, upstream or downstream, up to `max_depth` levels, through the
    /// flows of events that are not retracted.
    async fn lineage(
        &self,
        resource: &Iri,
        direction: Direction,
        max_depth: u32,
    ) -> Result<Lineage>;

    /// The derived record of `resource`: what it is, its current footprint, its attribution and
    /// its anomalies.
    async fn record(&self, resource: &Iri) -> Result<Option<Record>>;

    /// Every footprint version issued for `resource`, oldest first.
    async fn footprint_versions(&self, resource: &Iri) -> Result<Vec<FootprintVersion>>;

    /// The footprint version with this id, of whatever resource.
    async fn footprint_version(&self, id: uuid::Uuid) -> Result<Option<FootprintVersion>>;

    /// Up to `limit` footprint versions that `filter` lets through, after `after` (exclusive; from
    /// the first when `None`), in the order they were issued ([`FootprintCursor`]).
    async fn footprint_page(
        &self,
        filter: &FootprintFilter,
        after: Option<FootprintCursor>,
        limit: usize,
    ) -> Result<Vec<FootprintVersion>>;

    /// When `version` was issued, who made its resource and the period of the resource's own
    /// events it counts; `None` when the views do not hold the events it was issued from.
    async fn footprint_provenance(
        &self,
        version: &FootprintVersion,
    ) -> Result<Option<FootprintProvenance>>;

    /// Whether an event was retracted.
    async fn is_retracted(&self, event_id: EventId) -> Result<bool>;

    /// Whether the views have applied this event.
    async fn holds(&self, event_id: EventId) -> Result<bool>;

    /// Up to `limit` events of `scope` after `after` (exclusive), in log order.
    async fn events(
        &self,
        scope: &EventScope,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<ListedEvent>>;

    /// The records of those of `resources` the views know, in one lookup.
    async fn records(&self, resources: &[Iri]) -> Result<Vec<(Iri, Record)>>;

    /// Up to `limit` resources whose name contains `text` (case-insensitively), in IRI order.
    async fn search(&self, text: &str, limit: usize) -> Result<Vec<(Iri, Record)>>;

    /// Who holds `resource` now, per organisation and unit, where that is more than nothing
    /// (the same sums as [`held_by`](Self::held_by)), in IRI order.
    async fn holders(&self, resource: &Iri) -> Result<Vec<(OrganizationId, Held)>>;

    /// What `organization` holds now, per resource and unit, where that is more than nothing:
    /// at most `limit` rows, in IRI order.
    async fn held_by(&self, organization: &OrganizationId, limit: usize) -> Result<Vec<Held>>;
}

/// The least amount counted as held: what is left after rounding is not.
pub const HELD_EPSILON: f64 = 1e-9;
