//! The graded tests of the stampede exercise. Run them with `cargo test -p stampede-exercise`;
//! the tests of each task start with its name.
//!
//! The solution runs this very suite (see `solutions/stampede/tests/storefront.rs`).

use stampede_exercise as subject;

mod suite;
