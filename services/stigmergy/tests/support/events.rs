//! Builders of valid submitted events, one per event type, with the ids and amounts a test
//! chooses.

use serde_json::{Value, json};

pub const OCCURRED: &str = "2025-06-01T10:00:00Z";

pub fn id(name: &str) -> String {
    format!("https://test.example/{name}")
}

pub fn place() -> Value {
    json!({ "name": "Workshop", "country": "DE" })
}

fn event(event_type: &str, payload: Value) -> Value {
    json!({ "type": event_type, "occurredAt": OCCURRED, "payload": payload })
}

pub fn with_id(mut event: Value, event_id: &str) -> Value {
    event["eventId"] = json!(event_id);
    event
}

pub fn design(design: &str, licence: &str) -> Value {
    event(
        "DesignPublished",
        json!({ "designId": id(design), "name": "A design", "licence": licence, "version": "1" }),
    )
}

pub fn fork(design: &str, parent: &str, licence: &str) -> Value {
    event(
        "DesignForked",
        json!({ "designId": id(design), "parentDesignId": id(parent), "name": "A fork", "licence": licence, "version": "2", "upstreamShare": 0.25 }),
    )
}

pub fn contribution(target: &str) -> Value {
    event(
        "ContributionRecorded",
        json!({ "target": id(target), "contributor": { "id": id("people/ana") }, "kind": "design", "effort": { "amount": 5, "unit": "hours" } }),
    )
}

pub fn material(lot: &str, amount: f64, unit: &str) -> Value {
    event(
        "MaterialSourced",
        json!({
            "lotId": id(lot), "material": "PLA", "quantity": { "amount": amount, "unit": unit },
            "origin": place(), "supplier": { "id": id("supplier") },
            "kgCo2ePerUnit": 2.0, "dataQuality": "primary", "recycledContent": 0.0
        }),
    )
}

pub fn batch(batch: &str, design: &str, inputs: &[(&str, f64, &str)]) -> Value {
    let inputs: Vec<Value> = inputs
        .iter()
        .map(|(lot, amount, unit)| json!({ "resource": id(lot), "quantity": { "amount": amount, "unit": unit } }))
        .collect();
    event(
        "BatchFabricated",
        json!({
            "batchId": id(batch), "designId": id(design), "quantity": { "amount": 10, "unit": "H87" },
            "facility": place(), "inputs": inputs, "energy": { "amount": 12, "unit": "KWH" }
        }),
    )
}

pub fn shipment(shipment: &str, consignee: &str, lines: &[(&str, f64, &str)]) -> Value {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(resource, amount, unit)| json!({ "resource": id(resource), "quantity": { "amount": amount, "unit": unit } }))
        .collect();
    event(
        "ShipmentDispatched",
        json!({
            "shipmentId": id(shipment), "lines": lines, "from": place(), "to": place(),
            "consignee": consignee, "transportMode": "road", "distanceKm": 120
        }),
    )
}

pub fn receipt(shipment: &str, lines: &[(&str, f64, &str)]) -> Value {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(resource, amount, unit)| json!({ "resource": id(resource), "quantity": { "amount": amount, "unit": unit } }))
        .collect();
    event(
        "ShipmentReceived",
        json!({ "shipmentId": id(shipment), "lines": lines, "location": place() }),
    )
}

pub fn repair(resource: &str, part: &str, amount: f64) -> Value {
    event(
        "BatchRepaired",
        json!({ "resource": id(resource), "parts": [ { "resource": id(part), "quantity": { "amount": amount, "unit": "KGM" } } ] }),
    )
}

pub fn recycling(resource: &str, amount: f64, unit: &str, outputs: &[(&str, f64)]) -> Value {
    let outputs: Vec<Value> = outputs
        .iter()
        .map(|(lot, kg)| json!({ "lotId": id(lot), "material": "Flakes", "quantity": { "amount": kg, "unit": "KGM" } }))
        .collect();
    event(
        "BatchRecycled",
        json!({ "resource": id(resource), "quantity": { "amount": amount, "unit": unit }, "facility": place(), "outputLots": outputs }),
    )
}

pub fn retraction(event_id: &str) -> Value {
    event(
        "EventRetracted",
        json!({ "eventId": event_id, "reason": "Recorded by mistake" }),
    )
}
