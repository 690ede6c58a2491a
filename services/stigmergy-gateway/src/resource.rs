//! A resource as the gateway shows it: what it is, where it is, its timeline, lineage, journey,
//! footprint, contributions and anomalies.

use async_graphql::dataloader::DataLoader;
use async_graphql::{ComplexObject, Context, Object, Result, SimpleObject};
use stigmergy_domain::views::{Direction, Kind, Lineage, Record, Role, journey};
use stigmergy_domain::{EventPayload, Iri};

use crate::{RecordLoader, failed, views};

/// The deepest lineage a query may ask for.
pub const MAX_LINEAGE_DEPTH: u32 = 50;

/// Something the log speaks of: a design, material lot, batch, recovered lot or shipment, or
/// something an event refers to that was never recorded (`kind: unknown`).
#[derive(Debug)]
pub struct Resource {
    pub(crate) id: Iri,
    pub(crate) record: Record,
    /// Its timeline, read once however many fields (timeline, journey, whereabouts) need it.
    timeline: tokio::sync::OnceCell<Vec<stigmergy_store::TimelineEntry>>,
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
#[graphql(complex)]
pub struct LineageNode {
    id: String,
    depth: u32,
}

#[ComplexObject]
impl LineageNode {
    /// The resource itself (looked up together with the other nodes', in one batch).
    async fn resource(&self, context: &Context<'_>) -> Result<Option<Resource>> {
        let id = Iri::parse(self.id.as_str()).map_err(async_graphql::Error::new)?;
        resource_by_id(context, id).await
    }
}

/// A resource by its id, through the request's batching loader; null when no event mentions it.
pub(crate) async fn resource_by_id(context: &Context<'_>, id: Iri) -> Result<Option<Resource>> {
    let loader = context.data::<DataLoader<RecordLoader>>()?;
    let record = loader.load_one(id.clone()).await?;
    Ok(record.map(|record| Resource::new(id, record)))
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
    pub(crate) fn new(id: Iri, record: Record) -> Self {
        Self {
            id,
            record,
            timeline: tokio::sync::OnceCell::new(),
        }
    }

    /// Every event about it that is not retracted, from the views, read once.
    async fn entries(&self, context: &Context<'_>) -> Result<&[stigmergy_store::TimelineEntry]> {
        let entries = self
            .timeline
            .get_or_try_init(|| async { views(context)?.timeline(&self.id).await.map_err(failed) })
            .await?;
        Ok(entries)
    }

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

    /// Who holds how much of it now: what each organisation sourced, made or received of it,
    /// less what it used, shipped or recycled.
    async fn holders(&self, context: &Context<'_>) -> Result<Vec<Holder>> {
        let holders = views(context)?.holders(&self.id).await.map_err(failed)?;
        Ok(holders
            .into_iter()
            .map(|(organization, held)| Holder {
                organization: organization.to_string(),
                quantity: Amount {
                    amount: held.amount,
                    unit: held.unit.code(),
                },
            })
            .collect())
    }

    /// Where it went last: to the consignee of its latest shipment once received (on its way
    /// from the shipper until then), otherwise where its creator made or sourced it. Part of it
    /// may have stayed behind: `holders` says who holds how much. Null for designs, shipments
    /// and what was never recorded.
    async fn whereabouts(&self, context: &Context<'_>) -> Result<Option<Whereabouts>> {
        if !matches!(
            self.record.kind,
            Kind::MaterialLot | Kind::Batch | Kind::RecoveredLot
        ) {
            return Ok(None);
        }
        let timeline = self.entries(context).await?;
        let moves: Vec<_> = timeline
            .iter()
            .filter(|e| matches!(e.role, Role::Dispatched | Role::Received))
            .map(|e| e.event.clone())
            .collect();
        if let Some(leg) = journey(&self.id, &moves).pop() {
            return Ok(Some(match leg.received {
                Some(receipt) => Whereabouts {
                    holder: leg.consignee.to_string(),
                    location: Some(PlaceView::from(&receipt.location)),
                    since: receipt.at.to_string(),
                    in_transit: false,
                },
                None => Whereabouts {
                    holder: leg.shipper.to_string(),
                    location: Some(PlaceView::from(&leg.from)),
                    since: leg.dispatched_at.to_string(),
                    in_transit: true,
                },
            }));
        }
        let created = timeline.iter().find(|e| e.role == Role::Created);
        Ok(created.map(|entry| {
            let place = match &entry.event.payload {
                EventPayload::MaterialSourced(p) => Some(&p.origin),
                EventPayload::BatchFabricated(p) => Some(&p.facility),
                EventPayload::BatchRecycled(p) => Some(&p.facility),
                _ => None,
            };
            Whereabouts {
                holder: entry.event.recorded_by.to_string(),
                location: place.map(PlaceView::from),
                since: entry.event.occurred_at.to_string(),
                in_transit: false,
            }
        }))
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
        Contributions::of(&self.record)
    }

    /// Inconsistencies found about it, each with the events involved.
    async fn anomalies(&self) -> Vec<AnomalyView> {
        self.record
            .anomalies
            .iter()
            .map(AnomalyView::from)
            .collect()
    }

    /// Its shipments in the order they were dispatched: who held it when and where.
    async fn journey(&self, context: &Context<'_>) -> Result<Vec<LegView>> {
        let events: Vec<_> = self
            .entries(context)
            .await?
            .iter()
            .filter(|e| matches!(e.role, Role::Dispatched | Role::Received))
            .map(|e| e.event.clone())
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
        Ok(self
            .entries(context)
            .await?
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
    pub(crate) amount: f64,
    pub(crate) unit: &'static str,
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

impl Contributions {
    pub(crate) fn of(record: &Record) -> Option<Self> {
        record.attribution.as_ref().map(|attribution| Self {
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

/// How much of a resource an organisation holds.
#[derive(Debug, SimpleObject)]
pub struct Holder {
    organization: String,
    quantity: Amount,
}

/// Where a resource went last.
#[derive(Debug, SimpleObject)]
pub struct Whereabouts {
    /// The organisation it went to (the shipper while it is on its way).
    holder: String,
    /// Where it is: where it was received, where it left from while on its way, or where it
    /// was made or sourced.
    location: Option<PlaceView>,
    /// Since when.
    since: String,
    /// Dispatched and not yet received.
    in_transit: bool,
}

impl From<&stigmergy_domain::views::Anomaly> for AnomalyView {
    fn from(anomaly: &stigmergy_domain::views::Anomaly) -> Self {
        Self {
            kind: anomaly.kind.name(),
            detail: anomaly.detail.clone(),
            organization: anomaly.organization.as_ref().map(Iri::to_string),
            events: anomaly.events.iter().map(ToString::to_string).collect(),
        }
    }
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
