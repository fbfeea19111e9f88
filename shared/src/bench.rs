//! What every lesson's criterion benches start from.
//!
//! A bench compares a path with its baseline in one run, on one server: the same runtime, the
//! same Redis (`REDIS_URL`, else a private server) and a default, unslowed SQLite database.

use std::sync::Arc;

use redis::aio::ConnectionManager;
use tokio::runtime::Runtime;

use crate::connection::RedisTarget;
use crate::db::{Database, DbOptions};

pub struct Setup {
    /// A current-thread runtime: the bench measures the path, not cross-thread hand-offs.
    pub rt: Runtime,
    /// Keeps a private server alive for the whole bench.
    pub redis: RedisTarget,
    pub conn: ConnectionManager,
    pub db: Arc<Database>,
}

/// Starts the runtime, the Redis and the database; panics with the reason if one cannot start.
pub fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let redis = RedisTarget::from_env().expect("a Redis for the benchmarks");
    let (conn, db) = rt.block_on(async {
        let conn = redis.connect().await.expect("connect to the bench Redis");
        let db = Database::open(DbOptions::default())
            .await
            .expect("open the bench database");
        (conn, Arc::new(db))
    });
    Setup {
        rt,
        redis,
        conn,
        db,
    }
}
