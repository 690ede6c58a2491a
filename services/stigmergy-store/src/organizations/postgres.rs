//! The directory in a PostgreSQL database, shared by every process connected to it: the tables
//! of `organizations.sqlite`, created by numbered migrations (recorded in
//! `directory_migrations`) when a process connects, used through a small pool of synchronous
//! connections off the async threads.

use std::sync::Arc;
use std::time::Duration;

use postgres::{Client, NoTls};

use super::{NewKey, NewOrganization, Rows};
use crate::pg::{Migrations, Pool, migrate};
use crate::{Error, Result};

/// The schema, one step per entry, each applied once and in order, and recorded in
/// `directory_migrations`. A step that has shipped is never edited: a change is a new step.
const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "organisations and the hashes of their API keys",
    "
CREATE TABLE organizations (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE api_keys (
    key_hash        TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    created_at      TEXT NOT NULL
);
",
)];

/// The advisory lock (one 64-bit key) held while migrating, so that two processes starting
/// together migrate one after the other.
const MIGRATION_LOCK: i64 = 0x5374_6967_4469_7265;

/// Connections kept open: the reloading thread's, and the writes'.
const POOL_SIZE: u32 = 3;
/// How long a call waits for a connection (and a new connection for the server) before
/// reporting the directory unavailable, unless the URL says otherwise (`connect_timeout`).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

fn unavailable(what: impl std::fmt::Display) -> Error {
    Error::Unavailable(what.to_string())
}

/// The pool of connections to the directory's database.
pub(super) struct Storage {
    pool: Arc<Pool>,
}

impl Storage {
    /// Connects to the database of `url`, bringing its tables up to date, with every row it
    /// holds. It blocks the calling thread, which may be an async one.
    pub(super) fn connect(url: &str) -> Result<(Self, Rows)> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| unavailable(format!("invalid PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECTION_TIMEOUT);
        }
        // Connecting blocks on the client's own runtime, which Tokio forbids on an async thread.
        std::thread::scope(|scope| scope.spawn(|| Self::connect_blocking(config)).join())
            .map_err(|_| unavailable("connecting to PostgreSQL panicked"))?
    }

    fn connect_blocking(config: postgres::Config) -> Result<(Self, Rows)> {
        let mut client = config.connect(NoTls)?;
        migrate(&mut client, &DIRECTORY_MIGRATIONS)?;
        let rows = read(&mut client)?;
        drop(client);
        let storage = Self {
            pool: Arc::new(Pool::open(config, POOL_SIZE, CONNECTION_TIMEOUT)?),
        };
        Ok((storage, rows))
    }

    /// Runs `work` with a connection of the pool, blocking: only off the async threads.
    pub(super) fn run_blocking<T>(&self, work: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        let pool = self
            .pool
            .0
            .as_ref()
            .ok_or_else(|| unavailable("the PostgreSQL pool is closed"))?;
        let mut connection = pool
            .get()
            .map_err(|e| unavailable(format!("no PostgreSQL connection: {e}")))?;
        work(&mut connection.client)
    }

    /// Runs `work` with a connection of the pool on Tokio's blocking pool.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Client) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let storage = Self {
            pool: self.pool.clone(),
        };
        tokio::task::spawn_blocking(move || storage.run_blocking(work))
            .await
            .map_err(unavailable)?
    }
}

/// The directory's migrations.
const DIRECTORY_MIGRATIONS: Migrations = Migrations {
    table: "directory_migrations",
    lock: MIGRATION_LOCK,
    what: "the PostgreSQL organisation directory",
    steps: MIGRATIONS,
};

/// Every row, read in one snapshot.
pub(super) fn read(client: &mut Client) -> Result<Rows> {
    let mut transaction = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let organizations = transaction
        .query("SELECT id, name, created_at FROM organizations", &[])?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .collect::<Result<_>>()?;
    let keys = transaction
        .query("SELECT key_hash, organization_id FROM api_keys", &[])?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_>>()?;
    transaction.commit()?;
    Ok(Rows {
        organizations,
        keys,
    })
}

pub(super) fn insert_organization(client: &mut Client, row: &NewOrganization) -> Result<bool> {
    let mut transaction = client.transaction()?;
    // Two processes inserting the same name: the second waits for the first to commit, then
    // inserts nothing.
    let inserted = transaction.execute(
        "INSERT INTO organizations (id, name, name_key, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name_key) DO NOTHING",
        &[&row.id, &row.name, &row.name_key, &row.created_at],
    )?;
    if inserted == 0 {
        return Ok(false);
    }
    transaction.execute(
        "INSERT INTO api_keys (key_hash, organization_id, created_at) VALUES ($1, $2, $3)",
        &[&row.key_hash, &row.id, &row.created_at],
    )?;
    transaction.commit()?;
    Ok(true)
}

pub(super) fn insert_key(client: &mut Client, row: &NewKey) -> Result<()> {
    client.execute(
        "INSERT INTO api_keys (key_hash, organization_id, created_at) VALUES ($1, $2, $3)",
        &[&row.key_hash, &row.organization_id, &row.created_at],
    )?;
    Ok(())
}
