//! Properties over random inputs (proptest): bases and padding for any shape, the grid sampler's
//! epochs, the deduplicated forward against the per-sample one, and configuration layering.

mod common;

use std::collections::BTreeMap;

use asmr_core::candle_core::Device;
use asmr_core::config::{assemble, Base, Config, Layers, OptionKind};
use asmr_core::grid::{auto_bases, MultiResGrid};
use asmr_core::models::asmr::Asmr;
use asmr_core::models::ModelContext;
use asmr_core::params::ParamStore;
use asmr_core::sampler::{BatchSource, GridSampler};
use common::{max_abs, max_diff, net};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Automatic bases multiply to the padded size, which is at least the signal's and not far
    /// above it, with the requested number of levels; every sample's digits give back its
    /// coordinate.
    #[test]
    fn bases_cover_every_axis(
        shape in prop::collection::vec(1usize..300, 1..5),
        levels in 1usize..6,
        probe in any::<u64>(),
    ) {
        let grid = MultiResGrid::auto(&shape, levels).unwrap();
        prop_assert_eq!(grid.dims(), shape.len());
        prop_assert_eq!(grid.levels(), levels);
        for (a, &n) in shape.iter().enumerate() {
            let padded = grid.shape()[a];
            prop_assert!(padded >= n, "axis {} padded to {} < {}", a, padded, n);
            prop_assert!(padded <= 2 * n + 2, "axis {} of {} padded to {}", a, n, padded);
            prop_assert_eq!(grid.bases()[a].iter().product::<usize>(), padded);
            prop_assert_eq!(auto_bases(n, levels), (padded, grid.bases()[a].clone()));
            let x = (probe as usize) % padded;
            let back: usize = (0..levels).map(|l| grid.digit(a, l, x) * grid.stride(a, l)).sum();
            prop_assert_eq!(back, x);
        }
    }

    /// One epoch of the grid sampler visits every sample exactly once, for any size and grid.
    #[test]
    fn sampler_epochs_visit_every_sample_once(
        shape in prop::collection::vec(1usize..24, 1..4),
        cells in prop::collection::vec(1usize..7, 1..2),
        batch in 1usize..300,
        seed in any::<u64>(),
        epoch in 0usize..5,
    ) {
        let mut s = GridSampler::new(&shape, &cells, batch, seed).unwrap();
        let d = shape.len();
        let mut seen = vec![0u32; shape.iter().product()];
        for k in 0..BatchSource::batches_per_epoch(&s) {
            let idx = s.batch(epoch, k);
            prop_assert_eq!(idx.len() % d, 0);
            for row in idx.chunks(d) {
                let mut flat = 0usize;
                for (a, &x) in row.iter().enumerate() {
                    prop_assert!((x as usize) < shape[a]);
                    flat = flat * shape[a] + x as usize;
                }
                seen[flat] += 1;
            }
        }
        prop_assert!(seen.iter().all(|&c| c == 1), "visits: {:?}", seen);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The deduplicated batch forward (fused and plain) equals the per-sample forward on random
    /// batches with repeated samples, for random bases.
    #[test]
    fn deduplicated_forward_is_the_per_sample_forward(
        bases in prop::collection::vec(prop::collection::vec(1usize..5, 3), 1..3),
        picks in prop::collection::vec(any::<u32>(), 1..120),
        repeats in 0usize..40,
        channels in 1usize..4,
    ) {
        let shape: Vec<usize> = bases.iter().map(|b| b.iter().product()).collect();
        let d = shape.len();
        let mut idx: Vec<u32> = picks
            .iter()
            .flat_map(|&p| {
                let mut rem = p as usize;
                shape.iter().map(move |&n| { let x = rem % n; rem /= n.max(1); x as u32 }).collect::<Vec<_>>()
            })
            .collect();
        let extra: Vec<u32> = idx.iter().copied().take(d * repeats.min(picks.len())).collect();
        idx.extend(extra);
        let ctx = ModelContext::new(net(3, 16, bases.clone()), &shape, channels);
        let store = ParamStore::seeded(9);
        let model = Asmr::new(&ctx, store.var_builder(&Device::Cpu)).unwrap();
        let reference = model.forward_per_sample(&idx).unwrap();
        prop_assert!(max_abs(&reference) > 1e-4);
        for fused in [true, false] {
            let out = model.forward_dedup(&idx, fused).unwrap();
            let diff = max_diff(&out, &reference);
            prop_assert!(diff <= 1e-4, "fused {}: differs by {}", fused, diff);
        }
    }

    /// Layers apply in order — defaults, each `--config` file, each `--set`, each option — so the
    /// last layer that sets a key wins; a configuration read back from its `config.yaml`, or
    /// layered again as a saved run's, is the same configuration.
    #[test]
    fn layers_apply_in_order_and_round_trip(
        layers in prop::collection::vec(prop::collection::vec(prop::option::of(1usize..500), 4), 4),
    ) {
        // Four keys, four layers: file 1, file 2, `--set`, option.
        let keys = ["train.iterations", "net.hidden", "train.seed", "train.batch"];
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for (f, values) in layers[..2].iter().enumerate() {
            let mut tree: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
            for (k, v) in keys.iter().zip(values) {
                if let Some(v) = v {
                    let (section, key) = k.split_once('.').unwrap();
                    tree.entry(section).or_default().insert(key, *v);
                }
            }
            let path = dir.path().join(format!("layer{f}.yaml"));
            std::fs::write(&path, serde_yaml::to_string(&tree).unwrap()).unwrap();
            files.push(path);
        }
        let sets: Vec<String> = keys
            .iter()
            .zip(&layers[2])
            .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
            .collect();
        let options: Vec<(String, OptionKind, String)> = keys
            .iter()
            .zip(&layers[3])
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), OptionKind::Value, v.to_string())))
            .collect();
        let file_refs: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
        let config = assemble(&Layers {
            modality: None,
            base: Base::Defaults,
            files: &file_refs,
            sets: &sets,
            options: &options,
        })
        .unwrap();
        let defaults = assemble(&Layers {
            modality: None,
            base: Base::Defaults,
            files: &[],
            sets: &[],
            options: &[],
        })
        .unwrap();
        let got = |c: &Config| [c.train.iterations, c.net.hidden, c.train.seed as usize, c.train.batch];
        for (k, key) in keys.iter().enumerate() {
            let want = (0..4).rev().find_map(|l| layers[l][k]).unwrap_or(got(&defaults)[k]);
            prop_assert_eq!(got(&config)[k], want, "{}", key);
        }
        let back: Config = serde_yaml::from_str(&config.to_yaml()).unwrap();
        prop_assert_eq!(&back, &config);
        let again = assemble(&Layers {
            modality: None,
            base: Base::Saved(&config),
            files: &[],
            sets: &[],
            options: &[],
        })
        .unwrap();
        prop_assert_eq!(&again, &config);
    }
}
