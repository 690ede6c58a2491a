//! The contribution method (the value equation), as pure functions. See `docs/views.md`.
