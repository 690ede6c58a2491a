//! The Stigmergy platform as one program: typed configuration, telemetry, the all-in-one
//! [`Application`] that `stigmergy serve` runs (capture and the views projector, and the gateway
//! as it arrives) on the embedded log, and the demo scenario.
//!
//! This crate wires adapters to services; it holds no business rule (those are in
//! `stigmergy-domain`) and no storage code (those are in the adapter crates).

pub mod app;
pub mod config;
pub mod demo;
pub mod operator;
pub mod project;
pub mod telemetry;

pub use app::Application;
pub use config::Config;
