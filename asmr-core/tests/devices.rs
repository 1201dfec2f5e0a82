//! Every model gives the same output and parameter gradients on every path it can run: the CPU with
//! the fused kernels, the CPU with candle's plain ops (the path other devices take), and each
//! CUDA GPU when the build has CUDA and one is present.

mod common;

use asmr_core::candle_core::{Device, Tensor};
use asmr_core::config::ConfigBuilder;
use asmr_core::kernels::Kernels;
use asmr_core::models::{BuiltModel, ModelContext};
use asmr_core::params::ParamStore;

const MODELS: &[(&str, &[&str])] = &[
    ("asmr", &["net.hidden=32"]),
    ("asmr", &["net.hidden=32", "net.modulator=nonlinear"]),
    ("siren", &["net.hidden=32"]),
    ("ffn", &["net.hidden=32"]),
    ("wire", &["net.hidden=32"]),
    (
        "kilonerf",
        &["net.kilonerf.tiles=[4]", "net.kilonerf.hidden=8"],
    ),
    (
        "ngp",
        &[
            "net.ngp.log2_table=8",
            "net.ngp.levels=6",
            "net.ngp.min_res=2",
        ],
    ),
    ("grid", &[]),
];

/// Output and every parameter gradient of `sum(out * r)`, as host vectors: over the whole grid, or
/// over the samples `batch` (grid indices, `shape.len()` per sample) when given.
fn run(
    model: &str,
    sets: &[&str],
    shape: &[usize],
    batch: Option<&[u32]>,
    device: &Device,
    kernels: Kernels,
) -> Vec<(String, Vec<f32>)> {
    let mut b = ConfigBuilder::new().unwrap();
    b.set("model", model).unwrap();
    b.set("net.layers", "4").unwrap();
    for s in sets {
        b.set_pair(s).unwrap();
    }
    let cfg = b.build().unwrap();
    let mut ctx = ModelContext::new(cfg.net, shape, 3);
    ctx.kernels = kernels;
    let built = BuiltModel::new(model, ctx, ParamStore::seeded(5), device).unwrap();
    let (out, n) = match batch {
        Some(idx) => (
            built.model.forward_points(idx).unwrap(),
            idx.len() / shape.len(),
        ),
        None => (built.model.forward_grid().unwrap(), shape.iter().product()),
    };
    let r: Vec<f32> = (0..n * 3)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let r = Tensor::from_vec(r, (n, 3), device).unwrap();
    let grads = (&out * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let host = |t: &Tensor| -> Vec<f32> { t.flatten_all().unwrap().to_vec1().unwrap() };
    let mut v = vec![("output".to_string(), host(&out))];
    for (name, var) in built.params.vars() {
        let g = grads
            .get(&var)
            .unwrap_or_else(|| panic!("{model}: no gradient for {name}"));
        v.push((name, host(g)));
    }
    v
}

#[test]
fn every_path_agrees() {
    agree(None);
}

/// The same over a minibatch with repeated samples: the deduplicated forward, gathers and their
/// scatter-add backward.
#[test]
fn every_path_agrees_on_batches() {
    let mut rng = asmr_core::rng::Rng::new(11);
    let idx: Vec<u32> = (0..150)
        .flat_map(|_| [(rng.next_u64() % 12) as u32, (rng.next_u64() % 16) as u32])
        .chain([3, 5, 3, 5, 0, 0])
        .collect();
    agree(Some(&idx));
}

fn agree(batch: Option<&[u32]>) {
    let shape = [12, 16];
    for (model, sets) in MODELS {
        let fused = run(model, sets, &shape, batch, &Device::Cpu, Kernels::Fused);
        let plain = run(model, sets, &shape, batch, &Device::Cpu, Kernels::Plain);
        let mut others = vec![("cpu-plain".to_string(), plain)];
        for dev in common::devices().into_iter().filter(|d| !d.is_cpu()) {
            for k in [Kernels::Fused, Kernels::Plain] {
                let got = run(model, sets, &shape, batch, &dev, k);
                others.push((format!("{dev:?} {k:?}"), got));
            }
        }
        for (path, got) in others {
            for ((name, a), (_, b)) in fused.iter().zip(&got) {
                let scale = a.iter().fold(1f32, |m, x| m.max(x.abs()));
                let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                assert!(
                    diff <= 1e-4 * scale,
                    "{model} {sets:?} on {path}: {name} differs by {diff} (scale {scale})"
                );
            }
        }
    }
}
