//! Subscriptions' source of events, against a real embedded log: the history, then live events
//! with no gap and no duplicate at the switch, and a subscriber that falls more than the buffer
//! behind told so with the cursor to resume from — after which resuming misses nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use stigmergy_domain::{Event, LogPosition};
use stigmergy_gateway::live::{Ended, Live};
use stigmergy_log::{EmbeddedLog, EmbeddedLogConfig, EventLog};

fn events(n: usize) -> Vec<Event> {
    let mix = stigmergy_testkit::Mix {
        events: n,
        organizations: 3,
        ..stigmergy_testkit::Mix::default()
    };
    stigmergy_testkit::Generator::new(7, &mix).collect()
}

async fn positions(
    stream: &mut futures_util::stream::BoxStream<
        'static,
        Result<Arc<stigmergy_log::StoredEvent>, Ended>,
    >,
    n: usize,
) -> Vec<u64> {
    let mut seen = Vec::new();
    for _ in 0..n {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream goes on");
        seen.push(next.expect("an event, not an end").position.0);
    }
    seen
}

#[tokio::test]
async fn a_subscriber_that_falls_more_than_the_buffer_behind_is_told_where_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> =
        Arc::new(EmbeddedLog::open(dir.path(), EmbeddedLogConfig::default()).unwrap());
    let events = events(40);
    log.append(events[..10].to_vec()).await.unwrap();
    let live = Live::start(log.clone(), 4, Default::default());

    let mut stream = live.after(LogPosition(0));
    assert_eq!(
        positions(&mut stream, 10).await,
        (1..=10).collect::<Vec<_>>()
    );
    // Caught up: it waits for live events, which then come through the buffer.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), stream.next())
            .await
            .is_err(),
        "nothing more yet"
    );
    log.append(events[10..12].to_vec()).await.unwrap();
    assert_eq!(positions(&mut stream, 2).await, [11, 12]);

    // Twelve more while the subscriber takes none: more than the buffer of 4.
    for event in &events[12..24] {
        log.append(vec![event.clone()]).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    match stream.next().await {
        Some(Err(Ended::FellBehind { cursor, buffer })) => {
            assert_eq!((cursor, buffer), (LogPosition(12), 4));
        }
        other => panic!("expected to be told it fell behind, got {other:?}"),
    }
    assert!(stream.next().await.is_none(), "and the stream ends");

    // Resumed after its cursor, it misses nothing and repeats nothing, then goes on live.
    let mut resumed = live.after(LogPosition(12));
    assert_eq!(
        positions(&mut resumed, 12).await,
        (13..=24).collect::<Vec<_>>()
    );
    log.append(events[24..26].to_vec()).await.unwrap();
    assert_eq!(positions(&mut resumed, 2).await, [25, 26]);

    // A subscriber far behind when it starts is not "behind": it reads the log, however much
    // was broadcast meanwhile.
    let mut late = live.after(LogPosition(0));
    assert_eq!(positions(&mut late, 26).await, (1..=26).collect::<Vec<_>>());
}
