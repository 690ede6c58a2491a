//! Durability: the server process is killed with SIGKILL while clients append; after a restart
//! every acknowledged event is there, and no batch is there in part.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

const TOKEN: &str = "kill-test-operator";
const EVENTS_PER_BATCH: usize = 10;

/// Starts `stigmergy serve` on a free port and waits until it says where it listens.
async fn start(data_dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stigmergy"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("STIGMERGY_OPERATOR_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the stigmergy binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("Stigmergy is listening on ") {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server starts within 30 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return (child, base);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the server never became ready");
}

fn batch(client_index: usize, round: usize) -> (Vec<String>, Value) {
    let mut ids = Vec::new();
    let events: Vec<Value> = (0..EVENTS_PER_BATCH)
        .map(|i| {
            let event_id = uuid::Uuid::new_v4().to_string();
            ids.push(event_id.clone());
            json!({
                "eventId": event_id,
                "type": "MaterialSourced",
                "occurredAt": "2025-06-01T10:00:00Z",
                "payload": {
                    "lotId": format!("https://kill.example/c{client_index}/r{round}/l{i}"),
                    "material": "PLA", "quantity": { "amount": 5, "unit": "KGM" },
                    "origin": { "name": "Mill", "country": "DE" }, "supplier": { "id": "https://kill.example/s" },
                    "kgCo2ePerUnit": 2.0, "dataQuality": "primary", "recycledContent": 0.0
                }
            })
        })
        .collect();
    (ids, Value::Array(events))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_events_survive_sigkill_and_no_batch_is_left_in_part() {
    let data_dir = tempfile::tempdir().unwrap();
    let (mut server, base) = start(data_dir.path()).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let mut keys = Vec::new();
    for i in 0..8 {
        let answer: Value = client
            .post(format!("{base}/v1/organizations"))
            .bearer_auth(TOKEN)
            .json(&json!({ "name": format!("Workshop {i}") }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        keys.push(answer["apiKey"].as_str().unwrap().to_owned());
    }

    let attempted: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let acknowledged: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let acknowledged_count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for (index, key) in keys.into_iter().enumerate() {
        let (client, base) = (client.clone(), base.clone());
        let (attempted, acknowledged) = (attempted.clone(), acknowledged.clone());
        let (count, stop) = (acknowledged_count.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            for round in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let (ids, body) = batch(index, round);
                attempted.lock().await.push(ids.clone());
                match client
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(response) if response.status() == reqwest::StatusCode::CREATED => {
                        acknowledged.lock().await.push(ids);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(response) => panic!("unexpected answer {}", response.status()),
                    Err(_) => break,
                }
            }
        }));
    }

    // Kill while appends are in full flow.
    let started = std::time::Instant::now();
    while acknowledged_count.load(Ordering::SeqCst) < 200
        && started.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.start_kill().expect("SIGKILL");
    server.wait().await.unwrap();
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    let acknowledged = acknowledged.lock().await.clone();
    let attempted = attempted.lock().await.clone();
    assert!(
        acknowledged.len() >= 200,
        "the clients were appending when the server was killed"
    );
    assert!(
        attempted.len() > acknowledged.len(),
        "some batches were in flight at the kill"
    );

    let (_server, base) = start(data_dir.path()).await;
    let stored = |event_id: String| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let status = client
                .get(format!("{base}/v1/events/{event_id}"))
                .send()
                .await
                .unwrap()
                .status();
            assert!(
                status == reqwest::StatusCode::OK || status == reqwest::StatusCode::NOT_FOUND,
                "{status}"
            );
            status == reqwest::StatusCode::OK
        }
    };
    let mut total_stored = 0;
    for ids in &attempted {
        let mut found = 0;
        for id in ids {
            if stored(id.clone()).await {
                found += 1;
            }
        }
        assert!(
            found == 0 || found == EVENTS_PER_BATCH,
            "a batch was stored in part: {found} of {EVENTS_PER_BATCH}"
        );
        total_stored += found;
    }
    for ids in &acknowledged {
        for id in ids {
            assert!(stored(id.clone()).await, "acknowledged event {id} was lost");
        }
    }
    let ready: Value = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ready["logHead"].as_u64().unwrap() as usize,
        total_stored,
        "nothing but whole batches is in the log"
    );
    println!(
        "killed after {} acknowledged batches; {} attempted; {} events stored after restart",
        acknowledged.len(),
        attempted.len(),
        total_stored
    );
}
