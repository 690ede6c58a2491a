//! The HTTP routes of capture: events, schemas, organisations, health.

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use stigmergy_domain::{EventId, Iri};
use stigmergy_store::Error as StoreError;
use tracing::instrument;

use crate::Capture;
use crate::auth;
use crate::body;
use crate::problem::{Problem, Violation};

/// Mounts the capture routes (and `/healthz`, `/readyz`) on an actix-web app.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/v1/events", web::post().to(record_events))
        .route("/v1/events/{event_id}", web::get().to(get_event))
        .route("/v1/schemas", web::get().to(list_schemas))
        .route("/v1/schemas/{name}", web::get().to(get_schema))
        .route("/v1/organizations", web::post().to(create_organization))
        .route("/v1/organizations", web::get().to(list_organizations))
        .route("/v1/organizations/{id}", web::get().to(get_organization))
        .route("/v1/organizations/{id}/keys", web::post().to(issue_key))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .json(body)
}

/// `POST /v1/events`: one event, a JSON array, or NDJSON; all accepted or none.
#[instrument(name = "capture.record_events", skip_all, fields(organization, events))]
async fn record_events(
    request: HttpRequest,
    payload: web::Payload,
    capture: web::Data<Capture>,
) -> Result<HttpResponse, Problem> {
    let organization = auth::organization(&request, &capture.directory)?;
    let bytes = body::read_limited(&request, payload, capture.config.max_body_bytes).await?;
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let recorded = capture.record(organization, content_type, &bytes).await?;
    Ok(json_response(
        recorded.status(),
        &json!({ "events": recorded.receipts }),
    ))
}

/// `GET /v1/events/{eventId}`: the stored envelope.
#[instrument(name = "capture.get_event", skip_all, fields(event_id = %path))]
async fn get_event(
    path: web::Path<String>,
    capture: web::Data<Capture>,
) -> Result<HttpResponse, Problem> {
    let event_id = EventId::parse(&path).map_err(|detail| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-event-id",
            "Invalid event id",
            detail.clone(),
        )
        .with_errors(vec![Violation {
            pointer: String::new(),
            detail,
        }])
    })?;
    match capture.log.get(event_id).await {
        Ok(Some(stored)) => Ok(HttpResponse::Ok()
            .content_type("application/json")
            .insert_header(("X-Log-Position", stored.position.to_string()))
            .json(&stored.event)),
        Ok(None) => Err(Problem::not_found(format!(
            "no event {event_id} has been recorded"
        ))),
        Err(failure) => Err(Problem::unavailable(failure.to_string())),
    }
}

/// `GET /v1/schemas`: the names of the published schemas.
async fn list_schemas(capture: web::Data<Capture>) -> HttpResponse {
    let names = capture.schemas.names();
    let schemas: Vec<_> = names
        .iter()
        .map(|name| json!({ "name": name, "href": format!("/v1/schemas/{name}") }))
        .collect();
    json_response(StatusCode::OK, &json!({ "schemas": schemas }))
}

/// `GET /v1/schemas/{type}`: the JSON Schema of an event type, or `envelope`.
async fn get_schema(
    path: web::Path<String>,
    capture: web::Data<Capture>,
) -> Result<HttpResponse, Problem> {
    match capture.schemas.text(&path) {
        Some(text) => Ok(HttpResponse::Ok()
            .content_type("application/schema+json")
            .body(text)),
        None => Err(Problem::not_found(format!(
            "no schema {:?}; published schemas: {}",
            path.as_str(),
            capture.schemas.names().join(", ")
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrganization {
    name: String,
}

fn parse_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(bytes).map_err(|error| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "Malformed request",
            error.to_string(),
        )
        .with_errors(vec![Violation {
            pointer: String::new(),
            detail: error.to_string(),
        }])
    })
}

/// `POST /v1/organizations` (operator): registers an organisation and shows its API key once.
#[instrument(name = "capture.create_organization", skip_all)]
async fn create_organization(
    request: HttpRequest,
    payload: web::Payload,
    capture: web::Data<Capture>,
) -> Result<HttpResponse, Problem> {
    auth::operator(&request, &capture.operator)?;
    let bytes = body::read_limited(&request, payload, 64 * 1024).await?;
    let new: NewOrganization = parse_json(&bytes)?;
    let name = stigmergy_domain::Name::parse(new.name.trim()).map_err(|detail| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-name",
            "Invalid name",
            detail.clone(),
        )
        .with_errors(vec![Violation {
            pointer: "/name".into(),
            detail,
        }])
    })?;
    match capture.directory.create(name.as_str()).await {
        Ok((organization, key)) => Ok(json_response(
            StatusCode::CREATED,
            &json!({
                "id": organization.id,
                "name": organization.name,
                "createdAt": organization.created_at,
                "apiKey": key.expose(),
            }),
        )),
        Err(StoreError::NameTaken(name)) => Err(Problem::new(
            StatusCode::CONFLICT,
            "name-taken",
            "Name already registered",
            format!("an organisation named {name:?} already exists"),
        )
        .with_errors(vec![Violation {
            pointer: "/name".into(),
            detail: "already registered".into(),
        }])),
        Err(failure) => Err(Problem::unavailable(failure.to_string())),
    }
}

/// `GET /v1/organizations` (operator): every organisation, without keys.
async fn list_organizations(
    request: HttpRequest,
    capture: web::Data<Capture>,
) -> Result<HttpResponse, Problem> {
    auth::operator(&request, &capture.operator)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "organizations": capture.directory.list() }),
    ))
}

fn organization_id(path: &str) -> Result<Iri, Problem> {
    Iri::parse(path).map_err(|detail| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-organization-id",
            "Invalid organisation id",
            detail,
        )
    })
}

/// `GET /v1/organizations/{id}`: an organisation's public record.
async fn get_organization(
    path: web::Path<String>,
    capture: web::Data<Capture>,
) -> Result<HttpResponse, Problem> {
    let id = organization_id(&path)?;
    match capture.directory.get(&id) {
        Some(organization) => Ok(json_response(StatusCode::OK, &organization)),
        None => Err(Problem::not_found(format!("no organisation {id}"))),
    }
}

/// `POST /v1/organizations/{id}/keys` (operator): one more API key for an organisation.
async fn issue_key(
    request: HttpRequest,
    path: web::Path<String>,
    capture: web::Data<Capture>,
) -> Result<HttpResponse, Problem> {
    auth::operator(&request, &capture.operator)?;
    let id = organization_id(&path)?;
    match capture.directory.issue_key(&id).await {
        Ok(key) => Ok(json_response(
            StatusCode::CREATED,
            &json!({ "organizationId": id, "apiKey": key.expose() }),
        )),
        Err(StoreError::UnknownOrganization(_)) => {
            Err(Problem::not_found(format!("no organisation {id}")))
        }
        Err(failure) => Err(Problem::unavailable(failure.to_string())),
    }
}

/// `GET /healthz`: the process is up.
async fn healthz() -> HttpResponse {
    json_response(StatusCode::OK, &json!({ "status": "ok" }))
}

/// `GET /readyz`: the capture state is loaded and events are being admitted.
async fn readyz(capture: web::Data<Capture>) -> Result<HttpResponse, Problem> {
    if capture.sequencer.is_ready() {
        Ok(json_response(
            StatusCode::OK,
            &json!({ "status": "ready", "logHead": capture.log.head() }),
        ))
    } else {
        Err(Problem::unavailable(
            "the capture state is being loaded from the event log",
        ))
    }
}
