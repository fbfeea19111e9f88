//! Scenario 2: eviction. FIFO, LRU and TinyLFU at three sizes on one Zipf trace, with and without
//! a one-off scan of cold keys; Redis's two policies at the middle size; and the chart of it.
//!
//! A replay in the process is a long synchronous loop (a few hundred milliseconds at the
//! defaults, minutes with a long `--trace`). Each runs on a blocking thread of its own, so the
//! demo's task keeps listening for Ctrl-C: the run then ends as every phase's does, and the
//! runtime's shutdown stops waiting for a replay still running after a second.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;
use shared::plot::{self, Axes};
use shared::report::{self, Report, Row};
use two_tier::eviction::{self, Policy, RedisPolicy, Trace};

use crate::Cli;

/// Which policy a row measured: one in the process, or one of Redis's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnyPolicy {
    InProcess(Policy),
    Redis(RedisPolicy),
}

impl AnyPolicy {
    /// The name the table prints.
    fn label(self) -> &'static str {
        match self {
            AnyPolicy::InProcess(policy) => policy.label(),
            AnyPolicy::Redis(policy) => policy.label(),
        }
    }
}

/// The JSON report names a policy as the table does.
impl Serialize for AnyPolicy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.label())
    }
}

shared::variants! {
    /// Which trace a row replayed.
    pub enum TraceKind {
        /// The Zipf trace as drawn.
        Zipf = ("zipf", "Zipf"),
        /// The same with the scan of cold keys halfway through.
        WithScan = ("zipf-scan", "Zipf + scan"),
    }
}

/// FIFO, LRU and TinyLFU at three sizes on the Zipf trace, with and without a scan; Redis's two
/// policies at the middle size.
pub async fn run(cli: &Cli) -> anyhow::Result<Report<EvictionLine>> {
    let sizes = [
        cli.trace_keys / 100,
        cli.trace_keys / 20,
        cli.trace_keys / 5,
    ]
    .map(|s| s.max(1));
    let scan_len = (2 * sizes[2]) as usize;
    let (keys, len, skew, seed) = (cli.trace_keys, cli.trace as usize, cli.skew, cli.seed);
    let traces = tokio::task::spawn_blocking(move || {
        let zipf = || Trace::zipf(keys, len, skew, seed);
        [
            (TraceKind::Zipf, Arc::new(zipf())),
            (TraceKind::WithScan, Arc::new(zipf().with_scan(scan_len))),
        ]
    })
    .await?;
    let mut report = Report::new(format!(
        "Eviction: hit ratio over a tenth of a {}-request Zipf trace of {} keys, from its half",
        report::count(cli.trace),
        report::count(cli.trace_keys)
    ));
    report
        .setting("skew", cli.skew)
        .setting(
            "scan",
            format!(
                "{} cold keys, once each, at the half",
                report::count(scan_len as u64)
            ),
        )
        .setting("sizes", sizes.map(report::count).join(", "));
    let bar = shared::workload::progress_bar(
        "eviction",
        ((Policy::ALL.len() * sizes.len() + RedisPolicy::ALL.len()) * traces.len()) as u64,
        cli.report.format.progress(),
    );
    for policy in Policy::ALL {
        for (trace_kind, trace) in &traces {
            let mut ratios = Vec::new();
            for size in sizes {
                bar.inc(1);
                let trace = trace.clone();
                let replay =
                    tokio::task::spawn_blocking(move || eviction::hit_ratio(policy, size, &trace));
                ratios.push(Some(replay.await?));
            }
            report.rows.push(EvictionLine {
                policy: AnyPolicy::InProcess(policy),
                trace: *trace_kind,
                hit_ratios: ratios,
            });
        }
    }
    for policy in RedisPolicy::ALL {
        for (trace_kind, trace) in &traces {
            let replay = eviction::redis_hit_ratio(policy, sizes[1], trace)
                .await
                .context(
                    "the Redis eviction replay (a private redis-server with a memory limit) failed",
                )?;
            bar.inc(1);
            report.rows.push(EvictionLine {
                policy: AnyPolicy::Redis(policy),
                trace: *trace_kind,
                hit_ratios: vec![None, Some(replay.hit_ratio), None],
            });
        }
    }
    bar.finish_and_clear();
    report.conclusion = conclude(&report.rows, &sizes);
    if let Some(path) = &cli.report.plot {
        chart(path, &report.rows, &sizes)?;
        eprintln!("chart written to {}", path.display());
    }
    Ok(report)
}

/// One policy on one trace.
#[derive(Serialize)]
pub struct EvictionLine {
    policy: AnyPolicy,
    trace: TraceKind,
    /// At each of the three sizes; `None` where it was not measured.
    hit_ratios: Vec<Option<f64>>,
}

impl Row for EvictionLine {
    fn headers() -> Vec<&'static str> {
        vec!["policy", "trace", "1% of keys", "5%", "20%"]
    }

    fn cells(&self) -> Vec<String> {
        let mut cells = vec![
            self.policy.label().to_string(),
            self.trace.label().to_string(),
        ];
        cells.extend(
            self.hit_ratios
                .iter()
                .map(|r| r.map_or("-".to_string(), report::percent)),
        );
        cells
    }
}

/// The sentences the eviction table ends with, computed from its rows.
fn conclude(rows: &[EvictionLine], sizes: &[u64; 3]) -> String {
    let at = |policy: AnyPolicy, trace: TraceKind, size: usize| {
        rows.iter()
            .find(|r| r.policy == policy && r.trace == trace)
            .and_then(|r| r.hit_ratios[size])
            .unwrap_or(0.0)
    };
    let (fifo, lru, tiny) = (
        AnyPolicy::InProcess(Policy::Fifo),
        AnyPolicy::InProcess(Policy::Lru),
        AnyPolicy::InProcess(Policy::TinyLfu),
    );
    let (redis_lru, redis_lfu) = (
        AnyPolicy::Redis(RedisPolicy::AllKeysLru),
        AnyPolicy::Redis(RedisPolicy::AllKeysLfu),
    );
    let (zipf, scan) = (TraceKind::Zipf, TraceKind::WithScan);
    let cost = |policy| 100.0 * (at(policy, zipf, 2) - at(policy, scan, 2));
    format!(
        "At {} entries, TinyLFU hit {} against LRU's {} and FIFO's {}. At {}, the scan cost LRU \
         {:.1} points, FIFO {:.1} and TinyLFU {:.1}. Redis at {} keys: allkeys-lfu {} against \
         allkeys-lru {} ({} and {} after the scan).",
        report::count(sizes[0]),
        report::percent(at(tiny, zipf, 0)),
        report::percent(at(lru, zipf, 0)),
        report::percent(at(fifo, zipf, 0)),
        report::count(sizes[2]),
        cost(lru),
        cost(fifo),
        cost(tiny),
        report::count(sizes[1]),
        report::percent(at(redis_lfu, zipf, 1)),
        report::percent(at(redis_lru, zipf, 1)),
        report::percent(at(redis_lfu, scan, 1)),
        report::percent(at(redis_lru, scan, 1)),
    )
}

/// The hit ratio against the size, one curve per row measured at every size (the in-process
/// policies), drawn to `path`.
fn chart(path: &Path, rows: &[EvictionLine], sizes: &[u64; 3]) -> anyhow::Result<()> {
    let series: Vec<(String, Vec<(f64, f64)>)> = rows
        .iter()
        .filter(|r| r.hit_ratios.iter().all(Option::is_some))
        .map(|r| {
            let points = sizes
                .iter()
                .zip(&r.hit_ratios)
                .map(|(size, ratio)| (*size as f64, ratio.unwrap_or(0.0) * 100.0))
                .collect();
            (format!("{}, {}", r.policy.label(), r.trace.label()), points)
        })
        .collect();
    let series: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(l, p)| (l.as_str(), p.clone()))
        .collect();
    let axes = Axes {
        x: "L1 size (entries)",
        y: "hit ratio (%)",
        log_x: true,
    };
    plot::curves(path, "L1 hit ratio by eviction policy", axes, &series)?;
    Ok(())
}
