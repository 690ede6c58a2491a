//! The organisation directory: who may record events, and the hashes of their API keys.
//!
//! Every key is 32 random bytes, shown once as `stg_<64 hex digits>` and stored as its SHA-256
//! (a key is high-entropy, so a fast hash is the right tool; there is nothing to brute-force).
//! Lookups are answered from memory; writes go to the storage first (SQLite in the data
//! directory, fsynced, or PostgreSQL, committed) and to memory after.
//!
//! Everything but the SQL is here, shared by both storages: the cache, keys and their hashes,
//! names and their uniqueness, and the reloading that makes the writes of other processes
//! sharing a PostgreSQL directory visible in this one. The storages (`sqlite`, `postgres`) only
//! read every row and insert rows.

mod postgres;
mod sqlite;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

use chrono::Utc;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use stigmergy_domain::{Iri, OrganizationId};

use crate::sqlite::SharedConnection;
use crate::{Error, Result};

/// How often a directory shared through PostgreSQL reloads everything, to see what other
/// processes wrote.
const RELOAD_EVERY: Duration = Duration::from_secs(1);
/// How long a lookup that found nothing in memory waits for the reload it asks for.
const MISS_WAIT: Duration = Duration::from_millis(200);

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

/// What makes two names the same name: case and surrounding white space do not count.
fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Every row of a storage, as stored.
#[derive(Default)]
struct Rows {
    /// (id, name, created at)
    organizations: Vec<(String, String, String)>,
    /// (key hash, organisation id)
    keys: Vec<(String, String)>,
}

/// A new organisation and its first key, as the rows to insert together.
struct NewOrganization {
    id: String,
    name: String,
    name_key: String,
    created_at: String,
    key_hash: String,
}

/// One more key of an organisation, as the row to insert.
struct NewKey {
    key_hash: String,
    organization_id: String,
    created_at: String,
}

/// One write of this process, applied to the cache after the storage took it.
struct Written {
    /// Its number among this process's writes, from 1.
    number: u64,
    organization: Option<Organization>,
    key_hash: String,
    owner: OrganizationId,
}

#[derive(Default)]
struct Cache {
    by_id: HashMap<OrganizationId, Organization>,
    by_key_hash: HashMap<String, OrganizationId>,
    /// How many writes this process applied.
    written: u64,
    /// When the cache is reloaded: this process's writes that a reload may have missed (those
    /// applied after it began), to apply again over what it read.
    recent: Option<Vec<Written>>,
}

impl Cache {
    fn from_rows(rows: Rows) -> Result<Self> {
        let mut cache = Self::default();
        for (id, name, created_at) in rows.organizations {
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
        for (hash, id) in rows.keys {
            let id = Iri::parse(id).map_err(Error::Unavailable)?;
            cache.by_key_hash.insert(hash, id);
        }
        Ok(cache)
    }

    fn apply(&mut self, written: &Written) {
        if let Some(organization) = &written.organization {
            self.by_id
                .insert(organization.id.clone(), organization.clone());
        }
        self.by_key_hash
            .insert(written.key_hash.clone(), written.owner.clone());
    }

    /// Applies a write the storage took.
    fn record(
        &mut self,
        organization: Option<Organization>,
        key_hash: String,
        owner: &OrganizationId,
    ) {
        self.written += 1;
        let written = Written {
            number: self.written,
            organization,
            key_hash,
            owner: owner.clone(),
        };
        self.apply(&written);
        if let Some(recent) = &mut self.recent {
            recent.push(written);
        }
    }

    /// Replaces everything with what a reload read, which began when this process had applied
    /// `seen` writes: the later ones are applied again.
    fn replace(&mut self, read: Cache, seen: u64) {
        self.by_id = read.by_id;
        self.by_key_hash = read.by_key_hash;
        let mut recent = self.recent.take().unwrap_or_default();
        recent.retain(|written| written.number > seen);
        for written in &recent {
            self.apply(written);
        }
        self.recent = Some(recent);
    }
}

/// Where the directory is kept.
enum Storage {
    Sqlite(SharedConnection),
    Postgres(postgres::Storage),
}

impl Storage {
    /// Inserts an organisation and its first key, in one transaction; `false` when its name is
    /// taken (then nothing is inserted).
    async fn insert_organization(&self, row: NewOrganization) -> Result<bool> {
        match self {
            Self::Sqlite(connection) => {
                connection
                    .run(move |connection| sqlite::insert_organization(connection, &row))
                    .await
            }
            Self::Postgres(storage) => {
                storage
                    .run(move |client| postgres::insert_organization(client, &row))
                    .await
            }
        }
    }

    async fn insert_key(&self, row: NewKey) -> Result<()> {
        match self {
            Self::Sqlite(connection) => {
                connection
                    .run(move |connection| sqlite::insert_key(connection, &row))
                    .await
            }
            Self::Postgres(storage) => {
                storage
                    .run(move |client| postgres::insert_key(client, &row))
                    .await
            }
        }
    }

    /// Reads every row, blocking: only off the async threads. Nothing for SQLite, which this
    /// process alone writes.
    fn read_blocking(&self) -> Result<Option<Rows>> {
        match self {
            Self::Sqlite(_) => Ok(None),
            Self::Postgres(storage) => storage.run_blocking(postgres::read).map(Some),
        }
    }
}

struct Inner {
    storage: Storage,
    cache: RwLock<Cache>,
    /// The reloads, when other processes may write too.
    reloads: Option<Arc<Reloads>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(reloads) = &self.reloads {
            reloads.stop();
        }
    }
}

/// The organisation directory, in SQLite in the data directory ([`Self::open`], for one process)
/// or in PostgreSQL ([`Self::connect_postgres`], shared by every process connected to it).
///
/// Lookups ([`Self::authenticate`], [`Self::get`], [`Self::exists`], [`Self::list`]) are
/// answered from memory, writes ([`Self::create`], [`Self::issue_key`]) go to the storage first
/// and to this process's memory after, so a process sees its own writes at once.
///
/// In PostgreSQL, what other processes write is seen here:
/// - within about a second: a thread reloads everything 1 s after the previous reload ended, so
///   `list` lags other processes by at most 1 s plus one reload;
/// - at once on a miss: when `authenticate`, `get` or `exists` find nothing in memory, they ask
///   for a reload now and wait for it, up to 200 ms, before answering from memory again. A key
///   or organisation another process created before the lookup began is thus found,
///   unless the reload takes longer than that (PostgreSQL slow or unreachable: the lookup then
///   answers nothing, never an error). Misses while a reload runs share the next one, so a flood
///   of unknown keys costs one reload at a time, and each caller at most 200 ms.
///
/// The reloading thread stops when the last clone of the directory is dropped.
#[derive(Clone)]
pub struct OrganizationDirectory {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OrganizationDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let storage = match self.inner.storage {
            Storage::Sqlite(_) => "sqlite",
            Storage::Postgres(_) => "postgres",
        };
        f.debug_struct("OrganizationDirectory")
            .field("storage", &storage)
            .finish_non_exhaustive()
    }
}

impl OrganizationDirectory {
    /// Opens (creating when missing) the directory in `dir`, `organizations.sqlite`, for this
    /// process alone.
    pub fn open(dir: &Path) -> Result<Self> {
        let (connection, rows) = sqlite::open(dir)?;
        Ok(Self {
            inner: Arc::new(Inner {
                storage: Storage::Sqlite(connection),
                cache: RwLock::new(Cache::from_rows(rows)?),
                reloads: None,
            }),
        })
    }

    /// Connects to the directory in the PostgreSQL database of `url`
    /// (`postgres://user:password@host:port/database`), creating or migrating its tables
    /// (`organizations`, `api_keys`, `directory_migrations`), shared with every process connected
    /// to it, and starts the thread that reloads it (see the type's documentation). It may be
    /// called on an async thread: it blocks it while it connects.
    pub fn connect_postgres(url: &str) -> Result<Self> {
        let (storage, rows) = postgres::Storage::connect(url)?;
        let cache = Cache {
            recent: Some(Vec::new()),
            ..Cache::from_rows(rows)?
        };
        let reloads = Arc::new(Reloads::default());
        let inner = Arc::new(Inner {
            storage: Storage::Postgres(storage),
            cache: RwLock::new(cache),
            reloads: Some(reloads.clone()),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("directory-reload".into())
            .spawn(move || reload_until_dropped(&weak, &reloads))
            .map_err(|e| Error::Unavailable(format!("cannot start the directory reloads: {e}")))?;
        Ok(Self { inner })
    }

    fn cache_read(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.inner
            .cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cache_write(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.inner
            .cache
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What `find` finds in memory; when nothing, and other processes may write, again after a
    /// reload (waiting for it at most [`MISS_WAIT`]).
    fn look_up<T>(&self, find: impl Fn(&Cache) -> Option<T>) -> Option<T> {
        if let Some(found) = find(&self.cache_read()) {
            return Some(found);
        }
        self.inner.reloads.as_ref()?.reload_now(MISS_WAIT);
        find(&self.cache_read())
    }

    /// Registers an organisation and issues its first API key. Names are unique, ignoring case and
    /// surrounding white space, across every process sharing the directory.
    pub async fn create(&self, name: &str) -> Result<(Organization, ApiKey)> {
        let organization = Organization {
            id: Iri::from_uuid(uuid::Uuid::now_v7()),
            name: name.trim().to_owned(),
            created_at: now(),
        };
        let key = ApiKey::generate();
        let key_hash = hash_key(key.expose());
        let row = NewOrganization {
            id: organization.id.to_string(),
            name: organization.name.clone(),
            name_key: name_key(&organization.name),
            created_at: organization.created_at.clone(),
            key_hash: key_hash.clone(),
        };
        if !self.inner.storage.insert_organization(row).await? {
            return Err(Error::NameTaken(organization.name));
        }
        self.cache_write()
            .record(Some(organization.clone()), key_hash, &organization.id);
        Ok((organization, key))
    }

    /// Issues one more API key for an organisation (earlier keys stay valid).
    pub async fn issue_key(&self, id: &OrganizationId) -> Result<ApiKey> {
        if !self.exists(id) {
            return Err(Error::UnknownOrganization(id.to_string()));
        }
        let key = ApiKey::generate();
        let key_hash = hash_key(key.expose());
        let row = NewKey {
            key_hash: key_hash.clone(),
            organization_id: id.to_string(),
            created_at: now(),
        };
        self.inner.storage.insert_key(row).await?;
        self.cache_write().record(None, key_hash, id);
        Ok(key)
    }

    /// The organisation a presented API key belongs to.
    pub fn authenticate(&self, presented: &str) -> Option<Organization> {
        let hash = hash_key(presented);
        self.look_up(|cache| {
            let id = cache.by_key_hash.get(&hash)?;
            cache.by_id.get(id).cloned()
        })
    }

    pub fn get(&self, id: &OrganizationId) -> Option<Organization> {
        self.look_up(|cache| cache.by_id.get(id).cloned())
    }

    /// The name of `id` as the directory holds it now, without asking for a reload on a miss
    /// (for display: most IRIs asked about are not organisations, and a name recorded in the
    /// last second can wait for the next periodic reload).
    pub fn name_of(&self, id: &OrganizationId) -> Option<String> {
        self.cache_read()
            .by_id
            .get(id)
            .map(|organization| organization.name.clone())
    }

    pub fn exists(&self, id: &OrganizationId) -> bool {
        self.look_up(|cache| cache.by_id.contains_key(id).then_some(()))
            .is_some()
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

/// The reloads asked for and done, counted, between the lookups and the reloading thread.
#[derive(Default)]
struct Reloads {
    state: Mutex<ReloadState>,
    changed: Condvar,
}

#[derive(Default)]
struct ReloadState {
    /// Reloads asked for: the n-th asks for a reload that begins after it was asked.
    asked: u64,
    /// The requests a reload ended for: every one up to this number.
    answered: u64,
    /// The directory is dropped.
    stopped: bool,
}

impl Reloads {
    fn lock(&self) -> MutexGuard<'_, ReloadState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Asks for a reload and waits until it ended, or at most `bound`.
    fn reload_now(&self, bound: Duration) {
        let mut state = self.lock();
        state.asked += 1;
        let ticket = state.asked;
        self.changed.notify_all();
        let _ = self
            .changed
            .wait_timeout_while(state, bound, |state| {
                state.answered < ticket && !state.stopped
            })
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }

    /// Waits until a reload is asked for, [`RELOAD_EVERY`] passed or the directory is dropped;
    /// the number of the last request the reload to begin answers, or `None` when dropped.
    fn next(&self) -> Option<u64> {
        let state = self.lock();
        let (state, _) = self
            .changed
            .wait_timeout_while(state, RELOAD_EVERY, |state| {
                state.asked == state.answered && !state.stopped
            })
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (!state.stopped).then_some(state.asked)
    }

    fn answered(&self, ticket: u64) {
        let mut state = self.lock();
        state.answered = state.answered.max(ticket);
        self.changed.notify_all();
    }

    fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }
}

/// The reloading thread: reloads on request and every [`RELOAD_EVERY`], until the directory is
/// dropped. It holds the directory only while it reloads.
fn reload_until_dropped(directory: &Weak<Inner>, reloads: &Reloads) {
    let mut failing = false;
    while let Some(ticket) = reloads.next() {
        let Some(inner) = directory.upgrade() else {
            return;
        };
        match reload(&inner) {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("the organisation directory reloads again");
            }
            Ok(()) => {}
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(
                    ?error,
                    "the organisation directory cannot reload; lookups answer from memory"
                );
            }
            Err(_) => {}
        }
        // The last handle may be dropped here, closing the storage on this thread.
        drop(inner);
        reloads.answered(ticket);
    }
}

fn reload(inner: &Inner) -> Result<()> {
    let seen = inner
        .cache
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .written;
    let Some(rows) = inner.storage.read_blocking()? else {
        return Ok(());
    };
    let read = Cache::from_rows(rows)?;
    inner
        .cache
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .replace(read, seen);
    Ok(())
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
        let stored: String = rusqlite::Connection::open(dir.path().join("organizations.sqlite"))?
            .query_row(
            "SELECT group_concat(key_hash) FROM api_keys",
            [],
            |row| row.get(0),
        )?;
        assert!(!stored.contains(key.expose()), "keys are stored hashed");
        Ok(())
    }

    #[test]
    fn a_reload_keeps_the_writes_of_this_process_it_may_have_missed() {
        let owner = Iri::from_uuid(uuid::Uuid::now_v7());
        let mut cache = Cache {
            recent: Some(Vec::new()),
            ..Cache::default()
        };
        cache.record(None, "before".into(), &owner);
        let seen = cache.written;
        cache.record(None, "during".into(), &owner);
        let mut read = Cache::default();
        read.by_key_hash.insert("before".into(), owner.clone());
        read.by_key_hash.insert("other".into(), owner.clone());
        cache.replace(read, seen);
        let mut keys: Vec<&str> = cache.by_key_hash.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["before", "during", "other"]);
        let kept: Vec<u64> = cache.recent.iter().flatten().map(|w| w.number).collect();
        assert_eq!(kept, [2], "what a reload saw is forgotten");
        // Kept until a reload that began after it.
        cache.replace(Cache::default(), cache.written);
        assert!(cache.by_key_hash.is_empty());
    }
}
