//! What a run leaves in a database it does not own, and how it goes.
//!
//! On the defaults a run's SQLite file is a temporary one that goes with the run. On a database
//! the learner names, the run works in a schema of its own (PostgreSQL) or a file it created
//! (SQLite); both are recorded here as they are made, so that clean-up finds them however the
//! run ends, and says what to remove by hand when it cannot.

use std::path::PathBuf;

use sqlx::{AnyConnection, Connection, Executor};

use crate::redact::redact;

/// What a run leaves in a database it does not own, until it is removed.
#[derive(Clone, Debug)]
pub enum Leftover {
    /// The run's schema in a PostgreSQL database.
    PostgresSchema {
        /// Where the database is (with its password: never print it, print `redacted`).
        url: String,
        /// The schema's name.
        schema: String,
    },
    /// A SQLite file the run created at a path the learner named.
    SqliteFile {
        /// The file.
        path: PathBuf,
    },
}

impl Leftover {
    /// Removes it, through a connection of its own; the error says what is left and how to
    /// remove it by hand.
    pub async fn remove(&self) -> Result<(), String> {
        match self {
            Leftover::PostgresSchema { url, schema } => {
                let dropped = async {
                    let mut conn = AnyConnection::connect(url).await?;
                    // A connection still open in the schema (a transaction never ended) holds
                    // locks the drop must wait for: wait a while, then say what is left, rather
                    // than wait for ever.
                    conn.execute("SET lock_timeout = '5s'").await?;
                    conn.execute(format!("DROP SCHEMA IF EXISTS {schema} CASCADE").as_str())
                        .await?;
                    conn.close().await
                };
                dropped.await.map_err(|cause| {
                    format!(
                        "could not drop the PostgreSQL schema {schema} at {} ({cause}); \
                         remove it with: psql '{}' -c 'DROP SCHEMA {schema} CASCADE'",
                        redact(url),
                        redact(url)
                    )
                })
            }
            Leftover::SqliteFile { path } => {
                for suffix in ["", "-wal", "-shm"] {
                    let file = PathBuf::from(format!("{}{suffix}", path.display()));
                    match std::fs::remove_file(&file) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(format!(
                                "could not delete the SQLite file {} ({e}); delete it by hand",
                                file.display()
                            ));
                        }
                    }
                }
                Ok(())
            }
        }
    }
}
