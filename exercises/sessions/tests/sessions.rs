//! The graded tests of the sessions exercise. Run them with `cargo test -p sessions-exercise`;
//! the tests of each task start with its name.
//!
//! The solution runs this very suite (see `solutions/sessions/tests/sessions.rs`).

use sessions_exercise as subject;

mod suite;
