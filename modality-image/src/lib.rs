//! The `image` modality: PNG and JPEG photos (8 or 16 bit, gray or RGB) as `(h, w)` signals with
//! 1 or 3 channels, PSNR and SSIM (docs/method.md, "Metrics"), and the reconstruction written as PNG.

mod example;
mod io;
mod presets;

use asmr_core::config::{Section, SectionSpec};
use asmr_core::metrics::{clamped_mse, psnr_from_mse, Metrics, SsimBands};
use asmr_core::registry::{BandMetrics, BandWriter, Modality, Preview};
use asmr_core::{Error, Result, Signal, SignalInfo};

pub use example::example;
pub use io::{load, load_image, write_png, PngBands};

/// PSNR and SSIM of a prediction (training range `[0, 1]`, same layout as the target).
pub fn metrics(target: &Signal, prediction: &[f32]) -> Result<Metrics> {
    if prediction.len() != target.data.len() {
        return Err(Error::Invalid(format!(
            "prediction has {} values, the image {}",
            prediction.len(),
            target.data.len()
        )));
    }
    let mut m = ImageMetrics::new(target);
    m.add(0..target.info.shape[0], prediction)?;
    Box::new(m).finish()
}

/// PSNR and SSIM accumulated over bands of rows; SSIM carries six rows across band boundaries so
/// the result equals the whole image's.
pub struct ImageMetrics<'a> {
    target: &'a Signal,
    squared: f64,
    count: usize,
    ssim: SsimBands,
}

impl<'a> ImageMetrics<'a> {
    pub fn new(target: &'a Signal) -> Self {
        Self {
            target,
            squared: 0.0,
            count: 0,
            ssim: SsimBands::new(target.info.shape[1], target.info.channels),
        }
    }
}

impl BandMetrics for ImageMetrics<'_> {
    fn add(&mut self, rows: std::ops::Range<usize>, values: &[f32]) -> Result<()> {
        let row = self.target.info.shape[1] * self.target.info.channels;
        let range = rows.start * row..rows.end * row;
        if range.end > self.target.data.len() || range.len() != values.len() {
            return Err(Error::Invalid("band does not match the image".into()));
        }
        let target = self.target.data.slice(range);
        self.squared += clamped_mse(&target, values, 0.0, 1.0) * values.len() as f64;
        self.count += values.len();
        let clamped: Vec<f32> = values.iter().map(|v| v.clamp(0.0, 1.0)).collect();
        self.ssim.add(&target, &clamped);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Metrics> {
        let mut m = Metrics::new();
        m.insert(
            "psnr".into(),
            psnr_from_mse(self.squared / self.count.max(1) as f64, 1.0),
        );
        if let Some(s) = self.ssim.finish() {
            m.insert("ssim".into(), s);
        }
        Ok(m)
    }
}

/// `data.*` of images: none (a photo is read as stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageOptions {}

impl Section for ImageOptions {
    const PATH: &'static str = "data";
    const DEFAULTS: &'static str = "{}";
}

/// `PSNR 31.20 dB, SSIM 0.9321`.
pub fn summary(m: &Metrics) -> String {
    let mut line = format!("PSNR {:.2} dB", m.get("psnr").copied().unwrap_or(f64::NAN));
    if let Some(s) = m.get("ssim") {
        line += &format!(", SSIM {s:.4}");
    }
    line
}

fn band_metrics(target: &Signal) -> Result<Box<dyn BandMetrics + '_>> {
    Ok(Box::new(ImageMetrics::new(target)))
}

/// The image and its error map for `summary.png`.
fn preview(target: &Signal, prediction: &[f32]) -> Result<Preview> {
    let (h, w) = (target.info.shape[0], target.info.shape[1]);
    let what = format!("{w} x {h} pixels");
    Preview::of_picture(
        &target.data.values(),
        prediction,
        (h, w),
        target.info.channels,
        &what,
    )
}

fn png_writer(info: &SignalInfo, path: &std::path::Path) -> Result<Box<dyn BandWriter>> {
    Ok(Box::new(PngBands::create(info, path)?))
}

asmr_core::inventory::submit! {
    Modality {
        name: "image",
        description: "photos (PNG, JPEG; 8/16-bit gray or RGB) as 2-D signals; PSNR, SSIM; PNG output",
        default_preset: "image",
        example_preset: "demo",
        output_file: "reconstruction.png",
        extensions: &["png", "jpg", "jpeg"],
        config: SectionSpec::of::<ImageOptions>(),
        load: |path, _| load(path),
        example,
        metrics: band_metrics,
        writer: png_writer,
        extras: None,
        preview: Some(preview),
        summary,
    }
}
