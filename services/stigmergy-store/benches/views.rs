//! The views benchmark: replaying a generated stream of lifecycle events into each views store
//! (events per second), and an upstream-lineage query on a 100,000-resource graph at depth 50
//! next to the same query as one recursive CTE in PostgreSQL, measured in the same run.
//!
//! `cargo bench -p stigmergy-store --bench views -- [--events N] [--first-page N] [--page N]
//! [--resources N] [--memo N] [--only replay|paged|lineage]`
//!
//! The replay is the projector's into an empty store: a first page of up to 1,000,000 events
//! (indexed and derived in memory), then pages of 50,000. `paged` replays the same events into
//! SQLite in pages of 50,000 from the first, as a store that already holds events applies them.
//! PostgreSQL is measured when `STIGMERGY_BENCH_POSTGRES_URL` (or `STIGMERGY_TEST_POSTGRES_URL`)
//! names a server where the user may create databases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

// The allocator of the `stigmergy` binary, so that the figures are the ones it gets.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use stigmergy_domain::views::{Direction, Methods};
use stigmergy_domain::{Event, Iri, LogPosition};
use stigmergy_store::{PostgresViewStore, SqliteViewStore, ViewStore};
use stigmergy_testkit::{Generator, Mix};

struct Args {
    events: usize,
    first_page: usize,
    page: usize,
    lineage_resources: usize,
    only: Option<String>,
    memo: Option<usize>,
}

fn args() -> Args {
    let mut args = Args {
        events: 1_000_000,
        // stigmergy_projector::DEFAULT_FIRST_PAGE_SIZE and DEFAULT_PAGE_SIZE: replay is the
        // projector far behind.
        first_page: 1_000_000,
        page: 50_000,
        lineage_resources: 100_000,
        only: None,
        memo: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--events" => args.events = it.next().and_then(|v| v.parse().ok()).expect("--events N"),
            "--page" => args.page = it.next().and_then(|v| v.parse().ok()).expect("--page N"),
            "--first-page" => {
                args.first_page = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--first-page N")
            }
            "--resources" => {
                args.lineage_resources = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--resources N")
            }
            "--only" => args.only = it.next(),
            "--memo" => args.memo = it.next().and_then(|v| v.parse().ok()),
            // cargo bench passes --bench
            _ => {}
        }
    }
    args
}

/// Applies `events` as the projector does, a first page of `first_page` events then pages of
/// `page_size`, and returns the time it took.
async fn replay(
    store: &dyn ViewStore,
    events: &[Event],
    first_page: usize,
    page_size: usize,
) -> Duration {
    let started = Instant::now();
    let mut done = 0;
    while done < events.len() {
        let size = if done == 0 { first_page } else { page_size };
        let page: Vec<(LogPosition, Event)> = events[done..(done + size).min(events.len())]
            .iter()
            .enumerate()
            .map(|(i, e)| (LogPosition((done + i + 1) as u64), e.clone()))
            .collect();
        store.apply("bench", page).await.unwrap();
        let before = done;
        done = (done + size).min(events.len());
        if done / 200_000 > before / 200_000 && done < events.len() {
            println!(
                "  {done} events in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    started.elapsed()
}

/// The process's peak resident set, as Linux reports it.
fn peak_resident() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .map(|line| line.trim_start_matches("VmHWM:").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// The server to measure PostgreSQL on, if any.
fn postgres_server() -> Option<String> {
    std::env::var("STIGMERGY_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("STIGMERGY_TEST_POSTGRES_URL"))
        .ok()
}

/// A fresh database on `server` (dropped first if a previous run left it), and its URL.
fn fresh_database(server: &str, name: &str) -> String {
    let server = server.to_owned();
    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    let create = format!("CREATE DATABASE {name}");
    std::thread::spawn(move || {
        postgres::Client::connect(&server, postgres::NoTls)
            .and_then(|mut client| {
                client.batch_execute(&drop)?;
                client.batch_execute(&create)
            })
            .map(|_| server)
    })
    .join()
    .unwrap()
    .expect("the benchmark may create databases");
    let server = postgres_server().unwrap();
    let (base, _) = server.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{name}")
}

fn iri(kind: &str, n: usize) -> String {
    format!("urn:uuid:{:08x}-0000-4000-8000-{:012x}", n, kind.len())
}

fn event_id(n: usize) -> String {
    format!("0191e1a4-7f43-7c4a-9d4e-{n:012x}")
}

/// A flow graph of `resources` resources: a fifth material lots (ten hub lots among them that
/// feed a third of the batches), the rest batches, each made from the batch made just before it
/// by the same workshop (chains hundreds deep), one earlier batch at random, and a lot.
fn lineage_graph(resources: usize) -> Vec<Event> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(50);
    let org = "urn:uuid:0191e1a4-7f43-7c4a-9d4e-1f2a3b4c5d6e";
    let lots = resources / 5;
    let mut events = Vec::with_capacity(resources + 1);
    let mut n = 0;
    let mut next_id = || {
        n += 1;
        n
    };
    let at = |i: usize| {
        chrono::DateTime::from_timestamp(1_767_225_600 + i as i64, 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let design = "urn:uuid:0191e1a4-7f43-7c4a-9d4e-00000000d0d0";
    events.push(serde_json::from_value(serde_json::json!({
        "eventId": event_id(next_id()), "type": "DesignPublished", "schemaVersion": 1,
        "occurredAt": at(0), "recordedAt": at(0), "recordedBy": org, "subject": design,
        "payload": { "designId": design, "name": "Stool", "licence": "CERN-OHL-S-2.0", "version": "1" }
    })).unwrap());
    for l in 0..lots {
        let lot = iri("lot", l);
        events.push(serde_json::from_value(serde_json::json!({
            "eventId": event_id(next_id()), "type": "MaterialSourced", "schemaVersion": 1,
            "occurredAt": at(l), "recordedAt": at(l), "recordedBy": org, "subject": lot,
            "payload": {
                "lotId": lot, "material": "oak", "quantity": { "amount": 1000000, "unit": "KGM" },
                "origin": { "name": "Forest", "country": "FR" }, "supplier": { "id": org },
                "kgCo2ePerUnit": 0.5, "dataQuality": "primary", "recycledContent": 0.0
            }
        })).unwrap());
    }
    let batches = resources - lots;
    for b in 0..batches {
        let batch = iri("batch", b);
        let mut inputs = Vec::new();
        let workshops = 20;
        if b >= workshops {
            inputs.push(iri("batch", b - workshops));
        }
        if b > 1 {
            inputs.push(iri("batch", rng.random_range(0..b - 1)));
        }
        let lot = if rng.random_bool(0.33) {
            rng.random_range(0..10)
        } else {
            rng.random_range(0..lots)
        };
        inputs.push(iri("lot", lot));
        inputs.dedup();
        let inputs: Vec<serde_json::Value> = inputs
            .into_iter()
            .map(|resource| serde_json::json!({ "resource": resource, "quantity": { "amount": 1, "unit": "KGM" } }))
            .collect();
        events.push(serde_json::from_value(serde_json::json!({
            "eventId": event_id(next_id()), "type": "BatchFabricated", "schemaVersion": 1,
            "occurredAt": at(lots + b), "recordedAt": at(lots + b), "recordedBy": org, "subject": batch,
            "payload": {
                "batchId": batch, "designId": design, "quantity": { "amount": 10, "unit": "KGM" },
                "facility": { "name": "Workshop", "country": "DE" }, "inputs": inputs
            }
        })).unwrap());
    }
    events
}

/// The median of `runs` timings of `query`.
async fn median<F, Fut>(runs: usize, mut query: F) -> (Duration, usize)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let mut times = Vec::with_capacity(runs);
    let mut size = 0;
    for _ in 0..runs {
        let started = Instant::now();
        size = query().await;
        times.push(started.elapsed());
    }
    times.sort();
    (times[runs / 2], size)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let replays = args
        .only
        .as_deref()
        .is_none_or(|o| o == "replay" || o == "paged");
    let events: Vec<Event> = if replays {
        let started = Instant::now();
        let events: Vec<Event> = Generator::new(7, &Mix::with_events(args.events)).collect();
        println!(
            "generated {} events in {:.1} s",
            events.len(),
            started.elapsed().as_secs_f64()
        );
        events
    } else {
        Vec::new()
    };
    let mut sqlite = None;
    if args.only.as_deref().is_none_or(|o| o == "replay") {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteViewStore::open(dir.path(), Methods::default()).unwrap();
        if let Some(memo) = args.memo {
            store = store.with_memo_resources(memo);
        }
        let elapsed = replay(&store, &events, args.first_page, args.page).await;
        let rate = per_second(events.len(), elapsed);
        println!(
            "REPLAY sqlite: {} events (first page {}, then {}) in {:.1} s = {rate:.0} events/s (target 50,000: {:.1}%)",
            events.len(),
            args.first_page.min(events.len()),
            args.page,
            elapsed.as_secs_f64(),
            rate / 500.0
        );
        println!("peak resident memory so far: {}", peak_resident());
        sqlite = Some(rate);
        // The SQLite file goes before the next replay fills the disk.
        drop(store);
        drop(dir);
        if let Some(server) = postgres_server() {
            let url = fresh_database(&server, "stigmergy_bench_replay");
            let store = PostgresViewStore::connect(&url, Methods::default()).unwrap();
            let elapsed = replay(&store, &events, args.first_page, args.page).await;
            let postgres = per_second(events.len(), elapsed);
            println!(
                "REPLAY postgres: {} events in {:.1} s = {postgres:.0} events/s ({:.1}% of sqlite)",
                events.len(),
                elapsed.as_secs_f64(),
                100.0 * postgres / rate
            );
            drop(store);
            fresh_database(&server, "stigmergy_bench_replay");
        }
    }
    if args.only.as_deref().is_none_or(|o| o == "paged") {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteViewStore::open(dir.path(), Methods::default()).unwrap();
        if let Some(memo) = args.memo {
            store = store.with_memo_resources(memo);
        }
        let elapsed = replay(&store, &events, args.page, args.page).await;
        let rate = per_second(events.len(), elapsed);
        let versus = sqlite.map_or(String::new(), |bulk| {
            format!(" (the replay above: {:.1}x this)", bulk / rate)
        });
        println!(
            "PAGED sqlite: {} events in pages of {} in {:.1} s = {rate:.0} events/s{versus}",
            events.len(),
            args.page,
            elapsed.as_secs_f64(),
        );
    }
    if args.only.as_deref().is_none_or(|o| o == "lineage") {
        let events = lineage_graph(args.lineage_resources);
        let start = Iri::parse(iri(
            "batch",
            args.lineage_resources - args.lineage_resources / 5 - 1,
        ))
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteViewStore::open(dir.path(), Methods::default()).unwrap();
        replay(&sqlite, &events, args.first_page, args.page).await;
        let (walk_sqlite, nodes) = median(21, || async {
            sqlite
                .lineage(&start, Direction::Upstream, 50)
                .await
                .unwrap()
                .nodes
                .len()
        })
        .await;
        println!(
            "LINEAGE sqlite walk: upstream depth 50 on {} resources reaches {nodes} in {:.1} ms (median of 21)",
            args.lineage_resources,
            ms(walk_sqlite)
        );
        if let Some(server) = postgres_server() {
            let url = fresh_database(&server, "stigmergy_bench_lineage");
            let postgres = PostgresViewStore::connect(&url, Methods::default()).unwrap();
            replay(&postgres, &events, args.first_page, args.page).await;
            let (cte, cte_nodes) = median(21, || async {
                postgres
                    .upstream_by_recursive_cte(&start, 50)
                    .await
                    .unwrap()
            })
            .await;
            let (walk_postgres, walk_nodes) = median(21, || async {
                postgres
                    .lineage(&start, Direction::Upstream, 50)
                    .await
                    .unwrap()
                    .nodes
                    .len()
            })
            .await;
            assert_eq!(
                cte_nodes, walk_nodes,
                "the CTE and the walk reach the same resources"
            );
            println!(
                "LINEAGE postgres recursive CTE (baseline): {cte_nodes} resources in {:.1} ms",
                ms(cte)
            );
            println!(
                "LINEAGE postgres walk: {:.1} ms = {:.2}x the CTE's time; sqlite walk {:.2}x the CTE's time",
                ms(walk_postgres),
                ms(walk_postgres) / ms(cte),
                ms(walk_sqlite) / ms(cte)
            );
        }
    }
}
