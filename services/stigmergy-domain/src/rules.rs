//! The capture rules of DESIGN §3 as pure functions of the state the event log implies.
//!
//! [`CaptureState`] is folded from the log. Capture asks it to [`seal`](CaptureState::seal) a
//! submission into an event (server fields, derived subject) and to [`admit`](CaptureState::admit)
//! it: either the event is a duplicate of one already recorded, or it passes every rule and its
//! effects are applied. A batch is staged with [`begin`](CaptureState::begin) and either kept with
//! [`commit`](CaptureState::commit) or undone with [`rollback`](CaptureState::rollback), so a batch
//! is admitted all or nothing.

use std::collections::HashMap;
use std::fmt;

use chrono::Duration;

use crate::digest::ContentDigest;
use crate::event::{Event, EventPayload, EventType, LogPosition, Submission};
use crate::ids::{EventId, Iri, Licence, OrganizationId};
use crate::payload::*;
use crate::time::Timestamp;
use crate::units::{Quantity, Unit};

/// Relative tolerance when comparing amounts, so that splitting a lot into parts that add up does
/// not fail on floating-point rounding.
const TOLERANCE: f64 = 1e-9;

/// How far in the future of `recordedAt` an `occurredAt` may be (clock skew between a workshop and
/// the server).
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);

/// The organisations capture knows; rules only ask whether one exists.
pub trait Directory {
    fn organization_exists(&self, id: &OrganizationId) -> bool;
}

/// How a refusal is classified: the service maps these to 422, 409 and 403.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalClass {
    /// The event contradicts itself or names something that does not exist.
    Invalid,
    /// The event conflicts with what the log already holds.
    Conflict,
    /// The recording organisation may not record this.
    Forbidden,
}

macro_rules! rules {
    ($($variant:ident => ($slug:literal, $class:ident, $title:literal)),* $(,)?) => {
        /// A capture rule; every refusal names one.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Rule {
            $($variant),*
        }

        impl Rule {
            pub const ALL: &'static [Rule] = &[$(Rule::$variant),*];

            /// A stable, URL-friendly name.
            pub fn slug(self) -> &'static str {
                match self { $(Self::$variant => $slug),* }
            }
            pub fn class(self) -> RefusalClass {
                match self { $(Self::$variant => RefusalClass::$class),* }
            }
            /// A short sentence saying what the rule demands.
            pub fn title(self) -> &'static str {
                match self { $(Self::$variant => $title),* }
            }
        }
    };
}

rules! {
    RecordedByMismatch => ("recorded-by-mismatch", Forbidden, "recordedBy must be the authenticated organisation"),
    SubjectMismatch => ("subject-mismatch", Invalid, "subject must be the one the payload implies"),
    OccurredInFuture => ("occurred-in-future", Invalid, "occurredAt must not be later than the time of recording"),
    IdempotencyConflict => ("idempotency-conflict", Conflict, "an eventId identifies one event; it cannot be reused for different content"),
    ResourceExists => ("resource-exists", Conflict, "a new resource needs an identifier that is not yet in use"),
    ShipmentExists => ("shipment-exists", Conflict, "a new shipment needs an identifier that is not yet in use"),
    UnresolvedReference => ("unresolved-reference", Invalid, "references must name something already recorded"),
    WrongKind => ("wrong-kind", Invalid, "the referenced thing must be of the kind the field expects"),
    UnitMismatch => ("unit-mismatch", Invalid, "quantities of a resource must use its unit (mass units convert into each other)"),
    Custody => ("custody", Forbidden, "the recording organisation must hold custody of what it ships, consumes, repairs or recycles"),
    MassBalance => ("mass-balance", Conflict, "no more can be shipped, consumed or received than is held or was sent"),
    OutputExceedsInput => ("output-exceeds-input", Invalid, "recycling cannot recover more mass than went in"),
    SelfReference => ("self-reference", Invalid, "a resource cannot be a part of itself"),
    NotAddressee => ("not-addressee", Forbidden, "only the consignee of a shipment may receive it"),
    AlreadyReceived => ("already-received", Conflict, "a shipment is received once"),
    NotInShipment => ("not-in-shipment", Invalid, "only what was dispatched can be received"),
    ShareAlike => ("share-alike", Invalid, "a fork of a share-alike design must keep a licence of the same family"),
    NotMaintainer => ("not-maintainer", Forbidden, "contributions to a design or batch are recorded by the organisation that recorded it"),
    NotYourEvent => ("not-your-event", Forbidden, "an organisation can only retract its own events"),
    RetractionOfRetraction => ("retraction-of-retraction", Invalid, "a retraction cannot be retracted; record the event again instead"),
    AlreadyRetracted => ("already-retracted", Conflict, "an event is retracted once"),
    NotYetDurable => ("not-yet-durable", Conflict, "an event can be retracted once it is durably recorded, not in the batch that records it"),
}

/// Why an event was refused: which rule, where in the event (a JSON pointer relative to the
/// event), and a sentence for a person.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub rule: Rule,
    pub pointer: String,
    pub detail: String,
}

impl Refusal {
    fn new(rule: Rule, pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            rule,
            pointer: pointer.into(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {}: {}",
            self.rule.slug(),
            self.pointer,
            self.detail
        )
    }
}

/// What admitting an event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The event is new; its effects are applied.
    New,
    /// The same event (same id, same content) was recorded before; nothing changed.
    Duplicate,
}

/// The server's side of sealing a submission into an event.
#[derive(Clone, Debug)]
pub struct Seal {
    /// The authenticated organisation.
    pub recorded_by: OrganizationId,
    pub recorded_at: Timestamp,
    /// The id to use when the submission has none (a UUIDv7 minted by the caller).
    pub minted_id: EventId,
}

/// The kinds of resource the rules tell apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    Design,
    MaterialLot,
    Batch,
}

impl ResourceKind {
    fn noun(self) -> &'static str {
        match self {
            Self::Design => "a design",
            Self::MaterialLot => "a material lot",
            Self::Batch => "a batch",
        }
    }
}

#[derive(Clone, Debug)]
struct Resource {
    kind: ResourceKind,
    /// The base unit its amounts are held in (kilograms for mass); `None` for designs.
    unit: Option<Unit>,
    licence: Option<Licence>,
    recorded_by: OrganizationId,
}

#[derive(Clone, Debug)]
struct Shipment {
    shipper: OrganizationId,
    consignee: OrganizationId,
    /// What was dispatched, per resource, in the resource's base unit.
    lines: Vec<(Iri, f64)>,
    received: bool,
}

#[derive(Clone, Debug)]
struct EventRecord {
    digest: ContentDigest,
    position: Option<LogPosition>,
    recorded_by: OrganizationId,
    subject: Iri,
    event_type: EventType,
    retracted: bool,
}

#[derive(Debug)]
enum Undo {
    Event(EventId, Option<EventRecord>),
    Resource(Iri, Option<Resource>),
    Shipment(Iri, Option<Shipment>),
    Holding((Iri, OrganizationId), Option<f64>),
}

/// What the rules need to know of the log: every event id with its content digest, the
/// resources and shipments recorded, and who holds how much of what.
#[derive(Debug, Default)]
pub struct CaptureState {
    events: HashMap<EventId, EventRecord>,
    resources: HashMap<Iri, Resource>,
    shipments: HashMap<Iri, Shipment>,
    holdings: HashMap<(Iri, OrganizationId), f64>,
    journal: Option<Vec<Undo>>,
}

/// Events that retractions in the batch being admitted refer to, fetched from the log by the
/// caller (the rules do no I/O).
pub type RetractedEvents = HashMap<EventId, Event>;

impl CaptureState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of events recorded (retracted ones included).
    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// Where an event recorded earlier sits in the log.
    pub fn position_of(&self, event_id: &EventId) -> Option<LogPosition> {
        self.events.get(event_id).and_then(|record| record.position)
    }

    /// Whether an event with this id was recorded.
    pub fn knows_event(&self, event_id: &EventId) -> bool {
        self.events.contains_key(event_id)
    }

    /// How much of a resource an organisation holds, in the resource's base unit.
    pub fn holding(&self, resource: &Iri, organization: &OrganizationId) -> f64 {
        self.holdings
            .get(&(resource.clone(), organization.clone()))
            .copied()
            .unwrap_or(0.0)
    }

    /// Turns a submission into an event: adds the server's fields, derives the subject, and
    /// refuses a client-set `recordedBy` or `subject` that differs from the server's.
    pub fn seal(&self, submission: Submission, seal: &Seal) -> Result<Event, Refusal> {
        if let Some(claimed) = &submission.recorded_by
            && claimed != &seal.recorded_by
        {
            return Err(Refusal::new(
                Rule::RecordedByMismatch,
                "/recordedBy",
                format!(
                    "the request is authenticated as {}, but the event claims to be recorded by {claimed}",
                    seal.recorded_by
                ),
            ));
        }
        if submission.occurred_at.datetime() > seal.recorded_at.datetime() + MAX_CLOCK_SKEW {
            return Err(Refusal::new(
                Rule::OccurredInFuture,
                "/occurredAt",
                format!(
                    "{} is later than the time of recording ({}) by more than {} minutes",
                    submission.occurred_at,
                    seal.recorded_at,
                    MAX_CLOCK_SKEW.num_minutes()
                ),
            ));
        }
        let subject = match &submission.payload {
            EventPayload::EventRetracted(retraction) => match self.events.get(&retraction.event_id)
            {
                Some(record) => record.subject.clone(),
                None => {
                    return Err(Refusal::new(
                        Rule::UnresolvedReference,
                        "/payload/eventId",
                        format!("no event {} has been recorded", retraction.event_id),
                    ));
                }
            },
            payload => payload.own_subject().cloned().ok_or_else(|| {
                Refusal::new(
                    Rule::SubjectMismatch,
                    "/subject",
                    "the payload names no subject",
                )
            })?,
        };
        if let Some(claimed) = &submission.subject
            && claimed != &subject
        {
            return Err(Refusal::new(
                Rule::SubjectMismatch,
                "/subject",
                format!("the payload implies the subject {subject}, not {claimed}"),
            ));
        }
        Ok(Event {
            event_id: submission.event_id.unwrap_or(seal.minted_id),
            schema_version: submission.schema_version,
            occurred_at: submission.occurred_at,
            recorded_at: seal.recorded_at,
            recorded_by: seal.recorded_by.clone(),
            subject,
            payload: submission.payload,
        })
    }

    /// Starts staging a batch: what is admitted until [`commit`](Self::commit) can be undone by
    /// [`rollback`](Self::rollback).
    pub fn begin(&mut self) {
        self.journal = Some(Vec::new());
    }

    /// Keeps everything admitted since [`begin`](Self::begin).
    pub fn commit(&mut self) {
        self.journal = None;
    }

    /// Undoes everything admitted since [`begin`](Self::begin).
    pub fn rollback(&mut self) {
        let Some(journal) = self.journal.take() else {
            return;
        };
        for undo in journal.into_iter().rev() {
            match undo {
                Undo::Event(key, old) => restore(&mut self.events, key, old),
                Undo::Resource(key, old) => restore(&mut self.resources, key, old),
                Undo::Shipment(key, old) => restore(&mut self.shipments, key, old),
                Undo::Holding(key, old) => restore(&mut self.holdings, key, old),
            }
        }
    }

    /// Admits a sealed event: a duplicate of a recorded one, or a new event that passes every
    /// rule (then its effects are applied). `retracted` holds the events that retractions refer
    /// to.
    pub fn admit(
        &mut self,
        event: &Event,
        directory: &dyn Directory,
        retracted: &RetractedEvents,
    ) -> Result<Outcome, Refusal> {
        self.admit_with_digest(event, ContentDigest::of(event), directory, retracted)
    }

    /// [`admit`](Self::admit) with the event's digest computed beforehand (by
    /// [`ContentDigest::of_submission`], off the critical path of the one admitting thread).
    pub fn admit_with_digest(
        &mut self,
        event: &Event,
        digest: ContentDigest,
        directory: &dyn Directory,
        retracted: &RetractedEvents,
    ) -> Result<Outcome, Refusal> {
        debug_assert_eq!(
            digest,
            ContentDigest::of(event),
            "the digest is the event's"
        );
        if let Some(record) = self.events.get(&event.event_id) {
            return if record.digest == digest && record.recorded_by == event.recorded_by {
                Ok(Outcome::Duplicate)
            } else {
                Err(Refusal::new(
                    Rule::IdempotencyConflict,
                    "/eventId",
                    format!(
                        "event {} was recorded before with different content",
                        event.event_id
                    ),
                ))
            };
        }
        self.check(event, directory, retracted)?;
        self.record(event, digest, None);
        self.apply_effects(event, 1.0, retracted);
        Ok(Outcome::New)
    }

    /// Applies an event read back from the log, without checking any rule (the log is the truth;
    /// what contradicts it is for the projectors to flag as an anomaly).
    pub fn apply_recorded(
        &mut self,
        event: &Event,
        position: LogPosition,
        retracted: &RetractedEvents,
    ) {
        if self.events.contains_key(&event.event_id) {
            return;
        }
        self.record(event, ContentDigest::of(event), Some(position));
        self.apply_effects(event, 1.0, retracted);
    }

    /// Notes where an admitted event landed in the log.
    pub fn set_position(&mut self, event_id: &EventId, position: LogPosition) {
        if let Some(record) = self.events.get_mut(event_id) {
            record.position = Some(position);
        }
    }

    fn record(&mut self, event: &Event, digest: ContentDigest, position: Option<LogPosition>) {
        let record = EventRecord {
            digest,
            position,
            recorded_by: event.recorded_by.clone(),
            subject: event.subject.clone(),
            event_type: event.event_type(),
            retracted: false,
        };
        self.put_event(event.event_id, Some(record));
    }

    fn put_event(&mut self, key: EventId, value: Option<EventRecord>) {
        let old = put(&mut self.events, key, value);
        if let Some(journal) = &mut self.journal {
            journal.push(Undo::Event(key, old));
        }
    }

    fn put_resource(&mut self, key: Iri, value: Option<Resource>) {
        let old = put(&mut self.resources, key.clone(), value);
        if let Some(journal) = &mut self.journal {
            journal.push(Undo::Resource(key, old));
        }
    }

    fn put_shipment(&mut self, key: Iri, value: Option<Shipment>) {
        let old = put(&mut self.shipments, key.clone(), value);
        if let Some(journal) = &mut self.journal {
            journal.push(Undo::Shipment(key, old));
        }
    }

    fn add_holding(&mut self, resource: &Iri, organization: &OrganizationId, delta: f64) {
        let key = (resource.clone(), organization.clone());
        let old = self.holdings.get(&key).copied();
        self.holdings
            .insert(key.clone(), old.unwrap_or(0.0) + delta);
        if let Some(journal) = &mut self.journal {
            journal.push(Undo::Holding(key, old));
        }
    }

    /// Base unit and base amount of a quantity of a resource, or `None` for unknown resources.
    fn base_amount(&self, resource: &Iri, quantity: &Quantity) -> Option<f64> {
        self.resources.get(resource)?;
        Some(quantity.measure().amount)
    }

    /// Applies (`sign` = 1) or reverts (`sign` = -1) what an event did to the state.
    fn apply_effects(&mut self, event: &Event, sign: f64, retracted: &RetractedEvents) {
        let by = &event.recorded_by;
        let create = |kind, unit: Option<Unit>, licence: Option<Licence>| Resource {
            kind,
            unit,
            licence,
            recorded_by: by.clone(),
        };
        match &event.payload {
            EventPayload::DesignPublished(p) => {
                let resource = create(ResourceKind::Design, None, Some(p.licence.clone()));
                self.put_resource(p.design_id.clone(), (sign > 0.0).then_some(resource));
            }
            EventPayload::DesignForked(p) => {
                let resource = create(ResourceKind::Design, None, Some(p.licence.clone()));
                self.put_resource(p.design_id.clone(), (sign > 0.0).then_some(resource));
            }
            EventPayload::ContributionRecorded(_) => {}
            EventPayload::MaterialSourced(p) => {
                let measure = p.quantity.measure();
                let resource = create(ResourceKind::MaterialLot, Some(measure.unit), None);
                self.put_resource(p.lot_id.clone(), (sign > 0.0).then_some(resource));
                self.add_holding(&p.lot_id, by, sign * measure.amount);
            }
            EventPayload::BatchFabricated(p) => {
                for input in p.inputs.iter() {
                    if let Some(amount) = self.base_amount(&input.resource, &input.quantity) {
                        self.add_holding(&input.resource, by, -sign * amount);
                    }
                }
                let measure = p.quantity.measure();
                let resource = create(ResourceKind::Batch, Some(measure.unit), None);
                self.put_resource(p.batch_id.clone(), (sign > 0.0).then_some(resource));
                self.add_holding(&p.batch_id, by, sign * measure.amount);
            }
            EventPayload::ShipmentDispatched(p) => {
                let mut lines: Vec<(Iri, f64)> = Vec::new();
                for line in p.lines.iter() {
                    let amount = line.quantity.measure().amount;
                    self.add_holding(&line.resource, by, -sign * amount);
                    match lines
                        .iter_mut()
                        .find(|(resource, _)| resource == &line.resource)
                    {
                        Some((_, total)) => *total += amount,
                        None => lines.push((line.resource.clone(), amount)),
                    }
                }
                let shipment = Shipment {
                    shipper: by.clone(),
                    consignee: p.consignee.clone(),
                    lines,
                    received: false,
                };
                self.put_shipment(p.shipment_id.clone(), (sign > 0.0).then_some(shipment));
            }
            EventPayload::ShipmentReceived(p) => {
                for line in p.lines.iter() {
                    self.add_holding(&line.resource, by, sign * line.quantity.measure().amount);
                }
                if let Some(mut shipment) = self.shipments.get(&p.shipment_id).cloned() {
                    shipment.received = sign > 0.0;
                    self.put_shipment(p.shipment_id.clone(), Some(shipment));
                }
            }
            EventPayload::BatchRepaired(p) => {
                for part in p.parts.iter() {
                    self.add_holding(&part.resource, by, -sign * part.quantity.measure().amount);
                }
            }
            EventPayload::BatchRecycled(p) => {
                self.add_holding(&p.resource, by, -sign * p.quantity.measure().amount);
                for output in p.output_lots.iter() {
                    let measure = output.quantity.measure();
                    let resource = create(ResourceKind::MaterialLot, Some(measure.unit), None);
                    self.put_resource(output.lot_id.clone(), (sign > 0.0).then_some(resource));
                    self.add_holding(&output.lot_id, by, sign * measure.amount);
                }
            }
            EventPayload::EventRetracted(p) => {
                if let Some(mut record) = self.events.get(&p.event_id).cloned()
                    && !record.retracted
                {
                    record.retracted = true;
                    self.put_event(p.event_id, Some(record));
                    if let Some(original) = retracted.get(&p.event_id) {
                        self.apply_effects(original, -sign, retracted);
                    }
                }
            }
        }
    }

    fn check(
        &self,
        event: &Event,
        directory: &dyn Directory,
        retracted: &RetractedEvents,
    ) -> Result<(), Refusal> {
        let by = &event.recorded_by;
        match &event.payload {
            EventPayload::DesignPublished(p) => {
                self.require_new_resource(&p.design_id, "/payload/designId")
            }
            EventPayload::DesignForked(p) => {
                self.require_new_resource(&p.design_id, "/payload/designId")?;
                let parent = self.require_kind(
                    &p.parent_design_id,
                    "/payload/parentDesignId",
                    &[ResourceKind::Design],
                )?;
                let family = parent
                    .licence
                    .as_ref()
                    .and_then(Licence::share_alike_family);
                if let Some(family) = family
                    && p.licence.share_alike_family() != Some(family)
                {
                    return Err(Refusal::new(
                        Rule::ShareAlike,
                        "/payload/licence",
                        format!(
                            "the parent design is under the share-alike {} family; {} is not in it",
                            family.name(),
                            p.licence.as_str()
                        ),
                    ));
                }
                Ok(())
            }
            EventPayload::ContributionRecorded(p) => {
                let target = self.require_kind(
                    &p.target,
                    "/payload/target",
                    &[ResourceKind::Design, ResourceKind::Batch],
                )?;
                if &target.recorded_by != by {
                    return Err(Refusal::new(
                        Rule::NotMaintainer,
                        "/payload/target",
                        format!(
                            "{} was recorded by {}, not by {by}",
                            p.target, target.recorded_by
                        ),
                    ));
                }
                Ok(())
            }
            EventPayload::MaterialSourced(p) => {
                self.require_new_resource(&p.lot_id, "/payload/lotId")
            }
            EventPayload::BatchFabricated(p) => {
                self.require_new_resource(&p.batch_id, "/payload/batchId")?;
                self.require_kind(&p.design_id, "/payload/designId", &[ResourceKind::Design])?;
                let inputs: Vec<_> = p
                    .inputs
                    .iter()
                    .enumerate()
                    .map(|(i, input)| {
                        (
                            format!("/payload/inputs/{i}"),
                            &input.resource,
                            &input.quantity,
                        )
                    })
                    .collect();
                self.consume(by, &inputs, None)
            }
            EventPayload::ShipmentDispatched(p) => {
                if self.shipments.contains_key(&p.shipment_id) {
                    return Err(Refusal::new(
                        Rule::ShipmentExists,
                        "/payload/shipmentId",
                        format!("shipment {} was dispatched before", p.shipment_id),
                    ));
                }
                if !directory.organization_exists(&p.consignee) {
                    return Err(Refusal::new(
                        Rule::UnresolvedReference,
                        "/payload/consignee",
                        format!("no organisation {} is registered", p.consignee),
                    ));
                }
                let lines: Vec<_> = p
                    .lines
                    .iter()
                    .enumerate()
                    .map(|(i, line)| {
                        (
                            format!("/payload/lines/{i}"),
                            &line.resource,
                            &line.quantity,
                        )
                    })
                    .collect();
                self.consume(by, &lines, None)
            }
            EventPayload::ShipmentReceived(p) => self.check_receipt(by, p),
            EventPayload::BatchRepaired(p) => {
                self.require_kind(
                    &p.resource,
                    "/payload/resource",
                    &[ResourceKind::MaterialLot, ResourceKind::Batch],
                )?;
                if self.holding(&p.resource, by) <= 0.0 {
                    return Err(Refusal::new(
                        Rule::Custody,
                        "/payload/resource",
                        format!("{by} does not hold {}", p.resource),
                    ));
                }
                let parts: Vec<_> = p
                    .parts
                    .iter()
                    .enumerate()
                    .map(|(i, part)| {
                        (
                            format!("/payload/parts/{i}"),
                            &part.resource,
                            &part.quantity,
                        )
                    })
                    .collect();
                self.consume(by, &parts, Some(&p.resource))
            }
            EventPayload::BatchRecycled(p) => {
                let input = vec![("/payload".to_owned(), &p.resource, &p.quantity)];
                self.consume(by, &input, None)?;
                let mut seen: Vec<&Iri> = Vec::new();
                for (i, output) in p.output_lots.iter().enumerate() {
                    let pointer = format!("/payload/outputLots/{i}/lotId");
                    self.require_new_resource(&output.lot_id, &pointer)?;
                    if seen.contains(&&output.lot_id) || output.lot_id == p.resource {
                        return Err(Refusal::new(
                            Rule::ResourceExists,
                            pointer,
                            format!("{} is named twice in this event", output.lot_id),
                        ));
                    }
                    seen.push(&output.lot_id);
                }
                let input = p.quantity.measure();
                if input.unit == Unit::Kilogram {
                    let outputs: Vec<_> =
                        p.output_lots.iter().map(|o| o.quantity.measure()).collect();
                    if outputs.iter().all(|m| m.unit == Unit::Kilogram) {
                        let recovered: f64 = outputs.iter().map(|m| m.amount).sum();
                        if exceeds(recovered, input.amount) {
                            return Err(Refusal::new(
                                Rule::OutputExceedsInput,
                                "/payload/outputLots",
                                format!(
                                    "{recovered} kg recovered from {} kg of input",
                                    input.amount
                                ),
                            ));
                        }
                    }
                }
                Ok(())
            }
            EventPayload::EventRetracted(p) => self.check_retraction(event, p, retracted),
        }
    }

    fn check_receipt(&self, by: &OrganizationId, p: &ShipmentReceived) -> Result<(), Refusal> {
        let Some(shipment) = self.shipments.get(&p.shipment_id) else {
            return Err(Refusal::new(
                Rule::UnresolvedReference,
                "/payload/shipmentId",
                format!("no shipment {} has been dispatched", p.shipment_id),
            ));
        };
        if &shipment.consignee != by {
            return Err(Refusal::new(
                Rule::NotAddressee,
                "/payload/shipmentId",
                format!(
                    "shipment {} is addressed to {}, not to {by}",
                    p.shipment_id, shipment.consignee
                ),
            ));
        }
        if shipment.received {
            return Err(Refusal::new(
                Rule::AlreadyReceived,
                "/payload/shipmentId",
                format!("shipment {} was received before", p.shipment_id),
            ));
        }
        let mut received: Vec<(&Iri, f64)> = Vec::new();
        for (i, line) in p.lines.iter().enumerate() {
            let pointer = format!("/payload/lines/{i}");
            let Some((_, dispatched)) = shipment.lines.iter().find(|(r, _)| r == &line.resource)
            else {
                return Err(Refusal::new(
                    Rule::NotInShipment,
                    format!("{pointer}/resource"),
                    format!(
                        "{} was not dispatched in shipment {}",
                        line.resource, p.shipment_id
                    ),
                ));
            };
            self.require_unit(&line.resource, &line.quantity, &pointer)?;
            let amount = line.quantity.measure().amount;
            let total = match received.iter_mut().find(|(r, _)| *r == &line.resource) {
                Some((_, total)) => {
                    *total += amount;
                    *total
                }
                None => {
                    received.push((&line.resource, amount));
                    amount
                }
            };
            if exceeds(total, *dispatched) {
                return Err(Refusal::new(
                    Rule::MassBalance,
                    format!("{pointer}/quantity"),
                    format!(
                        "{total} received of {} but only {dispatched} was dispatched (in {})",
                        line.resource,
                        line.quantity.measure().unit.code()
                    ),
                ));
            }
        }
        let _ = &shipment.shipper;
        Ok(())
    }

    fn check_retraction(
        &self,
        event: &Event,
        p: &EventRetracted,
        retracted: &RetractedEvents,
    ) -> Result<(), Refusal> {
        let Some(record) = self.events.get(&p.event_id) else {
            return Err(Refusal::new(
                Rule::UnresolvedReference,
                "/payload/eventId",
                format!("no event {} has been recorded", p.event_id),
            ));
        };
        if record.recorded_by != event.recorded_by {
            return Err(Refusal::new(
                Rule::NotYourEvent,
                "/payload/eventId",
                format!(
                    "event {} was recorded by {}",
                    p.event_id, record.recorded_by
                ),
            ));
        }
        if record.event_type == EventType::EventRetracted {
            return Err(Refusal::new(
                Rule::RetractionOfRetraction,
                "/payload/eventId",
                format!("event {} is itself a retraction", p.event_id),
            ));
        }
        if record.retracted {
            return Err(Refusal::new(
                Rule::AlreadyRetracted,
                "/payload/eventId",
                format!("event {} was retracted before", p.event_id),
            ));
        }
        if record.position.is_none() || !retracted.contains_key(&p.event_id) {
            return Err(Refusal::new(
                Rule::NotYetDurable,
                "/payload/eventId",
                format!(
                    "event {} is being recorded in this batch; retract it in a later one",
                    p.event_id
                ),
            ));
        }
        for (i, corrective) in p.corrective_event_ids.iter().enumerate() {
            if !self.events.contains_key(corrective) {
                return Err(Refusal::new(
                    Rule::UnresolvedReference,
                    format!("/payload/correctiveEventIds/{i}"),
                    format!("no event {corrective} has been recorded"),
                ));
            }
        }
        Ok(())
    }

    fn require_new_resource(&self, id: &Iri, pointer: &str) -> Result<(), Refusal> {
        match self.resources.get(id) {
            Some(existing) => Err(Refusal::new(
                Rule::ResourceExists,
                pointer,
                format!("{id} is already recorded as {}", existing.kind.noun()),
            )),
            None => Ok(()),
        }
    }

    fn require_kind(
        &self,
        id: &Iri,
        pointer: &str,
        kinds: &[ResourceKind],
    ) -> Result<&Resource, Refusal> {
        let Some(resource) = self.resources.get(id) else {
            return Err(Refusal::new(
                Rule::UnresolvedReference,
                pointer,
                format!("nothing has been recorded as {id}"),
            ));
        };
        if !kinds.contains(&resource.kind) {
            let wanted: Vec<&str> = kinds.iter().map(|k| k.noun()).collect();
            return Err(Refusal::new(
                Rule::WrongKind,
                pointer,
                format!(
                    "{id} is {}, not {}",
                    resource.kind.noun(),
                    wanted.join(" or ")
                ),
            ));
        }
        Ok(resource)
    }

    fn require_unit(&self, id: &Iri, quantity: &Quantity, pointer: &str) -> Result<(), Refusal> {
        let held_unit = self.resources.get(id).and_then(|r| r.unit);
        let unit = quantity.measure().unit;
        match held_unit {
            Some(held) if held != unit => Err(Refusal::new(
                Rule::UnitMismatch,
                format!("{pointer}/quantity/unit"),
                format!(
                    "{id} is counted in {} ({:?}); {} ({:?}) does not convert into it",
                    held.code(),
                    held.dimension(),
                    quantity.unit.code(),
                    quantity.unit.dimension()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Checks that `by` holds enough of each consumed resource (summed per resource) and that the
    /// units match. `part_of` is the resource being repaired, which cannot be its own part.
    fn consume(
        &self,
        by: &OrganizationId,
        items: &[(String, &Iri, &Quantity)],
        part_of: Option<&Iri>,
    ) -> Result<(), Refusal> {
        let mut totals: Vec<(&Iri, f64)> = Vec::new();
        for (pointer, resource, quantity) in items {
            if part_of == Some(*resource) {
                return Err(Refusal::new(
                    Rule::SelfReference,
                    format!("{pointer}/resource"),
                    format!("{resource} cannot be a part of itself"),
                ));
            }
            self.require_kind(
                resource,
                &format!("{pointer}/resource"),
                &[ResourceKind::MaterialLot, ResourceKind::Batch],
            )?;
            self.require_unit(resource, quantity, pointer)?;
            let amount = quantity.measure().amount;
            let total = match totals.iter_mut().find(|(r, _)| r == resource) {
                Some((_, total)) => {
                    *total += amount;
                    *total
                }
                None => {
                    totals.push((resource, amount));
                    amount
                }
            };
            let key = ((*resource).clone(), by.clone());
            let Some(&held) = self.holdings.get(&key) else {
                return Err(Refusal::new(
                    Rule::Custody,
                    format!("{pointer}/resource"),
                    format!("{by} does not hold {resource}"),
                ));
            };
            if exceeds(total, held) {
                return Err(Refusal::new(
                    Rule::MassBalance,
                    format!("{pointer}/quantity"),
                    format!(
                        "{total} {unit} of {resource} needed but {by} holds {held} {unit}",
                        held = held.max(0.0),
                        unit = quantity.measure().unit.code()
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn exceeds(wanted: f64, available: f64) -> bool {
    wanted > available + TOLERANCE * available.abs().max(1.0)
}

fn put<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, value: Option<V>) -> Option<V> {
    match value {
        Some(value) => map.insert(key, value),
        None => map.remove(&key),
    }
}

fn restore<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, old: Option<V>) {
    put(map, key, old);
}
