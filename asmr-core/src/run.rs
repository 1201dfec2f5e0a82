//! A fit from start to finish, shared by every modality: load, build, train, then write the run
//! folder (`model.safetensors`, `state.safetensors`, `config.yaml`, `log.csv`, `metrics.json`,
//! `psnr.png` and the reconstruction). Everything that can be checked is checked before the folder
//! is created, and every file is written atomically.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::checkpoint;
use crate::config::{Config, Value};
use crate::error::{Error, Result};
use crate::memory::{
    full_grid_bytes, memory_budget, out_of_memory, resolve_micro_batch, step_bytes, AUTO_BATCH, GIB,
};
use crate::metrics::Metrics;
use crate::models::{BuiltModel, ModelContext};
use crate::output::write_bytes_atomic;
use crate::params::ParamStore;
use crate::plot::psnr_curve;
use crate::registry::{find_strategy, Modality};
use crate::render::for_each_band;
use crate::sampler::{BatchSource, GridSampler};
use crate::signal::{Signal, SignalInfo};
use crate::trainer::{Flow, Observer, StepRecord, Trainer};

pub const MODEL_FILE: &str = "model.safetensors";
pub const STATE_FILE: &str = "state.safetensors";
pub const LOG_FILE: &str = "log.csv";
pub const METRICS_FILE: &str = "metrics.json";
pub const CONFIG_FILE: &str = "config.yaml";
pub const PLOT_FILE: &str = "psnr.png";
pub const SUMMARY_FILE: &str = "summary.png";

/// Largest signal (values) whose run folder gets `summary.png` (the preview holds the whole
/// prediction): 2^24, a 2,400 x 2,400 RGB photo.
pub const PREVIEW_MAX_VALUES: usize = 1 << 24;

/// The signal a fit works on: the file given (read with the configuration's `data` section), or
/// the modality's built-in example.
pub fn load_signal(modality: &Modality, input: Option<&Path>, data: &Value) -> Result<Signal> {
    match input {
        None => Ok((modality.example)()),
        Some(p) => {
            if !p.exists() {
                return Err(Error::input(p, "no such file"));
            }
            if p.is_dir() {
                return Err(Error::input(p, "is a directory, not a file"));
            }
            (modality.load)(p, data)
        }
    }
}

/// What an earlier fit left in a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EarlierRun {
    /// Nothing of a run.
    None,
    /// A run stopped before its first checkpoint (its config and log only): nothing to resume,
    /// nothing worth keeping.
    Unstarted,
    /// A run stopped after a checkpoint: `--resume` continues it.
    Interrupted,
    /// A finished run (`metrics.json`).
    Finished,
}

/// What `dir` holds of an earlier run.
pub fn earlier_run(dir: &Path) -> EarlierRun {
    if dir.join(METRICS_FILE).exists() {
        EarlierRun::Finished
    } else if dir.join(STATE_FILE).exists() || dir.join(MODEL_FILE).exists() {
        EarlierRun::Interrupted
    } else if dir.join(LOG_FILE).exists() || dir.join(CONFIG_FILE).exists() {
        EarlierRun::Unstarted
    } else {
        EarlierRun::None
    }
}

pub struct FitRequest<'a> {
    pub modality: &'static Modality,
    pub signal: Signal,
    pub config: Config,
    pub out_dir: PathBuf,
    pub device: Device,
    /// A `state.safetensors` to continue from.
    pub resume: Option<&'a Path>,
    /// The preset the configuration started from, recorded in the report (summaries group by it).
    pub preset: Option<String>,
    /// Told about every step, evaluation and note (the CLI draws progress from it).
    pub observer: &'a mut dyn Observer,
}

/// What a fit measured and wrote: the contents of `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// The modality's quality metrics of the reconstruction (`psnr`, `ssim`, `iou`...).
    #[serde(flatten)]
    pub quality: Metrics,
    pub best_step: usize,
    /// PSNR of the best step's training output (full-grid steps) or evaluation (minibatches).
    pub best_train_psnr: f64,
    /// The written weights are the weight average's at `best_step` (`train.ema`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub best_is_average: bool,
    pub steps: usize,
    pub params: usize,
    pub macs_per_sample: f64,
    pub macs_breakdown: BTreeMap<String, f64>,
    pub model_bytes: usize,
    pub bits_per_sample: f64,
    pub wall_seconds: f64,
    pub steps_per_second: f64,
    /// File name of the reconstruction in the run folder.
    pub reconstruction: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_files: Vec<String>,
    pub modality: String,
    pub model: String,
    /// The preset the configuration started from (`None` for runs written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    pub source: String,
    pub shape: Vec<usize>,
    pub channels: usize,
    pub samples: usize,
    /// ASMR's bases per axis and the padded grid they span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bases: Option<Vec<Vec<usize>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid_shape: Option<Vec<usize>>,
    pub seed: u64,
    pub device: String,
    /// The run folder (not in the file).
    #[serde(skip)]
    pub out_dir: PathBuf,
}

impl FitReport {
    /// Read a run folder's `metrics.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(METRICS_FILE);
        let text = fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let mut r: Self = serde_json::from_str(&text)
            .map_err(|e| Error::input(&path, format!("not a run's metrics: {e}")))?;
        r.out_dir = dir.to_path_buf();
        Ok(r)
    }

    /// Every file the run folder holds for people to open, the reconstruction first.
    pub fn files(&self) -> Vec<String> {
        let mut files = vec![self.reconstruction.clone()];
        files.extend(self.extra_files.iter().cloned());
        files.extend([METRICS_FILE, PLOT_FILE, LOG_FILE, MODEL_FILE].map(String::from));
        files
    }
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

/// The fit's own bookkeeping around the caller's observer: `log.csv` row by row, a resumable
/// state every `train.checkpoint_every` steps.
struct RunFolder<'a, 'b> {
    log: LogWriter,
    state_path: PathBuf,
    config: &'b Config,
    signal: &'b Signal,
    inner: &'a mut dyn Observer,
}

impl Observer for RunFolder<'_, '_> {
    fn started(&mut self, t: &Trainer) -> Result<()> {
        self.inner.started(t)
    }

    fn stepped(&mut self, t: &Trainer, recs: &[StepRecord]) -> Result<Flow> {
        for rec in recs {
            self.log.push(rec)?;
        }
        let flow = self.inner.stepped(t, recs)?;
        let every = self.config.train.checkpoint_every;
        let periodic = every > 0 && t.step.is_multiple_of(every) && !t.is_done();
        if periodic || (flow == Flow::Stop && !t.is_done()) {
            t.save_state(&self.state_path, self.config, self.signal)?;
        }
        Ok(flow)
    }

    fn evaluated(&mut self, t: &Trainer, psnr: f64) -> Result<()> {
        self.inner.evaluated(t, psnr)
    }

    fn note(&mut self, message: &str) {
        self.inner.note(message)
    }
}

pub fn fit(req: FitRequest) -> Result<FitReport> {
    let FitRequest {
        modality,
        signal,
        config,
        out_dir,
        device,
        resume,
        preset,
        observer,
    } = req;
    let mut config = config;
    let built = build_model(&config, &signal.info, &device)?;
    let budget = memory_budget(&config, &device);
    // Why a run meant for full-grid steps takes minibatches instead (told once its sampler exists).
    let mut switched = None;
    if resume.is_none() && !config.train.minibatch() {
        let need = full_grid_bytes(&built);
        let samples = signal.info.num_samples();
        let cap = config.train.max_step_samples;
        let why = if need > budget {
            Some(format!(
                "a full-grid step would need about {:.1} GiB (budget {:.1} GiB)",
                need as f64 / GIB,
                budget as f64 / GIB,
            ))
        } else if cap > 0 && samples > cap {
            Some(format!(
                "the signal has {samples} samples, more than train.max_step_samples ({cap})"
            ))
        } else {
            None
        };
        if let Some(why) = why {
            // Minibatches of the cap (2^18 samples without one), about as many steps.
            config.train.batch = if cap > 0 { cap } else { AUTO_BATCH }.min(samples);
            // As many steps as asked for, in whole epochs.
            config.train.epochs = None;
            switched = Some(why);
        }
    }
    // The chunks a minibatch step runs in; the saved config keeps the user's setting.
    let mut train = config.train.clone();
    if train.minibatch() {
        train.micro_batch = resolve_micro_batch(&built, &config.train, budget);
    }
    // The estimate is rough, so a device can still run out: then one line with the option to change.
    let step_bytes = step_bytes(&built, &train);
    let oom = |e: Error| out_of_memory(e, &device, step_bytes, budget, config.train.minibatch());
    let mut trainer = Trainer::new(&built, &signal, &train).map_err(oom)?;
    if config.train.minibatch() {
        let source: Box<dyn BatchSource> = match find_strategy(modality.name, &config.train)? {
            Some(s) => (s.batches)(&signal, &config.train)?,
            None => Box::new(GridSampler::new(
                &signal.info.shape,
                &config.train.sampler_grid,
                config.train.batch,
                config.train.seed,
            )?),
        };
        if let Some(why) = switched {
            // The sampler's own epoch: its batches may differ from the size asked for.
            let per_epoch = source.batches_per_epoch();
            let length = if config.train.time_limit > 0.0 {
                "within the time limit".to_string()
            } else {
                format!("for {} epochs", config.train.epochs_for(per_epoch))
            };
            observer.note(&format!(
                "{why}: training on minibatches of about {} samples {length} instead",
                signal.info.num_samples().div_ceil(per_epoch.max(1))
            ));
        }
        trainer.set_batches(source);
    }
    if let Some(path) = resume {
        let ckpt = checkpoint::load(path, &device)?;
        check_resumable(&ckpt.meta, &config, &signal, path)?;
        trainer.resume(&ckpt, path)?;
    }
    let profile = built.profile()?;

    fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
    write_bytes_atomic(&out_dir.join(CONFIG_FILE), config.to_yaml().as_bytes())?;
    let mut folder = RunFolder {
        log: LogWriter::open(&out_dir.join(LOG_FILE), trainer.step)?,
        state_path: out_dir.join(STATE_FILE),
        config: &config,
        signal: &signal,
        inner: observer,
    };
    trainer.run(&mut folder).map_err(oom)?;
    let RunFolder {
        mut log,
        state_path,
        ..
    } = folder;
    log.flush()?;
    if !trainer.is_done() {
        // The observer stopped the run: its state was saved on the way out; no result is written.
        return Err(Error::Interrupted {
            step: trainer.step,
            total: trainer.schedule_steps(),
            state: state_path,
        });
    }
    trainer.save_state(&state_path, &config, &signal)?;

    // The reconstruction comes from the best step's weights, rendered the way `render` does it.
    // Band by band: the float image is never held whole for a large signal.
    built.params.restore(&trainer.best_params)?;
    let mut quality = (modality.metrics)(&signal)?;
    let recon = out_dir.join(modality.output_file);
    let mut writer = (modality.writer)(&signal.info, &recon)?;
    let mut whole = Vec::new();
    // A preview needs the whole prediction; above PREVIEW_MAX_VALUES (a megapixel photo) the
    // summary picture is left out rather than holding gigabytes.
    let preview_fn = modality
        .preview
        .filter(|_| signal.info.num_values() <= PREVIEW_MAX_VALUES);
    let keep_whole = modality.extras.is_some() || preview_fn.is_some();
    for_each_band(&built, &mut |rows, band| {
        quality.add(rows, band)?;
        if keep_whole {
            whole.extend_from_slice(band);
        }
        writer.write_band(band)
    })?;
    writer.finish()?;
    let quality = quality.finish()?;
    let mut extra_files = match modality.extras {
        Some(f) => f(&signal, &whole, &out_dir)?,
        None => Vec::new(),
    };
    let preview = preview_fn.map(|f| f(&signal, &whole)).transpose()?;
    drop(whole);
    trainer.save_best(&out_dir.join(MODEL_FILE), &config, &signal)?;

    let name = Path::new(&signal.info.source).file_name().map_or_else(
        || signal.info.source.clone(),
        |n| n.to_string_lossy().into(),
    );
    let title = format!("{} {} on {name}", modality.name, config.model);
    psnr_curve(log.records(), &title, &out_dir.join(PLOT_FILE))?;
    if let Some(p) = preview {
        let bar = crate::figure::ColourBar {
            label: &p.error_label,
            min: p.error_min,
            max: p.error_max,
            map: p.error_map,
        };
        let headline = format!("{title}: {}", (modality.summary)(&quality));
        crate::figure::write_summary(
            &out_dir.join(SUMMARY_FILE),
            &headline,
            &p.reconstruction,
            &p.error,
            &bar,
            log.records(),
        )?;
        extra_files.push(SUMMARY_FILE.into());
    }

    let wall = trainer.elapsed();
    let samples = signal.info.num_samples();
    let grid = built.model.grid();
    let report = FitReport {
        quality,
        best_step: trainer.best_step,
        best_train_psnr: trainer.best_psnr,
        best_is_average: trainer.best_is_average,
        steps: trainer.step,
        params: profile.params,
        macs_per_sample: profile.macs_per_sample,
        macs_breakdown: profile.breakdown.iter().cloned().collect(),
        model_bytes: profile.model_bytes(),
        bits_per_sample: profile.bits_per_sample(samples),
        wall_seconds: wall,
        steps_per_second: trainer.step as f64 / wall.max(1e-9),
        reconstruction: modality.output_file.to_string(),
        extra_files,
        modality: modality.name.to_string(),
        model: config.model.clone(),
        preset,
        source: signal.info.source.clone(),
        shape: signal.info.shape.clone(),
        channels: signal.info.channels,
        samples,
        bases: grid.map(|g| g.bases().to_vec()),
        grid_shape: grid.map(|g| g.shape().to_vec()),
        seed: config.train.seed,
        device: format!("{device:?}"),
        out_dir: out_dir.clone(),
    };
    let text = serde_json::to_string_pretty(&report).map_err(|e| Error::Invalid(e.to_string()))?;
    write_bytes_atomic(&out_dir.join(METRICS_FILE), text.as_bytes())?;
    Ok(report)
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
    records: Vec<StepRecord>,
}

impl LogWriter {
    fn open(path: &Path, resume_step: usize) -> Result<Self> {
        let mut records = Vec::new();
        if resume_step > 0 {
            if let Ok(text) = fs::read_to_string(path) {
                records = text
                    .lines()
                    .skip(1)
                    .filter_map(StepRecord::parse_csv)
                    .filter(|r| r.step <= resume_step)
                    .collect();
            }
        }
        let mut kept = vec![StepRecord::CSV_HEADER.to_string()];
        kept.extend(records.iter().map(StepRecord::csv));
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
            records,
        })
    }

    /// Append a row; flushed at once so the log can be followed while training runs.
    fn push(&mut self, rec: &StepRecord) -> Result<()> {
        self.records.push(*rec);
        writeln!(self.file, "{}", rec.csv()).map_err(|e| Error::io(&self.path, e))?;
        self.flush()
    }

    fn flush(&mut self) -> Result<()> {
        self.file.flush().map_err(|e| Error::io(&self.path, e))
    }

    fn records(&self) -> &[StepRecord] {
        &self.records
    }
}
