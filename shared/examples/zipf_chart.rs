//! The book's picture of Zipf's law: how much of a workload the hottest keys draw.
//!
//! Draws the demos' own workload (20,000 requests over 1,000 keys, seed 42) at skew 1 and at
//! skew 0, counts the requests per key, and plots the share of all requests that the top *k* keys
//! draw. Prints the figures the introduction quotes.
//!
//! ```sh
//! cargo run -p shared --example zipf_chart -- book/src/images/zipf.svg
//! ```

use std::collections::HashMap;
use std::path::PathBuf;

use shared::plot::{self, Axes};
use shared::workload::Workload;

fn main() -> anyhow::Result<()> {
    let path: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| "zipf.svg".into());
    let mut series = Vec::new();
    for skew in [1.0, 0.0] {
        let workload = Workload {
            requests: 20_000,
            concurrency: 1,
            keys: 1_000,
            skew,
            write_ratio: 0.0,
            seed: 42,
            progress: false,
        };
        let shares = top_k_shares(&workload);
        for k in [10, 100] {
            println!(
                "skew {skew}: the top {k} keys draw {:.1}% of the requests",
                shares[k - 1] * 100.0
            );
        }
        let points = shares
            .iter()
            .enumerate()
            .map(|(i, share)| ((i + 1) as f64, share * 100.0))
            .collect();
        let label = if skew == 0.0 {
            "skew 0 (uniform)"
        } else {
            "skew 1 (the demos' default)"
        };
        series.push((label, points));
    }
    let axes = Axes {
        x: "the hottest k keys (log scale)",
        y: "% of all requests they draw",
        log_x: true,
    };
    plot::curves(
        &path,
        "20,000 requests over 1,000 keys: how much the top keys draw",
        axes,
        &series,
    )?;
    println!("drew {}", path.display());
    Ok(())
}

/// Entry `k - 1` is the share of the workload's requests that its `k` most requested keys draw.
fn top_k_shares(workload: &Workload) -> Vec<f64> {
    let mut counts: HashMap<i64, u64> = HashMap::new();
    for op in workload.ops() {
        *counts.entry(op.id()).or_default() += 1;
    }
    let mut sorted: Vec<u64> = counts.into_values().collect();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.resize(workload.keys as usize, 0);
    let mut running = 0;
    sorted
        .iter()
        .map(|count| {
            running += count;
            running as f64 / workload.requests as f64
        })
        .collect()
}
