//! The Kafka path against bare rdkafka clients, on the same kind of broker in the same run
//! (issue 5):
//!
//! 1. CAPTURE against a BARE PRODUCER. The bare producer is an rdkafka `FutureProducer` built
//!    from `KafkaConfig::producer()` (idempotent, `acks=all`: the settings capture's log uses),
//!    in this process: it serialises the envelopes of a generated stream of `MaterialSourced`
//!    events as the Kafka log does, sends each to its stage topic keyed by its subject with the
//!    log's headers, and keeps at most `--clients` × `--batch` deliveries in flight. Capture is
//!    `stigmergy capture --log kafka://… --store postgres://…`, a process of its own, to which
//!    `--clients` concurrent clients post JSON arrays of `--batch` valid `MaterialSourced`
//!    events (fresh lots, so every one passes every rule): as many events in flight as the bare
//!    producer's. Same number of events, same event type, same `[kafka]` settings (defaults and
//!    `STIGMERGY__KAFKA__…`, for both). Each is timed from its first send to its last
//!    acknowledgement (after a warm-up of one batch), and charged the CPU of its own process:
//!    the bare producer's is this process (librdkafka's threads included; nothing else runs in
//!    it meanwhile), capture's is the capture process (`/proc/<pid>/stat`; the HTTP clients run
//!    here and are not counted).
//!    Capture answers an append only once its mirror has read the events back from the topics
//!    (`stigmergy_log::kafka`), so a third path shows what that contract costs on the broker
//!    without capture: the BARE PRODUCER + READ-BACK, which counts an event once a consumer of
//!    the topics in this process has read and decoded it, with at most the same number of
//!    events sent and not yet read back.
//! 2. PROJECTOR against a BARE CONSUMER, on what capture wrote. The bare consumer is an rdkafka
//!    consumer from `KafkaConfig::consumer()`, assigned every partition of the stage topics from
//!    the beginning, decoding every record (`kafka::decode`) until it reaches the high
//!    watermarks. The projector is `stigmergy project --log kafka://… --store postgres://<a
//!    fresh database> --group <a fresh group>`, timed from its start until the views hold every
//!    event (`SELECT count(*) FROM view_events`, polled every 50 ms) and it has published the
//!    documents of every page it applied (its offsets under `<group>.published` add up to the
//!    applied ones), and charged its process's CPU and that of the PostgreSQL backends serving
//!    its database. Then again, into another fresh database in another group, with
//!    `STIGMERGY__KAFKA__PUBLISH=false`: without publishing records and anomalies on the
//!    metadata and anomalies topics after each page.
//!
//! With the throwaway broker, each path of step 1 gets a fresh one (tansu reads a record slower
//! the more its partition holds); step 2 runs on capture's. The broker's CPU in each
//! measurement is reported too. Everything is printed as a markdown table, with the ratios the
//! issue sets targets for (capture's CPU per event at most 2× the bare producer's; its
//! throughput at least 0.7× the bare producer's), and the CPU of each process by thread.
//!
//! Run with `cargo bench -p stigmergy --bench kafka`; `-- --events N` (default 10,000 per
//! path), `--batch N` (events per request, default 50), `--clients N` (default 4), `--rounds N`
//! (default 3: the bare producer and capture are measured alternately N times each, and the
//! round with the median throughput ratio is shown, next to every round's ratios), `--quick`
//! (1,000 events), `--capture-only` (step 1 alone: librdkafka's mock cluster drops the oldest
//! records of a large run, 60,542 of 100,000 in one, so step 2 reads only what is left). It
//! needs PostgreSQL: `STIGMERGY_BENCH_POSTGRES_URL` (or `STIGMERGY_TEST_POSTGRES_URL`) names a
//! server and a role that may create databases; each run creates a database per round and two
//! more, and drops them at the end. It starts throwaway tansu brokers
//! (`stigmergy_testkit::broker`), unless `STIGMERGY_BENCH_KAFKA=host:port` names a broker to use
//! instead: its `stigmergy.*.v1` topics are created when missing and written to by every path,
//! so use one whose topics are disposable, best empty (step 2 reads everything they hold).
//! `KAFKA_BENCH_LOG` sets the services' `RUST_LOG` (default `warn`, and `info` for the
//! projector's own lines, which say when it was given its partitions).

use std::collections::{HashMap, HashSet, VecDeque};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use postgres::NoTls;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use stigmergy::config::KafkaSettings;
use stigmergy_domain::Event;
use stigmergy_log::KafkaConfig;
use stigmergy_log::kafka::{self, STAGE_TOPICS, stage_topic};
use stigmergy_testkit::broker::Broker;
use stigmergy_testkit::{Mix, Proportions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};

mod common;
use common::{BENCH_THREADS, OPERATOR_TOKEN, ThreadTimes, post_events, process_cpu, submission};

/// How long any one step may take before the bench gives up.
const PATIENCE: Duration = Duration::from_secs(600);

#[derive(Clone, Copy, Debug)]
struct Options {
    /// Events each path of step 1 sends (after a warm-up of one batch each).
    events: usize,
    /// Events per request (capture) and the unit of the in-flight window (both).
    batch: usize,
    /// Concurrent HTTP clients; the bare producer keeps `clients × batch` deliveries in flight.
    clients: usize,
    /// Times the bare producer and capture are measured, alternately (`--rounds`).
    rounds: usize,
    /// Step 1 only (`--capture-only`).
    capture_only: bool,
}

impl Options {
    fn parse(arguments: &common::Arguments) -> anyhow::Result<Self> {
        let quick = arguments.quick();
        Ok(Self {
            events: arguments
                .positive("--events")?
                .unwrap_or(if quick { 1_000 } else { 10_000 }),
            batch: arguments.positive("--batch")?.unwrap_or(50),
            clients: arguments.positive("--clients")?.unwrap_or(4),
            rounds: arguments.positive("--rounds")?.unwrap_or(3),
            capture_only: arguments.flag("--capture-only"),
        })
    }

    fn window(&self) -> usize {
        self.clients * self.batch
    }
}

fn main() -> anyhow::Result<()> {
    let arguments = common::Arguments::from_env();
    if let Some(partitions) = arguments.value_of(SERVE_MOCK)? {
        return serve_mock(&partitions);
    }
    // `cargo bench` passes `--bench`; the flags above are the ones that mean something here.
    let options = Options::parse(&arguments)?;
    let external = std::env::var("STIGMERGY_BENCH_KAFKA")
        .ok()
        .filter(|bootstrap| !bootstrap.is_empty());
    let broker = match (external, arguments.value_of("--broker")?.as_deref()) {
        (Some(bootstrap), _) => BrokerKind::External(bootstrap),
        (None, None | Some("tansu")) => BrokerKind::Tansu,
        (None, Some("librdkafka-mock")) => BrokerKind::Mock,
        (None, Some(other)) => bail!("--broker {other}: expected tansu or librdkafka-mock"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name(BENCH_THREADS)
        .enable_all()
        .build()?;
    runtime.block_on(run(options, broker))
}

// ---------------------------------------------------------------------------------------------
// What the bench runs against.

/// Which broker the bench runs against.
#[derive(Clone, Debug)]
enum BrokerKind {
    /// A throwaway tansu per path (`--broker tansu`, the default).
    Tansu,
    /// A throwaway librdkafka mock cluster per path, in a process of its own
    /// (`--broker librdkafka-mock`).
    Mock,
    /// The broker `STIGMERGY_BENCH_KAFKA` names.
    External(String),
}

impl BrokerKind {
    fn describe(&self) -> String {
        match self {
            Self::Tansu => "tansu, a fresh one per path of step 1".to_owned(),
            Self::Mock => {
                "librdkafka's mock cluster (in-memory, one broker, a process of its own), a fresh \
                 one per path of step 1"
                    .to_owned()
            }
            Self::External(bootstrap) => format!("{bootstrap} (STIGMERGY_BENCH_KAFKA)"),
        }
    }
}

/// A broker: a throwaway tansu, a throwaway mock cluster, or the one `STIGMERGY_BENCH_KAFKA`
/// names.
enum Brokers {
    Started(Broker),
    Mock {
        process: std::process::Child,
        bootstrap: String,
    },
    External(String),
}

/// The flag with which this bench, run again, serves a mock cluster until its stdin closes.
const SERVE_MOCK: &str = "--serve-librdkafka-mock";

impl Brokers {
    /// A fresh tansu or mock cluster (each path of step 1 gets its own: tansu reads a record
    /// slower the more its partition holds, so that a path run after another would pay for
    /// what the other wrote), or the external broker; with the stage topics created.
    async fn start(kind: &BrokerKind, config: &KafkaSettings) -> anyhow::Result<Self> {
        let brokers = match kind {
            BrokerKind::External(bootstrap) => Self::External(bootstrap.clone()),
            BrokerKind::Tansu => Self::Started(tokio::task::block_in_place(Broker::start)),
            BrokerKind::Mock => tokio::task::block_in_place(|| Self::start_mock(config))?,
        };
        kafka::ensure_topics(&brokers.config(config))
            .await
            .context("cannot create the topics")?;
        Ok(brokers)
    }

    /// This bench again, as the mock cluster's process: it prints the bootstrap address.
    fn start_mock(config: &KafkaSettings) -> anyhow::Result<Self> {
        use std::io::BufRead;
        let mut process = std::process::Command::new(std::env::current_exe()?)
            .arg(SERVE_MOCK)
            .arg(config.partitions.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the mock cluster's process")?;
        let mut line = String::new();
        std::io::BufReader::new(process.stdout.take().context("no stdout")?)
            .read_line(&mut line)?;
        let bootstrap = line.trim().to_owned();
        ensure!(!bootstrap.is_empty(), "the mock cluster did not start");
        Ok(Self::Mock { process, bootstrap })
    }

    fn bootstrap(&self) -> String {
        match self {
            Self::Started(broker) => broker.bootstrap(),
            Self::Mock { bootstrap, .. } | Self::External(bootstrap) => bootstrap.clone(),
        }
    }

    /// The client settings `stigmergy capture` would use for this broker.
    fn config(&self, settings: &KafkaSettings) -> KafkaConfig {
        settings.client(&self.bootstrap())
    }

    /// The broker's process, when this bench started it (found by the address it listens on).
    fn pid(&self) -> Option<u32> {
        let broker = match self {
            Self::Started(broker) => broker,
            Self::Mock { process, .. } => return Some(process.id()),
            Self::External(_) => return None,
        };
        let wanted = format!("tcp://{}", broker.bootstrap());
        std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .find_map(|entry| {
                let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                let command = std::fs::read(entry.path().join("cmdline")).ok()?;
                command
                    .split(|&byte| byte == 0)
                    .any(|argument| argument == wanted.as_bytes())
                    .then_some(pid)
            })
    }
}

impl Drop for Brokers {
    fn drop(&mut self) {
        if let Self::Mock { process, .. } = self {
            // The mock cluster's process ends when its stdin closes.
            drop(process.stdin.take());
            let _ = process.wait();
        }
    }
}

/// Serves a librdkafka mock cluster of one broker, with the topics the platform uses created
/// with `partitions` partitions (the mock cluster answers no CreateTopics), until stdin closes.
fn serve_mock(partitions: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let partitions: i32 = partitions.parse().context("the partition count")?;
    let cluster = rdkafka::mocking::MockCluster::new(1)?;
    for topic in kafka::topics() {
        cluster.create_topic(topic, partitions, 1)?;
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", cluster.bootstrap_servers())?;
    stdout.flush()?;
    let mut rest = Vec::new();
    std::io::stdin().read_to_end(&mut rest)?;
    Ok(())
}

/// A PostgreSQL database of this run, dropped at the end.
struct Database {
    server: String,
    name: String,
    url: String,
}

/// A connection with the synchronous client, off the async workers.
fn with_client<T>(
    url: &str,
    work: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error>,
) -> anyhow::Result<T> {
    tokio::task::block_in_place(|| {
        let mut client = postgres::Client::connect(url, NoTls)?;
        Ok(work(&mut client)?)
    })
}

impl Database {
    fn create(server: &str, role: &str) -> anyhow::Result<Self> {
        let name = format!("stigmergy_bench_{role}_{}", uuid::Uuid::new_v4().simple());
        with_client(server, |client| {
            client.batch_execute(&format!("CREATE DATABASE {name}"))
        })
        .with_context(|| format!("cannot create a database on {server}"))?;
        let (base, _) = server
            .rsplit_once('/')
            .context("the PostgreSQL URL names no database")?;
        Ok(Self {
            server: server.to_owned(),
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = with_client(&self.server, |client| {
            client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
        });
    }
}

/// `stigmergy <role>` against the broker and a database, with the `STIGMERGY__…` environment
/// of this process.
fn service(role: &str, bootstrap: &str, database: &Database, data: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stigmergy"));
    command
        .arg(role)
        .args([
            "--log",
            &format!("kafka://{bootstrap}"),
            "--store",
            &database.url,
            "--data-dir",
        ])
        .arg(data)
        .env("STIGMERGY_OPERATOR_TOKEN", OPERATOR_TOKEN)
        // What capture can take is measured, not the per-organisation rate limit.
        .env("STIGMERGY__CAPTURE__RATE_LIMIT_EVENTS_PER_SECOND", "0")
        .env(
            "RUST_LOG",
            std::env::var("KAFKA_BENCH_LOG")
                .unwrap_or_else(|_| "warn,stigmergy_projector=info".into()),
        )
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

// ---------------------------------------------------------------------------------------------
// Measurements.

/// One path's figures.
#[derive(Clone, Debug, Default)]
struct Measured {
    events: usize,
    wall: Duration,
    /// CPU of the path's own process.
    cpu: Duration,
    /// CPU of the broker meanwhile (when the bench started it).
    broker_cpu: Option<Duration>,
    /// CPU of the PostgreSQL backends serving the path (the projector's).
    postgres_cpu: Option<Duration>,
    /// Average size of a record's value, in bytes.
    value_bytes: Option<f64>,
    /// CPU of the path's process by group of threads.
    threads: Vec<(String, Duration)>,
    /// Remarks for the table.
    note: String,
}

impl Measured {
    fn per_second(&self) -> f64 {
        self.events as f64 / self.wall.as_secs_f64()
    }

    fn micros_per_event(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * 1e6 / self.events as f64
    }
}

/// The CPU of a process and of the broker, read together.
struct CpuMark {
    process: Duration,
    broker: Option<Duration>,
    threads: ThreadTimes,
    at: Instant,
}

impl CpuMark {
    fn take(pid: u32, broker: Option<u32>) -> anyhow::Result<Self> {
        Ok(Self {
            at: Instant::now(),
            process: process_cpu(pid).with_context(|| format!("cannot read /proc/{pid}/stat"))?,
            broker: broker.and_then(process_cpu),
            threads: ThreadTimes::of(pid),
        })
    }

    /// What was used since `self`, as a measurement of `events`.
    fn since(
        &self,
        pid: u32,
        broker: Option<u32>,
        events: usize,
        started: Instant,
    ) -> anyhow::Result<Measured> {
        let now = CpuMark::take(pid, broker)?;
        Ok(Measured {
            events,
            wall: now.at.duration_since(started),
            cpu: now.process.saturating_sub(self.process),
            broker_cpu: now
                .broker
                .zip(self.broker)
                .map(|(now, then)| now.saturating_sub(then)),
            threads: now.threads.since(&self.threads, &[], thread_group),
            ..Measured::default()
        })
    }
}

/// Threads by what they do (names are cut to 15 bytes by Linux; librdkafka's are listed as
/// they are named: `rdk:main`, `rdk:broker<id>`, of every client of the process together).
fn thread_group(name: &str) -> Option<&'static str> {
    if name.starts_with("actix") {
        Some("actix (HTTP workers)")
    } else if name.starts_with("tokio") {
        Some("tokio workers")
    } else if name.starts_with(BENCH_THREADS) {
        Some("bench runtime")
    } else if name.starts_with("kafka-") {
        Some("bench main thread")
    } else {
        None
    }
}

async fn run(options: Options, broker: BrokerKind) -> anyhow::Result<()> {
    let postgres = std::env::var("STIGMERGY_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("STIGMERGY_TEST_POSTGRES_URL"))
        .context(
            "set STIGMERGY_BENCH_POSTGRES_URL (or STIGMERGY_TEST_POSTGRES_URL) to a PostgreSQL \
             server and a role that may create databases",
        )?;
    // The `[kafka]` settings `stigmergy capture` reads (defaults and `STIGMERGY__KAFKA__…`), so
    // that the bare clients use the same.
    let settings = stigmergy::Config::load(None)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .kafka;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "stigmergy Kafka benchmark: {cores} cores, broker {}, {} partitions per topic, {} events \
         per path, {} clients x {} events in flight",
        broker.describe(),
        settings.partitions,
        options.events,
        options.clients,
        options.batch,
    );

    // 1. Capture against a bare producer (and a bare producer that also waits, as capture does,
    //    until a consumer has read its records back). On a shared machine a measurement varies
    //    from one run to the next, so the bare producer and capture are measured alternately,
    //    `--rounds` times each, each on a fresh broker, and the round with the median ratio of
    //    their throughputs is the one shown.
    let brokers = Brokers::start(&broker, &settings).await?;
    let round_trip = bare_round_trip(&brokers.config(&settings), &options, brokers.pid())
        .await
        .context("the bare producer with read-back")?;
    report_progress("bare producer with read-back", &round_trip);
    drop(brokers);
    let mut rounds = Vec::with_capacity(options.rounds);
    // The last round's broker, for step 2 (what capture wrote), and capture's database.
    let mut last = None;
    for round in 1..=options.rounds {
        let brokers = Brokers::start(&broker, &settings).await?;
        let bare_producer = bare_produce(&brokers.config(&settings), &options, brokers.pid())
            .await
            .context("the bare producer")?;
        report_progress(&format!("round {round}, bare producer"), &bare_producer);
        drop(brokers);
        let brokers = Brokers::start(&broker, &settings).await?;
        let database = Database::create(&postgres, "capture")?;
        let capture = capture_path(&brokers.bootstrap(), &database, &options, brokers.pid())
            .await
            .context("capture")?;
        report_progress(&format!("round {round}, capture"), &capture);
        rounds.push((bare_producer, capture));
        last = Some((brokers, database));
    }
    let (brokers, _capture_database) = last.context("no round was run")?;
    let (bare_producer, mut capture) = median_round(rounds);
    if options.capture_only {
        let paths = [
            ("bare producer", &bare_producer),
            ("bare producer + read-back", &round_trip),
            ("capture", &capture),
        ];
        print_table(&paths);
        print_capture_ratios(&bare_producer, &round_trip, &capture);
        println!();
        for (name, measured) in paths {
            print_threads(name, measured);
        }
        return Ok(());
    }

    // 2. The projector against a bare consumer, on what capture wrote (all the topics hold).
    let bare_consumer = bare_consume(&brokers.config(&settings), brokers.pid())
        .await
        .context("the bare consumer")?;
    report_progress("bare consumer", &bare_consumer);
    capture.value_bytes = bare_consumer.value_bytes;
    let projector = projector_path(
        &brokers.bootstrap(),
        &postgres,
        &bare_consumer,
        brokers.pid(),
        None,
    )
    .await
    .context("the projector")?;
    report_progress("projector", &projector);
    // The same without publishing records and anomalies back to Kafka after each page.
    let quiet = projector_path(
        &brokers.bootstrap(),
        &postgres,
        &bare_consumer,
        brokers.pid(),
        Some(false),
    )
    .await
    .context("the projector, publishing off")?;
    report_progress("projector, publishing off", &quiet);

    print_table(&[
        (
            "bare producer (FutureProducer, this process)",
            &bare_producer,
        ),
        ("bare producer + read-back (this process)", &round_trip),
        ("capture (HTTP → `stigmergy capture` → Kafka)", &capture),
        (
            "bare consumer (assign + decode, this process)",
            &bare_consumer,
        ),
        ("projector (`stigmergy project` → PostgreSQL)", &projector),
        (
            "projector, publishing off (`STIGMERGY__KAFKA__PUBLISH=false`)",
            &quiet,
        ),
    ]);
    print_ratios(
        &bare_producer,
        &round_trip,
        &capture,
        &bare_consumer,
        &projector,
    );
    print_projector_ratios("projector, publishing off", &bare_consumer, &quiet);
    println!();
    for (name, measured) in [
        ("bare producer", &bare_producer),
        ("bare producer + read-back", &round_trip),
        ("capture", &capture),
        ("bare consumer", &bare_consumer),
        ("projector", &projector),
        ("projector, publishing off", &quiet),
    ] {
        print_threads(name, measured);
    }
    Ok(())
}

fn report_progress(name: &str, measured: &Measured) {
    eprintln!(
        "{name}: {} events in {:.2} s, {:.0} events/s, {:.1} ms CPU",
        measured.events,
        measured.wall.as_secs_f64(),
        measured.per_second(),
        measured.cpu.as_secs_f64() * 1e3
    );
}

// ---------------------------------------------------------------------------------------------
// Step 1: producing.

/// `MaterialSourced` events only, from a generated stream (one organisation, no hub lots), with
/// ids of their own in every run (the seed is random), so that runs against the same external
/// broker do not write the same event twice.
fn material_stream(events: usize) -> Vec<Event> {
    let zero = Proportions {
        designs_published: 0.0,
        designs_forked: 0.0,
        contributions: 0.0,
        materials_sourced: 1.0,
        batches_fabricated: 0.0,
        shipments_dispatched: 0.0,
        shipments_received: 0.0,
        batches_repaired: 0.0,
        batches_recycled: 0.0,
    };
    let mix = Mix {
        events,
        organizations: 1,
        hub_lots: 0,
        retraction_rate: 0.0,
        proportions: zero,
    };
    let seed = uuid::Uuid::new_v4().as_u64_pair().0;
    stigmergy_testkit::Generator::new(seed, &mix).collect()
}

/// Enqueues the record of `event` as the Kafka log does (serialised, to its stage topic, keyed
/// by its subject, with its headers), waiting while the producer's queue is full; the delivery
/// and the value's size.
async fn enqueue(
    producer: &FutureProducer,
    event: &Event,
) -> anyhow::Result<(DeliveryFuture, usize)> {
    let stage = event
        .event_type()
        .stage()
        .context("an event with no stage")?;
    let value = serde_json::to_vec(event)?;
    let mut record = FutureRecord::to(stage_topic(stage))
        .key(event.subject.as_str())
        .payload(&value)
        // The log's headers, without trace context (capture sends none when tracing is not
        // exported).
        .headers(kafka::record_headers(event, &[]));
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok((delivery, value.len())),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err((failure, _)) => bail!("cannot enqueue a record: {failure}"),
        }
    }
}

async fn delivered(delivery: DeliveryFuture) -> anyhow::Result<()> {
    match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((failure, _))) => bail!("a delivery failed: {failure}"),
        Err(_) => bail!("the producer dropped a delivery"),
    }
}

/// Sends `events`, keeping at most `window` deliveries in flight; then waits for them all. The
/// bytes of the values sent.
async fn produce(
    producer: &FutureProducer,
    events: &[Event],
    window: usize,
) -> anyhow::Result<usize> {
    let mut in_flight = VecDeque::with_capacity(window);
    let mut bytes = 0;
    for event in events {
        let (delivery, size) = enqueue(producer, event).await?;
        in_flight.push_back(delivery);
        bytes += size;
        while in_flight.len() >= window {
            if let Some(oldest) = in_flight.pop_front() {
                delivered(oldest).await?;
            }
        }
    }
    for delivery in in_flight {
        delivered(delivery).await?;
    }
    Ok(bytes)
}

/// This process's CPU in a measurement, from its threads' times (to the nanosecond; none of its
/// threads ends during one), rather than from `/proc/self/stat` (in steps of 10 ms).
fn in_process(mut measured: Measured) -> Measured {
    measured.cpu = measured.threads.iter().map(|(_, cpu)| *cpu).sum();
    measured
}

async fn bare_produce(
    config: &KafkaConfig,
    options: &Options,
    broker: Option<u32>,
) -> anyhow::Result<Measured> {
    let events = material_stream(options.batch + options.events);
    let (warm_up, measured) = events.split_at(options.batch);
    let producer: FutureProducer = config.producer().create()?;
    // The first send connects and starts the idempotent session.
    produce(&producer, warm_up, options.window()).await?;
    let me = std::process::id();
    let mark = CpuMark::take(me, broker)?;
    let started = Instant::now();
    let bytes = produce(&producer, measured, options.window()).await?;
    let mut result = in_process(mark.since(me, broker, measured.len(), started)?);
    result.value_bytes = Some(bytes as f64 / measured.len() as f64);
    result.note = format!("at most {} records undelivered", options.window());
    let _ = producer.flush(Duration::from_secs(10));
    Ok(result)
}

/// A consumer of every partition of the stage topics from their current ends, on a thread of
/// its own, decoding each record and counting them; until `stop`.
fn read_back(
    config: KafkaConfig,
    stop: Arc<AtomicBool>,
    counted: watch::Sender<usize>,
    assigned: oneshot::Sender<()>,
) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(10);
    let group = format!("stigmergy-bench-back-{}", uuid::Uuid::new_v4().simple());
    let consumer: BaseConsumer = config.consumer(&group).create()?;
    let mut assignment = TopicPartitionList::new();
    for (topic, partition) in kafka::partitions_of(&consumer, &STAGE_TOPICS, timeout)? {
        let (_, next) = consumer.fetch_watermarks(&topic, partition, timeout)?;
        assignment.add_partition_offset(&topic, partition, Offset::Offset(next))?;
    }
    consumer.assign(&assignment)?;
    let _ = assigned.send(());
    let mut read = 0;
    while !stop.load(Ordering::SeqCst) {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(message)) => {
                kafka::decode(&message)?;
                read += 1;
                counted.send_replace(read);
            }
            Some(Err(failure)) => bail!("the read-back consumer cannot read: {failure}"),
            None => {}
        }
    }
    Ok(())
}

/// The bare producer held to capture's contract: an event counts as acknowledged once a
/// consumer of the topics (as capture's mirror is) has read it back, and at most `window`
/// events are sent and not yet read back.
async fn bare_round_trip(
    config: &KafkaConfig,
    options: &Options,
    broker: Option<u32>,
) -> anyhow::Result<Measured> {
    let events = material_stream(options.batch + options.events);
    let (warm_up, measured) = events.split_at(options.batch);
    let producer: FutureProducer = config.producer().create()?;
    let stop = Arc::new(AtomicBool::new(false));
    let (counted, mut read) = watch::channel(0);
    let (assigned, consumer_ready) = oneshot::channel();
    let consumer = {
        let (config, stop) = (config.clone(), stop.clone());
        tokio::task::spawn_blocking(move || read_back(config, stop, counted, assigned))
    };
    let outcome = async {
        consumer_ready
            .await
            .context("the read-back consumer did not start")?;
        let window = options.window();
        let mut sent = 0;
        let mut deliveries = Vec::with_capacity(events.len());
        let mut send_all = async |events: &[Event]| -> anyhow::Result<()> {
            for event in events {
                read.wait_for(|&read| sent - read < window).await?;
                deliveries.push(enqueue(&producer, event).await?.0);
                sent += 1;
            }
            let all = sent;
            read.wait_for(|&read| read >= all).await?;
            Ok(())
        };
        send_all(warm_up).await?;
        let me = std::process::id();
        let mark = CpuMark::take(me, broker)?;
        let started = Instant::now();
        send_all(measured).await?;
        let mut result = in_process(mark.since(me, broker, measured.len(), started)?);
        for delivery in deliveries {
            delivered(delivery).await?;
        }
        result.note = format!(
            "at most {} records not read back; the consumer decodes each",
            options.window()
        );
        anyhow::Ok(result)
    }
    .await;
    stop.store(true, Ordering::SeqCst);
    let consumed = consumer.await?;
    let result = outcome?;
    consumed?;
    Ok(result)
}

/// One `POST /v1/events` body: `batch` `MaterialSourced` events, each of a fresh lot.
fn material_request(batch: usize) -> anyhow::Result<Vec<u8>> {
    let events: Vec<Value> = (0..batch)
        .map(|_| {
            submission(
                "MaterialSourced",
                json!({
                    "lotId": common::urn(), "material": "PLA",
                    "quantity": { "amount": 40.0, "unit": "KGM" },
                    "origin": { "name": "Workshop", "country": "DE" },
                    "supplier": { "id": "https://bench.example/suppliers/plastics" },
                    "kgCo2ePerUnit": 2.0, "dataQuality": "primary", "recycledContent": 0.0
                }),
            )
        })
        .collect();
    Ok(serde_json::to_vec(&events)?)
}

/// Starts `stigmergy capture` and waits until it is ready; its base URL.
async fn start_capture(
    bootstrap: &str,
    database: &Database,
    data: &std::path::Path,
) -> anyhow::Result<(Child, String)> {
    let mut child = service("capture", bootstrap, database, data)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start `stigmergy capture`")?;
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let base = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await? {
            if let Some((_, rest)) = line.split_once("is listening on ") {
                return Ok(rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned());
            }
        }
        bail!("capture exited before listening")
    })
    .await
    .context("capture did not listen in time")??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let client = reqwest::Client::builder().no_proxy().build()?;
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(answer) = client.get(format!("{base}/readyz")).send().await
            && answer.status().is_success()
        {
            return Ok((child, base));
        }
        ensure!(Instant::now() < deadline, "capture never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn capture_path(
    bootstrap: &str,
    database: &Database,
    options: &Options,
    broker: Option<u32>,
) -> anyhow::Result<Measured> {
    let data = tempfile::tempdir()?;
    let (mut child, base) = start_capture(bootstrap, database, data.path()).await?;
    let pid = child.id().context("capture has no process id")?;
    let client = reqwest::Client::builder().no_proxy().build()?;
    let key = common::create_organization(&client, &base, "Kafka Bench Works").await?;
    let url = format!("{base}/v1/events");
    // The first append connects and starts the idempotent session.
    post_events(&client, &url, &key, material_request(options.batch)?).await?;

    let requests = options.events.div_ceil(options.batch);
    let mut bodies = VecDeque::with_capacity(requests);
    let mut left = options.events;
    while left > 0 {
        let size = left.min(options.batch);
        bodies.push_back(material_request(size)?);
        left -= size;
    }
    let bodies = Arc::new(Mutex::new(bodies));
    let mark = CpuMark::take(pid, broker)?;
    let started = Instant::now();
    let clients: Vec<_> = (0..options.clients)
        .map(|_| {
            let (client, url, key, bodies) =
                (client.clone(), url.clone(), key.clone(), bodies.clone());
            tokio::spawn(async move {
                loop {
                    let next = bodies.lock().ok().and_then(|mut bodies| bodies.pop_front());
                    let Some(body) = next else {
                        return anyhow::Ok(());
                    };
                    post_events(&client, &url, &key, body).await?;
                }
            })
        })
        .collect();
    for client in clients {
        client.await??;
    }
    let mut result = mark.since(pid, broker, options.events, started)?;
    result.note = format!(
        "{} clients x {} events per request",
        options.clients, options.batch
    );
    child.start_kill()?;
    child.wait().await?;
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// Step 2: consuming.

/// Reads every partition of the stage topics from the beginning up to its high watermark,
/// decoding each record.
async fn bare_consume(config: &KafkaConfig, broker: Option<u32>) -> anyhow::Result<Measured> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let timeout = Duration::from_secs(10);
        let group = format!("stigmergy-bench-bare-{}", uuid::Uuid::new_v4().simple());
        let consumer: BaseConsumer = config.consumer(&group).create()?;
        let partitions = kafka::partitions_of(&consumer, &STAGE_TOPICS, timeout)?;
        let mut high = HashMap::new();
        let mut assignment = TopicPartitionList::new();
        for (topic, partition) in &partitions {
            let (low, next) = consumer.fetch_watermarks(topic, *partition, timeout)?;
            if next > low {
                high.insert((topic.clone(), *partition), next);
                assignment.add_partition_offset(topic, *partition, Offset::Beginning)?;
            }
        }
        let me = std::process::id();
        let mark = CpuMark::take(me, broker)?;
        let started = Instant::now();
        consumer.assign(&assignment)?;
        let mut ids = Vec::new();
        let mut bytes = 0;
        let deadline = started + PATIENCE;
        while !high.is_empty() {
            ensure!(
                Instant::now() < deadline,
                "the bare consumer did not finish"
            );
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    ids.push(kafka::decode(&message)?.event_id);
                    bytes += message.payload_len();
                    let partition = (message.topic().to_owned(), message.partition());
                    if high
                        .get(&partition)
                        .is_some_and(|&next| message.offset() + 1 >= next)
                    {
                        high.remove(&partition);
                    }
                }
                Some(Err(failure)) => bail!("the bare consumer cannot read: {failure}"),
                None => {}
            }
        }
        let records = ids.len();
        let mut result = in_process(mark.since(me, broker, records, started)?);
        let distinct: HashSet<_> = ids.into_iter().collect();
        ensure!(
            records == distinct.len(),
            "the topics hold {records} records of {} events (redeliveries?)",
            distinct.len()
        );
        result.value_bytes = Some(bytes as f64 / records as f64);
        result.note = format!(
            "{records} records in {} partitions, from the beginning",
            partitions.len()
        );
        Ok(result)
    })
    .await?
}

/// How many events the views of `database` hold (none before the projector made its tables).
fn applied(client: &mut postgres::Client) -> Result<i64, postgres::Error> {
    // (The table is named in a second query: one that names a missing table fails to plan.)
    let made: bool = client
        .query_one("SELECT to_regclass('view_events') IS NOT NULL", &[])?
        .get(0);
    if !made {
        return Ok(0);
    }
    client
        .query_one("SELECT count(*) FROM view_events", &[])
        .map(|row| row.get(0))
}

/// The CPU the PostgreSQL backends serving `database` used so far (all but `client`'s own).
fn backends_cpu(
    client: &mut postgres::Client,
    database: &str,
) -> Result<Option<Duration>, postgres::Error> {
    let rows = client.query(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        &[&database],
    )?;
    let cpu = rows
        .iter()
        .map(|row| {
            u32::try_from(row.get::<_, i32>(0))
                .ok()
                .and_then(process_cpu)
        })
        .sum::<Option<Duration>>();
    Ok(cpu)
}

/// Whether the process `pid` still runs (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Whether the projectors of `group` have published the documents of every page they applied:
/// their published offsets (kept under `<group>.published`) add up to the applied ones.
fn published_all(client: &mut postgres::Client, group: &str) -> anyhow::Result<bool> {
    let row = client.query_one(
        "SELECT (SELECT COALESCE(SUM(next_offset), 0) FROM consumer_offsets WHERE consumer_group = $1)
              = (SELECT COALESCE(SUM(next_offset), -1) FROM consumer_offsets WHERE consumer_group = $2)",
        &[&group, &format!("{group}.published")],
    )?;
    Ok(row.try_get(0)?)
}

/// `stigmergy project` into a fresh database in a fresh group, until the views hold every
/// event `consumed` counted and, when it publishes, until it has published the documents of
/// every page; `publish` sets `STIGMERGY__KAFKA__PUBLISH` when given.
async fn projector_path(
    bootstrap: &str,
    postgres: &str,
    consumed: &Measured,
    broker: Option<u32>,
    publish: Option<bool>,
) -> anyhow::Result<Measured> {
    let database = Database::create(postgres, "views")?;
    let data = tempfile::tempdir()?;
    let group = format!("stigmergy-bench-views-{}", uuid::Uuid::new_v4().simple());
    let mut command = service("project", bootstrap, &database, data.path());
    command
        .args(["--group", &group])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(publish) = publish {
        command.env("STIGMERGY__KAFKA__PUBLISH", publish.to_string());
    }
    let broker_before = broker.and_then(process_cpu);
    let started = Instant::now();
    let mut child = command
        .spawn()
        .context("cannot start `stigmergy project`")?;
    let pid = child.id().context("the projector has no process id")?;
    // When it is given its partitions, from its log.
    let assigned = Arc::new(Mutex::new(None::<Instant>));
    let mut lines = BufReader::new(child.stderr.take().context("no stderr")?).lines();
    let noted = assigned.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("partitions assigned")
                && let Ok(mut assigned) = noted.lock()
            {
                assigned.get_or_insert_with(Instant::now);
            } else if !line.contains("INFO") {
                eprintln!("projector: {line}");
            }
        }
    });
    let wanted = i64::try_from(consumed.events)?;
    let url = database.url.clone();
    let name = database.name.clone();
    let publishing = publish != Some(false);
    let (first, views, done, threads, cpu, postgres_cpu) = tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&url, NoTls)?;
        let mut first = None;
        let mut views = None;
        let deadline = started + PATIENCE;
        loop {
            let held = applied(&mut client)?;
            if held > 0 {
                first.get_or_insert_with(Instant::now);
            }
            if held >= wanted {
                views.get_or_insert_with(Instant::now);
                if !publishing || published_all(&mut client, &group)? {
                    break;
                }
            }
            ensure!(alive(pid), "the projector exited (see its log above)");
            ensure!(
                Instant::now() < deadline,
                "the views hold {held} of {wanted} events after {PATIENCE:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let done = Instant::now();
        let threads = ThreadTimes::of(pid);
        let cpu = process_cpu(pid).context("cannot read the projector's CPU")?;
        let postgres_cpu = backends_cpu(&mut client, &name)?;
        anyhow::Ok((first, views, done, threads, cpu, postgres_cpu))
    })
    .await??;
    let broker_after = broker.and_then(process_cpu);
    child.start_kill()?;
    child.wait().await?;
    let assigned = assigned.lock().ok().and_then(|at| *at);
    let since = |at: Option<Instant>| {
        at.map_or_else(
            || "?".to_owned(),
            |at| format!("{:.2}", at.duration_since(started).as_secs_f64()),
        )
    };
    Ok(Measured {
        events: consumed.events,
        wall: done.duration_since(started),
        cpu,
        broker_cpu: broker_after
            .zip(broker_before)
            .map(|(after, before)| after.saturating_sub(before)),
        postgres_cpu,
        value_bytes: None,
        threads: threads.since(&ThreadTimes::empty(), &[], thread_group),
        note: format!(
            "from process start: partitions assigned at {} s, first event in the views at {} s, \
             every event at {} s{}",
            since(assigned),
            since(first),
            since(views),
            if publishing {
                ", every document published at the end"
            } else {
                ""
            }
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// The report.

fn micros(measured: &Measured, cpu: Option<Duration>) -> String {
    cpu.map_or_else(
        || "–".to_owned(),
        |cpu| format!("{:.0}", measured.micros_per_event(cpu)),
    )
}

fn print_table(rows: &[(&str, &Measured)]) {
    println!();
    println!(
        "| path | events | seconds | events/s | process CPU ms | CPU µs/event | broker CPU µs/event | PostgreSQL CPU µs/event | value bytes | notes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, measured) in rows {
        println!(
            "| {name} | {} | {:.2} | {:.0} | {:.0} | {} | {} | {} | {} | {} |",
            measured.events,
            measured.wall.as_secs_f64(),
            measured.per_second(),
            measured.cpu.as_secs_f64() * 1e3,
            micros(measured, Some(measured.cpu)),
            micros(measured, measured.broker_cpu),
            micros(measured, measured.postgres_cpu),
            measured
                .value_bytes
                .map_or_else(|| "–".to_owned(), |bytes| format!("{bytes:.0}")),
            measured.note,
        );
    }
    println!();
}

fn print_ratios(
    bare: &Measured,
    round_trip: &Measured,
    capture: &Measured,
    consumer: &Measured,
    projector: &Measured,
) {
    print_capture_ratios(bare, round_trip, capture);
    print_projector_ratios("projector", consumer, projector);
}

/// Capture's CPU per event and throughput, each as a ratio to the bare producer's.
fn capture_ratios(bare: &Measured, capture: &Measured) -> (f64, f64) {
    let cpu = |m: &Measured| m.micros_per_event(m.cpu);
    (
        cpu(capture) / cpu(bare),
        capture.per_second() / bare.per_second(),
    )
}

/// Prints the ratios of every round, and gives the round with the median throughput ratio.
fn median_round(mut rounds: Vec<(Measured, Measured)>) -> (Measured, Measured) {
    let ratios: Vec<(f64, f64)> = rounds
        .iter()
        .map(|(bare, capture)| capture_ratios(bare, capture))
        .collect();
    let mut order: Vec<usize> = (0..rounds.len()).collect();
    order.sort_by(|&a, &b| ratios[a].1.total_cmp(&ratios[b].1));
    let median = order[order.len() / 2];
    let listed = |pick: fn(&(f64, f64)) -> f64| {
        ratios
            .iter()
            .map(|ratio| format!("{:.2}x", pick(ratio)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!();
    println!(
        "capture / bare producer by round: events/s {}; CPU per event {}; shown below: round {} \
         (the median by events/s)",
        listed(|ratio| ratio.1),
        listed(|ratio| ratio.0),
        median + 1
    );
    rounds.swap_remove(median)
}

fn print_capture_ratios(bare: &Measured, round_trip: &Measured, capture: &Measured) {
    let cpu = |m: &Measured| m.micros_per_event(m.cpu);
    let (cpu_ratio, rate_ratio) = capture_ratios(bare, capture);
    println!(
        "capture / bare producer, CPU per event: {cpu_ratio:.2}x (target at most 2x: {})",
        if cpu_ratio <= 2.0 { "met" } else { "NOT met" }
    );
    println!(
        "capture / bare producer, events/s:      {rate_ratio:.2}x (target at least 0.7x: {})",
        if rate_ratio >= 0.7 { "met" } else { "NOT met" }
    );
    println!(
        "capture / bare producer + read-back:    CPU per event {:.2}x, events/s {:.2}x",
        cpu(capture) / cpu(round_trip),
        capture.per_second() / round_trip.per_second(),
    );
}

fn print_projector_ratios(name: &str, consumer: &Measured, projector: &Measured) {
    let cpu = |m: &Measured| m.micros_per_event(m.cpu);
    let with_postgres = (projector.cpu + projector.postgres_cpu.unwrap_or_default()).as_secs_f64()
        * 1e6
        / projector.events as f64;
    println!(
        "{name} / bare consumer: events/s {:.3}x; CPU per event {:.1}x (the projector's \
         process), {:.1}x (with its PostgreSQL backends)",
        projector.per_second() / consumer.per_second(),
        cpu(projector) / cpu(consumer),
        with_postgres / cpu(consumer),
    );
}

fn print_threads(name: &str, measured: &Measured) {
    let mut threads = measured.threads.clone();
    threads.sort_by_key(|(_, cpu)| std::cmp::Reverse(*cpu));
    let listed: Vec<String> = threads
        .iter()
        .filter(|(_, cpu)| *cpu >= Duration::from_millis(1))
        .map(|(group, cpu)| {
            format!(
                "{group} {:.0} ms ({:.0} µs/event)",
                cpu.as_secs_f64() * 1e3,
                measured.micros_per_event(*cpu)
            )
        })
        .collect();
    println!("{name}, CPU by thread: {}", listed.join(", "));
}
