//! A fast, vectorisable sine and cosine for f32 arguments, and `sin(w0 * x)` as a candle op.
//!
//! Range reduction is done in f64 (`x = k*pi + r`, `|r| <= pi/2`), so arguments up to 1e4 and far
//! beyond keep an absolute error near 1e-7 against f64 `sin` of the same f32 argument; the polynomial
//! is the Taylor series to `r^13`. Branch-free, so loops over it auto-vectorise.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use super::{num_threads, split_range};

const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52: adding it rounds to an integer
const S3: f64 = -1.0 / 6.0;
const S5: f64 = 1.0 / 120.0;
const S7: f64 = -1.0 / 5040.0;
const S9: f64 = 1.0 / 362_880.0;
const S11: f64 = -1.0 / 39_916_800.0;
const S13: f64 = 1.0 / 6_227_020_800.0;

/// `(-1)^parity(q) * sin(r)`, `q` the magic-rounded quotient.
#[inline(always)]
fn signed_poly(q: f64, r: f64) -> f32 {
    let r2 = r * r;
    let p = r + r * r2 * (S3 + r2 * (S5 + r2 * (S7 + r2 * (S9 + r2 * (S11 + r2 * S13)))));
    let odd = q.to_bits() << 63;
    f64::from_bits(p.to_bits() ^ odd) as f32
}

#[inline(always)]
pub fn sin(x: f32) -> f32 {
    let x = x as f64;
    let q = x * std::f64::consts::FRAC_1_PI + MAGIC;
    let k = q - MAGIC;
    signed_poly(q, x - k * std::f64::consts::PI)
}

#[inline(always)]
pub fn cos(x: f32) -> f32 {
    // x = (k - 1/2) pi + r  =>  cos x = (-1)^k sin r.
    let x = x as f64;
    let q = x * std::f64::consts::FRAC_1_PI + 0.5 + MAGIC;
    let k = q - MAGIC;
    signed_poly(q, x - (k - 0.5) * std::f64::consts::PI)
}

macro_rules! multiversion {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        fn $name($($arg: $ty),*) {
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

/// Run `f` over matching chunks of `out` and the inputs, on all kernel threads.
fn par_map(n: usize, out: &mut [f32], f: impl Fn(std::ops::Range<usize>, &mut [f32]) + Sync) {
    let ranges = split_range(n, if n < 1 << 15 { 1 } else { num_threads() });
    std::thread::scope(|s| {
        let mut rest = out;
        for r in ranges {
            let (head, tail) = rest.split_at_mut(r.len());
            rest = tail;
            let f = &f;
            s.spawn(move || f(r, head));
        }
    });
}

fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v,
        _ => candle_core::bail!("{what}: f32 tensors only"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{what}: input must be contiguous"),
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
        let x = contiguous_f32(s, l, "sine")?;
        let mut out = vec![0f32; x.len()];
        par_map(x.len(), &mut out, |r, o| sine_chunk(&x[r], o, self.w0));
        Ok((CpuStorage::F32(out), l.shape().clone()))
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
        let x = contiguous_f32(s1, l1, "sine backward")?;
        let g = contiguous_f32(s2, l2, "sine backward")?;
        let mut out = vec![0f32; x.len()];
        par_map(x.len(), &mut out, |r, o| {
            sine_bwd_chunk(&x[r.clone()], &g[r], o, self.w0)
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// `sin(w0 * x)`: the fused kernel on the CPU for f32, candle's own ops elsewhere.
pub fn sine(x: &Tensor, w0: f64) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
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
        for i in 0..100_000 {
            let x = (i as f32) * 1e-5;
            assert!((sin(x) as f64 - (x as f64).sin()).abs() <= 1e-7);
        }
        assert!(worst.0 <= 2e-6 && worst.1 <= 2e-6, "max errors {worst:?}");
    }

    #[test]
    fn op_matches_candle() {
        let dev = candle_core::Device::Cpu;
        let x = Tensor::rand(-3f32, 3f32, (300, 129), &dev).unwrap();
        let a = sine(&x, 30.0).unwrap();
        let b = sine_plain(&x, 30.0).unwrap();
        let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
        // Gradient.
        let v = candle_core::Var::from_tensor(&x).unwrap();
        let w = Tensor::rand(-1f32, 1f32, (300, 129), &dev).unwrap();
        let g1 = (sine(v.as_tensor(), 30.0).unwrap() * &w)
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
