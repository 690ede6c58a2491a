//! The generator: a model of the federation (who maintains which design and batch, who holds how
//! much of what, which shipments are under way, which events could still be retracted) that
//! picks the next event from what the model allows, and updates the model as capture would.

use std::collections::VecDeque;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stigmergy_domain::{
    Agent, Amount, BatchFabricated, BatchRecycled, BatchRepaired, CURRENT_SCHEMA_VERSION,
    ContributionKind, ContributionRecorded, CountryCode, DataQuality, DesignForked,
    DesignPublished, Effort, EffortUnit, Energy, EnergyUnit, Event, EventId, EventPayload,
    EventRetracted, Fraction, Input, Iri, Labour, Licence, List, MassQuantity, MassUnit,
    MaterialSourced, Name, OrganizationId, OutputLot, Place, PositiveAmount, Quantity,
    ReceivedLine, ShipmentDispatched, ShipmentLine, ShipmentReceived, Text, Timestamp,
    TransportMode, Unit,
};

use crate::Mix;
use crate::catalogue::{self, MATERIALS};
use crate::holdings::Holdings;

/// Where the stream's clock starts.
const START: &str = "2026-01-01T00:00:00Z";

/// The share of dispatches that ship a portion of a hub lot from its supplier.
const HUB_SHIPMENT_SHARE: f64 = 0.2;

/// How often a batch made by an organisation holding a hub lot uses it.
const HUB_INPUT_SHARE: f64 = 0.12;

/// Shipments are received roughly in the order they left: a receipt picks among this many of the
/// oldest shipments under way.
const RECEIPT_WINDOW: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Publish,
    Fork,
    Contribute,
    Source,
    Fabricate,
    Dispatch,
    Receive,
    Repair,
    Recycle,
    Retract,
}

#[derive(Debug)]
struct Organisation {
    id: OrganizationId,
    /// The `https://` site its design files, commits and facility live under.
    site: String,
    facility: Place,
    people: Vec<Iri>,
    /// Indices into `Generator::designs` of the designs it recorded.
    designs: Vec<u32>,
    /// Indices into `Generator::resources` of the batches it fabricated.
    batches: Vec<u32>,
}

#[derive(Debug)]
struct Design {
    iri: Iri,
    name: usize,
    licence: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Sourced,
    Hub,
    Recovered,
    Fabricated,
}

/// A material lot or a batch.
#[derive(Debug)]
struct Resource {
    iri: Iri,
    origin: Origin,
    /// The unit its amounts are written in; for masses the kilogram, the base unit capture
    /// compares in.
    unit: Unit,
    kg_per_unit: f64,
    /// How much of it one use (an input, a shipment line) typically takes.
    typical_use: f64,
    /// The material recycling it yields.
    recovered: &'static str,
    /// Whether any event consumed or shipped it: then retracting its sourcing would leave
    /// dangling uses.
    used: bool,
}

impl Resource {
    fn counted(&self) -> bool {
        matches!(self.unit, Unit::Piece | Unit::One | Unit::Set)
    }

    /// The least amount worth keeping in a holder's pool.
    fn least_usable(&self) -> f64 {
        if self.counted() { 1.0 } else { 0.001 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ShipmentState {
    UnderWay,
    Received,
    Retracted,
}

#[derive(Debug)]
struct Shipment {
    iri: Iri,
    shipper: u32,
    consignee: u32,
    lines: Vec<(u32, Quantity)>,
    state: ShipmentState,
}

#[derive(Debug)]
struct Hub {
    resource: u32,
    supplier: u32,
    material: usize,
}

/// An event that may be retracted later, if nothing was built on it by then.
#[derive(Debug)]
struct Candidate {
    event_id: EventId,
    subject: Iri,
    organisation: u32,
    what: Retractable,
}

#[derive(Debug)]
enum Retractable {
    Contribution,
    /// The parts, in base units, go back to the repairer.
    Repair {
        parts: Vec<(u32, f64)>,
    },
    /// Retractable while it is under way; the goods go back to the shipper.
    Dispatch {
        shipment: u32,
    },
    /// Retractable while never used; the lot disappears.
    Lot {
        resource: u32,
        amount: f64,
    },
}

/// Yields the events of a [`Mix`] one at a time, deterministically for a seed. Generating is
/// linear in the number of events; the model it keeps grows with the resources created.
#[derive(Debug)]
pub struct Generator {
    rng: StdRng,
    remaining: usize,
    /// Cumulative weights of the kinds, in the order of `KINDS`.
    weights: [f64; 10],
    start: Timestamp,
    clock_seconds: u64,
    organisation_ids: Vec<OrganizationId>,
    organisations: Vec<Organisation>,
    designs: Vec<Design>,
    resources: Vec<Resource>,
    holdings: Holdings,
    shipments: Vec<Shipment>,
    /// Shipments under way, oldest first (retracted ones are skipped when met).
    under_way: VecDeque<u32>,
    candidates: Vec<Candidate>,
    hubs: Vec<Hub>,
    hub_iris: Vec<Iri>,
    hubs_sourced: usize,
    /// The size of each hub lot: enough for the whole stream.
    hub_tonnes: f64,
    licences: Vec<Licence>,
    origins: Vec<Place>,
    suppliers: Vec<Agent>,
    contributors: Vec<Agent>,
}

const KINDS: [Kind; 10] = [
    Kind::Publish,
    Kind::Fork,
    Kind::Contribute,
    Kind::Source,
    Kind::Fabricate,
    Kind::Dispatch,
    Kind::Receive,
    Kind::Repair,
    Kind::Recycle,
    Kind::Retract,
];

impl Generator {
    pub fn new(seed: u64, mix: &Mix) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let p = &mix.proportions;
        let retraction_rate = mix.retraction_rate.clamp(0.0, 1.0);
        let others = [
            p.designs_published,
            p.designs_forked,
            p.contributions,
            p.materials_sourced,
            p.batches_fabricated,
            p.shipments_dispatched,
            p.shipments_received,
            p.batches_repaired,
            p.batches_recycled,
        ]
        .map(|weight| weight.max(0.0));
        let total: f64 = others.iter().sum();
        let mut weights = [0.0; 10];
        let mut cumulative = 0.0;
        for (slot, weight) in weights.iter_mut().zip(others) {
            if total > 0.0 {
                cumulative += weight / total * (1.0 - retraction_rate);
            }
            *slot = cumulative;
        }
        weights[9] = cumulative + retraction_rate;

        let organisations: Vec<Organisation> = (0..mix.organizations.max(1))
            .map(|index| new_organisation(index, &mut rng))
            .collect();
        let organisation_ids = organisations.iter().map(|o| o.id.clone()).collect();
        let mut generator = Self {
            rng,
            remaining: mix.events,
            weights,
            start: timestamp(START),
            clock_seconds: 0,
            organisation_ids,
            holdings: Holdings::new(organisations.len()),
            organisations,
            designs: Vec::new(),
            // Roughly what a stream of the default mix creates, so that they rarely grow.
            resources: Vec::with_capacity(mix.events / 2),
            shipments: Vec::with_capacity(mix.events / 4),
            under_way: VecDeque::new(),
            candidates: Vec::with_capacity(mix.events / 2),
            hubs: Vec::new(),
            hub_iris: Vec::new(),
            hubs_sourced: 0,
            hub_tonnes: (mix.events as f64 * 0.02).max(50.0).round(),
            licences: catalogue::LICENCES
                .iter()
                .map(|text| parse(Licence::parse(*text)))
                .collect(),
            origins: catalogue::ORIGINS
                .iter()
                .map(|(name, country)| Place {
                    id: None,
                    name: parse(Name::parse(*name)),
                    country: parse(CountryCode::parse(country)),
                })
                .collect(),
            suppliers: catalogue::SUPPLIERS
                .iter()
                .map(|(name, site)| Agent {
                    id: iri(site.to_string()),
                    name: Some(parse(Name::parse(*name))),
                })
                .collect(),
            contributors: (0..48)
                .map(|index| Agent {
                    id: iri(format!("https://people.example.org/{index}")),
                    name: catalogue::PERSON_NAMES
                        .get(index)
                        .map(|name| parse(Name::parse(*name))),
                })
                .collect(),
        };
        for index in 0..mix.hub_lots.min(mix.events) {
            let material = catalogue::HUB_MATERIALS[index % catalogue::HUB_MATERIALS.len()];
            let iri = iri(format!(
                "urn:epc:class:lgtin:4012345.{:06}.HUB{index}",
                material + 1
            ));
            let resource = generator.new_resource(Resource {
                iri: iri.clone(),
                origin: Origin::Hub,
                unit: Unit::Kilogram,
                kg_per_unit: 1.0,
                typical_use: 8.0,
                recovered: MATERIALS[material].recovered,
                used: false,
            });
            let supplier = (index * 7) as u32 % generator.organisations.len() as u32;
            generator.hubs.push(Hub {
                resource,
                supplier,
                material,
            });
            generator.hub_iris.push(iri);
        }
        generator
    }

    /// The organisations that record the events.
    pub fn organizations(&self) -> &[OrganizationId] {
        &self.organisation_ids
    }

    /// The hub lots, sourced by the first events of the stream.
    pub fn hub_lots(&self) -> &[Iri] {
        &self.hub_iris
    }

    fn attempt(&mut self, kind: Kind, organisation: u32) -> Result<Event, Kind> {
        match kind {
            Kind::Publish => Ok(self.publish(organisation)),
            Kind::Fork => self.fork(organisation),
            Kind::Contribute => self.contribute(organisation),
            Kind::Source => Ok(self.source(organisation)),
            Kind::Fabricate => self.fabricate(organisation),
            Kind::Dispatch => self.dispatch(organisation),
            Kind::Receive => self.receive(),
            Kind::Repair => self.repair(organisation),
            Kind::Recycle => self.recycle(organisation),
            Kind::Retract => self.retract(),
        }
    }

    // -----------------------------------------------------------------------------------------
    // The ten types. Each either returns its event, with the model updated, or leaves the model
    // untouched and names the kind to generate instead (what it was missing).

    fn publish(&mut self, organisation: u32) -> Event {
        let name = self.rng.random_range(0..catalogue::DESIGNS.len());
        let licence = self.rng.random_range(0..self.licences.len());
        let (iri, slug) = self.new_design_iri(organisation, name);
        let site = &self.organisations[organisation as usize].site;
        let source_uri = self
            .rng
            .random_bool(0.6)
            .then(|| self::iri(format!("{site}/src/{slug}")));
        let description = self
            .rng
            .random_bool(0.4)
            .then(|| text(pick::<&str>(&mut self.rng, catalogue::DESIGN_DESCRIPTIONS)));
        let payload = DesignPublished {
            design_id: iri.clone(),
            name: parse(Name::parse(catalogue::DESIGNS[name].0)),
            licence: self.licences[licence].clone(),
            source_uri,
            version: self.version(),
            description,
        };
        self.add_design(organisation, iri.clone(), name, licence);
        self.emit(organisation, iri, EventPayload::DesignPublished(payload))
    }

    fn fork(&mut self, organisation: u32) -> Result<Event, Kind> {
        if self.designs.is_empty() {
            return Err(Kind::Publish);
        }
        let parent = &self.designs[self.rng.random_range(0..self.designs.len())];
        let (parent_iri, name) = (parent.iri.clone(), parent.name);
        let parent_licence = parent.licence;
        // A share-alike parent keeps its licence; a permissive one may be relicensed.
        let licence = if self.licences[parent_licence].share_alike_family().is_some()
            || self.rng.random_bool(0.7)
        {
            parent_licence
        } else {
            self.rng.random_range(0..self.licences.len())
        };
        let (iri, slug) = self.new_design_iri(organisation, name);
        let organisation_name =
            catalogue::ORGANISATIONS[organisation as usize % catalogue::ORGANISATIONS.len()].name;
        let site = &self.organisations[organisation as usize].site;
        let source_uri = self
            .rng
            .random_bool(0.6)
            .then(|| self::iri(format!("{site}/src/{slug}")));
        let payload = DesignForked {
            design_id: iri.clone(),
            parent_design_id: parent_iri,
            name: parse(Name::parse(format!(
                "{}, {organisation_name} variant",
                catalogue::DESIGNS[name].0
            ))),
            licence: self.licences[licence].clone(),
            source_uri,
            version: self.version(),
            upstream_share: parse(Fraction::new(round(self.rng.random_range(0.1..0.6), 2))),
            description: None,
        };
        self.add_design(organisation, iri.clone(), name, licence);
        Ok(self.emit(organisation, iri, EventPayload::DesignForked(payload)))
    }

    fn contribute(&mut self, organisation: u32) -> Result<Event, Kind> {
        let org = &self.organisations[organisation as usize];
        let (designs, batches) = (org.designs.len(), org.batches.len());
        if designs + batches == 0 {
            return Err(Kind::Publish);
        }
        // Designs collect most contributions, batches some (testing, fabrication).
        let on_design = batches == 0 || (designs > 0 && self.rng.random_bool(0.7));
        let target = if on_design {
            let design = org.designs[self.rng.random_range(0..designs)];
            self.designs[design as usize].iri.clone()
        } else {
            let batch = org.batches[self.rng.random_range(0..batches)];
            self.resources[batch as usize].iri.clone()
        };
        let contributor = if self.rng.random_bool(0.75) {
            let person = org.people[self.rng.random_range(0..org.people.len())].clone();
            Agent {
                id: person,
                name: None,
            }
        } else {
            self.contributors[self.rng.random_range(0..self.contributors.len())].clone()
        };
        let kind = if on_design {
            *pick(
                &mut self.rng,
                &[
                    ContributionKind::Design,
                    ContributionKind::Design,
                    ContributionKind::Engineering,
                    ContributionKind::Documentation,
                    ContributionKind::Review,
                    ContributionKind::Other,
                ],
            )
        } else {
            *pick(
                &mut self.rng,
                &[
                    ContributionKind::Fabrication,
                    ContributionKind::Testing,
                    ContributionKind::Maintenance,
                ],
            )
        };
        let effort = if self.rng.random_bool(0.8) {
            Effort {
                amount: positive(round(self.rng.random_range(0.5..60.0), 1)),
                unit: EffortUnit::Hours,
            }
        } else {
            Effort {
                amount: positive(f64::from(self.rng.random_range(1..=13u32))),
                unit: EffortUnit::Points,
            }
        };
        let site = &self.organisations[organisation as usize].site;
        let evidence = self
            .rng
            .random_bool(0.3)
            .then(|| iri(format!("{site}/commits/{:08x}", self.rng.random::<u32>())));
        let description = self.rng.random_bool(0.2).then(|| {
            text(pick::<&str>(
                &mut self.rng,
                catalogue::CONTRIBUTION_DESCRIPTIONS,
            ))
        });
        let payload = ContributionRecorded {
            target: target.clone(),
            contributor,
            kind,
            effort,
            evidence,
            description,
        };
        let event = self.emit(
            organisation,
            target,
            EventPayload::ContributionRecorded(payload),
        );
        self.retractable(&event, organisation, Retractable::Contribution);
        Ok(event)
    }

    fn source(&mut self, organisation: u32) -> Event {
        let material_index = self.rng.random_range(0..MATERIALS.len());
        let material = &MATERIALS[material_index];
        let (low, high) = material.lot_size;
        let counted = matches!(material.unit, Unit::Piece);
        let amount = if counted {
            self.rng.random_range(low..high).round()
        } else {
            round(self.rng.random_range(low..high), 1)
        };
        let n = self.resources.len();
        let iri = match self.rng.random_range(0..20) {
            0..=16 => self.uuid_iri(),
            17 | 18 => iri(format!(
                "urn:epc:class:lgtin:4012345.{:06}.L{n}",
                material_index + 1
            )),
            _ => iri(format!("https://id.gs1.org/01/09520123456788/10/L{n}")),
        };
        // Large lots are declared in tonnes, small ones in grams, now and then.
        let quantity = if material.unit == Unit::Kilogram && amount >= 1000.0 {
            Quantity {
                amount: positive(amount / 1000.0),
                unit: Unit::Tonne,
            }
        } else if material.unit == Unit::Kilogram && amount < 10.0 && self.rng.random_bool(0.5) {
            Quantity {
                amount: positive(amount * 1000.0),
                unit: Unit::Gram,
            }
        } else {
            Quantity {
                amount: positive(amount),
                unit: material.unit,
            }
        };
        let recycled_content = if material.recycled_content > 0.0 {
            material.recycled_content
        } else if self.rng.random_bool(0.3) {
            round(self.rng.random_range(0.05..0.6), 2)
        } else {
            0.0
        };
        let per_unit =
            material.kg_co2e_per_unit * self.rng.random_range(0.8..1.2) * quantity.unit.base().1;
        let payload = MaterialSourced {
            lot_id: iri.clone(),
            material: parse(Name::parse(material.name)),
            quantity,
            origin: self.origins[self.rng.random_range(0..self.origins.len())].clone(),
            supplier: self.suppliers[self.rng.random_range(0..self.suppliers.len())].clone(),
            kg_co2e_per_unit: parse(Amount::new(round(per_unit, 6))),
            data_quality: if self.rng.random_bool(0.35) {
                DataQuality::Primary
            } else {
                DataQuality::Secondary
            },
            recycled_content: parse(Fraction::new(recycled_content)),
        };
        let held = quantity.measure().amount;
        let typical_use = (held / self.rng.random_range(4.0..12.0)).max(1.0);
        let resource = self.new_resource(Resource {
            iri: iri.clone(),
            origin: Origin::Sourced,
            unit: material.unit,
            kg_per_unit: material.kg_per_unit,
            typical_use,
            recovered: material.recovered,
            used: false,
        });
        self.hold(organisation, resource, held);
        let event = self.emit(organisation, iri, EventPayload::MaterialSourced(payload));
        self.retractable(
            &event,
            organisation,
            Retractable::Lot {
                resource,
                amount: held,
            },
        );
        event
    }

    fn source_hub(&mut self, hub: usize) -> Event {
        let Hub {
            resource,
            supplier,
            material,
        } = self.hubs[hub];
        let quantity = Quantity {
            amount: positive(self.hub_tonnes),
            unit: Unit::Tonne,
        };
        let iri = self.resources[resource as usize].iri.clone();
        let payload = MaterialSourced {
            lot_id: iri.clone(),
            material: parse(Name::parse(MATERIALS[material].name)),
            quantity,
            origin: self.origins[material % self.origins.len()].clone(),
            supplier: self.suppliers[material % self.suppliers.len()].clone(),
            kg_co2e_per_unit: parse(Amount::new(MATERIALS[material].kg_co2e_per_unit * 1000.0)),
            data_quality: DataQuality::Primary,
            recycled_content: parse(Fraction::new(0.2)),
        };
        self.hold(supplier, resource, quantity.measure().amount);
        self.emit(supplier, iri, EventPayload::MaterialSourced(payload))
    }

    fn fabricate(&mut self, organisation: u32) -> Result<Event, Kind> {
        if self.designs.is_empty() {
            return Err(Kind::Publish);
        }
        let pool = self.holdings.pool(organisation).len();
        if pool == 0 {
            return Err(Kind::Source);
        }
        let wanted = *pick(&mut self.rng, &[1, 1, 2, 2, 2, 3, 3, 4]);
        let mut chosen: Vec<u32> = Vec::with_capacity(wanted);
        if !self.hubs.is_empty() {
            let hub = self.hubs[self.rng.random_range(0..self.hubs.len())].resource;
            if self.holdings.amount(organisation, hub) >= 1.0
                && self.rng.random_bool(HUB_INPUT_SHARE)
            {
                chosen.push(hub);
            }
        }
        self.pick_distinct(organisation, wanted, &mut chosen, None);

        let org = &self.organisations[organisation as usize];
        let design = if !org.designs.is_empty() && self.rng.random_bool(0.6) {
            org.designs[self.rng.random_range(0..org.designs.len())]
        } else {
            self.rng.random_range(0..self.designs.len()) as u32
        };
        let design_iri = self.designs[design as usize].iri.clone();
        let facility = org.facility.clone();

        let mut inputs = Vec::with_capacity(chosen.len());
        let mut input_kg = 0.0;
        for &resource in &chosen {
            let (quantity, amount) = self.take(organisation, resource, 1.0);
            input_kg += amount * self.resources[resource as usize].kg_per_unit;
            inputs.push(Input {
                resource: self.resources[resource as usize].iri.clone(),
                quantity,
            });
        }
        let count = f64::from(self.rng.random_range(1..=40u32));
        let unit = *pick(
            &mut self.rng,
            &[
                Unit::Piece,
                Unit::Piece,
                Unit::Piece,
                Unit::Piece,
                Unit::Piece,
                Unit::Piece,
                Unit::Piece,
                Unit::Piece,
                Unit::Set,
                Unit::One,
            ],
        );
        let kg_per_unit = if input_kg > 0.0 {
            (input_kg * self.rng.random_range(0.75..0.98) / count).max(0.001)
        } else {
            self.rng.random_range(0.2..10.0)
        };
        let iri = if self.rng.random_bool(0.15) {
            let site = &self.organisations[organisation as usize].site;
            iri(format!("{site}/batches/{}", self.resources.len()))
        } else {
            self.uuid_iri()
        };
        let energy = self.energy(1.0);
        let direct_emissions_kg_co2e = self
            .rng
            .random_bool(0.15)
            .then(|| parse(Amount::new(round(self.rng.random_range(0.1..20.0), 2))));
        let labour = self.labour(organisation);
        let quantity = Quantity {
            amount: positive(count),
            unit,
        };
        let payload = BatchFabricated {
            batch_id: iri.clone(),
            design_id: design_iri,
            quantity,
            facility,
            inputs: list(inputs),
            energy,
            direct_emissions_kg_co2e,
            labour: list(labour),
        };
        let typical_use = (count / self.rng.random_range(2.0..5.0)).max(1.0);
        let recovered = chosen.first().map_or("Mixed scrap", |&first| {
            self.resources[first as usize].recovered
        });
        let batch = self.new_resource(Resource {
            iri: iri.clone(),
            origin: Origin::Fabricated,
            unit,
            kg_per_unit,
            typical_use,
            recovered,
            used: false,
        });
        self.hold(organisation, batch, quantity.measure().amount);
        self.organisations[organisation as usize]
            .batches
            .push(batch);
        Ok(self.emit(organisation, iri, EventPayload::BatchFabricated(payload)))
    }

    fn dispatch(&mut self, organisation: u32) -> Result<Event, Kind> {
        let mut shipper = organisation;
        let mut chosen: Vec<u32> = Vec::new();
        let mut hub_portion = None;
        if !self.hubs.is_empty() && self.rng.random_bool(HUB_SHIPMENT_SHARE) {
            let hub = &self.hubs[self.rng.random_range(0..self.hubs.len())];
            let held = self.holdings.amount(hub.supplier, hub.resource);
            if held >= 50.0 {
                shipper = hub.supplier;
                chosen.push(hub.resource);
                hub_portion = Some(round(self.rng.random_range(50.0..800.0), 1).min(held));
            }
        }
        if chosen.is_empty() {
            if self.holdings.pool(shipper).is_empty() {
                return Err(Kind::Source);
            }
            let lines = *pick(&mut self.rng, &[1, 1, 1, 1, 1, 2, 2, 2, 3, 3]);
            self.pick_distinct(shipper, lines, &mut chosen, None);
        }
        let consignee = self.other_organisation(shipper);
        let mut lines = Vec::with_capacity(chosen.len());
        let mut dispatched = Vec::with_capacity(chosen.len());
        for &resource in &chosen {
            let (quantity, amount) = match hub_portion {
                Some(portion) => {
                    let quantity = Quantity {
                        amount: positive(portion),
                        unit: Unit::Kilogram,
                    };
                    let amount = quantity.measure().amount;
                    self.use_up(shipper, resource, amount);
                    (quantity, amount)
                }
                None => self.take(shipper, resource, 1.0),
            };
            let item = &self.resources[resource as usize];
            let mass =
                (item.unit != Unit::Kilogram && self.rng.random_bool(0.85)).then(|| MassQuantity {
                    amount: positive(round(amount * item.kg_per_unit, 3).max(0.001)),
                    unit: MassUnit::Kilogram,
                });
            lines.push(ShipmentLine {
                resource: item.iri.clone(),
                quantity,
                mass,
            });
            dispatched.push((resource, quantity));
        }
        let iri = if self.rng.random_bool(0.1) {
            let site = &self.organisations[shipper as usize].site;
            iri(format!("{site}/shipments/{}", self.shipments.len()))
        } else {
            self.uuid_iri()
        };
        let transport_mode = *pick(
            &mut self.rng,
            &[
                TransportMode::Road,
                TransportMode::Road,
                TransportMode::Road,
                TransportMode::Road,
                TransportMode::Road,
                TransportMode::Road,
                TransportMode::Rail,
                TransportMode::Rail,
                TransportMode::Sea,
                TransportMode::InlandWaterway,
                TransportMode::Air,
                TransportMode::Bicycle,
            ],
        );
        let distance_km = self.rng.random_bool(0.9).then(|| {
            let km = match transport_mode {
                TransportMode::Bicycle => self.rng.random_range(1.0..30.0),
                TransportMode::Sea | TransportMode::Air => self.rng.random_range(500.0..9000.0),
                _ => self.rng.random_range(5.0..2500.0),
            };
            parse(Amount::new(round(km, 0)))
        });
        let measured_emissions_kg_co2e = self
            .rng
            .random_bool(0.15)
            .then(|| parse(Amount::new(round(self.rng.random_range(0.1..400.0), 2))));
        let payload = ShipmentDispatched {
            shipment_id: iri.clone(),
            lines: list(lines),
            from: self.organisations[shipper as usize].facility.clone(),
            to: self.organisations[consignee as usize].facility.clone(),
            consignee: self.organisation_ids[consignee as usize].clone(),
            transport_mode,
            distance_km,
            measured_emissions_kg_co2e,
        };
        let shipment = self.shipments.len() as u32;
        self.shipments.push(Shipment {
            iri: iri.clone(),
            shipper,
            consignee,
            lines: dispatched,
            state: ShipmentState::UnderWay,
        });
        self.under_way.push_back(shipment);
        let event = self.emit(shipper, iri, EventPayload::ShipmentDispatched(payload));
        self.retractable(&event, shipper, Retractable::Dispatch { shipment });
        Ok(event)
    }

    fn receive(&mut self) -> Result<Event, Kind> {
        let shipment = loop {
            let window = self.under_way.len().min(RECEIPT_WINDOW);
            if window == 0 {
                return Err(Kind::Dispatch);
            }
            let index = self.rng.random_range(0..window);
            let Some(shipment) = self.under_way.remove(index) else {
                return Err(Kind::Dispatch);
            };
            if self.shipments[shipment as usize].state == ShipmentState::UnderWay {
                break shipment as usize;
            }
        };
        self.shipments[shipment].state = ShipmentState::Received;
        let consignee = self.shipments[shipment].consignee;
        let mut lines = Vec::with_capacity(self.shipments[shipment].lines.len());
        for index in 0..self.shipments[shipment].lines.len() {
            let (resource, quantity) = self.shipments[shipment].lines[index];
            self.hold(consignee, resource, quantity.measure().amount);
            lines.push(ReceivedLine {
                resource: self.resources[resource as usize].iri.clone(),
                quantity,
            });
        }
        let iri = self.shipments[shipment].iri.clone();
        let payload = ShipmentReceived {
            shipment_id: iri.clone(),
            lines: list(lines),
            location: self.organisations[consignee as usize].facility.clone(),
        };
        Ok(self.emit(consignee, iri, EventPayload::ShipmentReceived(payload)))
    }

    fn repair(&mut self, organisation: u32) -> Result<Event, Kind> {
        let Some(resource) = self.find_held(organisation, |r| r.origin == Origin::Fabricated)
        else {
            return Err(Kind::Fabricate);
        };
        let wanted = *pick(&mut self.rng, &[0, 0, 0, 1, 1, 1, 1, 1, 2, 2]);
        let mut chosen = Vec::with_capacity(wanted);
        self.pick_distinct(organisation, wanted, &mut chosen, Some(resource));
        let mut parts = Vec::with_capacity(chosen.len());
        let mut returned = Vec::with_capacity(chosen.len());
        for &part in &chosen {
            let (quantity, amount) = self.take(organisation, part, 0.1);
            parts.push(Input {
                resource: self.resources[part as usize].iri.clone(),
                quantity,
            });
            returned.push((part, amount));
        }
        let iri = self.resources[resource as usize].iri.clone();
        let energy = if self.rng.random_bool(0.6) {
            self.energy(0.05)
        } else {
            None
        };
        let direct_emissions_kg_co2e = self
            .rng
            .random_bool(0.1)
            .then(|| parse(Amount::new(round(self.rng.random_range(0.05..2.0), 2))));
        let description = self
            .rng
            .random_bool(0.5)
            .then(|| text(pick::<&str>(&mut self.rng, catalogue::REPAIR_DESCRIPTIONS)));
        let payload = BatchRepaired {
            resource: iri.clone(),
            parts: list(parts),
            energy,
            direct_emissions_kg_co2e,
            description,
        };
        let event = self.emit(organisation, iri, EventPayload::BatchRepaired(payload));
        self.retractable(
            &event,
            organisation,
            Retractable::Repair { parts: returned },
        );
        Ok(event)
    }

    fn recycle(&mut self, organisation: u32) -> Result<Event, Kind> {
        let Some(resource) = self
            .find_held(organisation, |r| r.origin == Origin::Fabricated)
            .or_else(|| self.find_held(organisation, |r| r.origin != Origin::Hub))
        else {
            return Err(Kind::Fabricate);
        };
        let held = self.holdings.amount(organisation, resource);
        let item = &self.resources[resource as usize];
        if held * item.kg_per_unit < 0.05 {
            return Err(Kind::Fabricate);
        }
        // Often everything held reaches its end of life at once.
        let (quantity, amount) = if self.rng.random_bool(0.5) {
            let amount = if item.counted() { held.floor() } else { held };
            let quantity = Quantity {
                amount: positive(amount),
                unit: item.unit,
            };
            self.use_up(organisation, resource, quantity.measure().amount);
            (quantity, amount)
        } else {
            self.take(organisation, resource, 1.0)
        };
        let item = &self.resources[resource as usize];
        let input_kg = amount * item.kg_per_unit;
        let material = item.recovered;
        let recovered_kg = input_kg * self.rng.random_range(0.5..0.9);
        let shares: &[f64] = if self.rng.random_bool(0.3) && recovered_kg >= 0.01 {
            &[0.7, 0.3]
        } else {
            &[1.0]
        };
        let mut output_lots = Vec::with_capacity(shares.len());
        for share in shares {
            let kg = ((recovered_kg * share * 1000.0).floor() / 1000.0).max(0.001);
            let lot = self.uuid_iri();
            let quantity = Quantity {
                amount: positive(kg),
                unit: Unit::Kilogram,
            };
            let typical_use = (kg / self.rng.random_range(2.0..5.0)).max(0.001);
            let recovered = self.new_resource(Resource {
                iri: lot.clone(),
                origin: Origin::Recovered,
                unit: Unit::Kilogram,
                kg_per_unit: 1.0,
                typical_use,
                recovered: material,
                used: false,
            });
            self.hold(organisation, recovered, quantity.measure().amount);
            output_lots.push(OutputLot {
                lot_id: lot,
                material: parse(Name::parse(material)),
                quantity,
            });
        }
        let iri = self.resources[resource as usize].iri.clone();
        let energy = if self.rng.random_bool(0.7) {
            self.energy(0.2)
        } else {
            None
        };
        let direct_emissions_kg_co2e = self
            .rng
            .random_bool(0.1)
            .then(|| parse(Amount::new(round(self.rng.random_range(0.1..5.0), 2))));
        let payload = BatchRecycled {
            resource: iri.clone(),
            quantity,
            facility: self.organisations[organisation as usize].facility.clone(),
            output_lots: list(output_lots),
            energy,
            direct_emissions_kg_co2e,
        };
        Ok(self.emit(organisation, iri, EventPayload::BatchRecycled(payload)))
    }

    fn retract(&mut self) -> Result<Event, Kind> {
        for _ in 0..8 {
            if self.candidates.is_empty() {
                break;
            }
            let index = self.rng.random_range(0..self.candidates.len());
            let candidate = self.candidates.swap_remove(index);
            let organisation = candidate.organisation;
            let reason = match candidate.what {
                Retractable::Contribution => *pick(&mut self.rng, catalogue::RETRACTION_REASONS),
                Retractable::Repair { parts } => {
                    for (part, amount) in parts {
                        self.hold(organisation, part, amount);
                    }
                    *pick(&mut self.rng, catalogue::RETRACTION_REASONS)
                }
                Retractable::Dispatch { shipment } => {
                    let shipment = &mut self.shipments[shipment as usize];
                    if shipment.state != ShipmentState::UnderWay {
                        continue;
                    }
                    shipment.state = ShipmentState::Retracted;
                    let shipper = shipment.shipper;
                    let lines = shipment.lines.clone();
                    for (resource, quantity) in lines {
                        self.hold(shipper, resource, quantity.measure().amount);
                    }
                    catalogue::SHIPMENT_CANCELLED
                }
                Retractable::Lot { resource, amount } => {
                    if self.resources[resource as usize].used {
                        continue;
                    }
                    self.hold(organisation, resource, -amount);
                    // Nothing may refer to it again.
                    self.resources[resource as usize].used = true;
                    catalogue::LOT_REJECTED
                }
            };
            let payload = EventRetracted {
                event_id: candidate.event_id,
                reason: text(reason),
                corrective_event_ids: List::default(),
            };
            return Ok(self.emit(
                organisation,
                candidate.subject,
                EventPayload::EventRetracted(payload),
            ));
        }
        Err(Kind::Contribute)
    }

    // -----------------------------------------------------------------------------------------
    // The model

    fn emit(&mut self, organisation: u32, subject: Iri, payload: EventPayload) -> Event {
        self.clock_seconds += self.rng.random_range(1..=5);
        let at = |seconds| {
            Timestamp::from_datetime(self.start.datetime() + Duration::from_secs(seconds))
        };
        Event {
            event_id: EventId::from_uuid(
                uuid::Builder::from_random_bytes(self.rng.random()).into_uuid(),
            ),
            schema_version: CURRENT_SCHEMA_VERSION,
            occurred_at: at(self.clock_seconds),
            recorded_at: at(self.clock_seconds + 1),
            recorded_by: self.organisation_ids[organisation as usize].clone(),
            subject,
            payload,
        }
    }

    fn retractable(&mut self, event: &Event, organisation: u32, what: Retractable) {
        self.candidates.push(Candidate {
            event_id: event.event_id,
            subject: event.subject.clone(),
            organisation,
            what,
        });
    }

    fn new_resource(&mut self, resource: Resource) -> u32 {
        self.resources.push(resource);
        (self.resources.len() - 1) as u32
    }

    fn add_design(&mut self, organisation: u32, iri: Iri, name: usize, licence: usize) {
        self.designs.push(Design { iri, name, licence });
        let design = (self.designs.len() - 1) as u32;
        self.organisations[organisation as usize]
            .designs
            .push(design);
    }

    fn new_design_iri(&mut self, organisation: u32, name: usize) -> (Iri, String) {
        let slug = format!("{}-{}", catalogue::DESIGNS[name].1, self.designs.len());
        let iri = if self.rng.random_bool(0.5) {
            let site = &self.organisations[organisation as usize].site;
            iri(format!("{site}/designs/{slug}"))
        } else {
            self.uuid_iri()
        };
        (iri, slug)
    }

    /// Adds to what `organisation` holds of `resource`, by an amount in the base unit.
    fn hold(&mut self, organisation: u32, resource: u32, amount: f64) {
        let least_usable = self.resources[resource as usize].least_usable();
        self.holdings
            .add(organisation, resource, amount, least_usable);
    }

    /// Takes away what an event consumes or ships.
    fn use_up(&mut self, organisation: u32, resource: u32, amount: f64) {
        self.resources[resource as usize].used = true;
        self.hold(organisation, resource, -amount);
    }

    /// A typical use of a held resource (`scale` times it), never more than is held; returns the
    /// quantity as written and its amount in the base unit, and takes it away.
    fn take(&mut self, organisation: u32, resource: u32, scale: f64) -> (Quantity, f64) {
        let held = self.holdings.amount(organisation, resource);
        let item = &self.resources[resource as usize];
        let want = item.typical_use * scale * self.rng.random_range(0.5..1.5);
        let amount = if item.counted() {
            want.round().clamp(1.0, held.floor().max(1.0))
        } else {
            let rounded = round(want, 3).max(0.001);
            if rounded >= held { held } else { rounded }
        };
        let quantity = if item.unit == Unit::Kilogram && amount < 1.0 && self.rng.random_bool(0.3) {
            Quantity {
                amount: positive(amount * 1000.0),
                unit: Unit::Gram,
            }
        } else {
            Quantity {
                amount: positive(amount),
                unit: item.unit,
            }
        };
        let base = quantity.measure().amount;
        self.use_up(organisation, resource, base);
        (quantity, base)
    }

    /// Adds up to `wanted` distinct resources from the holder's pool to `chosen` (a few random
    /// draws, so a small pool may give fewer), never `except`.
    fn pick_distinct(
        &mut self,
        organisation: u32,
        wanted: usize,
        chosen: &mut Vec<u32>,
        except: Option<u32>,
    ) {
        let pool = self.holdings.pool(organisation);
        if pool.is_empty() {
            return;
        }
        for _ in 0..wanted * 3 {
            if chosen.len() >= wanted {
                break;
            }
            let resource = pool[self.rng.random_range(0..pool.len())];
            if !chosen.contains(&resource) && Some(resource) != except {
                chosen.push(resource);
            }
        }
    }

    /// A resource the organisation holds that `fits`, found in a few random draws.
    fn find_held(&mut self, organisation: u32, fits: impl Fn(&Resource) -> bool) -> Option<u32> {
        let pool = self.holdings.pool(organisation);
        if pool.is_empty() {
            return None;
        }
        (0..8)
            .map(|_| pool[self.rng.random_range(0..pool.len())])
            .find(|&resource| fits(&self.resources[resource as usize]))
    }

    // -----------------------------------------------------------------------------------------
    // Random choices

    fn pick_kind(&mut self) -> Kind {
        let draw = self.rng.random::<f64>() * self.weights[9];
        let index = self
            .weights
            .iter()
            .position(|&cumulative| draw < cumulative)
            .unwrap_or(3);
        KINDS[index]
    }

    /// Skewed towards the first organisations: a few record most events.
    fn pick_organisation(&mut self) -> u32 {
        let draw: f64 = self.rng.random();
        let count = self.organisations.len();
        ((draw * draw * count as f64) as usize).min(count - 1) as u32
    }

    fn other_organisation(&mut self, not: u32) -> u32 {
        let count = self.organisations.len() as u32;
        if count == 1 {
            return not;
        }
        let other = self.rng.random_range(0..count - 1);
        if other >= not { other + 1 } else { other }
    }

    fn uuid_iri(&mut self) -> Iri {
        Iri::from_uuid(uuid::Builder::from_random_bytes(self.rng.random()).into_uuid())
    }

    fn version(&mut self) -> Name {
        parse(Name::parse(format!(
            "{}.{}.0",
            self.rng.random_range(0..3),
            self.rng.random_range(0..10)
        )))
    }

    fn energy(&mut self, scale: f64) -> Option<Energy> {
        if !self.rng.random_bool(0.8) {
            return None;
        }
        let kwh = round(self.rng.random_range(0.5..150.0) * scale, 1).max(0.1);
        let (amount, unit) = match self.rng.random_range(0..20) {
            0 => (kwh / 1000.0, EnergyUnit::MegawattHour),
            1 | 2 => (round(kwh * 3.6, 1), EnergyUnit::Megajoule),
            _ => (kwh, EnergyUnit::KilowattHour),
        };
        let grid_factor_kg_co2e_per_kwh = self
            .rng
            .random_bool(0.4)
            .then(|| parse(Amount::new(round(self.rng.random_range(0.02..0.9), 3))));
        Some(Energy {
            amount: parse(Amount::new(amount)),
            unit,
            grid_factor_kg_co2e_per_kwh,
        })
    }

    fn labour(&mut self, organisation: u32) -> Vec<Labour> {
        let people = &self.organisations[organisation as usize].people;
        let count = (*pick(&mut self.rng, &[0, 1, 1, 1, 2, 2, 2, 3, 3, 3])).min(people.len());
        let first = self.rng.random_range(0..people.len());
        (0..count)
            .map(|offset| Labour {
                agent: people[(first + offset) % people.len()].clone(),
                hours: parse(Amount::new(round(self.rng.random_range(0.5..40.0), 1))),
            })
            .collect()
    }
}

impl Iterator for Generator {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        if self.hubs_sourced < self.hubs.len() {
            self.hubs_sourced += 1;
            return Some(self.source_hub(self.hubs_sourced - 1));
        }
        let mut kind = self.pick_kind();
        let organisation = self.pick_organisation();
        // Terminates: publishing and sourcing always succeed, and every fallback leads to them.
        loop {
            match self.attempt(kind, organisation) {
                Ok(event) => return Some(event),
                Err(instead) => kind = instead,
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Generator {}

fn new_organisation(index: usize, rng: &mut StdRng) -> Organisation {
    let base = &catalogue::ORGANISATIONS[index % catalogue::ORGANISATIONS.len()];
    let round = index / catalogue::ORGANISATIONS.len();
    let (name, slug) = if round == 0 {
        (base.name.to_owned(), base.slug.to_owned())
    } else {
        (
            format!("{} {}", base.name, round + 1),
            format!("{}-{}", base.slug, round + 1),
        )
    };
    let site = format!("https://{slug}.example");
    // Some organisations are known by the id Stigmergy registered them under.
    let id = if index % 3 == 2 {
        Iri::from_uuid(uuid::Builder::from_random_bytes(rng.random()).into_uuid())
    } else {
        iri(site.clone())
    };
    let facility = Place {
        id: index
            .is_multiple_of(2)
            .then(|| iri(format!("{site}/facilities/workshop"))),
        name: parse(Name::parse(format!("{name}, {}", base.city))),
        country: parse(CountryCode::parse(base.country)),
    };
    let people = (0..rng.random_range(2..=6))
        .map(|person| {
            let first = catalogue::FIRST_NAMES[(index * 7 + person) % catalogue::FIRST_NAMES.len()];
            iri(format!("{site}/people/{first}-{person}"))
        })
        .collect();
    Organisation {
        id,
        site,
        facility,
        people,
        designs: Vec::new(),
        batches: Vec::new(),
    }
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// Values the generator writes are valid by construction; a refusal here is a bug of this crate.
fn parse<T>(value: Result<T, String>) -> T {
    value.unwrap_or_else(|error| panic!("the generator wrote an invalid value: {error}"))
}

fn iri(text: String) -> Iri {
    parse(Iri::parse(text))
}

fn text(text: &str) -> Text {
    parse(Text::parse(text))
}

fn positive(amount: f64) -> PositiveAmount {
    parse(PositiveAmount::new(amount))
}

fn timestamp(text: &str) -> Timestamp {
    parse(Timestamp::parse(text))
}

fn list<T, const MIN: usize, const MAX: usize>(items: Vec<T>) -> List<T, MIN, MAX> {
    parse(List::new(items))
}

fn round(value: f64, decimals: i32) -> f64 {
    let factor = 10f64.powi(decimals);
    (value * factor).round() / factor
}
