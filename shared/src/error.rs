//! Errors of the support crate.
//!
//! Setup errors are the ones a learner meets first (no Redis installed, a wrong URL), so each
//! message says what to do next, not only what went wrong. The underlying error is part of the
//! message (`cause`), not a chained `source`, so a printed chain does not repeat it.

use thiserror::Error;

/// Redis or database setup failed before a lesson could start, or its clean-up failed.
#[derive(Debug, Error)]
#[allow(missing_docs)] // the fields: each variant's doc and message name them
pub enum SetupError {
    /// Neither `redis-server` nor `valkey-server` is on PATH, and no `REDIS_URL` was given.
    #[error(
        "no redis-server (or valkey-server) found on PATH.\n\
         Install one:\n  \
           Debian/Ubuntu: sudo apt-get install redis-server\n  \
           macOS:         brew install redis\n\
         or point the course at a running server: REDIS_URL=redis://127.0.0.1:6379/ (or --redis-url)"
    )]
    RedisNotInstalled,

    /// A part of a demo needs a Redis of its own (`part` says what it does to it), whatever
    /// `REDIS_URL` names, and no `redis-server` is on PATH; `skip` is the flag that leaves the
    /// part out.
    #[error(
        "{part} needs a redis-server of its own, even with REDIS_URL set, and none is on PATH.\n\
         Install one:\n  \
           Debian/Ubuntu: sudo apt-get install redis-server\n  \
           macOS:         brew install redis\n\
         or leave that part out: {skip}"
    )]
    PrivateServerNeeded {
        part: &'static str,
        skip: &'static str,
    },

    /// The private server exited as it started (`status`); `log` is the end of its log.
    #[error("the private redis-server exited at start ({status}); its log ends with:\n{log}")]
    RedisExited { status: String, log: String },

    /// The private server never answered PING; `log` is the end of its log.
    #[error("the private redis-server did not answer PING within 10 s; its log ends with:\n{log}")]
    RedisNotReady { log: String },

    /// The private cluster's nodes did not agree that every slot is served; `info` is what one
    /// of them said (`CLUSTER INFO`), `log` the end of its log.
    #[error(
        "the private Redis Cluster did not come together within 20 s.\n\
         One node's CLUSTER INFO: {info}\nIts log ends with:\n{log}"
    )]
    ClusterNotReady { info: String, log: String },

    /// A fault-injection command was refused; the field is the reply.
    #[error("redis-server refused a command: {0}")]
    RedisCommand(String),

    /// `url` is not a Redis URL; `cause` says why.
    #[error(
        "'{url}' is not a Redis URL ({cause}).\n\
         Use the form redis://HOST:PORT/DB, e.g. redis://127.0.0.1:6379/0, or \
         redis://:PASSWORD@HOST:PORT/DB; in a password, write / as %2F, ? as %3F, # as %23 \
         and @ as %40"
    )]
    BadRedisUrl {
        url: String,
        cause: redis::RedisError,
    },

    /// The server wants a password and `url` has none.
    #[error(
        "Redis at {url} requires a password, and the URL has none.\n\
         Put it in the URL: redis://:PASSWORD@HOST:PORT/DB (or redis://USER:PASSWORD@... with an ACL \
         user), or unset REDIS_URL to let the course start a private server"
    )]
    RedisNeedsPassword { url: String },

    /// The server refused the password in `url`.
    #[error(
        "Redis at {url} refused the password (or user) in the URL.\n\
         Check it against the server's requirepass (or its ACL users), or unset REDIS_URL to let \
         the course start a private server"
    )]
    RedisWrongPassword { url: String },

    /// `url` has a password and the server has none.
    #[error(
        "Redis at {url} has no password, but the URL gives one: remove it, \
         e.g. redis://HOST:PORT/DB"
    )]
    RedisHasNoPassword { url: String },

    /// `url` names a cluster node, but the course was asked for a single server.
    #[error(
        "Redis at {url} is a Redis Cluster node, and the course was asked for a single server.\n\
         Connect to it as a cluster: REDIS_CLUSTER=1 (or --redis-cluster), or a \
         redis+cluster://HOST:PORT/ URL"
    )]
    RedisIsACluster { url: String },

    /// `url` was named as a cluster, but the server is not a cluster node.
    #[error(
        "Redis at {url} is a single server, not a Redis Cluster node.\n\
         Connect to it as a server: unset REDIS_CLUSTER (or drop --redis-cluster) and use a \
         redis://HOST:PORT/DB URL"
    )]
    RedisIsNotACluster { url: String },

    /// `REDIS_CLUSTER` holds something other than yes or no.
    #[error("REDIS_CLUSTER={value} is neither yes nor no: set it to 1 (a cluster) or 0 (a server)")]
    BadClusterFlag { value: String },

    /// The database number in `url` does not exist on the server.
    #[error(
        "Redis at {url} has no such database number.\n\
         A server has 16 by default (0 to 15, its `databases` setting): use one of those at the end \
         of the URL, e.g. redis://HOST:PORT/0"
    )]
    RedisNoSuchDatabase { url: String },

    /// Redis at `url` did not accept a connection; `cause` says why.
    #[error(
        "cannot reach Redis at {url} ({cause}).\n\
         Is the server running? Start one with `redis-server`, fix --redis-url / REDIS_URL, \
         or unset REDIS_URL to let the course start a private server"
    )]
    RedisUnreachable {
        url: String,
        cause: redis::RedisError,
    },

    /// `url` is not a database URL the course supports; `cause` says why.
    #[error(
        "'{url}' is not a database URL the course supports ({cause}).\n\
         Use sqlite://PATH (or leave DATABASE_URL unset for a private SQLite file) \
         or postgres://USER:PASSWORD@HOST:PORT/DB"
    )]
    BadDatabaseUrl { url: String, cause: sqlx::Error },

    /// `path` exists, and the course only writes SQLite files it creates.
    #[error(
        "DATABASE_URL names an existing SQLite file, {path}.\n\
         The course creates its tables in a file of its own and deletes it when the run ends, so \
         it does not write into a file it did not create. Name a path that does not exist yet, or \
         unset DATABASE_URL for a private temporary file. (If a run of the course was killed \
         before it could clean up, this is its file: delete it.)"
    )]
    SqliteFileExists { path: String },

    /// The SQLite file at `path` could not be created or opened; `cause` says why.
    #[error(
        "cannot create the SQLite file {path} ({cause}).\n\
         Does its folder exist, and may you write there? Or unset DATABASE_URL to use a private \
         SQLite file"
    )]
    SqliteUnopenable { path: String, cause: sqlx::Error },

    /// The database at `url` did not accept a connection; `cause` says why.
    #[error(
        "cannot reach the database at {url} ({cause}).\n\
         Is the server running, and are the host, port, user and password right? \
         Or unset DATABASE_URL to use a private SQLite file"
    )]
    DatabaseUnreachable { url: String, cause: sqlx::Error },

    /// Closing a stage could not remove the keys under `prefix`; `cause` says why.
    #[error(
        "could not remove the run's keys ({prefix}) from Redis: {cause}.\n\
         They expire by themselves if they have a TTL; to remove them now: \
         redis-cli --scan --pattern '{prefix}' | xargs redis-cli unlink"
    )]
    KeysLeft {
        prefix: String,
        cause: redis::RedisError,
    },

    /// Closing a stage found `others` other handles on its database.
    #[error(
        "the database is still in use by {others} other handle(s), so it cannot be closed \
         (and a PostgreSQL schema would be left behind): drop them before closing the stage"
    )]
    DatabaseInUse { others: usize },

    /// Something a run created outside its process could not be removed; the text says what
    /// and how to remove it by hand.
    #[error("{0}")]
    Cleanup(String),

    /// A query of the setup failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),

    /// A file or process operation failed.
    #[error(transparent)]
    Io(std::io::Error),
}
