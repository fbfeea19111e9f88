//! L2: Redis, read cache-aside with a lease, exactly as in the cache-aside lesson.
//!
//! Redis is shared by every instance, so a value loaded once serves them all. A miss takes the
//! key's lease before loading and stores only if the lease survived, so a reader that loaded
//! before a write cannot store its old row after the write deleted the key ([`shared::lease`]).
//! Redis trouble is a miss answered by the database, an unreadable entry a miss that gets
//! overwritten: the cache is an optimisation, never a reason to fail a request.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::budget::{self, Trouble};
use shared::lease::{Answered, Leases, with_leases};
use shared::{Namespace, RedisConn};

use crate::metrics::{Layer, Metrics};
use crate::settings::Settings;

/// One instance's view of Redis.
pub struct L2 {
    conn: RedisConn,
    namespace: Namespace,
    leases: Leases,
    ttl: Duration,
    budget: Duration,
    metrics: Arc<Metrics>,
}

impl L2 {
    /// Redis through `conn`, keys under `namespace`, counting into `metrics`.
    pub fn new(
        conn: RedisConn,
        namespace: Namespace,
        settings: &Settings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let leases = Leases::new(conn.clone(), settings.lease_ttl, settings.redis_timeout);
        L2 {
            conn,
            namespace,
            leases,
            ttl: settings.l2_ttl,
            budget: settings.redis_timeout,
            metrics,
        }
    }

    /// The Redis key of item `id`: its own hash slot, shared with its lease.
    pub fn key(&self, id: i64) -> String {
        self.namespace.key(&shared::keys::entity("item", id))
    }

    /// The connection, for the backplane's `PUBLISH`.
    pub fn conn(&self) -> RedisConn {
        self.conn.clone()
    }

    /// Where a failed Redis call is counted.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Item `id`'s value from Redis, else from `load` (stored if the lease survived); and which of
    /// the two answered.
    pub async fn get_or_load<T, F, Fut>(&self, id: i64, load: F) -> Result<(T, Layer), sqlx::Error>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let trouble = Trouble {
            errors: &self.metrics.redis_errors,
            corrupt: &self.metrics.corrupt,
        };
        let key = self.key(id);
        let (value, answered) = self
            .leases
            .get_or_load(&key, self.ttl, trouble, load)
            .await?;
        let layer = match answered {
            Answered::Cache => Layer::L2,
            Answered::Loader => Layer::Database,
        };
        Ok((value, layer))
    }

    /// Deletes item `id`'s key and its lease: after a write, the next reader loads the new row,
    /// and one that loaded the old row before cannot store it. Whether Redis did it.
    pub async fn delete(&self, id: i64) -> bool {
        let mut conn = self.conn.clone();
        let deleted = conn.del::<_, ()>(with_leases(&[self.key(id)]));
        budget::within(self.budget, &self.metrics.redis_errors, deleted)
            .await
            .is_some()
    }
}
