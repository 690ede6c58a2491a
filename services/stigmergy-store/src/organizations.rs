//! The organisation directory: who may record events, and the hashes of their API keys.
//!
//! Every key is 32 random bytes, shown once as `stg_<64 hex digits>` and stored as its SHA-256
//! (a key is high-entropy, so a fast hash is the right tool; there is nothing to brute-force).
//! Lookups are answered from memory; writes go to `organizations.sqlite` first (fsynced) and to
//! memory after.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use chrono::Utc;
use rand::RngCore;
use rusqlite::{Connection, params};
use serde::Serialize;
use sha2::{Digest, Sha256};
use stigmergy_domain::{Iri, OrganizationId};

use crate::sqlite::SharedConnection;
use crate::{Error, Result};

/// A registered organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub id: OrganizationId,
    pub name: String,
    pub created_at: String,
}

/// An API key in clear, as shown once to its organisation.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(format!("stg_{}", hex::encode(bytes)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(…)")
    }
}

fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[derive(Default)]
struct Cache {
    by_id: HashMap<OrganizationId, Organization>,
    by_key_hash: HashMap<String, OrganizationId>,
}

/// The organisation directory, backed by SQLite in the data directory.
#[derive(Clone)]
pub struct OrganizationDirectory {
    connection: SharedConnection,
    cache: Arc<RwLock<Cache>>,
}

impl std::fmt::Debug for OrganizationDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrganizationDirectory")
            .finish_non_exhaustive()
    }
}

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

fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

impl OrganizationDirectory {
    /// Opens (creating when missing) the directory in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        let connection = Connection::open(dir.join("organizations.sqlite"))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.execute_batch(SCHEMA)?;
        let mut cache = Cache::default();
        {
            let mut statement =
                connection.prepare("SELECT id, name, created_at FROM organizations")?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })?;
            for row in rows {
                let (id, name, created_at) = row?;
                let id = Iri::parse(id).map_err(Error::Unavailable)?;
                cache.by_id.insert(
                    id.clone(),
                    Organization {
                        id,
                        name,
                        created_at,
                    },
                );
            }
            let mut statement =
                connection.prepare("SELECT key_hash, organization_id FROM api_keys")?;
            let rows = statement.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?;
            for row in rows {
                let (hash, id) = row?;
                let id = Iri::parse(id).map_err(Error::Unavailable)?;
                cache.by_key_hash.insert(hash, id);
            }
        }
        Ok(Self {
            connection: SharedConnection::new(connection),
            cache: Arc::new(RwLock::new(cache)),
        })
    }

    fn cache_read(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cache_write(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.cache
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers an organisation and issues its first API key. Names are unique, ignoring case and
    /// surrounding white space.
    pub async fn create(&self, name: &str) -> Result<(Organization, ApiKey)> {
        let organization = Organization {
            id: Iri::from_uuid(uuid::Uuid::now_v7()),
            name: name.trim().to_owned(),
            created_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        let key = ApiKey::generate();
        let key_hash = hash_key(key.expose());
        let row = organization.clone();
        let hash = key_hash.clone();
        self.connection.run(move |connection| {
            let transaction = connection.transaction()?;
            let inserted = transaction.execute(
                "INSERT INTO organizations (id, name, name_key, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name_key) DO NOTHING",
                params![row.id.as_str(), row.name, name_key(&row.name), row.created_at],
            )?;
            if inserted == 0 {
                return Err(Error::NameTaken(row.name));
            }
            transaction.execute(
                "INSERT INTO api_keys (key_hash, organization_id, created_at) VALUES (?1, ?2, ?3)",
                params![hash, row.id.as_str(), row.created_at],
            )?;
            transaction.commit()?;
            Ok(())
        })
        .await?;
        let mut cache = self.cache_write();
        cache.by_key_hash.insert(key_hash, organization.id.clone());
        cache
            .by_id
            .insert(organization.id.clone(), organization.clone());
        Ok((organization, key))
    }

    /// Issues one more API key for an organisation (earlier keys stay valid).
    pub async fn issue_key(&self, id: &OrganizationId) -> Result<ApiKey> {
        if !self.exists(id) {
            return Err(Error::UnknownOrganization(id.to_string()));
        }
        let key = ApiKey::generate();
        let key_hash = hash_key(key.expose());
        let (hash, owner) = (key_hash.clone(), id.to_string());
        self.connection
            .run(move |connection| {
                connection.execute(
                "INSERT INTO api_keys (key_hash, organization_id, created_at) VALUES (?1, ?2, ?3)",
                params![
                    hash,
                    owner,
                    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                ],
            )?;
                Ok(())
            })
            .await?;
        self.cache_write().by_key_hash.insert(key_hash, id.clone());
        Ok(key)
    }

    /// The organisation a presented API key belongs to.
    pub fn authenticate(&self, presented: &str) -> Option<Organization> {
        let cache = self.cache_read();
        let id = cache.by_key_hash.get(&hash_key(presented))?;
        cache.by_id.get(id).cloned()
    }

    pub fn get(&self, id: &OrganizationId) -> Option<Organization> {
        self.cache_read().by_id.get(id).cloned()
    }

    pub fn exists(&self, id: &OrganizationId) -> bool {
        self.cache_read().by_id.contains_key(id)
    }

    /// Every organisation, oldest first.
    pub fn list(&self) -> Vec<Organization> {
        let mut all: Vec<Organization> = self.cache_read().by_id.values().cloned().collect();
        all.sort_by(|a, b| (&a.created_at, a.id.as_str()).cmp(&(&b.created_at, b.id.as_str())));
        all
    }
}

impl stigmergy_domain::rules::Directory for OrganizationDirectory {
    fn organization_exists(&self, id: &OrganizationId) -> bool {
        self.exists(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_authenticate_their_organisation_and_survive_a_restart() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::Unavailable(e.to_string()))?;
        let directory = OrganizationDirectory::open(dir.path())?;
        let (acme, key) = directory.create("Acme Microfactory").await?;
        assert!(key.expose().starts_with("stg_"));
        assert_eq!(
            directory.authenticate(key.expose()).map(|o| o.id),
            Some(acme.id.clone())
        );
        assert!(directory.authenticate("stg_wrong").is_none());
        assert!(matches!(
            directory.create("  acme microfactory ").await,
            Err(Error::NameTaken(_))
        ));
        let second = directory.issue_key(&acme.id).await?;
        drop(directory);

        let reopened = OrganizationDirectory::open(dir.path())?;
        assert_eq!(
            reopened.authenticate(key.expose()).map(|o| o.name),
            Some("Acme Microfactory".into())
        );
        assert!(reopened.authenticate(second.expose()).is_some());
        assert_eq!(reopened.list().len(), 1);
        let stored: String = Connection::open(dir.path().join("organizations.sqlite"))?.query_row(
            "SELECT group_concat(key_hash) FROM api_keys",
            [],
            |row| row.get(0),
        )?;
        assert!(!stored.contains(key.expose()), "keys are stored hashed");
        Ok(())
    }
}
