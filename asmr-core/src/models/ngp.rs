//! Instant-NGP baseline (docs/method.md, "Baselines"): a multiresolution hash encoding, then a ReLU MLP with one
//! hidden layer; Adam lr 1e-2, betas (0.9, 0.99), eps 1e-15, weight decay 1e-6, lr x0.33 every
//! 100 steps.
//!
//! Level `l` of `L` has resolution `R_l = floor(R_min b^l)`, `b = exp(ln(R_max / R_min) / (L - 1))`,
//! so its lattice has `R_l + 1` vertices per axis over coordinates `u = x / (N - 1)` in `[0, 1]`.
//! A level whose lattice fits the table (`2^T` entries) is indexed densely; otherwise vertex `v`
//! goes to `XOR_a (v_a * pi_a) mod 2^T` with pi = 1, 2654435761, 805459861, ... Each level's
//! features are the multilinear interpolation of its `2^d` corners; the levels' features are
//! concatenated for the MLP. All levels share one table tensor (level offsets), so one gather
//! serves them all.

use std::sync::{Arc, OnceLock};

use candle_core::{Module, Tensor};
use candle_nn::{Init, VarBuilder};

use super::lattice::{Lattice, LatticeLevel};
use super::{all_indices, Model, ModelContext, ModelEntry, Prepared};
use crate::config::{auto_usize, LrSchedule, OptimDefaults, OptionSpec, Section, SectionSpec};
use crate::error::Result;
use crate::kernels::interp::{interpolate, Gather};
use crate::layers::{mlp_macs, Mlp};
use crate::profile::Profile;

pub use super::lattice::{spatial_hash, PRIMES};

/// `net.ngp`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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

impl Section for NgpConfig {
    const PATH: &'static str = "net.ngp";
    const DEFAULTS: &'static str = "\
levels: 16         # resolutions of the hash encoding
features: 2        # features per level
log2_table: 16     # 2^16 table entries per level
min_res: 16        # coarsest resolution
max_res: auto      # finest resolution; auto: the signal's longest axis
hidden: 64         # width of the MLP's one hidden layer
";
    const OPTIONS: &'static [OptionSpec] = &[
        OptionSpec::value(
            "levels",
            "ngp-levels",
            "Instant-NGP: levels of the hash encoding",
        ),
        OptionSpec::value(
            "log2_table",
            "ngp-log2-table",
            "Instant-NGP: log2 of the table entries per level (4..26)",
        ),
    ];

    fn validate(&self) -> Result<()> {
        let at_least_1 = [
            ("levels", self.levels),
            ("features", self.features),
            ("min_res", self.min_res),
            ("hidden", self.hidden),
        ];
        for (key, v) in at_least_1 {
            if v < 1 {
                return Err(Self::bad(key, "must be at least 1"));
            }
        }
        if !(4..=26).contains(&self.log2_table) {
            return Err(Self::bad("log2_table", "must be between 4 and 26"));
        }
        if self.max_res.is_some_and(|m| m < self.min_res) {
            return Err(Self::bad(
                "max_res",
                "must be auto or at least net.ngp.min_res",
            ));
        }
        Ok(())
    }
}

/// One level of the encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    pub resolution: usize,
    /// Table rows of this level (dense lattice size, or `2^T` when hashed).
    pub rows: usize,
    pub offset: usize,
    pub hashed: bool,
}

/// The levels for a context (`net.ngp`).
pub fn levels(ctx: &ModelContext) -> Result<Vec<Level>> {
    let g = ctx.section::<NgpConfig>()?;
    let d = ctx.dims() as u32;
    let max_res = g
        .max_res
        .unwrap_or_else(|| ctx.signal_shape.iter().copied().max().unwrap_or(1))
        .max(g.min_res);
    let b = if g.levels > 1 {
        ((max_res as f64).ln() - (g.min_res as f64).ln()) / (g.levels - 1) as f64
    } else {
        0.0
    };
    let table = 1usize << g.log2_table;
    let mut offset = 0;
    Ok((0..g.levels)
        .map(|l| {
            // Rounded before the floor so that R_max itself is reached despite float error.
            let resolution = ((g.min_res as f64 * (b * l as f64).exp()) + 1e-9).floor() as usize;
            let dense = (resolution as u128 + 1).checked_pow(d).unwrap_or(u128::MAX);
            let hashed = dense > table as u128;
            let rows = if hashed { table } else { dense as usize };
            let level = Level {
                resolution,
                rows,
                offset,
                hashed,
            };
            offset += rows;
            level
        })
        .collect())
}

pub struct Ngp {
    table: Tensor,
    mlp: Mlp,
    lattice: Lattice,
    shape: Vec<usize>,
    full: OnceLock<Arc<Gather>>,
    kernels: crate::kernels::Kernels,
}

fn mlp_sizes(ctx: &ModelContext, g: &NgpConfig) -> Vec<usize> {
    vec![g.levels * g.features, g.hidden, ctx.channels]
}

/// The encoding's lattices: level `l` spans `u = x / (N - 1)` in `[0, 1]` with `R_l + 1`
/// vertices per axis.
fn lattice(ctx: &ModelContext, levels: &[Level], log2_table: u32) -> Lattice {
    let unit: Vec<f32> = ctx
        .signal_shape
        .iter()
        .map(|&s| if s > 1 { 1.0 / (s - 1) as f32 } else { 0.0 })
        .collect();
    let lattice_levels = levels
        .iter()
        .map(|l| LatticeLevel {
            offset: l.offset,
            verts: vec![l.resolution + 1; unit.len()],
            scale: l.resolution as f32,
            hashed: l.hashed,
        })
        .collect();
    let rows = levels.iter().map(|l| l.rows).sum();
    Lattice::new(unit, lattice_levels, log2_table, rows)
}

impl Ngp {
    pub fn new(ctx: &ModelContext, vb: VarBuilder) -> Result<Self> {
        let g = ctx.section::<NgpConfig>()?;
        let levels = levels(ctx)?;
        let rows: usize = levels.iter().map(|l| l.rows).sum();
        let table = vb.get_with_hints(
            (rows, g.features),
            "table",
            Init::Uniform {
                lo: -1e-4,
                up: 1e-4,
            },
        )?;
        Ok(Self {
            table,
            mlp: Mlp::relu(&mlp_sizes(ctx, &g), vb.pp("mlp"))?.with_kernels(ctx.kernels),
            lattice: lattice(ctx, &levels, g.log2_table),
            shape: ctx.signal_shape.clone(),
            full: OnceLock::new(),
            kernels: ctx.kernels,
        })
    }
}

impl Ngp {
    fn forward_plan(&self, plan: &Arc<Gather>) -> candle_core::Result<Tensor> {
        self.mlp
            .forward(&interpolate(&self.table, plan, self.kernels)?)
    }
}

impl Model for Ngp {
    fn forward_grid(&self) -> candle_core::Result<Tensor> {
        let plan = self
            .full
            .get_or_init(|| Arc::new(self.lattice.plan(&all_indices(&self.shape))));
        self.forward_plan(plan)
    }

    fn forward_points(&self, idx: &[u32]) -> candle_core::Result<Tensor> {
        let plan = self.lattice.plan_for(idx, &self.table, self.kernels)?;
        self.forward_plan(&Arc::new(plan))
    }

    /// The batch's interpolation plan.
    fn prepare_points(&self, idx: &[u32]) -> candle_core::Result<Option<Prepared>> {
        self.lattice.prepare(idx, &self.table, self.kernels)
    }

    fn forward_prepared(
        &self,
        idx: &[u32],
        prepared: Option<Prepared>,
    ) -> candle_core::Result<Tensor> {
        match Lattice::prepared_plan(prepared) {
            Some(plan) => self.forward_plan(&plan),
            None => self.forward_points(idx),
        }
    }
}

/// Three columns: `mlp` (multiply-adds of the MLP), `interpolation` (per level `2^d F` weighted
/// reads and `2^d (d - 1)` weight products) and `hash` (per hashed level `2^d d` integer
/// multiplies; XORs and masks not counted).
pub fn profile(ctx: &ModelContext) -> Result<Profile> {
    let g = ctx.section::<NgpConfig>()?;
    let levels = levels(ctx)?;
    let (d, f) = (ctx.dims(), g.features);
    let corners = 1usize << d;
    let mlp = mlp_macs(&mlp_sizes(ctx, &g));
    let interp = levels.len() * (corners * f + corners * d.saturating_sub(1));
    let hash = levels.iter().filter(|l| l.hashed).count() * corners * d;
    let table: usize = levels.iter().map(|l| l.rows).sum::<usize>() * f;
    Ok(Profile::new(
        table + mlp,
        vec![
            ("mlp", mlp as f64),
            ("interpolation", interp as f64),
            ("hash", hash as f64),
        ],
    ))
}

fn build(ctx: &ModelContext, vb: VarBuilder) -> Result<Box<dyn Model>> {
    Ok(Box::new(Ngp::new(ctx, vb)?))
}

inventory::submit! {
    ModelEntry {
        name: "ngp",
        description: "Instant-NGP baseline: multiresolution hash encoding + ReLU MLP (lr 1e-2, step decay)",
        uses_grid: false,
        build,
        profile,
        optim: OptimDefaults {
            lr: 1e-2,
            betas: [0.9, 0.99],
            eps: 1e-15,
            weight_decay: 1e-6,
            schedule: LrSchedule::Step,
            step_every: 100,
            step_factor: 0.33,
            lr_scale: crate::config::no_lr_scale,
            horizon: 0,
            ema: 0.0,
        },
        fast: None,
        config: Some(SectionSpec::of::<NgpConfig>()),
    }
}
