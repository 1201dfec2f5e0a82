//! The host emulator of the CUDA kernels (feature `cuda-emu`): `asmr-core/cuda/emu.cpp` compiles
//! the same kernel sources as C++ and runs a launch thread by thread. The tests below run every
//! op's launch plan from `super` through it on host buffers and compare with the CPU kernels, so a
//! kernel or a launch plan that computes the wrong thing fails here, on a machine without a GPU.

use std::ffi::{c_char, c_int, c_void, CString};

use candle_core::Result;

use super::{Arg, Exec, Source, BLOCK};

extern "C" {
    fn asmr_emu_launch(
        name: *const c_char,
        grid: u32,
        block: u32,
        params: *mut *mut c_void,
    ) -> c_int;
}

/// Runs launches on the host; device addresses are host addresses.
pub struct Emu;

impl Exec for Emu {
    fn launch(&self, _src: Source, kernel: &'static str, blocks: u32, args: &[Arg]) -> Result<()> {
        // One 8-byte slot per parameter, read by the kernel as its declared type (x86 and ARM are
        // little-endian, so a 4-byte value sits at the slot's start).
        let mut slots: Vec<u64> = args
            .iter()
            .map(|a| match *a {
                Arg::Ptr(v) | Arg::U64(v) => v,
                Arg::U32(v) => v as u64,
                Arg::F32(v) => v.to_bits() as u64,
            })
            .collect();
        let mut params: Vec<*mut c_void> = slots
            .iter_mut()
            .map(|s| (s as *mut u64).cast::<c_void>())
            .collect();
        let name = CString::new(kernel).expect("kernel names have no NUL");
        // SAFETY: the parameters point at live slots, one per parameter of the kernel as its launch
        // function declares them; the kernels touch only the buffers those addresses name.
        let rc = unsafe { asmr_emu_launch(name.as_ptr(), blocks, BLOCK, params.as_mut_ptr()) };
        if rc != 0 {
            candle_core::bail!("emulator: no kernel named {kernel}");
        }
        Ok(())
    }
}

/// The host address of a buffer the kernels read, as a device address.
pub fn addr<T>(v: &[T]) -> u64 {
    v.as_ptr() as u64
}

/// The host address of a buffer the kernels write.
pub fn dst<T>(v: &mut [T]) -> u64 {
    v.as_mut_ptr() as u64
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use candle_core::{Device, Tensor, Var};

    use super::super::{self as k, Ptr};
    use super::*;
    use crate::grid::MultiResGrid;
    use crate::kernels::level::LevelMap;
    use crate::kernels::Kernels;

    fn rand(shape: &[usize], lo: f32, hi: f32) -> Tensor {
        Tensor::rand(lo, hi, shape, &Device::Cpu).unwrap()
    }

    fn host(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// Largest difference relative to the larger of 1 and the reference's largest magnitude.
    fn assert_close(got: &[f32], want: &Tensor, tol: f32, what: &str) {
        let want = host(want);
        assert_eq!(got.len(), want.len(), "{what}: length");
        let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
        let worst = got
            .iter()
            .zip(&want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            worst <= tol * scale,
            "{what}: max difference {worst} (scale {scale})"
        );
    }

    /// The CPU gradients of `sum(f(vars) * r)` by each var.
    fn grads(vars: &[&Var], out: &Tensor, r: &Tensor) -> Vec<Tensor> {
        let g = (out * r).unwrap().sum_all().unwrap().backward().unwrap();
        vars.iter().map(|v| g.get(v).unwrap().clone()).collect()
    }

    #[test]
    fn sine_and_sine_with_bias() {
        let (n, h, w0) = (300, 37, 30f32);
        let x = Var::from_tensor(&rand(&[n, h], -2.0, 2.0)).unwrap();
        let b = Var::from_tensor(&rand(&[h], -1.0, 1.0)).unwrap();
        let r = rand(&[n, h], -1.0, 1.0);
        let (xs, bs, rs) = (host(x.as_tensor()), host(b.as_tensor()), host(&r));

        let want = crate::kernels::sine::sine(x.as_tensor(), w0 as f64, Kernels::Fused).unwrap();
        let mut out = vec![0f32; n * h];
        k::sine_fwd(&Emu, n * h, w0, addr(&xs), dst(&mut out)).unwrap();
        assert_close(&out, &want, 1e-5, "sine");
        let gx = &grads(&[&x], &want, &r)[0];
        k::sine_bwd(&Emu, n * h, w0, addr(&xs), addr(&rs), dst(&mut out)).unwrap();
        assert_close(&out, gx, 1e-4, "sine backward");

        let want = crate::kernels::sine::sine_bias(
            x.as_tensor(),
            b.as_tensor(),
            w0 as f64,
            Kernels::Fused,
        )
        .unwrap();
        k::sine_bias_fwd(&Emu, n, h, w0, addr(&xs), addr(&bs), dst(&mut out)).unwrap();
        assert_close(&out, &want, 1e-5, "sine with bias");
        let g = grads(&[&x, &b], &want, &r);
        k::sine_bias_bwd(
            &Emu,
            n,
            h,
            w0,
            addr(&xs),
            addr(&bs),
            addr(&rs),
            dst(&mut out),
        )
        .unwrap();
        assert_close(&out, &g[0], 1e-4, "sine with bias, backward");
        let mut sums = vec![0f32; h];
        k::column_sums(&Emu, n, h, addr(&out), dst(&mut sums)).unwrap();
        assert_close(&sums, &g[1], 1e-4, "bias gradient");
    }

    /// Three Adam steps with weight decay and a learning-rate factor, against `optim::Adam`.
    #[test]
    fn adam_steps() {
        use crate::optim::{Adam, AdamConfig};
        let n = 1000;
        let c = AdamConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.01,
        };
        let var = Var::from_tensor(&rand(&[n], -1.0, 1.0)).unwrap();
        let mut p = host(var.as_tensor());
        let (mut m, mut v) = (vec![0f32; n], vec![0f32; n]);
        let mut adam = Adam::new(vec![("w".into(), var.clone())], c).unwrap();
        adam.set_factors(vec![2.0]);
        let lr = 1e-3;
        for t in 1..=3 {
            let r = rand(&[n], -1.0, 1.0);
            let loss = (var.as_tensor().sqr().unwrap() * &r)
                .unwrap()
                .sum_all()
                .unwrap();
            let grads = loss.backward().unwrap();
            let g = host(grads.get(&var).unwrap());
            adam.step(&grads, lr).unwrap();
            let (bc1, bc2) = (1.0 - 0.9f64.powi(t), 1.0 - 0.95f64.powi(t));
            k::adam_moment(&Emu, n, 0.9, false, 0.01, addr(&g), addr(&p), dst(&mut m)).unwrap();
            k::adam_moment(&Emu, n, 0.95, true, 0.01, addr(&g), addr(&p), dst(&mut v)).unwrap();
            let step = (lr * 2.0 / bc1) as f32;
            let (sq, pp) = (bc2.sqrt() as f32, dst(&mut p));
            k::adam_update(&Emu, n, step, sq, 1e-8, addr(&m), addr(&v), pp).unwrap();
            assert_close(&p, var.as_tensor(), 1e-6, "adam");
        }
    }

    /// Three updates of the weight average, against `optim::WeightAverage`'s tensor ops.
    #[test]
    fn weight_average_updates() {
        use crate::optim::WeightAverage;
        let n = 1000;
        let var = Var::from_tensor(&rand(&[n], -1.0, 1.0)).unwrap();
        let vars = vec![("w".to_string(), var.clone())];
        let mut avg = WeightAverage::new(0.9);
        avg.update(&vars).unwrap();
        let mut a = host(var.as_tensor());
        for _ in 0..3 {
            var.set(&rand(&[n], -1.0, 1.0)).unwrap();
            avg.update(&vars).unwrap();
            let p = host(var.as_tensor());
            k::average_update(&Emu, n, 0.9, addr(&p), dst(&mut a)).unwrap();
            assert_close(&a, &avg.values()[0].1, 1e-6, "weight average");
        }
    }

    #[test]
    fn column_sums_of_tall_and_wide_matrices() {
        for (rows, cols) in [(1, 1), (5000, 3), (70, 513), (3, 2000)] {
            let x = rand(&[rows, cols], -1.0, 1.0);
            let xs = host(&x);
            let mut out = vec![0f32; cols];
            k::column_sums(&Emu, rows, cols, addr(&xs), dst(&mut out)).unwrap();
            assert_close(&out, &x.sum(0).unwrap(), 1e-5, "column sums");
        }
    }

    #[test]
    fn relu_with_bias() {
        let (n, h) = (200, 19);
        let x = Var::from_tensor(&rand(&[n, h], -1.0, 1.0)).unwrap();
        let b = Var::from_tensor(&rand(&[h], -0.5, 0.5)).unwrap();
        let r = rand(&[n, h], -1.0, 1.0);
        let (xs, bs, rs) = (host(x.as_tensor()), host(b.as_tensor()), host(&r));
        let want =
            crate::kernels::relu::relu_bias(x.as_tensor(), b.as_tensor(), Kernels::Fused).unwrap();
        let mut out = vec![0f32; n * h];
        k::relu_bias_fwd(&Emu, n, h, addr(&xs), addr(&bs), dst(&mut out)).unwrap();
        assert_close(&out, &want, 0.0, "relu");
        let g = grads(&[&x], &want, &r);
        let mut gx = vec![0f32; n * h];
        k::relu_mask(&Emu, n * h, addr(&out), addr(&rs), dst(&mut gx)).unwrap();
        assert_close(&gx, &g[0], 0.0, "relu backward");
    }

    #[test]
    fn complex_gabor() {
        for real in [false, true] {
            let (n, h) = (150, 21);
            let cols = if real { h } else { 2 * h };
            let z = Var::from_tensor(&rand(&[n, cols], -0.05, 0.05)).unwrap();
            let b = Var::from_tensor(&rand(&[cols], -0.05, 0.05)).unwrap();
            let r = rand(&[n, 2 * h], -1.0, 1.0);
            let (zs, bs, rs) = (host(z.as_tensor()), host(b.as_tensor()), host(&r));
            let want = crate::kernels::gabor::complex_gabor(
                z.as_tensor(),
                b.as_tensor(),
                20.0,
                10.0,
                real,
                Kernels::Fused,
            )
            .unwrap();
            let d = k::GaborDims {
                rows: n,
                h,
                cols,
                real,
                omega0: 20.0,
                sigma0: 10.0,
            };
            let mut out = vec![0f32; n * 2 * h];
            k::gabor_fwd(&Emu, d, addr(&zs), addr(&bs), dst(&mut out)).unwrap();
            assert_close(&out, &want, 1e-5, "gabor");
            let g = grads(&[&z], &want, &r);
            let mut gz = vec![0f32; n * cols];
            k::gabor_bwd(&Emu, d, addr(&zs), addr(&bs), addr(&rs), dst(&mut gz)).unwrap();
            assert_close(&gz, &g[0], 1e-4, "gabor backward");
        }
    }

    #[test]
    fn gather_and_scatter_rows() {
        let (rows, width, n) = (40, 5, 333);
        let src = Var::from_tensor(&rand(&[rows, width], -1.0, 1.0)).unwrap();
        let index: Vec<u32> = (0..n as u32)
            .map(|i| (i * 7 + i / 3) % rows as u32)
            .collect();
        let it = Tensor::new(&index[..], &Device::Cpu).unwrap();
        let want = src.as_tensor().index_select(&it, 0).unwrap();
        let r = rand(&[n, width], -1.0, 1.0);
        let (ss, rs) = (host(src.as_tensor()), host(&r));
        let mut out = vec![0f32; n * width];
        k::gather_rows(&Emu, n, width, addr(&index), addr(&ss), dst(&mut out)).unwrap();
        assert_close(&out, &want, 0.0, "gather");
        let g = grads(&[&src], &want, &r);
        let mut gs = vec![0f32; rows * width];
        k::scatter_add_rows(&Emu, n, width, addr(&index), addr(&rs), dst(&mut gs)).unwrap();
        assert_close(&gs, &g[0], 1e-5, "scatter-add");
    }

    #[test]
    fn interpolation() {
        use crate::kernels::interp::{interpolate, Gather};
        let (n, groups, corners, rows, f) = (500, 3, 4, 61, 2);
        let mut rng = crate::rng::Rng::new(5);
        let len = n * groups * corners;
        let plan = Arc::new(Gather::new(
            n,
            groups,
            corners,
            (0..len)
                .map(|_| (rng.next_u64() % rows as u64) as u32)
                .collect(),
            (0..len).map(|_| rng.uniform(-1.0, 1.0) as f32).collect(),
            rows,
        ));
        let table = Var::from_tensor(&rand(&[rows, f], -1.0, 1.0)).unwrap();
        let want = interpolate(table.as_tensor(), &plan, Kernels::Fused).unwrap();
        let r = rand(&[n, groups * f], -1.0, 1.0);
        let (ts, rs) = (host(table.as_tensor()), host(&r));
        let p = k::InterpPlan {
            outputs: n * groups,
            corners,
            rows: addr(plan.rows()),
            weights: addr(plan.weights()),
        };
        let mut out = vec![0f32; n * groups * f];
        k::interp_fwd(&Emu, p, f, addr(&ts), dst(&mut out)).unwrap();
        assert_close(&out, &want, 1e-5, "interpolation");
        let g = grads(&[&table], &want, &r);
        let mut gt = vec![0f32; rows * f];
        k::interp_bwd(&Emu, p, f, addr(&rs), dst(&mut gt)).unwrap();
        assert_close(&gt, &g[0], 1e-4, "interpolation backward");
    }

    /// The corner kernel writes the host's plan bit for bit: hashed and dense levels, one to three
    /// axes, an axis of one sample, and samples on the lattice's last vertex.
    #[test]
    fn lattice_corners() {
        use crate::models::lattice::{Lattice, LatticeLevel};
        let level = |offset, verts: Vec<usize>, scale, hashed| LatticeLevel {
            offset,
            verts,
            scale,
            hashed,
        };
        let cases = [
            // A dense grid of 7 x 5 vertices over a 40 x 9 signal.
            (
                vec![40, 9],
                Lattice::new(
                    vec![6.0 / 39.0, 4.0 / 8.0],
                    vec![level(0, vec![7, 5], 1.0, false)],
                    0,
                    35,
                ),
            ),
            // Instant-NGP's levels over a 300 x 200 image: two dense, two hashed into 2^6 rows.
            (
                vec![300, 200],
                Lattice::new(
                    vec![1.0 / 299.0, 1.0 / 199.0],
                    vec![
                        level(0, vec![3, 3], 2.0, false),
                        level(9, vec![6, 6], 5.0, false),
                        level(45, vec![17, 17], 16.0, true),
                        level(109, vec![300, 300], 299.0, true),
                    ],
                    6,
                    173,
                ),
            ),
            // Three axes, the last of one sample; audio's one axis.
            (
                vec![33, 20, 1],
                Lattice::new(
                    vec![1.0 / 32.0, 1.0 / 19.0, 0.0],
                    vec![
                        level(0, vec![4, 4, 4], 3.0, false),
                        level(64, vec![41, 41, 41], 40.0, true),
                    ],
                    9,
                    576,
                ),
            ),
            (
                vec![1000],
                Lattice::new(
                    vec![1.0 / 999.0],
                    vec![level(0, vec![65], 64.0, false)],
                    0,
                    65,
                ),
            ),
        ];
        let mut rng = crate::rng::Rng::new(8);
        for (shape, lattice) in &cases {
            let n = 400;
            let mut idx: Vec<u32> = (0..n)
                .flat_map(|_| {
                    shape
                        .iter()
                        .map(|&s| (rng.next_u64() % s as u64) as u32)
                        .collect::<Vec<_>>()
                })
                .collect();
            idx.extend(shape.iter().map(|&s| s as u32 - 1));
            let n = n + 1;
            let want = lattice.plan(&idx);
            let (words, level_at) = lattice.constants();
            // Where `Lattice::plan_for` expects the level words on a GPU.
            assert_eq!(level_at, lattice.dims() + lattice.levels().len());
            let args = k::LatticeArgs {
                d: lattice.dims(),
                levels: lattice.levels().len(),
                log2_table: lattice.log2_table(),
                scale: addr(&words),
                level: addr(&words[level_at..]),
            };
            let len = (n * lattice.levels().len()) << lattice.dims();
            let (mut rows, mut weights) = (vec![u32::MAX; len], vec![f32::NAN; len]);
            k::lattice_corners(&Emu, args, n, addr(&idx), dst(&mut rows), dst(&mut weights))
                .unwrap();
            assert_eq!(rows, want.rows(), "rows over {shape:?}");
            let bits = |w: &[f32]| w.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&weights),
                bits(want.weights()),
                "weights over {shape:?}"
            );
        }
    }

    /// The maps a level runs on: a full grid's (every coarse cell has the same children, in raster
    /// order) and a deduplicated batch's (sorted parents, some cells absent).
    fn maps() -> Vec<(&'static str, Arc<LevelMap>)> {
        let grid = MultiResGrid::new(&[12, 18], vec![vec![2, 3, 2], vec![3, 2, 3]]).unwrap();
        let full = Arc::new(LevelMap::new(&grid, 1));
        let mut rng = crate::rng::Rng::new(9);
        let idx: Vec<u32> = (0..400)
            .flat_map(|_| [(rng.next_u64() % 12) as u32, (rng.next_u64() % 18) as u32])
            .collect();
        let cells = grid.batch_cells(&idx);
        let (parent, digit) = cells.links[0].clone();
        let coarse = grid.level_points(0);
        let batch =
            Arc::new(LevelMap::from_links(parent, digit, coarse, grid.level_points(1)).unwrap());
        vec![("full grid", full), ("batch", batch)]
    }

    fn links(map: &LevelMap) -> (Vec<u32>, k::Links) {
        let packed = map.packed();
        let l = packed.links(addr(&packed.data));
        (packed.data, l)
    }

    #[test]
    fn level_forward_and_backward() {
        let (h, w0) = (40, 30f32);
        for (what, map) in maps() {
            let z = Var::from_tensor(&rand(&[map.coarse_points(), h], -0.1, 0.1)).unwrap();
            let m = Var::from_tensor(&rand(&[map.mod_points(), h], -0.1, 0.1)).unwrap();
            let r = rand(&[map.fine_points(), h], -1.0, 1.0);
            let want =
                crate::kernels::level::level_forward(z.as_tensor(), m.as_tensor(), &map, w0 as f64)
                    .unwrap();
            let g = grads(&[&z, &m], &want, &r);
            let (zs, ms, rs) = (host(z.as_tensor()), host(m.as_tensor()), host(&r));
            let (_data, l) = links(&map);
            let a = k::LevelArgs {
                h,
                w0,
                z: addr(&zs),
                m: addr(&ms),
            };
            let mut out = vec![0f32; map.fine_points() * h];
            k::level_fwd(&Emu, &l, a, dst(&mut out)).unwrap();
            assert_close(&out, &want, 1e-5, what);
            let (mut gz, mut gm) = (vec![0f32; zs.len()], vec![0f32; ms.len()]);
            k::level_bwd(&Emu, &l, a, None, addr(&rs), (dst(&mut gz), dst(&mut gm))).unwrap();
            assert_close(&gz, &g[0], 1e-4, what);
            assert_close(&gm, &g[1], 1e-4, what);
        }
    }

    #[test]
    fn last_level_fused_with_the_output_layer() {
        let (h, c, w0) = (24, 3, 30f32);
        for (what, map) in maps() {
            let z = Var::from_tensor(&rand(&[map.coarse_points(), h], -0.1, 0.1)).unwrap();
            let m = Var::from_tensor(&rand(&[map.mod_points(), h], -0.1, 0.1)).unwrap();
            let w = Var::from_tensor(&rand(&[c, h], -0.3, 0.3)).unwrap();
            let b = Var::from_tensor(&rand(&[c], -0.3, 0.3)).unwrap();
            let r = rand(&[map.fine_points(), c], -1.0, 1.0);
            let want = crate::kernels::output::level_output(
                z.as_tensor(),
                m.as_tensor(),
                w.as_tensor(),
                b.as_tensor(),
                &map,
                w0 as f64,
            )
            .unwrap();
            let g = grads(&[&z, &m, &w, &b], &want, &r);
            let wb =
                Tensor::cat(&[w.as_tensor(), &b.as_tensor().unsqueeze(1).unwrap()], 1).unwrap();
            let (zs, ms, wbs, rs) = (
                host(z.as_tensor()),
                host(m.as_tensor()),
                host(&wb),
                host(&r),
            );
            let (_data, l) = links(&map);
            let a = k::LevelArgs {
                h,
                w0,
                z: addr(&zs),
                m: addr(&ms),
            };
            let mut out = vec![0f32; map.fine_points() * c];
            k::level_output_fwd(&Emu, &l, a, c, addr(&wbs), dst(&mut out)).unwrap();
            assert_close(&out, &want, 1e-5, what);
            let (mut gz, mut gm, mut gwb) = (
                vec![0f32; zs.len()],
                vec![0f32; ms.len()],
                vec![0f32; wbs.len()],
            );
            let outs: (Ptr, Ptr, Ptr) = (dst(&mut gz), dst(&mut gm), dst(&mut gwb));
            k::level_output_bwd(&Emu, &l, a, c, addr(&wbs), addr(&rs), outs).unwrap();
            assert_close(&gz, &g[0], 1e-4, what);
            assert_close(&gm, &g[1], 1e-4, what);
            let gwb_want = Tensor::cat(&[&g[2], &g[3].unsqueeze(1).unwrap()], 1).unwrap();
            assert_close(&gwb, &gwb_want, 1e-4, what);
        }
    }
}
