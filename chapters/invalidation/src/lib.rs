//! # Invalidation
//!
//! A cached value is a copy, and after a write every copy is wrong until something removes it.
//! This crate builds each way of removing it, behind one interface ([`Strategy`]), and measures
//! the one number that matters: after a commit, for how long can some instance still read the
//! old value? In the order of the chapter:
//!
//! - [`catalog`] and [`keys`]: the rows (items, and the category listings that depend on many of
//!   them) and where each strategy caches them, a category per hash slot;
//! - [`cache`]: the read every strategy shares, cache-aside with a lease;
//! - [`ttl_only`]: nothing after a write; the TTL bounds the damage, and is every strategy's
//!   safety net;
//! - [`delete`]: delete after the commit, never before;
//! - [`events`]: copies in each instance's own memory, dropped by a broadcast, and what an
//!   at-most-once broadcast loses;
//! - [`generations`]: keys that carry a version, so one command retires a whole group;
//! - [`tags`]: dependency sets kept in Redis, expiring with what they track, walked atomically;
//! - [`pattern`]: `SCAN` + `UNLINK` by name, and why never `KEYS`;
//! - [`outbox`]: the invalidation committed with the write and relayed until Redis takes it;
//! - [`source`]: the source material's process-local dependency map, the counter-example;
//! - [`kind`]: all of them behind one type, for the demo and the tests, and what the demo's
//!   staleness probe ([`shared::staleness`]) asks each instance after a write.

#![warn(missing_docs)]

pub mod catalog;
pub mod keys;
pub mod settings;

pub mod cache;
pub mod strategy;

pub mod delete;
pub mod events;
pub mod generations;
pub mod outbox;
pub mod pattern;
pub mod source;
pub mod tags;
pub mod ttl_only;

pub mod kind;

pub use catalog::{Catalog, Item};
pub use kind::{AnyStrategy, Kind};
pub use settings::Settings;
pub use strategy::Strategy;
