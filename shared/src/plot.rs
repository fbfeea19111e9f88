//! Charts: where a distribution is the point, a picture says it faster than a table.
//!
//! A table gives p50 and p99; a *percentile plot* gives every percentile at once, the shape of
//! the whole distribution. Its x axis counts "nines": p90, p99, p99.9 are evenly spaced, so the
//! tail, where caches and stampedes show their character, gets as much room as the median. Its y
//! axis is logarithmic, so 100 µs and 2 s fit on one chart. Demos draw it with `--plot FILE.svg`,
//! as plain SVG from pure Rust (plotters), with no system libraries.

use std::path::Path;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::metrics::Latency;

/// A chart could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("could not draw the chart into {path}: {cause}")]
pub struct PlotError {
    path: String,
    cause: String,
}

/// How many nines the x axis reaches: 3 is p99.9.
const NINES: f64 = 3.0;

/// Draws one line per `(label, latencies)` into an SVG percentile plot at `path`.
pub fn percentiles(path: &Path, title: &str, series: &[(&str, &Latency)]) -> Result<(), PlotError> {
    let fail = |cause: String| PlotError {
        path: path.display().to_string(),
        cause,
    };
    let lines: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|(_, latency)| {
            (0..=150)
                .map(|step| {
                    let nines = NINES * step as f64 / 150.0;
                    let quantile = 1.0 - 10f64.powf(-nines);
                    (nines, latency.at_quantile(quantile).max(1) as f64 / 1e3)
                })
                .collect()
        })
        .collect();
    let all = lines.iter().flatten().map(|&(_, ms)| ms);
    let low = all.clone().fold(f64::INFINITY, f64::min).max(0.001) / 1.5;
    // A decade of headroom above the highest line keeps the legend (top left) off the lines.
    let high = all.fold(0.0, f64::max).max(low * 10.0) * 10.0;

    let root = SVGBackend::new(path, (860, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..NINES, (low..high).log_scale())
        .map_err(|e| fail(e.to_string()))?;
    chart
        .configure_mesh()
        .x_labels(NINES as usize + 1)
        .x_label_formatter(&|nines| percentile_label(*nines))
        .x_desc("percentile (each step right is ten times rarer)")
        .y_desc("latency, ms (log scale)")
        .y_label_formatter(&|ms| format_ms(*ms))
        .draw()
        .map_err(|e| fail(e.to_string()))?;
    let labelled = series
        .iter()
        .zip(&lines)
        .map(|((label, _), points)| (*label, &points[..]));
    lines_and_legend(&mut chart, labelled).map_err(fail)?;
    root.present().map_err(|e| fail(e.to_string()))
}

/// The axes of a [`curves`] chart.
pub struct Axes<'a> {
    /// What x measures, with its unit.
    pub x: &'a str,
    /// What y measures, with its unit.
    pub y: &'a str,
    /// Whether x is drawn on a log scale (for ranks, counts and other quantities over decades).
    pub log_x: bool,
}

/// Draws one line per `(label, points)` into an SVG chart at `path`: the book's pictures of a
/// formula or a distribution (Zipf's curve, XFetch's odds), drawn from the code that uses them.
pub fn curves(
    path: &Path,
    title: &str,
    axes: Axes<'_>,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<(), PlotError> {
    let fail = |cause: String| PlotError {
        path: path.display().to_string(),
        cause,
    };
    let points = || series.iter().flat_map(|(_, line)| line.iter());
    let (x_low, x_high) = points().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(x, _)| {
        (lo.min(x), hi.max(x))
    });
    // A fifth of headroom above the highest line keeps the legend off the lines.
    let y_high = points().fold(0.0, |hi: f64, &(_, y)| hi.max(y)) * 1.2;

    let root = SVGBackend::new(path, (860, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70);
    // The two scales are two types, so each draws the same way through one generic function.
    if axes.log_x {
        let chart = builder
            .build_cartesian_2d((x_low..x_high).log_scale(), 0f64..y_high)
            .map_err(|e| fail(e.to_string()))?;
        draw_lines(chart, &axes, series).map_err(fail)?;
    } else {
        let chart = builder
            .build_cartesian_2d(x_low..x_high, 0f64..y_high)
            .map_err(|e| fail(e.to_string()))?;
        draw_lines(chart, &axes, series).map_err(fail)?;
    }
    root.present().map_err(|e| fail(e.to_string()))
}

/// The mesh, the lines and the legend of a [`curves`] chart.
fn draw_lines<'a, X>(
    mut chart: ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, RangedCoordf64>>,
    axes: &Axes<'_>,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<(), String>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(axes.x)
        .y_desc(axes.y)
        .draw()
        .map_err(|e| e.to_string())?;
    let labelled = series.iter().map(|(label, points)| (*label, &points[..]));
    lines_and_legend(&mut chart, labelled)
}

/// One line per `(label, points)`, each in a colour of its own, and their legend in the top left
/// corner: what both kinds of chart draw once their axes are set.
fn lines_and_legend<'a, 'l, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    series: impl Iterator<Item = (&'l str, &'l [(f64, f64)])>,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, (label, points)) in series.enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(3),
            ))
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], color.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

/// `p50`, `p90`, `p99.9` for a position on the nines axis.
fn percentile_label(nines: f64) -> String {
    let percent = 100.0 * (1.0 - 10f64.powf(-nines));
    let text = format!("{percent:.1}");
    format!("p{}", text.trim_end_matches('0').trim_end_matches('.'))
}

fn format_ms(ms: f64) -> String {
    if ms >= 1.0 {
        format!("{ms:.0}")
    } else {
        format!("{ms:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn draws_every_series_into_an_svg() {
        let (mut fast, mut slow) = (Latency::default(), Latency::default());
        for i in 1..=1_000 {
            fast.record(Duration::from_micros(100 + i));
            slow.record(Duration::from_millis(100 + i / 10));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.svg");
        percentiles(&path, "Two series", &[("fast", &fast), ("slow", &slow)]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        for text in ["Two series", "fast", "slow", "p99"] {
            assert!(svg.contains(text), "the chart shows {text:?}");
        }
        assert_eq!(percentile_label(1.0), "p90");
        assert_eq!(percentile_label(3.0), "p99.9");
        assert_eq!(percentile_label(0.0), "p0");
    }

    #[test]
    fn draws_curves_on_either_scale() {
        let dir = tempfile::tempdir().unwrap();
        for log_x in [false, true] {
            let path = dir.path().join(format!("curves-{log_x}.svg"));
            let line: Vec<(f64, f64)> = (1..=100).map(|x| (x as f64, 1.0 / x as f64)).collect();
            let axes = Axes {
                x: "rank",
                y: "share",
                log_x,
            };
            curves(&path, "One over x", axes, &[("1/x", line)]).unwrap();
            let svg = std::fs::read_to_string(&path).unwrap();
            for text in ["One over x", "1/x", "rank", "share"] {
                assert!(
                    svg.contains(text),
                    "the chart shows {text:?} (log x: {log_x})"
                );
            }
        }
    }
}
