//! # Exercise: exchange rates from an L1 that other instances can invalidate
//!
//! A payment service converts every price it shows, so it reads exchange rates on every request:
//! the perfect L1 case (a handful of keys, read thousands of times a second, changed a few times a
//! day). You build the L1 in front of the given Redis and database ([`Source`]), in three tasks:
//!
//! 1. an L1 with a lifetime and a size, whose misses share one fetch;
//! 2. a backplane: a change on one instance reaches every other instance's L1, and a lost
//!    subscription empties it;
//! 3. the in-flight race: a change heard while a fetch runs must not leave the fetched (old)
//!    value in L1.
//!
//! Run `cargo test -p two-tier-exercise task1` (then `task2`, `task3`) until they pass. The
//! tests are in `tests/suite/mod.rs`; the chapter is `book/src/two-tier.md`, the hints
//! `HINTS.md`.

#![warn(missing_docs)]

mod given;

use std::sync::Arc;

use moka::future::Cache;
use shared::pubsub::Event;

pub use given::{CURRENCIES, Heard, Rate, Settings, Source, create_rates, listen};

/// One application instance's exchange rates.
pub struct Rates {
    source: Source,
    l1: Cache<String, Rate>,
    // Task 3: add what you need here.
}

impl Rates {
    /// **Task 1.** The rates of the instance whose `source` this is, with an empty L1: a moka
    /// `future::Cache` that holds at most `settings.l1_capacity` rates, each served for
    /// `settings.l1_ttl` after it was stored (the L1 lifetime, not Redis's `l2_ttl`), however
    /// often it is read: a read does not extend a copy's life, or a rate read every second would
    /// never be fetched again.
    pub fn new(source: Source) -> Rates {
        let _ = source;
        todo!("task 1: build the L1")
    }

    /// **Task 1.** `currency`'s rate: from L1 if it holds it; otherwise fetched with
    /// [`Source::fetch`] and kept in L1. Concurrent misses of one currency in this instance share
    /// a single fetch: ten requests that arrive together make one fetch, and the other nine wait
    /// for its result. A failed fetch's error goes to every request that waited for it (hence the
    /// `Arc`), and nothing is kept.
    ///
    /// **Task 3.** If [`handle`](Self::handle) (or this instance's own
    /// [`set_rate`](Self::set_rate)) dropped this currency, or everything, while this call's
    /// fetch was running, the fetched rate may be old: return it to this caller, but do
    /// not leave it in L1. (Whether a change to *another* currency during the fetch also keeps it
    /// out of L1 is up to you: either is accepted.)
    pub async fn rate(&self, currency: &str) -> Result<Rate, Arc<sqlx::Error>> {
        let _ = currency;
        todo!("task 1: L1, else one shared fetch; task 3: not after an invalidation")
    }

    /// **Task 2.** Commits `micros_per_euro` as `currency`'s rate ([`Source::commit_rate`]). If a
    /// rate was committed, then, and only after the commit returned, in this order: delete
    /// Redis's copy ([`Source::forget`]), drop this instance's own copy from L1, and tell every
    /// other instance ([`Source::publish`] with the currency). The order matters: before the
    /// commit, a read refetches the old row and caches it again; a copy dropped, or an instance
    /// told, while Redis still holds the old rate refetches it from Redis. `forget` and
    /// `publish` are the only commands `set_rate` sends to Redis: the tests see exactly a `DEL`,
    /// then a `PUBLISH`. Returns the committed rate; `None` for an unknown currency (nothing
    /// else happens then: no command to Redis).
    ///
    /// **Task 3.** The copy `set_rate` drops counts as a drop too: a fetch of this instance that
    /// read the old rate before the commit must not leave it in L1 (see [`rate`](Self::rate)).
    pub async fn set_rate(
        &self,
        currency: &str,
        micros_per_euro: i64,
    ) -> Result<Option<Rate>, sqlx::Error> {
        let _ = (currency, micros_per_euro);
        todo!("task 2: commit, then forget, drop, publish")
    }

    /// **Task 2.** What the backplane heard ([`listen`] calls this for every event):
    ///
    /// - `Event::Message(payload)`: another instance changed the currency the payload names (its
    ///   UTF-8 text, e.g. `USD`): drop this instance's copy of it;
    /// - `Event::Missed`: the subscription was lost and made again, so any message may have been
    ///   missed: drop every copy.
    ///
    /// **Task 3.** Whatever this drops must also keep a fetch that is running at the time from
    /// leaving its value in L1 (see [`rate`](Self::rate)).
    pub async fn handle(&self, event: Event) {
        let _ = event;
        todo!("task 2: drop one copy or all of them")
    }
}
