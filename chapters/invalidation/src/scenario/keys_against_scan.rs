//! `KEYS` against `SCAN`: the same pattern delete done both ways on a Redis full of keys, and
//! what every other client lived through meanwhile.

use invalidation::pattern::{SCAN_COUNT, Walk, pause_under};
use serde::Serialize;
use shared::metrics::LatencySummary;
use shared::report::{self, Report, Row};
use shared::{Stage, comeback};

use crate::Cli;

/// Fills Redis with `--pause-keys` keys, 1% of them matching a pattern, and deletes the matching
/// ones twice (refilled in between): once with `KEYS`, once with `SCAN` + `UNLINK`, while another
/// connection's `PING`s record what every other client lived through.
pub async fn run(cli: &Cli, stage: &Stage) -> anyhow::Result<Report<WalkLine>> {
    let what = "the KEYS-against-SCAN measurement";
    let (mut report, again) =
        comeback::again_after_outage(&stage.conn(), &stage.redis_url(), what, || {
            measure(cli, stage)
        })
        .await?;
    if again {
        report.conclusion =
            report::measured_again(&["both walks"]).unwrap_or_default() + &report.conclusion;
    }
    Ok(report)
}

/// Both walks, on keys filled for each.
async fn measure(cli: &Cli, stage: &Stage) -> anyhow::Result<Report<WalkLine>> {
    let namespace = stage.namespace().child("pause");
    // One hash tag: on a cluster, the whole walk is on one master, as it would be on one server.
    let slot = namespace.key("pause");
    let mut report = Report::new(format!(
        "Deleting 1% of {} keys by pattern: how long every other client waited",
        report::count(cli.pause_keys)
    ));
    report.setting("scan count", SCAN_COUNT);
    let watcher = stage.instance().await?.conn;
    for walk in [Walk::Keys, Walk::Scan] {
        fill(stage, &slot, cli.pause_keys).await?;
        let pattern = format!("{slot}:m:*");
        let pause = pause_under(walk, &stage.conn(), &watcher, &pattern).await?;
        report.rows.push(WalkLine {
            walk,
            matched: pause.matched as u64,
            took_us: pause.took.as_micros() as u64,
            pings: pause.pings,
        });
    }
    let line = |walk: Walk| {
        report
            .rows
            .iter()
            .find(|r| r.walk == walk)
            .expect("both walks ran")
    };
    let (keys, scan) = (line(Walk::Keys), line(Walk::Scan));
    let conclusion = format!(
        "KEYS held every other client for up to {} (a PING's longest wait), SCAN for up to {}; \
         both deleted the same {} keys, SCAN taking {} in all against {}.",
        report::micros(keys.pings.max_us),
        report::micros(scan.pings.max_us),
        report::count(scan.matched),
        report::micros(scan.took_us),
        report::micros(keys.took_us),
    );
    report.conclusion = conclusion;
    let mut conn = stage.conn();
    shared::namespace::unlink_matching(&mut conn, &namespace.pattern(), 1_000).await?;
    Ok(report)
}

/// `count` keys under `slot`, one in a hundred named to match `...:m:*`, each with a TTL.
async fn fill(stage: &Stage, slot: &str, count: u64) -> anyhow::Result<()> {
    let mut conn = stage.conn();
    for start in (0..count).step_by(1_000) {
        let mut pipe = redis::pipe();
        for n in start..(start + 1_000).min(count) {
            let kind = if n % 100 == 0 { "m" } else { "x" };
            pipe.set_ex(format!("{slot}:{kind}:{n}"), n, 300).ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
    }
    Ok(())
}

/// One row of the `KEYS` against `SCAN` table: one way of walking the keyspace.
#[derive(Serialize)]
pub struct WalkLine {
    #[serde(serialize_with = "walk_label")]
    walk: Walk,
    matched: u64,
    took_us: u64,
    pings: LatencySummary,
}

/// A row's walk in the JSON report: its label, as in the table.
fn walk_label<S: serde::Serializer>(walk: &Walk, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(walk.label())
}

impl Row for WalkLine {
    fn headers() -> Vec<&'static str> {
        vec![
            "walk",
            "keys deleted",
            "took",
            "PING p50",
            "PING max",
            "PINGs",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.walk.label().to_string(),
            report::count(self.matched),
            report::micros(self.took_us),
            report::micros(self.pings.p50_us),
            report::micros(self.pings.max_us),
            report::count(self.pings.count),
        ]
    }
}
