//! The support crate of the caching course.
//!
//! Every lesson is built from these parts, so a learner meets them once and afterwards sees only
//! the pattern being taught:
//!
//! - [`stage`]: the one setup every demo, test, bench and exercise suite runs on: a Redis, a
//!   connection, the database and a namespace, and more application instances on demand;
//! - [`server`], [`cluster`], [`process`] and [`connection`]: a real Redis, a single server or a
//!   three-master cluster, private or named by `REDIS_URL`, and the reconnecting connection every
//!   lesson uses on either;
//! - [`budget`]: every Redis call within a time budget, its failure counted and turned into a
//!   fallback; [`lease`]: a reader's right to store what it loaded, which a write takes away;
//! - [`pubsub`] and [`worker`]: a subscription that survives reconnections, and background
//!   tasks that stop, report their panics and never outlive their owner; [`comeback`]: the parts
//!   of a run that wait out a Redis restart rather than end the run;
//! - [`namespace`] and [`keys`]: per-run key prefixes, readable entity keys and collision-free
//!   hashed keys;
//! - [`db`]: the SQL database behind the cache, with every query counted and optionally slowed,
//!   and transactions of several counted statements;
//! - [`codec`]: typed values in and out of the cache;
//! - [`metrics`]: hit, miss, error counters and latency histograms;
//! - [`workload`]: Zipf-skewed traffic, sent in a closed loop, a burst or at a fixed rate;
//! - [`staleness`]: after a write returns, how long until every instance serves what it
//!   committed;
//! - [`cli`], [`report`] and [`plot`]: the flags every demo shares, the table every demo ends
//!   with, and its chart; [`run`]: how a demo's run ends, cleaned up whatever the ending;
//! - [`bench`]: what every lesson's criterion benches start from; [`exercise`]: what the exercise
//!   suites share.

#![warn(missing_docs)]

pub mod bench;
pub mod budget;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod codec;
pub mod comeback;
pub mod command_watch;
pub mod connection;
pub mod db;
pub mod error;
pub mod exercise;
pub mod keys;
pub mod lease;
pub mod metrics;
pub mod namespace;
pub mod plot;
pub mod process;
pub mod pubsub;
pub mod redact;
pub mod report;
pub mod run;
pub mod server;
pub mod stage;
pub mod staleness;
pub mod sweep;
pub mod variants;
pub mod worker;
pub mod workload;

pub use budget::Lookup;
pub use command_watch::CommandWatch;
pub use connection::{RedisConn, RedisTarget};
pub use db::{Database, DbOptions, Product, User};
pub use error::SetupError;
pub use metrics::{CacheMetrics, CacheStats};
pub use namespace::Namespace;
pub use server::{Persistence, RedisServer, ServerOptions};
pub use stage::{Cleanup, Instance, KeysRemovedOnDrop, Stage};
pub use workload::{Op, Workload};
