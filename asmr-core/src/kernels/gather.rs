//! Row gathers `x[index]` whose backward is a scatter-add parallel over the indices. Candle's CUDA
//! `index_add` (the backward of `index_select`) loops over the indices serially: 93% of a 2^18-sample
//! ASMR minibatch step on the H200 went there. On the CPU, candle's own ops serve.

use std::sync::Arc;

use candle_core::{Result, Tensor};

use super::Kernels;

/// The rows a gather reads, with their copy on a GPU (made on first use there and kept as long
/// as the index, so a plan cached by a model is uploaded once).
#[derive(Debug)]
pub struct RowIndex {
    rows: Vec<u32>,
    /// One past the largest row (0 for an empty index).
    bound: usize,
    #[cfg(feature = "cuda")]
    uploaded: super::cuda::device::Uploaded,
}

impl RowIndex {
    pub fn new(rows: Vec<u32>) -> Self {
        let bound = rows.iter().max().map_or(0, |&m| m as usize + 1);
        Self {
            rows,
            bound,
            #[cfg(feature = "cuda")]
            uploaded: Default::default(),
        }
    }
}

/// `x[index[i], :]` for rows `x: [rows, w]`, shape `[index.len(), w]`.
pub fn gather_rows(x: &Tensor, index: &Arc<RowIndex>, k: Kernels) -> Result<Tensor> {
    let rows = x.dim(0)?;
    if index.bound > rows {
        candle_core::bail!("gather: row {} is outside the {rows} rows", index.bound - 1);
    }
    #[cfg(feature = "cuda")]
    if x.device().is_cuda()
        && k.fused_on(x)
        && x.dtype() == candle_core::DType::F32
        && x.rank() == 2
    {
        return x.contiguous()?.apply_op1(gpu::GatherRows {
            index: index.clone(),
            rows,
        });
    }
    let _ = k; // chooses the GPU kernel above; the CPU always takes candle's gather
    let len = index.rows.len();
    x.index_select(&Tensor::from_slice(&index.rows, len, x.device())?, 0)
}

#[cfg(feature = "cuda")]
mod gpu {
    use std::sync::Arc;

    use candle_core::{CpuStorage, CudaStorage, CustomOp1, Layout, Result, Shape, Tensor};

    use super::RowIndex;
    use crate::kernels::cuda::{self, device};

    pub struct GatherRows {
        pub index: Arc<RowIndex>,
        /// Rows of the gathered tensor.
        pub rows: usize,
    }

    impl GatherRows {
        fn index_on(&self, dev: &candle_core::CudaDevice) -> Result<cuda::Ptr> {
            self.index.uploaded.get(dev, || self.index.rows.clone())
        }
    }

    impl CustomOp1 for GatherRows {
        fn name(&self) -> &'static str {
            "asmr-gather-rows"
        }

        fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
            let x = crate::kernels::cpu_f32(s, l, "gather")?;
            let w = l.dims()[1];
            let out = self
                .index
                .rows
                .iter()
                .flat_map(|&i| x[i as usize * w..][..w].iter().copied())
                .collect();
            Ok((
                CpuStorage::F32(out),
                Shape::from((self.index.rows.len(), w)),
            ))
        }

        fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
            let (_, w) = l.shape().dims2()?;
            let x = device::operand(s, l, "gather")?;
            let idx = self.index_on(&s.device)?;
            let n = self.index.rows.len();
            let out = device::run_into(&s.device, n * w, false, |e, o| {
                cuda::gather_rows(e, n, w, idx, x, o)
            })?;
            Ok((out, Shape::from((n, w))))
        }

        fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
            let back = ScatterRows(GatherRows {
                index: self.index.clone(),
                rows: self.rows,
            });
            Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&back)?))
        }
    }

    /// `out[index[i], :] += g[i, :]`, `out: [rows, w]`.
    struct ScatterRows(GatherRows);

    impl CustomOp1 for ScatterRows {
        fn name(&self) -> &'static str {
            "asmr-scatter-rows"
        }

        fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
            let g = crate::kernels::cpu_f32(s, l, "gather backward")?;
            let w = l.dims()[1];
            let mut out = vec![0f32; self.0.rows * w];
            for (&i, row) in self.0.index.rows.iter().zip(g.chunks_exact(w.max(1))) {
                crate::kernels::add_into(&mut out[i as usize * w..][..w], row);
            }
            Ok((CpuStorage::F32(out), Shape::from((self.0.rows, w))))
        }

        fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
            let (n, w) = l.shape().dims2()?;
            if n != self.0.index.rows.len() {
                candle_core::bail!("gather backward: gradient has the wrong size");
            }
            let g = device::operand(s, l, "gather backward")?;
            let idx = self.0.index_on(&s.device)?;
            let rows = self.0.rows;
            let out = device::run_into(&s.device, rows * w, true, |e, o| {
                cuda::scatter_add_rows(e, n, w, idx, g, o)
            })?;
            Ok((out, Shape::from((rows, w))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn gathers_rows_and_rejects_rows_outside() {
        let x = Tensor::arange(0f32, 12.0, &Device::Cpu)
            .unwrap()
            .reshape((4, 3))
            .unwrap();
        let index = Arc::new(RowIndex::new(vec![3, 0, 3]));
        let g = gather_rows(&x, &index, Kernels::Fused).unwrap();
        let want = [[9f32, 10., 11.], [0., 1., 2.], [9., 10., 11.]];
        assert_eq!(g.to_vec2::<f32>().unwrap(), want);
        let outside = Arc::new(RowIndex::new(vec![1, 4]));
        let e = gather_rows(&x, &outside, Kernels::Fused).unwrap_err();
        assert!(e.to_string().contains("row 4 is outside the 4 rows"), "{e}");
    }
}
