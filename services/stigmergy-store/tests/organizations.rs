//! The organisation directory in its two storages: what one process sees (SQLite and PostgreSQL
//! alike), and, in PostgreSQL, what two processes sharing a database see of each other's writes.
//! Each "process" here is a directory handle connected on its own, with its own memory, pool
//! and reloading thread.
//!
//! `STIGMERGY_TEST_POSTGRES_URL` names the server, as a role that may create databases;
//! `./scripts/test` starts a local PostgreSQL and sets it. Without it the PostgreSQL tests fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::TestDatabase;
use postgres::NoTls;
use stigmergy_domain::Iri;
use stigmergy_store::{Error, OrganizationDirectory};

/// What any directory answers, alone: keys authenticate their organisation, names are unique
/// ignoring case and white space, a second key works, and `reopen` finds everything again.
async fn one_process(directory: OrganizationDirectory, reopen: impl Fn() -> OrganizationDirectory) {
    let (acme, key) = directory.create("Acme Microfactory").await.unwrap();
    assert!(key.expose().starts_with("stg_"));
    assert_eq!(
        directory.authenticate(key.expose()).map(|o| o.id),
        Some(acme.id.clone())
    );
    assert!(directory.authenticate("stg_wrong").is_none());
    assert!(matches!(
        directory.create("  acme microfactory ").await,
        Err(Error::NameTaken(name)) if name == "acme microfactory"
    ));
    let second = directory.issue_key(&acme.id).await.unwrap();
    let unknown = Iri::from_uuid(uuid::Uuid::now_v7());
    assert!(matches!(
        directory.issue_key(&unknown).await,
        Err(Error::UnknownOrganization(_))
    ));
    assert!(!directory.exists(&unknown));
    assert_eq!(directory.get(&unknown), None);
    let (bolt, _) = directory.create("Bolt Works").await.unwrap();
    drop(directory);

    let reopened = reopen();
    assert_eq!(
        reopened.authenticate(key.expose()).map(|o| o.name),
        Some("Acme Microfactory".into())
    );
    assert_eq!(reopened.authenticate(second.expose()), Some(acme.clone()));
    assert_eq!(reopened.get(&bolt.id), Some(bolt.clone()));
    assert!(reopened.exists(&acme.id));
    assert_eq!(reopened.list(), [acme, bolt], "oldest first");
}

#[test]
fn a_directory_is_shared_across_threads_as_before() {
    fn shared<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    shared::<OrganizationDirectory>();
}

#[tokio::test]
async fn sqlite_directory_answers_for_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let directory = OrganizationDirectory::open(&path).unwrap();
    one_process(directory, || OrganizationDirectory::open(&path).unwrap()).await;
}

#[tokio::test]
async fn postgres_directory_answers_for_one_process() {
    let database = TestDatabase::create();
    let directory = OrganizationDirectory::connect_postgres(&database.url).unwrap();
    one_process(directory, || {
        OrganizationDirectory::connect_postgres(&database.url).unwrap()
    })
    .await;
    let stored = query(&database.url, "SELECT key_hash FROM api_keys");
    assert_eq!(stored.len(), 3);
    assert!(
        stored
            .iter()
            .all(|hash| hash.len() == 64 && !hash.starts_with("stg_")),
        "keys are stored hashed: {stored:?}"
    );
}

/// Two processes connected to the same database.
fn two_processes() -> (OrganizationDirectory, OrganizationDirectory, TestDatabase) {
    let database = TestDatabase::create();
    let one = OrganizationDirectory::connect_postgres(&database.url).unwrap();
    let other = OrganizationDirectory::connect_postgres(&database.url).unwrap();
    (one, other, database)
}

#[tokio::test]
async fn an_organisation_created_in_one_process_authenticates_at_once_in_another() {
    let (one, other, _database) = two_processes();
    let (acme, key) = one.create("Acme Microfactory").await.unwrap();
    // Well before the periodic reload: the miss asks for one.
    let asked = Instant::now();
    assert_eq!(other.authenticate(key.expose()), Some(acme.clone()));
    assert!(asked.elapsed() < Duration::from_millis(500));

    let (bolt, _) = one.create("Bolt Works").await.unwrap();
    assert!(other.exists(&bolt.id), "exists asks for a reload too");
    let (cork, _) = one.create("Cork & Co").await.unwrap();
    assert_eq!(other.get(&cork.id), Some(cork), "get asks for a reload too");
}

#[tokio::test]
async fn a_key_issued_in_one_process_works_in_another() {
    let (one, other, _database) = two_processes();
    let (acme, _) = other.create("Acme Microfactory").await.unwrap();
    // `one` has not seen Acme yet: issuing asks for a reload to find it.
    let key = one.issue_key(&acme.id).await.unwrap();
    assert_eq!(one.authenticate(key.expose()), Some(acme.clone()));
    assert_eq!(other.authenticate(key.expose()), Some(acme));
}

#[tokio::test]
async fn a_name_taken_in_one_process_is_refused_in_another() {
    let (one, other, _database) = two_processes();
    one.create("Acme Microfactory").await.unwrap();
    assert!(matches!(
        other.create("  ACME microfactory").await,
        Err(Error::NameTaken(name)) if name == "ACME microfactory"
    ));

    // Both at once: one is created, the other refused.
    let (a, b) = tokio::join!(one.create("Bolt Works"), other.create("bolt works"));
    let created = [&a, &b].iter().filter(|r| r.is_ok()).count();
    let refused = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Err(Error::NameTaken(_))))
        .count();
    assert_eq!((created, refused), (1, 1), "{a:?} {b:?}");
}

#[tokio::test]
async fn lists_converge_and_a_new_process_finds_everything() {
    let (one, other, database) = two_processes();
    let (acme, acme_key) = one.create("Acme Microfactory").await.unwrap();
    let (bolt, bolt_key) = other.create("Bolt Works").await.unwrap();
    let both = vec![acme.clone(), bolt.clone()];
    // `list` never misses, so it waits for the periodic reload (every second).
    let deadline = Instant::now() + Duration::from_secs(5);
    while (one.list() != both || other.list() != both) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(one.list(), both);
    assert_eq!(other.list(), both);
    drop((one, other));

    let reopened = OrganizationDirectory::connect_postgres(&database.url).unwrap();
    assert_eq!(reopened.list(), both);
    assert_eq!(reopened.authenticate(acme_key.expose()), Some(acme));
    assert_eq!(reopened.authenticate(bolt_key.expose()), Some(bolt));
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_reloads_and_closes_the_connections() {
    let database = TestDatabase::create();
    let directory = OrganizationDirectory::connect_postgres(&database.url).unwrap();
    let clone = directory.clone();
    drop(directory);
    assert!(clone.authenticate("stg_wrong").is_none());
    drop(clone);
    let server = std::env::var("STIGMERGY_TEST_POSTGRES_URL").unwrap();
    let connections = format!(
        "SELECT count(*)::text FROM pg_stat_activity WHERE datname = '{}'",
        database.name
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while query(&server, &connections) != ["0"] && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(query(&server, &connections), ["0"]);
}

#[tokio::test]
async fn a_directory_newer_than_this_stigmergy_is_refused() {
    let database = TestDatabase::create();
    drop(OrganizationDirectory::connect_postgres(&database.url).unwrap());
    common::run_sql(
        &database.url,
        "INSERT INTO directory_migrations (version, description) VALUES (1000, 'from the future')"
            .into(),
    )
    .unwrap();
    let refused = OrganizationDirectory::connect_postgres(&database.url).unwrap_err();
    assert!(
        refused.to_string().contains("newer"),
        "refused with: {refused}"
    );
}

/// The first column of every row `sql` returns, as text, on a thread of its own.
fn query(url: &str, sql: &str) -> Vec<String> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, NoTls).unwrap();
        let rows = client.query(sql.as_str(), &[]).unwrap();
        rows.iter().map(|row| row.get(0)).collect()
    })
    .join()
    .unwrap()
}
