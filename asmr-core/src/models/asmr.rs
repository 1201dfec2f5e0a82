//! ASMR (docs/method.md, "The ASMR network"): a SIREN backbone whose hidden layer `l-1` is modulated by level `l` of a
//! multi-resolution decomposition. Because a level-`l` activation depends only on digits `0..=l`, the
//! whole grid can be computed coarse-to-fine with each activation shared by the cell below it.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use std::sync::Arc;

use super::{crop_to, Model, ModelContext, ModelEntry, Prepared};
use crate::error::Result;
use crate::grid::{BatchCells, MultiResGrid};
use crate::kernels::gather::{gather_rows, RowIndex};
use crate::kernels::level::{level_forward, LevelMap};
use crate::kernels::output::level_output;
use crate::layers::{sine, siren_dense, Dense, Kernels, SirenInit};
use crate::modulator::Modulator;
use crate::profile::Profile;

pub struct Asmr {
    grid: MultiResGrid,
    signal_shape: Vec<usize>,
    w0: f64,
    hidden: usize,
    backbone: Vec<Dense>,
    /// `modulators[l - 1]` serves level `l`.
    modulators: Vec<Modulator>,
    /// Level-`l` coordinate grids, `[prod_a B_{a,l}, d]`.
    level_grids: Vec<Tensor>,
    /// How to go from resolution `i` to `i + 1`, for `i = 0..L-2`.
    plans: Vec<UpsamplePlan>,
    /// The same transitions for the fused kernels (empty where they do not run).
    level_maps: Vec<Arc<LevelMap>>,
    kernels: Kernels,
}

impl Asmr {
    pub fn new(ctx: &ModelContext, vb: VarBuilder) -> Result<Self> {
        let grid = ctx.resolve_grid()?;
        let net = &ctx.net;
        let (d, h, c, layers) = (grid.dims(), net.hidden, ctx.channels, net.layers);
        let mut backbone = Vec::with_capacity(layers);
        for i in 0..layers {
            let fan_in = if i == 0 { d } else { h };
            let fan_out = if i + 1 == layers { c } else { h };
            let init = if i == 0 {
                SirenInit::First
            } else {
                SirenInit::Hidden { w0: net.w0 }
            };
            backbone.push(siren_dense(fan_in, fan_out, init, vb.pp("backbone").pp(i))?);
        }
        let modulators = (1..layers)
            .map(|l| {
                let vb = vb.pp("modulator").pp(l);
                Modulator::new(
                    net.modulator,
                    d,
                    h,
                    net.w0,
                    net.modulator_scale,
                    ctx.kernels,
                    vb,
                )
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let level_grids = (0..layers)
            .map(|l| Tensor::from_vec(grid.level_grid(l), (grid.level_points(l), d), vb.device()))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let plans = (0..layers - 1)
            .map(|i| UpsamplePlan::new(&grid, i, vb.device()))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let level_maps = if ctx.kernels.fused_on_device(vb.device()) {
            (0..layers - 1)
                .map(|i| Arc::new(LevelMap::new(&grid, i)))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Self {
            plans,
            level_maps,
            kernels: ctx.kernels,
            grid,
            signal_shape: ctx.signal_shape.clone(),
            w0: net.w0,
            hidden: h,
            backbone,
            modulators,
            level_grids,
        })
    }

    /// Activation-sharing forward over the whole (padded) grid, raster order: fused level kernels
    /// (the last level fused with the output layer, so no full-resolution activation is ever
    /// stored) where the device has them, candle's own ops elsewhere.
    pub fn forward_full_grid(&self) -> candle_core::Result<Tensor> {
        let Some((last, inner)) = self.level_maps.split_last() else {
            return self.forward_full_grid_plain();
        };
        if self.kernels != Kernels::Fused {
            return self.forward_full_grid_plain();
        }
        let mut z = self.layer(0, &self.level_grids[0])?;
        for (i, map) in inner.iter().enumerate() {
            let m = self.modulation(i)?;
            z = self.layer(i + 1, &level_forward(&z, &m, map, self.w0)?)?;
        }
        let l = inner.len();
        let m = self.modulation(l)?;
        let out = &self.backbone[l + 1];
        let bias = out.bias().expect("SIREN layers have biases");
        level_output(&z, &m, out.weight(), bias, last, self.w0)
    }

    /// The activation-sharing forward written with candle's own ops only (any device; the
    /// reference the fused kernels are tested against).
    pub fn forward_full_grid_plain(&self) -> candle_core::Result<Tensor> {
        // Pre-activation of layer 0 on the level-0 grid. `w0` scales both operands at their own
        // (coarser) resolutions, so the upsampled sum goes straight into `sin`: one fine-resolution
        // tensor fewer in the forward and in the backward than `sin(w0 * (z + m))`.
        let mut z = self.layer(0, &self.level_grids[0])?;
        for (i, plan) in self.plans.iter().enumerate() {
            let m = self.modulation(i)?;
            let s = plan.upsample_add(
                &z.affine(self.w0, 0.0)?,
                &m.affine(self.w0, 0.0)?,
                self.hidden,
            )?;
            z = self.layer(i + 1, &s.sin()?)?;
        }
        Ok(z)
    }

    /// Deduplicated forward of a batch of grid indices: every distinct level cell the batch touches
    /// is computed once and shared by the samples under it (exact: same values and gradients as
    /// the per-sample forward). Fused kernels where the device has them, candle gathers elsewhere.
    pub fn forward_dedup(&self, idx: &[u32], fused: bool) -> candle_core::Result<Tensor> {
        self.forward_cells(self.grid.batch_cells(idx), fused)
    }

    /// [`Asmr::forward_dedup`] of a batch already grouped into its level cells.
    fn forward_cells(&self, cells: BatchCells, fused: bool) -> candle_core::Result<Tensor> {
        let dev = self.level_grids[0].device();
        let fused = fused && self.kernels.fused_on_device(dev);
        let gather = if fused { self.kernels } else { Kernels::Plain };
        let select = Arc::new(RowIndex::new(cells.sample_cell));
        let mut z = self.layer(0, &self.level_grids[0])?;
        let last = cells.links.len();
        if last == 0 {
            return gather_rows(&z, &select, gather);
        }
        let mut coarse = self.grid.level_points(0);
        for (i, (parent, digit)) in cells.links.into_iter().enumerate() {
            let m = self.modulation(i)?;
            let cells_here = parent.len();
            if fused {
                let map = Arc::new(LevelMap::from_links(
                    parent,
                    digit,
                    coarse,
                    self.grid.level_points(i + 1),
                )?);
                z = if i + 1 == last {
                    let layer = &self.backbone[i + 1];
                    let bias = layer.bias().expect("SIREN layers have biases");
                    level_output(&z, &m, layer.weight(), bias, &map, self.w0)?
                } else {
                    self.layer(i + 1, &level_forward(&z, &m, &map, self.w0)?)?
                };
            } else {
                let pt = Tensor::from_vec(parent, cells_here, dev)?;
                let dt = Tensor::from_vec(digit, cells_here, dev)?;
                // `w0` applied before the gathers, as in the full-grid forward.
                let zs = z.affine(self.w0, 0.0)?.index_select(&pt, 0)?;
                let ms = m.affine(self.w0, 0.0)?.index_select(&dt, 0)?;
                z = self.layer(i + 1, &(zs + ms)?.sin()?)?;
            }
            coarse = cells_here;
        }
        gather_rows(&z, &select, gather)
    }

    /// Backbone layer `i`; a layer that a level follows leaves out its bias, which
    /// [`Asmr::modulation`] adds instead: the level's modulation has one row per digit, far fewer
    /// than the cells this product runs on, so the bias's broadcast and its gradient's reduction
    /// run on that small tensor (the same sums).
    fn layer(&self, i: usize, x: &Tensor) -> candle_core::Result<Tensor> {
        if i + 1 < self.backbone.len() {
            x.matmul(&self.backbone[i].weight().t()?)
        } else {
            self.backbone[i].forward(x)
        }
    }

    /// Level `i + 1`'s modulation `[prod_a B_{a,i+1}, h]` plus the bias of hidden layer `i`.
    fn modulation(&self, i: usize) -> candle_core::Result<Tensor> {
        let m = self.modulators[i].forward(&self.level_grids[i + 1])?;
        match self.backbone[i].bias() {
            Some(b) => m.broadcast_add(b),
            None => Ok(m),
        }
    }

    /// Per-sample forward: decompose every index and run the layers sample by sample.
    pub fn forward_per_sample(&self, idx: &[u32]) -> candle_core::Result<Tensor> {
        let d = self.grid.dims();
        let n = idx.len() / d;
        let dev = self.level_grids[0].device();
        let levels = self.grid.decompose(idx);
        let mut z = self.backbone[0].forward(&Tensor::from_vec(levels[0].clone(), (n, d), dev)?)?;
        for (i, u) in levels.into_iter().enumerate().skip(1) {
            let m = self.modulators[i - 1].forward(&Tensor::from_vec(u, (n, d), dev)?)?;
            z = self.backbone[i].forward(&sine(&(z + m)?, self.w0, self.kernels)?)?;
        }
        Ok(z)
    }
}

/// Nearest-upsampling of the level-`i` pre-activation by the level-`i+1` bases plus the tiled
/// level-`i+1` modulation, as one operation.
enum UpsamplePlan {
    /// `[C_0, 1, C_1, 1, ..., h] + [1, B_0, 1, B_1, ..., h]` (trivial axes merged away) is exactly
    /// the upsampled sum in raster order (cell `k` -> `k*B + digit`), materialised once.
    Broadcast {
        coarse: Vec<usize>,
        modulation: Vec<usize>,
        points: usize,
    },
    /// When the broadcast would exceed candle's rank limit (many axes): gather both operands with
    /// precomputed indices.
    Gather { parent: Tensor, digit: Tensor },
}

/// Candle's largest tensor rank.
const MAX_RANK: usize = 8;

impl UpsamplePlan {
    fn new(grid: &MultiResGrid, i: usize, dev: &candle_core::Device) -> candle_core::Result<Self> {
        let d = grid.dims();
        let cur: Vec<usize> = (0..d).map(|a| grid.cumulative(a, i)).collect();
        let next: Vec<usize> = (0..d).map(|a| grid.base(a, i + 1)).collect();
        let points = grid.resolution(i + 1);
        // Pairs of (coarse size, modulation size) per output dim, then the usual broadcast
        // simplification: drop size-1 dims, merge neighbours that broadcast the same way.
        let mut dims: Vec<(usize, usize)> = Vec::new();
        for a in 0..d {
            for pair in [(cur[a], 1), (1, next[a])] {
                if pair.0 * pair.1 == 1 {
                    continue;
                }
                match dims.last_mut() {
                    Some(last)
                        if (last.0 == 1) == (pair.0 == 1) && (last.1 == 1) == (pair.1 == 1) =>
                    {
                        last.0 *= pair.0;
                        last.1 *= pair.1;
                    }
                    _ => dims.push(pair),
                }
            }
        }
        if dims.len() < MAX_RANK {
            let coarse = dims.iter().map(|p| p.0).collect();
            let modulation = dims.iter().map(|p| p.1).collect();
            return Ok(UpsamplePlan::Broadcast {
                coarse,
                modulation,
                points,
            });
        }
        let map = LevelMap::new(grid, i);
        Ok(UpsamplePlan::Gather {
            parent: Tensor::from_slice(map.parent(), points, dev)?,
            digit: Tensor::from_slice(map.digit(), points, dev)?,
        })
    }

    fn upsample_add(&self, z: &Tensor, m: &Tensor, h: usize) -> candle_core::Result<Tensor> {
        match self {
            UpsamplePlan::Broadcast {
                coarse,
                modulation,
                points,
            } => {
                let mut zs = coarse.clone();
                let mut ms = modulation.clone();
                zs.push(h);
                ms.push(h);
                z.reshape(zs)?
                    .broadcast_add(&m.reshape(ms)?)?
                    .reshape((*points, h))
            }
            UpsamplePlan::Gather { parent, digit } => {
                z.index_select(parent, 0)? + m.index_select(digit, 0)?
            }
        }
    }
}

impl Model for Asmr {
    fn forward_grid(&self) -> candle_core::Result<Tensor> {
        crop_to(
            &self.forward_full_grid()?,
            self.grid.shape(),
            &self.signal_shape,
        )
    }

    fn forward_points(&self, idx: &[u32]) -> candle_core::Result<Tensor> {
        self.forward_dedup(idx, true)
    }

    /// The batch's level cells.
    fn prepare_points(&self, idx: &[u32]) -> candle_core::Result<Option<Prepared>> {
        Ok(Some(Box::new(self.grid.batch_cells(idx))))
    }

    fn forward_prepared(
        &self,
        idx: &[u32],
        prepared: Option<Prepared>,
    ) -> candle_core::Result<Tensor> {
        match prepared.map(|p| p.downcast::<BatchCells>()) {
            Some(Ok(cells)) => self.forward_cells(*cells, true),
            _ => self.forward_points(idx),
        }
    }

    fn grid(&self) -> Option<&MultiResGrid> {
        Some(&self.grid)
    }
}

/// Cost (docs/method.md): backbone layer `i` runs at `prod_a C_{a,i}` points, modulator `l` at `prod_a B_{a,l}`,
/// the modulation add at every hidden resolution; totals are divided by the signal's sample count.
pub fn profile(ctx: &ModelContext) -> Result<Profile> {
    let grid = ctx.resolve_grid()?;
    let (d, h, c, layers) = (grid.dims(), ctx.net.hidden, ctx.channels, ctx.net.layers);
    let n = ctx.num_samples() as f64;
    let mut backbone = 0f64;
    let mut params = 0usize;
    for i in 0..layers {
        let m = if i == 0 {
            d * h + h
        } else if i + 1 == layers {
            h * c + c
        } else {
            h * h + h
        };
        params += m;
        backbone += m as f64 * grid.resolution(i) as f64;
    }
    let per_mod = ctx.net.modulator.params(d, h);
    let modulators: f64 = (1..layers)
        .map(|l| per_mod as f64 * grid.level_points(l) as f64)
        .sum();
    params += per_mod * (layers - 1);
    let adds: f64 = (0..layers.saturating_sub(1))
        .map(|i| (h * grid.resolution(i)) as f64)
        .sum();
    Ok(Profile::new(
        params,
        vec![
            ("backbone", backbone / n),
            ("modulators", modulators / n),
            ("adds", adds / n),
        ],
    ))
}

fn build(ctx: &ModelContext, vb: VarBuilder) -> Result<Box<dyn Model>> {
    Ok(Box::new(Asmr::new(ctx, vb)?))
}

/// ASMR's recipe for quality per second (`train.recipe: fast`; BENCHMARKS.md, "Quality per
/// second"): ten times the paper's learning rate, a short second-moment memory, and larger steps
/// for the hidden (x2) and output (x3) layers than for the first layer and the modulators, and a
/// short average of the weights, which smooths the jitter those steps leave.
const FAST: crate::config::OptimDefaults = crate::config::OptimDefaults {
    lr: 1e-3,
    betas: [0.9, 0.95],
    lr_scale: fast_lr_scale,
    horizon: 700,
    ema: 0.9,
    ..crate::config::OptimDefaults::adam(1e-3)
};

/// ASMR's fast recipe for 3-D signals (shapes, video), which those modalities register as theirs
/// ([`crate::registry::FastRecipe`]): the photos' layer factors make 3-D fits collapse (a bunny's
/// IoU falls to 0.43, a clip stalls at 11.6 dB), so the steps are gentler: three times the paper's
/// rate with the short second-moment memory, no layer factors, no horizon.
pub const FAST_3D: crate::config::OptimDefaults = crate::config::OptimDefaults {
    betas: [0.9, 0.95],
    ..crate::config::OptimDefaults::adam(3e-4)
};

fn fast_lr_scale(layers: usize) -> Vec<String> {
    (1..layers)
        .map(|i| format!("backbone.{i}={}", if i + 1 == layers { 3 } else { 2 }))
        .collect()
}

inventory::submit! {
    ModelEntry {
        name: "asmr",
        description: "Activation-Sharing Multi-Resolution SIREN (linear or nonlinear modulators)",
        uses_grid: true,
        build,
        profile,
        optim: crate::config::OptimDefaults::adam(1e-4),
        fast: Some(FAST),
        config: None,
    }
}
