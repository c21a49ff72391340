//! The report's figures: inline SVG drawn by `ward-report`'s line charts.

use maud::{Markup, PreEscaped, html};
use ward_report::LineChart;
use ward_trust::calibration::ReliabilityBin;

use crate::Result;

/// Pixel size of a figure.
const SIZE: (u32, u32) = (640, 400);

/// A figure with a caption: the chart inline.
pub(super) fn figure(
    title: &str,
    (x_label, y_label): (&str, &str),
    series: Vec<(String, Vec<(f64, f64)>)>,
    markers: bool,
    caption: &str,
) -> Result<Markup> {
    let chart = LineChart {
        title: title.into(),
        x_label: x_label.into(),
        y_label: y_label.into(),
        series,
    };
    let svg = chart.to_svg(SIZE, markers)?;
    Ok(html! {
        figure {
            (PreEscaped(svg))
            figcaption { (caption) }
        }
    })
}

/// The reliability diagram's series: each non-empty bin's (mean confidence, accuracy)
/// and the diagonal of perfect calibration.
pub(super) fn reliability_series(
    name: &str,
    bins: &[ReliabilityBin],
) -> Vec<(String, Vec<(f64, f64)>)> {
    let pts: Vec<(f64, f64)> = bins
        .iter()
        .filter_map(|b| Some((b.confidence?, b.accuracy?)))
        .collect();
    vec![
        (name.to_string(), pts),
        ("perfect calibration".into(), vec![(0.0, 0.0), (1.0, 1.0)]),
    ]
}
