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
//!
//! A demo does not close its stage itself: it registers the stage's [`Leftovers`] with the
//! [`Cleanup`] that [`crate::run::run_demo`] hands it, and `run_demo` removes them however the run
//! ends, finished, failed or interrupted, after everything the demo started has stopped.
//!
//! Except `kill -9`, which ends a run before any clean-up. Keys with a TTL go on their own; the
//! few that cannot have one (a write-behind queue must not expire) would stay for ever. So a demo
//! on a Redis the course does not own marks its run as alive with a key it keeps refreshing
//! ([`Stage::sweep_killed_runs`]), and removes the keys of the lesson's earlier runs whose mark
//! has expired. (Folders and schemas of killed runs: [`crate::sweep`].)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::connection::RedisConn;
use crate::worker::Worker;

use crate::connection::{self, RedisTarget};
use crate::db::{Database, DbOptions, Leftover};
use crate::error::SetupError;
use crate::namespace::Namespace;
use crate::pubsub::Subscription;
use crate::server::{RedisServer, ServerOptions};

/// A Redis, a connection, a database and a namespace, for the length of one run.
pub struct Stage {
    redis: RedisTarget,
    conn: RedisConn,
    db: Arc<Database>,
    namespace: Namespace,
    /// Keeps the run's mark alive ([`Stage::sweep_killed_runs`]); stops with the stage.
    heartbeat: Option<Worker>,
}

/// The key, in a run's namespace, that says the run is alive.
const ALIVE: &str = "alive";
/// How long a run's mark outlives its last refresh: a killed run's keys can go this long after.
const ALIVE_FOR: Duration = Duration::from_secs(10);

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
            heartbeat: None,
        })
    }

    /// On a Redis the course does not own: marks this run as alive (a key with a TTL of
    /// `ALIVE_FOR`, refreshed by a background task until the stage goes) and removes every key of
    /// the lesson's other runs whose mark is gone, that is, of runs killed before their clean-up.
    /// Runs alive beside this one keep theirs. Returns how many keys it removed; does nothing on
    /// a private server or cluster, which leave with their run.
    pub async fn sweep_killed_runs(&mut self) -> redis::RedisResult<usize> {
        let RedisTarget::External(_) = self.redis else {
            return Ok(0);
        };
        let mut conn = self.conn();
        let mark = self.namespace.key(ALIVE);
        mark_alive(&mut conn, &mark).await?;
        let mut beat = conn.clone();
        self.heartbeat = Some(Worker::spawn("run heartbeat", |mut stop| async move {
            loop {
                tokio::select! {
                    _ = stop.requested() => return,
                    _ = tokio::time::sleep(ALIVE_FOR / 3) => {}
                }
                let _ = mark_alive(&mut beat, &mark).await;
            }
        }));
        // `course:<lesson>:<run>:` less its run: the prefix every run of the lesson shares.
        let own = self.namespace.prefix();
        let lesson = own[..own.trim_end_matches(':').rfind(':').map_or(0, |i| i + 1)].to_string();
        let mut runs: Vec<String> = Namespace::adopt(&lesson)
            .keys(&mut conn)
            .await?
            .iter()
            .filter_map(|key| {
                Some(format!(
                    "{lesson}{}:",
                    key[lesson.len()..].split_once(':')?.0
                ))
            })
            .collect();
        runs.sort();
        runs.dedup();
        let mut removed = 0;
        for run in runs.iter().filter(|run| *run != own) {
            let alive: bool =
                redis::AsyncCommands::exists(&mut conn, format!("{run}{ALIVE}")).await?;
            if !alive {
                removed += Namespace::adopt(run).remove_all(&mut conn).await?;
            }
        }
        Ok(removed)
    }

    /// The Redis `REDIS_URL` names (else a private server, or with `REDIS_CLUSTER=1` a private
    /// cluster), and the database `db` describes (see [`DbOptions::default`] for
    /// `DATABASE_URL`).
    pub async fn from_env(lesson: &str, db: DbOptions) -> Result<Self, SetupError> {
        Self::open(lesson, RedisTarget::from_env()?, db).await
    }

    /// A Redis that this run alone uses: the environment's private server or private cluster
    /// (as [`from_env`](Self::from_env)), but a private server when `REDIS_URL` names one that
    /// others share. For the tests that cut connections with [`Instance::kill_subscribers`],
    /// which on a shared server would cut every other client's subscriptions too.
    pub async fn of_its_own(lesson: &str, db: DbOptions) -> Result<Self, SetupError> {
        match RedisTarget::from_env()? {
            RedisTarget::External(_) => Self::private(lesson, db, ServerOptions::default()).await,
            private => Self::open(lesson, private, db).await,
        }
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
    pub fn conn(&self) -> RedisConn {
        self.conn.clone()
    }

    /// The URL of the stage's Redis (with its password, if it has one: never print it), for a
    /// part that needs connections of its own, or another process.
    pub fn redis_url(&self) -> String {
        self.redis.url()
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
    ///
    /// The stage reached its Redis when it opened, so a Redis that is down now is taken to be
    /// restarting: this waits for it ([`crate::comeback::awaiting_comeback`]).
    pub async fn instance(&self) -> Result<Instance, SetupError> {
        let url = self.redis.url();
        Ok(Instance {
            conn: crate::comeback::awaiting_comeback(&url, || connection::connect(&url)).await?,
            client: connection::client(&self.redis.url())?,
            namespace: self.namespace.clone(),
        })
    }

    /// What this run would leave outside its own process: its keys on a Redis the course does not
    /// own, its PostgreSQL schema or its SQLite file.
    pub fn leftovers(&self) -> Leftovers {
        Leftovers {
            keys: match &self.redis {
                RedisTarget::External(url) => Some((url.clone(), self.namespace.clone())),
                RedisTarget::Private(_) | RedisTarget::PrivateCluster(_) => None,
            },
            database: self.db.leftover().cloned(),
        }
    }

    /// A guard that removes the run's keys from a Redis the course does not own when dropped.
    pub fn keys_removed_on_drop(&self) -> KeysRemovedOnDrop {
        KeysRemovedOnDrop(self.leftovers())
    }

    /// Ends the run: removes every key of the run's namespace from a Redis the course does not
    /// own (through a fresh connection, in case the run's own was broken), closes the database
    /// and removes its schema or file. Drop every other handle on the database first.
    pub async fn close(mut self) -> Result<(), SetupError> {
        // No mark may be refreshed after the keys are gone.
        drop(self.heartbeat.take());
        let leftovers = self.leftovers();
        let others = Arc::strong_count(&self.db) - 1;
        let db = Arc::into_inner(self.db).ok_or(SetupError::DatabaseInUse { others })?;
        db.close().await?;
        leftovers.remove_keys().await
    }
}

/// The run's keys on a Redis the course does not own, removed when this guard is dropped, even
/// by a test that panicked half-way: for tests whose keys have no TTL (a write-behind queue must
/// not expire). Dropping cannot wait for a future, so the removal runs on a thread and runtime of
/// its own, as [`Database`]'s own cleanup does; a failure is printed.
pub struct KeysRemovedOnDrop(Leftovers);

impl Drop for KeysRemovedOnDrop {
    fn drop(&mut self) {
        if self.0.keys.is_none() {
            return;
        }
        let leftovers = self.0.clone();
        let removed = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(SetupError::Io)?;
            runtime.block_on(leftovers.remove_keys())
        })
        .join();
        if let Ok(Err(left)) = removed {
            eprintln!("warning: {left}");
        }
    }
}

/// What a run leaves outside its own process until it is removed.
#[derive(Clone, Debug)]
pub struct Leftovers {
    /// The URL of a Redis the course does not own, and the run's namespace on it.
    keys: Option<(String, Namespace)>,
    /// A schema or file in a database the course does not own.
    database: Option<Leftover>,
}

impl Leftovers {
    /// Removes everything, each part through a connection of its own. Every failure is returned
    /// as a sentence saying what is left and how to remove it.
    pub async fn remove(&self) -> Vec<String> {
        let mut left = Vec::new();
        if let Err(error) = self.remove_keys().await {
            left.push(error.to_string());
        }
        if let Some(database) = &self.database
            && let Err(error) = database.remove().await
        {
            left.push(error);
        }
        left
    }

    /// Removes the run's keys, retrying for a couple of seconds: the server may be restarting.
    async fn remove_keys(&self) -> Result<(), SetupError> {
        let Some((url, namespace)) = &self.keys else {
            return Ok(());
        };
        let mut attempts = 0;
        loop {
            let removed = async {
                let mut conn = connection::connect(url).await?;
                namespace
                    .remove_all(&mut conn)
                    .await
                    .map_err(|cause| SetupError::KeysLeft {
                        prefix: namespace.pattern(),
                        cause,
                    })
            };
            match removed.await {
                Ok(_) => return Ok(()),
                Err(error) if attempts >= 10 => return Err(error),
                Err(_) => attempts += 1,
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The leftovers of every stage a demo opened, for [`crate::run::run_demo`] to remove.
#[derive(Clone, Default)]
pub struct Cleanup(Arc<Mutex<Vec<Leftovers>>>);

impl Cleanup {
    /// Remembers `leftovers` for removal when the run ends.
    pub fn register(&self, leftovers: Leftovers) {
        self.0.lock().expect("cleanup lock").push(leftovers);
    }

    /// Removes everything registered; returns what could not be removed, as advice.
    pub async fn remove_all(&self) -> Vec<String> {
        let all = std::mem::take(&mut *self.0.lock().expect("cleanup lock"));
        let mut left = Vec::new();
        for leftovers in all {
            left.extend(leftovers.remove().await);
        }
        left
    }
}

/// One application process: its own connection and subscription client, on a shared stage.
pub struct Instance {
    /// This process's connection.
    pub conn: RedisConn,
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

    /// Closes every subscriber's connection on the server (on a cluster, the node) this process
    /// subscribes through, with `CLIENT KILL TYPE pubsub`: how a test makes subscriptions lose
    /// their connection, miss what is published meanwhile, and reconnect. How many it closed.
    /// Every subscriber's, not only this run's: only on a stage of its own
    /// ([`Stage::of_its_own`]), never on a Redis others share.
    pub async fn kill_subscribers(&self) -> redis::RedisResult<i64> {
        let mut node = self.client.get_multiplexed_async_connection().await?;
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query_async(&mut node)
            .await
    }
}

/// Sets a run's mark, alive for `ALIVE_FOR` more.
async fn mark_alive(conn: &mut RedisConn, mark: &str) -> redis::RedisResult<()> {
    redis::AsyncCommands::pset_ex(conn, mark, 1, ALIVE_FOR.as_millis() as u64).await
}
