//! The command line end to end: fit, render, profile, list, info, and bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use image::{ImageBuffer, Luma, Rgb};

fn cli(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_asmr-cli"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run asmr-cli")
}

fn ok(args: &[&str], cwd: &Path) -> String {
    let o = cli(args, cwd);
    assert!(
        o.status.success(),
        "{args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Fails with one line on stderr naming `needle`.
fn fails(args: &[&str], cwd: &Path, needle: &str) {
    let o = cli(args, cwd);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{args:?} succeeded");
    assert!(err.contains(needle), "{args:?}: `{err}` lacks `{needle}`");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: not one line: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// `RUN/metrics.json` of a run folder under `dir`.
fn read_metrics(dir: &Path, run: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join(run).join("metrics.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn small_photo(dir: &Path) -> PathBuf {
    let img = ImageBuffer::from_fn(20, 14, |x, y| {
        Rgb([
            (x * 12) as u8,
            (y * 17) as u8,
            (((x as f32 * 0.7).sin() * 0.5 + 0.5) * 255.0) as u8,
        ])
    });
    let p = dir.join("photo.png");
    img.save(&p).unwrap();
    p
}

const SMALL: [&str; 6] = [
    "--set",
    "net.hidden=16",
    "--set",
    "train.lr=1e-3",
    "--iterations",
    "25",
];

/// Fit the small photo into `run/` with the small settings; returns the folder, photo and stdout.
fn fit_small_photo() -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let photo = small_photo(dir.path());
    let mut args = vec![
        "fit",
        "image",
        photo.to_str().unwrap(),
        "--out",
        "run",
        "-q",
    ];
    args.extend(SMALL);
    let stdout = ok(&args, dir.path());
    (dir, photo, stdout)
}

#[test]
fn fit_writes_a_complete_run_folder_and_render_reproduces_it() {
    let (dir, photo, stdout) = fit_small_photo();
    assert!(stdout.contains("bases per axis"), "{stdout}");
    let run = dir.path().join("run");
    for f in [
        "model.safetensors",
        "state.safetensors",
        "config.yaml",
        "metrics.json",
        "log.csv",
        "reconstruction.png",
        "psnr.png",
        "summary.png",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    // No temporary files left behind.
    assert_eq!(std::fs::read_dir(&run).unwrap().count(), 8);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    for k in [
        "psnr",
        "ssim",
        "best_step",
        "steps",
        "params",
        "macs_per_sample",
        "model_bytes",
        "bits_per_sample",
        "wall_seconds",
        "steps_per_second",
        "reconstruction",
    ] {
        assert!(m.get(k).is_some(), "metrics.json lacks {k}");
    }
    assert_eq!(m["steps"], 25);
    assert_eq!(m["model_bytes"], m["params"].as_u64().unwrap() * 4);
    // 14 and 20 get automatic 4-level bases (padded where needed).
    assert_eq!(m["bases"].as_array().unwrap().len(), 2);
    let log = std::fs::read_to_string(run.join("log.csv")).unwrap();
    assert_eq!(log.lines().count(), 26);
    assert!(log.starts_with("step,loss,psnr,lr,elapsed_seconds"));
    // The default recipe's weight average is scored after the last step (the last column), and
    // where it won, the result is that step's average.
    let average =
        |log: &str| -> Option<f64> { log.lines().last()?.rsplit(',').next()?.parse().ok() };
    assert!(log.lines().next().unwrap().ends_with(",average_psnr"));
    assert!(average(&log).is_some_and(f64::is_finite), "{log}");
    assert!(log.lines().nth(24).unwrap().ends_with(','));
    if m.get("best_is_average") == Some(&serde_json::Value::Bool(true)) {
        assert_eq!(m["best_step"], 25);
    }

    // The PSNR of the written 8-bit PNG matches metrics.json within 8-bit rounding.
    let target = modality_psnr_input(&photo);
    let recon = modality_psnr_input(&run.join("reconstruction.png"));
    let mse: f64 = target
        .iter()
        .zip(&recon)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        / target.len() as f64;
    let psnr_png = 10.0 * (1.0 / mse).log10();
    let psnr = m["psnr"].as_f64().unwrap();
    assert!((psnr - psnr_png).abs() < 0.05, "{psnr} vs {psnr_png}");

    // render from the checkpoint alone gives the same PNG, byte for byte.
    ok(
        &["render", "run/model.safetensors", "--out", "again.png"],
        dir.path(),
    );
    assert_eq!(
        std::fs::read(dir.path().join("again.png")).unwrap(),
        std::fs::read(run.join("reconstruction.png")).unwrap()
    );
    // A name promising another format is refused before anything is written (PNG, any case, is fine).
    for out in ["again.wav", "again.jpg", "again"] {
        fails(
            &["render", "run/model.safetensors", "--out", out],
            dir.path(),
            "image checkpoints render to .png files",
        );
        assert!(!dir.path().join(out).exists());
    }
    ok(
        &["render", "run/model.safetensors", "--out", "UPPER.PNG"],
        dir.path(),
    );
    let info = ok(&["info", "run/model.safetensors"], dir.path());
    assert!(info.contains("asmr") && info.contains("[14, 20]"), "{info}");

    // Resume to more steps in the same folder.
    let mut args = vec!["fit", "image", photo.to_str().unwrap(), "--resume"];
    args.extend(["run/state.safetensors", "-q", "--iterations", "30"]);
    ok(&args, dir.path());
    let log = std::fs::read_to_string(run.join("log.csv")).unwrap();
    assert_eq!(log.lines().count(), 31);
    assert!(average(&log).is_some(), "{log}");

    // A new fit into that folder is refused, leaving it as it was, unless asked to replace it.
    let before = std::fs::read(run.join("model.safetensors")).unwrap();
    let mut args = vec![
        "fit",
        "image",
        photo.to_str().unwrap(),
        "--out",
        "run",
        "-q",
    ];
    args.extend(["--iterations", "3"]);
    fails(&args, dir.path(), "holds a finished run");
    assert_eq!(
        std::fs::read(run.join("model.safetensors")).unwrap(),
        before
    );
    args.push("--overwrite");
    ok(&args, dir.path());
    let log = std::fs::read_to_string(run.join("log.csv")).unwrap();
    assert_eq!(log.lines().count(), 4);
}

fn modality_psnr_input(p: &Path) -> Vec<f64> {
    image::open(p)
        .unwrap()
        .to_rgb8()
        .into_raw()
        .into_iter()
        .map(|v| v as f64 / 255.0)
        .collect()
}

#[test]
fn siren_fits_too() {
    let dir = tempfile::tempdir().unwrap();
    let img = ImageBuffer::from_fn(9, 11, |x, y| Luma([(x * 20 + y * 3) as u8]));
    img.save(dir.path().join("g.png")).unwrap();
    let mut args = vec![
        "fit", "image", "g.png", "--model", "siren", "--out", "s", "-q",
    ];
    args.extend(SMALL);
    ok(&args, dir.path());
    let m: serde_json::Value = read_metrics(dir.path(), "s");
    assert_eq!(m["model"], "siren");
    assert_eq!(m["channels"], 1);
}

#[test]
fn profile_reproduces_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(
        &[
            "profile",
            "--model",
            "asmr",
            "--shape",
            "512,512",
            "--channels",
            "1",
            "--layers",
            "7",
            "--hidden",
            "256",
            "--bases",
            "2,2,2,2,2,2,8",
            "--json",
        ],
        dir.path(),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["macs_per_sample"].as_f64().unwrap(), 1631.8359375);
    let out = ok(
        &[
            "profile",
            "--model",
            "asmr",
            "--shape",
            "512,768",
            "--channels",
            "3",
            "--bases",
            "4,4,4,8",
            "--bases",
            "4,4,6,8",
            "--json",
        ],
        dir.path(),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!((v["macs_per_sample"].as_f64().unwrap() - 1846.1770833).abs() < 1e-6);
    let out = ok(
        &[
            "profile",
            "--model",
            "asmr",
            "--shape",
            "8192,8192",
            "--channels",
            "3",
            "--layers",
            "6",
            "--hidden",
            "1024",
            "--bases",
            "4,4,4,4,4,8",
            "--modulator",
            "nonlinear",
            "--json",
        ],
        dir.path(),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!((v["macs_per_sample"].as_f64().unwrap() - 20585.2004395).abs() < 1e-6);
    let out = ok(
        &[
            "profile", "--model", "siren", "--shape", "512,512", "--layers", "7", "--json",
        ],
        dir.path(),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["params"], 329985);
}

#[test]
fn list_names_everything() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&["list"], dir.path());
    for name in [
        "image",
        "audio",
        "paper-audio",
        "paper-image",
        "shape",
        "shape-demo",
        #[cfg(feature = "video")]
        "video",
        #[cfg(feature = "video")]
        "video-uvg",
        "asmr",
        "siren",
        "ffn",
        "wire",
        "kilonerf",
        "ngp",
        "grid",
        "kodak",
        "low-mac-1",
        "megapixel",
    ] {
        assert!(out.contains(name), "{name} missing from list");
    }
}

#[test]
fn bad_input_is_one_clear_line_and_no_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    small_photo(d);
    std::fs::write(d.join("notes.txt"), "not an image").unwrap();
    let bytes = std::fs::read(d.join("photo.png")).unwrap();
    std::fs::write(d.join("cut.png"), &bytes[..bytes.len() / 3]).unwrap();
    std::fs::create_dir(d.join("folder")).unwrap();
    let mut cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["fit", "image", "missing.png"], "no such file"),
        (
            vec!["fit", "image", "folder"],
            "holds no input file (png, jpg, jpeg)",
        ),
        (vec!["fit", "image", "cut.png"], "cut.png"),
        (
            vec!["fit", "image", "notes.txt"],
            "notes.txt: line 1 (a manifest of inputs)",
        ),
        (
            vec!["fit", "image", "photo.png", "--set", "net.bases=[2,2,2,2]"],
            "net.bases",
        ),
        (
            vec!["fit", "image", "photo.png", "--iterations", "0"],
            "train.iterations",
        ),
        (
            vec!["fit", "image", "photo.png", "--set", "net.widht=3"],
            "net.widht",
        ),
        (
            vec!["fit", "image", "photo.png", "--set", "net.hidden=many"],
            "net.hidden",
        ),
        (
            vec!["fit", "sound", "photo.png"],
            "unknown modality `sound`",
        ),
        (
            vec!["fit", "image", "photo.png", "--model", "mlp"],
            "unknown model `mlp`",
        ),
        (
            vec!["fit", "image", "photo.png", "--preset", "huge"],
            "unknown preset `huge`",
        ),
        (
            vec!["fit", "image", "photo.png", "--device", "tpu"],
            "unknown device",
        ),
        (
            vec!["render", "notes.txt", "--out", "x.png"],
            "not a safetensors file",
        ),
        (vec!["info", "folder"], "directory"),
    ];
    // A CPU-only build says so; a CUDA build on a machine without that GPU names the device.
    #[cfg(not(feature = "cuda"))]
    cases.push((
        vec!["fit", "image", "photo.png", "--device", "cuda"],
        "built without CUDA",
    ));
    #[cfg(feature = "cuda")]
    cases.push((
        vec!["fit", "image", "photo.png", "--device", "cuda:7"],
        "cannot use cuda:7",
    ));
    for (mut args, needle) in cases {
        if args[0] == "fit" {
            args.extend(["--out", "run"]);
        }
        fails(&args, d, needle);
        assert!(!d.join("run").exists(), "{args:?} created the run folder");
        assert!(!d.join("runs").exists(), "{args:?} created runs/");
        assert!(!d.join("x.png").exists());
    }
    // An output that cannot be written names the path and the system's reason, once.
    let o = cli(&["fit", "image", "photo.png", "--out", "notes.txt/run"], d);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("notes.txt/run"), "{err}");
    let last = err.trim_end().lines().last().unwrap_or_default();
    let reason = last.rsplit(": ").next().unwrap_or_default();
    assert!(reason.contains("os error"), "{err}");
    assert_eq!(last.matches(reason).count(), 1, "{err}");
}

#[test]
fn minibatch_fit_runs_epochs_and_renders_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let photo = small_photo(dir.path());
    let args = [
        "fit",
        "image",
        photo.to_str().unwrap(),
        "--out",
        "mb",
        "-q",
        "--set",
        "net.hidden=16",
        "--batch",
        "70",
        "--epochs",
        "3",
        "--set",
        "train.sampler_grid=[7,10]",
    ];
    ok(&args, dir.path());
    let m: serde_json::Value = read_metrics(dir.path(), "mb");
    // 14 x 20 pixels in 7 x 10 cells of 2 x 2: one offset per batch, 4 batches an epoch.
    assert_eq!(m["steps"], 12);
    assert_eq!(m["best_step"].as_u64().unwrap() % 4, 0);
    ok(
        &["render", "mb/model.safetensors", "--out", "r.png"],
        dir.path(),
    );
    assert_eq!(
        std::fs::read(dir.path().join("r.png")).unwrap(),
        std::fs::read(dir.path().join("mb/reconstruction.png")).unwrap()
    );
}

#[test]
fn region_render_equals_the_same_region_of_a_full_render() {
    let (dir, _, _) = fit_small_photo();
    ok(
        &["render", "run/model.safetensors", "--out", "full.png"],
        dir.path(),
    );
    ok(
        &[
            "render",
            "run/model.safetensors",
            "--out",
            "part.png",
            "--region",
            "3,5,11,7",
        ],
        dir.path(),
    );
    let full = image::open(dir.path().join("full.png")).unwrap().to_rgb8();
    let part = image::open(dir.path().join("part.png")).unwrap().to_rgb8();
    assert_eq!(part.dimensions(), (11, 7));
    for y in 0..7 {
        for x in 0..11 {
            assert_eq!(
                part.get_pixel(x, y),
                full.get_pixel(x + 3, y + 5),
                "({x},{y})"
            );
        }
    }
    fails(
        &[
            "render",
            "run/model.safetensors",
            "--out",
            "bad.png",
            "--region",
            "15,5,11,7",
        ],
        dir.path(),
        "outside",
    );
    assert!(!dir.path().join("bad.png").exists());
}

#[test]
fn too_large_for_the_memory_budget_switches_to_minibatches() {
    let dir = tempfile::tempdir().unwrap();
    let photo = small_photo(dir.path());
    let args = [
        "fit",
        "image",
        photo.to_str().unwrap(),
        "--out",
        "run",
        "--set",
        "net.hidden=16",
        "--iterations",
        "6",
        "--set",
        "train.max_memory_gb=0.000001",
    ];
    let o = cli(&args, dir.path());
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("minibatches of about 140 samples for 3 epochs"),
        "{err}"
    );
    let cfg = std::fs::read_to_string(dir.path().join("run/config.yaml")).unwrap();
    // Asked for: the whole 14 x 20 image; the grid sampler, one offset from each of its cells (of
    // two samples), makes that two batches an epoch.
    assert!(cfg.contains("batch: 280"), "{cfg}");
    assert!(cfg.contains("epochs: auto"), "{cfg}");
    assert_eq!(read_metrics(dir.path(), "run")["steps"], 6);
    // Under a time limit the epoch count is the budget's, not yet known.
    let mut args = args.to_vec();
    args.extend(["--time-limit", "0.5", "--overwrite"]);
    let o = cli(&args, dir.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("samples within the time limit instead"),
        "{err}"
    );
}

/// A signal with more samples than `train.max_step_samples` trains on minibatches of about that
/// many, as many steps as asked for, and the `image` preset scores the whole photo every 4 epochs
/// and at the end; one within the cap keeps full-grid steps.
#[test]
fn more_samples_than_a_step_takes_switches_to_minibatches() {
    let dir = tempfile::tempdir().unwrap();
    let photo = small_photo(dir.path());
    let fit = |out: &str, cap: &str| {
        let set = format!("train.max_step_samples={cap}");
        let args = [
            "fit",
            "image",
            photo.to_str().unwrap(),
            "--out",
            out,
            "--set",
            "net.hidden=16",
            "--iterations",
            "30",
            "--set",
            &set,
        ];
        let o = cli(&args, dir.path());
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{err}");
        let cfg = std::fs::read_to_string(dir.path().join(out).join("config.yaml")).unwrap();
        assert_eq!(read_metrics(dir.path(), out)["steps"], 30);
        (err, cfg)
    };
    let (err, cfg) = fit("capped", "100");
    assert!(
        err.contains(
            "the signal has 280 samples, more than train.max_step_samples (100): training on \
             minibatches of about 140 samples for 15 epochs instead"
        ),
        "{err}"
    );
    assert!(cfg.contains("batch: 100"), "{cfg}");
    // 2 batches an epoch (the grid sampler takes one offset from each of its cells, 140 samples
    // in all, where 100 were asked for): scored every 4 epochs and after the last step.
    let log = std::fs::read_to_string(dir.path().join("capped/log.csv")).unwrap();
    let scored: Vec<&str> = log
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(5).is_some_and(|v| !v.is_empty()))
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(scored, ["8", "16", "24", "30"], "{log}");
    let (err, cfg) = fit("whole", "280");
    assert!(!err.contains("minibatches"), "{err}");
    assert!(cfg.contains("batch: 0"), "{cfg}");
}

/// Without `--epochs`, a minibatch run is as long as `--iterations` asks, in whole epochs; an
/// explicit `--epochs` sets the length itself.
#[test]
fn minibatch_runs_take_their_length_from_the_iterations_unless_the_epochs_are_given() {
    let dir = tempfile::tempdir().unwrap();
    let photo = small_photo(dir.path());
    let fit = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "fit",
            "image",
            photo.to_str().unwrap(),
            "--out",
            out,
            "-q",
            "--set",
            "net.hidden=16",
            "--batch",
            "70",
            "--set",
            "train.sampler_grid=[7,10]",
        ];
        args.extend_from_slice(extra);
        ok(&args, dir.path());
        read_metrics(dir.path(), out)["steps"].as_u64().unwrap()
    };
    // 4 batches an epoch: 10 steps take 3 epochs.
    assert_eq!(fit("it", &["--iterations", "10"]), 12);
    assert_eq!(fit("ep", &["--iterations", "10", "--epochs", "1"]), 4);
}

#[test]
fn audio_fits_and_renders_a_wav() {
    let dir = tempfile::tempdir().unwrap();
    // A 0.25 s stereo tone at 8 kHz, 16-bit PCM, written by hand.
    let (rate, frames) = (8000u32, 2000usize);
    let mut wav = Vec::new();
    let data_len = (frames * 4) as u32;
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    for v in [
        16u32.to_le_bytes().to_vec(),
        1u16.to_le_bytes().to_vec(),
        2u16.to_le_bytes().to_vec(),
    ] {
        wav.extend_from_slice(&v);
    }
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 4).to_le_bytes());
    wav.extend_from_slice(&4u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..frames {
        let t = i as f32 / rate as f32;
        for f in [440.0f32, 550.0] {
            let x = (0.4 * (std::f32::consts::TAU * f * t).sin() * 32767.0) as i16;
            wav.extend_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(dir.path().join("tone.wav"), wav).unwrap();
    let args = [
        "fit",
        "audio",
        "tone.wav",
        "--channels",
        "keep",
        "--out",
        "a",
        "-q",
        "--iterations",
        "20",
        "--set",
        "net.hidden=16",
    ];
    ok(&args, dir.path());
    let m: serde_json::Value = read_metrics(dir.path(), "a");
    assert_eq!(m["channels"], 2);
    assert!(m.get("snr").is_some());
    assert!(dir.path().join("a/spectrogram.png").is_file());
    assert_eq!(m["extra_files"][0], "spectrogram.png");
    ok(
        &["render", "a/model.safetensors", "--out", "again.wav"],
        dir.path(),
    );
    assert_eq!(
        std::fs::read(dir.path().join("again.wav")).unwrap(),
        std::fs::read(dir.path().join("a/reconstruction.wav")).unwrap()
    );
    // A span longer than the recording is fitted as far as it goes, and said so.
    let o = cli(
        &[
            "fit",
            "audio",
            "tone.wav",
            "--seconds",
            "100",
            "--out",
            "long",
            "-q",
        ]
        .iter()
        .chain(&["--iterations", "2", "--set", "net.hidden=8"])
        .copied()
        .collect::<Vec<_>>(),
        dir.path(),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("--seconds 100"), "{err}");
    fails(
        &["fit", "audio", "tone.wav", "--offset", "9", "--out", "b"],
        dir.path(),
        "past the end",
    );
    fails(
        &["fit", "image", "tone.wav", "--seconds", "1", "--out", "b"],
        dir.path(),
        "does not apply",
    );
    assert!(!dir.path().join("b").exists());
}

#[cfg(feature = "video")]
#[test]
fn video_fits_renders_and_reports_per_frame_metrics() {
    use modality_video::{decode, write_clip, DecodeOptions, Geometry, MP4_H264};
    let dir = tempfile::tempdir().unwrap();
    let (n, h, w) = (12, 16, 20);
    let mut rgb = Vec::new();
    for t in 0..n {
        for y in 0..h {
            for x in 0..w {
                rgb.extend_from_slice(&[(x * 12 + t * 4) as u8, (y * 15) as u8, 128]);
            }
        }
    }
    let geometry = Geometry {
        width: w,
        height: h,
        rate: (24, 1),
        pixel_aspect: (1, 1),
    };
    write_clip(&dir.path().join("clip.mp4"), &MP4_H264, geometry, &rgb).unwrap();
    let args = [
        "fit",
        "video",
        "clip.mp4",
        "--stride",
        "2",
        "--out",
        "v",
        "-q",
        "--preset",
        "video-demo",
        "--iterations",
        "200",
        "--set",
        "net.hidden=32",
    ];
    let out = ok(&args, dir.path());
    assert!(out.contains("per frame: PSNR"), "{out}");
    let m: serde_json::Value = read_metrics(dir.path(), "v");
    assert_eq!(m["shape"], serde_json::json!([6, 16, 20]));
    assert_eq!(m["frames"], 6.0);
    assert!(m["psnr_frame_mean"].as_f64().unwrap() > 20.0, "{m}");
    assert!(m["psnr_frame_std"].as_f64().unwrap() >= 0.0);
    assert!(m["ssim"].as_f64().is_some());
    for f in ["frames.png", "frames.csv"] {
        assert!(dir.path().join("v").join(f).is_file(), "{f} missing");
    }
    let csv = std::fs::read_to_string(dir.path().join("v/frames.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7, "{csv}");
    let plain = DecodeOptions {
        stride: 1,
        ..Default::default()
    };
    let fitted = decode(&dir.path().join("v/reconstruction.mp4"), &plain).unwrap();
    assert_eq!((fitted.frames, fitted.height, fitted.width), (6, 16, 20));
    assert_eq!(fitted.rate, (12, 1));
    ok(
        &["render", "v/model.safetensors", "--out", "again.mp4"],
        dir.path(),
    );
    let again = decode(&dir.path().join("again.mp4"), &plain).unwrap();
    assert_eq!(again.rgb, fitted.rgb);
    // The paper's UVG bases do not divide this clip: the grid error names it, nothing is written.
    fails(
        &[
            "fit",
            "video",
            "clip.mp4",
            "--preset",
            "video-uvg",
            "--out",
            "u",
        ],
        dir.path(),
        "net.bases",
    );
    fails(
        &["fit", "video", "clip.mp4", "--start", "5", "--out", "u"],
        dir.path(),
        "no frames at or after 5",
    );
    assert!(!dir.path().join("u").exists());
}

#[test]
fn every_baseline_fits_and_renders_by_name() {
    let dir = tempfile::tempdir().unwrap();
    small_photo(dir.path());
    for model in ["ffn", "wire", "kilonerf", "ngp", "grid"] {
        let out = format!("run-{model}");
        let args = [
            "fit",
            "image",
            "photo.png",
            "--model",
            model,
            "--iterations",
            "5",
            "--set",
            "net.hidden=16",
            "--set",
            "net.ngp.log2_table=8",
            "--out",
            &out,
            "-q",
        ];
        ok(&args, dir.path());
        let m: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(&out).join("metrics.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(m["model"], model);
        assert!(m["psnr"].as_f64().unwrap().is_finite(), "{model}: {m}");
        assert!(m["params"].as_u64().unwrap() > 0);
        let cfg = std::fs::read_to_string(dir.path().join(&out).join("config.yaml")).unwrap();
        let cfg: serde_yaml::Value = serde_yaml::from_str(&cfg).unwrap();
        for key in ["lr", "lr_min", "eps", "weight_decay"] {
            assert!(
                cfg["train"][key].as_f64().is_some(),
                "{model}: train.{key} resolved"
            );
        }
        // The checkpoint alone rebuilds the model: render equals the fit's reconstruction.
        let again = format!("{model}.png");
        ok(
            &[
                "render",
                &format!("{out}/model.safetensors"),
                "--out",
                &again,
            ],
            dir.path(),
        );
        assert_eq!(
            std::fs::read(dir.path().join(&again)).unwrap(),
            std::fs::read(dir.path().join(&out).join("reconstruction.png")).unwrap(),
            "{model}"
        );
    }
}

#[test]
fn profile_reports_baseline_columns() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(
        &[
            "profile",
            "--model",
            "ngp",
            "--shape",
            "512,768",
            "--channels",
            "3",
            "--preset",
            "kodak",
            "--json",
        ],
        dir.path(),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Kodak NGP: 8 levels x 2 features -> 64 -> 3; one hashed level (256).
    assert_eq!(v["breakdown"]["mlp"], (16 * 64 + 64 + 64 * 3 + 3) as f64);
    assert_eq!(v["breakdown"]["interpolation"], (8 * (4 * 2 + 4)) as f64);
    assert_eq!(v["breakdown"]["hash"], (4 * 2) as f64);
    let out = ok(
        &[
            "profile",
            "--model",
            "kilonerf",
            "--shape",
            "64,64",
            "--set",
            "net.kilonerf.tiles=[4]",
            "--json",
        ],
        dir.path(),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // 42 inputs (2-D, 10 frequencies) -> 5 x 32 -> 1, per tile; 16 tiles.
    let per_tile = 42 * 32 + 32 + 4 * (32 * 32 + 32) + 32 + 1;
    assert_eq!(v["macs_per_sample"], per_tile as f64);
    assert_eq!(v["params"], 16 * per_tile);
}

#[test]
fn shape_fits_renders_and_reports_surface_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let m = modality_shape::shapes::torus(1.5, 0.6, 48, 24);
    std::fs::write(dir.path().join("ring.obj"), m.to_obj("a torus")).unwrap();
    let args = [
        "fit",
        "shape",
        "ring.obj",
        "--resolution",
        "16",
        "--preset",
        "shape-demo",
        "--iterations",
        "60",
        "--out",
        "s",
        "-q",
    ];
    // A field larger than the input memory limit is refused before the mesh is voxelised.
    let o = Command::new(env!("CARGO_BIN_EXE_asmr-cli"))
        .args([
            "fit",
            "shape",
            "ring.obj",
            "--resolution",
            "64",
            "--out",
            "t",
        ])
        .env("ASMR_INPUT_LIMIT_GB", "0.0005")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("a 64^3 field takes 1.0 MB, more than the 0.5 MB"),
        "{err}"
    );
    assert!(
        err.contains("--resolution") && !dir.path().join("t").exists(),
        "{err}"
    );
    // A word option is taken as typed: `0x1` is named, not read as the hexadecimal number 1.
    fails(
        &["fit", "shape", "ring.obj", "--target", "0x1", "--out", "t"],
        dir.path(),
        "`0x1` is neither sdf nor occupancy",
    );
    let out = ok(&args, dir.path());
    assert!(out.contains("reconstruction.obj"), "{out}");
    let metrics: serde_json::Value = read_metrics(dir.path(), "s");
    assert_eq!(metrics["shape"], serde_json::json!([16, 16, 16]));
    for key in [
        "iou",
        "chamfer_l1",
        "chamfer_l2",
        "normal_consistency",
        "psnr",
    ] {
        assert!(metrics[key].as_f64().is_some(), "{key} missing: {metrics}");
    }
    assert!(metrics["iou"].as_f64().unwrap() > 0.5, "{metrics}");
    assert!(dir.path().join("s/render.png").is_file());
    // The OBJ is in the mesh's own units (the torus spans about [-2.1, 2.1] in x).
    let surface = modality_shape::mesh::load_obj(&dir.path().join("s/reconstruction.obj")).unwrap();
    let (lo, hi) = surface.bounds();
    assert!(lo[0] < -1.5 && hi[0] > 1.5, "{lo:?} {hi:?}");
    ok(
        &["render", "s/model.safetensors", "--out", "again.obj"],
        dir.path(),
    );
    assert_eq!(
        std::fs::read(dir.path().join("again.obj")).unwrap(),
        std::fs::read(dir.path().join("s/reconstruction.obj")).unwrap()
    );
    std::fs::write(dir.path().join("flat.obj"), "v 0 0 0\nv 1 0 0\nv 0 1 0\n").unwrap();
    fails(
        &["fit", "shape", "flat.obj", "--out", "u"],
        dir.path(),
        "no faces",
    );
    fails(
        &[
            "fit", "shape", "ring.obj", "--target", "volume", "--out", "u",
        ],
        dir.path(),
        "data.target",
    );
    assert!(!dir.path().join("u").exists());
}

/// `bench` on a 16 x 12 signal, up to its `--repeats` value.
const SMALL_BENCH: [&str; 6] = [
    "bench",
    "--shape",
    "16,12",
    "--preset",
    "image",
    "--repeats",
];

/// The result rows of `bench --json`.
fn json_rows(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn bench_on_minibatches_times_the_batch_plans_of_the_models_that_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut full = SMALL_BENCH.to_vec();
    full.extend(["2", "--models", "asmr,siren,ngp", "--set", "net.hidden=8"]);
    let mut common = full.clone();
    common.extend(["--batch", "64"]);
    let mut args = common.clone();
    args.push("--json");
    let out = ok(&args, dir.path());
    let rows = json_rows(&out);
    let plans: Vec<usize> = rows
        .iter()
        .map(|r| r["prepare_seconds"].as_array().unwrap().len())
        .collect();
    // ASMR groups the batch into level cells and NGP finds its corners; SIREN has no plan.
    assert_eq!(plans, [2, 0, 2], "{out}");
    for r in [&rows[0], &rows[2]] {
        let s = r["prepare_seconds"][0].as_f64().unwrap();
        assert!(s > 0.0 && s.is_finite(), "{r}");
    }
    let table = ok(&common, dir.path());
    let siren = table.lines().find(|l| l.starts_with("| siren |")).unwrap();
    assert!(
        table.contains("| batch plan (s) |") && siren.contains("| — |"),
        "{table}"
    );
    // Full-grid steps have no batch to plan.
    let full = ok(&full, dir.path());
    assert!(!full.contains("batch plan"), "{full}");
}

#[test]
fn bench_times_every_model_and_checks_all_cases_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut common = SMALL_BENCH.to_vec();
    common.push("1");
    let mut args = common.to_vec();
    args.extend([
        "--models",
        "asmr,asmr-plain,siren,siren-plain",
        "--set",
        "net.hidden=8",
        "--json",
    ]);
    let rows = json_rows(&ok(&args, d));
    let names: Vec<&str> = rows.iter().map(|r| r["model"].as_str().unwrap()).collect();
    assert_eq!(names, ["asmr", "asmr (plain)", "siren", "siren (plain)"]);
    for r in &rows {
        assert_eq!(r["samples_per_step"], 192);
        assert_eq!(r["shape"], serde_json::json!([16, 12]));
        let step = r["step_seconds"][0].as_f64().unwrap();
        assert!(step > 0.0 && step.is_finite(), "{r}");
        assert!(r["peak_rss_bytes"].as_u64().unwrap() > 0);
    }
    // A model and its plain path are one model: the same parameters and MACs.
    for (fused, plain) in [(0, 1), (2, 3)] {
        assert_eq!(rows[fused]["params"], rows[plain]["params"]);
        assert_eq!(
            rows[fused]["macs_per_sample"],
            rows[plain]["macs_per_sample"]
        );
    }
    // The table names the baseline column after the first model.
    let mut args = common.to_vec();
    args.extend(["--models", "siren,asmr", "--set", "net.hidden=8"]);
    let table = ok(&args, d);
    assert!(
        table.contains("| x siren |") && table.contains("| asmr |"),
        "{table}"
    );
    // A bad case anywhere stops the run before anything is timed.
    for (models, needle) in [
        ("asmr,mlp", "unknown model `mlp`"),
        ("siren,asmr", "net.bases"),
    ] {
        let mut args = common.to_vec();
        args.extend(["--models", models]);
        if models == "siren,asmr" {
            args.extend(["--set", "net.bases=[2,2,2,2]"]);
        }
        let o = cli(&args, d);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(needle), "{err}");
        assert!(!err.contains("timing"), "timed before failing: {err}");
    }
}

/// Every picture every modality writes is there, decodes and is large enough to read; the list of
/// pictures comes from the run's own metrics.json, so a picture that silently disappears fails.
#[test]
fn every_picture_of_every_modality_is_written_and_readable() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected: Vec<(&str, Vec<&str>)> = vec![
        ("image", vec!["psnr.png", "summary.png"]),
        ("audio", vec!["psnr.png", "summary.png", "spectrogram.png"]),
        ("shape", vec!["psnr.png", "summary.png", "render.png"]),
        ("array", vec!["psnr.png", "summary.png"]),
    ];
    if cfg!(feature = "video") {
        expected.push(("video", vec!["psnr.png", "summary.png", "frames.png"]));
    }
    for (modality, pictures) in expected {
        let out = format!("pic-{modality}");
        ok(
            &["fit", modality, "--iterations", "4", "--out", &out, "-q"],
            dir.path(),
        );
        let m = read_metrics(dir.path(), &out);
        let mut listed: Vec<String> = vec!["psnr.png".into()];
        listed.extend(
            m["extra_files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .filter(|f| f.ends_with(".png")),
        );
        for p in &pictures {
            assert!(
                listed.iter().any(|l| l == p),
                "{modality}: {p} not in {listed:?}"
            );
        }
        for p in listed {
            let img = image::open(dir.path().join(&out).join(&p))
                .unwrap_or_else(|e| panic!("{modality}/{p}: {e}"));
            assert!(
                img.width() >= 600 && img.height() >= 300,
                "{modality}/{p}: {} x {}",
                img.width(),
                img.height()
            );
        }
    }
}

/// What a new user reads is true: `list`'s numbers are the presets' own, help texts describe
/// their arguments, `bench` runs on any shape without a preset, a fixed-bases error says how to
/// get automatic bases, a resumed run says where it resumes, and a minibatch run never prints a
/// best PSNR of minus infinity.
#[test]
fn first_hour_messages_are_true() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let list = ok(&["list"], d);
    let demo = list
        .lines()
        .find(|l| l.trim_start().starts_with("demo "))
        .unwrap();
    assert!(
        demo.contains("asmr 4x128") && demo.contains("300 steps"),
        "{demo}"
    );
    // Every preset row starts its description in the same column.
    let cols: Vec<usize> = list
        .lines()
        .filter(|l| l.contains("] asmr") || l.contains("] siren"))
        .map(|l| l.find('[').unwrap())
        .collect();
    assert!(cols.windows(2).all(|w| w[0] == w[1]), "{list}");
    let help = ok(&["render", "--help"], d);
    assert!(
        help.contains("model.safetensors") && help.contains("cpu, cuda"),
        "{help}"
    );
    let help = ok(&["profile", "--help"], d);
    assert!(help.contains("repeat the flag"), "{help}");
    let help = ok(&["fit", "audio", "--help"], d);
    assert!(
        help.contains("--sample-rate") && help.contains("data.sample_rate"),
        "{help}"
    );
    let table = ok(
        &[
            "bench",
            "--shape",
            "24,20",
            "--models",
            "asmr",
            "--repeats",
            "1",
        ],
        d,
    );
    assert!(table.contains("| asmr |"), "{table}");

    let photo = small_photo(d);
    let photo = photo.to_str().unwrap();
    fails(
        &["fit", "image", photo, "--preset", "low-mac-4", "--out", "x"],
        d,
        "--set net.bases=auto",
    );
    let mut args = vec!["fit", "image", photo, "--out", "r", "--iterations", "4"];
    args.extend(["--set", "net.hidden=8"]);
    ok(&args, d);
    let o = cli(
        &[
            "fit",
            "image",
            photo,
            "--resume",
            "r/state.safetensors",
            "--iterations",
            "6",
        ],
        d,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && err.contains("resuming from step 4 of 6"),
        "{err}"
    );
    let render = cli(&["render", "r/model.safetensors", "--out", "a.png"], d);
    let err = String::from_utf8_lossy(&render.stderr);
    assert!(err.contains("14 x 20 (height x width)"), "{err}");
    let o = cli(
        &[
            "fit", "image", photo, "--batch", "64", "--epochs", "2", "--out", "m",
        ],
        d,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !err.contains("inf"), "{err}");
    assert!(err.contains("epoch 2/2: PSNR"), "{err}");
}

/// A time budget sets the schedule's length: the cosine reaches its floor as the budget ends, long
/// before the (huge) step count the config allows.
#[test]
fn a_time_limit_ends_the_schedule_at_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let photo = small_photo(dir.path());
    let args = [
        "fit",
        "image",
        photo.to_str().unwrap(),
        "--time-limit",
        "2",
        "--iterations",
        "1000000",
        "--set",
        "net.hidden=8",
        "--set",
        "train.lr=1e-3",
        "--set",
        "train.lr_horizon=0",
        "--out",
        "t",
        "-q",
    ];
    ok(&args, dir.path());
    let log = std::fs::read_to_string(dir.path().join("t/log.csv")).unwrap();
    let rows: Vec<Vec<f64>> = log
        .lines()
        .skip(1)
        .map(|l| l.split(',').take(5).map(|v| v.parse().unwrap()).collect())
        .collect();
    let (first, last) = (&rows[0], &rows[rows.len() - 1]);
    assert!(rows.len() < 1_000_000);
    // lr goes 1e-3 -> 1e-4 over the schedule: well past its middle at the end of the budget.
    assert!(last[3] < 0.6 * first[3], "lr {} -> {}", first[3], last[3]);
    assert!(last[4] < 3.5, "ran {} s for a 2 s budget", last[4]);
}

/// Under a time budget, a minibatch run's progress counts the epochs the budget allows, not the
/// (huge) number the step cap would.
#[test]
fn a_time_limited_minibatch_run_counts_the_epochs_of_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let photo = small_photo(dir.path());
    let photo = photo.to_str().unwrap();
    let mut args = vec!["fit", "image", photo, "--batch", "64", "--eval-every", "1"];
    args.extend(["--time-limit", "1.5", "--iterations", "1000000"]);
    args.extend(["--set", "net.hidden=8", "--out", "t"]);
    let o = cli(&args, dir.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let (done, total): (usize, usize) = err
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("epoch ")?.split_once(':'))
        .find_map(|(count, _)| {
            let (a, b) = count.split_once('/')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .unwrap_or_else(|| panic!("no epoch line: {err}"));
    assert!(done > 1 && total <= done + 1, "epoch {done}/{total}: {err}");
}

/// A long run under a time limit says how long its budget has left, without suggesting the
/// options that shorten a run (the time limit already sets its length).
#[test]
fn a_long_time_limited_run_announces_its_budget() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let photo = small_photo(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_asmr-cli"))
        .args(["fit", "image", photo.to_str().unwrap(), "--out", "t"])
        .args(["--time-limit", "600", "--iterations", "100000000"])
        .args(["--set", "net.hidden=8"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    // The estimate comes two seconds in; the run itself would take ten minutes.
    let line = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("more"));
    child.kill().unwrap();
    child.wait().unwrap();
    let line = line.expect("no estimate line");
    assert!(
        line.contains("about 9 min") && line.contains("more (the time limit)"),
        "{line}"
    );
    assert!(!line.contains("shortens"), "{line}");
}

/// Output into a pipe closed early (`asmr-cli list | head -1`) ends the process without a panic.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_asmr-cli"))
        .arg("list")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}
