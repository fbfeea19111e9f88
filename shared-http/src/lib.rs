//! What the course's HTTP lessons share, kept out of [`shared`] so that the lessons without HTTP
//! never compile an HTTP crate.
//!
//! - [`serve`]: an axum app on a loopback port of its own, stopped with its owner;
//! - [`load`]: the load driver every HTTP demo measures with: Zipf-skewed requests from several
//!   users, clients that keep ETags and send `If-None-Match`, latency in a histogram, and a check
//!   of every body received, so that a cache that serves one user's page to another shows up as a
//!   count of wrong responses, not as a speed-up.

#![warn(missing_docs)]

pub mod load;
pub mod serve;

pub use load::{Answer, Load, LoadStats, Request};
pub use serve::Served;
