//! The demo scenario, loaded through the public HTTP API exactly as a client would load it: an
//! open stool design published and forked with contributions, material lots (one recycled), a
//! batch fabricated from them, shipped and received, repaired, partly recycled into a new lot
//! that travels back and feeds a second batch.
//!
//! Every event has a fixed `eventId`, so loading the demo again adds nothing (each event is
//! answered as a duplicate). Organisations are found by name; when they exist already a fresh API
//! key is issued for them (keys are stored hashed and cannot be shown again).

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A demo organisation with the API key issued for this run.
#[derive(Debug, Clone)]
pub struct DemoOrganization {
    pub role: &'static str,
    pub name: &'static str,
    pub id: String,
    pub api_key: String,
}

/// What loading the demo did.
#[derive(Debug)]
pub struct DemoReport {
    pub organizations: Vec<DemoOrganization>,
    pub recorded: usize,
    pub duplicates: usize,
}

const ORGANIZATIONS: &[(&str, &str)] = &[
    ("commons", "Open Stool Collective"),
    ("fabricator", "Valldaura Microfactory"),
    ("buyer", "Kantoor Groen"),
    ("recycler", "Precious Plastic Eindhoven"),
];

/// The namespace of the demo's deterministic event ids (UUIDv5).
const DEMO_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x5f1d_6e2a_8c4b_4e55_9a7d_2b3c_4d5e_6f70);

fn event_id(name: &str) -> String {
    uuid::Uuid::new_v5(&DEMO_NAMESPACE, name.as_bytes())
        .hyphenated()
        .to_string()
}

fn event(name: &str, event_type: &str, occurred_at: &str, payload: Value) -> Value {
    json!({ "eventId": event_id(name), "type": event_type, "occurredAt": occurred_at, "payload": payload })
}

const STOOL: &str = "https://openstool.example/designs/open-stool";
const STOOL_RPLA: &str = "https://valldaura.example/designs/open-stool-rpla";
const PLYWOOD: &str = "https://valldaura.example/lots/birch-plywood-2025-014";
const RPLA: &str = "https://valldaura.example/lots/rpla-filament-2025-007";
const BATCH_1: &str = "https://valldaura.example/batches/open-stool-2025-001";
const BATCH_2: &str = "https://valldaura.example/batches/open-stool-2025-002";
const FLAKES: &str = "https://preciousplastic-ehv.example/lots/pla-flakes-2025-031";
const CHIPS: &str = "https://preciousplastic-ehv.example/lots/birch-chips-2025-032";

fn place(name: &str, country: &str) -> Value {
    json!({ "name": name, "country": country })
}

/// The scenario, as (role of the recording organisation, events) steps in order; `ids` maps roles
/// to organisation ids.
fn scenario(id: impl Fn(&str) -> String) -> Vec<(&'static str, Vec<Value>)> {
    let valldaura = place("Valldaura Microfactory, Cerdanyola", "ES");
    let kantoor = place("Kantoor Groen, Utrecht", "NL");
    let eindhoven = place("Precious Plastic workspace, Eindhoven", "NL");
    vec![
        (
            "commons",
            vec![
                event(
                    "design",
                    "DesignPublished",
                    "2025-01-10T09:00:00Z",
                    json!({
                        "designId": STOOL, "name": "Open Stool", "licence": "CERN-OHL-S-2.0",
                        "sourceUri": "https://openstool.example/src/open-stool", "version": "1.0.0",
                        "description": "A flat-pack stool of birch plywood with 3D-printed joints."
                    }),
                ),
                event(
                    "contribution-ana",
                    "ContributionRecorded",
                    "2025-01-11T10:00:00Z",
                    json!({
                        "target": STOOL, "contributor": { "id": "https://openstool.example/people/ana", "name": "Ana Ruiz" },
                        "kind": "design", "effort": { "amount": 60, "unit": "hours" },
                        "evidence": "https://openstool.example/src/open-stool/commits/1a2b3c"
                    }),
                ),
                event(
                    "contribution-ben",
                    "ContributionRecorded",
                    "2025-01-12T10:00:00Z",
                    json!({
                        "target": STOOL, "contributor": { "id": "https://openstool.example/people/ben", "name": "Ben Okafor" },
                        "kind": "documentation", "effort": { "amount": 20, "unit": "hours" }
                    }),
                ),
            ],
        ),
        (
            "fabricator",
            vec![
                event(
                    "fork",
                    "DesignForked",
                    "2025-02-01T09:00:00Z",
                    json!({
                        "designId": STOOL_RPLA, "parentDesignId": STOOL, "name": "Open Stool, recycled-PLA joints",
                        "licence": "CERN-OHL-S-2.0", "version": "1.1.0", "upstreamShare": 0.4,
                        "sourceUri": "https://valldaura.example/src/open-stool-rpla"
                    }),
                ),
                event(
                    "contribution-carla",
                    "ContributionRecorded",
                    "2025-02-02T10:00:00Z",
                    json!({
                        "target": STOOL_RPLA, "contributor": { "id": "https://valldaura.example/people/carla", "name": "Carla Puig" },
                        "kind": "engineering", "effort": { "amount": 30, "unit": "hours" }
                    }),
                ),
                event(
                    "plywood",
                    "MaterialSourced",
                    "2025-02-10T08:00:00Z",
                    json!({
                        "lotId": PLYWOOD, "material": "Birch plywood 12 mm", "quantity": { "amount": 120, "unit": "KGM" },
                        "origin": place("Koskisen mill, Järvelä", "FI"),
                        "supplier": { "id": "https://koskisen.example", "name": "Koskisen" },
                        "kgCo2ePerUnit": 0.68, "dataQuality": "secondary", "recycledContent": 0.0
                    }),
                ),
                event(
                    "rpla",
                    "MaterialSourced",
                    "2025-02-10T08:30:00Z",
                    json!({
                        "lotId": RPLA, "material": "Recycled PLA filament", "quantity": { "amount": 40, "unit": "KGM" },
                        "origin": place("Filament recycler, Barcelona", "ES"),
                        "supplier": { "id": "https://rfil.example", "name": "rFil" },
                        "kgCo2ePerUnit": 1.1, "dataQuality": "primary", "recycledContent": 1.0
                    }),
                ),
                event(
                    "batch-1",
                    "BatchFabricated",
                    "2025-03-01T16:00:00Z",
                    json!({
                        "batchId": BATCH_1, "designId": STOOL_RPLA, "quantity": { "amount": 20, "unit": "H87" },
                        "facility": valldaura.clone(),
                        "inputs": [
                            { "resource": PLYWOOD, "quantity": { "amount": 60, "unit": "KGM" } },
                            { "resource": RPLA, "quantity": { "amount": 12000, "unit": "GRM" } }
                        ],
                        "energy": { "amount": 85, "unit": "KWH" },
                        "directEmissionsKgCo2e": 1.5,
                        "labour": [
                            { "agent": "https://valldaura.example/people/carla", "hours": 24 },
                            { "agent": "https://valldaura.example/people/dani", "hours": 16 }
                        ]
                    }),
                ),
                event(
                    "shipment-1",
                    "ShipmentDispatched",
                    "2025-03-05T07:00:00Z",
                    json!({
                        "shipmentId": "https://valldaura.example/shipments/2025-0042",
                        "lines": [ { "resource": BATCH_1, "quantity": { "amount": 12, "unit": "H87" }, "mass": { "amount": 43.2, "unit": "KGM" } } ],
                        "from": valldaura.clone(), "to": kantoor.clone(), "consignee": id("buyer"),
                        "transportMode": "road", "distanceKm": 1650
                    }),
                ),
            ],
        ),
        (
            "buyer",
            vec![event(
                "receipt-1",
                "ShipmentReceived",
                "2025-03-08T11:00:00Z",
                json!({
                    "shipmentId": "https://valldaura.example/shipments/2025-0042",
                    "lines": [ { "resource": BATCH_1, "quantity": { "amount": 12, "unit": "H87" } } ],
                    "location": kantoor.clone()
                }),
            )],
        ),
        (
            "fabricator",
            vec![event(
                "repair-1",
                "BatchRepaired",
                "2025-06-15T14:00:00Z",
                json!({
                    "resource": BATCH_1,
                    "parts": [ { "resource": RPLA, "quantity": { "amount": 0.5, "unit": "KGM" } } ],
                    "energy": { "amount": 2, "unit": "KWH" },
                    "description": "Reprinted two cracked joints on stools kept in the showroom."
                }),
            )],
        ),
        (
            "buyer",
            vec![event(
                "shipment-2",
                "ShipmentDispatched",
                "2025-09-01T09:00:00Z",
                json!({
                    "shipmentId": "https://kantoorgroen.example/shipments/eol-2025-3",
                    "lines": [ { "resource": BATCH_1, "quantity": { "amount": 4, "unit": "H87" }, "mass": { "amount": 14.4, "unit": "KGM" } } ],
                    "from": kantoor.clone(), "to": eindhoven.clone(), "consignee": id("recycler"),
                    "transportMode": "bicycle", "distanceKm": 6
                }),
            )],
        ),
        (
            "recycler",
            vec![
                event(
                    "receipt-2",
                    "ShipmentReceived",
                    "2025-09-02T10:00:00Z",
                    json!({
                        "shipmentId": "https://kantoorgroen.example/shipments/eol-2025-3",
                        "lines": [ { "resource": BATCH_1, "quantity": { "amount": 4, "unit": "H87" } } ],
                        "location": eindhoven.clone()
                    }),
                ),
                event(
                    "recycling-1",
                    "BatchRecycled",
                    "2025-09-10T15:00:00Z",
                    json!({
                        "resource": BATCH_1, "quantity": { "amount": 4, "unit": "H87" }, "facility": eindhoven.clone(),
                        "outputLots": [
                            { "lotId": FLAKES, "material": "PLA flakes", "quantity": { "amount": 2.2, "unit": "KGM" } },
                            { "lotId": CHIPS, "material": "Birch chips", "quantity": { "amount": 11.5, "unit": "KGM" } }
                        ],
                        "energy": { "amount": 3.5, "unit": "KWH" }
                    }),
                ),
                event(
                    "shipment-3",
                    "ShipmentDispatched",
                    "2025-09-20T08:00:00Z",
                    json!({
                        "shipmentId": "https://preciousplastic-ehv.example/shipments/2025-118",
                        "lines": [ { "resource": FLAKES, "quantity": { "amount": 2.2, "unit": "KGM" } } ],
                        "from": eindhoven.clone(), "to": valldaura.clone(), "consignee": id("fabricator"),
                        "transportMode": "rail", "distanceKm": 1500
                    }),
                ),
            ],
        ),
        (
            "fabricator",
            vec![
                event(
                    "receipt-3",
                    "ShipmentReceived",
                    "2025-09-25T12:00:00Z",
                    json!({
                        "shipmentId": "https://preciousplastic-ehv.example/shipments/2025-118",
                        "lines": [ { "resource": FLAKES, "quantity": { "amount": 2.2, "unit": "KGM" } } ],
                        "location": valldaura.clone()
                    }),
                ),
                event(
                    "batch-2",
                    "BatchFabricated",
                    "2025-10-01T16:00:00Z",
                    json!({
                        "batchId": BATCH_2, "designId": STOOL_RPLA, "quantity": { "amount": 5, "unit": "H87" },
                        "facility": valldaura,
                        "inputs": [
                            { "resource": PLYWOOD, "quantity": { "amount": 15, "unit": "KGM" } },
                            { "resource": FLAKES, "quantity": { "amount": 2.2, "unit": "KGM" } }
                        ],
                        "energy": { "amount": 22, "unit": "KWH" },
                        "labour": [ { "agent": "https://valldaura.example/people/dani", "hours": 10 } ]
                    }),
                ),
            ],
        ),
    ]
}

async fn expect_json(
    response: reqwest::Response,
    what: &str,
) -> anyhow::Result<(StatusCode, Value)> {
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .with_context(|| format!("{what}: unreadable answer"))?;
    Ok((status, body))
}

async fn organization(
    client: &reqwest::Client,
    base: &str,
    operator: &str,
    role: &'static str,
    name: &'static str,
) -> anyhow::Result<DemoOrganization> {
    let (status, listing) = expect_json(
        client
            .get(format!("{base}/v1/organizations"))
            .bearer_auth(operator)
            .send()
            .await?,
        "listing organisations",
    )
    .await?;
    if !status.is_success() {
        bail!("listing organisations answered {status}: {listing}");
    }
    let existing = listing["organizations"]
        .as_array()
        .and_then(|all| all.iter().find(|o| o["name"] == name))
        .and_then(|o| o["id"].as_str())
        .map(str::to_owned);
    let (id, api_key) = match existing {
        Some(id) => {
            let url = format!("{base}/v1/organizations/{id}/keys");
            let (status, body) = expect_json(
                client.post(url).bearer_auth(operator).send().await?,
                "issuing a key",
            )
            .await?;
            if status != StatusCode::CREATED {
                bail!("issuing a key for {name} answered {status}: {body}");
            }
            (id, body["apiKey"].as_str().unwrap_or_default().to_owned())
        }
        None => {
            let url = format!("{base}/v1/organizations");
            let request = client
                .post(url)
                .bearer_auth(operator)
                .json(&json!({ "name": name }));
            let (status, body) =
                expect_json(request.send().await?, "creating an organisation").await?;
            if status != StatusCode::CREATED {
                bail!("creating {name} answered {status}: {body}");
            }
            (
                body["id"].as_str().unwrap_or_default().to_owned(),
                body["apiKey"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    Ok(DemoOrganization {
        role,
        name,
        id,
        api_key,
    })
}

/// Loads the demo into the platform at `base` (e.g. `http://127.0.0.1:8080`).
pub async fn load(base: &str, operator_token: &str) -> anyhow::Result<DemoReport> {
    let client = reqwest::Client::new();
    let mut organizations = Vec::new();
    for &(role, name) in ORGANIZATIONS {
        organizations.push(organization(&client, base, operator_token, role, name).await?);
    }
    let find = |role: &str| organizations.iter().find(|o| o.role == role);
    let mut recorded = 0;
    let mut duplicates = 0;
    for (role, events) in scenario(|role| find(role).map(|o| o.id.clone()).unwrap_or_default()) {
        let Some(recorder) = find(role) else {
            bail!("no demo organisation plays {role}")
        };
        let request = client
            .post(format!("{base}/v1/events"))
            .bearer_auth(&recorder.api_key)
            .json(&events);
        let (status, body) = expect_json(request.send().await?, "recording demo events").await?;
        if !status.is_success() {
            bail!(
                "recording the demo events of {} answered {status}: {body}",
                recorder.name
            );
        }
        for receipt in body["events"].as_array().into_iter().flatten() {
            if receipt["duplicate"] == Value::Bool(true) {
                duplicates += 1;
            } else {
                recorded += 1;
            }
        }
    }
    Ok(DemoReport {
        organizations,
        recorded,
        duplicates,
    })
}

/// The demo's resource ids, for the tour printed after loading.
pub const DEMO_BATCH: &str = BATCH_1;
/// The demo's fixed id of the first batch's fabrication event.
pub fn demo_batch_event_id() -> String {
    event_id("batch-1")
}
