//! Plugin registry. A modality crate registers a [`Modality`] and its [`Preset`]s with
//! `inventory::submit!`; the CLI finds them by name. (A binary must name each plugin crate, e.g.
//! `use modality_image as _;`, or the linker drops its registrations.)

use std::path::Path;

use crate::config::{SectionSpec, TrainConfig, Value};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::sampler::BatchSource;
use crate::signal::{Signal, SignalInfo};

/// Writes a modality's extra outputs into a run folder; returns the file names.
pub type ExtrasFn = fn(&Signal, &[f32], &Path) -> Result<Vec<String>>;

/// The two pictures of a run's `summary.png`: the reconstruction and its error map, from the
/// whole prediction (training range, raster order, channels last).
pub type PreviewFn = fn(&Signal, &[f32]) -> Result<Preview>;

/// What `summary.png` shows of a fit besides its quality curve.
pub struct Preview {
    pub reconstruction: crate::figure::Panel,
    pub error: crate::figure::Panel,
    /// What the error map's colours mean.
    pub error_label: String,
    /// The value of the brightest colour of the error map (the darkest is `error_min`).
    pub error_min: f64,
    pub error_max: f64,
    pub error_map: fn(f32) -> [u8; 3],
}

impl Preview {
    /// A picture of `h x w` samples (training range, channels last) and its error map: one
    /// channel in gray, three as RGB, any other number by their first channel. `what` names the
    /// picture in the titles (`"frame 12 of 24"`).
    pub fn of_picture(
        target: &[f32],
        prediction: &[f32],
        (h, w): (usize, usize),
        channels: usize,
        what: &str,
    ) -> Result<Self> {
        let n = h * w * channels;
        if target.len() < n || prediction.len() < n {
            return Err(Error::Invalid(format!(
                "preview: {h} x {w} x {channels} values expected"
            )));
        }
        let px = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        let rgb: Vec<u8> = prediction[..n]
            .chunks_exact(channels)
            .flat_map(|p| match channels {
                3 => [px(p[0]), px(p[1]), px(p[2])],
                _ => [px(p[0]); 3],
            })
            .collect();
        let error: Vec<f32> = prediction[..n]
            .chunks_exact(channels)
            .zip(target[..n].chunks_exact(channels))
            .map(|(p, t)| {
                p.iter()
                    .zip(t)
                    .map(|(a, b)| (a.clamp(0.0, 1.0) - b).abs())
                    .sum::<f32>()
                    / channels as f32
            })
            .collect();
        let max = error.iter().fold(1e-6f32, |m, &v| m.max(v));
        let scaled: Vec<f32> = error.iter().map(|v| v / max).collect();
        use crate::figure::{magma, Panel, Raster};
        Ok(Self {
            reconstruction: Panel {
                title: format!("reconstruction, {what}"),
                raster: Raster {
                    width: w,
                    height: h,
                    rgb,
                },
                axes: None,
            },
            error: Panel {
                title: format!("absolute error, {what}"),
                raster: Raster::from_values(w, h, &scaled, magma),
                axes: None,
            },
            error_label: "absolute error (values 0..1)".into(),
            error_min: 0.0,
            error_max: max as f64,
            error_map: magma,
        })
    }
}

pub struct Modality {
    pub name: &'static str,
    pub description: &'static str,
    /// Preset used when none is given.
    pub default_preset: &'static str,
    /// Preset used with the built-in example signal.
    pub example_preset: &'static str,
    /// File name of the reconstruction in a run folder.
    pub output_file: &'static str,
    /// File extensions of its inputs (lower case, no dot): a directory given to `fit` is read for
    /// these.
    pub extensions: &'static [&'static str],
    /// The modality's `data` section: how its loader reads a file (`SectionSpec::of::<T>()` of
    /// a [`crate::config::Section`] whose `PATH` is `data`). Its options become `fit` options.
    pub config: SectionSpec,
    /// Read a file with the configuration's `data` section (checked by `config` already).
    pub load: fn(&Path, &Value) -> Result<Signal>,
    /// A signal made in code, fitted when no input is given.
    pub example: fn() -> Signal,
    /// Metrics of a prediction against the signal, fed band by band (whole slabs of axis 0).
    pub metrics: for<'a> fn(&'a Signal) -> Result<Box<dyn BandMetrics + 'a>>,
    /// A file people can open, written band by band (slabs of axis 0, training range) to a
    /// temporary name and renamed into place by `finish`. `info.shape` is what is written (a
    /// region's shape when rendering a region).
    pub writer: fn(&SignalInfo, &Path) -> Result<Box<dyn BandWriter>>,
    /// More files for the run folder (a spectrogram...), from the whole prediction; returns their
    /// names. `None` when the modality has none (the prediction is then never held whole).
    pub extras: Option<ExtrasFn>,
    /// The reconstruction and error map of `summary.png` (`None`: no summary picture).
    pub preview: Option<PreviewFn>,
    /// The quality part of a run's summary line, from the metrics of `metrics` (`PSNR 31.20 dB,
    /// SSIM 0.9321`).
    pub summary: fn(&Metrics) -> String,
}

/// Accumulates metrics over consecutive bands of a prediction.
pub trait BandMetrics {
    /// The next band: rows `rows` of axis 0, raster order, channels last, training range.
    fn add(&mut self, rows: std::ops::Range<usize>, values: &[f32]) -> Result<()>;
    fn finish(self: Box<Self>) -> Result<Metrics>;
}

/// Writes consecutive bands of a prediction to a file.
pub trait BandWriter {
    fn write_band(&mut self, values: &[f32]) -> Result<()>;
    /// Complete the file and move it into place; dropping a writer unfinished leaves nothing.
    fn finish(self: Box<Self>) -> Result<()>;
}

inventory::collect!(Modality);

/// Makes a strategy's batch source for a signal and the training settings (`train.batch` samples a
/// batch, `train.seed` seeds it).
pub type BatchesFn = fn(&Signal, &TrainConfig) -> Result<Box<dyn BatchSource>>;

/// A training strategy a modality registers: how its minibatches are drawn (the shared trainer
/// does the rest). Chosen with `train.strategy: NAME`.
pub struct Strategy {
    pub name: &'static str,
    pub modality: &'static str,
    pub description: &'static str,
    pub batches: BatchesFn,
}

inventory::collect!(Strategy);

pub fn strategies() -> Vec<&'static Strategy> {
    let mut v: Vec<_> = inventory::iter::<Strategy>.into_iter().collect();
    v.sort_by_key(|s| (s.modality, s.name));
    v
}

/// The strategy `train.strategy` names for `modality`, or `None` for the shared ones (`auto`,
/// `grid`); an unknown name is an error naming the known ones.
pub fn find_strategy(modality: &str, train: &TrainConfig) -> Result<Option<&'static Strategy>> {
    let Some(name) = train.modality_strategy() else {
        return Ok(None);
    };
    let own: Vec<_> = strategies()
        .into_iter()
        .filter(|s| s.modality == modality)
        .collect();
    match own.iter().find(|s| s.name == name) {
        Some(s) => Ok(Some(s)),
        None => {
            let mut known = vec!["auto", "grid"];
            known.extend(own.iter().map(|s| s.name));
            Err(Error::config(
                "train.strategy",
                format!(
                    "`{name}` is not a strategy of {modality} signals (known: {})",
                    known.join(", ")
                ),
            ))
        }
    }
}

/// [`find_strategy`] as a check: the name exists and its settings make sense.
pub fn check_strategy(modality: &str, train: &TrainConfig) -> Result<()> {
    if find_strategy(modality, train)?.is_some() && train.batch == 0 {
        return Err(Error::config(
            "train.batch",
            format!(
                "train.strategy {} draws minibatches: set train.batch (--batch N)",
                train.strategy
            ),
        ));
    }
    Ok(())
}

/// A named configuration overlay (YAML over `defaults.yaml`).
pub struct Preset {
    pub name: &'static str,
    pub modality: &'static str,
    pub description: &'static str,
    pub yaml: &'static str,
}

inventory::collect!(Preset);

/// A modality's own settings for `train.recipe: fast` on one model, in place of the model's
/// ([`crate::ModelEntry::fast`]): the settings that win the equal-time race on this modality's
/// signals (3-D fields want gentler steps than photos, for one).
pub struct FastRecipe {
    pub modality: &'static str,
    pub model: &'static str,
    pub optim: crate::config::OptimDefaults,
}

inventory::collect!(FastRecipe);

/// The fast recipe `modality` registers for `model`, if any.
pub fn find_fast_recipe(modality: &str, model: &str) -> Option<&'static FastRecipe> {
    inventory::iter::<FastRecipe>
        .into_iter()
        .find(|r| r.modality == modality && r.model == model)
}

/// One of the paper's experiments, as `reproduce NAME --data DIR` runs it: every recipe on every
/// input the data folder holds, with each seed.
pub struct Experiment {
    pub name: &'static str,
    pub modality: &'static str,
    /// What the experiment measures (the paper's table).
    pub description: &'static str,
    /// Globs, relative to the data folder, that find its inputs (all matches of all of them).
    pub data: &'static [&'static str],
    /// The data it expects, for the line printed when the folder lacks it.
    pub expects: &'static str,
    /// `(model, preset)` rows of the table.
    pub recipes: &'static [(&'static str, &'static str)],
    pub seeds: &'static [u64],
}

inventory::collect!(Experiment);

pub fn experiments() -> Vec<&'static Experiment> {
    let mut v: Vec<_> = inventory::iter::<Experiment>.into_iter().collect();
    v.sort_by_key(|e| e.name);
    v
}

pub fn find_experiment(name: &str) -> Result<&'static Experiment> {
    experiments()
        .into_iter()
        .find(|e| e.name == name)
        .ok_or_else(|| Error::Unknown {
            kind: "experiment",
            name: name.into(),
            known: experiments()
                .iter()
                .map(|e| e.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

impl Experiment {
    /// Its inputs in `data`, sorted, each once; an error naming what it expects when there are none.
    pub fn inputs(&self, data: &Path) -> Result<Vec<std::path::PathBuf>> {
        if !data.is_dir() {
            return Err(Error::input(
                data,
                "no such folder (--data names the folder of inputs)",
            ));
        }
        let mut found = std::collections::BTreeSet::new();
        for pattern in self.data {
            let full = data.join(pattern);
            let matches = glob::glob(&full.to_string_lossy())
                .map_err(|e| Error::Invalid(format!("experiment {}: {e}", self.name)))?;
            found.extend(matches.filter_map(|m| m.ok()).filter(|p| p.is_file()));
        }
        if found.is_empty() {
            return Err(Error::input(
                data,
                format!(
                    "experiment {} expects {} (none found)",
                    self.name, self.expects
                ),
            ));
        }
        Ok(found.into_iter().collect())
    }
}

/// Register a preset of `modality` whose YAML is `presets/NAME.yaml` beside the calling crate's
/// `src/`: `asmr_core::preset!("image", "kodak", "768x512 RGB ...");`.
#[macro_export]
macro_rules! preset {
    ($modality:literal, $name:literal, $desc:literal) => {
        $crate::inventory::submit! {
            $crate::Preset {
                name: $name,
                modality: $modality,
                description: $desc,
                yaml: include_str!(concat!("../presets/", $name, ".yaml")),
            }
        }
    };
}

pub fn modalities() -> Vec<&'static Modality> {
    let mut v: Vec<_> = inventory::iter::<Modality>.into_iter().collect();
    v.sort_by_key(|m| m.name);
    v
}

pub fn find_modality(name: &str) -> Result<&'static Modality> {
    modalities()
        .into_iter()
        .find(|m| m.name == name)
        .ok_or_else(|| Error::Unknown {
            kind: "modality",
            name: name.into(),
            known: modalities()
                .iter()
                .map(|m| m.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

pub fn presets() -> Vec<&'static Preset> {
    let mut v: Vec<_> = inventory::iter::<Preset>.into_iter().collect();
    v.sort_by_key(|p| (p.modality, p.name));
    v
}

pub fn find_preset(name: &str) -> Result<&'static Preset> {
    presets()
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| Error::Unknown {
            kind: "preset",
            name: name.into(),
            known: presets()
                .iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}
