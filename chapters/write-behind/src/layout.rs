//! Where everything lives in Redis, and why it is grouped by hash slot.
//!
//! A write must reach the cache and the queue together, in one script, and on a Redis Cluster a
//! script may only touch keys of one hash slot. So the players are split into `shards`, and each
//! shard's keys share one hash tag, `{wb-3}`, and so one slot:
//!
//! - `...{wb-3}:score:42`: player 42's cached score, a hash `{points, version}`;
//! - `...{wb-3}:queue`: the shard's queue, a Redis Stream of writes not yet in the database;
//! - `...{wb-3}:versions`: the last version handed out per player of the shard (see
//!   [`crate::write`] for why it outlives the cached scores);
//! - `...{wb-3}:dead`: the shard's dead letters, entries the database refused too often.
//!
//! On a cluster the shards spread over the masters; on one server they are just four queues.

use shared::Namespace;

/// The consumer group every flusher reads the queues in.
pub const GROUP: &str = "flushers";

/// The names of the lesson's keys, for one run's namespace.
#[derive(Clone, Debug)]
pub struct Layout {
    namespace: Namespace,
    shards: u16,
}

impl Layout {
    /// The keys of `namespace`, with players spread over `shards` queues.
    pub fn new(namespace: Namespace, shards: u16) -> Self {
        assert!(shards > 0, "at least one shard");
        Layout { namespace, shards }
    }

    /// The namespace's prefix, for another process to [adopt](Namespace::adopt).
    pub fn namespace_prefix(&self) -> String {
        self.namespace.prefix().to_string()
    }

    /// How many shards there are.
    pub fn shards(&self) -> u16 {
        self.shards
    }

    /// The shard player `player` belongs to, forever (its writes must stay in one queue to
    /// stay in order).
    pub fn shard(&self, player: i64) -> u16 {
        player.rem_euclid(i64::from(self.shards)) as u16
    }

    /// The prefix every key of `shard` starts with: the namespace and the shard's hash tag.
    fn slot(&self, shard: u16) -> String {
        self.namespace.key(&format!("wb-{shard}"))
    }

    /// Player `player`'s cached score.
    pub fn score(&self, player: i64) -> String {
        format!("{}:score:{player}", self.slot(self.shard(player)))
    }

    /// The queue of `shard`.
    pub fn queue(&self, shard: u16) -> String {
        format!("{}:queue", self.slot(shard))
    }

    /// The version register of `shard`.
    pub fn versions(&self, shard: u16) -> String {
        format!("{}:versions", self.slot(shard))
    }

    /// The dead letters of `shard`.
    pub fn dead(&self, shard: u16) -> String {
        format!("{}:dead", self.slot(shard))
    }
}
