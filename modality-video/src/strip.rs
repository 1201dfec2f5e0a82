//! `frames.png`: a few frames spread over the clip, the original above the reconstruction, each
//! titled with its frame number, so a fit can be judged at a glance without a video player.

use std::path::Path;

use asmr_core::figure::{write_panels, Panel, Raster};
use asmr_core::{Error, Result, Signal};

/// Frames shown at most.
const MAX_FRAMES: usize = 6;
/// The strip is kept about this wide.
const MAX_WIDTH: usize = 1800;

/// Indices of the frames shown: first, last and evenly spaced between.
pub fn chosen_frames(frames: usize, width: usize) -> Vec<usize> {
    let fit = (MAX_WIDTH / width.max(160)).max(1);
    let n = MAX_FRAMES.min(frames).min(fit);
    if n <= 1 {
        return vec![0];
    }
    (0..n).map(|i| i * (frames - 1) / (n - 1)).collect()
}

pub fn write(target: &Signal, prediction: &[f32], path: &Path) -> Result<()> {
    let (t, h, w) = (
        target.info.shape[0],
        target.info.shape[1],
        target.info.shape[2],
    );
    let frame = h * w * 3;
    if prediction.len() != t * frame {
        return Err(Error::Invalid(format!(
            "frames.png: the prediction has {} values, the clip {}",
            prediction.len(),
            t * frame
        )));
    }
    let picks = chosen_frames(t, w);
    let to_u8 = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    let raster = |values: &[f32]| Raster {
        width: w,
        height: h,
        rgb: values.iter().map(|&v| to_u8(v)).collect(),
    };
    let mut panels = Vec::with_capacity(2 * picks.len());
    for (row, label) in ["original", "fit"].into_iter().enumerate() {
        for &f in &picks {
            let range = f * frame..(f + 1) * frame;
            let values = if row == 0 {
                target.data.slice(range).into_owned()
            } else {
                prediction[range].to_vec()
            };
            panels.push(Panel {
                title: format!("{label}, frame {f}"),
                raster: raster(&values),
                axes: None,
            });
        }
    }
    // Cells wide enough to read, small frames shown larger.
    let cell_w = (MAX_WIDTH as u32 / picks.len() as u32).clamp(220, 2 * w.max(110) as u32);
    let cell_h = (cell_w as f64 * h as f64 / w as f64) as u32 + 36;
    write_panels(
        path,
        &format!("frames of {t}: the original (top) and the fit (bottom)"),
        &panels,
        picks.len(),
        (cell_w, cell_h),
        None,
    )
}
