//! The CUDA side of the fused kernels. The sources are `asmr-core/cuda/*.cu`, compiled at build time
//! (feature `cuda`) into fat binaries holding machine code for `CUDA_COMPUTE_CAP` and PTX for newer
//! GPUs, loaded once per device ([`device`]). What each op launches — which kernels, with which
//! arguments, over how many threads — is written once here, as functions over an [`Exec`]: the GPU
//! runs them through [`device::Gpu`], and the host emulator (feature `cuda-emu`, [`emu`]) runs the
//! same launches thread by thread on the CPU, so the tests check the kernels' arithmetic and these
//! launch plans against the CPU kernels without a GPU.

use candle_core::Result;

#[cfg(feature = "cuda")]
pub mod device;
#[cfg(feature = "cuda-emu")]
pub mod emu;

/// Threads per block of every launch.
pub const BLOCK: u32 = 256;
/// Most blocks of a launch; the kernels' grid-stride loops cover the rest.
const MAX_BLOCKS: u64 = 1 << 16;
/// Entries a thread of a segment sum adds up before its one atomic add.
pub const SEGMENT_CHUNK: usize = 64;

/// One kernel argument, as the kernel's parameter list declares it.
#[derive(Debug, Clone, Copy)]
pub enum Arg {
    /// A device address (`float*`, `u32*`).
    Ptr(u64),
    U64(u64),
    U32(u32),
    F32(f32),
}

/// The compiled source file a kernel lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Pointwise,
    Level,
    Scatter,
}

/// Something that runs kernel launches: the GPU, or the host emulator.
pub trait Exec {
    fn launch(&self, src: Source, kernel: &'static str, blocks: u32, args: &[Arg]) -> Result<()>;
}

/// Blocks for `n` threads' worth of work.
fn blocks(n: usize) -> u32 {
    (n as u64).div_ceil(BLOCK as u64).clamp(1, MAX_BLOCKS) as u32
}

fn u32_of(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| candle_core::Error::Msg(format!("{what} {v} exceeds 2^32")))
}

/// Device addresses of the operands (f32 data unless named otherwise).
pub type Ptr = u64;

/// Launch `kernel` over `rows x width` values, one thread each: its parameters are the value count,
/// the row width, `scalars`, then the operands' addresses.
fn over_rows(
    e: &impl Exec,
    (src, kernel): (Source, &'static str),
    rows: usize,
    width: usize,
    scalars: &[Arg],
    ptrs: &[Ptr],
) -> Result<()> {
    let n = rows * width;
    let mut args = vec![Arg::U64(n as u64), Arg::U32(u32_of(width, "row width")?)];
    args.extend_from_slice(scalars);
    args.extend(ptrs.iter().map(|&p| Arg::Ptr(p)));
    e.launch(src, kernel, blocks(n), &args)
}

/// `out = sin(w0 x)` over `n` values.
pub fn sine_fwd(e: &impl Exec, n: usize, w0: f32, x: Ptr, out: Ptr) -> Result<()> {
    let args = [Arg::U64(n as u64), Arg::F32(w0), Arg::Ptr(x), Arg::Ptr(out)];
    e.launch(Source::Pointwise, "sine_fwd", blocks(n), &args)
}

/// `out = g w0 cos(w0 x)`.
pub fn sine_bwd(e: &impl Exec, n: usize, w0: f32, x: Ptr, g: Ptr, out: Ptr) -> Result<()> {
    let args = [
        Arg::U64(n as u64),
        Arg::F32(w0),
        Arg::Ptr(x),
        Arg::Ptr(g),
        Arg::Ptr(out),
    ];
    e.launch(Source::Pointwise, "sine_bwd", blocks(n), &args)
}

/// `out = sin(w0 (x + b))` over rows `x: [rows, h]`.
pub fn sine_bias_fwd(
    e: &impl Exec,
    rows: usize,
    h: usize,
    w0: f32,
    x: Ptr,
    b: Ptr,
    out: Ptr,
) -> Result<()> {
    let k = (Source::Pointwise, "sine_bias_fwd");
    over_rows(e, k, rows, h, &[Arg::F32(w0)], &[x, b, out])
}

/// The gradient of [`sine_bias_fwd`] by `x` (that of `b` is its column sums).
#[allow(clippy::too_many_arguments)]
pub fn sine_bias_bwd(
    e: &impl Exec,
    rows: usize,
    h: usize,
    w0: f32,
    x: Ptr,
    b: Ptr,
    g: Ptr,
    out: Ptr,
) -> Result<()> {
    let k = (Source::Pointwise, "sine_bias_bwd");
    over_rows(e, k, rows, h, &[Arg::F32(w0)], &[x, b, g, out])
}

/// `out = max(x + b, 0)` over rows `x: [rows, h]`.
pub fn relu_bias_fwd(e: &impl Exec, rows: usize, h: usize, x: Ptr, b: Ptr, out: Ptr) -> Result<()> {
    over_rows(
        e,
        (Source::Pointwise, "relu_bias_fwd"),
        rows,
        h,
        &[],
        &[x, b, out],
    )
}

/// `out = g` where `y > 0`, else 0.
pub fn relu_mask(e: &impl Exec, n: usize, y: Ptr, g: Ptr, out: Ptr) -> Result<()> {
    let args = [Arg::U64(n as u64), Arg::Ptr(y), Arg::Ptr(g), Arg::Ptr(out)];
    e.launch(Source::Pointwise, "relu_mask", blocks(n), &args)
}

/// Shape and constants of a complex Gabor op (see `kernels::gabor`).
#[derive(Debug, Clone, Copy)]
pub struct GaborDims {
    pub rows: usize,
    /// Complex width.
    pub h: usize,
    /// Input columns: `h` for a real input, `2h` otherwise.
    pub cols: usize,
    pub real: bool,
    pub omega0: f32,
    pub sigma0: f32,
}

impl GaborDims {
    fn args(&self) -> Result<[Arg; 6]> {
        Ok([
            Arg::U64((self.rows * self.h) as u64),
            Arg::U32(u32_of(self.h, "row width")?),
            Arg::U32(u32_of(self.cols, "row width")?),
            Arg::U32(self.real as u32),
            Arg::F32(self.omega0),
            Arg::F32(self.sigma0),
        ])
    }
}

/// The Gabor activation of `z + bias` into `out: [rows, 2h]`.
pub fn gabor_fwd(e: &impl Exec, d: GaborDims, z: Ptr, bias: Ptr, out: Ptr) -> Result<()> {
    let mut args = d.args()?.to_vec();
    args.extend([Arg::Ptr(z), Arg::Ptr(bias), Arg::Ptr(out)]);
    e.launch(Source::Pointwise, "gabor_fwd", blocks(d.rows * d.h), &args)
}

/// Its gradient by `z` into `out: [rows, cols]`.
pub fn gabor_bwd(e: &impl Exec, d: GaborDims, z: Ptr, bias: Ptr, g: Ptr, out: Ptr) -> Result<()> {
    let mut args = d.args()?.to_vec();
    args.extend([Arg::Ptr(z), Arg::Ptr(bias), Arg::Ptr(g), Arg::Ptr(out)]);
    e.launch(Source::Pointwise, "gabor_bwd", blocks(d.rows * d.h), &args)
}

/// Rows summed per thread by [`column_sums`]: enough threads to keep the memory busy (about 2^19),
/// at least 16 rows each.
fn rows_per_thread(rows: usize, cols: usize) -> usize {
    (rows * cols).div_ceil(1 << 19).max(16)
}

/// `out[j] = sum_r x[r, j]` into a zeroed `out: [cols]`.
pub fn column_sums(e: &impl Exec, rows: usize, cols: usize, x: Ptr, out: Ptr) -> Result<()> {
    let chunk = rows_per_thread(rows, cols);
    let args = [
        Arg::U32(u32_of(rows, "rows")?),
        Arg::U32(u32_of(cols, "columns")?),
        Arg::U32(chunk as u32),
        Arg::Ptr(x),
        Arg::Ptr(out),
    ];
    e.launch(
        Source::Pointwise,
        "column_sums",
        blocks(rows.div_ceil(chunk) * cols),
        &args,
    )
}

/// `out[i, :] = src[index[i], :]` for rows of `width` (`index`: u32).
pub fn gather_rows(
    e: &impl Exec,
    rows: usize,
    width: usize,
    index: Ptr,
    src: Ptr,
    out: Ptr,
) -> Result<()> {
    over_rows(
        e,
        (Source::Scatter, "gather_rows"),
        rows,
        width,
        &[],
        &[index, src, out],
    )
}

/// `out[index[i], :] += src[i, :]` into a zeroed `out`, for `rows` rows of `src`.
pub fn scatter_add_rows(
    e: &impl Exec,
    rows: usize,
    width: usize,
    index: Ptr,
    src: Ptr,
    out: Ptr,
) -> Result<()> {
    let k = (Source::Scatter, "scatter_add_rows");
    over_rows(e, k, rows, width, &[], &[index, src, out])
}

/// A weighted gather's plan on the device: `outputs` rows (samples x groups) of `corners` corners.
#[derive(Debug, Clone, Copy)]
pub struct InterpPlan {
    pub outputs: usize,
    pub corners: usize,
    /// Table row of every corner (u32).
    pub rows: Ptr,
    /// Weight of every corner.
    pub weights: Ptr,
}

/// `out[s, :] = sum_k w[s, k] table[rows[s, k], :]` for feature rows of `f`.
pub fn interp_fwd(e: &impl Exec, p: InterpPlan, f: usize, table: Ptr, out: Ptr) -> Result<()> {
    let corners = [Arg::U32(u32_of(p.corners, "corners")?)];
    let ptrs = [p.rows, p.weights, table, out];
    over_rows(
        e,
        (Source::Scatter, "interp_fwd"),
        p.outputs,
        f,
        &corners,
        &ptrs,
    )
}

/// Its backward into a zeroed table gradient: one thread per corner and feature.
pub fn interp_bwd(e: &impl Exec, p: InterpPlan, f: usize, g: Ptr, out: Ptr) -> Result<()> {
    let corners = [Arg::U32(u32_of(p.corners, "corners")?)];
    let (entries, ptrs) = (p.outputs * p.corners, [p.rows, p.weights, g, out]);
    over_rows(
        e,
        (Source::Scatter, "interp_bwd"),
        entries,
        f,
        &corners,
        &ptrs,
    )
}

/// A lattice encoding's constants on the device, as `Lattice::constants` lays them out: `scale`
/// (`d` units, then a factor per level) and `level` (`2 + d` words per level).
#[derive(Debug, Clone, Copy)]
pub struct LatticeArgs {
    pub d: usize,
    pub levels: usize,
    pub log2_table: u32,
    pub scale: Ptr,
    pub level: Ptr,
}

/// The interpolation plan of `samples` grid indices (`idx`, `d` u32 per sample): every sample's
/// `levels x 2^d` table rows into `rows` (u32) and weights into `weights`.
pub fn lattice_corners(
    e: &impl Exec,
    a: LatticeArgs,
    samples: usize,
    idx: Ptr,
    rows: Ptr,
    weights: Ptr,
) -> Result<()> {
    if a.d == 0 || a.d > 8 {
        candle_core::bail!("lattice corners: {} axes (1 to 8 supported)", a.d);
    }
    let n = samples * a.levels;
    let args = [
        Arg::U64(n as u64),
        Arg::U32(a.d as u32),
        Arg::U32(u32_of(a.levels, "levels")?),
        Arg::U32(a.log2_table),
        Arg::Ptr(idx),
        Arg::Ptr(a.scale),
        Arg::Ptr(a.level),
        Arg::Ptr(rows),
        Arg::Ptr(weights),
    ];
    e.launch(Source::Scatter, "lattice_corners", blocks(n), &args)
}

/// A level transition's links on the device (all u32; see `LevelMap::packed`).
#[derive(Debug, Clone, Copy)]
pub struct Links {
    pub points: usize,
    pub parent: Ptr,
    pub digit: Ptr,
    /// Segment sums over each coarse cell's children, and over each modulation row's points.
    pub by_parent: Segments,
    pub by_digit: Segments,
}

/// A segment sum's permutation of the fine points and its `(segment, start, end)` items.
#[derive(Debug, Clone, Copy)]
pub struct Segments {
    pub perm: Ptr,
    pub items: Ptr,
    pub count: usize,
}

/// The operands of one level: `z: [coarse, h]`, `m: [mod, h]`, and the output layer `wb: [c, h+1]`
/// when fused.
#[derive(Debug, Clone, Copy)]
pub struct LevelArgs {
    pub h: usize,
    pub w0: f32,
    pub z: Ptr,
    pub m: Ptr,
}

/// `out[p, :] = sin(w0 (z[parent p] + m[digit p]))`.
pub fn level_fwd(e: &impl Exec, l: &Links, a: LevelArgs, out: Ptr) -> Result<()> {
    let n = l.points * a.h;
    let args = [
        Arg::U64(n as u64),
        Arg::U32(u32_of(a.h, "hidden width")?),
        Arg::F32(a.w0),
        Arg::Ptr(a.z),
        Arg::Ptr(a.m),
        Arg::Ptr(l.parent),
        Arg::Ptr(l.digit),
        Arg::Ptr(out),
    ];
    e.launch(Source::Level, "level_fwd", blocks(n), &args)
}

/// The gradients of `z` and `m` (zeroed on entry) of a level, or of the fused last level when
/// `output` is `Some((c, wb))`; `g` is `[points, h]` or `[points, c]`.
pub fn level_bwd(
    e: &impl Exec,
    l: &Links,
    a: LevelArgs,
    output: Option<(usize, Ptr)>,
    g: Ptr,
    (gz, gm): (Ptr, Ptr),
) -> Result<()> {
    let (c, wb) = output.unwrap_or((0, 0));
    for (s, out) in [(l.by_parent, gz), (l.by_digit, gm)] {
        let args = [
            Arg::U32(u32_of(s.count, "segment items")?),
            Arg::U32(u32_of(a.h, "hidden width")?),
            Arg::U32(u32_of(c, "outputs")?),
            Arg::F32(a.w0),
            Arg::Ptr(a.z),
            Arg::Ptr(a.m),
            Arg::Ptr(wb),
            Arg::Ptr(g),
            Arg::Ptr(l.parent),
            Arg::Ptr(l.digit),
            Arg::Ptr(s.perm),
            Arg::Ptr(s.items),
            Arg::Ptr(out),
        ];
        e.launch(
            Source::Level,
            "level_bwd_segments",
            blocks(s.count * a.h),
            &args,
        )?;
    }
    Ok(())
}

/// The last level fused with the output layer: `out[p, o] = wb[o, :h] . sin(...) + wb[o, h]`
/// for `c <= GPU_MAX_OUTPUTS` outputs (`kernels::output`).
pub fn level_output_fwd(
    e: &impl Exec,
    l: &Links,
    a: LevelArgs,
    c: usize,
    wb: Ptr,
    out: Ptr,
) -> Result<()> {
    let args = [
        Arg::U32(u32_of(l.points, "points")?),
        Arg::U32(u32_of(a.h, "hidden width")?),
        Arg::U32(u32_of(c, "outputs")?),
        Arg::F32(a.w0),
        Arg::Ptr(a.z),
        Arg::Ptr(a.m),
        Arg::Ptr(wb),
        Arg::Ptr(l.parent),
        Arg::Ptr(l.digit),
        Arg::Ptr(out),
    ];
    e.launch(Source::Level, "level_output_fwd", blocks(l.points), &args)
}

/// Gradients of the fused last level: `z`, `m` and `[W | b]`, all zeroed on entry.
#[allow(clippy::too_many_arguments)]
pub fn level_output_bwd(
    e: &impl Exec,
    l: &Links,
    a: LevelArgs,
    c: usize,
    wb: Ptr,
    g: Ptr,
    (gz, gm, gwb): (Ptr, Ptr, Ptr),
) -> Result<()> {
    level_bwd(e, l, a, Some((c, wb)), g, (gz, gm))?;
    let chunk = SEGMENT_CHUNK;
    let args = [
        Arg::U32(u32_of(l.points, "points")?),
        Arg::U32(u32_of(a.h, "hidden width")?),
        Arg::U32(u32_of(c, "outputs")?),
        Arg::U32(chunk as u32),
        Arg::F32(a.w0),
        Arg::Ptr(a.z),
        Arg::Ptr(a.m),
        Arg::Ptr(g),
        Arg::Ptr(l.parent),
        Arg::Ptr(l.digit),
        Arg::Ptr(gwb),
    ];
    let threads = l.points.div_ceil(chunk) * (a.h + 1);
    e.launch(Source::Level, "output_weight_grad", blocks(threads), &args)
}

/// Adam's moment update in place: `mom = beta mom + (1 - beta) d`, `d = g + wd p`, squared for the
/// second moment.
#[allow(clippy::too_many_arguments)]
pub fn adam_moment(
    e: &impl Exec,
    n: usize,
    beta: f32,
    square: bool,
    wd: f32,
    g: Ptr,
    p: Ptr,
    mom: Ptr,
) -> Result<()> {
    let args = [
        Arg::U64(n as u64),
        Arg::F32(beta),
        Arg::U32(square as u32),
        Arg::F32(wd),
        Arg::Ptr(g),
        Arg::Ptr(p),
        Arg::Ptr(mom),
    ];
    e.launch(Source::Pointwise, "adam_moment", blocks(n), &args)
}

/// The weight average's update in place: `avg = p + decay (avg - p)`.
pub fn average_update(e: &impl Exec, n: usize, decay: f32, p: Ptr, avg: Ptr) -> Result<()> {
    let args = [
        Arg::U64(n as u64),
        Arg::F32(decay),
        Arg::Ptr(p),
        Arg::Ptr(avg),
    ];
    e.launch(Source::Pointwise, "average_update", blocks(n), &args)
}

/// Adam's parameter update in place: `p -= step m / (sqrt(v) / sqrt_bc2 + eps)`.
#[allow(clippy::too_many_arguments)]
pub fn adam_update(
    e: &impl Exec,
    n: usize,
    step: f32,
    sqrt_bc2: f32,
    eps: f32,
    m: Ptr,
    v: Ptr,
    p: Ptr,
) -> Result<()> {
    let args = [
        Arg::U64(n as u64),
        Arg::F32(step),
        Arg::F32(sqrt_bc2),
        Arg::F32(eps),
        Arg::Ptr(m),
        Arg::Ptr(v),
        Arg::Ptr(p),
    ];
    e.launch(Source::Pointwise, "adam_update", blocks(n), &args)
}

/// Sort the fine points by `key` (counting sort into `segments` buckets) and cut every bucket into
/// runs of at most [`SEGMENT_CHUNK`]: the permutation and the `(segment, start, end)` items of a
/// segment sum. Empty buckets get no item (their sums stay zero).
pub fn segments_by(key: &[u32], segments: usize) -> (Vec<u32>, Vec<u32>) {
    let mut start = vec![0u32; segments + 1];
    for &k in key {
        start[k as usize + 1] += 1;
    }
    for s in 0..segments {
        start[s + 1] += start[s];
    }
    let mut fill = start.clone();
    let mut perm = vec![0u32; key.len()];
    for (p, &k) in key.iter().enumerate() {
        perm[fill[k as usize] as usize] = p as u32;
        fill[k as usize] += 1;
    }
    let mut items = Vec::new();
    for s in 0..segments {
        let (a, b) = (start[s] as usize, start[s + 1] as usize);
        for lo in (a..b).step_by(SEGMENT_CHUNK) {
            items.extend([s as u32, lo as u32, (lo + SEGMENT_CHUNK).min(b) as u32]);
        }
    }
    (perm, items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cover_every_point_once_in_order_of_their_key() {
        let key = [2u32, 0, 2, 2, 1, 0, 2];
        let (perm, items) = segments_by(&key, 4);
        assert_eq!(perm, [1, 5, 4, 0, 2, 3, 6]);
        // Segments 0, 1 and 2 (3 is empty); no item is longer than a chunk.
        assert_eq!(items, [0, 0, 2, 1, 2, 3, 2, 3, 7]);
        let long = vec![0u32; 3 * SEGMENT_CHUNK + 5];
        let (_, items) = segments_by(&long, 1);
        let runs: Vec<_> = items.chunks(3).map(|i| i[2] - i[1]).collect();
        assert_eq!(runs, [64, 64, 64, 5]);
    }
}
