//! The graded tests of the two-tier exercise. Run them with
//! `cargo test -p two-tier-exercise`; the tests of each task start with its name.
//!
//! The solution runs this very suite (see `solutions/two-tier/tests/rates.rs`).

use two_tier_exercise as subject;

mod suite;
