//! The footprint method (cradle-to-gate, kgCO2e per declared unit), as pure functions of the
//! events and of the footprints of the inputs. See `docs/views.md`.
//!
//! Every figure is per *declared unit* of the resource, in the base unit of the quantity it was
//! declared in (`Quantity::measure`): per kilogram when the resource is counted in any mass unit
//! (a lot declared in tonnes gets a footprint per kilogram), per piece, litre, metre… otherwise.
//! Input quantities are converted the same way, so `quantity × per-unit footprint` always
//! multiplies two figures in the same base unit.
//!
//! The grid and transport factors are configuration passed in as [`Factors`]; nothing here reads
//! files, the network or the clock.

use std::collections::HashMap;

use crate::ids::{CountryCode, Iri};
use crate::payload::{
    BatchFabricated, BatchRecycled, BatchRepaired, DataQuality, Energy, Input, MaterialSourced,
    ShipmentDispatched, ShipmentLine, TransportMode,
};
use crate::units::{Amount, Quantity, Unit};

/// The name of the method every footprint is published with.
pub const METHOD: &str = "stigmergy-cradle-to-gate";
/// The version of the method; it changes whenever a figure computed from the same events would.
pub const METHOD_VERSION: &str = "1";

/// Emissions by category, in kgCO2e (per declared unit in a [`Footprint`], absolute in a
/// [`RepairFootprint`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Breakdown {
    /// Embodied in the materials and parts consumed.
    pub materials: f64,
    /// Energy × grid factor and direct emissions of the processes (fabrication, repair,
    /// recycling).
    pub fabrication: f64,
    /// Shipments that carried the inputs.
    pub transport: f64,
}

impl Breakdown {
    pub fn total(&self) -> f64 {
        self.materials + self.fabrication + self.transport
    }

    fn scaled(self, by: f64) -> Self {
        Self {
            materials: self.materials * by,
            fabrication: self.fabrication * by,
            transport: self.transport * by,
        }
    }

    fn plus(self, other: Self) -> Self {
        Self {
            materials: self.materials + other.materials,
            fabrication: self.fabrication + other.fabrication,
            transport: self.transport + other.transport,
        }
    }
}

/// The cradle-to-gate footprint of one resource, per declared unit.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Footprint {
    /// kgCO2e per one `unit` of the resource.
    pub per_unit: Breakdown,
    /// The base unit of the resource's declared quantity (the kilogram for every mass unit).
    pub unit: Unit,
    /// Share of the resource's mass that is recycled material (0 to 1).
    pub recycled_content: f64,
    /// Share of the total that comes from activity data the events report (0 to 1); 0 when the
    /// total is 0.
    pub primary_data_share: f64,
    #[serde(skip_deserializing, default = "method")]
    pub method: &'static str,
    #[serde(skip_deserializing, default = "method_version")]
    pub method_version: &'static str,
    /// Inputs whose footprint was not known (counted as 0); the figure is then a lower bound.
    pub missing_inputs: Vec<Iri>,
}

fn method() -> &'static str {
    METHOD
}

fn method_version() -> &'static str {
    METHOD_VERSION
}

/// Whether two figures agree to a relative 1e-12 (or both are within 1e-15 of 0).
pub(crate) fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1e-3)
}

impl Footprint {
    /// The same figures, up to floating-point noise.
    pub fn same_figures(&self, other: &Footprint) -> bool {
        close(self.per_unit.materials, other.per_unit.materials)
            && close(self.per_unit.fabrication, other.per_unit.fabrication)
            && close(self.per_unit.transport, other.per_unit.transport)
            && self.unit == other.unit
            && close(self.recycled_content, other.recycled_content)
            && close(self.primary_data_share, other.primary_data_share)
            && self.method == other.method
            && self.method_version == other.method_version
            && self.missing_inputs == other.missing_inputs
    }
}

/// Default electricity grid factors (kgCO2e per kWh), per country with a world-average fallback.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridFactors {
    pub by_country: HashMap<CountryCode, f64>,
    /// Used for a facility whose country has no factor.
    pub world: f64,
}

/// Default freight factors, kgCO2e per tonne-km, per transport mode.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportFactors {
    pub road: f64,
    pub rail: f64,
    pub sea: f64,
    pub inland_waterway: f64,
    pub air: f64,
    pub bicycle: f64,
}

/// The configured default factors: what applies when an event does not report its own figure.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Factors {
    pub grid: GridFactors,
    pub transport: TransportFactors,
}

impl Factors {
    /// The default grid factor of a facility's country, else the world average.
    pub fn grid_factor(&self, country: Option<CountryCode>) -> f64 {
        country
            .and_then(|c| self.grid.by_country.get(&c).copied())
            .unwrap_or(self.grid.world)
    }

    /// kgCO2e per tonne-km of a transport mode.
    pub fn transport_factor(&self, mode: TransportMode) -> f64 {
        let t = &self.transport;
        match mode {
            TransportMode::Road => t.road,
            TransportMode::Rail => t.rail,
            TransportMode::Sea => t.sea,
            TransportMode::InlandWaterway => t.inland_waterway,
            TransportMode::Air => t.air,
            TransportMode::Bicycle => t.bicycle,
        }
    }
}

impl Default for Factors {
    /// Published averages; they are only defaults, meant to be overridden by configuration (and
    /// by the grid factor or measured emissions an event reports). Sources and caveats are in
    /// `docs/methods.md`, "Default factors".
    fn default() -> Self {
        // Grid: Ember, "Yearly Electricity Data", emission intensity of electricity generation in
        // 2023, gCO2e/kWh ÷ 1000, rounded to whole grams. Lifecycle figures (upstream methane,
        // supply chain and plant manufacturing included), based on generation, not consumption
        // (imports are not traced). Read from the Green Web
        // Foundation's transcription of Ember's data (co2.js, data/output/average-intensities.json,
        // rows marked 2023): DE 380.95, ES 174.05, FI 79.16, FR 56.04, IT 330.72, NL 267.62,
        // PL 661.93, SE 40.70. Cross-checked against Our World in Data's table of Ember's series
        // (DE 381, FI 79, FR 56) and Statista's chart of Ember's data (PL ≈ 662, SE 40.7); ES, IT
        // and NL rest on the co2.js transcription alone.
        let by_country = [
            ("DE", 0.381),
            ("ES", 0.174),
            ("FI", 0.079),
            ("FR", 0.056),
            ("IT", 0.331),
            ("NL", 0.268),
            ("PL", 0.662),
            ("SE", 0.041),
        ]
        .into_iter()
        .filter_map(|(code, factor)| CountryCode::parse(code).ok().map(|c| (c, factor)))
        .collect();
        Self {
            grid: GridFactors {
                by_country,
                // Ember (2024), world average of 2023: 481 gCO2e/kWh, as charted by Statista
                // ("Electricity generation emission intensity in selected countries worldwide in
                // 2023"). Used for a facility in any country not listed above.
                world: 0.481,
            },
            // Freight, kgCO2e per tonne-km, well-to-wheel: the UK government's (DESNZ) "Greenhouse
            // gas reporting: conversion factors 2025", flat file, the "Freighting goods" factor
            // (tank-to-wheel: fuel burnt, or for rail also the electricity generated) plus the
            // matching "WTT- delivery vehs & freight" factor (well-to-tank: producing and
            // delivering the fuel). The 2023 and 2024 editions could not be consulted; these rows
            // were read from a third-party transcription of the 2025 flat file, two of which
            // (container ship 8000+ TEU, WTT freight train) agree with Climatiq's copy of the same
            // edition. Not re-checked against the gov.uk spreadsheet itself.
            transport: TransportFactors {
                // HGV (all diesel), All HGVs, Average laden: 0.10163 TTW + 0.02359 WTT.
                road: 0.12522,
                // Rail, Freight train (UK mix of diesel and electric traction): 0.02779 TTW +
                // 0.00691 WTT.
                rail: 0.0347,
                // Cargo ship, Container ship, Average: 0.01612 TTW + 0.00365 WTT.
                sea: 0.01977,
                // NO SOURCE FOUND: neither DESNZ nor a GLEC default table for inland waterways
                // could be consulted; 0.031 is an unverified placeholder, kept until one is.
                inland_waterway: 0.031,
                // Freight flights, Long-haul, to/from UK, without the radiative-forcing uplift (so
                // that it is GWP100 CO2e like every other figure): 0.5313 TTW + 0.13516 WTT. With
                // the uplift DESNZ gives 0.89939 TTW.
                air: 0.66646,
                // Human-powered: no operational emissions.
                bicycle: 0.0,
            },
        }
    }
}

/// The footprint of a sourced material lot: its declared factor, all materials.
///
/// `kgCo2ePerUnit` is per one unit of the declared quantity's unit, so it is divided by that
/// unit's factor into its base unit: a lot declared in tonnes at 1500 kg/t is 1.5 per kilogram.
/// The primary data share is 1 when the figure is primary, else 0.
pub fn lot(p: &MaterialSourced) -> Footprint {
    let (unit, into_base) = p.quantity.unit.base();
    Footprint {
        per_unit: Breakdown {
            materials: p.kg_co2e_per_unit.get() / into_base,
            ..Breakdown::default()
        },
        unit,
        recycled_content: p.recycled_content.get(),
        primary_data_share: match p.data_quality {
            DataQuality::Primary => 1.0,
            DataQuality::Secondary => 0.0,
        },
        method: METHOD,
        method_version: METHOD_VERSION,
        missing_inputs: Vec::new(),
    }
}

/// One shipment line's share of the shipment's emissions.
#[derive(Clone, Debug, PartialEq)]
pub struct LineEmissions {
    pub resource: Iri,
    /// kgCO2e allocated to the line.
    pub kg_co2e: f64,
    /// kgCO2e per one `unit` of the line's quantity.
    pub per_unit: f64,
    /// The base unit of the line's quantity.
    pub unit: Unit,
}

/// The emissions of one shipment and their allocation to its lines.
#[derive(Clone, Debug, PartialEq)]
pub struct ShipmentEmissions {
    pub total_kg_co2e: f64,
    /// One per line, in the order of the lines.
    pub lines: Vec<LineEmissions>,
    /// Primary when measured, secondary when modelled from distance × tonnes × mode factor.
    pub data_quality: DataQuality,
    /// Neither measured emissions nor a distance: the total is 0.
    pub distance_missing: bool,
    /// Some line has no mass (neither `mass` nor a quantity in a mass unit): the modelled total
    /// counts only the lines with a mass, and the total is allocated equally across lines.
    pub masses_missing: bool,
}

/// The mass of a shipment line in kilograms: its `mass` when given, else its quantity when that
/// is a mass.
fn line_kilograms(line: &ShipmentLine) -> Option<f64> {
    match line.mass {
        Some(mass) => Some(mass.kilograms()),
        None => kilograms(&line.quantity),
    }
}

/// A quantity in kilograms, when it is a mass.
fn kilograms(quantity: &Quantity) -> Option<f64> {
    let measure = quantity.measure();
    (measure.unit == Unit::Kilogram).then_some(measure.amount)
}

/// Shares summing to 1: by weight when every weight is known (and their sum is positive),
/// otherwise equal. The flag says whether the equal split was used.
fn allocation(weights: &[Option<f64>]) -> (Vec<f64>, bool) {
    let known: Option<Vec<f64>> = weights.iter().copied().collect();
    match known {
        Some(w) if w.iter().sum::<f64>() > 0.0 => {
            let sum: f64 = w.iter().sum();
            (w.iter().map(|x| x / sum).collect(), false)
        }
        _ => {
            let n = weights.len().max(1) as f64;
            (vec![1.0 / n; weights.len()], true)
        }
    }
}

/// A shipment's emissions: the measured ones, else distance × tonnes carried × the mode's
/// factor; allocated to the lines by mass.
pub fn shipment_emissions(p: &ShipmentDispatched, factors: &Factors) -> ShipmentEmissions {
    let masses: Vec<Option<f64>> = p.lines.iter().map(line_kilograms).collect();
    let tonnes: f64 = masses.iter().flatten().sum::<f64>() / 1000.0;
    let measured = p.measured_emissions_kg_co2e.map(Amount::get);
    let modelled = p
        .distance_km
        .map(|km| km.get() * tonnes * factors.transport_factor(p.transport_mode));
    let total = measured.or(modelled).unwrap_or(0.0);
    let (shares, masses_missing) = allocation(&masses);
    let lines = p
        .lines
        .iter()
        .zip(shares)
        .map(|(line, share)| {
            let kg_co2e = total * share;
            let measure = line.quantity.measure();
            LineEmissions {
                resource: line.resource.clone(),
                kg_co2e,
                per_unit: kg_co2e / measure.amount,
                unit: measure.unit,
            }
        })
        .collect();
    ShipmentEmissions {
        total_kg_co2e: total,
        lines,
        data_quality: if measured.is_some() {
            DataQuality::Primary
        } else {
            DataQuality::Secondary
        },
        distance_missing: measured.is_none() && modelled.is_none(),
        masses_missing,
    }
}

/// What a batch or a repair knows about one of the resources it consumed.
#[derive(Clone, Debug, PartialEq)]
pub struct InputFootprint {
    pub resource: Iri,
    /// The resource's own footprint; `None` when unknown (the input counts as 0 and is listed in
    /// `missing_inputs`).
    pub footprint: Option<Footprint>,
    /// kgCO2e per base unit of the resource for bringing it to the organisation that consumed it
    /// (its delivery transport).
    pub delivery_transport_per_unit: f64,
    /// The share of that delivery transport that was measured (0 to 1); the rest is modelled.
    pub delivery_transport_primary_share: f64,
}

/// A repair's own emissions, absolute (not per unit): the parts at their delivered footprint,
/// energy × grid factor and direct emissions. A batch adds it to its own absolute emissions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RepairFootprint {
    /// kgCO2e by category.
    pub kg_co2e: Breakdown,
    /// The part of the total that comes from primary data.
    pub primary_kg_co2e: f64,
    /// Kilograms of parts counted in a mass unit, and how many of them are recycled material.
    pub parts_kilograms: f64,
    pub recycled_kilograms: f64,
    pub missing_inputs: Vec<Iri>,
}

/// Absolute emissions being added up for a batch, a repair or a recycling process.
#[derive(Debug, Default)]
struct Tally {
    emissions: Breakdown,
    primary: f64,
    kilograms: f64,
    recycled_kilograms: f64,
    missing: Vec<Iri>,
}

impl Tally {
    fn missing(&mut self, resource: &Iri) {
        if !self.missing.contains(resource) {
            self.missing.push(resource.clone());
        }
    }

    /// Each consumed resource at its delivered footprint. An input whose footprint is unknown,
    /// or is per another unit than the one it was consumed in (pieces against kilograms), counts
    /// as 0 and is listed as missing. Only mass inputs count for the recycled content; one with
    /// an unknown footprint counts as not recycled.
    fn inputs(&mut self, consumed: &[Input], known: &[InputFootprint]) {
        for input in consumed {
            let measure = input.quantity.measure();
            let q = measure.amount;
            let entry = known.iter().find(|k| k.resource == input.resource);
            let mut recycled = 0.0;
            match entry.and_then(|k| k.footprint.as_ref()) {
                Some(footprint) if footprint.unit == measure.unit => {
                    let own = footprint.per_unit.scaled(q);
                    self.emissions = self.emissions.plus(own);
                    self.primary += own.total() * footprint.primary_data_share;
                    recycled = footprint.recycled_content;
                }
                _ => self.missing(&input.resource),
            }
            if let Some(k) = entry {
                let transport = q * k.delivery_transport_per_unit;
                self.emissions.transport += transport;
                self.primary += transport * k.delivery_transport_primary_share;
            }
            if measure.unit == Unit::Kilogram {
                self.kilograms += q;
                self.recycled_kilograms += q * recycled;
            }
        }
    }

    /// Energy × grid factor (the one the event reports, primary; else the facility country's
    /// default or the world average, secondary) and direct emissions (primary), to fabrication.
    fn process(
        &mut self,
        energy: Option<&Energy>,
        direct: Option<Amount>,
        country: Option<CountryCode>,
        factors: &Factors,
    ) {
        if let Some(energy) = energy {
            let reported = energy.grid_factor_kg_co2e_per_kwh.map(Amount::get);
            let factor = reported.unwrap_or_else(|| factors.grid_factor(country));
            let kg = energy.kilowatt_hours() * factor;
            self.emissions.fabrication += kg;
            if reported.is_some() {
                self.primary += kg;
            }
        }
        if let Some(direct) = direct {
            self.emissions.fabrication += direct.get();
            self.primary += direct.get();
        }
    }

    fn repair(&mut self, repair: &RepairFootprint) {
        self.emissions = self.emissions.plus(repair.kg_co2e);
        self.primary += repair.primary_kg_co2e;
        self.kilograms += repair.parts_kilograms;
        self.recycled_kilograms += repair.recycled_kilograms;
        for resource in &repair.missing_inputs {
            self.missing(resource);
        }
    }

    /// The footprint per base unit of `quantity`, with `recycled_content` when given (else the
    /// mass-weighted share of the mass inputs, 0 with none).
    fn per_unit(self, quantity: &Quantity, recycled_content: Option<f64>) -> Footprint {
        let measure = quantity.measure();
        let total = self.emissions.total();
        Footprint {
            per_unit: self.emissions.scaled(1.0 / measure.amount),
            unit: measure.unit,
            recycled_content: recycled_content.unwrap_or(if self.kilograms > 0.0 {
                self.recycled_kilograms / self.kilograms
            } else {
                0.0
            }),
            primary_data_share: if total > 0.0 {
                self.primary / total
            } else {
                0.0
            },
            method: METHOD,
            method_version: METHOD_VERSION,
            missing_inputs: self.missing,
        }
    }
}

/// The footprint of a fabricated batch, per base unit of its quantity: Σ inputs (quantity × the
/// input's per-unit breakdown, plus quantity × its delivery transport), energy × grid factor
/// (the event's, else the facility country's default, else the world average) and direct
/// emissions to fabrication, and every repair of it added absolutely; all divided by the batch's
/// quantity.
///
/// Recycled content is the mass-weighted share over the inputs (and repair parts) counted in a
/// mass unit; with none it is 0. The primary data share is the primary part of the total
/// (inputs' own primary share of their contribution, energy with a reported grid factor, direct
/// emissions, measured transport) over the total; 0 when the total is 0.
pub fn batch(
    p: &BatchFabricated,
    inputs: &[InputFootprint],
    repairs: &[RepairFootprint],
    factors: &Factors,
) -> Footprint {
    let mut tally = Tally::default();
    tally.inputs(&p.inputs, inputs);
    tally.process(
        p.energy.as_ref(),
        p.direct_emissions_kg_co2e,
        Some(p.facility.country),
        factors,
    );
    for repair in repairs {
        tally.repair(repair);
    }
    tally.per_unit(&p.quantity, None)
}

/// A repair's absolute emissions: its parts at their delivered footprint, and energy × grid
/// factor (the event's, else the default of `facility_country`, else the world average) plus
/// direct emissions to fabrication.
pub fn repair(
    p: &BatchRepaired,
    parts: &[InputFootprint],
    facility_country: Option<CountryCode>,
    factors: &Factors,
) -> RepairFootprint {
    let mut tally = Tally::default();
    tally.inputs(&p.parts, parts);
    tally.process(
        p.energy.as_ref(),
        p.direct_emissions_kg_co2e,
        facility_country,
        factors,
    );
    RepairFootprint {
        kg_co2e: tally.emissions,
        primary_kg_co2e: tally.primary,
        parts_kilograms: tally.kilograms,
        recycled_kilograms: tally.recycled_kilograms,
        missing_inputs: tally.missing,
    }
}

/// The footprints of the lots recovered by recycling, with the cut-off method: the recycled
/// resource's own footprint stays with its first life; each lot carries only its share of the
/// recycling process (energy × grid factor, the event's or the facility country's default, plus
/// direct emissions), all in fabrication, per base unit of the lot, with recycled content 1.
///
/// The process is allocated by mass; when some output lot is not counted in a mass unit, it is
/// allocated equally across the lots instead.
pub fn recovered_lots(p: &BatchRecycled, factors: &Factors) -> Vec<(Iri, Footprint)> {
    let masses: Vec<Option<f64>> = p
        .output_lots
        .iter()
        .map(|o| kilograms(&o.quantity))
        .collect();
    let (shares, _) = allocation(&masses);
    let mut process = Tally::default();
    process.process(
        p.energy.as_ref(),
        p.direct_emissions_kg_co2e,
        Some(p.facility.country),
        factors,
    );
    p.output_lots
        .iter()
        .zip(shares)
        .map(|(output, share)| {
            let allocated = Tally {
                emissions: process.emissions.scaled(share),
                primary: process.primary * share,
                ..Tally::default()
            };
            (
                output.lot_id.clone(),
                allocated.per_unit(&output.quantity, Some(1.0)),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};

    use super::*;

    const TOLERANCE: f64 = 1e-9;

    fn iri(name: &str) -> Iri {
        Iri::parse(format!("https://test.example/{name}")).expect("a valid IRI")
    }

    fn parse<T: DeserializeOwned>(payload: Value) -> T {
        serde_json::from_value(payload).expect("a valid payload")
    }

    fn q(amount: f64, unit: &str) -> Value {
        json!({ "amount": amount, "unit": unit })
    }

    fn place(country: &str) -> Value {
        json!({ "name": "Workshop", "country": country })
    }

    fn country(code: &str) -> CountryCode {
        CountryCode::parse(code).expect("a valid country code")
    }

    /// Factors with round numbers, so the expected values are easy to compute by hand.
    fn factors() -> Factors {
        Factors {
            grid: GridFactors {
                by_country: [(country("DE"), 0.4), (country("FR"), 0.05)].into(),
                world: 0.5,
            },
            transport: TransportFactors {
                road: 0.1,
                rail: 0.03,
                sea: 0.01,
                inland_waterway: 0.02,
                air: 1.0,
                bicycle: 0.0,
            },
        }
    }

    fn close(got: f64, want: f64, what: &str) {
        assert!(
            (got - want).abs() <= TOLERANCE,
            "{what}: got {got}, want {want}"
        );
    }

    fn footprint(
        [materials, fabrication, transport]: [f64; 3],
        unit: Unit,
        recycled_content: f64,
        primary_data_share: f64,
        missing: &[&str],
    ) -> Footprint {
        Footprint {
            per_unit: Breakdown {
                materials,
                fabrication,
                transport,
            },
            unit,
            recycled_content,
            primary_data_share,
            method: METHOD,
            method_version: METHOD_VERSION,
            missing_inputs: missing.iter().map(|m| iri(m)).collect(),
        }
    }

    fn same_footprint(got: &Footprint, want: &Footprint, what: &str) {
        close(
            got.per_unit.materials,
            want.per_unit.materials,
            &format!("{what} materials"),
        );
        close(
            got.per_unit.fabrication,
            want.per_unit.fabrication,
            &format!("{what} fabrication"),
        );
        close(
            got.per_unit.transport,
            want.per_unit.transport,
            &format!("{what} transport"),
        );
        close(
            got.recycled_content,
            want.recycled_content,
            &format!("{what} recycled content"),
        );
        close(
            got.primary_data_share,
            want.primary_data_share,
            &format!("{what} primary share"),
        );
        assert_eq!(got.unit, want.unit, "{what} unit");
        assert_eq!(
            got.missing_inputs, want.missing_inputs,
            "{what} missing inputs"
        );
        assert_eq!((got.method, got.method_version), (METHOD, METHOD_VERSION));
    }

    fn known(resource: &str, footprint: Footprint, delivery: f64) -> InputFootprint {
        InputFootprint {
            resource: iri(resource),
            footprint: Some(footprint),
            delivery_transport_per_unit: delivery,
            delivery_transport_primary_share: 0.0,
        }
    }

    fn unknown(resource: &str) -> InputFootprint {
        InputFootprint {
            resource: iri(resource),
            footprint: None,
            delivery_transport_per_unit: 0.0,
            delivery_transport_primary_share: 0.0,
        }
    }

    // ---- lots

    /// The only caller of `lot`: given a `MaterialSourced` with `quantity`, `factor`, `quality`
    /// and `recycled`, its footprint is `want`.
    fn check_lot(quantity: Value, factor: f64, quality: &str, recycled: f64, want: Footprint) {
        let p: MaterialSourced = parse(json!({
            "lotId": iri("lot"), "material": "Oak", "quantity": quantity, "origin": place("DE"),
            "supplier": { "id": iri("supplier") }, "kgCo2ePerUnit": factor,
            "dataQuality": quality, "recycledContent": recycled,
        }));
        same_footprint(&lot(&p), &want, "lot");
    }

    #[test]
    fn a_lot_declared_in_kilograms_carries_its_declared_factor_as_materials() {
        check_lot(
            q(100.0, "KGM"),
            2.0,
            "primary",
            0.0,
            footprint([2.0, 0.0, 0.0], Unit::Kilogram, 0.0, 1.0, &[]),
        );
    }

    #[test]
    fn a_lot_declared_in_tonnes_gets_its_factor_per_kilogram() {
        check_lot(
            q(2.0, "TNE"),
            1500.0,
            "secondary",
            0.3,
            footprint([1.5, 0.0, 0.0], Unit::Kilogram, 0.3, 0.0, &[]),
        );
    }

    #[test]
    fn a_lot_declared_in_grams_gets_its_factor_per_kilogram_and_pieces_stay_pieces() {
        check_lot(
            q(500.0, "GRM"),
            0.002,
            "secondary",
            1.0,
            footprint([2.0, 0.0, 0.0], Unit::Kilogram, 1.0, 0.0, &[]),
        );
        check_lot(
            q(40.0, "H87"),
            0.75,
            "primary",
            0.0,
            footprint([0.75, 0.0, 0.0], Unit::Piece, 0.0, 1.0, &[]),
        );
    }

    // ---- shipments

    /// The only caller of `shipment_emissions`: given a dispatch with `fields` (lines, mode,
    /// distance, measured emissions), the total, each line's (kgCO2e, per unit), the data quality
    /// and the flags (distance missing, masses missing) are as expected.
    fn check_shipment(
        fields: Value,
        total: f64,
        want_lines: &[(&str, f64, f64)],
        quality: DataQuality,
        (distance_missing, masses_missing): (bool, bool),
    ) {
        let mut payload = json!({
            "shipmentId": iri("ship"), "from": place("DE"), "to": place("FR"),
            "consignee": iri("buyer"),
        });
        if let (Some(payload), Some(fields)) = (payload.as_object_mut(), fields.as_object()) {
            payload.extend(fields.clone());
        }
        let got = shipment_emissions(&parse(payload), &factors());
        close(got.total_kg_co2e, total, "shipment total");
        assert_eq!(got.lines.len(), want_lines.len(), "line count");
        for (line, (resource, kg, per_unit)) in got.lines.iter().zip(want_lines) {
            assert_eq!(line.resource, iri(resource));
            close(line.kg_co2e, *kg, &format!("{resource} kgCO2e"));
            close(line.per_unit, *per_unit, &format!("{resource} per unit"));
        }
        assert_eq!(got.data_quality, quality, "data quality");
        assert_eq!(got.distance_missing, distance_missing, "distance missing");
        assert_eq!(got.masses_missing, masses_missing, "masses missing");
    }

    #[test]
    fn a_modelled_shipment_is_distance_times_tonnes_times_the_mode_factor_allocated_by_mass() {
        // 300 kg of oak and 0.7 t of chairs (20 pieces, mass given) by road over 100 km:
        // 100 × 1 t × 0.1 = 10 kgCO2e, 3 to the oak (0.01 per kg), 7 to the chairs (0.35 each).
        check_shipment(
            json!({
                "lines": [
                    { "resource": iri("oak"), "quantity": q(300.0, "KGM") },
                    { "resource": iri("chairs"), "quantity": q(20.0, "H87"), "mass": q(0.7, "TNE") },
                ],
                "transportMode": "road", "distanceKm": 100.0,
            }),
            10.0,
            &[("oak", 3.0, 0.01), ("chairs", 7.0, 0.35)],
            DataQuality::Secondary,
            (false, false),
        );
    }

    #[test]
    fn measured_emissions_take_precedence_over_the_model_and_are_primary() {
        check_shipment(
            json!({
                "lines": [
                    { "resource": iri("oak"), "quantity": q(250.0, "KGM") },
                    { "resource": iri("pine"), "quantity": q(750.0, "KGM") },
                ],
                "transportMode": "rail", "distanceKm": 100.0, "measuredEmissionsKgCo2e": 12.0,
            }),
            12.0,
            &[("oak", 3.0, 0.012), ("pine", 9.0, 0.012)],
            DataQuality::Primary,
            (false, false),
        );
    }

    #[test]
    fn a_line_without_a_mass_makes_the_allocation_equal_and_is_flagged() {
        // Only the 500 kg line has a mass: 50 km × 0.5 t × 0.01 = 0.25, split 0.125 / 0.125.
        check_shipment(
            json!({
                "lines": [
                    { "resource": iri("oak"), "quantity": q(500.0, "KGM") },
                    { "resource": iri("chairs"), "quantity": q(5.0, "H87") },
                ],
                "transportMode": "sea", "distanceKm": 50.0,
            }),
            0.25,
            &[("oak", 0.125, 0.00025), ("chairs", 0.125, 0.025)],
            DataQuality::Secondary,
            (false, true),
        );
    }

    #[test]
    fn a_shipment_with_neither_distance_nor_measurement_counts_zero_and_is_flagged() {
        check_shipment(
            json!({
                "lines": [{ "resource": iri("oak"), "quantity": q(500.0, "KGM") }],
                "transportMode": "air",
            }),
            0.0,
            &[("oak", 0.0, 0.0)],
            DataQuality::Secondary,
            (true, false),
        );
    }

    // ---- batches and repairs

    fn batch_payload(quantity: Value, inputs: Value, country: &str, extra: Value) -> Value {
        let mut payload = json!({
            "batchId": iri("batch"), "designId": iri("design"), "quantity": quantity,
            "facility": place(country), "inputs": inputs,
        });
        if let (Some(payload), Some(extra)) = (payload.as_object_mut(), extra.as_object()) {
            payload.extend(extra.clone());
        }
        payload
    }

    /// The only caller of `batch`: given a `BatchFabricated` payload, the inputs' footprints and
    /// the repairs, the batch's footprint is `want`.
    fn check_batch(
        payload: Value,
        inputs: &[InputFootprint],
        repairs: &[RepairFootprint],
        want: Footprint,
    ) {
        let got = batch(&parse(payload), inputs, repairs, &factors());
        same_footprint(&got, &want, "batch");
    }

    /// The only caller of `repair`: given a `BatchRepaired` payload, its parts' footprints and
    /// the facility's country, the repair's absolute emissions are `want` (with `primary`).
    fn check_repair(
        payload: Value,
        parts: &[InputFootprint],
        facility_country: Option<&str>,
        want: Breakdown,
        primary: f64,
        missing: &[&str],
    ) -> RepairFootprint {
        let got = repair(
            &parse(payload),
            parts,
            facility_country.map(country),
            &factors(),
        );
        close(got.kg_co2e.materials, want.materials, "repair materials");
        close(
            got.kg_co2e.fabrication,
            want.fabrication,
            "repair fabrication",
        );
        close(got.kg_co2e.transport, want.transport, "repair transport");
        close(got.primary_kg_co2e, primary, "repair primary");
        let missing: Vec<Iri> = missing.iter().map(|m| iri(m)).collect();
        assert_eq!(got.missing_inputs, missing, "repair missing inputs");
        got
    }

    /// The worked example of `docs/views.md`: a 100 kg lot of oak at 2.0 kgCO2e/kg (primary), a
    /// 20 kg lot of recycled steel at 0.5 (secondary); 10 stools from 30 kg of oak and 10 kg of
    /// steel, 50 kWh at a reported 0.3 kg/kWh and 1 kg of direct emissions, the oak delivered at
    /// 0.01 kgCO2e/kg (modelled).
    #[test]
    fn the_worked_example_gives_the_hand_computed_figures_per_piece() {
        let oak = footprint([2.0, 0.0, 0.0], Unit::Kilogram, 0.0, 1.0, &[]);
        let steel = footprint([0.5, 0.0, 0.0], Unit::Kilogram, 1.0, 0.0, &[]);
        // materials (30 × 2 + 10 × 0.5) / 10 = 6.5; fabrication (50 × 0.3 + 1) / 10 = 1.6;
        // transport 30 × 0.01 / 10 = 0.03; total 81.3 kg for the batch, of which 60 + 15 + 1 =
        // 76 primary; recycled content (30 × 0 + 10 × 1) / 40 = 0.25.
        check_batch(
            batch_payload(
                q(10.0, "H87"),
                json!([
                    { "resource": iri("oak"), "quantity": q(30.0, "KGM") },
                    { "resource": iri("steel"), "quantity": q(10.0, "KGM") },
                ]),
                "DE",
                json!({
                    "energy": { "amount": 50.0, "unit": "KWH", "gridFactorKgCo2ePerKwh": 0.3 },
                    "directEmissionsKgCo2e": 1.0,
                }),
            ),
            &[known("oak", oak, 0.01), known("steel", steel, 0.0)],
            &[],
            footprint([6.5, 1.6, 0.03], Unit::Piece, 0.25, 76.0 / 81.3, &[]),
        );
    }

    #[test]
    fn energy_without_a_reported_factor_uses_the_facility_country_default_then_the_world_average() {
        // 2 MWh in Germany at the default 0.4 = 800 kg over 100 kg of output; secondary.
        let energy = json!({ "energy": { "amount": 2.0, "unit": "MWH" } });
        check_batch(
            batch_payload(q(100.0, "KGM"), json!([]), "DE", energy.clone()),
            &[],
            &[],
            footprint([0.0, 8.0, 0.0], Unit::Kilogram, 0.0, 0.0, &[]),
        );
        // Japan has no configured factor: the world average 0.5, 1000 kg over 100 kg.
        check_batch(
            batch_payload(q(100.0, "KGM"), json!([]), "JP", energy),
            &[],
            &[],
            footprint([0.0, 10.0, 0.0], Unit::Kilogram, 0.0, 0.0, &[]),
        );
    }

    #[test]
    fn inputs_and_output_in_other_mass_units_are_converted_to_kilograms() {
        // 0.03 t of oak at 2.0 per kg = 60 kg CO2e, for a batch of 0.5 t of boards: 0.12 per kg.
        check_batch(
            batch_payload(
                q(0.5, "TNE"),
                json!([{ "resource": iri("oak"), "quantity": q(0.03, "TNE") }]),
                "DE",
                json!({}),
            ),
            &[known(
                "oak",
                footprint([2.0, 0.0, 0.0], Unit::Kilogram, 0.5, 1.0, &[]),
                0.0,
            )],
            &[],
            footprint([0.12, 0.0, 0.0], Unit::Kilogram, 0.5, 1.0, &[]),
        );
    }

    #[test]
    fn an_input_without_a_footprint_counts_zero_and_is_listed_as_missing() {
        // The glue has no footprint, the screws none given at all, the legs are per piece but
        // consumed in kilograms: only the 10 kg of oak at 2.0 count, 20 per stool over 1 stool.
        // None of the 13 kg of mass inputs is known to be recycled, so recycled content is 0.
        check_batch(
            batch_payload(
                q(1.0, "H87"),
                json!([
                    { "resource": iri("oak"), "quantity": q(10.0, "KGM") },
                    { "resource": iri("glue"), "quantity": q(1.0, "LTR") },
                    { "resource": iri("screws"), "quantity": q(2.0, "KGM") },
                    { "resource": iri("legs"), "quantity": q(1.0, "KGM") },
                ]),
                "DE",
                json!({}),
            ),
            &[
                known(
                    "oak",
                    footprint([2.0, 0.0, 0.0], Unit::Kilogram, 0.0, 0.0, &[]),
                    0.0,
                ),
                unknown("glue"),
                known(
                    "legs",
                    footprint([5.0, 0.0, 0.0], Unit::Piece, 1.0, 1.0, &[]),
                    0.0,
                ),
            ],
            &[],
            footprint(
                [20.0, 0.0, 0.0],
                Unit::Piece,
                0.0,
                0.0,
                &["glue", "screws", "legs"],
            ),
        );
    }

    #[test]
    fn inputs_carry_their_whole_breakdown_and_a_batch_with_no_emissions_has_no_primary_share() {
        // 4 chairs from 2 kits, each kit 3 materials + 1 fabrication + 0.5 transport per piece,
        // 80 % primary, delivered at 0.25 per kit, half of it measured.
        let kit = footprint([3.0, 1.0, 0.5], Unit::Piece, 0.0, 0.8, &[]);
        let mut delivered = known("kit", kit, 0.25);
        delivered.delivery_transport_primary_share = 0.5;
        // absolute: materials 6, fabrication 2, transport 1 + 0.5; primary 0.8 × 9 + 0.25.
        check_batch(
            batch_payload(
                q(4.0, "H87"),
                json!([{ "resource": iri("kit"), "quantity": q(2.0, "H87") }]),
                "FR",
                json!({}),
            ),
            &[delivered],
            &[],
            footprint([1.5, 0.5, 0.375], Unit::Piece, 0.0, 7.45 / 9.5, &[]),
        );
        check_batch(
            batch_payload(q(4.0, "H87"), json!([]), "FR", json!({})),
            &[],
            &[],
            footprint([0.0, 0.0, 0.0], Unit::Piece, 0.0, 0.0, &[]),
        );
    }

    #[test]
    fn a_repair_adds_its_parts_at_delivered_footprint_and_its_energy_to_the_repaired_batch() {
        // Two hinges at 1.5 per piece delivered at 0.25 each (materials 3, transport 0.5), 2 kWh
        // in France at the default 0.05 (0.1, secondary), 0.4 kg direct (primary); the sensor
        // has no footprint.
        let hinge = footprint([1.5, 0.0, 0.0], Unit::Piece, 0.0, 1.0, &[]);
        let repaired = check_repair(
            json!({
                "resource": iri("batch"),
                "parts": [
                    { "resource": iri("hinge"), "quantity": q(2.0, "H87") },
                    { "resource": iri("sensor"), "quantity": q(1.0, "H87") },
                ],
                "energy": { "amount": 2.0, "unit": "KWH" },
                "directEmissionsKgCo2e": 0.4,
            }),
            &[known("hinge", hinge, 0.25), unknown("sensor")],
            Some("FR"),
            Breakdown {
                materials: 3.0,
                fabrication: 0.5,
                transport: 0.5,
            },
            3.4,
            &["sensor"],
        );
        // A repair with no facility country uses the world average: 2 kWh × 0.5.
        check_repair(
            json!({ "resource": iri("batch"), "energy": { "amount": 2.0, "unit": "KWH" } }),
            &[],
            None,
            Breakdown {
                materials: 0.0,
                fabrication: 1.0,
                transport: 0.0,
            },
            0.0,
            &[],
        );
        // The repaired batch: 2 stools, 10 kg of oak at 2.0 (secondary) plus the repair:
        // materials (20 + 3) / 2, fabrication 0.5 / 2, transport 0.5 / 2; primary 3.4 of 24.
        check_batch(
            batch_payload(
                q(2.0, "H87"),
                json!([{ "resource": iri("oak"), "quantity": q(10.0, "KGM") }]),
                "FR",
                json!({}),
            ),
            &[known(
                "oak",
                footprint([2.0, 0.0, 0.0], Unit::Kilogram, 0.0, 0.0, &[]),
                0.0,
            )],
            &[repaired],
            footprint(
                [11.5, 0.25, 0.25],
                Unit::Piece,
                0.0,
                3.4 / 24.0,
                &["sensor"],
            ),
        );
    }

    // ---- recovered lots

    /// The only caller of `recovered_lots`: given a `BatchRecycled` payload, the recovered lots'
    /// footprints are `want`, in the order of the output lots.
    fn check_recovered(payload: Value, want: &[(&str, Footprint)]) {
        let got = recovered_lots(&parse(payload), &factors());
        assert_eq!(got.len(), want.len(), "recovered lot count");
        for ((lot_id, got), (name, want)) in got.iter().zip(want) {
            assert_eq!(lot_id, &iri(name));
            same_footprint(got, want, name);
        }
    }

    #[test]
    fn recovered_lots_carry_only_the_recycling_process_allocated_by_mass() {
        // 10 kWh in France at the default 0.05 = 0.5 (secondary) + 0.5 direct (primary) = 1.0,
        // whatever the stools' own footprint (cut-off); 2 kg of flakes get 0.2, 0.008 t of
        // chips 0.8: 0.1 per kg each, half primary, recycled content 1.
        check_recovered(
            json!({
                "resource": iri("stools"), "quantity": q(4.0, "H87"), "facility": place("FR"),
                "outputLots": [
                    { "lotId": iri("flakes"), "material": "PLA", "quantity": q(2.0, "KGM") },
                    { "lotId": iri("chips"), "material": "Oak", "quantity": q(0.008, "TNE") },
                ],
                "energy": { "amount": 10.0, "unit": "KWH" },
                "directEmissionsKgCo2e": 0.5,
            }),
            &[
                (
                    "flakes",
                    footprint([0.0, 0.1, 0.0], Unit::Kilogram, 1.0, 0.5, &[]),
                ),
                (
                    "chips",
                    footprint([0.0, 0.1, 0.0], Unit::Kilogram, 1.0, 0.5, &[]),
                ),
            ],
        );
    }

    #[test]
    fn recovered_lots_not_counted_in_mass_share_the_process_equally() {
        // 3.6 MJ = 1 kWh at a reported 0.6: 0.6 primary, 0.3 to each lot.
        check_recovered(
            json!({
                "resource": iri("stools"), "quantity": q(4.0, "H87"), "facility": place("DE"),
                "outputLots": [
                    { "lotId": iri("legs"), "material": "Oak", "quantity": q(12.0, "H87") },
                    { "lotId": iri("chips"), "material": "Oak", "quantity": q(3.0, "KGM") },
                ],
                "energy": { "amount": 3.6, "unit": "3B", "gridFactorKgCo2ePerKwh": 0.6 },
            }),
            &[
                (
                    "legs",
                    footprint([0.0, 0.025, 0.0], Unit::Piece, 1.0, 1.0, &[]),
                ),
                (
                    "chips",
                    footprint([0.0, 0.1, 0.0], Unit::Kilogram, 1.0, 1.0, &[]),
                ),
            ],
        );
    }

    // ---- factors

    #[test]
    fn the_default_factors_cover_the_listed_countries_and_every_mode_in_a_plausible_range() {
        let defaults = Factors::default();
        for code in ["DE", "ES", "FI", "FR", "IT", "NL", "PL", "SE"] {
            let factor = defaults.grid_factor(Some(country(code)));
            assert!(factor > 0.0 && factor < 1.0, "{code}: {factor}");
            assert_ne!(factor, defaults.grid.world, "{code} has its own factor");
        }
        close(defaults.grid_factor(None), 0.481, "world average");
        let modes = [
            TransportMode::Road,
            TransportMode::Rail,
            TransportMode::Sea,
            TransportMode::InlandWaterway,
            TransportMode::Air,
        ];
        for mode in modes {
            let factor = defaults.transport_factor(mode);
            assert!(factor > 0.0 && factor < 2.0, "{mode:?}: {factor}");
        }
        close(
            defaults.transport_factor(TransportMode::Bicycle),
            0.0,
            "bicycle",
        );
    }
}
