//! Each resource's derived record — what it is, its footprint, its attribution and its anomalies —
//! computed from the facts the read store holds, and the refresh of every record a page of events
//! affects, upstream before downstream. The store is read and written through [`Facts`], which
//! the adapters implement inside the transaction that applies the page; nothing here does I/O.
//!
//! A record is a function of the set of events that are not retracted, so any order of arrival
//! ends in the same records. What depends on the order is only the footprint's version history:
//! each time a resource's figures change a new version is issued that names the one it replaces.

use std::borrow::Borrow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use serde::{Deserialize, Serialize};

use crate::event::{Event, EventPayload};
use crate::ids::{CountryCode, EventId, Iri, OrganizationId};
use crate::payload::{BatchFabricated, Place, TransportMode};
use crate::time::Timestamp;
use crate::units::{PositiveAmount, Quantity, Unit};
use crate::views::contribution::{self, Attribution, ContributionConfig, InputShare};
use crate::views::footprint::{self, Factors, Footprint, InputFootprint};
use crate::views::index::{EventIndex, Flow, FlowKind, Role};

/// What a resource is, from the event that brought it into being.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    Design,
    MaterialLot,
    Batch,
    /// A lot recovered by recycling.
    RecoveredLot,
    Shipment,
    /// Referred to by some event, but never recorded itself.
    Unknown,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Design => "design",
            Self::MaterialLot => "materialLot",
            Self::Batch => "batch",
            Self::RecoveredLot => "recoveredLot",
            Self::Shipment => "shipment",
            Self::Unknown => "unknown",
        }
    }
}

/// The kinds of inconsistency the views report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AnomalyKind {
    /// An organisation gave out more of a resource than it took in.
    MassBalance,
    /// An organisation consumed or shipped a resource it never held.
    Custody,
    /// An event refers to a resource, design or shipment that was never recorded.
    UnresolvedReference,
    /// A footprint counts an input as 0: the input has no footprint (or one per another unit),
    /// or a batch records no inputs at all.
    MissingFootprintInput,
}

impl AnomalyKind {
    pub const ALL: &'static [AnomalyKind] = &[
        Self::MassBalance,
        Self::Custody,
        Self::UnresolvedReference,
        Self::MissingFootprintInput,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::MassBalance => "massBalance",
            Self::Custody => "custody",
            Self::UnresolvedReference => "unresolvedReference",
            Self::MissingFootprintInput => "missingFootprintInput",
        }
    }
}

/// One inconsistency found about a resource, with the events involved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub detail: String,
    /// The organisation concerned, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<OrganizationId>,
    /// The events involved, in id order.
    pub events: Vec<EventId>,
}

/// Everything derived about one resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub kind: Kind,
    /// The design's name, or the material of a lot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The organisation that recorded its creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<OrganizationId>,
    /// The event that created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_in: Option<EventId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<Quantity>,
    /// The design a batch was made from, or the parent of a fork.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub design: Option<Iri>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footprint: Option<Footprint>,
    /// The footprint without the repairs, when it was repaired: what passes on to what is made
    /// from it (a repair belongs to the life of the repaired item, cut off like recycling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production: Option<Footprint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<Attribution>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anomalies: Vec<Anomaly>,
}

impl Record {
    fn unknown() -> Self {
        Self {
            kind: Kind::Unknown,
            name: None,
            created_by: None,
            created_in: None,
            quantity: None,
            design: None,
            footprint: None,
            production: None,
            attribution: None,
            anomalies: Vec::new(),
        }
    }

    /// Equal, up to the last bits of the floating-point figures (a record read back from storage
    /// may differ from a fresh computation in its last digit).
    pub fn same_as(&self, other: &Record) -> bool {
        self.kind == other.kind
            && self.name == other.name
            && self.created_by == other.created_by
            && self.created_in == other.created_in
            && self.quantity == other.quantity
            && self.design == other.design
            && same_footprint(self.footprint.as_ref(), other.footprint.as_ref())
            && same_footprint(self.production.as_ref(), other.production.as_ref())
            && same_attribution(self.attribution.as_ref(), other.attribution.as_ref())
            && self.anomalies == other.anomalies
    }
}

/// Whether two attributions give the same agents the same shares.
fn same_attribution(a: Option<&Attribution>, b: Option<&Attribution>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.same_as(b),
        (None, None) => true,
        _ => false,
    }
}

/// Whether two footprints carry the same figures (relative tolerance 1e-12).
pub fn same_footprint(a: Option<&Footprint>, b: Option<&Footprint>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.same_figures(b),
        (None, None) => true,
        _ => false,
    }
}

/// How a refresh changed a resource's footprint, for the store to keep its version history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FootprintChange {
    /// Same figures as the current version (or still none).
    Unchanged,
    /// New figures: a new version replaces the current one, if any.
    Issued,
    /// The resource has no footprint any more (its creation was retracted): the current version
    /// is deprecated without a successor.
    Withdrawn,
}

/// What an organisation took in and gave out of a resource, in one base unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Holding {
    pub organization: OrganizationId,
    pub unit: Unit,
    pub inflow: f64,
    pub outflow: f64,
}

/// The read store as the derivation sees it, inside the transaction applying a page. Every read
/// leaves out what retracted events contributed; every list is in a fixed order (event ids,
/// then resource or organisation ids) so the figures do not depend on storage order.
pub trait Facts {
    type Error;

    /// The events touching `resource` in one of `roles`, in event-id order.
    fn events(&mut self, resource: &Iri, roles: &[Role]) -> Result<Vec<Arc<Event>>, Self::Error>;
    /// The flows out of `resource`: every input and part flow, and the design and fork flows of
    /// events that occurred at `since` or later (all with `None`). A batch or fork depends on
    /// its design as it was when it was made, but on its inputs as they are.
    fn flows_from(
        &mut self,
        resource: &Iri,
        since: Option<Timestamp>,
    ) -> Result<Vec<Flow>, Self::Error>;
    /// What `organization` made or repaired from `resource` at `since` or later: the targets of
    /// the input and part flows out of it that `organization` recorded, in id order.
    fn consumers(
        &mut self,
        resource: &Iri,
        organization: &OrganizationId,
        since: Timestamp,
    ) -> Result<Vec<Iri>, Self::Error>;
    /// The latest dispatch of `resource` addressed to `consignee` that occurred at `at` or
    /// before (of two at the same time, the one with the greater event id).
    fn latest_dispatch_to(
        &mut self,
        resource: &Iri,
        consignee: &OrganizationId,
        at: Timestamp,
    ) -> Result<Option<Arc<Event>>, Self::Error>;
    /// The organisations `shipper` dispatched `resource` to, in id order.
    fn consignees(
        &mut self,
        resource: &Iri,
        shipper: &OrganizationId,
    ) -> Result<Vec<OrganizationId>, Self::Error>;
    /// What each organisation took in and gave out of `resource`, per base unit, in
    /// (organisation, unit code) order.
    fn holdings(&mut self, resource: &Iri) -> Result<Vec<Holding>, Self::Error>;
    /// The events that moved `resource` into or out of `organization`'s hands, in id order.
    fn movement_events(
        &mut self,
        resource: &Iri,
        organization: &OrganizationId,
    ) -> Result<Vec<EventId>, Self::Error>;
    /// An event and every resource it touches, retracted or not (to refresh them when it is
    /// retracted); `None` when the event is not known (yet).
    fn touched_by(&mut self, event: EventId) -> Result<Option<Touching>, Self::Error>;
    /// The record stored for `resource`.
    fn record(&mut self, resource: &Iri) -> Result<Option<Arc<Record>>, Self::Error>;
    /// Stores the record of `resource`, and a new footprint version or a withdrawal.
    fn save(
        &mut self,
        resource: &Iri,
        record: &Arc<Record>,
        change: FootprintChange,
    ) -> Result<(), Self::Error>;
}

/// An event and every resource it touches.
pub type Touching = (Arc<Event>, Vec<Iri>);

/// The configuration the derivation applies.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Methods {
    pub factors: Factors,
    pub contribution: ContributionConfig,
}

/// Flows along which a record depends on another: a batch on its design and inputs, a repaired
/// resource on its parts, a fork on its parent. A recovered lot does not depend on what was
/// recycled (cut-off; attributed to the recycler).
fn propagates(kind: FlowKind) -> bool {
    !matches!(kind, FlowKind::Recycled)
}

/// What a page asks to recompute about one resource.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Touched {
    /// Everything, and everything downstream: it was created, repaired, contributed to, or an
    /// event about it was retracted.
    pub full: bool,
    /// Only its custody anomalies: it was consumed, dispatched, received or cited (a resource
    /// with no record yet is derived in full).
    pub custody: bool,
    /// It was dispatched to these organisations, at the earliest at the time given: what they
    /// (and whoever they shipped it on to) made from it since has a new delivery transport.
    pub consignees: BTreeMap<OrganizationId, Timestamp>,
    /// Only what happened since this time depends on the change (a contribution counts for the
    /// batches made after it); `None` when everything downstream may (it was created, or an
    /// event about it retracted).
    pub since: Option<Timestamp>,
    /// An event about it was retracted: any fact about it may have changed.
    pub retracted: bool,
}

/// (index in `touched`, full (true) or custody (false), consignee, since): a `since` of `None`
/// means "from the beginning".
type Mark = (
    usize,
    Option<bool>,
    Option<OrganizationId>,
    Option<Timestamp>,
);

/// The resources a page of events touches, directly or through a retraction, and what each
/// needs recomputed, in the order first touched.
///
/// `page` pairs each event with its index rows, as the store just wrote them.
pub fn touched<F: Facts, I: Borrow<EventIndex>>(
    facts: &mut F,
    page: &[(&Event, I)],
) -> Result<Vec<(Iri, Touched)>, F::Error> {
    let mut touched: Vec<(Iri, Touched)> = Vec::new();
    let mut at: HashMap<Iri, usize> = HashMap::new();
    let mut entry = |resource: &Iri| -> usize {
        *at.entry(resource.clone()).or_insert_with(|| {
            touched.push((resource.clone(), Touched::default()));
            touched.len() - 1
        })
    };
    // (resource, full, custody, consignee, since): `since` None means "from the beginning".
    let mut marks: Vec<Mark> = Vec::new();
    let mut retracted_about: HashSet<usize> = HashSet::new();
    for (event, index) in page {
        let index: &EventIndex = index.borrow();
        for touch in &index.touches {
            let i = entry(&touch.resource);
            let shipment = match &event.payload {
                EventPayload::ShipmentDispatched(p) => Some(&p.shipment_id),
                EventPayload::ShipmentReceived(p) => Some(&p.shipment_id),
                _ => None,
            };
            let at = Some(event.occurred_at);
            match touch.role {
                Role::Created | Role::Retracted => marks.push((i, Some(true), None, None)),
                Role::Repaired | Role::ContributedTo => marks.push((i, Some(true), None, at)),
                _ if shipment == Some(&touch.resource) => {
                    marks.push((i, Some(true), None, None));
                }
                // A citation only needs a record when the design is unknown (an unresolved
                // reference); the custody refresh derives one then, and leaves designs alone.
                Role::Consumed | Role::Received | Role::Cited => {
                    marks.push((i, Some(false), None, at));
                }
                Role::Dispatched => {
                    let consignee = match &event.payload {
                        EventPayload::ShipmentDispatched(p) => Some(p.consignee.clone()),
                        _ => None,
                    };
                    marks.push((i, Some(false), consignee, at));
                }
            }
        }
        // What was made before the retracted event occurred never depended on it.
        if let Some(retracted) = EventIndex::retracts(event)
            && let Some((gone, resources)) = facts.touched_by(retracted)?
        {
            let occurred = gone.occurred_at;
            for resource in resources {
                let i = entry(&resource);
                retracted_about.insert(i);
                marks.push((i, Some(true), None, Some(occurred)));
            }
            // What the consignee of a retracted dispatch made since from what it carried was
            // not delivered that way after all.
            if let EventPayload::ShipmentDispatched(p) = &gone.payload {
                for line in p.lines.iter() {
                    let i = entry(&line.resource);
                    marks.push((i, None, Some(p.consignee.clone()), Some(occurred)));
                }
            }
        }
    }
    for i in retracted_about {
        touched[i].1.retracted = true;
    }
    let mut unbounded: HashSet<usize> = HashSet::new();
    for (i, full, consignee, since) in marks {
        let target = &mut touched[i].1;
        if let (Some(consignee), Some(at)) = (consignee, since) {
            let earliest = target.consignees.entry(consignee).or_insert(at);
            *earliest = (*earliest).min(at);
        }
        if full == Some(true) {
            let first = !target.full;
            target.full = true;
            match since {
                None => {
                    unbounded.insert(i);
                    target.since = None;
                }
                Some(at) if !unbounded.contains(&i) => {
                    target.since = Some(if first {
                        at
                    } else {
                        target.since.map_or(at, |s| s.min(at))
                    });
                }
                Some(_) => {}
            }
        } else if full == Some(false) {
            target.custody = true;
        }
    }
    Ok(touched)
}

/// Recomputes what a page touched — the records touched in full, what consignees made from
/// what was dispatched to them, and what depends on a record whose change passes on, upstream
/// before downstream; the custody anomalies of what was only moved — and saves the records that
/// changed, each once, in the order first changed. Returns how many were saved.
///
/// The work follows the changes: a resource is derived when it is a seed or when something it
/// depends on changed in what it passes on, never because it merely lies downstream of a seed
/// (a hub lot whose consumption was retracted has a hundred thousand things downstream, none of
/// which read what changed). Resources wait in the order they were created, which puts what a
/// record depends on first in all but odd cases (a repair with a part made later, a cycle);
/// then what is derived too early is derived again when its upstream changes, and only the last
/// record counts, since records are staged until the end of the page.
pub fn refresh<F: Facts>(
    facts: &mut F,
    touched: Vec<(Iri, Touched)>,
    methods: &Methods,
) -> Result<usize, F::Error> {
    let mut staged = Staged::new(facts);
    let mut dirty = Dirty::default();
    let mut custody_only = Vec::new();
    for (resource, what) in &touched {
        for (consignee, since) in &what.consignees {
            for organization in reachable(&mut staged, resource, consignee)? {
                for consumer in staged.consumers(resource, &organization, *since)? {
                    dirty.push(&mut staged, consumer, None)?;
                }
            }
        }
        // A repair reads the country its repairer received the resource in, so a repaired
        // resource (one with a production footprint) is derived in full when it is moved.
        let full = what.full
            || (what.custody
                && staged
                    .record(resource)?
                    .is_some_and(|record| record.production.is_some()));
        if full {
            dirty.push(&mut staged, resource.clone(), what.since)?;
        } else if what.custody {
            custody_only.push(resource.clone());
        }
    }
    // How many times each resource was derived, and since when what depends on it was marked.
    let mut derived: HashMap<Iri, usize> = HashMap::new();
    let mut marked: HashMap<Iri, Option<Timestamp>> = HashMap::new();
    while let Some((resource, since)) = dirty.pop() {
        let times = derived.entry(resource.clone()).or_default();
        if *times >= MAX_DERIVATIONS {
            continue;
        }
        *times += 1;
        let passes_on = settle(&mut staged, &resource, methods)?;
        // Marked before, but only since a later time: what came before is marked now.
        let widens = marked
            .get(&resource)
            .is_some_and(|before| before.is_some_and(|b| since.is_none_or(|s| s < b)));
        if passes_on || widens {
            marked.insert(resource.clone(), since);
            for flow in staged.flows_from(&resource, since)? {
                if propagates(flow.kind) && flow.to != resource {
                    dirty.push(&mut staged, flow.to, None)?;
                }
            }
        }
    }
    for resource in custody_only.iter().filter(|r| !derived.contains_key(*r)) {
        let current = staged.record(resource)?;
        let record = match &current {
            Some(record) => {
                let mut record = Record::clone(record);
                record
                    .anomalies
                    .retain(|a| !matches!(a.kind, AnomalyKind::MassBalance | AnomalyKind::Custody));
                if record.kind != Kind::Shipment && record.kind != Kind::Design {
                    custody(&mut staged, resource, &mut record)?;
                }
                sort_anomalies(&mut record);
                record
            }
            None => derive(&mut staged, resource, methods)?,
        };
        staged.stage_if_changed(resource, current.as_deref(), record);
    }
    staged.save_all()
}

/// How many times at most a page derives one resource: what is derived too early is derived
/// again, and resources on a cycle (a batch repaired with a part made from it) go round until
/// nothing changes, which takes a few passes.
const MAX_DERIVATIONS: usize = 32;

/// The resources waiting to be derived, the earliest created first, each with the time since
/// which what depends on it is marked when it changes (`None`: all of it).
#[derive(Default)]
struct Dirty {
    waiting: BinaryHeap<Reverse<(Option<Timestamp>, Iri)>>,
    since: HashMap<Iri, Option<Timestamp>>,
}

impl Dirty {
    fn push<F: Facts>(
        &mut self,
        facts: &mut F,
        resource: Iri,
        since: Option<Timestamp>,
    ) -> Result<(), F::Error> {
        match self.since.get_mut(&resource) {
            Some(bound) => {
                *bound = match (*bound, since) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    _ => None,
                };
            }
            None => {
                let created = facts
                    .events(&resource, CREATION)?
                    .first()
                    .map(|e| e.occurred_at);
                self.since.insert(resource.clone(), since);
                self.waiting.push(Reverse((created, resource)));
            }
        }
        Ok(())
    }

    fn pop(&mut self) -> Option<(Iri, Option<Timestamp>)> {
        let Reverse((_, resource)) = self.waiting.pop()?;
        let since = self.since.remove(&resource).flatten();
        Some((resource, since))
    }
}

/// The facts as a refresh sees them: the records derived so far in the page are staged here and
/// read back, and saved at the end, each once, against the record stored before the page.
struct Staged<'f, F> {
    facts: &'f mut F,
    records: HashMap<Iri, Arc<Record>>,
    /// The staged resources, in the order first staged.
    order: Vec<Iri>,
}

impl<'f, F: Facts> Staged<'f, F> {
    fn new(facts: &'f mut F) -> Self {
        Self {
            facts,
            records: HashMap::new(),
            order: Vec::new(),
        }
    }

    /// Stages `derived` unless it is the same as `current`.
    fn stage_if_changed(&mut self, resource: &Iri, current: Option<&Record>, derived: Record) {
        if !current.is_some_and(|c| c.same_as(&derived)) {
            self.stage(resource, Arc::new(derived));
        }
    }

    fn stage(&mut self, resource: &Iri, record: Arc<Record>) {
        if self.records.insert(resource.clone(), record).is_none() {
            self.order.push(resource.clone());
        }
    }

    /// Saves every staged record that differs from the one stored before the page, with the
    /// change of its footprint; returns how many it saved.
    fn save_all(self) -> Result<usize, F::Error> {
        let mut saved = 0;
        for resource in &self.order {
            let record = &self.records[resource];
            let stored = self.facts.record(resource)?;
            let stored = stored.as_deref();
            if stored.is_some_and(|s| s.same_as(record)) {
                continue;
            }
            let before = stored.and_then(|s| s.footprint.as_ref());
            let change = match (before, record.footprint.as_ref()) {
                (_, Some(_)) if !same_footprint(before, record.footprint.as_ref()) => {
                    FootprintChange::Issued
                }
                (Some(_), None) => FootprintChange::Withdrawn,
                _ => FootprintChange::Unchanged,
            };
            self.facts.save(resource, record, change)?;
            saved += 1;
        }
        Ok(saved)
    }
}

impl<F: Facts> Facts for Staged<'_, F> {
    type Error = F::Error;

    fn events(&mut self, resource: &Iri, roles: &[Role]) -> Result<Vec<Arc<Event>>, F::Error> {
        self.facts.events(resource, roles)
    }

    fn flows_from(
        &mut self,
        resource: &Iri,
        since: Option<Timestamp>,
    ) -> Result<Vec<Flow>, F::Error> {
        self.facts.flows_from(resource, since)
    }

    fn consumers(
        &mut self,
        resource: &Iri,
        organization: &OrganizationId,
        since: Timestamp,
    ) -> Result<Vec<Iri>, F::Error> {
        self.facts.consumers(resource, organization, since)
    }

    fn latest_dispatch_to(
        &mut self,
        resource: &Iri,
        consignee: &OrganizationId,
        at: Timestamp,
    ) -> Result<Option<Arc<Event>>, F::Error> {
        self.facts.latest_dispatch_to(resource, consignee, at)
    }

    fn consignees(
        &mut self,
        resource: &Iri,
        shipper: &OrganizationId,
    ) -> Result<Vec<OrganizationId>, F::Error> {
        self.facts.consignees(resource, shipper)
    }

    fn holdings(&mut self, resource: &Iri) -> Result<Vec<Holding>, F::Error> {
        self.facts.holdings(resource)
    }

    fn movement_events(
        &mut self,
        resource: &Iri,
        organization: &OrganizationId,
    ) -> Result<Vec<EventId>, F::Error> {
        self.facts.movement_events(resource, organization)
    }

    fn touched_by(&mut self, event: EventId) -> Result<Option<Touching>, F::Error> {
        self.facts.touched_by(event)
    }

    fn record(&mut self, resource: &Iri) -> Result<Option<Arc<Record>>, F::Error> {
        match self.records.get(resource) {
            Some(record) => Ok(Some(record.clone())),
            None => self.facts.record(resource),
        }
    }

    fn save(
        &mut self,
        resource: &Iri,
        record: &Arc<Record>,
        _change: FootprintChange,
    ) -> Result<(), F::Error> {
        self.stage(resource, record.clone());
        Ok(())
    }
}

/// `consignee` and every organisation it (or they, in turn) shipped `resource` on to.
fn reachable<F: Facts>(
    facts: &mut F,
    resource: &Iri,
    consignee: &OrganizationId,
) -> Result<Vec<OrganizationId>, F::Error> {
    let mut reached = vec![consignee.clone()];
    let mut i = 0;
    while i < reached.len() {
        let shipper = reached[i].clone();
        for next in facts.consignees(resource, &shipper)? {
            if !reached.contains(&next) {
                reached.push(next);
            }
        }
        i += 1;
    }
    Ok(reached)
}

/// Derives `resource` and stages its record if it changed. Returns whether what depends on it
/// must be derived again: when it is (or was) a design, whose dependents read its events, or
/// when what they read of its record changed.
fn settle<F: Facts>(
    staged: &mut Staged<'_, F>,
    resource: &Iri,
    methods: &Methods,
) -> Result<bool, F::Error> {
    let derived = derive(staged, resource, methods)?;
    let current = staged.record(resource)?;
    let passes_on = match &current {
        None => true,
        Some(before) => {
            before.kind == Kind::Design
                || derived.kind == Kind::Design
                || before.kind != derived.kind
                || before.created_by != derived.created_by
                || !same_footprint(passed_on(before), passed_on(&derived))
                || !same_attribution(before.attribution.as_ref(), derived.attribution.as_ref())
        }
    };
    staged.stage_if_changed(resource, current.as_deref(), derived);
    Ok(passes_on)
}

/// The footprint what is made from a resource counts: its production footprint when it was
/// repaired.
fn passed_on(record: &Record) -> Option<&Footprint> {
    record.production.as_ref().or(record.footprint.as_ref())
}

const CREATION: &[Role] = &[Role::Created];

/// The roles in which an event refers to a resource: all but `Retracted`, since a retraction
/// names an event, not the resource (a lot whose creation is retracted is no unresolved
/// reference of the retraction).
const REFERRING: &[Role] = &[
    Role::Consumed,
    Role::Repaired,
    Role::Dispatched,
    Role::Received,
    Role::ContributedTo,
    Role::Cited,
];

fn event_ids(events: &[Arc<Event>]) -> Vec<EventId> {
    let mut ids: Vec<EventId> = events.iter().map(|e| e.event_id).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// The record of one resource, from the facts and the records of what it depends on.
pub fn derive<F: Facts>(
    facts: &mut F,
    resource: &Iri,
    methods: &Methods,
) -> Result<Record, F::Error> {
    let created = facts.events(resource, CREATION)?;
    let mut record = match created.first() {
        Some(creation) => created_record(facts, resource, creation, methods)?,
        None => shipment_or_unknown(facts, resource)?,
    };
    if created.len() > 1 {
        record.anomalies.push(Anomaly {
            kind: AnomalyKind::UnresolvedReference,
            detail: format!(
                "{resource} was created by {} events; the first one counts",
                created.len()
            ),
            organization: None,
            events: event_ids(&created),
        });
    }
    if record.kind != Kind::Shipment && record.kind != Kind::Design {
        custody(facts, resource, &mut record)?;
    }
    sort_anomalies(&mut record);
    Ok(record)
}

fn sort_anomalies(record: &mut Record) {
    record.anomalies.sort_by(|a, b| {
        (a.kind, &a.organization, &a.events, &a.detail).cmp(&(
            b.kind,
            &b.organization,
            &b.events,
            &b.detail,
        ))
    });
}

fn shipment_or_unknown<F: Facts>(facts: &mut F, resource: &Iri) -> Result<Record, F::Error> {
    let events = facts.events(resource, &[Role::Dispatched, Role::Received])?;
    let dispatched = events.iter().any(
        |e| matches!(&e.payload, EventPayload::ShipmentDispatched(p) if &p.shipment_id == resource),
    );
    let receipts: Vec<&Arc<Event>> = events
        .iter()
        .filter(|e| matches!(&e.payload, EventPayload::ShipmentReceived(p) if &p.shipment_id == resource))
        .collect();
    let mut record = Record::unknown();
    if dispatched {
        record.kind = Kind::Shipment;
        return Ok(record);
    }
    if !receipts.is_empty() {
        record.kind = Kind::Shipment;
        record.anomalies.push(Anomaly {
            kind: AnomalyKind::UnresolvedReference,
            detail: format!("shipment {resource} was received but its dispatch was never recorded"),
            organization: None,
            events: {
                let mut ids: Vec<EventId> = receipts.iter().map(|e| e.event_id).collect();
                ids.sort();
                ids
            },
        });
        return Ok(record);
    }
    let referring = facts.events(resource, REFERRING)?;
    if !referring.is_empty() {
        record.anomalies.push(Anomaly {
            kind: AnomalyKind::UnresolvedReference,
            detail: format!("{resource} is referred to but was never recorded"),
            organization: None,
            events: event_ids(&referring),
        });
    }
    Ok(record)
}

fn created_record<F: Facts>(
    facts: &mut F,
    resource: &Iri,
    creation: &Event,
    methods: &Methods,
) -> Result<Record, F::Error> {
    let mut record = Record::unknown();
    record.created_by = Some(creation.recorded_by.clone());
    record.created_in = Some(creation.event_id);
    match &creation.payload {
        EventPayload::DesignPublished(p) => {
            record.kind = Kind::Design;
            record.name = Some(p.name.to_string());
            record.attribution = attribution_at(facts, resource, None, methods, &mut Vec::new())?;
        }
        EventPayload::DesignForked(p) => {
            record.kind = Kind::Design;
            record.name = Some(p.name.to_string());
            record.design = Some(p.parent_design_id.clone());
            if facts.events(&p.parent_design_id, CREATION)?.is_empty() {
                record
                    .anomalies
                    .push(unresolved_parent(&p.parent_design_id, creation));
            }
            record.attribution = attribution_at(facts, resource, None, methods, &mut Vec::new())?;
        }
        EventPayload::MaterialSourced(p) => {
            record.kind = Kind::MaterialLot;
            record.name = Some(p.material.to_string());
            record.quantity = Some(p.quantity);
            record.footprint = Some(footprint::lot(p));
            record.attribution = Some(Attribution::sole(&p.supplier.id));
        }
        EventPayload::BatchFabricated(p) => {
            record.kind = Kind::Batch;
            record.quantity = Some(p.quantity);
            record.design = Some(p.design_id.clone());
            batch(facts, resource, creation, p, methods, &mut record)?;
        }
        EventPayload::BatchRecycled(p) => {
            record.kind = Kind::RecoveredLot;
            let output = p.output_lots.iter().find(|o| &o.lot_id == resource);
            record.name = output.map(|o| o.material.to_string());
            record.quantity = output.map(|o| o.quantity);
            record.footprint = footprint::recovered_lots(p, &methods.factors)
                .into_iter()
                .find(|(lot, _)| lot == resource)
                .map(|(_, footprint)| footprint);
            record.attribution = Some(Attribution::sole(&creation.recorded_by));
        }
        // No other event creates anything.
        _ => {}
    }
    Ok(record)
}

fn unresolved_parent(parent: &Iri, event: &Event) -> Anomaly {
    Anomaly {
        kind: AnomalyKind::UnresolvedReference,
        detail: format!("the design {parent} was never recorded"),
        organization: None,
        events: vec![event.event_id],
    }
}

fn contributions_to<F: Facts>(facts: &mut F, resource: &Iri) -> Result<Vec<Arc<Event>>, F::Error> {
    facts.events(resource, &[Role::ContributedTo])
}

/// A design's attribution as of `until` (`None`: now): its contributors' effort shares counting
/// the contributions that occurred by then, and for a fork its parent's attribution as of the
/// fork (or `until`, when earlier). What was contributed after something was made from a design
/// did not go into it. `None` when the design was never recorded.
fn attribution_at<F: Facts>(
    facts: &mut F,
    design: &Iri,
    until: Option<Timestamp>,
    methods: &Methods,
    path: &mut Vec<Iri>,
) -> Result<Option<Attribution>, F::Error> {
    if path.contains(design) {
        return Ok(None);
    }
    let Some(creation) = facts.events(design, CREATION)?.into_iter().next() else {
        return Ok(None);
    };
    let events = contributions_to(facts, design)?;
    let contributions: Vec<_> = events
        .iter()
        .filter(|e| until.is_none_or(|until| e.occurred_at <= until))
        .filter_map(|e| match &e.payload {
            EventPayload::ContributionRecorded(p) => Some(p),
            _ => None,
        })
        .collect();
    let own = contribution::design(&creation.recorded_by, &contributions, &methods.contribution);
    match &creation.payload {
        EventPayload::DesignForked(p) => {
            let parent_until = until.map_or(creation.occurred_at, |u| u.min(creation.occurred_at));
            path.push(design.clone());
            let parent = attribution_at(
                facts,
                &p.parent_design_id,
                Some(parent_until),
                methods,
                path,
            )?;
            path.pop();
            Ok(Some(contribution::fork(
                &own,
                p.upstream_share.get(),
                parent.as_ref(),
            )))
        }
        EventPayload::DesignPublished(_) => Ok(Some(own)),
        _ => Ok(None),
    }
}

fn batch<F: Facts>(
    facts: &mut F,
    resource: &Iri,
    creation: &Event,
    p: &BatchFabricated,
    methods: &Methods,
    record: &mut Record,
) -> Result<(), F::Error> {
    let maker = &creation.recorded_by;
    let mut inputs = Vec::new();
    let mut input_records = Vec::new();
    for input in p.inputs.iter() {
        let upstream = facts.record(&input.resource)?;
        inputs.push(input_footprint(
            facts,
            &input.resource,
            upstream.as_deref(),
            maker,
            creation.occurred_at,
            &methods.factors,
        )?);
        input_records.push(upstream);
    }
    let mut repairs = Vec::new();
    let repair_events = facts.events(resource, &[Role::Repaired])?;
    for event in &repair_events {
        if let EventPayload::BatchRepaired(repair) = &event.payload {
            let mut parts = Vec::new();
            for part in repair.parts.iter() {
                let upstream = facts.record(&part.resource)?;
                parts.push(input_footprint(
                    facts,
                    &part.resource,
                    upstream.as_deref(),
                    &event.recorded_by,
                    event.occurred_at,
                    &methods.factors,
                )?);
            }
            let country = if &event.recorded_by == maker {
                Some(p.facility.country)
            } else {
                received_in(facts, resource, &event.recorded_by, event.occurred_at)?
            };
            repairs.push(footprint::repair(repair, &parts, country, &methods.factors));
        }
    }
    let computed = footprint::batch(p, &inputs, &repairs, &methods.factors);
    if p.inputs.is_empty() {
        record.anomalies.push(Anomaly {
            kind: AnomalyKind::MissingFootprintInput,
            detail: "the batch records no inputs: its footprint counts no materials".into(),
            organization: Some(maker.clone()),
            events: vec![creation.event_id],
        });
    }
    missing_inputs(&computed, creation, &repair_events, record);
    for (input, upstream) in p.inputs.iter().zip(&input_records) {
        if upstream.as_ref().is_none_or(|u| u.kind == Kind::Unknown) {
            record.anomalies.push(Anomaly {
                kind: AnomalyKind::UnresolvedReference,
                detail: format!("the input {} was never recorded", input.resource),
                organization: Some(maker.clone()),
                events: vec![creation.event_id],
            });
        }
    }
    if !repairs.is_empty() {
        record.production = Some(footprint::batch(p, &inputs, &[], &methods.factors));
    }
    record.footprint = Some(computed);

    let design = attribution_at(
        facts,
        &p.design_id,
        Some(creation.occurred_at),
        methods,
        &mut Vec::new(),
    )?;
    if design.is_none() {
        record
            .anomalies
            .push(unresolved_parent(&p.design_id, creation));
    }
    let all_mass = p
        .inputs
        .iter()
        .all(|i| i.quantity.measure().unit == Unit::Kilogram);
    let shares: Vec<InputShare<'_>> = p
        .inputs
        .iter()
        .zip(&input_records)
        .map(|(input, upstream)| InputShare {
            weight: if all_mass {
                input.quantity.measure().amount
            } else {
                1.0
            },
            attribution: upstream.as_ref().and_then(|u| u.attribution.as_ref()),
        })
        .collect();
    let contributions = contributions_to(facts, resource)?;
    let contributions: Vec<_> = contributions
        .iter()
        .filter_map(|e| match &e.payload {
            EventPayload::ContributionRecorded(c) => Some(c),
            _ => None,
        })
        .collect();
    record.attribution = Some(contribution::batch(
        maker,
        design.as_ref(),
        &p.labour,
        &contributions,
        &shares,
        &methods.contribution,
    ));
    Ok(())
}

fn missing_inputs(
    computed: &Footprint,
    creation: &Event,
    repairs: &[Arc<Event>],
    record: &mut Record,
) {
    if computed.missing_inputs.is_empty() {
        return;
    }
    let mut events = vec![creation.event_id];
    events.extend(repairs.iter().map(|e| e.event_id));
    events.sort();
    let names: Vec<&str> = computed.missing_inputs.iter().map(Iri::as_str).collect();
    record.anomalies.push(Anomaly {
        kind: AnomalyKind::MissingFootprintInput,
        detail: format!(
            "no footprint (or one per another unit) for {}: counted as 0, so the figure is a lower bound",
            names.join(", ")
        ),
        organization: None,
        events,
    });
}

/// The country where `organization` received `resource`, from its latest receipt at `at` or
/// before (a repair happens where the repairer last received what it repairs).
fn received_in<F: Facts>(
    facts: &mut F,
    resource: &Iri,
    organization: &OrganizationId,
    at: Timestamp,
) -> Result<Option<CountryCode>, F::Error> {
    let receipts = facts.events(resource, &[Role::Received])?;
    Ok(receipts
        .iter()
        .filter(|e| &e.recorded_by == organization && e.occurred_at <= at)
        .max_by(|a, b| {
            a.occurred_at
                .cmp(&b.occurred_at)
                .then(a.event_id.cmp(&b.event_id))
        })
        .and_then(|e| match &e.payload {
            EventPayload::ShipmentReceived(p) => Some(p.location.country),
            _ => None,
        }))
}

/// What a batch or a repair made by `consumer` knows of one of its inputs: the input's footprint
/// and the transport that delivered it to `consumer`.
fn input_footprint<F: Facts>(
    facts: &mut F,
    resource: &Iri,
    upstream: Option<&Record>,
    consumer: &OrganizationId,
    at: Timestamp,
    factors: &Factors,
) -> Result<InputFootprint, F::Error> {
    let footprint = upstream.and_then(|u| u.production.clone().or_else(|| u.footprint.clone()));
    let (per_unit, primary) = match (&footprint, upstream.and_then(|u| u.created_by.as_ref())) {
        (Some(fp), Some(creator)) => {
            let delivery = Delivery {
                resource,
                unit: fp.unit,
                creator,
                factors,
            };
            delivery.to(facts, consumer, at, &mut Vec::new())?
        }
        _ => (0.0, 0.0),
    };
    Ok(InputFootprint {
        resource: resource.clone(),
        footprint,
        delivery_transport_per_unit: per_unit,
        delivery_transport_primary_share: primary,
    })
}

/// The transport that delivered one resource somewhere.
struct Delivery<'a> {
    resource: &'a Iri,
    unit: Unit,
    creator: &'a OrganizationId,
    factors: &'a Factors,
}

impl Delivery<'_> {
    /// kgCO2e per unit of the resource for bringing it from its creator to `organization` by
    /// the time `at`, and the primary share of it: the latest shipment of it to `organization`
    /// dispatched at `at` or before (the one that delivered what was used then) — the shipment's
    /// emissions allocated to the resource, per unit — plus, the same way, what brought it to
    /// the shipper by the time of that dispatch. `path` holds the organisations already on the
    /// way, so a resource shipped back and forth counts each leg once.
    fn to<F: Facts>(
        &self,
        facts: &mut F,
        organization: &OrganizationId,
        at: Timestamp,
        path: &mut Vec<OrganizationId>,
    ) -> Result<(f64, f64), F::Error> {
        if organization == self.creator || path.contains(organization) {
            return Ok((0.0, 0.0));
        }
        let Some(event) = facts.latest_dispatch_to(self.resource, organization, at)? else {
            return Ok((0.0, 0.0));
        };
        let EventPayload::ShipmentDispatched(shipment) = &event.payload else {
            return Ok((0.0, 0.0));
        };
        let emissions = footprint::shipment_emissions(shipment, self.factors);
        let (mut kg, mut amount) = (0.0, 0.0);
        for (line, allocated) in shipment.lines.iter().zip(&emissions.lines) {
            if &line.resource == self.resource && allocated.unit == self.unit {
                kg += allocated.kg_co2e;
                amount += line.quantity.measure().amount;
            }
        }
        let hop = if amount > 0.0 { kg / amount } else { 0.0 };
        let hop_primary = match emissions.data_quality {
            crate::payload::DataQuality::Primary => hop,
            crate::payload::DataQuality::Secondary => 0.0,
        };
        path.push(organization.clone());
        let (before, before_share) = self.to(facts, &event.recorded_by, event.occurred_at, path)?;
        path.pop();
        let total = before + hop;
        let primary = before * before_share + hop_primary;
        let share = if total > 0.0 { primary / total } else { 0.0 };
        Ok((total, share))
    }
}

/// An amount for a sentence: rounded to a millionth, so that sums added in another order read
/// the same.
fn amount(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Mass balance and custody: per organisation and base unit, what came in against what went
/// out. (Sums are compared with a relative tolerance of 1e-9: they may be added in any order.)
fn custody<F: Facts>(facts: &mut F, resource: &Iri, record: &mut Record) -> Result<(), F::Error> {
    for holding in facts.holdings(resource)? {
        let (inflow, outflow, unit) = (holding.inflow, holding.outflow, holding.unit.code());
        let organization = &holding.organization;
        let tolerance = 1e-9 * inflow.abs().max(outflow.abs()).max(1.0);
        let kind = if outflow > tolerance && inflow <= tolerance {
            AnomalyKind::Custody
        } else if outflow > inflow + tolerance {
            AnomalyKind::MassBalance
        } else {
            continue;
        };
        let detail = match kind {
            AnomalyKind::Custody => format!(
                "{organization} gave out {} {unit} of {resource} but never held any",
                amount(outflow)
            ),
            _ => format!(
                "{organization} gave out {} {unit} of {resource} but took in only {} {unit}",
                amount(outflow),
                amount(inflow)
            ),
        };
        record.anomalies.push(Anomaly {
            kind,
            detail,
            organization: Some(organization.clone()),
            events: facts.movement_events(resource, organization)?,
        });
    }
    Ok(())
}

/// One shipment of a resource: who held it when and where.
#[derive(Clone, Debug, PartialEq)]
pub struct Leg {
    pub shipment: Iri,
    pub dispatched_in: EventId,
    pub shipper: OrganizationId,
    pub consignee: OrganizationId,
    pub from: Place,
    pub to: Place,
    pub transport_mode: TransportMode,
    /// How much of the resource the shipment carried.
    pub quantity: Quantity,
    pub dispatched_at: Timestamp,
    /// The receipt, when it was recorded.
    pub received: Option<Receipt>,
}

/// The receipt of a shipment.
#[derive(Clone, Debug, PartialEq)]
pub struct Receipt {
    pub event: EventId,
    pub at: Timestamp,
    pub location: Place,
    /// How much of the resource was received.
    pub quantity: Quantity,
}

/// The custody journey of `resource` from the events that touch it: its shipments in the order
/// they were dispatched (then by event id), each with its receipt when there is one. Lines of the
/// same resource in one shipment are added up.
pub fn journey(resource: &Iri, events: &[Event]) -> Vec<Leg> {
    let total = |quantities: Vec<Quantity>| -> Option<Quantity> {
        let first = *quantities.first()?;
        let measures: Vec<_> = quantities.iter().map(Quantity::measure).collect();
        if quantities.len() == 1 || measures.iter().any(|m| m.unit != measures[0].unit) {
            return Some(first);
        }
        let amount: f64 = measures.iter().map(|m| m.amount).sum();
        PositiveAmount::new(amount).ok().map(|amount| Quantity {
            amount,
            unit: measures[0].unit,
        })
    };
    let mut legs: Vec<Leg> = events
        .iter()
        .filter_map(|event| match &event.payload {
            EventPayload::ShipmentDispatched(p) => {
                let carried = p
                    .lines
                    .iter()
                    .filter(|l| &l.resource == resource)
                    .map(|l| l.quantity)
                    .collect();
                Some(Leg {
                    shipment: p.shipment_id.clone(),
                    dispatched_in: event.event_id,
                    shipper: event.recorded_by.clone(),
                    consignee: p.consignee.clone(),
                    from: p.from.clone(),
                    to: p.to.clone(),
                    transport_mode: p.transport_mode,
                    quantity: total(carried)?,
                    dispatched_at: event.occurred_at,
                    received: None,
                })
            }
            _ => None,
        })
        .collect();
    legs.sort_by(|a, b| {
        (a.dispatched_at, a.dispatched_in).cmp(&(b.dispatched_at, b.dispatched_in))
    });
    for event in events {
        if let EventPayload::ShipmentReceived(p) = &event.payload
            && let Some(leg) = legs.iter_mut().find(|l| l.shipment == p.shipment_id)
            && leg
                .received
                .as_ref()
                .is_none_or(|r| r.event > event.event_id)
        {
            let got = p
                .lines
                .iter()
                .filter(|l| &l.resource == resource)
                .map(|l| l.quantity)
                .collect();
            if let Some(quantity) = total(got) {
                leg.received = Some(Receipt {
                    event: event.event_id,
                    at: event.occurred_at,
                    location: p.location.clone(),
                    quantity,
                });
            }
        }
    }
    legs
}
