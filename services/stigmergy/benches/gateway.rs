//! The read side of the gateway under load, on the real all-in-one application (embedded log and
//! embedded SQLite views, defaults and `STIGMERGY__…` environment variables as `stigmergy serve`
//! reads them) started in this process on a fresh temporary directory, with the demo scenario
//! loaded through the public API and projected into the views before anything is measured.
//!
//! A. QUERY (`--only query`): the provenance and footprint of one demo batch in one GraphQL
//!    request (`POST /graphql`: the batch, its upstream graph, its journey, its footprint and its
//!    contributions), from 20 concurrent clients, each a loop of sequential requests over its
//!    own keep-alive connection, for 10 s after 2 s of warm-up. Then, with the same clients and
//!    timing, the baseline: the same provenance fetched through the REST API, one
//!    `GET /v1/events/{eventId}` after the other for every event in the timeline of the batch and
//!    of every resource upstream of it (the event ids are collected once beforehand with one
//!    GraphQL query). Reported: requests per second and latency p50/p99/max of one GraphQL
//!    request, of one REST provenance fetch (all its GETs) and of one single GET, and the ratio
//!    GraphQL requests/s ÷ REST provenance fetches/s.
//!
//! B. SUBSCRIBE (`--only subscribe`): delivery latency of live events to 1,000 concurrent
//!    WebSocket subscribers (`ws://…/graphql/ws`, sub-protocol `graphql-transport-ws`, the
//!    subscription `events(after: <log head>)`), opened 50 at a time, while a producer posts
//!    1,000 events/s for 10 s (10 events every 10 ms, each request a JSON array of events that
//!    pass every capture rule, to `POST /v1/events`). Latency is the instant a subscriber
//!    received an event minus the instant the POST carrying it was sent (and, also reported,
//!    minus the instant that POST was acknowledged). Every subscriber must receive every
//!    acknowledged event exactly once: deliveries expected and received, missing and duplicated
//!    are reported, and so is every subscription the server ended early (an `error` or
//!    `complete` message, or a `next` carrying errors, such as a subscriber left too far behind).
//!    Subscribers are stopped once each has every event, or when deliveries stall for 5 s.
//!
//! Latencies are recorded in HDR histograms, in microseconds. The CPU each group of threads used
//! during each measurement is reported too (from `/proc`, Linux only): the application runs on a
//! runtime whose threads are named `stigmergy-app`, the bench's clients on `bench-client`; on a
//! small machine both share the cores, so read the figures with that in mind.
//!
//! Run with `cargo bench -p stigmergy --bench gateway`. Options (after `--`):
//! `--only query|subscribe` for one part, `--quick` (or `STIGMERGY_BENCH_QUICK=1`) for short
//! durations (1 s warm-up) and 100 subscribers, `--clients N` (part A, default 20), `--seconds N` (measured
//! duration of each part, default 10, quick 3), `--subscribers N` (part B, default 1000, quick
//! 100), `--rate N` (part B, events per second, default 1000), `--item IRI` (part A, default the
//! demo's first batch). Part B holds two sockets per subscriber in this process (the client's and
//! the server's): it raises the soft open-file limit to the hard one when needed (with util-linux
//! `prlimit`) and otherwise stops and says so; `ulimit -n 4096` is enough for 1,000
//! subscribers. The output is plain text.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

mod common;
use common::{
    APP_THREADS, BENCH_THREADS, OPERATOR_TOKEN, ThreadTimes, create_organization, log_head,
    post_events, start_app, submission, urn,
};

/// The last resource the demo creates: once the views know it, they hold the whole demo.
const LAST_DEMO_BATCH: &str = "https://valldaura.example/batches/open-stool-2025-002";

/// Part A's request: provenance and footprint of one item.
const PROVENANCE_QUERY: &str = "query($id: String!) { resource(id: $id) { id kind name \
    quantity { amount unit } upstream(depth: 10) { nodes { id depth } edges { from to kind \
    amount unit } truncated } journey { shipment shipper consignee dispatchedAt receivedAt } \
    footprint { id version kgCo2ePerUnit breakdown { materials fabrication transport } \
    recycledContent primaryDataShare method } contributions { method shares { agent share } } } }";

/// Part B's subscription.
const EVENTS_SUBSCRIPTION: &str = "subscription($after: String) { events(after: $after) { \
    cursor node { eventId type recordedAt } } }";

/// Part B: WebSocket connections opened at the same time.
const CONNECT_CONCURRENCY: usize = 50;
/// Part B: POST requests of the producer in flight at most (beyond, it falls behind its rate).
const MAX_POSTS_IN_FLIGHT: usize = 100;
/// Part B: how long deliveries may stall before the subscribers are stopped.
const STALL: Duration = Duration::from_secs(5);
/// Part B: how long after the producer's last event the subscribers are stopped at the latest.
const MAX_DRAIN: Duration = Duration::from_secs(120);

struct Options {
    quick: bool,
    only: Option<String>,
    clients: usize,
    subscribers: usize,
    rate: usize,
    measured: Duration,
    warm_up: Duration,
    item: String,
}

impl Options {
    fn parse(arguments: &common::Arguments) -> anyhow::Result<Self> {
        let quick = arguments.quick();
        let (value_of, positive) = (
            |flag: &str| arguments.value_of(flag),
            |flag: &str| arguments.positive(flag),
        );
        let seconds = positive("--seconds")?.unwrap_or(if quick { 3 } else { 10 });
        Ok(Self {
            quick,
            only: value_of("--only")?,
            clients: positive("--clients")?.unwrap_or(20),
            subscribers: positive("--subscribers")?.unwrap_or(if quick { 100 } else { 1000 }),
            rate: positive("--rate")?.unwrap_or(1000),
            measured: Duration::from_secs(u64::try_from(seconds)?),
            warm_up: Duration::from_secs(if quick { 1 } else { 2 }),
            item: value_of("--item")?.unwrap_or_else(|| stigmergy::demo::DEMO_BATCH.to_owned()),
        })
    }
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; the flags above are the ones that mean something here.
    let options = Options::parse(&common::Arguments::from_env())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name(BENCH_THREADS)
        .enable_all()
        .build()?;
    runtime.block_on(run(options))
}

async fn run(options: Options) -> anyhow::Result<()> {
    let wanted = |part: &str| {
        options
            .only
            .as_deref()
            .is_none_or(|only| only.eq_ignore_ascii_case(part))
    };
    let (query, subscribe) = (wanted("query"), wanted("subscribe"));
    ensure!(query || subscribe, "--only takes query or subscribe");
    if subscribe {
        // Two sockets per subscriber (both ends live in this process), and some to spare.
        ensure_open_files(2 * options.subscribers as u64 + 512)?;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "stigmergy gateway benchmark{}: {cores} cores, embedded log and views in {}",
        if options.quick { " (quick)" } else { "" },
        std::env::temp_dir().display()
    );

    let client = http_client()?;
    let app = start_app(&client, 1000).await?;
    let demo = stigmergy::demo::load(&app.base, OPERATOR_TOKEN)
        .await
        .context("loading the demo scenario")?;
    let started = Instant::now();
    wait_until_projected(
        &client,
        &app.base,
        &[options.item.as_str(), LAST_DEMO_BATCH],
    )
    .await?;
    println!(
        "demo loaded: {} events from {} organisations, projected into the views {:.0} ms later",
        demo.recorded,
        demo.organizations.len(),
        started.elapsed().as_secs_f64() * 1e3
    );

    if query {
        part_a(&options, &app.base).await?;
    }
    if subscribe {
        part_b(&options, &app.base).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The application.

fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().no_proxy().build()?)
}

/// One GraphQL request; its `data`, or the errors as a failure.
async fn graphql(
    client: &reqwest::Client,
    base: &str,
    query: &str,
    variables: Value,
) -> anyhow::Result<Value> {
    let response = client
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await?;
    let status = response.status();
    let mut body: Value = response
        .json()
        .await
        .context("POST /graphql answered something other than JSON")?;
    ensure!(
        status == StatusCode::OK,
        "POST /graphql answered {status}: {body}"
    );
    if let Some(errors) = body.get("errors") {
        bail!("POST /graphql answered errors: {errors}");
    }
    Ok(body["data"].take())
}

/// Waits until the views know every resource of `ids` (the projector follows the log).
async fn wait_until_projected(
    client: &reqwest::Client,
    base: &str,
    ids: &[&str],
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in ids {
        loop {
            let data = graphql(
                client,
                base,
                "query($id: String!) { resource(id: $id) { id } }",
                json!({ "id": id }),
            )
            .await?;
            if !data["resource"].is_null() {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "the views never showed {id} (is it a demo resource?)"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    // Three significant figures, resized as needed.
    Ok(Histogram::new(3)?)
}

/// `p50 … p99 … max …` of a histogram of microseconds, in milliseconds.
fn latency_columns(histogram: &Histogram<u64>) -> String {
    let ms = |us: u64| us as f64 / 1e3;
    format!(
        "{:>9.2} {:>9.2} {:>9.2}",
        ms(histogram.value_at_quantile(0.50)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.max())
    )
}

// ---------------------------------------------------------------------------------------------
// Where the CPU goes: the CPU time of each thread of this process, from `/proc` (Linux only;
// elsewhere nothing is reported).

/// The groups the CPU is reported in.
const CPU_GROUPS: &[&str] = &[
    "http workers",
    "app runtime",
    "blocking pool",
    "log writer",
    "bench",
];

/// The group of a thread, by its name; others are reported by their own name.
fn cpu_group(name: &str) -> Option<&'static str> {
    if name.starts_with("actix-server wo") {
        Some("http workers")
    } else if name == APP_THREADS {
        Some("app runtime")
    } else if name.starts_with("tokio-runtime-w") || name == "tokio-rt-worker" {
        // The blocking pools of the HTTP workers' runtimes.
        Some("blocking pool")
    } else if name.starts_with("event-log-writ") {
        Some("log writer")
    } else if name == BENCH_THREADS {
        Some("bench")
    } else {
        None
    }
}

fn print_cpu(label: &str, cpu: &[(String, Duration)], wall: Duration) {
    if cpu.is_empty() {
        return;
    }
    let wall = wall.as_secs_f64();
    let total: f64 = cpu.iter().map(|(_, used)| used.as_secs_f64()).sum();
    let parts: Vec<String> = cpu
        .iter()
        .map(|(group, used)| (group, used.as_secs_f64() / wall))
        .filter(|(_, cores)| *cores >= 0.005)
        .map(|(group, cores)| format!("{group} {cores:.2}"))
        .collect();
    println!("  {label:<10} {:.2} = {}", total / wall, parts.join(" + "));
}

// ---------------------------------------------------------------------------------------------
// A. QUERY: one GraphQL request against a REST provenance fetch.

/// What each client of part A does, over and over.
enum Workload {
    /// One `POST /graphql` of [`PROVENANCE_QUERY`].
    GraphQl { url: String, body: Vec<u8> },
    /// `GET /v1/events/{id}` of every event of the provenance, one after the other.
    Rest { urls: Vec<String> },
}

/// What the clients of one workload measured.
struct Load {
    /// Per unit of work (one GraphQL request, or one whole REST provenance fetch), in µs.
    work: Histogram<u64>,
    /// Per single GET of the REST workload, in µs.
    gets: Histogram<u64>,
    window: Duration,
    cpu: Vec<(String, Duration)>,
}

impl Load {
    fn per_second(histogram: &Histogram<u64>, window: Duration) -> f64 {
        histogram.len() as f64 / window.as_secs_f64()
    }
}

async fn graphql_once(client: &reqwest::Client, url: &str, body: Vec<u8>) -> anyhow::Result<()> {
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let answer = response.bytes().await?;
    ensure!(
        status == StatusCode::OK && !answer.windows(9).any(|w| w == b"\"errors\":"),
        "POST /graphql answered {status}: {}",
        String::from_utf8_lossy(&answer)
    );
    Ok(())
}

async fn get_once(client: &reqwest::Client, url: &str) -> anyhow::Result<usize> {
    let response = client.get(url).send().await?;
    let status = response.status();
    let answer = response.bytes().await?;
    ensure!(
        status == StatusCode::OK,
        "GET {url} answered {status}: {}",
        String::from_utf8_lossy(&answer)
    );
    Ok(answer.len())
}

/// One client: sequential requests over its own keep-alive connection until `until`, recording
/// those that start at or after `measure_from`.
async fn client_loop(
    workload: Arc<Workload>,
    measure_from: Instant,
    until: Instant,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>)> {
    let client = http_client()?;
    let mut work = histogram()?;
    let mut gets = histogram()?;
    loop {
        let started = Instant::now();
        if started >= until {
            break;
        }
        let measured = started >= measure_from;
        match &*workload {
            Workload::GraphQl { url, body } => graphql_once(&client, url, body.clone()).await?,
            Workload::Rest { urls } => {
                for url in urls {
                    let get_started = Instant::now();
                    get_once(&client, url).await?;
                    if measured {
                        gets.record(micros(get_started.elapsed()))?;
                    }
                }
            }
        }
        if measured {
            work.record(micros(started.elapsed()))?;
        }
    }
    Ok((work, gets))
}

async fn load(workload: Workload, options: &Options) -> anyhow::Result<Load> {
    let workload = Arc::new(workload);
    let measure_from = Instant::now() + options.warm_up;
    let until = measure_from + options.measured;
    let clients: Vec<_> = (0..options.clients)
        .map(|_| tokio::spawn(client_loop(workload.clone(), measure_from, until)))
        .collect();
    tokio::time::sleep_until(measure_from.into()).await;
    let threads = ThreadTimes::now();
    tokio::time::sleep_until(until.into()).await;
    let cpu = ThreadTimes::now().since(&threads, CPU_GROUPS, cpu_group);
    let mut work = histogram()?;
    let mut gets = histogram()?;
    for client in clients {
        let (client_work, client_gets) = client.await??;
        work.add(client_work)?;
        gets.add(client_gets)?;
    }
    Ok(Load {
        work,
        gets,
        window: options.measured,
        cpu,
    })
}

/// The ids of the events a REST client needs for the provenance of `item`: every event in the
/// timeline of the item and of every resource upstream of it, each once, in the order first met;
/// with the number of resources and of timeline entries.
async fn provenance_event_ids(
    client: &reqwest::Client,
    base: &str,
    item: &str,
) -> anyhow::Result<(Vec<String>, usize, usize)> {
    let data = graphql(
        client,
        base,
        "query($id: String!) { resource(id: $id) { upstream(depth: 10) { nodes { id } } } }",
        json!({ "id": item }),
    )
    .await?;
    let mut resources = vec![item.to_owned()];
    for node in data["resource"]["upstream"]["nodes"]
        .as_array()
        .context("no upstream nodes in the answer")?
    {
        let id = node["id"].as_str().context("an upstream node without id")?;
        if !resources.iter().any(|known| known == id) {
            resources.push(id.to_owned());
        }
    }
    // One query, one alias per resource.
    let parameters: Vec<String> = (0..resources.len())
        .map(|i| format!("$r{i}: String!"))
        .collect();
    let selections: Vec<String> = (0..resources.len())
        .map(|i| format!("r{i}: resource(id: $r{i}) {{ timeline {{ eventId }} }}"))
        .collect();
    let query = format!(
        "query({}) {{ {} }}",
        parameters.join(", "),
        selections.join(" ")
    );
    let variables: serde_json::Map<String, Value> = resources
        .iter()
        .enumerate()
        .map(|(i, id)| (format!("r{i}"), Value::from(id.as_str())))
        .collect();
    let data = graphql(client, base, &query, Value::Object(variables)).await?;
    let mut seen = HashSet::new();
    let mut ids = Vec::new();
    let mut entries = 0;
    for (i, resource) in resources.iter().enumerate() {
        for entry in data[format!("r{i}")]["timeline"]
            .as_array()
            .with_context(|| format!("no timeline for {resource}"))?
        {
            entries += 1;
            let id = entry["eventId"]
                .as_str()
                .context("a timeline entry without eventId")?;
            if seen.insert(id.to_owned()) {
                ids.push(id.to_owned());
            }
        }
    }
    Ok((ids, resources.len(), entries))
}

async fn part_a(options: &Options, base: &str) -> anyhow::Result<()> {
    let client = http_client()?;
    let item = options.item.as_str();

    // What one GraphQL request answers, checked once.
    let request = json!({ "query": PROVENANCE_QUERY, "variables": { "id": item } });
    let body = serde_json::to_vec(&request)?;
    let answer = client
        .post(format!("{base}/graphql"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.clone())
        .send()
        .await?
        .bytes()
        .await?;
    let parsed: Value = serde_json::from_slice(&answer)?;
    if let Some(errors) = parsed.get("errors") {
        bail!("the provenance query answered errors: {errors}");
    }
    let resource = &parsed["data"]["resource"];
    ensure!(!resource.is_null(), "the views do not know {item}");
    let count = |value: &Value| value.as_array().map_or(0, Vec::len);

    // What a REST client fetches instead.
    let (event_ids, resources, entries) = provenance_event_ids(&client, base, item).await?;
    ensure!(
        !event_ids.is_empty(),
        "no event in the provenance of {item}"
    );
    let urls: Vec<String> = event_ids
        .iter()
        .map(|id| format!("{base}/v1/events/{id}"))
        .collect();
    let mut rest_bytes = 0;
    for url in &urls {
        rest_bytes += get_once(&client, url).await?;
    }

    println!();
    println!(
        "A. QUERY: provenance + footprint of {item} ({}), {} clients, {} s warm-up, {} s measured",
        resource["kind"].as_str().unwrap_or("?"),
        options.clients,
        options.warm_up.as_secs(),
        options.measured.as_secs()
    );
    println!(
        "  GraphQL answer: {} bytes; {} upstream nodes, {} edges{}, {} journey legs, \
         footprint {} kgCO2e per unit, {} contribution shares",
        answer.len(),
        count(&resource["upstream"]["nodes"]),
        count(&resource["upstream"]["edges"]),
        if resource["upstream"]["truncated"] == Value::Bool(true) {
            " (truncated)"
        } else {
            ""
        },
        count(&resource["journey"]),
        resource["footprint"]["kgCo2ePerUnit"]
            .as_f64()
            .map_or("no".to_owned(), |kg| format!("{kg:.3}")),
        count(&resource["contributions"]["shares"])
    );
    println!(
        "  REST provenance fetch: {} GETs of /v1/events/{{id}}, {rest_bytes} bytes in all (the \
         distinct events of {entries} timeline entries over {resources} resources)",
        urls.len()
    );

    eprintln!("A. GraphQL x{} ...", options.clients);
    let graphql_load = load(
        Workload::GraphQl {
            url: format!("{base}/graphql"),
            body,
        },
        options,
    )
    .await?;
    eprintln!("A. REST x{} ...", options.clients);
    let rest_load = load(Workload::Rest { urls: urls.clone() }, options).await?;

    println!();
    println!(
        "  {:<34} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "per", "count", "per s", "p50 ms", "p99 ms", "max ms"
    );
    let row = |label: &str, histogram: &Histogram<u64>, window: Duration| {
        println!(
            "  {label:<34} {:>9} {:>9.1} {}",
            histogram.len(),
            Load::per_second(histogram, window),
            latency_columns(histogram)
        );
    };
    row("GraphQL request", &graphql_load.work, graphql_load.window);
    row(
        &format!("REST provenance fetch ({} GETs)", urls.len()),
        &rest_load.work,
        rest_load.window,
    );
    row("  single GET", &rest_load.gets, rest_load.window);
    let graphql_rate = Load::per_second(&graphql_load.work, graphql_load.window);
    let rest_rate = Load::per_second(&rest_load.work, rest_load.window);
    println!();
    println!(
        "  GraphQL requests/s / REST provenance fetches/s = {:.2}",
        graphql_rate / rest_rate
    );
    println!();
    println!("  CPU used while measured, in cores (CPU seconds / wall seconds):");
    print_cpu("GraphQL", &graphql_load.cpu, graphql_load.window);
    print_cpu("REST", &rest_load.cpu, rest_load.window);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// B. SUBSCRIBE: live events to many WebSocket subscribers.

/// The open-file limit of this process (soft, hard), from `/proc` (Linux only).
fn open_file_limit() -> Option<(u64, String)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    let soft = fields.next()?;
    let hard = fields.next()?.to_owned();
    let soft = if soft == "unlimited" {
        u64::MAX
    } else {
        soft.parse().ok()?
    };
    Some((soft, hard))
}

/// Makes sure this process may open `needed` files: raises the soft limit to the hard one with
/// util-linux `prlimit` when it is lower (no unsafe code here), or says what to do.
fn ensure_open_files(needed: u64) -> anyhow::Result<()> {
    let Some((soft, hard)) = open_file_limit() else {
        return Ok(());
    };
    if soft >= needed {
        return Ok(());
    }
    let raised = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={hard}:"))
        .status()
        .is_ok_and(|status| status.success());
    let now = open_file_limit().map_or(soft, |(soft, _)| soft);
    ensure!(
        now >= needed,
        "{needed} open files are needed but the limit is {now} (hard {hard}{}); run \
         `ulimit -n {needed}` in the shell first, or ask for fewer --subscribers",
        if raised { "" } else { ", prlimit failed" }
    );
    eprintln!("raised the open-file limit from {soft} to {now}");
    Ok(())
}

/// The producer's events: one organisation with one design; every request is self-contained
/// (two material lots, a batch of the design made from both, a contribution to the batch, and
/// lots to fill), so that requests in flight together cannot depend on each other's order.
struct Producer {
    design: String,
}

impl Producer {
    fn new() -> Self {
        Self { design: urn() }
    }

    fn design_published(&self) -> Value {
        submission(
            "DesignPublished",
            json!({
                "designId": self.design, "name": "Bench stool", "licence": "CERN-OHL-S-2.0",
                "sourceUri": "https://benchstool.example/src", "version": "1.0.0"
            }),
        )
    }

    fn lot(lot: &str) -> Value {
        submission(
            "MaterialSourced",
            json!({
                "lotId": lot, "material": "Birch plywood 12 mm",
                "quantity": { "amount": 100, "unit": "KGM" },
                "origin": { "name": "Koskisen mill, Järvelä", "country": "FI" },
                "supplier": { "id": "https://koskisen.example", "name": "Koskisen" },
                "kgCo2ePerUnit": 0.68, "dataQuality": "secondary", "recycledContent": 0.0
            }),
        )
    }

    fn request(&self, events: usize) -> Vec<Value> {
        let mut request = Vec::with_capacity(events);
        while request.len() < events {
            let left = events - request.len();
            if left < 3 {
                request.push(Self::lot(&urn()));
                continue;
            }
            let lots = [urn(), urn()];
            let batch = urn();
            request.push(Self::lot(&lots[0]));
            request.push(Self::lot(&lots[1]));
            request.push(submission(
                "BatchFabricated",
                json!({
                    "batchId": batch, "designId": self.design,
                    "quantity": { "amount": 20, "unit": "H87" },
                    "facility": { "name": "Valldaura Microfactory, Cerdanyola", "country": "ES" },
                    "inputs": [
                        { "resource": lots[0], "quantity": { "amount": 6, "unit": "KGM" } },
                        { "resource": lots[1], "quantity": { "amount": 1500, "unit": "GRM" } }
                    ],
                    "energy": { "amount": 8.5, "unit": "KWH" }
                }),
            ));
            if left >= 4 {
                request.push(submission(
                    "ContributionRecorded",
                    json!({
                        "target": batch,
                        "contributor": { "id": "https://valldaura.example/people/dani", "name": "Dani Vidal" },
                        "kind": "fabrication", "effort": { "amount": 1.5, "unit": "hours" }
                    }),
                ));
            }
        }
        request
    }
}

type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The `type` of a graphql-transport-ws message.
fn message_type(message: &Value) -> &str {
    message["type"].as_str().unwrap_or_default()
}

/// Opens a WebSocket, speaks graphql-transport-ws up to the acknowledgement and subscribes to the
/// events after `head`.
async fn subscribe(url: &str, head: u64) -> anyhow::Result<WebSocket> {
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, None, true)
        .await
        .with_context(|| format!("cannot open a WebSocket to {url}"))?;
    socket
        .send(Message::text(r#"{"type":"connection_init"}"#))
        .await?;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .context("no connection_ack within 10 s")?;
        match message {
            Some(Ok(Message::Text(text))) => {
                let message: Value = serde_json::from_str(text.as_str())?;
                match message_type(&message) {
                    "connection_ack" => break,
                    "ping" => socket.send(Message::text(r#"{"type":"pong"}"#)).await?,
                    _ => bail!("expected connection_ack, got {message}"),
                }
            }
            Some(Ok(Message::Close(frame))) => bail!("closed before connection_ack: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(failure)) => return Err(failure.into()),
            None => bail!("closed before connection_ack"),
        }
    }
    let subscribe = json!({
        "id": "1", "type": "subscribe",
        "payload": { "query": EVENTS_SUBSCRIPTION, "variables": { "after": head.to_string() } }
    });
    socket.send(Message::text(subscribe.to_string())).await?;
    Ok(socket)
}

/// Progress of all subscribers, for the coordinator to know when to stop them.
#[derive(Default)]
struct Progress {
    deliveries: AtomicU64,
    /// Subscribers that received every event.
    complete: AtomicUsize,
}

/// What one subscriber received.
struct Deliveries {
    /// (event index, microseconds since the epoch) of every delivery of a known event.
    received: Vec<(u32, u32)>,
    seen: Vec<bool>,
    distinct: usize,
    duplicates: usize,
    /// `next` messages with an event id the producer did not send.
    unknown: usize,
    /// `error` messages, and `next` messages carrying errors.
    errors: Vec<String>,
    /// Why it stopped before being told to, if it did.
    ended: Option<String>,
}

impl Deliveries {
    fn record(&mut self, index: u32, at: u32, total: usize, progress: &Progress) {
        self.received.push((index, at));
        progress.deliveries.fetch_add(1, Ordering::Relaxed);
        let seen = &mut self.seen[index as usize];
        if *seen {
            self.duplicates += 1;
        } else {
            *seen = true;
            self.distinct += 1;
            if self.distinct == total {
                progress.complete.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The event id of a `next` message, without parsing it all (a few hundred thousand of these
/// arrive each second); `None` for anything else, which is then parsed.
fn next_event_id(text: &str) -> Option<&str> {
    const KEY: &str = r#""eventId":""#;
    if !text.contains(r#""type":"next""#) || text.contains(r#""errors""#) {
        return None;
    }
    let start = text.find(KEY)? + KEY.len();
    let length = text[start..].find('"')?;
    Some(&text[start..start + length])
}

struct Subscriber {
    ids: Arc<HashMap<String, u32>>,
    total: usize,
    epoch: Instant,
    progress: Arc<Progress>,
}

impl Subscriber {
    /// Receives until told to stop, or until the server ends the subscription.
    async fn receive(
        &self,
        mut socket: WebSocket,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Deliveries> {
        let mut deliveries = Deliveries {
            received: Vec::with_capacity(self.total),
            seen: vec![false; self.total],
            distinct: 0,
            duplicates: 0,
            unknown: 0,
            errors: Vec::new(),
            ended: None,
        };
        loop {
            let message = tokio::select! {
                message = socket.next() => message,
                _ = stop.changed() => break,
            };
            let at = u32::try_from(micros(self.epoch.elapsed())).unwrap_or(u32::MAX);
            let text = match message {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => {
                    deliveries.ended = Some(format!("closed by the server: {frame:?}"));
                    break;
                }
                // Pings are answered by tungstenite.
                Some(Ok(_)) => continue,
                Some(Err(failure)) => {
                    deliveries.ended = Some(format!("WebSocket failed: {failure}"));
                    break;
                }
                None => {
                    deliveries.ended = Some("closed by the server".to_owned());
                    break;
                }
            };
            if let Some(id) = next_event_id(text.as_str()) {
                self.delivered(&mut deliveries, id, at);
                continue;
            }
            let message: Value = match serde_json::from_str(text.as_str()) {
                Ok(message) => message,
                Err(failure) => {
                    deliveries.errors.push(format!(
                        "a message that is not JSON ({failure}): {}",
                        text.as_str()
                    ));
                    continue;
                }
            };
            match message_type(&message) {
                "next" => {
                    let payload = &message["payload"];
                    if let Some(errors) = payload.get("errors") {
                        deliveries.errors.push(errors.to_string());
                    }
                    match payload["data"]["events"]["node"]["eventId"].as_str() {
                        Some(id) => self.delivered(&mut deliveries, id, at),
                        None if payload.get("errors").is_none() => deliveries.unknown += 1,
                        None => {}
                    }
                }
                "ping" => socket.send(Message::text(r#"{"type":"pong"}"#)).await?,
                "pong" | "connection_ack" => {}
                "error" => {
                    deliveries.errors.push(message["payload"].to_string());
                    deliveries.ended = Some("error message".to_owned());
                    break;
                }
                "complete" => {
                    deliveries.ended = Some("completed by the server".to_owned());
                    break;
                }
                _ => deliveries
                    .errors
                    .push(format!("unexpected message {message}")),
            }
        }
        // The server may be gone already; nothing more to learn from it.
        let _ = socket.close(None).await;
        Ok(deliveries)
    }

    fn delivered(&self, deliveries: &mut Deliveries, id: &str, at: u32) {
        match self.ids.get(id) {
            Some(&index) => deliveries.record(index, at, self.total, &self.progress),
            None => deliveries.unknown += 1,
        }
    }
}

/// When one POST of the producer was sent and acknowledged, in µs since the epoch.
struct Posted {
    sent: u64,
    acked: u64,
    outcome: anyhow::Result<()>,
}

async fn part_b(options: &Options, base: &str) -> anyhow::Result<()> {
    let client = http_client()?;
    let events_url = format!("{base}/v1/events");

    // The producer's organisation and design, recorded before the log head is read.
    let key = create_organization(&client, base, "Gateway bench producer").await?;
    let producer = Producer::new();
    post_events(
        &client,
        &events_url,
        &key,
        serde_json::to_vec(&[producer.design_published()])?,
    )
    .await?;

    // Every request body, serialized before the clock starts: at 100 events/s or more, a
    // request every 10 ms; below, one event per request.
    let per_request = (options.rate / 100).max(1);
    let interval = Duration::from_secs_f64(per_request as f64 / options.rate as f64);
    let requests =
        (options.rate * usize::try_from(options.measured.as_secs())?).div_ceil(per_request);
    let total = requests * per_request;
    ensure!(
        u32::try_from(total).is_ok(),
        "too many events for one run: {total}"
    );
    let mut ids = HashMap::with_capacity(total);
    let mut bodies = Vec::with_capacity(requests);
    for _ in 0..requests {
        let events = producer.request(per_request);
        for event in &events {
            let id = event["eventId"]
                .as_str()
                .context("an event without id")?
                .to_owned();
            ids.insert(id, u32::try_from(ids.len())?);
        }
        bodies.push(serde_json::to_vec(&events)?);
    }
    let head = log_head(&client, base).await?;

    // The subscribers, opened CONNECT_CONCURRENCY at a time.
    let ws_url = format!(
        "ws://{}/graphql/ws",
        base.strip_prefix("http://").unwrap_or(base)
    );
    println!();
    println!(
        "B. SUBSCRIBE: {} subscribers to {ws_url}, {} events/s ({per_request} per request every \
         {:.1} ms) for {} s, after log position {head}",
        options.subscribers,
        options.rate,
        interval.as_secs_f64() * 1e3,
        options.measured.as_secs()
    );
    eprintln!(
        "B. connecting {} subscribers, {CONNECT_CONCURRENCY} at a time ...",
        options.subscribers
    );
    let epoch = Instant::now();
    let progress = Arc::new(Progress::default());
    let subscriber = Arc::new(Subscriber {
        ids: Arc::new(ids),
        total,
        epoch,
        progress: progress.clone(),
    });
    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let (stop_sender, stop) = watch::channel(false);
    let (ready_sender, mut ready) = mpsc::channel::<anyhow::Result<()>>(options.subscribers);
    let connecting = Instant::now();
    let tasks: Vec<_> = (0..options.subscribers)
        .map(|_| {
            let subscriber = subscriber.clone();
            let gate = gate.clone();
            let ws_url = ws_url.clone();
            let ready_sender = ready_sender.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let permit = gate.acquire_owned().await?;
                let socket = match subscribe(&ws_url, head).await {
                    Ok(socket) => socket,
                    Err(failure) => {
                        let reason = format!("{failure:#}");
                        // The coordinator may have given up already.
                        let _ = ready_sender.send(Err(failure)).await;
                        bail!("{reason}");
                    }
                };
                drop(permit);
                let _ = ready_sender.send(Ok(())).await;
                subscriber.receive(socket, stop).await
            })
        })
        .collect();
    drop(ready_sender);
    for _ in 0..options.subscribers {
        let outcome = ready
            .recv()
            .await
            .context("a subscriber ended before subscribing")?;
        if let Err(failure) = outcome {
            for task in &tasks {
                task.abort();
            }
            return Err(failure.context(format!(
                "subscribing at {ws_url} (the graphql-transport-ws endpoint)"
            )));
        }
    }
    let connected_in = connecting.elapsed();
    // The server may take a moment to act on the last `subscribe` messages.
    tokio::time::sleep(Duration::from_millis(if options.quick {
        500
    } else {
        1000
    }))
    .await;
    println!(
        "  {} subscribers connected and subscribed in {:.2} s",
        options.subscribers,
        connected_in.as_secs_f64()
    );

    // The producer: one request every `interval`, several in flight when the answers are slow.
    eprintln!(
        "B. producing {total} events over {} s ...",
        options.measured.as_secs()
    );
    let threads = ThreadTimes::now();
    let producing = Instant::now();
    let in_flight = Arc::new(Semaphore::new(MAX_POSTS_IN_FLIGHT));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut posts = Vec::with_capacity(requests);
    for body in bodies {
        ticker.tick().await;
        let permit = in_flight.clone().acquire_owned().await?;
        let (client, url, key) = (client.clone(), events_url.clone(), key.clone());
        posts.push(tokio::spawn(async move {
            let sent = micros(epoch.elapsed());
            let outcome = post_events(&client, &url, &key, body).await;
            let acked = micros(epoch.elapsed());
            drop(permit);
            Posted {
                sent,
                acked,
                outcome,
            }
        }));
    }
    let mut posted = Vec::with_capacity(requests);
    for post in posts {
        posted.push(post.await?);
    }
    let produced_in = producing.elapsed();
    let produced_until = Instant::now();

    // Wait until every subscriber has every event, or deliveries stall.
    let mut last_count = progress.deliveries.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if progress.complete.load(Ordering::Relaxed) >= options.subscribers {
            // A moment more, to catch duplicates.
            tokio::time::sleep(Duration::from_millis(500)).await;
            break;
        }
        let count = progress.deliveries.load(Ordering::Relaxed);
        if count != last_count {
            (last_count, last_change) = (count, Instant::now());
        } else if last_change.elapsed() >= STALL {
            break;
        }
        if produced_until.elapsed() >= MAX_DRAIN {
            break;
        }
    }
    let drained_in = produced_until.elapsed();
    let cpu = ThreadTimes::now().since(&threads, CPU_GROUPS, cpu_group);
    let cpu_window = producing.elapsed();
    stop_sender.send_replace(true);
    let mut subscribers = Vec::with_capacity(tasks.len());
    for task in tasks {
        subscribers.push(task.await??);
    }

    // Which events were acknowledged, and when each request was sent and acknowledged.
    let mut acknowledged = vec![false; total];
    let mut failures = Vec::new();
    for (request, post) in posted.iter().enumerate() {
        match &post.outcome {
            Ok(()) => acknowledged[request * per_request..(request + 1) * per_request].fill(true),
            Err(failure) => failures.push(format!("{failure:#}")),
        }
    }
    let acked_events = acknowledged.iter().filter(|acked| **acked).count();
    let first_sent = posted.iter().map(|p| p.sent).min().unwrap_or_default();
    let last_acked = posted.iter().map(|p| p.acked).max().unwrap_or_default();
    let mut post_latency = histogram()?;
    for post in &posted {
        post_latency.record(post.acked.saturating_sub(post.sent))?;
    }

    let mut since_sent = histogram()?;
    let mut since_acked = histogram()?;
    let mut before_ack = 0u64;
    let (mut received, mut missing, mut duplicates, mut unacknowledged) = (0u64, 0u64, 0u64, 0u64);
    let (mut unknown, mut ended_early) = (0u64, 0u64);
    let mut errors = Vec::new();
    let mut ended = Vec::new();
    let mut last_delivery = 0u64;
    for deliveries in &subscribers {
        for &(index, at) in &deliveries.received {
            let post = &posted[index as usize / per_request];
            let at = u64::from(at);
            last_delivery = last_delivery.max(at);
            since_sent.record(at.saturating_sub(post.sent))?;
            if at < post.acked {
                before_ack += 1;
            }
            since_acked.record(at.saturating_sub(post.acked))?;
        }
        for (index, seen) in deliveries.seen.iter().enumerate() {
            match (acknowledged[index], *seen) {
                (true, true) => received += 1,
                (true, false) => missing += 1,
                (false, true) => unacknowledged += 1,
                (false, false) => {}
            }
        }
        duplicates += deliveries.duplicates as u64;
        unknown += deliveries.unknown as u64;
        errors.extend(deliveries.errors.iter().cloned());
        if let Some(reason) = &deliveries.ended {
            ended_early += 1;
            ended.push(reason.clone());
        }
    }
    let expected = options.subscribers as u64 * acked_events as u64;
    let deliveries = since_sent.len();

    println!(
        "  producer: {acked_events} of {total} events acknowledged in {:.2} s ({:.0} events/s; \
         POST p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms){}",
        Duration::from_micros(last_acked.saturating_sub(first_sent)).as_secs_f64(),
        acked_events as f64 / produced_in.as_secs_f64(),
        post_latency.value_at_quantile(0.5) as f64 / 1e3,
        post_latency.value_at_quantile(0.99) as f64 / 1e3,
        post_latency.max() as f64 / 1e3,
        failures.first().map_or(String::new(), |first| format!(
            "; {} requests failed, the first: {first}",
            failures.len()
        ))
    );
    println!(
        "  deliveries: expected {expected}, received {received} ({:.3}%), missing {missing}, \
         duplicates {duplicates}{}{}",
        if expected == 0 {
            0.0
        } else {
            100.0 * received as f64 / expected as f64
        },
        if unacknowledged + unknown > 0 {
            format!(", of unacknowledged events {unacknowledged}, of unknown events {unknown}")
        } else {
            String::new()
        },
        if received == expected && duplicates == 0 {
            " -- every subscriber received every event exactly once"
        } else {
            ""
        }
    );
    println!(
        "  last delivery {:.2} s after the last acknowledgement; subscribers stopped {:.2} s \
         after the producer{}",
        Duration::from_micros(last_delivery.saturating_sub(last_acked)).as_secs_f64(),
        drained_in.as_secs_f64(),
        if progress.complete.load(Ordering::Relaxed) < options.subscribers {
            " (deliveries stalled or the drain limit passed)"
        } else {
            ""
        }
    );
    if !errors.is_empty() {
        println!(
            "  {} GraphQL errors received, the first: {}",
            errors.len(),
            errors[0]
        );
    }
    if ended_early > 0 {
        println!(
            "  {ended_early} subscribers ended before being stopped, the first: {}",
            ended[0]
        );
    }
    println!();
    println!(
        "  {:<34} {:>9} {:>9} {:>9} {:>9}",
        "delivery latency", "count", "p50 ms", "p99 ms", "max ms"
    );
    println!(
        "  {:<34} {:>9} {}",
        "since the POST was sent",
        deliveries,
        latency_columns(&since_sent)
    );
    println!(
        "  {:<34} {:>9} {}",
        "since the POST was acknowledged",
        deliveries,
        latency_columns(&since_acked)
    );
    if deliveries > 0 {
        println!(
            "  ({:.1}% of deliveries arrived before their POST was acknowledged, counted as 0 \
             in the second line)",
            100.0 * before_ack as f64 / deliveries as f64
        );
    }
    println!();
    println!("  CPU used from the first POST until the subscribers were stopped, in cores:");
    print_cpu("SUBSCRIBE", &cpu, cpu_window);
    Ok(())
}
