//! The demo binary: a small run measures every reader and every eviction policy, the two-tier
//! cache within its bound and the source's L1 beyond it; bad input exits non-zero with advice.

use shared::process::DemoOutput;

use serde_json::Value;

fn demo(args: &[&str]) -> DemoOutput {
    shared::process::demo_output(env!("CARGO_BIN_EXE_two-tier"), args).expect("run the demo")
}

fn row<'a>(report: &'a Value, field: &str, name: &str) -> &'a Value {
    let rows = report["rows"].as_array().expect("rows");
    rows.iter()
        .find(|row| row[field] == name)
        .unwrap_or_else(|| panic!("no row {name:?} in {rows:?}"))
}

#[test]
fn a_small_run_keeps_the_two_tier_cache_within_its_bound_and_the_source_beyond_it() {
    let out = demo(&[
        "--run-ms",
        "800",
        "--instances",
        "2",
        "--items",
        "100",
        "--l1-ttl-ms",
        "100",
        "--trace",
        "20000",
        "--trace-keys",
        "1000",
        "--format",
        "json",
    ]);
    let stderr = out.stderr.as_str();
    assert!(out.status.success(), "the demo failed: {stderr}");
    let reports: Vec<Value> = serde_json::Deserializer::from_str(&out.stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("JSON reports");
    assert_eq!(
        reports.len(),
        3,
        "the readers, the layers and the eviction reports"
    );
    let (readers, layers, eviction) = (&reports[0], &reports[1], &reports[2]);

    let two_tier = row(readers, "reader", "two-tier + backplane");
    assert_eq!(
        two_tier["beyond_bound"], 0,
        "the two-tier cache keeps its bound: {two_tier}"
    );
    assert!(
        two_tier["l1_hit_ratio"].as_f64().unwrap() > 0.5,
        "{two_tier}"
    );
    let source = row(readers, "reader", "dict L1 (source)");
    assert!(
        source["beyond_bound"].as_u64().unwrap() > 0,
        "the source's L1 serves values older than the bound: {source}"
    );
    let redis_only = row(readers, "reader", "Redis only");
    assert_eq!(redis_only["l1_hit_ratio"], 0.0, "{redis_only}");
    assert!(
        layers["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["layer"] == "L1"),
        "the two-tier breakdown has an L1 row: {layers}"
    );

    let rows = eviction["rows"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        10,
        "three policies and Redis's two, on two traces each"
    );
    for line in rows {
        for ratio in line["hit_ratios"].as_array().unwrap() {
            if let Some(ratio) = ratio.as_f64() {
                assert!(
                    (0.0..=1.0).contains(&ratio),
                    "a hit ratio between 0 and 1: {line}"
                );
            }
        }
    }
    let lfu = row(eviction, "policy", "TinyLFU (moka)");
    assert!(lfu["hit_ratios"][0].as_f64().unwrap() > 0.0, "{lfu}");
}

#[test]
fn bad_flags_exit_non_zero_with_the_accepted_range() {
    let out = demo(&["--instances", "0"]);
    assert!(!out.status.success());
    let stderr = out.stderr.as_str();
    assert!(
        stderr.contains("from 1 to 32"),
        "the error names the accepted range: {stderr}"
    );
}

#[test]
fn a_part_that_needs_a_private_server_says_so_before_any_report() {
    shared::process::check_advice_without_redis_server(
        env!("CARGO_BIN_EXE_two-tier"),
        "the eviction replay",
        "--trace 0",
    );
}
