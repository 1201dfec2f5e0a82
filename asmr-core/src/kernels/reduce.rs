//! Column sums of rows `[n, h]`: the bias gradients of the fused layer ops. Candle's `sum(0)` on the
//! CPU; on a GPU one kernel that spreads the rows over many threads (candle's reduction kernels
//! were a quarter of a full-grid ASMR step on the H200, BENCHMARKS.md).

use candle_core::{Result, Tensor};

/// `sum_r x[r, :]`, shape `[h]`.
pub fn column_sums(x: &Tensor) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if x.device().is_cuda() && x.dtype() == candle_core::DType::F32 && x.rank() == 2 {
        return x.contiguous()?.apply_op1_no_bwd(&gpu::ColumnSums);
    }
    x.sum(0)
}

#[cfg(feature = "cuda")]
mod gpu {
    use candle_core::{CpuStorage, CudaStorage, CustomOp1, Layout, Result, Shape};

    use crate::kernels::cuda::{self, device};

    pub struct ColumnSums;

    impl CustomOp1 for ColumnSums {
        fn name(&self) -> &'static str {
            "asmr-column-sums"
        }

        fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
            let x = crate::kernels::cpu_f32(s, l, "column sums")?;
            let (_, h) = l.shape().dims2()?;
            let mut out = vec![0f32; h];
            for row in x.chunks_exact(h.max(1)) {
                crate::kernels::add_into(&mut out, row);
            }
            Ok((CpuStorage::F32(out), Shape::from(h)))
        }

        fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
            let (n, h) = l.shape().dims2()?;
            let x = device::operand(s, l, "column sums")?;
            let out =
                device::run_into(&s.device, h, true, |e, o| cuda::column_sums(e, n, h, x, o))?;
            Ok((out, Shape::from(h)))
        }
    }
}
