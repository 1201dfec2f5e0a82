//! SIREN baseline (docs/method.md, "Baselines"): the ASMR backbone without modulation, fed coordinates normalised to
//! `[-r, r]` per axis (`r = net.coord_range`, 1 by default; the audio preset uses 5).

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use super::{all_indices, Model, ModelContext, ModelEntry};
use crate::error::Result;
use crate::layers::{mlp_macs, Mlp};
use crate::profile::Profile;

pub struct Siren {
    mlp: Mlp,
    shape: Vec<usize>,
    range: f32,
    device: candle_core::Device,
}

impl Siren {
    pub fn new(ctx: &ModelContext, vb: VarBuilder) -> Result<Self> {
        let net = &ctx.net;
        let mlp = Mlp::sine(
            ctx.dims(),
            net.hidden,
            ctx.channels,
            net.layers,
            net.w0,
            vb.pp("backbone"),
        )?
        .with_kernels(ctx.kernels);
        Ok(Self {
            mlp,
            shape: ctx.signal_shape.clone(),
            range: net.coord_range as f32,
            device: vb.device().clone(),
        })
    }

    /// `linspace(-r, r, N_a)[x]` per axis.
    fn normalise(&self, idx: &[u32]) -> candle_core::Result<Tensor> {
        let d = self.shape.len();
        let x = super::encoding::normalise(&self.shape, idx, self.range);
        Tensor::from_vec(x, (idx.len() / d, d), &self.device)
    }
}

impl Model for Siren {
    fn forward_grid(&self) -> candle_core::Result<Tensor> {
        self.forward_points(&all_indices(&self.shape))
    }

    fn forward_points(&self, idx: &[u32]) -> candle_core::Result<Tensor> {
        self.mlp.forward(&self.normalise(idx)?)
    }
}

fn sizes(ctx: &ModelContext) -> Vec<usize> {
    let mut s = vec![ctx.dims()];
    s.extend(std::iter::repeat_n(ctx.net.hidden, ctx.net.layers - 1));
    s.push(ctx.channels);
    s
}

pub fn profile(ctx: &ModelContext) -> Result<Profile> {
    let m = mlp_macs(&sizes(ctx));
    Ok(Profile::new(m, vec![("backbone", m as f64)]))
}

fn build(ctx: &ModelContext, vb: VarBuilder) -> Result<Box<dyn Model>> {
    Ok(Box::new(Siren::new(ctx, vb)?))
}

inventory::submit! {
    ModelEntry {
        name: "siren",
        description: "SIREN baseline: sine MLP on coordinates normalised to [-1, 1]",
        uses_grid: false,
        build,
        profile,
        optim: crate::config::OptimDefaults::adam(1e-4),
        fast: None,
        config: None,
    }
}
