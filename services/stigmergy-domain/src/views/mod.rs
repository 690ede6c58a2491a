//! What the log means for buyers and auditors, as pure functions: the index every event adds to
//! the read store (which resources it touches, what flowed into what), from which provenance,
//! footprints, contributions and anomalies are derived.
//!
//! Every view is a function of the *set* of events that are not retracted, never of the order
//! they arrived in: each event's index rows are keyed by its id (so storing them twice changes
//! nothing), and a retraction only adds the retracted id to a set that queries leave out. So
//! replaying from zero gives what incremental processing gave, whatever the interleaving.

pub mod contribution;
pub mod derive;
pub mod document;
pub mod footprint;
pub mod index;
pub mod ledger;
pub mod lineage;
pub mod memo;

pub use derive::{
    Anomaly, AnomalyKind, Facts, FootprintChange, Holding, Kind, Leg, Methods, Receipt, Record,
    journey,
};
pub use footprint::{
    Breakdown, Factors, Footprint, GridFactors, InputFootprint, LineEmissions, METHOD,
    METHOD_VERSION, RepairFootprint, ShipmentEmissions, TransportFactors,
};
pub use index::{Consignment, EventIndex, Flow, FlowKind, Movement, Role, Touch};
pub use ledger::{Derivation, Ledger, Records};
pub use lineage::{Direction, Lineage, walk};
pub use memo::Memo;
