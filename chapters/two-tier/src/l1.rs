//! L1: the instance's own memory, bounded, expiring, and undone by invalidations.
//!
//! Three things separate this L1 from a dictionary in front of Redis (the source material's):
//!
//! - **bounded by size, with an admission policy**: moka keeps at most `l1_capacity` entries and
//!   evicts with TinyLFU, which keeps a key only if it is asked for more often than the one it
//!   would push out, so a one-off scan of cold keys cannot flush the hot ones;
//! - **two lifetimes per entry**: a copy is *fresh* for `l1_ttl`, the bound for an instance that
//!   missed an invalidation, and after that is served only by the **fail-safe**: when the load
//!   that should replace it fails (Redis and the database both down), the old value is served,
//!   marked as such, for `fail_safe_throttle` before the next try, until `fail_safe_max_age`
//!   after it was loaded, when moka drops it;
//! - **generations**: every invalidation raises a counter before it removes the entry, and a
//!   load compares the counter after storing what it loaded. If it moved, an invalidation
//!   overtook the load, and the load removes what it stored. Either the invalidation's removal
//!   comes after the store (and removes it), or its raise came before the load's check (and the
//!   load removes it): no order of the two leaves the old value in L1.
//!
//! The counters are *striped*: 64 of them, a key using the one its id picks. One counter for all
//! keys would make every write undo the loads of every other key in flight; one per key would
//! grow with the keys. A shared stripe costs at worst a load that is not kept.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use moka::ops::compute::{CompResult, Op};

use crate::metrics::Layer;
use crate::settings::Settings;

/// What L1 holds for a key.
#[derive(Clone, Debug)]
pub struct LocalCopy<V> {
    /// The value.
    pub value: V,
    /// Where it was found when it was loaded; [`Layer::FailSafe`] once it is served because
    /// nothing else answered.
    pub layer: Layer,
    /// Until when a read may take it without asking further.
    fresh_until: Instant,
    /// When moka drops it: `fail_safe_max_age` after it was loaded.
    expires_at: Instant,
}

impl<V> LocalCopy<V> {
    /// Whether a read may take it now.
    pub fn is_fresh(&self) -> bool {
        Instant::now() < self.fresh_until
    }
}

/// What [`L1::get_or_fetch`] did for one caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fetch {
    /// Another caller fetched the key while this one waited its turn; this one took that
    /// entry.
    Waited,
    /// This caller fetched, and L1 keeps what it fetched.
    Kept,
    /// This caller fetched, but an invalidation overtook it: the entry was removed again.
    Undone,
    /// The fetch failed, and the old value was served instead (and kept for the throttle).
    FailSafe,
}

/// Drops each entry when its maximum age has passed.
struct MaximumAge;

impl<V> Expiry<i64, LocalCopy<V>> for MaximumAge {
    fn expire_after_create(&self, _: &i64, entry: &LocalCopy<V>, now: Instant) -> Option<Duration> {
        Some(entry.expires_at.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _: &i64,
        entry: &LocalCopy<V>,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.expires_at.saturating_duration_since(now))
    }
}

/// How many generation counters the keys share.
const STRIPES: usize = 64;

/// Counters raised by invalidations, so a load can tell whether one overtook it.
struct Generations {
    stripes: [AtomicU64; STRIPES],
    /// Raised by a flush, which overtakes every load.
    everything: AtomicU64,
}

impl Generations {
    fn stripe(&self, id: i64) -> &AtomicU64 {
        &self.stripes[id.rem_euclid(STRIPES as i64) as usize]
    }

    /// Key `id`'s generation now. Both counters only rise, so the sum changes exactly when
    /// either does.
    fn of(&self, id: i64) -> u64 {
        self.stripe(id).load(Ordering::SeqCst) + self.everything.load(Ordering::SeqCst)
    }
}

/// One instance's own copies.
pub struct L1<V> {
    entries: Cache<i64, LocalCopy<V>>,
    generations: Generations,
    fresh_for: Duration,
    max_age: Duration,
    throttle: Duration,
}

impl<V: Clone + Send + Sync + 'static> L1<V> {
    /// An empty L1, as big and as patient as `settings` say.
    pub fn new(settings: &Settings) -> Self {
        L1 {
            entries: Cache::builder()
                .max_capacity(settings.l1_capacity)
                .expire_after(MaximumAge)
                .build(),
            generations: Generations {
                stripes: std::array::from_fn(|_| AtomicU64::new(0)),
                everything: AtomicU64::new(0),
            },
            fresh_for: settings.l1_ttl,
            max_age: settings.fail_safe_max_age.max(settings.l1_ttl),
            throttle: settings.fail_safe_throttle,
        }
    }

    /// The entry for `id`, if L1 holds a fresh one.
    pub async fn get(&self, id: i64) -> Option<LocalCopy<V>> {
        self.entries.get(&id).await.filter(LocalCopy::is_fresh)
    }

    /// The entry for `id`: a fresh one from L1, or what `fetch` finds (with the layer that
    /// answered). Callers for one key take turns (moka's per-key lock), so while one fetches the
    /// others wait, and find its entry fresh when their turn comes. If `fetch` fails, the old
    /// value, if L1 still has one, is served instead. An invalidation that arrives while `fetch`
    /// runs removes what it stored.
    pub async fn get_or_fetch(
        &self,
        id: i64,
        fetch: impl Future<Output = Result<(V, Layer), sqlx::Error>>,
    ) -> Result<(LocalCopy<V>, Fetch), sqlx::Error> {
        let started = self.generations.of(id);
        let mut done = Fetch::Waited;
        let computed = self
            .entries
            .entry(id)
            .and_try_compute_with(|current| async {
                let current = current.map(|entry| entry.into_value());
                if current.as_ref().is_some_and(LocalCopy::is_fresh) {
                    return Ok(Op::Nop); // another caller fetched it while this one waited
                }
                match fetch.await {
                    Ok((value, layer)) => {
                        done = Fetch::Kept;
                        Ok(Op::Put(self.fresh(value, layer)))
                    }
                    Err(error) => match current {
                        Some(old) => {
                            done = Fetch::FailSafe;
                            Ok(Op::Put(self.fail_safe(old)))
                        }
                        None => Err(error),
                    },
                }
            })
            .await?;
        let entry = match computed {
            CompResult::Inserted(entry)
            | CompResult::ReplacedWith(entry)
            | CompResult::Unchanged(entry) => entry.into_value(),
            CompResult::StillNone(_) | CompResult::Removed(_) => {
                unreachable!("a turn that succeeds leaves an entry")
            }
        };
        // ANCHOR: undone
        if done == Fetch::Kept && self.generations.of(id) != started {
            self.entries.invalidate(&id).await;
            done = Fetch::Undone;
        }
        // ANCHOR_END: undone
        Ok((entry, done))
    }

    /// A value just found in `layer`: fresh for the L1 lifetime, kept for the fail-safe up to the
    /// maximum age.
    fn fresh(&self, value: V, layer: Layer) -> LocalCopy<V> {
        let now = Instant::now();
        LocalCopy {
            value,
            layer,
            fresh_until: now + self.fresh_for,
            expires_at: now + self.max_age,
        }
    }

    /// `old`, served by the fail-safe: fresh again for the throttle, so the failing layers are
    /// asked once per throttle, not once per request; its maximum age unchanged.
    fn fail_safe(&self, old: LocalCopy<V>) -> LocalCopy<V> {
        LocalCopy {
            layer: Layer::FailSafe,
            fresh_until: Instant::now() + self.throttle,
            ..old
        }
    }

    /// Drops `id`. The generation is raised first, so a load in flight will not keep what it
    /// loaded.
    // ANCHOR: invalidate
    pub async fn invalidate(&self, id: i64) {
        self.generations.stripe(id).fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate(&id).await;
    }
    // ANCHOR_END: invalidate

    /// Drops every copy: after a lost connection to the backplane, any of them may be old, so
    /// none is kept even for the fail-safe.
    pub fn flush(&self) {
        self.generations.everything.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate_all();
    }

    /// How many entries L1 holds (fresh or kept for the fail-safe), once moka has done its
    /// pending work.
    pub async fn len(&self) -> u64 {
        self.entries.run_pending_tasks().await;
        self.entries.entry_count()
    }

    /// Whether L1 holds nothing.
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }
}
