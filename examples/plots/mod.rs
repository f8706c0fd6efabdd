//! SVG plots for the examples and `scripts/bench.sh`, drawn with `plotters`:
//! latency distributions per priority, series over time or over a
//! parameter, and bars against a baseline.

#![allow(dead_code)] // each example uses some of them

use std::path::Path;

use plotters::prelude::*;

/// One line of a plot: its label and its points.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

const COLORS: [RGBColor; 5] = [RED, BLUE, GREEN, MAGENTA, BLACK];

type Result = std::result::Result<(), Box<dyn std::error::Error>>;

/// Lines on one chart; `log_x` for latencies spanning decades.
fn lines_on<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
) -> Result
where
    DB::ErrorType: 'static,
{
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let y1 = ys.fold(0.0f64, f64::max) * 1.1 + f64::EPSILON;
    let (x0, x1) = if x0 > x1 {
        (0.0, 1.0)
    } else {
        (x0, x1.max(x0 * 1.0001 + 1e-12))
    };
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .draw()?;
            for (i, s) in series.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().copied(),
                        color.stroke_width(2),
                    ))?
                    .label(s.label.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }};
    }
    if log_x {
        draw!(builder.build_cartesian_2d((x0..x1).log_scale(), 0.0..y1)?);
    } else {
        draw!(builder.build_cartesian_2d(x0..x1, 0.0..y1)?);
    }
    Ok(())
}

/// One chart of lines, written to `path`.
pub fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
) -> Result {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    lines_on(&root, title, x_label, y_label, series, log_x)?;
    root.present()?;
    Ok(())
}

/// Two charts side by side, written to `path`: each `(title, x, y, series, log_x)`.
pub fn two(
    path: &Path,
    left: (&str, &str, &str, &[Series], bool),
    right: (&str, &str, &str, &[Series], bool),
) -> Result {
    let root = SVGBackend::new(path, (1400, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let (l, r) = root.split_horizontally(700);
    lines_on(&l, left.0, left.1, left.2, left.3, left.4)?;
    lines_on(&r, right.0, right.1, right.2, right.3, right.4)?;
    root.present()?;
    Ok(())
}

/// Bars of `(label, value)`, written to `path`.
pub fn bars(path: &Path, title: &str, y_label: &str, bars: &[(String, f64)]) -> Result {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = bars.iter().map(|b| b.1).fold(0.0f64, f64::max) * 1.15 + f64::EPSILON;
    let n = bars.len() as u32;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0u32..n).into_segmented(), 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(y_label)
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => {
                bars.get(*i as usize).map_or(String::new(), |b| b.0.clone())
            }
            _ => String::new(),
        })
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
        let i = i as u32;
        let color = COLORS[i as usize % COLORS.len()];
        Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), b.1),
            ],
            color.mix(0.6).filled(),
        )
    }))?;
    root.present()?;
    Ok(())
}

/// A latency distribution from bucket counts: `(upper bound in seconds,
/// samples in that bucket)`, as the share of samples per bucket, plotted
/// at each bucket's upper bound in milliseconds (the `+Inf` bucket left out).
pub fn distribution(label: &str, buckets: impl Iterator<Item = (f64, u64)>) -> Option<Series> {
    let b: Vec<(f64, u64)> = buckets.filter(|(le, _)| le.is_finite()).collect();
    let total: u64 = b.iter().map(|x| x.1).sum();
    (total > 0).then(|| Series {
        label: format!("{label} ({total})"),
        points: b
            .iter()
            .map(|(le, n)| (le * 1e3, *n as f64 / total as f64))
            .collect(),
    })
}
