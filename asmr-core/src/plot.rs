//! The quality curves of a run (`psnr.png`): PSNR against step and against training time.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::trainer::StepRecord;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
static REGISTER: Once = Once::new();

pub(crate) fn register_font() {
    REGISTER.call_once(|| {
        // The font is compiled in and known to parse; a failure only loses the labels.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// A point of a quality curve: step, training seconds, PSNR.
type Point = (f64, f64, f64);

/// The main curve and the faint batch curve of a run's records. With minibatches the whole-signal evaluations are the curve (the best
/// step is chosen among them) and the batches' own PSNR is the faint curve; with full-grid steps
/// every step's PSNR is the whole signal's.
fn curves(records: &[StepRecord]) -> (Vec<Point>, Vec<Point>) {
    let minibatch = records.iter().any(|r| r.evaluation.is_some());
    let step = |r: &StepRecord| (r.step as f64, r.elapsed, r.psnr);
    let finite = |p: &Point| p.2.is_finite();
    if minibatch {
        let main = records
            .iter()
            .filter_map(|r| Some((r.step as f64, r.elapsed, r.evaluation?)))
            .filter(finite)
            .collect();
        (main, records.iter().map(step).filter(finite).collect())
    } else {
        (
            records.iter().map(step).filter(finite).collect(),
            Vec::new(),
        )
    }
}

/// PSNR against step (or against training time) in `area`, the best point marked.
pub(crate) fn draw_curve(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    records: &[StepRecord],
    time_axis: bool,
    err: &dyn Fn(String) -> Error,
) -> Result<()> {
    let (main, faint) = curves(records);
    let best = main.iter().copied().max_by(|a, b| a.2.total_cmp(&b.2));
    let (mut y_min, mut y_max) = main
        .iter()
        .chain(&faint)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.2), b.max(p.2))
        });
    if !y_min.is_finite() {
        (y_min, y_max) = (0.0, 1.0);
    }
    let pad = ((y_max - y_min) * 0.05).max(0.5);
    let x = |p: &Point| if time_axis { p.1 } else { p.0 };
    let x_max = main.iter().chain(&faint).map(x).fold(1e-9, f64::max) * 1.03;
    let mut chart = ChartBuilder::on(area)
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, (y_min - pad)..(y_max + pad))
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc(if time_axis {
            "training time (s)"
        } else {
            "step"
        })
        .y_desc("PSNR (dB)")
        .x_label_formatter(&|v| {
            if time_axis && x_max < 10.0 {
                format!("{v:.1}")
            } else {
                format!("{v:.0}")
            }
        })
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    if !faint.is_empty() {
        let grey = RGBColor(190, 190, 190);
        chart
            .draw_series(LineSeries::new(
                faint.iter().map(|p| (x(p), p.2)),
                grey.stroke_width(1),
            ))
            .map_err(|e| err(e.to_string()))?
            .label("training batches")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    }
    let main_label = if faint.is_empty() {
        "PSNR of each step"
    } else {
        "whole signal (evaluations)"
    };
    chart
        .draw_series(LineSeries::new(
            main.iter().map(|p| (x(p), p.2)),
            BLUE.stroke_width(2),
        ))
        .map_err(|e| err(e.to_string()))?
        .label(main_label)
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    if let Some(b) = best {
        let label = if time_axis {
            format!("best {:.2} dB after {:.1} s", b.2, b.1)
        } else {
            format!("best {:.2} dB at step {}", b.2, b.0)
        };
        chart
            .draw_series(std::iter::once(Circle::new((x(&b), b.2), 5, RED.filled())))
            .map_err(|e| err(e.to_string()))?
            .label(label)
            .legend(|(x, y)| Circle::new((x + 10, y), 5, RED.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// `psnr.png`: PSNR against step (left) and against training time (right), the best step marked;
/// written atomically.
pub fn psnr_curve(records: &[StepRecord], title: &str, path: &Path) -> Result<()> {
    crate::figure::render(path, (1200, 520), |root| {
        let err = |e: String| Error::Invalid(format!("plotting {}: {e}", path.display()));
        let root = root
            .titled(title, ("sans-serif", 20))
            .map_err(|e| err(e.to_string()))?;
        let (left, right) = root.split_horizontally(600);
        draw_curve(&left, records, false, &err)?;
        draw_curve(&right, records, true, &err)
    })
}
