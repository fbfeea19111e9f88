//! # Write-behind
//!
//! A write-behind cache acknowledges a write as soon as the cache has it and writes the database
//! later, in batches: the fastest write path there is, and the one most often built to lose
//! data. This crate builds one that loses nothing it acknowledged, in the order the chapter
//! tells it:
//!
//! - [`settings`]: shards, batch size, claim and retry timings, TTL;
//! - [`table`]: the `scores` table, whose rows carry the version of the last write applied;
//! - [`layout`]: the keys, grouped by hash slot so a write's cache and queue change in one
//!   script, on a cluster too;
//! - [`write`]: the acknowledged write, one script that updates the cached score and appends
//!   the result to a Redis Stream, and the read that always sees the latest acknowledged write;
//! - [`flusher`]: consumers in a group that read a batch, coalesce it, commit it in one
//!   multi-row upsert that never replaces a newer version, acknowledge after the commit, take
//!   over what dead consumers left, retry with backoff and bury what the database keeps
//!   refusing in a dead-letter stream;
//! - [`source`]: the counter-example, the in-process queue of the source material, kept to be
//!   measured;
//! - [`write_through`]: the baseline, write-through of the same scores (commit, then a
//!   versioned cache write);
//! - [`audit`]: how a run proves the database holds every acknowledged write exactly once.

#![warn(missing_docs)]

pub mod settings;
pub mod table;

pub mod layout;

pub mod write;

pub mod flusher;

pub mod source;

pub mod write_through;

pub mod audit;

pub use audit::{Acknowledged, Audit};
pub use flusher::{Apply, Entry, FlushStats, Flusher, HoldPoint, Running, ScoreUpdate, coalesce};
pub use layout::Layout;
pub use settings::Settings;
pub use source::InProcessQueue;
pub use table::{Score, Scores};
pub use write::{Ack, WriteBehind, WriteError};
pub use write_through::{WriteThroughError, WriteThroughScores};
