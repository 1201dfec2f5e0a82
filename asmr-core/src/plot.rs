//! The PSNR-against-step plot of a run (`psnr.png`).

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::output::write_bytes_atomic;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The font is compiled in and known to parse; a failure only loses the labels.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Plot `(step, psnr)` points as a line with the best point marked; written atomically as PNG.
pub fn psnr_curve(points: &[(usize, f64)], title: &str, path: &Path) -> Result<()> {
    register_font();
    let (w, h) = (900u32, 540u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    let finite: Vec<(f64, f64)> = points
        .iter()
        .filter(|(_, p)| p.is_finite())
        .map(|&(s, p)| (s as f64, p))
        .collect();
    let err = |e: String| Error::Invalid(format!("plotting {}: {e}", path.display()));
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let x_max = finite.iter().map(|p| p.0).fold(1.0, f64::max);
        let (mut y_min, mut y_max) = finite
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                (a.min(p.1), b.max(p.1))
            });
        if !y_min.is_finite() {
            (y_min, y_max) = (0.0, 1.0);
        }
        let pad = ((y_max - y_min) * 0.05).max(0.5);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..x_max, (y_min - pad)..(y_max + pad))
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("PSNR (dB)")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(LineSeries::new(
                finite.iter().copied(),
                BLUE.stroke_width(2),
            ))
            .map_err(|e| err(e.to_string()))?;
        if let Some(best) = finite.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1)) {
            chart
                .draw_series(std::iter::once(Circle::new(best, 5, RED.filled())))
                .map_err(|e| err(e.to_string()))?
                .label(format!("best {:.2} dB at step {}", best.1, best.0))
                .legend(|(x, y)| Circle::new((x + 10, y), 5, RED.filled()));
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .label_font(("sans-serif", 15))
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
