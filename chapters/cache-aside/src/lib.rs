//! # Cache-aside
//!
//! The application keeps the cache *beside* the database and manages both itself:
//!
//! 1. **Read**: ask Redis first. On a hit, done. On a miss, load from the database, store the
//!    answer in Redis with a TTL, return it.
//! 2. **Write**: write the database, then *delete* the cache key. The next read loads the new row.
//!
//! That is the whole pattern, and most tutorials stop there. This crate goes on, one module per
//! way the short version fails in production, in the order the chapter tells them:
//!
//! - [`cached`]: a cached answer must be able to say "there is no such row" (or the database is
//!   asked again every time an absent id is requested), and an empty or zero value must still be a
//!   hit;
//! - [`settings`]: keys written together must not expire together (cache avalanche), "absent"
//!   answers should expire sooner than real ones, and no Redis call may wait long;
//! - [`cache`]: the pattern itself, typed through serde, with three defences: a Redis that is
//!   down or slow costs a bounded wait and falls back to the database ([`shared::budget`]), a corrupt entry is a miss
//!   that gets overwritten, and a *lease* stops a slow reader from writing back a row that a
//!   writer has already replaced;
//! - [`read_through`]: the same cache, owning its loader, so callers never see the database;
//! - [`users`]: an application's user store built on it, with invalidation on write and a
//!   multi-argument search under a hashed key.

#![warn(missing_docs)]

pub mod cached;
pub mod settings;

pub mod cache;
pub mod read_through;

pub mod users;

pub use cache::CacheAside;
pub use cached::Cached;
pub use read_through::{Loader, ReadThrough};
pub use settings::Settings;
pub use users::{UserSearch, Users};
