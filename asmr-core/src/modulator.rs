//! Level modulators (docs/method.md, "The ASMR network"): map a level's coordinates `u` (d values) to `h` values that enter the
//! sine of the hidden layer fed by that level.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::layers::{dense, Dense, Kernels, Mlp};

/// Width of the nonlinear modulator's hidden layers.
pub const NONLINEAR_WIDTH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ModulatorKind {
    /// `m = w0 * V u`, `V` is `h x d`, no bias.
    #[default]
    Linear,
    /// A 3-layer SIREN `d -> 32 -> 32 -> h`, output unscaled.
    Nonlinear,
}

impl ModulatorKind {
    /// Parameters (= MACs per evaluated point) of one modulator.
    pub fn params(self, d: usize, h: usize) -> usize {
        match self {
            ModulatorKind::Linear => d * h,
            ModulatorKind::Nonlinear => {
                let w = NONLINEAR_WIDTH;
                (w * d + w) + (w * w + w) + (w * h + h)
            }
        }
    }
}

#[derive(Debug, Clone)]
pub enum Modulator {
    Linear { v: Dense, w0: f64 },
    Nonlinear(Mlp),
}

impl Modulator {
    /// `scale` multiplies the linear modulator's initial bound (`net.modulator_scale`).
    pub fn new(
        kind: ModulatorKind,
        d: usize,
        h: usize,
        w0: f64,
        scale: f64,
        kernels: Kernels,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(match kind {
            ModulatorKind::Linear => {
                let bound = scale / (d as f64).sqrt();
                Modulator::Linear {
                    v: dense(d, h, false, bound, vb)?,
                    w0,
                }
            }
            ModulatorKind::Nonlinear => Modulator::Nonlinear(
                Mlp::sine(d, NONLINEAR_WIDTH, h, 3, w0, vb)?.with_kernels(kernels),
            ),
        })
    }
}

impl Module for Modulator {
    fn forward(&self, u: &Tensor) -> Result<Tensor> {
        match self {
            Modulator::Linear { v, w0 } => v.forward(u)?.affine(*w0, 0.0),
            Modulator::Nonlinear(mlp) => mlp.forward(u),
        }
    }
}
