//! The graded tests of the write-through exercise. Run them with
//! `cargo test -p write-through-exercise`; the tests of each task start with its name.
//!
//! The solution runs this very suite (see `solutions/write-through/tests/stock.rs`).

use write_through_exercise as subject;

mod suite;
