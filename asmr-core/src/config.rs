//! Run configuration: one YAML tree (`defaults.yaml` lists every key) layered as
//! defaults <- preset <- `--config` file <- `--set key=value`. Unknown keys and bad values are
//! rejected with the dotted key named.

use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};

use crate::error::{Error, Result};
use crate::grid::MultiResGrid;
use crate::modulator::ModulatorKind;

const DEFAULTS: &str = include_str!("defaults.yaml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub model: String,
    pub data: DataConfig,
    pub net: NetConfig,
    pub train: TrainConfig,
}

/// How the input is read; handed to the modality's loader as [`crate::LoadOptions`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub offset: Option<f64>,
    pub seconds: Option<f64>,
    pub sample_rate: Option<u32>,
    pub channels: Option<String>,
    pub float: bool,
    pub start: Option<f64>,
    pub frames: Option<usize>,
    pub stride: Option<usize>,
    pub size: Option<String>,
    pub resolution: Option<usize>,
    pub target: Option<String>,
}

impl DataConfig {
    /// The keys that are set, as loader options.
    pub fn load_options(&self) -> crate::LoadOptions {
        let mut o = crate::LoadOptions::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                o.insert(k.to_string(), v);
            }
        };
        put("offset", self.offset.map(|v| v.to_string()));
        put("seconds", self.seconds.map(|v| v.to_string()));
        put("sample_rate", self.sample_rate.map(|v| v.to_string()));
        put("channels", self.channels.clone());
        put("float", self.float.then(|| "true".to_string()));
        put("start", self.start.map(|v| v.to_string()));
        put("frames", self.frames.map(|v| v.to_string()));
        put("stride", self.stride.map(|v| v.to_string()));
        put("size", self.size.clone());
        put("resolution", self.resolution.map(|v| v.to_string()));
        put("target", self.target.clone());
        o
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    pub layers: usize,
    pub hidden: usize,
    pub w0: f64,
    pub bases: Bases,
    pub modulator: ModulatorKind,
    pub coord_range: f64,
    pub ffn: FfnConfig,
    pub wire: WireConfig,
    pub kilonerf: KiloNerfConfig,
    pub ngp: NgpConfig,
    pub grid: GridConfig,
}

/// `net.ffn`: Fourier-feature network (SPEC §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FfnConfig {
    /// `K`: features `sin(2^k pi x)`, `cos(2^k pi x)` for `k < K`.
    pub frequencies: usize,
}

/// `net.wire`: Gabor-wavelet network (SPEC §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireConfig {
    pub omega0: f64,
    pub sigma0: f64,
    /// Complex Gabor activations (real and imaginary parts carried separately), or the real form.
    pub complex: bool,
}

/// `net.kilonerf`: a grid of tiles, each with its own small MLP (SPEC §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KiloNerfConfig {
    /// Tiles per axis: one value for every axis, or one per axis.
    pub tiles: Vec<usize>,
    pub layers: usize,
    pub hidden: usize,
    pub frequencies: usize,
}

/// `net.ngp`: multiresolution hash encoding and a small ReLU MLP (SPEC §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NgpConfig {
    pub levels: usize,
    pub features: usize,
    pub log2_table: u32,
    pub min_res: usize,
    /// Finest resolution; `None` (`auto`): the signal's longest axis.
    #[serde(with = "auto_usize")]
    pub max_res: Option<usize>,
    pub hidden: usize,
}

/// `net.grid`: a learned dense grid of values, interpolated, no network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridConfig {
    /// Grid points per axis: one value for every axis or one per axis; empty (`auto`): half the
    /// signal's samples per axis.
    #[serde(with = "auto_list")]
    pub resolution: Vec<usize>,
}

/// `auto` or a number.
mod auto_usize {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Word(String),
        Num(usize),
    }

    pub fn serialize<S: Serializer>(v: &Option<usize>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => Repr::Num(*n),
            None => Repr::Word("auto".into()),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Num(n) => Ok(Some(n)),
            Repr::Word(w) if w == "auto" => Ok(None),
            Repr::Word(w) => Err(serde::de::Error::custom(format!(
                "`{w}` is neither auto nor a number"
            ))),
        }
    }
}

/// `auto` (an empty list) or a list of numbers (a single number is a list of one).
mod auto_list {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Word(String),
        Num(usize),
        List(Vec<usize>),
    }

    pub fn serialize<S: Serializer>(v: &[usize], s: S) -> Result<S::Ok, S::Error> {
        if v.is_empty() {
            Repr::Word("auto".into())
        } else {
            Repr::List(v.to_vec())
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<usize>, D::Error> {
        match Repr::deserialize(d)? {
            Repr::List(v) => Ok(v),
            Repr::Num(n) => Ok(vec![n]),
            Repr::Word(w) if w == "auto" => Ok(Vec::new()),
            Repr::Word(w) => Err(serde::de::Error::custom(format!(
                "`{w}` is neither auto nor a list of numbers"
            ))),
        }
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
    pub batch: usize,
    pub epochs: usize,
    pub sampler_grid: Vec<usize>,
    pub eval_every: usize,
    pub micro_batch: usize,
    pub grad_clip: f64,
    pub max_memory_gb: f64,
    pub time_limit: f64,
}

impl TrainConfig {
    /// Minibatch training (grid sampler, epochs) rather than full-grid steps.
    pub fn minibatch(&self) -> bool {
        self.batch > 0
    }
}

/// How the learning rate moves over a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// Cosine annealing from `lr` to `lr_min` over the run (SPEC §5).
    Cosine,
    /// `lr * lr_step_factor` every `lr_step_every` steps (Instant-NGP, SPEC §6).
    Step,
}

/// A model's own optimiser settings, used where the configuration says `auto`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimDefaults {
    pub lr: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
    pub schedule: LrSchedule,
    pub step_every: usize,
    pub step_factor: f64,
}

impl OptimDefaults {
    /// SPEC §5: Adam with PyTorch's defaults, cosine annealing; `lr` per model.
    pub const fn adam(lr: f64) -> Self {
        Self {
            lr,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
            schedule: LrSchedule::Cosine,
            step_every: 100,
            step_factor: 0.33,
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
            Error::Grid(m) => Error::config("net.bases", m),
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
            "net.coord_range",
            n.coord_range.is_finite() && n.coord_range > 0.0,
            "must be a positive number",
        )?;
        pos(
            "net.ffn.frequencies",
            n.ffn.frequencies <= 32,
            "must be at most 32",
        )?;
        pos(
            "net.wire.omega0",
            n.wire.omega0.is_finite() && n.wire.omega0 > 0.0,
            "must be a positive number",
        )?;
        pos(
            "net.wire.sigma0",
            n.wire.sigma0.is_finite() && n.wire.sigma0 > 0.0,
            "must be a positive number",
        )?;
        let k = &n.kilonerf;
        pos(
            "net.kilonerf.tiles",
            !k.tiles.is_empty() && !k.tiles.contains(&0),
            "must be one or more numbers of at least 1",
        )?;
        pos("net.kilonerf.layers", k.layers >= 1, "must be at least 1")?;
        pos("net.kilonerf.hidden", k.hidden >= 1, "must be at least 1")?;
        pos(
            "net.kilonerf.frequencies",
            k.frequencies <= 32,
            "must be at most 32",
        )?;
        let g = &n.ngp;
        pos("net.ngp.levels", g.levels >= 1, "must be at least 1")?;
        pos("net.ngp.features", g.features >= 1, "must be at least 1")?;
        pos(
            "net.ngp.log2_table",
            (4..=26).contains(&g.log2_table),
            "must be between 4 and 26",
        )?;
        pos("net.ngp.min_res", g.min_res >= 1, "must be at least 1")?;
        pos(
            "net.ngp.max_res",
            g.max_res.is_none_or(|m| m >= g.min_res),
            "must be auto or at least net.ngp.min_res",
        )?;
        pos("net.ngp.hidden", g.hidden >= 1, "must be at least 1")?;
        pos(
            "net.grid.resolution",
            !n.grid.resolution.contains(&0) && !n.grid.resolution.contains(&1),
            "grid points per axis must be at least 2",
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
        pos("train.epochs", t.epochs >= 1, "must be at least 1")?;
        pos("train.eval_every", t.eval_every >= 1, "must be at least 1")?;
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

/// Builds a [`Config`] from layers of partial YAML.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    tree: Value,
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigBuilder {
    pub fn new() -> Self {
        Self {
            tree: serde_yaml::from_str(DEFAULTS).expect("defaults.yaml is valid"),
        }
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

    fn set_value(&mut self, key: &str, parsed: Value) -> Result<&mut Self> {
        let mut node = Value::Null;
        for part in key.split('.').rev() {
            let mut m = Mapping::new();
            m.insert(Value::String(part.to_string()), std::mem::take(&mut node));
            node = Value::Mapping(m);
        }
        // Put the parsed value at the leaf.
        let mut leaf = &mut node;
        for part in key.split('.') {
            leaf = leaf
                .as_mapping_mut()
                .and_then(|m| m.get_mut(part))
                .expect("just built");
        }
        *leaf = parsed;
        match node {
            Value::Mapping(m) => merge(&mut self.tree, m, "", "--set")?,
            _ => unreachable!(),
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
        resolve_auto(&mut tree)?;
        let cfg: Config = serde_path_to_error::deserialize(tree).map_err(|e| {
            let key = e.path().to_string();
            Error::config(key, e.into_inner().to_string())
        })?;
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Replace `auto` optimiser keys by the model's own settings ([`OptimDefaults`]).
fn resolve_auto(tree: &mut Value) -> Result<()> {
    let model = match tree.get("model") {
        Some(Value::String(m)) => m.clone(),
        _ => return Err(Error::config("model", "must be a model name")),
    };
    let o = crate::models::find_model(&model)?.optim;
    let Some(train) = tree.get_mut("train").and_then(|t| t.as_mapping_mut()) else {
        return Err(Error::config("train", "is a value, not a section"));
    };
    let is_auto = |v: Option<&Value>| v.and_then(|v| v.as_str()) == Some("auto");
    let schedule = match o.schedule {
        LrSchedule::Cosine => "cosine",
        LrSchedule::Step => "step",
    };
    let resolved: [(&str, Value); 7] = [
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
    ];
    for (key, value) in resolved {
        if is_auto(train.get(key)) {
            train.insert(key.into(), value);
        }
    }
    if is_auto(train.get("lr_min")) {
        // A tenth of the starting rate, as SPEC §5's 1e-4 -> 1e-5.
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
        let c = ConfigBuilder::new().build().unwrap();
        assert_eq!(c.model, "asmr");
        assert_eq!(c.net.layers, 4);
        assert_eq!(c.net.bases, Bases::Auto);
        assert_eq!(c.train.lr, 1e-4);
    }

    #[test]
    fn layering_and_set() {
        let mut b = ConfigBuilder::new();
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
        let mut again = ConfigBuilder::new();
        again.merge_yaml(&c.to_yaml(), "saved").unwrap();
        assert_eq!(again.build().unwrap(), c);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = ConfigBuilder::new()
            .set_pair("net.hiden=3")
            .unwrap_err()
            .to_string();
        assert!(e.contains("net.hiden"), "{e}");
        let e = ConfigBuilder::new()
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
            ("train.lr=-1", "train.lr"),
            ("net.modulator=cubic", "net.modulator"),
            ("net.bases=sometimes", "net.bases"),
            ("net.bases=[4,4]", "net.bases"),
            ("train.seed=1.5", "train.seed"),
        ] {
            let mut b = ConfigBuilder::new();
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
