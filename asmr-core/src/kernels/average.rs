//! The weight average's update (`train.ema`) on a GPU as one in-place kernel per parameter instead
//! of three candle ops, each its own launch and allocation. The CPU keeps
//! `optim::WeightAverage`'s tensor ops.

use candle_core::{CpuStorage, CudaStorage, InplaceOp2, Layout, Result, Tensor};

use super::cuda::{self, device};

/// `avg = p + decay (avg - p)` in place.
pub fn update(avg: &Tensor, p: &Tensor, decay: f32) -> Result<()> {
    avg.inplace_op2(&p.contiguous()?, &Update(decay))
}

struct Update(f32);

impl InplaceOp2 for Update {
    fn name(&self) -> &'static str {
        "asmr-average-update"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        super::common_len(l1, &[l2], "weight average")?;
        let p = super::cpu_f32(s2, l2, "weight average")?;
        for (a, &p) in super::cpu_f32_mut(s1, l1, "weight average")?
            .iter_mut()
            .zip(p)
        {
            *a = p + (*a - p) * self.0;
        }
        Ok(())
    }

    fn cuda_fwd(
        &self,
        s1: &mut CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<()> {
        let n = super::common_len(l1, &[l2], "weight average")?;
        let p = device::operand(s2, l2, "weight average")?;
        let avg = device::operand(s1, l1, "weight average")?;
        let e = device::Gpu(&s1.device);
        cuda::average_update(&e, n, self.0, p, avg)
    }
}
