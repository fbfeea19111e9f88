//! How the demo measures staleness: what was committed when, and, after each write, how long
//! until every instance shows it.
//!
//! [`Committed`] holds every item's latest committed version and when each write returned; a
//! reading task asks it whether what it read was already out of date, and for how long. After
//! each write, [`fresh_after`] asks one instance for the item, again and again, until it shows the
//! committed version or newer: the time from the write's return to the start of the slowest
//! instance's first fresh read is the write's staleness.
//!
//! The invalidation lesson measures its strategies the same way (its `probe.rs`); this copy goes
//! once the probe lives in `shared`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use two_tier::AnyCache;

/// How long a probe keeps asking before it records "not within the run".
pub const GIVE_UP: Duration = Duration::from_secs(3);

/// The latest committed version of every item, and when each version's write returned.
pub struct Committed {
    versions: Vec<AtomicI64>,
    /// Per item, microseconds from the phase's start to the return of the write of version 2,
    /// 3, and so on: when each older version became out of date.
    returned_us: Vec<Mutex<Vec<u64>>>,
    start: Instant,
}

impl Committed {
    /// Items `1..=items`, all at version 1.
    pub fn new(items: u64) -> Self {
        Committed {
            versions: (0..=items).map(|_| AtomicI64::new(1)).collect(),
            returned_us: (0..=items).map(|_| Mutex::new(Vec::new())).collect(),
            start: Instant::now(),
        }
    }

    /// Records that the write of `version` of item `id` returned now.
    pub fn raise(&self, id: i64, version: i64) {
        let at = self.start.elapsed().as_micros() as u64;
        let mut returned = self.returned_us[id as usize].lock().expect("not poisoned");
        let index = (version - 2).max(0) as usize;
        if returned.len() <= index {
            returned.resize(index + 1, at);
        }
        self.versions[id as usize].fetch_max(version, Ordering::SeqCst);
    }

    /// Item `id`'s latest committed version.
    pub fn latest(&self, id: i64) -> i64 {
        self.versions[id as usize].load(Ordering::SeqCst)
    }

    /// How long before `now` version `seen` of item `id` became out of date: the return of the
    /// write of the version after it.
    pub fn outdated_for(&self, id: i64, seen: i64, now: Instant) -> Duration {
        let returned = self.returned_us[id as usize].lock().expect("not poisoned");
        let at = returned.get((seen - 1).max(0) as usize).copied();
        let now = now.duration_since(self.start);
        at.map_or(Duration::ZERO, |at| {
            now.saturating_sub(Duration::from_micros(at))
        })
    }
}

/// How long after `written` instance `cache` began the first read that showed version `version`
/// (or newer) of item `id`; `None` if none had by [`GIVE_UP`]. Tries again after 1 ms, doubling
/// up to 20 ms.
pub async fn fresh_after(
    cache: &AnyCache,
    id: i64,
    version: i64,
    written: Instant,
) -> Option<Duration> {
    let mut wait = Duration::from_millis(1);
    loop {
        let asked = written.elapsed();
        let read = cache.item(id).await.ok().and_then(|r| r.value);
        if read.is_some_and(|item| item.version >= version) {
            return Some(asked);
        }
        if written.elapsed() > GIVE_UP {
            return None;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(20));
    }
}
