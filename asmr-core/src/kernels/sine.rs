//! A fast, vectorisable sine and cosine for f32 arguments, and `sin(w0 * x)` as a candle op.
//!
//! Everything stays in f32 (eight lanes with AVX2). Range reduction is Cody–Waite: `x = k*pi + r`,
//! `|r| <= pi/2`, with pi split in three parts whose first two products with `k` are exact for
//! `|k| < 4096`; beyond that the error grows slowly (about 1e-6 at |x| = 1e5). Taylor polynomials
//! to `r^11` (sine) and `r^12` (cosine). Measured against f64 on a dense sweep of |x| <= 2e4: below
//! 5e-7 absolute. Branch-free, so loops over it auto-vectorise. (The GPU kernels use CUDA's own
//! `sinf`/`cosf`, accurate to a few ulp at these arguments.)

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

#[cfg(feature = "cuda")]
use super::cuda::{
    self,
    device::{operand, run_into},
};
use super::reduce::column_sums;
use super::{cpu_f32, par_rows, rows_and_bias, Kernels};
#[cfg(feature = "cuda")]
use candle_core::CudaStorage;

const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
const INV_PI: f32 = std::f32::consts::FRAC_1_PI;
const PI_A: f32 = 3.140625; // 8 significant bits
const PI_B: f32 = 4058.0 / 4_194_304.0; // 4058 / 2^22, 12 significant bits
const PI_C: f32 = (std::f64::consts::PI - 3.140625 - 4058.0 / 4_194_304.0) as f32; // the rest
const S3: f32 = -1.0 / 6.0;
const S5: f32 = 1.0 / 120.0;
const S7: f32 = -1.0 / 5040.0;
const S9: f32 = 1.0 / 362_880.0;
const S11: f32 = -1.0 / 39_916_800.0;
const C2: f32 = -0.5;
const C4: f32 = 1.0 / 24.0;
const C6: f32 = -1.0 / 720.0;
const C8: f32 = 1.0 / 40_320.0;
const C10: f32 = -1.0 / 3_628_800.0;
const C12: f32 = 1.0 / 479_001_600.0;

/// `x - k * pi` in three exact-as-possible steps.
#[inline(always)]
fn reduce(x: f32, k: f32) -> f32 {
    ((x - k * PI_A) - k * PI_B) - k * PI_C
}

#[inline(always)]
fn sin_poly(r: f32) -> f32 {
    let r2 = r * r;
    r + r * r2 * (S3 + r2 * (S5 + r2 * (S7 + r2 * (S9 + r2 * S11))))
}

#[inline(always)]
fn cos_poly(r: f32) -> f32 {
    let r2 = r * r;
    1.0 + r2 * (C2 + r2 * (C4 + r2 * (C6 + r2 * (C8 + r2 * (C10 + r2 * C12)))))
}

/// Flip the sign of `v` when the integer held in the magic-rounded `q` is odd.
#[inline(always)]
fn flip_if_odd(v: f32, q: f32) -> f32 {
    f32::from_bits(v.to_bits() ^ (q.to_bits() << 31))
}

#[inline(always)]
pub fn sin(x: f32) -> f32 {
    let q = x * INV_PI + MAGIC;
    let k = q - MAGIC;
    flip_if_odd(sin_poly(reduce(x, k)), q)
}

#[inline(always)]
pub fn cos(x: f32) -> f32 {
    // x = (k + 1/2) pi + r  =>  cos x = -(-1)^k sin r.
    let q = x * INV_PI - 0.5 + MAGIC;
    let k = q - MAGIC;
    let r = reduce(x, k) - 0.5 * PI_A - 0.5 * PI_B - 0.5 * PI_C;
    -flip_if_odd(sin_poly(r), q)
}

/// `(sin x, cos x)` from one range reduction.
#[inline(always)]
pub fn sin_cos(x: f32) -> (f32, f32) {
    let q = x * INV_PI + MAGIC;
    let k = q - MAGIC;
    let r = reduce(x, k);
    (flip_if_odd(sin_poly(r), q), flip_if_odd(cos_poly(r), q))
}

macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) { body($($arg),*) }
                if super::has_avx2() {
                    // SAFETY: the CPU supports the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

multiversion! {
    /// `out[i] = sin(w0 * x[i])`.
    fn sine_chunk(x: &[f32], out: &mut [f32], w0: f32) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = sin(w0 * v);
        }
    }
}

multiversion! {
    /// `out[i] = g[i] * w0 * cos(w0 * x[i])`.
    fn sine_bwd_chunk(x: &[f32], g: &[f32], out: &mut [f32], w0: f32) {
        for ((o, &v), &gv) in out.iter_mut().zip(x).zip(g) {
            *o = gv * w0 * cos(w0 * v);
        }
    }
}

/// `sin(w0 * x)` with a fused backward `g * w0 * cos(w0 * x)`.
struct Sine {
    w0: f32,
}

impl CustomOp1 for Sine {
    fn name(&self) -> &'static str {
        "asmr-sine"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_f32(s, l, "sine")?;
        let mut out = vec![0f32; x.len()];
        par_rows(x.len(), 1, x.len(), &mut out, |r, o| {
            sine_chunk(&x[r], o, self.w0)
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let x = operand(s, l, "sine")?;
        let n = l.shape().elem_count();
        let out = run_into(&s.device, n, false, |e, o| {
            cuda::sine_fwd(e, n, self.w0, x, o)
        })?;
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = grad.contiguous()?;
        Ok(Some(arg.apply_op2_no_bwd(&g, &SineBwd { w0: self.w0 })?))
    }
}

struct SineBwd {
    w0: f32,
}

impl CustomOp2 for SineBwd {
    fn name(&self) -> &'static str {
        "asmr-sine-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = cpu_f32(s1, l1, "sine backward")?;
        let g = cpu_f32(s2, l2, "sine backward")?;
        let mut out = vec![0f32; x.len()];
        par_rows(x.len(), 1, x.len(), &mut out, |r, o| {
            sine_bwd_chunk(&x[r.clone()], &g[r], o, self.w0)
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
        let what = "sine backward";
        let n = super::same_len(l1, l2, what)?;
        let (x, g) = (operand(s1, l1, what)?, operand(s2, l2, what)?);
        let out = run_into(&s1.device, n, false, |e, o| {
            cuda::sine_bwd(e, n, self.w0, x, g, o)
        })?;
        Ok((out, l1.shape().clone()))
    }
}

multiversion! {
    /// `out[i, j] = sin(w0 * (x[i, j] + b[j]))` over whole rows.
    fn sine_bias_rows(x: &[f32], b: &[f32], out: &mut [f32], w0: f32) {
        for (o, xr) in out.chunks_exact_mut(b.len()).zip(x.chunks_exact(b.len())) {
            for ((o, &v), &bj) in o.iter_mut().zip(xr).zip(b) {
                *o = sin(w0 * (v + bj));
            }
        }
    }
}

multiversion! {
    /// `out[i, j] = g[i, j] * w0 * cos(w0 * (x[i, j] + b[j]))` over whole rows.
    fn sine_bias_bwd_rows(x: &[f32], b: &[f32], g: &[f32], out: &mut [f32], w0: f32) {
        let h = b.len();
        for ((o, xr), gr) in out.chunks_exact_mut(h).zip(x.chunks_exact(h)).zip(g.chunks_exact(h)) {
            for (((o, &v), &bj), &gv) in o.iter_mut().zip(xr).zip(b).zip(gr) {
                *o = gv * w0 * cos(w0 * (v + bj));
            }
        }
    }
}

/// `sin(w0 * (x + b))` for rows `x: [n, h]` and a bias `b: [h]`: the bias add of a sine layer
/// fused into its activation, so the backward keeps one `[n, h]` tensor fewer (the sum) and makes
/// one pass fewer over it. The fused kernel on the CPU for f32, candle's own ops elsewhere.
pub fn sine_bias(x: &Tensor, b: &Tensor, w0: f64, k: Kernels) -> Result<Tensor> {
    let f32s = x.dtype() == candle_core::DType::F32 && b.dtype() == candle_core::DType::F32;
    if k.fused_on(x) && f32s && x.rank() == 2 {
        x.contiguous()?
            .apply_op2(&b.contiguous()?, SineBias { w0: w0 as f32 })
    } else {
        sine(&x.broadcast_add(b)?, w0, k)
    }
}

struct SineBias {
    w0: f32,
}

impl CustomOp2 for SineBias {
    fn name(&self) -> &'static str {
        "asmr-sine-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, h, x, b) = rows_and_bias((s1, l1), (s2, l2), "sine with bias")?;
        let mut out = vec![0f32; n * h];
        par_rows(n, h, n * h, &mut out, |r, o| {
            sine_bias_rows(&x[r.start * h..r.end * h], b, o, self.w0)
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
        let what = "sine with bias";
        let (n, h) = super::rows_and_bias_dims(l1, l2, what)?;
        let (x, b) = (operand(s1, l1, what)?, operand(s2, l2, what)?);
        let out = run_into(&s1.device, n * h, false, |e, o| {
            cuda::sine_bias_fwd(e, n, h, self.w0, x, b, o)
        })?;
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let gx = x.apply_op3_no_bwd(b, &grad.contiguous()?, &SineBiasBwd { w0: self.w0 })?;
        let gb = column_sums(&gx)?;
        Ok((Some(gx), Some(gb)))
    }
}

struct SineBiasBwd {
    w0: f32,
}

impl CustomOp3 for SineBiasBwd {
    fn name(&self) -> &'static str {
        "asmr-sine-bias-bwd"
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
        let what = "sine with bias backward";
        let (n, h, x, b) = rows_and_bias((s1, l1), (s2, l2), what)?;
        let g = cpu_f32(s3, l3, what)?;
        if g.len() != n * h {
            candle_core::bail!("{what}: gradient has the wrong size");
        }
        let mut out = vec![0f32; n * h];
        par_rows(n, h, n * h, &mut out, |r, o| {
            let rows = r.start * h..r.end * h;
            sine_bias_bwd_rows(&x[rows.clone()], b, &g[rows], o, self.w0)
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
        s3: &CudaStorage,
        l3: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let what = "sine with bias backward";
        let (n, h) = super::rows_and_bias_dims(l1, l2, what)?;
        super::same_len(l1, l3, what)?;
        let (x, b, g) = (
            operand(s1, l1, what)?,
            operand(s2, l2, what)?,
            operand(s3, l3, what)?,
        );
        let out = run_into(&s1.device, n * h, false, |e, o| {
            cuda::sine_bias_bwd(e, n, h, self.w0, x, b, g, o)
        })?;
        Ok((out, l1.shape().clone()))
    }
}

/// `sin(w0 * x)`: the fused kernel on the CPU for f32, candle's own ops elsewhere.
pub fn sine(x: &Tensor, w0: f64, k: Kernels) -> Result<Tensor> {
    if k.fused_on(x) && x.dtype() == candle_core::DType::F32 {
        x.contiguous()?.apply_op1(Sine { w0: w0 as f32 })
    } else {
        x.affine(w0, 0.0)?.sin()
    }
}

/// The same with candle's own ops on every device (the reference path).
pub fn sine_plain(x: &Tensor, w0: f64) -> Result<Tensor> {
    x.affine(w0, 0.0)?.sin()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dense sweep over the arguments that occur (|w0 x| up to 1e4 and beyond).
    #[test]
    fn accuracy_on_a_dense_sweep() {
        let mut worst = (0f64, 0f64);
        let n = 4_000_000;
        for i in 0..=n {
            let x = (-2.0e4 + 4.0e4 * i as f64 / n as f64) as f32;
            let xs = x as f64;
            let es = (sin(x) as f64 - xs.sin()).abs();
            let ec = (cos(x) as f64 - xs.cos()).abs();
            worst.0 = worst.0.max(es);
            worst.1 = worst.1.max(ec);
        }
        // Small arguments too, where relative accuracy matters.
        for i in 0..=200_000 {
            let x = (-1.0e4 + 0.1 * i as f64) as f32;
            let (s, c) = sin_cos(x);
            worst.0 = worst.0.max((s as f64 - (x as f64).sin()).abs());
            worst.1 = worst.1.max((c as f64 - (x as f64).cos()).abs());
        }
        for i in 0..100_000 {
            let x = (i as f32) * 1e-5;
            assert!((sin(x) as f64 - (x as f64).sin()).abs() <= 1e-7);
        }
        assert!(worst.0 <= 5e-7 && worst.1 <= 5e-7, "max errors {worst:?}");
        // Far outside the range that occurs, the error stays small.
        for x in [3.0e4f32, -5.5e4, 9.9e4] {
            assert!((sin(x) as f64 - (x as f64).sin()).abs() < 2e-6);
        }
    }

    #[test]
    fn op_matches_candle() {
        let dev = candle_core::Device::Cpu;
        let x = Tensor::rand(-3f32, 3f32, (300, 129), &dev).unwrap();
        let a = sine(&x, 30.0, Kernels::Fused).unwrap();
        let b = sine_plain(&x, 30.0).unwrap();
        let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
        // Gradient.
        let v = candle_core::Var::from_tensor(&x).unwrap();
        let w = Tensor::rand(-1f32, 1f32, (300, 129), &dev).unwrap();
        let g1 = (sine(v.as_tensor(), 30.0, Kernels::Fused).unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap();
        let g2 = (sine_plain(v.as_tensor(), 30.0).unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap();
        let (g1, g2) = (g1.backward().unwrap(), g2.backward().unwrap());
        let d = (g1.get(&v).unwrap() - g2.get(&v).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-3);
    }
}
