//! `max(x + b, 0)` for the rows of a ReLU layer, the bias add fused into the activation: the sum is
//! never stored, and the backward reads only the output (`out > 0` is the mask) and the gradient.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

#[cfg(feature = "cuda")]
use super::cuda::{
    self,
    device::{operand, run_into},
};
use super::{cpu_f32, par_rows, rows_and_bias};
#[cfg(feature = "cuda")]
use candle_core::CudaStorage;

/// `max(x + b, 0)` for rows `x: [n, h]` and a bias `b: [h]`: the fused kernel on the CPU for f32,
/// candle's own ops elsewhere.
pub fn relu_bias(x: &Tensor, b: &Tensor, k: super::Kernels) -> Result<Tensor> {
    let f32s = x.dtype() == candle_core::DType::F32 && b.dtype() == candle_core::DType::F32;
    if k.fused_on(x) && f32s && x.rank() == 2 {
        x.contiguous()?.apply_op2(&b.contiguous()?, ReluBias)
    } else {
        x.broadcast_add(b)?.relu()
    }
}

struct ReluBias;

impl CustomOp2 for ReluBias {
    fn name(&self) -> &'static str {
        "asmr-relu-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, h, x, b) = rows_and_bias((s1, l1), (s2, l2), "relu with bias")?;
        let mut out = vec![0f32; n * h];
        par_rows(n, h, n * h, &mut out, |r, o| {
            let xs = &x[r.start * h..r.end * h];
            for (o, xr) in o.chunks_exact_mut(h).zip(xs.chunks_exact(h)) {
                for ((o, &v), &bj) in o.iter_mut().zip(xr).zip(b) {
                    *o = (v + bj).max(0.0);
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let what = "relu with bias";
        let (n, h) = super::rows_and_bias_dims(l1, l2, what)?;
        let (x, b) = (operand(s1, l1, what)?, operand(s2, l2, what)?);
        let out = run_into(&s1.device, n * h, false, |e, o| {
            cuda::relu_bias_fwd(e, n, h, x, b, o)
        })?;
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let gx = res.apply_op2_no_bwd(&grad.contiguous()?, &ReluMask)?;
        let gb = super::reduce::column_sums(&gx)?;
        Ok((Some(gx), Some(gb)))
    }
}

/// `g` where the output is positive, 0 elsewhere (candle's ReLU takes the same subgradient, 0 at 0).
struct ReluMask;

impl CustomOp2 for ReluMask {
    fn name(&self) -> &'static str {
        "asmr-relu-mask"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, g) = (
            cpu_f32(s1, l1, "relu backward")?,
            cpu_f32(s2, l2, "relu backward")?,
        );
        if y.len() != g.len() {
            candle_core::bail!("relu backward: gradient has the wrong size");
        }
        let mut out = vec![0f32; y.len()];
        par_rows(y.len(), 1, y.len(), &mut out, |r, o| {
            for ((o, &yv), &gv) in o.iter_mut().zip(&y[r.clone()]).zip(&g[r]) {
                *o = if yv > 0.0 { gv } else { 0.0 };
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let what = "relu backward";
        let n = super::same_len(l1, l2, what)?;
        let (y, g) = (operand(s1, l1, what)?, operand(s2, l2, what)?);
        let out = run_into(&s1.device, n, false, |e, o| cuda::relu_mask(e, n, y, g, o))?;
        Ok((out, l1.shape().clone()))
    }
}
