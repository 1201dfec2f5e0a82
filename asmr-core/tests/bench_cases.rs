//! The fused kernels and the plain candle graph agree (outputs within 1e-4) on the configurations
//! of the benchmark suite (`asmr-cli bench --suite`), at their real sizes.

mod common;

use asmr_core::candle_core::Device;
use asmr_core::config::ConfigBuilder;
use asmr_core::models::asmr::Asmr;
use asmr_core::models::ModelContext;
use asmr_core::params::ParamStore;
use common::max_diff;

fn model(shape: &[usize], channels: usize, sets: &[&str]) -> Asmr {
    let mut b = ConfigBuilder::new().unwrap();
    for s in sets {
        b.set_pair(s).unwrap();
    }
    let cfg = b.build().unwrap();
    let ctx = ModelContext::new(cfg.net, shape, channels);
    Asmr::new(&ctx, ParamStore::seeded(42).var_builder(&Device::Cpu)).unwrap()
}

#[test]
fn full_grid_cases() {
    let cases: [(&[usize], usize, &[&str]); 4] = [
        (&[512, 512], 1, &["net.bases=[4,4,4,8]"]),
        (
            &[512, 512],
            1,
            &["net.layers=7", "net.bases=[2,2,2,2,2,2,8]"],
        ),
        (&[512, 768], 3, &["net.bases=[[4,4,4,8],[4,4,6,8]]"]),
        (&[32000], 1, &["net.hidden=128", "net.bases=[10,10,16,20]"]),
    ];
    for (shape, c, sets) in cases {
        let m = model(shape, c, sets);
        let d = max_diff(
            &m.forward_full_grid().unwrap(),
            &m.forward_full_grid_plain().unwrap(),
        );
        assert!(
            d <= 1e-4,
            "{shape:?} {sets:?}: fused and plain differ by {d}"
        );
    }
}

#[test]
fn minibatch_case() {
    // The suite's 2^18 batch, cut to 2^15 samples to keep the plain path's time down.
    let shape = [1512, 2268];
    let m = model(&shape, 3, &["net.layers=6", "net.hidden=512"]);
    let mut rng = asmr_core::rng::Rng::new(3);
    let idx: Vec<u32> = (0..1 << 15)
        .flat_map(|_| [rng.below(shape[0]) as u32, rng.below(shape[1]) as u32])
        .collect();
    let d = max_diff(
        &m.forward_dedup(&idx, true).unwrap(),
        &m.forward_dedup(&idx, false).unwrap(),
    );
    assert!(d <= 1e-4, "fused and plain batch forwards differ by {d}");
}
