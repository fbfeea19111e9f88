//! The demo's chart: the edge client's admitted requests in the window ending at each moment,
//! per limiter, against the limit. A limiter keeps its promise where its line stays under the
//! limit's; the fixed window's line jumps to twice the limit at the edges the client bursts
//! around. (The token bucket and GCRA admit the same requests: one line hides the other.)

use std::path::Path;

use rate_limiting::Limit;
use rate_limiting::measure;
use shared::plot::{self, Axes};

use super::Measured;
use super::clients::Client;

/// Draws the chart into `path`.
pub fn draw(path: &Path, measured: &[Measured], limit: Limit) -> anyhow::Result<()> {
    let window_us = limit.window.as_micros() as u64;
    let start = measured
        .iter()
        .filter_map(|m| m.attempts.first())
        .map(|a| a.at_us)
        .min()
        .unwrap_or(0);
    let end = measured
        .iter()
        .filter_map(|m| m.attempts.last())
        .map(|a| a.at_us)
        .max()
        .unwrap_or(start);
    let seconds = |t: u64| (t - start) as f64 / 1e6;
    // The limit first, so that the limiters' lines are drawn over it where they reach it.
    let mut series: Vec<(&str, Vec<(f64, f64)>)> = vec![(
        "the limit",
        vec![
            (0.0, limit.requests as f64),
            (seconds(end), limit.requests as f64),
        ],
    )];
    for m in measured.iter().filter(|m| m.variant.algorithm().is_some()) {
        let admitted: Vec<u64> = m
            .attempts
            .iter()
            .filter(|a| a.client == Client::Edge && a.allowed)
            .map(|a| a.at_us)
            .collect();
        let ends = (start..=end).step_by(10_000);
        let points = measure::trailing_counts(&admitted, window_us, ends)
            .into_iter()
            .map(|(t, n)| (seconds(t), n as f64))
            .collect();
        series.push((m.variant.label(), points));
    }
    let axes = Axes {
        x: "seconds into the run (Redis's clock)",
        y: "admitted in the last window",
        log_x: false,
    };
    plot::curves(
        path,
        "The edge client: admitted per window, per limiter",
        axes,
        &series,
    )?;
    Ok(())
}
