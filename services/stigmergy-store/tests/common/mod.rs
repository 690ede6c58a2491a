//! What the PostgreSQL tests share: a database of their own for each test.
//!
//! `STIGMERGY_TEST_POSTGRES_URL` names the server, as a role that may create databases;
//! `./scripts/test` starts a local PostgreSQL and sets it. Without it these tests fail.

use postgres::NoTls;

const SERVER_VARIABLE: &str = "STIGMERGY_TEST_POSTGRES_URL";

/// A database created for one test, dropped (with its connections) when the test ends.
pub struct TestDatabase {
    server: String,
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub fn create() -> Self {
        let server = std::env::var(SERVER_VARIABLE).unwrap_or_else(|_| {
            panic!(
                "{SERVER_VARIABLE} is unset: run ./scripts/test, which starts PostgreSQL and sets \
                 it, or set it to a server where the role may create databases, e.g. \
                 postgres://stigmergy:stigmergy@127.0.0.1:5432/postgres"
            )
        });
        let name = format!("stigmergy_test_{}", uuid::Uuid::new_v4().simple());
        run_sql(&server, format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("cannot create a test database on {SERVER_VARIABLE}: {e}"));
        let url = with_database(&server, &name);
        Self { server, name, url }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = run_sql(&self.server, drop) {
            eprintln!("cannot drop the test database {}: {e}", self.name);
        }
    }
}

/// Runs `sql` on the database of `url`, on a thread of its own: the synchronous client blocks on
/// its own runtime, which Tokio forbids on the test's thread.
pub fn run_sql(url: &str, sql: String) -> Result<(), postgres::Error> {
    let url = url.to_owned();
    std::thread::spawn(move || postgres::Client::connect(&url, NoTls)?.batch_execute(&sql))
        .join()
        .expect("the SQL thread does not panic")
}

/// `url` naming the database `name` instead of its own.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    format!("{}/{name}{query}", &base[..path])
}
