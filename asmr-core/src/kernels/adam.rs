//! Adam's step on a GPU as three in-place kernels per parameter (first moment, second moment,
//! update) instead of about fourteen candle ops, each its own launch: with a dozen parameters that
//! is the difference between about 40 and 170 launches per step. The CPU keeps `optim::Adam`'s
//! tensor ops (whose results the checkpoints and the parity figures were measured with).

use candle_core::{CpuStorage, CudaStorage, InplaceOp3, Layout, Result, Tensor};

use super::cuda::{self, device};

/// One step's constants: `step = lr / (1 - beta1^t)`, `sqrt_bc2 = sqrt(1 - beta2^t)`.
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub step: f32,
    pub sqrt_bc2: f32,
}

/// Update the parameter `p` and its moments `m`, `v` in place from the gradient `g`.
pub fn step(p: &Tensor, m: &Tensor, v: &Tensor, g: &Tensor, c: AdamStep) -> Result<()> {
    let g = g.contiguous()?;
    let moment = |beta, square| Moment {
        beta,
        square,
        wd: c.weight_decay,
    };
    m.inplace_op3(&g, p, &moment(c.beta1, false))?;
    v.inplace_op3(&g, p, &moment(c.beta2, true))?;
    p.inplace_op3(m, v, &Update(c))
}

/// `dst = beta dst + (1 - beta) d`, `d = g + wd p` (squared when `square`); sources `[g, p]`.
struct Moment {
    beta: f32,
    square: bool,
    wd: f32,
}

impl InplaceOp3 for Moment {
    fn name(&self) -> &'static str {
        "asmr-adam-moment"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        super::common_len(l1, &[l2, l3], "adam")?;
        let (g, p) = (
            super::cpu_f32(s2, l2, "adam")?,
            super::cpu_f32(s3, l3, "adam")?,
        );
        for ((mom, &g), &p) in super::cpu_f32_mut(s1, l1, "adam")?.iter_mut().zip(g).zip(p) {
            let d = if self.wd != 0.0 { g + self.wd * p } else { g };
            let d = if self.square { d * d } else { d };
            *mom = *mom * self.beta + d * (1.0 - self.beta);
        }
        Ok(())
    }

    fn cuda_fwd(
        &self,
        s1: &mut CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> Result<()> {
        let n = super::common_len(l1, &[l2, l3], "adam")?;
        let (g, p) = (
            device::operand(s2, l2, "adam")?,
            device::operand(s3, l3, "adam")?,
        );
        let mom = device::operand(s1, l1, "adam")?;
        let e = device::Gpu(&s1.device);
        cuda::adam_moment(&e, n, self.beta, self.square, self.wd, g, p, mom)
    }
}

/// `dst -= step m / (sqrt(v) / sqrt_bc2 + eps)`; sources `[m, v]`.
struct Update(AdamStep);

impl InplaceOp3 for Update {
    fn name(&self) -> &'static str {
        "asmr-adam-update"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        super::common_len(l1, &[l2, l3], "adam")?;
        let (m, v) = (
            super::cpu_f32(s2, l2, "adam")?,
            super::cpu_f32(s3, l3, "adam")?,
        );
        let c = self.0;
        for ((p, &m), &v) in super::cpu_f32_mut(s1, l1, "adam")?.iter_mut().zip(m).zip(v) {
            *p -= m / (v.sqrt() / c.sqrt_bc2 + c.eps) * c.step;
        }
        Ok(())
    }

    fn cuda_fwd(
        &self,
        s1: &mut CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> Result<()> {
        let n = super::common_len(l1, &[l2, l3], "adam")?;
        let (m, v) = (
            device::operand(s2, l2, "adam")?,
            device::operand(s3, l3, "adam")?,
        );
        let p = device::operand(s1, l1, "adam")?;
        let c = self.0;
        let e = device::Gpu(&s1.device);
        cuda::adam_update(&e, n, c.step, c.sqrt_bc2, c.eps, m, v, p)
    }
}
