//! The last ASMR level fused with the output layer: `out[p] = W sin(w0 (z[parent(p)] + m[digit(p)]))
//! + b`. The full-resolution hidden activations (`N x h`, by far the largest tensors of a step) are
//! never stored: the forward reduces each sample's `h` activations straight into its `c` outputs, and
//! the backward recomputes them (with their cosines) to form the gradients of `W`, `b`, `z` and `m`
//! in the same pass. On the CPU both take the sines by angle sums where cells share them
//! (`kernels::angles`).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::angles::Angles;
use super::level::LevelMap;
use super::output_grid::{self, Operands};
use super::sine::multiversion;
use super::{add_into, cpu_f32, par_rows, threads_for};
/// Most outputs the GPU kernels of this op take (`MAX_OUTPUTS` in `cuda/device.cuh`, where they sit
/// in registers); a layer with more runs after the level as a plain product.
pub const GPU_MAX_OUTPUTS: usize = 8;

/// `[N, c]` outputs of the last level and the output layer (`w` is `[c, h]`, `b` is `[c]`).
pub fn level_output(
    z: &Tensor,
    m: &Tensor,
    w: &Tensor,
    b: &Tensor,
    map: &Arc<LevelMap>,
    w0: f64,
) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if z.device().is_cuda() && w.dim(0)? > GPU_MAX_OUTPUTS {
        // More outputs than the GPU kernel keeps in registers: the level, then the layer.
        let a = super::level::level_forward(z, m, map, w0)?;
        return a.matmul(&w.t()?)?.broadcast_add(b);
    }
    // Weight and bias travel as one `[c, h + 1]` operand (custom ops take at most three inputs);
    // candle routes its gradient back through the concatenation.
    let wb = Tensor::cat(&[w, &b.unsqueeze(1)?], 1)?;
    z.contiguous()?.apply_op3(
        &m.contiguous()?,
        &wb.contiguous()?,
        LevelOutput {
            map: map.clone(),
            w0: w0 as f32,
        },
    )
}

struct LevelOutput {
    map: Arc<LevelMap>,
    w0: f32,
}

/// `sum_j a[j] * b[j]` with eight independent partial sums, so it vectorises.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

multiversion! {
    fn fwd_points(
        angles: &mut Angles<'_>, wb: &[f32], parent: &[u32], digit: &[u32], out: &mut [f32],
        act: &mut [f32], h: usize, c: usize
    ) {
        for ((o, &pa), &di) in out.chunks_exact_mut(c).zip(parent).zip(digit) {
            angles.sin(pa as usize, di as usize, act);
            for (k, ok) in o.iter_mut().enumerate() {
                let row = &wb[k * (h + 1)..][..h + 1];
                *ok = dot(act, &row[..h]) + row[h];
            }
        }
    }
}

multiversion! {
    #[allow(clippy::too_many_arguments)]
    fn bwd_points(
        angles: &mut Angles<'_>, wb: &[f32], g: &[f32], parent: &[u32], digit: &[u32],
        base: usize, gz: &mut [f32], gm: &mut [f32], gwb: &mut [f32], scratch: &mut [f32], h: usize,
        c: usize, w0: f32
    ) {
        let (sn, rest) = scratch.split_at_mut(h);
        let (cs, ga) = rest.split_at_mut(h);
        for ((gp, &pa), &di) in g.chunks_exact(c).zip(parent).zip(digit) {
            let (pa, di) = (pa as usize, di as usize);
            angles.sin_cos(pa, di, sn, cs);
            ga.fill(0.0);
            for (k, &gk) in gp.iter().enumerate() {
                let row = &wb[k * (h + 1)..][..h];
                let grow = &mut gwb[k * (h + 1)..][..h + 1];
                for j in 0..h {
                    ga[j] += gk * row[j];
                    grow[j] += gk * sn[j];
                }
                grow[h] += gk;
            }
            let gzr = &mut gz[(pa - base) * h..][..h];
            let gmr = &mut gm[di * h..][..h];
            for j in 0..h {
                let t = ga[j] * w0 * cs[j];
                gzr[j] += t;
                gmr[j] += t;
            }
        }
    }
}

impl LevelOutput {
    fn dims(&self, z: &Layout, m: &Layout, wb: &Layout) -> Result<(usize, usize)> {
        let (pz, h) = z.shape().dims2()?;
        let (pm, hm) = m.shape().dims2()?;
        let (c, h1) = wb.shape().dims2()?;
        if pz != self.map.coarse_points() || pm != self.map.mod_points() || h != hm || h1 != h + 1 {
            candle_core::bail!("asmr output op: operand shapes do not match the grid");
        }
        Ok((h, c))
    }
}

impl CustomOp3 for LevelOutput {
    fn name(&self) -> &'static str {
        "asmr-level-output"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (h, c) = self.dims(l1, l2, l3)?;
        let (z, m, wb) = (
            cpu_f32(s1, l1, "asmr output op")?,
            cpu_f32(s2, l2, "asmr output op")?,
            cpu_f32(s3, l3, "asmr output op")?,
        );
        let n = self.map.fine_points();
        let grid = Operands {
            map: &self.map,
            z,
            m,
            wb,
            h,
            c,
            w0: self.w0,
        };
        if let Some(out) = output_grid::forward(&grid)? {
            return Ok((CpuStorage::F32(out), Shape::from((n, c))));
        }
        let mut out = vec![0f32; n * c];
        par_rows(n, c, n * h, &mut out, |r, part| {
            let (pa, di) = (&self.map.parent()[r.clone()], &self.map.digit()[r]);
            let mut act = vec![0f32; h];
            let mut angles = Angles::new(z, m, pa, h, self.w0);
            fwd_points(&mut angles, wb, pa, di, part, &mut act, h, c)
        });
        Ok((CpuStorage::F32(out), Shape::from((n, c))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::device::{level_args, operand, storage, uninit, Gpu};
        let (h, c) = self.dims(l1, l2, l3)?;
        let dev = &s1.device;
        let a = level_args(h, self.w0, (s1, l1), (s2, l2), "asmr output op")?;
        let wb = operand(s3, l3, "asmr output op")?;
        let n = self.map.fine_points();
        let (out, p) = uninit(dev, n * c)?;
        let links = self.map.device_links(dev)?;
        super::cuda::level_output_fwd(&Gpu(dev), &links, a, c, wb, p)?;
        Ok((storage(out, dev), Shape::from((n, c))))
    }

    fn bwd(
        &self,
        z: &Tensor,
        m: &Tensor,
        wb: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (pz, h) = z.dims2()?;
        let (pm, _) = m.dims2()?;
        let c = wb.dim(0)?;
        let grads = LevelOutputGrads {
            map: self.map.clone(),
            w0: self.w0,
            grad: grad.contiguous()?,
        };
        let all = z.apply_op3_no_bwd(m, wb, &grads)?;
        let gz = all.narrow(0, 0, pz * h)?.reshape((pz, h))?;
        let gm = all.narrow(0, pz * h, pm * h)?.reshape((pm, h))?;
        let gwb = all
            .narrow(0, (pz + pm) * h, c * (h + 1))?
            .reshape((c, h + 1))?;
        Ok((Some(gz), Some(gm), Some(gwb)))
    }
}

/// Backward of [`LevelOutput`]: gradients of `z`, `m` and `[W | b]`, concatenated flat.
struct LevelOutputGrads {
    map: Arc<LevelMap>,
    w0: f32,
    grad: Tensor,
}

impl CustomOp3 for LevelOutputGrads {
    fn name(&self) -> &'static str {
        "asmr-level-output-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = LevelOutput {
            map: self.map.clone(),
            w0: self.w0,
        };
        let (h, c) = op.dims(l1, l2, l3)?;
        let (z, m, wb) = (
            cpu_f32(s1, l1, "asmr output op")?,
            cpu_f32(s2, l2, "asmr output op")?,
            cpu_f32(s3, l3, "asmr output op")?,
        );
        let (gs, gl) = self.grad.storage_and_layout();
        let g = match &*gs {
            candle_core::Storage::Cpu(s) => cpu_f32(s, gl, "asmr output op")?.to_vec(),
            _ => candle_core::bail!("asmr output op: the gradient is not on the CPU"),
        };
        drop(gs);
        let map = &self.map;
        let n = map.fine_points();
        if g.len() != n * c {
            candle_core::bail!("asmr output op: gradient has the wrong size");
        }
        let (nz, nm, nw) = (map.coarse_points() * h, map.mod_points() * h, c * (h + 1));
        let grid = Operands {
            map,
            z,
            m,
            wb,
            h,
            c,
            w0: self.w0,
        };
        if let Some(out) = output_grid::backward(&grid, &g)? {
            return Ok((CpuStorage::F32(out), Shape::from(nz + nm + nw)));
        }
        let mut out = vec![0f32; nz + nm + nw];
        let (gz_all, tail) = out.split_at_mut(nz);
        let (gm_total, gw_total) = tail.split_at_mut(nm);
        let threads = threads_for(n * h);
        let g = &g;
        let w0 = self.w0;
        let partials = map.par_backward(threads, gz_all, h, |fine, base, head| {
            let (pa, di) = (&map.parent()[fine.clone()], &map.digit()[fine.clone()]);
            let gslice = &g[fine.start * c..fine.end * c];
            let (mut gm, mut gw) = (vec![0f32; nm], vec![0f32; nw]);
            let mut scratch = vec![0f32; 3 * h];
            bwd_points(
                &mut Angles::new(z, m, pa, h, w0),
                wb,
                gslice,
                pa,
                di,
                base,
                head,
                &mut gm,
                &mut gw,
                &mut scratch,
                h,
                c,
                w0,
            );
            (gm, gw)
        });
        for (gm, gw) in partials {
            add_into(gm_total, &gm);
            add_into(gw_total, &gw);
        }
        Ok((CpuStorage::F32(out), Shape::from(nz + nm + nw)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::device::{level_args, operand, storage, zeros, Gpu};
        let op = LevelOutput {
            map: self.map.clone(),
            w0: self.w0,
        };
        let (h, c) = op.dims(l1, l2, l3)?;
        let map = &self.map;
        let dev = &s1.device;
        let a = level_args(h, self.w0, (s1, l1), (s2, l2), "asmr output op")?;
        let wb = operand(s3, l3, "asmr output op")?;
        let (gs, gl) = self.grad.storage_and_layout();
        let g = match &*gs {
            candle_core::Storage::Cuda(s) => operand(s, gl, "asmr output op")?,
            _ => candle_core::bail!("asmr output op: the gradient is not on the GPU"),
        };
        if gl.shape().elem_count() != map.fine_points() * c {
            candle_core::bail!("asmr output op: gradient has the wrong size");
        }
        let (nz, nm, nw) = (map.coarse_points() * h, map.mod_points() * h, c * (h + 1));
        let (out, p) = zeros(dev, nz + nm + nw)?;
        let grads = (p, p + 4 * nz as u64, p + 4 * (nz + nm) as u64);
        let links = map.device_links(dev)?;
        super::cuda::level_output_bwd(&Gpu(dev), &links, a, c, wb, g, grads)?;
        // The gradient's storage stays borrowed until the kernels are queued.
        drop(gs);
        Ok((storage(out, dev), Shape::from(nz + nm + nw)))
    }
}
