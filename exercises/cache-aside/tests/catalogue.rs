//! The graded tests of the cache-aside exercise. Run them with
//! `cargo test -p cache-aside-exercise`; the tests of each task start with its name.
//!
//! The solution runs this very suite (see `solutions/cache-aside/tests/catalogue.rs`).

use cache_aside_exercise as subject;

mod suite;
