//! The graded tests of the capstone exercise. Run them with `cargo test -p capstone-exercise`;
//! the tests of each task start with its name.
//!
//! The solution runs this very suite (see `solutions/capstone/tests/capstone.rs`).

use capstone_exercise as subject;

mod suite;
