//! Per-run key namespaces.
//!
//! Tests run in parallel against one server, and a learner may point the course at a Redis that
//! holds their own data. So every key a lesson writes starts with a prefix unique to the run,
//! `course:<lesson>:<run id>:`, and a run cleans up after itself with `SCAN` and `UNLINK`, never
//! with `FLUSHDB` or `KEYS`: `KEYS` walks the whole keyspace in one blocking call, `SCAN` walks
//! it in small steps that let other clients in between, and `UNLINK` frees memory off the main
//! thread.
//!
//! The lesson's own part of a key is wrapped in braces, a Redis Cluster *hash tag*:
//! `course:cache-aside:1f2e3d4c:{user:42}`. Cluster places a key by the text inside its first
//! braces only, so a key and the keys derived from it (`...{user:42}:lease`) share a slot and one
//! script or transaction may touch them together, on a cluster as on a single server.
//!
//! On a cluster every master holds a part of the keyspace and `SCAN` walks only the node it is
//! sent to, so clean-up scans every master in turn, and removes keys one per `UNLINK`: the keys
//! of one run live in many slots, and a multi-key command across slots fails with `CROSSSLOT`.

use redis::AsyncCommands;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};

use crate::connection::{RedisConn, masters};

/// The prefix every key of one run (or one part of a run) carries.
#[derive(Clone, Debug)]
pub struct Namespace {
    prefix: String,
}

impl Namespace {
    /// A fresh namespace for one run of `lesson`.
    pub fn new(lesson: &str) -> Self {
        let run: u32 = rand::random();
        Namespace {
            prefix: format!("course:{lesson}:{run:08x}:"),
        }
    }

    /// The namespace another process of the same run made, from its [`prefix`](Self::prefix):
    /// how a child process works on its parent's keys.
    pub fn adopt(prefix: &str) -> Self {
        Namespace {
            prefix: prefix.to_string(),
        }
    }

    /// The prefix every key of this namespace starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A namespace inside this one, e.g. one per strategy a demo compares. Its keys carry this
    /// namespace's prefix too, so removing this namespace's keys removes the child's.
    pub fn child(&self, name: &str) -> Self {
        Namespace {
            prefix: format!("{}{name}:", self.prefix),
        }
    }

    /// The full key for the lesson's own key `local`, e.g. `user:42`.
    pub fn key(&self, local: &str) -> String {
        format!("{}{{{local}}}", self.prefix)
    }

    /// The `SCAN` pattern that matches every key of this namespace, e.g. `course:demo:1f2e3d4c:*`.
    pub fn pattern(&self) -> String {
        format!("{}*", self.prefix)
    }

    /// Every key of this namespace now in Redis, found with `SCAN` (on every master of a
    /// cluster).
    pub async fn keys(&self, conn: &mut RedisConn) -> redis::RedisResult<Vec<String>> {
        let pattern = self.pattern();
        let mut found = Vec::new();
        match conn {
            RedisConn::Server(conn) => {
                let mut iter = conn.scan_match::<_, String>(pattern).await?;
                while let Some(key) = iter.next_item().await {
                    found.push(key?);
                }
            }
            RedisConn::Cluster(conn) => {
                for (host, port) in masters(conn).await? {
                    let node =
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
                    let mut cursor = 0u64;
                    loop {
                        let scan = scan_page(cursor, &pattern, 500);
                        let reply = conn.route_command(scan, node.clone()).await?;
                        let (next, keys): (u64, Vec<String>) = redis::from_redis_value(reply)?;
                        found.extend(keys);
                        cursor = next;
                        if cursor == 0 {
                            break;
                        }
                    }
                }
            }
        }
        Ok(found)
    }

    /// Removes every key of this namespace and returns how many there were.
    pub async fn remove_all(&self, conn: &mut RedisConn) -> redis::RedisResult<usize> {
        Ok(unlink_matching(conn, &self.pattern(), 500).await?.keys)
    }
}

/// What a streamed pattern delete did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unlinked {
    /// Keys deleted.
    pub keys: usize,
    /// `SCAN` calls made, over every master.
    pub scans: usize,
    /// `UNLINK` calls made.
    pub unlinks: usize,
    /// The most keys held at once: one page.
    pub largest_page: usize,
}

// ANCHOR: unlink_matching
/// Deletes every key matching `pattern`, one `SCAN` page at a time (`COUNT count`), on every
/// master of a cluster. Each page is unlinked before the next is asked for, so the memory held
/// is one page however many keys match, and other clients' commands run between pages.
pub async fn unlink_matching(
    conn: &mut RedisConn,
    pattern: &str,
    count: usize,
) -> redis::RedisResult<Unlinked> {
    let mut done = Unlinked::default();
    match conn {
        RedisConn::Server(server) => {
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = scan_page(cursor, pattern, count)
                    .query_async(server)
                    .await?;
                done.scans += 1;
                if !keys.is_empty() {
                    let _: () = server.unlink(&keys).await?;
                    done.unlinks += 1;
                }
                done.record_page(keys.len());
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        // One key per UNLINK: the keys of a page live in many slots.
        RedisConn::Cluster(cluster) => {
            for (host, port) in masters(cluster).await? {
                let node = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
                let mut cursor = 0u64;
                loop {
                    let page = scan_page(cursor, pattern, count);
                    let reply = cluster.route_command(page, node.clone()).await?;
                    let (next, keys): (u64, Vec<String>) = redis::from_redis_value(reply)?;
                    done.scans += 1;
                    for key in &keys {
                        let _: () = cluster.unlink(key).await?;
                        done.unlinks += 1;
                    }
                    done.record_page(keys.len());
                    cursor = next;
                    if cursor == 0 {
                        break;
                    }
                }
            }
        }
    }
    Ok(done)
}
// ANCHOR_END: unlink_matching

impl Unlinked {
    fn record_page(&mut self, keys: usize) {
        self.keys += keys;
        self.largest_page = self.largest_page.max(keys);
    }
}

/// `SCAN cursor MATCH pattern COUNT count`.
fn scan_page(cursor: u64, pattern: &str, count: usize) -> redis::Cmd {
    let mut scan = redis::cmd("SCAN");
    scan.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(count);
    scan
}
