//! # Solution: exchange rates from an L1 that other instances can invalidate
//!
//! The worked answer to `exercises/two-tier`. Read the exercise first: the task descriptions are
//! the same here, the given parts are the exercise's own `given.rs`, included as it is, and only
//! the task bodies are filled in.
//!
//! The classic mistakes live beside this answer, not in it: each file in `mistakes/` is a patch
//! that plants one, with a note on what it breaks. CI applies each and checks that the exercise's
//! suite fails. To watch one fail: `git apply solutions/two-tier/mistakes/<name>.patch`, run
//! `cargo test -p two-tier-solution`, then `git apply -R` the same file.

#![warn(missing_docs)]

#[path = "../../../exercises/two-tier/src/given.rs"]
mod given;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use moka::future::Cache;
use shared::pubsub::Event;

pub use given::{CURRENCIES, Heard, Rate, Settings, Source, create_rates, listen};

/// One application instance's exchange rates.
pub struct Rates {
    source: Source,
    l1: Cache<String, Rate>,
    /// Raised by every drop, before it drops: a fetch that sees it moved was overtaken.
    generation: AtomicU64,
}

impl Rates {
    /// **Task 1.** The rates of the instance whose `source` this is, with an empty L1: a moka
    /// `future::Cache` that holds at most `settings.l1_capacity` rates, each served for
    /// `settings.l1_ttl` after it was stored (the L1 lifetime, not Redis's `l2_ttl`), however
    /// often it is read: a read does not extend a copy's life, or a rate read every second would
    /// never be fetched again.
    pub fn new(source: Source) -> Rates {
        let settings = source.settings();
        let l1 = Cache::builder()
            .max_capacity(settings.l1_capacity)
            .time_to_live(settings.l1_ttl)
            .build();
        Rates {
            source,
            l1,
            generation: AtomicU64::new(0),
        }
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
        let started = self.generation.load(Ordering::SeqCst);
        let rate = self
            .l1
            .try_get_with(currency.to_string(), self.source.fetch(currency))
            .await?;
        // Checked after the store: a drop that came before it raised the generation first.
        if self.generation.load(Ordering::SeqCst) != started {
            self.l1.invalidate(currency).await;
        }
        Ok(rate)
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
        let committed = self.source.commit_rate(currency, micros_per_euro).await?;
        if committed.is_some() {
            self.source.forget(currency).await;
            self.drop_one(currency).await;
            self.source.publish(currency).await;
        }
        Ok(committed)
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
        match event {
            Event::Message(payload) => match std::str::from_utf8(&payload) {
                Ok(currency) => self.drop_one(currency).await,
                Err(_) => self.drop_all(),
            },
            Event::Missed => self.drop_all(),
        }
    }

    /// Drops `currency`'s copy, raising the generation first.
    async fn drop_one(&self, currency: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.l1.invalidate(currency).await;
    }

    /// Drops every copy, raising the generation first.
    fn drop_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.l1.invalidate_all();
    }
}
