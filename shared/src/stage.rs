//! The stage a lesson runs on: one setup for demos, tests, benches and exercise suites alike.
//!
//! Every run needs the same four things: a Redis (the learner's, or a private server), a
//! connection to it, a seeded database, and a namespace that keeps the run's keys apart from
//! everyone else's. A [`Stage`] is those four, opened together, and closed together by
//! [`Stage::close`], which removes the run's keys from a Redis the course does not own and drops a
//! PostgreSQL schema. (A private server and a private SQLite file go away on drop.)
//!
//! A lesson about several application processes calls [`Stage::instance`] once per process: each
//! [`Instance`] has connections of its own (and so its own subscriptions and in-process state)
//! but shares the Redis, the database and the namespace, as processes of one application do.

use std::sync::Arc;

use redis::aio::ConnectionManager;

use crate::connection::{self, RedisTarget};
use crate::db::{Database, DbOptions};
use crate::error::SetupError;
use crate::namespace::Namespace;
use crate::pubsub::Subscription;
use crate::server::{RedisServer, ServerOptions};

/// A Redis, a connection, a database and a namespace, for the length of one run.
pub struct Stage {
    redis: RedisTarget,
    conn: ConnectionManager,
    db: Arc<Database>,
    namespace: Namespace,
}

impl Stage {
    /// Connects to `redis`, opens the database `db` describes, and makes a fresh namespace for
    /// `lesson`.
    pub async fn open(lesson: &str, redis: RedisTarget, db: DbOptions) -> Result<Self, SetupError> {
        let conn = redis.connect().await?;
        let db = Database::open(db).await?;
        Ok(Stage {
            redis,
            conn,
            db: Arc::new(db),
            namespace: Namespace::new(lesson),
        })
    }

    /// The Redis `REDIS_URL` names (else a private server), and the database `db` describes.
    pub async fn from_env(lesson: &str, db: DbOptions) -> Result<Self, SetupError> {
        Self::open(lesson, RedisTarget::from_env()?, db).await
    }

    /// Always a private server run as `server` says, whatever `REDIS_URL` is: for the tests that
    /// stop, crash or pause it, which must never disturb a server somebody else runs.
    pub async fn private(
        lesson: &str,
        db: DbOptions,
        server: ServerOptions,
    ) -> Result<Self, SetupError> {
        let server = RedisServer::start_with(server)?;
        Self::open(lesson, RedisTarget::Private(server), db).await
    }

    /// A handle on the stage's connection (clones share it).
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The database.
    pub fn db(&self) -> &Arc<Database> {
        &self.db
    }

    /// The run's namespace; [`Namespace::child`] divides it further.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The full key of the lesson's key `local` in the run's namespace.
    pub fn key(&self, local: &str) -> String {
        self.namespace.key(local)
    }

    /// Where the Redis is.
    pub fn redis(&self) -> &RedisTarget {
        &self.redis
    }

    /// The private server, for fault injection.
    ///
    /// # Panics
    /// If the stage runs on a server it does not own: open it with [`Stage::private`].
    pub fn server(&self) -> &RedisServer {
        self.redis
            .server()
            .expect("fault injection needs a private server: open the stage with Stage::private")
    }

    /// Another application process on this stage: connections of its own, the same Redis,
    /// database and namespace.
    pub async fn instance(&self) -> Result<Instance, SetupError> {
        Ok(Instance {
            conn: self.redis.connect().await?,
            client: connection::client(&self.redis.url())?,
            namespace: self.namespace.clone(),
        })
    }

    /// Ends the run: removes every key of the run's namespace from a Redis the course does not
    /// own (through a fresh connection, in case the run's own was broken), and closes the
    /// database, which drops a PostgreSQL schema. Drop every other handle on the database first.
    pub async fn close(self) -> Result<(), SetupError> {
        if let RedisTarget::External(url) = &self.redis {
            let mut conn = connection::connect(url).await?;
            self.namespace
                .remove_all(&mut conn)
                .await
                .map_err(|cause| SetupError::KeysLeft {
                    prefix: self.namespace.key("*"),
                    cause,
                })?;
        }
        let others = Arc::strong_count(&self.db) - 1;
        let db = Arc::into_inner(self.db).ok_or(SetupError::DatabaseInUse { others })?;
        db.close().await?;
        Ok(())
    }
}

/// One application process: its own connection and subscription client, on a shared stage.
pub struct Instance {
    /// This process's connection.
    pub conn: ConnectionManager,
    /// Opens this process's subscriptions, each on a connection of its own.
    pub client: redis::Client,
    /// The run's namespace, shared by every process.
    pub namespace: Namespace,
}

impl Instance {
    /// Subscribes this process to `channel` (see [`crate::pubsub`]).
    pub async fn subscribe(&self, channel: &str) -> Subscription {
        Subscription::open(self.client.clone(), channel).await
    }
}
