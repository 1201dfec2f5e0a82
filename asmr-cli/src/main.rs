//! `asmr-cli`: fit coordinate networks to signals, render checkpoints, profile models.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use asmr_core::candle_core::Device;
use asmr_core::config::ConfigBuilder;
use asmr_core::models::{find_model, models, ModelContext};
use asmr_core::registry::{find_modality, find_preset, modalities, presets};
use asmr_core::{checkpoint, run, Bases, Config};
use clap::{Args, Parser, Subcommand};

// Plugin crates register through `inventory`; naming them keeps the linker from dropping them.
use modality_audio as _;
use modality_image as _;
use modality_shape as _;
#[cfg(feature = "video")]
use modality_video as _;

#[derive(Parser)]
#[command(
    name = "asmr-cli",
    version,
    about = "Fit ASMR coordinate networks (and baselines) to images and other signals"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fit a model to a signal and write a run folder.
    Fit(Box<FitArgs>),
    /// Render the signal a checkpoint holds (activation-sharing forward) to a file.
    Render {
        checkpoint: PathBuf,
        /// Output file (e.g. out.png).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Render only a box: X,Y,W,H for images; START,LEN per axis (axis order) otherwise.
        #[arg(long, value_delimiter = ',')]
        region: Option<Vec<usize>>,
    },
    /// MACs per sample and parameters of a model on a signal shape (SPEC §4).
    Profile(ProfileArgs),
    /// Time training steps and full-grid inference of several models on one signal shape.
    Bench(BenchArgs),
    /// Registered modalities, models and presets.
    List,
    /// What a checkpoint holds.
    Info { checkpoint: PathBuf },
}

#[derive(Args)]
struct FitArgs {
    /// Modality name (see `list`).
    modality: String,
    /// Input file; without it the modality's built-in example is fitted.
    input: Option<PathBuf>,
    /// Audio: start this many seconds into the recording.
    #[arg(long)]
    offset: Option<String>,
    /// Audio: keep this many seconds.
    #[arg(long)]
    seconds: Option<String>,
    /// Audio: resample to this rate (Hz), band-limited.
    #[arg(long)]
    sample_rate: Option<String>,
    /// Audio: `mix` channels to mono (default) or `keep` each as an output.
    #[arg(long)]
    channels: Option<String>,
    /// Audio: write the reconstruction as 32-bit float WAV (16-bit PCM otherwise).
    #[arg(long)]
    float: bool,
    /// Video: seconds into the clip of the first frame kept.
    #[arg(long)]
    start: Option<String>,
    /// Video: frames to keep (after --stride).
    #[arg(long)]
    frames: Option<String>,
    /// Video: keep every K-th frame.
    #[arg(long)]
    stride: Option<String>,
    /// Video: scale frames to WxH (Lanczos), e.g. 480x270.
    #[arg(long)]
    size: Option<String>,
    /// Stop after this many seconds of training (the schedule still spans --iterations);
    /// --set train.time_limit=S.
    #[arg(long, value_name = "SECONDS")]
    time_limit: Option<f64>,
    /// Shape: voxels per axis of the field (default 128).
    #[arg(long)]
    resolution: Option<String>,
    /// Shape: `sdf` (truncated signed distance, default) or `occupancy`.
    #[arg(long)]
    target: Option<String>,
    /// Full-grid steps estimated above this many GiB train on minibatches instead
    /// (default half the RAM; on a GPU 80% of its memory); --set train.max_memory_gb=G.
    #[arg(long, value_name = "GIB")]
    max_memory: Option<f64>,
    /// Model name (asmr, siren, ...); overrides the preset's `model`.
    #[arg(long)]
    model: Option<String>,
    /// Named preset (see `list`); default: the modality's own.
    #[arg(long)]
    preset: Option<String>,
    /// YAML file layered over the preset.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override one key, e.g. --set net.hidden=128 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Shorthand for --set train.iterations=N.
    #[arg(long)]
    iterations: Option<usize>,
    /// Shorthand for --set train.seed=S.
    #[arg(long)]
    seed: Option<u64>,
    /// Minibatch training with N samples per batch (uniform grid sampler); --set train.batch=N.
    #[arg(long)]
    batch: Option<usize>,
    /// Minibatch mode: passes over the signal; --set train.epochs=N.
    #[arg(long)]
    epochs: Option<usize>,
    /// Minibatch mode: evaluate the whole signal every N epochs; --set train.eval_every=N.
    #[arg(long)]
    eval_every: Option<usize>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Run folder (default runs/<modality>-<model>-<time>/; the checkpoint's folder when resuming).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue from a run's state.safetensors (its config is kept; --iterations may extend it).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Fit into an --out folder that holds an earlier run, replacing its files.
    #[arg(long)]
    overwrite: bool,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args)]
struct ProfileArgs {
    #[arg(long, default_value = "asmr")]
    model: String,
    /// Signal shape, e.g. 512,512.
    #[arg(long, value_delimiter = ',', required = true)]
    shape: Vec<usize>,
    #[arg(long, default_value_t = 1)]
    channels: usize,
    #[arg(long, default_value_t = 4)]
    layers: usize,
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    /// Bases, e.g. 4,4,4,8: once for every axis, or once per axis in axis order. Default: automatic.
    #[arg(long)]
    bases: Vec<String>,
    /// linear or nonlinear.
    #[arg(long, default_value = "linear")]
    modulator: String,
    /// Named preset layered under the flags (e.g. kodak for its Instant-NGP settings).
    #[arg(long)]
    preset: Option<String>,
    /// Override one key, e.g. --set net.ngp.levels=8 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BenchArgs {
    /// Run the standard suite (every case of BENCHMARKS.md) and print a Markdown table.
    #[arg(long)]
    suite: bool,
    /// Signal shape, e.g. 512,512.
    #[arg(long, value_delimiter = ',', default_value = "512,512")]
    shape: Vec<usize>,
    #[arg(long, default_value_t = 1)]
    channels: usize,
    /// Models to time, in order: asmr, siren or any baseline; NAME-plain is NAME with the fused
    /// CPU kernels off (candle's own ops, what other devices run).
    #[arg(long, value_delimiter = ',', default_value = "asmr,asmr-plain,siren")]
    models: Vec<String>,
    /// Preset giving the net config (layers, hidden, bases...).
    #[arg(long, default_value = "low-mac-4")]
    preset: String,
    /// Override one key, e.g. --set net.hidden=128 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Random minibatches of N samples instead of full-grid steps.
    #[arg(long)]
    batch: Option<usize>,
    /// Timed repeats per measurement (after one warm-up step).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text the line already holds
/// (asmr-core's errors name their source in their own message).
fn report(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn real_main() -> Result<()> {
    asmr_core::kernels::keep_freed_memory();
    match Cli::parse().command {
        Command::Fit(args) => fit(*args),
        Command::Render {
            checkpoint,
            out,
            device,
            region,
        } => {
            let device = parse_device(&device)?;
            let ranges = region.map(|r| region_ranges(&r)).transpose()?;
            let info = run::render(&checkpoint, &out, &device, ranges.as_deref())?;
            eprintln!(
                "rendered {} {:?} x {} to {}",
                info.modality,
                info.shape,
                info.channels,
                out.display()
            );
            Ok(())
        }
        Command::Profile(args) => profile(args),
        Command::Bench(args) => bench(args),
        Command::List => {
            list();
            Ok(())
        }
        Command::Info { checkpoint } => info(&checkpoint),
    }
}

/// `--region`: X,Y,W,H (an image's column, row, width, height), or START,LEN per axis.
fn region_ranges(r: &[usize]) -> Result<Vec<std::ops::Range<usize>>> {
    match r.len() {
        4 => Ok(vec![r[1]..r[1] + r[3], r[0]..r[0] + r[2]]),
        n if n % 2 == 0 && n > 0 => Ok(r.chunks(2).map(|p| p[0]..p[0] + p[1]).collect()),
        _ => bail!("--region expects X,Y,W,H (images) or START,LEN for every axis"),
    }
}

fn parse_device(s: &str) -> Result<Device> {
    let cuda = |i: usize| {
        if !candle_core::utils::cuda_is_available() {
            bail!(
                "cannot use cuda:{i}: this binary was built without CUDA (build with \
                 `--features cuda`, see the README's CUDA section)"
            );
        }
        Device::new_cuda(i).with_context(|| format!("cannot use cuda:{i} (no such NVIDIA GPU?)"))
    };
    match s {
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(0),
        "auto" => Ok(Device::cuda_if_available(0).unwrap_or(Device::Cpu)),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => cuda(i),
            _ => bail!("unknown device `{other}` (cpu, cuda, cuda:N or auto)"),
        },
    }
}

fn fit(args: FitArgs) -> Result<()> {
    let modality = find_modality(&args.modality)?;
    let device = parse_device(&args.device)?;

    let mut builder = ConfigBuilder::new();
    if let Some(path) = &args.resume {
        if args.preset.is_some() {
            bail!("--preset cannot be combined with --resume: the checkpoint's config is used");
        }
        let ckpt = checkpoint::load(path, &Device::Cpu)?;
        builder.merge_yaml(&ckpt.meta.config.to_yaml(), &path.display().to_string())?;
    } else {
        let preset_name = match (&args.preset, &args.input) {
            (Some(p), _) => p.as_str(),
            (None, Some(_)) => modality.default_preset,
            (None, None) => modality.example_preset,
        };
        let preset = find_preset(preset_name)?;
        if preset.modality != modality.name {
            bail!(
                "preset `{}` is for {} signals, not {}",
                preset.name,
                preset.modality,
                modality.name
            );
        }
        builder.merge_yaml(preset.yaml, &format!("preset {}", preset.name))?;
    }
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        builder.merge_yaml(&text, &path.display().to_string())?;
    }
    for pair in &args.set {
        builder.set_pair(pair)?;
    }
    if let Some(m) = &args.model {
        builder.set("model", m)?;
    }
    if let Some(n) = args.iterations {
        builder.set("train.iterations", &n.to_string())?;
    }
    if let Some(s) = args.seed {
        builder.set("train.seed", &s.to_string())?;
    }
    if let Some(b) = args.batch {
        builder.set("train.batch", &b.to_string())?;
    }
    if let Some(e) = args.epochs {
        builder.set("train.epochs", &e.to_string())?;
    }
    if let Some(e) = args.eval_every {
        builder.set("train.eval_every", &e.to_string())?;
    }
    if let Some(s) = args.time_limit {
        builder.set("train.time_limit", &s.to_string())?;
    }
    if let Some(g) = args.max_memory {
        builder.set("train.max_memory_gb", &g.to_string())?;
    }
    for (key, value) in [
        ("data.offset", &args.offset),
        ("data.seconds", &args.seconds),
        ("data.sample_rate", &args.sample_rate),
        ("data.channels", &args.channels),
        ("data.start", &args.start),
        ("data.frames", &args.frames),
        ("data.stride", &args.stride),
        ("data.size", &args.size),
        ("data.resolution", &args.resolution),
        ("data.target", &args.target),
    ] {
        // Words (`--size 480x270`, `--channels keep`, `--target sdf`) stay strings as typed.
        let word = ["data.size", "data.channels", "data.target"].contains(&key);
        match value {
            Some(v) if word => builder.set_string(key, v)?,
            Some(v) => builder.set(key, v)?,
            None => continue,
        };
    }
    if args.float {
        builder.set("data.float", "true")?;
    }
    let config = builder.build()?;
    find_model(&config.model)?;
    let options = config.data.load_options();
    if args.input.is_none() && !options.is_empty() {
        bail!(
            "loader options (--offset, --seconds, --sample-rate, --channels, --float, --start, \
             --frames, --stride, --size, --resolution, --target) apply to an input file"
        );
    }
    let out_dir = match (&args.out, &args.resume) {
        (Some(o), _) => o.clone(),
        (None, Some(r)) => r
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        (None, None) => fresh_run_dir(modality.name, &config.model),
    };
    // A new fit never silently replaces an earlier run's results.
    if args.resume.is_none() && !args.overwrite {
        if let Some(file) = run::earlier_run_file(&out_dir) {
            bail!(
                "--out {}: holds an earlier run ({file}); choose another folder, continue it with \
                 --resume {}, or replace it with --overwrite",
                out_dir.display(),
                out_dir.join(run::STATE_FILE).display()
            );
        }
    }
    let signal = load_with_spinner(modality, args.input.as_deref(), &options, args.quiet)?;
    for note in &signal.notes {
        eprintln!("warning: {note}");
    }
    let report = run::fit(run::FitRequest {
        modality,
        signal,
        config,
        out_dir,
        device,
        resume: args.resume.as_deref(),
        quiet: args.quiet,
    })?;
    summarise(&report);
    Ok(())
}

/// Load the input, with a spinner while it takes (decoding a video, voxelising a mesh).
fn load_with_spinner(
    modality: &'static asmr_core::Modality,
    input: Option<&Path>,
    options: &asmr_core::LoadOptions,
    quiet: bool,
) -> Result<asmr_core::Signal> {
    let Some(path) = input.filter(|_| !quiet) else {
        return Ok(run::load_signal(modality, input, options)?);
    };
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message(format!("reading {} ({})", path.display(), modality.name));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let signal = run::load_signal(modality, input, options);
    spinner.finish_and_clear();
    Ok(signal?)
}

fn fresh_run_dir(modality: &str, model: &str) -> PathBuf {
    let base = PathBuf::from("runs").join(format!(
        "{modality}-{model}-{}",
        asmr_core::output::timestamp()
    ));
    let mut dir = base.clone();
    let mut k = 1;
    while dir.exists() {
        k += 1;
        dir = PathBuf::from(format!("{}-{k}", base.display()));
    }
    dir
}

fn summarise(report: &run::FitReport) {
    let m = &report.metrics;
    let num = |k: &str| m.get(k).and_then(|v| v.as_f64());
    let mut line = format!(
        "{} on {}: PSNR {:.2} dB",
        m["model"].as_str().unwrap_or("?"),
        m["source"].as_str().unwrap_or("?"),
        num("psnr").unwrap_or(f64::NAN)
    );
    if let Some(s) = num("ssim") {
        line += &format!(", SSIM {s:.4}");
    }
    if let (Some(mean), Some(std)) = (num("psnr_frame_mean"), num("psnr_frame_std")) {
        line += &format!(" (per frame: PSNR {mean:.2} ± {std:.2} dB");
        if let Some(s) = num("ssim_frame_std") {
            line += &format!(", SSIM ± {s:.4}");
        }
        line += ")";
    }
    line += &format!(
        " at step {} of {} ({:.1} s, {:.2} steps/s)",
        m["best_step"],
        m["steps"],
        num("wall_seconds").unwrap_or(0.0),
        num("steps_per_second").unwrap_or(0.0)
    );
    println!("{line}");
    if let Some(b) = m.get("bases") {
        println!("bases per axis: {b}");
    }
    println!(
        "params {}, {:.2} MACs/sample, {:.3} bits/sample",
        m["params"],
        num("macs_per_sample").unwrap_or(0.0),
        num("bits_per_sample").unwrap_or(0.0)
    );
    let mut files = vec![m["reconstruction"].as_str().unwrap_or("").to_string()];
    if let Some(extra) = m.get("extra_files").and_then(|v| v.as_array()) {
        files.extend(extra.iter().filter_map(|v| v.as_str()).map(String::from));
    }
    files.extend(["metrics.json", "psnr.png", "log.csv", "model.safetensors"].map(String::from));
    println!(
        "results in {}/ ({})",
        report.out_dir.display(),
        files.join(", ")
    );
}

fn profile(args: ProfileArgs) -> Result<()> {
    let mut builder = ConfigBuilder::new();
    if let Some(name) = &args.preset {
        builder.merge_yaml(find_preset(name)?.yaml, &format!("preset {name}"))?;
        builder.set("net.bases", "auto")?;
    }
    builder.set("model", &args.model)?;
    builder.set("net.layers", &args.layers.to_string())?;
    builder.set("net.hidden", &args.hidden.to_string())?;
    builder.set("net.modulator", &args.modulator)?;
    for pair in &args.set {
        builder.set_pair(pair)?;
    }
    let lists = args
        .bases
        .iter()
        .map(|s| {
            s.split(',')
                .map(|x| x.trim().parse::<usize>())
                .collect::<std::result::Result<Vec<_>, _>>()
                .with_context(|| format!("--bases `{s}`: expected numbers like 4,4,4,8"))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut config: Config = builder.build()?;
    config.net.bases = match lists.len() {
        0 => Bases::Auto,
        1 => Bases::All(lists[0].clone()),
        _ => Bases::PerAxis(lists),
    };
    let entry = find_model(&config.model)?;
    let ctx = ModelContext::new(config.net.clone(), &args.shape, args.channels);
    let p = (entry.profile)(&ctx)?;
    let grid = if entry.uses_grid {
        Some(ctx.resolve_grid()?)
    } else {
        None
    };
    if args.json {
        let mut v = serde_json::json!({
            "macs_per_sample": p.macs_per_sample,
            "params": p.params,
            "breakdown": p.breakdown.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
        });
        if let Some(g) = &grid {
            v["bases"] = serde_json::json!(g.bases());
            v["grid_shape"] = serde_json::json!(g.shape());
        }
        println!("{v}");
    } else {
        println!(
            "model {} on {:?} x {}",
            config.model, args.shape, args.channels
        );
        if let Some(g) = &grid {
            println!("bases {:?} (grid {:?})", g.bases(), g.shape());
        }
        println!("params          {}", p.params);
        println!("MACs/sample     {:.7}", p.macs_per_sample);
        for (k, v) in &p.breakdown {
            println!("  {k:<13} {v:.7}");
        }
    }
    Ok(())
}

/// One benchmark table: a signal shape and the net config every model shares.
struct BenchSpec {
    title: String,
    shape: Vec<usize>,
    channels: usize,
    preset: String,
    set: Vec<String>,
    batch: Option<usize>,
    models: Vec<String>,
}

fn bench(args: BenchArgs) -> Result<()> {
    if args.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    let device = parse_device(&args.device)?;
    let all = ["asmr", "asmr-plain", "siren"].map(String::from).to_vec();
    let spec =
        |title: &str, shape: &[usize], c: usize, preset: &str, set: &[&str], batch| BenchSpec {
            title: title.into(),
            shape: shape.to_vec(),
            channels: c,
            preset: preset.into(),
            set: set.iter().map(|s| s.to_string()).collect(),
            batch,
            models: all.clone(),
        };
    let specs = if args.suite {
        vec![
            spec(
                "512 x 512 gray, 4 x 256 [4,4,4,8] (low-mac-4)",
                &[512, 512],
                1,
                "low-mac-4",
                &[],
                None,
            ),
            spec(
                "512 x 512 gray, 7 x 256 [2,2,2,2,2,2,8] (low-mac-1)",
                &[512, 512],
                1,
                "low-mac-1",
                &[],
                None,
            ),
            spec(
                "768 x 512 RGB, kodak preset",
                &[512, 768],
                3,
                "kodak",
                &[],
                None,
            ),
            spec(
                "32,000-sample audio, 4 x 128 [10,10,16,20]",
                &[32000],
                1,
                "image",
                &[
                    "net.hidden=128",
                    "net.bases=[10,10,16,20]",
                    "net.coord_range=5",
                ],
                None,
            ),
            spec(
                "2^18-sample minibatch of a 2268 x 1512 RGB image, 6 x 512, automatic bases",
                &[1512, 2268],
                3,
                "image",
                &["net.layers=6", "net.hidden=512"],
                Some(1 << 18),
            ),
        ]
    } else {
        vec![BenchSpec {
            title: format!(
                "{:?} x {}, preset {}",
                args.shape, args.channels, args.preset
            ),
            shape: args.shape.clone(),
            channels: args.channels,
            preset: args.preset.clone(),
            set: args.set.clone(),
            batch: args.batch,
            models: args.models.clone(),
        }]
    };
    // Every case's config is checked before the first one is timed.
    let tables = specs
        .into_iter()
        .map(|spec| bench_cases(&spec).map(|cases| (spec, cases)))
        .collect::<Result<Vec<_>>>()?;
    println!(
        "{} timed repeats after one warm-up, medians; {} kernel threads",
        args.repeats,
        asmr_core::kernels::num_threads()
    );
    for (spec, cases) in tables {
        bench_table(&spec, cases, args.repeats, &device, args.json)?;
    }
    Ok(())
}

/// One case per model of a table (`NAME-plain`: that model with the fused CPU kernels off).
fn bench_cases(spec: &BenchSpec) -> Result<Vec<(String, asmr_core::bench::BenchCase)>> {
    spec.models
        .iter()
        .map(|name| {
            let (model, fused) = match name.strip_suffix("-plain") {
                Some(model) => (model, false),
                None => (name.as_str(), true),
            };
            let mut builder = ConfigBuilder::new();
            builder.merge_yaml(find_preset(&spec.preset)?.yaml, &spec.preset)?;
            for pair in &spec.set {
                builder.set_pair(pair)?;
            }
            builder.set("model", model)?;
            let config = builder.build()?;
            // The profile resolves the model and its grid on the shape without building weights.
            let ctx = ModelContext::new(config.net.clone(), &spec.shape, spec.channels);
            (find_model(&config.model)?.profile)(&ctx)?;
            let case = asmr_core::bench::BenchCase {
                config,
                batch: spec.batch,
                fused,
            };
            Ok((name.clone(), case))
        })
        .collect()
}

fn bench_table(
    spec: &BenchSpec,
    cases: Vec<(String, asmr_core::bench::BenchCase)>,
    repeats: usize,
    device: &Device,
    json: bool,
) -> Result<()> {
    use asmr_core::bench::{bench_model, synthetic_signal};
    let signal = synthetic_signal(&spec.shape, spec.channels)?;
    let mut results = Vec::new();
    for (name, case) in cases {
        eprintln!("{}: timing {name} ...", spec.title);
        let r = bench_model(&case, &signal, repeats, device)?;
        if json {
            println!("{}", serde_json::to_string(&r)?);
        }
        results.push(r);
    }
    if json {
        return Ok(());
    }
    let base = &results[0];
    let what = if spec.batch.is_some() {
        "batch"
    } else {
        "full grid"
    };
    println!("\n**{}** ({what})\n", spec.title);
    let gpu = results.iter().any(|r| r.peak_gpu_bytes.is_some());
    println!(
        "| model | params | MACs/sample | train step (s) | x {b} | samples/s | inference (s) | x {b} | peak RSS |{}",
        if gpu { " peak GPU memory |" } else { "" },
        b = base.model
    );
    println!(
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|{}",
        if gpu { "---:|" } else { "" }
    );
    for r in &results {
        let gpu_col = match r.peak_gpu_bytes {
            Some(b) => format!(" {:.0} MB |", b as f64 / 1e6),
            None if gpu => " |".to_string(),
            None => String::new(),
        };
        println!(
            "| {} | {} | {:.1} | {:.4} | {} | {:.3e} | {:.4} | {} | {:.0} MB |{gpu_col}",
            r.model,
            r.params,
            r.macs_per_sample,
            r.step_median(),
            ratio(r.step_median() / base.step_median()),
            r.samples_per_second(),
            r.infer_median(),
            ratio(r.infer_median() / base.infer_median()),
            r.peak_rss_bytes.unwrap_or(0) as f64 / 1e6
        );
    }
    Ok(())
}

/// A time ratio with two significant digits below 1 (0.038), one decimal above (24.0).
fn ratio(x: f64) -> String {
    if x > 0.0 && x < 1.0 {
        let digits = (1.0 - x.log10().floor()).min(9.0) as usize;
        format!("{x:.digits$}")
    } else {
        format!("{x:.1}")
    }
}

fn list() {
    println!("modalities:");
    for m in modalities() {
        println!(
            "  {:<10} {} (default preset: {})",
            m.name, m.description, m.default_preset
        );
    }
    println!("models:");
    for m in models() {
        println!("  {:<10} {}", m.name, m.description);
    }
    println!("presets:");
    for p in presets() {
        println!("  {:<10} [{}] {}", p.name, p.modality, p.description);
    }
}

fn info(path: &Path) -> Result<()> {
    let ckpt = checkpoint::load(path, &Device::Cpu)?;
    let m = &ckpt.meta;
    println!("checkpoint      {} ({:?})", path.display(), m.kind);
    println!(
        "signal          {} {:?} x {} from {}",
        m.signal.modality, m.signal.shape, m.signal.channels, m.signal.source
    );
    println!("model           {}", m.config.model);
    if let Some(g) = &m.grid {
        println!("bases           {:?} (grid {:?})", g.bases(), g.shape());
    }
    println!(
        "step            {} (best {:.2} dB at step {})",
        m.step, m.best_psnr, m.best_step
    );
    println!("training time   {:.1} s", m.elapsed_seconds);
    let mut ctx = ModelContext::new(m.config.net.clone(), &m.signal.shape, m.signal.channels);
    ctx.grid = m.grid.clone();
    if let Ok(entry) = find_model(&m.config.model) {
        if let Ok(p) = (entry.profile)(&ctx) {
            println!("params          {}", p.params);
            println!("MACs/sample     {:.4}", p.macs_per_sample);
        }
    }
    println!("config:\n{}", m.config.to_yaml().trim_end());
    Ok(())
}
