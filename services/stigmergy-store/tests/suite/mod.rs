//! The test suite every adapter of the views store passes: applying is idempotent, a retraction
//! hides its event whenever it arrives, any order of arrival gives the same timelines, lineage
//! and records as the log order, footprint versions replace each other and are found by id,
//! listed in the order they were issued and traced to the events they count, and events consumed
//! from partitioned topics are applied once however often they are delivered, with the consumed
//! offsets.
//!
//! Each case takes a [`Factory`] that opens a fresh, empty store; `view_store_tests!(factory)`
//! turns every case into a test of the binary that includes this module.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::any::Any;
use std::sync::Arc;

use serde_json::{Value, json};
use stigmergy_domain::views::{Direction, Methods};
use stigmergy_domain::{Event, EventId, Iri, LogPosition, Timestamp};
use stigmergy_store::{
    EventScope, FootprintFilter, FootprintProvenance, FootprintStatus, FootprintVersion,
    PartitionOffset, SqliteViewStore, ViewStore, WhenStale, footprint_id,
};

/// Opens a fresh, empty store.
pub type Factory = fn() -> Fresh;

/// Opens another handle on a store's tables, as another process would, deriving with these
/// methods.
pub type Reopen = Box<dyn Fn(Methods) -> Arc<dyn ViewStore> + Send + Sync>;

/// Opens another handle as a process that only reads the views would ([`WhenStale::Refuse`]).
pub type ReopenReader =
    Box<dyn Fn(Methods) -> Result<Arc<dyn ViewStore>, stigmergy_store::Error> + Send + Sync>;

/// A store opened for one test, with what must outlive it (its directory, its database).
pub struct Fresh {
    // Dropped before `_keep`: the store closes before its directory or database goes.
    pub store: Arc<dyn ViewStore>,
    pub reopen: Reopen,
    pub reader: ReopenReader,
    _keep: Box<dyn Any + Send>,
}

impl Fresh {
    pub fn new(
        store: Arc<dyn ViewStore>,
        reopen: Reopen,
        reader: ReopenReader,
        keep: impl Any + Send,
    ) -> Self {
        Self {
            store,
            reopen,
            reader,
            _keep: Box::new(keep),
        }
    }
}

impl std::ops::Deref for Fresh {
    type Target = dyn ViewStore;

    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}

/// A fresh embedded store in a temporary directory.
pub fn sqlite() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteViewStore::open(dir.path(), Methods::default()).unwrap();
    let path = dir.path().to_owned();
    let reopen: Reopen = {
        let path = path.clone();
        Box::new(move |methods| Arc::new(SqliteViewStore::open(&path, methods).unwrap()))
    };
    let reader: ReopenReader = Box::new(move |methods| {
        SqliteViewStore::open_when_stale(&path, methods, WhenStale::Refuse)
            .map(|store| Arc::new(store) as Arc<dyn ViewStore>)
    });
    Fresh::new(Arc::new(store), reopen, reader, dir)
}

/// One `#[tokio::test]` per case of the suite, each on a fresh store from `$factory`.
macro_rules! view_store_tests {
    ($factory:path) => {
        $crate::suite::view_store_tests!(@cases $factory;
            lineage_and_timelines_follow_the_flows_and_leave_out_retracted_events,
            applying_the_same_events_again_changes_nothing,
            any_order_of_arrival_gives_the_views_of_the_log_order,
            a_late_input_issues_a_footprint_version_that_replaces_the_first,
            retracting_a_creation_withdraws_its_footprint_and_hides_the_event,
            each_projector_keeps_its_own_position_which_never_moves_back,
            two_handles_applying_pages_in_turn_give_the_views_of_one,
            views_derived_with_other_methods_are_emptied_for_a_replay,
            a_reader_with_other_methods_is_refused_and_wipes_nothing,
            generated_streams_give_the_same_views_replayed_paged_interleaved_or_applied_twice,
            a_refused_first_page_changes_nothing_and_the_store_still_takes_one,
            listings_searches_and_holdings_agree_with_the_log,
            consumed_pages_redelivered_and_repeated_give_the_views_of_the_stream_applied_once,
            consumed_offsets_are_kept_per_group_and_never_move_back,
            consumed_events_take_the_positions_after_the_last_and_list_in_the_order_applied,
            two_handles_of_one_group_consuming_together_number_each_event_once,
            footprint_versions_are_found_by_id_and_listed_in_the_order_they_were_issued,
            a_footprint_version_tells_when_it_was_issued_who_made_it_and_what_it_counts,
        );
    };
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                $crate::suite::$case($factory).await;
            }
        )*
    };
}
pub(crate) use view_store_tests;

pub const ORG: &str = "urn:uuid:0191e1a4-7f43-7c4a-9d4e-1f2a3b4c5d6e";
pub const CONSIGNEE: &str = "urn:uuid:0191e1a4-7f43-7c4a-9d4e-6e5d4c3b2a1f";

pub fn iri(name: &str) -> String {
    format!("https://test.example/{name}")
}

pub fn resource(name: &str) -> Iri {
    Iri::parse(iri(name)).unwrap()
}

pub fn event_id(n: u32) -> EventId {
    EventId::parse(&format!("0191e1a4-7f43-7c4a-9d4e-{n:012}")).unwrap()
}

pub fn event(n: u32, event_type: &str, subject: &str, payload: Value) -> (LogPosition, Event) {
    let event: Event = serde_json::from_value(json!({
        "eventId": format!("0191e1a4-7f43-7c4a-9d4e-{n:012}"),
        "type": event_type,
        "schemaVersion": 1,
        "occurredAt": format!("2025-06-01T10:{:02}:00Z", n % 60),
        "recordedAt": "2025-06-02T10:00:00Z",
        "recordedBy": ORG,
        "subject": iri(subject),
        "payload": payload,
    }))
    .expect("a valid event");
    (LogPosition(u64::from(n)), event)
}

fn place() -> Value {
    json!({ "name": "Workshop", "country": "DE" })
}

fn items(items: &[(&str, f64, &str)]) -> Value {
    items
        .iter()
        .map(|&(resource, amount, unit)| json!({ "resource": iri(resource), "quantity": { "amount": amount, "unit": unit } }))
        .collect()
}

pub fn design(n: u32) -> (LogPosition, Event) {
    event(
        n,
        "DesignPublished",
        "design",
        json!({ "designId": iri("design"), "name": "D", "licence": "MIT", "version": "1" }),
    )
}

pub fn lot(n: u32, name: &str) -> (LogPosition, Event) {
    event(
        n,
        "MaterialSourced",
        name,
        json!({
            "lotId": iri(name), "material": "PLA", "quantity": { "amount": 100, "unit": "KGM" }, "origin": place(),
            "supplier": { "id": iri("supplier") }, "kgCo2ePerUnit": 2.0, "dataQuality": "primary", "recycledContent": 0.0
        }),
    )
}

pub fn batch(n: u32, name: &str, inputs: &[&str]) -> (LogPosition, Event) {
    let inputs: Vec<(&str, f64, &str)> = inputs.iter().map(|i| (*i, 1.0, "KGM")).collect();
    event(
        n,
        "BatchFabricated",
        name,
        json!({
            "batchId": iri(name), "designId": iri("design"), "quantity": { "amount": 10, "unit": "H87" },
            "facility": place(), "inputs": items(&inputs),
            "energy": { "amount": 12.5, "unit": "KWH" }
        }),
    )
}

pub fn recycling(n: u32, resource: &str, output: &str) -> (LogPosition, Event) {
    event(
        n,
        "BatchRecycled",
        resource,
        json!({
            "resource": iri(resource), "quantity": { "amount": 1, "unit": "H87" }, "facility": place(),
            "outputLots": [ { "lotId": iri(output), "material": "Flakes", "quantity": { "amount": 1, "unit": "KGM" } } ]
        }),
    )
}

pub fn dispatch(n: u32, shipment: &str, lines: &[(&str, f64, &str)]) -> (LogPosition, Event) {
    event(
        n,
        "ShipmentDispatched",
        shipment,
        json!({
            "shipmentId": iri(shipment), "lines": items(lines), "from": place(), "to": place(),
            "consignee": CONSIGNEE, "transportMode": "road", "distanceKm": 120
        }),
    )
}

pub fn receipt(n: u32, shipment: &str, lines: &[(&str, f64, &str)]) -> (LogPosition, Event) {
    event(
        n,
        "ShipmentReceived",
        shipment,
        json!({ "shipmentId": iri(shipment), "lines": items(lines), "location": place() }),
    )
}

pub fn repair(n: u32, resource: &str, parts: &[(&str, f64, &str)]) -> (LogPosition, Event) {
    event(
        n,
        "BatchRepaired",
        resource,
        json!({ "resource": iri(resource), "parts": items(parts) }),
    )
}

pub fn retraction(n: u32, subject: &str, of: u32) -> (LogPosition, Event) {
    event(
        n,
        "EventRetracted",
        subject,
        json!({ "eventId": format!("0191e1a4-7f43-7c4a-9d4e-{of:012}"), "reason": "wrong" }),
    )
}

/// A small world with a recycling loop and a retraction.
pub fn history() -> Vec<(LogPosition, Event)> {
    vec![
        design(1),
        lot(2, "oak"),
        lot(3, "pla"),
        batch(4, "b1", &["oak", "pla"]),
        recycling(5, "b1", "flakes"),
        batch(6, "b2", &["flakes", "oak"]),
        lot(7, "mistake"),
        batch(8, "b3", &["mistake", "b2"]),
        retraction(9, "b3", 8),
    ]
}

/// The small world with a shipment between the batch and its recycling, and a repair: every
/// kind of index row (touches, flows, movements, retractions).
pub fn history_with_shipment_and_repair() -> Vec<(LogPosition, Event)> {
    let mut events = history();
    events.extend([
        dispatch(10, "s1", &[("b2", 4.0, "H87")]),
        receipt(11, "s1", &[("b2", 4.0, "H87")]),
        repair(12, "b2", &[("pla", 0.5, "KGM")]),
        lot(13, "late"),
        batch(14, "b4", &["late", "b2", "unknown"]),
    ]);
    events
}

/// Every resource the histories speak of.
pub const RESOURCES: &[&str] = &[
    "design", "oak", "pla", "b1", "flakes", "b2", "mistake", "b3", "s1", "late", "b4", "unknown",
];

/// The log in a deterministic shuffle (a small linear congruential generator), cut into pages
/// of `page_size`: the retractions often arrive before what they retract.
pub fn shuffled(
    mut events: Vec<(LogPosition, Event)>,
    seed: &mut u64,
    page_size: usize,
) -> Vec<Vec<(LogPosition, Event)>> {
    for i in (1..events.len()).rev() {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        events.swap(i, (*seed >> 33) as usize % (i + 1));
    }
    events.chunks(page_size).map(<[_]>::to_vec).collect()
}

/// What the views say: the upstream and downstream of every resource, and every timeline.
pub async fn snapshot(store: &dyn ViewStore) -> Vec<String> {
    let mut lines = Vec::new();
    for name in RESOURCES {
        let resource = resource(name);
        for direction in [Direction::Upstream, Direction::Downstream] {
            let lineage = store.lineage(&resource, direction, 50).await.unwrap();
            let mut nodes: Vec<String> = lineage
                .nodes
                .iter()
                .map(|(n, d)| format!("{n}@{d}"))
                .collect();
            nodes.sort();
            lines.push(format!("{name} {direction:?}: {}", nodes.join(" ")));
        }
        let timeline = store.timeline(&resource).await.unwrap();
        let entries: Vec<String> = timeline
            .iter()
            .map(|t| format!("{}:{}", t.event.event_type(), t.role.name()))
            .collect();
        lines.push(format!("{name} timeline: {}", entries.join(" ")));
        let record = store.record(&resource).await.unwrap();
        lines.push(format!(
            "{name} record: {}",
            serde_json::to_string(&record).unwrap()
        ));
    }
    lines
}

pub async fn store_with(fresh: Factory, pages: Vec<Vec<(LogPosition, Event)>>) -> Fresh {
    let store = fresh();
    for page in pages {
        store.apply("test", page).await.unwrap();
    }
    store
}

pub async fn lineage_and_timelines_follow_the_flows_and_leave_out_retracted_events(fresh: Factory) {
    let store = store_with(fresh, vec![history()]).await;
    let view = snapshot(&*store).await;
    let line = |prefix: &str| {
        view.iter()
            .find(|l| l.starts_with(prefix))
            .cloned()
            .unwrap()
    };
    let mut b2_upstream: Vec<String> = [
        ("b2", 0),
        ("design", 1),
        ("flakes", 1),
        ("oak", 1),
        ("b1", 2),
        ("pla", 3),
    ]
    .iter()
    .map(|(name, depth)| format!("{}@{depth}", iri(name)))
    .collect();
    b2_upstream.sort();
    assert_eq!(
        line("b2 Upstream"),
        format!("b2 Upstream: {}", b2_upstream.join(" ")),
        "back through recycling to the first batch"
    );
    assert_eq!(
        line("b3 Upstream"),
        format!("b3 Upstream: {}@0", iri("b3")),
        "a retracted fabrication links nothing"
    );
    assert_eq!(
        line("mistake timeline"),
        "mistake timeline: MaterialSourced:created",
        "the retracted consumption left the timeline"
    );
    assert!(
        line("b1 timeline").contains("BatchFabricated:created")
            && line("b1 timeline").contains("BatchRecycled:consumed")
    );
    assert_eq!(store.position("test").await.unwrap(), LogPosition(9));
}

pub async fn applying_the_same_events_again_changes_nothing(fresh: Factory) {
    let store = store_with(fresh, vec![history_with_shipment_and_repair()]).await;
    let once = snapshot(&*store).await;
    let versions = store.footprint_versions(&resource("b2")).await.unwrap();
    store
        .apply("test", history_with_shipment_and_repair())
        .await
        .unwrap();
    store.apply("test", history()[2..5].to_vec()).await.unwrap();
    assert_eq!(snapshot(&*store).await, once);
    assert_eq!(
        store.footprint_versions(&resource("b2")).await.unwrap(),
        versions,
        "the same figures issue no new version"
    );
    assert_eq!(
        store.position("test").await.unwrap(),
        LogPosition(14),
        "the position never moves back"
    );
}

pub async fn any_order_of_arrival_gives_the_views_of_the_log_order(fresh: Factory) {
    let in_order = store_with(fresh, vec![history_with_shipment_and_repair()]).await;
    let expected = snapshot(&*in_order).await;
    drop(in_order);
    let mut seed: u64 = 0x5eed;
    for round in 0..12 {
        let pages = shuffled(history_with_shipment_and_repair(), &mut seed, 1 + round % 4);
        let shuffled = store_with(fresh, pages).await;
        assert_eq!(snapshot(&*shuffled).await, expected, "round {round}");
    }
}

pub async fn a_late_input_issues_a_footprint_version_that_replaces_the_first(fresh: Factory) {
    let store = store_with(
        fresh,
        vec![
            vec![design(1), batch(4, "b1", &["oak", "pla"])],
            vec![lot(5, "oak"), lot(6, "pla")],
        ],
    )
    .await;
    let b1 = resource("b1");
    let versions = store.footprint_versions(&b1).await.unwrap();
    let summary: Vec<_> = versions
        .iter()
        .map(|v| (v.version, v.status, v.preceding, v.issued_at))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, FootprintStatus::Deprecated, None, LogPosition(4)),
            (
                2,
                FootprintStatus::Active,
                Some(footprint_id(&b1, 1)),
                LogPosition(6)
            ),
        ]
    );
    assert_eq!(versions[0].id, footprint_id(&b1, 1));
    assert_eq!(versions[1].id, footprint_id(&b1, 2));
    assert_eq!(
        versions[0].footprint.missing_inputs,
        vec![resource("oak"), resource("pla")],
        "the first version counted the unknown inputs as 0"
    );
    assert!(versions[1].footprint.missing_inputs.is_empty());
    assert!(versions[1].footprint.per_unit.total() > versions[0].footprint.per_unit.total());
    let record = store.record(&b1).await.unwrap().expect("b1 has a record");
    assert_eq!(record.footprint.as_ref(), Some(&versions[1].footprint));
}

pub async fn retracting_a_creation_withdraws_its_footprint_and_hides_the_event(fresh: Factory) {
    let mut events = history();
    let retraction = events.pop().unwrap();
    let store = store_with(fresh, vec![events, vec![retraction]]).await;
    let b3 = resource("b3");
    let versions = store.footprint_versions(&b3).await.unwrap();
    let summary: Vec<_> = versions.iter().map(|v| (v.version, v.status)).collect();
    assert_eq!(
        summary,
        vec![(1, FootprintStatus::Deprecated)],
        "withdrawn without a successor"
    );
    let record = store
        .record(&b3)
        .await
        .unwrap()
        .expect("b3 is still referred to");
    assert!(record.footprint.is_none());
    assert!(store.is_retracted(event_id(8)).await.unwrap());
    assert!(!store.is_retracted(event_id(4)).await.unwrap());
    assert!(!store.is_retracted(event_id(9)).await.unwrap());
    let timeline = store.timeline(&b3).await.unwrap();
    assert!(
        timeline
            .iter()
            .all(|entry| entry.event.event_id != event_id(8)),
        "the retracted fabrication left the timeline"
    );
}

/// A first page (into an empty store) that cannot be applied — two events at one log position —
/// is refused whole: nothing of it is kept, and the store then applies the right page.
pub async fn a_refused_first_page_changes_nothing_and_the_store_still_takes_one(fresh: Factory) {
    let store = fresh();
    let mut page = history();
    let (_, other) = lot(99, "other-lot");
    page.push((page[0].0, other));
    let refused = store.apply("test", page).await;
    assert!(refused.is_err(), "two events at one position are refused");
    assert_eq!(store.position("test").await.unwrap(), LogPosition(0));
    assert!(store.timeline(&resource("b2")).await.unwrap().is_empty());
    assert_eq!(store.record(&resource("b2")).await.unwrap(), None);

    store.apply("test", history()).await.unwrap();
    let twin = store_with(fresh, vec![history()]).await;
    assert_eq!(snapshot(&*store).await, snapshot(&*twin).await);
    assert!(!store.timeline(&resource("b2")).await.unwrap().is_empty());
}

pub async fn each_projector_keeps_its_own_position_which_never_moves_back(fresh: Factory) {
    let store = fresh();
    assert_eq!(store.position("views").await.unwrap(), LogPosition(0));
    store.apply("views", history()).await.unwrap();
    store.apply("views", history()[..3].to_vec()).await.unwrap();
    store.apply("views", Vec::new()).await.unwrap();
    assert_eq!(store.position("views").await.unwrap(), LogPosition(9));
    assert_eq!(store.position("other").await.unwrap(), LogPosition(0));
}

/// The generated streams the properties are checked on: every event type, hub lots, recycling
/// loops and retractions (3 %), by six organisations.
/// Two handles on the same tables (two processes, say) applying pages in turn: each keeps what
/// it read from one page to the next, and must notice the other's pages.
pub async fn two_handles_applying_pages_in_turn_give_the_views_of_one(fresh: Factory) {
    let events = generated(41);
    let pages = paged(logged(&events), 41);
    let alone = store_with(fresh, pages.clone()).await;
    let first = fresh();
    let second = (first.reopen)(Methods::default());
    for (i, page) in pages.into_iter().enumerate() {
        let store = if i % 3 == 0 { &second } else { &first.store };
        store.apply("views", page).await.unwrap();
    }
    let resources = mentioned(&events);
    assert_same_views(&*alone, &*first, &resources, "the first handle").await;
    assert_same_views(&*alone, &*second, &resources, "the second handle").await;
}

/// Opened with the methods it was derived with, a store keeps its views; with other methods
/// (another grid factor, here) it is emptied, its position back at 0, and a replay derives the
/// views anew.
pub async fn views_derived_with_other_methods_are_emptied_for_a_replay(fresh: Factory) {
    let store = store_with(fresh, vec![history()]).await;
    let position = store.position("test").await.unwrap();
    assert!(position > LogPosition(0));
    let kept = (store.reopen)(Methods::default());
    assert_eq!(kept.position("test").await.unwrap(), position);
    let before = kept.record(&resource("b2")).await.unwrap().unwrap();
    drop(kept);

    let mut other = Methods::default();
    other.factors.grid.world += 1.0;
    other.factors.grid.by_country.clear();
    let emptied = (store.reopen)(other);
    assert_eq!(emptied.position("test").await.unwrap(), LogPosition(0));
    assert_eq!(emptied.record(&resource("b2")).await.unwrap(), None);
    assert!(emptied.timeline(&resource("b2")).await.unwrap().is_empty());

    emptied.apply("test", history()).await.unwrap();
    let after = emptied.record(&resource("b2")).await.unwrap().unwrap();
    let fabrication = |record: &stigmergy_domain::views::Record| {
        record.footprint.as_ref().unwrap().per_unit.fabrication
    };
    assert!(
        fabrication(&after) > fabrication(&before),
        "b2's fabrication is derived with the new grid factor: {} then {}",
        fabrication(&before),
        fabrication(&after)
    );
}

/// A process that only reads the views (a gateway, an export) and was given other methods is
/// refused, and the views stay as they were; with the same methods it reads them.
pub async fn a_reader_with_other_methods_is_refused_and_wipes_nothing(fresh: Factory) {
    let store = store_with(fresh, vec![history()]).await;
    let position = store.position("test").await.unwrap();
    let before = store.record(&resource("b2")).await.unwrap().unwrap();

    let mut other = Methods::default();
    other.factors.grid.world += 1.0;
    other.factors.grid.by_country.clear();
    let refused = (store.reader)(other).map(|_| ()).unwrap_err();
    assert!(
        format!("{refused:?}").contains("other methods"),
        "the refusal says why: {refused:?}"
    );

    let reader = (store.reader)(Methods::default()).unwrap();
    assert_eq!(reader.position("test").await.unwrap(), position);
    assert_eq!(
        reader.record(&resource("b2")).await.unwrap().unwrap(),
        before
    );
    assert_eq!(store.position("test").await.unwrap(), position);
}

fn generated(seed: u64) -> Vec<Event> {
    let mix = stigmergy_testkit::Mix {
        events: 240,
        organizations: 6,
        hub_lots: 1,
        retraction_rate: 0.03,
        ..stigmergy_testkit::Mix::default()
    };
    stigmergy_testkit::Generator::new(seed, &mix).collect()
}

/// Positions 1, 2, … in the order given: the order a log (or a partition) delivered them in.
fn logged(events: &[Event]) -> Vec<(LogPosition, Event)> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| (LogPosition(i as u64 + 1), e.clone()))
        .collect()
}

/// Pages of pseudo-random sizes from 1 to 40.
fn paged(events: Vec<(LogPosition, Event)>, mut seed: u64) -> Vec<Vec<(LogPosition, Event)>> {
    let mut pages = Vec::new();
    let mut rest = events.as_slice();
    while !rest.is_empty() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let size = (1 + (seed >> 33) as usize % 40).min(rest.len());
        pages.push(rest[..size].to_vec());
        rest = &rest[size..];
    }
    pages
}

/// Every resource the events mention.
fn mentioned(events: &[Event]) -> Vec<Iri> {
    let mut resources: Vec<Iri> = events
        .iter()
        .flat_map(|e| stigmergy_domain::views::EventIndex::of(e, LogPosition(0)).touches)
        .map(|t| t.resource)
        .collect();
    resources.sort();
    resources.dedup();
    resources
}

/// Asserts that two stores say the same of every resource: its record (figures to 1e-12), its
/// timeline, and what lies upstream and downstream of it.
async fn assert_same_views(a: &dyn ViewStore, b: &dyn ViewStore, resources: &[Iri], what: &str) {
    for resource in resources {
        let (left, right) = (
            a.record(resource).await.unwrap(),
            b.record(resource).await.unwrap(),
        );
        let same = match (&left, &right) {
            (Some(l), Some(r)) => l.same_as(r),
            (None, None) => true,
            _ => false,
        };
        assert!(
            same,
            "{what}: the records of {resource} differ:\n{left:?}\n{right:?}"
        );
        let ids = |t: Vec<stigmergy_store::TimelineEntry>| -> Vec<(EventId, &'static str)> {
            t.into_iter()
                .map(|e| (e.event.event_id, e.role.name()))
                .collect()
        };
        assert_eq!(
            ids(a.timeline(resource).await.unwrap()),
            ids(b.timeline(resource).await.unwrap()),
            "{what}: the timelines of {resource} differ"
        );
        for direction in [Direction::Upstream, Direction::Downstream] {
            let nodes = |l: stigmergy_domain::views::Lineage| {
                let mut nodes = l.nodes;
                nodes.sort();
                nodes
            };
            assert_eq!(
                nodes(a.lineage(resource, direction, 50).await.unwrap()),
                nodes(b.lineage(resource, direction, 50).await.unwrap()),
                "{what}: the {direction:?} lineage of {resource} differs"
            );
        }
    }
}

/// (a) replaying from zero in one page equals processing page by page; (b) the views converge
/// for any interleaving of the subjects' events, events arriving before what they refer to; (c)
/// applying events again changes nothing.
pub async fn generated_streams_give_the_same_views_replayed_paged_interleaved_or_applied_twice(
    fresh: Factory,
) {
    for seed in 1..=3 {
        let events = generated(seed);
        let resources = mentioned(&events);
        let replayed = store_with(fresh, vec![logged(&events)]).await;

        let incremental = store_with(fresh, paged(logged(&events), seed)).await;
        assert_same_views(
            &*replayed,
            &*incremental,
            &resources,
            &format!("seed {seed}, paged"),
        )
        .await;

        let arrival = stigmergy_testkit::interleave(&events, seed);
        assert_ne!(arrival, events, "the interleaving reorders the stream");
        let interleaved = store_with(fresh, paged(logged(&arrival), seed + 7)).await;
        assert_same_views(
            &*replayed,
            &*interleaved,
            &resources,
            &format!("seed {seed}, interleaved"),
        )
        .await;

        let head = replayed.position("test").await.unwrap();
        replayed.apply("test", logged(&events)).await.unwrap();
        replayed
            .apply("test", logged(&events)[50..120].to_vec())
            .await
            .unwrap();
        assert_same_views(
            &*incremental,
            &*replayed,
            &resources,
            &format!("seed {seed}, applied twice"),
        )
        .await;
        assert_eq!(replayed.position("test").await.unwrap(), head);
    }
}

/// The listings the gateway serves agree with the log they were derived from, on a store
/// filled in one page and on one filled page by page: every event in log order and through each
/// index (by recording organisation, by resource touched), each page after a cursor, records
/// looked up together, names searched, and what each organisation holds.
pub async fn listings_searches_and_holdings_agree_with_the_log(fresh: Factory) {
    use stigmergy_domain::views::EventIndex;
    use stigmergy_store::EventScope;

    let events = generated(5);
    let log = logged(&events);
    let resources = mentioned(&events);
    let mut organizations: Vec<Iri> = events.iter().map(|e| e.recorded_by.clone()).collect();
    organizations.sort();
    organizations.dedup();
    for store in [
        store_with(fresh, vec![log.clone()]).await,
        store_with(fresh, paged(log.clone(), 5)).await,
    ] {
        let all = store
            .events(&EventScope::All, LogPosition(0), usize::MAX)
            .await
            .unwrap();
        let positions: Vec<_> = all.iter().map(|e| (e.position, e.event.event_id)).collect();
        let expected: Vec<_> = log.iter().map(|(p, e)| (*p, e.event_id)).collect();
        assert_eq!(positions, expected, "every event, in log order");
        let mut retracted = 0;
        for listed in &all {
            assert_eq!(
                listed.retracted,
                store.is_retracted(listed.event.event_id).await.unwrap()
            );
            retracted += usize::from(listed.retracted);
        }
        assert!(retracted > 0, "the stream retracts some events");

        let mut pages = Vec::new();
        let mut after = LogPosition(0);
        loop {
            let page = store.events(&EventScope::All, after, 7).await.unwrap();
            let Some(last) = page.last() else { break };
            assert!(page.len() <= 7);
            after = last.position;
            pages.extend(page.into_iter().map(|e| e.position));
        }
        assert_eq!(pages, all.iter().map(|e| e.position).collect::<Vec<_>>());

        let listed = |scope: EventScope| {
            let store = &store;
            async move {
                let listed = store
                    .events(&scope, LogPosition(0), usize::MAX)
                    .await
                    .unwrap();
                listed.into_iter().map(|e| e.position).collect::<Vec<_>>()
            }
        };
        for organization in &organizations {
            let expected: Vec<_> = log
                .iter()
                .filter(|(_, e)| &e.recorded_by == organization)
                .map(|(p, _)| *p)
                .collect();
            assert_eq!(
                listed(EventScope::RecordedBy(organization.clone())).await,
                expected
            );
        }
        for resource in &resources {
            let expected: Vec<_> = log
                .iter()
                .filter(|(p, e)| {
                    EventIndex::of(e, *p)
                        .touches
                        .iter()
                        .any(|t| &t.resource == resource)
                })
                .map(|(p, _)| *p)
                .collect();
            assert!(!expected.is_empty());
            assert_eq!(
                listed(EventScope::Touching(resource.clone())).await,
                expected
            );
        }

        let together = store.records(&resources).await.unwrap();
        assert_eq!(together.len(), resources.len());
        for (resource, record) in &together {
            assert!(
                store
                    .record(resource)
                    .await
                    .unwrap()
                    .unwrap()
                    .same_as(record)
            );
        }

        let named: Vec<(Iri, String)> = together
            .iter()
            .filter_map(|(r, record)| record.name.clone().map(|name| (r.clone(), name)))
            .collect();
        let (_, name) = named.first().expect("some resources have names");
        let needle: String = name.chars().take(3).collect::<String>().to_uppercase();
        let mut expected: Vec<Iri> = named
            .iter()
            .filter(|(_, n)| n.to_lowercase().contains(&needle.to_lowercase()))
            .map(|(r, _)| r.clone())
            .collect();
        expected.sort();
        let found: Vec<Iri> = store
            .search(&needle, usize::MAX)
            .await
            .unwrap()
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        assert_eq!(found, expected, "searching {needle:?}");
        assert_eq!(store.search(&needle, 1).await.unwrap().len(), 1);
        assert!(
            store
                .search("no such name at all", 10)
                .await
                .unwrap()
                .is_empty()
        );

        let mut holders = 0;
        for organization in &organizations {
            let mut sums: std::collections::BTreeMap<(String, String), f64> = Default::default();
            for (position, event) in &log {
                if store.is_retracted(event.event_id).await.unwrap() {
                    continue;
                }
                for movement in EventIndex::of(event, *position).movements {
                    if &movement.organization == organization {
                        let sum = sums
                            .entry((
                                movement.resource.to_string(),
                                movement.measure.unit.code().to_owned(),
                            ))
                            .or_default();
                        *sum += if movement.inflow {
                            movement.measure.amount
                        } else {
                            -movement.measure.amount
                        };
                    }
                }
            }
            let expected: Vec<_> = sums
                .into_iter()
                .filter(|(_, amount)| *amount > stigmergy_store::HELD_EPSILON)
                .collect();
            let held = store.held_by(organization, usize::MAX).await.unwrap();
            assert_eq!(held.len(), expected.len(), "what {organization} holds");
            for (held, ((resource, unit), amount)) in held.iter().zip(&expected) {
                assert_eq!(
                    (held.resource.as_str(), held.unit.code()),
                    (resource.as_str(), unit.as_str())
                );
                assert!(
                    (held.amount - amount).abs() < 1e-9,
                    "{held:?} against {amount}"
                );
            }
            holders += usize::from(!held.is_empty());
        }
        assert!(holders > 1, "several organisations hold something");

        // Who holds each resource: the same sums, seen from the resource.
        let mut by_resource: std::collections::BTreeMap<String, Vec<(String, String, f64)>> =
            Default::default();
        for organization in &organizations {
            for held in store.held_by(organization, usize::MAX).await.unwrap() {
                by_resource
                    .entry(held.resource.to_string())
                    .or_default()
                    .push((
                        organization.to_string(),
                        held.unit.code().to_owned(),
                        held.amount,
                    ));
            }
        }
        for resource in &resources {
            let holders: Vec<(String, String, f64)> = store
                .holders(resource)
                .await
                .unwrap()
                .into_iter()
                .map(|(o, held)| (o.to_string(), held.unit.code().to_owned(), held.amount))
                .collect();
            let expected = by_resource.remove(resource.as_str()).unwrap_or_default();
            assert_eq!(holders.len(), expected.len(), "who holds {resource}");
            for (got, want) in holders.iter().zip(&expected) {
                assert_eq!((&got.0, &got.1), (&want.0, &want.1));
                assert!((got.2 - want.2).abs() < 1e-9);
            }
        }
    }
}

/// The next pseudo-random number of a small linear congruential generator.
fn draw(seed: &mut u64) -> usize {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*seed >> 33) as usize
}

fn offset(topic: &str, partition: i32, next: i64) -> PartitionOffset {
    PartitionOffset {
        topic: topic.to_owned(),
        partition,
        next,
    }
}

fn without_positions(page: &[(LogPosition, Event)]) -> Vec<Event> {
    page.iter().map(|(_, event)| event.clone()).collect()
}

/// The pages of a log as a consumer group might receive them: each page with one of its events
/// twice and up to three events delivered before mixed in (producer retries), then delivered
/// again — on its own, or ahead of the next page (a redelivery after a crash or a rebalance).
/// Each delivery comes with the offsets it reached and how many of its events are new: those of
/// its page of the log, in their order.
fn deliveries(
    pages: &[Vec<(LogPosition, Event)>],
    mut seed: u64,
) -> Vec<(Vec<Event>, Vec<PartitionOffset>, usize)> {
    let mut deliveries = Vec::new();
    let mut delivered: Vec<Event> = Vec::new();
    let mut again: Vec<Event> = Vec::new();
    for (k, page) in pages.iter().enumerate() {
        let mut events = without_positions(page);
        let twice = draw(&mut seed) % events.len();
        let at = twice + 1 + draw(&mut seed) % (events.len() - twice);
        events.insert(at, events[twice].clone());
        for _ in 0..delivered.len().min(3) {
            let repeat = delivered[draw(&mut seed) % delivered.len()].clone();
            let at = draw(&mut seed) % (events.len() + 1);
            events.insert(at, repeat);
        }
        let offsets = vec![
            offset("events", (k % 3) as i32, k as i64 + 1),
            offset("events", 3, 2 * k as i64),
        ];
        let mut first = std::mem::take(&mut again);
        first.extend(events.iter().cloned());
        deliveries.push((first, offsets.clone(), page.len()));
        if k % 2 == 0 {
            deliveries.push((events, offsets, 0));
        } else {
            again = events;
        }
        delivered.extend(without_positions(page));
    }
    if !again.is_empty() {
        deliveries.push((again, Vec::new(), 0));
    }
    deliveries
}

/// Every event the views list, in order: position, id, and whether it is retracted.
async fn listing(store: &dyn ViewStore) -> Vec<(LogPosition, EventId, bool)> {
    store
        .events(&EventScope::All, LogPosition(0), usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.position, e.event.event_id, e.retracted))
        .collect()
}

/// Asserts that two stores issued the same footprint versions, exactly, for every resource.
async fn assert_same_versions(a: &dyn ViewStore, b: &dyn ViewStore, resources: &[Iri], what: &str) {
    for resource in resources {
        assert_eq!(
            a.footprint_versions(resource).await.unwrap(),
            b.footprint_versions(resource).await.unwrap(),
            "{what}: the footprint versions of {resource} differ"
        );
    }
}

/// A generated stream in the order partitions deliver it (no order across subjects), consumed
/// page by page with repeats within and across pages and every page delivered twice, gives
/// exactly the views of the stream applied once in the same pages: records, timelines, lineage,
/// footprint versions and the events listed.
pub async fn consumed_pages_redelivered_and_repeated_give_the_views_of_the_stream_applied_once(
    fresh: Factory,
) {
    for seed in 1..=3 {
        let events = generated(seed);
        let arrival = stigmergy_testkit::interleave(&events, seed);
        let resources = mentioned(&events);
        let pages = paged(logged(&arrival), seed + 11);
        let once = store_with(fresh, pages.clone()).await;

        let consumed = fresh();
        let deliveries = deliveries(&pages, seed);
        assert!(deliveries.len() > pages.len());
        let mut reached = std::collections::BTreeMap::new();
        for (n, (page, offsets, new)) in deliveries.into_iter().enumerate() {
            for o in &offsets {
                let next = reached
                    .entry((o.topic.clone(), o.partition))
                    .or_insert(o.next);
                *next = o.next.max(*next);
            }
            assert_eq!(
                consumed
                    .apply_consumed("views", page, offsets)
                    .await
                    .unwrap(),
                new,
                "seed {seed}: the new events of delivery {n}"
            );
        }
        let what = format!("seed {seed}, consumed");
        assert_same_views(&*once, &*consumed, &resources, &what).await;
        assert_same_versions(&*once, &*consumed, &resources, &what).await;
        assert_eq!(
            listing(&*consumed).await,
            listing(&*once).await,
            "{what}: the events listed"
        );
        assert_eq!(
            consumed.position("views").await.unwrap(),
            LogPosition(events.len() as u64)
        );
        let reached: Vec<PartitionOffset> = reached
            .into_iter()
            .map(|((topic, partition), next)| offset(&topic, partition, next))
            .collect();
        assert_eq!(reached.len(), 4);
        assert_eq!(
            consumed.consumed("views").await.unwrap(),
            reached,
            "{what}: the greatest offset of each partition"
        );
    }
}

/// Offsets are stored per consumer group and partition, in (topic, partition) order; a stored
/// offset never moves back; they are stored even when every event is a repeat; and views rebuilt
/// (other methods) forget them, so that the groups consume from the start again.
pub async fn consumed_offsets_are_kept_per_group_and_never_move_back(fresh: Factory) {
    let store = fresh();
    let events = without_positions(&history());
    assert!(store.consumed("views").await.unwrap().is_empty());
    let new = store
        .apply_consumed(
            "views",
            events[..5].to_vec(),
            vec![
                offset("lots", 1, 3),
                offset("batches", 0, 2),
                offset("lots", 0, 7),
            ],
        )
        .await
        .unwrap();
    assert_eq!(new, 5);
    assert_eq!(
        store.consumed("views").await.unwrap(),
        vec![
            offset("batches", 0, 2),
            offset("lots", 0, 7),
            offset("lots", 1, 3)
        ],
        "in (topic, partition) order"
    );

    // Partitions read again from before (a rebalance): nothing moves back, and of a partition
    // named twice the greater offset is kept.
    let new = store
        .apply_consumed(
            "views",
            events[3..7].to_vec(),
            vec![
                offset("lots", 0, 5),
                offset("lots", 1, 9),
                offset("designs", 0, 1),
                offset("lots", 1, 8),
            ],
        )
        .await
        .unwrap();
    assert_eq!(new, 2, "two of the four events are new");
    let expected = vec![
        offset("batches", 0, 2),
        offset("designs", 0, 1),
        offset("lots", 0, 7),
        offset("lots", 1, 9),
    ];
    assert_eq!(store.consumed("views").await.unwrap(), expected);

    // Every event a repeat: the views are as they were, the offsets move on.
    let before = snapshot(&*store).await;
    let new = store
        .apply_consumed("views", events[..7].to_vec(), vec![offset("batches", 0, 4)])
        .await
        .unwrap();
    assert_eq!(new, 0);
    let mut expected = expected;
    expected[0].next = 4;
    assert_eq!(store.consumed("views").await.unwrap(), expected);
    assert_eq!(snapshot(&*store).await, before);
    assert_eq!(store.position("views").await.unwrap(), LogPosition(7));
    store
        .apply_consumed("views", Vec::new(), vec![offset("lots", 0, 8)])
        .await
        .unwrap();
    expected[2].next = 8;
    assert_eq!(store.consumed("views").await.unwrap(), expected);

    // Another group keeps its own; its position stays where it was when no event was new.
    assert!(store.consumed("audit").await.unwrap().is_empty());
    let new = store
        .apply_consumed("audit", events[..2].to_vec(), vec![offset("lots", 0, 1)])
        .await
        .unwrap();
    assert_eq!(new, 0);
    assert_eq!(
        store.consumed("audit").await.unwrap(),
        vec![offset("lots", 0, 1)]
    );
    assert_eq!(store.position("audit").await.unwrap(), LogPosition(0));
    assert_eq!(store.consumed("views").await.unwrap(), expected);
    assert!(store.consumed("unknown").await.unwrap().is_empty());

    // Another process reads them; views rebuilt forget them.
    let kept = (store.reopen)(Methods::default());
    assert_eq!(kept.consumed("views").await.unwrap(), expected);
    drop(kept);
    let mut other = Methods::default();
    other.factors.grid.world += 1.0;
    other.factors.grid.by_country.clear();
    let emptied = (store.reopen)(other);
    assert!(emptied.consumed("views").await.unwrap().is_empty());
    assert!(emptied.consumed("audit").await.unwrap().is_empty());
    let new = emptied
        .apply_consumed("views", events.clone(), vec![offset("lots", 0, 3)])
        .await
        .unwrap();
    assert_eq!(new, events.len(), "the views rebuilt hold nothing");
    assert_eq!(
        emptied.consumed("views").await.unwrap(),
        vec![offset("lots", 0, 3)]
    );
}

/// Consumed events are numbered after the last position the store holds — from 1 in an empty
/// store, after a page of the log otherwise — densely, in the order applied (the first of a
/// repeated id), and listed in that order; the views are those of the same events applied at
/// those positions.
pub async fn consumed_events_take_the_positions_after_the_last_and_list_in_the_order_applied(
    fresh: Factory,
) {
    let events = without_positions(&history_with_shipment_and_repair());
    let e = |n: usize| events[n].clone();
    let store = fresh();
    let new = store
        .apply_consumed("views", vec![e(3), e(0), e(3), e(1)], Vec::new())
        .await
        .unwrap();
    assert_eq!(new, 3);
    store
        .apply("log", vec![(LogPosition(10), e(2))])
        .await
        .unwrap();
    let new = store
        .apply_consumed("views", vec![e(5), e(0), e(4), e(5), e(2)], Vec::new())
        .await
        .unwrap();
    assert_eq!(new, 2);
    let new = store
        .apply_consumed("views", vec![e(13), e(12), e(9), e(10)], Vec::new())
        .await
        .unwrap();
    assert_eq!(new, 4);
    let applied = [
        (1, 3),
        (2, 0),
        (3, 1),
        (10, 2),
        (11, 5),
        (12, 4),
        (13, 13),
        (14, 12),
        (15, 9),
        (16, 10),
    ];
    let positioned = |(position, n): (u64, usize)| (LogPosition(position), e(n));
    assert_eq!(
        listing(&*store)
            .await
            .into_iter()
            .map(|(position, id, _)| (position, id))
            .collect::<Vec<_>>(),
        applied
            .iter()
            .map(|&(position, n)| (LogPosition(position), events[n].event_id))
            .collect::<Vec<_>>(),
        "dense after the last position, in the order applied"
    );
    let after: Vec<LogPosition> = store
        .events(&EventScope::All, LogPosition(3), 3)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(
        after,
        vec![LogPosition(10), LogPosition(11), LogPosition(12)]
    );
    assert_eq!(store.position("views").await.unwrap(), LogPosition(16));
    assert_eq!(store.position("log").await.unwrap(), LogPosition(10));

    let logged = store_with(
        fresh,
        vec![
            applied[..3].iter().copied().map(positioned).collect(),
            applied[3..4].iter().copied().map(positioned).collect(),
            applied[4..6].iter().copied().map(positioned).collect(),
            applied[6..].iter().copied().map(positioned).collect(),
        ],
    )
    .await;
    assert_eq!(snapshot(&*store).await, snapshot(&*logged).await);
    let resources: Vec<Iri> = RESOURCES.iter().map(|name| resource(name)).collect();
    assert_same_versions(&*logged, &*store, &resources, "consumed and logged").await;
}

/// Two processes of one consumer group applying overlapping pages together: one waits for the
/// other, so every event is stored once, at positions 1, 2, …, and the new events they count add
/// up to the stream.
pub async fn two_handles_of_one_group_consuming_together_number_each_event_once(fresh: Factory) {
    let events = generated(17);
    let first = fresh();
    let second = (first.reopen)(Methods::default());
    for round in 0..2 {
        let (a, b) = if round == 0 {
            (events[..150].to_vec(), events[100..].to_vec())
        } else {
            (events.clone(), events[..60].to_vec())
        };
        let (a, b) = tokio::join!(
            first.apply_consumed("views", a, vec![offset("events", 0, 150)]),
            second.apply_consumed("views", b, vec![offset("events", 1, 240)])
        );
        let new = a.unwrap() + b.unwrap();
        assert_eq!(new, if round == 0 { events.len() } else { 0 });
    }
    let listed = listing(&*first).await;
    let positions: Vec<LogPosition> = listed.iter().map(|(p, _, _)| *p).collect();
    let dense: Vec<LogPosition> = (1..=events.len() as u64).map(LogPosition).collect();
    assert_eq!(positions, dense);
    let mut ids: Vec<EventId> = listed.iter().map(|(_, id, _)| *id).collect();
    ids.sort();
    let mut expected: Vec<EventId> = events.iter().map(|e| e.event_id).collect();
    expected.sort();
    assert_eq!(ids, expected, "every event once");
    assert_eq!(
        second.consumed("views").await.unwrap(),
        vec![offset("events", 0, 150), offset("events", 1, 240)]
    );
    assert_eq!(
        first.position("views").await.unwrap(),
        LogPosition(events.len() as u64)
    );
}

/// An event of [`event`] recorded at a time of its own (`2025-06-02T11:MM:00Z`, MM = `n`).
fn recorded(n: u32, (position, mut event): (LogPosition, Event)) -> (LogPosition, Event) {
    event.recorded_at = Timestamp::parse(&format!("2025-06-02T11:{:02}:00Z", n % 60)).unwrap();
    (position, event)
}

/// The small world of footprint versions: a batch made before its inputs were sourced (version
/// 1 counts them as 0), the lots sourced (version 2), a batch made from it, and a repair of it
/// (version 3), each page applied on its own. The first page goes into an empty store.
fn versioned_history() -> Vec<Vec<(LogPosition, Event)>> {
    let mut b1 = recorded(4, batch(4, "b1", &["oak", "pla"]));
    b1.1.recorded_by = Iri::parse(CONSIGNEE).unwrap();
    vec![
        vec![recorded(1, design(1)), b1],
        vec![recorded(5, lot(5, "oak")), recorded(6, lot(6, "pla"))],
        vec![recorded(7, batch(7, "b2", &["b1"]))],
        vec![recorded(8, repair(8, "b1", &[("pla", 0.5, "KGM")]))],
    ]
}

/// Every version of the resources of [`versioned_history`], in the order they were issued.
async fn all_versions(store: &dyn ViewStore) -> Vec<FootprintVersion> {
    let mut all = Vec::new();
    for name in ["design", "oak", "pla", "b1", "b2"] {
        all.extend(store.footprint_versions(&resource(name)).await.unwrap());
    }
    all.sort_by_key(FootprintVersion::cursor);
    all
}

/// The whole listing of `filter`, `limit` versions at a time.
async fn listed(
    store: &dyn ViewStore,
    filter: &FootprintFilter,
    limit: usize,
) -> Vec<FootprintVersion> {
    let mut all: Vec<FootprintVersion> = Vec::new();
    loop {
        let after = all.last().map(FootprintVersion::cursor);
        let page = store.footprint_page(filter, after, limit).await.unwrap();
        assert!(page.len() <= limit, "a page holds at most the limit");
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

pub async fn footprint_versions_are_found_by_id_and_listed_in_the_order_they_were_issued(
    fresh: Factory,
) {
    let store = store_with(fresh, versioned_history()).await;
    let b1 = resource("b1");
    let versions = store.footprint_versions(&b1).await.unwrap();
    let summary: Vec<_> = versions
        .iter()
        .map(|v| (v.version, v.status, v.preceding, v.issued_at))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, FootprintStatus::Deprecated, None, LogPosition(4)),
            (
                2,
                FootprintStatus::Deprecated,
                Some(footprint_id(&b1, 1)),
                LogPosition(6)
            ),
            (
                3,
                FootprintStatus::Active,
                Some(footprint_id(&b1, 2)),
                LogPosition(8)
            ),
        ],
        "each re-issue deprecates the version it replaces and names it"
    );

    let all = all_versions(&*store).await;
    assert_eq!(
        all.len(),
        6,
        "b1 three times, the lots and b2 once each: {all:#?}"
    );
    for version in &all {
        assert_eq!(
            store.footprint_version(version.id).await.unwrap().as_ref(),
            Some(version),
            "found by its id"
        );
    }
    assert_eq!(
        store.footprint_version(footprint_id(&b1, 4)).await.unwrap(),
        None,
        "a version never issued"
    );

    let everything = FootprintFilter::default();
    assert_eq!(
        store.footprint_page(&everything, None, 100).await.unwrap(),
        all
    );
    for limit in [1, 2, 3, 6] {
        assert_eq!(
            listed(&*store, &everything, limit).await,
            all,
            "pages of {limit}"
        );
    }
    let last = all.last().unwrap().cursor();
    assert!(
        store
            .footprint_page(&everything, Some(last), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .footprint_page(&everything, None, 0)
            .await
            .unwrap()
            .is_empty()
    );
    // A cursor between two versions issued by one page resumes between them.
    let at_six: Vec<_> = all
        .iter()
        .filter(|v| v.issued_at == LogPosition(6))
        .collect();
    assert_eq!(at_six.len(), 3, "b1's second version and both lots");
    let resumed = store
        .footprint_page(&everything, Some(at_six[0].cursor()), 2)
        .await
        .unwrap();
    assert_eq!(resumed.iter().collect::<Vec<_>>(), at_six[1..]);

    for status in [FootprintStatus::Active, FootprintStatus::Deprecated] {
        let filter = FootprintFilter {
            status: Some(status),
            ..FootprintFilter::default()
        };
        let expected: Vec<_> = all.iter().filter(|v| v.status == status).cloned().collect();
        assert_eq!(listed(&*store, &filter, 2).await, expected, "{status:?}");
    }
    let of = |names: &[&str], status: Option<FootprintStatus>| FootprintFilter {
        resources: Some(names.iter().map(|name| resource(name)).collect()),
        status,
    };
    assert_eq!(listed(&*store, &of(&["b1"], None), 1).await, versions);
    let b1_and_oak: Vec<_> = all
        .iter()
        .filter(|v| v.resource == b1 || v.resource == resource("oak"))
        .cloned()
        .collect();
    assert_eq!(
        listed(&*store, &of(&["oak", "b1"], None), 2).await,
        b1_and_oak
    );
    assert_eq!(
        listed(&*store, &of(&["b1"], Some(FootprintStatus::Deprecated)), 5).await,
        versions[..2]
    );
    assert!(listed(&*store, &of(&[], None), 5).await.is_empty());
    assert!(
        listed(&*store, &of(&["never-recorded"], None), 5)
            .await
            .is_empty()
    );
}

pub async fn a_footprint_version_tells_when_it_was_issued_who_made_it_and_what_it_counts(
    fresh: Factory,
) {
    let mut pages = versioned_history();
    // The repair is retracted: b1 is issued a fourth version, without it.
    pages.push(vec![recorded(9, retraction(9, "b1", 8))]);
    let store = store_with(fresh, pages).await;
    let at = |text: &str| Timestamp::parse(text).unwrap();
    let b1 = store.footprint_versions(&resource("b1")).await.unwrap();
    assert_eq!(b1.len(), 4, "{b1:#?}");
    let provenance = |version: &FootprintVersion| {
        let store = &store;
        let version = version.clone();
        async move { store.footprint_provenance(&version).await.unwrap().unwrap() }
    };
    let first = provenance(&b1[0]).await;
    assert_eq!(
        first.issued,
        at("2025-06-02T11:04:00Z"),
        "recorded with event 4"
    );
    assert_eq!(
        first.maker,
        Iri::parse(CONSIGNEE).unwrap(),
        "who recorded the fabrication"
    );
    assert_eq!(
        first.activity,
        (at("2025-06-01T10:04:00Z"), at("2025-06-01T10:04:00Z")),
        "the fabrication alone"
    );
    let second = provenance(&b1[1]).await;
    assert_eq!(
        second.issued,
        at("2025-06-02T11:06:00Z"),
        "the page ended with event 6"
    );
    assert_eq!(
        second.activity, first.activity,
        "the lots are events of other resources"
    );
    let repaired = provenance(&b1[2]).await;
    assert_eq!(repaired.issued, at("2025-06-02T11:08:00Z"));
    assert_eq!(
        repaired.activity,
        (at("2025-06-01T10:04:00Z"), at("2025-06-01T10:08:00Z")),
        "the fabrication and the repair"
    );
    let unrepaired = provenance(&b1[3]).await;
    assert_eq!(unrepaired.issued, at("2025-06-02T11:09:00Z"));
    assert_eq!(
        unrepaired.activity, first.activity,
        "the repair was retracted before this version was issued"
    );
    assert_eq!(
        provenance(&b1[2]).await.activity,
        repaired.activity,
        "a later retraction does not change what an earlier version counted"
    );
    let oak = store.footprint_versions(&resource("oak")).await.unwrap();
    let oak = provenance(&oak[0]).await;
    assert_eq!(oak.maker, Iri::parse(ORG).unwrap());
    let country =
        |provenance: &FootprintProvenance| provenance.country.map(|c| c.as_str().to_owned());
    assert_eq!(country(&oak).as_deref(), Some("DE"), "the lot's origin");
    assert_eq!(
        country(&first).as_deref(),
        Some("DE"),
        "the batch's facility"
    );
    assert_eq!(
        oak.activity,
        (at("2025-06-01T10:05:00Z"), at("2025-06-01T10:05:00Z"))
    );
}
