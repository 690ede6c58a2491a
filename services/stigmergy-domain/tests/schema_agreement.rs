//! The committed JSON Schemas (`schemas/`) and the Rust types agree.
//!
//! Capture validates against the schemas and then parses with the types; clients validate against
//! the same schemas. So:
//!
//! - every submission and every stored event the types write is accepted by its schema (and reads
//!   back as the same value);
//! - starting from such a value and breaking it at a random place, the types and the schema give
//!   the same answer: what one refuses, the other refuses too.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::LazyLock;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::{Value, json};
use stigmergy_domain::schema::{ENVELOPE_SCHEMA_PATH, submission_schema_path};
use stigmergy_domain::*;

// ---------------------------------------------------------------------------------------------
// The committed schemas

fn load_schema(path: &str) -> jsonschema::Validator {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../schemas")
        .join(path);
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", file.display()));
    let schema: Value = serde_json::from_str(&text).expect("a committed schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|error| panic!("{path} does not compile: {error}"))
}

static SUBMISSION_SCHEMAS: LazyLock<HashMap<EventType, jsonschema::Validator>> =
    LazyLock::new(|| {
        EventType::ALL
            .iter()
            .map(|&t| (t, load_schema(&submission_schema_path(t))))
            .collect()
    });

static ENVELOPE_SCHEMA: LazyLock<jsonschema::Validator> =
    LazyLock::new(|| load_schema(ENVELOPE_SCHEMA_PATH));

fn schema_errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Strategies for valid values, built through the types' own constructors

fn iri_text() -> BoxedStrategy<String> {
    prop_oneof![
        any::<u128>().prop_map(|n| format!("urn:uuid:{}", uuid::Uuid::from_u128(n))),
        (
            "(id|class|idpat)",
            "[a-z0-9]{1,8}",
            "[A-Za-z0-9.%*_-]{1,24}"
        )
            .prop_map(|(kind, scheme, rest)| format!("urn:epc:{kind}:{scheme}:{rest}")),
        concat!(
            "https://[A-Za-z0-9]([A-Za-z0-9.-]{0,20}[A-Za-z0-9])?(:[0-9]{1,5})?",
            "(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]{0,30})?",
            "([?][A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,20})?",
            "(#[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,20})?",
        ),
        Just("https://id.gs1.org/01/09520123456788/10/ABC123".to_owned()),
        // Up to the longest identifier accepted (2048 characters).
        (1990..=2028usize).prop_map(|n| format!("https://example.org/{}", "a".repeat(n))),
    ]
    .boxed()
}

fn iri() -> BoxedStrategy<Iri> {
    iri_text()
        .prop_map(|text| Iri::parse(text).expect("the strategy writes valid identifiers"))
        .boxed()
}

fn event_id() -> BoxedStrategy<EventId> {
    any::<u128>()
        .prop_map(|n| EventId::from_uuid(uuid::Uuid::from_u128(n)))
        .boxed()
}

fn licence() -> BoxedStrategy<Licence> {
    prop_oneof![
        select(vec![
            "CERN-OHL-S-2.0",
            "CERN-OHL-P-2.0",
            "CC-BY-SA-4.0",
            "GPL-3.0-or-later",
            "MIT"
        ])
        .prop_map(str::to_owned),
        "[A-Za-z0-9][A-Za-z0-9.+-]{0,99}",
        iri_text(),
    ]
    .prop_map(|text| Licence::parse(text).expect("the strategy writes valid licences"))
    .boxed()
}

fn country() -> BoxedStrategy<CountryCode> {
    "[A-Z]{2}"
        .prop_map(|text| CountryCode::parse(&text).expect("two upper-case letters"))
        .boxed()
}

fn chars(min: usize, max: usize) -> BoxedStrategy<String> {
    vec(any::<char>(), min..=max)
        .prop_map(|chars| chars.into_iter().collect())
        .boxed()
}

fn name() -> BoxedStrategy<Name> {
    prop_oneof![
        4 => "[A-Za-z0-9 ]{1,20}".boxed(),
        1 => chars(1, Name::MAX_CHARS),
        1 => Just("é".repeat(Name::MAX_CHARS)).boxed(),
    ]
    .prop_map(|text| Name::parse(text).expect("the strategy writes valid names"))
    .boxed()
}

fn text() -> BoxedStrategy<Text> {
    prop_oneof![
        4 => "[ -~]{1,80}".boxed(),
        1 => chars(1, Text::MAX_CHARS),
    ]
    .prop_map(|text| Text::parse(text).expect("the strategy writes valid texts"))
    .boxed()
}

/// RFC 3339 timestamps with any offset, from the whole range the types accept (years 0000 and
/// 9999 only in UTC).
fn timestamp() -> BoxedStrategy<Timestamp> {
    let year =
        prop_oneof![3 => 1970..=2100i32, 1 => 0..=9999i32, 1 => select(vec![0, 1, 9998, 9999])];
    let fraction = option::of((1..=9usize, any::<u64>())).prop_map(|f| {
        f.map_or(String::new(), |(digits, n)| {
            format!(".{:0digits$}", n % 10u64.pow(digits as u32))
        })
    });
    let offset = prop_oneof![
        Just("Z".to_owned()),
        ("[+-]", 0..24u32, 0..60u32).prop_map(|(sign, h, m)| format!("{sign}{h:02}:{m:02}")),
    ];
    (
        year,
        1..=12u32,
        1..=31u32,
        0..24u32,
        0..60u32,
        0..60u32,
        fraction,
        offset,
    )
        .prop_filter_map(
            "a day of the calendar",
            |(y, mo, d, h, mi, s, fraction, offset)| {
                chrono::NaiveDate::from_ymd_opt(y, mo, d)?;
                let offset = if y == 0 || y == 9999 {
                    "Z".to_owned()
                } else {
                    offset
                };
                let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{fraction}{offset}");
                Some(Timestamp::parse(&text).unwrap_or_else(|e| panic!("{text} is refused: {e}")))
            },
        )
        .boxed()
}

fn amount() -> BoxedStrategy<Amount> {
    prop_oneof![
        Just(0.0),
        Just(1e15),
        0.0..=1e15,
        0.0..1000.0,
        (0..100_000u32).prop_map(f64::from)
    ]
    .prop_map(|v| Amount::new(v).expect("in range"))
    .boxed()
}

fn positive_amount() -> BoxedStrategy<PositiveAmount> {
    prop_oneof![
        Just(1e15),
        Just(f64::MIN_POSITIVE),
        Just(5e-324),
        (0.0..=1e15).prop_filter("positive", |v| *v > 0.0),
        0.001..1000.0,
        (1..100_000u32).prop_map(f64::from),
    ]
    .prop_map(|v| PositiveAmount::new(v).expect("in range"))
    .boxed()
}

fn fraction() -> BoxedStrategy<Fraction> {
    prop_oneof![Just(0.0), Just(1.0), 0.0..=1.0]
        .prop_map(|v| Fraction::new(v).expect("in range"))
        .boxed()
}

// The enums, listed by exhaustive matches so that a new variant must be added here too.

fn unit() -> BoxedStrategy<Unit> {
    fn listed(unit: Unit) -> Unit {
        match unit {
            Unit::Kilogram
            | Unit::Gram
            | Unit::Milligram
            | Unit::Tonne
            | Unit::Pound
            | Unit::Piece
            | Unit::One
            | Unit::Set
            | Unit::Litre
            | Unit::Millilitre
            | Unit::CubicMetre
            | Unit::Metre
            | Unit::SquareMetre
            | Unit::KilowattHour => unit,
        }
    }
    select(vec![
        Unit::Kilogram,
        Unit::Gram,
        Unit::Milligram,
        Unit::Tonne,
        Unit::Pound,
        Unit::Piece,
        Unit::One,
        Unit::Set,
        Unit::Litre,
        Unit::Millilitre,
        Unit::CubicMetre,
        Unit::Metre,
        Unit::SquareMetre,
        Unit::KilowattHour,
    ])
    .prop_map(listed)
    .boxed()
}

fn mass_unit() -> BoxedStrategy<MassUnit> {
    fn listed(unit: MassUnit) -> MassUnit {
        match unit {
            MassUnit::Kilogram
            | MassUnit::Gram
            | MassUnit::Milligram
            | MassUnit::Tonne
            | MassUnit::Pound => unit,
        }
    }
    select(vec![
        MassUnit::Kilogram,
        MassUnit::Gram,
        MassUnit::Milligram,
        MassUnit::Tonne,
        MassUnit::Pound,
    ])
    .prop_map(listed)
    .boxed()
}

fn energy_unit() -> BoxedStrategy<EnergyUnit> {
    fn listed(unit: EnergyUnit) -> EnergyUnit {
        match unit {
            EnergyUnit::KilowattHour | EnergyUnit::MegawattHour | EnergyUnit::Megajoule => unit,
        }
    }
    select(vec![
        EnergyUnit::KilowattHour,
        EnergyUnit::MegawattHour,
        EnergyUnit::Megajoule,
    ])
    .prop_map(listed)
    .boxed()
}

fn contribution_kind() -> BoxedStrategy<ContributionKind> {
    use ContributionKind::*;
    fn listed(kind: ContributionKind) -> ContributionKind {
        match kind {
            Design | Engineering | Documentation | Testing | Fabrication | Review | Maintenance
            | Other => kind,
        }
    }
    select(vec![
        Design,
        Engineering,
        Documentation,
        Testing,
        Fabrication,
        Review,
        Maintenance,
        Other,
    ])
    .prop_map(listed)
    .boxed()
}

fn effort_unit() -> BoxedStrategy<EffortUnit> {
    fn listed(unit: EffortUnit) -> EffortUnit {
        match unit {
            EffortUnit::Hours | EffortUnit::Points => unit,
        }
    }
    select(vec![EffortUnit::Hours, EffortUnit::Points])
        .prop_map(listed)
        .boxed()
}

fn data_quality() -> BoxedStrategy<DataQuality> {
    fn listed(quality: DataQuality) -> DataQuality {
        match quality {
            DataQuality::Primary | DataQuality::Secondary => quality,
        }
    }
    select(vec![DataQuality::Primary, DataQuality::Secondary])
        .prop_map(listed)
        .boxed()
}

fn transport_mode() -> BoxedStrategy<TransportMode> {
    use TransportMode::*;
    fn listed(mode: TransportMode) -> TransportMode {
        match mode {
            Road | Rail | Sea | InlandWaterway | Air | Bicycle => mode,
        }
    }
    select(vec![Road, Rail, Sea, InlandWaterway, Air, Bicycle])
        .prop_map(listed)
        .boxed()
}

/// Lists of a few items, sometimes exactly as long as allowed.
fn list<T: Clone + std::fmt::Debug + 'static, const MIN: usize, const MAX: usize>(
    item: BoxedStrategy<T>,
) -> BoxedStrategy<List<T, MIN, MAX>> {
    prop_oneof![
        30 => vec(item.clone(), MIN..=MIN + 3),
        1 => vec(item, MAX..=MAX),
    ]
    .prop_map(|items| List::new(items).expect("the strategy respects the bounds"))
    .boxed()
}

fn quantity() -> BoxedStrategy<Quantity> {
    (positive_amount(), unit())
        .prop_map(|(amount, unit)| Quantity { amount, unit })
        .boxed()
}

fn mass_quantity() -> BoxedStrategy<MassQuantity> {
    (positive_amount(), mass_unit())
        .prop_map(|(amount, unit)| MassQuantity { amount, unit })
        .boxed()
}

fn place() -> BoxedStrategy<Place> {
    (option::of(iri()), name(), country())
        .prop_map(|(id, name, country)| Place { id, name, country })
        .boxed()
}

fn agent() -> BoxedStrategy<Agent> {
    (iri(), option::of(name()))
        .prop_map(|(id, name)| Agent { id, name })
        .boxed()
}

fn energy() -> BoxedStrategy<Energy> {
    (amount(), energy_unit(), option::of(amount()))
        .prop_map(|(amount, unit, grid_factor_kg_co2e_per_kwh)| Energy {
            amount,
            unit,
            grid_factor_kg_co2e_per_kwh,
        })
        .boxed()
}

fn input() -> BoxedStrategy<Input> {
    (iri(), quantity())
        .prop_map(|(resource, quantity)| Input { resource, quantity })
        .boxed()
}

fn payload(event_type: EventType) -> BoxedStrategy<EventPayload> {
    match event_type {
        EventType::DesignPublished => (
            iri(),
            name(),
            licence(),
            option::of(iri()),
            name(),
            option::of(text()),
        )
            .prop_map(
                |(design_id, name, licence, source_uri, version, description)| {
                    EventPayload::DesignPublished(DesignPublished {
                        design_id,
                        name,
                        licence,
                        source_uri,
                        version,
                        description,
                    })
                },
            )
            .boxed(),
        EventType::DesignForked => (
            (iri(), iri(), name(), licence()),
            (option::of(iri()), name(), fraction(), option::of(text())),
        )
            .prop_map(
                |(
                    (design_id, parent_design_id, name, licence),
                    (source_uri, version, upstream_share, description),
                )| {
                    EventPayload::DesignForked(DesignForked {
                        design_id,
                        parent_design_id,
                        name,
                        licence,
                        source_uri,
                        version,
                        upstream_share,
                        description,
                    })
                },
            )
            .boxed(),
        EventType::ContributionRecorded => (
            iri(),
            agent(),
            contribution_kind(),
            (positive_amount(), effort_unit()),
            option::of(iri()),
            option::of(text()),
        )
            .prop_map(
                |(target, contributor, kind, (amount, unit), evidence, description)| {
                    EventPayload::ContributionRecorded(ContributionRecorded {
                        target,
                        contributor,
                        kind,
                        effort: Effort { amount, unit },
                        evidence,
                        description,
                    })
                },
            )
            .boxed(),
        EventType::MaterialSourced => (
            iri(),
            name(),
            quantity(),
            place(),
            agent(),
            amount(),
            data_quality(),
            fraction(),
        )
            .prop_map(
                |(
                    lot_id,
                    material,
                    quantity,
                    origin,
                    supplier,
                    kg_co2e_per_unit,
                    data_quality,
                    recycled_content,
                )| {
                    EventPayload::MaterialSourced(MaterialSourced {
                        lot_id,
                        material,
                        quantity,
                        origin,
                        supplier,
                        kg_co2e_per_unit,
                        data_quality,
                        recycled_content,
                    })
                },
            )
            .boxed(),
        EventType::BatchFabricated => {
            let labour = (iri(), amount())
                .prop_map(|(agent, hours)| Labour { agent, hours })
                .boxed();
            (
                iri(),
                iri(),
                quantity(),
                place(),
                list(input()),
                option::of(energy()),
                option::of(amount()),
                list(labour),
            )
                .prop_map(
                    |(
                        batch_id,
                        design_id,
                        quantity,
                        facility,
                        inputs,
                        energy,
                        direct_emissions_kg_co2e,
                        labour,
                    )| {
                        EventPayload::BatchFabricated(BatchFabricated {
                            batch_id,
                            design_id,
                            quantity,
                            facility,
                            inputs,
                            energy,
                            direct_emissions_kg_co2e,
                            labour,
                        })
                    },
                )
                .boxed()
        }
        EventType::ShipmentDispatched => {
            let line = (iri(), quantity(), option::of(mass_quantity()))
                .prop_map(|(resource, quantity, mass)| ShipmentLine {
                    resource,
                    quantity,
                    mass,
                })
                .boxed();
            (
                iri(),
                list(line),
                place(),
                place(),
                iri(),
                transport_mode(),
                option::of(amount()),
                option::of(amount()),
            )
                .prop_map(
                    |(
                        shipment_id,
                        lines,
                        from,
                        to,
                        consignee,
                        transport_mode,
                        distance_km,
                        measured_emissions_kg_co2e,
                    )| {
                        EventPayload::ShipmentDispatched(ShipmentDispatched {
                            shipment_id,
                            lines,
                            from,
                            to,
                            consignee,
                            transport_mode,
                            distance_km,
                            measured_emissions_kg_co2e,
                        })
                    },
                )
                .boxed()
        }
        EventType::ShipmentReceived => {
            let line = (iri(), quantity())
                .prop_map(|(resource, quantity)| ReceivedLine { resource, quantity })
                .boxed();
            (iri(), list(line), place())
                .prop_map(|(shipment_id, lines, location)| {
                    EventPayload::ShipmentReceived(ShipmentReceived {
                        shipment_id,
                        lines,
                        location,
                    })
                })
                .boxed()
        }
        EventType::BatchRepaired => (
            iri(),
            list(input()),
            option::of(energy()),
            option::of(amount()),
            option::of(text()),
        )
            .prop_map(
                |(resource, parts, energy, direct_emissions_kg_co2e, description)| {
                    EventPayload::BatchRepaired(BatchRepaired {
                        resource,
                        parts,
                        energy,
                        direct_emissions_kg_co2e,
                        description,
                    })
                },
            )
            .boxed(),
        EventType::BatchRecycled => {
            let output = (iri(), name(), quantity())
                .prop_map(|(lot_id, material, quantity)| OutputLot {
                    lot_id,
                    material,
                    quantity,
                })
                .boxed();
            (
                iri(),
                quantity(),
                place(),
                list(output),
                option::of(energy()),
                option::of(amount()),
            )
                .prop_map(
                    |(
                        resource,
                        quantity,
                        facility,
                        output_lots,
                        energy,
                        direct_emissions_kg_co2e,
                    )| {
                        EventPayload::BatchRecycled(BatchRecycled {
                            resource,
                            quantity,
                            facility,
                            output_lots,
                            energy,
                            direct_emissions_kg_co2e,
                        })
                    },
                )
                .boxed()
        }
        EventType::EventRetracted => (event_id(), text(), list(event_id()))
            .prop_map(|(event_id, reason, corrective_event_ids)| {
                EventPayload::EventRetracted(EventRetracted {
                    event_id,
                    reason,
                    corrective_event_ids,
                })
            })
            .boxed(),
    }
}

fn submission(event_type: EventType) -> BoxedStrategy<Submission> {
    (
        option::of(event_id()),
        timestamp(),
        option::of(iri()),
        option::of(iri()),
        payload(event_type),
    )
        .prop_map(
            |(event_id, occurred_at, recorded_by, subject, payload)| Submission {
                event_id,
                schema_version: CURRENT_SCHEMA_VERSION,
                occurred_at,
                recorded_by,
                subject,
                payload,
            },
        )
        .boxed()
}

fn any_event_type() -> BoxedStrategy<EventType> {
    select(EventType::ALL.to_vec()).boxed()
}

fn event() -> BoxedStrategy<Event> {
    any_event_type()
        .prop_flat_map(|event_type| {
            (
                event_id(),
                timestamp(),
                timestamp(),
                iri(),
                iri(),
                payload(event_type),
            )
        })
        .prop_map(
            |(event_id, occurred_at, recorded_at, recorded_by, subject, payload)| Event {
                event_id,
                schema_version: CURRENT_SCHEMA_VERSION,
                occurred_at,
                recorded_at,
                recorded_by,
                subject,
                payload,
            },
        )
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// Breaking a valid value

/// Values that are wrong almost anywhere, and a few that are right in some places.
static POOL: LazyLock<Vec<Value>> = LazyLock::new(|| {
    vec![
        // numbers
        json!(-1),
        json!(-0.5),
        json!(-1e-300),
        json!(0),
        json!(0.0),
        json!(-0.0),
        json!(1),
        json!(1.0),
        json!(1.5),
        json!(2),
        json!(1e15),
        json!(1.0000000000000002e15),
        json!(1e16),
        json!(10_000_000_000_000_000_u64),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1e308),
        // other types
        json!(null),
        json!(true),
        json!([]),
        json!([1]),
        json!({}),
        json!("12"),
        // strings
        json!(""),
        json!(" "),
        json!("x".repeat(200)),
        json!("x".repeat(201)),
        json!("x".repeat(300)),
        json!("é".repeat(201)),
        json!("x".repeat(4001)),
        // identifiers
        json!("urn:uuid:0191e1a4-7f43-7c4a-9d4e-1f2a3b4c5d6e"),
        json!("urn:uuid:0191E1A4-7F43-7C4A-9D4E-1F2A3B4C5D6E"),
        json!("urn:uuid:0191e1a47f437c4a9d4e1f2a3b4c5d6e"),
        json!("urn:epc:id:sgtin:0614141.107346.2017"),
        json!("urn:epc:id:SGTIN:0614141.107346.2017"),
        json!("urn:isbn:123"),
        json!("https://example.org/x"),
        json!("https://example.org:8443/a?b=c#d"),
        json!("http://example.org/x"),
        json!("https://exa mple.org"),
        json!("https://"),
        json!("https://-example.org"),
        json!("https://example.org/\u{e9}"),
        json!("https://example.org/x\n"),
        json!(format!("https://example.org/{}", "a".repeat(2028))),
        json!(format!("https://example.org/{}", "a".repeat(2029))),
        json!("0191e1a4-7f43-7c4a-9d4e-1f2a3b4c5d6e"),
        json!("0191E1A4-7F43-7C4A-9D4E-1F2A3B4C5D6E"),
        json!("0191e1a4-7f43-7c4a-9d4e-1f2a3b4c5d6"),
        json!("CERN-OHL-S-2.0"),
        json!("-MIT"),
        json!("MIT License"),
        json!("a".repeat(100)),
        json!("a".repeat(101)),
        // timestamps
        json!("2026-05-01T08:30:00Z"),
        json!("2026-05-01T10:30:00.250+02:00"),
        json!("2026-02-30T00:00:00Z"),
        json!("2026-01-01T23:59:60Z"),
        json!("2026-06-30T23:59:60Z"),
        json!("2026-01-01T00:00:00"),
        json!("2026-01-01 00:00:00Z"),
        json!("2026-01-01t00:00:00z"),
        json!("2026-01-01T24:00:00Z"),
        json!("2026-01-01T00:00:00+24:00"),
        json!("2026-01-01T00:00:00.Z"),
        json!("2026-01-01T00:00:00.1234567890Z"),
        json!("2100-02-29T00:00:00Z"),
        json!("2000-02-29T00:00:00Z"),
        json!("0000-01-01T00:30:00+01:00"),
        json!("0000-01-01T05:00:00Z"),
        json!("9999-12-31T23:30:00-01:00"),
        json!("9999-12-31T12:00:00Z"),
        json!("+2026-01-01T00:00:00Z"),
        // units and enumerations
        json!("KGM"),
        json!("kgm"),
        json!("KG"),
        json!("H87"),
        json!("KWH"),
        json!("MWH"),
        json!("3B"),
        json!("road"),
        json!("Road"),
        json!("hours"),
        json!("primary"),
        json!("design"),
        // countries
        json!("DE"),
        json!("de"),
        json!("DEU"),
        json!("D"),
        json!("ÄB"),
        // objects
        json!({ "amount": 1, "unit": "KGM" }),
        json!({ "amount": 0, "unit": "KGM" }),
        json!({ "amount": 1, "unit": "H87" }),
        json!({ "name": "Workshop", "country": "DE" }),
        json!({ "id": "https://example.org/x" }),
    ]
});

#[derive(Clone, Debug)]
enum Mutation {
    /// Replace the value at a random place with one from the pool.
    Replace(Index, Index),
    /// Add a field no type knows to a random object.
    AddUnknownField(Index),
    /// Remove a random field of a random object.
    RemoveField(Index, Index),
    /// Make a random list longer than any list may be.
    Overfill(Index, usize),
    /// Empty a random list.
    Empty(Index),
    /// Set a random field of a random object to null.
    Null(Index, Index),
}

fn mutation() -> BoxedStrategy<Mutation> {
    prop_oneof![
        8 => (any::<Index>(), any::<Index>()).prop_map(|(at, value)| Mutation::Replace(at, value)),
        1 => any::<Index>().prop_map(Mutation::AddUnknownField),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(at, field)| Mutation::RemoveField(at, field)),
        1 => (any::<Index>(), select(vec![101, 1001])).prop_map(|(at, len)| Mutation::Overfill(at, len)),
        1 => any::<Index>().prop_map(Mutation::Empty),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(at, field)| Mutation::Null(at, field)),
    ]
    .boxed()
}

/// JSON pointers of every value in `value`, itself included.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                pointers(
                    child,
                    format!("{at}/{}", key.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// Applies `mutation` to `value`; `None` when the value has no place it applies to.
fn mutate(mut value: Value, mutation: &Mutation) -> Option<Value> {
    let mut all = Vec::new();
    pointers(&value, String::new(), &mut all);
    let objects: Vec<&String> = all
        .iter()
        .filter(|p| value.pointer(p).is_some_and(Value::is_object))
        .collect();
    let arrays: Vec<&String> = all
        .iter()
        .filter(|p| value.pointer(p).is_some_and(Value::is_array))
        .collect();
    let pick = |from: &[&String], index: &Index| {
        (!from.is_empty()).then(|| from[index.index(from.len())].clone())
    };
    match mutation {
        Mutation::Replace(at, with) => {
            let at = &all[at.index(all.len())];
            *value.pointer_mut(at)? = with.get(&POOL).clone();
        }
        Mutation::AddUnknownField(at) => {
            let at = pick(&objects, at)?;
            value
                .pointer_mut(&at)?
                .as_object_mut()?
                .insert("colour".into(), json!("red"));
        }
        Mutation::RemoveField(at, field) | Mutation::Null(at, field) => {
            let at = pick(&objects, at)?;
            let object = value.pointer_mut(&at)?.as_object_mut()?;
            let key = object.keys().nth(field.index(object.len().max(1)))?.clone();
            if matches!(mutation, Mutation::Null(..)) {
                object.insert(key, Value::Null);
            } else {
                object.remove(&key);
            }
        }
        Mutation::Overfill(at, len) => {
            let at = pick(&arrays, at)?;
            let items = value.pointer_mut(&at)?.as_array_mut()?;
            let item = items.first().cloned().unwrap_or(json!({}));
            *items = vec![item; *len];
        }
        Mutation::Empty(at) => {
            let at = pick(&arrays, at)?;
            value.pointer_mut(&at)?.as_array_mut()?.clear();
        }
    }
    Some(value)
}

// ---------------------------------------------------------------------------------------------
// The properties

fn valid_submission_is_accepted(
    event_type: EventType,
    submission: Submission,
) -> Result<(), TestCaseError> {
    let json = submission.to_json();
    let errors = schema_errors(&SUBMISSION_SCHEMAS[&event_type], &json);
    prop_assert!(
        errors.is_empty(),
        "the {event_type} schema refuses what the types wrote: {errors:?}\n{json:#}"
    );
    let read_back = Submission::from_json(json.clone());
    prop_assert_eq!(
        read_back,
        Ok(submission),
        "the types do not read back what they wrote:\n{:#}",
        json
    );
    Ok(())
}

fn mutated_submission_agrees(
    event_type: EventType,
    submission: Submission,
    mutation: Mutation,
) -> Result<(), TestCaseError> {
    let Some(json) = mutate(submission.to_json(), &mutation) else {
        return Ok(());
    };
    let types = Submission::from_json(json.clone());
    let errors = schema_errors(&SUBMISSION_SCHEMAS[&event_type], &json);
    match (&types, errors.is_empty()) {
        (Err(refusal), true) => {
            prop_assert!(
                false,
                "the types refuse ({refusal}) but the {event_type} schema accepts:\n{json:#}"
            )
        }
        (Ok(_), false) => {
            prop_assert!(
                false,
                "the {event_type} schema refuses ({errors:?}) but the types accept:\n{json:#}"
            )
        }
        _ => {}
    }
    Ok(())
}

macro_rules! agreement {
    ($($module:ident => $event_type:ident),* $(,)?) => {$(
        mod $module {
            use super::*;

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(256))]

                #[test]
                fn every_submission_the_types_write_is_accepted_by_its_schema(
                    submission in submission(EventType::$event_type),
                ) {
                    valid_submission_is_accepted(EventType::$event_type, submission)?;
                }

                #[test]
                fn the_types_and_the_schema_refuse_the_same_broken_submissions(
                    submission in submission(EventType::$event_type),
                    mutation in mutation(),
                ) {
                    mutated_submission_agrees(EventType::$event_type, submission, mutation)?;
                }
            }
        }
    )*};
}

agreement! {
    design_published => DesignPublished,
    design_forked => DesignForked,
    contribution_recorded => ContributionRecorded,
    material_sourced => MaterialSourced,
    batch_fabricated => BatchFabricated,
    shipment_dispatched => ShipmentDispatched,
    shipment_received => ShipmentReceived,
    batch_repaired => BatchRepaired,
    batch_recycled => BatchRecycled,
    event_retracted => EventRetracted,
}

mod envelope {
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_stored_event_is_accepted_by_the_envelope_schema(event in event()) {
            let json = serde_json::to_value(&event).expect("an event serialises");
            let errors = schema_errors(&ENVELOPE_SCHEMA, &json);
            prop_assert!(errors.is_empty(), "the envelope schema refuses a stored event: {errors:?}\n{json:#}");
            let read_back: Result<Event, _> = serde_json::from_value(json.clone());
            prop_assert_eq!(read_back.ok(), Some(event), "the types do not read back what they wrote:\n{:#}", json);
        }

        #[test]
        fn the_types_and_the_envelope_schema_refuse_the_same_broken_events(event in event(), mutation in mutation()) {
            let json = serde_json::to_value(&event).expect("an event serialises");
            let Some(json) = mutate(json, &mutation) else { return Ok(()) };
            let types = serde_json::from_value::<Event>(json.clone());
            let errors = schema_errors(&ENVELOPE_SCHEMA, &json);
            match (&types, errors.is_empty()) {
                (Err(refusal), true) => {
                    prop_assert!(false, "the types refuse ({refusal}) but the envelope schema accepts:\n{json:#}")
                }
                (Ok(_), false) => {
                    prop_assert!(false, "the envelope schema refuses ({errors:?}) but the types accept:\n{json:#}")
                }
                _ => {}
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Examples at the edges, checked against every submission schema

/// `check(value, accepted)`: a DesignPublished submission with `value` at `pointer` is accepted
/// (or refused) by both the types and the schema.
#[track_caller]
fn check_at(pointer: &str, value: Value, accepted: bool) {
    let mut json = json!({
        "type": "DesignPublished",
        "occurredAt": "2026-05-01T08:30:00Z",
        "payload": { "designId": "https://example.org/d", "name": "Stool", "licence": "MIT", "version": "1" },
    });
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer has a slash");
    json.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .expect("the parent is an object")
        .insert(key.to_owned(), value.clone());
    let types = Submission::from_json(json.clone());
    let schema = schema_errors(&SUBMISSION_SCHEMAS[&EventType::DesignPublished], &json);
    assert_eq!(
        types.is_ok(),
        accepted,
        "types on {pointer} = {value}: {types:?}"
    );
    assert_eq!(
        schema.is_empty(),
        accepted,
        "schema on {pointer} = {value}: {schema:?}"
    );
}

#[test]
fn timestamps_at_the_ends_of_the_calendar_stay_writable() {
    // Whatever the offset, an accepted instant is written back in UTC as a four-digit year.
    for text in [
        "0001-01-01T00:00:00+23:59",
        "9998-12-31T23:59:59-23:59",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999999Z",
    ] {
        check_at("/occurredAt", json!(text), true);
        let written = Timestamp::parse(text).expect("accepted").to_string();
        check_at("/occurredAt", json!(written), true);
    }
    // In UTC these would be the years -1 and 10000.
    for text in [
        "0000-01-01T00:30:00+01:00",
        "9999-12-31T23:30:00-01:00",
        "0000-06-01T00:00:00+00:00",
    ] {
        check_at("/occurredAt", json!(text), false);
    }
}

#[test]
fn optional_envelope_fields_are_absent_or_valid_never_null() {
    check_at("/eventId", json!(null), false);
    check_at("/recordedBy", json!(null), false);
    check_at("/subject", json!(null), false);
    check_at("/schemaVersion", json!(null), false);
}

#[test]
fn the_schema_version_is_the_number_one_however_it_is_written() {
    check_at("/schemaVersion", json!(1), true);
    check_at("/schemaVersion", json!(1.0), true);
    check_at("/schemaVersion", json!(2), false);
    check_at("/schemaVersion", json!("1"), false);
}

#[test]
fn optional_payload_fields_may_be_null() {
    check_at("/payload/sourceUri", json!(null), true);
    check_at("/payload/description", json!(null), true);
}
