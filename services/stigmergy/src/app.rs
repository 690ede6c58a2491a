//! The application: the event log, the organisation directory, capture, the views projector and
//! the gateway behind one HTTP server — all of them (`stigmergy serve`, on the embedded log), or
//! one role of the split deployment (`stigmergy capture`, `stigmergy gateway`, on Kafka). Tests
//! build it on port 0 with a fresh data directory.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, web};
use anyhow::Context;
use stigmergy_capture::auth::OperatorToken;
use stigmergy_capture::metrics::CaptureMetrics;
use stigmergy_capture::problem::Problem;
use stigmergy_capture::rate::RateLimits;
use stigmergy_capture::schemas::EventSchemas;
use stigmergy_capture::{Capture, Sequencer};
use stigmergy_gateway::metrics::GatewayMetrics;
use stigmergy_log::{EmbeddedLog, EmbeddedLogConfig, EventLog, KafkaLog, LogUrl};
use stigmergy_projector::{Projector, ProjectorMetrics};
use stigmergy_store::{OrganizationDirectory, SqliteViewStore, ViewStore, WhenStale};
use tracing_actix_web::TracingLogger;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::operator::{TokenSource, operator_token};

/// A built, bound, not yet running platform.
pub struct Application {
    address: SocketAddr,
    server: Server,
    operator_token: String,
    token_source: TokenSource,
    data_dir: PathBuf,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("address", &self.address)
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

/// What one process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Capture, the views projector and the gateway (`stigmergy serve`).
    AllInOne,
    /// Capture alone (`stigmergy capture`): the REST API that records events.
    Capture,
    /// The gateway (`stigmergy gateway`): GraphQL over the views, and capture for its
    /// `recordEvents` mutation and the REST API. The projectors run elsewhere.
    Gateway,
}

/// Opens the event log the configuration names. A Kafka log keeps its mirror of the topics in
/// `<data_dir>/mirror`.
pub(crate) async fn open_log(config: &Config) -> anyhow::Result<Arc<dyn EventLog>> {
    match config.log_url().parse::<LogUrl>()? {
        LogUrl::Embedded(dir) => Ok(Arc::new(
            EmbeddedLog::open(&dir, EmbeddedLogConfig::default()).with_context(|| {
                format!("cannot open the embedded event log in {}", dir.display())
            })?,
        )),
        LogUrl::Kafka(brokers) => {
            let mirror = config.data_dir.join("mirror");
            Ok(Arc::new(
                KafkaLog::open(config.kafka.client(&brokers), &mirror)
                    .await
                    .with_context(|| format!("cannot open the Kafka event log at {brokers}"))?,
            ))
        }
    }
}

/// The organisation directory: in the PostgreSQL views store when there is one (so that every
/// capture and gateway process shares it), else in the data directory.
pub(crate) fn open_directory(config: &Config) -> anyhow::Result<OrganizationDirectory> {
    match config.views.as_deref() {
        Some(url) if is_postgres(url) => OrganizationDirectory::connect_postgres(url)
            .context("cannot open the organisation directory in PostgreSQL (the `views` URL)"),
        _ => OrganizationDirectory::open(&config.data_dir).with_context(|| {
            format!(
                "cannot open the organisation directory in {}",
                config.data_dir.display()
            )
        }),
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The views store the configuration names: PostgreSQL for a `postgres://` URL, else the
/// embedded SQLite store in the data directory. `when` says what to do with views derived with
/// other methods: a projector's process rebuilds them, a process that only reads them refuses.
pub(crate) fn open_views(config: &Config, when: WhenStale) -> anyhow::Result<Arc<dyn ViewStore>> {
    match config.views.as_deref() {
        None => Ok(Arc::new(
            SqliteViewStore::open_when_stale(&config.data_dir, config.methods(), when)
                .with_context(|| {
                    format!(
                        "cannot open the views store in {}",
                        config.data_dir.display()
                    )
                })?
                .with_memo_resources(config.memo_resources),
        )),
        Some(url) if is_postgres(url) => Ok(Arc::new(
            stigmergy_store::PostgresViewStore::connect_when_stale(url, config.methods(), when)
                .context("cannot open the PostgreSQL views store (the `views` URL)")?
                .with_memo_resources(config.memo_resources),
        )),
        // The URL may hold a password: name only its scheme.
        Some(url) => anyhow::bail!(
            "unsupported views store URL scheme {:?}: expected postgres://…",
            url.split("://").next().unwrap_or_default()
        ),
    }
}

async fn not_found(request: actix_web::HttpRequest) -> Result<HttpResponse, Problem> {
    Err(Problem::not_found(format!(
        "no route {} {}",
        request.method(),
        request.path()
    )))
}

/// Runs the projector; when it fails (the store or the log unavailable), logs why and starts
/// again from the stored position after a pause.
async fn project_forever(projector: Projector) {
    let mut pause = std::time::Duration::from_millis(100);
    loop {
        match projector.run().await {
            Ok(()) => return,
            Err(failure) => {
                tracing::error!(error = %failure, "the projector stopped; restarting from its stored position");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(10));
            }
        }
    }
}

impl Application {
    /// Opens the stores, loads and compiles the schemas (a schema that does not compile stops
    /// here), starts the sequencer and binds the listener: the whole platform. Must run inside
    /// a Tokio runtime.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_role(config, Role::AllInOne).await
    }

    /// [`build`](Self::build), for one role.
    pub async fn build_role(config: Config, role: Role) -> anyhow::Result<Self> {
        let schemas =
            Arc::new(EventSchemas::load().context("the committed event schemas are broken")?);
        let log = open_log(&config).await?;
        let directory = open_directory(&config)?;
        let (token, token_source) =
            operator_token(config.operator_token.as_deref(), &config.data_dir)?;
        let sequencer = Sequencer::start(
            log.clone(),
            Arc::new(directory.clone()),
            config.capture.max_group_requests,
        );
        let capture = Capture {
            config: config.capture.clone(),
            schemas,
            sequencer,
            log: log.clone(),
            directory,
            operator: OperatorToken::new(&token),
            metrics: CaptureMetrics::default(),
            limits: RateLimits::new(&config.capture).context("invalid [capture] rate limits")?,
        };
        let mut metrics = Metrics::default();
        capture.metrics.register(metrics.registry());
        let gateway = match role {
            Role::Capture => None,
            Role::AllInOne | Role::Gateway => {
                // The all-in-one process runs the projector; a gateway only reads.
                let views = open_views(
                    &config,
                    if role == Role::AllInOne {
                        WhenStale::Rebuild
                    } else {
                        WhenStale::Refuse
                    },
                )?;
                let projector = if role == Role::AllInOne {
                    let counted = ProjectorMetrics::default();
                    counted.register(metrics.registry());
                    tokio::spawn(project_forever(
                        Projector::new(crate::project::PROJECTOR, log.clone(), views.clone())
                            .with_metrics(counted),
                    ));
                    crate::project::PROJECTOR.to_owned()
                } else if log.is_shared() {
                    config.kafka.group.clone()
                } else {
                    // The embedded log's projector is `stigmergy project`, under its own name.
                    crate::project::PROJECTOR.to_owned()
                };
                let counted = GatewayMetrics::default();
                counted.register(metrics.registry());
                Some(web::Data::new(stigmergy_gateway::schema(
                    stigmergy_gateway::Sources {
                        views,
                        capture: capture.clone(),
                        projector,
                        public_url: stigmergy_gateway::open::PublicUrl(
                            config.open.public_url.clone(),
                        ),
                        metrics: counted,
                    },
                    config.graphql,
                )))
            }
        };
        let capture = web::Data::new(capture);
        let exposition = web::Data::new(metrics.expose());

        let listener = TcpListener::bind(config.listen)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let address = listener.local_addr()?;
        let mut server = actix_web::HttpServer::new(move || {
            let app = App::new()
                .wrap(from_fn(crate::metrics::measure))
                .wrap(TracingLogger::<crate::telemetry::ContinuedRootSpan>::new())
                .app_data(exposition.clone())
                .configure(crate::metrics::configure)
                .app_data(capture.clone())
                .configure(stigmergy_capture::configure);
            let app = match &gateway {
                Some(gateway) => app
                    .app_data(gateway.clone())
                    .configure(stigmergy_gateway::configure)
                    .configure(stigmergy_gateway::open::configure)
                    .configure(stigmergy_gateway::pact::configure),
                None => app,
            };
            app.default_service(web::to(not_found))
        })
        .listen(listener)?;
        if let Some(workers) = config.workers {
            server = server.workers(workers);
        }
        Ok(Self {
            address,
            server: server.run(),
            operator_token: token,
            token_source,
            data_dir: config.data_dir,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn operator_token(&self) -> &str {
        &self.operator_token
    }

    /// Whether the operator token was generated by this start (and must be shown once).
    pub fn operator_token_generated(&self) -> bool {
        self.token_source == TokenSource::Generated
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// Serves until the process is asked to stop (SIGINT/SIGTERM), then drains.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
