//! The split deployment, as separate processes of the real binary around a real Kafka-protocol
//! broker (tansu, started per test) and a real PostgreSQL (a database per test, on the server
//! `STIGMERGY_TEST_POSTGRES_URL` names; `./scripts/test` starts one and sets it):
//!
//! - events posted to `stigmergy capture` reach the queries and a subscriber of
//!   `stigmergy gateway` through the topics and `stigmergy project`;
//! - two projectors share the partitions; one is killed with SIGKILL mid-stream, and the views
//!   equal a clean replay of the topics from offset zero (on tansu, and on librdkafka's mock
//!   cluster, whose group coordinator hands a dead member's partitions to the survivor);
//! - a projector joining into an empty views database applies what the topics held in one page,
//!   then pages, and its views equal a page-by-page projector's;
//! - the broker is killed and restarted while a client appends: capture answers 503 (never a
//!   success) while it is down, and every acknowledged event reaches the views once;
//! - `stigmergy export` on the topics and the PostgreSQL views writes every event once and each
//!   resource's document as the gateway serves it;
//! - each process counts at `/metrics` what it recorded, applied and published, and the
//!   projector's lag falls to zero.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeSet, HashMap};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use postgres::NoTls;
use serde_json::{Value, json};
use stigmergy_domain::views::Methods;
use stigmergy_domain::{Event, LogPosition};
use stigmergy_log::{EventLog, KafkaConfig, KafkaLog};
use stigmergy_store::{PostgresViewStore, ViewStore};
use stigmergy_testkit::broker::Broker;
use support::collector::Collector;
use support::events;
use support::prometheus::sample;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const TOKEN: &str = "split-test-operator-token";
const PATIENCE: Duration = Duration::from_secs(90);
const PARTITIONS: i32 = 4;
/// Where every service says the items are published.
const PUBLIC_URL: &str = "https://trace.example.org";

/// A PostgreSQL database of one test, dropped at the end.
struct Database {
    server: String,
    name: String,
    url: String,
}

/// A connection with the synchronous client, off the test's async worker.
fn with_client<T>(url: &str, work: impl FnOnce(&mut postgres::Client) -> T) -> T {
    tokio::task::block_in_place(|| {
        let mut client = postgres::Client::connect(url, NoTls).unwrap();
        work(&mut client)
    })
}

fn run_sql(server: &str, sql: &str) -> Result<(), postgres::Error> {
    with_client(server, |client| client.batch_execute(sql))
}

impl Database {
    fn create() -> Self {
        let server = std::env::var("STIGMERGY_TEST_POSTGRES_URL").unwrap_or_else(|_| {
            panic!(
                "STIGMERGY_TEST_POSTGRES_URL is unset: run ./scripts/test, which starts \
                 PostgreSQL and sets it"
            )
        });
        let name = format!("stigmergy_split_{}", uuid::Uuid::new_v4().simple());
        run_sql(&server, &format!("CREATE DATABASE {name}")).unwrap();
        let (base, _) = server.rsplit_once('/').unwrap();
        let url = format!("{base}/{name}");
        Self { server, name, url }
    }

    fn count(&self, sql: &str) -> i64 {
        with_client(&self.url, |client| {
            client.query_one(sql, &[]).unwrap().get(0)
        })
    }

    /// The events the views hold (none before a projector created the tables).
    fn event_ids(&self) -> Vec<String> {
        with_client(&self.url, |client| {
            client
                .query("SELECT event_id::text FROM view_events", &[])
                .map(|rows| rows.into_iter().map(|row| row.get(0)).collect())
                .unwrap_or_default()
        })
    }

    /// How many events the views hold.
    fn applied(&self) -> i64 {
        with_client(&self.url, |client| {
            client
                .query_one(
                    "SELECT CASE WHEN to_regclass('view_events') IS NULL THEN 0
                     ELSE (SELECT count(*) FROM view_events) END",
                    &[],
                )
                .map(|row| row.get::<_, i64>(0))
                .unwrap_or(0)
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = run_sql(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// One process of the split deployment.
struct Service {
    child: Child,
    base: String,
    /// For a projector, how many partitions it holds, as its log says.
    partitions: Arc<AtomicUsize>,
    _data: tempfile::TempDir,
}

fn command(
    role: &str,
    log: &str,
    database: &Database,
    data: &std::path::Path,
    env: &[(&str, String)],
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stigmergy"));
    command
        .args(["--log-format", "json", role])
        .args(["--log", log, "--store", &database.url, "--data-dir"])
        .arg(data)
        .env("STIGMERGY_OPERATOR_TOKEN", TOKEN)
        .env("STIGMERGY__KAFKA__PARTITIONS", PARTITIONS.to_string())
        .env("STIGMERGY__KAFKA__DELIVERY_TIMEOUT_MS", "3000")
        .env("STIGMERGY__KAFKA__PAGE_SIZE", "100")
        .env("STIGMERGY__WORKERS", "2")
        .env("STIGMERGY__OPEN__PUBLIC_URL", PUBLIC_URL)
        .env(
            "RUST_LOG",
            std::env::var("SPLIT_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

impl Service {
    /// Starts `stigmergy capture` or `stigmergy gateway` on a free port, and waits until it
    /// listens and is ready.
    async fn http(role: &str, log: &str, database: &Database) -> Self {
        Self::http_with(role, log, database, &[]).await
    }

    async fn http_with(role: &str, log: &str, database: &Database, env: &[(&str, String)]) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut child = command(role, log, database, data.path(), env)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = tokio::time::timeout(PATIENCE, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some((_, rest)) = line.split_once("is listening on ") {
                    return rest.split_whitespace().next().unwrap().to_owned();
                }
            }
            panic!("{role} exited before listening");
        })
        .await
        .unwrap_or_else(|_| panic!("{role} did not listen in time"));
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let service = Self {
            child,
            base,
            partitions: Arc::default(),
            _data: data,
        };
        service.ready().await;
        service
    }

    /// `stigmergy project` in `group`, publishing records and anomalies or not.
    fn projector(log: &str, database: &Database, group: &str, publish: bool) -> Self {
        Self::projector_with(log, database, group, publish, &[])
    }

    fn projector_with(
        log: &str,
        database: &Database,
        group: &str,
        publish: bool,
        env: &[(&str, String)],
    ) -> Self {
        Self::projector_started(log, database, group, publish, env, false)
    }

    /// A publishing projector serving its metrics (`--listen`) on a free port, once it listens.
    async fn projector_listening(log: &str, database: &Database, group: &str) -> Self {
        let mut projector = Self::projector_started(log, database, group, true, &[], true);
        let mut lines = BufReader::new(projector.child.stdout.take().unwrap()).lines();
        projector.base = tokio::time::timeout(PATIENCE, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some((_, rest)) = line.split_once("is listening on ") {
                    return rest.split_whitespace().next().unwrap().to_owned();
                }
            }
            panic!("the projector exited before listening");
        })
        .await
        .expect("the projector listens in time");
        projector
    }

    fn projector_started(
        log: &str,
        database: &Database,
        group: &str,
        publish: bool,
        env: &[(&str, String)],
        listen: bool,
    ) -> Self {
        let data = tempfile::tempdir().unwrap();
        let level = std::env::var("SPLIT_TEST_LOG").unwrap_or_else(|_| "warn".into());
        let mut command = command("project", log, database, data.path(), env);
        if listen {
            command
                .args(["--listen", "127.0.0.1:0"])
                .stdout(Stdio::piped());
        } else {
            command.stdout(Stdio::null());
        }
        let mut child = command
            .args(["--group", group])
            .env("STIGMERGY__KAFKA__PUBLISH", publish.to_string())
            .env(
                "RUST_LOG",
                format!("{level},stigmergy_projector::kafka=info"),
            )
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The projector's log says how many partitions it is given and when it loses them.
        let partitions = Arc::new(AtomicUsize::new(0));
        let held = partitions.clone();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let fields = serde_json::from_str::<Value>(&line)
                    .map(|line| line["fields"].clone())
                    .unwrap_or_default();
                let count = fields["partitions"]
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok());
                match (fields["message"].as_str(), count) {
                    (Some("partitions assigned"), Some(count)) => {
                        held.store(count, Ordering::SeqCst)
                    }
                    (Some("partitions revoked"), _) => held.store(0, Ordering::SeqCst),
                    (Some(message), _) if message.contains("consumer group") => {}
                    _ => eprintln!("projector: {line}"),
                }
            }
        });
        Self {
            child,
            base: String::new(),
            partitions,
            _data: data,
        }
    }

    /// How many partitions this projector holds now.
    fn partitions(&self) -> usize {
        self.partitions.load(Ordering::SeqCst)
    }

    async fn ready(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(answer) = client.get(format!("{}/readyz", self.base)).send().await
                && answer.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} never became ready",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn kill(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

async fn post(base: &str, key: &str, path: &str, body: &Value) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    match answer {
        Ok(answer) => {
            let status = answer.status().as_u16();
            (status, answer.json().await.unwrap_or(Value::Null))
        }
        // No answer at all is not a success either.
        Err(_) => (0, Value::Null),
    }
}

/// The JSON-LD document the gateway serves for `resource`, as text.
async fn document(gateway: &Service, resource: &stigmergy_domain::Iri) -> String {
    reqwest::Client::new()
        .get(format!(
            "{}/id/{}",
            gateway.base,
            stigmergy_domain::views::document::encode_segment(resource.as_str())
        ))
        .header("accept", "application/ld+json")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn organization(capture: &Service, name: &str) -> (String, String) {
    let (status, body) = post(
        &capture.base,
        TOKEN,
        "/v1/organizations",
        &json!({ "name": name }),
    )
    .await;
    assert_eq!(status, 201, "{body:#}");
    (
        body["id"].as_str().unwrap().to_owned(),
        body["apiKey"].as_str().unwrap().to_owned(),
    )
}

async fn graphql(gateway: &Service, query: &str, variables: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{}/graphql", gateway.base))
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Every record of `topic` (key, JSON value), read from the beginning until `enough` says so.
async fn read_topic(
    broker: &Broker,
    topic: &str,
    enough: impl Fn(&[(String, Value)]) -> bool + Send + 'static,
) -> Vec<(String, Value)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let (bootstrap, topic) = (broker.bootstrap(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = KafkaConfig::new(bootstrap)
            .consumer("split-test-reader")
            .create()
            .unwrap();
        let partitions =
            stigmergy_log::kafka::partitions_of(&consumer, &[topic.as_str()], PATIENCE).unwrap();
        let mut assignment = rdkafka::TopicPartitionList::new();
        for (topic, partition) in &partitions {
            assignment
                .add_partition_offset(topic, *partition, rdkafka::Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&assignment).unwrap();
        let mut records = Vec::new();
        let deadline = Instant::now() + PATIENCE;
        loop {
            match consumer.poll(Duration::from_millis(500)) {
                Some(message) => {
                    let message = message.unwrap();
                    let key = String::from_utf8_lossy(message.key().unwrap()).into_owned();
                    let value = serde_json::from_slice(message.payload().unwrap()).unwrap();
                    records.push((key, value));
                }
                None if enough(&records) => return records,
                None => assert!(Instant::now() < deadline, "{topic}: not enough records"),
            }
        }
    })
    .await
    .unwrap()
}

/// A copy of the `BatchFabricated` event `template` as a new batch `batch_id` made from a lot
/// nobody recorded (what a capture instance racing another might let through).
fn unrecorded_input_batch(template: &Event, batch_id: &str) -> Event {
    let mut odd = serde_json::to_value(template).unwrap();
    odd["eventId"] = json!(uuid::Uuid::now_v7().to_string());
    odd["subject"] = json!(batch_id);
    odd["payload"]["batchId"] = json!(batch_id);
    odd["payload"]["inputs"] = json!([{ "resource": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        "quantity": { "amount": 1, "unit": "KGM" } }]);
    serde_json::from_value(odd).unwrap()
}

async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(done) = check().await {
            return done;
        }
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_posted_to_capture_reach_gateway_queries_and_a_subscriber_across_processes() {
    let broker = Broker::start();
    let database = Database::create();
    let capture = Service::http("capture", &broker.url(), &database).await;
    let gateway = Service::http("gateway", &broker.url(), &database).await;
    let projector = Service::projector_listening(&broker.url(), &database, "stigmergy-views").await;
    let (_, key) = organization(&capture, "Fab Lab Split").await;

    // A subscriber on the gateway, from the start of the log.
    let url = format!(
        "{}/graphql/ws",
        gateway.base.replacen("http://", "ws://", 1)
    );
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let send = |message: Value| Message::text(message.to_string());
    socket
        .send(send(json!({ "type": "connection_init" })))
        .await
        .unwrap();
    socket
        .send(send(json!({ "id": "1", "type": "subscribe", "payload": {
        "query": "subscription { events { cursor node { eventId type } } }" } })))
        .await
        .unwrap();

    let recorded = [
        events::design("designs/split-stool", "CERN-OHL-S-2.0"),
        events::material("lots/split-oak", 40.0, "KGM"),
        events::material("lots/split-steel", 10.0, "KGM"),
        events::batch(
            "batches/split-1",
            "designs/split-stool",
            &[
                ("lots/split-oak", 20.0, "KGM"),
                ("lots/split-steel", 4.0, "KGM"),
            ],
        ),
        events::contribution("designs/split-stool"),
    ];
    let mut ids = BTreeSet::new();
    for event in &recorded {
        let (status, body) = post(&capture.base, &key, "/v1/events", event).await;
        assert_eq!(status, 201, "{body:#}");
        ids.insert(body["events"][0]["eventId"].as_str().unwrap().to_owned());
    }

    // The subscriber sees each of them once.
    let mut seen = BTreeSet::new();
    while seen.len() < ids.len() {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("the subscriber is told within the patience")
            .unwrap()
            .unwrap();
        let Message::Text(text) = message else {
            continue;
        };
        let message: Value = serde_json::from_str(&text).unwrap();
        if message["type"] != "next" {
            continue;
        }
        let id = message["payload"]["data"]["events"]["node"]["eventId"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(seen.insert(id), "an event told twice");
    }
    assert_eq!(seen, ids);

    // The gateway's queries answer from the views the projector wrote.
    let batch = events::id("batches/split-1");
    let query = "query($id: String!) { resource(id: $id) { kind design
        upstream(depth: 5) { nodes { id } }
        footprint { kgCo2ePerUnit breakdown { materials } } } }";
    let answer = eventually("the batch in the gateway's views", async || {
        let answer = graphql(&gateway, query, json!({ "id": batch })).await;
        (!answer["data"]["resource"].is_null()
            && !answer["data"]["resource"]["footprint"].is_null())
        .then_some(answer)
    })
    .await;
    let resource = &answer["data"]["resource"];
    assert_eq!(resource["kind"], "batch", "{answer:#}");
    assert_eq!(resource["design"], events::id("designs/split-stool"));
    let upstream: BTreeSet<&str> = resource["upstream"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert!(
        upstream.contains(events::id("lots/split-oak").as_str()),
        "{answer:#}"
    );
    assert!(
        upstream.contains(events::id("lots/split-steel").as_str()),
        "{answer:#}"
    );
    // 20 kg of oak and 4 kg of steel at 2 kg CO2e/kg, over the batch's 10 stools.
    let materials = resource["footprint"]["breakdown"]["materials"]
        .as_f64()
        .unwrap();
    assert!((materials - 4.8).abs() < 1e-9, "{answer:#}");

    // The gateway records too, and the capture process sees what the gateway recorded.
    let recorded_at_gateway = post(
        &gateway.base,
        &key,
        "/v1/events",
        &events::material("lots/split-gateway", 1.0, "KGM"),
    )
    .await;
    assert_eq!(recorded_at_gateway.0, 201, "{:#}", recorded_at_gateway.1);
    let id = recorded_at_gateway.1["events"][0]["eventId"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually("the gateway's event at capture", async || {
        let answer = reqwest::get(format!("{}/v1/events/{id}", capture.base))
            .await
            .ok()?;
        answer.status().is_success().then_some(())
    })
    .await;

    // An event written to the topic without capture's rules, as a racing capture instance
    // might: a batch made from a lot nobody recorded. The projector reports it as an anomaly.
    let mut kafka = KafkaConfig::new(broker.bootstrap());
    kafka.partitions = PARTITIONS;
    let mirror = tempfile::tempdir().unwrap();
    let log = KafkaLog::open(kafka, mirror.path()).await.unwrap();
    log.sync().await.unwrap();
    let batch_event = log
        .read_after(LogPosition(0), 100)
        .await
        .unwrap()
        .into_iter()
        .find(|stored| stored.event.event_type() == stigmergy_domain::EventType::BatchFabricated)
        .unwrap();
    let odd_batch = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let odd = unrecorded_input_batch(&batch_event.event, &odd_batch);
    let odd_id = odd.event_id.to_string();
    log.append(vec![odd]).await.unwrap();
    eventually("the odd batch in the views", async || {
        database.event_ids().contains(&odd_id).then_some(())
    })
    .await;
    let resources: Vec<stigmergy_domain::Iri> = [
        events::id("designs/split-stool"),
        events::id("lots/split-oak"),
        events::id("lots/split-steel"),
        batch.clone(),
        odd_batch.clone(),
    ]
    .into_iter()
    .map(|iri| stigmergy_domain::Iri::parse(iri).unwrap())
    .collect();
    // What the projector published: every resource's document, and the anomaly of the odd batch.
    let wanted: BTreeSet<String> = resources.iter().map(|r| r.as_str().to_owned()).collect();
    let metadata = read_topic(
        &broker,
        stigmergy_log::kafka::METADATA_TOPIC,
        move |records| {
            let keys: BTreeSet<&str> = records.iter().map(|(key, _)| key.as_str()).collect();
            wanted.iter().all(|w| keys.contains(w.as_str()))
        },
    )
    .await;
    // Of the documents of one resource, the one read last (greatest `asOf`) is the current one.
    let mut latest: HashMap<&str, &Value> = HashMap::new();
    for (key, value) in &metadata {
        let newer = latest
            .get(key.as_str())
            .is_none_or(|seen| seen["asOf"].as_u64() <= value["asOf"].as_u64());
        if newer {
            latest.insert(key.as_str(), value);
        }
    }
    // It is the resource's JSON-LD document as the gateway serves it now (the same content,
    // hence the same `version`, a digest of everything but `asOf`).
    for resource in &resources {
        let published = latest
            .get(resource.as_str())
            .unwrap_or_else(|| panic!("no metadata document for {resource}"));
        assert_eq!(published["id"], resource.as_str());
        assert_eq!(
            published["@context"],
            format!("{PUBLIC_URL}/context/v1.jsonld")
        );
        let served: Value = serde_json::from_str(&document(&gateway, resource).await).unwrap();
        assert_eq!(
            published["version"], served["version"],
            "the last document published for {resource} is not the one served: {published:#} {served:#}"
        );
    }
    let wanted = odd_batch.clone();
    let anomalies = read_topic(
        &broker,
        stigmergy_log::kafka::ANOMALIES_TOPIC,
        move |records| records.iter().any(|(key, _)| key == &wanted),
    )
    .await;
    let told = anomalies
        .iter()
        .find(|(key, _)| key == &odd_batch)
        .map(|(_, value)| value)
        .unwrap();
    assert_eq!(told["anomaly"]["kind"], "unresolvedReference", "{told:#}");

    // An open-data snapshot of the split deployment: `stigmergy export` in a process of its
    // own, reading the topics (into a mirror of its own) and the PostgreSQL views.
    let mut every_id = ids.clone();
    every_id.extend([id, odd_id]);
    eventually("every event in the views", async || {
        (database.event_ids().len() == every_id.len()).then_some(())
    })
    .await;
    let place = tempfile::tempdir().unwrap();
    let out = place.path().join("snapshot");
    let output = command(
        "export",
        &broker.url(),
        &database,
        &place.path().join("data"),
        &[],
    )
    .arg("--out")
    .arg(&out)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .output()
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "the export failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Every event of the topics once, each line as capture serves it.
    let ndjson = std::fs::read_to_string(out.join("events.ndjson")).unwrap();
    let mut exported = BTreeSet::new();
    for line in ndjson.lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        let event_id = event["eventId"].as_str().unwrap().to_owned();
        let served = reqwest::get(format!("{}/v1/events/{event_id}", capture.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(line, served, "event {event_id}");
        assert!(exported.insert(event_id), "an event exported twice");
    }
    assert_eq!(exported, every_id);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["counts"]["events"], every_id.len(), "{manifest:#}");
    assert_eq!(manifest["counts"]["pending"], 0, "{manifest:#}");
    // Each resource's document as the gateway serves it, byte for byte.
    let entries = manifest["files"].as_array().unwrap();
    for resource in &resources {
        let entry = entries
            .iter()
            .find(|entry| entry["iri"] == resource.as_str())
            .unwrap_or_else(|| panic!("no document exported for {resource}: {manifest:#}"));
        let file = std::fs::read_to_string(out.join(entry["path"].as_str().unwrap())).unwrap();
        let served = document(&gateway, resource).await;
        assert_eq!(file, served, "the exported document of {resource}");
    }
    let check = support::check_sums(&out, "--strict");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    // What each process counted, at its `/metrics`: capture and the gateway the events each
    // recorded, the gateway its open subscription; the projector every event applied once, its
    // partitions, the documents it published, and no lag once the views hold everything.
    let capture_metrics = metrics(&capture).await;
    assert_eq!(
        sample(
            &capture_metrics,
            r#"stigmergy_capture_events_total{outcome="recorded"}"#
        ),
        Some(ids.len() as f64),
        "{capture_metrics}"
    );
    let gateway_metrics = metrics(&gateway).await;
    assert_eq!(
        sample(
            &gateway_metrics,
            r#"stigmergy_capture_events_total{outcome="recorded"}"#
        ),
        Some(1.0),
        "{gateway_metrics}"
    );
    assert_eq!(
        sample(&gateway_metrics, "stigmergy_gateway_subscriptions"),
        Some(1.0),
        "{gateway_metrics}"
    );
    let projected = eventually("the projector's lag at zero", async || {
        let text = metrics(&projector).await;
        (sample(&text, "stigmergy_projector_lag_events") == Some(0.0)).then_some(text)
    })
    .await;
    assert_eq!(
        sample(&projected, "stigmergy_projector_partitions_assigned"),
        Some(f64::from(PARTITIONS) * 5.0),
        "{projected}"
    );
    assert_eq!(
        sample(&projected, "stigmergy_projector_new_events_total"),
        Some(every_id.len() as f64),
        "{projected}"
    );
    let published = sample(&projected, "stigmergy_projector_published_documents_total").unwrap();
    assert!(published >= resources.len() as f64, "{projected}");
    let partition = sample(
        &projected,
        r#"stigmergy_projector_partition_lag_events{topic="stigmergy.design.v1",partition="0"}"#,
    );
    assert_eq!(partition, Some(0.0), "{projected}");
}

/// What a service serves at `/metrics`.
async fn metrics(service: &Service) -> String {
    let answer = reqwest::get(format!("{}/metrics", service.base))
        .await
        .unwrap();
    assert!(answer.status().is_success());
    answer.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projectors_share_the_partitions_and_one_killed_mid_stream_leaves_a_clean_replay() {
    let broker = Broker::start();
    // The second member joins once the first is at work (when both join at once, tansu
    // sometimes never answers the second's join; see docs/decisions.md).
    kill_one_of_two_projectors(&broker.bootstrap(), Joining::Staggered).await;
}

/// The same on librdkafka's mock cluster (an in-memory Kafka-protocol broker, in this test's
/// process, on a loopback port), whose group coordinator expires a dead member's session and
/// hands its partitions to the survivor, as Apache Kafka's does (tansu's does not): both members
/// join at once, hold a share of the partitions each at the same time, and the one killed
/// holds a share when it dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_coordinator_that_expires_sessions_the_survivor_takes_the_killed_projectors_partitions()
 {
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    for topic in stigmergy_log::kafka::topics() {
        cluster.create_topic(topic, PARTITIONS, 1).unwrap();
    }
    kill_one_of_two_projectors(&cluster.bootstrap_servers(), Joining::Together).await;
}

/// How the two projectors of [`kill_one_of_two_projectors`] join their group.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Joining {
    /// The second once the first has applied a page.
    Staggered,
    /// Both at once; the test then checks that both held a share at the same time, and kills
    /// one while it holds a share.
    Together,
}

/// Two projectors of one group on the broker at `bootstrap`; one is killed with SIGKILL
/// mid-stream, the other finishes, and the views equal a clean replay from offset zero.
async fn kill_one_of_two_projectors(bootstrap: &str, joining: Joining) {
    let url = format!("kafka://{bootstrap}");
    let database = Database::create();
    let mix = stigmergy_testkit::Mix {
        events: 2000,
        organizations: 6,
        hub_lots: 1,
        retraction_rate: 0.01,
        ..stigmergy_testkit::Mix::default()
    };
    let events: Vec<Event> = stigmergy_testkit::Generator::new(23, &mix).collect();
    let mut kafka = KafkaConfig::new(bootstrap.to_owned());
    kafka.partitions = PARTITIONS;
    let mirror = tempfile::tempdir().unwrap();
    let log = KafkaLog::open(kafka, mirror.path()).await.unwrap();
    let appends: Vec<_> = events.chunks(100).map(|c| log.append(c.to_vec())).collect();
    for append in appends {
        append.await.unwrap();
    }
    // One more, written to the topic without capture's rules (as a racing capture instance
    // might): a batch made from a lot nobody recorded. The projectors report it as an anomaly.
    let odd_batch = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let template = events
        .iter()
        .find(|e| e.event_type() == stigmergy_domain::EventType::BatchFabricated)
        .unwrap();
    let odd = unrecorded_input_batch(template, &odd_batch);
    log.append(vec![odd.clone()]).await.unwrap();
    let mut events = events;
    events.push(odd);

    let total = events.len() as i64;
    let applied = |database: &Database| database.applied();
    // Page after page from the first (no catch-up page), so that the kill lands mid-stream.
    let paged = [("STIGMERGY__KAFKA__FIRST_PAGE_SIZE", "100".to_owned())];
    let mut first = Service::projector_with(&url, &database, "views", false, &paged);
    if joining == Joining::Staggered {
        eventually("the first projector at work", async || {
            (applied(&database) > 0).then_some(())
        })
        .await;
    }
    let second = Service::projector_with(&url, &database, "views", false, &paged);
    if joining == Joining::Together {
        let all = usize::try_from(PARTITIONS).unwrap() * 5;
        let shares = eventually("both projectors holding a share", async || {
            let shares = (first.partitions(), second.partitions());
            (shares.0 > 0 && shares.1 > 0).then_some(shares)
        })
        .await;
        assert_eq!(shares.0 + shares.1, all, "the shares split the partitions");
        eprintln!(
            "the two projectors hold {} and {} partitions",
            shares.0, shares.1
        );
    }
    let at_kill = eventually("some pages applied", async || {
        let applied = applied(&database);
        (applied > total / 5).then_some(applied)
    })
    .await;
    if joining == Joining::Together {
        assert!(first.partitions() > 0, "the projector killed holds a share");
    }
    first.kill().await;
    assert!(
        at_kill < total,
        "the kill landed mid-stream ({at_kill} of {total})"
    );
    eventually("every event applied by the survivor", async || {
        (applied(&database) == total).then_some(())
    })
    .await;
    if joining == Joining::Together {
        let all = usize::try_from(PARTITIONS).unwrap() * 5;
        assert_eq!(
            second.partitions(),
            all,
            "the survivor holds every partition"
        );
    }
    drop(second);
    let offsets =
        database.count("SELECT count(*) FROM consumer_offsets WHERE consumer_group = 'views'");
    assert_eq!(
        offsets,
        i64::from(PARTITIONS) * 5,
        "an offset per partition of the 5 topics"
    );

    // A clean replay from offset zero, by a new group into a new database (in one page, derived
    // in memory: the store holds no events).
    let clean = Database::create();
    let replay = Service::projector(&url, &clean, "replay", false);
    eventually("the clean replay", async || {
        (applied(&clean) == total).then_some(())
    })
    .await;
    drop(replay);

    let (killed, replayed) = (
        PostgresViewStore::connect(&database.url, Methods::default()).unwrap(),
        PostgresViewStore::connect(&clean.url, Methods::default()).unwrap(),
    );
    let mut ids = database.event_ids();
    let mut clean_ids = clean.event_ids();
    ids.sort();
    clean_ids.sort();
    assert_eq!(ids, clean_ids, "the same events, each once");
    let resources = support::views::touched(&events);
    for resource in &resources {
        support::views::assert_same_record(resource, &killed, &replayed).await;
        let timeline = |t: Vec<stigmergy_store::TimelineEntry>| -> BTreeSet<_> {
            t.into_iter().map(|e| e.event.event_id).collect()
        };
        assert_eq!(
            timeline(killed.timeline(resource).await.unwrap()),
            timeline(replayed.timeline(resource).await.unwrap()),
            "the timeline of {resource} differs"
        );
    }

    eprintln!(
        "killed one of two projectors at {at_kill} of {total} events; {} resources compared",
        resources.len()
    );
}

/// How many times the views of a database were written: once more for each page applied (and
/// when they were reset, as on a database's first opening).
fn generation(database: &Database) -> i64 {
    database.count("SELECT generation FROM view_writes")
}

/// The views of a fresh database, opened (and so created) before a projector writes them, with
/// their generation then.
fn opened_views(database: &Database) -> (PostgresViewStore, i64) {
    let store = PostgresViewStore::connect(&database.url, Methods::default()).unwrap();
    (store, generation(database))
}

/// A projector joining into a views database that holds no events applies what the topics held
/// in one first page (derived in memory), then what comes later in pages of `[kafka] page_size`;
/// the views equal those of a projector that applied everything page by page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_into_an_empty_store_catches_up_in_one_page_then_applies_pages() {
    let broker = Broker::start();
    let url = broker.url();
    let mix = stigmergy_testkit::Mix {
        events: 900,
        organizations: 4,
        hub_lots: 1,
        retraction_rate: 0.01,
        ..stigmergy_testkit::Mix::default()
    };
    let events: Vec<Event> = stigmergy_testkit::Generator::new(29, &mix).collect();
    let (held, later) = events.split_at(600);
    let mut kafka = KafkaConfig::new(broker.bootstrap());
    kafka.partitions = PARTITIONS;
    let mirror = tempfile::tempdir().unwrap();
    let log = KafkaLog::open(kafka, mirror.path()).await.unwrap();
    for chunk in held.chunks(100) {
        log.append(chunk.to_vec()).await.unwrap();
    }

    let database = Database::create();
    let (caught_up, opened) = opened_views(&database);
    let _projector = Service::projector(&url, &database, "views", false);
    eventually("what the topics held in the views", async || {
        (database.applied() == 600).then_some(())
    })
    .await;
    assert_eq!(generation(&database) - opened, 1, "caught up in one page");
    for chunk in later.chunks(50) {
        log.append(chunk.to_vec()).await.unwrap();
    }
    eventually("what came later in the views", async || {
        (database.applied() == 900).then_some(())
    })
    .await;
    let pages = generation(&database) - opened;
    assert!(
        pages >= 4,
        "300 events after the first page, in pages of at most 100: {pages}"
    );

    // The same events, page by page from the first, in another group and database.
    let paged = Database::create();
    let (paged_views, opened) = opened_views(&paged);
    let _paged = Service::projector_with(
        &url,
        &paged,
        "paged",
        false,
        &[("STIGMERGY__KAFKA__FIRST_PAGE_SIZE", "100".to_owned())],
    );
    eventually("the paged views", async || {
        (paged.applied() == 900).then_some(())
    })
    .await;
    assert!(generation(&paged) - opened >= 9, "pages of at most 100");
    for resource in &support::views::touched(&events) {
        support::views::assert_same_record(resource, &caught_up, &paged_views).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_down_capture_answers_503_and_every_acknowledged_event_reaches_the_views_once()
 {
    let mut broker = Broker::start();
    let database = Database::create();
    let capture = Service::http("capture", &broker.url(), &database).await;
    let _projector = Service::projector(&broker.url(), &database, "stigmergy-views", true);
    let (_, key) = organization(&capture, "Restart Works").await;

    let mut n = 0;
    let mut next_event = || {
        n += 1;
        let id = uuid::Uuid::now_v7().to_string();
        (
            id.clone(),
            events::with_id(
                events::material(&format!("lots/restart-{n}"), 1.0, "KGM"),
                &id,
            ),
        )
    };
    let mut acknowledged = Vec::new();
    let mut refused: HashMap<String, Value> = HashMap::new();

    // Up: every append succeeds.
    for _ in 0..20 {
        let (id, event) = next_event();
        let (status, body) = post(&capture.base, &key, "/v1/events", &event).await;
        assert_eq!(status, 201, "{body:#}");
        acknowledged.push(id);
    }

    // Down: no success, and 503s.
    broker.kill();
    let down_until = Instant::now() + Duration::from_secs(8);
    let mut unavailable = 0;
    while Instant::now() < down_until {
        let (id, event) = next_event();
        let (status, body) = post(&capture.base, &key, "/v1/events", &event).await;
        assert!(
            !(200..300).contains(&status),
            "a success while the broker is down: {status} {body:#}"
        );
        if status == 503 {
            assert_eq!(body["status"], 503, "{body:#}");
            unavailable += 1;
        }
        refused.insert(id, event);
    }
    assert!(
        unavailable > 0,
        "capture answered 503 while the broker was down"
    );

    // Back up: appends succeed again, and what was refused can be sent again, once.
    broker.restart();
    eventually("capture accepts again", async || {
        let (id, event) = next_event();
        let (status, _) = post(&capture.base, &key, "/v1/events", &event).await;
        if status == 201 {
            acknowledged.push(id);
            Some(())
        } else {
            refused.insert(id, event);
            None
        }
    })
    .await;
    for (id, event) in &refused {
        let (status, body) = eventually("a refused event accepted when sent again", async || {
            let (status, body) = post(&capture.base, &key, "/v1/events", event).await;
            (200..300).contains(&status).then_some((status, body))
        })
        .await;
        // 200 and `duplicate` when the first attempt was written after all.
        assert!(
            status == 201 || body["events"][0]["duplicate"] == true,
            "{body:#}"
        );
        acknowledged.push(id.clone());
    }

    // Every acknowledged event is in the views, once.
    let expected: BTreeSet<String> = acknowledged.iter().cloned().collect();
    assert_eq!(expected.len(), acknowledged.len());
    eventually("every acknowledged event in the views", async || {
        let held: BTreeSet<String> = database.event_ids().into_iter().collect();
        expected.is_subset(&held).then_some(())
    })
    .await;
    let held = database.event_ids();
    let distinct: BTreeSet<&String> = held.iter().collect();
    assert_eq!(distinct.len(), held.len(), "no event twice in the views");
    assert_eq!(
        held.len(),
        expected.len(),
        "nothing in the views that was not acknowledged in the end"
    );
    eprintln!(
        "{} acknowledged, {} refused while down ({unavailable} with 503) and accepted when sent again",
        expected.len(),
        refused.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_spans_a_capture_request_its_kafka_delivery_the_projector_and_a_gateway_query() {
    let collector = Collector::start();
    let broker = Broker::start();
    let database = Database::create();
    let otlp = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        // Spans below this level are not made, so not exported either.
        ("RUST_LOG", "info".to_owned()),
    ];
    let capture = Service::http_with("capture", &broker.url(), &database, &otlp).await;
    let gateway = Service::http_with("gateway", &broker.url(), &database, &otlp).await;
    let _projector =
        Service::projector_with(&broker.url(), &database, "stigmergy-views", false, &otlp);
    let (_, key) = organization(&capture, "Traced Works").await;

    // The client's trace: every process continues it.
    let trace = uuid::Uuid::new_v4();
    let traceparent = format!("00-{}-00f067aa0ba902b7-01", trace.simple());
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/events", capture.base))
        .bearer_auth(&key)
        .header("traceparent", &traceparent)
        .json(&events::material("lots/traced", 3.0, "KGM"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    let id = answer.json::<Value>().await.unwrap()["events"][0]["eventId"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually("the traced event in the views", async || {
        database.event_ids().contains(&id).then_some(())
    })
    .await;
    let answer = reqwest::Client::new()
        .post(format!("{}/graphql", gateway.base))
        .header("traceparent", &traceparent)
        .json(
            &json!({ "query": "query($id: String!) { resource(id: $id) { kind } }",
            "variables": { "id": events::id("lots/traced") } }),
        )
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());

    // The spans each process exported carry the trace's id: the capture request and its Kafka
    // append, the projector's page (linked through the record's `traceparent`), the query.
    let trace_id = trace.as_bytes().as_slice();
    for (service, span) in [
        ("stigmergy-capture", "log.append"),
        ("stigmergy-projector", "projector.apply"),
        ("stigmergy-gateway", "/graphql"),
    ] {
        eventually(
            &format!("{service}'s {span} span in the trace"),
            async || {
                (collector.exports_with(&[service.as_bytes(), span.as_bytes(), trace_id]) > 0)
                    .then_some(())
            },
        )
        .await;
    }
}
