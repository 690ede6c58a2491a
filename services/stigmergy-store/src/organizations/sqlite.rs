//! The directory in `organizations.sqlite` in the data directory, for one process.

use std::path::Path;

use rusqlite::{Connection, params};

use super::{NewKey, NewOrganization, Rows};
use crate::sqlite::SharedConnection;
use crate::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS organizations (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash        TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    created_at      TEXT NOT NULL
) STRICT;
";

/// Opens (creating when missing) `organizations.sqlite` in `dir`, with every row it holds.
pub(super) fn open(dir: &Path) -> Result<(SharedConnection, Rows)> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
    let connection = Connection::open(dir.join("organizations.sqlite"))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.execute_batch(SCHEMA)?;
    let rows = read(&connection)?;
    Ok((SharedConnection::new(connection), rows))
}

fn read(connection: &Connection) -> Result<Rows> {
    let mut statement = connection.prepare("SELECT id, name, created_at FROM organizations")?;
    let organizations = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut statement = connection.prepare("SELECT key_hash, organization_id FROM api_keys")?;
    let keys = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Rows {
        organizations,
        keys,
    })
}

pub(super) fn insert_organization(
    connection: &mut Connection,
    row: &NewOrganization,
) -> Result<bool> {
    let transaction = connection.transaction()?;
    let inserted = transaction.execute(
        "INSERT INTO organizations (id, name, name_key, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name_key) DO NOTHING",
        params![row.id, row.name, row.name_key, row.created_at],
    )?;
    if inserted == 0 {
        return Ok(false);
    }
    transaction.execute(
        "INSERT INTO api_keys (key_hash, organization_id, created_at) VALUES (?1, ?2, ?3)",
        params![row.key_hash, row.id, row.created_at],
    )?;
    transaction.commit()?;
    Ok(true)
}

pub(super) fn insert_key(connection: &mut Connection, row: &NewKey) -> Result<()> {
    connection.execute(
        "INSERT INTO api_keys (key_hash, organization_id, created_at) VALUES (?1, ?2, ?3)",
        params![row.key_hash, row.organization_id, row.created_at],
    )?;
    Ok(())
}
