//! # Cache stampede
//!
//! A hot key expires. Until somebody has rebuilt it, every request for it misses, and every miss
//! goes to the database: a thousand requests in the 100 ms a rebuild takes are a thousand copies
//! of the same expensive query, arriving at the moment the cache stopped protecting the database.
//! That is a *cache stampede* (also "thundering herd" or "dog-piling").
//!
//! This crate shows five answers behind one interface, in the order the chapter tells them:
//!
//! - [`source`]: what is being protected, a slow computation behind a key;
//! - [`strategy`]: the interface every answer implements, with its counters; [`settings`], the
//!   settings they share; and [`cache`], the Redis plumbing they share (typed, bounded by a
//!   timeout, corrupt means miss);
//! - [`unprotected`]: plain cache-aside, the baseline that stampedes;
//! - [`single_flight`]: concurrent misses *inside one process* share one load;
//! - [`token_lock`], [`wakeup`] and [`locked_loader`]: concurrent misses *across all processes*
//!   share one load. The token lock is the primitive, a Redis lock only its owner can release;
//!   the wake-ups tell waiters the value has arrived, rather than having them poll for it; the
//!   locked loader is the strategy built from the two;
//! - [`xfetch`]: probabilistic early recomputation, which refreshes a hot key shortly *before* it
//!   expires, so under steady traffic it never expires at all;
//! - [`stale`]: stale-while-revalidate, which keeps serving the old value while one background
//!   task fetches the new one;
//! - [`kind`]: all five behind one type, for the demo, the tests and the benches that compare
//!   them.

#![warn(missing_docs)]

pub mod source;

pub mod cache;
pub mod settings;
pub mod strategy;

pub mod unprotected;

pub mod single_flight;

pub mod locked_loader;
pub mod token_lock;
pub mod wakeup;

pub mod xfetch;

pub mod stale;

pub mod kind;

pub use kind::{AnyStrategy, Kind};
pub use locked_loader::LockedLoader;
pub use settings::Settings;
pub use single_flight::SingleFlight;
pub use source::{LoadError, ProductPages, Source};
pub use stale::StaleWhileRevalidate;
pub use strategy::{Error, Stats, Strategy};
pub use unprotected::Unprotected;
pub use xfetch::XFetch;
