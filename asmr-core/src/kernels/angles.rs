//! The sine of an ASMR level by angle sums. A point's pre-activation is `w0 (z[parent] + m[digit])`,
//! and neighbouring points share a parent (a cell's children lie together) while every cell repeats
//! the same few digits. With the sines and cosines of `w0 m` per digit row and of `w0 z` per parent
//! row, `sin(a + b) = sin a cos b + cos a sin b` (and `cos(a + b)` alike) costs two products per
//! activation instead of a range reduction and a polynomial. Parent rows are evaluated on first use
//! and kept in a small direct-mapped cache (a raster row of points cycles through a row of parents,
//! a sorted batch meets each parent once), and the sums are used only where enough points share a
//! parent to pay for its row.

use super::sine::{multiversion, sin, sin_cos};

multiversion! {
    /// `s[i], c[i] = sin, cos (w0 * x[i])`.
    pub(super) fn fill_sin_cos(x: &[f32], s: &mut [f32], c: &mut [f32], w0: f32) {
        for ((&v, s), c) in x.iter().zip(s.iter_mut()).zip(c.iter_mut()) {
            (*s, *c) = sin_cos(w0 * v);
        }
    }
}

/// Most parent rows the cache holds: enough for a raster row of parents of an 8192-wide grid with
/// 8-wide cells, at 4 MB for 512-wide rows.
const MAX_SLOTS: usize = 1024;

/// Sines and cosines of the pre-activations of a sequence of points.
pub(crate) struct Angles<'a> {
    z: &'a [f32],
    m: &'a [f32],
    h: usize,
    w0: f32,
    /// `(sin, cos)` of `w0 m`, every digit row, when the points share their parents enough.
    digits: Option<(Vec<f32>, Vec<f32>)>,
    /// The cache of parent rows: which parent each slot holds, and its `(sin, cos)` of `w0 z`.
    tags: Vec<usize>,
    rows: (Vec<f32>, Vec<f32>),
}

impl<'a> Angles<'a> {
    /// For the points whose parents are `parents` (`z` and `m` are `h` wide).
    pub fn new(z: &'a [f32], m: &'a [f32], parents: &[u32], h: usize, w0: f32) -> Self {
        let digit_rows = m.len() / h.max(1);
        let (lo, hi) = parents
            .iter()
            .fold((u32::MAX, 0), |(lo, hi), &p| (lo.min(p), hi.max(p)));
        let span = (hi as usize + 1).saturating_sub(lo as usize);
        let runs = 1 + parents.windows(2).filter(|w| w[0] != w[1]).count();
        // Summed: a sine and cosine per parent met and per digit row, then two products per
        // point; direct: one sine per point, about half the cost of a sine and cosine.
        let parent_rows = runs.min(span);
        let summed = 2 * (parent_rows + digit_rows) <= parents.len();
        let digits = summed.then(|| {
            let (mut s, mut c) = (vec![0f32; m.len()], vec![0f32; m.len()]);
            fill_sin_cos(m, &mut s, &mut c, w0);
            (s, c)
        });
        let slots = if summed {
            span.clamp(1, MAX_SLOTS).next_power_of_two()
        } else {
            0
        };
        Angles {
            z,
            m,
            h,
            w0,
            digits,
            tags: vec![usize::MAX; slots],
            rows: (vec![0f32; slots * h], vec![0f32; slots * h]),
        }
    }

    /// Whether the angle sums serve these points (otherwise each point takes its own sine).
    #[cfg(test)]
    pub fn summed(&self) -> bool {
        self.digits.is_some()
    }

    /// Where the parent's row of `(sin, cos)` starts in `rows`, evaluated on a cache miss.
    #[inline(always)]
    fn parent_row(&mut self, pa: usize) -> usize {
        let slot = pa & (self.tags.len() - 1);
        let at = slot * self.h;
        if self.tags[slot] != pa {
            let zr = &self.z[pa * self.h..][..self.h];
            let (s, c) = (
                &mut self.rows.0[at..][..self.h],
                &mut self.rows.1[at..][..self.h],
            );
            fill_sin_cos(zr, s, c, self.w0);
            self.tags[slot] = pa;
        }
        at
    }

    /// What point `(pa, di)`'s activations come from.
    #[inline(always)]
    fn factors(&mut self, pa: usize, di: usize) -> Factors<'_> {
        let h = self.h;
        if self.digits.is_none() {
            let (z, m) = (&self.z[pa * h..][..h], &self.m[di * h..][..h]);
            return Factors::Direct { z, m, w0: self.w0 };
        }
        let at = self.parent_row(pa);
        let (ds, dc) = self.digits.as_ref().expect("summed");
        Factors::Summed {
            zs: &self.rows.0[at..][..h],
            zc: &self.rows.1[at..][..h],
            ms: &ds[di * h..][..h],
            mc: &dc[di * h..][..h],
        }
    }

    /// `out[j] = sin(w0 (z[pa][j] + m[di][j]))`.
    #[inline(always)]
    pub fn sin(&mut self, pa: usize, di: usize, out: &mut [f32]) {
        match self.factors(pa, di) {
            Factors::Direct { z, m, w0 } => {
                for ((o, &a), &b) in out.iter_mut().zip(z).zip(m) {
                    *o = sin(w0 * (a + b));
                }
            }
            Factors::Summed { zs, zc, ms, mc } => {
                for j in 0..out.len() {
                    out[j] = zs[j] * mc[j] + zc[j] * ms[j];
                }
            }
        }
    }

    /// `out[j] = cos(w0 (z[pa][j] + m[di][j]))`.
    #[inline(always)]
    pub fn cos(&mut self, pa: usize, di: usize, out: &mut [f32]) {
        match self.factors(pa, di) {
            Factors::Direct { z, m, w0 } => {
                for ((o, &a), &b) in out.iter_mut().zip(z).zip(m) {
                    *o = sin_cos(w0 * (a + b)).1;
                }
            }
            Factors::Summed { zs, zc, ms, mc } => {
                for j in 0..out.len() {
                    out[j] = zc[j] * mc[j] - zs[j] * ms[j];
                }
            }
        }
    }

    /// Both of the above.
    #[inline(always)]
    pub fn sin_cos(&mut self, pa: usize, di: usize, s: &mut [f32], c: &mut [f32]) {
        match self.factors(pa, di) {
            Factors::Direct { z, m, w0 } => {
                for j in 0..s.len() {
                    (s[j], c[j]) = sin_cos(w0 * (z[j] + m[j]));
                }
            }
            Factors::Summed { zs, zc, ms, mc } => {
                for j in 0..s.len() {
                    s[j] = zs[j] * mc[j] + zc[j] * ms[j];
                    c[j] = zc[j] * mc[j] - zs[j] * ms[j];
                }
            }
        }
    }
}

/// A point's rows: its own coarse and modulation rows, or the sines and cosines to combine.
enum Factors<'a> {
    Direct {
        z: &'a [f32],
        m: &'a [f32],
        w0: f32,
    },
    Summed {
        zs: &'a [f32],
        zc: &'a [f32],
        ms: &'a [f32],
        mc: &'a [f32],
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut x = seed.wrapping_mul(2_654_435_761);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x as f32 / u32::MAX as f32 - 0.5) * 2.0
            })
            .collect()
    }

    /// Both forms give the sine and cosine of the summed angle: long runs of one parent, raster
    /// rows cycling through a row of parents, more parents than cache slots (summed), and points that
    /// each have their own parent (direct).
    #[test]
    fn summed_and_direct_angles_match_the_sum() {
        let w0 = 30.0f32;
        let cases: [(usize, Vec<u32>, bool); 4] = [
            (19, (0..240).map(|p| p / 8).collect(), true),
            (
                19,
                (0..240).map(|p| (p / 2) % 5 + 5 * (p / 60)).collect(),
                true,
            ),
            (3, (0..6000).map(|p| (p / 4 % 1500) * 2).collect(), true),
            (19, (0..40).collect(), false),
        ];
        for (h, parents, summed) in cases {
            let rows = *parents.iter().max().unwrap() as usize + 1;
            let (z, m) = (values(rows * h, 1), values(6 * h, 2));
            let digits: Vec<u32> = (0..parents.len() as u32).map(|p| p % 6).collect();
            let mut angles = Angles::new(&z, &m, &parents, h, w0);
            assert_eq!(angles.summed(), summed);
            let (mut s, mut c, mut s2, mut c2) =
                (vec![0.0; h], vec![0.0; h], vec![0.0; h], vec![0.0; h]);
            for (&pa, &di) in parents.iter().zip(&digits) {
                let (pa, di) = (pa as usize, di as usize);
                angles.sin(pa, di, &mut s);
                angles.cos(pa, di, &mut c);
                angles.sin_cos(pa, di, &mut s2, &mut c2);
                for j in 0..h {
                    let x = w0 as f64 * (z[pa * h + j] as f64 + m[di * h + j] as f64);
                    for (got, want) in [
                        (s[j], x.sin()),
                        (s2[j], x.sin()),
                        (c[j], x.cos()),
                        (c2[j], x.cos()),
                    ] {
                        assert!(
                            (got as f64 - want).abs() < 2e-5,
                            "{summed}: {got} against {want}"
                        );
                    }
                }
            }
        }
    }
}
