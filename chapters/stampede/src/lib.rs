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
//! - [`strategy`]: the interface every answer implements, with its settings and counters, and
//!   [`cache`], the Redis plumbing they share (typed, bounded by a timeout, corrupt means miss);
//! - [`unprotected`]: plain cache-aside, the baseline that stampedes;
//! - [`single_flight`]: concurrent misses *inside one process* share one load;
//! - [`lock`], [`wakeup`] and [`locked`]: concurrent misses *across all processes* share one
//!   load, through a Redis lock only its owner can release, with waiters woken when the value
//!   arrives rather than polling for it;
//! - [`xfetch`]: probabilistic early recomputation, which refreshes a hot key shortly *before* it
//!   expires, so under steady traffic it never expires at all;
//! - [`stale`]: stale-while-revalidate, which keeps serving the old value while one background
//!   task fetches the new one.

pub mod source;

pub mod cache;
pub mod strategy;

pub mod unprotected;

pub mod single_flight;

pub mod lock;
pub mod locked;
pub mod wakeup;

pub mod xfetch;

pub mod stale;

pub use locked::LockedLoader;
pub use single_flight::SingleFlight;
pub use source::{LoadError, ProductPages, Source};
pub use stale::StaleWhileRevalidate;
pub use strategy::{Error, Policy, Stats, Strategy};
pub use unprotected::Unprotected;
pub use xfetch::XFetch;
