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
//!
//! A connection can open and still refuse every command: a server that wants a password lets a
//! client connect without one and answers `NOAUTH` to everything after. So connecting ends with a
//! PING, and its refusal becomes advice that matches the cause, before any work starts. A URL is
//! never printed with its password: [`redact`] replaces it.

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
        // Only the syntax is checked here; `connect` finds out whether the server is there.
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
        url: redact(url),
        cause,
    })
}

/// Connects to `url` now and checks that the server accepts commands, or explains why not.
pub async fn connect(url: &str) -> Result<ConnectionManager, SetupError> {
    let refused = |cause| refusal(&redact(url), cause);
    let mut conn = ConnectionManager::new_with_config(client(url)?, manager_config())
        .await
        .map_err(refused)?;
    let _: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(refused)?;
    Ok(conn)
}

/// The setup error for a server at `url` that refused us, by what it said.
fn refusal(url: &str, cause: redis::RedisError) -> SetupError {
    let said = cause.to_string();
    let url = url.to_string();
    if said.contains("NOAUTH") {
        SetupError::RedisNeedsPassword { url }
    } else if said.contains("without any password configured") {
        SetupError::RedisHasNoPassword { url }
    } else if said.contains("WRONGPASS")
        || said.contains("invalid password")
        || cause.kind() == redis::ErrorKind::AuthenticationFailed
    {
        SetupError::RedisWrongPassword { url }
    } else if said.contains("DB index is out of range") {
        SetupError::RedisNoSuchDatabase { url }
    } else {
        SetupError::RedisUnreachable { url, cause }
    }
}

/// `url` with its password, if it has one, replaced by `***`: `redis://:***@host:6379/`,
/// `postgres://user:***@host/db`. Everything the course prints shows URLs this way.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let authority_end = url[scheme_end..]
        .find('/')
        .map_or(url.len(), |i| scheme_end + i);
    let Some(at) = url[scheme_end..authority_end]
        .rfind('@')
        .map(|i| scheme_end + i)
    else {
        return url.to_string();
    };
    match url[scheme_end..at].find(':').map(|i| scheme_end + i) {
        Some(colon) => format!("{}:***{}", &url[..colon], &url[at..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("redis://:s3cret@10.0.0.1:6379/0"),
            "redis://:***@10.0.0.1:6379/0"
        );
        assert_eq!(
            redact("postgres://ann:p@ss:w0rd@db/course"),
            "postgres://ann:***@db/course"
        );
        assert_eq!(redact("redis://127.0.0.1:6379/"), "redis://127.0.0.1:6379/");
        assert_eq!(
            redact("redis://user@host/"),
            "redis://user@host/",
            "no password to hide"
        );
        assert_eq!(redact("sqlite:///tmp/a@b.db"), "sqlite:///tmp/a@b.db");
    }
}
