//! What the PostgreSQL adapters share: the connection pool that closes off the async threads,
//! and numbered migrations applied under an advisory lock.

use std::time::Duration;

use postgres::{Client, NoTls};
use r2d2_postgres::PostgresConnectionManager;

use crate::{Error, Result};

type Manager = PostgresConnectionManager<NoTls>;

/// The connection pool. A synchronous connection closes by blocking on its own runtime, which
/// Tokio forbids on an async thread, so the pool is closed on a thread of its own.
pub(crate) struct Pool(pub(crate) Option<r2d2::Pool<Manager>>);

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            let _ = std::thread::spawn(move || drop(pool)).join();
        }
    }
}

impl Pool {
    /// A pool of at most `size` connections to `config` (one kept idle), each waited for at most
    /// `timeout`.
    ///
    /// A connection is not tested with a round trip each time it is taken (r2d2's default): that
    /// was one in three of the projector's round trips and a sixth of its CPU. A connection found
    /// closed when it is given back is dropped; one the server closed while it sat idle (a
    /// restart) fails the one operation that uses it next, which the caller sees as the store
    /// being unavailable, as during the restart itself.
    pub(crate) fn open(config: postgres::Config, size: u32, timeout: Duration) -> Result<Self> {
        let pool = r2d2::Pool::builder()
            .max_size(size)
            .min_idle(Some(1))
            .test_on_check_out(false)
            .connection_timeout(timeout)
            .build(Manager::new(config, NoTls))
            .map_err(|e| Error::Unavailable(format!("no PostgreSQL connection: {e}")))?;
        Ok(Self(Some(pool)))
    }
}

/// A schema's numbered migrations: `(version, description, SQL)`, in order.
pub(crate) struct Migrations {
    /// The table recording the versions applied.
    pub table: &'static str,
    /// The advisory lock (one 64-bit key) held while migrating, so that two processes starting
    /// together migrate one after the other.
    pub lock: i64,
    /// What the schema is, for the error when the database is newer than this binary.
    pub what: &'static str,
    pub steps: &'static [(i32, &'static str, &'static str)],
}

/// Applies the steps the database has not seen, in one transaction.
pub(crate) fn migrate(client: &mut Client, migrations: &Migrations) -> Result<()> {
    let table = migrations.table;
    let mut transaction = client.transaction()?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&migrations.lock])?;
    transaction.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {table} (
             version     INTEGER PRIMARY KEY,
             description TEXT NOT NULL,
             applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
         )"
    ))?;
    let applied: i32 = transaction
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {table}"),
            &[],
        )?
        .try_get(0)?;
    let known = migrations
        .steps
        .last()
        .map_or(0, |(version, _, _)| *version);
    if applied > known {
        return Err(Error::Unavailable(format!(
            "{} is at schema version {applied}, newer than this Stigmergy's {known}",
            migrations.what
        )));
    }
    let record = format!("INSERT INTO {table} (version, description) VALUES ($1, $2)");
    for (version, description, sql) in migrations.steps.iter().filter(|(v, _, _)| *v > applied) {
        transaction.batch_execute(sql)?;
        transaction.execute(&record, &[version, description])?;
    }
    transaction.commit()?;
    Ok(())
}
