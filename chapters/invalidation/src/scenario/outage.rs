//! The outage run: the same writes, the last third of them with Redis stopped, then which
//! strategies still show old prices once it is back, and for how long.
//!
//! Its outcome is a property of each strategy, not of the run's timing. Just before Redis stops,
//! every instance reads each item the outage's writes will change, and its listing, so each of
//! those prices has an old value cached everywhere; and no write follows Redis's return, so no later write to the
//! same category or tag removes an old value by chance (a generation bump, say). Each row counts
//! what the outage alone left. (When the writes continued after the return, generations showed 0
//! old values in one run and 4 in three others, depending on which categories the next writes
//! happened to hit.)

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use invalidation::catalog::category_of;
use invalidation::{Kind, Settings, Strategy};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::Zipf;
use serde::Serialize;
use shared::Stage;
use shared::report::{self, Report, Row};

use super::{Phase, WRITE_EVERY, draw, settings};
use crate::Cli;

/// How long after Redis returns the old values are counted: time for a relay's retry and a
/// subscriber's resubscription.
const SETTLE: Duration = Duration::from_millis(300);
/// How long after Redis returns the outage run waits for the old values to go.
const CLEAR_WITHIN: Duration = Duration::from_millis(1_000);

/// The outage run's settings: a TTL of 5 s, so that an old value that lives until its TTL is
/// told apart from one a strategy removed.
fn outage_settings() -> Settings {
    Settings {
        ttl: Duration::from_secs(5),
        local_ttl: Duration::from_secs(5),
        ..settings()
    }
}

/// Runs every strategy but the local dependency map (its flaw shows without an outage) on
/// `stage`, whose Redis is a private server it may stop: the table, with its conclusion.
pub async fn run(cli: &Cli, stage: &Stage) -> anyhow::Result<Report<OutageLine>> {
    let mut outage = Report::new(format!(
        "The same writes, the last third with Redis stopped (for at least {} ms)",
        cli.outage_ms
    ));
    outage
        .setting(
            "redis",
            "a private server, stopped and restarted with its data",
        )
        .setting("db", stage.db().backend());
    let down = Duration::from_millis(cli.outage_ms);
    for kind in Kind::ALL {
        if kind == Kind::LocalDependencies {
            continue; // its flaw shows without an outage
        }
        let phase = Phase::open(cli, stage, kind, outage_settings()).await?;
        outage.rows.push(measure(phase, cli, down).await?);
    }
    outage.conclusion = conclude(&outage.rows);
    Ok(outage)
}

/// The writes again: the first two thirds with Redis up; then every instance reads each item
/// the last third will change, and its listing (so each has an old value cached), Redis stops
/// (keeping its data), the last third is written, and Redis restarts once it has been down for
/// `down`. Once it is back and `SETTLE` has passed, every instance is asked for every item
/// written while it was down: the old values it still shows, and how long until none is left.
async fn measure(phase: Phase<'_>, cli: &Cli, down: Duration) -> anyhow::Result<OutageLine> {
    let readers = phase.start_readers(cli).await?;
    let zipf = Zipf::new(cli.items as f64, cli.skew)?;
    let mut rng = StdRng::seed_from_u64(cli.seed);
    let writes: Vec<(i64, i64)> = (0..cli.writes).map(|_| draw(&zipf, &mut rng)).collect();
    let (before, during) = writes.split_at(writes.len() * 2 / 3);
    for &(id, price) in before {
        phase.set_price(id, price).await?;
        tokio::time::sleep(WRITE_EVERY).await;
    }
    let ids: BTreeSet<i64> = during.iter().map(|&(id, _)| id).collect();
    read_each(&phase, &ids).await;
    phase.stage.server().stop_keeping_data()?;
    let stopped_at = Instant::now();
    let mut written_while_down = 0;
    for &(id, price) in during {
        written_while_down += phase.set_price(id, price).await?.is_some() as u64;
        tokio::time::sleep(WRITE_EVERY).await;
    }
    tokio::time::sleep(down.saturating_sub(stopped_at.elapsed())).await;
    restart_redis(phase.stage).await?;
    let returned = Instant::now();
    tokio::time::sleep(SETTLE.saturating_sub(returned.elapsed())).await;
    let checked = returned.elapsed();
    let left = old_values_shown(&phase, &ids).await;
    let mut cleared = (left == 0).then_some(checked);
    while cleared.is_none() && returned.elapsed() < CLEAR_WITHIN {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let checked = returned.elapsed();
        if old_values_shown(&phase, &ids).await == 0 {
            cleared = Some(checked);
        }
    }
    let (reads, stale_reads) = readers.stop().await?;
    let line = OutageLine {
        kind: phase.kind,
        written_while_down,
        items_written: ids.len() as u64,
        pairs: (phase.instances.len() * ids.len()) as u64,
        left,
        cleared,
        reads,
        stale_reads,
    };
    phase.close().await?;
    Ok(line)
}

/// Every instance reads each of `ids` and its listing, so that each holds, in Redis or in its
/// own memory, a value that a write during the outage makes old. A read that fails is left: it
/// only means one old value fewer, which the row shows.
async fn read_each(phase: &Phase<'_>, ids: &BTreeSet<i64>) {
    for instance in &phase.instances {
        for &id in ids {
            let _ = instance.item(id).await;
            let _ = instance.listing(category_of(id)).await;
        }
    }
}

/// How many (instance, item) pairs show a version older than the newest committed, over `ids`.
async fn old_values_shown(phase: &Phase<'_>, ids: &BTreeSet<i64>) -> u64 {
    let mut old = 0;
    for instance in &phase.instances {
        for &id in ids {
            let item = instance.item(id).await.ok().flatten();
            let listing = instance.listing(category_of(id)).await.unwrap_or_default();
            let listed = listing.iter().find(|i| i.id == id).map(|i| i.version);
            let newest = phase.committed.latest(id);
            if item.is_some_and(|i| i.version < newest) || listed.is_some_and(|v| v < newest) {
                old += 1;
            }
        }
    }
    old
}

/// Restarts the stopped Redis and waits until the stage's own connection answers again (it
/// reconnects on first use after the restart).
async fn restart_redis(stage: &Stage) -> anyhow::Result<()> {
    stage.server().restart()?;
    let mut conn = stage.conn();
    let command = redis::cmd("PING");
    for _ in 0..100 {
        let ping = command.query_async::<String>(&mut conn);
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(100), ping).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("the restarted Redis did not answer within 10 s")
}

/// One strategy's row in the outage run.
#[derive(Serialize)]
pub struct OutageLine {
    #[serde(rename = "strategy")]
    kind: Kind,
    written_while_down: u64,
    /// How many items those writes changed (an item written twice counts once).
    items_written: u64,
    /// (instance, item) pairs that could show an old value: instances x `items_written`.
    pairs: u64,
    /// (instance, item) pairs still showing an old version `SETTLE` after Redis returned.
    left: u64,
    /// From Redis's return until no instance showed an old version; `None`: not within
    /// `CLEAR_WITHIN`.
    cleared: Option<Duration>,
    reads: u64,
    stale_reads: u64,
}

impl Row for OutageLine {
    fn headers() -> Vec<&'static str> {
        vec![
            "strategy",
            "writes while down",
            "old values 300 ms after",
            "all gone after",
            "stale reads",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.kind.label().to_string(),
            report::count(self.written_while_down),
            format!(
                "{} of {}",
                report::count(self.left),
                report::count(self.pairs)
            ),
            self.cleared.map_or(
                format!(
                    "> {:.1} s (left to the {} s TTL)",
                    CLEAR_WITHIN.as_secs_f64(),
                    outage_settings().ttl.as_secs()
                ),
                |d| report::micros(d.as_micros() as u64),
            ),
            format!(
                "{} of {}",
                report::count(self.stale_reads),
                report::count(self.reads)
            ),
        ]
    }
}

/// The outage run's conclusion, from the numbers.
fn conclude(rows: &[OutageLine]) -> String {
    let names = |rows: Vec<&OutageLine>| -> String {
        let names: Vec<&str> = rows.iter().map(|r| r.kind.label()).collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    };
    let clean = names(rows.iter().filter(|r| r.left == 0).collect());
    let stuck = names(rows.iter().filter(|r| r.cleared.is_none()).collect());
    format!(
        "Once Redis was back, no instance showed an old price with: {clean}. Old prices were \
         still shown {:.1} s after it returned, to be removed only by their TTL, with: {stuck}.",
        CLEAR_WITHIN.as_secs_f64()
    )
}
