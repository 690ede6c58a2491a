//! The views benchmark: replaying a generated stream of lifecycle events into each views store
//! (events per second), and an upstream-lineage query on a 100,000-resource graph at depth 50
//! next to the same query as one recursive CTE in PostgreSQL, measured in the same run.
//!
//! `cargo bench -p stigmergy-store --bench views -- [--events N] [--rounds N] [--only replay|lineage]`
//! PostgreSQL is measured when `STIGMERGY_BENCH_POSTGRES_URL` (or `STIGMERGY_TEST_POSTGRES_URL`)
//! names a server where the user may create databases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use stigmergy_domain::views::Methods;
use stigmergy_domain::{Event, LogPosition};
use stigmergy_store::{SqliteViewStore, ViewStore};
use stigmergy_testkit::{Generator, Mix};

const PAGE: usize = 1000;

struct Args {
    events: usize,
    rounds: usize,
    only: Option<String>,
}

fn args() -> Args {
    let mut args = Args {
        events: 1_000_000,
        rounds: 5,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--events" => args.events = it.next().and_then(|v| v.parse().ok()).expect("--events N"),
            "--rounds" => args.rounds = it.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            "--only" => args.only = it.next(),
            // cargo bench passes --bench
            _ => {}
        }
    }
    args
}

/// Applies `events` in pages of `PAGE`, as the projector does, and returns the time it took.
async fn replay(store: &dyn ViewStore, events: &[Event]) -> Duration {
    let started = Instant::now();
    for (page_number, page) in events.chunks(PAGE).enumerate() {
        let first = page_number * PAGE;
        let page: Vec<(LogPosition, Event)> = page
            .iter()
            .enumerate()
            .map(|(i, e)| (LogPosition((first + i + 1) as u64), e.clone()))
            .collect();
        store.apply("bench", page).await.unwrap();
    }
    started.elapsed()
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    if args.only.as_deref().is_none_or(|o| o == "replay") {
        let started = Instant::now();
        let events: Vec<Event> = Generator::new(7, &Mix::with_events(args.events)).collect();
        println!(
            "generated {} events in {:.1} s",
            events.len(),
            started.elapsed().as_secs_f64()
        );
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteViewStore::open(dir.path(), Methods::default()).unwrap();
        let elapsed = replay(&store, &events).await;
        println!(
            "REPLAY sqlite: {} events in {:.1} s = {:.0} events/s",
            events.len(),
            elapsed.as_secs_f64(),
            per_second(events.len(), elapsed)
        );
    }
}
