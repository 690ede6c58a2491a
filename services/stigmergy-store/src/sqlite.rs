//! One SQLite connection shared by a store's handles, used off the async threads.

use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::{Error, Result};

/// A connection behind a mutex; every use runs on Tokio's blocking pool.
#[derive(Clone)]
pub(crate) struct SharedConnection(Arc<Mutex<Connection>>);

impl SharedConnection {
    pub(crate) fn new(connection: Connection) -> Self {
        Self(Arc::new(Mutex::new(connection)))
    }

    /// Runs `work` with the connection on the blocking pool.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let connection = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = connection
                .lock()
                .map_err(|_| Error::Unavailable("a store writer panicked".into()))?;
            work(&mut connection)
        })
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?
    }
}
