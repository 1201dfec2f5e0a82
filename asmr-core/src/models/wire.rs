//! WIRE baseline (docs/method.md, "Baselines"): Gabor-wavelet activations, omega0 20, sigma0 20, lr 1e-3.
//!
//! Complex form (default): the first layer is real (`d -> h`), its pre-activation `z` gives
//! `exp(i w0 z - (s0 z)^2)`; hidden layers are complex linear maps followed by
//! `exp(i w0 z - |s0 z|^2)`; the output layer is complex and its real part is the prediction. As
//! WIRE does, the complex width is `net.hidden / sqrt(2)` so the parameter count stays about that
//! of a real network. Candle has no complex type, so a complex activation is `[n, 2h]` (real
//! half, imaginary half), a complex layer one real product with a block matrix, and the Gabor
//! activation a fused kernel (`kernels::gabor`). Real form: real layers and
//! `cos(w0 z) exp(-(s0 z)^2)`. Init: PyTorch's default (real and imaginary parts drawn alike).

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use super::encoding::normalise;
use super::{all_indices, Model, ModelContext, ModelEntry};
use crate::config::{OptimDefaults, OptionSpec, Section, SectionSpec};
use crate::error::Result;
use crate::kernels::gabor::complex_gabor;
use crate::layers::{dense, mlp_macs, torch_dense, Dense};
use crate::profile::Profile;

/// A complex dense layer: real and imaginary weights (and biases). On `[n, 2h]` complex rows
/// `[a | b]` it is one real product with the block matrix `[[Wr^T, Wi^T], [-Wi^T, Wr^T]]`, which is
/// `(Wr + iWi)(a + ib)`; the output layer keeps only the real half, `[Wr^T; -Wi^T]`.
struct ComplexDense {
    re: Dense,
    im: Dense,
}

impl ComplexDense {
    fn new(fan_in: usize, fan_out: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            re: torch_dense(fan_in, fan_out, vb.pp("re"))?,
            im: torch_dense(fan_in, fan_out, vb.pp("im"))?,
        })
    }

    /// The output layer: its imaginary bias would never reach the (real) prediction.
    fn new_output(fan_in: usize, fan_out: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        let bound = 1.0 / (fan_in as f64).sqrt();
        Ok(Self {
            re: torch_dense(fan_in, fan_out, vb.pp("re"))?,
            im: dense(fan_in, fan_out, false, bound, vb.pp("im"))?,
        })
    }

    /// `(Wr + iWi) z` without the bias, and the bias `[br | bi]`, which the activation adds.
    fn forward_unbiased(&self, z: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let wr = self.re.weight().t()?;
        let wi = self.im.weight().t()?;
        let block = Tensor::cat(
            &[
                Tensor::cat(&[&wr, &wi], 1)?,
                Tensor::cat(&[&wi.neg()?, &wr], 1)?,
            ],
            0,
        )?;
        let bias = Tensor::cat(
            &[self.re.bias().expect("bias"), self.im.bias().expect("bias")],
            0,
        )?;
        Ok((z.matmul(&block)?, bias))
    }

    fn forward_real(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        let w = Tensor::cat(&[self.re.weight().t()?, self.im.weight().t()?.neg()?], 0)?;
        z.matmul(&w)?.broadcast_add(self.re.bias().expect("bias"))
    }
}

enum Layers {
    Complex {
        first: Dense,
        hidden: Vec<ComplexDense>,
        out: ComplexDense,
    },
    Real {
        layers: Vec<Dense>,
    },
}

pub struct Wire {
    layers: Layers,
    omega0: f64,
    sigma0: f64,
    shape: Vec<usize>,
    range: f32,
    device: candle_core::Device,
    kernels: crate::kernels::Kernels,
}

/// `net.wire`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireConfig {
    pub omega0: f64,
    pub sigma0: f64,
    /// Complex Gabor activations (real and imaginary parts carried separately), or the real form.
    pub complex: bool,
}

impl Section for WireConfig {
    const PATH: &'static str = "net.wire";
    const DEFAULTS: &'static str = "\
omega0: 20.0       # frequency of the Gabor wavelet
sigma0: 20.0       # width (scale) of its Gaussian window
complex: true      # complex Gabor (real and imaginary parts), or false for the real form
";
    const OPTIONS: &'static [OptionSpec] = &[
        OptionSpec::value("omega0", "wire-omega0", "WIRE: wavelet frequency omega0"),
        OptionSpec::value("sigma0", "wire-sigma0", "WIRE: wavelet window sigma0"),
    ];

    fn validate(&self) -> Result<()> {
        for (key, v) in [("omega0", self.omega0), ("sigma0", self.sigma0)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Self::bad(key, "must be a positive number"));
            }
        }
        Ok(())
    }
}

/// Width of the hidden layers: `hidden / sqrt(2)` (at least 1) when complex.
fn width(ctx: &ModelContext, w: &WireConfig) -> usize {
    if w.complex {
        ((ctx.net.hidden as f64 / std::f64::consts::SQRT_2) as usize).max(1)
    } else {
        ctx.net.hidden
    }
}

impl Wire {
    pub fn new(ctx: &ModelContext, vb: VarBuilder) -> Result<Self> {
        let w = ctx.section::<WireConfig>()?;
        let (d, c, h, l) = (ctx.dims(), ctx.channels, width(ctx, &w), ctx.net.layers);
        if l < 2 {
            return Err(crate::Error::config(
                "net.layers",
                "WIRE needs at least 2 layers (one Gabor layer and the output)",
            ));
        }
        let layers = if w.complex {
            Layers::Complex {
                first: torch_dense(d, h, vb.pp("0"))?,
                hidden: (1..l - 1)
                    .map(|i| ComplexDense::new(h, h, vb.pp(i)))
                    .collect::<candle_core::Result<_>>()?,
                out: ComplexDense::new_output(h, c, vb.pp(l - 1))?,
            }
        } else {
            let mut sizes = vec![d];
            sizes.extend(std::iter::repeat_n(h, l - 1));
            sizes.push(c);
            Layers::Real {
                layers: sizes
                    .windows(2)
                    .enumerate()
                    .map(|(i, w)| torch_dense(w[0], w[1], vb.pp(i)))
                    .collect::<candle_core::Result<_>>()?,
            }
        };
        Ok(Self {
            layers,
            omega0: w.omega0,
            sigma0: w.sigma0,
            shape: ctx.signal_shape.clone(),
            range: ctx.net.coord_range as f32,
            device: vb.device().clone(),
            kernels: ctx.kernels,
        })
    }

    fn forward_coords(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.layers {
            Layers::Complex { first, hidden, out } => {
                let (w0, s0, k) = (self.omega0, self.sigma0, self.kernels);
                let pre = x.matmul(&first.weight().t()?)?;
                let mut z = complex_gabor(&pre, first.bias().expect("bias"), w0, s0, true, k)?;
                for layer in hidden {
                    let (pre, bias) = layer.forward_unbiased(&z)?;
                    z = complex_gabor(&pre, &bias, w0, s0, false, k)?;
                }
                out.forward_real(&z)
            }
            Layers::Real { layers } => {
                let mut z = x.clone();
                let last = layers.len() - 1;
                for (i, layer) in layers.iter().enumerate() {
                    z = layer.forward(&z)?;
                    if i < last {
                        let s2 = self.sigma0 * self.sigma0;
                        let envelope = z.sqr()?.affine(-s2, 0.0)?.exp()?;
                        z = (z.affine(self.omega0, 0.0)?.cos()? * envelope)?;
                    }
                }
                Ok(z)
            }
        }
    }
}

impl Model for Wire {
    fn forward_grid(&self) -> candle_core::Result<Tensor> {
        self.forward_points(&all_indices(&self.shape))
    }

    fn forward_points(&self, idx: &[u32]) -> candle_core::Result<Tensor> {
        let d = self.shape.len();
        let x = normalise(&self.shape, idx, self.range);
        self.forward_coords(&Tensor::from_vec(x, (idx.len() / d, d), &self.device)?)
    }
}

/// Real multiply-adds: a complex product is four real ones; the output layer computes only the
/// real part (two per weight). Activations (exp, sin, cos) are not counted.
pub fn profile(ctx: &ModelContext) -> Result<Profile> {
    let w = ctx.section::<WireConfig>()?;
    let (d, c, h, l) = (ctx.dims(), ctx.channels, width(ctx, &w), ctx.net.layers);
    if !w.complex {
        let mut sizes = vec![d];
        sizes.extend(std::iter::repeat_n(h, l - 1));
        sizes.push(c);
        let m = mlp_macs(&sizes);
        return Ok(Profile::new(m, vec![("mlp", m as f64)]));
    }
    let first = d * h + h;
    let hidden = (l.saturating_sub(2)) * (4 * h * h + 2 * h);
    let out = 2 * h * c + c;
    let params = first + (l.saturating_sub(2)) * 2 * (h * h + h) + 2 * h * c + c;
    Ok(Profile::new(
        params,
        vec![("mlp", (first + hidden + out) as f64)],
    ))
}

fn build(ctx: &ModelContext, vb: VarBuilder) -> Result<Box<dyn Model>> {
    Ok(Box::new(Wire::new(ctx, vb)?))
}

inventory::submit! {
    ModelEntry {
        name: "wire",
        description: "WIRE baseline: (complex) Gabor-wavelet activations, omega0 20, sigma0 20 (lr 1e-3)",
        uses_grid: false,
        build,
        profile,
        optim: OptimDefaults::adam(1e-3),
        fast: None,
        config: Some(SectionSpec::of::<WireConfig>()),
    }
}
