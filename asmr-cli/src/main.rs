//! `asmr-cli`: fit coordinate networks to signals, render checkpoints, profile models.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use asmr_core::candle_core::Device;
use asmr_core::config::{assemble, Base, Layers, OptionKind};
use asmr_core::kernels::Kernels;
use asmr_core::models::{find_model, models, ModelContext};
use asmr_core::registry::{find_modality, modalities, presets};
use asmr_core::{checkpoint, run, Bases, Config};
use clap::error::{ContextKind, ErrorKind};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

mod interrupt;
mod many;
mod options;
mod progress;

// Plugin crates register through `inventory`; naming them keeps the linker from dropping them.
use modality_array as _;
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
    /// Fit a model to a signal and write a run folder (`fit MODALITY --help` lists its options).
    Fit(Box<FitArgs>),
    /// Render the signal a checkpoint holds (activation-sharing forward) to a file.
    Render {
        /// A run's model.safetensors (or state.safetensors: its best step's weights).
        checkpoint: PathBuf,
        /// Output file, in the format of the checkpoint's modality (out.png, out.wav, out.npy...).
        #[arg(long)]
        out: PathBuf,
        /// cpu, cuda, cuda:N or auto.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Render only a box: X,Y,W,H for images; START,LEN per axis (axis order) otherwise.
        #[arg(long, value_delimiter = ',')]
        region: Option<Vec<usize>>,
    },
    /// MACs per sample and parameters of a model on a signal shape (docs/method.md, "Cost").
    Profile(ProfileArgs),
    /// Time training steps and full-grid inference of several models on one signal shape.
    Bench(BenchArgs),
    /// Registered modalities, models and presets.
    List,
    /// Every configuration key with its default and what it means (a modality's `data` keys
    /// with a modality named).
    Config {
        /// Modality whose `data` section to include.
        modality: Option<String>,
    },
    /// What a checkpoint holds.
    Info {
        /// A run's model.safetensors or state.safetensors.
        checkpoint: PathBuf,
    },
    /// A table over run folders: per model and preset, each metric's mean ± std over signals and
    /// seeds, with MACs per sample, parameters and wall time (Markdown on stdout; summary.md,
    /// .csv, .json and a quality-against-MACs plot summary.png in --out).
    Summary {
        /// Folders searched (recursively) for run folders.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where the summary files go (default: the first folder).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run one of the paper's experiments (see `list`) on a folder of data, then write its table.
    Reproduce(ReproduceArgs),
}

#[derive(Args)]
struct ReproduceArgs {
    /// Experiment name: low-mac, image, megapixel, audio, video, shapes.
    experiment: String,
    /// Folder holding the experiment's inputs.
    #[arg(long)]
    data: PathBuf,
    /// Root of the run folders and the summary (default runs/reproduce-<experiment>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// List the runs with their estimated time (from a few timed steps) instead of running them.
    #[arg(long)]
    plan: bool,
    /// Seeds (default: the experiment's three).
    #[arg(long, value_delimiter = ',')]
    seeds: Vec<u64>,
    /// Optimisation steps of every run (few, for a quick look); default: each preset's own.
    #[arg(long)]
    iterations: Option<usize>,
    /// Override one key of every run, e.g. --set train.epochs=1 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Fit only shard I of N of the run list (inside a Slurm job array: the array task's).
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args)]
struct FitArgs {
    /// Modality name (see `list`).
    modality: String,
    /// Input files; without one the modality's built-in example is fitted. Several files, a
    /// folder, a quoted glob ('photos/*.png') or a manifest (.txt, one path per line) make a
    /// dataset run: one run folder per signal, model, preset and seed under --out.
    inputs: Vec<PathBuf>,
    /// Model name (asmr, siren, ...); overrides the preset's `model`. Several (asmr,siren) make a
    /// dataset run.
    #[arg(long, value_delimiter = ',')]
    model: Vec<String>,
    /// Named preset (see `list`); default: the modality's own. Several make a dataset run.
    #[arg(long, value_delimiter = ',')]
    preset: Vec<String>,
    /// Dataset run: one run per seed (1,2,3).
    #[arg(long, value_delimiter = ',')]
    seeds: Vec<u64>,
    /// Dataset run: fit only shard I of N (1 <= I <= N) of the run list; inside a Slurm job array
    /// the shard is the array task's.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// YAML file layered over the preset.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override one key, e.g. --set net.hidden=128 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Run folder (default runs/<modality>-<model>-<time>/; the checkpoint's folder when resuming).
    /// For a dataset run, the folder that holds its run folders and summary.
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
    /// Bases, e.g. 4,4,4,8: given once, for every axis; repeat the flag for one list per axis,
    /// in axis order (--bases 4,4,4,8 --bases 4,4,6,8). Default: automatic.
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
    /// Preset giving the net config (layers, hidden, bases...). Default: low-mac-4 (ASMR 4 x 256),
    /// with its bases where they fit the shape and automatic bases elsewhere.
    #[arg(long)]
    preset: Option<String>,
    /// Override one key, e.g. --set net.hidden=128 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Minibatches of about N samples (the uniform grid sampler's, as `fit` draws them) instead
    /// of full-grid steps.
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
            if let Some(asmr_core::Error::Interrupted { state, .. }) = e.downcast_ref() {
                eprintln!("{}; continue with --resume {}", report(&e), state.display());
                return ExitCode::from(interrupt::EXIT_CODE);
            }
            if let Some(stopped) = e.downcast_ref::<interrupt::Stopped>() {
                eprintln!("{stopped}");
                return ExitCode::from(interrupt::EXIT_CODE);
            }
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

/// Flags of `fit` that take no value (the command-line scan for the modality skips the value of
/// every other flag).
fn fit_switches() -> Vec<&'static str> {
    let mut s = vec!["quiet", "overwrite", "help"];
    for m in modalities() {
        s.extend(
            m.config
                .options
                .iter()
                .filter(|o| o.kind == OptionKind::Switch)
                .map(|o| o.flag),
        );
    }
    s
}

/// Writing to a closed pipe (`asmr-cli list | head -1`) ends the process quietly, as it does for
/// other command-line tools, instead of panicking inside `println!`.
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: restores the default disposition of SIGPIPE at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn real_main() -> Result<()> {
    quiet_on_closed_pipe();
    interrupt::install();
    asmr_core::kernels::keep_freed_memory();
    let argv: Vec<String> = std::env::args().collect();
    let modality = options::modality_in(&argv, &fit_switches());
    let generated = options::fit_options(modality);
    let command = Cli::command().mut_subcommand("fit", |c| c.args(options::args(&generated)));
    let matches = match command.try_get_matches_from(&argv) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::UnknownArgument => bail!(unknown_option(&e, modality)),
        Err(e) => e.exit(),
    };
    let cli = Cli::from_arg_matches(&matches)?;
    match cli.command {
        Command::Fit(args) => {
            let given = matches
                .subcommand_matches("fit")
                .map(|m| options::given(&generated, m))
                .unwrap_or_default();
            fit(*args, given)
        }
        Command::Render {
            checkpoint,
            out,
            device,
            region,
        } => {
            let device = parse_device(&device)?;
            let ranges = region.map(|r| region_ranges(&r)).transpose()?;
            let info = asmr_core::render::render(&checkpoint, &out, &device, ranges.as_deref())?;
            eprintln!(
                "rendered {} {} x {} to {}",
                info.modality,
                describe_shape(&info.modality, &info.shape),
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
        Command::Config { modality } => {
            let m = modality.as_deref().map(find_modality).transpose()?;
            print!("{}", asmr_core::config::documented_defaults(m)?);
            Ok(())
        }
        Command::Info { checkpoint } => info(&checkpoint),
        Command::Summary { dirs, out } => summary(&dirs, out.as_deref()),
        Command::Reproduce(args) => reproduce(args),
    }
}

/// One line for an option clap does not know: when another modality takes it, say so.
fn unknown_option(e: &clap::Error, modality: Option<&asmr_core::Modality>) -> String {
    let arg = e
        .get(ContextKind::InvalidArg)
        .map(|v| v.to_string())
        .unwrap_or_default();
    let flag = arg.trim_start_matches('-').split('=').next().unwrap_or("");
    let owners = options::modalities_with_flag(flag);
    match modality {
        Some(m) if !owners.is_empty() => format!(
            "{arg} does not apply to {} inputs (it is an option of {} inputs)",
            m.name,
            owners.join(", ")
        ),
        _ => format!("unknown option {arg} (see --help)"),
    }
}

/// `200 x 256 (height x width)` for images, the axes joined by ` x ` otherwise.
fn describe_shape(modality: &str, shape: &[usize]) -> String {
    let axes = shape
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(" x ");
    match (modality, shape.len()) {
        ("image", 2) => format!("{axes} (height x width)"),
        ("video", 3) => format!("{axes} (frames x height x width)"),
        _ => axes,
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

/// A dataset run rather than one fit: several inputs, models, presets or seeds, a folder, glob or
/// manifest, or a shard.
fn is_dataset(args: &FitArgs, extensions: &[&str]) -> bool {
    let one_file = match args.inputs.as_slice() {
        [] => true,
        [p] => p.is_file() && !asmr_core::dataset::is_manifest(p, extensions),
        _ => false,
    };
    let globbed = args.inputs.len() == 1
        && !args.inputs[0].exists()
        && args.inputs[0].to_string_lossy().contains(['*', '?', '[']);
    !one_file
        || globbed
        || args.model.len() > 1
        || args.preset.len() > 1
        || !args.seeds.is_empty()
        || args.shard.is_some()
}

fn fit(args: FitArgs, given: Vec<(String, OptionKind, String)>) -> Result<()> {
    let modality = find_modality(&args.modality)?;
    if is_dataset(&args, modality.extensions) {
        return fit_dataset(args, given, modality);
    }
    fit_single(args, given, modality)
}

/// `fit` over many inputs, models, presets and seeds: one run folder each under `--out`.
fn fit_dataset(
    args: FitArgs,
    given: Vec<(String, OptionKind, String)>,
    modality: &'static asmr_core::Modality,
) -> Result<()> {
    if args.resume.is_some() || args.overwrite {
        bail!(
            "--resume and --overwrite apply to one run; a dataset run skips its finished runs and \
             resumes its interrupted ones by itself"
        );
    }
    if args.inputs.is_empty() {
        bail!("a dataset run (several models, presets or seeds, or --shard) needs input files");
    }
    let device = parse_device(&args.device)?;
    let inputs = asmr_core::dataset::expand_inputs(&args.inputs, modality.extensions)?;
    let files: Vec<&Path> = args.config.as_deref().into_iter().collect();
    let shared = many::Shared {
        modality,
        files,
        sets: &args.set,
        options: &given,
    };
    let presets = if args.preset.is_empty() {
        vec![modality.default_preset.to_string()]
    } else {
        args.preset.clone()
    };
    let recipes = shared.recipes(&args.model, &presets)?;
    let seeds = if args.seeds.is_empty() {
        vec![shared.config(None, &presets[0], None)?.train.seed]
    } else {
        args.seeds.clone()
    };
    let runs = asmr_core::dataset::run_list(&inputs, &recipes, &seeds);
    let shard = many::shard_of(args.shard.as_deref())?;
    let root = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!(
            "{}-dataset-{}",
            modality.name,
            asmr_core::output::timestamp()
        ))
    });
    many::run_all(&shared, &runs, &root, shard, &device, args.quiet)
}

fn fit_single(
    args: FitArgs,
    mut given: Vec<(String, OptionKind, String)>,
    modality: &'static asmr_core::Modality,
) -> Result<()> {
    let input = args.inputs.first().cloned();
    let preset_arg = args.preset.first().cloned();
    let device = parse_device(&args.device)?;
    // Options of the input only mean something for a file.
    if input.is_none() {
        let data_set = args.set.iter().any(|p| p.trim_start().starts_with("data."));
        if data_set || given.iter().any(|(k, _, _)| k.starts_with("data.")) {
            let flags: Vec<String> = modality
                .config
                .options
                .iter()
                .map(|o| format!("--{}", o.flag))
                .collect();
            bail!(
                "options of {} inputs ({}) apply to an input file",
                modality.name,
                flags.join(", ")
            );
        }
    }
    let saved;
    let base = match &args.resume {
        Some(path) => {
            if preset_arg.is_some() {
                bail!("--preset cannot be combined with --resume: the checkpoint's config is used");
            }
            saved = checkpoint::load(path, &Device::Cpu)?.meta.config;
            Base::Saved(&saved)
        }
        None => Base::Preset(match (&preset_arg, &input) {
            (Some(p), _) => p.as_str(),
            (None, Some(_)) => modality.default_preset,
            (None, None) => modality.example_preset,
        }),
    };
    let preset_name = match base {
        Base::Preset(p) => Some(p.to_string()),
        _ => None,
    };
    if let Some(m) = args.model.first() {
        given.insert(0, ("model".into(), OptionKind::Word, m.clone()));
    }
    let files: Vec<&Path> = args.config.as_deref().into_iter().collect();
    let config = assemble(&Layers {
        modality: Some(modality),
        base,
        files: &files,
        sets: &args.set,
        options: &given,
    })?;
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
        let state = out_dir.join(run::STATE_FILE);
        match run::earlier_run(&out_dir) {
            run::EarlierRun::None => {}
            run::EarlierRun::Unstarted => {
                if !args.quiet {
                    eprintln!(
                        "note: {} holds a run stopped before its first checkpoint; starting it \
                         again",
                        out_dir.display()
                    );
                }
            }
            run::EarlierRun::Interrupted => bail!(
                "--out {}: holds an interrupted run; continue it with --resume {}, choose another \
                 folder, or replace it with --overwrite",
                out_dir.display(),
                state.display()
            ),
            run::EarlierRun::Finished => bail!(
                "--out {}: holds a finished run; choose another folder, extend it with --resume \
                 {} --iterations N, or replace it with --overwrite",
                out_dir.display(),
                state.display()
            ),
        }
    }
    // The paper's schedule (lr 1e-4) needs thousands of steps before ASMR's fit looks right.
    let slow_start = config.model == "asmr" && config.train.lr <= 1e-4 + 1e-12;
    if slow_start && !config.train.minibatch() && config.train.iterations < 1000 && !args.quiet {
        eprintln!(
            "note: ASMR at lr {:e} (the paper's schedule) starts slowly: {} steps give a rough, \
             blocky fit; --set train.lr=1e-3 gets much further in a short run",
            config.train.lr, config.train.iterations
        );
    }
    let signal = load_with_spinner(modality, input.as_deref(), &config.data, args.quiet)?;
    for note in &signal.notes {
        eprintln!("warning: {note}");
    }
    let mut progress = progress::Progress::new(args.quiet);
    let report = run::fit(run::FitRequest {
        modality,
        signal,
        config,
        out_dir,
        device,
        resume: args.resume.as_deref(),
        preset: preset_name,
        observer: &mut progress,
    })?;
    drop(progress);
    summarise(&report, modality);
    Ok(())
}

/// Load the input, with a spinner while it takes (decoding a video, voxelising a mesh).
fn load_with_spinner(
    modality: &'static asmr_core::Modality,
    input: Option<&Path>,
    data: &asmr_core::config::Value,
    quiet: bool,
) -> Result<asmr_core::Signal> {
    let Some(path) = input.filter(|_| !quiet) else {
        return Ok(run::load_signal(modality, input, data)?);
    };
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message(format!("reading {} ({})", path.display(), modality.name));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let signal = run::load_signal(modality, input, data);
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

fn summarise(r: &run::FitReport, modality: &asmr_core::Modality) {
    println!(
        "{} on {}: {} at step {}{} of {} ({}, {:.2} steps/s)",
        r.model,
        r.source,
        (modality.summary)(&r.quality),
        r.best_step,
        if r.best_is_average {
            " (weight average)"
        } else {
            ""
        },
        r.steps,
        progress::duration(r.wall_seconds),
        r.steps_per_second
    );
    if let Some(b) = &r.bases {
        println!("bases per axis: {b:?}");
    }
    println!(
        "params {}, {:.2} MACs/sample, {:.3} bits/sample",
        r.params, r.macs_per_sample, r.bits_per_sample
    );
    println!(
        "results in {}/ ({})",
        r.out_dir.display(),
        r.files().join(", ")
    );
}

fn summary(dirs: &[PathBuf], out: Option<&Path>) -> Result<()> {
    let (table, n) = asmr_core::summary::summarise_dirs(dirs)?;
    let out = out.unwrap_or(&dirs[0]);
    let files = table.write(out)?;
    print!("{}", table.markdown());
    eprintln!(
        "{n} runs; written: {}",
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

fn reproduce(args: ReproduceArgs) -> Result<()> {
    let exp = asmr_core::registry::find_experiment(&args.experiment)?;
    let modality = find_modality(exp.modality)?;
    let device = parse_device(&args.device)?;
    let inputs = exp.inputs(&args.data)?;
    let mut sets = args.set.clone();
    if let Some(n) = args.iterations {
        sets.push(format!("train.iterations={n}"));
    }
    let shared = many::Shared {
        modality,
        files: Vec::new(),
        sets: &sets,
        options: &[],
    };
    let recipes: Vec<(String, String)> = exp
        .recipes
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    // Every recipe's configuration is checked before anything runs.
    for (m, p) in &recipes {
        shared.config(Some(m), p, None)?;
    }
    let seeds = if args.seeds.is_empty() {
        exp.seeds.to_vec()
    } else {
        args.seeds.clone()
    };
    let runs = asmr_core::dataset::run_list(&inputs, &recipes, &seeds);
    let shard = many::shard_of(args.shard.as_deref())?;
    if args.plan {
        return print_plan(&shared, &runs, shard, &device, exp);
    }
    let root = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("reproduce-{}", exp.name)));
    many::run_all(&shared, &runs, &root, shard, &device, args.quiet)
}

fn print_plan(
    shared: &many::Shared,
    runs: &[asmr_core::dataset::RunSpec],
    shard: asmr_core::dataset::Shard,
    device: &Device,
    exp: &asmr_core::Experiment,
) -> Result<()> {
    eprintln!(
        "{}: {} ({} runs; timing a few steps of each recipe on each input)",
        exp.name,
        exp.description,
        runs.len()
    );
    let plan = many::plan(shared, runs, shard, device)?;
    let mut total = 0.0;
    println!("| run | estimated time |\n|---|---:|");
    for (spec, secs, err) in &plan {
        let cell = match secs {
            Some(s) => {
                total += s;
                progress::duration(*s)
            }
            None => format!("cannot run: {err}"),
        };
        println!("| {} | {cell} |", spec.label());
    }
    let of_shard = if shard == asmr_core::dataset::Shard::WHOLE {
        String::new()
    } else {
        format!(" (shard {shard})")
    };
    println!(
        "\n{} runs{of_shard}, about {} in all on {device:?}",
        plan.len(),
        progress::duration(total)
    );
    Ok(())
}

fn profile(args: ProfileArgs) -> Result<()> {
    let mut options = vec![
        ("model".to_string(), OptionKind::Word, args.model.clone()),
        (
            "net.layers".into(),
            OptionKind::Value,
            args.layers.to_string(),
        ),
        (
            "net.hidden".into(),
            OptionKind::Value,
            args.hidden.to_string(),
        ),
        (
            "net.modulator".into(),
            OptionKind::Word,
            args.modulator.clone(),
        ),
    ];
    // A preset's bases fit its own signal shape; --bases sets them here.
    if args.preset.is_some() {
        options.insert(0, ("net.bases".into(), OptionKind::Value, "auto".into()));
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
    let mut config: Config = assemble(&Layers {
        modality: None,
        base: args.preset.as_deref().map_or(Base::Defaults, Base::Preset),
        files: &[],
        sets: &args.set,
        options: &options,
    })?;
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
    /// The preset was not asked for: bases it fixes that do not fit the shape become automatic.
    bases_may_change: bool,
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
            bases_may_change: false,
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
        let preset = args.preset.clone().unwrap_or_else(|| "low-mac-4".into());
        vec![BenchSpec {
            title: format!("{:?} x {}, preset {preset}", args.shape, args.channels),
            shape: args.shape.clone(),
            channels: args.channels,
            preset,
            set: args.set.clone(),
            batch: args.batch,
            models: args.models.clone(),
            bases_may_change: args.preset.is_none(),
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
            let (model, kernels) = match name.strip_suffix("-plain") {
                Some(model) => (model, Kernels::Plain),
                None => (name.as_str(), Kernels::Fused),
            };
            let assembled = |auto_bases: bool| -> Result<Config> {
                let mut options = vec![("model".into(), OptionKind::Word, model.into())];
                if auto_bases {
                    options.push(("net.bases".into(), OptionKind::Value, "auto".into()));
                }
                let config = assemble(&Layers {
                    modality: None,
                    base: Base::Preset(&spec.preset),
                    files: &[],
                    sets: &spec.set,
                    options: &options,
                })?;
                // The profile resolves the model and its grid on the shape without building
                // weights.
                let ctx = ModelContext::new(config.net.clone(), &spec.shape, spec.channels);
                (find_model(&config.model)?.profile)(&ctx)?;
                Ok(config)
            };
            let config = match assembled(false) {
                Err(e)
                    if spec.bases_may_change
                        && matches!(
                            e.downcast_ref::<asmr_core::Error>(),
                            Some(asmr_core::Error::Config { key, .. }) if key == "net.bases"
                        ) =>
                {
                    assembled(true)?
                }
                other => other?,
            };
            let case = asmr_core::bench::BenchCase {
                config,
                batch: spec.batch,
                kernels,
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
    let prep = spec.batch.is_some();
    println!(
        "| model | params | MACs/sample | train step (s) | x {b} | samples/s | inference (s) | x {b} |{} peak RSS |{}",
        if prep { " batch plan (s) |" } else { "" },
        if gpu { " peak GPU memory |" } else { "" },
        b = base.model
    );
    println!(
        "|---|---:|---:|---:|---:|---:|---:|---:|{}---:|{}",
        if prep { "---:|" } else { "" },
        if gpu { "---:|" } else { "" }
    );
    for r in &results {
        let gpu_col = match r.peak_gpu_bytes {
            Some(b) => format!(" {:.0} MB |", b as f64 / 1e6),
            None if gpu => " |".to_string(),
            None => String::new(),
        };
        let prep_col = match (prep, r.prepare_median()) {
            (false, _) => String::new(),
            (true, Some(s)) => format!(" {s:.4} |"),
            (true, None) => " — |".to_string(),
        };
        println!(
            "| {} | {} | {:.1} | {:.4} | {} | {:.3e} | {:.4} | {} |{prep_col} {:.0} MB |{gpu_col}",
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
    let width = |names: &mut dyn Iterator<Item = &str>| names.map(str::len).max().unwrap_or(0);
    println!("modalities:");
    let w = width(&mut modalities().iter().map(|m| m.name));
    for m in modalities() {
        println!(
            "  {:<w$}  {} (default preset: {})",
            m.name, m.description, m.default_preset
        );
    }
    println!("models:");
    let w = width(&mut models().iter().map(|m| m.name));
    for m in models() {
        println!("  {:<w$}  {}", m.name, m.description);
    }
    println!("training strategies (train.strategy; auto and grid serve every modality):");
    let w = width(&mut asmr_core::registry::strategies().iter().map(|s| s.name));
    for s in asmr_core::registry::strategies() {
        println!("  {:<w$}  [{}] {}", s.name, s.modality, s.description);
    }
    println!("presets (the numbers are read from each preset's configuration):");
    let w = width(&mut presets().iter().map(|p| p.name));
    for p in presets() {
        let recipe = preset_recipe(p.name).unwrap_or_else(|e| format!("(invalid: {e})"));
        println!(
            "  {:<w$}  [{}] {recipe}; {}",
            p.name, p.modality, p.description
        );
    }
    println!("experiments (asmr-cli reproduce NAME --data DIR):");
    let experiments = asmr_core::registry::experiments();
    let w = width(&mut experiments.iter().map(|e| e.name));
    for e in experiments {
        let rows: Vec<String> = e.recipes.iter().map(|(m, p)| format!("{m}/{p}")).collect();
        println!(
            "  {:<w$}  [{}] {}; {} x {} seeds on {}",
            e.name,
            e.modality,
            e.description,
            rows.join(", "),
            e.seeds.len(),
            e.expects
        );
    }
}

/// A preset's network and schedule, from its assembled configuration:
/// `asmr 4x128, bases auto, 300 steps, lr 1e-3`.
fn preset_recipe(name: &str) -> Result<String> {
    let c = assemble(&Layers {
        modality: None,
        base: Base::Preset(name),
        files: &[],
        sets: &[],
        options: &[],
    })?;
    let bases = match &c.net.bases {
        Bases::Auto => "auto".to_string(),
        Bases::All(b) => format!("{b:?}"),
        Bases::PerAxis(b) => b
            .iter()
            .map(|l| format!("{l:?}"))
            .collect::<Vec<_>>()
            .join(" x "),
    };
    let schedule = match (c.train.minibatch(), c.train.epochs) {
        (true, Some(epochs)) => format!("{epochs} epochs of {}-sample batches", c.train.batch),
        (true, None) => format!(
            "{} steps of {}-sample batches",
            c.train.iterations, c.train.batch
        ),
        (false, _) => format!("{} steps", c.train.iterations),
    };
    let recipe = match c.train.recipe {
        asmr_core::config::Recipe::Paper => "paper recipe",
        asmr_core::config::Recipe::Fast => "fast recipe",
    };
    Ok(format!(
        "{} {}x{}, bases {bases}, {schedule}, {recipe} (lr {:e})",
        c.model, c.net.layers, c.net.hidden, c.train.lr
    ))
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
