//! Multi-resolution decomposition of a dense grid (docs/method.md, "Multi-resolution grid").
//!
//! Every axis `a` of size `N_a` is split into `L` levels with bases `B_{a,0..L-1}`,
//! `prod_l B_{a,l} = N_a`. Level 0 is the coarsest. An index `x` has one digit per level,
//! `digit_{a,l}(x) = floor(x / s_{a,l}) mod B_{a,l}` with `s_{a,l} = N_a / C_{a,l}` and
//! `C_{a,l} = B_{a,0} * ... * B_{a,l}`; the network sees `u = digit / (B - 1)` in `[0, 1]`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Read from files (a checkpoint's metadata) through [`MultiResGrid::new`], so a grid that does
/// not hold together is refused there and not met later as an index out of range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "GridParts")]
pub struct MultiResGrid {
    /// Grid size per axis (the padded size when the signal needed padding).
    shape: Vec<usize>,
    /// `bases[a][l]`.
    bases: Vec<Vec<usize>>,
}

/// A grid's fields as stored, before they are checked.
#[derive(Deserialize)]
struct GridParts {
    shape: Vec<usize>,
    bases: Vec<Vec<usize>>,
}

impl TryFrom<GridParts> for MultiResGrid {
    type Error = Error;

    fn try_from(parts: GridParts) -> Result<Self> {
        Self::new(&parts.shape, parts.bases)
    }
}

impl MultiResGrid {
    /// A grid with explicit bases; checks that every axis has the same number of levels and that
    /// the bases multiply to the axis size.
    pub fn new(shape: &[usize], bases: Vec<Vec<usize>>) -> Result<Self> {
        if shape.is_empty() {
            return Err(Error::Grid("a grid needs at least one axis".into()));
        }
        if bases.len() != shape.len() {
            return Err(Error::Grid(format!(
                "{} lists of bases for {} axes (give one list per axis, or one for all)",
                bases.len(),
                shape.len()
            )));
        }
        let levels = bases[0].len();
        if levels == 0 {
            return Err(Error::Grid("bases must have at least one level".into()));
        }
        for (a, (b, &n)) in bases.iter().zip(shape).enumerate() {
            if b.len() != levels {
                return Err(Error::Grid(format!(
                    "axis {a} has {} levels, axis 0 has {levels}: every axis needs the same number",
                    b.len()
                )));
            }
            if b.contains(&0) {
                return Err(Error::Grid(format!("axis {a}: a base of 0 in {b:?}")));
            }
            let p = b.iter().try_fold(1usize, |p, &x| p.checked_mul(x));
            if p != Some(n) {
                let p = p.map_or("more than any axis holds".into(), |p| p.to_string());
                return Err(Error::Grid(format!(
                    "axis {a}: bases {b:?} multiply to {p}, but the axis has {n} samples"
                )));
            }
        }
        Ok(Self {
            shape: shape.to_vec(),
            bases,
        })
    }

    /// Bases chosen automatically for a signal of `size` with `levels` levels per axis. An axis
    /// whose size factorises badly is padded at its end (see [`auto_bases`]).
    pub fn auto(size: &[usize], levels: usize) -> Result<Self> {
        if levels == 0 {
            return Err(Error::Grid(
                "the number of levels must be at least 1".into(),
            ));
        }
        let mut shape = Vec::with_capacity(size.len());
        let mut bases = Vec::with_capacity(size.len());
        for &n in size {
            if n == 0 {
                return Err(Error::Grid("an axis of size 0".into()));
            }
            let (padded, b) = auto_bases(n, levels);
            shape.push(padded);
            bases.push(b);
        }
        Self::new(&shape, bases)
    }

    pub fn dims(&self) -> usize {
        self.shape.len()
    }

    pub fn levels(&self) -> usize {
        self.bases[0].len()
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn bases(&self) -> &[Vec<usize>] {
        &self.bases
    }

    pub fn base(&self, axis: usize, level: usize) -> usize {
        self.bases[axis][level]
    }

    pub fn num_points(&self) -> usize {
        self.shape.iter().product()
    }

    /// `C_{a,l}`: the axis resolution after level `l`.
    pub fn cumulative(&self, axis: usize, level: usize) -> usize {
        self.bases[axis][..=level].iter().product()
    }

    /// `s_{a,l} = N_a / C_{a,l}`: how many samples one level-`l` cell spans.
    pub fn stride(&self, axis: usize, level: usize) -> usize {
        self.shape[axis] / self.cumulative(axis, level)
    }

    pub fn digit(&self, axis: usize, level: usize, x: usize) -> usize {
        (x / self.stride(axis, level)) % self.bases[axis][level]
    }

    pub fn level_coord(&self, axis: usize, level: usize, x: usize) -> f32 {
        unit_coord(self.digit(axis, level, x), self.bases[axis][level])
    }

    /// Number of points of the level-`l` grid, `prod_a B_{a,l}`.
    pub fn level_points(&self, level: usize) -> usize {
        self.bases.iter().map(|b| b[level]).product()
    }

    /// Points of the full-resolution grid after level `l`, `prod_a C_{a,l}`.
    pub fn resolution(&self, level: usize) -> usize {
        (0..self.dims())
            .map(|a| self.cumulative(a, level))
            .product()
    }

    /// The level-`l` coordinates of every digit combination, raster order, `[prod_a B_{a,l}, d]`.
    pub fn level_grid(&self, level: usize) -> Vec<f32> {
        let d = self.dims();
        let sizes: Vec<usize> = self.bases.iter().map(|b| b[level]).collect();
        let n = self.level_points(level);
        let mut out = vec![0f32; n * d];
        for p in 0..n {
            let mut rem = p;
            for a in (0..d).rev() {
                let digit = rem % sizes[a];
                rem /= sizes[a];
                out[p * d + a] = unit_coord(digit, sizes[a]);
            }
        }
        out
    }

    /// Level coordinates of arbitrary grid indices (`idx` is `[n, d]` row-major), one `[n, d]`
    /// buffer per level.
    pub fn decompose(&self, idx: &[u32]) -> Vec<Vec<f32>> {
        let d = self.dims();
        (0..self.levels())
            .map(|l| {
                idx.chunks_exact(d)
                    .flat_map(|x| (0..d).map(move |a| self.level_coord(a, l, x[a] as usize)))
                    .collect()
            })
            .collect()
    }
}

/// The distinct level cells a batch of samples touches, coarse to fine, for the deduplicated
/// forward: each cell's activation is computed once and shared by the samples under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchCells {
    /// One entry per transition `l -> l + 1`: for every distinct level-`(l+1)` cell, its parent
    /// (a level-`l` cell: for `l = 0` a row of the level-0 grid, otherwise an index into the
    /// previous transition's cells) and its digit row in the level-`(l+1)` grid. Sorted by
    /// `(parent, digit)`, so parents are non-decreasing.
    pub links: Vec<(Vec<u32>, Vec<u32>)>,
    /// For every sample, its finest cell (index into the last transition's cells, or into the
    /// level-0 grid for a one-level grid).
    pub sample_cell: Vec<u32>,
}

impl MultiResGrid {
    /// Group a batch of grid indices (`[n, d]` row-major) into its distinct level cells. Cells are
    /// numbered level by level in the lexicographic order of their digit rows `(d_0, ..., d_l)`, so
    /// one sort of the samples by their whole digit path, a mixed-radix key, orders every level at
    /// once; one pass over the sorted samples then opens a cell wherever a prefix changes.
    pub fn batch_cells(&self, idx: &[u32]) -> BatchCells {
        let d = self.dims();
        let n = idx.len() / d;
        let levels = self.levels();
        // weight[l]: the points of all finer levels, the radix of level l's digit row in the key.
        let mut weight = vec![1u64; levels];
        for l in (0..levels.saturating_sub(1)).rev() {
            weight[l] = weight[l + 1] * self.level_points(l + 1) as u64;
        }
        // Keys are below the grid's point count, so key and sample number usually share one word.
        let key_bits = bits_for(weight[0] * self.level_points(0) as u64);
        let sample_bits = bits_for(n as u64);
        let keys = self.path_keys(idx, &weight);
        if key_bits + sample_bits <= 64 {
            let mut packed: Vec<u64> = keys
                .zip(0..n as u64)
                .map(|(k, p)| (k << sample_bits) | p)
                .collect();
            radix_sort(&mut packed, sample_bits, key_bits);
            let mask = (1u64 << sample_bits) - 1;
            let sorted = packed
                .iter()
                .map(|&v| (v >> sample_bits, (v & mask) as u32));
            self.link_cells(sorted, n, &weight)
        } else {
            let mut keyed: Vec<(u64, u32)> = keys.zip(0..n as u32).collect();
            keyed.sort_unstable();
            self.link_cells(keyed.into_iter(), n, &weight)
        }
    }

    /// One pass over the samples sorted by digit path: a cell opens at every level from the first
    /// whose path prefix `key / weight[l]` differs from the previous sample's.
    fn link_cells(
        &self,
        sorted: impl Iterator<Item = (u64, u32)>,
        n: usize,
        weight: &[u64],
    ) -> BatchCells {
        let levels = self.levels();
        let divisors: Vec<Divisor> = weight.iter().map(|&w| Divisor::new(w)).collect();
        let points: Vec<u64> = (0..levels).map(|l| self.level_points(l) as u64).collect();
        // A level has at most as many cells as samples or as points.
        let mut links: Vec<(Vec<u32>, Vec<u32>)> = (1..levels)
            .map(|l| {
                let most = n.min(self.resolution(l));
                (Vec::with_capacity(most), Vec::with_capacity(most))
            })
            .collect();
        let mut sample_cell = vec![0u32; n];
        // The current cell at every level (at level 0, the digit row itself).
        let mut current = vec![0u32; levels];
        let mut prefix = vec![0u64; levels];
        let mut previous = vec![u64::MAX; levels];
        for (key, p) in sorted {
            for (q, div) in prefix.iter_mut().zip(&divisors) {
                *q = div.div(key);
            }
            let first_new = (0..levels)
                .find(|&l| prefix[l] != previous[l])
                .unwrap_or(levels);
            for l in first_new..levels {
                if l == 0 {
                    current[0] = prefix[0] as u32;
                } else {
                    // prefix[l] = prefix[l - 1] * points[l] + digit row of level l.
                    let digit = (prefix[l] - prefix[l - 1] * points[l]) as u32;
                    let (parent, digits) = &mut links[l - 1];
                    parent.push(current[l - 1]);
                    digits.push(digit);
                    current[l] = (parent.len() - 1) as u32;
                }
            }
            sample_cell[p as usize] = current[levels - 1];
            std::mem::swap(&mut prefix, &mut previous);
        }
        BatchCells { links, sample_cell }
    }

    /// Every sample's digit path `sum_l digit_row(l) * weight[l]`. The path is a sum over axes of
    /// per-axis terms, tabulated once per axis when the tables are smaller than the batch.
    fn path_keys<'a>(
        &'a self,
        idx: &'a [u32],
        weight: &'a [u64],
    ) -> impl Iterator<Item = u64> + 'a {
        let d = self.dims();
        let levels = self.levels();
        // The weight of axis a's digit at level l: the level's radix times the later axes' bases.
        let axis_weight = move |a: usize, l: usize| -> u64 {
            weight[l] * (a + 1..d).map(|b| self.bases[b][l] as u64).product::<u64>()
        };
        let term = move |a: usize, x: usize| -> u64 {
            (0..levels)
                .map(|l| self.digit(a, l, x) as u64 * axis_weight(a, l))
                .sum()
        };
        let sizes: Vec<usize> = (0..d).map(|a| self.cumulative(a, levels - 1)).collect();
        let tables: Option<Vec<Vec<u64>>> = (sizes.iter().sum::<usize>() <= idx.len()).then(|| {
            (0..d)
                .map(|a| (0..sizes[a]).map(|x| term(a, x)).collect())
                .collect()
        });
        idx.chunks_exact(d).map(move |x| match &tables {
            Some(t) => x.iter().zip(t).map(|(&xa, ta)| ta[xa as usize]).sum(),
            None => x
                .iter()
                .enumerate()
                .map(|(a, &xa)| term(a, xa as usize))
                .sum(),
        })
    }
}

/// Bits needed to write every value below `bound`.
fn bits_for(bound: u64) -> u32 {
    64 - bound.saturating_sub(1).leading_zeros()
}

/// Sorts `values` by their bits `from..from + width` (least significant digit first, up to 11 bits
/// a pass); the bits below `from` are carried along unsorted.
fn radix_sort(values: &mut Vec<u64>, from: u32, width: u32) {
    let passes = width.div_ceil(11).max(1);
    let digit_bits = width.div_ceil(passes);
    let buckets = 1usize << digit_bits;
    let mask = (buckets - 1) as u64;
    let mut counts = vec![0usize; buckets * passes as usize];
    for &v in values.iter() {
        for pass in 0..passes {
            let digit = ((v >> (from + pass * digit_bits)) & mask) as usize;
            counts[pass as usize * buckets + digit] += 1;
        }
    }
    let mut scratch = vec![0u64; values.len()];
    for pass in 0..passes {
        let counts = &mut counts[pass as usize * buckets..][..buckets];
        if counts.contains(&values.len()) {
            continue; // every value has the same digit: the pass would not move anything
        }
        let mut start = 0;
        for c in counts.iter_mut() {
            let k = *c;
            *c = start;
            start += k;
        }
        let shift = from + pass * digit_bits;
        for &v in values.iter() {
            let digit = ((v >> shift) & mask) as usize;
            scratch[counts[digit]] = v;
            counts[digit] += 1;
        }
        std::mem::swap(values, &mut scratch);
    }
}

/// Division by a fixed divisor with one multiply where dividend and divisor fit 32 bits: with
/// `c = ceil(2^64 / d)`, `floor(n / d) = floor(c n / 2^64)` for every `n < 2^32` (Lemire, Kaser
/// and Kurz, "Faster remainder by direct computation", 2019). Plain division otherwise.
#[derive(Debug, Clone, Copy)]
struct Divisor {
    d: u64,
    /// `ceil(2^64 / d)`, or 0 where the shortcut does not apply.
    c: u64,
}

impl Divisor {
    fn new(d: u64) -> Self {
        let c = if (2..=u32::MAX as u64).contains(&d) {
            u64::MAX / d + 1
        } else {
            0
        };
        Self { d, c }
    }

    #[inline]
    fn div(self, n: u64) -> u64 {
        if self.d == 1 {
            n
        } else if self.c != 0 && n <= u32::MAX as u64 {
            ((self.c as u128 * n as u128) >> 64) as u64
        } else {
            n / self.d
        }
    }
}

fn unit_coord(digit: usize, base: usize) -> f32 {
    if base <= 1 {
        0.0
    } else {
        digit as f32 / (base - 1) as f32
    }
}

/// How strongly padding is penalised against unbalanced bases in [`auto_bases`]: one percent of
/// padding costs as much as a base off by a factor `e^0.45` from the ideal.
const PAD_PENALTY: f64 = 20.0;

/// Chooses `levels` bases for an axis of `n` samples: as equal as possible (each near
/// `n^(1/levels)`), ascending so the largest base sits at the finest level where it costs least.
/// When `n` factorises badly (a large prime factor) the axis is padded to the size `n' >= n` that
/// best trades balance against padding. Returns `(n', bases)`.
pub fn auto_bases(n: usize, levels: usize) -> (usize, Vec<usize>) {
    assert!(n > 0 && levels > 0);
    let mut best: Option<(f64, usize, Vec<usize>)> = None;
    let mut m = n;
    loop {
        let pad_cost = PAD_PENALTY * (m - n) as f64 / n as f64;
        if let Some((c, _, _)) = &best {
            if pad_cost >= *c {
                break;
            }
        }
        if let Some((c, b)) = balanced_factorisation(m, levels) {
            let total = c + pad_cost;
            if best.as_ref().is_none_or(|(bc, _, _)| total < *bc) {
                best = Some((total, m, b));
            }
        }
        m += 1;
    }
    let (_, m, b) = best.expect("n itself always factorises");
    (m, b)
}

/// The ascending factorisation of `n` into `k` factors minimising the squared log-distance of each
/// factor to `n^(1/k)`.
fn balanced_factorisation(n: usize, k: usize) -> Option<(f64, Vec<usize>)> {
    let target = (n as f64).ln() / k as f64;
    let mut best: Option<(f64, Vec<usize>)> = None;
    let mut cur = Vec::with_capacity(k);
    search(n, k, 1, target, 0.0, &mut cur, &mut best);
    best
}

fn search(
    n: usize,
    k: usize,
    min: usize,
    target: f64,
    cost: f64,
    cur: &mut Vec<usize>,
    best: &mut Option<(f64, Vec<usize>)>,
) {
    let term = |f: usize| ((f as f64).ln() - target).powi(2);
    if best.as_ref().is_some_and(|(c, _)| cost >= *c) {
        return;
    }
    if k == 1 {
        if n >= min {
            let c = cost + term(n);
            if best.as_ref().is_none_or(|(bc, _)| c < *bc) {
                cur.push(n);
                *best = Some((c, cur.clone()));
                cur.pop();
            }
        }
        return;
    }
    let mut f = min;
    // Factors are non-decreasing, so f^k <= n.
    while f.checked_pow(k as u32).is_some_and(|p| p <= n) {
        if n.is_multiple_of(f) {
            cur.push(f);
            search(n / f, k - 1, f, target, cost + term(f), cur, best);
            cur.pop();
        }
        f += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_and_coords_follow_the_spec() {
        let g = MultiResGrid::new(&[12], vec![vec![2, 3, 2]]).unwrap();
        assert_eq!(g.cumulative(0, 0), 2);
        assert_eq!(g.cumulative(0, 1), 6);
        assert_eq!(g.cumulative(0, 2), 12);
        assert_eq!(g.stride(0, 0), 6);
        // x = 11 = 1*6 + 2*2 + 1
        assert_eq!(
            (0..3).map(|l| g.digit(0, l, 11)).collect::<Vec<_>>(),
            vec![1, 2, 1]
        );
        assert_eq!(g.level_coord(0, 1, 11), 1.0);
        assert_eq!(g.level_coord(0, 1, 2), 0.5);
        // Every index has a distinct digit sequence, in raster order.
        let seqs: Vec<usize> = (0..12)
            .map(|x| (g.digit(0, 0, x) * 3 + g.digit(0, 1, x)) * 2 + g.digit(0, 2, x))
            .collect();
        assert_eq!(seqs, (0..12).collect::<Vec<_>>());
    }

    #[test]
    fn base_one_gives_zero_coordinate() {
        let g = MultiResGrid::new(&[4, 6], vec![vec![1, 4], vec![3, 2]]).unwrap();
        assert_eq!(g.level_coord(0, 0, 3), 0.0);
        assert_eq!(g.level_points(0), 3);
        assert_eq!(g.resolution(0), 3);
        assert_eq!(g.resolution(1), 24);
        let lg = g.level_grid(1);
        assert_eq!(lg.len(), 8 * 2);
        // Raster order, last axis fastest: point 1 is (digit 0, digit 1).
        assert_eq!(&lg[2..4], &[0.0, 1.0]);
        assert_eq!(&lg[4..6], &[1.0 / 3.0, 0.0]);
    }

    #[test]
    fn rejects_mismatched_bases() {
        assert!(MultiResGrid::new(&[512], vec![vec![4, 4, 4, 4]]).is_err());
        assert!(MultiResGrid::new(&[16, 16], vec![vec![4, 4], vec![2, 2, 4]]).is_err());
        assert!(MultiResGrid::new(&[16], vec![vec![4, 4], vec![4, 4]]).is_err());
        let e = MultiResGrid::new(&[16], vec![vec![0, 4]]).unwrap_err();
        assert!(e.to_string().contains("base of 0"));
    }

    #[test]
    fn auto_bases_match_the_paper_where_sizes_allow() {
        assert_eq!(auto_bases(512, 4), (512, vec![4, 4, 4, 8]));
        assert_eq!(auto_bases(768, 4), (768, vec![4, 4, 6, 8]));
        assert_eq!(auto_bases(512, 3), (512, vec![8, 8, 8]));
        // The megapixel preset's automatic bases are the paper's on 8192 x 8192.
        assert_eq!(auto_bases(8192, 6), (8192, vec![4, 4, 4, 4, 4, 8]));
        assert_eq!(auto_bases(1, 5), (1, vec![1, 1, 1, 1, 1]));
        assert_eq!(auto_bases(7, 1), (7, vec![7]));
    }

    #[test]
    fn awkward_sizes_are_padded_a_little() {
        for (n, levels) in [
            (451, 4),
            (300, 4),
            (997, 3),
            (113600, 4),
            (2268, 6),
            (1511, 6),
        ] {
            let (m, b) = auto_bases(n, levels);
            assert!(m >= n && m <= n + n / 10 + 8, "{n} -> {m}");
            assert_eq!(b.iter().product::<usize>(), m);
            assert_eq!(b.len(), levels);
            let ideal = (m as f64).powf(1.0 / levels as f64);
            assert!(
                b.iter().all(|&x| (x as f64) < 3.0 * ideal + 2.0),
                "{n}: {b:?}"
            );
            assert!(b.windows(2).all(|w| w[0] <= w[1]));
        }
        // A prime is never kept as one huge base.
        let (m, _) = auto_bases(451, 4);
        assert_ne!(m, 451);
    }

    /// Row of index `x`'s level-`l` digits in [`MultiResGrid::level_grid`].
    fn digit_row(g: &MultiResGrid, l: usize, x: &[u32]) -> u32 {
        let mut r = 0usize;
        for (a, &xa) in x.iter().enumerate() {
            r = r * g.bases[a][l] + g.digit(a, l, xa as usize);
        }
        r as u32
    }

    /// The grouping level by level, by a comparison sort of `(cell, digit)` keys at every level.
    fn batch_cells_by_sorting(g: &MultiResGrid, idx: &[u32]) -> BatchCells {
        let d = g.dims();
        let mut cell: Vec<u32> = idx.chunks_exact(d).map(|x| digit_row(g, 0, x)).collect();
        let mut links = Vec::new();
        for l in 1..g.levels() {
            let mut keyed: Vec<(u64, u32)> = idx
                .chunks_exact(d)
                .enumerate()
                .map(|(p, x)| {
                    (
                        ((cell[p] as u64) << 32) | digit_row(g, l, x) as u64,
                        p as u32,
                    )
                })
                .collect();
            keyed.sort_unstable();
            let (mut parent, mut digit) = (Vec::new(), Vec::new());
            let mut last = u64::MAX;
            for &(key, p) in &keyed {
                if key != last {
                    parent.push((key >> 32) as u32);
                    digit.push(key as u32);
                    last = key;
                }
                cell[p as usize] = (parent.len() - 1) as u32;
            }
            links.push((parent, digit));
        }
        BatchCells {
            links,
            sample_cell: cell,
        }
    }

    #[test]
    fn batch_cells_match_a_comparison_sort() {
        let grids = [
            // Keys of 14 bits: one or two radix passes.
            MultiResGrid::new(
                &[48, 30, 8],
                vec![vec![2, 4, 6], vec![5, 3, 2], vec![2, 2, 2]],
            )
            .unwrap(),
            // 26-bit keys (the megapixel grid): three passes.
            MultiResGrid::new(&[8192, 8192], vec![vec![4, 4, 4, 4, 4, 8]; 2]).unwrap(),
            // 40-bit keys: packed with the sample number, but past the 32-bit division shortcut.
            MultiResGrid::new(&[1 << 20, 1 << 20], vec![vec![64, 128, 128]; 2]).unwrap(),
            // 52-bit keys: too wide to share a word with the sample number.
            MultiResGrid::new(
                &[1 << 20, 1 << 20, 1 << 12],
                vec![vec![64, 128, 128], vec![64, 128, 128], vec![16, 16, 16]],
            )
            .unwrap(),
        ];
        let mut rng = crate::rng::Rng::new(4);
        for g in &grids {
            for n in [0usize, 1, 7, 500, 5000] {
                let mut idx: Vec<u32> = (0..n)
                    .flat_map(|_| {
                        g.shape()
                            .iter()
                            .map(|&s| (rng.next_u64() % s as u64) as u32)
                            .collect::<Vec<_>>()
                    })
                    .collect();
                // Repeated samples share every cell.
                let repeat = idx[..idx.len().min(3 * g.dims())].to_vec();
                idx.extend(repeat);
                assert_eq!(
                    g.batch_cells(&idx),
                    batch_cells_by_sorting(g, &idx),
                    "{n} samples of {:?}",
                    g.shape()
                );
            }
        }
    }

    #[test]
    fn division_by_a_fixed_divisor_is_exact() {
        let divisors = [
            1u64,
            2,
            3,
            7,
            1 << 13,
            48_000,
            (1 << 31) + 11,
            u32::MAX as u64,
        ];
        let big = [1u64 << 32, (1 << 40) + 3, u64::MAX];
        for d in divisors.into_iter().chain(big) {
            let div = Divisor::new(d);
            let mut rng = crate::rng::Rng::new(d);
            let edges = [
                0,
                1,
                d - 1,
                d,
                d.saturating_add(1),
                2 * d.min(1 << 40) - 1,
                u32::MAX as u64,
            ];
            let random = (0..2000).map(|_| rng.next_u64() >> (rng.next_u64() % 64));
            for n in edges.into_iter().chain(random) {
                assert_eq!(div.div(n), n / d, "{n} / {d}");
            }
        }
    }

    #[test]
    fn radix_sort_orders_by_the_chosen_bits_only() {
        let mut rng = crate::rng::Rng::new(9);
        let values: Vec<u64> = (0..3000).map(|_| rng.next_u64() >> 20).collect();
        // Every key the same: the passes that would move nothing are skipped.
        let same: Vec<u64> = (0..50).map(|_| (5 << 8) | (rng.next_u64() % 256)).collect();
        for original in [values, same] {
            let mut v = original.clone();
            radix_sort(&mut v, 8, 36);
            assert!(v.windows(2).all(|w| w[0] >> 8 <= w[1] >> 8));
            let (mut a, mut b) = (v, original);
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b, "the sort keeps every value");
        }
        assert_eq!(bits_for(0), 0);
        assert_eq!(bits_for(1), 0);
        assert_eq!(bits_for(2), 1);
        assert_eq!(bits_for(1 << 26), 26);
        assert_eq!(bits_for((1 << 26) + 1), 27);
    }

    #[test]
    fn batch_cells_share_coarse_cells() {
        let g = MultiResGrid::new(&[8, 4], vec![vec![2, 4], vec![2, 2]]).unwrap();
        // (0,0) and (3,1) share the level-0 cell (digits 0,0); (7,3) does not; (3,1) twice.
        let idx = [0u32, 0, 3, 1, 7, 3, 3, 1];
        let b = g.batch_cells(&idx);
        assert_eq!(b.links.len(), 1);
        let (parent, digit) = &b.links[0];
        assert_eq!(parent, &vec![0, 0, 3]);
        assert_eq!(digit, &vec![0, 7, 7]);
        assert_eq!(b.sample_cell, vec![0, 1, 2, 1]);
    }

    #[test]
    fn many_axes() {
        let g = MultiResGrid::auto(&[6, 10, 4, 9, 2], 2).unwrap();
        assert_eq!(g.dims(), 5);
        assert_eq!(g.levels(), 2);
        assert_eq!(g.shape(), &[6, 10, 4, 9, 2]);
        let idx = [5u32, 9, 3, 8, 1];
        let u = g.decompose(&idx);
        assert_eq!(u.len(), 2);
        assert_eq!(u[1].len(), 5);
        assert!(u.iter().flatten().all(|&v| (0.0..=1.0).contains(&v)));
        // The last index of every axis has the top digit at every level.
        assert!(u.iter().flatten().all(|&v| v == 1.0 || v == 0.0));
    }
}
