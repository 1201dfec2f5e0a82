//! Timing of training steps and full-grid inference (`asmr-cli bench`). Medians over repeats, all
//! models measured in the same process so their ratios are meaningful on a noisy machine.

use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::Serialize;

use crate::config::Config;
use crate::error::Result;
use crate::kernels::Kernels;
use crate::models::{BuiltModel, ModelContext};
use crate::params::ParamStore;
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
    /// Seconds to prepare one batch's plan (`Model::prepare_points`: ASMR's level cells, the
    /// grids' interpolation corners): the host work that `fit` does on a worker thread while the
    /// previous step runs, and that a `bench` step does inline. Empty for full-grid steps and for
    /// models with nothing to prepare.
    pub prepare_seconds: Vec<f64>,
    pub peak_rss_bytes: Option<u64>,
    /// Samples one training step fits (the grid, or the batch).
    pub samples_per_step: usize,
    /// Peak device memory of the case on a GPU: the high-water mark of the CUDA memory pool that
    /// candle allocates from (`None` on the CPU).
    pub peak_gpu_bytes: Option<u64>,
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

    /// Median batch preparation, `None` where nothing is prepared.
    pub fn prepare_median(&self) -> Option<f64> {
        (!self.prepare_seconds.is_empty()).then(|| median(&self.prepare_seconds))
    }

    /// Training samples per second (median step).
    pub fn samples_per_second(&self) -> f64 {
        self.samples_per_step as f64 / self.step_median()
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

/// What to time: a model config on a signal, over the full grid or on minibatches of the uniform
/// grid sampler, with the fused kernels or the plain candle graph.
#[derive(Debug, Clone)]
pub struct BenchCase {
    pub config: Config,
    /// Samples per training step; `None` for full-grid steps.
    pub batch: Option<usize>,
    /// Fused kernels, or candle's plain ops (what a device without fused kernels runs).
    pub kernels: Kernels,
}

/// Time `repeats` training steps (after one warm-up) and `repeats` inferences (the full grid, or
/// one batch). Peak RSS is measured from the start of the case.
pub fn bench_model(
    case: &BenchCase,
    signal: &Signal,
    repeats: usize,
    device: &Device,
) -> Result<BenchResult> {
    reset_peak_rss();
    crate::gpu::reset_peak_memory(device);
    let config = &case.config;
    let mut ctx = ModelContext::new(config.net.clone(), &signal.info.shape, signal.info.channels);
    ctx.kernels = case.kernels;
    let built = BuiltModel::new(
        &config.model,
        ctx,
        ParamStore::seeded(config.train.seed),
        device,
    )?;
    let profile = built.profile()?;
    // Chunked as `fit` chunks it.
    let mut train = config.train.clone();
    if let Some(n) = case.batch {
        train.batch = n;
        let budget = crate::memory::memory_budget(config, device);
        train.micro_batch = crate::memory::resolve_micro_batch(&built, &train, budget);
    }
    let mut trainer = Trainer::new(&built, signal, &train)?;
    let batch = case
        .batch
        .map(|n| sampler_batch(signal, n, config, device))
        .transpose()?;
    let step = |t: &mut Trainer| -> Result<()> {
        match &batch {
            Some((idx, target)) => t.step_points(idx, target).map(|_| ()),
            None => t.step().map(|_| ()),
        }
    };
    step(&mut trainer)?;
    let mut step_seconds = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        step_seconds.push(timed(device, || step(&mut trainer))?.1);
    }
    let mut infer_seconds = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let (out, seconds) = timed(device, || {
            Ok(match &batch {
                Some((idx, _)) => built.model.forward_points(idx)?,
                None => built.model.forward_grid()?,
            }
            .detach())
        })?;
        infer_seconds.push(seconds);
        drop(out);
    }
    let mut prepare_seconds = Vec::new();
    if let Some((idx, _)) = &batch {
        for _ in 0..repeats {
            let (prepared, seconds) = timed(device, || Ok(built.model.prepare_points(idx)?))?;
            if prepared.is_none() {
                break;
            }
            prepare_seconds.push(seconds);
        }
    }
    let model = if case.kernels == Kernels::Fused {
        config.model.clone()
    } else {
        format!("{} (plain)", config.model)
    };
    Ok(BenchResult {
        model,
        shape: signal.info.shape.clone(),
        channels: signal.info.channels,
        params: profile.params,
        macs_per_sample: profile.macs_per_sample,
        step_seconds,
        infer_seconds,
        prepare_seconds,
        peak_rss_bytes: peak_rss(),
        samples_per_step: batch
            .as_ref()
            .map_or(signal.info.num_samples(), |(idx, _)| {
                idx.len() / signal.info.shape.len()
            }),
        peak_gpu_bytes: crate::gpu::peak_memory(device),
    })
}

/// `f`'s value and its seconds, the device's queued work included.
fn timed<T>(device: &Device, f: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let t = Instant::now();
    let value = f()?;
    device.synchronize()?;
    Ok((value, t.elapsed().as_secs_f64()))
}

/// The first batch of about `n` samples that `fit`'s uniform grid sampler draws (the config's
/// `train.sampler_grid` and seed), in its order, and their target rows: the order matters, since a
/// step's micro-batches are consecutive runs of it.
fn sampler_batch(
    signal: &Signal,
    n: usize,
    config: &Config,
    device: &Device,
) -> Result<(Vec<u32>, Tensor)> {
    let mut sampler = crate::sampler::GridSampler::new(
        &signal.info.shape,
        &config.train.sampler_grid,
        n,
        config.train.seed,
    )?;
    let idx = crate::sampler::BatchSource::batch(&mut sampler, 0, 0);
    let target = crate::render::target_rows(signal, &idx, device)?;
    Ok((idx, target))
}

/// Reset the kernel's peak-RSS counter for this process (Linux; ignored elsewhere). The allocator
/// keeps freed memory (see [`crate::kernels::keep_freed_memory`]), so what earlier cases freed is
/// first handed back to the system: otherwise their peak would stay resident and count again.
pub fn reset_peak_rss() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap pages to the system.
    unsafe {
        libc::malloc_trim(0);
    }
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak resident set size (Linux `VmHWM`), if known.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
