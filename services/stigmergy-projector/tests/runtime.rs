//! The projector runtime between a real embedded log and a real views store: following the log
//! gives the views a replay from zero gives, and a restart resumes where it stopped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use stigmergy_domain::views::Direction;
use stigmergy_domain::views::Methods;
use stigmergy_domain::{Event, Iri, LogPosition};
use stigmergy_log::{EmbeddedLog, EmbeddedLogConfig, EventLog};
use stigmergy_projector::Projector;
use stigmergy_store::{SqliteViewStore, ViewStore};

const ORG: &str = "urn:uuid:0191e1a4-7f43-7c4a-9d4e-1f2a3b4c5d6e";

fn iri(name: &str) -> String {
    format!("https://test.example/{name}")
}

/// Lot `i` and a batch made from it and from the previous batch: a chain.
fn events(from: u32, to: u32) -> Vec<Event> {
    let mut events = Vec::new();
    for i in from..to {
        let lot: Event = serde_json::from_value(json!({
            "eventId": format!("0191e1a4-7f43-7c4a-9d4e-{:012}", 2 * i),
            "type": "MaterialSourced", "schemaVersion": 1, "occurredAt": "2025-06-01T10:00:00Z",
            "recordedAt": "2025-06-01T10:00:00Z", "recordedBy": ORG, "subject": iri(&format!("lot{i}")),
            "payload": {
                "lotId": iri(&format!("lot{i}")), "material": "PLA", "quantity": { "amount": 10, "unit": "KGM" },
                "origin": { "name": "Mill", "country": "DE" }, "supplier": { "id": iri("supplier") },
                "kgCo2ePerUnit": 2.0, "dataQuality": "primary", "recycledContent": 0.0
            }
        }))
        .unwrap();
        let mut inputs = vec![
            json!({ "resource": iri(&format!("lot{i}")), "quantity": { "amount": 1, "unit": "KGM" } }),
        ];
        if i > 0 {
            inputs.push(json!({ "resource": iri(&format!("batch{}", i - 1)), "quantity": { "amount": 1, "unit": "H87" } }));
        }
        let batch: Event = serde_json::from_value(json!({
            "eventId": format!("0191e1a4-7f43-7c4a-9d4e-{:012}", 2 * i + 1),
            "type": "BatchFabricated", "schemaVersion": 1, "occurredAt": "2025-06-01T11:00:00Z",
            "recordedAt": "2025-06-01T11:00:00Z", "recordedBy": ORG, "subject": iri(&format!("batch{i}")),
            "payload": {
                "batchId": iri(&format!("batch{i}")), "designId": iri("design"), "quantity": { "amount": 5, "unit": "H87" },
                "facility": { "name": "Shop", "country": "DE" }, "inputs": inputs
            }
        }))
        .unwrap();
        events.push(lot);
        events.push(batch);
    }
    events
}

async fn upstream_of_last(store: &dyn ViewStore, last: u32) -> usize {
    let resource = Iri::parse(iri(&format!("batch{last}"))).unwrap();
    store
        .lineage(&resource, Direction::Upstream, 1000)
        .await
        .unwrap()
        .nodes
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_the_log_gives_what_a_replay_from_zero_gives_and_a_restart_resumes() {
    let log_dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> =
        Arc::new(EmbeddedLog::open(log_dir.path(), EmbeddedLogConfig::default()).unwrap());
    let views_dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteViewStore::open(views_dir.path(), Methods::default()).unwrap());

    log.append(events(0, 50)).await.unwrap();
    let following = Projector::new("views", log.clone(), store.clone()).with_page_size(7);
    let task = tokio::spawn(async move { following.run().await });
    for chunk in 0..5 {
        log.append(events(50 + chunk * 10, 60 + chunk * 10))
            .await
            .unwrap();
    }
    let head = log.head();
    assert_eq!(head, LogPosition(200));
    tokio::time::timeout(Duration::from_secs(30), async {
        while store.position("views").await.unwrap() < head {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the projector catches up");
    task.abort();

    let replay_dir = tempfile::tempdir().unwrap();
    let replayed = Arc::new(SqliteViewStore::open(replay_dir.path(), Methods::default()).unwrap());
    let reached = Projector::new("views", log.clone(), replayed.clone())
        .catch_up()
        .await
        .unwrap();
    assert_eq!(reached, head);
    // batch99 is made from lot99 and batch98, and so on down: 100 batches, 100 lots and the design.
    assert_eq!(upstream_of_last(store.as_ref(), 99).await, 201);
    assert_eq!(upstream_of_last(replayed.as_ref(), 99).await, 201);
    for i in [0, 17, 99] {
        let lot = Iri::parse(iri(&format!("lot{i}"))).unwrap();
        assert_eq!(
            store.timeline(&lot).await.unwrap(),
            replayed.timeline(&lot).await.unwrap()
        );
        let batch = Iri::parse(iri(&format!("batch{i}"))).unwrap();
        let followed = store.record(&batch).await.unwrap().unwrap();
        assert!(followed.same_as(&replayed.record(&batch).await.unwrap().unwrap()));
        assert!(followed.footprint.is_some());
    }

    // A restarted projector resumes from the stored position.
    log.append(events(100, 101)).await.unwrap();
    let resumed = Projector::new("views", log.clone(), store.clone())
        .catch_up()
        .await
        .unwrap();
    assert_eq!(resumed, LogPosition(202));
    assert_eq!(upstream_of_last(store.as_ref(), 100).await, 203);
}
