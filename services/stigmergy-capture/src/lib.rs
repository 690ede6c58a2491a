//! The capture service of Stigmergy: the HTTP door through which organisations record lifecycle
//! events (`POST /v1/events`), read them back, fetch the JSON Schemas, and through which the
//! operator registers organisations.
//!
//! An event goes: body limits and JSON parsing ([`body`]) → validation against the committed JSON
//! Schema ([`schemas`]) → parsing into domain types → the [`sequencer`], which seals it, checks
//! the domain rules against the state the log implies and appends it to the event log → the
//! answer, sent only once the append is durable. This crate never writes to storage itself: the
//! log and the organisation directory are ports it is given.

pub mod auth;
pub mod body;
pub mod problem;
mod routes;
pub mod schemas;
pub mod sequencer;

use std::sync::Arc;

use stigmergy_log::EventLog;
use stigmergy_store::OrganizationDirectory;

pub use routes::configure;
pub use sequencer::{Receipt, Sequencer};

/// Limits and tuning of the capture service. Every limit answers with a clear problem+json.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureConfig {
    /// Largest request body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Most events in one request (413 beyond).
    pub max_events_per_request: usize,
    /// Deepest JSON nesting of arrays and objects (400 beyond).
    pub max_json_depth: usize,
    /// Most schema violations listed in one answer.
    pub max_reported_violations: usize,
    /// Most requests the sequencer admits and appends together (one log append, one fsync).
    pub max_group_requests: usize,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_events_per_request: 1000,
            max_json_depth: 32,
            max_reported_violations: 100,
            max_group_requests: 64,
        }
    }
}

/// Everything the capture routes need, shared by every worker.
#[derive(Clone, Debug)]
pub struct Capture {
    pub config: CaptureConfig,
    pub schemas: Arc<schemas::EventSchemas>,
    pub sequencer: Sequencer,
    pub log: Arc<dyn EventLog>,
    pub directory: OrganizationDirectory,
    pub operator: auth::OperatorToken,
}
