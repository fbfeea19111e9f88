//! Errors of the support crate.
//!
//! Setup errors are the ones a learner meets first (no Redis installed, a wrong URL), so each
//! message says what to do next, not only what went wrong. The underlying error is part of the
//! message (`cause`), not a chained `source`, so a printed chain does not repeat it.

use thiserror::Error;

/// Redis or database setup failed before a lesson could start.
#[derive(Debug, Error)]
pub enum SetupError {
    #[error(
        "no redis-server (or valkey-server) found on PATH.\n\
         Install one:\n  \
           Debian/Ubuntu: sudo apt-get install redis-server\n  \
           macOS:         brew install redis\n\
         or point the course at a running server: REDIS_URL=redis://127.0.0.1:6379/ (or --redis-url)"
    )]
    RedisNotInstalled,

    #[error("the private redis-server exited at start ({status}); its log ends with:\n{log}")]
    RedisExited { status: String, log: String },

    #[error("the private redis-server did not answer PING within 10 s; its log ends with:\n{log}")]
    RedisNotReady { log: String },

    #[error("redis-server refused a command: {0}")]
    RedisCommand(String),

    #[error(
        "'{url}' is not a Redis URL ({cause}).\n\
         Use the form redis://HOST:PORT/DB, e.g. redis://127.0.0.1:6379/0"
    )]
    BadRedisUrl {
        url: String,
        cause: redis::RedisError,
    },

    #[error(
        "cannot reach Redis at {url} ({cause}).\n\
         Is the server running? Start one with `redis-server`, fix --redis-url / REDIS_URL, \
         or unset REDIS_URL to let the course start a private server"
    )]
    RedisUnreachable {
        url: String,
        cause: redis::RedisError,
    },

    #[error(
        "'{url}' is not a database URL the course supports ({cause}).\n\
         Use sqlite://PATH (or leave DATABASE_URL unset for a private SQLite file) \
         or postgres://USER:PASSWORD@HOST:PORT/DB"
    )]
    BadDatabaseUrl { url: String, cause: sqlx::Error },

    #[error(
        "cannot reach the database at {url} ({cause}).\n\
         Is the server running, and are the host, port, user and password right? \
         Or unset DATABASE_URL to use a private SQLite file"
    )]
    DatabaseUnreachable { url: String, cause: sqlx::Error },

    #[error(transparent)]
    Database(#[from] sqlx::Error),

    #[error(transparent)]
    Io(std::io::Error),
}
