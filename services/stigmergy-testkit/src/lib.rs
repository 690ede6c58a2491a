//! Deterministic generators of realistic lifecycle event streams, for property tests and
//! benchmarks: a federation of maker organisations publishing and forking designs, sourcing
//! material, fabricating, shipping, repairing and recycling batches, and now and then retracting
//! an event. The same seed and [`Mix`] always give the same stream. This crate is not used by
//! production code and must never become a dependency of it. The generators do no I/O; the one
//! module that does, [`broker`], starts a throwaway Kafka-protocol broker for integration tests.
//!
//! [`generate`] returns a whole [`Scenario`]; [`Generator`] yields the same events one at a time
//! for streams too large to hold. [`interleave`] reorders a stream the way partitions keyed by
//! subject may deliver it, so that an event can arrive before what it refers to.
//!
//! # What the stream satisfies
//!
//! Fed in order through [`stigmergy_domain::rules::CaptureState`], every event is admitted (the
//! crate's tests check it): the generator keeps the holdings of every organisation exactly as
//! capture computes them, so it never ships, consumes, repairs with or recycles more than an
//! organisation holds; every reference (design, input, part, shipment, consignee, retracted
//! event) names something recorded earlier; shipments are received once, by their consignee,
//! with the lines dispatched; contributions are recorded by the organisation that recorded the
//! design or batch; a fork of a share-alike design keeps its parent's licence; recycling recovers
//! less mass than went in; `occurredAt` and `recordedAt` increase and `subject` is the one capture
//! derives. Organisations retract only their own events, once, and only events nothing was built
//! on: a contribution, a repair (its parts go back), a shipment not yet received (its goods go
//! back), a material lot never used.
//!
//! Left out for simplicity: corrective events of retractions, partial receipts, retractions of
//! designs, batches, receipts or recycling, and identifiers other than `urn:uuid:`, EPC class
//! URNs and `https://` IRIs.

pub mod broker;
mod catalogue;
mod generator;
mod holdings;
mod interleave;

use stigmergy_domain::{Event, Iri, OrganizationId};

pub use generator::Generator;
pub use interleave::interleave;

/// A generated stream and the organisations that recorded it (a capture directory must know
/// them: they are the consignees of the shipments).
#[derive(Clone, Debug)]
pub struct Scenario {
    pub organizations: Vec<OrganizationId>,
    /// The large material lots that feed very many batches (see [`Mix::hub_lots`]).
    pub hub_lots: Vec<Iri>,
    pub events: Vec<Event>,
}

/// What to generate: how many events, by how many organisations, and in which proportions.
#[derive(Clone, Debug)]
pub struct Mix {
    pub events: usize,
    /// At least one. Activity is skewed: a few organisations record most events, as in a real
    /// federation.
    pub organizations: usize,
    /// Large lots, sourced first, that their suppliers ship in portions to every organisation,
    /// so that between them they feed about one batch in eight (tens of thousands in a million
    /// events).
    pub hub_lots: usize,
    /// The share of events that are retractions (0 to 1).
    pub retraction_rate: f64,
    /// Relative weights of the other nine types; the share left by `retraction_rate` is split
    /// in these proportions.
    pub proportions: Proportions,
}

impl Mix {
    /// The default mix, with `events` events.
    pub fn with_events(events: usize) -> Self {
        Self {
            events,
            ..Self::default()
        }
    }
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            events: 10_000,
            organizations: 40,
            hub_lots: 3,
            retraction_rate: 0.005,
            proportions: Proportions::default(),
        }
    }
}

/// Relative weights of the event types other than retractions. When an event of a type cannot
/// be generated yet (a receipt with no shipment under way, a batch with nothing to make it from),
/// what it needs is generated instead; early in a stream that favours designs and sourcing.
#[derive(Clone, Debug)]
pub struct Proportions {
    pub designs_published: f64,
    pub designs_forked: f64,
    pub contributions: f64,
    pub materials_sourced: f64,
    pub batches_fabricated: f64,
    pub shipments_dispatched: f64,
    pub shipments_received: f64,
    pub batches_repaired: f64,
    pub batches_recycled: f64,
}

impl Default for Proportions {
    /// In percent: what a federation of makers records.
    fn default() -> Self {
        Self {
            designs_published: 2.0,
            designs_forked: 1.0,
            contributions: 8.0,
            materials_sourced: 15.0,
            batches_fabricated: 25.0,
            shipments_dispatched: 18.0,
            shipments_received: 16.0,
            batches_repaired: 3.0,
            batches_recycled: 4.0,
        }
    }
}

/// Generates the whole stream of `mix` for `seed`.
pub fn generate(seed: u64, mix: &Mix) -> Scenario {
    let mut generator = Generator::new(seed, mix);
    let organizations = generator.organizations().to_vec();
    let hub_lots = generator.hub_lots().to_vec();
    let events = generator.by_ref().collect();
    Scenario {
        organizations,
        hub_lots,
        events,
    }
}
