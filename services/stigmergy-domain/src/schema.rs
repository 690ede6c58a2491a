//! JSON Schemas generated from the event types (draft 2020-12).
//!
//! One schema per event type describes what a client submits to capture; the envelope schema
//! describes a stored event as the log and `GET /v1/events/{eventId}` give it. The committed copies
//! under `schemas/` are compared with these by a test, and capture validates against exactly those
//! copies.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::event::{CURRENT_SCHEMA_VERSION, EventType};
use crate::ids::{EventId, Iri};
use crate::payload::*;
use crate::time::Timestamp;

/// Where the schemas are published; the `$id` of each starts with it.
pub const SCHEMA_BASE_URI: &str = "https://stigmergy.dev/schemas/";

/// The file, relative to `schemas/`, holding the schema of one event type.
pub fn submission_schema_path(event_type: EventType) -> String {
    format!("events/{}.schema.json", event_type.name())
}

/// The file, relative to `schemas/`, holding the envelope schema.
pub const ENVELOPE_SCHEMA_PATH: &str = "envelope.schema.json";

/// Every schema file with its path relative to `schemas/`, in a stable order.
pub fn schema_files() -> Vec<(String, Value)> {
    let mut files: Vec<(String, Value)> = EventType::ALL
        .iter()
        .map(|&event_type| {
            (
                submission_schema_path(event_type),
                submission_schema(event_type),
            )
        })
        .collect();
    files.push((ENVELOPE_SCHEMA_PATH.to_owned(), envelope_schema()));
    files
}

fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12().into_generator()
}

fn payload_ref(generator: &mut SchemaGenerator, event_type: EventType) -> Value {
    fn sub<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
        generator.subschema_for::<T>().to_value()
    }
    match event_type {
        EventType::DesignPublished => sub::<DesignPublished>(generator),
        EventType::DesignForked => sub::<DesignForked>(generator),
        EventType::ContributionRecorded => sub::<ContributionRecorded>(generator),
        EventType::MaterialSourced => sub::<MaterialSourced>(generator),
        EventType::BatchFabricated => sub::<BatchFabricated>(generator),
        EventType::ShipmentDispatched => sub::<ShipmentDispatched>(generator),
        EventType::ShipmentReceived => sub::<ShipmentReceived>(generator),
        EventType::BatchRepaired => sub::<BatchRepaired>(generator),
        EventType::BatchRecycled => sub::<BatchRecycled>(generator),
        EventType::EventRetracted => sub::<EventRetracted>(generator),
    }
}

fn described(mut reference: Value, description: &str) -> Value {
    if let Value::Object(map) = &mut reference {
        map.insert("description".into(), Value::String(description.into()));
    }
    reference
}

/// The schema of one event type as a client submits it to `POST /v1/events`.
pub fn submission_schema(event_type: EventType) -> Value {
    let mut generator = generator();
    let name = event_type.name();
    let properties = json!({
        "eventId": described(
            generator.subschema_for::<EventId>().to_value(),
            "Idempotency key; minted by the server (UUIDv7) when absent.",
        ),
        "type": { "const": name },
        "schemaVersion": {
            "description": "Version of this schema; defaults to the current one.",
            "const": CURRENT_SCHEMA_VERSION.get(),
        },
        "occurredAt": described(
            generator.subschema_for::<Timestamp>().to_value(),
            "When it happened.",
        ),
        "recordedBy": described(
            generator.subschema_for::<Iri>().to_value(),
            "Set by the server to the authenticated organisation; a different value is refused.",
        ),
        "subject": described(
            generator.subschema_for::<Iri>().to_value(),
            "Derived by the server from the payload; a different value is refused.",
        ),
        "payload": payload_ref(&mut generator, event_type),
    });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("{SCHEMA_BASE_URI}{}", submission_schema_path(event_type)),
        "title": name,
        "description": format!("A {name} event as submitted to POST /v1/events."),
        "type": "object",
        "additionalProperties": false,
        "required": ["type", "occurredAt", "payload"],
        "properties": properties,
        "$defs": definitions(generator),
    })
}

/// The schema of a stored event: the envelope with every server field, and the payload of its
/// type.
pub fn envelope_schema() -> Value {
    let mut generator = generator();
    let names: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
    let by_type: Vec<Value> = EventType::ALL
        .iter()
        .map(|&event_type| {
            json!({
                "properties": {
                    "type": { "const": event_type.name() },
                    "payload": payload_ref(&mut generator, event_type),
                }
            })
        })
        .collect();
    let properties = json!({
        "eventId": generator.subschema_for::<EventId>().to_value(),
        "type": { "enum": names },
        "schemaVersion": { "const": CURRENT_SCHEMA_VERSION.get() },
        "occurredAt": described(generator.subschema_for::<Timestamp>().to_value(), "When it happened."),
        "recordedAt": described(
            generator.subschema_for::<Timestamp>().to_value(),
            "When the log accepted it.",
        ),
        "recordedBy": described(
            generator.subschema_for::<Iri>().to_value(),
            "The organisation that recorded it.",
        ),
        "subject": described(
            generator.subschema_for::<Iri>().to_value(),
            "The thing it is about; the ordering and partitioning key.",
        ),
        "payload": { "type": "object" },
    });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("{SCHEMA_BASE_URI}{ENVELOPE_SCHEMA_PATH}"),
        "title": "Event",
        "description": "A recorded lifecycle event as stored in the log.",
        "type": "object",
        "additionalProperties": false,
        "required": [
            "eventId", "type", "schemaVersion", "occurredAt", "recordedAt", "recordedBy", "subject",
            "payload"
        ],
        "properties": properties,
        "oneOf": by_type,
        "$defs": definitions(generator),
    })
}

fn definitions(mut generator: SchemaGenerator) -> Value {
    let definitions: Map<String, Value> = generator.take_definitions(true);
    // A BTreeMap-backed map: the file is written in a stable order.
    Value::Object(definitions)
}
