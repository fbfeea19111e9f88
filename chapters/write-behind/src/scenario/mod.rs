//! The demo's runs: one Zipf-skewed workload of score increments, replayed once per way of
//! writing, each on a table reset to zero and in a namespace of its own, each ending with an
//! audit of the database against what was acknowledged.
//!
//! - [`modes`]: the four ways that run in this process (the database alone, write-through,
//!   write-behind, the source material's in-process queue);
//! - [`child`]: write-behind with its flusher in a child process, killed after a commit;
//! - [`summary`]: the table every run adds a line to, and its conclusion.

pub mod child;
pub mod modes;
pub mod summary;

use std::sync::Arc;
use std::time::Duration;

use shared::worker::Worker;
use shared::workload::RunStats;
use shared::{Op, Stage, Workload};
use write_behind::flusher::Flusher;
use write_behind::{Acknowledged, Layout, Settings, WriteBehind};

/// What every run needs.
pub struct Demo<'a> {
    /// The Redis and the database.
    pub stage: &'a Stage,
    /// Shards and batch size from the flags, the rest the lesson's defaults.
    pub settings: Settings,
    /// The one workload every run replays.
    pub workload: Workload,
}

impl Demo<'_> {
    /// A fresh start for run number `run`: every score back to 0 at version 0 and the query
    /// count at 0, and keys in a namespace of the run's own.
    pub async fn fresh(&self, run: usize) -> anyhow::Result<Layout> {
        let db = self.stage.db();
        write_behind::table::reset(db).await?;
        db.reset_queries();
        let namespace = self.stage.namespace().child(&format!("run{run}"));
        Ok(Layout::new(namespace, self.settings.shards))
    }
}

/// The workload through write-behind's acknowledged write, every outcome recorded in `acks`.
pub async fn write_behind_workload(
    writer: &Arc<WriteBehind>,
    acks: &Arc<Acknowledged>,
    workload: &Workload,
    label: &str,
) -> RunStats {
    let (writer, acks) = (writer.clone(), acks.clone());
    workload
        .run(label, move |op: Op| {
            let (writer, acks) = (writer.clone(), acks.clone());
            async move {
                let added = writer.add_points(op.id(), 1).await;
                acks.record(op.id(), 1, added.is_ok());
                added.map(|_| ())
            }
        })
        .await
}

/// How long the database may fail every commit before the demo says so.
const OUTAGE_NOTICE_AFTER: Duration = Duration::from_secs(5);
/// How often the notice is repeated while the outage lasts.
const OUTAGE_NOTICE_EVERY: Duration = Duration::from_secs(30);

/// Watches `flusher` and says on stderr when the database has failed every commit for
/// `OUTAGE_NOTICE_AFTER` (again every `OUTAGE_NOTICE_EVERY`), and when it is back. A flusher
/// rides out an outage in silence, its writes safe in the queues: without this a learner watches
/// a progress bar that stopped and cannot tell why. Stops when the returned worker is dropped.
pub fn announce_db_outages(flusher: Arc<Flusher>) -> Worker {
    Worker::spawn("database outage notices", |mut stop| async move {
        let mut told: Option<Duration> = None;
        loop {
            tokio::select! {
                _ = stop.requested() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            match (flusher.metrics.db_outage(), told) {
                (Some(outage), _) => {
                    let lasted = outage.since.elapsed();
                    let due = told.map_or(OUTAGE_NOTICE_AFTER, |t| t + OUTAGE_NOTICE_EVERY);
                    if lasted >= due {
                        eprintln!(
                            "write-behind: the database has failed every commit for {} s ({}). \
                             The writes wait in the Redis queues and the flusher keeps retrying; \
                             nothing is lost while Redis keeps them.",
                            lasted.as_secs(),
                            outage.error
                        );
                        told = Some(lasted);
                    }
                }
                (None, Some(_)) => {
                    eprintln!("write-behind: the database is back; the flusher is catching up.");
                    told = None;
                }
                (None, None) => {}
            }
        }
    })
}
