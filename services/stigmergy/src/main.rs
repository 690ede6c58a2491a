//! `stigmergy`: the command line of the Stigmergy platform.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use stigmergy::app::Role;
use stigmergy::config::{Config, LogFormat};
use stigmergy::{Application, demo, telemetry};

// Replaying the views allocates and frees millions of small values across two threads;
// mimalloc does that about a fifth faster than the system's allocator (`docs/performance.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "stigmergy",
    version,
    about = "Open, event-sourced supply-chain traceability for commons-based manufacturing"
)]
struct Cli {
    /// A TOML configuration file (see docs/configuration.md).
    #[arg(long, global = true, env = "STIGMERGY_CONFIG")]
    config: Option<PathBuf>,
    /// Log format on standard error.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs the whole platform in one process on the embedded log.
    Serve {
        /// Where the log, the organisation directory and the operator token are kept.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The HTTP address to listen on.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Also load the demo scenario through the public API (loading it again adds nothing).
        #[arg(long)]
        demo: bool,
    },
    /// Capture on its own (split deployment): the REST API that records events, appending to the
    /// log (`--log kafka://…`), with the organisation directory in `--store postgres://…`.
    Capture {
        #[command(flatten)]
        place: Place,
        /// The HTTP address to listen on.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// The gateway on its own (split deployment): GraphQL over the views store
    /// (`--store postgres://…`) with subscriptions fed from the log (`--log kafka://…`); it
    /// records events too (the `recordEvents` mutation and the REST API).
    Gateway {
        #[command(flatten)]
        place: Place,
        /// The HTTP address to listen on.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// The views projector as a process of its own. On the embedded log: applies the log to the
    /// views store up to the log's head, then exits (to rebuild the views, or to catch up a
    /// store). On Kafka (`--log kafka://…`): joins the projectors' consumer group and applies
    /// what it is given until SIGINT or SIGTERM.
    Project {
        #[command(flatten)]
        place: Place,
        /// The consumer group to join (Kafka only; `[kafka] group`, default `stigmergy-views`).
        #[arg(long)]
        group: Option<String>,
        /// Events applied per transaction (default 50000; on Kafka, `[kafka] page_size`,
        /// default 5000).
        #[arg(long)]
        page_size: Option<usize>,
        /// Events applied in the first transaction into a store that holds no events yet,
        /// indexed and derived in memory (default 1000000; on Kafka, `[kafka] first_page_size`:
        /// what the partitions held when the projector joined, up to this many).
        #[arg(long)]
        first_page_size: Option<usize>,
        /// Kafka only: serve `/metrics` (its progress and lag) and `/healthz` at this HTTP
        /// address while it runs.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Writes an open-data snapshot into a directory: every event of the log as NDJSON, every
    /// resource's JSON-LD document as `GET /id/{id}` serves it, the JSON-LD context, a manifest
    /// and SHA256SUMS (docs/open-data.md). Written beside it as `DIR.partial` and renamed when
    /// complete; it reads the log and the views, and may run while `serve` does.
    Export {
        #[command(flatten)]
        place: Place,
        /// The directory to write the snapshot to; it must not exist, or be empty, or (with
        /// `--force`) hold a previous export.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The public base URL the documents link with (`https://trace.example.org`); overrides
        /// `[open] public_url`. One of the two is required.
        #[arg(long, value_name = "URL")]
        public_url: Option<String>,
        /// Replace DIR when it holds a previous export (never anything else).
        #[arg(long)]
        force: bool,
    },
}

/// Where a split service finds its data, its log and its store.
#[derive(clap::Args, Debug)]
struct Place {
    /// Where this process keeps its data: the embedded log and stores, or a Kafka log's mirror
    /// of the topics.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The event log: `embedded://DIR` (the default, in the data directory) or
    /// `kafka://HOST:PORT[,HOST:PORT]`.
    #[arg(long)]
    log: Option<String>,
    /// The views store, and with it the organisation directory: `postgres://USER:PASS@HOST/DB`
    /// (the default is SQLite in the data directory).
    #[arg(long)]
    store: Option<String>,
}

impl Place {
    fn apply(self, config: &mut Config) {
        if let Some(data_dir) = self.data_dir {
            config.data_dir = data_dir;
        }
        if let Some(log) = self.log {
            config.log = Some(log);
        }
        if let Some(store) = self.store {
            config.views = Some(store);
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref()).context("invalid configuration")?;
    if let Some(format) = cli.log_format {
        config.telemetry.format = format;
    }
    match cli.command {
        Command::Serve {
            data_dir,
            listen,
            demo,
        } => {
            if let Some(data_dir) = data_dir {
                config.data_dir = data_dir;
            }
            if let Some(listen) = listen {
                config.listen = listen;
            }
            runtime()?.block_on(serve(config, demo))
        }
        Command::Capture { place, listen } => {
            place.apply(&mut config);
            if let Some(listen) = listen {
                config.listen = listen;
            }
            runtime()?.block_on(split(config, Role::Capture))
        }
        Command::Gateway { place, listen } => {
            place.apply(&mut config);
            if let Some(listen) = listen {
                config.listen = listen;
            }
            runtime()?.block_on(split(config, Role::Gateway))
        }
        Command::Project {
            place,
            group,
            page_size,
            first_page_size,
            listen,
        } => {
            place.apply(&mut config);
            if let Some(group) = group {
                config.kafka.group = group;
            }
            if let Some(size) = page_size {
                config.kafka.page_size = size;
            }
            if let Some(first) = first_page_size {
                config.kafka.first_page_size = first;
            }
            runtime()?.block_on(project(
                config,
                listen,
                stigmergy::project::Pages {
                    size: page_size.unwrap_or(stigmergy_projector::DEFAULT_PAGE_SIZE),
                    first: first_page_size.unwrap_or(stigmergy_projector::DEFAULT_FIRST_PAGE_SIZE),
                },
            ))
        }
        Command::Export {
            place,
            out,
            public_url,
            force,
        } => {
            place.apply(&mut config);
            runtime()?.block_on(export(
                config,
                stigmergy::export::ExportOptions {
                    out,
                    public_url,
                    force,
                    progress: true,
                },
            ))
        }
    }
}

async fn export(config: Config, options: stigmergy::export::ExportOptions) -> anyhow::Result<()> {
    let _telemetry = telemetry::init(&config.telemetry, "stigmergy-export")?;
    let report = stigmergy::export::export(&config, &options).await?;
    println!(
        "Exported {} events (retractions: {}) and {} resource documents to {}: {} files, {} bytes \
         ({}), in {:.2} s (views at position {}, log head {}).",
        report.counts.events,
        report.counts.retractions,
        report.counts.resources,
        report.out.display(),
        report.counts.files,
        report.counts.bytes,
        indicatif::HumanBytes(report.counts.bytes),
        report.elapsed.as_secs_f64(),
        report.as_of,
        report.log_head,
    );
    Ok(())
}

async fn project(
    config: Config,
    listen: Option<SocketAddr>,
    pages: stigmergy::project::Pages,
) -> anyhow::Result<()> {
    let _telemetry = telemetry::init(&config.telemetry, "stigmergy-projector")?;
    if let stigmergy_log::LogUrl::Kafka(brokers) = config.log_url().parse()? {
        tracing::info!(%brokers, group = %config.kafka.group, "projector joining its consumer group");
        return stigmergy::project::run_group(&config, &brokers, listen).await;
    }
    if listen.is_some() {
        anyhow::bail!(
            "--listen is for the projector on Kafka; on the embedded log `project` catches up and \
             exits (`serve` serves the projector's metrics)"
        );
    }
    let report = stigmergy::project::catch_up(&config, pages).await?;
    let events = report.to.0.saturating_sub(report.from.0);
    println!(
        "Projected positions {}..{} ({events} events) in {:.2} s ({:.0} events/s).",
        report.from.0,
        report.to.0,
        report.elapsed.as_secs_f64(),
        events as f64 / report.elapsed.as_secs_f64().max(1e-9)
    );
    Ok(())
}

/// One service of the split deployment, until SIGINT or SIGTERM.
async fn split(config: Config, role: Role) -> anyhow::Result<()> {
    let service = match role {
        Role::Capture => "stigmergy-capture",
        Role::Gateway => "stigmergy-gateway",
        Role::AllInOne => "stigmergy",
    };
    let _telemetry = telemetry::init(&config.telemetry, service)?;
    let app = Application::build_role(config, role).await?;
    if app.operator_token_generated() {
        println!(
            "Operator token (shown once; kept in {}):\n  {}\n",
            app.data_dir().join("operator-token").display(),
            app.operator_token()
        );
    }
    tracing::info!(address = %app.address(), ?role, "serving");
    println!(
        "{service} is listening on {} (Ctrl-C to stop).",
        app.base_url()
    );
    app.run_until_stopped().await.context("the server failed")
}

async fn serve(config: Config, load_demo: bool) -> anyhow::Result<()> {
    let _telemetry = telemetry::init(&config.telemetry, "stigmergy")?;
    let app = Application::build(config).await?;
    let base = app.base_url();
    tracing::info!(address = %app.address(), data_dir = %app.data_dir().display(), "stigmergy is serving");
    if app.operator_token_generated() {
        println!(
            "Operator token (shown once; kept in {}):\n  {}\n",
            app.data_dir().join("operator-token").display(),
            app.operator_token()
        );
    }
    let operator = app.operator_token().to_owned();
    let server = tokio::spawn(app.run_until_stopped());
    if load_demo {
        let report = demo::load(&base, &operator)
            .await
            .context("loading the demo failed")?;
        println!(
            "Demo loaded: {} events recorded, {} already there.\n",
            report.recorded, report.duplicates
        );
        println!("Demo organisations and their API keys (issued for this run):");
        for organization in &report.organizations {
            println!(
                "  {:<28} {:<48} {}",
                organization.name, organization.id, organization.api_key
            );
        }
        println!(
            "\nTry:\n  curl -s {base}/v1/events/{}\n  curl -s {base}/v1/schemas/BatchFabricated\n",
            demo::demo_batch_event_id()
        );
        println!("The first batch of the demo is {}.", demo::DEMO_BATCH);
    }
    println!("Stigmergy is listening on {base} (Ctrl-C to stop).");
    server
        .await
        .context("the server task failed")?
        .context("the server failed")
}
