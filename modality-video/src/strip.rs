//! `frames.png`: a few frames spread over the clip, the original above the reconstruction, so a
//! fit can be judged at a glance without a video player.

use std::path::Path;

use asmr_core::output::write_atomic;
use asmr_core::{Error, Result, Signal};

/// Frames shown at most.
const MAX_FRAMES: usize = 6;
/// The strip is kept about this wide.
const MAX_WIDTH: usize = 2400;
const GAP: usize = 4;
const BACKGROUND: [u8; 3] = [24, 24, 24];

/// Indices of the frames shown: first, last and evenly spaced between.
pub fn chosen_frames(frames: usize, width: usize) -> Vec<usize> {
    let fit = (MAX_WIDTH / (width + GAP)).max(1);
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
    // Small frames are shown twice as large (nearest neighbour) so they can be inspected.
    let zoom = if w * 2 * MAX_FRAMES.min(t) <= MAX_WIDTH && h < 360 {
        2
    } else {
        1
    };
    let picks = chosen_frames(t, w * zoom);
    let (fw, fh) = (w * zoom, h * zoom);
    let width = picks.len() * fw + (picks.len() + 1) * GAP;
    let height = 2 * fh + 3 * GAP;
    let mut img = image::RgbImage::from_pixel(width as u32, height as u32, image::Rgb(BACKGROUND));
    let to_u8 = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    for (col, &f) in picks.iter().enumerate() {
        let original = target.data.slice(f * frame..(f + 1) * frame);
        let rows: [&[f32]; 2] = [&original, &prediction[f * frame..(f + 1) * frame]];
        for (row, values) in rows.iter().enumerate() {
            let (x0, y0) = (GAP + col * (fw + GAP), GAP + row * (fh + GAP));
            for y in 0..fh {
                for x in 0..fw {
                    let i = ((y / zoom) * w + x / zoom) * 3;
                    let px =
                        image::Rgb([to_u8(values[i]), to_u8(values[i + 1]), to_u8(values[i + 2])]);
                    img.put_pixel((x0 + x) as u32, (y0 + y) as u32, px);
                }
            }
        }
    }
    write_atomic(path, |out| {
        image::DynamicImage::ImageRgb8(img)
            .write_to(out, image::ImageFormat::Png)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
    })
}
