//! Integration tests of the Kafka adapter against a real Kafka-protocol broker (tansu, started
//! per test by `stigmergy_testkit::broker`): what it writes to the topics, what its mirror reads
//! back, and what a second process's mirror sees.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures_util::StreamExt;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use stigmergy_domain::{Event, EventId, EventPayload, Iri};
use stigmergy_log::kafka::{self, STAGE_TOPICS, header};
use stigmergy_log::{EventLog, KafkaConfig, KafkaLog, LogUrl};
use stigmergy_testkit::broker::Broker;
use stigmergy_testkit::{Mix, generate};

const PATIENCE: Duration = Duration::from_secs(60);

fn config(broker: &Broker) -> KafkaConfig {
    let mut config = KafkaConfig::new(broker.bootstrap());
    config.partitions = 3;
    config
}

fn stream(events: usize) -> Vec<Event> {
    generate(
        7,
        &Mix {
            events,
            organizations: 4,
            ..Mix::default()
        },
    )
    .events
}

/// Every record of the stage topics: (topic, key, headers by name, the event).
fn read_topics(
    broker: &Broker,
    expected: usize,
) -> Vec<(String, String, HashMap<String, String>, Event)> {
    let consumer: BaseConsumer = config(broker)
        .consumer("test-reader")
        .create()
        .expect("a consumer");
    let partitions =
        kafka::partitions_of(&consumer, &STAGE_TOPICS, PATIENCE).expect("the topics exist");
    let mut assignment = TopicPartitionList::new();
    for (topic, partition) in &partitions {
        assignment
            .add_partition_offset(topic, *partition, Offset::Beginning)
            .expect("a partition");
    }
    consumer.assign(&assignment).expect("assigned");
    let mut records = Vec::new();
    let deadline = std::time::Instant::now() + PATIENCE;
    while records.len() < expected && std::time::Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("a record");
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
        records.push((
            message.topic().to_owned(),
            key,
            headers,
            kafka::decode(&message).expect("an event"),
        ));
    }
    records
}

/// The topic an event belongs on: its stage's, or for a retraction its original's.
fn topic_of(event: &Event, by_id: &HashMap<EventId, &Event>) -> &'static str {
    match &event.payload {
        EventPayload::EventRetracted(r) => topic_of(by_id[&r.event_id], by_id),
        _ => kafka::stage_topic(event.event_type().stage().expect("a stage")),
    }
}

#[test]
fn kafka_urls_name_the_bootstrap_brokers() {
    assert_eq!(
        "kafka://k1:9092,k2:9093".parse::<LogUrl>().unwrap(),
        LogUrl::Kafka("k1:9092,k2:9093".into())
    );
    for bad in [
        "kafka://",
        "kafka://k1",
        "kafka://k1:port",
        "kafka://:9092",
        "kafka://k1:9092,",
    ] {
        assert!(bad.parse::<LogUrl>().is_err(), "{bad} must be refused");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_land_on_the_stage_topics_keyed_by_subject_and_the_mirror_reads_them_back() {
    let broker = Broker::start();
    let mirror = tempfile::tempdir().unwrap();
    let log = KafkaLog::open(config(&broker), mirror.path())
        .await
        .expect("the log opens");
    let events = stream(300);

    // Appends are enqueued in order without waiting for one another.
    let appends: Vec<_> = events
        .chunks(25)
        .map(|chunk| log.append(chunk.to_vec()))
        .collect();
    let mut positions = Vec::new();
    for append in appends {
        positions.extend(
            tokio::time::timeout(PATIENCE, append)
                .await
                .unwrap()
                .expect("appended"),
        );
    }
    let mut sorted = positions.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        events.len(),
        "every event has a position of its own"
    );
    assert_eq!(log.head().0, events.len() as u64);

    // The mirror holds each event once, and keeps the order of each subject's events within a
    // topic (a subject's events of two stages, say a design and a contribution to it, are on
    // two topics, with no order between them).
    let by_id: HashMap<EventId, &Event> = events.iter().map(|e| (e.event_id, e)).collect();
    let read = log
        .read_after(stigmergy_domain::LogPosition(0), 10_000)
        .await
        .unwrap();
    assert_eq!(read.len(), events.len());
    let appended_order: HashMap<EventId, usize> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (e.event_id, i))
        .collect();
    let mut last_by_subject: HashMap<(&str, &Iri), usize> = HashMap::new();
    for stored in &read {
        let index = appended_order[&stored.event.event_id];
        assert_eq!(stored.event, events[index]);
        let topic = topic_of(&events[index], &by_id);
        if let Some(before) = last_by_subject.insert((topic, &events[index].subject), index) {
            assert!(before < index, "a subject's events stay in order");
        }
    }
    for (event, position) in events.iter().zip(&positions) {
        let got = log.get(event.event_id).await.unwrap().expect("found by id");
        assert_eq!(got.position, *position);
    }

    // On the topics: the stage's topic, the subject as key, the headers of the contract.
    let records = read_topics(&broker, events.len());
    assert_eq!(records.len(), events.len());
    let mut retractions = 0;
    for (topic, key, headers, event) in &records {
        let original = by_id[&event.event_id];
        assert_eq!(event, original);
        assert_eq!(key, original.subject.as_str());
        assert_eq!(headers[header::EVENT_TYPE], original.event_type().name());
        assert_eq!(headers[header::SCHEMA_VERSION], "1");
        assert_eq!(headers[header::EVENT_ID], original.event_id.to_string());
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        if let EventPayload::EventRetracted(_) = &original.payload {
            retractions += 1;
        }
        assert_eq!(topic, topic_of(original, &by_id));
    }
    assert!(
        retractions > 0,
        "the stream retracts something, on its original's topic"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_sees_every_event_once_and_a_reopened_mirror_reads_only_what_is_new() {
    let broker = Broker::start();
    let events = stream(120);
    let (first, second) = events.split_at(60);
    let mirror = tempfile::tempdir().unwrap();
    let writer = KafkaLog::open(config(&broker), mirror.path())
        .await
        .unwrap();
    writer.append(first.to_vec()).await.unwrap();

    let elsewhere = tempfile::tempdir().unwrap();
    let reader = KafkaLog::open(config(&broker), elsewhere.path())
        .await
        .unwrap();
    let mut follow = reader.follow(stigmergy_domain::LogPosition(0));
    writer.append(second.to_vec()).await.unwrap();
    reader.sync().await.expect("the reader catches up");
    assert_eq!(reader.head().0, events.len() as u64);
    let mut seen = HashSet::new();
    for _ in 0..events.len() {
        let next = tokio::time::timeout(PATIENCE, follow.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(seen.insert(next.event.event_id));
    }
    assert_eq!(seen, events.iter().map(|e| e.event_id).collect());
    drop(follow);
    drop(reader);

    // The same event appended again (a retry after a lost acknowledgement) is mirrored once.
    writer.append(vec![events[0].clone()]).await.unwrap();
    let reopened = KafkaLog::open(config(&broker), elsewhere.path())
        .await
        .unwrap();
    reopened.sync().await.unwrap();
    assert_eq!(reopened.head().0, events.len() as u64, "nothing read twice");
    assert!(reopened.is_shared());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_down_appends_fail_and_stay_failed_until_resumed() {
    let mut broker = Broker::start();
    let mut config = config(&broker);
    config.delivery_timeout = Duration::from_secs(3);
    let mirror = tempfile::tempdir().unwrap();
    let log = KafkaLog::open(config, mirror.path()).await.unwrap();
    let events = stream(10);
    log.append(events[..2].to_vec()).await.unwrap();

    broker.kill();
    let failed = tokio::time::timeout(PATIENCE, log.append(events[2..4].to_vec()))
        .await
        .unwrap();
    assert!(failed.is_err(), "no success while the broker is down");
    broker.restart();
    let after = log.append(events[4..6].to_vec()).await;
    assert!(
        matches!(after, Err(stigmergy_log::Error::Stopped)),
        "{after:?}"
    );
    // Once resumed, appends succeed again as soon as the producer has reconnected.
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        log.resume();
        match log.append(events[4..6].to_vec()).await {
            Ok(positions) => {
                assert_eq!(positions.len(), 2);
                break;
            }
            Err(failure) => assert!(
                std::time::Instant::now() < deadline,
                "no append succeeded after the broker came back: {failure}"
            ),
        }
    }
    assert!(log.get(events[0].event_id).await.unwrap().is_some());
}
