//! Decoding, encoding, options, metrics and bad input of the video modality, on clips made here
//! with ffmpeg-next's encoders from frames generated in code.

use std::path::{Path, PathBuf};

use asmr_core::config::with_values;
use asmr_core::registry::{find_modality, BandMetrics, BandWriter};
use asmr_core::{Error, Samples, Signal, SignalInfo};
use ffmpeg_next::format::Pixel;
use modality_video::{
    decode, write_clip, DecodeOptions, EncodeSpec, Geometry, Mp4Bands, VideoMetrics, VideoOptions,
    MP4_H264,
};

/// `n` frames of `w x h` RGB: smooth gradients that drift with the frame index, and the frame index
/// written into the first pixel so a lossless decode identifies every frame.
fn frames(n: usize, w: usize, h: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n * w * h * 3);
    for t in 0..n {
        for y in 0..h {
            for x in 0..w {
                let r = (x * 180) / w + (t * 3) % 60;
                let g = (y * 180) / h + (t * 2) % 60;
                let b = ((x + y) * 100) / (w + h) + 60;
                v.extend_from_slice(&[r as u8, g as u8, b as u8]);
            }
        }
        v[t * w * h * 3] = t as u8;
    }
    v
}

fn geometry(w: usize, h: usize, rate: (i32, i32)) -> Geometry {
    Geometry {
        width: w,
        height: h,
        rate,
        pixel_aspect: (1, 1),
    }
}

/// Lossless RGB frames in Matroska: the decode must return exactly what was written.
const PNG_MKV: EncodeSpec<'static> = EncodeSpec {
    container: "matroska",
    codec: "png",
    pixel: Pixel::RGB24,
    options: &[],
};

fn make(dir: &Path, name: &str, spec: &EncodeSpec, n: usize, w: usize, h: usize) -> PathBuf {
    let path = dir.join(name);
    write_clip(&path, spec, geometry(w, h, (25, 1)), &frames(n, w, h)).unwrap();
    path
}

fn psnr_u8(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

fn opts(pairs: &[(&str, &str)]) -> VideoOptions {
    with_values::<VideoOptions>(pairs).unwrap()
}

fn decode_options(pairs: &[(&str, &str)]) -> DecodeOptions {
    DecodeOptions::from_config(&opts(pairs))
}

#[test]
fn lossless_clip_decodes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = make(dir.path(), "a.mkv", &PNG_MKV, 10, 24, 16);
    let clip = decode(&path, &decode_options(&[])).unwrap();
    assert_eq!((clip.frames, clip.width, clip.height), (10, 24, 16));
    assert_eq!(clip.rate, (25, 1));
    assert_eq!(clip.rgb, frames(10, 24, 16));
}

#[test]
fn odd_sizes_decode_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = make(dir.path(), "odd.mkv", &PNG_MKV, 3, 33, 25);
    let clip = decode(&path, &decode_options(&[])).unwrap();
    assert_eq!((clip.frames, clip.width, clip.height), (3, 33, 25));
    assert_eq!(clip.rgb, frames(3, 33, 25));
}

#[test]
fn start_stride_and_frames_pick_the_right_frames() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = (16, 8);
    let path = make(dir.path(), "a.mkv", &PNG_MKV, 20, w, h);
    let frame = w * h * 3;
    let all = frames(20, w, h);
    let index = |clip: &modality_video::Clip| -> Vec<u8> {
        clip.rgb.chunks_exact(frame).map(|f| f[0]).collect()
    };
    // 0.2 s at 25 fps is frame 5; every 3rd frame from there; 4 of them.
    let o = decode_options(&[("start", "0.2"), ("stride", "3"), ("frames", "4")]);
    let clip = decode(&path, &o).unwrap();
    assert_eq!(index(&clip), vec![5, 8, 11, 14]);
    assert_eq!(clip.rate, (25, 3));
    assert_eq!(&clip.rgb[..frame], &all[5 * frame..6 * frame]);
    // The stride alone keeps frames 0, 2, ..., 18.
    let clip = decode(&path, &decode_options(&[("stride", "2")])).unwrap();
    assert_eq!(
        index(&clip),
        (0..20).step_by(2).map(|i| i as u8).collect::<Vec<_>>()
    );
    assert_eq!(clip.rate, (25, 2));
}

#[test]
fn size_scales_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let path = make(dir.path(), "a.mkv", &PNG_MKV, 4, 64, 48);
    let clip = decode(&path, &decode_options(&[("size", "31x17")])).unwrap();
    assert_eq!((clip.frames, clip.width, clip.height), (4, 31, 17));
    assert_eq!(clip.rgb.len(), 4 * 31 * 17 * 3);
    // A smooth gradient survives Lanczos scaling: the mean colour hardly moves.
    let mean = |v: &[u8]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    let src = frames(4, 64, 48);
    assert!((mean(&clip.rgb) - mean(&src)).abs() < 3.0);
}

#[test]
fn codecs_and_containers_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (n, w, h) = (8, 32, 24);
    let src = frames(n, w, h);
    let yuv = |container, codec| EncodeSpec {
        container,
        codec,
        pixel: Pixel::YUV420P,
        options: &[],
    };
    for (name, spec, min_psnr) in [
        ("a.mp4", MP4_H264, 30.0),
        ("a.avi", yuv("avi", "mpeg4"), 20.0),
        ("a.webm", yuv("webm", "libvpx-vp9"), 20.0),
        ("a.ogv", yuv("ogg", "libtheora"), 20.0),
    ] {
        let path = make(dir.path(), name, &spec, n, w, h);
        let clip = decode(&path, &decode_options(&[])).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((clip.frames, clip.width, clip.height), (n, w, h), "{name}");
        assert_eq!(clip.rate, (25, 1), "{name}");
        let p = psnr_u8(&clip.rgb, &src);
        assert!(p > min_psnr, "{name}: PSNR {p:.2} dB");
    }
}

#[test]
fn mp4_writer_writes_every_frame_at_the_clip_rate() {
    let dir = tempfile::tempdir().unwrap();
    let (n, w, h) = (7, 33, 19); // odd: padded to even for yuv420p
    let mut extra = serde_json::Map::new();
    extra.insert("rate".into(), serde_json::json!([30000, 1001]));
    extra.insert("pixel_aspect".into(), serde_json::json!([128, 117]));
    let info = SignalInfo {
        modality: "video".into(),
        shape: vec![n, h, w],
        channels: 3,
        source: "test".into(),
        extra,
    };
    let src = frames(n, w, h);
    let values: Vec<f32> = src.iter().map(|&v| v as f32 / 255.0).collect();
    let path = dir.path().join("out.mp4");
    let mut writer: Box<dyn BandWriter> = Box::new(Mp4Bands::create(&info, &path).unwrap());
    // Bands that split frames must still work.
    for band in values.chunks(1000) {
        writer.write_band(band).unwrap();
    }
    assert!(!path.exists(), "nothing in place before finish");
    writer.finish().unwrap();
    let clip = decode(&path, &decode_options(&[])).unwrap();
    assert_eq!(clip.frames, n);
    assert_eq!(clip.rate, (30000, 1001));
    assert_eq!(clip.pixel_aspect, (128, 117));
    assert_eq!((clip.width, clip.height), (w + 1, h + 1));
    // Cropped back to the source size, the H.264 frames are near lossless.
    let mut cropped = Vec::new();
    for f in clip.rgb.chunks_exact((w + 1) * (h + 1) * 3) {
        for y in 0..h {
            cropped.extend_from_slice(&f[y * (w + 1) * 3..][..w * 3]);
        }
    }
    let p = psnr_u8(&cropped, &src);
    assert!(p > 30.0, "PSNR {p:.2} dB");
}

#[test]
fn unfinished_or_short_writes_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let info = SignalInfo {
        modality: "video".into(),
        shape: vec![4, 8, 8],
        channels: 3,
        source: "test".into(),
        extra: Default::default(),
    };
    let path = dir.path().join("out.mp4");
    let mut w = Mp4Bands::create(&info, &path).unwrap();
    w.write_band(&vec![0.5; 8 * 8 * 3]).unwrap();
    drop(w);
    let mut w: Box<dyn BandWriter> = Box::new(Mp4Bands::create(&info, &path).unwrap());
    w.write_band(&vec![0.5; 2 * 8 * 8 * 3]).unwrap();
    let e = w.finish().unwrap_err();
    assert!(e.to_string().contains("2 of 4 frames"), "{e}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn signal(frames_u8: Vec<u8>, n: usize, h: usize, w: usize) -> Signal {
    Signal::from_samples(
        SignalInfo {
            modality: "video".into(),
            shape: vec![n, h, w],
            channels: 3,
            source: "test".into(),
            extra: Default::default(),
        },
        Samples::U8(frames_u8),
    )
    .unwrap()
}

#[test]
fn per_frame_metrics_mean_and_std() {
    let (n, h, w) = (2, 8, 8);
    let frame = h * w * 3;
    let target = signal(vec![100; n * frame], n, h, w);
    let t = 100.0 / 255.0;
    // Frame 0 off by 0.1 everywhere (20 dB), frame 1 by 0.01 (40 dB).
    let mut pred = vec![t + 0.1; frame];
    pred.extend(vec![t - 0.01; frame]);
    let mut m: Box<dyn BandMetrics> = Box::new(VideoMetrics::new(&target));
    m.add(0..1, &pred[..frame]).unwrap();
    m.add(1..2, &pred[frame..]).unwrap();
    let m = m.finish().unwrap();
    assert!((m["psnr_frame_mean"] - 30.0).abs() < 1e-3, "{m:?}");
    assert!((m["psnr_frame_std"] - 10.0).abs() < 1e-3, "{m:?}");
    let clip = 10.0 * (1.0 / ((0.01 + 0.0001) / 2.0f64)).log10();
    assert!((m["psnr"] - clip).abs() < 1e-3, "{m:?}");
    // A constant offset leaves structure intact: SSIM is the luminance term alone, the same in
    // every window. l = (2 a b + C1) / (a^2 + b^2 + C1).
    let c1 = 0.01f64 * 0.01;
    let l = |a: f64, b: f64| (2.0 * a * b + c1) / (a * a + b * b + c1);
    let t = t as f64;
    let (s0, s1) = (l(t, t + 0.1), l(t, t - 0.01));
    assert!((m["ssim"] - (s0 + s1) / 2.0).abs() < 1e-4, "{m:?}");
    assert!(
        (m["ssim_frame_std"] - (s0 - s1).abs() / 2.0).abs() < 1e-4,
        "{m:?}"
    );
    assert_eq!(m["frames"], 2.0);
}

fn input_error(path: &Path, o: &[(&str, &str)]) -> String {
    match modality_video::load(path, &opts(o)) {
        Err(e @ Error::Input { .. }) => e.to_string(),
        Err(e) => panic!("expected an input error, got {e}"),
        Ok(_) => panic!("{} loaded", path.display()),
    }
}

#[test]
fn bad_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let e = input_error(&d.join("missing.mp4"), &[]);
    assert!(e.contains("no such file"), "{e}");

    let text = d.join("notes.mp4");
    std::fs::write(
        &text,
        "these are not the frames you are looking for\n".repeat(50),
    )
    .unwrap();
    let e = input_error(&text, &[]);
    assert!(
        e.contains("notes.mp4") && e.contains("not a media file"),
        "{e}"
    );

    // An MP4 cut short loses its index (FFmpeg writes it last).
    let good = make(d, "good.mp4", &MP4_H264, 12, 32, 32);
    let bytes = std::fs::read(&good).unwrap();
    let cut = d.join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).unwrap();
    let e = input_error(&cut, &[]);
    assert!(e.contains("cut.mp4"), "{e}");
    // A Matroska clip cut short keeps its header (no frame count, a duration): the missing
    // frames are reported.
    let mkv = make(d, "good.mkv", &PNG_MKV, 12, 32, 32);
    let bytes = std::fs::read(&mkv).unwrap();
    let cut = d.join("cut.mkv");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = input_error(&cut, &[]);
    assert!(e.contains("cut.mkv") && e.contains("truncated"), "{e}");
    // Asking for fewer frames than survive is fine.
    let s = modality_video::load(&cut, &opts(&[("frames", "3")])).unwrap();
    assert_eq!(s.info.shape, vec![3, 32, 32]);

    let e = input_error(&good, &[("start", "100")]);
    assert!(e.contains("no frames at or after 100"), "{e}");

    // A clip too large to fit in memory is refused at its first frame, from what the header
    // promises (12 frames of 32 x 32 RGB: 36,864 bytes); a cut that fits is decoded.
    let mut o = decode_options(&[]);
    o.max_bytes = Some(30_000);
    let e = decode(&good, &o).unwrap_err().to_string();
    assert!(
        e.contains("12 frames of 32x32") && e.contains("--frames"),
        "{e}"
    );
    o.frames = Some(9);
    assert_eq!(decode(&good, &o).unwrap().frames, 9);
    // Without a frame count in the header (Matroska) the running total is checked.
    o.frames = None;
    let e = decode(&mkv, &o).unwrap_err().to_string();
    assert!(e.contains("10 frames of 32x32"), "{e}");

    // A WAV file: audio only.
    let wav = d.join("tone.wav");
    let rate = 8000u32;
    let samples: Vec<i16> = (0..rate)
        .map(|i| ((i as f32 * 0.05).sin() * 10000.0) as i16)
        .collect();
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + samples.len() as u32 * 2).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(samples.len() as u32 * 2).to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(&wav, b).unwrap();
    let e = input_error(&wav, &[]);
    assert!(e.contains("no video stream"), "{e}");
}

#[test]
fn bad_options_name_their_key() {
    for (k, v) in [
        ("start", "-1"),
        ("frames", "0"),
        ("stride", "x"),
        ("size", "640"),
        ("sample_rate", "8000"),
    ] {
        let e = with_values::<VideoOptions>(&[(k, v)]).unwrap_err();
        assert!(
            matches!(&e, Error::Config { key, .. } if *key == format!("data.{k}")),
            "{k}={v}: {e}"
        );
    }
}

#[test]
fn the_modality_is_registered() {
    let m = find_modality("video").unwrap();
    assert_eq!(m.output_file, "reconstruction.mp4");
    let example = (m.example)();
    assert_eq!(example.info.shape.len(), 3);
    assert_eq!(example.info.channels, 3);
    for p in ["video", "paper-video", "video-demo", "video-uvg"] {
        asmr_core::registry::find_preset(p).unwrap();
    }
}

#[test]
fn the_default_takes_the_fast_recipe_and_paper_video_the_papers() {
    let train = |preset: &str| {
        let mut b =
            asmr_core::ConfigBuilder::for_modality(find_modality("video").unwrap()).unwrap();
        b.merge_yaml(
            asmr_core::registry::find_preset(preset).unwrap().yaml,
            preset,
        )
        .unwrap();
        let c = b.build().unwrap();
        (
            c.train.lr,
            c.train.betas,
            c.train.iterations,
            c.net.modulator_scale,
            c.train.lr_horizon,
        )
    };
    let video = train("video");
    assert_eq!(video, (1e-3, [0.9, 0.95], 700, 1.0, 63));
    assert_eq!(train("paper-video"), (1e-4, [0.9, 0.999], 10_000, 1.0, 0));
    // Short budgets keep the full rate; the 700-step default starts at the 3-D recipe's 3e-4.
    let (lr, horizon) = (video.0, video.4);
    assert_eq!(asmr_core::trainer::horizon_scale(horizon, 60), 1.0);
    let at_700 = lr * asmr_core::trainer::horizon_scale(horizon, 700);
    assert!(
        (at_700 - asmr_core::models::asmr::FAST_3D.lr).abs() < 1e-12,
        "{at_700}"
    );
}
