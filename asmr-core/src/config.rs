//! Run configuration: one YAML tree layered as defaults <- preset <- `--config` file <-
//! `--set key=value` <- command-line options. Core owns the shared keys (`model`, `net.*` common to
//! the networks, `train.*`, listed with their defaults in `defaults.yaml`); a modality owns `data`
//! and a model owns `net.<model>` ([`Section`]), and the defaults of those come from the
//! registries. Unknown keys and bad values are rejected with the dotted key named.

mod section;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_yaml::Mapping;
pub use serde_yaml::Value;

pub use section::{
    auto_list, auto_usize, defaults, parse, with_values, OptionKind, OptionSpec, Section,
    SectionSpec,
};

use crate::error::{Error, Result};
use crate::grid::MultiResGrid;
use crate::modulator::ModulatorKind;
use crate::registry::Modality;

const DEFAULTS: &str = include_str!("defaults.yaml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub model: String,
    /// How the input is read: the modality's own section, read by its loader.
    #[serde(default = "empty_section")]
    pub data: Value,
    pub net: NetConfig,
    pub train: TrainConfig,
}

fn empty_section() -> Value {
    Value::Mapping(Mapping::new())
}

/// The shared network keys (`net.*`); each model's own keys sit in its section `net.<model>`
/// ([`Section`]), kept here as values until the model reads them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetConfig {
    pub layers: usize,
    pub hidden: usize,
    pub w0: f64,
    pub bases: Bases,
    pub modulator: ModulatorKind,
    /// Scale of the linear modulators' initial weights (1: `U(-1/sqrt(d), 1/sqrt(d))`).
    #[serde(default = "one")]
    pub modulator_scale: f64,
    pub coord_range: f64,
    /// The models' own sections by name (`ngp` for `net.ngp`).
    #[serde(flatten)]
    pub models: BTreeMap<String, Value>,
}

impl NetConfig {
    /// A model's section in its type: this config's value, or the section's defaults when the
    /// config has none.
    pub fn section<T: Section>(&self) -> Result<T> {
        let name = T::PATH.strip_prefix("net.").ok_or_else(|| {
            Error::Invalid(format!("`{}` is not a model section (net.*)", T::PATH))
        })?;
        match self.models.get(name) {
            Some(v) => section::parse::<T>(v),
            None => section::defaults::<T>(),
        }
    }

    /// Set one key of a model's section (`("ngp", "levels", 8)`), as `--set net.ngp.levels=8`.
    pub fn set(&mut self, model: &str, key: &str, value: impl Into<Value>) -> Result<()> {
        let section = self
            .models
            .get_mut(model)
            .and_then(Value::as_mapping_mut)
            .ok_or_else(|| Error::config(format!("net.{model}"), "no such section"))?;
        if !section.contains_key(key) {
            return Err(Error::config(format!("net.{model}.{key}"), "unknown key"));
        }
        section.insert(Value::String(key.into()), value.into());
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub iterations: usize,
    pub lr: f64,
    pub lr_min: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
    pub lr_schedule: LrSchedule,
    pub lr_step_every: usize,
    pub lr_step_factor: f64,
    pub seed: u64,
    pub checkpoint_every: usize,
    /// `auto`, `grid`, or a training strategy the modality registers ([`crate::registry::Strategy`]).
    /// Configs saved before strategies existed read as `auto`.
    #[serde(default = "auto_strategy")]
    pub strategy: String,
    pub batch: usize,
    /// Passes over the signal in minibatch mode; `None` (`auto`): as many as `iterations` steps
    /// take, rounded up to whole epochs.
    #[serde(with = "auto_usize")]
    pub epochs: Option<usize>,
    pub sampler_grid: Vec<usize>,
    pub eval_every: usize,
    /// Minibatch mode: the share of each batch drawn in proportion to each sample's error at the
    /// last whole-signal evaluation ([`crate::guided::ErrorMap`]); 0: off. Configs saved before
    /// it existed read as off.
    #[serde(default)]
    pub error_guided: f64,
    pub micro_batch: usize,
    pub grad_clip: f64,
    pub max_memory_gb: f64,
    /// At most this many samples per step: a larger signal trains on minibatches of this size
    /// (a full-grid step's cost grows with the signal, a minibatch step's does not). 0: no limit.
    /// Configs saved before it existed read as 0.
    #[serde(default)]
    pub max_step_samples: usize,
    pub time_limit: f64,
    /// Learning-rate factors by parameter-name prefix, `PREFIX=FACTOR` (`backbone.3=3`).
    #[serde(default)]
    pub lr_scale: Vec<String>,
    /// Which of the model's settings the `auto` optimiser keys took.
    #[serde(default)]
    pub recipe: Recipe,
    /// Schedules longer than this many steps start lower, at `lr * sqrt(lr_horizon / steps)`
    /// (`lr_min` in proportion); 0: off. Configs saved before it existed read as off.
    #[serde(default)]
    pub lr_horizon: usize,
    /// Decay of a moving average of the weights, scored at every whole-signal evaluation and at
    /// the end; the better of it and the best step is the result ([`crate::optim::WeightAverage`]).
    /// 0: off. Configs saved before it existed read as off.
    #[serde(default)]
    pub ema: f64,
    /// Matrix products on a GPU in TF32 (10-bit mantissa inputs, f32 accumulation) instead of
    /// full f32; no effect on the CPU. Configs saved before it existed read as off.
    #[serde(default)]
    pub tf32: bool,
    /// Steps between reads of the step losses from the device; the log's rows arrive in groups
    /// and the best full-grid step is chosen among the steps that read. 0: every step on the
    /// CPU, every [`crate::trainer::LOSS_EVERY_GPU`] on a GPU. Configs saved before it existed
    /// read as 0.
    #[serde(default)]
    pub loss_every: usize,
}

fn one() -> f64 {
    1.0
}

fn auto_strategy() -> String {
    "auto".into()
}

/// Command-line options for `train.*` keys (shared by every modality and model).
pub const TRAIN_OPTIONS: &[OptionSpec] = &[
    OptionSpec::value("iterations", "iterations", "Optimisation steps"),
    OptionSpec::value("seed", "seed", "Parameter and sampling seed"),
    OptionSpec::value(
        "time_limit",
        "time-limit",
        "Train for this many seconds: the schedule ends at the budget (its length estimated \
         from the first steps' rate; --iterations caps it)",
    ),
    OptionSpec::value(
        "batch",
        "batch",
        "Minibatch training with N samples per batch, uniform grid sampler",
    ),
    OptionSpec::value(
        "epochs",
        "epochs",
        "Minibatch mode: passes over the signal (auto: enough for --iterations steps)",
    ),
    OptionSpec::value(
        "eval_every",
        "eval-every",
        "Minibatch mode: evaluate the whole signal every N epochs",
    ),
    OptionSpec::value(
        "max_memory_gb",
        "max-memory",
        "Full-grid steps estimated above this many GiB train on minibatches instead (default \
         half the RAM; on a GPU 80% of its memory)",
    ),
];

impl TrainConfig {
    /// `train.lr_scale` read: `(prefix, factor)` pairs.
    pub fn lr_factors(&self) -> Result<Vec<(String, f64)>> {
        self.lr_scale
            .iter()
            .map(|item| {
                let bad = || {
                    Error::config(
                        "train.lr_scale",
                        format!("`{item}`: expected PREFIX=FACTOR with a positive factor"),
                    )
                };
                let (prefix, factor) = item.split_once('=').ok_or_else(bad)?;
                let factor: f64 = factor.trim().parse().map_err(|_| bad())?;
                if prefix.trim().is_empty() || !factor.is_finite() || factor <= 0.0 {
                    return Err(bad());
                }
                Ok((prefix.trim().to_string(), factor))
            })
            .collect()
    }

    /// The learning-rate factor of each named parameter: the longest `train.lr_scale` prefix that
    /// matches it whole or up to a `.`, else 1. A prefix that matches no parameter is an error.
    pub fn lr_factor_of(&self, names: &[&str]) -> Result<Vec<f64>> {
        let factors = self.lr_factors()?;
        let matches = |name: &str, p: &str| {
            name == p || (name.starts_with(p) && name[p.len()..].starts_with('.'))
        };
        for (p, _) in &factors {
            if !names.iter().any(|n| matches(n, p)) {
                return Err(Error::config(
                    "train.lr_scale",
                    format!(
                        "`{p}` matches no parameter of this model ({})",
                        names.join(", ")
                    ),
                ));
            }
        }
        Ok(names
            .iter()
            .map(|n| {
                factors
                    .iter()
                    .filter(|(p, _)| matches(n, p))
                    .max_by_key(|(p, _)| p.len())
                    .map_or(1.0, |(_, f)| *f)
            })
            .collect())
    }

    /// Epochs of a minibatch run of `per_epoch` batches an epoch: `epochs`, or with `auto` the
    /// fewest that hold `iterations` steps.
    pub fn epochs_for(&self, per_epoch: usize) -> usize {
        self.epochs
            .unwrap_or_else(|| self.iterations.div_ceil(per_epoch.max(1)))
            .max(1)
    }

    /// Minibatch training (a sampler, epochs) rather than full-grid steps.
    pub fn minibatch(&self) -> bool {
        self.batch > 0
    }

    /// The modality's own training strategy this config names, if any (not `auto` or `grid`).
    pub fn modality_strategy(&self) -> Option<&str> {
        (!matches!(self.strategy.as_str(), "auto" | "grid")).then_some(self.strategy.as_str())
    }
}

/// How the learning rate moves over a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// Cosine annealing from `lr` to `lr_min` over the run (docs/method.md, "Training").
    Cosine,
    /// `lr * lr_step_factor` every `lr_step_every` steps (Instant-NGP, docs/method.md, "Baselines").
    Step,
}

/// Which of a model's optimiser settings `auto` keys take (`train.recipe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recipe {
    /// The paper's settings.
    #[default]
    Paper,
    /// Settings tuned for quality per second (ASMR's; models without them use their paper ones).
    Fast,
}

/// A model's own optimiser settings, used where the configuration says `auto`.
#[derive(Debug, Clone, Copy)]
pub struct OptimDefaults {
    pub lr: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
    pub schedule: LrSchedule,
    pub step_every: usize,
    pub step_factor: f64,
    /// `train.lr_scale` for a network of `net.layers` layers.
    pub lr_scale: fn(usize) -> Vec<String>,
    /// `train.lr_horizon` (0: the rates hold for any schedule length).
    pub horizon: usize,
    /// `train.ema` (0: no weight average).
    pub ema: f64,
}

pub fn no_lr_scale(_layers: usize) -> Vec<String> {
    Vec::new()
}

impl OptimDefaults {
    /// Adam with PyTorch's defaults, cosine annealing; `lr` per model (docs/method.md, "Training").
    pub const fn adam(lr: f64) -> Self {
        Self {
            lr,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
            schedule: LrSchedule::Cosine,
            step_every: 100,
            step_factor: 0.33,
            lr_scale: no_lr_scale,
            horizon: 0,
            ema: 0.0,
        }
    }
}

/// `net.bases`: automatic, one list for every axis, or one list per axis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BasesRepr", into = "BasesRepr")]
pub enum Bases {
    Auto,
    All(Vec<usize>),
    PerAxis(Vec<Vec<usize>>),
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum BasesRepr {
    Word(String),
    PerAxis(Vec<Vec<usize>>),
    All(Vec<usize>),
}

impl TryFrom<BasesRepr> for Bases {
    type Error = String;
    fn try_from(r: BasesRepr) -> std::result::Result<Self, String> {
        match r {
            BasesRepr::Word(w) if w == "auto" => Ok(Bases::Auto),
            BasesRepr::Word(w) => Err(format!(
                "`{w}` is not a list of bases; use auto, [4,4,4,8] or [[4,4,4,8],[4,4,6,8]]"
            )),
            BasesRepr::All(b) => Ok(Bases::All(b)),
            BasesRepr::PerAxis(b) => Ok(Bases::PerAxis(b)),
        }
    }
}

impl From<Bases> for BasesRepr {
    fn from(b: Bases) -> Self {
        match b {
            Bases::Auto => BasesRepr::Word("auto".into()),
            Bases::All(b) => BasesRepr::All(b),
            Bases::PerAxis(b) => BasesRepr::PerAxis(b),
        }
    }
}

impl Bases {
    /// The grid these bases give a signal of `shape` with `levels` levels.
    pub fn resolve(&self, shape: &[usize], levels: usize) -> Result<MultiResGrid> {
        let wrap = |e: Error| match e {
            Error::Grid(m) => Error::config(
                "net.bases",
                format!("{m} (--set net.bases=auto chooses bases for any size)"),
            ),
            other => other,
        };
        match self {
            Bases::Auto => MultiResGrid::auto(shape, levels),
            Bases::All(b) => MultiResGrid::new(shape, vec![b.clone(); shape.len()]).map_err(wrap),
            Bases::PerAxis(b) => MultiResGrid::new(shape, b.clone()).map_err(wrap),
        }
    }
}

impl Config {
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_default()
    }

    fn validate(&self) -> Result<()> {
        let n = &self.net;
        let t = &self.train;
        let pos = |key: &str, ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(Error::config(key, what.to_string()))
            }
        };
        pos("model", !self.model.is_empty(), "must name a model")?;
        pos("net.layers", n.layers >= 1, "must be at least 1")?;
        pos("net.hidden", n.hidden >= 1, "must be at least 1")?;
        pos(
            "net.w0",
            n.w0.is_finite() && n.w0 > 0.0,
            "must be a positive number",
        )?;
        pos(
            "net.modulator_scale",
            n.modulator_scale.is_finite() && n.modulator_scale >= 0.0,
            "must be zero or a positive number",
        )?;
        pos(
            "net.coord_range",
            n.coord_range.is_finite() && n.coord_range > 0.0,
            "must be a positive number",
        )?;
        let lists: Vec<&Vec<usize>> = match &n.bases {
            Bases::Auto => vec![],
            Bases::All(b) => vec![b],
            Bases::PerAxis(v) => v.iter().collect(),
        };
        for l in lists {
            if l.len() != n.layers {
                return Err(Error::config(
                    "net.bases",
                    format!(
                        "{l:?} has {} levels but net.layers is {}: ASMR needs one level per layer",
                        l.len(),
                        n.layers
                    ),
                ));
            }
            pos("net.bases", !l.contains(&0), "bases must be at least 1")?;
        }
        pos("train.iterations", t.iterations >= 1, "must be at least 1")?;
        pos(
            "train.epochs",
            t.epochs.is_none_or(|e| e >= 1),
            "must be auto or at least 1",
        )?;
        pos("train.eval_every", t.eval_every >= 1, "must be at least 1")?;
        pos(
            "train.error_guided",
            (0.0..=1.0).contains(&t.error_guided),
            "must be a share between 0 (off) and 1",
        )?;
        pos(
            "train.ema",
            (0.0..1.0).contains(&t.ema),
            "must be at least 0 (off) and below 1",
        )?;
        pos(
            "train.lr",
            t.lr.is_finite() && t.lr > 0.0,
            "must be a positive number",
        )?;
        pos(
            "train.lr_min",
            t.lr_min.is_finite() && t.lr_min >= 0.0 && t.lr_min <= t.lr,
            "must be between 0 and train.lr",
        )?;
        pos(
            "train.betas",
            t.betas.iter().all(|b| (0.0..1.0).contains(b)),
            "must be two numbers in [0, 1)",
        )?;
        t.lr_factors()?;
        pos(
            "train.eps",
            t.eps.is_finite() && t.eps > 0.0,
            "must be a positive number",
        )?;
        pos(
            "train.weight_decay",
            t.weight_decay.is_finite() && t.weight_decay >= 0.0,
            "must be zero or more",
        )?;
        pos(
            "train.grad_clip",
            t.grad_clip.is_finite() && t.grad_clip >= 0.0,
            "must be zero (off) or more",
        )?;
        pos(
            "train.max_memory_gb",
            t.max_memory_gb.is_finite() && t.max_memory_gb >= 0.0,
            "must be zero (automatic) or more",
        )?;
        pos(
            "train.time_limit",
            t.time_limit.is_finite() && t.time_limit >= 0.0,
            "must be zero (no limit) or more seconds",
        )?;
        pos(
            "train.lr_step_every",
            t.lr_step_every >= 1,
            "must be at least 1",
        )?;
        pos(
            "train.lr_step_factor",
            t.lr_step_factor > 0.0 && t.lr_step_factor <= 1.0,
            "must be in (0, 1]",
        )?;
        Ok(())
    }
}

/// Builds a [`Config`] from layers of partial YAML over the assembled defaults.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    tree: Value,
    /// The modality whose `data` section the tree holds (none: `data` stays empty).
    modality: Option<&'static str>,
}

impl ConfigBuilder {
    /// Core's defaults with every registered model's section, and no `data` section.
    pub fn new() -> Result<Self> {
        let mut tree: Value = serde_yaml::from_str(DEFAULTS)
            .map_err(|e| Error::Invalid(format!("defaults.yaml: {e}")))?;
        let net = tree
            .get_mut("net")
            .and_then(Value::as_mapping_mut)
            .ok_or_else(|| Error::Invalid("defaults.yaml: no net section".into()))?;
        for entry in crate::models::models() {
            if let Some(spec) = &entry.config {
                let name = spec.path.strip_prefix("net.").ok_or_else(|| {
                    Error::Invalid(format!(
                        "model `{}`: its section `{}` is not under net.",
                        entry.name, spec.path
                    ))
                })?;
                net.insert(name.into(), spec.default_value()?);
            }
        }
        let data = Value::String("data".into());
        tree.as_mapping_mut()
            .ok_or_else(|| Error::Invalid("defaults.yaml: not a mapping".into()))?
            .insert(data, empty_section());
        Ok(Self {
            tree,
            modality: None,
        })
    }

    /// [`ConfigBuilder::new`] with `modality`'s `data` section.
    pub fn for_modality(modality: &'static Modality) -> Result<Self> {
        let mut b = Self::new()?;
        if let Some(m) = b.tree.as_mapping_mut() {
            m.insert("data".into(), modality.config.default_value()?);
        }
        b.modality = Some(modality.name);
        Ok(b)
    }

    /// Overlay a YAML document (a preset, a `--config` file). `source` names it in errors.
    pub fn merge_yaml(&mut self, text: &str, source: &str) -> Result<&mut Self> {
        let overlay: Value = serde_yaml::from_str(text)
            .map_err(|e| Error::Invalid(format!("{source}: not valid YAML: {e}")))?;
        match overlay {
            Value::Null => {}
            Value::Mapping(m) => merge(&mut self.tree, m, "", source)?,
            _ => {
                return Err(Error::Invalid(format!(
                    "{source}: expected a mapping of keys (model:, net:, train:)"
                )))
            }
        }
        Ok(self)
    }

    /// Overlay one key, `net.hidden=128` style; the value is parsed as YAML.
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self> {
        let parsed: Value = serde_yaml::from_str(value)
            .map_err(|e| Error::config(key, format!("`{value}` is not a valid value: {e}")))?;
        self.set_value(key, parsed)
    }

    /// Overlay one key with a string taken as it is (a command-line option such as `--size
    /// 0x5`, which YAML would read as the hexadecimal number 5).
    pub fn set_string(&mut self, key: &str, value: &str) -> Result<&mut Self> {
        self.set_value(key, Value::String(value.to_string()))
    }

    /// Overlay one key from a command-line option's text, read as its kind says.
    pub fn set_option(&mut self, key: &str, kind: OptionKind, text: &str) -> Result<&mut Self> {
        match kind {
            OptionKind::Value => self.set(key, text),
            OptionKind::Word => self.set_string(key, text),
            OptionKind::Switch => self.set_value(key, Value::Bool(true)),
        }
    }

    fn set_value(&mut self, key: &str, parsed: Value) -> Result<&mut Self> {
        let mut node = parsed;
        for part in key.split('.').rev() {
            let mut m = Mapping::new();
            m.insert(Value::String(part.to_string()), node);
            node = Value::Mapping(m);
        }
        match node {
            Value::Mapping(m) => merge(&mut self.tree, m, "", "--set")?,
            _ => unreachable!("a key has at least one part"),
        }
        Ok(self)
    }

    /// `key=value`.
    pub fn set_pair(&mut self, pair: &str) -> Result<&mut Self> {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| Error::Invalid(format!("--set expects key=value, got `{pair}`")))?;
        self.set(k.trim(), v.trim())
    }

    pub fn build(&self) -> Result<Config> {
        let mut tree = self.tree.clone();
        resolve_auto(&mut tree, self.modality)?;
        let cfg: Config = serde_path_to_error::deserialize(tree).map_err(|e| {
            let key = e.path().to_string();
            Error::config(key, e.into_inner().to_string())
        })?;
        cfg.validate()?;
        if let Some(name) = self.modality {
            (crate::registry::find_modality(name)?.config.check)(&cfg.data)?;
            crate::registry::check_strategy(name, &cfg.train)?;
        }
        for spec in crate::models::models()
            .iter()
            .filter_map(|e| e.config.as_ref())
        {
            let name = spec.path.strip_prefix("net.").unwrap_or(spec.path);
            if let Some(v) = cfg.net.models.get(name) {
                (spec.check)(v)?;
            }
        }
        Ok(cfg)
    }
}

/// Every key with its default and its comment, as one YAML document: core's `defaults.yaml` with
/// each model's section under `net` and, with a modality named, its `data` section.
pub fn documented_defaults(modality: Option<&Modality>) -> Result<String> {
    let indent = |text: &str, by: &str| -> String {
        text.lines()
            .map(|l| format!("{by}{l}\n"))
            .collect::<String>()
    };
    let mut out = String::new();
    let mut lines = DEFAULTS.lines().peekable();
    // The header comment and `model:` come first.
    while let Some(l) = lines.next_if(|l| !l.starts_with("net:")) {
        out += l;
        out.push('\n');
    }
    if let Some(m) = modality {
        let body = m.config.default_value()?;
        if body.as_mapping().is_some_and(|d| !d.is_empty()) {
            out += &format!("data:                  # how {} inputs are read\n", m.name);
            out += &indent(m.config.defaults, "  ");
        }
    }
    while let Some(l) = lines.next_if(|l| !l.starts_with("train:")) {
        out += l;
        out.push('\n');
    }
    for entry in crate::models::models() {
        if let Some(spec) = &entry.config {
            let name = spec.path.strip_prefix("net.").unwrap_or(spec.path);
            out += &format!(
                "  {name}:  # --model {}: {}\n",
                entry.name, entry.description
            );
            out += &indent(spec.defaults, "    ");
        }
    }
    for l in lines {
        out += l;
        out.push('\n');
    }
    Ok(out)
}

/// Where a configuration starts before the files, `--set` pairs and options go over it.
#[derive(Debug, Clone, Copy)]
pub enum Base<'a> {
    /// The defaults (the modality's, when the layers name one).
    Defaults,
    /// A named preset over the defaults; its modality must be the layers' one, if they name one.
    Preset(&'a str),
    /// A configuration saved with a run (resuming): taken whole, before the files and options.
    Saved(&'a Config),
}

/// Everything a configuration is made of, in the order it is layered.
#[derive(Clone, Copy)]
pub struct Layers<'a> {
    pub modality: Option<&'static Modality>,
    pub base: Base<'a>,
    /// `--config` files.
    pub files: &'a [&'a Path],
    /// `--set key=value` pairs.
    pub sets: &'a [String],
    /// Command-line options: the full key, how to read the text, the text.
    pub options: &'a [(String, OptionKind, String)],
}

/// The one way a configuration is put together: defaults (with the modality's and every model's
/// sections), the preset or saved config, each `--config` file, each `--set` pair, then each
/// option. `fit`, `profile` and `bench` all go through here.
pub fn assemble(layers: &Layers) -> Result<Config> {
    let mut b = match layers.modality {
        Some(m) => ConfigBuilder::for_modality(m)?,
        None => ConfigBuilder::new()?,
    };
    match layers.base {
        Base::Defaults => {}
        Base::Preset(name) => {
            let preset = crate::registry::find_preset(name)?;
            match layers.modality {
                Some(m) if m.name != preset.modality => {
                    return Err(Error::Invalid(format!(
                        "preset `{}` is for {} signals, not {}",
                        preset.name, preset.modality, m.name
                    )))
                }
                Some(_) => {}
                None => {
                    // The preset's modality gives the data section its keys.
                    let m = crate::registry::find_modality(preset.modality)?;
                    b = ConfigBuilder::for_modality(m)?;
                }
            }
            b.merge_yaml(preset.yaml, &format!("preset {}", preset.name))?;
        }
        Base::Saved(config) => {
            let mut saved = config.clone();
            // Runs saved before each modality owned its section listed every modality's keys.
            if let (Some(m), Some(data)) = (layers.modality, saved.data.as_mapping_mut()) {
                let known = m.config.default_value()?;
                data.retain(|k, _| known.get(k).is_some());
            }
            b.merge_yaml(&saved.to_yaml(), "the saved config")?;
        }
    }
    for path in layers.files {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(*path, e))?;
        b.merge_yaml(&text, &path.display().to_string())?;
    }
    for pair in layers.sets {
        b.set_pair(pair)?;
    }
    for (key, kind, text) in layers.options {
        b.set_option(key, *kind, text)?;
    }
    b.build()
}

/// Replace `auto` optimiser keys by the model's own settings ([`OptimDefaults`]); with
/// `train.recipe: fast`, by the modality's fast recipe for the model where it registers one.
fn resolve_auto(tree: &mut Value, modality: Option<&str>) -> Result<()> {
    let model = match tree.get("model") {
        Some(Value::String(m)) => m.clone(),
        _ => return Err(Error::config("model", "must be a model name")),
    };
    let layers = tree
        .get("net")
        .and_then(|n| n.get("layers"))
        .and_then(Value::as_u64)
        .unwrap_or(1) as usize;
    let entry = crate::models::find_model(&model)?;
    let Some(train) = tree.get_mut("train").and_then(|t| t.as_mapping_mut()) else {
        return Err(Error::config("train", "is a value, not a section"));
    };
    let recipe: Recipe = match train.get("recipe") {
        Some(v) => serde_yaml::from_value(v.clone())
            .map_err(|_| Error::config("train.recipe", format!("{v:?} is not paper or fast")))?,
        None => Recipe::Paper,
    };
    let o = match recipe {
        Recipe::Fast => modality
            .and_then(|m| crate::registry::find_fast_recipe(m, entry.name))
            .map(|r| r.optim)
            .or(entry.fast)
            .unwrap_or(entry.optim),
        Recipe::Paper => entry.optim,
    };
    let is_auto = |v: Option<&Value>| v.and_then(|v| v.as_str()) == Some("auto");
    let schedule = match o.schedule {
        LrSchedule::Cosine => "cosine",
        LrSchedule::Step => "step",
    };
    let lr_scale = Value::Sequence((o.lr_scale)(layers).into_iter().map(Value::from).collect());
    let resolved: [(&str, Value); 10] = [
        ("lr", o.lr.into()),
        (
            "betas",
            Value::Sequence(vec![o.betas[0].into(), o.betas[1].into()]),
        ),
        ("eps", o.eps.into()),
        ("weight_decay", o.weight_decay.into()),
        ("lr_schedule", schedule.into()),
        ("lr_step_every", (o.step_every as u64).into()),
        ("lr_step_factor", o.step_factor.into()),
        ("lr_scale", lr_scale),
        ("lr_horizon", (o.horizon as u64).into()),
        ("ema", o.ema.into()),
    ];
    for (key, value) in resolved {
        if is_auto(train.get(key)) {
            train.insert(key.into(), value);
        }
    }
    if is_auto(train.get("lr_min")) {
        // A tenth of the starting rate, as the paper's 1e-4 -> 1e-5.
        let lr = train.get("lr").and_then(|v| v.as_f64()).unwrap_or(o.lr);
        train.insert("lr_min".into(), (lr / 10.0).into());
    }
    Ok(())
}

fn merge(base: &mut Value, overlay: Mapping, prefix: &str, source: &str) -> Result<()> {
    let base_map = base
        .as_mapping_mut()
        .ok_or_else(|| Error::config(prefix, "is a value, not a section"))?;
    for (k, v) in overlay {
        let name = match &k {
            Value::String(s) => s.clone(),
            other => {
                return Err(Error::Invalid(format!(
                    "{source}: key {other:?} is not a string"
                )))
            }
        };
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match base_map.get_mut(&k) {
            None => {
                let known: Vec<String> = base_map
                    .keys()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect();
                return Err(Error::config(
                    path,
                    format!("unknown key in {source} (known here: {})", known.join(", ")),
                ));
            }
            Some(slot) => match (slot.is_mapping(), v) {
                (true, Value::Mapping(m)) => merge(slot, m, &path, source)?,
                (true, _) => {
                    return Err(Error::config(
                        path,
                        format!("is a section in {source}; set its keys instead"),
                    ))
                }
                (false, v) => *slot = v,
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_build() {
        let c = ConfigBuilder::new().unwrap().build().unwrap();
        assert_eq!(c.model, "asmr");
        assert_eq!(c.net.layers, 4);
        assert_eq!(c.net.bases, Bases::Auto);
        assert_eq!(c.train.lr, 1e-4);
    }

    #[test]
    fn layering_and_set() {
        let mut b = ConfigBuilder::new().unwrap();
        b.merge_yaml("net:\n  layers: 3\n  bases: [8, 8, 8]\n", "preset")
            .unwrap();
        b.set_pair("net.hidden=128").unwrap();
        b.set_pair("net.bases=[[2,4],[4,2]]").unwrap();
        b.set_pair("net.layers=2").unwrap();
        b.set_pair("net.modulator=nonlinear").unwrap();
        let c = b.build().unwrap();
        assert_eq!(c.net.hidden, 128);
        assert_eq!(c.net.bases, Bases::PerAxis(vec![vec![2, 4], vec![4, 2]]));
        assert_eq!(c.net.modulator, ModulatorKind::Nonlinear);
        // Round trip through YAML.
        let mut again = ConfigBuilder::new().unwrap();
        again.merge_yaml(&c.to_yaml(), "saved").unwrap();
        assert_eq!(again.build().unwrap(), c);
    }

    #[test]
    fn learning_rate_factors_by_longest_prefix() {
        let mut b = ConfigBuilder::new().unwrap();
        b.set_pair("train.lr_scale=[backbone=2, backbone.3=3, modulator.1=0.5]")
            .unwrap();
        let t = b.build().unwrap().train;
        let names = [
            "backbone.0.weight",
            "backbone.3.bias",
            "backbone.30.bias",
            "modulator.1.weight",
            "modulator.2.weight",
        ];
        assert_eq!(t.lr_factor_of(&names).unwrap(), [2.0, 3.0, 2.0, 0.5, 1.0]);
        let err = t.lr_factor_of(&["layers.0.weight"]).unwrap_err();
        assert!(
            err.to_string().contains("`backbone` matches no parameter"),
            "{err}"
        );
        for bad in ["[backbone]", "[backbone=-1]", "[=2]", "[backbone=x]"] {
            let mut b = ConfigBuilder::new().unwrap();
            b.set("train.lr_scale", bad).unwrap();
            let err = b.build().unwrap_err().to_string();
            assert!(err.contains("train.lr_scale"), "{bad}: {err}");
        }
    }

    #[test]
    fn documented_defaults_are_the_defaults() {
        // The printed tree (with every model's section and its comments) reads back as the
        // builder's own defaults.
        let text = documented_defaults(None).unwrap();
        assert!(
            text.contains("  ngp:") && text.contains("log2_table"),
            "{text}"
        );
        let mut b = ConfigBuilder::new().unwrap();
        b.merge_yaml(&text, "documented").unwrap();
        assert_eq!(
            b.build().unwrap(),
            ConfigBuilder::new().unwrap().build().unwrap()
        );
        let printed: Value = serde_yaml::from_str(&text).unwrap();
        let mut own = ConfigBuilder::new().unwrap().tree;
        own.as_mapping_mut().unwrap().remove("data");
        assert_eq!(printed, own);
    }

    #[test]
    fn configs_saved_before_strategies_still_read() {
        // A checkpoint's metadata from before `train.strategy` existed.
        let mut v = serde_json::to_value(ConfigBuilder::new().unwrap().build().unwrap()).unwrap();
        v["train"].as_object_mut().unwrap().remove("strategy");
        let c: Config = serde_json::from_value(v).unwrap();
        assert_eq!(c.train.strategy, "auto");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = ConfigBuilder::new()
            .unwrap()
            .set_pair("net.hiden=3")
            .unwrap_err()
            .to_string();
        assert!(e.contains("net.hiden"), "{e}");
        let e = ConfigBuilder::new()
            .unwrap()
            .merge_yaml("train:\n  epoch_count: 3\n", "f.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("train.epoch_count") && e.contains("f.yaml"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_are_named() {
        for (pair, key) in [
            ("net.hidden=abc", "net.hidden"),
            ("net.hidden=0", "net.hidden"),
            ("train.iterations=0", "train.iterations"),
            ("train.epochs=0", "train.epochs"),
            ("train.grad_clip=-1", "train.grad_clip"),
            ("train.max_memory_gb=-3", "train.max_memory_gb"),
            ("train.time_limit=-5", "train.time_limit"),
            ("train.eval_every=0", "train.eval_every"),
            ("train.error_guided=1.5", "train.error_guided"),
            ("train.lr=-1", "train.lr"),
            ("net.modulator=cubic", "net.modulator"),
            ("net.bases=sometimes", "net.bases"),
            ("net.bases=[4,4]", "net.bases"),
            ("train.seed=1.5", "train.seed"),
        ] {
            let mut b = ConfigBuilder::new().unwrap();
            let e = b
                .set_pair(pair)
                .and_then(|b| b.build().map(|_| ()).map(|_| b))
                .err()
                .unwrap_or_else(|| panic!("{pair} accepted"))
                .to_string();
            assert!(e.contains(key), "{pair}: {e}");
        }
    }
}
