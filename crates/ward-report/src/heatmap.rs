//! Heatmaps as SVG (for the defence-vs-attack grid).

use std::path::Path;

use plotters::prelude::*;

use crate::ReportError;

/// A labelled matrix of values; `None` cells (refused, skipped) are drawn grey with
/// their label.
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    /// Title above the map.
    pub title: String,
    /// Row labels (top to bottom).
    pub rows: Vec<String>,
    /// Column labels (left to right).
    pub cols: Vec<String>,
    /// `values[r][c]`.
    pub values: Vec<Vec<Option<f64>>>,
    /// Text for `None` cells.
    pub missing_label: String,
}

fn plot_err(e: impl std::fmt::Display) -> ReportError {
    ReportError::Model(format!("drawing the heatmap failed: {e}"))
}

impl Heatmap {
    /// Writes the map as SVG to `path` (atomically), cells coloured by value (viridis,
    /// scaled to the finite values' range) and printed with 3 decimals.
    pub fn write_svg(&self, path: &Path) -> Result<(), ReportError> {
        let (cell_w, cell_h, left, top) = (92u32, 30u32, 170u32, 70u32);
        let w = left + cell_w * self.cols.len().max(1) as u32 + 20;
        let h = top + cell_h * self.rows.len().max(1) as u32 + 20;
        let finite: Vec<f64> = self
            .values
            .iter()
            .flatten()
            .flatten()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
            root.fill(&WHITE).map_err(plot_err)?;
            let font = ("sans-serif", 13).into_font();
            root.draw(&Text::new(
                self.title.clone(),
                (10, 12),
                ("sans-serif", 17).into_font(),
            ))
            .map_err(plot_err)?;
            for (c, name) in self.cols.iter().enumerate() {
                let x = (left + cell_w * c as u32 + 4) as i32;
                root.draw(&Text::new(
                    name.clone(),
                    (x, (top - 22) as i32),
                    font.clone(),
                ))
                .map_err(plot_err)?;
            }
            for (r, name) in self.rows.iter().enumerate() {
                let y = (top + cell_h * r as u32 + 8) as i32;
                root.draw(&Text::new(name.clone(), (10, y), font.clone()))
                    .map_err(plot_err)?;
                for c in 0..self.cols.len() {
                    let x0 = (left + cell_w * c as u32) as i32;
                    let y0 = (top + cell_h * r as u32) as i32;
                    let v = self
                        .values
                        .get(r)
                        .and_then(|row| row.get(c))
                        .copied()
                        .flatten();
                    let (fill, label, text_color) = match v {
                        Some(v) if v.is_finite() => {
                            let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
                            let color: RGBColor = ViridisRGB.get_color(t as f32);
                            let text = if t > 0.6 { BLACK } else { WHITE };
                            (color, format!("{v:.3}"), text)
                        }
                        _ => (RGBColor(200, 200, 200), self.missing_label.clone(), BLACK),
                    };
                    root.draw(&Rectangle::new(
                        [(x0, y0), (x0 + cell_w as i32 - 2, y0 + cell_h as i32 - 2)],
                        fill.filled(),
                    ))
                    .map_err(plot_err)?;
                    root.draw(&Text::new(
                        label,
                        (x0 + 8, y0 + 8),
                        font.clone().color(&text_color),
                    ))
                    .map_err(plot_err)?;
                }
            }
            root.present().map_err(plot_err)?;
        }
        ward_core::fsutil::write_atomic(path, svg.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_holds_every_label_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h.svg");
        Heatmap {
            title: "clean accuracy".into(),
            rows: vec!["fedavg".into(), "krum".into()],
            cols: vec!["none".into(), "alie".into()],
            values: vec![vec![Some(0.75), Some(0.5)], vec![Some(0.7), None]],
            missing_label: "refused".into(),
        }
        .write_svg(&p)
        .unwrap();
        let svg = fs_err::read_to_string(&p).unwrap();
        for want in [
            "<svg",
            "clean accuracy",
            "fedavg",
            "krum",
            "alie",
            "0.750",
            "0.500",
            "refused",
        ] {
            assert!(svg.contains(want), "missing {want}");
        }
    }
}
