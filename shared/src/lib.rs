//! The support crate of the caching course.
//!
//! Every lesson is built from these parts, so a learner meets them once and afterwards sees only
//! the pattern being taught:
//!
//! - [`server`] and [`connection`]: a real Redis, private or named by `REDIS_URL`, and the
//!   reconnecting connection every lesson uses;
//! - [`namespace`] and [`keys`]: per-run key prefixes, readable entity keys and collision-free
//!   hashed keys;
//! - [`db`]: the SQL database behind the cache, with every query counted and optionally slowed;
//! - [`codec`]: typed values in and out of the cache;
//! - [`metrics`]: hit, miss, error counters and latency histograms;
//! - [`workload`]: Zipf-skewed traffic over concurrent tasks, with a progress bar;
//! - [`cli`] and [`report`]: the flags every demo shares and the table every demo ends with;
//! - [`bench`]: what every lesson's criterion benches start from.

pub mod bench;
pub mod cli;
pub mod codec;
pub mod connection;
pub mod db;
pub mod error;
pub mod keys;
pub mod metrics;
pub mod namespace;
pub mod report;
pub mod server;
pub mod workload;

pub use connection::RedisTarget;
pub use db::{Article, Database, DbOptions, Product, User};
pub use error::SetupError;
pub use metrics::{CacheMetrics, CacheStats};
pub use namespace::Namespace;
pub use server::RedisServer;
pub use workload::{Op, Workload};
