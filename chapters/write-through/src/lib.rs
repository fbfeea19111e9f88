//! # Write-through
//!
//! Every write goes to the database *and* to the cache, so the cache always holds what the
//! database holds and reads always hit. That is the promise. The textbook version, "write the
//! row, then set the key", breaks it in three ordinary situations, and this crate is built around
//! keeping it, in the order the chapter tells them:
//!
//! - [`table`]: the articles table, whose every write returns the committed row and its new
//!   version;
//! - [`settings`]: the records' TTL and the Redis time budget;
//! - [`versioned`]: what the cache stores, a row with the version the database gave it, and the
//!   Lua script that stores a version only over an older one, so two writers racing cannot leave
//!   the older row in the cache;
//! - [`faults`]: a pause point in the write path, so tests can stop Redis or let another writer
//!   through at the worst moment, between the commit and the cache write;
//! - [`cache`]: the versioned cache, with every Redis call bounded, and a *repair* when a cache
//!   write fails after the commit: delete the key, and if even that fails, remember the key and
//!   delete it before it is served again (the TTL is the last safety net);
//! - [`repository`]: the repository an application calls. The database commits first, the cache
//!   follows; a failed database write never touches the cache.

#![warn(missing_docs)]

pub mod settings;
pub mod table;

pub mod versioned;

pub mod faults;

pub mod cache;

pub mod repository;

pub use cache::{VersionedCache, WriteStats};
pub use faults::{Faults, ParkedWrite};
pub use repository::WriteThrough;
pub use settings::Settings;
pub use table::{Article, Articles};
pub use versioned::Versioned;
