//! Multilinear interpolation on a regular lattice: the `2^d` corners of the cell around a point
//! and their weights, and the lattice encodings built on it — levels of lattices sharing one
//! table, indexed densely or through a spatial hash — shared by the dense-grid and hash-grid
//! models. A batch's interpolation plan is made where the table lives: on the host, or on a GPU by
//! a kernel (`cuda/scatter.cu`, `lattice_corners`) from one upload of the batch's grid indices.

use std::sync::Arc;

use candle_core::Tensor;

use crate::kernels::interp::Gather;
use crate::kernels::Kernels;

/// The spatial hash's per-axis primes (tiny-cuda-nn's; the first three are Instant-NGP's).
pub const PRIMES: [u32; 8] = [
    1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737, 3624608617,
];

/// `XOR_a (v_a * pi_a) mod 2^log2_table`.
pub fn spatial_hash(vertex: &[u32], log2_table: u32) -> u32 {
    let h = vertex
        .iter()
        .zip(PRIMES)
        .fold(0u32, |acc, (&v, p)| acc ^ v.wrapping_mul(p));
    h & ((1u32 << log2_table) - 1)
}

/// One level of a lattice encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct LatticeLevel {
    /// The level's first row in the shared table.
    pub offset: usize,
    /// Vertices per axis (at least 2 each).
    pub verts: Vec<usize>,
    /// Grid index `x` sits at `(x * unit_a) * scale` in lattice units along axis `a`.
    pub scale: f32,
    /// Vertices go through [`spatial_hash`] instead of the dense row-major index.
    pub hashed: bool,
}

/// Levels of lattices over a signal's grid, sharing one table of `table_rows` rows.
#[derive(Debug)]
pub struct Lattice {
    unit: Vec<f32>,
    levels: Vec<LatticeLevel>,
    log2_table: u32,
    table_rows: usize,
    /// [`Lattice::constants`] on a GPU, copied there on first use.
    #[cfg(feature = "cuda")]
    uploaded: crate::kernels::cuda::device::Uploaded,
}

impl Lattice {
    /// `unit[a]`: lattice units per grid step along axis `a` before each level's scale;
    /// `log2_table`: the hashed levels' table size.
    pub fn new(
        unit: Vec<f32>,
        levels: Vec<LatticeLevel>,
        log2_table: u32,
        table_rows: usize,
    ) -> Self {
        let d = unit.len();
        assert!((1..=8).contains(&d), "lattices of 1 to 8 axes");
        assert!(u32::try_from(table_rows).is_ok(), "table rows fit in u32");
        assert!(levels
            .iter()
            .all(|l| l.verts.len() == d && l.verts.iter().all(|&v| v >= 2)));
        Self {
            unit,
            levels,
            log2_table,
            table_rows,
            #[cfg(feature = "cuda")]
            uploaded: Default::default(),
        }
    }

    pub fn dims(&self) -> usize {
        self.unit.len()
    }

    pub fn levels(&self) -> &[LatticeLevel] {
        &self.levels
    }

    pub fn log2_table(&self) -> u32 {
        self.log2_table
    }

    /// The plan of a batch of grid indices (`d` per sample), made on the host.
    pub fn plan(&self, idx: &[u32]) -> Gather {
        let d = self.dims();
        let mut p = vec![0f32; d];
        let groups = self.levels.len();
        Gather::for_samples(idx, d, groups, self.table_rows, |x, rows, weights| {
            for level in &self.levels {
                for a in 0..d {
                    p[a] = x[a] as f32 * self.unit[a] * level.scale;
                }
                for_each_corner(&p, &level.verts, |_, v, w| {
                    let local = if level.hashed {
                        spatial_hash(v, self.log2_table) as usize
                    } else {
                        dense_index(v, &level.verts)
                    };
                    rows.push((level.offset + local) as u32);
                    weights.push(w);
                });
            }
        })
    }

    /// The plan of a batch, made where `table` lives: by the `lattice_corners` kernel when the
    /// fused kernels serve a GPU table (the batch's indices are its only upload), else on the host.
    pub fn plan_for(&self, idx: &[u32], table: &Tensor, k: Kernels) -> candle_core::Result<Gather> {
        #[cfg(feature = "cuda")]
        if let (true, candle_core::Device::Cuda(dev)) = (k.fused_on(table), table.device()) {
            return self.plan_on_gpu(idx, dev);
        }
        let _ = (table, k);
        Ok(self.plan(idx))
    }

    /// [`Lattice::plan_for`] as a model's prepared batch ([`super::Model::prepare_points`]).
    pub fn prepare(
        &self,
        idx: &[u32],
        table: &Tensor,
        k: Kernels,
    ) -> candle_core::Result<Option<super::Prepared>> {
        Ok(Some(Box::new(Arc::new(self.plan_for(idx, table, k)?))))
    }

    /// The plan in a batch that [`Lattice::prepare`] made.
    pub fn prepared_plan(prepared: Option<super::Prepared>) -> Option<Arc<Gather>> {
        prepared
            .and_then(|p| p.downcast::<Arc<Gather>>().ok())
            .map(|p| *p)
    }

    #[cfg(feature = "cuda")]
    fn plan_on_gpu(
        &self,
        idx: &[u32],
        dev: &candle_core::CudaDevice,
    ) -> candle_core::Result<Gather> {
        use crate::kernels::cuda::device::{address, Gpu, Uploaded};
        let (d, groups) = (self.dims(), self.levels.len());
        let (n, corners) = (idx.len() / d, 1usize << d);
        let len = n * groups * corners;
        let consts = self.uploaded.get(dev, || self.constants().0)?;
        // The level words follow the d units and the level scales.
        let level_at = d + groups;
        let samples = dev.clone_htod(idx)?;
        // SAFETY: the kernel writes every row and weight before anything reads the plan.
        let plan = unsafe { dev.alloc::<u32>((2 * len).max(1))? };
        let rows = address(&plan, dev);
        let args = crate::kernels::cuda::LatticeArgs {
            d,
            levels: groups,
            log2_table: self.log2_table,
            scale: consts,
            level: consts + 4 * level_at as u64,
        };
        crate::kernels::cuda::lattice_corners(
            &Gpu(dev),
            args,
            n,
            address(&samples, dev),
            rows,
            rows + 4 * len as u64,
        )?;
        let plan = Uploaded::holding(dev, plan);
        Ok(Gather::on_device(n, groups, corners, self.table_rows, plan))
    }

    /// What the corner kernel reads, as one array of words: the `d` units and a scale per level
    /// (f32 bits), then from the returned position `offset, hashed, verts...` per level.
    pub fn constants(&self) -> (Vec<u32>, usize) {
        let mut words: Vec<u32> = self.unit.iter().map(|u| u.to_bits()).collect();
        words.extend(self.levels.iter().map(|l| l.scale.to_bits()));
        let level_at = words.len();
        for l in &self.levels {
            words.push(l.offset as u32);
            words.push(l.hashed as u32);
            words.extend(l.verts.iter().map(|&v| v as u32));
        }
        (words, level_at)
    }
}

/// Calls `f(corner, vertex, weight)` for the `2^d` corners of the lattice cell holding `p`
/// (lattice units, axis `a` has `verts[a] >= 2` vertices; `p` is clamped into the lattice).
/// `vertex` is the corner's integer position per axis; weights sum to 1.
pub fn for_each_corner(p: &[f32], verts: &[usize], mut f: impl FnMut(usize, &[u32], f32)) {
    let d = p.len();
    let mut base = [0u32; 8];
    let mut frac = [0f32; 8];
    assert!(d <= 8, "at most 8 axes");
    for a in 0..d {
        let top = (verts[a] - 1) as f32;
        let x = p[a].clamp(0.0, top);
        let i = (x.floor() as u32).min(verts[a] as u32 - 2);
        base[a] = i;
        frac[a] = x - i as f32;
    }
    let mut vertex = [0u32; 8];
    for corner in 0..1usize << d {
        let mut w = 1f32;
        for a in 0..d {
            let up = (corner >> a) & 1 == 1;
            vertex[a] = base[a] + up as u32;
            w *= if up { frac[a] } else { 1.0 - frac[a] };
        }
        f(corner, &vertex[..d], w);
    }
}

/// Row-major index of `vertex` in a lattice of `verts` (last axis fastest).
pub fn dense_index(vertex: &[u32], verts: &[usize]) -> usize {
    vertex
        .iter()
        .zip(verts)
        .fold(0usize, |acc, (&v, &n)| acc * n + v as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_weights() {
        let mut seen = Vec::new();
        for_each_corner(&[1.25, 0.5], &[4, 2], |_, v, w| seen.push((v.to_vec(), w)));
        let want = [
            (vec![1, 0], 0.75 * 0.5),
            (vec![2, 0], 0.25 * 0.5),
            (vec![1, 1], 0.75 * 0.5),
            (vec![2, 1], 0.25 * 0.5),
        ];
        for (got, want) in seen.iter().zip(want) {
            assert_eq!(got.0, want.0);
            assert!((got.1 - want.1).abs() < 1e-6);
        }
        // The last vertex is reached with the weight on the upper corner.
        let mut top = Vec::new();
        for_each_corner(&[3.0], &[4], |_, v, w| top.push((v[0], w)));
        assert_eq!(top, vec![(2, 0.0), (3, 1.0)]);
        assert_eq!(dense_index(&[2, 1], &[4, 3]), 7);
    }
}
