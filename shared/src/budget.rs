//! The budgeted Redis call: every lesson's way of asking Redis something without betting the
//! request on the answer.
//!
//! A cache is an optimisation. If Redis fails, or takes longer than a small budget, the request
//! must go on without it, answered by the database, and the failure must be counted, because a
//! cache that fails quietly looks exactly like a cache that works. So every Redis call a lesson
//! makes goes through [`within`]: it runs the call under a timeout, counts a failure or a timeout
//! in the caller's `errors` counter, and turns either into `None`.
//!
//! [`get`] is the read every lesson starts with, built on it: one `GET`, decoded into the lesson's
//! record type, reported as a [`Lookup`]. Bytes that do not decode (another program's data, an
//! older shape of the record) are counted as corrupt and reported as [`Lookup::Missing`], so the
//! value loaded next overwrites them.

use std::future::Future;
use std::time::Duration;

use crate::connection::RedisConn;
use redis::{AsyncCommands, RedisResult};
use serde::de::DeserializeOwned;

use crate::codec;
use crate::metrics::Counter;

// ANCHOR: within
/// Runs one Redis call within `budget`. A failure or a timeout is counted in `errors` and becomes
/// `None`: the caller falls back instead of failing.
pub async fn within<T>(
    budget: Duration,
    errors: &Counter,
    call: impl Future<Output = RedisResult<T>>,
) -> Option<T> {
    match tokio::time::timeout(budget, call).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(_)) | Err(_) => {
            errors.inc();
            None
        }
    }
}
// ANCHOR_END: within

/// What a look in the cache found.
#[derive(Debug)]
pub enum Lookup<T> {
    /// A record that decoded.
    Found(T),
    /// Nothing under the key, or bytes that did not decode: load, and store what you loaded.
    Missing,
    /// Redis cannot be used for this key now (it failed or was too slow): load, and do not
    /// bother storing.
    Unavailable,
}

impl<T> Lookup<T> {
    /// Whether a value loaded after this lookup should be stored: yes unless Redis failed.
    pub fn can_store(&self) -> bool {
        !matches!(self, Lookup::Unavailable)
    }
}

/// Where [`get`] counts what went wrong.
pub struct Trouble<'a> {
    /// Redis calls that failed or ran out of time.
    pub errors: &'a Counter,
    /// Entries that did not decode.
    pub corrupt: &'a Counter,
}

/// One budgeted `GET` of `key`, decoded as `T`.
pub async fn get<T: DeserializeOwned>(
    conn: &RedisConn,
    key: &str,
    budget: Duration,
    trouble: Trouble<'_>,
) -> Lookup<T> {
    let mut conn = conn.clone();
    let read = conn.get::<_, Option<Vec<u8>>>(key);
    match within(budget, trouble.errors, read).await {
        None => Lookup::Unavailable,
        Some(None) => Lookup::Missing,
        Some(Some(bytes)) => match codec::decode(&bytes) {
            Ok(record) => Lookup::Found(record),
            Err(_) => {
                trouble.corrupt.inc();
                Lookup::Missing
            }
        },
    }
}
