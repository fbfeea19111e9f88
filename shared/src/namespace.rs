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

use redis::AsyncCommands;
use redis::aio::ConnectionManager;

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

    /// Every key of this namespace now in Redis, found with `SCAN`.
    pub async fn keys(&self, conn: &mut ConnectionManager) -> redis::RedisResult<Vec<String>> {
        let pattern = self.pattern();
        let mut found = Vec::new();
        let mut iter = conn.scan_match::<_, String>(pattern).await?;
        while let Some(key) = iter.next_item().await {
            found.push(key?);
        }
        Ok(found)
    }

    /// Removes every key of this namespace and returns how many there were.
    pub async fn remove_all(&self, conn: &mut ConnectionManager) -> redis::RedisResult<usize> {
        let keys = self.keys(conn).await?;
        for batch in keys.chunks(500) {
            let _: () = conn.unlink(batch).await?;
        }
        Ok(keys.len())
    }
}
