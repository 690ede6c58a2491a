//! What the benches share: the application started in the bench's process on a runtime of its
//! own, the HTTP calls every bench makes, fresh ids and submissions, and the CPU each process
//! and each group of threads used (from `/proc`, Linux only).
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use reqwest::StatusCode;
use serde_json::{Value, json};
use stigmergy::{Application, Config};
use uuid::Uuid;

pub const OPERATOR_TOKEN: &str = "bench-operator-token";
/// When every event says it happened (in the past, so no clock-skew rule can refuse it).
pub const OCCURRED_AT: &str = "2025-06-01T10:00:00Z";
/// Thread names, so that the CPU each part uses can be told apart.
pub const BENCH_THREADS: &str = "bench-client";
pub const APP_THREADS: &str = "stigmergy-app";

/// The application on a fresh data directory, on a runtime of its own (so that its threads, and
/// the CPU they use, are told apart from the clients').
pub struct RunningApp {
    pub base: String,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    runtime: Option<tokio::runtime::Runtime>,
    _data_dir: tempfile::TempDir,
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        self.server.abort();
        // Dropping a runtime from within another one would block it; let it wind down alone.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Starts the application with the defaults and `STIGMERGY__…` environment variables, as
/// `stigmergy serve` reads them, and waits until it is ready, asking at most `ready_tries` times
/// 10 ms apart.
pub async fn start_app(client: &reqwest::Client, ready_tries: usize) -> anyhow::Result<RunningApp> {
    let data_dir = tempfile::tempdir()?;
    let mut config = Config {
        data_dir: data_dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse()?,
        operator_token: Some(OPERATOR_TOKEN.into()),
        ..Config::load(None).map_err(|e| anyhow::anyhow!("{e}"))?
    };
    // The benchmarks measure what capture can take, not the per-organisation rate limit.
    config.capture.rate_limit_events_per_second = 0;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name(APP_THREADS)
        .enable_all()
        .build()?;
    let (base, server) = runtime
        .spawn(async move {
            let app = Application::build(config).await?;
            let base = app.base_url();
            anyhow::Ok((base, tokio::spawn(app.run_until_stopped())))
        })
        .await??;
    let app = RunningApp {
        base,
        server,
        runtime: Some(runtime),
        _data_dir: data_dir,
    };
    for _ in 0..ready_tries {
        let ready = client.get(format!("{}/readyz", app.base)).send().await;
        if ready.is_ok_and(|answer| answer.status() == StatusCode::OK) {
            return Ok(app);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("the application never became ready")
}

pub async fn log_head(client: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let answer: Value = client
        .get(format!("{base}/readyz"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    answer["logHead"]
        .as_u64()
        .with_context(|| format!("/readyz did not say the log head: {answer}"))
}

pub async fn create_organization(
    client: &reqwest::Client,
    base: &str,
    name: &str,
) -> anyhow::Result<String> {
    let response = client
        .post(format!("{base}/v1/organizations"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&json!({ "name": name }))
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    ensure!(
        status == StatusCode::CREATED,
        "creating {name} answered {status}: {body}"
    );
    body["apiKey"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no API key for {name}: {body}"))
}
/// Posts a JSON body of events; anything but 201 (every event new and stored) is a failure.
pub async fn post_events(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    body: Vec<u8>,
) -> anyhow::Result<()> {
    let response = client
        .post(url)
        .bearer_auth(key)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let answer = response.bytes().await?;
    ensure!(
        status == StatusCode::CREATED,
        "POST /v1/events answered {status}: {}",
        String::from_utf8_lossy(&answer)
    );
    Ok(())
}

/// A fresh `urn:uuid:` IRI.
pub fn urn() -> String {
    format!("urn:uuid:{}", Uuid::new_v4())
}

/// A submission with a client-chosen UUIDv7 event id, happening at [`OCCURRED_AT`].
pub fn submission(event_type: &str, payload: Value) -> Value {
    json!({
        "eventId": Uuid::now_v7().to_string(), "type": event_type,
        "occurredAt": OCCURRED_AT, "payload": payload
    })
}

/// CPU time so far of each live thread, by thread id, with the thread's name.
pub struct ThreadTimes(HashMap<String, (String, Duration)>);

impl ThreadTimes {
    /// Of this process.
    pub fn now() -> Self {
        Self::of_tasks("/proc/self/task")
    }

    /// No thread yet: what `since` counts from for a process started meanwhile.
    pub fn empty() -> Self {
        Self(HashMap::new())
    }

    /// Of the process `pid` (another one, e.g. a service the bench started).
    pub fn of(pid: u32) -> Self {
        Self::of_tasks(&format!("/proc/{pid}/task"))
    }

    fn of_tasks(dir: &str) -> Self {
        let mut threads = HashMap::new();
        let Ok(tasks) = std::fs::read_dir(dir) else {
            return Self(threads);
        };
        for task in tasks.flatten() {
            let path = task.path();
            let name = std::fs::read_to_string(path.join("comm"))
                .unwrap_or_default()
                .trim()
                .to_owned();
            // The first field of schedstat is the time spent on a CPU, in nanoseconds.
            let on_cpu = std::fs::read_to_string(path.join("schedstat"))
                .ok()
                .and_then(|text| text.split_whitespace().next()?.parse::<u64>().ok());
            if let Some(nanoseconds) = on_cpu {
                threads.insert(
                    task.file_name().to_string_lossy().into_owned(),
                    (name, Duration::from_nanos(nanoseconds)),
                );
            }
        }
        Self(threads)
    }

    /// CPU used since `earlier` per group of threads (threads that ended meanwhile are missed):
    /// `groups` in that order, then the names of threads `group_of` puts in none. Groups that used
    /// nothing are left out. Thread names are cut to 15 bytes.
    pub fn since(
        &self,
        earlier: &ThreadTimes,
        groups: &[&str],
        group_of: impl Fn(&str) -> Option<&'static str>,
    ) -> Vec<(String, Duration)> {
        let mut used: Vec<(String, Duration)> = groups
            .iter()
            .map(|g| ((*g).to_owned(), Duration::ZERO))
            .collect();
        for (id, (name, now)) in &self.0 {
            let before = earlier
                .0
                .get(id)
                .map_or(Duration::ZERO, |(_, before)| *before);
            let group = group_of(name).unwrap_or(name.as_str());
            let spent = now.saturating_sub(before);
            match used.iter_mut().find(|(g, _)| g == group) {
                Some((_, total)) => *total += spent,
                None => used.push((group.to_owned(), spent)),
            }
        }
        used.retain(|(_, cpu)| !cpu.is_zero());
        used
    }
}

/// CPU time (user and system) the process `pid` used so far, its ended threads included, from
/// `/proc/<pid>/stat`; in steps of 10 ms (Linux reports it in clock ticks of 1/100 s). `None` when
/// it cannot be read (not Linux, or the process is gone).
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (in parentheses, and possibly holding spaces) come the fields from
    // the third on: utime is the 14th, stime the 15th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index)?.parse::<u64>().ok();
    Some(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

/// A bench's command line: `cargo bench` passes `--bench`; the rest are the bench's own flags.
pub struct Arguments(Vec<String>);

impl Arguments {
    pub fn from_env() -> Self {
        Self(std::env::args().skip(1).collect())
    }

    /// The value after `flag`, when it is given.
    pub fn value_of(&self, flag: &str) -> anyhow::Result<Option<String>> {
        self.0
            .iter()
            .position(|argument| argument == flag)
            .map(|at| {
                self.0
                    .get(at + 1)
                    .cloned()
                    .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
            })
            .transpose()
    }

    /// The positive number after `flag`, when it is given.
    pub fn positive(&self, flag: &str) -> anyhow::Result<Option<usize>> {
        self.value_of(flag)?
            .map(|value| {
                value
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| anyhow::anyhow!("{flag} takes a positive number, not {value:?}"))
            })
            .transpose()
    }

    /// `--quick`, or `STIGMERGY_BENCH_QUICK` set to something other than `0`.
    /// Whether `flag` was given.
    pub fn flag(&self, flag: &str) -> bool {
        self.0.iter().any(|argument| argument == flag)
    }

    pub fn quick(&self) -> bool {
        self.flag("--quick")
            || std::env::var("STIGMERGY_BENCH_QUICK")
                .is_ok_and(|value| !value.is_empty() && value != "0")
    }
}
