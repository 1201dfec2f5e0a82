//! Audio decoding, options, WAV output and metrics, on recordings generated in the test.

use std::path::Path;

use asmr_core::config::with_values;
use asmr_core::registry::BandWriter;
use asmr_core::{Signal, SignalInfo};
use modality_audio::{decode, load, AudioOptions, WavBands};

/// Write `frames` x `channels` of a tone (channel k at 300 * (k + 1) Hz) through our WAV writer.
/// Audio options from their defaults with `pairs` set.
fn opts(pairs: &[(&str, &str)]) -> AudioOptions {
    with_values::<AudioOptions>(pairs).unwrap()
}

/// Load with options `pairs`; a bad option is an error like a bad file.
fn load_with(p: &Path, pairs: &[(&str, &str)]) -> asmr_core::Result<Signal> {
    with_values::<AudioOptions>(pairs).and_then(|o| load(p, &o))
}

fn write_tone(path: &Path, rate: u32, frames: usize, channels: usize, float: bool) -> Vec<f32> {
    let mut extra = serde_json::Map::new();
    extra.insert("sample_rate".into(), rate.into());
    extra.insert("float".into(), float.into());
    let info = SignalInfo {
        modality: "audio".into(),
        shape: vec![frames],
        channels,
        source: "test".into(),
        extra,
    };
    let wave: Vec<f32> = (0..frames * channels)
        .map(|i| {
            let (t, k) = ((i / channels) as f32 / rate as f32, i % channels);
            0.5 * (std::f32::consts::TAU * 300.0 * (k + 1) as f32 * t).sin()
        })
        .collect();
    let train: Vec<f32> = wave.iter().map(|x| (x + 1.0) / 2.0).collect();
    let mut w = WavBands::create(&info, path).unwrap();
    for band in train.chunks(1000) {
        w.write_band(band).unwrap();
    }
    Box::new(w).finish().unwrap();
    wave
}

#[test]
fn a_span_resampled_equals_the_same_span_of_the_whole_file_resampled() {
    // Decoding stops soon after the span; the samples are those of resampling everything.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("long.wav");
    write_tone(&p, 8000, 80_000, 2, true);
    for rate in ["8000", "3000", "11025"] {
        let whole = load(&p, &opts(&[("sample_rate", rate), ("channels", "keep")])).unwrap();
        let pairs = [
            ("sample_rate", rate),
            ("channels", "keep"),
            ("offset", "1.25"),
            ("seconds", "0.5"),
        ];
        let part = load(&p, &opts(&pairs)).unwrap();
        let r: usize = rate.parse().unwrap();
        let (start, len) = (
            (1.25 * r as f64).round() as usize,
            (0.5 * r as f64).round() as usize,
        );
        assert_eq!(part.info.shape, vec![len], "{rate}");
        for i in 0..len * 2 {
            assert_eq!(
                part.data.get(i),
                whole.data.get(start * 2 + i),
                "{rate} at {i}"
            );
        }
    }
}

#[test]
fn wav_round_trip_pcm16_and_float() {
    let dir = tempfile::tempdir().unwrap();
    for float in [false, true] {
        let p = dir.path().join(format!("tone-{float}.wav"));
        let wave = write_tone(&p, 8000, 4000, 2, float);
        let d = decode(&p).unwrap();
        assert_eq!((d.sample_rate, d.channels, d.frames()), (8000, 2, 4000));
        let tol = if float { 1e-7 } else { 1.0 / 32767.0 };
        for (a, b) in d.samples.iter().zip(&wave) {
            assert!((a - b).abs() <= tol, "{a} vs {b}");
        }
    }
}

#[test]
fn offset_seconds_and_channels() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("st.wav");
    let wave = write_tone(&p, 1000, 3000, 2, true);
    let s = load(&p, &opts(&[])).unwrap();
    assert_eq!((s.info.shape.clone(), s.info.channels), (vec![3000], 1));
    let s = load(
        &p,
        &opts(&[("offset", "1"), ("seconds", "0.5"), ("channels", "keep")]),
    )
    .unwrap();
    assert_eq!((s.info.shape.clone(), s.info.channels), (vec![500], 2));
    // Frames 1000.. of both channels, in the training range.
    for i in 0..1000 {
        assert!((s.data.get(i) - (wave[2000 + i] + 1.0) / 2.0).abs() < 1e-6);
    }
    assert_eq!(s.info.extra["sample_rate"], 1000);
    for (pairs, needle) in [
        (vec![("offset", "5")], "past the end"),
        (vec![("channels", "both")], "data.channels"),
        (vec![("seconds", "-1")], "data.seconds"),
        (vec![("speed", "2")], "data.speed"),
        (vec![("sample_rate", "0")], "data.sample_rate"),
        (vec![("sample_rate", "3000000000")], "data.sample_rate"),
        (vec![("seconds", "1e300"), ("offset", "1")], ""),
    ] {
        if needle.is_empty() {
            // An absurd span is clamped to the file, never an overflow.
            assert_eq!(load(&p, &opts(&pairs)).unwrap().info.shape, vec![2000]);
            continue;
        }
        let e = load_with(&p, &pairs).err().unwrap().to_string();
        assert!(e.contains(needle), "{pairs:?}: {e}");
    }
}

#[test]
fn bad_files_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("notes.txt"), "just text, not audio\n".repeat(20)).unwrap();
    std::fs::write(d.join("empty.wav"), b"").unwrap();
    write_tone(&d.join("full.wav"), 8000, 4000, 1, false);
    let bytes = std::fs::read(d.join("full.wav")).unwrap();
    std::fs::write(d.join("header-only.wav"), &bytes[..44]).unwrap();
    std::fs::write(d.join("cut.wav"), &bytes[..20]).unwrap();
    for name in ["notes.txt", "empty.wav", "header-only.wav", "cut.wav"] {
        let e = load(&d.join(name), &opts(&[])).err();
        let e = e.unwrap_or_else(|| panic!("{name} loaded")).to_string();
        assert!(e.contains(name), "{e}");
    }
    // A file cut short is named as truncated, with what it declares and what it holds...
    write_tone(&d.join("long.wav"), 8000, 40000, 1, false);
    let bytes = std::fs::read(d.join("long.wav")).unwrap();
    std::fs::write(d.join("half.wav"), &bytes[..44 + 40000]).unwrap();
    let e = load(&d.join("half.wav"), &opts(&[]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("half.wav") && e.contains("truncated"), "{e}");
    assert!(e.contains("5.000 s") && e.contains("2.500 s"), "{e}");
    // ...also when the span asked for runs past the cut...
    assert!(load(&d.join("half.wav"), &opts(&[("seconds", "3")])).is_err());
    // ...but a span inside what it holds loads (decoding stops before the cut)...
    let s = load(&d.join("half.wav"), &opts(&[("seconds", "2")])).unwrap();
    assert_eq!(s.info.shape, vec![16000]);
    // ...and one ending just before the cut, where the file's end is reached, loads with a note.
    let s = load(&d.join("half.wav"), &opts(&[("seconds", "2.5")])).unwrap();
    assert_eq!(s.info.shape, vec![20000]);
    assert!(
        s.notes.iter().any(|n| n.contains("truncated")),
        "{:?}",
        s.notes
    );
    // A whole file carries no note.
    let s = load(&d.join("long.wav"), &opts(&[])).unwrap();
    assert!(s.notes.is_empty(), "{:?}", s.notes);
}

#[test]
fn metrics_psnr_range_two_and_snr() {
    let info = SignalInfo {
        modality: "audio".into(),
        shape: vec![4],
        channels: 1,
        source: "t".into(),
        extra: Default::default(),
    };
    // Waveform [0.5, -0.5, 0.5, -0.5]; prediction off by 0.1 everywhere.
    let target = Signal::new(info, vec![0.75, 0.25, 0.75, 0.25]).unwrap();
    let pred = [0.8f32, 0.3, 0.8, 0.3];
    let modality = asmr_core::registry::find_modality("audio").unwrap();
    let mut m = (modality.metrics)(&target).unwrap();
    m.add(0..4, &pred).unwrap();
    let m = m.finish().unwrap();
    // MSE 0.01 on [-1, 1], range 2: 10 log10(4 / 0.01) = 26.02; SNR 10 log10(0.25 / 0.01) = 13.98.
    assert!((m["psnr"] - 26.0206).abs() < 1e-3, "{m:?}");
    assert!((m["snr"] - 13.9794).abs() < 1e-3, "{m:?}");
}

/// Amplitude of the 440 Hz component and the SNR of the rest, by least squares on sin and cos.
fn tone_fit(x: &[f32], rate: u32) -> (f64, f64) {
    let w = std::f64::consts::TAU * 440.0 / rate as f64;
    let (mut a, mut b) = (0.0, 0.0);
    for (i, &v) in x.iter().enumerate() {
        a += v as f64 * (w * i as f64).sin();
        b += v as f64 * (w * i as f64).cos();
    }
    let n = x.len() as f64;
    let (a, b) = (2.0 * a / n, 2.0 * b / n);
    let (mut sig, mut res) = (0.0, 0.0);
    for (i, &v) in x.iter().enumerate() {
        let fit = a * (w * i as f64).sin() + b * (w * i as f64).cos();
        sig += fit * fit;
        res += (v as f64 - fit).powi(2);
    }
    ((a * a + b * b).sqrt(), 10.0 * (sig / res).log10())
}

/// One fixture per container and codec claimed (see fixtures/README.md for how they were made).
#[test]
fn decodes_every_container_claimed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let (reference, _) = tone_fit(&decode(&dir.join("tone-s32.wav")).unwrap().samples, 16_000);
    assert!(reference > 0.01, "{reference}");
    for (name, min_snr) in [
        ("tone-u8.wav", 20.0),
        ("tone-s24.wav", 60.0),
        ("tone-s32.wav", 60.0),
        ("tone.flac", 60.0),
        ("tone.mp3", 0.0),
        ("tone.ogg", 0.0),
        ("tone.m4a", 0.0),
    ] {
        let d = decode(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((d.sample_rate, d.channels), (16_000, 1), "{name}");
        // Lossy codecs add priming and padding; the length stays near 0.25 s.
        assert!(
            (3500..=5200).contains(&d.frames()),
            "{name}: {} frames",
            d.frames()
        );
        let (amp, snr) = tone_fit(&d.samples, 16_000);
        let lossy = name.ends_with("m4a") || name.ends_with("mp3") || name.ends_with("ogg");
        if lossy {
            // Priming silence and padding dilute the fitted amplitude somewhat.
            assert!(
                (amp - reference).abs() < 0.3 * reference,
                "{name}: amplitude {amp}"
            );
        } else {
            assert!(
                (amp - reference).abs() < 0.01 * reference,
                "{name}: amplitude {amp}"
            );
            assert!(snr > min_snr, "{name}: SNR {snr}");
        }
    }
}

#[test]
fn an_unsupported_codec_is_named() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tone-opus.ogg");
    let e = load(&p, &opts(&[])).err().unwrap().to_string();
    assert!(
        e.contains("tone-opus.ogg") && e.contains("unsupported"),
        "{e}"
    );
}
