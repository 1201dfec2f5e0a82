//! KiloNeRF baseline (docs/method.md, "Baselines"): the signal's domain is cut into a grid of tiles (16 per axis by
//! default, `net.kilonerf.tiles`), each with its own small MLP — 6 layers 32 wide, positional
//! encoding of the in-tile coordinate with 10 frequencies, LeakyReLU 0.2, Kaiming init; lr 5e-4.
//!
//! All tiles' layers are stored stacked (`[tiles, in, out]`). A batch is grouped by tile once
//! (counting sort, padded to the fullest tile), so each layer of every tile runs as one batched
//! matrix product, and one gather puts the outputs back in the batch's order: no per-sample or
//! per-tile loop in the hot path.

use std::sync::{Arc, OnceLock};

use candle_core::{Device, Tensor};
use candle_nn::{Init, VarBuilder};

use super::encoding::{fourier_features, fourier_width};
use super::{all_indices, Model, ModelContext, ModelEntry};
use crate::config::{OptimDefaults, OptionSpec, Section, SectionSpec};
use crate::error::{Error, Result};
use crate::kernels::gather::{gather_rows, RowIndex};
use crate::layers::{kaiming_bound, leaky_relu, mlp_macs};
use crate::profile::Profile;

const SLOPE: f64 = 0.2;

/// `net.kilonerf`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KiloNerfConfig {
    /// Tiles per axis: one value for every axis, or one per axis.
    pub tiles: Vec<usize>,
    pub layers: usize,
    pub hidden: usize,
    pub frequencies: usize,
}

impl Section for KiloNerfConfig {
    const PATH: &'static str = "net.kilonerf";
    const DEFAULTS: &'static str = "\
tiles: [16]        # tiles per axis (one value, or one per axis)
layers: 6          # layers of each tile's MLP, output layer included
hidden: 32         # width of each tile's MLP
frequencies: 10    # positional encoding of the in-tile coordinate
";
    const OPTIONS: &'static [OptionSpec] = &[OptionSpec::value(
        "tiles",
        "kilonerf-tiles",
        "KiloNeRF: tiles per axis, one value or [per, axis]",
    )];

    fn validate(&self) -> Result<()> {
        if self.tiles.is_empty() || self.tiles.contains(&0) {
            return Err(Self::bad(
                "tiles",
                "must be one or more numbers of at least 1",
            ));
        }
        if self.layers < 1 {
            return Err(Self::bad("layers", "must be at least 1"));
        }
        if self.hidden < 1 {
            return Err(Self::bad("hidden", "must be at least 1"));
        }
        if self.frequencies > 32 {
            return Err(Self::bad("frequencies", "must be at most 32"));
        }
        Ok(())
    }
}

/// Tiles per axis, at most one per sample.
pub fn tiles(ctx: &ModelContext) -> Result<Vec<usize>> {
    let t = &ctx.section::<KiloNerfConfig>()?.tiles;
    let d = ctx.dims();
    let per_axis = match t.len() {
        1 => vec![t[0]; d],
        n if n == d => t.clone(),
        n => {
            return Err(Error::config(
                "net.kilonerf.tiles",
                format!("{n} values for a signal of {d} axes: give one, or one per axis"),
            ))
        }
    };
    Ok(per_axis
        .iter()
        .zip(&ctx.signal_shape)
        .map(|(&t, &n)| t.min(n).max(1))
        .collect())
}

fn sizes(ctx: &ModelContext) -> Result<Vec<usize>> {
    let k = ctx.section::<KiloNerfConfig>()?;
    let mut s = vec![fourier_width(ctx.dims(), k.frequencies)];
    s.extend(std::iter::repeat_n(k.hidden, k.layers.saturating_sub(1)));
    s.push(ctx.channels);
    Ok(s)
}

/// A batch grouped by tile: `[tiles, per_tile, in]` inputs (padding rows are zeros) and where
/// each sample's output lands in the flattened `[tiles * per_tile]` result.
struct TilePlan {
    input: Tensor,
    /// Row of every sample in the tiles' stacked outputs.
    back: Arc<RowIndex>,
}

pub struct KiloNerf {
    weights: Vec<Tensor>,
    biases: Vec<Tensor>,
    tiles: Vec<usize>,
    shape: Vec<usize>,
    frequencies: usize,
    channels: usize,
    device: Device,
    full: OnceLock<Arc<TilePlan>>,
    kernels: crate::kernels::Kernels,
}

impl KiloNerf {
    pub fn new(ctx: &ModelContext, vb: VarBuilder) -> Result<Self> {
        let tiles = tiles(ctx)?;
        let count: usize = tiles.iter().product();
        let sizes = sizes(ctx)?;
        let mut weights = Vec::new();
        let mut biases = Vec::new();
        for (l, w) in sizes.windows(2).enumerate() {
            let (fan_in, fan_out) = (w[0], w[1]);
            let bound = kaiming_bound(fan_in, SLOPE);
            let vb = vb.pp(l);
            weights.push(vb.get_with_hints(
                (count, fan_in, fan_out),
                "weight",
                Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
            )?);
            biases.push(vb.get_with_hints((count, 1, fan_out), "bias", Init::Const(0.0))?);
        }
        Ok(Self {
            weights,
            biases,
            tiles,
            shape: ctx.signal_shape.clone(),
            frequencies: ctx.section::<KiloNerfConfig>()?.frequencies,
            channels: ctx.channels,
            device: vb.device().clone(),
            full: OnceLock::new(),
            kernels: ctx.kernels,
        })
    }

    fn plan(&self, idx: &[u32]) -> candle_core::Result<TilePlan> {
        let d = self.shape.len();
        let n = idx.len() / d;
        let count: usize = self.tiles.iter().product();
        // Tile of every sample and its coordinate inside the tile, in [-1, 1].
        let mut tile = vec![0u32; n];
        let mut local = vec![0f32; n * d];
        for (i, x) in idx.chunks_exact(d).enumerate() {
            let mut t = 0usize;
            for a in 0..d {
                let u = if self.shape[a] > 1 {
                    x[a] as f64 / (self.shape[a] - 1) as f64
                } else {
                    0.0
                };
                let scaled = u * self.tiles[a] as f64;
                let ta = (scaled.floor() as usize).min(self.tiles[a] - 1);
                local[i * d + a] = ((scaled - ta as f64) * 2.0 - 1.0) as f32;
                t = t * self.tiles[a] + ta;
            }
            tile[i] = t as u32;
        }
        let mut fill = vec![0usize; count];
        for &t in &tile {
            fill[t as usize] += 1;
        }
        let per_tile = fill.iter().copied().max().unwrap_or(0).max(1);
        let features = fourier_features(&local, d, self.frequencies);
        let width = fourier_width(d, self.frequencies);
        let mut input = vec![0f32; count * per_tile * width];
        let mut back = vec![0u32; n];
        fill.iter_mut().for_each(|f| *f = 0);
        for i in 0..n {
            let t = tile[i] as usize;
            let slot = t * per_tile + fill[t];
            fill[t] += 1;
            back[i] = slot as u32;
            input[slot * width..(slot + 1) * width]
                .copy_from_slice(&features[i * width..(i + 1) * width]);
        }
        Ok(TilePlan {
            input: Tensor::from_vec(input, (count, per_tile, width), &self.device)?,
            back: Arc::new(RowIndex::new(back)),
        })
    }

    fn run(&self, plan: &TilePlan) -> candle_core::Result<Tensor> {
        let mut z = plan.input.clone();
        let last = self.weights.len() - 1;
        for (l, (w, b)) in self.weights.iter().zip(&self.biases).enumerate() {
            z = z.matmul(w)?.broadcast_add(b)?;
            if l < last {
                z = leaky_relu(&z, SLOPE)?;
            }
        }
        let (t, m, _) = z.dims3()?;
        let rows = z.reshape((t * m, self.channels))?;
        gather_rows(&rows, &plan.back, self.kernels)
    }
}

impl Model for KiloNerf {
    fn forward_grid(&self) -> candle_core::Result<Tensor> {
        if self.full.get().is_none() {
            let plan = Arc::new(self.plan(&all_indices(&self.shape))?);
            let _ = self.full.set(plan);
        }
        self.run(self.full.get().expect("set above"))
    }

    fn forward_points(&self, idx: &[u32]) -> candle_core::Result<Tensor> {
        self.run(&self.plan(idx)?)
    }
}

/// A sample runs through one tile's MLP: its multiply-adds; parameters are every tile's.
pub fn profile(ctx: &ModelContext) -> Result<Profile> {
    let count: usize = tiles(ctx)?.iter().product();
    let s = sizes(ctx)?;
    let per_tile = mlp_macs(&s);
    Ok(Profile::new(
        count * per_tile,
        vec![("mlp", per_tile as f64)],
    ))
}

fn build(ctx: &ModelContext, vb: VarBuilder) -> Result<Box<dyn Model>> {
    Ok(Box::new(KiloNerf::new(ctx, vb)?))
}

inventory::submit! {
    ModelEntry {
        name: "kilonerf",
        description: "KiloNeRF baseline: a grid of tiles, one small LeakyReLU MLP each, run as batched products (lr 5e-4)",
        uses_grid: false,
        build,
        profile,
        optim: OptimDefaults::adam(5e-4),
        fast: None,
        config: Some(SectionSpec::of::<KiloNerfConfig>()),
    }
}
