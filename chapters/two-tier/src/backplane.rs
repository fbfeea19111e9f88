//! The backplane: how a write on one instance reaches every other instance's L1.
//!
//! Nothing in Redis can reach into another process's memory, so after its commit a writer
//! publishes the item's id on a channel every instance subscribes to, and each drops its copy.
//! Pub/sub is **at most once**: a subscriber whose connection dropped misses every message sent
//! until it has resubscribed, and nobody tells it which. So the subscription reports that it
//! reconnected ([`Event::Missed`]) and the instance drops its whole L1; until it notices, the L1
//! lifetime bounds what it serves.

use std::sync::Arc;

use redis::AsyncCommands;
use shared::pubsub::{Event, Subscription};
use shared::worker::Worker;
use shared::{Instance, Namespace, RedisConn, budget};

use crate::catalog::Item;
use crate::l1::L1;
use crate::metrics::Metrics;
use crate::settings::Settings;

/// One instance's end of the backplane: its subscription, and the task that applies what it
/// hears to the L1.
pub struct Backplane {
    channel: String,
    subscription: Subscription,
    _listener: Worker,
}

impl Backplane {
    /// Subscribes `instance` to the run's channel, dropping from `l1` every item announced on it,
    /// and everything when messages may have been lost.
    pub async fn join(
        instance: &Instance,
        namespace: &Namespace,
        l1: Arc<L1<Option<Item>>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let channel = namespace.key("invalidations");
        let subscription = instance.subscribe(&channel).await;
        let listener = subscription.handle_each("backplane listener", move |event| {
            let (l1, metrics) = (l1.clone(), metrics.clone());
            async move {
                match event {
                    Event::Message(payload) => {
                        metrics.invalidations.inc();
                        let id = std::str::from_utf8(&payload)
                            .ok()
                            .and_then(|s| s.parse().ok());
                        match id {
                            Some(id) => l1.invalidate(id).await,
                            None => {
                                // Not ours to read: safer to assume anything changed.
                                l1.flush();
                                metrics.flushes.inc();
                            }
                        }
                    }
                    Event::Missed => {
                        l1.flush();
                        metrics.flushes.inc();
                    }
                }
            }
        });
        Backplane {
            channel,
            subscription,
            _listener: listener,
        }
    }

    /// Tells every instance that item `id` changed. Whether Redis took the message; if not,
    /// (counted in `metrics`) the other instances' copies live out their L1 lifetime.
    pub async fn announce(
        &self,
        conn: &RedisConn,
        id: i64,
        settings: &Settings,
        metrics: &Metrics,
    ) -> bool {
        let mut conn = conn.clone();
        let publish = conn.publish::<_, _, i64>(&self.channel, id.to_string());
        budget::within(settings.redis_timeout, &metrics.redis_errors, publish)
            .await
            .is_some()
    }

    /// How many times the subscription was lost and made again.
    pub fn reconnects(&self) -> u64 {
        self.subscription.reconnects()
    }
}
