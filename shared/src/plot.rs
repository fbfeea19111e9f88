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

/// The chart's size in pixels. The book shows it at this size in a desktop column and scaled
/// down on a phone, so the text sizes below are chosen for both: at least 15 px at a desktop.
const SIZE: (u32, u32) = (900, 500);
/// Room on the right for the legend, beside the plot rather than over its lines.
const LEGEND_WIDTH: u32 = 250;
/// The title's size; the axis descriptions'; the tick labels' and the legend's.
const TITLE_PX: u32 = 24;
const AXIS_PX: u32 = 18;
const TICK_PX: u32 = 16;
/// A series of at most this many points is measured, not a curve: its points get markers.
const MARKED_UP_TO: usize = 20;

/// The builder every chart starts from: the title, the margins, room for the axes and the legend.
fn builder<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    title: &str,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(title, ("sans-serif", TITLE_PX))
        .margin(14)
        .margin_right(LEGEND_WIDTH)
        .x_label_area_size(54)
        .y_label_area_size(84);
    builder
}

/// A tick label: a whole number without a decimal point, else as few decimals as it needs.
fn tick(value: f64) -> String {
    if value.fract().abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

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

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    let mut chart = builder(&root, title)
        .build_cartesian_2d(0f64..NINES, (low..high).log_scale())
        .map_err(|e| fail(e.to_string()))?;
    chart
        .configure_mesh()
        .x_labels(NINES as usize + 1)
        .label_style(("sans-serif", TICK_PX))
        .axis_desc_style(("sans-serif", AXIS_PX))
        .x_label_formatter(&|nines| percentile_label(*nines))
        .x_desc("percentile (each step right is ten times rarer)")
        .y_desc("latency, ms (log scale)")
        .y_label_formatter(&|ms| format_ms(*ms))
        .draw()
        .map_err(|e| fail(e.to_string()))?;
    draw_series(&mut chart, lines.iter().map(|points| &points[..])).map_err(fail)?;
    let labels: Vec<&str> = series.iter().map(|(label, _)| *label).collect();
    legend(&root, &labels).map_err(fail)?;
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
    // The legend is beside the plot, so the y axis ends at the highest point (a share ends at
    // 100%), with a twentieth more so that a line along the top is not drawn on the frame.
    let y_high = points().fold(0.0, |hi: f64, &(_, y)| hi.max(y)) * 1.05;

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    let mut builder = builder(&root, title);
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
    let labels: Vec<&str> = series.iter().map(|(label, _)| *label).collect();
    legend(&root, &labels).map_err(fail)?;
    root.present().map_err(|e| fail(e.to_string()))
}

/// The mesh and the lines of a [`curves`] chart.
fn draw_lines<'a, X>(
    mut chart: ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, RangedCoordf64>>,
    axes: &Axes<'_>,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<(), String>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    // Few labels, whole numbers without ".0": on a log axis plotters labels every minor tick,
    // and neighbours ran into each other ("900.01000.0").
    chart
        .configure_mesh()
        .x_desc(axes.x)
        .y_desc(axes.y)
        .x_labels(if axes.log_x { 4 } else { 8 })
        .y_labels(6)
        .x_label_formatter(&|x| tick(*x))
        .y_label_formatter(&|y| tick(*y))
        .label_style(("sans-serif", TICK_PX))
        .axis_desc_style(("sans-serif", AXIS_PX))
        .draw()
        .map_err(|e| e.to_string())?;
    draw_series(&mut chart, series.iter().map(|(_, points)| &points[..]))
}

/// One line per series, each in a colour of its own (the legend's, in the same order): what both
/// kinds of chart draw once their axes are set.
fn draw_series<'a, 'l, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    series: impl Iterator<Item = &'l [(f64, f64)]>,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, points) in series.enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(3),
            ))
            .map_err(|e| e.to_string())?;
        // A measured series of a few points shows where its points are; a line between them is
        // only a guide.
        if points.len() <= MARKED_UP_TO {
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|&point| Circle::new(point, 5, color.filled())),
                )
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// The legend, beside the plot in the margin kept for it (never over a line): each series' colour
/// and label, in the order they were drawn. Drawn on the whole picture: the chart's own legend
/// is clipped to the plotting area.
fn legend(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    labels: &[&str],
) -> Result<(), String> {
    let left = (SIZE.0 - LEGEND_WIDTH + 20) as i32;
    for (i, label) in labels.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let y = 70 + 26 * i as i32;
        root.draw(&PathElement::new(
            [(left, y), (left + 24, y)],
            color.stroke_width(3),
        ))
        .map_err(|e| e.to_string())?;
        root.draw(&Text::new(
            label.to_string(),
            (left + 32, y - TICK_PX as i32 / 2),
            ("sans-serif", TICK_PX),
        ))
        .map_err(|e| e.to_string())?;
    }
    Ok(())
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
