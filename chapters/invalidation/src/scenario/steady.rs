//! The steady run: every strategy on the same price changes, read by every instance meanwhile,
//! and after each write a probe of every instance until all serve the new price.

use std::time::Duration;

use invalidation::keys::{Keys, generation_in};
use invalidation::{Kind, Strategy};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::Zipf;
use serde::Serialize;
use shared::metrics::LatencySummary;
use shared::report::{self, Report, Row};
use shared::staleness::Probes;
use shared::{Stage, comeback};

use super::{Phase, WRITE_EVERY, settings};
use crate::Cli;

/// How long a probe keeps asking before it records "not within the run".
const GIVE_UP: Duration = Duration::from_secs(3);

/// Runs every strategy in turn: the table, with its conclusion.
pub async fn run(cli: &Cli, stage: &Stage) -> anyhow::Result<Report<SteadyLine>> {
    let mut steady = Report::new(format!(
        "Invalidation: {} price changes per strategy, read by {} instances",
        cli.writes, cli.instances
    ));
    steady
        .setting("items", report::count(cli.items))
        .setting("skew", cli.skew)
        .setting("ttl", "1 s")
        .setting("db latency", format!("{} ms", cli.db_latency_ms))
        .setting("db", stage.db().backend())
        .setting("redis", cli.backends.redis_label());
    let mut again = Vec::new();
    for kind in Kind::ALL {
        let (line, repeated) = comeback::again_after_outage(
            &stage.conn(),
            &stage.redis_url(),
            kind.label(),
            || async move { measure(Phase::open(cli, stage, kind, settings()).await?, cli).await },
        )
        .await?;
        if repeated {
            again.push(kind.label());
        }
        steady.rows.push(line);
    }
    steady.conclusion =
        report::measured_again(&again).unwrap_or_default() + &conclude(&steady.rows);
    Ok(steady)
}

/// Readers on every instance; the writes from the back office, with a probe of every instance
/// after each.
async fn measure(phase: Phase<'_>, cli: &Cli) -> anyhow::Result<SteadyLine> {
    let readers = phase.start_readers(cli).await?;
    let bar = shared::workload::progress_bar(
        phase.kind.label(),
        cli.writes,
        cli.report.format.progress(),
    );
    let zipf = Zipf::new(cli.items as f64, cli.skew)?;
    let mut rng = StdRng::seed_from_u64(cli.seed);
    let mut probes = Probes::new(phase.instances.clone(), GIVE_UP);
    for _ in 0..cli.writes {
        if let Some(row) = phase.write(&zipf, &mut rng).await? {
            probes.start(row.id, row.version);
        }
        bar.inc(1);
        tokio::time::sleep(WRITE_EVERY).await;
    }
    let staleness = probes.finish().await?;
    bar.finish_and_clear();
    let (reads, stale_reads) = readers.stop().await?;
    let redis_errors = phase
        .instances
        .iter()
        .map(|i| i.stats().errors)
        .sum::<u64>()
        + phase.writer.stats().errors;
    let retired_bytes = if phase.kind == Kind::Generations {
        Some(old_generation_bytes(phase.stage, &phase.keys).await?)
    } else {
        None
    };
    let line = SteadyLine {
        kind: phase.kind,
        staleness: staleness.took.summary(),
        never: staleness.never,
        reads,
        stale_reads,
        queries: phase.stage.db().queries(),
        commands_per_write: phase.commands_per_write(cli.writes),
        retired_bytes,
        redis_errors,
    };
    phase.close().await?;
    Ok(line)
}

/// The memory held by keys of generations no read can reach any more (`MEMORY USAGE` of each).
async fn old_generation_bytes(stage: &Stage, keys: &Keys) -> anyhow::Result<u64> {
    let mut conn = stage.conn();
    let all = keys.namespace().keys(&mut conn).await?;
    let mut bytes = 0;
    for key in all {
        let Some(generation) = generation_in(&key) else {
            continue;
        };
        let category = keys.category_in(&key).unwrap_or_default();
        let current: Option<i64> =
            redis::AsyncCommands::get(&mut conn, keys.generation(category)).await?;
        if generation < current.unwrap_or(0) {
            let used: Option<u64> = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(&key)
                .query_async(&mut conn)
                .await?;
            bytes += used.unwrap_or(0);
        }
    }
    Ok(bytes)
}

/// One strategy's row.
#[derive(Serialize)]
pub struct SteadyLine {
    #[serde(rename = "strategy")]
    kind: Kind,
    staleness: LatencySummary,
    /// Writes whose old value was still served when the probe gave up.
    never: u64,
    reads: u64,
    stale_reads: u64,
    queries: u64,
    commands_per_write: f64,
    retired_bytes: Option<u64>,
    /// Redis calls that failed, on every instance and the back office: past a few, the row
    /// measured an outage more than the strategy.
    redis_errors: u64,
}

impl Row for SteadyLine {
    fn headers() -> Vec<&'static str> {
        vec![
            "strategy",
            "staleness p50",
            "p99",
            "max",
            "stale reads",
            "db queries",
            "redis cmds/write",
            "retired bytes",
            "redis errors",
        ]
    }

    fn cells(&self) -> Vec<String> {
        let max = if self.never > 0 {
            format!("> {} s ({})", GIVE_UP.as_secs(), self.never)
        } else {
            report::micros(self.staleness.max_us)
        };
        vec![
            self.kind.label().to_string(),
            report::micros(self.staleness.p50_us),
            report::micros(self.staleness.p99_us),
            max,
            format!(
                "{} of {}",
                report::count(self.stale_reads),
                report::count(self.reads)
            ),
            report::count(self.queries),
            format!("{:.1}", self.commands_per_write),
            self.retired_bytes.map_or("-".into(), report::count),
            report::count(self.redis_errors),
        ]
    }
}

/// The steady run's conclusion, from the numbers.
fn conclude(rows: &[SteadyLine]) -> String {
    let worst = |row: &SteadyLine| (row.never, row.staleness.max_us);
    let best = rows.iter().min_by_key(|r| worst(r)).expect("rows");
    let ttl = rows.iter().find(|r| r.kind == Kind::TtlOnly);
    let source = rows.iter().find(|r| r.kind == Kind::LocalDependencies);
    let errors = rows.iter().map(|r| r.redis_errors).sum();
    let reads = rows.iter().map(|r| r.reads).sum();
    let mut text = report::disturbed(errors, reads).map_or(String::new(), |s| s + " ");
    text += &format!(
        "{} left the old value readable for at most {}",
        best.kind.label(),
        report::micros(best.staleness.max_us)
    );
    if let Some(ttl) = ttl {
        text += &format!(
            ", TTL only for up to {} ({} stale reads)",
            report::micros(ttl.staleness.max_us),
            report::count(ttl.stale_reads)
        );
    }
    if let Some(source) = source {
        text += &format!(
            ". The source material's local dependency map served {} stale reads: another \
             instance's listing is invisible to it",
            report::count(source.stale_reads)
        );
    }
    text + "."
}
