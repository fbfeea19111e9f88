//! Scenario 2: a steady stream of requests over many keys, across many expiries.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use shared::Workload;
use shared::metrics::Latency;
use shared::report::{self, Report, Row};
use shared::workload::Arrivals;
use stampede::{Kind, Strategy};

use super::{Demo, Fleet, row};
use crate::Cli;

/// Runs the stream once per strategy: the table, and every request's latency per strategy.
pub async fn run(demo: &Demo<'_>) -> anyhow::Result<(Report<SteadyLine>, Vec<(Kind, Latency)>)> {
    let cli = demo.cli;
    let args = &cli.workload;
    let ttl = Duration::from_millis(cli.ttl_ms);
    let requests = (cli.rate as f64 * cli.steady_secs).round().max(1.0) as u64;
    let keys: Arc<Vec<String>> = Arc::new(
        Workload {
            requests,
            concurrency: 1,
            keys: args.keys,
            skew: args.skew,
            write_ratio: 0.0,
            seed: args.seed,
            progress: false,
        }
        .ops()
        .into_iter()
        .map(|op| op.id().to_string())
        .collect(),
    );

    let mut summary = Report::new(format!(
        "Scenario 2: {} requests/s for {} s over {} {}, each fresh for {} ms",
        report::count(cli.rate),
        cli.steady_secs,
        report::count(args.keys),
        if args.keys == 1 { "key" } else { "keys" },
        cli.ttl_ms
    ));
    summary
        .setting("load", format!("{} ms", args.db_latency_ms))
        .setting("instances", cli.instances)
        .setting("skew", args.skew)
        .setting("beta", cli.beta);
    let db = demo.stage.db();
    let mut latencies = Vec::new();
    for kind in Kind::ALL {
        let fleet = demo.fleet("steady", kind, ttl).await?;
        // Warm every key, spread over one TTL, so expiries are spread too (as in a real cache
        // that has been running a while) instead of all falling at once.
        warm_spread(&fleet, args.keys, ttl).await?;
        let (loads_before, episodes_before) = (db.queries(), fleet.source.episodes());
        let before = fleet.stats();

        let key_of = {
            let keys = keys.clone();
            Arc::new(move |i: u64| keys[i as usize].clone())
        };
        let arrivals = Arrivals::Rate {
            per_sec: cli.rate as f64,
        };
        let run = fleet
            .fire(arrivals, key_of, requests, demo.progress())
            .await?;
        let stats = fleet.stats();
        let loads = db.queries() - loads_before;
        let episodes = fleet.source.episodes() - episodes_before;
        summary.rows.push(SteadyLine {
            strategy: kind,
            db_loads: loads,
            loads_per_refresh: if episodes == 0 {
                0.0
            } else {
                loads as f64 / episodes as f64
            },
            p50_us: run.latency.p50_us,
            p99_us: run.latency.p99_us,
            max_us: run.latency.max_us,
            waited_for_load: run.histogram.count_at_least(demo.slow_after()),
            refreshed_early: stats.refreshes - before.refreshes,
            served_stale: stats.stale_hits - before.stale_hits,
            failed: run.failures,
            redis_errors: stats.errors - before.errors,
            requests,
        });
        latencies.push((kind, run.histogram));
    }
    summary.conclusion = conclude(&summary.rows, cli);
    Ok((summary, latencies))
}

/// Loads keys `1..=keys` through the fleet, key `k` at `(k - 1) / keys` of `ttl`.
async fn warm_spread(fleet: &Fleet, keys: u64, ttl: Duration) -> anyhow::Result<()> {
    let start = tokio::time::Instant::now();
    let instances = fleet.instances();
    let tasks: Vec<_> = (1..=keys)
        .map(|k| {
            let instance = instances[k as usize % instances.len()].clone();
            let at = start + ttl.mul_f64((k - 1) as f64 / keys as f64);
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                instance.get(&k.to_string()).await
            })
        })
        .collect();
    for task in tasks {
        task.await?.context("warming the cache")?;
    }
    Ok(())
}

#[derive(Clone, Serialize)]
/// One strategy's row of the steady table.
pub struct SteadyLine {
    strategy: Kind,
    db_loads: u64,
    /// Loads per refresh episode: 1.0 means every expiry cost exactly one load.
    loads_per_refresh: f64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    /// Requests that took at least half a load time, i.e. waited for the database.
    waited_for_load: u64,
    /// Loads started before the value was gone (XFetch early, stale-while-revalidate background).
    refreshed_early: u64,
    served_stale: u64,
    failed: u64,
    /// Redis calls that failed or ran out of time (not a column: the conclusion watches it).
    redis_errors: u64,
    /// How many requests the stream sent.
    requests: u64,
}

impl Row for SteadyLine {
    fn headers() -> Vec<&'static str> {
        vec![
            "strategy",
            "db loads",
            "loads/refresh",
            "p50",
            "p99",
            "max",
            "waited for db",
            "early refreshes",
            "served stale",
            "failed",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.strategy.label().to_string(),
            report::count(self.db_loads),
            format!("{:.2}", self.loads_per_refresh),
            report::micros(self.p50_us),
            report::micros(self.p99_us),
            report::micros(self.max_us),
            report::count(self.waited_for_load),
            report::count(self.refreshed_early),
            report::count(self.served_stale),
            report::count(self.failed),
        ]
    }
}

/// Sentences drawn from the steady stream's figures.
fn conclude(rows: &[SteadyLine], cli: &Cli) -> String {
    let get = |kind: Kind| row(rows, kind, |r| r.strategy);
    let (none, lock, xfetch, stale) = (
        get(Kind::Unprotected),
        get(Kind::Lock),
        get(Kind::XFetch),
        get(Kind::Stale),
    );
    let errors = rows.iter().map(|r| r.redis_errors).sum();
    let requests = rows.iter().map(|r| r.requests).sum();
    let mut text = report::disturbed(errors, requests)
        .map(|disturbed| format!("{disturbed} "))
        .unwrap_or_default();
    text += &format!(
        "Over {} s, every expiry without protection cost {:.2} loads ({} in all) and {} \
         requests waited for the database. The lock held it to {:.2} load per refresh, yet {} \
         requests waited for one. ",
        cli.steady_secs,
        none.loads_per_refresh,
        report::count(none.db_loads),
        report::count(none.waited_for_load),
        lock.loads_per_refresh,
        report::count(lock.waited_for_load),
    );
    text.push_str(&format!(
        "XFetch refreshed {} times before expiry and made {} loads in all ({:.2} per refresh), \
         each paid for by the request that made it: {} waited. ",
        report::count(xfetch.refreshed_early),
        report::count(xfetch.db_loads),
        xfetch.loads_per_refresh,
        report::count(xfetch.waited_for_load),
    ));
    if xfetch.loads_per_refresh >= 1.2 {
        text.push_str(
            "Its refreshes overlapped: the requests that read a key while it is being \
             recomputed keep rolling the die at rising odds, and for a key read many times per \
             load time some of them roll a recompute too, whatever the TTL. ",
        );
    }
    text.push_str(&format!(
        "Stale-while-revalidate made {} loads, served {} stale answers and kept {} requests \
         waiting (p99 {} against the lock's {}).",
        report::count(stale.db_loads),
        report::count(stale.served_stale),
        report::count(stale.waited_for_load),
        report::micros(stale.p99_us),
        report::micros(lock.p99_us),
    ));
    text
}
