//! One ASMR level as a single fused op: nearest-upsample the coarse pre-activation `z`, add the tiled
//! modulation `m`, apply `sin(w0 * .)` — `out[p] = sin(w0 * (z[parent(p)] + m[digit(p)]))` — and its
//! backward, which recomputes the cosine and reduces the incoming gradient over each cell's children
//! (gradient of `z`) and over the tiles (gradient of `m`). No upsampled tensor is materialised
//! besides the output. The CPU kernels take the sines and cosines from `kernels::angles`.

use std::ops::Range;
use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::angles::Angles;
#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
use super::cuda::{segments_by, Links, Segments};
use super::sine::multiversion;
use super::{add_into, cpu_f32, par_rows, split_range, threads_for};
use crate::grid::MultiResGrid;

/// Index maps of one level transition (resolution `i` to `i + 1`) of a grid.
#[derive(Debug)]
pub struct LevelMap {
    /// For every fine point (raster order), its coarse cell.
    parent: Vec<u32>,
    /// For every fine point, its digit cell in the level-`i+1` grid.
    digit: Vec<u32>,
    coarse_points: usize,
    mod_points: usize,
    /// How the fine points may be split between threads so that each thread owns a disjoint range
    /// of coarse cells (and so writes a disjoint part of the `z` gradient).
    split: Split,
    /// The links on a GPU, copied on first use there.
    #[cfg(feature = "cuda")]
    gpu: (
        super::cuda::device::Uploaded,
        std::sync::OnceLock<LinkLayout>,
    ),
}

#[derive(Debug, Clone, Copy)]
enum Split {
    /// Full grid, raster order: the fine points under coarse row `k` of axis 0 are contiguous and so
    /// are their parents; `rows` is the number of coarse rows.
    Rows(usize),
    /// Parents are non-decreasing (a deduplicated batch): split where the parent changes.
    SortedParents,
}

impl LevelMap {
    pub fn new(grid: &MultiResGrid, i: usize) -> Self {
        let d = grid.dims();
        let cur: Vec<usize> = (0..d).map(|a| grid.cumulative(a, i)).collect();
        let next: Vec<usize> = (0..d).map(|a| grid.base(a, i + 1)).collect();
        let points = grid.resolution(i + 1);
        let mut parent = Vec::with_capacity(points);
        let mut digit = Vec::with_capacity(points);
        for p in 0..points {
            let (mut rem, mut pi, mut di, mut ps, mut ds) = (p, 0usize, 0usize, 1usize, 1usize);
            for a in (0..d).rev() {
                let fine = cur[a] * next[a];
                let x = rem % fine;
                rem /= fine;
                pi += (x / next[a]) * ps;
                di += (x % next[a]) * ds;
                ps *= cur[a];
                ds *= next[a];
            }
            parent.push(pi as u32);
            digit.push(di as u32);
        }
        Self {
            parent,
            digit,
            coarse_points: grid.resolution(i),
            mod_points: grid.level_points(i + 1),
            split: Split::Rows(cur[0]),
            #[cfg(feature = "cuda")]
            gpu: Default::default(),
        }
    }

    /// A map over arbitrary links: fine point `p` sits under coarse cell `parent[p]` and takes
    /// modulation row `digit[p]`. `parent` must be non-decreasing.
    pub fn from_links(
        parent: Vec<u32>,
        digit: Vec<u32>,
        coarse_points: usize,
        mod_points: usize,
    ) -> Result<Self> {
        if parent.len() != digit.len()
            || parent.windows(2).any(|w| w[0] > w[1])
            || parent.last().is_some_and(|&p| p as usize >= coarse_points)
            || digit.iter().any(|&d| d as usize >= mod_points)
        {
            candle_core::bail!("asmr level map: links out of range or parents not sorted");
        }
        Ok(Self {
            parent,
            digit,
            coarse_points,
            mod_points,
            split: Split::SortedParents,
            #[cfg(feature = "cuda")]
            gpu: Default::default(),
        })
    }

    /// Up to `threads` pieces `(fine range, coarse range)`: the coarse ranges partition all coarse
    /// cells, and every fine point's parent lies in its piece's coarse range.
    pub fn chunks(&self, threads: usize) -> Vec<(Range<usize>, Range<usize>)> {
        let n = self.fine_points();
        match self.split {
            Split::Rows(rows) => {
                let (fine_per_row, coarse_per_row) = (n / rows, self.coarse_points / rows);
                split_range(rows, threads)
                    .into_iter()
                    .map(|r| {
                        (
                            r.start * fine_per_row..r.end * fine_per_row,
                            r.start * coarse_per_row..r.end * coarse_per_row,
                        )
                    })
                    .collect()
            }
            Split::SortedParents => {
                let mut cuts = vec![0usize];
                for t in 1..threads.max(1) {
                    let mut pos = (t * n / threads).max(*cuts.last().unwrap_or(&0));
                    while pos > 0 && pos < n && self.parent[pos] == self.parent[pos - 1] {
                        pos += 1;
                    }
                    if pos > *cuts.last().unwrap_or(&0) && pos < n {
                        cuts.push(pos);
                    }
                }
                cuts.push(n);
                let coarse_at = |i: usize, pos: usize| {
                    if i == 0 {
                        0
                    } else if pos >= n {
                        self.coarse_points
                    } else {
                        self.parent[pos] as usize
                    }
                };
                cuts.windows(2)
                    .enumerate()
                    .map(|(i, w)| (w[0]..w[1], coarse_at(i, w[0])..coarse_at(i + 1, w[1])))
                    .collect()
            }
        }
    }

    /// Run `work(fine, coarse_start, gz_part)` on every piece of [`LevelMap::chunks`] in parallel,
    /// each with its own disjoint part of the coarse gradient `gz` (`h` values per coarse cell),
    /// and collect what each returns (its private partial sums).
    pub fn par_backward<R: Send>(
        &self,
        threads: usize,
        gz: &mut [f32],
        h: usize,
        work: impl Fn(Range<usize>, usize, &mut [f32]) -> R + Sync,
    ) -> Vec<R> {
        std::thread::scope(|s| {
            let mut rest = gz;
            let mut handles = Vec::new();
            for (fine, coarse) in self.chunks(threads) {
                let (head, tail) = rest.split_at_mut(coarse.len() * h);
                rest = tail;
                let work = &work;
                handles.push(s.spawn(move || work(fine, coarse.start, head)));
            }
            handles
                .into_iter()
                .map(|h| h.join().expect("backward worker panicked"))
                .collect()
        })
    }

    /// The number of coarse rows (along the first axis) when this is a full grid in raster order,
    /// where the points under each coarse row are contiguous and every coarse cell holds each digit
    /// once.
    pub fn full_grid_rows(&self) -> Option<usize> {
        match self.split {
            Split::Rows(rows) => Some(rows),
            Split::SortedParents => None,
        }
    }

    pub fn fine_points(&self) -> usize {
        self.parent.len()
    }

    pub fn coarse_points(&self) -> usize {
        self.coarse_points
    }

    pub fn mod_points(&self) -> usize {
        self.mod_points
    }

    pub fn parent(&self) -> &[u32] {
        &self.parent
    }

    pub fn digit(&self) -> &[u32] {
        &self.digit
    }

    /// The links as the GPU kernels take them, in one buffer: parent, digit, and the segment sums
    /// over each coarse cell's children and over each modulation row's points.
    #[cfg(any(feature = "cuda", feature = "cuda-emu"))]
    pub fn packed(&self) -> PackedLinks {
        let (pp, pi) = segments_by(&self.parent, self.coarse_points);
        let (dp, di) = segments_by(&self.digit, self.mod_points);
        let parts = [&self.parent[..], &self.digit, &pp, &pi, &dp, &di];
        let mut data = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut at = [0usize; 6];
        for (a, part) in at.iter_mut().zip(parts) {
            *a = data.len();
            data.extend_from_slice(part);
        }
        PackedLinks {
            data,
            layout: LinkLayout {
                at,
                items: [pi.len() / 3, di.len() / 3],
                points: self.parent.len(),
            },
        }
    }

    /// The links on `dev` (uploaded in one copy the first time).
    #[cfg(feature = "cuda")]
    pub fn device_links(&self, dev: &candle_core::CudaDevice) -> Result<Links> {
        let (uploaded, layout) = &self.gpu;
        let base = uploaded.get(dev, || {
            let p = self.packed();
            let _ = layout.set(p.layout);
            p.data
        })?;
        Ok(layout.get().expect("set with the upload").links(base))
    }
}

/// [`LevelMap::packed`]: the data and where each part starts.
#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
pub struct PackedLinks {
    pub data: Vec<u32>,
    pub layout: LinkLayout,
}

#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
impl PackedLinks {
    /// The kernels' view of the links when `data` sits at device address `base`.
    pub fn links(&self, base: u64) -> Links {
        self.layout.links(base)
    }
}

/// Offsets (in u32s) of the parts of a packed link buffer, and the segment sums' item counts.
#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
#[derive(Debug, Clone, Copy)]
pub struct LinkLayout {
    at: [usize; 6],
    items: [usize; 2],
    points: usize,
}

#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
impl LinkLayout {
    fn links(&self, base: u64) -> Links {
        let a = |i: usize| base + (4 * self.at[i]) as u64;
        Links {
            points: self.points,
            parent: a(0),
            digit: a(1),
            by_parent: Segments {
                perm: a(2),
                items: a(3),
                count: self.items[0],
            },
            by_digit: Segments {
                perm: a(4),
                items: a(5),
                count: self.items[1],
            },
        }
    }
}

/// `sin(w0 * (z[parent] + m[digit]))` over the fine grid.
pub fn level_forward(z: &Tensor, m: &Tensor, map: &Arc<LevelMap>, w0: f64) -> Result<Tensor> {
    z.contiguous()?.apply_op2(
        &m.contiguous()?,
        LevelOp {
            map: map.clone(),
            w0: w0 as f32,
        },
    )
}

struct LevelOp {
    map: Arc<LevelMap>,
    w0: f32,
}

multiversion! {
    fn fwd_rows(angles: &mut Angles<'_>, parent: &[u32], digit: &[u32], out: &mut [f32], h: usize) {
        for ((o, &pa), &di) in out.chunks_exact_mut(h).zip(parent).zip(digit) {
            angles.sin(pa as usize, di as usize, o);
        }
    }
}

multiversion! {
    fn bwd_rows(
        angles: &mut Angles<'_>, g: &[f32], parent: &[u32], digit: &[u32], base: usize,
        gz: &mut [f32], gm: &mut [f32], cs: &mut [f32], h: usize, w0: f32
    ) {
        for ((gr, &pa), &di) in g.chunks_exact(h).zip(parent).zip(digit) {
            let (pa, di) = (pa as usize, di as usize);
            angles.cos(pa, di, cs);
            let gzr = &mut gz[(pa - base) * h..][..h];
            let gmr = &mut gm[di * h..][..h];
            for j in 0..h {
                let t = gr[j] * w0 * cs[j];
                gzr[j] += t;
                gmr[j] += t;
            }
        }
    }
}

impl LevelOp {
    fn check(&self, z: &Layout, m: &Layout) -> Result<usize> {
        let (pz, h) = z.shape().dims2()?;
        let (pm, hm) = m.shape().dims2()?;
        if pz != self.map.coarse_points || pm != self.map.mod_points || h != hm {
            candle_core::bail!(
                "asmr level op: got z {pz}x{h}, m {pm}x{hm}, expected {}x_ and {}x_",
                self.map.coarse_points,
                self.map.mod_points
            );
        }
        Ok(h)
    }
}

impl CustomOp2 for LevelOp {
    fn name(&self) -> &'static str {
        "asmr-level"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let h = self.check(l1, l2)?;
        let (z, m) = (
            cpu_f32(s1, l1, "asmr level op")?,
            cpu_f32(s2, l2, "asmr level op")?,
        );
        let n = self.map.fine_points();
        let mut out = vec![0f32; n * h];
        par_rows(n, h, n * h, &mut out, |r, part| {
            let (pa, di) = (&self.map.parent[r.clone()], &self.map.digit[r]);
            fwd_rows(&mut Angles::new(z, m, pa, h, self.w0), pa, di, part, h)
        });
        Ok((CpuStorage::F32(out), Shape::from((n, h))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::device::{level_args, storage, uninit, Gpu};
        let h = self.check(l1, l2)?;
        let dev = &s1.device;
        let a = level_args(h, self.w0, (s1, l1), (s2, l2), "asmr level op")?;
        let n = self.map.fine_points();
        let (out, p) = uninit(dev, n * h)?;
        super::cuda::level_fwd(&Gpu(dev), &self.map.device_links(dev)?, a, p)?;
        Ok((storage(out, dev), Shape::from((n, h))))
    }

    fn bwd(
        &self,
        z: &Tensor,
        m: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let h = z.dim(1)?;
        let both = z.apply_op3_no_bwd(
            m,
            &grad.contiguous()?,
            &LevelBwd {
                map: self.map.clone(),
                w0: self.w0,
            },
        )?;
        let nz = self.map.coarse_points * h;
        let gz = both
            .narrow(0, 0, nz)?
            .reshape((self.map.coarse_points, h))?;
        let gm = both
            .narrow(0, nz, self.map.mod_points * h)?
            .reshape((self.map.mod_points, h))?;
        Ok((Some(gz), Some(gm)))
    }
}

/// Backward of [`LevelOp`]: returns the `z` and `m` gradients concatenated (flat).
struct LevelBwd {
    map: Arc<LevelMap>,
    w0: f32,
}

impl CustomOp3 for LevelBwd {
    fn name(&self) -> &'static str {
        "asmr-level-bwd"
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
        let op = LevelOp {
            map: self.map.clone(),
            w0: self.w0,
        };
        let h = op.check(l1, l2)?;
        let (z, m, g) = (
            cpu_f32(s1, l1, "asmr level op")?,
            cpu_f32(s2, l2, "asmr level op")?,
            cpu_f32(s3, l3, "asmr level op")?,
        );
        let map = &self.map;
        let n = map.fine_points();
        if g.len() != n * h {
            candle_core::bail!("asmr level backward: gradient has the wrong size");
        }
        let (nz, nm) = (map.coarse_points * h, map.mod_points * h);
        let mut out = vec![0f32; nz + nm];
        let (gz_all, gm_total) = out.split_at_mut(nz);
        let threads = threads_for(n * h);
        let w0 = self.w0;
        let partial_gm = map.par_backward(threads, gz_all, h, |fine, base, head| {
            let (pa, di) = (&map.parent[fine.clone()], &map.digit[fine.clone()]);
            let mut gm = vec![0f32; nm];
            bwd_rows(
                &mut Angles::new(z, m, pa, h, w0),
                &g[fine.start * h..fine.end * h],
                pa,
                di,
                base,
                head,
                &mut gm,
                &mut vec![0f32; h],
                h,
                w0,
            );
            gm
        });
        for part in partial_gm {
            add_into(gm_total, &part);
        }
        Ok((CpuStorage::F32(out), Shape::from(nz + nm)))
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
        let op = LevelOp {
            map: self.map.clone(),
            w0: self.w0,
        };
        let h = op.check(l1, l2)?;
        let map = &self.map;
        if l3.shape().elem_count() != map.fine_points() * h {
            candle_core::bail!("asmr level backward: gradient has the wrong size");
        }
        let dev = &s1.device;
        let a = level_args(h, self.w0, (s1, l1), (s2, l2), "asmr level op")?;
        let g = operand(s3, l3, "asmr level op")?;
        let (nz, nm) = (map.coarse_points * h, map.mod_points * h);
        let (out, p) = zeros(dev, nz + nm)?;
        let grads = (p, p + 4 * nz as u64);
        super::cuda::level_bwd(&Gpu(dev), &map.device_links(dev)?, a, None, g, grads)?;
        Ok((storage(out, dev), Shape::from(nz + nm)))
    }
}
