//! The demo's scenario: one mixed read/write workload, replayed once per mode. A cached mode
//! starts warm (every article read once), and every read is checked for staleness.
//!
//! - [`mode`]: the three ways of serving it;
//! - [`measured`]: what a run measures, stale reads included;
//! - [`summary`]: the table, and the conclusion drawn from it.

pub mod measured;
pub mod mode;
pub mod summary;

use std::sync::Arc;

use anyhow::Context;
use shared::metrics::Latency;
use shared::{Database, Op, Workload};

use measured::Measured;
use mode::Mode;
use summary::Line;

/// Runs the workload through `mode`: its line of the table, and every read's latency.
pub async fn run(
    mode: &Arc<Mode>,
    db: &Arc<Database>,
    workload: &Workload,
    keys: u64,
) -> anyhow::Result<(Line, Latency)> {
    if !matches!(**mode, Mode::NoCache) {
        warm(mode, db, keys).await?;
    }
    db.reset_queries();
    let warm_stats = mode.cache_stats().unwrap_or_default();
    let measured = Arc::new(Measured::default());
    let run = {
        let (mode, db, measured) = (mode.clone(), db.clone(), measured.clone());
        workload
            .run(mode.label(), move |op| {
                let (mode, db, measured) = (mode.clone(), db.clone(), measured.clone());
                async move { serve(&mode, &db, &measured, op).await }
            })
            .await
    };
    let line = Line::new(mode, &run, &measured, db.queries(), warm_stats);
    let reads = measured.reads.lock().expect("latency lock").clone();
    if let Some(error) = &run.first_failure {
        eprintln!(
            "{}: {} requests failed, first: {error}",
            mode.label(),
            run.failures
        );
    }
    Ok((line, reads))
}

/// Reads every article once, so a cached run starts warm.
async fn warm(mode: &Arc<Mode>, db: &Arc<Database>, keys: u64) -> anyhow::Result<()> {
    let tasks: Vec<_> = (0..16)
        .map(|lane| {
            let (mode, db) = (mode.clone(), db.clone());
            tokio::spawn(async move {
                for id in (1..=keys as i64).filter(|id| id % 16 == lane) {
                    mode.read(&db, id).await?;
                }
                Ok::<_, sqlx::Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await?.context("warming the cache")?;
    }
    Ok(())
}

/// One request: a read, checked against the versions already committed, or an edit.
async fn serve(mode: &Mode, db: &Database, measured: &Measured, op: Op) -> Result<(), sqlx::Error> {
    match op {
        Op::Read(id) => {
            let must_see = measured.committed(id);
            let row = measured.time(false, mode.read(db, id)).await?;
            let seen = row.map(|a| a.version);
            if must_see.is_some_and(|v| seen.is_none_or(|s| s < v)) {
                measured.stale_read();
            }
        }
        Op::Write(id) => {
            let n = measured.next_edit();
            let title = format!("Article {id}, edit {n}");
            if let Some(row) = measured.time(true, mode.write(db, id, &title)).await? {
                measured.commit(&row);
            }
        }
    }
    Ok(())
}
