//! The book's picture of XFetch: the odds that one read recomputes, against the time left.
//!
//! For each time left before expiry, rolls the lesson's own [`recompute_early`] 20,000 times and
//! plots the share that said "recompute", for three values of beta. The analysis says the odds
//! are `exp(-time_left / (delta * beta))`; the rolls land on it.
//!
//! Then it simulates what those odds do to a key read at a steady rate: how many recomputations
//! overlap, per refresh, over thousands of refreshes. For a key read many times per load time
//! the analysis says `e`, about 2.72 (one, then `e - 1` more on average from the reads that roll
//! while the first is loading); a key read less than once per load time stays near one.
//!
//! ```sh
//! cargo run -p stampede --example xfetch_chart -- book/src/images/xfetch.svg
//! ```

use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
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

    let mut rng = StdRng::seed_from_u64(42);
    for ttl_in_deltas in [5.0, 10.0] {
        for reads_per_delta in [0.5, 2.0, 20.0, 100.0] {
            let counts = loads_per_refresh(&mut rng, reads_per_delta, ttl_in_deltas, 10_000);
            let n = counts.len() as f64;
            let mean = counts.iter().sum::<u32>() as f64 / n;
            let sd = (counts
                .iter()
                .map(|&c| (c as f64 - mean).powi(2))
                .sum::<f64>()
                / n)
                .sqrt();
            println!(
                "a key read {reads_per_delta} times per load, fresh for {ttl_in_deltas} loads: \
                 {mean:.2} loads per refresh, standard deviation {sd:.2} (simulated, 10,000 \
                 refreshes, beta 1)"
            );
        }
    }
    Ok(())
}

/// Simulates one key read `reads_per_delta` times per load time (Poisson arrivals, time counted
/// in load times), each read deciding with [`recompute_early`] at beta 1, and returns how many
/// loads each of `episodes` refresh episodes made: loads that start while another load of the
/// key is running join its episode, as the demo counts them.
fn loads_per_refresh(
    rng: &mut StdRng,
    reads_per_delta: f64,
    ttl: f64,
    episodes: usize,
) -> Vec<u32> {
    let (mut now, mut expiry) = (0.0, ttl);
    let mut running: Vec<f64> = Vec::new(); // when each running load finishes
    let mut counts: Vec<u32> = Vec::new();
    loop {
        now += -(1.0 - rng.random::<f64>()).ln() / reads_per_delta;
        // Loads that finished have stored a value, fresh for `ttl` from then.
        running.retain(|&done| {
            if done <= now {
                expiry = done + ttl;
            }
            done > now
        });
        let missing = now >= expiry;
        if missing || recompute_early(now, 1.0, 1.0, expiry, 1.0 - rng.random::<f64>()) {
            if running.is_empty() {
                if counts.len() == episodes {
                    return counts;
                }
                counts.push(0);
            }
            *counts.last_mut().expect("an episode has begun") += 1;
            running.push(now + 1.0);
        }
    }
}
