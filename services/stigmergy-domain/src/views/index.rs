//! The index rows of one event: which resources it touches, in which role, and what flowed into
//! what. The read store keeps these rows next to the event; lineage walks the flows, timelines
//! and journeys read the touches.

use crate::event::{Event, EventPayload, LogPosition};
use crate::ids::{EventId, Iri, OrganizationId};
use crate::units::{Measure, Quantity};

/// How an event concerns a resource (or a shipment).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The event brought it into being (published, forked, sourced, fabricated, recovered).
    Created,
    /// It was consumed as an input or a part, or taken apart by recycling.
    Consumed,
    /// It was repaired.
    Repaired,
    /// It was dispatched in a shipment (the shipment itself has this role too).
    Dispatched,
    /// It was received from a shipment (the shipment itself has this role too).
    Received,
    /// Someone contributed to it.
    ContributedTo,
    /// It is the parent design of a fork, or the design a batch was made from.
    Cited,
    /// The event retracts an event about it.
    Retracted,
}

impl Role {
    pub const ALL: &'static [Role] = &[
        Self::Created,
        Self::Consumed,
        Self::Repaired,
        Self::Dispatched,
        Self::Received,
        Self::ContributedTo,
        Self::Cited,
        Self::Retracted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Consumed => "consumed",
            Self::Repaired => "repaired",
            Self::Dispatched => "dispatched",
            Self::Received => "received",
            Self::ContributedTo => "contributedTo",
            Self::Cited => "cited",
            Self::Retracted => "retracted",
        }
    }
}

/// An event touching a resource: one row of the resource's timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Touch {
    pub resource: Iri,
    pub role: Role,
}

/// What kind of link a flow is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlowKind {
    /// A material input of a fabricated batch.
    Input,
    /// The design a batch was made from.
    Design,
    /// The parent of a forked design.
    Fork,
    /// A replacement part consumed by a repair.
    Part,
    /// A resource taken apart into a recovered lot.
    Recycled,
}

impl FlowKind {
    pub const ALL: &'static [FlowKind] = &[
        Self::Input,
        Self::Design,
        Self::Fork,
        Self::Part,
        Self::Recycled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Design => "design",
            Self::Fork => "fork",
            Self::Part => "part",
            Self::Recycled => "recycled",
        }
    }
}

/// `from` flowed into `to` (upstream → downstream), with the quantity that flowed when there is
/// one.
#[derive(Clone, Debug, PartialEq)]
pub struct Flow {
    pub from: Iri,
    pub to: Iri,
    pub kind: FlowKind,
    pub quantity: Option<Quantity>,
}

/// An amount of a resource coming into or going out of an organisation's hands, in the base unit
/// of its quantity: what mass balance and custody are checked on.
#[derive(Clone, Debug, PartialEq)]
pub struct Movement {
    pub resource: Iri,
    pub organization: OrganizationId,
    /// In (created, received) or out (consumed, dispatched, recycled).
    pub inflow: bool,
    pub measure: Measure,
}

/// A resource dispatched by `shipper` to `consignee`: what delivery transport is computed over.
#[derive(Clone, Debug, PartialEq)]
pub struct Consignment {
    pub resource: Iri,
    pub shipper: OrganizationId,
    pub consignee: OrganizationId,
}

/// Everything one event adds to the index, keyed by the event's id and position.
#[derive(Clone, Debug, PartialEq)]
pub struct EventIndex {
    pub event_id: EventId,
    pub position: LogPosition,
    pub touches: Vec<Touch>,
    pub flows: Vec<Flow>,
    pub movements: Vec<Movement>,
    pub consignments: Vec<Consignment>,
    /// Whether the store has just stored the event for the first time, and counts it (it was
    /// not retracted before it arrived): what is remembered of the resources it moves can then
    /// take in its movements instead of being read again. `false` unless the store says so.
    pub counted: bool,
}

impl EventIndex {
    /// The index rows of an event. A retraction touches its own subject (the subject of the
    /// event it retracts), so it shows on that resource's timeline.
    pub fn of(event: &Event, position: LogPosition) -> Self {
        let mut index = Self {
            event_id: event.event_id,
            position,
            touches: Vec::new(),
            flows: Vec::new(),
            movements: Vec::new(),
            consignments: Vec::new(),
            counted: false,
        };
        let mut touch = |resource: &Iri, role| {
            let row = Touch {
                resource: resource.clone(),
                role,
            };
            if !index.touches.contains(&row) {
                index.touches.push(row);
            }
        };
        let mut flows = Vec::new();
        let mut flow = |from: &Iri, to: &Iri, kind, quantity: Option<Quantity>| {
            flows.push(Flow {
                from: from.clone(),
                to: to.clone(),
                kind,
                quantity,
            });
        };
        let mut movements = Vec::new();
        let by = &event.recorded_by;
        let mut movement =
            |resource: &Iri, organization: &OrganizationId, inflow, quantity: &Quantity| {
                movements.push(Movement {
                    resource: resource.clone(),
                    organization: organization.clone(),
                    inflow,
                    measure: quantity.measure(),
                });
            };
        match &event.payload {
            EventPayload::DesignPublished(p) => touch(&p.design_id, Role::Created),
            EventPayload::DesignForked(p) => {
                touch(&p.design_id, Role::Created);
                touch(&p.parent_design_id, Role::Cited);
                flow(&p.parent_design_id, &p.design_id, FlowKind::Fork, None);
            }
            EventPayload::ContributionRecorded(p) => touch(&p.target, Role::ContributedTo),
            EventPayload::MaterialSourced(p) => {
                touch(&p.lot_id, Role::Created);
                movement(&p.lot_id, by, true, &p.quantity);
            }
            EventPayload::BatchFabricated(p) => {
                touch(&p.batch_id, Role::Created);
                movement(&p.batch_id, by, true, &p.quantity);
                touch(&p.design_id, Role::Cited);
                flow(&p.design_id, &p.batch_id, FlowKind::Design, None);
                for input in p.inputs.iter() {
                    touch(&input.resource, Role::Consumed);
                    movement(&input.resource, by, false, &input.quantity);
                    flow(
                        &input.resource,
                        &p.batch_id,
                        FlowKind::Input,
                        Some(input.quantity),
                    );
                }
            }
            EventPayload::ShipmentDispatched(p) => {
                touch(&p.shipment_id, Role::Dispatched);
                for line in p.lines.iter() {
                    touch(&line.resource, Role::Dispatched);
                    movement(&line.resource, by, false, &line.quantity);
                    let consignment = Consignment {
                        resource: line.resource.clone(),
                        shipper: by.clone(),
                        consignee: p.consignee.clone(),
                    };
                    if !index.consignments.contains(&consignment) {
                        index.consignments.push(consignment);
                    }
                }
            }
            EventPayload::ShipmentReceived(p) => {
                touch(&p.shipment_id, Role::Received);
                for line in p.lines.iter() {
                    touch(&line.resource, Role::Received);
                    movement(&line.resource, by, true, &line.quantity);
                }
            }
            EventPayload::BatchRepaired(p) => {
                touch(&p.resource, Role::Repaired);
                for part in p.parts.iter() {
                    touch(&part.resource, Role::Consumed);
                    movement(&part.resource, by, false, &part.quantity);
                    flow(
                        &part.resource,
                        &p.resource,
                        FlowKind::Part,
                        Some(part.quantity),
                    );
                }
            }
            EventPayload::BatchRecycled(p) => {
                touch(&p.resource, Role::Consumed);
                movement(&p.resource, by, false, &p.quantity);
                for output in p.output_lots.iter() {
                    touch(&output.lot_id, Role::Created);
                    movement(&output.lot_id, by, true, &output.quantity);
                    flow(
                        &p.resource,
                        &output.lot_id,
                        FlowKind::Recycled,
                        Some(output.quantity),
                    );
                }
            }
            EventPayload::EventRetracted(_) => touch(&event.subject, Role::Retracted),
        }
        index.flows = flows;
        index.movements = movements;
        index
    }

    /// The event a retraction retracts, if this event is one.
    pub fn retracts(event: &Event) -> Option<EventId> {
        match &event.payload {
            EventPayload::EventRetracted(p) => Some(p.event_id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const ORG: &str = "urn:uuid:0191e1a4-7f43-7c4a-9d4e-1f2a3b4c5d6e";

    fn iri(name: &str) -> String {
        format!("https://test.example/{name}")
    }

    /// The only caller of `EventIndex::of`: the event of `event_type` with `payload` (ids written
    /// as short names) touches and links exactly what is expected.
    fn check(
        event_type: &str,
        subject: &str,
        payload: Value,
        touches: &[(&str, Role)],
        flows: &[(&str, &str, FlowKind)],
    ) {
        let envelope = json!({
            "eventId": "0191e1a4-7f43-7c4a-9d4e-000000000001",
            "type": event_type,
            "schemaVersion": 1,
            "occurredAt": "2025-06-01T10:00:00Z",
            "recordedAt": "2025-06-01T10:00:01Z",
            "recordedBy": ORG,
            "subject": iri(subject),
            "payload": payload,
        });
        let event: Event = serde_json::from_value(envelope).expect("a valid event");
        let index = EventIndex::of(&event, LogPosition(7));
        let got_touches: Vec<(String, Role)> = index
            .touches
            .iter()
            .map(|t| (t.resource.to_string(), t.role))
            .collect();
        let want_touches: Vec<(String, Role)> =
            touches.iter().map(|(r, role)| (iri(r), *role)).collect();
        assert_eq!(got_touches, want_touches, "{event_type} touches");
        let got_flows: Vec<(String, String, FlowKind)> = index
            .flows
            .iter()
            .map(|f| (f.from.to_string(), f.to.to_string(), f.kind))
            .collect();
        let want_flows: Vec<(String, String, FlowKind)> = flows
            .iter()
            .map(|(from, to, kind)| (iri(from), iri(to), *kind))
            .collect();
        assert_eq!(got_flows, want_flows, "{event_type} flows");
        assert_eq!(index.position, LogPosition(7));
    }

    fn place() -> Value {
        json!({ "name": "Workshop", "country": "DE" })
    }

    fn q(amount: f64, unit: &str) -> Value {
        json!({ "amount": amount, "unit": unit })
    }

    #[test]
    fn a_fabricated_batch_links_its_design_and_inputs() {
        check(
            "BatchFabricated",
            "batch",
            json!({
                "batchId": iri("batch"), "designId": iri("design"), "quantity": q(10.0, "H87"), "facility": place(),
                "inputs": [ { "resource": iri("oak"), "quantity": q(3.0, "KGM") }, { "resource": iri("glue"), "quantity": q(1.0, "LTR") } ]
            }),
            &[
                ("batch", Role::Created),
                ("design", Role::Cited),
                ("oak", Role::Consumed),
                ("glue", Role::Consumed),
            ],
            &[
                ("design", "batch", FlowKind::Design),
                ("oak", "batch", FlowKind::Input),
                ("glue", "batch", FlowKind::Input),
            ],
        );
    }

    #[test]
    fn a_fork_links_its_parent() {
        check(
            "DesignForked",
            "fork",
            json!({ "designId": iri("fork"), "parentDesignId": iri("design"), "name": "F", "licence": "MIT", "version": "2", "upstreamShare": 0.5 }),
            &[("fork", Role::Created), ("design", Role::Cited)],
            &[("design", "fork", FlowKind::Fork)],
        );
    }

    #[test]
    fn recycling_links_the_resource_to_every_recovered_lot() {
        check(
            "BatchRecycled",
            "batch",
            json!({
                "resource": iri("batch"), "quantity": q(4.0, "H87"), "facility": place(),
                "outputLots": [ { "lotId": iri("flakes"), "material": "PLA", "quantity": q(2.0, "KGM") }, { "lotId": iri("chips"), "material": "Oak", "quantity": q(5.0, "KGM") } ]
            }),
            &[
                ("batch", Role::Consumed),
                ("flakes", Role::Created),
                ("chips", Role::Created),
            ],
            &[
                ("batch", "flakes", FlowKind::Recycled),
                ("batch", "chips", FlowKind::Recycled),
            ],
        );
    }

    #[test]
    fn a_repair_links_its_parts_and_shipments_touch_what_they_carry() {
        check(
            "BatchRepaired",
            "batch",
            json!({ "resource": iri("batch"), "parts": [ { "resource": iri("hinge"), "quantity": q(2.0, "H87") } ] }),
            &[("batch", Role::Repaired), ("hinge", Role::Consumed)],
            &[("hinge", "batch", FlowKind::Part)],
        );
        check(
            "ShipmentDispatched",
            "ship",
            json!({
                "shipmentId": iri("ship"), "lines": [ { "resource": iri("batch"), "quantity": q(2.0, "H87") }, { "resource": iri("batch"), "quantity": q(1.0, "H87") } ],
                "from": place(), "to": place(), "consignee": ORG, "transportMode": "rail"
            }),
            &[("ship", Role::Dispatched), ("batch", Role::Dispatched)],
            &[],
        );
        check(
            "ShipmentReceived",
            "ship",
            json!({ "shipmentId": iri("ship"), "lines": [ { "resource": iri("batch"), "quantity": q(3.0, "H87") } ], "location": place() }),
            &[("ship", Role::Received), ("batch", Role::Received)],
            &[],
        );
    }

    #[test]
    fn sources_publications_contributions_and_retractions_touch_their_subject() {
        check(
            "DesignPublished",
            "design",
            json!({ "designId": iri("design"), "name": "D", "licence": "MIT", "version": "1" }),
            &[("design", Role::Created)],
            &[],
        );
        check(
            "ContributionRecorded",
            "design",
            json!({ "target": iri("design"), "contributor": { "id": iri("ana") }, "kind": "design", "effort": { "amount": 3, "unit": "hours" } }),
            &[("design", Role::ContributedTo)],
            &[],
        );
        check(
            "EventRetracted",
            "lot",
            json!({ "eventId": "0191e1a4-7f43-7c4a-9d4e-000000000002", "reason": "typo" }),
            &[("lot", Role::Retracted)],
            &[],
        );
    }
}
