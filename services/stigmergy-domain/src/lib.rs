//! The pure core of Stigmergy: the lifecycle event model (envelope and the ten event types),
//! the parsed value types it is made of (IRIs, quantities with UN/ECE Rec 20 units, timestamps,
//! fractions), the JSON Schemas generated from those types, and the capture rules as pure
//! functions of the state the event log implies.
//!
//! This crate must never do I/O: no files, no network, no clock, no threads, no async runtime,
//! no SQL, no HTTP. Whatever it needs from the outside world (the current time, which
//! organisations exist) is passed in as a value. Adapters depend on it, never the reverse.

mod digest;
mod event;
mod ids;
mod list;
mod payload;
pub mod rules;
pub mod schema;
mod text;
mod time;
mod units;
pub mod views;

pub use digest::ContentDigest;
pub use event::{
    CURRENT_SCHEMA_VERSION, DesignRelease, Event, EventPayload, EventType, LogPosition,
    SchemaVersion, Stage, Submission, SubmissionError,
};
pub use ids::{CountryCode, EventId, Iri, Licence, OrganizationId, ShareAlikeFamily};
pub use list::List;
pub use payload::*;
pub use text::{Name, Text};
pub use time::Timestamp;
pub use units::{
    Amount, Dimension, EnergyUnit, Fraction, MassQuantity, MassUnit, Measure, PositiveAmount,
    Quantity, Unit,
};
