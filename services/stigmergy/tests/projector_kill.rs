//! Crash safety of the views: `stigmergy project`, the projector as a process of its own, is
//! killed with SIGKILL while it applies a backlog (most of its time is spent inside the
//! transaction that writes a page's views, before the position moves), again and again; after it
//! finally finishes, the views equal a clean replay of the same log from zero.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use stigmergy_domain::views::Methods;
use stigmergy_domain::{Event, LogPosition};
use stigmergy_log::{EmbeddedLog, EmbeddedLogConfig, EventLog};
use stigmergy_projector::Projector;
use stigmergy_store::{SqliteViewStore, ViewStore};
use tokio::process::Command;

const PAGE: usize = 200;
/// The first page, indexed and derived in memory into the empty store: killed too.
const FIRST_PAGE: usize = 1000;

fn project(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stigmergy"));
    command
        .args(["project", "--data-dir"])
        .arg(data_dir)
        .args(["--page-size", &PAGE.to_string()])
        .args(["--first-page-size", &FIRST_PAGE.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

async fn position(data_dir: &std::path::Path) -> LogPosition {
    SqliteViewStore::open(data_dir, Methods::default())
        .unwrap()
        .position(stigmergy::project::PROJECTOR)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_killed_mid_page_again_and_again_end_equal_to_a_clean_replay() {
    let data_dir = tempfile::tempdir().unwrap();
    let mix = stigmergy_testkit::Mix {
        events: 3000,
        organizations: 8,
        hub_lots: 1,
        retraction_rate: 0.01,
        ..stigmergy_testkit::Mix::default()
    };
    let events: Vec<Event> = stigmergy_testkit::Generator::new(11, &mix).collect();
    let head = {
        let log = EmbeddedLog::open(data_dir.path(), EmbeddedLogConfig::default()).unwrap();
        for chunk in events.chunks(500) {
            log.append(chunk.to_vec()).await.unwrap();
        }
        log.head()
    };
    assert_eq!(head, LogPosition(events.len() as u64));

    // Kill it while it works, later each time, until a kill finds it half-way.
    let mut interrupted = Vec::new();
    for delay in [150, 300, 500, 800, 1200, 1800] {
        let mut child = project(data_dir.path()).spawn().unwrap();
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let finished = child.try_wait().unwrap().is_some();
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        let reached = position(data_dir.path()).await;
        if !finished && reached < head {
            interrupted.push(reached.0);
        }
    }
    assert!(
        !interrupted.is_empty(),
        "no kill landed while the projector was working"
    );
    // Then let it finish.
    let status = project(data_dir.path()).status().await.unwrap();
    assert!(status.success());
    assert_eq!(position(data_dir.path()).await, head);

    // A clean replay of the same log, in the same pages (footprint versions are issued per page).
    let log: Arc<dyn EventLog> =
        Arc::new(EmbeddedLog::open(data_dir.path(), EmbeddedLogConfig::default()).unwrap());
    let clean_dir = tempfile::tempdir().unwrap();
    let clean = Arc::new(SqliteViewStore::open(clean_dir.path(), Methods::default()).unwrap());
    Projector::new(stigmergy::project::PROJECTOR, log, clean.clone())
        .with_page_size(PAGE)
        .with_first_page_size(FIRST_PAGE)
        .catch_up()
        .await
        .unwrap();
    let killed = SqliteViewStore::open(data_dir.path(), Methods::default()).unwrap();

    let resources = support::views::touched(&events);
    for resource in &resources {
        support::views::assert_same_record(resource, &killed, clean.as_ref()).await;
        let ids = |t: Vec<stigmergy_store::TimelineEntry>| -> Vec<_> {
            t.into_iter()
                .map(|e| (e.position, e.event.event_id))
                .collect()
        };
        assert_eq!(
            ids(killed.timeline(resource).await.unwrap()),
            ids(clean.timeline(resource).await.unwrap())
        );
        let versions = |v: Vec<stigmergy_store::FootprintVersion>| -> Vec<_> {
            v.into_iter()
                .map(|v| (v.id, v.status, v.preceding))
                .collect()
        };
        assert_eq!(
            versions(killed.footprint_versions(resource).await.unwrap()),
            versions(clean.footprint_versions(resource).await.unwrap()),
            "the footprint versions of {resource} differ"
        );
    }
    eprintln!(
        "killed at positions {interrupted:?} of {}; {} resources compared",
        head.0,
        resources.len()
    );
}
