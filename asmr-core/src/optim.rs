//! Adam exactly as PyTorch defines it (bias-corrected moments; `eps` added after the corrected
//! square root). The moments are named like the parameters so a checkpoint can carry them.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// L2 penalty added to the gradient (PyTorch's `weight_decay`, not AdamW's decoupled one).
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

pub struct Adam {
    config: AdamConfig,
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Each variable's factor on the learning rate (`train.lr_scale`).
    factors: Vec<f64>,
    /// Steps taken (PyTorch's `state['step']`).
    t: u64,
}

impl Adam {
    pub fn new(vars: Vec<(String, Var)>, config: AdamConfig) -> Result<Self> {
        // Two allocations: the GPU step updates the moments in place.
        let zeros = || {
            vars.iter()
                .map(|(_, v)| v.zeros_like())
                .collect::<Result<Vec<_>>>()
        };
        let (m, v) = (zeros()?, zeros()?);
        let factors = vec![1.0; vars.len()];
        Ok(Self {
            config,
            vars,
            m,
            v,
            factors,
            t: 0,
        })
    }

    /// Variable names, in the order [`Adam::set_factors`] takes.
    pub fn names(&self) -> Vec<&str> {
        self.vars.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Per-variable learning-rate factors, in [`Adam::names`] order.
    pub fn set_factors(&mut self, factors: Vec<f64>) {
        assert_eq!(factors.len(), self.vars.len());
        self.factors = factors;
    }

    pub fn steps(&self) -> u64 {
        self.t
    }

    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.t += 1;
        let AdamConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.config;
        let bc1 = 1.0 - beta1.powi(self.t as i32);
        let bc2 = 1.0 - beta2.powi(self.t as i32);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var) else { continue };
            // A variable's gradient can still reference the step's activations (candle detaches
            // only the intermediate nodes' gradients); the moments would then hold every step's
            // graph alive, a leak of one step's activations per step.
            let g = g.detach();
            #[cfg(feature = "cuda")]
            if var.device().is_cuda() && var.dtype() == candle_core::DType::F32 {
                let c = crate::kernels::adam::AdamStep {
                    beta1: beta1 as f32,
                    beta2: beta2 as f32,
                    eps: eps as f32,
                    weight_decay: weight_decay as f32,
                    step: (lr * self.factors[i] / bc1) as f32,
                    sqrt_bc2: bc2.sqrt() as f32,
                };
                crate::kernels::adam::step(var.as_tensor(), &self.m[i], &self.v[i], &g, c)?;
                continue;
            }
            let g = if weight_decay > 0.0 {
                (g + (var.as_tensor().detach() * weight_decay)?)?
            } else {
                g
            };
            let g = &g;
            let m = ((&self.m[i] * beta1)? + (g * (1.0 - beta1))?)?;
            let v = ((&self.v[i] * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let denom = ((v.sqrt()? / bc2.sqrt())? + eps)?;
            let update = ((&m / &denom)? * (lr * self.factors[i] / bc1))?;
            var.set(&var.as_tensor().sub(&update)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// Moments by parameter name, for checkpoints: `(name, m, v)`.
    pub fn state(&self) -> Vec<(String, Tensor, Tensor)> {
        self.vars
            .iter()
            .zip(self.m.iter().zip(&self.v))
            .map(|((n, _), (m, v))| (n.clone(), m.clone(), v.clone()))
            .collect()
    }

    /// Restore moments and the step count saved by [`Adam::state`].
    pub fn load_state(
        &mut self,
        t: u64,
        mut lookup: impl FnMut(&str) -> Option<(Tensor, Tensor)>,
    ) -> Result<()> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            let (m, v) = lookup(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("no Adam state for `{name}`")))?;
            if m.shape() != var.shape() || v.shape() != var.shape() {
                candle_core::bail!("Adam state for `{name}` has the wrong shape");
            }
            self.m[i] = m.to_device(var.device())?;
            self.v[i] = v.to_device(var.device())?;
        }
        self.t = t;
        Ok(())
    }
}

/// An exponential moving average of the parameters (`train.ema`): after every step
/// `avg <- decay * avg + (1 - decay) * p`, started from the first step's parameters. A short average
/// smooths the last steps' jitter, which Adam's short second-moment memory makes large.
pub struct WeightAverage {
    decay: f64,
    values: Vec<(String, Tensor)>,
}

impl WeightAverage {
    pub fn new(decay: f64) -> Self {
        Self {
            decay,
            values: Vec::new(),
        }
    }

    pub fn decay(&self) -> f64 {
        self.decay
    }

    /// Fold in the parameters after a step.
    pub fn update(&mut self, vars: &[(String, Var)]) -> Result<()> {
        if self.values.is_empty() {
            self.values = vars
                .iter()
                .map(|(n, v)| Ok((n.clone(), v.as_tensor().copy()?.detach())))
                .collect::<Result<_>>()?;
            return Ok(());
        }
        let same = self.values.len() == vars.len()
            && self.values.iter().zip(vars).all(|((a, _), (b, _))| a == b);
        if !same {
            candle_core::bail!("the weight average holds other variables than the model's");
        }
        for ((_, avg), (_, var)) in self.values.iter_mut().zip(vars) {
            let p = var.as_tensor().detach();
            // On a GPU one kernel updates the average's own storage in place.
            #[cfg(feature = "cuda")]
            if p.device().is_cuda() && p.dtype() == candle_core::DType::F32 {
                crate::kernels::average::update(avg, &p, self.decay as f32)?;
                continue;
            }
            // p + decay * (avg - p): fresh storage, never the variable's own.
            *avg = (&p + ((&*avg - &p)? * self.decay)?)?;
        }
        Ok(())
    }

    /// The averaged values by parameter name (empty before the first step). A GPU updates them
    /// in place, so what must outlive the next step takes [`WeightAverage::snapshot`].
    pub fn values(&self) -> &[(String, Tensor)] {
        &self.values
    }

    /// A copy of the averaged values that later steps leave alone.
    pub fn snapshot(&self) -> Result<Vec<(String, Tensor)>> {
        self.values
            .iter()
            .map(|(n, t)| Ok((n.clone(), t.copy()?)))
            .collect()
    }

    /// Continue from values saved by [`WeightAverage::values`] (copied: the average owns its
    /// storage).
    pub fn load(&mut self, values: Vec<(String, Tensor)>) -> Result<()> {
        self.values = values
            .into_iter()
            .map(|(n, t)| Ok((n, t.copy()?)))
            .collect::<Result<_>>()?;
        Ok(())
    }
}

/// Step decay: `lr * factor^(step / every)` (PyTorch's StepLR).
pub fn step_lr(step: usize, lr: f64, every: usize, factor: f64) -> f64 {
    lr * factor.powi((step / every.max(1)) as i32)
}

/// Cosine annealing from `lr` at step 0 to `lr_min` at step `total` (PyTorch's CosineAnnealingLR
/// with `T_max = total`).
pub fn cosine_lr(step: usize, total: usize, lr: f64, lr_min: f64) -> f64 {
    let t = step.min(total) as f64 / total.max(1) as f64;
    lr_min + (lr - lr_min) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// The average starts at the first step's values, then moves `1 - decay` of the way to each
    /// new value; it owns its storage, so later updates of the variable leave it alone.
    #[test]
    fn the_weight_average_follows_the_update_rule() -> Result<()> {
        let dev = Device::Cpu;
        let var = Var::new(&[1f32, -2.0], &dev)?;
        let vars = vec![("p".to_string(), var.clone())];
        let mut avg = WeightAverage::new(0.75);
        avg.update(&vars)?;
        var.set(&Tensor::new(&[5f32, 2.0], &dev)?)?;
        let first: Vec<f32> = avg.values()[0].1.to_vec1()?;
        assert_eq!(first, vec![1.0, -2.0]);
        avg.update(&vars)?;
        var.set(&Tensor::new(&[-3f32, 6.0], &dev)?)?;
        avg.update(&vars)?;
        // 1 -> 0.75 + 1.25 = 2 -> 1.5 - 0.75 = 0.75; -2 -> -1 -> 0.75.
        let got: Vec<f32> = avg.values()[0].1.to_vec1()?;
        assert_eq!(got, vec![0.75, 0.75]);
        let other = vec![("q".to_string(), var.clone()), ("p".to_string(), var)];
        assert!(avg.update(&other).is_err());
        Ok(())
    }

    #[test]
    fn cosine_endpoints() {
        assert_eq!(cosine_lr(0, 100, 1e-4, 1e-5), 1e-4);
        assert!((cosine_lr(100, 100, 1e-4, 1e-5) - 1e-5).abs() < 1e-18);
        assert!((cosine_lr(50, 100, 1e-4, 1e-5) - 5.5e-5).abs() < 1e-12);
    }

    /// Three Adam steps on `f(p) = sum(c * p^2)`, against the update rule written out in f64: the
    /// default settings, and Instant-NGP's (betas 0.9/0.99, eps 1e-15, L2 weight decay).
    #[test]
    fn matches_the_pytorch_update_rule() {
        let ngp = AdamConfig {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-15,
            weight_decay: 0.1,
        };
        for config in [AdamConfig::default(), ngp] {
            let dev = Device::Cpu;
            let p0 = [0.5f64, -1.0, 2.0];
            let c = [1.0f64, 3.0, 0.1];
            let var = Var::from_tensor(
                &Tensor::new(&[p0[0] as f32, p0[1] as f32, p0[2] as f32], &dev).unwrap(),
            )
            .unwrap();
            let ct = Tensor::new(&[c[0] as f32, c[1] as f32, c[2] as f32], &dev).unwrap();
            let mut adam = Adam::new(vec![("p".into(), var.clone())], config).unwrap();
            let AdamConfig {
                beta1: b1,
                beta2: b2,
                eps,
                weight_decay: wd,
            } = config;
            let lr = 0.01;
            let mut p = p0;
            let (mut m, mut v) = ([0f64; 3], [0f64; 3]);
            for t in 1..=3 {
                let loss = (var.as_tensor().sqr().unwrap() * &ct)
                    .unwrap()
                    .sum_all()
                    .unwrap();
                adam.step(&loss.backward().unwrap(), lr).unwrap();
                for i in 0..3 {
                    let g = 2.0 * c[i] * p[i] + wd * p[i];
                    m[i] = b1 * m[i] + (1.0 - b1) * g;
                    v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                    let mh = m[i] / (1.0 - b1.powi(t));
                    let vh = v[i] / (1.0 - b2.powi(t));
                    p[i] -= lr * mh / (vh.sqrt() + eps);
                }
            }
            let got = var.as_tensor().to_vec1::<f32>().unwrap();
            for i in 0..3 {
                assert!((got[i] as f64 - p[i]).abs() < 1e-6, "{got:?} vs {p:?}");
            }
            assert_eq!(adam.steps(), 3);
        }
    }

    /// The moments must not hold the step's graph: a variable's gradient computed from tracked
    /// activations references them, and moments built from it would keep every step alive.
    #[test]
    fn moments_hold_no_graph() {
        let dev = Device::Cpu;
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 3), &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 3), &dev).unwrap()).unwrap();
        let x = Tensor::randn(0f32, 1.0, (5, 4), &dev).unwrap();
        let vars = vec![("w".to_string(), w.clone()), ("b".to_string(), b.clone())];
        let mut adam = Adam::new(vars, AdamConfig::default()).unwrap();
        // `b`'s gradient is (x w)^T g: computed from a tracked activation.
        let h = x.matmul(w.as_tensor()).unwrap();
        let loss = h
            .matmul(b.as_tensor())
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        assert!(
            grads.get(&b).unwrap().track_op(),
            "the premise: the gradient is tracked"
        );
        adam.step(&grads, 1e-3).unwrap();
        for (name, m, v) in adam.state() {
            assert!(
                !m.track_op() && !v.track_op(),
                "{name}: moments hold a graph"
            );
        }
    }

    #[test]
    fn step_decay() {
        assert_eq!(step_lr(0, 1e-2, 100, 0.33), 1e-2);
        assert_eq!(step_lr(99, 1e-2, 100, 0.33), 1e-2);
        assert!((step_lr(100, 1e-2, 100, 0.33) - 3.3e-3).abs() < 1e-15);
        assert!((step_lr(250, 1e-2, 100, 0.33) - 1e-2 * 0.33 * 0.33).abs() < 1e-15);
    }
}
