//! The gateway of Stigmergy: the async-graphql schema over the views store, served at
//! `POST /graphql`. For now `resource(id)` with its timeline and its upstream and downstream
//! lineage; footprints, contributions and anomalies join as their views land.
//!
//! The gateway only reads: it never writes to the store or the log (recording goes through
//! capture).

use actix_web::web;
use async_graphql::{
    Context, EmptyMutation, EmptySubscription, Object, Result, Schema, SimpleObject,
};
use async_graphql_actix_web::{GraphQLRequest, GraphQLResponse};
use stigmergy_domain::Iri;
use stigmergy_domain::views::{Direction, Lineage};
use stigmergy_store::ViewStore;

/// The deepest lineage a query may ask for.
pub const MAX_LINEAGE_DEPTH: u32 = 50;

/// The schema served at `/graphql`.
pub type GatewaySchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Builds the schema over a views store.
pub fn schema(views: ViewStore) -> GatewaySchema {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .data(views)
        .limit_depth(12)
        .finish()
}

/// Mounts `POST /graphql` on an actix-web app; the schema must be in the app data.
pub fn configure(config: &mut web::ServiceConfig) {
    config.route("/graphql", web::post().to(graphql));
}

async fn graphql(schema: web::Data<GatewaySchema>, request: GraphQLRequest) -> GraphQLResponse {
    schema.execute(request.into_inner()).await.into()
}

#[derive(Debug)]
pub struct Query;

#[Object]
impl Query {
    /// A design, material lot, batch or shipment by its IRI; null when no event mentions it.
    async fn resource(&self, context: &Context<'_>, id: String) -> Result<Option<Resource>> {
        let id = Iri::parse(id).map_err(async_graphql::Error::new)?;
        let views = context.data::<ViewStore>()?;
        let timeline = views
            .timeline(&id)
            .await
            .map_err(|e| async_graphql::Error::new(e.to_string()))?;
        if timeline.is_empty() {
            return Ok(None);
        }
        Ok(Some(Resource { id, timeline }))
    }
}

/// Something the log speaks of.
#[derive(Debug)]
pub struct Resource {
    id: Iri,
    timeline: Vec<stigmergy_store::TimelineEntry>,
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
        let views = context.data::<ViewStore>()?;
        let lineage = views
            .lineage(&self.id, direction, depth)
            .await
            .map_err(|e| async_graphql::Error::new(e.to_string()))?;
        Ok(lineage.into())
    }
}

#[Object]
impl Resource {
    async fn id(&self) -> String {
        self.id.to_string()
    }

    /// Every event about it that is not retracted, in `occurredAt` then log order.
    async fn timeline(&self) -> Vec<TimelineEntry> {
        self.timeline
            .iter()
            .map(|entry| TimelineEntry {
                position: entry.position.0,
                event_id: entry.event.event_id.to_string(),
                r#type: entry.event.event_type().name().to_owned(),
                role: entry.role.name().to_owned(),
                occurred_at: entry.event.occurred_at.to_string(),
                recorded_by: entry.event.recorded_by.to_string(),
            })
            .collect()
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
