//! Integration tests of the embedded event log: each test opens a fresh log in its own temporary
//! directory and talks to it only through the `EventLog` port (plus, where a test must arrange an
//! interleaving, a plain SQLite connection to the same file).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use stigmergy_domain::{Event, EventId, Iri, LogPosition, Submission, Timestamp};
use stigmergy_log::{EmbeddedLog, EmbeddedLogConfig, Error, EventLog, LogUrl, StoredEvent};
use tempfile::TempDir;
use uuid::Uuid;

/// Longest any single step of a test may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(30);

/// A valid `MaterialSourced` event about a new lot, with a fresh UUIDv7 event id.
fn material_sourced() -> Event {
    let lot = Uuid::new_v4();
    let submission = Submission::from_json(json!({
        "type": "MaterialSourced",
        "occurredAt": "2026-05-01T08:30:00Z",
        "payload": {
            "lotId": format!("urn:uuid:{lot}"),
            "material": "recycled aluminium",
            "quantity": { "amount": 12.5, "unit": "KGM" },
            "origin": { "name": "Smelter", "country": "DE" },
            "supplier": { "id": "https://example.org/suppliers/1", "name": "Alu GmbH" },
            "kgCo2ePerUnit": 2.25,
            "dataQuality": "primary",
            "recycledContent": 0.75
        }
    }))
    .expect("the sample MaterialSourced submission is valid");
    let subject = submission
        .payload
        .own_subject()
        .cloned()
        .expect("a MaterialSourced names its lot");
    Event {
        event_id: EventId::from_uuid(Uuid::now_v7()),
        schema_version: submission.schema_version,
        occurred_at: submission.occurred_at,
        recorded_at: Timestamp::parse("2026-05-01T08:31:00.250Z").expect("a valid timestamp"),
        recorded_by: Iri::parse("urn:uuid:0191e1a4-7f43-7c4a-9d4e-1f2a3b4c5d6e")
            .expect("a valid organisation id"),
        subject,
        payload: submission.payload,
    }
}

fn material_sourced_events(count: usize) -> Vec<Event> {
    (0..count).map(|_| material_sourced()).collect()
}

fn open(dir: &Path) -> EmbeddedLog {
    EmbeddedLog::open(dir, EmbeddedLogConfig::default()).expect("the embedded log opens")
}

/// Fails the test, instead of hanging it, when `step` takes longer than [`PATIENCE`].
async fn within<T>(what: &str, step: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, step)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {PATIENCE:?}"))
}

async fn append(log: &EmbeddedLog, events: Vec<Event>) -> Vec<LogPosition> {
    within("an append", log.append(events))
        .await
        .expect("the append succeeds")
}

async fn read_everything(log: &EmbeddedLog) -> Vec<StoredEvent> {
    within(
        "reading the log",
        log.read_after(LogPosition(0), usize::MAX),
    )
    .await
    .expect("the log reads")
}

fn positions(range: std::ops::RangeInclusive<u64>) -> Vec<LogPosition> {
    range.map(LogPosition).collect()
}

fn positions_of(stored: &[StoredEvent]) -> Vec<LogPosition> {
    stored.iter().map(|s| s.position).collect()
}

fn events_of(stored: &[StoredEvent]) -> Vec<Event> {
    stored.iter().map(|s| s.event.clone()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn appended_events_are_read_back_in_order_at_dense_positions_from_one() {
    let dir = TempDir::new().expect("a temporary directory");
    let log = open(dir.path());
    assert_eq!(log.head(), LogPosition(0));
    assert!(read_everything(&log).await.is_empty());

    let first = material_sourced_events(3);
    assert_eq!(append(&log, first.clone()).await, positions(1..=3));
    assert_eq!(log.head(), LogPosition(3));

    let second = material_sourced_events(2);
    assert_eq!(append(&log, second.clone()).await, positions(4..=5));
    assert_eq!(log.head(), LogPosition(5));

    let stored = read_everything(&log).await;
    assert_eq!(positions_of(&stored), positions(1..=5));
    assert_eq!(events_of(&stored), [first.clone(), second.clone()].concat());

    let page = log
        .read_after(LogPosition(2), 2)
        .await
        .expect("the log reads");
    assert_eq!(positions_of(&page), positions(3..=4));
    assert!(
        log.read_after(LogPosition(5), 10)
            .await
            .expect("the log reads")
            .is_empty()
    );

    let found = log.get(second[0].event_id).await.expect("the log reads");
    assert_eq!(
        found,
        Some(StoredEvent {
            position: LogPosition(4),
            event: second[0].clone()
        })
    );
    let unknown = EventId::from_uuid(Uuid::now_v7());
    assert_eq!(log.get(unknown).await.expect("the log reads"), None);
}

/// What a caller serialised itself (the Kafka adapter's mirror) is stored as it is and read back
/// as the same events; envelopes that do not pair with the events store nothing.
#[tokio::test(flavor = "multi_thread")]
async fn events_appended_with_their_envelopes_read_back_as_the_same_events() {
    let dir = TempDir::new().expect("a temporary directory");
    let log = open(dir.path());
    let events = material_sourced_events(3);
    let envelopes: Vec<String> = events
        .iter()
        .map(|event| serde_json::to_string(event).expect("an event serialises"))
        .collect();

    let unpaired = within(
        "an unpaired append",
        log.append_encoded(&events, envelopes[..2].to_vec()),
    )
    .await;
    assert!(matches!(unpaired, Err(Error::Corrupt(_))), "{unpaired:?}");
    assert_eq!(log.head(), LogPosition(0));

    let appended = within("the append", log.append_encoded(&events, envelopes))
        .await
        .expect("the append succeeds");
    assert_eq!(appended, positions(1..=3));
    let stored = read_everything(&log).await;
    assert_eq!(events_of(&stored), events);
    append(&log, material_sourced_events(1)).await;
    assert_eq!(log.head(), LogPosition(4));
}

/// A large read is decoded on several threads: it still comes back whole and in log order.
#[tokio::test(flavor = "multi_thread")]
async fn a_read_of_twenty_five_thousand_events_comes_back_whole_and_in_order() {
    let dir = TempDir::new().expect("a temporary directory");
    let log = open(dir.path());
    let events = material_sourced_events(25_000);
    for chunk in events.chunks(1000) {
        append(&log, chunk.to_vec()).await;
    }
    let stored = read_everything(&log).await;
    assert_eq!(positions_of(&stored), positions(1..=25_000));
    assert_eq!(events_of(&stored), events);
    let page = log
        .read_after(LogPosition(12_345), 20_000)
        .await
        .expect("the log reads");
    assert_eq!(positions_of(&page), positions(12_346..=25_000));
    assert_eq!(events_of(&page), events[12_345..].to_vec());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_append_naming_a_logged_event_id_stores_nothing_while_its_group_neighbour_is_stored() {
    let dir = TempDir::new().expect("a temporary directory");
    let log = open(dir.path());
    let existing = material_sourced();
    assert_eq!(append(&log, vec![existing.clone()]).await, positions(1..=1));

    // Hold the database's write lock from outside, so that the writer blocks on the append it
    // takes first and the two appends sent meanwhile wait in its queue: it then takes them
    // together, as one group of one transaction.
    let lock = rusqlite::Connection::open(log.path()).expect("a second connection to the log file");
    lock.busy_timeout(PATIENCE).expect("a busy timeout");
    lock.execute_batch("BEGIN IMMEDIATE")
        .expect("the write lock");

    let blocked = material_sourced_events(2);
    let blocked_append = tokio::spawn({
        let (log, events) = (log.clone(), blocked.clone());
        async move { log.append(events).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The duplicate comes last, so the events before it are inserted, then rolled back.
    let mut refused = material_sourced_events(2);
    let duplicate = Event {
        event_id: existing.event_id,
        ..material_sourced()
    };
    refused.push(duplicate);
    let valid = material_sourced_events(2);
    let grouped_appends = tokio::spawn({
        let (log, refused, valid) = (log.clone(), refused.clone(), valid.clone());
        async move { tokio::join!(log.append(refused), log.append(valid)) }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    lock.execute_batch("ROLLBACK")
        .expect("the write lock is released");
    drop(lock);

    let blocked_outcome = within("the blocked append", blocked_append)
        .await
        .expect("the task completes");
    assert_eq!(
        blocked_outcome.expect("the blocked append succeeds"),
        positions(2..=3)
    );
    let (refused_outcome, valid_outcome) = within("the grouped appends", grouped_appends)
        .await
        .expect("the task completes");
    match refused_outcome {
        Err(Error::DuplicateEventId(id)) => assert_eq!(id, existing.event_id),
        other => panic!("expected a duplicate event id refusal, got {other:?}"),
    }
    assert_eq!(
        valid_outcome.expect("the valid append succeeds"),
        positions(4..=5)
    );

    for event in &refused[..2] {
        assert_eq!(log.get(event.event_id).await.expect("the log reads"), None);
    }
    let kept = log.get(existing.event_id).await.expect("the log reads");
    assert_eq!(
        kept,
        Some(StoredEvent {
            position: LogPosition(1),
            event: existing.clone()
        })
    );
    let stored = read_everything(&log).await;
    assert_eq!(positions_of(&stored), positions(1..=5));
    assert_eq!(
        events_of(&stored),
        [vec![existing], blocked, valid].concat()
    );
    assert_eq!(log.head(), LogPosition(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn sixty_four_concurrent_appends_all_land_at_unique_dense_positions() {
    const APPENDS: usize = 64;
    const EVENTS_PER_APPEND: usize = 10;
    let dir = TempDir::new().expect("a temporary directory");
    let log = open(dir.path());

    let tasks: Vec<_> = (0..APPENDS)
        .map(|_| {
            let log = log.clone();
            let events = material_sourced_events(EVENTS_PER_APPEND);
            tokio::spawn(async move {
                let outcome = log.append(events.clone()).await;
                (events, outcome)
            })
        })
        .collect();

    let mut position_of = HashMap::new();
    for task in tasks {
        let (events, outcome) = within("a concurrent append", task)
            .await
            .expect("the task completes");
        let appended = outcome.expect("every concurrent append succeeds");
        assert_eq!(appended.len(), EVENTS_PER_APPEND);
        // One writer inserts the events of an append back to back in one savepoint, so they sit
        // at consecutive positions, in the order given.
        for pair in appended.windows(2) {
            assert_eq!(
                pair[1].0,
                pair[0].0 + 1,
                "positions of one append: {appended:?}"
            );
        }
        for (event, position) in events.into_iter().zip(appended) {
            position_of.insert(position, event);
        }
    }

    let total = (APPENDS * EVENTS_PER_APPEND) as u64;
    let all: BTreeSet<_> = position_of.keys().copied().collect();
    assert_eq!(all.into_iter().collect::<Vec<_>>(), positions(1..=total));
    assert_eq!(log.head(), LogPosition(total));

    let stored = read_everything(&log).await;
    assert_eq!(positions_of(&stored), positions(1..=total));
    for stored_event in &stored {
        assert_eq!(
            Some(&stored_event.event),
            position_of.get(&stored_event.position)
        );
    }
    for (position, event) in &position_of {
        let found = log.get(event.event_id).await.expect("the log reads");
        assert_eq!(found.map(|s| s.position), Some(*position));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn following_from_the_start_yields_the_history_then_new_events_without_gap_or_repeat() {
    let dir = TempDir::new().expect("a temporary directory");
    let log = open(dir.path());
    // More history than the follower reads in one page.
    let history = material_sourced_events(600);
    append(&log, history.clone()).await;

    let mut follow = log.follow(LogPosition(0));
    let mut followed = Vec::new();
    for _ in 0..history.len() {
        let next = within("the next followed event", follow.next()).await;
        followed.push(
            next.expect("the stream does not end")
                .expect("the log reads"),
        );
    }
    assert_eq!(positions_of(&followed), positions(1..=600));
    assert_eq!(events_of(&followed), history);

    // New events are appended while the follower waits at the tail.
    let later: Vec<Vec<Event>> = (0..20).map(|_| material_sourced_events(5)).collect();
    let appender = tokio::spawn({
        let (log, later) = (log.clone(), later.clone());
        async move {
            for events in later {
                log.append(events).await.expect("the append succeeds");
            }
        }
    });
    for _ in 0..100 {
        let next = within("the next followed event", follow.next()).await;
        followed.push(
            next.expect("the stream does not end")
                .expect("the log reads"),
        );
    }
    within("the appender", appender)
        .await
        .expect("the appender completes");

    assert_eq!(positions_of(&followed), positions(1..=700));
    assert_eq!(events_of(&followed), [history, later.concat()].concat());
    let extra = tokio::time::timeout(Duration::from_millis(200), follow.next()).await;
    assert!(
        extra.is_err(),
        "the follower yielded an event past the head: {extra:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reopening_the_log_in_the_same_directory_keeps_every_event_and_the_head() {
    let dir = TempDir::new().expect("a temporary directory");
    let log = open(dir.path());
    for size in [1, 7, 3] {
        append(&log, material_sourced_events(size)).await;
    }
    let before = read_everything(&log).await;
    let head = log.head();
    assert_eq!(head, LogPosition(11));
    drop(log);

    let reopened = open(dir.path());
    assert_eq!(reopened.head(), head);
    assert_eq!(read_everything(&reopened).await, before);

    let next = material_sourced();
    assert_eq!(
        append(&reopened, vec![next.clone()]).await,
        positions(12..=12)
    );
    let found = reopened.get(next.event_id).await.expect("the log reads");
    assert_eq!(
        found,
        Some(StoredEvent {
            position: LogPosition(12),
            event: next
        })
    );
}

#[test]
fn an_embedded_url_names_a_directory_and_any_other_scheme_is_refused() {
    let url: LogUrl = "embedded://./data".parse().expect("an embedded URL parses");
    assert_eq!(url, LogUrl::Embedded("./data".into()));
    assert_eq!(url.to_string(), "embedded://./data");

    for refused in ["kafka://x", "embedded://", "./data"] {
        match refused.parse::<LogUrl>() {
            Err(Error::UnsupportedUrl(text)) => assert_eq!(text, refused),
            other => panic!("{refused:?} should be refused, got {other:?}"),
        }
    }
}
