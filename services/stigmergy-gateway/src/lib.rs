//! The gateway of Stigmergy: one async-graphql schema over the views and the log, served by
//! actix-web at `/graphql` — GraphiQL on `GET`, queries and mutations on `POST`, subscriptions
//! over WebSocket (graphql-transport-ws) at `/graphql/ws` or `/graphql` with an upgrade.
//!
//! Queries read the views store: a resource with what it is, where it is, its timeline, lineage,
//! journey, footprint, contributions and anomalies ([`resource`]); designs with their fork tree,
//! organisations with what they made, hold and shipped, the events as a Relay connection, and a
//! search over names ([`query`]). The one mutation, `recordEvents`, hands its events to capture's
//! own recording path ([`mutation`]). Subscriptions replay the log after a cursor and then follow
//! it live, from one follower shared by every subscriber ([`live`]).

pub mod live;
pub mod metrics;
mod mutation;
pub mod open;
pub mod pact;
pub mod query;
pub mod resource;

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL, UPGRADE};
use actix_web::{HttpRequest, HttpResponse, web};
use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::http::{GraphiQLSource, WebSocket, WebSocketProtocols, WsMessage};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Context, Data, Result, Schema, ServerError, ServerResult, Variables};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use stigmergy_capture::Capture;
use stigmergy_domain::Iri;
use stigmergy_domain::views::Record;
use stigmergy_store::ViewStore;

pub use live::{Live, Subscription};
pub use mutation::Mutation;
pub use query::Query;
pub use resource::MAX_LINEAGE_DEPTH;

/// The schema served at `/graphql`.
pub type GatewaySchema = Schema<Query, Mutation, Subscription>;

/// What a query may ask, checked before it runs (`[graphql]` in the configuration,
/// `docs/configuration.md`). A query beyond any of them is refused with an error that names the
/// limit, and runs no resolver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// The deepest nesting of selections.
    pub max_depth: usize,
    /// The most fields a query selects, aliases and fragments spread included, each counted
    /// as many times as it runs (`__typename` counts nothing).
    pub max_complexity: usize,
    /// The most fields a query document writes out, aliases and `__typename` included.
    pub max_fields: usize,
    /// The deepest nesting the parser reads (selections, lists, objects), before any other check.
    pub max_recursive_depth: usize,
    /// The longest request body (or WebSocket message), in bytes.
    pub max_query_bytes: usize,
    /// The most items one page or list may ask for (`first`).
    pub max_page_size: usize,
    /// The live events kept for subscribers that have not yet taken them: one that falls further
    /// behind is told so, with the cursor to resume from.
    pub subscription_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 12,
            max_complexity: 1000,
            max_fields: 500,
            max_recursive_depth: 32,
            max_query_bytes: 64 * 1024,
            max_page_size: 500,
            subscription_buffer: 4096,
        }
    }
}

/// What the gateway reads from and records through.
#[derive(Clone, Debug)]
pub struct Sources {
    pub views: Arc<dyn ViewStore>,
    /// Capture, for the `recordEvents` mutation, the log and the organisation directory.
    pub capture: Capture,
    /// The projector whose position says how far the views have come (anomalies wait for it).
    pub projector: String,
    /// The public base URL of item pages and documents ([`open`]).
    pub public_url: open::PublicUrl,
    /// What the gateway counts for `/metrics`.
    pub metrics: metrics::GatewayMetrics,
}

/// Builds the schema, and starts following the log for subscribers (so it must be called
/// inside a Tokio runtime).
pub fn schema(sources: Sources, limits: Limits) -> GatewaySchema {
    let live = Live::start(
        sources.capture.log.clone(),
        limits.subscription_buffer,
        sources.metrics,
    );
    let loader = DataLoader::new(RecordLoader(sources.views.clone()), tokio::spawn);
    builder(limits)
        .data(sources.views)
        .data(sources.capture)
        .data(Projector(sources.projector))
        .data(sources.public_url)
        .data(live)
        .data(loader)
        .data(limits)
        .finish()
}

/// The schema in GraphQL's schema language, as committed in `schemas/graphql/schema.graphql`.
pub fn sdl() -> String {
    builder(Limits::default()).finish().sdl()
}

fn builder(limits: Limits) -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(Query, Mutation, Subscription)
        .extension(FieldLimit(limits.max_fields))
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(limits.max_recursive_depth)
}

/// The name of the projector the views are written by.
#[derive(Clone, Debug)]
pub(crate) struct Projector(pub(crate) String);

/// The `Authorization` header of the request (or of the WebSocket's upgrade request).
#[derive(Clone, Debug)]
pub(crate) struct Authorization(pub(crate) Option<String>);

/// Loads records in batches: the resources a query reaches through lineage nodes, designs'
/// batches or organisations' lists are fetched together, not one query each.
pub struct RecordLoader(Arc<dyn ViewStore>);

impl std::fmt::Debug for RecordLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordLoader")
    }
}

impl Loader<Iri> for RecordLoader {
    type Value = Record;
    type Error = Arc<stigmergy_store::Error>;

    async fn load(&self, keys: &[Iri]) -> Result<HashMap<Iri, Record>, Self::Error> {
        Ok(self.0.records(keys).await?.into_iter().collect())
    }
}

pub(crate) fn views<'a>(context: &Context<'a>) -> Result<&'a Arc<dyn ViewStore>> {
    context.data::<Arc<dyn ViewStore>>()
}

pub(crate) fn failed(error: stigmergy_store::Error) -> async_graphql::Error {
    async_graphql::Error::new(error.to_string())
}

/// Mounts `/graphql` (GraphiQL on `GET`, queries and mutations on `POST`, WebSocket
/// subscriptions on an upgrade) and `/graphql/ws` on an actix-web app; the schema must be in the
/// app data.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/graphql", web::post().to(graphql))
        .route("/graphql", web::get().to(graphiql_or_socket))
        .route("/graphql/ws", web::get().to(socket));
}

/// GraphiQL, pointed at `/graphql` and `/graphql/ws`, unless the request asks to upgrade to a
/// WebSocket. The page loads GraphiQL's scripts from a public CDN.
async fn graphiql_or_socket(
    request: HttpRequest,
    payload: web::Payload,
    schema: web::Data<GatewaySchema>,
) -> actix_web::Result<HttpResponse> {
    let upgrade = request
        .headers()
        .get(UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    if upgrade {
        return socket(request, payload, schema).await;
    }
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(
            GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql/ws")
                .title("Stigmergy GraphQL")
                .finish(),
        ))
}

fn limits(schema: &GatewaySchema) -> Limits {
    schema.data::<Limits>().copied().unwrap_or_default()
}

fn authorization(request: &HttpRequest) -> Authorization {
    Authorization(
        request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
    )
}

/// One query or mutation as JSON (`{"query", "variables", "operationName"}`), refused before it
/// is parsed when the body is longer than `max_query_bytes` (reading stops there).
async fn graphql(
    request: HttpRequest,
    schema: web::Data<GatewaySchema>,
    mut payload: web::Payload,
) -> HttpResponse {
    let limit = limits(&schema).max_query_bytes;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) => {
                return refused(
                    StatusCode::BAD_REQUEST,
                    format!("the request body could not be read: {error}"),
                );
            }
        };
        if body.len() + chunk.len() > limit {
            return refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request is longer than {limit} bytes, the most a query may be (max_query_bytes)"
                ),
            );
        }
        body.extend_from_slice(&chunk);
    }
    let graphql: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(graphql) => graphql,
        Err(error) => {
            return refused(
                StatusCode::BAD_REQUEST,
                format!("the body is not a GraphQL request in JSON: {error}"),
            );
        }
    };
    let graphql = graphql.data(authorization(&request));
    HttpResponse::Ok().json(schema.execute(graphql).await)
}

/// Subscriptions (and queries and mutations) over a WebSocket, with the graphql-transport-ws
/// protocol (the older graphql-ws is accepted too). Messages longer than `max_query_bytes` close
/// the connection. What the client has not read yet waits in a small bounded queue: a client
/// that stops reading stops its subscriptions from being polled, never the log or the others.
async fn socket(
    request: HttpRequest,
    payload: web::Payload,
    schema: web::Data<GatewaySchema>,
) -> actix_web::Result<HttpResponse> {
    let protocol = request
        .headers()
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .split(',')
                .find_map(|protocol| protocol.trim().parse::<WebSocketProtocols>().ok())
        });
    let Some(protocol) = protocol else {
        return Ok(refused(
            StatusCode::BAD_REQUEST,
            "ask for the graphql-transport-ws sub-protocol (Sec-WebSocket-Protocol)".to_owned(),
        ));
    };
    let (response, mut session, stream) =
        actix_ws::handle_with_protocols(&request, payload, &[protocol.sec_websocket_protocol()])?;
    let stream = stream
        .max_frame_size(limits(&schema).max_query_bytes)
        .aggregate_continuations()
        .max_continuation_size(limits(&schema).max_query_bytes);
    let mut data = Data::default();
    data.insert(authorization(&request));

    let pong = session.clone();
    let incoming = stream
        .take_while(|message| {
            std::future::ready(!matches!(
                message,
                Err(_) | Ok(actix_ws::AggregatedMessage::Close(_))
            ))
        })
        .filter_map(move |message| {
            let answer = match message {
                Ok(actix_ws::AggregatedMessage::Text(text)) => Some(text.as_bytes().to_vec()),
                Ok(actix_ws::AggregatedMessage::Binary(bytes)) => Some(bytes.to_vec()),
                Ok(actix_ws::AggregatedMessage::Ping(bytes)) => {
                    let mut pong = pong.clone();
                    actix_web::rt::spawn(async move {
                        let _ = pong.pong(&bytes).await;
                    });
                    None
                }
                _ => None,
            };
            std::future::ready(answer)
        });
    let schema = schema.into_inner();
    actix_web::rt::spawn(async move {
        let mut messages =
            WebSocket::new((*schema).clone(), incoming, protocol).connection_data(data);
        while let Some(message) = messages.next().await {
            match message {
                WsMessage::Text(text) => {
                    if session.text(text).await.is_err() {
                        return;
                    }
                }
                WsMessage::Close(code, reason) => {
                    let _ = session
                        .close(Some(actix_ws::CloseReason {
                            code: code.into(),
                            description: Some(reason),
                        }))
                        .await;
                    return;
                }
            }
        }
        let _ = session.close(None).await;
    });
    Ok(response)
}

/// Refuses a document that writes out more than this many fields (a query of thousands of
/// aliases of `__typename` has no complexity, but costs all the same).
struct FieldLimit(usize);

impl ExtensionFactory for FieldLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(FieldLimit(self.0))
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for FieldLimit {
    async fn parse_query(
        &self,
        context: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(context, query, variables).await?;
        let operations = document
            .operations
            .iter()
            .map(|(_, operation)| &operation.node.selection_set.node);
        let fragments = document
            .fragments
            .values()
            .map(|fragment| &fragment.node.selection_set.node);
        let fields: usize = operations.chain(fragments).map(fields_in).sum();
        if fields > self.0 {
            return Err(ServerError::new(
                format!(
                    "the query writes out {fields} fields; a query may write {} at most (max_fields)",
                    self.0
                ),
                None,
            ));
        }
        Ok(document)
    }
}

/// The fields a selection set writes out, nested ones included, fragments spread not.
fn fields_in(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => 1 + fields_in(&field.node.selection_set.node),
            Selection::InlineFragment(fragment) => fields_in(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// A request refused before it reached GraphQL, answered as GraphQL answers errors.
fn refused(status: StatusCode, message: String) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "errors": [{ "message": message }] }))
}
