//! A fit from start to finish, shared by every modality: load, build, train, then write the run
//! folder (`model.safetensors`, `state.safetensors`, `config.yaml`, `log.csv`, `metrics.json`,
//! `psnr.png` and the reconstruction). Everything that can be checked is checked before the folder
//! is created, and every file is written atomically.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::Device;
use serde_json::{json, Map, Value};

use crate::checkpoint;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::models::{BuiltModel, ModelContext};
use crate::output::write_bytes_atomic;
use crate::params::ParamStore;
use crate::plot::psnr_curve;
use crate::registry::{LoadOptions, Modality};
use crate::sampler::GridSampler;
use crate::signal::{Signal, SignalInfo};
use crate::trainer::{StepRecord, Trainer};

pub const MODEL_FILE: &str = "model.safetensors";
pub const STATE_FILE: &str = "state.safetensors";
pub const LOG_FILE: &str = "log.csv";
pub const METRICS_FILE: &str = "metrics.json";
pub const CONFIG_FILE: &str = "config.yaml";
pub const PLOT_FILE: &str = "psnr.png";

/// The signal a fit works on: the file given, or the modality's built-in example.
pub fn load_signal(
    modality: &Modality,
    input: Option<&Path>,
    options: &LoadOptions,
) -> Result<Signal> {
    match input {
        None => Ok((modality.example)()),
        Some(p) => {
            if !p.exists() {
                return Err(Error::input(p, "no such file"));
            }
            if p.is_dir() {
                return Err(Error::input(p, "is a directory, not a file"));
            }
            (modality.load)(p, options)
        }
    }
}

/// The first file of an earlier run that `dir` holds, if any: a new fit there would replace it.
pub fn earlier_run_file(dir: &Path) -> Option<&'static str> {
    [METRICS_FILE, MODEL_FILE, STATE_FILE, LOG_FILE, CONFIG_FILE]
        .into_iter()
        .find(|f| dir.join(f).exists())
}

pub struct FitRequest<'a> {
    pub modality: &'static Modality,
    pub signal: Signal,
    pub config: Config,
    pub out_dir: PathBuf,
    pub device: Device,
    /// A `state.safetensors` to continue from.
    pub resume: Option<&'a Path>,
    pub quiet: bool,
}

pub struct FitReport {
    pub out_dir: PathBuf,
    pub metrics: Map<String, Value>,
}

/// Build the model a config describes for a signal (the seed draws new parameters).
pub fn build_model(config: &Config, info: &SignalInfo, device: &Device) -> Result<BuiltModel> {
    let ctx = ModelContext::new(config.net.clone(), &info.shape, info.channels);
    BuiltModel::new(
        &config.model,
        ctx,
        ParamStore::seeded(config.train.seed),
        device,
    )
}

pub fn fit(req: FitRequest) -> Result<FitReport> {
    let FitRequest {
        modality,
        signal,
        config,
        out_dir,
        device,
        resume,
        quiet,
    } = req;
    let mut config = config;
    let built = build_model(&config, &signal.info, &device)?;
    if resume.is_none() && !config.train.minibatch() {
        let need = full_grid_bytes(&built);
        let budget = memory_budget(&config, &device);
        if need > budget {
            // Too large for full-grid steps: minibatches of 2^18 samples, about as many steps.
            let batch = AUTO_BATCH.min(signal.info.num_samples());
            let per_epoch = signal.info.num_samples().div_ceil(batch);
            config.train.batch = batch;
            config.train.epochs = (config.train.iterations / per_epoch).max(1);
            if !quiet {
                eprintln!(
                    "note: a full-grid step would need about {:.1} GiB (budget {:.1} GiB): \
                     training on minibatches of {batch} samples for {} epochs instead",
                    need as f64 / GIB,
                    budget as f64 / GIB,
                    config.train.epochs
                );
            }
        }
    }
    let mut trainer = Trainer::new(&built, &signal, &config.train)?;
    let sampler = if config.train.minibatch() {
        let s = GridSampler::new(
            &signal.info.shape,
            &config.train.sampler_grid,
            config.train.batch,
            config.train.seed,
        )?;
        trainer.set_steps_per_epoch(s.batches_per_epoch());
        Some(s)
    } else {
        None
    };
    if let Some(path) = resume {
        let ckpt = checkpoint::load(path, &device)?;
        check_resumable(&ckpt.meta, &config, &signal, path)?;
        trainer.resume(&ckpt, path)?;
    }
    let profile = built.profile()?;

    fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
    write_bytes_atomic(&out_dir.join(CONFIG_FILE), config.to_yaml().as_bytes())?;
    let mut log = LogWriter::open(&out_dir.join(LOG_FILE), trainer.step)?;

    let state_path = out_dir.join(STATE_FILE);
    let every = config.train.checkpoint_every;
    let mut observe = |t: &mut Trainer, rec: &StepRecord| -> Result<()> {
        log.push(rec)?;
        if let Some(s) = &sampler {
            let spe = s.batches_per_epoch();
            let epoch = t.step / spe;
            // Every eval_every epochs, and at the end (which a time limit may put mid-epoch).
            if (t.step.is_multiple_of(spe) && epoch.is_multiple_of(config.train.eval_every))
                || t.is_done()
            {
                let psnr = evaluate_psnr(&built, &signal)?;
                t.record_evaluation(psnr)?;
                if !quiet {
                    eprintln!(
                        "epoch {epoch}/{}: PSNR {psnr:.2} dB (best {:.2} dB)",
                        config.train.epochs, t.best_psnr
                    );
                }
            }
        }
        if every > 0 && t.step.is_multiple_of(every) && !t.is_done() {
            t.save_state(&state_path, &config, &signal)?;
        }
        Ok(())
    };
    match &sampler {
        None => trainer.run(quiet, &mut observe)?,
        Some(s) => {
            let spe = s.batches_per_epoch();
            let mut order: Option<(usize, Vec<u32>)> = None;
            let mut step = |t: &mut Trainer| -> Result<StepRecord> {
                let (epoch, k) = (t.step / spe, t.step % spe);
                if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
                    order = Some((epoch, s.order(epoch)));
                }
                let idx = s.batch(&order.as_ref().expect("set above").1, k);
                let target = target_rows(&signal, &idx, &device)?;
                t.step_points(&idx, &target)
            };
            trainer.run_with(quiet, &mut step, &mut observe)?;
        }
    }
    log.flush()?;
    trainer.save_state(&state_path, &config, &signal)?;

    // The reconstruction comes from the best step's weights, rendered the way `render` does it.
    // Band by band: the float image is never held whole for a large signal.
    built.params.restore(&trainer.best_params)?;
    let mut quality = (modality.metrics)(&signal);
    let recon = out_dir.join(modality.output_file);
    let mut writer = (modality.writer)(&signal.info, &recon)?;
    let mut whole = Vec::new();
    for_each_band(&built, &mut |rows, band| {
        quality.add(rows, band)?;
        if modality.extras.is_some() {
            whole.extend_from_slice(band);
        }
        writer.write_band(band)
    })?;
    writer.finish()?;
    let quality = quality.finish()?;
    let extra_files = match modality.extras {
        Some(f) => f(&signal, &whole, &out_dir)?,
        None => Vec::new(),
    };
    drop(whole);
    trainer.save_best(&out_dir.join(MODEL_FILE), &config, &signal)?;

    let curve = log.points();
    let title = format!(
        "{} {} on {}",
        modality.name, config.model, signal.info.source
    );
    psnr_curve(&curve, &title, &out_dir.join(PLOT_FILE))?;

    let wall = trainer.elapsed();
    let samples = signal.info.num_samples();
    let mut m = Map::new();
    for (k, v) in &quality {
        m.insert(k.clone(), json!(v));
    }
    m.insert("best_step".into(), json!(trainer.best_step));
    m.insert("best_train_psnr".into(), json!(trainer.best_psnr));
    m.insert("steps".into(), json!(trainer.step));
    m.insert("params".into(), json!(profile.params));
    m.insert("macs_per_sample".into(), json!(profile.macs_per_sample));
    m.insert(
        "macs_breakdown".into(),
        Value::Object(
            profile
                .breakdown
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect(),
        ),
    );
    m.insert("model_bytes".into(), json!(profile.model_bytes()));
    m.insert(
        "bits_per_sample".into(),
        json!(profile.bits_per_sample(samples)),
    );
    m.insert("wall_seconds".into(), json!(wall));
    m.insert(
        "steps_per_second".into(),
        json!(trainer.step as f64 / wall.max(1e-9)),
    );
    m.insert("reconstruction".into(), json!(modality.output_file));
    if !extra_files.is_empty() {
        m.insert("extra_files".into(), json!(extra_files));
    }
    m.insert("modality".into(), json!(modality.name));
    m.insert("model".into(), json!(config.model));
    m.insert("source".into(), json!(signal.info.source));
    m.insert("shape".into(), json!(signal.info.shape));
    m.insert("channels".into(), json!(signal.info.channels));
    m.insert("samples".into(), json!(samples));
    if let Some(g) = built.model.grid() {
        m.insert("bases".into(), json!(g.bases()));
        m.insert("grid_shape".into(), json!(g.shape()));
    }
    m.insert("seed".into(), json!(config.train.seed));
    m.insert("device".into(), json!(format!("{device:?}")));
    let text = serde_json::to_string_pretty(&Value::Object(m.clone()))
        .map_err(|e| Error::Invalid(e.to_string()))?;
    write_bytes_atomic(&out_dir.join(METRICS_FILE), text.as_bytes())?;
    Ok(FitReport {
        out_dir,
        metrics: m,
    })
}

const GIB: f64 = (1u64 << 30) as f64;

/// Minibatch size when a signal is too large for full-grid steps.
pub const AUTO_BATCH: usize = 1 << 18;

/// `train.max_memory_gb`, or 80% of the GPU's memory on a GPU, half the machine's RAM on the CPU.
pub fn memory_budget(config: &Config, device: &Device) -> usize {
    if config.train.max_memory_gb > 0.0 {
        return (config.train.max_memory_gb * GIB) as usize;
    }
    match crate::gpu::total_memory(device) {
        // The CUDA context and cuBLAS workspaces take some of it.
        Some(gpu) => gpu / 10 * 8,
        None => physical_memory().map_or(8 << 30, |m| m / 2),
    }
}

/// The most bytes a loaded signal may take in its stored form (8/16-bit or f32): a sixteenth of the
/// RAM, since a fit holds several times the signal (the whole prediction as f32 for the metrics,
/// sampler indices, training buffers), or `ASMR_INPUT_LIMIT_GB`. Loaders check it from a file's
/// header, before decoding.
pub fn input_memory_limit() -> usize {
    let set = std::env::var("ASMR_INPUT_LIMIT_GB")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|g| g.is_finite() && *g > 0.0);
    match set {
        Some(gb) => (gb * GIB) as usize,
        None => physical_memory().map_or(1 << 30, |m| m / 16),
    }
}

/// The error line of an input that would take `need` bytes against `limit` (see
/// [`input_memory_limit`]), or `None` when it fits. `what` names the input (`"a 64^3 field"`),
/// `fix` says what to change.
pub fn input_too_large(what: &str, need: usize, limit: usize, fix: &str) -> Option<String> {
    (need > limit).then(|| {
        format!(
            "{what} takes {}, more than the {} a fit on this machine can hold (a sixteenth of the \
             RAM; ASMR_INPUT_LIMIT_GB sets it): {fix}",
            format_bytes(need),
            format_bytes(limit)
        )
    })
}

/// `8.4 MB`, `4.29 GB`.
pub fn format_bytes(n: usize) -> String {
    if n >= 1_000_000_000 {
        format!("{:.2} GB", n as f64 / 1e9)
    } else {
        format!("{:.1} MB", n as f64 / 1e6)
    }
}

/// The machine's RAM in bytes (Linux `/proc/meminfo`), if it can be read.
pub fn physical_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Rough memory of one full-grid training step: the activations kept for the backward and their
/// gradients (about four `h`-wide f32 buffers per hidden resolution), and per output value the
/// target, prediction, loss terms and their gradients (about twelve f32 buffers) besides index
/// maps per sample. For ASMR on the CPU the last level is fused with the output layer and stores
/// nothing `h`-wide at full resolution. Calibrated on peak RSS of `bench` steps: 3-D ASMR 5 x 256
/// on 20 x 500 x 500 and 20 x 1000 x 1000, 1 and 3 channels (0.5 to 4.0 GB), where 4 buffers per
/// output value underestimated the peak 2.5 times (a 20 x 2000 x 2000 RGB clip then took 13.5 GB
/// against a 12 GB budget).
pub fn full_grid_bytes(built: &BuiltModel) -> usize {
    let net = &built.context.net;
    let n = built.context.num_samples();
    let per_point = 4 * net.hidden * 4;
    let outputs = n * built.context.channels * 12 * 4 + n * 8;
    match built.model.grid() {
        Some(g) => {
            let last_full = if built.device.is_cpu() { 0 } else { 1 };
            let levels = g.levels();
            (1..levels)
                .map(|l| {
                    if l + 1 == levels {
                        last_full * g.resolution(l) * per_point
                    } else {
                        g.resolution(l) * per_point
                    }
                })
                .sum::<usize>()
                + outputs
        }
        None => n * per_point * net.layers.saturating_sub(1) + outputs,
    }
}

/// The model's whole signal as a flat `[N * c]` buffer in the training range.
pub fn predict(built: &BuiltModel) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(built.context.num_samples() * built.context.channels);
    for_each_band(built, &mut |_, band| {
        out.extend_from_slice(band);
        Ok(())
    })?;
    Ok(out)
}

/// Receives the rows of axis 0 a band covers and its values.
pub type BandSink<'a> = dyn FnMut(std::ops::Range<usize>, &[f32]) -> Result<()> + 'a;

/// Samples per band when a signal is rendered in pieces.
pub const BAND_SAMPLES: usize = 1 << 18;

/// Run the model over the whole signal and hand its output to `f` band by band (whole slabs of
/// axis 0, raster order, channels last). A signal whose full-grid inference fits
/// [`FULL_GRID_INFER_BYTES`] goes in one piece (for ASMR the activation-sharing forward); a larger
/// one in bands of about [`BAND_SAMPLES`] samples through the batch forward, so memory stays
/// bounded. The split depends only on the model and the signal shape, so `fit` and `render` agree.
pub fn for_each_band(built: &BuiltModel, f: &mut BandSink) -> Result<()> {
    // A whole-grid inference holds about a quarter of a training step's buffers.
    let one_piece = full_grid_bytes(built) / 4 <= FULL_GRID_INFER_BYTES;
    let limit = if one_piece { usize::MAX } else { 0 };
    for_each_band_sized(built, limit, BAND_SAMPLES, f)
}

/// [`for_each_band`] with explicit limits (tests).
pub fn for_each_band_sized(
    built: &BuiltModel,
    full_grid_samples: usize,
    band_samples: usize,
    f: &mut BandSink,
) -> Result<()> {
    let shape = &built.context.signal_shape;
    let n = built.context.num_samples();
    if n <= full_grid_samples {
        let out = built.model.forward_grid()?.detach().flatten_all()?;
        return f(0..shape[0], &out.to_vec1::<f32>()?);
    }
    let per_row = n / shape[0];
    let rows = (band_samples / per_row).max(1);
    for r0 in (0..shape[0]).step_by(rows) {
        let r1 = (r0 + rows).min(shape[0]);
        let mut sub = shape.clone();
        sub[0] = r1 - r0;
        let mut idx = crate::models::all_indices(&sub);
        let d = shape.len();
        for x in idx.chunks_exact_mut(d) {
            x[0] += r0 as u32;
        }
        let out = built.model.forward_points(&idx)?.detach().flatten_all()?;
        f(r0..r1, &out.to_vec1::<f32>()?)?;
    }
    Ok(())
}

/// Largest estimated memory of a one-piece full-grid inference; above it signals are rendered in
/// bands. A constant (not the machine's RAM) so that `fit` and `render` split the same way.
pub const FULL_GRID_INFER_BYTES: usize = 1 << 30;

/// Whole-signal PSNR (prediction clamped to `[0, 1]`), accumulated band by band.
pub fn evaluate_psnr(built: &BuiltModel, signal: &Signal) -> Result<f64> {
    let c = signal.info.channels;
    let per_row = signal.info.num_samples() / signal.info.shape[0] * c;
    let mut sq = 0f64;
    for_each_band(built, &mut |rows, band| {
        let target = signal.data.slice(rows.start * per_row..rows.end * per_row);
        sq += crate::metrics::clamped_mse(&target, band, 0.0, 1.0) * band.len() as f64;
        Ok(())
    })?;
    Ok(crate::metrics::psnr_from_mse(
        sq / signal.data.len() as f64,
        1.0,
    ))
}

/// The target rows of a batch of grid indices, `[n, c]`.
pub fn target_rows(signal: &Signal, idx: &[u32], device: &Device) -> Result<candle_core::Tensor> {
    let shape = &signal.info.shape;
    let c = signal.info.channels;
    let n = idx.len() / shape.len();
    let mut rows = Vec::with_capacity(n * c);
    for x in idx.chunks_exact(shape.len()) {
        let mut flat = 0usize;
        for (a, &v) in x.iter().enumerate() {
            flat = flat * shape[a] + v as usize;
        }
        rows.extend((flat * c..(flat + 1) * c).map(|i| signal.data.get(i)));
    }
    Ok(candle_core::Tensor::from_vec(rows, (n, c), device)?)
}

/// Render a checkpoint: rebuild the model from the file alone and write its signal to `out`, band
/// by band; `region` (one range per axis) renders just that box.
pub fn render(
    ckpt_path: &Path,
    out: &Path,
    device: &Device,
    region: Option<&[std::ops::Range<usize>]>,
) -> Result<SignalInfo> {
    let ckpt = checkpoint::load(ckpt_path, device)?;
    let prefix = match ckpt.meta.kind {
        checkpoint::CheckpointKind::Model => "",
        checkpoint::CheckpointKind::TrainState => "best/",
    };
    let modality = crate::registry::find_modality(&ckpt.meta.signal.modality)?;
    // The writer picks the format, so a name that promises another one is refused.
    let wanted = Path::new(modality.output_file).extension();
    if out.extension().map(|e| e.to_ascii_lowercase()).as_deref() != wanted {
        return Err(Error::Invalid(format!(
            "--out {}: {} checkpoints render to .{} files",
            out.display(),
            modality.name,
            wanted.unwrap_or_default().to_string_lossy()
        )));
    }
    let built = ckpt.build_model(prefix, device, ckpt_path)?;
    let mut info = ckpt.meta.signal.clone();
    match region {
        None => {
            let mut writer = (modality.writer)(&info, out)?;
            for_each_band(&built, &mut |_, band| writer.write_band(band))?;
            writer.finish()?;
        }
        Some(ranges) => {
            let shape = info.shape.clone();
            if ranges.len() != shape.len()
                || ranges
                    .iter()
                    .zip(&shape)
                    .any(|(r, &n)| r.start >= r.end || r.end > n)
            {
                return Err(Error::Invalid(format!(
                    "region {ranges:?} is empty or outside the signal's shape {shape:?}"
                )));
            }
            info.shape = ranges.iter().map(|r| r.len()).collect();
            let mut writer = (modality.writer)(&info, out)?;
            let per_row: usize = info.shape[1..].iter().product();
            let rows = (BAND_SAMPLES / per_row.max(1)).max(1);
            let d = shape.len();
            for r0 in (ranges[0].start..ranges[0].end).step_by(rows) {
                let r1 = (r0 + rows).min(ranges[0].end);
                let mut sub = info.shape.clone();
                sub[0] = r1 - r0;
                let mut idx = crate::models::all_indices(&sub);
                for x in idx.chunks_exact_mut(d) {
                    x[0] += r0 as u32;
                    for a in 1..d {
                        x[a] += ranges[a].start as u32;
                    }
                }
                let band = built.model.forward_points(&idx)?.detach().flatten_all()?;
                writer.write_band(&band.to_vec1::<f32>()?)?;
            }
            writer.finish()?;
        }
    }
    Ok(info)
}

fn check_resumable(
    meta: &checkpoint::CheckpointMeta,
    config: &Config,
    signal: &Signal,
    path: &Path,
) -> Result<()> {
    let bad = |message: String| Error::Checkpoint {
        path: path.into(),
        message,
    };
    if meta.config.model != config.model || meta.config.net != config.net {
        return Err(bad(format!(
            "was trained with model `{}` and a different net config; resume with the same one",
            meta.config.model
        )));
    }
    if meta.signal.shape != signal.info.shape || meta.signal.channels != signal.info.channels {
        return Err(bad(format!(
            "was trained on shape {:?} x {}, this signal is {:?} x {}",
            meta.signal.shape, meta.signal.channels, signal.info.shape, signal.info.channels
        )));
    }
    Ok(())
}

/// `log.csv`, streamed as training goes (a resumed run keeps the rows before its start).
struct LogWriter {
    path: PathBuf,
    file: std::io::BufWriter<fs::File>,
    points: Vec<(usize, f64)>,
}

impl LogWriter {
    fn open(path: &Path, resume_step: usize) -> Result<Self> {
        let mut kept = vec![StepRecord::CSV_HEADER.to_string()];
        let mut points = Vec::new();
        if resume_step > 0 {
            if let Ok(text) = fs::read_to_string(path) {
                for line in text.lines().skip(1) {
                    let mut cols = line.split(',');
                    let step = cols.next().and_then(|s| s.parse::<usize>().ok());
                    let psnr = cols.nth(1).and_then(|s| s.parse::<f64>().ok());
                    if let (Some(s), Some(p)) = (step, psnr) {
                        if s <= resume_step {
                            kept.push(line.to_string());
                            points.push((s, p));
                        }
                    }
                }
            }
        }
        let mut text = kept.join("\n");
        text.push('\n');
        write_bytes_atomic(path, text.as_bytes())?;
        let file = fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(Self {
            path: path.into(),
            file: std::io::BufWriter::new(file),
            points,
        })
    }

    /// Append a row; flushed at once so the log can be followed while training runs.
    fn push(&mut self, rec: &StepRecord) -> Result<()> {
        self.points.push((rec.step, rec.psnr));
        writeln!(self.file, "{}", rec.csv()).map_err(|e| Error::io(&self.path, e))?;
        self.flush()
    }

    fn flush(&mut self) -> Result<()> {
        self.file.flush().map_err(|e| Error::io(&self.path, e))
    }

    fn points(&self) -> Vec<(usize, f64)> {
        self.points.clone()
    }
}
