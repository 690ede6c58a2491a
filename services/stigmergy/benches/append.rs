//! Append throughput, in events per second, of three paths with the same durability (SQLite in
//! WAL mode, `synchronous=FULL`: the write-ahead log is fsynced before anyone is answered), each
//! on a fresh temporary directory, measured in one run so that they can be compared:
//!
//! 1. BASELINE: plain batched inserts of pre-serialized envelopes into a table shaped like the
//!    embedded log's, 100 rows per transaction, one connection. What SQLite alone can do.
//! 2. BARE LOG: `EmbeddedLog::append` of 100 events at a time, from 1 and from 16 tasks.
//! 3. HTTP: the real all-in-one application, clients posting JSON arrays of 100 valid events to
//!    `POST /v1/events` with their API key, 16 and 1 at a time. Every event passes every capture
//!    rule and is stored (201); the log head is checked against the number of events sent.
//!
//! Then, to tell where the time goes: the CPU each group of threads used during each measurement
//! (from `/proc`, Linux only), and the cost per event of each stage an HTTP request goes through,
//! timed one after the other on one thread.
//!
//! Every path stores the same number of events. The paths are measured one after the other, in
//! three rounds (the disk of a shared machine is noisy), and each one's median round is reported
//! with the slowest and fastest.
//!
//! Run with `cargo bench -p stigmergy --bench append`; add `-- --quick` (or set
//! `STIGMERGY_BENCH_QUICK=1`) for a short run of one round, `-- --rounds N` to change the number
//! of rounds, `-- --only baseline|bare|http|stages` for one part. The temporary directories are
//! made under `TMPDIR` (default `/tmp`): put it on the disk whose fsync you want to measure. The
//! output is plain text.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, ensure};
use rusqlite::{Connection, params};
use serde_json::{Value, json};
use stigmergy_capture::CaptureConfig;
use stigmergy_capture::schemas::EventSchemas;
use stigmergy_domain::rules::{CaptureState, Directory, RetractedEvents, Seal};
use stigmergy_domain::{
    ContentDigest, Event, EventId, Iri, LogPosition, OrganizationId, Submission, Timestamp,
};
use stigmergy_log::{EmbeddedLog, EmbeddedLogConfig, EventLog};
use uuid::Uuid;

mod common;
use common::{
    APP_THREADS, BENCH_THREADS, ThreadTimes, create_organization, log_head, post_events, start_app,
    submission, urn,
};

/// Events in one transaction, one log append, one HTTP request.
const BATCH: usize = 100;
/// The `recordedAt` of the events the baseline and the bare log store (capture sets its own).
const RECORDED_AT: &str = "2025-06-01T10:00:01.250Z";
/// How much each lot holds; every batch takes a few kilograms from two lots.
const LOT_KILOGRAMS: f64 = 500.0;

/// How many events each path is measured on.
#[derive(Clone, Copy, Debug)]
struct Scale {
    baseline_events: usize,
    bare_log_events: usize,
    http_events: usize,
    stage_events: usize,
    /// Batches (of [`BATCH`] events) written before the clock starts, per path.
    warm_up_batches: usize,
}

impl Scale {
    /// Every path stores the same number of events, so that they all write to a log of the same
    /// size (SQLite slows down as its indexes outgrow the page cache).
    const FULL: Scale = Scale {
        baseline_events: 100_000,
        bare_log_events: 100_000,
        http_events: 100_000,
        stage_events: 20_000,
        warm_up_batches: 20,
    };
    const QUICK: Scale = Scale {
        baseline_events: 5_000,
        bare_log_events: 5_000,
        http_events: 5_000,
        stage_events: 2_000,
        warm_up_batches: 4,
    };
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; only `--quick`, `--rounds N` and `--only PART` mean
    // something here.
    let arguments = common::Arguments::from_env();
    let quick = arguments.quick();
    let only = arguments.value_of("--only")?;
    let rounds = arguments
        .positive("--rounds")?
        .unwrap_or(if quick { 1 } else { 3 });
    let scale = if quick { Scale::QUICK } else { Scale::FULL };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name(BENCH_THREADS)
        .enable_all()
        .build()?;
    runtime.block_on(run(scale, quick, rounds, only.as_deref()))
}

async fn run(scale: Scale, quick: bool, rounds: usize, only: Option<&str>) -> anyhow::Result<()> {
    let wanted = |part: &str| only.is_none_or(|only| only.eq_ignore_ascii_case(part));
    ensure!(
        ["baseline", "bare", "http", "stages"]
            .iter()
            .any(|part| wanted(part)),
        "--only takes baseline, bare, http or stages"
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "stigmergy append benchmark{}: {BATCH} events per transaction / append / request, \
         SQLite WAL + synchronous=FULL, {cores} cores, data in {}, median of {rounds} round(s)",
        if quick { " (quick)" } else { "" },
        std::env::temp_dir().display()
    );
    let mut runs = Vec::new();
    // HTTP x16 against the baseline of the same round: the machine's speed drifts between
    // rounds, so the ratio is steadier within a round than across medians.
    let mut round_ratios = Vec::new();
    for round in 1..=rounds {
        let mut round_baseline = None;
        if wanted("baseline") {
            eprintln!("round {round}/{rounds}: BASELINE ...");
            let measured = baseline(scale).await?;
            round_baseline = Some(measured.events_per_second());
            runs.push(measured);
        }
        if wanted("bare") {
            for concurrency in [1, 16] {
                eprintln!("round {round}/{rounds}: BARE LOG x{concurrency} ...");
                runs.push(bare_log(scale, concurrency).await?);
            }
        }
        if wanted("http") {
            for concurrency in [16, 1] {
                eprintln!("round {round}/{rounds}: HTTP x{concurrency} ...");
                let measured = http(scale, concurrency).await?;
                if let (16, Some(baseline)) = (concurrency, round_baseline) {
                    round_ratios.push(measured.events_per_second() / baseline);
                }
                runs.push(measured);
            }
        }
    }
    let stages = if wanted("stages") {
        eprintln!("timing the stages ...");
        Some(tokio::task::spawn_blocking(move || stage_costs(scale.stage_events)).await??)
    } else {
        None
    };
    print_report(&summarize(runs), rounds, stages.as_ref());
    if !round_ratios.is_empty() {
        let listed: Vec<String> = round_ratios
            .iter()
            .map(|r| format!("{:.1}%", r * 100.0))
            .collect();
        round_ratios.sort_by(f64::total_cmp);
        println!(
            "\nHTTP x16 / BASELINE of the same round: {} (median {:.1}%, target 50%)",
            listed.join(", "),
            round_ratios[round_ratios.len() / 2] * 100.0
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The report.

/// One measured path.
struct Measurement {
    path: &'static str,
    concurrency: usize,
    events: usize,
    elapsed: Duration,
    /// Per-request latencies, for the HTTP path.
    latencies: Vec<Duration>,
    /// CPU used during the measurement, per group of threads.
    cpu: Vec<(String, Duration)>,
}

impl Measurement {
    fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// The median run of one path at one concurrency, over the rounds.
struct Summary {
    /// The median run, with the request latencies of every round.
    median: Measurement,
    slowest: f64,
    fastest: f64,
}

/// Groups the runs by path and concurrency, in the order they were first run.
fn summarize(runs: Vec<Measurement>) -> Vec<Summary> {
    let mut groups: Vec<Vec<Measurement>> = Vec::new();
    for run in runs {
        match groups
            .iter_mut()
            .find(|g| g[0].path == run.path && g[0].concurrency == run.concurrency)
        {
            Some(group) => group.push(run),
            None => groups.push(vec![run]),
        }
    }
    groups
        .into_iter()
        .map(|mut group| {
            group.sort_by(|a, b| a.events_per_second().total_cmp(&b.events_per_second()));
            let slowest = group[0].events_per_second();
            let fastest = group[group.len() - 1].events_per_second();
            let latencies: Vec<Duration> = group
                .iter()
                .flat_map(|m| m.latencies.iter().copied())
                .collect();
            let mut median = group.swap_remove(group.len() / 2);
            median.latencies = latencies;
            Summary {
                median,
                slowest,
                fastest,
            }
        })
        .collect()
}

fn print_report(summaries: &[Summary], rounds: usize, stages: Option<&StageCosts>) {
    let baseline = summaries
        .iter()
        .find(|s| s.median.path == "BASELINE")
        .map(|s| s.median.events_per_second());
    if !summaries.is_empty() {
        println!();
        println!(
            "{:<10} {:>11} {:>8} {:>8} {:>9} {:>15} {:>11}",
            "path", "concurrency", "events", "seconds", "events/s", "min-max", "vs baseline"
        );
        for Summary {
            median: m,
            slowest,
            fastest,
        } in summaries
        {
            let ratio = baseline.map_or("-".to_owned(), |b| {
                format!("{:.1}%", 100.0 * m.events_per_second() / b)
            });
            println!(
                "{:<10} {:>11} {:>8} {:>8.3} {:>9.0} {:>15} {:>11}",
                m.path,
                m.concurrency,
                m.events,
                m.elapsed.as_secs_f64(),
                m.events_per_second(),
                format!("{:.0}-{:.0}", slowest, fastest),
                ratio
            );
        }
        if rounds > 1 {
            println!(
                "(median of {rounds} rounds, run one after the other; min-max: slowest and fastest round)"
            );
        }
    }
    let measurements: Vec<&Measurement> = summaries.iter().map(|s| &s.median).collect();
    if measurements.iter().any(|m| !m.latencies.is_empty()) {
        println!();
        println!("HTTP request of {BATCH} events, latency (every round):");
        for m in measurements.iter().filter(|m| !m.latencies.is_empty()) {
            println!(
                "  concurrency {:>2}: p50 {:>6.1} ms   p99 {:>6.1} ms   ({} requests)",
                m.concurrency,
                percentile(&m.latencies, 50.0).as_secs_f64() * 1e3,
                percentile(&m.latencies, 99.0).as_secs_f64() * 1e3,
                m.latencies.len()
            );
        }
    }
    if measurements.iter().any(|m| !m.cpu.is_empty()) {
        println!();
        println!("CPU used during the median run, in cores (CPU seconds / wall seconds):");
        for m in measurements.iter().filter(|m| !m.cpu.is_empty()) {
            let wall = m.elapsed.as_secs_f64();
            let total: f64 = m.cpu.iter().map(|(_, cpu)| cpu.as_secs_f64()).sum();
            let parts: Vec<String> = m
                .cpu
                .iter()
                .map(|(group, cpu)| format!("{group} {:.2}", cpu.as_secs_f64() / wall))
                .collect();
            println!(
                "  {:<8} x{:<2} {:.2} = {}",
                m.path,
                m.concurrency,
                total / wall,
                parts.join(" + ")
            );
        }
    }
    if let Some(stages) = stages {
        println!();
        println!(
            "CPU per event of each stage, timed alone on one thread ({} events in requests of {BATCH}):",
            stages.events
        );
        let per_event = |d: Duration| d.as_secs_f64() * 1e6 / stages.events as f64;
        for (stage, cost, runs_on) in &stages.costs {
            println!("  {stage:<44} {:>6.2} us   {runs_on}", per_event(*cost));
        }
        if let Some(baseline) = baseline {
            println!(
                "  {:<44} {:>6.2} us   log writer thread (wall time: 1 / BASELINE rate)",
                "SQLite insert + commit",
                1e6 / baseline
            );
        }
    }
}

/// The nearest-rank percentile of `samples`.
fn percentile(samples: &[Duration], percent: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((percent / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1))
        .copied()
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Where the CPU goes: the CPU time of each thread of this process, from `/proc` (Linux only;
// elsewhere nothing is reported).

/// The groups the CPU is reported in.
const CPU_GROUPS: &[&str] = &["http workers", "sequencer", "log writer", "bench", "other"];

/// The group of a thread, by its name.
fn cpu_group(name: &str) -> Option<&'static str> {
    Some(if name.starts_with("actix-server wo") {
        "http workers"
    } else if name == APP_THREADS {
        "sequencer"
    } else if name.starts_with("event-log-writ") {
        "log writer"
    } else if name == BENCH_THREADS {
        "bench"
    } else {
        "other"
    })
}

// ---------------------------------------------------------------------------------------------
// The events: what one workshop records.

/// The submissions of one workshop, endlessly, in rounds of four: it sources two lots, fabricates
/// a batch of its own design from a few kilograms of the newer lot and of a lot sourced in the
/// previous round (so custody and mass balance are checked against earlier events, of the same
/// request or an earlier one), and records a contribution to the batch. Every id is a fresh
/// `urn:uuid:` IRI, every event id a client-chosen UUIDv7.
struct Workshop {
    design: String,
    previous_lot: Option<String>,
    /// The lots and the batch of the current round; `None` before the first round.
    round: Option<([String; 2], String)>,
    step: usize,
}

impl Workshop {
    fn new() -> Self {
        Self {
            design: urn(),
            previous_lot: None,
            round: None,
            step: 0,
        }
    }

    /// The design every batch of this workshop is made from; it must be recorded first.
    fn design_published(&self) -> Value {
        submission(
            "DesignPublished",
            json!({
                "designId": self.design, "name": "Open stool", "licence": "CERN-OHL-S-2.0",
                "sourceUri": "https://openstool.example/src/open-stool", "version": "1.0.0",
                "description": "A flat-pack stool of birch plywood with 3D-printed joints."
            }),
        )
    }

    fn next_event(&mut self) -> Value {
        let step = self.step;
        self.step = (self.step + 1) % 4;
        if step == 0 {
            let finished = self.round.replace(([urn(), urn()], urn()));
            self.previous_lot = finished.map(|([_, newer], _)| newer);
        }
        let Some((lots, batch)) = &self.round else {
            unreachable!("a round starts at step 0")
        };
        match step {
            0 | 1 => submission(
                "MaterialSourced",
                json!({
                    "lotId": lots[step], "material": "Birch plywood 12 mm",
                    "quantity": { "amount": LOT_KILOGRAMS, "unit": "KGM" },
                    "origin": { "name": "Koskisen mill, Järvelä", "country": "FI" },
                    "supplier": { "id": "https://koskisen.example", "name": "Koskisen" },
                    "kgCo2ePerUnit": 0.68, "dataQuality": "secondary", "recycledContent": 0.0
                }),
            ),
            2 => {
                let older = self.previous_lot.as_ref().unwrap_or(&lots[0]);
                submission(
                    "BatchFabricated",
                    json!({
                        "batchId": batch, "designId": self.design, "quantity": { "amount": 20, "unit": "H87" },
                        "facility": { "name": "Valldaura Microfactory, Cerdanyola", "country": "ES" },
                        "inputs": [
                            { "resource": lots[1], "quantity": { "amount": 6, "unit": "KGM" } },
                            { "resource": older, "quantity": { "amount": 1500, "unit": "GRM" } }
                        ],
                        "energy": { "amount": 8.5, "unit": "KWH" },
                        "directEmissionsKgCo2e": 0.15,
                        "labour": [ { "agent": "https://valldaura.example/people/carla", "hours": 2.4 } ]
                    }),
                )
            }
            _ => submission(
                "ContributionRecorded",
                json!({
                    "target": batch,
                    "contributor": { "id": "https://valldaura.example/people/dani", "name": "Dani Vidal" },
                    "kind": "fabrication", "effort": { "amount": 1.5, "unit": "hours" }
                }),
            ),
        }
    }

    fn next_events(&mut self, count: usize) -> Vec<Value> {
        (0..count).map(|_| self.next_event()).collect()
    }
}

/// Seals submissions as capture would (server fields, subject), for the paths without capture.
fn sealed(submissions: Vec<Value>, recorded_by: &OrganizationId) -> anyhow::Result<Vec<Event>> {
    let recorded_at = Timestamp::parse(RECORDED_AT).map_err(|e| anyhow!(e))?;
    submissions
        .into_iter()
        .map(|value| {
            let submission = Submission::from_json(value)
                .map_err(|e| anyhow!("an invalid sample event: {e}"))?;
            let subject = submission
                .payload
                .own_subject()
                .cloned()
                .context("a sample event without subject")?;
            Ok(Event {
                event_id: submission
                    .event_id
                    .unwrap_or_else(|| EventId::from_uuid(Uuid::now_v7())),
                schema_version: submission.schema_version,
                occurred_at: submission.occurred_at,
                recorded_at,
                recorded_by: recorded_by.clone(),
                subject,
                payload: submission.payload,
            })
        })
        .collect()
}

/// `count` sealed events of one workshop, in batches of [`BATCH`].
fn sealed_batches(count: usize) -> anyhow::Result<Vec<Vec<Event>>> {
    let organization = Iri::from_uuid(Uuid::now_v7());
    let mut workshop = Workshop::new();
    let mut events = sealed(vec![workshop.design_published()], &organization)?;
    events.extend(sealed(
        workshop.next_events(count.saturating_sub(1)),
        &organization,
    )?);
    let mut batches = Vec::with_capacity(count.div_ceil(BATCH));
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        batches.push(events.by_ref().take(BATCH).collect());
    }
    Ok(batches)
}

/// Deals `items` round-robin to `hands` hands.
fn deal<T>(items: Vec<T>, hands: usize) -> Vec<Vec<T>> {
    let mut dealt: Vec<Vec<T>> = (0..hands).map(|_| Vec::new()).collect();
    for (index, item) in items.into_iter().enumerate() {
        dealt[index % hands].push(item);
    }
    dealt
}

fn check_head(path: &str, head: LogPosition, expected: usize) -> anyhow::Result<()> {
    ensure!(
        head == LogPosition(expected as u64),
        "{path}: the log head is {head} but {expected} events were sent and acknowledged; events went missing"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 1. BASELINE: SQLite alone.

/// The table and index of the embedded log, the very same.
const SCHEMA: &str = stigmergy_log::EMBEDDED_SCHEMA;

/// A row as the log stores it, serialized before the clock starts.
struct Row {
    event_id: [u8; 16],
    event_type: &'static str,
    subject: String,
    recorded_at: String,
    envelope: String,
}

fn rows(batch: &[Event]) -> anyhow::Result<Vec<Row>> {
    batch
        .iter()
        .map(|event| {
            Ok(Row {
                event_id: *event.event_id.as_bytes(),
                event_type: event.event_type().name(),
                subject: event.subject.to_string(),
                recorded_at: event.recorded_at.to_string(),
                envelope: serde_json::to_string(event)?,
            })
        })
        .collect()
}

fn insert_transaction(connection: &mut Connection, rows: &[Row]) -> rusqlite::Result<()> {
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut insert = transaction.prepare_cached(
            "INSERT INTO events (event_id, event_type, subject, recorded_at, envelope) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for row in rows {
            insert.execute(params![
                &row.event_id[..],
                row.event_type,
                row.subject,
                row.recorded_at,
                row.envelope
            ])?;
        }
    }
    transaction.commit()
}

async fn baseline(scale: Scale) -> anyhow::Result<Measurement> {
    let dir = tempfile::tempdir()?;
    let batches = sealed_batches(scale.warm_up_batches * BATCH + scale.baseline_events)?
        .iter()
        .map(|batch| rows(batch))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let path = dir.path().join("baseline.sqlite");
    let measured = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut connection = Connection::open(&path)?;
        let mode: String =
            connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        ensure!(
            mode.eq_ignore_ascii_case("wal"),
            "SQLite refused WAL mode ({mode})"
        );
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.execute_batch(SCHEMA)?;
        let (warm_up, measured) = batches.split_at(scale.warm_up_batches);
        for rows in warm_up {
            insert_transaction(&mut connection, rows)?;
        }
        let threads = ThreadTimes::now();
        let start = Instant::now();
        for rows in measured {
            insert_transaction(&mut connection, rows)?;
        }
        let elapsed = start.elapsed();
        let cpu = ThreadTimes::now().since(&threads, CPU_GROUPS, cpu_group);
        let stored: u64 =
            connection.query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0))?;
        Ok((elapsed, cpu, stored))
    })
    .await??;
    let (elapsed, cpu, stored) = measured;
    let expected = scale.warm_up_batches * BATCH + scale.baseline_events;
    ensure!(
        stored == expected as u64,
        "BASELINE stored {stored} rows, expected {expected}"
    );
    Ok(Measurement {
        path: "BASELINE",
        concurrency: 1,
        events: scale.baseline_events,
        elapsed,
        latencies: Vec::new(),
        cpu,
    })
}

// ---------------------------------------------------------------------------------------------
// 2. BARE LOG: the embedded log, without capture.

async fn bare_log(scale: Scale, concurrency: usize) -> anyhow::Result<Measurement> {
    let dir = tempfile::tempdir()?;
    let log = EmbeddedLog::open(dir.path(), EmbeddedLogConfig::default())?;
    let mut batches = sealed_batches(scale.warm_up_batches * BATCH + scale.bare_log_events)?;
    let measured = batches.split_off(scale.warm_up_batches.min(batches.len()));
    for batch in batches {
        log.append(batch).await?;
    }
    let hands = deal(measured, concurrency);
    let threads = ThreadTimes::now();
    let start = Instant::now();
    let tasks: Vec<_> = hands
        .into_iter()
        .map(|hand| {
            let log = log.clone();
            tokio::spawn(async move {
                for batch in hand {
                    log.append(batch).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let elapsed = start.elapsed();
    let cpu = ThreadTimes::now().since(&threads, CPU_GROUPS, cpu_group);
    check_head(
        "BARE LOG",
        log.head(),
        scale.warm_up_batches * BATCH + scale.bare_log_events,
    )?;
    Ok(Measurement {
        path: "BARE LOG",
        concurrency,
        events: scale.bare_log_events,
        elapsed,
        latencies: Vec::new(),
        cpu,
    })
}

// ---------------------------------------------------------------------------------------------
// 3. HTTP: the real application.

async fn http(scale: Scale, concurrency: usize) -> anyhow::Result<Measurement> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let app = start_app(&client, 500).await?;
    let url = format!("{}/v1/events", app.base);
    let requests = scale.http_events.div_ceil(BATCH);

    // Each client is a workshop with its own organisation: it publishes its design and warms up
    // (untimed), and has its timed request bodies serialized before the clock starts.
    let mut sent = 0;
    let mut workshops = Vec::with_capacity(concurrency);
    for index in 0..concurrency {
        let key =
            create_organization(&client, &app.base, &format!("Bench workshop {index}")).await?;
        let mut workshop = Workshop::new();
        post_events(
            &client,
            &url,
            &key,
            serde_json::to_vec(&[workshop.design_published()])?,
        )
        .await?;
        sent += 1;
        let warm_up = scale.warm_up_batches / concurrency
            + usize::from(index < scale.warm_up_batches % concurrency);
        for _ in 0..warm_up {
            post_events(
                &client,
                &url,
                &key,
                serde_json::to_vec(&workshop.next_events(BATCH))?,
            )
            .await?;
            sent += BATCH;
        }
        workshops.push((key, workshop));
    }
    let mut bodies: Vec<Vec<Vec<u8>>> = (0..concurrency).map(|_| Vec::new()).collect();
    for request in 0..requests {
        let count = BATCH.min(scale.http_events - request * BATCH);
        let (_, workshop) = &mut workshops[request % concurrency];
        bodies[request % concurrency].push(serde_json::to_vec(&workshop.next_events(count))?);
    }

    let url = Arc::new(url);
    let threads = ThreadTimes::now();
    let start = Instant::now();
    let tasks: Vec<_> = workshops
        .into_iter()
        .zip(bodies)
        .map(|((key, _), bodies)| {
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(bodies.len());
                for body in bodies {
                    let sent_at = Instant::now();
                    post_events(&client, &url, &key, body).await?;
                    latencies.push(sent_at.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(requests);
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = start.elapsed();
    let cpu = ThreadTimes::now().since(&threads, CPU_GROUPS, cpu_group);
    sent += scale.http_events;

    let head = log_head(&client, &app.base).await?;
    check_head("HTTP", LogPosition(head), sent)?;
    Ok(Measurement {
        path: "HTTP",
        concurrency,
        events: scale.http_events,
        elapsed,
        latencies,
        cpu,
    })
}

// ---------------------------------------------------------------------------------------------
// The stages of an HTTP request, timed one by one on one thread, with the same events.

struct StageCosts {
    events: usize,
    /// Stage, total time, and where it runs in the application.
    costs: Vec<(&'static str, Duration, &'static str)>,
}

/// Every organisation exists (the events of the bench name none but their own).
struct EveryoneExists;

impl Directory for EveryoneExists {
    fn organization_exists(&self, _: &OrganizationId) -> bool {
        true
    }
}

fn stage_costs(events: usize) -> anyhow::Result<StageCosts> {
    let schemas = EventSchemas::load()?;
    let config = CaptureConfig::default();
    let no_retractions = RetractedEvents::new();
    let organization = Iri::from_uuid(Uuid::now_v7());
    let seal = Seal {
        recorded_by: organization.clone(),
        recorded_at: Timestamp::parse(RECORDED_AT).map_err(|e| anyhow!(e))?,
        minted_id: EventId::from_uuid(Uuid::now_v7()),
    };
    let mut workshop = Workshop::new();
    let mut state = CaptureState::new();
    for design in sealed(vec![workshop.design_published()], &organization)? {
        state
            .admit(&design, &EveryoneExists, &no_retractions)
            .map_err(|refusal| anyhow!("{refusal}"))?;
    }
    let bodies = (0..events.div_ceil(BATCH))
        .map(|_| serde_json::to_vec(&workshop.next_events(BATCH)))
        .collect::<Result<Vec<_>, _>>()?;

    let mut parse = Duration::ZERO;
    let mut validate = Duration::ZERO;
    let mut from_json = Duration::ZERO;
    let mut rules = Duration::ZERO;
    let mut digest = Duration::ZERO;
    let mut envelope = Duration::ZERO;
    for body in &bodies {
        let start = Instant::now();
        let request = stigmergy_capture::body::split("application/json", body, &config)
            .map_err(|problem| anyhow!("{problem}"))?;
        parse += start.elapsed();

        let start = Instant::now();
        for (prefix, value) in &request.items {
            let violations = schemas.validate(value, prefix, config.max_reported_violations);
            ensure!(
                violations.is_empty(),
                "a sample event breaks its schema: {:?}",
                violations[0].detail
            );
        }
        validate += start.elapsed();

        let start = Instant::now();
        let submissions = request
            .items
            .into_iter()
            .map(|(_, value)| Submission::from_json(value))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow!("{e}"))?;
        from_json += start.elapsed();

        let start = Instant::now();
        state.begin();
        let mut admitted = Vec::with_capacity(submissions.len());
        for submission in submissions {
            let event = state
                .seal(submission, &seal)
                .map_err(|refusal| anyhow!("{refusal}"))?;
            state
                .admit(&event, &EveryoneExists, &no_retractions)
                .map_err(|refusal| anyhow!("{refusal}"))?;
            admitted.push(event);
        }
        state.commit();
        rules += start.elapsed();

        let start = Instant::now();
        for event in &admitted {
            black_box(ContentDigest::of(event));
        }
        digest += start.elapsed();

        let start = Instant::now();
        for event in &admitted {
            black_box(serde_json::to_string(event)?);
        }
        envelope += start.elapsed();
    }
    Ok(StageCosts {
        events: bodies.len() * BATCH,
        costs: vec![
            (
                "JSON parse (body::split)",
                parse,
                "HTTP worker, in parallel",
            ),
            (
                "schema validation (EventSchemas::validate)",
                validate,
                "HTTP worker, in parallel",
            ),
            (
                "domain parse (Submission::from_json)",
                from_json,
                "HTTP worker, in parallel",
            ),
            (
                "rules: seal + admit (CaptureState)",
                rules,
                "sequencer task, one at a time",
            ),
            ("  of which the content digest", digest, "(inside admit)"),
            (
                "envelope serialization (EmbeddedLog::append)",
                envelope,
                "sequencer task, one at a time",
            ),
        ],
    })
}
