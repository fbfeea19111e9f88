//! Sessions in Redis, behind tower-sessions: a store of the lesson's own on redis-rs.
//!
//! tower-sessions keeps the session logic (the cookie, loading on first use, saving what changed,
//! [`cycle_id`](tower_sessions::Session::cycle_id)) and leaves the storage to a [`SessionStore`].
//! Its Redis store is built on another Redis client (fred), so a lesson that already speaks to
//! Redis, and to Redis Cluster, through redis-rs would carry a second client, its connections and
//! its settings for four commands. This store is those four commands:
//!
//! - the ID is nowhere in Redis: the key is a hash of it, and the value is the session's data and
//!   deadline without it (tower-sessions' `Record` carries its ID, which its JSON would write
//!   out), so whoever reads Redis (a `SCAN`, a `MONITOR`, a replica, a backup) learns no cookie
//!   that would log them in;
//! - every record is written with a TTL, the deadline the session's timeouts allow, so Redis ends
//!   a session the application forgets about;
//! - a save only replaces a session that still exists (`SET ... XX`): a request still in flight on
//!   one instance when another logs the session out cannot bring it back;
//! - each user's sessions are listed in a set, so "log out everywhere" can find them; a new
//!   session is listed before it is written, so that a failure between the two leaves a listed
//!   session that does not exist (harmless), never one that "log out everywhere" cannot find.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use shared::metrics::Counter;
use shared::{Namespace, RedisConn};
use tower_sessions::cookie::time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

use crate::timeouts::SignedIn;

/// The Redis commands the store sent, reads and writes apart: what a session costs per request.
#[derive(Default)]
pub struct StoreStats {
    /// `GET`s of a session.
    pub reads: Counter,
    /// Commands that change Redis: `SET`, `DEL`, `SADD`, `PEXPIRE`.
    pub writes: Counter,
}

/// Sessions as JSON records in Redis, keyed by a hash of their ID.
#[derive(Clone)]
pub struct RedisStore {
    conn: RedisConn,
    namespace: Namespace,
    /// How long a user's list of sessions lives after its last login: no shorter than the longest
    /// session it lists (the absolute timeout).
    index_ttl_ms: u64,
    /// What the store sent.
    pub stats: Arc<StoreStats>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.namespace.prefix())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store under `namespace`, whose user index lives `index_ttl_ms` after each login.
    pub fn new(conn: RedisConn, namespace: Namespace, index_ttl_ms: u64) -> RedisStore {
        RedisStore {
            conn,
            namespace,
            index_ttl_ms,
            stats: Arc::default(),
        }
    }

    /// The key of the session `id`: a SHA-256 of the ID (128 bits of it, through the course's
    /// [`shared::keys::hashed`]), so that Redis never holds a usable ID.
    pub fn key(&self, id: &Id) -> String {
        self.namespace
            .key(&shared::keys::hashed("session", &id.to_string()))
    }

    /// The set of `user`'s session keys.
    pub fn index_key(&self, user: i64) -> String {
        self.namespace.key(&format!("user:{user}:sessions"))
    }

    /// Ends every session of `user`, on every instance at once (Redis is the truth), and says how
    /// many were still alive.
    pub async fn end_all(&self, user: i64) -> redis::RedisResult<u64> {
        let mut conn = self.conn.clone();
        let index = self.index_key(user);
        let keys: Vec<String> = conn.smembers(&index).await?;
        self.stats.reads.inc();
        let mut ended = 0;
        // One DEL per key: on a cluster the sessions' keys are in different slots.
        for key in &keys {
            let removed: u64 = conn.del(key).await?;
            ended += removed;
            self.stats.writes.inc();
        }
        let _: () = conn.del(&index).await?;
        self.stats.writes.inc();
        Ok(ended)
    }

    // ANCHOR: write
    /// Writes `record` (without its ID) with its deadline as the key's TTL, on `condition` (`NX`:
    /// only as a new session; `XX`: only over one that still exists); whether it was written.
    async fn write(&self, record: &Record, condition: &str) -> session_store::Result<bool> {
        let stored = Stored {
            data: record.data.clone(),
            expiry_date: record.expiry_date,
        };
        let json = serde_json::to_string(&stored)
            .map_err(|error| session_store::Error::Encode(error.to_string()))?;
        let written: Option<String> = redis::cmd("SET")
            .arg(self.key(&record.id))
            .arg(json)
            .arg(condition)
            .arg("PX")
            .arg(Self::ttl_ms(record))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        self.stats.writes.inc();
        Ok(written.is_some())
    }
    // ANCHOR_END: write

    /// Lists the session `id` under `user`, with the list's TTL in the same transaction (one key,
    /// so one slot): Redis failing between the two must not leave a list without a TTL.
    async fn list(&self, user: i64, id: &Id) -> session_store::Result<()> {
        let index = self.index_key(user);
        let _: () = redis::pipe()
            .atomic()
            .sadd(&index, self.key(id))
            .ignore()
            .pexpire(&index, self.index_ttl_ms as i64)
            .ignore()
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        self.stats.writes.add(2);
        Ok(())
    }

    /// The milliseconds left until `record` expires, at least 1 (a deadline already past is left
    /// to Redis to remove at once).
    fn ttl_ms(record: &Record) -> u64 {
        let left = record.expiry_date - OffsetDateTime::now_utc();
        (left.whole_milliseconds().max(1)) as u64
    }
}

/// What Redis holds of a session: its data and deadline, not its ID.
#[derive(Serialize, Deserialize)]
struct Stored {
    data: HashMap<String, serde_json::Value>,
    expiry_date: OffsetDateTime,
}

/// A Redis failure as tower-sessions reports it, which never names the session's ID (the key is a
/// hash). A handler that cannot load the session answers 503; the middleware, when it cannot save
/// one after the handler, 500.
fn backend(error: redis::RedisError) -> session_store::Error {
    session_store::Error::Backend(error.to_string())
}

#[async_trait]
impl SessionStore for RedisStore {
    /// A new session: a new random ID (tower-sessions' `Id`: 128 bits from the thread's CSPRNG),
    /// listed under its user first, then written only if no session has it (`NX`).
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let user = SignedIn::of(record).map(|signed_in| signed_in.user);
        loop {
            if let Some(user) = user {
                self.list(user, &record.id).await?;
            }
            if self.write(record, "NX").await? {
                return Ok(());
            }
            record.id = Id::default(); // 2^-128: never, but a collision must not join two users
        }
    }

    /// Replaces a session that still exists, with its new deadline (`XX`: a session another
    /// instance has ended stays ended).
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.write(record, "XX").await?;
        Ok(())
    }

    /// The session `id`, if Redis has it and its deadline has not passed; a record that does not
    /// decode is no session, not an error page.
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let mut conn = self.conn.clone();
        let json: Option<String> = conn.get(self.key(id)).await.map_err(backend)?;
        self.stats.reads.inc();
        let stored = json.and_then(|json| serde_json::from_str::<Stored>(&json).ok());
        Ok(stored
            .filter(|stored| stored.expiry_date > OffsetDateTime::now_utc())
            .map(|stored| Record {
                id: *id,
                data: stored.data,
                expiry_date: stored.expiry_date,
            }))
    }

    /// Removes the session `id` (its entry in the user's list goes with the list's TTL, or with
    /// "log out everywhere", which deleting a missing key does not disturb).
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        let mut conn = self.conn.clone();
        let _: () = conn.del(self.key(id)).await.map_err(backend)?;
        self.stats.writes.inc();
        Ok(())
    }
}
