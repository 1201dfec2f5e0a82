//! Every MAC figure of the paper (docs/method.md, "Cost"), reproduced by the profiler (relative error <= 1e-9).

mod common;

use asmr_core::config::Bases;
use asmr_core::models::{find_model, ModelContext};
use asmr_core::modulator::ModulatorKind;

fn macs(
    model: &str,
    shape: &[usize],
    channels: usize,
    layers: usize,
    hidden: usize,
    bases: Vec<Vec<usize>>,
    modulator: ModulatorKind,
) -> (f64, usize) {
    let mut n = common::net(layers, hidden, bases);
    n.modulator = modulator;
    if n.bases == Bases::PerAxis(vec![]) {
        n.bases = Bases::Auto;
    }
    let ctx = ModelContext::new(n, shape, channels);
    let p = (find_model(model).unwrap().profile)(&ctx).unwrap();
    (p.macs_per_sample, p.params)
}

fn assert_rel(got: f64, want: f64, what: &str) {
    let rel = ((got - want) / want).abs();
    // The table prints 7 decimals for some entries; compare at the printed precision there.
    let printed = format!("{want}");
    let decimals = printed.split('.').nth(1).map_or(0, str::len);
    let tol = if decimals >= 7 {
        0.5 * 10f64.powi(-(decimals as i32)) / want
    } else {
        1e-9
    };
    assert!(rel <= tol.max(1e-9), "{what}: got {got}, want {want}");
}

fn two(b: &[usize]) -> Vec<Vec<usize>> {
    vec![b.to_vec(), b.to_vec()]
}

#[test]
fn low_mac_images() {
    use ModulatorKind::Linear;
    let cases: [(&[usize], f64); 5] = [
        (&[2, 2, 2, 2, 2, 2, 8], 1631.8359375),
        (&[4, 2, 2, 2, 2, 8], 1627.84375),
        (&[8, 2, 2, 2, 8], 1611.8984375),
        (&[4, 4, 4, 8], 1353.75),
        (&[8, 8, 8], 1289.5),
    ];
    for (b, want) in cases {
        let (m, _) = macs("asmr", &[512, 512], 1, b.len(), 256, two(b), Linear);
        assert_rel(m, want, &format!("ASMR {b:?}"));
    }
    let (m, p) = macs("siren", &[512, 512], 1, 7, 256, vec![], Linear);
    assert_rel(m, 329985.0, "SIREN 7x256");
    assert_eq!(p, 329985);
}

#[test]
fn kodak() {
    let (m, _) = macs(
        "asmr",
        &[512, 768],
        3,
        4,
        256,
        vec![vec![4, 4, 4, 8], vec![4, 4, 6, 8]],
        ModulatorKind::Linear,
    );
    assert_rel(m, 1846.1770833, "ASMR Kodak");
    let (m, _) = macs(
        "siren",
        &[512, 768],
        3,
        4,
        256,
        vec![],
        ModulatorKind::Linear,
    );
    assert_rel(m, 133123.0, "SIREN Kodak");
}

#[test]
fn megapixel() {
    let b = [4, 4, 4, 4, 4, 8];
    let (m, _) = macs(
        "asmr",
        &[8192, 8192],
        3,
        6,
        1024,
        two(&b),
        ModulatorKind::Nonlinear,
    );
    assert_rel(m, 20585.2004395, "megapixel nonlinear");
    let (m, _) = macs(
        "asmr",
        &[8192, 8192],
        3,
        6,
        512,
        two(&b),
        ModulatorKind::Linear,
    );
    assert_rel(m, 5925.0688477, "megapixel linear");
}

#[test]
fn video() {
    let bases = vec![
        vec![5, 1, 1, 5, 1, 1, 3, 1, 1, 2],
        vec![5, 1, 3, 1, 3, 1, 3, 1, 2, 1],
        vec![5, 3, 2, 2, 1, 2, 1, 2, 1, 2],
    ];
    let (m, _) = macs(
        "asmr",
        &[150, 270, 480],
        3,
        10,
        512,
        bases,
        ModulatorKind::Linear,
    );
    assert_rel(m, 119756.4814288, "ASMR video");
    let (m, _) = macs(
        "siren",
        &[150, 270, 480],
        3,
        10,
        512,
        vec![],
        ModulatorKind::Linear,
    );
    assert_rel(m, 2104835.0, "SIREN video");
}

#[test]
fn audio() {
    let (m, _) = macs(
        "asmr",
        &[32000],
        1,
        4,
        128,
        vec![vec![10, 10, 16, 20]],
        ModulatorKind::Linear,
    );
    assert_rel(m, 1013.304, "ASMR audio");
    let (m, _) = macs("siren", &[32000], 1, 4, 128, vec![], ModulatorKind::Linear);
    assert_rel(m, 33409.0, "SIREN audio");
}

#[test]
fn asmr_params_count_backbone_and_modulators() {
    // 4 x 256 on gray 2-D: backbone (2*256+256) + 2*(256*256+256) + (256+1), modulators 3 * 2*256.
    let (_, p) = macs(
        "asmr",
        &[512, 512],
        1,
        4,
        256,
        two(&[4, 4, 4, 8]),
        ModulatorKind::Linear,
    );
    assert_eq!(p, 768 + 2 * 65792 + 257 + 3 * 512);
}
