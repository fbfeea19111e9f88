//! `faults --soak-secs N`: the same traffic for minutes, without faults, sampling memory, then
//! the keys left without a TTL.
//!
//! A leak shows only over time: a map that is never pruned, a histogram that keeps every
//! value, a key written without a TTL. So the soak samples the process's resident memory (both
//! instances live in this one process), Redis's, each instance's disk layer and the views' queue
//! every few seconds, and at the end lists the keys the service left without a TTL. The views'
//! queues are the only keys meant to have none: they hold acknowledged writes, not copies.

use std::time::{Duration, Instant};

use capstone::telemetry::resident_memory;
use serde::Serialize;
use shared::Stage;
use shared::report::{self, Row};

use super::audit::{self, Audit};
use super::{Options, Traffic};
use crate::scenario::plan::Mix;

/// How often memory is sampled.
pub const EVERY: Duration = Duration::from_secs(10);
/// The first minute fills the caches and the allocator's pools: memory is judged after it.
pub const WARM_UP: Duration = Duration::from_secs(60);

/// One sample.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// When, s from the start.
    pub at_s: f64,
    /// This process's resident memory, both instances, bytes.
    pub process_bytes: u64,
    /// Redis's `used_memory`, bytes.
    pub redis_bytes: u64,
    /// Each instance's disk layer, bytes.
    pub disk_bytes: Vec<u64>,
    /// Views waiting to be flushed.
    pub pending: u64,
    /// The hit ratio of the product and page reads since the last sample.
    pub hit_ratio: Option<f64>,
}

/// What the soak found.
pub struct Soaked {
    /// The traffic.
    pub traffic: Traffic,
    /// The memory samples.
    pub samples: Vec<Sample>,
    /// The writes' audit.
    pub audits: Vec<Audit>,
    /// Keys of the service without a TTL, the views' queues left out.
    pub without_ttl: Vec<String>,
    /// The views' queue keys (no TTL, by design).
    pub queue_keys: usize,
}

/// The soak: `secs` seconds of `mix`'s traffic at the options' rate.
pub async fn run(
    stage: &Stage,
    accounts: sessions::Accounts,
    mix: Mix,
    options: &Options,
    length: Duration,
) -> anyhow::Result<Soaked> {
    let mix = Mix {
        requests: (options.rate * length.as_secs_f64()) as u64,
        ..mix
    };
    let before = audit::Rows::read(stage.db()).await?;
    let (traffic, mut samples) = super::under_traffic(
        stage,
        accounts,
        &mix,
        options,
        false,
        async |_, running, start: Instant| {
            let mut samples = Vec::new();
            let mut conn = stage.conn();
            while start.elapsed() < length {
                tokio::time::sleep(EVERY.min(length.saturating_sub(start.elapsed()))).await;
                let info: redis::InfoDict = redis::cmd("INFO")
                    .arg("memory")
                    .query_async(&mut conn)
                    .await?;
                let backlog = running.services[0].news.backlog().await;
                samples.push(Sample {
                    at_s: start.elapsed().as_secs_f64(),
                    process_bytes: resident_memory().unwrap_or(0),
                    redis_bytes: info.get("used_memory").unwrap_or(0),
                    disk_bytes: running
                        .services
                        .iter()
                        .map(|s| s.pages.disk().map_or(0, |d| d.bytes()))
                        .collect(),
                    pending: backlog.map_or(0, |b| b.pending),
                    hit_ratio: None,
                });
            }
            Ok(samples)
        },
    )
    .await?;
    let mut from = 0;
    for sample in &mut samples {
        let to = (sample.at_s.round() as usize).min(traffic.reads.len());
        let (hits, all) = traffic.reads[from.min(to)..to]
            .iter()
            .fold((0, 0), |(h, a), (hits, all)| (h + hits, a + all));
        sample.hit_ratio = (all > 0).then(|| hits as f64 / all as f64);
        from = to;
    }
    let after = audit::Rows::read(stage.db()).await?;
    let audits = audit::audit(&traffic.outcomes, &before, &after);
    let (without_ttl, queue_keys) = keys_without_ttl(stage).await?;
    Ok(Soaked {
        traffic,
        samples,
        audits,
        without_ttl,
        queue_keys,
    })
}

/// The run's keys without a TTL, the views' queues apart (their count).
async fn keys_without_ttl(stage: &Stage) -> redis::RedisResult<(Vec<String>, usize)> {
    let mut conn = stage.conn();
    let queues = stage
        .namespace()
        .child("faults")
        .child("views")
        .prefix()
        .to_string();
    let pattern = stage.namespace().pattern();
    let mut cursor = 0u64;
    let (mut without, mut queue_keys) = (Vec::new(), 0);
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1_000)
            .query_async(&mut conn)
            .await?;
        for key in keys {
            let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await?;
            match (ttl, key.starts_with(&queues)) {
                (-1, true) => queue_keys += 1,
                (-1, false) => without.push(key),
                _ => {}
            }
        }
        if next == 0 {
            return Ok((without, queue_keys));
        }
        cursor = next;
    }
}

impl Row for Sample {
    fn headers() -> Vec<&'static str> {
        vec![
            "at",
            "process",
            "redis",
            "disk (each instance)",
            "views queued",
            "hit ratio",
        ]
    }

    fn cells(&self) -> Vec<String> {
        let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1 << 20) as f64);
        let kib = |b: &u64| format!("{} KiB", report::count(b / 1024));
        let disks: Vec<String> = self.disk_bytes.iter().map(kib).collect();
        vec![
            format!("{:.0} s", self.at_s),
            mib(self.process_bytes),
            mib(self.redis_bytes),
            disks.join(" / "),
            report::count(self.pending),
            self.hit_ratio.map_or("-".to_string(), report::percent),
        ]
    }
}
