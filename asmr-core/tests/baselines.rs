//! The baselines (docs/method.md, "Baselines": FFN, WIRE, KiloNeRF, Instant-NGP, dense grid): shapes for d = 1, 2, 3,
//! batch forwards against the whole-grid forward, parameter gradients against finite differences,
//! fits far above the mean-value predictor, optimiser settings and profiles.

mod common;

use asmr_core::candle_core::{Tensor, Var};
use asmr_core::config::{ConfigBuilder, LrSchedule};
use asmr_core::models::ngp::{levels, spatial_hash};
use asmr_core::models::{all_indices, BuiltModel, ModelContext};
use asmr_core::params::ParamStore;
use asmr_core::run::build_model;
use asmr_core::trainer::Trainer;
use asmr_core::Config;
use common::{max_diff, test_signal};

/// The baselines with a small, quick configuration each (`model`, extra `--set` pairs).
const MODELS: &[(&str, &[&str])] = &[
    ("ffn", &["net.hidden=24", "net.ffn.frequencies=4"]),
    ("wire", &["net.hidden=24"]),
    ("wire", &["net.hidden=24", "net.wire.complex=false"]),
    (
        "kilonerf",
        &["net.kilonerf.tiles=[3]", "net.kilonerf.hidden=8"],
    ),
    (
        "ngp",
        &[
            "net.ngp.levels=4",
            "net.ngp.log2_table=6",
            "net.ngp.min_res=2",
            "net.ngp.hidden=16",
        ],
    ),
    ("grid", &[]),
];

fn config(model: &str, sets: &[&str], iterations: usize) -> Config {
    let mut b = ConfigBuilder::new().unwrap();
    b.set("model", model).unwrap();
    b.set("net.layers", "3").unwrap();
    b.set("train.iterations", &iterations.to_string()).unwrap();
    for s in sets {
        b.set_pair(s).unwrap();
    }
    b.build().unwrap()
}

fn built(model: &str, sets: &[&str], shape: &[usize], c: usize, seed: u64) -> BuiltModel {
    let cfg = config(model, sets, 1);
    let ctx = ModelContext::new(cfg.net.clone(), shape, c);
    BuiltModel::new(model, ctx, ParamStore::seeded(seed), &common::devices()[0]).unwrap()
}

#[test]
fn shapes_and_batches_for_one_to_three_axes() {
    for (model, sets) in MODELS {
        for shape in [vec![37], vec![9, 11], vec![5, 6, 7]] {
            let b = built(model, sets, &shape, 2, 1);
            let n: usize = shape.iter().product();
            let grid = b.model.forward_grid().unwrap();
            assert_eq!(grid.dims(), &[n, 2], "{model} {shape:?}");
            let v: Vec<f32> = grid.flatten_all().unwrap().to_vec1().unwrap();
            assert!(v.iter().all(|x| x.is_finite()), "{model} {shape:?}");
            // Any batch (here every third sample, reversed, with repeats) gives the same rows.
            let d = shape.len();
            let all = all_indices(&shape);
            let picks: Vec<usize> = (0..n).rev().step_by(3).chain([0, 0, n - 1]).collect();
            let idx: Vec<u32> = picks
                .iter()
                .flat_map(|&p| all[p * d..(p + 1) * d].to_vec())
                .collect();
            let rows = asmr_core::candle_core::Tensor::from_vec(
                picks.iter().map(|&p| p as u32).collect::<Vec<_>>(),
                picks.len(),
                grid.device(),
            )
            .unwrap();
            let want = grid.index_select(&rows, 0).unwrap();
            let got = b.model.forward_points(&idx).unwrap();
            assert!(
                max_diff(&got, &want) < 1e-5,
                "{model} {shape:?}: batch differs by {}",
                max_diff(&got, &want)
            );
        }
    }
}

/// `sum(out * r)` for fixed random `r`.
fn loss(b: &BuiltModel, r: &Tensor) -> Tensor {
    (b.model.forward_grid().unwrap() * r)
        .unwrap()
        .sum_all()
        .unwrap()
}

#[test]
fn gradients_match_finite_differences() {
    for (model, sets) in MODELS {
        for shape in [vec![13], vec![6, 5]] {
            let b = built(model, sets, &shape, 2, 7);
            let n: usize = shape.iter().product();
            let r = common::seeded_uniform(n, 2, 5, &b.device);
            let grads = loss(&b, &r).backward().unwrap();
            for (name, var) in b.params.vars() {
                let g: Vec<f32> = grads
                    .get(&var)
                    .unwrap_or_else(|| panic!("{model}: no gradient for {name}"))
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                // The entries with the largest gradients, until three agree. An entry whose
                // step crosses a ReLU kink (left and right slopes differ) says nothing and is
                // skipped; a wrong gradient is not a kink and fails.
                let mut order: Vec<usize> = (0..g.len()).collect();
                order.sort_by(|&i, &j| g[j].abs().total_cmp(&g[i].abs()));
                let mut verified = 0;
                for &i in order.iter().take(12) {
                    let fd = finite_difference(&b, &var, i, &r);
                    let tol = 0.03 * g[i].abs() + 2e-3;
                    if (fd.central - g[i]).abs() <= tol {
                        verified += 1;
                    } else {
                        assert!(
                            (fd.right - fd.left).abs() > tol,
                            "{model} {shape:?} {name}[{i}]: analytic {} vs finite difference {}",
                            g[i],
                            fd.central
                        );
                    }
                    if verified == 3 {
                        break;
                    }
                }
                assert!(
                    verified >= 3.min(g.len()),
                    "{model} {shape:?} {name}: only {verified} entries checked"
                );
            }
        }
    }
}

struct Fd {
    /// Richardson-extrapolated central difference.
    central: f32,
    /// One-sided slopes.
    left: f32,
    right: f32,
}

fn finite_difference(b: &BuiltModel, var: &Var, i: usize, r: &Tensor) -> Fd {
    let h = 1e-3f32;
    let base: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
    let shape = var.as_tensor().shape().clone();
    let at = |delta: f32| -> f64 {
        let mut v = base.clone();
        v[i] += delta;
        var.set(&Tensor::from_vec(v, shape.clone(), &b.device).unwrap())
            .unwrap();
        loss(b, r).to_scalar::<f32>().unwrap() as f64
    };
    // Central differences at h and h/2, Richardson-extrapolated: the Gabor envelope of WIRE is
    // sharp (sigma0 = 20), and this removes the h^2 error term.
    let d1 = (at(h) - at(-h)) / (2.0 * h as f64);
    let d2 = (at(h / 2.0) - at(-h / 2.0)) / h as f64;
    let central = (4.0 * d2 - d1) / 3.0;
    let mid = at(0.0);
    let right = (at(h) - mid) / h as f64;
    let left = (mid - at(-h)) / h as f64;
    var.set(&Tensor::from_vec(base, shape, &b.device).unwrap())
        .unwrap();
    Fd {
        central: central as f32,
        left: left as f32,
        right: right as f32,
    }
}

#[test]
fn every_baseline_fits_far_above_the_mean() {
    let s = test_signal(&[24, 24], 3);
    let values = s.data.values();
    let mean = values.iter().sum::<f32>() / values.len() as f32;
    let mean_psnr = asmr_core::metrics::psnr(&values, &vec![mean; values.len()]);
    for dev in common::devices() {
        for (model, sets) in MODELS {
            let mut sets = sets.to_vec();
            match *model {
                "ffn" | "wire" => sets.push("net.hidden=64"),
                // The paper's 5e-4 needs a thousand steps or more just to move the output bias to the
                // data's mean from Kaiming init; the capacity is what is tested here.
                "kilonerf" => sets.push("train.lr=5e-3"),
                _ => {}
            }
            let cfg = config(model, &sets, 300);
            let b = build_model(&cfg, &s.info, &dev).unwrap();
            let mut t = Trainer::new(&b, &s, &cfg.train).unwrap();
            t.run(&mut asmr_core::trainer::Silent).unwrap();
            eprintln!(
                "{dev:?} {model} {sets:?}: {:.2} dB (mean {mean_psnr:.2} dB)",
                t.best_psnr
            );
            assert!(
                t.best_psnr > mean_psnr + 6.0,
                "{dev:?} {model} {sets:?}: {:.2} dB vs mean {mean_psnr:.2} dB",
                t.best_psnr
            );
        }
    }
}

#[test]
fn optimiser_settings_follow_the_model_unless_given() {
    let c = config("ngp", &[], 10);
    assert_eq!(c.train.lr, 1e-2);
    assert_eq!(c.train.betas, [0.9, 0.99]);
    assert_eq!(c.train.eps, 1e-15);
    assert_eq!(c.train.weight_decay, 1e-6);
    assert_eq!(c.train.lr_schedule, LrSchedule::Step);
    assert_eq!((c.train.lr_step_every, c.train.lr_step_factor), (100, 0.33));
    for (model, lr) in [
        ("asmr", 1e-4),
        ("siren", 1e-4),
        ("ffn", 1e-3),
        ("wire", 1e-3),
        ("kilonerf", 5e-4),
    ] {
        let c = config(model, &[], 10);
        assert_eq!(c.train.lr, lr, "{model}");
        assert!((c.train.lr_min - lr / 10.0).abs() < 1e-15, "{model}");
        assert_eq!(c.train.lr_schedule, LrSchedule::Cosine);
        assert_eq!(c.train.betas, [0.9, 0.999]);
    }
    let c = config("ngp", &["train.lr=0.5", "train.lr_schedule=cosine"], 10);
    assert_eq!((c.train.lr, c.train.lr_min), (0.5, 0.05));
    assert_eq!(c.train.lr_schedule, LrSchedule::Cosine);
    let mut b = ConfigBuilder::new().unwrap();
    b.set("train.betas", "[0.9, 1.5]").unwrap();
    let e = b.build().unwrap_err().to_string();
    assert!(e.contains("train.betas"), "{e}");
}

#[test]
fn ngp_levels_dense_then_hashed() {
    let cfg = config("ngp", &[], 1);
    // The paper's Kodak setting: 8 levels, 2^15 entries, 16 .. 256.
    let mut net = cfg.net.clone();
    net.set("ngp", "levels", 8).unwrap();
    net.set("ngp", "log2_table", 15).unwrap();
    net.set("ngp", "max_res", 256).unwrap();
    let ls = levels(&ModelContext::new(net, &[512, 768], 3)).unwrap();
    let res: Vec<usize> = ls.iter().map(|l| l.resolution).collect();
    assert_eq!(res, vec![16, 23, 35, 52, 78, 115, 172, 256]);
    // floor(16 * 16^(l/7)); (R + 1)^2 <= 2^15 up to R = 172: dense; 257^2 > 32768: hashed.
    let hashed: Vec<bool> = ls.iter().map(|l| l.hashed).collect();
    assert_eq!(
        hashed,
        vec![false, false, false, false, false, false, false, true]
    );
    assert_eq!(ls[0].rows, 17 * 17);
    assert_eq!(ls[7].rows, 1 << 15);
    assert_eq!(ls[1].offset, 17 * 17);
    // The hash by hand: 3 * 1 XOR 5 * 2654435761 (mod 2^32), then mod 2^15.
    let h = (3u64 ^ ((5u64 * 2654435761) % (1 << 32))) % (1 << 15);
    assert_eq!(spatial_hash(&[3, 5], 15) as u64, h);
    let h3 =
        (3u64 ^ ((5u64 * 2654435761) % (1 << 32)) ^ ((7u64 * 805459861) % (1 << 32))) % (1 << 16);
    assert_eq!(spatial_hash(&[3, 5, 7], 16) as u64, h3);
}

#[test]
fn profiles_count_what_they_say() {
    let cfg = config("ffn", &[], 1);
    let ctx = |model: &str, sets: &[&str], shape: &[usize], c: usize| {
        let cfg = config(model, sets, 1);
        let _ = model;
        ModelContext::new(cfg.net, shape, c)
    };
    let _ = cfg;
    // FFN 3 x 256 on 2-D, 10 frequencies: 42 -> 256 -> 256 -> 1.
    let p =
        asmr_core::models::ffn::profile(&ctx("ffn", &["net.hidden=256"], &[64, 64], 1)).unwrap();
    assert_eq!(
        p.macs_per_sample,
        (42 * 256 + 256 + 256 * 256 + 256 + 256 + 1) as f64
    );
    // Dense grid: 4 corners x 3 channels + 4 weight products; params = lattice x channels.
    let p = asmr_core::models::dense_grid::profile(&ctx(
        "grid",
        &["net.grid.resolution=[10]"],
        &[32, 32],
        3,
    ))
    .unwrap();
    assert_eq!((p.params, p.macs_per_sample), (300, 16.0));
    // KiloNeRF: 4 x 4 tiles of 3 layers 8 wide on 2-D with 2 frequencies (10 inputs).
    let p = asmr_core::models::kilonerf::profile(&ctx(
        "kilonerf",
        &[
            "net.kilonerf.tiles=[4]",
            "net.kilonerf.hidden=8",
            "net.kilonerf.layers=3",
            "net.kilonerf.frequencies=2",
        ],
        &[32, 32],
        1,
    ))
    .unwrap();
    let per_tile = 10 * 8 + 8 + 8 * 8 + 8 + 8 + 1;
    assert_eq!(
        (p.params, p.macs_per_sample),
        (16 * per_tile, per_tile as f64)
    );
    // The built models hold exactly the profiled parameters.
    for (model, sets) in MODELS {
        let b = built(model, sets, &[9, 11], 3, 1);
        assert_eq!(
            b.params.num_params(),
            b.profile().unwrap().params,
            "{model} {sets:?}"
        );
    }
}
