//! Typed, layered configuration: built-in defaults → an optional TOML file → environment
//! variables `STIGMERGY__SECTION__KEY` (e.g. `STIGMERGY__CAPTURE__MAX_BODY_BYTES=2097152`) →
//! command-line flags. Passed explicitly, never global.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use stigmergy_capture::CaptureConfig;
use stigmergy_domain::views::Methods;
use stigmergy_domain::views::contribution::ContributionConfig;
use stigmergy_domain::views::footprint::Factors;

/// How logs are written to standard error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    pub format: LogFormat,
    /// A `tracing` filter (`info`, `stigmergy=debug,actix_web=info`); `RUST_LOG` overrides it.
    pub filter: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            filter: "info".into(),
        }
    }
}

/// How the split services use Kafka (`[kafka]`; only read with a `kafka://` log).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
    /// Partitions of each topic created at start (existing topics are left as they are).
    pub partitions: i32,
    /// Replicas of each partition of a topic created at start.
    pub replication: i32,
    /// How long a record may take to be delivered before its append fails, in milliseconds.
    pub delivery_timeout_ms: u64,
    /// How long the producer waits for more records before it sends a batch, in milliseconds
    /// (`linger.ms`).
    pub linger_ms: u64,
    /// The consumer group of the views projectors.
    pub group: String,
    /// Most events a projector applies in one transaction.
    pub page_size: usize,
    /// Most events in a projector's first page into a views store that holds no events: it
    /// reads its partitions up to their high watermarks, and the store derives the page in
    /// memory. At most `page_size` turns this off.
    pub first_page_size: usize,
    /// Whether projectors publish records and anomalies on the metadata and anomalies topics.
    pub publish: bool,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            partitions: 6,
            replication: 1,
            delivery_timeout_ms: 10_000,
            linger_ms: 2,
            group: stigmergy_projector::kafka::DEFAULT_GROUP.to_owned(),
            page_size: stigmergy_projector::kafka::DEFAULT_GROUP_PAGE_SIZE,
            first_page_size: stigmergy_projector::DEFAULT_FIRST_PAGE_SIZE,
            publish: true,
        }
    }
}

impl KafkaSettings {
    /// The client configuration for `brokers`.
    pub fn client(&self, brokers: &str) -> stigmergy_log::KafkaConfig {
        let mut config = stigmergy_log::KafkaConfig::new(brokers);
        config.partitions = self.partitions;
        config.replication = self.replication;
        config.delivery_timeout = std::time::Duration::from_millis(self.delivery_timeout_ms);
        config.linger = std::time::Duration::from_millis(self.linger_ms);
        config
    }
}

/// The whole configuration of `stigmergy serve`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the embedded log, the organisation directory and the operator token live.
    pub data_dir: PathBuf,
    /// The HTTP address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The event log, as a URL; defaults to `embedded://<data_dir>`.
    pub log: Option<String>,
    /// HTTP worker threads; defaults to the number of cores.
    pub workers: Option<usize>,
    /// The operator credential; `STIGMERGY_OPERATOR_TOKEN`. When unset, one is generated on first
    /// start and kept in `<data_dir>/operator-token`.
    #[serde(skip_serializing)]
    pub operator_token: Option<String>,
    /// The views store, as a URL: `postgres://user:password@host/db`; defaults to the embedded
    /// SQLite store `<data_dir>/views.sqlite`.
    pub views: Option<String>,
    /// How many resources' facts the views projector keeps in memory from one page to the next
    /// (see `docs/views.md` for what each costs); 0 keeps none.
    pub memo_resources: usize,
    pub capture: CaptureConfig,
    pub telemetry: TelemetryConfig,
    /// Default emission factors of the footprint method (`[footprint.grid]`,
    /// `[footprint.transport]`).
    pub footprint: Factors,
    /// The weights of the value equation.
    pub contribution: ContributionConfig,
    /// What a GraphQL query may ask (`[graphql]`).
    pub graphql: stigmergy_gateway::Limits,
    /// Kafka, for the split services (`[kafka]`).
    pub kafka: KafkaSettings,
    /// Open metadata (`[open]`).
    pub open: OpenSettings,
}

/// Open metadata: item pages, JSON-LD documents and QR codes (`[open]`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenSettings {
    /// The public base URL items are published under (`https://trace.example.org`), used in
    /// documents, pages, QR codes and exports; defaults to each request's own scheme and host.
    pub public_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            log: None,
            workers: None,
            operator_token: None,
            views: None,
            memo_resources: stigmergy_store::MEMO_RESOURCES,
            capture: CaptureConfig::default(),
            telemetry: TelemetryConfig::default(),
            footprint: Factors::default(),
            contribution: ContributionConfig::default(),
            graphql: stigmergy_gateway::Limits::default(),
            kafka: KafkaSettings::default(),
            open: OpenSettings::default(),
        }
    }
}

impl Config {
    /// Defaults, then `file` when given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment
            .merge(Env::prefixed("STIGMERGY__").split("__"))
            .merge(
                Env::raw()
                    .only(&["STIGMERGY_OPERATOR_TOKEN"])
                    .map(|_| "operator_token".into()),
            );
        figment.extract().map_err(Box::new)
    }

    /// The methods the views derive footprints and attributions with.
    pub fn methods(&self) -> Methods {
        Methods {
            factors: self.footprint.clone(),
            contribution: self.contribution.clone(),
        }
    }

    /// The event log URL in force.
    pub fn log_url(&self) -> String {
        self.log
            .clone()
            .unwrap_or_else(|| format!("embedded://{}", self.data_dir.display()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_memo_size_of_the_views_comes_from_the_file_or_the_default() {
        assert_eq!(
            Config::load(None).unwrap().memo_resources,
            stigmergy_store::MEMO_RESOURCES
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stigmergy.toml");
        std::fs::write(&file, "memo_resources = 5000\n").unwrap();
        assert_eq!(Config::load(Some(&file)).unwrap().memo_resources, 5000);
    }

    #[test]
    fn graphql_limits_come_from_the_file_and_unknown_ones_are_refused() {
        assert_eq!(
            Config::load(None).unwrap().graphql,
            stigmergy_gateway::Limits::default()
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stigmergy.toml");
        std::fs::write(&file, "[graphql]\nmax_depth = 5\nmax_fields = 40\n").unwrap();
        let limits = Config::load(Some(&file)).unwrap().graphql;
        assert_eq!((limits.max_depth, limits.max_fields), (5, 40));
        assert_eq!(
            limits.max_complexity,
            stigmergy_gateway::Limits::default().max_complexity
        );
        std::fs::write(&file, "[graphql]\nmax_aliases = 5\n").unwrap();
        assert!(Config::load(Some(&file)).is_err());
    }
}
