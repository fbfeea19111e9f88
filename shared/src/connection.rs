//! Where a lesson's Redis comes from, and how it connects.
//!
//! `REDIS_URL` (or `--redis-url`) names a server the learner runs; otherwise a private
//! [`RedisServer`] is started for the life of the program. Either way the lesson gets a
//! [`ConnectionManager`]: one multiplexed connection shared by every task, which reconnects on its
//! own after the server goes away and comes back. Reconnection is tuned for a cache, where
//! waiting is worse than missing: short connect and response timeouts, and no retries inside a
//! request. With retries, every request made while Redis is down sat out the manager's backoff
//! (16 ms a read, measured); without them a refused connection fails the call at once (0.26 ms),
//! the caller falls back to the database, and the next call tries to reconnect again.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::SetupError;
use crate::server::RedisServer;

/// The Redis a program talks to: a server somebody else runs, or a private one we own.
pub enum RedisTarget {
    /// A server named by URL. The course never flushes it; lessons only touch keys under their
    /// own [`Namespace`](crate::Namespace) and remove them when they finish.
    External(String),
    /// A private server, stopped when this value is dropped.
    Private(RedisServer),
}

impl RedisTarget {
    /// `url` if given (from `--redis-url` or `REDIS_URL`), else a freshly started private server.
    pub fn from_url_or_private(url: Option<&str>) -> Result<Self, SetupError> {
        match url {
            Some(url) => {
                client(url)?;
                Ok(RedisTarget::External(url.to_string()))
            }
            None => Ok(RedisTarget::Private(RedisServer::start()?)),
        }
    }

    /// `REDIS_URL` if set, else a private server.
    pub fn from_env() -> Result<Self, SetupError> {
        Self::from_url_or_private(std::env::var("REDIS_URL").ok().as_deref())
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        match self {
            RedisTarget::External(url) => url.clone(),
            RedisTarget::Private(server) => server.url(),
        }
    }

    /// The private server, for fault injection; `None` for an external one.
    pub fn server(&self) -> Option<&RedisServer> {
        match self {
            RedisTarget::External(_) => None,
            RedisTarget::Private(server) => Some(server),
        }
    }

    /// Connects, failing with advice if the server cannot be reached now.
    pub async fn connect(&self) -> Result<ConnectionManager, SetupError> {
        connect(&self.url()).await
    }
}

/// How long one connection attempt or one reply may take before the manager gives up on it.
/// Callers add their own, usually shorter, per-operation budget on top.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(0)
}

/// A client for `url`; only the URL's syntax is checked here. Lessons that need a connection of
/// their own beside the manager (a pub/sub subscription, say) open it from this.
pub fn client(url: &str) -> Result<redis::Client, SetupError> {
    redis::Client::open(url).map_err(|cause| SetupError::BadRedisUrl {
        url: url.to_string(),
        cause,
    })
}

/// Connects to `url` now, or explains why it cannot.
pub async fn connect(url: &str) -> Result<ConnectionManager, SetupError> {
    ConnectionManager::new_with_config(client(url)?, manager_config())
        .await
        .map_err(|cause| SetupError::RedisUnreachable {
            url: url.to_string(),
            cause,
        })
}
