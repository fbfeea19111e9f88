//! Errors of the support crate.
//!
//! Setup errors are the ones a learner meets first (no Redis installed, a wrong URL), so each
//! message says what to do next, not only what went wrong.

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
        "'{url}' is not a Redis URL ({source}).\n\
         Use the form redis://HOST:PORT/DB, e.g. redis://127.0.0.1:6379/0"
    )]
    BadRedisUrl {
        url: String,
        source: redis::RedisError,
    },

    #[error(
        "cannot reach Redis at {url} ({source}).\n\
         Is the server running? Start one with `redis-server`, fix --redis-url / REDIS_URL, \
         or unset REDIS_URL to let the course start a private server"
    )]
    RedisUnreachable {
        url: String,
        source: redis::RedisError,
    },

    #[error(
        "'{url}' is not a database URL the course supports ({source}).\n\
         Use sqlite://PATH (or leave DATABASE_URL unset for a private SQLite file) \
         or postgres://USER:PASSWORD@HOST:PORT/DB"
    )]
    BadDatabaseUrl { url: String, source: sqlx::Error },

    #[error(transparent)]
    Database(#[from] sqlx::Error),

    #[error(transparent)]
    Io(std::io::Error),
}
