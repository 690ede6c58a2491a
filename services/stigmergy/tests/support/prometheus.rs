//! A throwaway Prometheus server that scrapes one target every second, to check that what
//! `/metrics` serves is what Prometheus ingests. The binary is `$STIGMERGY_TEST_PROMETHEUS`, or
//! `prometheus` on the `PATH` (`./scripts/test` installs Debian's when missing).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running Prometheus; dropping it kills the process and removes its data.
pub struct Prometheus {
    process: Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `http://{target}/metrics` every second as job `stigmergy`, and
    /// waits until it is ready.
    pub async fn scraping(target: &str) -> Self {
        let binary =
            std::env::var("STIGMERGY_TEST_PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  \
                 - job_name: stigmergy\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let address = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap();
        let process = Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {binary} (set STIGMERGY_TEST_PROMETHEUS): {e}")
            });
        let prometheus = Self {
            process,
            base: format!("http://{address}"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(answer) = reqwest::get(format!("{}/-/ready", prometheus.base)).await
                && answer.status().is_success()
            {
                return prometheus;
            }
            assert!(Instant::now() < deadline, "Prometheus never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The instant vector of a PromQL expression: each series' labels and value.
    pub async fn query(&self, expression: &str) -> Vec<(Value, f64)> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.base),
            [("query", expression)],
        )
        .unwrap();
        let answer: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        assert_eq!(answer["status"], "success", "{answer:#}");
        answer["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|sample| {
                let value = sample["value"][1].as_str().unwrap().parse().unwrap();
                (sample["metric"].clone(), value)
            })
            .collect()
    }

    /// Waits (up to 30 s: a few scrapes) until `expression` has one series, of value `wanted`.
    pub async fn wait_for(&self, expression: &str, wanted: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let samples = self.query(expression).await;
            if let [(_, value)] = samples.as_slice()
                && *value == wanted
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus never saw {expression} = {wanted}: {samples:?}; targets: {:#}",
                self.targets().await
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The scrape targets as Prometheus sees them (their health and last error).
    pub async fn targets(&self) -> Value {
        reqwest::get(format!("{}/api/v1/targets", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The value of one series in an OpenMetrics text exposition, written as the exposition writes
/// it (`name{label="value",…}`), if it is there.
pub fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().unwrap())
    })
}
