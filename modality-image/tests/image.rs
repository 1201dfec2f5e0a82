//! Image loading, writing and metrics.

use std::path::Path;

use asmr_core::metrics::ssim;
use image::{ImageBuffer, Luma, Rgb, Rgba};
use modality_image::{load, metrics, write_png};

fn gray_pair() -> (Vec<f32>, Vec<f32>) {
    let (mut a, mut b) = (vec![], vec![]);
    for i in 0..8 {
        for j in 0..9 {
            a.push(((i * 7 + j * 3) % 11) as f32 / 10.0);
            b.push(((i * 5 + j * 2) % 7) as f32 / 6.0 * 0.5 + ((i * 7 + j * 3) % 11) as f32 / 20.0);
        }
    }
    (a, b)
}

fn rgb_pair() -> (Vec<f32>, Vec<f32>) {
    let (mut a, mut b) = (vec![], vec![]);
    for i in 0..10 {
        for j in 0..12 {
            for c in 0..3 {
                let v = ((i * 3 + j * 5 + c * 2) % 13) as f32 / 12.0;
                a.push(v);
                b.push(((i * 2 + j + c) % 5) as f32 / 4.0 * 0.3 + v * 0.7);
            }
        }
    }
    (a, b)
}

/// Reference values computed independently with scikit-image 0.26.0:
/// `skimage.metrics.structural_similarity(a, b, data_range=1.0)` (gray) and
/// `structural_similarity(a, b, data_range=1.0, channel_axis=-1)` (RGB), on float64 arrays built
/// from the same formulas as `gray_pair` and `rgb_pair`.
#[test]
fn ssim_matches_scikit_image() {
    let (a, b) = gray_pair();
    let got = ssim(&a, &b, 8, 9, 1).unwrap();
    assert!((got - 0.5282183441063204).abs() < 1e-6, "{got}");
    let (a, b) = rgb_pair();
    let got = ssim(&a, &b, 10, 12, 3).unwrap();
    assert!((got - 0.87201444038915).abs() < 1e-6, "{got}");
    assert!((ssim(&a, &a, 10, 12, 3).unwrap() - 1.0).abs() < 1e-12);
}

/// On a 7x7 image there is exactly one window, so SSIM is the closed-form expression of the two
/// images' means, sample variances and sample covariance, computed here directly.
#[test]
fn ssim_single_window_closed_form() {
    let a: Vec<f32> = (0..49).map(|i| ((i * 13) % 17) as f32 / 16.0).collect();
    let b: Vec<f32> = (0..49).map(|i| ((i * 5) % 9) as f32 / 8.0).collect();
    let n = 49.0;
    let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let (ma, mb) = (mean(&a), mean(&b));
    let cov = |u: &[f32], mu: f64, v: &[f32], mv: f64| {
        u.iter()
            .zip(v)
            .map(|(&x, &y)| (x as f64 - mu) * (y as f64 - mv))
            .sum::<f64>()
            / (n - 1.0)
    };
    let (va, vb, vab) = (
        cov(&a, ma, &a, ma),
        cov(&b, mb, &b, mb),
        cov(&a, ma, &b, mb),
    );
    let (c1, c2) = (1e-4, 9e-4);
    let want =
        (2.0 * ma * mb + c1) * (2.0 * vab + c2) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
    let got = ssim(&a, &b, 7, 7, 1).unwrap();
    assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    assert!(ssim(&a[..36], &b[..36], 6, 6, 1).is_err());
}

fn save<P: image::Pixel<Subpixel = S> + image::PixelWithColorType, S: image::Primitive>(
    img: &ImageBuffer<P, Vec<S>>,
    path: &Path,
) where
    [S]: image::EncodableLayout,
{
    img.save(path).unwrap();
}

#[test]
fn loads_gray_rgb_deep_and_alpha() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let g8 = ImageBuffer::from_fn(5, 3, |x, y| Luma([(x * 40 + y) as u8]));
    save(&g8, &p.join("g8.png"));
    let s = load(&p.join("g8.png")).unwrap();
    assert_eq!((s.info.shape.clone(), s.info.channels), (vec![3, 5], 1));
    assert_eq!(s.data.get(1), 40.0 / 255.0); // (y=0, x=1)
    assert_eq!(s.data.get(5), 1.0 / 255.0); // (y=1, x=0)

    let g16 = ImageBuffer::from_fn(4, 4, |x, y| Luma([(x * 10000 + y) as u16]));
    save(&g16, &p.join("g16.png"));
    let s = load(&p.join("g16.png")).unwrap();
    assert_eq!(s.info.extra["bit_depth"], 16);
    assert!((s.data.get(3) - 30000.0 / 65535.0).abs() < 1e-6);
    assert!(matches!(s.data, asmr_core::Samples::U16(_)));

    let rgb = ImageBuffer::from_fn(6, 2, |x, y| Rgb([x as u8 * 10, y as u8 * 20, 255]));
    save(&rgb, &p.join("rgb.png"));
    let s = load(&p.join("rgb.png")).unwrap();
    assert_eq!((s.info.shape.clone(), s.info.channels), (vec![2, 6], 3));
    assert_eq!(
        &*s.data.slice(3 * 7..3 * 8),
        &[10.0 / 255.0, 20.0 / 255.0, 1.0]
    );
    assert!(matches!(s.data, asmr_core::Samples::U8(_)));
    assert!(s.notes.is_empty());

    let rgba = ImageBuffer::from_fn(3, 3, |x, _| Rgba([x as u8, 0, 0, 7]));
    save(&rgba, &p.join("rgba.png"));
    let s = load(&p.join("rgba.png")).unwrap();
    assert_eq!(s.info.channels, 3);
    assert!(s.notes[0].contains("alpha"));

    save(&rgb, &p.join("rgb.jpg"));
    let s = load(&p.join("rgb.jpg")).unwrap();
    assert_eq!((s.info.shape.clone(), s.info.channels), (vec![2, 6], 3));
}

#[test]
fn bad_files_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("notes.txt"), "hello, not an image\n").unwrap();
    std::fs::write(p.join("empty.png"), b"").unwrap();
    let rgb = ImageBuffer::from_fn(64, 64, |x, y| Rgb([x as u8, y as u8, 0]));
    save(&rgb, &p.join("full.png"));
    let bytes = std::fs::read(p.join("full.png")).unwrap();
    std::fs::write(p.join("cut.png"), &bytes[..bytes.len() / 2]).unwrap();
    save(&rgb, &p.join("pic.bmp"));
    // A header claiming 200,000 x 200,000 RGB pixels (120 GB decoded) is refused before decoding.
    let mut huge = bytes.clone();
    huge[16..20].copy_from_slice(&200_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&200_000u32.to_be_bytes());
    let crc = crc32(&huge[12..29]);
    huge[29..33].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(p.join("huge.png"), &huge).unwrap();
    for (name, expect) in [
        ("notes.txt", "not a PNG or JPEG"),
        ("empty.png", ""),
        ("cut.png", "decode"),
        ("pic.bmp", "not supported"),
        (
            "huge.png",
            "a 200000 x 200000 picture decoded takes 120.00 GB",
        ),
    ] {
        let e = load(&p.join(name))
            .err()
            .unwrap_or_else(|| panic!("{name} loaded"))
            .to_string();
        assert!(e.contains(name), "{e}");
        assert!(e.contains(expect), "{name}: {e}");
    }
}

#[test]
fn written_png_reads_back_and_metrics_agree() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = rgb_pair();
    let info = asmr_core::SignalInfo {
        modality: "image".into(),
        shape: vec![10, 12],
        channels: 3,
        source: "test".into(),
        extra: Default::default(),
    };
    let target = asmr_core::Signal::new(info.clone(), a).unwrap();
    let out = dir.path().join("r.png");
    write_png(&info, &b, &out).unwrap();
    let back = load(&out).unwrap();
    for (x, y) in back.data.values().iter().zip(&b) {
        assert!((x - y).abs() <= 0.5 / 255.0 + 1e-6);
    }
    let m = metrics(&target, &b).unwrap();
    let m8 = metrics(&target, &back.data.values()).unwrap();
    assert!((m["psnr"] - m8["psnr"]).abs() < 0.05, "{m:?} {m8:?}");
    assert!((m["ssim"] - 0.87201444038915).abs() < 1e-6);
    // Wrong sizes are refused, nothing written.
    let bad = dir.path().join("bad.png");
    assert!(write_png(&info, &b[..10], &bad).is_err());
    assert!(!bad.exists());
}

#[test]
fn png_written_in_bands_equals_one_piece_and_unfinished_leaves_nothing() {
    use asmr_core::registry::BandWriter;
    use modality_image::PngBands;
    let dir = tempfile::tempdir().unwrap();
    let (_, b) = rgb_pair();
    for depth in [8, 16] {
        let mut extra = serde_json::Map::new();
        extra.insert("bit_depth".into(), depth.into());
        let info = asmr_core::SignalInfo {
            modality: "image".into(),
            shape: vec![10, 12],
            channels: 3,
            source: "test".into(),
            extra,
        };
        let one = dir.path().join("one.png");
        write_png(&info, &b, &one).unwrap();
        let banded = dir.path().join("banded.png");
        let mut w = PngBands::create(&info, &banded).unwrap();
        for rows in b.chunks(3 * 12 * 3) {
            w.write_band(rows).unwrap();
        }
        Box::new(w).finish().unwrap();
        let (x, y) = (load(&one).unwrap(), load(&banded).unwrap());
        assert_eq!(x.data, y.data);
        assert_eq!(y.info.extra["bit_depth"], depth);

        let cut = dir.path().join("cut.png");
        let mut w = PngBands::create(&info, &cut).unwrap();
        w.write_band(&b[..36]).unwrap();
        assert!(Box::new(w).finish().is_err());
        assert!(!cut.exists());
        let dropped = dir.path().join("dropped.png");
        let mut w = PngBands::create(&info, &dropped).unwrap();
        w.write_band(&b[..36]).unwrap();
        drop(w);
        assert!(!dropped.exists());
    }
    // Only the finished files remain, no temporaries.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

/// The PNG chunk checksum (CRC-32, polynomial 0xEDB88320).
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}
