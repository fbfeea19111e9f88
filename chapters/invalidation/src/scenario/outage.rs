//! The outage run: the same writes with Redis stopped for `--outage-ms` in the middle, then which
//! strategies still show old prices once it is back, and for how long.

use std::time::{Duration, Instant};

use invalidation::catalog::category_of;
use invalidation::{Item, Kind, Settings, Strategy};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::Zipf;
use serde::Serialize;
use shared::Stage;
use shared::report::{self, Report, Row};

use super::{Phase, WRITE_EVERY, settings};
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
        "The same with Redis stopped for {} ms in the middle of the writes",
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

/// The writes again, Redis stopped (keeping its data) for `down` after a third of them. Once it
/// is back and `SETTLE` has passed, every instance is asked for every item written while it was
/// down: the old values it still shows, and how long until none is left.
async fn measure(phase: Phase<'_>, cli: &Cli, down: Duration) -> anyhow::Result<OutageLine> {
    let readers = phase.start_readers(cli).await?;
    let zipf = Zipf::new(cli.items as f64, cli.skew)?;
    let mut rng = StdRng::seed_from_u64(cli.seed);
    let mut written_while_down = Vec::new();
    let mut returned = None;
    let mut stopped_at = None;
    for w in 0..cli.writes {
        if w == cli.writes / 3 {
            phase.stage.server().stop_keeping_data()?;
            stopped_at = Some(Instant::now());
        }
        if returned.is_none() && stopped_at.is_some_and(|at| at.elapsed() >= down) {
            restart_redis(phase.stage).await?;
            returned = Some(Instant::now());
        }
        let row = phase.write(&zipf, &mut rng).await?;
        if let Some(row) = row
            && stopped_at.is_some()
            && returned.is_none()
        {
            written_while_down.push(row);
        }
        tokio::time::sleep(WRITE_EVERY).await;
    }
    let returned = match returned {
        Some(at) => at,
        None => {
            tokio::time::sleep(down.saturating_sub(stopped_at.map_or(down, |a| a.elapsed()))).await;
            restart_redis(phase.stage).await?;
            Instant::now()
        }
    };
    tokio::time::sleep(SETTLE.saturating_sub(returned.elapsed())).await;
    let checked = returned.elapsed();
    let left = old_values_shown(&phase, &written_while_down).await;
    let mut cleared = (left == 0).then_some(checked);
    while cleared.is_none() && returned.elapsed() < CLEAR_WITHIN {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let checked = returned.elapsed();
        if old_values_shown(&phase, &written_while_down).await == 0 {
            cleared = Some(checked);
        }
    }
    let (reads, stale_reads) = readers.stop().await?;
    let line = OutageLine {
        kind: phase.kind,
        written_while_down: written_while_down.len() as u64,
        left,
        cleared,
        reads,
        stale_reads,
    };
    phase.close().await?;
    Ok(line)
}

/// How many (instance, item) pairs show a version older than the one `written` committed.
async fn old_values_shown(phase: &Phase<'_>, written: &[Item]) -> u64 {
    let mut old = 0;
    for instance in &phase.instances {
        for row in written {
            let item = instance.item(row.id).await.ok().flatten();
            let listing = instance
                .listing(category_of(row.id))
                .await
                .unwrap_or_default();
            let listed = listing.iter().find(|i| i.id == row.id).map(|i| i.version);
            let newest = phase.committed.latest(row.id);
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
            report::count(self.left),
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
