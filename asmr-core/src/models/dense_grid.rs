//! Dense-grid baseline (`--model grid`): a learned lattice of values, `net.grid.resolution` points
//! per axis spanning the signal corner to corner, read by (multi)linear interpolation — no network
//! at all. The honest reference for dense signals: parameters buy resolution directly.

use std::sync::{Arc, OnceLock};

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};

use super::lattice::{Lattice, LatticeLevel};
use super::{all_indices, Model, ModelContext, ModelEntry, Prepared};
use crate::config::{auto_list, OptimDefaults, OptionSpec, Section, SectionSpec};
use crate::error::{Error, Result};
use crate::kernels::interp::{interpolate, Gather};
use crate::profile::Profile;

/// `net.grid`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridConfig {
    /// Grid points per axis: one value for every axis or one per axis; empty (`auto`): half the
    /// signal's samples per axis.
    #[serde(with = "auto_list")]
    pub resolution: Vec<usize>,
}

impl Section for GridConfig {
    const PATH: &'static str = "net.grid";
    const DEFAULTS: &'static str = "\
resolution: auto   # points per axis (one value, or one per axis); auto: half the samples per axis
";
    const OPTIONS: &'static [OptionSpec] = &[OptionSpec::value(
        "resolution",
        "grid-resolution",
        "dense grid: points per axis, one value or [per, axis] (auto: half the samples)",
    )];

    fn validate(&self) -> Result<()> {
        if self.resolution.contains(&0) || self.resolution.contains(&1) {
            return Err(Self::bad(
                "resolution",
                "grid points per axis must be at least 2",
            ));
        }
        Ok(())
    }
}

pub struct DenseGrid {
    table: Tensor,
    lattice: Lattice,
    shape: Vec<usize>,
    /// The whole-signal gather, built on first use.
    full: OnceLock<Arc<Gather>>,
    kernels: crate::kernels::Kernels,
}

/// Lattice points per axis: `net.grid.resolution` (one for all axes or one per axis), or half
/// the samples (at least 2).
pub fn resolution(ctx: &ModelContext) -> Result<Vec<usize>> {
    let r = &ctx.section::<GridConfig>()?.resolution;
    let d = ctx.dims();
    match r.len() {
        0 => Ok(ctx
            .signal_shape
            .iter()
            .map(|&n| n.div_ceil(2).max(2))
            .collect()),
        1 => Ok(vec![r[0]; d]),
        n if n == d => Ok(r.clone()),
        n => Err(Error::config(
            "net.grid.resolution",
            format!("{n} values for a signal of {d} axes: give one, or one per axis"),
        )),
    }
}

impl DenseGrid {
    pub fn new(ctx: &ModelContext, vb: VarBuilder) -> Result<Self> {
        let verts = resolution(ctx)?;
        let rows: usize = verts.iter().product();
        let table = vb.get_with_hints((rows, ctx.channels), "table", Init::Const(0.0))?;
        // One lattice, corner to corner: grid index x sits at x (V - 1) / (N - 1).
        let unit = ctx
            .signal_shape
            .iter()
            .zip(&verts)
            .map(|(&s, &v)| {
                if s > 1 {
                    (v - 1) as f32 / (s - 1) as f32
                } else {
                    0.0
                }
            })
            .collect();
        let level = LatticeLevel {
            offset: 0,
            verts,
            scale: 1.0,
            hashed: false,
        };
        Ok(Self {
            table,
            lattice: Lattice::new(unit, vec![level], 0, rows),
            shape: ctx.signal_shape.clone(),
            full: OnceLock::new(),
            kernels: ctx.kernels,
        })
    }
}

impl Model for DenseGrid {
    fn forward_grid(&self) -> candle_core::Result<Tensor> {
        let plan = self
            .full
            .get_or_init(|| Arc::new(self.lattice.plan(&all_indices(&self.shape))));
        interpolate(&self.table, plan, self.kernels)
    }

    fn forward_points(&self, idx: &[u32]) -> candle_core::Result<Tensor> {
        let plan = self.lattice.plan_for(idx, &self.table, self.kernels)?;
        interpolate(&self.table, &Arc::new(plan), self.kernels)
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
            Some(plan) => interpolate(&self.table, &plan, self.kernels),
            None => self.forward_points(idx),
        }
    }
}

/// No MLP: `2^d` weighted reads per output channel, plus the `2^d (d - 1)` products that make the
/// corner weights.
pub fn profile(ctx: &ModelContext) -> Result<Profile> {
    let verts = resolution(ctx)?;
    let (d, c) = (ctx.dims(), ctx.channels);
    let corners = 1usize << d;
    Ok(Profile::new(
        verts.iter().product::<usize>() * c,
        vec![(
            "interpolation",
            (corners * c + corners * d.saturating_sub(1)) as f64,
        )],
    ))
}

fn build(ctx: &ModelContext, vb: VarBuilder) -> Result<Box<dyn Model>> {
    Ok(Box::new(DenseGrid::new(ctx, vb)?))
}

inventory::submit! {
    ModelEntry {
        name: "grid",
        description: "dense-grid baseline: learned values on a lattice, (multi)linear interpolation, no network (lr 1e-1)",
        uses_grid: false,
        build,
        profile,
        optim: OptimDefaults::adam(1e-1),
        fast: None,
        config: Some(SectionSpec::of::<GridConfig>()),
    }
}
