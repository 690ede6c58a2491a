//! The Stigmergy platform as one program: typed configuration, telemetry, the [`Application`]
//! that `stigmergy serve` runs all in one (capture, the views projector and the gateway, on the
//! embedded log) and that `stigmergy capture` and `stigmergy gateway` run one role of on Kafka,
//! the projector process (`project`: catching up on the embedded log, a consumer-group member on
//! Kafka), the Prometheus metrics every HTTP process serves at `/metrics`, and the demo
//! scenario.
//!
//! This crate wires adapters to services; it holds no business rule (those are in
//! `stigmergy-domain`) and no storage code (those are in the adapter crates).

pub mod app;
pub mod config;
pub mod demo;
pub mod export;
pub mod metrics;
pub mod operator;
pub mod project;
pub mod telemetry;

pub use app::Application;
pub use config::Config;
