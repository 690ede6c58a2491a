//! The footprint method (cradle-to-gate, kgCO2e per declared unit), as pure functions of the
//! events and of the footprints of the inputs. See `docs/views.md`.
