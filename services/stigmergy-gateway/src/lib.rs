//! The gateway of Stigmergy: the async-graphql schema over the views store, served at
//! `POST /graphql` (GraphiQL on `GET`): `resource(id)` with what it is, its timeline, upstream and downstream
//! lineage, custody journey, footprint (with its versions), contributions and anomalies.
//!
//! The gateway only reads: it never writes to the store or the log (recording goes through
//! capture).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{
    Context, EmptyMutation, EmptySubscription, Object, Result, Schema, SimpleObject,
};
use async_graphql::{ServerError, ServerResult, Variables};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use stigmergy_domain::Iri;

use stigmergy_domain::views::{Direction, Lineage, Record, Role, journey};
use stigmergy_store::ViewStore;

/// The deepest lineage a query may ask for.
pub const MAX_LINEAGE_DEPTH: u32 = 50;

/// The schema served at `/graphql`.
pub type GatewaySchema = Schema<Query, EmptyMutation, EmptySubscription>;

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
    /// The longest request body, in bytes.
    pub max_query_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 12,
            max_complexity: 1000,
            max_fields: 500,
            max_recursive_depth: 32,
            max_query_bytes: 64 * 1024,
        }
    }
}

/// Builds the schema over a views store.
pub fn schema(views: Arc<dyn ViewStore>, limits: Limits) -> GatewaySchema {
    builder(limits).data(views).data(limits).finish()
}

/// The schema in GraphQL's schema language, as committed in `schemas/graphql/schema.graphql`.
pub fn sdl() -> String {
    builder(Limits::default()).finish().sdl()
}

fn builder(
    limits: Limits,
) -> async_graphql::SchemaBuilder<Query, EmptyMutation, EmptySubscription> {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .extension(FieldLimit(limits.max_fields))
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(limits.max_recursive_depth)
}

/// Mounts `POST /graphql` (queries) and `GET /graphql` (GraphiQL, to explore the schema in a
/// browser) on an actix-web app; the schema must be in the app data.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/graphql", web::post().to(graphql))
        .route("/graphql", web::get().to(graphiql));
}

/// GraphiQL, pointed at `/graphql`. The page loads GraphiQL's scripts from a public CDN.
async fn graphiql() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(
            GraphiQLSource::build()
                .endpoint("/graphql")
                .title("Stigmergy GraphQL")
                .finish(),
        )
}

/// One query as JSON (`{"query", "variables", "operationName"}`), refused before it is parsed
/// when the body is longer than `max_query_bytes` (reading stops there).
async fn graphql(schema: web::Data<GatewaySchema>, mut payload: web::Payload) -> HttpResponse {
    let limit = schema
        .data::<Limits>()
        .map_or(Limits::default().max_query_bytes, |limits| {
            limits.max_query_bytes
        });
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
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return refused(
                StatusCode::BAD_REQUEST,
                format!("the body is not a GraphQL request in JSON: {error}"),
            );
        }
    };
    HttpResponse::Ok().json(schema.execute(request).await)
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

#[derive(Debug)]
pub struct Query;

#[Object]
impl Query {
    /// A design, material lot, batch or shipment by its IRI; null when no event mentions it.
    async fn resource(&self, context: &Context<'_>, id: String) -> Result<Option<Resource>> {
        let id = Iri::parse(id).map_err(async_graphql::Error::new)?;
        let views = views(context)?;
        let record = views.record(&id).await.map_err(failed)?;
        let Some(record) = record else {
            return Ok(None);
        };
        Ok(Some(Resource { id, record }))
    }
}

fn views<'a>(context: &Context<'a>) -> Result<&'a Arc<dyn ViewStore>> {
    context.data::<Arc<dyn ViewStore>>()
}

fn failed(error: stigmergy_store::Error) -> async_graphql::Error {
    async_graphql::Error::new(error.to_string())
}

/// Something the log speaks of: a design, material lot, batch, recovered lot or shipment, or
/// something an event refers to that was never recorded (`kind: unknown`).
#[derive(Debug)]
pub struct Resource {
    id: Iri,
    record: Record,
}

/// One event in a resource's life.
#[derive(Debug, SimpleObject)]
pub struct TimelineEntry {
    position: u64,
    event_id: String,
    r#type: String,
    /// How the event concerns the resource: created, consumed, repaired, dispatched, received,
    /// contributedTo, cited or retracted.
    role: String,
    occurred_at: String,
    recorded_by: String,
}

/// A resource reached by a lineage walk, at its distance from the start.
#[derive(Debug, SimpleObject)]
pub struct LineageNode {
    id: String,
    depth: u32,
}

/// What flowed into what.
#[derive(Debug, SimpleObject)]
pub struct LineageEdge {
    from: String,
    to: String,
    /// input, design, fork, part or recycled.
    kind: String,
    amount: Option<f64>,
    unit: Option<String>,
}

/// The part of the graph a walk reached.
#[derive(Debug, SimpleObject)]
pub struct LineageGraph {
    nodes: Vec<LineageNode>,
    edges: Vec<LineageEdge>,
    /// Whether the depth limit cut the walk.
    truncated: bool,
}

impl From<Lineage> for LineageGraph {
    fn from(lineage: Lineage) -> Self {
        Self {
            nodes: lineage
                .nodes
                .into_iter()
                .map(|(id, depth)| LineageNode {
                    id: id.to_string(),
                    depth,
                })
                .collect(),
            edges: lineage
                .edges
                .into_iter()
                .map(|flow| LineageEdge {
                    from: flow.from.to_string(),
                    to: flow.to.to_string(),
                    kind: flow.kind.name().to_owned(),
                    amount: flow.quantity.map(|q| q.amount.get()),
                    unit: flow.quantity.map(|q| q.unit.code().to_owned()),
                })
                .collect(),
            truncated: lineage.truncated,
        }
    }
}

impl Resource {
    async fn walk(
        &self,
        context: &Context<'_>,
        direction: Direction,
        depth: u32,
    ) -> Result<LineageGraph> {
        if depth > MAX_LINEAGE_DEPTH {
            return Err(async_graphql::Error::new(format!(
                "depth is at most {MAX_LINEAGE_DEPTH}"
            )));
        }
        let lineage = views(context)?
            .lineage(&self.id, direction, depth)
            .await
            .map_err(failed)?;
        Ok(lineage.into())
    }
}

#[Object]
impl Resource {
    async fn id(&self) -> String {
        self.id.to_string()
    }

    /// design, materialLot, batch, recoveredLot, shipment, or unknown (referred to, never
    /// recorded).
    async fn kind(&self) -> &'static str {
        self.record.kind.name()
    }

    /// The design's name or the lot's material.
    async fn name(&self) -> Option<&str> {
        self.record.name.as_deref()
    }

    /// The quantity it was created with.
    async fn quantity(&self) -> Option<Amount> {
        self.record.quantity.map(|q| Amount {
            amount: q.amount.get(),
            unit: q.unit.code(),
        })
    }

    /// The organisation that recorded its creation.
    async fn created_by(&self) -> Option<String> {
        self.record.created_by.as_ref().map(Iri::to_string)
    }

    /// The design a batch was made from, or the parent of a forked design.
    async fn design(&self) -> Option<String> {
        self.record.design.as_ref().map(Iri::to_string)
    }

    /// Its cradle-to-gate footprint per declared unit, current version; null for designs and
    /// shipments.
    async fn footprint(&self, context: &Context<'_>) -> Result<Option<FootprintView>> {
        let Some(footprint) = &self.record.footprint else {
            return Ok(None);
        };
        let versions = views(context)?
            .footprint_versions(&self.id)
            .await
            .map_err(failed)?;
        let current = versions
            .iter()
            .rev()
            .find(|v| v.status == stigmergy_store::FootprintStatus::Active);
        Ok(Some(FootprintView::new(footprint, current, &versions)))
    }

    /// Every footprint version issued for it, oldest first.
    async fn footprint_versions(&self, context: &Context<'_>) -> Result<Vec<FootprintView>> {
        let versions = views(context)?
            .footprint_versions(&self.id)
            .await
            .map_err(failed)?;
        Ok(versions
            .iter()
            .map(|v| FootprintView::new(&v.footprint, Some(v), &versions))
            .collect())
    }

    /// Who holds which share of it, by the value equation.
    async fn contributions(&self) -> Option<Contributions> {
        self.record
            .attribution
            .as_ref()
            .map(|attribution| Contributions {
                method: stigmergy_domain::views::contribution::METHOD,
                shares: attribution
                    .ranked()
                    .into_iter()
                    .map(|(agent, share)| Share {
                        agent: agent.to_string(),
                        share,
                    })
                    .collect(),
            })
    }

    /// Inconsistencies found about it, each with the events involved.
    async fn anomalies(&self) -> Vec<AnomalyView> {
        self.record
            .anomalies
            .iter()
            .map(|a| AnomalyView {
                kind: a.kind.name(),
                detail: a.detail.clone(),
                organization: a.organization.as_ref().map(Iri::to_string),
                events: a.events.iter().map(ToString::to_string).collect(),
            })
            .collect()
    }

    /// Its shipments in the order they were dispatched: who held it when and where.
    async fn journey(&self, context: &Context<'_>) -> Result<Vec<LegView>> {
        let timeline = views(context)?.timeline(&self.id).await.map_err(failed)?;
        let events: Vec<_> = timeline
            .into_iter()
            .filter(|e| matches!(e.role, Role::Dispatched | Role::Received))
            .map(|e| e.event)
            .collect();
        Ok(journey(&self.id, &events)
            .into_iter()
            .map(|leg| LegView {
                shipment: leg.shipment.to_string(),
                shipper: leg.shipper.to_string(),
                consignee: leg.consignee.to_string(),
                from: PlaceView::from(&leg.from),
                to: PlaceView::from(&leg.to),
                transport_mode: serde_json::to_value(leg.transport_mode)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                quantity: Amount {
                    amount: leg.quantity.amount.get(),
                    unit: leg.quantity.unit.code(),
                },
                dispatched_at: leg.dispatched_at.to_string(),
                received_at: leg.received.as_ref().map(|r| r.at.to_string()),
                received_quantity: leg.received.as_ref().map(|r| Amount {
                    amount: r.quantity.amount.get(),
                    unit: r.quantity.unit.code(),
                }),
                received_location: leg.received.as_ref().map(|r| PlaceView::from(&r.location)),
            })
            .collect())
    }

    /// Every event about it that is not retracted, in `occurredAt` then log order.
    async fn timeline(&self, context: &Context<'_>) -> Result<Vec<TimelineEntry>> {
        let timeline = views(context)?.timeline(&self.id).await.map_err(failed)?;
        Ok(timeline
            .iter()
            .map(|entry| TimelineEntry {
                position: entry.position.0,
                event_id: entry.event.event_id.to_string(),
                r#type: entry.event.event_type().name().to_owned(),
                role: entry.role.name().to_owned(),
                occurred_at: entry.event.occurred_at.to_string(),
                recorded_by: entry.event.recorded_by.to_string(),
            })
            .collect())
    }

    /// What it was made from, recursively, up to `depth` levels (at most 50).
    async fn upstream(
        &self,
        context: &Context<'_>,
        #[graphql(default = 10)] depth: u32,
    ) -> Result<LineageGraph> {
        self.walk(context, Direction::Upstream, depth).await
    }

    /// What was made from it, recursively, up to `depth` levels (at most 50): the recall set.
    async fn downstream(
        &self,
        context: &Context<'_>,
        #[graphql(default = 10)] depth: u32,
    ) -> Result<LineageGraph> {
        self.walk(context, Direction::Downstream, depth).await
    }
}

/// An amount in a UN/ECE Rec 20 unit.
#[derive(Debug, SimpleObject)]
pub struct Amount {
    amount: f64,
    unit: &'static str,
}

/// kgCO2e by category.
#[derive(Debug, SimpleObject)]
#[graphql(name = "Breakdown")]
pub struct BreakdownView {
    materials: f64,
    fabrication: f64,
    transport: f64,
}

/// A cradle-to-gate footprint per declared unit, as issued in one version.
#[derive(Debug, SimpleObject)]
#[graphql(name = "Footprint")]
pub struct FootprintView {
    /// The version's id (stable: a UUIDv5 of the resource and the version number).
    id: Option<String>,
    version: Option<u32>,
    /// Active, or Deprecated once a newer version replaced it.
    status: Option<&'static str>,
    /// The ids of the versions it replaces, most recent first.
    preceding_ids: Vec<String>,
    /// kgCO2e per declared unit, all categories.
    #[graphql(name = "kgCo2ePerUnit")]
    kg_co2e_per_unit: f64,
    breakdown: BreakdownView,
    /// The unit the figures are per (the kilogram for any mass unit).
    declared_unit: &'static str,
    recycled_content: f64,
    primary_data_share: f64,
    method: &'static str,
    method_version: &'static str,
    /// Inputs whose footprint is not known: each counted as 0, so the figure is a lower bound.
    missing_inputs: Vec<String>,
}

impl FootprintView {
    fn new(
        footprint: &stigmergy_domain::views::Footprint,
        version: Option<&stigmergy_store::FootprintVersion>,
        all: &[stigmergy_store::FootprintVersion],
    ) -> Self {
        let mut preceding_ids = Vec::new();
        if let Some(version) = version {
            preceding_ids = all
                .iter()
                .rev()
                .filter(|v| v.version < version.version)
                .map(|v| v.id.to_string())
                .collect();
        }
        Self {
            id: version.map(|v| v.id.to_string()),
            version: version.map(|v| v.version),
            status: version.map(|v| v.status.name()),
            preceding_ids,
            kg_co2e_per_unit: footprint.per_unit.total(),
            breakdown: BreakdownView {
                materials: footprint.per_unit.materials,
                fabrication: footprint.per_unit.fabrication,
                transport: footprint.per_unit.transport,
            },
            declared_unit: footprint.unit.code(),
            recycled_content: footprint.recycled_content,
            primary_data_share: footprint.primary_data_share,
            method: footprint.method,
            method_version: footprint.method_version,
            missing_inputs: footprint
                .missing_inputs
                .iter()
                .map(Iri::to_string)
                .collect(),
        }
    }
}

/// The attribution of a resource.
#[derive(Debug, SimpleObject)]
pub struct Contributions {
    /// The method's name and version.
    method: &'static str,
    /// Largest first; the shares sum to 1.
    shares: Vec<Share>,
}

#[derive(Debug, SimpleObject)]
pub struct Share {
    agent: String,
    share: f64,
}

#[derive(Debug, SimpleObject)]
#[graphql(name = "Anomaly")]
pub struct AnomalyView {
    /// massBalance, custody, unresolvedReference or missingFootprintInput.
    kind: &'static str,
    detail: String,
    organization: Option<String>,
    /// The ids of the events involved.
    events: Vec<String>,
}

#[derive(Debug, SimpleObject)]
#[graphql(name = "Place")]
pub struct PlaceView {
    name: String,
    country: String,
}

impl From<&stigmergy_domain::Place> for PlaceView {
    fn from(place: &stigmergy_domain::Place) -> Self {
        Self {
            name: place.name.to_string(),
            country: place.country.as_str().to_owned(),
        }
    }
}

/// One shipment of a resource.
#[derive(Debug, SimpleObject)]
#[graphql(name = "JourneyLeg")]
pub struct LegView {
    shipment: String,
    shipper: String,
    consignee: String,
    from: PlaceView,
    to: PlaceView,
    transport_mode: String,
    quantity: Amount,
    dispatched_at: String,
    received_at: Option<String>,
    received_quantity: Option<Amount>,
    received_location: Option<PlaceView>,
}
