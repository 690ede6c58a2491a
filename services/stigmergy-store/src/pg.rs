//! What the PostgreSQL adapters share: the connection pool that closes off the async threads,
//! and numbered migrations applied under an advisory lock.

use std::collections::HashMap;
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{Client, GenericClient, NoTls, Row, Statement};
use r2d2_postgres::PostgresConnectionManager;

use crate::{Error, Result};

/// A connection of the pool, with the statements prepared on it so far: a statement is prepared
/// once per connection, not once per use (which cost a round trip, and the server a parse and a
/// plan, each time).
pub(crate) struct Connection {
    pub(crate) client: Client,
    pub(crate) statements: Statements,
}

impl Connection {
    pub(crate) fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> std::result::Result<Vec<Row>, postgres::Error> {
        let statement = self.statements.prepared(&mut self.client, sql)?;
        self.client.query(&statement, params)
    }

    pub(crate) fn query_one(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> std::result::Result<Row, postgres::Error> {
        let statement = self.statements.prepared(&mut self.client, sql)?;
        self.client.query_one(&statement, params)
    }

    pub(crate) fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> std::result::Result<Option<Row>, postgres::Error> {
        let statement = self.statements.prepared(&mut self.client, sql)?;
        self.client.query_opt(&statement, params)
    }
}

/// The statements prepared on one connection, each prepared once and run many times (in the
/// connection's transactions too).
#[derive(Default)]
pub(crate) struct Statements(HashMap<&'static str, Statement>);

impl Statements {
    fn prepared(
        &mut self,
        client: &mut impl GenericClient,
        sql: &'static str,
    ) -> std::result::Result<Statement, postgres::Error> {
        if let Some(statement) = self.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(sql)?;
        self.0.insert(sql, statement.clone());
        Ok(statement)
    }

    pub(crate) fn query(
        &mut self,
        client: &mut impl GenericClient,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        let statement = self.prepared(client, sql)?;
        Ok(client.query(&statement, params)?)
    }

    pub(crate) fn execute(
        &mut self,
        client: &mut impl GenericClient,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64> {
        let statement = self.prepared(client, sql)?;
        Ok(client.execute(&statement, params)?)
    }
}

/// Makes the pool's [`Connection`]s.
#[derive(Debug)]
pub(crate) struct Manager(PostgresConnectionManager<NoTls>);

impl r2d2::ManageConnection for Manager {
    type Connection = Connection;
    type Error = postgres::Error;

    fn connect(&self) -> std::result::Result<Connection, postgres::Error> {
        Ok(Connection {
            client: self.0.connect()?,
            statements: Statements::default(),
        })
    }

    fn is_valid(&self, connection: &mut Connection) -> std::result::Result<(), postgres::Error> {
        self.0.is_valid(&mut connection.client)
    }

    fn has_broken(&self, connection: &mut Connection) -> bool {
        self.0.has_broken(&mut connection.client)
    }
}

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
            .build(Manager(PostgresConnectionManager::new(config, NoTls)))
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
