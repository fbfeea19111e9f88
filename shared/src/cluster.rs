//! A private Redis Cluster: three masters on loopback, for running every lesson on a cluster.
//!
//! A cluster divides the keyspace into 16,384 *hash slots* and gives each master a range of them.
//! A client asks any node where the slots are (`CLUSTER SLOTS`) and then sends each command to the
//! master that owns the slot of the command's key. That is all a lesson's code notices, with one
//! rule: a command, script or transaction that names several keys is refused with `CROSSSLOT`
//! unless all its keys hash to one slot (see [`crate::namespace`] for the hash tags that make
//! them).
//!
//! Building one takes no `redis-cli` and no prompts: start three empty cluster nodes
//! ([`RedisServer`] with `cluster-enabled yes`), give each a third of the slots
//! (`CLUSTER ADDSLOTSRANGE`), introduce them (`CLUSTER MEET`), and wait until every node reports
//! `cluster_state:ok` with all 16,384 slots served and knows the other two. The nodes are private
//! servers like any other: loopback only, no persistence, gone with their owner. There are no
//! replicas: a lesson's tests of failure (stop, crash, pause) run on a single private server,
//! where the failure is the lesson's and not the cluster's failover.

use std::time::{Duration, Instant};

use crate::error::SetupError;
use crate::process::log_tail;
use crate::server::RedisServer;

/// How many masters a private cluster has: the smallest number Redis calls a cluster.
const MASTERS: u16 = 3;
/// The slots every cluster has, numbered `0..SLOTS`.
pub const SLOTS: u16 = 16_384;
/// How long the nodes get to agree that every slot is served. It takes about 2 s here: a new
/// master waits 2 s after it starts before it declares the cluster ok.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Three private masters serving every slot between them.
pub struct RedisCluster {
    masters: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three masters, splits the slots between them, joins them, and returns once every
    /// node agrees the cluster is whole.
    pub fn start() -> Result<Self, SetupError> {
        let masters = (0..MASTERS)
            .map(|_| RedisServer::start_cluster_node())
            .collect::<Result<Vec<_>, _>>()?;
        let share = SLOTS / MASTERS;
        for (i, node) in (0u16..).zip(&masters) {
            let first = i * share;
            let last = if i == MASTERS - 1 {
                SLOTS - 1
            } else {
                first + share - 1
            };
            node.command(&format!("CLUSTER ADDSLOTSRANGE {first} {last}"))?;
        }
        for node in &masters[1..] {
            let bus = node.cluster_port().expect("a cluster node has a bus port");
            masters[0].command(&format!("CLUSTER MEET 127.0.0.1 {} {bus}", node.port()))?;
        }
        let cluster = RedisCluster { masters };
        cluster.wait_until_whole()?;
        Ok(cluster)
    }

    /// The URL the course connects with: `redis+cluster://` and one node to learn the rest from.
    pub fn url(&self) -> String {
        format!("redis+cluster://127.0.0.1:{}/", self.masters[0].port())
    }

    /// The masters, e.g. to read their logs.
    pub fn masters(&self) -> &[RedisServer] {
        &self.masters
    }

    /// Waits until every node says the cluster is ok, serves all slots and knows every master.
    fn wait_until_whole(&self) -> Result<(), SetupError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let whole = |info: &str| {
            info.contains("cluster_state:ok")
                && info.contains(&format!("cluster_slots_ok:{SLOTS}"))
                && info.contains(&format!("cluster_known_nodes:{MASTERS}"))
        };
        for node in &self.masters {
            let mut conn = redis::Client::open(node.url())
                .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(1)))
                .map_err(|cause| SetupError::RedisUnreachable {
                    url: node.url(),
                    cause,
                })?;
            loop {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut conn)
                    .unwrap_or_default();
                if whole(&info) {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(SetupError::ClusterNotReady {
                        info: info.trim().replace("\r\n", ", "),
                        log: log_tail(&node.dir().join("redis.log")),
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }
}
