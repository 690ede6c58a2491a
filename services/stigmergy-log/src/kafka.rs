//! The Kafka adapter: events go to one topic per lifecycle stage (`stigmergy.<stage>.v1`), keyed
//! by their subject, through an idempotent producer with `acks=all`; reads come from a local
//! mirror of those topics.
//!
//! **Appends.** One task enqueues appends in the order they were called, so the producer keeps
//! that order within each partition; many appends are in flight at once, bounded by the
//! producer's queue. An append is answered only once every one of its events has a delivery
//! report, once every append before it succeeded (a failed append fails those after it, as the
//! [`EventLog`] port's fail-stop rule says), and once its events are in the mirror — written
//! there straight away, not read back from the topics — so that what this process appended is
//! what it reads next.
//!
//! **The mirror.** Kafka keeps no total order across partitions and cannot find an event by id,
//! yet capture's rules and the gateway's subscriptions need both. A consumer outside any group
//! reads every partition of the stage topics and appends what it reads, in the order it reads
//! it, to an [`EmbeddedLog`] in the mirror directory: its positions are local to this process,
//! dense and durable, and `read_after`, `get`, `head` and `follow` read from it. The records
//! this process appended are already there, and the consumer skips them by offset without
//! decoding them (one it reaches while its append is still writing it, it waits for); other
//! events already mirrored (a redelivery, a producer's retry after a lost acknowledgement) are
//! skipped by id.
//! The offsets it reached are kept beside it, so a restart reads only what it has not seen.
//! What the consumer mirrors, other processes' events, it also hands to readers of
//! [`EventLog::follow_foreign`] as it stores them, so that capture's follower does not read back
//! from the mirror the events its own process appended.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::{BoxFuture, Shared};
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use opentelemetry::propagation::{Extractor, Injector};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use stigmergy_domain::{Event, EventId, EventPayload, LogPosition, Stage};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{Instrument, error, info, info_span, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{EmbeddedLog, EmbeddedLogConfig, Error, EventLog, Result, StoredEvent};

/// The topic of each lifecycle stage.
pub fn stage_topic(stage: Stage) -> &'static str {
    match stage {
        Stage::Design => "stigmergy.design.v1",
        Stage::Contribution => "stigmergy.contribution.v1",
        Stage::Fabrication => "stigmergy.fabrication.v1",
        Stage::Logistics => "stigmergy.logistics.v1",
        Stage::EndOfLife => "stigmergy.endoflife.v1",
    }
}

/// The stage topics, the ones events are appended to.
pub const STAGE_TOPICS: [&str; 5] = [
    "stigmergy.design.v1",
    "stigmergy.contribution.v1",
    "stigmergy.fabrication.v1",
    "stigmergy.logistics.v1",
    "stigmergy.endoflife.v1",
];

/// Each resource's current open-metadata document (compacted; key = the resource's IRI).
pub const METADATA_TOPIC: &str = "stigmergy.metadata.v1";
/// The anomalies the projectors find (key = the resource's IRI).
pub const ANOMALIES_TOPIC: &str = "stigmergy.anomalies.v1";

/// Every topic the platform uses: the stage topics, then the metadata and anomalies topics.
pub fn topics() -> impl Iterator<Item = &'static str> {
    STAGE_TOPICS
        .into_iter()
        .chain([METADATA_TOPIC, ANOMALIES_TOPIC])
}

/// The headers every event record carries (`docs/topics.md`).
pub mod header {
    /// The event's type, e.g. `BatchFabricated`.
    pub const EVENT_TYPE: &str = "stigmergy-event-type";
    /// The event's schema version, e.g. `1`.
    pub const SCHEMA_VERSION: &str = "stigmergy-schema-version";
    /// The event's id (the same as the value's `eventId`).
    pub const EVENT_ID: &str = "stigmergy-event-id";
    /// The value's media type: `application/json`.
    pub const CONTENT_TYPE: &str = "content-type";
    /// W3C trace context of the request that recorded the event, when it was traced.
    pub const TRACEPARENT: &str = "traceparent";
    pub const TRACESTATE: &str = "tracestate";
}

/// How this process talks to Kafka.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// `host:port[,host:port]`.
    pub brokers: String,
    /// Partitions of each topic created at start (existing topics are left as they are).
    pub partitions: i32,
    /// Replicas of each partition of a topic created at start.
    pub replication: i32,
    /// How long the producer tries to deliver a record before the append fails
    /// (`message.timeout.ms`), and how long an append waits for the mirror.
    pub delivery_timeout: Duration,
    /// Most records the producer holds undelivered (`queue.buffering.max.messages`).
    pub max_in_flight: usize,
    /// How long the producer waits to fill a batch (`linger.ms`).
    pub linger: Duration,
}

impl KafkaConfig {
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            partitions: 6,
            replication: 1,
            delivery_timeout: Duration::from_secs(10),
            max_in_flight: 100_000,
            linger: Duration::from_millis(2),
        }
    }

    /// The settings every client of this process shares.
    pub fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", "stigmergy")
            .set("reconnect.backoff.max.ms", "1000")
            .set("log_level", "4");
        // librdkafka's own debug contexts (e.g. `cgrp,fetch`), for diagnosing a broker.
        if let Ok(contexts) = std::env::var("STIGMERGY_KAFKA_DEBUG")
            && !contexts.is_empty()
        {
            config.set("debug", contexts).set("log_level", "7");
        }
        config
    }

    /// The settings of a consumer that stores no offsets in Kafka: the caller keeps them.
    pub fn consumer(&self, group: &str) -> ClientConfig {
        let mut config = self.client();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "20");
        config
    }

    /// The settings of the idempotent, `acks=all` producer.
    pub fn producer(&self) -> ClientConfig {
        let mut config = self.client();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5")
            // The Java client's partitioner, so any producer puts a key where this one does.
            .set("partitioner", "murmur2_random")
            .set(
                "message.timeout.ms",
                self.delivery_timeout.as_millis().to_string(),
            )
            .set(
                "queue.buffering.max.messages",
                self.max_in_flight.to_string(),
            )
            .set("linger.ms", self.linger.as_millis().to_string());
        config
    }
}

fn kafka(error: KafkaError) -> Error {
    Error::Kafka(error.to_string())
}

/// Creates the stage, metadata and anomalies topics that are missing: stage topics keep their
/// records forever (they are the system of record), the metadata topic is compacted.
///
/// Topics the broker already has are left as they are and no CreateTopics request is sent for
/// them, so that a deployment whose topics are provisioned by its operators (and whose clients
/// may not create topics) starts as well.
pub async fn ensure_topics(config: &KafkaConfig) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = config.client().create().map_err(kafka)?;
    let client = config.client();
    let existing = tokio::task::spawn_blocking(move || -> Result<HashSet<String>> {
        let consumer: BaseConsumer = client.create().map_err(kafka)?;
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(30))
            .map_err(kafka)?;
        Ok(metadata
            .topics()
            .iter()
            .map(|topic| topic.name().to_owned())
            .collect())
    })
    .await
    .map_err(|e| Error::Kafka(format!("the topic listing failed: {e}")))??;
    let topics: Vec<NewTopic<'_>> = topics()
        .filter(|name| !existing.contains(*name))
        .map(|name| {
            let topic = NewTopic::new(
                name,
                config.partitions,
                TopicReplication::Fixed(config.replication),
            );
            match name {
                METADATA_TOPIC => topic.set("cleanup.policy", "compact"),
                ANOMALIES_TOPIC => topic,
                _ => topic.set("retention.ms", "-1"),
            }
        })
        .collect();
    if topics.is_empty() {
        return Ok(());
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for outcome in admin
        .create_topics(&topics, &options)
        .await
        .map_err(kafka)?
    {
        match outcome {
            Ok(topic) => info!(topic, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(Error::Kafka(format!("cannot create topic {topic}: {code}")));
            }
        }
    }
    Ok(())
}

/// The partitions of `topics`, as the broker has them now.
pub fn partitions_of(
    consumer: &impl Consumer,
    topics: &[&str],
    timeout: Duration,
) -> Result<Vec<(String, i32)>> {
    let mut partitions = Vec::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .map_err(kafka)?;
        let found = metadata
            .topics()
            .iter()
            .find(|t| t.name() == *topic)
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .ok_or_else(|| Error::Kafka(format!("topic {topic} has no partitions")))?;
        partitions.extend(
            found
                .partitions()
                .iter()
                .map(|p| (topic.to_string(), p.id())),
        );
    }
    Ok(partitions)
}

struct HeaderInjector<'a>(&'a mut Vec<(String, String)>);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_owned(), value));
    }
}

/// The W3C trace context of `span`, as record headers (none when tracing is not exported).
pub fn trace_headers(span: &tracing::Span) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    let context = span.context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(&mut headers));
    });
    headers
}

struct HeaderExtractor<'a, M>(&'a M);

impl<M: Message> Extractor for HeaderExtractor<'_, M> {
    fn get(&self, key: &str) -> Option<&str> {
        let headers = self.0.headers()?;
        headers
            .iter()
            .find(|header| header.key.eq_ignore_ascii_case(key))
            .and_then(|header| header.value)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .headers()
            .map(|headers| headers.iter().map(|header| header.key).collect())
            .unwrap_or_default()
    }
}

/// Makes `span` a continuation of the trace a record's `traceparent` header names, when it
/// names one: the capture request that recorded the event.
pub fn continue_trace(span: &tracing::Span, message: &impl Message) {
    let context = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(message))
    });
    use opentelemetry::trace::TraceContextExt as _;
    let remote = context.span().span_context().clone();
    if remote.is_valid() {
        span.add_link(remote);
    }
}

/// The headers of an event's record (`header`), with the W3C trace context in `trace`.
pub fn record_headers(event: &Event, trace: &[(String, String)]) -> OwnedHeaders {
    let event_id = event.event_id.to_string();
    let schema_version = event.schema_version.get().to_string();
    let mut headers = OwnedHeaders::new_with_capacity(4 + trace.len())
        .insert(Header {
            key: header::EVENT_TYPE,
            value: Some(event.event_type().name()),
        })
        .insert(Header {
            key: header::SCHEMA_VERSION,
            value: Some(schema_version.as_str()),
        })
        .insert(Header {
            key: header::EVENT_ID,
            value: Some(event_id.as_str()),
        })
        .insert(Header {
            key: header::CONTENT_TYPE,
            value: Some("application/json"),
        });
    for (key, value) in trace {
        headers = headers.insert(Header {
            key: key.as_str(),
            value: Some(value.as_str()),
        });
    }
    headers
}

/// Reads the event a record holds.
pub fn decode(message: &impl Message) -> Result<Event> {
    let payload = message
        .payload()
        .ok_or_else(|| Error::Corrupt("a record without a value".into()))?;
    serde_json::from_slice(payload).map_err(|e| {
        Error::Corrupt(format!(
            "record {}/{}@{} is not an event: {e}",
            message.topic(),
            message.partition(),
            message.offset()
        ))
    })
}

/// The next offset to read in each partition.
type Offsets = BTreeMap<(String, i32), i64>;

const OFFSETS_FILE: &str = "offsets.json";

fn read_offsets(dir: &Path) -> Result<Offsets> {
    let path = dir.join(OFFSETS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Offsets::new()),
        Err(e) => return Err(Error::Corrupt(format!("{}: {e}", path.display()))),
    };
    let listed: Vec<(String, i32, i64)> = serde_json::from_str(&text)
        .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
    Ok(listed.into_iter().map(|(t, p, o)| ((t, p), o)).collect())
}

fn write_offsets(dir: &Path, offsets: &Offsets) -> std::io::Result<()> {
    let listed: Vec<(&str, i32, i64)> = offsets
        .iter()
        .map(|((t, p), o)| (t.as_str(), *p, *o))
        .collect();
    let temporary = dir.join("offsets.json.tmp");
    std::fs::write(&temporary, serde_json::to_vec(&listed)?)?;
    std::fs::rename(&temporary, dir.join(OFFSETS_FILE))
}

/// The event log on Kafka, read through this process's mirror of its topics.
#[derive(Clone)]
pub struct KafkaLog {
    inner: Arc<Inner>,
}

struct Inner {
    config: KafkaConfig,
    mirror: EmbeddedLog,
    /// What the mirror's consumer stored, batch by batch, for [`EventLog::follow_foreign`].
    foreign: broadcast::Sender<ForeignBatch>,
    mirrored: watch::Receiver<Offsets>,
    consumer: Arc<StreamConsumer>,
    partitions: Vec<(String, i32)>,
    requests: mpsc::UnboundedSender<Append>,
    stopped: Arc<AtomicBool>,
    epoch: Arc<AtomicU64>,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("brokers", &self.inner.config.brokers)
            .field("partitions", &self.inner.partitions.len())
            .field("mirror", &self.inner.mirror)
            .finish()
    }
}

struct Append {
    events: Vec<Event>,
    trace: Vec<(String, String)>,
    reply: oneshot::Sender<Result<Vec<LogPosition>>>,
    span: tracing::Span,
}

impl KafkaLog {
    /// Creates the topics that are missing, opens the mirror in `mirror_dir` and starts
    /// following the topics into it. Must run inside a Tokio runtime.
    pub async fn open(config: KafkaConfig, mirror_dir: &Path) -> Result<Self> {
        ensure_topics(&config).await?;
        let mirror = EmbeddedLog::open(mirror_dir, EmbeddedLogConfig::default())?;
        let consumer: StreamConsumer = config
            .consumer(&format!("stigmergy-mirror-{}", uuid::Uuid::new_v4()))
            .create()
            .map_err(kafka)?;
        let consumer = Arc::new(consumer);
        let partitions = {
            let consumer = consumer.clone();
            tokio::task::spawn_blocking(move || {
                partitions_of(consumer.as_ref(), &STAGE_TOPICS, Duration::from_secs(30))
            })
            .await
            .map_err(|_| Error::Closed)??
        };
        let mut offsets = read_offsets(mirror_dir)?;
        let mut assignment = TopicPartitionList::new();
        for (topic, partition) in &partitions {
            let offset = offsets
                .get(&(topic.clone(), *partition))
                .map_or(Offset::Beginning, |next| Offset::Offset(*next));
            assignment
                .add_partition_offset(topic, *partition, offset)
                .map_err(kafka)?;
            offsets.entry((topic.clone(), *partition)).or_insert(0);
        }
        consumer.assign(&assignment).map_err(kafka)?;
        let (progress, mirrored) = watch::channel(offsets.clone());
        let own: Arc<OwnRecords> = Arc::default();
        let (foreign, _) = broadcast::channel(FOREIGN_BATCHES);
        tokio::spawn(mirror_loop(
            consumer.clone(),
            mirror.clone(),
            own.clone(),
            foreign.clone(),
            mirror_dir.to_owned(),
            offsets,
            progress,
        ));
        let producer: FutureProducer = config.producer().create().map_err(kafka)?;
        let (requests, receiver) = mpsc::unbounded_channel();
        let stopped = Arc::new(AtomicBool::new(false));
        let epoch = Arc::new(AtomicU64::new(0));
        tokio::spawn(produce_loop(
            receiver,
            Producing {
                config: config.clone(),
                recent: std::sync::Mutex::new((HashMap::new(), VecDeque::new())),
                producer,
                mirror: mirror.clone(),
                own: own.clone(),
                stopped: stopped.clone(),
                epoch: epoch.clone(),
            },
        ));
        info!(brokers = %config.brokers, partitions = partitions.len(), mirror = %mirror_dir.display(), "kafka event log open");
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                mirror,
                foreign,
                mirrored,
                consumer,
                partitions,
                requests,
                stopped,
                epoch,
            }),
        })
    }

    /// The partitions of the stage topics this log reads.
    pub fn partitions(&self) -> &[(String, i32)] {
        &self.inner.partitions
    }

    /// Where the mirror is.
    pub fn mirror_path(&self) -> &Path {
        self.inner.mirror.path()
    }
}

/// Waits until the mirror has read up to `wanted` (the next offset to read, per partition).
async fn mirrored_up_to(
    mirrored: &mut watch::Receiver<Offsets>,
    wanted: &[((String, i32), i64)],
    timeout: Duration,
) -> Result<()> {
    let reached = |offsets: &Offsets| {
        wanted
            .iter()
            .all(|(partition, next)| offsets.get(partition).is_some_and(|have| have >= next))
    };
    match tokio::time::timeout(timeout, mirrored.wait_for(|offsets| reached(offsets))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(Error::Closed),
        Err(_) => Err(Error::Kafka(format!(
            "the mirror did not read the topics up to what was delivered within {timeout:?}"
        ))),
    }
}

/// How many of the events this process enqueued last are remembered with their stage, for
/// retractions appended before the mirror has read what they retract.
const RECENT_STAGES: usize = 65_536;

struct Producing {
    config: KafkaConfig,
    recent: std::sync::Mutex<(HashMap<EventId, Stage>, VecDeque<EventId>)>,
    producer: FutureProducer,
    mirror: EmbeddedLog,
    own: Arc<OwnRecords>,
    stopped: Arc<AtomicBool>,
    epoch: Arc<AtomicU64>,
}

impl Producing {
    /// The topic an event goes to: its stage's, or for a retraction the stage of what it
    /// retracts (with the same key, so it lands after it in the same partition).
    async fn stage_of(&self, event: &Event) -> Result<Stage> {
        if let Some(stage) = event.event_type().stage() {
            return Ok(stage);
        }
        let EventPayload::EventRetracted(retraction) = &event.payload else {
            return Err(Error::Corrupt(format!(
                "event {} has no stage",
                event.event_id
            )));
        };
        if let Some(stage) = self.recent_stage(&retraction.event_id) {
            return Ok(stage);
        }
        let original = self.mirror.get(retraction.event_id).await?.ok_or_else(|| {
            Error::Corrupt(format!(
                "retracted event {} is not in the log",
                retraction.event_id
            ))
        })?;
        Box::pin(self.stage_of(&original.event)).await
    }

    fn recent_stage(&self, event_id: &EventId) -> Option<Stage> {
        let recent = self.recent.lock().ok()?;
        recent.0.get(event_id).copied()
    }

    fn remember(&self, event_id: EventId, stage: Stage) {
        let Ok(mut recent) = self.recent.lock() else {
            return;
        };
        let (stages, order) = &mut *recent;
        if stages.insert(event_id, stage).is_none() {
            order.push_back(event_id);
        }
        while order.len() > RECENT_STAGES {
            if let Some(oldest) = order.pop_front() {
                stages.remove(&oldest);
            }
        }
    }

    /// Enqueues the records of one append, in order, waiting while the producer's queue is full;
    /// their deliveries, and their values (each event as JSON, which the mirror stores too).
    async fn enqueue(&self, append: &Append) -> Result<Enqueued> {
        let mut deliveries = Vec::with_capacity(append.events.len());
        let mut values = Vec::with_capacity(append.events.len());
        for event in &append.events {
            let stage = self.stage_of(event).await?;
            self.remember(event.event_id, stage);
            let topic = stage_topic(stage);
            let value = serde_json::to_string(event).map_err(|e| Error::Corrupt(e.to_string()))?;
            let key = event.subject.as_str();
            let mut record = FutureRecord::to(topic)
                .key(key)
                .payload(value.as_bytes())
                .headers(record_headers(event, &append.trace));
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        deliveries.push((topic, delivery));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err((failure, _)) => return Err(kafka(failure)),
                }
            }
            values.push(value);
        }
        Ok(Enqueued { deliveries, values })
    }
}

/// The records of one append, enqueued in the producer.
struct Enqueued {
    deliveries: Vec<(&'static str, DeliveryFuture)>,
    values: Vec<String>,
}

async fn produce_loop(mut requests: mpsc::UnboundedReceiver<Append>, mut producing: Producing) {
    let succeeded = || futures_util::future::ready(true).boxed().shared();
    let mut previous: Shared<BoxFuture<'static, bool>> = succeeded();
    let mut epoch = producing.epoch.load(Ordering::SeqCst);
    while let Some(append) = requests.recv().await {
        let now = producing.epoch.load(Ordering::SeqCst);
        if now != epoch {
            // `resume` was called: what failed before no longer fails what comes now, and a new
            // producer starts a new idempotent session (a broker that lost or refuses the old
            // one's sequence would otherwise refuse every record after a failure).
            epoch = now;
            previous = succeeded();
            match producing.config.producer().create() {
                Ok(fresh) => producing.producer = fresh,
                Err(failure) => {
                    warn!(error = %failure, "cannot start a new producer; keeping the old one")
                }
            }
        }
        if producing.stopped.load(Ordering::SeqCst) {
            let _ = append.reply.send(Err(Error::Stopped));
            continue;
        }
        let enqueued = match producing
            .enqueue(&append)
            .instrument(append.span.clone())
            .await
        {
            Ok(enqueued) => enqueued,
            Err(failure) => {
                producing.stopped.store(true, Ordering::SeqCst);
                previous = futures_util::future::ready(false).boxed().shared();
                let _ = append.reply.send(Err(failure));
                continue;
            }
        };
        let (outcome, next) = oneshot::channel::<bool>();
        let before = std::mem::replace(
            &mut previous,
            async move { next.await.unwrap_or(false) }.boxed().shared(),
        );
        let mirror = producing.mirror.clone();
        let own = producing.own.clone();
        let stopped = producing.stopped.clone();
        let span = append.span;
        let reply = append.reply;
        let events = append.events;
        tokio::spawn(
            async move {
                let result = settle(enqueued, before, &mirror, &own, events).await;
                if result.is_err() {
                    stopped.store(true, Ordering::SeqCst);
                }
                let _ = outcome.send(result.is_ok());
                let _ = reply.send(result);
            }
            .instrument(span),
        );
    }
}

/// How long the mirror's consumer waits for an append to write to the mirror a record it has a
/// delivery report for, before it decodes and mirrors the record itself (skipped by id if the
/// append writes it after all).
const OWN_RECORD_PATIENCE: Duration = Duration::from_secs(5);

/// Where a record this process appended stands with its mirror.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    /// Delivered; its append has not written it to the mirror yet.
    Pending,
    /// Its append wrote it to the mirror.
    Mirrored,
}

/// The records this process appended, by partition and offset, from their delivery report until
/// the mirror's consumer passes them. The consumer skips a mirrored one without decoding it, and
/// waits while one is pending: it would otherwise decode and store the record itself, and the
/// append would then find its events already there (about a tenth of them under load, before
/// records were marked at their delivery report). Since the consumer does not go past a pending
/// record, the offsets it keeps never pass a record that is in the topics but not in the mirror.
#[derive(Debug)]
struct OwnRecords {
    marks: std::sync::Mutex<HashMap<(String, i32), HashMap<i64, Mark>>>,
    /// Bumped whenever a pending record is settled, for a consumer waiting on one.
    settled: watch::Sender<u64>,
}

impl Default for OwnRecords {
    fn default() -> Self {
        Self {
            marks: std::sync::Mutex::default(),
            settled: watch::Sender::new(0),
        }
    }
}

impl OwnRecords {
    /// A record of this process's was delivered at `offset`.
    fn delivered(&self, partition: &(String, i32), offset: i64) {
        if let Ok(mut marks) = self.marks.lock() {
            match marks.get_mut(partition) {
                Some(offsets) => {
                    offsets.insert(offset, Mark::Pending);
                }
                None => {
                    marks.insert(partition.clone(), HashMap::from([(offset, Mark::Pending)]));
                }
            }
        }
    }

    /// The append that delivered `records` wrote them to the mirror (`mirrored`), or failed
    /// before it did, leaving them to the consumer.
    fn settle(&self, records: &[((String, i32), i64)], mirrored: bool) {
        if let Ok(mut marks) = self.marks.lock() {
            for (partition, offset) in records {
                let Some(offsets) = marks.get_mut(partition) else {
                    continue;
                };
                if mirrored {
                    // Only a mark the consumer has not passed yet is kept.
                    if let Some(mark) = offsets.get_mut(offset) {
                        *mark = Mark::Mirrored;
                    }
                } else {
                    offsets.remove(offset);
                }
            }
        }
        self.settled.send_modify(|generation| *generation += 1);
    }

    fn mark(&self, partition: &(String, i32), offset: i64) -> Option<Mark> {
        let marks = self.marks.lock().ok()?;
        marks.get(partition)?.get(&offset).copied()
    }

    /// Whether the record the consumer reached is one this process appended and wrote to the
    /// mirror itself (then forgotten), waiting at most `patience` while its append is writing it.
    async fn take(&self, partition: &(String, i32), offset: i64, patience: Duration) -> bool {
        let mut settled = None;
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match self.mark(partition, offset) {
                None => return false,
                Some(Mark::Mirrored) => {
                    if let Ok(mut marks) = self.marks.lock()
                        && let Some(offsets) = marks.get_mut(partition)
                    {
                        offsets.remove(&offset);
                    }
                    return true;
                }
                Some(Mark::Pending) => {}
            }
            // Subscribed before the mark is read again, so a settlement in between is seen.
            let Some(receiver) = settled.as_mut() else {
                settled = Some(self.settled.subscribe());
                continue;
            };
            let changed = tokio::time::timeout_at(deadline, receiver.changed()).await;
            if !matches!(changed, Ok(Ok(()))) {
                warn!(
                    topic = %partition.0,
                    partition = partition.1,
                    offset,
                    "an append has not written its delivered record to the mirror in time; the consumer mirrors it"
                );
                return false;
            }
        }
    }

    /// Forgets the marks the consumer has passed (`offsets`: the next offset it reads, by
    /// partition): records it read before their delivery report was marked, and mirrored itself.
    fn forget_passed(&self, offsets: &Offsets) {
        if let Ok(mut marks) = self.marks.lock() {
            for (partition, next) in offsets {
                if let Some(written) = marks.get_mut(partition) {
                    written.retain(|offset, _| offset >= next);
                }
            }
        }
    }
}

/// The outcome of one append: every delivery report, the appends before it; then its events go
/// to the mirror straight away (not read back from the topics), where they get their positions.
async fn settle(
    enqueued: Enqueued,
    before: Shared<BoxFuture<'static, bool>>,
    mirror: &EmbeddedLog,
    own: &OwnRecords,
    events: Vec<Event>,
) -> Result<Vec<LogPosition>> {
    let Enqueued { deliveries, values } = enqueued;
    let mut delivered = Vec::with_capacity(deliveries.len());
    let mut failure = None;
    for (topic, delivery) in deliveries {
        match delivery.await {
            Ok(Ok(report)) => {
                let partition = (topic.to_owned(), report.partition);
                own.delivered(&partition, report.offset);
                delivered.push((partition, report.offset));
            }
            Ok(Err((error, _))) => {
                failure.get_or_insert(kafka(error));
            }
            Err(_) => {
                failure.get_or_insert(Error::Closed);
            }
        }
    }
    let written = write_delivered(before, failure, mirror, events, values).await;
    own.settle(&delivered, written.is_ok());
    written
}

/// Writes to the mirror the events of an append whose records were all delivered, once the
/// appends before it succeeded; their positions.
async fn write_delivered(
    before: Shared<BoxFuture<'static, bool>>,
    failure: Option<Error>,
    mirror: &EmbeddedLog,
    events: Vec<Event>,
    values: Vec<String>,
) -> Result<Vec<LogPosition>> {
    if !before.await {
        return Err(Error::Stopped);
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    let ids: Vec<EventId> = events.iter().map(|e| e.event_id).collect();
    match mirror.append_encoded(&events, values).await {
        // The consumer was first (or the event was appended before): its position stands.
        Err(Error::DuplicateEventId(_)) => {
            mirror_new(mirror, events).await?;
            let mut positions = Vec::with_capacity(ids.len());
            for id in &ids {
                let stored = mirror.get(*id).await?.ok_or_else(|| {
                    Error::Corrupt(format!("event {id} was delivered but is not in the mirror"))
                })?;
                positions.push(stored.position);
            }
            Ok(positions)
        }
        written => written,
    }
}

/// Follows every partition of the stage topics into the mirror, and hands what it stored to the
/// readers of [`EventLog::follow_foreign`].
async fn mirror_loop(
    consumer: Arc<StreamConsumer>,
    mirror: EmbeddedLog,
    own: Arc<OwnRecords>,
    foreign: broadcast::Sender<ForeignBatch>,
    dir: PathBuf,
    mut offsets: Offsets,
    progress: watch::Sender<Offsets>,
) {
    let mut stream = consumer.stream();
    loop {
        let Some(first) = stream.next().await else {
            return;
        };
        let mut batch = Vec::new();
        let mut received = vec![first];
        while received.len() < 2048 {
            match stream.next().now_or_never() {
                Some(Some(next)) => received.push(next),
                _ => break,
            }
        }
        for message in received {
            let message = match message {
                Ok(message) => message,
                Err(failure) => {
                    warn!(error = %failure, "the mirror cannot read the topics; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let partition = (message.topic().to_owned(), message.partition());
            if !own
                .take(&partition, message.offset(), OWN_RECORD_PATIENCE)
                .await
            {
                match decode(&message) {
                    Ok(event) => batch.push(event),
                    Err(failure) => {
                        error!(error = %failure, "skipping a record that is not an event")
                    }
                }
            }
            offsets.insert(partition, message.offset() + 1);
        }
        own.forget_passed(&offsets);
        let span = info_span!("log.mirror", events = batch.len());
        let stored = loop {
            match mirror_new(&mirror, batch.clone())
                .instrument(span.clone())
                .await
            {
                Ok(stored) => break stored,
                Err(failure) => {
                    error!(error = %failure, "the mirror cannot store what it read; retrying");
                    mirror.resume();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        if !stored.is_empty() {
            // No reader follows (an error here) unless this process captures.
            let _ = foreign.send(Arc::new(stored));
        }
        if let Err(failure) = write_offsets(&dir, &offsets) {
            // Not fatal: a restart reads again what it has mirrored, and skips it by id.
            warn!(error = %failure, "cannot keep the mirror's offsets");
        }
        progress.send_replace(offsets.clone());
    }
}

/// Appends to the mirror the events it does not hold yet, once each, and gives those it appended
/// with their positions. Two writers share the mirror (the consumer, and appends writing what
/// they delivered), so an event may land between the check and the append: the check is made
/// again until the append takes what is left.
async fn mirror_new(mirror: &EmbeddedLog, events: Vec<Event>) -> Result<Vec<StoredEvent>> {
    let mut seen = HashSet::with_capacity(events.len());
    let mut events: Vec<Event> = events
        .into_iter()
        .filter(|event| seen.insert(event.event_id))
        .collect();
    loop {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        match mirror.append(events.clone()).await {
            Ok(positions) => {
                return Ok(positions
                    .into_iter()
                    .zip(events)
                    .map(|(position, event)| StoredEvent { position, event })
                    .collect());
            }
            Err(Error::DuplicateEventId(_)) => {
                let mut new = Vec::with_capacity(events.len());
                for event in events {
                    if mirror.get(event.event_id).await?.is_none() {
                        new.push(event);
                    }
                }
                events = new;
            }
            Err(failure) => return Err(failure),
        }
    }
}

/// Batches of mirrored events that wait for a slow [`EventLog::follow_foreign`] reader; one that
/// falls further behind reads the mirror again.
const FOREIGN_BATCHES: usize = 64;

/// The events the mirror's consumer stored at once, with their positions.
type ForeignBatch = Arc<Vec<StoredEvent>>;

/// [`EventLog::follow_foreign`] on Kafka: the mirror after `after` up to its head as it is once
/// `batches` is subscribed, then what the mirror's consumer stores (`batches`: the events it
/// decoded from the topics, other processes' events). A reader that falls more than
/// [`FOREIGN_BATCHES`] behind misses batches, and reads the mirror again up to its head: a batch
/// is sent after it is stored, so what it missed is there. Events at or before the last position
/// given are skipped, so nothing is given twice, and positions only grow.
fn follow_mirrored(
    mirror: EmbeddedLog,
    batches: broadcast::Receiver<ForeignBatch>,
    after: LogPosition,
) -> BoxStream<'static, Result<StoredEvent>> {
    struct Follow {
        mirror: EmbeddedLog,
        batches: broadcast::Receiver<ForeignBatch>,
        after: LogPosition,
        /// While reading the mirror: up to where.
        until: Option<LogPosition>,
        buffered: VecDeque<StoredEvent>,
        failed: bool,
    }
    let state = Follow {
        until: Some(mirror.head()),
        mirror,
        batches,
        after,
        buffered: VecDeque::new(),
        failed: false,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        loop {
            if state.failed {
                return None;
            }
            if let Some(next) = state.buffered.pop_front() {
                state.after = next.position;
                return Some((Ok(next), state));
            }
            if let Some(until) = state.until {
                if state.after >= until {
                    state.until = None;
                    continue;
                }
                match state.mirror.read_after(state.after, 512).await {
                    Ok(events) if events.is_empty() => state.until = None,
                    Ok(events) => state.buffered.extend(events),
                    Err(failure) => {
                        state.failed = true;
                        return Some((Err(failure), state));
                    }
                }
                continue;
            }
            match state.batches.recv().await {
                Ok(batch) => state.buffered.extend(
                    batch
                        .iter()
                        .filter(|stored| stored.position > state.after)
                        .cloned(),
                ),
                Err(RecvError::Lagged(_)) => state.until = Some(state.mirror.head()),
                Err(RecvError::Closed) => return None,
            }
        }
    })
    .boxed()
}

#[async_trait]
impl EventLog for KafkaLog {
    fn append(&self, events: Vec<Event>) -> BoxFuture<'static, Result<Vec<LogPosition>>> {
        if events.is_empty() {
            return futures_util::future::ready(Ok(Vec::new())).boxed();
        }
        let span = info_span!("log.append", log = "kafka", events = events.len());
        let trace = trace_headers(&span);
        let (reply, answer) = oneshot::channel();
        let sent = self.inner.requests.send(Append {
            events,
            trace,
            reply,
            span,
        });
        async move {
            sent.map_err(|_| Error::Closed)?;
            answer.await.map_err(|_| Error::Closed)?
        }
        .boxed()
    }

    fn resume(&self) {
        self.inner.epoch.fetch_add(1, Ordering::SeqCst);
        self.inner.stopped.store(false, Ordering::SeqCst);
    }

    async fn read_after(&self, after: LogPosition, limit: usize) -> Result<Vec<StoredEvent>> {
        self.inner.mirror.read_after(after, limit).await
    }

    async fn get(&self, event_id: EventId) -> Result<Option<StoredEvent>> {
        self.inner.mirror.get(event_id).await
    }

    fn head(&self) -> LogPosition {
        self.inner.mirror.head()
    }

    fn follow(&self, after: LogPosition) -> BoxStream<'static, Result<StoredEvent>> {
        self.inner.mirror.follow(after)
    }

    fn follow_foreign(&self, after: LogPosition) -> BoxStream<'static, Result<StoredEvent>> {
        follow_mirrored(
            self.inner.mirror.clone(),
            self.inner.foreign.subscribe(),
            after,
        )
    }

    async fn sync(&self) -> Result<()> {
        let consumer = self.inner.consumer.clone();
        let partitions = self.inner.partitions.clone();
        let timeout = self.inner.config.delivery_timeout;
        let wanted = tokio::task::spawn_blocking(move || {
            partitions
                .into_iter()
                .map(|(topic, partition)| {
                    let (_, high) = consumer
                        .fetch_watermarks(&topic, partition, timeout)
                        .map_err(kafka)?;
                    Ok(((topic, partition), high))
                })
                .collect::<Result<Vec<_>>>()
        })
        .await
        .map_err(|_| Error::Closed)??;
        let mut mirrored = self.inner.mirrored.clone();
        mirrored_up_to(&mut mirrored, &wanted, timeout).await
    }

    fn is_shared(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use stigmergy_testkit::{Mix, generate};

    fn positions(stored: &[StoredEvent]) -> Vec<u64> {
        stored.iter().map(|s| s.position.0).collect()
    }

    async fn take(
        follow: &mut BoxStream<'static, Result<StoredEvent>>,
        count: usize,
    ) -> Vec<StoredEvent> {
        let mut taken = Vec::with_capacity(count);
        for _ in 0..count {
            let next = tokio::time::timeout(Duration::from_secs(10), follow.next())
                .await
                .expect("the follower gives the next event")
                .expect("the follower has not ended")
                .expect("the follower reads");
            taken.push(next);
        }
        taken
    }

    /// Stores `events` as the mirror's consumer does, and sends them on.
    async fn mirror_foreign(
        mirror: &EmbeddedLog,
        sender: &broadcast::Sender<ForeignBatch>,
        events: &[Event],
    ) {
        let stored = mirror_new(mirror, events.to_vec()).await.unwrap();
        sender.send(Arc::new(stored)).unwrap();
    }

    const PATIENCE: Duration = Duration::from_secs(10);

    fn partition() -> (String, i32) {
        ("stigmergy.design.v1".to_owned(), 3)
    }

    #[tokio::test]
    async fn the_consumer_skips_a_record_its_append_mirrored_once_and_decodes_the_others() {
        let own = OwnRecords::default();
        own.delivered(&partition(), 7);
        own.settle(&[(partition(), 7)], true);
        assert!(
            own.take(&partition(), 7, PATIENCE).await,
            "mirrored by its append"
        );
        assert!(
            !own.take(&partition(), 7, PATIENCE).await,
            "forgotten once passed"
        );
        assert!(
            !own.take(&partition(), 8, PATIENCE).await,
            "never delivered here"
        );
        assert!(
            !own.take(&("stigmergy.design.v1".to_owned(), 2), 7, PATIENCE)
                .await
        );
    }

    /// Record 7 delivered, the consumer reaching it, then its append settling with `mirrored`:
    /// whether the consumer took it as mirrored, once it stopped waiting.
    async fn consumer_reaching_a_pending_record(mirrored: bool) -> bool {
        let own = Arc::new(OwnRecords::default());
        own.delivered(&partition(), 7);
        let consumer = tokio::spawn({
            let own = own.clone();
            async move { own.take(&partition(), 7, PATIENCE).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !consumer.is_finished(),
            "the record is pending: the consumer waits"
        );
        own.settle(&[(partition(), 7)], mirrored);
        let taken = tokio::time::timeout(Duration::from_secs(1), consumer).await;
        taken
            .expect("the consumer stops waiting once the append settled")
            .unwrap()
    }

    #[tokio::test]
    async fn the_consumer_waits_for_a_delivered_record_until_its_append_has_written_it() {
        assert!(
            consumer_reaching_a_pending_record(true).await,
            "then skips it as mirrored"
        );
    }

    #[tokio::test]
    async fn a_delivered_record_whose_append_failed_is_left_to_the_consumer() {
        assert!(
            !consumer_reaching_a_pending_record(false).await,
            "the consumer decodes and mirrors it"
        );
    }

    #[tokio::test]
    async fn a_record_pending_too_long_is_left_to_the_consumer() {
        let own = OwnRecords::default();
        own.delivered(&partition(), 7);
        let patience = Duration::from_millis(100);
        let started = std::time::Instant::now();
        assert!(!own.take(&partition(), 7, patience).await);
        assert!(started.elapsed() >= patience, "it waited first");
    }

    #[tokio::test]
    async fn marks_the_consumer_has_passed_are_forgotten() {
        let own = OwnRecords::default();
        own.delivered(&partition(), 5);
        own.delivered(&partition(), 9);
        own.forget_passed(&Offsets::from([(partition(), 6)]));
        own.settle(&[(partition(), 5), (partition(), 9)], true);
        assert_eq!(own.mark(&partition(), 5), None, "read before it was marked");
        assert_eq!(own.mark(&partition(), 9), Some(Mark::Mirrored));
    }

    #[tokio::test]
    async fn following_the_foreign_reads_the_mirror_then_only_what_the_consumer_stores_and_the_mirror_again_after_missing_batches()
     {
        let dir = tempfile::tempdir().unwrap();
        let mirror = EmbeddedLog::open(dir.path(), EmbeddedLogConfig::default()).unwrap();
        let events = generate(
            3,
            &Mix {
                events: 40,
                organizations: 3,
                ..Mix::default()
            },
        )
        .events;
        mirror.append(events[..10].to_vec()).await.unwrap();
        let (sender, receiver) = broadcast::channel(2);
        let mut follow = follow_mirrored(mirror.clone(), receiver, LogPosition(3));

        // What the mirror held: from it, whoever appended it.
        let first = take(&mut follow, 7).await;
        assert_eq!(positions(&first), (4..=10).collect::<Vec<_>>());
        assert_eq!(first[0].event, events[3]);

        // This process's own appends are not given; the consumer's batches are, with the
        // mirror's positions.
        mirror.append(events[10..20].to_vec()).await.unwrap();
        mirror_foreign(&mirror, &sender, &events[20..25]).await;
        let foreign = take(&mut follow, 5).await;
        assert_eq!(positions(&foreign), (21..=25).collect::<Vec<_>>());
        assert_eq!(foreign[0].event, events[20]);

        // Three batches with room for two: the first is missed, so the mirror is read again up
        // to its head (own events included), and what the remaining batches repeat is skipped.
        mirror_foreign(&mirror, &sender, &events[25..28]).await;
        mirror_foreign(&mirror, &sender, &events[28..31]).await;
        mirror.append(events[31..34].to_vec()).await.unwrap();
        mirror_foreign(&mirror, &sender, &events[34..37]).await;
        let caught_up = take(&mut follow, 12).await;
        assert_eq!(positions(&caught_up), (26..=37).collect::<Vec<_>>());
        mirror_foreign(&mirror, &sender, &events[37..40]).await;
        let last = take(&mut follow, 3).await;
        assert_eq!(positions(&last), (38..=40).collect::<Vec<_>>());
        assert!(
            follow.next().now_or_never().is_none(),
            "nothing is given twice"
        );

        // The log closing ends the follower.
        drop(sender);
        assert!(follow.next().await.is_none());
    }
}
