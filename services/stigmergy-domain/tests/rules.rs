//! Given/when/then tests of the capture rules ([`CaptureState`]).
//!
//! Every test states the events already recorded (given), the event that arrives (when) and what
//! capture must answer (then): `new`, `duplicate`, or `refused <rule slug> at <JSON pointer>`.
//! Only [`check`] calls the domain API, so a change of that API is fixed in one place; the rest
//! of the file is data.

use std::collections::HashSet;

use serde_json::{Value, json};
use stigmergy_domain::rules::{
    CaptureState, Directory, Outcome, Refusal, RetractedEvents, Rule, Seal,
};
use stigmergy_domain::{
    Event, EventId, EventPayload, EventType, LogPosition, OrganizationId, Submission, Timestamp,
};

// Organisations. The directory knows all but `UNREGISTERED`.
const WORKSHOP: &str = "https://workshop.example.org";
const REPAIR_CAFE: &str = "urn:uuid:0195d1c0-5a1e-7c4a-9d4e-00000000c0fe";
const STRANGER: &str = "https://stranger.example.org/org";
const UNREGISTERED: &str = "https://nobody.example.org";

// Resources.
const STOOL: &str = "https://designs.example.org/stool";
const TALL_STOOL: &str = "https://designs.example.org/stool-tall";
const OAK: &str = "urn:epc:class:lgtin:4012345.012345.OAK42";
const STEEL: &str = "urn:epc:class:lgtin:4012345.012346.ST7";
const SCREWS: &str = "urn:epc:class:lgtin:4012345.099999.SCREWS";
const STOOLS: &str = "https://id.gs1.org/01/09520123456788/10/B2026-05";
const CHIPS: &str = "urn:uuid:0195d1c0-5a1e-7000-8000-0000000c41b5";
const SCRAP: &str = "urn:uuid:0195d1c0-5a1e-7000-8000-00000005c4a9";
const SHIPMENT: &str = "urn:uuid:0195d1c0-5a1e-7000-8000-00000000a001";

// Event ids the tests refer to.
const FIRST: &str = "0195d1c0-0000-7000-8000-000000000001";
const SECOND: &str = "0195d1c0-0000-7000-8000-000000000002";
const THIRD: &str = "0195d1c0-0000-7000-8000-000000000003";

/// When the server records the `when` event; the given events happened earlier that morning.
const RECORDED_AT: &str = "2026-05-01T12:00:00Z";
const MORNING: &str = "2026-05-01T08:00:00Z";

// ---------------------------------------------------------------------------------------------
// The harness

/// One step of the history a test starts from.
enum Given {
    /// Admitted on its own and durably recorded (it has a log position).
    Recorded(&'static str, Value),
    /// Admitted in a batch that is then committed and recorded.
    Committed(Vec<(&'static str, Value)>),
    /// Admitted in a batch that is then rolled back: it must leave no trace.
    RolledBack(Vec<(&'static str, Value)>),
    /// Admitted in the batch the `when` event arrives in, which is still open.
    InSameBatch(&'static str, Value),
}

fn by(org: &'static str, event: Value) -> Given {
    Given::Recorded(org, event)
}

struct Organisations(HashSet<OrganizationId>);

impl Directory for Organisations {
    fn organization_exists(&self, id: &OrganizationId) -> bool {
        self.0.contains(id)
    }
}

/// What capture does around the pure rules: seal, admit, note the log position, and fetch the
/// events retractions refer to from the log.
struct Capture {
    state: CaptureState,
    directory: Organisations,
    log: RetractedEvents,
    next_position: u64,
    minted: u128,
}

impl Capture {
    fn new() -> Self {
        let directory = [WORKSHOP, REPAIR_CAFE, STRANGER]
            .into_iter()
            .map(|org| OrganizationId::parse(org).expect("test organisations are IRIs"))
            .collect();
        Self {
            state: CaptureState::new(),
            directory: Organisations(directory),
            log: RetractedEvents::new(),
            next_position: 1,
            minted: 0,
        }
    }

    fn submit(&mut self, org: &str, json: &Value) -> Result<(Event, Outcome), Refusal> {
        let submission = Submission::from_json(json.clone())
            .unwrap_or_else(|error| panic!("test event does not parse ({error}): {json}"));
        self.minted += 1;
        let seal = Seal {
            recorded_by: OrganizationId::parse(org).expect("test organisations are IRIs"),
            recorded_at: Timestamp::parse(RECORDED_AT).expect("a valid timestamp"),
            minted_id: EventId::from_uuid(uuid::Uuid::from_u128(0xffff_0000 + self.minted)),
        };
        let event = self.state.seal(submission, &seal)?;
        let mut retracted = RetractedEvents::new();
        if let EventPayload::EventRetracted(retraction) = &event.payload
            && let Some(original) = self.log.get(&retraction.event_id)
        {
            retracted.insert(retraction.event_id, original.clone());
        }
        let outcome = self.state.admit(&event, &self.directory, &retracted)?;
        Ok((event, outcome))
    }

    fn admit_given(&mut self, org: &str, json: &Value) -> Event {
        match self.submit(org, json) {
            Ok((event, Outcome::New)) => event,
            other => panic!("a given event must be admitted as new, got {other:?}: {json}"),
        }
    }

    fn make_durable(&mut self, event: Event) {
        let position = LogPosition(self.next_position);
        self.next_position += 1;
        self.state.set_position(&event.event_id, position);
        self.log.insert(event.event_id, event);
    }
}

fn render(result: Result<(Event, Outcome), Refusal>) -> String {
    match result {
        Ok((_, Outcome::New)) => "new".to_owned(),
        Ok((_, Outcome::Duplicate)) => "duplicate".to_owned(),
        Err(refusal) => format!("refused {} at {}", refusal.rule.slug(), refusal.pointer),
    }
}

/// Given these events, when `when` arrives, then capture answers `expected`.
#[track_caller]
fn check(given: &[Given], when: (&str, Value), expected: &str) {
    let mut capture = Capture::new();
    let mut batch_open = false;
    for step in given {
        match step {
            Given::Recorded(org, json) => {
                let event = capture.admit_given(org, json);
                capture.make_durable(event);
            }
            Given::Committed(batch) => {
                capture.state.begin();
                let events: Vec<Event> = batch
                    .iter()
                    .map(|(org, json)| capture.admit_given(org, json))
                    .collect();
                capture.state.commit();
                for event in events {
                    capture.make_durable(event);
                }
            }
            Given::RolledBack(batch) => {
                capture.state.begin();
                for (org, json) in batch {
                    capture.admit_given(org, json);
                }
                capture.state.rollback();
            }
            Given::InSameBatch(org, json) => {
                if !batch_open {
                    capture.state.begin();
                    batch_open = true;
                }
                capture.admit_given(org, json);
            }
        }
    }
    let (org, json) = when;
    let actual = match capture.submit(org, &json) {
        Err(refusal) => {
            // The detail is for people; it must at least say something.
            assert!(!refusal.detail.is_empty(), "{refusal:?}");
            render(Err(refusal))
        }
        other => render(other),
    };
    assert_eq!(actual, expected, "\nwhen {org} submits {json:#}");
}

// ---------------------------------------------------------------------------------------------
// Events, with only the fields the rules look at varying

fn event(event_type: &str, payload: Value) -> Value {
    json!({ "type": event_type, "occurredAt": MORNING, "payload": payload })
}

/// `event` with `value` set at `pointer` (whose parent must exist).
fn with(mut event: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer has a slash");
    let parent = event.pointer_mut(parent).and_then(Value::as_object_mut);
    parent
        .expect("the parent of the pointer is an object")
        .insert(key.to_owned(), value);
    event
}

fn with_id(id: &str, event: Value) -> Value {
    with(event, "/eventId", json!(id))
}

fn quantity(amount: f64, unit: &str) -> Value {
    json!({ "amount": amount, "unit": unit })
}

fn items(items: &[(&str, f64, &str)]) -> Value {
    items
        .iter()
        .map(|&(resource, amount, unit)| json!({ "resource": resource, "quantity": quantity(amount, unit) }))
        .collect()
}

fn place(name: &str) -> Value {
    json!({ "name": name, "country": "DE" })
}

fn published(design: &str, licence: &str) -> Value {
    event(
        "DesignPublished",
        json!({ "designId": design, "name": "Stool", "licence": licence, "version": "1.0" }),
    )
}

fn forked(design: &str, parent: &str, licence: &str) -> Value {
    event(
        "DesignForked",
        json!({
            "designId": design, "parentDesignId": parent, "name": "Tall stool",
            "licence": licence, "version": "1.0", "upstreamShare": 0.5,
        }),
    )
}

fn contribution(target: &str) -> Value {
    event(
        "ContributionRecorded",
        json!({
            "target": target,
            "contributor": { "id": "https://people.example.org/ada" },
            "kind": "engineering",
            "effort": { "amount": 3, "unit": "hours" },
        }),
    )
}

fn sourced(lot: &str, amount: f64, unit: &str) -> Value {
    event(
        "MaterialSourced",
        json!({
            "lotId": lot, "material": "oak", "quantity": quantity(amount, unit),
            "origin": place("Black Forest"), "supplier": { "id": "https://sawmill.example.org" },
            "kgCo2ePerUnit": 0.4, "dataQuality": "secondary", "recycledContent": 0,
        }),
    )
}

fn fabricated(batch: &str, design: &str, inputs: &[(&str, f64, &str)]) -> Value {
    event(
        "BatchFabricated",
        json!({
            "batchId": batch, "designId": design, "quantity": quantity(10.0, "H87"),
            "facility": place("Workshop"), "inputs": items(inputs),
        }),
    )
}

fn dispatched(shipment: &str, consignee: &str, lines: &[(&str, f64, &str)]) -> Value {
    event(
        "ShipmentDispatched",
        json!({
            "shipmentId": shipment, "lines": items(lines), "from": place("Workshop"),
            "to": place("Repair café"), "consignee": consignee, "transportMode": "bicycle",
        }),
    )
}

fn received(shipment: &str, lines: &[(&str, f64, &str)]) -> Value {
    event(
        "ShipmentReceived",
        json!({ "shipmentId": shipment, "lines": items(lines), "location": place("Repair café") }),
    )
}

fn repaired(resource: &str, parts: &[(&str, f64, &str)]) -> Value {
    event(
        "BatchRepaired",
        json!({ "resource": resource, "parts": items(parts) }),
    )
}

fn recycled(resource: &str, input: (f64, &str), outputs: &[(&str, f64, &str)]) -> Value {
    let outputs: Vec<Value> = outputs
        .iter()
        .map(|&(lot, amount, unit)| json!({ "lotId": lot, "material": "oak chips", "quantity": quantity(amount, unit) }))
        .collect();
    event(
        "BatchRecycled",
        json!({
            "resource": resource, "quantity": quantity(input.0, input.1),
            "facility": place("Recycler"), "outputLots": outputs,
        }),
    )
}

fn retraction(event_id: &str) -> Value {
    event(
        "EventRetracted",
        json!({ "eventId": event_id, "reason": "recorded by mistake" }),
    )
}

// ---------------------------------------------------------------------------------------------
// A realistic chain: every event type is accepted

/// A stool's life, with every field the types know filled in somewhere.
fn stool_life() -> Vec<(&'static str, Value)> {
    vec![
        (
            WORKSHOP,
            json!({
                "eventId": FIRST,
                "type": "DesignPublished",
                "schemaVersion": 1,
                "occurredAt": "2026-04-01T09:00:00+02:00",
                "recordedBy": WORKSHOP,
                "subject": STOOL,
                "payload": {
                    "designId": STOOL, "name": "Three-legged stool", "licence": "CERN-OHL-S-2.0",
                    "sourceUri": "https://git.example.org/stool", "version": "1.0.0",
                    "description": "A stool from one oak board.",
                },
            }),
        ),
        (
            WORKSHOP,
            json!({
                "type": "DesignForked",
                "occurredAt": "2026-04-02T09:00:00Z",
                "payload": {
                    "designId": TALL_STOOL, "parentDesignId": STOOL, "name": "Tall stool",
                    "licence": "CERN-OHL-S-2.0", "sourceUri": "https://git.example.org/stool-tall",
                    "version": "0.1", "upstreamShare": 0.25, "description": "Longer legs.",
                },
            }),
        ),
        (
            WORKSHOP,
            json!({
                "type": "ContributionRecorded",
                "occurredAt": "2026-04-03T09:00:00Z",
                "payload": {
                    "target": TALL_STOOL,
                    "contributor": { "id": "https://people.example.org/ada", "name": "Ada" },
                    "kind": "design",
                    "effort": { "amount": 12.5, "unit": "hours" },
                    "evidence": "https://git.example.org/stool-tall/commit/4f2a",
                    "description": "Leg joints redrawn.",
                },
            }),
        ),
        (
            WORKSHOP,
            json!({
                "type": "MaterialSourced",
                "occurredAt": "2026-04-10T07:00:00Z",
                "payload": {
                    "lotId": OAK, "material": "oak board", "quantity": { "amount": 0.2, "unit": "TNE" },
                    "origin": { "id": "https://id.gs1.org/414/4012345000009", "name": "Sawmill", "country": "DE" },
                    "supplier": { "id": "https://sawmill.example.org", "name": "Sawmill Müller" },
                    "kgCo2ePerUnit": 0.35, "dataQuality": "primary", "recycledContent": 0.1,
                },
            }),
        ),
        (
            WORKSHOP,
            json!({
                "type": "BatchFabricated",
                "occurredAt": "2026-04-20T16:00:00Z",
                "payload": {
                    "batchId": STOOLS, "designId": TALL_STOOL, "quantity": { "amount": 10, "unit": "H87" },
                    "facility": { "name": "Workshop", "country": "DE" },
                    "inputs": [{ "resource": OAK, "quantity": { "amount": 40, "unit": "KGM" } }],
                    "energy": { "amount": 12, "unit": "KWH", "gridFactorKgCo2ePerKwh": 0.38 },
                    "directEmissionsKgCo2e": 0.5,
                    "labour": [{ "agent": "https://people.example.org/ada", "hours": 30 }],
                },
            }),
        ),
        (
            WORKSHOP,
            json!({
                "type": "ShipmentDispatched",
                "occurredAt": "2026-04-25T08:00:00Z",
                "payload": {
                    "shipmentId": SHIPMENT,
                    "lines": [{
                        "resource": STOOLS, "quantity": { "amount": 10, "unit": "H87" },
                        "mass": { "amount": 45, "unit": "KGM" },
                    }],
                    "from": { "name": "Workshop", "country": "DE" },
                    "to": { "name": "Repair café", "country": "NL" },
                    "consignee": REPAIR_CAFE, "transportMode": "road", "distanceKm": 420,
                    "measuredEmissionsKgCo2e": 9.1,
                },
            }),
        ),
        (
            REPAIR_CAFE,
            json!({
                "type": "ShipmentReceived",
                "occurredAt": "2026-04-26T15:00:00+02:00",
                "payload": {
                    "shipmentId": SHIPMENT,
                    "lines": [{ "resource": STOOLS, "quantity": { "amount": 10, "unit": "H87" } }],
                    "location": { "name": "Repair café", "country": "NL" },
                },
            }),
        ),
        (
            REPAIR_CAFE,
            json!({
                "type": "MaterialSourced",
                "occurredAt": "2026-04-27T10:00:00Z",
                "payload": {
                    "lotId": SCREWS, "material": "wood screws", "quantity": { "amount": 100, "unit": "H87" },
                    "origin": { "name": "Hardware shop", "country": "NL" },
                    "supplier": { "id": "https://hardware.example.org" },
                    "kgCo2ePerUnit": 0.01, "dataQuality": "secondary", "recycledContent": 0,
                },
            }),
        ),
        (
            REPAIR_CAFE,
            json!({
                "eventId": SECOND,
                "type": "BatchRepaired",
                "occurredAt": "2026-04-28T10:00:00Z",
                "payload": {
                    "resource": STOOLS,
                    "parts": [{ "resource": SCREWS, "quantity": { "amount": 8, "unit": "H87" } }],
                    "energy": { "amount": 0.2, "unit": "MWH" }, "directEmissionsKgCo2e": 0,
                    "description": "Wobbly legs fixed.",
                },
            }),
        ),
        (
            REPAIR_CAFE,
            json!({
                "eventId": THIRD,
                "type": "BatchRepaired",
                "occurredAt": "2026-04-28T10:00:00Z",
                "payload": {
                    "resource": STOOLS,
                    "parts": [{ "resource": SCREWS, "quantity": { "amount": 6, "unit": "H87" } }],
                },
            }),
        ),
        (
            REPAIR_CAFE,
            json!({
                "type": "BatchRecycled",
                "occurredAt": "2026-04-29T10:00:00Z",
                "payload": {
                    "resource": STOOLS, "quantity": { "amount": 2, "unit": "H87" },
                    "facility": { "name": "Recycler", "country": "NL" },
                    "outputLots": [
                        { "lotId": CHIPS, "material": "oak chips", "quantity": { "amount": 7, "unit": "KGM" } },
                        { "lotId": SCRAP, "material": "steel scrap", "quantity": { "amount": 40, "unit": "GRM" } },
                    ],
                    "energy": { "amount": 3.6, "unit": "3B" }, "directEmissionsKgCo2e": 0.2,
                },
            }),
        ),
        (
            REPAIR_CAFE,
            json!({
                "type": "EventRetracted",
                "occurredAt": "2026-04-30T10:00:00Z",
                "payload": {
                    "eventId": SECOND, "reason": "Six screws were used, not eight.",
                    "correctiveEventIds": [THIRD],
                },
            }),
        ),
    ]
}

#[test]
fn every_event_type_is_accepted_in_a_realistic_chain() {
    let life = stool_life();
    let types: HashSet<&str> = life
        .iter()
        .filter_map(|(_, event)| event["type"].as_str())
        .collect();
    assert_eq!(
        types.len(),
        EventType::ALL.len(),
        "the chain covers every event type"
    );
    for n in 0..life.len() {
        let given: Vec<Given> = life[..n]
            .iter()
            .map(|(org, event)| by(org, event.clone()))
            .collect();
        let (org, when) = life[n].clone();
        check(&given, (org, when), "new");
    }
}

// ---------------------------------------------------------------------------------------------
// The envelope: who records, what about, when

#[test]
fn an_organisation_cannot_record_in_the_name_of_another() {
    check(
        &[],
        (
            WORKSHOP,
            with(published(STOOL, "MIT"), "/recordedBy", json!(STRANGER)),
        ),
        "refused recorded-by-mismatch at /recordedBy",
    );
}

#[test]
fn a_client_set_subject_must_be_the_one_the_payload_implies() {
    check(
        &[],
        (
            WORKSHOP,
            with(published(STOOL, "MIT"), "/subject", json!(TALL_STOOL)),
        ),
        "refused subject-mismatch at /subject",
    );
}

#[test]
fn the_subject_of_a_retraction_is_the_subject_of_what_it_retracts() {
    let given = [by(WORKSHOP, with_id(FIRST, sourced(OAK, 10.0, "KGM")))];
    check(
        &given,
        (WORKSHOP, with(retraction(FIRST), "/subject", json!(OAK))),
        "new",
    );
    check(
        &given,
        (WORKSHOP, with(retraction(FIRST), "/subject", json!(STOOL))),
        "refused subject-mismatch at /subject",
    );
}

#[test]
fn an_event_may_have_occurred_up_to_five_minutes_after_it_was_recorded() {
    let at = |time: &str| with(published(STOOL, "MIT"), "/occurredAt", json!(time));
    check(&[], (WORKSHOP, at("2026-05-01T12:05:00Z")), "new");
    check(&[], (WORKSHOP, at("2026-05-01T14:05:00+02:00")), "new");
    check(
        &[],
        (WORKSHOP, at("2026-05-01T12:05:00.001Z")),
        "refused occurred-in-future at /occurredAt",
    );
}

// ---------------------------------------------------------------------------------------------
// Idempotency

#[test]
fn the_same_event_again_is_a_duplicate() {
    let event = with_id(FIRST, sourced(OAK, 10.0, "KGM"));
    check(
        &[by(WORKSHOP, event.clone())],
        (WORKSHOP, event),
        "duplicate",
    );
}

#[test]
fn a_retried_event_is_a_duplicate_even_when_it_now_states_the_server_fields() {
    let event = with_id(FIRST, sourced(OAK, 10.0, "KGM"));
    let retried = with(
        with(event.clone(), "/subject", json!(OAK)),
        "/recordedBy",
        json!(WORKSHOP),
    );
    let retried = with(retried, "/schemaVersion", json!(1));
    check(&[by(WORKSHOP, event)], (WORKSHOP, retried), "duplicate");
}

#[test]
fn the_same_timestamp_in_another_offset_is_the_same_content() {
    let event = with_id(FIRST, sourced(OAK, 10.0, "KGM"));
    let retried = with(
        event.clone(),
        "/occurredAt",
        json!("2026-05-01T10:00:00+02:00"),
    );
    check(&[by(WORKSHOP, event)], (WORKSHOP, retried), "duplicate");
}

#[test]
fn an_event_id_cannot_be_reused_for_different_content() {
    let event = with_id(FIRST, sourced(OAK, 10.0, "KGM"));
    check(
        &[by(WORKSHOP, event.clone())],
        (WORKSHOP, with_id(FIRST, sourced(OAK, 11.0, "KGM"))),
        "refused idempotency-conflict at /eventId",
    );
    check(
        &[by(WORKSHOP, event.clone())],
        (WORKSHOP, with_id(FIRST, published(STOOL, "MIT"))),
        "refused idempotency-conflict at /eventId",
    );
    check(
        &[by(WORKSHOP, event.clone())],
        (STRANGER, event),
        "refused idempotency-conflict at /eventId",
    );
}

// ---------------------------------------------------------------------------------------------
// Designs and contributions

#[test]
fn a_design_id_cannot_be_published_twice() {
    check(
        &[by(WORKSHOP, published(STOOL, "MIT"))],
        (STRANGER, published(STOOL, "MIT")),
        "refused resource-exists at /payload/designId",
    );
}

#[test]
fn a_fork_needs_a_new_id() {
    check(
        &[by(WORKSHOP, published(STOOL, "MIT"))],
        (WORKSHOP, forked(STOOL, STOOL, "MIT")),
        "refused resource-exists at /payload/designId",
    );
}

#[test]
fn a_fork_of_an_unknown_design_is_refused() {
    check(
        &[],
        (WORKSHOP, forked(TALL_STOOL, STOOL, "MIT")),
        "refused unresolved-reference at /payload/parentDesignId",
    );
}

#[test]
fn a_fork_of_a_material_lot_is_refused() {
    check(
        &[by(WORKSHOP, sourced(OAK, 10.0, "KGM"))],
        (WORKSHOP, forked(TALL_STOOL, OAK, "MIT")),
        "refused wrong-kind at /payload/parentDesignId",
    );
}

#[test]
fn a_fork_of_a_share_alike_design_must_keep_the_family() {
    let parent = |licence| [by(WORKSHOP, published(STOOL, licence))];
    check(
        &parent("CERN-OHL-S-2.0"),
        (STRANGER, forked(TALL_STOOL, STOOL, "CERN-OHL-S-2.0")),
        "new",
    );
    check(
        &parent("CC-BY-SA-3.0"),
        (STRANGER, forked(TALL_STOOL, STOOL, "CC-BY-SA-4.0")),
        "new",
    );
    check(
        &parent("GPL-2.0-or-later"),
        (STRANGER, forked(TALL_STOOL, STOOL, "GPL-3.0-only")),
        "new",
    );
    check(
        &parent("CERN-OHL-S-2.0"),
        (STRANGER, forked(TALL_STOOL, STOOL, "CERN-OHL-P-2.0")),
        "refused share-alike at /payload/licence",
    );
    check(
        &parent("CC-BY-SA-4.0"),
        (STRANGER, forked(TALL_STOOL, STOOL, "MIT")),
        "refused share-alike at /payload/licence",
    );
    check(
        &parent("GPL-3.0-or-later"),
        (STRANGER, forked(TALL_STOOL, STOOL, "AGPL-3.0-or-later")),
        "refused share-alike at /payload/licence",
    );
    check(
        &parent("https://wiki.p2pfoundation.net/Peer_Production_License"),
        (STRANGER, forked(TALL_STOOL, STOOL, "CC-BY-SA-4.0")),
        "refused share-alike at /payload/licence",
    );
}

#[test]
fn a_fork_of_a_permissive_design_may_take_any_licence() {
    let given = [by(WORKSHOP, published(STOOL, "CERN-OHL-P-2.0"))];
    check(&given, (STRANGER, forked(TALL_STOOL, STOOL, "MIT")), "new");
    check(
        &given,
        (STRANGER, forked(TALL_STOOL, STOOL, "CERN-OHL-S-2.0")),
        "new",
    );
}

#[test]
fn a_fork_of_a_fork_keeps_the_family_of_its_own_parent() {
    check(
        &[
            by(WORKSHOP, published(STOOL, "CERN-OHL-P-2.0")),
            by(WORKSHOP, forked(TALL_STOOL, STOOL, "CERN-OHL-S-2.0")),
        ],
        (
            STRANGER,
            forked(
                "https://designs.example.org/bar-stool",
                TALL_STOOL,
                "CERN-OHL-P-2.0",
            ),
        ),
        "refused share-alike at /payload/licence",
    );
}

#[test]
fn a_contribution_is_recorded_by_whoever_recorded_the_target() {
    let given = [by(WORKSHOP, published(STOOL, "MIT"))];
    check(&given, (WORKSHOP, contribution(STOOL)), "new");
    check(
        &given,
        (STRANGER, contribution(STOOL)),
        "refused not-maintainer at /payload/target",
    );
}

#[test]
fn a_contribution_to_a_batch_is_accepted_but_not_to_a_material_lot() {
    let given = [
        by(WORKSHOP, published(STOOL, "MIT")),
        by(WORKSHOP, sourced(OAK, 100.0, "KGM")),
        by(WORKSHOP, fabricated(STOOLS, STOOL, &[(OAK, 40.0, "KGM")])),
    ];
    check(&given, (WORKSHOP, contribution(STOOLS)), "new");
    check(
        &given,
        (WORKSHOP, contribution(OAK)),
        "refused wrong-kind at /payload/target",
    );
}

#[test]
fn a_contribution_to_nothing_is_refused() {
    check(
        &[],
        (WORKSHOP, contribution(STOOL)),
        "refused unresolved-reference at /payload/target",
    );
}

// ---------------------------------------------------------------------------------------------
// Material, fabrication and mass balance

#[test]
fn a_lot_id_cannot_be_sourced_twice() {
    check(
        &[by(WORKSHOP, sourced(OAK, 10.0, "KGM"))],
        (WORKSHOP, sourced(OAK, 10.0, "KGM")),
        "refused resource-exists at /payload/lotId",
    );
}

#[test]
fn a_batch_cannot_take_the_id_of_a_design() {
    check(
        &[by(WORKSHOP, published(STOOL, "MIT"))],
        (WORKSHOP, fabricated(STOOL, STOOL, &[])),
        "refused resource-exists at /payload/batchId",
    );
}

#[test]
fn a_batch_is_made_from_a_recorded_design() {
    check(
        &[],
        (WORKSHOP, fabricated(STOOLS, STOOL, &[])),
        "refused unresolved-reference at /payload/designId",
    );
    check(
        &[by(WORKSHOP, sourced(OAK, 10.0, "KGM"))],
        (WORKSHOP, fabricated(STOOLS, OAK, &[])),
        "refused wrong-kind at /payload/designId",
    );
}

#[test]
fn an_input_must_be_a_recorded_lot_or_batch() {
    let given = [by(WORKSHOP, published(STOOL, "MIT"))];
    check(
        &given,
        (WORKSHOP, fabricated(STOOLS, STOOL, &[(OAK, 1.0, "KGM")])),
        "refused unresolved-reference at /payload/inputs/0/resource",
    );
    check(
        &given,
        (WORKSHOP, fabricated(STOOLS, STOOL, &[(STOOL, 1.0, "H87")])),
        "refused wrong-kind at /payload/inputs/0/resource",
    );
}

#[test]
fn mass_units_convert_into_each_other() {
    let given = [
        by(WORKSHOP, published(STOOL, "MIT")),
        by(WORKSHOP, sourced(OAK, 1.0, "TNE")),
        by(
            WORKSHOP,
            fabricated("https://example.org/batch/1", STOOL, &[(OAK, 500.0, "KGM")]),
        ),
    ];
    check(
        &given,
        (
            WORKSHOP,
            fabricated(
                "https://example.org/batch/2",
                STOOL,
                &[(OAK, 500_000.0, "GRM")],
            ),
        ),
        "new",
    );

    let given = [
        by(WORKSHOP, published(STOOL, "MIT")),
        by(WORKSHOP, sourced(OAK, 1.0, "TNE")),
        by(
            WORKSHOP,
            fabricated("https://example.org/batch/1", STOOL, &[(OAK, 500.0, "KGM")]),
        ),
        by(
            WORKSHOP,
            fabricated(
                "https://example.org/batch/2",
                STOOL,
                &[(OAK, 500_000.0, "GRM")],
            ),
        ),
    ];
    check(
        &given,
        (
            WORKSHOP,
            fabricated("https://example.org/batch/3", STOOL, &[(OAK, 1.0, "GRM")]),
        ),
        "refused mass-balance at /payload/inputs/0/quantity",
    );
}

#[test]
fn pounds_and_milligrams_are_masses_too() {
    let given = [
        by(WORKSHOP, published(STOOL, "MIT")),
        by(WORKSHOP, sourced(OAK, 1.0, "LBR")),
    ];
    check(
        &given,
        (
            WORKSHOP,
            fabricated(STOOLS, STOOL, &[(OAK, 453_592.37, "MGM")]),
        ),
        "new",
    );
    check(
        &given,
        (
            WORKSHOP,
            fabricated(STOOLS, STOOL, &[(OAK, 453_593.0, "MGM")]),
        ),
        "refused mass-balance at /payload/inputs/0/quantity",
    );
}

#[test]
fn a_lot_split_into_parts_that_add_up_is_consumed_exactly() {
    let given = [
        by(WORKSHOP, published(STOOL, "MIT")),
        by(WORKSHOP, sourced(OAK, 0.3, "KGM")),
    ];
    check(
        &given,
        (
            WORKSHOP,
            fabricated(STOOLS, STOOL, &[(OAK, 0.1, "KGM"), (OAK, 0.2, "KGM")]),
        ),
        "new",
    );
}

#[test]
fn inputs_of_one_resource_are_summed_against_the_holding() {
    check(
        &[
            by(WORKSHOP, published(STOOL, "MIT")),
            by(WORKSHOP, sourced(OAK, 10.0, "KGM")),
        ],
        (
            WORKSHOP,
            fabricated(STOOLS, STOOL, &[(OAK, 6.0, "KGM"), (OAK, 6.0, "KGM")]),
        ),
        "refused mass-balance at /payload/inputs/1/quantity",
    );
}

#[test]
fn a_mass_cannot_be_consumed_as_pieces_or_litres() {
    let given = [
        by(WORKSHOP, published(STOOL, "MIT")),
        by(WORKSHOP, sourced(OAK, 10.0, "KGM")),
    ];
    check(
        &given,
        (WORKSHOP, fabricated(STOOLS, STOOL, &[(OAK, 1.0, "H87")])),
        "refused unit-mismatch at /payload/inputs/0/quantity/unit",
    );
    check(
        &given,
        (WORKSHOP, fabricated(STOOLS, STOOL, &[(OAK, 1.0, "LTR")])),
        "refused unit-mismatch at /payload/inputs/0/quantity/unit",
    );
}

#[test]
fn other_units_must_match_exactly() {
    let given = [
        by(WORKSHOP, published(STOOL, "MIT")),
        by(WORKSHOP, sourced(OAK, 10.0, "LTR")),
    ];
    check(
        &given,
        (WORKSHOP, fabricated(STOOLS, STOOL, &[(OAK, 10.0, "LTR")])),
        "new",
    );
    check(
        &given,
        (WORKSHOP, fabricated(STOOLS, STOOL, &[(OAK, 1.0, "MLT")])),
        "refused unit-mismatch at /payload/inputs/0/quantity/unit",
    );
}

#[test]
fn an_organisation_cannot_consume_a_lot_it_does_not_hold() {
    check(
        &[
            by(WORKSHOP, published(STOOL, "MIT")),
            by(STRANGER, sourced(OAK, 10.0, "KGM")),
        ],
        (WORKSHOP, fabricated(STOOLS, STOOL, &[(OAK, 1.0, "KGM")])),
        "refused custody at /payload/inputs/0/resource",
    );
}

// ---------------------------------------------------------------------------------------------
// Shipments

fn stools_made_by_the_workshop() -> Vec<Given> {
    vec![
        by(WORKSHOP, published(STOOL, "MIT")),
        by(WORKSHOP, sourced(OAK, 100.0, "KGM")),
        by(WORKSHOP, fabricated(STOOLS, STOOL, &[(OAK, 40.0, "KGM")])),
    ]
}

fn stools_shipped_to_the_repair_cafe() -> Vec<Given> {
    let mut given = stools_made_by_the_workshop();
    given.push(by(
        WORKSHOP,
        dispatched(
            SHIPMENT,
            REPAIR_CAFE,
            &[(STOOLS, 6.0, "H87"), (OAK, 50.0, "KGM")],
        ),
    ));
    given
}

#[test]
fn a_shipment_id_is_used_once() {
    check(
        &stools_shipped_to_the_repair_cafe(),
        (
            WORKSHOP,
            dispatched(SHIPMENT, REPAIR_CAFE, &[(STOOLS, 1.0, "H87")]),
        ),
        "refused shipment-exists at /payload/shipmentId",
    );
}

#[test]
fn a_shipment_is_addressed_to_a_registered_organisation() {
    check(
        &stools_made_by_the_workshop(),
        (
            WORKSHOP,
            dispatched(SHIPMENT, UNREGISTERED, &[(STOOLS, 1.0, "H87")]),
        ),
        "refused unresolved-reference at /payload/consignee",
    );
}

#[test]
fn only_what_is_held_can_be_shipped() {
    let given = stools_made_by_the_workshop();
    check(
        &given,
        (
            WORKSHOP,
            dispatched(SHIPMENT, REPAIR_CAFE, &[(STOOLS, 10.0, "H87")]),
        ),
        "new",
    );
    check(
        &given,
        (
            WORKSHOP,
            dispatched(SHIPMENT, REPAIR_CAFE, &[(STOOLS, 11.0, "H87")]),
        ),
        "refused mass-balance at /payload/lines/0/quantity",
    );
    check(
        &given,
        (
            WORKSHOP,
            dispatched(
                SHIPMENT,
                REPAIR_CAFE,
                &[(OAK, 60.0, "KGM"), (OAK, 0.5, "KGM")],
            ),
        ),
        "refused mass-balance at /payload/lines/1/quantity",
    );
    check(
        &given,
        (
            STRANGER,
            dispatched(SHIPMENT, REPAIR_CAFE, &[(STOOLS, 1.0, "H87")]),
        ),
        "refused custody at /payload/lines/0/resource",
    );
    check(
        &given,
        (
            WORKSHOP,
            dispatched(SHIPMENT, REPAIR_CAFE, &[(STOOL, 1.0, "H87")]),
        ),
        "refused wrong-kind at /payload/lines/0/resource",
    );
    check(
        &given,
        (
            WORKSHOP,
            dispatched(SHIPMENT, REPAIR_CAFE, &[(STOOLS, 1.0, "KGM")]),
        ),
        "refused unit-mismatch at /payload/lines/0/quantity/unit",
    );
}

#[test]
fn what_was_shipped_away_is_no_longer_held() {
    let mut given = stools_made_by_the_workshop();
    given.push(by(
        WORKSHOP,
        dispatched(SHIPMENT, REPAIR_CAFE, &[(STOOLS, 10.0, "H87")]),
    ));
    check(
        &given,
        (WORKSHOP, repaired(STOOLS, &[])),
        "refused custody at /payload/resource",
    );
    check(
        &given,
        (
            WORKSHOP,
            dispatched(
                "https://example.org/shipment/2",
                STRANGER,
                &[(STOOLS, 1.0, "H87")],
            ),
        ),
        "refused mass-balance at /payload/lines/0/quantity",
    );
}

#[test]
fn only_the_consignee_receives_a_shipment() {
    let given = stools_shipped_to_the_repair_cafe();
    check(
        &given,
        (
            REPAIR_CAFE,
            received(SHIPMENT, &[(STOOLS, 6.0, "H87"), (OAK, 50.0, "KGM")]),
        ),
        "new",
    );
    check(
        &given,
        (STRANGER, received(SHIPMENT, &[(STOOLS, 6.0, "H87")])),
        "refused not-addressee at /payload/shipmentId",
    );
    check(
        &given,
        (WORKSHOP, received(SHIPMENT, &[(STOOLS, 6.0, "H87")])),
        "refused not-addressee at /payload/shipmentId",
    );
}

#[test]
fn a_shipment_never_dispatched_cannot_be_received() {
    check(
        &stools_made_by_the_workshop(),
        (REPAIR_CAFE, received(SHIPMENT, &[(STOOLS, 6.0, "H87")])),
        "refused unresolved-reference at /payload/shipmentId",
    );
}

#[test]
fn a_shipment_is_received_once() {
    let mut given = stools_shipped_to_the_repair_cafe();
    given.push(by(REPAIR_CAFE, received(SHIPMENT, &[(STOOLS, 6.0, "H87")])));
    check(
        &given,
        (REPAIR_CAFE, received(SHIPMENT, &[(OAK, 50.0, "KGM")])),
        "refused already-received at /payload/shipmentId",
    );
}

#[test]
fn only_what_was_dispatched_can_be_received() {
    let given = stools_shipped_to_the_repair_cafe();
    check(
        &given,
        (
            REPAIR_CAFE,
            received(SHIPMENT, &[(STOOLS, 6.0, "H87"), (STOOL, 1.0, "H87")]),
        ),
        "refused not-in-shipment at /payload/lines/1/resource",
    );
    check(
        &given,
        (
            REPAIR_CAFE,
            received(SHIPMENT, &[(STOOLS, 4.0, "H87"), (STOOLS, 2.5, "H87")]),
        ),
        "refused mass-balance at /payload/lines/1/quantity",
    );
    check(
        &given,
        (REPAIR_CAFE, received(SHIPMENT, &[(OAK, 50_001.0, "GRM")])),
        "refused mass-balance at /payload/lines/0/quantity",
    );
    check(
        &given,
        (REPAIR_CAFE, received(SHIPMENT, &[(OAK, 0.05, "TNE")])),
        "new",
    );
    check(
        &given,
        (REPAIR_CAFE, received(SHIPMENT, &[(OAK, 50.0, "LTR")])),
        "refused unit-mismatch at /payload/lines/0/quantity/unit",
    );
}

#[test]
fn custody_passes_on_receipt() {
    let mut given = stools_shipped_to_the_repair_cafe();
    given.push(by(
        REPAIR_CAFE,
        received(SHIPMENT, &[(STOOLS, 6.0, "H87"), (OAK, 50.0, "KGM")]),
    ));
    check(
        &given,
        (REPAIR_CAFE, repaired(STOOLS, &[(OAK, 50.0, "KGM")])),
        "new",
    );
    check(
        &given,
        (REPAIR_CAFE, repaired(STOOLS, &[(OAK, 50.5, "KGM")])),
        "refused mass-balance at /payload/parts/0/quantity",
    );
    check(
        &given,
        (
            REPAIR_CAFE,
            recycled(STOOLS, (6.0, "H87"), &[(CHIPS, 20.0, "KGM")]),
        ),
        "new",
    );
    check(
        &given,
        (
            WORKSHOP,
            fabricated("https://example.org/batch/2", STOOL, &[(OAK, 10.0, "KGM")]),
        ),
        "new",
    );
}

#[test]
fn a_shipment_not_yet_received_is_held_by_nobody() {
    check(
        &stools_shipped_to_the_repair_cafe(),
        (REPAIR_CAFE, repaired(STOOLS, &[])),
        "refused custody at /payload/resource",
    );
}

// ---------------------------------------------------------------------------------------------
// Repair and recycling

#[test]
fn a_repair_is_done_by_whoever_holds_the_thing() {
    let given = stools_made_by_the_workshop();
    check(
        &given,
        (WORKSHOP, repaired(STOOLS, &[(OAK, 1.0, "KGM")])),
        "new",
    );
    check(
        &given,
        (STRANGER, repaired(STOOLS, &[])),
        "refused custody at /payload/resource",
    );
    check(
        &given,
        (WORKSHOP, repaired(STOOL, &[])),
        "refused wrong-kind at /payload/resource",
    );
    check(
        &given,
        (WORKSHOP, repaired("https://example.org/unknown", &[])),
        "refused unresolved-reference at /payload/resource",
    );
}

#[test]
fn a_thing_cannot_be_a_part_of_itself() {
    check(
        &stools_made_by_the_workshop(),
        (
            WORKSHOP,
            repaired(STOOLS, &[(OAK, 1.0, "KGM"), (STOOLS, 1.0, "H87")]),
        ),
        "refused self-reference at /payload/parts/1/resource",
    );
}

#[test]
fn repair_parts_must_be_held() {
    let mut given = stools_made_by_the_workshop();
    given.push(by(STRANGER, sourced(SCREWS, 100.0, "H87")));
    check(
        &given,
        (WORKSHOP, repaired(STOOLS, &[(SCREWS, 4.0, "H87")])),
        "refused custody at /payload/parts/0/resource",
    );
}

#[test]
fn recycling_needs_custody_of_enough_input() {
    let given = stools_made_by_the_workshop();
    check(
        &given,
        (
            STRANGER,
            recycled(STOOLS, (1.0, "H87"), &[(CHIPS, 1.0, "KGM")]),
        ),
        "refused custody at /payload/resource",
    );
    check(
        &given,
        (
            WORKSHOP,
            recycled(STOOLS, (11.0, "H87"), &[(CHIPS, 1.0, "KGM")]),
        ),
        "refused mass-balance at /payload/quantity",
    );
    check(
        &given,
        (
            WORKSHOP,
            recycled(STOOLS, (1.0, "KGM"), &[(CHIPS, 1.0, "KGM")]),
        ),
        "refused unit-mismatch at /payload/quantity/unit",
    );
}

#[test]
fn recycling_cannot_recover_more_mass_than_went_in() {
    let given = stools_made_by_the_workshop();
    check(
        &given,
        (
            WORKSHOP,
            recycled(
                OAK,
                (60.0, "KGM"),
                &[(CHIPS, 59_000.0, "GRM"), (SCRAP, 1.0, "KGM")],
            ),
        ),
        "new",
    );
    check(
        &given,
        (
            WORKSHOP,
            recycled(
                OAK,
                (0.06, "TNE"),
                &[(CHIPS, 59_000.0, "GRM"), (SCRAP, 1.001, "KGM")],
            ),
        ),
        "refused output-exceeds-input at /payload/outputLots",
    );
    // A count going in says nothing about the mass coming out.
    check(
        &given,
        (
            WORKSHOP,
            recycled(STOOLS, (1.0, "H87"), &[(CHIPS, 500.0, "KGM")]),
        ),
        "new",
    );
}

#[test]
fn recycled_lots_need_new_distinct_ids() {
    let given = stools_made_by_the_workshop();
    check(
        &given,
        (
            WORKSHOP,
            recycled(STOOLS, (1.0, "H87"), &[(OAK, 1.0, "KGM")]),
        ),
        "refused resource-exists at /payload/outputLots/0/lotId",
    );
    check(
        &given,
        (
            WORKSHOP,
            recycled(
                STOOLS,
                (1.0, "H87"),
                &[(CHIPS, 1.0, "KGM"), (CHIPS, 1.0, "KGM")],
            ),
        ),
        "refused resource-exists at /payload/outputLots/1/lotId",
    );
}

#[test]
fn recycled_lots_are_held_by_the_recycler() {
    let mut given = stools_made_by_the_workshop();
    given.push(by(
        WORKSHOP,
        recycled(STOOLS, (2.0, "H87"), &[(CHIPS, 7.0, "KGM")]),
    ));
    check(
        &given,
        (
            WORKSHOP,
            fabricated(
                "https://example.org/batch/2",
                STOOL,
                &[(CHIPS, 7.0, "KGM"), (STOOLS, 8.0, "H87")],
            ),
        ),
        "new",
    );
    check(
        &given,
        (
            WORKSHOP,
            fabricated(
                "https://example.org/batch/2",
                STOOL,
                &[(STOOLS, 8.5, "H87")],
            ),
        ),
        "refused mass-balance at /payload/inputs/0/quantity",
    );
}

// ---------------------------------------------------------------------------------------------
// Retractions

#[test]
fn a_retraction_names_a_recorded_event() {
    check(
        &[],
        (WORKSHOP, retraction(FIRST)),
        "refused unresolved-reference at /payload/eventId",
    );
}

#[test]
fn corrective_events_must_have_been_recorded() {
    let given = [
        by(WORKSHOP, with_id(FIRST, sourced(OAK, 10.0, "KGM"))),
        by(WORKSHOP, with_id(SECOND, sourced(STEEL, 9.0, "KGM"))),
    ];
    let correcting = |ids: Value| with(retraction(FIRST), "/payload/correctiveEventIds", ids);
    check(&given, (WORKSHOP, correcting(json!([SECOND]))), "new");
    check(
        &given,
        (WORKSHOP, correcting(json!([SECOND, THIRD]))),
        "refused unresolved-reference at /payload/correctiveEventIds/1",
    );
}

#[test]
fn an_organisation_retracts_only_its_own_events() {
    check(
        &[by(WORKSHOP, with_id(FIRST, sourced(OAK, 10.0, "KGM")))],
        (STRANGER, retraction(FIRST)),
        "refused not-your-event at /payload/eventId",
    );
}

#[test]
fn a_retraction_cannot_be_retracted() {
    check(
        &[
            by(WORKSHOP, with_id(FIRST, sourced(OAK, 10.0, "KGM"))),
            by(WORKSHOP, with_id(SECOND, retraction(FIRST))),
        ],
        (WORKSHOP, retraction(SECOND)),
        "refused retraction-of-retraction at /payload/eventId",
    );
}

#[test]
fn an_event_is_retracted_once() {
    check(
        &[
            by(WORKSHOP, with_id(FIRST, sourced(OAK, 10.0, "KGM"))),
            by(WORKSHOP, retraction(FIRST)),
        ],
        (
            WORKSHOP,
            with(retraction(FIRST), "/payload/reason", json!("again")),
        ),
        "refused already-retracted at /payload/eventId",
    );
}

#[test]
fn an_event_cannot_be_retracted_in_the_batch_that_records_it() {
    check(
        &[Given::InSameBatch(
            WORKSHOP,
            with_id(FIRST, sourced(OAK, 10.0, "KGM")),
        )],
        (WORKSHOP, retraction(FIRST)),
        "refused not-yet-durable at /payload/eventId",
    );
    check(
        &[
            by(WORKSHOP, with_id(FIRST, sourced(OAK, 10.0, "KGM"))),
            Given::InSameBatch(WORKSHOP, retraction(FIRST)),
        ],
        (WORKSHOP, retraction(FIRST)),
        "refused already-retracted at /payload/eventId",
    );
}

#[test]
fn retracting_a_sourcing_takes_the_lot_away() {
    let given = [
        by(WORKSHOP, published(STOOL, "MIT")),
        by(WORKSHOP, with_id(FIRST, sourced(OAK, 10.0, "KGM"))),
        by(WORKSHOP, retraction(FIRST)),
    ];
    check(
        &given,
        (WORKSHOP, fabricated(STOOLS, STOOL, &[(OAK, 1.0, "KGM")])),
        "refused unresolved-reference at /payload/inputs/0/resource",
    );
    // The lot id is free again: the sourcing did not happen.
    check(&given, (WORKSHOP, sourced(OAK, 5.0, "KGM")), "new");
}

#[test]
fn retracting_a_fabrication_gives_its_inputs_back() {
    let given = [
        by(WORKSHOP, published(STOOL, "MIT")),
        by(WORKSHOP, sourced(OAK, 10.0, "KGM")),
        by(
            WORKSHOP,
            with_id(FIRST, fabricated(STOOLS, STOOL, &[(OAK, 10.0, "KGM")])),
        ),
        by(WORKSHOP, retraction(FIRST)),
    ];
    check(
        &given,
        (
            WORKSHOP,
            fabricated("https://example.org/batch/2", STOOL, &[(OAK, 10.0, "KGM")]),
        ),
        "new",
    );
    check(
        &given,
        (WORKSHOP, repaired(STOOLS, &[])),
        "refused unresolved-reference at /payload/resource",
    );
}

#[test]
fn retracting_a_receipt_lets_the_shipment_be_received_again() {
    let mut given = stools_shipped_to_the_repair_cafe();
    given.push(by(
        REPAIR_CAFE,
        with_id(FIRST, received(SHIPMENT, &[(STOOLS, 5.0, "H87")])),
    ));
    given.push(by(REPAIR_CAFE, retraction(FIRST)));
    check(
        &given,
        (REPAIR_CAFE, repaired(STOOLS, &[])),
        "refused custody at /payload/resource",
    );
    check(
        &given,
        (REPAIR_CAFE, received(SHIPMENT, &[(STOOLS, 6.0, "H87")])),
        "new",
    );
}

#[test]
fn retracting_a_dispatch_returns_the_goods_to_the_shipper() {
    let mut given = stools_made_by_the_workshop();
    given.push(by(
        WORKSHOP,
        with_id(
            FIRST,
            dispatched(SHIPMENT, REPAIR_CAFE, &[(STOOLS, 10.0, "H87")]),
        ),
    ));
    given.push(by(WORKSHOP, retraction(FIRST)));
    check(&given, (WORKSHOP, repaired(STOOLS, &[])), "new");
    check(
        &given,
        (REPAIR_CAFE, received(SHIPMENT, &[(STOOLS, 10.0, "H87")])),
        "refused unresolved-reference at /payload/shipmentId",
    );
}

#[test]
fn retracting_a_repair_at_the_end_of_the_chain_gives_its_parts_back() {
    // 100 screws sourced, 8 used by the retracted repair and 6 by the corrected one.
    let given: Vec<Given> = stool_life()
        .into_iter()
        .map(|(org, event)| by(org, event))
        .collect();
    check(
        &given,
        (REPAIR_CAFE, repaired(STOOLS, &[(SCREWS, 94.0, "H87")])),
        "new",
    );
    check(
        &given,
        (REPAIR_CAFE, repaired(STOOLS, &[(SCREWS, 95.0, "H87")])),
        "refused mass-balance at /payload/parts/0/quantity",
    );
}

// ---------------------------------------------------------------------------------------------
// Batches: all or nothing

#[test]
fn a_rolled_back_batch_leaves_no_trace() {
    let rolled_back = Given::RolledBack(vec![
        (WORKSHOP, published(STOOL, "MIT")),
        (WORKSHOP, with_id(FIRST, sourced(OAK, 10.0, "KGM"))),
    ]);
    check(
        &[rolled_back],
        (WORKSHOP, fabricated(STOOLS, STOOL, &[(OAK, 1.0, "KGM")])),
        "refused unresolved-reference at /payload/designId",
    );
    let rolled_back =
        Given::RolledBack(vec![(WORKSHOP, with_id(FIRST, sourced(OAK, 10.0, "KGM")))]);
    // Neither the lot id nor the event id is taken.
    check(
        &[rolled_back],
        (WORKSHOP, with_id(FIRST, sourced(OAK, 20.0, "KGM"))),
        "new",
    );
}

#[test]
fn a_rolled_back_batch_restores_what_it_consumed_and_retracted() {
    let given = [
        by(WORKSHOP, published(STOOL, "MIT")),
        by(WORKSHOP, with_id(FIRST, sourced(OAK, 10.0, "KGM"))),
        Given::RolledBack(vec![
            (WORKSHOP, fabricated(STOOLS, STOOL, &[(OAK, 10.0, "KGM")])),
            (WORKSHOP, retraction(FIRST)),
        ]),
    ];
    check(
        &given,
        (WORKSHOP, fabricated(STOOLS, STOOL, &[(OAK, 10.0, "KGM")])),
        "new",
    );
    check(&given, (WORKSHOP, retraction(FIRST)), "new");
}

#[test]
fn a_committed_batch_is_kept() {
    let committed = Given::Committed(vec![
        (WORKSHOP, published(STOOL, "MIT")),
        (WORKSHOP, with_id(FIRST, sourced(OAK, 10.0, "KGM"))),
        (WORKSHOP, fabricated(STOOLS, STOOL, &[(OAK, 4.0, "KGM")])),
    ]);
    let given = [committed];
    check(
        &given,
        (
            WORKSHOP,
            fabricated("https://example.org/batch/2", STOOL, &[(OAK, 6.0, "KGM")]),
        ),
        "new",
    );
    check(
        &given,
        (
            WORKSHOP,
            fabricated("https://example.org/batch/2", STOOL, &[(OAK, 6.5, "KGM")]),
        ),
        "refused mass-balance at /payload/inputs/0/quantity",
    );
    check(
        &given,
        (WORKSHOP, with_id(FIRST, sourced(OAK, 10.0, "KGM"))),
        "duplicate",
    );
    check(&given, (WORKSHOP, retraction(FIRST)), "new");
}

#[test]
fn events_in_one_batch_see_each_other() {
    check(
        &[
            Given::InSameBatch(WORKSHOP, published(STOOL, "MIT")),
            Given::InSameBatch(WORKSHOP, sourced(OAK, 10.0, "KGM")),
        ],
        (WORKSHOP, fabricated(STOOLS, STOOL, &[(OAK, 10.0, "KGM")])),
        "new",
    );
}

// ---------------------------------------------------------------------------------------------

/// Each rule is refused by at least one expectation in this file.
#[test]
fn every_rule_is_exercised() {
    let source = include_str!("rules.rs");
    let missing: Vec<&str> = Rule::ALL
        .iter()
        .map(|rule| rule.slug())
        .filter(|slug| !source.contains(&format!("\"refused {slug} at /")))
        .collect();
    assert!(
        missing.is_empty(),
        "no test expects a refusal by {missing:?}"
    );
}
