//! Before any test runs: is there a Redis and a database the suites can use?
//!
//! The check opens the very stage a suite opens (`REDIS_URL`, else a private `redis-server`, or a
//! private cluster with `REDIS_CLUSTER=1`; `DATABASE_URL`, else a private SQLite file) and closes
//! it again, so its advice is the course's own for each cause, and a problem is reported once,
//! plainly, instead of as every test failing with the same setup error. It is bounded in time:
//! an address that swallows packets says so instead of hanging.

use std::time::Duration;

use anyhow::{Result, anyhow};
use shared::connection::is_cluster;
use shared::redact::redact;
use shared::{DbOptions, Stage};

/// How long Redis and the database get to answer.
const LIMIT: Duration = Duration::from_secs(30);

/// Checks Redis and the database, and says in one line what the tests will use.
pub async fn check() -> Result<String> {
    let opened = tokio::time::timeout(LIMIT, async {
        let stage = Stage::from_env("runner", DbOptions::default()).await?;
        let backend = stage.db().backend();
        let cluster = is_cluster(&stage.redis_url());
        stage.close().await?;
        Ok::<_, shared::SetupError>((backend, cluster))
    })
    .await;
    let (backend, cluster) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(error)) => {
            return Err(anyhow!(
                "the tests need a Redis and a database, and the check before running them \
                 failed:\n{error}"
            ));
        }
        Err(_) => {
            return Err(anyhow!(
                "Redis or the database did not answer within {} s. Check REDIS_URL and \
                 DATABASE_URL (unset either to let the course use a private one).",
                LIMIT.as_secs()
            ));
        }
    };
    let redis = match std::env::var("REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
    {
        Some(url) => format!("the Redis at {}", redact(&url)),
        // Read from the stage itself, so REDIS_CLUSTER is parsed once, by the course's rules.
        None if cluster => "a private Redis Cluster per test".to_string(),
        None => "a private redis-server per test".to_string(),
    };
    let database = match backend {
        "sqlite" => "a private SQLite file per test".to_string(),
        _ => format!(
            "PostgreSQL at {}",
            redact(&std::env::var("DATABASE_URL").unwrap_or_default())
        ),
    };
    Ok(format!("Tests use {redis} and {database}."))
}
