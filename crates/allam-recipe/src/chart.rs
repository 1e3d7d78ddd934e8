//! `bpb.svg`: held-out bits per byte after every stage, the stages as categories.
//!
//! Two panels, English above Arabic. The main line joins the stages in the recipe's order
//! (base → expanded → mixed continued pretraining → SFT → DPO); the English-only control
//! continuation stands beside the mixed one as its own marker, joined to the expanded model it
//! started from by a dashed line. The English panel shades the margin the report allows: the mixed
//! run keeps English when its marker is at or below the dashed line "control + margin".
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::pipeline::ModelScores;

const MAIN: RGBColor = RGBColor(31, 119, 180);
const CONTROL: RGBColor = RGBColor(255, 127, 14);
const MARGIN: RGBColor = RGBColor(214, 39, 40);

/// The short name of a stage label on the axis: the label without its parenthesised note
/// (`"3 control CPT (English only)"` → `"3 control CPT"`).
pub fn short_stage(stage: &str) -> &str {
    stage.split(" (").next().unwrap_or(stage).trim()
}

fn is_control(s: &ModelScores) -> bool {
    s.stage.contains("control")
}

/// The SVG of `bpb.svg` for `scores` (in the order the stages ran), with the English-kept
/// `margin` drawn above the control's English bits per byte.
pub fn bpb_svg(scores: &[ModelScores], margin: f64) -> Result<String, String> {
    if scores.is_empty() {
        return Err("no stage was scored".into());
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 820)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (head, body) = root.split_vertically(60);
        head.titled(
            "Held-out bits per byte after each stage (lower is better)",
            ("sans-serif", 22),
        )
        .map_err(|e| e.to_string())?;
        let (english, arabic) = body.split_vertically(380);
        let control_en = scores.iter().find(|s| is_control(s)).map(|c| c.en_bpb);
        panel(
            &english,
            scores,
            "English",
            |s| s.en_bpb,
            control_en.map(|c| (c, margin)),
        )?;
        panel(&arabic, scores, "Arabic", |s| s.ar_bpb, None)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// One language's panel; `kept` is `(control bpb, margin)` for the English one.
fn panel(
    area: &DrawingArea<SVGBackend, Shift>,
    scores: &[ModelScores],
    language: &str,
    value: impl Fn(&ModelScores) -> f64,
    kept: Option<(f64, f64)>,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let n = scores.len();
    let names: Vec<String> = scores.iter().map(|s| short_stage(&s.stage).to_string()).collect();
    let values: Vec<f64> = scores.iter().map(&value).collect();
    let mut hi = values.iter().copied().fold(f64::MIN, f64::max);
    let mut lo = values.iter().copied().fold(f64::MAX, f64::min);
    if let Some((c, m)) = kept {
        hi = hi.max(c + m);
        lo = lo.min(c);
    }
    let span = (hi - lo).max(0.05);
    // Room above the highest point for the legend (and the margin line under it).
    let (below, above) = if kept.is_some() {
        (0.1 * span, 0.45 * span)
    } else {
        (0.1 * span, 0.15 * span)
    };
    let x = (0..n as i32 - 1).into_segmented();
    let at = |i: usize| SegmentValue::CenterOf(i as i32);
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{language} held-out text"), ("sans-serif", 18))
        .margin_left(10)
        .margin_right(30)
        .margin_top(5)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x, (lo - below).max(0.0)..hi + above)
        .map_err(e)?;
    let label = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .x_desc("stage (3 control: the same continuation on English only)")
        .y_desc("bits per byte")
        .x_label_formatter(&label)
        .y_label_formatter(&|v| format!("{v:.2}"))
        .y_labels(6)
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    if let Some((c, m)) = kept {
        chart
            .draw_series([Rectangle::new(
                [(SegmentValue::Exact(0), c), (SegmentValue::Last, c + m)],
                MARGIN.mix(0.08).filled(),
            )])
            .map_err(e)?;
        chart
            .draw_series(DashedLineSeries::new(
                [(SegmentValue::Exact(0), c + m), (SegmentValue::Last, c + m)],
                6,
                4,
                MARGIN.stroke_width(2),
            ))
            .map_err(e)?
            .label(format!(
                "English kept if mixed ≤ control + margin {m:.2} = {:.3}",
                c + m
            ))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], MARGIN.stroke_width(2)));
    }
    let main: Vec<(SegmentValue<i32>, f64)> = (0..n)
        .filter(|&i| !is_control(&scores[i]))
        .map(|i| (at(i), values[i]))
        .collect();
    chart
        .draw_series(LineSeries::new(main.iter().cloned(), MAIN.stroke_width(2)))
        .map_err(e)?
        .label("recipe (mixed continued pretraining)")
        .legend(|(x, y)| {
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (20, 0)], MAIN.stroke_width(2))
                + Circle::new((10, 0), 4, MAIN.filled())
        });
    chart
        .draw_series(main.iter().map(|p| Circle::new(p.clone(), 6, MAIN.filled())))
        .map_err(e)?;
    if let Some(c) = (0..n).find(|&i| is_control(&scores[i])) {
        // The control starts where the mixed run starts: from the last stage numbered before it
        // (`2 expanded` for `3 control`).
        let number = |i: usize| scores[i].stage.split(' ').next().unwrap_or_default();
        let start = (0..c)
            .rev()
            .find(|&i| !is_control(&scores[i]) && number(i) != number(c));
        let from: Vec<(SegmentValue<i32>, f64)> = start
            .map(|s| (at(s), values[s]))
            .into_iter()
            .chain([(at(c), values[c])])
            .collect();
        chart
            .draw_series(DashedLineSeries::new(from, 5, 4, CONTROL.stroke_width(2)))
            .map_err(e)?;
        chart
            .draw_series([TriangleMarker::new((at(c), values[c]), 8, CONTROL.filled())])
            .map_err(e)?
            .label("control (English-only continuation)")
            .legend(|(x, y)| TriangleMarker::new((x + 10, y), 6, CONTROL.filled()));
    }
    chart
        .draw_series(values.iter().enumerate().map(|(i, &v)| {
            EmptyElement::at((at(i), v)) + Text::new(format!("{v:.3}"), (8, -18), ("sans-serif", 13))
        }))
        .map_err(e)?;
    chart
        .configure_series_labels()
        .position(if kept.is_some() {
            SeriesLabelPosition::UpperLeft
        } else {
            SeriesLabelPosition::UpperRight
        })
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(stage: &str, en: f64, ar: f64) -> ModelScores {
        ModelScores {
            stage: stage.into(),
            dir: "x".into(),
            en_bpb: en,
            ar_bpb: ar,
            accuracy: Default::default(),
        }
    }

    #[test]
    fn stages_are_named_and_the_control_and_margin_are_drawn() {
        let scores = [
            score("1 base (English only)", 2.53, 16.76),
            score("2 expanded (before CPT)", 2.54, 3.43),
            score("3 mixed CPT", 2.61, 1.64),
            score("3 control CPT (English only)", 2.82, 3.79),
            score("4 SFT", 2.58, 1.72),
            score("5 DPO", 2.58, 1.72),
        ];
        let svg = bpb_svg(&scores, 0.1).unwrap();
        let texts = texts(&svg);
        for name in [
            "1 base",
            "2 expanded",
            "3 mixed CPT",
            "3 control CPT",
            "4 SFT",
            "5 DPO",
        ] {
            // Once on each panel's axis.
            assert_eq!(
                texts.iter().filter(|t| *t == name).count(),
                2,
                "axis label {name}: {texts:?}"
            );
        }
        for text in [
            "bits per byte",
            "English held-out text",
            "Arabic held-out text",
            "English kept if mixed ≤ control + margin 0.10 = 2.920",
            "control (English-only continuation)",
            "16.760",
            "1.640",
        ] {
            assert!(texts.iter().any(|t| t == text), "{text} missing: {texts:?}");
        }
        assert!(
            !texts.iter().any(|t| t.contains("step")),
            "stages are categories, not steps"
        );
        // Five main-line markers per panel plus one legend marker; the control is a triangle.
        assert_eq!(svg.matches("<circle").count(), 2 * (5 + 1));
        assert!(
            svg.matches("<polygon").count() >= 2,
            "the control's triangle marker"
        );
    }

    /// The text of every `<text>` element.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim().to_string()))
            .collect()
    }

    #[test]
    fn short_names_drop_the_note() {
        assert_eq!(short_stage("3 control CPT (English only)"), "3 control CPT");
        assert_eq!(short_stage("4 SFT"), "4 SFT");
    }
}
