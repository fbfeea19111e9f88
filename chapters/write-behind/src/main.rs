//! `cargo run -p write-behind`: one write-heavy Zipf workload of score increments through the
//! database alone, write-through, write-behind and the source material's in-process queue; then
//! write-behind again with its flusher, a child process, killed mid-run; and a table of what each
//! cost and whether the database ended up with every acknowledged write, once.

mod child;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use redis::Script;
use serde::Serialize;
use shared::cli::{ClosedLoopArgs, WorkloadArgs};
use shared::report::{self, Report, Row};
use shared::workload::RunStats;
use shared::{Cleanup, Database, Op, Persistence, ServerOptions, Stage};
use write_behind::flusher::queue_depth;
use write_behind::write::{check_eviction_policy, create_queues};
use write_behind::{
    Apply, FlushStats, Flusher, InProcessQueue, Layout, Scores, Settings, WriteBehind,
};

/// Write-behind: acknowledged writes that a crash cannot lose.
///
/// Replays one Zipf-skewed stream of score increments (+1 to a player's points, --requests of
/// them) four ways: straight to the database; write-through (commit, then cache); write-behind
/// (one Redis script caches the new score and queues it on a Redis Stream; a flusher commits
/// batches); and the source material's write-behind, whose queue lives in process memory.
/// Then write-behind twice more with its flusher in a child process that is killed with
/// SIGKILL right after a commit, before its acknowledgement: once applying results with
/// versions (the lesson's way), once applying increments (the naive way). A new flusher takes
/// over. Each row ends by comparing the database with every acknowledged write: lost writes,
/// and writes applied twice.
///
/// The private Redis keeps an append-only file fsynced every second, as write-behind needs.
#[derive(Parser)]
#[command(name = "write-behind", version)]
struct Cli {
    #[command(flatten)]
    common: WorkloadArgs,

    #[command(flatten)]
    closed: ClosedLoopArgs,

    /// How many queues (Redis Streams) the players are spread over.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    shards: u16,

    /// The most writes one flush commits in one transaction.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    batch_size: u64,
}

fn main() -> ExitCode {
    if let Some(role) = child::role_from_env() {
        return child::run(role);
    }
    // Half the other demos' requests: the database-alone and write-through rows are slow on
    // purpose, and the run should stay near 15 seconds.
    let cli: Cli = shared::cli::parse_with_defaults(&[("requests", "10000")]);
    shared::run::run_demo(|cleanup| run(cli, cleanup))
}

/// The ways of serving the workload that run in this process.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    DatabaseAlone,
    WriteThrough,
    WriteBehind,
    InProcessQueue,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::DatabaseAlone => "database alone",
            Mode::WriteThrough => "write-through",
            Mode::WriteBehind => "write-behind",
            Mode::InProcessQueue => "in-process queue (source)",
        }
    }
}

/// What the application was told, per player: the points acknowledged, and the points of
/// writes whose outcome it never learned (an error that may have come after the write).
#[derive(Default)]
struct Acknowledged {
    acked: Mutex<BTreeMap<i64, i64>>,
    unknown: Mutex<BTreeMap<i64, i64>>,
}

impl Acknowledged {
    fn record(&self, player: i64, delta: i64, acknowledged: bool) {
        let map = if acknowledged {
            &self.acked
        } else {
            &self.unknown
        };
        *map.lock().expect("acks lock").entry(player).or_insert(0) += delta;
    }

    /// Compares the database with what was acknowledged: (lost, applied twice), in points.
    async fn audit(&self, db: &Database) -> anyhow::Result<(u64, u64)> {
        let acked = self.acked.lock().expect("acks lock").clone();
        let unknown = self.unknown.lock().expect("acks lock").clone();
        let (mut lost, mut doubled) = (0, 0);
        for row in db.all_scores().await? {
            let expected = acked.get(&row.player).copied().unwrap_or(0);
            let maybe = unknown.get(&row.player).copied().unwrap_or(0);
            lost += (expected - row.points).max(0) as u64;
            doubled += (row.points - expected - maybe).max(0) as u64;
        }
        Ok((lost, doubled))
    }
}

/// Stores a write-through row only over an older version. KEYS: score. ARGV: points, version,
/// TTL in ms.
const STORE_IF_NEWER: &str = r#"
local cached = tonumber(redis.call('HGET', KEYS[1], 'version'))
if cached and cached >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'points', ARGV[1], 'version', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"#;

async fn run(cli: Cli, cleanup: Cleanup) -> anyhow::Result<()> {
    let args = &cli.common;
    let durable = ServerOptions {
        persistence: Persistence::AofEverySec,
        ..ServerOptions::default()
    };
    let stage = args
        .backends
        .stage_with("write-behind", args.db_options(), durable, &cleanup)
        .await?;
    let db = stage.db().clone();
    write_behind::table::create(&db, args.keys as i64)
        .await
        .context("could not create the scores table")?;
    check_eviction_policy(&stage.conn())
        .await
        .map_err(anyhow::Error::msg)?;
    let settings = Settings {
        shards: cli.shards,
        batch_size: cli.batch_size as usize,
        ..Settings::default()
    };
    let workload = args.workload(&cli.closed, 1.0);

    let mut summary = Report::new(format!(
        "Write-behind vs write-through vs the database alone: {} score increments over {} tasks",
        report::count(args.requests),
        cli.closed.concurrency
    ));
    summary
        .setting("players", report::count(args.keys))
        .setting("skew", args.skew)
        .setting("db latency", format!("{} ms", args.db_latency_ms))
        .setting("batch", cli.batch_size)
        .setting("shards", cli.shards)
        .setting("db", db.backend())
        .setting("redis", args.backends.redis_label());

    for mode in [
        Mode::DatabaseAlone,
        Mode::WriteThrough,
        Mode::WriteBehind,
        Mode::InProcessQueue,
    ] {
        reset_scores(&db).await?;
        let namespace = stage
            .namespace()
            .child(&format!("run{}", summary.rows.len()));
        let layout = Layout::new(namespace, settings.shards);
        let line = run_mode(mode, &stage, &layout, &settings, &workload).await?;
        summary.rows.push(line);
    }
    for apply in [Apply::Versioned, Apply::Increments] {
        reset_scores(&db).await?;
        let namespace = stage
            .namespace()
            .child(&format!("run{}", summary.rows.len()));
        let layout = Layout::new(namespace, settings.shards);
        let line = child::run_with_crash(apply, &stage, &layout, &settings, &workload).await?;
        summary.rows.push(line);
    }
    summary.conclusion = conclude(&summary.rows);
    summary.print(args.report.format);
    Ok(())
}

/// Every player back to 0 points at version 0 (not counted), so each mode starts alike.
async fn reset_scores(db: &Database) -> anyhow::Result<()> {
    let mut setup = db.setup().await?;
    sqlx::query("UPDATE scores SET points = 0, version = 0")
        .execute(&mut *setup)
        .await?;
    setup.commit().await?;
    db.reset_queries();
    Ok(())
}

/// Runs the workload one way, in this process, and audits the database afterwards.
async fn run_mode(
    mode: Mode,
    stage: &Stage,
    layout: &Layout,
    settings: &Settings,
    workload: &shared::Workload,
) -> anyhow::Result<Line> {
    let db = stage.db().clone();
    let conn = stage.conn();
    let acks = Arc::new(Acknowledged::default());
    let transactions = Arc::new(AtomicU64::new(0));
    let line = match mode {
        Mode::DatabaseAlone | Mode::WriteThrough => {
            let store = Arc::new(Script::new(STORE_IF_NEWER));
            let (layout, ttl) = (layout.clone(), settings.ttl.as_millis() as u64);
            let run = {
                let (db, acks, transactions) = (db.clone(), acks.clone(), transactions.clone());
                workload
                    .run(mode.label(), move |op| {
                        let (db, acks, tx) = (db.clone(), acks.clone(), transactions.clone());
                        let (store, layout, mut conn) =
                            (store.clone(), layout.clone(), conn.clone());
                        async move {
                            let player = op.id();
                            let row = db.add_points_now(player, 1).await;
                            acks.record(player, 1, row.is_ok());
                            let row = row?.ok_or(sqlx::Error::RowNotFound)?;
                            tx.fetch_add(1, Ordering::Relaxed);
                            if mode == Mode::WriteThrough {
                                let stored = store
                                    .key(layout.score(player))
                                    .arg(row.points)
                                    .arg(row.version)
                                    .arg(ttl)
                                    .invoke_async::<i64>(&mut conn)
                                    .await;
                                stored.map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
                            }
                            Ok::<_, sqlx::Error>(())
                        }
                    })
                    .await
            };
            Line::new(
                mode.label(),
                &run,
                transactions.load(Ordering::Relaxed),
                None,
            )
        }
        Mode::WriteBehind => {
            create_queues(&conn, layout).await?;
            let writer = Arc::new(WriteBehind::new(
                conn.clone(),
                db.clone(),
                layout.clone(),
                settings.clone(),
            ));
            let flusher = Arc::new(Flusher::new(
                db.clone(),
                layout.clone(),
                settings.clone(),
                Apply::Versioned,
                "demo",
            ));
            let running = flusher.clone().start(&stage.redis_url()).await?;
            let run = write_behind_workload(&writer, &acks, workload, mode.label()).await;
            let depth = queue_depth(&conn, layout).await.unwrap_or(0);
            running.drain().await?;
            let stats = flusher.metrics.snapshot();
            let mut line = Line::new(mode.label(), &run, stats.transactions, Some(stats));
            line.queue_depth_at_end = Some(depth);
            line
        }
        Mode::InProcessQueue => {
            let source = Arc::new(InProcessQueue::new(
                conn.clone(),
                db.clone(),
                layout.clone(),
            ));
            let worker = source.clone().start(Duration::from_secs(1));
            let run = {
                let (source, acks) = (source.clone(), acks.clone());
                workload
                    .run(mode.label(), move |op| {
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
            Line::new(mode.label(), &run, db.queries(), None)
        }
    };
    let (lost, doubled) = acks.audit(&db).await?;
    Ok(Line {
        lost,
        double_applied: doubled,
        ..line
    })
}

/// The workload through write-behind's acknowledged write.
async fn write_behind_workload(
    writer: &Arc<WriteBehind>,
    acks: &Arc<Acknowledged>,
    workload: &shared::Workload,
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

// ---- the table ---------------------------------------------------------------------------------

#[derive(Serialize)]
struct Line {
    mode: String,
    write_p50_us: u64,
    write_p99_us: u64,
    writes_per_sec: f64,
    /// Writes sent, each of +1 point.
    writes: u64,
    failed_writes: u64,
    db_transactions: u64,
    flush: Option<FlushStats>,
    queue_depth_at_end: Option<u64>,
    /// Acknowledged points the database does not have.
    lost: u64,
    /// Points the database has more than were acknowledged (and than unanswered writes).
    double_applied: u64,
}

impl Line {
    fn new(mode: &str, run: &RunStats, transactions: u64, flush: Option<FlushStats>) -> Self {
        Line {
            mode: mode.to_string(),
            write_p50_us: run.latency.p50_us,
            write_p99_us: run.latency.p99_us,
            writes_per_sec: run.requests_per_sec,
            writes: run.requests,
            failed_writes: run.failures,
            db_transactions: transactions,
            flush,
            queue_depth_at_end: None,
            lost: 0,
            double_applied: 0,
        }
    }
}

impl Row for Line {
    fn headers() -> Vec<&'static str> {
        vec![
            "mode",
            "write p50",
            "write p99",
            "writes/s",
            "db transactions",
            "flush lag p99",
            "lost",
            "double-applied",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.mode.clone(),
            report::micros(self.write_p50_us),
            report::micros(self.write_p99_us),
            report::count(self.writes_per_sec as u64),
            report::count(self.db_transactions),
            self.flush
                .map_or("-".into(), |f| report::micros(f.lag.p99_us)),
            report::count(self.lost),
            report::count(self.double_applied),
        ]
    }
}

/// Sentences drawn from the figures.
fn conclude(rows: &[Line]) -> String {
    let [alone, through, behind, source, crashed, naive] = rows else {
        return String::new();
    };
    let ratio = |a: &Line, b: &Line| a.write_p50_us as f64 / b.write_p50_us.max(1) as f64;
    let mut text = format!(
        "Write-behind acknowledged a write in {} at p50, {:.0}x faster than write-through ({}) \
         and {:.0}x faster than the database alone ({}), and committed them in {} transactions \
         instead of {}. ",
        report::micros(behind.write_p50_us),
        ratio(through, behind),
        report::micros(through.write_p50_us),
        ratio(alone, behind),
        report::micros(alone.write_p50_us),
        report::count(behind.db_transactions),
        report::count(alone.db_transactions),
    );
    let clean = |line: &Line| line.lost == 0 && line.double_applied == 0 && line.failed_writes == 0;
    text.push_str(&if clean(behind) && clean(crashed) {
        "The database ended with every acknowledged write exactly once, including after its \
         flusher was killed between a commit and its acknowledgement. "
            .to_string()
    } else {
        format!(
            "Write-behind lost {} and double-applied {} points ({} after the crash): look at \
             the failed writes and the Redis errors. ",
            report::count(behind.lost),
            report::count(behind.double_applied),
            report::count(crashed.lost + crashed.double_applied)
        )
    });
    text.push_str(&format!(
        "The source's in-process queue lost {} of {} acknowledged points at a polite stop; \
         replaying increments instead of versioned results applied {} points twice after the \
         same crash.",
        report::count(source.lost),
        report::count(source.writes),
        report::count(naive.double_applied),
    ));
    text
}
