//! The open metadata document of a resource: JSON-LD in the vocabulary of
//! `schemas/context/v1.jsonld` — schema.org for what it is, EPCIS 2.0 / CBV and ValueFlows for
//! what happened to it, PROV-O for the links up and down its lineage, PACT v3 field names for its
//! footprint — built from what the views know of it. Pure: the caller reads the store, this
//! arranges. `docs/open-data.md` describes the format.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::event::{Event, EventPayload, EventType};
use crate::ids::{Iri, Licence};
use crate::units::Unit;
use crate::views::derive::{Kind, Record};
use crate::views::footprint::Footprint;
use crate::views::index::Role;
use crate::views::{contribution, footprint};

/// Where the gateway serves the context, below its public base URL; the committed copy is
/// `schemas/context/v1.jsonld` ([`CONTEXT`]).
pub const CONTEXT_PATH: &str = "/context/v1.jsonld";

/// The JSON-LD context every document refers to.
pub const CONTEXT: &str = include_str!("../../../../schemas/context/v1.jsonld");

/// The version of this document format; a change of meaning gets a new context URL.
pub const FORMAT: &str = "stigmergy-open-metadata/1";

/// The URL of `resource`'s item page and document, below `base` (no trailing slash): `/id/`
/// and the IRI percent-encoded as one path segment.
pub fn item_url(base: &str, resource: &Iri) -> String {
    format!("{base}/id/{}", encode_segment(resource.as_str()))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode_segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len() * 3 / 2);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// PACT v3's `declaredUnitOfMeasurement` and `declaredUnitAmount` for figures given per one
/// `unit` (per one base unit: the kilogram for every mass unit, else the unit itself); `None`
/// for a unit PACT v3 has no declared unit for (the metre). The PACT endpoint maps the same way.
pub fn declared_unit(unit: Unit) -> Option<(&'static str, f64)> {
    match unit.base().0 {
        Unit::Kilogram | Unit::Gram | Unit::Milligram | Unit::Tonne | Unit::Pound => {
            Some(("kilogram", 1.0))
        }
        Unit::Piece | Unit::One | Unit::Set => Some(("piece", 1.0)),
        Unit::Litre => Some(("liter", 1.0)),
        Unit::Millilitre => Some(("liter", 0.001)),
        Unit::CubicMetre => Some(("cubic meter", 1.0)),
        Unit::SquareMetre => Some(("square meter", 1.0)),
        Unit::KilowattHour => Some(("kilowatt hour", 1.0)),
        Unit::Metre => None,
    }
}

/// A design as a document shows it: a batch's design, or an ancestor of a fork.
#[derive(Clone, Debug, PartialEq)]
pub struct DesignSummary {
    pub id: Iri,
    pub name: Option<String>,
    pub licence: Option<Licence>,
}

/// The current footprint version of a resource (`ViewStore::footprint_versions`).
#[derive(Clone, Debug, PartialEq)]
pub struct FootprintIssue {
    pub id: uuid::Uuid,
    pub version: u32,
    /// The ids of the versions it replaces, most recent first.
    pub preceding: Vec<uuid::Uuid>,
}

/// What a document is built from.
#[derive(Clone, Debug)]
pub struct Inputs<'a> {
    /// The public base URL of the resolver, without a trailing slash.
    pub base: &'a str,
    pub id: &'a Iri,
    pub record: &'a Record,
    /// Every event about it that is not retracted, with how it concerns it (the timeline).
    pub history: &'a [(Event, Role)],
    /// The resources it was made from, directly.
    pub upstream: &'a [(Iri, Option<String>)],
    /// The resources made from it, directly.
    pub downstream: &'a [(Iri, Option<String>)],
    /// Its design (a batch's design; a fork's parent), with its licence.
    pub design: Option<&'a DesignSummary>,
    /// For a design: its own licence.
    pub licence: Option<&'a Licence>,
    /// For a design or a batch: the fork ancestry, parent first.
    pub ancestry: &'a [DesignSummary],
    pub footprint: Option<&'a FootprintIssue>,
    /// Names of organisations and contributors, where known.
    pub names: &'a BTreeMap<Iri, String>,
    /// The views' position the document reflects.
    pub as_of: u64,
}

/// Whether `record` is a resource whose creation was retracted: no event creates it any more,
/// and a retraction concerns it.
pub fn retraction<'a>(record: &Record, history: &'a [(Event, Role)]) -> Option<&'a Event> {
    if record.kind != Kind::Unknown {
        return None;
    }
    history
        .iter()
        .find(|(event, role)| {
            *role == Role::Retracted && matches!(event.payload, EventPayload::EventRetracted(_))
        })
        .map(|(event, _)| event)
}

/// The JSON-LD document of a resource.
pub fn document(inputs: &Inputs<'_>) -> Value {
    let Inputs {
        base, id, record, ..
    } = *inputs;
    let mut document = Map::new();
    document.insert("@context".into(), json!(format!("{base}{CONTEXT_PATH}")));
    document.insert("id".into(), json!(id.as_str()));
    document.insert("type".into(), json!(types(record.kind)));
    document.insert("url".into(), json!(item_url(base, id)));
    document.insert("kind".into(), json!(record.kind.name()));
    if let Some(name) = &record.name {
        document.insert("name".into(), json!(name));
    }
    if let Some(maker) = &record.created_by {
        let key = if record.kind == Kind::Design {
            "creator"
        } else {
            "manufacturer"
        };
        document.insert(key.into(), agent(maker, inputs.names));
    }
    if let Some(quantity) = &record.quantity {
        document.insert(
            "quantity".into(),
            json!({ "hasNumericalValue": quantity.amount, "unitCode": quantity.unit.code() }),
        );
    }
    if let Some(licence) = inputs.licence {
        document.insert("license".into(), json!(licence_iri(licence)));
    }
    if let Some(design) = inputs.design {
        document.insert("isBasedOn".into(), design_node(base, design));
    }
    if !inputs.ancestry.is_empty() {
        document.insert(
            "forkAncestry".into(),
            Value::Array(
                inputs
                    .ancestry
                    .iter()
                    .map(|design| design_node(base, design))
                    .collect(),
            ),
        );
    }
    document.insert("upstream".into(), links(base, inputs.upstream));
    document.insert("downstream".into(), links(base, inputs.downstream));
    document.insert(
        "history".into(),
        Value::Array(
            inputs
                .history
                .iter()
                .map(|(event, role)| step(event, *role, inputs.names))
                .collect(),
        ),
    );
    if let Some(footprint) = &record.footprint {
        document.insert(
            "footprint".into(),
            footprint_node(base, footprint, inputs.footprint),
        );
        document.insert(
            "recycledContentShare".into(),
            json!(footprint.recycled_content),
        );
    }
    if let Some(attribution) = &record.attribution {
        let shares: Vec<Value> = attribution
            .ranked()
            .iter()
            .map(|(agent_id, share)| json!({ "agent": agent(agent_id, inputs.names), "share": share }))
            .collect();
        document.insert(
            "contributions".into(),
            json!({ "method": contribution::METHOD, "shares": shares }),
        );
    }
    if !record.anomalies.is_empty() {
        document.insert(
            "anomalies".into(),
            Value::Array(
                record
                    .anomalies
                    .iter()
                    .map(|anomaly| {
                        json!({
                            "anomalyKind": anomaly.kind.name(),
                            "description": anomaly.detail,
                            "events": anomaly.events.iter().map(|e| format!("urn:uuid:{e}")).collect::<Vec<_>>(),
                        })
                    })
                    .collect(),
            ),
        );
    }
    if let Some(retraction) = retraction(record, inputs.history)
        && let EventPayload::EventRetracted(payload) = &retraction.payload
    {
        document.insert(
            "retraction".into(),
            json!({
                "id": format!("urn:uuid:{}", retraction.event_id),
                "retractedEvent": format!("urn:uuid:{}", payload.event_id),
                "reason": payload.reason,
                "recordTime": retraction.recorded_at,
            }),
        );
    }
    document.insert("documentFormat".into(), json!(FORMAT));
    document.insert("asOf".into(), json!(inputs.as_of));
    let version = version_of(&document);
    document.insert("version".into(), json!(version));
    Value::Object(document)
}

/// The document's version: a digest of everything in it but `asOf` and the version itself, so
/// that it changes exactly when the document's content does.
fn version_of(document: &Map<String, Value>) -> String {
    let mut content = document.clone();
    content.remove("asOf");
    let bytes = serde_json::to_vec(&Value::Object(content)).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    format!("sha256:{}", hex::encode(&digest[..16]))
}

fn types(kind: Kind) -> Vec<&'static str> {
    match kind {
        Kind::Design => vec!["CreativeWork", "ResourceSpecification"],
        Kind::MaterialLot | Kind::Batch | Kind::RecoveredLot => {
            vec!["IndividualProduct", "EconomicResource"]
        }
        Kind::Shipment => vec!["ParcelDelivery"],
        Kind::Unknown => vec!["Thing"],
    }
}

/// An SPDX identifier as its SPDX licence-list IRI; an IRI as it is.
pub fn licence_iri(licence: &Licence) -> String {
    let text = licence.as_str();
    if text.contains("://") || text.starts_with("urn:") {
        text.to_owned()
    } else {
        format!("https://spdx.org/licenses/{text}")
    }
}

fn agent(id: &Iri, names: &BTreeMap<Iri, String>) -> Value {
    match names.get(id) {
        Some(name) => json!({ "id": id.as_str(), "name": name }),
        None => json!({ "id": id.as_str() }),
    }
}

fn design_node(base: &str, design: &DesignSummary) -> Value {
    let mut node = Map::new();
    node.insert("id".into(), json!(design.id.as_str()));
    node.insert("url".into(), json!(item_url(base, &design.id)));
    if let Some(name) = &design.name {
        node.insert("name".into(), json!(name));
    }
    if let Some(licence) = &design.licence {
        node.insert("license".into(), json!(licence_iri(licence)));
    }
    Value::Object(node)
}

fn links(base: &str, resources: &[(Iri, Option<String>)]) -> Value {
    Value::Array(
        resources
            .iter()
            .map(|(id, name)| {
                let mut node = Map::new();
                node.insert("id".into(), json!(id.as_str()));
                node.insert("url".into(), json!(item_url(base, id)));
                if let Some(name) = name {
                    node.insert("name".into(), json!(name));
                }
                Value::Object(node)
            })
            .collect(),
    )
}

/// EPCIS 2.0 event type and CBV business step of an event type, where it has them.
pub fn epcis(event_type: EventType) -> Option<(&'static str, &'static str)> {
    match event_type {
        EventType::MaterialSourced => Some(("ObjectEvent", "commissioning")),
        EventType::BatchFabricated => Some(("TransformationEvent", "creating_class_instance")),
        EventType::ShipmentDispatched => Some(("ObjectEvent", "shipping")),
        EventType::ShipmentReceived => Some(("ObjectEvent", "receiving")),
        EventType::BatchRepaired => Some(("ObjectEvent", "repairing")),
        EventType::BatchRecycled => Some(("TransformationEvent", "disassembling")),
        EventType::DesignPublished
        | EventType::DesignForked
        | EventType::ContributionRecorded
        | EventType::EventRetracted => None,
    }
}

/// The ValueFlows action by which an event concerns a resource in `role`.
pub fn valueflows_action(role: Role) -> Option<&'static str> {
    match role {
        Role::Created => Some("produce"),
        Role::Consumed => Some("consume"),
        Role::Repaired => Some("modify"),
        Role::Dispatched => Some("pickup"),
        Role::Received => Some("dropoff"),
        Role::ContributedTo => Some("work"),
        Role::Cited => Some("cite"),
        Role::Retracted => None,
    }
}

fn step(event: &Event, role: Role, names: &BTreeMap<Iri, String>) -> Value {
    let event_type = event.event_type();
    let mut node = Map::new();
    node.insert("id".into(), json!(format!("urn:uuid:{}", event.event_id)));
    let mut types = vec!["EconomicEvent"];
    if let Some((epcis_type, _)) = epcis(event_type) {
        types.insert(0, epcis_type);
    }
    node.insert("type".into(), json!(types));
    node.insert("eventType".into(), json!(event_type.name()));
    node.insert("role".into(), json!(role.name()));
    node.insert("eventTime".into(), json!(event.occurred_at));
    node.insert("recordTime".into(), json!(event.recorded_at));
    if let Some((_, step)) = epcis(event_type) {
        node.insert("bizStep".into(), json!(format!("cbv:BizStep-{step}")));
    }
    if let Some(action) = valueflows_action(role) {
        node.insert("action".into(), json!(format!("vf:{action}")));
    }
    node.insert("recordedBy".into(), agent(&event.recorded_by, names));
    Value::Object(node)
}

fn footprint_node(base: &str, figures: &Footprint, issue: Option<&FootprintIssue>) -> Value {
    let per_unit = &figures.per_unit;
    let mut node = Map::new();
    if let Some(issue) = issue {
        node.insert("id".into(), json!(format!("urn:uuid:{}", issue.id)));
        node.insert(
            "url".into(),
            json!(format!("{base}/pact/3/footprints/{}", issue.id)),
        );
        node.insert("footprintVersion".into(), json!(issue.version));
        node.insert(
            "precedingPfIds".into(),
            json!(
                issue
                    .preceding
                    .iter()
                    .map(uuid::Uuid::to_string)
                    .collect::<Vec<_>>()
            ),
        );
        node.insert("status".into(), json!("Active"));
    }
    node.insert("unitCode".into(), json!(figures.unit.code()));
    if let Some((measurement, amount)) = declared_unit(figures.unit) {
        node.insert("declaredUnitOfMeasurement".into(), json!(measurement));
        node.insert("declaredUnitAmount".into(), json!(amount));
    }
    node.insert("pcfExcludingBiogenicUptake".into(), json!(per_unit.total()));
    node.insert(
        "primaryDataShare".into(),
        json!(figures.primary_data_share * 100.0),
    );
    node.insert(
        "breakdown".into(),
        json!({
            "materials": per_unit.materials,
            "fabrication": per_unit.fabrication,
            "transport": per_unit.transport,
        }),
    );
    node.insert(
        "recycledContentShare".into(),
        json!(figures.recycled_content),
    );
    node.insert("method".into(), json!(footprint::METHOD));
    node.insert("methodVersion".into(), json!(figures.method_version));
    if !figures.missing_inputs.is_empty() {
        node.insert(
            "missingInputs".into(),
            json!(
                figures
                    .missing_inputs
                    .iter()
                    .map(Iri::as_str)
                    .collect::<Vec<_>>()
            ),
        );
    }
    Value::Object(node)
}
