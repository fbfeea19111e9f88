//! The two-tier cache's reads by the layer that answered them: the argument for two tiers in one
//! table, the same reads from memory and from Redis side by side.

use serde::Serialize;
use shared::metrics::LatencySummary;
use shared::report::{self, Report, Row};
use two_tier::Layer;

use super::phase::Measured;

/// The breakdown of one turn's reads by layer, with the counters that explain it.
pub fn breakdown(measured: &Measured) -> Report<LayerLine> {
    let (counts, stats) = (&measured.counts, &measured.after);
    let mut by_layer = Report::new(format!(
        "{}, by the layer that answered",
        measured.kind.label()
    ));
    by_layer
        .setting("invalidations heard", report::count(stats.invalidations))
        .setting("L1 flushes", stats.flushes)
        .setting("loads not kept (overtaken)", stats.superseded)
        .setting("coalesced reads", report::count(stats.coalesced));
    for (layer, latency) in Layer::ALL.iter().zip(&counts.by_layer) {
        if latency.summary().count > 0 {
            by_layer.rows.push(LayerLine {
                layer: *layer,
                latency: latency.summary(),
                share: latency.summary().count as f64 / counts.reads.max(1) as f64,
            });
        }
    }
    by_layer.conclusion = conclude(&by_layer.rows);
    by_layer
}

/// One layer's row of the two-tier cache's breakdown.
#[derive(Serialize)]
pub struct LayerLine {
    layer: Layer,
    latency: LatencySummary,
    share: f64,
}

impl Row for LayerLine {
    fn headers() -> Vec<&'static str> {
        vec!["answered by", "reads", "share", "p50", "p99"]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.layer.label().to_string(),
            report::count(self.latency.count),
            report::percent(self.share),
            report::micros(self.latency.p50_us),
            report::micros(self.latency.p99_us),
        ]
    }
}

/// The sentence the breakdown ends with, computed from its rows.
fn conclude(rows: &[LayerLine]) -> String {
    let find = |layer: Layer| rows.iter().find(|r| r.layer == layer);
    match (find(Layer::L1), find(Layer::L2)) {
        (Some(l1), Some(l2)) => format!(
            "{} of reads never left the process; a read Redis answered took {} at the median, one \
             L1 answered at most {} (the histogram's floor is 1 µs; the bench measures it in ns).",
            report::percent(l1.share),
            report::micros(l2.latency.p50_us),
            report::micros(l1.latency.p50_us),
        ),
        _ => "Too few reads per layer to compare.".to_string(),
    }
}
