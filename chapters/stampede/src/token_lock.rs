//! A lock in Redis that only its owner can release.
//!
//! Taking it is one command, `SET lock token NX PX ttl`: set the key only if it does not exist,
//! with a TTL. The token is random and known only to the taker; it is the proof of ownership.
//!
//! Releasing it is where the usual version goes wrong. `DEL lock` releases *whoever's* lock is
//! there now. If our load outlived the TTL, the lock expired, someone else took it, and our `DEL`
//! deletes *their* lock, letting a third request in while they are still loading. So release
//! compares the token and deletes in one Lua script, which Redis runs atomically: nobody can take
//! the lock between the comparison and the delete.
//!
//! The TTL is what makes the lock safe against crashes: a holder that dies never releases, and
//! the lock frees itself when the TTL runs out. That also means a TTL shorter than the work lets
//! a second worker in; choose it comfortably longer than a load.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{RedisResult, Script};
use shared::RedisConn;

// ANCHOR: scripts
/// Takes the lock, or says how long its current holder still has it.
/// KEYS: lock. ARGV: token, TTL in ms. Returns -1 when taken, else the holder's PTTL in ms
/// (-2 if the existing lock has no TTL at all, since -1 already means "taken").
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return -1
end
local left = redis.call('PTTL', KEYS[1])
if left == -1 then return -2 end
return left
",
    )
});

/// Like ACQUIRE, but only while the value the lock protects is still missing; if it is there,
/// returns it instead. Looking and locking in one script leaves no gap between the two in which
/// another holder could store the value and release.
/// KEYS: lock, value. ARGV: token, TTL in ms. Returns {'value', bytes}, {'taken'} or
/// {'held', PTTL in ms} (-1 if the existing lock has no TTL).
static ACQUIRE_UNLESS_PRESENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local value = redis.call('GET', KEYS[2])
if value then return {'value', value} end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {'taken'} end
return {'held', tostring(redis.call('PTTL', KEYS[1]))}
",
    )
});

/// Deletes the lock only if it still holds our token.
/// KEYS: lock. ARGV: token. Returns 1 if it deleted our lock, 0 if the lock was no longer ours.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});
// ANCHOR_END: scripts

/// A lock we hold: its key and the token that proves it is ours.
#[derive(Debug)]
pub struct TokenLock {
    key: String,
    token: String,
}

/// What an attempt to take a lock found.
#[derive(Debug)]
pub enum Attempt {
    /// Ours, until released or expired.
    Acquired(TokenLock),
    /// Someone else holds it, for at most `expires_in` more (`None`: their lock has no TTL).
    Held {
        /// How long the holder's lock has left.
        expires_in: Option<Duration>,
    },
}

// ANCHOR: acquire
/// Tries once to take the lock `key` for `ttl`.
pub async fn try_acquire(conn: &mut RedisConn, key: &str, ttl: Duration) -> RedisResult<Attempt> {
    let token = format!("{:032x}", rand::random::<u128>());
    let answer: i64 = ACQUIRE
        .key(key)
        .arg(&token)
        .arg(ttl.as_millis().max(1) as u64)
        .invoke_async(conn)
        .await?;
    Ok(match answer {
        -1 => Attempt::Acquired(TokenLock {
            key: key.to_string(),
            token,
        }),
        -2 => Attempt::Held { expires_in: None },
        ms => Attempt::Held {
            expires_in: Some(Duration::from_millis(ms.max(0) as u64)),
        },
    })
}

/// What [`try_acquire_unless_present`] found.
#[derive(Debug)]
pub enum Guarded {
    /// The value is there already: no lock needed.
    Present(Vec<u8>),
    /// The value is missing; this is how taking the lock went.
    Attempt(Attempt),
}

/// Tries once to take the lock `key` for `ttl`, unless `value_key` exists, in which case returns
/// its bytes. Both keys must hash to the same cluster slot.
pub async fn try_acquire_unless_present(
    conn: &mut RedisConn,
    key: &str,
    value_key: &str,
    ttl: Duration,
) -> RedisResult<Guarded> {
    let token = format!("{:032x}", rand::random::<u128>());
    let reply: Vec<Vec<u8>> = ACQUIRE_UNLESS_PRESENT
        .key(key)
        .key(value_key)
        .arg(&token)
        .arg(ttl.as_millis().max(1) as u64)
        .invoke_async(conn)
        .await?;
    let mut reply = reply.into_iter();
    Ok(match (reply.next().as_deref(), reply.next()) {
        (Some(b"value"), Some(bytes)) => Guarded::Present(bytes),
        (Some(b"taken"), _) => Guarded::Attempt(Attempt::Acquired(TokenLock {
            key: key.to_string(),
            token,
        })),
        (_, pttl) => {
            let ms: i64 = pttl
                .and_then(|p| String::from_utf8(p).ok()?.parse().ok())
                .unwrap_or(-1);
            Guarded::Attempt(Attempt::Held {
                expires_in: (ms >= 0).then(|| Duration::from_millis(ms as u64)),
            })
        }
    })
}

impl TokenLock {
    /// Releases the lock if it is still ours. `Ok(false)` means it expired and someone else may
    /// hold it now; their lock is left alone.
    pub async fn release(self, conn: &mut RedisConn) -> RedisResult<bool> {
        let deleted: i64 = RELEASE
            .key(&self.key)
            .arg(&self.token)
            .invoke_async(conn)
            .await?;
        Ok(deleted == 1)
    }
}
// ANCHOR_END: acquire

impl TokenLock {
    /// The lock's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The token that proves the lock is ours.
    pub fn token(&self) -> &str {
        &self.token
    }
}
