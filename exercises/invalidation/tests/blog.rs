//! The graded tests of the invalidation exercise. Run them with
//! `cargo test -p invalidation-exercise`; the tests of each task start with its name.
//!
//! The solution runs this very suite (see `solutions/invalidation/tests/blog.rs`).

use invalidation_exercise as subject;

mod suite;
