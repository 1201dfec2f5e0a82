//! Coordinate networks. Each model lives in its own module and registers a [`ModelEntry`] through
//! `inventory`, so crates added later can contribute models the CLI finds by name.

pub mod asmr;
pub mod dense_grid;
pub mod encoding;
pub mod ffn;
pub mod kilonerf;
pub mod lattice;
pub mod ngp;
pub mod siren;
pub mod wire;

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;

use crate::config::{NetConfig, OptimDefaults, Section, SectionSpec};
use crate::error::{Error, Result};
use crate::grid::MultiResGrid;
use crate::params::ParamStore;
use crate::profile::Profile;

/// What a model works out on the host for a batch before running it (index plans), made apart
/// from the forward so that a trainer can make the next batch's while a device runs this one.
pub type Prepared = Box<dyn std::any::Any + Send>;

/// A network fitted to one signal.
pub trait Model: Send + Sync {
    /// The whole signal in raster order, `[N, c]` over the signal's own shape (never its padding).
    /// Models that can share work across the grid (ASMR) do it here.
    fn forward_grid(&self) -> candle_core::Result<Tensor>;

    /// Any batch of grid indices, `idx` is `[n, d]` row-major; returns `[n, c]`.
    fn forward_points(&self, idx: &[u32]) -> candle_core::Result<Tensor>;

    /// The host-side part of `forward_points(idx)`, for [`Model::forward_prepared`]; `None` where
    /// a model has none worth doing ahead.
    fn prepare_points(&self, _idx: &[u32]) -> candle_core::Result<Option<Prepared>> {
        Ok(None)
    }

    /// `forward_points(idx)` from what `prepare_points(idx)` returned.
    fn forward_prepared(
        &self,
        idx: &[u32],
        _prepared: Option<Prepared>,
    ) -> candle_core::Result<Tensor> {
        self.forward_points(idx)
    }

    /// The multi-resolution grid the model runs on, when it has one.
    fn grid(&self) -> Option<&MultiResGrid> {
        None
    }
}

/// What a model is built for: its hyper-parameters and the signal's shape.
#[derive(Debug, Clone)]
pub struct ModelContext {
    pub net: NetConfig,
    pub signal_shape: Vec<usize>,
    pub channels: usize,
    /// A grid fixed in advance (a checkpoint's, padding included); otherwise resolved from `net.bases`.
    pub grid: Option<MultiResGrid>,
    /// Fused kernels (default) or candle's plain ops (the reference, for tests and benchmarks).
    pub kernels: crate::kernels::Kernels,
}

impl ModelContext {
    pub fn new(net: NetConfig, signal_shape: &[usize], channels: usize) -> Self {
        Self {
            net,
            signal_shape: signal_shape.to_vec(),
            channels,
            grid: None,
            kernels: Default::default(),
        }
    }

    /// The model's own section of `net` in its type ([`NetConfig::section`]).
    pub fn section<T: Section>(&self) -> Result<T> {
        self.net.section::<T>()
    }

    pub fn dims(&self) -> usize {
        self.signal_shape.len()
    }

    pub fn num_samples(&self) -> usize {
        self.signal_shape.iter().product()
    }

    /// The decomposition this context implies: the fixed grid, or `net.bases` resolved against the
    /// signal shape (automatic bases pad awkward sizes).
    pub fn resolve_grid(&self) -> Result<MultiResGrid> {
        let grid = match &self.grid {
            Some(g) => g.clone(),
            None => self
                .net
                .bases
                .resolve(&self.signal_shape, self.net.layers)?,
        };
        if grid.dims() != self.dims() {
            return Err(Error::Grid(format!(
                "the grid has {} axes, the signal {}",
                grid.dims(),
                self.dims()
            )));
        }
        if grid.levels() != self.net.layers {
            return Err(Error::config(
                "net.bases",
                format!(
                    "{} levels given but net.layers is {}: ASMR needs one level per layer",
                    grid.levels(),
                    self.net.layers
                ),
            ));
        }
        for (a, (&g, &n)) in grid.shape().iter().zip(&self.signal_shape).enumerate() {
            if g < n {
                return Err(Error::Grid(format!(
                    "axis {a}: grid of {g} cannot hold {n} samples"
                )));
            }
        }
        Ok(grid)
    }
}

pub type BuildFn = fn(&ModelContext, VarBuilder) -> Result<Box<dyn Model>>;
pub type ProfileFn = fn(&ModelContext) -> Result<Profile>;

/// A model registered by name.
pub struct ModelEntry {
    pub name: &'static str,
    pub description: &'static str,
    /// Whether the model runs on a multi-resolution grid (and so reports bases).
    pub uses_grid: bool,
    pub build: BuildFn,
    pub profile: ProfileFn,
    /// Optimiser settings the configuration's `auto` keys take (`train.recipe: paper`).
    pub optim: OptimDefaults,
    /// Settings for `train.recipe: fast`, where the model has its own (`None`: `optim`).
    pub fast: Option<OptimDefaults>,
    /// The model's own configuration section (`net.<name>`), if it has settings beyond the shared
    /// `net.*` keys.
    pub config: Option<SectionSpec>,
}

inventory::collect!(ModelEntry);

pub fn models() -> Vec<&'static ModelEntry> {
    let mut v: Vec<_> = inventory::iter::<ModelEntry>.into_iter().collect();
    v.sort_by_key(|m| m.name);
    v
}

pub fn find_model(name: &str) -> Result<&'static ModelEntry> {
    models()
        .into_iter()
        .find(|m| m.name == name)
        .ok_or_else(|| Error::Unknown {
            kind: "model",
            name: name.to_string(),
            known: models()
                .iter()
                .map(|m| m.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// A model built on a device, with the store that owns its parameters.
pub struct BuiltModel {
    pub entry: &'static ModelEntry,
    pub context: ModelContext,
    pub model: Box<dyn Model>,
    pub params: ParamStore,
    pub device: Device,
}

impl BuiltModel {
    /// Builds `context.net`'s model; new parameters come from `params` (seeded, or pre-filled from
    /// a checkpoint).
    pub fn new(
        name: &str,
        mut context: ModelContext,
        params: ParamStore,
        device: &Device,
    ) -> Result<Self> {
        let entry = find_model(name)?;
        if entry.uses_grid && context.grid.is_none() {
            context.grid = Some(context.resolve_grid()?);
        }
        let model = (entry.build)(&context, params.var_builder(device))?;
        Ok(Self {
            entry,
            context,
            model,
            params,
            device: device.clone(),
        })
    }

    pub fn profile(&self) -> Result<Profile> {
        (self.entry.profile)(&self.context)
    }
}

/// Every grid index of `shape` in raster order, `[N, d]` row-major.
pub fn all_indices(shape: &[usize]) -> Vec<u32> {
    let d = shape.len();
    let n: usize = shape.iter().product();
    let mut out = vec![0u32; n * d];
    let mut cur = vec![0u32; d];
    for p in 0..n {
        out[p * d..(p + 1) * d].copy_from_slice(&cur);
        for a in (0..d).rev() {
            cur[a] += 1;
            if (cur[a] as usize) < shape[a] {
                break;
            }
            cur[a] = 0;
        }
    }
    out
}

/// Keep the leading `signal` part of every axis of a `[prod(grid), c]` raster tensor.
pub fn crop_to(t: &Tensor, grid: &[usize], signal: &[usize]) -> candle_core::Result<Tensor> {
    if grid == signal {
        return Ok(t.clone());
    }
    let c = t.dim(1)?;
    let mut dims = grid.to_vec();
    dims.push(c);
    let mut x = t.reshape(dims)?;
    for (a, (&g, &s)) in grid.iter().zip(signal).enumerate() {
        if g != s {
            x = x.narrow(a, 0, s)?;
        }
    }
    let n: usize = signal.iter().product();
    x.contiguous()?.reshape((n, c))
}
