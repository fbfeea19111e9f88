//! What every lesson's criterion benches start from.
//!
//! A bench compares a path with its baseline in one run, on one stage: the same runtime, the
//! same Redis (`REDIS_URL`, else a private server) and a default, unslowed SQLite database.

use tokio::runtime::Runtime;

use crate::db::DbOptions;
use crate::stage::Stage;

/// A current-thread runtime (the bench measures the path, not cross-thread hand-offs) and the
/// stage of `lesson`'s bench; panics with the reason if either cannot start.
pub fn stage(lesson: &str) -> (Runtime, Stage) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let stage = rt
        .block_on(Stage::from_env(lesson, DbOptions::default()))
        .expect("a Redis and a database for the benchmarks");
    (rt, stage)
}
