//! The fused last level on a full grid, as matrix products (CPU). There every coarse cell holds
//! each digit once, and by the angle sums the activations factor:
//! `sin(w0 (z[q] + m[d]))_j = ZS[q,j] MC[d,j] + ZC[q,j] MS[d,j]`, with `ZS, ZC = sin, cos(w0 z)` and
//! `MS, MC = sin, cos(w0 m)`. A block of cells' outputs is then one product
//! `[ZS | ZC] . [W MC | W MS]^T`, with a column per (output, digit) pair, and the backward two more
//! (through the cells and through the digits). The `N x h` activations are never formed, and the
//! work runs at matrix-product speed instead of a pass over every activation. Cells go in blocks of
//! whole coarse rows, whose points are contiguous, so memory stays bounded on any grid.

use std::ops::Range;

use candle_core::{Device, Result, Tensor};

use super::angles::fill_sin_cos;
use super::level::LevelMap;
use super::par_rows;

/// About this many coarse cells per block.
const BLOCK_CELLS: usize = 4096;

/// Fewest (output, digit) columns for which the products beat the per-activation pass.
const MIN_COLUMNS: usize = 16;

/// Whole coarse rows of a full grid: their cells and the points under them (both contiguous).
struct Block {
    cells: Range<usize>,
    points: Range<usize>,
}

/// The blocks when `map` is a full grid the products serve, for `c` outputs.
fn blocks(map: &LevelMap, c: usize) -> Option<Vec<Block>> {
    let rows = map.full_grid_rows()?;
    if c * map.mod_points() < MIN_COLUMNS {
        return None;
    }
    let (cells_per_row, points_per_row) = (map.coarse_points() / rows, map.fine_points() / rows);
    let per_block = (BLOCK_CELLS / cells_per_row.max(1)).max(1);
    Some(
        (0..rows)
            .step_by(per_block)
            .map(|r| {
                let end = (r + per_block).min(rows);
                Block {
                    cells: r * cells_per_row..end * cells_per_row,
                    points: r * points_per_row..end * points_per_row,
                }
            })
            .collect(),
    )
}

/// What every block shares: the shapes and the digit side `[W_k MC[d] | W_k MS[d]]`, one row per
/// (output `k`, digit `d`).
struct Digits {
    h: usize,
    d: usize,
    /// `(sin, cos)` of `w0 m`, `[d, h]` each.
    ms: Vec<f32>,
    mc: Vec<f32>,
    /// `[c d, 2h]`.
    side: Tensor,
}

impl Digits {
    fn new(m: &[f32], wb: &[f32], h: usize, c: usize, w0: f32) -> Result<Self> {
        let d = m.len() / h;
        let (mut ms, mut mc) = (vec![0f32; m.len()], vec![0f32; m.len()]);
        fill_sin_cos(m, &mut ms, &mut mc, w0);
        let mut side = vec![0f32; c * d * 2 * h];
        for (kd, row) in side.chunks_exact_mut(2 * h).enumerate() {
            let (k, di) = (kd / d, kd % d);
            let w = &wb[k * (h + 1)..][..h];
            let (first, second) = row.split_at_mut(h);
            for j in 0..h {
                first[j] = w[j] * mc[di * h + j];
                second[j] = w[j] * ms[di * h + j];
            }
        }
        let side = Tensor::from_vec(side, (c * d, 2 * h), &Device::Cpu)?;
        Ok(Self { h, d, ms, mc, side })
    }

    /// `[ZS | ZC]` of the coarse cells `cells`: `[cells, 2h]`.
    fn cells(&self, z: &[f32], cells: Range<usize>, w0: f32) -> Result<Tensor> {
        let h = self.h;
        let mut a = vec![0f32; cells.len() * 2 * h];
        let z = &z[cells.start * h..cells.end * h];
        par_rows(
            cells.len(),
            2 * h,
            cells.len() * h * 8,
            &mut a,
            |r, part| {
                for (q, row) in r.zip(part.chunks_exact_mut(2 * h)) {
                    let (s, c) = row.split_at_mut(h);
                    fill_sin_cos(&z[q * h..][..h], s, c, w0);
                }
            },
        );
        Tensor::from_vec(a, (cells.len(), 2 * h), &Device::Cpu)
    }
}

/// The op's CPU operands: `z: [P, h]`, `m: [D, h]`, `[W | b]: [c, h + 1]`.
pub(super) struct Operands<'a> {
    pub map: &'a LevelMap,
    pub z: &'a [f32],
    pub m: &'a [f32],
    pub wb: &'a [f32],
    pub h: usize,
    pub c: usize,
    pub w0: f32,
}

impl Operands<'_> {
    /// The blocks and the digits' side, when the map is a full grid the products serve.
    fn plan(&self) -> Result<Option<(Vec<Block>, Digits)>> {
        match blocks(self.map, self.c) {
            Some(b) => Ok(Some((
                b,
                Digits::new(self.m, self.wb, self.h, self.c, self.w0)?,
            ))),
            None => Ok(None),
        }
    }
}

/// `[N, c]` outputs, or `None` when the map is not a full grid the products serve.
pub(super) fn forward(op: &Operands) -> Result<Option<Vec<f32>>> {
    let Some((blocks, dig)) = op.plan()? else {
        return Ok(None);
    };
    let (map, z, wb, h, c, w0) = (op.map, op.z, op.wb, op.h, op.c, op.w0);
    let side_t = dig.side.t()?;
    let cols = c * dig.d;
    let mut out = vec![0f32; map.fine_points() * c];
    for Block { cells, points } in blocks {
        let a = dig.cells(z, cells.clone(), w0)?;
        let o = a.matmul(&side_t)?.flatten_all()?.to_vec1::<f32>()?;
        let (parent, digit) = (&map.parent()[points.clone()], &map.digit()[points.clone()]);
        let part = &mut out[points.start * c..points.end * c];
        for ((o_p, &q), &di) in part.chunks_exact_mut(c).zip(parent).zip(digit) {
            let row = &o[(q as usize - cells.start) * cols..][..cols];
            for (k, v) in o_p.iter_mut().enumerate() {
                *v = row[k * dig.d + di as usize] + wb[k * (h + 1) + h];
            }
        }
    }
    Ok(Some(out))
}

/// The gradients `[gz | gm | g[W | b]]` (flat) for the output gradient `g: [N, c]`, or `None` when
/// the map is not a full grid the products serve.
pub(super) fn backward(op: &Operands, g: &[f32]) -> Result<Option<Vec<f32>>> {
    let Some((blocks, dig)) = op.plan()? else {
        return Ok(None);
    };
    let (map, z, wb, h, c, w0) = (op.map, op.z, op.wb, op.h, op.c, op.w0);
    let d = dig.d;
    let cols = c * d;
    let (nz, nm) = (map.coarse_points() * h, d * h);
    let mut out = vec![0f32; nz + nm + c * (h + 1)];
    // Sum over every cell of `G^T [ZS | ZC]`: `[c d, 2h]`.
    let mut through_cells: Option<Tensor> = None;
    for Block { cells, points } in blocks {
        // The block's output gradient as `G: [cells, c d]`.
        let mut gs = vec![0f32; cells.len() * cols];
        let (parent, digit) = (&map.parent()[points.clone()], &map.digit()[points.clone()]);
        let gp = &g[points.start * c..points.end * c];
        for ((g_p, &q), &di) in gp.chunks_exact(c).zip(parent).zip(digit) {
            let row = &mut gs[(q as usize - cells.start) * cols..][..cols];
            for (k, &v) in g_p.iter().enumerate() {
                row[k * d + di as usize] = v;
            }
        }
        let gs = Tensor::from_vec(gs, (cells.len(), cols), &Device::Cpu)?;
        let a = dig.cells(z, cells.clone(), w0)?;
        let x = gs.t()?.matmul(&a)?;
        through_cells = Some(match through_cells {
            Some(t) => (t + x)?,
            None => x,
        });
        // Through the digits: `G [W MC | W MS]` gives each cell's sums, then the cosine's factors.
        let r = gs.matmul(&dig.side)?.flatten_all()?.to_vec1::<f32>()?;
        let a = a.flatten_all()?.to_vec1::<f32>()?;
        let gz = &mut out[cells.start * h..cells.end * h];
        for ((gz_q, a_q), r_q) in gz
            .chunks_exact_mut(h)
            .zip(a.chunks_exact(2 * h))
            .zip(r.chunks_exact(2 * h))
        {
            let (zs, zc) = a_q.split_at(h);
            let (rc, rs) = r_q.split_at(h);
            for j in 0..h {
                gz_q[j] = w0 * (zc[j] * rc[j] - zs[j] * rs[j]);
            }
        }
    }
    let x = through_cells
        .expect("a grid has a coarse row")
        .flatten_all()?
        .to_vec1::<f32>()?;
    let (gm, gwb) = out[nz..].split_at_mut(nm);
    for k in 0..c {
        let w = &wb[k * (h + 1)..][..h];
        let gw = &mut gwb[k * (h + 1)..][..h + 1];
        for di in 0..d {
            let (xs, xc) = x[(k * d + di) * 2 * h..][..2 * h].split_at(h);
            let (ms, mc) = (&dig.ms[di * h..][..h], &dig.mc[di * h..][..h]);
            let gm_d = &mut gm[di * h..][..h];
            for j in 0..h {
                gw[j] += mc[j] * xs[j] + ms[j] * xc[j];
                gm_d[j] += w0 * w[j] * (mc[j] * xc[j] - ms[j] * xs[j]);
            }
        }
        gw[h] = g.iter().skip(k).step_by(c).sum();
    }
    Ok(Some(out))
}
