//! Sessions in Redis, behind tower-sessions: a store of the lesson's own on redis-rs.
//!
//! tower-sessions keeps the session logic (the cookie, loading on first use, saving what changed,
//! [`cycle_id`](tower_sessions::Session::cycle_id)) and leaves the storage to a [`SessionStore`].
//! Its Redis store is built on another Redis client (fred), so a lesson that already speaks to
//! Redis, and to Redis Cluster, through redis-rs would carry a second client, its connections and
//! its settings for four commands. This store is those four commands:
//!
//! - the key is a hash of the session ID, never the ID: whoever can list Redis's keys (a `SCAN`,
//!   a `MONITOR`, a backup) learns no cookie that would log them in;
//! - every record is written with a TTL, the deadline the session's timeouts allow, so Redis ends
//!   a session the application forgets about;
//! - a save only replaces a session that still exists (`SET ... XX`): a request still in flight on
//!   one instance when another logs the session out cannot bring it back;
//! - each user's sessions are listed in a set, so "log out everywhere" can find them.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use redis::AsyncCommands;
use sha2::{Digest, Sha256};
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

    /// The key of the session `id`: a SHA-256 of the ID, so that Redis never holds a usable ID.
    pub fn key(&self, id: &Id) -> String {
        let digest = Sha256::digest(id.to_string().as_bytes());
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        self.namespace.key(&format!("session:{hex}"))
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
    /// Writes `record` with its deadline as the key's TTL, on `condition` (`NX`: only as a new
    /// session; `XX`: only over one that still exists); whether it was written.
    async fn write(&self, record: &Record, condition: &str) -> session_store::Result<bool> {
        let json = serde_json::to_string(record)
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

    /// The milliseconds left until `record` expires, at least 1 (a deadline already past is left
    /// to Redis to remove at once).
    fn ttl_ms(record: &Record) -> u64 {
        let left = record.expiry_date - OffsetDateTime::now_utc();
        (left.whole_milliseconds().max(1)) as u64
    }
}

/// A Redis failure as tower-sessions reports it (the middleware answers 500, and never with the
/// session's ID: the key is a hash).
fn backend(error: redis::RedisError) -> session_store::Error {
    session_store::Error::Backend(error.to_string())
}

#[async_trait]
impl SessionStore for RedisStore {
    /// A new session: a new random ID (tower-sessions' `Id`: 128 bits from the thread's CSPRNG),
    /// written only if no session has it (`NX`), and listed under its user.
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        while !self.write(record, "NX").await? {
            record.id = Id::default(); // 2^-128: never, but a collision must not join two users
        }
        if let Some(user) = SignedIn::of(record).map(|signed_in| signed_in.user) {
            // Both in one transaction (one key, so one slot): Redis failing between the two must
            // not leave a list without a TTL.
            let index = self.index_key(user);
            let mut conn = self.conn.clone();
            let _: () = redis::pipe()
                .atomic()
                .sadd(&index, self.key(&record.id))
                .ignore()
                .pexpire(&index, self.index_ttl_ms as i64)
                .ignore()
                .query_async(&mut conn)
                .await
                .map_err(backend)?;
            self.stats.writes.add(2);
        }
        Ok(())
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
        let record = json.and_then(|json| serde_json::from_str::<Record>(&json).ok());
        Ok(record.filter(|record| record.expiry_date > OffsetDateTime::now_utc()))
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
