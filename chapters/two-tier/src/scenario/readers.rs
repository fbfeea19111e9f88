//! Scenario 1: instances read items while the back office changes prices, once per reader kind,
//! and a table compares their speed with how stale what they served was.

use std::time::Duration;

use serde::Serialize;
use shared::metrics::LatencySummary;
use shared::report::{self, Report, Row};
use shared::{Stage, comeback};
use two_tier::{Kind, Settings, Stats};

use super::layers::{self, LayerLine};
use super::phase::{GIVE_UP, Measured, Phase};
use crate::Cli;

/// Runs every reader kind in turn: the readers' table, and the two-tier cache's breakdown by the
/// layer that answered.
pub async fn run(
    cli: &Cli,
    stage: &Stage,
) -> anyhow::Result<(Report<ReaderLine>, Option<Report<LayerLine>>)> {
    let settings = Settings {
        l1_capacity: cli.l1_capacity,
        l1_ttl: Duration::from_millis(cli.l1_ttl_ms),
        ..Settings::default()
    };
    let mut readers = Report::new(format!(
        "Two tiers: {} instances reading {} items for {} ms each, a price change every {} ms",
        cli.instances,
        report::count(cli.items),
        report::count(cli.run_ms),
        cli.write_every_ms
    ));
    readers
        .setting("skew", cli.skew)
        .setting(
            "L1",
            format!(
                "{} entries, {} ms",
                report::count(cli.l1_capacity),
                cli.l1_ttl_ms
            ),
        )
        .setting("db latency", format!("{} ms", cli.db_latency_ms))
        .setting("db", stage.db().backend())
        .setting("redis", cli.backends.redis_label());
    let mut layers = None;
    let mut again = Vec::new();
    for kind in Kind::ALL {
        let settings = &settings;
        let (measured, repeated) = comeback::again_after_outage(
            &stage.conn(),
            &stage.redis_url(),
            kind.label(),
            || async move {
                Phase::open(cli, stage, kind, settings.clone())
                    .await?
                    .run(cli)
                    .await
            },
        )
        .await?;
        if repeated {
            again.push(kind.label());
        }
        if kind == Kind::TwoTier {
            layers = Some(layers::breakdown(&measured));
        }
        readers.rows.push(ReaderLine::new(&measured));
    }
    readers.conclusion =
        report::measured_again(&again).unwrap_or_default() + &conclude(&readers.rows, &settings);
    Ok((readers, layers))
}

/// One reader kind's row.
#[derive(Serialize)]
pub struct ReaderLine {
    #[serde(rename = "reader")]
    kind: Kind,
    requests_per_s: f64,
    latency: LatencySummary,
    l1_hit_ratio: f64,
    l2_hit_ratio: f64,
    db_queries: u64,
    /// `None` when Redis failed during the turn and the count is unknown.
    commands_per_read: Option<f64>,
    reads: u64,
    stale_reads: u64,
    beyond_bound: u64,
    staleness: LatencySummary,
    /// Writes whose old value was still served when the probe gave up.
    never: u64,
    redis_errors: u64,
    /// How long its readers warmed the caches before the measurement, in ms.
    warm_up_ms: u64,
    /// Whether the caches were warm by then; `false`: the warm-up's limit ended it.
    warmed: bool,
}

impl ReaderLine {
    /// The row of what one turn measured.
    fn new(measured: &Measured) -> Self {
        let Measured {
            counts,
            before,
            after,
            ..
        } = measured;
        ReaderLine {
            kind: measured.kind,
            requests_per_s: counts.reads as f64 / measured.elapsed.as_secs_f64(),
            latency: counts.all.summary(),
            // Saturating: cache-aside's L2 hits are its GETs less the replies its connection
            // served from memory, a difference that can shrink between two snapshots.
            l1_hit_ratio: ratio(after.l1_hits.saturating_sub(before.l1_hits), after, before),
            l2_hit_ratio: ratio(after.l2_hits.saturating_sub(before.l2_hits), after, before),
            db_queries: measured.db_queries,
            commands_per_read: measured
                .commands
                .map(|commands| commands as f64 / counts.reads.max(1) as f64),
            reads: counts.reads,
            stale_reads: counts.stale,
            beyond_bound: counts.beyond_bound,
            staleness: measured.staleness.took.summary(),
            never: measured.staleness.never,
            redis_errors: after.redis_errors - before.redis_errors,
            warm_up_ms: measured.warm_up.as_millis() as u64,
            warmed: measured.warmed,
        }
    }
}

/// A share of the reads counted between `before` and `after`.
fn ratio(part: u64, after: &Stats, before: &Stats) -> f64 {
    part as f64 / (after.reads() - before.reads()).max(1) as f64
}

impl Row for ReaderLine {
    fn headers() -> Vec<&'static str> {
        vec![
            "reader",
            "requests/s",
            "p50",
            "p99",
            "L1 hits",
            "L2 hits",
            "db queries",
            "redis cmds/read",
            "stale reads",
            "beyond bound",
            "staleness p99",
        ]
    }

    fn cells(&self) -> Vec<String> {
        let staleness = if self.never > 0 {
            format!("> {} s ({} writes)", GIVE_UP.as_secs(), self.never)
        } else {
            report::micros(self.staleness.p99_us)
        };
        vec![
            self.kind.label().to_string(),
            report::count(self.requests_per_s as u64),
            report::micros(self.latency.p50_us),
            report::micros(self.latency.p99_us),
            report::percent(self.l1_hit_ratio),
            report::percent(self.l2_hit_ratio),
            report::count(self.db_queries),
            self.commands_per_read
                .map_or("-".into(), |c| format!("{c:.2}")),
            report::count(self.stale_reads),
            report::count(self.beyond_bound),
            staleness,
        ]
    }
}

/// The sentences the readers' table ends with, computed from its rows.
fn conclude(rows: &[ReaderLine], settings: &Settings) -> String {
    let find = |kind: Kind| rows.iter().find(|r| r.kind == kind);
    let (Some(redis), Some(source), Some(two_tier)) = (
        find(Kind::RedisOnly),
        find(Kind::Source),
        find(Kind::TwoTier),
    ) else {
        return String::new();
    };
    let errors: u64 = rows.iter().map(|r| r.redis_errors).sum();
    let reads: u64 = rows.iter().map(|r| r.reads).sum();
    let mut out = report::disturbed(errors, reads).unwrap_or_default();
    out.push_str(&format!(
        "The two-tier cache served {:.1}x the requests/s of Redis only (p50 {} against {}), with \
         {} stale reads beyond its {} ms bound; the source's dictionary L1 served {} reads of \
         values older than {} ms{}. ",
        two_tier.requests_per_s / redis.requests_per_s.max(1.0),
        report::micros(two_tier.latency.p50_us),
        report::micros(redis.latency.p50_us),
        report::count(two_tier.beyond_bound),
        settings.l1_ttl.as_millis(),
        report::count(source.beyond_bound),
        settings.l1_ttl.as_millis(),
        match source.never {
            0 => String::new(),
            1 => format!(
                ", and 1 write was never seen by some instance within {} s",
                GIVE_UP.as_secs()
            ),
            n => format!(
                ", and {n} writes were never seen by some instance within {} s",
                GIVE_UP.as_secs()
            ),
        },
    ));
    out.push_str(&warm_up_sentence(rows));
    if rows.iter().any(|r| r.commands_per_read.is_none()) {
        out.push_str(
            "A dash under redis cmds/read: Redis failed during that turn, so the commands it \
             processed are not known. ",
        );
    }
    if let Some(tracking) = find(Kind::Tracking) {
        out.push_str(&format!(
            "Client tracking answered {} of reads from memory at {:.1}x Redis only's requests/s, \
             with {} stale reads beyond the bound.",
            report::percent(tracking.l1_hit_ratio),
            tracking.requests_per_s / redis.requests_per_s.max(1.0),
            report::count(tracking.beyond_bound),
        ));
    }
    out
}

/// What the warm-ups took, and which kinds were measured before their caches were warm.
fn warm_up_sentence(rows: &[ReaderLine]) -> String {
    let ms: Vec<u64> = rows.iter().map(|r| r.warm_up_ms).collect();
    let (low, high) = (ms.iter().min().unwrap_or(&0), ms.iter().max().unwrap_or(&0));
    let mut text = format!(
        "Each reader kind was measured once its caches were warm (under 1% of reads to the \
         database, L1's share steady), after {low} to {high} ms of reading. "
    );
    let cold: Vec<&str> = rows
        .iter()
        .filter(|r| !r.warmed)
        .map(|r| r.kind.label())
        .collect();
    if !cold.is_empty() {
        text.push_str(&format!(
            "Not warm within the limit, so their figures include cold loads: {}. ",
            cold.join(", ")
        ));
    }
    text
}
