//! Fused kernels, as candle custom ops with forward and backward: `cpu_fwd` here, `cuda_fwd` through
//! [`cuda`] in a CUDA build. Candle's CPU elementwise ops are scalar and single-threaded, and on a
//! GPU its broadcasts, reductions and serial `index_add` dominate; the cheap-per-sample part of
//! ASMR (upsample, modulation add, sine, at full resolution) would otherwise dominate a step. Each
//! op picks its path itself from the device and the model's [`Kernels`]: the fused kernel where the
//! device has one, otherwise the plain candle graph, which computes the same thing.

#[cfg(feature = "cuda")]
pub mod adam;
mod angles;
#[cfg(feature = "cuda")]
pub mod average;
#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
pub mod cuda;
pub mod gabor;
pub mod gather;
pub mod interp;
pub mod level;
pub mod output;
mod output_grid;
pub mod reduce;
pub mod relu;
pub mod sine;

use std::sync::OnceLock;

/// Which implementation of the hot ops a model runs: part of its [`crate::models::ModelContext`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Kernels {
    /// The fused kernels where the device has them (the CPU, and CUDA GPUs in a CUDA build),
    /// candle's own ops elsewhere.
    #[default]
    Fused,
    /// Candle's own ops everywhere: the reference the fused kernels are tested and timed against.
    Plain,
}

impl Kernels {
    /// Whether a fused kernel serves an op over `t`.
    pub fn fused_on(self, t: &candle_core::Tensor) -> bool {
        self.fused_on_device(t.device())
    }

    /// Whether fused kernels serve ops on `device`.
    pub fn fused_on_device(self, device: &candle_core::Device) -> bool {
        self == Kernels::Fused && (device.is_cpu() || (cfg!(feature = "cuda") && device.is_cuda()))
    }
}

/// Keep freed memory in the process for reuse. A full-grid step allocates and frees activation
/// buffers of hundreds of MB; glibc serves those with `mmap` and returns them on free, so every
/// step pays for page faults and zeroing of fresh pages (measured: sys time 7.3 s -> 0.6 s, 1.9x
/// faster wall time over 20 ASMR steps on 512 x 512). Call once at program start.
pub fn keep_freed_memory() {
    if std::env::var_os("ASMR_SYSTEM_MALLOC").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning parameters; called before heavy allocation.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        // -1 is SIZE_MAX to glibc: never trim (i32::MAX still trimmed steps that free > 2 GB).
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
    }
}

/// Worker threads for the kernels (the machine's parallelism; `ASMR_THREADS` overrides).
pub fn num_threads() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("ASMR_THREADS")
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            })
    })
}

/// Threads worth using for `work` elementwise operations (one below a size where spawning costs
/// more than it saves).
pub fn threads_for(work: usize) -> usize {
    if work < 1 << 15 {
        1
    } else {
        num_threads()
    }
}

/// The contiguous f32 data of a custom op's CPU operand.
pub(crate) fn cpu_f32<'a>(
    s: &'a candle_core::CpuStorage,
    l: &candle_core::Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let data = match s {
        candle_core::CpuStorage::F32(v) => v,
        _ => candle_core::bail!("{op}: f32 tensors only"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{op}: operands must be contiguous"),
    }
}

/// The element count an in-place op's destination shares with each of its sources.
#[cfg(feature = "cuda")]
pub(crate) fn common_len(
    dst: &candle_core::Layout,
    srcs: &[&candle_core::Layout],
    op: &str,
) -> candle_core::Result<usize> {
    let n = dst.shape().elem_count();
    if srcs.iter().any(|l| l.shape().elem_count() != n) {
        candle_core::bail!("{op}: the operands differ in size");
    }
    Ok(n)
}

/// The contiguous f32 data of an in-place op's CPU destination.
#[cfg(feature = "cuda")]
pub(crate) fn cpu_f32_mut<'a>(
    s: &'a mut candle_core::CpuStorage,
    l: &candle_core::Layout,
    op: &str,
) -> candle_core::Result<&'a mut [f32]> {
    match (s, l.contiguous_offsets()) {
        (candle_core::CpuStorage::F32(v), Some((a, b))) => Ok(&mut v[a..b]),
        _ => candle_core::bail!("{op}: contiguous f32 tensors only"),
    }
}

/// `total += part`, elementwise (reducing per-thread partial gradients).
pub(crate) fn add_into(total: &mut [f32], part: &[f32]) {
    for (t, v) in total.iter_mut().zip(part) {
        *t += v;
    }
}

/// `(n, h, x, b)` of the CPU operands rows `x: [n, h]` and a bias `b: [h]` of a layer op named
/// `what`: the shapes checked against each other, the data contiguous f32.
pub(crate) fn rows_and_bias<'a>(
    x: (&'a candle_core::CpuStorage, &candle_core::Layout),
    b: (&'a candle_core::CpuStorage, &candle_core::Layout),
    what: &str,
) -> candle_core::Result<(usize, usize, &'a [f32], &'a [f32])> {
    let (n, h) = rows_and_bias_dims(x.1, b.1, what)?;
    Ok((n, h, cpu_f32(x.0, x.1, what)?, cpu_f32(b.0, b.1, what)?))
}

/// `(n, h)` of rows `x: [n, h]` and a bias `b: [h]`, checked against each other.
pub(crate) fn rows_and_bias_dims(
    x: &candle_core::Layout,
    b: &candle_core::Layout,
    what: &str,
) -> candle_core::Result<(usize, usize)> {
    let (n, h) = x.shape().dims2()?;
    if b.shape().dims() != [h] {
        candle_core::bail!("{what}: rows of {h}, bias of shape {:?}", b.shape());
    }
    Ok((n, h))
}

/// The element count of an operand and of its gradient, checked to be the same.
#[cfg(feature = "cuda")]
pub(crate) fn same_len(
    a: &candle_core::Layout,
    b: &candle_core::Layout,
    what: &str,
) -> candle_core::Result<usize> {
    let n = a.shape().elem_count();
    if b.shape().elem_count() != n {
        candle_core::bail!("{what}: gradient has the wrong size");
    }
    Ok(n)
}

/// Fill `out` (`n` rows of `width` values) in parallel: `f(rows, part)` writes rows `rows` into
/// `part`. `work` (elementwise operations in all) decides how many threads are worth it.
pub(crate) fn par_rows(
    n: usize,
    width: usize,
    work: usize,
    out: &mut [f32],
    f: impl Fn(std::ops::Range<usize>, &mut [f32]) + Sync,
) {
    std::thread::scope(|s| {
        let mut rest = out;
        for r in split_range(n, threads_for(work)) {
            let (head, tail) = rest.split_at_mut(r.len() * width);
            rest = tail;
            let f = &f;
            s.spawn(move || f(r, head));
        }
    });
}

/// Split `0..n` into at most `parts` contiguous ranges of near-equal length.
pub fn split_range(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    (0..parts)
        .map(|i| (i * n / parts)..((i + 1) * n / parts))
        .collect()
}

/// Largest absolute elementwise difference (kernel tests).
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
        .expect("same shapes")
}

/// Whether the AVX2+FMA variants can run here (checked once).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2() -> bool {
    static V: OnceLock<bool> = OnceLock::new();
    *V.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}
