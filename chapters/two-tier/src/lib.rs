//! # Two-tier caching
//!
//! A Redis hit costs a network round trip; a hit in the application's own memory costs well under
//! a microsecond. So the hottest keys belong in an in-process L1 in front of Redis (L2). The
//! hard part is not the lookup, it is the promise: after a write on one instance, how long can
//! another instance's L1 still serve the old value? This crate builds an L1 that keeps a stated
//! bound, in the order of the chapter:
//!
//! - [`catalog`] and [`settings`]: the rows, and the sizes and lifetimes every promise rests on;
//! - [`l2`]: Redis, read cache-aside with a lease, as in the cache-aside lesson;
//! - [`l1`]: moka, bounded with TinyLFU, each entry with its own lifetime, and generations so an
//!   invalidation that overtakes a load wins;
//! - [`backplane`]: a write announced on a channel, a lost connection answered with a flush;
//! - [`two_tier`]: the layers together, with concurrent misses coalesced and a fail-safe for
//!   when Redis and the database both fail; [`metrics`]: which layer answered;
//! - [`source`]: the source material's dictionary L1, the counter-example;
//! - [`aside`]: Redis only, and Redis's own client-side caching (tracking), the alternatives;
//! - [`kind`]: all four behind one type; [`eviction`]: FIFO, LRU and TinyLFU, and Redis's
//!   `allkeys-lru` against `allkeys-lfu`, measured on one trace.

#![warn(missing_docs)]

pub mod catalog;
pub mod settings;

pub mod l2;

pub mod l1;
pub mod metrics;

pub mod backplane;
pub mod two_tier;

pub mod aside;
pub mod source;

pub mod eviction;
pub mod kind;

pub use catalog::Item;
pub use kind::{AnyCache, Kind};
pub use metrics::{Layer, Stats};
pub use settings::Settings;
pub use two_tier::{Read, ReadError, TwoTier};
