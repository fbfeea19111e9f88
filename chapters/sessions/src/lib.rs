//! Login sessions in Redis that every instance ends at once, with the rotation and the timeouts
//! the source material forgot.
//!
//! The argument, module by module:
//!
//! - [`accounts`]: a session is only as good as the login that made it: argon2 password hashes,
//!   verified;
//! - [`store`]: the sessions in Redis behind tower-sessions, keyed by a hash of their ID, each
//!   with a TTL, never brought back by a late save, listed by user for "log out everywhere";
//! - [`timeouts`]: an idle and an absolute timeout checked by the server, a new ID at login and
//!   at a privilege change, and a sliding deadline that costs a write only past a threshold;
//! - [`api`]: the routes, none of which shows the ID;
//! - [`source`]: the source material's sessions, as counter-examples;
//! - [`app`]: one instance's application, for each configuration the demo compares;
//! - [`client`]: the browser's side, with whichever cookie a scenario sends.

#![warn(missing_docs)]

pub mod accounts;
pub mod api;
pub mod app;
pub mod client;
pub mod source;
pub mod store;
pub mod timeouts;

pub use accounts::Accounts;
pub use app::{Deployment, Sessions};
pub use store::RedisStore;
pub use timeouts::{Clock, Timeouts};
