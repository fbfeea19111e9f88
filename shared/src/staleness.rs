//! Measuring staleness: after a write returns, how long until every application instance serves
//! what it committed.
//!
//! A lesson about keeping copies in step (invalidation, two-tier) makes one claim above all: once
//! the writer was told "done", for how long could someone still read the old value? Two things
//! answer it, and both are here so that every lesson measures it the same way:
//!
//! - [`Committed`]: the latest committed version of every row, and when each version's write
//!   returned. A reader compares what it was served with [`Committed::latest`] to count a *stale
//!   read* (one that began after a newer version was committed and still returned an older one),
//!   and [`Committed::outdated_for`] says how long the version it got had been out of date.
//! - the *probe*: after each write returns, [`Probes::start`] asks every instance, again and
//!   again, until each serves the committed version or newer ([`fresh_after`]). The time from
//!   the write's return to the start of the slowest instance's first fresh read is the write's
//!   staleness; an instance that never did within the give-up time makes it "never".
//!
//! What "serves the version" means is the lesson's: [`Probed`] is the one question the probe asks
//! an instance (the item alone for two-tier; the item and its category's listing for
//! invalidation).
//!
//! Rows are numbered `1..=rows`, start at version 1 and gain one version per committed write, as
//! the seeded [`items`](crate::db::items) table does. Probing costs reads, so a probe waits between
//! tries, 1 ms at first and doubling up to 20 ms: a staleness of 3 ms is measured to within about
//! a millisecond, one of 800 ms to within 20.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::{JoinError, JoinHandle};

use crate::metrics::Latency;

/// The first wait between two tries of a probe.
const FIRST_WAIT: Duration = Duration::from_millis(1);
/// The longest wait between two tries.
const LONGEST_WAIT: Duration = Duration::from_millis(20);

/// The latest committed version of every row, and when each version's write returned.
pub struct Committed {
    versions: Vec<AtomicI64>,
    /// Per row, microseconds from `start` to the return of the write of version 2, 3, and so
    /// on: when each older version became out of date.
    returned_us: Vec<Mutex<Vec<u64>>>,
    start: Instant,
}

impl Committed {
    /// Rows `1..=rows`, all at version 1.
    pub fn new(rows: i64) -> Self {
        Committed {
            versions: (0..=rows).map(|_| AtomicI64::new(1)).collect(),
            returned_us: (0..=rows).map(|_| Mutex::new(Vec::new())).collect(),
            start: Instant::now(),
        }
    }

    /// Records that the write of version `version` of row `id` returned now.
    pub fn raise(&self, id: i64, version: i64) {
        let at = self.start.elapsed().as_micros() as u64;
        let mut returned = self.returned_us[id as usize].lock().expect("not poisoned");
        let index = (version - 2).max(0) as usize;
        if returned.len() <= index {
            returned.resize(index + 1, at);
        }
        self.versions[id as usize].fetch_max(version, Ordering::SeqCst);
    }

    /// Row `id`'s latest committed version.
    pub fn latest(&self, id: i64) -> i64 {
        self.versions[id as usize].load(Ordering::SeqCst)
    }

    /// How long before `now` version `seen` of row `id` became out of date: the return of the
    /// write of the version after it (zero if that write has not returned).
    pub fn outdated_for(&self, id: i64, seen: i64, now: Instant) -> Duration {
        let returned = self.returned_us[id as usize].lock().expect("not poisoned");
        let at = returned.get((seen - 1).max(0) as usize).copied();
        let now = now.duration_since(self.start);
        at.map_or(Duration::ZERO, |at| {
            now.saturating_sub(Duration::from_micros(at))
        })
    }
}

/// An application instance, as the probe sees it: the one question the probe asks it.
pub trait Probed: Send + Sync + 'static {
    /// Whether a read begun now serves version `version` of row `id`, or a newer one, wherever
    /// the lesson shows that row (the row alone, or the row and a list that holds it).
    fn serves(&self, id: i64, version: i64) -> impl Future<Output = bool> + Send;
}

// ANCHOR: fresh_after
/// How long after `written` `instance` began the first read that served version `version` (or
/// newer) of row `id`; `None` if none had by `give_up`.
pub async fn fresh_after<P: Probed>(
    instance: &P,
    id: i64,
    version: i64,
    written: Instant,
    give_up: Duration,
) -> Option<Duration> {
    let mut wait = FIRST_WAIT;
    loop {
        let asked = written.elapsed();
        if instance.serves(id, version).await {
            return Some(asked);
        }
        if written.elapsed() > give_up {
            return None;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(LONGEST_WAIT);
    }
}
// ANCHOR_END: fresh_after

/// The probes of one run: one per write, each asking every instance in the background while the
/// run goes on.
pub struct Probes<P> {
    instances: Vec<Arc<P>>,
    give_up: Duration,
    running: Vec<JoinHandle<Option<Duration>>>,
}

/// What the probes of a run measured.
#[derive(Clone)]
pub struct Staleness {
    /// Per write that every instance served in time: from its return until the slowest
    /// instance's first fresh read.
    pub took: Latency,
    /// Writes some instance still did not serve when its probe gave up.
    pub never: u64,
}

impl<P: Probed> Probes<P> {
    /// Probes that ask every one of `instances`, each giving up after `give_up`.
    pub fn new(instances: Vec<Arc<P>>, give_up: Duration) -> Self {
        Probes {
            instances,
            give_up,
            running: Vec::new(),
        }
    }

    /// Starts the probe of a write that returned just now, having committed version `version`
    /// of row `id`.
    pub fn start(&mut self, id: i64, version: i64) {
        let written = Instant::now();
        let instances = self.instances.clone();
        let give_up = self.give_up;
        self.running.push(tokio::spawn(async move {
            let each = instances
                .iter()
                .map(|i| fresh_after(&**i, id, version, written, give_up));
            let fresh = futures_util::future::join_all(each).await;
            // The slowest instance decides; one that never served it makes it "never".
            fresh
                .into_iter()
                .try_fold(Duration::ZERO, |a, b| Some(a.max(b?)))
        }));
    }

    /// Waits for every probe to finish: the staleness of every write.
    pub async fn finish(self) -> Result<Staleness, JoinError> {
        let mut took = Latency::default();
        let mut never = 0;
        for probe in self.running {
            match probe.await? {
                Some(after) => took.record(after),
                None => never += 1,
            }
        }
        Ok(Staleness { took, never })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    /// An instance that serves the committed version from its `fresh_from`-th read on.
    struct Lagging {
        reads: AtomicU64,
        fresh_from: u64,
    }

    impl Probed for Lagging {
        async fn serves(&self, _id: i64, _version: i64) -> bool {
            self.reads.fetch_add(1, Ordering::SeqCst) + 1 >= self.fresh_from
        }
    }

    fn lagging(fresh_from: u64) -> Arc<Lagging> {
        Arc::new(Lagging {
            reads: AtomicU64::new(0),
            fresh_from,
        })
    }

    #[test]
    fn committed_keeps_the_latest_version_and_when_it_returned() {
        let committed = Committed::new(3);
        assert_eq!(committed.latest(2), 1, "every row starts at version 1");
        committed.raise(2, 3);
        committed.raise(2, 2);
        assert_eq!(
            committed.latest(2),
            3,
            "an older write returning later lowers nothing"
        );
        let later = Instant::now() + Duration::from_secs(5);
        assert!(
            committed.outdated_for(2, 1, later) >= Duration::from_secs(5),
            "version 1 has been out of date since version 2's write returned"
        );
        assert_eq!(
            committed.outdated_for(2, 3, later),
            Duration::ZERO,
            "the latest version is not out of date"
        );
    }

    #[tokio::test]
    async fn the_slowest_instance_decides_and_one_that_never_serves_counts_as_never() {
        let mut probes = Probes::new(vec![lagging(1), lagging(3)], Duration::from_secs(60));
        probes.start(1, 2);
        let staleness = probes.finish().await.unwrap();
        assert_eq!(staleness.never, 0, "both instances served the write");
        assert_eq!(
            staleness.took.summary().count,
            1,
            "one write, one staleness"
        );

        let mut probes = Probes::new(vec![lagging(1), lagging(u64::MAX)], Duration::ZERO);
        probes.start(1, 2);
        let staleness = probes.finish().await.unwrap();
        assert_eq!(staleness.never, 1, "one instance never served the write");
        assert_eq!(
            staleness.took.summary().count,
            0,
            "a write never served has no time"
        );
    }
}
