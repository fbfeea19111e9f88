//! The book's picture of XFetch: the odds that one read recomputes, against the time left.
//!
//! For each time left before expiry, rolls the lesson's own [`recompute_early`] 20,000 times and
//! plots the share that said "recompute", for three values of beta. The analysis says the odds
//! are `exp(-time_left / (delta * beta))`; the rolls land on it.
//!
//! ```sh
//! cargo run -p stampede --example xfetch_chart -- book/src/images/xfetch.svg
//! ```

use std::path::PathBuf;

use shared::plot::{self, Axes};
use stampede::xfetch::recompute_early;

/// How long the last recomputation took, in milliseconds: the demo's load time.
const DELTA_MS: f64 = 100.0;
const ROLLS: u32 = 20_000;

fn main() -> anyhow::Result<()> {
    let path: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| "xfetch.svg".into());
    let expiry_ms = 1_000_000.0;
    let mut series = Vec::new();
    for (beta, label) in [
        (0.5, "beta 0.5"),
        (1.0, "beta 1 (the default)"),
        (2.0, "beta 2"),
    ] {
        let points = (0..=60)
            .map(|step| {
                let left = step as f64 / 10.0; // in units of delta, 0 to 6
                let now = expiry_ms - left * DELTA_MS;
                let yes = (0..ROLLS)
                    .filter(|_| {
                        let rand = 1.0 - rand::random::<f64>(); // in (0, 1]
                        recompute_early(now, DELTA_MS, beta, expiry_ms, rand)
                    })
                    .count();
                (left, 100.0 * yes as f64 / ROLLS as f64)
            })
            .collect::<Vec<_>>();
        let at_one = points[10].1;
        println!(
            "{label}: one delta before expiry, {at_one:.1}% of reads recompute (exp(-1/beta) = {:.1}%)",
            100.0 * (-1.0 / beta).exp()
        );
        series.push((label, points));
    }
    let axes = Axes {
        x: "time left before expiry, in loads (delta)",
        y: "% of reads that recompute",
        log_x: false,
    };
    plot::curves(
        &path,
        "XFetch: the odds that one read recomputes early",
        axes,
        &series,
    )?;
    println!("drew {}", path.display());
    Ok(())
}
