//! FFN baseline (docs/method.md, "Baselines"): Fourier features `[x, sin(2^k pi x), cos(2^k pi x)]` (`k <
//! net.ffn.frequencies`) of coordinates normalised to `[-1, 1]`, then a ReLU MLP of `net.layers`
//! layers `net.hidden` wide; PyTorch's default init; lr 1e-3.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use super::encoding::{fourier_features, fourier_width, normalise};
use super::{all_indices, Model, ModelContext, ModelEntry};
use crate::config::{OptimDefaults, OptionSpec, Section, SectionSpec};
use crate::error::Result;
use crate::layers::{mlp_macs, Mlp};
use crate::profile::Profile;

/// `net.ffn`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FfnConfig {
    /// `K`: features `sin(2^k pi x)`, `cos(2^k pi x)` for `k < K`.
    pub frequencies: usize,
}

impl Section for FfnConfig {
    const PATH: &'static str = "net.ffn";
    const DEFAULTS: &'static str = "\
frequencies: 10    # features x, sin(2^k pi x), cos(2^k pi x) for k < 10
";
    const OPTIONS: &'static [OptionSpec] = &[OptionSpec::value(
        "frequencies",
        "ffn-frequencies",
        "FFN: Fourier feature octaves K (sin/cos of 2^k pi x, k < K)",
    )];

    fn validate(&self) -> Result<()> {
        if self.frequencies > 32 {
            return Err(Self::bad("frequencies", "must be at most 32"));
        }
        Ok(())
    }
}

pub struct Ffn {
    mlp: Mlp,
    shape: Vec<usize>,
    frequencies: usize,
    range: f32,
    device: candle_core::Device,
}

fn sizes(ctx: &ModelContext) -> Result<Vec<usize>> {
    let f = ctx.section::<FfnConfig>()?;
    let mut s = vec![fourier_width(ctx.dims(), f.frequencies)];
    s.extend(std::iter::repeat_n(ctx.net.hidden, ctx.net.layers - 1));
    s.push(ctx.channels);
    Ok(s)
}

impl Ffn {
    pub fn new(ctx: &ModelContext, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            mlp: Mlp::relu(&sizes(ctx)?, vb.pp("mlp"))?.with_kernels(ctx.kernels),
            shape: ctx.signal_shape.clone(),
            frequencies: ctx.section::<FfnConfig>()?.frequencies,
            range: ctx.net.coord_range as f32,
            device: vb.device().clone(),
        })
    }
}

impl Model for Ffn {
    fn forward_grid(&self) -> candle_core::Result<Tensor> {
        self.forward_points(&all_indices(&self.shape))
    }

    fn forward_points(&self, idx: &[u32]) -> candle_core::Result<Tensor> {
        let d = self.shape.len();
        let x = normalise(&self.shape, idx, self.range);
        let f = fourier_features(&x, d, self.frequencies);
        let n = idx.len() / d;
        let width = f.len() / n.max(1);
        self.mlp
            .forward(&Tensor::from_vec(f, (n, width), &self.device)?)
    }
}

/// MLP MACs only; the encoding's sines and cosines are not counted (docs/method.md, "Cost", counts no sines).
pub fn profile(ctx: &ModelContext) -> Result<Profile> {
    let m = mlp_macs(&sizes(ctx)?);
    Ok(Profile::new(m, vec![("mlp", m as f64)]))
}

fn build(ctx: &ModelContext, vb: VarBuilder) -> Result<Box<dyn Model>> {
    Ok(Box::new(Ffn::new(ctx, vb)?))
}

inventory::submit! {
    ModelEntry {
        name: "ffn",
        description: "FFN baseline: Fourier features then a ReLU MLP (lr 1e-3)",
        uses_grid: false,
        build,
        profile,
        optim: OptimDefaults::adam(1e-3),
        fast: None,
        config: Some(SectionSpec::of::<FfnConfig>()),
    }
}
