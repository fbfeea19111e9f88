//! The graded tests of the http-caching exercise. Run them with
//! `cargo test -p http-caching-exercise`; the tests of each task start with its name.
//!
//! The solution runs this very suite (see `solutions/http-caching/tests/responses.rs`).

use http_caching_exercise as subject;

mod suite;
