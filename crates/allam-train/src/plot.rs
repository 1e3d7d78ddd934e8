//! A run's charts: `metrics.jsonl` → `loss.svg` (plotters, SVG, no font files needed).
//!
//! One picture, panels stacked on a shared step axis:
//! - training loss (nats per target token): each step's loss, its moving average, and the moving
//!   average of every data source's loss (`loss/<source>`) when there are several;
//! - held-out evaluation (`eval/<lang>/loss` and `eval/<lang>/bpb`), each evaluation a marker;
//! - DPO rewards (`rewards_chosen`, `rewards_rejected`, `margin`) when the run is DPO;
//! - the learning rate.
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Result, TrainError};

/// Every numeric series of a `metrics.jsonl`, by key, as `(step, value)` points in file order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    /// `key → [(step, value)]` (`loss`, `lr`, `loss/<source>`, `eval/<lang>/bpb`, …).
    pub series: BTreeMap<String, Vec<(f64, f64)>>,
}

impl Metrics {
    /// The points of `key` (empty if the run never logged it).
    pub fn get(&self, key: &str) -> &[(f64, f64)] {
        self.series.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The keys `prefix<name>suffix`, as `(name, points)`.
    fn matching<'a>(
        &'a self,
        prefix: &'a str,
        suffix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a [(f64, f64)])> {
        self.series.iter().filter_map(move |(k, v)| {
            let name = k.strip_prefix(prefix)?.strip_suffix(suffix)?;
            (!name.is_empty() && !name.contains('/')).then_some((name, v.as_slice()))
        })
    }

    /// The largest step logged.
    fn last_step(&self) -> f64 {
        self.series
            .values()
            .flat_map(|p| p.iter().map(|&(x, _)| x))
            .fold(0.0, f64::max)
    }
}

/// Reads every numeric field of every line of `metrics.jsonl` (a line without `step` is an error).
pub fn read_metrics(path: &Path) -> Result<Metrics> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    let mut metrics = Metrics::default();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = || format!("{}:{}", path.display(), i + 1);
        let row: serde_json::Value =
            serde_json::from_str(line).map_err(|e| TrainError::Config(format!("{}: {e}", at())))?;
        let Some(step) = row.get("step").and_then(|v| v.as_f64()) else {
            return Err(TrainError::Config(format!("{}: no \"step\"", at())));
        };
        let Some(object) = row.as_object() else { continue };
        for (key, value) in object.iter().filter(|(k, _)| *k != "step") {
            if let Some(v) = value.as_f64().filter(|v| v.is_finite()) {
                metrics.series.entry(key.clone()).or_default().push((step, v));
            }
        }
    }
    Ok(metrics)
}

/// Draws the charts of `run_dir/metrics.jsonl` into `run_dir/loss.svg` and returns its path.
pub fn plot_run(run_dir: &Path) -> Result<PathBuf> {
    let metrics = read_metrics(&run_dir.join("metrics.jsonl"))?;
    let out = run_dir.join("loss.svg");
    let name = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let svg = render_run(&metrics, &name)
        .map_err(|e| TrainError::Config(format!("plotting {}: {e}", out.display())))?;
    crate::checkpoint::write_atomically(&out, svg.as_bytes())?;
    Ok(out)
}

/// Distinct colours (matplotlib's tab10), one per series of a panel.
pub const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// One series of a panel.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
    color: RGBAColor,
    width: u32,
    /// Draw a filled circle at every point (evaluations: often too few points for a line).
    markers: bool,
}

impl Series {
    fn new(name: impl Into<String>, points: Vec<(f64, f64)>, color: RGBColor) -> Self {
        Self {
            name: name.into(),
            points,
            color: color.to_rgba(),
            width: 2,
            markers: false,
        }
    }
}

/// What a panel shows.
struct Panel {
    title: String,
    y_desc: String,
    series: Vec<Series>,
    /// Start the y axis at zero (the learning rate).
    from_zero: bool,
    /// Tick labels of the y axis.
    y_format: fn(&f64) -> String,
    /// Height in pixels.
    height: u32,
    /// Shares its row with the next half-width panel (held-out loss beside bits per byte).
    half: bool,
    /// Where the legend goes (a corner the curves usually leave empty).
    legend: SeriesLabelPosition,
}

fn decimals(v: &f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn scientific(v: &f64) -> String {
    if *v == 0.0 { "0".into() } else { format!("{v:.1e}") }
}

/// The mean of the last `window` values at every point.
fn moving_average(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let mut sum = 0.0;
    points
        .iter()
        .enumerate()
        .map(|(i, &(x, y))| {
            sum += y;
            if i >= window {
                sum -= points[i - window].1;
            }
            (x, sum / (i + 1).min(window) as f64)
        })
        .collect()
}

/// The panels of a run, top to bottom.
fn panels(metrics: &Metrics) -> Vec<Panel> {
    let mut out = Vec::new();
    let dpo = !metrics.get("margin").is_empty();
    let loss = metrics.get("loss");
    let window = (loss.len() / 25).clamp(1, 50);
    let mut training = Vec::new();
    if !loss.is_empty() {
        let mut raw = Series::new("loss (each step)", loss.to_vec(), COLORS[0]);
        if window > 1 {
            // Faint under its moving average.
            raw.color = COLORS[0].mix(0.3);
            raw.width = 1;
        }
        training.push(raw);
        if window > 1 {
            training.push(Series::new(
                format!("loss (mean of {window} steps)"),
                moving_average(loss, window),
                COLORS[0],
            ));
        }
    }
    let sources: Vec<_> = metrics.matching("loss/", "").collect();
    if sources.len() > 1 {
        for (i, (source, points)) in sources.into_iter().enumerate() {
            let mut s = Series::new(
                format!("{source} (mean of {window})"),
                moving_average(points, window),
                COLORS[(i + 1) % COLORS.len()],
            );
            s.width = 1;
            training.push(s);
        }
    }
    if !training.is_empty() {
        out.push(Panel {
            title: if dpo {
                "DPO loss".into()
            } else {
                "training loss".into()
            },
            y_desc: if dpo {
                "loss (nats/pair)".into()
            } else {
                "loss (nats/token)".into()
            },
            series: training,
            from_zero: false,
            y_format: decimals,
            height: 380,
            half: false,
            legend: SeriesLabelPosition::UpperRight,
        });
    }
    for (kind, title, y_desc) in [
        ("loss", "held-out loss", "loss (nats/token)"),
        ("bpb", "held-out bits per byte", "bits per byte"),
    ] {
        let series: Vec<Series> = metrics
            .matching("eval/", &format!("/{kind}"))
            .enumerate()
            .map(|(i, (lang, points))| {
                let mut s = Series::new(
                    format!("{lang} {kind}"),
                    points.to_vec(),
                    COLORS[i % COLORS.len()],
                );
                s.markers = true;
                s
            })
            .collect();
        if !series.is_empty() {
            out.push(Panel {
                title: title.into(),
                y_desc: y_desc.into(),
                series,
                from_zero: false,
                y_format: decimals,
                height: 290,
                half: true,
                // Decreasing curves leave the lower left empty (one evaluation sits at the right).
                legend: SeriesLabelPosition::LowerLeft,
            });
        }
    }
    if dpo {
        let series = [
            ("rewards_chosen", "chosen"),
            ("rewards_rejected", "rejected"),
            ("margin", "margin"),
        ]
        .into_iter()
        .enumerate()
        .filter(|(_, (key, _))| !metrics.get(key).is_empty())
        .map(|(i, (key, name))| Series::new(name, metrics.get(key).to_vec(), COLORS[i + 2]))
        .collect();
        out.push(Panel {
            title: "DPO implicit rewards".into(),
            y_desc: "β · log-ratio".into(),
            series,
            from_zero: false,
            y_format: decimals,
            height: 290,
            half: false,
            legend: SeriesLabelPosition::UpperRight,
        });
    }
    if !metrics.get("lr").is_empty() {
        out.push(Panel {
            title: "learning rate".into(),
            y_desc: "lr".into(),
            series: vec![Series::new("lr", metrics.get("lr").to_vec(), COLORS[4])],
            from_zero: true,
            y_format: scientific,
            height: 190,
            half: false,
            legend: SeriesLabelPosition::UpperRight,
        });
    }
    out
}

/// The SVG of a run's panels (`name` goes in the title).
fn render_run(metrics: &Metrics, name: &str) -> std::result::Result<String, String> {
    let mut panels = panels(metrics);
    if panels.is_empty() {
        return Err("metrics.jsonl has no loss, evaluation or learning rate to draw".into());
    }
    // A little room right of the last step, so its tick label and markers are not cut.
    let x = 0.0..metrics.last_step().max(1.0) * 1.03;
    // Rows of one full-width panel, or of two half-width ones side by side.
    let mut rows: Vec<Vec<Panel>> = Vec::new();
    for panel in panels.drain(..) {
        match rows.last_mut() {
            Some(row) if panel.half && row.len() == 1 && row[0].half => row.push(panel),
            _ => rows.push(vec![panel]),
        }
    }
    let total: u32 = 50 + rows.iter().map(|r| r[0].height).sum::<u32>();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, total)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (head, mut rest) = root.split_vertically(50);
        head.titled(
            &format!("{name} — training run (x: optimizer step)"),
            ("sans-serif", 22),
        )
        .map_err(|e| e.to_string())?;
        for row in &rows {
            let (area, below) = rest.split_vertically(row[0].height);
            rest = below;
            if let [left_panel, right_panel] = row.as_slice() {
                let (left, right) = area.split_horizontally(500);
                draw_panel(&left, left_panel, x.clone())?;
                draw_panel(&right, right_panel, x.clone())?;
            } else {
                draw_panel(&area, &row[0], x.clone())?;
            }
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// The y range of `panel`'s points, padded 5% (at least a unit wide when flat).
fn y_range(panel: &Panel) -> Range<f64> {
    let values = panel.series.iter().flat_map(|s| s.points.iter().map(|&(_, y)| y));
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let (lo, hi) = if lo > hi { (0.0, 1.0) } else { (lo, hi) };
    let lo = if panel.from_zero { lo.min(0.0) } else { lo };
    let pad = if hi > lo {
        0.05 * (hi - lo)
    } else {
        0.5 * hi.abs().max(1e-3)
    };
    (if panel.from_zero { lo } else { lo - pad })..hi + pad
}

/// Draws one panel into `area` over steps `x`.
fn draw_panel(
    area: &DrawingArea<SVGBackend, Shift>,
    panel: &Panel,
    x: Range<f64>,
) -> std::result::Result<(), String> {
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 17))
        .margin_left(10)
        .margin_right(30)
        .margin_top(5)
        .margin_bottom(5)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y_range(panel))
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(&panel.y_desc)
        .x_labels(8)
        .y_labels(6)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&panel.y_format)
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    for s in &panel.series {
        let (color, width) = (s.color, s.width);
        let style = ShapeStyle::from(&color).stroke_width(width);
        if s.markers {
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 5, color.filled())))
                .map_err(e)?;
        }
        let anno = chart
            .draw_series(LineSeries::new(s.points.iter().copied(), style))
            .map_err(e)?
            .label(s.name.clone());
        if s.markers {
            anno.legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (20, 0)], style)
                    + Circle::new((10, 0), 4, color.filled())
            });
        } else {
            anno.legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
    }
    if panel.series.len() < 2 {
        return Ok(());
    }
    chart
        .configure_series_labels()
        .position(panel.legend.clone())
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of every `<text>` element.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim().to_string()))
            .collect()
    }

    fn write_run(rows: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("metrics.jsonl"), rows.join("\n")).unwrap();
        dir
    }

    #[test]
    fn every_numeric_field_is_read_by_step() {
        let dir = write_run(&[
            r#"{"step": 1, "loss": 3.0, "lr": 0.1, "trained": "all"}"#,
            r#"{"step": 2, "loss": 2.5, "eval/en/loss": 2.7}"#,
        ]);
        let m = read_metrics(&dir.path().join("metrics.jsonl")).unwrap();
        assert_eq!(m.get("loss"), &[(1.0, 3.0), (2.0, 2.5)]);
        assert_eq!(m.get("eval/en/loss"), &[(2.0, 2.7)]);
        assert_eq!(m.get("lr"), &[(1.0, 0.1)]);
        assert!(m.get("trained").is_empty());
        std::fs::write(dir.path().join("metrics.jsonl"), r#"{"loss": 1}"#).unwrap();
        let err = read_metrics(&dir.path().join("metrics.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("metrics.jsonl:1") && err.contains("step"), "{err}");
    }

    #[test]
    fn moving_average_is_over_the_last_values() {
        let p = [(1.0, 1.0), (2.0, 3.0), (3.0, 5.0)];
        assert_eq!(moving_average(&p, 2), vec![(1.0, 1.0), (2.0, 2.0), (3.0, 4.0)]);
    }

    #[test]
    fn evaluations_sources_and_learning_rate_are_drawn() {
        let mut rows: Vec<String> = (1..=60)
            .map(|s| {
                format!(
                    r#"{{"step": {s}, "loss": {}, "lr": {}, "loss/en-docs": 3.0, "loss/ar-docs": 5.0}}"#,
                    5.0 - s as f64 * 0.01,
                    1e-3 * s as f64 / 60.0
                )
            })
            .collect();
        // A single evaluation (too few points for a line) at the last step.
        rows[59] = r#"{"step": 60, "loss": 4.4, "lr": 0.001, "eval/en/loss": 4.1, "eval/en/bpb": 2.61, "eval/ar/loss": 4.5, "eval/ar/bpb": 1.64}"#.into();
        let dir = write_run(&rows.iter().map(String::as_str).collect::<Vec<_>>());
        let svg = std::fs::read_to_string(plot_run(dir.path()).unwrap()).unwrap();
        let texts = texts(&svg);
        for text in [
            "training loss",
            "held-out loss",
            "held-out bits per byte",
            "learning rate",
            "loss (each step)",
            "loss (mean of 2 steps)",
            "en-docs (mean of 2)",
            "ar-docs (mean of 2)",
            "en bpb",
            "ar loss",
            "bits per byte",
            "60",
        ] {
            assert!(
                texts.iter().any(|t| t == text),
                "{text} missing from the chart: {texts:?}"
            );
        }
        // One marker per evaluation point (2 languages × loss and bpb) plus one per legend entry.
        assert_eq!(svg.matches("<circle").count(), 4 + 4, "{svg}");
    }

    #[test]
    fn a_dpo_run_has_its_rewards_panel() {
        let rows: Vec<String> = (1..=5)
            .map(|s| format!(r#"{{"step": {s}, "loss": 0.69, "lr": 1e-4, "margin": 0.{s}, "rewards_chosen": 0.{s}, "rewards_rejected": 0.0}}"#))
            .collect();
        let dir = write_run(&rows.iter().map(String::as_str).collect::<Vec<_>>());
        let texts = texts(&std::fs::read_to_string(plot_run(dir.path()).unwrap()).unwrap());
        for text in [
            "DPO loss",
            "DPO implicit rewards",
            "chosen",
            "rejected",
            "margin",
            "loss (nats/pair)",
        ] {
            assert!(texts.iter().any(|t| t == text), "{text} missing: {texts:?}");
        }
        assert!(!texts.iter().any(|t| t.contains("held-out")));
    }

    #[test]
    fn nothing_to_draw_is_an_error() {
        let dir = write_run(&[r#"{"step": 1}"#]);
        let err = plot_run(dir.path()).unwrap_err().to_string();
        assert!(err.contains("loss.svg") && err.contains("no loss"), "{err}");
    }
}
