//! The `image` modality: PNG and JPEG photos (8 or 16 bit, gray or RGB) as `(h, w)` signals with
//! 1 or 3 channels, PSNR and SSIM (SPEC §7), and the reconstruction written as PNG.

mod example;
mod io;
mod presets;

use asmr_core::metrics::{psnr, ssim, Metrics};
use asmr_core::registry::Modality;
use asmr_core::{Error, Result, Signal};

pub use example::example;
pub use io::{load, load_image, write_png};

/// PSNR and SSIM of a prediction (training range `[0, 1]`, same layout as the target).
pub fn metrics(target: &Signal, prediction: &[f32]) -> Result<Metrics> {
    if prediction.len() != target.data.len() {
        return Err(Error::Invalid(format!(
            "prediction has {} values, the image {}",
            prediction.len(),
            target.data.len()
        )));
    }
    let (h, w) = (target.info.shape[0], target.info.shape[1]);
    let clamped: Vec<f32> = prediction.iter().map(|v| v.clamp(0.0, 1.0)).collect();
    let mut m = Metrics::new();
    m.insert("psnr".into(), psnr(&target.data, prediction));
    if h >= asmr_core::metrics::SSIM_WINDOW && w >= asmr_core::metrics::SSIM_WINDOW {
        m.insert(
            "ssim".into(),
            ssim(&target.data, &clamped, h, w, target.info.channels)?,
        );
    }
    Ok(m)
}

asmr_core::inventory::submit! {
    Modality {
        name: "image",
        description: "photos (PNG, JPEG; 8/16-bit gray or RGB) as 2-D signals; PSNR, SSIM; PNG output",
        default_preset: "image",
        example_preset: "demo",
        output_file: "reconstruction.png",
        load: |path, _options| load(path),
        example,
        metrics,
        write: write_png,
    }
}
