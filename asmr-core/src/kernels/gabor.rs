//! WIRE's complex Gabor activation `exp(i w0 z - |s0 z|^2)`, with the layer's bias added inside,
//! as one fused op with its backward. A complex tensor is `[n, 2h]`: real parts in the first `h`
//! columns, imaginary in the last `h`. For `z = a + ib` the activation is
//! `E (cos(w0 a) + i sin(w0 a))` with `E = exp(-w0 b - s0^2 (a^2 + b^2))`. Done with candle's ops
//! it is a dozen passes over `[n, h]` each way, and the bias add one more tensor; here it is one.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

#[cfg(feature = "cuda")]
use super::cuda::{
    self,
    device::{operand, run_into},
};
use super::sine::sin_cos;
use super::{cpu_f32, par_rows, rows_and_bias, Kernels};
#[cfg(feature = "cuda")]
use candle_core::CudaStorage;

#[derive(Debug, Clone, Copy)]
struct Gabor {
    omega0: f32,
    sigma0: f32,
    /// The input is real (`[n, h]`, `b = 0`), as after WIRE's first layer.
    real_input: bool,
}

impl Gabor {
    /// Complex width `h` of an input of `cols` columns.
    fn width(&self, cols: usize) -> usize {
        if self.real_input {
            cols
        } else {
            cols / 2
        }
    }

    /// `(a, b)` of column `j` of a row (the bias added).
    #[inline]
    fn input(&self, z: &[f32], bias: &[f32], h: usize, j: usize) -> (f32, f32) {
        let a = z[j] + bias[j];
        let b = if self.real_input {
            0.0
        } else {
            z[h + j] + bias[h + j]
        };
        (a, b)
    }

    /// The GPU kernels' view of an input of `rows x cols`.
    #[cfg(feature = "cuda")]
    fn dims(&self, rows: usize, cols: usize) -> cuda::GaborDims {
        cuda::GaborDims {
            rows,
            h: self.width(cols),
            cols,
            real: self.real_input,
            omega0: self.omega0,
            sigma0: self.sigma0,
        }
    }

    /// `(E, cos, sin)` at `(a, b)`.
    #[inline]
    fn parts(&self, a: f32, b: f32) -> (f32, f32, f32) {
        let s2 = self.sigma0 * self.sigma0;
        let e = (-self.omega0 * b - s2 * (a * a + b * b)).exp();
        let (s, c) = sin_cos(self.omega0 * a);
        (e, c, s)
    }
}

impl CustomOp2 for Gabor {
    fn name(&self) -> &'static str {
        "asmr-gabor-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let what = "gabor with bias";
        let (n, cols, z, bias) = rows_and_bias((s1, l1), (s2, l2), what)?;
        let h = self.width(cols);
        let mut out = vec![0f32; n * 2 * h];
        par_rows(n, 2 * h, n * h * 8, &mut out, |rows, part| {
            for (local, i) in rows.enumerate() {
                let zr = &z[i * cols..(i + 1) * cols];
                let o = &mut part[local * 2 * h..(local + 1) * 2 * h];
                for j in 0..h {
                    let (a, b) = self.input(zr, bias, h, j);
                    let (e, c, s) = self.parts(a, b);
                    o[j] = e * c;
                    o[h + j] = e * s;
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((n, 2 * h))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let what = "gabor with bias";
        let (n, cols) = super::rows_and_bias_dims(l1, l2, what)?;
        let d = self.dims(n, cols);
        let (z, b) = (operand(s1, l1, what)?, operand(s2, l2, what)?);
        let out = run_into(&s1.device, n * 2 * d.h, false, |e, o| {
            cuda::gabor_fwd(e, d, z, b, o)
        })?;
        Ok((out, Shape::from((n, 2 * d.h))))
    }

    fn bwd(
        &self,
        z: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let gz = z.apply_op3_no_bwd(bias, &grad.contiguous()?, &GaborBwd(*self))?;
        let gb = super::reduce::column_sums(&gz)?;
        Ok((Some(gz), Some(gb)))
    }
}

struct GaborBwd(Gabor);

impl CustomOp3 for GaborBwd {
    fn name(&self) -> &'static str {
        "asmr-gabor-bias-bwd"
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
        let op = self.0;
        let what = "gabor with bias backward";
        let (n, cols, z, bias) = rows_and_bias((s1, l1), (s2, l2), what)?;
        let g = cpu_f32(s3, l3, what)?;
        let h = op.width(cols);
        if g.len() != n * 2 * h {
            candle_core::bail!("{what}: gradient has the wrong size");
        }
        let sq = op.sigma0 * op.sigma0;
        let mut out = vec![0f32; n * cols];
        par_rows(n, cols, n * h * 12, &mut out, |rows, part| {
            for (local, i) in rows.enumerate() {
                let zr = &z[i * cols..(i + 1) * cols];
                let gr = &g[i * 2 * h..(i + 1) * 2 * h];
                let o = &mut part[local * cols..(local + 1) * cols];
                for j in 0..h {
                    let (a, b) = op.input(zr, bias, h, j);
                    let (e, c, s) = op.parts(a, b);
                    let (g_re, g_im) = (gr[j], gr[h + j]);
                    // d/da and d/db of E; then the chain rule through E cos and E sin.
                    let p = g_re * c + g_im * s;
                    let q = g_im * c - g_re * s;
                    o[j] = e * (-2.0 * sq * a) * p + e * op.omega0 * q;
                    if !op.real_input {
                        o[h + j] = e * (-op.omega0 - 2.0 * sq * b) * p;
                    }
                }
            }
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
        let what = "gabor with bias backward";
        let (n, cols) = super::rows_and_bias_dims(l1, l2, what)?;
        let d = self.0.dims(n, cols);
        if l3.shape().elem_count() != n * 2 * d.h {
            candle_core::bail!("{what}: gradient has the wrong size");
        }
        let (z, b, g) = (
            operand(s1, l1, what)?,
            operand(s2, l2, what)?,
            operand(s3, l3, what)?,
        );
        // A real input has no imaginary columns to write, so every value is written either way.
        let out = run_into(&s1.device, n * cols, false, |e, o| {
            cuda::gabor_bwd(e, d, z, b, g, o)
        })?;
        Ok((out, l1.shape().clone()))
    }
}

/// The activation of `z + bias` (`z`: `[n, 2h]` complex, or `[n, h]` real when `real_input`;
/// `bias`: one value per column), `[n, 2h]`: the fused kernel on the CPU for f32, candle's own ops
/// elsewhere.
pub fn complex_gabor(
    z: &Tensor,
    bias: &Tensor,
    omega0: f64,
    sigma0: f64,
    real_input: bool,
    k: Kernels,
) -> Result<Tensor> {
    let f32 = z.dtype() == candle_core::DType::F32 && bias.dtype() == candle_core::DType::F32;
    if k.fused_on(z) && f32 && z.rank() == 2 {
        z.contiguous()?.apply_op2(
            &bias.contiguous()?,
            Gabor {
                omega0: omega0 as f32,
                sigma0: sigma0 as f32,
                real_input,
            },
        )
    } else {
        complex_gabor_plain(&z.broadcast_add(bias)?, omega0, sigma0, real_input)
    }
}

/// The reference path, on any device.
pub fn complex_gabor_plain(
    z: &Tensor,
    omega0: f64,
    sigma0: f64,
    real_input: bool,
) -> Result<Tensor> {
    let s2 = sigma0 * sigma0;
    let (a, exponent) = if real_input {
        (z.clone(), z.sqr()?.affine(-s2, 0.0)?)
    } else {
        let h = z.dim(1)? / 2;
        let (a, b) = (z.narrow(1, 0, h)?, z.narrow(1, h, h)?);
        let ab = (a.sqr()? + b.sqr()?)?;
        let e = (ab.affine(-s2, 0.0)? - b.affine(omega0, 0.0)?)?;
        (a, e)
    };
    let envelope = exponent.exp()?;
    let phase = a.affine(omega0, 0.0)?;
    Tensor::cat(
        &[(&envelope * phase.cos()?)?, (envelope * phase.sin()?)?],
        1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn fused_matches_plain() {
        let dev = Device::Cpu;
        for real in [false, true] {
            let cols = if real { 37 } else { 74 };
            let z =
                Var::from_tensor(&Tensor::randn(0f32, 0.05, (3000, cols), &dev).unwrap()).unwrap();
            let bias = Var::from_tensor(&Tensor::randn(0f32, 0.05, cols, &dev).unwrap()).unwrap();
            let r = Tensor::randn(0f32, 1.0, (3000, 74), &dev).unwrap();
            let a = complex_gabor(
                z.as_tensor(),
                bias.as_tensor(),
                20.0,
                20.0,
                real,
                Kernels::Fused,
            )
            .unwrap();
            let zb = z.as_tensor().broadcast_add(bias.as_tensor()).unwrap();
            let b = complex_gabor_plain(&zb, 20.0, 20.0, real).unwrap();
            let diff = crate::kernels::max_abs_diff;
            assert!(diff(&a, &b) < 1e-5, "{}", diff(&a, &b));
            let ga = (a * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (b * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&z, &bias] {
                let (ga, gb) = (ga.get(v).unwrap(), gb.get(v).unwrap());
                let scale: f32 = gb.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
                assert!(diff(ga, gb) < 1e-4 * scale.max(1.0), "{}", diff(ga, gb));
            }
        }
        // A bias of the wrong length is an error, not a wrong answer.
        let z = Tensor::zeros((4, 6), candle_core::DType::F32, &dev).unwrap();
        let short = Tensor::zeros(5, candle_core::DType::F32, &dev).unwrap();
        assert!(complex_gabor(&z, &short, 20.0, 20.0, false, Kernels::Fused).is_err());
    }
}
