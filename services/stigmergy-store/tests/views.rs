//! The views store against real SQLite: applying is idempotent, a retraction hides its event
//! whenever it arrives, and any order of arrival gives the same timelines and lineage as the log
//! order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use stigmergy_domain::views::Direction;
use stigmergy_domain::{Event, Iri, LogPosition};
use stigmergy_domain::views::Methods;
use stigmergy_store::{SqliteViewStore, ViewStore};

const ORG: &str = "urn:uuid:0191e1a4-7f43-7c4a-9d4e-1f2a3b4c5d6e";

fn iri(name: &str) -> String {
    format!("https://test.example/{name}")
}

fn event(n: u32, event_type: &str, subject: &str, payload: Value) -> (LogPosition, Event) {
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

fn lot(n: u32, name: &str) -> (LogPosition, Event) {
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

fn batch(n: u32, name: &str, inputs: &[&str]) -> (LogPosition, Event) {
    let inputs: Vec<Value> = inputs
        .iter()
        .map(|i| json!({ "resource": iri(i), "quantity": { "amount": 1, "unit": "KGM" } }))
        .collect();
    event(
        n,
        "BatchFabricated",
        name,
        json!({
            "batchId": iri(name), "designId": iri("design"), "quantity": { "amount": 10, "unit": "H87" },
            "facility": place(), "inputs": inputs
        }),
    )
}

fn recycling(n: u32, resource: &str, output: &str) -> (LogPosition, Event) {
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

fn retraction(n: u32, subject: &str, of: u32) -> (LogPosition, Event) {
    event(
        n,
        "EventRetracted",
        subject,
        json!({ "eventId": format!("0191e1a4-7f43-7c4a-9d4e-{of:012}"), "reason": "wrong" }),
    )
}

/// A small world with a recycling loop and a retraction.
fn history() -> Vec<(LogPosition, Event)> {
    vec![
        event(
            1,
            "DesignPublished",
            "design",
            json!({ "designId": iri("design"), "name": "D", "licence": "MIT", "version": "1" }),
        ),
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

/// What the views say: the upstream and downstream of every resource, and every timeline.
async fn snapshot(store: &SqliteViewStore) -> Vec<String> {
    let mut lines = Vec::new();
    for name in [
        "design", "oak", "pla", "b1", "flakes", "b2", "mistake", "b3",
    ] {
        let resource = Iri::parse(iri(name)).unwrap();
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
        lines.push(format!("{name} record: {}", serde_json::to_string(&record).unwrap()));
    }
    lines
}

async fn store_with(pages: Vec<Vec<(LogPosition, Event)>>) -> (tempfile::TempDir, SqliteViewStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteViewStore::open(dir.path(), Methods::default()).unwrap();
    for page in pages {
        store.apply("test", page).await.unwrap();
    }
    (dir, store)
}

#[tokio::test]
async fn lineage_and_timelines_follow_the_flows_and_leave_out_retracted_events() {
    let (_dir, store) = store_with(vec![history()]).await;
    let view = snapshot(&store).await;
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

#[tokio::test]
async fn applying_the_same_events_again_changes_nothing() {
    let (_dir, store) = store_with(vec![history()]).await;
    let once = snapshot(&store).await;
    store.apply("test", history()).await.unwrap();
    store.apply("test", history()[2..5].to_vec()).await.unwrap();
    assert_eq!(snapshot(&store).await, once);
    assert_eq!(
        store.position("test").await.unwrap(),
        LogPosition(9),
        "the position never moves back"
    );
}

#[tokio::test]
async fn any_order_of_arrival_gives_the_views_of_the_log_order() {
    let (_dir, in_order) = store_with(vec![history()]).await;
    let expected = snapshot(&in_order).await;
    // Deterministic shuffles (a small linear congruential generator), in pages of various sizes,
    // the retraction often arriving before what it retracts.
    let mut seed: u64 = 0x5eed;
    for round in 0..12 {
        let mut events = history();
        for i in (1..events.len()).rev() {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            events.swap(i, (seed >> 33) as usize % (i + 1));
        }
        let page_size = 1 + round % 4;
        let pages: Vec<Vec<(LogPosition, Event)>> =
            events.chunks(page_size).map(<[_]>::to_vec).collect();
        let (_dir, shuffled) = store_with(pages).await;
        assert_eq!(snapshot(&shuffled).await, expected, "round {round}");
    }
}
