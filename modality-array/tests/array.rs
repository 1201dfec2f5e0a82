//! The `array` modality on arrays written here: every dtype and order read back exactly, channel
//! axes moved and restored, metrics by hand, a whole fit through the shared pipeline, and one
//! clear error for each kind of bad file.

use std::path::{Path, PathBuf};

use asmr_core::candle_core::Device;
use asmr_core::config::{assemble, with_values, Base, Layers, OptionKind};
use asmr_core::registry::{find_modality, find_preset, BandMetrics, BandWriter};
use asmr_core::run::{fit, FitRequest};
use asmr_core::trainer::Silent;
use asmr_core::Error;
use modality_array::{load, load_limited, npy, ArrayMetrics, ArrayOptions, Kind, Layout, NpyBands};
use npyz::WriterBuilder;

/// Values of a smooth field over `shape`, C order.
fn field(shape: &[usize]) -> Vec<f64> {
    let n: usize = shape.iter().product();
    (0..n)
        .map(|i| {
            let mut rem = i;
            let mut s = 0.0;
            for (a, &len) in shape.iter().enumerate().rev() {
                let x = (rem % len) as f64;
                rem /= len;
                s += ((a + 1) as f64 * 0.37 * x).sin();
            }
            2.5 * s - 1.0
        })
        .collect()
}

fn save(dir: &Path, name: &str, shape: &[usize], dtype: &str, values: &[f64]) -> PathBuf {
    let p = dir.join(name);
    let f = std::fs::File::create(&p).unwrap();
    npy::write(f, shape, dtype, values).unwrap();
    p
}

fn opts(pairs: &[(&str, &str)]) -> ArrayOptions {
    with_values::<ArrayOptions>(pairs).unwrap()
}

/// Write a signal's own training values back through the writer: the array as the dtype stores it.
fn write_back(signal: &asmr_core::Signal, path: &Path) {
    let mut w = Box::new(NpyBands::create(&signal.info, path).unwrap());
    let values = signal.data.values();
    let half = values.len() / 2 / signal.info.channels * signal.info.channels;
    w.write_band(&values[..half]).unwrap();
    w.write_band(&values[half..]).unwrap();
    w.finish().unwrap();
}

#[test]
fn every_dtype_round_trips_with_its_shape() {
    let dir = tempfile::tempdir().unwrap();
    for (shape, dtype) in [
        (vec![7, 9], "<f8"),
        (vec![5, 6, 4], "<f4"),
        (vec![3, 4, 5, 2], "<f4"),
        (vec![11], ">f8"),
        (vec![6, 8], "<i2"),
        (vec![6, 8], "|u1"),
        (vec![4, 5], ">i4"),
    ] {
        let kind = Kind::of(&dtype.parse().unwrap()).unwrap();
        let values: Vec<f64> = field(&shape)
            .iter()
            .map(|&v| {
                if kind.integer() {
                    kind.stored(v * 20.0 + 60.0)
                } else {
                    kind.stored(v)
                }
            })
            .collect();
        let p = save(dir.path(), "a.npy", &shape, dtype, &values);
        let s = load(&p, &opts(&[])).unwrap();
        assert_eq!((s.info.shape.clone(), s.info.channels), (shape.clone(), 1));
        let data = s.data.values();
        assert!(data.iter().all(|v| (0.0..=1.0).contains(v)), "{dtype}");
        let out = dir.path().join("out.npy");
        write_back(&s, &out);
        let back = npy::read(&out, |_| Ok(())).unwrap();
        assert_eq!(
            (back.shape.clone(), back.dtype.as_str()),
            (shape.clone(), dtype)
        );
        let tol = if kind == Kind::F64 { 1e-5 } else { 1e-4 } * 8.0;
        for (a, b) in values.iter().zip(&back.values) {
            if kind.integer() {
                assert_eq!(a, b, "{dtype}");
            } else {
                assert!((a - b).abs() <= tol, "{dtype}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn fortran_order_is_read_in_c_order() {
    let dir = tempfile::tempdir().unwrap();
    let shape = [3usize, 4, 2];
    let c_order = field(&shape);
    // The same array stored first-axis-fastest.
    let mut f_order = vec![0.0; c_order.len()];
    for i in 0..3 {
        for j in 0..4 {
            for k in 0..2 {
                f_order[i + 3 * (j + 4 * k)] = c_order[(i * 4 + j) * 2 + k];
            }
        }
    }
    let p = dir.path().join("f.npy");
    let mut w = npyz::WriteOptions::<f64>::new()
        .default_dtype()
        .shape(&[3, 4, 2])
        .order(npyz::Order::Fortran)
        .writer(std::fs::File::create(&p).unwrap())
        .begin_nd()
        .unwrap();
    for v in &f_order {
        w.push(v).unwrap();
    }
    w.finish().unwrap();
    let a = npy::read(&p, |_| Ok(())).unwrap();
    assert_eq!(a.shape, vec![3, 4, 2]);
    assert_eq!(a.values, c_order);
}

#[test]
fn channel_axis_moves_last_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let shape = [5usize, 3, 4]; // channels on the middle axis
    let values = field(&shape);
    let p = save(dir.path(), "c.npy", &shape, "<f8", &values);
    for (axis, normalize) in [("1", "range"), ("-2", "channel")] {
        let s = load(
            &p,
            &opts(&[("channel_axis", axis), ("normalize", normalize)]),
        )
        .unwrap();
        assert_eq!((s.info.shape.clone(), s.info.channels), (vec![5, 4], 3));
        // Sample (i, k) channel j is the array's [i, j, k].
        let layout = Layout::of(&s.info).unwrap();
        for i in 0..5 {
            for k in 0..4 {
                for j in 0..3 {
                    let v = s.data.get((i * 4 + k) * 3 + j);
                    let x = v as f64 * layout.scale[j] + layout.offset[j];
                    assert!((x - values[(i * 3 + j) * 4 + k]).abs() < 1e-5);
                }
            }
        }
        if normalize == "channel" {
            for j in 0..3 {
                let ch: Vec<f32> = (0..20).map(|q| s.data.get(q * 3 + j)).collect();
                let lo = ch.iter().cloned().fold(f32::INFINITY, f32::min);
                let hi = ch.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                assert!(lo.abs() < 1e-6 && (hi - 1.0).abs() < 1e-6, "{lo} {hi}");
            }
        }
        let out = dir.path().join("back.npy");
        write_back(&s, &out);
        let back = npy::read(&out, |_| Ok(())).unwrap();
        assert_eq!(back.shape, shape.to_vec());
        let diff = back
            .values
            .iter()
            .zip(&values)
            .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff < 1e-5, "{diff}");
    }
}

#[test]
fn metrics_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    // Values 0, 1, 2, 3, 4: range 4; a prediction off by 0.5 everywhere in array units.
    let p = save(dir.path(), "m.npy", &[5], "<f8", &[0.0, 1.0, 2.0, 3.0, 4.0]);
    let s = load(&p, &opts(&[])).unwrap();
    let pred: Vec<f32> = [0.5f32, 1.5, 2.5, 3.5, 3.5]
        .iter()
        .map(|v| v / 4.0)
        .collect();
    let mut m = Box::new(ArrayMetrics::new(&s).unwrap());
    m.add(0..2, &pred[..2]).unwrap();
    m.add(2..5, &pred[2..]).unwrap();
    let m = m.finish().unwrap();
    // Squared errors 0.25 each: MSE 0.25, PSNR 10 log10(16 / 0.25); energy 0+1+4+9+16 = 30.
    assert!(
        (m["psnr"] - 10.0 * (16.0f64 / 0.25).log10()).abs() < 1e-4,
        "{m:?}"
    );
    assert!(
        (m["relative_l2"] - (1.25f64 / 30.0).sqrt()).abs() < 1e-6,
        "{m:?}"
    );
    assert_eq!(m["data_range"], 4.0);
}

#[test]
fn a_fit_writes_the_array_back_with_its_shape_dtype_and_honest_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let shape = [2usize, 10, 12]; // two channels first
    let values: Vec<f64> = field(&shape).iter().map(|&v| v as f32 as f64).collect();
    let p = save(dir.path(), "in.npy", &shape, "<f4", &values);
    let modality = find_modality("array").unwrap();
    let options = [
        (
            "data.channel_axis".to_string(),
            OptionKind::Value,
            "0".to_string(),
        ),
        ("train.iterations".into(), OptionKind::Value, "150".into()),
        ("net.hidden".into(), OptionKind::Value, "32".into()),
    ];
    let config = assemble(&Layers {
        modality: Some(modality),
        base: Base::Preset("array"),
        files: &[],
        sets: &[],
        options: &options,
    })
    .unwrap();
    let signal = asmr_core::run::load_signal(modality, Some(&p), &config.data).unwrap();
    let out = dir.path().join("run");
    let report = fit(FitRequest {
        modality,
        signal,
        config,
        out_dir: out.clone(),
        device: Device::Cpu,
        resume: None,
        preset: None,
        observer: &mut Silent,
    })
    .unwrap();
    let back = npy::read(&out.join("reconstruction.npy"), |_| Ok(())).unwrap();
    assert_eq!(
        (back.shape.clone(), back.dtype.as_str()),
        (shape.to_vec(), "<f4")
    );
    // PSNR over the data range and relative L2 of the file against the input, as numpy would.
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let se: f64 = back
        .values
        .iter()
        .zip(&values)
        .map(|(a, b)| (a - b).powi(2))
        .sum();
    let psnr = 10.0 * ((hi - lo).powi(2) / (se / values.len() as f64)).log10();
    let rel = (se / values.iter().map(|v| v * v).sum::<f64>()).sqrt();
    assert!(
        (report.quality["psnr"] - psnr).abs() < 1e-3,
        "{} vs {psnr}",
        report.quality["psnr"]
    );
    assert!((report.quality["relative_l2"] - rel).abs() < 1e-6);
    assert!(psnr > 30.0, "the fit learned too little: {psnr} dB");
    assert_eq!((report.shape.clone(), report.channels), (vec![10, 12], 2));
}

#[test]
fn bad_arrays_get_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |name: &str, bytes: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let good = save(d, "good.npy", &[6, 6], "<f8", &field(&[6, 6]));
    let bytes = std::fs::read(&good).unwrap();
    /// A minimal v1.0 header with `descr`, `shape` and the data bytes after it.
    fn raw(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut v = b"\x93NUMPY\x01\x00".to_vec();
        v.extend_from_slice(&(h.len() as u16).to_le_bytes());
        v.extend_from_slice(h.as_bytes());
        v.extend_from_slice(data);
        v
    }
    let mut nan = field(&[4, 4]);
    nan[5] = f64::NAN;
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            write("magic.npy", b"PK\x03\x04 not numpy"),
            "not a NumPy .npy file",
        ),
        (write("cut.npy", &bytes[..bytes.len() - 40]), "truncated"),
        (
            write("obj.npy", &raw("|O", "(2,)", &[0u8; 16])),
            "object array",
        ),
        (
            write("cplx.npy", &raw("<c8", "(2, 2)", &[0u8; 32])),
            "complex",
        ),
        (
            write("half.npy", &raw("<f2", "(2, 2)", &[0u8; 8])),
            "16-bit floats",
        ),
        (write("empty.npy", &raw("<f4", "(3, 0)", &[])), "axis 1"),
        (
            write("scalar.npy", &raw("<f4", "()", &[0u8; 4])),
            "0-d array",
        ),
        (save(d, "nan.npy", &[4, 4], "<f8", &nan), "NaN"),
    ];
    for (p, needle) in cases {
        let e = load(&p, &opts(&[]))
            .err()
            .unwrap_or_else(|| panic!("{} loaded", p.display()));
        let text = e.to_string();
        assert!(matches!(e, Error::Input { .. }), "{text}");
        assert!(
            text.contains(needle),
            "{}: `{text}` lacks `{needle}`",
            p.display()
        );
        assert_eq!(text.lines().count(), 1);
    }
    // Too large for the memory limit: refused from the header (6 x 6 f32 = 144 bytes).
    let e = load_limited(&good, &opts(&[]), 100)
        .unwrap_err()
        .to_string();
    assert!(e.contains("a [6, 6] array takes"), "{e}");
    // Bad options name their key.
    for (k, v) in [
        ("channel_axis", "x"),
        ("normalize", "log"),
        ("channels", "2"),
    ] {
        let e = with_values::<ArrayOptions>(&[(k, v)]).unwrap_err();
        assert!(
            matches!(&e, Error::Config { key, .. } if *key == format!("data.{k}")),
            "{k}={v}: {e}"
        );
    }
    for (pairs, key) in [
        (vec![("channel_axis", "2")], "data.channel_axis"),
        (vec![("normalize", "none")], "data.normalize"),
    ] {
        let e = load(&good, &opts(&pairs)).unwrap_err();
        assert!(
            matches!(&e, Error::Config { key: k, .. } if k == key),
            "{pairs:?}: {e}"
        );
    }
}

#[test]
fn the_modality_and_its_presets_are_registered() {
    let m = find_modality("array").unwrap();
    assert_eq!(m.output_file, "reconstruction.npy");
    let flags: Vec<&str> = m.config.options.iter().map(|o| o.flag).collect();
    assert_eq!(flags, ["channel-axis", "normalize"]);
    for p in ["array", "array-demo", "array-volume"] {
        assert_eq!(find_preset(p).unwrap().modality, "array");
    }
    let example = (m.example)();
    assert_eq!(example.info.shape.len(), 3);
    assert!(Layout::of(&example.info).is_ok());
}

/// Inputs the fuzzer (`scripts/fuzz.sh npy`) found, kept: each is refused with one line, without
/// a panic or an allocation beyond the input-size limit.
#[test]
fn fuzz_regressions_are_refused_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let err = load_limited(&path, &opts(&[]), 1 << 26)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&*path.to_string_lossy()), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        if path.to_string_lossy().contains("header-length") {
            // Refused from the declared length, before the parser allocates it.
            assert!(err.contains("its header declares"), "{err}");
        }
        seen += 1;
    }
    assert!(seen >= 1);
}
