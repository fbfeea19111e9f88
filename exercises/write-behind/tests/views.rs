//! The graded tests of the write-behind exercise. Run them with
//! `cargo test -p write-behind-exercise`; the tests of each task start with its name.
//!
//! The solution runs this very suite (see `solutions/write-behind/tests/views.rs`).

use write_behind_exercise as subject;

mod suite;
