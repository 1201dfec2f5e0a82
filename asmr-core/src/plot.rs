//! The quality curves of a run (`psnr.png`): PSNR against step and against training time.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::output::write_bytes_atomic;
use crate::trainer::StepRecord;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The font is compiled in and known to parse; a failure only loses the labels.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// `psnr.png`: PSNR against step (left) and against training time (right), the best step
/// marked. With minibatches the whole-signal evaluations are the curve (the best step is chosen
/// among them) and the batches' own PSNR is drawn faintly behind; with full-grid steps every step's
/// PSNR is the whole signal's. Written atomically.
pub fn psnr_curve(records: &[StepRecord], title: &str, path: &Path) -> Result<()> {
    register_font();
    let (w, h) = (1200u32, 520u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    let err = |e: String| Error::Invalid(format!("plotting {}: {e}", path.display()));
    let evaluations: Vec<&StepRecord> = records.iter().filter(|r| r.evaluation.is_some()).collect();
    let minibatch = !evaluations.is_empty();
    // (step, seconds, psnr) of the main curve, and of the faint batch curve.
    let main: Vec<(f64, f64, f64)> = if minibatch {
        evaluations
            .iter()
            .filter_map(|r| Some((r.step as f64, r.elapsed, r.evaluation?)))
            .filter(|p| p.2.is_finite())
            .collect()
    } else {
        records
            .iter()
            .map(|r| (r.step as f64, r.elapsed, r.psnr))
            .filter(|p| p.2.is_finite())
            .collect()
    };
    let faint: Vec<(f64, f64, f64)> = if minibatch {
        records
            .iter()
            .map(|r| (r.step as f64, r.elapsed, r.psnr))
            .filter(|p| p.2.is_finite())
            .collect()
    } else {
        Vec::new()
    };
    let best = main.iter().copied().max_by(|a, b| a.2.total_cmp(&b.2));
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let root = root
            .titled(title, ("sans-serif", 20))
            .map_err(|e| err(e.to_string()))?;
        let (left, right) = root.split_horizontally(w / 2);
        let all = main.iter().chain(&faint);
        let (mut y_min, mut y_max) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.2), b.max(p.2))
        });
        if !y_min.is_finite() {
            (y_min, y_max) = (0.0, 1.0);
        }
        let pad = ((y_max - y_min) * 0.05).max(0.5);
        let y_range = (y_min - pad)..(y_max + pad);
        let main_label = if minibatch {
            "whole signal (evaluations)"
        } else {
            "PSNR of each step"
        };
        for (area, time_axis) in [(&left, false), (&right, true)] {
            let x = |p: &(f64, f64, f64)| if time_axis { p.1 } else { p.0 };
            let x_max = main.iter().chain(&faint).map(x).fold(1e-9, f64::max) * 1.03;
            let mut chart = ChartBuilder::on(area)
                .margin(15)
                .x_label_area_size(45)
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..x_max, y_range.clone())
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
                chart
                    .draw_series(LineSeries::new(
                        faint.iter().map(|p| (x(p), p.2)),
                        RGBColor(190, 190, 190).stroke_width(1),
                    ))
                    .map_err(|e| err(e.to_string()))?
                    .label("training batches")
                    .legend(|(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(190, 190, 190))
                    });
            }
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
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| err("buffer size".into()))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| err(e.to_string()))?;
    write_bytes_atomic(path, &png)
}
