//! The views store suite against PostgreSQL, each test in a database of its own, and the
//! PostgreSQL store compared with the embedded one on the same pages.
//!
//! `STIGMERGY_TEST_POSTGRES_URL` names the server, as a role that may create databases;
//! `./scripts/test` starts a local PostgreSQL and sets it. Without it these tests fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod suite;

use std::sync::Arc;

use common::{TestDatabase, run_sql, with_database};
use stigmergy_domain::views::{Direction, Methods};
use stigmergy_domain::{Event, LogPosition};
use stigmergy_store::{PostgresViewStore, ViewStore, WhenStale};
use suite::{Fresh, RESOURCES, history, history_with_shipment_and_repair, resource, shuffled};

suite::view_store_tests!(postgres);

/// A fresh PostgreSQL store, in a database of its own dropped at the end of the test.
fn postgres() -> Fresh {
    let (store, database) = postgres_store();
    let url = database.url.clone();
    let reopen: suite::Reopen = {
        let url = url.clone();
        Box::new(move |methods| Arc::new(PostgresViewStore::connect(&url, methods).unwrap()))
    };
    let reader: suite::ReopenReader = Box::new(move |methods| {
        PostgresViewStore::connect_when_stale(&url, methods, WhenStale::Refuse)
            .map(|store| Arc::new(store) as Arc<dyn ViewStore>)
    });
    Fresh::new(Arc::new(store), reopen, reader, database)
}

fn postgres_store() -> (PostgresViewStore, TestDatabase) {
    let database = TestDatabase::create();
    let store = PostgresViewStore::connect(&database.url, Methods::default())
        .expect("the PostgreSQL views store connects");
    (store, database)
}

/// Everything the views answer about every resource, exactly.
async fn everything(store: &dyn ViewStore) -> Vec<String> {
    let mut answers = Vec::new();
    for name in RESOURCES {
        let resource = resource(name);
        answers.push(format!(
            "{name} record {:?}",
            store.record(&resource).await.unwrap()
        ));
        answers.push(format!(
            "{name} timeline {:?}",
            store.timeline(&resource).await.unwrap()
        ));
        for direction in [Direction::Upstream, Direction::Downstream] {
            for depth in [1, 50] {
                let lineage = store.lineage(&resource, direction, depth).await.unwrap();
                answers.push(format!("{name} {direction:?} {depth} {lineage:?}"));
            }
        }
        let versions = store.footprint_versions(&resource).await.unwrap();
        answers.push(format!("{name} footprint versions {versions:?}"));
    }
    answers
}

async fn apply_all(store: &dyn ViewStore, pages: &[Vec<(LogPosition, Event)>]) {
    for page in pages {
        store.apply("test", page.clone()).await.unwrap();
    }
}

#[tokio::test]
async fn postgres_answers_exactly_as_sqlite_on_the_same_pages() {
    let log = history_with_shipment_and_repair();
    // The log in one page, event by event (each footprint change issues a version), and shuffled.
    let mut orders = vec![
        vec![log.clone()],
        log.chunks(1).map(<[_]>::to_vec).collect(),
    ];
    let mut seed: u64 = 0xc0ffee;
    for page_size in [1, 2, 3, 5] {
        orders.push(shuffled(log.clone(), &mut seed, page_size));
    }
    let mut several_versions = false;
    for (round, pages) in orders.iter().enumerate() {
        let sqlite = suite::sqlite();
        let postgres = postgres();
        apply_all(&*sqlite, pages).await;
        apply_all(&*postgres, pages).await;
        let (expected, answered) = (everything(&*sqlite).await, everything(&*postgres).await);
        assert_eq!(answered.len(), expected.len());
        for (sqlite, postgres) in expected.iter().zip(&answered) {
            assert_eq!(postgres, sqlite, "round {round}");
        }
        several_versions |= expected.iter().any(|a| a.contains("version: 2"));
    }
    assert!(
        several_versions,
        "some order issues several footprint versions"
    );
}

#[tokio::test]
async fn the_recursive_query_counts_the_resources_the_walk_reaches() {
    let (store, _database) = postgres_store();
    store
        .apply("test", history_with_shipment_and_repair())
        .await
        .unwrap();
    for name in RESOURCES {
        let resource = resource(name);
        for depth in [0, 1, 2, 3, 50] {
            let walked = store
                .lineage(&resource, Direction::Upstream, depth)
                .await
                .unwrap();
            let counted = store
                .upstream_by_recursive_cte(&resource, depth)
                .await
                .unwrap();
            assert_eq!(counted, walked.nodes.len(), "{name} at depth {depth}");
        }
    }
    assert_eq!(
        store
            .upstream_by_recursive_cte(&resource("b3"), 50)
            .await
            .unwrap(),
        1,
        "a retracted fabrication links nothing"
    );
}

#[tokio::test]
async fn connecting_again_migrates_nothing_and_a_newer_schema_is_refused() {
    let (store, database) = postgres_store();
    store.apply("views", history()).await.unwrap();
    drop(store);
    let again = PostgresViewStore::connect(&database.url, Methods::default()).unwrap();
    assert_eq!(again.position("views").await.unwrap(), LogPosition(9));
    drop(again);
    run_sql(
        &database.url,
        "INSERT INTO view_migrations (version, description) VALUES (1000, 'from the future')"
            .into(),
    )
    .unwrap();
    let refused = PostgresViewStore::connect(&database.url, Methods::default()).unwrap_err();
    assert!(
        refused.to_string().contains("newer"),
        "refused with: {refused}"
    );
}

#[tokio::test]
async fn pages_of_one_projector_applied_together_give_the_views_of_one_after_the_other() {
    let (store, _database) = postgres_store();
    let events = history_with_shipment_and_repair();
    let (first, second) = events.split_at(7);
    let (a, b) = tokio::join!(
        store.apply("test", first.to_vec()),
        store.apply("test", second.to_vec())
    );
    a.unwrap();
    b.unwrap();
    let sqlite = suite::sqlite();
    apply_all(&*sqlite, std::slice::from_ref(&events)).await;
    assert_eq!(
        suite::snapshot(&store).await,
        suite::snapshot(&*sqlite).await
    );
    assert_eq!(store.position("test").await.unwrap(), LogPosition(14));
}

#[test]
fn a_test_database_url_names_the_test_database() {
    assert_eq!(
        with_database("postgres://u:p@127.0.0.1:5432/postgres", "t"),
        "postgres://u:p@127.0.0.1:5432/t"
    );
    assert_eq!(
        with_database("postgresql://u@host?sslmode=disable", "t"),
        "postgresql://u@host/t?sslmode=disable"
    );
}
