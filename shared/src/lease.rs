//! The lease: a reader's right to store what it loaded, which a write takes away.
//!
//! Without it, cache-aside has a race that leaves a stale value for a whole TTL:
//!
//! ```text
//! reader: GET item:42        -> miss
//! reader: SELECT item 42     -> old row
//!                                        writer: UPDATE item 42
//!                                        writer: DEL item:42
//! reader: SET item:42 old row            (stale for the whole TTL)
//! ```
//!
//! So before loading, a reader takes a lease, `SET key:lease token NX`, and it may store only
//! while its token is still there, checked and written in one Lua script. Invalidation deletes
//! the key *and* its lease ([`with_leases`]), so a reader that loaded before the write can no
//! longer store what it read. The lease starts with the key, hash tag included, so both live in
//! one slot and the script runs on a Redis Cluster. (Facebook's memcache paper, NSDI 2013, calls
//! this a lease.)

use std::future::Future;
use std::time::Duration;

use redis::{RedisResult, Script};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::budget::{self, Lookup, Trouble};
use crate::codec;
use crate::connection::RedisConn;
use crate::metrics::Counter;

// ANCHOR: script
/// Stores the value only if the caller's lease is still in place, then gives the lease up.
/// KEYS: value key, lease key. ARGV: lease token, value bytes, TTL in milliseconds.
const STORE_IF_LEASED: &str = r"
if redis.call('GET', KEYS[2]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
    redis.call('DEL', KEYS[2])
    return 1
end
return 0
";
// ANCHOR_END: script

/// The lease of `key`. It starts with `key`, hash tag included, so both live in one slot.
pub fn lease_key(key: &str) -> String {
    format!("{key}:lease")
}

/// `keys` and the lease of each: what an invalidation deletes, so that no reader that loaded
/// before it can store afterwards.
pub fn with_leases<S: AsRef<str>>(keys: &[S]) -> Vec<String> {
    keys.iter()
        .flat_map(|key| [key.as_ref().to_string(), lease_key(key.as_ref())])
        .collect()
}

/// Who answered a [`Leases::get_or_load`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answered {
    /// Redis had the value.
    Cache,
    /// The loader did (Redis missed, failed, or held bytes that did not decode).
    Loader,
}

/// Takes and honours leases on one connection, every call within a time budget.
pub struct Leases {
    conn: RedisConn,
    /// How long a reader may take between missing and storing; it must comfortably exceed a
    /// database load.
    ttl: Duration,
    budget: Duration,
    store_if_leased: Script,
}

impl Leases {
    /// Leases lasting `ttl`, taken and used through `conn`, each call within `budget`.
    pub fn new(conn: RedisConn, ttl: Duration, budget: Duration) -> Self {
        Leases {
            conn,
            ttl,
            budget,
            store_if_leased: Script::new(STORE_IF_LEASED),
        }
    }

    // ANCHOR: take
    /// Takes `key`'s lease if nobody holds it; returns the token that proves it. `None`: someone
    /// else holds it, or Redis failed (counted in `errors`); either way, do not store.
    pub async fn take(&self, key: &str, errors: &Counter) -> Option<String> {
        let token = format!("{:016x}", rand::random::<u64>());
        let mut set = redis::cmd("SET");
        set.arg(lease_key(key))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(self.ttl.as_millis() as u64);
        let mut conn = self.conn.clone();
        let taken: Option<Option<String>> = self.within(errors, set.query_async(&mut conn)).await;
        // SET NX answers OK when it set the key and nil when the key existed.
        taken.flatten().map(|_| token)
    }
    // ANCHOR_END: take

    // ANCHOR: store
    /// Stores `bytes` under `key` for `ttl` if the lease `token` is still there; a write since it
    /// was taken means the caller holds an old row. `Some(true)`: stored; `Some(false)`: the
    /// lease was gone; `None`: Redis failed (counted).
    pub async fn store(
        &self,
        key: &str,
        token: &str,
        bytes: &[u8],
        ttl: Duration,
        errors: &Counter,
    ) -> Option<bool> {
        let mut call = self.store_if_leased.prepare_invoke();
        call.key(key)
            .key(lease_key(key))
            .arg(token)
            .arg(bytes)
            .arg(ttl.as_millis() as u64);
        let mut conn = self.conn.clone();
        let stored: Option<i64> = self.within(errors, call.invoke_async(&mut conn)).await;
        stored.map(|stored| stored == 1)
    }
    // ANCHOR_END: store

    // ANCHOR: get_or_load
    /// The value under `key`: from Redis, else from `load`, then stored for `ttl` if the lease
    /// taken before loading survived; and which of the two answered. Redis trouble is a miss
    /// answered by `load` (counted in `trouble.errors`, nothing stored); an unreadable entry is a
    /// miss whose value is stored over it (counted in `trouble.corrupt`). The read cache-aside
    /// lessons share once the lease is taught.
    pub async fn get_or_load<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        trouble: Trouble<'_>,
        load: F,
    ) -> Result<(T, Answered), E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let errors = trouble.errors;
        let lease = match budget::get::<T>(&self.conn, key, self.budget, trouble).await {
            Lookup::Found(value) => return Ok((value, Answered::Cache)),
            Lookup::Missing => self.take(key, errors).await,
            Lookup::Unavailable => None,
        };
        let value = load().await?;
        if let Some(token) = lease {
            let bytes = codec::encode(&value).expect("cached values serialize to JSON");
            self.store(key, &token, &bytes, ttl, errors).await;
        }
        Ok((value, Answered::Loader))
    }
    // ANCHOR_END: get_or_load

    async fn within<T>(
        &self,
        errors: &Counter,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Option<T> {
        budget::within(self.budget, errors, call).await
    }
}
