//! The views store suite against embedded SQLite.

mod suite;

suite::view_store_tests!(suite::sqlite);
