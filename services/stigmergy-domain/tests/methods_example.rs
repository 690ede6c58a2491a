//! The worked example of `docs/methods.md` ("4. Worked example"), computed by the pure methods.
//!
//! The events are read from the page itself (its `json` blocks, in order), the organisations'
//! placeholders (`<maker>`, …) replaced by identifiers the server could have assigned; capture
//! must admit every one of them. Then each figure the page states is recomputed with
//! `views::footprint` and `views::contribution` and compared to 1e-9. Delivery transport is
//! worked out by hand, as the page describes it: a line's share of its shipment's emissions over
//! the line's quantity, plus what the shipper had already paid to receive it.
//!
//! If a figure disagrees, either the page's arithmetic is wrong (fix the page) or the code no
//! longer computes what the page says (the method changed: say so on the page, and in its
//! version).

use std::collections::HashSet;

use serde_json::Value;
use stigmergy_domain::rules::{CaptureState, Directory, Outcome, RetractedEvents, Seal};
use stigmergy_domain::views::contribution::{self, Attribution, ContributionConfig, InputShare};
use stigmergy_domain::views::footprint::{self, Factors, Footprint, InputFootprint};
use stigmergy_domain::{
    BatchFabricated, ContributionRecorded, CountryCode, DataQuality, DesignForked, Event, EventId,
    EventPayload, Iri, LogPosition, MaterialSourced, OrganizationId, ShipmentDispatched,
    Submission, Timestamp, Unit,
};

const PAGE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/methods.md"
));

/// The organisations of the example, and the identifiers the server assigned them.
const ORGANISATIONS: [(&str, &str); 5] = [
    ("<studio>", "urn:uuid:0195d1c0-5a1e-7c4a-9d4e-000000057d10"),
    ("<mill>", "urn:uuid:0195d1c0-5a1e-7c4a-9d4e-00000000a111"),
    ("<maker>", "urn:uuid:0195d1c0-5a1e-7c4a-9d4e-0000000a1e55"),
    ("<buyer>", "urn:uuid:0195d1c0-5a1e-7c4a-9d4e-0000000b0b00"),
    ("<cafe>", "urn:uuid:0195d1c0-5a1e-7c4a-9d4e-0000000cafe0"),
];

/// When the server recorded the events: after the last of them happened.
const RECORDED_AT: &str = "2026-06-01T00:00:00Z";

const TOLERANCE: f64 = 1e-9;

fn iri(text: &str) -> Iri {
    Iri::parse(text).expect("a valid IRI")
}

fn organisation(placeholder: &str) -> OrganizationId {
    let (_, id) = ORGANISATIONS
        .iter()
        .find(|(name, _)| *name == placeholder)
        .expect("an organisation of the example");
    iri(id)
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= TOLERANCE,
        "{what}: the code gives {got}, docs/methods.md says {want}"
    );
}

// ---------------------------------------------------------------------------------------------
// The events, from the page

/// The `json` blocks of the worked example, in order, with the placeholders replaced.
fn example_json() -> Vec<Value> {
    let start = PAGE
        .find("\n## 4. Worked example")
        .expect("docs/methods.md has a section \"4. Worked example\"");
    let section = &PAGE[start + 1..];
    let section = section.find("\n## ").map_or(section, |end| &section[..end]);
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find("```json\n") {
        let body = &rest[open + "```json\n".len()..];
        let close = body.find("```").expect("a json block is closed");
        let mut text = body[..close].to_owned();
        for (placeholder, id) in ORGANISATIONS {
            text = text.replace(placeholder, id);
        }
        let value: Value = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("a json block does not parse ({error}):\n{text}"));
        blocks.push(value);
        rest = &body[close + 3..];
    }
    blocks
}

struct Members(HashSet<OrganizationId>);

impl Directory for Members {
    fn organization_exists(&self, id: &OrganizationId) -> bool {
        self.0.contains(id)
    }
}

/// Every event of the page, sealed and admitted by capture in the page's order.
fn admitted_events() -> Vec<Event> {
    let members = Members(ORGANISATIONS.iter().map(|(_, id)| iri(id)).collect());
    let mut state = CaptureState::new();
    let recorded_at = Timestamp::parse(RECORDED_AT).expect("a valid timestamp");
    let mut events = Vec::new();
    for (n, json) in example_json().into_iter().enumerate() {
        let recorded_by = json
            .get("recordedBy")
            .and_then(Value::as_str)
            .map(iri)
            .expect("every event of the example says who records it");
        let submission = Submission::from_json(json.clone())
            .unwrap_or_else(|error| panic!("event {} does not parse: {error:?}", n + 1));
        let seal = Seal {
            recorded_by,
            recorded_at,
            minted_id: EventId::from_uuid(uuid::Uuid::from_u128(0xe0_0000 + n as u128)),
        };
        let event = state
            .seal(submission, &seal)
            .unwrap_or_else(|refusal| panic!("event {} is refused: {refusal:?}", n + 1));
        let outcome = state
            .admit(&event, &members, &RetractedEvents::new())
            .unwrap_or_else(|refusal| panic!("event {} is refused: {refusal:?}", n + 1));
        assert_eq!(outcome, Outcome::New, "event {}", n + 1);
        state.set_position(&event.event_id, LogPosition(n as u64 + 1));
        events.push(event);
    }
    events
}

/// The example's events, by what they are about.
struct Example {
    design_contributions: Vec<ContributionRecorded>,
    fork: DesignForked,
    fork_contributions: Vec<ContributionRecorded>,
    oak: MaterialSourced,
    steel: MaterialSourced,
    batch: BatchFabricated,
    /// Mill → workshop, workshop → shop, shop → café.
    shipments: [ShipmentDispatched; 3],
}

const DESIGN: &str = "https://studio.example.org/designs/stool";
const FORK: &str = "https://maker.example.org/designs/stool-oak-steel";

fn example() -> Example {
    let events = admitted_events();
    assert_eq!(events.len(), 14, "the example has fourteen events");
    let contributions_to = |target: &str| -> Vec<ContributionRecorded> {
        events
            .iter()
            .filter_map(|e| match &e.payload {
                EventPayload::ContributionRecorded(p) if p.target == iri(target) => Some(p.clone()),
                _ => None,
            })
            .collect()
    };
    let lots: Vec<MaterialSourced> = events
        .iter()
        .filter_map(|e| match &e.payload {
            EventPayload::MaterialSourced(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    let shipments: Vec<ShipmentDispatched> = events
        .iter()
        .filter_map(|e| match &e.payload {
            EventPayload::ShipmentDispatched(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    let fork = events.iter().find_map(|e| match &e.payload {
        EventPayload::DesignForked(p) => Some(p.clone()),
        _ => None,
    });
    let batch = events.iter().find_map(|e| match &e.payload {
        EventPayload::BatchFabricated(p) => Some(p.clone()),
        _ => None,
    });
    let [oak, steel]: [MaterialSourced; 2] = lots.try_into().expect("two lots");
    Example {
        design_contributions: contributions_to(DESIGN),
        fork: fork.expect("a fork"),
        fork_contributions: contributions_to(FORK),
        oak,
        steel,
        batch: batch.expect("a batch"),
        shipments: shipments.try_into().expect("three shipments"),
    }
}

/// The configuration of the example: the defaults, with road freight at 0.1 kg CO2e per
/// tonne-km and the grid of France at 0.05 kg CO2e per kWh (the page's TOML block).
fn factors() -> Factors {
    let mut factors = Factors::default();
    factors.transport.road = 0.1;
    factors
        .grid
        .by_country
        .insert(CountryCode::parse("FR").expect("a country code"), 0.05);
    factors
}

// ---------------------------------------------------------------------------------------------
// Footprints

#[test]
fn every_event_of_the_example_is_admitted_by_capture() {
    let events = admitted_events();
    assert_eq!(events.len(), 14);
}

fn check_footprint(
    got: &Footprint,
    [materials, fabrication, transport]: [f64; 3],
    unit: Unit,
    recycled_content: f64,
    primary_data_share: f64,
    what: &str,
) {
    close(
        got.per_unit.materials,
        materials,
        &format!("{what}: materials"),
    );
    close(
        got.per_unit.fabrication,
        fabrication,
        &format!("{what}: fabrication"),
    );
    close(
        got.per_unit.transport,
        transport,
        &format!("{what}: transport"),
    );
    assert_eq!(got.unit, unit, "{what}: unit");
    close(
        got.recycled_content,
        recycled_content,
        &format!("{what}: recycled content"),
    );
    close(
        got.primary_data_share,
        primary_data_share,
        &format!("{what}: primary data share"),
    );
    assert!(got.missing_inputs.is_empty(), "{what}: no input is missing");
    assert_eq!(
        (got.method, got.method_version),
        ("stigmergy-cradle-to-gate", "1")
    );
}

/// One line's emissions per unit and whether they were measured, the line carrying `resource`.
fn hop(shipment: &ShipmentDispatched, resource: &str, factors: &Factors) -> (f64, DataQuality) {
    let emissions = footprint::shipment_emissions(shipment, factors);
    let line = emissions
        .lines
        .iter()
        .find(|l| l.resource == iri(resource))
        .expect("the shipment carries the resource");
    (line.per_unit, emissions.data_quality)
}

const OAK: &str = "https://forest-mill.example.org/lots/oak-17";
const STEEL: &str = "https://maker.example.org/lots/steel-3";
const STOOLS: &str = "https://maker.example.org/batches/stools-2026-04";

#[test]
fn the_lots_carry_their_declared_factors() {
    let example = example();
    check_footprint(
        &footprint::lot(&example.oak),
        [0.5, 0.0, 0.0],
        Unit::Kilogram,
        0.0,
        1.0,
        "oak",
    );
    check_footprint(
        &footprint::lot(&example.steel),
        [0.6, 0.0, 0.0],
        Unit::Kilogram,
        1.0,
        0.0,
        "steel",
    );
}

#[test]
fn the_oak_shipment_is_modelled_from_distance_and_mass() {
    let example = example();
    let [to_workshop, _, _] = &example.shipments;
    let emissions = footprint::shipment_emissions(to_workshop, &factors());
    // 250 km × 0.1 t × 0.1 kg CO2e per tonne-km, all of it to the one line of 100 kg.
    close(emissions.total_kg_co2e, 2.5, "oak shipment total");
    close(emissions.lines[0].kg_co2e, 2.5, "oak line");
    close(emissions.lines[0].per_unit, 0.025, "oak shipment per kg");
    assert_eq!(emissions.data_quality, DataQuality::Secondary);
    assert!(!emissions.distance_missing && !emissions.masses_missing);
}

#[test]
fn one_stool_is_five_kilograms_of_co2e_a_quarter_recycled_and_63_percent_primary() {
    let example = example();
    let factors = factors();
    let [to_workshop, _, _] = &example.shipments;
    // Delivery transport to the workshop: the mill sourced the oak (0 before this hop), plus
    // the hop's 0.025 per kg, modelled. The workshop sourced the steel itself: 0.
    let (oak_hop, quality) = hop(to_workshop, OAK, &factors);
    assert_eq!(quality, DataQuality::Secondary);
    let inputs = [
        InputFootprint {
            resource: iri(OAK),
            footprint: Some(footprint::lot(&example.oak)),
            delivery_transport_per_unit: 0.0 + oak_hop,
            delivery_transport_primary_share: 0.0,
        },
        InputFootprint {
            resource: iri(STEEL),
            footprint: Some(footprint::lot(&example.steel)),
            delivery_transport_per_unit: 0.0,
            delivery_transport_primary_share: 0.0,
        },
    ];
    let stool = footprint::batch(&example.batch, &inputs, &[], &factors);
    // materials (60 × 0.5 + 20 × 0.6) / 10, fabrication (100 kWh × 0.05 + 1.5) / 10, transport
    // 60 × 0.025 / 10; recycled 20 / 80; primary (30 + 1.5) / 50.
    check_footprint(&stool, [4.2, 0.65, 0.15], Unit::Piece, 0.25, 0.63, "stool");
    close(stool.per_unit.total(), 5.0, "stool total");
}

#[test]
fn a_stool_delivered_to_the_shop_and_on_to_the_cafe_adds_each_measured_leg() {
    let example = example();
    let factors = factors();
    let [_, to_shop, to_cafe] = &example.shipments;
    // The van's measured 0.8 kg over 4 stools; the workshop made them (0 before this hop).
    let (shop_hop, quality) = hop(to_shop, STOOLS, &factors);
    assert_eq!(quality, DataQuality::Primary);
    close(
        footprint::shipment_emissions(to_shop, &factors).total_kg_co2e,
        0.8,
        "measured, not modelled",
    );
    let at_shop = 0.0 + shop_hop;
    close(at_shop, 0.2, "delivery transport to the shop, per stool");
    close(5.0 + at_shop, 5.2, "a stool at the shop");
    // 0.2 kg over 2 stools, after the shop's own 0.2.
    let (cafe_hop, quality) = hop(to_cafe, STOOLS, &factors);
    assert_eq!(quality, DataQuality::Primary);
    let at_cafe = at_shop + cafe_hop;
    close(cafe_hop, 0.1, "the café leg, per stool");
    close(at_cafe, 0.3, "delivery transport to the café, per stool");
    close(5.0 + at_cafe, 5.3, "a stool at the café");
}

// ---------------------------------------------------------------------------------------------
// Attributions

fn person(name: &str) -> Iri {
    iri(&format!("https://people.example.org/{name}"))
}

fn check_attribution(got: &Attribution, want: &[(Iri, f64)], what: &str) {
    assert_eq!(got.ranked().len(), want.len(), "{what}: {:?}", got.ranked());
    for (agent, share) in want {
        close(got.share_of(agent), *share, &format!("{what}: {agent}"));
    }
    close(got.total(), 1.0, &format!("{what}: total"));
}

struct Attributions {
    design: Attribution,
    fork: Attribution,
    inputs: [(f64, Attribution); 2],
}

fn attributions(example: &Example, config: &ContributionConfig) -> Attributions {
    let design = contribution::design(
        &organisation("<studio>"),
        &example.design_contributions.iter().collect::<Vec<_>>(),
        config,
    );
    let own = contribution::design(
        &organisation("<maker>"),
        &example.fork_contributions.iter().collect::<Vec<_>>(),
        config,
    );
    let fork = contribution::fork(&own, example.fork.upstream_share.get(), Some(&design));
    // Every input is a mass: each weighs its kilograms. A lot is 100 % its supplier.
    let weight = |lot: &str| {
        example
            .batch
            .inputs
            .iter()
            .find(|i| i.resource == iri(lot))
            .map(|i| i.quantity.measure().amount)
            .expect("an input of the batch")
    };
    Attributions {
        design,
        fork,
        inputs: [
            (weight(OAK), Attribution::sole(&example.oak.supplier.id)),
            (weight(STEEL), Attribution::sole(&example.steel.supplier.id)),
        ],
    }
}

#[test]
fn the_design_and_its_fork_share_by_effort_and_upstream_share() {
    let example = example();
    let config = ContributionConfig::default();
    let got = attributions(&example, &config);
    check_attribution(
        &got.design,
        &[(person("ana"), 0.75), (person("ben"), 0.25)],
        "design",
    );
    check_attribution(
        &got.fork,
        &[
            (person("eve"), 0.6),
            (person("ana"), 0.3),
            (person("ben"), 0.1),
        ],
        "fork",
    );
}

#[test]
fn the_batch_mixes_design_labour_and_inputs_three_five_two() {
    let example = example();
    let config = ContributionConfig::default();
    let got = attributions(&example, &config);
    let inputs: Vec<InputShare<'_>> = got
        .inputs
        .iter()
        .map(|(weight, attribution)| InputShare {
            weight: *weight,
            attribution: Some(attribution),
        })
        .collect();
    let maker = organisation("<maker>");
    let mill = iri("https://forest-mill.example.org");
    let scrap = iri("https://scrap-yard.example.org");
    let batch = contribution::batch(
        &maker,
        Some(&got.fork),
        &example.batch.labour,
        &[],
        &inputs,
        &config,
    );
    check_attribution(
        &batch,
        &[
            (person("eve"), 0.18),
            (person("ana"), 0.09),
            (person("ben"), 0.03),
            (person("carla"), 0.30),
            (person("dani"), 0.20),
            (mill.clone(), 0.15),
            (scrap.clone(), 0.05),
        ],
        "batch",
    );
    // Without the labour, design and inputs weigh 0.6 and 0.4.
    let without_labour = contribution::batch(&maker, Some(&got.fork), &[], &[], &inputs, &config);
    check_attribution(
        &without_labour,
        &[
            (person("eve"), 0.36),
            (person("ana"), 0.18),
            (person("ben"), 0.06),
            (mill, 0.30),
            (scrap, 0.10),
        ],
        "batch without labour",
    );
}
