//! `recordEvents`: the second door to capture. The events go through [`Capture::record`], the
//! very function behind `POST /v1/events` — same limits, schema validation, rules, idempotency
//! and answer — and a refusal carries the same problem document, in the error's extensions.

use async_graphql::{Context, ErrorExtensions, Json, Object, Result, SimpleObject};
use stigmergy_capture::Capture;
use stigmergy_capture::auth::organization_of;
use stigmergy_capture::problem::Problem;

use crate::Authorization;

#[derive(Debug, Default)]
pub struct Mutation;

/// What a recording stored.
#[derive(Debug, SimpleObject)]
pub struct Recorded {
    /// 201 when something new was stored, 200 when every event was already in the log (as
    /// `POST /v1/events` answers).
    status: u16,
    /// One receipt per event, in the order sent.
    events: Vec<Receipt>,
}

/// Where an accepted event is in the log.
#[derive(Debug, SimpleObject)]
pub struct Receipt {
    event_id: String,
    /// Its cursor: the log position.
    position: u64,
    /// Whether it was already in the log (sent again with the same content).
    duplicate: bool,
}

#[Object]
impl Mutation {
    /// Records lifecycle events, all or none, on behalf of the organisation whose API key the
    /// request carries (`Authorization: Bearer <api key>`). The events are those `POST
    /// /v1/events` takes; a refusal is a GraphQL error whose extensions are the problem document
    /// REST would answer (`type`, `title`, `status`, `detail`, `errors` with JSON pointers
    /// into `events`, and `rule` when a rule refused).
    async fn record_events(
        &self,
        context: &Context<'_>,
        events: Vec<Json<serde_json::Value>>,
    ) -> Result<Recorded> {
        let capture = context.data::<Capture>()?;
        let authorization = context.data::<Authorization>()?;
        let organization =
            organization_of(authorization.0.as_deref(), &capture.directory).map_err(problem)?;
        let events: Vec<serde_json::Value> = events.into_iter().map(|event| event.0).collect();
        let body = serde_json::to_vec(&events)?;
        let recorded = capture
            .record(organization, "application/json", &body)
            .await
            .map_err(problem)?;
        Ok(Recorded {
            status: recorded.status().as_u16(),
            events: recorded
                .receipts
                .into_iter()
                .map(|receipt| Receipt {
                    event_id: receipt.event_id.to_string(),
                    position: receipt.position.0,
                    duplicate: receipt.duplicate,
                })
                .collect(),
        })
    }
}

/// A refusal as a GraphQL error: the problem's detail as the message, the whole problem
/// document as the extensions.
fn problem(problem: Problem) -> async_graphql::Error {
    let body = problem.body();
    async_graphql::Error::new(problem.detail.clone()).extend_with(|_, extensions| {
        if let serde_json::Value::Object(members) = body {
            for (key, value) in members {
                if let Ok(value) = async_graphql::Value::from_json(value) {
                    extensions.set(key, value);
                }
            }
        }
    })
}
