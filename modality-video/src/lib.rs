//! The `video` modality: clips decoded with ffmpeg-next (any container and codec the system's
//! FFmpeg reads) as `(t, h, w)` signals with 3 channels; PSNR and SSIM per frame, reported as mean
//! and standard deviation over frames (docs/method.md, "Metrics"), plus the whole clip's PSNR; the reconstruction as
//! H.264 MP4 and `frames.png` (original above reconstruction).

mod decode;
mod encode;
mod example;
mod strip;

use std::path::Path;

use asmr_core::config::{parse, SectionSpec, Value};
use asmr_core::metrics::{clamped_mse, psnr_from_mse, ssim, Metrics, SSIM_WINDOW};
use asmr_core::output::write_atomic;
use asmr_core::registry::{BandMetrics, BandWriter, Modality, Preview};
use asmr_core::{Error, Result, Samples, Signal, SignalInfo};

pub use decode::{decode, parse_size, Clip, DecodeOptions, VideoOptions};
pub use encode::{geometry, write_clip, EncodeSpec, Geometry, Mp4Bands, VideoEncoder, MP4_H264};
pub use example::example;

/// Decode a clip into a signal (`data.start`, `data.frames`, `data.stride`, `data.size`).
pub fn load(path: &Path, options: &VideoOptions) -> Result<Signal> {
    let opts = DecodeOptions::from_config(options);
    let clip = decode(path, &opts)?;
    signal_from_clip(clip, &path.display().to_string())
}

pub fn signal_from_clip(clip: Clip, source: &str) -> Result<Signal> {
    let mut extra = serde_json::Map::new();
    extra.insert("rate".into(), serde_json::json!([clip.rate.0, clip.rate.1]));
    extra.insert(
        "pixel_aspect".into(),
        serde_json::json!([clip.pixel_aspect.0, clip.pixel_aspect.1]),
    );
    extra.insert("codec".into(), clip.codec.clone().into());
    let info = SignalInfo {
        modality: "video".into(),
        shape: vec![clip.frames, clip.height, clip.width],
        channels: 3,
        source: source.to_string(),
        extra,
    };
    let mut signal = Signal::from_samples(info, Samples::U8(clip.rgb))?;
    signal.notes = clip.notes;
    Ok(signal)
}

/// Squared error and SSIM of one frame (training range, prediction clamped); SSIM is `None` for
/// frames smaller than its window.
pub fn frame_scores(target: &[f32], prediction: &[f32], h: usize, w: usize) -> Result<FrameScore> {
    let mse = clamped_mse(target, prediction, 0.0, 1.0);
    let ssim = if h >= SSIM_WINDOW && w >= SSIM_WINDOW {
        let clamped: Vec<f32> = prediction.iter().map(|v| v.clamp(0.0, 1.0)).collect();
        Some(ssim(target, &clamped, h, w, 3)?)
    } else {
        None
    };
    Ok(FrameScore {
        mse,
        psnr: psnr_from_mse(mse, 1.0),
        ssim,
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameScore {
    pub mse: f64,
    pub psnr: f64,
    pub ssim: Option<f64>,
}

/// Mean and population standard deviation (numpy's default `ddof=0`).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Per-frame PSNR and SSIM over bands of whole frames.
pub struct VideoMetrics<'a> {
    target: &'a Signal,
    frames: Vec<FrameScore>,
}

impl<'a> VideoMetrics<'a> {
    pub fn new(target: &'a Signal) -> Self {
        Self {
            target,
            frames: Vec::new(),
        }
    }
}

impl BandMetrics for VideoMetrics<'_> {
    fn add(&mut self, rows: std::ops::Range<usize>, values: &[f32]) -> Result<()> {
        let (h, w) = (self.target.info.shape[1], self.target.info.shape[2]);
        let frame = h * w * 3;
        let range = rows.start * frame..rows.end * frame;
        if rows.start != self.frames.len()
            || range.end > self.target.data.len()
            || range.len() != values.len()
        {
            return Err(Error::Invalid("band does not match the clip".into()));
        }
        let target = self.target.data.slice(range);
        for (t, p) in target.chunks_exact(frame).zip(values.chunks_exact(frame)) {
            self.frames.push(frame_scores(t, p, h, w)?);
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Metrics> {
        let psnr: Vec<f64> = self.frames.iter().map(|f| f.psnr).collect();
        let mse = self.frames.iter().map(|f| f.mse).sum::<f64>() / self.frames.len().max(1) as f64;
        let (pm, ps) = mean_std(&psnr);
        let mut m = Metrics::new();
        m.insert("psnr".into(), psnr_from_mse(mse, 1.0));
        m.insert("psnr_frame_mean".into(), pm);
        m.insert("psnr_frame_std".into(), ps);
        let ssim: Vec<f64> = self.frames.iter().filter_map(|f| f.ssim).collect();
        if !ssim.is_empty() {
            let (sm, ss) = mean_std(&ssim);
            m.insert("ssim".into(), sm);
            m.insert("ssim_frame_std".into(), ss);
        }
        m.insert("frames".into(), self.frames.len() as f64);
        Ok(m)
    }
}

fn band_metrics(target: &Signal) -> Result<Box<dyn BandMetrics + '_>> {
    Ok(Box::new(VideoMetrics::new(target)))
}

fn mp4_writer(info: &SignalInfo, path: &Path) -> Result<Box<dyn BandWriter>> {
    Ok(Box::new(Mp4Bands::create(info, path)?))
}

/// `frames.png` (a strip of frames, original above reconstruction) and `frames.csv` (PSNR and
/// SSIM of every frame).
/// The middle frame and its error map for `summary.png`.
fn preview(target: &Signal, prediction: &[f32]) -> Result<Preview> {
    let (t, h, w) = (
        target.info.shape[0],
        target.info.shape[1],
        target.info.shape[2],
    );
    let k = t / 2;
    let frame = h * w * 3;
    let range = k * frame..(k + 1) * frame;
    let what = format!("frame {k} of {t}");
    let original = target.data.slice(range.clone());
    Preview::of_picture(&original, &prediction[range], (h, w), 3, &what)
}

fn extras(target: &Signal, prediction: &[f32], dir: &Path) -> Result<Vec<String>> {
    let strip_name = "frames.png";
    strip::write(target, prediction, &dir.join(strip_name))?;
    let (h, w) = (target.info.shape[1], target.info.shape[2]);
    let frame = h * w * 3;
    let csv_name = "frames.csv";
    write_atomic(&dir.join(csv_name), |out| {
        use std::io::Write;
        let io = |e| Error::io(dir.join(csv_name), e);
        writeln!(out, "frame,psnr,ssim").map_err(io)?;
        for (i, p) in prediction.chunks_exact(frame).enumerate() {
            let t = target.data.slice(i * frame..(i + 1) * frame);
            let s = frame_scores(&t, p, h, w)?;
            let ssim = s.ssim.map(|v| format!("{v:.6}")).unwrap_or_default();
            writeln!(out, "{i},{:.4},{ssim}", s.psnr).map_err(io)?;
        }
        Ok(())
    })?;
    Ok(vec![strip_name.into(), csv_name.into()])
}

asmr_core::inventory::submit! {
    Modality {
        name: "video",
        description: "clips (MP4, WebM, MKV, AVI, Ogg...; any codec FFmpeg reads) as (t, h, w) RGB signals; per-frame PSNR/SSIM; H.264 MP4 output",
        default_preset: "video",
        example_preset: "video-demo",
        output_file: "reconstruction.mp4",
        extensions: &["mp4", "mov", "mkv", "avi", "webm", "m4v", "gif"],
        config: SectionSpec::of::<VideoOptions>(),
        load: |path, data: &Value| load(path, &parse::<VideoOptions>(data)?),
        example,
        metrics: band_metrics,
        writer: mp4_writer,
        extras: Some(extras),
        preview: Some(preview),
        summary,
    }
}

/// `PSNR 30.10 dB, SSIM 0.9120 (per frame: PSNR 30.05 ± 0.80 dB, SSIM 0.9120 ± 0.0100)`: the
/// clip's PSNR is over all its samples, its SSIM the mean of the frames'.
fn summary(m: &Metrics) -> String {
    let mut line = format!("PSNR {:.2} dB", m.get("psnr").copied().unwrap_or(f64::NAN));
    if let Some(s) = m.get("ssim") {
        line += &format!(", SSIM {s:.4}");
    }
    if let (Some(mean), Some(std)) = (m.get("psnr_frame_mean"), m.get("psnr_frame_std")) {
        line += &format!(" (per frame: PSNR {mean:.2} ± {std:.2} dB");
        if let (Some(mean), Some(std)) = (m.get("ssim"), m.get("ssim_frame_std")) {
            line += &format!(", SSIM {mean:.4} ± {std:.4}");
        }
        line += ")";
    }
    line
}

asmr_core::preset!(
    "video",
    "video",
    "default for clips: 700 full-clip steps of the fast recipe for clips (minibatches over the memory budget)"
);
asmr_core::preset!(
    "video",
    "paper-video",
    "the video default with the paper's optimiser settings (lr 1e-4), 10,000 full-clip steps"
);
asmr_core::preset!(
    "video",
    "video-demo",
    "the built-in example clip (24 x 64 x 96, a moving disc)"
);
asmr_core::preset!(
    "video",
    "video-uvg",
    "the paper's UVG recipe: 150 x 270 x 480 clips (--frames 150 --size 480x270), grad clip 0.1"
);

/// ASMR's fast recipe for clips: the 3-D recipe's short second-moment memory, with a rate that
/// starts at 1e-3 for short schedules and falls to the 3-D recipe's 3e-4 by 700 steps (a schedule
/// of `S` > 63 steps starts at `sqrt(63 / S)` of it). On two cores a two-minute budget is some 60
/// full-clip steps, too few for 3e-4; 1e-3 over 700 steps stalls (BENCHMARKS.md, "Video").
pub const FAST_VIDEO: asmr_core::config::OptimDefaults = asmr_core::config::OptimDefaults {
    lr: 1e-3,
    horizon: 63,
    ..asmr_core::models::asmr::FAST_3D
};

asmr_core::inventory::submit! {
    asmr_core::FastRecipe {
        modality: "video",
        model: "asmr",
        optim: FAST_VIDEO,
    }
}

asmr_core::inventory::submit! {
    asmr_core::Experiment {
        name: "video",
        modality: "video",
        description: "videos: ASMR against SIREN",
        data: &["*.mp4", "*.avi", "*.mkv", "*.mov", "*.webm"],
        expects: "video files (MP4, AVI, MKV, MOV or WebM)",
        recipes: &[("asmr", "paper-video"), ("siren", "paper-video")],
        seeds: &[1, 2, 3],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_gives_each_spread_with_its_mean() {
        let mut m = Metrics::new();
        for (k, v) in [
            ("psnr", 30.1),
            ("ssim", 0.912),
            ("psnr_frame_mean", 30.05),
            ("psnr_frame_std", 0.8),
            ("ssim_frame_std", 0.01),
        ] {
            m.insert(k.into(), v);
        }
        assert_eq!(
            summary(&m),
            "PSNR 30.10 dB, SSIM 0.9120 (per frame: PSNR 30.05 ± 0.80 dB, SSIM 0.9120 ± 0.0100)"
        );
    }
}
