//! The graded tests of the rate-limiting exercise. Run them with
//! `cargo test -p rate-limiting-exercise`; the tests of each task start with its name.
//!
//! The solution runs this very suite (see `solutions/rate-limiting/tests/quotas.rs`).

use rate_limiting_exercise as subject;

mod suite;
