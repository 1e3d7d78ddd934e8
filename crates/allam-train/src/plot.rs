//! Loss curves: `metrics.jsonl` → `loss.svg` (plotters, SVG, no font files needed).
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::error::{Result, TrainError};

/// Named `(x, y)` series.
pub type Curves = Vec<(String, Vec<(f64, f64)>)>;

/// The `(step, loss)` points of a run's `metrics.jsonl`, and of any `eval/<lang>/loss` series.
pub fn read_curves(metrics: &Path) -> Result<Curves> {
    let text = std::fs::read_to_string(metrics).map_err(|e| TrainError::io(metrics, e))?;
    let mut curves: Curves = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let row: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| TrainError::Config(format!("{}:{}: {e}", metrics.display(), i + 1)))?;
        let Some(step) = row.get("step").and_then(|v| v.as_f64()) else {
            return Err(TrainError::Config(format!(
                "{}:{}: no \"step\"",
                metrics.display(),
                i + 1
            )));
        };
        let Some(obj) = row.as_object() else { continue };
        for (key, value) in obj {
            let wanted = key == "loss" || (key.starts_with("eval/") && key.ends_with("/loss"));
            if let (true, Some(v)) = (wanted, value.as_f64()) {
                match curves.iter_mut().find(|(k, _)| k == key) {
                    Some((_, points)) => points.push((step, v)),
                    None => curves.push((key.clone(), vec![(step, v)])),
                }
            }
        }
    }
    Ok(curves)
}

/// Draws the loss curves of `run_dir/metrics.jsonl` into `run_dir/loss.svg` and returns its path.
pub fn plot_run(run_dir: &Path) -> Result<PathBuf> {
    let curves = read_curves(&run_dir.join("metrics.jsonl"))?;
    let out = run_dir.join("loss.svg");
    let title = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    plot_curves(&curves, &format!("loss — {title}"), &out)?;
    Ok(out)
}

/// Draws named `(x, y)` series into an SVG file (written atomically).
pub fn plot_curves(curves: &[(String, Vec<(f64, f64)>)], title: &str, out: &Path) -> Result<()> {
    let points = curves.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points.filter(|(_, y)| y.is_finite()) {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return Err(TrainError::Config(format!(
            "nothing to plot into {}",
            out.display()
        )));
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 500)).into_drawing_area();
        let err = |e: String| TrainError::Config(format!("plotting {}: {e}", out.display()));
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(x0..x1, y0..y1 + 0.05 * (y1 - y0))
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss (nats/token)")
            .draw()
            .map_err(|e| err(e.to_string()))?;
        for (i, (name, series)) in curves.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(series.iter().copied(), color.stroke_width(2)))
                .map_err(|e| err(e.to_string()))?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    crate::checkpoint::write_atomically(out, svg.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_are_read_and_drawn() {
        let dir = tempfile::tempdir().unwrap();
        let rows = [
            r#"{"step": 1, "loss": 3.0, "lr": 0.1}"#,
            r#"{"step": 2, "loss": 2.5, "eval/en/loss": 2.7}"#,
            r#"{"step": 3, "loss": 2.0}"#,
        ];
        std::fs::write(dir.path().join("metrics.jsonl"), rows.join("\n")).unwrap();
        let curves = read_curves(&dir.path().join("metrics.jsonl")).unwrap();
        assert_eq!(
            curves[0],
            ("loss".to_string(), vec![(1.0, 3.0), (2.0, 2.5), (3.0, 2.0)])
        );
        assert_eq!(curves[1], ("eval/en/loss".to_string(), vec![(2.0, 2.7)]));
        let svg = std::fs::read_to_string(plot_run(dir.path()).unwrap()).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("polyline"),
            "{}",
            &svg[..100]
        );
    }
}
