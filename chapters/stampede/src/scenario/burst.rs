//! Scenario 1: a hot key expires, and a burst of requests for it arrives at once.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use shared::metrics::Latency;
use shared::report::{self, Report, Row};
use shared::workload::Arrivals;
use stampede::Kind;

use super::{Demo, counted, row};
use crate::Cli;

/// The hot page's key.
const HOT: &str = "1";

/// Runs the burst once per strategy: the table, and every request's latency per strategy.
pub async fn run(demo: &Demo<'_>) -> anyhow::Result<(Report<BurstLine>, Vec<(Kind, Latency)>)> {
    let cli = demo.cli;
    let requests = cli.workload.requests;
    let ttl = Duration::from_millis(300);

    // Cache the hot page in every strategy, then let it expire (turn stale, for
    // stale-while-revalidate) in all of them at once.
    let mut fleets = Vec::new();
    for kind in Kind::ALL {
        let fleet = demo.fleet("burst", kind, ttl).await?;
        fleet.get(HOT).await.context("warming the hot key")?;
        fleets.push(fleet);
    }
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;

    let mut summary = Report::new(format!(
        "Scenario 1: {} at once for a key that just expired, over {}",
        counted(requests, "request"),
        counted(cli.instances, "instance"),
    ));
    let db = demo.stage.db();
    summary
        .setting("load", format!("{} ms", cli.workload.db_latency_ms))
        .setting("db pool", cli.pool_per_instance * cli.instances)
        .setting("db", db.backend())
        .setting("redis", cli.workload.backends.redis_label());
    let mut latencies = Vec::new();
    for fleet in &fleets {
        let (loads_before, before) = (db.queries(), fleet.stats());
        let hot = Arc::new(|_| HOT.to_string());
        let run = fleet
            .fire(Arrivals::AllAtOnce, hot, requests, demo.progress())
            .await?;
        let stats = fleet.stats();
        summary.rows.push(BurstLine {
            strategy: fleet.kind,
            db_loads: db.queries() - loads_before,
            p50_us: run.latency.p50_us,
            p99_us: run.latency.p99_us,
            max_us: run.latency.max_us,
            failed: run.failures,
            served_stale: stats.stale_hits - before.stale_hits,
            redis_errors: stats.errors - before.errors,
        });
        latencies.push((fleet.kind, run.histogram));
    }
    summary.conclusion = conclude(&summary.rows, cli);
    Ok((summary, latencies))
}

#[derive(Clone, Serialize)]
/// One strategy's row of the burst table.
pub struct BurstLine {
    strategy: Kind,
    db_loads: u64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    failed: u64,
    served_stale: u64,
    redis_errors: u64,
}

impl Row for BurstLine {
    fn headers() -> Vec<&'static str> {
        vec![
            "strategy",
            "db loads",
            "p50",
            "p99",
            "max",
            "failed",
            "served stale",
            "redis errors",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.strategy.label().to_string(),
            report::count(self.db_loads),
            report::micros(self.p50_us),
            report::micros(self.p99_us),
            report::micros(self.max_us),
            report::count(self.failed),
            report::count(self.served_stale),
            report::count(self.redis_errors),
        ]
    }
}

/// Sentences drawn from the burst's figures.
fn conclude(rows: &[BurstLine], cli: &Cli) -> String {
    let get = |kind: Kind| row(rows, kind, |r| r.strategy);
    let (none, flight, lock, xfetch, stale) = (
        get(Kind::Unprotected),
        get(Kind::SingleFlight),
        get(Kind::Lock),
        get(Kind::XFetch),
        get(Kind::Stale),
    );
    let load_us = (cli.workload.db_latency_ms * 1e3) as u64;
    let errors = rows.iter().map(|r| r.redis_errors).sum();
    let mut text = report::disturbed(errors, cli.workload.requests * rows.len() as u64)
        .map(|disturbed| format!("{disturbed} "))
        .unwrap_or_default();
    text += &format!(
        "Without protection {} requests made {} database loads (p99 {}). Single flight made {} \
         (one per instance, p99 {}); the lock made {}, and its waiters' p99 was {}, {} past the \
         {} load itself.",
        report::count(cli.workload.requests),
        report::count(none.db_loads),
        report::micros(none.p99_us),
        report::count(flight.db_loads),
        report::micros(flight.p99_us),
        report::count(lock.db_loads),
        report::micros(lock.p99_us),
        report::micros(lock.p99_us.saturating_sub(load_us)),
        report::micros(load_us),
    );
    text.push_str(&format!(
        " XFetch made {} loads: it refreshes keys before they expire and cannot help a burst that \
         arrives after. Stale-while-revalidate served {} requests the previous value at once \
         (p99 {}) while {} background load{} fetched the new one.",
        report::count(xfetch.db_loads),
        report::count(stale.served_stale),
        report::micros(stale.p99_us),
        report::count(stale.db_loads),
        if stale.db_loads == 1 { "" } else { "s" },
    ));
    let failed: u64 = rows.iter().map(|r| r.failed).sum();
    if failed > 0 {
        text.push_str(&format!(
            " {} requests failed in all; see the table.",
            report::count(failed)
        ));
    }
    text
}
