//! The source material's two-tier cache, as the counter-example.
//!
//! Its L1 is a dictionary of up to 1,000 entries in front of Redis: no lifetime, nothing that
//! tells it another instance wrote, and when it is full it drops the entry inserted first (a
//! Python dict iterates in insertion order, so "remove a random item" is FIFO). A write drops
//! the writer's own copy and the Redis key. Every *other* instance keeps serving the old value
//! for as long as the process lives, unless FIFO happens to push it out: the demo's "stale
//! reads" column.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use shared::Database;

use crate::catalog::{self, Item};
use crate::l2::L2;
use crate::metrics::{Layer, Metrics, Stats};
use crate::two_tier::{Read, ReadError};

/// A map that, when full, evicts the key inserted longest ago, however often it is read.
pub struct Fifo<V> {
    capacity: usize,
    entries: HashMap<i64, (V, u64)>,
    /// Keys in insertion order, each with the insertion it stands for; one whose entry was
    /// removed or inserted again since is skipped when it comes up.
    order: VecDeque<(i64, u64)>,
    inserted: u64,
}

impl<V: Clone> Fifo<V> {
    /// An empty map of at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Fifo {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
            inserted: 0,
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: i64) -> Option<V> {
        self.entries.get(&key).map(|(value, _)| value.clone())
    }

    /// Stores `value` under `key`, first evicting the oldest insertion if the map is full.
    pub fn insert(&mut self, key: i64, value: V) {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            while let Some((oldest, insertion)) = self.order.pop_front() {
                if self
                    .entries
                    .get(&oldest)
                    .is_some_and(|(_, i)| *i == insertion)
                {
                    self.entries.remove(&oldest);
                    break;
                }
            }
        }
        self.inserted += 1;
        self.entries.insert(key, (value, self.inserted));
        self.order.push_back((key, self.inserted));
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: i64) {
        self.entries.remove(&key);
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The source material's `TwoTierCache`, over the lesson's L2 and database.
pub struct SourceTwoTier {
    db: Arc<Database>,
    l1: Mutex<Fifo<Option<Item>>>,
    l2: L2,
    metrics: Arc<Metrics>,
}

impl SourceTwoTier {
    /// The source's L1 of `capacity` entries in front of `l2`.
    pub fn new(db: Arc<Database>, l2: L2, metrics: Arc<Metrics>, capacity: usize) -> Self {
        SourceTwoTier {
            db,
            l1: Mutex::new(Fifo::new(capacity)),
            l2,
            metrics,
        }
    }

    /// Item `id`: from the dictionary if it is there, whatever happened since it was put there.
    pub async fn item(&self, id: i64) -> Result<Read<Option<Item>>, ReadError> {
        if let Some(value) = self.l1.lock().expect("not poisoned").get(id) {
            self.metrics.answered(Layer::L1);
            return Ok(Read {
                value,
                layer: Layer::L1,
            });
        }
        let (value, layer) = self
            .l2
            .get_or_load(id, || catalog::item(&self.db, id))
            .await?;
        self.l1
            .lock()
            .expect("not poisoned")
            .insert(id, value.clone());
        self.metrics.answered(layer);
        Ok(Read { value, layer })
    }

    /// Commits a price, then drops the writer's own copy and the Redis key; nobody else hears.
    pub async fn set_price(&self, id: i64, price_cents: i64) -> Result<Option<Item>, sqlx::Error> {
        let committed = catalog::commit_price(&self.db, id, price_cents).await?;
        if committed.is_some() {
            self.forget(id).await;
        }
        Ok(committed)
    }

    /// After a commit that changed item `id`: drops the writer's own copy and the Redis key;
    /// nobody else hears. `false` if Redis did not take the delete.
    pub async fn forget(&self, id: i64) -> bool {
        self.l1.lock().expect("not poisoned").remove(id);
        self.l2.delete(id).await
    }

    /// What this instance counted so far.
    pub fn stats(&self) -> Stats {
        self.metrics.snapshot()
    }
}
