//! Shared helpers for asmr-core's integration tests.
#![allow(dead_code)]

use asmr_core::candle_core::{Device, Tensor};
use asmr_core::config::{Bases, ConfigBuilder, NetConfig};
use asmr_core::{Signal, SignalInfo};

/// Every device this build can run on: the CPU, and the first CUDA GPU when the binary has CUDA and
/// one is present. Tests loop their bodies over these, as candle's `test_device!` does. With
/// `ASMR_REQUIRE_CUDA=1` (set by `scripts/gpu-check.sh`) a missing GPU fails the test instead of
/// silently testing the CPU alone.
pub fn devices() -> Vec<Device> {
    let mut v = vec![Device::Cpu];
    match Device::new_cuda(0) {
        Ok(d) => v.push(d),
        Err(e) if std::env::var_os("ASMR_REQUIRE_CUDA").is_some_and(|x| x == "1") => {
            panic!("ASMR_REQUIRE_CUDA=1 but no CUDA device: {e}")
        }
        Err(_) => {}
    }
    v
}

pub fn net(layers: usize, hidden: usize, bases: Vec<Vec<usize>>) -> NetConfig {
    let mut n = ConfigBuilder::new().unwrap().build().unwrap().net;
    n.layers = layers;
    n.hidden = hidden;
    n.bases = Bases::PerAxis(bases);
    n
}

/// A smooth test signal with some detail: sums of sinusoids per channel, in [0, 1].
pub fn test_signal(shape: &[usize], channels: usize) -> Signal {
    let n: usize = shape.iter().product();
    let d = shape.len();
    let mut data = Vec::with_capacity(n * channels);
    for p in 0..n {
        let mut rem = p;
        let mut x = vec![0f32; d];
        for a in (0..d).rev() {
            x[a] = (rem % shape[a]) as f32 / shape[a] as f32;
            rem /= shape[a];
        }
        for c in 0..channels {
            let mut v = 0.5;
            for (a, xa) in x.iter().enumerate() {
                v += 0.2 * ((a + c + 1) as f32 * 3.1 * xa + c as f32).sin() / d as f32;
            }
            data.push(v.clamp(0.0, 1.0));
        }
    }
    Signal::new(
        SignalInfo {
            modality: "test".into(),
            shape: shape.to_vec(),
            channels,
            source: "generated".into(),
            extra: Default::default(),
        },
        data,
    )
    .unwrap()
}

/// Largest absolute value of a tensor.
pub fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Largest absolute elementwise difference of two tensors.
pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// A `[rows, cols]` tensor of values in `[-1, 1)` drawn from `seed`: test weights that are the same
/// every run (candle's `Tensor::rand` is not seeded, so a tolerance could pass or fail by chance).
pub fn seeded_uniform(rows: usize, cols: usize, seed: u64, dev: &Device) -> Tensor {
    let mut rng = asmr_core::rng::Rng::new(seed);
    let v: Vec<f32> = (0..rows * cols)
        .map(|_| rng.uniform(-1.0, 1.0) as f32)
        .collect();
    Tensor::from_vec(v, (rows, cols), dev).unwrap()
}
