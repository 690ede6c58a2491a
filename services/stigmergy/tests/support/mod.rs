//! What every integration test shares: the real application on port 0 with a fresh data
//! directory, spoken to over HTTP, and builders of valid events.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod collector;
pub mod events;
pub mod prometheus;
pub mod views;

use reqwest::StatusCode;
use serde_json::{Value, json};
use stigmergy::{Application, Config};
use tempfile::TempDir;

pub const OPERATOR_TOKEN: &str = "test-operator-token";

/// The real `sha256sum --check` of the `SHA256SUMS` in an export's directory `dir`, with `mode`
/// (`--strict`, `--quiet`).
pub fn check_sums(dir: &std::path::Path, mode: &str) -> std::process::Output {
    std::process::Command::new("sha256sum")
        .args(["--check", mode, "SHA256SUMS"])
        .current_dir(dir)
        .output()
        .expect("sha256sum runs")
}

/// A running application and a client for it.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub data_dir: TempDir,
}

/// An organisation registered for a test.
#[derive(Clone, Debug)]
pub struct Org {
    pub id: String,
    pub key: String,
}

/// An answer: status, content type and JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().expect("a temporary data directory");
        let mut config = Config {
            data_dir: data_dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
            operator_token: Some(OPERATOR_TOKEN.into()),
            workers: Some(2),
            ..Config::default()
        };
        adjust(&mut config);
        let app = Application::build(config)
            .await
            .expect("the application builds");
        let base = app.base_url();
        tokio::spawn(app.run_until_stopped());
        let test = Self {
            base,
            client: reqwest::Client::new(),
            data_dir,
        };
        for _ in 0..200 {
            if test.get("/readyz").await.status == StatusCode::OK {
                return test;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the application never became ready");
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            content_type,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        Self::answer(
            self.client
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .expect("GET"),
        )
        .await
    }

    /// Posts a raw body with a content type and an optional bearer token.
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Answer {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Self::answer(request.send().await.expect("POST")).await
    }

    /// Posts events (one object or an array) as JSON with an organisation's key.
    pub async fn record(&self, org: &Org, events: &Value) -> Answer {
        self.post_raw(
            "/v1/events",
            Some(&org.key),
            "application/json",
            events.to_string().into_bytes(),
        )
        .await
    }

    /// Posts events that must be accepted.
    pub async fn record_ok(&self, org: &Org, events: &Value) -> Value {
        let answer = self.record(org, events).await;
        assert!(
            answer.status.is_success(),
            "expected the events to be accepted: {answer:#?}"
        );
        answer.body
    }

    pub async fn organization(&self, name: &str) -> Org {
        let answer = self
            .post_raw(
                "/v1/organizations",
                Some(OPERATOR_TOKEN),
                "application/json",
                json!({ "name": name }).to_string().into_bytes(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:#?}");
        Org {
            id: answer.body["id"].as_str().unwrap().to_owned(),
            key: answer.body["apiKey"].as_str().unwrap().to_owned(),
        }
    }

    /// A GraphQL query without variables; the whole answer.
    pub async fn graphql(&self, query: &str) -> Value {
        self.client
            .post(format!("{}/graphql", self.base))
            .json(&json!({ "query": query }))
            .send()
            .await
            .expect("POST /graphql")
            .json()
            .await
            .expect("a JSON answer")
    }

    /// Waits until the views have applied the whole log: GraphQL lists its last event.
    pub async fn wait_for_views(&self) {
        let head = self.head().await;
        let query = format!(
            "{{ events(first: 1, after: \"{}\") {{ edges {{ cursor }} }} }}",
            head.saturating_sub(1)
        );
        for _ in 0..500 {
            let answer = self.graphql(&query).await;
            if answer["data"]["events"]["edges"]
                .as_array()
                .is_some_and(|edges| !edges.is_empty())
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the views never caught up with the log");
    }

    /// What `/metrics` serves, in the OpenMetrics text format.
    pub async fn metrics(&self) -> String {
        let answer = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(
            answer.headers()["content-type"],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        answer.text().await.expect("the metrics")
    }

    /// The position of the last event in the log.
    pub async fn head(&self) -> u64 {
        self.get("/readyz").await.body["logHead"]
            .as_u64()
            .expect("readyz reports the log head")
    }
}
