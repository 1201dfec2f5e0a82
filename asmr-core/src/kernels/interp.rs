//! Weighted gathers from a feature table — the (multi)linear interpolation of the dense-grid and
//! hash-grid encodings — with a parallel scatter-add backward. Candle's `index_add` (the backward
//! of `index_select`) runs nearly serially on the CPU and on CUDA. On the CPU the table's rows are
//! split between threads, each thread scanning every corner and adding only those that land in its
//! rows, so no two threads write the same row and no per-thread copy of the table is needed; on a
//! GPU every corner is its own thread and adds with an atomic.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::{cpu_f32, par_rows, Kernels};

/// Which table rows each output reads and with what weights: `n` samples x `groups` (levels) x
/// `corners`, row-major. The output of a sample is one `F`-vector per group.
#[derive(Debug)]
pub struct Gather {
    pub n: usize,
    pub groups: usize,
    pub corners: usize,
    /// Table row of every corner.
    rows: Vec<u32>,
    /// Weight of every corner.
    weights: Vec<f32>,
    /// One past the largest row (found once: a cached plan is checked every step).
    bound: usize,
    /// Rows of the table the gather reads from.
    pub table_rows: usize,
    /// Whether `rows` and `weights` hold the plan; a plan made on a GPU lives only there.
    on_host: bool,
    /// The plan on a GPU (rows, then the weights' bits), copied there on first use and kept as
    /// long as the plan, so a model's cached full-grid plan is uploaded once, not every step.
    #[cfg(feature = "cuda")]
    uploaded: super::cuda::device::Uploaded,
}

impl Gather {
    /// A plan of `n * groups * corners` (row, weight) pairs into a table of `table_rows` rows.
    pub fn new(
        n: usize,
        groups: usize,
        corners: usize,
        rows: Vec<u32>,
        weights: Vec<f32>,
        table_rows: usize,
    ) -> Self {
        let bound = rows.iter().max().map_or(0, |&m| m as usize + 1);
        Self {
            n,
            groups,
            corners,
            rows,
            weights,
            bound,
            table_rows,
            on_host: true,
            #[cfg(feature = "cuda")]
            uploaded: Default::default(),
        }
    }

    /// A plan that a kernel wrote on a GPU (rows, then the weights' bits, `n * groups * corners`
    /// each), every row below `table_rows` by construction.
    #[cfg(feature = "cuda")]
    pub fn on_device(
        n: usize,
        groups: usize,
        corners: usize,
        table_rows: usize,
        plan: super::cuda::device::Uploaded,
    ) -> Self {
        Self {
            n,
            groups,
            corners,
            rows: Vec::new(),
            weights: Vec::new(),
            bound: 0,
            table_rows,
            on_host: false,
            uploaded: plan,
        }
    }

    /// The plan of a batch of grid indices (`d` per sample): `corners_of(x, rows, weights)` pushes
    /// the `groups * 2^d` (row, weight) pairs of sample `x`, group by group.
    pub fn for_samples(
        idx: &[u32],
        d: usize,
        groups: usize,
        table_rows: usize,
        mut corners_of: impl FnMut(&[u32], &mut Vec<u32>, &mut Vec<f32>),
    ) -> Self {
        let n = idx.len() / d;
        let corners = 1 << d;
        let mut rows = Vec::with_capacity(n * groups * corners);
        let mut weights = Vec::with_capacity(n * groups * corners);
        for x in idx.chunks_exact(d) {
            corners_of(x, &mut rows, &mut weights);
        }
        Self::new(n, groups, corners, rows, weights, table_rows)
    }

    fn check(&self, table: &Tensor) -> Result<usize> {
        let (t, f) = table.dims2()?;
        let len = self.n * self.groups * self.corners;
        let held = !self.on_host || (self.rows.len() == len && self.weights.len() == len);
        if !self.on_host && table.device().is_cpu() {
            candle_core::bail!("interpolation plan made on a GPU for a table on the CPU");
        }
        if t != self.table_rows || !held {
            candle_core::bail!(
                "interpolation plan does not match its table ({t} rows, plan for {})",
                self.table_rows
            );
        }
        if self.bound > t {
            candle_core::bail!(
                "interpolation row {} is outside the table of {t} rows",
                self.bound - 1
            );
        }
        Ok(f)
    }

    /// Table row of every corner.
    pub fn rows(&self) -> &[u32] {
        &self.rows
    }

    /// Weight of every corner.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }
}

/// `out[i, g*F..(g+1)*F] = sum_k w[i,g,k] * table[row[i,g,k], :]`, shape `[n, groups * F]`.
/// The fused kernel on the CPU; candle's `index_select` and sums elsewhere (or with the kernels
/// switched off).
pub fn interpolate(table: &Tensor, plan: &Arc<Gather>, k: Kernels) -> Result<Tensor> {
    let f = plan.check(table)?;
    if k.fused_on(table) && table.dtype() == candle_core::DType::F32 {
        table.contiguous()?.apply_op1(Interp { plan: plan.clone() })
    } else {
        interpolate_plain(table, plan, f)
    }
}

/// The reference path, on any device (for a plan held on the host).
pub fn interpolate_plain(table: &Tensor, plan: &Gather, f: usize) -> Result<Tensor> {
    if !plan.on_host {
        candle_core::bail!("interpolation plan made on a GPU: only the fused kernels read it");
    }
    let dev = table.device();
    let len = plan.rows.len();
    let rows = Tensor::from_slice(&plan.rows, len, dev)?;
    let w = Tensor::from_slice(&plan.weights, (len, 1), dev)?;
    table
        .index_select(&rows, 0)?
        .broadcast_mul(&w)?
        .reshape((plan.n, plan.groups, plan.corners, f))?
        .sum(2)?
        .reshape((plan.n, plan.groups * f))
}

struct Interp {
    plan: Arc<Gather>,
}

#[cfg(feature = "cuda")]
impl Interp {
    fn plan_on(&self, dev: &candle_core::CudaDevice) -> Result<super::cuda::InterpPlan> {
        let p = &*self.plan;
        let base = p.uploaded.get(dev, || {
            let mut data = p.rows.clone();
            data.extend(p.weights.iter().map(|w| w.to_bits()));
            data
        })?;
        Ok(super::cuda::InterpPlan {
            outputs: p.n * p.groups,
            corners: p.corners,
            rows: base,
            weights: base + 4 * p.rows.len() as u64,
        })
    }
}

impl CustomOp1 for Interp {
    fn name(&self) -> &'static str {
        "asmr-interp"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let table = cpu_f32(s, l, "interpolate")?;
        let f = l.dims()[1];
        let p = &*self.plan;
        let width = p.groups * f;
        let mut out = vec![0f32; p.n * width];
        let work = p.n * p.groups * p.corners * f;
        par_rows(p.n, width, work, &mut out, |range, part| {
            for (local, i) in range.enumerate() {
                let row_out = &mut part[local * width..(local + 1) * width];
                for g in 0..p.groups {
                    let dst = &mut row_out[g * f..(g + 1) * f];
                    let base = (i * p.groups + g) * p.corners;
                    for k in base..base + p.corners {
                        let w = p.weights[k];
                        let src = &table[p.rows[k] as usize * f..][..f];
                        for (o, &v) in dst.iter_mut().zip(src) {
                            *o += w * v;
                        }
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((p.n, width))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::device::{operand, run_into};
        let f = l.dims()[1];
        let table = operand(s, l, "interpolate")?;
        let plan = self.plan_on(&s.device)?;
        let (n, width) = (self.plan.n, self.plan.groups * f);
        let out = run_into(&s.device, n * width, false, |e, o| {
            super::cuda::interp_fwd(e, plan, f, table, o)
        })?;
        Ok((out, Shape::from((n, width))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = grad.contiguous()?;
        Ok(Some(g.apply_op1_no_bwd(&Scatter(Interp {
            plan: self.plan.clone(),
        }))?))
    }
}

/// The backward: `grad_table[row[i,g,k], :] += w[i,g,k] * grad_out[i, g*F..]`.
struct Scatter(Interp);

impl CustomOp1 for Scatter {
    fn name(&self) -> &'static str {
        "asmr-interp-bwd"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let grad = cpu_f32(s, l, "interpolate backward")?;
        let p = &*self.0.plan;
        let f = l.dims()[1] / p.groups.max(1);
        let mut out = vec![0f32; p.table_rows * f];
        let work = p.n * p.groups * p.corners * f;
        par_rows(p.table_rows, f, work, &mut out, |rows, part| {
            let (lo, hi) = (rows.start as u32, rows.end as u32);
            for (k, (&r, &w)) in p.rows.iter().zip(&p.weights).enumerate() {
                if r < lo || r >= hi {
                    continue;
                }
                // Corner k belongs to sample i, group g.
                let ig = k / p.corners;
                let src = &grad[ig * f..(ig + 1) * f];
                let dst = &mut part[(r - lo) as usize * f..][..f];
                for (o, &v) in dst.iter_mut().zip(src) {
                    *o += w * v;
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((p.table_rows, f))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::device::{operand, run_into};
        let p = &*self.0.plan;
        let f = l.dims()[1] / p.groups.max(1);
        if l.dims()[0] != p.n {
            candle_core::bail!("interpolate backward: gradient has the wrong size");
        }
        let g = operand(s, l, "interpolate backward")?;
        let plan = self.0.plan_on(&s.device)?;
        let out = run_into(&s.device, p.table_rows * f, true, |e, o| {
            super::cuda::interp_bwd(e, plan, f, g, o)
        })?;
        Ok((out, Shape::from((p.table_rows, f))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn plan(n: usize, groups: usize, corners: usize, table_rows: usize) -> Gather {
        let mut rng = crate::rng::Rng::new(3);
        let len = n * groups * corners;
        Gather::new(
            n,
            groups,
            corners,
            (0..len)
                .map(|_| (rng.next_u64() % table_rows as u64) as u32)
                .collect(),
            (0..len).map(|_| rng.uniform(-1.0, 1.0) as f32).collect(),
            table_rows,
        )
    }

    /// Fused and plain paths agree in value and table gradient, with many corners hitting the
    /// same rows (the case a racy scatter would get wrong).
    #[test]
    fn fused_matches_plain() {
        let dev = Device::Cpu;
        let p = Arc::new(plan(40_000, 3, 4, 257));
        let table = Var::from_tensor(&Tensor::randn(0f32, 1.0, (257, 2), &dev).unwrap()).unwrap();
        let r = Tensor::randn(0f32, 1.0, (40_000, 6), &dev).unwrap();
        let a = interpolate(table.as_tensor(), &p, Kernels::Fused).unwrap();
        let b = interpolate_plain(table.as_tensor(), &p, 2).unwrap();
        let diff = crate::kernels::max_abs_diff;
        assert!(diff(&a, &b) < 1e-5);
        let ga = (a * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (b * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let (ga, gb) = (ga.get(&table).unwrap(), gb.get(&table).unwrap());
        let scale: f32 = gb.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(diff(ga, gb) < 1e-4 * scale.max(1.0), "{}", diff(ga, gb));
    }

    #[test]
    fn rows_outside_the_table_are_an_error() {
        let dev = Device::Cpu;
        let p = Gather::new(4, 1, 2, vec![0, 1, 2, 8, 0, 0, 0, 0], vec![0.5; 8], 8);
        let table = Tensor::zeros((8, 1), candle_core::DType::F32, &dev).unwrap();
        assert!(interpolate(&table, &Arc::new(p), Kernels::Fused).is_err());
    }
}
