//! HTTP caching: whole responses kept in Redis without ever serving one user's page to another,
//! conditional requests that skip the body, and a slow, flaky upstream API made dependable.
//!
//! The argument, module by module:
//!
//! - [`catalogue`]: the data behind the API, products with a version that every write raises;
//! - [`api`]: the routes, and the `Cache-Control` each one sends: public and shared for the
//!   catalogue, `private, no-store` for a user's own page;
//! - [`key`]: a cached response's key covers everything the answer depends on (method, path, the
//!   query normalised, the headers it varies on, the user of a personal page) and nothing else;
//! - [`storable`]: what a shared cache may keep, and for how long;
//! - [`conditional`]: `If-None-Match` and `304`, and an ETag per content coding;
//! - [`response_cache`]: the tower layer that puts these together in Redis, with invalidation by
//!   group when a write changes what a page showed;
//! - [`upstream`]: a slow, flaky third-party API behind stale-while-revalidate, stale-if-error, one
//!   call per key at a time and an honest `Age`;
//! - [`source`]: the source material's middleware and keys, kept as counter-examples;
//! - [`app`]: the layers assembled, one application per cache the demo compares.

#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod catalogue;
pub mod conditional;
pub mod key;
pub mod response_cache;
pub mod source;
pub mod storable;
pub mod upstream;

pub use app::{Caching, app};
pub use catalogue::Catalogue;
pub use response_cache::ResponseCache;
