//! The read store of Stigmergy: state the services look up that is not itself an event — the
//! organisation directory (organisations and their API keys, kept hashed) and the views the
//! projectors derive from the log, in embedded SQLite or PostgreSQL.
//!
//! This crate never decides what may be recorded (that is the domain's rules) and never keeps a
//! secret in clear: an API key exists in clear only in the answer that creates it.

pub mod document;
mod organizations;
mod pg;
mod sqlite;
mod views;

pub use organizations::{ApiKey, Organization, OrganizationDirectory};
pub use views::{
    EventScope, FootprintCursor, FootprintFilter, FootprintProvenance, FootprintStatus,
    FootprintVersion, HELD_EPSILON, Held, ListedEvent, MEMO_RESOURCES, PartitionOffset,
    PostgresViewStore, SqliteViewStore, TimelineEntry, ViewStore, WhenStale, footprint_id,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the store's storage failed")]
    Storage(#[from] rusqlite::Error),
    #[error("the PostgreSQL store failed")]
    Postgres(#[from] postgres::Error),
    #[error("an organisation named {0:?} already exists")]
    NameTaken(String),
    #[error("no organisation {0}")]
    UnknownOrganization(String),
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
