//! Timing of training steps and full-grid inference (`asmr-cli bench`). Medians over repeats, all
//! models measured in the same process so their ratios are meaningful on a noisy machine.

use std::time::Instant;

use candle_core::Device;
use serde::Serialize;

use crate::config::Config;
use crate::error::Result;
use crate::run::build_model;
use crate::signal::{Signal, SignalInfo};
use crate::trainer::Trainer;

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub model: String,
    pub shape: Vec<usize>,
    pub channels: usize,
    pub params: usize,
    pub macs_per_sample: f64,
    /// Seconds per full-grid training step (forward, loss, backward, Adam).
    pub step_seconds: Vec<f64>,
    /// Seconds per full-grid inference (forward only, no gradient bookkeeping).
    pub infer_seconds: Vec<f64>,
    pub peak_rss_bytes: Option<u64>,
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => 0.5 * (s[n / 2 - 1] + s[n / 2]),
    }
}

impl BenchResult {
    pub fn step_median(&self) -> f64 {
        median(&self.step_seconds)
    }

    pub fn infer_median(&self) -> f64 {
        median(&self.infer_seconds)
    }
}

/// A deterministic textured signal of the given shape (values in `[0, 1]`).
pub fn synthetic_signal(shape: &[usize], channels: usize) -> Result<Signal> {
    let n: usize = shape.iter().product();
    let mut rng = crate::rng::Rng::new(1);
    let data = (0..n * channels)
        .map(|i| {
            let t = (i / channels) as f32;
            (0.5 + 0.3 * (t * 0.013).sin() + 0.2 * (rng.next_f64() as f32 - 0.5)).clamp(0.0, 1.0)
        })
        .collect();
    Signal::new(
        SignalInfo {
            modality: "bench".into(),
            shape: shape.to_vec(),
            channels,
            source: "synthetic".into(),
            extra: Default::default(),
        },
        data,
    )
}

/// Time `repeats` training steps (after one warm-up) and `repeats` inferences of `config`'s model.
pub fn bench_model(
    config: &Config,
    signal: &Signal,
    repeats: usize,
    device: &Device,
) -> Result<BenchResult> {
    let built = build_model(config, &signal.info, device)?;
    let profile = built.profile()?;
    let mut trainer = Trainer::new(&built, signal, &config.train)?;
    trainer.step()?;
    let mut step_seconds = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t = Instant::now();
        trainer.step()?;
        device.synchronize()?;
        step_seconds.push(t.elapsed().as_secs_f64());
    }
    let mut infer_seconds = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t = Instant::now();
        let out = built.model.forward_grid()?.detach();
        device.synchronize()?;
        infer_seconds.push(t.elapsed().as_secs_f64());
        drop(out);
    }
    Ok(BenchResult {
        model: config.model.clone(),
        shape: signal.info.shape.clone(),
        channels: signal.info.channels,
        params: profile.params,
        macs_per_sample: profile.macs_per_sample,
        step_seconds,
        infer_seconds,
        peak_rss_bytes: peak_rss(),
    })
}

/// The process's peak resident set size (Linux `VmHWM`), if known.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
