//! Traces leave the process over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set: a real
//! `stigmergy serve` exports the spans of a capture request to a collector stand-in listening
//! on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::collector::{Collector, contains};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_a_capture_request_are_exported_over_otlp() {
    let collector = Collector::start();

    let data_dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stigmergy"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir.path())
        .env("STIGMERGY_OPERATOR_TOKEN", "otel-test")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint())
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_SERVICE_NAME", "stigmergy-under-test")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Some(rest) = line.strip_prefix("Stigmergy is listening on ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };

    let client = reqwest::Client::new();
    let status = client
        .post(format!("{base}/v1/organizations"))
        .bearer_auth("otel-test")
        .json(&serde_json::json!({ "name": "Traced Workshop" }))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, reqwest::StatusCode::CREATED);
    let answer = client
        .post(format!("{base}/v1/events"))
        .bearer_auth("wrong")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::UNAUTHORIZED);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let exported = collector.exports();
        let spans_of = |name: &str| {
            exported
                .iter()
                .any(|(_, _, body)| contains(body, name.as_bytes()))
        };
        if spans_of("capture.create_organization") && spans_of("capture.record_events") {
            let (path, content_type, body) = &exported[0];
            assert_eq!(path, "/v1/traces");
            assert_eq!(content_type, "application/x-protobuf");
            assert!(
                contains(body, b"stigmergy-under-test"),
                "the service is named by OTEL_SERVICE_NAME"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no span reached the collector: {} requests",
            exported.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.start_kill().unwrap();
}
