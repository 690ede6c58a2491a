//! The payloads of the ten lifecycle events (DESIGN §3), with their EPCIS 2.0 and ValueFlows
//! equivalents in the documentation of each type.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{CountryCode, EventId, Iri, Licence, OrganizationId};
use crate::list::List;
use crate::text::{Name, Text};
use crate::units::{Amount, EnergyUnit, Fraction, MassQuantity, PositiveAmount, Quantity};

/// A place: a facility, a warehouse, a city.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Place {
    /// The place's own identifier (a GS1 GLN as Digital Link, an https IRI), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Iri>,
    pub name: Name,
    /// Where the place is; it selects the default electricity grid factor.
    pub country: CountryCode,
}

/// A person or an organisation that is not necessarily registered in Stigmergy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Agent {
    pub id: Iri,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Name>,
}

/// Energy used by a process, with the electricity grid factor when it was measured or known.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Energy {
    pub amount: Amount,
    pub unit: EnergyUnit,
    /// kgCO2e per kWh of the electricity used; when absent the default factor of the facility's
    /// country applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid_factor_kg_co2e_per_kwh: Option<Amount>,
}

impl Energy {
    pub fn kilowatt_hours(&self) -> f64 {
        self.amount.get() * self.unit.kilowatt_hours()
    }
}

/// A resource consumed by a process, and how much of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Input {
    pub resource: Iri,
    pub quantity: Quantity,
}

/// Hours of work someone put into fabricating a batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Labour {
    pub agent: Iri,
    pub hours: Amount,
}

/// An open design enters the commons. ValueFlows: produce.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DesignPublished {
    pub design_id: Iri,
    pub name: Name,
    pub licence: Licence,
    /// Where the design files are (a repository, an archive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_uri: Option<Iri>,
    pub version: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Text>,
}

/// A design derived from another. ValueFlows: cite the parent, produce the fork.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DesignForked {
    pub design_id: Iri,
    pub parent_design_id: Iri,
    pub name: Name,
    /// Must stay in the parent's family when the parent's licence is share-alike.
    pub licence: Licence,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_uri: Option<Iri>,
    pub version: Name,
    /// The share of the fork's attribution that flows to the parent design (0 to 1).
    pub upstream_share: Fraction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Text>,
}

/// What kind of work a contribution was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ContributionKind {
    Design,
    Engineering,
    Documentation,
    Testing,
    Fabrication,
    Review,
    Maintenance,
    Other,
}

/// The unit effort is counted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum EffortUnit {
    Hours,
    Points,
}

/// How much effort went into a contribution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Effort {
    pub amount: PositiveAmount,
    pub unit: EffortUnit,
}

/// Someone contributed to a design or a batch. ValueFlows: work.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContributionRecorded {
    /// The design or batch contributed to.
    pub target: Iri,
    pub contributor: Agent,
    pub kind: ContributionKind,
    pub effort: Effort,
    /// A link to the work itself (a commit, a review, a report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Iri>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Text>,
}

/// Whether a footprint figure was measured for this very thing or taken from a database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DataQuality {
    Primary,
    Secondary,
}

/// Material enters the system with a declared footprint. EPCIS: ObjectEvent ADD (commissioning).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaterialSourced {
    pub lot_id: Iri,
    pub material: Name,
    pub quantity: Quantity,
    pub origin: Place,
    pub supplier: Agent,
    /// Cradle-to-gate kgCO2e per one unit of `quantity.unit`.
    pub kg_co2e_per_unit: Amount,
    pub data_quality: DataQuality,
    /// Share of the material that is recycled (0 to 1).
    pub recycled_content: Fraction,
}

/// A batch is made from a design and inputs. EPCIS: TransformationEvent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchFabricated {
    pub batch_id: Iri,
    pub design_id: Iri,
    pub quantity: Quantity,
    pub facility: Place,
    #[serde(default)]
    pub inputs: List<Input, 0, 1000>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<Energy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_emissions_kg_co2e: Option<Amount>,
    #[serde(default)]
    pub labour: List<Labour, 0, 1000>,
}

/// How goods travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TransportMode {
    Road,
    Rail,
    Sea,
    InlandWaterway,
    Air,
    Bicycle,
}

/// One line of a shipment: what is shipped, how much, and how heavy it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShipmentLine {
    pub resource: Iri,
    pub quantity: Quantity,
    /// The line's mass, used to allocate the shipment's emissions; defaults to `quantity` when
    /// that is a mass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mass: Option<MassQuantity>,
}

/// Goods leave a place for an addressee. EPCIS: ObjectEvent OBSERVE, bizStep shipping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShipmentDispatched {
    pub shipment_id: Iri,
    pub lines: List<ShipmentLine, 1, 1000>,
    pub from: Place,
    pub to: Place,
    /// The organisation the goods are addressed to; only it may receive them.
    pub consignee: OrganizationId,
    pub transport_mode: TransportMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_km: Option<Amount>,
    /// Measured emissions of the whole shipment; they take precedence over distance × mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_emissions_kg_co2e: Option<Amount>,
}

/// One line received.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReceivedLine {
    pub resource: Iri,
    pub quantity: Quantity,
}

/// Goods arrive and custody passes to the consignee. EPCIS: ObjectEvent OBSERVE, bizStep
/// receiving.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShipmentReceived {
    pub shipment_id: Iri,
    pub lines: List<ReceivedLine, 1, 1000>,
    pub location: Place,
}

/// A thing gets a longer life with replacement parts. EPCIS: TransformationEvent (repairing).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchRepaired {
    pub resource: Iri,
    #[serde(default)]
    pub parts: List<Input, 0, 1000>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<Energy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_emissions_kg_co2e: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Text>,
}

/// A material lot recovered by recycling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutputLot {
    pub lot_id: Iri,
    pub material: Name,
    pub quantity: Quantity,
}

/// A thing is taken apart into recovered material. EPCIS: TransformationEvent (disassembling).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchRecycled {
    pub resource: Iri,
    pub quantity: Quantity,
    pub facility: Place,
    pub output_lots: List<OutputLot, 1, 100>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<Energy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_emissions_kg_co2e: Option<Amount>,
}

/// An earlier event did not happen or was wrong. EPCIS: errorDeclaration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventRetracted {
    pub event_id: EventId,
    pub reason: Text,
    /// Events that replace the retracted one.
    #[serde(default)]
    pub corrective_event_ids: List<EventId, 0, 100>,
}
