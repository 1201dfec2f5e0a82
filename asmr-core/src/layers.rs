//! Dense layers with SIREN initialisation (docs/method.md, "The ASMR network"): weights and biases from `U(-r, r)`, `r = 1/fan_in`
//! for a network's first layer and `sqrt(6/fan_in)/w0` for every other layer.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// `x W^T + b` on `[n, in]` rows.
#[derive(Debug, Clone)]
pub struct Dense {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Dense {
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    pub fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }

    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }
}

impl Module for Dense {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.weight.t()?)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// Where a layer sits in a sine network, which fixes its init range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SirenInit {
    First,
    Hidden { w0: f64 },
}

impl SirenInit {
    pub fn bound(self, fan_in: usize) -> f64 {
        match self {
            SirenInit::First => 1.0 / fan_in as f64,
            SirenInit::Hidden { w0 } => (6.0 / fan_in as f64).sqrt() / w0,
        }
    }
}

/// A dense layer whose weight and bias come from `U(-r, r)`.
pub fn dense(
    fan_in: usize,
    fan_out: usize,
    bias: bool,
    bound: f64,
    vb: VarBuilder,
) -> Result<Dense> {
    let init = Init::Uniform {
        lo: -bound,
        up: bound,
    };
    let weight = vb.get_with_hints((fan_out, fan_in), "weight", init)?;
    let bias = if bias {
        Some(vb.get_with_hints(fan_out, "bias", init)?)
    } else {
        None
    };
    Ok(Dense { weight, bias })
}

pub fn siren_dense(
    fan_in: usize,
    fan_out: usize,
    init: SirenInit,
    vb: VarBuilder,
) -> Result<Dense> {
    dense(fan_in, fan_out, true, init.bound(fan_in), vb)
}

/// `sin(w0 * x)`; every sine network of the toolkit goes through here (fused kernel on the CPU).
pub use crate::kernels::sine::sine;
pub use crate::kernels::Kernels;

/// The activation between an MLP's layers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `sin(w0 x)`.
    Sine {
        w0: f64,
    },
    Relu,
}

/// Dense layers with an activation between them and a linear output layer.
#[derive(Debug, Clone)]
pub struct Mlp {
    layers: Vec<Dense>,
    activation: Activation,
    kernels: Kernels,
}

impl Mlp {
    /// A SIREN: `layers - 1` sine layers then a linear output layer, SIREN init throughout.
    pub fn sine(
        inputs: usize,
        hidden: usize,
        outputs: usize,
        layers: usize,
        w0: f64,
        vb: VarBuilder,
    ) -> Result<Self> {
        if layers < 1 {
            candle_core::bail!("a sine network needs at least one layer");
        }
        let mut out = Vec::with_capacity(layers);
        for i in 0..layers {
            let fan_in = if i == 0 { inputs } else { hidden };
            let fan_out = if i + 1 == layers { outputs } else { hidden };
            let init = if i == 0 {
                SirenInit::First
            } else {
                SirenInit::Hidden { w0 }
            };
            out.push(siren_dense(fan_in, fan_out, init, vb.pp(i))?);
        }
        Ok(Self {
            layers: out,
            activation: Activation::Sine { w0 },
            kernels: Kernels::default(),
        })
    }

    /// ReLU between layers of `sizes` = inputs, hidden widths..., outputs; PyTorch's default init.
    pub fn relu(sizes: &[usize], vb: VarBuilder) -> Result<Self> {
        if sizes.len() < 2 {
            candle_core::bail!("an MLP needs inputs and outputs");
        }
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| torch_dense(w[0], w[1], vb.pp(i)))
            .collect::<Result<_>>()?;
        Ok(Self {
            layers,
            activation: Activation::Relu,
            kernels: Kernels::default(),
        })
    }

    /// The same network running `kernels` (the fused kernels by default).
    pub fn with_kernels(mut self, kernels: Kernels) -> Self {
        self.kernels = kernels;
        self
    }

    pub fn layers(&self) -> &[Dense] {
        &self.layers
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut z = x.clone();
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            z = match (self.activation, layer.bias()) {
                _ if i == last => layer.forward(&z)?,
                (Activation::Sine { w0 }, Some(b)) => {
                    let pre = z.matmul(&layer.weight().t()?)?;
                    crate::kernels::sine::sine_bias(&pre, b, w0, self.kernels)?
                }
                (Activation::Sine { w0 }, None) => sine(&layer.forward(&z)?, w0, self.kernels)?,
                (Activation::Relu, Some(b)) => {
                    let pre = z.matmul(&layer.weight().t()?)?;
                    crate::kernels::relu::relu_bias(&pre, b, self.kernels)?
                }
                (Activation::Relu, None) => layer.forward(&z)?.relu()?,
            };
        }
        Ok(z)
    }
}

/// MACs of a dense stack as docs/method.md ("Cost") counts them: `fan_in * fan_out + fan_out` per layer.
pub fn mlp_macs(sizes: &[usize]) -> usize {
    sizes.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
}

/// PyTorch's default `nn.Linear` init: weight and bias from `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`.
pub fn torch_dense(fan_in: usize, fan_out: usize, vb: VarBuilder) -> Result<Dense> {
    dense(fan_in, fan_out, true, 1.0 / (fan_in as f64).sqrt(), vb)
}

/// Kaiming-uniform bound for a leaky ReLU of negative slope `slope` (fan-in mode).
pub fn kaiming_bound(fan_in: usize, slope: f64) -> f64 {
    (2.0 / (1.0 + slope * slope)).sqrt() * (3.0 / fan_in as f64).sqrt()
}

/// `max(x, slope * x)`: ReLU for a slope of 0, leaky ReLU otherwise.
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    if slope == 0.0 {
        x.relu()
    } else {
        x.maximum(&x.affine(slope, 0.0)?)
    }
}
