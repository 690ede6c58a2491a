//! The projector as a member of a Kafka consumer group: the group splits the partitions of the
//! stage topics among its members, and each member applies what it reads to the views store in
//! pages, each page with the offsets it reached in ONE transaction of the store (Kafka's own
//! offset commits are never used).
//!
//! When partitions are assigned to a member, it resumes each from the offset the store holds
//! for the group (from the beginning when it holds none). A member that crashes, or loses a
//! partition in a rebalance, leaves the store at its last committed page; whoever reads the
//! partition next starts there. An event read twice is applied once: the store skips ids it
//! holds. The views converge whatever the interleaving across partitions.
//!
//! Into a views store that holds no events yet, a member's first page is what its partitions
//! held when it read its first record (up to their high watermarks then, at most
//! `first_page_size` events; it ends sooner when its assignment changes or nothing comes for
//! two seconds), which the store derives in memory and writes in bulk: catching up from zero (a
//! new deployment, a rebuild into a fresh database) costs a fraction of applying the same events
//! page after page.
//!
//! After each page, a member publishes the open-metadata document (JSON-LD, as `GET /id/{id}`
//! answers it: `stigmergy_store::document`) of every resource the page's events touch, and of
//! everything downstream of those, on `stigmergy.metadata.v1` (compacted, keyed by the
//! resource), and each of their anomalies on `stigmergy.anomalies.v1`; once the broker has acknowledged them, it stores the
//! page's offsets again under `<group>.published`. A member resumes each partition from the
//! lesser of the two offsets, so a crash between applying and publishing publishes again
//! (applying again changes nothing): publication is at least once. Each document carries
//! `asOf`, the views' position when it was read; members publish side by side, so of the
//! documents of one resource the one with the greatest `asOf` is the current one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;
use stigmergy_domain::views::{Direction, EventIndex};
use stigmergy_domain::{Event, Iri, LogPosition};
use stigmergy_log::kafka::{self, ANOMALIES_TOPIC, KafkaConfig, METADATA_TOPIC, STAGE_TOPICS};
use stigmergy_store::document::gather;
use stigmergy_store::{EventScope, PartitionOffset, ViewStore};
use tokio::runtime::Handle;
use tracing::{error, info, info_span, warn};

use crate::{ProjectorMetrics, Result};

/// The group the views projectors join unless told otherwise.
pub const DEFAULT_GROUP: &str = "stigmergy-views";

/// Most events applied in one transaction by a group member, unless configured otherwise.
pub const DEFAULT_GROUP_PAGE_SIZE: usize = 5_000;

/// How long a member catching up waits for a record before it applies what it read (its
/// partitions hold no more, or the broker stalls).
const CATCH_UP_IDLE: Duration = Duration::from_secs(2);

/// A views projector that is one member of a consumer group.
#[derive(Clone, Debug)]
pub struct GroupProjector {
    config: KafkaConfig,
    group: String,
    store: Arc<dyn ViewStore>,
    page_size: usize,
    first_page_size: usize,
    publish: bool,
    documents: Documents,
    metrics: ProjectorMetrics,
}

/// How published documents link and name: the public base URL of the item pages (`[open]
/// public_url`; empty gives links relative to the resolver's root) and the names of
/// organisations (the directory).
#[derive(Clone)]
pub struct Documents {
    pub base: String,
    pub names: Arc<NamesOf>,
    /// Called with the organisations that recorded a page's events before its documents are
    /// read, so that their names are known (the directory reloads when it has not seen one
    /// yet: an organisation registered a moment before its first event).
    pub recorders: Arc<Recorders>,
}

/// The name of an organisation, when known.
pub type NamesOf = dyn Fn(&Iri) -> Option<String> + Send + Sync;

/// Makes the names of these organisations known.
pub type Recorders = dyn Fn(&[Iri]) + Send + Sync;

impl std::fmt::Debug for Documents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Documents")
            .field("base", &self.base)
            .finish()
    }
}

impl Default for Documents {
    fn default() -> Self {
        Self {
            base: String::new(),
            names: Arc::new(|_| None),
            recorders: Arc::new(|_| {}),
        }
    }
}

/// The name under which a group keeps the offsets whose pages it has published.
fn published(group: &str) -> String {
    format!("{group}.published")
}

/// A running member: stop it to leave the group after the page it is applying.
#[derive(Debug)]
pub struct Running {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<()>>,
}

impl Running {
    /// Asks the member to stop, and waits until it has left the group.
    pub fn stop(self) -> Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or_else(|_| {
            Err(crate::Error::Kafka(
                "the projector's consumer thread panicked".into(),
            ))
        })
    }

    /// Whether the member stopped by itself (it failed).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

impl GroupProjector {
    pub fn new(config: KafkaConfig, group: impl Into<String>, store: Arc<dyn ViewStore>) -> Self {
        Self {
            config,
            group: group.into(),
            store,
            page_size: DEFAULT_GROUP_PAGE_SIZE,
            first_page_size: crate::DEFAULT_FIRST_PAGE_SIZE,
            publish: true,
            documents: Documents::default(),
            metrics: ProjectorMetrics::default(),
        }
    }

    /// Counts what it applies and publishes, and how far behind its partitions it is, into
    /// `metrics`.
    pub fn with_metrics(mut self, metrics: ProjectorMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// How the documents it publishes link and name.
    pub fn with_documents(mut self, documents: Documents) -> Self {
        self.documents = documents;
        self
    }

    /// Whether to publish records and anomalies after each page (on by default).
    pub fn with_publishing(mut self, publish: bool) -> Self {
        self.publish = publish;
        self
    }

    /// Most events applied in one transaction.
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Most events in the first page applied into a views store that holds no events (read up
    /// to the partitions' high watermarks when the member started, derived in memory). At most
    /// the page size turns the catch-up page off.
    pub fn with_first_page_size(mut self, first_page_size: usize) -> Self {
        self.first_page_size = first_page_size.max(1);
        self
    }

    /// Joins the group and applies what it is given, on a thread of its own, until stopped.
    /// `runtime` runs the store's calls. The topics must exist (`kafka::ensure_topics`).
    pub fn start(self, runtime: Handle) -> Result<Running> {
        let rebalances = Arc::new(AtomicU64::new(0));
        let context = Rebalancing {
            store: self.store.clone(),
            group: self.group.clone(),
            publish: self.publish,
            runtime: runtime.clone(),
            rebalances: rebalances.clone(),
            metrics: self.metrics.clone(),
        };
        let publisher: Option<FutureProducer> = if self.publish {
            Some(
                self.config
                    .producer()
                    // Publication is at least once (a repeat is harmless on a compacted topic
                    // read by `asOf`), so it does without the idempotent producer, whose
                    // broker thread spun on the test broker's slow acknowledgements.
                    .set("enable.idempotence", "false")
                    .set("linger.ms", "50")
                    .create()
                    .map_err(|e| crate::Error::Kafka(e.to_string()))?,
            )
        } else {
            None
        };
        let consumer: BaseConsumer<Rebalancing> = self
            .config
            .consumer(&self.group)
            .set("partition.assignment.strategy", "range")
            // A member that dies is replaced after 10 s of silence (Kafka's default is 45 s).
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            // Also bounds how long a join waits for the group: a join the coordinator never
            // answers is sent again after this (seen with the test broker).
            .set("max.poll.interval.ms", "20000")
            .create_with_context(context)
            .map_err(|e| crate::Error::Kafka(e.to_string()))?;
        consumer
            .subscribe(&STAGE_TOPICS)
            .map_err(|e| crate::Error::Kafka(e.to_string()))?;
        let consumer = Arc::new(consumer);
        self.metrics.assigned(Vec::new());
        watch_watermarks(
            Arc::downgrade(&consumer),
            self.metrics.clone(),
            self.config.delivery_timeout,
        )?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("projector-{}", self.group))
            .spawn(move || {
                self.consume(
                    &consumer,
                    publisher.as_ref(),
                    &stopping,
                    &rebalances,
                    &runtime,
                )
            })
            .map_err(|e| crate::Error::Kafka(e.to_string()))?;
        Ok(Running { stop, thread })
    }

    fn consume(
        &self,
        consumer: &BaseConsumer<Rebalancing>,
        publisher: Option<&FutureProducer>,
        stop: &AtomicBool,
        rebalances: &AtomicU64,
        runtime: &Handle,
    ) -> Result<()> {
        info!(group = %self.group, "projector joined its consumer group");
        // Into a store that holds no events, the first page runs up to the partitions' high
        // watermarks (see the module's documentation).
        let mut catching_up = self.first_page_size > self.page_size && self.holds_nothing(runtime);
        let mut catch_up: Option<CatchUp> = None;
        let mut page = Page::default();
        while !stop.load(Ordering::SeqCst) {
            let wait = if catch_up.is_some() {
                CATCH_UP_IDLE
            } else if page.events.is_empty() {
                Duration::from_millis(100)
            } else {
                Duration::ZERO
            };
            match consumer.poll(wait) {
                Some(Ok(message)) => {
                    let partition = (message.topic().to_owned(), message.partition());
                    let next = message.offset() + 1;
                    page.events.extend(decoded(&page.span, &message));
                    let complete = if catching_up {
                        let first = catch_up.get_or_insert_with(|| {
                            CatchUp::start(consumer, rebalances, &self.config)
                        });
                        first.read(&partition, next);
                        first.is_done(rebalances) || page.events.len() >= self.first_page_size
                    } else {
                        page.events.len() >= self.page_size
                    };
                    page.offsets.insert(partition, next);
                    if !complete {
                        continue;
                    }
                }
                Some(Err(failure)) => {
                    warn!(error = %failure, "the projector cannot read the topics");
                    continue;
                }
                None if page.offsets.is_empty() => continue,
                None => {}
            }
            if catching_up {
                info!(group = %self.group, events = page.events.len(), "first page read: applying it");
                catching_up = false;
                catch_up = None;
            }
            let full = std::mem::take(&mut page);
            self.apply(full, publisher, stop, runtime);
        }
        if !page.offsets.is_empty() {
            self.apply(page, publisher, stop, runtime);
        }
        consumer.unsubscribe();
        info!(group = %self.group, "projector left its consumer group");
        Ok(())
    }

    /// Whether the views store holds no event yet (when it cannot tell: no).
    fn holds_nothing(&self, runtime: &Handle) -> bool {
        runtime
            .block_on(self.store.events(&EventScope::All, LogPosition(0), 1))
            .is_ok_and(|events| events.is_empty())
    }

    /// Applies a page, and publishes what it touched, each tried again until it works or the
    /// member is asked to stop.
    fn apply(
        &self,
        page: Page,
        publisher: Option<&FutureProducer>,
        stop: &AtomicBool,
        runtime: &Handle,
    ) {
        let offsets: Vec<PartitionOffset> = page
            .offsets
            .into_iter()
            .map(|((topic, partition), next)| PartitionOffset {
                topic,
                partition,
                next,
            })
            .collect();
        let span = page.span;
        span.record("events", page.events.len());
        let started = std::time::Instant::now();
        let applied = persist("apply a page to the views", stop, || {
            span.in_scope(|| {
                runtime
                    .block_on(self.store.apply_consumed(
                        &self.group,
                        page.events.clone(),
                        offsets.clone(),
                    ))
                    .map_err(crate::Error::from)
                    .inspect_err(|_| self.metrics.retrying("apply"))
            })
        });
        let Some(new) = applied else { return };
        span.record("new", new);
        self.metrics
            .applied(page.events.len(), Some(new), started.elapsed());
        self.metrics.offsets_applied(
            offsets
                .iter()
                .map(|o| (o.topic.as_str(), o.partition, o.next)),
        );
        if let Some(publisher) = publisher {
            persist("publish what a page changed", stop, || {
                span.in_scope(|| runtime.block_on(self.publish(publisher, &page.events, &offsets)))
                    .inspect_err(|_| self.metrics.retrying("publish"))
            });
        }
    }

    /// Publishes the documents (and the anomalies) of what `events` touch and of what is
    /// downstream of that, then notes `offsets` as published.
    async fn publish(
        &self,
        producer: &FutureProducer,
        events: &[Event],
        offsets: &[PartitionOffset],
    ) -> Result<()> {
        let mut touched: Vec<Iri> = events
            .iter()
            .flat_map(|event| EventIndex::of(event, LogPosition(0)).touches)
            .map(|touch| touch.resource)
            .collect();
        touched.sort();
        touched.dedup();
        // A document changes with what it touches, and with what it is made from: a footprint
        // or an attribution passes on downstream.
        let mut resources = touched.clone();
        for resource in &touched {
            let downstream = self
                .store
                .lineage(resource, Direction::Downstream, PUBLISHED_REACH)
                .await?;
            resources.extend(downstream.nodes.into_iter().map(|(node, _)| node));
        }
        resources.sort();
        resources.dedup();
        // How far the views had come before the documents were read: members publish side by
        // side, so a document read earlier may land later; a reader keeps the greatest `asOf`.
        let as_of = self.store.position(&self.group).await?.0;
        let mut recorders: Vec<Iri> = events.iter().map(|e| e.recorded_by.clone()).collect();
        recorders.sort();
        recorders.dedup();
        (self.documents.recorders)(&recorders);
        let names = self.documents.names.as_ref();
        // A few documents are read at once, so that the store's round trips overlap.
        let mut items = futures_util::stream::iter(&resources)
            .map(|resource| gather(self.store.as_ref(), names, as_of, resource))
            .buffered(DOCUMENTS_AT_ONCE);
        let mut deliveries = Vec::new();
        while let Some(gathered) = items.next().await {
            let Some(item) = gathered? else {
                continue;
            };
            let resource = &item.id;
            let document = item.document(&self.documents.base);
            deliveries.push((
                true,
                send(
                    producer,
                    METADATA_TOPIC,
                    resource,
                    &document,
                    "application/ld+json",
                )
                .await?,
            ));
            for anomaly in &item.record.anomalies {
                let told = json!({ "resource": resource, "asOf": as_of, "anomaly": anomaly });
                deliveries.push((
                    false,
                    send(
                        producer,
                        ANOMALIES_TOPIC,
                        resource,
                        &told,
                        "application/json",
                    )
                    .await?,
                ));
            }
        }
        let mut documents = 0;
        for (document, delivery) in deliveries {
            match delivery.await {
                Ok(Ok(_)) => documents += usize::from(document),
                Ok(Err((failure, _))) => return Err(crate::Error::Kafka(failure.to_string())),
                Err(_) => return Err(crate::Error::Kafka("the producer stopped".into())),
            }
        }
        self.store
            .apply_consumed(&published(&self.group), Vec::new(), offsets.to_vec())
            .await?;
        self.metrics.published(documents);
        Ok(())
    }
}

/// How many documents a member reads from the store at once while publishing.
const DOCUMENTS_AT_ONCE: usize = 8;

/// How far downstream of what a page touched documents are published again.
const PUBLISHED_REACH: u32 = 64;

/// Does `work` until it succeeds (pausing longer after each failure), unless the member is
/// asked to stop; `None` when it stopped first.
fn persist<T>(what: &str, stop: &AtomicBool, mut work: impl FnMut() -> Result<T>) -> Option<T> {
    let mut pause = Duration::from_millis(100);
    loop {
        match work() {
            Ok(done) => return Some(done),
            Err(failure) if !stop.load(Ordering::SeqCst) => {
                error!(error = %failure, "cannot {what}; trying again");
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(10));
            }
            Err(failure) => {
                error!(error = %failure, "stopping before it could {what}; the page is read again at the next start");
                return None;
            }
        }
    }
}

/// How often a member asks the brokers for its partitions' watermarks, for its lag.
const WATERMARKS_EVERY: Duration = Duration::from_secs(5);

/// Asks the brokers for the watermarks of the member's partitions every
/// [`WATERMARKS_EVERY`] (two requests to each broker: the earliest and the latest offsets of
/// every partition it leads), on a thread of its own, so that the lag goes on growing while
/// applying is stuck; until the member has left.
fn watch_watermarks(
    consumer: std::sync::Weak<BaseConsumer<Rebalancing>>,
    metrics: ProjectorMetrics,
    timeout: Duration,
) -> Result<()> {
    let offset = |offset: Offset| match offset {
        Offset::Offset(offset) => Some(offset),
        _ => None,
    };
    std::thread::Builder::new()
        .name("projector-lag".into())
        .spawn(move || {
            // Said once when asking starts failing, not at every attempt.
            let mut failing = false;
            loop {
                let Some(member) = consumer.upgrade() else {
                    return;
                };
                // ListOffsets with the "timestamps" of the earliest (-2) and the latest (-1)
                // offsets, for every assigned partition at once.
                let asked = member.assignment().and_then(|assigned| {
                    if assigned.count() == 0 {
                        return Ok(None);
                    }
                    let ask = |at: Offset| {
                        let mut partitions = assigned.clone();
                        partitions.set_all_offsets(at)?;
                        member.offsets_for_times(partitions, timeout)
                    };
                    Ok(Some((ask(Offset::Beginning)?, ask(Offset::End)?)))
                });
                drop(member);
                match asked {
                    Ok(None) => {
                        // Until it has partitions, it looks every second.
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                    Ok(Some((low, high))) => {
                        failing = false;
                        for element in high.elements() {
                            let (topic, partition) = (element.topic(), element.partition());
                            let low = low
                                .find_partition(topic, partition)
                                .and_then(|low| offset(low.offset()));
                            if let (Some(low), Some(high)) = (low, offset(element.offset())) {
                                metrics.watermarks((topic.to_owned(), partition), low, high);
                            }
                        }
                    }
                    Err(failure) if !failing => {
                        failing = true;
                        warn!(error = %failure, "cannot read the partitions' watermarks; the lag is not updated until it can");
                    }
                    Err(_) => {}
                }
                std::thread::sleep(WATERMARKS_EVERY);
            }
        })
        .map(drop)
        .map_err(|e| crate::Error::Kafka(e.to_string()))
}

/// The event a record holds (none when it holds no event: logged and skipped), its trace
/// linked to `span`.
fn decoded(span: &tracing::Span, message: &BorrowedMessage<'_>) -> Option<Event> {
    match kafka::decode(message) {
        Ok(event) => {
            kafka::continue_trace(span, message);
            Some(event)
        }
        Err(failure) => {
            error!(error = %failure, "skipping a record that is not an event");
            None
        }
    }
}

/// Enqueues one JSON record of `content_type`, waiting while the producer's queue is full.
async fn send(
    producer: &FutureProducer,
    topic: &str,
    key: &Iri,
    value: &serde_json::Value,
    content_type: &str,
) -> Result<DeliveryFuture> {
    let payload = value.to_string();
    let headers = OwnedHeaders::new().insert(Header {
        key: kafka::header::CONTENT_TYPE,
        value: Some(content_type),
    });
    let mut record = FutureRecord::to(topic)
        .key(key.as_str())
        .payload(&payload)
        .headers(headers);
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err((failure, _)) => return Err(crate::Error::Kafka(failure.to_string())),
        }
    }
}

/// What a member has read and not applied yet.
struct Page {
    events: Vec<Event>,
    offsets: BTreeMap<(String, i32), i64>,
    /// The span of applying it, linked to the traces of the requests that recorded its events.
    span: tracing::Span,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            events: Vec::new(),
            offsets: BTreeMap::new(),
            span: info_span!(
                "projector.apply",
                events = tracing::field::Empty,
                new = tracing::field::Empty
            ),
        }
    }
}

/// Where a member catching up stops reading its first page: the high watermark of each
/// partition it was assigned when it read its first record.
struct CatchUp {
    /// The partitions still to read up to, with their high watermarks.
    targets: BTreeMap<(String, i32), i64>,
    /// The number of rebalances when it started: after another, the first page is applied.
    rebalances: u64,
}

impl CatchUp {
    fn start(
        consumer: &BaseConsumer<Rebalancing>,
        rebalances: &AtomicU64,
        config: &KafkaConfig,
    ) -> Self {
        let rebalances = rebalances.load(Ordering::SeqCst);
        let mut targets = BTreeMap::new();
        match consumer.assignment() {
            Ok(assignment) => {
                for element in assignment.elements() {
                    let (topic, partition) = (element.topic(), element.partition());
                    match consumer.fetch_watermarks(topic, partition, config.delivery_timeout) {
                        Ok((low, high)) if high > low => {
                            targets.insert((topic.to_owned(), partition), high);
                        }
                        Ok(_) => {}
                        Err(failure) => {
                            // Then the page ends when nothing comes for a while.
                            warn!(error = %failure, topic, partition, "cannot read a partition's high watermark");
                            targets.insert((topic.to_owned(), partition), i64::MAX);
                        }
                    }
                }
            }
            Err(failure) => warn!(error = %failure, "cannot read the assignment"),
        }
        Self {
            targets,
            rebalances,
        }
    }

    /// Notes that the member read `partition` up to `next` (exclusive).
    fn read(&mut self, partition: &(String, i32), next: i64) {
        if self
            .targets
            .get(partition)
            .is_some_and(|high| next >= *high)
        {
            self.targets.remove(partition);
        }
    }

    /// Whether every partition was read up to its target, or the assignment changed.
    fn is_done(&self, rebalances: &AtomicU64) -> bool {
        self.targets.is_empty() || rebalances.load(Ordering::SeqCst) != self.rebalances
    }
}

/// Assigns partitions at the offsets the store holds for the group.
struct Rebalancing {
    store: Arc<dyn ViewStore>,
    group: String,
    publish: bool,
    runtime: Handle,
    /// How many times the assignment changed.
    rebalances: Arc<AtomicU64>,
    metrics: ProjectorMetrics,
}

impl ClientContext for Rebalancing {}

impl Rebalancing {
    /// Where to resume each partition: what the group applied, or, when it publishes, the
    /// lesser of that and what it published (a partition missing from either starts over).
    fn stored_offsets(&self) -> Vec<PartitionOffset> {
        let mut pause = Duration::from_millis(100);
        for _ in 0..8 {
            let stored = self.runtime.block_on(async {
                let applied = self.store.consumed(&self.group).await?;
                if !self.publish {
                    return Ok(applied);
                }
                let published = self.store.consumed(&published(&self.group)).await?;
                Ok::<_, stigmergy_store::Error>(
                    applied
                        .into_iter()
                        .filter_map(|mut offset| {
                            let done = published.iter().find(|p| {
                                p.topic == offset.topic && p.partition == offset.partition
                            })?;
                            offset.next = offset.next.min(done.next);
                            Some(offset)
                        })
                        .collect(),
                )
            });
            match stored {
                Ok(offsets) => return offsets,
                Err(failure) => {
                    error!(error = %failure, "cannot read the group's offsets from the store; trying again");
                    std::thread::sleep(pause);
                    pause *= 2;
                }
            }
        }
        // Reading from the beginning is slow but right: the store skips what it holds.
        warn!("reading the assigned partitions from the beginning");
        Vec::new()
    }
}

impl ConsumerContext for Rebalancing {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        self.rebalances.fetch_add(1, Ordering::SeqCst);
        let outcome = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let stored = self.stored_offsets();
                let mut assignment = TopicPartitionList::new();
                let mut assigned = Vec::new();
                for element in partitions.elements() {
                    let resume = stored
                        .iter()
                        .find(|o| o.topic == element.topic() && o.partition == element.partition())
                        .map(|o| o.next);
                    assigned.push(((element.topic().to_owned(), element.partition()), resume));
                    let next = resume.map_or(Offset::Beginning, Offset::Offset);
                    if let Err(failure) =
                        assignment.add_partition_offset(element.topic(), element.partition(), next)
                    {
                        error!(error = %failure, "cannot assign a partition");
                    }
                }
                info!(group = %self.group, pid = std::process::id(), partitions = assignment.count(), "partitions assigned");
                self.metrics.assigned(assigned);
                consumer.assign(&assignment)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                info!(group = %self.group, pid = std::process::id(), partitions = partitions.count(), "partitions revoked");
                self.metrics.assigned(Vec::new());
                consumer.unassign()
            }
            other => {
                warn!(error = ?other, pid = std::process::id(), "rebalance failed; dropping the assignment");
                self.metrics.assigned(Vec::new());
                consumer.unassign()
            }
        };
        if let Err(failure) = outcome {
            error!(error = %failure, "cannot change the assignment");
        }
    }
}
