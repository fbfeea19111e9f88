//! The demo binary: a small run measures every strategy, and the outage run shows the outbox
//! leaving no old value behind; bad input exits non-zero with advice.

use shared::process::DemoOutput;

use serde_json::Value;

fn demo(args: &[&str]) -> DemoOutput {
    shared::process::demo_output(env!("CARGO_BIN_EXE_invalidation"), args).expect("run the demo")
}

fn row<'a>(report: &'a Value, strategy: &str) -> &'a Value {
    let rows = report["rows"].as_array().expect("rows");
    rows.iter()
        .find(|row| row["strategy"] == strategy)
        .unwrap_or_else(|| panic!("no row {strategy:?} in {rows:?}"))
}

#[test]
fn a_small_run_measures_every_strategy_and_the_outbox_survives_the_outage() {
    let out = demo(&[
        "--writes",
        "12",
        "--items",
        "40",
        "--instances",
        "2",
        "--db-latency-ms",
        "1",
        "--outage-ms",
        "150",
        "--pause-keys",
        "5000",
        "--format",
        "json",
    ]);
    let stderr = out.stderr.as_str();
    assert!(out.status.success(), "the demo failed: {stderr}");
    let reports: Vec<Value> = serde_json::Deserializer::from_str(&out.stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("two JSON reports");
    assert_eq!(
        reports.len(),
        3,
        "the steady, KEYS-against-SCAN and outage reports"
    );
    let (steady, pauses, outage) = (&reports[0], &reports[1], &reports[2]);
    for walk in pauses["rows"].as_array().unwrap() {
        assert_eq!(
            walk["matched"], 50,
            "each walk deletes the 1% of 5,000 keys that match: {walk}"
        );
    }

    // Those that invalidate before the write returns: every instance is fresh within a few ms
    // of it (the probes' first tries), far inside the 1 s TTL.
    for strategy in [
        "delete on write",
        "generations",
        "tags in Redis",
        "pattern delete",
    ] {
        let line = row(steady, strategy);
        assert_eq!(line["never"], 0, "{strategy}: {line}");
        assert!(
            line["staleness"]["max_us"].as_u64().unwrap() < 500_000,
            "{strategy}: staleness max under half the TTL: {line}"
        );
    }
    let ttl_only = row(steady, "TTL only");
    assert!(
        ttl_only["staleness"]["max_us"].as_u64().unwrap() > 0,
        "TTL only leaves old values readable: {ttl_only}"
    );
    assert!(
        row(steady, "generations")["retired_bytes"]
            .as_u64()
            .unwrap()
            > 0,
        "generations keep retired keys in memory until their TTL"
    );

    let outbox = row(outage, "outbox + relay");
    assert_eq!(
        outbox["left"], 0,
        "the outbox leaves no old value once Redis is back: {outbox}"
    );
    assert!(
        outbox["cleared"].is_object(),
        "the outbox's old values are all gone within the run: {outbox}"
    );
    // Each instance read the items the outage's writes change just before Redis stopped, and no
    // write follows its return: an invalidation lost in the outage leaves old values, whatever
    // the timing (generations showed 0 in one run and 4 in others while writes went on).
    for strategy in ["delete on write", "generations", "tags in Redis"] {
        let line = row(outage, strategy);
        assert!(
            line["written_while_down"].as_u64().unwrap() > 0,
            "{strategy}: writes happened while Redis was down: {line}"
        );
        assert!(
            line["left"].as_u64().unwrap() > 0,
            "{strategy}: its invalidations failed while Redis was down, so old values are \
             still shown once it is back; found none: {line}"
        );
    }
}

#[test]
fn bad_flags_exit_non_zero_with_the_accepted_range() {
    let out = demo(&["--instances", "1"]);
    assert!(!out.status.success());
    let stderr = out.stderr.as_str();
    assert!(
        stderr.contains("from 2 to 32"),
        "the error names the accepted range: {stderr}"
    );
}

#[test]
fn a_part_that_needs_a_private_server_says_so_before_any_report() {
    shared::process::check_advice_without_redis_server(
        env!("CARGO_BIN_EXE_invalidation"),
        "the outage run",
        "--outage-ms 0",
    );
}
