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
pub mod metrics;
pub mod problem;
pub mod rate;
mod routes;
pub mod schemas;
pub mod sequencer;

use std::sync::Arc;

use stigmergy_log::EventLog;
use stigmergy_store::OrganizationDirectory;

pub use routes::configure;
pub use sequencer::{Receipt, Sequencer};

use actix_web::http::StatusCode;
use stigmergy_domain::Submission;
use stigmergy_domain::rules::RefusalClass;
use stigmergy_store::Organization;

use problem::{Problem, Violation};
use sequencer::SequencerError;

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
    /// Events an organisation may record per second on average (0: no limit; `rate`).
    pub rate_limit_events_per_second: u32,
    /// Most events an organisation may record at once after a pause (at least
    /// `max_events_per_request`).
    pub rate_limit_burst: u32,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_events_per_request: 1000,
            max_json_depth: 32,
            max_reported_violations: 100,
            max_group_requests: 64,
            rate_limit_events_per_second: 5_000,
            rate_limit_burst: 50_000,
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
    pub metrics: metrics::CaptureMetrics,
    pub limits: rate::RateLimits,
}

/// How long a request waits for the sequencer to be ready before it is answered 503.
const READY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// What a recording request stored: a receipt per event, in the order sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub receipts: Vec<Receipt>,
}

impl Recorded {
    /// 201 when something new was stored, 200 when every event was already in the log.
    pub fn status(&self) -> StatusCode {
        if self.receipts.iter().all(|r| r.duplicate) {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        }
    }
}

impl Capture {
    /// Records the events of a request body on behalf of `organization`: limits and framing
    /// ([`body`]), schema validation, parsing, then the [`Sequencer`]'s rules and append; all
    /// accepted or none. `POST /v1/events` and the gateway's `recordEvents` mutation both come
    /// here, so they validate, refuse and deduplicate alike.
    pub async fn record(
        &self,
        organization: Organization,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<Recorded, Problem> {
        let outcome = self
            .record_unmetered(organization, content_type, bytes)
            .await;
        match &outcome {
            Ok(recorded) => {
                let duplicates = recorded.receipts.iter().filter(|r| r.duplicate).count();
                self.metrics.recorded(
                    (recorded.receipts.len() - duplicates) as u64,
                    duplicates as u64,
                );
            }
            Err(problem) => self.metrics.refused(problem.kind),
        }
        outcome
    }

    async fn record_unmetered(
        &self,
        organization: Organization,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<Recorded, Problem> {
        tracing::Span::current().record("organization", organization.id.as_str());
        if bytes.len() > self.config.max_body_bytes {
            return Err(body::too_large(self.config.max_body_bytes));
        }
        let events = body::split(content_type, bytes, &self.config)?;
        tracing::Span::current().record("events", events.items.len());
        // Before validation: a flood of invalid events spends the budget too.
        self.limits.take(&organization.id, events.items.len())?;

        let limit = self.config.max_reported_violations;
        let mut violations = Vec::new();
        for (prefix, value) in &events.items {
            if violations.len() >= limit {
                break;
            }
            violations.extend(
                self.schemas
                    .validate(value, prefix, limit - violations.len()),
            );
        }
        if !violations.is_empty() {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "schema-violation",
                "The events do not match their schema",
                format!(
                    "{} violation(s) of the event schemas; nothing was recorded",
                    violations.len()
                ),
            )
            .with_errors(violations));
        }

        let mut submissions = Vec::with_capacity(events.items.len());
        for (prefix, value) in events.items {
            let submission = Submission::from_json(value).map_err(|error| {
                let violation = Violation {
                    pointer: format!("{prefix}{}", error.pointer),
                    detail: error.detail,
                };
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid-event",
                    "An event is not valid",
                    format!(
                        "{}: {}; nothing was recorded",
                        violation.pointer, violation.detail
                    ),
                )
                .with_errors(vec![violation])
            })?;
            submissions.push(submission);
        }

        let pointer_prefix = |index: usize| match events.framing {
            body::Framing::Single => String::new(),
            _ => format!("/{index}"),
        };
        // While the state is (re)loaded — the log was unreachable — a request is not kept
        // waiting for long: it is answered 503, and nothing of it was recorded.
        if !self.sequencer.ready_within(READY_PATIENCE).await {
            return Err(Problem::unavailable(
                "the event log is unreachable or the capture state is being reloaded from it; \
                 nothing was recorded, retry later",
            ));
        }
        let admitted = std::time::Instant::now();
        let appended = self.sequencer.submit(organization.id, submissions).await;
        self.metrics.appended(admitted.elapsed());
        match appended {
            Ok(receipts) => Ok(Recorded { receipts }),
            Err(SequencerError::Refused { index, refusal }) => {
                let status = match refusal.rule.class() {
                    RefusalClass::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
                    RefusalClass::Conflict => StatusCode::CONFLICT,
                    RefusalClass::Forbidden => StatusCode::FORBIDDEN,
                };
                let pointer = format!("{}{}", pointer_prefix(index), refusal.pointer);
                Err(Problem::new(
                    status,
                    "rule-violation",
                    refusal.rule.title(),
                    format!("{pointer}: {}; nothing was recorded", refusal.detail),
                )
                .with("rule", refusal.rule.slug())
                .with_errors(vec![Violation {
                    pointer,
                    detail: refusal.detail,
                }]))
            }
            Err(SequencerError::Unavailable(reason)) => Err(Problem::unavailable(format!(
                "the events could not be confirmed durable ({reason}); send them again with the \
                 same eventIds: any that were stored after all are answered as duplicates"
            ))),
        }
    }
}
