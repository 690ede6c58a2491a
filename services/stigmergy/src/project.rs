//! `stigmergy project`: the views projector as a process of its own. It applies the log to the
//! views store from the position the store holds up to the log's head, and exits; a crash or a
//! kill at any point leaves the store at the last page it committed, and the next run goes on
//! from there. (`stigmergy serve` runs the same projector inside the all-in-one process, following
//! the log as it grows.)

use std::time::{Duration, Instant};

use stigmergy_domain::LogPosition;
use stigmergy_projector::Projector;

use crate::app::{open_log, open_views};
use crate::config::Config;

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
    let log = open_log(&config.log_url())?;
    let views = open_views(config)?;
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

/// The name the views projector keeps its position under, in every process.
pub const PROJECTOR: &str = "views";
