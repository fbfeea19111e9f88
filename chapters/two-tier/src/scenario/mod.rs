//! The demo's two scenarios, each with its table: readers of every kind while prices change
//! ([`readers`]: one [`phase`] per kind, its [`reading`] tasks, and the two-tier cache's
//! breakdown by [`layers`]), then [`eviction`] replayed on one trace.

pub mod eviction;
pub mod layers;
pub mod phase;
pub mod readers;
pub mod reading;
