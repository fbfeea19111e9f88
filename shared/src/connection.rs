//! Where a lesson's Redis comes from, and how it connects.
//!
//! `REDIS_URL` (or `--redis-url`) names a server the learner runs; otherwise a private
//! [`RedisServer`] is started for the life of the program. `REDIS_CLUSTER=1` (or
//! `--redis-cluster`) asks for a Redis Cluster instead: the one `REDIS_URL` names (any of its
//! nodes), else a private three-master [`RedisCluster`]. A URL can say it too:
//! `redis+cluster://127.0.0.1:7000/`.
//!
//! Either way the lesson gets a [`RedisConn`]: one multiplexed connection shared by every task,
//! which reconnects on its own after the server goes away and comes back. On a cluster it is
//! redis-rs's cluster connection, which keeps one such connection per master and sends each
//! command to the master that owns its key's slot. Reconnection is tuned for a cache, where
//! waiting is worse than missing: short connect and response timeouts, and no retries inside a
//! request (on a cluster, one: enough to follow a `MOVED` after slots move). With retries, every request made while Redis is down sat out the manager's backoff
//! (16 ms a read, measured); without them a refused connection fails the call at once (0.26 ms),
//! the caller falls back to the database, and the next call tries to reconnect again.
//!
//! A connection can open and still refuse every command: a server that wants a password lets a
//! client connect without one and answers `NOAUTH` to everything after. So connecting ends with a
//! PING, and its refusal becomes advice that matches the cause, before any work starts. A URL is
//! never printed with its password: [`redact`](crate::redact::redact) replaces it.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::caching::{CacheConfig, CacheStatistics};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, ProtocolVersion, RedisFuture, Value};

use crate::cluster::RedisCluster;
use crate::error::SetupError;
use crate::redact::redact;
use crate::server::{RedisServer, ServerOptions};

/// The scheme that marks a URL as a cluster's: `redis+cluster://HOST:PORT/` names any one node.
const CLUSTER_SCHEME: &str = "redis+cluster://";

/// The Redis a program talks to: a server or cluster somebody else runs, or a private one we own.
pub enum RedisTarget {
    /// A server, or with a `redis+cluster://` URL a cluster, named by URL. The course never
    /// flushes it; lessons only touch keys under their own [`Namespace`](crate::Namespace) and
    /// remove them when they finish.
    External(String),
    /// A private server, stopped when this value is dropped.
    Private(RedisServer),
    /// A private three-master cluster, stopped when this value is dropped.
    PrivateCluster(RedisCluster),
}

impl RedisTarget {
    /// `url` if given (from `--redis-url` or `REDIS_URL`), read as a cluster's if `cluster`;
    /// else a freshly started private cluster (`cluster`) or server.
    pub fn choose(url: Option<&str>, cluster: bool) -> Result<Self, SetupError> {
        Self::choose_with(url, cluster, ServerOptions::default())
    }

    /// [`choose`](Self::choose), with a private server run as `server` says: the write-behind
    /// lesson's keeps an append-only file. (A private cluster's nodes keep nothing on disk.)
    pub fn choose_with(
        url: Option<&str>,
        cluster: bool,
        server: ServerOptions,
    ) -> Result<Self, SetupError> {
        // Only the syntax is checked here; `connect` finds out whether the server is there.
        match url {
            Some(url) => {
                let url = if cluster {
                    as_cluster_url(url)
                } else {
                    url.to_string()
                };
                client(&url)?;
                Ok(RedisTarget::External(url))
            }
            None if cluster => Ok(RedisTarget::PrivateCluster(RedisCluster::start()?)),
            None => Ok(RedisTarget::Private(RedisServer::start_with(server)?)),
        }
    }

    /// `REDIS_URL` and `REDIS_CLUSTER` from the environment, as [`choose`](Self::choose) reads
    /// them.
    pub fn from_env() -> Result<Self, SetupError> {
        let url = std::env::var("REDIS_URL")
            .ok()
            .filter(|url| !url.is_empty());
        Self::choose(url.as_deref(), cluster_from_env()?)
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        match self {
            RedisTarget::External(url) => url.clone(),
            RedisTarget::Private(server) => server.url(),
            RedisTarget::PrivateCluster(cluster) => cluster.url(),
        }
    }

    /// The private server, for fault injection; `None` for an external one or a cluster.
    pub fn server(&self) -> Option<&RedisServer> {
        match self {
            RedisTarget::Private(server) => Some(server),
            RedisTarget::External(_) | RedisTarget::PrivateCluster(_) => None,
        }
    }

    /// Connects, failing with advice if the server cannot be reached now.
    pub async fn connect(&self) -> Result<RedisConn, SetupError> {
        connect(&self.url()).await
    }
}

/// `REDIS_CLUSTER` as a yes or no, read as clap reads it for `--redis-cluster`: unset, empty,
/// `0`, `false`, `no` or `off` is no; `1`, `true`, `yes` or `on` is yes.
fn cluster_from_env() -> Result<bool, SetupError> {
    let value = std::env::var("REDIS_CLUSTER").unwrap_or_default();
    match value.to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" | "off" | "n" | "f" => Ok(false),
        "1" | "true" | "yes" | "on" | "y" | "t" => Ok(true),
        _ => Err(SetupError::BadClusterFlag { value }),
    }
}

/// Whether `url` names a cluster.
pub fn is_cluster(url: &str) -> bool {
    url.starts_with(CLUSTER_SCHEME)
}

/// `url` with the cluster scheme: `redis://h:p/` becomes `redis+cluster://h:p/`.
fn as_cluster_url(url: &str) -> String {
    match url.strip_prefix("redis://") {
        Some(rest) => format!("{CLUSTER_SCHEME}{rest}"),
        None => url.to_string(),
    }
}

/// The URL of the one node a cluster URL names, in the form the client library reads.
fn node_url(url: &str) -> String {
    match url.strip_prefix(CLUSTER_SCHEME) {
        Some(rest) => format!("redis://{rest}"),
        None => url.to_string(),
    }
}

/// A connection to a single server or to a cluster. Lessons take it wherever they talk to Redis;
/// commands, pipelines and scripts work the same on both, as long as each names keys of one
/// hash slot.
#[derive(Clone)]
pub enum RedisConn {
    /// A single server, through a reconnecting multiplexed connection.
    Server(ConnectionManager),
    /// A cluster, through a connection per master that follows the slot map.
    Cluster(ClusterConnection),
}

impl RedisConn {
    /// What the client-side cache of a [`connect_tracking`] connection counted: replies served
    /// from memory (`hit`), asked of the server (`miss`), dropped by the server's pushes
    /// (`invalidate`). `None` for a connection without one.
    pub fn client_cache(&self) -> Option<CacheStatistics> {
        match self {
            RedisConn::Server(conn) => conn.get_cache_statistics(),
            RedisConn::Cluster(conn) => conn.get_cache_statistics(),
        }
    }

    /// The commands the server has processed since it started (`total_commands_processed`),
    /// summed over every master of a cluster: what a demo subtracts before from after to say
    /// how many commands a run sent, whoever sent them.
    pub async fn commands_processed(&mut self) -> redis::RedisResult<u64> {
        let mut info = redis::cmd("INFO");
        info.arg("stats");
        let replies: Vec<String> = match self {
            RedisConn::Server(conn) => vec![info.query_async(conn).await?],
            RedisConn::Cluster(conn) => {
                let mut replies = Vec::new();
                for (host, port) in masters(conn).await? {
                    let node =
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
                    let reply = conn.route_command(info.clone(), node).await?;
                    replies.push(redis::from_redis_value(reply)?);
                }
                replies
            }
        };
        Ok(replies
            .iter()
            .filter_map(|reply| {
                reply
                    .lines()
                    .find_map(|line| line.strip_prefix("total_commands_processed:"))
                    .and_then(|n| n.trim().parse::<u64>().ok())
            })
            .sum())
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Server(conn) => conn.req_packed_command(cmd),
            RedisConn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Server(conn) => conn.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Server(conn) => conn.get_db(),
            RedisConn::Cluster(conn) => conn.get_db(),
        }
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

/// A client for `url` (for a cluster, for the node it names); only the URL's syntax is checked
/// here. Lessons that need a connection of their own beside the shared one (a pub/sub
/// subscription, say) open it from this.
pub fn client(url: &str) -> Result<redis::Client, SetupError> {
    redis::Client::open(node_url(url)).map_err(|cause| SetupError::BadRedisUrl {
        url: redact(url),
        cause,
    })
}

/// Connects to `url` now and checks that the server accepts commands, or explains why not.
pub async fn connect(url: &str) -> Result<RedisConn, SetupError> {
    connect_with(url, None).await
}

/// Connects to `url` with **server-assisted client-side caching**: the connection speaks RESP3
/// and turns `CLIENT TRACKING` on, redis-rs keeps the replies to reads (`GET` and the like) in
/// its own memory, up to `cache.size` of them, and the server pushes an invalidation for a key
/// this connection read whenever anyone changes it. redis-rs marks the feature experimental;
/// the two-tier lesson measures it against a hand-built backplane.
pub async fn connect_tracking(url: &str, cache: CacheConfig) -> Result<RedisConn, SetupError> {
    connect_with(url, Some(cache)).await
}

async fn connect_with(url: &str, cache: Option<CacheConfig>) -> Result<RedisConn, SetupError> {
    let refused = |cause| refusal(&redact(url), cause);
    let mut info = client(url)?.get_connection_info().clone();
    if cache.is_some() {
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        info = info.set_redis_settings(resp3);
    }
    let mut conn = if is_cluster(url) {
        let mut builder = ClusterClientBuilder::new([info])
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            // One retry follows a MOVED redirect; more would make every call wait out a down
            // master's backoff, as retries did on a single server.
            .retries(1);
        if let Some(cache) = cache {
            builder = builder
                .use_protocol(ProtocolVersion::RESP3)
                .cache_config(cache);
        }
        let cluster = builder.build().map_err(refused)?;
        RedisConn::Cluster(cluster.get_async_connection().await.map_err(refused)?)
    } else {
        let mut config = manager_config();
        if let Some(cache) = cache {
            config = config.set_cache_config(cache);
        }
        let client = redis::Client::open(info).map_err(refused)?;
        let manager = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(refused)?;
        RedisConn::Server(manager)
    };
    let _: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(refused)?;
    if let RedisConn::Server(_) = conn
        && cluster_enabled(&mut conn).await
    {
        return Err(SetupError::RedisIsACluster { url: redact(url) });
    }
    Ok(conn)
}

/// Whether the server a plain connection reached is a cluster node. Commands for keys of other
/// nodes' slots would fail with `MOVED`, so the learner is told to connect as to a cluster.
async fn cluster_enabled(conn: &mut RedisConn) -> bool {
    let info: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(conn)
        .await
        .unwrap_or_default();
    info.contains("cluster_enabled:1")
}

/// The setup error for a server at `url` that refused us, by what it said.
fn refusal(url: &str, cause: redis::RedisError) -> SetupError {
    let said = cause.to_string();
    let url = url.to_string();
    if said.contains("cluster support disabled") {
        SetupError::RedisIsNotACluster { url }
    } else if said.contains("NOAUTH") {
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

/// The address of every master of the cluster, from `CLUSTER NODES`: one line per node,
/// `<id> <host:port@bus> <flags> ...`, where the flags of a master include `master`.
pub(crate) async fn masters(
    conn: &mut redis::cluster_async::ClusterConnection,
) -> redis::RedisResult<Vec<(String, u16)>> {
    let nodes: String = redis::cmd("CLUSTER").arg("NODES").query_async(conn).await?;
    Ok(nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address = fields.nth(1)?;
            let flags = fields.next()?;
            let master = flags.split(',').any(|flag| flag == "master");
            let (host, port) = address.split('@').next()?.rsplit_once(':')?;
            master.then(|| Some((host.to_string(), port.parse().ok()?)))?
        })
        .collect())
}
