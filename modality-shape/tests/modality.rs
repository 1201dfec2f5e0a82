//! The `shape` modality: loading meshes as fields, options, the OBJ writer, metrics, bad input.

use asmr_core::config::with_values;
use asmr_core::registry::{find_modality, find_preset, BandMetrics, BandWriter};
use asmr_core::{ConfigBuilder, Error};
use modality_shape::mesh::{load_obj, Mesh};
use modality_shape::shapes::sphere;
use modality_shape::{load, FieldOptions};

fn opts(pairs: &[(&str, &str)]) -> FieldOptions {
    with_values::<FieldOptions>(pairs).unwrap()
}

/// A sphere of radius 2 around (10, 0, -3), in its own units, written as OBJ.
fn sphere_file(dir: &std::path::Path) -> (std::path::PathBuf, Mesh) {
    let m = sphere([10.0, 0.0, -3.0], 2.0, 48, 64);
    let p = dir.join("ball.obj");
    std::fs::write(&p, m.to_obj("test sphere")).unwrap();
    (p, m)
}

#[test]
fn a_mesh_becomes_a_field_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mesh) = sphere_file(dir.path());
    let r = 24;
    let s = load(&path, &opts(&[("resolution", "24")])).unwrap();
    assert_eq!(s.info.shape, vec![r, r, r]);
    assert_eq!(s.info.channels, 1);
    let values = s.data.values().to_vec();
    assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
    // The centre voxel is deep inside (1), a corner far outside (0).
    let c = (r / 2 * r + r / 2) * r + r / 2;
    assert_eq!(values[c], 1.0);
    assert_eq!(values[0], 0.0);
    // Metrics of the target against itself, in the mesh's units.
    let modality = find_modality("shape").unwrap();
    let mut m: Box<dyn BandMetrics> = (modality.metrics)(&s).unwrap();
    m.add(0..r / 2, &values[..r * r * r / 2]).unwrap();
    m.add(r / 2..r, &values[r * r * r / 2..]).unwrap();
    let m = m.finish().unwrap();
    assert_eq!(m["iou"], 1.0);
    assert!(m["psnr"].is_infinite());
    // The surface of the exact field is within a small part of a voxel (2 units * 4 / 2.0 / 24).
    let voxel = 2.0 * 2.0 / (2.0 * (1.0 - modality_shape::MARGIN)) / r as f64;
    assert!(m["chamfer_l1"] < 0.1 * voxel, "{m:?}");
    assert!(m["normal_consistency"] > 0.98, "{m:?}");
    // The OBJ writer puts the surface back in the mesh's own frame.
    let out = dir.path().join("surface.obj");
    let mut w: Box<dyn BandWriter> = (modality.writer)(&s.info, &out).unwrap();
    for band in values.chunks(1000) {
        w.write_band(band).unwrap();
    }
    assert!(!out.exists());
    w.finish().unwrap();
    let back = load_obj(&out).unwrap();
    let (lo, hi) = back.bounds();
    let (mlo, mhi) = mesh.bounds();
    for a in 0..3 {
        assert!((lo[a] - mlo[a]).abs() < 1.5 * voxel, "{lo:?} vs {mlo:?}");
        assert!((hi[a] - mhi[a]).abs() < 1.5 * voxel, "{hi:?} vs {mhi:?}");
    }
}

#[test]
fn occupancy_target_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = sphere_file(dir.path());
    let s = load(
        &path,
        &opts(&[("resolution", "16"), ("target", "occupancy")]),
    )
    .unwrap();
    assert!(s.data.values().iter().all(|&v| v == 0.0 || v == 1.0));
    for (k, v) in [
        ("resolution", "4"),
        ("resolution", "x"),
        ("target", "volume"),
        ("frames", "3"),
    ] {
        let e = with_values::<FieldOptions>(&[(k, v)]).unwrap_err();
        assert!(
            matches!(&e, Error::Config { key, .. } if *key == format!("data.{k}")),
            "{k}={v}: {e}"
        );
    }
}

#[test]
fn bad_meshes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    for (name, text) in [
        ("binary.obj", &[0u8, 159, 146, 150, 255, 0, 1][..]),
        ("faceless.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\n"),
        ("inf.obj", b"v 0 0 inf\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"),
        ("dangling.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n"),
    ] {
        let p = write(name, text);
        match load(&p, &opts(&[("resolution", "8")])) {
            Err(e @ Error::Input { .. }) => assert!(e.to_string().contains(name), "{e}"),
            Err(e) => panic!("{name}: expected an input error, got {e}"),
            Ok(_) => panic!("{name} loaded"),
        }
    }
}

#[test]
fn registered_with_presets_and_an_example() {
    let m = find_modality("shape").unwrap();
    assert_eq!(m.output_file, "reconstruction.obj");
    let e = (m.example)();
    let r = modality_shape::EXAMPLE_RESOLUTION;
    assert_eq!(e.info.shape, vec![r, r, r]);
    for p in ["shape", "paper-shape", "shape-demo"] {
        find_preset(p).unwrap();
    }
}

#[test]
fn the_fast_recipe_for_shapes_is_the_modalitys_own() {
    let optim = |preset: &str, model: &str| {
        let mut b = ConfigBuilder::for_modality(find_modality("shape").unwrap()).unwrap();
        b.merge_yaml(find_preset(preset).unwrap().yaml, preset)
            .unwrap()
            .set_pair(&format!("model={model}"))
            .unwrap();
        let t = b.build().unwrap().train;
        (t.lr, t.betas, t.lr_scale.len(), t.lr_horizon, t.ema)
    };
    // ASMR on shapes: the shapes' settings, not the photos' (lr 1e-3, layer factors, horizon),
    // with the weight average.
    assert_eq!(optim("shape", "asmr"), (3e-4, [0.9, 0.95], 0, 0, 0.9));
    assert_eq!(
        optim("paper-shape", "asmr"),
        (1e-4, [0.9, 0.999], 0, 0, 0.0)
    );
    // Another model under the same preset keeps its own settings.
    assert_eq!(optim("shape", "siren"), optim("paper-shape", "siren"));
    // Without a modality, `fast` is the model's own recipe.
    let mut b = ConfigBuilder::new().unwrap();
    b.set_pair("train.recipe=fast").unwrap();
    let t = b.build().unwrap().train;
    assert_eq!((t.lr, t.lr_horizon), (1e-3, 700));
}

#[test]
fn surface_strategy_draws_half_its_batch_from_the_shell() {
    use asmr_core::sampler::BatchSource;
    use modality_shape::sampling::SurfaceSampler;
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = sphere_file(dir.path());
    for target in ["sdf", "occupancy"] {
        let r = 32;
        let s = load(&path, &opts(&[("resolution", "32"), ("target", target)])).unwrap();
        let values = s.data.values().to_vec();
        let mut sampler = SurfaceSampler::new(&s, 1000, 7).unwrap();
        // The shell is a thin part of the grid, around the level set.
        let shell = sampler.shell_len();
        assert!(shell > 100 && shell < r * r * r / 2, "{target}: {shell}");
        assert_eq!(sampler.batches_per_epoch(), (r * r * r).div_ceil(1000));
        let a = sampler.batch(3, 5);
        assert_eq!(
            a,
            sampler.batch(3, 5),
            "a batch is a function of (epoch, k)"
        );
        assert_ne!(a, sampler.batch(3, 6));
        assert_eq!(a.len(), 1000 * 3);
        assert!(a.iter().all(|&i| (i as usize) < r));
        // Half the samples are near the surface: the field there is close to the level (sdf)
        // or a neighbour differs (occupancy); far fewer of the uniform half are.
        let near = a
            .chunks_exact(3)
            .filter(|p| {
                let at = |x: usize, y: usize, z: usize| values[(x * r + y) * r + z];
                let (x, y, z) = (p[0] as usize, p[1] as usize, p[2] as usize);
                let v = at(x, y, z);
                if target == "sdf" {
                    (v - 0.5).abs() <= 0.125 + 1e-6
                } else {
                    [(1i64, 0i64, 0i64), (0, 1, 0), (0, 0, 1)]
                        .iter()
                        .any(|&(dx, dy, dz)| {
                            [-1i64, 1].iter().any(|&s| {
                                let (u, w, q) =
                                    (x as i64 + s * dx, y as i64 + s * dy, z as i64 + s * dz);
                                (0..r as i64).contains(&u)
                                    && (0..r as i64).contains(&w)
                                    && (0..r as i64).contains(&q)
                                    && (at(u as usize, w as usize, q as usize) > 0.5) != (v > 0.5)
                            })
                        })
                }
            })
            .count();
        // Half from the shell, and the uniform half hits it in proportion to its size.
        let expected = 500.0 + 500.0 * shell as f64 / (r * r * r) as f64;
        assert!(
            (near as f64 - expected).abs() < 60.0,
            "{target}: {near} of 1000 near the surface, {expected:.0} expected"
        );
    }
}

#[test]
fn strategies_are_checked_with_the_config() {
    use asmr_core::config::{assemble, Base, Layers};
    let shape = find_modality("shape").unwrap();
    let build = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        assemble(&Layers {
            modality: Some(shape),
            base: Base::Preset("shape-grid"),
            files: &[],
            sets: &sets,
            options: &[],
        })
    };
    build(&["train.strategy=surface", "train.batch=4096"]).unwrap();
    build(&["train.strategy=grid"]).unwrap();
    let e = build(&["train.strategy=surface"]).unwrap_err().to_string();
    assert!(e.contains("train.batch"), "{e}");
    let e = build(&["train.strategy=edges", "train.batch=64"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("train.strategy") && e.contains("surface"), "{e}");
}
