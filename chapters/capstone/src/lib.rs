//! The capstone: the source material's applications as one service, built from the lessons.
//!
//! The source teaches with applications: a product API with a cache manager, a task manager, a
//! three-level cache with a disk layer, compression, warming and prefetching, and a complete app
//! with sessions, a rate-limited endpoint and cache administration. Each lesson of the course took
//! one pattern out of them and put it right. This crate puts the patterns back together, each
//! where it fits, using the lessons' crates as libraries, and adds the two mechanisms no lesson
//! has: a disk layer and compression.
//!
//! Read in this order:
//!
//! - [`settings`]: the four configurations the demo compares, from no cache to three layers and
//!   conditional requests;
//! - [`products`]: product reads through the two-tier lesson's cache, price changes that reach
//!   every instance;
//! - [`catalog`]: products created and deleted, IDs from the database, their dependents owed in
//!   the outbox;
//! - [`dependents`]: what a created or deleted product owes the caches, paid by the invalidation
//!   lesson's outbox relay;
//! - [`packed`] and [`disk`]: how a large value is stored (LZ4 above a size, a header, a
//!   checksum) and the disk layer under Redis;
//! - [`pages`]: rendered pages through memory, Redis and disk, warmed with jittered TTLs and
//!   prefetched;
//! - [`listing`]: the product listing behind the HTTP lesson's response cache, keyed by its parsed
//!   query and dropped by the price changes that make it wrong;
//! - [`analytics`]: the slow dashboard, served stale while one refresh runs, refreshed after
//!   every price change;
//! - [`generation`]: a derived value cached under a generation each write replaces;
//! - [`tasks`]: the task manager, IDs from the database, counts cached under a generation;
//! - [`news`]: articles written through, views written behind, trending with a staleness bound;
//! - [`upstream`]: weather and exchange rates from a third party, through the HTTP lesson's
//!   upstream cache;
//! - [`limits`]: the rate-limiting lesson's GCRA on the API, with its headers;
//! - [`admin`] and [`health`]: clearing the service's own keys for an administrator, and a
//!   health check that says what is down;
//! - [`telemetry`], [`observe`], [`stats`] and [`dashboard`]: what an instance measures, the
//!   middleware that measures it and `/metrics`, `/stats.json` with the alerts a monitor raises,
//!   and the live page that shows them;
//! - [`api`], [`service`] and [`routes`]: the endpoints, one instance's parts, and its routes;
//! - [`deployment`]: two instances on loopback, as the demo and the tests run them.

#![warn(missing_docs)]

pub mod admin;
pub mod analytics;
pub mod api;
pub mod catalog;
pub mod dashboard;
pub mod dependents;
pub mod deployment;
pub mod disk;
pub mod generation;
pub mod health;
pub mod limits;
pub mod listing;
pub mod news;
pub mod observe;
pub mod packed;
pub mod pages;
pub mod products;
pub mod routes;
pub mod service;
pub mod settings;
pub mod stats;
pub mod tasks;
pub mod telemetry;
pub mod upstream;

pub use deployment::{Deployment, Running};
pub use service::{Service, Shared};
pub use settings::{Caching, Settings};
