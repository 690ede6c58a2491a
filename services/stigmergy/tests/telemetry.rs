//! Traces leave the process over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set: a real
//! `stigmergy serve` exports the spans of a capture request to a collector stand-in listening
//! on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

async fn collect(
    request: HttpRequest,
    body: web::Bytes,
    received: web::Data<Received>,
) -> HttpResponse {
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    received
        .lock()
        .unwrap()
        .push((request.path().to_owned(), content_type, body.to_vec()));
    HttpResponse::Ok()
        .content_type("application/x-protobuf")
        .finish()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_a_capture_request_are_exported_over_otlp() {
    let received: Received = Arc::default();
    let data = web::Data::new(received.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let collector = listener.local_addr().unwrap();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::to(collect))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);

    let data_dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stigmergy"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir.path())
        .env("STIGMERGY_OPERATOR_TOKEN", "otel-test")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}"))
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
        let exported = received.lock().unwrap().clone();
        let spans_of = |name: &str| exported.iter().any(|(_, _, body)| contains(body, name));
        if spans_of("capture.create_organization") && spans_of("capture.record_events") {
            let (path, content_type, body) = &exported[0];
            assert_eq!(path, "/v1/traces");
            assert_eq!(content_type, "application/x-protobuf");
            assert!(
                contains(body, "stigmergy-under-test"),
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
