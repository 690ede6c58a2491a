//! The queries: a resource, a design and its fork tree, an organisation and what it made, holds
//! and shipped, the events as a Relay connection, and a search over names.
//!
//! Every list has a size (`first`) capped by `max_page_size`. A listing that filters what no
//! index finds (types, times) reads at most [`MAX_EXAMINED`] events per page: a page can then
//! hold fewer edges than asked while `hasNextPage` is true, and its `endCursor` is where to go on.

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::{ComplexObject, Context, InputObject, Json, Object, Result, SimpleObject};
use stigmergy_capture::Capture;
use stigmergy_domain::views::{Direction, FlowKind, Kind, Record, Role};
use stigmergy_domain::{Event, EventType, Iri, LogPosition, Timestamp};
use stigmergy_log::StoredEvent;
use stigmergy_store::{EventScope, ListedEvent, ViewStore};

use crate::resource::{Amount, Contributions, Resource, resource_by_id};
use crate::{Limits, failed, views};

/// The most events one page of a listing reads to find the events it filters for.
pub const MAX_EXAMINED: usize = 10_000;
/// The default size of a page or list.
const DEFAULT_FIRST: usize = 50;
/// The deepest fork tree or ancestry a design lists.
const MAX_FORK_DEPTH: u32 = 50;

#[derive(Debug, Default)]
pub struct Query;

#[Object]
impl Query {
    /// A design, material lot, batch, recovered lot or shipment by its IRI; null when no event
    /// mentions it.
    async fn resource(&self, context: &Context<'_>, id: String) -> Result<Option<Resource>> {
        let id = parse_iri("id", id)?;
        let record = views(context)?.record(&id).await.map_err(failed)?;
        Ok(record.map(|record| Resource::new(id, record)))
    }

    /// A design by its IRI: its licence, fork ancestry and descendants, the batches made from
    /// it and its attribution; null when it is not a recorded design.
    async fn design(&self, context: &Context<'_>, id: String) -> Result<Option<Design>> {
        let id = parse_iri("id", id)?;
        design(context, id).await
    }

    /// An organisation by its IRI (`urn:uuid:…`): its name, what it designed, fabricated, holds
    /// and shipped, and its events; null when it is neither registered nor recorded anything.
    async fn organization(
        &self,
        context: &Context<'_>,
        id: String,
    ) -> Result<Option<Organization>> {
        let id = parse_iri("id", id)?;
        let capture = context.data::<Capture>()?;
        if let Some(registered) = capture.directory.get(&id) {
            return Ok(Some(Organization {
                id,
                name: Some(registered.name),
                created_at: Some(registered.created_at),
            }));
        }
        let recorded = views(context)?
            .events(&EventScope::RecordedBy(id.clone()), LogPosition(0), 1)
            .await
            .map_err(failed)?;
        Ok((!recorded.is_empty()).then_some(Organization {
            id,
            name: None,
            created_at: None,
        }))
    }

    /// The log's events in log order, as a Relay connection: `first` of them (default 50, at
    /// most `maxPageSize`) after the cursor `after`, matching `filter`. Retracted events are
    /// listed too, flagged `retracted`.
    async fn events(
        &self,
        context: &Context<'_>,
        filter: Option<EventFilter>,
        first: Option<usize>,
        after: Option<String>,
    ) -> Result<EventConnection> {
        let filter = Filter::parse(filter)?;
        let first = page_size(context, first)?;
        let after = cursor_after(after.as_deref())?;
        connection(views(context)?, &filter, first, after).await
    }

    /// Designs, resources and organisations whose name contains `text` (case-insensitively):
    /// at most `first` (default 50) of each.
    async fn search(
        &self,
        context: &Context<'_>,
        text: String,
        first: Option<usize>,
    ) -> Result<Vec<SearchHit>> {
        let text = text.trim();
        if text.is_empty() {
            return Err("text must not be empty".into());
        }
        let first = page_size(context, first)?;
        let mut hits: Vec<SearchHit> = views(context)?
            .search(text, first)
            .await
            .map_err(failed)?
            .into_iter()
            .map(|(id, record)| SearchHit {
                id: id.to_string(),
                kind: record.kind.name(),
                name: record.name.unwrap_or_default(),
            })
            .collect();
        let needle = text.to_lowercase();
        let capture = context.data::<Capture>()?;
        hits.extend(
            capture
                .directory
                .list()
                .into_iter()
                .filter(|o| o.name.to_lowercase().contains(&needle))
                .take(first)
                .map(|o| SearchHit {
                    id: o.id.to_string(),
                    kind: "organization",
                    name: o.name,
                }),
        );
        Ok(hits)
    }
}

/// Something whose name matched a search.
#[derive(Debug, SimpleObject)]
pub struct SearchHit {
    id: String,
    /// design, materialLot, batch, recoveredLot, shipment or organization.
    kind: &'static str,
    name: String,
}

fn parse_iri(what: &str, id: String) -> Result<Iri> {
    Iri::parse(id).map_err(|error| async_graphql::Error::new(format!("{what}: {error}")))
}

/// `first` as asked, or the default, refused beyond `max_page_size`.
fn page_size(context: &Context<'_>, first: Option<usize>) -> Result<usize> {
    let max = context.data::<Limits>()?.max_page_size;
    let first = first.unwrap_or(DEFAULT_FIRST.min(max));
    if first > max {
        return Err(format!("first is at most {max} (max_page_size)").into());
    }
    Ok(first)
}

/// The position a cursor stands for: events after it come next. No cursor: the start.
pub(crate) fn cursor_after(cursor: Option<&str>) -> Result<LogPosition> {
    match cursor {
        None => Ok(LogPosition(0)),
        Some(cursor) => cursor.parse::<u64>().map(LogPosition).map_err(|_| {
            format!("{cursor:?} is not a cursor: use the cursor of an event (its log position)")
                .into()
        }),
    }
}

/// Which events to list. Each given condition must hold.
#[derive(Debug, Default, InputObject)]
pub struct EventFilter {
    /// Event types, e.g. `BatchFabricated` (any of them).
    types: Option<Vec<String>>,
    /// The organisation that recorded the event.
    recorded_by: Option<String>,
    /// The event's subject (the resource it is about).
    subject: Option<String>,
    /// Occurred at or after this instant (RFC 3339).
    occurred_from: Option<String>,
    /// Occurred before this instant (RFC 3339).
    occurred_until: Option<String>,
}

/// An [`EventFilter`], checked.
#[derive(Clone, Debug, Default)]
pub(crate) struct Filter {
    types: Option<HashSet<EventType>>,
    recorded_by: Option<Iri>,
    subject: Option<Iri>,
    from: Option<Timestamp>,
    until: Option<Timestamp>,
}

impl Filter {
    pub(crate) fn parse(filter: Option<EventFilter>) -> Result<Self> {
        let Some(filter) = filter else {
            return Ok(Self::default());
        };
        let types = filter
            .types
            .map(|types| {
                types
                    .iter()
                    .map(|name| {
                        EventType::parse(name).ok_or_else(|| {
                            let known: Vec<_> = EventType::ALL.iter().map(|t| t.name()).collect();
                            async_graphql::Error::new(format!(
                                "filter.types: {name:?} is not an event type; use one of {}",
                                known.join(", ")
                            ))
                        })
                    })
                    .collect::<Result<HashSet<_>>>()
            })
            .transpose()?;
        let iri = |what: &str, value: Option<String>| {
            value
                .map(|v| parse_iri(&format!("filter.{what}"), v))
                .transpose()
        };
        let time = |what: &str, value: Option<String>| {
            value
                .map(|v| {
                    Timestamp::parse(&v)
                        .map_err(|e| async_graphql::Error::new(format!("filter.{what}: {e}")))
                })
                .transpose()
        };
        Ok(Self {
            types,
            recorded_by: iri("recordedBy", filter.recorded_by)?,
            subject: iri("subject", filter.subject)?,
            from: time("occurredFrom", filter.occurred_from)?,
            until: time("occurredUntil", filter.occurred_until)?,
        })
    }

    pub(crate) fn matches(&self, event: &Event) -> bool {
        self.types
            .as_ref()
            .is_none_or(|types| types.contains(&event.event_type()))
            && self
                .recorded_by
                .as_ref()
                .is_none_or(|by| &event.recorded_by == by)
            && self.subject.as_ref().is_none_or(|s| &event.subject == s)
            && self.from.is_none_or(|from| event.occurred_at >= from)
            && self.until.is_none_or(|until| event.occurred_at < until)
    }

    /// The index that finds the fewest events holding every match.
    fn scope(&self) -> EventScope {
        match (&self.subject, &self.recorded_by) {
            (Some(subject), _) => EventScope::Touching(subject.clone()),
            (None, Some(by)) => EventScope::RecordedBy(by.clone()),
            (None, None) => EventScope::All,
        }
    }
}

/// One page of events matching `filter` after `after`.
pub(crate) async fn connection(
    views: &Arc<dyn ViewStore>,
    filter: &Filter,
    first: usize,
    after: LogPosition,
) -> Result<EventConnection> {
    let (found, end) = scan(views, filter, first + 1, after).await?;
    let more = found.len() > first || end.is_some();
    let edges: Vec<EventEdge> = found
        .into_iter()
        .take(first)
        .map(EventEdge::listed)
        .collect();
    // Reading stopped at the cap: go on from where it stopped, past what did not match.
    let end_cursor = match end {
        Some(examined) => Some(examined.0.to_string()),
        None => edges.last().map(|edge| edge.cursor.clone()),
    };
    Ok(EventConnection {
        page_info: PageInfo {
            has_next_page: more,
            end_cursor,
        },
        edges,
    })
}

/// Up to `wanted` events matching `filter` after `after`, reading at most [`MAX_EXAMINED`]; the
/// position reached when that stopped the reading before the end.
async fn scan(
    views: &Arc<dyn ViewStore>,
    filter: &Filter,
    wanted: usize,
    mut after: LogPosition,
) -> Result<(Vec<ListedEvent>, Option<LogPosition>)> {
    let scope = filter.scope();
    let mut found = Vec::new();
    let mut examined = 0;
    while found.len() < wanted {
        if examined >= MAX_EXAMINED {
            return Ok((found, Some(after)));
        }
        let chunk = (wanted - found.len())
            .clamp(64, 1000)
            .min(MAX_EXAMINED - examined);
        let page = views.events(&scope, after, chunk).await.map_err(failed)?;
        let exhausted = page.len() < chunk;
        examined += page.len();
        for listed in page {
            after = listed.position;
            if filter.matches(&listed.event) {
                found.push(listed);
                if found.len() == wanted {
                    return Ok((found, None));
                }
            }
        }
        if exhausted {
            break;
        }
    }
    Ok((found, None))
}

/// A page of events.
#[derive(Debug, SimpleObject)]
pub struct EventConnection {
    edges: Vec<EventEdge>,
    page_info: PageInfo,
}

#[derive(Debug, SimpleObject)]
pub struct PageInfo {
    has_next_page: bool,
    /// Where the next page starts: pass it as `after`.
    end_cursor: Option<String>,
}

/// An event and its cursor.
#[derive(Debug, SimpleObject)]
pub struct EventEdge {
    /// The event's log position, as a string: pass it as `after` to go on from it.
    pub(crate) cursor: String,
    node: EventNode,
}

impl EventEdge {
    fn listed(listed: ListedEvent) -> Self {
        Self {
            cursor: listed.position.0.to_string(),
            node: EventNode {
                position: listed.position,
                event: Arc::new(listed.event),
                retracted: Some(listed.retracted),
            },
        }
    }

    pub(crate) fn live(stored: &Arc<StoredEvent>) -> Self {
        Self {
            cursor: stored.position.0.to_string(),
            node: EventNode {
                position: stored.position,
                event: Arc::new(stored.event.clone()),
                retracted: None,
            },
        }
    }
}

/// A lifecycle event as the log holds it.
#[derive(Debug)]
pub struct EventNode {
    position: LogPosition,
    event: Arc<Event>,
    /// Known when listed from the views; asked of them otherwise.
    retracted: Option<bool>,
}

#[Object(name = "Event")]
impl EventNode {
    async fn event_id(&self) -> String {
        self.event.event_id.to_string()
    }

    async fn position(&self) -> u64 {
        self.position.0
    }

    async fn r#type(&self) -> &'static str {
        self.event.event_type().name()
    }

    async fn occurred_at(&self) -> String {
        self.event.occurred_at.to_string()
    }

    async fn recorded_at(&self) -> String {
        self.event.recorded_at.to_string()
    }

    async fn recorded_by(&self) -> String {
        self.event.recorded_by.to_string()
    }

    async fn subject(&self) -> String {
        self.event.subject.to_string()
    }

    /// Whether a later event retracted it (as far as the views have come).
    async fn retracted(&self, context: &Context<'_>) -> Result<bool> {
        match self.retracted {
            Some(retracted) => Ok(retracted),
            None => views(context)?
                .is_retracted(self.event.event_id)
                .await
                .map_err(failed),
        }
    }

    /// The whole envelope, as `GET /v1/events/{eventId}` answers it.
    async fn envelope(&self) -> Result<Json<serde_json::Value>> {
        Ok(Json(serde_json::to_value(&*self.event)?))
    }
}

/// An open design.
#[derive(Debug)]
pub struct Design {
    id: Iri,
    record: Record,
    /// What its publishing event said, read once however many of its fields a query asks.
    published: tokio::sync::OnceCell<Option<Published>>,
}

/// What the event that published or forked a design said of it.
#[derive(Clone, Debug)]
struct Published {
    licence: String,
    version: String,
    source_uri: Option<String>,
}

/// A design by its id, when it is one.
async fn design(context: &Context<'_>, id: Iri) -> Result<Option<Design>> {
    let record = views(context)?.record(&id).await.map_err(failed)?;
    Ok(record
        .filter(|record| record.kind == Kind::Design)
        .map(|record| Design {
            id,
            record,
            published: tokio::sync::OnceCell::new(),
        }))
}

/// A design in a fork tree, at its distance from the design asked about.
#[derive(Debug, SimpleObject)]
#[graphql(complex)]
pub struct Fork {
    id: String,
    /// The design it was forked from.
    parent: String,
    depth: u32,
}

#[ComplexObject]
impl Fork {
    async fn design(&self, context: &Context<'_>) -> Result<Option<Design>> {
        design(context, parse_iri("id", self.id.clone())?).await
    }
}

impl Design {
    /// The designs forked from `id` and the batches made from it.
    async fn downstream(context: &Context<'_>, id: &Iri) -> Result<(Vec<Iri>, Vec<Iri>)> {
        let lineage = views(context)?
            .lineage(id, Direction::Downstream, 1)
            .await
            .map_err(failed)?;
        let (mut forks, mut batches) = (Vec::new(), Vec::new());
        for flow in lineage.edges.into_iter().filter(|flow| &flow.from == id) {
            match flow.kind {
                FlowKind::Fork => forks.push(flow.to),
                FlowKind::Design => batches.push(flow.to),
                _ => {}
            }
        }
        for list in [&mut forks, &mut batches] {
            list.sort();
            list.dedup();
        }
        Ok((forks, batches))
    }

    /// What the event that published or forked it said.
    async fn published(&self, context: &Context<'_>) -> Result<Option<Published>> {
        let published = self
            .published
            .get_or_try_init(|| async {
                let timeline = views(context)?.timeline(&self.id).await.map_err(failed)?;
                Ok::<_, async_graphql::Error>(
                    timeline
                        .iter()
                        .filter(|entry| entry.role == Role::Created)
                        .find_map(|entry| entry.event.payload.design_release())
                        .map(|release| Published {
                            licence: release.licence.as_str().to_owned(),
                            version: release.version.to_string(),
                            source_uri: release.source_uri.map(Iri::to_string),
                        }),
                )
            })
            .await?;
        Ok(published.clone())
    }
}

#[Object]
impl Design {
    async fn id(&self) -> String {
        self.id.to_string()
    }

    async fn name(&self) -> Option<&str> {
        self.record.name.as_deref()
    }

    /// The organisation that published or forked it.
    async fn created_by(&self) -> Option<String> {
        self.record.created_by.as_ref().map(Iri::to_string)
    }

    /// Its licence (an SPDX identifier or the IRI of the licence text), its version and where
    /// its files are, as published.
    async fn licence(&self, context: &Context<'_>) -> Result<Option<String>> {
        Ok(self.published(context).await?.map(|p| p.licence))
    }

    async fn version(&self, context: &Context<'_>) -> Result<Option<String>> {
        Ok(self.published(context).await?.map(|p| p.version))
    }

    async fn source_uri(&self, context: &Context<'_>) -> Result<Option<String>> {
        Ok(self.published(context).await?.and_then(|p| p.source_uri))
    }

    /// The design it was forked from; null for an original.
    async fn parent(&self, context: &Context<'_>) -> Result<Option<Design>> {
        match &self.record.design {
            Some(parent) => design(context, parent.clone()).await,
            None => Ok(None),
        }
    }

    /// Its fork ancestry: its parent, the parent's parent, and so on to the original.
    async fn ancestry(&self, context: &Context<'_>) -> Result<Vec<Design>> {
        let mut ancestry: Vec<Design> = Vec::new();
        let mut next = self.record.design.clone();
        while let Some(parent) = next.take() {
            if ancestry.len() as u32 >= MAX_FORK_DEPTH
                || parent == self.id
                || ancestry.iter().any(|d| d.id == parent)
            {
                break;
            }
            let Some(found) = design(context, parent).await? else {
                break;
            };
            next = found.record.design.clone();
            ancestry.push(found);
        }
        Ok(ancestry)
    }

    /// Its descendants, breadth first: the designs forked from it, and forked from those, up to
    /// `depth` levels (default 10, at most 50).
    async fn forks(
        &self,
        context: &Context<'_>,
        #[graphql(default = 10)] depth: u32,
    ) -> Result<Vec<Fork>> {
        if depth > MAX_FORK_DEPTH {
            return Err(format!("depth is at most {MAX_FORK_DEPTH}").into());
        }
        let mut seen: HashSet<Iri> = HashSet::from([self.id.clone()]);
        let mut frontier = vec![self.id.clone()];
        let mut tree = Vec::new();
        for level in 1..=depth {
            let mut next = Vec::new();
            for parent in &frontier {
                let (forks, _) = Design::downstream(context, parent).await?;
                for fork in forks {
                    if seen.insert(fork.clone()) {
                        tree.push(Fork {
                            id: fork.to_string(),
                            parent: parent.to_string(),
                            depth: level,
                        });
                        next.push(fork);
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        Ok(tree)
    }

    /// The batches made from it.
    async fn batches(&self, context: &Context<'_>) -> Result<Vec<Resource>> {
        let (_, batches) = Design::downstream(context, &self.id).await?;
        resources(context, batches).await
    }

    /// Who holds which share of it, by the value equation.
    async fn contributions(&self) -> Option<Contributions> {
        Contributions::of(&self.record)
    }

    /// Everything else about it, as a resource: timeline, anomalies, lineage.
    async fn resource(&self) -> Resource {
        Resource::new(self.id.clone(), self.record.clone())
    }
}

/// Resources by id, looked up together, in the order given.
async fn resources(context: &Context<'_>, ids: Vec<Iri>) -> Result<Vec<Resource>> {
    let loader = context.data::<async_graphql::dataloader::DataLoader<crate::RecordLoader>>()?;
    let mut records = loader.load_many(ids.iter().cloned()).await?;
    Ok(ids
        .into_iter()
        .filter_map(|id| records.remove(&id).map(|record| Resource::new(id, record)))
        .collect())
}

/// An organisation: registered in the directory, or known from the events it recorded.
#[derive(Debug)]
pub struct Organization {
    id: Iri,
    name: Option<String>,
    created_at: Option<String>,
}

/// What an organisation holds of a resource.
#[derive(Debug, SimpleObject)]
#[graphql(complex)]
pub struct Holding {
    id: String,
    quantity: Amount,
}

#[ComplexObject]
impl Holding {
    async fn resource(&self, context: &Context<'_>) -> Result<Option<Resource>> {
        resource_by_id(context, parse_iri("id", self.id.clone())?).await
    }
}

impl Organization {
    /// The subjects of the events of `types` it recorded, not retracted: the first `first`.
    async fn recorded(
        &self,
        context: &Context<'_>,
        types: &[EventType],
        first: Option<usize>,
    ) -> Result<Vec<Resource>> {
        let first = page_size(context, first)?;
        let filter = Filter {
            types: Some(types.iter().copied().collect()),
            recorded_by: Some(self.id.clone()),
            ..Filter::default()
        };
        let mut subjects = Vec::new();
        let mut after = LogPosition(0);
        loop {
            let (found, end) = scan(views(context)?, &filter, first, after).await?;
            let exhausted = end.is_none() && found.len() < first;
            let next = end.or(found.last().map(|e| e.position));
            for listed in found.into_iter().filter(|e| !e.retracted) {
                if subjects.len() < first && !subjects.contains(&listed.event.subject) {
                    subjects.push(listed.event.subject);
                }
            }
            match next {
                Some(next) if !exhausted && subjects.len() < first => after = next,
                _ => break,
            }
        }
        resources(context, subjects).await
    }
}

#[Object]
impl Organization {
    async fn id(&self) -> String {
        self.id.to_string()
    }

    /// Its registered name; null when it is not registered here.
    async fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    async fn created_at(&self) -> Option<&str> {
        self.created_at.as_deref()
    }

    /// The designs it published or forked, in log order.
    async fn designed(&self, context: &Context<'_>, first: Option<usize>) -> Result<Vec<Resource>> {
        self.recorded(
            context,
            &[EventType::DesignPublished, EventType::DesignForked],
            first,
        )
        .await
    }

    /// The batches it fabricated and the lots it recovered by recycling, in log order.
    async fn fabricated(
        &self,
        context: &Context<'_>,
        first: Option<usize>,
    ) -> Result<Vec<Resource>> {
        self.recorded(
            context,
            &[EventType::BatchFabricated, EventType::BatchRecycled],
            first,
        )
        .await
    }

    /// The shipments it dispatched, in log order.
    async fn shipped(&self, context: &Context<'_>, first: Option<usize>) -> Result<Vec<Resource>> {
        self.recorded(context, &[EventType::ShipmentDispatched], first)
            .await
    }

    /// What it holds now: what it sourced, made or received less what it used, shipped or
    /// recycled, per resource and unit, in IRI order.
    async fn holds(&self, context: &Context<'_>, first: Option<usize>) -> Result<Vec<Holding>> {
        let first = page_size(context, first)?;
        let held = views(context)?
            .held_by(&self.id, first)
            .await
            .map_err(failed)?;
        Ok(held
            .into_iter()
            .map(|held| Holding {
                id: held.resource.to_string(),
                quantity: Amount {
                    amount: held.amount,
                    unit: held.unit.code(),
                },
            })
            .collect())
    }

    /// The events it recorded, as a connection (see `Query.events`).
    async fn events(
        &self,
        context: &Context<'_>,
        filter: Option<EventFilter>,
        first: Option<usize>,
        after: Option<String>,
    ) -> Result<EventConnection> {
        let mut filter = Filter::parse(filter)?;
        filter.recorded_by = Some(self.id.clone());
        let first = page_size(context, first)?;
        let after = cursor_after(after.as_deref())?;
        connection(views(context)?, &filter, first, after).await
    }
}
