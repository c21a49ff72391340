//! Line charts as SVG (accuracy against corruption severity, and the like).

use std::path::Path;

use plotters::prelude::*;

use crate::ReportError;

/// Named series of `(x, y)` points drawn as lines with markers on shared axes.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Title above the chart.
    pub title: String,
    /// Label of the x axis.
    pub x_label: String,
    /// Label of the y axis.
    pub y_label: String,
    /// `(name, points)`; non-finite points are left out.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

fn plot_err(e: impl std::fmt::Display) -> ReportError {
    ReportError::Model(format!("drawing the line chart failed: {e}"))
}

impl LineChart {
    /// Writes the chart as SVG to `path` (atomically), with a legend and a marker on
    /// every point, 900 x 560 px.
    pub fn write_svg(&self, path: &Path) -> Result<(), ReportError> {
        let svg = self.to_svg((900, 560), true)?;
        ward_core::fsutil::write_atomic(path, svg.as_bytes())?;
        Ok(())
    }

    /// The chart as an SVG document (`<svg ...>...</svg>`, for inlining in HTML) of
    /// `size` pixels; `markers` draws a circle on every point.
    pub fn to_svg(&self, size: (u32, u32), markers: bool) -> Result<String, ReportError> {
        let pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|(_, p)| p.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        let (x0, x1) = pts
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                (a.min(p.0), b.max(p.0))
            });
        let (y0, y1) = pts
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                (a.min(p.1), b.max(p.1))
            });
        let (x0, x1) = if x0.is_finite() {
            (x0, x1.max(x0 + 1e-9))
        } else {
            (0.0, 1.0)
        };
        let (y0, y1) = if y0.is_finite() {
            (y0.min(0.0), y1.max(1.0))
        } else {
            (0.0, 1.0)
        };
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
            root.fill(&WHITE).map_err(plot_err)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(&self.title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(50)
                .right_y_label_area_size(10)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .draw()
                .map_err(plot_err)?;
            for (i, (name, points)) in self.series.iter().enumerate() {
                let colour = Palette99::pick(i).to_rgba();
                let p: Vec<(f64, f64)> = points
                    .iter()
                    .copied()
                    .filter(|(x, y)| x.is_finite() && y.is_finite())
                    .collect();
                chart
                    .draw_series(LineSeries::new(p.clone(), colour.stroke_width(2)))
                    .map_err(plot_err)?
                    .label(name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                    });
                if markers {
                    chart
                        .draw_series(p.into_iter().map(|xy| Circle::new(xy, 3, colour.filled())))
                        .map_err(plot_err)?;
                }
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::LowerLeft)
                .draw()
                .map_err(plot_err)?;
            root.present().map_err(plot_err)?;
        }
        Ok(svg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_with_every_series_in_the_legend() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.svg");
        let chart = LineChart {
            title: "accuracy vs severity".into(),
            x_label: "severity".into(),
            y_label: "accuracy".into(),
            series: vec![
                ("gaussian-noise".into(), vec![(1.0, 0.9), (2.0, 0.8)]),
                ("blur".into(), vec![(1.0, 0.95), (2.0, f64::NAN)]),
            ],
        };
        chart.write_svg(&path).unwrap();
        let svg = fs_err::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("gaussian-noise") && svg.contains("blur"));
    }
}
