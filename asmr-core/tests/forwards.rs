//! The per-sample forward and the activation-sharing forward of ASMR agree on the full grid, in
//! value and in the gradient of every parameter (docs/method.md, "Two forwards").

mod common;

use asmr_core::candle_core::{DType, Device};
use asmr_core::models::{all_indices, asmr::Asmr, BuiltModel, ModelContext};
use asmr_core::modulator::ModulatorKind;
use asmr_core::params::ParamStore;
use common::{devices, max_abs, max_diff, net};

fn build(
    shape: &[usize],
    channels: usize,
    bases: Vec<Vec<usize>>,
    modulator: ModulatorKind,
    dev: &Device,
) -> BuiltModel {
    // Built through the registry, as the trainer does.
    let mut n = net(bases[0].len(), 32, bases);
    n.modulator = modulator;
    let ctx = ModelContext::new(n, shape, channels);
    BuiltModel::new("asmr", ctx, ParamStore::seeded(3), dev).unwrap()
}

/// Fused activation-sharing, plain activation-sharing and per-sample forwards agree, in value and
/// in the gradient of every parameter.
fn check_agreement(shape: &[usize], channels: usize, bases: Vec<Vec<usize>>) {
    for dev in devices() {
        for kind in [ModulatorKind::Linear, ModulatorKind::Nonlinear] {
            let mut n = net(bases[0].len(), 32, bases.clone());
            n.modulator = kind;
            let ctx = ModelContext::new(n, shape, channels);
            let store = ParamStore::seeded(3);
            let model = Asmr::new(&ctx, store.var_builder(&dev)).unwrap();
            let idx = all_indices(shape);
            let n: usize = shape.iter().product();
            let outputs = [
                ("fused", model.forward_full_grid().unwrap()),
                ("plain", model.forward_full_grid_plain().unwrap()),
                ("per-sample", model.forward_per_sample(&idx).unwrap()),
            ];
            for (what, out) in &outputs {
                assert_eq!(out.dims(), &[n, channels], "{what}");
                let diff = max_diff(out, &outputs[2].1);
                assert!(
                    diff <= 1e-4,
                    "{shape:?} {kind:?} {what}: outputs differ by {diff}"
                );
            }
            // The outputs are not trivially zero.
            let spread = max_abs(&outputs[0].1);
            assert!(spread > 1e-3, "degenerate output");

            // Gradients of a weighted sum agree for every parameter.
            let w = common::seeded_uniform(n, channels, 11, &dev);
            let grads: Vec<_> = outputs
                .iter()
                .map(|(_, o)| (o * &w).unwrap().sum_all().unwrap().backward().unwrap())
                .collect();
            let vars = store.vars();
            assert!(!vars.is_empty());
            for (name, var) in vars {
                let reference = grads[2]
                    .get(&var)
                    .unwrap_or_else(|| panic!("no grad for {name}"));
                let scale = max_abs(reference).max(1.0);
                for (k, g) in grads.iter().enumerate().take(2) {
                    let d = max_diff(g.get(&var).unwrap(), reference);
                    assert!(
                        d / scale <= 1e-4,
                        "{shape:?} {kind:?} {}: gradient of {name} differs by {d} (scale {scale})",
                        outputs[k].0
                    );
                }
            }
        }
    }
}

/// The deduplicated batch forward (fused and plain) equals the per-sample forward on a random batch
/// with repeated samples, in value and gradient.
fn check_batch(shape: &[usize], channels: usize, bases: Vec<Vec<usize>>, n: usize) {
    for dev in devices() {
        check_batch_on(shape, channels, bases.clone(), n, &dev);
    }
}

fn check_batch_on(
    shape: &[usize],
    channels: usize,
    bases: Vec<Vec<usize>>,
    n: usize,
    dev: &Device,
) {
    let mut rng = asmr_core::rng::Rng::new(11);
    let mut idx: Vec<u32> = (0..n)
        .flat_map(|_| {
            shape
                .iter()
                .map(|&s| rng.below(s) as u32)
                .collect::<Vec<_>>()
        })
        .collect();
    let d = shape.len();
    let dup: Vec<u32> = idx[..d * (n / 4)].to_vec();
    idx.extend(dup);
    let total = idx.len() / d;
    for kind in [ModulatorKind::Linear, ModulatorKind::Nonlinear] {
        let mut cfg = net(bases[0].len(), 32, bases.clone());
        cfg.modulator = kind;
        let store = ParamStore::seeded(5);
        let model = Asmr::new(
            &ModelContext::new(cfg, shape, channels),
            store.var_builder(dev),
        )
        .unwrap();
        let outs = [
            ("fused", model.forward_dedup(&idx, true).unwrap()),
            ("plain", model.forward_dedup(&idx, false).unwrap()),
            ("per-sample", model.forward_per_sample(&idx).unwrap()),
        ];
        let w = common::seeded_uniform(total, channels, 12, dev);
        let grads: Vec<_> = outs
            .iter()
            .map(|(_, o)| (o * &w).unwrap().sum_all().unwrap().backward().unwrap())
            .collect();
        for (k, (what, o)) in outs.iter().enumerate().take(2) {
            assert_eq!(o.dims(), &[total, channels]);
            let diff = max_diff(o, &outs[2].1);
            assert!(
                diff <= 1e-4,
                "{dev:?} {shape:?} {kind:?} {what}: outputs differ by {diff}"
            );
            for (name, var) in store.vars() {
                let r = grads[2].get(&var).unwrap();
                let scale = max_abs(r).max(1.0);
                let dg = max_diff(grads[k].get(&var).unwrap(), r);
                assert!(
                    dg / scale <= 1e-4,
                    "{dev:?} {what} {kind:?}: grad of {name} differs by {dg}"
                );
            }
        }
    }
}

#[test]
fn deduplicated_batches_match_per_sample() {
    check_batch(&[64, 48], 3, vec![vec![4, 4, 4], vec![4, 3, 4]], 3000);
    check_batch(&[300], 1, vec![vec![5, 6, 10]], 500);
    check_batch(
        &[6, 8, 10],
        2,
        vec![vec![2, 3], vec![2, 4], vec![5, 2]],
        200,
    );
    check_batch(&[5, 7], 1, vec![vec![5], vec![7]], 30);
    // Few samples per last-level cell: the levels take each sample's own sine, where the cases
    // above share each cell's sine and cosine through angle sums.
    check_batch(&[128, 128], 1, vec![vec![4, 4, 8], vec![4, 4, 8]], 100);
}

#[test]
fn large_enough_for_the_threaded_kernels() {
    // 64 x 96 x 32 hidden values per level exceed the single-thread threshold of the kernels.
    check_agreement(&[64, 96], 1, vec![vec![4, 2, 8], vec![4, 6, 4]]);
}

#[test]
fn full_grid_products_with_several_outputs() {
    // 16 digits x 3 outputs: the last level runs as matrix products.
    check_agreement(&[16, 24], 3, vec![vec![4, 4], vec![6, 4]]);
}

#[test]
fn full_grid_products_over_several_blocks() {
    // 6,400 coarse cells: two blocks of coarse rows, the second partial.
    check_agreement(&[400, 256], 2, vec![vec![100, 4], vec![64, 4]]);
}

#[test]
fn one_axis() {
    check_agreement(&[24], 1, vec![vec![2, 3, 4]]);
}

#[test]
fn two_axes_unequal_bases_with_ones() {
    check_agreement(&[12, 10], 3, vec![vec![3, 1, 4], vec![2, 5, 1]]);
}

#[test]
fn three_axes() {
    check_agreement(
        &[6, 4, 8],
        2,
        vec![vec![1, 3, 2], vec![2, 2, 1], vec![2, 2, 2]],
    );
}

#[test]
fn four_axes() {
    check_agreement(
        &[4, 3, 2, 6],
        1,
        vec![vec![2, 2], vec![3, 1], vec![1, 2], vec![2, 3]],
    );
}

#[test]
fn four_axes_all_split_use_the_gather_path() {
    // Every axis split at every level: the broadcast form would need rank 9 > candle's 8.
    check_agreement(
        &[4, 4, 4, 6],
        1,
        vec![vec![2, 2], vec![2, 2], vec![2, 2], vec![3, 2]],
    );
}

#[test]
fn single_level_is_a_plain_layer() {
    check_agreement(&[5, 7], 1, vec![vec![5], vec![7]]);
}

#[test]
fn padded_grid_is_cropped() {
    // 11 is prime: automatic bases pad it, and the output still has the signal's shape.
    for dev in devices() {
        let mut n = net(3, 16, vec![]);
        n.bases = asmr_core::Bases::Auto;
        let ctx = ModelContext::new(n, &[11, 6], 1);
        let built = BuiltModel::new("asmr", ctx, ParamStore::seeded(1), &dev).unwrap();
        let g = built.model.grid().unwrap().clone();
        assert!(g.shape()[0] > 11);
        let full = built.model.forward_grid().unwrap();
        assert_eq!(full.dims(), &[66, 1]);
        let per = built.model.forward_points(&all_indices(&[11, 6])).unwrap();
        assert!(max_diff(&full, &per) <= 1e-4);
    }
}

#[test]
fn init_follows_siren_ranges() {
    let dev = Device::Cpu;
    let built = build(
        &[64, 64],
        3,
        vec![vec![4, 16], vec![8, 8]],
        ModulatorKind::Linear,
        &dev,
    );
    let asmr_params = built.params.vars();
    let get = |name: &str| {
        asmr_params
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name}"))
            .1
            .as_tensor()
            .to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let max_abs = |v: &[f32]| v.iter().fold(0f32, |m, x| m.max(x.abs()));
    // First layer: 1/fan_in = 1/2; its bias too.
    assert!(max_abs(&get("backbone.0.weight")) <= 0.5);
    assert!(max_abs(&get("backbone.0.weight")) > 0.4);
    assert!(max_abs(&get("backbone.0.bias")) <= 0.5);
    // Output layer: sqrt(6/32)/30.
    let r = (6.0f32 / 32.0).sqrt() / 30.0;
    assert!(max_abs(&get("backbone.1.weight")) <= r);
    assert!(max_abs(&get("backbone.1.weight")) > 0.8 * r);
    // Linear modulator: 1/sqrt(d), no bias.
    let v = get("modulator.1.weight");
    assert_eq!(v.len(), 32 * 2);
    assert!(max_abs(&v) <= 1.0 / 2f32.sqrt());
    assert!(!asmr_params.iter().any(|(n, _)| n == "modulator.1.bias"));
    let _ = Asmr::new; // the model type is public for direct use
}
