//! The demo's table: one line per run, what it cost and what the audit found, and the
//! conclusion drawn from the figures.

use serde::Serialize;
use shared::report::{self, Row};
use shared::workload::RunStats;
use write_behind::{Audit, FlushStats};

/// One run's line of the table.
#[derive(Serialize)]
pub struct Line {
    mode: String,
    write_p50_us: u64,
    write_p99_us: u64,
    writes_per_sec: f64,
    /// Writes sent, each of +1 point.
    writes: u64,
    failed_writes: u64,
    db_transactions: u64,
    flush: Option<FlushStats>,
    /// Writes still queued when the workload ended, before the drain.
    pub queue_depth_at_end: Option<u64>,
    /// Acknowledged points the database does not have.
    lost: u64,
    /// Points the database has more than were acknowledged (and than unanswered writes).
    double_applied: u64,
}

impl Line {
    /// The line of a run labelled `mode`, before its audit.
    pub fn new(mode: &str, run: &RunStats, transactions: u64, flush: Option<FlushStats>) -> Self {
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

    /// The line with what the audit found.
    pub fn audited(self, audit: Audit) -> Self {
        Line {
            lost: audit.lost,
            double_applied: audit.double_applied,
            ..self
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
            "failed writes",
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
            report::count(self.failed_writes),
            report::count(self.db_transactions),
            self.flush
                .map_or("-".into(), |f| report::micros(f.lag.p99_us)),
            report::count(self.lost),
            report::count(self.double_applied),
        ]
    }
}

/// Sentences drawn from the figures, for the six lines in the order the demo runs them.
pub fn conclude(rows: &[Line]) -> String {
    let [alone, through, behind, source, crashed, naive] = rows else {
        return String::new();
    };
    // Too many failed writes and the latencies (of the writes that succeeded) compare nothing.
    let failed = [alone, through, behind]
        .into_iter()
        .map(|line| (line.failed_writes, line.writes))
        .max_by(|a, b| (a.0 * b.1).cmp(&(b.0 * a.1)))
        .unwrap_or_default();
    let mut text = match report::disturbed(failed.0, failed.1) {
        Some(disturbed) => format!("{disturbed} "),
        None => speed(alone, through, behind),
    };
    text.push_str(&outcome(behind, crashed));
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

/// How much faster write-behind acknowledged a write than the other two, from clean runs.
fn speed(alone: &Line, through: &Line, behind: &Line) -> String {
    let ratio = |a: &Line, b: &Line| a.write_p50_us as f64 / b.write_p50_us.max(1) as f64;
    format!(
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
    )
}

/// What the audits found for write-behind, in the steady run and after the flusher's crash.
fn outcome(behind: &Line, crashed: &Line) -> String {
    let clean = |line: &Line| line.lost == 0 && line.double_applied == 0 && line.failed_writes == 0;
    if clean(behind) && clean(crashed) {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::metrics::Latency;

    fn line(mode: &str, p50_us: u64, writes: u64, failed: u64) -> Line {
        let mut run = RunStats {
            requests: writes,
            elapsed_s: 1.0,
            requests_per_sec: writes as f64,
            latency: Latency::default().summary(),
            failures: failed,
            first_failure: None,
            histogram: Latency::default(),
        };
        run.latency.p50_us = p50_us;
        Line::new(mode, &run, writes, None)
    }

    /// The six modes' rows, write-behind's with `failed` of its 10,000 writes failed.
    fn rows(failed: u64) -> [Line; 6] {
        [
            line("database alone", 2_000, 10_000, 0),
            line("write-through", 27_000, 10_000, 0),
            line("write-behind", 350, 10_000, failed),
            line("source", 300, 300, 0),
            line("crashed", 400, 10_000, 0),
            line("naive", 400, 10_000, 0),
        ]
    }

    #[test]
    fn a_run_whose_writes_failed_draws_no_speed_from_them() {
        let text = conclude(&rows(9_627));
        assert!(
            text.contains("Redis failed 9,627 times") && !text.contains("faster"),
            "9,627 of 10,000 write-behind writes failed: expected the disturbance sentence and no \
             speed claim, got: {text}"
        );
        let text = conclude(&rows(0));
        assert!(text.contains("77x faster than write-through"), "{text}");
    }
}
