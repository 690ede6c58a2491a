//! `stigmergy project`: the views projector as a process of its own.
//!
//! On the embedded log it applies the log to the views store from the position the store holds
//! up to the log's head, and exits; a crash or a kill at any point leaves the store at the last
//! page it committed, and the next run goes on from there. (`stigmergy serve` runs the same
//! projector inside the all-in-one process, following the log as it grows.)
//!
//! On Kafka it joins the projectors' consumer group and applies what the group gives it until it
//! is asked to stop (SIGINT or SIGTERM), keeping the group's offsets in the store with the views.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use serde_json::json;
use stigmergy_domain::{Iri, LogPosition};
use stigmergy_projector::kafka::{Documents, GroupProjector};
use stigmergy_projector::{Projector, ProjectorMetrics};

use crate::app::{open_directory, open_log, open_views};
use crate::config::Config;
use crate::metrics::Metrics;

/// What one run applied.
#[derive(Clone, Copy, Debug)]
pub struct ProjectReport {
    pub from: LogPosition,
    pub to: LogPosition,
    pub elapsed: Duration,
}

/// How many events `stigmergy project` applies per transaction.
#[derive(Clone, Copy, Debug)]
pub struct Pages {
    /// Most events per page.
    pub size: usize,
    /// Most events in the page applied at position 0 (into an empty store, in memory).
    pub first: usize,
}

/// Applies the log up to its head, in pages of `pages.size` events after a first of
/// `pages.first`.
pub async fn catch_up(config: &Config, pages: Pages) -> anyhow::Result<ProjectReport> {
    let log = open_log(config).await?;
    let views = open_views(config, stigmergy_store::WhenStale::Rebuild)?;
    let from = views.position(PROJECTOR).await?;
    let started = Instant::now();
    let to = Projector::new(PROJECTOR, log, views)
        .with_page_size(pages.size)
        .with_first_page_size(pages.first)
        .catch_up()
        .await?;
    Ok(ProjectReport {
        from,
        to,
        elapsed: started.elapsed(),
    })
}

/// Joins the projectors' consumer group on the Kafka brokers `brokers`, and applies what it is
/// given to the views store until SIGINT or SIGTERM; then leaves the group after its page. With
/// `listen`, serves `/metrics` and `/healthz` there meanwhile.
pub async fn run_group(
    config: &Config,
    brokers: &str,
    listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let kafka = config.kafka.client(brokers);
    stigmergy_log::kafka::ensure_topics(&kafka)
        .await
        .with_context(|| format!("cannot create the topics at {brokers}"))?;
    let views = open_views(config, stigmergy_store::WhenStale::Rebuild)?;
    let directory = open_directory(config)?;
    let base = config
        .open
        .public_url
        .as_deref()
        .map(|url| url.trim_end_matches('/').to_owned())
        .unwrap_or_default();
    if config.kafka.publish && base.is_empty() {
        tracing::warn!(
            "[open] public_url is not set: the documents published on the metadata topic link \
             relative to the resolver's root"
        );
    }
    let known = directory.clone();
    let documents = Documents {
        base,
        names: Arc::new(move |id: &Iri| directory.name_of(id)),
        // `exists` reloads the directory when it has not seen an organisation.
        recorders: Arc::new(move |organizations: &[Iri]| {
            for organization in organizations {
                known.exists(organization);
            }
        }),
    };
    let mut metrics = Metrics::default();
    let counted = ProjectorMetrics::group_member();
    counted.register(metrics.registry());
    let server = listen.map(|address| serve(address, metrics)).transpose()?;
    let running = GroupProjector::new(kafka, config.kafka.group.clone(), views)
        .with_metrics(counted)
        .with_page_size(config.kafka.page_size)
        .with_first_page_size(config.kafka.first_page_size)
        .with_publishing(config.kafka.publish)
        .with_documents(documents)
        .start(tokio::runtime::Handle::current())?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut finished = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            _ = finished.tick() => if running.is_finished() { break },
        }
    }
    tokio::task::spawn_blocking(move || running.stop()).await??;
    if let Some(server) = server {
        server.stop(true).await;
    }
    Ok(())
}

/// Serves `/metrics` and `/healthz` at `address` on one worker, until stopped.
fn serve(address: SocketAddr, metrics: Metrics) -> anyhow::Result<ServerHandle> {
    let listener =
        TcpListener::bind(address).with_context(|| format!("cannot listen on {address}"))?;
    let bound = listener.local_addr()?;
    let exposition = web::Data::new(metrics.expose());
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(crate::metrics::measure))
            .app_data(exposition.clone())
            .configure(crate::metrics::configure)
            .route(
                "/healthz",
                web::get().to(|| async { HttpResponse::Ok().json(json!({ "status": "ok" })) }),
            )
    })
    .workers(1)
    // The projector's own handlers stop it; then it stops the server.
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    tracing::info!(address = %bound, "serving the projector's metrics");
    println!("stigmergy-projector is listening on http://{bound} (Ctrl-C to stop).");
    Ok(handle)
}

/// The name the views projector keeps its position under, in every process.
pub const PROJECTOR: &str = "views";
