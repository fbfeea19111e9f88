//! The demo's table: one line per mode, and the conclusion drawn from the figures.

use serde::Serialize;
use shared::CacheStats;
use shared::metrics::LatencySummary;
use shared::report::{self, Row};
use shared::workload::RunStats;

use super::measured::Measured;
use super::mode::{Kind, Mode};

/// One mode's line of the table.
#[derive(Serialize)]
pub struct Line {
    mode: Kind,
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
    pub fn new(
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
            mode: mode.kind(),
            read_hit_ratio: cache.map(|c| c.hit_ratio()),
            read: measured.reads.lock().expect("latency lock").summary(),
            write: measured.writes.lock().expect("latency lock").summary(),
            db_queries,
            stale_reads: measured.stale_reads(),
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

/// Sentences drawn from the figures of the three modes' lines.
pub fn conclude(rows: &[Line]) -> String {
    let line = |kind: Kind| rows.iter().find(|line| line.mode == kind);
    let (Some(none), Some(aside), Some(through)) = (
        line(Kind::NoCache),
        line(Kind::CacheAside),
        line(Kind::WriteThrough),
    ) else {
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
