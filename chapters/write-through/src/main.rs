//! `cargo run -p write-through`: one mixed read/write Zipf workload against the database alone,
//! through cache-aside, and through write-through, and a table of what each cost and whether any
//! read came back stale.

use std::collections::HashMap;
use std::future::Future;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use cache_aside::CacheAside;
use clap::Parser;
use serde::Serialize;
use shared::Cleanup;
use shared::cli::{ClosedLoopArgs, WorkloadArgs, number_in};
use shared::metrics::{Latency, LatencySummary};
use shared::report::{self, Report, Row};
use shared::workload::RunStats;
use shared::{CacheStats, Database, Op};
use write_through::{Article, Articles, Settings, WriteThrough};

/// Write-through: reads that always hit, and writes that never leave a stale value behind.
///
/// Replays the same Zipf-skewed stream of article reads and edits three times: straight to the
/// database; through cache-aside (a write deletes the key, the next read loads it); and through
/// write-through (a write commits, then stores the committed row with its version). Before the
/// two cached runs every article is read once, so they start warm. The table gives read hit
/// ratio, read and write latency, database queries, and stale reads: reads that returned an
/// older version than a write that had already committed and returned before the read began.
///
/// Try --write-ratio 0.5 to see what each write costs, or --skew 0 for uniform traffic.
#[derive(Parser)]
#[command(name = "write-through", version)]
struct Cli {
    #[command(flatten)]
    common: WorkloadArgs,

    #[command(flatten)]
    closed: ClosedLoopArgs,

    /// Share of requests that edit an article, from 0 to 1.
    #[arg(long, default_value_t = 0.1, value_parser = number_in(0.0, 1.0))]
    write_ratio: f64,
}

fn main() -> ExitCode {
    let cli: Cli = shared::cli::parse();
    shared::run::run_demo(|cleanup| run(cli, cleanup))
}

/// The three ways of serving the workload.
enum Mode {
    NoCache,
    CacheAside(CacheAside),
    WriteThrough(WriteThrough),
}

impl Mode {
    fn label(&self) -> &'static str {
        match self {
            Mode::NoCache => "no cache",
            Mode::CacheAside(_) => "cache-aside",
            Mode::WriteThrough(_) => "write-through",
        }
    }

    async fn read(&self, db: &Database, id: i64) -> Result<Option<Article>, sqlx::Error> {
        match self {
            Mode::NoCache => db.article(id).await,
            Mode::CacheAside(cache) => {
                let key = shared::keys::entity("article", id);
                cache.get_or_load(&key, || db.article(id)).await
            }
            Mode::WriteThrough(store) => store.get(id).await,
        }
    }

    async fn write(
        &self,
        db: &Database,
        id: i64,
        title: &str,
    ) -> Result<Option<Article>, sqlx::Error> {
        let body = "Edited by the demo.";
        match self {
            Mode::NoCache => db.update_article(id, title, body).await,
            Mode::CacheAside(cache) => {
                let row = db.update_article(id, title, body).await?;
                cache.invalidate(&shared::keys::entity("article", id)).await;
                Ok(row)
            }
            Mode::WriteThrough(store) => store.update(id, title, body).await,
        }
    }

    /// The cache's read counters, for the cached modes.
    fn cache_stats(&self) -> Option<CacheStats> {
        match self {
            Mode::NoCache => None,
            Mode::CacheAside(cache) => Some(cache.stats()),
            Mode::WriteThrough(store) => Some(store.read_stats()),
        }
    }
}

/// What one run measured, split by reads and writes.
#[derive(Default)]
struct Measured {
    reads: Mutex<Latency>,
    writes: Mutex<Latency>,
    stale_reads: AtomicU64,
    edits: AtomicU64,
    /// The last version each article was committed at by a write that has returned.
    committed: Mutex<HashMap<i64, i64>>,
}

impl Measured {
    /// Times `call`, recording it as a read or a write.
    async fn time<T>(&self, write: bool, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = call.await;
        let histogram = if write { &self.writes } else { &self.reads };
        histogram
            .lock()
            .expect("latency lock")
            .record(started.elapsed());
        out
    }

    fn committed(&self, id: i64) -> Option<i64> {
        self.committed
            .lock()
            .expect("committed lock")
            .get(&id)
            .copied()
    }

    fn commit(&self, row: &Article) {
        let mut committed = self.committed.lock().expect("committed lock");
        let version = committed.entry(row.id).or_insert(0);
        *version = (*version).max(row.version);
    }
}

async fn run(cli: Cli, cleanup: Cleanup) -> anyhow::Result<()> {
    let args = &cli.common;
    let stage = args
        .backends
        .stage("write-through", args.db_options(), &cleanup)
        .await?;
    write_through::table::create(stage.db(), args.keys as i64)
        .await
        .context("could not create the articles table")?;
    let (conn, db) = (stage.conn(), stage.db().clone());
    let workload = args.workload(&cli.closed, cli.write_ratio);
    // Each cached mode in a namespace of its own, both under the run's.
    let namespace = stage.namespace().child("through");
    let aside_namespace = stage.namespace().child("aside");

    let modes = [
        Mode::NoCache,
        Mode::CacheAside(CacheAside::new(
            conn.clone(),
            aside_namespace,
            cache_aside::Settings::default(),
        )),
        Mode::WriteThrough(WriteThrough::new(
            db.clone(),
            conn,
            namespace,
            Settings::default(),
        )),
    ];
    let mut summary = Report::new(format!(
        "Write-through vs cache-aside vs no cache: {} requests ({} writes) over {} tasks",
        report::count(args.requests),
        report::percent(cli.write_ratio),
        cli.closed.concurrency
    ));
    summary
        .setting("keys", report::count(args.keys))
        .setting("skew", args.skew)
        .setting("db latency", format!("{} ms", args.db_latency_ms))
        .setting("db", db.backend())
        .setting("redis", args.backends.redis_label());

    let modes: Vec<Arc<Mode>> = modes.into_iter().map(Arc::new).collect();
    let mut read_latencies = Vec::new();
    for mode in &modes {
        if !matches!(**mode, Mode::NoCache) {
            warm(mode, &db, args.keys).await?;
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
        summary
            .rows
            .push(Line::new(mode, &run, &measured, db.queries(), warm_stats));
        read_latencies.push(measured.reads.lock().expect("latency lock").clone());
        if let Some(error) = &run.first_failure {
            eprintln!(
                "{}: {} requests failed, first: {error}",
                mode.label(),
                run.failures
            );
        }
    }
    summary.conclusion = conclude(&summary.rows);
    summary.print(args.report.format);
    if let Some(path) = &args.report.plot {
        let labels = modes.iter().map(|mode| mode.label());
        let series: Vec<(&str, &Latency)> = labels.zip(&read_latencies).collect();
        let title = "Read latency: no cache, cache-aside, write-through";
        shared::plot::percentiles(path, title, &series)?;
    }

    Ok(())
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
                measured.stale_reads.fetch_add(1, Ordering::Relaxed);
            }
        }
        Op::Write(id) => {
            let n = measured.edits.fetch_add(1, Ordering::Relaxed);
            let title = format!("Article {id}, edit {n}");
            if let Some(row) = measured.time(true, mode.write(db, id, &title)).await? {
                measured.commit(&row);
            }
        }
    }
    Ok(())
}

// ---- the table ---------------------------------------------------------------------------------

#[derive(Serialize)]
struct Line {
    mode: &'static str,
    read_hit_ratio: Option<f64>,
    read: LatencySummary,
    write: LatencySummary,
    db_queries: u64,
    stale_reads: u64,
    redis_errors: Option<u64>,
    failed_requests: u64,
    /// How many requests were sent.
    requests: u64,
    requests_per_sec: f64,
}

impl Line {
    /// The row of `mode`, counting the cache's figures since `warm` (after the warm-up).
    fn new(
        mode: &Mode,
        run: &RunStats,
        measured: &Measured,
        db_queries: u64,
        warm: CacheStats,
    ) -> Self {
        let cache = mode.cache_stats().map(|now| CacheStats {
            hits: now.hits - warm.hits,
            misses: now.misses - warm.misses,
            errors: now.errors - warm.errors,
            ..now
        });
        Line {
            mode: mode.label(),
            read_hit_ratio: cache.map(|c| c.hit_ratio()),
            read: measured.reads.lock().expect("latency lock").summary(),
            write: measured.writes.lock().expect("latency lock").summary(),
            db_queries,
            stale_reads: measured.stale_reads.load(Ordering::Relaxed),
            redis_errors: cache.map(|c| c.errors),
            failed_requests: run.failures,
            requests: run.requests,
            requests_per_sec: run.requests_per_sec,
        }
    }
}

impl Row for Line {
    fn headers() -> Vec<&'static str> {
        vec![
            "mode",
            "read hits",
            "read p50",
            "read p99",
            "write p50",
            "write p99",
            "db queries",
            "stale reads",
            "redis errors",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.mode.to_string(),
            self.read_hit_ratio.map_or("-".into(), report::percent),
            report::micros(self.read.p50_us),
            report::micros(self.read.p99_us),
            report::micros(self.write.p50_us),
            report::micros(self.write.p99_us),
            report::count(self.db_queries),
            report::count(self.stale_reads),
            self.redis_errors.map_or("-".into(), report::count),
        ]
    }
}

/// Sentences drawn from the figures.
fn conclude(rows: &[Line]) -> String {
    let [none, aside, through] = rows else {
        return String::new();
    };
    let hits = |line: &Line| report::percent(line.read_hit_ratio.unwrap_or(0.0));
    let errors = [aside, through].map(|line| line.redis_errors.unwrap_or(0));
    if let Some(disturbed) = report::disturbed(errors[0].max(errors[1]), none.requests) {
        return format!(
            "{disturbed} Stale reads: {} with cache-aside, {} with write-through.",
            report::count(aside.stale_reads),
            report::count(through.stale_reads)
        );
    }
    // The reason is only given when the figures show what it explains.
    let why = if through.read_hit_ratio > aside.read_hit_ratio {
        ", because a write leaves the new row in the cache instead of a hole"
    } else {
        ", no more than cache-aside although a write leaves the new row in the cache: look at \
         the Redis errors and the write ratio"
    };
    let mut text = format!(
        "Write-through answered {} of reads from the cache against cache-aside's {}{why}; its \
         reads had a p99 of {} against {} (and {} with no cache). ",
        hits(through),
        hits(aside),
        report::micros(through.read.p99_us),
        report::micros(aside.read.p99_us),
        report::micros(none.read.p99_us),
    );
    text.push_str(&format!(
        "Writes had a p50 of {} with write-through, {} with cache-aside and {} with no cache \
         (cargo bench -p write-through isolates the write path's own cost). The database \
         answered {} queries with write-through, {} with cache-aside and {} with no cache. ",
        report::micros(through.write.p50_us),
        report::micros(aside.write.p50_us),
        report::micros(none.write.p50_us),
        report::count(through.db_queries),
        report::count(aside.db_queries),
        report::count(none.db_queries),
    ));
    text.push_str(&match (aside.stale_reads, through.stale_reads) {
        (0, 0) => "No read in any mode returned a version older than a write that had already \
                   returned."
            .to_string(),
        (a, t) => format!(
            "Stale reads, a version older than one already committed: {} with cache-aside, {} \
             with write-through.",
            report::count(a),
            report::count(t)
        ),
    });
    text
}
