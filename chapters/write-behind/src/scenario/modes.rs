//! The four ways of writing that run in this process, each replaying the workload and then
//! audited: the database alone (a transaction per write), write-through (that, then a versioned
//! cache write), write-behind (the acknowledged write, and a flusher draining the queues), and the
//! source material's write-behind with its queue in process memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use write_behind::flusher::queue_depth;
use write_behind::write::create_queues;
use write_behind::{
    Acknowledged, Apply, Flusher, InProcessQueue, Layout, Scores, WriteBehind, WriteThroughScores,
};

use super::summary::Line;
use super::{Demo, write_behind_workload};

shared::variants! {
    /// The four ways the demo takes the writes, in the order the table shows them.
    pub enum Mode {
        /// Every write a transaction of its own, nothing cached.
        DatabaseAlone = ("database", "database alone"),
        /// Commit, then a versioned cache write.
        WriteThrough = ("write-through", "write-through"),
        /// The cache and its queue entry in one script; the flusher commits later.
        WriteBehind = ("write-behind", "write-behind"),
        /// The source material's queue in process memory.
        InProcessQueue = ("in-process-queue", "in-process queue (source)"),
    }
}

/// Runs the workload `mode`'s way, with keys in `layout`, and audits the database afterwards.
pub async fn run(mode: Mode, demo: &Demo<'_>, layout: &Layout) -> anyhow::Result<Line> {
    let acks = Arc::new(Acknowledged::default());
    let line = match mode {
        Mode::DatabaseAlone => database_alone(demo, &acks).await,
        Mode::WriteThrough => write_through(demo, layout, &acks).await,
        Mode::WriteBehind => write_behind(demo, layout, &acks).await?,
        Mode::InProcessQueue => in_process_queue(demo, layout, &acks).await?,
    };
    Ok(line.audited(acks.audit(demo.stage.db()).await?))
}

/// Every write a transaction of its own, and nothing cached.
async fn database_alone(demo: &Demo<'_>, acks: &Arc<Acknowledged>) -> Line {
    let label = Mode::DatabaseAlone.label();
    let transactions = Arc::new(AtomicU64::new(0));
    let run = {
        let (db, acks, transactions) =
            (demo.stage.db().clone(), acks.clone(), transactions.clone());
        demo.workload
            .run(label, move |op| {
                let (db, acks, transactions) = (db.clone(), acks.clone(), transactions.clone());
                async move {
                    let player = op.id();
                    let row = db.add_points_now(player, 1).await;
                    acks.record(player, 1, row.is_ok());
                    row?.ok_or(sqlx::Error::RowNotFound)?;
                    transactions.fetch_add(1, Ordering::Relaxed);
                    Ok::<_, sqlx::Error>(())
                }
            })
            .await
    };
    Line::new(label, &run, transactions.load(Ordering::Relaxed), None)
}

/// Every write committed, then cached with its version.
async fn write_through(demo: &Demo<'_>, layout: &Layout, acks: &Arc<Acknowledged>) -> Line {
    let label = Mode::WriteThrough.label();
    let through = Arc::new(WriteThroughScores::new(
        demo.stage.conn(),
        demo.stage.db().clone(),
        layout.clone(),
        &demo.settings,
    ));
    let run = {
        let (through, acks) = (through.clone(), acks.clone());
        demo.workload
            .run(label, move |op| {
                let (through, acks) = (through.clone(), acks.clone());
                async move {
                    let written = through.add_points(op.id(), 1).await;
                    // Acknowledged unless the transaction itself failed: a write committed but
                    // not cached is in the database.
                    let acknowledged = match &written {
                        Ok(_) => true,
                        Err(error) => error.database_answered(),
                    };
                    acks.record(op.id(), 1, acknowledged);
                    written.map(drop)
                }
            })
            .await
    };
    Line::new(label, &run, through.transactions.get(), None)
}

/// The acknowledged write, with a flusher in this process that drains the queues at the end.
async fn write_behind(
    demo: &Demo<'_>,
    layout: &Layout,
    acks: &Arc<Acknowledged>,
) -> anyhow::Result<Line> {
    let label = Mode::WriteBehind.label();
    let (db, conn) = (demo.stage.db().clone(), demo.stage.conn());
    create_queues(&conn, layout).await?;
    let writer = Arc::new(WriteBehind::new(
        conn.clone(),
        db.clone(),
        layout.clone(),
        demo.settings.clone(),
    ));
    let flusher = Arc::new(Flusher::new(
        db,
        layout.clone(),
        demo.settings.clone(),
        Apply::Versioned,
        "demo",
    ));
    let running = flusher.clone().start(&demo.stage.redis_url()).await?;
    let _notices = super::announce_db_outages(flusher.clone());
    let run = write_behind_workload(&writer, acks, &demo.workload, label).await;
    let depth = queue_depth(&conn, layout).await.unwrap_or(0);
    running.drain().await?;
    let stats = flusher.metrics.snapshot();
    let mut line = Line::new(label, &run, stats.transactions, Some(stats));
    line.queue_depth_at_end = Some(depth);
    Ok(line)
}

/// The source material's write-behind: a queue in process memory, flushed once a second and
/// stopped politely at the end.
async fn in_process_queue(
    demo: &Demo<'_>,
    layout: &Layout,
    acks: &Arc<Acknowledged>,
) -> anyhow::Result<Line> {
    let label = Mode::InProcessQueue.label();
    let db = demo.stage.db().clone();
    let source = Arc::new(InProcessQueue::new(
        demo.stage.conn(),
        db.clone(),
        layout.clone(),
    ));
    let worker = source.clone().start(Duration::from_secs(1));
    let run = {
        let (source, acks) = (source.clone(), acks.clone());
        demo.workload
            .run(label, move |op| {
                let (source, acks) = (source.clone(), acks.clone());
                async move {
                    let added = source.add_points(op.id(), 1).await;
                    acks.record(op.id(), 1, added.is_ok());
                    added.map(|_| ())
                }
            })
            .await
    };
    InProcessQueue::stop(worker).await?;
    Ok(Line::new(label, &run, db.queries(), None))
}
